//! Reveal grants over HTTP: the lifecycle with short lifetimes, isolation, approvals,
//! revocation, bad input, and the grant store failing closed.

use std::time::Duration;

use serde_json::{json, Value};

use crate::common::PrivateRedis;
use crate::helpers::{
    assert_no_errors, error_code, redis_grants, redis_url, spawn_app_with, Backend, TestApp,
};

const REQUEST: &str = "mutation($t: ID!, $f: [String!]!, $r: String!) {
    requestReveal(ticketId: $t, fields: $f, reason: $r) {
        grants { id field dataClass expiresAt approved } alreadyVisible
        request { id status fields requester reason } } }";
const CONTACT: &str = "query($id: ID!) { ticket(id: $id) { customer {
    email { value access reveal grantExpiresAt } phone { value access } } } }";
const MY_GRANTS: &str = "{ myGrants { edges { node { id field ticketId expiresAt } } } }";
const REASON: &str = "customer asked us to confirm the address on file";

async fn contact(app: &TestApp, handle: &str, ticket: &str) -> Value {
    app.data_as(handle, CONTACT, json!({ "id": ticket })).await["ticket"]["customer"].clone()
}

async fn request(
    app: &TestApp,
    handle: &str,
    ticket: &str,
    fields: Value,
    reason: &str,
) -> (u16, Value) {
    app.query_as(
        handle,
        REQUEST,
        json!({ "t": ticket, "f": fields, "r": reason }),
    )
    .await
}

async fn actions(app: &TestApp) -> Vec<String> {
    let data = app
        .data_as(
            "auditor",
            "{ auditEvents(first: 100) { edges { node { seq action } } } }",
            json!({}),
        )
        .await;
    let mut actions: Vec<String> = data["auditEvents"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| {
            e["node"]["seq"]
                .as_i64()
                .is_some_and(|s| s > app.audit_start)
        })
        .map(|e| e["node"]["action"].as_str().unwrap().to_owned())
        .collect();
    actions.reverse();
    actions
}

/// granted → plain → expired → masked, with every step audited; the grant reveals only
/// its field on its ticket.
async fn lifecycle(app: TestApp) {
    let robin = app.ticket_id("Cannot reset my password").await;
    let kim = app.ticket_id("Where is my parcel?").await;
    assert_eq!(
        contact(&app, "frontline", &robin).await["email"]["access"],
        "MASKED"
    );

    let (_, body) = request(&app, "frontline", &robin, json!(["email"]), REASON).await;
    assert_no_errors(&body);
    let grants = &body["data"]["requestReveal"]["grants"];
    assert_eq!(grants.as_array().unwrap().len(), 1);
    assert_eq!(grants[0]["field"], "email");
    assert_eq!(grants[0]["dataClass"], "CONTACT");

    let seen = contact(&app, "frontline", &robin).await;
    assert_eq!(seen["email"]["value"], "robin.sample@example.com");
    assert_eq!(seen["email"]["access"], "PLAIN");
    assert_eq!(seen["email"]["reveal"], "WITH_REASON");
    assert_eq!(seen["email"]["grantExpiresAt"], grants[0]["expiresAt"]);
    assert_eq!(
        seen["phone"]["access"], "MASKED",
        "the grant reveals only its field"
    );
    let other = contact(&app, "frontline", &kim).await;
    assert_eq!(
        other["email"]["value"], "k***@example.org",
        "nor another customer's"
    );
    let supervisor = contact(&app, "supervisor", &robin).await;
    assert_eq!(supervisor["email"]["access"], "MASKED", "nor another agent");
    let mine = app.data_as("frontline", MY_GRANTS, json!({})).await;
    assert_eq!(mine["myGrants"]["edges"].as_array().unwrap().len(), 1);

    // The demo grants last 2 s (NEEDTOKNOW_MAX_GRANT_SECS caps the policy's 900 s).
    tokio::time::sleep(Duration::from_millis(2300)).await;
    let after = contact(&app, "frontline", &robin).await;
    assert_eq!(after["email"]["access"], "MASKED");
    assert_eq!(after["email"]["value"], "r***@example.com");
    assert_eq!(after["email"]["grantExpiresAt"], Value::Null);
    assert_eq!(
        app.data_as("frontline", MY_GRANTS, json!({})).await["myGrants"]["edges"],
        json!([])
    );
    assert_eq!(
        actions(&app).await,
        [
            "reveal_requested",
            "reveal_granted",
            "viewed",
            "grant_expired"
        ]
        .map(|a| a.to_uppercase())
    );
}

