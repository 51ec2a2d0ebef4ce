//! Authenticated credentials, remembered for a moment so that a request does not look its
//! token up in the database every time.
//!
//! Two things bound how long a change to an agent (disabled, tokens revoked, role, team or
//! queues changed) can go unnoticed:
//!
//! - **Invalidation**: the service forgets every entry as soon as it changes an agent
//!   itself, and tells the other instances through Redis pub/sub when Redis is configured
//!   ([`Invalidations`]). While the subscription is down, nothing is served from memory.
//! - **Age**: an entry is used for at most `max_age` (1 s by default, 1 s at most) after
//!   its look-up started, whatever happened to a message. This covers what no message
//!   announces: a script editing the database, a command line run without `REDIS_URL`
//!   against a service that has it, or a message lost with a connection.
//!
//! Only successful look-ups are kept: an unknown or revoked token is looked up every time.
//! The cache is keyed by the credential's hash (or the SSO handle), never the token.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;

use super::Agent;

/// More entries than this are swept of stale ones before another is added.
const SWEEP_ABOVE: usize = 10_000;

/// What a cached credential stands for.
#[derive(Clone, Debug)]
pub struct Cached {
    /// The agent, as read from the database.
    pub agent: Agent,
    /// The key its requests are rate-limited under.
    pub rate_key: String,
}

/// The credentials of this instance. Cheap to clone.
#[derive(Clone)]
pub struct TokenCache {
    inner: Arc<Inner>,
}

struct Inner {
    entries: Mutex<HashMap<String, (Cached, Instant)>>,
    /// Bumped by every invalidation: a look-up that started before one is not kept.
    generation: AtomicU64,
    /// False while the invalidation feed is down: nothing is served from memory then.
    live: AtomicBool,
    max_age: Duration,
    hits: AtomicU64,
}

/// A look-up in progress: what [`TokenCache::keep`] needs to refuse a stale answer. Its
/// answer's age counts from when the look-up started, not from when it ended.
#[derive(Clone, Copy, Debug)]
pub struct Ticket(u64, Instant);

impl TokenCache {
    /// A cache whose entries live at most `max_age`; `Duration::ZERO` turns it off.
    pub fn new(max_age: Duration) -> TokenCache {
        TokenCache {
            inner: Arc::new(Inner {
                entries: Mutex::default(),
                generation: AtomicU64::new(0),
                live: AtomicBool::new(true),
                max_age,
                hits: AtomicU64::new(0),
            }),
        }
    }

    /// The agent behind `key`, if it was looked up less than `max_age` ago and nothing was
    /// invalidated since.
    pub fn get(&self, key: &str) -> Option<Cached> {
        if !self.inner.live.load(Ordering::Acquire) {
            return None;
        }
        let entries = self.lock();
        let (cached, at) = entries.get(key)?;
        if at.elapsed() >= self.inner.max_age {
            return None;
        }
        self.inner.hits.fetch_add(1, Ordering::Relaxed);
        Some(cached.clone())
    }

    /// Taken before a database look-up, handed to [`TokenCache::keep`] after it.
    pub fn ticket(&self) -> Ticket {
        Ticket(
            self.inner.generation.load(Ordering::Acquire),
            Instant::now(),
        )
    }

    /// Remembers a successful look-up until `max_age` after its ticket was taken, unless an
    /// invalidation happened since (the answer may predate the change) or the feed is down.
    pub fn keep(&self, key: &str, cached: Cached, ticket: Ticket) {
        if self.inner.max_age.is_zero() || !self.inner.live.load(Ordering::Acquire) {
            return;
        }
        let mut entries = self.lock();
        // Checked under the lock that `invalidate` clears under, so no stale entry slips
        // in after a clear.
        if self.inner.generation.load(Ordering::Acquire) != ticket.0 {
            return;
        }
        if entries.len() >= SWEEP_ABOVE {
            let max_age = self.inner.max_age;
            entries.retain(|_, (_, at)| at.elapsed() < max_age);
        }
        entries.insert(key.to_owned(), (cached, ticket.1));
    }

    /// Forgets everything (some agent changed).
    pub fn invalidate(&self) {
        let mut entries = self.lock();
        self.inner.generation.fetch_add(1, Ordering::AcqRel);
        entries.clear();
    }

    /// How many requests were authenticated from memory. Reported by `/metrics`.
    pub fn hits(&self) -> u64 {
        self.inner.hits.load(Ordering::Relaxed)
    }

