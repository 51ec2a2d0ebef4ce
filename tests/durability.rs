//! The service as an operator runs it, under the failures operators meet: backups restored
//! after an erasure, the process killed mid-write, clients sending malformed requests.
//! Each test runs the real binary.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

/// A running `needtoknow serve --demo`, its log collected as it comes.
struct Service {
    served: common::Served,
    /// `http://host:port`.
    address: String,
    tokens: std::collections::BTreeMap<String, String>,
    client: reqwest::Client,
}

/// Where one service lives: its data directory and, for PostgreSQL, its database URL.
struct Place {
    dir: tempfile::TempDir,
    database_url: Option<String>,
}

impl Place {
    fn sqlite() -> Place {
        Place {
            dir: tempfile::tempdir().unwrap(),
            database_url: None,
        }
    }

    async fn postgres() -> Place {
        use sea_orm::{ConnectionTrait, Database};
        let server = std::env::var("NEEDTOKNOW_TEST_POSTGRES")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_owned());
        let name = common::pg_database_name();
        let admin = Database::connect(format!("{server}/postgres"))
            .await
            .unwrap();
        admin
            .execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        admin.close().await.ok();
        Place {
            dir: tempfile::tempdir().unwrap(),
            database_url: Some(format!("{server}/{name}")),
        }
    }

    /// The library's settings for this place, to open its database from the test.
    fn settings(&self) -> needtoknow::config::Settings {
        let database = match &self.database_url {
            Some(url) => needtoknow::config::DatabaseSettings::Postgres {
                url: needtoknow::config::Secret::new(url.clone()),
            },
            None => needtoknow::config::DatabaseSettings::Sqlite {
                path: self.sqlite_file(),
            },
        };
        needtoknow::config::Settings::for_data_dir(self.dir.path(), database)
    }

    fn sqlite_file(&self) -> PathBuf {
        self.dir.path().join("needtoknow.sqlite")
    }

    /// The binary with this place's data directory and database.
    fn command(&self) -> Command {
        let mut command = common::binary();
        command.env("NEEDTOKNOW_DATA_DIR", self.dir.path());
        if let Some(url) = &self.database_url {
            command.env("DATABASE_URL", url);
        }
        command
    }

    /// Runs a CLI command and returns its standard output; fails the test on failure.
    fn run(&self, args: &[&str]) -> String {
        let output = self.command().args(args).output().unwrap();
        assert!(
            output.status.success(),
            "needtoknow {args:?}: {}",
            common::stderr(&output)
        );
        common::stdout(&output)
    }

    /// Starts `serve --demo` and waits until it listens.
    fn serve(&self) -> Service {
        Place::serve_with(self.command(), self.dir.path())
    }

    /// Starts `serve --demo` with `command` (the binary, its environment set) and waits
    /// until it listens.
    fn serve_with(mut command: Command, dir: &Path) -> Service {
        let served = common::serve(command.args([
            "serve",
            "--demo",
            "--listen",
            "127.0.0.1:0",
            "--workers",
            "2",
        ]));
        let tokens =
            serde_json::from_slice(&std::fs::read(dir.join("demo-tokens.json")).unwrap()).unwrap();
        Service {
            address: format!("http://{}", served.address),
            served,
            tokens,
            client: reqwest::Client::new(),
        }
    }
}

