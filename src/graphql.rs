//! The GraphQL schema: one merged query root per feature, built apart from the transport.

use std::sync::Arc;

use async_graphql::{Context, EmptySubscription, MergedObject, Schema};
use sea_orm::DatabaseConnection;

use crate::agents::graphql::AgentQuery;
use crate::agents::Agent;
use crate::audit::graphql::AuditQuery;
use crate::audit::AuditLog;
use crate::consent::graphql::ConsentMutation;
use crate::customers::privacy::{PrivacyMutation, PrivacyQuery};
use crate::customers::verification::VerificationMutation;
use crate::limits::QueryLimits;
use crate::loaders::Loaders;
use crate::policy::PolicySet;
use crate::reveal::graphql::{RevealMutation, RevealQuery};
use crate::reveal::store::GrantStore;
use crate::reveal::RequestGrants;
use crate::telemetry::RequestId;
use crate::tickets::graphql::{ContactLookupQuery, TicketMutation, TicketQuery};
use crate::vocabulary::Permission;

/// The query root.
#[derive(MergedObject, Default)]
pub struct Query(
    AgentQuery,
    TicketQuery,
    ContactLookupQuery,
    RevealQuery,
    AuditQuery,
    PrivacyQuery,
);

/// The mutation root.
#[derive(MergedObject, Default)]
pub struct Mutation(
    RevealMutation,
    TicketMutation,
    ConsentMutation,
    VerificationMutation,
    PrivacyMutation,
);

/// needtoknow's schema.
pub type AppSchema = Schema<Query, Mutation, EmptySubscription>;

/// Builds the schema with default limits, introspection on (what `needtoknow schema`
/// prints).
pub fn build_schema() -> AppSchema {
    build_schema_with(&QueryLimits::default(), true)
}

/// Builds the schema with `limits`; without `introspection`, introspection queries and
/// field suggestions in error messages are off (production).
pub fn build_schema_with(limits: &QueryLimits, introspection: bool) -> AppSchema {
    let builder = Schema::build(Query::default(), Mutation::default(), EmptySubscription)
        .limit_depth(limits.depth)
        .limit_complexity(limits.complexity)
        .limit_recursive_depth(limits.recursion)
        .limit_directives(limits.directives);
    if introspection {
        builder.finish()
    } else {
        builder
            .disable_introspection()
            .disable_suggestions()
            .finish()
    }
}

/// `agent` acting in request `request_id` under `policy`, for audit events.
pub fn actor(agent: &Agent, request_id: &RequestId, policy: &PolicySet) -> crate::audit::Actor {
    crate::audit::Actor {
        agent_id: Some(agent.id),
        role: agent.role.clone(),
        request_id: request_id.0.clone(),
        policy_version: Some(policy.version().to_owned()),
    }
}

/// Everything a resolver may use for one request: who asks, with which policy snapshot.
pub struct RequestContext {
    /// The authenticated agent.
    pub agent: Agent,
    /// The request's id, for logs and audit events.
    pub request_id: RequestId,
    /// The policy set this request is evaluated against, fixed for the whole request.
    pub policy: Arc<PolicySet>,
    /// The database.
    pub db: DatabaseConnection,
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
}

impl RequestContext {
    /// Whether the policy grants the calling agent `permission` on `ticket`
    /// (`allow(agent, action, ticket)`).
    pub fn may(&self, permission: Permission, ticket: &entity::ticket::Model) -> bool {
        let facts = crate::tickets::facts(&self.agent, ticket);
        self.policy
            .authorize(&self.agent.facts(), permission, Some(&facts))
    }

    /// Whether the policy grants the calling agent `permission` on a named resource
    /// (`allow(agent, action, "resource")`).
    pub fn allowed(&self, permission: Permission) -> bool {
        self.policy.authorize(&self.agent.facts(), permission, None)
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
        actor(&self.agent, &self.request_id, &self.policy)
    }

    /// The data key of a customer, through the request's batched loader.
    pub async fn data_key(
        &self,
        customer_id: i32,
    ) -> crate::error::ApiResult<crate::crypto::vault::DataKey> {
        self.loaders
            .data_keys
            .load_one(customer_id)
            .await
            .map_err(crate::loaders::load_error)?
            .ok_or_else(|| {
                crate::error::ApiError::internal(
                    anyhow::anyhow!("customer without data key"),
                    "loading keys",
                )
            })
    }

    /// The request context; the HTTP handler always attaches one before executing.
    pub fn get<'a>(ctx: &'a Context<'_>) -> &'a RequestContext {
        ctx.data_unchecked::<RequestContext>()
    }
}
