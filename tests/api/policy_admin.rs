//! What issue 11 found in use, as tests: another team's supervisor reading this team's
//! audit trail, agents keeping access after their role or queue left the policy, and
//! class-only decisions; plus policy versions in the audit trail.

use std::path::Path;
use std::time::Duration;

use sea_orm::{ActiveModelTrait, Set};
use serde_json::{json, Value};

use crate::helpers::{
    assert_no_errors, error_code, eventually, fresh_settings, spawn_with, Backend, TestApp,
};
use crate::on_both_databases;

/// Creates an agent and returns its token.
async fn agent(app: &TestApp, handle: &str, role: &str, team: &str, queues: &[&str]) -> String {
    app.create_agent_in(handle, role, team, queues).await
}

async fn query(app: &TestApp, token: &str, query: &str, variables: Value) -> Value {
    app.post_graphql(
        Some(token),
        &json!({ "query": query, "variables": variables }),
    )
    .await
    .1
}

const EVENTS: &str = "query($f: AuditFilter, $after: String) {
    auditEvents(first: 100, filter: $f, after: $after) {
        edges { cursor node { action ticketId customerId reason policyVersion } } } }";

fn edges(body: &Value) -> Vec<Value> {
    assert_no_errors(body);
    body["data"]["auditEvents"]["edges"]
        .as_array()
        .expect("edges")
        .clone()
}

on_both_databases! {
    /// A supervisor of another team reads none of this team's audit trail, whatever the
    /// filter or cursor; this team's supervisor reads its team's events but not events that
    /// name no ticket, which only auditors read.
    async fn another_teams_supervisor_reads_none_of_this_teams_audit_trail(app) {
        let other = agent(&app, "othersup", "supervisor", "other", &[]).await;
        let password = app.ticket_id("Cannot reset my password").await;
        let (_, body) = app.query_as("frontline", "mutation($t: ID!) { requestReveal(ticketId: $t,
            fields: [\"email\"], reason: \"customer asked to confirm the address we write to\") {
            grants { id } } }", json!({ "t": password })).await;
        assert_no_errors(&body);
        let customer = app.data_as("supervisor", "query($t: ID!) { ticket(id: $t) { customer { id } } }",
            json!({ "t": password })).await["ticket"]["customer"]["id"].clone();
        // An event naming no ticket: the privacy officer's export.
        let admin = agent(&app, "privacy", "admin", "support", &[]).await;
        let body = query(&app, &admin, "query($c: ID!) { exportCustomerData(customerId: $c) }",
            json!({ "c": customer })).await;
        assert_no_errors(&body);

        let (_, body) = app.post_graphql(Some(&other), &json!({
            "query": "query($t: ID!) { ticket(id: $t) { id } }", "variables": { "t": password } })).await;
        assert_eq!(error_code(&body), "NOT_FOUND");
        let filters = [
            json!(null),
            json!({ "action": "REVEAL_GRANTED" }),
            json!({ "actor": "frontline" }),
            json!({ "ticketId": password }),
            json!({ "customerId": customer }),
            json!({ "since": "2000-01-01T00:00:00Z", "until": "2999-01-01T00:00:00Z" }),
        ];
        for filter in &filters {
            let body = query(&app, &other, EVENTS, json!({ "f": filter })).await;
            assert_eq!(edges(&body), Vec::<Value>::new(), "filter {filter}");
        }

        // This team's supervisor sees the reveal with its reason, but not the export.
        let (_, body) = app.query_as("supervisor", EVENTS, json!({ "f": null })).await;
        let own = edges(&body);
        assert!(own.iter().any(|e| e["node"]["action"] == "REVEAL_GRANTED"
            && e["node"]["reason"].as_str().is_some_and(|r| r.contains("confirm"))));
        assert!(own.iter().all(|e| e["node"]["ticketId"].is_string()), "{own:?}");
        // A cursor from this team's trail steps into nothing for the other team.
        let cursor = own.last().unwrap()["cursor"].clone();
        let first = own.first().unwrap()["cursor"].clone();
        // (`YXVkaXQ6OTk5OTk5` is the cursor of event 999999: base64url of `audit:999999`.)
        for after in [cursor, first, json!("YXVkaXQ6OTk5OTk5")] {
            let body = query(&app, &other, EVENTS, json!({ "after": after })).await;
            assert_eq!(edges(&body), Vec::<Value>::new());
        }
        // Auditors read every event, including the one naming no ticket.
        let (_, body) = app.query_as("auditor", EVENTS, json!({ "f": { "action": "CUSTOMER_EXPORTED" } })).await;
        assert_eq!(edges(&body).len(), 1);
        let (_, body) = app.query_as("supervisor", EVENTS, json!({ "f": { "action": "CUSTOMER_EXPORTED" } })).await;
        assert_eq!(edges(&body).len(), 0);
        // Roles without an audit scope are refused, as before.
        let (_, body) = app.query_as("frontline", EVENTS, json!({})).await;
        assert_eq!(error_code(&body), "FORBIDDEN");
    }
}

