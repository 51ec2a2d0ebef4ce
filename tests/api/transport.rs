//! The HTTP surface around GraphQL: queries over GET (never mutations), the operation
//! allow-list with persisted operations, and `/metrics`.

use serde_json::{json, Value};

use crate::helpers::{assert_no_errors, error_code, spawn_app_with, Backend, TestApp};
use crate::on_both_databases;

const STATUS: &str = "{ ticket(id: $t) { status } }";
const RESOLVE: &str =
    "mutation Resolve($t: ID!) { setTicketStatus(ticketId: $t, status: RESOLVED) { status } }";

async fn get(app: &TestApp, token: Option<&str>, params: &[(&str, &str)]) -> (u16, Value) {
    let mut request = app
        .client
        .get(format!("{}/graphql", app.address))
        .query(params);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

on_both_databases! {
    /// GET runs queries (with variables) for an authenticated agent, and refuses mutations
    /// with 405 without running them.
    async fn get_runs_queries_and_never_mutations(app) {
        let ticket = app.ticket_id("Verify my identity").await;
        let token = app.token("supervisor").to_owned();
        let variables = json!({ "t": ticket }).to_string();
        let query = format!("query($t: ID!) {}", STATUS);

        let response = app
            .client
            .get(format!("{}/graphql", app.address))
            .query(&[("query", query.as_str()), ("variables", variables.as_str())])
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200);
        assert_eq!(response.headers()["cache-control"], "no-store");
        let body: Value = response.json().await.unwrap();
        assert_no_errors(&body);
        let before = body["data"]["ticket"]["status"].clone();
        assert_ne!(before, "RESOLVED");

        let response = app
            .client
            .get(format!("{}/graphql", app.address))
            .query(&[("query", RESOLVE), ("variables", variables.as_str())])
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 405);
        assert_eq!(response.headers()["allow"], "POST");
        let body: Value = response.json().await.unwrap();
        assert_eq!(error_code(&body), "BAD_USER_INPUT");
        // A mutation picked by name out of a document with a query is refused too.
        let both = format!("query Q($t: ID!) {STATUS} {RESOLVE}");
        let (status, _) = get(&app, Some(&token), &[("query", &both), ("operationName", "Resolve"), ("variables", &variables)]).await;
        assert_eq!(status, 405);

        let (_, body) = get(&app, Some(&token), &[("query", &query), ("variables", &variables)]).await;
        assert_eq!(body["data"]["ticket"]["status"], before, "nothing changed");

        let (status, body) = get(&app, None, &[("query", "{ me { handle } }")]).await;
        assert_eq!((status, error_code(&body)), (401, "UNAUTHENTICATED"));
        let (status, body) = get(&app, Some(&token), &[("query", "{ me { handle } }"), ("variables", "[1")]).await;
        assert_eq!((status, error_code(&body)), (400, "BAD_USER_INPUT"));
    }
}

/// Writes an allow-list of `documents` into the app's data dir (made with the CLI's own
/// manifest builder) and turns it on.
fn allow_only(settings: &mut needtoknow::config::Settings, documents: &[&str]) {
    let named: Vec<(String, String)> = documents
        .iter()
        .enumerate()
        .map(|(i, d)| (format!("op{i}.graphql"), (*d).to_owned()))
        .collect();
    let manifest = needtoknow::allowlist::Manifest::of_documents(&named).unwrap();
    let path = settings.data_dir.join("allowed-operations.json");
    std::fs::write(&path, serde_json::to_string(&manifest).unwrap()).unwrap();
    settings.allowed_operations = Some(path);
}

