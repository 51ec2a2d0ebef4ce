//! Messages of a ticket's conversation. Card numbers are redacted before a row is written.

use sea_orm::entity::prelude::*;

/// One row of `messages`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "messages")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    pub ticket_id: i32,
    /// `customer` or `agent`.
    pub author_kind: String,
    pub author_agent_id: Option<i32>,
    /// Personal data, encrypted.
    pub body: Vec<u8>,
    pub created_at: DateTimeUtc,
    /// The id the channel gives this message (unique where set).
    pub external_id: Option<String>,
}

/// Relations are resolved by id in the service's batched loaders, not by joins here.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
