//! One queue's state: its messages and the in-memory scheduling indices.
//!
//! **Invariant:** every message is in exactly one of `ready`, `delayed`, `in_flight`, and in
//! `retention`. Timers are ordered sets keyed by due time, so [`QueueState::tick`] only touches
//! messages whose time has come: no operation scans the queue.

use std::collections::{BTreeMap, BTreeSet, HashMap};

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
    pub rec: MessageMeta,
    pub state: MessageState,
}

/// What memory keeps of one message (issue 16: memory per queued message): the
/// [`MessageRecord`] in a compact form. The message id is 16 bytes when it is a UUID (every id
/// Redrive generates), the sender id is shared by the queue's messages, the receive times use
/// a sentinel instead of `Option`, and the fields only FIFO and dead-lettered messages have
/// are boxed together. [`MessageMeta::to_record`] gives the full record back.
#[derive(Debug, Clone)]
pub struct MessageMeta {
    pub queue_uid: u64,
    pub seq: u64,
    pub sent_ms: u64,
    /// Start of the retention clock (kept across a standard DLQ move).
    pub enqueued_ms: u64,
    pub visible_at_ms: u64,
    /// [`NO_TIME`] for none.
    first_receive_ms: u64,
    /// [`NO_TIME`] for none.
    last_receive_ms: u64,
    /// Body and attributes: in memory (in-memory mode), or only in the store.
    pub payload: crate::store::Payload,
    pub sender_id: std::sync::Arc<str>,
    pub group_id: Option<Box<str>>,
    /// The message id as a UUID's bytes (see [`uuid_bytes`]); zero when it is not one.
    message_id: [u8; 16],
    /// FIFO and dead-letter fields and a message id that is not a UUID, `None` when all are
    /// absent.
    extra: Option<Box<MetaExtra>>,
    pub receive_count: u32,
}

/// Receive time meaning "none" in [`MessageMeta`].
const NO_TIME: u64 = u64::MAX;

fn opt_time(t: u64) -> Option<u64> {
    (t != NO_TIME).then_some(t)
}

#[derive(Debug, Clone, Default, PartialEq)]
struct MetaExtra {
    text_id: Option<String>,
    dedup_id: Option<String>,
    sequence_number: Option<String>,
    dead_letter_source_arn: Option<String>,
    dead_lettered_ms: Option<u64>,
}

/// The 16 bytes of a message id that is a UUID in its lowercase hyphenated form (every id
/// Redrive generates), or `None` for any other text (kept in [`MetaExtra::text_id`]).
fn uuid_bytes(id: &str) -> Option<[u8; 16]> {
    // 36 characters is only the hyphenated form; without upper case it prints back the same.
    if id.len() != 36 || id.bytes().any(|b| b.is_ascii_uppercase()) {
        return None;
    }
    uuid::Uuid::try_parse(id).ok().map(|u| *u.as_bytes())
}

impl MessageMeta {
    /// The compact form of `rec`; `senders` shares the sender id between messages.
    pub fn from_record(rec: MessageRecord, senders: &mut SenderIds) -> Self {
        let uuid = uuid_bytes(&rec.message_id);
        let extra = MetaExtra {
            text_id: uuid.is_none().then_some(rec.message_id),
            dedup_id: rec.dedup_id,
            sequence_number: rec.sequence_number,
            dead_letter_source_arn: rec.dead_letter_source_arn,
            dead_lettered_ms: rec.dead_lettered_ms,
        };
        MessageMeta {
            queue_uid: rec.queue_uid,
            seq: rec.seq,
            sent_ms: rec.sent_ms,
            enqueued_ms: rec.enqueued_ms,
            visible_at_ms: rec.visible_at_ms,
            first_receive_ms: rec.first_receive_ms.unwrap_or(NO_TIME),
            last_receive_ms: rec.last_receive_ms.unwrap_or(NO_TIME),
            payload: rec.payload,
            sender_id: senders.get(rec.sender_id),
            group_id: rec.group_id.map(String::into_boxed_str),
            message_id: uuid.unwrap_or_default(),
            extra: (extra != MetaExtra::default()).then(|| Box::new(extra)),
            receive_count: rec.receive_count,
        }
    }

    /// The full record (its payload as kept: usually [`crate::store::Payload::Stored`]).
    pub fn to_record(&self) -> MessageRecord {
        let extra = self.extra.as_deref();
        MessageRecord {
            queue_uid: self.queue_uid,
            seq: self.seq,
            message_id: self.message_id(),
            payload: self.payload.clone(),
            sender_id: self.sender_id.to_string(),
            sent_ms: self.sent_ms,
            enqueued_ms: self.enqueued_ms,
            visible_at_ms: self.visible_at_ms,
            receive_count: self.receive_count,
            first_receive_ms: self.first_receive_ms(),
            last_receive_ms: self.last_receive_ms(),
            group_id: self.group_id.as_deref().map(str::to_string),
            dedup_id: extra.and_then(|e| e.dedup_id.clone()),
            sequence_number: extra.and_then(|e| e.sequence_number.clone()),
            dead_letter_source_arn: extra.and_then(|e| e.dead_letter_source_arn.clone()),
            dead_lettered_ms: extra.and_then(|e| e.dead_lettered_ms),
        }
    }

