//! # redrive-worker
//!
//! An SQS consumer library: an async handler with bounded concurrency, long polling, batched
//! deletes and graceful shutdown, whose [`Outcome`] decides what happens to each message —
//! exponential backoff with jitter for transient failures, an immediate dead letter with an
//! error [`Envelope`] for permanent failures and invalid input, and, for rate limits, a tenant
//! pause and a deferral that does **not** spend the retry budget. It speaks to any SQS
//! implementation through a caller-supplied [`aws_sdk_sqs::Client`].
//!
//! ## Quick start
//!
//! ```no_run
//! use std::time::Duration;
//! use redrive_worker::{handler_fn, Message, Outcome, Worker};
//!
//! # async fn demo(client: aws_sdk_sqs::Client) -> Result<(), redrive_worker::WorkerError> {
//! let worker = Worker::builder(client, "http://127.0.0.1:9324/000000000000/orders")
//!     .concurrency(8)
//!     .build(handler_fn(|message: Message| async move {
//!         match message.json::<serde_json::Value>() {
//!             Err(e) => Outcome::invalid(e.to_string()),
//!             Ok(_order) => Outcome::Done, // call your API here
//!         }
//!     }))?;
//! let stats = worker.run(async { tokio::signal::ctrl_c().await.ok(); }).await?;
//! println!("{stats:?}");
//! # Ok(()) }
//! ```
//!
//! The queue needs a dead-letter queue: either a `RedrivePolicy` on the queue (found when the
//! worker starts) or [`WorkerBuilder::dead_letter_queue`].
//!
//! ## Common setups
//!
//! **Calling a rate-limited API per tenant** — one limiter shared by every worker, the tenant
//! read from the body, 429s reported as [`Outcome::RateLimited`]:
//!
//! ```no_run
//! use std::sync::Arc;
//! use std::time::Duration;
//! use redrive_worker::{handler_fn, KeySource, Message, Outcome, Quota, TenantRateLimiter, Worker};
//!
//! # async fn demo(client: aws_sdk_sqs::Client, url: String) -> Result<(), redrive_worker::WorkerError> {
//! let limiter = Arc::new(TenantRateLimiter::new(Quota::per_second(10)));
//! let worker = Worker::builder(client, url)
//!     .tenant_key(KeySource::json_field("mall_id"))
//!     .limiter(limiter.clone())
//!     .build(handler_fn(|message: Message| async move {
//!         let status = 429; // call the downstream API for message.tenant()
//!         match status {
//!             200 => Outcome::Done,
//!             429 => Outcome::rate_limited(Some(Duration::from_secs(2))),
//!             404 => Outcome::permanent("http_404", "member not found"),
//!             _ => Outcome::transient(format!("http_{status}"), "downstream error"),
//!         }
//!     }))?;
//! # let _ = worker; Ok(()) }
//! ```
//!
//! **Several processes sharing one quota** (Lambda, several pods): cargo feature `redis` or
//! `postgres`, and a limiter held in the store, selected by URL:
//!
//! ```ignore
//! let config = SharedLimiterConfig::new(Quota::per_second(10))
//!     .with_fallback(StoreFallback::FailClosed { retry_after: Duration::from_secs(5) });
//! let limiter = Arc::new(limiter_from_url("redis://127.0.0.1:6379/", config).await?);
//! ```
//!
//! Every decision is atomic in the store on the store's clock (a Lua script on Redis; one
//! `INSERT … ON CONFLICT … DO UPDATE` on PostgreSQL); a 429 seen by one process pauses the
//! tenant for all. When the store is unreachable, [`StoreFallback`] decides: defer the message
//! (fail closed, the default) or admit it (fail open).
//!
//! **Idempotency across processes**: the same features add `idempotency_from_url` (Redis
//! `SET NX PX` claims, or a PostgreSQL `INSERT … ON CONFLICT` row, each with a lease that the
//! worker renews while the handler runs, so a killed worker's claims expire):
//!
//! ```ignore
//! let store = idempotency_from_url("postgres://app@db/app", SharedIdempotencyConfig::new()).await?;
//! let guard = Idempotency::new(Arc::new(store)).key(KeySource::json_field("order_id"))
//!     .lease(Duration::from_secs(30));
//! ```
//!
//! **AWS Lambda** (cargo feature `lambda`): `WorkerBuilder::build_lambda` turns the same
//! settings and handler into an SQS event handler answering with `batchItemFailures`
//! (`ReportBatchItemFailures`): transient and rate-limited records reported (their visibility set
//! to the backoff), permanent and invalid ones dead-lettered with the envelope and not reported.
//!
//! **Validation before the handler** (bad payloads go to the DLQ without a handler call):
//!
//! ```no_run
//! # use redrive_worker::*;
//! # fn demo(b: WorkerBuilder) -> WorkerBuilder {
//! b.validator(|m: &Message| {
//!     m.json::<serde_json::Value>()
//!         .map(|_| ())
//!         .map_err(|e| Failure::new("bad_json", e.to_string()))
//! })
//! # }
//! ```
//!
//! **Idempotent side effects** (a duplicate delivery or a redrive of a completed message is
//! deleted without calling the handler):
//!
//! ```no_run
//! # use std::sync::Arc;
//! # use redrive_worker::*;
//! # fn demo(b: WorkerBuilder) -> WorkerBuilder {
//! b.idempotency(Idempotency::new(Arc::new(InMemoryIdempotencyStore::new()))
//!     .key(KeySource::json_field("order_id")))
//! # }
//! ```
//!
//! **FIFO queues**: nothing to configure. A URL ending in `.fifo` makes the worker handle each
//! message group sequentially; when a message goes back to the queue (retry, rate limit), the
//! rest of its group received with it goes back too, so nothing overtakes it.
//!
//! **Long handlers**: set [`WorkerBuilder::visibility_timeout`]; the heartbeat extends it
//! every half timeout while the handler runs (within SQS's 12-hour cap).
//!
//! **Several workers in one process** (e.g. one per queue, or N consumers of one queue):
//! build each with the same `Arc` limiter and idempotency store, run them with
//! `tokio::join!`, and pass each a clone of the same shutdown signal.
//!
//! ## Retries and deferrals
//!
//! - **Transient**: `ChangeMessageVisibility` to [`Backoff::delay`] of the attempt number
//!   (full jitter), clamped so the message's total invisibility stays within 12 h. When the
//!   attempt reaches [`WorkerBuilder::max_attempts`], or the receive count reaches the queue's
//!   `maxReceiveCount`, the worker dead-letters it itself (reason `max_attempts` /
//!   `max_receives`) so the dead letter carries an envelope.
//! - **Rate limited**: the tenant is paused in the limiter and the message is deferred by a
//!   **delayed re-send** (standard queues): a copy with `DelaySeconds` (≤ 900 s) and the
//!   envelope (`reason: "deferred"`, `attempts`, `throttles`, `original_message_id`) is sent,
//!   then the original is deleted. Cost: two extra API calls, a new `MessageId` (the envelope
//!   keeps the original), SQS's receive count starts again at 0 (so `maxReceiveCount` stays
//!   reserved for real failures; the envelope carries the attempt count), and a short window
//!   in which both copies exist (use idempotency). FIFO queues defer with
//!   `ChangeMessageVisibility` instead (order kept, but the receive counts).
//! - **Admission**: before the handler runs, the message's tenant must get a permit from the
//!   [`TenantLimiter`]; a wait up to [`WorkerBuilder::max_admission_wait`] is spent holding the
//!   slot, a longer one defers the message the same way, without counting a failure.
//!
//! ## Observability
//!
//! Metrics go through the [`metrics`] facade (names in [`metrics_names`]); the library installs
//! no recorder. Each message is handled inside a `redrive_worker.message` tracing span with
//! `queue`, `message_id`, `attempt` and `tenant`. Bodies are never logged.

