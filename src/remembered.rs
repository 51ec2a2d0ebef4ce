//! Answers remembered for a moment, forgotten as soon as any instance announces a change.
//!
//! The service keeps two such caches: authenticated credentials (`agents::cache`) and each
//! agent's reveal grants (`reveal::store`), so that a request does not ask the database or
//! Redis what it asked a moment ago. Two things bound how long a change can go unnoticed:
//!
//! - **Invalidation**: whoever makes a change forgets this instance's entries at once and,
//!   with Redis, publishes on the cache's channel; every instance subscribed to it
//!   ([`spawn_subscriber`]) forgets its entries when the message arrives. While the
//!   subscription is down, nothing is served from memory. The subscriber learns that its
//!   connection is gone only when it reads the closed socket, so a request in between
//!   can still be served from memory: the age bound holds then too.
//! - **Age**: an entry is used for at most `max_age` (1 s at most) after its look-up
//!   started, whatever happened to a message. This covers what no message announces: a
//!   script editing the database, a command line run without `REDIS_URL`, or a message
//!   lost with a connection.
//!
//! A look-up that started before an invalidation is not kept ([`Remembered::ticket`]), so
//! an answer read just before a change cannot outlive it.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;

/// More entries than this are swept of stale ones before another is added.
const SWEEP_ABOVE: usize = 10_000;

/// Answers by key, each for at most `max_age`. Cheap to clone.
pub struct Remembered<K, V> {
    inner: Arc<Inner<K, V>>,
}

impl<K, V> Clone for Remembered<K, V> {
    fn clone(&self) -> Self {
        Remembered {
            inner: self.inner.clone(),
        }
    }
}

struct Inner<K, V> {
    entries: Mutex<HashMap<K, (V, Instant)>>,
    /// Bumped by every invalidation: a look-up that started before one is not kept.
    generation: AtomicU64,
    /// False while the invalidation feed is down: nothing is served from memory then.
    live: AtomicBool,
    max_age: Duration,
    hits: AtomicU64,
}

/// A look-up in progress: what [`Remembered::keep`] needs to refuse a stale answer. Its
/// answer's age counts from when the look-up started, not from when it ended.
#[derive(Clone, Copy, Debug)]
pub struct Ticket(u64, Instant);

impl<K: Hash + Eq, V: Clone> Remembered<K, V> {
    /// A cache whose entries live at most `max_age`; `Duration::ZERO` turns it off.
    pub fn new(max_age: Duration) -> Self {
        Remembered {
            inner: Arc::new(Inner {
                entries: Mutex::default(),
                generation: AtomicU64::new(0),
                live: AtomicBool::new(true),
                max_age,
                hits: AtomicU64::new(0),
            }),
        }
    }

