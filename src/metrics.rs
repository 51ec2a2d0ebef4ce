//! Counters and latency histograms for operators and the end-to-end benchmark, served as
//! Prometheus text on `GET /metrics`. They count and time work, never data: a label only
//! ever holds one of the fixed words of [`Operation`] and [`Outcome`], never an id, a
//! handle, an operation's name or a value.
//!
//! Each running app has its own [`prometheus::Registry`] rather than the process-wide
//! default registry or the `metrics` facade's global recorder: the API tests start several
//! apps in one process, and each must report its own counts.
//!
//! The grant store, the rate limiter and the token cache keep their own counters (the
//! grant store's tests read them directly, and they exist before any registry does).
//! [`Metrics::read_elsewhere`] exposes them by reading them at each scrape, so there is
//! one count per thing and nothing to keep in step.

use std::time::Duration;

use anyhow::Context;
use prometheus::core::{Collector, Desc};
use prometheus::proto::{self, MetricFamily, MetricType};
use prometheus::{Histogram, HistogramOpts, HistogramVec, IntCounter, Registry};

/// Histogram buckets, in seconds, for work that takes from a fifth of a millisecond (a
/// request answered from caches) to about a second (a large page on a busy database).
const LATENCY_BUCKETS: &[f64] = &[
    0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// What a GraphQL request ran, as a label value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    /// A query ran.
    Query,
    /// A mutation ran.
    Mutation,
    /// A subscription was asked for.
    Subscription,
    /// Nothing ran: the request was refused before execution (credentials, rate limit,
    /// body, document, limits, allow-list).
    None,
}

impl Operation {
    fn label(self) -> &'static str {
        match self {
            Operation::Query => "query",
            Operation::Mutation => "mutation",
            Operation::Subscription => "subscription",
            Operation::None => "none",
        }
    }
}

/// How a GraphQL request ended, as a label value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Answered without errors.
    Ok,
    /// Refused, or answered with at least one error.
    Error,
}

impl Outcome {
    fn label(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Error => "error",
        }
    }
}

/// One app's metrics, in its own registry. Cheap to share behind an `Arc`; every handle it
/// gives out counts into this registry.
pub struct Metrics {
    registry: Registry,
    sql_statements: IntCounter,
    graphql_requests: IntCounter,
    request_duration: HistogramVec,
    audit_append_duration: Histogram,
}

