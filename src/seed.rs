//! `needtoknow seed`: a deterministic, realistic benchmark dataset — every topic and
//! status, encrypted personal data, messages and identity-document metadata — written in
//! large batches so 100 000 tickets take seconds, not minutes.

use std::time::Instant;

use anyhow::Context;
use chrono::{Duration, NaiveDate, TimeZone, Utc};
use entity::{attachment, customer, message, payment_method, ticket};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sea_orm::{
    ConnectionTrait, DatabaseBackend, DatabaseConnection, EntityTrait, QuerySelect,
    TransactionTrait,
};

use crate::crypto::vault::{seal_field, Vault};
use crate::customers::mask::redact_cards_for_storage;
use crate::demo::{ensure_agents, DEMO_TEAM};
use crate::policy::PolicySet;

/// What to generate.
#[derive(Clone, Copy, Debug)]
pub struct SeedSize {
    /// Customers.
    pub customers: u32,
    /// Tickets, spread over the customers.
    pub tickets: u32,
    /// Messages per ticket.
    pub messages_per_ticket: u32,
}

/// Rows per INSERT statement (well under SQLite's bound-variable limit).
const BATCH: usize = 400;

const FIRST: [&str; 8] = ["Alex", "Sam", "Robin", "Kim", "Jo", "Chris", "Pat", "Lee"];
const LAST: [&str; 8] = [
    "Rivera",
    "Okafor",
    "Lindqvist",
    "Nakamura",
    "Dubois",
    "Kowalski",
    "Haddad",
    "Moreau",
];
const CITIES: [(&str, &str); 4] = [
    ("Springfield", "US"),
    ("Cambridge", "GB"),
    ("Lyon", "FR"),
    ("Graz", "AT"),
];

async fn next_id<E: EntityTrait>(
    db: &impl ConnectionTrait,
    column: E::Column,
) -> anyhow::Result<i32> {
    let max: Option<Option<i32>> = E::find()
        .select_only()
        .column_as(sea_orm::ColumnTrait::max(&column), "max")
        .into_tuple()
        .one(db)
        .await
        .context("reading the highest id")?;
    Ok(max.flatten().unwrap_or(0) + 1)
}

async fn insert<A>(db: &impl ConnectionTrait, rows: Vec<A>) -> anyhow::Result<()>
where
    A: sea_orm::ActiveModelTrait + Send,
{
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let chunk: Vec<A> = rows.by_ref().take(BATCH).collect();
        <A::Entity as EntityTrait>::insert_many(chunk)
            .exec_without_returning(db)
            .await
            .context("inserting seed rows")?;
    }
    Ok(())
}

