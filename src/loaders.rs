//! Batched loads for every list edge of the schema, so a page of tickets costs a constant
//! number of SQL statements whatever its size. Loaders are created per request: nothing
//! loaded for one agent is ever served to another.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_graphql::dataloader::{DataLoader, Loader};
use entity::{agent, attachment, customer, invoice, message, payment_method, ticket};
use sea_orm::{
    ColumnTrait, DatabaseBackend, DatabaseConnection, DbErr, EntityTrait, FromQueryResult,
    IdenStatic, Iterable, ModelTrait, QueryFilter, QueryOrder, Statement,
};

use crate::audit::loader::ViewAuditor;
use crate::crypto::vault::{Opener, Vault};
use crate::error::ApiError;
use crate::rows::{Indexed, Positional};

/// Loads rows of `E` whose `column` is one of the keys.
pub struct Rows<E: EntityTrait> {
    db: DatabaseConnection,
    column: E::Column,
    order: E::Column,
    _entity: PhantomData<E>,
}

impl<E: EntityTrait> Rows<E>
where
    E::Model: Positional,
{
    fn new(db: &DatabaseConnection, column: E::Column, order: E::Column) -> Self {
        Rows {
            db: db.clone(),
            column,
            order,
            _entity: PhantomData,
        }
    }

    async fn fetch(&self, keys: &[i32]) -> Result<Vec<(i32, E::Model)>, Arc<DbErr>> {
        let rows = E::find()
            .filter(self.column.is_in(keys.iter().copied()))
            .order_by_asc(self.order)
            .into_model::<Indexed<E::Model>>()
            .all(&self.db)
            .await
            .map_err(Arc::new)?;
        Ok(rows
            .into_iter()
            .filter_map(|Indexed(row)| match row.get(self.column) {
                sea_orm::Value::Int(Some(key)) => Some((key, row)),
                _ => None,
            })
            .collect())
    }
}

/// One row per key (the key is unique, e.g. a primary key).
pub struct One<E: EntityTrait>(Rows<E>);

/// All rows per key (e.g. every invoice of a customer), in the order of the order column.
pub struct Many<E: EntityTrait>(Rows<E>);

impl<E> Loader<i32> for One<E>
where
    E: EntityTrait + Send + Sync,
    E::Model: Positional + Send + Sync + Clone,
    E::Column: Send + Sync,
{
    type Value = E::Model;
    type Error = Arc<DbErr>;

    async fn load(&self, keys: &[i32]) -> Result<HashMap<i32, E::Model>, Arc<DbErr>> {
        Ok(self.0.fetch(keys).await?.into_iter().collect())
    }
}

impl<E> Loader<i32> for Many<E>
where
    E: EntityTrait + Send + Sync,
    E::Model: Positional + Send + Sync + Clone,
    E::Column: Send + Sync,
{
    type Value = Arc<[E::Model]>;
    type Error = Arc<DbErr>;

    async fn load(&self, keys: &[i32]) -> Result<HashMap<i32, Arc<[E::Model]>>, Arc<DbErr>> {
        let mut grouped: HashMap<i32, Vec<E::Model>> = HashMap::new();
        for (key, row) in self.0.fetch(keys).await? {
            grouped.entry(key).or_default().push(row);
        }
        Ok(grouped.into_iter().map(|(k, v)| (k, v.into())).collect())
    }
}

/// A [`DataLoader`] whose batches wait until the request has stopped asking for keys.
///
/// Lists of more than 30 items are resolved through `FuturesOrdered`, which hands control
/// back to the runtime after every couple of items, so a batch that started at once (or
/// after a fixed delay) would catch only some of a level's keys, and a page's statements
/// would grow with its size. Every load of a request bumps one shared counter; a batch
/// task yields to the runtime until a whole round passes without a new load, which means
/// the request is waiting on its loads. No timer, so no added latency.
/// `tests/api/transport.rs` pins the result: a page's statements do not grow with its size.
pub struct Batched<T> {
    inner: DataLoader<T>,
    activity: Arc<AtomicU64>,
}

/// Bound on the rounds a batch waits (a list resolves two items per round).
const MAX_ROUNDS: usize = 10_000;

/// Most keys in one statement: a 200-ticket page asks for the messages of up to 2 000 other
/// tickets, and both SQLite (32 766) and PostgreSQL (65 535) bind far more parameters.
const MAX_BATCH: usize = 10_000;