/// With the allow-list on, registered operations run (sent whole or by hash, over POST or
/// GET); anything else is FORBIDDEN before it runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_allow_list_runs_registered_operations_only() {
    let me = "query Me { me { handle } }";
    let resolve = RESOLVE;
    let app = spawn_app_with(Backend::Sqlite, |s| allow_only(s, &[me, resolve])).await;
    let token = app.token("frontline").to_owned();
    let hash = needtoknow::allowlist::hash(me);
    let persisted = |hash: &str| json!({ "persistedQuery": { "version": 1, "sha256Hash": hash } });

    let (status, body) = app
        .post_graphql(Some(&token), &json!({ "query": me }))
        .await;
    assert_eq!(
        (status, &body["data"]["me"]["handle"]),
        (200, &json!("frontline"))
    );
    let (status, body) = app
        .post_graphql(Some(&token), &json!({ "extensions": persisted(&hash) }))
        .await;
    assert_eq!(
        (status, &body["data"]["me"]["handle"]),
        (200, &json!("frontline"))
    );
    let extensions = persisted(&hash).to_string();
    let (status, body) = get(&app, Some(&token), &[("extensions", &extensions)]).await;
    assert_eq!(
        (status, &body["data"]["me"]["handle"]),
        (200, &json!("frontline"))
    );

    // The same operation with different whitespace is a different document.
    for refused in [
        json!({ "query": "query Me { me { handle role } }" }),
        json!({ "query": "query Me {  me { handle } }" }),
        json!({ "extensions": persisted(&"ab".repeat(32)) }),
    ] {
        let (status, body) = app.post_graphql(Some(&token), &refused).await;
        assert_eq!((status, error_code(&body)), (403, "FORBIDDEN"), "{refused}");
        assert!(body.get("data").is_none());
    }
    let mismatch = json!({ "query": "{ me { role } }", "extensions": persisted(&hash) });
    let (status, body) = app.post_graphql(Some(&token), &mismatch).await;
    assert_eq!((status, error_code(&body)), (400, "BAD_USER_INPUT"));

    // The list is not a permission: a registered mutation still meets the policy.
    let ready = app.readiness().await;
    assert_eq!(
        ready["checks"]["allowList"],
        json!({ "status": "on", "operations": 2 })
    );
}

/// Without an allow-list, a request naming only a hash is told to send the document.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persisted_hashes_need_the_allow_list() {
    let app = spawn_app_with(Backend::Sqlite, |_| {}).await;
    let body = json!({ "extensions": { "persistedQuery": { "version": 1,
        "sha256Hash": needtoknow::allowlist::hash("{ me { handle } }") } } });
    let (status, body) = app.post_graphql(Some(app.token("frontline")), &body).await;
    assert_eq!((status, error_code(&body)), (400, "BAD_USER_INPUT"));
}

/// An allow-list file whose hash does not match its document stops start-up.
#[tokio::test]
async fn a_tampered_allow_list_stops_start_up() {
    let (mut settings, dir, _) = crate::helpers::fresh_settings(Backend::Sqlite).await;
    let path = dir.path().join("allowed.json");
    let body = json!({ "0".repeat(64): "{ me { handle } }" });
    std::fs::write(&path, body.to_string()).unwrap();
    settings.allowed_operations = Some(path);
    let error = match needtoknow::startup::Application::build(settings).await {
        Ok(_) => panic!("start-up must fail"),
        Err(error) => format!("{error:#}"),
    };
    assert!(error.contains("SHA-256"), "{error}");
}

/// A page of tickets with customers and every protected field, at `first` tickets.
fn page(first: usize) -> String {
    format!("{{ tickets(first: {first}) {{ edges {{ node {TICKET} }} }} }}")
}

/// A ticket with its customer and every protected field.
const TICKET: &str = "{ id subject status assignee { handle } customer {
    accountStatus { value } plan { value } fullName { value access }
    email { value access } phone { value } postalAddress { value }
    dateOfBirth { value } identityDocuments { access value { fileName } }
    paymentMethods { value { brand last4 } } invoices { value { number } }
    otherTickets { value { subject } } chatHistory { value { body } } } }";

/// The `/metrics` body, checked to be Prometheus text.
async fn scrape(app: &TestApp) -> String {
    let response = app
        .client
        .get(format!("{}/metrics", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/plain; version=0.0.4"
    );
    response.text().await.unwrap()
}

/// The value of one series (a name with its labels, as printed), or 0 when it is absent.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

async fn counter(app: &TestApp, name: &str) -> u64 {
    let text = scrape(app).await;
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} in {text}"))
}

