//! `tickets (customer_id, id)` in place of `tickets (customer_id)`: the ids of a page's
//! customers' tickets, read from the index alone.
//!
//! A supervisor's page reads the chat history of its 50 customers' tickets, ticket by ticket
//! (`loaders::Records`). PostgreSQL found those tickets through the index on `customer_id`
//! and then read each ticket's row only for its id: about 260 table pages per page. With the
//! id in the index it scans the index alone, where the visibility map allows (autovacuum
//! keeps it; `needtoknow seed` vacuums after its bulk load): 0.3–0.7 ms less of the
//! server's time per page (BENCHMARKS.md, "2026-12-04, eleventh stop"). The new index serves
//! every query the old one did, so the old one is dropped. SQLite's indexes carry the row id,
//! which is a ticket's id, so there this changes nothing but the name.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

pub(crate) const INDEX: &str = "idx_tickets_customer_id_id";
const OLD_INDEX: &str = "idx_tickets_customer";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::create_index(manager, "tickets", INDEX, &["customer_id", "id"]).await?;
        crate::drop_index(manager, "tickets", OLD_INDEX).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::create_index(manager, "tickets", OLD_INDEX, &["customer_id"]).await?;
        crate::drop_index(manager, "tickets", INDEX).await
    }
}
