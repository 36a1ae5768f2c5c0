//! Non-destructive inspection (a Redrive extension, outside the SQS API): list a queue's
//! messages with their state and metadata without receiving them, so receive counts and
//! visibility never change.

use std::collections::BTreeMap;

use redrive_core::api::MessageAttributes;
use redrive_core::{SqsError, SqsResult};

use crate::backend::{BrowseRange, QueueBackend, SharedQueue, Stored};
use crate::queue::MessageState;
use crate::queues::RedrivePolicy;
use crate::{Engine, RequestContext};

/// Which messages to list.
#[derive(Debug, Clone, Default)]
pub struct BrowseQuery {
    /// Only messages in this state; all when `None`.
    pub state: Option<MessageState>,
    /// At most this many (1..=1000).
    pub limit: usize,
    /// Continue after this position (from a previous page's `next`).
    pub after: Option<BrowseCursor>,
}

/// A position in a queue: `(enqueue time, sequence)`, the order messages are listed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BrowseCursor(pub u64, pub u64);

impl BrowseCursor {
    pub fn encode(&self) -> String {
        format!("{}-{}", self.0, self.1)
    }

    pub fn decode(s: &str) -> Option<BrowseCursor> {
        let (a, b) = s.split_once('-')?;
        Some(BrowseCursor(a.parse().ok()?, b.parse().ok()?))
    }
}

#[derive(Debug, Clone)]
pub struct BrowsedMessage {
    pub message_id: String,
    pub body: String,
    pub state: MessageState,
    pub sent_ms: u64,
    pub enqueued_ms: u64,
    /// When a delayed or in-flight message becomes visible.
    pub visible_at_ms: Option<u64>,
    pub receive_count: u32,
    pub first_receive_ms: Option<u64>,
    pub group_id: Option<String>,
    pub dedup_id: Option<String>,
    pub sequence_number: Option<String>,
    pub dead_letter_source_arn: Option<String>,
    pub dead_lettered_ms: Option<u64>,
    pub message_attributes: MessageAttributes,
    pub system_attributes: MessageAttributes,
    pub sender_id: String,
    /// A FIFO message that is visible but not receivable now: an earlier message of its group
    /// is in flight.
    pub group_blocked: bool,
}

#[derive(Debug, Clone)]
pub struct BrowsePage {
    pub messages: Vec<BrowsedMessage>,
    pub next: Option<BrowseCursor>,
}

/// Counts and settings of one queue, with what SQS cannot tell you.
#[derive(Debug, Clone)]
pub struct QueueSummary {
    pub name: String,
    pub arn: String,
    pub fifo: bool,
    pub visible: usize,
    pub in_flight: usize,
    pub delayed: usize,
    /// Visible messages whose receive count already exceeds `maxReceiveCount`: the next
    /// receive on the queue will move them to the DLQ (SQS moves lazily).
    pub pending_dead_letter: usize,
    pub oldest_enqueued_ms: Option<u64>,
    pub attributes: BTreeMap<String, String>,
    /// Queues whose RedrivePolicy targets this one.
    pub dead_letter_sources: Vec<String>,
}

impl MessageState {
    pub fn as_str(self) -> &'static str {
        match self {
            MessageState::Ready => "visible",
            MessageState::Delayed => "delayed",
            MessageState::InFlight => "inflight",
        }
    }

    pub fn parse(s: &str) -> Option<MessageState> {
        match s {
            "visible" => Some(MessageState::Ready),
            "delayed" => Some(MessageState::Delayed),
            "inflight" | "in_flight" | "in-flight" => Some(MessageState::InFlight),
            _ => None,
        }
    }
}

fn check_limit(query: &BrowseQuery) -> SqsResult<()> {
    if !(1..=1000).contains(&query.limit) {
        return Err(SqsError::invalid_value(
            "limit",
            query.limit,
            "Must be between 1 and 1000.",
        ));
    }
    Ok(())
}