impl Service {
    /// Posts a GraphQL operation as demo agent `handle` (or with a token); returns the body.
    async fn query(&self, token: &str, query: &str, variables: Value) -> Value {
        let token = self.tokens.get(token).map_or(token, String::as_str);
        self.client
            .post(format!("{}/graphql", self.address))
            .bearer_auth(token)
            .json(&json!({ "query": query, "variables": variables }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// [`Service::query`] that tolerates the service dying: `None` when no answer came.
    /// An answer that came must not be `INTERNAL` or a 5xx. Sends the delivery's
    /// `Idempotency-Key` when it has one.
    async fn try_deliver(&self, delivery: &Delivery) -> Option<Value> {
        let (query, token) = (delivery.query, delivery.token.as_str());
        let token = self.tokens.get(token).map_or(token, String::as_str);
        let mut request = self
            .client
            .post(format!("{}/graphql", self.address))
            .bearer_auth(token)
            .json(&json!({ "query": query, "variables": delivery.variables }));
        if let Some(key) = &delivery.key {
            request = request.header("Idempotency-Key", key);
        }
        let response = request.send().await.ok()?;
        let status = response.status();
        let body: Value = response.json().await.ok()?;
        assert!(status.as_u16() < 500, "HTTP {status}: {body}");
        assert_ne!(
            body["errors"][0]["extensions"]["code"], "INTERNAL",
            "{query}: {body}"
        );
        Some(body)
    }

    /// The id of the demo ticket with `subject`, as the supervisor sees it.
    async fn ticket(&self, subject: &str) -> (String, String) {
        let body = self
            .query(
                "supervisor",
                "{ tickets(first: 100) { edges { node { id subject customer { id } } } } }",
                json!({}),
            )
            .await;
        let edge = body["data"]["tickets"]["edges"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["node"]["subject"] == subject)
            .unwrap_or_else(|| panic!("no ticket {subject:?}: {body}"))
            .clone();
        (
            edge["node"]["id"].as_str().unwrap().to_owned(),
            edge["node"]["customer"]["id"].as_str().unwrap().to_owned(),
        )
    }

    /// The subjects the supervisor sees.
    async fn subjects(&self) -> Vec<String> {
        let body = self
            .query(
                "supervisor",
                "{ tickets(first: 100) { edges { node { subject } } } }",
                json!({}),
            )
            .await;
        body["data"]["tickets"]["edges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["node"]["subject"].as_str().unwrap().to_owned())
            .collect()
    }

    /// SIGTERM, and waits for the exit.
    fn stop(mut self) -> Vec<String> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.served.child.id().to_string()])
            .status();
        self.served.wait().1
    }

    /// `kill -9` (SIGKILL): no shutdown, no flush, whatever was in flight is cut.
    fn kill_now(&self) {
        let _ = Command::new("kill")
            .args(["-KILL", &self.served.child.id().to_string()])
            .status();
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.served.child.kill();
        let _ = self.served.wait();
    }
}

/// The key material of a master key file, as stored.
fn master_key_material(path: &Path) -> Vec<String> {
    let file: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    file["keys"]
        .as_object()
        .unwrap()
        .values()
        .map(|k| k.as_str().unwrap().to_owned())
        .collect()
}

const ERASE: &str = "mutation($c: ID!) { eraseCustomer(customerId: $c) { customerId } }";
const RESOLVE: &str =
    "mutation($t: ID!) { setTicketStatus(ticketId: $t, status: RESOLVED) { status } }";
const DOCUMENTS: &str =
    "query($t: ID!) { ticket(id: $t) { customer { identityDocuments { value { fileName } } } } }";

/// The restore drill on SQLite (`needtoknow backup`, then the file copied back).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restored_backup_does_not_bring_back_erased_or_purged_data_on_sqlite() {
    restore_drill(Place::sqlite()).await;
}

/// The restore drill on PostgreSQL (`pg_dump`, then `pg_restore --clean`), as the README
/// says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restored_backup_does_not_bring_back_erased_or_purged_data_on_postgres() {
    restore_drill(Place::postgres().await).await;
}

/// Backs the database up while the service runs, the README's way for its backend.
fn back_up(place: &Place, backup: &Path) {
    match &place.database_url {
        None => {
            let printed = place.run(&["backup", backup.to_str().unwrap()]);
            assert!(
                printed.contains("master keys and the erasure ledger are not in it"),
                "{printed}"
            );
            // A second backup to the same file is refused rather than overwriting it.
            let again = place
                .command()
                .args(["backup", backup.to_str().unwrap()])
                .output()
                .unwrap();
            assert!(!again.status.success() && common::stderr(&again).contains("already exists"));
        }
        Some(url) => {
            let dumped = Command::new("pg_dump")
                .args(["--format=custom", "--file"])
                .arg(backup)
                .arg(url)
                .output()
                .unwrap();
            assert!(dumped.status.success(), "{}", common::stderr(&dumped));
            // `backup` says how to back PostgreSQL up instead of pretending.
            let refused = place
                .command()
                .args(["backup", "/tmp/never-written"])
                .output()
                .unwrap();
            assert!(!refused.status.success() && common::stderr(&refused).contains("pg_dump"));
        }
    }
}

/// Restores `backup` with the service stopped, the README's way for its backend.
fn restore(place: &Place, backup: &Path) {
    match &place.database_url {
        None => {
            let file = place.sqlite_file();
            for suffix in ["-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", file.display()));
            }
            std::fs::copy(backup, &file).unwrap();
        }
        Some(url) => {
            let restored = Command::new("pg_restore")
                .args(["--clean", "--if-exists", "--no-owner"])
                .arg(format!("--dbname={url}"))
                .arg(backup)
                .output()
                .unwrap();
            assert!(restored.status.success(), "{}", common::stderr(&restored));
        }
    }
}

