//! The AWS Lambda adapter (cargo feature `lambda`): the worker's handler and outcome
//! classification as an SQS event handler that returns a partial batch response
//! (`ReportBatchItemFailures`).
//!
//! What each outcome becomes in a Lambda invocation:
//!
//! | Handler returns | With an SQS client | Reported in `batchItemFailures`? |
//! |---|---|---|
//! | `Done` | — (Lambda deletes the message) | no |
//! | `Transient` | `ChangeMessageVisibility(backoff)`; at the budget (`max_attempts`, `maxReceiveCount`) dead-lettered instead | yes (no once dead-lettered) |
//! | `RateLimited` | tenant paused in the limiter, `ChangeMessageVisibility(retry_after + jitter)` | yes |
//! | `Permanent` / `Invalid` / validator `Err` | `SendMessage` to the DLQ with the envelope | no (yes if the DLQ send failed, or without a client) |
//! | admission deferral, key in progress elsewhere | `ChangeMessageVisibility(wait)` | yes |
//! | duplicate of a completed key | — | no |

use std::sync::Arc;
use std::time::{Duration, Instant};

pub use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use aws_sdk_sqs::Client;
use tokio::sync::{OnceCell, Semaphore};

use crate::backoff::{MAX_VISIBILITY, clamp_to_visibility_cap, random_below, whole_seconds_up};
use crate::builder::{ErasedHandler, Handler, Settings, WorkerBuilder, erase};
use crate::envelope::Reason;
use crate::error::WorkerError;
use crate::idempotency::Claim;
use crate::limiter::Admission;
use crate::message::Message;
use crate::metrics_names as m;
use crate::outcome::{Failure, Outcome};
use crate::stats::{Counters, StatsHandle};
use crate::worker::{
    claim_owner, dead_letter_envelope, panic_message, queue_name, reason_label, renewing_lease,
    resolve_dead_letter_queue, with_envelope,
};

/// Whether Lambda should see a record as failed (listed in `batchItemFailures`, so it stays in
/// the queue) or as done (Lambda deletes it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Succeeded,
    Failed,
}

/// A worker's handler run as an AWS Lambda SQS event handler. Build it with
/// [`WorkerBuilder::build_lambda`] — `Worker::builder(client, queue_url)` for full behaviour
/// (visibility backoff, dead letters with the envelope), or [`LambdaHandler::builder`] without
/// SQS access (every failure is then reported and left to the queue's redrive policy) — and
/// call [`run`](LambdaHandler::run) from `main`, or [`handle`](LambdaHandler::handle) directly.
///
/// The event source mapping must have `FunctionResponseTypes: ["ReportBatchItemFailures"]`;
/// without it Lambda ignores the response and retries the whole batch on any error.
///
/// ```no_run
/// use redrive_worker::{handler_fn, LambdaHandler, Message, Outcome, Worker};
///
/// # async fn demo(client: aws_sdk_sqs::Client) -> Result<(), redrive_worker::lambda_runtime::Error> {
/// let handler = Worker::builder(client, "https://sqs.us-east-2.amazonaws.com/123456789012/orders")
///     .build_lambda(handler_fn(|message: Message| async move {
///         if message.body().is_empty() { Outcome::invalid("empty body") } else { Outcome::Done }
///     }))?;
/// handler.run().await
/// # }
/// ```
#[derive(Clone)]
pub struct LambdaHandler {
    inner: Arc<Inner>,
}

struct Inner {
    client: Option<Client>,
    queue_url: String,
    settings: Settings,
    handler: Arc<dyn ErasedHandler>,
    counters: Arc<Counters>,
    /// The DLQ URL and `maxReceiveCount`, read from the queue on the first invocation.
    resolved: OnceCell<(String, Option<u32>)>,
}

impl std::fmt::Debug for LambdaHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LambdaHandler")
            .field("queue_url", &self.inner.queue_url)
            .field("sqs_client", &self.inner.client.is_some())
            .finish_non_exhaustive()
    }
}

