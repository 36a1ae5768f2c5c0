//! Message-level actions: send, receive (with long polling and the lazy DLQ move), delete,
//! change visibility.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use redrive_core::api::*;
use redrive_core::digest::{md5_hex, md5_of_attributes, sha256_hex};
use redrive_core::{ErrorCode, SqsError, SqsResult, limits, validate};

use crate::metrics::Tally;
use crate::queue::{DedupEntry, QueueState};
use crate::receipt::ReceiptHandle;
use crate::store::{MessageRecord, Mutation};
use crate::{Engine, Queue, RequestContext};

/// What one receive attempt produced: messages, the queue's next timer, the DLQs that got
/// messages (with how many), and the durability ticket of the changes.
type ReceiveAttempt = (
    Vec<ReceivedMessage>,
    Option<u64>,
    Vec<(Arc<Queue>, u64)>,
    Vec<crate::store::Durable>,
);

/// What one receive did with a candidate message.
enum Taken {
    /// Handed out (now in flight), with its payload.
    Received(Arc<crate::store::MessagePayload>),
    /// Its payload is gone from the store (quarantined): dropped from memory too.
    Gone,
    /// Moved to the dead-letter queue.
    Moved,
    /// Left where it is (the DLQ was busy).
    Kept,
}

/// The fields of a send, shared by SendMessage and each SendMessageBatch entry.
pub(crate) struct SendFields {
    pub(crate) body: Option<String>,
    pub(crate) delay_seconds: Option<i64>,
    pub(crate) attributes: MessageAttributes,
    pub(crate) system_attributes: MessageAttributes,
    pub(crate) dedup_id: Option<String>,
    pub(crate) group_id: Option<String>,
}

impl From<SendMessageInput> for SendFields {
    fn from(i: SendMessageInput) -> Self {
        SendFields {
            body: i.message_body,
            delay_seconds: i.delay_seconds,
            attributes: i.message_attributes,
            system_attributes: i.message_system_attributes,
            dedup_id: i.message_deduplication_id,
            group_id: i.message_group_id,
        }
    }
}

impl From<SendMessageBatchRequestEntry> for SendFields {
    fn from(i: SendMessageBatchRequestEntry) -> Self {
        SendFields {
            body: i.message_body,
            delay_seconds: i.delay_seconds,
            attributes: i.message_attributes,
            system_attributes: i.message_system_attributes,
            dedup_id: i.message_deduplication_id,
            group_id: i.message_group_id,
        }
    }
}

fn not_for_queue_type(param: &str, value: impl std::fmt::Display) -> SqsError {
    SqsError::invalid_value(
        param,
        value,
        "The request include parameter that is not valid for this queue type.",
    )
}

/// A message attribute filter entry matches `All`, `.*`, an exact name or a `prefix.*`.
fn attribute_selected(filters: &[String], name: &str) -> bool {
    filters.iter().any(|f| {
        f == "All"
            || f == ".*"
            || f == "*"
            || f == name
            // `bar.*` matches `bar.baz`; like moto it also matches `bar1` (a superset).
            || f.strip_suffix(".*").is_some_and(|p| name.starts_with(p))
    })
}

const VALID_SYSTEM_NAMES: &[&str] = &[
    "All",
    "SenderId",
    "SentTimestamp",
    "ApproximateReceiveCount",
    "ApproximateFirstReceiveTimestamp",
    "SequenceNumber",
    "MessageDeduplicationId",
    "MessageGroupId",
    "AWSTraceHeader",
    "DeadLetterQueueSourceArn",
];

/// `ChangeMessageVisibility`'s timeout: present and within 0..=43200 (both backends).
pub(crate) fn check_visibility_timeout(timeout: Option<i64>) -> SqsResult<i64> {
    let timeout = timeout.ok_or_else(|| SqsError::missing_parameter("VisibilityTimeout"))?;
    if !(0..=limits::MAX_VISIBILITY_TIMEOUT).contains(&timeout) {
        return Err(SqsError::invalid_value(
            "VisibilityTimeout",
            timeout,
            "Must be between 0 and 43200, if provided.",
        ));
    }
    Ok(timeout)
}

/// What a received message shows besides its payload (both backends).
pub(crate) struct RenderView<'a> {
    pub message_id: &'a str,
    pub receipt_handle: String,
    pub sender_id: &'a str,
    pub sent_ms: u64,
    pub receive_count: u32,
    pub first_receive_ms: Option<u64>,
    pub group_id: Option<&'a str>,
    pub dedup_id: Option<&'a str>,
    pub sequence_number: Option<&'a str>,
    pub dead_letter_source_arn: Option<&'a str>,
}

