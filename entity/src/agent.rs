//! Support agents: who may call the API, with their role, team and queues.

use sea_orm::entity::prelude::*;

/// One row of `agents`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "agents")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    #[sea_orm(unique)]
    pub handle: String,
    pub display_name: String,
    /// A role of the policy vocabulary (validated when the agent is created).
    pub role: String,
    pub team: String,
    /// The topics whose unassigned tickets the agent may pick up, as a JSON array.
    pub queues: String,
    pub active: bool,
    pub created_at: DateTimeUtc,
    /// `agent` (a person) or `service` (a channel integration; never signs in by SSO).
    pub kind: String,
}

/// Relations are resolved by id in the service's batched loaders, not by joins here.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
