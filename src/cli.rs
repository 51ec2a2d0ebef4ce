//! The `needtoknow` command line: one binary, one subcommand per job.
//!
//! Settings are flags with an environment variable each, as clap reads them; [`parse_from`]
//! notes which of the two gave each value, and [`Invocation::configuration`] hands them to
//! [`crate::config`] as the top two layers, over the config file and the built-in defaults.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;

use clap::parser::ValueSource;
use clap::{ArgMatches, Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use figment::value::Dict;
use serde::Serialize;

use crate::config::{Configuration, LogFormat, Mode, Overrides, RawSettings, Spelling};

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

/// A secret given as a flag or environment variable (a URL with a password, a key): its
/// `Debug` is `[redacted]`, so printing the parsed command line (`{:?}`) cannot leak it,
/// while it serializes as itself into the configuration layers, which keep it in a
/// `config::Secret` from there on.
#[derive(Clone, Serialize)]
#[serde(transparent)]
pub struct Concealed(String);

impl Concealed {
    fn parse(value: &str) -> Result<Concealed, std::convert::Infallible> {
        Ok(Concealed(value.to_owned()))
    }
}

impl std::fmt::Debug for Concealed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(crate::config::REDACTED)
    }
}

/// Settings shared by every subcommand. Each is also a key of the config file and has a
/// built-in default ([`RawSettings`]); a flag given here wins over its environment variable,
/// which wins over the file. (`--help` shows the defaults, see [`command`].)
#[derive(Debug, Args, Serialize)]
pub struct GlobalArgs {
    /// A TOML file of settings, keyed like the flags in snake_case (`max_depth = 12`);
    /// environment variables and flags override it. No file is read unless named.
    #[arg(long, global = true, env = "NEEDTOKNOW_CONFIG", value_name = "FILE")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Directory for the SQLite file, demo tokens and dev keys (created if missing).
    #[arg(long, global = true, env = "NEEDTOKNOW_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Database URL: postgres://… for PostgreSQL; default: the SQLite file in the data dir.
    #[arg(long, global = true, env = "DATABASE_URL", hide_env_values = true,
          value_parser = Concealed::parse)]
    pub database_url: Option<Concealed>,
    /// Directory of the *.polar policy files.
    #[arg(long, global = true, env = "NEEDTOKNOW_POLICY_DIR")]
    pub policy_dir: Option<PathBuf>,
    /// Log format.
    #[arg(long, global = true, env = "NEEDTOKNOW_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
    /// Log filter, e.g. `info` or `needtoknow=debug,info`.
    #[arg(long, global = true, env = "NEEDTOKNOW_LOG")]
    pub log: Option<String>,
    /// Redis for reveal grants (`redis://host:6379`); default: in-process, one instance only.
    #[arg(long, global = true, env = "REDIS_URL", hide_env_values = true,
          value_parser = Concealed::parse)]
    pub redis_url: Option<Concealed>,
    /// Prefix of every Redis key.
    #[arg(long, global = true, env = "NEEDTOKNOW_REDIS_PREFIX")]
    pub redis_prefix: Option<String>,
    /// Milliseconds a Redis call may take before it counts as failed (fail closed).
    #[arg(long, global = true, env = "NEEDTOKNOW_REDIS_TIMEOUT_MS")]
    pub redis_timeout_ms: Option<u64>,
    /// The longest a reveal grant may last in seconds, whatever the policy says.
    #[arg(long, global = true, env = "NEEDTOKNOW_MAX_GRANT_SECS")]
    pub max_grant_secs: Option<u64>,
    /// Name the agents in customer access reports (default: roles only).
    #[arg(long, global = true, env = "NEEDTOKNOW_REPORT_AGENT_IDENTITIES",
          action = clap::ArgAction::Set, value_parser = clap::builder::BoolishValueParser::new())]
    pub report_agent_identities: Option<bool>,
    /// Master keys as `VERSION:BASE64` entries separated by commas (a bare BASE64 is version
    /// 1); overrides the key file.
    #[arg(
        long,
        global = true,
        env = "NEEDTOKNOW_MASTER_KEY",
        hide_env_values = true,
        value_parser = Concealed::parse
    )]
    pub master_key: Option<Concealed>,
    /// Master key file (default: <data dir>/master-keys.json; generated in dev/demo mode).
    #[arg(long, global = true, env = "NEEDTOKNOW_MASTER_KEY_FILE")]
    pub master_key_file: Option<PathBuf>,
    /// The erasure ledger: erasures and purges recorded outside the database, re-applied at
    /// start-up after a restore (default: erasure-ledger.jsonl next to the master key file).
    #[arg(long, global = true, env = "NEEDTOKNOW_ERASURE_LEDGER")]
    pub erasure_ledger: Option<PathBuf>,
    /// Retention after resolution, `name=period` entries (periods like 7d, 12h, 0d) over the
    /// defaults `id_document=7d,transcripts=365d,transcripts_without_consent=0d`.
    #[arg(long, global = true, env = "NEEDTOKNOW_RETENTION")]
    pub retention: Option<String>,
    /// Seconds to wait for the database when connecting.
    #[arg(long, global = true, env = "NEEDTOKNOW_DATABASE_TIMEOUT_SECS")]
    pub database_timeout_secs: Option<u64>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
