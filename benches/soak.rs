//! The soak run: a fixed rate of mixed reads, reveals and writes against the real service
//! for a long time (30 minutes per database by default), to show that latency, memory and
//! errors stay flat. Not part of the test suite; run it with `cargo bench --bench soak`.
//!
//! Each second, `NTK_SOAK_RATE` operations start on schedule (an open loop: a slow answer
//! does not slow the schedule down), drawn from this mix:
//!
//! | share | operation | requests |
//! |---|---|---|
//! | 50 % | supervisor reads one ticket with every protected field | 1 |
//! | 10 % | frontline reads a page of 20 tickets | 1 |
//! | 15 % | frontline reveals an email with a reason, then revokes the grant | 2 |
//! | 10 % | supervisor sets a ticket's status (open/pending) | 1 |
//! | 10 % | frontline checks a caller's answer against the record (on tickets where the policy lets it) | 1 |
//! | 5 % | supervisor asks for an approval-only reveal; another supervisor approves; the supervisor revokes its newest grant | 4 |
//!
//! Every reveal ends in a revocation, so an agent's live grants stay few, as the default
//! rate limits keep them in production (about 30 per agent). Without it, the supervisor
//! held thousands by minute 10, and every one of its reads fetched them all.
//!
//! Every minute it prints p50 and p99 of all requests that finished in that minute, the
//! service's resident memory, the database's size, the share of the machine's CPU time
//! its hypervisor took (steal: a VM's latency moves with it) and the answers by error code.
//! At the end it lists the requests slower than 100 ms, grouped into stalls (slow
//! requests that started within a second of each other), with the operations they were:
//! a stall of writes only points at the writer, one of reads too at the whole service.
//! It also lists every request that got no HTTP answer, with the client's error.
//! The load's start time goes to standard error, to line stalls up with other traces.
//!
//! Environment: `NTK_SOAK_MINUTES` (30), `NTK_SOAK_RATE` (40 operations per second),
//! `NTK_SOAK_ONLY` (`sqlite`, `postgres` or both), `NTK_BENCH_PG`
//! (`postgres://postgres@127.0.0.1:5432`), `NTK_BENCH_REDIS` (`redis://127.0.0.1:6379`).

#[path = "common/machine.rs"]
mod machine;
#[path = "common/service_log.rs"]
mod service_log;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_needtoknow");
const MANIFEST: &str = env!("CARGO_MANIFEST_DIR");

const READ: &str = "query($t: ID!) { ticket(id: $t) { subject customer { fullName { value access } email { value access } phone { value access } postalAddress { value access } dateOfBirth { value access } paymentMethods { access } invoices { access } } } }";
const PAGE: &str = "{ tickets(first: 20) { edges { node { id subject customer { fullName { value } email { value } } } } } }";
const REVEAL: &str = "mutation($t: ID!) { requestReveal(ticketId: $t, fields: [\"email\"], reason: \"the customer asked us to confirm it\") { grants { id } } }";
const REVOKE: &str = "mutation($g: ID!) { revokeReveal(grantId: $g) { id } }";
const STATUS: &str =
    "mutation($t: ID!, $s: TicketStatus!) { setTicketStatus(ticketId: $t, status: $s) { status } }";
const VERIFY: &str = "mutation($t: ID!) { verifyCustomerIdentity(ticketId: $t, answers: { postalCode: \"00000\" }) { postalCode } }";
const ASK: &str = "mutation($t: ID!) { requestReveal(ticketId: $t, fields: [\"paymentMethods\"], reason: \"the customer disputes a charge\") { request { id } } }";
const APPROVE: &str = "mutation($r: ID!) { approveReveal(requestId: $r, note: \"checked with the customer\") { status } }";
/// The caller's grant that expires last: the one just issued, unless another was issued
/// since (then that one goes, which keeps the count as low).
const NEWEST_GRANT: &str = "{ myGrants(last: 1) { edges { node { id } } } }";

/// One minute's observations.
#[derive(Default)]
struct Minute {
    latencies_us: Vec<u64>,
    codes: BTreeMap<String, u64>,
}

/// Requests slower than this are listed one by one at the end, to tell stalls of one kind
/// of operation from stalls of the whole service.
const SLOW: Duration = Duration::from_millis(100);

/// One request slower than [`SLOW`].
struct Slow {
    /// When it started, since the run began.
    at: Duration,
    took: Duration,
    /// The operation's GraphQL field.
    operation: &'static str,
}

