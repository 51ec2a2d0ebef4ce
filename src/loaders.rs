//! Batched loads for every list edge of the schema, so a page of tickets costs a constant
//! number of SQL statements whatever its size. Loaders are created per request: nothing
//! loaded for one agent is ever served to another.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use async_graphql::dataloader::{DataLoader, Loader};
use entity::{agent, attachment, customer, invoice, message, payment_method, ticket};
use sea_orm::{
    ColumnTrait, DatabaseConnection, DbErr, EntityTrait, ModelTrait, QueryFilter, QueryOrder,
};

use crate::audit::loader::ViewAuditor;
use crate::crypto::vault::{DataKey, Vault};
use crate::error::ApiError;

/// Loads rows of `E` whose `column` is one of the keys.
pub struct Rows<E: EntityTrait> {
    db: DatabaseConnection,
    column: E::Column,
    order: E::Column,
    _entity: PhantomData<E>,
}

impl<E: EntityTrait> Rows<E> {
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
            .all(&self.db)
            .await
            .map_err(Arc::new)?;
        Ok(rows
            .into_iter()
            .filter_map(|row| match row.get(self.column) {
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
    E::Model: Send + Sync + Clone,
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
    E::Model: Send + Sync + Clone,
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

fn loader<T>(inner: T) -> DataLoader<T> {
    // Under actix each worker is single-threaded, so a zero delay still batches every load
    // issued while resolving one level of the query, without adding latency.
    DataLoader::new(inner, tokio::spawn).delay(Duration::ZERO)
}

/// Unwrapped data keys by customer id (cached across requests by the vault).
pub struct DataKeys {
    db: DatabaseConnection,
    vault: Arc<Vault>,
}

impl Loader<i32> for DataKeys {
    type Value = DataKey;
    type Error = Arc<anyhow::Error>;

    async fn load(&self, keys: &[i32]) -> Result<HashMap<i32, DataKey>, Self::Error> {
        self.vault.data_keys(&self.db, keys).await.map_err(Arc::new)
    }
}

/// The loaders of one request.
pub struct Loaders {
    /// Agents by id.
    pub agent: DataLoader<One<agent::Entity>>,
    /// Customers by id.
    pub customer: DataLoader<One<customer::Entity>>,
    /// Payment methods by customer id.
    pub payment_methods: DataLoader<Many<payment_method::Entity>>,
    /// Invoices by customer id.
    pub invoices: DataLoader<Many<invoice::Entity>>,
    /// Tickets by customer id.
    pub tickets_of_customer: DataLoader<Many<ticket::Entity>>,
    /// Messages by ticket id.
    pub messages: DataLoader<Many<message::Entity>>,
    /// Attachments by ticket id.
    pub attachments: DataLoader<Many<attachment::Entity>>,
    /// Audit events of plaintext views, written before the values are served.
    pub audit: DataLoader<ViewAuditor>,
    /// Customers' data keys.
    pub data_keys: DataLoader<DataKeys>,
}

impl Loaders {
    /// Fresh loaders for one request, whose plaintext views `auditor` records.
    pub fn new(db: &DatabaseConnection, auditor: ViewAuditor, vault: Arc<Vault>) -> Loaders {
        Loaders {
            audit: loader(auditor),
            data_keys: loader(DataKeys {
                db: db.clone(),
                vault,
            }),
            agent: loader(One(Rows::new(db, agent::Column::Id, agent::Column::Id))),
            customer: loader(One(Rows::new(
                db,
                customer::Column::Id,
                customer::Column::Id,
            ))),
            payment_methods: loader(Many(Rows::new(
                db,
                payment_method::Column::CustomerId,
                payment_method::Column::Id,
            ))),
            invoices: loader(Many(Rows::new(
                db,
                invoice::Column::CustomerId,
                invoice::Column::Id,
            ))),
            tickets_of_customer: loader(Many(Rows::new(
                db,
                ticket::Column::CustomerId,
                ticket::Column::Id,
            ))),
            messages: loader(Many(Rows::new(
                db,
                message::Column::TicketId,
                message::Column::Id,
            ))),
            attachments: loader(Many(Rows::new(
                db,
                attachment::Column::TicketId,
                attachment::Column::Id,
            ))),
        }
    }
}

/// Turns a loader error into the client-facing internal error (cause logged).
pub fn load_error(error: Arc<impl std::fmt::Display>) -> ApiError {
    ApiError::internal(anyhow::anyhow!("{error:#}"), "batched load")
}
