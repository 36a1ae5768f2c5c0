//! The shared-state seam of ADR 0002: [`QueueBackend`], where queue and message state lives and
//! how it is claimed, expressed as SQS state transitions (never rows or mutations). Every method
//! is one atomic transition in the backend; the AWS rules (validation, attribute handling, the
//! DLQ decision, rendering, receipt handles) stay in the engine and reach the backend as
//! arguments ([`Decide`]) or as already-validated values.
//!
//! The embedded mode (in-memory indices written through [`crate::Store`]) is the engine's own
//! path; an engine opened with [`crate::Engine::open_shared`] answers the SQS actions through a
//! backend instead (`shared.rs`), e.g. `redrive_store_pg::PgBackend` on PostgreSQL.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;

use redrive_core::SqsResult;
use redrive_core::api::MessageAttributes;
use serde_json::Value;

use crate::queue::MessageState;
use crate::store::MoveTaskRecord;

/// A boxed `Send` future: the trait stays object-safe (`Arc<dyn QueueBackend>`).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A queue as a shared backend keeps it: the catalog row plus what the rules keep with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedQueue {
    /// Assigned by the backend (ignored by [`QueueBackend::create_queue`]).
    pub uid: u64,
    pub region: String,
    pub name: String,
    pub fifo: bool,
    /// Normalised attributes, defaults included (as `QueueRecord::attributes`).
    pub attributes: BTreeMap<String, String>,
    pub tags: BTreeMap<String, String>,
    pub created_secs: u64,
    pub last_modified_secs: u64,
    pub last_purge_ms: Option<u64>,
    /// How many partitions the backend spreads the queue's messages over (set by the backend).
    pub partitions: u16,
    /// The catalog row's version as read (the backend's compare-and-set token for
    /// [`QueueBackend::update_queue`]; not for the rules).
    pub version: u64,
}

/// `create_queue`'s answer: for an existing queue the rules compare attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateOutcome {
    Created(SharedQueue),
    Existing(SharedQueue),
}

/// A message to store, already validated by the rules.
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub body: String,
    pub attributes: MessageAttributes,
    pub system_attributes: MessageAttributes,
    pub delay_ms: u64,
    pub group_id: Option<String>,
    /// FIFO only: the deduplication key (scope included), unique for the backend's
    /// deduplication window (5 minutes).
    pub dedup_key: Option<String>,
    /// The `MessageDeduplicationId` shown on receive (standard queues keep it without
    /// deduplicating).
    pub dedup_id: Option<String>,
}

/// What a send did with one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    pub message_id: String,
    /// The message's sequence (the FIFO `SequenceNumber`); for a duplicate, the first's.
    pub seq: u64,
    /// A FIFO duplicate within the window: nothing was stored.
    pub duplicate: bool,
}

/// Which receive a receipt handle names: the message's sequence and its claim token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Claim {
    pub seq: u64,
    pub token: u64,
}

/// A message offered to [`Decide`], before this receive counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub message_id: String,
    pub group_id: Option<String>,
    pub receive_count: u32,
    pub sent_ms: u64,
}

/// The rules' answer for one receive candidate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Deliver,
    /// The DLQ move: to `queue`, with `source_arn` as `DeadLetterQueueSourceArn` and, when
    /// `dedup_id` is set, that deduplication id shown on the moved copy
    /// ([`crate::messages::dead_letter_dedup_id`]).
    MoveTo {
        queue: Box<SharedQueue>,
        source_arn: String,
        dedup_id: Option<String>,
    },
    /// Left as it is (a FIFO group stops there).
    Skip,
}

/// The rules in a receive's loop: the backend iterates candidates in its own claim order and
/// applies the answers in the transaction that holds them.
pub trait Decide: Sync {
    fn decide(&self, candidate: &Candidate) -> Decision;
}

/// A receive's parameters (validated).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiveSpec {
    pub max: usize,
    pub visibility_ms: u64,
    /// Long polling: how long to wait for a message when none is there.
    pub wait_ms: u64,
    /// FIFO only: the `ReceiveRequestAttemptId`. A retry with it within the deduplication
    /// interval (5 minutes), while every message it returned is still in flight from it
    /// (receipt and visibility deadline unchanged), returns the same messages and receipt
    /// handles and restarts their visibility timeout; otherwise it is a new receive, which
    /// the id then names.
    pub attempt_id: Option<String>,
}

