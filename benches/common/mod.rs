//! What the HTTP benchmarks share: driving the service with `wrk` (installed with apt-get
//! when missing) and reading its results back from a Lua `done()` hook.
//!
//! Included with `mod common;` by `peer.rs` and `e2e.rs`, which also read the service's
//! JSON log back with [`log_problems`] (from `service_log.rs`, which `soak.rs` includes on
//! its own). A script is the Lua of one workload followed by [`WRK_REPORT`]: the workload
//! sets what to send and a `response()` that adds 1 to the global `bad` for every answer it
//! does not accept; the report prints one `NTK …` line that [`wrk`] parses. What every
//! benchmark reads from `/proc` is in [`machine`].

pub mod machine;
mod service_log;

use std::process::Command;
use std::time::Duration;

/// The Lua every script ends with: JSON posts, the `bad` and `cycles` counters, and a
/// `done()` that sums them over the threads and prints them with wrk's own figures. Socket
/// errors and timeouts count as failed answers too.
pub const WRK_REPORT: &str = r#"
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
bad = 0
cycles = 0
local threads = {}
function setup(thread) table.insert(threads, thread) end
function done(summary, latency, requests)
  local failed, done_cycles = 0, 0
  for _, t in ipairs(threads) do
    failed = failed + t:get("bad")
    done_cycles = done_cycles + t:get("cycles")
  end
  local e = summary.errors
  io.write(string.format("NTK %d %d %d %d %d %d\n", summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99),
    failed + e.connect + e.read + e.write + e.timeout, done_cycles))
end
"#;

/// One request sent over and over: `body` posted with `token`; an answer that is not HTTP
/// 200 or carries `errors` is a failure.
pub fn repeat_script(token: &str, body: &str) -> String {
    format!(
        "wrk.body = {}\nwrk.headers[\"Authorization\"] = {}\n\
         function response(status, headers, body)\n\
         \x20 if status ~= 200 or string.find(body, '\"errors\"', 1, true) then bad = bad + 1 end\n\
         end\n{WRK_REPORT}",
        lua_string(body),
        lua_string(&format!("Bearer {token}")),
    )
}

/// What one `wrk` run measured.
#[derive(Clone, Debug, Default)]
pub struct WrkRun {
    /// Answers received, accepted or not.
    pub requests: u64,
    /// Wall time of the run.
    pub duration: Duration,
    /// Median latency of all answers, in milliseconds (wrk's resolution: 1 µs).
    pub p50_ms: f64,
    /// 99th percentile latency of all answers, in milliseconds.
    pub p99_ms: f64,
    /// Answers the script did not accept, plus socket errors and timeouts.
    pub failed: u64,
    /// Multi-request cycles completed, for scripts that count them (0 otherwise).
    #[allow(dead_code, reason = "only e2e's W3 counts cycles; peer reads none")]
    pub cycles: u64,
}

impl WrkRun {
    /// Answers per second.
    pub fn rate(&self) -> f64 {
        self.requests as f64 / self.duration.as_secs_f64().max(1e-9)
    }
}

/// Runs `script` (which must end with [`WRK_REPORT`]) against `url` with one thread and
/// `connections` keep-alive connections for `secs` whole seconds (wrk's `-d` takes no
/// fractions).
pub fn wrk(url: &str, script: &str, connections: usize, secs: u64) -> WrkRun {
    let mut file = tempfile::Builder::new()
        .prefix("ntk-wrk-")
        .suffix(".lua")
        .tempfile()
        .expect("a temporary wrk script");
    std::io::Write::write_all(&mut file, script.as_bytes()).expect("write the wrk script");
    let output = Command::new("wrk")
        .args(["-t1", &format!("-c{connections}")])
        .arg(format!("-d{}s", secs.max(1)))
        .args(["--timeout", "10s", "-s"])
        .arg(file.path())
        .arg(url)
        .output()
        .expect("wrk runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("NTK "))
        .unwrap_or_else(|| {
            panic!(
                "no result from wrk: {stdout}{}",
                String::from_utf8_lossy(&output.stderr)
            )
        });
    let n: Vec<u64> = line
        .split_whitespace()
        .map(|v| v.parse().expect("a number"))
        .collect();
    let [requests, micros, p50, p99, failed, cycles] = n[..] else {
        panic!("wrk's result has 6 numbers: {line}");
    };
    WrkRun {
        requests,
        duration: Duration::from_micros(micros),
        p50_ms: p50 as f64 / 1e3,
        p99_ms: p99 as f64 / 1e3,
        failed,
        cycles,
    }
}

/// `text` as a Lua string literal.
pub fn lua_string(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Makes sure `wrk` runs here: installs the Debian package when running as root.
pub fn ensure_wrk() -> Result<(), String> {
    if Command::new("wrk").arg("--version").output().is_ok() {
        return Ok(());
    }
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0"));
    if !root {
        return Err("`wrk` is not installed (Debian: apt-get install wrk)".into());
    }
    let install = || {
        Command::new("apt-get")
            .args(["install", "-y", "-qq", "wrk"])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .is_ok_and(|s| s.success())
    };
    // A fresh machine may have no package lists yet.
    let installed = install()
        || (Command::new("apt-get")
            .args(["update", "-qq"])
            .status()
            .is_ok_and(|s| s.success())
            && install());
    if installed {
        Ok(())
    } else {
        Err("could not install `wrk` with apt-get".into())
    }
}

pub use service_log::log_problems;
