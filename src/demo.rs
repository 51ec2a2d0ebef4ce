//! The demo dataset (README, "A five-minute tour"), seeded by `serve --demo`, and the demo
//! agents' tokens.
//!
//! Seeding goes through the write side (see [`seed`]) and is idempotent: external ids find
//! what an interrupted run wrote, and a marker row in `meta` records the end.
//! Tokens survive restarts: `<data dir>/demo-tokens.json` is reused while its tokens still
//! authenticate; missing or revoked ones are replaced and the file rewritten.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use chrono::{Duration, TimeZone, Utc};
use entity::{agent, attachment, consent, invoice, message, meta, payment_method, ticket};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set};

use crate::agents::{self, Agent, NewAgent};
use crate::audit::Actor;
use crate::crypto::vault::{seal_field, DataKey, Vault};
use crate::input::{Body, Country, Email, ExternalId, Line, PastDate, Phone};
use crate::intake::{Address, CustomerInput, CustomerRef, Intake, NoticeShown, TicketInput};
use crate::policy::PolicySet;
use crate::reveal::store::GrantStore;
use crate::tickets::workflow::Tickets;
use crate::vocabulary::{AttachmentKind, TicketStatus};
use crate::writer::Writer;

const MARKER: &str = "demo_seeded_at";

/// A demo agent: handle, display name, role, queues, and whether it is a service account.
pub type DemoAgent = (
    &'static str,
    &'static str,
    &'static str,
    &'static [&'static str],
    bool,
);

/// The demo agents. All are in team `support`; `chat-gateway` is the service account of a
/// chat widget's backend (role `intake`), through which the demo's tickets arrive.
pub const DEMO_AGENTS: [DemoAgent; 7] = [
    (
        "frontline",
        "Frontline Agent",
        "frontline",
        &["account_access", "shipping", "technical"],
        false,
    ),
    (
        "frontline2",
        "Second Frontline Agent",
        "frontline",
        &["account_access", "shipping", "technical"],
        false,
    ),
    (
        "billing",
        "Billing Specialist",
        "billing",
        &["billing"],
        false,
    ),
    (
        "identity",
        "Identity Specialist",
        "identity",
        &["identity_verification"],
        false,
    ),
    ("supervisor", "Support Supervisor", "supervisor", &[], false),
    ("auditor", "Auditor", "auditor", &[], false),
    ("chat-gateway", "Chat widget backend", "intake", &[], true),
];

/// The team of every demo agent and ticket.
pub const DEMO_TEAM: &str = "support";

/// A demo ticket: subject, customer's external id, topic, status, assignee, channel, the
/// customer's message, days since it was opened.
type DemoTicket = (
    &'static str,
    &'static str,
    &'static str,
    TicketStatus,
    Option<&'static str>,
    &'static str,
    Option<&'static str>,
    i64,
);

const TICKETS: [DemoTicket; 6] = [
    (
        "Cannot reset my password",
        "demo-robin",
        "account_access",
        TicketStatus::Open,
        Some("frontline"),
        "email",
        Some("The reset email never arrives."),
        2,
    ),
    (
        "Charged twice in March",
        "demo-robin",
        "billing",
        TicketStatus::Open,
        Some("billing"),
        "email",
        Some("You charged my card 4242 4242 4242 4242 twice."),
        3,
    ),
    (
        "App crashes on upload",
        "demo-robin",
        "technical",
        TicketStatus::Resolved,
        Some("frontline2"),
        "chat",
        Some("Call me at +1 555 0100 2233 or write to robin.sample@example.com."),
        12,
    ),
    (
        "Verify my identity",
        "demo-robin",
        "identity_verification",
        TicketStatus::Open,
        Some("identity"),
        "web",
        None,
        1,
    ),
    (
        "Where is my parcel?",
        "demo-kim",
        "shipping",
        TicketStatus::Open,
        Some("frontline"),
        "chat",
        Some("Tracking stopped two days ago."),
        2,
    ),
    (
        "Refund not received",
        "demo-kim",
        "billing",
        TicketStatus::Open,
        None,
        "email",
        Some("Still waiting for INV-2001 refund."),
        1,
    ),
];

