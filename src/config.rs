//! Typed settings, layered with [figment] the way zero2prod layers its own: the built-in
//! defaults ([`RawSettings::default`], the one place they are declared), then an optional
//! TOML file (`--config FILE` / `NEEDTOKNOW_CONFIG`), then environment variables, then flags.
//!
//! [`crate::cli`] reads the environment variables and flags with clap, so `--help` lists
//! every flag with its variable and values parse exactly as they always did; it hands them
//! over as [`Overrides`], one figment layer each. [`Configuration::load`] stacks the layers
//! and [`Configuration::serve_settings`] checks every value here, at the edge, so a bad
//! setting stops start-up with one line naming it as the operator wrote it (`max_depth in
//! /etc/needtoknow.toml`, `NEEDTOKNOW_MAX_DEPTH` or `--max-depth`); code past this point
//! never re-checks configuration. Secrets stay in [`Secret`] from the moment they are read.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::providers::{Format, Toml};
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// What a secret looks like wherever settings are shown.
pub const REDACTED: &str = "[redacted]";

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
        f.write_str(REDACTED)
    }
}

/// Serializes as `[redacted]`: settings are serialized only to be shown
/// (`needtoknow config`), and a secret must not be shown.
impl<T> Serialize for Secret<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(REDACTED)
    }
}

/// Reads the value itself; when it does not fit, the error says so without the value (serde's
/// own messages quote what they found, and a mistyped secret is still a secret).
impl<'de, T: Deserialize<'de>> Deserialize<'de> for Secret<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        T::deserialize(deserializer).map(Secret).map_err(|_| {
            serde::de::Error::custom("not a valid value (the value is secret, so not shown)")
        })
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
    /// Chooses the database from an optional `DATABASE_URL` and the data directory. The
    /// error names neither the setting (the caller knows where the value came from) nor the
    /// value (it may hold a password).
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
                    return Err("a sqlite URL needs a file path".into());
                }
                Ok(DatabaseSettings::Sqlite {
                    path: PathBuf::from(path),
                })
            }
            Some(_) => Err(
                "must start with postgres://, postgresql:// or sqlite: (value not shown)".into(),
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
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// GraphiQL on `GET /graphql`.
    Dev,
    /// No GraphiQL.
    Production,
}

impl Mode {
    /// Whether introspection is on when no setting says: in dev mode only.
    fn introspects(self) -> bool {
        self == Mode::Dev
    }
}

/// Log line format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
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
    /// How long an agent's reveal grants read from Redis are remembered (at most 1 s, so a
    /// revoked grant stops revealing on every instance within a second; zero: never).
    pub grant_cache: Duration,
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
            grant_cache: Duration::from_secs(1),
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