/// A delivered message, in flight under `claim`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    pub claim: Claim,
    pub message_id: String,
    pub group_id: Option<String>,
    pub dedup_id: Option<String>,
    pub body: String,
    pub attributes: MessageAttributes,
    pub system_attributes: MessageAttributes,
    pub receive_count: u32,
    pub sent_ms: u64,
    pub first_received_ms: u64,
    pub dead_letter_source_arn: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Received {
    pub delivered: Vec<Delivered>,
    /// `(message id, destination queue uid)` of the DLQ moves.
    pub moved: Vec<(String, u64)>,
}

/// What a receipt-checked change found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandleCheck {
    Applied,
    /// The message is gone, was received again since, or (FIFO delete) its visibility ended.
    Stale,
    /// (Visibility changes) an older receive's handle, and the message is visible now.
    NotInFlight,
    /// (Visibility changes) the new deadline is over 12 hours after the current receive.
    BeyondLimit,
}

/// Approximate counts at the backend's now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub visible: u64,
    pub in_flight: u64,
    pub delayed: u64,
    /// Age of the oldest message, ms (0 when empty).
    pub oldest_age_ms: u64,
}

/// What the in-flight limit looks at (`limits::MAX_INFLIGHT_STANDARD`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InFlight {
    /// Received messages not yet visible again, up to the cap asked for.
    pub count: u64,
    /// Whether a message is waiting to be received (looked at only when `count` reached the
    /// cap asked for; `false` otherwise).
    pub any_visible: bool,
}

/// One queue-minute of the minute history (`history.rs`) in a shared backend: what one server
/// adds (its counters' deltas; the gauges when it sampled them), or the sum stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedMinute {
    pub queue_uid: u64,
    /// Epoch minute.
    pub minute: u64,
    /// In the order of [`COUNTERS`](crate::history::COUNTERS).
    pub counters: [u64; 10],
    /// In the order of [`GAUGES`](crate::history::GAUGES); `None`: not sampled.
    pub gauges: Option<[u64; 5]>,
}

/// A stored message as inspection reads it: nothing about it changes by being read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub seq: u64,
    pub message_id: String,
    pub group_id: Option<String>,
    pub dedup_id: Option<String>,
    pub body: String,
    pub attributes: MessageAttributes,
    pub system_attributes: MessageAttributes,
    pub receive_count: u32,
    pub sent_ms: u64,
    pub first_received_ms: Option<u64>,
    pub visible_at_ms: u64,
    pub dead_letter_source_arn: Option<String>,
    pub dead_lettered_ms: Option<u64>,
    /// At the backend's now.
    pub state: MessageState,
    /// FIFO: visible, but an earlier message of its group is in flight.
    pub group_blocked: bool,
}

/// Which of a queue's messages [`QueueBackend::browse`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BrowseRange {
    /// Only messages with a greater sequence.
    pub after_seq: u64,
    pub state: Option<MessageState>,
    pub limit: usize,
}

/// A queue's counts for inspection, at the backend's now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Inspection {
    pub visible: u64,
    pub in_flight: u64,
    pub delayed: u64,
    /// Visible messages received at least `maxReceiveCount` times (the next receive moves
    /// them to the DLQ).
    pub pending_dead_letter: u64,
    /// When the oldest message was enqueued (sent, or dead-lettered into this queue).
    pub oldest_enqueued_ms: Option<u64>,
}

/// Where one message of a move task's source goes, and as what (the redrive rules: a new
/// message there, receive state reset, body, attributes and group kept).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redriven {
    pub queue: Box<SharedQueue>,
    pub message_id: String,
    /// The `MessageDeduplicationId` shown on receive (FIFO: the new message id).
    pub dedup_id: Option<String>,
    /// The destination's `DelaySeconds`.
    pub delay_ms: u64,
}

/// The rules in a move step's loop: where the source's next message goes, given the queue it
/// was dead-lettered from (`None`: the step stops before it, moving nothing more).
pub trait Route: Sync {
    fn route(&self, dead_letter_source_arn: Option<&str>) -> Option<Redriven>;
}

/// One step of a move task (ADR 0002's `transfer`), run by the holder of lease `lease`.
#[derive(Debug, Clone, Copy)]
pub struct MoveStep<'a> {
    pub task_id: &'a str,
    pub lease: &'a str,
    pub holder: &'a str,
    pub source: &'a SharedQueue,
    pub max: usize,
}

