//! [`RedbStore`]: the durable [`Store`], a redb database written by one group-commit thread.
//!
//! `submit` only enqueues the batch on a channel. The writer thread takes the first waiting
//! batch, drains whatever else is already queued (up to [`MAX_GROUP_MUTATIONS`]), applies all of
//! it in submission order in one write transaction, commits once and then completes every
//! batch's [`Durable`].
//!
//! **Failure:** if a commit fails, every batch of that group gets the error, the store refuses
//! every later batch, gives up its space reserve (so that deletes can still commit on a full
//! disk) and drops the database (redb refuses all use of a database after an I/O error). The
//! engine then calls [`Store::recover`]: the writer reopens the file, reads what is committed
//! and accepts writes again, and the engine rebuilds its memory from that snapshot, so memory is
//! never left ahead of the disk. While the reserve is missing the store reports low space; the
//! writer recreates the reserve as soon as the file system has room for it again.
//!
//! The file layout, record encodings and durability modes are described in
//! `docs/storage-format.md`.

use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use redb::{
    Database, Durability, ReadTransaction, ReadableDatabase, ReadableTable, ReadableTableMetadata,
    StorageBackend, Table, TableDefinition, WriteTransaction,
};
use tokio::sync::oneshot;

use crate::codec::{self, CodecError, MessageState, QuarantineEntry, table};
use crate::journal::{Journal, JournalFile};
use crate::{
    Durable, LoadPart, MessageRecord, Mutation, QuarantinedRecord, Snapshot, Store, StoreHealth,
};

/// Name of the database file inside the store directory.
pub const FILE_NAME: &str = "redrive.redb";

/// Format version written by this build (the `format_version` entry of the `meta` table).
/// Version 2: every value sealed with a CRC32C, messages split into `messages` and
/// `message_state`, byte-string keys, the `quarantine` table. Version 3: the message payload
/// (body and attributes) in its own table `message_body`, so a load reads only the headers and
/// states. Version 4: the write-ahead journal `redrive.journal` beside the file, whose entries of
/// epoch `meta.journal_epoch` are applied at open (tables unchanged). Version 5: no
/// `message_state` record for a message in the state its header implies
/// ([`MessageState::implied`]). Version 1 to 4 files are migrated at open.
pub const FORMAT_VERSION: u64 = 5;

/// A journal this long (bytes) is checkpointed into redb after the group that reached it.
pub const CHECKPOINT_BYTES: u64 = 32 << 20;

/// So many mutations waiting in the journal are checkpointed after the group that reached it.
pub const CHECKPOINT_MUTATIONS: usize = 200_000;

/// Mutations wait in the journal at most about this long before a checkpoint.
pub const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(1000);

/// Default budget of the payload cache: 64 MiB of bodies and attributes.
pub const DEFAULT_PAYLOAD_CACHE_BYTES: usize = 64 * 1024 * 1024;

/// Extension-document kinds left out of [`Store::load`]: read by key range when asked
/// (`Store::documents`, `Store::document_prefixes`). The minute history can hold millions of
/// documents that the engine never needs at startup.
pub const LAZY_DOCUMENT_KINDS: &[&str] = &["console-audit", "metrics-minute"];

/// A write transaction holds at most about this many mutations (a batch is never split, so
/// one large batch can exceed it).
pub const MAX_GROUP_MUTATIONS: usize = 4096;

/// Name of the space reserve inside the store directory (see [`StoreOptions::reserve_bytes`]).
pub const RESERVE_FILE_NAME: &str = "redrive.reserve";

/// Default size of the space reserve: 8 MiB.
pub const DEFAULT_RESERVE_BYTES: u64 = 8 * 1024 * 1024;

/// How often the writer looks at the free space while it is short.
const LOW_SPACE_CHECK: Duration = Duration::from_secs(1);

/// Options of [`RedbStore::open_with`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreOptions {
    pub mode: DurabilityMode,
    /// Size of a file kept beside the database and deleted when a write fails for lack of
    /// space, so that receives, deletes and purges can still commit and free space. 0 disables
    /// it. It is recreated once the file system has twice this much free.
    pub reserve_bytes: u64,
    /// Budget of the payload cache (bytes of bodies and attributes kept for reads).
    pub payload_cache_bytes: usize,
    /// `open` compacts the file (gives freed pages back) only if it is at most this large:
    /// compaction walks the whole file, so above this size it would make restart time grow
    /// with the data. Freed pages are reused by later writes either way; `RedbStore::compact`
    /// compacts on demand.
    pub compact_at_open_max_bytes: u64,
}

/// Default of [`StoreOptions::compact_at_open_max_bytes`]: 256 MiB.
pub const DEFAULT_COMPACT_AT_OPEN_MAX_BYTES: u64 = 256 * 1024 * 1024;

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            mode: DurabilityMode::Strict,
            reserve_bytes: DEFAULT_RESERVE_BYTES,
            payload_cache_bytes: DEFAULT_PAYLOAD_CACHE_BYTES,
            compact_at_open_max_bytes: DEFAULT_COMPACT_AT_OPEN_MAX_BYTES,
        }
    }
}

/// redb's page cache. The engine keeps every record in memory itself, so the cache only needs
/// the B-tree's upper levels and the pages being written.
const CACHE_BYTES: usize = 64 * 1024 * 1024;

// Format version 2. String key parts are stored as byte strings, so a damaged key is a
// verification failure instead of a panic in redb's `&str` decoding.
pub(crate) const META: TableDefinition<&str, u64> = TableDefinition::new(table::META);
pub(crate) const QUEUES: TableDefinition<u64, &[u8]> = TableDefinition::new(table::QUEUES);
pub(crate) const MESSAGES: TableDefinition<(u64, u64), &[u8]> =
    TableDefinition::new(table::MESSAGES);
/// The delivery state of each message in `messages`, under the same key.
pub(crate) const MESSAGE_STATE: TableDefinition<(u64, u64), &[u8]> =
    TableDefinition::new(table::MESSAGE_STATE);
/// Format 3: the payload (attributes, system attributes, body) of each message in `messages`.
pub(crate) const MESSAGE_BODY: TableDefinition<(u64, u64), &[u8]> =
    TableDefinition::new(table::MESSAGE_BODY);
pub(crate) const MOVE_TASKS: TableDefinition<&[u8], &[u8]> =
    TableDefinition::new(table::MOVE_TASKS);
pub(crate) const DEDUP: TableDefinition<(u64, &[u8]), &[u8]> = TableDefinition::new(table::DEDUP);
/// Extension documents `(kind, key) → JSON`.
pub(crate) const DOCUMENTS: TableDefinition<(&[u8], &[u8]), &[u8]> =
    TableDefinition::new(table::DOCUMENTS);
/// Records that failed verification: `(table, canonical key) → QuarantineEntry`.
pub(crate) const QUARANTINE: TableDefinition<(&[u8], &[u8]), &[u8]> =
    TableDefinition::new(table::QUARANTINE);

// The tables of format version 1 whose key types changed (read by the migration and verify).
pub(crate) const MOVE_TASKS_V1: TableDefinition<&str, &[u8]> =
    TableDefinition::new(table::MOVE_TASKS);
pub(crate) const DEDUP_V1: TableDefinition<(u64, &str), &[u8]> = TableDefinition::new(table::DEDUP);
pub(crate) const DOCUMENTS_V1: TableDefinition<(&str, &str), &[u8]> =
    TableDefinition::new(table::DOCUMENTS);

pub(crate) const META_FORMAT_VERSION: &str = "format_version";
pub(crate) const META_MAX_QUEUE_UID: &str = "max_queue_uid";
/// `codec::meta_checksum(format_version, max_queue_uid)`.
pub(crate) const META_CHECKSUM: &str = "checksum";
/// Format 4: the journal epoch whose entries an open replays, and its check value.
pub(crate) const META_JOURNAL_EPOCH: &str = "journal_epoch";
pub(crate) const META_JOURNAL_EPOCH_CHECK: &str = "journal_epoch_check";

/// Messages re-encoded per step of the version-1 migration (bounds its memory).
const MIGRATION_CHUNK: usize = 1024;

/// When a commit is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DurabilityMode {
    /// Every commit is fsync'd (`Durability::Immediate`) before any of its batches is
    /// acknowledged. Nothing acknowledged is lost on a crash or power failure.
    #[default]
    Strict,
    /// Commits skip the fsync (`Durability::None`) and are acknowledged at once; an fsync'd
    /// commit follows within `interval_ms` of the first unsynced one. A process kill or power
    /// failure can lose the writes acknowledged during the last interval (never part of a
    /// commit: the store still reopens in the state of some earlier commit).
    Relaxed { interval_ms: u64 },
}

impl DurabilityMode {
    /// Default interval of [`DurabilityMode::Relaxed`] when parsed from plain `relaxed`.
    pub const DEFAULT_RELAXED_INTERVAL_MS: u64 = 100;
}

impl FromStr for DurabilityMode {
    type Err = String;

    /// `strict`, `relaxed` (100 ms) or `relaxed:<ms>`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "strict" => Ok(DurabilityMode::Strict),
            "relaxed" => Ok(DurabilityMode::Relaxed {
                interval_ms: Self::DEFAULT_RELAXED_INTERVAL_MS,
            }),
            _ => match s.strip_prefix("relaxed:").map(str::parse::<u64>) {
                Some(Ok(interval_ms)) if interval_ms > 0 => {
                    Ok(DurabilityMode::Relaxed { interval_ms })
                }
                _ => Err(format!(
                    "invalid durability mode {s:?}: expected strict, relaxed or relaxed:<ms>"
                )),
            },
        }
    }
}

/// Errors of opening, loading or compacting a [`RedbStore`].
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create store directory {}: {source}", path.display())]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("storage engine error: {0}")]
    Redb(#[from] redb::Error),
    #[error(
        "store format version {found} is newer than this build supports ({supported}); \
         run a newer Redrive or restore a backup"
    )]
    UnsupportedFormat { found: u64, supported: u64 },
    #[error("store writer has stopped")]
    WriterStopped,
    #[error("the streamed load stopped: {0}")]
    LoadStopped(&'static str),
    #[error("cannot verify: {0}")]
    Verify(String),
    #[error("store refuses writes after an earlier failure: {0}")]
    Failed(String),
    #[error("cannot keep the space reserve {}: {source}", path.display())]
    Reserve {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("journal: {0}")]
    Journal(String),
}

impl From<std::io::Error> for StoreError {
    fn from(e: std::io::Error) -> Self {
        StoreError::Journal(e.to_string())
    }
}

macro_rules! redb_error_from {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                StoreError::Redb(redb::Error::from(e))
            }
        }
    )*};
}
redb_error_from!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::CompactionError,
    redb::SetDurabilityError
);

type Ack = oneshot::Sender<Result<(), String>>;
type Reply<T> = mpsc::SyncSender<Result<T, StoreError>>;

enum Request {
    Batch(Vec<Mutation>, Ack),
    /// With a stream, queues and messages go through it (not in the snapshot).
    Load(Option<mpsc::SyncSender<LoadPart>>, Reply<Snapshot>),
    Recover(Reply<(u64, Snapshot)>),
    Quarantined(Reply<Vec<QuarantinedRecord>>),
    Compact(Reply<bool>),
    Flush(Reply<()>),
    /// Extension documents of a kind in a key range (`Store::documents`).
    Documents(String, String, String, Reply<Vec<crate::DocumentRecord>>),
    /// Distinct key prefixes of a kind's documents (`Store::document_prefixes`).
    DocumentPrefixes(String, usize, Reply<Vec<String>>),
    /// A payload read found `message_body` damaged or missing: quarantine the message (all
    /// three records), as a load does with a damaged header.
    QuarantineMessage(u64, u64, String),
    Shutdown,
}

#[derive(Debug, Default)]
struct Shared {
    commits: AtomicU64,
    durable_commits: AtomicU64,
    /// Write failures so far ([`StoreHealth::failures`]).
    failures: AtomicU64,
    failed: AtomicBool,
    failure: Mutex<Option<String>>,
    /// Mirrors `low_space.is_some()` for the per-request check.
    short_of_space: AtomicBool,
    low_space: Mutex<Option<String>>,
    free_bytes: Mutex<Option<u64>>,
    last_error: Mutex<Option<String>>,
    /// The open database, for payload reads outside the writer thread (`None` while failed).
    /// The writer takes the write lock to replace it, and to compact.
    reader: parking_lot::RwLock<Option<Arc<Database>>>,
    /// Payloads of `PutMessage`s submitted and not yet committed (or refused): readable
    /// before their commit, as the engine may hand a message out before it is durable.
    pending: Mutex<std::collections::HashMap<(u64, u64), Arc<crate::MessagePayload>>>,
    cache: Mutex<crate::cache::PayloadCache>,
    /// Payload reads answered by the cache or the pending map, and by the file.
    payload_hits: AtomicU64,
    payload_reads: AtomicU64,
    /// Journal mode: checkpoint once this many mutations wait (0: [`CHECKPOINT_MUTATIONS`]).
    checkpoint_mutations: std::sync::atomic::AtomicUsize,
}

impl Shared {
    /// Refuses every write until [`Store::recover`]. Counted before any acknowledgement of the
    /// failed group is sent, so a request that sees the error also sees the count move.
    fn fail(&self, reason: String) {
        let mut failure = self.failure.lock();
        if failure.is_none() {
            tracing::error!(%reason, "store write failed; refusing writes until recovered");
            *failure = Some(reason.clone());
            self.failures.fetch_add(1, Ordering::SeqCst);
        }
        *self.last_error.lock() = Some(reason);
        self.failed.store(true, Ordering::Release);
    }

    /// Sets or clears the low-space reason; returns whether it was set before.
    fn set_low_space(&self, reason: Option<String>) -> bool {
        let mut low = self.low_space.lock();
        self.short_of_space
            .store(reason.is_some(), Ordering::Release);
        std::mem::replace(&mut *low, reason).is_some()
    }

    fn clear_failure(&self) {
        *self.failure.lock() = None;
        self.failed.store(false, Ordering::Release);
    }

    fn failure(&self) -> Option<String> {
        if self.failed.load(Ordering::Acquire) {
            self.failure.lock().clone()
        } else {
            None
        }
    }
}

/// The durable [`Store`]: one redb file, written by a group-commit thread.
///
/// Dropping it (or calling [`RedbStore::shutdown`]) writes out everything submitted before,
/// makes it durable and closes the file.
#[derive(Debug)]
pub struct RedbStore {
    tx: mpsc::Sender<Request>,
    shared: Arc<Shared>,
    writer: Mutex<Option<JoinHandle<()>>>,
    mode: DurabilityMode,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Request::Batch(..) => "Batch",
            Request::Load(..) => "Load",
            Request::Recover(_) => "Recover",
            Request::Quarantined(_) => "Quarantined",
            Request::Compact(_) => "Compact",
            Request::Flush(_) => "Flush",
            Request::Documents(..) => "Documents",
            Request::DocumentPrefixes(..) => "DocumentPrefixes",
            Request::QuarantineMessage(..) => "QuarantineMessage",
            Request::Shutdown => "Shutdown",
        })
    }
}

