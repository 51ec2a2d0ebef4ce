//! Where active reveal grants live: Redis when `REDIS_URL` is set (shared by every
//! instance, keys expiring with their grants), or in process memory (one instance only).
//!
//! Both stores answer the same operations, pinned by one conformance suite
//! (`tests/grant_store.rs`). Every Redis call is bounded by a timeout, so a slow or absent
//! Redis makes callers fail closed instead of hanging. Grants hold ids and field names
//! only: no reason and no personal value ever reaches Redis.
//!
//! The service remembers each agent's grants read from Redis for a moment
//! ([`GrantStore::remembering`], [`crate::remembered`]): every change to the grants
//! publishes on the store's channel in the same atomic pipeline as the change, each
//! instance forgets what it remembered when the message arrives (its own at once), and
//! nothing is remembered longer than 1 s. A revoked grant therefore stops revealing on
//! every instance as soon as the message arrives, and within 1 s in any case. A failed
//! call forgets what was remembered too, so that once the service has found Redis gone
//! it reveals nothing from memory.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde::{Deserialize, Serialize};

use crate::remembered::{Forget, Remembered};

/// An active permission for one agent to see one field in plaintext on one ticket.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// Opaque id.
    pub id: String,
    /// The agent holding it.
    pub agent_id: i32,
    /// The ticket it is scoped to.
    pub ticket_id: i32,
    /// The ticket's customer.
    pub customer_id: i32,
    /// The field (stored by its schema name).
    pub field: crate::vocabulary::Field,
    /// When it was granted.
    pub granted_at: DateTime<Utc>,
    /// When it stops revealing (checked by the service's clock too).
    pub expires_at: DateTime<Utc>,
    /// The supervisor who approved it, for `WITH_APPROVAL` reveals.
    pub approved_by: Option<i32>,
}

impl Grant {
    /// Whether the grant still reveals at `now`.
    pub fn is_active(&self, now: DateTime<Utc>) -> bool {
        now < self.expires_at
    }

    fn ttl_secs(&self, now: DateTime<Utc>) -> i64 {
        (self.expires_at - now).num_seconds().max(0) + 1
    }
}

/// The grant store failed or did not answer in time.
#[derive(Debug, thiserror::Error)]
#[error("grant store unavailable: {0}")]
pub struct StoreError(String);

/// Either store. Cheap to clone.
#[derive(Clone)]
pub enum GrantStore {
    /// Process memory: the embedded default, for a single instance.
    Memory(MemoryStore),
    /// Redis, shared by every instance.
    Redis(RedisStore),
}

impl GrantStore {
    /// The in-process store.
    pub fn memory() -> GrantStore {
        GrantStore::Memory(MemoryStore::default())
    }

