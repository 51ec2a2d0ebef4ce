//! Rate limits: a request rate per token, and per-agent rates for sensitive actions
//! (`requestReveal`, identity checks), as GCRA (the generic cell rate algorithm): a rate of
//! `max` per `window` lets `max` events through at once, then one every `window / max`.
//! Unlike fixed windows, it never lets twice the rate through around a window's edge.
//!
//! - **One instance** (no Redis): `governor`'s keyed GCRA in process memory.
//! - **Several instances** (Redis): the GCRA state lives in Redis (one Lua script, so every
//!   instance shares it), and each instance takes tokens from it in **leases**: up to one
//!   second's worth of the rate at a time (at least 1, at most [`MAX_LEASE`]), spent
//!   locally without a round trip. Error bound: each instance may hold at most one lease,
//!   taken from the shared budget no more than [`LEASE_LIFETIME`] before it is spent, so
//!   across `n` instances the events let through never exceed the GCRA's allowance by more
//!   than `n` leases, about `n` seconds' worth of the rate; an instance whose lease ran out
//!   may refuse while another's is unspent. Rates under one event per second get leases
//!   of 1: every event asks Redis, and the limit is exact.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota};
use redis::aio::ConnectionManager;

/// One limit: at most `max` events at once, refilled at `max` per `window`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Rate {
    /// Events allowed at once, and per window.
    pub max: u64,
    /// The window.
    pub window: Duration,
}

impl Rate {
    /// Time between two events at the sustained rate, in microseconds.
    fn emission_micros(self) -> f64 {
        self.window.as_micros() as f64 / self.max.max(1) as f64
    }

    /// Tokens one lease takes: a second's worth of the rate, within [1, MAX_LEASE].
    fn lease(self) -> u64 {
        let per_second = self.max as f64 / self.window.as_secs_f64().max(1e-3);
        (per_second.floor() as u64).clamp(1, MAX_LEASE)
    }
}

/// Most tokens one lease takes.
pub const MAX_LEASE: u64 = 1000;
/// A lease's unspent tokens are dropped this long after it was taken.
pub const LEASE_LIFETIME: Duration = Duration::from_secs(1);

/// The answer to "may this happen now?".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Yes.
    Allowed,
    /// No; retry after this many seconds.
    Limited {
        /// Seconds until the next event would be let through (at least 1).
        retry_after_secs: u64,
    },
}

/// Counts events per key. Cheap to clone.
#[derive(Clone)]
pub struct RateLimiter {
    backend: Backend,
    calls: Arc<AtomicU64>,
}

#[derive(Clone)]
enum Backend {
    /// In process memory (one instance): one keyed GCRA per rate.
    Memory(Arc<Mutex<HashMap<Rate, Arc<DefaultKeyedRateLimiter<String>>>>>),
    /// In Redis, shared by every instance, spent locally in leases.
    Redis {
        manager: ConnectionManager,
        prefix: String,
        /// Bound on each call.
        timeout: Duration,
        leases: Arc<Mutex<HashMap<String, Lease>>>,
    },
}

/// Tokens taken from Redis and not yet spent.
struct Lease {
    left: u64,
    taken: Instant,
}

/// Takes up to `ARGV[3]` tokens from the GCRA state at `KEYS[1]` (the theoretical arrival
/// time, in microseconds), with emission interval `ARGV[1]` µs and burst `ARGV[2]`.
/// Answers {tokens granted, microseconds until one more would be}.
const TAKE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local emission = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local room = math.floor((now + burst * emission - tat) / emission)
local got = math.max(0, math.min(want, room))
if got > 0 then
  tat = tat + got * emission
  redis.call('SET', KEYS[1], string.format('%.0f', tat), 'PX', math.ceil((tat - now) / 1000) + 1000)
end
local wait = tat + emission - now - burst * emission
return {got, math.max(0, math.ceil(wait))}
";

static TAKE_SCRIPT: std::sync::LazyLock<redis::Script> =
    std::sync::LazyLock::new(|| redis::Script::new(TAKE));