/// The restore drill: back up while serving, erase a customer and let retention purge an
/// identity scan, restore the older backup, start again. What was erased and purged stays
/// gone, before the first request is served; the backup never holds the master keys.
async fn restore_drill(place: Place) {
    let backup = place.dir.path().join("backups").join("before.backup");
    std::fs::create_dir_all(backup.parent().unwrap()).unwrap();
    let service = place.serve();
    let officer = place.run(&[
        "agent", "create", "--handle", "officer", "--role", "admin", "--team", "support",
    ]);
    let officer = officer.trim();

    let (_, kim) = service.ticket("Where is my parcel?").await;
    let (identity, _) = service.ticket("Verify my identity").await;
    let scans = service
        .query("identity", DOCUMENTS, json!({ "t": identity }))
        .await;
    let documents =
        |body: &Value| body["data"]["ticket"]["customer"]["identityDocuments"]["value"].clone();
    assert_eq!(
        documents(&scans).as_array().map(Vec::len),
        Some(1),
        "{scans}"
    );

    // A consistent copy while the service runs, without the master keys.
    back_up(&place, &backup);
    let copy = std::fs::read(&backup).unwrap();
    for key in master_key_material(&place.dir.path().join("master-keys.json")) {
        assert!(
            !copy.windows(key.len()).any(|w| w == key.as_bytes()),
            "a master key is in the backup"
        );
    }

    // After the backup: Kim is erased; Robin's identity scan passes its retention period.
    let erased = service.query(officer, ERASE, json!({ "c": kim })).await;
    assert!(erased.get("errors").is_none(), "{erased}");
    let resolved = service
        .query("identity", RESOLVE, json!({ "t": identity }))
        .await;
    assert!(resolved.get("errors").is_none(), "{resolved}");
    let later = (chrono::Utc::now() + chrono::Duration::days(8)).to_rfc3339();
    let swept = place.run(&["retention", "sweep", "--as-of", &later]);
    assert!(swept.contains("purged 1 attachment(s)"), "{swept}");
    assert!(!service
        .subjects()
        .await
        .contains(&"Where is my parcel?".to_owned()));
    service.stop();

    // The operator restores the older backup.
    restore(&place, &backup);

    let service = place.serve();
    let subjects = service.subjects().await;
    assert!(
        !subjects.contains(&"Where is my parcel?".to_owned()),
        "Kim came back: {subjects:?}"
    );
    assert!(
        !subjects.contains(&"Refund not received".to_owned()),
        "Kim came back: {subjects:?}"
    );
    assert!(
        subjects.contains(&"Cannot reset my password".to_owned()),
        "Robin stays: {subjects:?}"
    );
    let scans = service
        .query("identity", DOCUMENTS, json!({ "t": identity }))
        .await;
    assert_eq!(documents(&scans), json!([]), "the scan came back: {scans}");
    let log = service.stop().join("\n");
    assert!(
        log.contains("erased it again"),
        "start-up says what it re-applied: {log}"
    );
    let verified = place.run(&["audit", "verify"]);
    assert!(verified.contains("intact"), "{verified}");
    // The re-applications are in the trail, by the system, naming no value.
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    let db = needtoknow::db::connect(&place.settings()).await.unwrap();
    let reapplied: Vec<String> = entity::audit_event::Entity::find()
        .filter(entity::audit_event::Column::RequestId.eq("erasure-ledger"))
        .all(&db)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert_eq!(reapplied, ["customer_erased", "purged"]);
    db.close().await.ok();
    // A second start re-applies nothing.
    let service = place.serve();
    let log = service.stop().join("\n");
    assert!(!log.contains("erased it again"), "{log}");
}

/// A client that sends a malformed header gets 400, and the log says WARN, not ERROR: a
/// client's mistake is not an operator's error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_header_is_a_warning_not_an_error() {
    use std::io::{Read, Write};
    let place = Place::sqlite();
    let service = place.serve();
    let address = service.address.trim_start_matches("http://").to_owned();
    let mut stream = std::net::TcpStream::connect(&address).unwrap();
    stream
        .write_all(b"POST /graphql HTTP/1.1\r\nHost: x\r\nBad Header: \x01\x02\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    assert!(response.starts_with("HTTP/1.1 400"), "{response:?}");
    let log = service.stop();
    let levels: Vec<Value> = log
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| {
            e["message"]
                .as_str()
                .is_some_and(|m| m.contains("malformed") || m.contains("parse error"))
        })
        .map(|e| e["level"].clone())
        .collect();
    assert_eq!(levels, [json!("WARN")], "{log:#?}");
    assert!(
        !log.iter().any(|l| l.contains("\"level\":\"ERROR\"")),
        "{log:#?}"
    );
}