impl Engine {
    fn lookup_named(
        &self,
        ctx: &RequestContext,
        name: &str,
    ) -> SqsResult<std::sync::Arc<crate::Queue>> {
        self.ensure_synced()?;
        self.lookup(&ctx.region, name)
            .ok_or_else(SqsError::queue_does_not_exist)
    }

    pub fn browse_messages(
        &self,
        ctx: &RequestContext,
        queue_name: &str,
        query: &BrowseQuery,
    ) -> SqsResult<BrowsePage> {
        check_limit(query)?;
        let queue = self.lookup_named(ctx, queue_name)?;
        let now = self.now_ms();
        let mut muts = Vec::new();
        let mut st = queue.state.lock();
        st.tick(now, &mut muts);
        if !muts.is_empty() {
            let _ = self.store.submit(muts);
        }
        let start = match query.after {
            Some(BrowseCursor(t, s)) => std::ops::Bound::Excluded((t, s)),
            None => std::ops::Bound::Unbounded,
        };
        let blocked_groups: std::collections::HashSet<&str> = if st.settings.fifo {
            st.in_flight_group_keys().collect()
        } else {
            Default::default()
        };
        let mut messages = Vec::new();
        let mut last = None;
        let mut more = false;
        for &(enq, seq) in st.retention.range((start, std::ops::Bound::Unbounded)) {
            let Some(m) = st.messages.get(&seq) else {
                continue;
            };
            if query.state.is_some_and(|s| s != m.state) {
                continue;
            }
            if messages.len() == query.limit {
                more = true;
                break;
            }
            last = Some(BrowseCursor(enq, seq));
            let r = &m.rec.to_record();
            // Read from the store when it is only there; a message that cannot be read is
            // shown without its body and attributes.
            let payload = self.payload_of(&m.rec).unwrap_or_default();
            messages.push(BrowsedMessage {
                message_id: r.message_id.clone(),
                body: payload.body.clone(),
                state: m.state,
                sent_ms: r.sent_ms,
                enqueued_ms: r.enqueued_ms,
                visible_at_ms: (m.state != MessageState::Ready).then_some(r.visible_at_ms),
                receive_count: r.receive_count,
                first_receive_ms: r.first_receive_ms,
                group_id: r.group_id.clone(),
                dedup_id: r.dedup_id.clone(),
                sequence_number: r.sequence_number.clone(),
                dead_letter_source_arn: r.dead_letter_source_arn.clone(),
                dead_lettered_ms: r.dead_lettered_ms,
                message_attributes: payload.attributes.clone(),
                system_attributes: payload.system_attributes.clone(),
                sender_id: r.sender_id.clone(),
                group_blocked: m.state == MessageState::Ready
                    && r.group_id
                        .as_deref()
                        .is_some_and(|g| blocked_groups.contains(g)),
            });
        }
        Ok(BrowsePage {
            messages,
            next: if more { last } else { None },
        })
    }

    pub fn queue_summary(&self, ctx: &RequestContext, queue_name: &str) -> SqsResult<QueueSummary> {
        let queue = self.lookup_named(ctx, queue_name)?;
        let sources: Vec<String> = self
            .dead_letter_sources(&queue)
            .into_iter()
            .map(|q| q.name.clone())
            .collect();
        let now = self.now_ms();
        let mut muts = Vec::new();
        let mut st = queue.state.lock();
        st.tick(now, &mut muts);
        if !muts.is_empty() {
            let _ = self.store.submit(muts);
        }
        let max_receive = st.redrive_policy().map(|p| p.max_receive_count);
        let pending_dead_letter = match max_receive {
            Some(max) => st
                .ready
                .iter()
                .filter(|s| {
                    st.messages
                        .get(s)
                        .is_some_and(|m| m.rec.receive_count >= max)
                })
                .count(),
            None => 0,
        };
        let (visible, in_flight, delayed) = st.counts();
        Ok(QueueSummary {
            name: queue.name.clone(),
            arn: queue.arn.clone(),
            fifo: st.settings.fifo,
            visible,
            in_flight,
            delayed,
            pending_dead_letter,
            oldest_enqueued_ms: st.retention.first().map(|(t, _)| *t),
            attributes: st.record.attributes.clone(),
            dead_letter_sources: sources,
        })
    }
}

