//! The demo dataset (README, "A five-minute tour"), seeded by `serve --demo`, and the demo
//! agents' tokens.
//!
//! Seeding is idempotent: a marker row in `meta` records it, inside the same transaction.
//! Tokens survive restarts: `<data dir>/demo-tokens.json` is reused while its tokens still
//! authenticate; missing or revoked ones are replaced and the file rewritten.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use chrono::{Duration, NaiveDate, TimeZone, Utc};
use entity::{agent, attachment, consent, customer, invoice, meta, payment_method, ticket};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, Set,
    TransactionTrait,
};

use crate::agents::{self, NewAgent};
use crate::crypto::vault::{seal_field, DataKey, Vault};
use crate::policy::PolicySet;

const MARKER: &str = "demo_seeded_at";

/// The demo agents: handle, display name, role, queues. All are in team `support`.
pub const DEMO_AGENTS: [(&str, &str, &str, &[&str]); 6] = [
    (
        "frontline",
        "Frontline Agent",
        "frontline",
        &["account_access", "shipping", "technical"],
    ),
    (
        "frontline2",
        "Second Frontline Agent",
        "frontline",
        &["account_access", "shipping", "technical"],
    ),
    ("billing", "Billing Specialist", "billing", &["billing"]),
    (
        "identity",
        "Identity Specialist",
        "identity",
        &["identity_verification"],
    ),
    ("supervisor", "Support Supervisor", "supervisor", &[]),
    ("auditor", "Auditor", "auditor", &[]),
];

/// The team of every demo agent and ticket.
pub const DEMO_TEAM: &str = "support";

/// Seeds the demo dataset unless it is already there.
pub async fn seed(
    db: &DatabaseConnection,
    policy: &PolicySet,
    vault: &Vault,
) -> anyhow::Result<()> {
    if meta::Entity::find_by_id(MARKER.to_owned())
        .one(db)
        .await
        .context("checking for demo data")?
        .is_some()
    {
        tracing::info!("demo data already present");
        return Ok(());
    }
    let agent_ids = ensure_agents(db, policy).await?;
    let txn = db.begin().await.context("starting the demo transaction")?;
    let now = Utc::now();

    let (robin, robin_key) = insert_customer(
        &txn,
        vault,
        ["active", "premium", "US"],
        date(2019, 3, 14)?,
        [
            "Robin Sample",
            "robin.sample@example.com",
            "+1 555 0100 2233",
        ],
        ["12 Harbour Lane", "Springfield", "99501", "US"],
        "1984-07-19",
    )
    .await?;
    let (kim, kim_key) = insert_customer(
        &txn,
        vault,
        ["active", "basic", "GB"],
        date(2021, 6, 1)?,
        [
            "Kim Placeholder",
            "kim.placeholder@example.org",
            "+44 20 7946 0958",
        ],
        ["3 Mill Road", "Cambridge", "CB1 2AB", "GB"],
        "1990-02-03",
    )
    .await?;
    insert_card(
        &txn,
        &robin_key,
        robin,
        "Visa",
        "4242",
        (8, 2029),
        ["12 Harbour Lane", "Springfield", "99501", "US"],
    )
    .await?;
    insert_card(
        &txn,
        &kim_key,
        kim,
        "Mastercard",
        "5454",
        (1, 2028),
        ["3 Mill Road", "Cambridge", "CB1 2AB", "GB"],
    )
    .await?;
    // Robin agreed to chat recording, so their resolved transcripts are kept (365 days by
    // default) rather than purged at once.
    consent::ActiveModel {
        customer_id: Set(robin),
        kind: Set("recording".into()),
        notice_version: Set("2026-01".into()),
        given_at: Set(now - Duration::days(30)),
        withdrawn_at: Set(None),
        ..Default::default()
    }
    .insert(&txn)
    .await
    .context("inserting a demo consent")?;
    let march = Utc
        .with_ymd_and_hms(2026, 3, 2, 9, 0, 0)
        .single()
        .context("date")?;
    insert_invoice(
        &txn,
        robin,
        "INV-1001",
        4200,
        "USD",
        "paid",
        march,
        Some(march),
    )
    .await?;
    insert_invoice(
        &txn,
        robin,
        "INV-1002",
        4200,
        "USD",
        "refunded",
        march,
        Some(march),
    )
    .await?;
    insert_invoice(
        &txn,
        kim,
        "INV-2001",
        1999,
        "GBP",
        "refund_pending",
        march,
        Some(march),
    )
    .await?;

    let id = |handle: &str| agent_ids.get(handle).copied();
    let tickets = [
        (
            "Cannot reset my password",
            robin,
            "account_access",
            "open",
            id("frontline"),
            "email",
            Some("The reset email never arrives."),
            2,
        ),
        (
            "Charged twice in March",
            robin,
            "billing",
            "open",
            id("billing"),
            "email",
            Some("You charged my card 4242 4242 4242 4242 twice."),
            3,
        ),
        (
            "App crashes on upload",
            robin,
            "technical",
            "resolved",
            id("frontline2"),
            "chat",
            Some("Call me at +1 555 0100 2233 or write to robin.sample@example.com."),
            12,
        ),
        (
            "Verify my identity",
            robin,
            "identity_verification",
            "open",
            id("identity"),
            "web",
            None,
            1,
        ),
        (
            "Where is my parcel?",
            kim,
            "shipping",
            "open",
            id("frontline"),
            "chat",
            Some("Tracking stopped two days ago."),
            2,
        ),
        (
            "Refund not received",
            kim,
            "billing",
            "open",
            None,
            "email",
            Some("Still waiting for INV-2001 refund."),
            1,
        ),
    ];
    for (subject, customer_id, topic, status, assignee, channel, body, days_ago) in tickets {
        let created = now - Duration::days(days_ago);
        let row = ticket::ActiveModel {
            customer_id: Set(customer_id),
            team: Set(DEMO_TEAM.into()),
            topic: Set(topic.into()),
            status: Set(status.into()),
            subject: Set(subject.into()),
            channel: Set(channel.into()),
            assignee_id: Set(assignee),
            created_at: Set(created),
            resolved_at: Set((status == "resolved").then(|| now - Duration::days(10))),
            ..Default::default()
        }
        .insert(&txn)
        .await
        .context("inserting a demo ticket")?;
        if let Some(body) = body {
            let key = if customer_id == robin {
                &robin_key
            } else {
                &kim_key
            };
            crate::tickets::add_message(&txn, key, row.id, "customer", None, body, created)
                .await
                .context("inserting a demo message")?;
        }
        if topic == "identity_verification" {
            let mut content = b"\x89PNG\r\n\x1a\n".to_vec();
            content.extend_from_slice(b"PASSPORT-SENTINEL-C1");
            let stored = attachment::ActiveModel {
                ticket_id: Set(row.id),
                kind: Set("id_document".into()),
                file_name: Set("passport-scan.png".into()),
                size_bytes: Set(i64::try_from(content.len()).context("size")?),
                content: Set(Vec::new()),
                purge_after: Set(None),
                created_at: Set(created),
                ..Default::default()
            }
            .insert(&txn)
            .await
            .context("inserting the demo attachment")?;
            let sealed = seal_field(&robin_key, "attachments", "content", stored.id, &content);
            let mut stored: attachment::ActiveModel = stored.into();
            stored.content = Set(sealed);
            stored
                .update(&txn)
                .await
                .context("sealing the demo attachment")?;
        }
    }
    meta::ActiveModel {
        key: Set(MARKER.into()),
        value: Set(now.to_rfc3339()),
    }
    .insert(&txn)
    .await
    .context("marking the demo as seeded")?;
    txn.commit().await.context("committing the demo data")?;
    tracing::info!("demo data seeded");
    Ok(())
}

