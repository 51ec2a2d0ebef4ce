//! Ticket queries, always filtered by the policy's visibility scopes in SQL.

use entity::{agent, customer, ticket};
use sea_orm::sea_query::SelectStatement;
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseBackend, DatabaseConnection, DbErr,
    EntityTrait, FromQueryResult, JoinType, QueryFilter, QueryOrder, QueryResult, QuerySelect,
    QueryTrait, SelectTwo, Statement,
};

use crate::agents::Agent;
use crate::error::ApiResult;
use crate::policy::TicketScope;
use crate::rows::{column, Positional, TicketSummaryRow};

/// A visible ticket as one statement reads it: the ticket, its customer and the names of
/// its assignee (joined, so that showing a ticket's assignee costs no statement of its
/// own).
#[derive(Clone, Debug)]
pub struct Joined {
    /// The ticket.
    pub ticket: ticket::Model,
    /// Its customer's row (none only for a customer row that is gone).
    pub customer: Option<customer::Model>,
    /// Its assignee's handle and display name, if it has one.
    pub assignee: Option<(String, String)>,
}

/// The columns of [`with_customer_and_assignee`] in order: the ticket's, the customer's,
/// then the assignee's handle and display name.
impl FromQueryResult for Joined {
    fn from_query_result(row: &QueryResult, _prefix: &str) -> Result<Self, DbErr> {
        let ticket = ticket::Model::from_columns(row, 0)?;
        let at = ticket::Model::FIELDS.len();
        let customer = match column::<Option<i32>>(row, at)? {
            Some(_) => Some(customer::Model::from_columns(row, at)?),
            None => None,
        };
        let at = at + customer::Model::FIELDS.len();
        let handle: Option<String> = column(row, at)?;
        let display_name: Option<String> = column(row, at + 1)?;
        Ok(Joined {
            ticket,
            customer,
            assignee: handle.zip(display_name),
        })
    }
}

/// `select` (tickets with their customers) with the assignee's names joined, read as
/// [`Joined`] rows.
async fn with_customer_and_assignee(
    db: &DatabaseConnection,
    select: SelectTwo<ticket::Entity, customer::Entity>,
) -> Result<Vec<Joined>, DbErr> {
    let assignee = ticket::Entity::belongs_to(agent::Entity)
        .from(ticket::Column::AssigneeId)
        .to(agent::Column::Id)
        .into();
    let select = select
        .join(JoinType::LeftJoin, assignee)
        .column_as(agent::Column::Handle, "C_handle")
        .column_as(agent::Column::DisplayName, "C_display_name");
    let statement = with_literal_limits(select.as_query(), db.get_database_backend());
    Joined::find_by_statement(statement).all(db).await
}

/// `select` as a statement whose `LIMIT`s are written into its text, every other value
/// bound as a parameter.
///
/// PostgreSQL plans a prepared statement's `LIMIT $n` as if it kept a tenth of the rows,
/// so the generic plan of a page (whose ids come from a `LIMIT`ed subquery per scope)
/// always looks dearer than a plan made for the values at hand, and the page was planned
/// again on every execution: half a millisecond of the server's CPU per page, as much as
/// running it. With the limit in the text the generic plan is costed right and reused.
/// The text varies only with the page size, so the prepared statements stay few. Only
/// the limits are `u64` values in these statements (ids are `i32`, names strings), and a
/// number written as digits cannot change the statement's meaning.
fn with_literal_limits(select: &SelectStatement, backend: DatabaseBackend) -> Statement {
    use sea_orm::sea_query::{
        MysqlQueryBuilder, PostgresQueryBuilder, QueryBuilder, SqlWriter, SqlWriterValues,
        SqliteQueryBuilder, Value,
    };
    /// Writes `u64` values as digits and binds everything else.
    struct Writer(SqlWriterValues);
    impl std::fmt::Write for Writer {
        fn write_str(&mut self, s: &str) -> std::fmt::Result {
            self.0.write_str(s)
        }
    }
    impl std::fmt::Display for Writer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            self.0.fmt(f)
        }
    }
    impl SqlWriter for Writer {
        fn push_param<T: QueryBuilder>(&mut self, value: Value, query_builder: &T) {
            match value {
                Value::BigUnsigned(Some(n)) => {
                    let _ = std::fmt::Write::write_fmt(&mut self.0, format_args!("{n}"));
                }
                value => self.0.push_param(value, query_builder),
            }
        }
        fn as_writer(&mut self) -> &mut dyn std::fmt::Write {
            self as _
        }
    }
    fn build(select: &SelectStatement, builder: &impl QueryBuilder) -> (String, Vec<Value>) {
        let (placeholder, numbered) = builder.placeholder();
        let mut writer = Writer(SqlWriterValues::new(placeholder, numbered));
        select.build_collect_any_into(builder, &mut writer);
        let (sql, values) = writer.0.into_parts();
        (sql, values.0)
    }
    let (sql, values) = match backend {
        DatabaseBackend::Postgres => build(select, &PostgresQueryBuilder),
        DatabaseBackend::Sqlite => build(select, &SqliteQueryBuilder),
        _ => build(select, &MysqlQueryBuilder),
    };
    Statement::from_sql_and_values(backend, sql, values)
}

