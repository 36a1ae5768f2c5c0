//! `WorkerBuilder`: every setting of a worker, with defaults and validation.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::backoff::{Backoff, MAX_VISIBILITY};
use crate::error::WorkerError;
use crate::idempotency::Idempotency;
use crate::limiter::{BoxFuture, TenantLimiter, TenantRateLimiter};
use crate::message::{KeySource, Message};
use crate::outcome::{Failure, Outcome};
use crate::worker::Worker;

/// Handles one message and says what happened. Implement it on your own type, or wrap an
/// async closure with [`handler_fn`].
///
/// ```
/// use redrive_worker::{Handler, Message, Outcome};
///
/// struct Points;
///
/// impl Handler for Points {
///     async fn handle(&self, message: &Message) -> Outcome {
///         match message.json::<serde_json::Value>() {
///             Ok(_) => Outcome::Done,
///             Err(e) => Outcome::invalid(e.to_string()),
///         }
///     }
/// }
/// ```
pub trait Handler: Send + Sync + 'static {
    /// Handles `message`. The message stays invisible (heartbeat) until this returns; a panic
    /// counts as a transient failure.
    fn handle(&self, message: &Message) -> impl Future<Output = Outcome> + Send;
}

/// A [`Handler`] made from an async closure; see [`handler_fn`].
#[derive(Debug, Clone)]
pub struct FnHandler<F>(F);

/// Wraps `f(message) -> impl Future<Output = Outcome>` as a [`Handler`].
///
/// ```
/// use redrive_worker::{handler_fn, Message, Outcome};
/// let handler = handler_fn(|message: Message| async move {
///     if message.body().is_empty() { Outcome::invalid("empty body") } else { Outcome::Done }
/// });
/// # let _ = handler;
/// ```
pub fn handler_fn<F, Fut>(f: F) -> FnHandler<F>
where
    F: Fn(Message) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Outcome> + Send + 'static,
{
    FnHandler(f)
}

impl<F, Fut> Handler for FnHandler<F>
where
    F: Fn(Message) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Outcome> + Send + 'static,
{
    fn handle(&self, message: &Message) -> impl Future<Output = Outcome> + Send {
        (self.0)(message.clone())
    }
}

/// The handler with its type erased, so `Worker` is not generic.
pub(crate) trait ErasedHandler: Send + Sync {
    fn call(&self, message: Message) -> BoxFuture<'static, Outcome>;
}

struct HandlerBox<H>(Arc<H>);

impl<H: Handler> ErasedHandler for HandlerBox<H> {
    fn call(&self, message: Message) -> BoxFuture<'static, Outcome> {
        let handler = Arc::clone(&self.0);
        Box::pin(async move { handler.handle(&message).await })
    }
}

pub(crate) fn erase<H: Handler>(handler: H) -> Arc<dyn ErasedHandler> {
    Arc::new(HandlerBox(Arc::new(handler)))
}

pub(crate) type Validator = dyn Fn(&Message) -> Result<(), Failure> + Send + Sync;

/// Everything a running worker needs besides the client and the handler.
#[derive(Clone)]
pub(crate) struct Settings {
    pub concurrency: usize,
    pub wait_time: Duration,
    pub visibility_timeout: Duration,
    pub heartbeat_interval: Option<Duration>,
    pub backoff: Backoff,
    pub max_attempts: u32,
    pub dead_letter_queue_url: Option<String>,
    pub validator: Option<Arc<Validator>>,
    pub tenant_key: Option<KeySource>,
    pub limiter: Arc<dyn TenantLimiter>,
    pub max_admission_wait: Duration,
    pub rate_limit_pause: Duration,
    pub idempotency: Option<Idempotency>,
    pub delete_flush_interval: Duration,
    pub worker_id: String,
    pub fifo: Option<bool>,
}

