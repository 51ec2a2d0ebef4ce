//! Health, readiness, GraphiQL and the demo's idempotence.

use serde_json::json;

use crate::helpers::{fresh_settings, spawn_with, Backend};
use crate::on_both_databases;

on_both_databases! {
    /// Liveness and readiness answer without credentials; readiness names its checks.
    async fn health_and_readiness_report_up(app) {
        let health = app.client.get(format!("{}/healthz", app.address)).send().await.unwrap();
        assert_eq!(health.status().as_u16(), 200);
        let ready = app.client.get(format!("{}/readyz", app.address)).send().await.unwrap();
        assert_eq!(ready.status().as_u16(), 200);
        let body: serde_json::Value = ready.json().await.unwrap();
        assert_eq!(body["checks"]["database"], "up");
        assert_eq!(body["checks"]["policy"]["status"], "loaded");
    }
}

on_both_databases! {
    /// Dev/demo mode serves GraphiQL on GET /graphql; unknown paths are JSON 404s.
    async fn graphiql_is_served_in_demo_mode(app) {
        let page = app.client.get(format!("{}/graphql", app.address)).send().await.unwrap();
        assert_eq!(page.status().as_u16(), 200);
        assert!(page.text().await.unwrap().to_lowercase().contains("graphiql"));
        let missing = app.client.get(format!("{}/nope", app.address)).send().await.unwrap();
        assert_eq!(missing.status().as_u16(), 404);
    }
}

/// Production mode does not serve GraphiQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn production_mode_serves_no_graphiql() {
    let (mut settings, dir, pg) = fresh_settings(Backend::Sqlite).await;
    settings.mode = needtoknow::config::Mode::Production;
    settings.master_key = Some(needtoknow::config::Secret::new(
        needtoknow::crypto::keys::generate_key(),
    ));
    let app = spawn_with(settings, dir, pg).await;
    let page = app
        .client
        .get(format!("{}/graphql", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status().as_u16(), 404);
}

/// Restarting with `--demo` on the same data keeps one copy of the data and the same
/// tokens (none for a demo agent that was disabled).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_seed_is_idempotent_across_restarts() {
    let (settings, dir, pg) = fresh_settings(Backend::Sqlite).await;
    let first = spawn_with(settings.clone(), tempfile::tempdir().unwrap(), pg.clone()).await;
    let before = first.visible_ticket_subjects("supervisor").await;
    let mut tokens = first.tokens.clone();
    // A demo agent disabled meanwhile stays disabled and gets no token.
    let db = needtoknow::db::connect(&settings).await.unwrap();
    needtoknow::agents::disable(
        &needtoknow::writer::Writer::new(db.clone()),
        &needtoknow::audit::Actor::system("test", "test"),
        "auditor",
    )
    .await
    .unwrap();
    tokens.remove("auditor");
    let second = spawn_with(settings, dir, pg).await;
    assert_eq!(second.visible_ticket_subjects("supervisor").await, before);
    assert_eq!(before.len(), 6);
    assert_eq!(
        second.tokens, tokens,
        "tokens in demo-tokens.json are reused"
    );
    let written: std::collections::BTreeMap<String, String> = serde_json::from_slice(
        &std::fs::read(second.settings.data_dir.join("demo-tokens.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(written, tokens);
    let (status, _) = first
        .query_as("frontline", "{ me { handle } }", json!({}))
        .await;
    assert_eq!(status, 200);
}

/// Only listed agent-UI origins get CORS access (plus, in dev mode, the service's own
/// origin for GraphiQL); other origins are refused; non-browser clients are unaffected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_allows_only_listed_origins() {
    let app = crate::helpers::spawn_app_with(Backend::Sqlite, |s| {
        s.cors_origins = vec!["https://agents.example.com".into()];
    })
    .await;
    let url = format!("{}/graphql", app.address);
    let preflight = |origin: &'static str| {
        app.client
            .request(reqwest::Method::OPTIONS, &url)
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization, content-type",
            )
            .send()
    };
    let allowed = preflight("https://agents.example.com").await.unwrap();
    assert!(allowed.status().is_success());
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "https://agents.example.com"
    );
    let refused = preflight("https://evil.example").await.unwrap();
    assert!(refused
        .headers()
        .get("access-control-allow-origin")
        .is_none());

    let post = |origin: &'static str| {
        app.client
            .post(&url)
            .header("origin", origin)
            .bearer_auth(app.token("frontline"))
            .json(&json!({ "query": "{ me { handle } }" }))
            .send()
    };
    let response = post("https://agents.example.com").await.unwrap();
    assert_eq!(
        response.headers()["access-control-allow-origin"],
        "https://agents.example.com"
    );
    assert!(response.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .contains("x-request-id"));
    let response = post("https://evil.example").await.unwrap();
    assert!(response
        .headers()
        .get("access-control-allow-origin")
        .is_none());
    let (status, _) = app
        .query_as("frontline", "{ me { handle } }", json!({}))
        .await;
    assert_eq!(status, 200, "requests without an Origin are not affected");
    let own = app.address.clone();
    let response = app
        .client
        .post(&url)
        .header("origin", own.as_str())
        .bearer_auth(app.token("frontline"))
        .json(&json!({ "query": "{ me { handle } }" }))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status().as_u16(),
        200,
        "GraphiQL posts from the service's own origin in dev mode"
    );
    assert_eq!(
        response.headers()["access-control-allow-origin"],
        own.as_str()
    );
}
