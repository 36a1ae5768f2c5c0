//! Admission control shared across processes: the [`TenantLimiter`] contract held in a store
//! (Redis or PostgreSQL) so N workers together never exceed a tenant's quota, and a 429 seen by
//! one pauses the tenant for all.
//!
//! Both stores run the same GCRA as [`TenantRateLimiter`](crate::TenantRateLimiter), decided
//! atomically by the store on the store's clock, so clock skew between worker hosts does not
//! matter.

// Without a store feature only the configuration types remain.
#![cfg_attr(
    not(any(feature = "redis", feature = "postgres")),
    allow(dead_code, unused_imports)
)]

use std::collections::HashMap;
use std::time::Duration;

use crate::limiter::{Admission, BoxFuture, Quota, QuotaTable, TenantLimiter};

/// What a shared limiter answers when its store cannot be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreFallback {
    /// Admit nothing: the message is deferred (returned to the queue) for this long. The quota
    /// is never exceeded; work waits for the store. The default (5 s).
    FailClosed {
        /// How long the message stays invisible before it is tried again.
        retry_after: Duration,
    },
    /// Admit everything without a reservation: work goes on, the quota is not enforced while
    /// the store is down (each 429 then still defers its message).
    FailOpen,
}

impl Default for StoreFallback {
    fn default() -> Self {
        StoreFallback::FailClosed {
            retry_after: Duration::from_secs(5),
        }
    }
}

impl StoreFallback {
    fn admission(self) -> Admission {
        match self {
            StoreFallback::FailClosed { retry_after } => Admission::Defer(retry_after),
            StoreFallback::FailOpen => Admission::Reserved(Duration::ZERO),
        }
    }
}

/// A shared limiter's store failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LimiterStoreError {
    /// The URL's scheme is not `redis://`, `rediss://`, `postgres://` or `postgresql://`, or
    /// support for it was not compiled in (cargo features `redis`, `postgres`).
    #[error("unsupported limiter URL {url:?}: {reason}")]
    UnsupportedUrl {
        /// The URL, without credentials.
        url: String,
        /// Why.
        reason: &'static str,
    },
    /// Redis could not be reached or answered with an error.
    #[cfg(feature = "redis")]
    #[error("Redis limiter store: {0}")]
    Redis(#[from] redis::RedisError),
    /// PostgreSQL could not be reached or answered with an error.
    #[cfg(feature = "postgres")]
    #[error("PostgreSQL limiter store: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    /// The store did not answer within the operation timeout.
    #[error("limiter store did not answer within {0:?}")]
    Timeout(Duration),
    /// The store answered something this limiter did not write.
    #[error("limiter store answered unexpectedly: {0}")]
    Protocol(String),
}

/// Settings common to the shared limiters: quotas, key prefix, timeout, fallback.
#[derive(Debug, Clone)]
pub struct SharedLimiterConfig {
    quotas: QuotaTable,
    namespace: String,
    op_timeout: Duration,
    fallback: StoreFallback,
}

impl SharedLimiterConfig {
    /// Every tenant gets `quota` unless overridden. Namespace `redrive:limiter`, 1 s operation
    /// timeout, [`StoreFallback::FailClosed`] after 5 s.
    pub fn new(quota: Quota) -> SharedLimiterConfig {
        SharedLimiterConfig {
            quotas: QuotaTable {
                default_quota: Some(quota),
                overrides: HashMap::new(),
            },
            ..SharedLimiterConfig::unlimited()
        }
    }

    /// No rate limit, only pauses after a 429.
    pub fn unlimited() -> SharedLimiterConfig {
        SharedLimiterConfig {
            quotas: QuotaTable::default(),
            namespace: "redrive:limiter".into(),
            op_timeout: Duration::from_secs(1),
            fallback: StoreFallback::default(),
        }
    }

    /// Sets the quota of one tenant.
    pub fn with_tenant_quota(mut self, tenant: impl Into<String>, quota: Quota) -> Self {
        self.quotas.overrides.insert(tenant.into(), quota);
        self
    }

    /// Separates limiters sharing one store: the Redis key prefix, or the PostgreSQL table name
    /// (`:` becomes `_`; it must then be a plain SQL identifier).
    pub fn with_namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// How long one store call may take before it counts as a failure (and the fallback
    /// answers).
    pub fn with_op_timeout(mut self, timeout: Duration) -> Self {
        self.op_timeout = timeout;
        self
    }