    /// A Redis store at `url` (not connected until first used, so the service starts and
    /// recovers by itself while Redis is down). Keys start with `prefix`.
    pub fn redis(url: &str, prefix: &str, timeout: Duration) -> Result<GrantStore, StoreError> {
        let client = redis::Client::open(url).map_err(|e| StoreError(e.to_string()))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1)
            .set_max_delay(timeout);
        let manager = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| StoreError(e.to_string()))?;
        Ok(GrantStore::Redis(RedisStore {
            manager,
            prefix: prefix.to_owned(),
            channel: format!("{prefix}:grants-changed"),
            timeout,
            calls: Arc::default(),
            remembered: None,
        }))
    }

    /// The same store, remembering each agent's grants read from Redis for up to
    /// `max_age` (at most 1 s; zero: never). The in-process store has nothing to remember.
    /// The service subscribes the cache to the store's channel ([`GrantStore::feed`]).
    pub fn remembering(self, max_age: Duration) -> GrantStore {
        match self {
            GrantStore::Redis(r) if !max_age.is_zero() => GrantStore::Redis(RedisStore {
                remembered: Some(Remembered::new(max_age.min(Duration::from_secs(1)))),
                ..r
            }),
            other => other,
        }
    }

    /// The channel that announces changes to the grants and the cache it clears, when
    /// this store remembers grants.
    pub fn feed(&self) -> Option<(String, Arc<dyn Forget>)> {
        match self {
            GrantStore::Redis(RedisStore {
                channel,
                remembered: Some(remembered),
                ..
            }) => Some((channel.clone(), Arc::new(remembered.clone()))),
            _ => None,
        }
    }

    /// The Redis connection, when grants live in Redis.
    pub fn redis_connection(&self) -> Option<redis::aio::ConnectionManager> {
        match self {
            GrantStore::Memory(_) => None,
            GrantStore::Redis(r) => Some(r.manager.clone()),
        }
    }

    /// A rate limiter on the same backend: shared through Redis, or in process.
    pub fn rate_limiter(&self) -> crate::ratelimit::RateLimiter {
        match self {
            GrantStore::Memory(_) => crate::ratelimit::RateLimiter::memory(),
            GrantStore::Redis(r) => {
                crate::ratelimit::RateLimiter::redis(r.manager.clone(), &r.prefix, r.timeout)
            }
        }
    }

    /// How many calls reached the store since it was made: Redis round trips (one pipeline
    /// each), or operations on the in-process map. Reported by `/metrics`.
    pub fn calls(&self) -> u64 {
        match self {
            GrantStore::Memory(m) => m.calls.load(Ordering::Relaxed),
            GrantStore::Redis(r) => r.calls.load(Ordering::Relaxed),
        }
    }

    /// How many reads of an agent's grants were answered from memory (see
    /// [`GrantStore::remembering`]). Reported by `/metrics`.
    pub fn cache_hits(&self) -> u64 {
        match self {
            GrantStore::Redis(RedisStore {
                remembered: Some(remembered),
                ..
            }) => remembered.hits(),
            _ => 0,
        }
    }

    /// A description for logs and `/readyz`.
    pub fn describe(&self) -> &'static str {
        match self {
            GrantStore::Memory(_) => "in-process (single instance only)",
            GrantStore::Redis(_) => "redis",
        }
    }

    /// Stores grants.
    pub async fn put(&self, grants: &[Grant]) -> Result<(), StoreError> {
        match self {
            GrantStore::Memory(m) => {
                m.put(grants);
                Ok(())
            }
            GrantStore::Redis(r) => r.put(grants).await,
        }
    }

    /// Every stored grant of an agent, expired ones included (callers check the clock).
    /// At most one round trip (none when remembered: see [`GrantStore::remembering`]).
    pub async fn of_agent(&self, agent_id: i32) -> Result<Vec<Grant>, StoreError> {
        match self {
            GrantStore::Memory(m) => Ok(m.of_agent(agent_id)),
            GrantStore::Redis(r) => r.of_agent(agent_id).await,
        }
    }

    /// The grant with this id, if stored.
    pub async fn find(&self, id: &str) -> Result<Option<Grant>, StoreError> {
        match self {
            GrantStore::Memory(m) => Ok(m.find(id)),
            GrantStore::Redis(r) => r.find(id).await,
        }
    }

    /// Removes the given grants.
    pub async fn remove(&self, grants: &[Grant]) -> Result<(), StoreError> {
        match self {
            GrantStore::Memory(m) => {
                m.remove(grants);
                Ok(())
            }
            GrantStore::Redis(r) => r.remove(grants).await,
        }
    }

    /// Removes and returns every grant on a ticket.
    pub async fn remove_for_ticket(&self, ticket_id: i32) -> Result<Vec<Grant>, StoreError> {
        match self {
            GrantStore::Memory(m) => Ok(m.take(|g| g.ticket_id == ticket_id)),
            GrantStore::Redis(r) => r.remove_for_ticket(ticket_id).await,
        }
    }

    /// Removes and returns every grant of an agent.
    pub async fn remove_for_agent(&self, agent_id: i32) -> Result<Vec<Grant>, StoreError> {
        match self {
            GrantStore::Memory(m) => Ok(m.take(|g| g.agent_id == agent_id)),
            GrantStore::Redis(r) => {
                let grants = r.read_agent(agent_id).await?;
                r.remove(&grants).await?;
                Ok(grants)
            }
        }
    }

    /// Whether the store answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        match self {
            GrantStore::Memory(_) => Ok(()),
            GrantStore::Redis(r) => r.ping().await,
        }
    }
}

/// Grants in process memory.
#[derive(Clone, Default)]
pub struct MemoryStore {
    grants: Arc<Mutex<HashMap<String, Grant>>>,
    calls: Arc<AtomicU64>,
}