/// Creates the demo agents that do not exist yet; returns every demo agent's id by handle.
pub async fn ensure_agents(
    db: &DatabaseConnection,
    policy: &PolicySet,
) -> anyhow::Result<BTreeMap<&'static str, i32>> {
    let mut agent_ids = BTreeMap::new();
    for (handle, name, role, queues) in DEMO_AGENTS {
        let existing = agent::Entity::find()
            .filter(agent::Column::Handle.eq(handle))
            .one(db)
            .await
            .context("looking up demo agents")?;
        let id = match existing {
            Some(row) => row.id,
            None => {
                let new = NewAgent {
                    handle: handle.into(),
                    display_name: name.into(),
                    role: role.into(),
                    team: DEMO_TEAM.into(),
                    queues: queues.iter().map(|q| q.to_string()).collect(),
                    service: false,
                };
                agents::create(db, policy.vocabulary(), new)
                    .await
                    .with_context(|| format!("creating demo agent {handle}"))?
                    .0
                    .id
            }
        };
        agent_ids.insert(handle, id);
    }
    Ok(agent_ids)
}

fn date(y: i32, m: u32, d: u32) -> anyhow::Result<NaiveDate> {
    NaiveDate::from_ymd_opt(y, m, d).context("invalid demo date")
}

async fn insert_customer(
    db: &impl sea_orm::ConnectionTrait,
    vault: &Vault,
    [status, plan, region]: [&str; 3],
    since: NaiveDate,
    [name, email, phone]: [&str; 3],
    [street, city, postal_code, country]: [&str; 4],
    born: &str,
) -> anyhow::Result<(i32, DataKey)> {
    // The row id is bound into every ciphertext, so the row comes first, then its key.
    let row = customer::ActiveModel {
        account_status: Set(status.into()),
        plan: Set(plan.into()),
        customer_since: Set(since),
        region: Set(region.into()),
        full_name: Set(Vec::new()),
        email: Set(Vec::new()),
        phone: Set(Vec::new()),
        street: Set(Vec::new()),
        city: Set(Vec::new()),
        postal_code: Set(Vec::new()),
        country: Set(Vec::new()),
        date_of_birth: Set(Vec::new()),
        email_index: Set(None),
        phone_index: Set(None),
        ..Default::default()
    }
    .insert(db)
    .await
    .context("inserting a demo customer")?;
    let id = row.id;
    let key = vault.create_data_key(db, id).await?;
    let seal =
        |column: &str, value: &str| seal_field(&key, "customers", column, id, value.as_bytes());
    let mut row: customer::ActiveModel = row.into();
    row.full_name = Set(seal("full_name", name));
    row.email = Set(seal("email", email));
    row.phone = Set(seal("phone", phone));
    row.street = Set(seal("street", street));
    row.city = Set(seal("city", city));
    row.postal_code = Set(seal("postal_code", postal_code));
    row.country = Set(seal("country", country));
    row.date_of_birth = Set(seal("date_of_birth", born));
    let blind = vault.blind()?;
    row.email_index = Set(Some(blind.email(email)));
    row.phone_index = Set(Some(blind.phone(phone)));
    row.update(db).await.context("sealing a demo customer")?;
    Ok((id, key))
}