/// Every setting as operators write it, before it is checked: one field per setting, named
/// like its file key and its flag (`max_depth`, `--max-depth`). The environment variable is
/// the key upper-cased after `NEEDTOKNOW_` (`NEEDTOKNOW_MAX_DEPTH`), except `DATABASE_URL`
/// and `REDIS_URL`, which keep the names every tool knows. Keys are flat, not grouped in
/// tables, so a setting has one name in all three places.
///
/// [`RawSettings::default`] holds the built-in defaults, the one place they are declared
/// (`--help` and `needtoknow config` show them from here). Unknown keys are refused, so a
/// misspelt key in the file stops start-up instead of being ignored.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSettings {
    /// Directory for the SQLite file, demo tokens and dev keys.
    pub data_dir: PathBuf,
    /// `postgres://…` or `sqlite:…`; none: the SQLite file in the data directory.
    pub database_url: Option<Secret<String>>,
    /// Directory of the `*.polar` policy files.
    pub policy_dir: PathBuf,
    /// Log line format.
    pub log_format: LogFormat,
    /// Log filter, e.g. `needtoknow=debug,info`.
    pub log: String,
    /// Redis for reveal grants; none: in process, one instance only.
    pub redis_url: Option<Secret<String>>,
    /// Prefix of every Redis key.
    pub redis_prefix: String,
    /// Bound on each Redis call, in milliseconds.
    pub redis_timeout_ms: u64,
    /// The longest a reveal grant may last, in seconds.
    pub max_grant_secs: u64,
    /// Name agents (not only roles) in customer access reports.
    pub report_agent_identities: bool,
    /// Master key versions, `N:BASE64,…`; overrides the key file.
    pub master_key: Option<Secret<String>>,
    /// The master key file; none: `<data dir>/master-keys.json`.
    pub master_key_file: Option<PathBuf>,
    /// The erasure ledger; none: next to the master key file.
    pub erasure_ledger: Option<PathBuf>,
    /// Retention periods, `name=period` entries separated by commas, over the defaults.
    pub retention: String,
    /// Seconds to wait for the database when connecting.
    pub database_timeout_secs: u64,
    /// Address `serve` listens on.
    pub listen: SocketAddr,
    /// Dev (GraphiQL) or production.
    pub mode: Mode,
    /// Largest accepted request body, in bytes.
    pub max_body_bytes: u64,
    /// HTTP worker threads; 0: one per core.
    pub workers: usize,
    /// Largest GraphQL query document, in bytes.
    pub max_query_bytes: usize,
    /// Most aliases in one query.
    pub max_aliases: usize,
    /// Most root fields in one operation.
    pub max_root_fields: usize,
    /// Deepest selection nesting.
    pub max_depth: usize,
    /// Highest query complexity.
    pub max_complexity: usize,
    /// Most directives on one field.
    pub max_directives: usize,
    /// Deepest recursion.
    pub max_recursion: u64,
    /// Largest page of `tickets`.
    pub max_page_size: i32,
    /// Introspection and field suggestions; none: on in dev mode only.
    pub introspection: Option<bool>,
    /// Agent-UI origins allowed to call the API from a browser.
    pub cors_origins: Vec<String>,
    /// How long a mutation's `Idempotency-Key` is remembered, in seconds.
    pub idempotency_ttl_secs: u64,
    /// After how many seconds a held `Idempotency-Key` counts as abandoned.
    pub idempotency_abandon_secs: u64,
    /// Largest uploaded document, in bytes.
    pub max_document_bytes: u64,
    /// Requests per API token per minute.
    pub requests_per_minute: u64,
    /// `requestReveal` calls per agent per hour.
    pub reveals_per_hour: u64,
    /// `verifyCustomerIdentity` calls per agent and ticket per hour.
    pub identity_checks_per_hour: u64,
    /// SSO: the identity provider's issuer; setting it turns SSO tokens on.
    pub sso_issuer: Option<String>,
    /// SSO: the audience tokens must be issued for.
    pub sso_audience: Option<String>,
    /// SSO: the claim holding the agent's handle.
    pub sso_handle_claim: String,
    /// SSO: a JWKS file with the provider's public keys.
    pub sso_jwks_file: Option<PathBuf>,
    /// SSO: the provider's JWKS URL.
    pub sso_jwks_url: Option<String>,
    /// SSO: an HS256 shared secret (at least 32 bytes).
    pub sso_hs256_secret: Option<Secret<String>>,
    /// SSO: clock skew tolerated on `exp` and `nbf`, in seconds.
    pub sso_leeway_secs: u64,
    /// SSO: seconds between re-reads of the JWKS.
    pub sso_jwks_refresh_secs: u64,
    /// Operation allow-list; when set, only its operations run.
    pub allowed_operations: Option<PathBuf>,
    /// Seconds between retention sweeps inside the service; 0: only `retention sweep`.
    pub retention_interval_secs: u64,
    /// Milliseconds between checks of the policy directory; 0: off.
    pub policy_watch_ms: u64,
    /// Milliseconds an authenticated token is remembered; 0: off.
    pub token_cache_ms: u64,
    /// Milliseconds an agent's grants read from Redis are remembered; 0: off.
    pub grant_cache_ms: u64,
}

impl Default for RawSettings {
    fn default() -> Self {
        // The query limits keep their defaults where the limits are defined.
        let limits = crate::limits::QueryLimits::default();
        RawSettings {
            data_dir: PathBuf::from("./data"),
            database_url: None,
            policy_dir: PathBuf::from("./policies"),
            log_format: LogFormat::Text,
            log: "info".to_owned(),
            redis_url: None,
            redis_prefix: "needtoknow".to_owned(),
            redis_timeout_ms: 250,
            max_grant_secs: 3600,
            report_agent_identities: false,
            master_key: None,
            master_key_file: None,
            erasure_ledger: None,
            retention: String::new(),
            database_timeout_secs: 5,
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            mode: Mode::Production,
            max_body_bytes: 64 * 1024,
            workers: 0,
            max_query_bytes: limits.document_bytes,
            max_aliases: limits.aliases,
            max_root_fields: limits.root_fields,
            max_depth: limits.depth,
            max_complexity: limits.complexity,
            max_directives: limits.directives,
            max_recursion: limits.recursion as u64,
            max_page_size: limits.page_size,
            introspection: None,
            cors_origins: Vec::new(),
            idempotency_ttl_secs: 86_400,
            idempotency_abandon_secs: 60,
            max_document_bytes: 10 * 1024 * 1024,
            requests_per_minute: 600,
            reveals_per_hour: 30,
            identity_checks_per_hour: 5,
            sso_issuer: None,
            sso_audience: None,
            sso_handle_claim: "preferred_username".to_owned(),
            sso_jwks_file: None,
            sso_jwks_url: None,
            sso_hs256_secret: None,
            sso_leeway_secs: 30,
            sso_jwks_refresh_secs: 600,
            allowed_operations: None,
            retention_interval_secs: 3600,
            policy_watch_ms: 1000,
            token_cache_ms: 1000,
            grant_cache_ms: 1000,
        }
    }
}

