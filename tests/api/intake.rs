//! The write side: a chat arrives through a channel integration's service account, agents
//! work it (claim, reply, hand off, resolve), documents are checked and purged, bad input
//! writes nothing, and a retried delivery writes once.

use sea_orm::{ConnectionTrait, EntityTrait, PaginatorTrait};
use serde_json::{json, Value};

use crate::helpers::{error_code, spawn_app_with, Backend, TestApp};
use crate::on_both_databases;

const UPSERT: &str = "mutation($i: CustomerInput!) { upsertCustomer(input: $i) { customerId created changedFields } }";
const OPEN: &str = "mutation($i: OpenTicketInput!) { openTicket(input: $i) { ticketId customerId created status } }";
const APPEND: &str = "mutation($t: ID!, $i: AppendMessageInput!) { appendMessage(ticketId: $t, input: $i) { messageId ticketStatus reopened } }";
const REPLY: &str = "mutation($t: ID!, $b: String!) { replyToTicket(ticketId: $t, body: $b) { messageId ticketStatus } }";
const CLAIM: &str = "mutation($t: ID!) { claimTicket(ticketId: $t) { id assignee { handle } } }";
const HAND_OFF: &str = "mutation($t: ID!, $to: String!, $n: String!) { handOffTicket(ticketId: $t, to: $to, note: $n) { role topic assigned revokedGrants } }";
const STATUS: &str =
    "mutation($t: ID!, $s: TicketStatus!) { setTicketStatus(ticketId: $t, status: $s) { status } }";
const VIEW: &str = "query($t: ID!) { ticket(id: $t) { topic status messages { authorKind body }
    handOffTargets { role label topic }
    customer { fullName { value access } email { value access } } } }";

/// POSTs `query` with `token`; returns status and body.
async fn post(app: &TestApp, token: &str, query: &str, variables: Value) -> (u16, Value) {
    app.post_graphql(
        Some(token),
        &json!({ "query": query, "variables": variables }),
    )
    .await
}

/// Posts and fails on any error; returns `data`.
async fn ok(app: &TestApp, token: &str, query: &str, variables: Value) -> Value {
    let (status, body) = post(app, token, query, variables).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["errors"].is_null(), "{query}: {body:#}");
    body["data"].clone()
}

fn robin_like(external: &str) -> Value {
    json!({
        "externalId": external,
        "fullName": "Sam Newcomer",
        "email": "sam.newcomer@example.net",
        "phone": "+1 555 0199 4411",
        "postalAddress": { "street": "1 Pier Road", "city": "Portsmouth", "postalCode": "PO1 2AA", "country": "gb" },
        "dateOfBirth": "1979-05-04",
        "region": "GB",
        "plan": "basic",
        "preferredLanguage": "en-GB",
    })
}

/// Opens a chat ticket for a new customer through the intake account; returns its id.
async fn new_chat(
    app: &TestApp,
    intake: &str,
    external: &str,
    topic: &str,
    message: &str,
) -> String {
    ok(app, intake, UPSERT, json!({ "i": robin_like(external) })).await;
    let data = ok(
        app,
        intake,
        OPEN,
        json!({ "i": {
            "customerExternalId": external, "channel": "chat", "topic": topic,
            "subject": "Help with my account", "message": message,
            "notice": { "kind": "recording", "noticeVersion": "2026-01" },
        }}),
    )
    .await;
    data["openTicket"]["ticketId"].as_str().unwrap().to_owned()
}

