//! Writes under pressure: many agents writing at once never get `INTERNAL` (the fuzzer's
//! "database is locked" finding), every operation either succeeds or fails with a documented
//! code and changes nothing, and the audit chain stays whole.

use std::sync::Arc;

use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::{json, Value};

use crate::helpers::{spawn_app_with, Backend, TestApp};

/// Concurrent writers, and operations each.
const WRITERS: usize = 16;
const OPERATIONS: usize = 20;

const REVEAL: &str = "mutation($t: ID!) { requestReveal(ticketId: $t, fields: [\"email\"], reason: \"the customer asked us to confirm it\") { grants { id } } }";
const REVOKE: &str = "mutation($g: ID!) { revokeReveal(grantId: $g) { id } }";
const STATUS: &str =
    "mutation($t: ID!, $s: TicketStatus!) { setTicketStatus(ticketId: $t, status: $s) { status } }";
const CONSENT: &str = "mutation($t: ID!) { recordConsent(ticketId: $t, kind: \"recording\", noticeVersion: \"2026-01\") { kind } }";
const VERIFY: &str = "mutation($t: ID!) { verifyCustomerIdentity(ticketId: $t, answers: { postalCode: \"00000\" }) { postalCode } }";
const ASK: &str = "mutation($t: ID!) { requestReveal(ticketId: $t, fields: [\"paymentMethods\"], reason: \"the customer disputes a charge\") { request { id } } }";
const APPROVE: &str = "mutation($r: ID!) { approveReveal(requestId: $r, note: \"checked with the customer\") { status } }";

/// What the writers did, counted.
#[derive(Default, Debug)]
struct Tally {
    /// Audit events (other than views) the successful operations wrote.
    events: u64,
    /// Errors by code.
    refused: std::collections::BTreeMap<String, u64>,
    /// Operations that succeeded.
    succeeded: u64,
}

/// Posts one operation; `Ok(data)` or `Err(code)`. Fails the test on a 5xx or `INTERNAL`.
async fn call(app: &TestApp, token: &str, query: &str, variables: Value) -> Result<Value, String> {
    let (status, body) = app
        .post_graphql(
            Some(token),
            &json!({ "query": query, "variables": variables }),
        )
        .await;
    assert!(status < 500, "HTTP {status}: {body}");
    match body["errors"][0]["extensions"]["code"].as_str() {
        None => Ok(body["data"].clone()),
        Some(code) => {
            assert!(
                matches!(code, "UNAVAILABLE" | "RATE_LIMITED" | "REVEAL_UNAVAILABLE"),
                "{query}: an undocumented outcome {code}: {body}"
            );
            if code == "UNAVAILABLE" {
                assert_eq!(body["errors"][0]["extensions"]["retryAfterSeconds"], 1);
            }
            Err(code.to_owned())
        }
    }
}

