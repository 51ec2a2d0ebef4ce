//! Two real `needtoknow serve` processes sharing one PostgreSQL database and one Redis
//! behave as one service: a grant made on one is honoured by the other, and a revocation
//! or a disabled agent on one takes effect on the other as soon as Redis delivers the
//! announcement (each instance remembers tokens and grants for at most 1 s).

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

    /// The HTTP status of `{ me { id } }` with `token`.
    async fn me_status(&self, token: &str) -> u16 {
        reqwest::Client::new()
            .post(format!("{}/graphql", self.address))
            .bearer_auth(token)
            .json(&json!({ "query": "{ me { id } }" }))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
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

/// Two instances of the demo on one fresh PostgreSQL database and one Redis prefix.
struct Pair {
    _data: tempfile::TempDir,
    prefix: String,
    env: Vec<(&'static str, String)>,
    a: Instance,
    b: Instance,
    tokens: std::collections::BTreeMap<String, String>,
}

impl Pair {
    async fn start() -> Pair {
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
        let tokens =
            serde_json::from_slice(&std::fs::read(data.path().join("demo-tokens.json")).unwrap())
                .unwrap();
        Pair {
            _data: data,
            prefix,
            env,
            a,
            b,
            tokens,
        }
    }
}

const EMAIL: &str = "{ ticket(id: \"1\") { customer { email { access } } } }";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_grants_and_revocations() {
    let Pair {
        _data,
        prefix,
        env,
        a,
        b,
        tokens,
    } = Pair::start().await;
    let frontline = &tokens["frontline"];
    let me = a.query(frontline, "{ me { id } }", json!({})).await;
    let frontline_id = crate::common::db_id(me["data"]["me"]["id"].as_str().unwrap());
    // Both instances read the agent's grants (none) and remember them for up to a second.
    for instance in [&a, &b] {
        assert_eq!(email_access(instance, frontline).await, "MASKED");
    }

    let granted = a
        .query(frontline, "mutation { requestReveal(ticketId: \"1\", fields: [\"email\"], reason: \"customer asked to confirm their email\") { grants { id } } }", json!({}))
        .await;
    assert_no_errors(&granted);
    let grant = granted["data"]["requestReveal"]["grants"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let made = std::time::Instant::now();
    assert_eq!(
        email_access(&a, frontline).await,
        "PLAIN",
        "at once where made"
    );
    let seen = email_access_becomes(&b, frontline, "PLAIN").await;

    let revoked = b
        .query(
            frontline,
            "mutation($id: ID!) { revokeReveal(grantId: $id) { id } }",
            json!({ "id": grant }),
        )
        .await;
    assert_no_errors(&revoked);
    let since = std::time::Instant::now();
    assert_eq!(
        email_access(&b, frontline).await,
        "MASKED",
        "at once where revoked"
    );
    let gone = email_access_becomes(&a, frontline, "MASKED").await;
    println!(
        "grant latency, two instances: made on one, revealing on the other after {:.1} ms; revoked on one, masked on the other after {:.1} ms",
        (seen - made).as_secs_f64() * 1e3,
        (gone - since).as_secs_f64() * 1e3
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

/// The access level `instance` shows `token`'s agent for ticket 1's customer's email.
async fn email_access(instance: &Instance, token: &str) -> String {
    let answer = instance.query(token, EMAIL, json!({})).await;
    answer["data"]["ticket"]["customer"]["email"]["access"]
        .as_str()
        .unwrap_or_else(|| panic!("{answer:#}"))
        .to_owned()
}

/// When `instance` first shows `access` for the email, polling every 5 ms; fails after
/// 400 polls (each instance remembers an agent's grants for at most 1 s).
async fn email_access_becomes(
    instance: &Instance,
    token: &str,
    access: &str,
) -> std::time::Instant {
    for _ in 0..400 {
        if email_access(instance, token).await == access {
            return std::time::Instant::now();
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    panic!("the email never became {access}");
}

/// How long after `since` until `token` is refused by every instance, polling every 5 ms
/// (each instance remembers an authenticated token for at most 1 s).
async fn refused_everywhere(
    instances: &[&Instance],
    token: &str,
    since: std::time::Instant,
) -> std::time::Duration {
    for instance in instances {
        let mut polls = 0;
        while instance.me_status(token).await != 401 {
            polls += 1;
            assert!(
                polls < 2_000,
                "the token still works after {:?}",
                since.elapsed()
            );
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }
    since.elapsed()
}

/// A disabled agent's tokens stop working on every instance, whether it was disabled through
/// one instance's API or on the command line: both announce it on Redis pub/sub and every
/// instance forgets its cached credentials (which would otherwise age out within 1 s). The
/// latencies are printed for BENCHMARKS.md; the test asserts the refusals, not the times.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_agent_is_refused_by_every_instance() {
    let Pair {
        _data,
        prefix: _,
        env,
        a,
        b,
        tokens,
    } = Pair::start().await;
    let admin = run_cli(
        &env,
        &[
            "agent", "create", "--handle", "admin1", "--role", "admin", "--team", "support",
        ],
    )
    .trim()
    .to_owned();

    // Through the API of instance a, while both instances have the token in memory.
    let frontline = &tokens["frontline"];
    for instance in [&a, &b] {
        assert_eq!(instance.me_status(frontline).await, 200);
    }
    let started = std::time::Instant::now();
    let disabled = a
        .query(
            &admin,
            "mutation { disableAgent(handle: \"frontline\") { agent { active } } }",
            json!({}),
        )
        .await;
    assert_no_errors(&disabled);
    let announced = refused_everywhere(&[&b, &a], frontline, started).await;

    // Through the command line, another process.
    let billing = &tokens["billing"];
    for instance in [&a, &b] {
        assert_eq!(instance.me_status(billing).await, 200);
    }
    let started = std::time::Instant::now();
    run_cli(&env, &["agent", "disable", "billing"]);
    let command_line = refused_everywhere(&[&a, &b], billing, started).await;
    println!(
        "revocation latency, two instances: disableAgent through the API {:.1} ms; `agent disable` on the command line {:.1} ms (process start included)",
        announced.as_secs_f64() * 1e3,
        command_line.as_secs_f64() * 1e3
    );
}