/// The SQL condition selecting the tickets `agent` may see under `scopes`; `None` when they
/// may see none (so callers skip the query).
pub fn visibility(agent: &Agent, scopes: &[TicketScope]) -> Option<Condition> {
    let parts = visibility_parts(agent, scopes);
    (!parts.is_empty()).then(|| parts.into_iter().fold(Condition::any(), Condition::add))
}

/// The ticket `id` with its customer's row and its assignee's names (joined, one
/// statement) if it exists and `agent` may see it; `None` either way otherwise.
pub async fn find_visible(
    db: &DatabaseConnection,
    agent: &Agent,
    scopes: &[TicketScope],
    id: i32,
) -> ApiResult<Option<Joined>> {
    let Some(visible) = visibility(agent, scopes) else {
        return Ok(None);
    };
    let select = ticket::Entity::find_by_id(id)
        .find_also_related(customer::Entity)
        .filter(visible)
        .limit(1);
    Ok(with_customer_and_assignee(db, select).await?.pop())
}

/// [`find_visible`] together with all of the ticket's customer's tickets (this one among
/// them, oldest first), in one statement: what showing one ticket with its customer's
/// other tickets needs, without a second round trip. Every row is one of the customer's
/// tickets; the customer's columns and the assignee's names are filled on the row of the
/// ticket asked for only, so the customer's sealed fields cross the wire once.
pub async fn find_visible_with_customer_tickets(
    db: &DatabaseConnection,
    agent: &Agent,
    scopes: &[TicketScope],
    id: i32,
) -> ApiResult<Option<(Joined, Vec<TicketSummaryRow>)>> {
    use sea_orm::sea_query::{Alias, Expr, ExprTrait, Order, Query};
    use sea_orm::Iterable;
    let Some(visible) = visibility(agent, scopes) else {
        return Ok(None);
    };
    // `tickets` is the ticket asked for (the visibility condition names its columns);
    // `o` ranges over its customer's tickets.
    let other = Alias::new("o");
    // A join that fills its columns on the ticket's own row only.
    let on_this_row = |key: Expr| {
        Condition::all().add(key).add(
            Expr::col((other.clone(), ticket::Column::Id))
                .equals((ticket::Entity, ticket::Column::Id)),
        )
    };
    let mut select = Query::select();
    select.columns(ticket::Column::iter().map(|c| (other.clone(), c)));
    select.columns(customer::Column::iter().map(|c| (customer::Entity, c)));
    select.columns([
        (agent::Entity, agent::Column::Handle),
        (agent::Entity, agent::Column::DisplayName),
    ]);
    select
        .from(ticket::Entity)
        .join_as(
            JoinType::InnerJoin,
            ticket::Entity,
            other.clone(),
            Expr::col((other.clone(), ticket::Column::CustomerId))
                .equals((ticket::Entity, ticket::Column::CustomerId)),
        )
        .join(
            JoinType::LeftJoin,
            customer::Entity,
            on_this_row(
                Expr::col((customer::Entity, customer::Column::Id))
                    .equals((ticket::Entity, ticket::Column::CustomerId)),
            ),
        )
        .join(
            JoinType::LeftJoin,
            agent::Entity,
            on_this_row(
                Expr::col((agent::Entity, agent::Column::Id))
                    .equals((ticket::Entity, ticket::Column::AssigneeId)),
            ),
        )
        .and_where(Expr::col((ticket::Entity, ticket::Column::Id)).eq(id))
        .cond_where(visible)
        .order_by((other, ticket::Column::Id), Order::Asc);
    let statement = db.get_database_backend().build(&select);
    let rows = db.query_all_raw(statement).await?;
    let mut this = None;
    let mut tickets = Vec::with_capacity(rows.len());
    // Each row's id is read first, so that the ticket's own row is decoded whole, once.
    let id_at = ticket::Column::iter()
        .position(|c| matches!(c, ticket::Column::Id))
        .expect("the tickets entity has an id column");
    for row in &rows {
        if column::<i32>(row, id_at)? == id {
            let joined = Joined::from_query_result(row, "")?;
            tickets.push(joined.ticket.clone().into());
            this = Some(joined);
        } else {
            tickets.push(ticket::Model::from_columns(row, 0)?.into());
        }
    }
    Ok(this.map(|this| (this, tickets)))
}