    pub fn message_id(&self) -> String {
        match self.extra.as_deref().and_then(|e| e.text_id.as_ref()) {
            Some(text) => text.clone(),
            None => uuid::Uuid::from_bytes(self.message_id)
                .hyphenated()
                .to_string(),
        }
    }

    pub fn first_receive_ms(&self) -> Option<u64> {
        opt_time(self.first_receive_ms)
    }

    pub fn last_receive_ms(&self) -> Option<u64> {
        opt_time(self.last_receive_ms)
    }

    /// Counts a receive at `now_ms`.
    fn note_receive(&mut self, now_ms: u64) {
        self.receive_count += 1;
        if self.first_receive_ms == NO_TIME {
            self.first_receive_ms = now_ms;
        }
        self.last_receive_ms = now_ms;
    }

    pub fn dedup_id(&self) -> Option<&str> {
        self.extra.as_deref().and_then(|e| e.dedup_id.as_deref())
    }

    pub fn sequence_number(&self) -> Option<&str> {
        self.extra
            .as_deref()
            .and_then(|e| e.sequence_number.as_deref())
    }

    pub fn dead_letter_source_arn(&self) -> Option<&str> {
        self.extra
            .as_deref()
            .and_then(|e| e.dead_letter_source_arn.as_deref())
    }

    pub fn dead_lettered_ms(&self) -> Option<u64> {
        self.extra.as_deref().and_then(|e| e.dead_lettered_ms)
    }
}

/// The distinct sender ids of a queue's messages, shared by them (one per principal that
/// sent: in practice a handful). Never shrinks while the queue lives.
/// The last id handed out is checked first (consecutive messages usually share a sender:
/// a restart interns millions without hashing each).
#[derive(Debug, Default)]
pub struct SenderIds {
    ids: std::collections::HashSet<std::sync::Arc<str>>,
    last: Option<std::sync::Arc<str>>,
}

