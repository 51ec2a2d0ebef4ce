//! `auditEvents`: reading the trail, for the roles the policy allows.

use async_graphql::connection::{Connection, Edge, EmptyFields};
use async_graphql::{Context, InputObject, Object, SimpleObject, ID};
use chrono::{DateTime, Utc};
use entity::{agent, audit_event};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use super::Action;
use crate::error::{ApiError, ApiResult};
use crate::graphql::RequestContext;

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
}

/// Audit queries.
#[derive(Default)]
pub struct AuditQuery;

fn parse_id(id: &ID, what: &str) -> ApiResult<i32> {
    id.parse::<i32>()
        .map_err(|_| ApiError::BadUserInput(format!("`{what}` is not an id")))
}

fn optional_id(id: Option<i32>) -> Option<ID> {
    id.map(|i| ID(i.to_string()))
}

#[Object]
impl AuditQuery {
    /// The audit trail, newest first. Only for roles the policy allows to read it
    /// (`allow(agent, "read", "audit_trail")`); others get `FORBIDDEN`.
    async fn audit_events(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Page size, 1-100 (default 20).")] first: Option<i32>,
        #[graphql(desc = "Cursor of the last edge of the previous page.")] after: Option<String>,
        filter: Option<AuditFilter>,
    ) -> ApiResult<Connection<String, AuditEvent, EmptyFields, EmptyFields>> {
        let request = RequestContext::get(ctx);
        if !request
            .policy
            .allows(&request.agent.facts(), "read", "audit_trail".to_owned())
        {
            return Err(ApiError::Forbidden(
                "your role may not read the audit trail".into(),
            ));
        }
        let first = first.unwrap_or(20);
        if !(1..=100).contains(&first) {
            return Err(ApiError::BadUserInput(
                "`first` must be between 1 and 100".into(),
            ));
        }
        let filter = filter.unwrap_or_default();
        let mut query = audit_event::Entity::find();
        if let Some(after) = &after {
            let seq: i32 = after
                .strip_prefix("audit:")
                .and_then(|n| n.parse().ok())
                .ok_or_else(|| {
                    ApiError::BadUserInput(
                        "`after` is not a cursor returned by `auditEvents`".into(),
                    )
                })?;
            query = query.filter(audit_event::Column::Seq.lt(seq));
        }
        if let Some(id) = &filter.customer_id {
            query = query.filter(audit_event::Column::CustomerId.eq(parse_id(id, "customerId")?));
        }
        if let Some(id) = &filter.ticket_id {
            query = query.filter(audit_event::Column::TicketId.eq(parse_id(id, "ticketId")?));
        }
        if let Some(action) = filter.action {
            query = query.filter(audit_event::Column::Action.eq(action.as_str()));
        }
        if let Some(handle) = &filter.actor {
            let actor = agent::Entity::find()
                .filter(agent::Column::Handle.eq(handle.as_str()))
                .one(&request.db)
                .await?;
            // An unknown handle matches nothing, like any other filter.
            query = query.filter(audit_event::Column::ActorAgentId.eq(actor.map_or(-1, |a| a.id)));
        }
        let limit = u64::try_from(first).unwrap_or(1) + 1;
        let mut rows = query
            .order_by_desc(audit_event::Column::Seq)
            .limit(limit)
            .all(&request.db)
            .await?;
        let has_next = rows.len() as u64 == limit;
        rows.truncate(first as usize);
        let mut connection = Connection::new(after.is_some(), has_next);
        for row in rows {
            let action = Action::parse(&row.action).ok_or_else(|| {
                ApiError::internal(
                    anyhow::anyhow!("unknown audit action"),
                    "reading the audit trail",
                )
            })?;
            let fields: Vec<String> = serde_json::from_str(&row.fields)
                .map_err(|e| ApiError::internal(e, "reading audit fields"))?;
            connection.edges.push(Edge::new(
                format!("audit:{}", row.seq),
                AuditEvent {
                    seq: row.seq,
                    occurred_at: row.occurred_at,
                    actor_agent_id: optional_id(row.actor_agent_id),
                    actor_role: row.actor_role,
                    action,
                    customer_id: optional_id(row.customer_id),
                    ticket_id: optional_id(row.ticket_id),
                    fields,
                    reason: row.reason,
                    request_id: row.request_id,
                },
            ));
        }
        Ok(connection)
    }
}
