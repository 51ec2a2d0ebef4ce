//! Claimed idempotency keys and the results their requests' writes recorded.

use sea_orm::entity::prelude::*;

/// One row of `idempotency_keys`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "idempotency_keys")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    /// Whose key: keys are per agent (or service account).
    pub agent_id: i32,
    /// The `Idempotency-Key` header as sent.
    pub idem_key: String,
    /// SHA-256 of the operation name, document and variables: the same key with another
    /// request is a conflict.
    pub fingerprint: String,
    /// `running` while a request holds the claim, `done` after.
    pub state: String,
    /// A JSON array: the result each write of the request recorded, in order.
    pub results: String,
    pub started_at: DateTimeUtc,
    pub expires_at: DateTimeUtc,
}

/// Relations are resolved by id in the service.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
