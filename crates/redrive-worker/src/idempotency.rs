//! Idempotency: a pluggable store of keys in state in-progress or completed, so a duplicate
//! delivery or a redrive does not repeat a side effect.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::limiter::BoxFuture;
use crate::message::KeySource;

/// The state of a key after [`IdempotencyStore::try_begin`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// The caller now owns the key (state in-progress) and should run the handler.
    Acquired,
    /// Another consumer is handling the same key right now.
    InProgress,
    /// The key was completed and has not expired: skip the handler, delete the message.
    Completed,
}

/// An error from an idempotency store (a network or storage failure).
#[derive(Debug, thiserror::Error)]
#[error("idempotency store: {0}")]
pub struct IdempotencyError(#[from] pub Box<dyn std::error::Error + Send + Sync>);

/// Storage for idempotency keys. States: absent → in-progress (with a lease, held by one
/// `owner`) → completed (kept for a retention period) → absent. An in-progress key whose lease
/// ran out counts as absent (its consumer crashed), so another consumer can take it over.
///
/// Every claim carries an `owner` token (unique per claim; the worker makes one per message).
/// [`extend`](IdempotencyStore::extend) and [`release`](IdempotencyStore::release) act only on
/// the caller's own claim, so a consumer whose lease ran out and was taken over cannot renew or
/// delete the new holder's claim. [`complete`](IdempotencyStore::complete) is unconditional:
/// the side effect happened, whoever holds the key now.
///
/// Implementations in this crate: [`InMemoryIdempotencyStore`] (one process), and behind the
/// `redis` / `postgres` features `RedisIdempotencyStore` and `PostgresIdempotencyStore`
/// (`idempotency_from_url`). Implement it over any store with an atomic conditional write
/// (DynamoDB conditional writes, …) to deduplicate across processes.
pub trait IdempotencyStore: Send + Sync + 'static {
    /// Atomically claims `key` for `owner` for `lease` unless it is in progress (with a lease
    /// that has not run out) or completed (within its retention).
    fn try_begin<'a>(
        &'a self,
        key: &'a str,
        owner: &'a str,
        lease: Duration,
    ) -> BoxFuture<'a, Result<Claim, IdempotencyError>>;

    /// Renews `owner`'s in-progress claim on `key` for another `lease` from now. `Ok(false)`
    /// when the claim is no longer `owner`'s (its lease ran out and another consumer took the
    /// key, or it was completed). The worker calls it every third of the lease while the
    /// handler runs, so a lease only has to outlast a crash, not the longest handler run.
    fn extend<'a>(
        &'a self,
        key: &'a str,
        owner: &'a str,
        lease: Duration,
    ) -> BoxFuture<'a, Result<bool, IdempotencyError>>;

    /// Marks `key` completed for `retention` (whoever holds it).
    fn complete<'a>(
        &'a self,
        key: &'a str,
        owner: &'a str,
        retention: Duration,
    ) -> BoxFuture<'a, Result<(), IdempotencyError>>;

    /// Forgets `owner`'s in-progress claim on `key` (the handler failed; a retry must run it
    /// again). Does nothing if the key is not in progress for `owner`.
    fn release<'a>(
        &'a self,
        key: &'a str,
        owner: &'a str,
    ) -> BoxFuture<'a, Result<(), IdempotencyError>>;
}

#[derive(Debug, Clone)]
enum KeyState {
    InProgress { until: Instant, owner: String },
    Completed { until: Instant },
}

/// An in-process [`IdempotencyStore`] (a mutex-protected map; expired keys are dropped as
/// they are met and on a sweep every 1,024 writes). Protects against duplicates seen by one
/// process; use a shared store across processes.
#[derive(Debug, Default)]
pub struct InMemoryIdempotencyStore {
    keys: Mutex<(HashMap<String, KeyState>, u32)>,
}

impl InMemoryIdempotencyStore {
    /// An empty store.
    pub fn new() -> InMemoryIdempotencyStore {
        InMemoryIdempotencyStore::default()
    }