// Parsed once per process; boxing `serve`'s options would buy nothing.
#[allow(clippy::large_enum_variant)]
pub enum Command {
    /// Run the GraphQL service (migrations are applied on start).
    Serve(ServeArgs),
    /// Print the settings `serve` would run with (it takes the same flags), one
    /// `key = value` line each with where the value came from: default, config file,
    /// environment variable or flag. Secrets read [redacted]. Exits 2, naming the setting,
    /// when one is invalid.
    Config(ServiceArgs),
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
    /// The service's settings.
    #[command(flatten)]
    pub service: ServiceArgs,
}

/// The settings only the running service reads (`serve` uses them, `config` prints them),
/// each also a key of the config file; as with [`GlobalArgs`], a flag wins over its
/// environment variable, which wins over the file.
#[derive(Debug, Args, Serialize)]
pub struct ServiceArgs {
    /// Address to listen on.
    #[arg(long, env = "NEEDTOKNOW_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// `dev` serves GraphiQL on GET /graphql; `production` does not.
    #[arg(long, env = "NEEDTOKNOW_MODE", value_enum)]
    pub mode: Option<Mode>,
    /// Largest accepted request body in bytes; larger bodies get HTTP 413.
    #[arg(long, env = "NEEDTOKNOW_MAX_BODY_BYTES")]
    pub max_body_bytes: Option<u64>,
    /// HTTP worker threads (0: one per core).
    #[arg(long, env = "NEEDTOKNOW_WORKERS")]
    pub workers: Option<usize>,
    /// Largest GraphQL query document in bytes.
    #[arg(long, env = "NEEDTOKNOW_MAX_QUERY_BYTES")]
    pub max_query_bytes: Option<usize>,
    /// Most aliases in one query.
    #[arg(long, env = "NEEDTOKNOW_MAX_ALIASES")]
    pub max_aliases: Option<usize>,
    /// Most root fields in one operation.
    #[arg(long, env = "NEEDTOKNOW_MAX_ROOT_FIELDS")]
    pub max_root_fields: Option<usize>,
    /// Deepest selection nesting.
    #[arg(long, env = "NEEDTOKNOW_MAX_DEPTH")]
    pub max_depth: Option<usize>,
    /// Highest query complexity (one per field; list fields times their page size).
    #[arg(long, env = "NEEDTOKNOW_MAX_COMPLEXITY")]
    pub max_complexity: Option<usize>,
    /// Most directives on one field.
    #[arg(long, env = "NEEDTOKNOW_MAX_DIRECTIVES")]
    pub max_directives: Option<usize>,
    /// Deepest recursion (nesting the depth limit does not count, e.g. fragments in fragments).
    #[arg(long, env = "NEEDTOKNOW_MAX_RECURSION")]
    pub max_recursion: Option<u64>,
    /// Largest page of `tickets` (`first`).
    #[arg(long, env = "NEEDTOKNOW_MAX_PAGE_SIZE")]
    pub max_page_size: Option<i32>,
    /// Introspection and field suggestions: on in dev mode, off in production unless set.
    #[arg(long, env = "NEEDTOKNOW_INTROSPECTION", action = clap::ArgAction::Set,
          value_parser = clap::builder::BoolishValueParser::new())]
    pub introspection: Option<bool>,
    /// Agent-UI origins allowed to call the API from a browser, comma-separated
    /// (e.g. `https://agents.example.com`); none by default.
    #[arg(long, env = "NEEDTOKNOW_CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Option<Vec<String>>,
    /// How long a mutation's `Idempotency-Key` is remembered, in seconds.
    #[arg(long, env = "NEEDTOKNOW_IDEMPOTENCY_TTL_SECS")]
    pub idempotency_ttl_secs: Option<u64>,
    /// After how many seconds a mutation still holding its `Idempotency-Key` is taken to
    /// have died with its instance, so that a retry takes the key over.
    #[arg(long, env = "NEEDTOKNOW_IDEMPOTENCY_ABANDON_SECS")]
    pub idempotency_abandon_secs: Option<u64>,
    /// Largest document (identity scan, receipt) an upload may carry, in bytes.
    #[arg(long, env = "NEEDTOKNOW_MAX_DOCUMENT_BYTES")]
    pub max_document_bytes: Option<u64>,
    /// Requests per API token per minute (HTTP 429 `RATE_LIMITED` above it).
    #[arg(long, env = "NEEDTOKNOW_REQUESTS_PER_MINUTE")]
    pub requests_per_minute: Option<u64>,
    /// `requestReveal` calls per agent per hour.
    #[arg(long, env = "NEEDTOKNOW_REVEALS_PER_HOUR")]
    pub reveals_per_hour: Option<u64>,
    /// `verifyCustomerIdentity` calls per agent and ticket per hour.
    #[arg(long, env = "NEEDTOKNOW_IDENTITY_CHECKS_PER_HOUR")]
    pub identity_checks_per_hour: Option<u64>,
    /// SSO: the identity provider's issuer (`iss`); setting it turns SSO tokens on.
    #[arg(long, env = "NEEDTOKNOW_SSO_ISSUER")]
    pub sso_issuer: Option<String>,
    /// SSO: the audience (`aud`) tokens must be issued for.
    #[arg(long, env = "NEEDTOKNOW_SSO_AUDIENCE")]
    pub sso_audience: Option<String>,
    /// SSO: the claim holding the agent's handle.
    #[arg(long, env = "NEEDTOKNOW_SSO_HANDLE_CLAIM")]
    pub sso_handle_claim: Option<String>,
    /// SSO: a JWKS file with the provider's public keys (RS256, ES256, EdDSA).
    #[arg(long, env = "NEEDTOKNOW_SSO_JWKS_FILE")]
    pub sso_jwks_file: Option<PathBuf>,
    /// SSO: the provider's JWKS URL (fetched at start, then every refresh interval).
    #[arg(long, env = "NEEDTOKNOW_SSO_JWKS_URL")]
    pub sso_jwks_url: Option<String>,
    /// SSO: an HS256 shared secret (at least 32 bytes).
    #[arg(long, env = "NEEDTOKNOW_SSO_HS256_SECRET", hide_env_values = true,
          value_parser = Concealed::parse)]
    pub sso_hs256_secret: Option<Concealed>,
    /// SSO: clock skew tolerated on `exp` and `nbf`, in seconds.
    #[arg(long, env = "NEEDTOKNOW_SSO_LEEWAY_SECS")]
    pub sso_leeway_secs: Option<u64>,
    /// SSO: seconds between re-reads of the JWKS.
    #[arg(long, env = "NEEDTOKNOW_SSO_JWKS_REFRESH_SECS")]
    pub sso_jwks_refresh_secs: Option<u64>,
    /// Operation allow-list (a persisted-query manifest); when set, only its operations run.
    #[arg(long, env = "NEEDTOKNOW_ALLOWED_OPERATIONS")]
    pub allowed_operations: Option<PathBuf>,
    /// Seconds between retention sweeps inside the service (0: only `retention sweep`).
    #[arg(long, env = "NEEDTOKNOW_RETENTION_INTERVAL_SECS")]
    pub retention_interval_secs: Option<u64>,
    /// Milliseconds between checks of the policy directory for changes (0: off; SIGHUP
    /// always reloads).
    #[arg(long, env = "NEEDTOKNOW_POLICY_WATCH_MS")]
    pub policy_watch_ms: Option<u64>,
    /// Milliseconds an authenticated token is remembered (0: off). At most 1000, so a
    /// revoked token or a disabled agent stops working on every instance within a second.
    #[arg(long, env = "NEEDTOKNOW_TOKEN_CACHE_MS")]
    pub token_cache_ms: Option<u64>,
    /// Milliseconds an agent's reveal grants read from Redis are remembered (0: off). At
    /// most 1000, so a revoked grant stops revealing on every instance within a second.
    #[arg(long, env = "NEEDTOKNOW_GRANT_CACHE_MS")]
    pub grant_cache_ms: Option<u64>,
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

