//! Invoices (class `billing`).

use sea_orm::entity::prelude::*;

/// One row of `invoices`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "invoices")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    pub customer_id: i32,
    #[sea_orm(unique)]
    pub number: String,
    pub amount_cents: i64,
    /// ISO 4217 code.
    pub currency: String,
    pub status: String,
    pub issued_at: DateTimeUtc,
    pub paid_at: Option<DateTimeUtc>,
}

/// Relations are resolved by id in the service's batched loaders, not by joins here.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
