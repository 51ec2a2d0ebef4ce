//! On PostgreSQL, `audit_chain_head()` returns the hash of the audit chain's last event (or
//! NULL for an empty chain), planned anew on every call.
//!
//! The service reads the head as one prepared statement per connection, and PostgreSQL
//! keeps one generic plan for it, made from the table's statistics of that moment. The
//! trail only grows, by thousands of events a minute under load: statistics taken while it
//! was short (the seed analyzes every table, with a handful of events in the trail) made
//! the head read a scan and sort of the whole trail, and where autovacuum is off nothing
//! replanned it. Write transactions read the head under the chain's lock, so every write
//! queued behind a scan that grew with the trail (BENCHMARKS.md, "The PostgreSQL audit
//! race"). Run through `EXECUTE`, the query is planned on each call from the table's size
//! at that moment: a look-up at the end of the sequence index as soon as the trail is more
//! than a page. The planning costs tens of microseconds, on a read that runs only when the
//! service does not know the head already.
//!
//! SQLite needs nothing: its planner walks the table's key backwards, statistics or not.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::on_postgres(
            manager,
            "CREATE OR REPLACE FUNCTION audit_chain_head() RETURNS text \
             LANGUAGE plpgsql STABLE AS $$ DECLARE head text; BEGIN \
             EXECUTE 'SELECT hash FROM audit_events ORDER BY seq DESC LIMIT 1' INTO head; \
             RETURN head; END $$;",
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::on_postgres(manager, "DROP FUNCTION IF EXISTS audit_chain_head();").await
    }
}
