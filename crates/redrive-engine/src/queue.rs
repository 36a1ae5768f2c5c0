//! One queue's state: its messages and the in-memory scheduling indices.
//!
//! **Invariant:** every message is in exactly one of `ready`, `delayed`, `in_flight`, and in
//! `retention`. Timers are ordered sets keyed by due time, so [`QueueState::tick`] only touches
//! messages whose time has come: no operation scans the queue.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use redrive_core::api::MessageAttributes;
use redrive_core::limits;

use crate::store::{MessageRecord, Mutation, QueueRecord};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageState {
    Ready,
    Delayed,
    InFlight,
}

#[derive(Debug, Clone)]
pub struct StoredMessage {
    pub rec: MessageRecord,
    pub state: MessageState,
}

/// Typed view of the attributes the scheduler needs, kept in sync with `record.attributes`.
#[derive(Debug, Clone, Copy)]
pub struct QueueSettings {
    pub delay_secs: i64,
    pub max_message_size: i64,
    pub retention_secs: i64,
    pub wait_secs: i64,
    pub visibility_secs: i64,
    pub fifo: bool,
    pub content_based_dedup: bool,
    pub dedup_per_group: bool,
}

impl QueueSettings {
    pub fn from_attributes(attrs: &BTreeMap<String, String>) -> Self {
        let int = |k: &str, d: i64| attrs.get(k).and_then(|v| v.parse().ok()).unwrap_or(d);
        let flag = |k: &str| attrs.get(k).is_some_and(|v| v == "true");
        QueueSettings {
            delay_secs: int("DelaySeconds", 0),
            max_message_size: int("MaximumMessageSize", limits::MAX_MESSAGE_SIZE as i64),
            retention_secs: int("MessageRetentionPeriod", limits::DEFAULT_RETENTION_SECONDS),
            wait_secs: int("ReceiveMessageWaitTimeSeconds", 0),
            visibility_secs: int("VisibilityTimeout", limits::DEFAULT_VISIBILITY_TIMEOUT),
            fifo: flag("FifoQueue"),
            content_based_dedup: flag("ContentBasedDeduplication"),
            dedup_per_group: attrs
                .get("DeduplicationScope")
                .is_some_and(|v| v == "messageGroup"),
        }
    }
}

/// A FIFO deduplication entry: the answer a duplicate send gets.
#[derive(Debug, Clone)]
pub struct DedupEntry {
    pub expires_ms: u64,
    pub message_id: String,
    pub sequence_number: String,
}

#[derive(Debug)]
pub struct QueueState {
    pub record: QueueRecord,
    pub settings: QueueSettings,
    pub messages: HashMap<u64, StoredMessage>,
    pub ready: BTreeSet<u64>,
    pub delayed: BTreeSet<(u64, u64)>,
    pub in_flight: BTreeSet<(u64, u64)>,
    pub retention: BTreeSet<(u64, u64)>,
    pub next_seq: u64,
    /// FIFO: groups with a message in flight.
    pub locked_groups: HashMap<String, u32>,
    /// FIFO: dedup key -> entry, plus an expiry index.
    pub dedup: HashMap<String, DedupEntry>,
    pub dedup_expiry: BTreeSet<(u64, String)>,
    pub deleted: bool,
}

impl QueueState {
    pub fn new(record: QueueRecord) -> Self {
        let settings = QueueSettings::from_attributes(&record.attributes);
        QueueState {
            record,
            settings,
            messages: HashMap::new(),
            ready: BTreeSet::new(),
            delayed: BTreeSet::new(),
            in_flight: BTreeSet::new(),
            retention: BTreeSet::new(),
            next_seq: 1,
            locked_groups: HashMap::new(),
            dedup: HashMap::new(),
            dedup_expiry: BTreeSet::new(),
            deleted: false,
        }
    }

