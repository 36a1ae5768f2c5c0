//! Redrive's shared-database backend (issue 17, [ADR 0002](../../docs/adr/0002-shared-database-backend.md)):
//! SQS state transitions — send, receive, delete, change visibility, FIFO group holds,
//! deduplication, leases — each one PostgreSQL statement or transaction, so several stateless
//! servers can share one database. Plain SQL that YugabyteDB also runs.
//!
//! Invariants:
//! - **The database is the only copy.** Nothing here caches message state; a failed
//!   transaction rolls back and leaves nothing behind.
//! - **Time is the database's** (`redrive_now_ms()`): visibility deadlines, delays, dedup expiry
//!   and leases never compare against a server's clock, so skew cannot hand a message out twice.
//! - **`SKIP LOCKED` only avoids waiting; it proves nothing.** Every claim's `UPDATE` repeats
//!   its condition (`visible_at_ms <= now`, the receipt token, the group's hold), so a row two
//!   claimers both see is claimed once (CockroachDB #121917).
//! - Serialization failures and deadlocks (`40001`, `40P01`) are retried a bounded number of
//!   times, then surface as [`PgError::Retries`].
//!
//! First slice: not yet behind the engine's `QueueBackend` (ADR 0002, order of work 1); the
//! AWS rules (validation, the DLQ decision, rendering) stay in the engine and are not here.

mod backend;
mod conn;
mod migrate;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rand::Rng;
use tokio::sync::{Mutex, MutexGuard, Notify};
use tokio_postgres::error::SqlState;
use tokio_postgres::{AsyncMessage, Client, NoTls};

use conn::{Conn, Tx};
use uuid::Uuid;

pub use backend::PgBackend;
pub use migrate::{MIGRATIONS, SCHEMA_VERSION};

/// Attempts of one transaction on serialization failures and deadlocks.
pub const MAX_ATTEMPTS: usize = 8;
/// Groups one FIFO receive looks at.
const FIFO_GROUP_SCAN: i64 = 64;

#[derive(Debug, thiserror::Error)]
pub enum PgError {
    #[error("database error: {}", describe(.0))]
    Db(#[from] tokio_postgres::Error),
    #[error(
        "the transaction was retried {MAX_ATTEMPTS} times (serialization failures): {}",
        describe(.0)
    )]
    Retries(tokio_postgres::Error),
    #[error(
        "the database schema is version {found}, newer than this build's {SCHEMA_VERSION}: upgrade Redrive"
    )]
    SchemaTooNew { found: i32 },
    #[error("invalid store URL: {0}")]
    Url(String),
}

/// A driver error with the database's own words: tokio-postgres displays a server error only
/// as "db error", keeping PostgreSQL's severity, SQLSTATE and message in its source.
fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!(
            "{} {}: {}{}",
            db.severity(),
            db.code().code(),
            db.message(),
            db.detail().map(|d| format!(" ({d})")).unwrap_or_default()
        ),
        None => match std::error::Error::source(e) {
            Some(cause) => format!("{e}: {cause}"),
            None => e.to_string(),
        },
    }
}

fn retryable(e: &PgError) -> bool {
    matches!(e, PgError::Db(db) if matches!(
        db.code(),
        Some(c) if *c == SqlState::T_R_SERIALIZATION_FAILURE || *c == SqlState::T_R_DEADLOCK_DETECTED
    ))
}

/// Runs `$op` (an expression producing a future of `Result<_, PgError>`) until it succeeds,
/// fails with a non-retryable error, or has been tried [`MAX_ATTEMPTS`] times.
macro_rules! retry {
    ($op:expr) => {{
        let mut attempt = 0;
        loop {
            attempt += 1;
            match $op.await {
                Err(e) if retryable(&e) && attempt < MAX_ATTEMPTS => {
                    tracing::debug!(attempt, error = %e, "retrying a transaction");
                    tokio::task::yield_now().await;
                }
                Err(PgError::Db(e)) if attempt >= MAX_ATTEMPTS => break Err(PgError::Retries(e)),
                other => break other,
            }
        }
    }};
}

/// Counter columns of `redrive_minute_history`, in the order of the engine's
/// `history::COUNTERS`.
pub const MINUTE_COUNTERS: [&str; 10] = [
    "sent",
    "sent_bytes",
    "received",
    "deleted",
    "empty_receives",
    "deduplicated",
    "moved_to_dlq",
    "dead_letter_arrivals",
    "redriven_by_move_tasks",
    "redriven_by_replays",
];
/// Gauge columns, in the order of `history::GAUGES`.
pub const MINUTE_GAUGES: [&str; 5] = [
    "visible",
    "not_visible",
    "delayed",
    "oldest_age_secs",
    "groups_with_inflight",
];

/// One queue-minute of the minute history: what a server adds (its counters' deltas, and the
/// gauges when it sampled them), or what is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MinuteRow {
    pub queue_uid: i64,
    /// Epoch minute.
    pub minute: i64,
    pub counters: [i64; 10],
    pub gauges: Option<[i64; 5]>,
}

/// A queue's catalog row.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueRow {
    pub uid: i64,
    pub region: String,
    pub name: String,
    pub fifo: bool,
    pub partitions: i16,
    pub attributes: serde_json::Value,
    pub created_ms: i64,
}

/// `create_queue`'s answer: the caller compares attributes of an existing queue (an AWS rule).
#[derive(Debug, Clone, PartialEq)]
pub enum Created {
    Created(QueueRow),
    Existing(QueueRow),
}

/// A message to store, already validated by the rules.
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub body: Vec<u8>,
    /// The encoded message attributes (opaque here).
    pub attributes: Vec<u8>,
    pub delay_ms: i64,
    /// FIFO only.
    pub group_id: Option<String>,
    /// FIFO only: the deduplication id (given, or the body's digest) and its window.
    pub dedup: Option<(String, i64)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Sent {
    pub message_id: Uuid,
    /// `None` for a duplicate (the first message's id is `message_id`).
    pub seq: Option<i64>,
    /// For a duplicate: the first message's sequence.
    pub first_seq: Option<i64>,
}

/// Where a claimed message is and which claim it was: what a receipt handle encodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Claim {
    pub part: i16,
    pub seq: i64,
    pub token: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Claimed {
    pub claim: Claim,
    pub message_id: Uuid,
    pub group_id: Option<String>,
    pub body: Vec<u8>,
    pub attributes: Vec<u8>,
    pub receive_count: i32,
    pub sent_ms: i64,
    pub first_received_ms: i64,
    pub visible_at_ms: i64,
    pub dead_letter_source: Option<String>,
    pub dead_lettered_ms: Option<i64>,
}

/// What the rules decide for one receive candidate (ADR 0002's `Decide`): the backend asks,
/// then applies every answer in the transaction that holds the candidates.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    Deliver,
    /// The DLQ move: the message leaves for `queue` (keeping its id, body, attributes and
    /// receive count), visible there at once, with `source_arn` as its
    /// `DeadLetterQueueSourceArn`; with `dedup_id`, the copy's shown deduplication id becomes
    /// that (key `d` of the `attributes` document `PgBackend` writes).
    MoveTo {
        queue: QueueRow,
        source_arn: String,
        dedup_id: Option<String>,
    },
    /// Left as it is (still visible).
    Skip,
}

/// A FIFO receive's `ReceiveRequestAttemptId` and how long a retry of it is answered from what
/// it handed out (see [`PgStore::receive_wait_attempt`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attempt<'a> {
    pub id: &'a str,
    pub window_ms: i64,
}

/// A message offered to [`Decision`]-making, before this receive counts.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub message_id: Uuid,
    pub group_id: Option<String>,
    pub receive_count: i32,
    pub sent_ms: i64,
}

/// A receive's result: what was delivered and what the rules moved instead.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Received {
    pub delivered: Vec<Claimed>,
    /// `(message id, destination queue uid)`.
    pub moved: Vec<(Uuid, i64)>,
}

/// An extension document (`redrive_documents`), as the embedded store's.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    pub kind: String,
    pub key: String,
    pub value: serde_json::Value,
}

/// A message a move step offers to its route.
#[derive(Debug, Clone, PartialEq)]
pub struct StepCandidate {
    pub message_id: Uuid,
    pub group_id: Option<String>,
    pub attributes: Vec<u8>,
    pub dead_letter_source: Option<String>,
}

/// Where the route sends a step's message, and as what (a new message there).
#[derive(Debug, Clone, PartialEq)]
pub struct StepMove {
    pub queue: QueueRow,
    pub message_id: Uuid,
    pub attributes: Vec<u8>,
    pub delay_ms: i64,
    /// (Replays) the new body; a move task keeps the message's.
    pub body: Option<Vec<u8>>,
}

/// Why a step moved fewer messages than it could.
#[derive(Debug, Clone, PartialEq)]
pub enum StepStop {
    /// The source has no visible message.
    Empty,
    /// The route refused the next message (given its dead-letter source), or its destination
    /// is gone.
    Unrouted(Option<String>),
}

/// What [`PgStore::move_step`] found and did.
#[derive(Debug, Clone, PartialEq)]
pub enum StepResult {
    /// The lease is not (or no longer) the holder's.
    LeaseLost,
    /// The task's document is gone.
    Gone,
    /// The task's document says it is not running (as found).
    NotRunning(serde_json::Value),
    Moved {
        moved: usize,
        /// The task's document as written with the moves.
        doc: serde_json::Value,
        stop: Option<StepStop>,
    },
}

/// What [`PgStore::edit_documents_with`]'s caller writes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DocumentsEdit {
    /// Written (inserted or replaced), any kind.
    pub put: Vec<Document>,
    /// `(kind, key prefix)`: deleted (before the puts).
    pub delete_prefixed: Vec<(String, String)>,
    /// `(kind, key)`: deleted (before the puts).
    pub delete: Vec<(String, String)>,
}

/// What a replay step found for its message.
#[derive(Debug, Clone, PartialEq)]
pub enum ReplayFound {
    Moved {
        from_id: Uuid,
        to_id: Uuid,
        destination_uid: i64,
    },
    /// No longer in the queue (deleted, expired, purged, moved).
    Gone,
    /// In flight or delayed.
    NotVisible,
    /// It cannot be replayed (the rewrite refused it, or its destination is gone).
    Failed(String),
}

/// What [`PgStore::replay_step`] found and did.
#[derive(Debug, Clone, PartialEq)]
pub enum ReplayStepResult {
    LeaseLost,
    /// The replay's document is gone.
    Gone,
    NotRunning(serde_json::Value),
    Done {
        found: ReplayFound,
        /// The replay's document as written.
        doc: serde_json::Value,
    },
}

/// A message as [`PgStore::browse`] reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct BrowseRow {
    pub seq: i64,
    pub message_id: Uuid,
    pub group_id: Option<String>,
    pub body: Vec<u8>,
    pub attributes: Vec<u8>,
    pub receive_count: i32,
    pub sent_ms: i64,
    pub first_received_ms: Option<i64>,
    pub visible_at_ms: i64,
    pub dead_letter_source: Option<String>,
    pub dead_lettered_ms: Option<i64>,
    /// 0 visible, 1 delayed, 2 in flight.
    pub state: i16,
    /// FIFO: the message's group is held by an in-flight message.
    pub group_blocked: bool,
}

/// A change to a kind of documents made by [`PgStore::edit_documents`]'s caller.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DocumentEdit {
    /// Written (inserted or replaced): `(key, value)`.
    pub put: Vec<(String, serde_json::Value)>,
    pub delete: Vec<String>,
}

/// What a receipt-checked change found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandleCheck {
    Applied,
    /// The message is gone, or was received again since (another token).
    Stale,
    /// (Visibility changes) another receive's token, and the message is visible now.
    NotInFlight,
    /// (Visibility changes) the new deadline is over 12 hours after the current receive
    /// (counted in whole seconds since it, as AWS does).
    BeyondLimit,
}

/// A small fixed pool: transactions need a connection to themselves.
struct Pool {
    clients: Vec<Mutex<Conn>>,
    next: AtomicUsize,
}

impl Pool {
    async fn get(&self) -> MutexGuard<'_, Conn> {
        let n = self.clients.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        for i in 0..n {
            if let Ok(c) = self.clients[(start + i) % n].try_lock() {
                return c;
            }
        }
        self.clients[start % n].lock().await
    }
}

/// Long-poll wakeups: one connection per store `LISTEN`s on `redrive_q_{uid}` for the queues
/// someone waits on; senders `pg_notify` in their transaction, so a wakeup means committed.
struct Listener {
    client: Client,
    /// Channel → its waiters' `Notify`.
    channels: Arc<parking_lot::Mutex<HashMap<String, Arc<Notify>>>>,
}

fn channel(uid: i64) -> String {
    format!("redrive_q_{uid}")
}

