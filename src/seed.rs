//! `needtoknow seed`: a deterministic, realistic benchmark dataset — every topic and
//! status, encrypted personal data, payment methods, invoices, messages and
//! identity-document metadata — written in large batches so 100 000 tickets take seconds,
//! not minutes.
//!
//! The data is the Node.js benchmark peer's synthetic set (`apollo-shield`'s `seed.js`:
//! the same pseudo-random generator, seed and order of draws), so on a fresh database both
//! systems hold the same customers, tickets and messages under the same ids: 1–2 payment
//! methods and 2–4 invoices per customer, each ticket's customer drawn at random, topics in
//! turn, statuses open 40 % / pending / resolved / closed 20 % each, 2–4 messages per
//! ticket (some carrying an email, phone, date of birth or card number), and assignees by
//! topic: the frontline queues' tickets 50 % to `frontline`, 25 % to `frontline2`, 25 %
//! unassigned; billing 70 % to `billing`, identity verification 80 % to `identity`,
//! privacy requests unassigned; every ticket in team `support`.

use std::time::Instant;

use anyhow::Context;
use chrono::{Duration, TimeZone, Utc};
use entity::{attachment, customer, invoice, message, payment_method, ticket};
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
    /// Messages per ticket; `None` draws 2–4 per ticket.
    pub messages_per_ticket: Option<u32>,
}

/// Rows per INSERT statement (well under SQLite's bound-variable limit).
const BATCH: usize = 400;

const FIRST: [&str; 10] = [
    "Alex", "Sam", "Jordan", "Taylor", "Morgan", "Casey", "Riley", "Jamie", "Avery", "Quinn",
];
const LAST: [&str; 10] = [
    "Smith", "Jones", "Garcia", "Miller", "Davis", "Martin", "Lee", "Walker", "Young", "King",
];
const STREETS: [&str; 6] = [
    "Oak Street",
    "Station Road",
    "Harbour Lane",
    "Main Street",
    "Church Lane",
    "Park Avenue",
];
/// City, postal code, country, region.
const CITIES: [(&str, &str, &str, &str); 5] = [
    ("Springfield", "99501", "US", "us"),
    ("Portland", "97201", "US", "us"),
    ("Cambridge", "CB1 2AB", "GB", "eu"),
    ("Lyon", "69001", "FR", "eu"),
    ("Berlin", "10115", "DE", "eu"),
];
/// The topics in the peer's order: ticket `id` gets `TOPICS[id % 6]`.
const TOPICS: [&str; 6] = [
    "account_access",
    "billing",
    "shipping",
    "technical",
    "identity_verification",
    "privacy_request",
];
const STATUSES: [&str; 5] = ["open", "open", "pending", "resolved", "closed"];
const CARDS: [&str; 3] = [
    "4242 4242 4242 4242",
    "5555 5555 5555 4444",
    "4000 0566 5566 5556",
];
const AGENT_SAYS: [&str; 3] = [
    "Thanks, we are looking into it.",
    "Could you confirm the email on the account?",
    "This should be fixed now, let us know.",
];

/// The peer's pseudo-random numbers (mulberry32, as in its `seed.js`), so that a fresh
/// database seeded here holds the same customers, tickets and messages as the peer's.
struct Draws(u32);

impl Draws {
    fn new(seed: u32) -> Draws {
        Draws(seed)
    }