/// The command line as clap defines it, with each setting's built-in default added to its
/// help: the defaults live in [`RawSettings`], so clap is not told them as values (a value
/// clap filled in could not be told from one the operator gave, and would hide the file).
pub fn command() -> clap::Command {
    let defaults = RawSettings::defaults_as_text();
    let annotate = move |arg: clap::Arg| match defaults.get(arg.get_id().as_str()) {
        Some(default) => {
            let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
            arg.help(format!("{help} [default: {default}]"))
        }
        None => arg,
    };
    Cli::command()
        .mut_args(annotate.clone())
        .mut_subcommand("serve", |serve| serve.mut_args(annotate.clone()))
        .mut_subcommand("config", |config| config.mut_args(annotate))
}

/// A parsed command line: the subcommand and, for each setting clap read, whether it came
/// from an environment variable or a flag (the two top layers of [`Configuration`]).
pub struct Invocation {
    /// What was asked for.
    pub cli: Cli,
    /// The layer of each setting clap found a value for, by key.
    layers: BTreeMap<String, ValueSource>,
    /// Every setting's flag and environment variable, by key.
    spellings: BTreeMap<String, Spelling>,
}

/// Parses `args` (the program's name first) and the environment variables the flags name.
pub fn parse_from<I, T>(args: I) -> Result<Invocation, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let command = command();
    let matches = command.clone().try_get_matches_from(args)?;
    let cli = Cli::from_arg_matches(&matches)?;
    let mut invocation = Invocation {
        cli,
        layers: BTreeMap::new(),
        spellings: BTreeMap::new(),
    };
    // Global settings are matched at the top (clap copies them up from the subcommand);
    // the service's settings by the subcommand that takes them.
    invocation.read(&command, Some(&matches));
    let service = match matches.subcommand() {
        Some((name @ ("serve" | "config"), sub_matches)) => Some((name, sub_matches)),
        _ => None,
    };
    if let Some(serve) = command.find_subcommand("serve") {
        let sub_matches = service.filter(|(name, _)| *name == "serve").map(|(_, m)| m);
        invocation.read(serve, sub_matches);
    }
    if let Some((_, sub_matches)) = service.filter(|(name, _)| *name == "config") {
        if let Some(config) = command.find_subcommand("config") {
            invocation.read(config, Some(sub_matches));
        }
    }
    Ok(invocation)
}

