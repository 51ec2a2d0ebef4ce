//! Write-side benchmarks, on SQLite and on PostgreSQL (+ Redis). Not part of the test
//! suite; run with `cargo bench --bench intake` (release build).
//!
//! 1. **Intake over HTTP.** `serve --demo`; 8 concurrent clients, each on its own chat
//!    ticket opened first, append customer messages as the chat gateway (`appendMessage`)
//!    for `NTK_INTAKE_SECONDS` (20) after a 3 s warm-up. Every body holds a card number, a
//!    phone number and an email, so each message is redacted, sealed under the customer's
//!    key and audited in its transaction. Reports messages/s, p50 and p99, and every answer
//!    that was not a success.
//! 2. **Import.** A generated helpdesk export: `NTK_IMPORT_TICKETS` (100 000) tickets with 3
//!    messages each, one customer per 5 tickets, written by `needtoknow import` (batches of
//!    500). Reports records/s, wall time and the import process's peak RSS (`/usr/bin/time`),
//!    then runs the same file again (nothing to write: the cost of a resumed run).
//!
//! Environment: `NTK_BENCH_PG` (`postgres://postgres@127.0.0.1:5432`), `NTK_BENCH_REDIS`
//! (`redis://127.0.0.1:6379`), `NTK_BENCH_ONLY` (`sqlite`, `postgres` or both).

#[path = "common/machine.rs"]
mod machine;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_needtoknow");
const MANIFEST: &str = env!("CARGO_MANIFEST_DIR");
const OPEN: &str = "mutation($i: OpenTicketInput!) { openTicket(input: $i) { ticketId } }";
const APPEND: &str = "mutation($t: ID!, $i: AppendMessageInput!) { appendMessage(ticketId: $t, input: $i) { messageId } }";
const CLIENTS: usize = 8;

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

/// A fresh place to run: a data directory, and a PostgreSQL database when `server` is set.
struct Place {
    dir: tempfile::TempDir,
    database: Option<(String, String)>,
    server: Option<String>,
}

impl Place {
    fn new(server: Option<&str>, tag: &str) -> Place {
        let dir = tempfile::Builder::new()
            .prefix("ntk-intake-")
            .tempdir()
            .unwrap();
        let database = server.map(|server| {
            let name = format!("ntk_bench_{tag}_{}", std::process::id());
            for sql in [
                format!("DROP DATABASE IF EXISTS {name}"),
                format!("CREATE DATABASE {name}"),
            ] {
                let done = Command::new("psql")
                    .args([&format!("{server}/postgres"), "-XAtqc", &sql])
                    .status()
                    .unwrap();
                assert!(done.success(), "{sql}");
            }
            (name.clone(), format!("{server}/{name}"))
        });
        Place {
            dir,
            database,
            server: server.map(str::to_owned),
        }
    }

    fn command(&self) -> Command {
        let mut command = Command::new(BIN);
        command
            .current_dir(MANIFEST)
            .env("NEEDTOKNOW_DATA_DIR", self.dir.path())
            .env("NEEDTOKNOW_LOG", "warn")
            .env_remove("NEEDTOKNOW_MASTER_KEY");
        match &self.database {
            Some((name, url)) => command
                .env("DATABASE_URL", url)
                .env(
                    "REDIS_URL",
                    env_or("NTK_BENCH_REDIS", "redis://127.0.0.1:6379"),
                )
                .env("NEEDTOKNOW_REDIS_PREFIX", format!("ntk-bench-{name}")),
            None => command.env_remove("DATABASE_URL").env_remove("REDIS_URL"),
        };
        command
    }