impl MemoryStore {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Grant>> {
        // Every operation takes the lock exactly once.
        self.calls.fetch_add(1, Ordering::Relaxed);
        // A poisoned lock only means a panic elsewhere mid-insert of a whole grant.
        self.grants.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn put(&self, grants: &[Grant]) {
        let now = Utc::now();
        let mut map = self.map();
        // Expired grants are dropped here too, so memory stays bounded by live grants.
        map.retain(|_, g| g.expires_at + chrono::Duration::hours(1) > now);
        for grant in grants {
            map.insert(grant.id.clone(), grant.clone());
        }
    }

    fn of_agent(&self, agent_id: i32) -> Vec<Grant> {
        self.map()
            .values()
            .filter(|g| g.agent_id == agent_id)
            .cloned()
            .collect()
    }

    fn find(&self, id: &str) -> Option<Grant> {
        self.map().get(id).cloned()
    }

    fn remove(&self, grants: &[Grant]) {
        let mut map = self.map();
        for grant in grants {
            map.remove(&grant.id);
        }
    }

    fn take(&self, matches: impl Fn(&Grant) -> bool) -> Vec<Grant> {
        let mut map = self.map();
        let ids: Vec<String> = map
            .values()
            .filter(|g| matches(g))
            .map(|g| g.id.clone())
            .collect();
        ids.iter().filter_map(|id| map.remove(id)).collect()
    }
}

/// How long the per-agent and per-ticket indexes outlive their last grant.
const INDEX_GRACE_SECS: i64 = 300;

/// Grants in Redis. Layout under the prefix `p`:
/// - `p:grant:{id}`: the grant as JSON, expiring with it;
/// - `p:agent:{agent}`: hash of grant id → JSON, so one `HGETALL` reads an agent's grants;
/// - `p:ticket:{ticket}`: set of grant ids on a ticket, for revocation when it closes.
///
/// Index keys expire a grace period after their longest-lived grant.
///
/// Every change also publishes on `p:grants-changed` (in the change's own atomic
/// pipeline), so that instances remembering grants forget them.
#[derive(Clone)]
pub struct RedisStore {
    manager: ConnectionManager,
    prefix: String,
    channel: String,
    timeout: Duration,
    calls: Arc<AtomicU64>,
    /// Each agent's grants as last read, when the service remembers them.
    remembered: Option<Remembered<i32, Vec<Grant>>>,
}

impl RedisStore {
    fn key(&self, kind: &str, id: impl std::fmt::Display) -> String {
        format!("{}:{kind}:{id}", self.prefix)
    }

    async fn run<T: redis::FromRedisValue>(&self, pipe: &redis::Pipeline) -> Result<T, StoreError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let mut connection = self.manager.clone();
        let failed =
            match tokio::time::timeout(self.timeout, pipe.query_async(&mut connection)).await {
                Ok(Ok(value)) => return Ok(value),
                Ok(Err(error)) => StoreError(error.to_string()),
                Err(_) => StoreError(format!("no answer within {:?}", self.timeout)),
            };
        // Redis may be gone while the invalidation subscription has not noticed yet (or,
        // with packets dropped rather than connections closed, will not for a while):
        // nothing read before it reveals from memory any more.
        if let Some(remembered) = &self.remembered {
            remembered.invalidate();
        }
        Err(failed)
    }

    async fn put(&self, grants: &[Grant]) -> Result<(), StoreError> {
        let now = Utc::now();
        let mut pipe = redis::pipe();
        pipe.atomic();
        for grant in grants {
            let json = serde_json::to_string(grant).map_err(|e| StoreError(e.to_string()))?;
            let ttl = grant.ttl_secs(now);
            let agent = self.key("agent", grant.agent_id);
            let ticket = self.key("ticket", grant.ticket_id);
            pipe.cmd("SET")
                .arg(self.key("grant", &grant.id))
                .arg(&json)
                .arg("EX")
                .arg(ttl)
                .ignore();
            pipe.hset(&agent, &grant.id, &json).ignore();
            pipe.sadd(&ticket, &grant.id).ignore();
            // The indexes outlive their grants a little, so the service sees (and audits)
            // the expiry; NX sets a first expiry, GT only ever extends it.
            let index_ttl = ttl + INDEX_GRACE_SECS;
            for key in [&agent, &ticket] {
                pipe.cmd("EXPIRE")
                    .arg(key)
                    .arg(index_ttl)
                    .arg("NX")
                    .ignore();
                pipe.cmd("EXPIRE")
                    .arg(key)
                    .arg(index_ttl)
                    .arg("GT")
                    .ignore();
            }
        }
        self.change(pipe).await
    }