impl Invocation {
    /// Notes the spelling of each of `command`'s settings and, given its matches, which
    /// layer each value came from. Values clap did not read (absent, or a clap default) are
    /// left to the lower layers.
    fn read(&mut self, command: &clap::Command, matches: Option<&ArgMatches>) {
        for arg in command.get_arguments() {
            let key = arg.get_id().as_str();
            if let Some(long) = arg.get_long() {
                self.spellings.insert(
                    key.to_owned(),
                    Spelling {
                        flag: format!("--{long}"),
                        env: arg.get_env().map(|env| env.to_string_lossy().into_owned()),
                    },
                );
            }
            if let Some(source @ (ValueSource::EnvVariable | ValueSource::CommandLine)) =
                matches.and_then(|m| m.value_source(key))
            {
                self.layers.insert(key.to_owned(), source);
            }
        }
    }

    /// The layered configuration: built-in defaults < the config file < environment
    /// variables < flags.
    pub fn configuration(&self) -> Result<Configuration, String> {
        let mut overrides = Overrides {
            spellings: self.spellings.clone(),
            ..Overrides::default()
        };
        let mut values = layer_values(&self.cli.global)?;
        if let Some(service) = self.cli.command.service_args() {
            values.extend(layer_values(service)?);
        }
        for (key, value) in values {
            match self.layers.get(&key) {
                Some(ValueSource::EnvVariable) => overrides.environment.insert(key, value),
                Some(_) => overrides.flags.insert(key, value),
                None => continue,
            };
        }
        // An empty NEEDTOKNOW_CONFIG names no file, as an empty DATABASE_URL names no server.
        let file = (self.cli.global.config.as_deref()).filter(|path| !path.as_os_str().is_empty());
        Configuration::load(file, overrides)
    }
}

impl Command {
    /// The service's settings, for the subcommands that take them.
    pub fn service_args(&self) -> Option<&ServiceArgs> {
        match self {
            Command::Serve(args) => Some(&args.service),
            Command::Config(args) => Some(args),
            _ => None,
        }
    }
}

