//! Rate limits: a global request rate per token, and per-agent rates for sensitive actions
//! (`requestReveal`). Fixed windows counted in Redis when it is configured (shared by every
//! instance), in process memory otherwise.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::aio::ConnectionManager;

/// One limit: at most `max` events per `window`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    /// Events allowed per window.
    pub max: u64,
    /// The window.
    pub window: Duration,
}

/// The answer to "may this happen now?".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Yes.
    Allowed,
    /// No; retry after this many seconds.
    Limited {
        /// Seconds until the window ends.
        retry_after_secs: u64,
    },
}

/// Counts events per key and window.
#[derive(Clone)]
pub struct RateLimiter {
    backend: Backend,
    calls: Arc<AtomicU64>,
}

#[derive(Clone)]
enum Backend {
    /// In process memory (one instance).
    Memory(Arc<Mutex<HashMap<String, (u64, u64)>>>),
    /// In Redis, shared by every instance.
    Redis {
        manager: ConnectionManager,
        prefix: String,
        /// Bound on each call.
        timeout: Duration,
    },
}

fn window_of(rate: Rate, now: u64) -> (u64, u64) {
    let window = rate.window.as_secs().max(1);
    let start = now - now % window;
    (start, start + window - now)
}

impl RateLimiter {
    /// Counts in process memory (one instance).
    pub fn memory() -> RateLimiter {
        RateLimiter {
            backend: Backend::Memory(Arc::default()),
            calls: Arc::default(),
        }
    }

    /// Counts in Redis, shared by every instance; keys start with `prefix`.
    pub fn redis(manager: ConnectionManager, prefix: &str, timeout: Duration) -> RateLimiter {
        RateLimiter {
            backend: Backend::Redis {
                manager,
                prefix: prefix.to_owned(),
                timeout,
            },
            calls: Arc::default(),
        }
    }

    /// How many events were counted since the limiter was made (one Redis round trip
    /// each with Redis). Reported by `/metrics`.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// Counts one event for `key` under `rate`. When Redis does not answer, the limiter
    /// lets the event through and logs it: limits protect capacity, while every protected
    /// value stays behind the policy, grants and audit whatever the limiter says.
    pub async fn hit(&self, key: &str, rate: Rate) -> Verdict {
        let now = chrono::Utc::now().timestamp().max(0) as u64;
        let (start, left) = window_of(rate, now);
        self.calls.fetch_add(1, Ordering::Relaxed);
        let count = match &self.backend {
            Backend::Memory(map) => {
                let mut map = map.lock().unwrap_or_else(|p| p.into_inner());
                if map.len() > 100_000 {
                    map.retain(|_, (window, _)| *window == start);
                }
                let entry = map.entry(key.to_owned()).or_insert((start, 0));
                if entry.0 != start {
                    *entry = (start, 0);
                }
                entry.1 += 1;
                entry.1
            }
            Backend::Redis {
                manager,
                prefix,
                timeout,
            } => {
                let redis_key = format!("{prefix}:rate:{key}:{start}");
                let mut pipe = redis::pipe();
                pipe.incr(&redis_key, 1u64)
                    .cmd("EXPIRE")
                    .arg(&redis_key)
                    .arg(left + 1)
                    .ignore();
                let mut connection = manager.clone();
                match tokio::time::timeout(*timeout, pipe.query_async::<(u64,)>(&mut connection))
                    .await
                {
                    Ok(Ok((count,))) => count,
                    _ => {
                        tracing::warn!("rate limiter unavailable; request let through");
                        return Verdict::Allowed;
                    }
                }
            }
        };
        if count > rate.max {
            Verdict::Limited {
                retry_after_secs: left,
            }
        } else {
            Verdict::Allowed
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_memory_limiter_counts_per_key_within_a_window() {
        let limiter = RateLimiter::memory();
        let rate = Rate {
            max: 2,
            window: Duration::from_secs(3600),
        };
        assert_eq!(limiter.hit("a", rate).await, Verdict::Allowed);
        assert_eq!(limiter.hit("a", rate).await, Verdict::Allowed);
        assert!(
            matches!(limiter.hit("a", rate).await, Verdict::Limited { retry_after_secs } if retry_after_secs <= 3600)
        );
        assert_eq!(limiter.hit("b", rate).await, Verdict::Allowed);
    }
}
