//! On PostgreSQL, every INSERT into `audit_events` takes the audit chain's advisory lock
//! ([`AUDIT_CHAIN_LOCK`]) before its first row, through a statement-level trigger.
//!
//! A write transaction appends its events under that lock: it takes it, reads the chain's
//! head, and inserts after it. The service's other appends are one statement each, after
//! the head they remember, and took no lock (migration 11's unique index settles who wins).
//! One of them could commit between the transaction's read and its insert, and under a
//! steady stream of reads' `viewed` events a reveal's transaction lost every one of its
//! attempts (BENCHMARKS.md, "The PostgreSQL audit race"). With the trigger, such a
//! statement waits for the transaction instead, and loses the head to it; it costs no
//! round trip, and the lock is held only until the statement's own commit.
//!
//! SQLite needs nothing: its single writer connection already serializes every write.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DatabaseBackend};

/// The PostgreSQL advisory lock key of the audit chain: held, until the end of the
/// transaction, by whoever appends to the chain.
pub const AUDIT_CHAIN_LOCK: i64 = 7_411_002;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DatabaseBackend::Postgres {
            return Ok(());
        }
        manager
            .get_connection()
            .execute_unprepared(&format!(
                "CREATE OR REPLACE FUNCTION audit_events_lock_chain() RETURNS trigger \
                 LANGUAGE plpgsql AS $$ BEGIN \
                 PERFORM pg_advisory_xact_lock({AUDIT_CHAIN_LOCK}); RETURN NULL; END $$; \
                 DROP TRIGGER IF EXISTS audit_events_lock_chain ON audit_events; \
                 CREATE TRIGGER audit_events_lock_chain BEFORE INSERT ON audit_events \
                 FOR EACH STATEMENT EXECUTE FUNCTION audit_events_lock_chain();"
            ))
            .await
            .map(|_| ())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DatabaseBackend::Postgres {
            return Ok(());
        }
        manager
            .get_connection()
            .execute_unprepared(
                "DROP TRIGGER IF EXISTS audit_events_lock_chain ON audit_events; \
                 DROP FUNCTION IF EXISTS audit_events_lock_chain();",
            )
            .await
            .map(|_| ())
    }
}