impl SenderIds {
    fn get(&mut self, id: String) -> std::sync::Arc<str> {
        if let Some(last) = &self.last
            && **last == *id
        {
            return last.clone();
        }
        let s = match self.ids.get(id.as_str()) {
            Some(s) => s.clone(),
            None => {
                let s: std::sync::Arc<str> = id.into();
                self.ids.insert(s.clone());
                s
            }
        };
        self.last = Some(s.clone());
        s
    }
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

/// A message handed out by a FIFO receive attempt: `(seq, receive count, visibility
/// deadline)`. A replay is allowed only while all three are unchanged.
pub type AttemptMessage = (u64, u32, u64);

/// Extension documents holding FIFO receive attempts (`{queue uid}/{attempt id}`).
pub const DOC_FIFO_ATTEMPT: &str = "fifo-attempt";

pub fn attempt_key(queue_uid: u64, id: &str) -> String {
    format!("{queue_uid}/{id}")
}

/// A FIFO deduplication entry: the answer a duplicate send gets.
#[derive(Debug, Clone)]
pub struct DedupEntry {
    pub expires_ms: u64,
    pub message_id: String,
    pub sequence_number: String,
}

/// Index entries collected by [`QueueState::insert_bulk`] during a restart.
#[derive(Debug, Default)]
pub struct BulkIndex {
    ready: Vec<u64>,
    solo: Vec<u64>,
    retention: Vec<(u64, u64)>,
}

impl BulkIndex {
    /// Appends `other`'s entries in reverse: a restart reads from both ends, and the entries
    /// of the backward half, collected in descending order, then follow the forward half's
    /// in ascending order, so the sort before the build finds (nearly) one run.
    pub fn extend_reversed(&mut self, other: BulkIndex) {
        self.ready.extend(other.ready.into_iter().rev());
        self.solo.extend(other.solo.into_iter().rev());
        self.retention.extend(other.retention.into_iter().rev());
    }
}

/// Scheduling key of a ready message: its `MessageGroupId` (a FIFO group, or a fair-queue
/// tenant on a standard queue). A message without one is its own tenant (as in SQS fair
/// queues): such messages are kept in `solo` (one set for all of them) instead of a key each,
/// since a tenant of one message is its own head and is never noisy (issue 16: ~300 bytes
/// less per message).
fn key_of(rec: &MessageMeta) -> Option<&str> {
    rec.group_id.as_deref()
}

/// A tenant is noisy (served after the quiet ones) when it holds more than 10 % of the
/// queue's in-flight messages and at least 30 of its own (AWS's published thresholds).
pub const NOISY_MIN_IN_FLIGHT: u32 = 30;
pub const NOISY_SHARE_PERCENT: u32 = 10;

/// The state of one FIFO receive's round-robin over message groups: each round takes one
/// message from every group in it, in order of the groups' oldest messages, so one receive
/// serves several groups while each group's messages stay in order. Groups join while there
/// is room and leave when they have nothing more visible (or are dropped by the caller).
#[derive(Debug, Default)]
pub struct GroupRounds {
    /// Groups still to serve in this round, with the last message each gave (if any).
    this_round: std::collections::VecDeque<(String, Option<u64>)>,
    /// Groups that gave a message in this round, for the next round.
    next_round: Vec<(String, Option<u64>)>,
    /// Every group that joined (so a group joins once per receive).
    seen: std::collections::HashSet<String>,
}

impl GroupRounds {
    /// Drops the group of the message last returned: it gives nothing more in this receive
    /// (its head could not be handed out, and its later messages must not overtake it).
    pub fn drop_last(&mut self) {
        self.next_round.pop();
    }
}

/// The hasher of [`QueueState::messages`], whose keys are the queue's own sequence numbers
/// (issued by the server, dense and increasing between restarts, jumping at each restart):
/// blocks of 16 consecutive sequences sit in 16 consecutive buckets (one control group), so
/// a restart's millions of inserts and the sends at the end of a run touch memory a group at
/// a time instead of a cache line each, while the blocks themselves are scattered by a mix of
/// their number. Placing whole runs in consecutive buckets (an earlier version) made long
/// probe chains wherever two runs met modulo the table's size: a restart reading from both
/// ends, or messages from before and after a restart (issue 16). The top 7 bits, which the
/// table compares first, are a mix of the whole sequence so a block's entries differ there.
/// Not for keys a client chooses.
#[derive(Debug, Clone, Copy, Default)]
pub struct BySequence;

impl std::hash::BuildHasher for BySequence {
    type Hasher = SequenceHasher;
    fn build_hasher(&self) -> SequenceHasher {
        SequenceHasher(0)
    }
}

#[derive(Debug, Default)]
pub struct SequenceHasher(u64);

impl std::hash::Hasher for SequenceHasher {
    fn finish(&self) -> u64 {
        const LOW: u64 = (1 << 57) - 1;
        const BLOCK_BITS: u32 = 4;
        let block = self.0 >> BLOCK_BITS;
        // splitmix64's finalizer: every bit of the block number reaches the low bits.
        let mut m = (block ^ (block >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        m = (m ^ (m >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        m ^= m >> 31;
        let position = (m << BLOCK_BITS) | (self.0 & ((1 << BLOCK_BITS) - 1));
        let tag = self.0.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        (position & LOW) | (tag & !LOW)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

#[derive(Debug)]
pub struct QueueState {
    pub record: QueueRecord,
    pub settings: QueueSettings,
    /// Boxed: the table stays small (a pointer per bucket; buckets are up to ~2× the messages)
    /// and growing it moves pointers, not records (issue 16: memory per message).
    pub messages: HashMap<u64, Box<StoredMessage>, BySequence>,
    /// Every visible message, by sequence (send order).
    pub ready: BTreeSet<u64>,
    pub delayed: BTreeSet<(u64, u64)>,
    pub in_flight: BTreeSet<(u64, u64)>,
    pub retention: BTreeSet<(u64, u64)>,
    pub next_seq: u64,
    /// Visible messages per scheduling key (see [`key_of`]).
    ready_by_key: HashMap<String, BTreeSet<u64>>,
    /// Visible messages without a group: each its own tenant (standard queues only).
    solo: BTreeSet<u64>,
    /// `(oldest visible sequence, key)` of every key that may be served now: FIFO groups with
    /// nothing in flight, every tenant of a standard queue.
    heads: BTreeSet<(u64, String)>,
    /// In-flight messages per group id (FIFO: the group is locked while > 0; standard: the
    /// tenant's share decides whether it is noisy).
    in_flight_by_key: HashMap<String, u32>,
    /// FIFO: dedup key -> entry, plus an expiry index.
    pub dedup: HashMap<String, DedupEntry>,
    pub dedup_expiry: BTreeSet<(u64, String)>,
    /// FIFO: `ReceiveRequestAttemptId` -> (expiry, messages and their receive counts).
    /// Each message is `(seq, receive count, visibility deadline)` as the attempt left it.
    attempts: HashMap<String, (u64, Vec<AttemptMessage>)>,
    /// The sender ids of the messages, shared (see [`MessageMeta`]).
    senders: SenderIds,
    /// Set when a change may end a long poll's wait early: a FIFO group with visible
    /// messages unlocked, or the queue's next timer moved earlier. Taken (and cleared) by
    /// the action that holds the lock, which then wakes the queue's waiters.
    wake: bool,
    pub deleted: bool,
}

impl QueueState {
    pub fn new(record: QueueRecord) -> Self {
        let settings = QueueSettings::from_attributes(&record.attributes);
        QueueState {
            record,
            settings,
            messages: HashMap::default(),
            ready: BTreeSet::new(),
            delayed: BTreeSet::new(),
            in_flight: BTreeSet::new(),
            retention: BTreeSet::new(),
            next_seq: 1,
            ready_by_key: HashMap::new(),
            solo: BTreeSet::new(),
            heads: BTreeSet::new(),
            in_flight_by_key: HashMap::new(),
            dedup: HashMap::new(),
            dedup_expiry: BTreeSet::new(),
            attempts: HashMap::new(),
            senders: SenderIds::default(),
            wake: false,
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

    /// Remembers what a FIFO receive attempt returned (kept 5 minutes). Returns the store
    /// mutations that persist it (and drop the entries it evicts), so a replay of the attempt
    /// also works after a restart.
    pub fn record_attempt(
        &mut self,
        id: String,
        expires_ms: u64,
        seqs: Vec<AttemptMessage>,
    ) -> Vec<Mutation> {
        let mut muts = Vec::new();
        if self.attempts.len() >= 1024 {
            let now = expires_ms.saturating_sub(limits::DEDUP_INTERVAL_MS);
            let uid = self.record.uid;
            self.attempts.retain(|k, (exp, _)| {
                let keep = *exp > now;
                if !keep {
                    muts.push(Mutation::DeleteDocument {
                        kind: DOC_FIFO_ATTEMPT.into(),
                        key: attempt_key(uid, k),
                    });
                }
                keep
            });
        }
        muts.push(Mutation::PutDocument(crate::store::DocumentRecord {
            kind: DOC_FIFO_ATTEMPT.into(),
            key: attempt_key(self.record.uid, &id),
            value: serde_json::json!({ "expires": expires_ms, "messages": seqs })
                .to_string()
                .into_bytes(),
        }));
        self.attempts.insert(id, (expires_ms, seqs));
        muts
    }

    /// Restores a persisted attempt (see [`Self::record_attempt`]); `false` when it is stale
    /// or unreadable.
    pub fn restore_attempt(&mut self, id: &str, value: &[u8], now_ms: u64) -> bool {
        #[derive(serde::Deserialize)]
        struct Stored {
            expires: u64,
            messages: Vec<AttemptMessage>,
        }
        match serde_json::from_slice::<Stored>(value) {
            Ok(s) if s.expires > now_ms => {
                self.attempts
                    .insert(id.to_string(), (s.expires, s.messages));
                true
            }
            _ => false,
        }
    }

    /// The messages of an unexpired receive attempt.
    pub fn attempt(&self, id: &str, now_ms: u64) -> Option<Vec<AttemptMessage>> {
        self.attempts
            .get(id)
            .filter(|(exp, _)| *exp > now_ms)
            .map(|(_, s)| s.clone())
    }

    /// The queue's `RedrivePolicy`, if it has one.
    pub fn redrive_policy(&self) -> Option<crate::queues::RedrivePolicy> {
        self.record
            .attributes
            .get("RedrivePolicy")
            .and_then(|p| crate::queues::RedrivePolicy::parse_stored(p))
    }

    pub fn refresh_settings(&mut self) {
        self.settings = QueueSettings::from_attributes(&self.record.attributes);
    }

    fn key_locked(&self, key: &str) -> bool {
        self.settings.fifo && self.in_flight_by_key.get(key).is_some_and(|n| *n > 0)
    }

    /// Adds a visible message to `ready` and the scheduling index (`ready` and `solo` through
    /// `bulk` when a restart collects them).
    fn ready_insert(&mut self, seq: u64, key: Option<&str>, bulk: Option<&mut BulkIndex>) {
        let Some(key) = key else {
            match bulk {
                Some(b) => {
                    b.ready.push(seq);
                    b.solo.push(seq);
                }
                None => {
                    self.ready.insert(seq);
                    self.solo.insert(seq);
                }
            }
            return;
        };
        match bulk {
            Some(b) => b.ready.push(seq),
            None => {
                self.ready.insert(seq);
            }
        }
        let key = key.to_string();
        let locked = self.key_locked(&key);
        let set = self.ready_by_key.entry(key.clone()).or_default();
        let old_head = set.first().copied();
        set.insert(seq);
        if !locked && old_head.is_none_or(|h| seq < h) {
            if let Some(h) = old_head {
                self.heads.remove(&(h, key.clone()));
            }
            self.heads.insert((seq, key));
        }
    }

    /// Removes a visible message from `ready` and the scheduling index.
    fn ready_remove(&mut self, seq: u64, key: Option<&str>) {
        self.ready.remove(&seq);
        let Some(key) = key else {
            self.solo.remove(&seq);
            return;
        };
        let Some(set) = self.ready_by_key.get_mut(key) else {
            return;
        };
        let was_head = set.first() == Some(&seq);
        set.remove(&seq);
        let new_head = set.first().copied();
        if new_head.is_none() {
            self.ready_by_key.remove(key);
        }
        if was_head
            && self.heads.remove(&(seq, key.to_string()))
            && let Some(h) = new_head
        {
            self.heads.insert((h, key.to_string()));
        }
    }

    fn in_flight_enter(&mut self, rec_group: Option<&str>) {
        let Some(g) = rec_group else { return };
        let n = self.in_flight_by_key.entry(g.to_string()).or_default();
        *n += 1;
        if *n == 1 && self.settings.fifo {
            // The group locks: it is no longer a candidate.
            if let Some(h) = self.ready_by_key.get(g).and_then(|s| s.first().copied()) {
                self.heads.remove(&(h, g.to_string()));
            }
        }
    }

    fn in_flight_leave(&mut self, rec_group: Option<&str>) {
        let Some(g) = rec_group else { return };
        let Some(n) = self.in_flight_by_key.get_mut(g) else {
            return;
        };
        *n -= 1;
        if *n == 0 {
            self.in_flight_by_key.remove(g);
            if self.settings.fifo {
                // The group unlocks: its oldest visible message is a candidate again.
                if let Some(h) = self.ready_by_key.get(g).and_then(|s| s.first().copied()) {
                    self.heads.insert((h, g.to_string()));
                    self.wake = true;
                }
            }
        }
    }

    /// Inserts a message record (new, or recovered from the store) into the right index.
    pub fn insert(&mut self, rec: MessageRecord, now_ms: u64) {
        self.insert_indexed(rec, now_ms, None);
    }

    /// [`QueueState::insert`] for a restart: the entries of `ready`, `solo` and `retention`
    /// go to `bulk`, and the sets are built from it at once by [`QueueState::finish_bulk`].
    /// Until then those sets are incomplete: nothing may schedule from this queue.
    /// The message comes in the compact form (a restart converts records on another thread:
    /// [`crate::Rebuilder::prepare`]).
    pub fn insert_bulk(&mut self, rec: MessageMeta, now_ms: u64, bulk: &mut BulkIndex) {
        self.insert_meta(rec, now_ms, Some(bulk));
    }

    /// Builds `ready`, `solo` and `retention` from what [`QueueState::insert_bulk`] collected:
    /// sorting mostly sorted vectors and building each set from sorted input is linear, where
    /// inserting entry by entry walks the tree every time (a sixth of a 10M-message restart's
    /// CPU, issue 16).
    pub fn finish_bulk(&mut self, bulk: BulkIndex) {
        fn build<T: Ord>(items: Vec<T>) -> BTreeSet<T> {
            // `collect` sorts (runs already in order cost one pass) and builds in bulk.
            items.into_iter().collect()
        }
        fn merge<T: Ord>(set: &mut BTreeSet<T>, mut built: BTreeSet<T>) {
            // `append` to an empty set is a swap.
            set.append(&mut built);
        }
        let BulkIndex {
            ready,
            solo,
            retention,
        } = bulk;
        // The three sets are independent: a large restart builds them side by side (this
        // runs after the read, on the path to being ready).
        let (ready, solo, retention) = if ready.len() + retention.len() > 1 << 18 {
            std::thread::scope(|scope| {
                let solo = scope.spawn(move || build(solo));
                let retention = scope.spawn(move || build(retention));
                let ready = build(ready);
                fn join<T>(h: std::thread::ScopedJoinHandle<'_, T>) -> T {
                    h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))
                }
                (ready, join(solo), join(retention))
            })
        } else {
            (build(ready), build(solo), build(retention))
        };
        merge(&mut self.ready, ready);
        merge(&mut self.solo, solo);
        merge(&mut self.retention, retention);
    }

    fn insert_indexed(&mut self, rec: MessageRecord, now_ms: u64, bulk: Option<&mut BulkIndex>) {
        let rec = MessageMeta::from_record(rec, &mut self.senders);
        self.insert_meta(rec, now_ms, bulk);
    }

    fn insert_meta(&mut self, rec: MessageMeta, now_ms: u64, mut bulk: Option<&mut BulkIndex>) {
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
        match bulk.as_deref_mut() {
            Some(b) => b.retention.push((rec.enqueued_ms, seq)),
            None => {
                self.retention.insert((rec.enqueued_ms, seq));
            }
        }
        match state {
            MessageState::Ready => {
                let group = rec.group_id.clone();
                self.messages
                    .insert(seq, Box::new(StoredMessage { rec, state }));
                self.ready_insert(seq, group.as_deref(), bulk);
            }
            MessageState::Delayed => {
                self.delayed.insert((rec.visible_at_ms, seq));
                self.messages
                    .insert(seq, Box::new(StoredMessage { rec, state }));
            }
            MessageState::InFlight => {
                self.in_flight.insert((rec.visible_at_ms, seq));
                self.in_flight_enter(rec.group_id.as_deref());
                self.messages
                    .insert(seq, Box::new(StoredMessage { rec, state }));
            }
        }
    }

    /// Removes a message from every index. Returns it.
    pub fn remove(&mut self, seq: u64) -> Option<StoredMessage> {
        let m = *self.messages.remove(&seq)?;
        match m.state {
            MessageState::Ready => self.ready_remove(seq, key_of(&m.rec)),
            MessageState::Delayed => {
                self.delayed.remove(&(m.rec.visible_at_ms, seq));
            }
            MessageState::InFlight => {
                self.in_flight.remove(&(m.rec.visible_at_ms, seq));
                self.in_flight_leave(m.rec.group_id.as_deref());
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
                let group = m.rec.group_id.clone();
                self.ready_insert(seq, group.as_deref(), None);
            }
        }
        while let Some(&(due, seq)) = self.in_flight.first() {
            if due > now_ms {
                break;
            }
            self.in_flight.pop_first();
            if let Some(m) = self.messages.get_mut(&seq) {
                m.state = MessageState::Ready;
                let group = m.rec.group_id.clone();
                // Make it visible first, then unlock, so the group's head is this message.
                self.ready_insert(seq, group.as_deref(), None);
                self.in_flight_leave(group.as_deref());
            }
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

    /// Whether waiters should be woken (see the `wake` field); clears the flag.
    pub fn take_wake(&mut self) -> bool {
        std::mem::take(&mut self.wake)
    }

    /// Adds an in-flight deadline; a deadline earlier than every timer so far shortens a
    /// long poll's sleep, so it asks for a wake-up.
    fn in_flight_timer_insert(&mut self, visible_at_ms: u64, seq: u64) {
        if self.next_wakeup_ms().is_none_or(|t| visible_at_ms < t) {
            self.wake = true;
        }
        self.in_flight.insert((visible_at_ms, seq));
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

    /// Whether a standard-queue tenant is noisy right now.
    pub fn is_noisy(&self, key: &str) -> bool {
        let mine = self.in_flight_by_key.get(key).copied().unwrap_or(0);
        let total = self.in_flight.len() as u64;
        mine >= NOISY_MIN_IN_FLIGHT
            && u64::from(mine) * 100 > total * u64::from(NOISY_SHARE_PERCENT)
    }

    /// Picks up to `max` visible messages to hand out, without changing anything.
    ///
    /// FIFO: round-robin over the unlocked groups in order of their oldest message, one
    /// message per group per round, each group's messages in order (see [`GroupRounds`]).
    /// Standard: oldest first across tenants, quiet tenants before noisy ones. Cost grows
    /// with `max` and the number of noisy tenants, never with depth.
    pub fn pick_ready(&self, max: usize) -> Vec<u64> {
        let mut picked = Vec::with_capacity(max);
        if max == 0 {
            return picked;
        }
        if self.settings.fifo {
            let mut rounds = GroupRounds::default();
            while picked.len() < max {
                match self.next_in_rounds(&mut rounds, max - picked.len()) {
                    Some(seq) => picked.push(seq),
                    None => break,
                }
            }
            return picked;
        }
        // Standard: merge the oldest messages of the first tenants in head order. The oldest
        // `max` messages of the quiet tenants come from at most `max` tenants.
        let (quiet, noisy): (Vec<&String>, Vec<&String>) = {
            let mut quiet = Vec::new();
            let mut noisy = Vec::new();
            for (_, key) in &self.heads {
                if self.is_noisy(key) {
                    noisy.push(key);
                } else {
                    quiet.push(key);
                    if quiet.len() == max {
                        break;
                    }
                }
            }
            (quiet, noisy)
        };
        // Messages without a group are quiet tenants of one message each.
        self.merge_oldest(&quiet, true, max, &mut picked);
        if picked.len() < max {
            self.merge_oldest(&noisy, false, max, &mut picked);
        }
        picked
    }

    /// Appends the oldest messages across `keys` (and the messages without a group, with
    /// `solo`) (k-way merge) until `picked` holds `max`.
    fn merge_oldest(&self, keys: &[&String], solo: bool, max: usize, picked: &mut Vec<u64>) {
        use std::cmp::Reverse;
        use std::collections::BinaryHeap;
        let mut iters: Vec<_> = keys
            .iter()
            .filter_map(|k| {
                self.ready_by_key
                    .get(*k)
                    .map(|s| s.iter().copied().peekable())
            })
            .chain(solo.then(|| self.solo.iter().copied().peekable()))
            .collect();
        let mut heap = BinaryHeap::new();
        for (i, it) in iters.iter_mut().enumerate() {
            if let Some(&seq) = it.peek() {
                heap.push(Reverse((seq, i)));
            }
        }
        while picked.len() < max {
            let Some(Reverse((seq, i))) = heap.pop() else {
                break;
            };
            picked.push(seq);
            iters[i].next();
            if let Some(&next) = iters[i].peek() {
                heap.push(Reverse((next, i)));
            }
        }
    }

    /// FIFO: the next message of a receive served round-robin across groups (see
    /// [`GroupRounds`]), or `None` when no group has one. `room` is how many more messages the
    /// receive may take; it bounds how many groups join a round.
    ///
    /// Works whether or not the caller hands the returned messages out between calls: a
    /// group's next message is its first visible one after the last it gave, so a group that
    /// locked during this receive still gives its following messages, in order. Only the
    /// groups in the rounds and the first `room` unseen heads are touched, never the queue.
    pub fn next_in_rounds(&self, r: &mut GroupRounds, room: usize) -> Option<u64> {
        loop {
            if r.this_round.is_empty() {
                // A new round: the groups that gave a message in the last one, then groups
                // not seen yet, oldest message first, while there is room for them.
                r.this_round.extend(r.next_round.drain(..));
                for (_, key) in &self.heads {
                    if r.this_round.len() >= room {
                        break;
                    }
                    if r.seen.insert(key.clone()) {
                        r.this_round.push_back((key.clone(), None));
                    }
                }
                if r.this_round.is_empty() {
                    return None;
                }
            }
            let (key, last) = r.this_round.pop_front()?;
            let next = self.ready_by_key.get(&key).and_then(|set| match last {
                None => set.first().copied(),
                Some(l) => set.range(l + 1..).next().copied(),
            });
            if let Some(seq) = next {
                r.next_round.push((key, Some(seq)));
                return Some(seq);
            }
            // The group has nothing more visible: it leaves the rounds.
        }
    }

    /// Marks a ready message received: in flight until `now + visibility`.
    pub fn mark_received(
        &mut self,
        seq: u64,
        now_ms: u64,
        visibility_secs: i64,
    ) -> Option<Mutation> {
        let uid = self.record.uid;
        let m = self.messages.get(&seq)?;
        if m.state != MessageState::Ready {
            return None;
        }
        let group = m.rec.group_id.clone();
        self.ready_remove(seq, group.as_deref());
        self.in_flight_enter(group.as_deref());
        let m = self.messages.get_mut(&seq)?;
        m.rec.note_receive(now_ms);
        m.rec.visible_at_ms = now_ms + (visibility_secs.max(0) as u64) * 1000;
        m.state = MessageState::InFlight;
        let deadline = m.rec.visible_at_ms;
        let mutation = update_mutation(uid, &m.rec);
        self.in_flight_timer_insert(deadline, seq);
        Some(mutation)
    }

    /// Puts a visible message that was received before back in flight until `visible_at_ms`,
    /// without counting a receive: `ChangeMessageVisibility` with the message's latest receipt
    /// handle after its visibility timeout ended (AWS accepts that while the message was not
    /// received again). A FIFO group locks again.
    pub fn reacquire(&mut self, seq: u64, visible_at_ms: u64) -> Option<Mutation> {
        let uid = self.record.uid;
        let m = self.messages.get(&seq)?;
        if m.state != MessageState::Ready || m.rec.receive_count == 0 {
            return None;
        }
        let group = m.rec.group_id.clone();
        self.ready_remove(seq, group.as_deref());
        self.in_flight_enter(group.as_deref());
        let m = self.messages.get_mut(&seq)?;
        m.rec.visible_at_ms = visible_at_ms;
        m.state = MessageState::InFlight;
        let mutation = update_mutation(uid, &m.rec);
        self.in_flight_timer_insert(visible_at_ms, seq);
        Some(mutation)
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
        let mutation = update_mutation(uid, &m.rec);
        self.in_flight_timer_insert(visible_at_ms, seq);
        Some(mutation)
    }

    /// Groups (FIFO) or tenants (fair queues) with a message in flight.
    pub fn in_flight_groups(&self) -> usize {
        self.in_flight_by_key.len()
    }

    pub fn in_flight_group_keys(&self) -> impl Iterator<Item = &str> {
        self.in_flight_by_key.keys().map(String::as_str)
    }

    /// `(visible, in flight, delayed)`.
    pub fn counts(&self) -> (usize, usize, usize) {
        (self.ready.len(), self.in_flight.len(), self.delayed.len())
    }

    pub fn alloc_seq(&mut self) -> u64 {
        let s = self.next_seq;
        self.next_seq += 1;
        s
    }

    /// Checks the index invariants (tests and debug assertions): every message is in exactly
    /// one of ready / delayed / in flight, and the scheduling index matches `ready`.
    pub fn check_invariants(&self) -> Result<(), String> {
        let mut n_ready = 0;
        for (seq, m) in &self.messages {
            let in_ready = self.ready.contains(seq);
            let in_delayed = self.delayed.contains(&(m.rec.visible_at_ms, *seq));
            let in_flight = self.in_flight.contains(&(m.rec.visible_at_ms, *seq));
            let expected = match m.state {
                MessageState::Ready => (true, false, false),
                MessageState::Delayed => (false, true, false),
                MessageState::InFlight => (false, false, true),
            };
            if (in_ready, in_delayed, in_flight) != expected {
                return Err(format!(
                    "message {seq} in the wrong index for {:?}",
                    m.state
                ));
            }
            if in_ready {
                n_ready += 1;
                let listed = match key_of(&m.rec) {
                    Some(key) => self.ready_by_key.get(key).is_some_and(|s| s.contains(seq)),
                    None => self.solo.contains(seq),
                };
                if !listed {
                    return Err(format!("ready message {seq} missing from its key"));
                }
            }
        }
        if n_ready != self.ready.len()
            || self.delayed.len() + self.in_flight.len() + n_ready != self.messages.len()
        {
            return Err("index sizes disagree with the message table".into());
        }
        let by_key: usize = self.ready_by_key.values().map(BTreeSet::len).sum();
        if by_key + self.solo.len() != self.ready.len() {
            return Err("ready_by_key disagrees with ready".into());
        }
        for (key, set) in &self.ready_by_key {
            let head = set.first().copied();
            let listed = head.is_some_and(|h| self.heads.contains(&(h, key.clone())));
            if listed == self.key_locked(key) {
                return Err(format!(
                    "head of key {key:?} listed={listed} but locked={}",
                    self.key_locked(key)
                ));
            }
        }
        Ok(())
    }
}

pub fn update_mutation(queue_uid: u64, rec: &MessageMeta) -> Mutation {
    Mutation::UpdateMessage {
        queue_uid,
        seq: rec.seq,
        visible_at_ms: rec.visible_at_ms,
        receive_count: rec.receive_count,
        first_receive_ms: rec.first_receive_ms(),
        last_receive_ms: rec.last_receive_ms(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Memory per queued message (docs/performance.md): the boxed entry of `messages`.
    #[test]
    fn a_stored_message_is_small() {
        assert!(
            std::mem::size_of::<StoredMessage>() <= 136,
            "{}",
            std::mem::size_of::<StoredMessage>()
        );
    }

    #[test]
    fn message_ids_round_trip() {
        let uuid = uuid::Uuid::new_v4().to_string();
        let mut senders = SenderIds::default();
        for id in [
            uuid.as_str(),
            "not-a-uuid",
            "",
            "6B29FC40-CA47-1067-B31D-00DD010662DA",
        ] {
            let rec = MessageRecord {
                queue_uid: 1,
                seq: 2,
                message_id: id.to_string(),
                payload: crate::store::Payload::Stored,
                sender_id: "123456789012".into(),
                sent_ms: 3,
                enqueued_ms: 4,
                visible_at_ms: 5,
                receive_count: 6,
                first_receive_ms: Some(0),
                last_receive_ms: None,
                group_id: Some("g".into()),
                dedup_id: None,
                sequence_number: Some("1".into()),
                dead_letter_source_arn: None,
                dead_lettered_ms: Some(7),
            };
            let meta = MessageMeta::from_record(rec.clone(), &mut senders);
            assert_eq!(meta.to_record(), rec);
            assert_eq!(meta.extra.as_ref().unwrap().text_id.is_none(), id == uuid);
        }
    }

    /// A restart's bulk-built indices equal those of inserting message by message, for
    /// ready, delayed and in-flight messages, with and without groups, in any arrival order.
    #[test]
    fn bulk_insert_builds_the_same_indices() {
        let record = |fifo: bool| QueueRecord {
            uid: 1,
            region: "us-east-1".into(),
            account: "000000000000".into(),
            name: if fifo { "q.fifo" } else { "q" }.into(),
            attributes: if fifo {
                [("FifoQueue".to_string(), "true".to_string())].into()
            } else {
                Default::default()
            },
            tags: Default::default(),
            created_secs: 0,
            last_modified_secs: 0,
            last_purge_ms: None,
        };
        let now = 1_000_000;
        let message = |seq: u64| MessageRecord {
            queue_uid: 1,
            seq,
            message_id: format!("m{seq}"),
            payload: crate::store::Payload::Stored,
            sender_id: "s".into(),
            sent_ms: seq,
            // Not in sequence order (a standard DLQ move keeps the retention clock).
            enqueued_ms: (seq * 7919) % 1000,
            visible_at_ms: match seq % 5 {
                0 => now + seq,
                _ => 0,
            },
            receive_count: (seq % 3) as u32,
            first_receive_ms: None,
            last_receive_ms: None,
            group_id: (!seq.is_multiple_of(4)).then(|| format!("g{}", seq % 3)),
            dedup_id: None,
            sequence_number: None,
            dead_letter_source_arn: None,
            dead_lettered_ms: None,
        };
        for fifo in [false, true] {
            for order in [(1..200).collect::<Vec<u64>>(), (1..200).rev().collect()] {
                let mut one_by_one = QueueState::new(record(fifo));
                let mut bulk_built = QueueState::new(record(fifo));
                let mut bulk = BulkIndex::default();
                let mut senders = SenderIds::default();
                for &seq in &order {
                    one_by_one.insert(message(seq), now);
                    let meta = MessageMeta::from_record(message(seq), &mut senders);
                    bulk_built.insert_bulk(meta, now, &mut bulk);
                }
                bulk_built.finish_bulk(bulk);
                assert_eq!(one_by_one.ready, bulk_built.ready);
                assert_eq!(one_by_one.solo, bulk_built.solo);
                assert_eq!(one_by_one.retention, bulk_built.retention);
                assert_eq!(one_by_one.delayed, bulk_built.delayed);
                assert_eq!(one_by_one.in_flight, bulk_built.in_flight);
                assert_eq!(one_by_one.heads, bulk_built.heads);
                assert_eq!(one_by_one.ready_by_key, bulk_built.ready_by_key);
                assert!(!bulk_built.ready.is_empty() && !bulk_built.solo.is_empty());
            }
        }
    }

    /// Runs of sequences that meet modulo a table's size (both ends of a restart's read,
    /// messages from before and after a restart) still land in different control groups.
    #[test]
    fn sequence_runs_do_not_pile_into_the_same_groups() {
        use std::hash::BuildHasher;
        let groups = 1u64 << 16; // a table of 1M buckets
        let group_of = |seq: u64| (BySequence.hash_one(seq) >> 4) % groups;
        let mut load = vec![0u32; groups as usize];
        // Two runs of 100k, the second offset by a multiple of the table size.
        for seq in (0..100_000).chain((1 << 40)..(1 << 40) + 100_000) {
            load[group_of(seq) as usize] += 1;
        }
        // A group holds 16: an overfull one probes its neighbours, so what must not happen is
        // a stretch of overfull groups (consecutive runs on top of each other make one as long
        // as the overlap). Random placement of 12,500 blocks in 65,536 groups makes a few
        // overfull groups, scattered.
        let longest_overfull_stretch = load
            .split(|&n| n <= 16)
            .map(<[u32]>::len)
            .max()
            .unwrap_or(0);
        assert!(longest_overfull_stretch < 8, "{longest_overfull_stretch}");
        // A block is one group, in sequence order, with distinct tags.
        let base = BySequence.hash_one(4_096u64);
        for i in 0..16u64 {
            let h = BySequence.hash_one(4_096 + i);
            assert_eq!(
                h & 0xFFFF_FFF0 & ((1 << 57) - 1),
                base & 0xFFFF_FFF0 & ((1 << 57) - 1)
            );
            assert_eq!(h & 15, i);
        }
        let tags: std::collections::HashSet<u64> = (0..16u64)
            .map(|i| BySequence.hash_one(4_096 + i) >> 57)
            .collect();
        assert!(tags.len() >= 8, "{tags:?}");
    }
}