on_both_databases! {
    /// The README's write tour: a chat arrives through intake (which reads nothing back),
    /// the frontline agent claims it and sees it masked, replies, hands it off to billing;
    /// frontline loses it, billing claims it and resolves it; a late customer message
    /// reopens it, and once closed, nothing more is accepted.
    async fn a_chat_travels_from_intake_to_billing(app) {
        let intake = app.token("chat-gateway").to_owned();
        let data = ok(&app, &intake, UPSERT, json!({ "i": robin_like("crm-77") })).await;
        assert_eq!(data["upsertCustomer"]["created"], true);
        assert_eq!(
            data["upsertCustomer"]["changedFields"],
            json!(["plan", "region", "preferredLanguage", "fullName", "email", "phone", "postalAddress", "dateOfBirth"])
        );
        let opened = ok(&app, &intake, OPEN, json!({ "i": {
            "customerExternalId": "crm-77", "externalId": "chat-9001", "channel": "chat",
            "topic": "account_access", "subject": "Locked out",
            "message": "I paid with 4242 4242 4242 4242 and now I'm locked out.",
            "notice": { "kind": "recording", "noticeVersion": "2026-01" },
        }})).await;
        assert_eq!(opened["openTicket"]["created"], true);
        assert_eq!(opened["openTicket"]["status"], "OPEN");
        let ticket = opened["openTicket"]["ticketId"].as_str().unwrap().to_owned();

        // Intake reads nothing back.
        let (_, body) = post(&app, &intake, VIEW, json!({ "t": ticket })).await;
        assert_eq!(error_code(&body), "NOT_FOUND");
        assert!(!body.to_string().contains("Newcomer"));

        // Frontline picks it from the queue, claims it and sees it as the policy says.
        let claimed = app.data_as("frontline", CLAIM, json!({ "t": ticket })).await;
        assert_eq!(claimed["claimTicket"]["assignee"]["handle"], "frontline");
        let (_, body) = app.query_as("frontline2", CLAIM, json!({ "t": ticket })).await;
        assert_eq!(error_code(&body), "NOT_FOUND", "assigned to someone else: out of frontline2's sight");
        let seen = app.data_as("frontline", VIEW, json!({ "t": ticket })).await;
        assert_eq!(seen["ticket"]["customer"]["fullName"]["value"], "Sam Newcomer");
        assert_eq!(seen["ticket"]["customer"]["email"]["access"], "MASKED");
        assert_eq!(seen["ticket"]["customer"]["email"]["value"], "s***@example.net");
        assert_eq!(
            seen["ticket"]["messages"][0]["body"],
            "I paid with [card ••••4242] and now I'm locked out.",
            "the card number never reached the database"
        );
        let targets = seen["ticket"]["handOffTargets"].as_array().unwrap();
        assert!(targets.contains(&json!({ "role": "billing", "label": "a billing specialist", "topic": "billing" })), "{targets:?}");

        ok(&app, app.token("frontline"), REPLY, json!({ "t": ticket, "b": "Let me check that for you." })).await;
        let handed = app.data_as("frontline", HAND_OFF, json!({ "t": ticket, "to": "billing",
            "n": "Customer sam.newcomer@example.net disputes a charge" })).await;
        assert_eq!(handed["handOffTicket"], json!({ "role": "billing", "topic": "billing", "assigned": false, "revokedGrants": 0 }));
        let (_, body) = app.query_as("frontline", VIEW, json!({ "t": ticket })).await;
        assert_eq!(error_code(&body), "NOT_FOUND", "the previous assignee lost the ticket");

        // Billing takes it: the whole history, the note redacted like chat.
        app.data_as("billing", CLAIM, json!({ "t": ticket })).await;
        let seen = app.data_as("billing", VIEW, json!({ "t": ticket })).await;
        assert_eq!(seen["ticket"]["topic"], "billing");
        let kinds: Vec<&str> = seen["ticket"]["messages"].as_array().unwrap().iter()
            .map(|m| m["authorKind"].as_str().unwrap()).collect();
        assert_eq!(kinds, ["customer", "agent", "internal"]);
        assert_eq!(seen["ticket"]["messages"][2]["body"], "Customer [email] disputes a charge");
        assert_eq!(seen["ticket"]["customer"]["fullName"]["access"], "PLAIN");

        let resolved = app.data_as("billing", STATUS, json!({ "t": ticket, "s": "RESOLVED" })).await;
        assert_eq!(resolved["setTicketStatus"]["status"], "RESOLVED");
        let late = ok(&app, &intake, APPEND, json!({ "t": ticket, "i": { "author": "CUSTOMER", "body": "Thanks!" } })).await;
        assert_eq!(late["appendMessage"], json!({ "messageId": late["appendMessage"]["messageId"], "ticketStatus": "OPEN", "reopened": true }));
        app.data_as("billing", STATUS, json!({ "t": ticket, "s": "CLOSED" })).await;
        let (_, body) = post(&app, &intake, APPEND, json!({ "t": ticket, "i": { "author": "CUSTOMER", "body": "Hello?" } })).await;
        assert_eq!(error_code(&body), "CONFLICT");
        let (_, body) = app.query_as("billing", REPLY, json!({ "t": ticket, "b": "Hello?" })).await;
        assert_eq!(error_code(&body), "CONFLICT");

        // Every step is audited, without values.
        let db = needtoknow::db::connect(&app.settings).await.unwrap();
        let events = entity::audit_event::Entity::find().all(&db).await.unwrap();
        let actions: Vec<&str> = events.iter().map(|e| e.action.as_str()).collect();
        for action in ["customer_created", "ticket_opened", "message_added", "consent_recorded",
            "ticket_claimed", "ticket_handed_off", "ticket_reopened"] {
            assert!(actions.contains(&action), "{action} missing from {actions:?}");
        }
        let all = serde_json::to_string(&events.iter().map(|e| (&e.fields, &e.reason)).collect::<Vec<_>>()).unwrap();
        for value in ["Newcomer", "sam.newcomer", "0199", "1979", "Pier Road", "4242 4242"] {
            assert!(!all.contains(value), "audit events hold {value}");
        }
    }
}

