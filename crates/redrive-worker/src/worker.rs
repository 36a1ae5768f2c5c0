//! The worker: the receive loop, message lanes, and what each outcome turns into.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant, UNIX_EPOCH};

use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{MessageAttributeValue, MessageSystemAttributeName, QueueAttributeName};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::backoff::{MAX_VISIBILITY, clamp_to_visibility_cap, random_below, whole_seconds_up};
use crate::builder::{ErasedHandler, Settings, WorkerBuilder};
use crate::envelope::{
    ENVELOPE_ATTRIBUTE, ENVELOPE_VERSION, Envelope, MAX_MESSAGE_ATTRIBUTES, Reason, rfc3339,
};
use crate::error::WorkerError;
use crate::idempotency::Claim;
use crate::limiter::Admission;
use crate::message::Message;
use crate::metrics_names as m;
use crate::outcome::{Failure, Outcome};
use crate::sqs::{Deleter, Held, HeldMessage, heartbeat};
use crate::stats::{Counters, StatsHandle, WorkerStats};

/// A consumer of one SQS queue. Build it with [`Worker::builder`], then [`run`](Worker::run)
/// it until a shutdown future completes.
///
/// What a run does:
/// - receives with long polling, never more messages than free concurrency slots;
/// - runs the validator, the idempotency guard, tenant admission, then the handler, while a
///   heartbeat keeps the message invisible;
/// - turns the [`Outcome`] into a batched delete, a backoff, a dead letter with an
///   [`Envelope`], or a deferral;
/// - on shutdown stops receiving, lets running handlers finish, releases (visibility 0)
///   messages that were received but not started, and flushes pending deletes.
pub struct Worker {
    client: Client,
    queue_url: String,
    settings: Settings,
    handler: Arc<dyn ErasedHandler>,
    counters: Arc<Counters>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("queue_url", &self.queue_url)
            .field("worker_id", &self.settings.worker_id)
            .finish_non_exhaustive()
    }
}

impl Worker {
    /// Starts configuring a worker for `queue_url`, using the caller's `client` (its
    /// endpoint, credentials, region and retry settings are used as they are).
    pub fn builder(client: Client, queue_url: impl Into<String>) -> WorkerBuilder {
        WorkerBuilder::new(Some(client), queue_url.into())
    }

    pub(crate) fn new(
        client: Client,
        builder: WorkerBuilder,
        handler: Arc<dyn ErasedHandler>,
    ) -> Worker {
        Worker {
            client,
            queue_url: builder.queue_url,
            settings: builder.settings,
            handler,
            counters: Arc::default(),
        }
    }

    /// The queue this worker consumes.
    pub fn queue_url(&self) -> &str {
        &self.queue_url
    }

    /// The id written into envelopes and spans.
    pub fn worker_id(&self) -> &str {
        &self.settings.worker_id
    }

    /// A handle to read this worker's counters while it runs.
    pub fn stats(&self) -> StatsHandle {
        StatsHandle(Arc::clone(&self.counters))
    }

