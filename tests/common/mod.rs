//! What every test crate shares: the one way to run the `needtoknow` binary, the
//! `TEST_LOG=1` switch, and the names of test databases.
//!
//! With `TEST_LOG=1` (e.g. `TEST_LOG=1 cargo test --test api some_test`), the service's
//! logs are shown for a failing test: in-process services log to the test's captured
//! output (printed only when the test fails), and the binary logs at `info` instead of
//! `warn`, into the output each test already prints on failure.

#![allow(dead_code)] // Each test crate uses part of this module.

use std::process::{Command, Output};

/// Whether `TEST_LOG` asks for the service's logs.
pub fn test_log() -> bool {
    std::env::var("TEST_LOG").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// The `needtoknow` binary, run from the repository root (so it reads `./policies`), with
/// nothing inherited that would point it at another database, key or config file, logging
/// at `warn` (`info` with `TEST_LOG`).
pub fn binary() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_needtoknow"));
    command
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("DATABASE_URL")
        .env_remove("REDIS_URL")
        .env_remove("NEEDTOKNOW_MASTER_KEY")
        .env_remove("NEEDTOKNOW_CONFIG")
        .env("NEEDTOKNOW_LOG", if test_log() { "info" } else { "warn" });
    command
}

/// What the binary printed on standard output.
pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// What the binary printed on standard error.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// With `TEST_LOG`, sends the logs of services running inside the test process to the
/// test's captured output (shown when the test fails). Idempotent.
pub fn init_test_log() {
    if test_log() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(std::env::var("NEEDTOKNOW_LOG").unwrap_or_else(|_| "info".to_owned()))
            .with_test_writer()
            .with_ansi(false)
            .try_init();
    }
}

/// A `needtoknow serve` started by [`serve`].
pub struct Served {
    /// The process.
    pub child: std::process::Child,
    /// Where it listens, `host:port`.
    pub address: String,
    /// Its standard error, a JSON log line each, collected while it runs.
    log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    /// The thread collecting the log; it ends when the process does.
    collector: Option<std::thread::JoinHandle<()>>,
}

impl Served {
    /// The log so far.
    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Waits for the process to exit (the caller signalled it) and returns its exit status
    /// and its whole log.
    pub fn wait(&mut self) -> (std::process::ExitStatus, Vec<String>) {
        let status = self.child.wait().expect("serve can be waited for");
        if let Some(collector) = self.collector.take() {
            let _ = collector.join();
        }
        (status, self.log())
    }
}

/// Starts `command` (the binary with `serve` and its arguments), logging JSON at `info`
/// on standard error, and waits (at most 60 s) until it logs that it listens. Its log is
/// collected for as long as it runs.
pub fn serve(command: &mut Command) -> Served {
    use std::io::BufRead;
    let mut child = command
        .env("NEEDTOKNOW_LOG_FORMAT", "json")
        .env("NEEDTOKNOW_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("serve starts");
    let stderr = child.stderr.take().expect("serve's standard error");
    let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let (listening, address) = std::sync::mpsc::channel();
    let collected = log.clone();
    let collector = std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            let event: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
            if event["message"] == "needtoknow listening" {
                let _ = listening.send(event["address"].as_str().unwrap_or_default().to_owned());
            }
            collected
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(line);
        }
    });
    let address = address
        .recv_timeout(std::time::Duration::from_secs(60))
        .unwrap_or_else(|_| {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "serve did not start listening: {:?}",
                log.lock().unwrap_or_else(|p| p.into_inner())
            )
        });
    Served {
        child,
        address,
        log,
        collector: Some(collector),
    }
}

/// A fresh name for a test's own PostgreSQL database. `scripts/test` gives each run a prefix
/// of its own (`NEEDTOKNOW_TEST_DB_PREFIX`) and drops exactly those databases when the run
/// ends, so two runs on one server never drop each other's.
pub fn pg_database_name() -> String {
    let prefix = std::env::var("NEEDTOKNOW_TEST_DB_PREFIX").unwrap_or_else(|_| "ntk_test_".into());
    format!("{prefix}{}", uuid::Uuid::new_v4().simple())
}

/// The database number behind an id the API answered with: a global id (base64url of
/// `Type:key`, the number last) or a plain number.
pub fn db_id(id: &str) -> i32 {
    use base64::Engine;
    let text = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(id)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .filter(|text| text.contains(':'))
        .unwrap_or_else(|| id.to_owned());
    text.rsplit(':')
        .next()
        .unwrap_or_default()
        .parse()
        .unwrap_or_else(|_| panic!("{id} names no number"))
}

/// A Redis of the test's own on a free port, to stop mid-test (the shared one on 6379
/// must keep running for every other test). Stopped when dropped.
pub struct PrivateRedis {
    /// Where it listens on 127.0.0.1.
    pub port: u16,
    child: std::process::Child,
}

impl PrivateRedis {
    /// Starts one on `port` and waits until it accepts connections.
    pub fn start_on(port: u16) -> PrivateRedis {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server is installed (scripts/test installs it)");
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        PrivateRedis { port, child }
    }

    /// Starts one on a free port.
    pub fn start() -> PrivateRedis {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("a free port")
            .local_addr()
            .expect("a bound port")
            .port();
        PrivateRedis::start_on(port)
    }

    /// Its URL.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills it (its connections close at once) and returns its port, to start another
    /// on later.
    pub fn stop(mut self) -> u16 {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.port
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