on_both_databases! {
    /// Updating a customer reports only what changed, keeps the blind indexes current (the
    /// new email finds the ticket) and writes nothing when nothing changed.
    async fn an_upsert_changes_only_what_differs(app) {
        let intake = app.create_agent("crm-sync", "intake").await;
        let ticket = new_chat(&app, &intake, "crm-1", "account_access", "Hi").await;
        let again = ok(&app, &intake, UPSERT, json!({ "i": robin_like("crm-1") })).await;
        assert_eq!(again["upsertCustomer"]["changedFields"], json!([]));
        assert_eq!(again["upsertCustomer"]["created"], false);
        let events = app.rows("audit_events").await;
        let again = ok(&app, &intake, UPSERT, json!({ "i": robin_like("crm-1") })).await;
        assert_eq!(again["upsertCustomer"]["changedFields"], json!([]));
        assert_eq!(app.rows("audit_events").await, events, "an upsert that changes nothing writes nothing");

        let changed = ok(&app, &intake, UPSERT, json!({ "i": {
            "externalId": "crm-1", "email": "sam@example.org", "plan": "premium", "phone": "+1 555 0199 4411" } })).await;
        assert_eq!(changed["upsertCustomer"]["changedFields"], json!(["plan", "email"]));
        let found = app.data_as("frontline", "query { ticketsByContact(email: \"sam@example.org\") { edges { node { id } } } }", json!({})).await;
        assert_eq!(found["ticketsByContact"]["edges"], json!([{ "node": { "id": ticket } }]));
    }
}

