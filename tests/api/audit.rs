//! The audit trail: plaintext views are recorded (never the values), a failed audit write
//! means no plaintext, the chain detects tampering, and only allowed roles read it.

use entity::audit_event;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseBackend, EntityTrait, IntoActiveModel,
    QueryFilter, QueryOrder,
};
use serde_json::{json, Value};

use crate::helpers::{assert_no_errors, error_code, TestApp};
use crate::on_both_databases;
use needtoknow::audit::{self, Verdict};

const EVENTS: &str = "query($f: AuditFilter) { auditEvents(first: 100, filter: $f) { edges { node {
    seq action actorRole actorAgentId customerId ticketId fields reason requestId } } } }";

async fn events(app: &TestApp, filter: Value) -> Vec<Value> {
    let (_, body) = app
        .query_as("auditor", EVENTS, json!({ "f": filter }))
        .await;
    assert_no_errors(&body);
    body["data"]["auditEvents"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"].clone())
        .filter(|e| e["seq"].as_i64().is_some_and(|s| s > app.audit_start))
        .collect()
}

/// POSTs a query as `handle` and returns the body and the request id header.
async fn query_with_id(
    app: &TestApp,
    handle: &str,
    query: &str,
    variables: Value,
) -> (Value, String) {
    let response = app
        .client
        .post(format!("{}/graphql", app.address))
        .bearer_auth(app.token(handle))
        .json(&json!({ "query": query, "variables": variables }))
        .send()
        .await
        .unwrap();
    let id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    (response.json().await.unwrap(), id)
}

const BILLING_VIEW: &str = "query($id: ID!) { ticket(id: $id) { customer {
    accountStatus { value } fullName { value } email { value } postalAddress { value }
    paymentMethods { access value { last4 billingAddress } } otherTickets { value { subject } } } } }";

on_both_databases! {
    /// A response with plaintext of audited classes writes one event naming the fields,
    /// ticket, customer and request, and no value; masked and account data write none.
    async fn plaintext_views_are_audited_without_values(app) {
        let id = app.ticket_id("Charged twice in March").await;
        let (body, request_id) = query_with_id(&app, "billing", BILLING_VIEW, json!({ "id": id })).await;
        assert_no_errors(&body);
        let viewed = events(&app, json!({ "action": "VIEWED" })).await;
        assert_eq!(viewed.len(), 1, "{viewed:#?}");
        let event = &viewed[0];
        assert_eq!(event["fields"], json!(["fullName", "paymentMethods"]));
        assert_eq!(event["ticketId"], json!(id));
        assert_eq!(event["actorRole"], "billing");
        assert_eq!(event["requestId"], json!(request_id));
        assert!(event["customerId"].is_string());

        // Masked and unaudited classes only: no event.
        let id = app.ticket_id("Cannot reset my password").await;
        let (body, _) = query_with_id(&app, "frontline", "query($id: ID!) { ticket(id: $id) { customer {
            email { value } accountStatus { value } otherTickets { value { subject } } } } }", json!({ "id": id })).await;
        assert_no_errors(&body);
        assert_eq!(events(&app, json!({ "action": "VIEWED" })).await.len(), 1);

        // A page: one event per ticket with plaintext, written in the same request.
        let (body, request_id) = query_with_id(&app, "supervisor",
            "{ tickets(first: 10) { edges { node { customer { fullName { value } } } } } }", json!({})).await;
        assert_no_errors(&body);
        let page: Vec<Value> = events(&app, json!({ "action": "VIEWED", "actor": "supervisor" })).await;
        assert_eq!(page.len(), 6);
        assert!(page.iter().all(|e| e["requestId"] == json!(request_id) && e["fields"] == json!(["fullName"])));

        let db = needtoknow::db::connect(&app.settings).await.unwrap();
        // Every column a value could hide in; hashes, request ids and policy versions are
        // hex digests, which contain `4242` now and then.
        let stored: String = audit_event::Entity::find().all(&db).await.unwrap().iter()
            .map(|e| format!("{} {} {} {:?} {:?}", e.action, e.actor_role, e.fields, e.reason, e.idempotency_key))
            .collect();
        for value in ["Robin", "Sample", "4242", "Harbour", "Springfield", "example.com", "Kim"] {
            assert!(!stored.contains(value), "{value} stored in the audit trail");
        }
        let seeded = usize::try_from(app.audit_start).unwrap();
        assert_eq!(audit::verify(&db).await.unwrap(), Verdict::Intact { events: seeded as u64 + 7 });
    }
}

