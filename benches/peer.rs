//! needtoknow side by side with the Node.js peer (`apollo-shield`: Apollo Server 5 and
//! graphql-shield on PostgreSQL), in one run on one machine, driven by `wrk`.
//!
//! `cargo bench --bench peer` seeds both systems with the same synthetic distribution
//! (2 000 customers, 20 000 tickets by default), starts the release binary in production
//! mode (once on PostgreSQL with Redis, once on SQLite) and the peer, which lives outside
//! this repository (`NTK_PEER_DIR`, default `../shared/peers/apollo-shield`; README,
//! "Benchmarks", says what it is), in its tuned `SHIELD_CACHE=no_cache` variant with 2
//! cluster workers, when that folder and `node` are present, and runs every workload on both,
//! interleaved: W0 `{ __typename }`, W1 one ticket with every protected field, W2 a page of
//! 50 such tickets, as `supervisor` and as `frontline`. Before the load, one response of
//! each system is checked and their views compared field by field; under load, `wrk` counts
//! every response that is not HTTP 200 or carries `errors` as a failure.
//!
//! Environment: `NTK_PEER_DIR` (the peer's folder), `NTK_PEER_SECS` (15), `NTK_PEER_WARMUP`
//! (3), `NTK_PEER_ROUNDS` (2), `NTK_PEER_CONNECTIONS` (8), `NTK_PEER_CUSTOMERS` (2000),
//! `NTK_PEER_TICKETS` (20000), `NTK_BENCH_ONLY` (`postgres`, `sqlite` or both),
//! `NTK_BENCH_PG` (postgres://postgres@127.0.0.1:5432), `NTK_BENCH_REDIS`
//! (redis://127.0.0.1:6379), `NTK_PEER_PERF` (a directory: record a `perf` profile of our
//! service for every workload there), `NTK_PEER_BIN` (another build of the service, to
//! compare before and after a change).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

mod common;

const BIN: &str = env!("CARGO_BIN_EXE_needtoknow");
const MANIFEST: &str = env!("CARGO_MANIFEST_DIR");

/// Our selection of a ticket: the same data as the peer's `w1.graphql`, in our schema's
/// names (`fullName` for `name`, `postalAddress` for `address`, `otherTickets` for
/// `ticketHistory`; list values under `value`; account facts are protected fields here).
const OUR_TICKET: &str =
    "id subject topic status channel assignee { handle } createdAt resolvedAt \
    customer { id \
      accountStatus { access reveal value } plan { access reveal value } \
      customerSince { access reveal value } region { access reveal value } \
      fullName { access reveal value } email { access reveal value } \
      phone { access reveal value } postalAddress { access reveal value } \
      dateOfBirth { access reveal value } \
      paymentMethods { access reveal value { brand last4 expMonth expYear billingAddress } } \
      invoices { access reveal value { number amountCents currency status issuedAt paidAt } } \
      otherTickets { access reveal value { id subject topic status createdAt resolvedAt } } \
      chatHistory { access reveal value { ticketId authorKind body createdAt } } }";

/// The protected fields both systems serve, as (ours, the peer's).
const FIELDS: [(&str, &str); 9] = [
    ("fullName", "name"),
    ("email", "email"),
    ("phone", "phone"),
    ("postalAddress", "address"),
    ("dateOfBirth", "dateOfBirth"),
    ("paymentMethods", "paymentMethods"),
    ("invoices", "invoices"),
    ("otherTickets", "ticketHistory"),
    ("chatHistory", "chatHistory"),
];

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Backend {
    Postgres,
    Sqlite,
}

impl Backend {
    fn label(self) -> &'static str {
        match self {
            Backend::Postgres => "PostgreSQL + Redis",
            Backend::Sqlite => "SQLite (in-process grants and rate limits)",
        }
    }
}

struct Config {
    peer_dir: PathBuf,
    window: u64,
    warmup: u64,
    rounds: usize,
    connections: usize,
    customers: u32,
    tickets: u32,
    backends: Vec<Backend>,
    postgres: String,
    redis: String,
    perf: Option<PathBuf>,
}