/// Everything the operations share.
struct Load {
    client: reqwest::Client,
    base: String,
    tokens: BTreeMap<String, String>,
    /// Tickets the supervisor sees.
    tickets: Vec<String>,
    /// Frontline's tickets whose email it may reveal with a reason.
    revealable: Vec<String>,
    /// Frontline's own tickets.
    own: Vec<String>,
    /// Tickets whose payment methods the supervisor may ask to see, with approval.
    approvable: Vec<String>,
    started: Instant,
    minutes: Mutex<Vec<Minute>>,
    slow: Mutex<Vec<Slow>>,
    /// Requests that got no HTTP answer: when, which operation, and the client's error.
    unanswered: Mutex<Vec<String>>,
}

impl Load {
    /// One request; its latency and outcome go into the current minute.
    async fn call(&self, who: &str, query: &'static str, variables: Value) -> Option<Value> {
        let began = Instant::now();
        let at = self.started.elapsed();
        let result = self
            .client
            .post(format!("{}/graphql", self.base))
            .bearer_auth(&self.tokens[who])
            .json(&json!({ "query": query, "variables": variables }))
            .send()
            .await;
        let (code, body) = match result {
            Ok(response) => {
                let status = response.status();
                match response.json::<Value>().await {
                    Ok(body) => match body["errors"][0]["extensions"]["code"].as_str() {
                        Some(code) => (code.to_owned(), None),
                        None if status.is_success() => ("ok".to_owned(), Some(body)),
                        None => (format!("HTTP {}", status.as_u16()), None),
                    },
                    Err(_) => (format!("HTTP {} (no JSON)", status.as_u16()), None),
                }
            }
            Err(error) => {
                self.unanswered.lock().unwrap().push(format!(
                    "at {:.1} s, {} after {} ms: {:#}",
                    at.as_secs_f64(),
                    operation_name(query),
                    began.elapsed().as_millis(),
                    // With its causes: the client's own message rarely says what the
                    // connection did.
                    anyhow::Error::from(error)
                ));
                ("no answer".to_owned(), None)
            }
        };
        let took = began.elapsed();
        if took >= SLOW {
            self.slow.lock().unwrap().push(Slow {
                at,
                took,
                operation: operation_name(query),
            });
        }
        let minute = (self.started.elapsed().as_secs() / 60) as usize;
        let mut minutes = self.minutes.lock().unwrap();
        while minutes.len() <= minute {
            minutes.push(Minute::default());
        }
        minutes[minute].latencies_us.push(took.as_micros() as u64);
        *minutes[minute].codes.entry(code).or_default() += 1;
        body
    }

    /// One operation of the mix, chosen by `n`.
    async fn operation(self: Arc<Self>, n: u64) {
        let pick = |list: &Vec<String>| list[(n as usize / 100) % list.len()].clone();
        match n % 100 {
            0..=49 => {
                self.call("supervisor", READ, json!({ "t": pick(&self.tickets) }))
                    .await;
            }
            50..=59 => {
                self.call("frontline", PAGE, json!({})).await;
            }
            60..=74 => {
                let body = self
                    .call("frontline", REVEAL, json!({ "t": pick(&self.revealable) }))
                    .await;
                if let Some(grant) = body
                    .as_ref()
                    .and_then(|b| b["data"]["requestReveal"]["grants"][0]["id"].as_str())
                {
                    self.call("frontline", REVOKE, json!({ "g": grant })).await;
                }
            }
            75..=84 => {
                let status = if n % 2 == 0 { "PENDING" } else { "OPEN" };
                self.call(
                    "supervisor",
                    STATUS,
                    json!({ "t": pick(&self.tickets), "s": status }),
                )
                .await;
            }
            85..=94 => {
                self.call("frontline", VERIFY, json!({ "t": pick(&self.own) }))
                    .await;
            }
            _ => {
                let body = self
                    .call("supervisor", ASK, json!({ "t": pick(&self.approvable) }))
                    .await;
                if let Some(id) = body
                    .as_ref()
                    .and_then(|b| b["data"]["requestReveal"]["request"]["id"].as_str())
                {
                    self.call("approver", APPROVE, json!({ "r": id })).await;
                    let grants = self.call("supervisor", NEWEST_GRANT, json!({})).await;
                    if let Some(grant) = grants
                        .as_ref()
                        .and_then(|b| b["data"]["myGrants"]["edges"][0]["node"]["id"].as_str())
                    {
                        self.call("supervisor", REVOKE, json!({ "g": grant })).await;
                    }
                }
            }
        }
    }
}