impl RawSettings {
    /// The built-in defaults as text, by key, for `--help`; settings without a default
    /// (or with an empty one) are left out, their help says what happens instead.
    pub fn defaults_as_text() -> BTreeMap<String, String> {
        let Ok(toml::Value::Table(table)) = toml::Value::try_from(RawSettings::default()) else {
            return BTreeMap::new();
        };
        table
            .into_iter()
            .filter_map(|(key, value)| {
                let text = match value {
                    toml::Value::String(text) => text,
                    toml::Value::Array(items) if items.is_empty() => String::new(),
                    other => other.to_string(),
                };
                (!text.is_empty()).then_some((key, text))
            })
            .collect()
    }
}

/// How a setting is spelt outside the file, for messages that name it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Spelling {
    /// The flag, e.g. `--max-depth`.
    pub flag: String,
    /// The environment variable, e.g. `NEEDTOKNOW_MAX_DEPTH`.
    pub env: Option<String>,
}

/// The two layers above the file, as clap read them: values from environment variables and
/// values from flags, each keyed like the file. (No `Debug`: the values include secrets.)
#[derive(Clone, Default)]
pub struct Overrides {
    /// Values read from environment variables.
    pub environment: Dict,
    /// Values given as flags.
    pub flags: Dict,
    /// How each setting is spelt as a flag and an environment variable, by key.
    pub spellings: BTreeMap<String, Spelling>,
}

/// Where a setting's value came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// The built-in default.
    Default,
    /// The config file.
    File(PathBuf),
    /// An environment variable, by name.
    Environment(String),
    /// A flag, e.g. `--max-depth`.
    Flag(String),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Default => f.write_str("default"),
            Origin::File(path) => write!(f, "{}", path.display()),
            Origin::Environment(name) | Origin::Flag(name) => f.write_str(name),
        }
    }
}

/// The names of the layers figment knows besides the file; [`Configuration::origin`] reads
/// them back from a value's metadata.
const DEFAULTS_LAYER: &str = "built-in defaults";
const ENVIRONMENT_LAYER: &str = "environment variables";
const FLAGS_LAYER: &str = "command-line flags";

/// One layer of values that did not come from a file.
struct Layer {
    name: &'static str,
    values: Dict,
}

impl Provider for Layer {
    fn metadata(&self) -> Metadata {
        Metadata::named(self.name)
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        Ok(Profile::Default.collect(self.values.clone()))
    }
}

/// The layered settings: what figment merged, and the values it extracted. Checked further,
/// into [`Settings`], by [`Configuration::global_settings`] and
/// [`Configuration::serve_settings`]. (No `Debug`: the figment holds secrets as plain text.)
pub struct Configuration {
    figment: Figment,
    raw: RawSettings,
    spellings: BTreeMap<String, Spelling>,
}

/// Checks that a setting lies in its range, naming it by the field so the name cannot drift
/// from the key.
macro_rules! within {
    ($configuration:expr, $key:ident, $range:expr) => {
        $configuration.within(stringify!($key), $configuration.raw.$key, $range)
    };
}

impl Configuration {
    /// Stacks the layers: built-in defaults, the TOML `file` if one is named, then
    /// `overrides` (environment variables, then flags). A named file that does not exist is
    /// an error; no file is read unless named, so what runs never depends on a file that
    /// happens to lie in the working directory.
    pub fn load(file: Option<&Path>, overrides: Overrides) -> Result<Configuration, String> {
        let defaults = Value::serialize(RawSettings::default())
            .ok()
            .and_then(Value::into_dict)
            .ok_or("the built-in defaults do not serialize")?;
        let mut figment = Figment::from(Layer {
            name: DEFAULTS_LAYER,
            values: defaults,
        });
        if let Some(path) = file {
            match std::fs::metadata(path) {
                Ok(metadata) if metadata.is_file() => {}
                Ok(_) => {
                    return Err(format!(
                        "config file {} (--config, NEEDTOKNOW_CONFIG): not a file",
                        path.display()
                    ))
                }
                Err(error) => {
                    return Err(format!(
                        "config file {} (--config, NEEDTOKNOW_CONFIG): {error}",
                        path.display()
                    ))
                }
            }
            figment = figment.merge(Toml::file_exact(path));
        }
        let figment = figment
            .merge(Layer {
                name: ENVIRONMENT_LAYER,
                values: overrides.environment,
            })
            .merge(Layer {
                name: FLAGS_LAYER,
                values: overrides.flags,
            });
        let raw = figment
            .extract::<RawSettings>()
            .map_err(|error| describe(error, &overrides.spellings))?;
        Ok(Configuration {
            figment,
            raw,
            spellings: overrides.spellings,
        })
    }

    /// The log format, for setting up logs before anything else runs.
    pub fn log_format(&self) -> LogFormat {
        self.raw.log_format
    }

    /// The log filter (checked when the logs are set up).
    pub fn log(&self) -> &str {
        &self.raw.log
    }

    /// The policy directory, for the `policy` commands, which need nothing else.
    pub fn policy_dir(&self) -> &Path {
        &self.raw.policy_dir
    }