impl WorkerBuilder {
    /// Builds an AWS Lambda SQS event handler around `handler` instead of a polling worker
    /// (cargo feature `lambda`). Uses the validator, tenant key, limiter, idempotency, backoff,
    /// `max_attempts`, `rate_limit_pause`, `max_admission_wait`, dead-letter queue, worker id and
    /// FIFO settings; `concurrency` bounds the records handled at once (standard queues).
    pub fn build_lambda<H: Handler>(self, handler: H) -> Result<LambdaHandler, WorkerError> {
        if self.settings.concurrency == 0 {
            return Err(WorkerError::Config("concurrency must be at least 1".into()));
        }
        if self.settings.max_attempts == 0 {
            return Err(WorkerError::Config(
                "max_attempts must be at least 1".into(),
            ));
        }
        if self.client.is_some() && self.queue_url.is_empty() {
            return Err(WorkerError::Config("queue_url is empty".into()));
        }
        Ok(LambdaHandler {
            inner: Arc::new(Inner {
                client: self.client,
                queue_url: self.queue_url,
                settings: self.settings,
                handler: erase(handler),
                counters: Arc::default(),
                resolved: OnceCell::new(),
            }),
        })
    }
}

impl LambdaHandler {
    /// A builder for a Lambda handler **without SQS access**: no visibility changes and no
    /// dead letters of its own — transient, rate-limited, permanent and invalid messages are
    /// all reported as failures (the queue's `maxReceiveCount` then moves them, without an
    /// envelope). Prefer `Worker::builder(client, queue_url).build_lambda(handler)`.
    pub fn builder() -> WorkerBuilder {
        WorkerBuilder::new(None, String::new())
    }

    /// Counters of every invocation so far.
    pub fn stats(&self) -> StatsHandle {
        StatsHandle(Arc::clone(&self.inner.counters))
    }

    /// Runs the Lambda runtime loop (`lambda_runtime::run`) with this handler.
    pub async fn run(self) -> Result<(), lambda_runtime::Error> {
        lambda_runtime::run(lambda_runtime::service_fn(
            move |event: lambda_runtime::LambdaEvent<SqsEvent>| {
                let handler = self.clone();
                async move {
                    handler
                        .handle(event.payload)
                        .await
                        .map_err(lambda_runtime::Error::from)
                }
            },
        ))
        .await
    }

    /// Handles one SQS event and returns the partial batch response: the `messageId`s to
    /// retry, in event order. Fails only when the source queue's dead-letter queue cannot be
    /// resolved (first invocation, with an SQS client): Lambda then retries the whole batch.
    pub async fn handle(&self, event: SqsEvent) -> Result<SqsBatchResponse, WorkerError> {
        let inner = &self.inner;
        let received_at = Instant::now();
        let dead_letter_queue = match &inner.client {
            Some(client) => Some(
                inner
                    .resolved
                    .get_or_try_init(|| {
                        resolve_dead_letter_queue(
                            client,
                            &inner.queue_url,
                            inner.settings.dead_letter_queue_url.as_deref(),
                        )
                    })
                    .await?
                    .clone(),
            ),
            None => None,
        };
        let source = event
            .records
            .first()
            .and_then(|r| r.event_source_arn.clone())
            .unwrap_or_default();
        let fifo = inner
            .settings
            .fifo
            .unwrap_or_else(|| inner.queue_url.ends_with(".fifo") || source.ends_with(".fifo"));
        let messages: Vec<Message> = event
            .records
            .iter()
            .map(|record| {
                let mut message = Message::from_lambda(record, received_at);
                message.tenant = inner
                    .settings
                    .tenant_key
                    .as_ref()
                    .and_then(|k| k.extract(&message));
                message
            })
            .collect();
        inner
            .counters
            .received
            .fetch_add(messages.len() as u64, std::sync::atomic::Ordering::Relaxed);
        let invocation = Arc::new(Invocation {
            inner: Arc::clone(inner),
            source_queue: if inner.queue_url.is_empty() {
                source
            } else {
                inner.queue_url.clone()
            },
            dead_letter_queue,
        });

        let mut verdicts = vec![Verdict::Failed; messages.len()];
        if fifo {
            // AWS: on a FIFO queue, stop at the first failure and report it and everything
            // after it, so nothing overtakes it.
            for (i, message) in messages.into_iter().enumerate() {
                let verdict = invocation.process(message).await;
                verdicts[i] = verdict;
                if verdict == Verdict::Failed {
                    break;
                }
            }
        } else {
            let slots = Arc::new(Semaphore::new(inner.settings.concurrency));
            let mut tasks = tokio::task::JoinSet::new();
            for (i, message) in messages.into_iter().enumerate() {
                let invocation = Arc::clone(&invocation);
                let slots = Arc::clone(&slots);
                tasks.spawn(async move {
                    let _permit = slots.acquire_owned().await;
                    (i, invocation.process(message).await)
                });
            }
            while let Some(joined) = tasks.join_next().await {
                match joined {
                    Ok((i, verdict)) => verdicts[i] = verdict,
                    Err(e) => tracing::error!(error = %e, "a record's task ended abnormally"),
                }
            }
        }
        let mut response = SqsBatchResponse::default();
        for (record, verdict) in event.records.iter().zip(verdicts) {
            if verdict == Verdict::Failed {
                let mut failure = BatchItemFailure::default();
                failure.item_identifier = record.message_id.clone().unwrap_or_default();
                response.batch_item_failures.push(failure);
            }
        }
        Ok(response)
    }
}