    /// Runs until `shutdown` completes, then drains gracefully and returns the counters.
    ///
    /// Fails only at start: when the queue's attributes cannot be read, or there is no
    /// dead-letter queue. Shutdown waits for running handlers and for an in-flight long poll
    /// (at most [`wait_time`](WorkerBuilder::wait_time)).
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<WorkerStats, WorkerError> {
        let (dead_letter_queue_url, max_receive_count) = self.resolve_dead_letter_queue().await?;
        let queue_label = queue_name(&self.queue_url).to_string();
        let deleter = Deleter::start(
            self.client.clone(),
            self.queue_url.clone(),
            queue_label.clone(),
            self.settings.delete_flush_interval,
            Arc::clone(&self.counters),
        );
        let fifo = self
            .settings
            .fifo
            .unwrap_or_else(|| self.queue_url.ends_with(".fifo"));
        let heartbeat_interval = self
            .settings
            .heartbeat_interval
            .unwrap_or(self.settings.visibility_timeout / 2);
        let ctx = Arc::new(Context {
            client: self.client.clone(),
            queue_url: self.queue_url.clone(),
            queue_label,
            settings: self.settings.clone(),
            handler: Arc::clone(&self.handler),
            counters: Arc::clone(&self.counters),
            dead_letter_queue_url,
            max_receive_count,
            fifo,
            heartbeat_interval,
            deletes: deleter.sender(),
        });
        tracing::info!(queue = %ctx.queue_label, worker_id = %ctx.settings.worker_id, fifo, dead_letter_queue = %ctx.dead_letter_queue_url, "worker started");

        let (stop_tx, stop_rx) = watch::channel(false);
        let signal = tokio::spawn(async move {
            shutdown.await;
            let _ = stop_tx.send(true);
        });
        ctx.receive_loop(stop_rx).await;
        signal.abort();
        drop(ctx);
        deleter.finish().await;
        let stats = self.counters.snapshot();
        tracing::info!(queue = %queue_name(&self.queue_url), ?stats, "worker stopped");
        Ok(stats)
    }

    async fn resolve_dead_letter_queue(&self) -> Result<(String, Option<u32>), WorkerError> {
        resolve_dead_letter_queue(
            &self.client,
            &self.queue_url,
            self.settings.dead_letter_queue_url.as_deref(),
        )
        .await
    }
}

/// The DLQ URL (configured or from the `RedrivePolicy`) and the queue's `maxReceiveCount`.
pub(crate) async fn resolve_dead_letter_queue(
    client: &Client,
    queue_url: &str,
    configured: Option<&str>,
) -> Result<(String, Option<u32>), WorkerError> {
    let out = client
        .get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(QueueAttributeName::RedrivePolicy)
        .send()
        .await
        .map_err(|e| WorkerError::sqs("GetQueueAttributes", &e))?;
    let policy: Option<serde_json::Value> = out
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::RedrivePolicy))
        .and_then(|p| serde_json::from_str(p).ok());
    let max_receive_count = policy.as_ref().and_then(|p| {
        let v = p.get("maxReceiveCount")?;
        v.as_u64()
            .or_else(|| v.as_str()?.parse().ok())
            .and_then(|n| u32::try_from(n).ok())
    });
    if let Some(url) = configured {
        return Ok((url.to_string(), max_receive_count));
    }
    let arn = policy
        .as_ref()
        .and_then(|p| p.get("deadLetterTargetArn")?.as_str().map(str::to_string))
        .ok_or_else(|| WorkerError::NoDeadLetterQueue {
            queue_url: queue_url.to_string(),
        })?;
    // arn:aws:sqs:<region>:<account>:<name>
    let parts: Vec<&str> = arn.split(':').collect();
    let (Some(account), Some(name)) = (parts.get(4), parts.get(5)) else {
        return Err(WorkerError::Config(format!(
            "unreadable deadLetterTargetArn {arn}"
        )));
    };
    let url = client
        .get_queue_url()
        .queue_name(*name)
        .queue_owner_aws_account_id(*account)
        .send()
        .await
        .map_err(|e| WorkerError::sqs("GetQueueUrl", &e))?
        .queue_url
        .ok_or_else(|| WorkerError::NoDeadLetterQueue {
            queue_url: queue_url.to_string(),
        })?;
    Ok((url, max_receive_count))
}

/// The last path segment of a queue URL, used as the `queue` metric label.
pub(crate) fn queue_name(url: &str) -> &str {
    url.trim_end_matches('/').rsplit('/').next().unwrap_or(url)
}