impl RedbStore {
    /// Opens (or creates) the store in `dir/redrive.redb`, creating `dir` if needed, and
    /// compacts the file (see [`RedbStore::compact`]). Fails if another process has it open, or
    /// if it was written by a newer format version. After a crash, redb's recovery (a checksum
    /// walk of the file) runs here. Blocking: call it from a blocking context.
    pub fn open(dir: &Path, mode: DurabilityMode) -> Result<RedbStore, StoreError> {
        Self::open_with(
            dir,
            StoreOptions {
                mode,
                ..StoreOptions::default()
            },
        )
    }

    /// [`RedbStore::open`] with every option.
    pub fn open_with(dir: &Path, options: StoreOptions) -> Result<RedbStore, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
            path: dir.to_path_buf(),
            source,
        })?;
        let file = dir.join(FILE_NAME);
        let len = std::fs::metadata(&file).map_or(0, |m| m.len());
        let open = move || -> Result<Database, StoreError> {
            Ok(Database::builder()
                .set_cache_size(CACHE_BYTES)
                .create(&file)?)
        };
        let mut db = open()?;
        init_format(&db)?;
        let mut journal = Journal::new(Box::new(JournalFile::open(
            &dir.join(crate::journal::JOURNAL_FILE_NAME),
        )?));
        let (max_queue_uid, stored_max) = replay_journal(&db, &mut journal)?;
        // Nothing else uses the database yet: the cheapest moment to give freed space back, as
        // long as walking the file stays cheap.
        if len <= options.compact_at_open_max_bytes {
            db.compact()?;
        } else {
            tracing::info!(
                file_bytes = len,
                "store file larger than the open-time compaction limit; not compacted"
            );
        }
        let reserve = (options.reserve_bytes > 0).then(|| Reserve {
            path: dir.join(RESERVE_FILE_NAME),
            dir: dir.to_path_buf(),
            bytes: options.reserve_bytes,
        });
        Self::spawn(
            db,
            Box::new(open),
            reserve,
            options.mode,
            Some((journal, stored_max)),
            max_queue_uid,
            options.payload_cache_bytes,
        )
    }

    /// Opens (or initialises) the store over any redb [`StorageBackend`] — used by the
    /// crash-consistency tests with a fault-injecting backend, and usable with
    /// `redb::backends::InMemoryBackend` for a fast non-durable store with the real encoding.
    /// Such a store cannot reopen after a write failure (it stays failed); use
    /// [`RedbStore::with_backend_factory`] for one that can.
    pub fn with_backend(
        backend: impl StorageBackend,
        mode: DurabilityMode,
    ) -> Result<RedbStore, StoreError> {
        let mut backend = Some(backend);
        Self::with_backend_factory(
            move || {
                backend
                    .take()
                    .ok_or_else(|| StoreError::Failed("the backend cannot be reopened".into()))
            },
            mode,
        )
    }

    /// A store over the backend `factory` returns, called again to reopen the database after
    /// a write failure (the backends must share one image, as files of one path do).
    pub fn with_backend_factory<B: StorageBackend>(
        mut factory: impl FnMut() -> Result<B, StoreError> + Send + 'static,
        mode: DurabilityMode,
    ) -> Result<RedbStore, StoreError> {
        let mut open = move || -> Result<Database, StoreError> {
            Ok(Database::builder()
                .set_cache_size(CACHE_BYTES)
                .create_with_backend(factory()?)?)
        };
        let db = open()?;
        let max_queue_uid = init_format(&db)?;
        Self::spawn(
            db,
            Box::new(open),
            None,
            mode,
            None,
            max_queue_uid,
            DEFAULT_PAYLOAD_CACHE_BYTES,
        )
    }

    /// [`RedbStore::with_backend_factory`] with format 4's journal over `journal` (the file
    /// layout of [`RedbStore::open`]), checkpointed once `checkpoint_mutations` mutations wait
    /// in it (0: the default): what the crash-consistency tests of the journal use.
    pub fn with_backends<B: StorageBackend>(
        mut factory: impl FnMut() -> Result<B, StoreError> + Send + 'static,
        journal: impl StorageBackend,
        mode: DurabilityMode,
        checkpoint_mutations: usize,
    ) -> Result<RedbStore, StoreError> {
        let mut open = move || -> Result<Database, StoreError> {
            Ok(Database::builder()
                .set_cache_size(CACHE_BYTES)
                .create_with_backend(factory()?)?)
        };
        let db = open()?;
        init_format(&db)?;
        let mut journal = Journal::new(Box::new(journal));
        let (max_queue_uid, stored_max) = replay_journal(&db, &mut journal)?;
        let store = Self::spawn(
            db,
            Box::new(open),
            None,
            mode,
            Some((journal, stored_max)),
            max_queue_uid,
            DEFAULT_PAYLOAD_CACHE_BYTES,
        )?;
        store
            .shared
            .checkpoint_mutations
            .store(checkpoint_mutations, Ordering::Relaxed);
        Ok(store)
    }

    fn spawn(
        db: Database,
        open: Opener,
        reserve: Option<Reserve>,
        mode: DurabilityMode,
        journal: Option<(Journal, StoredMax)>,
        max_queue_uid: u64,
        payload_cache_bytes: usize,
    ) -> Result<RedbStore, StoreError> {
        let (journal, stored_max) = match journal {
            Some((j, m)) => (Some(j), m),
            None => (None, StoredMax::default()),
        };
        let db = Arc::new(db);
        let shared = Arc::new(Shared::default());
        let (syncer, syncer_thread) = match (&journal, mode) {
            (Some(journal), DurabilityMode::Strict) => {
                let (tx, rx) = mpsc::channel();
                let (file, shared) = (journal.backend(), shared.clone());
                let handle = std::thread::Builder::new()
                    .name("redrive-store-syncer".into())
                    .spawn(move || run_syncer(file, shared, rx))
                    .map_err(|e| StoreError::Redb(redb::Error::Io(e)))?;
                (Some(tx), Some(handle))
            }
            _ => (None, None),
        };
        shared.cache.lock().set_budget(payload_cache_bytes);
        *shared.reader.write() = Some(db.clone());
        if let Some(reserve) = &reserve {
            reserve.refresh(&shared);
        }
        let (tx, rx) = mpsc::channel();
        let writer = Writer {
            db: Some(db),
            open,
            reserve,
            mode,
            shared: shared.clone(),
            max_queue_uid,
            dirty_since: None,
            deferred: None,
            space_check_at: None,
            journal,
            unapplied: Vec::new(),
            unapplied_since: None,
            stored_max,
            syncer,
            syncer_thread,
        };
        let handle = std::thread::Builder::new()
            .name("redrive-store-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| StoreError::Redb(redb::Error::Io(e)))?;
        Ok(RedbStore {
            tx,
            shared,
            writer: Mutex::new(Some(handle)),
            mode,
        })
    }

    pub fn mode(&self) -> DurabilityMode {
        self.mode
    }

    /// Reads every record, verifying each one's checksum and encoding. A record that fails is
    /// not in the snapshot: it is moved to the quarantine (in a write transaction after the
    /// read), logged, and listed in [`Snapshot::quarantined`]. Unlike [`Store::load`] it reports
    /// an I/O error instead of failing the store. Sees every batch submitted before the call.
    pub fn try_load(&self) -> Result<Snapshot, StoreError> {
        self.call(|reply| Request::Load(None, reply))
    }

    /// [`RedbStore::try_load`] that sends the queues, then the messages in batches, through
    /// `parts` as it reads them (so a caller can index them meanwhile, on another thread); the
    /// snapshot returned holds the rest. Blocks until the read ends: `parts` must be consumed
    /// by another thread. A receiver that hangs up fails the load.
    pub fn try_load_streamed(
        &self,
        parts: mpsc::SyncSender<LoadPart>,
    ) -> Result<Snapshot, StoreError> {
        self.call(|reply| Request::Load(Some(parts), reply))
    }

    /// [`RedbStore::try_load`] with every message's payload read ([`crate::Payload::Loaded`])
    /// and the lazily read documents ([`LAZY_DOCUMENT_KINDS`]) included: the whole contents,
    /// for tests and tools. A payload that cannot be read fails the call.
    pub fn try_load_full(&self) -> Result<Snapshot, StoreError> {
        let mut snapshot = self.try_load()?;
        // From the file itself (one read transaction), never from the cache or pending puts:
        // what a restart would find.
        let db = self.shared.reader.read().clone().ok_or_else(|| {
            StoreError::Failed(
                self.shared
                    .failure()
                    .unwrap_or_else(|| "the database is closed".into()),
            )
        })?;
        let txn = db.begin_read()?;
        let bodies = txn.open_table(MESSAGE_BODY)?;
        for m in &mut snapshot.messages {
            if m.payload.loaded().is_none() {
                let (uid, seq) = (m.queue_uid, m.seq);
                let v = bodies.get((uid, seq))?.ok_or_else(|| {
                    StoreError::Failed(format!("message {uid}/{seq} has no payload record"))
                })?;
                let p = codec::decode_message_body(uid, seq, v.value())
                    .map_err(|e| StoreError::Failed(format!("payload of {uid}/{seq}: {e}")))?;
                m.payload = crate::Payload::Loaded(Arc::new(p));
            }
        }
        for kind in LAZY_DOCUMENT_KINDS {
            let docs = self.call(|reply| {
                Request::Documents((*kind).into(), String::new(), "\u{10ffff}".into(), reply)
            })?;
            snapshot.documents.extend(docs);
        }
        snapshot
            .documents
            .sort_by(|a, b| (&a.kind, &a.key).cmp(&(&b.kind, &b.key)));
        Ok(snapshot)
    }

    /// Payload reads `(answered from memory, read from the file)` so far.
    pub fn payload_reads(&self) -> (u64, u64) {
        (
            self.shared.payload_hits.load(Ordering::Relaxed),
            self.shared.payload_reads.load(Ordering::Relaxed),
        )
    }

    /// The payload cache's `(entries, bytes)` now.
    pub fn payload_cache_usage(&self) -> (usize, usize) {
        let c = self.shared.cache.lock();
        (c.len(), c.bytes())
    }

    /// Reads a payload: pending puts, then the cache, then the file (verified).
    fn read_payload(
        &self,
        queue_uid: u64,
        seq: u64,
    ) -> Result<Option<Arc<crate::MessagePayload>>, StoreError> {
        let key = (queue_uid, seq);
        if let Some(p) = self.shared.pending.lock().get(&key) {
            self.shared.payload_hits.fetch_add(1, Ordering::Relaxed);
            return Ok(Some(p.clone()));
        }
        if let Some(p) = self.shared.cache.lock().get(key) {
            self.shared.payload_hits.fetch_add(1, Ordering::Relaxed);
            return Ok(Some(p));
        }
        let db = self.shared.reader.read().clone().ok_or_else(|| {
            StoreError::Failed(
                self.shared
                    .failure()
                    .unwrap_or_else(|| "the database is closed".into()),
            )
        })?;
        self.shared.payload_reads.fetch_add(1, Ordering::Relaxed);
        let txn = db.begin_read()?;
        let table = match txn.open_table(MESSAGE_BODY) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let decoded = match table.get(key)? {
            None => {
                // Committed puts write the payload with the header: a header without one is
                // damage, unless the message is gone altogether (deleted meanwhile).
                if txn.open_table(MESSAGES)?.get(key)?.is_none() {
                    return Ok(None);
                }
                Err("message_body record missing".to_string())
            }
            Some(v) => {
                codec::decode_message_body(queue_uid, seq, v.value()).map_err(|e| e.to_string())
            }
        };
        let p = match decoded {
            Ok(p) => Arc::new(p),
            Err(reason) => {
                // Never served: the message moves to the quarantine (behind every batch
                // already submitted) and reads as gone from now on.
                tracing::error!(
                    queue_uid,
                    seq,
                    %reason,
                    "stored message payload failed verification; quarantining the message"
                );
                let _ = self
                    .tx
                    .send(Request::QuarantineMessage(queue_uid, seq, reason));
                return Ok(None);
            }
        };
        self.shared.cache.lock().insert(key, p.clone());
        Ok(Some(p))
    }

    /// Every record in the quarantine (records that failed verification at some load), in
    /// `(table, key)` order.
    pub fn quarantined(&self) -> Result<Vec<QuarantinedRecord>, StoreError> {
        self.call(Request::Quarantined)
    }

    /// Runs redb's compaction, which moves pages towards the start of the file and truncates
    /// it. Freed pages are reused without it; compaction only returns space to the file system.
    /// It runs on the writer thread, so writes wait meanwhile: call it at startup (before the
    /// engine serves requests) or at a quiet time. Returns whether anything was compacted.
    pub fn compact(&self) -> Result<bool, StoreError> {
        self.call(Request::Compact)
    }

    /// Makes every batch submitted before the call durable now (an fsync'd commit in
    /// [`DurabilityMode::Relaxed`]; in strict mode the batches are durable once acknowledged).
    pub fn flush(&self) -> Result<(), StoreError> {
        self.call(Request::Flush)
    }

    /// Write transactions committed so far (group commits plus the periodic fsync'd commits of
    /// relaxed mode).
    pub fn commits(&self) -> u64 {
        self.shared.commits.load(Ordering::Relaxed)
    }

    /// Commits made with `Durability::Immediate`, i.e. fsyncs paid.
    pub fn durable_commits(&self) -> u64 {
        self.shared.durable_commits.load(Ordering::Relaxed)
    }

    /// Why the store refuses writes, if it does.
    pub fn failure(&self) -> Option<String> {
        self.shared.failure()
    }

    fn health_now(&self) -> StoreHealth {
        StoreHealth {
            failures: self.shared.failures.load(Ordering::SeqCst),
            failed: self.shared.failure(),
            low_space: self.shared.low_space.lock().clone(),
            free_bytes: *self.shared.free_bytes.lock(),
            last_error: self.shared.last_error.lock().clone(),
        }
    }

    /// Writes out and fsyncs everything submitted before, closes the database and joins the
    /// writer thread. Later submits resolve with an error. Idempotent; also done on drop.
    pub fn shutdown(&self) {
        let handle = self.writer.lock().take();
        if let Some(handle) = handle {
            let _ = self.tx.send(Request::Shutdown);
            if handle.join().is_err() {
                tracing::error!("store writer thread panicked");
            }
        }
    }

    fn call<T>(&self, make: impl FnOnce(Reply<T>) -> Request) -> Result<T, StoreError> {
        let (reply, rx) = mpsc::sync_channel(1);
        self.tx
            .send(make(reply))
            .map_err(|_| StoreError::WriterStopped)?;
        rx.recv().unwrap_or(Err(StoreError::WriterStopped))
    }
}

impl Drop for RedbStore {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl Store for RedbStore {
    /// Reads every record, quarantining those that fail verification (see
    /// [`RedbStore::try_load`]). On an I/O error this logs, marks the store failed (every later
    /// write is refused) and returns an empty snapshot; use [`RedbStore::try_load`] to handle
    /// the error instead.
    fn load(&self) -> Snapshot {
        match self.try_load() {
            Ok(snapshot) => snapshot,
            Err(e) => {
                self.shared.fail(format!("loading the store failed: {e}"));
                Snapshot::default()
            }
        }
    }

    fn health(&self) -> StoreHealth {
        self.health_now()
    }

