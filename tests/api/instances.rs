//! Two real `needtoknow serve` processes sharing one PostgreSQL database and one Redis
//! behave as one service: a grant made on one is honoured by the other, and a revocation on
//! one takes effect on the other at once.

use std::process::Command;

use serde_json::{json, Value};

use crate::helpers::{
    assert_no_errors, create_pg_database, postgres_admin_url, redis_url, run_cli,
};

struct Instance {
    served: crate::common::Served,
    address: String,
}

impl Instance {
    fn start(env: &[(&str, String)]) -> Instance {
        let mut command = crate::common::binary();
        command.args([
            "serve",
            "--demo",
            "--listen",
            "127.0.0.1:0",
            "--workers",
            "1",
        ]);
        for (key, value) in env {
            command.env(key, value);
        }
        let served = crate::common::serve(&mut command);
        let address = format!("http://{}", served.address);
        Instance { served, address }
    }

    async fn query(&self, token: &str, query: &str, variables: Value) -> Value {
        reqwest::Client::new()
            .post(format!("{}/graphql", self.address))
            .bearer_auth(token)
            .json(&json!({ "query": query, "variables": variables }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.served.child.id().to_string()])
            .status();
        let _ = self.served.wait();
    }
}

const EMAIL: &str = "{ ticket(id: \"1\") { customer { email { access } } } }";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_grants_and_revocations() {
    let data = tempfile::tempdir().unwrap();
    let database = create_pg_database().await;
    let prefix = format!("ntk-test-{}", uuid::Uuid::new_v4().simple());
    let env = vec![
        ("NEEDTOKNOW_DATA_DIR", data.path().display().to_string()),
        (
            "DATABASE_URL",
            format!("{}/{database}", postgres_admin_url()),
        ),
        ("REDIS_URL", redis_url()),
        ("NEEDTOKNOW_REDIS_PREFIX", prefix.clone()),
    ];
    let a = Instance::start(&env);
    let b = Instance::start(&env);
    let tokens: std::collections::BTreeMap<String, String> =
        serde_json::from_slice(&std::fs::read(data.path().join("demo-tokens.json")).unwrap())
            .unwrap();
    let frontline = &tokens["frontline"];
    let me = a.query(frontline, "{ me { id } }", json!({})).await;
    let frontline_id: i32 = me["data"]["me"]["id"].as_str().unwrap().parse().unwrap();

    let granted = a
        .query(frontline, "mutation { requestReveal(ticketId: \"1\", fields: [\"email\"], reason: \"customer asked to confirm their email\") { grants { id } } }", json!({}))
        .await;
    assert_no_errors(&granted);
    let grant = granted["data"]["requestReveal"]["grants"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        b.query(frontline, EMAIL, json!({})).await["data"]["ticket"]["customer"]["email"]["access"],
        "PLAIN"
    );

    let revoked = b
        .query(
            frontline,
            "mutation($id: ID!) { revokeReveal(grantId: $id) { id } }",
            json!({ "id": grant }),
        )
        .await;
    assert_no_errors(&revoked);
    assert_eq!(
        a.query(frontline, EMAIL, json!({})).await["data"]["ticket"]["customer"]["email"]["access"],
        "MASKED"
    );

    // Disabling the agent with the CLI revokes its grants in the shared store too.
    let granted = a
        .query(frontline, "mutation { requestReveal(ticketId: \"1\", fields: [\"phone\"], reason: \"customer asked to confirm their phone\") { grants { id } } }", json!({}))
        .await;
    assert_no_errors(&granted);
    let stdout = run_cli(&env, &["agent", "disable", "frontline"]);
    assert!(stdout.contains("revoked 1 reveal grant(s)"), "{stdout}");
    let audit = b
        .query(&tokens["auditor"], "{ auditEvents(first: 5, filter: { action: REVEAL_REVOKED }) { edges { node { reason } } } }", json!({}))
        .await;
    let reasons: Vec<&str> = audit["data"]["auditEvents"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["node"]["reason"].as_str())
        .collect();
    assert!(reasons.contains(&"agent disabled"), "{audit:#}");
    let store = needtoknow::reveal::store::GrantStore::redis(
        &redis_url(),
        &prefix,
        std::time::Duration::from_secs(2),
    )
    .unwrap();
    assert_eq!(
        store.of_agent(frontline_id).await.unwrap(),
        vec![],
        "no grant left in Redis"
    );
}