    /// What to answer when the store fails.
    pub fn with_fallback(mut self, fallback: StoreFallback) -> Self {
        self.fallback = fallback;
        self
    }

    /// `(interval, tolerance)` of `tenant` in microseconds; `(0, 0)` when unlimited.
    fn gcra_micros(&self, tenant: &str) -> (i64, i64) {
        self.quotas
            .quota_of(tenant)
            .map_or((0, 0), |q| (micros(q.interval()), micros(q.tolerance())))
    }
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

fn from_micros(us: i64) -> Duration {
    Duration::from_micros(u64::try_from(us).unwrap_or(0))
}

/// Decodes a store's `(admitted, wait_us)` answer.
fn admission_of(admitted: bool, wait_us: i64) -> Admission {
    if admitted {
        Admission::Reserved(from_micros(wait_us))
    } else {
        Admission::Defer(from_micros(wait_us))
    }
}

async fn with_timeout<T>(
    limit: Duration,
    call: impl Future<Output = Result<T, LimiterStoreError>>,
) -> Result<T, LimiterStoreError> {
    tokio::time::timeout(limit, call)
        .await
        .unwrap_or(Err(LimiterStoreError::Timeout(limit)))
}

/// A limiter whose state lives in a shared store. Object-safe façade over the two stores;
/// [`limiter_from_url`] picks one.
#[cfg(any(feature = "redis", feature = "postgres"))]
pub enum SharedTenantLimiter {
    /// Redis, one key per tenant.
    #[cfg(feature = "redis")]
    Redis(RedisTenantLimiter),
    /// PostgreSQL, one row per tenant.
    #[cfg(feature = "postgres")]
    Postgres(PostgresTenantLimiter),
}

#[cfg(any(feature = "redis", feature = "postgres"))]
impl SharedTenantLimiter {
    /// Like [`TenantLimiter::reserve`], but returns the store's error instead of applying the
    /// fallback.
    pub async fn try_reserve(
        &self,
        tenant: &str,
        max_wait: Duration,
    ) -> Result<Admission, LimiterStoreError> {
        match self {
            #[cfg(feature = "redis")]
            SharedTenantLimiter::Redis(l) => l.try_reserve(tenant, max_wait).await,
            #[cfg(feature = "postgres")]
            SharedTenantLimiter::Postgres(l) => l.try_reserve(tenant, max_wait).await,
        }
    }

    /// Like [`TenantLimiter::pause`], but returns the store's error.
    pub async fn try_pause(
        &self,
        tenant: &str,
        duration: Duration,
    ) -> Result<(), LimiterStoreError> {
        match self {
            #[cfg(feature = "redis")]
            SharedTenantLimiter::Redis(l) => l.try_pause(tenant, duration).await,
            #[cfg(feature = "postgres")]
            SharedTenantLimiter::Postgres(l) => l.try_pause(tenant, duration).await,
        }
    }

    fn fallback(&self) -> StoreFallback {
        match self {
            #[cfg(feature = "redis")]
            SharedTenantLimiter::Redis(l) => l.config.fallback,
            #[cfg(feature = "postgres")]
            SharedTenantLimiter::Postgres(l) => l.config.fallback,
        }
    }
}

#[cfg(any(feature = "redis", feature = "postgres"))]
impl std::fmt::Debug for SharedTenantLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            #[cfg(feature = "redis")]
            SharedTenantLimiter::Redis(_) => f.write_str("SharedTenantLimiter::Redis"),
            #[cfg(feature = "postgres")]
            SharedTenantLimiter::Postgres(_) => f.write_str("SharedTenantLimiter::Postgres"),
        }
    }
}

#[cfg(any(feature = "redis", feature = "postgres"))]
impl TenantLimiter for SharedTenantLimiter {
    fn reserve<'a>(&'a self, tenant: &'a str, max_wait: Duration) -> BoxFuture<'a, Admission> {
        Box::pin(async move {
            match self.try_reserve(tenant, max_wait).await {
                Ok(admission) => admission,
                Err(e) => {
                    let fallback = self.fallback();
                    tracing::warn!(error = %e, tenant, ?fallback, "limiter store failed; answering with the fallback");
                    fallback.admission()
                }
            }
        })
    }

    fn pause<'a>(&'a self, tenant: &'a str, duration: Duration) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            if let Err(e) = self.try_pause(tenant, duration).await {
                tracing::warn!(error = %e, tenant, "limiter store failed; the pause holds in no other process");
            }
        })
    }
}

