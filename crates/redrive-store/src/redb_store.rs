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
    Database, Durability, ReadableDatabase, ReadableTable, StorageBackend, Table, TableDefinition,
    WriteTransaction,
};
use tokio::sync::oneshot;

use crate::codec::{self, CodecError};
use crate::{Durable, Mutation, Snapshot, Store, StoreHealth};

/// Name of the database file inside the store directory.
pub const FILE_NAME: &str = "redrive.redb";

/// Format version written by this build (the `format_version` entry of the `meta` table).
pub const FORMAT_VERSION: u64 = 1;

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
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            mode: DurabilityMode::Strict,
            reserve_bytes: DEFAULT_RESERVE_BYTES,
        }
    }
}

/// redb's page cache. The engine keeps every record in memory itself, so the cache only needs
/// the B-tree's upper levels and the pages being written.
const CACHE_BYTES: usize = 64 * 1024 * 1024;

const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const QUEUES: TableDefinition<u64, &[u8]> = TableDefinition::new("queues");
const MESSAGES: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("messages");
const MOVE_TASKS: TableDefinition<&str, &[u8]> = TableDefinition::new("move_tasks");
const DEDUP: TableDefinition<(u64, &str), &[u8]> = TableDefinition::new("dedup");
/// Extension documents `(kind, key) → JSON` (added within format version 1: a file without the
/// table simply has none).
const DOCUMENTS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("documents");

