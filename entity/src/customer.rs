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
    /// BCP 47 language tag, e.g. `en` (class `account`).
    pub preferred_language: String,
    /// Personal data, encrypted (class `name`).
    pub full_name: Vec<u8>,
    /// Personal data, encrypted (class `contact`).
    pub email: Vec<u8>,
    /// Personal data, encrypted (class `contact`).
    pub phone: Vec<u8>,
    /// Personal data, encrypted (class `address`).
    pub street: Vec<u8>,
    /// Personal data, encrypted (class `address`).
    pub city: Vec<u8>,
    /// Personal data, encrypted (class `address`).
    pub postal_code: Vec<u8>,
    /// Personal data, encrypted (class `address`).
    pub country: Vec<u8>,
    /// Personal data, encrypted (class `identity`), ISO 8601 date.
    pub date_of_birth: Vec<u8>,
    /// Blind index of the normalized email (truncated keyed HMAC, hex).
    pub email_index: Option<String>,
    /// Blind index of the phone's digits (truncated keyed HMAC, hex).
    pub phone_index: Option<String>,
    /// The id a helpdesk or CRM gives this customer (unique where set).
    pub external_id: Option<String>,
}

/// Relations are resolved by id in the service's batched loaders, not by joins here.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