/// The first field a query selects (`ticket`, `requestReveal`, …).
fn operation_name(query: &'static str) -> &'static str {
    let body = &query[query.find('{').map_or(0, |i| i + 1)..];
    let body = body.trim_start();
    let end = body
        .find(|c: char| !c.is_alphanumeric() && c != '_')
        .unwrap_or(body.len());
    &body[..end]
}

/// The service's resident memory: all of it, then its anonymous part (the heap, stacks)
/// and its file-backed part (the binary, and on SQLite the database file's memory map,
/// which grows with the file and is the kernel's page cache, not the heap).
fn rss_mib(pid: u32) -> [f64; 3] {
    ["VmRSS", "RssAnon", "RssFile"]
        .map(|field| machine::process_mib(pid, field).unwrap_or(f64::NAN))
}

/// The database's size on disk.
fn database_mib(dir: &Path, postgres: Option<&str>) -> f64 {
    match postgres {
        Some(url) => Command::new("psql")
            .args([url, "-XAtqc", "select pg_database_size(current_database())"])
            .output()
            .ok()
            .and_then(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .trim()
                    .parse::<f64>()
                    .ok()
            })
            .map_or(f64::NAN, |b| b / 1024.0 / 1024.0),
        None => {
            ["needtoknow.sqlite", "needtoknow.sqlite-wal"]
                .iter()
                .filter_map(|f| std::fs::metadata(dir.join(f)).ok())
                .map(|m| m.len() as f64)
                .sum::<f64>()
                / 1024.0
                / 1024.0
        }
    }
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| default.to_owned())
}