on_both_databases! {
    /// When the audit event cannot be written, fields fall back to their mask: never
    /// unaudited plaintext. The rest of the response is served.
    async fn an_audit_write_failure_serves_no_plaintext(app) {
        let db = needtoknow::db::connect(&app.settings).await.unwrap();
        let sql = match db.get_database_backend() {
            DatabaseBackend::Postgres => vec![
                "CREATE FUNCTION refuse_audit() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'audit store down'; END $$ LANGUAGE plpgsql",
                "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_events FOR EACH ROW EXECUTE FUNCTION refuse_audit()",
            ],
            _ => vec!["CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_events BEGIN SELECT RAISE(ABORT, 'audit store down'); END"],
        };
        for statement in sql {
            db.execute_unprepared(statement).await.unwrap();
        }
        let id = app.ticket_id("Charged twice in March").await;
        let (body, _) = query_with_id(&app, "billing", BILLING_VIEW, json!({ "id": id })).await;
        assert_no_errors(&body);
        let customer = &body["data"]["ticket"]["customer"];
        assert_eq!(customer["fullName"]["value"], "Robin S.");
        assert_eq!(customer["paymentMethods"]["access"], "MASKED");
        assert_eq!(customer["paymentMethods"]["value"], json!([{ "last4": "4242", "billingAddress": null }]));
        assert_eq!(customer["accountStatus"]["value"], "active", "unaudited classes are served");
        let text = body.to_string();
        for secret in ["Robin Sample", "Harbour"] {
            assert!(!text.contains(secret), "{secret} served without an audit event");
        }
        assert_eq!(
            audit_event::Entity::find().all(&db).await.unwrap().len(),
            usize::try_from(app.audit_start).unwrap(),
            "no event was added"
        );
    }
}

async fn rows(db: &sea_orm::DatabaseConnection) -> Vec<audit_event::Model> {
    audit_event::Entity::find()
        .order_by_asc(audit_event::Column::Seq)
        .all(db)
        .await
        .unwrap()
}

/// How many sessions of `conn`'s PostgreSQL database match `condition`, SQL over
/// `pg_stat_activity` (which lock they wait for, which statement they run).
async fn sessions_waiting(conn: &sea_orm::DatabaseConnection, condition: &str) -> i64 {
    conn.query_one_raw(sea_orm::Statement::from_string(
        DatabaseBackend::Postgres,
        format!(
            "SELECT count(*)::bigint AS n FROM pg_stat_activity WHERE datname = \
             current_database() AND {condition}"
        ),
    ))
    .await
    .unwrap()
    .unwrap()
    .try_get::<i64>("", "n")
    .unwrap()
}

/// A `viewed` event of the CLI about customer 1's email on ticket 1, in `request_id`.
fn viewed(request_id: String) -> audit::NewEvent {
    audit::NewEvent {
        actor_agent_id: None,
        actor_role: "cli".into(),
        action: audit::Action::Viewed,
        customer_id: Some(1),
        ticket_id: Some(1),
        fields: vec!["email".into()],
        reason: None,
        request_id,
        policy_version: Some("0123456789abcdef".into()),
        idempotency_key: None,
    }
}

async fn put(db: &sea_orm::DatabaseConnection, seq: i32, content: &audit_event::Model) {
    let mut row = audit_event::Model {
        seq,
        ..content.clone()
    }
    .into_active_model()
    .reset_all();
    row.seq = sea_orm::ActiveValue::Unchanged(seq);
    row.update(db).await.unwrap();
}

