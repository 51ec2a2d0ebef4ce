//! Hostile strings in every string input of the schema: SQL and Polar metacharacters,
//! unicode tricks and control characters. Each gets a precise client error, or is taken
//! literally where the input is free text (a reveal reason) or an answer to check (an
//! identity check, which never matches); nothing else changes and the service keeps
//! serving.

use serde_json::{json, Value};

use crate::helpers::{spawn_app_with, Backend, TestApp};

/// Strings that break naive SQL, Polar, JSON or log handling.
fn hostile() -> Vec<String> {
    vec![
        "' OR '1'='1".into(),
        "1; DROP TABLE tickets; --".into(),
        "\"; DELETE FROM audit_events; --".into(),
        "%".into(),
        "_".into(),
        "\\".into(),
        "1 UNION SELECT token_hash FROM api_tokens".into(),
        "\") or true; allow(_, _, _) if (\"".into(),
        "x\" and field_access(_, _, _, \"PLAIN\", \"NONE\") and \"".into(),
        "supervisor\" or 1 = 1 or \"".into(),
        "\u{202E}evil\u{202C} reason text".into(),
        "zero\u{200B}width\u{FEFF} joiner reason".into(),
        "emoji 🙈🙉🙊 and combining e\u{301}\u{301}\u{301} reason".into(),
        "nul \u{0} inside a reason text".into(),
        "bell \u{7} and escape \u{1b}[31m red".into(),
        "line\nbreak and\ttab in a reason".into(),
        "\r\nX-Injected-Header: 1".into(),
        "${jndi:ldap://example.com/a} {{7*7}} <script>alert(1)</script>".into(),
        "A".repeat(10_000),
        String::new(),
        " ".into(),
        "-1".into(),
        "99999999999999999999".into(),
    ]
}

/// Every string-taking field, with the agent who may call it and the variables it takes.
fn calls(ticket: &str, s: &str) -> Vec<(&'static str, &'static str, Value)> {
    vec![
        ("supervisor", "query($s: ID!) { ticket(id: $s) { id } }", json!({ "s": s })),
        (
            "supervisor",
            "query($s: String) { tickets(first: 5, topic: $s) { edges { node { id } } } }",
            json!({ "s": s }),
        ),
        (
            "supervisor",
            "query($s: String) { tickets(first: 5, after: $s) { edges { node { id } } } }",
            json!({ "s": s }),
        ),
        ("frontline", "query($s: String) { ticketsByContact(email: $s) { edges { node { id } } } }", json!({ "s": s })),
        ("frontline", "query($s: String) { ticketsByContact(phone: $s) { edges { node { id } } } }", json!({ "s": s })),
        (
            "frontline",
            "mutation($t: ID!, $s: String!) { requestReveal(ticketId: $t, fields: [\"email\"], reason: $s) { grants { field } } }",
            json!({ "t": ticket, "s": s }),
        ),
        (
            "frontline",
            "mutation($t: ID!, $s: String!) { requestReveal(ticketId: $t, fields: [$s], reason: \"the customer asked for it\") { grants { field } } }",
            json!({ "t": ticket, "s": s }),
        ),
        (
            "frontline",
            "mutation($s: ID!) { requestReveal(ticketId: $s, fields: [\"email\"], reason: \"the customer asked for it\") { grants { field } } }",
            json!({ "s": s }),
        ),
        ("supervisor", "mutation($s: ID!) { approveReveal(requestId: $s, note: $s) { id } }", json!({ "s": s })),
        ("supervisor", "mutation($s: ID!) { denyReveal(requestId: $s, note: $s) { id } }", json!({ "s": s })),
        ("supervisor", "mutation($s: ID!) { revokeReveal(grantId: $s) { id } }", json!({ "s": s })),
        (
            "frontline",
            "mutation($t: ID!, $s: String!) { recordConsent(ticketId: $t, kind: $s, noticeVersion: $s) { kind } }",
            json!({ "t": ticket, "s": s }),
        ),
        (
            "frontline",
            "mutation($t: ID!, $s: String!) { withdrawConsent(ticketId: $t, kind: $s) }",
            json!({ "t": ticket, "s": s }),
        ),
        (
            "frontline",
            "mutation($t: ID!, $s: String) { verifyCustomerIdentity(ticketId: $t, answers: { dateOfBirth: $s, postalCode: $s, cardLast4: $s }) { dateOfBirth postalCode cardLast4 } }",
            json!({ "t": ticket, "s": s }),
        ),
        ("auditor", "query($s: String) { auditEvents(first: 5, filter: { actor: $s }) { edges { node { seq } } } }", json!({ "s": s })),
        ("auditor", "query($s: ID) { auditEvents(first: 5, filter: { customerId: $s }) { edges { node { seq } } } }", json!({ "s": s })),
        ("auditor", "query($s: ID!) { customerAccessReport(customerId: $s) { customerId } }", json!({ "s": s })),
        ("admin", "query($s: ID!) { exportCustomerData(customerId: $s) }", json!({ "s": s })),
        ("admin", "mutation($s: ID!) { eraseCustomer(customerId: $s) { customerId } }", json!({ "s": s })),
        ("supervisor", "mutation($s: ID!) { setTicketStatus(ticketId: $s, status: RESOLVED) { id } }", json!({ "s": s })),
    ]
}

