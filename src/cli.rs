//! The `needtoknow` command line: one binary, one subcommand per job.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::config::{DatabaseSettings, GrantStoreSettings, LogFormat, Mode, Settings};

/// needtoknow: a GraphQL backend that reveals customer data to support agents on a
/// need-to-know basis, decided by Oso Polar policies.
#[derive(Debug, Parser)]
#[command(name = "needtoknow", version, about, long_about = None)]
pub struct Cli {
    /// Settings shared by every subcommand.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Settings shared by every subcommand.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Directory for the SQLite file, demo tokens and dev keys (created if missing).
    #[arg(
        long,
        global = true,
        env = "NEEDTOKNOW_DATA_DIR",
        default_value = "./data"
    )]
    pub data_dir: PathBuf,
    /// Database URL: postgres://… for PostgreSQL; default: the SQLite file in the data dir.
    #[arg(long, global = true, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Directory of the *.polar policy files.
    #[arg(
        long,
        global = true,
        env = "NEEDTOKNOW_POLICY_DIR",
        default_value = "./policies"
    )]
    pub policy_dir: PathBuf,
    /// Log format.
    #[arg(
        long,
        global = true,
        env = "NEEDTOKNOW_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    pub log_format: LogFormat,
    /// Log filter, e.g. `info` or `needtoknow=debug,info`.
    #[arg(long, global = true, env = "NEEDTOKNOW_LOG", default_value = "info")]
    pub log: String,
    /// Redis for reveal grants (`redis://host:6379`); default: in-process, one instance only.
    #[arg(long, global = true, env = "REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,
    /// Prefix of every Redis key.
    #[arg(
        long,
        global = true,
        env = "NEEDTOKNOW_REDIS_PREFIX",
        default_value = "needtoknow"
    )]
    pub redis_prefix: String,
    /// Milliseconds a Redis call may take before it counts as failed (fail closed).
    #[arg(long, global = true, env = "NEEDTOKNOW_REDIS_TIMEOUT_MS", default_value = "250",
          value_parser = clap::value_parser!(u64).range(10..=10_000))]
    pub redis_timeout_ms: u64,
    /// The longest a reveal grant may last in seconds, whatever the policy says.
    #[arg(long, global = true, env = "NEEDTOKNOW_MAX_GRANT_SECS", default_value = "3600",
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub max_grant_secs: u64,
    /// Name the agents in customer access reports (default: roles only).
    #[arg(long, global = true, env = "NEEDTOKNOW_REPORT_AGENT_IDENTITIES", default_value = "false",
          action = clap::ArgAction::Set, value_parser = clap::builder::BoolishValueParser::new())]
    pub report_agent_identities: bool,
    /// Master keys as `VERSION:BASE64` entries separated by commas (a bare BASE64 is version
    /// 1); overrides the key file.
    #[arg(
        long,
        global = true,
        env = "NEEDTOKNOW_MASTER_KEY",
        hide_env_values = true
    )]
    pub master_key: Option<String>,
    /// Master key file (default: <data dir>/master-keys.json; generated in dev/demo mode).
    #[arg(long, global = true, env = "NEEDTOKNOW_MASTER_KEY_FILE")]
    pub master_key_file: Option<PathBuf>,
    /// The erasure ledger: erasures and purges recorded outside the database, re-applied at
    /// start-up after a restore (default: erasure-ledger.jsonl next to the master key file).
    #[arg(long, global = true, env = "NEEDTOKNOW_ERASURE_LEDGER")]
    pub erasure_ledger: Option<PathBuf>,
    /// Retention after resolution, `name=period` entries (periods like 7d, 12h, 0d) over the
    /// defaults `id_document=7d,transcripts=365d,transcripts_without_consent=0d`.
    #[arg(long, global = true, env = "NEEDTOKNOW_RETENTION", default_value = "")]
    pub retention: String,
    /// Seconds to wait for the database when connecting.
    #[arg(long, global = true, env = "NEEDTOKNOW_DATABASE_TIMEOUT_SECS", default_value = "5",
          value_parser = clap::value_parser!(u64).range(1..=300))]
    pub database_timeout_secs: u64,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