on_both_databases! {
    /// `audit verify` names the first event that was edited, reordered, inserted or
    /// deleted; the chain verifies again once the change is undone.
    async fn tampering_with_the_trail_is_detected(app) {
        let id = app.ticket_id("Charged twice in March").await;
        for _ in 0..4 {
            let (body, _) = query_with_id(&app, "billing", BILLING_VIEW, json!({ "id": id })).await;
            assert_no_errors(&body);
        }
        let db = needtoknow::db::connect(&app.settings).await.unwrap();
        let seeded = usize::try_from(app.audit_start).unwrap();
        let original = rows(&db).await.split_off(seeded);
        assert_eq!(original.len(), 4);
        let seq = |i: usize| original[i].seq;
        let whole = Verdict::Intact { events: seeded as u64 + 4 };
        assert_eq!(audit::verify(&db).await.unwrap(), whole);

        // Edit: someone removes a field from event 2.
        put(&db, seq(1), &audit_event::Model { fields: "[\"fullName\"]".into(), ..original[1].clone() }).await;
        assert!(matches!(audit::verify(&db).await.unwrap(), Verdict::Broken { seq: s, ref problem } if s == seq(1) && problem.contains("edited")));
        put(&db, seq(1), &original[1]).await;
        assert_eq!(audit::verify(&db).await.unwrap(), whole);

        // Reorder: events 2 and 3 swap places.
        put(&db, seq(1), &original[2]).await;
        put(&db, seq(2), &original[1]).await;
        assert!(matches!(audit::verify(&db).await.unwrap(), Verdict::Broken { seq: s, .. } if s == seq(1)));
        put(&db, seq(1), &original[1]).await;
        put(&db, seq(2), &original[2]).await;
        assert_eq!(audit::verify(&db).await.unwrap(), whole);

        // Fork: a second event after the same predecessor takes the same number (the
        // predecessor's plus one), and is refused outright.
        let fork = audit_event::Model { request_id: "fork".into(), ..original[3].clone() };
        assert!(fork.into_active_model().insert(&db).await.is_err(), "the chain forked");
        assert_eq!(audit::verify(&db).await.unwrap(), whole);

        // A fork numbered as if it came last, and a forged event with a made-up link:
        // both are inserts, and named as such.
        let after = seq(3) + 1;
        for forged in [
            audit_event::Model { seq: after, request_id: "fork".into(), ..original[3].clone() },
            audit_event::Model { seq: after, prev_hash: "f".repeat(64), hash: "e".repeat(64), ..original[3].clone() },
        ] {
            forged.into_active_model().insert(&db).await.unwrap();
            assert!(matches!(audit::verify(&db).await.unwrap(), Verdict::Broken { seq: s, .. } if s == after));
            audit_event::Entity::delete_by_id(after).exec(&db).await.unwrap();
            assert_eq!(audit::verify(&db).await.unwrap(), whole);
        }

        // Delete: event 3 disappears; the break shows at event 4.
        audit_event::Entity::delete_by_id(seq(2)).exec(&db).await.unwrap();
        assert!(matches!(audit::verify(&db).await.unwrap(), Verdict::Broken { seq: s, ref problem } if s == seq(3) && problem.contains("deleted")));

        if let needtoknow::config::DatabaseSettings::Sqlite { .. } = app.settings.database {
            let output = crate::common::binary()
                .env("NEEDTOKNOW_DATA_DIR", &app.settings.data_dir)
                .env("NEEDTOKNOW_LOG", "warn")
                .args(["audit", "verify"])
                .output()
                .unwrap();
            assert_eq!(output.status.code(), Some(1));
            let stdout = String::from_utf8_lossy(&output.stdout);
            assert!(stdout.contains(&format!("TAMPERED: event {}", seq(3))), "{stdout}");
        }
    }
}

