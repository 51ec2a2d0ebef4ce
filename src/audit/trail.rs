//! Reading the audit trail: a page of the events an agent's audit scopes allow, filtered,
//! newest first; and the per-customer access report. Filtering happens in SQL, inside the
//! scope, so no filter or cursor reaches past it.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use entity::{agent, audit_event, customer, ticket};
use sea_orm::{
    ColumnTrait, Condition, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};

use super::Action;
use crate::error::{ApiError, ApiResult};
use crate::ids::{CustomerId, TicketId};
use crate::vocabulary::AuditScope;

/// The SQL condition selecting the events an agent may read under the policy's audit
/// scopes; `None` when they may read none. `team` takes the ticket's team as it is now;
/// events naming no ticket are only in `all` (or `own`, for the agent who acted).
pub fn readable(scopes: &[AuditScope], agent_id: i32, team: &str) -> Option<Condition> {
    if scopes.contains(&AuditScope::All) {
        return Some(Condition::all());
    }
    let mut any = Condition::any();
    for scope in scopes {
        any = match scope {
            AuditScope::Own => any.add(audit_event::Column::ActorAgentId.eq(agent_id)),
            AuditScope::Team => {
                let tickets = sea_orm::sea_query::Query::select()
                    .column(ticket::Column::Id)
                    .from(ticket::Entity)
                    .and_where(ticket::Column::Team.eq(team))
                    .to_owned();
                any.add(audit_event::Column::TicketId.in_subquery(tickets))
            }
            AuditScope::All => any,
        };
    }
    (!scopes.is_empty()).then_some(any)
}

/// Filters of a page; all given ones must match.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// Events about this customer.
    pub customer: Option<CustomerId>,
    /// Events on this ticket.
    pub ticket: Option<TicketId>,
    /// Events by the agent with this handle (shape already checked; unknown matches none).
    pub actor: Option<String>,
    /// Events of this kind.
    pub action: Option<Action>,
    /// Events at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Events before this time.
    pub until: Option<DateTime<Utc>>,
}

/// Which events a page reads, and from which end of the newest-first list.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Range {
    /// Only events older than this one (after it in the list).
    pub older_than: Option<i32>,
    /// Only events newer than this one (before it in the list).
    pub newer_than: Option<i32>,
    /// Read from the oldest end (a backward page); otherwise from the newest.
    pub from_the_end: bool,
}

/// Up to `limit` events of `readable` (see [`readable`]) matching `filter` in `range`,
/// nearest the range's start first: newest first, or oldest first when reading from the
/// end.
pub async fn page(
    db: &DatabaseConnection,
    readable: Condition,
    filter: &Filter,
    range: Range,
    limit: u64,
) -> ApiResult<Vec<audit_event::Model>> {
    let mut query = audit_event::Entity::find().filter(readable);
    if let Some(seq) = range.older_than {
        query = query.filter(audit_event::Column::Seq.lt(seq));
    }
    if let Some(seq) = range.newer_than {
        query = query.filter(audit_event::Column::Seq.gt(seq));
    }
    if let Some(id) = filter.customer {
        query = query.filter(audit_event::Column::CustomerId.eq(id.get()));
    }
    if let Some(id) = filter.ticket {
        query = query.filter(audit_event::Column::TicketId.eq(id.get()));
    }
    if let Some(action) = filter.action {
        query = query.filter(audit_event::Column::Action.eq(action.as_str()));
    }
    if let Some(since) = filter.since {
        query = query.filter(audit_event::Column::OccurredAt.gte(since));
    }
    if let Some(until) = filter.until {
        query = query.filter(audit_event::Column::OccurredAt.lt(until));
    }
    if let Some(handle) = &filter.actor {
        let actor = agent::Entity::find()
            .filter(agent::Column::Handle.eq(handle.as_str()))
            .one(db)
            .await?;
        // An unknown handle matches nothing, like any other filter.
        query = query.filter(audit_event::Column::ActorAgentId.eq(actor.map_or(-1, |a| a.id)));
    }
    let order = if range.from_the_end {
        sea_orm::Order::Asc
    } else {
        sea_orm::Order::Desc
    };
    Ok(query
        .order_by(audit_event::Column::Seq, order)
        .limit(limit)
        .all(db)
        .await?)
}

/// One recorded access to a customer's data, as the customer may be told about it.
#[derive(Clone, Debug)]
pub struct ReportEntry {
    /// When.
    pub at: DateTime<Utc>,
    /// What happened.
    pub action: Action,
    /// The ticket: the purpose.
    pub ticket_id: Option<i32>,
    /// The ticket's topic (none if the ticket is gone).
    pub purpose: Option<String>,
    /// The agent's role.
    pub role: String,
    /// The agent's handle, only when agents are named.
    pub agent: Option<String>,
    /// The fields concerned.
    pub fields: Vec<String>,
}

/// Every recorded access to `customer`'s data, oldest first; agents named only if
/// `name_agents`. An unknown customer is `NOT_FOUND`.
pub async fn access_report(
    db: &DatabaseConnection,
    customer: CustomerId,
    name_agents: bool,
) -> ApiResult<Vec<ReportEntry>> {
    let id = customer.get();
    if customer::Entity::find_by_id(id).one(db).await?.is_none() {
        return Err(ApiError::NotFound);
    }
    let rows = audit_event::Entity::find()
        .filter(audit_event::Column::CustomerId.eq(id))
        .order_by_asc(audit_event::Column::Seq)
        .all(db)
        .await?;
    let topics: HashMap<i32, String> = ticket::Entity::find()
        .filter(ticket::Column::CustomerId.eq(id))
        .all(db)
        .await?
        .into_iter()
        .map(|t| (t.id, t.topic))
        .collect();
    let handles: HashMap<i32, String> = if name_agents {
        agent::Entity::find()
            .all(db)
            .await?
            .into_iter()
            .map(|a| (a.id, a.handle))
            .collect()
    } else {
        HashMap::new()
    };
    let mut entries = Vec::with_capacity(rows.len());
    for row in rows {
        let Some(action) = Action::parse(&row.action) else {
            continue;
        };
        entries.push(ReportEntry {
            at: row.occurred_at,
            action,
            ticket_id: row.ticket_id,
            purpose: row.ticket_id.and_then(|t| topics.get(&t).cloned()),
            role: row.actor_role,
            agent: row.actor_agent_id.and_then(|a| handles.get(&a).cloned()),
            fields: serde_json::from_str(&row.fields)
                .map_err(|e| ApiError::internal(e, "reading audit fields"))?,
        });
    }
    Ok(entries)
}