// Parsed once per process; boxing `serve`'s options would buy nothing.
#[allow(clippy::large_enum_variant)]
pub enum Command {
    /// Run the GraphQL service (migrations are applied on start).
    Serve(ServeArgs),
    /// Apply pending database migrations and exit.
    Migrate,
    /// Print the GraphQL schema (SDL); `schema.graphql` is this output.
    Schema,
    /// Manage agents and their API tokens.
    #[command(subcommand)]
    Agent(AgentCommand),
    /// Check, test and explain policies before they go live.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Work with the audit trail.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Manage master keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Apply retention periods.
    #[command(subcommand)]
    Retention(RetentionCommand),
    /// Build the operation allow-list.
    #[command(subcommand)]
    Operations(OperationsCommand),
    /// Write a consistent copy of the SQLite database to DEST, safe while the service runs
    /// (SQLite's `VACUUM INTO`). Master keys and the erasure ledger are never inside it. On
    /// PostgreSQL, use `pg_dump` (see README, Backup and restore).
    Backup {
        /// The backup file to create; it must not exist yet.
        dest: PathBuf,
    },
    /// Generate a deterministic benchmark dataset (creates the demo agents if missing; run
    /// `serve --demo` on the same data to get their tokens).
    Seed {
        /// Customers to create.
        #[arg(long, default_value = "1000", value_parser = clap::value_parser!(u32).range(1..=10_000_000))]
        customers: u32,
        /// Tickets to create, spread over the customers.
        #[arg(long, default_value = "10000", value_parser = clap::value_parser!(u32).range(0..=100_000_000))]
        tickets: u32,
        /// Messages per ticket (default: 2 to 4, drawn per ticket).
        #[arg(long, value_parser = clap::value_parser!(u32).range(0..=100))]
        messages_per_ticket: Option<u32>,
    },
    /// Import customers, tickets, messages and documents exported from another helpdesk
    /// (JSON lines; README, "Importing from another helpdesk"), written through the same
    /// checks, redaction, encryption and audit as the API. Safe to run again: nothing is
    /// written twice. Exits 1 when lines were rejected.
    Import(ImportArgs),
}

/// `import` arguments.
#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// The JSON-lines file, or `-` for standard input.
    pub file: String,
    /// The service account the import writes as (`agent create --service`); its role must
    /// allow intake writes (shipped: `intake`).
    #[arg(long = "as", value_name = "HANDLE")]
    pub as_handle: String,
    /// Where refused lines are reported (default: FILE.rejects.jsonl, or
    /// import-rejects.jsonl for standard input); overwritten.
    #[arg(long, value_name = "PATH")]
    pub rejects: Option<std::path::PathBuf>,
    /// Records per transaction.
    #[arg(long, default_value = "500", value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub batch: u32,
}

/// `retention` subcommands.
#[derive(Debug, Subcommand)]
pub enum RetentionCommand {
    /// Delete what the retention periods no longer allow to keep (idempotent).
    Sweep {
        /// Sweep as of this time (RFC 3339, e.g. 2027-01-01T00:00:00Z) instead of now.
        #[arg(long)]
        as_of: Option<chrono::DateTime<chrono::Utc>>,
    },
}

/// `keys` subcommands.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Introduce a new master key version and re-wrap every data key under it, without
    /// downtime. With a key file, adds the version to the file; with NEEDTOKNOW_MASTER_KEY,
    /// re-wraps under its highest version (add `N:BASE64` there and roll it out first).
    Rotate,
}

/// `audit` subcommands.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Walk the hash chain; name the first event that was edited, deleted, inserted or
    /// reordered and exit 1.
    Verify,
}

/// `policy` subcommands. DIR defaults to the policy directory (`--policy-dir`).
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Load and validate a policy directory; on error print file:line and exit 1.
    Check {
        /// The policy directory.
        dir: Option<PathBuf>,
    },
    /// Run the table-driven cases in DIR/tests/*.cases; print expected vs got for failures.
    Test {
        /// The policy directory.
        dir: Option<PathBuf>,
        /// Also list the rules no case exercised, with file:line.
        #[arg(long)]
        coverage: bool,
    },
    /// Compare two policy directories over the whole decision space and print every cell
    /// that changes, as Markdown, widening first; exit 1 if anything widens.
    Diff {
        /// The policy as it is (e.g. a checkout of main).
        old: PathBuf,
        /// The policy as edited.
        new: PathBuf,
        /// Exit 0 even when the edit widens access (after a reviewer agreed).
        #[arg(long)]
        allow_widening: bool,
    },
    /// Print the decision for one role, topic, relation and field, and the inputs it used.
    Explain(ExplainArgs),
}