/// Connects the shared limiter named by `url`: `redis://…`/`rediss://…` (cargo feature
/// `redis`) or `postgres://…`/`postgresql://…` (cargo feature `postgres`; the table is created
/// if missing). Fails when the store is unreachable at start.
#[cfg(any(feature = "redis", feature = "postgres"))]
pub async fn limiter_from_url(
    url: &str,
    config: SharedLimiterConfig,
) -> Result<SharedTenantLimiter, LimiterStoreError> {
    let scheme = url.split_once("://").map_or("", |(s, _)| s);
    let unsupported = |reason| LimiterStoreError::UnsupportedUrl {
        url: redact(url),
        reason,
    };
    match scheme {
        "redis" | "rediss" => {
            #[cfg(feature = "redis")]
            {
                Ok(SharedTenantLimiter::Redis(
                    RedisTenantLimiter::connect(url, config).await?,
                ))
            }
            #[cfg(not(feature = "redis"))]
            {
                let _ = config;
                Err(unsupported("built without the `redis` feature"))
            }
        }
        "postgres" | "postgresql" => {
            #[cfg(feature = "postgres")]
            {
                Ok(SharedTenantLimiter::Postgres(
                    PostgresTenantLimiter::connect(url, config).await?,
                ))
            }
            #[cfg(not(feature = "postgres"))]
            {
                let _ = config;
                Err(unsupported("built without the `postgres` feature"))
            }
        }
        _ => Err(unsupported(
            "expected redis://, rediss://, postgres:// or postgresql://",
        )),
    }
}

/// The URL without a password.
#[cfg(any(feature = "redis", feature = "postgres"))]
pub(crate) fn redact(url: &str) -> String {
    match (url.split_once("://"), url.rfind('@')) {
        (Some((scheme, _)), Some(at)) => format!("{scheme}://…{}", &url[at..]),
        _ => url.to_string(),
    }
}

#[cfg(feature = "redis")]
pub use self::redis_store::RedisTenantLimiter;

#[cfg(feature = "redis")]
mod redis_store {
    use super::*;

    /// GCRA with a pause, decided on the Redis server's clock (`TIME`).
    /// KEYS: tat key, pause key. ARGV: interval µs, tolerance µs, max wait µs.
    /// Returns `{admitted (0|1), wait µs}`. The tat key expires once it is in the past.
    const RESERVE: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local max_wait = tonumber(ARGV[3])
local earliest = now
local pause_ms = redis.call('PTTL', KEYS[2])
if pause_ms > 0 then earliest = now + pause_ms * 1000 end
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if interval > 0 and tat - tolerance > earliest then earliest = tat - tolerance end
local wait = earliest - now
if wait > max_wait then return {0, wait} end
if interval > 0 then
  local next_tat = math.max(tat, earliest) + interval
  redis.call('SET', KEYS[1], string.format('%.0f', next_tat), 'PX', math.ceil((next_tat - now) / 1000) + 1000)
end
return {1, wait}
"#;

    /// Extends, never shortens, the pause. KEYS: pause key. ARGV: duration ms.
    const PAUSE: &str = r#"
local ms = tonumber(ARGV[1])
if redis.call('PTTL', KEYS[1]) < ms then
  redis.call('SET', KEYS[1], '1', 'PX', ms)
end
return 1
"#;

    /// A [`TenantLimiter`] on Redis: one GCRA key and one pause key per tenant (hash-tagged so
    /// both sit in one cluster slot), both with expiry; every decision is one Lua script.
    pub struct RedisTenantLimiter {
        pub(super) config: SharedLimiterConfig,
        connection: redis::aio::ConnectionManager,
        reserve: redis::Script,
        pause: redis::Script,
    }

    impl RedisTenantLimiter {
        /// Connects to `url` (`redis://host:port/db`); fails if Redis is unreachable now.
        /// Later outages are retried by reconnecting; meanwhile the fallback answers.
        pub async fn connect(
            url: &str,
            config: SharedLimiterConfig,
        ) -> Result<RedisTenantLimiter, LimiterStoreError> {
            let client = redis::Client::open(url)?;
            let manager_config = redis::aio::ConnectionManagerConfig::new()
                .set_number_of_retries(1)
                .set_connection_timeout(Some(config.op_timeout))
                .set_response_timeout(Some(config.op_timeout));
            let connection = with_timeout(config.op_timeout, async {
                Ok(redis::aio::ConnectionManager::new_with_config(client, manager_config).await?)
            })
            .await?;
            Ok(RedisTenantLimiter {
                config,
                connection,
                reserve: redis::Script::new(RESERVE),
                pause: redis::Script::new(PAUSE),
            })
        }

