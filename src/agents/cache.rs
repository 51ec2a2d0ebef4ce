//! Authenticated credentials, remembered for a moment so that a request does not look its
//! token up in the database every time ([`crate::remembered`] has the mechanism and its
//! bounds).
//!
//! A change to an agent (disabled, tokens revoked, role, team or queues changed) is
//! noticed at once by the instance that made it, by the others when Redis delivers the
//! announcement ([`Invalidations`], [`announce`]), and in any case within the cache's
//! lifetime (1 s by default, 1 s at most), which covers what no message announces: a
//! script editing the database, a command line run without `REDIS_URL` against a service
//! that has it, or a message lost with a connection.
//!
//! Only successful look-ups are kept: an unknown or revoked token is looked up every time.
//! The cache is keyed by the credential's hash (or the SSO handle), never the token.

use std::time::Duration;

use super::Agent;
use crate::remembered::{Forget, Remembered};

/// What a cached credential stands for.
#[derive(Clone, Debug)]
pub struct Cached {
    /// The agent, as read from the database.
    pub agent: Agent,
    /// The key its requests are rate-limited under.
    pub rate_key: String,
}

/// The credentials of this instance, by the credential's hash (or SSO handle). Cheap to
/// clone.
pub type TokenCache = Remembered<String, Cached>;

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
