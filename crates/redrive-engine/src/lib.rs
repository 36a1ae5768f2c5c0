//! The queue engine: SQS semantics over in-memory scheduling indices, written through a
//! [`Store`].
//!
//! # Layout
//! - [`Engine`]: the registry of queues and one `handle_*`-style method per SQS action
//!   (`queues.rs` for queue-level actions, `messages.rs` for message-level ones).
//! - [`queue`]: one queue's messages and timer indices.
//! - [`store`]: the persistence boundary ([`Store`], [`Mutation`], [`MemoryStore`]).
//! - [`clock`]: injectable time.
//! - [`receipt`]: receipt-handle codec.
//! - [`history`]: the minute history; [`alerts`]: alert rules evaluated over it, their
//!   states, transitions, silences and the webhook outbox.
//!
//! Long polling: each queue has a [`tokio::sync::Notify`]; a receive that finds nothing waits
//! for a send or for the queue's next timer, whichever comes first (no background sweeper).

pub mod alerts;
pub mod audit;
pub mod backend;
pub mod browse;
pub mod clock;
pub mod cw_alarms;
mod either_store;
pub mod history;
mod leased_jobs;
mod messages;
pub mod metrics;
mod moves;
pub mod queue;
mod queues;
pub mod receipt;
pub mod replays;
pub mod schedules;
mod shared;
mod shared_alerts;
mod shared_history;
mod shared_replays;
mod shared_schedules;
mod shared_tasks;
mod tasks;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::{Mutex, MutexGuard, RwLock};
use redrive_core::arn::{QueueArn, parse_queue_url};
use redrive_core::{SqsError, SqsResult};
use tokio::sync::Notify;

pub use browse::{BrowseCursor, BrowsePage, BrowseQuery, BrowsedMessage, QueueSummary};
pub use clock::{Clock, ManualClock, SystemClock};
pub use queue::{MessageState, QueueState};
/// The storage boundary (re-exported so `redrive_engine::store::…` paths keep working).
pub use redrive_store as store;
pub use store::{Durable, MemoryStore, MoveTaskRecord, MoveTaskStatus, Mutation, Store};
pub use tasks::{decode_task_handle, encode_task_handle};

/// Server-wide identity settings.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// The account in queue URLs and ARNs. (The Region is per request: `RequestContext`.)
    pub account_id: String,
    /// How queue URLs are written (issue 20 point 9).
    pub queue_url_style: QueueUrlStyle,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            account_id: "000000000000".into(),
            queue_url_style: QueueUrlStyle::Path,
        }
    }
}

/// The form of the queue URLs the server hands out (LocalStack's endpoint strategies). The
/// Region is the caller's (SigV4 scope). Every form is accepted on input, whatever the style.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum QueueUrlStyle {
    /// `{scheme}://{Host}/{account}/{name}` (the default; what moto's suite expects).
    #[default]
    Path,
    /// `{scheme}://sqs.{region}.{Host}/{account}/{name}` (like AWS's
    /// `https://sqs.<region>.amazonaws.com/…`).
    HostRegion,
    /// `{scheme}://{Host}/queue/{region}/{account}/{name}`.
    PathRegion,
}

impl std::str::FromStr for QueueUrlStyle {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "path" => Ok(QueueUrlStyle::Path),
            "host-region" => Ok(QueueUrlStyle::HostRegion),
            "path-region" => Ok(QueueUrlStyle::PathRegion),
            _ => Err(format!(
                "unknown queue URL style {s:?} (path, host-region or path-region)"
            )),
        }
    }
}

/// Per-request facts the engine needs: the caller's Region (from the SigV4 scope) and the base
/// URL queue URLs are built on (`{scheme}://{Host}`).
#[derive(Debug, Clone)]
pub struct RequestContext {
    pub region: String,
    pub base_url: String,
}

/// A live queue: its state behind a lock and a wakeup for long pollers.
#[derive(Debug)]
pub struct Queue {
    pub uid: u64,
    pub region: String,
    pub name: String,
    pub arn: String,
    pub state: Mutex<QueueState>,
    pub notify: Notify,
    /// What happened to the queue since the process started (see [`metrics`]).
    pub counters: metrics::QueueCounters,
}

type QueueKey = (String, String);

