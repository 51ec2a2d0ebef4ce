//! End-to-end HTTP benchmark (issue 7): the real service, as its own process, on SQLite and
//! on PostgreSQL with Redis, driven over HTTP by `wrk`.
//!
//! For each backend it seeds a fresh data directory (and, for PostgreSQL, a fresh database)
//! with `needtoknow seed` (customers = tickets / 10, 2 messages per ticket), starts
//! `needtoknow serve --demo` on it (per-token and reveal rate limits raised out of the way,
//! page size limit raised to 200, retention sweeper and policy watch off), waits for
//! `/readyz`, and measures each workload with `wrk` (one thread, C keep-alive connections,
//! default 8; installed with apt-get when missing): a warm-up run, then the measured run.
//! Requests/s and the p50 and p99 latencies are wrk's own, printed by its Lua `done()` hook:
//!
//! - **W0** `{ __typename }` as `supervisor`: the framework floor (authentication, rate
//!   limit, GraphQL);
//! - **W1** one ticket with its customer and every protected field, as `supervisor`;
//! - **W2** a page of 50 tickets, each with its customer and every protected field, as
//!   `supervisor`, under the shipped policy and under an allow-everything policy: the shipped
//!   files plus one rule making every class `PLAIN`, switched inside the same service process
//!   by SIGHUP reloads and interleaved (shipped, allow-all, shipped, …; best round of each);
//! - **W3** `requestReveal` of `email` (reveal `WITH_REASON`: granted at once, no approval)
//!   as `frontline` on a ticket assigned to them, a read of the revealed field, then
//!   `revokeReveal` of the grant, so the agent holds at most C grants, as a real agent would,
//!   instead of thousands. wrk runs C such chains at once, one per ticket, sequenced in its
//!   Lua ([`W3_SCRIPT`]); the rate counts whole cycles, the latencies are per request (all
//!   three kinds).
//!
//! Before each workload's load, one answer is checked in full: HTTP 200, no `errors`, the
//! expected data (W2 has exactly `first` edges) and, for every protected field, the access
//! level the role should get, with a value exactly when it is not `HIDDEN` (W3: one whole
//! reveal, read and revoke). Under load, wrk's `response()` hook counts every answer that is
//! not HTTP 200 or carries `errors` as a failure (W3's also checks each answer's shape: one
//! grant at once, the email `PLAIN`, the grant revoked). A failure is never throughput; any
//! failure is printed and makes the run exit 1.
//!
//! After each throughput run, N sequential requests, each bracketed by reads of the service's
//! `GET /metrics` counters, give every request's SQL statements, grant-store calls and
//! rate-limit calls; the tables show the median request, and the mean when it differs ("n/a"
//! when the service has no `/metrics`). W2 also runs at page sizes 10, 50 and 200 on 10 000
//! tickets, and at page 50 on 1 000, 10 000 and 100 000 tickets; the peak RSS (`VmHWM`) of
//! the service process is read after each dataset's last run. wrk shares the machine with the
//! service: one client thread, so the service keeps at least one core.
//!
//! Run with `cargo bench --bench e2e` (about 10 minutes on 2 cores, the release build not
//! included). It needs PostgreSQL on 127.0.0.1:5432 (user `postgres`, trust) and Redis on
//! 127.0.0.1:6379 unless only SQLite is asked for. Environment:
//!
//! - `NTK_BENCH_QUICK=1`: a smoke run of about 2-3 minutes (short windows, fewer probes);
//! - `NTK_BENCH_ONLY=sqlite|postgres`: one backend;
//! - `NTK_BENCH_SECS`, `NTK_BENCH_WARMUP_SECS`: measuring window and warm-up per run, in
//!   whole seconds (default 15 and 3; quick: 3 and 1);
//! - `NTK_BENCH_CONCURRENCY` (wrk's connections, 8), `NTK_BENCH_PROBE` (sequential requests
//!   per counter probe, 20; quick 5), `NTK_BENCH_ROUNDS` (shipped / allow-all rounds of W2,
//!   3; quick 2);
//! - `NTK_BENCH_PG` (`postgres://postgres@127.0.0.1:5432`), `NTK_BENCH_REDIS`
//!   (`redis://127.0.0.1:6379`), `NTK_BENCH_LOG` (the service's log filter, `info`).
//!
//! It prints Markdown tables (for BENCHMARKS.md) on stdout, progress on stderr, and PASS or
//! MISS for each target of issue 7.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

mod common;
use common::WrkRun;

const BIN: &str = env!("CARGO_BIN_EXE_needtoknow");
const MANIFEST: &str = env!("CARGO_MANIFEST_DIR");

/// Tickets in the main dataset (W0-W3, page sizes, the policy ratio).
const MAIN_TICKETS: u32 = 10_000;
/// Datasets of the scaling run, in tickets.
const DATASETS: [u32; 3] = [1_000, 10_000, 100_000];
/// Page sizes of the scaling run (200 is above the default limit of 100, hence
/// `NEEDTOKNOW_MAX_PAGE_SIZE`).
const PAGE_SIZES: [usize; 3] = [10, 50, 200];
/// The page size of W2.
const W2_PAGE: usize = 50;
const RSS_TARGET_MIB: f64 = 200.0;

/// Every protected field of a customer, with its access level and reveal option.
const CUSTOMER: &str = "customer { id \
    accountStatus { value access reveal } plan { value access reveal } \
    customerSince { value access reveal } region { value access reveal } \
    fullName { value access reveal } email { value access reveal } \
    phone { value access reveal } postalAddress { value access reveal } \
    dateOfBirth { value access reveal } \
    identityDocuments { value { fileName sizeBytes } access reveal } \
    paymentMethods { value { brand last4 billingAddress } access reveal } \
    invoices { value { number status amountCents } access reveal } \
    otherTickets { value { subject status } access reveal } \
    chatHistory { value { body } access reveal } }";

/// What `supervisor` gets of each protected field on their team's tickets under the shipped
/// policy (`supervisor_access` in policies/main.polar). Under allow-all, everything is PLAIN.
const SUPERVISOR_VIEW: [(&str, &str); 14] = [
    ("accountStatus", "PLAIN"),
    ("plan", "PLAIN"),
    ("customerSince", "PLAIN"),
    ("region", "PLAIN"),
    ("fullName", "PLAIN"),
    ("email", "MASKED"),
    ("phone", "MASKED"),
    ("postalAddress", "MASKED"),
    ("dateOfBirth", "HIDDEN"),
    ("identityDocuments", "HIDDEN"),
    ("paymentMethods", "MASKED"),
    ("invoices", "MASKED"),
    ("otherTickets", "PLAIN"),
    ("chatHistory", "MASKED"),
];

/// The one extra rule of the allow-everything policy: the most permissive answer wins, so
/// every class of every visible ticket becomes PLAIN.
const ALLOW_ALL: &str =
    "field_access(_agent: Agent, _ticket: Ticket, _class: String, \"PLAIN\", \"NONE\");\n";