/// What became of a message after its lane was done with it.
enum Disposition {
    /// Deleted, dead-lettered, or replaced by a deferred copy.
    Finished,
    /// Still in the queue (a backoff, an in-place deferral, a release).
    ReturnsLater,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum DeferCause {
    RateLimited,
    Admission,
    InProgress,
}

impl DeferCause {
    fn label(self) -> &'static str {
        match self {
            DeferCause::RateLimited => "rate_limited",
            DeferCause::Admission => "admission",
            DeferCause::InProgress => "in_progress",
        }
    }
}

/// State shared by the receive loop and every lane of one run.
struct Context {
    client: Client,
    queue_url: String,
    queue_label: String,
    settings: Settings,
    handler: Arc<dyn ErasedHandler>,
    counters: Arc<Counters>,
    dead_letter_queue_url: String,
    max_receive_count: Option<u32>,
    fifo: bool,
    heartbeat_interval: Duration,
    deletes: mpsc::UnboundedSender<String>,
}

impl Context {
    async fn receive_loop(self: &Arc<Self>, stop_rx: watch::Receiver<bool>) {
        let slots = Arc::new(Semaphore::new(self.settings.concurrency));
        let mut lanes = JoinSet::new();
        let mut stop = stop_rx.clone();
        let mut consecutive_errors = 0u32;
        loop {
            if *stop.borrow() {
                break;
            }
            let first = tokio::select! {
                biased;
                () = stopped(&mut stop) => break,
                permit = Arc::clone(&slots).acquire_owned() => match permit {
                    Ok(p) => p,
                    Err(_) => break,
                },
            };
            let mut permits = vec![first];
            while permits.len() < 10 {
                match Arc::clone(&slots).try_acquire_owned() {
                    Ok(p) => permits.push(p),
                    Err(_) => break,
                }
            }
            while let Some(done) = lanes.try_join_next() {
                log_lane_end(done);
            }
            let messages = match self.receive(permits.len()).await {
                Ok(messages) => {
                    consecutive_errors = 0;
                    messages
                }
                Err(message) => {
                    consecutive_errors = consecutive_errors.saturating_add(1);
                    Counters::bump(&self.counters.sqs_errors);
                    metrics::counter!(m::SQS_ERRORS, "queue" => self.queue_label.clone(), "operation" => "ReceiveMessage").increment(1);
                    let pause = Duration::from_millis(100)
                        .saturating_mul(1 << consecutive_errors.min(7))
                        .min(Duration::from_secs(10));
                    tracing::warn!(queue = %self.queue_label, error = %message, retry_in = ?pause, "ReceiveMessage failed");
                    drop(permits);
                    tokio::select! {
                        () = stopped(&mut stop) => break,
                        () = tokio::time::sleep(pause) => continue,
                    }
                }
            };
            if *stop.borrow() {
                // Received during shutdown: give back without starting.
                for message in messages {
                    let held = Held::new(vec![]);
                    self.release(&held, &message, Duration::ZERO).await;
                }
                break;
            }
            for lane in self.split_into_lanes(messages) {
                // Never more lanes than messages, nor messages than permits, unless the server
                // returned more than MaxNumberOfMessages: give such extras back.
                let Some(permit) = permits.pop() else {
                    let held = Held::new(vec![]);
                    for message in lane {
                        self.release(&held, &message, Duration::ZERO).await;
                    }
                    continue;
                };
                let ctx = Arc::clone(self);
                let stop = stop_rx.clone();
                lanes.spawn(async move {
                    ctx.run_lane(lane, stop).await;
                    drop(permit);
                });
            }
        }
        while let Some(done) = lanes.join_next().await {
            log_lane_end(done);
        }
    }