/// The DLQ move of one candidate, in the receive's transaction: the row leaves for `dlq`
/// (a fresh sequence and partition there, visible at once, receipt reset; id, body, attributes
/// and receive count kept; the group kept only in a FIFO DLQ). The condition is repeated, so a
/// row another claim took meanwhile is not moved: `false`.
#[allow(clippy::too_many_arguments)]
async fn move_to_dlq(
    tx: &Tx<'_>,
    q: &QueueRow,
    part: i16,
    seq: i64,
    candidate: &Candidate,
    dlq: &QueueRow,
    source_arn: &str,
    dedup_id: Option<&str>,
    now: i64,
) -> Result<bool, PgError> {
    if let Some(g) = &candidate.group_id
        && dlq.fifo
    {
        tx.execute(
            "INSERT INTO redrive_fifo_groups (queue_uid, group_id) VALUES ($1, $2)
             ON CONFLICT DO NOTHING",
            &[&dlq.uid, g],
        )
        .await?;
    }
    let moved = tx
        .execute(
            "UPDATE redrive_messages SET
                queue_uid = $4,
                seq = n.s,
                part = (n.s % $5)::smallint,
                visible_at_ms = $6,
                receipt_token = 0,
                group_id = CASE WHEN $8 THEN group_id ELSE NULL END,
                dead_letter_source = $7,
                dead_lettered_ms = $6,
                attributes = CASE WHEN $9::text IS NULL THEN attributes
                    ELSE convert_to(jsonb_set(convert_from(attributes, 'UTF8')::jsonb,
                                              '{d}', to_jsonb($9::text))::text, 'UTF8') END
             FROM (SELECT nextval('redrive_message_seq') AS s) n
             WHERE queue_uid = $1 AND part = $2 AND seq = $3 AND visible_at_ms <= $6",
            &[
                &q.uid,
                &part,
                &seq,
                &dlq.uid,
                &i64::from(dlq.partitions),
                &now,
                &source_arn,
                &dlq.fifo,
                &dedup_id,
            ],
        )
        .await?;
    Ok(moved == 1)
}

/// Records what a FIFO receive attempt handed out (replacing an earlier record of the id), in
/// the transaction that claimed it: `[part, seq, receipt token, deadline]` per message.
async fn record_attempt(
    tx: &Tx<'_>,
    q: &QueueRow,
    attempt: Attempt<'_>,
    now: i64,
    delivered: &[Claimed],
) -> Result<(), PgError> {
    let handed: Vec<(i16, i64, i64, i64)> = delivered
        .iter()
        .map(|m| (m.claim.part, m.claim.seq, m.claim.token, m.visible_at_ms))
        .collect();
    let messages = serde_json::to_string(&handed).unwrap_or_else(|_| "[]".into());
    tx.execute(
        "INSERT INTO redrive_receive_attempts (queue_uid, attempt_id, expires_ms, messages)
         VALUES ($1, $2, $3, $4)
         ON CONFLICT (queue_uid, attempt_id)
         DO UPDATE SET expires_ms = EXCLUDED.expires_ms, messages = EXCLUDED.messages",
        &[&q.uid, &attempt.id, &(now + attempt.window_ms), &messages],
    )
    .await?;
    Ok(())
}

/// A standard queue's batch: one `INSERT` of every message, their sequence numbers drawn in
/// the batch's order (`unnest … WITH ORDINALITY` scanned in order), instead of one round trip
/// per message. A fair queue's group ids are kept on the rows; no `redrive_fifo_groups` row
/// is made (only FIFO receives read that table).
async fn insert_plain(
    tx: &Tx<'_>,
    q: &QueueRow,
    msgs: &[NewMessage],
) -> Result<Vec<Sent>, PgError> {
    let ids: Vec<Uuid> = msgs.iter().map(|_| Uuid::new_v4()).collect();
    let bodies: Vec<&[u8]> = msgs.iter().map(|m| m.body.as_slice()).collect();
    let attributes: Vec<&[u8]> = msgs.iter().map(|m| m.attributes.as_slice()).collect();
    let delays: Vec<i64> = msgs.iter().map(|m| m.delay_ms).collect();
    let groups: Vec<Option<&str>> = msgs.iter().map(|m| m.group_id.as_deref()).collect();
    let rows = tx
        .query(
            &format!(
                "INSERT INTO redrive_messages
                    (queue_uid, part, seq, visible_at_ms, message_id, group_id, body, attributes,
                     sent_ms)
                 SELECT $1, (s % $2)::smallint, s, {NOW} + delay, id, grp, body, attrs, {NOW}
                 FROM (SELECT u.*, nextval('redrive_message_seq') AS s
                       FROM unnest($3::uuid[], $4::bytea[], $5::bytea[], $6::bigint[], $7::text[])
                            WITH ORDINALITY AS u(id, body, attrs, delay, grp, ord)
                       ORDER BY ord) n
                 RETURNING message_id, seq"
            ),
            &[
                &q.uid,
                &i64::from(q.partitions),
                &ids,
                &bodies,
                &attributes,
                &delays,
                &groups,
            ],
        )
        .await?;
    let seqs: HashMap<Uuid, i64> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    Ok(ids
        .into_iter()
        .map(|id| Sent {
            message_id: id,
            seq: Some(seqs[&id]),
            first_seq: None,
        })
        .collect())
}

/// Wakes the long polls of every queue that received moved messages (once per queue).
async fn notify_moved(tx: &Tx<'_>, moved: &[(Uuid, i64)]) -> Result<(), PgError> {
    let mut queues: Vec<i64> = moved.iter().map(|m| m.1).collect();
    queues.sort_unstable();
    queues.dedup();
    for uid in queues {
        tx.execute("SELECT pg_notify($1, '')", &[&channel(uid)])
            .await?;
    }
    Ok(())
}

/// How long polling falls back to re-trying a receive when no notification comes (engines
/// without `LISTEN/NOTIFY`, or a notification lost with a connection).
pub const DEFAULT_POLL_MS: u64 = 200;

/// The shared-database store. Cheap to share behind an `Arc`; every method is one atomic
/// transition.
pub struct PgStore {
    pool: Pool,
    listener: Listener,
    poll: Duration,
    /// Whether a standard queue holds messages with a `MessageGroupId` (a fair queue), per
    /// queue uid, and when that was looked at (see [`PgStore::noisy_tenants`]).
    tenants: parking_lot::Mutex<HashMap<i64, (bool, std::time::Instant)>>,
}

/// The depth and age columns of [`PgStore::stats`] (`$2`: the queue is FIFO): visible, in
/// flight, delayed, the oldest send (or dead-letter) time counted for the age, and now.
const STATS_SELECT: &str = "WITH now AS MATERIALIZED (SELECT redrive_now_ms() AS t)
     SELECT count(*) FILTER (WHERE visible_at_ms <= (SELECT t FROM now)),
            count(*) FILTER (WHERE visible_at_ms > (SELECT t FROM now) AND receive_count > 0),
            count(*) FILTER (WHERE visible_at_ms > (SELECT t FROM now) AND receive_count = 0),
            min(COALESCE(dead_lettered_ms, sent_ms)) FILTER (
                WHERE (visible_at_ms <= (SELECT t FROM now) OR receive_count > 0)
                  AND ($2 OR receive_count < 3)),
            (SELECT t FROM now)";

/// The most a message's visibility may reach past its current receive (AWS: 12 hours).
const MAX_VISIBILITY_MS: i64 = 43_200_000;

/// A fair queue's tenant is noisy (served after the quiet ones) when it holds more than 10 %
/// of the queue's in-flight messages and at least 30 of its own (AWS's published thresholds,
/// as the embedded store's `queue::NOISY_*`).
const NOISY_MIN_IN_FLIGHT: i64 = 30;
const NOISY_SHARE_PERCENT: i64 = 10;
/// In-flight messages counted for the noisy check at most (AWS's in-flight limit of a
/// standard queue).
const NOISY_SCAN_CAP: i64 = 120_000;
/// How long a standard queue's "fair or not" is believed before it is looked at again.
const TENANT_PROBE: Duration = Duration::from_secs(1);

const NOW: &str = "redrive_now_ms()";
/// The database's now evaluated once per statement (an InitPlan): what a condition over many
/// rows compares against. `redrive_now_ms()` is volatile, so written bare in a `WHERE` it is
/// called for every row and cannot bound an index scan (the retention sweep of a queue of
/// 1,000,000 messages: 2.6 s with it bare, 0.1 ms with this).
const NOW_ONCE: &str = "(SELECT redrive_now_ms())";

/// Takes the lock row `('lock', kind)` (created if needed) and reads every document of `kind`
/// `FOR UPDATE`, inside `tx`: the start of a read-modify-write of a kind's documents, one at a
/// time across servers.
async fn lock_documents(tx: &Tx<'_>, kind: &str) -> Result<Vec<Document>, PgError> {
    tx.execute(
        "INSERT INTO redrive_documents (kind, key, value) VALUES ('lock', $1, '{}')
         ON CONFLICT DO NOTHING",
        &[&kind],
    )
    .await?;
    tx.execute(
        "SELECT 1 FROM redrive_documents WHERE kind = 'lock' AND key = $1 FOR UPDATE",
        &[&kind],
    )
    .await?;
    let rows = tx
        .query(
            "SELECT key, value FROM redrive_documents WHERE kind = $1 ORDER BY key FOR UPDATE",
            &[&kind],
        )
        .await?;
    Ok(documents_of(kind, &rows))
}

/// `(key, value)` rows of `kind` as documents.
fn documents_of(kind: &str, rows: &[tokio_postgres::Row]) -> Vec<Document> {
    rows.iter()
        .map(|r| Document {
            kind: kind.to_string(),
            key: r.get(0),
            value: r.get(1),
        })
        .collect()
}