    fn write_failures(&self) -> u64 {
        self.shared.failures.load(Ordering::SeqCst)
    }

    fn low_space(&self) -> bool {
        self.shared.short_of_space.load(Ordering::Acquire)
    }

    fn quarantined(&self) -> Result<Vec<QuarantinedRecord>, String> {
        RedbStore::quarantined(self).map_err(|e| e.to_string())
    }

    fn recover(&self) -> Result<(u64, Snapshot), String> {
        self.call(Request::Recover).map_err(|e| e.to_string())
    }

    fn documents(
        &self,
        kind: &str,
        from: &str,
        to: &str,
    ) -> Result<Vec<crate::DocumentRecord>, String> {
        self.call(|reply| Request::Documents(kind.into(), from.into(), to.into(), reply))
            .map_err(|e| e.to_string())
    }

    fn keeps_payloads(&self) -> bool {
        true
    }

    fn payload(
        &self,
        queue_uid: u64,
        seq: u64,
    ) -> Result<Option<Arc<crate::MessagePayload>>, String> {
        self.read_payload(queue_uid, seq).map_err(|e| {
            // Never the contents: only which message and why.
            tracing::error!(queue_uid, seq, error = %e, "message payload could not be read");
            e.to_string()
        })
    }

    fn document_prefixes(&self, kind: &str, depth: usize) -> Result<Vec<String>, String> {
        self.call(|reply| Request::DocumentPrefixes(kind.into(), depth, reply))
            .map_err(|e| e.to_string())
    }

    fn submit(&self, batch: Vec<Mutation>) -> Durable {
        if batch.is_empty() {
            return Durable::done();
        }
        let (ack, rx) = oneshot::channel();
        if let Some(reason) = self.shared.failure() {
            let _ = ack.send(Err(reason));
        } else {
            // Payloads become readable now (before their commit) and stay in the cache.
            let mut pending = None;
            let mut cache = None;
            for m in &batch {
                match m {
                    Mutation::PutMessage(r) => {
                        if let crate::Payload::Loaded(p) = &r.payload {
                            pending
                                .get_or_insert_with(|| self.shared.pending.lock())
                                .insert((r.queue_uid, r.seq), p.clone());
                            cache
                                .get_or_insert_with(|| self.shared.cache.lock())
                                .insert((r.queue_uid, r.seq), p.clone());
                        }
                    }
                    Mutation::DeleteMessage { queue_uid, seq } => {
                        cache
                            .get_or_insert_with(|| self.shared.cache.lock())
                            .remove((*queue_uid, *seq));
                    }
                    _ => {}
                }
            }
            drop(cache);
            drop(pending);
            // If the writer is gone the ack is dropped and `wait` reports "store writer stopped".
            let _ = self.tx.send(Request::Batch(batch, ack));
        }
        Durable::pending(rx)
    }
}

/// Checks or writes the format version (migrating a version-1 file), creates the tables and
/// returns `max_queue_uid`. Everything happens in one write transaction: a crash mid-migration
/// leaves the version-1 file as it was.
fn init_format(db: &Database) -> Result<u64, StoreError> {
    let txn = db.begin_write()?;
    let max_queue_uid;
    {
        let mut meta = txn.open_table(META)?;
        let found = meta.get(META_FORMAT_VERSION)?.map(|v| v.value());
        match found {
            None => {
                meta.insert(META_FORMAT_VERSION, FORMAT_VERSION)?;
                set_max_queue_uid(&mut meta, 0)?;
            }
            Some(v) if v == FORMAT_VERSION => {}
            Some(v @ (3 | 4)) => {
                // Format 4 added the journal beside the file (an absent `journal_epoch` is
                // epoch 0); format 5 drops the state records its messages' headers imply.
                let started = Instant::now();
                let dropped = drop_implied_states(&txn)?;
                meta.insert(META_FORMAT_VERSION, FORMAT_VERSION)?;
                let max = meta.get(META_MAX_QUEUE_UID)?.map_or(0, |v| v.value());
                set_max_queue_uid(&mut meta, max)?;
                tracing::info!(
                    implied_states_dropped = dropped,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "migrated the store from format version {v} to {FORMAT_VERSION}"
                );
            }
            Some(2) => {
                let started = Instant::now();
                let migrated = migrate_v2(&txn)?;
                drop_implied_states(&txn)?;
                meta.insert(META_FORMAT_VERSION, FORMAT_VERSION)?;
                let max = meta.get(META_MAX_QUEUE_UID)?.map_or(0, |v| v.value());
                set_max_queue_uid(&mut meta, max)?;
                tracing::info!(
                    records = migrated.records,
                    quarantined = migrated.quarantined,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "migrated the store from format version 2 to {FORMAT_VERSION}"
                );
            }
            Some(1) => {
                let started = Instant::now();
                let migrated = migrate_v1(&txn)?;
                drop_implied_states(&txn)?;
                meta.insert(META_FORMAT_VERSION, FORMAT_VERSION)?;
                let max = meta.get(META_MAX_QUEUE_UID)?.map_or(0, |v| v.value());
                set_max_queue_uid(&mut meta, max)?;
                tracing::info!(
                    records = migrated.records,
                    quarantined = migrated.quarantined,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "migrated the store from format version 1 to {FORMAT_VERSION}"
                );
            }
            Some(v) => {
                return Err(StoreError::UnsupportedFormat {
                    found: v,
                    supported: FORMAT_VERSION,
                });
            }
        }
        max_queue_uid = meta.get(META_MAX_QUEUE_UID)?.map_or(0, |v| v.value());
        txn.open_table(QUEUES)?;
        txn.open_table(MESSAGES)?;
        txn.open_table(MESSAGE_STATE)?;
        txn.open_table(MESSAGE_BODY)?;
        txn.open_table(MOVE_TASKS)?;
        txn.open_table(DEDUP)?;
        txn.open_table(DOCUMENTS)?;
        txn.open_table(QUARANTINE)?;
    }
    txn.commit()?;
    Ok(max_queue_uid)
}

/// Removes the `message_state` records that format 5 does not keep: those equal to the state
/// their message's header implies ([`MessageState::implied`]). A record whose message is
/// missing or does not verify is left for the load to judge. Returns how many were removed.
fn drop_implied_states(txn: &WriteTransaction) -> Result<u64, StoreError> {
    let mut implied = Vec::new();
    {
        let states = txn.open_table(MESSAGE_STATE)?;
        let messages = txn.open_table(MESSAGES)?;
        for entry in states.iter()? {
            let (k, v) = entry?;
            let (uid, seq) = k.value();
            let Ok(state) = codec::decode_message_state(uid, seq, v.value()) else {
                continue;
            };
            // Only a state that could be implied needs its header looked up.
            if state != MessageState::implied(state.visible_at_ms) {
                continue;
            }
            let Some(raw) = messages.get((uid, seq))? else {
                continue;
            };
            if let Ok(m) = codec::decode_message(uid, seq, raw.value(), state)
                && MessageState::is_implied(&m)
            {
                implied.push((uid, seq));
            }
        }
    }
    let mut states = txn.open_table(MESSAGE_STATE)?;
    for key in &implied {
        states.remove(*key)?;
    }
    Ok(implied.len() as u64)
}

type Opener = Box<dyn FnMut() -> Result<Database, StoreError> + Send>;

/// The check value stored beside `meta.journal_epoch`: a damaged epoch would make an open
/// replay the wrong entries (or none), so it is verified like every other record.
fn journal_epoch_check(epoch: u64) -> u64 {
    u64::from(crc32c::crc32c_append(
        crc32c::crc32c(META_JOURNAL_EPOCH.as_bytes()),
        &epoch.to_le_bytes(),
    ))
}

pub(crate) fn journal_epoch(
    meta: &impl ReadableTable<&'static str, u64>,
) -> Result<u64, StoreError> {
    let epoch = meta.get(META_JOURNAL_EPOCH)?.map(|v| v.value());
    let check = meta.get(META_JOURNAL_EPOCH_CHECK)?.map(|v| v.value());
    match (epoch, check) {
        (None, None) => Ok(0),
        (Some(e), Some(c)) if c == journal_epoch_check(e) => Ok(e),
        _ => Err(StoreError::Journal(
            "meta.journal_epoch fails its check value; the journal cannot be replayed safely"
                .into(),
        )),
    }
}

fn set_journal_epoch(
    meta: &mut Table<'_, &'static str, u64>,
    epoch: u64,
) -> Result<(), StoreError> {
    meta.insert(META_JOURNAL_EPOCH, epoch)?;
    meta.insert(META_JOURNAL_EPOCH_CHECK, journal_epoch_check(epoch))?;
    Ok(())
}

/// Applies the journal's entries of the current epoch to redb and starts the next epoch on an
/// empty journal, in this order (see `journal.rs`, *Epochs*). Always moves to a new epoch, so
/// no stale entry of an earlier run can ever follow a new one. Returns `max_queue_uid` and
/// the per-queue bound of stored seqs.
fn replay_journal(db: &Database, journal: &mut Journal) -> Result<(u64, StoredMax), StoreError> {
    let started = Instant::now();
    let epoch = journal_epoch(&db.begin_read()?.open_table(META)?)?;
    let bytes = journal.read_all()?;
    let replay = crate::journal::decode_entries(&bytes, epoch).map_err(|e| {
        StoreError::Journal(format!(
            "an entry passes its checksum but does not decode ({e}); refusing to open"
        ))
    })?;
    let mut txn = db.begin_write()?;
    txn.set_durability(Durability::Immediate)?;
    let max_queue_uid;
    {
        let mut tables = Tables::open(&txn)?;
        let mut max = tables
            .meta
            .get(META_MAX_QUEUE_UID)?
            .map_or(0, |v| v.value());
        let before = max;
        for m in replay.mutations {
            tables.apply(m, &mut max)?;
        }
        if max > before {
            set_max_queue_uid(&mut tables.meta, max)?;
        }
        set_journal_epoch(&mut tables.meta, epoch + 1)?;
        max_queue_uid = max;
    }
    txn.commit()?;
    journal.restart(epoch + 1)?;
    // An open (or a recovery, maybe on a full disk) gives the journal's space back.
    journal.truncate()?;
    journal.sync()?;
    if replay.entries > 0 {
        tracing::info!(
            entries = replay.entries,
            bytes = replay.valid_bytes,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "applied the store journal"
        );
    }
    Ok((max_queue_uid, stored_max(db, max_queue_uid)?))
}

/// For each queue, the seq of its last message in redb.
fn stored_max(db: &Database, max_queue_uid: u64) -> Result<StoredMax, StoreError> {
    let txn = db.begin_read()?;
    let queues = txn.open_table(QUEUES)?;
    let messages = txn.open_table(MESSAGES)?;
    let mut out = StoredMax {
        base_uid: max_queue_uid,
        ..StoredMax::default()
    };
    for entry in queues.iter()? {
        let uid = entry?.0.value();
        let last = match messages.range((uid, 0)..=(uid, u64::MAX))?.next_back() {
            Some(last) => last?.0.value().1,
            None => 0,
        };
        out.per_queue.insert(uid, last);
    }
    Ok(out)
}

/// The space reserve: a file of `bytes` zeros, deleted when a write fails so that the writes
/// that free space can still commit, recreated when there is room again.
struct Reserve {
    path: PathBuf,
    dir: PathBuf,
    bytes: u64,
}

impl Reserve {
    fn free_bytes(&self) -> Option<u64> {
        let st = rustix::fs::statvfs(&self.dir).ok()?;
        Some(st.f_bavail.saturating_mul(st.f_frsize))
    }

    fn present(&self) -> bool {
        std::fs::metadata(&self.path).is_ok_and(|m| m.len() >= self.bytes)
    }

    /// Creates the reserve if it is missing and there is room for it (twice its size free);
    /// updates the shared free-space and low-space readings.
    fn refresh(&self, shared: &Shared) {
        let free = self.free_bytes();
        *shared.free_bytes.lock() = free;
        if self.present() {
            shared.set_low_space(None);
            return;
        }
        if free.is_some_and(|f| f >= 2 * self.bytes) {
            match self.create() {
                Ok(()) => {
                    if shared.set_low_space(None) {
                        tracing::info!("store space reserve restored; accepting all writes");
                    }
                    *shared.free_bytes.lock() = self.free_bytes();
                    return;
                }
                Err(e) => {
                    let _ = std::fs::remove_file(&self.path);
                    tracing::warn!(error = %e, "cannot recreate the store space reserve");
                }
            }
        }
        let was_low = shared.set_low_space(Some(format!(
            "the space reserve ({} bytes) is given up and not yet restored; {} bytes free",
            self.bytes,
            free.map_or_else(|| "unknown".to_string(), |f| f.to_string())
        )));
        if !was_low {
            tracing::warn!(
                free_bytes = free,
                reserve_bytes = self.bytes,
                "store space is short; refusing writes that grow the store"
            );
        }
    }

    fn create(&self) -> Result<(), StoreError> {
        use std::io::Write;
        let wrap = |source| StoreError::Reserve {
            path: self.path.clone(),
            source,
        };
        let mut f = std::fs::File::create(&self.path).map_err(wrap)?;
        let chunk = vec![0u8; 1 << 20];
        let mut left = self.bytes;
        while left > 0 {
            let n = left.min(chunk.len() as u64) as usize;
            f.write_all(&chunk[..n]).map_err(wrap)?;
            left -= n as u64;
        }
        f.sync_all().map_err(wrap)
    }