/// One invocation's view: the handler's settings plus the resolved queues.
struct Invocation {
    inner: Arc<Inner>,
    source_queue: String,
    dead_letter_queue: Option<(String, Option<u32>)>,
}

impl Invocation {
    fn label(&self) -> String {
        queue_name(&self.source_queue).to_string()
    }

    fn count_outcome(&self, outcome: &'static str) {
        metrics::counter!(m::OUTCOMES, "queue" => self.label(), "outcome" => outcome).increment(1);
    }

    async fn process(&self, message: Message) -> Verdict {
        let inner = &self.inner;
        let settings = &inner.settings;
        if let Some(validator) = &settings.validator
            && let Err(failure) = validator(&message)
        {
            self.count_outcome("invalid");
            let attempts = message.prior_attempts();
            return self
                .dead_letter(&message, Reason::Validation, &failure, attempts)
                .await;
        }

        let idempotency = settings
            .idempotency
            .as_ref()
            .and_then(|i| Some((i, i.key.extract(&message)?)));
        let owner = claim_owner(&settings.worker_id, idempotency.is_some());
        if let Some((guard, key)) = &idempotency {
            match guard.store.try_begin(key, &owner, guard.lease).await {
                Ok(Claim::Acquired) => {}
                Ok(Claim::Completed) => {
                    Counters::bump(&inner.counters.duplicates);
                    metrics::counter!(m::DUPLICATES, "queue" => self.label()).increment(1);
                    return Verdict::Succeeded;
                }
                Ok(Claim::InProgress) => {
                    return self.defer(&message, settings.backoff.ceiling(1)).await;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "idempotency store failed; retrying later");
                    return self.retry(&message, &Failure::from_error(&e)).await;
                }
            }
        }
        let release_key = async || {
            if let Some((guard, key)) = &idempotency
                && let Err(e) = guard.store.release(key, &owner).await
            {
                tracing::warn!(error = %e, "idempotency release failed; the key expires with its lease");
            }
        };

        let tenant = message.tenant.clone().unwrap_or_default();
        match settings
            .limiter
            .reserve(&tenant, settings.max_admission_wait)
            .await
        {
            Admission::Defer(wait) => {
                release_key().await;
                return self.defer(&message, wait).await;
            }
            Admission::Reserved(wait) => {
                if !wait.is_zero() {
                    tokio::time::sleep(wait).await;
                }
            }
        }

        Counters::bump(&inner.counters.handled);
        let task = tokio::spawn(inner.handler.call(message.clone()));
        let joined = match &idempotency {
            Some((guard, key)) => renewing_lease(task, guard, key, &owner).await,
            None => task.await,
        };
        let outcome = joined.unwrap_or_else(|e| {
            Counters::bump(&inner.counters.panics);
            let detail = if e.is_panic() {
                panic_message(e.into_panic())
            } else {
                "handler task cancelled".to_string()
            };
            tracing::error!(panic = %detail, "handler panicked");
            Outcome::Transient(Failure::new("panic", detail))
        });
        self.count_outcome(outcome.label());

