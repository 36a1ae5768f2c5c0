//! Idempotency across processes: the [`IdempotencyStore`] contract held in Redis or PostgreSQL,
//! so a key claimed by one worker process is in progress for all of them, a crashed process's
//! claim expires with its lease, and a completed key suppresses repeats everywhere for its
//! retention.
//!
//! Lease and retention times are measured by the store's clock (Redis key expiry, PostgreSQL
//! `now()`), never a worker's.

// Without a store feature only the configuration types remain.
#![cfg_attr(
    not(any(feature = "redis", feature = "postgres")),
    allow(dead_code, unused_imports)
)]

use std::time::Duration;

use crate::idempotency::{Claim, IdempotencyError, IdempotencyStore};
use crate::limiter::BoxFuture;

/// A shared idempotency store failed (or could not be set up).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IdempotencyStoreError {
    /// The URL's scheme is not `redis://`, `rediss://`, `postgres://` or `postgresql://`, or
    /// support for it was not compiled in (cargo features `redis`, `postgres`).
    #[error("unsupported idempotency store URL {url:?}: {reason}")]
    UnsupportedUrl {
        /// The URL, without credentials.
        url: String,
        /// Why.
        reason: &'static str,
    },
    /// Redis could not be reached or answered with an error.
    #[cfg(feature = "redis")]
    #[error("Redis idempotency store at {url}: {source}")]
    Redis {
        /// The store's URL, without credentials.
        url: String,
        /// The client's error.
        #[source]
        source: redis::RedisError,
    },
    /// PostgreSQL could not be reached or answered with an error.
    #[cfg(feature = "postgres")]
    #[error("PostgreSQL idempotency store at {url}: {source}")]
    Postgres {
        /// The store's URL, without credentials.
        url: String,
        /// The client's error.
        #[source]
        source: tokio_postgres::Error,
    },
    /// The store did not answer within the operation timeout.
    #[error("idempotency store at {url} did not answer within {timeout:?}")]
    Timeout {
        /// The store's URL, without credentials.
        url: String,
        /// The operation timeout.
        timeout: Duration,
    },
    /// The store answered something this store did not write, or the configuration is invalid.
    #[error("idempotency store at {url}: {detail}")]
    Protocol {
        /// The store's URL, without credentials.
        url: String,
        /// What was wrong.
        detail: String,
    },
}

impl From<IdempotencyStoreError> for IdempotencyError {
    fn from(e: IdempotencyStoreError) -> Self {
        IdempotencyError(Box::new(e))
    }
}

/// Settings of the shared idempotency stores: key prefix / table and operation timeout. Lease
/// and retention come from [`Idempotency`](crate::Idempotency) (per call).
#[derive(Debug, Clone)]
pub struct SharedIdempotencyConfig {
    namespace: String,
    op_timeout: Duration,
}

impl Default for SharedIdempotencyConfig {
    fn default() -> Self {
        SharedIdempotencyConfig::new()
    }
}

impl SharedIdempotencyConfig {
    /// Namespace `redrive:idempotency` (PostgreSQL table `redrive_idempotency`), 1 s operation
    /// timeout.
    pub fn new() -> SharedIdempotencyConfig {
        SharedIdempotencyConfig {
            namespace: "redrive:idempotency".into(),
            op_timeout: Duration::from_secs(1),
        }
    }

    /// Separates stores sharing one server: the Redis key prefix, or the PostgreSQL table name
    /// (`:` becomes `_`; it must then be a plain SQL identifier).
    pub fn with_namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// How long one store call may take before it fails with
    /// [`IdempotencyStoreError::Timeout`] (the worker then retries the message later).
    pub fn with_op_timeout(mut self, timeout: Duration) -> Self {
        self.op_timeout = timeout;
        self
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX).max(1)
}

async fn with_timeout<T>(
    url: &str,
    limit: Duration,
    call: impl Future<Output = Result<T, IdempotencyStoreError>>,
) -> Result<T, IdempotencyStoreError> {
    tokio::time::timeout(limit, call).await.unwrap_or_else(|_| {
        Err(IdempotencyStoreError::Timeout {
            url: url.to_string(),
            timeout: limit,
        })
    })
}

