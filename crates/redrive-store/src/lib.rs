//! Redrive's storage boundary. The engine keeps every scheduling index in memory and writes each
//! change through a [`Store`] as a [`Mutation`]; on startup it rebuilds the indices from
//! [`Store::load`]. A durable store acknowledges a batch only once it is on disk.
//!
//! Two implementations: [`MemoryStore`] (no durability; the reference semantics of every
//! mutation) and [`RedbStore`] (one redb file written by a group-commit thread; layout and
//! protocol in `docs/storage-format.md`, record encoding in [`codec`]).
//!
//! **Invariant:** mutations are submitted while the queue's lock is held, so a store sees them
//! in the order the engine applied them; the caller waits for durability after releasing it.

mod cache;
pub mod codec;
pub mod journal;
mod redb_store;
mod verify;

use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::Mutex;
use redrive_core::api::MessageAttributes;

pub use journal::JOURNAL_FILE_NAME;
pub use redb_store::{
    DEFAULT_COMPACT_AT_OPEN_MAX_BYTES, DEFAULT_PAYLOAD_CACHE_BYTES, DEFAULT_RESERVE_BYTES,
    DurabilityMode, FILE_NAME, FORMAT_VERSION, LAZY_DOCUMENT_KINDS, MAX_GROUP_MUTATIONS,
    RESERVE_FILE_NAME, RedbStore, StoreError, StoreOptions,
};
pub use verify::{JournalReport, TableReport, VerifyProblem, VerifyReport, verify};

/// Queue metadata as persisted.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueRecord {
    pub uid: u64,
    pub region: String,
    pub account: String,
    pub name: String,
    pub attributes: BTreeMap<String, String>,
    pub tags: BTreeMap<String, String>,
    pub created_secs: u64,
    pub last_modified_secs: u64,
    pub last_purge_ms: Option<u64>,
}

/// The part of a message only a receive (or browse, move, replay) needs: the body and the
/// attributes. A durable store keeps it on disk (`message_body`, format 3) and the engine reads
/// it with [`Store::payload`]; the in-memory mode keeps it in memory.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MessagePayload {
    pub body: String,
    pub attributes: MessageAttributes,
    pub system_attributes: MessageAttributes,
}

impl MessagePayload {
    /// Bytes this payload holds (body, attribute names and values): what the payload cache
    /// counts.
    pub fn size(&self) -> usize {
        fn attrs(a: &MessageAttributes) -> usize {
            a.iter()
                .map(|(k, v)| {
                    k.len()
                        + v.data_type.len()
                        + v.string_value.as_ref().map_or(0, String::len)
                        + v.binary_value.as_ref().map_or(0, Vec::len)
                        + v.string_list_values.iter().map(String::len).sum::<usize>()
                        + v.binary_list_values.iter().map(Vec::len).sum::<usize>()
                        + 64
                })
                .sum()
        }
        self.body.len() + attrs(&self.attributes) + attrs(&self.system_attributes) + 64
    }
}

/// Where a message's [`MessagePayload`] is.
#[derive(Debug, Clone, PartialEq)]
pub enum Payload {
    /// In memory (every message of the in-memory mode; a message being written).
    Loaded(Arc<MessagePayload>),
    /// In the store only: read it with [`Store::payload`] (a message loaded from a durable
    /// store, or kept by the engine without its payload).
    Stored,
}

impl Payload {
    pub fn new(
        body: impl AsRef<str>,
        attributes: MessageAttributes,
        system_attributes: MessageAttributes,
    ) -> Self {
        Payload::Loaded(Arc::new(MessagePayload {
            body: body.as_ref().to_owned(),
            attributes,
            system_attributes,
        }))
    }

    pub fn loaded(&self) -> Option<&Arc<MessagePayload>> {
        match self {
            Payload::Loaded(p) => Some(p),
            Payload::Stored => None,
        }
    }
}

