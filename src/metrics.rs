//! Counters for operators and the end-to-end benchmark, served as Prometheus text on
//! `GET /metrics`. They count work, never data: no label holds an id, a handle or a value.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Counters the service keeps itself (the grant store and rate limiter keep their own).
#[derive(Debug, Default)]
pub struct Metrics {
    /// SQL statements sent to the database, start-up's included.
    pub sql_statements: Arc<AtomicU64>,
    /// GraphQL requests that reached execution (after authentication and limits).
    pub graphql_requests: AtomicU64,
}

impl Metrics {
    /// Counts one GraphQL request.
    pub fn count_request(&self) {
        self.graphql_requests.fetch_add(1, Ordering::Relaxed);
    }
}

/// One counter in the Prometheus text exposition format.
fn counter(out: &mut String, name: &str, help: &str, value: u64) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} counter");
    let _ = writeln!(out, "{name} {value}");
}

/// Counters kept by other parts of the service.
#[derive(Clone, Copy, Debug, Default)]
pub struct Elsewhere {
    /// Calls to the grant store.
    pub grant_store_calls: u64,
    /// Calls the rate limiter made to its backend.
    pub rate_limit_calls: u64,
    /// Requests authenticated from the token cache.
    pub token_cache_hits: u64,
}

/// The `/metrics` body.
pub fn render(metrics: &Metrics, elsewhere: Elsewhere) -> String {
    let Elsewhere {
        grant_store_calls,
        rate_limit_calls,
        token_cache_hits,
    } = elsewhere;
    let mut out = String::new();
    counter(
        &mut out,
        "needtoknow_graphql_requests_total",
        "GraphQL requests executed.",
        metrics.graphql_requests.load(Ordering::Relaxed),
    );
    counter(
        &mut out,
        "needtoknow_sql_statements_total",
        "SQL statements sent to the database.",
        metrics.sql_statements.load(Ordering::Relaxed),
    );
    counter(
        &mut out,
        "needtoknow_grant_store_calls_total",
        "Calls to the reveal grant store (Redis round trips with Redis).",
        grant_store_calls,
    );
    counter(
        &mut out,
        "needtoknow_rate_limit_calls_total",
        "Rate-limit checks (with Redis: round trips, one per lease of up to 1 000 requests).",
        rate_limit_calls,
    );
    counter(
        &mut out,
        "needtoknow_token_cache_hits_total",
        "Requests authenticated from tokens remembered in the last second (no SQL).",
        token_cache_hits,
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_counter_in_prometheus_text() {
        let metrics = Metrics::default();
        metrics.count_request();
        metrics.sql_statements.fetch_add(3, Ordering::Relaxed);
        let text = render(
            &metrics,
            Elsewhere {
                grant_store_calls: 2,
                rate_limit_calls: 1,
                token_cache_hits: 4,
            },
        );
        for line in [
            "needtoknow_graphql_requests_total 1",
            "needtoknow_sql_statements_total 3",
            "needtoknow_grant_store_calls_total 2",
            "needtoknow_rate_limit_calls_total 1",
            "needtoknow_token_cache_hits_total 4",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in {text}");
        }
    }
}
