//! Crash consistency, in the style of redb's `tests/crash_consistency.rs`: a `StorageBackend`
//! that records which bytes a completed `sync_data` made durable, "crashes" at a chosen
//! operation (keeping the durable image plus a prefix of the writes issued since the last
//! sync, the last of them possibly torn) and fails everything afterwards. The store is then
//! reopened over the surviving bytes.
//!
//! Checked: the reopened store is exactly the state after some prefix of the submitted batches
//! (so no batch, and no commit, is half-applied), and in strict mode that prefix includes every
//! batch acknowledged before the crash.

use std::collections::BTreeMap;
use std::io::{Error, ErrorKind};
use std::sync::{Arc, Mutex};

use redb::backends::InMemoryBackend;
use redb::{Database, StorageBackend};
use redrive_store::{
    DurabilityMode, MemoryStore, MessageRecord, Mutation, QueueRecord, RedbStore, Store,
};

use crate::common::{block_on, sorted};

/// SplitMix64: a tiny deterministic generator, so failures reproduce from the printed seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// One file's bytes.
#[derive(Debug, Default, Clone)]
struct FileImage {
    /// Current contents: every write lands here immediately.
    live: Vec<u8>,
    /// Contents as of the last completed sync.
    durable: Vec<u8>,
    /// Writes issued since the last completed sync, in order.
    unsynced: Vec<(usize, Vec<u8>)>,
}

/// The files of one store (the redb file, and format 4's journal) and one crash point shared
/// by them: a crash freezes every file at the same moment.
#[derive(Debug)]
struct CrashState {
    files: Vec<FileImage>,
    /// Mutating operations (write, set_len, sync_data) seen while armed, over all files.
    ops: u64,
    /// Crash when `ops` reaches this.
    crash_at: Option<u64>,
    /// Seed deciding how many unsynced writes survive and where the last one tears.
    seed: u64,
    /// The post-crash image of each file, once crashed.
    images: Option<Vec<Vec<u8>>>,
}

impl Default for CrashState {
    fn default() -> Self {
        CrashState {
            files: vec![FileImage::default()],
            ops: 0,
            crash_at: None,
            seed: 0,
            images: None,
        }
    }
}

impl CrashState {
    /// Counts an operation; returns an error once the crash point is reached.
    fn tick(&mut self) -> Result<(), Error> {
        if self.images.is_some() {
            return Err(Error::other("crashed"));
        }
        self.ops += 1;
        if self.crash_at.is_some_and(|at| self.ops >= at) {
            self.images = Some((0..self.files.len()).map(|f| self.crash_image(f)).collect());
            return Err(Error::other("crashed"));
        }
        Ok(())
    }

    fn crash_image(&self, file: usize) -> Vec<u8> {
        let mut rng = Rng(self.seed ^ (file as u64).wrapping_mul(0x9E37_79B9));
        let f = &self.files[file];
        let mut image = f.durable.clone();
        let survive = rng.below(f.unsynced.len() as u64 + 1) as usize;
        let tear = rng.below(2) == 0;
        for (i, (offset, data)) in f.unsynced.iter().take(survive).enumerate() {
            let mut data = &data[..];
            if tear && i + 1 == survive {
                data = &data[..rng.below(data.len() as u64 + 1) as usize];
            }
            if image.len() < offset + data.len() {
                image.resize(offset + data.len(), 0);
            }
            image[*offset..offset + data.len()].copy_from_slice(data);
        }
        image
    }
}

#[derive(Clone, Debug, Default)]
struct CrashBackend {
    state: Arc<Mutex<CrashState>>,
    file: usize,
}

impl CrashBackend {
    /// Another file of the same store, crashing with this one.
    fn second_file(&self) -> CrashBackend {
        let mut s = self.state.lock().unwrap();
        s.files.push(FileImage::default());
        CrashBackend {
            state: self.state.clone(),
            file: s.files.len() - 1,
        }
    }

    fn set_contents(&self, bytes: &[u8]) {
        let mut s = self.state.lock().unwrap();
        let f = &mut s.files[self.file];
        f.live = bytes.to_vec();
        f.durable = bytes.to_vec();
    }