/// What a move step found and did.
#[derive(Debug, Clone, PartialEq)]
pub enum StepOutcome {
    /// The lease is no longer this holder's: nothing was done (another server runs the task).
    LeaseLost,
    /// The task is gone (its source queue was deleted).
    TaskGone,
    /// The task is no longer RUNNING (as found): nothing was moved.
    NotRunning(MoveTaskRecord),
    /// `moved` messages moved, and the task (progress counted) as written with them.
    Moved {
        moved: u64,
        task: MoveTaskRecord,
        /// Why the step moved fewer than it could: the source had no visible message left
        /// (`Empty`), or [`Route`] refused the next one, which came from this queue.
        stop: Option<StepStop>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepStop {
    Empty,
    Unrouted(Option<String>),
}

/// A change to the move-task table made by the rules while the backend holds it (start,
/// cancel, end, forget): the tasks in start order.
pub type EditTasks<'a> = &'a (dyn Fn(&mut Vec<MoveTaskRecord>) -> SqsResult<()> + Sync);

/// A document of extension state (replays, their selections and move logs) in a shared
/// backend.
#[derive(Debug, Clone, PartialEq)]
pub struct Doc {
    pub kind: String,
    pub key: String,
    pub value: Value,
}

/// A fair queue's tenant gauges ([`QueueBackend::quiet_groups`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QuietGroups {
    pub noisy_groups: u64,
    pub visible: u64,
    pub not_visible: u64,
    pub delayed: u64,
    /// Age of the oldest quiet-group message that is not delayed (0 without one).
    pub oldest_age_ms: u64,
}

/// What an [`EditDocs`] writes, in the transaction that read the documents.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DocsEdit {
    /// Written (inserted or replaced), any kind.
    pub put: Vec<Doc>,
    /// `(kind, key prefix)`: deleted.
    pub delete_prefixed: Vec<(String, String)>,
    /// `(kind, key)`: deleted (exactly that key).
    pub delete: Vec<(String, String)>,
}

/// A change made by the rules to every document of one kind (`(key, value)`, by key) while the
/// backend holds that kind's lock; an error writes nothing and is returned.
pub type EditDocs<'a> = &'a (dyn Fn(Vec<(String, Value)>) -> SqsResult<DocsEdit> + Sync);

/// Where a replayed message goes, and as what (a new message there; group and system
/// attributes kept, receive state and dead-letter source cleared).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replayed {
    pub queue: Box<SharedQueue>,
    pub message_id: String,
    pub dedup_id: Option<String>,
    pub delay_ms: u64,
    pub body: String,
    pub attributes: MessageAttributes,
    pub system_attributes: MessageAttributes,
}

/// What a replay step found for its selected message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplayFound {
    Moved {
        from_id: String,
        to_id: String,
        destination_uid: u64,
    },
    /// No longer in the DLQ (deleted, expired, purged).
    Gone,
    /// In flight or delayed.
    NotVisible,
    /// It cannot be replayed (the rewrite refused it, or its destination is gone).
    Failed(String),
}

/// The replay rules inside a replay step's transaction.
pub trait ReplayRules: Sync {
    /// Whether the replay (its document as locked) still runs.
    fn running(&self, task: &Value) -> bool;
    /// Where the message goes, as what (or why it cannot be replayed).
    fn rewrite(&self, m: &Stored, now_ms: u64) -> Result<Replayed, String>;
    /// The documents to write for what the step found: the replay's own (its key, its
    /// progress), then its move log entry.
    fn record(&self, task: &Value, found: &ReplayFound, now_ms: u64) -> Vec<Doc>;
}

/// One step of a replay: one selected message, run by the holder of lease `lease`.
#[derive(Debug, Clone, Copy)]
pub struct ReplayStep<'a> {
    pub kind: &'a str,
    pub replay_id: &'a str,
    pub lease: &'a str,
    pub holder: &'a str,
    pub source: &'a SharedQueue,
    pub seq: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ReplayStepOutcome {
    LeaseLost,
    /// The replay's document is gone.
    TaskGone,
    /// Not running (its document as found): nothing was done.
    NotRunning(Value),
    Done {
        found: ReplayFound,
        /// The replay's document as written with it.
        task: Value,
    },
}