impl PgStore {
    /// Connects `connections` clients to `url` (a `postgres://` URL), optionally inside
    /// `schema` (created if needed; tests use one per test), and applies the migrations.
    pub async fn connect(
        url: &str,
        schema: Option<&str>,
        connections: usize,
    ) -> Result<PgStore, PgError> {
        if let Some(s) = schema
            && !s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return Err(PgError::Url(format!(
                "schema `{s}`: use letters, digits and `_`"
            )));
        }
        let mut clients = Vec::new();
        for _ in 0..connections.max(1) {
            let (client, conn) = tokio_postgres::connect(url, NoTls).await?;
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::warn!(error = %e, "database connection ended");
                }
            });
            if let Some(s) = schema {
                migrate::ensure_schema(&client, s).await?;
                client
                    .batch_execute(&format!("SET search_path TO {s}"))
                    .await?;
            }
            clients.push(Mutex::new(Conn::new(client)));
        }
        let (listen_client, mut listen_conn) = tokio_postgres::connect(url, NoTls).await?;
        let channels: Arc<parking_lot::Mutex<HashMap<String, Arc<Notify>>>> = Arc::default();
        let forward = channels.clone();
        tokio::spawn(async move {
            loop {
                match std::future::poll_fn(|cx| listen_conn.poll_message(cx)).await {
                    Some(Ok(AsyncMessage::Notification(n))) => {
                        if let Some(w) = forward.lock().get(n.channel()) {
                            w.notify_waiters();
                        }
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => {
                        tracing::warn!(error = %e, "the LISTEN connection ended; long polls fall back to polling");
                        break;
                    }
                    None => break,
                }
            }
        });
        let store = PgStore {
            pool: Pool {
                clients,
                next: AtomicUsize::new(0),
            },
            listener: Listener {
                client: listen_client,
                channels,
            },
            poll: Duration::from_millis(DEFAULT_POLL_MS),
            tenants: parking_lot::Mutex::default(),
        };
        {
            let mut c = store.pool.get().await;
            migrate::migrate(c.client_mut()).await?;
        }
        Ok(store)
    }

    /// Sets the fallback poll interval of long polls (see [`DEFAULT_POLL_MS`]).
    pub fn with_poll_interval(mut self, poll: Duration) -> PgStore {
        self.poll = poll;
        self
    }

    /// The queue's wakeup, `LISTEN`ing on its channel the first time.
    async fn subscribe(&self, uid: i64) -> Result<Arc<Notify>, PgError> {
        let name = channel(uid);
        if let Some(n) = self.listener.channels.lock().get(&name) {
            return Ok(n.clone());
        }
        self.listener
            .client
            .batch_execute(&format!("LISTEN {name}"))
            .await?;
        Ok(self
            .listener
            .channels
            .lock()
            .entry(name)
            .or_insert_with(|| Arc::new(Notify::new()))
            .clone())
    }

    /// `ReceiveMessage` with `WaitTimeSeconds`: receives, and while nothing comes, waits for a
    /// send's notification (or the fallback poll) until `wait` has passed.
    pub async fn receive_wait(
        &self,
        q: &QueueRow,
        max: usize,
        visibility_ms: i64,
        wait: Duration,
    ) -> Result<Vec<Claimed>, PgError> {
        let deliver = |_: &Candidate| Decision::Deliver;
        Ok(self
            .receive_wait_with(q, max, visibility_ms, wait, &deliver)
            .await?
            .delivered)
    }

    /// [`PgStore::receive_with`] with long polling (see [`PgStore::receive_wait`]).
    pub async fn receive_wait_with(
        &self,
        q: &QueueRow,
        max: usize,
        visibility_ms: i64,
        wait: Duration,
        decide: &(dyn Fn(&Candidate) -> Decision + Sync),
    ) -> Result<Received, PgError> {
        self.receive_wait_attempt(q, max, visibility_ms, wait, None, decide)
            .await
    }

    /// [`PgStore::receive_wait_with`] with a FIFO queue's receive attempt: when `attempt` was
    /// recorded less than its window ago and every message it handed out is still in flight
    /// from it (receipt token and visibility deadline unchanged), the same messages come back
    /// under the same claims, their visibility restarted (receive counts unchanged).
    /// Otherwise the receive runs, and what it delivers is recorded under the attempt id in
    /// its claiming transaction, so a retry reaching another server is answered the same.
    /// Ignored for standard queues.
    pub async fn receive_wait_attempt(
        &self,
        q: &QueueRow,
        max: usize,
        visibility_ms: i64,
        wait: Duration,
        attempt: Option<Attempt<'_>>,
        decide: &(dyn Fn(&Candidate) -> Decision + Sync),
    ) -> Result<Received, PgError> {
        let attempt = attempt.filter(|_| q.fifo);
        if let Some(a) = attempt
            && let Some(delivered) = retry!(self.try_replay_attempt(q, a, visibility_ms))?
        {
            return Ok(Received {
                delivered,
                moved: Vec::new(),
            });
        }
        let deadline = tokio::time::Instant::now() + wait;
        let wake = if wait.is_zero() {
            None
        } else {
            Some(self.subscribe(q.uid).await?)
        };
        loop {
            // Registered before the receive: a send committed in between still wakes us.
            let Some(wake) = &wake else {
                return self
                    .receive_attempt_with(q, max, visibility_ms, attempt, decide)
                    .await;
            };
            let notified = wake.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let got = self
                .receive_attempt_with(q, max, visibility_ms, attempt, decide)
                .await?;
            let now = tokio::time::Instant::now();
            if !got.delivered.is_empty() || now >= deadline {
                return Ok(got);
            }
            let jitter = rand::rng().random_range(0..=self.poll.as_millis() as u64 / 4);
            let nap = (self.poll + Duration::from_millis(jitter)).min(deadline - now);
            let _ = tokio::time::timeout(nap, notified).await;
        }
    }

    /// Statements held prepared, over every connection of the pool (each statement is
    /// prepared once per connection: `conn.rs`).
    pub async fn prepared_statements(&self) -> usize {
        let mut n = 0;
        for c in &self.pool.clients {
            n += c.lock().await.prepared_count();
        }
        n
    }

    /// The schema version the database holds.
    pub async fn schema_version(&self) -> Result<i32, PgError> {
        let c = self.pool.get().await;
        Ok(
            c.query_one("SELECT version FROM redrive_schema WHERE id = 1", &[])
                .await?
                .get(0),
        )
    }

    /// The database's clock, epoch ms.
    pub async fn now_ms(&self) -> Result<i64, PgError> {
        let c = self.pool.get().await;
        Ok(c.query_one(&format!("SELECT {NOW}"), &[]).await?.get(0))
    }

    /// Moves the database clock forward for every server (tests only).
    pub async fn advance_clock(&self, ms: i64) -> Result<(), PgError> {
        let c = self.pool.get().await;
        c.execute(
            "UPDATE redrive_clock SET offset_ms = offset_ms + $1 WHERE id = 1",
            &[&ms],
        )
        .await?;
        Ok(())
    }

    fn row_to_queue(r: &tokio_postgres::Row) -> QueueRow {
        QueueRow {
            uid: r.get("uid"),
            region: r.get("region"),
            name: r.get("name"),
            fifo: r.get("fifo"),
            partitions: r.get("partitions"),
            attributes: r.get("attributes"),
            created_ms: r.get("created_ms"),
        }
    }

    /// Creates the queue, or returns the existing one of that name (one statement: two servers
    /// creating it at once get the same row).
    pub async fn create_queue(
        &self,
        region: &str,
        name: &str,
        fifo: bool,
        partitions: i16,
        attributes: &serde_json::Value,
    ) -> Result<Created, PgError> {
        let c = self.pool.get().await;
        let inserted = c
            .query_opt(
                &format!(
                    "INSERT INTO redrive_queues (region, name, fifo, partitions, attributes, created_ms)
                     VALUES ($1, $2, $3, $4, $5, {NOW})
                     ON CONFLICT (region, name) DO NOTHING
                     RETURNING *"
                ),
                &[&region, &name, &fifo, &partitions, attributes],
            )
            .await?;
        if let Some(r) = inserted {
            return Ok(Created::Created(Self::row_to_queue(&r)));
        }
        let r = c
            .query_one(
                "SELECT * FROM redrive_queues WHERE region = $1 AND name = $2",
                &[&region, &name],
            )
            .await?;
        Ok(Created::Existing(Self::row_to_queue(&r)))
    }

    pub async fn queue(&self, region: &str, name: &str) -> Result<Option<QueueRow>, PgError> {
        let c = self.pool.get().await;
        Ok(c.query_opt(
            "SELECT * FROM redrive_queues WHERE region = $1 AND name = $2",
            &[&region, &name],
        )
        .await?
        .map(|r| Self::row_to_queue(&r)))
    }

    /// Every queue of a Region whose name starts with `prefix`, by name.
    pub async fn list_queues(&self, region: &str, prefix: &str) -> Result<Vec<QueueRow>, PgError> {
        let c = self.pool.get().await;
        let rows = c
            .query(
                "SELECT * FROM redrive_queues WHERE region = $1 AND starts_with(name, $2)
                 ORDER BY name",
                &[&region, &prefix],
            )
            .await?;
        Ok(rows.iter().map(Self::row_to_queue).collect())
    }

    /// Replaces a queue's attributes (already merged and validated by the rules).
    pub async fn set_attributes(
        &self,
        q: &QueueRow,
        attributes: &serde_json::Value,
    ) -> Result<bool, PgError> {
        let c = self.pool.get().await;
        Ok(c.execute(
            "UPDATE redrive_queues SET attributes = $2 WHERE uid = $1",
            &[&q.uid, attributes],
        )
        .await?
            == 1)
    }

    /// [`PgStore::set_attributes`] only if the stored document's `version` is still
    /// `version` (a compare-and-set: `false` when another server changed the queue meanwhile,
    /// or it is gone).
    pub async fn set_attributes_if(
        &self,
        q: &QueueRow,
        attributes: &serde_json::Value,
        version: i64,
    ) -> Result<bool, PgError> {
        let c = self.pool.get().await;
        Ok(c.execute(
            "UPDATE redrive_queues SET attributes = $2
             WHERE uid = $1 AND coalesce((attributes->>'version')::bigint, 0) = $3",
            &[&q.uid, attributes, &version],
        )
        .await?
            == 1)
    }

    /// Removes every message (and, for FIFO, the deduplication entries and groups), as
    /// `PurgeQueue`. Returns the number of messages removed.
    pub async fn purge(&self, q: &QueueRow) -> Result<u64, PgError> {
        retry!(self.try_purge(q, false))
    }

    /// `DeleteQueue`: the queue and everything in it, with the time of deletion kept as a
    /// document (`deleted-queue`, `{region}\n{name}`) for the rules' `QueueDeletedRecently`.
    pub async fn delete_queue(&self, q: &QueueRow) -> Result<u64, PgError> {
        retry!(self.try_purge(q, true))
    }

    async fn try_purge(&self, q: &QueueRow, drop_queue: bool) -> Result<u64, PgError> {
        let mut c = self.pool.get().await;
        let tx = c.transaction().await?;
        // Locked first: a move step into this queue (which reads the row `FOR SHARE`) either
        // commits before its messages are deleted here, or finds the queue gone.
        tx.execute(
            "SELECT 1 FROM redrive_queues WHERE uid = $1 FOR UPDATE",
            &[&q.uid],
        )
        .await?;
        let n = tx
            .execute(
                "DELETE FROM redrive_messages WHERE queue_uid = $1",
                &[&q.uid],
            )
            .await?;
        tx.execute("DELETE FROM redrive_dedup WHERE queue_uid = $1", &[&q.uid])
            .await?;
        tx.execute(
            "DELETE FROM redrive_fifo_groups WHERE queue_uid = $1",
            &[&q.uid],
        )
        .await?;
        tx.execute(
            "DELETE FROM redrive_receive_attempts WHERE queue_uid = $1",
            &[&q.uid],
        )
        .await?;
        if drop_queue {
            tx.execute("DELETE FROM redrive_queues WHERE uid = $1", &[&q.uid])
                .await?;
            tx.execute(
                "DELETE FROM redrive_minute_history WHERE queue_uid = $1",
                &[&q.uid],
            )
            .await?;
            tx.execute(
                &format!(
                    "INSERT INTO redrive_documents (kind, key, value)
                     VALUES ('deleted-queue', $1, jsonb_build_object('at', {NOW}))
                     ON CONFLICT (kind, key) DO UPDATE SET value = EXCLUDED.value"
                ),
                &[&format!("{}\n{}", q.region, q.name)],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(n)
    }

    /// Stores a batch in one transaction: all or nothing. FIFO entries are deduplicated
    /// across servers by the `redrive_dedup` row's conditional upsert.
    pub async fn send(&self, q: &QueueRow, msgs: &[NewMessage]) -> Result<Vec<Sent>, PgError> {
        retry!(self.try_send(q, msgs))
    }

    async fn try_send(&self, q: &QueueRow, msgs: &[NewMessage]) -> Result<Vec<Sent>, PgError> {
        let mut c = self.pool.get().await;
        let tx = c.transaction().await?;
        if !q.fifo && msgs.iter().all(|m| m.dedup.is_none()) {
            let out = insert_plain(&tx, q, msgs).await?;
            if !out.is_empty() {
                tx.execute("SELECT pg_notify($1, '')", &[&channel(q.uid)])
                    .await?;
            }
            tx.commit().await?;
            return Ok(out);
        }
        let mut out = Vec::with_capacity(msgs.len());
        for m in msgs {
            let id = Uuid::new_v4();
            if let Some((key, window_ms)) = &m.dedup {
                let fresh = tx
                    .query_opt(
                        &format!(
                            "INSERT INTO redrive_dedup (queue_uid, dedup_key, expires_ms, message_id)
                             VALUES ($1, $2, {NOW} + $3, $4)
                             ON CONFLICT (queue_uid, dedup_key) DO UPDATE
                                 SET expires_ms = EXCLUDED.expires_ms, message_id = EXCLUDED.message_id
                                 WHERE redrive_dedup.expires_ms <= {NOW}
                             RETURNING message_id"
                        ),
                        &[&q.uid, key, window_ms, &id],
                    )
                    .await?;
                if fresh.is_none() {
                    let first = tx
                        .query_one(
                            "SELECT message_id, seq FROM redrive_dedup WHERE queue_uid = $1 AND dedup_key = $2",
                            &[&q.uid, key],
                        )
                        .await?;
                    out.push(Sent {
                        message_id: first.get(0),
                        seq: None,
                        first_seq: first.get(1),
                    });
                    continue;
                }
            }
            if let Some(g) = &m.group_id {
                tx.execute(
                    "INSERT INTO redrive_fifo_groups (queue_uid, group_id) VALUES ($1, $2)
                     ON CONFLICT DO NOTHING",
                    &[&q.uid, g],
                )
                .await?;
            }
            let seq: i64 = tx
                .query_one(
                    &format!(
                        "INSERT INTO redrive_messages
                            (queue_uid, part, seq, visible_at_ms, message_id, group_id, body, attributes, sent_ms)
                         SELECT $1, (s % $2)::smallint, s, {NOW} + $3, $4, $5, $6, $7, {NOW}
                         FROM (SELECT nextval('redrive_message_seq') AS s) n
                         RETURNING seq"
                    ),
                    &[
                        &q.uid,
                        &i64::from(q.partitions),
                        &m.delay_ms,
                        &id,
                        &m.group_id,
                        &m.body,
                        &m.attributes,
                    ],
                )
                .await?
                .get(0);
            if let Some((key, _)) = &m.dedup {
                tx.execute(
                    "UPDATE redrive_dedup SET seq = $3 WHERE queue_uid = $1 AND dedup_key = $2",
                    &[&q.uid, key, &seq],
                )
                .await?;
            }
            out.push(Sent {
                message_id: id,
                seq: Some(seq),
                first_seq: None,
            });
        }
        if out.iter().any(|s| s.seq.is_some()) {
            tx.execute("SELECT pg_notify($1, '')", &[&channel(q.uid)])
                .await?;
        }
        tx.commit().await?;
        Ok(out)
    }

    fn row_to_claimed(r: &tokio_postgres::Row) -> Claimed {
        Claimed {
            claim: Claim {
                part: r.get("part"),
                seq: r.get("seq"),
                token: r.get("receipt_token"),
            },
            message_id: r.get("message_id"),
            group_id: r.get("group_id"),
            body: r.get("body"),
            attributes: r.get("attributes"),
            receive_count: r.get("receive_count"),
            sent_ms: r.get("sent_ms"),
            first_received_ms: r.get("first_received_ms"),
            visible_at_ms: r.get("visible_at_ms"),
            dead_letter_source: r.get("dead_letter_source"),
            dead_lettered_ms: r.get("dead_lettered_ms"),
        }
    }

    /// Claims up to `max` visible messages for `visibility_ms`. Standard queues: partition by
    /// partition from a random one, one statement each. FIFO: whole groups, in order.
    pub async fn receive(
        &self,
        q: &QueueRow,
        max: usize,
        visibility_ms: i64,
    ) -> Result<Vec<Claimed>, PgError> {
        if q.fifo {
            let deliver = |_: &Candidate| Decision::Deliver;
            return retry!(self.try_receive_fifo(q, max, visibility_ms, None, &deliver))
                .map(|r| r.delivered);
        }
        let mut got = Vec::new();
        let start = rand::rng().random_range(0..q.partitions.max(1));
        for i in 0..q.partitions {
            if got.len() >= max {
                break;
            }
            let part = (start + i) % q.partitions;
            let mut claimed =
                retry!(self.try_claim_partition(q, part, max - got.len(), visibility_ms))?;
            got.append(&mut claimed);
        }
        Ok(got)
    }

    /// A standard queue's receive with the rules in the loop: candidates are locked
    /// (`SKIP LOCKED`), `decide` answers for each, and deliveries and DLQ moves are applied in
    /// that one transaction per partition, so a message is never both delivered and moved.
    pub async fn receive_with(
        &self,
        q: &QueueRow,
        max: usize,
        visibility_ms: i64,
        decide: &(dyn Fn(&Candidate) -> Decision + Sync),
    ) -> Result<Received, PgError> {
        self.receive_attempt_with(q, max, visibility_ms, None, decide)
            .await
    }

    /// [`PgStore::receive_with`], a FIFO receive recording what it delivers under `attempt`.
    async fn receive_attempt_with(
        &self,
        q: &QueueRow,
        max: usize,
        visibility_ms: i64,
        attempt: Option<Attempt<'_>>,
        decide: &(dyn Fn(&Candidate) -> Decision + Sync),
    ) -> Result<Received, PgError> {
        if q.fifo {
            return retry!(self.try_receive_fifo(q, max, visibility_ms, attempt, decide));
        }
        let mut out = Received::default();
        // Fair queues: the quiet tenants' messages first, over every partition; then, if
        // there is room, the noisy tenants'.
        let noisy = self.noisy_tenants(q).await?;
        let passes: &[&[String]] = if noisy.is_empty() {
            &[&[]]
        } else {
            &[&noisy, &[]]
        };
        for avoid in passes {
            let start = rand::rng().random_range(0..q.partitions.max(1));
            for i in 0..q.partitions {
                if out.delivered.len() >= max {
                    break;
                }
                let part = (start + i) % q.partitions;
                let want = max - out.delivered.len();
                let mut got =
                    retry!(self.try_decide_partition(q, part, want, visibility_ms, avoid, decide))?;
                out.delivered.append(&mut got.delivered);
                out.moved.append(&mut got.moved);
            }
        }
        Ok(out)
    }

    /// A standard queue's noisy tenants right now (fair queues; the embedded store's rule):
    /// those holding at least 30 in-flight messages and more than 10 % of the queue's. Counted
    /// on the in-flight rows (`visible_at_ms > now` and received), at most 120,000 of them,
    /// per receive of a fair queue. Whether a queue is fair (holds a message with a
    /// `MessageGroupId`) is one index probe, believed for a second per server: queues that
    /// are not fair pay that probe, not the count; a queue that just became fair is served
    /// oldest first for up to that second.
    async fn noisy_tenants(&self, q: &QueueRow) -> Result<Vec<String>, PgError> {
        if q.fifo {
            return Ok(Vec::new());
        }
        let known = self
            .tenants
            .lock()
            .get(&q.uid)
            .filter(|(_, at)| at.elapsed() < TENANT_PROBE)
            .map(|(fair, _)| *fair);
        let c = self.pool.get().await;
        let fair = match known {
            Some(fair) => fair,
            None => {
                let fair: bool = c
                    .query_one(
                        "SELECT EXISTS (SELECT 1 FROM redrive_messages
                                        WHERE queue_uid = $1 AND group_id IS NOT NULL)",
                        &[&q.uid],
                    )
                    .await?
                    .get(0);
                self.tenants
                    .lock()
                    .insert(q.uid, (fair, std::time::Instant::now()));
                fair
            }
        };
        if !fair {
            return Ok(Vec::new());
        }
        let parts: Vec<i16> = (0..q.partitions).collect();
        let rows = c
            .query(
                &format!(
                    "SELECT group_id, count(*) FROM (
                        SELECT group_id FROM redrive_messages
                        WHERE queue_uid = $1 AND part = ANY($2) AND visible_at_ms > {NOW_ONCE}
                          AND receive_count > 0
                        LIMIT $3) t
                     GROUP BY group_id"
                ),
                &[&q.uid, &parts, &NOISY_SCAN_CAP],
            )
            .await?;
        let counts: Vec<(Option<String>, i64)> =
            rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        let total: i64 = counts.iter().map(|(_, n)| n).sum();
        Ok(counts
            .into_iter()
            .filter_map(|(g, n)| {
                (n >= NOISY_MIN_IN_FLIGHT && n * 100 > total * NOISY_SHARE_PERCENT)
                    .then_some(g)
                    .flatten()
            })
            .collect())
    }

    async fn try_decide_partition(
        &self,
        q: &QueueRow,
        part: i16,
        max: usize,
        visibility_ms: i64,
        avoid: &[String],
        decide: &(dyn Fn(&Candidate) -> Decision + Sync),
    ) -> Result<Received, PgError> {
        let mut c = self.pool.get().await;
        let tx = c.transaction().await?;
        let now: i64 = tx.query_one(&format!("SELECT {NOW}"), &[]).await?.get(0);
        // Moved messages do not count toward `max`: look a little further.
        let limit = (max * 2) as i64;
        let rows = if avoid.is_empty() {
            tx.query(
                "SELECT seq, message_id, group_id, receive_count, sent_ms FROM redrive_messages
                 WHERE queue_uid = $1 AND part = $2 AND visible_at_ms <= $3
                 ORDER BY visible_at_ms, seq
                 LIMIT $4
                 FOR UPDATE SKIP LOCKED",
                &[&q.uid, &part, &now, &limit],
            )
            .await?
        } else {
            // A fair queue's first pass: the noisy tenants' messages are left for the second.
            tx.query(
                "SELECT seq, message_id, group_id, receive_count, sent_ms FROM redrive_messages
                 WHERE queue_uid = $1 AND part = $2 AND visible_at_ms <= $3
                   AND (group_id IS NULL OR NOT (group_id = ANY($5)))
                 ORDER BY visible_at_ms, seq
                 LIMIT $4
                 FOR UPDATE SKIP LOCKED",
                &[&q.uid, &part, &now, &limit, &avoid],
            )
            .await?
        };
        let mut out = Received::default();
        for r in rows {
            if out.delivered.len() >= max {
                break;
            }
            let seq: i64 = r.get("seq");
            let candidate = Candidate {
                message_id: r.get("message_id"),
                group_id: r.get("group_id"),
                receive_count: r.get("receive_count"),
                sent_ms: r.get("sent_ms"),
            };
            match decide(&candidate) {
                Decision::Skip => {}
                Decision::Deliver => {
                    // The condition again: a row seen twice is claimed once.
                    if let Some(row) = tx
                        .query_opt(
                            "UPDATE redrive_messages SET
                                visible_at_ms = $4::bigint + $5::bigint,
                                receive_count = receive_count + 1,
                                receipt_token = receipt_token + 1,
                                received_ms = $4::bigint,
                                first_received_ms = coalesce(first_received_ms, $4::bigint)
                             WHERE queue_uid = $1 AND part = $2 AND seq = $3 AND visible_at_ms <= $4
                             RETURNING *",
                            &[&q.uid, &part, &seq, &now, &visibility_ms],
                        )
                        .await?
                    {
                        out.delivered.push(Self::row_to_claimed(&row));
                    }
                }
                Decision::MoveTo {
                    queue,
                    source_arn,
                    dedup_id,
                } => {
                    if move_to_dlq(
                        &tx,
                        q,
                        part,
                        seq,
                        &candidate,
                        &queue,
                        &source_arn,
                        dedup_id.as_deref(),
                        now,
                    )
                    .await?
                    {
                        out.moved.push((candidate.message_id, queue.uid));
                    }
                }
            }
        }
        notify_moved(&tx, &out.moved).await?;
        tx.commit().await?;
        Ok(out)
    }

    /// The re-check `visible_at_ms + 0 <= now` in the `UPDATE` is kept out of index
    /// conditions on purpose: planned on stale statistics (a table that just grew from
    /// empty), `visible_at_ms <= now` let PostgreSQL join through the ready index instead of
    /// the primary key, re-walking the partition's visible range per claimed row (one claim
    /// of 119,999 rows: 18 s, 3.4 s with the primary key).
    async fn try_claim_partition(
        &self,
        q: &QueueRow,
        part: i16,
        max: usize,
        visibility_ms: i64,
    ) -> Result<Vec<Claimed>, PgError> {
        let c = self.pool.get().await;
        let rows = c
            .query(
                &format!(
                    "WITH now AS MATERIALIZED (SELECT {NOW} AS t),
                     c AS (
                        SELECT m.part, m.seq FROM redrive_messages m
                        WHERE m.queue_uid = $1 AND m.part = $2
                          AND m.visible_at_ms <= (SELECT t FROM now)
                        ORDER BY m.visible_at_ms, m.seq
                        LIMIT $3
                        FOR UPDATE OF m SKIP LOCKED
                     )
                     UPDATE redrive_messages m SET
                        visible_at_ms = (SELECT t FROM now) + $4,
                        receive_count = m.receive_count + 1,
                        receipt_token = m.receipt_token + 1,
                        received_ms = (SELECT t FROM now),
                        first_received_ms = coalesce(m.first_received_ms, (SELECT t FROM now))
                     FROM c
                     WHERE m.queue_uid = $1 AND m.part = c.part AND m.seq = c.seq
                       AND m.visible_at_ms + 0 <= (SELECT t FROM now)
                     RETURNING m.*"
                ),
                &[&q.uid, &part, &(max as i64), &visibility_ms],
            )
            .await?;
        Ok(rows.iter().map(Self::row_to_claimed).collect())
    }

    /// Answers a retry of `attempt` from what it handed out, if that is still in flight from
    /// it (see [`PgStore::receive_wait_attempt`]): `None` when the receive must run instead.
    async fn try_replay_attempt(
        &self,
        q: &QueueRow,
        attempt: Attempt<'_>,
        visibility_ms: i64,
    ) -> Result<Option<Vec<Claimed>>, PgError> {
        let mut c = self.pool.get().await;
        let tx = c.transaction().await?;
        let now: i64 = tx.query_one(&format!("SELECT {NOW}"), &[]).await?.get(0);
        let Some(row) = tx
            .query_opt(
                "SELECT messages FROM redrive_receive_attempts
                 WHERE queue_uid = $1 AND attempt_id = $2 AND expires_ms > $3
                 FOR UPDATE",
                &[&q.uid, &attempt.id, &now],
            )
            .await?
        else {
            return Ok(None);
        };
        let Ok(handed) = serde_json::from_str::<Vec<(i16, i64, i64, i64)>>(row.get(0)) else {
            return Ok(None);
        };
        if handed.is_empty() {
            return Ok(None);
        }
        // Unchanged since: still in flight under the attempt's claim and deadline.
        for (part, seq, token, deadline) in &handed {
            let unchanged = tx
                .query_opt(
                    "SELECT 1 FROM redrive_messages
                     WHERE queue_uid = $1 AND part = $2 AND seq = $3 AND receipt_token = $4
                       AND visible_at_ms = $5 AND visible_at_ms > $6
                     FOR UPDATE",
                    &[&q.uid, part, seq, token, deadline, &now],
                )
                .await?
                .is_some();
            if !unchanged {
                return Ok(None);
            }
        }
        let deadline = now + visibility_ms;
        let mut out = Vec::with_capacity(handed.len());
        for (part, seq, _, _) in &handed {
            let row = tx
                .query_one(
                    "UPDATE redrive_messages SET visible_at_ms = $4
                     WHERE queue_uid = $1 AND part = $2 AND seq = $3
                     RETURNING *",
                    &[&q.uid, part, seq, &deadline],
                )
                .await?;
            out.push(Self::row_to_claimed(&row));
        }
        let mut groups: Vec<&str> = out.iter().filter_map(|m| m.group_id.as_deref()).collect();
        groups.sort_unstable();
        groups.dedup();
        for g in groups {
            // The hold lasts as long as the group's latest in-flight deadline.
            tx.execute(
                "UPDATE redrive_fifo_groups SET locked_until_ms = coalesce(
                    (SELECT max(visible_at_ms) FROM redrive_messages
                     WHERE queue_uid = $1 AND group_id = $2 AND receive_count > 0
                       AND visible_at_ms > $3), 0)
                 WHERE queue_uid = $1 AND group_id = $2",
                &[&q.uid, &g, &now],
            )
            .await?;
        }
        if visibility_ms <= 0 {
            tx.execute("SELECT pg_notify($1, '')", &[&channel(q.uid)])
                .await?;
        }
        record_attempt(&tx, q, attempt, now, &out).await?;
        tx.commit().await?;
        Ok(Some(out))
    }

    async fn try_receive_fifo(
        &self,
        q: &QueueRow,
        max: usize,
        visibility_ms: i64,
        attempt: Option<Attempt<'_>>,
        decide: &(dyn Fn(&Candidate) -> Decision + Sync),
    ) -> Result<Received, PgError> {
        let mut c = self.pool.get().await;
        let tx = c.transaction().await?;
        let now: i64 = tx.query_one(&format!("SELECT {NOW}"), &[]).await?.get(0);
        // Free groups whose oldest message is visible, oldest first; held ones are skipped,
        // rows another receive is looking at are skipped without waiting.
        let groups = tx
            .query(
                "SELECT g.group_id FROM redrive_fifo_groups g
                 WHERE g.queue_uid = $1 AND g.locked_until_ms <= $2
                   AND EXISTS (SELECT 1 FROM redrive_messages m
                               WHERE m.queue_uid = g.queue_uid AND m.group_id = g.group_id
                                 AND m.visible_at_ms <= $2)
                 ORDER BY (SELECT min(m.seq) FROM redrive_messages m
                           WHERE m.queue_uid = g.queue_uid AND m.group_id = g.group_id)
                 LIMIT $3
                 FOR UPDATE OF g SKIP LOCKED",
                &[&q.uid, &now, &FIFO_GROUP_SCAN.min(max as i64)],
            )
            .await?;
        // Each group's leading visible messages, in order (a message that is not visible
        // stops its group: order is kept).
        let mut queues: Vec<(String, std::collections::VecDeque<tokio_postgres::Row>)> = Vec::new();
        for g in groups {
            let group: String = g.get(0);
            let rows = tx
                .query(
                    "SELECT part, seq, visible_at_ms, message_id, receive_count, sent_ms
                     FROM redrive_messages
                     WHERE queue_uid = $1 AND group_id = $2
                     ORDER BY seq LIMIT $3 FOR UPDATE",
                    &[&q.uid, &group, &((2 * max) as i64)],
                )
                .await?;
            let leading = rows
                .into_iter()
                .take_while(|r| r.get::<_, i64>("visible_at_ms") <= now)
                .collect();
            queues.push((group, leading));
        }
        // Round-robin: one message per group per round, groups in order of their oldest
        // message; a move to the DLQ does not count, the group's next message follows.
        let mut out = Received::default();
        let mut claimed: Vec<&str> = Vec::new();
        let mut active: Vec<usize> = (0..queues.len()).collect();
        while out.delivered.len() < max && !active.is_empty() {
            let mut next_round = Vec::new();
            for &i in &active {
                if out.delivered.len() >= max {
                    break;
                }
                let (group, rows) = &mut queues[i];
                let mut gave = false;
                while let Some(r) = rows.pop_front() {
                    let part: i16 = r.get("part");
                    let seq: i64 = r.get("seq");
                    let candidate = Candidate {
                        message_id: r.get("message_id"),
                        group_id: Some(group.clone()),
                        receive_count: r.get("receive_count"),
                        sent_ms: r.get("sent_ms"),
                    };
                    match decide(&candidate) {
                        // Skipping a FIFO message stops its group: the order is kept.
                        Decision::Skip => {
                            rows.clear();
                            break;
                        }
                        Decision::Deliver => {
                            let row = tx
                                .query_one(
                                    "UPDATE redrive_messages SET
                                        visible_at_ms = $4::bigint + $5::bigint,
                                        receive_count = receive_count + 1,
                                        receipt_token = receipt_token + 1,
                                        received_ms = $4::bigint,
                                        first_received_ms = coalesce(first_received_ms, $4::bigint)
                                     WHERE queue_uid = $1 AND part = $2 AND seq = $3
                                     RETURNING *",
                                    &[&q.uid, &part, &seq, &now, &visibility_ms],
                                )
                                .await?;
                            out.delivered.push(Self::row_to_claimed(&row));
                            gave = true;
                            break;
                        }
                        Decision::MoveTo {
                            queue,
                            source_arn,
                            dedup_id,
                        } => {
                            if move_to_dlq(
                                &tx,
                                q,
                                part,
                                seq,
                                &candidate,
                                &queue,
                                &source_arn,
                                dedup_id.as_deref(),
                                now,
                            )
                            .await?
                            {
                                out.moved.push((candidate.message_id, queue.uid));
                            }
                        }
                    }
                }
                if gave {
                    next_round.push(i);
                }
            }
            active = next_round;
        }
        for (group, _) in &queues {
            if out
                .delivered
                .iter()
                .any(|m| m.group_id.as_deref() == Some(group.as_str()))
            {
                claimed.push(group);
            }
        }
        for group in claimed {
            tx.execute(
                "UPDATE redrive_fifo_groups SET locked_until_ms = $3
                 WHERE queue_uid = $1 AND group_id = $2",
                &[&q.uid, &group, &(now + visibility_ms)],
            )
            .await?;
        }
        if let Some(a) = attempt
            && !out.delivered.is_empty()
        {
            record_attempt(&tx, q, a, now, &out.delivered).await?;
        }
        notify_moved(&tx, &out.moved).await?;
        tx.commit().await?;
        Ok(out)
    }

    /// Deletes the message if `claim` is its latest receive or an earlier one (SQS: a delete
    /// with an older handle succeeds); a FIFO group's hold is recomputed in the same transaction.
    pub async fn delete(&self, q: &QueueRow, claim: Claim) -> Result<HandleCheck, PgError> {
        retry!(self.try_change(q, claim, None, false))
    }

    /// A standard queue's batch of deletes in one statement: each message is deleted if its
    /// claim is its latest receive or an earlier one (as [`PgStore::delete`]); the others are
    /// `Stale`. No FIFO group is touched (use [`PgStore::delete_in_flight`] per message there).
    pub async fn delete_many(
        &self,
        q: &QueueRow,
        claims: &[Claim],
    ) -> Result<Vec<HandleCheck>, PgError> {
        retry!(self.try_delete_many(q, claims))
    }

    async fn try_delete_many(
        &self,
        q: &QueueRow,
        claims: &[Claim],
    ) -> Result<Vec<HandleCheck>, PgError> {
        let parts: Vec<i16> = claims.iter().map(|c| c.part).collect();
        let seqs: Vec<i64> = claims.iter().map(|c| c.seq).collect();
        let tokens: Vec<i64> = claims.iter().map(|c| c.token).collect();
        let c = self.pool.get().await;
        let rows = c
            .query(
                "DELETE FROM redrive_messages m
                 USING unnest($2::smallint[], $3::bigint[], $4::bigint[]) AS c(part, seq, token)
                 WHERE m.queue_uid = $1 AND m.part = c.part AND m.seq = c.seq
                   AND m.receipt_token >= c.token
                 RETURNING m.seq",
                &[&q.uid, &parts, &seqs, &tokens],
            )
            .await?;
        let deleted: std::collections::HashSet<i64> = rows.iter().map(|r| r.get(0)).collect();
        Ok(claims
            .iter()
            .map(|c| {
                if deleted.contains(&c.seq) {
                    HandleCheck::Applied
                } else {
                    HandleCheck::Stale
                }
            })
            .collect())
    }

    /// A standard queue's batch of visibility changes (`(claim, visibility_ms)`) in one
    /// transaction: one `UPDATE` for all of them, under the conditions of
    /// [`PgStore::change_visibility`], and one read to tell why the others were refused.
    /// A batch naming one message twice is applied entry by entry instead (in order, as
    /// separate calls would). No FIFO group is touched.
    pub async fn change_visibility_many(
        &self,
        q: &QueueRow,
        changes: &[(Claim, i64)],
    ) -> Result<Vec<HandleCheck>, PgError> {
        let mut seqs: Vec<i64> = changes.iter().map(|(c, _)| c.seq).collect();
        seqs.sort_unstable();
        seqs.dedup();
        if seqs.len() < changes.len() {
            let mut out = Vec::with_capacity(changes.len());
            for (claim, v) in changes {
                out.push(self.change_visibility(q, *claim, *v).await?);
            }
            return Ok(out);
        }
        retry!(self.try_change_visibility_many(q, changes))
    }

    async fn try_change_visibility_many(
        &self,
        q: &QueueRow,
        changes: &[(Claim, i64)],
    ) -> Result<Vec<HandleCheck>, PgError> {
        let parts: Vec<i16> = changes.iter().map(|(c, _)| c.part).collect();
        let seqs: Vec<i64> = changes.iter().map(|(c, _)| c.seq).collect();
        let tokens: Vec<i64> = changes.iter().map(|(c, _)| c.token).collect();
        let visibilities: Vec<i64> = changes.iter().map(|(_, v)| *v).collect();
        let mut c = self.pool.get().await;
        let tx = c.transaction().await?;
        let now: i64 = tx.query_one(&format!("SELECT {NOW}"), &[]).await?.get(0);
        let applied: std::collections::HashSet<i64> = tx
            .query(
                &format!(
                    "UPDATE redrive_messages m SET visible_at_ms = $6::bigint + c.vis
                     FROM unnest($2::smallint[], $3::bigint[], $4::bigint[], $5::bigint[])
                          AS c(part, seq, token, vis)
                     WHERE m.queue_uid = $1 AND m.part = c.part AND m.seq = c.seq
                       AND (m.receipt_token = c.token
                            OR (m.receipt_token > c.token AND m.visible_at_ms > $6))
                       AND (m.received_ms IS NULL
                            OR c.vis + ($6 - m.received_ms) / 1000 * 1000 <= {MAX_VISIBILITY_MS})
                     RETURNING m.seq"
                ),
                &[&q.uid, &parts, &seqs, &tokens, &visibilities, &now],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        // The refused ones: why, from the rows as they are in this transaction.
        let refused: Vec<usize> = (0..changes.len())
            .filter(|i| !applied.contains(&seqs[*i]))
            .collect();
        let mut found: HashMap<i64, (i64, i64, Option<i64>)> = HashMap::new();
        if !refused.is_empty() {
            let ask_parts: Vec<i16> = refused.iter().map(|i| parts[*i]).collect();
            let ask_seqs: Vec<i64> = refused.iter().map(|i| seqs[*i]).collect();
            for r in tx
                .query(
                    "SELECT m.seq, m.receipt_token, m.visible_at_ms, m.received_ms
                     FROM redrive_messages m
                     JOIN unnest($2::smallint[], $3::bigint[]) AS c(part, seq)
                       ON m.part = c.part AND m.seq = c.seq
                     WHERE m.queue_uid = $1",
                    &[&q.uid, &ask_parts, &ask_seqs],
                )
                .await?
            {
                found.insert(r.get(0), (r.get(1), r.get(2), r.get(3)));
            }
        }
        if changes.iter().any(|(_, v)| *v == 0) {
            // A message made visible: wake the long polls.
            tx.execute("SELECT pg_notify($1, '')", &[&channel(q.uid)])
                .await?;
        }
        tx.commit().await?;
        Ok(changes
            .iter()
            .map(|(claim, v)| {
                if applied.contains(&claim.seq) {
                    return HandleCheck::Applied;
                }
                let Some(&(token, visible_at, received)) = found.get(&claim.seq) else {
                    return HandleCheck::Stale;
                };
                let handle_holds =
                    token == claim.token || (token > claim.token && visible_at > now);
                if handle_holds
                    && received.is_some_and(|r| v + (now - r) / 1000 * 1000 > MAX_VISIBILITY_MS)
                {
                    HandleCheck::BeyondLimit
                } else if visible_at <= now {
                    HandleCheck::NotInFlight
                } else {
                    HandleCheck::Stale
                }
            })
            .collect())
    }

    /// [`PgStore::delete`] only while the message is in flight under `claim` (FIFO: a handle
    /// whose visibility ended no longer deletes).
    pub async fn delete_in_flight(
        &self,
        q: &QueueRow,
        claim: Claim,
    ) -> Result<HandleCheck, PgError> {
        retry!(self.try_change(q, claim, None, true))
    }

    /// Sets the message's visibility deadline to now + `visibility_ms` if `claim` is its latest
    /// receive, or an earlier one while the message is in flight (as the embedded store does):
    /// in flight, or visible again and not received since (AWS accepts the latest
    /// handle after its visibility ended; the message is hidden again, a FIFO group held again).
    pub async fn change_visibility(
        &self,
        q: &QueueRow,
        claim: Claim,
        visibility_ms: i64,
    ) -> Result<HandleCheck, PgError> {
        retry!(self.try_change(q, claim, Some(visibility_ms), false))
    }

    async fn try_change(
        &self,
        q: &QueueRow,
        claim: Claim,
        visibility_ms: Option<i64>,
        in_flight_only: bool,
    ) -> Result<HandleCheck, PgError> {
        let mut c = self.pool.get().await;
        let tx = c.transaction().await?;
        let row = match visibility_ms {
            None => {
                tx.query_opt(
                    &format!(
                        "DELETE FROM redrive_messages
                         WHERE queue_uid = $1 AND part = $2 AND seq = $3
                           AND (receipt_token = $4 OR (NOT $5 AND receipt_token > $4))
                           AND (NOT $5 OR visible_at_ms > {NOW})
                         RETURNING group_id"
                    ),
                    &[
                        &q.uid,
                        &claim.part,
                        &claim.seq,
                        &claim.token,
                        &in_flight_only,
                    ],
                )
                .await?
            }
            Some(v) => {
                tx.query_opt(
                    &format!(
                        "UPDATE redrive_messages SET visible_at_ms = {NOW} + $5
                         WHERE queue_uid = $1 AND part = $2 AND seq = $3
                           AND (receipt_token = $4
                                OR (receipt_token > $4 AND visible_at_ms > {NOW}))
                           AND (received_ms IS NULL
                                OR $5 + ({NOW} - received_ms) / 1000 * 1000 <= {MAX_VISIBILITY_MS})
                         RETURNING group_id"
                    ),
                    &[&q.uid, &claim.part, &claim.seq, &claim.token, &v],
                )
                .await?
            }
        };
        let Some(row) = row else {
            // The handle's own condition without the limit: met, so the limit refused it.
            if let Some(v) = visibility_ms
                && tx
                    .query_opt(
                        &format!(
                            "SELECT 1 FROM redrive_messages
                             WHERE queue_uid = $1 AND part = $2 AND seq = $3
                               AND (receipt_token = $4
                                    OR (receipt_token > $4 AND visible_at_ms > {NOW}))
                               AND $5 + ({NOW} - received_ms) / 1000 * 1000 > {MAX_VISIBILITY_MS}"
                        ),
                        &[&q.uid, &claim.part, &claim.seq, &claim.token, &v],
                    )
                    .await?
                    .is_some()
            {
                return Ok(HandleCheck::BeyondLimit);
            }
            if visibility_ms.is_some()
                && tx
                    .query_opt(
                        &format!(
                            "SELECT 1 FROM redrive_messages
                             WHERE queue_uid = $1 AND part = $2 AND seq = $3
                               AND visible_at_ms <= {NOW}"
                        ),
                        &[&q.uid, &claim.part, &claim.seq],
                    )
                    .await?
                    .is_some()
            {
                return Ok(HandleCheck::NotInFlight);
            }
            return Ok(HandleCheck::Stale);
        };
        let group: Option<String> = row.get(0);
        if group.is_some() || visibility_ms == Some(0) {
            // Something may have become receivable: a freed group or a message made visible.
            tx.execute("SELECT pg_notify($1, '')", &[&channel(q.uid)])
                .await?;
        }
        if let Some(g) = group {
            // The hold lasts as long as the group's latest in-flight deadline.
            tx.execute(
                &format!(
                    "UPDATE redrive_fifo_groups SET locked_until_ms = coalesce(
                        (SELECT max(visible_at_ms) FROM redrive_messages
                         WHERE queue_uid = $1 AND group_id = $2 AND receive_count > 0
                           AND visible_at_ms > {NOW_ONCE}), 0)
                     WHERE queue_uid = $1 AND group_id = $2"
                ),
                &[&q.uid, &g],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(HandleCheck::Applied)
    }

    /// One step of a move task or replay: up to `max` visible messages of `src` move to `dst`
    /// as new messages there (fresh sequence, visible now, receive state reset; id, body and
    /// attributes kept), and `progress` (given the number moved) is written as a document —
    /// all in one transaction, so progress never disagrees with what moved. Messages another
    /// step holds are skipped. Returns the moved message ids.
    pub async fn transfer(
        &self,
        src: &QueueRow,
        dst: &QueueRow,
        max: usize,
        progress: &(dyn Fn(usize) -> Document + Sync),
    ) -> Result<Vec<Uuid>, PgError> {
        retry!(self.try_transfer(src, dst, max, progress))
    }

    async fn try_transfer(
        &self,
        src: &QueueRow,
        dst: &QueueRow,
        max: usize,
        progress: &(dyn Fn(usize) -> Document + Sync),
    ) -> Result<Vec<Uuid>, PgError> {
        let mut c = self.pool.get().await;
        let tx = c.transaction().await?;
        let rows = tx
            .query(
                &format!(
                    "WITH now AS MATERIALIZED (SELECT {NOW} AS t),
                     c AS (
                        SELECT m.part, m.seq FROM redrive_messages m
                        WHERE m.queue_uid = $1 AND m.visible_at_ms <= (SELECT t FROM now)
                        ORDER BY m.visible_at_ms, m.seq
                        LIMIT $2
                        FOR UPDATE OF m SKIP LOCKED
                     ),
                     n AS (SELECT c.part, c.seq, nextval('redrive_message_seq') AS s FROM c)
                     UPDATE redrive_messages m SET
                        queue_uid = $3,
                        seq = n.s,
                        part = (n.s % $4)::smallint,
                        visible_at_ms = (SELECT t FROM now),
                        receive_count = 0,
                        receipt_token = 0,
                        first_received_ms = NULL,
                        received_ms = NULL,
                        sent_ms = (SELECT t FROM now)
                     FROM n
                     WHERE m.queue_uid = $1 AND m.part = n.part AND m.seq = n.seq
                       AND m.visible_at_ms + 0 <= (SELECT t FROM now)
                     RETURNING m.message_id"
                ),
                &[
                    &src.uid,
                    &(max as i64),
                    &dst.uid,
                    &i64::from(dst.partitions),
                ],
            )
            .await?;
        let ids: Vec<Uuid> = rows.iter().map(|r| r.get(0)).collect();
        let doc = progress(ids.len());
        tx.execute(
            "INSERT INTO redrive_documents (kind, key, value) VALUES ($1, $2, $3)
             ON CONFLICT (kind, key) DO UPDATE SET value = EXCLUDED.value",
            &[&doc.kind, &doc.key, &doc.value],
        )
        .await?;
        if !ids.is_empty() {
            tx.execute("SELECT pg_notify($1, '')", &[&channel(dst.uid)])
                .await?;
        }
        tx.commit().await?;
        Ok(ids)
    }

    /// Every document of `kind`, by key.
    pub async fn documents(&self, kind: &str) -> Result<Vec<Document>, PgError> {
        let c = self.pool.get().await;
        let rows = c
            .query(
                "SELECT key, value FROM redrive_documents WHERE kind = $1 ORDER BY key",
                &[&kind],
            )
            .await?;
        Ok(documents_of(kind, &rows))
    }

    /// A read-modify-write of every document of `kind`, one at a time across servers (under
    /// the lock row `('lock', kind)`): `edit` sees them all and answers what to write; an
    /// `Err` from it writes nothing and is returned inside. The documents are read `FOR
    /// UPDATE`: a step holding one (writing its progress) commits first and the edit sees that
    /// progress, never writing back a stale copy over it (a cancel racing a step).
    pub async fn edit_documents<E>(
        &self,
        kind: &str,
        edit: &(dyn Fn(Vec<Document>) -> Result<DocumentEdit, E> + Sync),
    ) -> Result<Result<(), E>, PgError> {
        retry!(self.try_edit_documents(kind, edit))
    }

    async fn try_edit_documents<E>(
        &self,
        kind: &str,
        edit: &(dyn Fn(Vec<Document>) -> Result<DocumentEdit, E> + Sync),
    ) -> Result<Result<(), E>, PgError> {
        let mut c = self.pool.get().await;
        let tx = c.transaction().await?;
        let docs = lock_documents(&tx, kind).await?;
        let change = match edit(docs) {
            Ok(change) => change,
            Err(e) => return Ok(Err(e)),
        };
        for (key, value) in &change.put {
            tx.execute(
                "INSERT INTO redrive_documents (kind, key, value) VALUES ($1, $2, $3)
                 ON CONFLICT (kind, key) DO UPDATE SET value = EXCLUDED.value",
                &[&kind, key, value],
            )
            .await?;
        }
        for key in &change.delete {
            tx.execute(
                "DELETE FROM redrive_documents WHERE kind = $1 AND key = $2",
                &[&kind, key],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(Ok(()))
    }

    /// One step of a move task, in one transaction fenced by the task's lease (`lease`, held by
    /// `holder` and not expired: its row stays locked until commit, so nobody takes it over
    /// mid-step): if the task's document (`kind`, `key`) is `running`, up to `max` visible
    /// messages of `src` (oldest first) move where `route` says, each a new message there
    /// (fresh sequence, receive state and dead-letter source cleared, visible after the
    /// route's delay; group, body and system attributes kept), and the document becomes
    /// `progress(document, moved)`. Messages another claim holds are skipped; the claim
    /// condition is repeated in each `UPDATE`, so a message moves once.
    #[allow(clippy::too_many_arguments)]
    pub async fn move_step(
        &self,
        lease: &str,
        holder: &str,
        (kind, key): (&str, &str),
        src: &QueueRow,
        max: usize,
        running: &(dyn Fn(&serde_json::Value) -> bool + Sync),
        route: &(dyn Fn(&StepCandidate) -> Option<StepMove> + Sync),
        progress: &(dyn Fn(&serde_json::Value, usize) -> serde_json::Value + Sync),
    ) -> Result<StepResult, PgError> {
        retry!(self.try_move_step(
            lease,
            holder,
            (kind, key),
            src,
            max,
            running,
            route,
            progress
        ))
    }

    #[allow(clippy::too_many_arguments)]
    async fn try_move_step(
        &self,
        lease: &str,
        holder: &str,
        (kind, key): (&str, &str),
        src: &QueueRow,
        max: usize,
        running: &(dyn Fn(&serde_json::Value) -> bool + Sync),
        route: &(dyn Fn(&StepCandidate) -> Option<StepMove> + Sync),
        progress: &(dyn Fn(&serde_json::Value, usize) -> serde_json::Value + Sync),
    ) -> Result<StepResult, PgError> {
        let mut c = self.pool.get().await;
        let tx = c.transaction().await?;
        let now: i64 = tx.query_one(&format!("SELECT {NOW}"), &[]).await?.get(0);
        if tx
            .query_opt(
                "SELECT 1 FROM redrive_leases
                 WHERE name = $1 AND holder = $2 AND expires_ms > $3 FOR UPDATE",
                &[&lease, &holder, &now],
            )
            .await?
            .is_none()
        {
            return Ok(StepResult::LeaseLost);
        }
        let Some(doc) = tx
            .query_opt(
                "SELECT value FROM redrive_documents WHERE kind = $1 AND key = $2 FOR UPDATE",
                &[&kind, &key],
            )
            .await?
            .map(|r| r.get::<_, serde_json::Value>(0))
        else {
            return Ok(StepResult::Gone);
        };
        if !running(&doc) {
            return Ok(StepResult::NotRunning(doc));
        }
        let rows = tx
            .query(
                "SELECT part, seq, message_id, group_id, attributes, dead_letter_source
                 FROM redrive_messages
                 WHERE queue_uid = $1 AND visible_at_ms <= $2
                 ORDER BY seq LIMIT $3
                 FOR UPDATE SKIP LOCKED",
                &[&src.uid, &now, &(max as i64)],
            )
            .await?;
        let mut stop = None;
        if rows.is_empty() {
            // SKIP LOCKED proves nothing: empty only if nothing visible is there at all.
            let any = tx
                .query_opt(
                    "SELECT 1 FROM redrive_messages WHERE queue_uid = $1 AND visible_at_ms <= $2
                     LIMIT 1",
                    &[&src.uid, &now],
                )
                .await?;
            if any.is_none() {
                stop = Some(StepStop::Empty);
            }
        }
        let mut moved = 0;
        let mut live: HashMap<i64, bool> = HashMap::new();
        let mut notify: Vec<i64> = Vec::new();
        for r in &rows {
            let part: i16 = r.get(0);
            let seq: i64 = r.get(1);
            let candidate = StepCandidate {
                message_id: r.get(2),
                group_id: r.get(3),
                attributes: r.get(4),
                dead_letter_source: r.get(5),
            };
            let Some(to) = route(&candidate) else {
                stop = Some(StepStop::Unrouted(candidate.dead_letter_source));
                break;
            };
            let dst = &to.queue;
            let exists = match live.get(&dst.uid) {
                Some(e) => *e,
                None => {
                    let e = tx
                        .query_opt(
                            "SELECT 1 FROM redrive_queues WHERE uid = $1 FOR SHARE",
                            &[&dst.uid],
                        )
                        .await?
                        .is_some();
                    live.insert(dst.uid, e);
                    e
                }
            };
            if !exists {
                stop = Some(StepStop::Unrouted(candidate.dead_letter_source));
                break;
            }
            if let Some(g) = &candidate.group_id
                && dst.fifo
            {
                tx.execute(
                    "INSERT INTO redrive_fifo_groups (queue_uid, group_id) VALUES ($1, $2)
                     ON CONFLICT DO NOTHING",
                    &[&dst.uid, g],
                )
                .await?;
            }
            let n = tx
                .execute(
                    "UPDATE redrive_messages SET
                        queue_uid = $4,
                        seq = n.s,
                        part = (n.s % $5)::smallint,
                        visible_at_ms = $6 + $7,
                        message_id = $8,
                        attributes = $9,
                        receive_count = 0,
                        receipt_token = 0,
                        first_received_ms = NULL,
                        received_ms = NULL,
                        sent_ms = $6,
                        dead_letter_source = NULL,
                        dead_lettered_ms = NULL
                     FROM (SELECT nextval('redrive_message_seq') AS s) n
                     WHERE queue_uid = $1 AND part = $2 AND seq = $3 AND visible_at_ms <= $6",
                    &[
                        &src.uid,
                        &part,
                        &seq,
                        &dst.uid,
                        &i64::from(dst.partitions),
                        &now,
                        &to.delay_ms,
                        &to.message_id,
                        &to.attributes,
                    ],
                )
                .await?;
            if n == 1 {
                moved += 1;
                if !notify.contains(&dst.uid) {
                    notify.push(dst.uid);
                }
            }
        }
        let doc = progress(&doc, moved);
        tx.execute(
            "UPDATE redrive_documents SET value = $3 WHERE kind = $1 AND key = $2",
            &[&kind, &key, &doc],
        )
        .await?;
        for uid in notify {
            tx.execute("SELECT pg_notify($1, '')", &[&channel(uid)])
                .await?;
        }
        tx.commit().await?;
        Ok(StepResult::Moved { moved, doc, stop })
    }

    /// The documents of `kind` whose key starts with `prefix`, by key.
    pub async fn documents_with_prefix(
        &self,
        kind: &str,
        prefix: &str,
    ) -> Result<Vec<Document>, PgError> {
        let c = self.pool.get().await;
        let rows = c
            .query(
                "SELECT key, value FROM redrive_documents
                 WHERE kind = $1 AND left(key, length($2)) = $2 ORDER BY key",
                &[&kind, &prefix],
            )
            .await?;
        Ok(documents_of(kind, &rows))
    }

    /// [`PgStore::edit_documents`] whose answer may write documents of any kind, and delete
    /// them by key prefix, in the same transaction.
    pub async fn edit_documents_with<E>(
        &self,
        kind: &str,
        edit: &(dyn Fn(Vec<Document>) -> Result<DocumentsEdit, E> + Sync),
    ) -> Result<Result<(), E>, PgError> {
        retry!(self.try_edit_documents_with(kind, edit))
    }

    async fn try_edit_documents_with<E>(
        &self,
        kind: &str,
        edit: &(dyn Fn(Vec<Document>) -> Result<DocumentsEdit, E> + Sync),
    ) -> Result<Result<(), E>, PgError> {
        let mut c = self.pool.get().await;
        let tx = c.transaction().await?;
        let docs = lock_documents(&tx, kind).await?;
        let change = match edit(docs) {
            Ok(change) => change,
            Err(e) => return Ok(Err(e)),
        };
        for (kind, prefix) in &change.delete_prefixed {
            tx.execute(
                "DELETE FROM redrive_documents WHERE kind = $1 AND left(key, length($2)) = $2",
                &[kind, prefix],
            )
            .await?;
        }
        for (kind, key) in &change.delete {
            tx.execute(
                "DELETE FROM redrive_documents WHERE kind = $1 AND key = $2",
                &[kind, key],
            )
            .await?;
        }
        for d in &change.put {
            tx.execute(
                "INSERT INTO redrive_documents (kind, key, value) VALUES ($1, $2, $3)
                 ON CONFLICT (kind, key) DO UPDATE SET value = EXCLUDED.value",
                &[&d.kind, &d.key, &d.value],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(Ok(()))
    }

    /// One step of a replay: one selected message, in one transaction fenced by the replay's
    /// lease (as [`PgStore::move_step`]). If the replay's document (`kind`, `key`) is `running`
    /// and the message (`seq` in `src`) is there and visible, `rewrite` says where it goes and
    /// as what (new id, body and attributes; group kept, receive state and dead-letter source
    /// cleared) and it moves; `record` answers the documents to write for what was found
    /// (the replay's own first: progress, move log), written in the same transaction.
    #[allow(clippy::too_many_arguments)]
    pub async fn replay_step(
        &self,
        lease: &str,
        holder: &str,
        (kind, key): (&str, &str),
        src: &QueueRow,
        seq: i64,
        running: &(dyn Fn(&serde_json::Value) -> bool + Sync),
        rewrite: &(dyn Fn(&BrowseRow, i64) -> Result<StepMove, String> + Sync),
        record: &(dyn Fn(&serde_json::Value, &ReplayFound, i64) -> Vec<Document> + Sync),
    ) -> Result<ReplayStepResult, PgError> {
        retry!(self.try_replay_step(
            lease,
            holder,
            (kind, key),
            src,
            seq,
            running,
            rewrite,
            record
        ))
    }

    #[allow(clippy::too_many_arguments)]
    async fn try_replay_step(
        &self,
        lease: &str,
        holder: &str,
        (kind, key): (&str, &str),
        src: &QueueRow,
        seq: i64,
        running: &(dyn Fn(&serde_json::Value) -> bool + Sync),
        rewrite: &(dyn Fn(&BrowseRow, i64) -> Result<StepMove, String> + Sync),
        record: &(dyn Fn(&serde_json::Value, &ReplayFound, i64) -> Vec<Document> + Sync),
    ) -> Result<ReplayStepResult, PgError> {
        let mut c = self.pool.get().await;
        let tx = c.transaction().await?;
        let now: i64 = tx.query_one(&format!("SELECT {NOW}"), &[]).await?.get(0);
        if tx
            .query_opt(
                "SELECT 1 FROM redrive_leases
                 WHERE name = $1 AND holder = $2 AND expires_ms > $3 FOR UPDATE",
                &[&lease, &holder, &now],
            )
            .await?
            .is_none()
        {
            return Ok(ReplayStepResult::LeaseLost);
        }
        let Some(doc) = tx
            .query_opt(
                "SELECT value FROM redrive_documents WHERE kind = $1 AND key = $2 FOR UPDATE",
                &[&kind, &key],
            )
            .await?
            .map(|r| r.get::<_, serde_json::Value>(0))
        else {
            return Ok(ReplayStepResult::Gone);
        };
        if !running(&doc) {
            return Ok(ReplayStepResult::NotRunning(doc));
        }
        let part = (seq % i64::from(src.partitions.max(1))) as i16;
        let row = tx
            .query_opt(
                "SELECT m.seq, m.message_id, m.group_id, m.body, m.attributes,
                        m.receive_count, m.sent_ms, m.first_received_ms, m.visible_at_ms,
                        m.dead_letter_source, m.dead_lettered_ms
                 FROM redrive_messages m
                 WHERE m.queue_uid = $1 AND m.part = $2 AND m.seq = $3
                 FOR UPDATE",
                &[&src.uid, &part, &seq],
            )
            .await?
            .map(|r| BrowseRow {
                seq: r.get(0),
                message_id: r.get(1),
                group_id: r.get(2),
                body: r.get(3),
                attributes: r.get(4),
                receive_count: r.get(5),
                sent_ms: r.get(6),
                first_received_ms: r.get(7),
                visible_at_ms: r.get(8),
                dead_letter_source: r.get(9),
                dead_lettered_ms: r.get(10),
                state: 0,
                group_blocked: false,
            });
        let mut notify = None;
        let found = match row {
            None => ReplayFound::Gone,
            Some(m) if m.visible_at_ms > now => ReplayFound::NotVisible,
            Some(m) => match rewrite(&m, now) {
                Err(reason) => ReplayFound::Failed(reason),
                Ok(to) => {
                    let dst = &to.queue;
                    let exists = tx
                        .query_opt(
                            "SELECT 1 FROM redrive_queues WHERE uid = $1 FOR SHARE",
                            &[&dst.uid],
                        )
                        .await?
                        .is_some();
                    if !exists {
                        ReplayFound::Failed(format!("destination {} no longer exists", dst.name))
                    } else {
                        if let Some(g) = &m.group_id
                            && dst.fifo
                        {
                            tx.execute(
                                "INSERT INTO redrive_fifo_groups (queue_uid, group_id)
                                 VALUES ($1, $2) ON CONFLICT DO NOTHING",
                                &[&dst.uid, g],
                            )
                            .await?;
                        }
                        tx.execute(
                            "UPDATE redrive_messages SET
                                queue_uid = $4,
                                seq = n.s,
                                part = (n.s % $5)::smallint,
                                visible_at_ms = $6::bigint + $7::bigint,
                                message_id = $8,
                                attributes = $9,
                                body = $10,
                                receive_count = 0,
                                receipt_token = 0,
                                first_received_ms = NULL,
                                received_ms = NULL,
                                sent_ms = $6,
                                dead_letter_source = NULL,
                                dead_lettered_ms = NULL
                             FROM (SELECT nextval('redrive_message_seq') AS s) n
                             WHERE queue_uid = $1 AND part = $2 AND seq = $3",
                            &[
                                &src.uid,
                                &part,
                                &seq,
                                &dst.uid,
                                &i64::from(dst.partitions),
                                &now,
                                &to.delay_ms,
                                &to.message_id,
                                &to.attributes,
                                &to.body.as_ref().unwrap_or(&m.body),
                            ],
                        )
                        .await?;
                        notify = Some(dst.uid);
                        ReplayFound::Moved {
                            from_id: m.message_id,
                            to_id: to.message_id,
                            destination_uid: dst.uid,
                        }
                    }
                }
            },
        };
        let docs = record(&doc, &found, now);
        let mut written = doc;
        for d in &docs {
            tx.execute(
                "INSERT INTO redrive_documents (kind, key, value) VALUES ($1, $2, $3)
                 ON CONFLICT (kind, key) DO UPDATE SET value = EXCLUDED.value",
                &[&d.kind, &d.key, &d.value],
            )
            .await?;
            if d.kind == kind && d.key == key {
                written = d.value.clone();
            }
        }
        if let Some(uid) = notify {
            tx.execute("SELECT pg_notify($1, '')", &[&channel(uid)])
                .await?;
        }
        tx.commit().await?;
        Ok(ReplayStepResult::Done {
            found,
            doc: written,
        })
    }

    /// A document, if stored.
    pub async fn document(&self, kind: &str, key: &str) -> Result<Option<Document>, PgError> {
        let c = self.pool.get().await;
        Ok(c.query_opt(
            "SELECT value FROM redrive_documents WHERE kind = $1 AND key = $2",
            &[&kind, &key],
        )
        .await?
        .map(|r| Document {
            kind: kind.to_string(),
            key: key.to_string(),
            value: r.get(0),
        }))
    }

    /// Appends `doc` (a key of its own: written without the kind's lock) and deletes the
    /// documents of its kind whose keys sort before `drop_before`, in one transaction.
    pub async fn append_document(&self, doc: &Document, drop_before: &str) -> Result<(), PgError> {
        retry!(self.try_append_document(doc, drop_before))
    }

    async fn try_append_document(&self, doc: &Document, drop_before: &str) -> Result<(), PgError> {
        let mut c = self.pool.get().await;
        let tx = c.transaction().await?;
        tx.execute(
            "INSERT INTO redrive_documents (kind, key, value) VALUES ($1, $2, $3)
             ON CONFLICT (kind, key) DO UPDATE SET value = EXCLUDED.value",
            &[&doc.kind, &doc.key, &doc.value],
        )
        .await?;
        tx.execute(
            "DELETE FROM redrive_documents WHERE kind = $1 AND key < $2",
            &[&doc.kind, &drop_before],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// (visible, in flight or delayed) at the database's now.
    pub async fn counts(&self, q: &QueueRow) -> Result<(i64, i64), PgError> {
        let c = self.pool.get().await;
        let r = c
            .query_one(
                &format!(
                    "WITH now AS MATERIALIZED (SELECT {NOW} AS t)
                     SELECT count(*) FILTER (WHERE visible_at_ms <= (SELECT t FROM now)),
                            count(*) FILTER (WHERE visible_at_ms > (SELECT t FROM now))
                     FROM redrive_messages WHERE queue_uid = $1"
                ),
                &[&q.uid],
            )
            .await?;
        Ok((r.get(0), r.get(1)))
    }

    /// The queue's in-flight messages (received, not visible again) at the database's now,
    /// counted up to `cap`, and, when the count reached it, whether a message is visible.
    /// The count walks the ready index's range `visible_at_ms > now` of every partition:
    /// in-flight and delayed messages, at most `cap` of the former (1,000,000 delayed
    /// messages: ~200 ms on this machine). The visibility probe, one index descent per
    /// partition, runs only at the cap.
    pub async fn in_flight(&self, q: &QueueRow, cap: i64) -> Result<(i64, bool), PgError> {
        let parts: Vec<i16> = (0..q.partitions).collect();
        let c = self.pool.get().await;
        let r = c
            .query_one(
                &format!(
                    "WITH now AS MATERIALIZED (SELECT {NOW} AS t)
                     SELECT (SELECT count(*) FROM (
                                SELECT 1 FROM redrive_messages m
                                WHERE m.queue_uid = $1 AND m.part = ANY($2)
                                  AND m.visible_at_ms > (SELECT t FROM now)
                                  AND m.receive_count > 0
                                LIMIT $3) f),
                            (SELECT t FROM now)"
                ),
                &[&q.uid, &parts, &cap],
            )
            .await?;
        let count: i64 = r.get(0);
        if count < cap {
            return Ok((count, false));
        }
        let now: i64 = r.get(1);
        let visible: bool = c
            .query_one(
                "SELECT EXISTS (
                    SELECT 1 FROM unnest($2::smallint[]) p(part),
                    LATERAL (SELECT 1 FROM redrive_messages m
                             WHERE m.queue_uid = $1 AND m.part = p.part
                               AND m.visible_at_ms <= $3
                             LIMIT 1) v)",
                &[&q.uid, &parts, &now],
            )
            .await?
            .get(0);
        Ok((count, visible))
    }

    /// `(visible, in flight, delayed, oldest, now)` at the database's now: a message not
    /// visible counts in flight once received, delayed before. `oldest` is when the oldest
    /// message counted for `ApproximateAgeOfOldestMessage` was sent (dead-lettered, in a DLQ),
    /// by AWS's rules as the embedded store applies them: delayed messages are not counted,
    /// nor, on a standard queue, messages received 3 or more times.
    pub async fn stats(&self, q: &QueueRow) -> Result<(i64, i64, i64, Option<i64>, i64), PgError> {
        let c = self.pool.get().await;
        let r = c
            .query_one(
                &format!("{STATS_SELECT} FROM redrive_messages WHERE queue_uid = $1"),
                &[&q.uid, &q.fifo],
            )
            .await?;
        Ok((r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
    }

    /// A fair queue's tenant gauges at the database's now: the noisy tenants (the receive's
    /// rule, [`PgStore::noisy_tenants`]) and, over the messages of the other tenants (a
    /// `MessageGroupId`, not noisy), the visible, in-flight and delayed counts and the send (or
    /// dead-letter) time of the oldest one that is not delayed. Zeros on a FIFO queue or a
    /// standard queue without groups.
    pub async fn quiet_group_stats(
        &self,
        q: &QueueRow,
    ) -> Result<(i64, i64, i64, i64, Option<i64>, i64), PgError> {
        let noisy = self.noisy_tenants(q).await?;
        let c = self.pool.get().await;
        let r = c
            .query_one(
                &format!(
                    "{STATS_SELECT} FROM redrive_messages
                     WHERE queue_uid = $1 AND NOT $2 AND group_id IS NOT NULL
                       AND NOT (group_id = ANY($3))"
                ),
                &[&q.uid, &q.fifo, &noisy],
            )
            .await?;
        Ok((
            noisy.len() as i64,
            r.get(0),
            r.get(1),
            r.get(2),
            r.get(3),
            r.get(4),
        ))
    }

    /// The FIFO groups of a queue holding a message in flight at the database's now.
    pub async fn groups_in_flight(&self, q: &QueueRow) -> Result<i64, PgError> {
        let c = self.pool.get().await;
        let r = c
            .query_one(
                &format!(
                    "SELECT count(DISTINCT group_id) FROM redrive_messages
                     WHERE queue_uid = $1 AND group_id IS NOT NULL
                       AND receive_count > 0 AND visible_at_ms > {NOW_ONCE}"
                ),
                &[&q.uid],
            )
            .await?;
        Ok(r.get(0))
    }

    /// Adds each row's counters to its queue-minute (created if needed) and, where given,
    /// sets its gauges: one transaction, rows in key order (two servers adding to the same
    /// minutes never deadlock).
    pub async fn add_minutes(&self, rows: &[MinuteRow]) -> Result<(), PgError> {
        let mut rows = rows.to_vec();
        rows.sort_by_key(|r| (r.queue_uid, r.minute));
        retry!(self.try_add_minutes(&rows))
    }

    async fn try_add_minutes(&self, rows: &[MinuteRow]) -> Result<(), PgError> {
        let cols: Vec<&str> = MINUTE_COUNTERS
            .iter()
            .chain(&MINUTE_GAUGES)
            .copied()
            .collect();
        let params: Vec<String> = (3..3 + cols.len()).map(|i| format!("${i}")).collect();
        let adds: Vec<String> = MINUTE_COUNTERS
            .iter()
            .map(|c| format!("{c} = h.{c} + EXCLUDED.{c}"))
            .chain(
                MINUTE_GAUGES
                    .iter()
                    .map(|g| format!("{g} = COALESCE(EXCLUDED.{g}, h.{g})")),
            )
            .collect();
        let sql = format!(
            "INSERT INTO redrive_minute_history AS h (queue_uid, minute, {})
             VALUES ($1, $2, {})
             ON CONFLICT (queue_uid, minute) DO UPDATE SET {}",
            cols.join(", "),
            params.join(", "),
            adds.join(", ")
        );
        let mut c = self.pool.get().await;
        let tx = c.transaction().await?;
        for r in rows {
            let gauges: [Option<i64>; 5] = match r.gauges {
                Some(g) => g.map(Some),
                None => [None; 5],
            };
            type Param<'a> = &'a (dyn tokio_postgres::types::ToSql + Sync);
            let mut p: Vec<Param> = vec![&r.queue_uid, &r.minute];
            p.extend(r.counters.iter().map(|v| v as Param));
            p.extend(gauges.iter().map(|v| v as Param));
            tx.execute(&sql, &p).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// A queue's minutes in `[from, to)` (epoch minutes), oldest first.
    pub async fn minutes(
        &self,
        queue_uid: i64,
        from: i64,
        to: i64,
    ) -> Result<Vec<MinuteRow>, PgError> {
        let c = self.pool.get().await;
        let cols: Vec<&str> = MINUTE_COUNTERS
            .iter()
            .chain(&MINUTE_GAUGES)
            .copied()
            .collect();
        let rows = c
            .query(
                &format!(
                    "SELECT minute, {} FROM redrive_minute_history
                     WHERE queue_uid = $1 AND minute >= $2 AND minute < $3 ORDER BY minute",
                    cols.join(", ")
                ),
                &[&queue_uid, &from, &to],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| {
                let counters: [i64; 10] = std::array::from_fn(|i| r.get(1 + i));
                let gauges: [Option<i64>; 5] = std::array::from_fn(|i| r.get(11 + i));
                MinuteRow {
                    queue_uid,
                    minute: r.get(0),
                    counters,
                    // Sampled together: one NULL means the minute had no sample.
                    gauges: gauges
                        .iter()
                        .all(Option::is_some)
                        .then(|| gauges.map(Option::unwrap_or_default)),
                }
            })
            .collect())
    }

    /// Drops the minute history before epoch minute `before`, queue by queue (by the primary
    /// key), and every minute of queues that no longer exist. Returns the rows dropped.
    pub async fn drop_minutes(&self, before: i64) -> Result<u64, PgError> {
        let c = self.pool.get().await;
        let mut n = 0;
        for q in c
            .query("SELECT uid FROM redrive_queues ORDER BY uid", &[])
            .await?
        {
            let uid: i64 = q.get(0);
            n += c
                .execute(
                    "DELETE FROM redrive_minute_history WHERE queue_uid = $1 AND minute < $2",
                    &[&uid, &before],
                )
                .await?;
        }
        n += c
            .execute(
                "DELETE FROM redrive_minute_history h
                 WHERE NOT EXISTS (SELECT 1 FROM redrive_queues q WHERE q.uid = h.queue_uid)",
                &[],
            )
            .await?;
        Ok(n)
    }

    /// Up to `limit` of the queue's messages with `seq > after`, in sequence order, as they
    /// are: read without a lock and without changing anything (no receive is counted, no
    /// visibility changes). `state`: only messages visible (0), delayed (1) or in flight (2)
    /// at the database's now. Also answers that now.
    pub async fn browse(
        &self,
        q: &QueueRow,
        after: i64,
        state: Option<i16>,
        limit: usize,
    ) -> Result<(Vec<BrowseRow>, i64), PgError> {
        let c = self.pool.get().await;
        let now: i64 = c.query_one(&format!("SELECT {NOW}"), &[]).await?.get(0);
        let state_of = "CASE WHEN m.visible_at_ms <= $2 THEN 0::smallint
                             WHEN m.receive_count > 0 THEN 2::smallint ELSE 1::smallint END";
        let rows = c
            .query(
                &format!(
                    "SELECT m.seq, m.message_id, m.group_id, m.body, m.attributes,
                            m.receive_count, m.sent_ms, m.first_received_ms, m.visible_at_ms,
                            m.dead_letter_source, m.dead_lettered_ms, {state_of},
                            COALESCE((SELECT g.locked_until_ms > $2 FROM redrive_fifo_groups g
                                      WHERE $5 AND g.queue_uid = m.queue_uid
                                        AND g.group_id = m.group_id), false)
                     FROM redrive_messages m
                     WHERE m.queue_uid = $1 AND m.seq > $3
                       AND ($4::smallint IS NULL OR {state_of} = $4)
                     ORDER BY m.seq LIMIT $6"
                ),
                &[&q.uid, &now, &after, &state, &q.fifo, &(limit as i64)],
            )
            .await?;
        Ok((
            rows.iter()
                .map(|r| BrowseRow {
                    seq: r.get(0),
                    message_id: r.get(1),
                    group_id: r.get(2),
                    body: r.get(3),
                    attributes: r.get(4),
                    receive_count: r.get(5),
                    sent_ms: r.get(6),
                    first_received_ms: r.get(7),
                    visible_at_ms: r.get(8),
                    dead_letter_source: r.get(9),
                    dead_lettered_ms: r.get(10),
                    state: r.get(11),
                    group_blocked: r.get(12),
                })
                .collect(),
            now,
        ))
    }

    /// `(visible, in flight, delayed, visible with a receive count of at least
    /// `max_receive_count`, oldest enqueue time)` at the database's now; the enqueue time of a
    /// dead-lettered message is when it was dead-lettered.
    pub async fn inspect(
        &self,
        q: &QueueRow,
        max_receive_count: Option<i32>,
    ) -> Result<(i64, i64, i64, i64, Option<i64>), PgError> {
        let c = self.pool.get().await;
        let r = c
            .query_one(
                &format!(
                    "WITH now AS MATERIALIZED (SELECT {NOW} AS t)
                     SELECT count(*) FILTER (WHERE visible_at_ms <= (SELECT t FROM now)),
                            count(*) FILTER (WHERE visible_at_ms > (SELECT t FROM now) AND receive_count > 0),
                            count(*) FILTER (WHERE visible_at_ms > (SELECT t FROM now) AND receive_count = 0),
                            count(*) FILTER (WHERE visible_at_ms <= (SELECT t FROM now)
                                               AND $2::int IS NOT NULL AND receive_count >= $2),
                            min(COALESCE(dead_lettered_ms, sent_ms))
                     FROM redrive_messages WHERE queue_uid = $1"
                ),
                &[&q.uid, &max_receive_count],
            )
            .await?;
        Ok((r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
    }

    /// Every queue, every Region.
    pub async fn all_queues(&self) -> Result<Vec<QueueRow>, PgError> {
        let c = self.pool.get().await;
        let rows = c
            .query("SELECT * FROM redrive_queues ORDER BY uid", &[])
            .await?;
        Ok(rows.iter().map(Self::row_to_queue).collect())
    }

    /// Deletes the queue's messages sent `retention_ms` or longer ago (the retention sweep; by
    /// the `(queue_uid, sent_ms)` index) and its expired deduplication entries. Returns the
    /// number of messages deleted.
    pub async fn expire(&self, q: &QueueRow, retention_ms: i64) -> Result<u64, PgError> {
        let c = self.pool.get().await;
        let n = c
            .execute(
                &format!(
                    "DELETE FROM redrive_messages
                     WHERE queue_uid = $1 AND sent_ms <= {NOW_ONCE} - $2"
                ),
                &[&q.uid, &retention_ms],
            )
            .await?;
        c.execute(
            &format!("DELETE FROM redrive_dedup WHERE queue_uid = $1 AND expires_ms <= {NOW_ONCE}"),
            &[&q.uid],
        )
        .await?;
        c.execute(
            &format!(
                "DELETE FROM redrive_receive_attempts WHERE queue_uid = $1 AND expires_ms <= {NOW_ONCE}"
            ),
            &[&q.uid],
        )
        .await?;
        Ok(n)
    }

    /// Takes or renews the lease `name` for `holder` until now + `ttl_ms`: `true` when held.
    pub async fn lease(&self, name: &str, holder: &str, ttl_ms: i64) -> Result<bool, PgError> {
        let c = self.pool.get().await;
        let row = c
            .query_opt(
                &format!(
                    "INSERT INTO redrive_leases (name, holder, expires_ms) VALUES ($1, $2, {NOW} + $3)
                     ON CONFLICT (name) DO UPDATE
                        SET holder = EXCLUDED.holder, expires_ms = EXCLUDED.expires_ms
                        WHERE redrive_leases.holder = EXCLUDED.holder
                           OR redrive_leases.expires_ms <= {NOW}
                     RETURNING holder"
                ),
                &[&name, &holder, &ttl_ms],
            )
            .await?;
        Ok(row.is_some())
    }

    /// Gives the lease up if `holder` has it.
    pub async fn release(&self, name: &str, holder: &str) -> Result<(), PgError> {
        let c = self.pool.get().await;
        c.execute(
            "DELETE FROM redrive_leases WHERE name = $1 AND holder = $2",
            &[&name, &holder],
        )
        .await?;
        Ok(())
    }
}