const LATENCY: &str = "needtoknow_http_request_duration_seconds";

/// An operator scraping `/metrics` sees how long GraphQL requests take, by operation type
/// and outcome, and how long audit appends wait; no label names an agent, a token, a
/// ticket or an operation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_time_requests_without_naming_anyone() {
    let app = spawn_app_with(Backend::Sqlite, |_| {}).await;
    let ticket = app.ticket_id("Charged twice in March").await;
    let query_ok = format!("{LATENCY}_count{{operation=\"query\",outcome=\"ok\"}}");
    let refused = format!("{LATENCY}_count{{operation=\"none\",outcome=\"error\"}}");
    let mutation = format!("{LATENCY}_count{{operation=\"mutation\",outcome=\"ok\"}}");
    let audit = "needtoknow_audit_append_duration_seconds_count";
    let before = scrape(&app).await;

    // Three queries by name, each showing plaintext that is audited.
    let lookup = "query LookUpCustomerOfTicket($id: ID!) { ticket(id: $id) { customer { fullName { value } } } }";
    for _ in 0..3 {
        let (status, body) = app
            .query_as("billing", lookup, json!({ "id": ticket }))
            .await;
        assert_eq!(status, 200);
        assert_no_errors(&body);
    }
    // A mutation, and two refusals: no token, and a document that does not parse.
    let (_, body) = app
        .query_as("supervisor", RESOLVE, json!({ "t": ticket }))
        .await;
    assert_no_errors(&body);
    let (status, _) = app.post_graphql(None, &json!({ "query": lookup })).await;
    assert_eq!(status, 401);
    let (_, body) = app.query_as("billing", "{ ticket(", json!({})).await;
    assert!(
        body.get("errors").is_some() && body.get("data").is_none(),
        "{body}"
    );

    let after = scrape(&app).await;
    for suffix in ["_bucket", "_sum", "_count"] {
        assert!(
            after
                .lines()
                .any(|l| l.starts_with(&format!("{LATENCY}{suffix}{{"))),
            "{LATENCY}{suffix} in {after}"
        );
    }
    assert!(
        after.contains(&format!("# TYPE {LATENCY} histogram")),
        "{after}"
    );
    let grew = |series: &str| sample(&after, series) - sample(&before, series);
    assert_eq!(grew(&query_ok), 3.0, "{after}");
    assert_eq!(grew(&mutation), 1.0, "{after}");
    assert_eq!(grew(&refused), 2.0, "{after}");
    // Every request falls in the +Inf bucket, and took some time.
    let inf = format!("{LATENCY}_bucket{{operation=\"query\",outcome=\"ok\",le=\"+Inf\"}}");
    assert_eq!(sample(&after, &inf), sample(&after, &query_ok));
    let sum = format!("{LATENCY}_sum{{operation=\"query\",outcome=\"ok\"}}");
    assert!(sample(&after, &sum) > 0.0, "{after}");
    assert!(grew(audit) >= 3.0, "audit appends timed: {after}");

    // Label values are a fixed vocabulary (and bucket bounds): nothing a request sent.
    for line in after.lines().filter(|l| !l.starts_with('#')) {
        let Some((_, labels)) = line.split_once('{') else {
            continue;
        };
        let labels = labels.split_once('}').unwrap().0;
        for pair in labels.split(',') {
            let (name, value) = pair.split_once('=').unwrap();
            let value = value.trim_matches('"');
            match name {
                "operation" => assert!(
                    ["query", "mutation", "subscription", "none"].contains(&value),
                    "{line}"
                ),
                "outcome" => assert!(["ok", "error"].contains(&value), "{line}"),
                "le" => assert!(value == "+Inf" || value.parse::<f64>().is_ok(), "{line}"),
                _ => panic!("unexpected label in {line}"),
            }
        }
    }
    for secret in [
        app.token("billing"),
        app.token("supervisor"),
        "billing",
        "supervisor",
        ticket.as_str(),
        "LookUpCustomerOfTicket",
        "Resolve",
    ] {
        assert!(!after.contains(secret), "{secret} in {after}");
    }
}

