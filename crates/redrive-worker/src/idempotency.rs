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

/// Storage for idempotency keys. States: absent → in-progress (with a lease) → completed
/// (kept for a retention period) → absent. An in-progress key whose lease ran out counts as
/// absent (its consumer crashed). Implement this over a shared database (DynamoDB conditional
/// writes, Redis `SET NX PX`, an SQL unique key) to deduplicate across processes.
pub trait IdempotencyStore: Send + Sync + 'static {
    /// Atomically claims `key` for `lease` unless it is in progress or completed.
    fn try_begin<'a>(
        &'a self,
        key: &'a str,
        lease: Duration,
    ) -> BoxFuture<'a, Result<Claim, IdempotencyError>>;

    /// Marks `key` completed for `retention`.
    fn complete<'a>(
        &'a self,
        key: &'a str,
        retention: Duration,
    ) -> BoxFuture<'a, Result<(), IdempotencyError>>;

    /// Forgets an in-progress `key` (the handler failed; a retry must run it again).
    fn release<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), IdempotencyError>>;
}

#[derive(Debug, Clone, Copy)]
enum KeyState {
    InProgress { until: Instant },
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
    pub fn try_begin_at(&self, key: &str, lease: Duration, now: Instant) -> Claim {
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
                keys.insert(key.to_string(), KeyState::InProgress { until: now + lease });
                Claim::Acquired
            }
        }
    }

    fn set(&self, key: &str, state: Option<KeyState>) {
        let mut guard = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        match state {
            Some(s) => guard.0.insert(key.to_string(), s),
            None => guard.0.remove(key),
        };
    }
}

fn expired(state: &KeyState, now: Instant) -> bool {
    match state {
        KeyState::InProgress { until } | KeyState::Completed { until } => *until <= now,
    }
}

impl IdempotencyStore for InMemoryIdempotencyStore {
    fn try_begin<'a>(
        &'a self,
        key: &'a str,
        lease: Duration,
    ) -> BoxFuture<'a, Result<Claim, IdempotencyError>> {
        Box::pin(std::future::ready(Ok(self.try_begin_at(
            key,
            lease,
            Instant::now(),
        ))))
    }

    fn complete<'a>(
        &'a self,
        key: &'a str,
        retention: Duration,
    ) -> BoxFuture<'a, Result<(), IdempotencyError>> {
        let until = Instant::now() + retention;
        self.set(key, Some(KeyState::Completed { until }));
        Box::pin(std::future::ready(Ok(())))
    }

    fn release<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), IdempotencyError>> {
        self.set(key, None);
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

    /// How long an in-progress claim lasts if its consumer dies (default 15 min); keep it
    /// longer than the longest handler run.
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
        assert_eq!(s.try_begin_at("k", lease, t0), Claim::Acquired);
        assert_eq!(s.try_begin_at("k", lease, t0), Claim::InProgress);
        // A lease that ran out is taken over.
        assert_eq!(s.try_begin_at("k", lease, t0 + lease), Claim::Acquired);
        s.set(
            "k",
            Some(KeyState::Completed {
                until: t0 + Duration::from_secs(100),
            }),
        );
        assert_eq!(
            s.try_begin_at("k", lease, t0 + Duration::from_secs(50)),
            Claim::Completed
        );
        assert_eq!(
            s.try_begin_at("k", lease, t0 + Duration::from_secs(100)),
            Claim::Acquired
        );
        s.set("k", None);
        assert_eq!(s.try_begin_at("k", lease, t0), Claim::Acquired);
        assert_eq!(s.try_begin_at("other", lease, t0), Claim::Acquired);
    }
}
