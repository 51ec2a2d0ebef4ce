//! `auditEvents`: reading the trail, for the roles the policy allows.

use super::pages::{Page, Window};
use async_graphql::{Context, InputObject, Object, SimpleObject, ID};
use chrono::{DateTime, Utc};

use crate::audit::{trail, Action};
use crate::error::{ApiError, ApiResult};
use crate::ids::{CustomerId, TicketId};
use crate::request::RequestContext;

/// An event of the audit trail. It never holds a personal value.
#[derive(SimpleObject)]
pub struct AuditEvent {
    /// Position in the chain.
    pub seq: i32,
    /// When it happened.
    pub occurred_at: DateTime<Utc>,
    /// Id of the agent who acted.
    pub actor_agent_id: Option<ID>,
    /// Their role at the time.
    pub actor_role: String,
    /// What happened.
    pub action: Action,
    /// The customer concerned.
    pub customer_id: Option<ID>,
    /// The ticket: the purpose of the access.
    pub ticket_id: Option<ID>,
    /// Field names concerned.
    pub fields: Vec<String>,
    /// The reason the agent gave, if any.
    pub reason: Option<String>,
    /// The request that caused it (as in the `x-request-id` header and the logs).
    pub request_id: String,
    /// The version of the policy in force (as `/readyz` shows it); null for events written
    /// without a policy (CLI, retention) or before versions were recorded.
    pub policy_version: Option<String>,
}

/// Filters of `auditEvents`; all given ones must match.
#[derive(InputObject, Default)]
pub struct AuditFilter {
    /// Only events about this customer.
    pub customer_id: Option<ID>,
    /// Only events on this ticket.
    pub ticket_id: Option<ID>,
    /// Only events by the agent with this handle.
    pub actor: Option<String>,
    /// Only events of this kind.
    pub action: Option<Action>,
    /// Only events at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Only events before this time.
    pub until: Option<DateTime<Utc>>,
}

/// Audit queries.
#[derive(Default)]
pub struct AuditQuery;

/// The kind of `auditEvents`' cursors.
const CURSOR: &str = "audit";

fn optional_id(kind: &str, id: Option<i32>) -> Option<ID> {
    id.map(|i| super::gid(kind, i))
}

/// One access to a customer's data, as the customer may be told about it.
#[derive(SimpleObject)]
pub struct AccessReportEntry {
    /// When.
    pub at: DateTime<Utc>,
    /// What happened (a view of plaintext, a reveal, …).
    pub action: Action,
    /// The ticket: the purpose of the access.
    pub ticket_id: Option<ID>,
    /// The ticket's topic, as the purpose in words (null if the ticket is gone).
    pub purpose: Option<String>,
    /// The role of the agent.
    pub role: String,
    /// The agent's handle, only when the service is configured to name agents
    /// (`NEEDTOKNOW_REPORT_AGENT_IDENTITIES`).
    pub agent: Option<String>,
    /// The fields concerned.
    pub fields: Vec<String>,
}

/// Every recorded access to one customer's data, oldest first.
#[derive(SimpleObject)]
pub struct AccessReport {
    /// The customer.
    pub customer_id: ID,
    /// Whether `agent` is filled in.
    pub names_agents: bool,
    /// The accesses.
    pub entries: Vec<AccessReportEntry>,
}

#[Object]
impl AuditQuery {
    /// Who accessed a customer's data, when and for which purpose: for the privacy officer
    /// (roles the policy allows: `allow(agent, "read", "access_report")`). Agents are named
    /// only if configured; otherwise the report gives their roles.
    async fn customer_access_report(
        &self,
        ctx: &Context<'_>,
        customer_id: ID,
    ) -> ApiResult<AccessReport> {
        let request = RequestContext::get(ctx);
        if !request.allowed(crate::vocabulary::Permission::ReadAccessReport) {
            return Err(ApiError::Forbidden(
                "your role may not read access reports".into(),
            ));
        }
        let id = CustomerId::parse(&customer_id, "customerId")?;
        let names = request.settings.report_agent_identities;
        let entries = trail::access_report(&request.db, id, names)
            .await?
            .into_iter()
            .map(|e| AccessReportEntry {
                at: e.at,
                action: e.action,
                ticket_id: optional_id("Ticket", e.ticket_id),
                purpose: e.purpose,
                role: e.role,
                agent: e.agent,
                fields: e.fields,
            })
            .collect();
        Ok(AccessReport {
            customer_id,
            names_agents: names,
            entries,
        })
    }