/// A service's refusal as an error of the seeding (its code and message; never a value).
fn refused(what: &str) -> impl Fn(crate::error::ApiError) -> anyhow::Error + '_ {
    move |e| anyhow::anyhow!("{what}: {} ({})", e.message(), e.code())
}

/// Seeds the demo dataset unless it is already there.
///
/// It goes through the write side, as the channels and agents would: the chat gateway
/// upserts the customers and opens the tickets with their first messages (and Robin's
/// consent to recording), the supervisor assigns them, the assignee resolves the crash
/// report, the gateway attaches the identity scan. Only the customers' payment methods and
/// invoices, which come from a billing system and have no write API, are inserted directly.
/// Dates are then moved back to tell the story (opened days ago, resolved ten days ago).
/// Every step is idempotent (external ids), so a seeding cut short completes on the next
/// start.
pub async fn seed(
    writer: &Writer,
    policy: &PolicySet,
    vault: &Vault,
    grants: &GrantStore,
) -> anyhow::Result<()> {
    let db = writer.connection();
    if meta::Entity::find_by_id(MARKER.to_owned())
        .one(db)
        .await
        .context("checking for demo data")?
        .is_some()
    {
        tracing::info!("demo data already present");
        return Ok(());
    }
    let agents = ensure_agents(writer, policy).await?;
    let actor = |agent: &Agent| Actor {
        agent_id: Some(agent.id),
        role: agent.role.clone(),
        request_id: "demo-seed".into(),
        policy_version: Some(policy.version().to_owned()),
        idempotency_key: None,
    };
    let agent = |handle: &str| {
        agents
            .get(handle)
            .with_context(|| format!("demo agent {handle} is missing"))
    };
    let gateway = agent("chat-gateway")?;
    let intake = Intake {
        db,
        writer,
        policy,
        vault,
        agent: gateway,
        actor: actor(gateway),
        claim: None,
        max_document_bytes: 10 * 1024 * 1024,
        deferred_audit: None,
    };
    let line = |v: &str| Line::parse("demo", v).map_err(refused("demo text"));
    let customers = [
        (
            "demo-robin",
            "Robin Sample",
            "robin.sample@example.com",
            "+1 555 0100 2233",
            ["12 Harbour Lane", "Springfield", "99501", "US"],
            "1984-07-19",
            "premium",
            "US",
            "2019-03-14",
        ),
        (
            "demo-kim",
            "Kim Placeholder",
            "kim.placeholder@example.org",
            "+44 20 7946 0958",
            ["3 Mill Road", "Cambridge", "CB1 2AB", "GB"],
            "1990-02-03",
            "basic",
            "GB",
            "2021-06-01",
        ),
    ];
    let today = Utc::now().date_naive();
    let mut customer_ids = BTreeMap::new();
    for (
        external,
        name,
        email,
        phone,
        [street, city, postal, country],
        born,
        plan,
        region,
        since,
    ) in customers
    {
        let date = |v: &str| PastDate::parse("demo date", v, today).map_err(refused("demo date"));
        let code = |v: &str| Country::parse("demo country", v).map_err(refused("demo country"));
        let input = CustomerInput {
            external_id: ExternalId::parse("demo", external).map_err(refused("demo id"))?,
            full_name: Some(line(name)?),
            email: Some(Email::parse("demo", email).map_err(refused("demo email"))?),
            phone: Some(Phone::parse("demo", phone).map_err(refused("demo phone"))?),
            postal_address: Some(Address {
                street: line(street)?,
                city: line(city)?,
                postal_code: line(postal)?,
                country: code(country)?,
            }),
            date_of_birth: Some(date(born)?),
            region: Some(code(region)?),
            plan: Some(line(plan)?),
            preferred_language: None,
            customer_since: Some(date(since)?),
        };
        let done = intake
            .upsert_customer(input)
            .await
            .map_err(refused("upserting a demo customer"))?;
        customer_ids.insert(external, done.customer_id);
    }
    let (robin, kim) = (customer_ids["demo-robin"], customer_ids["demo-kim"]);
    seed_billing(writer, vault, robin, kim).await?;

    let supervisor = agent("supervisor")?;
    let now = Utc::now();
    let mut backdate = Vec::new();
    for (n, (subject, customer, topic, status, assignee, channel, message, days_ago)) in
        TICKETS.into_iter().enumerate()
    {
        // Robin agreed to recording when their chat began, so their resolved transcripts
        // are kept (365 days by default) rather than purged at once.
        let notice = (customer == "demo-robin" && channel == "chat").then(|| NoticeShown {
            kind: "recording".into(),
            version: "2026-01".into(),
        });
        let opened = intake
            .open_ticket(TicketInput {
                customer: CustomerRef::External(
                    ExternalId::parse("demo", customer).map_err(refused("demo id"))?,
                ),
                external_id: Some(
                    ExternalId::parse("demo", &format!("demo-ticket-{}", n + 1))
                        .map_err(refused("demo id"))?,
                ),
                channel: channel.into(),
                topic: topic.into(),
                subject: line(subject)?,
                message: message
                    .map(|m| Body::parse("demo", m))
                    .transpose()
                    .map_err(refused("demo message"))?,
                notice,
                history: None,
            })
            .await
            .map_err(refused("opening a demo ticket"))?;
        let mut row = ticket::Entity::find_by_id(opened.ticket_id)
            .one(db)
            .await
            .context("reading a demo ticket")?
            .context("a demo ticket vanished")?;
        if let Some(handle) = assignee.filter(|_| row.assignee_id.is_none()) {
            row = tickets_as(supervisor, writer, policy, vault, grants, &actor)
                .assign(&row, handle)
                .await
                .map_err(refused("assigning a demo ticket"))?;
        }
        if status != TicketStatus::Open && row.status == TicketStatus::Open.as_str() {
            let assignee = agent(assignee.unwrap_or("supervisor"))?;
            row = tickets_as(assignee, writer, policy, vault, grants, &actor)
                .set_status(row, status)
                .await
                .map_err(refused("resolving a demo ticket"))?;
        }
        if topic == "identity_verification" {
            let has_scan = attachment::Entity::find()
                .filter(attachment::Column::TicketId.eq(row.id))
                .one(db)
                .await
                .context("looking for the demo scan")?
                .is_some();
            if !has_scan {
                let mut content = b"\x89PNG\r\n\x1a\n".to_vec();
                content.extend_from_slice(b"PASSPORT-SENTINEL-C1");
                intake
                    .attach_document(
                        row.id,
                        AttachmentKind::IdDocument,
                        line("passport-scan.png")?,
                        content,
                    )
                    .await
                    .map_err(refused("attaching the demo scan"))?;
            }
        }
        backdate.push((row.id, days_ago, status == TicketStatus::Resolved));
    }
    backdate_and_mark(writer, robin, &backdate, now).await?;
    tracing::info!("demo data seeded");
    Ok(())
}