fn claim_of(url: &str, answer: &str) -> Result<Claim, IdempotencyStoreError> {
    match answer {
        "acquired" => Ok(Claim::Acquired),
        "in_progress" => Ok(Claim::InProgress),
        "completed" => Ok(Claim::Completed),
        other => Err(IdempotencyStoreError::Protocol {
            url: url.to_string(),
            detail: format!("unexpected claim answer {other:?}"),
        }),
    }
}

/// An idempotency store shared across processes: the object-safe façade over the two stores
/// that [`idempotency_from_url`] returns.
#[cfg(any(feature = "redis", feature = "postgres"))]
pub enum SharedIdempotencyStore {
    /// Redis, one key per idempotency key.
    #[cfg(feature = "redis")]
    Redis(RedisIdempotencyStore),
    /// PostgreSQL, one row per idempotency key.
    #[cfg(feature = "postgres")]
    Postgres(PostgresIdempotencyStore),
}

#[cfg(any(feature = "redis", feature = "postgres"))]
impl std::fmt::Debug for SharedIdempotencyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            #[cfg(feature = "redis")]
            SharedIdempotencyStore::Redis(s) => {
                write!(f, "SharedIdempotencyStore::Redis({})", s.url)
            }
            #[cfg(feature = "postgres")]
            SharedIdempotencyStore::Postgres(s) => {
                write!(f, "SharedIdempotencyStore::Postgres({})", s.url)
            }
        }
    }
}

#[cfg(any(feature = "redis", feature = "postgres"))]
impl IdempotencyStore for SharedIdempotencyStore {
    fn try_begin<'a>(
        &'a self,
        key: &'a str,
        owner: &'a str,
        lease: Duration,
    ) -> BoxFuture<'a, Result<Claim, IdempotencyError>> {
        match self {
            #[cfg(feature = "redis")]
            SharedIdempotencyStore::Redis(s) => s.try_begin(key, owner, lease),
            #[cfg(feature = "postgres")]
            SharedIdempotencyStore::Postgres(s) => s.try_begin(key, owner, lease),
        }
    }

    fn extend<'a>(
        &'a self,
        key: &'a str,
        owner: &'a str,
        lease: Duration,
    ) -> BoxFuture<'a, Result<bool, IdempotencyError>> {
        match self {
            #[cfg(feature = "redis")]
            SharedIdempotencyStore::Redis(s) => s.extend(key, owner, lease),
            #[cfg(feature = "postgres")]
            SharedIdempotencyStore::Postgres(s) => s.extend(key, owner, lease),
        }
    }

    fn complete<'a>(
        &'a self,
        key: &'a str,
        owner: &'a str,
        retention: Duration,
    ) -> BoxFuture<'a, Result<(), IdempotencyError>> {
        match self {
            #[cfg(feature = "redis")]
            SharedIdempotencyStore::Redis(s) => s.complete(key, owner, retention),
            #[cfg(feature = "postgres")]
            SharedIdempotencyStore::Postgres(s) => s.complete(key, owner, retention),
        }
    }

    fn release<'a>(
        &'a self,
        key: &'a str,
        owner: &'a str,
    ) -> BoxFuture<'a, Result<(), IdempotencyError>> {
        match self {
            #[cfg(feature = "redis")]
            SharedIdempotencyStore::Redis(s) => s.release(key, owner),
            #[cfg(feature = "postgres")]
            SharedIdempotencyStore::Postgres(s) => s.release(key, owner),
        }
    }
}

