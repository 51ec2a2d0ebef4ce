//! Idempotency keys: a mutation sent with an `Idempotency-Key` header claims the key here,
//! and every write of that request records its result in the claim inside its own
//! transaction. A retry finds the results and writes nothing again; the row is shared by
//! every instance because it lives in the database.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Alias::new("idempotency_keys"))
                    .col(
                        ColumnDef::new(Alias::new("id"))
                            .integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(Alias::new("agent_id")).integer().not_null())
                    .col(ColumnDef::new(Alias::new("idem_key")).string().not_null())
                    .col(
                        ColumnDef::new(Alias::new("fingerprint"))
                            .string()
                            .not_null(),
                    )
                    .col(ColumnDef::new(Alias::new("state")).string().not_null())
                    .col(
                        ColumnDef::new(Alias::new("results"))
                            .text()
                            .not_null()
                            .default("[]"),
                    )
                    .col(
                        ColumnDef::new(Alias::new("started_at"))
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Alias::new("expires_at"))
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_idempotency_keys_agent_key")
                    .table(Alias::new("idempotency_keys"))
                    .col(Alias::new("agent_id"))
                    .col(Alias::new("idem_key"))
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(
                Table::drop()
                    .table(Alias::new("idempotency_keys"))
                    .to_owned(),
            )
            .await
    }
}