fn short_grants(settings: &mut needtoknow::config::Settings) {
    settings.max_grant = Duration::from_secs(2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grant_lifecycle_on_sqlite_with_the_in_process_store() {
    lifecycle(spawn_app_with(Backend::Sqlite, short_grants).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grant_lifecycle_on_postgres_with_redis() {
    lifecycle(
        spawn_app_with(Backend::Postgres, |s| {
            short_grants(s);
            s.grants = redis_grants(&redis_url());
        })
        .await,
    )
    .await;
}

/// A grant is scoped to its ticket: the same customer's email on another ticket stays
/// masked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grant_never_reveals_on_another_ticket() {
    let app = spawn_app_with(Backend::Sqlite, |_| {}).await;
    let password = app.ticket_id("Cannot reset my password").await;
    let billing = app.ticket_id("Charged twice in March").await;
    let (_, body) = request(&app, "supervisor", &password, json!(["contact"]), REASON).await;
    assert_no_errors(&body);
    assert_eq!(
        body["data"]["requestReveal"]["grants"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        contact(&app, "supervisor", &password).await["phone"]["access"],
        "PLAIN"
    );
    let elsewhere = contact(&app, "supervisor", &billing).await;
    assert_eq!(elsewhere["email"]["access"], "MASKED");
    assert_eq!(elsewhere["phone"]["access"], "MASKED");
}

async fn second_supervisor(app: &TestApp) -> String {
    app.create_agent("supervisor2", "supervisor").await
}

async fn as_token(app: &TestApp, token: &str, query: &str, variables: Value) -> Value {
    app.post_graphql(
        Some(token),
        &json!({ "query": query, "variables": variables }),
    )
    .await
    .1
}

const APPROVE: &str = "mutation($id: ID!, $note: String) { approveReveal(requestId: $id, note: $note) { status decidedBy note } }";
const DENY: &str = "mutation($id: ID!, $note: String!) { denyReveal(requestId: $id, note: $note) { status decidedBy note } }";
const PENDING: &str =
    "{ pendingRevealRequests { edges { node { id requester fields reason status } } } }";

/// WITH_APPROVAL: a pending request another supervisor of the team approves (once) or
/// denies; nobody approves their own request, and non-supervisors approve nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approvals_need_another_supervisor_of_the_team_and_happen_once() {
    let app = spawn_app_with(Backend::Sqlite, |_| {}).await;
    let other = second_supervisor(&app).await;
    let ticket = app.ticket_id("Cannot reset my password").await;

    let (_, body) = request(
        &app,
        "supervisor",
        &ticket,
        json!(["paymentMethods", "email"]),
        REASON,
    )
    .await;
    assert_no_errors(&body);
    let outcome = &body["data"]["requestReveal"];
    assert_eq!(
        outcome["grants"][0]["field"], "email",
        "WITH_REASON fields are granted at once"
    );
    let pending = &outcome["request"];
    assert_eq!(pending["status"], "PENDING");
    assert_eq!(pending["fields"], json!(["paymentMethods"]));
    let id = pending["id"].as_str().unwrap().to_owned();

    let listed = as_token(&app, &other, PENDING, json!({})).await;
    assert_eq!(
        listed["data"]["pendingRevealRequests"]["edges"][0]["node"]["requester"],
        "supervisor"
    );
    assert_eq!(
        listed["data"]["pendingRevealRequests"]["edges"][0]["node"]["reason"],
        REASON
    );
    assert_eq!(
        app.data_as("supervisor", PENDING, json!({})).await["pendingRevealRequests"]["edges"],
        json!([])
    );

    let (_, own) = app
        .query_as("supervisor", APPROVE, json!({ "id": id }))
        .await;
    assert_eq!(error_code(&own), "FORBIDDEN");
    let (_, frontline) = app
        .query_as("frontline", APPROVE, json!({ "id": id }))
        .await;
    assert_eq!(error_code(&frontline), "FORBIDDEN");
    let (_, missing) = app
        .query_as("supervisor", APPROVE, json!({ "id": "9999" }))
        .await;
    assert_eq!(error_code(&missing), "NOT_FOUND");
    assert_eq!(
        contact(&app, "supervisor", &ticket).await["email"]["access"],
        "PLAIN"
    );
    let masked = app
        .data_as("supervisor", "query($id: ID!) { ticket(id: $id) { customer { paymentMethods { access value { billingAddress } } } } }", json!({ "id": ticket }))
        .await;
    assert_eq!(
        masked["ticket"]["customer"]["paymentMethods"]["access"],
        "MASKED"
    );

    let approved = as_token(
        &app,
        &other,
        APPROVE,
        json!({ "id": id, "note": "verified with the team lead" }),
    )
    .await;
    assert_no_errors(&approved);
    assert_eq!(approved["data"]["approveReveal"]["status"], "APPROVED");
    assert_eq!(
        approved["data"]["approveReveal"]["decidedBy"],
        "supervisor2"
    );
    let plain = app
        .data_as("supervisor", "query($id: ID!) { ticket(id: $id) { customer { paymentMethods { access grantExpiresAt value { billingAddress } } } } }", json!({ "id": ticket }))
        .await;
    let methods = &plain["ticket"]["customer"]["paymentMethods"];
    assert_eq!(methods["access"], "PLAIN");
    assert_eq!(
        methods["value"][0]["billingAddress"],
        "12 Harbour Lane, Springfield 99501, US"
    );
    assert!(methods["grantExpiresAt"].is_string());

    let replay = as_token(&app, &other, APPROVE, json!({ "id": id })).await;
    assert_eq!(error_code(&replay), "BAD_USER_INPUT");
    let late_deny = as_token(
        &app,
        &other,
        DENY,
        json!({ "id": id, "note": "changed my mind about it" }),
    )
    .await;
    assert_eq!(error_code(&late_deny), "BAD_USER_INPUT");

    // Denial: with a note, and nothing revealed.
    let (_, body) = request(&app, "supervisor", &ticket, json!(["chat_history"]), REASON).await;
    let id = body["data"]["requestReveal"]["request"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let short = as_token(&app, &other, DENY, json!({ "id": id, "note": "no" })).await;
    assert_eq!(error_code(&short), "BAD_USER_INPUT");
    let denied = as_token(
        &app,
        &other,
        DENY,
        json!({ "id": id, "note": "not needed for a password reset" }),
    )
    .await;
    assert_eq!(denied["data"]["denyReveal"]["status"], "DENIED");
    let chat = app
        .data_as(
            "supervisor",
            "query($id: ID!) { ticket(id: $id) { customer { chatHistory { access } } } }",
            json!({ "id": ticket }),
        )
        .await;
    assert_eq!(
        chat["ticket"]["customer"]["chatHistory"]["access"],
        "MASKED"
    );
    let log = actions(&app).await;
    for action in ["REVEAL_APPROVED", "REVEAL_DENIED"] {
        assert!(log.contains(&action.to_owned()), "{log:?}");
    }
}

const REVOKE: &str = "mutation($id: ID!) { revokeReveal(grantId: $id) { id field } }";

async fn grant_email(app: &TestApp, handle: &str, ticket: &str) -> String {
    let (_, body) = request(app, handle, ticket, json!(["email"]), REASON).await;
    assert_no_errors(&body);
    body["data"]["requestReveal"]["grants"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// The holder or a supervisor revokes a grant, and it stops revealing on the very next
/// request; other agents cannot; resolving the ticket revokes all its grants.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grants_are_revoked_by_holder_supervisor_or_resolving_the_ticket() {
    let app = spawn_app_with(Backend::Sqlite, |_| {}).await;
    let ticket = app.ticket_id("Cannot reset my password").await;

    let id = grant_email(&app, "frontline", &ticket).await;
    let revoked = app.data_as("frontline", REVOKE, json!({ "id": id })).await;
    assert_eq!(revoked["revokeReveal"]["field"], "email");
    assert_eq!(
        contact(&app, "frontline", &ticket).await["email"]["access"],
        "MASKED"
    );
    let (_, again) = app.query_as("frontline", REVOKE, json!({ "id": id })).await;
    assert_eq!(error_code(&again), "NOT_FOUND");

    let id = grant_email(&app, "frontline", &ticket).await;
    let (_, other) = app
        .query_as("frontline2", REVOKE, json!({ "id": id }))
        .await;
    assert_eq!(error_code(&other), "FORBIDDEN");
    assert_eq!(
        contact(&app, "frontline", &ticket).await["email"]["access"],
        "PLAIN"
    );
    app.data_as("supervisor", REVOKE, json!({ "id": id })).await;
    assert_eq!(
        contact(&app, "frontline", &ticket).await["email"]["access"],
        "MASKED"
    );

    grant_email(&app, "frontline", &ticket).await;
    let (_, body) = app
        .query_as(
            "frontline2",
            "mutation($t: ID!) { setTicketStatus(ticketId: $t, status: RESOLVED) { status } }",
            json!({ "t": ticket }),
        )
        .await;
    assert_eq!(
        error_code(&body),
        "NOT_FOUND",
        "frontline2 cannot see the ticket"
    );
    let resolved = app
        .data_as("frontline", "mutation($t: ID!) { setTicketStatus(ticketId: $t, status: RESOLVED) { status resolvedAt } }", json!({ "t": ticket }))
        .await;
    assert_eq!(resolved["setTicketStatus"]["status"], "RESOLVED");
    assert_eq!(
        app.data_as("frontline", MY_GRANTS, json!({})).await["myGrants"]["edges"],
        json!([])
    );
    assert_eq!(
        contact(&app, "frontline", &ticket).await["email"]["access"],
        "MASKED"
    );
    let (_, unknown) = app
        .query_as("frontline", REVOKE, json!({ "id": "does-not-exist" }))
        .await;
    assert_eq!(error_code(&unknown), "NOT_FOUND");
}

/// Bad reasons, NONE fields, unknown fields and foreign tickets each get their code, and
/// nothing is granted or recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_reveal_requests_change_nothing() {
    let app = spawn_app_with(Backend::Sqlite, |_| {}).await;
    let ticket = app.ticket_id("Cannot reset my password").await;
    let foreign = app.ticket_id("Charged twice in March").await;
    let long = "x".repeat(501);
    let cases: Vec<(Value, &str, &str, &str)> = vec![
        (json!(["email"]), ticket.as_str(), "   ", "BAD_USER_INPUT"),
        (
            json!(["email"]),
            ticket.as_str(),
            "too short",
            "BAD_USER_INPUT",
        ),
        (
            json!(["email"]),
            ticket.as_str(),
            long.as_str(),
            "BAD_USER_INPUT",
        ),
        (
            json!(["email"]),
            ticket.as_str(),
            "line one\u{0}line two is long",
            "BAD_USER_INPUT",
        ),
        (
            json!(["email", "postalAddress"]),
            ticket.as_str(),
            REASON,
            "FORBIDDEN",
        ),
        (json!(["billing"]), ticket.as_str(), REASON, "FORBIDDEN"),
        (
            json!(["email'); DROP TABLE tickets;--"]),
            ticket.as_str(),
            REASON,
            "BAD_USER_INPUT",
        ),
        (json!([]), ticket.as_str(), REASON, "BAD_USER_INPUT"),
        (json!(["email"]), foreign.as_str(), REASON, "NOT_FOUND"),
        (json!(["email"]), "abc", REASON, "BAD_USER_INPUT"),
    ];
    for (fields, t, reason, code) in cases {
        let (_, body) = request(&app, "frontline", t, fields.clone(), reason).await;
        assert_eq!(error_code(&body), code, "{fields} {reason:?}");
        let text = body.to_string();
        assert!(
            !text.contains("Harbour") && !text.contains("robin.sample"),
            "{text}"
        );
    }
    assert_eq!(
        app.data_as("frontline", MY_GRANTS, json!({})).await["myGrants"]["edges"],
        json!([])
    );
    assert_eq!(actions(&app).await, Vec::<String>::new());
    let (_, body) = request(&app, "frontline", &ticket, json!(["fullName"]), REASON).await;
    assert_eq!(
        body["data"]["requestReveal"]["alreadyVisible"],
        json!(["fullName"])
    );
}

/// With Redis stopped mid-run, fields fall back to their policy level: at once where the
/// service asks Redis, and within the second its grants may be remembered (see
/// `remembered.rs`; it forgets them as soon as it notices the lost connection, usually
/// within milliseconds, but a request can come first). Reveals answer REVEAL_UNAVAILABLE
/// without hanging, /readyz says the grant store is down; when Redis returns the service
/// recovers by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_going_down_fails_closed_and_recovers() {
    let redis = PrivateRedis::start();
    let app = spawn_app_with(Backend::Sqlite, |s| s.grants = redis_grants(&redis.url())).await;
    let ticket = app.ticket_id("Cannot reset my password").await;
    grant_email(&app, "frontline", &ticket).await;
    assert_eq!(
        contact(&app, "frontline", &ticket).await["email"]["access"],
        "PLAIN"
    );

    let port = redis.stop();
    let stopped = std::time::Instant::now();
    // What was read before Redis went down may reveal for at most the second it is
    // remembered; a request that starts later never does.
    loop {
        let asked = stopped.elapsed();
        let seen = contact(&app, "frontline", &ticket).await;
        if seen["email"]["access"] == "MASKED" {
            assert_eq!(seen["email"]["value"], "r***@example.com");
            break;
        }
        assert!(
            asked < Duration::from_secs(1),
            "never plaintext without the store once the remembered grants are a second old: {seen}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        contact(&app, "frontline", &ticket).await["email"]["access"],
        "MASKED",
        "and it stays masked"
    );
    let (_, body) = request(&app, "frontline", &ticket, json!(["phone"]), REASON).await;
    assert_eq!(error_code(&body), "REVEAL_UNAVAILABLE");
    let (_, body) = app.query_as("frontline", MY_GRANTS, json!({})).await;
    assert_eq!(error_code(&body), "REVEAL_UNAVAILABLE");
    assert!(
        stopped.elapsed() < Duration::from_secs(5),
        "requests do not hang: {:?}",
        stopped.elapsed()
    );
    let ready = app.readiness().await;
    assert_eq!(ready["checks"]["grantStore"]["status"], "down");
    assert_eq!(ready["status"], "degraded");

    let _redis = PrivateRedis::start_on(port);
    let mut recovered = false;
    for _ in 0..50 {
        let (_, body) = request(&app, "frontline", &ticket, json!(["phone"]), REASON).await;
        if body.get("errors").is_none() {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(recovered, "reveals work again once Redis is back");
    assert_eq!(
        contact(&app, "frontline", &ticket).await["phone"]["access"],
        "PLAIN"
    );
}