impl Config {
    fn from_env() -> Config {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let number = |name: &str, default: u64| -> u64 {
            var(name).map_or(default, |v| {
                v.trim()
                    .parse()
                    .unwrap_or_else(|_| panic!("{name}: not a number: {v:?}"))
            })
        };
        Config {
            peer_dir: var("NTK_PEER_DIR").map_or_else(
                || Path::new(MANIFEST).join("../shared/peers/apollo-shield"),
                PathBuf::from,
            ),
            window: number("NTK_PEER_SECS", 15),
            warmup: number("NTK_PEER_WARMUP", 3),
            rounds: number("NTK_PEER_ROUNDS", 2).max(1) as usize,
            connections: number("NTK_PEER_CONNECTIONS", 8).max(1) as usize,
            customers: number("NTK_PEER_CUSTOMERS", 2000) as u32,
            tickets: number("NTK_PEER_TICKETS", 20000) as u32,
            backends: match var("NTK_BENCH_ONLY").as_deref() {
                None | Some("both") => vec![Backend::Postgres, Backend::Sqlite],
                Some("postgres") => vec![Backend::Postgres],
                Some("sqlite") => vec![Backend::Sqlite],
                Some(other) => panic!("NTK_BENCH_ONLY: sqlite, postgres or both, not {other:?}"),
            },
            postgres: var("NTK_BENCH_PG")
                .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432".into())
                .trim_end_matches('/')
                .to_owned(),
            redis: var("NTK_BENCH_REDIS").unwrap_or_else(|| "redis://127.0.0.1:6379".into()),
            perf: var("NTK_PEER_PERF").map(PathBuf::from),
        }
    }
}

/// One workload: what it asks and of whom.
#[derive(Clone)]
struct Workload {
    name: &'static str,
    handle: &'static str,
    kind: Kind,
    target: f64,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Typename,
    Ticket,
    Page,
}

fn workloads() -> Vec<Workload> {
    let w = |name, handle, kind, target| Workload {
        name,
        handle,
        kind,
        target,
    };
    vec![
        w("W0 `{ __typename }`", "supervisor", Kind::Typename, 1.5),
        w("W1 one ticket, supervisor", "supervisor", Kind::Ticket, 2.0),
        w("W1 one ticket, frontline", "frontline", Kind::Ticket, 2.0),
        w("W2 page of 50, supervisor", "supervisor", Kind::Page, 5.0),
        w("W2 page of 50, frontline", "frontline", Kind::Page, 5.0),
    ]
}

/// A system under test: where it listens, its tokens, its processes and its queries.
struct System {
    name: &'static str,
    url: String,
    tokens: BTreeMap<String, String>,
    child: Child,
    ours: bool,
    /// W1's ticket per handle (the first of the agent's list).
    tickets: BTreeMap<String, String>,
    /// The peer's folder (its query files).
    dir: PathBuf,
}

impl System {
    fn body(&self, workload: &Workload) -> Value {
        let ticket = self
            .tickets
            .get(workload.handle)
            .cloned()
            .unwrap_or_default();
        match (workload.kind, self.ours) {
            (Kind::Typename, _) => json!({ "query": "{ __typename }" }),
            (Kind::Ticket, true) => json!({
                "query": format!("query W1($id: ID!) {{ ticket(id: $id) {{ {OUR_TICKET} }} }}"),
                "variables": { "id": ticket },
            }),
            (Kind::Page, true) => json!({
                "query": format!("query W2 {{ tickets(first: 50) {{ edges {{ cursor node {{ {OUR_TICKET} }} }} pageInfo {{ hasNextPage endCursor }} }} }}"),
            }),
            (Kind::Ticket, false) => json!({
                "query": peer_file(&self.dir, "w1.graphql"),
                "variables": { "id": ticket },
            }),
            (Kind::Page, false) => json!({ "query": peer_file(&self.dir, "w2.graphql") }),
        }
    }

    /// Process ids whose CPU time counts: the service (and, for the peer, its workers).
    fn pids(&self) -> Vec<u32> {
        let mut pids = vec![self.child.id()];
        let children =
            std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", self.child.id()))
                .unwrap_or_default();
        pids.extend(
            children
                .split_whitespace()
                .filter_map(|p| p.parse::<u32>().ok()),
        );
        pids
    }
}