    fn release(&self, shared: &Shared) {
        if std::fs::remove_file(&self.path).is_ok() {
            tracing::warn!("store space reserve released after a write failure");
        }
        shared.set_low_space(Some(format!(
            "a write failed; the space reserve ({} bytes) is released until there is room again",
            self.bytes
        )));
        *shared.free_bytes.lock() = self.free_bytes();
    }
}

/// Writes `meta.max_queue_uid` and the meta checksum.
fn set_max_queue_uid(meta: &mut Table<'_, &'static str, u64>, max: u64) -> Result<(), StoreError> {
    meta.insert(META_MAX_QUEUE_UID, max)?;
    meta.insert(META_CHECKSUM, codec::meta_checksum(FORMAT_VERSION, max))?;
    Ok(())
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[derive(Debug, Default)]
struct Migrated {
    records: u64,
    quarantined: u64,
}

/// Rewrites every format-1 record as format 2 inside `txn`: values sealed, messages split into
/// `messages` + `message_state`, string keys stored as byte strings. A format-1 record that does
/// not decode goes to the quarantine (with its original bytes) instead of failing the open.
fn migrate_v1(txn: &WriteTransaction) -> Result<Migrated, StoreError> {
    let mut records = 0u64;
    let mut quarantined = 0u64;
    let at_ms = now_ms();
    let mut quarantine = txn.open_table(QUARANTINE)?;
    let mut bad = |table: &'static str, key: &[u8], raw: &[u8], e: CodecError| {
        let reason = format!("format-1 record does not decode: {e}");
        tracing::error!(table, key = %codec::describe_key(table, key), %reason, "quarantined during migration");
        quarantined += 1;
        let entry = QuarantineEntry {
            at_ms,
            reason,
            raw: raw.to_vec(),
        };
        quarantine
            .insert(
                (table.as_bytes(), key),
                codec::encode_quarantine(table, key, &entry).as_slice(),
            )
            .map(|_| ())
    };

    // queues: same key and value types; rewritten in place.
    {
        let mut queues = txn.open_table(QUEUES)?;
        let old: Vec<(u64, Vec<u8>)> = queues
            .iter()?
            .map(|e| e.map(|(k, v)| (k.value(), v.value().to_vec())))
            .collect::<Result<_, _>>()?;
        for (uid, raw) in old {
            match codec::decode_queue_v1(uid, &raw) {
                Ok(q) => {
                    queues.insert(uid, codec::encode_queue(&q).as_slice())?;
                    records += 1;
                }
                Err(e) => {
                    bad(table::QUEUES, &codec::key::queue(uid), &raw, e)?;
                    queues.remove(uid)?;
                }
            }
        }
    }

    // messages: same types; rewritten in place a chunk at a time, state split off.
    {
        let mut messages = txn.open_table(MESSAGES)?;
        let mut states = txn.open_table(MESSAGE_STATE)?;
        let mut bodies = txn.open_table(MESSAGE_BODY)?;
        let mut after: Option<(u64, u64)> = None;
        loop {
            let lower = match after {
                None => std::ops::Bound::Unbounded,
                Some(k) => std::ops::Bound::Excluded(k),
            };
            let chunk: Vec<((u64, u64), Vec<u8>)> = messages
                .range::<(u64, u64)>((lower, std::ops::Bound::Unbounded))?
                .take(MIGRATION_CHUNK)
                .map(|e| e.map(|(k, v)| (k.value(), v.value().to_vec())))
                .collect::<Result<_, _>>()?;
            let Some(last) = chunk.last().map(|(k, _)| *k) else {
                break;
            };
            for ((uid, seq), raw) in chunk {
                match codec::decode_message_v1(uid, seq, &raw) {
                    Ok(m) => {
                        messages.insert((uid, seq), codec::encode_message(&m).as_slice())?;
                        let state = codec::encode_message_state(uid, seq, &MessageState::of(&m));
                        states.insert((uid, seq), state.as_slice())?;
                        if let Some(p) = m.payload.loaded() {
                            bodies.insert(
                                (uid, seq),
                                codec::encode_message_body(uid, seq, p).as_slice(),
                            )?;
                        }
                        records += 1;
                    }
                    Err(e) => {
                        bad(table::MESSAGES, &codec::key::message(uid, seq), &raw, e)?;
                        messages.remove((uid, seq))?;
                    }
                }
            }
            after = Some(last);
        }
    }

    // move_tasks, dedup, documents: the key type changes, so each table is read whole,
    // deleted and written anew (these tables are small next to `messages`).
    {
        let old: Vec<(String, Vec<u8>)> = txn
            .open_table(MOVE_TASKS_V1)?
            .iter()?
            .map(|e| e.map(|(k, v)| (k.value().to_owned(), v.value().to_vec())))
            .collect::<Result<_, _>>()?;
        txn.delete_table(MOVE_TASKS_V1)?;
        let mut tasks = txn.open_table(MOVE_TASKS)?;
        for (id, raw) in old {
            match codec::decode_move_task_v1(&id, &raw) {
                Ok(t) => {
                    tasks.insert(id.as_bytes(), codec::encode_move_task(&t).as_slice())?;
                    records += 1;
                }
                Err(e) => bad(table::MOVE_TASKS, id.as_bytes(), &raw, e)?,
            }
        }
    }
    {
        let old: Vec<((u64, String), Vec<u8>)> = txn
            .open_table(DEDUP_V1)?
            .iter()?
            .map(|e| {
                e.map(|(k, v)| {
                    let (uid, key) = k.value();
                    ((uid, key.to_owned()), v.value().to_vec())
                })
            })
            .collect::<Result<_, _>>()?;
        txn.delete_table(DEDUP_V1)?;
        let mut dedup = txn.open_table(DEDUP)?;
        for ((uid, key), raw) in old {
            match codec::decode_dedup_v1(uid, &key, &raw) {
                Ok(d) => {
                    dedup.insert((uid, key.as_bytes()), codec::encode_dedup(&d).as_slice())?;
                    records += 1;
                }
                Err(e) => bad(
                    table::DEDUP,
                    &codec::key::dedup(uid, key.as_bytes()),
                    &raw,
                    e,
                )?,
            }
        }
    }
    {
        let old: Vec<crate::DocumentRecord> = txn
            .open_table(DOCUMENTS_V1)?
            .iter()?
            .map(|e| {
                e.map(|(k, v)| {
                    let (kind, key) = k.value();
                    crate::DocumentRecord {
                        kind: kind.to_owned(),
                        key: key.to_owned(),
                        value: v.value().to_vec(),
                    }
                })
            })
            .collect::<Result<_, _>>()?;
        txn.delete_table(DOCUMENTS_V1)?;
        let mut documents = txn.open_table(DOCUMENTS)?;
        for d in old {
            documents.insert(
                (d.kind.as_bytes(), d.key.as_bytes()),
                codec::encode_document(&d).as_slice(),
            )?;
            records += 1;
        }
    }
    Ok(Migrated {
        records,
        quarantined,
    })
}

/// Rewrites every format-2 `messages` record inside `txn` as a format-3 header plus a
/// `message_body` record, a chunk of [`MIGRATION_CHUNK`] at a time (bounded memory). Every
/// other table is unchanged. A record that fails verification is left as it is: the first load
/// quarantines it (a version-2 record still decodes, so nothing is lost).
fn migrate_v2(txn: &WriteTransaction) -> Result<Migrated, StoreError> {
    let mut records = 0u64;
    let mut messages = txn.open_table(MESSAGES)?;
    let mut bodies = txn.open_table(MESSAGE_BODY)?;
    let mut after: Option<(u64, u64)> = None;
    loop {
        let lower = match after {
            None => std::ops::Bound::Unbounded,
            Some(k) => std::ops::Bound::Excluded(k),
        };
        let chunk: Vec<((u64, u64), Vec<u8>)> = messages
            .range::<(u64, u64)>((lower, std::ops::Bound::Unbounded))?
            .take(MIGRATION_CHUNK)
            .map(|e| e.map(|(k, v)| (k.value(), v.value().to_vec())))
            .collect::<Result<_, _>>()?;
        let Some(last) = chunk.last().map(|(k, _)| *k) else {
            break;
        };
        for ((uid, seq), raw) in chunk {
            // The state is not part of the header: any state will do for the split.
            if let Ok(m) = codec::decode_message(uid, seq, &raw, MessageState::default())
                && let Some(p) = m.payload.loaded()
            {
                messages.insert((uid, seq), codec::encode_message(&m).as_slice())?;
                bodies.insert(
                    (uid, seq),
                    codec::encode_message_body(uid, seq, p).as_slice(),
                )?;
                records += 1;
            }
        }
        after = Some(last);
    }
    Ok(Migrated {
        records,
        quarantined: 0,
    })
}

struct Writer {
    /// `None` after a failure, until [`Request::Recover`] reopens it. Shared with payload
    /// readers through [`Shared::reader`].
    db: Option<Arc<Database>>,
    open: Opener,
    reserve: Option<Reserve>,
    mode: DurabilityMode,
    shared: Arc<Shared>,
    /// Highest queue uid committed (mirrors `meta.max_queue_uid`).
    max_queue_uid: u64,
    /// Relaxed mode: when the oldest commit not yet fsync'd was made.
    dirty_since: Option<Instant>,
    /// A non-batch request met while draining a group, handled after the group's commit.
    deferred: Option<Request>,
    /// While space is short: when the free space is looked at next.
    space_check_at: Option<Instant>,
    /// Format 4's journal (`None` for a store over a bare redb backend, which commits every
    /// group to redb).
    journal: Option<Journal>,
    /// Mutations durable in the journal and not yet checkpointed into redb, in order.
    unapplied: Vec<Mutation>,
    /// When the oldest of `unapplied` was journaled.
    unapplied_since: Option<Instant>,
    /// Per queue uid, the highest message seq that can be in redb (see `journal::skippable`).
    stored_max: StoredMax,
    /// Strict journal mode: the thread that fsyncs the journal and acknowledges the groups
    /// written before each fsync, while this thread writes the next ones.
    syncer: Option<mpsc::Sender<SyncJob>>,
    syncer_thread: Option<JoinHandle<()>>,
}

/// Groups written to the journal and waiting for an fsync.
struct SyncJob {
    acks: Vec<Ack>,
    /// Their `PutMessage` keys, dropped from the pending payloads if the fsync fails.
    puts: Vec<(u64, u64)>,
}

/// Fsyncs the journal for every job that waits, in a loop: each fsync covers all the groups
/// written before it started, so the disk is never idle while groups wait and the writer
/// never waits for it.
fn run_syncer(journal: Arc<dyn StorageBackend>, shared: Arc<Shared>, rx: mpsc::Receiver<SyncJob>) {
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        while let Ok(job) = rx.try_recv() {
            jobs.push(job);
        }
        let result = match shared.failure() {
            // Nothing is acknowledged after a failure until the store is recovered.
            Some(reason) => Err(reason),
            None => match journal.sync_data() {
                Ok(()) => {
                    shared.durable_commits.fetch_add(1, Ordering::Relaxed);
                    Ok(())
                }
                Err(e) => {
                    let reason = format!("store commit failed: journal fsync: {e}");
                    shared.fail(reason.clone());
                    Err(reason)
                }
            },
        };
        if result.is_err() {
            shared.cache.lock().clear();
            let mut pending = shared.pending.lock();
            for key in jobs.iter().flat_map(|j| &j.puts) {
                pending.remove(key);
            }
        }
        for ack in jobs.into_iter().flat_map(|j| j.acks) {
            let _ = ack.send(result.clone());
        }
    }
}

/// Per queue uid, an upper bound of the message seqs redb holds.
#[derive(Debug, Default)]
struct StoredMax {
    per_queue: std::collections::HashMap<u64, u64>,
    /// `max_queue_uid` when `per_queue` was read: a queue with a higher uid was created
    /// since, so redb holds only what checkpoints raised; for an unlisted lower uid (a queue
    /// whose record is gone) nothing is known.
    base_uid: u64,
}

impl StoredMax {
    fn bound(&self, uid: u64) -> u64 {
        match self.per_queue.get(&uid) {
            Some(max) => *max,
            None if uid > self.base_uid => 0,
            None => u64::MAX,
        }
    }

    fn raise(&mut self, uid: u64, seq: u64) {
        let bound = self.bound(uid);
        if bound != u64::MAX && seq > bound {
            self.per_queue.insert(uid, seq);
        }
    }
}

impl Writer {
    fn run(mut self, rx: mpsc::Receiver<Request>) {
        while let Some(request) = self.next(&rx) {
            match request {
                Request::Batch(batch, ack) => self.group(&rx, batch, ack),
                Request::Load(stream, reply) => {
                    self.checkpoint_or_fail();
                    let _ = reply.send(self.load(stream.as_ref()));
                }
                Request::Recover(reply) => {
                    let _ = reply.send(self.recover());
                }
                Request::Quarantined(reply) => {
                    let _ = reply.send(self.quarantined());
                }
                Request::Compact(reply) => {
                    self.checkpoint_or_fail();
                    let _ = reply.send(self.compact());
                }
                Request::Flush(reply) => {
                    let _ = reply.send(self.sync());
                }
                Request::Documents(kind, from, to, reply) => {
                    self.checkpoint_or_fail();
                    let _ = reply.send(self.documents(&kind, &from, &to));
                }
                Request::DocumentPrefixes(kind, depth, reply) => {
                    self.checkpoint_or_fail();
                    let _ = reply.send(self.document_prefixes(&kind, depth));
                }
                Request::QuarantineMessage(uid, seq, reason) => {
                    self.checkpoint_or_fail();
                    if let Err(e) = self.quarantine_message(uid, seq, &reason) {
                        tracing::error!(queue_uid = uid, seq, error = %e, "moving a damaged message to the quarantine failed; it stays in place");
                    }
                }
                Request::Shutdown => break,
            }
        }
        self.checkpoint_or_fail();
        if let Err(e) = self.sync() {
            tracing::error!(error = %e, "final store sync failed");
        }
        // Acknowledges what waits for an fsync, then stops.
        self.syncer = None;
        if let Some(handle) = self.syncer_thread.take()
            && handle.join().is_err()
        {
            tracing::error!("store syncer thread panicked");
        }
        // Payload readers let go of the database, so that dropping it closes the file.
        *self.shared.reader.write() = None;
        // Dropping the database closes the file and releases its lock.
    }

    /// The next request; in relaxed mode, makes pending commits durable when their interval
    /// runs out while waiting.
    fn next(&mut self, rx: &mpsc::Receiver<Request>) -> Option<Request> {
        if let Some(request) = self.deferred.take() {
            return Some(request);
        }
        loop {
            let now = Instant::now();
            // While space is short, look at the free space once a second on a fixed schedule
            // (requests arriving more often must not postpone it).
            let low_space =
                self.reserve.is_some() && self.shared.short_of_space.load(Ordering::Acquire);
            if !low_space {
                self.space_check_at = None;
            } else if self.space_check_at.is_none_or(|at| now >= at) {
                if let Some(reserve) = &self.reserve {
                    reserve.refresh(&self.shared);
                }
                self.space_check_at = Some(now + LOW_SPACE_CHECK);
            }
            let sync_due = match (self.mode, self.dirty_since) {
                (DurabilityMode::Relaxed { interval_ms }, Some(since)) => {
                    Some(since + Duration::from_millis(interval_ms))
                }
                _ => None,
            };
            if sync_due.is_some_and(|due| now >= due) {
                let _ = self.sync();
                continue;
            }
            let checkpoint_due = self
                .unapplied_since
                .map(|since| since + CHECKPOINT_INTERVAL);
            if checkpoint_due.is_some_and(|due| now >= due) {
                self.checkpoint_or_fail();
                continue;
            }
            let deadline = [sync_due, self.space_check_at, checkpoint_due]
                .into_iter()
                .flatten()
                .min();
            let Some(deadline) = deadline else {
                return rx.recv().ok();
            };
            match rx.recv_timeout(deadline.saturating_duration_since(now)) {
                Ok(request) => return Some(request),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => return None,
            }
        }
    }