on_both_databases! {
    /// Each bad input gets a clear code and writes nothing; another team's ticket is
    /// NOT_FOUND; agents may not write as intake does, nor intake as agents do.
    async fn bad_input_writes_nothing(app) {
        let intake = app.token("chat-gateway").to_owned();
        let ticket = new_chat(&app, &intake, "crm-2", "shipping", "Where is it?").await;
        let other = app.create_agent_in("other-gateway", "intake", "other_team", &[]).await;
        let before = (app.rows("customers").await, app.rows("tickets").await,
            app.rows("messages").await, app.rows("audit_events").await);
        let open = |patch: Value| {
            let mut input = json!({ "customerExternalId": "crm-2", "channel": "chat", "topic": "shipping", "subject": "s", "message": "m" });
            for (k, v) in patch.as_object().unwrap() { input[k] = v.clone(); }
            json!({ "i": input })
        };
        let customer = |patch: Value| {
            let mut input = json!({ "externalId": "crm-3" });
            for (k, v) in patch.as_object().unwrap() { input[k] = v.clone(); }
            json!({ "i": input })
        };
        let cases: Vec<(&str, Value, &str, &str)> = vec![
            (OPEN, open(json!({ "topic": "astrology" })), "BAD_USER_INPUT", "topic"),
            (OPEN, open(json!({ "channel": "carrier_pigeon" })), "BAD_USER_INPUT", "channel"),
            (OPEN, open(json!({ "message": "" })), "BAD_USER_INPUT", "message"),
            (OPEN, open(json!({ "message": "x".repeat(20_001) })), "BAD_USER_INPUT", "message"),
            (OPEN, open(json!({ "message": "card 4242\u{200B}4242 4242 4242" })), "BAD_USER_INPUT", "invisible"),
            (OPEN, open(json!({ "notice": { "kind": "recording", "noticeVersion": "1999-01" } })), "BAD_USER_INPUT", "notice"),
            (OPEN, open(json!({ "customerExternalId": "crm-unknown" })), "NOT_FOUND", ""),
            (UPSERT, customer(json!({ "email": "not-an-email" })), "BAD_USER_INPUT", "email"),
            (UPSERT, customer(json!({ "phone": "555 0100" })), "BAD_USER_INPUT", "E.164"),
            (UPSERT, customer(json!({ "dateOfBirth": "2999-01-01" })), "BAD_USER_INPUT", "future"),
            (UPSERT, customer(json!({ "fullName": "\u{202E}evil" })), "BAD_USER_INPUT", "invisible"),
            (APPEND, json!({ "t": ticket, "i": { "author": "CUSTOMER", "body": "   " } }), "BAD_USER_INPUT", "empty"),
            (APPEND, json!({ "t": "999999", "i": { "author": "CUSTOMER", "body": "hi" } }), "NOT_FOUND", ""),
        ];
        for (query, variables, code, says) in cases {
            let (status, body) = post(&app, &intake, query, variables.clone()).await;
            assert_eq!(status, 200);
            assert_eq!(error_code(&body), code, "{variables}: {body}");
            assert!(body["errors"][0]["message"].as_str().unwrap().contains(says), "{body}");
        }
        // Another team's integration cannot touch this team's ticket, and cannot tell it
        // exists.
        let (_, body) = post(&app, &other, APPEND, json!({ "t": ticket, "i": { "author": "CUSTOMER", "body": "hi" } })).await;
        assert_eq!(error_code(&body), "NOT_FOUND");
        // Agents do not write as intake does; intake does not work tickets.
        let (_, body) = app.query_as("frontline", UPSERT, customer(json!({}))).await;
        assert_eq!(error_code(&body), "FORBIDDEN");
        let (_, body) = app.query_as("frontline", APPEND, json!({ "t": ticket, "i": { "author": "CUSTOMER", "body": "hi" } })).await;
        assert_eq!(error_code(&body), "FORBIDDEN", "frontline sees the ticket in its queue");
        let (_, body) = post(&app, &intake, REPLY, json!({ "t": ticket, "b": "hi" })).await;
        assert_eq!(error_code(&body), "NOT_FOUND");
        let (_, body) = post(&app, &intake, CLAIM, json!({ "t": ticket })).await;
        assert_eq!(error_code(&body), "NOT_FOUND");
        let after = (app.rows("customers").await, app.rows("tickets").await,
            app.rows("messages").await, app.rows("audit_events").await);
        assert_eq!(before, after, "nothing of a refused write remains");
    }
}