/// The values of parsed arguments, keyed by field name, which is also the setting's key.
fn layer_values(args: &impl Serialize) -> Result<Dict, String> {
    match figment::value::Value::serialize(args) {
        Ok(value) => Ok(value.into_dict().unwrap_or_default()),
        // Only a path that is not UTF-8 fails here; TOML and messages need text.
        Err(error) => Err(format!("a setting is not valid text: {error}")),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::config::Origin;

    /// clap accepts its own definition: no clashing names, ids or defaults.
    #[test]
    fn the_command_line_is_well_formed() {
        command().debug_assert();
    }

    /// The parsed command line can be printed with `{:?}` without its secrets.
    #[test]
    fn secrets_given_as_flags_are_redacted_when_the_command_line_is_printed() {
        let invocation = parse_from([
            "needtoknow",
            "--database-url",
            "postgres://app:hunter2@db/needtoknow",
            "--redis-url",
            "redis://:hunter3@cache:6379",
            "--master-key",
            "hunter4hunter4hunter4hunter4hunter4hunter4AA=",
            "serve",
            "--sso-issuer",
            "https://idp.example.com",
            "--sso-hs256-secret",
            "hunter5hunter5hunter5hunter5hunter5",
        ])
        .unwrap();
        let printed = format!("{:?}", invocation.cli);
        for secret in ["hunter2", "hunter3", "hunter4", "hunter5"] {
            assert!(!printed.contains(secret), "{secret} in {printed}");
        }
        assert!(printed.contains(crate::config::REDACTED));
        assert!(
            printed.contains("idp.example.com"),
            "the rest is printed: {printed}"
        );
    }

    /// Every setting has one name in three places: its file key, its flag (the key with
    /// dashes) and its environment variable (the key upper-cased after `NEEDTOKNOW_`, but
    /// `DATABASE_URL` and `REDIS_URL`), so none can be added to one place and not the others.
    #[test]
    fn every_setting_is_a_file_key_a_flag_and_an_environment_variable() {
        let invocation = parse_from(["needtoknow", "schema"]).unwrap();
        let keys: BTreeSet<String> = figment::value::Value::serialize(RawSettings::default())
            .unwrap()
            .into_dict()
            .unwrap()
            .into_keys()
            .collect();
        let mut flags: BTreeSet<String> = invocation.spellings.keys().cloned().collect();
        // `--config` names the file and `--demo` is an action: neither is a setting.
        assert!(flags.remove("config") && flags.remove("demo"));
        assert_eq!(keys, flags);
        for key in keys {
            let spelling = &invocation.spellings[&key];
            assert_eq!(spelling.flag, format!("--{}", key.replace('_', "-")));
            let env = match key.as_str() {
                "database_url" | "redis_url" => key.to_uppercase(),
                _ => format!("NEEDTOKNOW_{}", key.to_uppercase()),
            };
            assert_eq!(spelling.env.as_deref(), Some(env.as_str()), "{key}");
        }
    }

    /// A flag is the top layer, before or after the subcommand.
    #[test]
    fn flags_are_the_top_layer_wherever_they_stand() {
        let invocation = parse_from([
            "needtoknow",
            "serve",
            "--max-depth",
            "9",
            "--data-dir",
            "/srv/needtoknow",
        ])
        .unwrap();
        let configuration = invocation.configuration().unwrap();
        assert_eq!(
            configuration.origin("max_depth"),
            Origin::Flag("--max-depth".into())
        );
        assert_eq!(
            configuration.origin("data_dir"),
            Origin::Flag("--data-dir".into())
        );
        let settings = configuration.serve_settings(false).unwrap();
        assert_eq!(settings.limits.depth, 9);
        assert_eq!(settings.data_dir, PathBuf::from("/srv/needtoknow"));
    }

    /// `config` takes the same settings as `serve`; other subcommands take none of them.
    #[test]
    fn config_takes_the_flags_of_serve() {
        let invocation = parse_from(["needtoknow", "config", "--max-page-size", "0"]).unwrap();
        let error = invocation
            .configuration()
            .unwrap()
            .serve_settings(false)
            .unwrap_err();
        assert_eq!(error, "--max-page-size: 0 is not in 1..=1000");
        assert!(parse_from(["needtoknow", "migrate", "--max-depth", "9"]).is_err());
    }
}