/// Configures a [`Worker`]. Start with [`Worker::builder`]; every setting has a default.
///
/// ```no_run
/// # async fn demo(client: aws_sdk_sqs::Client) -> Result<(), redrive_worker::WorkerError> {
/// use std::time::Duration;
/// use redrive_worker::{handler_fn, Backoff, Message, Outcome, Worker};
///
/// let worker = Worker::builder(client, "http://127.0.0.1:9324/000000000000/orders")
///     .concurrency(16)
///     .visibility_timeout(Duration::from_secs(60))
///     .backoff(Backoff::exponential(Duration::from_secs(5), Duration::from_secs(600)))
///     .max_attempts(8)
///     .build(handler_fn(|_m: Message| async { Outcome::Done }))?;
/// let stats = worker.run(async { tokio::signal::ctrl_c().await.ok(); }).await?;
/// println!("completed {}", stats.completed);
/// # Ok(()) }
/// ```
pub struct WorkerBuilder {
    /// `None` only for a Lambda adapter built without SQS access.
    pub(crate) client: Option<aws_sdk_sqs::Client>,
    pub(crate) queue_url: String,
    pub(crate) settings: Settings,
}

impl WorkerBuilder {
    pub(crate) fn new(client: Option<aws_sdk_sqs::Client>, queue_url: String) -> WorkerBuilder {
        WorkerBuilder {
            client,
            queue_url,
            settings: Settings {
                concurrency: 10,
                wait_time: Duration::from_secs(20),
                visibility_timeout: Duration::from_secs(30),
                heartbeat_interval: None,
                backoff: Backoff::default(),
                max_attempts: 10,
                dead_letter_queue_url: None,
                validator: None,
                tenant_key: None,
                limiter: Arc::new(TenantRateLimiter::unlimited()),
                max_admission_wait: Duration::from_secs(2),
                rate_limit_pause: Duration::from_secs(5),
                idempotency: None,
                delete_flush_interval: Duration::from_millis(25),
                worker_id: format!("worker-{}", uuid::Uuid::new_v4().simple()),
                fifo: None,
            },
        }
    }

    /// Maximum messages (on FIFO queues: message groups) handled at once; also bounds how
    /// many messages are received, so nothing waits unstarted while invisible. Default 10.
    pub fn concurrency(mut self, concurrency: usize) -> WorkerBuilder {
        self.settings.concurrency = concurrency;
        self
    }

    /// Long-poll wait per `ReceiveMessage` (0..=20 s, default 20 s). Shutdown waits for an
    /// in-flight poll so that what it returns can be released rather than left invisible.
    pub fn wait_time(mut self, wait_time: Duration) -> WorkerBuilder {
        self.settings.wait_time = wait_time;
        self
    }

    /// Visibility timeout requested on receive and renewed by the heartbeat (whole seconds,
    /// 1 s..=12 h; default 30 s).
    pub fn visibility_timeout(mut self, timeout: Duration) -> WorkerBuilder {
        self.settings.visibility_timeout = timeout;
        self
    }

    /// How often the heartbeat extends the visibility of messages still being handled
    /// (default: half the visibility timeout). Must be shorter than the visibility timeout.
    pub fn heartbeat_interval(mut self, interval: Duration) -> WorkerBuilder {
        self.settings.heartbeat_interval = Some(interval);
        self
    }

    /// Backoff for transient failures (default: base 2 s, cap 15 min, full jitter).
    pub fn backoff(mut self, backoff: Backoff) -> WorkerBuilder {
        self.settings.backoff = backoff;
        self
    }

    /// Failed attempts (across deferral re-sends) before a transient failure is dead-lettered
    /// with reason `max_attempts` (default 10). The queue's `maxReceiveCount`, if lower, also
    /// applies (reason `max_receives`).
    pub fn max_attempts(mut self, max_attempts: u32) -> WorkerBuilder {
        self.settings.max_attempts = max_attempts;
        self
    }

    /// The dead-letter queue URL. Default: the `deadLetterTargetArn` of the queue's
    /// `RedrivePolicy`, looked up when the worker starts.
    pub fn dead_letter_queue(mut self, url: impl Into<String>) -> WorkerBuilder {
        self.settings.dead_letter_queue_url = Some(url.into());
        self
    }

