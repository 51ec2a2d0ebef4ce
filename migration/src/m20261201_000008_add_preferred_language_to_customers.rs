//! Customers' preferred language (a BCP 47 tag such as `en` or `pt-BR`): class `account`,
//! so agents answer in the customer's language. Existing customers get `en`.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Alias::new("customers"))
                    .add_column(
                        ColumnDef::new(Alias::new("preferred_language"))
                            .string()
                            .not_null()
                            .default("en"),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Alias::new("customers"))
                    .drop_column(Alias::new("preferred_language"))
                    .to_owned(),
            )
            .await
    }
}
