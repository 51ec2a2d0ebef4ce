//! The append-only audit trail. Never holds a personal value.

use sea_orm::entity::prelude::*;

/// One row of `audit_events`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "audit_events")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub seq: i32,
    pub occurred_at: DateTimeUtc,
    pub actor_agent_id: Option<i32>,
    pub actor_role: String,
    pub action: String,
    pub customer_id: Option<i32>,
    /// The purpose of the access.
    pub ticket_id: Option<i32>,
    /// A JSON array of field names.
    pub fields: String,
    pub reason: Option<String>,
    pub request_id: String,
    /// The version of the policy in force (null for events older than the column).
    pub policy_version: Option<String>,
    /// The `Idempotency-Key` the write was delivered under, if any.
    pub idempotency_key: Option<String>,
    pub prev_hash: String,
    pub hash: String,
}

/// Relations are resolved by id in the service's batched loaders, not by joins here.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