impl Drop for System {
    fn drop(&mut self) {
        for pid in self.pids().into_iter().rev() {
            let _ = Command::new("kill").arg(pid.to_string()).status();
        }
        let _ = self.child.wait();
    }
}

fn peer_file(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// CPU seconds (user + system) the processes have used so far.
fn cpu_seconds(pids: &[u32]) -> f64 {
    let ticks = 100.0; // USER_HZ on Linux
    pids.iter()
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/stat")).ok())
        .filter_map(|stat| {
            let fields: Vec<&str> = stat.rsplit(')').next()?.split_whitespace().collect();
            Some(fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?)
        })
        .sum::<f64>()
        / ticks
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

fn psql(server: &str, sql: &str) {
    psql_in(server, "postgres", sql);
}

/// Runs `sql` in `database` of `server`.
fn psql_in(server: &str, database: &str, sql: &str) {
    let status = Command::new("psql")
        .arg(format!("{server}/{database}"))
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .status()
        .expect("psql runs");
    assert!(status.success(), "psql {sql:?} in {database} failed");
}

async fn post(client: &reqwest::Client, url: &str, token: &str, body: &Value) -> Value {
    let response = client
        .post(format!("{url}/graphql"))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .expect("the service answers");
    let status = response.status();
    let body: Value = response.json().await.expect("a JSON body");
    assert!(status.is_success(), "HTTP {status}: {body}");
    assert!(body.get("errors").is_none(), "errors: {body}");
    body
}

async fn wait_until_up(client: &reqwest::Client, url: &str, token: &str, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{url} exited: {status}");
        }
        let answered = client
            .post(format!("{url}/graphql"))
            .bearer_auth(token)
            .json(&json!({ "query": "{ __typename }" }))
            .send()
            .await;
        if answered.is_ok_and(|r| r.status().is_success()) {
            return;
        }
        assert!(Instant::now() < deadline, "{url} is not up after 120 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Seeds and starts needtoknow on `backend`, in production mode, with tokens from the CLI.
async fn start_ours(config: &Config, backend: Backend, dir: &Path) -> (System, Option<String>) {
    let database = (backend == Backend::Postgres).then(|| {
        let name = format!("ntk_peer_ours_{}", std::process::id());
        psql(&config.postgres, &format!("DROP DATABASE IF EXISTS {name}"));
        psql(&config.postgres, &format!("CREATE DATABASE {name}"));
        name
    });
    let command = |args: &[&str]| {
        // NTK_PEER_BIN: another build of the service, for before/after comparisons.
        let mut command =
            Command::new(std::env::var("NTK_PEER_BIN").unwrap_or_else(|_| BIN.into()));
        command
            .current_dir(MANIFEST)
            .args(args)
            .env("NEEDTOKNOW_DATA_DIR", dir)
            .env("NEEDTOKNOW_LOG", "warn")
            .env_remove("NEEDTOKNOW_MASTER_KEY")
            .env_remove("NEEDTOKNOW_MASTER_KEY_FILE");
        match &database {
            Some(name) => {
                command
                    // The peer's `pg` client talks to PostgreSQL without TLS; ours would
                    // negotiate TLS (sqlx's `prefer`) with a server that offers it.
                    .env(
                        "DATABASE_URL",
                        format!("{}/{name}?sslmode=disable", config.postgres),
                    )
                    .env("REDIS_URL", &config.redis)
                    .env("NEEDTOKNOW_REDIS_PREFIX", format!("ntk-peer-{name}"));
            }
            None => {
                command.env_remove("DATABASE_URL").env_remove("REDIS_URL");
            }
        }
        command
    };
    let seeded = command(&[
        "seed",
        "--customers",
        &config.customers.to_string(),
        "--tickets",
        &config.tickets.to_string(),
    ])
    .output()
    .expect("needtoknow seed runs");
    assert!(
        seeded.status.success(),
        "seed: {}",
        String::from_utf8_lossy(&seeded.stderr)
    );
    let mut tokens = BTreeMap::new();
    for handle in ["supervisor", "frontline"] {
        let issued = command(&["agent", "token", handle])
            .output()
            .expect("needtoknow agent token runs");
        assert!(issued.status.success());
        tokens.insert(
            handle.to_owned(),
            String::from_utf8_lossy(&issued.stdout).trim().to_owned(),
        );
    }
    let port = free_port();
    let log = std::fs::File::create(dir.join("serve.log")).expect("log file");
    let mut child = command(&["serve", "--mode", "production"])
        .env("NEEDTOKNOW_LISTEN", format!("127.0.0.1:{port}"))
        .env("NEEDTOKNOW_LOG", "info")
        .env("NEEDTOKNOW_LOG_FORMAT", "json")
        .env("NEEDTOKNOW_REQUESTS_PER_MINUTE", "1000000000")
        .env("NEEDTOKNOW_MAX_COMPLEXITY", "1000000")
        .env("NEEDTOKNOW_RETENTION_INTERVAL_SECS", "0")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("needtoknow serve starts");
    let url = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    wait_until_up(&client, &url, &tokens["supervisor"], &mut child).await;
    let system = System {
        name: "needtoknow",
        url,
        tokens,
        child,
        ours: true,
        tickets: BTreeMap::new(),
        dir: PathBuf::new(),
    };
    (system, database)
}

/// Seeds and starts the peer on its own PostgreSQL database, when it can run here.
async fn start_peer(config: &Config) -> Result<(System, String), String> {
    if !config.peer_dir.join("server.js").exists() {
        return Err(format!("no peer at {}", config.peer_dir.display()));
    }
    if Command::new("node").arg("--version").output().is_err() {
        return Err("`node` is not installed".into());
    }
    let name = format!("ntk_peer_node_{}", std::process::id());
    let url = format!("{}/{name}", config.postgres);
    let tokens_file = std::env::temp_dir().join(format!("{name}-tokens.json"));
    let setup = Command::new(config.peer_dir.join("setup.sh"))
        .arg(&url)
        .args(["--customers", &config.customers.to_string()])
        .args(["--tickets", &config.tickets.to_string()])
        .arg("--tokens")
        .arg(&tokens_file)
        .output()
        .map_err(|e| format!("setup.sh: {e}"))?;
    if !setup.status.success() {
        return Err(format!(
            "the peer's setup.sh failed: {}",
            String::from_utf8_lossy(&setup.stderr)
        ));
    }
    // What `needtoknow seed` does after its bulk load, and autovacuum would do in time
    // (where it runs), so both systems' planners start from statistics and visibility maps.
    psql_in(&config.postgres, &name, "VACUUM ANALYZE");
    let tokens: BTreeMap<String, String> =
        serde_json::from_slice(&std::fs::read(&tokens_file).map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
    let _ = std::fs::remove_file(&tokens_file);
    let port = free_port();
    let mut child = Command::new(config.peer_dir.join("run.sh"))
        .env("DATABASE_URL", &url)
        .env("PORT", port.to_string())
        .env("WORKERS", "2")
        .env("SHIELD_CACHE", "no_cache")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("run.sh: {e}"))?;
    let url = format!("http://127.0.0.1:{port}");
    wait_until_up(
        &reqwest::Client::new(),
        &url,
        &tokens["supervisor"],
        &mut child,
    )
    .await;
    Ok((
        System {
            name: "peer",
            url,
            tokens,
            child,
            ours: false,
            tickets: BTreeMap::new(),
            dir: config.peer_dir.clone(),
        },
        name,
    ))
}

/// The first ticket of each handle's list: W1's ticket.
async fn pick_tickets(system: &mut System) {
    let client = reqwest::Client::new();
    for handle in ["supervisor", "frontline"] {
        let body = post(
            &client,
            &system.url,
            &system.tokens[handle],
            &json!({ "query": "{ tickets(first: 1) { edges { node { id } } } }" }),
        )
        .await;
        let id = body["data"]["tickets"]["edges"][0]["node"]["id"]
            .as_str()
            .expect("a visible ticket")
            .to_owned();
        system.tickets.insert(handle.to_owned(), id);
    }
}

/// What one response shows of each protected field, summed over its tickets:
/// (field, PLAIN, MASKED, HIDDEN).
fn view(system: &System, body: &Value) -> Vec<(&'static str, [usize; 3])> {
    let customers: Vec<&Value> = match &body["data"]["tickets"]["edges"] {
        Value::Array(edges) => edges.iter().map(|e| &e["node"]["customer"]).collect(),
        _ => vec![&body["data"]["ticket"]["customer"]],
    };
    FIELDS
        .iter()
        .map(|&(ours, theirs)| {
            let name = if system.ours { ours } else { theirs };
            let mut counts = [0; 3];
            for customer in &customers {
                match customer[name]["access"].as_str() {
                    Some("PLAIN") => counts[0] += 1,
                    Some("MASKED") => counts[1] += 1,
                    _ => counts[2] += 1,
                }
            }
            (ours, counts)
        })
        .collect()
}

/// One measured run.
#[derive(Clone, Debug, Default)]
struct Measured {
    requests_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    requests: u64,
    failed: u64,
    cpu_ms_per_request: f64,
    /// CPU time of the database servers (PostgreSQL and Redis processes) per response.
    db_cpu_ms_per_request: f64,
    /// Share of the machine's CPU time that was busy (every process, the kernel included).
    busy: f64,
}

/// Drives `system` with `wrk` for `secs` seconds, and counts the CPU time it used meanwhile.
fn wrk(config: &Config, system: &System, workload: &Workload, secs: u64) -> Measured {
    let body = serde_json::to_string(&system.body(workload)).expect("JSON");
    let script = common::repeat_script(&system.tokens[workload.handle], &body);
    let pids = system.pids();
    let cpu_before = cpu_seconds(&pids);
    let db_before = database_cpu();
    let machine_before = common::machine::cpu_ticks();
    let run = common::wrk(
        &format!("{}/graphql", system.url),
        &script,
        config.connections,
        secs,
    );
    let cpu = cpu_seconds(&pids) - cpu_before;
    // Backends that ended during the window are missed; new ones count from zero.
    let db_cpu: f64 = database_cpu()
        .iter()
        .map(|(pid, after)| after - db_before.get(pid).unwrap_or(&0.0))
        .sum();
    let machine = common::machine::cpu_ticks().since(machine_before);
    let busy = machine.busy as f64 / machine.total.max(1) as f64;
    Measured {
        requests_per_sec: run.rate(),
        p50_ms: run.p50_ms,
        p99_ms: run.p99_ms,
        requests: run.requests,
        failed: run.failed,
        cpu_ms_per_request: cpu * 1e3 / run.requests.max(1) as f64,
        db_cpu_ms_per_request: db_cpu * 1e3 / run.requests.max(1) as f64,
        busy,
    }
}

/// CPU seconds used so far by each PostgreSQL and Redis server process, by pid.
fn database_cpu() -> BTreeMap<u32, f64> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return BTreeMap::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|comm| matches!(comm.trim(), "postgres" | "redis-server"))
        })
        .map(|pid| (pid, cpu_seconds(&[pid])))
        .collect()
}

