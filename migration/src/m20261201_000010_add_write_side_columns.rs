//! Columns the write side needs:
//! - `customers.external_id`, `tickets.external_id`, `messages.external_id`,
//!   `attachments.external_id`: the id a
//!   helpdesk, CRM or chat system gives the record, so an intake delivery or an import
//!   finds what it wrote before instead of writing it twice (unique where set);
//! - `agents.kind`: `agent` (a person) or `service` (a channel integration's account, which
//!   SSO never signs in);
//! - `audit_events.idempotency_key`: the `Idempotency-Key` a write was delivered under;
//! - `attachments.wrapped_key`: the attachment's own data key, sealed under its customer's
//!   key (null for rows sealed directly under the customer's key before this column).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// (table, column, definition) in the order they are added. SQLite alters one column per
/// statement, so each is its own `ALTER TABLE`.
fn columns() -> Vec<(&'static str, ColumnDef)> {
    vec![
        (
            "customers",
            ColumnDef::new(Alias::new("external_id"))
                .string()
                .null()
                .to_owned(),
        ),
        (
            "tickets",
            ColumnDef::new(Alias::new("external_id"))
                .string()
                .null()
                .to_owned(),
        ),
        (
            "messages",
            ColumnDef::new(Alias::new("external_id"))
                .string()
                .null()
                .to_owned(),
        ),
        (
            "attachments",
            ColumnDef::new(Alias::new("external_id"))
                .string()
                .null()
                .to_owned(),
        ),
        (
            "agents",
            ColumnDef::new(Alias::new("kind"))
                .string()
                .not_null()
                .default("agent")
                .to_owned(),
        ),
        (
            "audit_events",
            ColumnDef::new(Alias::new("idempotency_key"))
                .string()
                .null()
                .to_owned(),
        ),
        (
            "attachments",
            ColumnDef::new(Alias::new("wrapped_key"))
                .binary()
                .null()
                .to_owned(),
        ),
    ]
}

/// (table, column) of every column `columns` adds, for `down`.
const ADDED: [(&str, &str); 7] = [
    ("customers", "external_id"),
    ("tickets", "external_id"),
    ("messages", "external_id"),
    ("attachments", "external_id"),
    ("agents", "kind"),
    ("audit_events", "idempotency_key"),
    ("attachments", "wrapped_key"),
];

/// The unique indexes on external ids (several NULLs are allowed on both databases).
const EXTERNAL: [(&str, &str); 4] = [
    ("customers", "ux_customers_external_id"),
    ("tickets", "ux_tickets_external_id"),
    ("messages", "ux_messages_external_id"),
    ("attachments", "ux_attachments_external_id"),
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (table, mut column) in columns() {
            manager
                .alter_table(
                    Table::alter()
                        .table(Alias::new(table))
                        .add_column(&mut column)
                        .to_owned(),
                )
                .await?;
        }
        for (table, index) in EXTERNAL {
            manager
                .create_index(
                    Index::create()
                        .name(index)
                        .table(Alias::new(table))
                        .col(Alias::new("external_id"))
                        .unique()
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (table, index) in EXTERNAL {
            manager
                .drop_index(
                    Index::drop()
                        .name(index)
                        .table(Alias::new(table))
                        .to_owned(),
                )
                .await?;
        }
        for (table, name) in ADDED.into_iter().rev() {
            manager
                .alter_table(
                    Table::alter()
                        .table(Alias::new(table))
                        .drop_column(Alias::new(name))
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