    /// Where the value of `key` came from.
    pub fn origin(&self, key: &str) -> Origin {
        let Some(metadata) = self.figment.find_metadata(key) else {
            return Origin::Default;
        };
        if let Some(path) = metadata.source.as_ref().and_then(|s| s.file_path()) {
            return Origin::File(path.to_owned());
        }
        let spelling = self.spellings.get(key);
        match &*metadata.name {
            ENVIRONMENT_LAYER => Origin::Environment(
                spelling
                    .and_then(|s| s.env.clone())
                    .unwrap_or_else(|| key.to_owned()),
            ),
            FLAGS_LAYER => Origin::Flag(spelling.map_or_else(
                || format!("--{}", key.replace('_', "-")),
                |s| s.flag.clone(),
            )),
            _ => Origin::Default,
        }
    }

    /// The setting `key` named as the operator wrote it: `max_depth in FILE`,
    /// `NEEDTOKNOW_MAX_DEPTH` or `--max-depth`; a setting left at its default is named in
    /// all three spellings, since the operator may set it in any of them.
    pub fn name(&self, key: &str) -> String {
        debug_assert!(self.figment.contains(key), "{key} is not a setting");
        match self.origin(key) {
            Origin::File(path) => format!("{key} in {}", path.display()),
            Origin::Environment(name) | Origin::Flag(name) => name,
            Origin::Default => spelt(key, &self.spellings),
        }
    }

    /// `problem` with `key` named in front of it.
    fn invalid(&self, key: &str, problem: impl fmt::Display) -> String {
        format!("{}: {problem}", self.name(key))
    }

    /// `value` of `key` when it lies in `range`; called through the `within!` macro.
    fn within<T, R>(&self, key: &str, value: T, range: R) -> Result<T, String>
    where
        T: PartialOrd + fmt::Display,
        R: RangeBounds<T> + fmt::Debug,
    {
        if range.contains(&value) {
            Ok(value)
        } else {
            Err(self.invalid(key, format!("{value} is not in {range:?}")))
        }
    }

    /// Settings for commands that only need the database, keys and policies; settings only
    /// `serve` reads are neither checked nor used.
    pub fn global_settings(&self) -> Result<Settings, String> {
        let raw = &self.raw;
        let database = DatabaseSettings::from_url(
            raw.database_url.as_ref().map(|url| url.expose().as_str()),
            &raw.data_dir,
        )
        .map_err(|problem| self.invalid("database_url", problem))?;
        let mut settings = Settings::for_data_dir(&raw.data_dir, database);
        settings.policy_dir = raw.policy_dir.clone();
        settings.database_timeout =
            Duration::from_secs(within!(self, database_timeout_secs, 1..=300)?);
        settings.mode = Mode::Production;
        settings.max_grant = Duration::from_secs(within!(self, max_grant_secs, 1..=86_400)?);
        settings.report_agent_identities = raw.report_agent_identities;
        settings.master_key = raw
            .master_key
            .as_ref()
            .map(|key| key.expose().trim())
            .filter(|key| !key.is_empty())
            .map(|key| Secret::new(key.to_owned()));
        if let Some(file) = &raw.master_key_file {
            settings.master_key_file = file.clone();
        }
        settings.erasure_ledger = raw.erasure_ledger.clone();
        settings.retention = crate::retention::RetentionPolicy::parse(&raw.retention)
            .map_err(|problem| self.invalid("retention", problem))?;
        // Checked even without Redis, as every other range is: a bad value is a mistake
        // whether or not it is used yet.
        let redis_timeout = Duration::from_millis(within!(self, redis_timeout_ms, 10..=10_000)?);
        let redis_url = raw
            .redis_url
            .as_ref()
            .map(|url| url.expose().trim())
            .filter(|url| !url.is_empty());
        settings.grants = match redis_url {
            None => GrantStoreSettings::Memory,
            Some(url) if url.starts_with("redis://") || url.starts_with("rediss://") => {
                GrantStoreSettings::Redis {
                    url: Secret::new(url.to_owned()),
                    prefix: raw.redis_prefix.clone(),
                    timeout: redis_timeout,
                }
            }
            Some(_) => {
                return Err(self.invalid(
                    "redis_url",
                    "must start with redis:// or rediss:// (value not shown)",
                ))
            }
        };
        Ok(settings)
    }