/// Records a CPU profile of our service while `wrk` drives it, when asked.
fn profile(config: &Config, system: &System, workload: &Workload, label: &str) {
    let Some(out) = &config.perf else { return };
    std::fs::create_dir_all(out).expect("perf directory");
    let slug: String = workload
        .name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect();
    let data = out.join(format!("{label}-{slug}.data"));
    let mut perf = Command::new("perf")
        .args([
            "record",
            "-F",
            "499",
            "-g",
            "-p",
            &system.child.id().to_string(),
            "-o",
        ])
        .arg(&data)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("perf runs");
    wrk(config, system, workload, 10);
    let _ = Command::new("kill")
        .args(["-INT", &perf.id().to_string()])
        .status();
    let _ = perf.wait();
}

fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return; // `cargo test --benches` and `--list` run nothing here
    }
    let config = Config::from_env();
    if let Err(why) = common::ensure_wrk() {
        println!("skipped: {why}");
        return;
    }
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    runtime.block_on(run(config));
}

async fn run(config: Config) {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpu = common::machine::cpu_model();
    let commit = Command::new("git")
        .args(["describe", "--always", "--dirty"])
        .current_dir(MANIFEST)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    println!("# needtoknow and the Node.js peer, side by side (issue 15)\n");
    println!(
        "- date: {}; commit {commit}; {cores} cores, {cpu}",
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC")
    );
    if let Ok(bin) = std::env::var("NTK_PEER_BIN") {
        println!("- service: {bin} (`NTK_PEER_BIN`; the commit above is the harness's)");
    }
    println!(
        "- data: {} customers, {} tickets in each system (the peer's distribution); load: wrk, 1 thread, {} keep-alive connections, {} s warm-up, {} s measured, {} interleaved rounds (best shown); every response checked (HTTP 200, no `errors`)",
        config.customers, config.tickets, config.connections, config.warmup, config.window, config.rounds
    );

    let peer = match start_peer(&config).await {
        Ok((mut peer, database)) => {
            pick_tickets(&mut peer).await;
            println!(
                "- peer: {} (2 cluster workers, SHIELD_CACHE=no_cache, PostgreSQL)",
                config.peer_dir.display()
            );
            Some((peer, database))
        }
        Err(why) => {
            println!("- peer: skipped ({why}); only needtoknow is measured");
            None
        }
    };
    let client = reqwest::Client::new();
    for &backend in &config.backends {
        let dir = tempfile::Builder::new()
            .prefix("ntk-peer-ours-")
            .tempdir()
            .expect("temp dir");
        let (mut ours, database) = start_ours(&config, backend, dir.path()).await;
        pick_tickets(&mut ours).await;
        println!("\n## needtoknow on {}\n", backend.label());
        let mut systems: Vec<&System> = vec![&ours];
        if let Some((peer, _)) = &peer {
            systems.push(peer);
        }
        // What each shows: the same fields, compared before any load.
        for workload in workloads().iter().filter(|w| w.kind != Kind::Typename) {
            let mut views = Vec::new();
            for system in &systems {
                let body = post(
                    &client,
                    &system.url,
                    &system.tokens[workload.handle],
                    &system.body(workload),
                )
                .await;
                views.push(view(system, &body));
            }
            let line: Vec<String> = FIELDS
                .iter()
                .enumerate()
                .map(|(i, (field, _))| {
                    let show = |v: &[(&str, [usize; 3])]| {
                        let [p, m, h] = v[i].1;
                        format!("{p}/{m}/{h}")
                    };
                    match views.get(1) {
                        Some(peer) => format!("{field} {} vs {}", show(&views[0]), show(peer)),
                        None => format!("{field} {}", show(&views[0])),
                    }
                })
                .collect();
            println!(
                "- view of {} (plain/masked/hidden, ours vs peer): {}",
                workload.name,
                line.join("; ")
            );
        }

        let mut results: BTreeMap<(usize, &str), Vec<Measured>> = BTreeMap::new();
        // Responses that failed in the warm-up windows, which are not measured but still
        // must not fail.
        let mut warmup_failed: BTreeMap<(usize, &str), u64> = BTreeMap::new();
        for round in 0..config.rounds {
            for (index, workload) in workloads().iter().enumerate() {
                let mut order = systems.clone();
                if round % 2 == 1 {
                    order.reverse();
                }
                for system in order {
                    let warm = wrk(&config, system, workload, config.warmup);
                    *warmup_failed.entry((index, system.name)).or_default() += warm.failed;
                    let measured = wrk(&config, system, workload, config.window);
                    results
                        .entry((index, system.name))
                        .or_default()
                        .push(measured);
                }
            }
        }
        for workload in workloads() {
            profile(
                &config,
                &ours,
                &workload,
                match backend {
                    Backend::Postgres => "postgres",
                    Backend::Sqlite => "sqlite",
                },
            );
        }
        report(&results, peer.is_some());
        for ((index, system), failed) in warmup_failed.into_iter().filter(|(_, n)| *n > 0) {
            println!(
                "- warm-up of {}: {failed} failed responses from {system}",
                workloads()[index].name
            );
        }
        drop(ours);
        if let Some(name) = database {
            psql(
                &config.postgres,
                &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            );
        }
        let log = std::fs::read_to_string(dir.path().join("serve.log")).unwrap_or_default();
        let problems = common::log_problems(&log);
        println!(
            "\nService log: {} ERROR, {} WARN lines.",
            problems.errors, problems.warnings
        );
        // The run's directory goes away with it: say what those lines were.
        for (problem, count) in &problems.distinct {
            println!("- {count} × {problem}");
        }
    }
    if let Some((peer, database)) = peer {
        drop(peer);
        psql(
            &config.postgres,
            &format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)"),
        );
    }
}