        match outcome {
            Outcome::Done => {
                if let Some((guard, key)) = &idempotency
                    && let Err(e) = guard.store.complete(key, &owner, guard.retention).await
                {
                    tracing::warn!(error = %e, "idempotency completion failed");
                }
                Counters::bump(&inner.counters.completed);
                Verdict::Succeeded
            }
            Outcome::Transient(failure) => {
                release_key().await;
                self.retry(&message, &failure).await
            }
            Outcome::Permanent(failure) => {
                release_key().await;
                self.dead_letter(
                    &message,
                    Reason::PermanentError,
                    &failure,
                    message.attempt(),
                )
                .await
            }
            Outcome::Invalid(failure) => {
                release_key().await;
                self.dead_letter(&message, Reason::Validation, &failure, message.attempt())
                    .await
            }
            Outcome::RateLimited { retry_after } => {
                release_key().await;
                Counters::bump(&inner.counters.rate_limited);
                let pause = retry_after.unwrap_or(settings.rate_limit_pause);
                settings.limiter.pause(&tenant, pause).await;
                let jitter = random_below(u64::try_from(pause.as_millis() / 2).unwrap_or(0) + 1);
                self.defer(&message, pause + Duration::from_millis(jitter))
                    .await
            }
        }
    }

    /// A transient failure: reported with a backoff, or dead-lettered when the budget is spent.
    async fn retry(&self, message: &Message, failure: &Failure) -> Verdict {
        let attempt = message.attempt();
        if attempt >= self.inner.settings.max_attempts {
            return self
                .dead_letter(message, Reason::MaxAttempts, failure, attempt)
                .await;
        }
        if let Some((_, Some(max))) = &self.dead_letter_queue
            && message.receive_count >= *max
        {
            return self
                .dead_letter(message, Reason::MaxReceives, failure, attempt)
                .await;
        }
        Counters::bump(&self.inner.counters.retried);
        metrics::counter!(m::RETRIED, "queue" => self.label()).increment(1);
        self.return_after(message, self.inner.settings.backoff.delay(attempt))
            .await
    }

    /// Put off without counting a failure of the handler (in Lambda the receive still counts).
    async fn defer(&self, message: &Message, delay: Duration) -> Verdict {
        Counters::bump(&self.inner.counters.deferred);
        self.return_after(message, delay).await
    }

    /// Reports the record as failed, after setting its visibility to `delay` if there is a
    /// client (otherwise it returns when the queue's visibility timeout ends).
    async fn return_after(&self, message: &Message, delay: Duration) -> Verdict {
        if let Some(client) = &self.inner.client {
            let delay = clamp_to_visibility_cap(delay, message.received_at.elapsed());
            let result = client
                .change_message_visibility()
                .queue_url(&self.inner.queue_url)
                .receipt_handle(&message.receipt_handle)
                .visibility_timeout(whole_seconds_up(delay, MAX_VISIBILITY.as_secs()))
                .send()
                .await;
            if let Err(e) = result {
                self.sqs_error("ChangeMessageVisibility", &e);
            }
        }
        Verdict::Failed
    }

    /// Sends the message to the DLQ with the envelope; not reported, so Lambda deletes the
    /// original. Without a client, or if the send fails, it is reported instead.
    async fn dead_letter(
        &self,
        message: &Message,
        reason: Reason,
        failure: &Failure,
        attempts: u32,
    ) -> Verdict {
        let (Some(client), Some((dlq, _))) = (&self.inner.client, &self.dead_letter_queue) else {
            tracing::error!(
                reason = reason_label(reason),
                error_class = %failure.class,
                "no SQS client to dead-letter with; reporting the record as failed (the queue's redrive policy moves it, without an envelope)"
            );
            return Verdict::Failed;
        };
        let envelope = dead_letter_envelope(
            message,
            reason,
            failure,
            attempts,
            &self.source_queue,
            &self.inner.settings.worker_id,
        );
        let attributes = with_envelope(&message.attributes, &envelope).unwrap_or_else(|| {
            tracing::warn!("10 message attributes already; dead-lettering without an envelope");
            message.attributes.clone()
        });
        let mut send = client
            .send_message()
            .queue_url(dlq)
            .message_body(&message.body)
            .set_message_attributes(Some(attributes));
        if dlq.ends_with(".fifo") {
            send = send
                .message_group_id(message.group_id.clone().unwrap_or_default())
                .message_deduplication_id(&message.id);
        } else {
            send = send.set_message_group_id(message.group_id.clone());
        }
        match send.send().await {
            Ok(_) => {
                Counters::bump(&self.inner.counters.dead_lettered);
                metrics::counter!(m::DEAD_LETTERED, "queue" => self.label(), "reason" => reason_label(reason))
                    .increment(1);
                tracing::info!(
                    reason = reason_label(reason),
                    error_class = %failure.class,
                    attempts,
                    "dead-lettered"
                );
                Verdict::Succeeded
            }
            Err(e) => {
                self.sqs_error("SendMessage", &e);
                let delay = self.inner.settings.backoff.delay(message.attempt());
                self.return_after(message, delay).await
            }
        }
    }

    fn sqs_error<E: std::error::Error + 'static>(&self, operation: &'static str, e: &E) {
        Counters::bump(&self.inner.counters.sqs_errors);
        metrics::counter!(m::SQS_ERRORS, "queue" => self.label(), "operation" => operation)
            .increment(1);
        tracing::warn!(operation, error = %aws_sdk_sqs::error::DisplayErrorContext(e), "SQS call failed");
    }
}