/// Options of `policy explain`.
#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// The agent's role.
    #[arg(long)]
    pub role: String,
    /// The ticket's topic.
    #[arg(long)]
    pub topic: String,
    /// The agent is the ticket's assignee (same as `--relation assignee`).
    #[arg(long, conflicts_with = "relation")]
    pub assignee: bool,
    /// The agent's relation to the ticket.
    #[arg(long, value_enum, default_value = "queue")]
    pub relation: crate::policy::cases::Relation,
    /// The ticket's status.
    #[arg(long, default_value = "open")]
    pub status: String,
    /// A field (e.g. `email`) or data class (e.g. `contact`).
    #[arg(long)]
    pub field: String,
    /// The policy directory (default: `--policy-dir`).
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

/// `operations` subcommands.
#[derive(Debug, Subcommand)]
pub enum OperationsCommand {
    /// Print a persisted-query manifest (the allow-list file) of .graphql files, one
    /// operation per file; operations are registered by the SHA-256 of the exact file text.
    Manifest {
        /// The .graphql files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

/// Options of `serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Seed the demo dataset (idempotent) and write <data dir>/demo-tokens.json; implies dev mode.
    #[arg(long)]
    pub demo: bool,
    /// Address to listen on.
    #[arg(long, env = "NEEDTOKNOW_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// `dev` serves GraphiQL on GET /graphql; `production` does not.
    #[arg(
        long,
        env = "NEEDTOKNOW_MODE",
        value_enum,
        default_value = "production"
    )]
    pub mode: Mode,
    /// Largest accepted request body in bytes; larger bodies get HTTP 413.
    #[arg(long, env = "NEEDTOKNOW_MAX_BODY_BYTES", default_value = "65536",
          value_parser = clap::value_parser!(u64).range(1024..=16 * 1024 * 1024))]
    pub max_body_bytes: u64,
    /// HTTP worker threads (0: one per core).
    #[arg(long, env = "NEEDTOKNOW_WORKERS", default_value = "0")]
    pub workers: usize,
    /// Largest GraphQL query document in bytes.
    #[arg(long, env = "NEEDTOKNOW_MAX_QUERY_BYTES", default_value = "16384")]
    pub max_query_bytes: usize,
    /// Most aliases in one query.
    #[arg(long, env = "NEEDTOKNOW_MAX_ALIASES", default_value = "30")]
    pub max_aliases: usize,
    /// Most root fields in one operation.
    #[arg(long, env = "NEEDTOKNOW_MAX_ROOT_FIELDS", default_value = "10")]
    pub max_root_fields: usize,
    /// Deepest selection nesting.
    #[arg(long, env = "NEEDTOKNOW_MAX_DEPTH", default_value = "12")]
    pub max_depth: usize,
    /// Highest query complexity (one per field; list fields times their page size).
    #[arg(long, env = "NEEDTOKNOW_MAX_COMPLEXITY", default_value = "20000")]
    pub max_complexity: usize,
    /// Most directives on one field.
    #[arg(long, env = "NEEDTOKNOW_MAX_DIRECTIVES", default_value = "4")]
    pub max_directives: usize,
    /// Deepest recursion (nesting the depth limit does not count, e.g. fragments in fragments).
    #[arg(long, env = "NEEDTOKNOW_MAX_RECURSION", default_value = "32",
          value_parser = clap::value_parser!(u64).range(4..=256))]
    pub max_recursion: u64,
    /// Largest page of `tickets` (`first`).
    #[arg(long, env = "NEEDTOKNOW_MAX_PAGE_SIZE", default_value = "100",
          value_parser = clap::value_parser!(i32).range(1..=1000))]
    pub max_page_size: i32,
    /// Introspection and field suggestions: on in dev mode, off in production unless set.
    #[arg(long, env = "NEEDTOKNOW_INTROSPECTION", action = clap::ArgAction::Set,
          value_parser = clap::builder::BoolishValueParser::new())]
    pub introspection: Option<bool>,
    /// Agent-UI origins allowed to call the API from a browser, comma-separated
    /// (e.g. `https://agents.example.com`); none by default.
    #[arg(long, env = "NEEDTOKNOW_CORS_ORIGINS", value_delimiter = ',', value_parser = parse_origin)]
    pub cors_origins: Vec<String>,
    /// How long a mutation's `Idempotency-Key` is remembered, in seconds.
    #[arg(long, env = "NEEDTOKNOW_IDEMPOTENCY_TTL_SECS", default_value = "86400",
          value_parser = clap::value_parser!(u64).range(60..=2_592_000))]
    pub idempotency_ttl_secs: u64,
    /// After how many seconds a mutation still holding its `Idempotency-Key` is taken to
    /// have died with its instance, so that a retry takes the key over.
    #[arg(long, env = "NEEDTOKNOW_IDEMPOTENCY_ABANDON_SECS", default_value = "60",
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub idempotency_abandon_secs: u64,
    /// Largest document (identity scan, receipt) an upload may carry, in bytes.
    #[arg(long, env = "NEEDTOKNOW_MAX_DOCUMENT_BYTES", default_value = "10485760",
          value_parser = clap::value_parser!(u64).range(1024..=256 * 1024 * 1024))]
    pub max_document_bytes: u64,
    /// Requests per API token per minute (HTTP 429 `RATE_LIMITED` above it).
    #[arg(long, env = "NEEDTOKNOW_REQUESTS_PER_MINUTE", default_value = "600",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub requests_per_minute: u64,
    /// `requestReveal` calls per agent per hour.
    #[arg(long, env = "NEEDTOKNOW_REVEALS_PER_HOUR", default_value = "30",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub reveals_per_hour: u64,
    /// `verifyCustomerIdentity` calls per agent and ticket per hour.
    #[arg(long, env = "NEEDTOKNOW_IDENTITY_CHECKS_PER_HOUR", default_value = "5",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub identity_checks_per_hour: u64,
    /// SSO: the identity provider's issuer (`iss`); setting it turns SSO tokens on.
    #[arg(long, env = "NEEDTOKNOW_SSO_ISSUER")]
    pub sso_issuer: Option<String>,
    /// SSO: the audience (`aud`) tokens must be issued for.
    #[arg(long, env = "NEEDTOKNOW_SSO_AUDIENCE")]
    pub sso_audience: Option<String>,
    /// SSO: the claim holding the agent's handle.
    #[arg(
        long,
        env = "NEEDTOKNOW_SSO_HANDLE_CLAIM",
        default_value = "preferred_username"
    )]
    pub sso_handle_claim: String,
    /// SSO: a JWKS file with the provider's public keys (RS256, ES256, EdDSA).
    #[arg(
        long,
        env = "NEEDTOKNOW_SSO_JWKS_FILE",
        conflicts_with = "sso_jwks_url"
    )]
    pub sso_jwks_file: Option<PathBuf>,
    /// SSO: the provider's JWKS URL (fetched at start, then every refresh interval).
    #[arg(long, env = "NEEDTOKNOW_SSO_JWKS_URL")]
    pub sso_jwks_url: Option<String>,
    /// SSO: an HS256 shared secret (at least 32 bytes).
    #[arg(long, env = "NEEDTOKNOW_SSO_HS256_SECRET", hide_env_values = true)]
    pub sso_hs256_secret: Option<String>,
    /// SSO: clock skew tolerated on `exp` and `nbf`, in seconds.
    #[arg(long, env = "NEEDTOKNOW_SSO_LEEWAY_SECS", default_value = "30",
          value_parser = clap::value_parser!(u64).range(0..=300))]
    pub sso_leeway_secs: u64,
    /// SSO: seconds between re-reads of the JWKS.
    #[arg(long, env = "NEEDTOKNOW_SSO_JWKS_REFRESH_SECS", default_value = "600",
          value_parser = clap::value_parser!(u64).range(10..=86_400))]
    pub sso_jwks_refresh_secs: u64,
    /// Operation allow-list (a persisted-query manifest); when set, only its operations run.
    #[arg(long, env = "NEEDTOKNOW_ALLOWED_OPERATIONS")]
    pub allowed_operations: Option<PathBuf>,
    /// Seconds between retention sweeps inside the service (0: only `retention sweep`).
    #[arg(
        long,
        env = "NEEDTOKNOW_RETENTION_INTERVAL_SECS",
        default_value = "3600"
    )]
    pub retention_interval_secs: u64,
    /// Milliseconds between checks of the policy directory for changes (0: off; SIGHUP
    /// always reloads).
    #[arg(long, env = "NEEDTOKNOW_POLICY_WATCH_MS", default_value = "1000",
          value_parser = clap::value_parser!(u64).range(0..=3_600_000))]
    pub policy_watch_ms: u64,
    /// Milliseconds an authenticated token is remembered (0: off). At most 1000, so a
    /// revoked token or a disabled agent stops working on every instance within a second.
    #[arg(long, env = "NEEDTOKNOW_TOKEN_CACHE_MS", default_value = "1000",
          value_parser = clap::value_parser!(u64).range(0..=1000))]
    pub token_cache_ms: u64,
}