    fn set_live(&self, live: bool) {
        self.invalidate();
        self.inner.live.store(live, Ordering::Release);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Cached, Instant)>> {
        self.inner.entries.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// How a change to an agent reaches every instance's [`TokenCache`].
#[derive(Clone)]
pub enum Invalidations {
    /// One instance: only this process's cache.
    Local(TokenCache),
    /// Every instance subscribed to the channel, this one included.
    Redis {
        /// This process's cache, cleared at once.
        cache: TokenCache,
        /// Where the message is published.
        manager: redis::aio::ConnectionManager,
        /// The channel.
        channel: String,
        /// Bound on the publication.
        timeout: Duration,
    },
}

impl Invalidations {
    /// Clears this instance's cache and tells the others. A publication that fails is
    /// logged: the other instances then notice the change when their entries age out.
    pub async fn agent_changed(&self) {
        match self {
            Invalidations::Local(cache) => cache.invalidate(),
            Invalidations::Redis {
                cache,
                manager,
                channel,
                timeout,
            } => {
                cache.invalidate();
                let mut connection = manager.clone();
                let published =
                    tokio::time::timeout(*timeout, publish(&mut connection, channel)).await;
                if !matches!(published, Ok(Ok(_))) {
                    tracing::warn!(
                        "could not announce an agent change to other instances; their cached credentials age out within the token cache's lifetime"
                    );
                }
            }
        }
    }
}

/// Announces an agent change made outside a running service (the command line) to the
/// instances sharing Redis. Without Redis there is nobody to tell: a service's cached
/// credentials age out within their lifetime (1 s at most).
pub async fn announce(grants: &crate::config::GrantStoreSettings) {
    let crate::config::GrantStoreSettings::Redis {
        url,
        prefix,
        timeout,
    } = grants
    else {
        return;
    };
    let published = tokio::time::timeout(*timeout, async {
        let client = redis::Client::open(url.expose().as_str())?;
        let mut connection = client.get_multiplexed_async_connection().await?;
        publish(&mut connection, &channel(prefix)).await
    })
    .await;
    if !matches!(published, Ok(Ok(_))) {
        tracing::warn!(
            "could not announce the change to running instances; their cached credentials age out within a second"
        );
    }
}

/// Publishes "some agent changed" on `channel`.
async fn publish(
    connection: &mut impl redis::aio::ConnectionLike,
    channel: &str,
) -> redis::RedisResult<i64> {
    redis::cmd("PUBLISH")
        .arg(channel)
        .arg("agents")
        .query_async(connection)
        .await
}

/// The channel the instances sharing `prefix` announce agent changes on.
pub fn channel(prefix: &str) -> String {
    format!("{prefix}:agents-changed")
}

/// Keeps `cache` subscribed to `channel` for as long as the process runs: every message
/// clears it, and while the subscription is down (Redis unreachable, connection lost)
/// nothing is served from memory.
pub fn spawn_subscriber(client: redis::Client, channel: String, cache: TokenCache) {
    // Until the first subscription holds, a change could go unannounced.
    cache.set_live(false);
    tokio::spawn(async move {
        let mut delay = Duration::from_millis(100);
        loop {
            match subscribe(&client, &channel).await {
                Ok(mut pubsub) => {
                    delay = Duration::from_millis(100);
                    // Whatever changed while unsubscribed is forgotten with the old entries.
                    cache.set_live(true);
                    let mut messages = pubsub.on_message();
                    while messages.next().await.is_some() {
                        cache.invalidate();
                    }
                    cache.set_live(false);
                    tracing::warn!("lost the agent-change subscription; reconnecting");
                }
                Err(error) => {
                    cache.set_live(false);
                    tracing::warn!(
                        error = %error,
                        "cannot subscribe to agent changes; authenticating from the database until it works"
                    );
                }
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(5));
        }
    });
}

async fn subscribe(
    client: &redis::Client,
    channel: &str,
) -> Result<redis::aio::PubSub, redis::RedisError> {
    let mut pubsub = client.get_async_pubsub().await?;
    pubsub.subscribe(channel).await?;
    Ok(pubsub)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent() -> Cached {
        Cached {
            agent: Agent {
                id: 1,
                handle: "frontline".into(),
                display_name: "Frontline".into(),
                role: "frontline".into(),
                team: "support".into(),
                queues: Vec::new(),
                active: true,
                service: false,
            },
            rate_key: "token:abc".into(),
        }
    }

    #[test]
    fn an_entry_is_served_until_it_ages_out_or_is_invalidated() {
        let cache = TokenCache::new(Duration::from_millis(200));
        cache.keep("k", agent(), cache.ticket());
        assert!(cache.get("k").is_some());
        cache.invalidate();
        assert!(cache.get("k").is_none());
        cache.keep("k", agent(), cache.ticket());
        std::thread::sleep(Duration::from_millis(250));
        assert!(cache.get("k").is_none(), "aged out");
    }

    #[test]
    fn a_look_up_that_started_before_an_invalidation_is_not_kept() {
        let cache = TokenCache::new(Duration::from_secs(60));
        let ticket = cache.ticket();
        cache.invalidate();
        cache.keep("k", agent(), ticket);
        assert!(cache.get("k").is_none());
    }

    #[test]
    fn nothing_is_served_while_the_feed_is_down() {
        let cache = TokenCache::new(Duration::from_secs(60));
        cache.set_live(false);
        cache.keep("k", agent(), cache.ticket());
        assert!(cache.get("k").is_none());
        cache.set_live(true);
        cache.keep("k", agent(), cache.ticket());
        assert!(cache.get("k").is_some());
    }
}