async fn run(backend: Backend) {
    let app = Arc::new(
        spawn_app_with(backend, |s| {
            s.identity_checks_per_hour = 100_000;
            s.reveals_per_hour = 100_000;
            s.requests_per_minute = 1_000_000;
        })
        .await,
    );
    let approver = app.create_agent("supervisor2", "supervisor").await;
    let reset = app.ticket_id("Cannot reset my password").await;
    let parcel = app.ticket_id("Where is my parcel?").await;
    let frontline = app.token("frontline").to_owned();
    let supervisor = app.token("supervisor").to_owned();

    let mut workers = Vec::new();
    for worker in 0..WRITERS {
        let (app, approver, reset, parcel) =
            (app.clone(), approver.clone(), reset.clone(), parcel.clone());
        let (frontline, supervisor) = (frontline.clone(), supervisor.clone());
        workers.push(tokio::spawn(async move {
            let mut tally = Tally::default();
            let mut outcome = |result: Result<Value, String>, events: u64| match result {
                Ok(data) => {
                    tally.succeeded += 1;
                    tally.events += events;
                    Some(data)
                }
                Err(code) => {
                    *tally.refused.entry(code).or_default() += 1;
                    None
                }
            };
            for step in 0..OPERATIONS {
                match (worker + step) % 5 {
                    // A reasoned reveal (requested + granted) and its revocation.
                    0 => {
                        let granted = outcome(
                            call(&app, &frontline, REVEAL, json!({ "t": reset })).await,
                            2,
                        );
                        if let Some(data) = granted {
                            let grant = data["requestReveal"]["grants"][0]["id"].clone();
                            outcome(
                                call(&app, &frontline, REVOKE, json!({ "g": grant })).await,
                                1,
                            );
                        }
                    }
                    // A status change that revokes nothing: one audit event.
                    1 => {
                        let status = if step % 2 == 0 { "PENDING" } else { "OPEN" };
                        outcome(
                            call(
                                &app,
                                &supervisor,
                                STATUS,
                                json!({ "t": parcel, "s": status }),
                            )
                            .await,
                            1,
                        );
                    }
                    // A consent: one audit event.
                    2 => {
                        outcome(
                            call(&app, &frontline, CONSENT, json!({ "t": parcel })).await,
                            1,
                        );
                    }
                    // An identity check: one audit event.
                    3 => {
                        outcome(
                            call(&app, &frontline, VERIFY, json!({ "t": parcel })).await,
                            1,
                        );
                    }
                    // A request that needs approval (requested), approved by another
                    // supervisor (approved).
                    _ => {
                        let asked =
                            outcome(call(&app, &supervisor, ASK, json!({ "t": reset })).await, 1);
                        if let Some(data) = asked {
                            let id = data["requestReveal"]["request"]["id"].clone();
                            outcome(call(&app, &approver, APPROVE, json!({ "r": id })).await, 1);
                        }
                    }
                }
            }
            tally
        }));
    }
    let mut total = Tally::default();
    for worker in workers {
        let tally = worker.await.expect("a writer panicked");
        total.events += tally.events;
        total.succeeded += tally.succeeded;
        for (code, n) in tally.refused {
            *total.refused.entry(code).or_default() += n;
        }
    }

    // Every successful operation wrote exactly its events, every refused one none, and the
    // chain is whole.
    let db = needtoknow::db::connect(&app.settings).await.unwrap();
    let written = entity::audit_event::Entity::find()
        .filter(entity::audit_event::Column::Action.ne("viewed"))
        .filter(entity::audit_event::Column::Seq.gt(app.audit_start))
        .count(&db)
        .await
        .unwrap();
    // (and creating supervisor2, before the writers started)
    assert_eq!(written, total.events + 1, "{total:?}");
    assert!(matches!(
        needtoknow::audit::verify(&db).await.unwrap(),
        needtoknow::audit::Verdict::Intact { .. }
    ));
    // Every grant issued was revoked, and every request asked was decided.
    let grants = app
        .data_as(
            "frontline",
            "{ myGrants { edges { node { id } } } }",
            json!({}),
        )
        .await;
    assert_eq!(grants["myGrants"]["edges"], json!([]));
    let pending = entity::reveal_request::Entity::find()
        .filter(entity::reveal_request::Column::Status.eq("pending"))
        .count(&db)
        .await
        .unwrap();
    assert_eq!(pending, 0, "{total:?}");
    // The single writer queues rather than refuses: on an idle test machine nothing needs
    // a retry by the client.
    assert!(total.refused.is_empty(), "{total:?}");
}

/// 16 agents writing mixed mutations at once on SQLite: no `INTERNAL`, nothing half done.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixteen_concurrent_writers_never_get_internal_on_sqlite() {
    run(Backend::Sqlite).await;
}

/// The same on PostgreSQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixteen_concurrent_writers_never_get_internal_on_postgres() {
    run(Backend::Postgres).await;
}

