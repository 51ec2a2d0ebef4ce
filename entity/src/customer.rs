//! Customers. The personal-data columns are read only through the service's disclosure path.

use sea_orm::entity::prelude::*;

/// One row of `customers`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "customers")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    pub account_status: String,
    pub plan: String,
    pub customer_since: Date,
    pub region: String,
    /// Personal data (class `name`).
    pub full_name: String,
    /// Personal data (class `contact`).
    pub email: String,
    /// Personal data (class `contact`).
    pub phone: String,
    /// Personal data (class `address`).
    pub street: String,
    /// Personal data (class `address`).
    pub city: String,
    /// Personal data (class `address`).
    pub postal_code: String,
    /// Personal data (class `address`).
    pub country: String,
    /// Personal data (class `identity`), ISO 8601 date.
    pub date_of_birth: String,
}

/// Relations are resolved by id in the service's batched loaders, not by joins here.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