#[derive(Debug, Default)]
struct Registry {
    queues: HashMap<QueueKey, Arc<Queue>>,
    /// When a name was last deleted (for `QueueDeletedRecently`).
    deleted_at_ms: HashMap<QueueKey, u64>,
}

pub struct Engine {
    config: EngineConfig,
    clock: Arc<dyn Clock>,
    store: Arc<dyn Store>,
    registry: RwLock<Registry>,
    next_queue_uid: AtomicU64,
    /// FIFO sequence numbers: one counter for the whole server, seeded from the clock so it
    /// keeps growing across restarts.
    sequence: Mutex<u128>,
    /// Message move tasks, oldest first (a leaf lock: never held while taking another).
    move_tasks: Mutex<Vec<store::MoveTaskRecord>>,
    /// Selective redrives (a leaf lock, like `move_tasks`).
    replays: Mutex<replays::Replays>,
    /// Scheduled redrives (a leaf lock).
    schedules: Mutex<schedules::Schedules>,
    /// Wakes the scheduler when a schedule is added.
    schedule_changed: Notify,
    /// [`store::StoreHealth::failures`] as of the last rebuild from the store: while the store
    /// reports more, memory may be ahead of the disk and is rebuilt before it is used.
    synced_failures: AtomicU64,
    /// One rebuild at a time.
    resync: Mutex<()>,
    /// Records in the store's quarantine as of the last load (for the health endpoint).
    quarantined_total: AtomicU64,
    /// Set when a payload read found a message gone (the store quarantined it): the count
    /// above is read again from the store when next asked.
    quarantine_changed: std::sync::atomic::AtomicBool,
    /// Minute history bookkeeping (a leaf lock; see [`history`]).
    history: Mutex<history::History>,
    /// One minute-history write at a time (queue locks are taken under it).
    history_flush: Mutex<()>,
    /// Alert rules, states, transitions, silences and the notification outbox (see [`alerts`]).
    alerts: alerts::AlertBook,
    /// One CloudWatch alarm change or evaluation at a time (see [`cw_alarms`]).
    cw_alarms: tokio::sync::Mutex<()>,
    /// Queues and messages in a shared backend instead of this process (ADR 0002).
    shared: Option<Arc<dyn backend::QueueBackend>>,
    /// On a shared backend: this process's counts of each queue's traffic, by queue uid (each
    /// server counts what it served, as Prometheus adds up counters across instances).
    shared_counters: Mutex<HashMap<u64, Arc<metrics::QueueCounters>>>,
    /// On a shared backend: each queue's in-flight count as last read here, with this
    /// server's deliveries since added, and when it was read (see [`Engine::sh_in_flight`]).
    shared_in_flight: Mutex<HashMap<u64, (shared::CountedInFlight, std::time::Instant)>>,
    /// On a shared backend: this process's name in lease rows (minute history, alerts).
    shared_holder: String,
    /// Wakes the shared backend's move-task runner (a task was started or cancelled here).
    shared_tasks_wake: Arc<tokio::sync::Notify>,
    /// Wakes the shared backend's replay runner (a replay was started or cancelled here).
    shared_replays_wake: Arc<tokio::sync::Notify>,
}

/// Everything [`Engine`] rebuilds from a [`store::Snapshot`].
struct Rebuilt {
    registry: Registry,
    max_uid: u64,
    max_sequence: u128,
    move_tasks: Vec<store::MoveTaskRecord>,
    replays: replays::Replays,
    schedules: schedules::Schedules,
    /// Cleanup of stale documents, to submit once the engine uses the rebuilt state.
    stale: Vec<Mutation>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Why a message's payload could not be had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unreadable {
    /// The store no longer has the message (its payload failed verification and it was
    /// quarantined): drop it from memory too.
    Gone,
    /// The store could not read it now (logged by the store): leave the message where it is.
    Failed,
}

impl Engine {
    /// The payload of `rec`: in memory (the in-memory mode, a message being written), or read
    /// from the store (through its cache). Never logs the contents.
    pub(crate) fn payload_of(
        &self,
        rec: &queue::MessageMeta,
    ) -> Result<Arc<store::MessagePayload>, Unreadable> {
        match &rec.payload {
            store::Payload::Loaded(p) => Ok(p.clone()),
            store::Payload::Stored => match self.store.payload(rec.queue_uid, rec.seq) {
                Ok(Some(p)) => Ok(p),
                Ok(None) => {
                    self.quarantine_changed.store(true, Ordering::SeqCst);
                    Err(Unreadable::Gone)
                }
                Err(_) => Err(Unreadable::Failed),
            },
        }
    }

