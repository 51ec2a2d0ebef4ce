//! Every audit event records the version of the policy in force when it happened, so a
//! privacy officer can say which policy allowed a view. Older events have none.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Alias::new("audit_events"))
                    .add_column(ColumnDef::new(Alias::new("policy_version")).string().null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Alias::new("audit_events"))
                    .drop_column(Alias::new("policy_version"))
                    .to_owned(),
            )
            .await
    }
}