    /// The answer for `key`, if it was looked up less than `max_age` ago and nothing was
    /// invalidated since.
    pub fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if !self.inner.live.load(Ordering::Acquire) {
            return None;
        }
        let entries = self.lock();
        let (value, at) = entries.get(key)?;
        if at.elapsed() >= self.inner.max_age {
            return None;
        }
        self.inner.hits.fetch_add(1, Ordering::Relaxed);
        Some(value.clone())
    }

    /// Taken before a look-up, handed to [`Remembered::keep`] after it.
    pub fn ticket(&self) -> Ticket {
        Ticket(
            self.inner.generation.load(Ordering::Acquire),
            Instant::now(),
        )
    }

    /// Remembers a look-up's answer until `max_age` after its ticket was taken, unless an
    /// invalidation happened since (the answer may predate the change) or the feed is down.
    pub fn keep(&self, key: K, value: V, ticket: Ticket) {
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
        entries.insert(key, (value, ticket.1));
    }

    /// How many answers were served from memory. Reported by `/metrics`.
    pub fn hits(&self) -> u64 {
        self.inner.hits.load(Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, (V, Instant)>> {
        self.inner.entries.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// What the invalidation feed does to a cache, whatever it holds.
pub trait Forget: Send + Sync + 'static {
    /// Forgets every entry (something changed).
    fn invalidate(&self);
    /// Whether entries may be served: false while the feed is down. Switching forgets
    /// every entry.
    fn set_live(&self, live: bool);
}

impl<K, V> Forget for Remembered<K, V>
where
    K: Hash + Eq + Send + 'static,
    V: Clone + Send + 'static,
{
    fn invalidate(&self) {
        let mut entries = self.lock();
        self.inner.generation.fetch_add(1, Ordering::AcqRel);
        entries.clear();
    }

    fn set_live(&self, live: bool) {
        self.invalidate();
        self.inner.live.store(live, Ordering::Release);
    }
}

/// Keeps every cache in `caches` subscribed to its channel for as long as the process
/// runs, on one Redis connection: a message on a channel clears that channel's cache, and
/// while the subscription is down (Redis unreachable, connection lost) no cache serves
/// from memory.
pub fn spawn_subscriber(client: redis::Client, caches: Vec<(String, Arc<dyn Forget>)>) {
    let set_live = |caches: &[(String, Arc<dyn Forget>)], live: bool| {
        caches.iter().for_each(|(_, cache)| cache.set_live(live))
    };
    // Until the first subscription holds, a change could go unannounced.
    set_live(&caches, false);
    tokio::spawn(async move {
        let mut delay = Duration::from_millis(100);
        loop {
            match subscribe(&client, caches.iter().map(|(channel, _)| channel)).await {
                Ok(mut pubsub) => {
                    delay = Duration::from_millis(100);
                    // Whatever changed while unsubscribed is forgotten with the old entries.
                    set_live(&caches, true);
                    let mut messages = pubsub.on_message();
                    while let Some(message) = messages.next().await {
                        let channel = message.get_channel_name();
                        for (_, cache) in caches.iter().filter(|(c, _)| c == channel) {
                            cache.invalidate();
                        }
                    }
                    set_live(&caches, false);
                    tracing::warn!("lost the cache invalidation subscription; reconnecting");
                }
                Err(error) => {
                    set_live(&caches, false);
                    tracing::warn!(
                        error = %error,
                        "cannot subscribe to cache invalidations; asking the database and Redis every time until it works"
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
    channels: impl Iterator<Item = &String>,
) -> Result<redis::aio::PubSub, redis::RedisError> {
    let mut pubsub = client.get_async_pubsub().await?;
    for channel in channels {
        pubsub.subscribe(channel).await?;
    }
    Ok(pubsub)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_is_served_until_it_ages_out_or_is_invalidated() {
        let cache = Remembered::<String, u8>::new(Duration::from_millis(200));
        cache.keep("k".into(), 1, cache.ticket());
        assert_eq!(cache.get("k"), Some(1));
        cache.invalidate();
        assert_eq!(cache.get("k"), None);
        cache.keep("k".into(), 1, cache.ticket());
        std::thread::sleep(Duration::from_millis(250));
        assert_eq!(cache.get("k"), None, "aged out");
    }

    #[test]
    fn a_look_up_that_started_before_an_invalidation_is_not_kept() {
        let cache = Remembered::<String, u8>::new(Duration::from_secs(60));
        let ticket = cache.ticket();
        cache.invalidate();
        cache.keep("k".into(), 1, ticket);
        assert_eq!(cache.get("k"), None);
    }

    #[test]
    fn nothing_is_served_while_the_feed_is_down() {
        let cache = Remembered::<String, u8>::new(Duration::from_secs(60));
        cache.set_live(false);
        cache.keep("k".into(), 1, cache.ticket());
        assert_eq!(cache.get("k"), None);
        cache.set_live(true);
        cache.keep("k".into(), 1, cache.ticket());
        assert_eq!(cache.get("k"), Some(1));
    }

    #[test]
    fn a_zero_lifetime_keeps_nothing() {
        let cache = Remembered::<i32, u8>::new(Duration::ZERO);
        cache.keep(1, 1, cache.ticket());
        assert_eq!(cache.get(&1), None);
    }
}
