//! The initial data model: agents and tokens, customers, payment methods, invoices,
//! tickets, messages, attachments, consents and the audit trail.
//!
//! Personal-data columns are marked below; they are binary and hold AES-256-GCM-SIV
//! envelopes sealed with the customer's data key, never plaintext.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Meta::Table)
                    .if_not_exists()
                    .col(string(Meta::Key).primary_key())
                    .col(text(Meta::Value))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Agents::Table)
                    .if_not_exists()
                    .col(pk_auto(Agents::Id))
                    .col(string_uniq(Agents::Handle))
                    .col(string(Agents::DisplayName))
                    .col(string(Agents::Role))
                    .col(string(Agents::Team))
                    // A JSON array of topic names: queues are read with the agent, never joined.
                    .col(text(Agents::Queues))
                    .col(boolean(Agents::Active))
                    .col(timestamp_with_time_zone(Agents::CreatedAt))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(ApiTokens::Table)
                    .if_not_exists()
                    .col(pk_auto(ApiTokens::Id))
                    .col(integer(ApiTokens::AgentId))
                    // SHA-256 of the token: tokens are 256-bit random, so a fast hash suffices.
                    .col(string_uniq(ApiTokens::TokenHash))
                    .col(timestamp_with_time_zone(ApiTokens::CreatedAt))
                    .col(timestamp_with_time_zone_null(ApiTokens::RevokedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(ApiTokens::Table, ApiTokens::AgentId)
                            .to(Agents::Table, Agents::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Customers::Table)
                    .if_not_exists()
                    .col(pk_auto(Customers::Id))
                    .col(string(Customers::AccountStatus))
                    .col(string(Customers::Plan))
                    .col(date(Customers::CustomerSince))
                    .col(string(Customers::Region))
                    // Personal data.
                    .col(blob(Customers::FullName))
                    .col(blob(Customers::Email))
                    .col(blob(Customers::Phone))
                    .col(blob(Customers::Street))
                    .col(blob(Customers::City))
                    .col(blob(Customers::PostalCode))
                    .col(blob(Customers::Country))
                    .col(blob(Customers::DateOfBirth))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(PaymentMethods::Table)
                    .if_not_exists()
                    .col(pk_auto(PaymentMethods::Id))
                    .col(integer(PaymentMethods::CustomerId))
                    .col(string(PaymentMethods::Brand))
                    .col(string_len(PaymentMethods::Last4, 4))
                    .col(integer(PaymentMethods::ExpMonth))
                    .col(integer(PaymentMethods::ExpYear))
                    // Personal data: the billing address.
                    .col(blob(PaymentMethods::BillingStreet))
                    .col(blob(PaymentMethods::BillingCity))
                    .col(blob(PaymentMethods::BillingPostalCode))
                    .col(blob(PaymentMethods::BillingCountry))
                    .foreign_key(
                        ForeignKey::create()
                            .from(PaymentMethods::Table, PaymentMethods::CustomerId)
                            .to(Customers::Table, Customers::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Invoices::Table)
                    .if_not_exists()
                    .col(pk_auto(Invoices::Id))
                    .col(integer(Invoices::CustomerId))
                    .col(string_uniq(Invoices::Number))
                    .col(big_integer(Invoices::AmountCents))
                    .col(string_len(Invoices::Currency, 3))
                    .col(string(Invoices::Status))
                    .col(timestamp_with_time_zone(Invoices::IssuedAt))
                    .col(timestamp_with_time_zone_null(Invoices::PaidAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Invoices::Table, Invoices::CustomerId)
                            .to(Customers::Table, Customers::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Tickets::Table)
                    .if_not_exists()
                    .col(pk_auto(Tickets::Id))
                    .col(integer(Tickets::CustomerId))
                    .col(string(Tickets::Team))
                    .col(string(Tickets::Topic))
                    .col(string(Tickets::Status))
                    .col(text(Tickets::Subject))
                    .col(string(Tickets::Channel))
                    .col(integer_null(Tickets::AssigneeId))
                    .col(timestamp_with_time_zone(Tickets::CreatedAt))
                    .col(timestamp_with_time_zone_null(Tickets::ResolvedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Tickets::Table, Tickets::CustomerId)
                            .to(Customers::Table, Customers::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(Tickets::Table, Tickets::AssigneeId)
                            .to(Agents::Table, Agents::Id)
                            .on_delete(ForeignKeyAction::SetNull),
                    )
                    .to_owned(),
            )
            .await?;
        // The visibility scopes filter on these columns; the list is ordered by id.
        for (name, cols) in [
            ("idx_tickets_assignee", vec![Tickets::AssigneeId]),
            (
                "idx_tickets_topic_assignee",
                vec![Tickets::Topic, Tickets::AssigneeId],
            ),
            ("idx_tickets_team", vec![Tickets::Team]),
            ("idx_tickets_customer", vec![Tickets::CustomerId]),
        ] {
            let mut index = Index::create();
            index.if_not_exists().name(name).table(Tickets::Table);
            for col in cols {
                index.col(col);
            }
            manager.create_index(index.to_owned()).await?;
        }

        manager
            .create_table(
                Table::create()
                    .table(Messages::Table)
                    .if_not_exists()
                    .col(pk_auto(Messages::Id))
                    .col(integer(Messages::TicketId))
                    .col(string(Messages::AuthorKind))
                    .col(integer_null(Messages::AuthorAgentId))
                    // Personal data.
                    .col(blob(Messages::Body))
                    .col(timestamp_with_time_zone(Messages::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Messages::Table, Messages::TicketId)
                            .to(Tickets::Table, Tickets::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("idx_messages_ticket")
                    .table(Messages::Table)
                    .col(Messages::TicketId)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Attachments::Table)
                    .if_not_exists()
                    .col(pk_auto(Attachments::Id))
                    .col(integer(Attachments::TicketId))
                    .col(string(Attachments::Kind))
                    .col(string(Attachments::FileName))
                    .col(big_integer(Attachments::SizeBytes))
                    // Personal data.
                    .col(blob(Attachments::Content))
                    .col(timestamp_with_time_zone_null(Attachments::PurgeAfter))
                    .col(timestamp_with_time_zone(Attachments::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Attachments::Table, Attachments::TicketId)
                            .to(Tickets::Table, Tickets::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Consents::Table)
                    .if_not_exists()
                    .col(pk_auto(Consents::Id))
                    .col(integer(Consents::CustomerId))
                    .col(string(Consents::Kind))
                    .col(string(Consents::NoticeVersion))
                    .col(timestamp_with_time_zone(Consents::GivenAt))
                    .col(timestamp_with_time_zone_null(Consents::WithdrawnAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Consents::Table, Consents::CustomerId)
                            .to(Customers::Table, Customers::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;

        // No foreign keys: the trail outlives the agents, customers and tickets it names.
        manager
            .create_table(
                Table::create()
                    .table(AuditEvents::Table)
                    .if_not_exists()
                    .col(pk_auto(AuditEvents::Seq))
                    .col(timestamp_with_time_zone(AuditEvents::OccurredAt))
                    .col(integer_null(AuditEvents::ActorAgentId))
                    .col(string(AuditEvents::ActorRole))
                    .col(string(AuditEvents::Action))
                    .col(integer_null(AuditEvents::CustomerId))
                    .col(integer_null(AuditEvents::TicketId))
                    .col(text(AuditEvents::Fields))
                    .col(text_null(AuditEvents::Reason))
                    .col(string(AuditEvents::RequestId))
                    .col(string(AuditEvents::PrevHash))
                    .col(string(AuditEvents::Hash))
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            AuditEvents::Table.into_iden(),
            Consents::Table.into_iden(),
            Attachments::Table.into_iden(),
            Messages::Table.into_iden(),
            Tickets::Table.into_iden(),
            Invoices::Table.into_iden(),
            PaymentMethods::Table.into_iden(),
            Customers::Table.into_iden(),
            ApiTokens::Table.into_iden(),
            Agents::Table.into_iden(),
            Meta::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Meta {
    Table,
    Key,
    Value,
}

#[derive(DeriveIden)]
enum Agents {
    Table,
    Id,
    Handle,
    DisplayName,
    Role,
    Team,
    Queues,
    Active,
    CreatedAt,
}

#[derive(DeriveIden)]
enum ApiTokens {
    Table,
    Id,
    AgentId,
    TokenHash,
    CreatedAt,
    RevokedAt,
}

#[derive(DeriveIden)]
enum Customers {
    Table,
    Id,
    AccountStatus,
    Plan,
    CustomerSince,
    Region,
    FullName,
    Email,
    Phone,
    Street,
    City,
    PostalCode,
    Country,
    DateOfBirth,
}

#[derive(DeriveIden)]
enum PaymentMethods {
    Table,
    Id,
    CustomerId,
    Brand,
    Last4,
    ExpMonth,
    ExpYear,
    BillingStreet,
    BillingCity,
    BillingPostalCode,
    BillingCountry,
}

#[derive(DeriveIden)]
enum Invoices {
    Table,
    Id,
    CustomerId,
    Number,
    AmountCents,
    Currency,
    Status,
    IssuedAt,
    PaidAt,
}

#[derive(DeriveIden)]
enum Tickets {
    Table,
    Id,
    CustomerId,
    Team,
    Topic,
    Status,
    Subject,
    Channel,
    AssigneeId,
    CreatedAt,
    ResolvedAt,
}

#[derive(DeriveIden)]
enum Messages {
    Table,
    Id,
    TicketId,
    AuthorKind,
    AuthorAgentId,
    Body,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Attachments {
    Table,
    Id,
    TicketId,
    Kind,
    FileName,
    SizeBytes,
    Content,
    PurgeAfter,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Consents {
    Table,
    Id,
    CustomerId,
    Kind,
    NoticeVersion,
    GivenAt,
    WithdrawnAt,
}

#[derive(DeriveIden)]
enum AuditEvents {
    Table,
    Seq,
    OccurredAt,
    ActorAgentId,
    ActorRole,
    Action,
    CustomerId,
    TicketId,
    Fields,
    Reason,
    RequestId,
    PrevHash,
    Hash,
}
