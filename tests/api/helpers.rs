//! `spawn_app` and request helpers shared by the API tests.

use std::collections::BTreeMap;
use std::time::Duration;

use needtoknow::config::{DatabaseSettings, Secret, Settings};
use needtoknow::startup::Application;
use serde_json::{json, Value};

/// Which database a test runs against.
#[derive(Clone, Copy, Debug)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The PostgreSQL server tests create their databases on.
pub fn postgres_admin_url() -> String {
    std::env::var("NEEDTOKNOW_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_owned())
}

/// A running application and what tests need to talk to it.
pub struct TestApp {
    pub address: String,
    pub tokens: BTreeMap<String, String>,
    pub client: reqwest::Client,
    pub settings: Settings,
    /// The last audit event's sequence number once the app started: the demo is seeded
    /// through the write side, so what a test did comes after it.
    pub audit_start: i64,
    _data_dir: tempfile::TempDir,
}

/// Creates an empty PostgreSQL database for one test and returns its name.
pub async fn create_pg_database() -> String {
    use sea_orm::{ConnectionTrait, Database};
    let name = crate::common::pg_database_name();
    let admin = Database::connect(format!("{}/postgres", postgres_admin_url()))
        .await
        .expect("PostgreSQL must be reachable for the tests (scripts/test starts it)");
    admin
        .execute_unprepared(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create test database");
    admin.close().await.ok();
    name
}

/// Settings for a fresh database of `backend` in a fresh data directory.
pub async fn fresh_settings(backend: Backend) -> (Settings, tempfile::TempDir, Option<String>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let (database, pg) = match backend {
        Backend::Sqlite => (
            DatabaseSettings::Sqlite {
                path: dir.path().join("needtoknow.sqlite"),
            },
            None,
        ),
        Backend::Postgres => {
            let name = create_pg_database().await;
            (
                DatabaseSettings::Postgres {
                    url: Secret::new(format!("{}/{name}", postgres_admin_url())),
                },
                Some(name),
            )
        }
    };
    let mut settings = Settings::for_data_dir(dir.path(), database);
    settings.demo = true;
    settings.database_timeout = Duration::from_secs(2);
    (settings, dir, pg)
}

/// A fresh database with every migration applied, connected as the CLI connects, for
/// tests of the storage below the service. Its data directory lives as long as it does.
pub struct MigratedDatabase {
    /// The connection.
    pub db: sea_orm::DatabaseConnection,
    /// Its settings, for a second connection.
    pub settings: Settings,
    _dir: tempfile::TempDir,
}

/// A fresh [`MigratedDatabase`] of `backend`.
pub async fn migrated_database(backend: Backend) -> MigratedDatabase {
    use migration::{Migrator, MigratorTrait};
    let (settings, dir, _pg) = fresh_settings(backend).await;
    let db = needtoknow::db::connect(&settings).await.unwrap();
    Migrator::up(&db, None).await.unwrap();
    MigratedDatabase {
        db,
        settings,
        _dir: dir,
    }
}

/// Starts the application with the demo data on a fresh database.
pub async fn spawn_app(backend: Backend) -> TestApp {
    let (settings, dir, pg) = fresh_settings(backend).await;
    spawn_with(settings, dir, pg).await
}

/// Runs the `needtoknow` binary with `env` (and no `DATABASE_URL` or master key inherited
/// from the test's own environment) and returns what it printed; a failure fails the test
/// with its error output.
pub fn run_cli<V: AsRef<std::ffi::OsStr>>(env: &[(&str, V)], args: &[&str]) -> String {
    let output = crate::common::binary()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .args(args)
        .output()
        .expect("the binary runs");
    assert!(
        output.status.success(),
        "needtoknow {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The Redis tests share, each app with its own key prefix.
pub fn redis_url() -> String {
    std::env::var("NEEDTOKNOW_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// Starts the application with the demo data, after `adjust` changed the settings.
pub async fn spawn_app_with(backend: Backend, adjust: impl FnOnce(&mut Settings)) -> TestApp {
    let (mut settings, dir, pg) = fresh_settings(backend).await;
    adjust(&mut settings);
    spawn_with(settings, dir, pg).await
}

/// Grant-store settings for a shared Redis with a fresh prefix.
pub fn redis_grants(url: &str) -> needtoknow::config::GrantStoreSettings {
    needtoknow::config::GrantStoreSettings::Redis {
        url: Secret::new(url.to_owned()),
        prefix: format!("ntk-test-{}", uuid::Uuid::new_v4().simple()),
        timeout: Duration::from_millis(300),
    }
}

/// Starts the application with the given settings.
pub async fn spawn_with(
    settings: Settings,
    dir: tempfile::TempDir,
    _pg: Option<String>,
) -> TestApp {
    crate::common::init_test_log();
    let app = Application::build(settings.clone())
        .await
        .expect("application builds");
    let address = format!("http://127.0.0.1:{}", app.port());
    let tokens = app.demo_tokens().clone();
    tokio::spawn(app.run_until_stopped());
    let audit_start = {
        use sea_orm::{EntityTrait, QueryOrder};
        let db = needtoknow::db::connect(&settings).await.unwrap();
        let last = entity::audit_event::Entity::find()
            .order_by_desc(entity::audit_event::Column::Seq)
            .one(&db)
            .await
            .unwrap()
            .map_or(0, |e| i64::from(e.seq));
        db.close().await.ok();
        last
    };
    TestApp {
        audit_start,
        address,
        tokens,
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            // actix closes a keep-alive connection idle for 5 s; a request sent on it just
            // then fails (`IncompleteMessage`, seen once on a loaded machine). Connections
            // idle for 2 s are not reused.
            .pool_idle_timeout(Duration::from_secs(2))
            .build()
            .expect("client"),
        settings,
        _data_dir: dir,
    }
}

impl TestApp {
    /// The demo token of `handle`.
    pub fn token(&self, handle: &str) -> &str {
        self.tokens
            .get(handle)
            .unwrap_or_else(|| panic!("no demo token for {handle}"))
    }

    /// POSTs a GraphQL query as `handle`; returns status and JSON body.
    pub async fn query_as(&self, handle: &str, query: &str, variables: Value) -> (u16, Value) {
        let token = self.token(handle).to_owned();
        self.post_graphql(
            Some(&token),
            &json!({ "query": query, "variables": variables }),
        )
        .await
    }

    /// POSTs `query` as `token` with an `Idempotency-Key`; returns the status, whether the
    /// answer is a replay, and the body.
    pub async fn deliver(
        &self,
        token: &str,
        key: &str,
        query: &str,
        variables: Value,
    ) -> (u16, bool, Value) {
        let response = self
            .client
            .post(format!("{}/graphql", self.address))
            .bearer_auth(token)
            .header("Idempotency-Key", key)
            .json(&json!({ "query": query, "variables": variables }))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let replayed = response.headers().get("idempotent-replayed").is_some();
        (status, replayed, response.json().await.unwrap())
    }

    /// The rows of `table`, counted in the database itself.
    pub async fn rows(&self, table: &str) -> i64 {
        use sea_orm::ConnectionTrait;
        let db = needtoknow::db::connect(&self.settings).await.unwrap();
        let row = db
            .query_one_raw(sea_orm::Statement::from_string(
                db.get_database_backend(),
                format!("SELECT COUNT(*) AS n FROM {table}"),
            ))
            .await
            .unwrap()
            .unwrap();
        let n: i64 = row.try_get("", "n").unwrap();
        db.close().await.ok();
        n
    }

    /// The body of `GET /readyz`.
    pub async fn readiness(&self) -> Value {
        self.client
            .get(format!("{}/readyz", self.address))
            .send()
            .await
            .expect("request sent")
            .json()
            .await
            .expect("JSON body")
    }

    /// POSTs a JSON body to /graphql with an optional token.
    pub async fn post_graphql(&self, token: Option<&str>, body: &Value) -> (u16, Value) {
        let mut request = self
            .client
            .post(format!("{}/graphql", self.address))
            .json(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("request sent");
        let status = response.status().as_u16();
        let body = response.json().await.expect("JSON body");
        (status, body)
    }

    /// The ids of the tickets `handle` sees in `tickets`, in order.
    pub async fn visible_ticket_subjects(&self, handle: &str) -> Vec<String> {
        let (_, body) = self
            .query_as(
                handle,
                "{ tickets(first: 100) { edges { node { subject } } } }",
                json!({}),
            )
            .await;
        assert_no_errors(&body);
        body["data"]["tickets"]["edges"]
            .as_array()
            .expect("edges")
            .iter()
            .map(|e| e["node"]["subject"].as_str().expect("subject").to_owned())
            .collect()
    }

    /// Creates an agent (team `support`, no queues) and returns its token.
    pub async fn create_agent(&self, handle: &str, role: &str) -> String {
        self.create_agent_in(handle, role, "support", &[]).await
    }

    /// Creates an agent of `team` with `queues` and returns its token.
    pub async fn create_agent_in(
        &self,
        handle: &str,
        role: &str,
        team: &str,
        queues: &[&str],
    ) -> String {
        let db = needtoknow::db::connect(&self.settings).await.unwrap();
        let policy = needtoknow::policy::Policy::load(&self.settings.policy_dir).unwrap();
        let (_, token) = needtoknow::agents::create(
            &needtoknow::writer::Writer::new(db.clone()),
            policy.current().vocabulary(),
            &needtoknow::audit::Actor::system("test", "test"),
            needtoknow::agents::NewAgent {
                handle: handle.into(),
                display_name: handle.into(),
                role: role.into(),
                team: team.into(),
                queues: queues.iter().map(|q| q.to_string()).collect(),
                service: role == "intake",
            },
        )
        .await
        .unwrap();
        token
    }

    /// Runs a query as `handle` and fails on errors; returns `data`.
    pub async fn data_as(&self, handle: &str, query: &str, variables: Value) -> Value {
        let (_, body) = self.query_as(handle, query, variables).await;
        assert_no_errors(&body);
        body["data"].clone()
    }

    /// The id of the demo ticket with `subject`, looked up as the supervisor (who sees all).
    pub async fn ticket_id(&self, subject: &str) -> String {
        let (_, body) = self
            .query_as(
                "supervisor",
                "{ tickets(first: 100) { edges { node { id subject } } } }",
                json!({}),
            )
            .await;
        body["data"]["tickets"]["edges"]
            .as_array()
            .expect("edges")
            .iter()
            .find(|e| e["node"]["subject"] == subject)
            .and_then(|e| e["node"]["id"].as_str())
            .unwrap_or_else(|| panic!("no demo ticket {subject:?}"))
            .to_owned()
    }
}

/// Waits (bounded: 10 s) until `check` holds.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..100 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting until {what}");
}

/// Fails with the errors when a GraphQL response has any.
pub fn assert_no_errors(body: &Value) {
    assert!(body.get("errors").is_none(), "unexpected errors: {body:#}");
}

/// The `extensions.code` of the first error.
pub fn error_code(body: &Value) -> &str {
    body["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no error code in {body:#}"))
}

/// Declares one async test body run against SQLite and against PostgreSQL, as
/// `<name>::on_sqlite` and `<name>::on_postgres`.
#[macro_export]
macro_rules! on_both_databases {
    ($(#[doc = $doc:expr])* async fn $name:ident($app:ident) $body:block) => {
        $(#[doc = $doc])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            use $crate::helpers::{spawn_app, Backend, TestApp};

            async fn run($app: TestApp) $body

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn on_sqlite() {
                run(spawn_app(Backend::Sqlite).await).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn on_postgres() {
                run(spawn_app(Backend::Postgres).await).await
            }
        }
    };
}

/// Undoes the migrations from the one whose name holds `number` (e.g. `"000016"`) to the
/// last, so a test of one migration's `down` keeps testing it when later ones are added.
pub async fn undo_migrations_from(db: &sea_orm::DatabaseConnection, number: &str) {
    use migration::{Migrator, MigratorTrait};
    let names: Vec<String> = Migrator::migrations()
        .iter()
        .map(|m| m.name().to_owned())
        .collect();
    let at = names
        .iter()
        .position(|name| name.contains(number))
        .unwrap_or_else(|| panic!("no migration {number}"));
    Migrator::down(db, Some((names.len() - at) as u32))
        .await
        .unwrap();
}
