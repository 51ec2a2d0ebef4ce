//! Bad input: each gets a precise error and the service keeps serving.

use serde_json::json;

use crate::helpers::{error_code, fresh_settings, postgres_admin_url, spawn_with, Backend};
use crate::on_both_databases;

on_both_databases! {
    /// Malformed JSON, wrong content types, batches and oversized bodies are refused with
    /// the right status and a GraphQL-shaped error; the next request still works.
    async fn malformed_requests_get_precise_errors(app) {
        let url = format!("{}/graphql", app.address);
        let token = app.token("frontline").to_owned();
        let send = |body: Vec<u8>, content_type: &'static str| {
            app.client.post(&url).bearer_auth(&token).header("content-type", content_type).body(body).send()
        };

        let response = send(b"{\"query\": ".to_vec(), "application/json").await.unwrap();
        assert_eq!(response.status().as_u16(), 400);
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(error_code(&body), "BAD_USER_INPUT");

        let response = send(b"query=%7Bme%7Bhandle%7D%7D".to_vec(), "application/x-www-form-urlencoded").await.unwrap();
        assert_eq!(response.status().as_u16(), 415);

        let response = send(br#"[{"query":"{ me { handle } }"}]"#.to_vec(), "application/json").await.unwrap();
        assert_eq!(response.status().as_u16(), 400);
        let body: serde_json::Value = response.json().await.unwrap();
        assert!(body["errors"][0]["message"].as_str().unwrap().contains("batch"));

        let response = send(br#"{"query": 42}"#.to_vec(), "application/json").await.unwrap();
        assert_eq!(response.status().as_u16(), 400);

        let huge = format!(r#"{{"query":"{{ me {{ handle }} }}","variables":{{"x":"{}"}}}}"#, "a".repeat(70_000));
        let response = send(huge.into_bytes(), "application/json").await.unwrap();
        assert_eq!(response.status().as_u16(), 413);
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(error_code(&body), "BAD_USER_INPUT");

        let (status, body) = app.query_as("frontline", "{ me { handle } }", json!({})).await;
        assert_eq!((status, &body["data"]["me"]["handle"]), (200, &json!("frontline")));
    }
}

on_both_databases! {
    /// Unknown fields, syntax errors and non-numeric ids are the client's errors.
    async fn invalid_queries_are_bad_user_input(app) {
        for query in [
            "{ me { handle socialSecurityNumber } }",
            "{ me { handle }",
            "{ ticket(id: \"abc\") { subject } }",
            "{ ticket { subject } }",
        ] {
            let (status, body) = app.query_as("frontline", query, json!({})).await;
            assert_eq!(status, 200, "{query}");
            assert_eq!(error_code(&body), "BAD_USER_INPUT", "{query}: {body:#}");
        }
    }
}

on_both_databases! {
    /// A query nested deeper than the limit is refused before it runs.
    async fn overly_deep_queries_are_refused(app) {
        let query = format!(
            "{{ __schema {{ types {{ fields {{ type {} {{ name }} {} }} }} }} }}",
            "{ ofType ".repeat(20),
            "}".repeat(20)
        );
        let (_, body) = app.query_as("frontline", &query, json!({})).await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT");
    }
}

/// A database that is down at start stops start-up with a clear error.
#[tokio::test]
async fn a_database_down_at_start_fails_start_up_clearly() {
    let (mut settings, _dir, _) = fresh_settings(Backend::Sqlite).await;
    settings.database = needtoknow::config::DatabaseSettings::Postgres {
        url: needtoknow::config::Secret::new("postgres://postgres:hunter2@127.0.0.1:1/none".into()),
    };
    settings.database_timeout = std::time::Duration::from_secs(1);
    let error = match needtoknow::startup::Application::build(settings).await {
        Ok(_) => panic!("start-up must fail"),
        Err(error) => format!("{error:#}"),
    };
    assert!(
        error.contains("cannot connect to the postgresql"),
        "{error}"
    );
    assert!(
        !error.contains("hunter2"),
        "the password never appears: {error}"
    );
}

/// A database that goes away during a request gives `INTERNAL` (cause only in the log);
/// the service keeps running and serves again once the database is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_lost_mid_run_gives_internal_then_recovers() {
    use sea_orm::{ConnectionTrait, Database};
    let (settings, dir, pg) = fresh_settings(Backend::Postgres).await;
    let name = pg.clone().expect("postgres database");
    let app = spawn_with(settings, dir, pg).await;
    let id = app.ticket_id("Cannot reset my password").await;
    let query = "query($id: ID!) { ticket(id: $id) { subject } }";

    let admin = Database::connect(format!("{}/postgres", postgres_admin_url()))
        .await
        .unwrap();
    admin
        .execute_unprepared(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS false"))
        .await
        .unwrap();
    admin
        .execute_unprepared(&format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
        ))
        .await
        .unwrap();

    let token = app.token("frontline").to_owned();
    let response = app
        .client
        .post(format!("{}/graphql", app.address))
        .bearer_auth(&token)
        .json(&json!({ "query": query, "variables": { "id": id } }))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_server_error() || response.status().is_success());
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(error_code(&body), "INTERNAL");
    assert_eq!(body["errors"][0]["message"], "internal error");
    let health = app
        .client
        .get(format!("{}/healthz", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status().as_u16(), 200, "the process stays up");
    let ready = app
        .client
        .get(format!("{}/readyz", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status().as_u16(), 503);

    admin
        .execute_unprepared(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true"))
        .await
        .unwrap();
    let mut recovered = false;
    for _ in 0..50 {
        let (status, body) = app.query_as("frontline", query, json!({ "id": id })).await;
        if status == 200 && body.get("errors").is_none() {
            assert_eq!(
                body["data"]["ticket"]["subject"],
                "Cannot reset my password"
            );
            recovered = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert!(recovered, "the service recovers when the database returns");
}

/// Each query limit accepts a query at its threshold and refuses one just above it, before
/// anything runs, with BAD_USER_INPUT.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_limits_accept_at_the_threshold_and_refuse_just_above() {
    let app = crate::helpers::spawn_app_with(Backend::Sqlite, |s| {
        s.limits = needtoknow::limits::QueryLimits {
            document_bytes: 400,
            aliases: 3,
            root_fields: 3,
            depth: 5,
            complexity: 100,
            directives: 1,
            page_size: 30,
            ..needtoknow::limits::QueryLimits::default()
        };
    })
    .await;
    let ok = |body: &serde_json::Value| body.get("errors").is_none();
    let aliases = |n: usize| {
        format!(
            "{{ {} }}",
            (0..n)
                .map(|i| format!("a{i}: me {{ handle }}"))
                .collect::<Vec<_>>()
                .join(" ")
        )
    };
    let (status, body) = app.query_as("frontline", &aliases(3), json!({})).await;
    assert!(status == 200 && ok(&body), "{body}");
    // A refused limit is a request error: nothing runs and there is no `data`; HTTP 200
    // for this legacy `application/json` client (400 for clients accepting
    // `application/graphql-response+json`, see conformance.rs).
    let (status, body) = app.query_as("frontline", &aliases(4), json!({})).await;
    assert_eq!((status, error_code(&body)), (200, "BAD_USER_INPUT"));
    assert!(body.get("data").is_none(), "{body}");

    let roots = |n: usize| format!("{{ {} }}", vec!["me { handle }"; n].join(" "));
    let (_, body) = app
        .query_as(
            "frontline",
            "{ me { handle } __typename x: __typename }",
            json!({}),
        )
        .await;
    assert!(ok(&body), "{body}");
    let (status, body) = app.query_as("frontline", &roots(4), json!({})).await;
    assert_eq!((status, error_code(&body)), (200, "BAD_USER_INPUT"));

    // Depth: ticket > customer > email > value is 4 levels; otherTickets > value > … is 5.
    let deep = "{ tickets(first: 1) { edges { node { customer { email { value } } } } } }";
    let (_, body) = app.query_as("frontline", deep, json!({})).await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT", "depth 6 is over 5");
    let (_, body) = app
        .query_as(
            "frontline",
            "{ tickets(first: 1) { edges { node { id } } } }",
            json!({}),
        )
        .await;
    assert!(ok(&body), "{body}");

    // Complexity: tickets(first: n) { edges { node { id subject } } } costs n × 4.
    let costly =
        |n: i32| format!("{{ tickets(first: {n}) {{ edges {{ node {{ id subject }} }} }} }}");
    let (_, body) = app.query_as("frontline", &costly(25), json!({})).await;
    assert!(ok(&body), "{body}");
    let (_, body) = app.query_as("frontline", &costly(26), json!({})).await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT");
    assert!(body.to_string().contains("omplex"), "{body}");

    // Page size: `first` up to the configured maximum.
    let page = |n: i32| format!("{{ tickets(first: {n}) {{ edges {{ node {{ id }} }} }} }}");
    let (_, body) = app.query_as("frontline", &page(30), json!({})).await;
    assert!(ok(&body), "{body}");
    let (_, body) = app.query_as("frontline", &page(31), json!({})).await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT");
    assert!(body.to_string().contains("between 1 and 30"), "{body}");

    // Directives per field.
    let (_, body) = app
        .query_as(
            "frontline",
            "{ me { handle @include(if: true) } }",
            json!({}),
        )
        .await;
    assert!(ok(&body), "{body}");
    let (_, body) = app
        .query_as(
            "frontline",
            "{ me { handle @include(if: true) @skip(if: false) } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT");

    let padded = |bytes: usize| {
        let base = "{ me { handle } }";
        format!("{base}{}", " ".repeat(bytes - base.len()))
    };
    let (_, body) = app.query_as("frontline", &padded(400), json!({})).await;
    assert!(ok(&body), "{body}");
    let (status, body) = app.query_as("frontline", &padded(401), json!({})).await;
    assert_eq!((status, error_code(&body)), (200, "BAD_USER_INPUT"));
}

/// Production mode turns introspection and field suggestions off; dev mode has them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn production_mode_turns_introspection_off() {
    let query = "{ __schema { queryType { name } } }";
    let dev = crate::helpers::spawn_app_with(Backend::Sqlite, |_| {}).await;
    let (_, body) = dev.query_as("frontline", query, json!({})).await;
    assert_eq!(body["data"]["__schema"]["queryType"]["name"], "Query");
    let production =
        crate::helpers::spawn_app_with(Backend::Sqlite, |s| s.introspection = false).await;
    let (_, body) = production.query_as("frontline", query, json!({})).await;
    assert_eq!(body["data"]["__schema"], serde_json::Value::Null, "{body}");
    let (_, body) = production
        .query_as("frontline", "{ me { handel } }", json!({}))
        .await;
    assert!(
        !body.to_string().contains("handle"),
        "no suggestions: {body}"
    );
}

/// The recursion limit bounds nesting that the depth limit does not count (fragments inside
/// fragments), just above and below its threshold.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_recursion_limit_refuses_deeply_nested_fragments() {
    let app = crate::helpers::spawn_app_with(Backend::Sqlite, |s| {
        s.limits.recursion = 6;
        s.limits.depth = 50;
    })
    .await;
    let nested = |n: usize| {
        format!(
            "{{ {} me {{ handle }} {} }}",
            "... on Query { ".repeat(n),
            "}".repeat(n)
        )
    };
    // Five fragments, `me` and `handle`: within 6 levels of recursion; six are over.
    let (_, body) = app.query_as("frontline", &nested(5), json!({})).await;
    assert_eq!(body["data"]["me"]["handle"], "frontline", "{body}");
    let (_, body) = app.query_as("frontline", &nested(6), json!({})).await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT");
    assert!(body.to_string().contains("recursion depth"), "{body}");
}

/// Deeply nested variables are refused precisely: past the JSON parser's nesting bound as
/// malformed JSON (HTTP 400), within it by the variable's type; the service keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deeply_nested_variables_get_precise_errors() {
    let app = crate::helpers::spawn_app_with(Backend::Sqlite, |_| {}).await;
    let url = format!("{}/graphql", app.address);
    let query = "query($v: String) { ticketsByContact(email: $v) { edges { node { id } } } }";
    for (depth, status) in [(100usize, 200u16), (5_000, 400)] {
        let body = format!(
            r#"{{"query": {}, "variables": {{"v": {}"x"{}}}}}"#,
            serde_json::to_string(query).unwrap(),
            "[".repeat(depth),
            "]".repeat(depth)
        );
        let response = app
            .client
            .post(&url)
            .bearer_auth(app.token("frontline"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), status, "depth {depth}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "depth {depth}: {body}");
    }
    let (status, _) = app
        .query_as("frontline", "{ me { handle } }", json!({}))
        .await;
    assert_eq!(status, 200);
}