#![warn(missing_docs)]

mod backoff;
mod builder;
mod envelope;
mod error;
mod idempotency;
#[cfg(feature = "lambda")]
mod lambda;
mod limiter;
mod message;
pub mod metrics_names;
mod outcome;
mod shared_idempotency;
mod shared_limiter;
mod sqs;
mod stats;
mod worker;

pub use backoff::{Backoff, Jitter, MAX_VISIBILITY};
pub use builder::{FnHandler, Handler, WorkerBuilder, handler_fn};
pub use envelope::{
    ENVELOPE_ATTRIBUTE, ENVELOPE_VERSION, Envelope, EnvelopeError, MAX_ERROR_CLASS_BYTES,
    MAX_ERROR_MESSAGE_BYTES, Reason,
};
pub use error::WorkerError;
pub use idempotency::{
    Claim, Idempotency, IdempotencyError, IdempotencyStore, InMemoryIdempotencyStore,
};
#[cfg(feature = "lambda")]
pub use lambda::{BatchItemFailure, LambdaHandler, SqsBatchResponse, SqsEvent};
/// The Lambda runtime the adapter runs on (cargo feature `lambda`), re-exported for its
/// `Error` type and for custom runtime setups.
#[cfg(feature = "lambda")]
pub use lambda_runtime;
pub use limiter::{Admission, BoxFuture, Quota, TenantLimiter, TenantRateLimiter};
pub use message::{KeySource, Message};
pub use outcome::{Failure, Outcome};
#[cfg(feature = "postgres")]
pub use shared_idempotency::PostgresIdempotencyStore;
#[cfg(feature = "redis")]
pub use shared_idempotency::RedisIdempotencyStore;
pub use shared_idempotency::{IdempotencyStoreError, SharedIdempotencyConfig};
#[cfg(any(feature = "redis", feature = "postgres"))]
pub use shared_idempotency::{SharedIdempotencyStore, idempotency_from_url};
#[cfg(feature = "postgres")]
pub use shared_limiter::PostgresTenantLimiter;
#[cfg(feature = "redis")]
pub use shared_limiter::RedisTenantLimiter;
pub use shared_limiter::{LimiterStoreError, SharedLimiterConfig, StoreFallback};
#[cfg(any(feature = "redis", feature = "postgres"))]
pub use shared_limiter::{SharedTenantLimiter, limiter_from_url};
pub use stats::{StatsHandle, WorkerStats};
pub use worker::Worker;