/// Filters of the ticket list.
#[derive(Clone, Debug, Default)]
pub struct TicketFilter {
    /// Only tickets with this status (as stored).
    pub status: Option<String>,
    /// Only tickets of this topic.
    pub topic: Option<String>,
}

/// The visibility condition split into parts that each select tickets through one index in
/// id order: one per scope, and one per queue topic.
fn visibility_parts(agent: &Agent, scopes: &[TicketScope]) -> Vec<Condition> {
    let mut parts = Vec::new();
    for scope in scopes {
        match scope {
            TicketScope::Assigned => {
                parts.push(Condition::all().add(ticket::Column::AssigneeId.eq(agent.id)));
            }
            TicketScope::Queue => {
                for topic in &agent.queues {
                    parts.push(
                        Condition::all()
                            .add(ticket::Column::Topic.eq(topic.clone()))
                            .add(ticket::Column::AssigneeId.is_null()),
                    );
                }
            }
            TicketScope::Team => {
                parts.push(Condition::all().add(ticket::Column::Team.eq(agent.team.clone())));
            }
        }
    }
    parts
}

/// Which ids a page reads, and from which end.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Range {
    /// Only ids greater than this.
    pub after: Option<i32>,
    /// Only ids smaller than this.
    pub before: Option<i32>,
    /// Read from the highest id down (a backward page); otherwise from the lowest up.
    pub from_the_end: bool,
}

/// Up to `limit` visible tickets in `range`, ordered by id from the range's start (or its
/// end, reading backward), each with its customer's row and assignee's names (joined: one
/// statement for the page, its customers and assignees).
///
/// The scopes are OR-ed, and a database answering `a OR b ORDER BY id LIMIT n` through two
/// indexes must sort every matching ticket first: a page got slower as the table grew. So
/// each part picks its first `limit` ids through its own index, already in id order, and
/// the page is the first `limit` of their union: the work is bounded by the page size.
pub async fn page(
    db: &DatabaseConnection,
    agent: &Agent,
    scopes: &[TicketScope],
    filter: &TicketFilter,
    range: Range,
    limit: u64,
) -> ApiResult<Vec<Joined>> {
    use sea_orm::sea_query::{Alias, Asterisk, Expr, ExprTrait, Order, Query, UnionType};
    let order = if range.from_the_end {
        Order::Desc
    } else {
        Order::Asc
    };
    let mut union: Option<sea_orm::sea_query::SelectStatement> = None;
    for (n, part) in visibility_parts(agent, scopes).into_iter().enumerate() {
        let mut first = Query::select();
        first
            .column(ticket::Column::Id)
            .from(ticket::Entity)
            .cond_where(part)
            .order_by(ticket::Column::Id, order.clone())
            .limit(limit);
        if let Some(status) = &filter.status {
            first.and_where(ticket::Column::Status.eq(status.clone()));
        }
        if let Some(topic) = &filter.topic {
            first.and_where(ticket::Column::Topic.eq(topic.clone()));
        }
        if let Some(after) = range.after {
            first.and_where(ticket::Column::Id.gt(after));
        }
        if let Some(before) = range.before {
            first.and_where(ticket::Column::Id.lt(before));
        }
        // A derived table, since SQLite takes no ORDER BY or LIMIT in a compound member.
        let wrapped = Query::select()
            .column(Asterisk)
            .from_subquery(first, Alias::new(format!("part{n}")))
            .to_owned();
        union = Some(match union {
            None => wrapped,
            Some(mut union) => {
                union.union(UnionType::Distinct, wrapped);
                union
            }
        });
    }
    // No scope: the agent sees no ticket.
    let Some(mut ids) = union else {
        return Ok(Vec::new());
    };
    // The page's ids, cut to the page before the join: so the planner knows that at most
    // `limit` tickets are joined whatever the parameters, and PostgreSQL's generic plan,
    // made without the agent's id, costs the same as one made for it and is kept.
    ids.order_by(Alias::new("id"), order.clone()).limit(limit);
    let select = ticket::Entity::find()
        .find_also_related(customer::Entity)
        .filter(Expr::col((ticket::Entity, ticket::Column::Id)).in_subquery(ids))
        .order_by(ticket::Column::Id, order)
        .limit(limit);
    Ok(with_customer_and_assignee(db, select).await?)
}
