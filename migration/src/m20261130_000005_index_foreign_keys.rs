//! Indexes on the columns batched loads and reports filter by. Without them a page's
//! payment methods, invoices and identity documents were found by scanning whole tables,
//! so a page got slower as the database grew (seen in the end-to-end benchmark at 100 000
//! tickets).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// (index name, table, column).
fn indexes() -> [(&'static str, Alias, Alias); 7] {
    [
        (
            "idx_payment_methods_customer",
            Alias::new("payment_methods"),
            Alias::new("customer_id"),
        ),
        (
            "idx_invoices_customer",
            Alias::new("invoices"),
            Alias::new("customer_id"),
        ),
        (
            "idx_attachments_ticket",
            Alias::new("attachments"),
            Alias::new("ticket_id"),
        ),
        (
            "idx_audit_events_customer",
            Alias::new("audit_events"),
            Alias::new("customer_id"),
        ),
        (
            "idx_audit_events_ticket",
            Alias::new("audit_events"),
            Alias::new("ticket_id"),
        ),
        (
            "idx_consents_customer",
            Alias::new("consents"),
            Alias::new("customer_id"),
        ),
        (
            "idx_api_tokens_agent",
            Alias::new("api_tokens"),
            Alias::new("agent_id"),
        ),
    ]
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (name, table, column) in indexes() {
            manager
                .create_index(
                    Index::create()
                        .if_not_exists()
                        .name(name)
                        .table(table)
                        .col(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (name, table, _) in indexes() {
            manager
                .drop_index(Index::drop().name(name).table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