    /// `rec` with its payload in memory (see [`Engine::payload_of`]).
    pub(crate) fn loaded(
        &self,
        rec: &queue::MessageMeta,
    ) -> Result<store::MessageRecord, Unreadable> {
        let p = self.payload_of(rec)?;
        Ok(store::MessageRecord {
            payload: store::Payload::Loaded(p),
            ..rec.to_record()
        })
    }

    /// What memory keeps of a message just submitted with its payload: without the payload
    /// when the store keeps it (read back on receive), else all of it.
    pub(crate) fn kept(&self, mut rec: store::MessageRecord) -> store::MessageRecord {
        if self.store.keeps_payloads() {
            rec.payload = store::Payload::Stored;
        }
        rec
    }

    /// Opens an engine over `store`, rebuilding every index from what it holds.
    pub fn open(config: EngineConfig, store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> Self {
        let snapshot = store.load();
        Self::from_snapshot(config, store, clock, snapshot)
    }

    /// Builds the engine from a snapshot already read from `store` (so a caller can check the
    /// load for errors first).
    pub fn from_snapshot(
        config: EngineConfig,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        snapshot: store::Snapshot,
    ) -> Self {
        let rebuilder = Rebuilder::new(clock.now_ms());
        Self::from_rebuilder(config, store, clock, rebuilder, snapshot)
    }

    /// Builds the engine from `rebuilder` (queues and messages the store streamed to it) and
    /// the rest of the load, `snapshot`, which may still hold queues and messages too.
    pub fn from_rebuilder(
        config: EngineConfig,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        rebuilder: Rebuilder,
        snapshot: store::Snapshot,
    ) -> Self {
        let synced_failures = store.write_failures();
        let quarantined_total = snapshot.quarantined_total;
        let history = history::History::from_store(&*store, clock.now_ms());
        let alerts = alerts::AlertBook::from_documents(&snapshot.documents);
        let built = rebuilder.finish(snapshot);
        if !built.stale.is_empty() {
            let _ = store.submit(built.stale);
        }
        Engine {
            replays: Mutex::new(built.replays),
            schedules: Mutex::new(built.schedules),
            schedule_changed: Notify::new(),
            config,
            clock,
            store,
            registry: RwLock::new(built.registry),
            next_queue_uid: AtomicU64::new(built.max_uid + 1),
            sequence: Mutex::new(built.max_sequence),
            move_tasks: Mutex::new(built.move_tasks),
            synced_failures: AtomicU64::new(synced_failures),
            resync: Mutex::new(()),
            quarantined_total: AtomicU64::new(quarantined_total),
            quarantine_changed: std::sync::atomic::AtomicBool::new(false),
            history: Mutex::new(history),
            history_flush: Mutex::new(()),
            alerts,
            cw_alarms: tokio::sync::Mutex::new(()),
            shared: None,
            shared_counters: Mutex::new(HashMap::new()),
            shared_in_flight: Mutex::new(HashMap::new()),
            shared_holder: uuid::Uuid::new_v4().to_string(),
            shared_tasks_wake: Arc::new(tokio::sync::Notify::new()),
            shared_replays_wake: Arc::new(tokio::sync::Notify::new()),
        }
    }

    /// Builds every index from a snapshot: at startup, and after a write failure.
    fn rebuild(snapshot: store::Snapshot, now: u64) -> Rebuilt {
        Rebuilder::new(now).finish(snapshot)
    }
}

/// Loaded messages in the engine's compact form ([`Rebuilder::prepare`]).
pub struct PreparedMessages {
    messages: Vec<queue::MessageMeta>,
    max_sequence: u128,
    /// Read from the end of the table (a streamed load's second reader).
    descending: bool,
}

impl std::fmt::Debug for PreparedMessages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreparedMessages")
            .field("messages", &self.messages.len())
            .finish_non_exhaustive()
    }
}