const REVEAL: &str = "mutation($t: ID!, $why: String!) { requestReveal(ticketId: $t, fields: [\"email\"], reason: $why) { grants { id } } }";
const REVOKE: &str = "mutation($g: ID!) { revokeReveal(grantId: $g) { id } }";
const STATUS: &str =
    "mutation($t: ID!, $s: TicketStatus!) { setTicketStatus(ticketId: $t, status: $s) { status } }";
const VERIFY: &str = "mutation($t: ID!) { verifyCustomerIdentity(ticketId: $t, answers: { postalCode: \"00000\" }) { postalCode } }";
const ASK: &str = "mutation($t: ID!, $why: String!) { requestReveal(ticketId: $t, fields: [\"paymentMethods\"], reason: $why) { request { id } } }";
const APPROVE: &str = "mutation($r: ID!) { approveReveal(requestId: $r, note: \"checked with the customer\") { status } }";
const OPEN: &str = "mutation($i: OpenTicketInput!) { openTicket(input: $i) { ticketId } }";
const APPEND: &str = "mutation($t: ID!, $i: AppendMessageInput!) { appendMessage(ticketId: $t, input: $i) { messageId } }";
const EVERYTHING: &str = "{ tickets(first: 100) { edges { node { id status messages { body } customer { fullName { value } email { value } phone { value } postalAddress { value } dateOfBirth { value } paymentMethods { access } } } } } }";
const GRANTS: &str = "{ myGrants { edges { node { id field ticketId } } } }";

/// One mutation as a client sends it, with an `Idempotency-Key` when it has one.
#[derive(Clone, Debug)]
struct Delivery {
    token: String,
    key: Option<String>,
    query: &'static str,
    variables: Value,
}

/// One writer of the burst: mixed writes, each request under its own idempotency key,
/// until the service dies under it. Returns the request that got no answer (it may or may
/// not have been carried out), for the client to retry.
async fn keep_writing(
    service: Arc<Service>,
    approver: String,
    reset: String,
    parcel: String,
    seed: usize,
    round: usize,
) -> Delivery {
    let id_of = |body: &Value, pointer: &str| -> Option<String> {
        body.pointer(pointer)
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    for step in 0.. {
        let key = |part: &str| Some(format!("r{round}-w{seed}-s{step}-{part}"));
        let send = |token: &str, part: &str, query: &'static str, variables: Value| Delivery {
            token: token.to_owned(),
            key: key(part),
            query,
            variables,
        };
        let first = match (seed + step) % 5 {
            0 => {
                let reason = format!(
                    "the customer asked us to confirm it {}",
                    key("a").unwrap_or_default()
                );
                send(
                    "frontline",
                    "a",
                    REVEAL,
                    json!({ "t": reset, "why": reason }),
                )
            }
            1 => {
                let status = if step % 2 == 1 { "PENDING" } else { "OPEN" };
                send(
                    "supervisor",
                    "a",
                    STATUS,
                    json!({ "t": parcel, "s": status }),
                )
            }
            2 => send("frontline", "a", VERIFY, json!({ "t": parcel })),
            // A chat arrives through the integration: a ticket with its first message.
            3 => send(
                "chat-gateway",
                "a",
                OPEN,
                json!({ "i": {
                    "customerExternalId": "demo-robin", "channel": "chat", "topic": "technical",
                    "subject": key("a").unwrap_or_default(), "message": "The app froze again.",
                } }),
            ),
            _ => {
                let reason = format!(
                    "the customer disputes a charge {}",
                    key("a").unwrap_or_default()
                );
                send("supervisor", "a", ASK, json!({ "t": reset, "why": reason }))
            }
        };
        let Some(body) = service.try_deliver(&first).await else {
            return first;
        };
        let second = if let Some(grant) = id_of(&body, "/data/requestReveal/grants/0/id") {
            send("frontline", "b", REVOKE, json!({ "g": grant }))
        } else if let Some(id) = id_of(&body, "/data/requestReveal/request/id") {
            send(&approver, "b", APPROVE, json!({ "r": id }))
        } else if let Some(ticket) = id_of(&body, "/data/openTicket/ticketId") {
            let external = key("b").unwrap_or_default();
            send(
                "chat-gateway",
                "b",
                APPEND,
                json!({ "t": ticket, "i": { "author": "CUSTOMER", "body": "Still frozen.", "externalId": external } }),
            )
        } else {
            continue;
        };
        if service.try_deliver(&second).await.is_none() {
            return second;
        }
    }
    unreachable!("the loop only ends when the service dies")
}