on_both_databases! {
    /// A message for an erased customer finds nothing: erasure took their tickets.
    async fn an_erased_customer_takes_no_more_messages(app) {
        let intake = app.token("chat-gateway").to_owned();
        let ticket = new_chat(&app, &intake, "crm-4", "shipping", "Hello").await;
        let admin = app.create_agent("privacy", "admin").await;
        let customer = ok(&app, &intake, UPSERT, json!({ "i": { "externalId": "crm-4" } })).await;
        let id = customer["upsertCustomer"]["customerId"].as_str().unwrap();
        ok(&app, &admin, "mutation($c: ID!) { eraseCustomer(customerId: $c) { erasedAt } }",
            json!({ "c": id })).await;
        let (_, body) = post(&app, &intake, APPEND, json!({ "t": ticket, "i": { "author": "CUSTOMER", "body": "still there?" } })).await;
        assert_eq!(error_code(&body), "NOT_FOUND");
        let (_, body) = post(&app, &intake, OPEN, json!({ "i": { "customerId": id, "channel": "chat", "topic": "shipping", "subject": "again" } })).await;
        assert_eq!(error_code(&body), "NOT_FOUND");
    }
}

on_both_databases! {
    /// Eight concurrent deliveries of one ticket under one Idempotency-Key open exactly
    /// one ticket; the others conflict while it runs or replay it after; a different body
    /// under the key is a CONFLICT. The key is in the audit event.
    async fn eight_deliveries_of_one_key_open_one_ticket(app) {
        let intake = app.token("chat-gateway").to_owned();
        ok(&app, &intake, UPSERT, json!({ "i": robin_like("crm-5") })).await;
        let tickets = app.rows("tickets").await;
        let variables = json!({ "i": { "customerExternalId": "crm-5", "channel": "email", "topic": "billing",
            "subject": "Invoice", "message": "Please resend my invoice." } });
        let app = std::sync::Arc::new(app);
        let mut deliveries = Vec::new();
        for _ in 0..8 {
            let (app, intake, variables) = (app.clone(), intake.clone(), variables.clone());
            deliveries.push(tokio::spawn(async move {
                loop {
                    let (status, replayed, body) = app.deliver(&intake, "mail-4711", OPEN, variables.clone()).await;
                    if status == 409 {
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                    assert_eq!(status, 200, "{body}");
                    assert!(body["errors"].is_null(), "{body}");
                    return (replayed, body["data"]["openTicket"]["ticketId"].clone());
                }
            }));
        }
        let mut ids = Vec::new();
        let mut fresh = 0;
        for delivery in deliveries {
            let (replayed, id) = delivery.await.unwrap();
            fresh += usize::from(!replayed);
            ids.push(id);
        }
        assert_eq!(fresh, 1, "one delivery wrote, seven replayed");
        assert!(ids.windows(2).all(|w| w[0] == w[1]), "{ids:?}");
        assert_eq!(app.rows("tickets").await, tickets + 1);
        let mut other = variables.clone();
        other["i"]["subject"] = json!("Another subject");
        let (status, _, body) = app.deliver(&intake, "mail-4711", OPEN, other).await;
        assert_eq!((status, error_code(&body)), (409, "CONFLICT"));
        let db = needtoknow::db::connect(&app.settings).await.unwrap();
        let keyed = entity::audit_event::Entity::find()
            .all(&db)
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.idempotency_key.as_deref() == Some("mail-4711"))
            .map(|e| e.action)
            .collect::<Vec<_>>();
        assert_eq!(keyed, ["ticket_opened", "message_added"]);
    }
}

