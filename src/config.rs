//! Typed settings, read from flags and `NEEDTOKNOW_*` environment variables by [`crate::cli`].
//!
//! Every value is parsed here, at the edge, so a bad setting stops start-up with one line
//! naming it; code past this point never re-checks configuration.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A value that must never be printed (it may embed a password).
#[derive(Clone)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    /// Wraps a secret value.
    pub fn new(value: T) -> Self {
        Secret(value)
    }

    /// The secret itself, for the one place that needs it.
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Where data lives: a SQLite file (the default) or PostgreSQL.
#[derive(Clone, Debug)]
pub enum DatabaseSettings {
    /// The embedded default: a SQLite file, created on first start.
    Sqlite {
        /// The database file.
        path: PathBuf,
    },
    /// A PostgreSQL server named by `DATABASE_URL`.
    Postgres {
        /// The connection URL (may hold a password).
        url: Secret<String>,
    },
}

impl DatabaseSettings {
    /// Chooses the database from an optional `DATABASE_URL` and the data directory.
    pub fn from_url(url: Option<&str>, data_dir: &Path) -> Result<Self, String> {
        match url.map(str::trim).filter(|u| !u.is_empty()) {
            None => Ok(DatabaseSettings::Sqlite {
                path: data_dir.join("needtoknow.sqlite"),
            }),
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                Ok(DatabaseSettings::Postgres {
                    url: Secret::new(url.to_owned()),
                })
            }
            Some(url) if url.starts_with("sqlite:") => {
                let rest = url.trim_start_matches("sqlite:").trim_start_matches("//");
                let path = rest.split('?').next().unwrap_or_default();
                if path.is_empty() {
                    return Err("DATABASE_URL: a sqlite URL needs a file path".into());
                }
                Ok(DatabaseSettings::Sqlite {
                    path: PathBuf::from(path),
                })
            }
            Some(_) => Err(
                "DATABASE_URL: must start with postgres://, postgresql:// or sqlite: (value not shown)"
                    .into(),
            ),
        }
    }

    /// A description safe for logs: the backend and, for SQLite, the file.
    pub fn describe(&self) -> String {
        match self {
            DatabaseSettings::Sqlite { path } => format!("sqlite file {}", path.display()),
            DatabaseSettings::Postgres { .. } => "postgresql (DATABASE_URL)".to_owned(),
        }
    }
}

/// Whether developer conveniences (GraphiQL) are on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// GraphiQL on `GET /graphql`.
    Dev,
    /// No GraphiQL.
    Production,
}

/// Log line format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Everything the service needs to start.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Address to listen on; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Directory of the SQLite file and demo tokens.
    pub data_dir: PathBuf,
    /// The database.
    pub database: DatabaseSettings,
    /// Directory of the `*.polar` policy files.
    pub policy_dir: PathBuf,
    /// Dev (GraphiQL) or production.
    pub mode: Mode,
    /// Seed the demo dataset and write demo tokens.
    pub demo: bool,
    /// Largest accepted request body, in bytes.
    pub max_body_bytes: usize,
    /// How long to wait for the database before giving up on a connection.
    pub database_timeout: Duration,
    /// HTTP worker threads; 0 means one per core.
    pub workers: usize,
    /// How often to look for policy changes; `None` turns the watch off (SIGHUP still works).
    pub policy_watch: Option<Duration>,
    /// How long an authenticated token is remembered (at most 1 s, so a revoked token or a
    /// disabled agent stops working on every instance within a second; zero: never).
    pub token_cache: Duration,
    /// Where reveal grants live.
    pub grants: GrantStoreSettings,
    /// The longest a reveal grant may last, whatever the policy says.
    pub max_grant: Duration,
    /// Whether customer access reports name the agents (otherwise only their roles).
    pub report_agent_identities: bool,
    /// `NEEDTOKNOW_MASTER_KEY`, if set (takes precedence over the key file).
    pub master_key: Option<Secret<String>>,
    /// The master key file (default `<data dir>/master-keys.json`).
    pub master_key_file: PathBuf,
    /// The erasure ledger (default: `erasure-ledger.jsonl` next to the master key file).
    /// It must live outside whatever database backups capture.
    pub erasure_ledger: Option<PathBuf>,
    /// How long data is kept after tickets are resolved.
    pub retention: crate::retention::RetentionPolicy,
    /// How often the sweeper runs inside the service; `None`: only on demand.
    pub retention_interval: Option<Duration>,
    /// Limits on one GraphQL request.
    pub limits: crate::limits::QueryLimits,
    /// Whether introspection and field suggestions are on (default: in dev mode only).
    pub introspection: bool,
    /// Browser origins of agent UIs allowed to call the API cross-origin (none by default).
    pub cors_origins: Vec<String>,
    /// Requests per token per minute.
    pub requests_per_minute: u64,
    /// How long a mutation's `Idempotency-Key` and its recorded results are kept.
    pub idempotency_ttl: Duration,
    /// After how long a claim still `running` belongs to a request that died.
    pub idempotency_abandon: Duration,
    /// Largest document `attachDocument` accepts, in bytes (a multipart request may be this
    /// much larger than `max_body_bytes`).
    pub max_document_bytes: usize,
    /// `requestReveal` calls per agent per hour.
    pub reveals_per_hour: u64,
    /// `verifyCustomerIdentity` calls per agent and ticket per hour.
    pub identity_checks_per_hour: u64,
    /// SSO tokens (JWTs) from the identity provider, when an issuer is configured.
    pub sso: Option<SsoSettings>,
    /// The operation allow-list file; when set, only its operations run.
    pub allowed_operations: Option<PathBuf>,
}