/// One message as persisted.
#[derive(Debug, Clone, PartialEq)]
pub struct MessageRecord {
    pub queue_uid: u64,
    pub seq: u64,
    pub message_id: String,
    /// Body and attributes: in memory, or only in the store.
    pub payload: Payload,
    pub sender_id: String,
    pub sent_ms: u64,
    /// Start of the retention clock (kept across a standard DLQ move).
    pub enqueued_ms: u64,
    pub visible_at_ms: u64,
    pub receive_count: u32,
    pub first_receive_ms: Option<u64>,
    pub last_receive_ms: Option<u64>,
    pub group_id: Option<String>,
    pub dedup_id: Option<String>,
    pub sequence_number: Option<String>,
    pub dead_letter_source_arn: Option<String>,
    pub dead_lettered_ms: Option<u64>,
}

static EMPTY_PAYLOAD: MessagePayload = MessagePayload {
    body: String::new(),
    attributes: BTreeMap::new(),
    system_attributes: BTreeMap::new(),
};

impl MessageRecord {
    /// The payload if it is in memory, else an empty one: for callers that loaded the record
    /// first (`Payload::Loaded`), never a substitute for reading it.
    pub fn payload_or_empty(&self) -> &MessagePayload {
        self.payload.loaded().map_or(&EMPTY_PAYLOAD, |p| p)
    }
}

/// A change to persist.
#[derive(Debug, Clone, PartialEq)]
pub enum Mutation {
    PutQueue(QueueRecord),
    DeleteQueue {
        uid: u64,
    },
    PutMessage(MessageRecord),
    /// Receive, visibility change or visibility expiry bookkeeping.
    UpdateMessage {
        queue_uid: u64,
        seq: u64,
        visible_at_ms: u64,
        receive_count: u32,
        first_receive_ms: Option<u64>,
        last_receive_ms: Option<u64>,
    },
    DeleteMessage {
        queue_uid: u64,
        seq: u64,
    },
    /// Remove every message of the queue with `seq <= up_to_seq`.
    Purge {
        queue_uid: u64,
        up_to_seq: u64,
    },
    PutMoveTask(MoveTaskRecord),
    DeleteMoveTask {
        task_id: String,
    },
    /// A FIFO deduplication entry (kept 5 minutes, also after the message is deleted).
    PutDedup(DedupRecord),
    DeleteDedup {
        queue_uid: u64,
        key: String,
    },
    /// A document of a Redrive extension (replay tasks, their move log, schedules, schedule
    /// runs): JSON the engine owns, kept under `(kind, key)`.
    PutDocument(DocumentRecord),
    DeleteDocument {
        kind: String,
        key: String,
    },
    /// Removes every document of `kind` whose key starts with `prefix`.
    DeleteDocuments {
        kind: String,
        prefix: String,
    },
}

/// A stored extension document (see [`Mutation::PutDocument`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentRecord {
    pub kind: String,
    pub key: String,
    /// JSON; its shape is versioned by the engine (a `v` field), not by the store.
    pub value: Vec<u8>,
}

/// A FIFO deduplication entry as persisted: a duplicate send within `expires_ms` is answered
/// with the original `message_id` and `sequence_number`.
#[derive(Debug, Clone, PartialEq)]
pub struct DedupRecord {
    pub queue_uid: u64,
    /// The scope key: the dedup id, or `group \0 id` with `DeduplicationScope=messageGroup`.
    pub key: String,
    pub expires_ms: u64,
    pub message_id: String,
    pub sequence_number: String,
}

/// A part of a streamed load (`RedbStore::try_load_streamed`): every queue first, then
/// messages in batches. Each message comes once, in no set order (two threads read the
/// message table from its two ends).
#[derive(Debug)]
pub enum LoadPart {
    Queues(Vec<QueueRecord>),
    Messages(Vec<MessageRecord>),
}

/// Everything needed to rebuild the engine's state.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub queues: Vec<QueueRecord>,
    pub messages: Vec<MessageRecord>,
    pub move_tasks: Vec<MoveTaskRecord>,
    pub dedup: Vec<DedupRecord>,
    /// Extension documents, ordered by `(kind, key)`.
    pub documents: Vec<DocumentRecord>,
    /// Highest queue uid ever handed out (uids never repeat).
    pub max_queue_uid: u64,
    /// Records that failed verification (checksum or decode) during this load: none of them is
    /// in the snapshot; each was moved to the store's quarantine (see `docs/storage-format.md`).
    pub quarantined: Vec<QuarantinedRecord>,
    /// Records in the quarantine after this load (including those of earlier loads).
    pub quarantined_total: u64,
}