/// Builds the engine's indices from a load in parts: queues first, then messages in batches
/// (while the store is still reading the rest: a restart's read and indexing overlap), then
/// the rest of the snapshot ([`Engine::from_rebuilder`]). Messages of a queue not added are
/// dropped, as a whole-snapshot rebuild drops them.
pub struct Rebuilder {
    now: u64,
    registry: Registry,
    by_uid: HashMap<u64, Arc<Queue>>,
    max_uid: u64,
    max_sequence: u128,
    messages: u64,
    /// Per queue uid: index entries built at once when the load ends, from batches in
    /// ascending and in descending order.
    bulk: HashMap<u64, [queue::BulkIndex; 2]>,
    /// Sender ids shared by the messages [`Rebuilder::add_messages`] converts.
    senders: queue::SenderIds,
}

impl std::fmt::Debug for Rebuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rebuilder")
            .field("queues", &self.by_uid.len())
            .field("messages", &self.messages)
            .finish_non_exhaustive()
    }
}

impl Rebuilder {
    /// `now_ms`: the clock at the start (due delays and visibility timeouts).
    pub fn new(now_ms: u64) -> Rebuilder {
        Rebuilder {
            now: now_ms,
            registry: Registry::default(),
            by_uid: HashMap::new(),
            max_uid: 0,
            max_sequence: 0,
            messages: 0,
            bulk: HashMap::new(),
            senders: queue::SenderIds::default(),
        }
    }

    /// Messages indexed so far.
    pub fn messages(&self) -> u64 {
        self.messages
    }

    pub fn add_queues(&mut self, queues: Vec<store::QueueRecord>) {
        for rec in queues {
            self.max_uid = self.max_uid.max(rec.uid);
            let q = Arc::new(Queue {
                uid: rec.uid,
                region: rec.region.clone(),
                name: rec.name.clone(),
                arn: QueueArn::new(&rec.region, &rec.account, &rec.name).to_string(),
                state: Mutex::new(QueueState::new(rec.clone())),
                notify: Notify::new(),
                counters: Default::default(),
            });
            self.by_uid.insert(rec.uid, q.clone());
            self.registry.queues.insert((rec.region, rec.name), q);
        }
    }

    /// Indexes `batch` (in any order: a streamed load reads from both ends), locking
    /// each queue once per run of its messages.
    pub fn add_messages(&mut self, batch: Vec<store::MessageRecord>) {
        let prepared = Self::prepare(batch, &mut self.senders);
        self.add_prepared(prepared);
    }

    /// Converts a batch of loaded records to the engine's compact form. Runs on any thread, so
    /// that a restart converts on one thread while [`Rebuilder::add_prepared`] indexes on
    /// another; `senders` shares sender ids across the batches it converts.
    pub fn prepare(
        batch: Vec<store::MessageRecord>,
        senders: &mut queue::SenderIds,
    ) -> PreparedMessages {
        let key = |m: &store::MessageRecord| (m.queue_uid, m.seq);
        let descending = match (batch.first(), batch.last()) {
            (Some(first), Some(last)) => key(first) > key(last),
            _ => false,
        };
        let mut max_sequence = 0u128;
        let messages = batch
            .into_iter()
            .map(|m| {
                if let Some(sn) = m
                    .sequence_number
                    .as_deref()
                    .and_then(|s| s.parse::<u128>().ok())
                {
                    max_sequence = max_sequence.max(sn);
                }
                queue::MessageMeta::from_record(m, senders)
            })
            .collect();
        PreparedMessages {
            messages,
            max_sequence,
            descending,
        }
    }

    /// Indexes a [`Rebuilder::prepare`]d batch, locking each queue once per run of its
    /// messages.
    pub fn add_prepared(&mut self, prepared: PreparedMessages) {
        let PreparedMessages {
            messages,
            max_sequence,
            descending,
        } = prepared;
        self.max_sequence = self.max_sequence.max(max_sequence);
        let mut batch = messages.into_iter().peekable();
        while let Some(first) = batch.next() {
            let uid = first.queue_uid;
            let queue = self.by_uid.get(&uid).cloned();
            let mut state = queue.as_ref().map(|q| q.state.lock());
            let bulk = &mut self.bulk.entry(uid).or_default()[usize::from(descending)];
            let mut m = first;
            loop {
                if let Some(st) = state.as_mut() {
                    st.insert_bulk(m, self.now, bulk);
                    self.messages += 1;
                }
                match batch.next_if(|n| n.queue_uid == uid) {
                    Some(next) => m = next,
                    None => break,
                }
            }
        }
    }