    fn run(&self, args: &[&str]) -> String {
        let output = self.command().args(args).output().unwrap();
        assert!(
            output.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    fn title(&self) -> &'static str {
        if self.database.is_some() {
            "PostgreSQL + Redis"
        } else {
            "SQLite"
        }
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        if let (Some((name, _)), Some(server)) = (&self.database, &self.server) {
            let _ = Command::new("psql")
                .args([
                    &format!("{server}/postgres"),
                    "-XAtqc",
                    &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
                ])
                .status();
        }
    }
}

async fn post(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    query: &str,
    variables: Value,
) -> Value {
    client
        .post(format!("{base}/graphql"))
        .bearer_auth(token)
        .json(&json!({ "query": query, "variables": variables }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn intake_over_http(place: &Place, seconds: u64) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = place
        .command()
        .args(["serve", "--demo"])
        .env("NEEDTOKNOW_LISTEN", format!("127.0.0.1:{port}"))
        .env("NEEDTOKNOW_REQUESTS_PER_MINUTE", "1000000000")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
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
    let tokens: Value =
        serde_json::from_slice(&std::fs::read(place.dir.path().join("demo-tokens.json")).unwrap())
            .unwrap();
    let gateway = tokens["chat-gateway"].as_str().unwrap().to_owned();
    let mut tickets = Vec::new();
    for n in 0..CLIENTS {
        let opened = post(
            &client,
            &base,
            &gateway,
            OPEN,
            json!({ "i": {
            "customerExternalId": "demo-robin", "channel": "chat", "topic": "technical",
            "subject": format!("Benchmark chat {n}"), "message": "Hello" } }),
        )
        .await;
        tickets.push(
            opened["data"]["openTicket"]["ticketId"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let warm_up = Duration::from_secs(3);
    let started = Instant::now();
    let end = started + warm_up + Duration::from_secs(seconds);
    let mut clients = Vec::new();
    for ticket in tickets {
        let (client, base, gateway) = (client.clone(), base.clone(), gateway.clone());
        clients.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut failures = 0u64;
            let mut n = 0u64;
            while Instant::now() < end {
                n += 1;
                let body = format!(
                    "Message {n}: my card 4242 4242 4242 4242 was charged twice; call +1 555 0100 {:04} or mail me at robin.sample@example.com",
                    n % 10_000
                );
                let sent = Instant::now();
                let answer = post(&client, &base, &gateway, APPEND,
                    json!({ "t": ticket, "i": { "author": "CUSTOMER", "body": body } })).await;
                if sent.duration_since(started) < warm_up {
                    continue;
                }
                if answer.get("errors").is_some() {
                    failures += 1;
                } else {
                    latencies.push(sent.elapsed().as_micros() as u64);
                }
            }
            (latencies, failures)
        }));
    }
    let mut latencies = Vec::new();
    let mut failures = 0;
    for client in clients {
        let (l, f) = client.await.unwrap();
        latencies.extend(l);
        failures += f;
    }
    latencies.sort_unstable();
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    println!(
        "| {} | {CLIENTS} | {seconds} s | {:.0} | {:.1} | {:.1} | {failures} |",
        place.title(),
        latencies.len() as f64 / seconds as f64,
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
    );
}

/// Writes the export: customers, then for each ticket the ticket and its 3 messages.
fn generate(path: &Path, tickets: u64) -> u64 {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let customers = tickets.div_ceil(5);
    let mut records = 0;
    for c in 0..customers {
        let line = json!({ "type": "customer", "externalId": format!("u-{c}"),
            "fullName": format!("Customer {c} Example"), "email": format!("customer{c}@example.net"),
            "phone": format!("+44 20 7946 {:04}", c % 10_000), "dateOfBirth": "1980-05-17",
            "postalAddress": { "street": format!("{c} High Street"), "city": "Leeds", "postalCode": "LS1 1AA", "country": "GB" },
            "region": "GB", "plan": "basic" });
        writeln!(out, "{line}").unwrap();
        records += 1;
    }
    let topics = [
        "account_access",
        "billing",
        "shipping",
        "technical",
        "identity_verification",
    ];
    for t in 0..tickets {
        let created =
            chrono::Utc::now() - chrono::Duration::days(30) + chrono::Duration::seconds(t as i64);
        let resolved = t % 3 == 0;
        let mut ticket = json!({ "type": "ticket", "externalId": format!("t-{t}"),
            "customer": format!("u-{}", t / 5), "channel": (["email", "chat", "web", "phone"][t as usize % 4]),
            "topic": topics[t as usize % topics.len()], "subject": format!("Imported ticket {t}"),
            "createdAt": created.to_rfc3339() });
        if resolved {
            ticket["status"] = json!("resolved");
            ticket["resolvedAt"] = json!((created + chrono::Duration::hours(2)).to_rfc3339());
        }
        writeln!(out, "{ticket}").unwrap();
        records += 1;
        for m in 0..3 {
            let body = match m {
                0 => format!("I was charged twice on 4242 4242 4242 4242 for order {t}."),
                1 => "We are looking into it and will get back to you.".to_owned(),
                _ => format!("Thanks, you can call me on +44 20 7946 {:04}.", t % 10_000),
            };
            let line = json!({ "type": "message", "externalId": format!("m-{t}-{m}"),
                "ticket": format!("t-{t}"), "author": (["customer", "agent", "customer"][m]),
                "body": body, "createdAt": (created + chrono::Duration::minutes(m as i64)).to_rfc3339() });
            writeln!(out, "{line}").unwrap();
            records += 1;
        }
    }
    out.flush().unwrap();
    records
}

fn import(place: &Place, file: &Path, records: u64, label: &str) {
    let time = Path::new("/usr/bin/time");
    let mut command = if time.exists() {
        let mut c = Command::new(time);
        c.args(["-f", "peak-rss-kib %M"]).arg(BIN);
        c
    } else {
        Command::new(BIN)
    };
    let base = place.command();
    for (k, v) in base.get_envs() {
        match v {
            Some(v) => command.env(k, v),
            None => command.env_remove(k),
        };
    }
    command.current_dir(MANIFEST);
    let started = Instant::now();
    let output = command
        .args(["import", file.to_str().unwrap(), "--as", "bench-import"])
        .output()
        .unwrap();
    let elapsed = started.elapsed().as_secs_f64();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}{stderr}");
    let rss = stderr
        .lines()
        .find_map(|l| l.strip_prefix("peak-rss-kib "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map_or("n/a".to_owned(), |kib| format!("{:.0}", kib / 1024.0));
    println!(
        "| {} | {label} | {records} | {elapsed:.1} s | {:.0} | {rss} | {} |",
        place.title(),
        records as f64 / elapsed,
        stdout.trim().trim_start_matches("imported ")
    );
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let seconds: u64 = env_or("NTK_INTAKE_SECONDS", "20").parse().unwrap();
    let tickets: u64 = env_or("NTK_IMPORT_TICKETS", "100000").parse().unwrap();
    let postgres = env_or("NTK_BENCH_PG", "postgres://postgres@127.0.0.1:5432");
    let only = env_or("NTK_BENCH_ONLY", "both");
    let servers: Vec<Option<&str>> = [None, Some(postgres.as_str())]
        .into_iter()
        .filter(|s| match only.as_str() {
            "sqlite" => s.is_none(),
            "postgres" => s.is_some(),
            _ => true,
        })
        .collect();
    let cpu = machine::cpu_model();
    println!(
        "# needtoknow write-side benchmark\n\n- date: {}\n- machine: {} cores, {cpu}\n",
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    println!(
        "## Intake over HTTP (appendMessage with a card, a phone and an email in every body)\n"
    );
    println!("| database | clients | measured | messages/s | p50 ms | p99 ms | failures |");
    println!("|---|---|---|---|---|---|---|");
    for server in &servers {
        let place = Place::new(*server, "http");
        runtime.block_on(intake_over_http(&place, seconds));
    }

    let export = tempfile::Builder::new()
        .prefix("ntk-export-")
        .tempdir()
        .unwrap();
    let file = export.path().join("export.jsonl");
    let records = generate(&file, tickets);
    let size = std::fs::metadata(&file).map_or(0, |m| m.len());
    println!(
        "\n## Import ({tickets} tickets, {} messages, {} customers: {records} records, {:.0} MiB)\n",
        tickets * 3,
        tickets.div_ceil(5),
        size as f64 / 1048576.0
    );
    println!("| database | run | records | wall | records/s | peak RSS MiB | summary |");
    println!("|---|---|---|---|---|---|---|");
    for server in &servers {
        let place = Place::new(*server, "import");
        // Keys and the schema (a dev data directory), and the account the import writes as.
        place.run(&["seed", "--customers", "1", "--tickets", "0"]);
        place.run(&[
            "agent",
            "create",
            "--service",
            "--handle",
            "bench-import",
            "--role",
            "intake",
            "--team",
            "support",
        ]);
        import(&place, &file, records, "first");
        import(&place, &file, records, "again (nothing to write)");
    }
}