/// Where queue and message state lives and how it is claimed (ADR 0002's table).
pub trait QueueBackend: Send + Sync + 'static {
    /// The backend's clock (epoch ms): the one every deadline compares against.
    fn now_ms(&self) -> BoxFuture<'_, SqsResult<u64>>;
    /// Creates the queue or returns the existing one of that name (atomic across servers).
    fn create_queue<'a>(&'a self, q: &'a SharedQueue) -> BoxFuture<'a, SqsResult<CreateOutcome>>;
    /// When `name` was last deleted (for `QueueDeletedRecently`).
    fn deleted_at_ms<'a>(
        &'a self,
        region: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, SqsResult<Option<u64>>>;
    fn queue<'a>(
        &'a self,
        region: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, SqsResult<Option<SharedQueue>>>;
    /// A Region's queues whose name starts with `prefix`, by name.
    fn list_queues<'a>(
        &'a self,
        region: &'a str,
        prefix: &'a str,
    ) -> BoxFuture<'a, SqsResult<Vec<SharedQueue>>>;
    /// Writes attributes, tags and the modification/purge times if the queue is still at
    /// `q.version`: `false` when it changed since it was read or is gone (read it again).
    fn update_queue<'a>(&'a self, q: &'a SharedQueue) -> BoxFuture<'a, SqsResult<bool>>;
    /// The queue and everything in it; the deletion time is kept for `deleted_at_ms`.
    fn delete_queue<'a>(&'a self, q: &'a SharedQueue) -> BoxFuture<'a, SqsResult<()>>;
    /// A batch in one transaction; FIFO deduplication decided by the backend.
    fn send<'a>(
        &'a self,
        q: &'a SharedQueue,
        msgs: Vec<NewMessage>,
    ) -> BoxFuture<'a, SqsResult<Vec<Sent>>>;
    /// Claims up to `spec.max` messages (FIFO: free groups, in order), asking `decide` for each
    /// candidate; waits up to `spec.wait_ms` for one when none is there.
    fn receive<'a>(
        &'a self,
        q: &'a SharedQueue,
        spec: ReceiveSpec,
        decide: &'a dyn Decide,
    ) -> BoxFuture<'a, SqsResult<Received>>;
    /// Deletes the message if `claim` is its latest receive (a FIFO group may unlock); on a
    /// FIFO queue only while it is in flight under `claim`.
    fn delete<'a>(
        &'a self,
        q: &'a SharedQueue,
        claim: Claim,
    ) -> BoxFuture<'a, SqsResult<HandleCheck>>;
    /// [`QueueBackend::delete`] of each claim, answered in the same order (a standard queue's
    /// batch in one statement).
    fn delete_many<'a>(
        &'a self,
        q: &'a SharedQueue,
        claims: Vec<Claim>,
    ) -> BoxFuture<'a, SqsResult<Vec<HandleCheck>>>;
    /// Sets the deadline to now + `visibility_ms` if `claim` is its latest receive (in flight,
    /// or visible again and not received since: hidden again, a FIFO group held again).
    fn change_visibility<'a>(
        &'a self,
        q: &'a SharedQueue,
        claim: Claim,
        visibility_ms: u64,
    ) -> BoxFuture<'a, SqsResult<HandleCheck>>;
    /// [`QueueBackend::change_visibility`] of each `(claim, visibility_ms)`, answered in the
    /// same order (a standard queue's batch in one transaction).
    fn change_visibility_many<'a>(
        &'a self,
        q: &'a SharedQueue,
        changes: Vec<(Claim, u64)>,
    ) -> BoxFuture<'a, SqsResult<Vec<HandleCheck>>>;
    /// Removes every message and FIFO deduplication entry.
    fn purge<'a>(&'a self, q: &'a SharedQueue) -> BoxFuture<'a, SqsResult<u64>>;
    fn counts<'a>(&'a self, q: &'a SharedQueue) -> BoxFuture<'a, SqsResult<Counts>>;
    /// Up to `range.limit` of the queue's messages after `range.after_seq`, in sequence order
    /// (the order they were enqueued in), read without claiming or changing them.
    fn browse<'a>(
        &'a self,
        q: &'a SharedQueue,
        range: BrowseRange,
    ) -> BoxFuture<'a, SqsResult<Vec<Stored>>>;
    /// The queue's counts for inspection; `max_receive_count` (the redrive policy's) decides
    /// which visible messages are pending a DLQ move.
    fn inspect<'a>(
        &'a self,
        q: &'a SharedQueue,
        max_receive_count: Option<u32>,
    ) -> BoxFuture<'a, SqsResult<Inspection>>;
    /// The queue's in-flight messages now, counted up to `cap`, and whether any message is
    /// visible (the in-flight limit's inputs: [`InFlight`]).
    fn in_flight<'a>(&'a self, q: &'a SharedQueue, cap: u64) -> BoxFuture<'a, SqsResult<InFlight>>;
    /// FIFO: the queue's message groups with a message in flight now.
    fn groups_in_flight<'a>(&'a self, q: &'a SharedQueue) -> BoxFuture<'a, SqsResult<u64>>;
    /// Fair queues: the noisy tenants now, and the messages of the quiet ones (the embedded
    /// store's `QueueState::gauges` rules).
    fn quiet_groups<'a>(&'a self, q: &'a SharedQueue) -> BoxFuture<'a, SqsResult<QuietGroups>>;
    /// Adds each row's counters to its queue-minute and sets its gauges where given (servers
    /// add to the same minute; none overwrites another's counts).
    fn add_minutes(&self, rows: Vec<SharedMinute>) -> BoxFuture<'_, SqsResult<()>>;
    /// A queue's minutes in `[from, to)` (epoch minutes), oldest first.
    fn minutes(
        &self,
        queue_uid: u64,
        from: u64,
        to: u64,
    ) -> BoxFuture<'_, SqsResult<Vec<SharedMinute>>>;
    /// Drops minutes before epoch minute `before` and those of deleted queues.
    fn drop_minutes(&self, before: u64) -> BoxFuture<'_, SqsResult<u64>>;
    /// Every queue, every Region (background work).
    fn all_queues(&self) -> BoxFuture<'_, SqsResult<Vec<SharedQueue>>>;
    /// Deletes the queue's messages sent `retention_ms` or longer ago, and its expired FIFO
    /// deduplication entries (the retention sweep, run under a lease).
    fn expire<'a>(&'a self, q: &'a SharedQueue, retention_ms: u64)
    -> BoxFuture<'a, SqsResult<u64>>;
    /// Takes or renews lease `name` for `holder` for `ttl_ms`: `true` when held.
    fn lease<'a>(
        &'a self,
        name: &'a str,
        holder: &'a str,
        ttl_ms: u64,
    ) -> BoxFuture<'a, SqsResult<bool>>;
    fn release<'a>(&'a self, name: &'a str, holder: &'a str) -> BoxFuture<'a, SqsResult<()>>;
    /// Every move task, in start order.
    fn move_tasks(&self) -> BoxFuture<'_, SqsResult<Vec<MoveTaskRecord>>>;
    /// Applies `edit` to the move-task table atomically across servers (one edit at a time);
    /// an error from `edit` changes nothing and is returned.
    fn edit_move_tasks<'a>(&'a self, edit: EditTasks<'a>) -> BoxFuture<'a, SqsResult<()>>;
    /// The documents of `kind` whose key starts with `prefix`, by key.
    fn documents<'a>(
        &'a self,
        kind: &'a str,
        prefix: &'a str,
    ) -> BoxFuture<'a, SqsResult<Vec<(String, Value)>>>;
    fn document<'a>(
        &'a self,
        kind: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, SqsResult<Option<Value>>>;
    /// Writes `doc`, whose key nobody else writes (a log entry), without the kind's lock, and
    /// deletes the documents of its kind whose keys sort before `drop_before`.
    fn append_document<'a>(
        &'a self,
        doc: &'a Doc,
        drop_before: &'a str,
    ) -> BoxFuture<'a, SqsResult<()>>;
    /// Applies `edit` to the documents of `kind` atomically across servers (one edit of a kind
    /// at a time).
    fn edit_documents<'a>(
        &'a self,
        kind: &'a str,
        edit: EditDocs<'a>,
    ) -> BoxFuture<'a, SqsResult<()>>;
    /// One step of a replay in one transaction, fenced by its lease: the selected message
    /// (`step.seq` in the source), if there and visible, moves where `rules` says, and the
    /// replay's progress and move log are written with it, so progress never disagrees with
    /// what moved, and a message moves once.
    fn replay_step<'a>(
        &'a self,
        step: ReplayStep<'a>,
        rules: &'a dyn ReplayRules,
    ) -> BoxFuture<'a, SqsResult<ReplayStepOutcome>>;
    /// One step of a move task in one transaction, fenced by its lease: up to `step.max` of the
    /// source's visible messages (oldest first) move where `route` says, and the task's
    /// `moved` counts them in the same transaction, so progress never disagrees with what
    /// moved, and a message moves once.
    fn move_step<'a>(
        &'a self,
        step: MoveStep<'a>,
        route: &'a dyn Route,
    ) -> BoxFuture<'a, SqsResult<StepOutcome>>;
}
