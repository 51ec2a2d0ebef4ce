//! Blind indexes for exact lookups of a customer by email or phone (keyed, truncated
//! HMACs; see the service's `crypto::blind`).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [Customers::EmailIndex, Customers::PhoneIndex] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Customers::Table)
                        .add_column(ColumnDef::new(column).string_len(16).null())
                        .to_owned(),
                )
                .await?;
        }
        for (name, column) in [
            ("idx_customers_email_index", Customers::EmailIndex),
            ("idx_customers_phone_index", Customers::PhoneIndex),
        ] {
            manager
                .create_index(
                    Index::create()
                        .if_not_exists()
                        .name(name)
                        .table(Customers::Table)
                        .col(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [Customers::EmailIndex, Customers::PhoneIndex] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Customers::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Customers {
    Table,
    EmailIndex,
    PhoneIndex,
}
