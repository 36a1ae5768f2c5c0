//! Group commit: many concurrent submitters share few commits, and every batch is acknowledged.

use std::sync::Arc;

use redrive_store::{DurabilityMode, MessageRecord, Mutation, RedbStore, Store};

use crate::common::block_on;

const THREADS: u64 = 8;
const PER_THREAD: u64 = 1000;
/// Each thread keeps this many batches in flight before waiting, as engine handlers do
/// (submit under the queue lock, wait afterwards).
const WINDOW: u64 = 50;

fn message(queue_uid: u64, seq: u64) -> MessageRecord {
    MessageRecord {
        queue_uid,
        seq,
        message_id: format!("{queue_uid}-{seq}"),
        payload: redrive_store::Payload::new(
            Arc::from("x".repeat(256)),
            Default::default(),
            Default::default(),
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

#[test]
fn concurrent_submitters_share_commits() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(RedbStore::open(dir.path(), DurabilityMode::Strict).unwrap());
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let store = store.clone();
            std::thread::spawn(move || {
                let mut pending = Vec::new();
                for seq in 0..PER_THREAD {
                    pending.push(store.submit(vec![Mutation::PutMessage(message(t + 1, seq))]));
                    if pending.len() as u64 == WINDOW {
                        for d in pending.drain(..) {
                            block_on(d.wait()).expect("durable");
                        }
                    }
                }
                for d in pending {
                    block_on(d.wait()).expect("durable");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let commits = store.commits();
    let total = THREADS * PER_THREAD;
    assert!(
        commits * 4 <= total,
        "{commits} commits for {total} batches"
    );
    // Every group was fsync'd, one fsync often covering several groups written meanwhile
    // (format 4's syncer), plus the checkpoints' fsync'd redb commits.
    assert!(store.durable_commits() > 0);
    assert!(
        store.durable_commits() <= commits,
        "{} fsyncs",
        store.durable_commits()
    );
    let snapshot = store.load();
    assert_eq!(snapshot.messages.len() as u64, total);
    // Per queue, the batches were applied in submission order: seqs are all there.
    for t in 1..=THREADS {
        let seqs: Vec<u64> = snapshot
            .messages
            .iter()
            .filter(|m| m.queue_uid == t)
            .map(|m| m.seq)
            .collect();
        assert_eq!(seqs, (0..PER_THREAD).collect::<Vec<_>>());
    }
}

#[test]
fn batches_apply_in_submission_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = RedbStore::open(dir.path(), DurabilityMode::Strict).unwrap();
    let mut pending = Vec::new();
    for i in 0..500u64 {
        let mut m = message(1, 0);
        m.receive_count = u32::try_from(i).unwrap();
        pending.push(store.submit(vec![Mutation::PutMessage(m)]));
        if i % 7 == 0 {
            pending.push(store.submit(vec![Mutation::DeleteMessage {
                queue_uid: 1,
                seq: 0,
            }]));
        }
    }
    for d in pending {
        block_on(d.wait()).unwrap();
    }
    let snapshot = store.load();
    assert_eq!(snapshot.messages.len(), 1);
    assert_eq!(snapshot.messages[0].receive_count, 499);
    assert!(store.commits() < 500);
}

#[test]
fn relaxed_mode_syncs_periodically() {
    let dir = tempfile::tempdir().unwrap();
    let store = RedbStore::open(dir.path(), DurabilityMode::Relaxed { interval_ms: 20 }).unwrap();
    block_on(
        store
            .submit(vec![Mutation::PutMessage(message(1, 1))])
            .wait(),
    )
    .unwrap();
    assert_eq!(store.durable_commits(), 0);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while store.durable_commits() == 0 {
        assert!(std::time::Instant::now() < deadline, "no periodic sync");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    store.flush().unwrap();
}
