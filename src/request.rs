//! One request's facts: who asks, with which policy snapshot, and the per-request
//! machinery (batched loaders, grants read once, the audit log) that services and the
//! disclosure gate share. Built by the transport for every GraphQL request.

use std::sync::Arc;

use async_graphql::Context;
use sea_orm::DatabaseConnection;

use crate::agents::Agent;
use crate::audit::AuditLog;
use crate::error::{ApiError, ApiResult};
use crate::ids::TicketId;
use crate::loaders::Loaders;
use crate::policy::PolicySet;
use crate::reveal::store::GrantStore;
use crate::reveal::RequestGrants;
use crate::telemetry::RequestId;
use crate::vocabulary::Permission;

/// `agent` acting in request `request_id` under `policy`, for audit events.
pub fn actor(agent: &Agent, request_id: &RequestId, policy: &PolicySet) -> crate::audit::Actor {
    crate::audit::Actor {
        agent_id: Some(agent.id),
        role: agent.role.clone(),
        request_id: request_id.0.clone(),
        policy_version: Some(policy.version().to_owned()),
        idempotency_key: None,
    }
}

/// Everything a resolver may use for one request: who asks, with which policy snapshot.
pub struct RequestContext {
    /// The authenticated agent.
    pub agent: Agent,
    /// What the policy may read about the agent, made once per request: every ticket's
    /// gate asks the policy with them.
    pub agent_facts: crate::policy::AgentFacts,
    /// The request's id, for logs and audit events.
    pub request_id: RequestId,
    /// The policy set this request is evaluated against, fixed for the whole request.
    pub policy: Arc<PolicySet>,
    /// The database, for reads.
    pub db: DatabaseConnection,
    /// Where writes go.
    pub writer: crate::writer::Writer,
    /// Erasures recorded outside the database.
    pub ledger: crate::ledger::Ledger,
    /// The request's `Idempotency-Key` claim, when it is a mutation that sent one: each
    /// write records its result there, or replays an earlier delivery's.
    pub idempotency: Option<Arc<crate::idempotency::Claim>>,
    /// Per-request batched loaders.
    pub loaders: Loaders,
    /// The audit trail.
    pub audit: AuditLog,
    /// Where grants live.
    pub grant_store: GrantStore,
    /// The caller's grants, read at most once per request.
    pub grants: RequestGrants,
    /// Customers' data keys.
    pub vault: std::sync::Arc<crate::crypto::vault::Vault>,
    /// The service's settings.
    pub settings: std::sync::Arc<crate::config::Settings>,
    /// Rate limits.
    pub limiter: crate::ratelimit::RateLimiter,
    /// How a change to an agent reaches every instance's token cache.
    pub invalidations: crate::agents::cache::Invalidations,
}

impl RequestContext {
    /// Whether the policy grants the calling agent `permission` on `ticket`
    /// (`allow(agent, action, ticket)`).
    pub fn may(&self, permission: Permission, ticket: &entity::ticket::Model) -> bool {
        self.agent.may(&self.policy, permission, ticket)
    }

    /// The ways the policy lets the calling agent see tickets (`ticket_scope`), which the
    /// ticket queries turn into SQL.
    pub fn ticket_scopes(&self) -> Arc<[crate::policy::TicketScope]> {
        self.policy.ticket_scopes(&self.agent_facts)
    }

    /// Whether the policy grants the calling agent `permission` on a named resource
    /// (`allow(agent, action, "resource")`).
    pub fn allowed(&self, permission: Permission) -> bool {
        self.policy.authorize(&self.agent_facts, permission, None)
    }

    /// An audit event of this request, by the calling agent.
    pub fn audit_event(
        &self,
        action: crate::audit::Action,
        customer_id: Option<i32>,
        ticket_id: Option<i32>,
        fields: Vec<String>,
        reason: Option<String>,
    ) -> crate::audit::NewEvent {
        self.actor()
            .event(action, customer_id, ticket_id, fields, reason)
    }

    /// The calling agent as the actor of this request's audit events.
    pub fn actor(&self) -> crate::audit::Actor {
        let mut actor = actor(&self.agent, &self.request_id, &self.policy);
        actor.idempotency_key = self.idempotency.as_ref().map(|c| c.key().to_owned());
        actor
    }

    /// The opener of a customer's sealed fields, through the request's batched loader. The
    /// disclosure gate asks for it when it renders a value; other callers are deliberate
    /// (see [`crate::crypto::vault::Opener`]).
    pub async fn opener(&self, customer_id: i32) -> ApiResult<crate::crypto::vault::Opener> {
        self.loaders
            .data_keys
            .load_one(customer_id)
            .await
            .map_err(crate::loaders::load_error)?
            .ok_or_else(|| {
                ApiError::internal(anyhow::anyhow!("customer without data key"), "loading keys")
            })
    }