        fn keys(&self, tenant: &str) -> (String, String) {
            let ns = &self.config.namespace;
            (
                format!("{ns}:{{{tenant}}}:tat"),
                format!("{ns}:{{{tenant}}}:pause"),
            )
        }

        /// [`TenantLimiter::reserve`] with the store's error instead of the fallback.
        pub async fn try_reserve(
            &self,
            tenant: &str,
            max_wait: Duration,
        ) -> Result<Admission, LimiterStoreError> {
            let (interval, tolerance) = self.config.gcra_micros(tenant);
            let (tat_key, pause_key) = self.keys(tenant);
            let mut connection = self.connection.clone();
            let (admitted, wait): (i64, i64) = with_timeout(self.config.op_timeout, async {
                Ok(self
                    .reserve
                    .key(tat_key)
                    .key(pause_key)
                    .arg(interval)
                    .arg(tolerance)
                    .arg(micros(max_wait))
                    .invoke_async(&mut connection)
                    .await?)
            })
            .await?;
            Ok(admission_of(admitted == 1, wait))
        }

        /// [`TenantLimiter::pause`] with the store's error.
        pub async fn try_pause(
            &self,
            tenant: &str,
            duration: Duration,
        ) -> Result<(), LimiterStoreError> {
            let (_, pause_key) = self.keys(tenant);
            let millis = i64::try_from(duration.as_millis())
                .unwrap_or(i64::MAX)
                .max(1);
            let mut connection = self.connection.clone();
            with_timeout(self.config.op_timeout, async {
                let _: i64 = self
                    .pause
                    .key(pause_key)
                    .arg(millis)
                    .invoke_async(&mut connection)
                    .await?;
                Ok(())
            })
            .await
        }
    }

    impl TenantLimiter for RedisTenantLimiter {
        fn reserve<'a>(&'a self, tenant: &'a str, max_wait: Duration) -> BoxFuture<'a, Admission> {
            Box::pin(async move {
                self.try_reserve(tenant, max_wait).await.unwrap_or_else(|e| {
                    let fallback = self.config.fallback;
                    tracing::warn!(error = %e, tenant, ?fallback, "Redis limiter failed; answering with the fallback");
                    fallback.admission()
                })
            })
        }

        fn pause<'a>(&'a self, tenant: &'a str, duration: Duration) -> BoxFuture<'a, ()> {
            Box::pin(async move {
                if let Err(e) = self.try_pause(tenant, duration).await {
                    tracing::warn!(error = %e, tenant, "Redis limiter failed; the pause holds in no other process");
                }
            })
        }
    }
}

#[cfg(feature = "postgres")]
pub use self::postgres_store::PostgresTenantLimiter;

#[cfg(feature = "postgres")]
mod postgres_store {
    use super::*;

    /// A [`TenantLimiter`] on PostgreSQL: one row per tenant, each decision one
    /// `INSERT … ON CONFLICT … DO UPDATE … RETURNING` on `clock_timestamp()` (the row lock
    /// serialises concurrent decisions for one tenant).
    pub struct PostgresTenantLimiter {
        pub(super) config: SharedLimiterConfig,
        client: tokio_postgres::Client,
        reserve_sql: String,
        pause_sql: String,
        _connection: tokio::task::JoinHandle<()>,
    }