/// The SQL statements of a ticket page do not grow with the page size (batched loads, no
/// N+1) and stay within 1 + the query's nesting depth; the grant store is read at most once
/// per request. Tokens are not remembered here, so every request authenticates with its
/// statement and the count does not depend on timing.
async fn statements_of_pages(backend: Backend) {
    {
        let app = spawn_app_with(backend, |s| {
            s.limits.page_size = 200;
            s.token_cache = std::time::Duration::ZERO;
        })
        .await;
        // The demo has 12 tickets; seed more: a page of 200 then reaches 200 customers with 10
        // tickets each, 2 000 keys for the chat history's messages.
        let db = needtoknow::db::connect(&app.settings).await.unwrap();
        let policy = needtoknow::policy::Policy::load(&app.settings.policy_dir).unwrap();
        let (keys, file) = needtoknow::crypto::keys::load_master_keys(&app.settings).unwrap();
        let vault = needtoknow::crypto::vault::Vault::new(keys, file);
        vault.check_master(&db).await.unwrap();
        let size = needtoknow::seed::SeedSize {
            customers: 60,
            tickets: 300,
            messages_per_ticket: Some(2),
        };
        needtoknow::seed::seed(&db, &policy.current(), &vault, size)
            .await
            .unwrap();

        let mut statements = Vec::new();
        for first in [1usize, 10, 50, 200] {
            let query = page(first);
            // Warm: the first request also fills caches (policy decisions, data keys).
            let (_, body) = app.query_as("supervisor", &query, json!({})).await;
            assert_no_errors(&body);
            assert_eq!(
                body["data"]["tickets"]["edges"].as_array().unwrap().len(),
                first
            );
            // Several requests: batching must not depend on timing.
            for _ in 0..5 {
                let sql = counter(&app, "needtoknow_sql_statements_total").await;
                let grants = counter(&app, "needtoknow_grant_store_calls_total").await;
                let (_, body) = app.query_as("supervisor", &query, json!({})).await;
                assert_no_errors(&body);
                let sql = counter(&app, "needtoknow_sql_statements_total").await - sql;
                let grants = counter(&app, "needtoknow_grant_store_calls_total").await - grants;
                assert!(grants <= 1, "grant store calls per request: {grants}");
                statements.push(sql);
            }
        }
        eprintln!("statements per request (5 each of 1, 10, 50, 200 tickets): {statements:?}");
        let statements: Vec<u64> = statements
            .chunks(5)
            .map(|c| *c.iter().max().unwrap())
            .collect();
        assert!(
            statements[1..].iter().all(|&s| s == statements[1]),
            "10, 50 and 200 tickets: {statements:?}"
        );
        // The token, the page (with its customers and assignees), the customers' payment
        // methods, invoices and chat histories (one statement), other tickets and the audit
        // events: 5.
        assert!(statements[1] <= 5, "statements per page: {statements:?}");

        // One ticket with the same fields costs a statement less than a page: its
        // customer's other tickets come with it. The token, the ticket, the records, the
        // audit events: 4.
        let one = format!("{{ ticket(id: \"13\") {TICKET} }}");
        let (_, body) = app.query_as("supervisor", &one, json!({})).await;
        assert_no_errors(&body);
        let sql = counter(&app, "needtoknow_sql_statements_total").await;
        let (_, body) = app.query_as("supervisor", &one, json!({})).await;
        assert_no_errors(&body);
        let sql = counter(&app, "needtoknow_sql_statements_total").await - sql;
        assert!(
            sql < statements[1] && sql <= 4,
            "one ticket: {sql}, a page: {}",
            statements[1]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_costs_the_same_statements_whatever_its_size_on_sqlite() {
    statements_of_pages(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_costs_the_same_statements_whatever_its_size_on_postgres() {
    statements_of_pages(Backend::Postgres).await;
}
