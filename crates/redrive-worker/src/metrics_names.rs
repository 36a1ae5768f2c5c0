//! Metric names emitted through the [`metrics`] facade. The library never installs a
//! recorder: install one (e.g. `metrics-exporter-prometheus`) in your binary to collect them.
//! Every metric carries a `queue` label (the queue name).

/// Counter: messages received.
pub const RECEIVED: &str = "redrive_worker_received_total";
/// Counter: handler outcomes, label `outcome` = `done`, `transient`, `permanent`, `invalid`,
/// `rate_limited`, `panic`.
pub const OUTCOMES: &str = "redrive_worker_outcomes_total";
/// Histogram: handler run time in seconds, label `outcome`.
pub const HANDLER_SECONDS: &str = "redrive_worker_handler_seconds";
/// Counter: messages dead-lettered by the worker, label `reason` (the envelope reason).
pub const DEAD_LETTERED: &str = "redrive_worker_dead_lettered_total";
/// Counter: messages deferred without counting a failure, label `cause` = `rate_limited`,
/// `admission`, `in_progress`.
pub const DEFERRED: &str = "redrive_worker_deferred_total";
/// Counter: transient failures scheduled for a retry.
pub const RETRIED: &str = "redrive_worker_retried_total";
/// Histogram: seconds a message waited for its tenant's permit.
pub const ADMISSION_WAIT_SECONDS: &str = "redrive_worker_admission_wait_seconds";
/// Counter: duplicates skipped by the idempotency guard.
pub const DUPLICATES: &str = "redrive_worker_duplicates_total";
/// Counter: messages released unprocessed (shutdown, or behind a failed FIFO message).
pub const RELEASED: &str = "redrive_worker_released_total";
/// Counter: messages deleted.
pub const DELETED: &str = "redrive_worker_deleted_total";
/// Counter: visibility extensions made by the heartbeat.
pub const HEARTBEATS: &str = "redrive_worker_heartbeats_total";
/// Gauge: handlers running now.
pub const IN_FLIGHT: &str = "redrive_worker_in_flight";
/// Counter: failed SQS calls, label `operation`.
pub const SQS_ERRORS: &str = "redrive_worker_sqs_errors_total";