fn seconds(wait: Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
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
                leases: Arc::default(),
            },
            calls: Arc::default(),
        }
    }

    /// How many calls reached the backend since the limiter was made: Redis round trips
    /// (one per lease), or in-process checks. Reported by `/metrics`.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// Counts one event for `key` under `rate`. When Redis does not answer, the limiter
    /// lets the event through and logs it: limits protect capacity, while every protected
    /// value stays behind the policy, grants and audit whatever the limiter says.
    pub async fn hit(&self, key: &str, rate: Rate) -> Verdict {
        match &self.backend {
            Backend::Memory(limiters) => {
                self.calls.fetch_add(1, Ordering::Relaxed);
                let limiter = {
                    let mut limiters = limiters.lock().unwrap_or_else(|p| p.into_inner());
                    limiters
                        .entry(rate)
                        .or_insert_with(|| Arc::new(governor::RateLimiter::keyed(quota(rate))))
                        .clone()
                };
                if limiter.len() > 100_000 {
                    limiter.retain_recent();
                }
                match limiter.check_key(&key.to_owned()) {
                    Ok(()) => Verdict::Allowed,
                    Err(not_until) => Verdict::Limited {
                        retry_after_secs: seconds(not_until.wait_time_from(limiter.clock().now()))
                            .max(1),
                    },
                }
            }
            Backend::Redis {
                manager,
                prefix,
                timeout,
                leases,
            } => {
                let lease_key = format!("{key}|{}|{}", rate.max, rate.window.as_millis());
                {
                    let mut leases = leases.lock().unwrap_or_else(|p| p.into_inner());
                    if let Some(lease) = leases.get_mut(&lease_key) {
                        if lease.left > 0 && lease.taken.elapsed() < LEASE_LIFETIME {
                            lease.left -= 1;
                            return Verdict::Allowed;
                        }
                    }
                }
                self.calls.fetch_add(1, Ordering::Relaxed);
                let taken = Instant::now();
                let mut connection = manager.clone();
                let mut invocation = TAKE_SCRIPT.key(format!("{prefix}:gcra:{key}"));
                invocation
                    .arg(rate.emission_micros())
                    .arg(rate.max)
                    .arg(rate.lease());
                let call = invocation.invoke_async::<(u64, u64)>(&mut connection);
                match tokio::time::timeout(*timeout, call).await {
                    Ok(Ok((0, wait_micros))) => Verdict::Limited {
                        retry_after_secs: seconds(Duration::from_micros(wait_micros)).max(1),
                    },
                    Ok(Ok((granted, _))) => {
                        let mut leases = leases.lock().unwrap_or_else(|p| p.into_inner());
                        if leases.len() > 100_000 {
                            leases.retain(|_, l| l.taken.elapsed() < LEASE_LIFETIME);
                        }
                        leases.insert(
                            lease_key,
                            Lease {
                                left: granted - 1,
                                taken,
                            },
                        );
                        Verdict::Allowed
                    }
                    _ => {
                        tracing::warn!("rate limiter unavailable; request let through");
                        Verdict::Allowed
                    }
                }
            }
        }
    }
}

/// `rate` as a governor quota: a burst of `max`, one more every `window / max`.
fn quota(rate: Rate) -> Quota {
    let burst = NonZeroU32::new(u32::try_from(rate.max).unwrap_or(u32::MAX).max(1))
        .unwrap_or(NonZeroU32::MIN);
    let period = Duration::from_nanos(
        (rate.window.as_nanos() / u128::from(rate.max.max(1))).clamp(1, u128::from(u64::MAX))
            as u64,
    );
    Quota::with_period(period)
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MAX))
        .allow_burst(burst)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_memory_limiter_lets_a_burst_through_then_the_rate() {
        let limiter = RateLimiter::memory();
        let rate = Rate {
            max: 2,
            window: Duration::from_secs(3600),
        };
        assert_eq!(limiter.hit("a", rate).await, Verdict::Allowed);
        assert_eq!(limiter.hit("a", rate).await, Verdict::Allowed);
        assert!(
            matches!(limiter.hit("a", rate).await, Verdict::Limited { retry_after_secs } if (1..=1800).contains(&retry_after_secs))
        );
        assert_eq!(limiter.hit("b", rate).await, Verdict::Allowed);
    }

    #[test]
    fn a_lease_is_a_second_of_the_rate() {
        let per_minute = |max| Rate {
            max,
            window: Duration::from_secs(60),
        };
        assert_eq!(per_minute(3).lease(), 1);
        assert_eq!(per_minute(600).lease(), 10);
        assert_eq!(per_minute(1_000_000_000).lease(), MAX_LEASE);
    }
}
