//! The SQS actions over a shared [`QueueBackend`] (ADR 0002): the same rules as the embedded
//! path (`queues.rs`, `messages.rs`: validation, attribute normalisation, FIFO rules, the DLQ
//! decision, rendering, receipt handles), with every state transition one backend call. Nothing
//! about queues or messages is kept in this process.
//!
//! Move tasks are in `shared_tasks.rs`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use redrive_core::api::*;
use redrive_core::arn::QueueArn;
use redrive_core::digest::{md5_hex, md5_of_attributes};
use redrive_core::{ErrorCode, SqsError, SqsResult, limits, validate};
use serde_json::Value;

use crate::backend::{
    Candidate, Claim, CreateOutcome, Decide, Decision, HandleCheck, NewMessage, QueueBackend,
    ReceiveSpec, SharedQueue,
};
use crate::messages::{
    RenderView, SendFields, batch_error, check_receive, check_send, check_send_batch,
    check_visibility_timeout, render_message,
};
use crate::queue::QueueSettings;
use crate::queues::{
    QueueFacts, RedrivePolicy, add_permission_to, attributes_output, check_add_permission,
    check_attribute_names, check_remove_permission, create_queue_request, decode_token,
    exists_differently, initial_attributes, merge_attributes, merged_tags, page_size,
    queue_deleted_recently, remove_permission_from, validate_tag,
};
use crate::receipt::ReceiptHandle;
use crate::{Engine, EngineConfig, RequestContext};

/// The FIFO `SequenceNumber` of a message stored at `seq`: 20 digits like AWS's, growing
/// with `seq`.
pub(crate) fn sequence_number(seq: u64) -> String {
    (10_000_000_000_000_000_000_u128 + u128::from(seq)).to_string()
}

/// The DLQ rule in a shared receive's loop (the same rule as the embedded receive: a message
/// received `maxReceiveCount` times moves instead of being delivered again).
struct DlqRule {
    max_receive_count: u32,
    dlq: Box<SharedQueue>,
    source_arn: String,
}

impl Decide for Option<DlqRule> {
    fn decide(&self, c: &Candidate) -> Decision {
        match self {
            Some(rule) if c.receive_count >= rule.max_receive_count => Decision::MoveTo {
                queue: rule.dlq.clone(),
                source_arn: rule.source_arn.clone(),
                dedup_id: crate::messages::dead_letter_dedup_id(rule.dlq.fifo, &c.message_id),
            },
            _ => Decision::Deliver,
        }
    }
}

impl Engine {
    /// An engine whose queues and messages live in `backend` (several servers may share it).
    /// The embedded store behind the engine's other state (history, alerts) is in memory.
    pub fn open_shared(
        config: EngineConfig,
        backend: Arc<dyn QueueBackend>,
        clock: Arc<dyn crate::Clock>,
    ) -> Engine {
        let mut engine = Engine::open(config, Arc::new(crate::MemoryStore::new()), clock);
        engine.shared = Some(backend);
        engine
    }

    /// This process's counters of a shared queue (created at its first use here).
    pub(crate) fn sh_counters(&self, q: &SharedQueue) -> Arc<crate::metrics::QueueCounters> {
        self.shared_counters
            .lock()
            .entry(q.uid)
            .or_default()
            .clone()
    }

    /// A shared queue's in-flight count for the in-flight limit: read from the backend at
    /// most once per [`IN_FLIGHT_RECOUNT`] per server, this server's own deliveries added in
    /// between. Other servers' deliveries in that second are not seen, so the queue can pass
    /// the limit by up to what they receive in a second (AWS states the limit, not how
    /// exactly it is counted).
    async fn sh_in_flight(
        &self,
        b: &dyn QueueBackend,
        q: &SharedQueue,
    ) -> SqsResult<crate::backend::InFlight> {
        let cap = limits::MAX_INFLIGHT_STANDARD as u64;
        // A count that reached the cap by this server's own additions is read again: only a
        // read at the cap says whether messages are waiting (`OverLimit` or nothing more).
        if let Some((f, at)) = self.shared_in_flight.lock().get(&q.uid)
            && at.elapsed() < IN_FLIGHT_RECOUNT
            && (f.in_flight.count < cap || f.read_at_cap)
        {
            return Ok(f.in_flight);
        }
        let f = b.in_flight(q, cap).await?;
        let counted = CountedInFlight {
            in_flight: f,
            read_at_cap: f.count >= cap,
        };
        self.shared_in_flight
            .lock()
            .insert(q.uid, (counted, std::time::Instant::now()));
        Ok(f)
    }

