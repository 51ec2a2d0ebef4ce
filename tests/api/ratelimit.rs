//! Rate limits: per token on every request, per agent on reveals, shared across instances
//! through Redis. Limits are GCRA: a burst of the limit, then the rate.

use serde_json::json;

use crate::helpers::{redis_grants, redis_url, spawn_app_with, spawn_with, Backend};

/// Requests above the per-token rate get HTTP 429, RATE_LIMITED and Retry-After; other
/// tokens are unaffected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_token_is_limited_on_its_own() {
    let app = spawn_app_with(Backend::Sqlite, |s| s.requests_per_minute = 3).await;
    let mut limited = None;
    for _ in 0..4 {
        let response = app
            .client
            .post(format!("{}/graphql", app.address))
            .bearer_auth(app.token("frontline"))
            .json(&json!({ "query": "{ me { handle } }" }))
            .send()
            .await
            .unwrap();
        if response.status().as_u16() == 429 {
            limited = Some(response);
            break;
        }
    }
    let response = limited.expect("the fourth request in a burst of three is limited");
    let retry: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    // The next one is let through a third of a minute later.
    assert!((1..=20).contains(&retry), "{retry}");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["errors"][0]["extensions"]["code"], "RATE_LIMITED");
    let (status, _) = app
        .query_as("billing", "{ me { handle } }", json!({}))
        .await;
    assert_eq!(status, 200);
}

/// requestReveal has its own, lower, per-agent rate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reveal_requests_are_limited_per_agent() {
    let app = spawn_app_with(Backend::Sqlite, |s| s.reveals_per_hour = 2).await;
    let ticket = app.ticket_id("Cannot reset my password").await;
    let query = "mutation($t: ID!) { requestReveal(ticketId: $t, fields: [\"email\"], reason: \"customer asked to confirm the email\") { grants { id } } }";
    let mut codes = Vec::new();
    for _ in 0..5 {
        let (_, body) = app
            .query_as("frontline", query, json!({ "t": ticket }))
            .await;
        codes.push(
            body["errors"][0]["extensions"]["code"]
                .as_str()
                .unwrap_or("OK")
                .to_owned(),
        );
        if let Some(retry) = body["errors"][0]["extensions"]["retryAfterSeconds"].as_u64() {
            assert!((1..=3600).contains(&retry));
        }
    }
    assert_eq!(&codes[..2], ["OK", "OK"]);
    assert!(codes.contains(&"RATE_LIMITED".to_owned()), "{codes:?}");
}

/// Two instances sharing Redis share the per-token count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_the_count_through_redis() {
    let (mut settings, dir, pg) = crate::helpers::fresh_settings(Backend::Sqlite).await;
    settings.requests_per_minute = 4;
    settings.grants = redis_grants(&redis_url());
    let first = spawn_with(settings.clone(), tempfile::tempdir().unwrap(), pg.clone()).await;
    let second = spawn_with(settings, dir, pg).await;
    let mut statuses = Vec::new();
    for i in 0..10 {
        let app = if i % 2 == 0 { &first } else { &second };
        let (status, _) = app
            .query_as("frontline", "{ me { handle } }", json!({}))
            .await;
        statuses.push(status);
        if status == 429 {
            break;
        }
    }
    assert_eq!(statuses.last(), Some(&429), "{statuses:?}");
    assert!(
        statuses.len() <= 9,
        "the two instances counted together: {statuses:?}"
    );
}