    fn arm(&self, crash_at: Option<u64>, seed: u64) {
        let mut s = self.state.lock().unwrap();
        s.ops = 0;
        s.crash_at = crash_at;
        s.seed = seed;
    }

    fn ops(&self) -> u64 {
        self.state.lock().unwrap().ops
    }

    fn crashed(&self) -> bool {
        self.state.lock().unwrap().images.is_some()
    }

    /// What a restart finds: the crash image, or the durable bytes if it never crashed.
    fn surviving_bytes(&self) -> Vec<u8> {
        let s = self.state.lock().unwrap();
        s.images.as_ref().map_or_else(
            || s.files[self.file].durable.clone(),
            |images| images[self.file].clone(),
        )
    }
}

impl StorageBackend for CrashBackend {
    fn len(&self) -> Result<u64, Error> {
        Ok(self.state.lock().unwrap().files[self.file].live.len() as u64)
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), Error> {
        let s = self.state.lock().unwrap();
        if s.images.is_some() {
            return Err(Error::other("crashed"));
        }
        let live = &s.files[self.file].live;
        let offset = usize::try_from(offset).unwrap();
        if offset + out.len() > live.len() {
            return Err(Error::from(ErrorKind::UnexpectedEof));
        }
        out.copy_from_slice(&live[offset..offset + out.len()]);
        Ok(())
    }

    fn set_len(&self, len: u64) -> Result<(), Error> {
        let mut s = self.state.lock().unwrap();
        s.tick()?;
        let f = &mut s.files[self.file];
        let len = usize::try_from(len).unwrap();
        f.live.resize(len, 0);
        // A shrink that survives a crash only after a sync: until then the durable image may
        // keep the old tail (as a file system may).
        Ok(())
    }

    fn sync_data(&self) -> Result<(), Error> {
        let mut s = self.state.lock().unwrap();
        s.tick()?;
        let f = &mut s.files[self.file];
        f.durable = f.live.clone();
        f.unsynced.clear();
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), Error> {
        let mut s = self.state.lock().unwrap();
        s.tick()?;
        let f = &mut s.files[self.file];
        let offset = usize::try_from(offset).unwrap();
        if f.live.len() < offset + data.len() {
            f.live.resize(offset + data.len(), 0);
        }
        f.live[offset..offset + data.len()].copy_from_slice(data);
        f.unsynced.push((offset, data.to_vec()));
        Ok(())
    }
}

const BATCHES: usize = 60;

fn queue(last_batch: usize) -> QueueRecord {
    QueueRecord {
        uid: 1,
        region: "us-east-1".into(),
        account: "000000000000".into(),
        name: "crash".into(),
        attributes: BTreeMap::new(),
        tags: [("last".to_owned(), last_batch.to_string())].into(),
        created_secs: 0,
        last_modified_secs: last_batch as u64,
        last_purge_ms: None,
    }
}

fn message(seq: u64, body_len: usize) -> MessageRecord {
    MessageRecord {
        queue_uid: 1,
        seq,
        message_id: format!("m{seq}"),
        payload: redrive_store::Payload::new(
            Arc::from("b".repeat(body_len)),
            BTreeMap::new(),
            BTreeMap::new(),
        ),
        sender_id: "s".into(),
        sent_ms: seq,
        enqueued_ms: seq,
        visible_at_ms: seq,
        receive_count: 0,
        first_receive_ms: None,
        last_receive_ms: None,
        group_id: None,
        dedup_id: None,
        sequence_number: None,
        dead_letter_source_arn: None,
        dead_lettered_ms: None,
    }
}