impl<T: Send + Sync + 'static> Batched<T> {
    fn new(activity: &Arc<AtomicU64>, loader: T) -> Batched<T> {
        let seen = activity.clone();
        let inner = DataLoader::new(loader, move |batch| {
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut last = seen.load(Ordering::Relaxed);
                for _ in 0..MAX_ROUNDS {
                    tokio::task::yield_now().await;
                    let now = seen.load(Ordering::Relaxed);
                    if now == last {
                        break;
                    }
                    last = now;
                }
                batch.await
            })
        })
        .delay(Duration::ZERO)
        .max_batch_size(MAX_BATCH);
        Batched {
            inner,
            activity: activity.clone(),
        }
    }

    /// The value of one key.
    pub async fn load_one<K>(&self, key: K) -> Result<Option<T::Value>, T::Error>
    where
        K: Send + Sync + std::hash::Hash + Eq + Clone + 'static,
        T: Loader<K>,
    {
        self.activity.fetch_add(1, Ordering::Relaxed);
        self.inner.load_one(key).await
    }

    /// The values of several keys.
    pub async fn load_many<K, I>(&self, keys: I) -> Result<HashMap<K, T::Value>, T::Error>
    where
        K: Send + Sync + std::hash::Hash + Eq + Clone + 'static,
        I: IntoIterator<Item = K>,
        T: Loader<K>,
    {
        self.activity.fetch_add(1, Ordering::Relaxed);
        self.inner.load_many(keys).await
    }
}

/// The messages of all of a customer's tickets, by customer id, ordered by ticket and then
/// message: a customer's chat history in one statement, read beside their tickets instead
/// of after them (one round trip less for every page).
pub struct MessagesOfCustomer {
    db: DatabaseConnection,
}

impl Loader<i32> for MessagesOfCustomer {
    type Value = Arc<[message::Model]>;
    type Error = Arc<DbErr>;

    async fn load(&self, keys: &[i32]) -> Result<HashMap<i32, Arc<[message::Model]>>, Arc<DbErr>> {
        use sea_orm::{JoinType, QuerySelect};
        if keys.is_empty() {
            return Ok(HashMap::new());
        }
        let rows = if self.db.get_database_backend() == DatabaseBackend::Postgres {
            MessageOfCustomer::find_by_statement(messages_ticket_by_ticket(keys))
                .all(&self.db)
                .await
        } else {
            message::Entity::find()
                .join(JoinType::InnerJoin, message_ticket())
                .column_as(ticket::Column::CustomerId, "customer_id")
                .filter(ticket::Column::CustomerId.is_in(keys.iter().copied()))
                .into_model::<MessageOfCustomer>()
                .all(&self.db)
                .await
        }
        .map_err(Arc::new)?;
        let mut grouped: HashMap<i32, Vec<message::Model>> = HashMap::new();
        for row in rows {
            grouped
                .entry(row.customer_id)
                .or_default()
                .push(row.message);
        }
        // Ordered here rather than in SQL: sorting a page's 1 600 messages cost PostgreSQL
        // about 0.75 ms of CPU, sorting each customer's few dozen costs us a few µs.
        Ok(grouped
            .into_iter()
            .map(|(customer, mut messages)| {
                messages.sort_unstable_by_key(|m| (m.ticket_id, m.id));
                (customer, messages.into())
            })
            .collect())
    }
}

/// A message with its ticket's customer (selected after the message's columns).
struct MessageOfCustomer {
    message: message::Model,
    customer_id: i32,
}

impl FromQueryResult for MessageOfCustomer {
    fn from_query_result(row: &sea_orm::QueryResult, _prefix: &str) -> Result<Self, DbErr> {
        Ok(MessageOfCustomer {
            message: message::Model::from_columns(row, 0)?,
            customer_id: crate::rows::column(row, message::Model::FIELDS.len())?,
        })
    }
}

/// The messages of the customers `keys`, each followed by its ticket's customer id, on
/// PostgreSQL.
///
/// Asked to join the messages to the customers' tickets, PostgreSQL's planner reads every
/// message of every customer and hashes them against the tickets: for a page's 50
/// customers that is a scan of all 60 000 messages to keep 1 600 (11 ms of the server's
/// time per page, most of what a page cost PostgreSQL). A lateral subquery that cannot be
/// flattened (`OFFSET 0`) makes it look each ticket's messages up in their index instead
/// (4 ms). SQLite's planner already does so for the plain join.
fn messages_ticket_by_ticket(keys: &[i32]) -> Statement {
    let columns: Vec<String> = message::Column::iter()
        .map(|column| format!("m.\"{}\"", column.as_str()))
        .collect();
    let placeholders: Vec<String> = (1..=keys.len()).map(|n| format!("${n}")).collect();
    let sql = format!(
        "SELECT {}, t.\"customer_id\" FROM \"tickets\" t CROSS JOIN LATERAL \
         (SELECT * FROM \"messages\" WHERE \"messages\".\"ticket_id\" = t.\"id\" OFFSET 0) m \
         WHERE t.\"customer_id\" IN ({})",
        columns.join(", "),
        placeholders.join(", ")
    );
    Statement::from_sql_and_values(
        DatabaseBackend::Postgres,
        sql,
        keys.iter().map(|&key| sea_orm::Value::from(key)),
    )
}