/// Connects the shared idempotency store named by `url`: `redis://…`/`rediss://…` (cargo
/// feature `redis`) or `postgres://…`/`postgresql://…` (cargo feature `postgres`; the table is
/// created if missing). Fails when the store is unreachable at start, with the URL (without its
/// password) in the error.
#[cfg(any(feature = "redis", feature = "postgres"))]
pub async fn idempotency_from_url(
    url: &str,
    config: SharedIdempotencyConfig,
) -> Result<SharedIdempotencyStore, IdempotencyStoreError> {
    let scheme = url.split_once("://").map_or("", |(s, _)| s);
    let unsupported = |reason| IdempotencyStoreError::UnsupportedUrl {
        url: crate::shared_limiter::redact(url),
        reason,
    };
    match scheme {
        "redis" | "rediss" => {
            #[cfg(feature = "redis")]
            {
                Ok(SharedIdempotencyStore::Redis(
                    RedisIdempotencyStore::connect(url, config).await?,
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
                Ok(SharedIdempotencyStore::Postgres(
                    PostgresIdempotencyStore::connect(url, config).await?,
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

#[cfg(feature = "redis")]
pub use self::redis_store::RedisIdempotencyStore;

#[cfg(feature = "redis")]
mod redis_store {
    use super::*;

    /// `SET key processing:<owner> NX PX lease`; if the key exists, its state.
    /// KEYS: the key. ARGV: owner, lease ms.
    const BEGIN: &str = r#"
if redis.call('SET', KEYS[1], 'processing:' .. ARGV[1], 'NX', 'PX', ARGV[2]) then
  return 'acquired'
end
local v = redis.call('GET', KEYS[1])
if v and string.sub(v, 1, 5) == 'done:' then return 'completed' end
return 'in_progress'
"#;

    /// Renews the owner's claim. KEYS: the key. ARGV: owner, lease ms. Returns 1 if renewed.
    const EXTEND: &str = r#"
if redis.call('GET', KEYS[1]) == 'processing:' .. ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"#;

    /// Deletes the owner's claim. KEYS: the key. ARGV: owner. Returns 1 if deleted.
    const RELEASE: &str = r#"
if redis.call('GET', KEYS[1]) == 'processing:' .. ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"#;

    /// An [`IdempotencyStore`] on Redis: one key `<namespace>:<key>` per idempotency key,
    /// `processing:<owner>` with a `PX` lease while claimed (claimed with `SET NX PX` in a Lua
    /// script that reports the existing state atomically), `done:<owner>` with a `PX` retention
    /// once completed. Reconnects after an outage (`ConnectionManager`).
    pub struct RedisIdempotencyStore {
        pub(super) url: String,
        config: SharedIdempotencyConfig,
        connection: redis::aio::ConnectionManager,
        begin: redis::Script,
        extend: redis::Script,
        release: redis::Script,
    }

    impl RedisIdempotencyStore {
        /// Connects to `url` (`redis://host:port/db`); fails if Redis is unreachable now.
        pub async fn connect(
            url: &str,
            config: SharedIdempotencyConfig,
        ) -> Result<RedisIdempotencyStore, IdempotencyStoreError> {
            let shown = crate::shared_limiter::redact(url);
            let error = |source| IdempotencyStoreError::Redis {
                url: shown.clone(),
                source,
            };
            let client = redis::Client::open(url).map_err(error)?;
            let manager_config = redis::aio::ConnectionManagerConfig::new()
                .set_number_of_retries(1)
                .set_connection_timeout(Some(config.op_timeout))
                .set_response_timeout(Some(config.op_timeout));
            let connection = with_timeout(&shown, config.op_timeout, async {
                redis::aio::ConnectionManager::new_with_config(client, manager_config)
                    .await
                    .map_err(error)
            })
            .await?;
            Ok(RedisIdempotencyStore {
                url: shown,
                config,
                connection,
                begin: redis::Script::new(BEGIN),
                extend: redis::Script::new(EXTEND),
                release: redis::Script::new(RELEASE),
            })
        }

        fn redis_key(&self, key: &str) -> String {
            format!("{}:{key}", self.config.namespace)
        }

        fn error(&self, source: redis::RedisError) -> IdempotencyStoreError {
            IdempotencyStoreError::Redis {
                url: self.url.clone(),
                source,
            }
        }

        async fn run<T: redis::FromRedisValue>(
            &self,
            invocation: redis::ScriptInvocation<'_>,
        ) -> Result<T, IdempotencyStoreError> {
            let mut connection = self.connection.clone();
            with_timeout(&self.url, self.config.op_timeout, async {
                invocation
                    .invoke_async(&mut connection)
                    .await
                    .map_err(|e| self.error(e))
            })
            .await
        }

        /// [`IdempotencyStore::try_begin`] with this store's error type.
        pub async fn claim(
            &self,
            key: &str,
            owner: &str,
            lease: Duration,
        ) -> Result<Claim, IdempotencyStoreError> {
            let mut invocation = self.begin.prepare_invoke();
            invocation
                .key(self.redis_key(key))
                .arg(owner)
                .arg(millis(lease));
            let answer: String = self.run(invocation).await?;
            claim_of(&self.url, &answer)
        }

        /// [`IdempotencyStore::extend`] with this store's error type.
        pub async fn renew(
            &self,
            key: &str,
            owner: &str,
            lease: Duration,
        ) -> Result<bool, IdempotencyStoreError> {
            let mut invocation = self.extend.prepare_invoke();
            invocation
                .key(self.redis_key(key))
                .arg(owner)
                .arg(millis(lease));
            let renewed: i64 = self.run(invocation).await?;
            Ok(renewed == 1)
        }

        /// [`IdempotencyStore::complete`] with this store's error type: `SET key done:<owner>
        /// PX retention`.
        pub async fn mark_done(
            &self,
            key: &str,
            owner: &str,
            retention: Duration,
        ) -> Result<(), IdempotencyStoreError> {
            let mut connection = self.connection.clone();
            let redis_key = self.redis_key(key);
            with_timeout(&self.url, self.config.op_timeout, async {
                redis::cmd("SET")
                    .arg(redis_key)
                    .arg(format!("done:{owner}"))
                    .arg("PX")
                    .arg(millis(retention))
                    .query_async::<()>(&mut connection)
                    .await
                    .map_err(|e| self.error(e))
            })
            .await
        }

        /// [`IdempotencyStore::release`] with this store's error type; `Ok(true)` if the claim
        /// was `owner`'s and is gone.
        pub async fn forget(&self, key: &str, owner: &str) -> Result<bool, IdempotencyStoreError> {
            let mut invocation = self.release.prepare_invoke();
            invocation.key(self.redis_key(key)).arg(owner);
            let deleted: i64 = self.run(invocation).await?;
            Ok(deleted == 1)
        }
    }

    impl IdempotencyStore for RedisIdempotencyStore {
        fn try_begin<'a>(
            &'a self,
            key: &'a str,
            owner: &'a str,
            lease: Duration,
        ) -> BoxFuture<'a, Result<Claim, IdempotencyError>> {
            Box::pin(async move { Ok(self.claim(key, owner, lease).await?) })
        }

        fn extend<'a>(
            &'a self,
            key: &'a str,
            owner: &'a str,
            lease: Duration,
        ) -> BoxFuture<'a, Result<bool, IdempotencyError>> {
            Box::pin(async move { Ok(self.renew(key, owner, lease).await?) })
        }

        fn complete<'a>(
            &'a self,
            key: &'a str,
            owner: &'a str,
            retention: Duration,
        ) -> BoxFuture<'a, Result<(), IdempotencyError>> {
            Box::pin(async move { Ok(self.mark_done(key, owner, retention).await?) })
        }

        fn release<'a>(
            &'a self,
            key: &'a str,
            owner: &'a str,
        ) -> BoxFuture<'a, Result<(), IdempotencyError>> {
            Box::pin(async move {
                self.forget(key, owner).await?;
                Ok(())
            })
        }
    }
}

