//! Per-customer data keys, wrapped by a master key version (see the service's `crypto`).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(DataKeys::Table)
                    .if_not_exists()
                    .col(integer(DataKeys::CustomerId).primary_key())
                    .col(integer(DataKeys::MasterVersion))
                    .col(blob(DataKeys::Wrapped))
                    .col(timestamp_with_time_zone(DataKeys::CreatedAt))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(DataKeys::Table).if_exists().to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum DataKeys {
    Table,
    CustomerId,
    MasterVersion,
    Wrapped,
    CreatedAt,
}