/// Retries an interrupted delivery after the restart, as a client does: again on
/// `CONFLICT` (the dead instance's claim, until it counts as abandoned). The retry either
/// replays the stored result or carries the request out once; a reveal's audit events
/// (found by its unique reason) exist exactly once either way.
async fn retry(service: &Service, place: &Place, delivery: &Delivery, round: usize) {
    let body = loop {
        let body = service
            .try_deliver(delivery)
            .await
            .expect("the restarted service answers");
        if body["errors"][0]["extensions"]["code"] != "CONFLICT" {
            break body;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    if let Some(reason) = delivery.variables["why"].as_str() {
        assert!(
            body.get("errors").is_none(),
            "round {round}: {delivery:?}: {body}"
        );
        use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
        let db = needtoknow::db::connect(&place.settings()).await.unwrap();
        let events = entity::audit_event::Entity::find()
            .filter(entity::audit_event::Column::Reason.eq(reason))
            .count(&db)
            .await
            .unwrap();
        db.close().await.ok();
        let expected = if delivery.query == REVEAL { 2 } else { 1 };
        assert_eq!(
            events, expected,
            "round {round}: {delivery:?} written more or less than once"
        );
    }
    // A chat opened or a message added exactly once: found by the subject or external id
    // only that delivery used.
    let (table, column, value) = match delivery.query {
        OPEN => ("tickets", "subject", &delivery.variables["i"]["subject"]),
        APPEND => (
            "messages",
            "external_id",
            &delivery.variables["i"]["externalId"],
        ),
        _ => return,
    };
    assert!(
        body.get("errors").is_none(),
        "round {round}: {delivery:?}: {body}"
    );
    use sea_orm::ConnectionTrait;
    let db = needtoknow::db::connect(&place.settings()).await.unwrap();
    let row = db
        .query_one_raw(sea_orm::Statement::from_sql_and_values(
            db.get_database_backend(),
            format!("SELECT COUNT(*) AS n FROM {table} WHERE {column} = $1"),
            [value.as_str().unwrap().into()],
        ))
        .await
        .unwrap()
        .unwrap();
    db.close().await.ok();
    let n: i64 = row.try_get("", "n").unwrap();
    assert_eq!(n, 1, "round {round}: {delivery:?} written {n} times");
}

/// What must hold after any crash: the chain verifies, every stored grant has its audit
/// event, every decided reveal request has its decision's event, and every record reads.
async fn check_consistency(place: &Place, service: &Service, round: usize) {
    use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};
    let verified = place.run(&["audit", "verify"]);
    assert!(verified.contains("intact"), "round {round}: {verified}");

    let db = needtoknow::db::connect(&place.settings()).await.unwrap();
    let events = entity::audit_event::Entity::find().all(&db).await.unwrap();
    for holder in ["frontline", "supervisor"] {
        let grants = service.query(holder, GRANTS, json!({})).await;
        for edge in grants["data"]["myGrants"]["edges"].as_array().unwrap() {
            let grant = &edge["node"];
            let ticket = common::db_id(grant["ticketId"].as_str().unwrap());
            let field = format!("\"{}\"", grant["field"].as_str().unwrap());
            assert!(
                events.iter().any(|e| e.ticket_id == Some(ticket)
                    && matches!(e.action.as_str(), "reveal_granted" | "reveal_approved")
                    && e.fields.contains(&field)),
                "round {round}: a stored grant without its audit event: {grant}"
            );
        }
    }
    let decided = entity::reveal_request::Entity::find()
        .filter(entity::reveal_request::Column::Status.ne("pending"))
        .all(&db)
        .await
        .unwrap();
    let approvals = events
        .iter()
        .filter(|e| e.action == "reveal_approved")
        .count();
    assert_eq!(
        decided.len(),
        approvals,
        "round {round}: every decision has its event, and only those"
    );
    assert!(decided
        .iter()
        .all(|r| r.decided_by.is_some() && r.decided_at.is_some()));
    // Every ticket the integration opened has its first message and its audit event.
    let opened = entity::ticket::Entity::find()
        .filter(entity::ticket::Column::Subject.like("r%-w%-s%-a"))
        .all(&db)
        .await
        .unwrap();
    for ticket in &opened {
        assert!(
            events
                .iter()
                .any(|e| e.ticket_id == Some(ticket.id) && e.action == "ticket_opened"),
            "round {round}: ticket {} without its audit event",
            ticket.id
        );
        let messages = entity::message::Entity::find()
            .filter(entity::message::Column::TicketId.eq(ticket.id))
            .all(&db)
            .await
            .unwrap();
        assert!(
            !messages.is_empty(),
            "round {round}: a chat without its message"
        );
        let added = events
            .iter()
            .filter(|e| e.ticket_id == Some(ticket.id) && e.action == "message_added")
            .count();
        assert_eq!(
            added,
            messages.len(),
            "round {round}: every message audited once"
        );
    }
    if place.database_url.is_none() {
        let row = db
            .query_one_raw(sea_orm::Statement::from_string(
                sea_orm::DatabaseBackend::Sqlite,
                "PRAGMA integrity_check",
            ))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            row.try_get_by_index::<String>(0).unwrap(),
            "ok",
            "round {round}"
        );
    }
    db.close().await.ok();
    let everything = service.query("supervisor", EVERYTHING, json!({})).await;
    assert!(
        everything.get("errors").is_none(),
        "round {round}: {everything}"
    );
}