/// `agent` subcommands.
#[derive(Debug, Subcommand)]
pub enum AgentCommand {
    /// Create an agent and print its first API token (shown once, stored only as a hash).
    Create(CreateAgentArgs),
    /// Disable an agent and revoke all of its tokens at once.
    Disable {
        /// The agent's handle.
        handle: String,
    },
    /// Issue an additional API token for an active agent (printed once).
    Token {
        /// The agent's handle.
        handle: String,
    },
    /// Change an agent's role, team or queues (checked against the loaded policy and
    /// audited); the agent's next request uses the new facts.
    Update(UpdateAgentArgs),
}

/// Options of `agent update`.
#[derive(Debug, Args)]
pub struct UpdateAgentArgs {
    /// The agent's handle.
    pub handle: String,
    /// The new role (a role of the policy vocabulary).
    #[arg(long)]
    pub role: Option<String>,
    /// The new team.
    #[arg(long)]
    pub team: Option<String>,
    /// A topic to add to the agent's queues; repeat for several.
    #[arg(long = "add-queue")]
    pub add_queues: Vec<String>,
    /// A topic to remove from the agent's queues (even one the policy no longer defines);
    /// repeat for several.
    #[arg(long = "remove-queue")]
    pub remove_queues: Vec<String>,
}

/// Options of `agent create`.
#[derive(Debug, Args)]
pub struct CreateAgentArgs {
    /// Unique handle: lower-case letters, digits, `.`, `_` or `-`.
    #[arg(long)]
    pub handle: String,
    /// A role of the policy vocabulary (`role(...)` facts in policies/).
    #[arg(long)]
    pub role: String,
    /// The agent's team.
    #[arg(long)]
    pub team: String,
    /// A topic whose unassigned tickets the agent picks up; repeat for several.
    #[arg(long = "queue")]
    pub queues: Vec<String>,
    /// Display name (default: the handle).
    #[arg(long)]
    pub display_name: Option<String>,
    /// A service account for a channel integration (a chat widget's backend, an email
    /// gateway): same token format, never signed in by SSO.
    #[arg(long)]
    pub service: bool,
}