/// A GraphQL multipart request (the spec's `operations`, `map` and one file).
async fn upload(
    app: &TestApp,
    token: &str,
    ticket: &str,
    file_name: &str,
    content: &[u8],
) -> (u16, Value) {
    let boundary = "ntkboundary7d3f";
    let operations = json!({
        "query": "mutation($t: ID!, $f: Upload!) { attachIdentityDocument(ticketId: $t, file: $f) { attachmentId documentType mediaType sizeBytes } }",
        "variables": { "t": ticket, "f": null },
    });
    let mut body = Vec::new();
    for (name, value) in [
        ("operations", operations.to_string()),
        ("map", r#"{"0":["variables.f"]}"#.to_owned()),
    ] {
        body.extend_from_slice(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n").as_bytes());
    }
    body.extend_from_slice(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"0\"; filename=\"{file_name}\"\r\nContent-Type: image/png\r\n\r\n").as_bytes());
    body.extend_from_slice(content);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let response = app
        .client
        .post(format!("{}/graphql", app.address))
        .bearer_auth(token)
        .header(
            "Content-Type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

async fn documents(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.max_document_bytes = 4096).await;
    let intake = app.create_agent("web-forms", "intake").await;
    let ticket = new_chat(
        &app,
        &intake,
        "crm-6",
        "identity_verification",
        "Here is my passport",
    )
    .await;
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend_from_slice(b"UPLOAD-SENTINEL-7Q");
    let (status, body) = upload(&app, &intake, &ticket, "passport.png", &png).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["data"]["attachIdentityDocument"]["documentType"],
        "PNG"
    );
    assert_eq!(
        body["data"]["attachIdentityDocument"]["sizeBytes"],
        png.len()
    );

    // The bytes decide, not the name; too large is refused before anything is stored.
    let (_, body) = upload(
        &app,
        &intake,
        &ticket,
        "passport.png",
        b"MZ\x90\0this is a program",
    )
    .await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT");
    let mut big = png.clone();
    big.resize(5000, b'x');
    let (status, body) = upload(&app, &intake, &ticket, "passport.png", &big).await;
    assert_eq!((status, error_code(&body)), (413, "BAD_USER_INPUT"));
    assert_eq!(
        app.rows("attachments").await,
        2,
        "the demo scan and the one good upload"
    );

    // The identity specialist who takes the ticket sees it; its content is sealed at rest
    // under its own key.
    app.data_as("identity", CLAIM, json!({ "t": ticket })).await;
    let seen = app.data_as("identity", "query($t: ID!) { ticket(id: $t) { customer { identityDocuments { access value { fileName contentBase64 } } } } }", json!({ "t": ticket })).await;
    let docs = &seen["ticket"]["customer"]["identityDocuments"];
    assert_eq!(docs["access"], "PLAIN");
    use base64::Engine;
    let last = docs["value"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        base64::engine::general_purpose::STANDARD
            .decode(last["contentBase64"].as_str().unwrap())
            .unwrap(),
        png
    );
    let db = needtoknow::db::connect(&app.settings).await.unwrap();
    let stored = entity::attachment::Entity::find().all(&db).await.unwrap();
    let uploaded = stored
        .iter()
        .find(|a| a.file_name == "passport.png")
        .unwrap();
    assert!(uploaded.wrapped_key.is_some(), "a key of its own");
    assert!(!uploaded
        .content
        .windows(18)
        .any(|w| w == b"UPLOAD-SENTINEL-7Q"));

    // Resolved, then purged after its period: row and key gone, and on SQLite the bytes are
    // gone from the file (secure_delete).
    app.data_as("identity", STATUS, json!({ "t": ticket, "s": "RESOLVED" }))
        .await;
    let sweeper = needtoknow::retention::Sweeper {
        db: db.clone(),
        writer: needtoknow::writer::Writer::new(db.clone()),
        ledger: needtoknow::ledger::Ledger::at(app.settings.erasure_ledger_path()),
        policy: needtoknow::retention::RetentionPolicy::default(),
    };
    let report = sweeper
        .sweep(chrono::Utc::now() + chrono::Duration::days(8))
        .await
        .unwrap();
    assert!(report.attachments >= 1);
    assert_eq!(
        entity::attachment::Entity::find_by_id(uploaded.id)
            .count(&db)
            .await
            .unwrap(),
        0
    );
    if let needtoknow::config::DatabaseSettings::Sqlite { path } = &app.settings.database {
        db.execute_unprepared("PRAGMA wal_checkpoint(TRUNCATE)")
            .await
            .unwrap();
        db.close().await.ok();
        let needle = uploaded.content[uploaded.content.len() - 24..].to_vec();
        for file in [path.clone(), path.with_extension("sqlite-wal")] {
            if let Ok(raw) = std::fs::read(&file) {
                assert!(
                    !raw.windows(needle.len()).any(|w| w == needle),
                    "{} still holds the sealed scan",
                    file.display()
                );
            }
        }
    }
}

/// Documents on SQLite: sniffed, sized, sealed under their own key, purged to the byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documents_are_checked_sealed_and_purged_on_sqlite() {
    documents(Backend::Sqlite).await
}

