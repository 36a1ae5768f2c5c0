//! Per-worker counters, returned by [`Worker::run`](crate::Worker::run) and readable while it
//! runs through [`StatsHandle`].

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// A snapshot of what a worker did. Every received message ends in exactly one of
/// `completed`, `retried`, `dead_lettered`, `deferred`, `duplicates`, `released` (or, rarely,
/// is left to its visibility timeout when an SQS call failed: `sqs_errors`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WorkerStats {
    /// Messages received.
    pub received: u64,
    /// Handler runs started.
    pub handled: u64,
    /// Messages handled successfully and deleted.
    pub completed: u64,
    /// Transient failures given back to the queue with a backoff.
    pub retried: u64,
    /// Messages sent to the dead-letter queue by the worker.
    pub dead_lettered: u64,
    /// Messages deferred without counting a failure (rate limits, admission waits, a key in
    /// progress elsewhere).
    pub deferred: u64,
    /// Rate-limited outcomes reported by the handler (HTTP 429s that still happened).
    pub rate_limited: u64,
    /// Duplicates skipped by the idempotency guard.
    pub duplicates: u64,
    /// Messages made visible again unprocessed at shutdown (or behind a failed FIFO message).
    pub released: u64,
    /// Handler panics (treated as transient failures).
    pub panics: u64,
    /// SQS calls that failed while handling messages.
    pub sqs_errors: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub received: AtomicU64,
    pub handled: AtomicU64,
    pub completed: AtomicU64,
    pub retried: AtomicU64,
    pub dead_lettered: AtomicU64,
    pub deferred: AtomicU64,
    pub rate_limited: AtomicU64,
    pub duplicates: AtomicU64,
    pub released: AtomicU64,
    pub panics: AtomicU64,
    pub sqs_errors: AtomicU64,
}

impl Counters {
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> WorkerStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        WorkerStats {
            received: get(&self.received),
            handled: get(&self.handled),
            completed: get(&self.completed),
            retried: get(&self.retried),
            dead_lettered: get(&self.dead_lettered),
            deferred: get(&self.deferred),
            rate_limited: get(&self.rate_limited),
            duplicates: get(&self.duplicates),
            released: get(&self.released),
            panics: get(&self.panics),
            sqs_errors: get(&self.sqs_errors),
        }
    }
}

/// Reads a worker's counters while it runs (from [`Worker::stats`](crate::Worker::stats)).
#[derive(Debug, Clone)]
pub struct StatsHandle(pub(crate) Arc<Counters>);

impl StatsHandle {
    /// The counters now.
    pub fn snapshot(&self) -> WorkerStats {
        self.0.snapshot()
    }
}