/// A received message as SQS renders it: the system attributes asked for, the message
/// attributes selected by name, and their digests.
pub(crate) fn render_message(
    m: &RenderView<'_>,
    body: &str,
    attributes: &MessageAttributes,
    system_attributes: &MessageAttributes,
    input: &ReceiveMessageInput,
    system_names: &[String],
) -> ReceivedMessage {
    let want = |n: &str| system_names.iter().any(|x| x == "All" || x == n);
    let mut attrs = BTreeMap::new();
    let mut put = |k: &str, v: Option<String>| {
        if let Some(v) = v
            && want(k)
        {
            attrs.insert(k.to_string(), v);
        }
    };
    put("SenderId", Some(m.sender_id.to_string()));
    put("SentTimestamp", Some(m.sent_ms.to_string()));
    put("ApproximateReceiveCount", Some(m.receive_count.to_string()));
    put(
        "ApproximateFirstReceiveTimestamp",
        m.first_receive_ms.map(|t| t.to_string()),
    );
    put("MessageGroupId", m.group_id.map(str::to_string));
    put("MessageDeduplicationId", m.dedup_id.map(str::to_string));
    put("SequenceNumber", m.sequence_number.map(str::to_string));
    put(
        "AWSTraceHeader",
        system_attributes
            .get("AWSTraceHeader")
            .and_then(|v| v.string_value.clone()),
    );
    put(
        "DeadLetterQueueSourceArn",
        m.dead_letter_source_arn.map(str::to_string),
    );
    let message_attributes: MessageAttributes = attributes
        .iter()
        .filter(|(k, _)| attribute_selected(&input.message_attribute_names, k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    ReceivedMessage {
        message_id: m.message_id.to_string(),
        receipt_handle: m.receipt_handle.clone(),
        md5_of_body: md5_hex(body.as_bytes()),
        body: body.to_string(),
        attributes: attrs,
        md5_of_message_attributes: md5_of_attributes(&message_attributes),
        message_attributes,
    }
}

/// The request rules of `ReceiveMessage`, shared by both backends: the number of messages
/// (default 1), and the system attribute names asked for.
pub(crate) fn check_receive(input: &ReceiveMessageInput) -> SqsResult<(usize, Vec<String>)> {
    let max = match input.max_number_of_messages {
        None => 1,
        Some(n) if (1..=limits::MAX_RECEIVE_MESSAGES).contains(&n) => n as usize,
        Some(n) => {
            return Err(SqsError::invalid_value(
                "MaxNumberOfMessages",
                n,
                "Must be between 1 and 10, if provided.",
            ));
        }
    };
    if let Some(v) = input.visibility_timeout
        && !(0..=limits::MAX_VISIBILITY_TIMEOUT).contains(&v)
    {
        return Err(SqsError::invalid_value(
            "VisibilityTimeout",
            v,
            "Must be between 0 and 43200, if provided.",
        ));
    }
    if let Some(w) = input.wait_time_seconds
        && !(0..=limits::MAX_WAIT_TIME_SECONDS).contains(&w)
    {
        return Err(SqsError::invalid_value(
            "WaitTimeSeconds",
            w,
            "Must be >= 0 and <= 20, if provided.",
        ));
    }
    let system_names: Vec<String> = input
        .attribute_names
        .iter()
        .chain(&input.message_system_attribute_names)
        .cloned()
        .collect();
    for n in &system_names {
        if !VALID_SYSTEM_NAMES.contains(&n.as_str()) && !redrive_core::attributes::is_known(n) {
            return Err(SqsError::invalid_attribute_name(n));
        }
    }
    if let Some(id) = &input.receive_request_attempt_id {
        validate::group_style_id("ReceiveRequestAttemptId", id)?;
    }
    Ok((max, system_names))
}

/// The whole-request rules of `SendMessageBatch` (ids, total size, FIFO group and
/// deduplication ids present), shared by both backends.
pub(crate) fn check_send_batch(
    settings: &crate::queue::QueueSettings,
    input: &SendMessageBatchInput,
) -> SqsResult<()> {
    let ids: Vec<&str> = input.entries.iter().map(|e| e.id.as_str()).collect();
    validate::batch_ids("SendMessageBatchRequestEntry", &ids)?;
    let total: usize = input
        .entries
        .iter()
        .map(|e| {
            validate::message_size(
                e.message_body.as_deref().unwrap_or(""),
                &e.message_attributes,
            )
        })
        .sum();
    if total > limits::MAX_MESSAGE_SIZE {
        return Err(SqsError::new(
            ErrorCode::BatchRequestTooLong,
            format!(
                "Batch requests cannot be longer than {} bytes. You have sent {total} bytes.",
                limits::MAX_MESSAGE_SIZE
            ),
        ));
    }
    // FIFO: a missing group id or dedup id fails the whole request, as in SQS.
    if settings.fifo {
        // AWS answers InvalidParameterValue here (a single send says MissingParameter).
        if input.entries.iter().any(|e| e.message_group_id.is_none()) {
            return Err(SqsError::invalid_parameter(
                "The request must contain the parameter MessageGroupId.",
            ));
        }
        if !settings.content_based_dedup
            && input
                .entries
                .iter()
                .any(|e| e.message_deduplication_id.is_none())
        {
            return Err(SqsError::invalid_parameter(
                "The queue should either have ContentBasedDeduplication enabled or MessageDeduplicationId provided explicitly",
            ));
        }
    }
    Ok(())
}

/// A send that passed the rules: the body, its size, and (FIFO) the deduplication
/// `(key, id)` (the key includes the group when deduplication is per group).
pub(crate) struct CheckedSend {
    pub body: String,
    pub size: usize,
    pub dedup: Option<(String, String)>,
}

/// The rules of one send, shared by both backends: body, attributes and size limits, delay,
/// FIFO group and deduplication id (given, or the body's digest).
pub(crate) fn check_send(
    settings: &crate::queue::QueueSettings,
    fields: &SendFields,
) -> SqsResult<CheckedSend> {
    let body = validate::message_body(fields.body.as_deref())?.to_string();
    validate::message_attributes(&fields.attributes)?;
    validate::message_system_attributes(&fields.system_attributes)?;
    let size = validate::message_size(&body, &fields.attributes);
    if size as i64 > settings.max_message_size {
        return Err(SqsError::invalid_parameter(format!(
            "One or more parameters are invalid. Reason: Message must be shorter than {} bytes.",
            settings.max_message_size
        )));
    }
    if let Some(d) = fields.delay_seconds
        && !(0..=limits::MAX_DELAY_SECONDS).contains(&d)
    {
        return Err(SqsError::invalid_value(
            "DelaySeconds",
            d,
            "DelaySeconds must be >= 0 and <= 900.",
        ));
    }
    if let Some(g) = &fields.group_id {
        validate::group_style_id("MessageGroupId", g)?;
    }
    if !settings.fifo {
        if let Some(id) = &fields.dedup_id {
            validate::group_style_id("MessageDeduplicationId", id)?;
        }
        return Ok(CheckedSend {
            body,
            size,
            dedup: None,
        });
    }
    let Some(group) = &fields.group_id else {
        return Err(SqsError::missing_parameter("MessageGroupId"));
    };
    if let Some(d) = fields.delay_seconds.filter(|d| *d != 0) {
        return Err(not_for_queue_type("DelaySeconds", d));
    }
    let id = match &fields.dedup_id {
        Some(id) => {
            validate::group_style_id("MessageDeduplicationId", id)?;
            id.clone()
        }
        None if settings.content_based_dedup => sha256_hex(body.as_bytes()),
        None => {
            return Err(SqsError::invalid_parameter(
                "The queue should either have ContentBasedDeduplication enabled or MessageDeduplicationId provided explicitly",
            ));
        }
    };
    let key = if settings.dedup_per_group {
        format!("{group}\u{0}{id}")
    } else {
        id.clone()
    };
    Ok(CheckedSend {
        body,
        size,
        dedup: Some((key, id)),
    })
}

impl Engine {
    /// Validates one send against the queue and enqueues it (or answers a FIFO duplicate).
    fn enqueue(
        &self,
        queue: &Queue,
        st: &mut QueueState,
        fields: SendFields,
        now: u64,
        muts: &mut Vec<Mutation>,
        tally: &mut Tally,
    ) -> SqsResult<SendMessageOutput> {
        let CheckedSend {
            body,
            size,
            dedup: checked_dedup,
        } = check_send(&st.settings, &fields)?;
        let mut sequence_number = None;
        let mut dedup_id = None;
        if let Some((key, id)) = checked_dedup.filter(|_| st.settings.fifo) {
            if let Some(e) = st.dedup.get(&key)
                && e.expires_ms > now
            {
                tally.deduplicated += 1;
                return Ok(SendMessageOutput {
                    message_id: e.message_id.clone(),
                    md5_of_message_body: md5_hex(body.as_bytes()),
                    md5_of_message_attributes: md5_of_attributes(&fields.attributes),
                    md5_of_message_system_attributes: md5_of_attributes(&fields.system_attributes),
                    sequence_number: Some(e.sequence_number.clone()),
                });
            }
            let sn = self.next_sequence_number();
            sequence_number = Some(sn);
            dedup_id = Some((key, id));
        } else if let Some(id) = &fields.dedup_id {
            // Accepted and returned on standard queues, without deduplication (as moto).
            dedup_id = Some((String::new(), id.clone()));
        }

        let message_id = uuid::Uuid::new_v4().to_string();
        if let (Some((key, _)), Some(sn), true) = (&dedup_id, &sequence_number, st.settings.fifo) {
            let expires = now + limits::DEDUP_INTERVAL_MS;
            st.dedup.insert(
                key.clone(),
                DedupEntry {
                    expires_ms: expires,
                    message_id: message_id.clone(),
                    sequence_number: sn.clone(),
                },
            );
            st.dedup_expiry.insert((expires, key.clone()));
            muts.push(Mutation::PutDedup(crate::store::DedupRecord {
                queue_uid: queue.uid,
                key: key.clone(),
                expires_ms: expires,
                message_id: message_id.clone(),
                sequence_number: sn.clone(),
            }));
        }
        // FIFO queues have no per-message delay (only 0 is accepted): the queue's applies.
        let delay = fields
            .delay_seconds
            .filter(|_| !st.settings.fifo)
            .unwrap_or(st.settings.delay_secs)
            .max(0) as u64;
        let out = SendMessageOutput {
            message_id: message_id.clone(),
            md5_of_message_body: md5_hex(body.as_bytes()),
            md5_of_message_attributes: md5_of_attributes(&fields.attributes),
            md5_of_message_system_attributes: md5_of_attributes(&fields.system_attributes),
            sequence_number: sequence_number.clone(),
        };
        let seq = st.alloc_seq();
        let rec = MessageRecord {
            queue_uid: queue.uid,
            seq,
            message_id,
            payload: crate::store::Payload::new(body, fields.attributes, fields.system_attributes),
            sender_id: self.config.account_id.clone(),
            sent_ms: now,
            enqueued_ms: now,
            visible_at_ms: now + delay * 1000,
            receive_count: 0,
            first_receive_ms: None,
            last_receive_ms: None,
            group_id: fields.group_id,
            dedup_id: dedup_id.map(|(_, id)| id),
            sequence_number,
            dead_letter_source_arn: None,
            dead_lettered_ms: None,
        };
        muts.push(Mutation::PutMessage(rec.clone()));
        st.insert(self.kept(rec), now);
        tally.sent += 1;
        tally.sent_bytes += size as u64;
        Ok(out)
    }

    pub async fn send_message(
        &self,
        ctx: &RequestContext,
        input: SendMessageInput,
    ) -> SqsResult<SendMessageOutput> {
        let queue = self.resolve(ctx, &input.queue_url)?;
        self.admit_growth()?;
        let now = self.now_ms();
        let mut muts = Vec::new();
        let mut tally = Tally::default();
        let (out, ticket) = {
            let mut st = queue.state.lock();
            st.tick(now, &mut muts);
            let out = self.enqueue(&queue, &mut st, input.into(), now, &mut muts, &mut tally);
            (out, self.store.submit(muts))
        };
        let out = out?;
        queue.notify.notify_waiters();
        self.durable(ticket).await?;
        queue.counters.add(&tally);
        Ok(out)
    }

    pub async fn send_message_batch(
        &self,
        ctx: &RequestContext,
        input: SendMessageBatchInput,
    ) -> SqsResult<SendMessageBatchOutput> {
        let queue = self.resolve(ctx, &input.queue_url)?;
        self.admit_growth()?;
        check_send_batch(&queue.state.lock().settings, &input)?;
        let now = self.now_ms();
        let mut muts = Vec::new();
        let mut output = SendMessageBatchOutput::default();
        let mut tally = Tally::default();
        let ticket = {
            let mut st = queue.state.lock();
            st.tick(now, &mut muts);
            for entry in input.entries {
                let id = entry.id.clone();
                match self.enqueue(&queue, &mut st, entry.into(), now, &mut muts, &mut tally) {
                    Ok(result) => output
                        .successful
                        .push(SendMessageBatchResultEntry { id, result }),
                    Err(e) => output.failed.push(batch_error(id, &e)),
                }
            }
            self.store.submit(muts)
        };
        if !output.successful.is_empty() {
            queue.notify.notify_waiters();
        }
        self.durable(ticket).await?;
        queue.counters.add(&tally);
        Ok(output)
    }

    pub async fn receive_message(
        &self,
        ctx: &RequestContext,
        input: ReceiveMessageInput,
    ) -> SqsResult<ReceiveMessageOutput> {
        let queue = self.resolve(ctx, &input.queue_url)?;
        let (max, system_names) = check_receive(&input)?;
        let wait_secs = {
            let st = queue.state.lock();
            input.wait_time_seconds.unwrap_or(st.settings.wait_secs)
        };
        let deadline = self.now_ms() + (wait_secs.max(0) as u64) * 1000;
        loop {
            let notified = queue.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();

            let (messages, next_wake, moved_to, tickets) =
                self.receive_once(&queue, &input, &system_names, max)?;
            for ticket in tickets {
                self.durable(ticket).await?;
            }
            for (dlq, moved) in moved_to {
                queue
                    .counters
                    .moved_to_dlq
                    .fetch_add(moved, Ordering::Relaxed);
                dlq.counters
                    .dead_letter_arrivals
                    .fetch_add(moved, Ordering::Relaxed);
                dlq.notify.notify_waiters();
            }
            let now = self.now_ms();
            if !messages.is_empty() || now >= deadline || queue.state.lock().deleted {
                queue.counters.add(&Tally {
                    received: messages.len() as u64,
                    empty_receives: u64::from(messages.is_empty()),
                    ..Tally::default()
                });
                return Ok(ReceiveMessageOutput { messages });
            }
            let wake_at = next_wake.map_or(deadline, |t| t.min(deadline));
            let sleep = Duration::from_millis(wake_at.saturating_sub(now).max(1));
            tokio::select! {
                _ = &mut notified => {}
                _ = tokio::time::sleep(sleep) => {}
            }
        }
    }

    /// One non-blocking receive attempt. Returns the messages, the queue's next timer, the
    /// DLQs that got messages, and the durability ticket of the changes.
    fn receive_once(
        &self,
        queue: &Arc<Queue>,
        input: &ReceiveMessageInput,
        system_names: &[String],
        max: usize,
    ) -> SqsResult<ReceiveAttempt> {
        // Resolve the DLQ before taking the queue lock (registry before queue, never after).
        let policy = queue.state.lock().redrive_policy();
        let dlq = policy
            .as_ref()
            .and_then(|p| self.resolve_arn(&p.dead_letter_target_arn))
            .filter(|d| !Arc::ptr_eq(d, queue));
        let now = self.now_ms();
        let mut muts = Vec::new();
        let mut out = Vec::new();
        let mut moved_to = Vec::new();
        let mut move_tickets = Vec::new();
        let (next_wake, ticket, wake) = {
            let mut st = queue.state.lock();
            if st.deleted {
                return Err(SqsError::queue_does_not_exist());
            }
            st.tick(now, &mut muts);
            let visibility = input
                .visibility_timeout
                .unwrap_or(st.settings.visibility_secs);
            // In-flight cap: standard queues refuse with OverLimit, FIFO queues return nothing
            // more (sqs-semantics.md §3).
            let room = limits::MAX_INFLIGHT_STANDARD.saturating_sub(st.in_flight.len());
            let over_limit = room == 0 && !st.settings.fifo && !st.ready.is_empty();
            let max = max.min(room);
            // FIFO: a retried ReceiveRequestAttemptId returns the same messages and handles.
            if let Some(replay) = self.replay_attempt(
                queue,
                &mut st,
                input,
                system_names,
                now,
                visibility,
                &mut muts,
            ) {
                let next = st.next_wakeup_ms();
                let ticket = self.store.submit(muts);
                if st.take_wake() {
                    drop(st);
                    queue.notify.notify_waiters();
                }
                return Ok((replay, next, Vec::new(), vec![ticket]));
            }
            let mut take = |st: &mut QueueState, seq: u64, muts: &mut Vec<Mutation>| {
                let count = st.messages.get(&seq).map_or(0, |m| m.rec.receive_count);
                if let (Some(p), Some(dlq)) = (&policy, &dlq)
                    && count >= p.max_receive_count
                {
                    let Some(t) = self.move_to_dlq(queue, st, dlq, seq, now) else {
                        return Taken::Kept;
                    };
                    move_tickets.push(t);
                    match moved_to
                        .iter_mut()
                        .find(|(q, _): &&mut (Arc<Queue>, u64)| Arc::ptr_eq(q, dlq))
                    {
                        Some((_, n)) => *n += 1,
                        None => moved_to.push((dlq.clone(), 1)),
                    }
                    return Taken::Moved;
                }
                // The payload first (from the store's cache or file): a message that cannot be
                // read is not handed out.
                let payload = match st.messages.get(&seq).map(|m| self.payload_of(&m.rec)) {
                    Some(Ok(p)) => p,
                    Some(Err(crate::Unreadable::Gone)) => {
                        st.remove(seq);
                        muts.push(Mutation::DeleteMessage {
                            queue_uid: queue.uid,
                            seq,
                        });
                        return Taken::Gone;
                    }
                    _ => return Taken::Kept,
                };
                match st.mark_received(seq, now, visibility) {
                    Some(m) => {
                        muts.push(m);
                        Taken::Received(payload)
                    }
                    None => Taken::Kept,
                }
            };
            if st.settings.fifo {
                // Round-robin across the unlocked groups, each group's messages in order. A
                // group whose message cannot be handed out (DLQ busy) gives nothing more, so
                // its later messages never overtake it.
                let mut rounds = crate::queue::GroupRounds::default();
                while out.len() < max {
                    let Some(seq) = st.next_in_rounds(&mut rounds, max - out.len()) else {
                        break;
                    };
                    match take(&mut st, seq, &mut muts) {
                        Taken::Received(p) => {
                            out.push(self.render(queue, &st, seq, &p, input, system_names))
                        }
                        Taken::Moved | Taken::Gone => {}
                        Taken::Kept => rounds.drop_last(),
                    }
                }
            } else {
                let mut skipped = std::collections::HashSet::new();
                while out.len() < max {
                    let picked: Vec<u64> = st
                        .pick_ready(max - out.len() + skipped.len())
                        .into_iter()
                        .filter(|s| !skipped.contains(s))
                        .collect();
                    if picked.is_empty() {
                        break;
                    }
                    for seq in picked {
                        if out.len() >= max {
                            break;
                        }
                        match take(&mut st, seq, &mut muts) {
                            Taken::Received(p) => {
                                out.push(self.render(queue, &st, seq, &p, input, system_names))
                            }
                            Taken::Moved | Taken::Gone => {}
                            Taken::Kept => {
                                skipped.insert(seq);
                            }
                        }
                    }
                }
            }
            if st.settings.fifo
                && !out.is_empty()
                && let Some(id) = &input.receive_request_attempt_id
            {
                let seqs = out
                    .iter()
                    .filter_map(|m| ReceiptHandle::decode(&m.receipt_handle))
                    .filter_map(|h| {
                        let deadline = st.messages.get(&h.seq)?.rec.visible_at_ms;
                        Some((h.seq, h.receive_count, deadline))
                    })
                    .collect();
                muts.extend(st.record_attempt(id.clone(), now + limits::DEDUP_INTERVAL_MS, seqs));
            }
            let next = st.next_wakeup_ms();
            let ticket = self.store.submit(muts);
            let wake = st.take_wake();
            if over_limit {
                drop(ticket);
                return Err(in_flight_over_limit());
            }
            (next, ticket, wake)
        };
        // Another waiter may now have something to do sooner (a group unlocked by a timer,
        // or a visibility deadline earlier than its sleep).
        if wake {
            queue.notify.notify_waiters();
        }
        move_tickets.push(ticket);
        Ok((out, next_wake, moved_to, move_tickets))
    }

    /// Replays a FIFO receive attempt: when the same `ReceiveRequestAttemptId` comes back
    /// within 5 minutes and none of its messages was deleted or changed since, the same
    /// messages and receipt handles are returned and their visibility timeout restarts.
    #[allow(clippy::too_many_arguments)]
    fn replay_attempt(
        &self,
        queue: &Queue,
        st: &mut QueueState,
        input: &ReceiveMessageInput,
        system_names: &[String],
        now: u64,
        visibility: i64,
        muts: &mut Vec<Mutation>,
    ) -> Option<Vec<ReceivedMessage>> {
        if !st.settings.fifo {
            return None;
        }
        let id = input.receive_request_attempt_id.as_ref()?;
        let seqs = st.attempt(id, now)?;
        // Unchanged: still in flight from that receive, deadline not moved since.
        let unchanged = seqs.iter().all(|(seq, count, deadline)| {
            st.messages.get(seq).is_some_and(|m| {
                m.state == crate::queue::MessageState::InFlight
                    && m.rec.receive_count == *count
                    && m.rec.visible_at_ms == *deadline
            })
        });
        if !unchanged {
            return None;
        }
        let deadline = now + (visibility.max(0) as u64) * 1000;
        // Every payload first: an attempt whose messages cannot all be read is not replayed.
        let payloads = seqs
            .iter()
            .map(|(seq, _, _)| self.payload_of(&st.messages[seq].rec).ok())
            .collect::<Option<Vec<_>>>()?;
        let mut out = Vec::new();
        let mut replayed = Vec::new();
        for ((seq, count, _), payload) in seqs.into_iter().zip(payloads) {
            if let Some(m) = st.change_visibility(seq, deadline) {
                muts.push(m);
            }
            replayed.push((seq, count, deadline));
            out.push(self.render(queue, st, seq, &payload, input, system_names));
        }
        muts.extend(st.record_attempt(id.clone(), now + limits::DEDUP_INTERVAL_MS, replayed));
        Some(out)
    }

    /// The lazy DLQ move: source and DLQ change in one store batch, so the message is always
    /// in exactly one queue. Uses `try_lock` on the DLQ to avoid lock-order deadlocks; on
    /// contention the message stays and moves on a later receive.
    fn move_to_dlq(
        &self,
        source: &Queue,
        st: &mut QueueState,
        dlq: &Arc<Queue>,
        seq: u64,
        now: u64,
    ) -> Option<crate::store::Durable> {
        let mut dst = dlq.state.try_lock()?;
        if dst.deleted {
            return None;
        }
        // The DLQ's copy is written whole: read the payload before anything changes.
        let payload = self.payload_of(&st.messages.get(&seq)?.rec).ok()?;
        let m = st.remove(seq)?;
        let mut rec = m.rec.to_record();
        rec.payload = crate::store::Payload::Loaded(payload);
        let mut muts = vec![Mutation::DeleteMessage {
            queue_uid: source.uid,
            seq,
        }];
        rec.queue_uid = dlq.uid;
        rec.seq = dst.alloc_seq();
        rec.visible_at_ms = now;
        rec.dead_letter_source_arn = Some(source.arn.clone());
        rec.dead_lettered_ms = Some(now);
        if dst.settings.fifo {
            rec.enqueued_ms = now;
        }
        if let Some(d) = dead_letter_dedup_id(dst.settings.fifo, &rec.message_id) {
            rec.dedup_id = Some(d);
        }
        muts.push(Mutation::PutMessage(rec.clone()));
        self.note_dead_letter(&rec, now);
        dst.insert(self.kept(rec), now);
        // Submitted with both locks held, so no DLQ consumer's change can reach the store
        // before the message's arrival does.
        let ticket = self.store.submit(muts);
        tracing::debug!(source = %source.name, dlq = %dlq.name, "message moved to dead-letter queue");
        Some(ticket)
    }

    fn render(
        &self,
        queue: &Queue,
        st: &QueueState,
        seq: u64,
        payload: &crate::store::MessagePayload,
        input: &ReceiveMessageInput,
        system_names: &[String],
    ) -> ReceivedMessage {
        let m = &st.messages[&seq].rec;
        let message_id = m.message_id();
        let view = RenderView {
            message_id: &message_id,
            receipt_handle: ReceiptHandle {
                queue_uid: queue.uid,
                seq,
                receive_count: m.receive_count,
            }
            .encode(),
            sender_id: &m.sender_id,
            sent_ms: m.sent_ms,
            receive_count: m.receive_count,
            first_receive_ms: m.first_receive_ms(),
            group_id: m.group_id.as_deref(),
            dedup_id: m.dedup_id(),
            sequence_number: m.sequence_number(),
            dead_letter_source_arn: m.dead_letter_source_arn(),
        };
        render_message(
            &view,
            &payload.body,
            &payload.attributes,
            &payload.system_attributes,
            input,
            system_names,
        )
    }

    fn decode_handle(queue: &Queue, handle: &str) -> SqsResult<ReceiptHandle> {
        match ReceiptHandle::decode(handle) {
            Some(h) if h.queue_uid == queue.uid && h.receive_count > 0 => Ok(h),
            _ => Err(SqsError::receipt_handle_invalid(handle)),
        }
    }

    /// Deletes by receipt handle under an already-held lock. An unknown (already deleted)
    /// message is a success, as in SQS.
    fn delete_locked(
        queue: &Queue,
        st: &mut QueueState,
        handle: &str,
        muts: &mut Vec<Mutation>,
        tally: &mut Tally,
    ) -> SqsResult<()> {
        let h = Self::decode_handle(queue, handle)?;
        if let Some(m) = st.messages.get(&h.seq) {
            if h.receive_count > m.rec.receive_count {
                return Err(SqsError::receipt_handle_invalid(handle));
            }
            // FIFO: a handle whose visibility ended (the message is visible again, or was
            // received again since) no longer deletes; standard queues still delete.
            if st.settings.fifo
                && (m.state != crate::queue::MessageState::InFlight
                    || h.receive_count < m.rec.receive_count)
            {
                return Err(SqsError::invalid_value(
                    "ReceiptHandle",
                    handle,
                    "The receipt handle has expired.",
                ));
            }
            st.remove(h.seq);
            muts.push(Mutation::DeleteMessage {
                queue_uid: queue.uid,
                seq: h.seq,
            });
        }
        tally.deleted += 1;
        Ok(())
    }

    pub async fn delete_message(
        &self,
        ctx: &RequestContext,
        input: DeleteMessageInput,
    ) -> SqsResult<()> {
        let queue = self.resolve(ctx, &input.queue_url)?;
        let handle = input
            .receipt_handle
            .ok_or_else(|| SqsError::missing_parameter("ReceiptHandle"))?;
        let now = self.now_ms();
        let mut muts = Vec::new();
        let mut tally = Tally::default();
        let (result, ticket, wake) = {
            let mut st = queue.state.lock();
            // Due visibility deadlines first: a FIFO handle whose visibility ended is expired.
            st.tick(now, &mut muts);
            let r = Self::delete_locked(&queue, &mut st, &handle, &mut muts, &mut tally);
            (r, self.store.submit(muts), st.take_wake())
        };
        // Deleting the last in-flight message of a FIFO group unlocks it: wake long polls.
        if wake {
            queue.notify.notify_waiters();
        }
        result?;
        self.durable(ticket).await?;
        queue.counters.add(&tally);
        Ok(())
    }

    pub async fn delete_message_batch(
        &self,
        ctx: &RequestContext,
        input: DeleteMessageBatchInput,
    ) -> SqsResult<BatchOutput> {
        let queue = self.resolve(ctx, &input.queue_url)?;
        let ids: Vec<&str> = input.entries.iter().map(|e| e.id.as_str()).collect();
        validate::batch_ids("DeleteMessageBatchRequestEntry", &ids)?;
        let now = self.now_ms();
        let mut out = BatchOutput::default();
        let mut muts = Vec::new();
        let mut tally = Tally::default();
        let (ticket, wake) = {
            let mut st = queue.state.lock();
            st.tick(now, &mut muts);
            for e in input.entries {
                match Self::delete_locked(&queue, &mut st, &e.receipt_handle, &mut muts, &mut tally)
                {
                    Ok(()) => out.successful.push(BatchSuccessEntry { id: e.id }),
                    Err(err) => out.failed.push(batch_error(e.id, &err)),
                }
            }
            (self.store.submit(muts), st.take_wake())
        };
        if wake {
            queue.notify.notify_waiters();
        }
        self.durable(ticket).await?;
        queue.counters.add(&tally);
        Ok(out)
    }

    fn change_visibility_locked(
        queue: &Queue,
        st: &mut QueueState,
        handle: &str,
        timeout: Option<i64>,
        now: u64,
        muts: &mut Vec<Mutation>,
    ) -> SqsResult<()> {
        let timeout = check_visibility_timeout(timeout)?;
        let h = Self::decode_handle(queue, handle)?;
        let unavailable = || {
            SqsError::invalid_value(
                "ReceiptHandle",
                handle,
                "Message does not exist or is not available for visibility timeout change.",
            )
        };
        let m = st.messages.get(&h.seq).ok_or_else(unavailable)?;
        if h.receive_count > m.rec.receive_count {
            return Err(SqsError::receipt_handle_invalid(handle));
        }
        // Whole seconds since the receive: AWS accepts 43200 right after a receive.
        let received = m
            .rec
            .last_receive_ms()
            .map_or(now, |r| now - now.saturating_sub(r) / 1000 * 1000);
        let new_deadline = now + (timeout as u64) * 1000;
        // The latest handle of a message whose visibility ended, not received again since:
        // AWS still accepts it, and the message is hidden again (a FIFO group locks again).
        if m.state == crate::queue::MessageState::Ready && h.receive_count == m.rec.receive_count {
            if new_deadline > received + (limits::MAX_VISIBILITY_TIMEOUT as u64) * 1000 {
                return Err(SqsError::invalid_value(
                    "VisibilityTimeout",
                    timeout,
                    "Total VisibilityTimeout for the message is beyond the limit [43200 seconds]",
                ));
            }
            if timeout > 0
                && let Some(mutation) = st.reacquire(h.seq, new_deadline)
            {
                muts.push(mutation);
            }
            return Ok(());
        }
        if m.state != crate::queue::MessageState::InFlight {
            return Err(SqsError::new(
                ErrorCode::MessageNotInflight,
                format!("Message with receipt handle {handle} is not in flight."),
            ));
        }
        if new_deadline > received + (limits::MAX_VISIBILITY_TIMEOUT as u64) * 1000 {
            return Err(SqsError::invalid_value(
                "VisibilityTimeout",
                timeout,
                "Total VisibilityTimeout for the message is beyond the limit [43200 seconds]",
            ));
        }
        if let Some(mutation) = st.change_visibility(h.seq, new_deadline) {
            muts.push(mutation);
        }
        Ok(())
    }

    pub async fn change_message_visibility(
        &self,
        ctx: &RequestContext,
        input: ChangeMessageVisibilityInput,
    ) -> SqsResult<()> {
        let queue = self.resolve(ctx, &input.queue_url)?;
        let handle = input
            .receipt_handle
            .ok_or_else(|| SqsError::missing_parameter("ReceiptHandle"))?;
        let now = self.now_ms();
        let mut muts = Vec::new();
        let (result, ticket, wake) = {
            let mut st = queue.state.lock();
            st.tick(now, &mut muts);
            let r = Self::change_visibility_locked(
                &queue,
                &mut st,
                &handle,
                input.visibility_timeout,
                now,
                &mut muts,
            );
            (r, self.store.submit(muts), st.take_wake())
        };
        // A deadline earlier than every other timer (0 makes the message visible, and may
        // unlock its FIFO group at once): long polls must look again.
        if wake {
            queue.notify.notify_waiters();
        }
        result?;
        self.durable(ticket).await
    }

    pub async fn change_message_visibility_batch(
        &self,
        ctx: &RequestContext,
        input: ChangeMessageVisibilityBatchInput,
    ) -> SqsResult<BatchOutput> {
        let queue = self.resolve(ctx, &input.queue_url)?;
        let ids: Vec<&str> = input.entries.iter().map(|e| e.id.as_str()).collect();
        validate::batch_ids("ChangeMessageVisibilityBatchRequestEntry", &ids)?;
        let now = self.now_ms();
        let mut out = BatchOutput::default();
        let mut muts = Vec::new();
        let (ticket, wake) = {
            let mut st = queue.state.lock();
            st.tick(now, &mut muts);
            for e in input.entries {
                match Self::change_visibility_locked(
                    &queue,
                    &mut st,
                    &e.receipt_handle,
                    e.visibility_timeout,
                    now,
                    &mut muts,
                ) {
                    Ok(()) => out.successful.push(BatchSuccessEntry { id: e.id }),
                    Err(err) => out.failed.push(batch_error(e.id, &err)),
                }
            }
            (self.store.submit(muts), st.take_wake())
        };
        if wake {
            queue.notify.notify_waiters();
        }
        self.durable(ticket).await?;
        Ok(out)
    }
}

pub(crate) fn batch_error(id: String, e: &SqsError) -> BatchResultErrorEntry {
    BatchResultErrorEntry {
        id,
        sender_fault: e.code.fault() == redrive_core::Fault::Sender,
        code: e.code.query_code().to_string(),
        message: Some(e.message.clone()),
    }
}

/// The deduplication id of a message's copy in its dead-letter queue (the DLQ move, embedded
/// and shared stores alike): in a FIFO DLQ, the message's own id (AWS shows the MessageId as
/// the dead-lettered copy's `MessageDeduplicationId`, whatever the source's was); in a standard
/// DLQ, unchanged (`None`).
pub fn dead_letter_dedup_id(dlq_fifo: bool, message_id: &str) -> Option<String> {
    dlq_fifo.then(|| message_id.to_string())
}

/// A standard queue's receive while [`limits::MAX_INFLIGHT_STANDARD`] messages are in flight
/// and more are waiting (sqs-semantics.md §3; a FIFO queue returns nothing more instead).
pub(crate) fn in_flight_over_limit() -> SqsError {
    SqsError::new(
        ErrorCode::OverLimit,
        format!(
            "Too many messages in flight: the limit of {} in-flight messages per queue is reached.",
            limits::MAX_INFLIGHT_STANDARD
        ),
    )
}