/// An origin is `scheme://host[:port]`, nothing more.
fn parse_origin(value: &str) -> Result<String, String> {
    let value = value.trim().trim_end_matches('/');
    let rest = value
        .strip_prefix("https://")
        .or_else(|| value.strip_prefix("http://"))
        .ok_or("an origin starts with https:// or http:// (NEEDTOKNOW_CORS_ORIGINS)")?;
    if rest.is_empty() || rest.contains(['/', '?', '#', '*', ' ']) {
        return Err(
            "an origin is scheme://host[:port], no path or wildcard (NEEDTOKNOW_CORS_ORIGINS)"
                .into(),
        );
    }
    Ok(value.to_owned())
}

impl GlobalArgs {
    /// Settings for commands that only need the database and policies.
    pub fn settings(&self) -> Result<Settings, String> {
        let database = DatabaseSettings::from_url(self.database_url.as_deref(), &self.data_dir)?;
        let mut settings = Settings::for_data_dir(&self.data_dir, database);
        settings.policy_dir = self.policy_dir.clone();
        settings.database_timeout = Duration::from_secs(self.database_timeout_secs);
        settings.mode = Mode::Production;
        settings.max_grant = Duration::from_secs(self.max_grant_secs);
        settings.report_agent_identities = self.report_agent_identities;
        settings.master_key = self
            .master_key
            .as_deref()
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .map(|k| crate::config::Secret::new(k.to_owned()));
        if let Some(file) = &self.master_key_file {
            settings.master_key_file = file.clone();
        }
        settings.erasure_ledger = self.erasure_ledger.clone();
        settings.retention = crate::retention::RetentionPolicy::parse(&self.retention)?;
        settings.grants = match self
            .redis_url
            .as_deref()
            .map(str::trim)
            .filter(|u| !u.is_empty())
        {
            None => GrantStoreSettings::Memory,
            Some(url) if url.starts_with("redis://") || url.starts_with("rediss://") => {
                GrantStoreSettings::Redis {
                    url: crate::config::Secret::new(url.to_owned()),
                    prefix: self.redis_prefix.clone(),
                    timeout: Duration::from_millis(self.redis_timeout_ms),
                }
            }
            Some(_) => {
                return Err(
                    "REDIS_URL: must start with redis:// or rediss:// (value not shown)".into(),
                )
            }
        };
        Ok(settings)
    }
}