/// A message's ticket, for the plain join of `MessagesOfCustomer` (the entities declare no
/// relations).
fn message_ticket() -> sea_orm::RelationDef {
    message::Entity::belongs_to(ticket::Entity)
        .from(message::Column::TicketId)
        .to(ticket::Column::Id)
        .into()
}

/// Unwrapped data keys by customer id (cached across requests by the vault).
pub struct DataKeys {
    db: DatabaseConnection,
    vault: Arc<Vault>,
}

impl Loader<i32> for DataKeys {
    type Value = Opener;
    type Error = Arc<anyhow::Error>;

    async fn load(&self, keys: &[i32]) -> Result<HashMap<i32, Opener>, Self::Error> {
        self.vault.openers(&self.db, keys).await.map_err(Arc::new)
    }
}

/// The loaders of one request.
pub struct Loaders {
    /// Agents by id.
    pub agent: Batched<One<agent::Entity>>,
    /// Customers by id.
    pub customer: Batched<One<customer::Entity>>,
    /// Payment methods by customer id.
    pub payment_methods: Batched<Many<payment_method::Entity>>,
    /// Invoices by customer id.
    pub invoices: Batched<Many<invoice::Entity>>,
    /// Tickets by customer id.
    pub tickets_of_customer: Batched<Many<ticket::Entity>>,
    /// Messages by ticket id.
    pub messages: Batched<Many<message::Entity>>,
    /// Messages of all of a customer's tickets, by customer id.
    pub messages_of_customer: Batched<MessagesOfCustomer>,
    /// Attachments by ticket id.
    pub attachments: Batched<Many<attachment::Entity>>,
    /// Audit events of plaintext views, written before the values are served.
    pub audit: Batched<ViewAuditor>,
    /// Openers of customers' sealed fields (their data keys).
    pub data_keys: Batched<DataKeys>,
}

impl Loaders {
    /// Fresh loaders for one request, whose plaintext views `auditor` records.
    pub fn new(db: &DatabaseConnection, auditor: ViewAuditor, vault: Arc<Vault>) -> Loaders {
        let activity = Arc::new(AtomicU64::new(0));
        Loaders {
            audit: Batched::new(&activity, auditor),
            data_keys: Batched::new(
                &activity,
                DataKeys {
                    db: db.clone(),
                    vault,
                },
            ),
            agent: Batched::new(
                &activity,
                One(Rows::new(db, agent::Column::Id, agent::Column::Id)),
            ),
            customer: Batched::new(
                &activity,
                One(Rows::new(db, customer::Column::Id, customer::Column::Id)),
            ),
            payment_methods: Batched::new(
                &activity,
                Many(Rows::new(
                    db,
                    payment_method::Column::CustomerId,
                    payment_method::Column::Id,
                )),
            ),
            invoices: Batched::new(
                &activity,
                Many(Rows::new(
                    db,
                    invoice::Column::CustomerId,
                    invoice::Column::Id,
                )),
            ),
            tickets_of_customer: Batched::new(
                &activity,
                Many(Rows::new(
                    db,
                    ticket::Column::CustomerId,
                    ticket::Column::Id,
                )),
            ),
            messages_of_customer: Batched::new(&activity, MessagesOfCustomer { db: db.clone() }),
            messages: Batched::new(
                &activity,
                Many(Rows::new(
                    db,
                    message::Column::TicketId,
                    message::Column::Id,
                )),
            ),
            attachments: Batched::new(
                &activity,
                Many(Rows::new(
                    db,
                    attachment::Column::TicketId,
                    attachment::Column::Id,
                )),
            ),
        }
    }
}

/// Turns a loader error into the client-facing internal error (cause logged).
pub fn load_error(error: Arc<impl std::fmt::Display>) -> ApiError {
    ApiError::internal(anyhow::anyhow!("{error:#}"), "batched load")
}