/// A stored record that failed verification and was moved to the quarantine instead of being
/// served. Never carries the record's contents (a message body may be sensitive).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuarantinedRecord {
    /// The table the record was in (`messages`, `message_state`, `queues`, …).
    pub table: String,
    /// A printable form of its key: `uid/seq` for messages, `uid` for queues, `kind/key` for
    /// documents (see `codec::describe_key`).
    pub key: String,
    /// Why: the checksum or decode error, or the consequence of another record's failure.
    pub reason: String,
    /// `false` for a record moved only because another one failed (the state of a message
    /// whose `messages` record failed); `true` for a record that failed verification itself.
    pub failed_verification: bool,
    /// For `messages` and `message_state` records: the message's queue uid and seq.
    pub message: Option<(u64, u64)>,
    /// When it was quarantined (ms since the Unix epoch).
    pub quarantined_ms: u64,
}

/// Status of a message move task, as `ListMessageMoveTasks` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MoveTaskStatus {
    Running,
    Completed,
    Cancelling,
    Cancelled,
    Failed,
}

impl MoveTaskStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            MoveTaskStatus::Running => "RUNNING",
            MoveTaskStatus::Completed => "COMPLETED",
            MoveTaskStatus::Cancelling => "CANCELLING",
            MoveTaskStatus::Cancelled => "CANCELLED",
            MoveTaskStatus::Failed => "FAILED",
        }
    }

    pub fn is_active(self) -> bool {
        matches!(self, MoveTaskStatus::Running | MoveTaskStatus::Cancelling)
    }
}

/// A message move task (redrive) as persisted. Progress is written in the same store batch as
/// each message it moves, so after a crash `moved` is exact.
#[derive(Debug, Clone, PartialEq)]
pub struct MoveTaskRecord {
    pub task_id: String,
    pub source_arn: String,
    pub destination_arn: Option<String>,
    pub max_per_second: Option<i64>,
    pub status: MoveTaskStatus,
    pub moved: u64,
    pub to_move: u64,
    pub started_ms: u64,
    pub failure_reason: Option<String>,
}

/// Resolves once a submitted batch is durable. The engine replies to a client only after it.
#[derive(Debug)]
pub struct Durable(Option<tokio::sync::oneshot::Receiver<Result<(), String>>>);

impl Durable {
    /// Already durable (or nothing to make durable).
    pub fn done() -> Self {
        Durable(None)
    }

    /// Durable when the sender side reports success.
    pub fn pending(rx: tokio::sync::oneshot::Receiver<Result<(), String>>) -> Self {
        Durable(Some(rx))
    }

    pub async fn wait(self) -> Result<(), String> {
        match self.0 {
            None => Ok(()),
            Some(rx) => rx
                .await
                .unwrap_or_else(|_| Err("store writer stopped".to_string())),
        }
    }
}

/// What a store's write path can do now: read by the engine before it changes memory, and by
/// the health endpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreHealth {
    /// Write failures so far. Whenever this moved since the engine last rebuilt its memory from
    /// [`Store::recover`], the engine's memory may be ahead of the disk.
    pub failures: u64,
    /// Set while every write is refused: the last write failed and [`Store::recover`] has not
    /// run since.
    pub failed: Option<String>,
    /// Set while space is short (the reserve was given up to let deletes commit): writes that
    /// grow the store should be refused before they change anything.
    pub low_space: Option<String>,
    /// Free bytes on the store's file system, when known.
    pub free_bytes: Option<u64>,
    /// The most recent write error, kept after recovery for the health endpoint.
    pub last_error: Option<String>,
}