/// Where reveal grants live.
#[derive(Clone, Debug)]
pub enum GrantStoreSettings {
    /// In process memory: the embedded default, one instance only.
    Memory,
    /// Redis, shared by every instance.
    Redis {
        /// `redis://…` (may hold a password).
        url: Secret<String>,
        /// Prefix of every key, so several deployments (or tests) can share one Redis.
        prefix: String,
        /// Bound on every Redis call.
        timeout: Duration,
    },
}

impl Settings {
    /// The erasure ledger's file: as configured, or next to the master key file.
    pub fn erasure_ledger_path(&self) -> PathBuf {
        self.erasure_ledger.clone().unwrap_or_else(|| {
            self.master_key_file
                .parent()
                .unwrap_or(Path::new("."))
                .join("erasure-ledger.jsonl")
        })
    }

    /// Settings for tests and tools: an ephemeral port, the given data directory and database.
    pub fn for_data_dir(data_dir: &Path, database: DatabaseSettings) -> Settings {
        Settings {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir: data_dir.to_owned(),
            database,
            policy_dir: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("policies"),
            mode: Mode::Dev,
            demo: false,
            max_body_bytes: 64 * 1024,
            database_timeout: Duration::from_secs(5),
            workers: 2,
            policy_watch: Some(Duration::from_secs(1)),
            token_cache: Duration::from_secs(1),
            grants: GrantStoreSettings::Memory,
            max_grant: Duration::from_secs(3600),
            report_agent_identities: false,
            master_key: None,
            master_key_file: data_dir.join("master-keys.json"),
            erasure_ledger: None,
            retention: crate::retention::RetentionPolicy::default(),
            retention_interval: None,
            limits: crate::limits::QueryLimits::default(),
            introspection: true,
            cors_origins: Vec::new(),
            requests_per_minute: 600,
            idempotency_ttl: Duration::from_secs(86_400),
            idempotency_abandon: Duration::from_secs(60),
            max_document_bytes: 10 * 1024 * 1024,
            reveals_per_hour: 30,
            identity_checks_per_hour: 5,
            sso: None,
            allowed_operations: None,
        }
    }
}

/// Where the identity provider's public keys come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JwksSource {
    /// A JWKS document on disk (re-read every refresh interval).
    File(PathBuf),
    /// A JWKS URL, fetched at start, every refresh interval, and when a token names an
    /// unknown key id (at most once every 30 s).
    Url(String),
}

/// How SSO tokens are checked. Present only when an issuer is configured.
#[derive(Clone, Debug)]
pub struct SsoSettings {
    /// Required `iss`.
    pub issuer: String,
    /// Required `aud` (one of the token's audiences).
    pub audience: String,
    /// The claim holding the agent's handle.
    pub handle_claim: String,
    /// Public keys for RS256, ES256 and EdDSA.
    pub jwks: Option<JwksSource>,
    /// The shared secret for HS256 (at least 32 bytes).
    pub hs256_secret: Option<Secret<String>>,
    /// Clock skew tolerated on `exp` and `nbf`.
    pub leeway: Duration,
    /// How often the JWKS is re-read.
    pub jwks_refresh: Duration,
}