    /// The ticket `id` if the calling agent may see it; `NOT_FOUND` otherwise, whether it
    /// exists or not.
    pub async fn visible_ticket(&self, id: TicketId) -> ApiResult<entity::ticket::Model> {
        Ok(self.visible_ticket_with_customer(id).await?.ticket)
    }

    /// [`RequestContext::visible_ticket`], with the customer's row and the assignee's names
    /// read in the same statement.
    pub async fn visible_ticket_with_customer(
        &self,
        id: TicketId,
    ) -> ApiResult<crate::tickets::visibility::Joined> {
        let scopes = self.ticket_scopes();
        crate::tickets::visibility::find_visible(&self.db, &self.agent, &scopes, id.get())
            .await?
            .ok_or(ApiError::NotFound)
    }

    /// [`RequestContext::visible_ticket_with_customer`], with all of the customer's tickets
    /// (oldest first, this one among them) read in the same statement.
    pub async fn visible_ticket_with_customer_tickets(
        &self,
        id: TicketId,
    ) -> ApiResult<(
        crate::tickets::visibility::Joined,
        Vec<crate::rows::TicketSummaryRow>,
    )> {
        let scopes = self.ticket_scopes();
        crate::tickets::visibility::find_visible_with_customer_tickets(
            &self.db,
            &self.agent,
            &scopes,
            id.get(),
        )
        .await?
        .ok_or(ApiError::NotFound)
    }

    /// The privacy officer's workflows (export, erase), acting as the calling agent.
    pub fn privacy(&self) -> crate::privacy::Privacy<'_> {
        crate::privacy::Privacy {
            db: &self.db,
            writer: &self.writer,
            ledger: &self.ledger,
            audit: &self.audit,
            grants: &self.grant_store,
            vault: &self.vault,
            actor: self.actor(),
        }
    }

    /// Identity checks by the calling agent in this request.
    pub fn verification(&self) -> crate::customers::verification::Verification<'_> {
        crate::customers::verification::Verification {
            db: &self.db,
            policy: &self.policy,
            vault: &self.vault,
            audit: &self.audit,
            limiter: &self.limiter,
            agent: &self.agent,
            actor: self.actor(),
            checks_per_hour: self.settings.identity_checks_per_hour,
        }
    }

    /// The ticket workflow for the calling agent in this request.
    pub fn tickets(&self) -> crate::tickets::workflow::Tickets<'_> {
        crate::tickets::workflow::Tickets {
            db: &self.db,
            vault: &self.vault,
            writer: &self.writer,
            policy: &self.policy,
            grants: &self.grant_store,
            agent: &self.agent,
            actor: self.actor(),
            claim: self.idempotency.as_deref(),
        }
    }

    /// Agent administration by the caller (an admin UI).
    pub fn admin(&self) -> crate::admin::AgentAdmin<'_> {
        crate::admin::AgentAdmin {
            db: &self.db,
            writer: &self.writer,
            policy: &self.policy,
            grants: &self.grant_store,
            invalidations: &self.invalidations,
            agent: &self.agent,
            actor: self.actor(),
            claim: self.idempotency.as_deref(),
        }
    }

    /// Intake (customers, tickets, messages, documents from the channels) by the caller.
    pub fn intake(&self) -> crate::intake::Intake<'_> {
        crate::intake::Intake {
            db: &self.db,
            writer: &self.writer,
            policy: &self.policy,
            vault: &self.vault,
            agent: &self.agent,
            actor: self.actor(),
            claim: self.idempotency.as_deref(),
            max_document_bytes: self.settings.max_document_bytes,
            deferred_audit: None,
        }
    }

    /// The reveal workflow for the calling agent in this request.
    pub fn reveals(&self) -> crate::reveal::workflow::Reveals<'_> {
        crate::reveal::workflow::Reveals {
            db: &self.db,
            writer: &self.writer,
            policy: &self.policy,
            store: &self.grant_store,
            audit: &self.audit,
            limiter: &self.limiter,
            agent: &self.agent,
            actor: self.actor(),
            claim: self.idempotency.as_deref(),
            max_grant: self.settings.max_grant,
            reveals_per_hour: self.settings.reveals_per_hour,
        }
    }

    /// The request context; the HTTP handler always attaches one before executing.
    pub fn get<'a>(ctx: &'a Context<'_>) -> &'a RequestContext {
        ctx.data_unchecked::<RequestContext>()
    }
}
