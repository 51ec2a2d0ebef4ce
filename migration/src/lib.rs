//! needtoknow's schema migrations.
//!
//! Every migration is written with sea-query's portable schema builder so the same steps
//! run on SQLite (the embedded default) and on PostgreSQL, but for the parts only
//! PostgreSQL needs (13, the audit chain's append barrier; 14 and 16, its head read
//! planned on every call; 16, the audit sequence's default dropped), in PostgreSQL's own
//! SQL. The service applies them on start;
//! `cargo run -p migration -- up` runs them on their own.

pub use sea_orm_migration::prelude::*;

mod m20261130_000001_create_tables;
mod m20261130_000002_create_reveal_requests;
mod m20261130_000003_create_data_keys;
mod m20261130_000004_add_blind_indexes;
mod m20261130_000005_index_foreign_keys;
mod m20261130_000006_index_ticket_scopes_by_id;
mod m20261201_000007_add_policy_version_to_audit_events;
mod m20261201_000008_add_preferred_language_to_customers;
mod m20261201_000009_create_idempotency_keys;
mod m20261201_000010_add_write_side_columns;
mod m20261202_000011_index_audit_chain_links;
mod m20261202_000012_index_unassigned_tickets_by_topic;
mod m20261203_000013_create_audit_append_barrier;
mod m20261204_000014_create_audit_chain_head;
mod m20261204_000015_index_tickets_by_customer_and_id;
mod m20261204_000016_number_audit_events_after_their_predecessor;
mod m20261205_000017_cover_customer_ticket_summaries;

pub use m20261203_000013_create_audit_append_barrier::{AUDIT_APPEND_BARRIER, AUDIT_CHAIN_LOCK};

/// The ordered list of needtoknow's migrations.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261130_000001_create_tables::Migration),
            Box::new(m20261130_000002_create_reveal_requests::Migration),
            Box::new(m20261130_000003_create_data_keys::Migration),
            Box::new(m20261130_000004_add_blind_indexes::Migration),
            Box::new(m20261130_000005_index_foreign_keys::Migration),
            Box::new(m20261130_000006_index_ticket_scopes_by_id::Migration),
            Box::new(m20261201_000007_add_policy_version_to_audit_events::Migration),
            Box::new(m20261201_000008_add_preferred_language_to_customers::Migration),
            Box::new(m20261201_000009_create_idempotency_keys::Migration),
            Box::new(m20261201_000010_add_write_side_columns::Migration),
            Box::new(m20261202_000011_index_audit_chain_links::Migration),
            Box::new(m20261202_000012_index_unassigned_tickets_by_topic::Migration),
            Box::new(m20261203_000013_create_audit_append_barrier::Migration),
            Box::new(m20261204_000014_create_audit_chain_head::Migration),
            Box::new(m20261204_000015_index_tickets_by_customer_and_id::Migration),
            Box::new(m20261204_000016_number_audit_events_after_their_predecessor::Migration),
            Box::new(m20261205_000017_cover_customer_ticket_summaries::Migration),
        ]
    }
}

/// Creates the plain index `name` on `table (columns…)`, unless it exists.
async fn create_index(
    manager: &SchemaManager<'_>,
    table: &str,
    name: &str,
    columns: &[&str],
) -> Result<(), DbErr> {
    let mut index = Index::create();
    index.if_not_exists().name(name).table(Alias::new(table));
    for column in columns {
        index.col(Alias::new(*column));
    }
    manager.create_index(index).await
}

/// Drops the index `name` of `table`, if it exists (a `down` may run on a database whose
/// `up` never built it).
async fn drop_index(manager: &SchemaManager<'_>, table: &str, name: &str) -> Result<(), DbErr> {
    manager
        .drop_index(
            Index::drop()
                .if_exists()
                .name(name)
                .table(Alias::new(table))
                .to_owned(),
        )
        .await
}

/// Runs `sql` (statements separated by semicolons) when the database is PostgreSQL, and
/// nothing on SQLite: the body of the migrations only PostgreSQL needs.
async fn on_postgres(manager: &SchemaManager<'_>, sql: &str) -> Result<(), DbErr> {
    use sea_orm_migration::sea_orm::{ConnectionTrait, DatabaseBackend};
    if manager.get_database_backend() != DatabaseBackend::Postgres {
        return Ok(());
    }
    manager
        .get_connection()
        .execute_unprepared(sql)
        .await
        .map(drop)
}