on_both_databases! {
    /// Auditors and supervisors read the trail, filtered; other roles get FORBIDDEN.
    async fn only_allowed_roles_read_the_audit_trail(app) {
        let id = app.ticket_id("Charged twice in March").await;
        let (body, _) = query_with_id(&app, "billing", BILLING_VIEW, json!({ "id": id })).await;
        assert_no_errors(&body);
        for handle in ["frontline", "billing", "identity"] {
            let (_, body) = app.query_as(handle, EVENTS, json!({})).await;
            assert_eq!(error_code(&body), "FORBIDDEN", "{handle}");
            assert_eq!(body["data"], Value::Null);
        }
        let (_, body) = app.query_as("supervisor", EVENTS, json!({ "f": { "ticketId": id, "action": "VIEWED" } })).await;
        assert_no_errors(&body);
        assert_eq!(body["data"]["auditEvents"]["edges"].as_array().unwrap().len(), 1);
        assert_eq!(events(&app, json!({ "ticketId": "99999" })).await.len(), 0);
        assert_eq!(events(&app, json!({ "actor": "nobody" })).await.len(), 0);
        assert_eq!(events(&app, json!({ "actor": "billing" })).await.len(), 1);
    }
}

const REPORT: &str = "query($c: ID!) { customerAccessReport(customerId: $c) {
    namesAgents entries { action ticketId purpose role agent fields } } }";