/// The same inspection over a shared backend (ADR 0002): rows read from the database as they
/// are, in sequence order (a dead-lettered or redriven message gets a new sequence when it
/// arrives, so this is the order of arrival, as on the embedded store).
impl Engine {
    async fn sh_named(
        &self,
        b: &dyn QueueBackend,
        ctx: &RequestContext,
        name: &str,
    ) -> SqsResult<SharedQueue> {
        b.queue(&ctx.region, name)
            .await?
            .ok_or_else(SqsError::queue_does_not_exist)
    }

    /// [`Engine::browse_messages`] on a shared store.
    pub(crate) async fn sh_browse_messages(
        &self,
        b: &dyn QueueBackend,
        ctx: &RequestContext,
        queue_name: &str,
        query: &BrowseQuery,
    ) -> SqsResult<BrowsePage> {
        check_limit(query)?;
        let q = self.sh_named(b, ctx, queue_name).await?;
        let mut rows = b
            .browse(
                &q,
                BrowseRange {
                    after_seq: query.after.map_or(0, |c| c.1),
                    state: query.state,
                    limit: query.limit + 1,
                },
            )
            .await?;
        let more = rows.len() > query.limit;
        rows.truncate(query.limit);
        let cursor = |m: &Stored| BrowseCursor(m.dead_lettered_ms.unwrap_or(m.sent_ms), m.seq);
        let next = if more { rows.last().map(cursor) } else { None };
        let messages = rows
            .into_iter()
            .map(|m| BrowsedMessage {
                enqueued_ms: m.dead_lettered_ms.unwrap_or(m.sent_ms),
                sequence_number: q.fifo.then(|| crate::shared::sequence_number(m.seq)),
                visible_at_ms: (m.state != MessageState::Ready).then_some(m.visible_at_ms),
                message_id: m.message_id,
                body: m.body,
                state: m.state,
                sent_ms: m.sent_ms,
                receive_count: m.receive_count,
                first_receive_ms: m.first_received_ms,
                group_id: m.group_id,
                dedup_id: m.dedup_id,
                dead_letter_source_arn: m.dead_letter_source_arn,
                dead_lettered_ms: m.dead_lettered_ms,
                message_attributes: m.attributes,
                system_attributes: m.system_attributes,
                sender_id: self.config.account_id.clone(),
                group_blocked: m.group_blocked,
            })
            .collect();
        Ok(BrowsePage { messages, next })
    }

    /// [`Engine::queue_summary`] on a shared store.
    pub(crate) async fn sh_queue_summary(
        &self,
        b: &dyn QueueBackend,
        ctx: &RequestContext,
        queue_name: &str,
    ) -> SqsResult<QueueSummary> {
        let q = self.sh_named(b, ctx, queue_name).await?;
        let sources = self
            .sh_dead_letter_sources(b, &q)
            .await?
            .into_iter()
            .map(|s| s.name)
            .collect();
        let max_receive = q
            .attributes
            .get("RedrivePolicy")
            .and_then(|p| RedrivePolicy::parse_stored(p))
            .map(|p| p.max_receive_count);
        let i = b.inspect(&q, max_receive).await?;
        Ok(QueueSummary {
            arn: self.sh_arn(&q),
            name: q.name,
            fifo: q.fifo,
            visible: i.visible as usize,
            in_flight: i.in_flight as usize,
            delayed: i.delayed as usize,
            pending_dead_letter: i.pending_dead_letter as usize,
            oldest_enqueued_ms: i.oldest_enqueued_ms,
            attributes: q.attributes,
            dead_letter_sources: sources,
        })
    }
}