on_both_databases! {
    /// Every event records the policy version in force, the one `/readyz` shows.
    async fn audit_events_name_the_policy_version_that_allowed_them(app) {
        let version = app.readiness().await["checks"]["policy"]["version"].clone();
        assert_eq!(version.as_str().map(str::len), Some(16), "{version}");
        let id = app.ticket_id("Charged twice in March").await;
        app.data_as("billing", "query($t: ID!) { ticket(id: $t) { customer { fullName { value } } } }",
            json!({ "t": id })).await;
        let (_, body) = app.query_as("auditor", EVENTS, json!({ "f": { "action": "VIEWED" } })).await;
        let events = edges(&body);
        assert!(!events.is_empty());
        assert!(events.iter().all(|e| e["node"]["policyVersion"] == version), "{events:?}");
    }
}

/// The shipped policy plus `extra` rules, in a fresh directory (no cases, so any edit that
/// checks out reloads).
fn policy_dir(extra: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    let main = std::fs::read_to_string(shipped.join("main.polar")).unwrap();
    std::fs::write(dir.path().join("main.polar"), format!("{main}\n{extra}\n")).unwrap();
    std::fs::copy(
        shipped.join("notices.json"),
        dir.path().join("notices.json"),
    )
    .unwrap();
    dir
}

async fn spawn_on(backend: Backend, policies: &Path) -> TestApp {
    let (mut settings, data, pg) = fresh_settings(backend).await;
    settings.policy_dir = policies.to_owned();
    settings.policy_watch = Some(Duration::from_millis(100));
    spawn_with(settings, data, pg).await
}

const SUBJECTS: &str = "{ tickets(first: 100) { edges { node { id subject } } } }";

fn subjects(body: &Value) -> Vec<String> {
    assert_no_errors(body);
    body["data"]["tickets"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["subject"].as_str().unwrap().to_owned())
        .collect()
}