    /// Adds what `snapshot` still holds (queues, messages, then dedup entries, documents and
    /// move tasks) and returns the indices.
    fn finish(mut self, snapshot: store::Snapshot) -> Rebuilt {
        let now = self.now;
        self.max_uid = self.max_uid.max(snapshot.max_queue_uid);
        self.add_queues(snapshot.queues);
        // Size each queue's message table once instead of growing it message by message.
        let mut per_queue: HashMap<u64, usize> = HashMap::new();
        for m in &snapshot.messages {
            *per_queue.entry(m.queue_uid).or_default() += 1;
        }
        for (uid, n) in per_queue {
            if let Some(q) = self.by_uid.get(&uid) {
                q.state.lock().messages.reserve(n);
            }
        }
        // Consumed from the end in batches, giving the snapshot's buffer back as it empties:
        // the indices of millions of messages are built while it shrinks, not beside all of
        // it (issue 16: peak memory at restart).
        let mut messages = snapshot.messages;
        let mut since_shrink = 0usize;
        while !messages.is_empty() {
            let batch = messages.split_off(messages.len().saturating_sub(1 << 16));
            self.add_messages(batch);
            since_shrink += 1;
            if since_shrink == 4 {
                messages.shrink_to_fit();
                since_shrink = 0;
            }
        }
        for (uid, [mut ascending, descending]) in std::mem::take(&mut self.bulk) {
            if let Some(q) = self.by_uid.get(&uid) {
                ascending.extend_reversed(descending);
                q.state.lock().finish_bulk(ascending);
            }
        }
        let Rebuilder {
            mut registry,
            by_uid,
            max_uid,
            mut max_sequence,
            ..
        } = self;
        // Message sequences never repeat across restarts (receipt handles name them): start
        // past any sequence an earlier run could have issued.
        for q in by_uid.values() {
            let mut st = q.state.lock();
            st.next_seq = st.next_seq.max(sequence_floor(now));
        }
        for d in snapshot.dedup {
            if let Ok(sn) = d.sequence_number.parse::<u128>() {
                max_sequence = max_sequence.max(sn);
            }
            if let Some(q) = by_uid.get(&d.queue_uid) {
                q.state.lock().restore_dedup(d, now);
            }
        }
        let seeded = u128::from(now / 1000) << 33;
        // Names deleted less than 60 s ago (QueueDeletedRecently); older entries are dropped.
        let mut stale = Vec::new();
        for d in snapshot
            .documents
            .iter()
            .filter(|d| d.kind == DOC_DELETED_QUEUE)
        {
            let at = serde_json::from_slice::<serde_json::Value>(&d.value)
                .ok()
                .and_then(|v| v["at"].as_u64());
            match (at, d.key.split_once('\n')) {
                (Some(at), Some((region, name))) if now < at + 60_000 => {
                    registry
                        .deleted_at_ms
                        .insert((region.to_string(), name.to_string()), at);
                }
                _ => stale.push(Mutation::DeleteDocument {
                    kind: DOC_DELETED_QUEUE.into(),
                    key: d.key.clone(),
                }),
            }
        }
        // FIFO receive attempts still within their 5 minutes.
        for d in snapshot
            .documents
            .iter()
            .filter(|d| d.kind == queue::DOC_FIFO_ATTEMPT)
        {
            let restored = d.key.split_once('/').is_some_and(|(uid, id)| {
                uid.parse::<u64>()
                    .ok()
                    .and_then(|uid| by_uid.get(&uid))
                    .is_some_and(|q| q.state.lock().restore_attempt(id, &d.value, now))
            });
            if !restored {
                stale.push(Mutation::DeleteDocument {
                    kind: d.kind.clone(),
                    key: d.key.clone(),
                });
            }
        }
        let mut move_tasks = snapshot.move_tasks;
        move_tasks.sort_by_key(|t| t.started_ms);
        Rebuilt {
            replays: replays::Replays::from_documents(&snapshot.documents),
            schedules: schedules::Schedules::from_documents(&snapshot.documents),
            registry,
            max_uid,
            max_sequence: seeded.max(max_sequence),
            move_tasks,
            stale,
        }
    }
}

impl Engine {
    /// Rebuilds memory from the store if a write failed since the last rebuild, so nothing is
    /// served that is not on disk. Cheap when nothing failed. Call with no lock held.
    pub fn ensure_synced(&self) -> SqsResult<()> {
        if self.store.write_failures() == self.synced_failures.load(Ordering::SeqCst) {
            return Ok(());
        }
        self.resync()
    }

