//! Per-customer data keys, wrapped by a master key version. Deleting a row crypto-shreds
//! the customer's personal data.

use sea_orm::entity::prelude::*;

/// One row of `data_keys`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "data_keys")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub customer_id: i32,
    /// The master key version that wraps it.
    pub master_version: i32,
    /// The wrapped key (an envelope).
    pub wrapped: Vec<u8>,
    pub created_at: DateTimeUtc,
}

/// Relations are resolved by id in the service.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