pub trait Store: Send + Sync + 'static {
    fn load(&self) -> Snapshot;
    /// Queues mutations in order; called with the owning queue locked. Await the returned
    /// [`Durable`] after releasing the lock.
    fn submit(&self, batch: Vec<Mutation>) -> Durable;
    /// The write path's condition (a store that cannot fail reports the default).
    fn health(&self) -> StoreHealth {
        StoreHealth::default()
    }
    /// [`StoreHealth::failures`] alone: cheap, read before every request.
    fn write_failures(&self) -> u64 {
        0
    }
    /// Every record in the quarantine (failed verification, never served), oldest first.
    fn quarantined(&self) -> Result<Vec<QuarantinedRecord>, String> {
        Ok(Vec::new())
    }
    /// Whether [`StoreHealth::low_space`] is set: cheap, read before every write that grows
    /// the store.
    fn low_space(&self) -> bool {
        self.health().low_space.is_some()
    }
    /// After a write failure: reads what is committed (reopening the store if it has to) and
    /// accepts writes again. Returns [`StoreHealth::failures`] as of the read with the snapshot.
    /// Every batch submitted before the call and not yet committed has failed; the caller must
    /// not submit while it rebuilds from the snapshot.
    fn recover(&self) -> Result<(u64, Snapshot), String> {
        Ok((self.health().failures, self.load()))
    }

    /// The extension documents of `kind` with `from <= key < to`, in key order: a range read
    /// for extension APIs (never on a request's hot path). The default reads everything.
    /// Whether the store keeps message payloads itself, so the engine may drop them from
    /// memory ([`Payload::Stored`]) and read them with [`Store::payload`].
    fn keeps_payloads(&self) -> bool {
        false
    }

    /// The payload of message `(queue_uid, seq)`, also of one submitted and not yet committed.
    /// `Ok(None)` if there is no such message; `Err` if it cannot be read or fails
    /// verification.
    fn payload(&self, queue_uid: u64, seq: u64) -> Result<Option<Arc<MessagePayload>>, String> {
        let _ = (queue_uid, seq);
        Ok(None)
    }

    fn documents(&self, kind: &str, from: &str, to: &str) -> Result<Vec<DocumentRecord>, String> {
        Ok(self
            .load()
            .documents
            .into_iter()
            .filter(|d| d.kind == kind && d.key.as_str() >= from && d.key.as_str() < to)
            .collect())
    }

    /// The distinct prefixes of the keys of `kind`'s documents, each up to and including its
    /// `depth`-th `/` (a key with fewer is its own prefix), in order: which queue-days of
    /// minute history exist, without reading the documents. The default reads everything.
    fn document_prefixes(&self, kind: &str, depth: usize) -> Result<Vec<String>, String> {
        let mut out: Vec<String> = self
            .documents(kind, "", "\u{10ffff}")?
            .into_iter()
            .map(|d| prefix_of(&d.key, depth).to_string())
            .collect();
        out.dedup();
        Ok(out)
    }
}

/// `key` up to and including its `depth`-th `/` (all of it if it has fewer).
pub fn prefix_of(key: &str, depth: usize) -> &str {
    if depth == 0 {
        return key;
    }
    key.match_indices('/')
        .nth(depth - 1)
        .map_or(key, |(i, _)| &key[..=i])
}

/// Keeps the records in memory: no durability, but the same recovery path as a durable store,
/// so a restart within the process can be tested.
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: Mutex<MemoryState>,
}

#[derive(Debug, Default)]
struct MemoryState {
    queues: BTreeMap<u64, QueueRecord>,
    messages: BTreeMap<(u64, u64), MessageRecord>,
    move_tasks: BTreeMap<String, MoveTaskRecord>,
    dedup: BTreeMap<(u64, String), DedupRecord>,
    documents: BTreeMap<(String, String), Vec<u8>>,
    max_queue_uid: u64,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn message_count(&self) -> usize {
        self.inner.lock().messages.len()
    }
}

impl Store for MemoryStore {
    fn payload(&self, queue_uid: u64, seq: u64) -> Result<Option<Arc<MessagePayload>>, String> {
        Ok(self
            .inner
            .lock()
            .messages
            .get(&(queue_uid, seq))
            .and_then(|m| m.payload.loaded().cloned()))
    }

