//! Files attached to tickets.

use sea_orm::entity::prelude::*;

/// One row of `attachments`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "attachments")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    pub ticket_id: i32,
    /// `id_document`, `receipt` or `screenshot`.
    pub kind: String,
    pub file_name: String,
    pub size_bytes: i64,
    /// Personal data, encrypted.
    pub content: Vec<u8>,
    pub purge_after: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    /// The attachment's own data key, sealed under the customer's key (null: the content
    /// is sealed directly under the customer's key).
    pub wrapped_key: Option<Vec<u8>>,
    /// The id the channel or helpdesk gives this document (unique where set).
    pub external_id: Option<String>,
}

/// Relations are resolved by id in the service's batched loaders, not by joins here.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