    /// Restores a persisted dedup entry (ignored once expired).
    pub fn restore_dedup(&mut self, d: crate::store::DedupRecord, now_ms: u64) {
        if d.expires_ms <= now_ms {
            return;
        }
        self.dedup_expiry.insert((d.expires_ms, d.key.clone()));
        self.dedup.insert(
            d.key,
            DedupEntry {
                expires_ms: d.expires_ms,
                message_id: d.message_id,
                sequence_number: d.sequence_number,
            },
        );
    }

    pub fn refresh_settings(&mut self) {
        self.settings = QueueSettings::from_attributes(&self.record.attributes);
    }

    /// Inserts a message record (new, or recovered from the store) into the right index.
    pub fn insert(&mut self, rec: MessageRecord, now_ms: u64) {
        let seq = rec.seq;
        self.next_seq = self.next_seq.max(seq + 1);
        let state = if rec.visible_at_ms > now_ms {
            if rec.receive_count == 0 {
                MessageState::Delayed
            } else {
                MessageState::InFlight
            }
        } else {
            MessageState::Ready
        };
        match state {
            MessageState::Ready => {
                self.ready.insert(seq);
            }
            MessageState::Delayed => {
                self.delayed.insert((rec.visible_at_ms, seq));
            }
            MessageState::InFlight => {
                self.in_flight.insert((rec.visible_at_ms, seq));
                if let Some(g) = &rec.group_id
                    && self.settings.fifo
                {
                    *self.locked_groups.entry(g.clone()).or_default() += 1;
                }
            }
        }
        self.retention.insert((rec.enqueued_ms, seq));
        self.messages.insert(seq, StoredMessage { rec, state });
    }

    fn unlock_group(&mut self, group: Option<&String>) {
        if !self.settings.fifo {
            return;
        }
        if let Some(g) = group
            && let Some(n) = self.locked_groups.get_mut(g)
        {
            *n -= 1;
            if *n == 0 {
                self.locked_groups.remove(g);
            }
        }
    }

    /// Removes a message from every index. Returns it.
    pub fn remove(&mut self, seq: u64) -> Option<StoredMessage> {
        let m = self.messages.remove(&seq)?;
        match m.state {
            MessageState::Ready => {
                self.ready.remove(&seq);
            }
            MessageState::Delayed => {
                self.delayed.remove(&(m.rec.visible_at_ms, seq));
            }
            MessageState::InFlight => {
                self.in_flight.remove(&(m.rec.visible_at_ms, seq));
                self.unlock_group(m.rec.group_id.as_ref());
            }
        }
        self.retention.remove(&(m.rec.enqueued_ms, seq));
        Some(m)
    }

    /// Moves due timers: delayed and expired in-flight messages become ready; messages past
    /// retention are deleted; expired dedup entries are dropped.
    pub fn tick(&mut self, now_ms: u64, out: &mut Vec<Mutation>) {
        while let Some(&(due, seq)) = self.delayed.first() {
            if due > now_ms {
                break;
            }
            self.delayed.pop_first();
            if let Some(m) = self.messages.get_mut(&seq) {
                m.state = MessageState::Ready;
                self.ready.insert(seq);
            }
        }
        while let Some(&(due, seq)) = self.in_flight.first() {
            if due > now_ms {
                break;
            }
            self.in_flight.pop_first();
            let group = match self.messages.get_mut(&seq) {
                Some(m) => {
                    m.state = MessageState::Ready;
                    self.ready.insert(seq);
                    m.rec.group_id.clone()
                }
                None => None,
            };
            self.unlock_group(group.as_ref());
        }
        let retention_ms = (self.settings.retention_secs.max(0) as u64) * 1000;
        while let Some(&(enqueued, seq)) = self.retention.first() {
            if enqueued + retention_ms > now_ms {
                break;
            }
            self.remove(seq);
            out.push(Mutation::DeleteMessage {
                queue_uid: self.record.uid,
                seq,
            });
        }
        while let Some((expires, _)) = self.dedup_expiry.first() {
            if *expires > now_ms {
                break;
            }
            if let Some((expires, key)) = self.dedup_expiry.pop_first()
                && self
                    .dedup
                    .get(&key)
                    .is_some_and(|e| e.expires_ms == expires)
            {
                self.dedup.remove(&key);
                out.push(Mutation::DeleteDedup {
                    queue_uid: self.record.uid,
                    key,
                });
            }
        }
    }