    /// Drains the batches already queued behind `first` and commits them together.
    fn group(&mut self, rx: &mpsc::Receiver<Request>, first: Vec<Mutation>, ack: Ack) {
        let mut count = first.len();
        let mut batches = vec![first];
        let mut acks = vec![ack];
        while count < MAX_GROUP_MUTATIONS {
            match rx.try_recv() {
                Ok(Request::Batch(batch, ack)) => {
                    count += batch.len();
                    batches.push(batch);
                    acks.push(ack);
                }
                Ok(other) => {
                    self.deferred = Some(other);
                    break;
                }
                Err(_) => break,
            }
        }

        let puts: Vec<(u64, u64)> = batches
            .iter()
            .flatten()
            .filter_map(|m| match m {
                Mutation::PutMessage(r) => Some((r.queue_uid, r.seq)),
                _ => None,
            })
            .collect();
        let result = match self.shared.failure() {
            Some(reason) => {
                // The syncer thread failed: close the database as after any failure.
                if self.db.is_some() {
                    self.failed(reason.clone());
                }
                Err(reason)
            }
            None => self.commit_group(batches).map_err(|e| {
                let reason = format!("store commit failed: {e}");
                self.failed(reason.clone());
                reason
            }),
        };
        // Strict journal mode: written, not yet fsync'd. The syncer thread acknowledges the
        // group after an fsync that started after this write.
        let (acks, puts) = match (&self.syncer, &result) {
            (Some(syncer), Ok(())) => match syncer.send(SyncJob { acks, puts }) {
                Ok(()) => (Vec::new(), Vec::new()),
                Err(mpsc::SendError(job)) => (job.acks, job.puts),
            },
            _ => (acks, puts),
        };
        // Committed: readable from the file now. Refused: never readable, and the engine
        // rebuilds from the file, so a later message may get the same key: drop every cached
        // payload.
        if result.is_err() {
            self.shared.cache.lock().clear();
        }
        // With the journal, a put's payload stays pending until its checkpoint (redb does not
        // have it before); a refused put's never will.
        if !puts.is_empty() && (result.is_err() || self.journal.is_none()) {
            let mut pending = self.shared.pending.lock();
            for key in puts {
                pending.remove(&key);
            }
        }
        for ack in acks {
            let _ = ack.send(result.clone());
        }
        if self
            .journal
            .as_ref()
            .is_some_and(|j| j.len >= self.checkpoint_bytes())
            || self.unapplied.len() >= self.checkpoint_mutations()
        {
            self.checkpoint_or_fail();
        }

        if let (DurabilityMode::Relaxed { interval_ms }, Some(since)) =
            (self.mode, self.dirty_since)
            && since.elapsed() >= Duration::from_millis(interval_ms)
        {
            let _ = self.sync();
        }
    }

    /// A write failed: refuse writes until recovered, give up the reserve, drop the database
    /// (redb refuses every use of it after an I/O error).
    fn failed(&mut self, reason: String) {
        self.shared.fail(reason);
        self.db = None;
        *self.shared.reader.write() = None;
        self.shared.cache.lock().clear();
        self.dirty_since = None;
        // Durable in the journal: the recovery's replay applies them.
        self.unapplied.clear();
        self.unapplied_since = None;
        if let Some(reserve) = &self.reserve {
            reserve.release(&self.shared);
        }
    }

    fn db(&self) -> Result<&Database, StoreError> {
        self.db.as_deref().ok_or_else(|| {
            StoreError::Failed(
                self.shared
                    .failure()
                    .unwrap_or_else(|| "the database is closed".into()),
            )
        })
    }

    /// Reopens the database if a failure closed it, reads what is committed and accepts writes
    /// again. Batches queued before this request have already been refused.
    fn recover(&mut self) -> Result<(u64, Snapshot), StoreError> {
        // A failure the writer has not handled yet (the syncer's fsync, a failed load): close
        // the database first, so that recovery always reopens it and replays the journal.
        if let Some(reason) = self.shared.failure()
            && self.db.is_some()
        {
            self.failed(reason);
        }
        if self.db.is_none() {
            let db = Arc::new((self.open)()?);
            self.max_queue_uid = init_format(&db)?;
            if let Some(journal) = &mut self.journal {
                let (max_queue_uid, stored_max) = replay_journal(&db, journal)?;
                self.max_queue_uid = max_queue_uid;
                self.stored_max = stored_max;
                // Everything journaled is in redb now.
                self.shared.pending.lock().clear();
            }
            *self.shared.reader.write() = Some(db.clone());
            self.db = Some(db);
            tracing::info!("store reopened after a write failure");
        } else {
            self.checkpoint()?;
        }
        let failures = self.shared.failures.load(Ordering::SeqCst);
        let snapshot = self.load(None)?;
        self.shared.clear_failure();
        if let Some(reserve) = &self.reserve {
            reserve.refresh(&self.shared);
        }
        Ok((failures, snapshot))
    }

    fn commit_group(&mut self, batches: Vec<Vec<Mutation>>) -> Result<(), StoreError> {
        if let Some(journal) = &mut self.journal {
            let strict = self.mode == DurabilityMode::Strict;
            journal.append(&batches)?;
            if strict {
                if self.syncer.is_none() {
                    journal.sync()?;
                    self.shared.durable_commits.fetch_add(1, Ordering::Relaxed);
                }
            } else if self.dirty_since.is_none() {
                self.dirty_since = Some(Instant::now());
            }
            self.shared.commits.fetch_add(1, Ordering::Relaxed);
            self.unapplied.extend(batches.into_iter().flatten());
            self.unapplied_since.get_or_insert_with(Instant::now);
            return Ok(());
        }
        let mut txn = self.db()?.begin_write()?;
        let strict = self.mode == DurabilityMode::Strict;
        txn.set_durability(if strict {
            Durability::Immediate
        } else {
            Durability::None
        })?;
        let mut max_queue_uid = self.max_queue_uid;
        {
            let mut tables = Tables::open(&txn)?;
            for mutation in batches.into_iter().flatten() {
                tables.apply(mutation, &mut max_queue_uid)?;
            }
            if max_queue_uid > self.max_queue_uid {
                set_max_queue_uid(&mut tables.meta, max_queue_uid)?;
            }
        }
        txn.commit()?;
        self.max_queue_uid = max_queue_uid;
        self.shared.commits.fetch_add(1, Ordering::Relaxed);
        if strict {
            self.shared.durable_commits.fetch_add(1, Ordering::Relaxed);
        } else if self.dirty_since.is_none() {
            self.dirty_since = Some(Instant::now());
        }
        Ok(())
    }

    /// An empty fsync'd commit, making every earlier non-durable commit durable.
    fn sync(&mut self) -> Result<(), StoreError> {
        if self.dirty_since.is_none() {
            return Ok(());
        }
        if let Some(reason) = self.shared.failure() {
            // Nothing can be made durable any more; stop trying (and stop the timer).
            self.dirty_since = None;
            return Err(StoreError::Failed(reason));
        }
        let result = (|| {
            if let Some(journal) = &self.journal {
                return Ok(journal.sync()?);
            }
            let mut txn = self.db()?.begin_write()?;
            txn.set_durability(Durability::Immediate)?;
            txn.commit()?;
            Ok::<_, StoreError>(())
        })();
        match result {
            Ok(()) => {
                self.dirty_since = None;
                self.shared.commits.fetch_add(1, Ordering::Relaxed);
                self.shared.durable_commits.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(e) => {
                self.failed(format!("store sync failed: {e}"));
                Err(e)
            }
        }
    }

    /// Journal bytes that trigger a checkpoint: [`CHECKPOINT_BYTES`], or a quarter of the space
    /// reserve if that is less, so that what a recovery on a full disk must apply to redb fits
    /// in the space the given-up reserve frees.
    fn checkpoint_bytes(&self) -> u64 {
        match &self.reserve {
            Some(reserve) => CHECKPOINT_BYTES.min((reserve.bytes / 4).max(256 << 10)),
            None => CHECKPOINT_BYTES,
        }
    }

    fn checkpoint_mutations(&self) -> usize {
        match self.shared.checkpoint_mutations.load(Ordering::Relaxed) {
            0 => CHECKPOINT_MUTATIONS,
            n => n,
        }
    }

    /// [`Writer::checkpoint`]; a failure fails the store (the journal still holds every
    /// acknowledged mutation, and the recovery's replay applies them).
    fn checkpoint_or_fail(&mut self) {
        if let Err(e) = self.checkpoint() {
            self.failed(format!("store checkpoint failed: {e}"));
        }
    }

    /// Applies the journaled mutations to redb in one fsync'd transaction that also moves the
    /// journal to the next epoch, then empties the journal (see `journal.rs`, *Epochs*).
    /// Mutations that cannot change the result are skipped (`journal::skippable`).
    fn checkpoint(&mut self) -> Result<(), StoreError> {
        if self.unapplied.is_empty() {
            return Ok(());
        }
        let mutations = std::mem::take(&mut self.unapplied);
        self.unapplied_since = None;
        let skip = crate::journal::skippable(&mutations, |uid| self.stored_max.bound(uid));
        let epoch = self.journal.as_ref().map_or(0, |j| j.epoch) + 1;
        let mut txn = self.db()?.begin_write()?;
        txn.set_durability(Durability::Immediate)?;
        let mut max_queue_uid = self.max_queue_uid;
        let mut puts = Vec::new();
        {
            let mut tables = Tables::open(&txn)?;
            for (m, skip) in mutations.into_iter().zip(skip) {
                match &m {
                    Mutation::PutMessage(r) => {
                        puts.push((r.queue_uid, r.seq));
                        self.stored_max.raise(r.queue_uid, r.seq);
                    }
                    Mutation::DeleteQueue { uid } => {
                        self.stored_max.per_queue.remove(uid);
                    }
                    _ => {}
                }
                if !skip {
                    tables.apply(m, &mut max_queue_uid)?;
                }
            }
            if max_queue_uid > self.max_queue_uid {
                set_max_queue_uid(&mut tables.meta, max_queue_uid)?;
            }
            set_journal_epoch(&mut tables.meta, epoch)?;
        }
        txn.commit()?;
        self.max_queue_uid = max_queue_uid;
        self.shared.commits.fetch_add(1, Ordering::Relaxed);
        self.shared.durable_commits.fetch_add(1, Ordering::Relaxed);
        // Everything so far is durable in redb: relaxed mode owes no fsync any more.
        self.dirty_since = None;
        if let Some(journal) = &mut self.journal {
            journal.restart(epoch)?;
        }
        let mut pending = self.shared.pending.lock();
        for key in puts {
            pending.remove(&key);
        }
        Ok(())
    }

    /// Compaction needs the database alone: payload readers wait on the reader lock (held
    /// for the whole compaction) and those already reading finish first.
    fn compact(&mut self) -> Result<bool, StoreError> {
        self.sync()?;
        let mut reader = self.shared.reader.write();
        reader.take();
        let result = (|| {
            let db = self.db.as_mut().ok_or_else(|| {
                StoreError::Failed("the database is closed after a write failure".into())
            })?;
            let db = loop {
                if Arc::get_mut(db).is_some() {
                    break Arc::get_mut(db).expect("checked");
                }
                std::thread::sleep(Duration::from_micros(100));
            };
            Ok(db.compact()?)
        })();
        *reader = self.db.clone();
        result
    }

    /// The distinct prefixes of `kind`'s document keys up to and including the `depth`-th
    /// `/`, found by seeking past each one (one range read per prefix, not per document).
    fn document_prefixes(&self, kind: &str, depth: usize) -> Result<Vec<String>, StoreError> {
        let txn = self.db()?.begin_read()?;
        let table = txn.open_table(DOCUMENTS)?;
        let kind = kind.as_bytes();
        let mut out = Vec::new();
        let mut from: Vec<u8> = Vec::new();
        loop {
            let Some(entry) = table.range((kind, from.as_slice())..)?.next() else {
                break;
            };
            let (k, _) = entry?;
            let (k_kind, key) = k.value();
            if k_kind != kind {
                break;
            }
            let mut slashes = 0;
            let end = key.iter().position(|b| {
                if *b == b'/' {
                    slashes += 1;
                }
                slashes == depth
            });
            let Some(end) = end.filter(|_| depth > 0) else {
                // Fewer separators than asked: the key is its own prefix.
                out.push(String::from_utf8_lossy(key).into_owned());
                from = key.to_vec();
                from.push(0);
                continue;
            };
            let prefix = &key[..=end];
            out.push(String::from_utf8_lossy(prefix).into_owned());
            // Every key with this prefix sorts before the prefix with '/' raised to '0'.
            from = prefix.to_vec();
            *from.last_mut().expect("ends in /") = b'/' + 1;
        }
        Ok(out)
    }

    fn documents(
        &self,
        kind: &str,
        from: &str,
        to: &str,
    ) -> Result<Vec<crate::DocumentRecord>, StoreError> {
        let mut out = Vec::new();
        if from >= to {
            return Ok(out);
        }
        let txn = self.db()?.begin_read()?;
        let range = (kind.as_bytes(), from.as_bytes())..(kind.as_bytes(), to.as_bytes());
        for entry in txn.open_table(DOCUMENTS)?.range(range)? {
            let (k, v) = entry?;
            let (kind, key) = k.value();
            // A document that fails its checksum is left out (the next load quarantines it).
            match codec::decode_document(kind, key, v.value()) {
                Ok(d) => out.push(d),
                Err(e) => tracing::error!(
                    table = table::DOCUMENTS,
                    key = %codec::describe_key(table::DOCUMENTS, &codec::key::document(kind, key)),
                    error = %e,
                    "stored document failed verification; not served"
                ),
            }
        }
        Ok(out)
    }

    /// Reads and verifies every record ([`scan`]), then moves the records that failed to the
    /// quarantine in one write transaction. If that write fails the failures are still left out
    /// of the snapshot (and found again at the next load).
    fn load(
        &mut self,
        stream: Option<&mpsc::SyncSender<LoadPart>>,
    ) -> Result<Snapshot, StoreError> {
        let Scan {
            mut snapshot,
            damaged,
            quarantine_len,
            ..
        } = scan(&self.db()?.begin_read()?, false, stream)?;
        snapshot.quarantined_total = quarantine_len;
        if damaged.is_empty() {
            return Ok(snapshot);
        }
        let at_ms = now_ms();
        for d in &damaged {
            // Never the record's contents: a body may be sensitive.
            let (table, key) = (
                d.loc.table(),
                codec::describe_key(d.loc.table(), &d.loc.key()),
            );
            if d.failed {
                tracing::error!(table, %key, reason = %d.reason, "stored record failed verification; quarantined");
            } else {
                tracing::warn!(table, %key, reason = %d.reason, "record quarantined with a failed one");
            }
            snapshot.quarantined.push(d.record(at_ms));
        }
        if let Some(reason) = self.shared.failure() {
            tracing::error!(%reason, "not moving failed records to the quarantine: the store refuses writes");
            return Ok(snapshot);
        }
        match self.write_quarantine(&damaged, at_ms, snapshot.max_queue_uid) {
            Ok(added) => snapshot.quarantined_total = quarantine_len + added,
            Err(e) => tracing::error!(
                error = %e,
                "moving failed records to the quarantine failed; they stay in place"
            ),
        }
        Ok(snapshot)
    }

    /// Moves `damaged` to the quarantine (fsync'd); returns how many entries it added.
    fn write_quarantine(
        &mut self,
        damaged: &[Damaged],
        at_ms: u64,
        max_queue_uid: u64,
    ) -> Result<u64, StoreError> {
        let mut txn = self.db()?.begin_write()?;
        txn.set_durability(Durability::Immediate)?;
        let mut added = 0;
        {
            let mut quarantine = txn.open_table(QUARANTINE)?;
            let mut tables = Tables::open(&txn)?;
            for d in damaged {
                let (table, key) = (d.loc.table(), d.loc.key());
                let entry = QuarantineEntry {
                    at_ms,
                    reason: d.reason.clone(),
                    raw: d.raw.clone(),
                };
                let old = quarantine.insert(
                    (table.as_bytes(), key.as_slice()),
                    codec::encode_quarantine(table, &key, &entry).as_slice(),
                )?;
                if old.is_none() {
                    added += 1;
                }
                match (&d.loc, &d.replacement) {
                    (Loc::State(uid, seq), Some(value)) => {
                        tables
                            .message_state
                            .insert((*uid, *seq), value.as_slice())?;
                    }
                    (Loc::Meta, _) => set_max_queue_uid(&mut tables.meta, max_queue_uid)?,
                    (loc, _) => tables.remove(loc)?,
                }
            }
        }
        txn.commit()?;
        self.max_queue_uid = self.max_queue_uid.max(max_queue_uid);
        self.shared.commits.fetch_add(1, Ordering::Relaxed);
        self.shared.durable_commits.fetch_add(1, Ordering::Relaxed);
        Ok(added)
    }

    fn quarantined(&self) -> Result<Vec<QuarantinedRecord>, StoreError> {
        list_quarantine(&self.db()?.begin_read()?)
    }

    /// Moves the message `(uid, seq)` (header, state, payload) to the quarantine because its
    /// payload failed verification or is missing. A no-op if the store refuses writes (the
    /// next load of a damaged payload finds it again) or the message is gone.
    fn quarantine_message(&mut self, uid: u64, seq: u64, reason: &str) -> Result<(), StoreError> {
        if self.shared.failure().is_some() {
            return Ok(());
        }
        self.sync()?;
        let mut damaged = Vec::new();
        {
            let txn = self.db()?.begin_read()?;
            let raw =
                |def: TableDefinition<(u64, u64), &[u8]>| -> Result<Option<Vec<u8>>, StoreError> {
                    Ok(txn
                        .open_table(def)?
                        .get((uid, seq))?
                        .map(|v| v.value().to_vec()))
                };
            let Some(header) = raw(MESSAGES)? else {
                return Ok(());
            };
            let body = raw(MESSAGE_BODY)?;
            // Re-checked here: only a payload that really fails is quarantined.
            if let Some(b) = &body
                && codec::decode_message_body(uid, seq, b).is_ok()
            {
                return Ok(());
            }
            damaged.push(Damaged {
                loc: Loc::Body(uid, seq),
                raw: body.clone().unwrap_or_default(),
                reason: reason.to_string(),
                replacement: None,
                failed: true,
            });
            let consequence = BODY_CONSEQUENCE;
            damaged.push(Damaged {
                loc: Loc::Message(uid, seq),
                raw: header,
                reason: consequence.into(),
                replacement: None,
                failed: false,
            });
            if let Some(state) = raw(MESSAGE_STATE)? {
                damaged.push(Damaged {
                    loc: Loc::State(uid, seq),
                    raw: state,
                    reason: consequence.into(),
                    replacement: None,
                    failed: false,
                });
            }
        }
        let max = self.max_queue_uid;
        self.write_quarantine(&damaged, now_ms(), max).map(|_| ())
    }
}

/// Every entry of the quarantine table. An entry that itself fails verification is listed with
/// that reason.
pub(crate) fn list_quarantine(txn: &ReadTransaction) -> Result<Vec<QuarantinedRecord>, StoreError> {
    let mut out = Vec::new();
    for entry in txn.open_table(QUARANTINE)?.iter()? {
        let (k, v) = entry?;
        let (table_bytes, key) = k.value();
        let table = String::from_utf8_lossy(table_bytes).into_owned();
        let message = matches!(table.as_str(), table::MESSAGES | table::MESSAGE_STATE)
            .then(|| codec::key::message_parts(key))
            .flatten();
        let (reason, quarantined_ms) = match codec::decode_quarantine(table_bytes, key, v.value()) {
            Ok(e) => (e.reason, e.at_ms),
            Err(e) => (
                format!("the quarantine entry itself failed verification: {e}"),
                0,
            ),
        };
        out.push(QuarantinedRecord {
            key: codec::describe_key(&table, key),
            table,
            failed_verification: reason != CONSEQUENCE && reason != BODY_CONSEQUENCE,
            reason,
            message,
            quarantined_ms,
        });
    }
    Ok(out)
}

/// The reason given to the state of a message whose `messages` record failed.
const CONSEQUENCE: &str = "its message record failed verification";

/// The reason given to the header and state of a message whose payload failed when read.
const BODY_CONSEQUENCE: &str = "its message_body record failed verification";

/// Where a record that failed verification lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Loc {
    /// The `meta` entries (`max_queue_uid` and the checksum).
    Meta,
    Queue(u64),
    Message(u64, u64),
    State(u64, u64),
    Body(u64, u64),
    MoveTask(Vec<u8>),
    Dedup(u64, Vec<u8>),
    Document(Vec<u8>, Vec<u8>),
}