impl ServeArgs {
    /// The full settings of `serve`.
    pub fn settings(&self, global: &GlobalArgs) -> Result<Settings, String> {
        let mut settings = global.settings()?;
        settings.listen = self.listen;
        settings.demo = self.demo;
        settings.mode = if self.demo { Mode::Dev } else { self.mode };
        settings.max_body_bytes = usize::try_from(self.max_body_bytes)
            .map_err(|_| "NEEDTOKNOW_MAX_BODY_BYTES: too large for this machine".to_owned())?;
        settings.workers = self.workers;
        settings.policy_watch =
            (self.policy_watch_ms > 0).then(|| Duration::from_millis(self.policy_watch_ms));
        settings.token_cache = Duration::from_millis(self.token_cache_ms);
        settings.retention_interval = (self.retention_interval_secs > 0)
            .then(|| Duration::from_secs(self.retention_interval_secs));
        settings.limits = crate::limits::QueryLimits {
            document_bytes: self.max_query_bytes,
            aliases: self.max_aliases,
            root_fields: self.max_root_fields,
            depth: self.max_depth,
            complexity: self.max_complexity,
            directives: self.max_directives,
            page_size: self.max_page_size,
            recursion: self.max_recursion as usize,
        };
        settings.introspection = self.introspection.unwrap_or(settings.mode == Mode::Dev);
        settings.cors_origins = self.cors_origins.clone();
        settings.requests_per_minute = self.requests_per_minute;
        settings.idempotency_ttl = Duration::from_secs(self.idempotency_ttl_secs);
        settings.idempotency_abandon = Duration::from_secs(self.idempotency_abandon_secs);
        settings.max_document_bytes = usize::try_from(self.max_document_bytes)
            .map_err(|_| "NEEDTOKNOW_MAX_DOCUMENT_BYTES: too large for this machine".to_owned())?;
        settings.reveals_per_hour = self.reveals_per_hour;
        settings.identity_checks_per_hour = self.identity_checks_per_hour;
        settings.sso = self.sso_settings()?;
        settings.allowed_operations = self.allowed_operations.clone();
        Ok(settings)
    }

    fn sso_settings(&self) -> Result<Option<crate::agents::sso::SsoSettings>, String> {
        use crate::agents::sso::{JwksSource, SsoSettings};
        let Some(issuer) = self
            .sso_issuer
            .as_deref()
            .map(str::trim)
            .filter(|i| !i.is_empty())
        else {
            let stray = self.sso_audience.is_some()
                || self.sso_jwks_file.is_some()
                || self.sso_jwks_url.is_some()
                || self.sso_hs256_secret.is_some();
            return if stray {
                Err("NEEDTOKNOW_SSO_ISSUER: required when any other NEEDTOKNOW_SSO_* is set".into())
            } else {
                Ok(None)
            };
        };
        let audience = self
            .sso_audience
            .as_deref()
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .ok_or("NEEDTOKNOW_SSO_AUDIENCE: required with NEEDTOKNOW_SSO_ISSUER")?;
        let jwks = match (&self.sso_jwks_file, &self.sso_jwks_url) {
            (Some(path), _) => Some(JwksSource::File(path.clone())),
            (None, Some(url)) if url.starts_with("https://") || url.starts_with("http://") => {
                Some(JwksSource::Url(url.clone()))
            }
            (None, Some(_)) => {
                return Err("NEEDTOKNOW_SSO_JWKS_URL: must be an http(s) URL".into());
            }
            (None, None) => None,
        };
        if jwks.is_none() && self.sso_hs256_secret.is_none() {
            return Err("SSO needs keys: set NEEDTOKNOW_SSO_JWKS_FILE, NEEDTOKNOW_SSO_JWKS_URL or NEEDTOKNOW_SSO_HS256_SECRET".into());
        }
        if self.sso_hs256_secret.as_ref().is_some_and(|s| s.len() < 32) {
            return Err("NEEDTOKNOW_SSO_HS256_SECRET: must be at least 32 bytes".into());
        }
        Ok(Some(SsoSettings {
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            handle_claim: self.sso_handle_claim.clone(),
            jwks,
            hs256_secret: self
                .sso_hs256_secret
                .clone()
                .map(crate::config::Secret::new),
            leeway: Duration::from_secs(self.sso_leeway_secs),
            jwks_refresh: Duration::from_secs(self.sso_jwks_refresh_secs),
        }))
    }
}