    /// Number of live (unexpired) keys.
    pub fn len(&self) -> usize {
        let now = Instant::now();
        let keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        keys.0.values().filter(|s| !expired(s, now)).count()
    }

    /// Whether the store holds no live key.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Synchronous core of [`IdempotencyStore::try_begin`].
    pub fn try_begin_at(&self, key: &str, owner: &str, lease: Duration, now: Instant) -> Claim {
        let mut guard = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        let (keys, writes) = &mut *guard;
        *writes = writes.wrapping_add(1);
        if *writes % 1024 == 0 {
            keys.retain(|_, s| !expired(s, now));
        }
        match keys.get(key) {
            Some(s @ KeyState::InProgress { .. }) if !expired(s, now) => Claim::InProgress,
            Some(s @ KeyState::Completed { .. }) if !expired(s, now) => Claim::Completed,
            _ => {
                keys.insert(
                    key.to_string(),
                    KeyState::InProgress {
                        until: now + lease,
                        owner: owner.to_string(),
                    },
                );
                Claim::Acquired
            }
        }
    }

    /// Synchronous core of [`IdempotencyStore::extend`].
    pub fn extend_at(&self, key: &str, owner: &str, lease: Duration, now: Instant) -> bool {
        let mut guard = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        match guard.0.get_mut(key) {
            Some(KeyState::InProgress { until, owner: o }) if o == owner => {
                *until = now + lease;
                true
            }
            _ => false,
        }
    }

    fn set(&self, key: &str, state: Option<KeyState>) {
        let mut guard = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        match state {
            Some(s) => guard.0.insert(key.to_string(), s),
            None => guard.0.remove(key),
        };
    }

    fn release_owned(&self, key: &str, owner: &str) {
        let mut guard = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        if matches!(guard.0.get(key), Some(KeyState::InProgress { owner: o, .. }) if o == owner) {
            guard.0.remove(key);
        }
    }
}

fn expired(state: &KeyState, now: Instant) -> bool {
    match state {
        KeyState::InProgress { until, .. } | KeyState::Completed { until } => *until <= now,
    }
}

impl IdempotencyStore for InMemoryIdempotencyStore {
    fn try_begin<'a>(
        &'a self,
        key: &'a str,
        owner: &'a str,
        lease: Duration,
    ) -> BoxFuture<'a, Result<Claim, IdempotencyError>> {
        let claim = self.try_begin_at(key, owner, lease, Instant::now());
        Box::pin(std::future::ready(Ok(claim)))
    }

    fn extend<'a>(
        &'a self,
        key: &'a str,
        owner: &'a str,
        lease: Duration,
    ) -> BoxFuture<'a, Result<bool, IdempotencyError>> {
        let held = self.extend_at(key, owner, lease, Instant::now());
        Box::pin(std::future::ready(Ok(held)))
    }

    fn complete<'a>(
        &'a self,
        key: &'a str,
        _owner: &'a str,
        retention: Duration,
    ) -> BoxFuture<'a, Result<(), IdempotencyError>> {
        let until = Instant::now() + retention;
        self.set(key, Some(KeyState::Completed { until }));
        Box::pin(std::future::ready(Ok(())))
    }

    fn release<'a>(
        &'a self,
        key: &'a str,
        owner: &'a str,
    ) -> BoxFuture<'a, Result<(), IdempotencyError>> {
        self.release_owned(key, owner);
        Box::pin(std::future::ready(Ok(())))
    }
}

/// Idempotency settings for a worker: the store, where the key comes from, and the lease and
/// retention times.
///
/// ```
/// use std::sync::Arc;
/// use redrive_worker::{Idempotency, InMemoryIdempotencyStore, KeySource};
///
/// let idempotency = Idempotency::new(Arc::new(InMemoryIdempotencyStore::new()))
///     .key(KeySource::json_field("order_id"));
/// # let _ = idempotency;
/// ```
#[derive(Clone)]
pub struct Idempotency {
    pub(crate) store: Arc<dyn IdempotencyStore>,
    pub(crate) key: KeySource,
    pub(crate) lease: Duration,
    pub(crate) retention: Duration,
}