    async fn receive(&self, max: usize) -> Result<Vec<Message>, String> {
        let started = Instant::now();
        let out = self
            .client
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(i32::try_from(max.min(10)).unwrap_or(10))
            .wait_time_seconds(whole_seconds_up(self.settings.wait_time, 20))
            .visibility_timeout(whole_seconds_up(self.settings.visibility_timeout, 43_200))
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .send()
            .await
            .map_err(|e| aws_sdk_sqs::error::DisplayErrorContext(&e).to_string())?;
        let messages: Vec<Message> = out
            .messages
            .unwrap_or_default()
            .into_iter()
            // The receive time is taken before the call: conservative for the 12 h cap.
            .filter_map(|raw| Message::from_sqs(raw, started))
            .map(|mut message| {
                message.tenant = self
                    .settings
                    .tenant_key
                    .as_ref()
                    .and_then(|k| k.extract(&message));
                message
            })
            .collect();
        let count = messages.len() as u64;
        self.counters
            .received
            .fetch_add(count, std::sync::atomic::Ordering::Relaxed);
        metrics::counter!(m::RECEIVED, "queue" => self.queue_label.clone()).increment(count);
        Ok(messages)
    }

    /// Standard queues: one lane per message. FIFO: one lane per message group, in receive
    /// order, so a group is handled sequentially.
    fn split_into_lanes(&self, messages: Vec<Message>) -> Vec<Vec<Message>> {
        if !self.fifo {
            return messages.into_iter().map(|m| vec![m]).collect();
        }
        let mut order: Vec<String> = Vec::new();
        let mut groups: HashMap<String, Vec<Message>> = HashMap::new();
        for message in messages {
            let group = message.group_id.clone().unwrap_or_default();
            if !groups.contains_key(&group) {
                order.push(group.clone());
            }
            groups.entry(group).or_default().push(message);
        }
        order
            .into_iter()
            .filter_map(|g| groups.remove(&g))
            .collect()
    }

    async fn run_lane(self: Arc<Self>, lane: Vec<Message>, mut stop: watch::Receiver<bool>) {
        let held = Arc::new(Held::new(
            lane.iter()
                .map(|m| HeldMessage {
                    receipt_handle: m.receipt_handle.clone(),
                    received_at: m.received_at,
                })
                .collect(),
        ));
        let beat = tokio::spawn(heartbeat(
            self.client.clone(),
            self.queue_url.clone(),
            self.queue_label.clone(),
            Arc::clone(&held),
            self.heartbeat_interval,
            self.settings.visibility_timeout,
        ));
        // FIFO invariant: once a message of the group goes back to the queue, every later
        // message of the group received with it is released unstarted. They are made visible
        // at once: the group stays locked while the earlier message is invisible (in flight),
        // so it is delivered first when its backoff ends.
        let mut blocked = false;
        for message in lane {
            if blocked {
                self.release(&held, &message, Duration::ZERO).await;
                continue;
            }
            if *stop.borrow() {
                self.release(&held, &message, Duration::ZERO).await;
                continue;
            }
            let span = tracing::info_span!(
                "redrive_worker.message",
                queue = %self.queue_label,
                message_id = %message.id,
                attempt = message.attempt(),
                tenant = message.tenant.as_deref().unwrap_or(""),
            );
            let disposition = self
                .process(&held, message, &mut stop)
                .instrument(span)
                .await;
            if self.fifo && matches!(disposition, Disposition::ReturnsLater) {
                blocked = true;
            }
        }
        beat.abort();
    }