fn best(runs: &[Measured]) -> Measured {
    runs.iter()
        .max_by(|a, b| a.requests_per_sec.total_cmp(&b.requests_per_sec))
        .cloned()
        .unwrap_or_default()
}

fn report(results: &BTreeMap<(usize, &str), Vec<Measured>>, with_peer: bool) {
    println!();
    println!("| workload | needtoknow req/s · p50 · p99 ms | CPU ms/req | peer req/s · p50 · p99 ms | CPU ms/req | ratio | target | p99 ≤ peer | result |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for (index, workload) in workloads().iter().enumerate() {
        let ours = best(&results[&(index, "needtoknow")]);
        let failed: u64 = results[&(index, "needtoknow")]
            .iter()
            .map(|m| m.failed)
            .sum();
        let cell = |m: &Measured| {
            format!(
                "{:.0} · {:.2} · {:.2}",
                m.requests_per_sec, m.p50_ms, m.p99_ms
            )
        };
        if !with_peer {
            println!(
                "| {} | {} | {:.2} | – | – | – | ≥ {}× | – | – (failed: {failed}) |",
                workload.name,
                cell(&ours),
                ours.cpu_ms_per_request,
                workload.target
            );
            continue;
        }
        let peer = best(&results[&(index, "peer")]);
        let failed = failed
            + results[&(index, "peer")]
                .iter()
                .map(|m| m.failed)
                .sum::<u64>();
        let ratio = ours.requests_per_sec / peer.requests_per_sec;
        let fast = ratio >= workload.target;
        let tail = ours.p99_ms <= peer.p99_ms;
        println!(
            "| {} | {} | {:.2} | {} | {:.2} | {ratio:.2} | ≥ {}× | {} | {}{} |",
            workload.name,
            cell(&ours),
            ours.cpu_ms_per_request,
            cell(&peer),
            peer.cpu_ms_per_request,
            workload.target,
            if tail { "yes" } else { "no" },
            if fast && tail { "PASS" } else { "**MISS**" },
            if failed > 0 {
                format!(" ({failed} failed responses)")
            } else {
                String::new()
            }
        );
    }
    println!();
    for (index, workload) in workloads().iter().enumerate() {
        let rounds = |name: &str| {
            results
                .get(&(index, name))
                .map(|runs| {
                    runs.iter()
                        .map(|m| format!("{:.0}", m.requests_per_sec))
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default()
        };
        let checked: u64 = ["needtoknow", "peer"]
            .iter()
            .filter_map(|name| results.get(&(index, *name)))
            .flatten()
            .map(|m| m.requests)
            .sum();
        // Where the rest of the machine went, in the rounds of the table above.
        let machine = |name: &str| {
            results
                .get(&(index, name))
                .map(|runs| {
                    let m = best(runs);
                    format!(
                        "{name}: database servers {:.2} CPU ms/req, machine {:.0} % busy",
                        m.db_cpu_ms_per_request,
                        m.busy * 100.0
                    )
                })
                .unwrap_or_default()
        };
        println!(
            "- {} rounds (req/s; {checked} responses checked): needtoknow {}{}; {}{}",
            workload.name,
            rounds("needtoknow"),
            if with_peer {
                format!("; peer {}", rounds("peer"))
            } else {
                String::new()
            },
            machine("needtoknow"),
            if with_peer {
                format!("; {}", machine("peer"))
            } else {
                String::new()
            }
        );
    }
}