    /// The full settings of `serve`; `demo` seeds the demo dataset and implies dev mode.
    pub fn serve_settings(&self, demo: bool) -> Result<Settings, String> {
        let raw = &self.raw;
        let mut settings = self.global_settings()?;
        settings.listen = raw.listen;
        settings.demo = demo;
        settings.mode = if demo { Mode::Dev } else { raw.mode };
        settings.max_body_bytes =
            usize::try_from(within!(self, max_body_bytes, 1024..=16 * 1024 * 1024)?)
                .map_err(|_| self.invalid("max_body_bytes", "too large for this machine"))?;
        settings.workers = raw.workers;
        let policy_watch_ms = within!(self, policy_watch_ms, 0..=3_600_000)?;
        settings.policy_watch =
            (policy_watch_ms > 0).then(|| Duration::from_millis(policy_watch_ms));
        settings.token_cache = Duration::from_millis(within!(self, token_cache_ms, 0..=1000)?);
        settings.grant_cache = Duration::from_millis(within!(self, grant_cache_ms, 0..=1000)?);
        settings.retention_interval = (raw.retention_interval_secs > 0)
            .then(|| Duration::from_secs(raw.retention_interval_secs));
        settings.limits = crate::limits::QueryLimits {
            document_bytes: raw.max_query_bytes,
            aliases: raw.max_aliases,
            root_fields: raw.max_root_fields,
            depth: raw.max_depth,
            complexity: raw.max_complexity,
            directives: raw.max_directives,
            page_size: within!(self, max_page_size, 1..=1000)?,
            recursion: within!(self, max_recursion, 4..=256)? as usize,
        };
        settings.introspection = raw.introspection.unwrap_or(settings.mode.introspects());
        settings.cors_origins = raw
            .cors_origins
            .iter()
            .map(|origin| {
                parse_origin(origin).map_err(|problem| self.invalid("cors_origins", problem))
            })
            .collect::<Result<_, _>>()?;
        settings.requests_per_minute = within!(self, requests_per_minute, 1..)?;
        settings.idempotency_ttl =
            Duration::from_secs(within!(self, idempotency_ttl_secs, 60..=2_592_000)?);
        settings.idempotency_abandon =
            Duration::from_secs(within!(self, idempotency_abandon_secs, 1..=3600)?);
        settings.max_document_bytes =
            usize::try_from(within!(self, max_document_bytes, 1024..=256 * 1024 * 1024)?)
                .map_err(|_| self.invalid("max_document_bytes", "too large for this machine"))?;
        settings.reveals_per_hour = within!(self, reveals_per_hour, 1..)?;
        settings.identity_checks_per_hour = within!(self, identity_checks_per_hour, 1..)?;
        settings.sso = self.sso_settings()?;
        settings.allowed_operations = raw.allowed_operations.clone();
        Ok(settings)
    }

    /// SSO settings: all or nothing, with an issuer, an audience and at least one kind of key.
    fn sso_settings(&self) -> Result<Option<SsoSettings>, String> {
        let raw = &self.raw;
        let leeway = Duration::from_secs(within!(self, sso_leeway_secs, 0..=300)?);
        let jwks_refresh = Duration::from_secs(within!(self, sso_jwks_refresh_secs, 10..=86_400)?);
        let Some(issuer) = raw
            .sso_issuer
            .as_deref()
            .map(str::trim)
            .filter(|issuer| !issuer.is_empty())
        else {
            let stray = [
                ("sso_audience", raw.sso_audience.is_some()),
                ("sso_jwks_file", raw.sso_jwks_file.is_some()),
                ("sso_jwks_url", raw.sso_jwks_url.is_some()),
                ("sso_hs256_secret", raw.sso_hs256_secret.is_some()),
            ]
            .into_iter()
            .find_map(|(key, set)| set.then_some(key));
            return match stray {
                Some(key) => Err(self.invalid(
                    "sso_issuer",
                    format_args!("required when {} is set", self.name(key)),
                )),
                None => Ok(None),
            };
        };
        let audience = raw
            .sso_audience
            .as_deref()
            .map(str::trim)
            .filter(|audience| !audience.is_empty())
            .ok_or_else(|| {
                self.invalid(
                    "sso_audience",
                    format_args!("required with {}", self.name("sso_issuer")),
                )
            })?;
        let jwks = match (&raw.sso_jwks_file, &raw.sso_jwks_url) {
            (Some(_), Some(_)) => {
                return Err(format!(
                    "{} and {}: set one, not both",
                    self.name("sso_jwks_file"),
                    self.name("sso_jwks_url")
                ))
            }
            (Some(path), None) => Some(JwksSource::File(path.clone())),
            (None, Some(url)) if url.starts_with("https://") || url.starts_with("http://") => {
                Some(JwksSource::Url(url.clone()))
            }
            (None, Some(_)) => return Err(self.invalid("sso_jwks_url", "must be an http(s) URL")),
            (None, None) => None,
        };
        if jwks.is_none() && raw.sso_hs256_secret.is_none() {
            return Err(format!(
                "SSO needs keys: set {}, {} or {}",
                self.name("sso_jwks_file"),
                self.name("sso_jwks_url"),
                self.name("sso_hs256_secret")
            ));
        }
        if raw
            .sso_hs256_secret
            .as_ref()
            .is_some_and(|secret| secret.expose().len() < 32)
        {
            return Err(self.invalid("sso_hs256_secret", "must be at least 32 bytes"));
        }
        Ok(Some(SsoSettings {
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            handle_claim: raw.sso_handle_claim.clone(),
            jwks,
            hs256_secret: raw.sso_hs256_secret.clone(),
            leeway,
            jwks_refresh,
        }))
    }