/// Documents on PostgreSQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documents_are_checked_sealed_and_purged_on_postgres() {
    documents(Backend::Postgres).await
}

async fn injected_failure(backend: Backend) {
    let app = spawn_app_with(backend, |_| {}).await;
    let intake = app.token("chat-gateway").to_owned();
    let ticket = new_chat(&app, &intake, "crm-8", "shipping", "Hello").await;
    app.data_as("frontline", CLAIM, json!({ "t": ticket }))
        .await;
    app.data_as("frontline", STATUS, json!({ "t": ticket, "s": "RESOLVED" }))
        .await;
    // The audit append fails after the message row is written (a trigger refuses it).
    let db = needtoknow::db::connect(&app.settings).await.unwrap();
    let sql = match backend {
        Backend::Sqlite => vec!["CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_events WHEN NEW.action = 'message_added' BEGIN SELECT RAISE(ABORT, 'injected'); END".to_owned()],
        Backend::Postgres => vec![
            "CREATE FUNCTION refuse_audit() RETURNS trigger AS $$ BEGIN IF NEW.action = 'message_added' THEN RAISE EXCEPTION 'injected'; END IF; RETURN NEW; END $$ LANGUAGE plpgsql".to_owned(),
            "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_events FOR EACH ROW EXECUTE FUNCTION refuse_audit()".to_owned(),
        ],
    };
    for statement in sql {
        db.execute_unprepared(&statement).await.unwrap();
    }
    let messages = app.rows("messages").await;
    let (_, body) = post(
        &app,
        &intake,
        APPEND,
        json!({ "t": ticket, "i": { "author": "CUSTOMER", "body": "Reopen please" } }),
    )
    .await;
    assert_eq!(error_code(&body), "INTERNAL");
    assert_eq!(
        app.rows("messages").await,
        messages,
        "the message went with its audit event"
    );
    let seen = app
        .data_as(
            "supervisor",
            "query($t: ID!) { ticket(id: $t) { status } }",
            json!({ "t": ticket }),
        )
        .await;
    assert_eq!(
        seen["ticket"]["status"], "RESOLVED",
        "nor did it reopen the ticket"
    );
    db.close().await.ok();
}

/// A failure between the message insert and its audit append leaves nothing (SQLite).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_audit_append_leaves_no_message_on_sqlite() {
    injected_failure(Backend::Sqlite).await
}

/// The same on PostgreSQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_audit_append_leaves_no_message_on_postgres() {
    injected_failure(Backend::Postgres).await
}

const ASSIGN: &str = "mutation($t: ID!, $a: String!) { assignTicket(ticketId: $t, agent: $a) { assignee { handle } } }";
const MY_GRANTS: &str = "{ myGrants { edges { node { id ticketId field } } } }";