/// A scratch table on a fresh PostgreSQL database, and a second connection holding a row
/// lock on it.
async fn locked_row() -> (sea_orm::DatabaseConnection, sea_orm::DatabaseTransaction) {
    use sea_orm::{ConnectionTrait, Database, TransactionTrait};
    let name = crate::helpers::create_pg_database().await;
    let url = format!("{}/{name}", crate::helpers::postgres_admin_url());
    let db = Database::connect(&url).await.unwrap();
    db.execute_unprepared("CREATE TABLE counter (id int PRIMARY KEY, n int NOT NULL); INSERT INTO counter VALUES (1, 0)")
        .await
        .unwrap();
    let holder = Database::connect(&url).await.unwrap();
    let lock = holder.begin().await.unwrap();
    lock.execute_unprepared("SELECT n FROM counter WHERE id = 1 FOR UPDATE")
        .await
        .unwrap();
    (db, lock)
}

/// One attempt of a write that waits at most 60 ms for the row lock.
async fn bump(txn: &sea_orm::DatabaseTransaction) -> Result<(), sea_orm::DbErr> {
    use sea_orm::ConnectionTrait;
    txn.execute_unprepared("SET LOCAL lock_timeout = '60ms'")
        .await?;
    txn.execute_unprepared("UPDATE counter SET n = n + 1 WHERE id = 1")
        .await?;
    Ok(())
}

/// PostgreSQL: a write that loses a lock (55P03) is retried by the writer and succeeds,
/// once, when the lock is released.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_that_loses_a_lock_is_retried_on_postgres() {
    use sea_orm::ConnectionTrait;
    use std::sync::atomic::{AtomicU32, Ordering};
    let (db, lock) = locked_row().await;
    tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        lock.commit().await.unwrap();
    });
    let writer = needtoknow::writer::Writer::new(db.clone());
    let attempts = AtomicU32::new(0);
    let attempts = &attempts;
    writer
        .transaction(|txn| async move {
            attempts.fetch_add(1, Ordering::SeqCst);
            bump(&txn).await?;
            Ok::<_, sea_orm::DbErr>(((), txn))
        })
        .await
        .expect("retried until the lock was released");
    assert!(attempts.load(Ordering::SeqCst) >= 2);
    let n = db
        .query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DatabaseBackend::Postgres,
            "SELECT n FROM counter WHERE id = 1",
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get_by_index::<i32>(0)
        .unwrap();
    assert_eq!(n, 1, "the write happened once");
}

/// PostgreSQL: a lock that outlasts every retry is `UNAVAILABLE` with a retry hint, not
/// `INTERNAL`, and nothing was written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_that_outlasts_the_retries_is_unavailable_on_postgres() {
    let (db, _lock) = locked_row().await;
    let writer = needtoknow::writer::Writer::new(db.clone());
    let error = writer
        .transaction(|txn| async move {
            bump(&txn)
                .await
                .map_err(|e| needtoknow::error::ApiError::internal(e, "bumping"))?;
            Ok::<_, needtoknow::error::ApiError>(((), txn))
        })
        .await
        .unwrap_err();
    assert_eq!(error.code(), "UNAVAILABLE");
}

/// Audit events (other than views) whose reason is `reason`.
async fn events_with_reason(app: &TestApp, reason: &str) -> u64 {
    let db = needtoknow::db::connect(&app.settings).await.unwrap();
    let n = entity::audit_event::Entity::find()
        .filter(entity::audit_event::Column::Reason.eq(reason))
        .count(&db)
        .await
        .unwrap();
    db.close().await.ok();
    n
}

const KEYED_REVEAL: &str = "mutation($t: ID!, $r: String!) { requestReveal(ticketId: $t, fields: [\"email\"], reason: $r) { grants { id field } } }";