impl Metrics {
    /// A fresh registry with the service's own counters and histograms, all at zero.
    pub fn new() -> anyhow::Result<Metrics> {
        let registry = Registry::new();
        let sql_statements = IntCounter::new(
            "needtoknow_sql_statements_total",
            "SQL statements sent to the database.",
        )?;
        let graphql_requests = IntCounter::new(
            "needtoknow_graphql_requests_total",
            "GraphQL requests executed.",
        )?;
        let request_duration = HistogramVec::new(
            HistogramOpts::new(
                "needtoknow_http_request_duration_seconds",
                "Time from a /graphql request's headers read to its answer built, by operation type \
                 (none: refused before execution) and outcome.",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["operation", "outcome"],
        )?;
        let audit_append_duration = Histogram::with_opts(
            HistogramOpts::new(
                "needtoknow_audit_append_duration_seconds",
                "Time an audit append waits until its events are committed, queueing \
                 behind another commit included (events written inside a write's own \
                 transaction are part of that write and not timed here).",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
        )?;
        registry.register(Box::new(sql_statements.clone()))?;
        registry.register(Box::new(graphql_requests.clone()))?;
        registry.register(Box::new(request_duration.clone()))?;
        registry.register(Box::new(audit_append_duration.clone()))?;
        Ok(Metrics {
            registry,
            sql_statements,
            graphql_requests,
            request_duration,
            audit_append_duration,
        })
    }

    /// The counter of SQL statements, for the database connections' statement callback.
    pub fn sql_statements(&self) -> IntCounter {
        self.sql_statements.clone()
    }

    /// The histogram of audit appends, for the audit log.
    pub fn audit_append_duration(&self) -> Histogram {
        self.audit_append_duration.clone()
    }

    /// Counts one GraphQL request that reached execution (after authentication and limits).
    pub fn count_request(&self) {
        self.graphql_requests.inc();
    }

    /// Records how long one `/graphql` request took and how it ended.
    pub fn observe_request(&self, operation: Operation, outcome: Outcome, took: Duration) {
        self.request_duration
            .with_label_values(&[operation.label(), outcome.label()])
            .observe(took.as_secs_f64());
    }

    /// Reports counters kept by other parts of the service, read at each scrape.
    pub fn read_elsewhere(&self, elsewhere: Elsewhere) -> anyhow::Result<()> {
        let Elsewhere {
            grant_store_calls,
            rate_limit_calls,
            token_cache_hits,
            grant_cache_hits,
        } = elsewhere;
        for (name, help, read) in [
            (
                "needtoknow_grant_store_calls_total",
                "Calls to the reveal grant store (Redis round trips with Redis).",
                grant_store_calls,
            ),
            (
                "needtoknow_rate_limit_calls_total",
                "Rate-limit checks (with Redis: round trips, one per lease of up to 1 000 \
                 requests).",
                rate_limit_calls,
            ),
            (
                "needtoknow_token_cache_hits_total",
                "Requests authenticated from tokens remembered in the last second (no SQL).",
                token_cache_hits,
            ),
            (
                "needtoknow_grant_cache_hits_total",
                "Requests that read the agent's reveal grants remembered from the last second (no Redis call).",
                grant_cache_hits,
            ),
        ] {
            let counter = ReadCounter {
                desc: Desc::new(name.into(), help.into(), Vec::new(), Default::default())?,
                read,
            };
            self.registry
                .register(Box::new(counter))
                .with_context(|| format!("registering {name}"))?;
        }
        Ok(())
    }

    /// The `/metrics` body, in the Prometheus text format ([`prometheus::TEXT_FORMAT`]).
    pub fn render(&self) -> anyhow::Result<String> {
        let mut out = String::new();
        prometheus::TextEncoder::new()
            .encode_utf8(&self.registry.gather(), &mut out)
            .context("encoding the metrics")?;
        Ok(out)
    }
}

/// How the current value of a counter kept elsewhere is read.
pub type Read = Box<dyn Fn() -> u64 + Send + Sync>;

/// Counters kept by other parts of the service, which [`Metrics::read_elsewhere`] reports.
pub struct Elsewhere {
    /// Calls to the grant store.
    pub grant_store_calls: Read,
    /// Calls the rate limiter made to its backend.
    pub rate_limit_calls: Read,
    /// Requests authenticated from the token cache.
    pub token_cache_hits: Read,
    /// Requests whose grants were read from the grant cache.
    pub grant_cache_hits: Read,
}

/// A counter whose value lives elsewhere and is read when the registry is gathered: the
/// counter twin of [`prometheus::PullingGauge`], which the crate has only for gauges.
struct ReadCounter {
    desc: Desc,
    read: Read,
}

impl Collector for ReadCounter {
    fn desc(&self) -> Vec<&Desc> {
        vec![&self.desc]
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let mut counter = proto::Counter::default();
        // Exact up to 2^53, which no counter here reaches.
        counter.set_value((self.read)() as f64);
        let mut metric = proto::Metric::default();
        metric.set_counter(counter);
        let mut family = MetricFamily::default();
        family.set_name(self.desc.fq_name.clone());
        family.set_help(self.desc.help.clone());
        family.set_field_type(MetricType::COUNTER);
        family.set_metric(vec![metric]);
        vec![family]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn elsewhere(grants: u64, limits: u64, hits: u64) -> Elsewhere {
        Elsewhere {
            grant_store_calls: Box::new(move || grants),
            rate_limit_calls: Box::new(move || limits),
            token_cache_hits: Box::new(move || hits),
            grant_cache_hits: Box::new(move || hits + 1),
        }
    }

    #[test]
    fn renders_every_counter_in_prometheus_text() {
        let metrics = Metrics::new().unwrap();
        metrics.count_request();
        metrics.sql_statements().inc_by(3);
        metrics.read_elsewhere(elsewhere(2, 1, 4)).unwrap();
        let text = metrics.render().unwrap();
        for line in [
            "# TYPE needtoknow_graphql_requests_total counter",
            "needtoknow_graphql_requests_total 1",
            "needtoknow_sql_statements_total 3",
            "# TYPE needtoknow_grant_store_calls_total counter",
            "needtoknow_grant_store_calls_total 2",
            "needtoknow_rate_limit_calls_total 1",
            "needtoknow_token_cache_hits_total 4",
            "needtoknow_grant_cache_hits_total 5",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in {text}");
        }
    }

    #[test]
    fn counters_kept_elsewhere_are_read_at_each_scrape() {
        let metrics = Metrics::new().unwrap();
        let calls = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let read = calls.clone();
        metrics
            .read_elsewhere(Elsewhere {
                grant_store_calls: Box::new(move || {
                    read.load(std::sync::atomic::Ordering::Relaxed)
                }),
                ..elsewhere(0, 0, 0)
            })
            .unwrap();
        calls.store(7, std::sync::atomic::Ordering::Relaxed);
        let text = metrics.render().unwrap();
        assert!(
            text.contains("\nneedtoknow_grant_store_calls_total 7\n"),
            "{text}"
        );
    }

    #[test]
    fn request_latency_is_a_histogram_labelled_by_operation_and_outcome() {
        let metrics = Metrics::new().unwrap();
        metrics.observe_request(Operation::Query, Outcome::Ok, Duration::from_micros(300));
        metrics.observe_request(Operation::None, Outcome::Error, Duration::from_millis(2));
        let text = metrics.render().unwrap();
        for line in [
            "# TYPE needtoknow_http_request_duration_seconds histogram",
            r#"needtoknow_http_request_duration_seconds_bucket{operation="query",outcome="ok",le="0.00025"} 0"#,
            r#"needtoknow_http_request_duration_seconds_bucket{operation="query",outcome="ok",le="0.0005"} 1"#,
            r#"needtoknow_http_request_duration_seconds_bucket{operation="query",outcome="ok",le="+Inf"} 1"#,
            r#"needtoknow_http_request_duration_seconds_count{operation="query",outcome="ok"} 1"#,
            r#"needtoknow_http_request_duration_seconds_count{operation="none",outcome="error"} 1"#,
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in {text}");
        }
    }

    /// Two apps in one process keep their own counts.
    #[test]
    fn each_app_counts_in_its_own_registry() {
        let (a, b) = (Metrics::new().unwrap(), Metrics::new().unwrap());
        a.count_request();
        assert!(b
            .render()
            .unwrap()
            .contains("\nneedtoknow_graphql_requests_total 0\n"));
    }
}