impl Loc {
    pub(crate) fn table(&self) -> &'static str {
        match self {
            Loc::Meta => table::META,
            Loc::Queue(_) => table::QUEUES,
            Loc::Message(..) => table::MESSAGES,
            Loc::State(..) => table::MESSAGE_STATE,
            Loc::Body(..) => table::MESSAGE_BODY,
            Loc::MoveTask(_) => table::MOVE_TASKS,
            Loc::Dedup(..) => table::DEDUP,
            Loc::Document(..) => table::DOCUMENTS,
        }
    }

    /// The canonical key (`codec::key`).
    pub(crate) fn key(&self) -> Vec<u8> {
        match self {
            Loc::Meta => META_MAX_QUEUE_UID.as_bytes().to_vec(),
            Loc::Queue(uid) => codec::key::queue(*uid).to_vec(),
            Loc::Message(uid, seq) | Loc::State(uid, seq) | Loc::Body(uid, seq) => {
                codec::key::message(*uid, *seq).to_vec()
            }
            Loc::MoveTask(id) => codec::key::move_task(id),
            Loc::Dedup(uid, key) => codec::key::dedup(*uid, key),
            Loc::Document(kind, key) => codec::key::document(kind, key),
        }
    }

    fn message(&self) -> Option<(u64, u64)> {
        match self {
            Loc::Message(uid, seq) | Loc::State(uid, seq) | Loc::Body(uid, seq) => {
                Some((*uid, *seq))
            }
            _ => None,
        }
    }
}

/// A record that failed verification.
#[derive(Debug, Clone)]
pub(crate) struct Damaged {
    pub(crate) loc: Loc,
    /// The stored value as found (empty for a missing `message_state`).
    pub(crate) raw: Vec<u8>,
    pub(crate) reason: String,
    /// For the state of an intact message: the safe state written in its place.
    pub(crate) replacement: Option<Vec<u8>>,
    /// `false` if it is moved only because its message failed.
    pub(crate) failed: bool,
}

impl Damaged {
    fn record(&self, at_ms: u64) -> QuarantinedRecord {
        QuarantinedRecord {
            table: self.loc.table().to_owned(),
            key: codec::describe_key(self.loc.table(), &self.loc.key()),
            reason: self.reason.clone(),
            failed_verification: self.failed,
            message: self.loc.message(),
            quarantined_ms: at_ms,
        }
    }
}

/// Messages per [`LoadPart::Messages`] of a streamed load.
const STREAM_BATCH: usize = 1 << 12;

type MessageTable = redb::ReadOnlyTable<(u64, u64), &'static [u8]>;
/// A message state record's key and bytes, left in redb's page (no copy per message).
type RawState<'a> = ((u64, u64), redb::AccessGuard<'a, &'static [u8]>);
/// `(forward's highest claimed key, backward's lowest)` of [`scan_messages_parallel`].
type Claims = Mutex<(Option<(u64, u64)>, Option<(u64, u64)>)>;

fn open_bodies(txn: &ReadTransaction) -> Result<Option<MessageTable>, StoreError> {
    match txn.open_table(MESSAGE_BODY) {
        Ok(t) => Ok(Some(t)),
        Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

fn orphan_state(damaged: &mut Vec<Damaged>, (uid, seq): (u64, u64), raw: &[u8]) {
    damaged.push(Damaged {
        loc: Loc::State(uid, seq),
        raw: raw.to_vec(),
        reason: "message_state record without a message".into(),
        replacement: None,
        failed: true,
    });
}

/// Verifies one message's header with its state record (`state_raw`, `None` when it has
/// none): the record to load if the header verified (with the safe state if the state
/// record did not), and what failed into `damaged`.
fn verify_message(
    (uid, seq): (u64, u64),
    raw: &[u8],
    state_raw: Option<&[u8]>,
    bodies: Option<&MessageTable>,
    damaged: &mut Vec<Damaged>,
) -> Result<Option<MessageRecord>, StoreError> {
    let state = state_raw.map(|raw| codec::decode_message_state(uid, seq, raw));
    // Decode with the state if it verified, else with the safe state.
    let with = match &state {
        Some(Ok(s)) => *s,
        _ => SAFE_STATE,
    };
    match codec::decode_message(uid, seq, raw, with) {
        Ok(mut m) => {
            match state {
                Some(Ok(_)) => {}
                Some(Err(e)) => damaged.push(Damaged {
                    loc: Loc::State(uid, seq),
                    raw: state_raw.map(<[u8]>::to_vec).unwrap_or_default(),
                    reason: format!("{e}; message kept: visible now, receive count reset to 0"),
                    replacement: Some(codec::encode_message_state(uid, seq, &SAFE_STATE)),
                    failed: true,
                }),
                // No record: the state its header implies (format 5).
                None => m.visible_at_ms = MessageState::implied(m.enqueued_ms).visible_at_ms,
            }
            Ok(Some(m))
        }
        Err(e) => {
            damaged.push(Damaged {
                loc: Loc::Message(uid, seq),
                raw: raw.to_vec(),
                reason: e.to_string(),
                replacement: None,
                failed: true,
            });
            if let Some(raw) = state_raw {
                damaged.push(Damaged {
                    loc: Loc::State(uid, seq),
                    raw: raw.to_vec(),
                    reason: CONSEQUENCE.into(),
                    replacement: None,
                    failed: false,
                });
            }
            if let Some(bodies) = bodies
                && let Some(raw) = bodies.get((uid, seq))?
            {
                damaged.push(Damaged {
                    loc: Loc::Body(uid, seq),
                    raw: raw.value().to_vec(),
                    reason: CONSEQUENCE.into(),
                    replacement: None,
                    failed: false,
                });
            }
            Ok(None)
        }
    }
}

/// The message pass of [`scan`] on one thread: `messages` and `message_state` share their
/// keys, so one merge pass over both. Returns `(messages read, state records)`.
fn scan_messages(
    txn: &ReadTransaction,
    stream: Option<&mpsc::SyncSender<LoadPart>>,
    snapshot: &mut Snapshot,
    damaged: &mut Vec<Damaged>,
    highest_uid: &mut u64,
) -> Result<(u64, u64), StoreError> {
    let hung_up = || StoreError::LoadStopped("its receiver hung up");
    let states_table = txn.open_table(MESSAGE_STATE)?;
    let mut states = states_table.iter()?;
    let mut next_state = || -> Result<Option<RawState<'_>>, StoreError> {
        Ok(match states.next() {
            None => None,
            Some(entry) => {
                let (k, v) = entry?;
                Some((k.value(), v))
            }
        })
    };
    let mut pending = next_state()?;
    let mut n_messages = 0;
    let bodies = open_bodies(txn)?;
    let messages_table = txn.open_table(MESSAGES)?;
    // Sized once: growing a vector of millions of records copies it again and again.
    let batch_len = if stream.is_some() {
        STREAM_BATCH
    } else {
        usize::try_from(messages_table.len()?).unwrap_or(0)
    };
    snapshot.messages.reserve(batch_len);
    for entry in messages_table.iter()? {
        let (k, v) = entry?;
        n_messages += 1;
        let key = k.value();
        *highest_uid = (*highest_uid).max(key.0);
        let mut state_raw = None;
        while let Some((at, raw)) = pending.take() {
            if at < key {
                orphan_state(damaged, at, raw.value());
                pending = next_state()?;
            } else if at == key {
                state_raw = Some(raw);
                pending = next_state()?;
                break;
            } else {
                pending = Some((at, raw));
                break;
            }
        }
        let state = state_raw.as_ref().map(|r| r.value());
        if let Some(m) = verify_message(key, v.value(), state, bodies.as_ref(), damaged)? {
            snapshot.messages.push(m);
            if let Some(stream) = stream
                && snapshot.messages.len() == STREAM_BATCH
            {
                let batch =
                    std::mem::replace(&mut snapshot.messages, Vec::with_capacity(STREAM_BATCH));
                stream
                    .send(LoadPart::Messages(batch))
                    .map_err(|_| hung_up())?;
            }
        }
    }
    while let Some((at, raw)) = pending.take() {
        orphan_state(damaged, at, raw.value());
        pending = next_state()?;
    }
    if let Some(stream) = stream
        && !snapshot.messages.is_empty()
    {
        let batch = std::mem::take(&mut snapshot.messages);
        stream
            .send(LoadPart::Messages(batch))
            .map_err(|_| hung_up())?;
    }
    Ok((n_messages, states_table.len()?))
}

/// Messages one half of [`scan_messages_parallel`] reads before it claims them.
const CLAIM_CHUNK: usize = 512;

/// What one half of [`scan_messages_parallel`] found.
#[derive(Default)]
struct HalfScan {
    messages: u64,
    states_matched: u64,
    highest_uid: u64,
    damaged: Vec<Damaged>,
}

/// [`scan_messages`] for a streamed load, on two threads (issue 16: the read is most of a
/// restart): one reads `messages` (merged with `message_state`) forward from the first key,
/// the other backward from the last, and they stop where they meet. Each reads a chunk, then
/// claims, under one lock, the part of it before what the other has claimed, and stops at
/// the first key it could not claim: the claimed ranges are disjoint, and together they
/// cover every key, so each message is loaded (and each failure reported) exactly once.
/// State records without a message are looked for afterwards, only when the counts show
/// some. Returns `(messages read, state records)`.
fn scan_messages_parallel(
    txn: &ReadTransaction,
    stream: &mpsc::SyncSender<LoadPart>,
    damaged: &mut Vec<Damaged>,
    highest_uid: &mut u64,
) -> Result<(u64, u64), StoreError> {
    // (forward's highest claimed key, backward's lowest claimed key)
    let claims: Claims = Mutex::new((None, None));
    let half = |forward: bool| -> Result<HalfScan, StoreError> {
        let hung_up = || StoreError::LoadStopped("its receiver hung up");
        let messages_table = txn.open_table(MESSAGES)?;
        let states_table = txn.open_table(MESSAGE_STATE)?;
        let bodies = open_bodies(txn)?;
        type Entries<'a> = Box<
            dyn Iterator<
                    Item = Result<
                        (
                            redb::AccessGuard<'a, (u64, u64)>,
                            redb::AccessGuard<'a, &'static [u8]>,
                        ),
                        redb::StorageError,
                    >,
                > + 'a,
        >;
        let (mut messages, mut states): (Entries<'_>, Entries<'_>) = if forward {
            (
                Box::new(messages_table.iter()?),
                Box::new(states_table.iter()?),
            )
        } else {
            (
                Box::new(messages_table.iter()?.rev()),
                Box::new(states_table.iter()?.rev()),
            )
        };
        // `a` comes before `b` in this half's direction.
        let before = |a: (u64, u64), b: (u64, u64)| if forward { a < b } else { a > b };
        let mut next_state = || -> Result<Option<RawState<'_>>, StoreError> {
            Ok(match states.next() {
                None => None,
                Some(entry) => {
                    let (k, v) = entry?;
                    Some((k.value(), v))
                }
            })
        };
        let mut pending = next_state()?;
        let mut found = HalfScan::default();
        // Records are decoded straight into the batch to send (a record is a few hundred
        // bytes: moving each once more showed in the profile); what a chunk loaded beyond its
        // claim is cut off again.
        let mut out: Vec<MessageRecord> = Vec::with_capacity(STREAM_BATCH + CLAIM_CHUNK);
        // This chunk's keys (with whether a state matched), in order.
        let mut keys: Vec<((u64, u64), bool)> = Vec::with_capacity(CLAIM_CHUNK);
        let mut chunk_damaged = Vec::new();
        loop {
            keys.clear();
            chunk_damaged.clear();
            let chunk_start = out.len();
            while keys.len() < CLAIM_CHUNK {
                let Some(entry) = messages.next() else { break };
                let (k, v) = entry?;
                let key = k.value();
                let mut state_raw = None;
                while let Some((at, raw)) = pending.take() {
                    if before(at, key) {
                        // An orphan: found by the pass after the scan.
                        pending = next_state()?;
                    } else if at == key {
                        state_raw = Some(raw);
                        pending = next_state()?;
                        break;
                    } else {
                        pending = Some((at, raw));
                        break;
                    }
                }
                keys.push((key, state_raw.is_some()));
                let state = state_raw.as_ref().map(|r| r.value());
                if let Some(m) =
                    verify_message(key, v.value(), state, bodies.as_ref(), &mut chunk_damaged)?
                {
                    out.push(m);
                }
            }
            if keys.is_empty() {
                break;
            }
            let claimed = {
                let mut c = claims.lock();
                let limit = if forward { c.1 } else { c.0 };
                let n = keys
                    .iter()
                    .take_while(|(k, _)| limit.is_none_or(|l| before(*k, l)))
                    .count();
                if n > 0 {
                    let last = Some(keys[n - 1].0);
                    if forward { c.0 = last } else { c.1 = last }
                }
                n
            };
            let Some(&(last, _)) = keys[..claimed].last() else {
                out.truncate(chunk_start);
                break;
            };
            let mine = |key: (u64, u64)| !before(last, key);
            found.messages += claimed as u64;
            found.states_matched += keys[..claimed].iter().filter(|(_, s)| *s).count() as u64;
            found.highest_uid = found
                .highest_uid
                .max(keys[..claimed].iter().map(|(k, _)| k.0).max().unwrap_or(0));
            found
                .damaged
                .extend(chunk_damaged.drain(..).filter(|d| match d.loc {
                    Loc::Message(u, s) | Loc::State(u, s) | Loc::Body(u, s) => mine((u, s)),
                    _ => true,
                }));
            let kept = out[chunk_start..]
                .iter()
                .take_while(|m| mine((m.queue_uid, m.seq)))
                .count();
            out.truncate(chunk_start + kept);
            if out.len() >= STREAM_BATCH {
                let batch =
                    std::mem::replace(&mut out, Vec::with_capacity(STREAM_BATCH + CLAIM_CHUNK));
                stream
                    .send(LoadPart::Messages(batch))
                    .map_err(|_| hung_up())?;
            }
            if claimed < keys.len() {
                break;
            }
        }
        if !out.is_empty() {
            stream
                .send(LoadPart::Messages(out))
                .map_err(|_| hung_up())?;
        }
        Ok(found)
    };
    let (forward, backward) = std::thread::scope(|scope| {
        let backward = std::thread::Builder::new()
            .name("redrive-load".into())
            .spawn_scoped(scope, || half(false))
            .map_err(|e| StoreError::Failed(format!("starting a load thread: {e}")));
        let forward = half(true);
        let backward = match backward {
            Ok(h) => h
                .join()
                .unwrap_or_else(|_| Err(StoreError::Failed("a load thread panicked".into()))),
            Err(e) => Err(e),
        };
        (forward, backward)
    });
    let (forward, backward) = (forward?, backward?);
    let states_table = txn.open_table(MESSAGE_STATE)?;
    let states_len = states_table.len()?;
    let messages = forward.messages + backward.messages;
    let states_matched = forward.states_matched + backward.states_matched;
    for mut half in [forward, backward] {
        *highest_uid = (*highest_uid).max(half.highest_uid);
        damaged.append(&mut half.damaged);
    }
    if states_matched != states_len {
        // Some state records have no message (rare: damage).
        let messages_table = txn.open_table(MESSAGES)?;
        for entry in states_table.iter()? {
            let (k, v) = entry?;
            if messages_table.get(k.value())?.is_none() {
                orphan_state(damaged, k.value(), v.value());
            }
        }
    }
    Ok((messages, states_len))
}

