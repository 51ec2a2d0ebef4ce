//! Reveal requests awaiting (or having had) a supervisor's decision. Active grants live in
//! the grant store (Redis or in-process), not here.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(RevealRequests::Table)
                    .if_not_exists()
                    .col(pk_auto(RevealRequests::Id))
                    .col(integer(RevealRequests::AgentId))
                    .col(integer(RevealRequests::TicketId))
                    .col(integer(RevealRequests::CustomerId))
                    .col(string(RevealRequests::Team))
                    .col(text(RevealRequests::Fields))
                    .col(text(RevealRequests::Reason))
                    .col(string(RevealRequests::Status))
                    .col(integer_null(RevealRequests::DecidedBy))
                    .col(timestamp_with_time_zone_null(RevealRequests::DecidedAt))
                    .col(text_null(RevealRequests::Note))
                    .col(timestamp_with_time_zone(RevealRequests::CreatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("idx_reveal_requests_team_status")
                    .table(RevealRequests::Table)
                    .col(RevealRequests::Team)
                    .col(RevealRequests::Status)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(
                Table::drop()
                    .table(RevealRequests::Table)
                    .if_exists()
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum RevealRequests {
    Table,
    Id,
    AgentId,
    TicketId,
    CustomerId,
    Team,
    Fields,
    Reason,
    Status,
    DecidedBy,
    DecidedAt,
    Note,
    CreatedAt,
}