    /// Starts the shared backend's background work (a no-op without one): the move-task
    /// runner (`shared_tasks.rs`) and the retention sweep, run by whichever server holds the
    /// `retention` lease (taken over within [`SWEEP_LEASE_MS`] when its holder dies).
    pub fn spawn_shared_background(self: &Arc<Self>) {
        let Some(backend) = self.shared.clone() else {
            return;
        };
        self.spawn_move_task_runner(Arc::clone(&backend));
        self.spawn_replay_runner(Arc::clone(&backend));
        self.spawn_shared_scheduler(Arc::clone(&backend));
        let holder = uuid::Uuid::new_v4().to_string();
        let engine = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                let jitter = u64::from(uuid::Uuid::new_v4().as_bytes()[0]) * 4;
                tokio::time::sleep(std::time::Duration::from_millis(SWEEP_EVERY_MS + jitter)).await;
                if engine.strong_count() == 0 {
                    break;
                }
                if let Err(e) = sweep_once(&*backend, &holder).await {
                    tracing::warn!(error = %e.message, "retention sweep failed");
                }
            }
        });
    }

    /// The shared backend, when the engine was opened with one.
    pub fn shared_backend(&self) -> Option<&Arc<dyn QueueBackend>> {
        self.shared.as_ref()
    }

    /// Answers one SQS request through the shared backend.
    pub async fn handle_shared(
        &self,
        b: &dyn QueueBackend,
        ctx: &RequestContext,
        request: Request,
    ) -> SqsResult<Response> {
        let action = request.action();
        Ok(match request {
            Request::CreateQueue(i) => Response::CreateQueue(self.sh_create(b, ctx, i).await?),
            Request::GetQueueUrl(i) => {
                if i.queue_name.is_empty() {
                    return Err(SqsError::missing_parameter("QueueName"));
                }
                if i.queue_owner_aws_account_id
                    .as_ref()
                    .is_some_and(|o| o != &self.config.account_id)
                {
                    return Err(SqsError::queue_does_not_exist());
                }
                let q = b
                    .queue(&ctx.region, &i.queue_name)
                    .await?
                    .ok_or_else(SqsError::queue_does_not_exist)?;
                Response::GetQueueUrl(QueueUrlOutput {
                    queue_url: self.queue_url(ctx, &q.name),
                })
            }
            Request::ListQueues(i) => {
                let max = page_size(i.max_results)?;
                let prefix = i.queue_name_prefix.unwrap_or_default();
                let after = match &i.next_token {
                    Some(t) if !t.is_empty() => Some(decode_token(t)?),
                    _ => None,
                };
                let names: Vec<String> = b
                    .list_queues(&ctx.region, &prefix)
                    .await?
                    .into_iter()
                    .map(|q| q.name)
                    .filter(|n| after.as_ref().is_none_or(|a| n > a))
                    .collect();
                let (queue_urls, next_token) = self.page_of_urls(ctx, &names, max);
                Response::ListQueues(ListQueuesOutput {
                    queue_urls,
                    next_token,
                })
            }
            Request::DeleteQueue(i) => {
                let q = self.sh_resolve(b, ctx, &i.queue_url).await?;
                b.delete_queue(&q).await?;
                self.shared_counters.lock().remove(&q.uid);
                self.shared_in_flight.lock().remove(&q.uid);
                self.sh_forget_move_tasks(b, &self.sh_arn(&q)).await?;
                Response::Empty(action)
            }
            Request::GetQueueAttributes(i) => {
                let q = self.sh_resolve(b, ctx, &i.queue_url).await?;
                check_attribute_names(&i.attribute_names)?;
                let counts = b.counts(&q).await?;
                let arn = self.sh_arn(&q);
                Response::GetQueueAttributes(GetQueueAttributesOutput {
                    attributes: attributes_output(
                        &i.attribute_names,
                        &QueueFacts {
                            visible: counts.visible,
                            in_flight: counts.in_flight,
                            delayed: counts.delayed,
                            created_secs: q.created_secs,
                            last_modified_secs: q.last_modified_secs,
                            arn: &arn,
                            attributes: &q.attributes,
                            oldest_age_secs: counts.oldest_age_ms / 1000,
                        },
                    ),
                })
            }
            Request::SetQueueAttributes(i) => {
                let q = self.sh_resolve(b, ctx, &i.queue_url).await?;
                let attrs_in: BTreeMap<String, String> = i
                    .attributes
                    .into_iter()
                    .map(|(k, v)| (k.trim().to_string(), v))
                    .collect();
                let facts = self.sh_dlq_facts(b, &attrs_in).await?;
                let given = self.normalize_attributes_with(
                    &ctx.region,
                    &q.name,
                    q.fifo,
                    false,
                    &attrs_in,
                    &|arn| facts.get(arn).cloned(),
                )?;
                let now = b.now_ms().await?;
                self.sh_update(b, ctx, &i.queue_url, |q| {
                    q.attributes = merge_attributes(&q.attributes, given.clone())?;
                    q.last_modified_secs = now / 1000;
                    Ok(())
                })
                .await?;
                Response::Empty(action)
            }
            Request::SendMessage(i) => {
                let q = self.sh_resolve(b, ctx, &i.queue_url).await?;
                let mut out = self.sh_send(b, &q, vec![i.into()]).await?;
                Response::SendMessage(out.remove(0)?)
            }
            Request::SendMessageBatch(i) => {
                let q = self.sh_resolve(b, ctx, &i.queue_url).await?;
                let settings = QueueSettings::from_attributes(&q.attributes);
                check_send_batch(&settings, &i)?;
                let ids: Vec<String> = i.entries.iter().map(|e| e.id.clone()).collect();
                let fields: Vec<SendFields> = i.entries.into_iter().map(Into::into).collect();
                let results = self.sh_send(b, &q, fields).await?;
                let mut output = SendMessageBatchOutput::default();
                for (id, r) in ids.into_iter().zip(results) {
                    match r {
                        Ok(result) => output
                            .successful
                            .push(SendMessageBatchResultEntry { id, result }),
                        Err(e) => output.failed.push(batch_error(id, &e)),
                    }
                }
                Response::SendMessageBatch(output)
            }
            Request::ReceiveMessage(i) => {
                let q = self.sh_resolve(b, ctx, &i.queue_url).await?;
                Response::ReceiveMessage(self.sh_receive(b, &q, i).await?)
            }
            Request::DeleteMessage(i) => {
                let q = self.sh_resolve(b, ctx, &i.queue_url).await?;
                let handle = i
                    .receipt_handle
                    .ok_or_else(|| SqsError::missing_parameter("ReceiptHandle"))?;
                sh_delete(b, &q, &handle).await?;
                self.sh_counters(&q).deleted.fetch_add(1, Relaxed);
                Response::Empty(action)
            }
            Request::DeleteMessageBatch(i) => {
                let q = self.sh_resolve(b, ctx, &i.queue_url).await?;
                let ids: Vec<&str> = i.entries.iter().map(|e| e.id.as_str()).collect();
                validate::batch_ids("DeleteMessageBatchRequestEntry", &ids)?;
                // Each entry answered as a single DeleteMessage would be.
                let mut batch =
                    CheckedBatch::new(i.entries.iter().map(|e| claim_of(&q, &e.receipt_handle)));
                let claims = batch.values();
                if !claims.is_empty() {
                    let checks = b.delete_many(&q, claims).await?;
                    batch.found(checks, |slot, _, check| {
                        delete_outcome(&q, check, &i.entries[slot].receipt_handle)
                    });
                }
                let counters = self.sh_counters(&q);
                let ids = i.entries.into_iter().map(|e| e.id);
                Response::DeleteMessageBatch(batch.output(ids, || {
                    counters.deleted.fetch_add(1, Relaxed);
                }))
            }
            Request::ChangeMessageVisibility(i) => {
                let q = self.sh_resolve(b, ctx, &i.queue_url).await?;
                let handle = i
                    .receipt_handle
                    .ok_or_else(|| SqsError::missing_parameter("ReceiptHandle"))?;
                sh_change_visibility(b, &q, &handle, i.visibility_timeout).await?;
                Response::Empty(action)
            }
            Request::ChangeMessageVisibilityBatch(i) => {
                let q = self.sh_resolve(b, ctx, &i.queue_url).await?;
                let ids: Vec<&str> = i.entries.iter().map(|e| e.id.as_str()).collect();
                validate::batch_ids("ChangeMessageVisibilityBatchRequestEntry", &ids)?;
                // Each entry answered as a single ChangeMessageVisibility would be.
                let mut batch = CheckedBatch::new(i.entries.iter().map(|e| {
                    let timeout = check_visibility_timeout(e.visibility_timeout)?;
                    Ok((claim_of(&q, &e.receipt_handle)?, timeout))
                }));
                let changes: Vec<(Claim, u64)> = batch
                    .values()
                    .into_iter()
                    .map(|(claim, timeout)| (claim, (timeout as u64) * 1000))
                    .collect();
                if !changes.is_empty() {
                    let checks = b.change_visibility_many(&q, changes).await?;
                    batch.found(checks, |slot, (_, timeout), check| {
                        visibility_outcome(check, &i.entries[slot].receipt_handle, timeout)
                    });
                }
                let ids = i.entries.into_iter().map(|e| e.id);
                Response::ChangeMessageVisibilityBatch(batch.output(ids, || {}))
            }
            Request::PurgeQueue(i) => {
                let now = b.now_ms().await?;
                // The purge time is set first (compare-and-set): of two concurrent purges on
                // different servers, one is refused.
                let q = self
                    .sh_update(b, ctx, &i.queue_url, |q| {
                        if let Some(last) = q.last_purge_ms
                            && now < last + limits::PURGE_INTERVAL_MS
                        {
                            return Err(SqsError::new(
                                ErrorCode::PurgeQueueInProgress,
                                format!(
                                    "Only one PurgeQueue operation on {} is allowed every 60 seconds.",
                                    q.name
                                ),
                            ));
                        }
                        q.last_purge_ms = Some(now);
                        Ok(())
                    })
                    .await?;
                b.purge(&q).await?;
                Response::Empty(action)
            }
            Request::TagQueue(i) => {
                self.sh_resolve(b, ctx, &i.queue_url).await?;
                if i.tags.is_empty() {
                    return Err(SqsError::missing_parameter("Tags"));
                }
                for (k, v) in &i.tags {
                    validate_tag(k, v)?;
                }
                self.sh_update(b, ctx, &i.queue_url, |q| {
                    q.tags = merged_tags(&q.name, &q.tags, i.tags.clone())?;
                    Ok(())
                })
                .await?;
                Response::Empty(action)
            }
            Request::UntagQueue(i) => {
                self.sh_resolve(b, ctx, &i.queue_url).await?;
                if i.tag_keys.is_empty() || i.tag_keys.iter().any(|k| k.is_empty() || k.len() > 128)
                {
                    return Err(SqsError::invalid_parameter(
                        "Tag keys must be between 1 and 128 characters in length.",
                    ));
                }
                self.sh_update(b, ctx, &i.queue_url, |q| {
                    for k in &i.tag_keys {
                        q.tags.remove(k);
                    }
                    Ok(())
                })
                .await?;
                Response::Empty(action)
            }
            Request::ListQueueTags(i) => {
                let q = self.sh_resolve(b, ctx, &i.queue_url).await?;
                Response::ListQueueTags(ListQueueTagsOutput { tags: q.tags })
            }
            Request::ListDeadLetterSourceQueues(i) => {
                let dlq = self.sh_resolve(b, ctx, &i.queue_url).await?;
                let max = page_size(i.max_results)?;
                let after = match &i.next_token {
                    Some(t) if !t.is_empty() => Some(decode_token(t)?),
                    _ => None,
                };
                let names: Vec<String> = self
                    .sh_dead_letter_sources(b, &dlq)
                    .await?
                    .into_iter()
                    .map(|q| q.name)
                    .filter(|n| after.as_ref().is_none_or(|a| n > a))
                    .collect();
                let (queue_urls, next_token) = self.page_of_urls(ctx, &names, max);
                Response::ListDeadLetterSourceQueues(ListDeadLetterSourceQueuesOutput {
                    queue_urls,
                    next_token,
                })
            }
            Request::AddPermission(i) => {
                let q = self.sh_resolve(b, ctx, &i.queue_url).await?;
                let url = i.queue_url.clone();
                let permission = check_add_permission(i)?;
                let arn = self.sh_arn(&q);
                self.sh_update(b, ctx, &url, |q| {
                    add_permission_to(&mut q.attributes, &arn, &permission)
                })
                .await?;
                Response::Empty(action)
            }
            Request::RemovePermission(i) => {
                self.sh_resolve(b, ctx, &i.queue_url).await?;
                let url = i.queue_url.clone();
                let label = check_remove_permission(i)?;
                self.sh_update(b, ctx, &url, |q| {
                    remove_permission_from(&mut q.attributes, &label)
                })
                .await?;
                Response::Empty(action)
            }
            Request::StartMessageMoveTask(i) => {
                Response::StartMessageMoveTask(self.sh_start_move_task(b, i).await?)
            }
            Request::CancelMessageMoveTask(i) => {
                Response::CancelMessageMoveTask(self.sh_cancel_move_task(b, i).await?)
            }
            Request::ListMessageMoveTasks(i) => {
                Response::ListMessageMoveTasks(self.sh_list_move_tasks(b, i).await?)
            }
        })
    }

    pub(crate) fn sh_arn(&self, q: &SharedQueue) -> String {
        QueueArn::new(&q.region, &self.config.account_id, &q.name).to_string()
    }

    /// Resolves a queue URL (or bare name) in the caller's Region, as [`Engine::resolve`].
    async fn sh_resolve(
        &self,
        b: &dyn QueueBackend,
        ctx: &RequestContext,
        url: &str,
    ) -> SqsResult<SharedQueue> {
        if url.is_empty() {
            return Err(SqsError::missing_parameter("QueueUrl"));
        }
        let (region, name) = self.queue_key_of_url(ctx, url)?;
        b.queue(&region, &name)
            .await?
            .ok_or_else(SqsError::queue_does_not_exist)
    }

    /// A read-modify-write of a queue's catalog row: `change` applies the rules to the queue as
    /// read, and the write succeeds only if nobody changed the queue meanwhile (its `version`);
    /// otherwise it is read again and `change` runs again. Returns the queue as written.
    async fn sh_update(
        &self,
        b: &dyn QueueBackend,
        ctx: &RequestContext,
        url: &str,
        mut change: impl FnMut(&mut SharedQueue) -> SqsResult<()>,
    ) -> SqsResult<SharedQueue> {
        for attempt in 0..UPDATE_ATTEMPTS {
            let mut q = self.sh_resolve(b, ctx, url).await?;
            change(&mut q)?;
            if b.update_queue(&q).await? {
                return Ok(q);
            }
            // Lost the race: back off a jittered, growing while, so that many writers of one
            // queue do not keep colliding (no livelock among concurrent TagQueue calls).
            let cap_ms = 1u64 << attempt.min(6);
            let jitter = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| u64::from(d.subsec_nanos()));
            tokio::time::sleep(std::time::Duration::from_millis(1 + jitter % cap_ms)).await;
        }
        Err(SqsError::internal(
            "the queue kept changing concurrently; try again",
        ))
    }

    /// The queue named by an ARN of this account, if it exists.
    pub(crate) async fn sh_resolve_arn(
        &self,
        b: &dyn QueueBackend,
        arn: &str,
    ) -> SqsResult<Option<SharedQueue>> {
        match QueueArn::parse(arn) {
            Some(a) if a.account == self.config.account_id => b.queue(&a.region, &a.name).await,
            _ => Ok(None),
        }
    }

    /// The dead-letter target a `RedrivePolicy` among `attrs` names, looked up ahead of the
    /// (synchronous) normalisation: ARN → `(fifo, RedriveAllowPolicy)`.
    async fn sh_dlq_facts(
        &self,
        b: &dyn QueueBackend,
        attrs: &BTreeMap<String, String>,
    ) -> SqsResult<BTreeMap<String, (bool, Option<String>)>> {
        let mut facts = BTreeMap::new();
        let arn = attrs
            .get("RedrivePolicy")
            .and_then(|p| serde_json::from_str::<Value>(p).ok())
            .and_then(|v| v.get("deadLetterTargetArn")?.as_str().map(str::to_string));
        if let Some(arn) = arn
            && let Some(q) = self.sh_resolve_arn(b, &arn).await?
        {
            facts.insert(
                arn,
                (q.fifo, q.attributes.get("RedriveAllowPolicy").cloned()),
            );
        }
        Ok(facts)
    }

    async fn sh_create(
        &self,
        b: &dyn QueueBackend,
        ctx: &RequestContext,
        input: CreateQueueInput,
    ) -> SqsResult<QueueUrlOutput> {
        let (name, attrs_in, fifo) = create_queue_request(input.queue_name, input.attributes)?;
        let facts = self.sh_dlq_facts(b, &attrs_in).await?;
        let given =
            self.normalize_attributes_with(&ctx.region, &name, fifo, true, &attrs_in, &|arn| {
                facts.get(arn).cloned()
            })?;
        for (k, v) in &input.tags {
            validate_tag(k, v)?;
        }
        let now = b.now_ms().await?;
        let spec = SharedQueue {
            uid: 0,
            region: ctx.region.clone(),
            name: name.clone(),
            fifo,
            attributes: initial_attributes(fifo, given.clone()),
            tags: input.tags,
            created_secs: now / 1000,
            last_modified_secs: now / 1000,
            last_purge_ms: None,
            partitions: 0,
            version: 0,
        };
        if b.queue(&ctx.region, &name).await?.is_none()
            && let Some(at) = b.deleted_at_ms(&ctx.region, &name).await?
            && now < at + 60_000
        {
            return Err(queue_deleted_recently());
        }
        match b.create_queue(&spec).await? {
            CreateOutcome::Created(_) => {
                tracing::debug!(queue = %name, region = %ctx.region, "queue created");
            }
            CreateOutcome::Existing(q) => {
                if let Some(e) = exists_differently(&q.attributes, q.fifo, fifo, &given) {
                    return Err(e);
                }
            }
        }
        Ok(QueueUrlOutput {
            queue_url: self.queue_url(ctx, &name),
        })
    }

    /// Sends a batch in one backend transaction: each entry's rules first (an entry that fails
    /// them is answered alone), then the valid ones together.
    async fn sh_send(
        &self,
        b: &dyn QueueBackend,
        q: &SharedQueue,
        fields: Vec<SendFields>,
    ) -> SqsResult<Vec<SqsResult<SendMessageOutput>>> {
        let settings = QueueSettings::from_attributes(&q.attributes);
        let mut results: Vec<SqsResult<SendMessageOutput>> = Vec::with_capacity(fields.len());
        let mut batch = Vec::new();
        let mut slots = Vec::new();
        for f in fields {
            match check_send(&settings, &f) {
                Err(e) => results.push(Err(e)),
                Ok(checked) => {
                    // FIFO queues have no per-message delay (only 0 is accepted).
                    let delay = f
                        .delay_seconds
                        .filter(|_| !settings.fifo)
                        .unwrap_or(settings.delay_secs)
                        .max(0) as u64;
                    let (dedup_key, dedup_id) = match checked.dedup {
                        Some((key, id)) => (Some(key), Some(id)),
                        None => (None, f.dedup_id.clone()),
                    };
                    let out = SendMessageOutput {
                        message_id: String::new(),
                        md5_of_message_body: md5_hex(checked.body.as_bytes()),
                        md5_of_message_attributes: md5_of_attributes(&f.attributes),
                        md5_of_message_system_attributes: md5_of_attributes(&f.system_attributes),
                        sequence_number: None,
                    };
                    batch.push(NewMessage {
                        body: checked.body,
                        attributes: f.attributes,
                        system_attributes: f.system_attributes,
                        delay_ms: delay * 1000,
                        group_id: f.group_id,
                        dedup_key,
                        dedup_id,
                    });
                    slots.push((results.len(), checked.size));
                    results.push(Ok(out));
                }
            }
        }
        if batch.is_empty() {
            return Ok(results);
        }
        let sent = b.send(q, batch).await?;
        let counters = self.sh_counters(q);
        for ((slot, size), s) in slots.into_iter().zip(sent) {
            if s.duplicate {
                counters.deduplicated.fetch_add(1, Relaxed);
            } else {
                counters.sent.fetch_add(1, Relaxed);
                counters.sent_bytes.fetch_add(size as u64, Relaxed);
            }
            if let Ok(out) = &mut results[slot] {
                out.message_id = s.message_id;
                if settings.fifo {
                    out.sequence_number = Some(sequence_number(s.seq));
                }
            }
        }
        Ok(results)
    }

    async fn sh_receive(
        &self,
        b: &dyn QueueBackend,
        q: &SharedQueue,
        input: ReceiveMessageInput,
    ) -> SqsResult<ReceiveMessageOutput> {
        let (max, system_names) = check_receive(&input)?;
        let settings = QueueSettings::from_attributes(&q.attributes);
        let visibility = input
            .visibility_timeout
            .unwrap_or(settings.visibility_secs)
            .max(0) as u64;
        let wait = input.wait_time_seconds.unwrap_or(settings.wait_secs).max(0) as u64;
        let source_arn = self.sh_arn(q);
        let mut rule = None;
        if let Some(policy) = q
            .attributes
            .get("RedrivePolicy")
            .and_then(|p| RedrivePolicy::parse_stored(p))
            && let Some(dlq) = self
                .sh_resolve_arn(b, &policy.dead_letter_target_arn)
                .await?
            && dlq.uid != q.uid
        {
            rule = Some(DlqRule {
                max_receive_count: policy.max_receive_count,
                dlq: Box::new(dlq),
                source_arn,
            });
        }
        // The in-flight limit, by the embedded rule: at the limit a standard queue with
        // messages waiting answers OverLimit; otherwise (a FIFO queue, or nothing waiting)
        // the receive gets nothing more, a long poll re-checking each second.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(wait);
        let room = loop {
            let f = self.sh_in_flight(b, q).await?;
            let room = (limits::MAX_INFLIGHT_STANDARD as u64).saturating_sub(f.count);
            if room > 0 {
                break room as usize;
            }
            if !q.fifo && f.any_visible {
                return Err(crate::messages::in_flight_over_limit());
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                break 0;
            }
            tokio::time::sleep(left.min(IN_FLIGHT_RECOUNT)).await;
        };
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let mut got = if room == 0 {
            crate::backend::Received::default()
        } else {
            b.receive(
                q,
                ReceiveSpec {
                    max: max.min(room),
                    visibility_ms: visibility * 1000,
                    wait_ms: left.as_millis() as u64,
                    attempt_id: q
                        .fifo
                        .then(|| input.receive_request_attempt_id.clone())
                        .flatten(),
                },
                &rule,
            )
            .await?
        };
        if let Some((f, _)) = self.shared_in_flight.lock().get_mut(&q.uid) {
            f.in_flight.count += got.delivered.len() as u64;
        }
        // A standard receive visits partitions from a random one; within one answer, oldest
        // first (SQS's best-effort order, and the embedded store's). FIFO answers keep the
        // backend's per-group round-robin.
        if !q.fifo {
            got.delivered.sort_by_key(|m| m.claim.seq);
        }
        let counters = self.sh_counters(q);
        match got.delivered.len() {
            0 => counters.empty_receives.fetch_add(1, Relaxed),
            n => counters.received.fetch_add(n as u64, Relaxed),
        };
        if !got.moved.is_empty() {
            counters
                .moved_to_dlq
                .fetch_add(got.moved.len() as u64, Relaxed);
            if let Some(rule) = &rule {
                let dlq = self.sh_counters(&rule.dlq);
                dlq.dead_letter_arrivals
                    .fetch_add(got.moved.len() as u64, Relaxed);
            }
        }
        let messages = got
            .delivered
            .iter()
            .map(|m| {
                let seq_number = q.fifo.then(|| sequence_number(m.claim.seq));
                let view = RenderView {
                    message_id: &m.message_id,
                    receipt_handle: ReceiptHandle {
                        queue_uid: q.uid,
                        seq: m.claim.seq,
                        receive_count: m.claim.token as u32,
                    }
                    .encode(),
                    sender_id: &self.config.account_id,
                    sent_ms: m.sent_ms,
                    receive_count: m.receive_count,
                    first_receive_ms: Some(m.first_received_ms),
                    group_id: m.group_id.as_deref(),
                    dedup_id: m.dedup_id.as_deref(),
                    sequence_number: seq_number.as_deref(),
                    dead_letter_source_arn: m.dead_letter_source_arn.as_deref(),
                };
                render_message(
                    &view,
                    &m.body,
                    &m.attributes,
                    &m.system_attributes,
                    &input,
                    &system_names,
                )
            })
            .collect();
        Ok(ReceiveMessageOutput { messages })
    }
}