/// What [`scan`] found.
pub(crate) struct Scan {
    /// Every record that verified (plus the messages kept with a safe state).
    pub(crate) snapshot: Snapshot,
    pub(crate) damaged: Vec<Damaged>,
    /// Records read per table (in `codec::table::SEALED` order, without the quarantine).
    pub(crate) counts: Vec<(&'static str, u64)>,
    pub(crate) quarantine_len: u64,
}

/// The delivery state given to an intact message whose `message_state` record failed or is
/// missing: visible now, never received. Redelivering early is allowed by SQS's at-least-once
/// contract; the lost receive count only delays a move to the dead-letter queue.
const SAFE_STATE: MessageState = MessageState {
    visible_at_ms: 0,
    receive_count: 0,
    first_receive_ms: None,
    last_receive_ms: None,
};

/// Reads the tables of a format-3 (or format-2) file, verifying every record it reads. `full`
/// (verify) also reads and verifies every payload in `message_body` and the lazily read
/// documents ([`LAZY_DOCUMENT_KINDS`]); a load (`full = false`) reads neither.
pub(crate) fn scan(
    txn: &ReadTransaction,
    full: bool,
    stream: Option<&mpsc::SyncSender<LoadPart>>,
) -> Result<Scan, StoreError> {
    let hung_up = || StoreError::LoadStopped("its receiver hung up");
    let mut damaged = Vec::new();
    let mut counts = Vec::new();
    let mut snapshot = Snapshot::default();
    let mut highest_uid = 0u64;
    let fail = |damaged: &mut Vec<Damaged>, loc: Loc, raw: &[u8], e: CodecError| {
        damaged.push(Damaged {
            loc,
            raw: raw.to_vec(),
            reason: e.to_string(),
            replacement: None,
            failed: true,
        });
    };

    let mut n = 0;
    for entry in txn.open_table(QUEUES)?.iter()? {
        let (k, v) = entry?;
        n += 1;
        let uid = k.value();
        highest_uid = highest_uid.max(uid);
        match codec::decode_queue(uid, v.value()) {
            Ok(q) => snapshot.queues.push(q),
            Err(e) => fail(&mut damaged, Loc::Queue(uid), v.value(), e),
        }
    }
    counts.push((table::QUEUES, n));
    if let Some(stream) = stream {
        let queues = std::mem::take(&mut snapshot.queues);
        stream
            .send(LoadPart::Queues(queues))
            .map_err(|_| hung_up())?;
    }

    let (n_messages, states_len) = match stream {
        // A load's message pass, the bulk of a restart, runs on two threads.
        Some(stream) if !full => {
            scan_messages_parallel(txn, stream, &mut damaged, &mut highest_uid)?
        }
        _ => scan_messages(txn, stream, &mut snapshot, &mut damaged, &mut highest_uid)?,
    };
    let bodies = match txn.open_table(MESSAGE_BODY) {
        Ok(t) => Some(t),
        Err(redb::TableError::TableDoesNotExist(_)) => None,
        Err(e) => return Err(e.into()),
    };
    let states_table = txn.open_table(MESSAGE_STATE)?;
    counts.push((table::MESSAGES, n_messages));
    counts.push((table::MESSAGE_STATE, states_len));
    if full {
        // Every payload verifies and belongs to a message that loaded.
        let mut n = 0;
        if let Some(bodies) = &bodies {
            let headers = txn.open_table(MESSAGES)?;
            for entry in bodies.iter()? {
                let (k, v) = entry?;
                n += 1;
                let (uid, seq) = k.value();
                if let Err(e) = codec::decode_message_body(uid, seq, v.value()) {
                    fail(&mut damaged, Loc::Body(uid, seq), v.value(), e);
                    // Quarantined with it when a receive reads it.
                    let raw_state = states_table.get((uid, seq))?.map(|v| v.value().to_vec());
                    if let Some(h) = headers.get((uid, seq))? {
                        damaged.push(Damaged {
                            loc: Loc::Message(uid, seq),
                            raw: h.value().to_vec(),
                            reason: BODY_CONSEQUENCE.into(),
                            replacement: None,
                            failed: false,
                        });
                    }
                    if let Some(raw) = raw_state {
                        damaged.push(Damaged {
                            loc: Loc::State(uid, seq),
                            raw,
                            reason: BODY_CONSEQUENCE.into(),
                            replacement: None,
                            failed: false,
                        });
                    }
                } else if headers.get((uid, seq))?.is_none() {
                    damaged.push(Damaged {
                        loc: Loc::Body(uid, seq),
                        raw: v.value().to_vec(),
                        reason: "message_body record without a message".into(),
                        replacement: None,
                        failed: true,
                    });
                }
            }
        }
        counts.push((table::MESSAGE_BODY, n));
    } else {
        let n = match &bodies {
            Some(b) => b.len()?,
            None => 0,
        };
        counts.push((table::MESSAGE_BODY, n));
    }

    let mut n = 0;
    for entry in txn.open_table(MOVE_TASKS)?.iter()? {
        let (k, v) = entry?;
        n += 1;
        match codec::decode_move_task(k.value(), v.value()) {
            Ok(t) => snapshot.move_tasks.push(t),
            Err(e) => fail(
                &mut damaged,
                Loc::MoveTask(k.value().to_vec()),
                v.value(),
                e,
            ),
        }
    }
    counts.push((table::MOVE_TASKS, n));

    let mut n = 0;
    for entry in txn.open_table(DEDUP)?.iter()? {
        let (k, v) = entry?;
        n += 1;
        let (uid, key) = k.value();
        highest_uid = highest_uid.max(uid);
        match codec::decode_dedup(uid, key, v.value()) {
            Ok(d) => snapshot.dedup.push(d),
            Err(e) => fail(&mut damaged, Loc::Dedup(uid, key.to_vec()), v.value(), e),
        }
    }
    counts.push((table::DEDUP, n));

    let mut n = 0;
    let documents = txn.open_table(DOCUMENTS)?;
    // A load skips the lazily read kinds with range reads around them (never visiting them).
    type KindRange = (std::ops::Bound<Vec<u8>>, std::ops::Bound<Vec<u8>>);
    let mut ranges: Vec<KindRange> = Vec::new();
    if full {
        ranges.push((std::ops::Bound::Unbounded, std::ops::Bound::Unbounded));
    } else {
        let mut lazy: Vec<&str> = LAZY_DOCUMENT_KINDS.to_vec();
        lazy.sort_unstable();
        let mut lower = std::ops::Bound::Unbounded;
        for kind in lazy {
            ranges.push((lower, std::ops::Bound::Excluded(kind.as_bytes().to_vec())));
            let mut next = kind.as_bytes().to_vec();
            next.push(0);
            lower = std::ops::Bound::Included(next);
        }
        ranges.push((lower, std::ops::Bound::Unbounded));
    }
    let empty: &[u8] = &[];
    fn bound<'a>(
        b: &'a std::ops::Bound<Vec<u8>>,
        empty: &'a [u8],
    ) -> std::ops::Bound<(&'a [u8], &'a [u8])> {
        match b {
            std::ops::Bound::Unbounded => std::ops::Bound::Unbounded,
            std::ops::Bound::Included(k) => std::ops::Bound::Included((k.as_slice(), empty)),
            std::ops::Bound::Excluded(k) => std::ops::Bound::Excluded((k.as_slice(), empty)),
        }
    }
    for (lo, hi) in &ranges {
        for entry in documents.range::<(&[u8], &[u8])>((bound(lo, empty), bound(hi, empty)))? {
            let (k, v) = entry?;
            n += 1;
            let (kind, key) = k.value();
            match codec::decode_document(kind, key, v.value()) {
                Ok(d) => snapshot.documents.push(d),
                Err(e) => fail(
                    &mut damaged,
                    Loc::Document(kind.to_vec(), key.to_vec()),
                    v.value(),
                    e,
                ),
            }
        }
    }
    counts.push((table::DOCUMENTS, n));

    // meta: max_queue_uid is covered by meta.checksum. If that fails, the highest uid in use
    // (or the stored value, if higher) keeps uids from being reused.
    let meta = txn.open_table(META)?;
    let get = |k| -> Result<Option<u64>, StoreError> { Ok(meta.get(k)?.map(|v| v.value())) };
    let version = get(META_FORMAT_VERSION)?.unwrap_or(0);
    let stored = get(META_MAX_QUEUE_UID)?.unwrap_or(0);
    let sum = get(META_CHECKSUM)?;
    snapshot.max_queue_uid = stored;
    if sum != Some(codec::meta_checksum(version, stored)) {
        let mut raw = Vec::with_capacity(24);
        raw.extend_from_slice(&version.to_le_bytes());
        raw.extend_from_slice(&stored.to_le_bytes());
        raw.extend_from_slice(&sum.unwrap_or(0).to_le_bytes());
        snapshot.max_queue_uid = stored.max(highest_uid);
        damaged.push(Damaged {
            loc: Loc::Meta,
            raw,
            reason: format!(
                "meta checksum mismatch (max_queue_uid {stored}); using {} and rewriting it",
                snapshot.max_queue_uid
            ),
            replacement: None,
            failed: true,
        });
    }
    counts.push((table::META, 1));

    let quarantine_len = txn.open_table(QUARANTINE)?.len()?;
    Ok(Scan {
        snapshot,
        damaged,
        counts,
        quarantine_len,
    })
}

/// The tables of one write transaction.
struct Tables<'t> {
    meta: Table<'t, &'static str, u64>,
    queues: Table<'t, u64, &'static [u8]>,
    messages: Table<'t, (u64, u64), &'static [u8]>,
    message_state: Table<'t, (u64, u64), &'static [u8]>,
    message_body: Table<'t, (u64, u64), &'static [u8]>,
    move_tasks: Table<'t, &'static [u8], &'static [u8]>,
    dedup: Table<'t, (u64, &'static [u8]), &'static [u8]>,
    documents: Table<'t, (&'static [u8], &'static [u8]), &'static [u8]>,
}

impl<'t> Tables<'t> {
    fn open(txn: &'t WriteTransaction) -> Result<Self, StoreError> {
        Ok(Tables {
            meta: txn.open_table(META)?,
            queues: txn.open_table(QUEUES)?,
            messages: txn.open_table(MESSAGES)?,
            message_state: txn.open_table(MESSAGE_STATE)?,
            message_body: txn.open_table(MESSAGE_BODY)?,
            move_tasks: txn.open_table(MOVE_TASKS)?,
            dedup: txn.open_table(DEDUP)?,
            documents: txn.open_table(DOCUMENTS)?,
        })
    }