const META_FORMAT_VERSION: &str = "format_version";
const META_MAX_QUEUE_UID: &str = "max_queue_uid";

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
    #[error("corrupt record in table {table}: {source}")]
    Corrupt {
        table: &'static str,
        source: CodecError,
    },
    #[error("store writer has stopped")]
    WriterStopped,
    #[error("store refuses writes after an earlier failure: {0}")]
    Failed(String),
    #[error("cannot keep the space reserve {}: {source}", path.display())]
    Reserve {
        path: PathBuf,
        source: std::io::Error,
    },
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
    Load(Reply<Snapshot>),
    Recover(Reply<(u64, Snapshot)>),
    Compact(Reply<bool>),
    Flush(Reply<()>),
    /// Extension documents of a kind in a key range (`Store::documents`).
    Documents(String, String, String, Reply<Vec<crate::DocumentRecord>>),
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
    low_space: Mutex<Option<String>>,
    free_bytes: Mutex<Option<u64>>,
    last_error: Mutex<Option<String>>,
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
            Request::Load(_) => "Load",
            Request::Recover(_) => "Recover",
            Request::Compact(_) => "Compact",
            Request::Flush(_) => "Flush",
            Request::Documents(..) => "Documents",
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
        let open = move || -> Result<Database, StoreError> {
            Ok(Database::builder()
                .set_cache_size(CACHE_BYTES)
                .create(&file)?)
        };
        let mut db = open()?;
        let max_queue_uid = init_format(&db)?;
        // Nothing else uses the database yet: the cheapest moment to give freed space back.
        db.compact()?;
        let reserve = (options.reserve_bytes > 0).then(|| Reserve {
            path: dir.join(RESERVE_FILE_NAME),
            dir: dir.to_path_buf(),
            bytes: options.reserve_bytes,
        });
        Self::spawn(db, Box::new(open), reserve, options.mode, max_queue_uid)
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
        Self::spawn(db, Box::new(open), None, mode, max_queue_uid)
    }

    fn spawn(
        db: Database,
        open: Opener,
        reserve: Option<Reserve>,
        mode: DurabilityMode,
        max_queue_uid: u64,
    ) -> Result<RedbStore, StoreError> {
        let shared = Arc::new(Shared::default());
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

    /// Reads every record. Unlike [`Store::load`] it reports a corrupt record or an I/O error
    /// instead of failing the store: call it at startup to refuse to start on a damaged file.
    /// Sees every batch submitted before the call.
    pub fn try_load(&self) -> Result<Snapshot, StoreError> {
        self.call(Request::Load)
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
    /// Reads every record. On a corrupt record or I/O error this logs, marks the store failed
    /// (every later write is refused) and returns an empty snapshot; use
    /// [`RedbStore::try_load`] to handle the error instead.
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

    fn submit(&self, batch: Vec<Mutation>) -> Durable {
        if batch.is_empty() {
            return Durable::done();
        }
        let (ack, rx) = oneshot::channel();
        if let Some(reason) = self.shared.failure() {
            let _ = ack.send(Err(reason));
        } else {
            // If the writer is gone the ack is dropped and `wait` reports "store writer stopped".
            let _ = self.tx.send(Request::Batch(batch, ack));
        }
        Durable::pending(rx)
    }
}

/// Checks or writes the format version, creates the tables and returns `max_queue_uid`.
fn init_format(db: &Database) -> Result<u64, StoreError> {
    let txn = db.begin_write()?;
    let max_queue_uid;
    {
        let mut meta = txn.open_table(META)?;
        let found = meta.get(META_FORMAT_VERSION)?.map(|v| v.value());
        match found {
            None => {
                meta.insert(META_FORMAT_VERSION, FORMAT_VERSION)?;
            }
            Some(v) if v == FORMAT_VERSION => {}
            Some(v) if v > FORMAT_VERSION => {
                return Err(StoreError::UnsupportedFormat {
                    found: v,
                    supported: FORMAT_VERSION,
                });
            }
            // Older versions would be migrated here, inside this transaction, before the
            // version is bumped. Version 1 is the first, so anything else is not ours.
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
        txn.open_table(MOVE_TASKS)?;
        txn.open_table(DEDUP)?;
        txn.open_table(DOCUMENTS)?;
    }
    txn.commit()?;
    Ok(max_queue_uid)
}

type Opener = Box<dyn FnMut() -> Result<Database, StoreError> + Send>;

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
            *shared.low_space.lock() = None;
            return;
        }
        if free.is_some_and(|f| f >= 2 * self.bytes) {
            match self.create() {
                Ok(()) => {
                    if shared.low_space.lock().take().is_some() {
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
        let mut low = shared.low_space.lock();
        if low.is_none() {
            tracing::warn!(
                free_bytes = free,
                reserve_bytes = self.bytes,
                "store space is short; refusing writes that grow the store"
            );
        }
        *low = Some(format!(
            "the space reserve ({} bytes) is given up and not yet restored; {} bytes free",
            self.bytes,
            free.map_or_else(|| "unknown".to_string(), |f| f.to_string())
        ));
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
        *shared.low_space.lock() = Some(format!(
            "a write failed; the space reserve ({} bytes) is released until there is room again",
            self.bytes
        ));
        *shared.free_bytes.lock() = self.free_bytes();
    }
}

struct Writer {
    /// `None` after a failure, until [`Request::Recover`] reopens it.
    db: Option<Database>,
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
}

impl Writer {
    fn run(mut self, rx: mpsc::Receiver<Request>) {
        while let Some(request) = self.next(&rx) {
            match request {
                Request::Batch(batch, ack) => self.group(&rx, batch, ack),
                Request::Load(reply) => {
                    let _ = reply.send(self.load());
                }
                Request::Recover(reply) => {
                    let _ = reply.send(self.recover());
                }
                Request::Compact(reply) => {
                    let _ = reply.send(self.compact());
                }
                Request::Flush(reply) => {
                    let _ = reply.send(self.sync());
                }
                Request::Documents(kind, from, to, reply) => {
                    let _ = reply.send(self.documents(&kind, &from, &to));
                }
                Request::Shutdown => break,
            }
        }
        if let Err(e) = self.sync() {
            tracing::error!(error = %e, "final store sync failed");
        }
        // Dropping the database closes the file and releases its lock.
    }

    /// The next request; in relaxed mode, makes pending commits durable when their interval
    /// runs out while waiting.
    fn next(&mut self, rx: &mpsc::Receiver<Request>) -> Option<Request> {
        if let Some(request) = self.deferred.take() {
            return Some(request);
        }
        loop {
            let sync_due = match (self.mode, self.dirty_since) {
                (DurabilityMode::Relaxed { interval_ms }, Some(since)) => {
                    Some(since + Duration::from_millis(interval_ms))
                }
                _ => None,
            };
            let low_space = self.reserve.is_some() && self.shared.low_space.lock().is_some();
            let space_due = low_space.then(|| Instant::now() + LOW_SPACE_CHECK);
            let deadline = match (sync_due, space_due) {
                (None, None) => return rx.recv().ok(),
                (Some(a), Some(b)) => a.min(b),
                (a, b) => a.or(b).unwrap_or_else(Instant::now),
            };
            let now = Instant::now();
            let timed_out = now >= deadline
                || match rx.recv_timeout(deadline - now) {
                    Ok(request) => return Some(request),
                    Err(mpsc::RecvTimeoutError::Timeout) => true,
                    Err(mpsc::RecvTimeoutError::Disconnected) => return None,
                };
            if timed_out {
                if sync_due.is_some_and(|due| Instant::now() >= due) {
                    let _ = self.sync();
                }
                if low_space && let Some(reserve) = &self.reserve {
                    reserve.refresh(&self.shared);
                }
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

        let result = match self.shared.failure() {
            Some(reason) => Err(reason),
            None => self.commit_group(batches).map_err(|e| {
                let reason = format!("store commit failed: {e}");
                self.failed(reason.clone());
                reason
            }),
        };
        for ack in acks {
            let _ = ack.send(result.clone());
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
        self.dirty_since = None;
        if let Some(reserve) = &self.reserve {
            reserve.release(&self.shared);
        }
    }

    fn db(&self) -> Result<&Database, StoreError> {
        self.db.as_ref().ok_or_else(|| {
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
        if self.db.is_none() {
            let db = (self.open)()?;
            self.max_queue_uid = init_format(&db)?;
            self.db = Some(db);
            tracing::info!("store reopened after a write failure");
        }
        let failures = self.shared.failures.load(Ordering::SeqCst);
        let snapshot = self.load()?;
        self.shared.clear_failure();
        if let Some(reserve) = &self.reserve {
            reserve.refresh(&self.shared);
        }
        Ok((failures, snapshot))
    }

    fn commit_group(&mut self, batches: Vec<Vec<Mutation>>) -> Result<(), StoreError> {
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
                tables.meta.insert(META_MAX_QUEUE_UID, max_queue_uid)?;
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

    fn compact(&mut self) -> Result<bool, StoreError> {
        self.sync()?;
        let db = self.db.as_mut().ok_or_else(|| {
            StoreError::Failed("the database is closed after a write failure".into())
        })?;
        Ok(db.compact()?)
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
        for entry in txn.open_table(DOCUMENTS)?.range((kind, from)..(kind, to))? {
            let (k, v) = entry?;
            let (kind, key) = k.value();
            out.push(crate::DocumentRecord {
                kind: kind.to_string(),
                key: key.to_string(),
                value: v.value().to_vec(),
            });
        }
        Ok(out)
    }

    fn load(&self) -> Result<Snapshot, StoreError> {
        let txn = self.db()?.begin_read()?;
        let corrupt = |table| move |source| StoreError::Corrupt { table, source };
        let mut snapshot = Snapshot {
            max_queue_uid: txn
                .open_table(META)?
                .get(META_MAX_QUEUE_UID)?
                .map_or(0, |v| v.value()),
            ..Snapshot::default()
        };
        for entry in txn.open_table(QUEUES)?.iter()? {
            let (k, v) = entry?;
            let record = codec::decode_queue(k.value(), v.value()).map_err(corrupt("queues"))?;
            snapshot.queues.push(record);
        }
        for entry in txn.open_table(MESSAGES)?.iter()? {
            let (k, v) = entry?;
            let (queue_uid, seq) = k.value();
            let record =
                codec::decode_message(queue_uid, seq, v.value()).map_err(corrupt("messages"))?;
            snapshot.messages.push(record);
        }
        for entry in txn.open_table(MOVE_TASKS)?.iter()? {
            let (k, v) = entry?;
            let record =
                codec::decode_move_task(k.value(), v.value()).map_err(corrupt("move_tasks"))?;
            snapshot.move_tasks.push(record);
        }
        for entry in txn.open_table(DEDUP)?.iter()? {
            let (k, v) = entry?;
            let (queue_uid, key) = k.value();
            let record =
                codec::decode_dedup(queue_uid, key, v.value()).map_err(corrupt("dedup"))?;
            snapshot.dedup.push(record);
        }
        for entry in txn.open_table(DOCUMENTS)?.iter()? {
            let (k, v) = entry?;
            let (kind, key) = k.value();
            snapshot.documents.push(crate::DocumentRecord {
                kind: kind.to_string(),
                key: key.to_string(),
                value: v.value().to_vec(),
            });
        }
        Ok(snapshot)
    }
}

/// The tables of one write transaction.
struct Tables<'t> {
    meta: Table<'t, &'static str, u64>,
    queues: Table<'t, u64, &'static [u8]>,
    messages: Table<'t, (u64, u64), &'static [u8]>,
    move_tasks: Table<'t, &'static str, &'static [u8]>,
    dedup: Table<'t, (u64, &'static str), &'static [u8]>,
    documents: Table<'t, (&'static str, &'static str), &'static [u8]>,
}

impl<'t> Tables<'t> {
    fn open(txn: &'t WriteTransaction) -> Result<Self, StoreError> {
        Ok(Tables {
            meta: txn.open_table(META)?,
            queues: txn.open_table(QUEUES)?,
            messages: txn.open_table(MESSAGES)?,
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
                if let Some(next) = uid.checked_add(1) {
                    self.dedup.retain_in((uid, "")..(next, ""), |_, _| false)?;
                } else {
                    self.dedup.retain_in((uid, "").., |_, _| false)?;
                }
            }
            Mutation::PutMessage(r) => {
                self.messages
                    .insert((r.queue_uid, r.seq), codec::encode_message(&r).as_slice())?;
            }
            Mutation::UpdateMessage {
                queue_uid,
                seq,
                visible_at_ms,
                receive_count,
                first_receive_ms,
                last_receive_ms,
            } => {
                let current = self
                    .messages
                    .get((queue_uid, seq))?
                    .map(|v| v.value().to_vec());
                if let Some(mut bytes) = current {
                    codec::patch_message_state(
                        &mut bytes,
                        visible_at_ms,
                        receive_count,
                        first_receive_ms,
                        last_receive_ms,
                    )
                    .map_err(|source| StoreError::Corrupt {
                        table: "messages",
                        source,
                    })?;
                    self.messages.insert((queue_uid, seq), bytes.as_slice())?;
                }
            }
            Mutation::DeleteMessage { queue_uid, seq } => {
                self.messages.remove((queue_uid, seq))?;
            }
            Mutation::Purge {
                queue_uid,
                up_to_seq,
            } => self.remove_messages(queue_uid, 0..=up_to_seq)?,
            Mutation::PutMoveTask(t) => {
                self.move_tasks
                    .insert(t.task_id.as_str(), codec::encode_move_task(&t).as_slice())?;
            }
            Mutation::DeleteMoveTask { task_id } => {
                self.move_tasks.remove(task_id.as_str())?;
            }
            Mutation::PutDedup(d) => {
                self.dedup.insert(
                    (d.queue_uid, d.key.as_str()),
                    codec::encode_dedup(&d).as_slice(),
                )?;
            }
            Mutation::DeleteDedup { queue_uid, key } => {
                self.dedup.remove((queue_uid, key.as_str()))?;
            }
            Mutation::PutDocument(d) => {
                self.documents
                    .insert((d.kind.as_str(), d.key.as_str()), d.value.as_slice())?;
            }
            Mutation::DeleteDocument { kind, key } => {
                self.documents.remove((kind.as_str(), key.as_str()))?;
            }
            Mutation::DeleteDocuments { kind, prefix } => {
                let (kind, prefix) = (kind.as_str(), prefix.as_str());
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
                    found: 2,
                    supported: 1
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("newer than this build supports"));
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