impl Idempotency {
    /// Uses `store`, keyed by the original message id (stable across the worker's deferral
    /// re-sends; use a body key to also catch producer duplicates and redrives that change
    /// the id). Lease 15 min, retention 1 h.
    pub fn new(store: Arc<dyn IdempotencyStore>) -> Idempotency {
        Idempotency {
            store,
            key: KeySource::OriginalMessageId,
            lease: Duration::from_secs(900),
            retention: Duration::from_secs(3600),
        }
    }

    /// Where the key comes from. Messages without a key are handled without the guard.
    pub fn key(self, key: KeySource) -> Idempotency {
        Idempotency { key, ..self }
    }

    /// How long an in-progress claim lasts if its consumer dies (default 15 min). The worker
    /// renews it every third of the lease while the handler runs, so it bounds how long a
    /// crashed consumer's key stays blocked, not how long a handler may run; keep it above
    /// [`WorkerBuilder::max_admission_wait`](crate::WorkerBuilder::max_admission_wait) plus a
    /// few store round trips.
    pub fn lease(self, lease: Duration) -> Idempotency {
        Idempotency { lease, ..self }
    }

    /// How long a completed key suppresses duplicates (default 1 h).
    pub fn retention(self, retention: Duration) -> Idempotency {
        Idempotency { retention, ..self }
    }
}

impl std::fmt::Debug for Idempotency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Idempotency")
            .field("key", &self.key)
            .field("lease", &self.lease)
            .field("retention", &self.retention)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_and_expiry() {
        let s = InMemoryIdempotencyStore::new();
        let t0 = Instant::now();
        let lease = Duration::from_secs(10);
        assert_eq!(s.try_begin_at("k", "a", lease, t0), Claim::Acquired);
        assert_eq!(s.try_begin_at("k", "b", lease, t0), Claim::InProgress);
        // A lease that ran out is taken over.
        assert_eq!(s.try_begin_at("k", "b", lease, t0 + lease), Claim::Acquired);
        s.set(
            "k",
            Some(KeyState::Completed {
                until: t0 + Duration::from_secs(100),
            }),
        );
        assert_eq!(
            s.try_begin_at("k", "c", lease, t0 + Duration::from_secs(50)),
            Claim::Completed
        );
        assert_eq!(
            s.try_begin_at("k", "c", lease, t0 + Duration::from_secs(100)),
            Claim::Acquired
        );
        s.set("k", None);
        assert_eq!(s.try_begin_at("k", "a", lease, t0), Claim::Acquired);
        assert_eq!(s.try_begin_at("other", "a", lease, t0), Claim::Acquired);
    }

    #[test]
    fn only_the_owner_extends_or_releases() {
        let s = InMemoryIdempotencyStore::new();
        let t0 = Instant::now();
        let lease = Duration::from_secs(10);
        assert_eq!(s.try_begin_at("k", "a", lease, t0), Claim::Acquired);
        // Renewed by its owner: still held after the first lease would have run out.
        assert!(s.extend_at("k", "a", lease, t0 + Duration::from_secs(9)));
        assert!(!s.extend_at("k", "b", lease, t0 + Duration::from_secs(9)));
        assert_eq!(
            s.try_begin_at("k", "b", lease, t0 + Duration::from_secs(15)),
            Claim::InProgress
        );
        // Taken over after the lease ran out: the old owner can neither renew nor release.
        assert_eq!(
            s.try_begin_at("k", "b", lease, t0 + Duration::from_secs(19)),
            Claim::Acquired
        );
        assert!(!s.extend_at("k", "a", lease, t0 + Duration::from_secs(20)));
        s.release_owned("k", "a");
        assert_eq!(
            s.try_begin_at("k", "c", lease, t0 + Duration::from_secs(20)),
            Claim::InProgress
        );
        s.release_owned("k", "b");
        assert_eq!(
            s.try_begin_at("k", "c", lease, t0 + Duration::from_secs(20)),
            Claim::Acquired
        );
    }
}