    /// The audit trail, newest first: the events the policy's `audit_scope` lets the
    /// caller read (`own`: events they acted in; `team`: events about their team's tickets;
    /// `all`: every event, including those naming no ticket). Every filter and cursor works
    /// inside that scope. Roles with no scope get `FORBIDDEN`.
    #[graphql(complexity = "first.unwrap_or(20).clamp(1, 100) as usize * child_complexity")]
    async fn audit_events(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Page size, 1-100 (default 20).")] first: Option<i32>,
        #[graphql(desc = "Cursor of the last edge of the previous page.")] after: Option<String>,
        #[graphql(desc = "Page size reading backward (toward newer events), 1-100.")] last: Option<
            i32,
        >,
        #[graphql(desc = "Cursor of the first edge of the next page.")] before: Option<String>,
        filter: Option<AuditFilter>,
    ) -> ApiResult<Page<AuditEvent>> {
        let request = RequestContext::get(ctx);
        let scopes = request.policy.audit_scopes(&request.agent_facts);
        let Some(readable) = trail::readable(&scopes, request.agent.id, &request.agent.team) else {
            return Err(ApiError::Forbidden(
                "your role may not read the audit trail".into(),
            ));
        };
        let window = Window::parse(CURSOR, first, after, last, before, 20, 100)?;
        let (older_than, newer_than) = window.numbers("auditEvents")?;
        let range = trail::Range {
            older_than,
            newer_than,
            from_the_end: window.backward(),
        };
        let filter = filter.unwrap_or_default();
        if let Some(handle) = &filter.actor {
            if !crate::agents::is_handle(handle) {
                return Err(ApiError::BadUserInput(
                    "`actor` must be an agent handle (lower-case letters, digits, '.', '_', '-')"
                        .into(),
                ));
            }
        }
        let filter = trail::Filter {
            customer: filter
                .customer_id
                .as_ref()
                .map(|id| CustomerId::parse(id, "customerId"))
                .transpose()?,
            ticket: filter
                .ticket_id
                .as_ref()
                .map(|id| TicketId::parse(id, "ticketId"))
                .transpose()?,
            actor: filter.actor,
            action: filter.action,
            since: filter.since,
            until: filter.until,
        };
        let rows = trail::page(&request.db, readable, &filter, range, window.limit()).await?;
        let mut events = Vec::with_capacity(rows.len());
        for row in rows {
            let action = Action::parse(&row.action).ok_or_else(|| {
                ApiError::internal(
                    anyhow::anyhow!("unknown audit action"),
                    "reading the audit trail",
                )
            })?;
            let fields: Vec<String> = serde_json::from_str(&row.fields)
                .map_err(|e| ApiError::internal(e, "reading audit fields"))?;
            events.push((
                row.seq.to_string(),
                AuditEvent {
                    seq: row.seq,
                    occurred_at: row.occurred_at,
                    actor_agent_id: optional_id("Agent", row.actor_agent_id),
                    actor_role: row.actor_role,
                    action,
                    customer_id: optional_id("Customer", row.customer_id),
                    ticket_id: optional_id("Ticket", row.ticket_id),
                    fields,
                    reason: row.reason,
                    request_id: row.request_id,
                    policy_version: row.policy_version,
                },
            ));
        }
        Ok(window.page(CURSOR, events))
    }
}
