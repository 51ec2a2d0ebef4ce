//! Reveal requests that need (or had) a supervisor's decision.

use sea_orm::entity::prelude::*;

/// One row of `reveal_requests`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "reveal_requests")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    /// The agent asking.
    pub agent_id: i32,
    pub ticket_id: i32,
    pub customer_id: i32,
    /// The ticket's team: its supervisors decide.
    pub team: String,
    /// A JSON array of field names.
    pub fields: String,
    pub reason: String,
    /// `pending`, `approved` or `denied`.
    pub status: String,
    pub decided_by: Option<i32>,
    pub decided_at: Option<DateTimeUtc>,
    pub note: Option<String>,
    pub created_at: DateTimeUtc,
}

/// Relations are resolved by id in the service.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
