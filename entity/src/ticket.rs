//! Support tickets: the purpose through which customer data is reached.

use sea_orm::entity::prelude::*;

/// One row of `tickets`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "tickets")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    pub customer_id: i32,
    /// The team that owns the ticket; supervisors see their team's tickets.
    pub team: String,
    /// A topic of the policy vocabulary.
    pub topic: String,
    /// `open`, `pending`, `resolved` or `closed`.
    pub status: String,
    pub subject: String,
    pub channel: String,
    pub assignee_id: Option<i32>,
    pub created_at: DateTimeUtc,
    pub resolved_at: Option<DateTimeUtc>,
    /// The id the channel or helpdesk gives this ticket (unique where set).
    pub external_id: Option<String>,
}

/// Relations are mostly resolved by id in the service's batched loaders; the customer is
/// joined when a page of tickets is read, so a page and its customers are one statement.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// The ticket's customer.
    #[sea_orm(
        belongs_to = "super::customer::Entity",
        from = "Column::CustomerId",
        to = "super::customer::Column::Id"
    )]
    Customer,
}

impl Related<super::customer::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Customer.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