/// Removing a role or a topic from the policy takes everything it gave: the role's agents
/// see no ticket (NOT_FOUND) and have no permission; a queue naming a removed topic gives
/// nothing. `/readyz` counts such agents (naming roles and topics, not handles), and the
/// reload is audited with both versions.
async fn removing_a_role_or_topic_takes_its_access(backend: Backend) {
    let extra = "role(\"legal\", \"a legal specialist\");\ntopic(\"legal_hold\");";
    let policies = policy_dir(extra);
    let app = spawn_on(backend, policies.path()).await;
    let counsel = agent(&app, "counsel", "legal", "support", &["billing"]).await;
    let holder = agent(&app, "holder", "frontline", "support", &["legal_hold"]).await;
    // A ticket of the new topic, unassigned, as an integration would have opened it.
    let db = needtoknow::db::connect(&app.settings).await.unwrap();
    let held = entity::ticket::ActiveModel {
        customer_id: Set(1),
        topic: Set("legal_hold".into()),
        status: Set("open".into()),
        subject: Set("Hold all records".into()),
        channel: Set("email".into()),
        team: Set("support".into()),
        assignee_id: Set(None),
        created_at: Set(chrono::Utc::now()),
        resolved_at: Set(None),
        ..Default::default()
    }
    .insert(&db)
    .await
    .unwrap();
    let refund = app.ticket_id("Refund not received").await;

    assert_eq!(
        subjects(&query(&app, &counsel, SUBJECTS, json!({})).await),
        ["Refund not received"]
    );
    assert_eq!(
        subjects(&query(&app, &holder, SUBJECTS, json!({})).await),
        ["Hold all records"]
    );
    let before = app.readiness().await["checks"]["policy"].clone();
    assert_eq!(before["agentsWithUnknownRole"], 0);

    // The admin deletes the two lines; the running service reloads.
    std::fs::write(
        policies.path().join("main.polar"),
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/main.polar"))
            .unwrap(),
    )
    .unwrap();
    eventually("the edit is loaded", || async {
        app.readiness().await["checks"]["policy"]["reloads"] == 1
    })
    .await;

    assert_eq!(
        subjects(&query(&app, &counsel, SUBJECTS, json!({})).await),
        Vec::<String>::new()
    );
    let body = query(
        &app,
        &counsel,
        "query($t: ID!) { ticket(id: $t) { id } }",
        json!({ "t": refund }),
    )
    .await;
    assert_eq!(error_code(&body), "NOT_FOUND");
    let body = query(
        &app,
        &counsel,
        "{ ticketsByContact(email: \"kim.placeholder@example.org\") { edges { node { id } } } }",
        json!({}),
    )
    .await;
    assert_eq!(error_code(&body), "FORBIDDEN");
    assert_eq!(
        subjects(&query(&app, &holder, SUBJECTS, json!({})).await),
        Vec::<String>::new()
    );
    let body = query(
        &app,
        &holder,
        "query($t: ID!) { ticket(id: $t) { id } }",
        json!({ "t": held.id.to_string() }),
    )
    .await;
    assert_eq!(error_code(&body), "NOT_FOUND");

    let after = app.readiness().await["checks"]["policy"].clone();
    assert_eq!(after["agentsWithUnknownRole"], 1, "{after}");
    assert_eq!(after["unknownRoles"], json!(["legal"]));
    assert_eq!(after["agentsWithUnknownQueue"], 1);
    assert_eq!(after["unknownTopics"], json!(["legal_hold"]));
    assert!(!after.to_string().contains("counsel") && !after.to_string().contains("holder"));
    assert_ne!(after["version"], before["version"]);

    let (_, body) = app
        .query_as(
            "auditor",
            EVENTS,
            json!({ "f": { "action": "POLICY_RELOADED" } }),
        )
        .await;
    let reloads = edges(&body);
    assert_eq!(reloads.len(), 1);
    let reason = reloads[0]["node"]["reason"].as_str().unwrap();
    assert_eq!(
        reason,
        format!(
            "file watch: {} -> {}",
            before["version"].as_str().unwrap(),
            after["version"].as_str().unwrap()
        )
    );
    assert_eq!(reloads[0]["node"]["policyVersion"], after["version"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_a_role_or_topic_takes_its_access_on_sqlite() {
    removing_a_role_or_topic_takes_its_access(Backend::Sqlite).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_a_role_or_topic_takes_its_access_on_postgres() {
    removing_a_role_or_topic_takes_its_access(Backend::Postgres).await
}

/// A field-level rule splits a class: the identity specialist keeps the identity documents
/// but loses the date of birth; the summary, its sentence and the reveal all follow the field.
async fn a_field_level_rule_overrides_its_class(backend: Backend) {
    let policies = policy_dir(
        "field_access(agent: Agent, _ticket: Ticket, \"dateOfBirth\", \"HIDDEN\", \"NONE\") if\n    agent.role = \"identity\";",
    );
    let app = spawn_on(backend, policies.path()).await;
    let id = app.ticket_id("Verify my identity").await;
    let data = app
        .data_as(
            "identity",
            "query($t: ID!) { ticket(id: $t) {
                customer { dateOfBirth { value access } identityDocuments { access } }
                accessSummary { classes { dataClass access uniform }
                    fields { field access fieldRule } sentence } } }",
            json!({ "t": id }),
        )
        .await;
    let customer = &data["ticket"]["customer"];
    assert_eq!(
        customer["dateOfBirth"],
        json!({ "value": null, "access": "HIDDEN" })
    );
    assert_eq!(customer["identityDocuments"]["access"], "PLAIN");
    let summary = &data["ticket"]["accessSummary"];
    let identity = summary["classes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["dataClass"] == "IDENTITY")
        .unwrap()
        .clone();
    assert_eq!(
        identity,
        json!({ "dataClass": "IDENTITY", "access": "PLAIN", "uniform": false })
    );
    let born = summary["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["field"] == "dateOfBirth")
        .unwrap()
        .clone();
    assert_eq!(
        born,
        json!({ "field": "dateOfBirth", "access": "HIDDEN", "fieldRule": true })
    );
    let sentence = summary["sentence"].as_str().unwrap();
    assert!(
        sentence.contains("I can't see your date of birth"),
        "{sentence}"
    );
    assert!(sentence.contains("your identity documents"), "{sentence}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_field_level_rule_overrides_its_class_on_sqlite() {
    a_field_level_rule_overrides_its_class(Backend::Sqlite).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_field_level_rule_overrides_its_class_on_postgres() {
    a_field_level_rule_overrides_its_class(Backend::Postgres).await
}

on_both_databases! {
    /// `agent update` (the service function behind the CLI) takes effect within a second (a
    /// running service remembers authenticated tokens that long), and is audited without
    /// naming the agent's handle.
    async fn an_agent_update_applies_to_the_next_request_and_is_audited(app) {
        let token = agent(&app, "sam", "frontline", "support", &["billing"]).await;
        assert_eq!(subjects(&query(&app, &token, SUBJECTS, json!({})).await), ["Refund not received"]);
        let db = needtoknow::db::connect(&app.settings).await.unwrap();
        let policy = needtoknow::policy::Policy::load(&app.settings.policy_dir).unwrap();
        let actor = needtoknow::audit::Actor {
            agent_id: None,
            role: "cli".into(),
            request_id: "cli".into(),
            policy_version: Some(policy.current().version().to_owned()),
            idempotency_key: None,
        };
        let updated = needtoknow::agents::update(
            &needtoknow::writer::Writer::new(db.clone()),
            policy.current().vocabulary(),
            &actor,
            "sam",
            needtoknow::agents::AgentChange {
                remove_queues: vec!["billing".into()],
                add_queues: vec!["shipping".into()],
                ..Default::default()
            },
        )
        .await
        .unwrap();
        assert_eq!(updated.changes, ["queues +shipping -billing"]);
        crate::helpers::eventually("the new queues apply", || async {
            subjects(&query(&app, &token, SUBJECTS, json!({})).await).is_empty()
        })
        .await;
        let (_, body) = app.query_as("auditor", EVENTS, json!({ "f": { "action": "AGENT_UPDATED" } })).await;
        let events = edges(&body);
        assert_eq!(events.len(), 1);
        let reason = events[0]["node"]["reason"].as_str().unwrap();
        assert!(reason.ends_with(": queues +shipping -billing") && !reason.contains("sam"), "{reason}");
    }
}
