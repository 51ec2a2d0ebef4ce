//! `tickets (customer_id, id)` carrying the columns of a ticket summary (topic, status,
//! subject, opened and resolved times), in place of migration 15's index on the first two.
//!
//! Every page lists its customers' other tickets (`loaders::Loaders::tickets_of_customer`):
//! about 550 summaries for a page of 50 tickets, which PostgreSQL found through the index
//! and then read from about 260 pages of the table, and sorted. With the summary's columns
//! in the index it reads them from the index alone (where the visibility map allows:
//! autovacuum keeps it, `needtoknow seed` vacuums after its bulk load), already in the order
//! the loader asks for (customer, then id): 0.36 → 0.11 ms of the server's time per page
//! (BENCHMARKS.md, "2026-12-05, sixteenth stop"). PostgreSQL keeps the carried columns
//! out of the key (`INCLUDE`); SQLite has no such clause, so there they are key columns
//! after the id, which orders nothing differently since the id is unique.
//!
//! The new index serves every query migration 15's did, so that one is dropped. The price
//! is a larger index (about 2 MB instead of 0.6 for 20 000 tickets) and a status change
//! that now updates an index.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DatabaseBackend;

use crate::m20261204_000015_index_tickets_by_customer_and_id as fifteen;

#[derive(DeriveMigrationName)]
pub struct Migration;

const INDEX: &str = "idx_tickets_customer_summaries";

/// The columns a ticket summary reads besides its key.
const CARRIED: [&str; 5] = ["topic", "status", "subject", "created_at", "resolved_at"];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let mut index = Index::create();
        index
            .if_not_exists()
            .name(INDEX)
            .table(Alias::new("tickets"))
            .col(Alias::new("customer_id"))
            .col(Alias::new("id"));
        for column in CARRIED {
            if manager.get_database_backend() == DatabaseBackend::Postgres {
                index.include(Alias::new(column));
            } else {
                index.col(Alias::new(column));
            }
        }
        manager.create_index(index).await?;
        crate::drop_index(manager, "tickets", fifteen::INDEX).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::create_index(manager, "tickets", fifteen::INDEX, &["customer_id", "id"]).await?;
        crate::drop_index(manager, "tickets", INDEX).await
    }
}
