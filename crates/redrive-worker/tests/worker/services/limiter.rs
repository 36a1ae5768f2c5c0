//! The shared limiters' contract, on each store: two clients (as two processes would) share one
//! quota and one pause, and a store outage answers with the caller's fallback.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use redrive_worker::{
    Admission, LimiterStoreError, Quota, SharedLimiterConfig, SharedTenantLimiter, StoreFallback,
    TenantLimiter, limiter_from_url,
};

use super::{fresh_namespace, postgres_url, redis_url};

const SECOND: Duration = Duration::from_secs(1);
const MINUTE: Duration = Duration::from_secs(60);

async fn two_clients(url: &str, config: SharedLimiterConfig) -> [SharedTenantLimiter; 2] {
    let config = config.with_namespace(fresh_namespace());
    [
        limiter_from_url(url, config.clone())
            .await
            .expect("connect"),
        limiter_from_url(url, config).await.expect("connect"),
    ]
}

fn wait_of(admission: Admission) -> Duration {
    match admission {
        Admission::Reserved(w) | Admission::Defer(w) => w,
    }
}

/// One permit a minute: the second client finds the first one's reservation.
async fn quota_is_shared(url: &str) {
    let [a, b] = two_clients(url, SharedLimiterConfig::new(Quota::per_minute(1))).await;
    assert_eq!(
        a.reserve("mall", SECOND).await,
        Admission::Reserved(Duration::ZERO)
    );
    let deferred = b.reserve("mall", SECOND).await;
    assert!(
        matches!(deferred, Admission::Defer(w) if w > 58 * SECOND && w <= MINUTE),
        "{deferred:?}"
    );
    // A deferral reserved nothing; a long enough max wait reserves the next slot, and the one
    // after that is two intervals away.
    let reserved = b.reserve("mall", 2 * MINUTE).await;
    assert!(
        matches!(reserved, Admission::Reserved(w) if w > 58 * SECOND && w <= MINUTE),
        "{reserved:?}"
    );
    let third = wait_of(a.reserve("mall", 10 * MINUTE).await);
    assert!(third > 118 * SECOND && third <= 2 * MINUTE, "{third:?}");
    // Another tenant has its own quota.
    assert_eq!(
        b.reserve("other", SECOND).await,
        Admission::Reserved(Duration::ZERO)
    );
}

/// A burst of 3: three back to back across both clients, then spacing.
async fn burst_is_shared(url: &str) {
    let [a, b] = two_clients(
        url,
        SharedLimiterConfig::new(Quota::per_minute(1).with_burst(3)),
    )
    .await;
    for limiter in [&a, &b, &a] {
        assert_eq!(
            limiter.reserve("mall", SECOND).await,
            Admission::Reserved(Duration::ZERO)
        );
    }
    assert!(matches!(b.reserve("mall", SECOND).await, Admission::Defer(w) if w > 58 * SECOND));
}

/// A 429 seen by one client pauses the tenant for the other; a shorter pause does not shorten
/// it; other tenants are untouched; per-tenant overrides apply.
async fn pause_is_shared(url: &str) {
    let config = SharedLimiterConfig::unlimited().with_tenant_quota("tiny", Quota::per_minute(1));
    let [a, b] = two_clients(url, config).await;
    a.pause("mall", 30 * SECOND).await;
    let deferred = b.reserve("mall", SECOND).await;
    assert!(
        matches!(deferred, Admission::Defer(w) if w > 28 * SECOND && w <= 30 * SECOND),
        "{deferred:?}"
    );
    b.pause("mall", Duration::from_millis(10)).await;
    assert!(matches!(a.reserve("mall", SECOND).await, Admission::Defer(w) if w > 28 * SECOND));
    // Unlimited tenants are never spaced.
    for _ in 0..5 {
        assert_eq!(
            a.reserve("free", SECOND).await,
            Admission::Reserved(Duration::ZERO)
        );
    }
    assert_eq!(
        a.reserve("tiny", SECOND).await,
        Admission::Reserved(Duration::ZERO)
    );
    assert!(matches!(b.reserve("tiny", SECOND).await, Admission::Defer(w) if w > 58 * SECOND));
}