    /// Stops the world (registry, every queue, the task tables), has the store recover, and
    /// replaces every in-memory state with what the store holds. Live `Queue`s are kept (long
    /// pollers wait on them) and only their state is replaced; sequences and queue uids never
    /// go back, since a failed write may have handed some out.
    fn resync(&self) -> SqsResult<()> {
        let _one = self.resync.lock();
        if self.store.write_failures() == self.synced_failures.load(Ordering::SeqCst) {
            return Ok(());
        }
        let mut registry = self.registry.write();
        let live: Vec<Arc<Queue>> = registry.queues.values().cloned().collect();
        let mut states: HashMap<u64, MutexGuard<'_, QueueState>> =
            live.iter().map(|q| (q.uid, q.state.lock())).collect();
        let mut move_tasks = self.move_tasks.lock();
        let mut replays = self.replays.lock();
        let mut schedules = self.schedules.lock();
        let (failures, snapshot) = self.store.recover().map_err(|e| {
            tracing::error!(error = %e, "cannot recover the store after a write failure");
            SqsError::service_unavailable()
        })?;
        let now = self.now_ms();
        self.quarantined_total
            .store(snapshot.quarantined_total, Ordering::SeqCst);
        self.alerts.reload(&snapshot.documents);
        let mut built = Self::rebuild(snapshot, now);
        let mut kept = HashMap::new();
        for (key, fresh) in built.registry.queues.drain() {
            match (
                live.iter().find(|q| q.uid == fresh.uid),
                states.get_mut(&fresh.uid),
            ) {
                (Some(q), Some(st)) => {
                    let next_seq = st.next_seq;
                    std::mem::swap(&mut **st, &mut *fresh.state.lock());
                    st.next_seq = st.next_seq.max(next_seq);
                    kept.insert(key, q.clone());
                }
                _ => {
                    kept.insert(key, fresh);
                }
            }
        }
        // Queues whose creation never reached the disk.
        for q in &live {
            if !kept.values().any(|k| k.uid == q.uid)
                && let Some(st) = states.get_mut(&q.uid)
            {
                st.deleted = true;
            }
        }
        registry.queues = kept;
        registry.deleted_at_ms = built.registry.deleted_at_ms;
        *move_tasks = built.move_tasks;
        *replays = built.replays;
        *schedules = built.schedules;
        self.next_queue_uid
            .fetch_max(built.max_uid + 1, Ordering::SeqCst);
        {
            let mut seq = self.sequence.lock();
            *seq = (*seq).max(built.max_sequence);
        }
        self.synced_failures.store(failures, Ordering::SeqCst);
        let stale = std::mem::take(&mut built.stale);
        if !stale.is_empty() {
            let _ = self.store.submit(stale);
        }
        let kept: Vec<Arc<Queue>> = registry.queues.values().cloned().collect();
        drop(schedules);
        drop(replays);
        drop(move_tasks);
        drop(states);
        drop(registry);
        for q in kept.iter().chain(&live) {
            q.notify.notify_waiters();
        }
        self.schedule_changed.notify_waiters();
        tracing::warn!(
            failures,
            "memory rebuilt from the store after a write failure"
        );
        Ok(())
    }

    /// The records memory holds, in the store's form (queues, messages, FIFO deduplication
    /// entries and move tasks, each sorted by key; extension documents are left out): exactly
    /// what the store must hold too. For tests and diagnostics.
    pub fn memory_snapshot(&self) -> store::Snapshot {
        let queues: Vec<Arc<Queue>> = self.registry.read().queues.values().cloned().collect();
        let mut snap = store::Snapshot {
            max_queue_uid: self.next_queue_uid.load(Ordering::SeqCst).saturating_sub(1),
            move_tasks: self.move_tasks.lock().clone(),
            ..Default::default()
        };
        for q in queues {
            let st = q.state.lock();
            if st.deleted {
                continue;
            }
            snap.queues.push(st.record.clone());
            snap.messages
                .extend(st.messages.values().map(|m| m.rec.to_record()));
            snap.dedup
                .extend(st.dedup.iter().map(|(key, e)| store::DedupRecord {
                    queue_uid: q.uid,
                    key: key.clone(),
                    expires_ms: e.expires_ms,
                    message_id: e.message_id.clone(),
                    sequence_number: e.sequence_number.clone(),
                }));
        }
        snap.queues.sort_by_key(|q| q.uid);
        snap.messages.sort_by_key(|m| (m.queue_uid, m.seq));
        snap.dedup
            .sort_by(|a, b| (a.queue_uid, &a.key).cmp(&(b.queue_uid, &b.key)));
        snap.move_tasks.sort_by(|a, b| a.task_id.cmp(&b.task_id));
        snap
    }