    impl PostgresTenantLimiter {
        /// Connects to `url` and creates the table if missing; fails if PostgreSQL is
        /// unreachable now. A lost connection is not re-established: later calls fail and the
        /// fallback answers.
        pub async fn connect(
            url: &str,
            config: SharedLimiterConfig,
        ) -> Result<PostgresTenantLimiter, LimiterStoreError> {
            let (client, connection) = with_timeout(config.op_timeout, async {
                Ok(tokio_postgres::connect(url, tokio_postgres::NoTls).await?)
            })
            .await?;
            let connection = tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::warn!(error = %e, "PostgreSQL limiter connection closed");
                }
            });
            let table = config.namespace.replace(':', "_");
            if !table.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(LimiterStoreError::Protocol(format!(
                    "namespace {table:?} is not a plain SQL identifier"
                )));
            }
            with_timeout(config.op_timeout * 5, async {
                client
                    .batch_execute(&format!(
                        "CREATE TABLE IF NOT EXISTS {table} (
                            tenant text PRIMARY KEY,
                            tat timestamptz NOT NULL,
                            paused_until timestamptz NOT NULL,
                            admitted boolean NOT NULL,
                            wait_us bigint NOT NULL)"
                    ))
                    .await?;
                Ok(())
            })
            .await?;
            // $1 tenant, $2 interval µs, $3 tolerance µs, $4 max wait µs. `now` is read once.
            let earliest =
                "GREATEST(e.now, l.paused_until, l.tat - $3::bigint * interval '1 microsecond')";
            let wait = format!("({earliest} - e.now)");
            let admitted = format!("({wait} <= $4::bigint * interval '1 microsecond')");
            let reserve_sql = format!(
                "INSERT INTO {table} AS l (tenant, tat, paused_until, admitted, wait_us)
                 SELECT $1, n.now + $2::bigint * interval '1 microsecond', '-infinity', true, 0
                   FROM (SELECT clock_timestamp() AS now) n
                 ON CONFLICT (tenant) DO UPDATE SET
                   tat = CASE WHEN {admitted}
                         THEN GREATEST(l.tat, {earliest}) + $2::bigint * interval '1 microsecond'
                         ELSE l.tat END,
                   admitted = {admitted},
                   wait_us = (EXTRACT(EPOCH FROM {wait}) * 1000000)::bigint
                 RETURNING admitted, wait_us"
            )
            // EXCLUDED.tat - interval is the `now` read by the SELECT.
            .replace(
                "e.now",
                "(EXCLUDED.tat - $2::bigint * interval '1 microsecond')",
            );
            let pause_sql = format!(
                "INSERT INTO {table} AS l (tenant, tat, paused_until, admitted, wait_us)
                 VALUES ($1, '-infinity', clock_timestamp() + $2::bigint * interval '1 millisecond', true, 0)
                 ON CONFLICT (tenant) DO UPDATE SET
                   paused_until = GREATEST(l.paused_until, EXCLUDED.paused_until)"
            );
            Ok(PostgresTenantLimiter {
                config,
                client,
                reserve_sql,
                pause_sql,
                _connection: connection,
            })
        }

        /// [`TenantLimiter::reserve`] with the store's error instead of the fallback.
        pub async fn try_reserve(
            &self,
            tenant: &str,
            max_wait: Duration,
        ) -> Result<Admission, LimiterStoreError> {
            let (interval, tolerance) = self.config.gcra_micros(tenant);
            let row = with_timeout(self.config.op_timeout, async {
                Ok(self
                    .client
                    .query_one(
                        &self.reserve_sql,
                        &[&tenant, &interval, &tolerance, &micros(max_wait)],
                    )
                    .await?)
            })
            .await?;
            let admitted: bool = row.try_get(0)?;
            let wait_us: i64 = row.try_get(1)?;
            Ok(admission_of(admitted, wait_us))
        }

        /// [`TenantLimiter::pause`] with the store's error.
        pub async fn try_pause(
            &self,
            tenant: &str,
            duration: Duration,
        ) -> Result<(), LimiterStoreError> {
            let millis = i64::try_from(duration.as_millis()).unwrap_or(i64::MAX);
            with_timeout(self.config.op_timeout, async {
                self.client
                    .execute(&self.pause_sql, &[&tenant, &millis])
                    .await?;
                Ok(())
            })
            .await
        }
    }

    impl Drop for PostgresTenantLimiter {
        fn drop(&mut self) {
            self._connection.abort();
        }
    }

    impl TenantLimiter for PostgresTenantLimiter {
        fn reserve<'a>(&'a self, tenant: &'a str, max_wait: Duration) -> BoxFuture<'a, Admission> {
            Box::pin(async move {
                self.try_reserve(tenant, max_wait).await.unwrap_or_else(|e| {
                    let fallback = self.config.fallback;
                    tracing::warn!(error = %e, tenant, ?fallback, "PostgreSQL limiter failed; answering with the fallback");
                    fallback.admission()
                })
            })
        }

        fn pause<'a>(&'a self, tenant: &'a str, duration: Duration) -> BoxFuture<'a, ()> {
            Box::pin(async move {
                if let Err(e) = self.try_pause(tenant, duration).await {
                    tracing::warn!(error = %e, tenant, "PostgreSQL limiter failed; the pause holds in no other process");
                }
            })
        }
    }
}