/// What an agent can observe of the data: every ticket with its status and message count,
/// the grants and pending requests, the audit trail's length.
async fn snapshot(app: &TestApp) -> Value {
    let (_, tickets) = app
        .query_as(
            "supervisor",
            "{ tickets(first: 100) { edges { node { id status subject messages { body } } } } pendingRevealRequests { edges { node { id } } } }",
            json!({}),
        )
        .await;
    let (_, grants) = app
        .query_as(
            "frontline",
            "{ myGrants { edges { node { id } } } }",
            json!({}),
        )
        .await;
    json!({ "tickets": tickets["data"], "grants": grants["data"] })
}

/// The audit events other than views (reads are audited too), oldest first.
async fn changes(app: &TestApp) -> Vec<Value> {
    let (_, audit) = app
        .query_as(
            "auditor",
            "{ auditEvents(first: 100) { edges { node { seq action reason } } } }",
            json!({}),
        )
        .await;
    let mut changes: Vec<Value> = audit["data"]["auditEvents"]["edges"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| e["node"].clone())
        .filter(|e| {
            e["action"] != "VIEWED" && e["seq"].as_i64().is_some_and(|s| s > app.audit_start)
        })
        .collect();
    changes.sort_by_key(|e| e["seq"].as_i64());
    changes
}

fn check(status: u16, body: &Value, context: &str) {
    assert!(status < 500, "{context}: HTTP {status} {body}");
    if let Some(errors) = body.get("errors").and_then(Value::as_array) {
        for error in errors {
            let code = error["extensions"]["code"].as_str().unwrap_or("");
            assert!(
                matches!(code, "BAD_USER_INPUT" | "NOT_FOUND" | "FORBIDDEN"),
                "{context}: {body}"
            );
            let message = error["message"].as_str().unwrap_or("");
            assert!(
                !message.contains("SQL") && !message.contains("Polar") && !message.contains("sqlx"),
                "{context}: an internal cause reached the client: {message}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_strings_in_every_input_change_nothing_on_sqlite() {
    hostile_strings_in_every_input(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_strings_in_every_input_change_nothing_on_postgres() {
    hostile_strings_in_every_input(Backend::Postgres).await;
}

async fn hostile_strings_in_every_input(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.identity_checks_per_hour = 10_000;
        s.reveals_per_hour = 10_000;
        s.requests_per_minute = 100_000;
    })
    .await;
    // Frontline's own ticket, so that each check past visibility is reached.
    let ticket = app.ticket_id("Where is my parcel?").await;
    let admin = app.create_agent("privacy.officer", "admin").await;
    let before = snapshot(&app).await;
    let created: Vec<Value> = changes(&app).await;
    assert_eq!(created.len(), 1, "creating the admin, audited: {created:?}");
    let mut reasons = Vec::new();
    let mut checks = 0;
    for s in hostile() {
        for (agent, query, variables) in calls(&ticket, &s) {
            let token = match agent {
                "admin" => admin.clone(),
                demo => app.token(demo).to_owned(),
            };
            let body = json!({ "query": query, "variables": variables });
            let (status, body) = app.post_graphql(Some(&token), &body).await;
            let shown: String = s.chars().take(40).collect();
            let context = format!("{query} with {shown:?}");
            check(status, &body, &context);
            let data = &body["data"];
            if !data["requestReveal"].is_null() {
                assert!(query.contains("reason: $s"), "{context}: {body}");
                reasons.push(s.clone());
            }
            if let Some(check) = data["verifyCustomerIdentity"].as_object() {
                assert!(
                    check.values().all(|c| c == "NO_MATCH" || c == "NOT_GIVEN"),
                    "{context}: {body}"
                );
                checks += 1;
            }
        }
    }
    // Reasons are stored as given (trimmed); control and invisible characters are refused.
    assert!(
        reasons.iter().all(|r| !r
            .trim()
            .chars()
            .any(|c| c.is_control() || needtoknow::reveal::is_invisible(c))),
        "{reasons:?}"
    );
    let changes = changes(&app).await;
    let requested: Vec<&str> = changes
        .iter()
        .filter(|e| e["action"] == "REVEAL_REQUESTED")
        .filter_map(|e| e["reason"].as_str())
        .collect();
    let expected: Vec<&str> = reasons.iter().map(|r| r.trim()).collect();
    assert_eq!(requested, expected);
    let checked = changes
        .iter()
        .filter(|e| e["action"] == "IDENTITY_CHECKED")
        .count();
    assert_eq!(checked, checks);
    assert!(
        changes.iter().all(|e| matches!(
            e["action"].as_str(),
            Some("REVEAL_REQUESTED" | "REVEAL_GRANTED" | "IDENTITY_CHECKED" | "AGENT_CREATED")
        )),
        "{changes:?}"
    );
    let after = snapshot(&app).await;
    assert_eq!(after["tickets"], before["tickets"], "no ticket changed");
    assert_eq!(
        after["grants"]["myGrants"]["edges"]
            .as_array()
            .unwrap()
            .len(),
        reasons.len(),
        "one grant per accepted reveal"
    );

    let db = needtoknow::db::connect(&app.settings).await.unwrap();
    let verdict = needtoknow::audit::verify(&db).await.unwrap();
    assert!(
        matches!(verdict, needtoknow::audit::Verdict::Intact { .. }),
        "the audit chain is intact: {verdict:?}"
    );
    let (status, body) = app
        .query_as("frontline", "{ me { handle } }", json!({}))
        .await;
    assert_eq!(
        (status, &body["data"]["me"]["handle"]),
        (200, &json!("frontline"))
    );
}
