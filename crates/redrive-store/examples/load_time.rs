//! Restart read time: `RedbStore::open` + `try_load` of format 3 (headers and states only; the
//! payloads stay in `message_body`) against format 2's load, which read every message whole
//! (body and attributes included). Format 2 is written by opening a format-3 store over... no:
//! it is modelled with plain redb tables holding exactly format 2's records
//! (`codec::encode_message_v2` + `message_state`), read and decoded as format 2's load did.
//!
//! `cargo run --release -p redrive-store --example load_time [MESSAGES] [BODY_BYTES] [DIR]`
//!
//! Files go to `DIR` (default a temporary directory under `target/tmp`) and are deleted after.
//! Each load runs three times, warm page cache, the store's 64 MiB redb cache; the best is shown.
//! With `DROP_CACHES=1` (root), the page cache is dropped before each format's first load and
//! that cold time is shown too.

use std::sync::Arc;
use std::time::Instant;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use redrive_store::{
    DurabilityMode, MessagePayload, MessageRecord, Mutation, Payload, RedbStore, codec,
};

fn message(seq: u64, payload: &Arc<MessagePayload>) -> MessageRecord {
    MessageRecord {
        queue_uid: 1,
        seq,
        message_id: uuid_like(seq),
        payload: Payload::Loaded(payload.clone()),
        sender_id: "AIDAEXAMPLE".into(),
        sent_ms: 1_700_000_000_000 + seq,
        enqueued_ms: 1_700_000_000_000 + seq,
        visible_at_ms: 1_700_000_000_000 + seq,
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

fn uuid_like(seq: u64) -> String {
    format!("00000000-0000-4000-8000-{seq:012}")
}

fn drop_caches() -> bool {
    std::env::var("DROP_CACHES").is_ok_and(|v| v == "1")
        && std::process::Command::new("sync").status().is_ok()
        && std::fs::write("/proc/sys/vm/drop_caches", "3").is_ok()
}

fn main() {
    let mut args = std::env::args().skip(1);
    let messages: u64 = args.next().map_or(100_000, |a| a.parse().unwrap());
    let body_len: usize = args.next().map_or(1024, |a| a.parse().unwrap());
    let base = args.next().unwrap_or_else(|| "target/tmp".into());
    std::fs::create_dir_all(&base).unwrap();
    let dir = tempfile::tempdir_in(&base).unwrap();
    let payload = Arc::new(MessagePayload {
        body: "x".repeat(body_len),
        ..Default::default()
    });
    let state = codec::MessageState {
        visible_at_ms: 1,
        ..Default::default()
    };

    // Format 2 model: the records format 2 wrote, read as its load did.
    const MESSAGES: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("messages");
    const STATES: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("message_state");
    let v2_path = dir.path().join("v2.redb");
    {
        let db = Database::create(&v2_path).unwrap();
        for chunk in (0..messages).collect::<Vec<_>>().chunks(10_000) {
            let txn = db.begin_write().unwrap();
            {
                let mut t = txn.open_table(MESSAGES).unwrap();
                let mut s = txn.open_table(STATES).unwrap();
                for &seq in chunk {
                    let m = message(seq, &payload);
                    t.insert((1, seq), codec::encode_message_v2(&m, &payload).as_slice())
                        .unwrap();
                    s.insert(
                        (1, seq),
                        codec::encode_message_state(1, seq, &state).as_slice(),
                    )
                    .unwrap();
                }
            }
            txn.commit().unwrap();
        }
    }
    let v2_size = std::fs::metadata(&v2_path).unwrap().len();
    let v2_load = |db: &Database| {
        let started = Instant::now();
        let txn = db.begin_read().unwrap();
        let states = txn.open_table(STATES).unwrap();
        let mut states = states.iter().unwrap();
        let mut out = Vec::with_capacity(messages as usize);
        for entry in txn.open_table(MESSAGES).unwrap().iter().unwrap() {
            let (k, v) = entry.unwrap();
            let (uid, seq) = k.value();
            let (_, sv) = states.next().unwrap().unwrap();
            let st = codec::decode_message_state(uid, seq, sv.value()).unwrap();
            out.push(codec::decode_message(uid, seq, v.value(), st).unwrap());
        }
        assert_eq!(out.len() as u64, messages);
        started.elapsed().as_secs_f64()
    };
    let cold2 = drop_caches().then(|| {
        let started = Instant::now();
        let db = Database::builder()
            .set_cache_size(64 * 1024 * 1024)
            .create(&v2_path)
            .unwrap();
        let open = started.elapsed().as_secs_f64();
        open + v2_load(&db)
    });
    let db = Database::builder()
        .set_cache_size(64 * 1024 * 1024)
        .create(&v2_path)
        .unwrap();
    let v2_best = (0..3).map(|_| v2_load(&db)).fold(f64::MAX, f64::min);
    drop(db);
    std::fs::remove_file(&v2_path).unwrap();

    // Format 3: the store itself.
    let v3_dir = dir.path().join("v3");
    {
        let store =
            RedbStore::open(&v3_dir, DurabilityMode::Relaxed { interval_ms: 1000 }).unwrap();
        for chunk in (0..messages).collect::<Vec<_>>().chunks(10_000) {
            let batch = chunk
                .iter()
                .map(|&s| Mutation::PutMessage(message(s, &payload)))
                .collect();
            let _ = redrive_store::Store::submit(&store, batch);
        }
        store.flush().unwrap();
    }
    let v3_size = std::fs::metadata(v3_dir.join(redrive_store::FILE_NAME))
        .unwrap()
        .len();
    let restart = || {
        let started = Instant::now();
        let store = RedbStore::open(&v3_dir, DurabilityMode::Strict).unwrap();
        let opened = started.elapsed().as_secs_f64();
        let snapshot = store.try_load().unwrap();
        assert_eq!(snapshot.messages.len() as u64, messages);
        assert!(snapshot.quarantined.is_empty());
        let total = started.elapsed().as_secs_f64();
        // One payload read through the store's read path (not cached: a fresh process).
        let t = Instant::now();
        let p = redrive_store::Store::payload(&store, 1, messages / 2)
            .unwrap()
            .unwrap();
        assert_eq!(p.body.len(), body_len);
        let read = t.elapsed().as_secs_f64();
        (opened, total, read)
    };
    let cold3 = drop_caches().then(restart);
    let runs: Vec<_> = (0..3).map(|_| restart()).collect();
    let best = runs
        .iter()
        .copied()
        .fold((f64::MAX, f64::MAX, f64::MAX), |a, b| {
            (a.0.min(b.0), a.1.min(b.1), a.2.min(b.2))
        });
    println!("{messages} messages, {body_len}-byte bodies");
    println!("| | restart (open + load), best of 3, warm | cold (page cache dropped) | file |");
    println!("|---|---:|---:|---:|");
    println!(
        "| format 2 (model: every record read whole) | {:.0} ms (load only) | {} | {:.1} MB |",
        v2_best * 1e3,
        cold2.map_or("–".into(), |c| format!("{:.0} ms", c * 1e3)),
        v2_size as f64 / 1e6
    );
    println!(
        "| format 3 (`open` + `try_load`: headers and states) | {:.0} ms (open {:.0} ms) | {} | {:.1} MB |",
        best.1 * 1e3,
        best.0 * 1e3,
        cold3.map_or("–".into(), |c| format!("{:.0} ms", c.1 * 1e3)),
        v3_size as f64 / 1e6
    );
    println!(
        "first payload read after the restart: {:.0} µs",
        best.2 * 1e6
    );
}