async fn customer_id(app: &TestApp, ticket: &str) -> String {
    let data = app
        .data_as(
            "supervisor",
            "query($id: ID!) { ticket(id: $id) { customer { id } } }",
            json!({ "id": ticket }),
        )
        .await;
    data["ticket"]["customer"]["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// The privacy officer's access report lists dates, purposes and roles of every access to
/// one customer, naming agents only when configured.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_access_report_gives_purposes_and_roles_and_names_agents_only_if_configured() {
    for names in [false, true] {
        let app = crate::helpers::spawn_app_with(crate::helpers::Backend::Sqlite, |s| {
            s.report_agent_identities = names
        })
        .await;
        let ticket = app.ticket_id("Charged twice in March").await;
        let (body, _) = query_with_id(&app, "billing", BILLING_VIEW, json!({ "id": ticket })).await;
        assert_no_errors(&body);
        let robin = customer_id(&app, &ticket).await;
        let kim = customer_id(&app, &app.ticket_id("Where is my parcel?").await).await;

        let report = app.data_as("auditor", REPORT, json!({ "c": robin })).await;
        let report = &report["customerAccessReport"];
        assert_eq!(report["namesAgents"], names);
        // The report lists every event about the customer (the demo's were written through
        // the write side); the views are what this test made.
        let views: Vec<&Value> = report["entries"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["action"] == "VIEWED")
            .collect();
        assert!(report["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "CUSTOMER_CREATED"));
        assert_eq!(
            json!(views),
            json!([{ "action": "VIEWED", "ticketId": ticket, "purpose": "billing", "role": "billing",
                     "agent": if names { json!("billing") } else { Value::Null },
                     "fields": ["fullName", "paymentMethods"] }])
        );
        let other = app.data_as("auditor", REPORT, json!({ "c": kim })).await;
        assert!(
            other["customerAccessReport"]["entries"]
                .as_array()
                .unwrap()
                .iter()
                .all(|e| e["action"] != "VIEWED"),
            "nobody viewed Kim's data"
        );
        let (_, body) = app
            .query_as("frontline", REPORT, json!({ "c": robin }))
            .await;
        assert_eq!(error_code(&body), "FORBIDDEN");
        let (_, body) = app
            .query_as("auditor", REPORT, json!({ "c": "99999" }))
            .await;
        assert_eq!(error_code(&body), "NOT_FOUND");
    }
}

on_both_databases! {
    /// Concurrent appends are group-committed: every one is written, in one unbroken chain,
    /// and each caller returns only after its own events are stored.
    async fn concurrent_appends_keep_one_unbroken_chain(app) {
        let mut db = needtoknow::db::connect(&app.settings).await.unwrap();
        let statements = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = statements.clone();
        db.set_metric_callback(move |info| {
            // One INSERT per group of appends committed together.
            if info.statement.sql.starts_with("INSERT INTO \"audit_events\"") {
                counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        });
        let log = audit::AuditLog::new(needtoknow::writer::Writer::new(db.clone()));
        let before = rows(&db).await.len();
        let appends = (0..40).map(|i| {
            let log = log.clone();
            let db = db.clone();
            tokio::spawn(async move {
                let event = viewed(format!("concurrent-{i}"));
                log.append(&[event.clone(), event]).await.unwrap();
                // Returned: its events are committed and visible to anyone.
                let stored = audit_event::Entity::find()
                    .filter(audit_event::Column::RequestId.eq(format!("concurrent-{i}")))
                    .all(&db)
                    .await
                    .unwrap();
                assert_eq!(stored.len(), 2);
            })
        });
        for append in futures_util::future::join_all(appends).await {
            append.unwrap();
        }
        assert_eq!(rows(&db).await.len(), before + 80);
        let statements = statements.load(std::sync::atomic::Ordering::Relaxed);
        assert!(
            (1..40).contains(&statements),
            "40 appends, {statements} statements: appends waiting together are committed together"
        );
        assert!(matches!(
            audit::verify(&db).await.unwrap(),
            Verdict::Intact { .. }
        ));
    }
}

on_both_databases! {
    /// Two instances append to one chain, each after the head it last saw, while writes
    /// append their own events inside their transactions: whoever loses a race for the
    /// head starts again after the new one, so every append lands exactly once and the
    /// chain stays unbroken.
    async fn instances_racing_for_the_head_keep_one_chain(app) {
        use needtoknow::writer::Writer;
        let one = needtoknow::db::connect(&app.settings).await.unwrap();
        let other = needtoknow::db::connect(&app.settings).await.unwrap();
        let logs = [
            audit::AuditLog::new(Writer::new(one.clone())),
            audit::AuditLog::new(Writer::new(other.clone())),
        ];
        let writer = Writer::new(one.clone());
        let before = rows(&one).await.len();
        let mut tasks = Vec::new();
        for i in 0..20 {
            for (n, log) in logs.iter().enumerate() {
                let (log, event) = (log.clone(), viewed(format!("instance-{n}-{i}")));
                tasks.push(tokio::spawn(async move { log.append(&[event]).await.unwrap() }));
            }
            let (writer, event) = (writer.clone(), viewed(format!("write-{i}")));
            tasks.push(tokio::spawn(async move {
                writer
                    .transaction(|txn| {
                        let event = event.clone();
                        async move {
                            audit::append_in(&txn, &[event]).await?;
                            Ok::<_, anyhow::Error>(((), txn))
                        }
                    })
                    .await
                    .unwrap()
            }));
        }
        for task in futures_util::future::join_all(tasks).await {
            task.unwrap();
        }
        let after = rows(&one).await;
        assert_eq!(after.len(), before + 60, "every append landed exactly once");
        let mut ids: Vec<&str> = after[before..].iter().map(|e| e.request_id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), 60);
        assert!(matches!(audit::verify(&one).await.unwrap(), Verdict::Intact { .. }));
    }
}

/// A caller whose events start a batch, and which is then cancelled (a request dropped
/// at shutdown), does not fail the others in its batch: they get the batch's real outcome,
/// and every event of the batch, the cancelled caller's too, is written exactly once.
///
/// A trigger of the test's own makes every insert of events wait for a PostgreSQL advisory
/// lock, which holds the batches back at the right moments: the first append waits behind
/// one holder of the lock while two more queue behind it, and their batch then waits behind
/// a second holder while its first caller is cancelled. (A table lock would not do: an
/// insert takes it once to prepare its statement and again to run it, and a lock queued
/// behind it gets in between.) One thread, so the two queue in the order they are spawned.
#[tokio::test(flavor = "current_thread")]
async fn a_cancelled_append_does_not_fail_the_appends_written_with_it() {
    use crate::helpers::{eventually, migrated_database, Backend};
    use sea_orm::TransactionTrait;

    let fresh = migrated_database(Backend::Postgres).await;
    let (db, settings) = (fresh.db.clone(), &fresh.settings);
    let log = audit::AuditLog::new(needtoknow::writer::Writer::new(db.clone()));
    // Another client of the same database, which takes the locks and watches who waits.
    let other = needtoknow::db::connect(settings).await.unwrap();
    let waiting = |what: &'static str| {
        let other = other.clone();
        async move {
            sessions_waiting(
                &other,
                &format!("wait_event_type = 'Lock' AND query LIKE '{what}%'"),
            )
            .await
        }
    };
    let append = |id: &'static str| {
        let log = log.clone();
        tokio::spawn(async move { log.append(&[viewed(id.to_owned())]).await })
    };
    const INSERT: &str = "INSERT INTO \"audit_events\"";
    const LOCK: &str = "SELECT pg_advisory_xact_lock(7411999)";
    db.execute_unprepared(
        "CREATE FUNCTION hold_inserts() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
         PERFORM pg_advisory_xact_lock_shared(7411999); RETURN NULL; END $$; \
         CREATE TRIGGER hold_inserts BEFORE INSERT ON audit_events \
         FOR EACH STATEMENT EXECUTE FUNCTION hold_inserts();",
    )
    .await
    .unwrap();

    let first_lock = other.begin().await.unwrap();
    first_lock.execute_unprepared(LOCK).await.unwrap();
    let first = append("first");
    eventually("the first append waits for the lock", || async {
        waiting(INSERT).await == 1
    })
    .await;
    // The two queue behind the first, so one batch takes both of them.
    let cancelled = append("cancelled");
    tokio::task::yield_now().await;
    let kept = append("kept");
    tokio::task::yield_now().await;
    // A second lock, queued behind the first append's insert: granted once that is done,
    // it holds back the next batch's insert.
    let (release, released) = tokio::sync::oneshot::channel::<()>();
    let second_lock = tokio::spawn({
        let other = other.clone();
        async move {
            let txn = other.begin().await.unwrap();
            txn.execute_unprepared(LOCK).await.unwrap();
            released.await.unwrap();
            txn.commit().await.unwrap();
        }
    });
    eventually("the second lock is queued", || async {
        waiting(LOCK).await == 1
    })
    .await;
    first_lock.commit().await.unwrap();
    first.await.unwrap().unwrap();
    eventually(
        "the next batch's insert waits for the second lock",
        || async { waiting(INSERT).await == 1 },
    )
    .await;

    cancelled.abort();
    assert!(cancelled.await.unwrap_err().is_cancelled());
    release.send(()).unwrap();
    second_lock.await.unwrap();
    kept.await
        .unwrap()
        .expect("an append written with a cancelled one is answered with the write's outcome");

    let stored = rows(&db).await;
    for id in ["first", "cancelled", "kept"] {
        let n = stored.iter().filter(|e| e.request_id == id).count();
        assert_eq!(n, 1, "{id}'s event was written {n} times");
    }
    assert!(matches!(
        audit::verify(&db).await.unwrap(),
        Verdict::Intact { .. }
    ));
}

/// An upgrade onto a trail that someone forked (two events after one) stops at the new
/// index with what to do, instead of a bare unique violation.
#[tokio::test]
async fn a_forked_trail_stops_the_upgrade_and_says_what_to_do() {
    use migration::{Migrator, MigratorTrait};
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("forked.db").display()
    );
    let db = sea_orm::Database::connect(url).await.unwrap();
    Migrator::up(&db, Some(10)).await.unwrap();
    for n in 1..=2 {
        db.execute_unprepared(&format!(
            "INSERT INTO audit_events (occurred_at, actor_role, action, fields, request_id, \
             prev_hash, hash) VALUES ('2026-12-02 00:00:00', 'cli', 'viewed', '[]', 'r{n}', \
             '{}', '{n}')",
            audit::GENESIS
        ))
        .await
        .unwrap();
    }
    let error = Migrator::up(&db, None).await.unwrap_err().to_string();
    assert!(error.contains("needtoknow audit verify"), "{error}");
}