    async fn process(
        &self,
        held: &Held,
        message: Message,
        stop: &mut watch::Receiver<bool>,
    ) -> Disposition {
        if let Some(validator) = &self.settings.validator
            && let Err(failure) = validator(&message)
        {
            self.count_outcome("invalid");
            let attempts = message.prior_attempts();
            return self
                .dead_letter(held, &message, Reason::Validation, &failure, attempts)
                .await;
        }

        let idempotency = self
            .settings
            .idempotency
            .as_ref()
            .and_then(|i| Some((i, i.key.extract(&message)?)));
        // One owner token per claim: only this run may renew or release it.
        let owner = claim_owner(&self.settings.worker_id, idempotency.is_some());
        if let Some((guard, key)) = &idempotency {
            match guard.store.try_begin(key, &owner, guard.lease).await {
                Ok(Claim::Acquired) => {}
                Ok(Claim::Completed) => {
                    Counters::bump(&self.counters.duplicates);
                    metrics::counter!(m::DUPLICATES, "queue" => self.queue_label.clone())
                        .increment(1);
                    tracing::debug!(key = %key, "duplicate of a completed message; deleting without handling");
                    return self.delete(held, &message).await;
                }
                Ok(Claim::InProgress) => {
                    tracing::debug!(key = %key, "same key in progress elsewhere; deferring");
                    let delay = self.settings.backoff.ceiling(1);
                    return self
                        .defer(held, &message, delay, DeferCause::InProgress)
                        .await;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "idempotency store failed; retrying later");
                    return self.retry(held, &message, &Failure::from_error(&e)).await;
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
        match self
            .settings
            .limiter
            .reserve(&tenant, self.settings.max_admission_wait)
            .await
        {
            Admission::Defer(wait) => {
                release_key().await;
                return self
                    .defer(held, &message, wait, DeferCause::Admission)
                    .await;
            }
            Admission::Reserved(wait) => {
                metrics::histogram!(m::ADMISSION_WAIT_SECONDS, "queue" => self.queue_label.clone())
                    .record(wait.as_secs_f64());
                if !wait.is_zero() {
                    tokio::select! {
                        () = tokio::time::sleep(wait) => {}
                        () = stopped(stop) => {
                            release_key().await;
                            return self.release(held, &message, Duration::ZERO).await;
                        }
                    }
                }
            }
        }

        Counters::bump(&self.counters.handled);
        let in_flight = metrics::gauge!(m::IN_FLIGHT, "queue" => self.queue_label.clone());
        in_flight.increment(1.0);
        let started = Instant::now();
        // The handler runs in its own task so a panic is contained and reported.
        let task = tokio::spawn(self.handler.call(message.clone()));
        let joined = match &idempotency {
            Some((guard, key)) => renewing_lease(task, guard, key, &owner).await,
            None => task.await,
        };
        let outcome = match joined {
            Ok(outcome) => outcome,
            Err(e) => {
                Counters::bump(&self.counters.panics);
                let detail = if e.is_panic() {
                    panic_message(e.into_panic())
                } else {
                    "handler task cancelled".to_string()
                };
                tracing::error!(panic = %detail, "handler panicked");
                self.count_outcome("panic");
                Outcome::Transient(Failure::new("panic", detail))
            }
        };
        in_flight.decrement(1.0);
        metrics::histogram!(m::HANDLER_SECONDS, "queue" => self.queue_label.clone(), "outcome" => outcome.label())
            .record(started.elapsed().as_secs_f64());
        self.count_outcome(outcome.label());

        match outcome {
            Outcome::Done => {
                if let Some((guard, key)) = &idempotency
                    && let Err(e) = guard.store.complete(key, &owner, guard.retention).await
                {
                    tracing::warn!(error = %e, "idempotency completion failed");
                }
                Counters::bump(&self.counters.completed);
                self.delete(held, &message).await
            }
            Outcome::Transient(failure) => {
                release_key().await;
                tracing::debug!(class = %failure.class, "transient failure");
                self.retry(held, &message, &failure).await
            }
            Outcome::Permanent(failure) => {
                release_key().await;
                self.dead_letter(
                    held,
                    &message,
                    Reason::PermanentError,
                    &failure,
                    message.attempt(),
                )
                .await
            }
            Outcome::Invalid(failure) => {
                release_key().await;
                self.dead_letter(
                    held,
                    &message,
                    Reason::Validation,
                    &failure,
                    message.attempt(),
                )
                .await
            }
            Outcome::RateLimited { retry_after } => {
                release_key().await;
                Counters::bump(&self.counters.rate_limited);
                let pause = retry_after.unwrap_or(self.settings.rate_limit_pause);
                self.settings.limiter.pause(&tenant, pause).await;
                // Jitter so a paused tenant's messages do not all return at the same instant.
                let jitter = random_below(u64::try_from(pause.as_millis() / 2).unwrap_or(0) + 1);
                let delay = pause + Duration::from_millis(jitter);
                tracing::debug!(?pause, "rate limited; tenant paused");
                self.defer(held, &message, delay, DeferCause::RateLimited)
                    .await
            }
        }
    }

    fn count_outcome(&self, outcome: &'static str) {
        metrics::counter!(m::OUTCOMES, "queue" => self.queue_label.clone(), "outcome" => outcome)
            .increment(1);
    }

    /// A transient failure: retry after a backoff, or dead-letter when the budget is spent.
    async fn retry(&self, held: &Held, message: &Message, failure: &Failure) -> Disposition {
        let attempt = message.attempt();
        if attempt >= self.settings.max_attempts {
            return self
                .dead_letter(held, message, Reason::MaxAttempts, failure, attempt)
                .await;
        }
        if let Some(max) = self.max_receive_count
            && message.receive_count >= max
        {
            // SQS would move it on the next receive, without any context: do it now.
            return self
                .dead_letter(held, message, Reason::MaxReceives, failure, attempt)
                .await;
        }
        let delay = self.settings.backoff.delay(attempt);
        Counters::bump(&self.counters.retried);
        metrics::counter!(m::RETRIED, "queue" => self.queue_label.clone()).increment(1);
        self.return_after(held, message, delay).await
    }

    /// Sets the message's visibility to `delay` (clamped to the 12 h cap) and lets go of it.
    async fn return_after(&self, held: &Held, message: &Message, delay: Duration) -> Disposition {
        held.remove(&message.receipt_handle).await;
        let delay = clamp_to_visibility_cap(delay, message.received_at.elapsed());
        let result = self
            .client
            .change_message_visibility()
            .queue_url(&self.queue_url)
            .receipt_handle(&message.receipt_handle)
            .visibility_timeout(whole_seconds_up(delay, MAX_VISIBILITY.as_secs()))
            .send()
            .await;
        if let Err(e) = result {
            self.sqs_error("ChangeMessageVisibility", &e);
            return Disposition::ReturnsLater;
        }
        Disposition::ReturnsLater
    }

    /// Gives a message back unprocessed (shutdown, or behind a failed FIFO message).
    async fn release(&self, held: &Held, message: &Message, delay: Duration) -> Disposition {
        Counters::bump(&self.counters.released);
        metrics::counter!(m::RELEASED, "queue" => self.queue_label.clone()).increment(1);
        self.return_after(held, message, delay).await
    }

    async fn delete(&self, held: &Held, message: &Message) -> Disposition {
        held.remove(&message.receipt_handle).await;
        if self.deletes.send(message.receipt_handle.clone()).is_err() {
            tracing::warn!("deleter stopped; the message will be delivered again");
        }
        Disposition::Finished
    }

    /// Puts a message off without counting a failure. Standard queues: a delayed copy
    /// (`DelaySeconds` ≤ 900) carrying the envelope, then the original is deleted — the
    /// receive count starts over. FIFO queues (no per-message delay, and a copy would lose
    /// its place in the group): `ChangeMessageVisibility`, which keeps order but counts a
    /// receive.
    async fn defer(
        &self,
        held: &Held,
        message: &Message,
        delay: Duration,
        cause: DeferCause,
    ) -> Disposition {
        Counters::bump(&self.counters.deferred);
        metrics::counter!(m::DEFERRED, "queue" => self.queue_label.clone(), "cause" => cause.label())
            .increment(1);
        if self.fifo {
            return self.return_after(held, message, delay).await;
        }
        let mut envelope = self.envelope_for(message, Reason::Deferred);
        // This receive was not a failure; the ones before it on this copy were.
        envelope.attempts = message.attempt().saturating_sub(1);
        envelope.deferrals = envelope.deferrals.saturating_add(1);
        if cause == DeferCause::RateLimited {
            envelope.throttles = envelope.throttles.saturating_add(1);
        }
        let Some(attributes) = with_envelope(&message.attributes, &envelope) else {
            tracing::warn!("10 message attributes already; deferring in place (counts a receive)");
            return self.return_after(held, message, delay).await;
        };
        let result = self
            .client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(&message.body)
            .set_message_attributes(Some(attributes))
            .set_message_group_id(message.group_id.clone())
            .delay_seconds(whole_seconds_up(delay, 900))
            .send()
            .await;
        match result {
            Ok(_) => self.delete(held, message).await,
            Err(e) => {
                self.sqs_error("SendMessage", &e);
                self.return_after(held, message, delay).await
            }
        }
    }

    /// Sends the message to the DLQ with an envelope, then deletes it. If the send fails the
    /// message is retried later instead (never deleted without a copy in the DLQ).
    async fn dead_letter(
        &self,
        held: &Held,
        message: &Message,
        reason: Reason,
        failure: &Failure,
        attempts: u32,
    ) -> Disposition {
        let envelope = dead_letter_envelope(
            message,
            reason,
            failure,
            attempts,
            &self.queue_url,
            &self.settings.worker_id,
        );
        let attributes = with_envelope(&message.attributes, &envelope).unwrap_or_else(|| {
            tracing::warn!("10 message attributes already; dead-lettering without an envelope");
            message.attributes.clone()
        });
        let mut send = self
            .client
            .send_message()
            .queue_url(&self.dead_letter_queue_url)
            .message_body(&message.body)
            .set_message_attributes(Some(attributes));
        if self.fifo {
            send = send
                .message_group_id(message.group_id.clone().unwrap_or_default())
                .message_deduplication_id(&message.id);
        } else {
            send = send.set_message_group_id(message.group_id.clone());
        }
        match send.send().await {
            Ok(_) => {
                Counters::bump(&self.counters.dead_lettered);
                metrics::counter!(m::DEAD_LETTERED, "queue" => self.queue_label.clone(), "reason" => reason_label(reason))
                    .increment(1);
                tracing::info!(
                    reason = reason_label(reason),
                    error_class = %failure.class,
                    attempts,
                    "dead-lettered"
                );
                self.delete(held, message).await
            }
            Err(e) => {
                self.sqs_error("SendMessage", &e);
                tracing::error!("could not dead-letter; the message will be retried");
                let delay = self.settings.backoff.delay(message.attempt());
                self.return_after(held, message, delay).await
            }
        }
    }

    fn envelope_for(&self, message: &Message, reason: Reason) -> Envelope {
        envelope_for(message, reason, &self.queue_url, &self.settings.worker_id)
    }

    fn sqs_error<E: std::error::Error + 'static>(&self, operation: &'static str, e: &E) {
        Counters::bump(&self.counters.sqs_errors);
        metrics::counter!(m::SQS_ERRORS, "queue" => self.queue_label.clone(), "operation" => operation)
            .increment(1);
        tracing::warn!(operation, error = %aws_sdk_sqs::error::DisplayErrorContext(e), "SQS call failed");
    }
}

/// The envelope to attach: the message's previous one (kept history) or a fresh one.
pub(crate) fn envelope_for(
    message: &Message,
    reason: Reason,
    queue_url: &str,
    worker_id: &str,
) -> Envelope {
    let mut envelope = message.envelope.clone().unwrap_or(Envelope {
        v: ENVELOPE_VERSION,
        reason,
        error: None,
        retryable: false,
        attempts: 0,
        throttles: 0,
        deferrals: 0,
        first_failed_at: None,
        last_failed_at: None,
        source_queue: String::new(),
        worker_id: String::new(),
        original_message_id: String::new(),
        tenant: None,
    });
    envelope.v = ENVELOPE_VERSION;
    envelope.reason = reason;
    envelope.source_queue = queue_url.to_string();
    envelope.worker_id = worker_id.to_string();
    envelope.original_message_id = message.original_id().to_string();
    envelope.tenant = message.tenant.clone();
    envelope
}

/// The envelope of a dead letter: history kept, the error, the attempt count, and the first
/// failure time.
pub(crate) fn dead_letter_envelope(
    message: &Message,
    reason: Reason,
    failure: &Failure,
    attempts: u32,
    queue_url: &str,
    worker_id: &str,
) -> Envelope {
    let mut envelope = envelope_for(message, reason, queue_url, worker_id);
    envelope.attempts = attempts;
    if envelope.first_failed_at.is_none() && message.receive_count > 1 {
        // Earlier failures of this copy went back through ChangeMessageVisibility, which
        // cannot record anything: the first receive is when the first attempt failed.
        envelope.first_failed_at = message
            .system_attribute(MessageSystemAttributeName::ApproximateFirstReceiveTimestamp.as_str())
            .and_then(|ms| ms.parse::<u64>().ok())
            .map(|ms| rfc3339(UNIX_EPOCH + Duration::from_millis(ms)));
    }
    envelope.set_error(
        failure,
        matches!(reason, Reason::MaxAttempts | Reason::MaxReceives),
    );
    envelope
}

/// The message's attributes with `envelope` replacing any previous one; `None` when that
/// would exceed SQS's 10-attribute limit.
pub(crate) fn with_envelope(
    attributes: &HashMap<String, MessageAttributeValue>,
    envelope: &Envelope,
) -> Option<HashMap<String, MessageAttributeValue>> {
    let mut out: HashMap<String, MessageAttributeValue> = attributes
        .iter()
        .filter(|(k, _)| k.as_str() != ENVELOPE_ATTRIBUTE)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if out.len() >= MAX_MESSAGE_ATTRIBUTES {
        return None;
    }
    out.insert(ENVELOPE_ATTRIBUTE.to_string(), envelope.to_attribute());
    Some(out)
}

pub(crate) fn reason_label(reason: Reason) -> &'static str {
    match reason {
        Reason::PermanentError => "permanent_error",
        Reason::Validation => "validation",
        Reason::MaxAttempts => "max_attempts",
        Reason::MaxReceives => "max_receives",
        Reason::Deferred => "deferred",
    }
}