on_both_databases! {
    /// Assigning and handing off move a ticket and end the previous assignee's access and
    /// grants; only the policy's roles may do it, only to agents who can take it; two
    /// agents claiming one ticket: one wins.
    async fn assignment_and_hand_off_end_the_previous_assignees_access(app) {
        let reset = app.ticket_id("Cannot reset my password").await;
        app.data_as("frontline", "mutation($t: ID!) { requestReveal(ticketId: $t, fields: [\"email\"], reason: \"the customer asked us to confirm it\") { grants { id } } }", json!({ "t": reset })).await;
        assert_eq!(app.data_as("frontline", MY_GRANTS, json!({})).await["myGrants"]["edges"].as_array().unwrap().len(), 1);

        // Only supervisors assign, and only to active agents of the ticket's team.
        let (_, body) = app.query_as("frontline", ASSIGN, json!({ "t": reset, "a": "frontline2" })).await;
        assert_eq!(error_code(&body), "FORBIDDEN");
        app.create_agent_in("outsider", "frontline", "other_team", &["account_access"]).await;
        for handle in ["outsider", "chat-gateway", "nobody"] {
            let (_, body) = app.query_as("supervisor", ASSIGN, json!({ "t": reset, "a": handle })).await;
            assert_eq!(error_code(&body), "BAD_USER_INPUT", "{handle}");
        }
        let moved = app.data_as("supervisor", ASSIGN, json!({ "t": reset, "a": "frontline2" })).await;
        assert_eq!(moved["assignTicket"]["assignee"]["handle"], "frontline2");
        assert_eq!(app.data_as("frontline", MY_GRANTS, json!({})).await["myGrants"]["edges"], json!([]), "the previous assignee's grant is revoked");
        let (_, body) = app.query_as("frontline", "query($t: ID!) { ticket(id: $t) { subject } }", json!({ "t": reset })).await;
        assert_eq!(error_code(&body), "NOT_FOUND");

        // Hand-offs go to the targets the policy names, to a queue or to one of its agents.
        let (_, body) = app.query_as("frontline2", HAND_OFF, json!({ "t": reset, "to": "auditor", "n": "please look" })).await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT");
        assert!(body["errors"][0]["message"].as_str().unwrap().contains("billing"), "{body}");
        let (_, body) = app.query_as("frontline2", "mutation($t: ID!) { handOffTicket(ticketId: $t, to: \"billing\", agent: \"identity\", note: \"x\") { role } }", json!({ "t": reset })).await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "the agent must have the role: {body}");
        let token = app.token("frontline2").to_owned();
        let handed = "mutation($t: ID!) { handOffTicket(ticketId: $t, to: \"billing\", agent: \"billing\", note: \"double charge\") { role topic assigned } }";
        let (status, replayed, first) = app.deliver(&token, "handoff-1", handed, json!({ "t": reset })).await;
        assert_eq!((status, replayed), (200, false), "{first}");
        assert_eq!(first["data"]["handOffTicket"], json!({ "role": "billing", "topic": "billing", "assigned": true }));
        let messages = app.rows("messages").await;
        let (_, replayed, again) = app.deliver(&token, "handoff-1", handed, json!({ "t": reset })).await;
        assert!(replayed, "{again}");
        assert_eq!(app.rows("messages").await, messages, "a retried hand-off adds no second note");
        let seen = app.data_as("billing", "query($t: ID!) { ticket(id: $t) { topic assignedToMe } }", json!({ "t": reset })).await;
        assert_eq!(seen["ticket"], json!({ "topic": "billing", "assignedToMe": true }));

        // Two billing agents claim the unassigned refund ticket at once: one wins.
        let second = app.create_agent_in("billing2", "billing", "support", &["billing"]).await;
        let refund = app.ticket_id("Refund not received").await;
        let app = std::sync::Arc::new(app);
        let claims: Vec<_> = [app.token("billing").to_owned(), second].into_iter().map(|token| {
            let app = app.clone();
            let refund = refund.clone();
            tokio::spawn(async move { post(&app, &token, CLAIM, json!({ "t": refund })).await.1 })
        }).collect();
        let mut won = 0;
        for claim in claims {
            let body = claim.await.unwrap();
            match body["errors"][0]["extensions"]["code"].as_str() {
                None => won += 1,
                Some(code) => assert!(matches!(code, "CONFLICT" | "NOT_FOUND"), "{body}"),
            }
        }
        assert_eq!(won, 1);
    }
}