    /// The settings as a TOML document, one `key = value` line each with where the value
    /// came from; secrets read `[redacted]` and settings without a value are listed as
    /// comments. What `needtoknow config` prints.
    pub fn render(&self) -> Result<String, String> {
        let values = match toml::Value::try_from(&self.raw) {
            Ok(toml::Value::Table(values)) => values,
            Ok(_) => return Err("the settings are not a table".to_owned()),
            Err(error) => return Err(format!("cannot show the settings: {error}")),
        };
        let keys = Value::serialize(RawSettings::default())
            .ok()
            .and_then(Value::into_dict)
            .unwrap_or_default();
        let lines: Vec<(String, Option<Origin>)> = keys
            .keys()
            .map(|key| match values.get(key) {
                Some(value) => (format!("{key} = {value}"), Some(self.origin(key))),
                // Unset, introspection follows the mode: say what that gives.
                None if key == "introspection" => {
                    let on = if self.raw.mode.introspects() {
                        "on"
                    } else {
                        "off"
                    };
                    (
                        format!("# {key}: not set, so {on} (on in dev mode, off in production)"),
                        None,
                    )
                }
                None => (format!("# {key}: not set"), None),
            })
            .collect();
        // Origins line up in one column, unless a long value would push it too far.
        let column = lines
            .iter()
            .filter(|(_, origin)| origin.is_some())
            .map(|(line, _)| line.len())
            .filter(|&width| width <= 48)
            .max()
            .unwrap_or(0);
        let mut out = String::from(
            "# The settings `needtoknow serve` would use, each with where it comes from\n\
             # (default < config file < environment variable < flag); secrets read \"[redacted]\".\n",
        );
        for (line, origin) in lines {
            match origin {
                Some(origin) => out.push_str(&format!("{line:<column$}  # {origin}\n")),
                None => out.push_str(&format!("{line}\n")),
            }
        }
        Ok(out)
    }
}

/// A setting that has no value anywhere, named in all its spellings.
fn spelt(key: &str, spellings: &BTreeMap<String, Spelling>) -> String {
    match spellings.get(key) {
        Some(Spelling {
            flag,
            env: Some(env),
        }) => format!("{key} ({flag}, {env})"),
        Some(Spelling { flag, env: None }) => format!("{key} ({flag})"),
        None => key.to_owned(),
    }
}

/// One line for what figment could not extract, naming the key and where its value came
/// from; never the value of a secret (see [`Secret`]'s `Deserialize`), never a snippet of
/// the file (which could hold one).
fn describe(error: figment::Error, spellings: &BTreeMap<String, Spelling>) -> String {
    // Extraction stops at the first problem; any earlier ones are reported the same way.
    let Some(error) = error.into_iter().next() else {
        return "invalid configuration".to_owned();
    };
    let file = error
        .metadata
        .as_ref()
        .and_then(|m| m.source.as_ref())
        .and_then(|s| s.file_path());
    let key = error.path.first();
    let place = match (key, file) {
        (Some(key), Some(file)) => format!("{key} in {}", file.display()),
        (None, Some(file)) => format!("config file {}", file.display()),
        (Some(key), None) => spelt(key, spellings),
        (None, None) => "configuration".to_owned(),
    };
    let problem = match &error.kind {
        figment::error::Kind::UnknownField(found, known) => {
            let closest = known
                .iter()
                .map(|candidate| (strsim::jaro_winkler(found, candidate), candidate))
                .filter(|(score, _)| *score > 0.8)
                .max_by(|a, b| a.0.total_cmp(&b.0));
            match closest {
                Some((_, candidate)) => format!("unknown setting (did you mean {candidate}?)"),
                None => "unknown setting".to_owned(),
            }
        }
        // A parse error is several lines, with a snippet of the file under a gutter of `|`:
        // keep the lines that say what is wrong and where, drop the snippet.
        figment::error::Kind::Message(message) => message
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty() && !line.contains('|'))
            .collect::<Vec<_>>()
            .join(": "),
        // figment's own wording quotes the list twice (``dev` or `production``).
        figment::error::Kind::UnknownVariant(found, known) => format!(
            "unknown value `{found}`, expected {}",
            figment::error::OneOf(known)
        ),
        other => other.to_string(),
    };
    format!("{place}: {problem}")
}