/// Batch `i` writes 1–8 messages (some large enough to grow the file), updates the first
/// message of batch `i - 1`, deletes the last one, and records `i` in the queue's tags.
fn workload(rng: &mut Rng) -> Vec<Vec<Mutation>> {
    let sizes: Vec<u64> = (0..BATCHES).map(|_| 1 + rng.below(8)).collect();
    (0..BATCHES)
        .map(|i| {
            let base = i as u64 * 8;
            let mut batch: Vec<Mutation> = (0..sizes[i])
                .map(|j| {
                    let body = if rng.below(4) == 0 { 20_000 } else { 200 };
                    Mutation::PutMessage(message(base + j, body))
                })
                .collect();
            if i > 0 {
                let prev = base - 8;
                batch.push(Mutation::UpdateMessage {
                    queue_uid: 1,
                    seq: prev,
                    visible_at_ms: 1,
                    receive_count: u32::try_from(i).unwrap(),
                    first_receive_ms: Some(1),
                    last_receive_ms: Some(i as u64),
                });
                if sizes[i - 1] > 1 {
                    batch.push(Mutation::DeleteMessage {
                        queue_uid: 1,
                        seq: prev + sizes[i - 1] - 1,
                    });
                }
            }
            batch.push(Mutation::PutQueue(queue(i)));
            batch
        })
        .collect()
}

/// Submits the batches in waves of 1–10 (each wave shares group commits), waiting for each
/// wave; returns which batches were acknowledged.
fn run(store: &RedbStore, batches: &[Vec<Mutation>], rng: &mut Rng) -> Vec<bool> {
    let mut acked = Vec::with_capacity(batches.len());
    let mut next = 0;
    while next < batches.len() {
        let wave = (1 + rng.below(10) as usize).min(batches.len() - next);
        let pending: Vec<_> = batches[next..next + wave]
            .iter()
            .map(|b| store.submit(b.clone()))
            .collect();
        acked.extend(pending.into_iter().map(|d| block_on(d.wait()).is_ok()));
        next += wave;
    }
    acked
}

fn in_memory(bytes: &[u8]) -> InMemoryBackend {
    let backend = InMemoryBackend::new();
    backend.set_len(bytes.len() as u64).unwrap();
    backend.write(0, bytes).unwrap();
    backend
}

/// The split message layout (format 2): 24 messages put once, then batches that only write
/// receive state (`UpdateMessage` of 4–12 messages: 35-byte `message_state` records), and
/// batches that delete a message right after receiving others. A crash inside a state-only
/// commit or between a state write and a delete must leave a prefix of whole batches, with
/// every message's state matching it (never a message without its state, nor a stale one).
fn receive_workload(rng: &mut Rng) -> Vec<Vec<Mutation>> {
    let mut out = vec![
        (0..24)
            .map(|seq| Mutation::PutMessage(message(seq, if seq % 5 == 0 { 20_000 } else { 300 })))
            .chain([Mutation::PutQueue(queue(0))])
            .collect::<Vec<_>>(),
    ];
    let mut alive: Vec<u64> = (0..24).collect();
    for i in 1..BATCHES {
        let mut batch = Vec::new();
        let receives = 4 + rng.below(9);
        for _ in 0..receives {
            if alive.is_empty() {
                break;
            }
            let seq = alive[rng.below(alive.len() as u64) as usize];
            batch.push(Mutation::UpdateMessage {
                queue_uid: 1,
                seq,
                visible_at_ms: 1_000 + i as u64,
                receive_count: u32::try_from(i).unwrap(),
                first_receive_ms: Some(1),
                last_receive_ms: Some(i as u64),
            });
        }
        if i % 3 == 0 && !alive.is_empty() {
            let seq = alive.remove(rng.below(alive.len() as u64) as usize);
            batch.push(Mutation::DeleteMessage { queue_uid: 1, seq });
            // An update of a message deleted just before is a no-op, as in MemoryStore.
            batch.push(Mutation::UpdateMessage {
                queue_uid: 1,
                seq,
                visible_at_ms: 7,
                receive_count: 7,
                first_receive_ms: None,
                last_receive_ms: None,
            });
        }
        batch.push(Mutation::PutQueue(queue(i)));
        out.push(batch);
    }
    out
}

/// Which store a crash scenario runs: a bare redb backend (every group a redb commit), or
/// format 4's journal checkpointed every `n` mutations.
#[derive(Clone, Copy, Debug)]
enum Layout {
    Redb,
    Journal(usize),
}