    /// Runs a change (an atomic pipeline), announcing it to every instance in the same
    /// transaction, and forgets what this instance remembers whether or not it went
    /// through (a timed-out change may still have been applied).
    async fn change(&self, mut pipe: redis::Pipeline) -> Result<(), StoreError> {
        pipe.publish(&self.channel, "grants").ignore();
        let changed = self.run::<()>(&pipe).await;
        if let Some(remembered) = &self.remembered {
            remembered.invalidate();
        }
        changed
    }

    /// An agent's grants: as remembered when they were read less than the cache's
    /// lifetime ago and nothing changed since, else read from Redis.
    async fn of_agent(&self, agent_id: i32) -> Result<Vec<Grant>, StoreError> {
        let Some(remembered) = &self.remembered else {
            return self.read_agent(agent_id).await;
        };
        if let Some(grants) = remembered.get(&agent_id) {
            return Ok(grants);
        }
        let ticket = remembered.ticket();
        let grants = self.read_agent(agent_id).await?;
        remembered.keep(agent_id, grants.clone(), ticket);
        Ok(grants)
    }

    /// An agent's grants, read from Redis.
    async fn read_agent(&self, agent_id: i32) -> Result<Vec<Grant>, StoreError> {
        let mut pipe = redis::pipe();
        pipe.hgetall(self.key("agent", agent_id));
        let (map,): (HashMap<String, String>,) = self.run(&pipe).await?;
        Ok(map.values().filter_map(|json| parse_stored(json)).collect())
    }

    async fn find(&self, id: &str) -> Result<Option<Grant>, StoreError> {
        let mut pipe = redis::pipe();
        pipe.get(self.key("grant", id));
        let (json,): (Option<String>,) = self.run(&pipe).await?;
        Ok(json.and_then(|j| parse_stored(&j)))
    }

    async fn remove(&self, grants: &[Grant]) -> Result<(), StoreError> {
        if grants.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        pipe.atomic();
        for grant in grants {
            pipe.del(self.key("grant", &grant.id)).ignore();
            pipe.hdel(self.key("agent", grant.agent_id), &grant.id)
                .ignore();
            pipe.srem(self.key("ticket", grant.ticket_id), &grant.id)
                .ignore();
        }
        self.change(pipe).await
    }

    async fn remove_for_ticket(&self, ticket_id: i32) -> Result<Vec<Grant>, StoreError> {
        let mut pipe = redis::pipe();
        pipe.smembers(self.key("ticket", ticket_id));
        let (ids,): (Vec<String>,) = self.run(&pipe).await?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for id in &ids {
            pipe.get(self.key("grant", id));
        }
        let found: Vec<Option<String>> = self.run(&pipe).await?;
        let grants: Vec<Grant> = found
            .into_iter()
            .flatten()
            .filter_map(|j| parse_stored(&j))
            .collect();
        self.remove(&grants).await?;
        let mut pipe = redis::pipe();
        pipe.del(self.key("ticket", ticket_id)).ignore();
        self.run::<()>(&pipe).await?;
        Ok(grants)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let mut pipe = redis::pipe();
        pipe.cmd("PING");
        self.run::<(String,)>(&pipe).await.map(|_| ())
    }
}

/// A grant as stored in Redis. One that does not parse (say, naming a field this version
/// does not know) reveals nothing: it is skipped, and the log says so.
fn parse_stored(json: &str) -> Option<Grant> {
    match serde_json::from_str(json) {
        Ok(grant) => Some(grant),
        Err(error) => {
            tracing::warn!(%error, "a stored grant does not parse; it reveals nothing");
            None
        }
    }
}

/// The grant store the settings name. Redis connects lazily: the service starts (and
/// recovers) while it is down, failing closed meanwhile.
pub fn grant_store(settings: &crate::config::Settings) -> anyhow::Result<GrantStore> {
    Ok(match &settings.grants {
        crate::config::GrantStoreSettings::Memory => GrantStore::memory(),
        crate::config::GrantStoreSettings::Redis {
            url,
            prefix,
            timeout,
        } => GrantStore::redis(url.expose(), prefix, *timeout)
            .map_err(|e| anyhow::anyhow!("REDIS_URL: {e}"))?,
    })
}