/// The ticket workflow acting as `agent`, for the demo.
fn tickets_as<'a>(
    agent: &'a Agent,
    writer: &'a Writer,
    policy: &'a PolicySet,
    vault: &'a Vault,
    grants: &'a GrantStore,
    actor: &dyn Fn(&Agent) -> Actor,
) -> Tickets<'a> {
    Tickets {
        db: writer.connection(),
        vault,
        writer,
        policy,
        grants,
        agent,
        actor: actor(agent),
        claim: None,
    }
}

/// The payment methods and invoices of the demo customers: billing data, which reaches a
/// support tool from a billing system, not through the write side.
async fn seed_billing(writer: &Writer, vault: &Vault, robin: i32, kim: i32) -> anyhow::Result<()> {
    let db = writer.connection();
    if payment_method::Entity::find()
        .filter(payment_method::Column::CustomerId.is_in([robin, kim]))
        .one(db)
        .await
        .context("looking for demo billing data")?
        .is_some()
    {
        return Ok(());
    }
    let keys = [robin, kim].map(|id| async move {
        vault
            .data_key(db, id)
            .await?
            .context("a demo customer without a data key")
    });
    let [robin_key, kim_key] = keys;
    let (robin_key, kim_key) = (robin_key.await?, kim_key.await?);
    let march = Utc
        .with_ymd_and_hms(2026, 3, 2, 9, 0, 0)
        .single()
        .context("date")?;
    let (robin_key, kim_key) = (&robin_key, &kim_key);
    writer
        .transaction(|txn| async move {
            insert_card(
                &txn,
                robin_key,
                robin,
                "Visa",
                "4242",
                (8, 2029),
                ["12 Harbour Lane", "Springfield", "99501", "US"],
            )
            .await?;
            insert_card(
                &txn,
                kim_key,
                kim,
                "Mastercard",
                "5454",
                (1, 2028),
                ["3 Mill Road", "Cambridge", "CB1 2AB", "GB"],
            )
            .await?;
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
            Ok::<_, anyhow::Error>(((), txn))
        })
        .await
}

