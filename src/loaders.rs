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
use sea_orm::sea_query::{Expr, ExprTrait, PgFunc, SimpleExpr};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseBackend, DatabaseConnection, DbErr, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect, QueryTrait, Statement,
};

use crate::audit::loader::ViewAuditor;
use crate::crypto::vault::{Opener, Vault};
use crate::error::ApiError;
use crate::rows::{column, ChatMessageRow, Positional, TicketSummaryRow};

/// Loads rows of `E` whose `column` is one of the keys, each read as an `M`: the entity's
/// model, or a row of some of its columns ([`crate::rows::TicketSummaryRow`]).
pub struct Rows<E: EntityTrait, M = <E as EntityTrait>::Model> {
    db: DatabaseConnection,
    column: E::Column,
    order: E::Column,
    _model: PhantomData<M>,
}

impl<E: EntityTrait, M: Positional> Rows<E, M> {
    fn new(db: &DatabaseConnection, column: E::Column, order: E::Column) -> Self {
        Rows {
            db: db.clone(),
            column,
            order,
            _model: PhantomData,
        }
    }

    /// The rows, each with its key. Decoded into a vector sized for them: collecting
    /// through sea-orm's `all()` and then pairing with keys grew two vectors by doubling,
    /// each growth copying every model so far (a page's 550 tickets, twice).
    ///
    /// The statement selects the columns `M`'s fields name ([`Positional::FIELDS`]), in
    /// that order; `rows`' unit tests hold those names to the tables' columns.
    async fn fetch(&self, keys: &[i32]) -> Result<Vec<(i32, M)>, Arc<DbErr>> {
        use sea_orm::IdenStatic;
        let unknown = |name: &str| Arc::new(DbErr::Custom(format!("no column {name} to read")));
        let columns = M::FIELDS
            .iter()
            .map(|name| name.parse::<E::Column>().map_err(|_| unknown(name)))
            .collect::<Result<Vec<_>, _>>()?;
        let key_at = M::FIELDS
            .iter()
            .position(|name| *name == self.column.as_str())
            .ok_or_else(|| unknown(self.column.as_str()))?;
        let backend = self.db.get_database_backend();
        let mut select =
            E::find()
                .select_only()
                .columns(columns)
                .filter(keys_match(backend, self.column, keys));
        // By key first: the order of an index on (key, order), which the database then
        // reads without sorting (a page's 550 other tickets); each key's rows stay in order.
        if self.column.as_str() != self.order.as_str() {
            select = select.order_by_asc(self.column);
        }
        let statement = select.order_by_asc(self.order).build(backend);
        let rows = self.db.query_all_raw(statement).await.map_err(Arc::new)?;
        let mut keyed = Vec::with_capacity(rows.len());
        for row in &rows {
            let key = column::<i32>(row, key_at).map_err(Arc::new)?;
            keyed.push((key, M::from_columns(row, 0).map_err(Arc::new)?));
        }
        Ok(keyed)
    }
}

/// `column` is one of `keys`: on PostgreSQL `column = $1` for one key and
/// `column = ANY($1)`, one array parameter, for several; elsewhere `column IN (?, …)`.
///
/// PostgreSQL planned an `IN` list of 50 parameters again on every execution (its generic
/// plan looked a little dearer than one made for the values), and every other number of
/// keys was another statement to prepare; it keeps the generic plan of `= ANY($1)`,
/// whatever the number of keys. That plan is made for about ten keys, though, so for one
/// key (a single ticket's customer) it looked dearer than a plan for that key and was
/// made again every time: one key stays a plain `=`. SQLite has no arrays.
fn keys_match(backend: DatabaseBackend, column: impl ColumnTrait, keys: &[i32]) -> SimpleExpr {
    match (backend, keys) {
        (DatabaseBackend::Postgres, [key]) => column.eq(*key),
        (DatabaseBackend::Postgres, _) => {
            Expr::col(column).eq(PgFunc::any(Expr::val(keys.to_vec())))
        }
        _ => column.is_in(keys.iter().copied()),
    }
}

/// One row per key (the key is unique, e.g. a primary key).
pub struct One<E: EntityTrait, M = <E as EntityTrait>::Model>(Rows<E, M>);

