//! Agent administration over GraphQL, for an admin UI: gated by the policy (`manage
//! agents`), checked against the loaded vocabulary, audited, tokens shown once.

use serde_json::{json, Value};

use crate::helpers::{assert_no_errors, error_code};
use crate::on_both_databases;

const CREATE: &str = "mutation($i: CreateAgentInput!) { createAgent(input: $i) { token agent { id handle role team queues active kind } } }";
const LIST: &str = "query($after: String) { agents(first: 3, after: $after) { pageInfo { hasNextPage endCursor } edges { node { handle kind active } } } }";

async fn as_token(
    app: &crate::helpers::TestApp,
    token: &str,
    query: &str,
    variables: Value,
) -> Value {
    let (status, body) = app
        .post_graphql(
            Some(token),
            &json!({ "query": query, "variables": variables }),
        )
        .await;
    assert!(status == 200 || status == 401, "{status} {body}");
    body
}

on_both_databases! {
    /// An admin creates a service account whose token works at once; updates, disables and
    /// re-tokens agents; every step is audited without the token; other roles are refused.
    async fn admins_manage_agents_and_service_accounts(app) {
        let admin = app.create_agent("admin1", "admin").await;
        let body = as_token(&app, &admin, CREATE, json!({ "i": {
            "handle": "email-gateway", "role": "intake", "team": "support", "service": true } })).await;
        assert_no_errors(&body);
        let created = &body["data"]["createAgent"];
        assert_eq!(created["agent"]["kind"], "SERVICE");
        let token = created["token"].as_str().unwrap().to_owned();
        let me = as_token(&app, &token, "{ me { handle role kind } }", json!({})).await;
        assert_eq!(me["data"]["me"], json!({ "handle": "email-gateway", "role": "intake", "kind": "SERVICE" }));

        // The vocabulary of the loaded policy decides.
        let body = as_token(&app, &admin, CREATE, json!({ "i": {
            "handle": "x", "role": "astronaut", "team": "support" } })).await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT");
        assert!(body["errors"][0]["message"].as_str().unwrap().contains("intake"), "names the known roles: {body}");
        let body = as_token(&app, &admin, CREATE, json!({ "i": {
            "handle": "y", "role": "frontline", "team": "support", "queues": ["astrology"] } })).await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT");

        let updated = as_token(&app, &admin, "mutation { updateAgent(handle: \"frontline2\", input: { role: \"billing\", addQueues: [\"billing\"] }) { changes agent { role queues } } }", json!({})).await;
        assert_no_errors(&updated);
        assert_eq!(updated["data"]["updateAgent"]["changes"], json!(["role frontline -> billing", "queues +billing"]));

        let issued = as_token(&app, &admin, "mutation { issueAgentToken(handle: \"email-gateway\") { token } }", json!({})).await;
        let second = issued["data"]["issueAgentToken"]["token"].as_str().unwrap().to_owned();
        assert_ne!(second, token);
        let disabled = as_token(&app, &admin, "mutation { disableAgent(handle: \"email-gateway\") { agent { active } revokedGrants } }", json!({})).await;
        assert_eq!(disabled["data"]["disableAgent"], json!({ "agent": { "active": false }, "revokedGrants": 0 }));
        for t in [&token, &second] {
            let body = as_token(&app, t, "{ me { handle } }", json!({})).await;
            assert_eq!(error_code(&body), "UNAUTHENTICATED");
        }
        let body = as_token(&app, &admin, "mutation { disableAgent(handle: \"admin1\") { revokedGrants } }", json!({})).await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "no admin locks themselves out");

        // Pages of agents, service accounts included.
        let mut handles = Vec::new();
        let mut after = Value::Null;
        loop {
            let page = as_token(&app, &admin, LIST, json!({ "after": after })).await;
            assert_no_errors(&page);
            let agents = &page["data"]["agents"];
            handles.extend(agents["edges"].as_array().unwrap().iter().map(|e| e["node"]["handle"].as_str().unwrap().to_owned()));
            if agents["pageInfo"]["hasNextPage"] != true { break; }
            after = agents["pageInfo"]["endCursor"].clone();
        }
        assert_eq!(handles, ["frontline", "frontline2", "billing", "identity", "supervisor", "auditor", "chat-gateway", "admin1", "email-gateway"]);

        // Only the policy's admins.
        for handle in ["frontline", "supervisor", "auditor", "chat-gateway"] {
            let (_, body) = app.query_as(handle, LIST, json!({})).await;
            assert_eq!(error_code(&body), "FORBIDDEN", "{handle}");
            let (_, body) = app.query_as(handle, CREATE, json!({ "i": { "handle": "z", "role": "admin", "team": "support" } })).await;
            assert_eq!(error_code(&body), "FORBIDDEN", "{handle}");
        }

        let trail = app.data_as("auditor", "{ auditEvents(first: 100) { edges { node { seq action reason } } } }", json!({})).await;
        let mine: Vec<&Value> = trail["auditEvents"]["edges"].as_array().unwrap().iter()
            .map(|e| &e["node"]).filter(|e| e["seq"].as_i64().unwrap() > app.audit_start).collect();
        let actions: Vec<&str> = mine.iter().map(|e| e["action"].as_str().unwrap()).collect();
        for action in ["AGENT_CREATED", "AGENT_UPDATED", "AGENT_TOKEN_ISSUED", "AGENT_DISABLED"] {
            assert!(actions.contains(&action), "{action}: {actions:?}");
        }
        let text = serde_json::to_string(&mine).unwrap();
        assert!(!text.contains(&token) && !text.contains(&second) && !text.contains("ntk_"), "no token in the trail");
    }
}