    fn load(&self) -> Snapshot {
        let s = self.inner.lock();
        Snapshot {
            queues: s.queues.values().cloned().collect(),
            messages: s.messages.values().cloned().collect(),
            move_tasks: s.move_tasks.values().cloned().collect(),
            dedup: s.dedup.values().cloned().collect(),
            documents: s
                .documents
                .iter()
                .filter(|((kind, _), _)| !LAZY_DOCUMENT_KINDS.contains(&kind.as_str()))
                .map(|((kind, key), value)| DocumentRecord {
                    kind: kind.clone(),
                    key: key.clone(),
                    value: value.clone(),
                })
                .collect(),
            max_queue_uid: s.max_queue_uid,
            quarantined: Vec::new(),
            quarantined_total: 0,
        }
    }

    fn submit(&self, batch: Vec<Mutation>) -> Durable {
        let mut s = self.inner.lock();
        for m in batch {
            match m {
                m @ (Mutation::PutMoveTask(_)
                | Mutation::DeleteMoveTask { .. }
                | Mutation::PutDedup(_)
                | Mutation::DeleteDedup { .. }
                | Mutation::PutDocument(_)
                | Mutation::DeleteDocument { .. }
                | Mutation::DeleteDocuments { .. }) => {
                    s.apply_task(m);
                }
                Mutation::PutQueue(q) => {
                    s.max_queue_uid = s.max_queue_uid.max(q.uid);
                    s.queues.insert(q.uid, q);
                }
                Mutation::DeleteQueue { uid } => {
                    s.queues.remove(&uid);
                    let keys: Vec<_> = s
                        .messages
                        .range((uid, 0)..=(uid, u64::MAX))
                        .map(|(k, _)| *k)
                        .collect();
                    for k in keys {
                        s.messages.remove(&k);
                    }
                    s.dedup.retain(|(q, _), _| *q != uid);
                }
                Mutation::PutMessage(r) => {
                    s.messages.insert((r.queue_uid, r.seq), r);
                }
                Mutation::UpdateMessage {
                    queue_uid,
                    seq,
                    visible_at_ms,
                    receive_count,
                    first_receive_ms,
                    last_receive_ms,
                } => {
                    if let Some(r) = s.messages.get_mut(&(queue_uid, seq)) {
                        r.visible_at_ms = visible_at_ms;
                        r.receive_count = receive_count;
                        r.first_receive_ms = first_receive_ms;
                        r.last_receive_ms = last_receive_ms;
                    }
                }
                Mutation::DeleteMessage { queue_uid, seq } => {
                    s.messages.remove(&(queue_uid, seq));
                }
                Mutation::Purge {
                    queue_uid,
                    up_to_seq,
                } => {
                    let keys: Vec<_> = s
                        .messages
                        .range((queue_uid, 0)..=(queue_uid, up_to_seq))
                        .map(|(k, _)| *k)
                        .collect();
                    for k in keys {
                        s.messages.remove(&k);
                    }
                }
            }
        }
        Durable::done()
    }

    fn documents(&self, kind: &str, from: &str, to: &str) -> Result<Vec<DocumentRecord>, String> {
        if from >= to {
            return Ok(Vec::new());
        }
        let s = self.inner.lock();
        Ok(s.documents
            .range((kind.to_string(), from.to_string())..(kind.to_string(), to.to_string()))
            .map(|((kind, key), value)| DocumentRecord {
                kind: kind.clone(),
                key: key.clone(),
                value: value.clone(),
            })
            .collect())
    }
}

impl MemoryState {
    fn apply_task(&mut self, m: Mutation) {
        match m {
            Mutation::PutMoveTask(t) => {
                self.move_tasks.insert(t.task_id.clone(), t);
            }
            Mutation::DeleteMoveTask { task_id } => {
                self.move_tasks.remove(&task_id);
            }
            Mutation::PutDedup(d) => {
                self.dedup.insert((d.queue_uid, d.key.clone()), d);
            }
            Mutation::DeleteDedup { queue_uid, key } => {
                self.dedup.remove(&(queue_uid, key));
            }
            Mutation::PutDocument(d) => {
                self.documents.insert((d.kind, d.key), d.value);
            }
            Mutation::DeleteDocument { kind, key } => {
                self.documents.remove(&(kind, key));
            }
            Mutation::DeleteDocuments { kind, prefix } => {
                self.documents
                    .retain(|(k, key), _| !(k == &kind && key.starts_with(&prefix)));
            }
            _ => {}
        }
    }
}