async fn insert_card(
    db: &impl sea_orm::ConnectionTrait,
    key: &DataKey,
    customer_id: i32,
    brand: &str,
    last4: &str,
    (month, year): (i32, i32),
    [street, city, postal_code, country]: [&str; 4],
) -> anyhow::Result<()> {
    let row = payment_method::ActiveModel {
        customer_id: Set(customer_id),
        brand: Set(brand.into()),
        last4: Set(last4.into()),
        exp_month: Set(month),
        exp_year: Set(year),
        billing_street: Set(Vec::new()),
        billing_city: Set(Vec::new()),
        billing_postal_code: Set(Vec::new()),
        billing_country: Set(Vec::new()),
        ..Default::default()
    }
    .insert(db)
    .await
    .context("inserting a demo payment method")?;
    let id = row.id;
    let seal = |column: &str, value: &str| {
        seal_field(key, "payment_methods", column, id, value.as_bytes())
    };
    let mut row: payment_method::ActiveModel = row.into();
    row.billing_street = Set(seal("billing_street", street));
    row.billing_city = Set(seal("billing_city", city));
    row.billing_postal_code = Set(seal("billing_postal_code", postal_code));
    row.billing_country = Set(seal("billing_country", country));
    row.update(db)
        .await
        .context("sealing a demo payment method")?;
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn insert_invoice(
    db: &impl sea_orm::ConnectionTrait,
    customer_id: i32,
    number: &str,
    amount_cents: i64,
    currency: &str,
    status: &str,
    issued_at: chrono::DateTime<Utc>,
    paid_at: Option<chrono::DateTime<Utc>>,
) -> anyhow::Result<()> {
    invoice::ActiveModel {
        customer_id: Set(customer_id),
        number: Set(number.into()),
        amount_cents: Set(amount_cents),
        currency: Set(currency.into()),
        status: Set(status.into()),
        issued_at: Set(issued_at),
        paid_at: Set(paid_at),
        ..Default::default()
    }
    .insert(db)
    .await
    .context("inserting a demo invoice")?;
    Ok(())
}

/// The demo agents' tokens: reused from `demo-tokens.json` while valid, otherwise issued
/// anew; the file is (re)written with owner-only permissions.
pub async fn tokens(
    db: &DatabaseConnection,
    data_dir: &Path,
) -> anyhow::Result<BTreeMap<String, String>> {
    let path = data_dir.join("demo-tokens.json");
    let previous: BTreeMap<String, String> = std::fs::read(&path)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default();
    let mut tokens = BTreeMap::new();
    for (handle, ..) in DEMO_AGENTS {
        let still_valid = match previous.get(handle) {
            Some(token) if agents::parse_bearer(Some(&format!("Bearer {token}"))).is_ok() => {
                matches!(agents::authenticate(db, token).await?, Ok(agent) if agent.handle == handle)
            }
            _ => false,
        };
        let token = match previous.get(handle) {
            Some(token) if still_valid => token.clone(),
            _ => match agents::issue_token(db, handle).await {
                Ok(token) => token,
                // A demo agent an admin disabled stays disabled: it gets no token.
                Err(agents::AgentError::Invalid(reason)) => {
                    tracing::warn!(handle, %reason, "no token for a disabled demo agent");
                    continue;
                }
                Err(error) => {
                    return Err(anyhow::Error::new(error)
                        .context(format!("issuing a token for demo agent {handle}")))
                }
            },
        };
        tokens.insert(handle.to_owned(), token);
    }
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create {}", data_dir.display()))?;
    write_private(&path, &serde_json::to_vec_pretty(&tokens)?)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(tokens)
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    options.mode(0o600);
    options.open(path)?.write_all(bytes)
}