/// Undoing migration 16 on PostgreSQL gives back what the service before it relied on:
/// the unique index on `prev_hash`, and a column that numbers events itself, on from the
/// highest number given meanwhile. Redone, appends number events again.
#[tokio::test]
async fn migration_16_undone_numbers_events_on_from_the_trail_and_redone_appends_again() {
    use crate::helpers::{migrated_database, Backend};
    use migration::{Migrator, MigratorTrait};

    let fresh = migrated_database(Backend::Postgres).await;
    let db = fresh.db.clone();
    let log = audit::AuditLog::new(needtoknow::writer::Writer::new(db.clone()));
    log.append(&[viewed("one".into()), viewed("two".into())])
        .await
        .unwrap();

    crate::helpers::undo_migrations_from(&db, "000016").await;
    let head = rows(&db).await.pop().unwrap().hash;
    db.execute_unprepared(&format!(
        "INSERT INTO audit_events (occurred_at, actor_role, action, fields, request_id, \
         prev_hash, hash) VALUES (now(), 'cli', 'viewed', '[]', 'old', '{head}', 'x')"
    ))
    .await
    .expect("numbered by the column, after the trail");
    let seqs: Vec<i32> = rows(&db).await.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, [1, 2, 3]);
    let fork = db
        .execute_unprepared(&format!(
            "INSERT INTO audit_events (occurred_at, actor_role, action, fields, request_id, \
             prev_hash, hash) VALUES (now(), 'cli', 'viewed', '[]', 'fork', '{head}', 'y')"
        ))
        .await;
    assert!(fork.is_err(), "the prev_hash index is back");
    db.execute_unprepared("DELETE FROM audit_events WHERE request_id = 'old'")
        .await
        .unwrap();

    Migrator::up(&db, None).await.unwrap();
    let log = audit::AuditLog::new(needtoknow::writer::Writer::new(db.clone()));
    log.append(&[viewed("three".into())]).await.unwrap();
    let last = rows(&db).await.pop().unwrap();
    assert_eq!((last.seq, last.request_id.as_str()), (3, "three"));
    assert!(matches!(
        audit::verify(&db).await.unwrap(),
        Verdict::Intact { events: 3 }
    ));
}