    /// A number in [0, 1).
    fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x6d2b_79f5);
        let seed = self.0;
        let mut t = (seed ^ (seed >> 15)).wrapping_mul(1 | seed);
        t = t.wrapping_add((t ^ (t >> 7)).wrapping_mul(61 | t)) ^ t;
        f64::from(t ^ (t >> 14)) / 4_294_967_296.0
    }

    /// An integer in [lo, hi].
    fn int(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next() * (hi - lo + 1) as f64).floor() as i64
    }

    /// One of `items`.
    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[(self.next() * items.len() as f64).floor() as usize]
    }
}

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
    let mut rng = Draws::new(42);
    let now = Utc::now();
    let epoch = Utc
        .with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
        .single()
        .context("date")?;
    let days_before = |days: i64| epoch - Duration::days(days);
    let txn = db.begin().await.context("starting the seed transaction")?;

    let first_customer = next_id::<customer::Entity>(&txn, customer::Column::Id).await?;
    let mut customers = Vec::new();
    let mut cards = Vec::new();
    let mut invoices = Vec::new();
    let mut keys = Vec::new();
    // What the customer's own messages may mention: email, phone, date of birth.
    let mut facts = Vec::new();
    let mut card_id = next_id::<payment_method::Entity>(&txn, payment_method::Column::Id).await?;
    let mut invoice_id = next_id::<invoice::Entity>(&txn, invoice::Column::Id).await?;
    for n in 0..size.customers {
        let id = first_customer + n as i32;
        let key = vault.create_data_key(&txn, id).await?;
        // The draws come in the order of the peer's seed.js, so both datasets are equal.
        let first = rng.pick(&FIRST);
        let last = rng.pick(&LAST);
        let street = format!("{} {}", rng.int(1, 250), rng.pick(&STREETS));
        let (city, postal_code, country, region) = rng.pick(&CITIES);
        let account_status = if rng.next() < 0.9 {
            "active"
        } else {
            "suspended"
        };
        let plan = rng.pick(&["basic", "pro", "enterprise"]);
        let customer_since = days_before(rng.int(30, 3000)).date_naive();
        let name = format!("{first} {last}");
        let email = format!("{first}.{last}.{id}@example.net").to_lowercase();
        let phone = format!("+1 555 {:04} {:04}", rng.int(0, 9999), rng.int(0, 9999));
        let born = format!(
            "{}-{:02}-{:02}",
            rng.int(1950, 2005),
            rng.int(1, 12),
            rng.int(1, 28)
        );
        let seal =
            |column: &str, value: &str| seal_field(&key, "customers", column, id, value.as_bytes());
        let blind = vault.blind()?;
        customers.push(customer::ActiveModel {
            id: Set(id),
            account_status: Set(account_status.into()),
            plan: Set(plan.into()),
            customer_since: Set(customer_since),
            region: Set(region.into()),
            full_name: Set(seal("full_name", &name)),
            email: Set(seal("email", &email)),
            phone: Set(seal("phone", &phone)),
            street: Set(seal("street", &street)),
            city: Set(seal("city", city)),
            postal_code: Set(seal("postal_code", postal_code)),
            country: Set(seal("country", country)),
            date_of_birth: Set(seal("date_of_birth", &born)),
            email_index: Set(Some(blind.email(&email))),
            phone_index: Set(Some(blind.phone(&phone))),
            // Columns added later take their database defaults.
            ..Default::default()
        });
        for _ in 0..rng.int(1, 2) {
            let seal_card = |column: &str, value: &str| {
                seal_field(&key, "payment_methods", column, card_id, value.as_bytes())
            };
            cards.push(payment_method::ActiveModel {
                id: Set(card_id),
                customer_id: Set(id),
                brand: Set(rng.pick(&["Visa", "Mastercard", "Amex"]).into()),
                last4: Set(format!("{:04}", rng.int(0, 9999))),
                exp_month: Set(rng.int(1, 12) as i32),
                exp_year: Set(rng.int(2026, 2031) as i32),
                billing_street: Set(seal_card("billing_street", &street)),
                billing_city: Set(seal_card("billing_city", city)),
                billing_postal_code: Set(seal_card("billing_postal_code", postal_code)),
                billing_country: Set(seal_card("billing_country", country)),
            });
            card_id += 1;
        }
        for _ in 0..rng.int(2, 4) {
            let issued = rng.int(1, 700);
            let status = rng.pick(&["paid", "paid", "open", "refunded"]);
            invoices.push(invoice::ActiveModel {
                id: Set(invoice_id),
                customer_id: Set(id),
                number: Set(format!("INV-{}", 100_000 + invoice_id)),
                amount_cents: Set(rng.int(500, 20_000)),
                currency: Set("USD".into()),
                status: Set(status.into()),
                issued_at: Set(days_before(issued)),
                paid_at: Set((status != "open").then(|| days_before(issued - 1))),
            });
            invoice_id += 1;
        }
        keys.push(key);
        facts.push((email, phone, born));
    }
    insert(&txn, customers).await?;
    insert(&txn, cards).await?;
    insert(&txn, invoices).await?;

    let agent_id = |handle: &str| agents.get(handle).map(|a| a.id);
    let first_ticket = next_id::<ticket::Entity>(&txn, ticket::Column::Id).await?;
    let first_message = next_id::<message::Entity>(&txn, message::Column::Id).await?;
    let first_attachment = next_id::<attachment::Entity>(&txn, attachment::Column::Id).await?;
    let mut tickets = Vec::new();
    let mut messages = Vec::new();
    let mut attachments = Vec::new();
    let mut message_id = first_message;
    let mut attachment_id = first_attachment;
    for n in 0..size.tickets {
        let id = first_ticket + n as i32;
        let owner = (rng.int(1, i64::from(size.customers.max(1))) - 1) as usize;
        let customer_id = first_customer + owner as i32;
        let topic = TOPICS[id as usize % TOPICS.len()];
        let status = rng.pick(&STATUSES);
        let created = days_before(rng.int(3, 700));
        let channel = rng.pick(&["email", "chat", "phone"]);
        let draw = rng.next();
        let assignee = match topic {
            "billing" => (draw < 0.7).then_some("billing"),
            "identity_verification" => (draw < 0.8).then_some("identity"),
            "privacy_request" => None,
            _ if draw < 0.5 => Some("frontline"),
            _ if draw < 0.75 => Some("frontline2"),
            _ => None,
        };
        tickets.push(ticket::ActiveModel {
            id: Set(id),
            customer_id: Set(customer_id),
            team: Set(DEMO_TEAM.into()),
            topic: Set(topic.into()),
            status: Set(status.into()),
            subject: Set(format!("Synthetic {topic} request #{id}")),
            channel: Set(channel.into()),
            assignee_id: Set(assignee.and_then(agent_id)),
            created_at: Set(created),
            resolved_at: Set(matches!(status, "resolved" | "closed")
                .then(|| (created + Duration::days(2)).min(now))),
            external_id: Set(None),
        });
        let key = &keys[owner];
        let (email, phone, born) = &facts[owner];
        let card = rng.pick(&CARDS);
        let count = match size.messages_per_ticket {
            Some(count) => i64::from(count),
            None => rng.int(2, 4),
        };
        for k in 0..count {
            let body = if k % 2 == 0 {
                match rng.int(0, 4) {
                    0 => format!(
                        "Hello, I need help with my {} issue.",
                        topic.replacen('_', " ", 1)
                    ),
                    1 => format!("Please call me at {phone} or write to {email}."),
                    2 => format!("I paid with my card {card} last week."),
                    3 => format!("My date of birth is {born}, if that helps."),
                    _ => "Any update on this? It has been a few days.".to_owned(),
                }
            } else {
                rng.pick(&AGENT_SAYS).to_owned()
            };
            let body = redact_cards_for_storage(&body);
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
                created_at: Set(created + Duration::hours(k)),
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
            "invoices",
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
        // A bulk load leaves PostgreSQL without statistics and without a visibility map
        // until autovacuum comes by (and where it is off, never): meanwhile the planner
        // scans whole tables for the batched loads' IN lists, and cannot answer a page's
        // scopes from their indexes alone. Do now what autovacuum would do.
        db.execute_unprepared("VACUUM ANALYZE")
            .await
            .context("vacuuming and refreshing the planner's statistics")?;
    }
    tracing::info!(
        customers = size.customers,
        tickets = size.tickets,
        seconds = started.elapsed().as_secs_f64(),
        "seeded"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The peer's `seed.js` draws `0.6011037519201636 0.44829055899754167
    /// 0.8524657934904099` first from seed 42 (node 20); the same draws give the same data.
    #[test]
    fn the_draws_are_the_peers() {
        let mut draws = Draws::new(42);
        assert_eq!(
            [draws.next(), draws.next(), draws.next()],
            [0.6011037519201636, 0.44829055899754167, 0.8524657934904099]
        );
    }
}