    /// Records the store quarantined because they failed verification (never served).
    pub fn quarantined(&self) -> SqsResult<Vec<store::QuarantinedRecord>> {
        self.store.quarantined().map_err(|e| {
            tracing::error!(error = %e, "cannot list the quarantine");
            SqsError::service_unavailable()
        })
    }

    /// How many records the store's quarantine holds: as of the last load (startup or
    /// rebuild), read again after a receive found a damaged payload.
    pub fn quarantined_count(&self) -> u64 {
        if self.quarantine_changed.swap(false, Ordering::SeqCst) {
            match self.store.quarantined() {
                Ok(q) => self
                    .quarantined_total
                    .store(q.len() as u64, Ordering::SeqCst),
                Err(_) => self.quarantine_changed.store(true, Ordering::SeqCst),
            }
        }
        self.quarantined_total.load(Ordering::SeqCst)
    }

    /// The store's condition, for the health endpoint.
    pub fn store_health(&self) -> store::StoreHealth {
        self.store.health()
    }

    /// Refuses, before anything changes, a write that would grow the store while its space is
    /// short (see [`store::StoreHealth::low_space`]). Receives, deletes and purges are not
    /// checked: they are what lets consumers drain a full store.
    fn admit_growth(&self) -> SqsResult<()> {
        if self.store.low_space() {
            tracing::debug!("write refused while store space is short");
            return Err(SqsError::service_unavailable());
        }
        Ok(())
    }

    /// Waits for a batch to be durable. On a store failure, memory is rebuilt from the store
    /// before the error is returned, so the failed change is gone from memory too.
    async fn durable(&self, d: Durable) -> SqsResult<()> {
        match d.wait().await {
            Ok(()) => Ok(()),
            Err(e) => {
                tracing::warn!(error = %e, "a store write failed");
                let _ = self.ensure_synced();
                Err(SqsError::internal(format!("storage failure: {e}")))
            }
        }
    }