#[cfg(feature = "postgres")]
pub use self::postgres_store::PostgresIdempotencyStore;

#[cfg(feature = "postgres")]
mod postgres_store {
    use super::*;

    /// An [`IdempotencyStore`] on PostgreSQL: table `<namespace>` (`:` → `_`, default
    /// `redrive_idempotency`) with one row per key — `state` (`processing` / `done`), `owner`,
    /// `expires_at` (the lease, then the retention) — claimed with one
    /// `INSERT … ON CONFLICT (key) DO UPDATE … WHERE expires_at <= now()` (an expired row is
    /// taken over in place); times come from the server's `now()`. Expired rows are overwritten
    /// by the next claim of their key; [`purge_expired`](Self::purge_expired) deletes the rest.
    /// One connection per store, not re-established if lost (calls then fail; the worker
    /// retries the message later).
    pub struct PostgresIdempotencyStore {
        pub(super) url: String,
        config: SharedIdempotencyConfig,
        client: tokio_postgres::Client,
        begin_sql: String,
        extend_sql: String,
        complete_sql: String,
        release_sql: String,
        purge_sql: String,
        _connection: tokio::task::JoinHandle<()>,
    }

    impl PostgresIdempotencyStore {
        /// Connects to `url` and creates the table if missing (under an advisory lock, so
        /// processes starting together do not race); fails if PostgreSQL is unreachable now.
        pub async fn connect(
            url: &str,
            config: SharedIdempotencyConfig,
        ) -> Result<PostgresIdempotencyStore, IdempotencyStoreError> {
            let shown = crate::shared_limiter::redact(url);
            let error = |source| IdempotencyStoreError::Postgres {
                url: shown.clone(),
                source,
            };
            let table = config.namespace.replace(':', "_");
            if table.is_empty() || !table.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(IdempotencyStoreError::Protocol {
                    url: shown,
                    detail: format!("namespace {table:?} is not a plain SQL identifier"),
                });
            }
            let (client, connection) = with_timeout(&shown, config.op_timeout, async {
                tokio_postgres::connect(url, tokio_postgres::NoTls)
                    .await
                    .map_err(error)
            })
            .await?;
            let connection = tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::warn!(error = %e, "PostgreSQL idempotency store connection closed");
                }
            });
            with_timeout(&shown, config.op_timeout * 5, async {
                client
                    .batch_execute(&format!(
                        "BEGIN;
                         SELECT pg_advisory_xact_lock(hashtext('redrive-worker:{table}'));
                         CREATE TABLE IF NOT EXISTS {table} (
                             key text PRIMARY KEY,
                             state text NOT NULL CHECK (state IN ('processing', 'done')),
                             owner text NOT NULL,
                             expires_at timestamptz NOT NULL);
                         COMMIT;"
                    ))
                    .await
                    .map_err(error)
            })
            .await?;
            // $1 key, $2 owner, $3 lease / retention in ms.
            let until = "now() + $3::bigint * interval '1 millisecond'";
            // The outer SELECT reads the statement's snapshot: a row another transaction claimed
            // concurrently may be invisible to it (no row → in progress, the safe answer).
            let begin_sql = format!(
                "WITH claimed AS (
                   INSERT INTO {table} AS i (key, state, owner, expires_at)
                   VALUES ($1, 'processing', $2, {until})
                   ON CONFLICT (key) DO UPDATE
                     SET state = 'processing', owner = EXCLUDED.owner, expires_at = EXCLUDED.expires_at
                     WHERE i.expires_at <= now()
                   RETURNING 'acquired'::text AS claim)
                 SELECT claim FROM claimed
                 UNION ALL
                 SELECT CASE WHEN state = 'done' THEN 'completed' ELSE 'in_progress' END
                   FROM {table}
                  WHERE key = $1 AND expires_at > now() AND NOT EXISTS (SELECT 1 FROM claimed)"
            );
            let extend_sql = format!(
                "UPDATE {table} SET expires_at = {until}
                  WHERE key = $1 AND owner = $2 AND state = 'processing'"
            );
            let complete_sql = format!(
                "INSERT INTO {table} AS i (key, state, owner, expires_at)
                 VALUES ($1, 'done', $2, {until})
                 ON CONFLICT (key) DO UPDATE
                   SET state = 'done', owner = EXCLUDED.owner, expires_at = EXCLUDED.expires_at"
            );
            let release_sql = format!(
                "DELETE FROM {table} WHERE key = $1 AND owner = $2 AND state = 'processing'"
            );
            let purge_sql = format!("DELETE FROM {table} WHERE expires_at <= now()");
            Ok(PostgresIdempotencyStore {
                url: shown,
                config,
                client,
                begin_sql,
                extend_sql,
                complete_sql,
                release_sql,
                purge_sql,
                _connection: connection,
            })
        }

        fn error(&self, source: tokio_postgres::Error) -> IdempotencyStoreError {
            IdempotencyStoreError::Postgres {
                url: self.url.clone(),
                source,
            }
        }

        async fn execute(
            &self,
            sql: &str,
            params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
        ) -> Result<u64, IdempotencyStoreError> {
            with_timeout(&self.url, self.config.op_timeout, async {
                self.client
                    .execute(sql, params)
                    .await
                    .map_err(|e| self.error(e))
            })
            .await
        }

        /// [`IdempotencyStore::try_begin`] with this store's error type.
        pub async fn claim(
            &self,
            key: &str,
            owner: &str,
            lease: Duration,
        ) -> Result<Claim, IdempotencyStoreError> {
            let row = with_timeout(&self.url, self.config.op_timeout, async {
                self.client
                    .query_opt(&self.begin_sql, &[&key, &owner, &millis(lease)])
                    .await
                    .map_err(|e| self.error(e))
            })
            .await?;
            match row {
                None => Ok(Claim::InProgress),
                Some(row) => {
                    let answer: String = row.try_get(0).map_err(|e| self.error(e))?;
                    claim_of(&self.url, &answer)
                }
            }
        }

        /// [`IdempotencyStore::extend`] with this store's error type.
        pub async fn renew(
            &self,
            key: &str,
            owner: &str,
            lease: Duration,
        ) -> Result<bool, IdempotencyStoreError> {
            let rows = self
                .execute(&self.extend_sql, &[&key, &owner, &millis(lease)])
                .await?;
            Ok(rows == 1)
        }

        /// [`IdempotencyStore::complete`] with this store's error type.
        pub async fn mark_done(
            &self,
            key: &str,
            owner: &str,
            retention: Duration,
        ) -> Result<(), IdempotencyStoreError> {
            self.execute(&self.complete_sql, &[&key, &owner, &millis(retention)])
                .await?;
            Ok(())
        }

        /// [`IdempotencyStore::release`] with this store's error type; `Ok(true)` if the claim
        /// was `owner`'s and is gone.
        pub async fn forget(&self, key: &str, owner: &str) -> Result<bool, IdempotencyStoreError> {
            Ok(self.execute(&self.release_sql, &[&key, &owner]).await? == 1)
        }

        /// Deletes expired rows (claims whose consumer died, completed keys past their
        /// retention); returns how many. Run it now and then if keys are rarely reused.
        pub async fn purge_expired(&self) -> Result<u64, IdempotencyStoreError> {
            self.execute(&self.purge_sql, &[]).await
        }
    }

    impl Drop for PostgresIdempotencyStore {
        fn drop(&mut self) {
            self._connection.abort();
        }
    }

    impl IdempotencyStore for PostgresIdempotencyStore {
        fn try_begin<'a>(
            &'a self,
            key: &'a str,
            owner: &'a str,
            lease: Duration,
        ) -> BoxFuture<'a, Result<Claim, IdempotencyError>> {
            Box::pin(async move { Ok(self.claim(key, owner, lease).await?) })
        }

        fn extend<'a>(
            &'a self,
            key: &'a str,
            owner: &'a str,
            lease: Duration,
        ) -> BoxFuture<'a, Result<bool, IdempotencyError>> {
            Box::pin(async move { Ok(self.renew(key, owner, lease).await?) })
        }

        fn complete<'a>(
            &'a self,
            key: &'a str,
            owner: &'a str,
            retention: Duration,
        ) -> BoxFuture<'a, Result<(), IdempotencyError>> {
            Box::pin(async move { Ok(self.mark_done(key, owner, retention).await?) })
        }

        fn release<'a>(
            &'a self,
            key: &'a str,
            owner: &'a str,
        ) -> BoxFuture<'a, Result<(), IdempotencyError>> {
            Box::pin(async move {
                self.forget(key, owner).await?;
                Ok(())
            })
        }
    }
}