/// A write transaction whose audit insert loses the chain's head to an optimistic append
/// (a read's `viewed` event, one statement, no lock) appends again after the new head,
/// within the same attempt, instead of failing: under a steady stream of reads, a
/// reveal's transaction used to lose on every attempt and answer `UNAVAILABLE`. The
/// optimistic append is not held back by the transaction while it works: reads do not
/// wait for writes.
///
/// A row trigger of the test's own holds the transaction's insert, after it has read the
/// head, until the optimistic append has landed.
#[tokio::test]
async fn a_transaction_that_loses_the_head_appends_again_and_reads_do_not_wait() {
    use crate::helpers::{eventually, migrated_database, Backend};
    use sea_orm::TransactionTrait;
    use std::sync::atomic::{AtomicU32, Ordering};

    let fresh = migrated_database(Backend::Postgres).await;
    let (db, settings) = (fresh.db.clone(), &fresh.settings);
    let log = audit::AuditLog::new(needtoknow::writer::Writer::new(db.clone()));
    // The log knows the head, so its next append is one INSERT after it.
    log.append(&[viewed("before".into())]).await.unwrap();
    db.execute_unprepared(
        "CREATE FUNCTION hold_transaction() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
         IF NEW.request_id = 'transaction' THEN PERFORM pg_advisory_xact_lock_shared(7411999); \
         END IF; RETURN NEW; END $$; \
         CREATE TRIGGER hold_transaction BEFORE INSERT ON audit_events \
         FOR EACH ROW EXECUTE FUNCTION hold_transaction();",
    )
    .await
    .unwrap();
    let other = needtoknow::db::connect(settings).await.unwrap();
    let hold = other.begin().await.unwrap();
    hold.execute_unprepared("SELECT pg_advisory_xact_lock(7411999)")
        .await
        .unwrap();

    let attempts = std::sync::Arc::new(AtomicU32::new(0));
    let transaction = tokio::spawn({
        let (writer, attempts) = (
            needtoknow::writer::Writer::new(db.clone()),
            attempts.clone(),
        );
        async move {
            writer
                .transaction(|txn| {
                    attempts.fetch_add(1, Ordering::SeqCst);
                    async move {
                        audit::append_in(&txn, &[viewed("transaction".into())]).await?;
                        Ok::<_, anyhow::Error>(((), txn))
                    }
                })
                .await
        }
    });
    let held = || {
        let other = other.clone();
        async move { sessions_waiting(&other, "wait_event = 'advisory'").await == 1 }
    };
    eventually("the transaction's insert is held", held).await;
    // The read's append lands after the head the transaction read, without waiting.
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        log.append(&[viewed("optimistic".into())]),
    )
    .await
    .expect("an optimistic append waited for a write transaction")
    .unwrap();

    hold.commit().await.unwrap();
    transaction
        .await
        .unwrap()
        .expect("the transaction appends after the new head");
    assert_eq!(
        attempts.load(Ordering::SeqCst),
        1,
        "the lost head was taken back within the transaction's first attempt"
    );
    let order: Vec<String> = rows(&db).await.into_iter().map(|e| e.request_id).collect();
    assert_eq!(
        order[order.len() - 3..],
        ["before", "optimistic", "transaction"]
    );
    assert!(matches!(
        audit::verify(&db).await.unwrap(),
        Verdict::Intact { .. }
    ));
}