/// Read-modify-write attempts of one queue change (see [`Engine::sh_update`]).
const UPDATE_ATTEMPTS: usize = 24;

/// A batch whose entries are checked one by one, the valid ones applied together in one
/// backend call: each entry's answer, in request order.
struct CheckedBatch<T> {
    /// `(entry index, what to apply)` of the entries that passed their checks.
    valid: Vec<(usize, T)>,
    answers: Vec<Option<SqsResult<()>>>,
}

impl<T: Copy> CheckedBatch<T> {
    fn new(checked: impl IntoIterator<Item = SqsResult<T>>) -> Self {
        let mut batch = CheckedBatch {
            valid: Vec::new(),
            answers: Vec::new(),
        };
        for (slot, c) in checked.into_iter().enumerate() {
            match c {
                Ok(v) => {
                    batch.valid.push((slot, v));
                    batch.answers.push(None);
                }
                Err(e) => batch.answers.push(Some(Err(e))),
            }
        }
        batch
    }

    /// What the valid entries apply, in order.
    fn values(&self) -> Vec<T> {
        self.valid.iter().map(|(_, v)| *v).collect()
    }

    /// The backend's findings for the valid entries (in order), answered by `answer`.
    fn found(
        &mut self,
        checks: Vec<HandleCheck>,
        answer: impl Fn(usize, T, HandleCheck) -> SqsResult<()>,
    ) {
        for (&(slot, v), check) in self.valid.iter().zip(checks) {
            self.answers[slot] = Some(answer(slot, v, check));
        }
    }

