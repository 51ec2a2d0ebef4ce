//! What every test crate shares: the one way to run the `needtoknow` binary, and the
//! `TEST_LOG=1` switch.
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
/// nothing inherited that would point it at another database or key, logging at `warn`
/// (`info` with `TEST_LOG`).
pub fn binary() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_needtoknow"));
    command
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("DATABASE_URL")
        .env_remove("REDIS_URL")
        .env_remove("NEEDTOKNOW_MASTER_KEY")
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