/// One crash scenario; returns whether the crash happened.
fn crash_once_with(
    mode: DurabilityMode,
    seed: u64,
    crash_at: Option<u64>,
    workload: fn(&mut Rng) -> Vec<Vec<Mutation>>,
    layout: Layout,
) -> (bool, u64) {
    let mut rng = Rng(seed);
    let batches = workload(&mut rng);
    let backend = CrashBackend::default();
    let journal = match layout {
        Layout::Redb => None,
        Layout::Journal(_) => Some(backend.second_file()),
    };
    let store = match (layout, &journal) {
        (Layout::Journal(every), Some(journal)) => {
            let mut db = Some(backend.clone());
            RedbStore::with_backends(
                move || {
                    db.take()
                        .ok_or_else(|| redrive_store::StoreError::Failed("no reopen".into()))
                },
                journal.clone(),
                mode,
                every,
            )
            .unwrap()
        }
        _ => RedbStore::with_backend(backend.clone(), mode).unwrap(),
    };
    backend.arm(crash_at, rng.next());
    let acked = run(&store, &batches, &mut rng);
    let crashed = backend.crashed();
    if crashed {
        // The writer thread records the failure just after the backend fails (in relaxed mode
        // possibly during a background sync that no acknowledgement waited for).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while store.failure().is_none() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert!(
            store.failure().is_some(),
            "seed {seed}: store must refuse writes after an I/O error"
        );
    }
    drop(store);
    // The final sync of shutdown may be where it crashes.
    let crashed = backend.crashed();
    let ops = backend.ops();
    let image = backend.surviving_bytes();

    // redb itself must find a consistent file.
    {
        let mut db = Database::builder()
            .create_with_backend(in_memory(&image))
            .unwrap_or_else(|e| panic!("seed {seed} crash_at {crash_at:?}: redb reopen: {e}"));
        assert!(db.check_integrity().unwrap(), "seed {seed}: integrity");
    }

    let reopened = match &journal {
        None => RedbStore::with_backend(in_memory(&image), DurabilityMode::Strict),
        Some(journal) => {
            let mut db = Some(in_memory(&image));
            RedbStore::with_backends(
                move || {
                    db.take()
                        .ok_or_else(|| redrive_store::StoreError::Failed("no reopen".into()))
                },
                in_memory(&journal.surviving_bytes()),
                DurabilityMode::Strict,
                0,
            )
        }
    }
    .unwrap_or_else(|e| panic!("seed {seed} crash_at {crash_at:?}: reopen: {e}"));
    // The full contents: every payload is read back from `message_body`.
    let recovered = sorted(reopened.try_load_full().expect("load after crash"));
    let present = recovered
        .queues
        .first()
        .map_or(0, |q| q.tags["last"].parse::<usize>().unwrap() + 1);

    let expected = MemoryStore::new();
    for b in &batches[..present] {
        let _ = expected.submit(b.clone());
    }
    assert_eq!(
        recovered,
        sorted(expected.load()),
        "seed {seed} crash_at {crash_at:?}: state is not the prefix of {present} batches"
    );
    if mode == DurabilityMode::Strict {
        let last_acked = acked.iter().rposition(|a| *a).map_or(0, |i| i + 1);
        assert!(
            present >= last_acked,
            "seed {seed} crash_at {crash_at:?}: {last_acked} batches acknowledged, {present} survived"
        );
    }
    if !crashed {
        assert!(acked.iter().all(|a| *a));
        assert_eq!(present, BATCHES);
    }
    (crashed, ops)
}