    /// The batch's answer, entry ids in request order; `on_success` once per success.
    fn output(
        self,
        ids: impl IntoIterator<Item = String>,
        mut on_success: impl FnMut(),
    ) -> BatchOutput {
        let mut out = BatchOutput::default();
        for (id, answer) in ids.into_iter().zip(self.answers) {
            match answer.expect("every entry answered") {
                Ok(()) => {
                    on_success();
                    out.successful.push(BatchSuccessEntry { id });
                }
                Err(err) => out.failed.push(batch_error(id, &err)),
            }
        }
        out
    }
}

/// A shared queue's in-flight count as this server knows it (see [`Engine::sh_in_flight`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct CountedInFlight {
    /// As read, plus this server's deliveries since.
    pub(crate) in_flight: crate::backend::InFlight,
    /// The read itself reached the cap (so `any_visible` was looked at).
    pub(crate) read_at_cap: bool,
}

/// How long a server believes a shared queue's in-flight count (the in-flight limit).
const IN_FLIGHT_RECOUNT: std::time::Duration = std::time::Duration::from_secs(1);

/// How often each server tries the retention sweep.
pub const SWEEP_EVERY_MS: u64 = 2_000;
/// The retention lease's lifetime: a dead holder's sweep is taken over after it.
pub const SWEEP_LEASE_MS: u64 = 30_000;