fn main() {
    let config = Config::from_env();
    if let Err(why) = common::ensure_wrk() {
        // Unlike the peer bench, this one has nothing to show without load: a failure.
        eprintln!("e2e: {why}");
        std::process::exit(1);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let policies = policy_copy();
    println!("{}", header(&config));
    let mut failures = 0;
    for backend in config.backends.clone() {
        let results = runtime.block_on(bench_backend(&config, backend, policies.path()));
        results.print(&config);
        failures += results.failures;
    }
    drop(policies);
    if failures > 0 {
        println!("\n**FAILED: {failures} responses failed their checks (see above); the numbers are not valid.**");
        eprintln!("e2e: {failures} FAILED RESPONSES");
        std::process::exit(1);
    }
}

// ---- Configuration ---------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    fn title(self) -> &'static str {
        match self {
            Backend::Sqlite => "SQLite (in-process grant store and rate limiter)",
            Backend::Postgres => "PostgreSQL + Redis (grants and rate limits in Redis)",
        }
    }

    fn tag(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// What to run, from `NTK_BENCH_*` variables.
struct Config {
    quick: bool,
    backends: Vec<Backend>,
    /// Seconds of load before the measuring window, not measured.
    warmup: u64,
    /// Seconds of the measuring window of each run.
    window: u64,
    /// wrk's connections.
    concurrency: usize,
    /// Sequential requests whose counters are read after a run.
    probe: usize,
    /// Rounds of W2 under each policy.
    rounds: usize,
    /// PostgreSQL server URL, without a database.
    postgres: String,
    redis: String,
    /// The service's log filter.
    log: String,
}

impl Config {
    fn from_env() -> Config {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let number = |name: &str, default: f64| -> f64 {
            var(name).map_or(default, |v| {
                v.trim()
                    .parse()
                    .unwrap_or_else(|_| panic!("{name}: not a number: {v:?}"))
            })
        };
        let quick = var("NTK_BENCH_QUICK").is_some_and(|v| v != "0" && v != "false");
        let backends = match var("NTK_BENCH_ONLY").as_deref() {
            None | Some("both") => vec![Backend::Sqlite, Backend::Postgres],
            Some("sqlite") => vec![Backend::Sqlite],
            Some("postgres") => vec![Backend::Postgres],
            Some(other) => panic!("NTK_BENCH_ONLY: sqlite, postgres or both, not {other:?}"),
        };
        let (window, warmup, probe, rounds) = if quick {
            (3.0, 1.0, 5.0, 2.0)
        } else {
            (15.0, 3.0, 20.0, 3.0)
        };
        // wrk's `-d` takes whole seconds.
        let seconds = |name: &str, default: f64| number(name, default).ceil().max(1.0) as u64;
        Config {
            quick,
            backends,
            warmup: seconds("NTK_BENCH_WARMUP_SECS", warmup),
            window: seconds("NTK_BENCH_SECS", window),
            concurrency: number("NTK_BENCH_CONCURRENCY", 8.0).max(1.0) as usize,
            probe: number("NTK_BENCH_PROBE", probe).max(1.0) as usize,
            rounds: number("NTK_BENCH_ROUNDS", rounds).max(1.0) as usize,
            postgres: var("NTK_BENCH_PG")
                .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432".into())
                .trim_end_matches('/')
                .to_owned(),
            redis: var("NTK_BENCH_REDIS").unwrap_or_else(|| "redis://127.0.0.1:6379".into()),
            log: var("NTK_BENCH_LOG").unwrap_or_else(|| "info".into()),
        }
    }
}

/// The machine, the build and the run's parameters.
fn header(config: &Config) -> String {
    let cpu = common::machine::cpu_model();
    let memory = common::machine::kb_field_mib("/proc/meminfo", "MemTotal")
        .map_or("unknown".into(), |mib| format!("{:.1} GiB", mib / 1024.0));
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let output = |program: &str, args: &[&str]| {
        Command::new(program)
            .args(args)
            .current_dir(MANIFEST)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map_or("unknown".into(), |o| {
                String::from_utf8_lossy(&o.stdout).trim().to_owned()
            })
    };
    let mut out = String::from("# needtoknow end-to-end benchmark (issue 7)\n\n");
    if config.quick {
        out += "**QUICK MODE**: a smoke run with short windows; the numbers are noisy.\n\n";
    }
    out += &format!(
        "- date: {}\n- machine: {cores} cores (nproc), CPU {cpu}, {memory} RAM\n\
         - build: {} (bench profile), commit {}\n\
         - load: wrk, 1 thread, {} keep-alive connections, warm-up {} s, window {} s per \
         run; counters from {} sequential requests per workload; W2 policy rounds: {}\n\
         - service: separate process `needtoknow serve --demo`, default workers (one per \
         core), JSON log with filter `{}` to a file\n",
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
        output("rustc", &["--version"]),
        output("git", &["describe", "--always", "--dirty"]),
        config.concurrency,
        config.warmup,
        config.window,
        config.probe,
        config.rounds,
        config.log,
    );
    out
}

/// A temporary policy directory: copies of the shipped `*.polar` files and `notices.json`
/// (not `tests/`, whose cases the allow-all rule would fail). `allow_all.polar` is added
/// and removed in it to switch policies.
fn policy_copy() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("ntk-e2e-policies-")
        .tempdir()
        .expect("temp dir");
    let shipped = Path::new(MANIFEST).join("policies");
    for entry in std::fs::read_dir(&shipped).expect("policies/") {
        let path = entry.expect("policies/ entry").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if path.is_file() && (name.ends_with(".polar") || name == "notices.json") {
            std::fs::copy(&path, dir.path().join(name)).expect("copy a policy file");
        }
    }
    dir
}

// ---- Datasets and the service process ------------------------------------------------------

/// A seeded data directory, and for PostgreSQL its database (dropped with it).
struct Dataset {
    dir: tempfile::TempDir,
    database: Option<(String, String)>,
    postgres: String,
    redis: String,
    seed_secs: f64,
}

