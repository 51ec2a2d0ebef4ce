//! A unique index on `audit_events.prev_hash`: no two events can follow the same event, so
//! the chain cannot fork. This is what lets the service append optimistically: it inserts
//! after the head it remembers in one statement, and an append that lost the race to
//! another writer (another instance, or a write transaction's own events) is refused by
//! this index instead of forking the chain, then retried after the new head.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The index, which migration 16 drops (and, undone, creates again through this one).
pub(crate) const INDEX: &str = "idx_audit_events_prev_hash";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name(INDEX)
                    .table(Alias::new("audit_events"))
                    .col(Alias::new("prev_hash"))
                    .unique()
                    .to_owned(),
            )
            .await
            .map_err(|error| {
                // The one way existing rows can refuse this index: two events chained after
                // the same one, which only tampering makes. Say what to do, not only what
                // the database said.
                DbErr::Migration(format!(
                    "cannot index the audit chain's links ({error}); if two audit events \
                     follow the same event, the trail was tampered with: \
                     `needtoknow audit verify` names the first such event"
                ))
            })
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name(INDEX)
                    .table(Alias::new("audit_events"))
                    .to_owned(),
            )
            .await
    }
}