/// One retention sweep if this server holds (or takes) the lease: messages past their queue's
/// `MessageRetentionPeriod` are deleted, with expired deduplication entries.
async fn sweep_once(b: &dyn QueueBackend, holder: &str) -> SqsResult<()> {
    if !b.lease("retention", holder, SWEEP_LEASE_MS).await? {
        return Ok(());
    }
    for q in b.all_queues().await? {
        let retention = QueueSettings::from_attributes(&q.attributes).retention_secs;
        let n = b.expire(&q, (retention.max(0) as u64) * 1000).await?;
        if n > 0 {
            tracing::debug!(queue = %q.name, expired = n, "messages past retention deleted");
        }
    }
    Ok(())
}

/// The claim a receipt handle names, if it was issued for `q`.
fn claim_of(q: &SharedQueue, handle: &str) -> SqsResult<Claim> {
    match ReceiptHandle::decode(handle) {
        Some(h) if h.queue_uid == q.uid && h.receive_count > 0 => Ok(Claim {
            seq: h.seq,
            token: u64::from(h.receive_count),
        }),
        _ => Err(SqsError::receipt_handle_invalid(handle)),
    }
}

/// Deletes by receipt handle. A stale handle of a standard queue is a success (AWS: "the
/// request succeeds, but the message might not be deleted"); FIFO says it has expired.
async fn sh_delete(b: &dyn QueueBackend, q: &SharedQueue, handle: &str) -> SqsResult<()> {
    let claim = claim_of(q, handle)?;
    let check = b.delete(q, claim).await?;
    delete_outcome(q, check, handle)
}