crate::on_both_databases! {
    /// A retried delivery with the same `Idempotency-Key` answers what the first one did
    /// (marked `Idempotent-Replayed`) and writes nothing; the same key with another
    /// request is `CONFLICT` (409); a malformed key is refused before anything runs.
    async fn a_retried_delivery_replays_and_writes_nothing(app) {
        let ticket = app.ticket_id("Cannot reset my password").await;
        let token = app.token("frontline").to_owned();
        let reason = "the customer asked us to confirm it (delivery 1)";
        let vars = json!({ "t": ticket, "r": reason });
        let (status, replayed, first) = app.deliver(&token, "delivery-1", KEYED_REVEAL, vars.clone()).await;
        assert_eq!((status, replayed), (200, false), "{first}");
        let (status, replayed, again) = app.deliver(&token, "delivery-1", KEYED_REVEAL, vars.clone()).await;
        assert_eq!((status, replayed), (200, true), "{again}");
        assert_eq!(again["data"], first["data"]);
        assert_eq!(events_with_reason(&app, reason).await, 2, "requested and granted, once");
        let mine = app.data_as("frontline", "{ myGrants { edges { node { id } } } }", json!({})).await;
        assert_eq!(mine["myGrants"]["edges"].as_array().unwrap().len(), 1);

        let other = json!({ "t": ticket, "r": "another reason for another request" });
        let (status, _, conflict) = app.deliver(&token, "delivery-1", KEYED_REVEAL, other).await;
        assert_eq!(status, 409, "{conflict}");
        assert_eq!(conflict["errors"][0]["extensions"]["code"], "CONFLICT");
        // Keys are per agent: another agent's same key is another request.
        let supervisor = app.token("supervisor").to_owned();
        let (status, replayed, _) = app.deliver(&supervisor, "delivery-1", KEYED_REVEAL, vars.clone()).await;
        assert_eq!((status, replayed), (200, false));

        for bad in ["", "tab\there", &"x".repeat(256)] {
            let response = app
                .client
                .post(format!("{}/graphql", app.address))
                .bearer_auth(&token)
                .header("Idempotency-Key", bad)
                .json(&json!({ "query": KEYED_REVEAL, "variables": vars }))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status().as_u16(), 400, "{bad:?}");
        }
        assert_eq!(events_with_reason(&app, reason).await, 4, "only the supervisor's request added events");
    }
}

crate::on_both_databases! {
    /// Eight deliveries of one key at once: exactly one does the work; the others answer
    /// `CONFLICT` with a retry hint while it runs, or replay its answer once it is done.
    async fn eight_concurrent_deliveries_of_one_key_write_once(app) {
        let app = Arc::new(app);
        let ticket = app.ticket_id("Cannot reset my password").await;
        let token = app.token("frontline").to_owned();
        let reason = "the customer asked us to confirm it (concurrent)";
        let vars = json!({ "t": ticket, "r": reason });
        let deliveries: Vec<_> = (0..8)
            .map(|_| {
                let (app, token, vars) = (app.clone(), token.clone(), vars.clone());
                tokio::spawn(async move { app.deliver(&token, "one-delivery", KEYED_REVEAL, vars).await })
            })
            .collect();
        let mut grants = std::collections::BTreeSet::new();
        for delivery in deliveries {
            let (status, _, body) = delivery.await.unwrap();
            match status {
                200 => {
                    grants.insert(body["data"]["requestReveal"]["grants"][0]["id"].to_string());
                }
                409 => {
                    assert_eq!(body["errors"][0]["extensions"]["code"], "CONFLICT");
                    assert_eq!(body["errors"][0]["extensions"]["retryAfterSeconds"], 1);
                }
                other => panic!("HTTP {other}: {body}"),
            }
        }
        assert!(grants.len() <= 1, "every answer names the same grant: {grants:?}");
        assert_eq!(events_with_reason(&app, reason).await, 2, "requested and granted, once");
        let mine = app.data_as("frontline", "{ myGrants { edges { node { id } } } }", json!({})).await;
        assert_eq!(mine["myGrants"]["edges"].as_array().unwrap().len(), 1);
    }
}