    /// Earliest time a timer fires (a delayed or in-flight message becomes visible).
    pub fn next_wakeup_ms(&self) -> Option<u64> {
        let d = self.delayed.first().map(|(t, _)| *t);
        let f = self.in_flight.first().map(|(t, _)| *t);
        match (d, f) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Picks up to `max` ready messages in order. FIFO: skips groups with a message in flight
    /// (a group's messages are
    /// returned in order, several per call when they are next in line).
    pub fn pick_ready(&self, max: usize) -> Vec<u64> {
        if !self.settings.fifo {
            return self.ready.iter().take(max).copied().collect();
        }
        let mut picked = Vec::new();
        for &seq in &self.ready {
            if picked.len() >= max {
                break;
            }
            let Some(m) = self.messages.get(&seq) else {
                continue;
            };
            let group = m.rec.group_id.as_deref().unwrap_or("");
            if !self.locked_groups.contains_key(group) {
                picked.push(seq);
            }
        }
        picked
    }

    /// Marks a ready message received: in flight until `now + visibility`.
    pub fn mark_received(
        &mut self,
        seq: u64,
        now_ms: u64,
        visibility_secs: i64,
    ) -> Option<Mutation> {
        let uid = self.record.uid;
        let fifo = self.settings.fifo;
        let m = self.messages.get_mut(&seq)?;
        if m.state != MessageState::Ready {
            return None;
        }
        self.ready.remove(&seq);
        m.rec.receive_count += 1;
        m.rec.first_receive_ms.get_or_insert(now_ms);
        m.rec.last_receive_ms = Some(now_ms);
        m.rec.visible_at_ms = now_ms + (visibility_secs.max(0) as u64) * 1000;
        m.state = MessageState::InFlight;
        self.in_flight.insert((m.rec.visible_at_ms, seq));
        if fifo && let Some(g) = &m.rec.group_id {
            *self.locked_groups.entry(g.clone()).or_default() += 1;
        }
        Some(update_mutation(uid, &m.rec))
    }

    /// Sets a new visibility deadline on an in-flight message.
    pub fn change_visibility(&mut self, seq: u64, visible_at_ms: u64) -> Option<Mutation> {
        let uid = self.record.uid;
        let m = self.messages.get_mut(&seq)?;
        if m.state != MessageState::InFlight {
            return None;
        }
        self.in_flight.remove(&(m.rec.visible_at_ms, seq));
        m.rec.visible_at_ms = visible_at_ms;
        self.in_flight.insert((visible_at_ms, seq));
        Some(update_mutation(uid, &m.rec))
    }

    pub fn counts(&self) -> (usize, usize, usize) {
        (self.ready.len(), self.in_flight.len(), self.delayed.len())
    }

    pub fn alloc_seq(&mut self) -> u64 {
        let s = self.next_seq;
        self.next_seq += 1;
        s
    }

    pub fn body_of(&self, seq: u64) -> Option<Arc<str>> {
        self.messages.get(&seq).map(|m| m.rec.body.clone())
    }

    pub fn attributes_of(&self, seq: u64) -> Option<&MessageAttributes> {
        self.messages.get(&seq).map(|m| &m.rec.attributes)
    }
}

pub fn update_mutation(queue_uid: u64, rec: &MessageRecord) -> Mutation {
    Mutation::UpdateMessage {
        queue_uid,
        seq: rec.seq,
        visible_at_ms: rec.visible_at_ms,
        receive_count: rec.receive_count,
        first_receive_ms: rec.first_receive_ms,
        last_receive_ms: rec.last_receive_ms,
    }
}
