//! Authentication: API tokens, `me`, and every way a token can be wrong.

use serde_json::json;

use crate::helpers::{assert_no_errors, error_code};
use crate::on_both_databases;

on_both_databases! {
    /// `me` answers who the token belongs to.
    async fn me_returns_the_calling_agent(app) {
        let (status, body) = app.query_as("billing", "{ me { handle role team queues } }", json!({})).await;
        assert_eq!(status, 200);
        assert_no_errors(&body);
        assert_eq!(
            body["data"]["me"],
            json!({ "handle": "billing", "role": "billing", "team": "support", "queues": ["billing"] })
        );
    }
}

on_both_databases! {
    /// Missing, malformed and unknown tokens all get 401 with the same code and message.
    async fn requests_without_a_valid_token_get_401_unauthenticated(app) {
        let query = json!({ "query": "{ me { handle } }" });
        let unknown = format!("ntk_{}", "A".repeat(43));
        let cases: Vec<Option<String>> = vec![
            None,
            Some("not-a-token".into()),
            Some("ntk_short".into()),
            Some(unknown),
        ];
        let mut messages = Vec::new();
        for token in cases {
            let (status, body) = app.post_graphql(token.as_deref(), &query).await;
            assert_eq!(status, 401, "token {token:?}");
            assert_eq!(error_code(&body), "UNAUTHENTICATED");
            assert!(body.get("data").is_none());
            messages.push(body["errors"][0]["message"].clone());
        }
        messages.dedup();
        assert_eq!(messages.len(), 1, "the reason is logged, never told: {messages:?}");

        let response = app
            .client
            .post(format!("{}/graphql", app.address))
            .header("authorization", "Basic dXNlcjpwYXNz")
            .json(&query)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 401);
        assert_eq!(response.headers()["www-authenticate"], "Bearer");
    }
}

on_both_databases! {
    /// Disabling an agent revokes all of its tokens at once, while other agents carry on.
    async fn disabling_an_agent_revokes_all_of_its_tokens(app) {
        let db = needtoknow::db::connect(&app.settings).await.unwrap();
        let second = needtoknow::agents::issue_token(&needtoknow::writer::Writer::new(db.clone()), &needtoknow::audit::Actor::system("test", "test"), "frontline").await.unwrap();
        let query = json!({ "query": "{ me { handle } }" });
        for token in [app.token("frontline").to_owned(), second.clone()] {
            let (status, _) = app.post_graphql(Some(&token), &query).await;
            assert_eq!(status, 200);
        }

        needtoknow::agents::disable(&needtoknow::writer::Writer::new(db.clone()), &needtoknow::audit::Actor::system("test", "test"), "frontline").await.unwrap();

        // Disabled behind the service's back (no announcement): refused once the
        // service's remembered credentials age out, within a second.
        for token in [app.token("frontline").to_owned(), second] {
            crate::helpers::eventually("the disabled agent's token is refused", || async {
                app.post_graphql(Some(&token), &query).await.0 == 401
            })
            .await;
            let (status, body) = app.post_graphql(Some(&token), &query).await;
            assert_eq!(status, 401);
            assert_eq!(error_code(&body), "UNAUTHENTICATED");
        }
        let (status, _) = app.post_graphql(Some(app.token("frontline2")), &query).await;
        assert_eq!(status, 200);
        assert!(
            needtoknow::agents::issue_token(&needtoknow::writer::Writer::new(db.clone()), &needtoknow::audit::Actor::system("test", "test"), "frontline").await.is_err(),
            "a disabled agent gets no new tokens"
        );
    }
}

on_both_databases! {
    /// Each response carries a request id header, fresh per request.
    async fn every_response_carries_a_request_id(app) {
        let mut ids = Vec::new();
        for _ in 0..2 {
            let response = app
                .client
                .post(format!("{}/graphql", app.address))
                .json(&json!({ "query": "{ me { handle } }" }))
                .send()
                .await
                .unwrap();
            let id = response.headers()["x-request-id"].to_str().unwrap().to_owned();
            assert_eq!(id.len(), 32);
            ids.push(id);
        }
        assert_ne!(ids[0], ids[1]);
    }
}