    /// An engine with the in-memory store and the system clock.
    pub fn in_memory(config: EngineConfig) -> Self {
        Self::open(config, Arc::new(MemoryStore::new()), Arc::new(SystemClock))
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    fn next_sequence_number(&self) -> String {
        let mut s = self.sequence.lock();
        *s += 1;
        format!("{:020}", *s)
    }

    pub fn queue_url(&self, ctx: &RequestContext, name: &str) -> String {
        let base = ctx.base_url.trim_end_matches('/');
        let account = &self.config.account_id;
        match self.config.queue_url_style {
            QueueUrlStyle::Path => format!("{base}/{account}/{name}"),
            QueueUrlStyle::PathRegion => {
                format!("{base}/queue/{}/{account}/{name}", ctx.region)
            }
            QueueUrlStyle::HostRegion => {
                let (scheme, host) = base.split_once("://").unwrap_or(("http", base));
                // A request already sent to `sqs.<region>.<host>` keeps its host once.
                let host = match host.strip_prefix("sqs.").and_then(|h| h.split_once('.')) {
                    Some((r, rest)) if redrive_core::arn::looks_like_region(r) => rest,
                    _ => host,
                };
                format!("{scheme}://sqs.{}.{host}/{account}/{name}", ctx.region)
            }
        }
    }

    /// Resolves a queue URL in the caller's Region.
    pub fn resolve(&self, ctx: &RequestContext, url: &str) -> SqsResult<Arc<Queue>> {
        if url.is_empty() {
            return Err(SqsError::missing_parameter("QueueUrl"));
        }
        self.ensure_synced()?;
        let (region, name) = self.queue_key_of_url(ctx, url)?;
        self.lookup(&region, &name)
            .ok_or_else(SqsError::queue_does_not_exist)
    }

    /// The (Region, name) a queue URL names, for both stores: SQS also accepts a bare queue
    /// name where a URL is expected; another account's URL names no queue here; a URL that
    /// names its Region (`sqs.<region>.…` or `/queue/<region>/…`) is looked up there, others
    /// in the caller's Region.
    pub(crate) fn queue_key_of_url(
        &self,
        ctx: &RequestContext,
        url: &str,
    ) -> SqsResult<(String, String)> {
        let (account, name) = if !url.contains('/') {
            (self.config.account_id.clone(), url.to_string())
        } else {
            parse_queue_url(url).ok_or_else(SqsError::queue_does_not_exist)?
        };
        if account != self.config.account_id {
            return Err(SqsError::queue_does_not_exist());
        }
        let region = redrive_core::arn::queue_url_region(url).unwrap_or_else(|| ctx.region.clone());
        Ok((region, name))
    }

    fn lookup(&self, region: &str, name: &str) -> Option<Arc<Queue>> {
        self.registry
            .read()
            .queues
            .get(&(region.to_string(), name.to_string()))
            .cloned()
    }

    /// Resolves a queue ARN (same account; the ARN's Region).
    pub fn resolve_arn(&self, arn: &str) -> Option<Arc<Queue>> {
        let arn = QueueArn::parse(arn)?;
        if arn.account != self.config.account_id {
            return None;
        }
        self.lookup(&arn.region, &arn.name)
    }

    fn alloc_queue_uid(&self) -> u64 {
        self.next_queue_uid.fetch_add(1, Ordering::SeqCst)
    }

    /// Every queue in a Region, sorted by name.
    fn queues_in(&self, region: &str) -> Vec<Arc<Queue>> {
        let reg = self.registry.read();
        let mut v: Vec<_> = reg
            .queues
            .values()
            .filter(|q| q.region == region)
            .cloned()
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// The queues (in `dlq`'s Region, by name) whose RedrivePolicy targets `dlq`.
    fn dead_letter_sources(&self, dlq: &Queue) -> Vec<Arc<Queue>> {
        self.queues_in(&dlq.region)
            .into_iter()
            .filter(|q| {
                q.state
                    .lock()
                    .redrive_policy()
                    .is_some_and(|p| p.dead_letter_target_arn == dlq.arn)
            })
            .collect()
    }

    /// Drops every queue and message (dev-only reset, as moto's `/moto-api/reset`).
    /// [`Engine::reset`] on either store (on a shared one, for every server).
    pub async fn reset_all(&self) -> SqsResult<()> {
        match self.shared.clone() {
            Some(b) => self.sh_reset(&*b).await,
            None => {
                self.reset();
                Ok(())
            }
        }
    }

    pub fn reset(&self) {
        let _ = self.ensure_synced();
        let queues: Vec<Arc<Queue>> = {
            let mut reg = self.registry.write();
            reg.deleted_at_ms.clear();
            let _ = self.store.submit(vec![Mutation::DeleteDocuments {
                kind: DOC_DELETED_QUEUE.into(),
                prefix: String::new(),
            }]);
            reg.queues.drain().map(|(_, q)| q).collect()
        };
        // Move tasks go with their queues; running ones stop at their next step.
        let _ = self.store.submit(self.forget_move_tasks(None));
        for q in queues {
            let mut st = q.state.lock();
            st.deleted = true;
            let _ = self
                .store
                .submit(vec![Mutation::DeleteQueue { uid: q.uid }]);
            drop(st);
            q.notify.notify_waiters();
        }
    }
}

/// Extension documents recording when a queue name was deleted (`{region}\n{name}` → `{"at"}`).
pub(crate) const DOC_DELETED_QUEUE: &str = "deleted-queue";

pub(crate) fn deleted_queue_key(region: &str, name: &str) -> String {
    format!("{region}\n{name}")
}

pub(crate) fn deleted_queue_doc(region: &str, name: &str, at_ms: u64) -> Mutation {
    Mutation::PutDocument(store::DocumentRecord {
        kind: DOC_DELETED_QUEUE.into(),
        key: deleted_queue_key(region, name),
        value: serde_json::json!({ "at": at_ms }).to_string().into_bytes(),
    })
}

/// First message sequence of a queue created or reopened at `now_ms`: `now_ms × 1024`, which
/// stays ahead of every sequence issued earlier unless a queue averaged more than 1,024 sends
/// per millisecond since its creation.
fn sequence_floor(now_ms: u64) -> u64 {
    now_ms << 10
}