/// A burst of mixed writes (reveals and revocations, approvals, status changes, identity
/// checks, chats opened and messages added through the integration) from 8 clients, each request under its own idempotency key, cut by `kill -9` at
/// a random moment, 20 times. After each restart the data is consistent (see
/// [`check_consistency`]); then every client retries the request that got no answer, with
/// the same key, and it is carried out exactly once ([`retry`]).
async fn killed_mid_write(place: Place) {
    let prefix = format!("ntk-test-{}", uuid::Uuid::new_v4().simple());
    let redis =
        std::env::var("NEEDTOKNOW_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let start = |place: &Place| {
        let mut command = place.command();
        command
            .env("REDIS_URL", &redis)
            .env("NEEDTOKNOW_REDIS_PREFIX", &prefix)
            .env("NEEDTOKNOW_IDENTITY_CHECKS_PER_HOUR", "1000000")
            .env("NEEDTOKNOW_IDEMPOTENCY_ABANDON_SECS", "1")
            .env("NEEDTOKNOW_REVEALS_PER_HOUR", "1000000")
            .env("NEEDTOKNOW_REQUESTS_PER_MINUTE", "100000000");
        Place::serve_with(command, place.dir.path())
    };
    let approver = place.run(&[
        "agent",
        "create",
        "--handle",
        "supervisor2",
        "--role",
        "supervisor",
        "--team",
        "support",
    ]);
    let approver = approver.trim().to_owned();
    let mut service = Arc::new(start(&place));
    let (reset, _) = service.ticket("Cannot reset my password").await;
    let (parcel, _) = service.ticket("Where is my parcel?").await;
    for round in 1..=20 {
        let writers: Vec<_> = (0..8)
            .map(|seed| {
                tokio::spawn(keep_writing(
                    service.clone(),
                    approver.clone(),
                    reset.clone(),
                    parcel.clone(),
                    seed,
                    round,
                ))
            })
            .collect();
        let wait = rand::random::<u64>() % 700 + 100;
        tokio::time::sleep(Duration::from_millis(wait)).await;
        service.kill_now();
        let mut interrupted = Vec::new();
        for writer in writers {
            interrupted.push(writer.await.expect("a writer saw INTERNAL or a 5xx"));
        }
        service = Arc::new(start(&place));
        check_consistency(&place, &service, round).await;
        for delivery in &interrupted {
            retry(&service, &place, delivery, round).await;
        }
        check_consistency(&place, &service, round).await;
    }
    // The burst did open chats (the mix reached the integration's writes).
    use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
    let db = needtoknow::db::connect(&place.settings()).await.unwrap();
    let chats = entity::ticket::Entity::find()
        .filter(entity::ticket::Column::Subject.like("r%-w%-s%-a"))
        .count(&db)
        .await
        .unwrap();
    assert!(chats > 0, "no chat was opened");
    db.close().await.ok();
}

/// The kill test on SQLite.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_mid_write_leaves_consistent_data_on_sqlite() {
    killed_mid_write(Place::sqlite()).await;
}

/// The kill test on PostgreSQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_mid_write_leaves_consistent_data_on_postgres() {
    killed_mid_write(Place::postgres().await).await;
}
