//! A partial index of the unassigned tickets by topic, in id order: the queue scope of a
//! ticket list (`topic = … AND assignee_id IS NULL`, first tickets by id).
//!
//! `idx_tickets_topic_assignee_id` (migration 6) serves that scope on SQLite, whose planner
//! treats `IS NULL` as an equality; PostgreSQL's does not, so it cannot read ids in order
//! from that index and scanned the primary key instead, filtering out about 25 tickets for
//! every one it kept. With this index it reads the first ids of each queue directly
//! (BENCHMARKS.md, "2026-12-02, night").

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const INDEX: &str = "idx_tickets_unassigned_topic_id";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name(INDEX)
                    .table(Alias::new("tickets"))
                    .col(Alias::new("topic"))
                    .col(Alias::new("id"))
                    .and_where(Expr::col(Alias::new("assignee_id")).is_null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name(INDEX)
                    .table(Alias::new("tickets"))
                    .to_owned(),
            )
            .await
    }
}