/// All rows per key (e.g. every invoice of a customer), in the order of the order column.
pub struct Many<E: EntityTrait, M = <E as EntityTrait>::Model>(Rows<E, M>);

impl<E, M> Loader<i32> for One<E, M>
where
    E: EntityTrait + Send + Sync,
    M: Positional + Send + Sync + Clone + 'static,
    E::Column: Send + Sync,
{
    type Value = M;
    type Error = Arc<DbErr>;

    async fn load(&self, keys: &[i32]) -> Result<HashMap<i32, M>, Arc<DbErr>> {
        Ok(self.0.fetch(keys).await?.into_iter().collect())
    }
}

impl<E, M> Loader<i32> for Many<E, M>
where
    E: EntityTrait + Send + Sync,
    M: Positional + Send + Sync + Clone + 'static,
    E::Column: Send + Sync,
{
    type Value = Arc<[M]>;
    type Error = Arc<DbErr>;

    async fn load(&self, keys: &[i32]) -> Result<HashMap<i32, Arc<[M]>>, Arc<DbErr>> {
        let mut grouped: HashMap<i32, Vec<M>> = HashMap::new();
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

/// The parts of a customer's record that live in tables of their own.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Part {
    /// `payment_methods`, in id order.
    PaymentMethods,
    /// `invoices`, in id order.
    Invoices,
    /// The messages of all of the customer's tickets, by ticket and then message.
    ChatHistory,
}

impl Part {
    const ALL: [Part; 3] = [Part::PaymentMethods, Part::Invoices, Part::ChatHistory];

    /// The tag of this part's rows in [`Records`]' statement.
    fn tag(self) -> i32 {
        self as i32
    }
}

/// The rows of one part of one customer's record.
#[derive(Clone)]
pub enum PartRows {
    /// Payment methods.
    PaymentMethods(Arc<[payment_method::Model]>),
    /// Invoices.
    Invoices(Arc<[invoice::Model]>),
    /// Chat history.
    ChatHistory(Arc<[ChatMessageRow]>),
}

/// The payment methods, invoices and chat histories of customers, by (customer id, part),
/// in one statement: each part is a branch of a `UNION ALL`, tagged, whose rows fill that
/// part's columns and leave the other parts' columns NULL.
///
/// One ticket of a supervisor's used to cost a statement for each part (on PostgreSQL
/// each about 0.1 ms of the server's CPU, plus the round trip, the wake-ups and our side
/// of the protocol); a page's parts, three statements on three connections, are now one.
pub struct Records {
    db: DatabaseConnection,
}

impl Loader<(i32, Part)> for Records {
    type Value = PartRows;
    type Error = Arc<DbErr>;

    async fn load(
        &self,
        keys: &[(i32, Part)],
    ) -> Result<HashMap<(i32, Part), PartRows>, Arc<DbErr>> {
        let mut cards: HashMap<i32, Vec<payment_method::Model>> = HashMap::new();
        let mut invoices: HashMap<i32, Vec<invoice::Model>> = HashMap::new();
        let mut messages: HashMap<i32, Vec<ChatMessageRow>> = HashMap::new();
        let backend = self.db.get_database_backend();
        if let Some(statement) = records_statement(backend, keys) {
            let cards_at = columns_at(backend, Part::PaymentMethods);
            let invoices_at = columns_at(backend, Part::Invoices);
            let messages_at = columns_at(backend, Part::ChatHistory);
            let rows = self.db.query_all_raw(statement).await.map_err(Arc::new)?;
            for row in &rows {
                let tag: i32 = column(row, 0)?;
                let customer: i32 = column(row, 1)?;
                match tag {
                    0 => cards
                        .entry(customer)
                        .or_default()
                        .push(payment_method::Model::from_columns(row, cards_at)?),
                    1 => invoices
                        .entry(customer)
                        .or_default()
                        .push(invoice::Model::from_columns(row, invoices_at)?),
                    _ => messages
                        .entry(customer)
                        .or_default()
                        .push(ChatMessageRow::from_columns(row, messages_at)?),
                }
            }
        }
        // Ordered here rather than in SQL: sorting a page's 1 600 messages cost PostgreSQL
        // about 0.75 ms of CPU, sorting each customer's few dozen costs us a few µs.
        Ok(keys
            .iter()
            .map(|&(customer, part)| {
                let rows = match part {
                    Part::PaymentMethods => {
                        let mut rows = cards.remove(&customer).unwrap_or_default();
                        rows.sort_unstable_by_key(|p| p.id);
                        PartRows::PaymentMethods(rows.into())
                    }
                    Part::Invoices => {
                        let mut rows = invoices.remove(&customer).unwrap_or_default();
                        rows.sort_unstable_by_key(|i| i.id);
                        PartRows::Invoices(rows.into())
                    }
                    Part::ChatHistory => {
                        let mut rows = messages.remove(&customer).unwrap_or_default();
                        rows.sort_unstable_by_key(|m| (m.ticket_id, m.id));
                        PartRows::ChatHistory(rows.into())
                    }
                };
                ((customer, part), rows)
            })
            .collect())
    }
}

/// The parts' tables and the columns read of them, in the order of [`Part::ALL`]. The
/// column names are the rows' field lists, which `rows`' unit tests hold to the tables'
/// columns: one list gives both the statement's columns and their offsets.
const TABLES: [(Part, &str, &[&str]); 3] = [
    (
        Part::PaymentMethods,
        "payment_methods",
        payment_method::Model::FIELDS,
    ),
    (Part::Invoices, "invoices", invoice::Model::FIELDS),
    (Part::ChatHistory, "messages", ChatMessageRow::FIELDS),
];

/// Where `part`'s columns start in a row of [`records_statement`] on `backend`: after the
/// tag and the customer id, and on PostgreSQL after the columns of the parts before it.
fn columns_at(backend: DatabaseBackend, part: Part) -> usize {
    let before = TABLES
        .iter()
        .take_while(|(owner, _, _)| *owner != part)
        .map(|(_, _, names)| names.len());
    match backend {
        DatabaseBackend::Postgres => 2 + before.sum::<usize>(),
        _ => 2,
    }
}

/// The statement of [`Records`] for `keys`: a branch per part asked for, or `None` when
/// nothing is. Every branch selects the tag, the customer id and the columns [`TABLES`]
/// lists for its table.
/// - On PostgreSQL each part has columns of its own, the other parts' NULL: PostgreSQL
///   resolves a `UNION`'s column types pair by pair, so every column keeps one type, and
///   the NULLs carry it, as fields of a NULL of the table's row type.
/// - On SQLite, whose columns have no fixed type, the parts share columns, padded with
///   NULLs to the widest table. sqlx copies every value of every row on SQLite, NULLs
///   included (an allocation and a free each), so each message row, the most numerous,
///   carries 5 NULLs instead of 18 (BENCHMARKS.md, "2026-12-04, twelfth stop").
///
/// Asked to join the messages to the customers' tickets, PostgreSQL's planner reads every
/// message of every customer and hashes them against the tickets: for a page's 50
/// customers that is a scan of all 60 000 messages to keep 1 600 (11 ms of the server's
/// time per page, most of what a page cost PostgreSQL). A lateral subquery that cannot be
/// flattened (`OFFSET 0`) makes it look each ticket's messages up in their index instead
/// (4 ms). SQLite's planner already does so for the plain join.
fn records_statement(backend: DatabaseBackend, keys: &[(i32, Part)]) -> Option<Statement> {
    let postgres = backend == DatabaseBackend::Postgres;
    let mut values: Vec<sea_orm::Value> = Vec::with_capacity(keys.len());
    let mut branches = Vec::new();
    for part in Part::ALL {
        let customers: Vec<i32> = keys
            .iter()
            .filter(|(_, p)| *p == part)
            .map(|&(customer, _)| customer)
            .collect();
        if customers.is_empty() {
            continue;
        }
        // As in `keys_match`: on PostgreSQL one parameter, an array for several keys.
        let matches = if let (true, [customer]) = (postgres, customers.as_slice()) {
            values.push((*customer).into());
            format!("= ${}", values.len())
        } else if postgres {
            values.push(customers.into());
            format!("= ANY(${})", values.len())
        } else {
            let placeholders = vec!["?"; customers.len()].join(", ");
            values.extend(customers.into_iter().map(sea_orm::Value::from));
            format!("IN ({placeholders})")
        };
        let (alias, customer, from) = match part {
            Part::PaymentMethods => ("p", "p", "\"payment_methods\" p"),
            Part::Invoices => ("i", "i", "\"invoices\" i"),
            Part::ChatHistory if postgres => (
                "m",
                "t",
                "\"tickets\" t CROSS JOIN LATERAL (SELECT * FROM \"messages\" \
                 WHERE \"messages\".\"ticket_id\" = t.\"id\" OFFSET 0) m",
            ),
            Part::ChatHistory => (
                "m",
                "t",
                "\"messages\" m JOIN \"tickets\" t ON t.\"id\" = m.\"ticket_id\"",
            ),
        };
        let mut columns = vec![
            part.tag().to_string(),
            format!("{customer}.\"customer_id\""),
        ];
        let own = |name| format!("{alias}.\"{name}\"");
        if postgres {
            for (owner, table, names) in TABLES {
                columns.extend(names.iter().map(|name| {
                    if owner == part {
                        own(name)
                    } else {
                        format!("(NULL::\"{table}\").\"{name}\"")
                    }
                }));
            }
        } else {
            let own_columns = TABLES
                .iter()
                .find(|(owner, _, _)| *owner == part)
                .map_or(&[][..], |(_, _, names)| names);
            let widest = TABLES
                .iter()
                .map(|(_, _, names)| names.len())
                .max()
                .unwrap_or(0);
            let padding = widest.saturating_sub(own_columns.len());
            columns.extend(own_columns.iter().map(own));
            columns.extend(std::iter::repeat_n("NULL".to_owned(), padding));
        }
        branches.push(format!(
            "SELECT {} FROM {from} WHERE {customer}.\"customer_id\" {matches}",
            columns.join(", "),
        ));
    }
    (!branches.is_empty())
        .then(|| Statement::from_sql_and_values(backend, branches.join(" UNION ALL "), values))
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
    /// Payment methods, invoices and chat histories by customer id and part.
    pub records: Batched<Records>,
    /// Tickets by customer id, as their list shows them.
    pub tickets_of_customer: Batched<Many<ticket::Entity, TicketSummaryRow>>,
    /// Messages by ticket id.
    pub messages: Batched<Many<message::Entity>>,
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
            records: Batched::new(&activity, Records { db: db.clone() }),
            tickets_of_customer: Batched::new(
                &activity,
                Many(Rows::new(
                    db,
                    ticket::Column::CustomerId,
                    ticket::Column::Id,
                )),
            ),
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

impl Loaders {
    /// A customer's payment methods, in id order.
    pub async fn payment_methods(
        &self,
        customer: i32,
    ) -> Result<Arc<[payment_method::Model]>, Arc<DbErr>> {
        match self
            .records
            .load_one((customer, Part::PaymentMethods))
            .await?
        {
            Some(PartRows::PaymentMethods(rows)) => Ok(rows),
            _ => Ok(Arc::new([])),
        }
    }

    /// A customer's invoices, in id order.
    pub async fn invoices(&self, customer: i32) -> Result<Arc<[invoice::Model]>, Arc<DbErr>> {
        match self.records.load_one((customer, Part::Invoices)).await? {
            Some(PartRows::Invoices(rows)) => Ok(rows),
            _ => Ok(Arc::new([])),
        }
    }

    /// The messages of all of a customer's tickets, by ticket and then message.
    pub async fn chat_history(&self, customer: i32) -> Result<Arc<[ChatMessageRow]>, Arc<DbErr>> {
        match self.records.load_one((customer, Part::ChatHistory)).await? {
            Some(PartRows::ChatHistory(rows)) => Ok(rows),
            _ => Ok(Arc::new([])),
        }
    }
}

/// Turns a loader error into the client-facing internal error (cause logged).
pub fn load_error(error: Arc<impl std::fmt::Display>) -> ApiError {
    ApiError::internal(anyhow::anyhow!("{error:#}"), "batched load")
}
