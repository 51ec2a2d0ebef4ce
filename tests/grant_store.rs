//! One conformance suite for both grant stores: the in-process store and a real Redis
//! (127.0.0.1:6379, or NEEDTOKNOW_TEST_REDIS), each test with its own key prefix; Redis
//! twice, as the command line uses it and as the service does (remembering each agent's
//! grants for a second, forgotten on every change).

mod common;

use std::time::Duration;

use chrono::Utc;
use needtoknow::reveal::store::{Grant, GrantStore};

fn redis_url() -> String {
    std::env::var("NEEDTOKNOW_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

fn prefix() -> String {
    format!("ntk-test-{}", uuid::Uuid::new_v4().simple())
}

fn redis_store(prefix: &str) -> GrantStore {
    GrantStore::redis(&redis_url(), prefix, Duration::from_secs(2)).expect("redis url")
}

fn stores() -> Vec<(&'static str, GrantStore)> {
    vec![
        ("memory", GrantStore::memory()),
        ("redis", redis_store(&prefix())),
        (
            "redis, remembering",
            redis_store(&prefix()).remembering(Duration::from_secs(1)),
        ),
    ]
}

fn grant(agent_id: i32, ticket_id: i32, field: &str, seconds: i64) -> Grant {
    let now = Utc::now();
    Grant {
        id: uuid::Uuid::new_v4().simple().to_string(),
        agent_id,
        ticket_id,
        customer_id: 1,
        field: needtoknow::vocabulary::Field::named(field).expect("a protected field"),
        granted_at: now,
        expires_at: now + chrono::Duration::seconds(seconds),
        approved_by: None,
    }
}

fn ids(grants: &[Grant]) -> Vec<String> {
    let mut ids: Vec<String> = grants.iter().map(|g| g.id.clone()).collect();
    ids.sort();
    ids
}

/// Stored grants come back by agent and by id, and nowhere else.
#[tokio::test]
async fn grants_are_found_by_agent_and_id_only() {
    for (name, store) in stores() {
        store.ping().await.unwrap_or_else(|e| panic!("{name}: {e}"));
        let a = grant(1, 10, "email", 60);
        let b = grant(1, 11, "phone", 60);
        let c = grant(2, 10, "email", 60);
        store.put(&[a.clone(), b.clone(), c.clone()]).await.unwrap();
        assert_eq!(
            ids(&store.of_agent(1).await.unwrap()),
            ids(&[a.clone(), b.clone()]),
            "{name}"
        );
        assert_eq!(store.of_agent(3).await.unwrap(), vec![], "{name}");
        assert_eq!(store.find(&c.id).await.unwrap(), Some(c.clone()), "{name}");
        assert_eq!(store.find("nope").await.unwrap(), None, "{name}");
    }
}

/// Removal by grant, by ticket and by agent takes exactly those grants.
#[tokio::test]
async fn grants_are_removed_by_grant_ticket_and_agent() {
    for (name, store) in stores() {
        let a = grant(1, 10, "email", 60);
        let b = grant(1, 11, "phone", 60);
        let c = grant(2, 10, "email", 60);
        let d = grant(2, 12, "email", 60);
        store
            .put(&[a.clone(), b.clone(), c.clone(), d.clone()])
            .await
            .unwrap();

        store.remove(std::slice::from_ref(&b)).await.unwrap();
        assert_eq!(store.find(&b.id).await.unwrap(), None, "{name}");
        assert_eq!(
            ids(&store.of_agent(1).await.unwrap()),
            ids(std::slice::from_ref(&a)),
            "{name}"
        );

        let on_ticket = store.remove_for_ticket(10).await.unwrap();
        assert_eq!(ids(&on_ticket), ids(&[a.clone(), c.clone()]), "{name}");
        assert_eq!(store.of_agent(1).await.unwrap(), vec![], "{name}");
        assert_eq!(
            ids(&store.of_agent(2).await.unwrap()),
            ids(std::slice::from_ref(&d)),
            "{name}"
        );

        let of_agent = store.remove_for_agent(2).await.unwrap();
        assert_eq!(ids(&of_agent), ids(std::slice::from_ref(&d)), "{name}");
        assert_eq!(store.find(&d.id).await.unwrap(), None, "{name}");
        assert_eq!(store.remove_for_ticket(99).await.unwrap(), vec![], "{name}");
    }
}

/// Expired grants may still be listed for a while (so their expiry is seen and audited), but
/// never count as active; in Redis the grant's own key expires by itself.
#[tokio::test]
async fn expiry_is_judged_by_the_clock_and_keys_expire() {
    for (name, store) in stores() {
        let short = grant(5, 20, "email", 1);
        store.put(std::slice::from_ref(&short)).await.unwrap();
        assert!(short.is_active(Utc::now()), "{name}");
        tokio::time::sleep(Duration::from_millis(1100)).await;
        assert!(!short.is_active(Utc::now()), "{name}");
        if name.starts_with("redis") {
            tokio::time::sleep(Duration::from_millis(1500)).await;
            assert_eq!(
                store.find(&short.id).await.unwrap(),
                None,
                "redis keys expire with the grant"
            );
        }
    }
}

/// A Redis that does not answer fails fast instead of hanging.
#[tokio::test]
async fn an_unreachable_redis_fails_within_the_timeout() {
    let store = GrantStore::redis("redis://127.0.0.1:1", "x", Duration::from_millis(200)).unwrap();
    let started = std::time::Instant::now();
    assert!(store.of_agent(1).await.is_err());
    assert!(store.put(&[grant(1, 1, "email", 60)]).await.is_err());
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

/// A store remembering grants forgets them when one of its calls fails: once a call has
/// found Redis gone, nothing read before reveals, even before the invalidation
/// subscription notices (here there is none, so only the failure can tell it).
#[tokio::test]
async fn a_failed_call_forgets_the_remembered_grants() {
    let redis = common::PrivateRedis::start();
    let store = GrantStore::redis(&redis.url(), &prefix(), Duration::from_millis(300))
        .expect("redis url")
        .remembering(Duration::from_secs(1));
    let granted = grant(7, 30, "email", 60);
    store.put(std::slice::from_ref(&granted)).await.unwrap();
    assert_eq!(ids(&store.of_agent(7).await.unwrap()), ids(&[granted]));
    let calls = store.calls();
    store.of_agent(7).await.unwrap();
    assert_eq!(store.calls(), calls, "remembered");

    redis.stop();
    assert!(store.find("any").await.is_err(), "Redis is gone");
    assert!(
        store.of_agent(7).await.is_err(),
        "not answered from memory after a failed call"
    );
}

/// Rate limits on Redis: two instances (two limiters on one prefix) share one GCRA budget,
/// each spending it locally in leases (here 2 tokens: two per second), so a burst costs
/// half as many round trips and the second instance is refused once the first has spent
/// the burst.
#[tokio::test]
async fn rate_limits_on_redis_share_one_budget_spent_in_leases() {
    use needtoknow::ratelimit::{Rate, Verdict};
    let store = redis_store(&prefix());
    let (a, b) = (store.rate_limiter(), store.rate_limiter());
    // A burst of 120, refilled at 2 per second (one token every 500 ms).
    let rate = Rate {
        max: 120,
        window: Duration::from_secs(60),
    };
    for _ in 0..120 {
        assert_eq!(a.hit("token:x", rate).await, Verdict::Allowed);
    }
    assert_eq!(a.calls(), 60, "one round trip per lease of 2");
    assert!(matches!(
        b.hit("token:x", rate).await,
        Verdict::Limited {
            retry_after_secs: 1
        }
    ));
    assert_eq!(b.hit("token:y", rate).await, Verdict::Allowed, "per key");
}

/// Two instances remembering grants on one Redis: a grant made or revoked through one is
/// seen by the other, which had remembered the agent's grants before the change (the test
/// prints how long that took: the announcement's delivery, where the age bound alone
/// would take up to a second); and while a store reads from memory it makes no call.
#[tokio::test]
async fn a_change_through_one_instance_reaches_what_the_other_remembers() {
    let prefix = prefix();
    let open = || redis_store(&prefix).remembering(Duration::from_secs(1));
    let (a, b) = (open(), open());
    for store in [&a, &b] {
        let client = redis::Client::open(redis_url()).expect("redis url");
        needtoknow::remembered::spawn_subscriber(client, store.feed().into_iter().collect());
    }
    // Until its subscription holds, a store remembers nothing.
    let subscribed = std::time::Instant::now();
    while a.cache_hits() == 0 || b.cache_hits() == 0 {
        assert!(
            subscribed.elapsed() < Duration::from_secs(10),
            "never subscribed"
        );
        for store in [&a, &b] {
            store.of_agent(7).await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let calls = a.calls();
    assert_eq!(a.of_agent(7).await.unwrap(), vec![]);
    assert_eq!(a.calls(), calls, "answered from memory");

    let granted = grant(7, 30, "email", 60);
    b.put(std::slice::from_ref(&granted)).await.unwrap();
    let seen = until(&a, |grants| grants.len() == 1).await;
    b.remove(std::slice::from_ref(&granted)).await.unwrap();
    let revoked = until(&a, |grants| grants.is_empty()).await;
    println!(
        "grant changes seen by the other instance: made after {seen:?}, revoked after {revoked:?}"
    );
}

/// How long until `store` reads grants of agent 7 that `done` accepts, polling every 2 ms.
async fn until(store: &GrantStore, done: impl Fn(&[Grant]) -> bool) -> Duration {
    let started = std::time::Instant::now();
    loop {
        if done(&store.of_agent(7).await.unwrap()) {
            return started.elapsed();
        }
        assert!(started.elapsed() < Duration::from_secs(10), "never seen");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}