/// An origin is `scheme://host[:port]`, nothing more.
fn parse_origin(value: &str) -> Result<String, String> {
    let value = value.trim().trim_end_matches('/');
    let rest = value
        .strip_prefix("https://")
        .or_else(|| value.strip_prefix("http://"))
        .ok_or("an origin starts with https:// or http://")?;
    if rest.is_empty() || rest.contains(['/', '?', '#', '*', ' ']) {
        return Err("an origin is scheme://host[:port], no path or wildcard".into());
    }
    Ok(value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A config file in a fresh directory, kept alive with it.
    fn file(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("needtoknow.toml");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    fn dict(pairs: &[(&str, Value)]) -> Dict {
        pairs
            .iter()
            .map(|(key, value)| (key.to_string(), value.clone()))
            .collect()
    }

    fn spellings() -> BTreeMap<String, Spelling> {
        let mut spellings = BTreeMap::new();
        for key in [
            "max_depth",
            "sso_issuer",
            "sso_audience",
            "database_url",
            "master_key",
        ] {
            spellings.insert(
                key.to_owned(),
                Spelling {
                    flag: format!("--{}", key.replace('_', "-")),
                    env: Some(format!("NEEDTOKNOW_{}", key.to_uppercase())),
                },
            );
        }
        spellings
    }

    fn load(file: Option<&Path>, environment: Dict, flags: Dict) -> Result<Configuration, String> {
        Configuration::load(
            file,
            Overrides {
                environment,
                flags,
                spellings: spellings(),
            },
        )
    }

    /// Without a file, environment or flags, `serve` runs with the documented defaults.
    #[test]
    fn the_built_in_defaults_are_the_documented_ones() {
        let configuration = load(None, Dict::new(), Dict::new()).unwrap();
        let settings = configuration.serve_settings(false).unwrap();
        assert_eq!(settings.listen, SocketAddr::from(([127, 0, 0, 1], 8080)));
        assert_eq!(settings.mode, Mode::Production);
        assert!(!settings.introspection);
        assert_eq!(settings.data_dir, PathBuf::from("./data"));
        assert!(
            matches!(settings.database, DatabaseSettings::Sqlite { ref path } if path == Path::new("./data/needtoknow.sqlite"))
        );
        assert!(matches!(settings.grants, GrantStoreSettings::Memory));
        assert_eq!(settings.limits.depth, 12);
        assert_eq!(settings.limits.page_size, 100);
        assert_eq!(settings.max_body_bytes, 65_536);
        assert_eq!(settings.workers, 0);
        assert_eq!(settings.token_cache, Duration::from_millis(1000));
        assert_eq!(settings.grant_cache, Duration::from_millis(1000));
        assert_eq!(settings.retention_interval, Some(Duration::from_secs(3600)));
        assert!(settings.sso.is_none() && settings.cors_origins.is_empty());
        assert_eq!(configuration.origin("max_depth"), Origin::Default);
        assert!(configuration.serve_settings(true).unwrap().introspection);
    }

    /// A flag beats an environment variable, which beats the file, which beats the default.
    #[test]
    fn each_layer_overrides_the_one_below() {
        let (_dir, path) = file("max_depth = 20\nmax_aliases = 7\n");
        let env = dict(&[("max_depth", Value::from(15))]);
        let flags = dict(&[("max_depth", Value::from(9))]);

        let configuration = load(Some(&path), env.clone(), flags).unwrap();
        assert_eq!(configuration.serve_settings(false).unwrap().limits.depth, 9);
        assert_eq!(
            configuration.origin("max_depth"),
            Origin::Flag("--max-depth".into())
        );
        assert_eq!(
            configuration.origin("max_aliases"),
            Origin::File(path.clone())
        );

        let configuration = load(Some(&path), env, Dict::new()).unwrap();
        assert_eq!(
            configuration.serve_settings(false).unwrap().limits.depth,
            15
        );
        assert_eq!(
            configuration.origin("max_depth"),
            Origin::Environment("NEEDTOKNOW_MAX_DEPTH".into())
        );

        let configuration = load(Some(&path), Dict::new(), Dict::new()).unwrap();
        assert_eq!(
            configuration.serve_settings(false).unwrap().limits.depth,
            20
        );
        assert_eq!(configuration.origin("max_depth"), Origin::File(path));
    }

    /// A value of the wrong type is one line naming the key and the file.
    #[test]
    fn a_mistyped_value_names_the_key_and_the_file() {
        let (_dir, path) = file("max_depth = \"deep\"\n");
        let error = load(Some(&path), Dict::new(), Dict::new()).err().unwrap();
        assert!(
            error.starts_with(&format!("max_depth in {}: ", path.display())),
            "{error}"
        );
        assert_eq!(error.lines().count(), 1, "{error}");
    }

    /// A value out of range is named by where it was set, file or environment.
    #[test]
    fn an_out_of_range_value_is_named_by_where_it_was_set() {
        let (_dir, path) = file("max_page_size = 0\n");
        let configuration = load(Some(&path), Dict::new(), Dict::new()).unwrap();
        let error = configuration.serve_settings(false).unwrap_err();
        assert_eq!(
            error,
            format!("max_page_size in {}: 0 is not in 1..=1000", path.display())
        );
        let configuration =
            load(None, dict(&[("max_depth", Value::from(3))]), Dict::new()).unwrap();
        assert_eq!(configuration.name("max_depth"), "NEEDTOKNOW_MAX_DEPTH");
    }

    /// A misspelt key stops start-up, suggesting the key that was meant.
    #[test]
    fn an_unknown_key_is_refused_with_a_suggestion() {
        let (_dir, path) = file("max_dept = 3\n");
        let error = load(Some(&path), Dict::new(), Dict::new()).err().unwrap();
        assert_eq!(
            error,
            format!(
                "max_dept in {}: unknown setting (did you mean max_depth?)",
                path.display()
            )
        );
        // Settings are flat: a table is an unknown key too, not a way to group them.
        let (_dir, path) = file("[sso]\nissuer = \"https://idp.example\"\n");
        let error = load(Some(&path), Dict::new(), Dict::new()).err().unwrap();
        assert!(error.starts_with("sso in "), "{error}");
    }

    /// A named file that is not there is an error, not an empty layer.
    #[test]
    fn a_missing_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nowhere.toml");
        let error = load(Some(&path), Dict::new(), Dict::new()).err().unwrap();
        assert!(error.contains(&path.display().to_string()), "{error}");
        assert!(error.contains("--config"), "{error}");
    }

    /// Neither a mistyped secret nor a syntax error next to one shows the secret.
    #[test]
    fn errors_never_show_a_secret() {
        let (_dir, path) = file("master_key = 987654321\n");
        let error = load(Some(&path), Dict::new(), Dict::new()).err().unwrap();
        assert!(error.starts_with("master_key in "), "{error}");
        assert!(!error.contains("987654321"), "{error}");

        let (_dir, path) = file("sso_hs256_secret = \"hunter2-hunter2\n");
        let error = load(Some(&path), Dict::new(), Dict::new()).err().unwrap();
        assert!(error.contains("line 1"), "{error}");
        assert!(!error.contains("hunter2"), "{error}");
        assert_eq!(error.lines().count(), 1, "{error}");

        let (_dir, path) = file("database_url = \"mysql://root:hunter2@db/x\"\n");
        let configuration = load(Some(&path), Dict::new(), Dict::new()).unwrap();
        let error = configuration.global_settings().unwrap_err();
        assert!(error.starts_with("database_url in "), "{error}");
        assert!(!error.contains("hunter2"), "{error}");
    }

    /// The printed settings show where each value came from and redact every secret.
    #[test]
    fn the_rendered_settings_redact_secrets_and_name_origins() {
        let (_dir, path) = file(concat!(
            "database_url = \"postgres://app:hunter2@db/app\"\n",
            "redis_url = \"redis://:hunter3@cache:6379\"\n",
            "listen = \"0.0.0.0:9000\"\n",
        ));
        let env = dict(&[("master_key", Value::from("1:aHVudGVyNA=="))]);
        let configuration = load(Some(&path), env, Dict::new()).unwrap();
        let text = configuration.render().unwrap();
        for secret in ["hunter2", "hunter3", "aHVudGVyNA=="] {
            assert!(!text.contains(secret), "{text}");
        }
        let line = |key: &str| {
            text.lines()
                .find(|line| line.starts_with(&format!("{key} = ")))
                .unwrap_or_else(|| panic!("{key} in {text}"))
                .to_owned()
        };
        assert!(line("database_url").contains("\"[redacted]\""), "{text}");
        assert!(
            line("master_key").ends_with("# NEEDTOKNOW_MASTER_KEY"),
            "{text}"
        );
        assert!(
            line("listen").ends_with(&format!("# {}", path.display())),
            "{text}"
        );
        assert!(line("max_depth").ends_with("# default"), "{text}");
        assert!(text.contains("# sso_issuer: not set"), "{text}");
        assert!(
            text.contains("# introspection: not set, so off (on in dev mode, off in production)"),
            "{text}"
        );
        // What is printed is itself a valid file (secrets aside).
        let printed: toml::Table = text.parse().unwrap();
        assert_eq!(printed["max_depth"].as_integer(), Some(12));
    }

    /// SSO settings are all or nothing; what is missing is named in every spelling.
    #[test]
    fn incomplete_sso_settings_name_what_is_missing() {
        let (_dir, path) = file("sso_issuer = \"https://idp.example\"\n");
        let configuration = load(Some(&path), Dict::new(), Dict::new()).unwrap();
        assert_eq!(
            configuration.serve_settings(false).unwrap_err(),
            format!(
                "sso_audience (--sso-audience, NEEDTOKNOW_SSO_AUDIENCE): required with sso_issuer in {}",
                path.display()
            )
        );
        // Settings only `serve` reads do not stop the other commands.
        assert!(configuration.global_settings().is_ok());
    }

    /// CORS origins from the file are checked and normalised like those from flags.
    #[test]
    fn cors_origins_from_the_file_are_checked() {
        let (_dir, path) = file("cors_origins = [\"https://agents.example.com/\"]\n");
        let configuration = load(Some(&path), Dict::new(), Dict::new()).unwrap();
        assert_eq!(
            configuration.serve_settings(false).unwrap().cors_origins,
            ["https://agents.example.com"]
        );
        let (_dir, path) = file("cors_origins = [\"https://*.example.com\"]\n");
        let configuration = load(Some(&path), Dict::new(), Dict::new()).unwrap();
        let error = configuration.serve_settings(false).unwrap_err();
        assert!(error.starts_with("cors_origins in "), "{error}");
    }

    #[test]
    fn origins_are_scheme_host_and_port() {
        assert_eq!(
            parse_origin("https://agents.example.com/").unwrap(),
            "https://agents.example.com"
        );
        assert!(parse_origin("agents.example.com").is_err());
        assert!(parse_origin("https://agents.example.com/app").is_err());
    }
}