async fn soak(postgres: Option<String>, minutes: u64, rate: u64) {
    let dir = tempfile::Builder::new()
        .prefix("ntk-soak-")
        .tempdir()
        .unwrap();
    let redis = env_or("NTK_BENCH_REDIS", "redis://127.0.0.1:6379");
    let database = postgres.as_ref().map(|server| {
        let name = format!("ntk_soak_{}", std::process::id());
        let admin = format!("{server}/postgres");
        for sql in [
            format!("DROP DATABASE IF EXISTS {name}"),
            format!("CREATE DATABASE {name}"),
        ] {
            let done = Command::new("psql")
                .args([&admin, "-XAtqc", &sql])
                .status()
                .unwrap();
            assert!(done.success(), "{sql}");
        }
        (name.clone(), format!("{server}/{name}"))
    });
    let command = || {
        let mut command = Command::new(BIN);
        command
            .current_dir(MANIFEST)
            .env("NEEDTOKNOW_DATA_DIR", dir.path())
            .env("NEEDTOKNOW_LOG", "warn")
            .env_remove("NEEDTOKNOW_MASTER_KEY");
        match &database {
            Some((name, url)) => command
                .env("DATABASE_URL", url)
                .env("REDIS_URL", &redis)
                .env("NEEDTOKNOW_REDIS_PREFIX", format!("ntk-soak-{name}")),
            None => command.env_remove("DATABASE_URL").env_remove("REDIS_URL"),
        };
        command
    };
    let seeded = command()
        .args(["seed", "--customers", "500", "--tickets", "5000"])
        .output()
        .unwrap();
    assert!(
        seeded.status.success(),
        "{}",
        String::from_utf8_lossy(&seeded.stderr)
    );
    let approver = command()
        .args([
            "agent",
            "create",
            "--handle",
            "soak-approver",
            "--role",
            "supervisor",
            "--team",
            "support",
        ])
        .output()
        .unwrap();
    assert!(approver.status.success());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let log = dir.path().join("serve.log");
    let mut child: Child = command()
        .args(["serve", "--demo"])
        .env("NEEDTOKNOW_LISTEN", format!("127.0.0.1:{port}"))
        .env("NEEDTOKNOW_LOG_FORMAT", "json")
        .env("NEEDTOKNOW_REQUESTS_PER_MINUTE", "1000000000")
        .env("NEEDTOKNOW_REVEALS_PER_HOUR", "1000000000")
        .env("NEEDTOKNOW_IDENTITY_CHECKS_PER_HOUR", "1000000000")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    for _ in 0..600 {
        if client
            .get(format!("{base}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut tokens: BTreeMap<String, String> =
        serde_json::from_slice(&std::fs::read(dir.path().join("demo-tokens.json")).unwrap())
            .unwrap();
    tokens.insert(
        "approver".into(),
        String::from_utf8_lossy(&approver.stdout).trim().to_owned(),
    );

    let list = |who: &'static str, first: u32| {
        let (client, base, token) = (client.clone(), base.clone(), tokens[who].clone());
        async move {
            let query = format!("{{ tickets(first: {first}) {{ edges {{ node {{ id customer {{ email {{ access reveal }} paymentMethods {{ access reveal }} }} }} }} }} }}");
            let body: Value = client
                .post(format!("{base}/graphql"))
                .bearer_auth(token)
                .json(&json!({ "query": query }))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            body["data"]["tickets"]["edges"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        }
    };
    let theirs = list("supervisor", 100).await;
    let tickets: Vec<String> = theirs
        .iter()
        .map(|e| e["node"]["id"].as_str().unwrap().to_owned())
        .collect();
    let approvable: Vec<String> = theirs
        .iter()
        .filter(|e| {
            e["node"]["customer"]["paymentMethods"]["reveal"] == "WITH_APPROVAL"
                && e["node"]["customer"]["paymentMethods"]["access"] != "PLAIN"
        })
        .map(|e| e["node"]["id"].as_str().unwrap().to_owned())
        .collect();
    let mine = list("frontline", 100).await;
    // Frontline's tickets where the policy lets it check a caller's answers: one probe each.
    let mut own = Vec::new();
    for edge in &mine {
        let id = edge["node"]["id"].as_str().unwrap().to_owned();
        let probe: Value = client
            .post(format!("{base}/graphql"))
            .bearer_auth(&tokens["frontline"])
            .json(&json!({ "query": VERIFY, "variables": { "t": id } }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if probe.get("errors").is_none() {
            own.push(id);
        }
    }
    let revealable: Vec<String> = mine
        .iter()
        .filter(|e| {
            e["node"]["customer"]["email"]["reveal"] == "WITH_REASON"
                && e["node"]["customer"]["email"]["access"] != "PLAIN"
        })
        .map(|e| e["node"]["id"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        !tickets.is_empty() && !own.is_empty() && !revealable.is_empty() && !approvable.is_empty()
    );

    let load = Arc::new(Load {
        client,
        base,
        tokens,
        tickets,
        revealable,
        own,
        approvable,
        started: Instant::now(),
        minutes: Mutex::new(Vec::new()),
        slow: Mutex::new(Vec::new()),
        unanswered: Mutex::new(Vec::new()),
    });
    let pid = child.id();
    eprintln!(
        "soak: load starts at {:.3} (Unix time, s); service pid {pid}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64()
    );
    let mut memory = Vec::new();
    let mut ticks = Vec::new();
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let mut next = Instant::now();
    let mut n = 0u64;
    let end = Instant::now() + Duration::from_secs(minutes * 60);
    let mut sampled = 0;
    while Instant::now() < end {
        tokio::spawn(
            load.clone()
                .operation(n.wrapping_mul(2_654_435_761) % 1_000_000),
        );
        n += 1;
        let minute = load.started.elapsed().as_secs() / 60;
        if minute >= sampled {
            memory.push((
                rss_mib(pid),
                database_mib(dir.path(), database.as_ref().map(|d| d.1.as_str())),
            ));
            ticks.push(machine::cpu_ticks());
            sampled = minute + 1;
        }
        next += interval;
        tokio::time::sleep_until(next.into()).await;
    }
    ticks.push(machine::cpu_ticks());
    tokio::time::sleep(Duration::from_secs(5)).await;
    memory.push((
        rss_mib(pid),
        database_mib(dir.path(), database.as_ref().map(|d| d.1.as_str())),
    ));
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let _ = child.wait();

    let title = if database.is_some() {
        "PostgreSQL + Redis"
    } else {
        "SQLite, in-process grants"
    };
    println!("\n### {title}: {minutes} min at {rate} operations/s\n");
    println!("| minute | requests | p50 ms | p99 ms | RSS MiB: all · anonymous · file (start of minute) | database MiB | steal % | answers other than ok |");
    println!("|---|---|---|---|---|---|---|---|");
    let minutes_seen = std::mem::take(&mut *load.minutes.lock().unwrap());
    let mut totals: BTreeMap<String, u64> = BTreeMap::new();
    for (i, mut minute) in minutes_seen.into_iter().enumerate() {
        minute.latencies_us.sort_unstable();
        let ([rss, anon, file], size) = memory.get(i).copied().unwrap_or(([f64::NAN; 3], f64::NAN));
        let steal = ticks
            .get(i)
            .zip(ticks.get(i + 1))
            .map(|(&a, b)| b.since(a))
            .filter(|minute| minute.total > 0)
            .map_or(f64::NAN, |minute| {
                100.0 * minute.steal as f64 / minute.total as f64
            });
        let other: Vec<String> = minute
            .codes
            .iter()
            .filter(|(c, _)| *c != "ok")
            .map(|(c, n)| format!("{c} {n}"))
            .collect();
        for (code, count) in &minute.codes {
            *totals.entry(code.clone()).or_default() += count;
        }
        println!(
            "| {} | {} | {:.1} | {:.1} | {rss:.0} · {anon:.0} · {file:.0} | {size:.1} | {steal:.1} | {} |",
            i + 1,
            minute.latencies_us.len(),
            percentile(&minute.latencies_us, 0.5),
            percentile(&minute.latencies_us, 0.99),
            if other.is_empty() {
                "none".to_owned()
            } else {
                other.join(", ")
            }
        );
    }
    let ([rss_end, anon_end, file_end], size_end) =
        memory.last().copied().unwrap_or(([f64::NAN; 3], f64::NAN));
    println!("\nAt the end: RSS {rss_end:.0} MiB ({anon_end:.0} anonymous, {file_end:.0} file-backed), database {size_end:.1} MiB. Answers by code over the whole run: {totals:?}.");
    let mut slow = std::mem::take(&mut *load.slow.lock().unwrap());
    slow.sort_unstable_by_key(|r| r.at);
    let mut by_operation: BTreeMap<&str, usize> = BTreeMap::new();
    for request in &slow {
        *by_operation.entry(request.operation).or_default() += 1;
    }
    println!(
        "Requests over {} ms: {} ({by_operation:?}).",
        SLOW.as_millis(),
        slow.len()
    );
    // Requests that started within a second of each other are one stall.
    let mut stalls: Vec<Vec<&Slow>> = Vec::new();
    for request in &slow {
        match stalls.last_mut() {
            Some(stall) if request.at < stall[0].at + Duration::from_secs(1) => stall.push(request),
            _ => stalls.push(vec![request]),
        }
    }
    for stall in stalls {
        let worst = stall.iter().map(|r| r.took).max().unwrap_or_default();
        let mut operations: Vec<&str> = stall.iter().map(|r| r.operation).collect();
        operations.sort_unstable();
        operations.dedup();
        println!(
            "- at {:.1} s: {} requests, worst {} ms ({})",
            stall[0].at.as_secs_f64(),
            stall.len(),
            worst.as_millis(),
            operations.join(", ")
        );
    }
    let unanswered = std::mem::take(&mut *load.unanswered.lock().unwrap());
    println!("Requests with no answer: {}.", unanswered.len());
    for request in &unanswered {
        println!("- {request}");
    }
    let problems = service_log::log_problems(&std::fs::read_to_string(&log).unwrap_or_default());
    println!(
        "Service log: {} ERROR and {} WARN lines.",
        problems.errors, problems.warnings
    );
    for (problem, count) in &problems.distinct {
        println!("- {count} × {problem}");
    }
    if let Some((name, _)) = &database {
        let admin = format!("{}/postgres", postgres.as_deref().unwrap_or_default());
        let _ = Command::new("psql")
            .args([
                &admin,
                "-XAtqc",
                &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            ])
            .status();
    }
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing to run.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let minutes: u64 = env_or("NTK_SOAK_MINUTES", "30")
        .parse()
        .expect("NTK_SOAK_MINUTES: a number");
    let rate: u64 = env_or("NTK_SOAK_RATE", "40")
        .parse()
        .expect("NTK_SOAK_RATE: a number");
    let postgres = env_or("NTK_BENCH_PG", "postgres://postgres@127.0.0.1:5432");
    let only = env_or("NTK_SOAK_ONLY", "both");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let cpu = machine::cpu_model();
    println!(
        "# needtoknow soak run\n\n- date: {}\n- machine: {} cores, {cpu}\n- load: open loop, {rate} operations/s (mix in benches/soak.rs), one client thread",
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    runtime.block_on(async {
        if only != "postgres" {
            soak(None, minutes, rate).await;
        }
        if only != "sqlite" {
            soak(Some(postgres), minutes, rate).await;
        }
    });
}