/// On PostgreSQL, reading the chain's head stays an index look-up however much the trail
/// has grown since its statistics were taken. PostgreSQL keeps one generic plan per
/// prepared statement and connection: made while the trail was a few events long (the seed
/// analyzes every table), the head read was a scan and sort of the whole trail, and it
/// stayed one where autovacuum is off, while write transactions queued behind it under the
/// chain's lock.
#[tokio::test]
async fn the_head_read_stays_an_index_lookup_after_the_trail_outgrows_its_statistics() {
    use crate::helpers::{fresh_settings, postgres_admin_url, Backend};
    use migration::{Migrator, MigratorTrait};
    use needtoknow::writer::Writer;

    let (_settings, _dir, pg) = fresh_settings(Backend::Postgres).await;
    let url = format!("{}/{}", postgres_admin_url(), pg.as_deref().unwrap());
    // One connection: the statements it prepares while the trail is short are the ones it
    // runs once the trail has grown.
    let mut options = sea_orm::ConnectOptions::new(url);
    options.max_connections(1);
    let db = sea_orm::Database::connect(options).await.unwrap();
    Migrator::up(&db, None).await.unwrap();
    let writer = Writer::new(db.clone());
    let append_in_transaction = |request_id: String| {
        let writer = writer.clone();
        async move {
            writer
                .transaction(|txn| {
                    let event = viewed(request_id.clone());
                    async move {
                        audit::append_in(&txn, &[event]).await?;
                        Ok::<_, anyhow::Error>(((), txn))
                    }
                })
                .await
                .unwrap()
        }
    };
    for n in 0..3 {
        append_in_transaction(format!("short {n}")).await;
    }
    db.execute_unprepared("ANALYZE audit_events").await.unwrap();
    // More runs than PostgreSQL needs to settle on a generic plan, for a trail of three.
    for n in 0..10 {
        append_in_transaction(format!("planned {n}")).await;
    }
    let grown: Vec<_> = (0..3_000).map(|n| viewed(format!("grown {n}"))).collect();
    audit::AuditLog::new(writer.clone())
        .append(&grown)
        .await
        .unwrap();

    // Counted around the append, in its transaction: PostgreSQL's per-transaction
    // counters also hold what this connection did before and has not reported yet.
    let scanned = writer
        .transaction(|txn| async move {
            let before = seq_scans(&txn).await?;
            audit::append_in(&txn, &[viewed("after".into())]).await?;
            let scans = seq_scans(&txn).await? - before;
            Ok::<_, anyhow::Error>((scans, txn))
        })
        .await
        .unwrap();
    assert_eq!(scanned, 0, "the head read scanned the whole trail");
    assert!(matches!(
        audit::verify(&db).await.unwrap(),
        Verdict::Intact { .. }
    ));
}

/// How many sequential scans of `audit_events` this connection has made and not yet
/// reported to PostgreSQL's statistics, the current transaction's included.
async fn seq_scans(txn: &sea_orm::DatabaseTransaction) -> anyhow::Result<i64> {
    Ok(txn
        .query_one_raw(sea_orm::Statement::from_string(
            DatabaseBackend::Postgres,
            "SELECT seq_scan FROM pg_stat_xact_user_tables WHERE relname = 'audit_events'",
        ))
        .await?
        .expect("the table's statistics")
        .try_get::<i64>("", "seq_scan")?)
}
