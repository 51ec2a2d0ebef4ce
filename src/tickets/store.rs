//! Ticket queries, always filtered by the policy's visibility scopes in SQL.

use entity::{customer, ticket};
use sea_orm::{
    ColumnTrait, Condition, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};

use crate::agents::Agent;
use crate::error::ApiResult;
use crate::policy::TicketScope;

/// The SQL condition selecting the tickets `agent` may see under `scopes`; `None` when they
/// may see none (so callers skip the query).
pub fn visibility(agent: &Agent, scopes: &[TicketScope]) -> Option<Condition> {
    let mut any = Condition::any();
    let mut empty = true;
    for scope in scopes {
        let condition = match scope {
            TicketScope::Assigned => Condition::all().add(ticket::Column::AssigneeId.eq(agent.id)),
            TicketScope::Queue if agent.queues.is_empty() => continue,
            TicketScope::Queue => Condition::all()
                .add(ticket::Column::AssigneeId.is_null())
                .add(ticket::Column::Topic.is_in(agent.queues.iter().cloned())),
            TicketScope::Team => Condition::all().add(ticket::Column::Team.eq(agent.team.clone())),
        };
        any = any.add(condition);
        empty = false;
    }
    (!empty).then_some(any)
}

/// The ticket `id` if it exists and `agent` may see it; `None` either way otherwise.
pub async fn find_visible(
    db: &DatabaseConnection,
    agent: &Agent,
    scopes: &[TicketScope],
    id: i32,
) -> ApiResult<Option<ticket::Model>> {
    let Some(visible) = visibility(agent, scopes) else {
        return Ok(None);
    };
    Ok(ticket::Entity::find_by_id(id)
        .filter(visible)
        .one(db)
        .await?)
}

/// Filters of the ticket list.
#[derive(Clone, Debug, Default)]
pub struct TicketFilter {
    /// Only tickets with this status (as stored).
    pub status: Option<String>,
    /// Only tickets of this topic.
    pub topic: Option<String>,
}

/// Up to `limit` visible tickets with id greater than `after`, ordered by id, each with its
/// customer's row (joined: one statement for the page and its customers).
pub async fn page(
    db: &DatabaseConnection,
    agent: &Agent,
    scopes: &[TicketScope],
    filter: &TicketFilter,
    after: Option<i32>,
    limit: u64,
) -> ApiResult<Vec<(ticket::Model, Option<customer::Model>)>> {
    let Some(visible) = visibility(agent, scopes) else {
        return Ok(Vec::new());
    };
    let mut query = ticket::Entity::find()
        .find_also_related(customer::Entity)
        .filter(visible);
    if let Some(status) = &filter.status {
        query = query.filter(ticket::Column::Status.eq(status.clone()));
    }
    if let Some(topic) = &filter.topic {
        query = query.filter(ticket::Column::Topic.eq(topic.clone()));
    }
    if let Some(after) = after {
        query = query.filter(ticket::Column::Id.gt(after));
    }
    Ok(query
        .order_by_asc(ticket::Column::Id)
        .limit(limit)
        .all(db)
        .await?)
}
