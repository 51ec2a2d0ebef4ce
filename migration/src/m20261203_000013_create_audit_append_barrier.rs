//! On PostgreSQL, every INSERT into `audit_events` takes the audit chain's append barrier
//! ([`AUDIT_APPEND_BARRIER`]) in shared mode before its first row, through a
//! statement-level trigger, and keeps it until its transaction ends.
//!
//! A write transaction appends its events under the chain's lock ([`AUDIT_CHAIN_LOCK`]): it
//! takes it, reads the head, and inserts after it. The service's other appends are one
//! statement each, after the head they remember, and take no lock (migration 11's unique
//! index settles who wins), so that reads never wait for writes. One of them can commit
//! between the transaction's read and its insert; under a steady stream of reads' `viewed`
//! events a reveal's transaction used to lose all its attempts (BENCHMARKS.md, "The
//! PostgreSQL audit race"). A transaction that loses now takes the barrier exclusively:
//! the statements already under way finish, new ones wait, and its second insert cannot
//! lose. Shared holders never wait for each other, so without a losing transaction the
//! trigger costs a lock taken and released, and no round trip.
//!
//! SQLite needs nothing: its single writer connection already serializes every write.

use sea_orm_migration::prelude::*;

/// The PostgreSQL advisory lock key of the audit chain: a write transaction holds it,
/// until it ends, from before it reads the chain's head.
pub const AUDIT_CHAIN_LOCK: i64 = 7_411_002;

/// The PostgreSQL advisory lock key every INSERT of audit events holds shared, and a
/// write transaction that lost the chain's head holds exclusively, until it ends.
pub const AUDIT_APPEND_BARRIER: i64 = 7_411_003;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let sql = format!(
            "CREATE OR REPLACE FUNCTION audit_events_append_barrier() RETURNS trigger \
             LANGUAGE plpgsql AS $$ BEGIN \
             PERFORM pg_advisory_xact_lock_shared({AUDIT_APPEND_BARRIER}); \
             RETURN NULL; END $$; \
             DROP TRIGGER IF EXISTS audit_events_append_barrier ON audit_events; \
             CREATE TRIGGER audit_events_append_barrier BEFORE INSERT ON audit_events \
             FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_barrier();"
        );
        crate::on_postgres(manager, &sql).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::on_postgres(
            manager,
            "DROP TRIGGER IF EXISTS audit_events_append_barrier ON audit_events; \
             DROP FUNCTION IF EXISTS audit_events_append_barrier();",
        )
        .await
    }
}
