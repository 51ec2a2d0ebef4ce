//! Indexes that give each visibility scope's tickets in id order, so a page takes its first
//! tickets per scope without sorting every visible ticket (SQLite keeps rowids in every
//! index already; PostgreSQL needs the id in the index).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// (index name, columns of `tickets`).
fn indexes() -> [(&'static str, Vec<&'static str>); 3] {
    [
        ("idx_tickets_team_id", vec!["team", "id"]),
        ("idx_tickets_assignee_id_id", vec!["assignee_id", "id"]),
        (
            "idx_tickets_topic_assignee_id",
            vec!["topic", "assignee_id", "id"],
        ),
    ]
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (name, columns) in indexes() {
            crate::create_index(manager, "tickets", name, &columns).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (name, _) in indexes() {
            manager
                .drop_index(
                    Index::drop()
                        .name(name)
                        .table(Alias::new("tickets"))
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