impl Dataset {
    fn create(config: &Config, backend: Backend, tickets: u32, policies: &Path) -> Dataset {
        let dir = tempfile::Builder::new()
            .prefix("ntk-e2e-")
            .tempdir()
            .expect("temp dir");
        let database = (backend == Backend::Postgres).then(|| {
            let name = format!("ntk_e2e_{}_{tickets}", std::process::id());
            psql(&config.postgres, &format!("DROP DATABASE IF EXISTS {name}"))
                .and_then(|()| psql(&config.postgres, &format!("CREATE DATABASE {name}")))
                .expect("a fresh PostgreSQL database");
            (name.clone(), format!("{}/{name}", config.postgres))
        });
        let mut data = Dataset {
            dir,
            database,
            postgres: config.postgres.clone(),
            redis: config.redis.clone(),
            seed_secs: 0.0,
        };
        let started = Instant::now();
        let customers = (tickets / 10).max(1).to_string();
        let output = data
            .command(policies)
            .args(["seed", "--customers", &customers, "--tickets"])
            .arg(tickets.to_string())
            .args(["--messages-per-ticket", "2"])
            .env("NEEDTOKNOW_LOG", "warn")
            .output()
            .expect("needtoknow seed runs");
        assert!(
            output.status.success(),
            "needtoknow seed failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        data.seed_secs = started.elapsed().as_secs_f64();
        data
    }

    /// The binary, with this dataset's data directory, database and grant store.
    fn command(&self, policies: &Path) -> Command {
        let mut command = Command::new(BIN);
        command
            .current_dir(MANIFEST)
            .env("NEEDTOKNOW_DATA_DIR", self.dir.path())
            .env("NEEDTOKNOW_POLICY_DIR", policies)
            .env_remove("NEEDTOKNOW_MASTER_KEY")
            .env_remove("NEEDTOKNOW_MASTER_KEY_FILE");
        match &self.database {
            Some((name, url)) => {
                command
                    .env("DATABASE_URL", url)
                    .env("REDIS_URL", &self.redis)
                    .env("NEEDTOKNOW_REDIS_PREFIX", format!("ntk-e2e-{name}"));
            }
            None => {
                command.env_remove("DATABASE_URL").env_remove("REDIS_URL");
            }
        }
        command
    }
}

impl Drop for Dataset {
    fn drop(&mut self) {
        if let Some((name, _)) = &self.database {
            let dropped = psql(
                &self.postgres,
                &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            );
            if let Err(error) = dropped {
                eprintln!("could not drop database {name}: {error}");
            }
            forget_redis_keys(&self.redis, &format!("ntk-e2e-{name}"));
        }
    }
}

/// Deletes the keys under `prefix` if `redis-cli` is at hand (they expire anyway).
fn forget_redis_keys(url: &str, prefix: &str) {
    let pattern = format!("{prefix}:*");
    let Ok(scan) = Command::new("redis-cli")
        .args(["-u", url, "--scan", "--pattern", &pattern])
        .output()
    else {
        return;
    };
    let listed = String::from_utf8_lossy(&scan.stdout).into_owned();
    let keys: Vec<&str> = listed.lines().filter(|k| !k.is_empty()).collect();
    for chunk in keys.chunks(500) {
        let _ = Command::new("redis-cli")
            .args(["-u", url, "DEL"])
            .args(chunk)
            .output();
    }
}

/// Runs one statement on the server's `postgres` database with the `psql` client.
fn psql(server: &str, sql: &str) -> Result<(), String> {
    let output = Command::new("psql")
        .arg(format!("{server}/postgres"))
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .output()
        .map_err(|e| format!("psql (the PostgreSQL client) does not run: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "psql {sql:?}: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// Which policy the service runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Policy {
    Shipped,
    AllowAll,
}

/// A running `needtoknow serve --demo`, stopped (SIGTERM) when dropped.
struct Service {
    child: Child,
    api: Api,
    tokens: BTreeMap<String, String>,
    log: PathBuf,
    policies: PathBuf,
    policy: Policy,
    reloads: u64,
}

impl Service {
    async fn start(config: &Config, data: &Dataset, policies: &Path) -> Service {
        // The service always starts on the shipped policy.
        let _ = std::fs::remove_file(policies.join("allow_all.polar"));
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let log = data.dir.path().join(format!("serve-{port}.log"));
        let child = data
            .command(policies)
            .args(["serve", "--demo"])
            .env("NEEDTOKNOW_LISTEN", format!("127.0.0.1:{port}"))
            .env("NEEDTOKNOW_LOG", &config.log)
            .env("NEEDTOKNOW_LOG_FORMAT", "json")
            .env("NEEDTOKNOW_REQUESTS_PER_MINUTE", "1000000000")
            .env("NEEDTOKNOW_REVEALS_PER_HOUR", "1000000000")
            .env("NEEDTOKNOW_MAX_PAGE_SIZE", "200")
            .env("NEEDTOKNOW_MAX_COMPLEXITY", "1000000")
            .env("NEEDTOKNOW_POLICY_WATCH_MS", "0")
            .env("NEEDTOKNOW_RETENTION_INTERVAL_SECS", "0")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("service log file"))
            .spawn()
            .expect("needtoknow serve starts");
        let mut service = Service {
            child,
            api: Api::new(format!("http://127.0.0.1:{port}")),
            tokens: BTreeMap::new(),
            log,
            policies: policies.to_owned(),
            policy: Policy::Shipped,
            reloads: 0,
        };
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            if let Ok(Some(status)) = service.child.try_wait() {
                panic!("the service exited ({status}):\n{}", service.log_tail());
            }
            if service.ready().await.is_some() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the service is not ready after 300 s:\n{}",
                service.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let tokens =
            std::fs::read(data.dir.path().join("demo-tokens.json")).expect("demo-tokens.json");
        service.tokens = serde_json::from_slice(&tokens).expect("demo tokens are JSON");
        service
    }

    /// `/readyz`'s policy status once the service is fully ready (grant store included).
    async fn ready(&self) -> Option<Value> {
        let response = self
            .api
            .client
            .get(format!("{}/readyz", self.api.base))
            .send()
            .await
            .ok()?;
        let body: Value = response.json().await.ok()?;
        (body["status"] == "ready").then(|| body["checks"]["policy"].clone())
    }

    fn token(&self, handle: &str) -> String {
        self.tokens
            .get(handle)
            .unwrap_or_else(|| panic!("no demo token for {handle}"))
            .clone()
    }

    /// Switches policy with a hot reload (SIGHUP) of the same process, and waits for it.
    async fn use_policy(&mut self, policy: Policy) {
        if self.policy == policy {
            return;
        }
        let file = self.policies.join("allow_all.polar");
        match policy {
            Policy::AllowAll => std::fs::write(&file, ALLOW_ALL).expect("write allow_all.polar"),
            Policy::Shipped => std::fs::remove_file(&file).expect("remove allow_all.polar"),
        }
        let hup = Command::new("kill")
            .args(["-HUP", &self.child.id().to_string()])
            .status()
            .expect("kill -HUP");
        assert!(hup.success(), "kill -HUP failed");
        self.reloads += 1;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.ready().await {
                assert!(
                    status["lastReloadError"].is_null(),
                    "policy reload refused: {}",
                    status["lastReloadError"]
                );
                if status["reloads"].as_u64() == Some(self.reloads) {
                    break;
                }
            }
            assert!(Instant::now() < deadline, "the policy did not reload");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.policy = policy;
    }

    /// The peak resident set size of the service process so far (`VmHWM`), in MiB.
    fn peak_rss_mib(&self) -> Option<f64> {
        common::machine::process_mib(self.child.id(), "VmHWM")
    }

    /// How many ERROR and WARN lines the service logged, with the first distinct ones.
    fn log_summary(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let problems = common::log_problems(&log);
        let mut first: Vec<String> = Vec::new();
        for (problem, _) in &problems.distinct {
            let text = format!("{} \"{}\"", problem.level, problem.message);
            if first.len() < 3 && !first.contains(&text) {
                first.push(text);
            }
        }
        let mut summary = format!(
            "{} ERROR, {} WARN lines",
            problems.errors, problems.warnings
        );
        if !first.is_empty() {
            summary += &format!(" ({})", first.join("; "));
        }
        summary
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = Command::new("kill")
                .args(["-TERM", &self.child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(15);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

// ---- HTTP client and checks ------------------------------------------------------------------

/// The service's HTTP API, over one keep-alive connection pool: the checks, probes and
/// set-up requests (wrk sends the load).
#[derive(Clone)]
struct Api {
    client: reqwest::Client,
    base: String,
}

/// The `/metrics` counters this benchmark reads (NaN when one is missing).
#[derive(Clone, Copy, Debug, Default)]
struct Counters {
    sql: f64,
    grants: f64,
    limits: f64,
}

impl Counters {
    fn since(self, before: Counters) -> Counters {
        Counters {
            sql: self.sql - before.sql,
            grants: self.grants - before.grants,
            limits: self.limits - before.limits,
        }
    }

    fn plus(self, other: Counters) -> Counters {
        Counters {
            sql: self.sql + other.sql,
            grants: self.grants + other.grants,
            limits: self.limits + other.limits,
        }
    }
}

impl Api {
    fn new(base: String) -> Api {
        let client = reqwest::Client::builder()
            // Below the service's 5 s keep-alive, so an idle pooled connection is never
            // reused just as the service closes it (a client-side race, not a failure).
            .pool_idle_timeout(Duration::from_secs(2))
            .tcp_nodelay(true)
            .timeout(Duration::from_secs(60))
            .build()
            .expect("HTTP client");
        Api { client, base }
    }

    /// Posts a GraphQL body; returns `data` if the answer is HTTP 200 without `errors`.
    async fn graphql(&self, token: &str, body: String) -> Result<Value, String> {
        let response = self
            .client
            .post(format!("{}/graphql", self.base))
            .bearer_auth(token)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| format!("request failed: {e}"))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| format!("reading the body: {e}"))?;
        let snippet = || String::from_utf8_lossy(&bytes[..bytes.len().min(300)]).into_owned();
        if status != reqwest::StatusCode::OK {
            return Err(format!("HTTP {status}: {}", snippet()));
        }
        let mut value: Value =
            serde_json::from_slice(&bytes).map_err(|e| format!("not JSON ({e}): {}", snippet()))?;
        if let Some(errors) = value.get("errors") {
            return Err(format!("errors: {errors}"));
        }
        match value.get_mut("data") {
            Some(data) if data.is_object() => Ok(data.take()),
            _ => Err(format!("no data: {}", snippet())),
        }
    }

    async fn query(&self, token: &str, query: &str) -> Result<Value, String> {
        self.graphql(token, json!({ "query": query }).to_string())
            .await
    }

    /// Where wrk sends its load.
    fn graphql_url(&self) -> String {
        format!("{}/graphql", self.base)
    }

    /// The counters, or `None` if the service has no `/metrics`.
    async fn counters(&self) -> Option<Counters> {
        let response = self
            .client
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .ok()?;
        if !response.status().is_success() {
            return None;
        }
        let text = response.text().await.ok()?;
        let mut values: HashMap<&str, f64> = HashMap::new();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let mut parts = line.split_whitespace();
            if let (Some(name), Some(value)) = (parts.next(), parts.next()) {
                // Labelled series add up to their metric.
                let name = name.split('{').next().unwrap_or(name);
                *values.entry(name).or_default() += value.parse::<f64>().unwrap_or(f64::NAN);
            }
        }
        let get = |name: &str| values.get(name).copied().unwrap_or(f64::NAN);
        Some(Counters {
            sql: get("needtoknow_sql_statements_total"),
            grants: get("needtoknow_grant_store_calls_total"),
            limits: get("needtoknow_rate_limit_calls_total"),
        })
    }

    /// W3's first step: returns the new grant's id.
    async fn reveal(&self, token: &str, ticket: &str) -> Result<String, String> {
        let data = self.graphql(token, w3_body(W3_REVEAL, ticket)).await?;
        let outcome = &data["requestReveal"];
        match outcome["grants"].as_array().map(Vec::as_slice) {
            Some([grant]) if grant["field"] == "email" && outcome["request"].is_null() => grant
                ["id"]
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| format!("grant without id: {outcome}")),
            _ => Err(format!("expected one email grant at once: {outcome}")),
        }
    }

    /// W3's second step: the revealed field is PLAIN, with its grant's expiry.
    async fn read_revealed(&self, token: &str, ticket: &str) -> Result<(), String> {
        let data = self.graphql(token, w3_body(W3_READ, ticket)).await?;
        let email = &data["ticket"]["customer"]["email"];
        let value = email["value"].as_str().unwrap_or_default();
        if email["access"] != "PLAIN"
            || email["grantExpiresAt"].is_null()
            || !value.contains('@')
            || value.contains('*')
        {
            return Err(format!("revealed email not plain: {email}"));
        }
        Ok(())
    }

    /// Ends a W3 cycle: the holder revokes the grant.
    async fn revoke(&self, token: &str, grant: &str) -> Result<(), String> {
        let data = self.graphql(token, w3_body(W3_REVOKE, grant)).await?;
        if data["revokeReveal"]["id"] != grant {
            return Err(format!("revoke answered {data}"));
        }
        Ok(())
    }

    /// Revokes every grant `token`'s agent still holds; returns how many there were.
    async fn revoke_all(&self, token: &str) -> Result<usize, String> {
        let data = self
            .query(token, "{ myGrants(first: 200) { nodes { id } } }")
            .await?;
        let grants = data["myGrants"]["nodes"]
            .as_array()
            .map_or(&[][..], Vec::as_slice);
        for grant in grants {
            let id = grant["id"].as_str().ok_or("a grant without id")?;
            self.revoke(token, id).await?;
        }
        Ok(grants.len())
    }
}

/// W3's requests, each with one variable `$v`: the ticket (reveal, read) or the grant
/// (revoke). Shared by the full check, the counter probe and wrk's script, so all three
/// send the same requests; every answer names its ticket, which the script relies on.
const W3_REVEAL: &str = "mutation ($v: ID!) { requestReveal(ticketId: $v, fields: [\"email\"], \
    reason: \"customer asked to confirm the address we write to\") \
    { grants { id ticketId field } request { id } alreadyVisible } }";
const W3_READ: &str = "query ($v: ID!) { ticket(id: $v) { id customer \
    { email { value access grantExpiresAt } } } }";
const W3_REVOKE: &str = "mutation ($v: ID!) { revokeReveal(grantId: $v) { id ticketId } }";

/// The JSON body of one of W3's requests.
fn w3_body(query: &str, variable: &str) -> String {
    json!({ "query": query, "variables": { "v": variable } }).to_string()
}

/// Checks one customer as `supervisor` sees it: every protected field at its level, with a
/// value exactly when it is not HIDDEN, and the email masked only under the shipped policy.
fn check_customer(customer: &Value, policy: Policy) -> Result<(), String> {
    for (field, shipped) in SUPERVISOR_VIEW {
        let want = match policy {
            Policy::Shipped => shipped,
            Policy::AllowAll => "PLAIN",
        };
        let got = customer[field]["access"].as_str().unwrap_or("missing");
        if got != want {
            return Err(format!("{field}: access {got}, expected {want}"));
        }
        if customer[field]["value"].is_null() != (want == "HIDDEN") {
            return Err(format!(
                "{field}: {want} with value {}",
                customer[field]["value"]
            ));
        }
    }
    let email = customer["email"]["value"].as_str().unwrap_or_default();
    if email.contains("***") != (policy == Policy::Shipped) || !email.contains('@') {
        return Err(format!("email {email:?} under the {policy:?} policy"));
    }
    Ok(())
}

type Check = Box<dyn Fn(&Value) -> Result<(), String>>;

/// One of W0-W2: a GraphQL request, sent the same each time, and the full check of its
/// `data`.
struct Work {
    token: String,
    body: String,
    check: Check,
}

impl Work {
    fn query(token: &str, query: &str, check: Check) -> Work {
        Work {
            token: token.to_owned(),
            body: json!({ "query": query }).to_string(),
            check,
        }
    }

    fn w0(token: &str) -> Work {
        Work::query(
            token,
            "{ __typename }",
            Box::new(|data| match data["__typename"].as_str() {
                Some("Query") => Ok(()),
                _ => Err(format!("unexpected {data}")),
            }),
        )
    }

    fn w1(token: &str, ticket: &str) -> Work {
        let expected = ticket.to_owned();
        Work::query(
            token,
            &format!(
                "{{ ticket(id: {}) {{ id subject {CUSTOMER} }} }}",
                json!(ticket)
            ),
            Box::new(move |data| {
                if data["ticket"]["id"] != expected.as_str() {
                    return Err(format!("wrong ticket: {}", data["ticket"]["id"]));
                }
                check_customer(&data["ticket"]["customer"], Policy::Shipped)
            }),
        )
    }

    fn w2(token: &str, size: usize, policy: Policy) -> Work {
        Work::query(
            token,
            &page_query(size),
            Box::new(move |data| {
                let edges = data["tickets"]["edges"]
                    .as_array()
                    .map_or(&[][..], Vec::as_slice);
                if edges.len() != size {
                    return Err(format!("{} edges, expected {size}", edges.len()));
                }
                edges
                    .iter()
                    .try_for_each(|edge| check_customer(&edge["node"]["customer"], policy))
            }),
        )
    }

    /// Sends the request once and checks the answer in full.
    async fn once(&self, api: &Api) -> Result<(), String> {
        let data = api.graphql(&self.token, self.body.clone()).await?;
        (self.check)(&data)
    }
}

/// W2's query for one page size.
fn page_query(size: usize) -> String {
    format!("{{ tickets(first: {size}) {{ edges {{ node {{ id subject {CUSTOMER} }} }} }} }}")
}

/// Selection nesting depth of a query: its deepest `{`, the operation's selection set
/// counting 1. For W2 that is 7: tickets > edges > node > customer > paymentMethods >
/// value > brand.
fn depth(query: &str) -> usize {
    let (mut level, mut deepest, mut in_string) = (0usize, 0, false);
    for c in query.chars() {
        match c {
            '"' => in_string = !in_string,
            '{' if !in_string => {
                level += 1;
                deepest = deepest.max(level);
            }
            '}' if !in_string => level = level.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

// ---- W3 in wrk ----------------------------------------------------------------------------

/// W3 under wrk: C chains at once, one per ticket, each `requestReveal` → read of the
/// revealed email → `revokeReveal` of its grant → `requestReveal` again. wrk's hooks do not
/// say which connection an answer came on, so each answer names its chain itself (the ticket
/// id it carries) and queues the chain's next request; `request()` sends the oldest queued
/// one. With as many chains as connections, a connection always finds one queued; if it
/// does not (a chain broke on an answer W3 did not accept), it sends `{ __typename }`, which
/// W3 does not accept either, so a broken chain keeps showing as failures. An answer is
/// accepted only in the exact shape its step expects: one email grant at once, the email
/// PLAIN with an address and the grant's expiry, the revoke of the chain's own grant.
///
/// Globals set before it (see [`w3_script`]): `TICKETS`, `REVEAL_BODY` and `READ_BODY` (by
/// ticket), `REVOKE_HEAD` and `REVOKE_TAIL` (around a grant id).
const W3_SCRIPT: &str = r#"
local queue, first, last = {}, 1, 0
local reveal, read, grant, filler = {}, {}, {}, nil
local function push(request) last = last + 1; queue[last] = request end
function init(args)
  -- Formatted here, not at load: wrk sets the Host header just before init().
  for _, t in ipairs(TICKETS) do
    reveal[t] = wrk.format(nil, nil, nil, REVEAL_BODY[t])
    read[t] = wrk.format(nil, nil, nil, READ_BODY[t])
    push(reveal[t])
  end
  filler = wrk.format(nil, nil, nil, '{"query":"{ __typename }"}')
end
local checked = false
function request()
  -- wrk calls request() once before the run (in its first thread: ours), to check that
  -- the answer parses, and sends nothing: that call must not take a chain's request.
  if not checked then
    checked = true
    return filler
  end
  if first > last then return filler end
  local r = queue[first]
  queue[first] = nil
  first = first + 1
  return r
end
-- The chain's next request after `body`, or nil if W3 does not accept it.
local function after(body)
  local g, t = string.match(body, '^{"data":{"requestReveal":{"grants":%[{"id":"([^"]+)","ticketId":"([^"]+)","field":"email"}%],"request":null,"alreadyVisible":%[%]}}}$')
  if g and read[t] and not grant[t] then
    grant[t] = g
    return read[t]
  end
  t = string.match(body, '^{"data":{"ticket":{"id":"([^"]+)","customer":{"email":{"value":"[^"*]*@[^"*]*","access":"PLAIN","grantExpiresAt":"[^"]+"}}}}}$')
  if t and grant[t] then
    return wrk.format(nil, nil, nil, REVOKE_HEAD .. grant[t] .. REVOKE_TAIL)
  end
  g, t = string.match(body, '^{"data":{"revokeReveal":{"id":"([^"]+)","ticketId":"([^"]+)"}}}$')
  if g and grant[t] == g then
    grant[t] = nil
    cycles = cycles + 1
    return reveal[t]
  end
end
function response(status, headers, body)
  local following = status == 200 and after(body)
  if following then push(following) else bad = bad + 1 end
end
"#;

/// The wrk script of W3 for `token` on `tickets` (one chain each).
fn w3_script(token: &str, tickets: &[String]) -> String {
    use common::lua_string;
    let by_ticket = |query: &str| {
        let entries: Vec<String> = tickets
            .iter()
            .map(|t| format!("[{}] = {}", lua_string(t), lua_string(&w3_body(query, t))))
            .collect();
        format!("{{ {} }}", entries.join(", "))
    };
    let list: Vec<String> = tickets.iter().map(|t| lua_string(t)).collect();
    // The script puts a grant id between head and tail as the reveal's answer spelled it,
    // which is already escaped for a JSON string.
    let revoke = w3_body(W3_REVOKE, "@grant@");
    let (head, tail) = revoke.split_once("@grant@").expect("the placeholder");
    format!(
        "TICKETS = {{ {} }}\nREVEAL_BODY = {}\nREAD_BODY = {}\nREVOKE_HEAD = {}\n\
         REVOKE_TAIL = {}\nwrk.headers[\"Authorization\"] = {}\n{W3_SCRIPT}{}",
        list.join(", "),
        by_ticket(W3_REVEAL),
        by_ticket(W3_READ),
        lua_string(head),
        lua_string(tail),
        lua_string(&format!("Bearer {token}")),
        common::WRK_REPORT,
    )
}

/// Counter deltas of single requests, sent one at a time.
#[derive(Clone, Default)]
struct Probe(Vec<Counters>);

/// Which counter to read from a [`Counters`].
type Of = fn(&Counters) -> f64;
const SQL: Of = |c| c.sql;
const GRANTS: Of = |c| c.grants;
const LIMITS: Of = |c| c.limits;

impl Probe {
    fn sorted(&self, of: Of) -> Vec<f64> {
        let mut values: Vec<f64> = self.0.iter().map(of).collect();
        values.sort_by(f64::total_cmp);
        values
    }

    /// The lower median: a count that one request actually made.
    fn median(&self, of: Of) -> f64 {
        let values = self.sorted(of);
        values
            .get(values.len().saturating_sub(1) / 2)
            .copied()
            .unwrap_or(f64::NAN)
    }

    fn mean(&self, of: Of) -> f64 {
        self.0.iter().map(of).sum::<f64>() / self.0.len() as f64
    }

    fn max(&self, of: Of) -> f64 {
        self.sorted(of).last().copied().unwrap_or(f64::NAN)
    }

    /// Probes taken in step (W3's three requests), added request by request.
    fn sum(probes: &[Probe]) -> Probe {
        let n = probes.iter().map(|p| p.0.len()).min().unwrap_or(0);
        Probe(
            (0..n)
                .map(|i| {
                    probes
                        .iter()
                        .fold(Counters::default(), |sum, p| sum.plus(p.0[i]))
                })
                .collect(),
        )
    }
}

/// The counters once anything a request left running (audit writes) had time to finish.
async fn settled(api: &Api) -> Result<Counters, String> {
    tokio::time::sleep(Duration::from_millis(20)).await;
    api.counters()
        .await
        .ok_or_else(|| "/metrics stopped answering".to_owned())
}

/// Counter deltas of `n` runs of `work`, one at a time; `None` without `/metrics`.
async fn probe(api: &Api, work: &Work, n: usize) -> Result<Option<Probe>, String> {
    let Some(mut before) = api.counters().await else {
        return Ok(None);
    };
    let mut probe = Probe::default();
    for _ in 0..n {
        work.once(api).await?;
        let after = settled(api).await?;
        probe.0.push(after.since(before));
        before = after;
    }
    Ok(Some(probe))
}

/// W3's counter deltas for each of its three requests: reveal, read, revoke.
async fn probe_reveal(
    api: &Api,
    token: &str,
    ticket: &str,
    n: usize,
) -> Result<Option<[Probe; 3]>, String> {
    let mut steps: [Probe; 3] = Default::default();
    for _ in 0..n {
        let Some(start) = api.counters().await else {
            return Ok(None);
        };
        let grant = api.reveal(token, ticket).await?;
        let revealed = settled(api).await?;
        api.read_revealed(token, ticket).await?;
        let read = settled(api).await?;
        api.revoke(token, &grant).await?;
        let revoked = settled(api).await?;
        steps[0].0.push(revealed.since(start));
        steps[1].0.push(read.since(revealed));
        steps[2].0.push(revoked.since(read));
    }
    Ok(Some(steps))
}

// ---- One backend ---------------------------------------------------------------------------

/// A throughput run and the counters of the sequential requests that followed it.
struct Measured {
    run: WrkRun,
    probe: Option<Probe>,
}

/// One dataset's W2 (page 50) and the service's peak RSS.
struct DatasetResult {
    tickets: u32,
    seed_secs: f64,
    w2: Measured,
    peak_rss_mib: Option<f64>,
}

struct Results {
    backend: Backend,
    w0: Measured,
    w1: Measured,
    rounds: Vec<(Policy, Measured)>,
    pages: Vec<(usize, Measured)>,
    w3: Measured,
    w3_steps: Option<[Probe; 3]>,
    datasets: Vec<DatasetResult>,
    failures: u64,
    errors: Vec<String>,
    logs: Vec<String>,
}

/// Collects failures and log summaries while measuring.
struct Bench<'a> {
    config: &'a Config,
    backend: Backend,
    failures: u64,
    errors: Vec<String>,
    logs: Vec<String>,
}

impl Bench<'_> {
    /// Notes what the service logged, before it stops.
    fn note_log(&mut self, tickets: u32, service: &Service) {
        let summary = service.log_summary();
        eprintln!(
            "[{}] service log ({tickets} tickets): {summary}",
            self.backend.tag()
        );
        self.logs.push(format!("{tickets} tickets: {summary}"));
    }

    fn fail(&mut self, what: &str, error: String) {
        eprintln!("[{}] FAILED {what}: {error}", self.backend.tag());
        self.failures += 1;
        if self.errors.len() < 10 {
            self.errors.push(format!("{what}: {error}"));
        }
    }

    /// W0-W2: checks one answer of `work` in full, loads it with wrk (warm-up, then the
    /// measured window) and, if `probed`, reads its counters around sequential requests.
    async fn measure(&mut self, api: &Api, label: &str, work: Work, probed: bool) -> Measured {
        if let Err(error) = work.once(api).await {
            self.fail(label, error);
        }
        let script = common::repeat_script(&work.token, &work.body);
        self.wrk(
            api,
            &format!("{label} (warm-up)"),
            &script,
            self.config.warmup,
        );
        let run = self.wrk(api, label, &script, self.config.window);
        let probe = if probed {
            probe(api, &work, self.config.probe)
                .await
                .unwrap_or_else(|e| {
                    self.fail(&format!("{label} (counter probe)"), e);
                    None
                })
        } else {
            None
        };
        Measured { run, probe }
    }

    /// W3: one whole cycle checked in full on the first ticket, then wrk with one chain per
    /// ticket. A wrk run stops mid-chain, so its last grants stay; they are revoked after
    /// each run, or the next reveal of their ticket would find the email already visible.
    async fn measure_reveal(&mut self, api: &Api, token: &str, tickets: &[String]) -> Measured {
        let cycle = async {
            let grant = api.reveal(token, &tickets[0]).await?;
            api.read_revealed(token, &tickets[0]).await?;
            api.revoke(token, &grant).await
        };
        if let Err(error) = cycle.await {
            self.fail("W3", error);
        }
        let script = w3_script(token, tickets);
        self.wrk(api, "W3 (warm-up)", &script, self.config.warmup);
        self.revoke_left(api, token).await;
        let run = self.wrk(api, "W3", &script, self.config.window);
        self.revoke_left(api, token).await;
        Measured { run, probe: None }
    }

    /// Revokes the grants a W3 run left, once the service has answered what wrk sent last
    /// (wrk stops without waiting for its last answers).
    async fn revoke_left(&mut self, api: &Api, token: &str) {
        tokio::time::sleep(Duration::from_millis(500)).await;
        match api.revoke_all(token).await {
            Ok(left) => eprintln!("[{}] W3: revoked {left} grants left", self.backend.tag()),
            Err(error) => self.fail("W3 (revoking the last grants)", error),
        }
    }

    /// One wrk run of `script`; its failed answers count as failures.
    fn wrk(&mut self, api: &Api, label: &str, script: &str, secs: u64) -> WrkRun {
        let run = common::wrk(&api.graphql_url(), script, self.config.concurrency, secs);
        if run.failed > 0 {
            self.fail(
                label,
                format!(
                    "{} answers under wrk were not accepted (not HTTP 200, `errors`, another \
                     shape, or a socket error)",
                    run.failed
                ),
            );
            // `fail` counted one.
            self.failures += run.failed - 1;
        }
        eprintln!(
            "[{}] {label}: {:.1} req/s, p50 {:.2} ms, p99 {:.2} ms, {} answers, {} failed",
            self.backend.tag(),
            run.rate(),
            run.p50_ms,
            run.p99_ms,
            run.requests,
            run.failed
        );
        run
    }
}

async fn bench_backend(config: &Config, backend: Backend, policies: &Path) -> Results {
    let mut bench = Bench {
        config,
        backend,
        failures: 0,
        errors: Vec::new(),
        logs: Vec::new(),
    };
    let tag = backend.tag();
    eprintln!("[{tag}] seeding {MAIN_TICKETS} tickets");
    let main = Dataset::create(config, backend, MAIN_TICKETS, policies);
    let mut service = Service::start(config, &main, policies).await;
    let api = service.api.clone();
    let supervisor = service.token("supervisor");
    let frontline = service.token("frontline");

    let w0 = bench.measure(&api, "W0", Work::w0(&supervisor), true).await;
    // W1's ticket: the first of supervisor's list, by its global id (the one answers carry).
    let first = api
        .query(
            &supervisor,
            "{ tickets(first: 1) { edges { node { id } } } }",
        )
        .await
        .expect("supervisor's tickets");
    let ticket = first["tickets"]["edges"][0]["node"]["id"]
        .as_str()
        .expect("a ticket supervisor sees")
        .to_owned();
    let w1 = bench
        .measure(&api, "W1", Work::w1(&supervisor, &ticket), true)
        .await;

    // The policy ratio: shipped and allow-all interleaved in the same process.
    let mut rounds = Vec::new();
    for round in 0..config.rounds {
        for policy in [Policy::Shipped, Policy::AllowAll] {
            service.use_policy(policy).await;
            let label = format!("W2 {policy:?} round {}", round + 1);
            let work = Work::w2(&supervisor, W2_PAGE, policy);
            rounds.push((policy, bench.measure(&api, &label, work, round == 0).await));
        }
    }
    service.use_policy(Policy::Shipped).await;

    let mut pages = Vec::new();
    for size in PAGE_SIZES.into_iter().filter(|&s| s != W2_PAGE) {
        let label = format!("W2 page {size}");
        let work = Work::w2(&supervisor, size, Policy::Shipped);
        pages.push((size, bench.measure(&api, &label, work, true).await));
    }

    // W3 on tickets where frontline may reveal the email with a reason alone: one per
    // connection, since two chains on one ticket would find the email already revealed.
    let candidates = api
        .query(
            &frontline,
            "{ tickets(first: 200) { edges { node { id assignedToMe \
             customer { email { access reveal } } } } } }",
        )
        .await
        .expect("frontline's tickets");
    let tickets: Vec<String> = candidates["tickets"]["edges"]
        .as_array()
        .map_or(&[][..], Vec::as_slice)
        .iter()
        .map(|e| &e["node"])
        .filter(|n| {
            n["assignedToMe"] == true
                && n["customer"]["email"]["access"] == "MASKED"
                && n["customer"]["email"]["reveal"] == "WITH_REASON"
        })
        .filter_map(|n| n["id"].as_str().map(str::to_owned))
        .take(config.concurrency)
        .collect();
    assert!(
        tickets.len() == config.concurrency,
        "{} tickets on which frontline may reveal the email with a reason, {} needed",
        tickets.len(),
        config.concurrency
    );
    let w3 = bench.measure_reveal(&api, &frontline, &tickets).await;
    let w3_steps = probe_reveal(&api, &frontline, &tickets[0], config.probe)
        .await
        .unwrap_or_else(|e| {
            bench.fail("W3 (counter probe)", e);
            None
        });

    let main_rss = service.peak_rss_mib();
    bench.note_log(MAIN_TICKETS, &service);
    drop(service);
    let main_result = DatasetResult {
        tickets: MAIN_TICKETS,
        seed_secs: main.seed_secs,
        w2: Measured {
            run: best(&rounds, Policy::Shipped).0.run.clone(),
            probe: rounds[0].1.probe.clone(),
        },
        peak_rss_mib: main_rss,
    };
    drop(main);

    let mut datasets = vec![main_result];
    for tickets in DATASETS.into_iter().filter(|&t| t != MAIN_TICKETS) {
        eprintln!("[{tag}] seeding {tickets} tickets");
        let data = Dataset::create(config, backend, tickets, policies);
        let service = Service::start(config, &data, policies).await;
        let token = service.token("supervisor");
        let label = format!("W2 at {tickets} tickets");
        let work = Work::w2(&token, W2_PAGE, Policy::Shipped);
        let w2 = bench.measure(&service.api, &label, work, true).await;
        bench.note_log(tickets, &service);
        datasets.push(DatasetResult {
            tickets,
            seed_secs: data.seed_secs,
            w2,
            peak_rss_mib: service.peak_rss_mib(),
        });
    }
    datasets.sort_by_key(|d| d.tickets);

    Results {
        backend,
        w0,
        w1,
        rounds,
        pages,
        w3,
        w3_steps,
        datasets,
        failures: bench.failures,
        errors: bench.errors,
        logs: bench.logs,
    }
}

/// The round with the highest throughput under `policy`, and the rates of all its rounds.
fn best(rounds: &[(Policy, Measured)], policy: Policy) -> (&Measured, Vec<f64>) {
    let mine: Vec<&Measured> = rounds
        .iter()
        .filter(|(p, _)| *p == policy)
        .map(|(_, m)| m)
        .collect();
    let rates = mine.iter().map(|m| m.run.rate()).collect();
    let best = mine
        .into_iter()
        .max_by(|a, b| a.run.rate().total_cmp(&b.run.rate()))
        .expect("at least one round");
    (best, rates)
}

// ---- Report ----------------------------------------------------------------------------------

/// Answers wrk's script accepted.
fn ok(run: &WrkRun) -> u64 {
    run.requests.saturating_sub(run.failed)
}

/// W3's rate: whole reveal, read and revoke cycles per second.
fn cycle_rate(run: &WrkRun) -> f64 {
    run.cycles as f64 / run.duration.as_secs_f64().max(1e-9)
}

/// A probe's count per request: the median, and the mean too when it differs.
fn show(probe: Option<&Probe>, of: Of) -> String {
    let Some(probe) = probe.filter(|p| !p.0.is_empty()) else {
        return "n/a".into();
    };
    let (median, mean) = (probe.median(of), probe.mean(of));
    if !median.is_finite() {
        "n/a".into()
    } else if (median - mean).abs() < 0.005 {
        format!("{median:.0}")
    } else {
        format!("{median:.0} (mean {mean:.2})")
    }
}

fn verdict(pass: Option<bool>) -> &'static str {
    match pass {
        Some(true) => "PASS",
        Some(false) => "**MISS**",
        None => "UNKNOWN (no /metrics)",
    }
}

/// The largest finite value, if every value is known.
fn largest(values: Option<Vec<f64>>) -> Option<f64> {
    let values = values?;
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (values.iter().all(|v| v.is_finite()) && max.is_finite()).then_some(max)
}

impl Results {
    fn print(&self, config: &Config) {
        let c = config.concurrency;
        println!("\n## {}\n", self.backend.title());
        if self.failures > 0 {
            println!(
                "**FAILURES: {} responses failed their checks.** First ones:\n",
                self.failures
            );
            for error in &self.errors {
                println!("- {error}");
            }
            println!();
        }

        let (shipped, shipped_rates) = best(&self.rounds, Policy::Shipped);
        let (allow, allow_rates) = best(&self.rounds, Policy::AllowAll);
        // The first round of each policy was probed.
        let probed = |policy: Policy| {
            self.rounds
                .iter()
                .find(|(p, _)| *p == policy)
                .and_then(|(_, m)| m.probe.as_ref())
        };
        let (shipped_probe, allow_probe) = (probed(Policy::Shipped), probed(Policy::AllowAll));
        let steps = self.w3_steps.as_ref();
        let w3_cycle = steps.map(|s| Probe::sum(s));
        println!(
            "{MAIN_TICKETS} tickets ({} customers, 2 messages per ticket), concurrency {c}, \
             as `supervisor` (W3: `frontline`). Counts per request come from `/metrics` around \
             {} sequential requests after each run: the median request, and the mean when it \
             differs.\n",
            MAIN_TICKETS / 10,
            config.probe
        );
        println!("| workload | requests/s | p50 ms | p99 ms | answers ok | failed | SQL statements / request | grant-store calls / request | rate-limit calls / request |");
        println!("|---|---|---|---|---|---|---|---|---|");
        let row = |name: &str, rate: f64, m: &Measured, probe: Option<&Probe>| {
            println!(
                "| {name} | {rate:.1} | {:.2} | {:.2} | {} | {} | {} | {} | {} |",
                m.run.p50_ms,
                m.run.p99_ms,
                ok(&m.run),
                m.run.failed,
                show(probe, SQL),
                show(probe, GRANTS),
                show(probe, LIMITS),
            )
        };
        row(
            "W0 `{ __typename }`",
            self.w0.run.rate(),
            &self.w0,
            self.w0.probe.as_ref(),
        );
        row(
            "W1 one ticket, its customer, every protected field",
            self.w1.run.rate(),
            &self.w1,
            self.w1.probe.as_ref(),
        );
        row(
            &format!(
                "W2 page of {W2_PAGE}, shipped policy (best of {})",
                shipped_rates.len()
            ),
            shipped.run.rate(),
            shipped,
            shipped_probe,
        );
        row(
            &format!(
                "W2 page of {W2_PAGE}, allow-everything policy (best of {})",
                allow_rates.len()
            ),
            allow.run.rate(),
            allow,
            allow_probe,
        );
        row(
            "W3 requestReveal + read + revokeReveal, cycles/s (latencies: each request; \
             counts: its 3 requests)",
            cycle_rate(&self.w3.run),
            &self.w3,
            w3_cycle.as_ref(),
        );
        let list = |rates: &[f64]| {
            rates
                .iter()
                .map(|r| format!("{r:.1}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        println!(
            "\nW2 rounds, interleaved in one service process (requests/s): shipped {}; \
             allow-everything {}.",
            list(&shipped_rates),
            list(&allow_rates)
        );
        let w1_ratio = self.w1.run.rate() / self.w0.run.rate();
        let policy_ratio = shipped.run.rate() / allow.run.rate();
        println!(
            "Ratios: W1 / W0 = {w1_ratio:.3}; W2 shipped / W2 allow-everything = {policy_ratio:.3}."
        );

        println!("\nW3, counts per request:\n");
        println!("| request | SQL statements | grant-store calls | rate-limit calls |");
        println!("|---|---|---|---|");
        let names = [
            "requestReveal",
            "read of the revealed field",
            "revokeReveal",
        ];
        for (i, name) in names.into_iter().enumerate() {
            let step = steps.map(|s| &s[i]);
            println!(
                "| {name} | {} | {} | {} |",
                show(step, SQL),
                show(step, GRANTS),
                show(step, LIMITS)
            );
        }

        println!("\nW2 by page size ({MAIN_TICKETS} tickets, shipped policy, concurrency {c}):\n");
        println!("| page size | requests/s | tickets/s | p50 ms | p99 ms | p50 per ticket µs | SQL statements / request | grant-store calls / request |");
        println!("|---|---|---|---|---|---|---|---|");
        let mut by_size: Vec<(usize, &Measured, Option<&Probe>)> = self
            .pages
            .iter()
            .map(|(s, m)| (*s, m, m.probe.as_ref()))
            .collect();
        by_size.push((W2_PAGE, shipped, shipped_probe));
        by_size.sort_by_key(|(s, ..)| *s);
        for (size, m, probe) in &by_size {
            println!(
                "| {size} | {:.1} | {:.0} | {:.2} | {:.2} | {:.0} | {} | {} |",
                m.run.rate(),
                m.run.rate() * *size as f64,
                m.run.p50_ms,
                m.run.p99_ms,
                m.run.p50_ms * 1e3 / *size as f64,
                show(*probe, SQL),
                show(*probe, GRANTS),
            );
        }

        println!("\nW2 (page of {W2_PAGE}) by dataset size (customers = tickets / 10, 2 messages per ticket):\n");
        println!("| tickets | seed s | requests/s | tickets/s | p50 ms | p99 ms | p50 per ticket µs | SQL statements / request | service peak RSS MiB |");
        println!("|---|---|---|---|---|---|---|---|---|");
        for d in &self.datasets {
            let m = &d.w2;
            println!(
                "| {} | {:.1} | {:.1} | {:.0} | {:.2} | {:.2} | {:.0} | {} | {} |",
                d.tickets,
                d.seed_secs,
                m.run.rate(),
                m.run.rate() * W2_PAGE as f64,
                m.run.p50_ms,
                m.run.p99_ms,
                m.run.p50_ms * 1e3 / W2_PAGE as f64,
                show(m.probe.as_ref(), SQL),
                d.peak_rss_mib.map_or("n/a".into(), |r| format!("{r:.0}")),
            );
        }
        println!(
            "\nPeak RSS is `VmHWM` of the service process after its last run; the \
             {MAIN_TICKETS}-ticket service also ran W0-W3 and every page size. The \
             {MAIN_TICKETS}-ticket row is the best shipped round of W2 above."
        );
        println!("\nService logs:\n");
        for log in &self.logs {
            println!("- {log}");
        }

        // Targets.
        let w2_depth = depth(&page_query(W2_PAGE));
        let sql_bound = 1.0 + w2_depth as f64;
        let page_sql: Option<Vec<f64>> = by_size
            .iter()
            .map(|(_, _, p)| p.map(|p| p.median(SQL)))
            .collect();
        let constant = page_sql.as_ref().map(|v| {
            let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            hi - lo < 0.5
        });
        let page_sql_text = page_sql.as_ref().map_or("n/a".into(), |v| {
            by_size
                .iter()
                .zip(v)
                .map(|((s, ..), q)| format!("page {s}: {q:.0}"))
                .collect::<Vec<_>>()
                .join(", ")
        });
        let w2_probes: Option<Vec<&Probe>> = by_size
            .iter()
            .map(|(_, _, p)| *p)
            .chain(self.datasets.iter().map(|d| d.w2.probe.as_ref()))
            .collect();
        let w2_sql = largest(
            w2_probes
                .as_ref()
                .map(|ps| ps.iter().map(|p| p.median(SQL)).collect()),
        );
        let w2_sql_single = largest(
            w2_probes
                .as_ref()
                .map(|ps| ps.iter().map(|p| p.max(SQL)).collect()),
        );
        // Grant look-ups of every read request, one by one (W3's reveal and revoke write).
        let reads: Option<Vec<&Probe>> = [
            self.w0.probe.as_ref(),
            self.w1.probe.as_ref(),
            steps.map(|s| &s[1]),
        ]
        .into_iter()
        .chain(by_size.iter().map(|(_, _, p)| *p))
        .chain(self.datasets.iter().map(|d| d.w2.probe.as_ref()))
        .collect();
        let grant_max = largest(reads.map(|ps| ps.iter().map(|p| p.max(GRANTS)).collect()));
        let rss = self
            .datasets
            .iter()
            .find(|d| d.tickets == 100_000)
            .and_then(|d| d.peak_rss_mib);
        let known = |v: Option<f64>| v.map_or("n/a".into(), |v| format!("{v:.0}"));

        println!("\nTargets (issue 7), {}:\n", self.backend.tag());
        println!("| target | measured | result |");
        println!("|---|---|---|");
        println!(
            "| W2 shipped ≥ 0.85 × W2 allow-everything | {policy_ratio:.3} × ({:.1} vs {:.1} requests/s) | {} |",
            shipped.run.rate(),
            allow.run.rate(),
            verdict(Some(policy_ratio >= 0.85))
        );
        println!(
            "| W1 ≥ 0.35 × W0 | {w1_ratio:.3} × ({:.1} vs {:.1} requests/s) | {} |",
            self.w1.run.rate(),
            self.w0.run.rate(),
            verdict(Some(w1_ratio >= 0.35))
        );
        println!(
            "| SQL statements of W2 constant in page size (median request) | {page_sql_text} | {} |",
            verdict(constant)
        );
        println!(
            "| SQL statements of W2 ≤ 1 + nesting depth ({w2_depth}) = {sql_bound} | {} (median request, worst page size or dataset; largest single request {}) | {} |",
            known(w2_sql),
            known(w2_sql_single),
            verdict(w2_sql.map(|m| m <= sql_bound))
        );
        println!(
            "| grant-store calls ≤ 1 per request | {} (largest single read request of W0, W1, W2, W3's read; requestReveal {}, revokeReveal {} write grants) | {} |",
            known(grant_max),
            show(steps.map(|s| &s[0]), GRANTS),
            show(steps.map(|s| &s[2]), GRANTS),
            verdict(grant_max.map(|m| m <= 1.0))
        );
        println!(
            "| service peak RSS under W2 at 100 000 tickets ≤ {RSS_TARGET_MIB} MiB | {} MiB | {} |",
            known(rss),
            match rss {
                Some(r) => verdict(Some(r <= RSS_TARGET_MIB)),
                None => "UNKNOWN (no /proc)",
            }
        );
    }
}