    /// Applies one mutation exactly as [`crate::MemoryStore`] does.
    fn apply(&mut self, mutation: Mutation, max_queue_uid: &mut u64) -> Result<(), StoreError> {
        match mutation {
            Mutation::PutQueue(q) => {
                *max_queue_uid = (*max_queue_uid).max(q.uid);
                self.queues
                    .insert(q.uid, codec::encode_queue(&q).as_slice())?;
            }
            Mutation::DeleteQueue { uid } => {
                self.queues.remove(uid)?;
                self.remove_messages(uid, 0..=u64::MAX)?;
                let all: &[u8] = &[];
                if let Some(next) = uid.checked_add(1) {
                    self.dedup
                        .retain_in((uid, all)..(next, all), |_, _| false)?;
                } else {
                    self.dedup.retain_in((uid, all).., |_, _| false)?;
                }
            }
            Mutation::PutMessage(r) => {
                let key = (r.queue_uid, r.seq);
                self.messages
                    .insert(key, codec::encode_message(&r).as_slice())?;
                // A state the header implies is not stored (format 5); a put over a message
                // that had one (received before) drops it.
                if MessageState::is_implied(&r) {
                    self.message_state.remove(key)?;
                } else {
                    self.message_state.insert(
                        key,
                        codec::encode_message_state(r.queue_uid, r.seq, &MessageState::of(&r))
                            .as_slice(),
                    )?;
                }
                // `Payload::Stored`: the payload already under this key is kept.
                if let Some(p) = r.payload.loaded() {
                    self.message_body.insert(
                        key,
                        codec::encode_message_body(r.queue_uid, r.seq, p).as_slice(),
                    )?;
                }
            }
            Mutation::UpdateMessage {
                queue_uid,
                seq,
                visible_at_ms,
                receive_count,
                first_receive_ms,
                last_receive_ms,
            } => {
                // Only the small state record is written. A replaced record means the message
                // exists; otherwise (its first receive, or an update of a message already
                // deleted) the header is looked up, and the insert taken back if it is gone.
                let state = MessageState {
                    visible_at_ms,
                    receive_count,
                    first_receive_ms,
                    last_receive_ms,
                };
                let replaced = self
                    .message_state
                    .insert(
                        (queue_uid, seq),
                        codec::encode_message_state(queue_uid, seq, &state).as_slice(),
                    )?
                    .is_some();
                if !replaced && self.messages.get((queue_uid, seq))?.is_none() {
                    self.message_state.remove((queue_uid, seq))?;
                }
            }
            Mutation::DeleteMessage { queue_uid, seq } => {
                self.messages.remove((queue_uid, seq))?;
                self.message_state.remove((queue_uid, seq))?;
                self.message_body.remove((queue_uid, seq))?;
            }
            Mutation::Purge {
                queue_uid,
                up_to_seq,
            } => self.remove_messages(queue_uid, 0..=up_to_seq)?,
            Mutation::PutMoveTask(t) => {
                self.move_tasks
                    .insert(t.task_id.as_bytes(), codec::encode_move_task(&t).as_slice())?;
            }
            Mutation::DeleteMoveTask { task_id } => {
                self.move_tasks.remove(task_id.as_bytes())?;
            }
            Mutation::PutDedup(d) => {
                self.dedup.insert(
                    (d.queue_uid, d.key.as_bytes()),
                    codec::encode_dedup(&d).as_slice(),
                )?;
            }
            Mutation::DeleteDedup { queue_uid, key } => {
                self.dedup.remove((queue_uid, key.as_bytes()))?;
            }
            Mutation::PutDocument(d) => {
                self.documents.insert(
                    (d.kind.as_bytes(), d.key.as_bytes()),
                    codec::encode_document(&d).as_slice(),
                )?;
            }
            Mutation::DeleteDocument { kind, key } => {
                self.documents.remove((kind.as_bytes(), key.as_bytes()))?;
            }
            Mutation::DeleteDocuments { kind, prefix } => {
                let (kind, prefix) = (kind.as_bytes(), prefix.as_bytes());
                self.documents.retain_in((kind, prefix).., |(k, key), _| {
                    !(k == kind && key.starts_with(prefix))
                })?;
            }
        }
        Ok(())
    }

    fn remove_messages(
        &mut self,
        queue_uid: u64,
        seqs: RangeInclusive<u64>,
    ) -> Result<(), StoreError> {
        let (first, last) = seqs.into_inner();
        self.messages
            .retain_in((queue_uid, first)..=(queue_uid, last), |_, _| false)?;
        self.message_state
            .retain_in((queue_uid, first)..=(queue_uid, last), |_, _| false)?;
        self.message_body
            .retain_in((queue_uid, first)..=(queue_uid, last), |_, _| false)?;
        Ok(())
    }

    /// Removes a record that moved to the quarantine.
    fn remove(&mut self, loc: &Loc) -> Result<(), StoreError> {
        match loc {
            Loc::Meta => {}
            Loc::Queue(uid) => {
                self.queues.remove(*uid)?;
            }
            Loc::Message(uid, seq) => {
                self.messages.remove((*uid, *seq))?;
            }
            Loc::State(uid, seq) => {
                self.message_state.remove((*uid, *seq))?;
            }
            Loc::Body(uid, seq) => {
                self.message_body.remove((*uid, *seq))?;
            }
            Loc::MoveTask(id) => {
                self.move_tasks.remove(id.as_slice())?;
            }
            Loc::Dedup(uid, key) => {
                self.dedup.remove((*uid, key.as_slice()))?;
            }
            Loc::Document(kind, key) => {
                self.documents.remove((kind.as_slice(), key.as_slice()))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_durability_modes() {
        assert_eq!("strict".parse(), Ok(DurabilityMode::Strict));
        assert_eq!(
            "relaxed".parse(),
            Ok(DurabilityMode::Relaxed { interval_ms: 100 })
        );
        assert_eq!(
            "relaxed:250".parse(),
            Ok(DurabilityMode::Relaxed { interval_ms: 250 })
        );
        for bad in ["", "Strict", "relaxed:", "relaxed:0", "relaxed:x", "fast"] {
            assert!(bad.parse::<DurabilityMode>().is_err(), "{bad}");
        }
    }

    #[test]
    fn refuses_a_newer_format() {
        let dir = tempfile::tempdir().unwrap();
        drop(RedbStore::open(dir.path(), DurabilityMode::Strict).unwrap());
        {
            let db = Database::create(dir.path().join(FILE_NAME)).unwrap();
            let txn = db.begin_write().unwrap();
            txn.open_table(META)
                .unwrap()
                .insert(META_FORMAT_VERSION, FORMAT_VERSION + 1)
                .unwrap();
            txn.commit().unwrap();
        }
        let err = RedbStore::open(dir.path(), DurabilityMode::Strict).unwrap_err();
        assert!(
            matches!(
                err,
                StoreError::UnsupportedFormat {
                    found: 6,
                    supported: 5
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("newer than this build supports"));
    }

    /// [`message`] in the state its header implies (format 5 stores no state record).
    fn never_received(uid: u64, seq: u64) -> crate::MessageRecord {
        let m = message(uid, seq);
        let implied = MessageState::implied(m.enqueued_ms);
        crate::MessageRecord {
            visible_at_ms: implied.visible_at_ms,
            receive_count: implied.receive_count,
            first_receive_ms: implied.first_receive_ms,
            last_receive_ms: implied.last_receive_ms,
            ..m
        }
    }

    fn message(uid: u64, seq: u64) -> crate::MessageRecord {
        crate::MessageRecord {
            queue_uid: uid,
            seq,
            message_id: format!("m{seq}"),
            payload: crate::Payload::new("body", Default::default(), Default::default()),
            sender_id: "s".into(),
            sent_ms: 1,
            enqueued_ms: 1,
            visible_at_ms: 50,
            receive_count: 2,
            first_receive_ms: Some(3),
            last_receive_ms: Some(4),
            group_id: None,
            dedup_id: None,
            sequence_number: None,
            dead_letter_source_arn: None,
            dead_lettered_ms: None,
        }
    }

    fn wait(d: Durable) {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(d.wait())
            .unwrap();
    }

    /// Edits the closed file with plain redb.
    fn edit(dir: &Path, f: impl FnOnce(&WriteTransaction)) {
        let db = Database::create(dir.join(FILE_NAME)).unwrap();
        let txn = db.begin_write().unwrap();
        f(&txn);
        txn.commit().unwrap();
    }

    #[test]
    fn orphaned_state_records_and_a_bad_meta_checksum_are_repaired() {
        let dir = tempfile::tempdir().unwrap();
        let fresh = never_received(3, 3);
        {
            let store = RedbStore::open(dir.path(), DurabilityMode::Strict).unwrap();
            wait(store.submit(vec![
                Mutation::PutMessage(message(3, 1)),
                Mutation::PutMessage(message(3, 2)),
                Mutation::PutMessage(fresh),
            ]));
        }
        edit(dir.path(), |txn| {
            let mut states = txn.open_table(MESSAGE_STATE).unwrap();
            // Format 5 keeps no state record for a message never received.
            assert!(states.get((3, 3)).unwrap().is_none());
            states.remove((3, 1)).unwrap();
            let orphan = codec::encode_message_state(3, 9, &MessageState::default());
            states.insert((3, 9), orphan.as_slice()).unwrap();
            // max_queue_uid lowered behind the checksum's back.
            txn.open_table(META)
                .unwrap()
                .insert(META_MAX_QUEUE_UID, 1)
                .unwrap();
        });
        let store = RedbStore::open(dir.path(), DurabilityMode::Strict).unwrap();
        let snapshot = store.try_load().unwrap();
        let mut found: Vec<_> = snapshot
            .quarantined
            .iter()
            .map(|q| (q.table.as_str(), q.key.as_str()))
            .collect();
        found.sort_unstable();
        assert_eq!(found, [("message_state", "3/9"), ("meta", "max_queue_uid")]);
        // A message without a state record is in the state its header implies: visible
        // since it was enqueued, never received (a lost record cannot be told from that).
        assert_eq!(snapshot.messages.len(), 3);
        let state = |m: &crate::MessageRecord| {
            (m.seq, m.visible_at_ms, m.receive_count, m.first_receive_ms)
        };
        assert_eq!(state(&snapshot.messages[0]), (1, 1, 0, None));
        assert_eq!(state(&snapshot.messages[1]), (2, 50, 2, Some(3)));
        assert_eq!(state(&snapshot.messages[2]), (3, 1, 0, None));
        // The highest uid in use wins over the damaged value.
        assert_eq!(snapshot.max_queue_uid, 3);
        drop(store);
        let store = RedbStore::open(dir.path(), DurabilityMode::Strict).unwrap();
        let again = store.try_load().unwrap();
        assert!(again.quarantined.is_empty(), "{:?}", again.quarantined);
        assert_eq!(again.max_queue_uid, 3);
        assert_eq!(again.messages, snapshot.messages);
        assert_eq!(again.quarantined_total, 2);
    }

    /// A receive's first state record, and a put in the implied state over a received message,
    /// keep `message_state` holding exactly the states headers do not imply.
    #[test]
    fn state_records_exist_only_for_states_the_header_does_not_imply() {
        let dir = tempfile::tempdir().unwrap();
        let fresh = never_received(3, 1);
        let received = Mutation::UpdateMessage {
            queue_uid: 3,
            seq: 1,
            visible_at_ms: 70,
            receive_count: 1,
            first_receive_ms: Some(60),
            last_receive_ms: Some(60),
        };
        let states = |dir: &Path| {
            let db = Database::create(dir.join(FILE_NAME)).unwrap();
            let txn = db.begin_read().unwrap();
            let table = txn.open_table(MESSAGE_STATE).unwrap();
            table
                .iter()
                .unwrap()
                .map(|e| e.unwrap().0.value())
                .collect::<Vec<_>>()
        };
        let store = RedbStore::open(dir.path(), DurabilityMode::Strict).unwrap();
        wait(store.submit(vec![Mutation::PutMessage(fresh.clone())]));
        store.shutdown();
        drop(store);
        assert_eq!(states(dir.path()), []);

        let store = RedbStore::open(dir.path(), DurabilityMode::Strict).unwrap();
        // An update of a message that does not exist leaves no orphan.
        let mut ghost = received.clone();
        if let Mutation::UpdateMessage { seq, .. } = &mut ghost {
            *seq = 2;
        }
        wait(store.submit(vec![received, ghost]));
        store.shutdown();
        drop(store);
        assert_eq!(states(dir.path()), [(3, 1)]);

        let store = RedbStore::open(dir.path(), DurabilityMode::Strict).unwrap();
        let loaded = store.try_load().unwrap();
        assert_eq!(
            (
                loaded.messages[0].receive_count,
                loaded.messages[0].visible_at_ms
            ),
            (1, 70)
        );
        assert!(loaded.quarantined.is_empty());
        // Put back in the implied state (as a redrive does): the record goes.
        wait(store.submit(vec![Mutation::PutMessage(fresh)]));
        store.shutdown();
        drop(store);
        assert_eq!(states(dir.path()), []);
    }

    #[test]
    fn a_format_1_record_that_does_not_decode_is_quarantined_by_the_migration() {
        let dir = tempfile::tempdir().unwrap();
        edit(dir.path(), |txn| {
            let mut meta = txn.open_table(META).unwrap();
            meta.insert(META_FORMAT_VERSION, 1).unwrap();
            meta.insert(META_MAX_QUEUE_UID, 1).unwrap();
            let mut messages = txn.open_table(MESSAGES).unwrap();
            messages.insert((1, 1), [1u8, 2, 3].as_slice()).unwrap();
            txn.open_table(QUEUES).unwrap();
            txn.open_table(MOVE_TASKS_V1).unwrap();
            txn.open_table(DEDUP_V1).unwrap();
        });
        let store = RedbStore::open(dir.path(), DurabilityMode::Strict).unwrap();
        let snapshot = store.try_load().unwrap();
        assert!(snapshot.messages.is_empty());
        assert!(
            snapshot.quarantined.is_empty(),
            "moved at open, not at load"
        );
        let listed = store.quarantined().unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(
            (listed[0].table.as_str(), listed[0].key.as_str()),
            ("messages", "1/1")
        );
        assert!(
            listed[0].reason.contains("format-1 record"),
            "{}",
            listed[0].reason
        );
        assert_eq!(snapshot.quarantined_total, 1);
    }

    #[test]
    fn a_second_open_of_the_same_directory_fails() {
        let dir = tempfile::tempdir().unwrap();
        let _store = RedbStore::open(dir.path(), DurabilityMode::Strict).unwrap();
        assert!(RedbStore::open(dir.path(), DurabilityMode::Strict).is_err());
    }

    #[test]
    fn submits_after_shutdown_fail() {
        let dir = tempfile::tempdir().unwrap();
        let store = RedbStore::open(dir.path(), DurabilityMode::Strict).unwrap();
        store.shutdown();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let d = store.submit(vec![Mutation::DeleteMessage {
            queue_uid: 1,
            seq: 1,
        }]);
        assert!(rt.block_on(d.wait()).is_err());
        assert!(matches!(store.try_load(), Err(StoreError::WriterStopped)));
    }
}
