//! Startup read time: `RedbStore::try_load` of format 2 (checksums verified, messages merged
//! with `message_state`) against a model of format 1's load (one table, `decode_message_v1`).
//!
//! `cargo run --release -p redrive-store --example load_time [MESSAGES] [BODY_BYTES]`
//!
//! Both files are written to a temporary directory under `target/` and read with a warm page
//! cache and the store's 64 MiB redb cache; each load runs three times and the best is shown.

use std::sync::Arc;
use std::time::Instant;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use redrive_store::{DurabilityMode, MessageRecord, Mutation, RedbStore, Store, codec};

fn message(seq: u64, body: &Arc<str>) -> MessageRecord {
    MessageRecord {
        queue_uid: 1,
        seq,
        message_id: format!("{seq:036}"),
        body: body.clone(),
        attributes: Default::default(),
        system_attributes: Default::default(),
        sender_id: "AIDAEXAMPLE".into(),
        sent_ms: seq,
        enqueued_ms: seq,
        visible_at_ms: seq,
        receive_count: 1,
        first_receive_ms: Some(seq),
        last_receive_ms: None,
        group_id: None,
        dedup_id: None,
        sequence_number: None,
        dead_letter_source_arn: None,
        dead_lettered_ms: None,
    }
}

/// Format 1's message value (the layout of the format-1 docs), for records without attributes
/// or optional fields.
fn encode_v1(m: &MessageRecord) -> Vec<u8> {
    let mut b = vec![1u8];
    b.extend_from_slice(&m.visible_at_ms.to_le_bytes());
    b.extend_from_slice(&m.receive_count.to_le_bytes());
    for v in [m.first_receive_ms, m.last_receive_ms] {
        b.push(u8::from(v.is_some()));
        b.extend_from_slice(&v.unwrap_or(0).to_le_bytes());
    }
    b.extend_from_slice(&m.sent_ms.to_le_bytes());
    b.extend_from_slice(&m.enqueued_ms.to_le_bytes());
    for s in [&*m.message_id, &*m.sender_id, &*m.body] {
        b.extend_from_slice(&u32::try_from(s.len()).unwrap().to_le_bytes());
        b.extend_from_slice(s.as_bytes());
    }
    b.extend_from_slice(&[0; 8]); // two empty attribute maps
    b.extend_from_slice(&[0; 5]); // four absent strings, absent u64
    b
}

fn main() {
    let mut args = std::env::args().skip(1);
    let messages: u64 = args.next().map_or(100_000, |a| a.parse().unwrap());
    let body_len: usize = args.next().map_or(1024, |a| a.parse().unwrap());
    let body: Arc<str> = Arc::from("x".repeat(body_len));
    std::fs::create_dir_all("target/tmp").unwrap();
    let dir = tempfile::tempdir_in("target/tmp").unwrap();

    // Format 1 model.
    const MESSAGES: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("messages");
    let v1_path = dir.path().join("v1.redb");
    {
        let db = Database::create(&v1_path).unwrap();
        for chunk in (0..messages).collect::<Vec<_>>().chunks(10_000) {
            let txn = db.begin_write().unwrap();
            {
                let mut t = txn.open_table(MESSAGES).unwrap();
                for &seq in chunk {
                    let m = message(seq, &body);
                    let v = encode_v1(&m);
                    assert_eq!(codec::decode_message_v1(1, seq, &v).unwrap(), m);
                    t.insert((1, seq), v.as_slice()).unwrap();
                }
            }
            txn.commit().unwrap();
        }
    }
    // The store's redb cache size (64 MiB), as format 1's store had.
    let db = Database::builder()
        .set_cache_size(64 * 1024 * 1024)
        .create(&v1_path)
        .unwrap();
    let mut v1_best = f64::MAX;
    for _ in 0..3 {
        let started = Instant::now();
        let txn = db.begin_read().unwrap();
        let mut out = Vec::with_capacity(messages as usize);
        for entry in txn.open_table(MESSAGES).unwrap().iter().unwrap() {
            let (k, v) = entry.unwrap();
            let (uid, seq) = k.value();
            out.push(codec::decode_message_v1(uid, seq, v.value()).unwrap());
        }
        assert_eq!(out.len() as u64, messages);
        v1_best = v1_best.min(started.elapsed().as_secs_f64());
    }
    let v1_size = std::fs::metadata(&v1_path).unwrap().len();
    drop(db);

    // Format 2.
    let v2_dir = dir.path().join("v2");
    {
        let store =
            RedbStore::open(&v2_dir, DurabilityMode::Relaxed { interval_ms: 1000 }).unwrap();
        for chunk in (0..messages).collect::<Vec<_>>().chunks(10_000) {
            let batch = chunk
                .iter()
                .map(|&s| Mutation::PutMessage(message(s, &body)))
                .collect();
            let _ = store.submit(batch);
        }
        store.flush().unwrap();
    }
    let store = RedbStore::open(&v2_dir, DurabilityMode::Strict).unwrap();
    let mut v2_best = f64::MAX;
    for _ in 0..3 {
        let started = Instant::now();
        let snapshot = store.try_load().unwrap();
        assert_eq!(snapshot.messages.len() as u64, messages);
        assert!(snapshot.quarantined.is_empty());
        v2_best = v2_best.min(started.elapsed().as_secs_f64());
    }
    let v2_size = std::fs::metadata(v2_dir.join(redrive_store::FILE_NAME))
        .unwrap()
        .len();
    println!("{messages} messages, {body_len}-byte bodies");
    println!("| | load (best of 3) | file |");
    println!("|---|---:|---:|");
    println!(
        "| format 1 (model: one table, decode only) | {:.0} ms | {:.1} MB |",
        v1_best * 1e3,
        v1_size as f64 / 1e6
    );
    println!(
        "| format 2 (`try_load`: CRC32C, two tables merged) | {:.0} ms | {:.1} MB |",
        v2_best * 1e3,
        v2_size as f64 / 1e6
    );
}