/// What a delete by `handle` answers, given what the backend found.
fn delete_outcome(q: &SharedQueue, check: HandleCheck, handle: &str) -> SqsResult<()> {
    match check {
        HandleCheck::Applied => Ok(()),
        HandleCheck::Stale | HandleCheck::NotInFlight | HandleCheck::BeyondLimit if q.fifo => Err(
            SqsError::invalid_value("ReceiptHandle", handle, "The receipt handle has expired."),
        ),
        HandleCheck::Stale | HandleCheck::NotInFlight | HandleCheck::BeyondLimit => Ok(()),
    }
}

async fn sh_change_visibility(
    b: &dyn QueueBackend,
    q: &SharedQueue,
    handle: &str,
    timeout: Option<i64>,
) -> SqsResult<()> {
    let timeout = check_visibility_timeout(timeout)?;
    let claim = claim_of(q, handle)?;
    let check = b
        .change_visibility(q, claim, (timeout as u64) * 1000)
        .await?;
    visibility_outcome(check, handle, timeout)
}

/// What a visibility change by `handle` to `timeout` answers, given what the backend found.
fn visibility_outcome(check: HandleCheck, handle: &str, timeout: i64) -> SqsResult<()> {
    match check {
        HandleCheck::Applied => Ok(()),
        HandleCheck::NotInFlight => Err(SqsError::new(
            ErrorCode::MessageNotInflight,
            format!("Message with receipt handle {handle} is not in flight."),
        )),
        HandleCheck::Stale => Err(SqsError::invalid_value(
            "ReceiptHandle",
            handle,
            "Message does not exist or is not available for visibility timeout change.",
        )),
        HandleCheck::BeyondLimit => Err(SqsError::invalid_value(
            "VisibilityTimeout",
            timeout,
            "Total VisibilityTimeout for the message is beyond the limit [43200 seconds]",
        )),
    }
}