pub(crate) fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "handler panicked".to_string())
}

fn log_lane_end(result: Result<(), tokio::task::JoinError>) {
    if let Err(e) = result {
        tracing::error!(error = %e, "a message lane ended abnormally");
    }
}

/// Completes once shutdown was requested (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    // The borrow guard is dropped here, before the caller's branch runs (it is not `Send`).
    let _ = stop.wait_for(|s| *s).await;
}

/// The owner token of one idempotency claim: `<worker_id>:<uuid>` (empty when unguarded).
pub(crate) fn claim_owner(worker_id: &str, guarded: bool) -> String {
    if guarded {
        format!("{worker_id}:{}", uuid::Uuid::new_v4().simple())
    } else {
        String::new()
    }
}

/// Awaits the handler task, renewing the idempotency claim every third of its lease so that a
/// lease only has to outlast a crash, not the handler.
pub(crate) async fn renewing_lease(
    mut task: tokio::task::JoinHandle<Outcome>,
    guard: &crate::idempotency::Idempotency,
    key: &str,
    owner: &str,
) -> Result<Outcome, tokio::task::JoinError> {
    let period = (guard.lease / 3).max(Duration::from_millis(100));
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    loop {
        tokio::select! {
            joined = &mut task => return joined,
            _ = ticks.tick() => match guard.store.extend(key, owner, guard.lease).await {
                Ok(true) => {}
                Ok(false) => tracing::warn!(key = %key, "idempotency lease lost while the handler runs; another consumer may run it too"),
                Err(e) => tracing::warn!(error = %e, key = %key, "idempotency lease renewal failed"),
            },
        }
    }
}