/// A migration at open crashes at every operation in turn: what survives must open
/// (migrating again if the crash came before the commit) with every message, payload, state
/// and document of the fixture, and nothing quarantined.
fn a_crash_during_the_migration_of(fixture: &str, batches: Vec<Vec<Mutation>>) {
    let fixture = std::fs::read(fixture).unwrap();
    let expected = crate::migration::expected(batches);
    let mut crashes = 0;
    for at in 1.. {
        let backend = CrashBackend::default();
        backend.set_contents(&fixture);
        backend.arm(Some(at), at * 7919);
        let opened = RedbStore::with_backend(backend.clone(), DurabilityMode::Strict);
        let crashed = backend.crashed();
        drop(opened);
        let image = backend.surviving_bytes();
        let reopened = RedbStore::with_backend(in_memory(&image), DurabilityMode::Strict)
            .unwrap_or_else(|e| panic!("crash at {at}: reopen: {e}"));
        assert_eq!(
            sorted(reopened.try_load_full().unwrap()),
            expected,
            "crash at {at}"
        );
        assert!(reopened.quarantined().unwrap().is_empty(), "crash at {at}");
        if !crashed {
            break;
        }
        crashes += 1;
        assert!(at < 5_000, "the migration never completed");
    }
    assert!(crashes > 3, "only {crashes} crash points");
}

/// Format 2 → 5 over `tests/fixtures/format-v2.redb` (payloads split off, implied states
/// dropped).
#[test]
fn a_crash_during_the_format_2_migration_leaves_a_readable_file() {
    a_crash_during_the_migration_of(crate::fixture_v2::FIXTURE, crate::fixture_v2::batches());
}

/// Format 4 → 5 over `tests/fixtures/format-v4.redb` (the state records headers imply are
/// deleted).
#[test]
fn a_crash_during_the_format_4_migration_leaves_a_readable_file() {
    a_crash_during_the_migration_of(crate::fixture_v4::FIXTURE, crate::fixture_v4::batches());
}

fn crash_at_random_points(mode: DurabilityMode, scenarios: u64) {
    crash_at_random_points_with(mode, scenarios, workload, Layout::Redb);
}

fn crash_at_random_points_with(
    mode: DurabilityMode,
    scenarios: u64,
    workload: fn(&mut Rng) -> Vec<Vec<Mutation>>,
    layout: Layout,
) {
    // A run without a crash tells how many operations the workload takes.
    let (_, total_ops) = crash_once_with(mode, 0, None, workload, layout);
    assert!(total_ops > 10);
    let mut crashes = 0;
    let mut pick = Rng(0xC0FFEE ^ total_ops);
    for seed in 1..=scenarios {
        let at = 1 + pick.below(total_ops);
        let (crashed, _) = crash_once_with(mode, seed, Some(at), workload, layout);
        crashes += u64::from(crashed);
    }
    assert!(
        crashes * 2 >= scenarios,
        "only {crashes} of {scenarios} runs crashed"
    );
}

#[test]
fn strict_mode_survives_crashes_at_random_points() {
    crash_at_random_points(DurabilityMode::Strict, 60);
}

#[test]
fn strict_mode_survives_crashes_in_receive_state_writes_and_deletes() {
    crash_at_random_points_with(DurabilityMode::Strict, 40, receive_workload, Layout::Redb);
}

/// Format 4: crashes in journal appends and fsyncs, in checkpoints (every 25 mutations, so
/// a run holds several) and in the journal's truncation after them.
#[test]
fn the_journal_survives_crashes_at_random_points() {
    crash_at_random_points_with(DurabilityMode::Strict, 80, workload, Layout::Journal(25));
    crash_at_random_points_with(
        DurabilityMode::Strict,
        60,
        receive_workload,
        Layout::Journal(40),
    );
}

/// Format 4 with every mutation left in the journal until shutdown: a crash anywhere must
/// replay exactly the acknowledged prefix.
#[test]
fn the_journal_alone_survives_crashes_at_random_points() {
    crash_at_random_points_with(
        DurabilityMode::Strict,
        60,
        workload,
        Layout::Journal(usize::MAX),
    );
}

#[test]
fn the_journal_in_relaxed_mode_recovers_a_prefix() {
    crash_at_random_points_with(
        DurabilityMode::Relaxed { interval_ms: 1 },
        40,
        workload,
        Layout::Journal(30),
    );
}

#[test]
fn relaxed_mode_recovers_a_prefix_of_commits() {
    crash_at_random_points(DurabilityMode::Relaxed { interval_ms: 1 }, 30);
}
