//! What authorization costs per request: policy decisions (cached and not), the gates of a
//! 50-ticket page, and a full policy reload. Run with `cargo bench --bench policy`; the
//! numbers and the machine are in BENCHMARKS.md.

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use needtoknow::agents::Agent;
use needtoknow::disclosure::Gate;
use needtoknow::policy::{self, AgentFacts, PolicySet, TicketFacts};

fn policies() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("policies")
}

fn agent(id: i32, role: &str, queues: &[&str]) -> Agent {
    Agent {
        id,
        handle: format!("agent{id}"),
        display_name: format!("Agent {id}"),
        role: role.into(),
        team: "support".into(),
        queues: queues.iter().map(|q| q.to_string()).collect(),
        active: true,
        service: false,
    }
}

fn ticket(topic: &str, assigned_to_me: bool) -> TicketFacts {
    TicketFacts {
        topic: topic.into(),
        status: "open".into(),
        assigned_to_me,
        unassigned: !assigned_to_me,
        in_my_team: true,
    }
}

fn decisions(c: &mut Criterion) {
    let set = Arc::new(PolicySet::load_dir(&policies()).expect("policy loads"));
    let billing: AgentFacts = agent(1, "billing", &["billing"]).facts();
    let assigned = ticket("billing", true);

    c.bench_function("decide: all 8 classes, cached", |b| {
        set.decide(&billing, &assigned);
        b.iter(|| black_box(set.decide(black_box(&billing), black_box(&assigned))))
    });

    c.bench_function(
        "decide: all 8 classes, uncached (8 Polar queries; no field-level rules)",
        |b| b.iter(|| black_box(set.decide_strict(&billing, &assigned).unwrap())),
    );

    let supervisor = agent(2, "supervisor", &[]);
    let topics = [
        "account_access",
        "billing",
        "shipping",
        "technical",
        "identity_verification",
        "privacy_request",
    ];
    let page: Vec<(entity::ticket::Model, TicketFacts)> = (0..50)
        .map(|i| {
            let facts = ticket(topics[i % topics.len()], i % 3 == 0);
            let row = entity::ticket::Model {
                id: i as i32 + 1,
                customer_id: i as i32 + 1,
                team: "support".into(),
                topic: facts.topic.clone(),
                status: facts.status.clone(),
                subject: "subject".into(),
                channel: "email".into(),
                assignee_id: None,
                created_at: chrono::Utc::now(),
                resolved_at: None,
                external_id: None,
            };
            (row, facts)
        })
        .collect();
    let supervisor_facts = supervisor.facts();
    c.bench_function("gates for a page of 50 tickets (warm cache)", |b| {
        b.iter(|| {
            for (row, facts) in &page {
                black_box(Gate::new(set.clone(), &supervisor_facts, row, facts));
            }
        })
    });

    c.bench_function("ticket scopes of an agent, cached", |b| {
        b.iter(|| black_box(set.ticket_scopes(black_box(&billing))))
    });
}

fn reload(c: &mut Criterion) {
    let mut group = c.benchmark_group("reload");
    group.sample_size(10);
    group.bench_function("load, sweep and run the 888 shipped cases", |b| {
        b.iter(|| black_box(policy::load_checked(&policies()).expect("checks out")))
    });
    group.finish();
}

/// The grant look-ups of one request against the in-process store: the first look-up reads
/// the agent's grants (one store call), later ones filter them in memory.
fn grants(c: &mut Criterion) {
    use needtoknow::audit::AuditLog;
    use needtoknow::disclosure::Field;
    use needtoknow::reveal::store::{Grant, GrantStore};
    use needtoknow::reveal::RequestGrants;

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let db = runtime
        .block_on(sea_orm::Database::connect("sqlite::memory:"))
        .unwrap();
    let store = GrantStore::memory();
    let now = chrono::Utc::now();
    // 10 000 grants of other agents, 10 of the asking agent.
    let all: Vec<Grant> = (0..10_010)
        .map(|i| Grant {
            id: format!("g{i}"),
            agent_id: if i < 10 { 1 } else { 2 + i % 500 },
            ticket_id: i % 50,
            customer_id: i,
            field: needtoknow::vocabulary::Field::Email,
            granted_at: now,
            expires_at: now + chrono::Duration::hours(1),
            approved_by: None,
        })
        .collect();
    runtime.block_on(store.put(&all)).unwrap();
    let audit = AuditLog::new(needtoknow::writer::Writer::new(db));
    c.bench_function(
        "grants: one request's look-ups for a 50-ticket page (in-process store)",
        |b| {
            b.iter(|| {
                runtime.block_on(async {
                    let grants = RequestGrants::new(
                        store.clone(),
                        audit.clone(),
                        1,
                        needtoknow::audit::Actor {
                            agent_id: Some(1),
                            role: "frontline".into(),
                            request_id: "r".into(),
                            policy_version: None,
                            idempotency_key: None,
                        },
                    );
                    for ticket in 0..50 {
                        for field in [Field::Email, Field::Phone] {
                            black_box(grants.expiry(ticket, field).await);
                        }
                    }
                })
            })
        },
    );
}

criterion_group!(benches, decisions, reload, grants);
criterion_main!(benches);