/// Moves the demo's dates back (tickets opened days ago, the crash report resolved ten
/// days ago, Robin's consent given thirty days ago) and marks the demo as seeded, in one
/// transaction.
async fn backdate_and_mark(
    writer: &Writer,
    robin: i32,
    tickets: &[(i32, i64, bool)],
    now: chrono::DateTime<Utc>,
) -> anyhow::Result<()> {
    use sea_orm::sea_query::Expr;
    writer
        .transaction(|txn| async move {
            for &(id, days_ago, resolved) in tickets {
                let created = now - Duration::days(days_ago);
                let mut update = ticket::Entity::update_many()
                    .col_expr(ticket::Column::CreatedAt, Expr::value(created))
                    .filter(ticket::Column::Id.eq(id));
                if resolved {
                    update = update.col_expr(
                        ticket::Column::ResolvedAt,
                        Expr::value(now - Duration::days(10)),
                    );
                }
                update.exec(&txn).await?;
                message::Entity::update_many()
                    .col_expr(message::Column::CreatedAt, Expr::value(created))
                    .filter(message::Column::TicketId.eq(id))
                    .exec(&txn)
                    .await?;
                attachment::Entity::update_many()
                    .col_expr(attachment::Column::CreatedAt, Expr::value(created))
                    .filter(attachment::Column::TicketId.eq(id))
                    .exec(&txn)
                    .await?;
            }
            consent::Entity::update_many()
                .col_expr(
                    consent::Column::GivenAt,
                    Expr::value(now - Duration::days(30)),
                )
                .filter(consent::Column::CustomerId.eq(robin))
                .exec(&txn)
                .await?;
            meta::ActiveModel {
                key: Set(MARKER.into()),
                value: Set(now.to_rfc3339()),
            }
            .insert(&txn)
            .await?;
            Ok::<_, anyhow::Error>(((), txn))
        })
        .await
        .context("dating and marking the demo data")
}

/// Creates the demo agents that do not exist yet; returns every demo agent by handle.
pub async fn ensure_agents(
    writer: &Writer,
    policy: &PolicySet,
) -> anyhow::Result<BTreeMap<&'static str, Agent>> {
    let actor = Actor::system("system", "demo-seed");
    let mut found = BTreeMap::new();
    for (handle, name, role, queues, service) in DEMO_AGENTS {
        let existing = agent::Entity::find()
            .filter(agent::Column::Handle.eq(handle))
            .one(writer.connection())
            .await
            .context("looking up demo agents")?;
        let agent = match existing {
            Some(row) => Agent::try_from(row)?,
            None => {
                let new = NewAgent {
                    handle: handle.into(),
                    display_name: name.into(),
                    role: role.into(),
                    team: DEMO_TEAM.into(),
                    queues: queues.iter().map(|q| q.to_string()).collect(),
                    service,
                };
                agents::create(writer, policy.vocabulary(), &actor, new)
                    .await
                    .with_context(|| format!("creating demo agent {handle}"))?
                    .0
            }
        };
        found.insert(handle, agent);
    }
    Ok(found)
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
pub async fn tokens(writer: &Writer, data_dir: &Path) -> anyhow::Result<BTreeMap<String, String>> {
    let path = data_dir.join("demo-tokens.json");
    let previous: BTreeMap<String, String> = std::fs::read(&path)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default();
    let mut tokens = BTreeMap::new();
    for (handle, ..) in DEMO_AGENTS {
        let still_valid = match previous.get(handle) {
            Some(token) if agents::parse_bearer(Some(&format!("Bearer {token}"))).is_ok() => {
                matches!(agents::authenticate(writer.connection(), token).await?, Ok(agent) if agent.handle == handle)
            }
            _ => false,
        };
        let token = match previous.get(handle) {
            Some(token) if still_valid => token.clone(),
            _ => match agents::issue_token(writer, &Actor::system("system", "demo-seed"), handle)
                .await
            {
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