    /// A check that runs before admission and before the handler; an `Err` dead-letters the
    /// message at once with reason `validation`, without calling the handler.
    pub fn validator(
        mut self,
        validator: impl Fn(&Message) -> Result<(), Failure> + Send + Sync + 'static,
    ) -> WorkerBuilder {
        self.settings.validator = Some(Arc::new(validator));
        self
    }

    /// Where a message's tenant key comes from (e.g. [`KeySource::GroupId`] or
    /// [`KeySource::json_field`]). The limiter and the 429 pause work per tenant. Without
    /// it all messages share one tenant; so do messages whose key is missing (tenant `""`).
    pub fn tenant_key(mut self, source: KeySource) -> WorkerBuilder {
        self.settings.tenant_key = Some(source);
        self
    }

    /// The admission limiter (default: unlimited, but pausing a tenant after a 429). Pass
    /// the same `Arc` to every worker that calls the same downstream.
    pub fn limiter(mut self, limiter: Arc<dyn TenantLimiter>) -> WorkerBuilder {
        self.settings.limiter = limiter;
        self
    }

    /// Longest time a received message may wait for its tenant's permit while holding a
    /// concurrency slot (default 2 s); beyond that it is deferred without counting a failure.
    pub fn max_admission_wait(mut self, wait: Duration) -> WorkerBuilder {
        self.settings.max_admission_wait = wait;
        self
    }

    /// How long a tenant is paused after [`Outcome::RateLimited`] without a `retry_after`
    /// (default 5 s).
    pub fn rate_limit_pause(mut self, pause: Duration) -> WorkerBuilder {
        self.settings.rate_limit_pause = pause;
        self
    }

    /// Enables the idempotency guard.
    pub fn idempotency(mut self, idempotency: Idempotency) -> WorkerBuilder {
        self.settings.idempotency = Some(idempotency);
        self
    }

    /// How long a delete waits for others to fill a `DeleteMessageBatch` (default 25 ms).
    pub fn delete_flush_interval(mut self, interval: Duration) -> WorkerBuilder {
        self.settings.delete_flush_interval = interval;
        self
    }

    /// An id recorded in envelopes and spans (default `worker-<uuid>`).
    pub fn worker_id(mut self, id: impl Into<String>) -> WorkerBuilder {
        self.settings.worker_id = id.into();
        self
    }

    /// Forces FIFO handling on or off (default: on when the URL ends in `.fifo`).
    pub fn fifo(mut self, fifo: bool) -> WorkerBuilder {
        self.settings.fifo = Some(fifo);
        self
    }

    /// Validates the settings and builds the worker around `handler`.
    pub fn build<H: Handler>(self, handler: H) -> Result<Worker, WorkerError> {
        let s = &self.settings;
        let bad = |msg: &str| Err(WorkerError::Config(msg.to_string()));
        if s.concurrency == 0 {
            return bad("concurrency must be at least 1");
        }
        if s.wait_time > Duration::from_secs(20) {
            return bad("wait_time must be at most 20 s");
        }
        if s.visibility_timeout < Duration::from_secs(1) || s.visibility_timeout > MAX_VISIBILITY {
            return bad("visibility_timeout must be between 1 s and 12 h");
        }
        let heartbeat = s.heartbeat_interval.unwrap_or(s.visibility_timeout / 2);
        if heartbeat.is_zero() || heartbeat >= s.visibility_timeout {
            return bad("heartbeat_interval must be positive and shorter than visibility_timeout");
        }
        if s.max_attempts == 0 {
            return bad("max_attempts must be at least 1");
        }
        if self.queue_url.is_empty() {
            return bad("queue_url is empty");
        }
        let Some(client) = self.client.clone() else {
            return bad("no SQS client: use Worker::builder(client, queue_url)");
        };
        Ok(Worker::new(client, self, erase(handler)))
    }
}

impl std::fmt::Debug for WorkerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerBuilder")
            .field("queue_url", &self.queue_url)
            .field("concurrency", &self.settings.concurrency)
            .field("worker_id", &self.settings.worker_id)
            .finish_non_exhaustive()
    }
}