/// Generates the dataset (the demo agents are created if missing, so their tokens work).
/// Ids are assigned here, since each ciphertext is bound to its row id.
pub async fn seed(
    db: &DatabaseConnection,
    policy: &PolicySet,
    vault: &Vault,
    size: SeedSize,
) -> anyhow::Result<()> {
    use sea_orm::Set;
    let started = Instant::now();
    let agents = ensure_agents(&crate::writer::Writer::new(db.clone()), policy).await?;
    let topics = policy.vocabulary().topics.clone();
    let mut rng = StdRng::seed_from_u64(0x6e74_6b21);
    let now = Utc::now();
    let txn = db.begin().await.context("starting the seed transaction")?;

    let first_customer = next_id::<customer::Entity>(&txn, customer::Column::Id).await?;
    let mut customers = Vec::new();
    let mut cards = Vec::new();
    let mut keys = Vec::new();
    let first_card = next_id::<payment_method::Entity>(&txn, payment_method::Column::Id).await?;
    for n in 0..size.customers {
        let id = first_customer + n as i32;
        let key = vault.create_data_key(&txn, id).await?;
        let name = format!("{} {}", FIRST[n as usize % 8], LAST[(n as usize / 8) % 8]);
        let email = format!("customer{id}@example.net");
        let phone = format!(
            "+1 555 {:04} {:04}",
            id % 10_000,
            rng.random_range(0..10_000)
        );
        let (city, country) = CITIES[n as usize % CITIES.len()];
        let street = format!("{} Test Street", 1 + n % 200);
        let born = format!("{}-{:02}-{:02}", 1950 + n % 50, 1 + n % 12, 1 + n % 28);
        let seal =
            |column: &str, value: &str| seal_field(&key, "customers", column, id, value.as_bytes());
        let blind = vault.blind()?;
        customers.push(customer::ActiveModel {
            id: Set(id),
            account_status: Set("active".into()),
            plan: Set(["basic", "premium"][n as usize % 2].into()),
            customer_since: Set(
                NaiveDate::from_ymd_opt(2015 + (n % 10) as i32, 1 + n % 12, 1).context("date")?,
            ),
            region: Set(country.into()),
            full_name: Set(seal("full_name", &name)),
            email: Set(seal("email", &email)),
            phone: Set(seal("phone", &phone)),
            street: Set(seal("street", &street)),
            city: Set(seal("city", city)),
            postal_code: Set(seal("postal_code", "12345")),
            country: Set(seal("country", country)),
            date_of_birth: Set(seal("date_of_birth", &born)),
            email_index: Set(Some(blind.email(&email))),
            phone_index: Set(Some(blind.phone(&phone))),
            // Columns added later take their database defaults.
            ..Default::default()
        });
        let card_id = first_card + n as i32;
        let seal_card = |column: &str, value: &str| {
            seal_field(&key, "payment_methods", column, card_id, value.as_bytes())
        };
        cards.push(payment_method::ActiveModel {
            id: Set(card_id),
            customer_id: Set(id),
            brand: Set(["Visa", "Mastercard"][n as usize % 2].into()),
            last4: Set(format!("{:04}", rng.random_range(0..10_000))),
            exp_month: Set(1 + (n % 12) as i32),
            exp_year: Set(2027 + (n % 4) as i32),
            billing_street: Set(seal_card("billing_street", &street)),
            billing_city: Set(seal_card("billing_city", city)),
            billing_postal_code: Set(seal_card("billing_postal_code", "12345")),
            billing_country: Set(seal_card("billing_country", country)),
        });
        keys.push(key);
    }
    insert(&txn, customers).await?;
    insert(&txn, cards).await?;

    let assignees: Vec<Option<i32>> = ["frontline", "frontline2", "billing", "identity"]
        .iter()
        .map(|h| agents.get(h).map(|a| a.id))
        .chain([None])
        .collect();
    let first_ticket = next_id::<ticket::Entity>(&txn, ticket::Column::Id).await?;
    let first_message = next_id::<message::Entity>(&txn, message::Column::Id).await?;
    let first_attachment = next_id::<attachment::Entity>(&txn, attachment::Column::Id).await?;
    let mut tickets = Vec::new();
    let mut messages = Vec::new();
    let mut attachments = Vec::new();
    let mut message_id = first_message;
    let mut attachment_id = first_attachment;
    let base = Utc
        .with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
        .single()
        .context("date")?;
    for n in 0..size.tickets {
        let id = first_ticket + n as i32;
        let owner = (n % size.customers.max(1)) as usize;
        let customer_id = first_customer + owner as i32;
        let topic = &topics[n as usize % topics.len()];
        let statuses = crate::vocabulary::TicketStatus::ALL;
        let status = statuses[(n as usize / topics.len()) % statuses.len()].as_str();
        let created = base + Duration::minutes(i64::from(n));
        tickets.push(ticket::ActiveModel {
            id: Set(id),
            customer_id: Set(customer_id),
            team: Set(DEMO_TEAM.into()),
            topic: Set(topic.clone()),
            status: Set(status.into()),
            subject: Set(format!("Seeded ticket {n} about {topic}")),
            channel: Set(["email", "chat", "web", "phone"][n as usize % 4].into()),
            assignee_id: Set(assignees[n as usize % assignees.len()]),
            created_at: Set(created),
            resolved_at: Set(matches!(status, "resolved" | "closed").then(|| created.min(now))),
            external_id: Set(None),
        });
        let key = &keys[owner];
        for k in 0..size.messages_per_ticket {
            let body = redact_cards_for_storage(&format!(
                "Message {k} on ticket {n}: please call me at +1 555 {:04} {:04}.",
                rng.random_range(0..10_000),
                rng.random_range(0..10_000)
            ));
            messages.push(message::ActiveModel {
                id: Set(message_id),
                ticket_id: Set(id),
                author_kind: Set(["customer", "agent"][k as usize % 2].into()),
                author_agent_id: Set(None),
                body: Set(seal_field(
                    key,
                    "messages",
                    "body",
                    message_id,
                    body.as_bytes(),
                )),
                created_at: Set(created + Duration::seconds(i64::from(k))),
                external_id: Set(None),
            });
            message_id += 1;
        }
        if topic == "identity_verification" {
            let content = b"seeded identity document".to_vec();
            attachments.push(attachment::ActiveModel {
                id: Set(attachment_id),
                ticket_id: Set(id),
                kind: Set("id_document".into()),
                file_name: Set(format!("id-{n}.png")),
                size_bytes: Set(content.len() as i64),
                content: Set(seal_field(
                    key,
                    "attachments",
                    "content",
                    attachment_id,
                    &content,
                )),
                purge_after: Set(None),
                created_at: Set(created),
                wrapped_key: Set(None),
                external_id: Set(None),
            });
            attachment_id += 1;
        }
    }
    insert(&txn, tickets).await?;
    insert(&txn, messages).await?;
    insert(&txn, attachments).await?;
    if txn.get_database_backend() == DatabaseBackend::Postgres {
        // Explicit ids leave the serial sequences behind; move them past the new rows.
        for table in [
            "customers",
            "payment_methods",
            "tickets",
            "messages",
            "attachments",
        ] {
            txn.execute_unprepared(&format!(
                "SELECT setval(pg_get_serial_sequence('{table}', 'id'), COALESCE((SELECT MAX(id) FROM {table}), 1))"
            ))
            .await
            .context("advancing a sequence")?;
        }
    }
    txn.commit().await.context("committing the seed")?;
    if db.get_database_backend() == sea_orm::DatabaseBackend::Postgres {
        // A bulk load leaves PostgreSQL's planner without statistics until autovacuum
        // comes by; meanwhile it scans whole tables for the batched loads' IN lists.
        db.execute_unprepared("ANALYZE")
            .await
            .context("refreshing the planner's statistics")?;
    }
    tracing::info!(
        customers = size.customers,
        tickets = size.tickets,
        seconds = started.elapsed().as_secs_f64(),
        "seeded"
    );
    Ok(())
}