#[tokio::test]
async fn redis_limiter_shares_quota_across_clients() {
    quota_is_shared(&redis_url()).await;
}

#[tokio::test]
async fn postgres_limiter_shares_quota_across_clients() {
    quota_is_shared(&postgres_url()).await;
}

#[tokio::test]
async fn redis_limiter_shares_burst_across_clients() {
    burst_is_shared(&redis_url()).await;
}

#[tokio::test]
async fn postgres_limiter_shares_burst_across_clients() {
    burst_is_shared(&postgres_url()).await;
}

#[tokio::test]
async fn redis_limiter_shares_pause_across_clients() {
    pause_is_shared(&redis_url()).await;
}

#[tokio::test]
async fn postgres_limiter_shares_pause_across_clients() {
    pause_is_shared(&postgres_url()).await;
}

#[tokio::test]
async fn limiter_from_url_rejects_unknown_schemes_and_unreachable_stores() {
    let config = SharedLimiterConfig::new(Quota::per_second(10));
    let err = limiter_from_url("memcached://127.0.0.1:1", config.clone())
        .await
        .expect_err("unknown scheme");
    assert!(
        matches!(err, LimiterStoreError::UnsupportedUrl { .. }),
        "{err}"
    );
    let err = limiter_from_url("postgres://u:secret@127.0.0.1:1/db", config.clone())
        .await
        .expect_err("nothing listens on port 1");
    assert!(!err.to_string().contains("secret"), "{err}");
    assert!(matches!(err, LimiterStoreError::Postgres(_)), "{err}");
    let err = limiter_from_url("redis://127.0.0.1:1/", config)
        .await
        .expect_err("nothing listens on port 1");
    assert!(
        matches!(
            err,
            LimiterStoreError::Redis(_) | LimiterStoreError::Timeout(_)
        ),
        "{err}"
    );
}

/// A Redis of the test's own, so it can be killed mid-test.
pub(super) struct OwnRedis(pub(super) Child, pub(super) u16);

impl OwnRedis {
    pub(super) fn start() -> OwnRedis {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        OwnRedis::start_on(port)
    }

    /// A redis-server on `port` (e.g. to bring one back after [`kill`](Self::kill)).
    pub(super) fn start_on(port: u16) -> OwnRedis {
        let child = Command::new("redis-server")
            .args([
                "--bind",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--save",
                "",
            ])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server on PATH (tests/services/start.sh installs it)");
        OwnRedis(child, port)
    }

    pub(super) fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

async fn connect_retrying(url: &str, config: SharedLimiterConfig) -> SharedTenantLimiter {
    for _ in 0..100 {
        if let Ok(limiter) = limiter_from_url(url, config.clone()).await {
            return limiter;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("redis-server did not come up at {url}");
}

#[tokio::test]
async fn redis_limiter_outage_answers_with_the_chosen_fallback() {
    // The services profile guarantees redis-server is installed.
    let _ = redis_url();
    let mut redis = OwnRedis::start();
    let url = format!("redis://127.0.0.1:{}/", redis.1);
    let base =
        SharedLimiterConfig::new(Quota::per_minute(1)).with_op_timeout(Duration::from_millis(500));
    let closed = connect_retrying(
        &url,
        base.clone().with_fallback(StoreFallback::FailClosed {
            retry_after: 7 * SECOND,
        }),
    )
    .await;
    let open = connect_retrying(&url, base.with_fallback(StoreFallback::FailOpen)).await;
    assert_eq!(
        closed.reserve("mall", SECOND).await,
        Admission::Reserved(Duration::ZERO)
    );
    redis.kill();

    let err = closed
        .try_reserve("mall", SECOND)
        .await
        .expect_err("Redis is gone");
    assert!(
        matches!(
            err,
            LimiterStoreError::Redis(_) | LimiterStoreError::Timeout(_)
        ),
        "{err}"
    );
    assert_eq!(
        closed.reserve("mall", SECOND).await,
        Admission::Defer(7 * SECOND)
    );
    // Fail open admits even though the quota (1/min) was used up before the outage.
    assert_eq!(
        open.reserve("mall", SECOND).await,
        Admission::Reserved(Duration::ZERO)
    );
    assert!(closed.try_pause("mall", SECOND).await.is_err());
}
