//! Payment methods: brand, last four and expiry only; never a full card number or CVV.

use sea_orm::entity::prelude::*;

/// One row of `payment_methods`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "payment_methods")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    pub customer_id: i32,
    pub brand: String,
    pub last4: String,
    pub exp_month: i32,
    pub exp_year: i32,
    /// Personal data, encrypted (class `billing`).
    pub billing_street: Vec<u8>,
    /// Personal data, encrypted (class `billing`).
    pub billing_city: Vec<u8>,
    /// Personal data, encrypted (class `billing`).
    pub billing_postal_code: Vec<u8>,
    /// Personal data, encrypted (class `billing`).
    pub billing_country: Vec<u8>,
}

/// Relations are resolved by id in the service's batched loaders, not by joins here.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
