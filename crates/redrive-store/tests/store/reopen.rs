//! Closing and reopening a store directory returns the same snapshot.

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use redrive_store::{DurabilityMode, FILE_NAME, MemoryStore, RedbStore, Store};

use crate::common::{batches, block_on, sorted};

#[test]
fn reopen_after_shutdown_returns_the_same_snapshot() {
    let mut runner = TestRunner::deterministic();
    for mode in [
        DurabilityMode::Strict,
        DurabilityMode::Relaxed {
            interval_ms: 60_000,
        },
    ] {
        let dir = tempfile::tempdir().unwrap();
        let memory = MemoryStore::new();
        for _ in 0..3 {
            let batches = batches().new_tree(&mut runner).unwrap().current();
            let store = RedbStore::open(dir.path(), mode).unwrap();
            assert_eq!(
                sorted(store.try_load_full().unwrap()),
                sorted(memory.load()),
                "{mode:?}"
            );
            let pending: Vec<_> = batches.iter().map(|b| store.submit(b.clone())).collect();
            for b in batches {
                let _ = memory.submit(b);
            }
            for d in pending {
                block_on(d.wait()).unwrap();
            }
            // Relaxed with a long interval: durability comes from the final sync of shutdown.
            store.shutdown();
        }
        let store = RedbStore::open(dir.path(), mode).unwrap();
        assert_eq!(
            sorted(store.try_load_full().unwrap()),
            sorted(memory.load())
        );
        assert!(dir.path().join(FILE_NAME).is_file());
    }
}

#[test]
fn dropping_the_store_flushes_and_unlocks() {
    let dir = tempfile::tempdir().unwrap();
    let mut runner = TestRunner::deterministic();
    let batches = batches().new_tree(&mut runner).unwrap().current();
    let memory = MemoryStore::new();
    {
        let store = RedbStore::open(
            dir.path(),
            DurabilityMode::Relaxed {
                interval_ms: 60_000,
            },
        )
        .unwrap();
        for b in batches {
            // Not awaited: drop must still write everything submitted.
            let _ = store.submit(b.clone());
            let _ = memory.submit(b);
        }
    }
    let store = RedbStore::open(dir.path(), DurabilityMode::Strict).unwrap();
    assert_eq!(
        sorted(store.try_load_full().unwrap()),
        sorted(memory.load())
    );
}

#[test]
fn max_queue_uid_never_decreases() {
    use redrive_store::{Mutation, QueueRecord};
    let dir = tempfile::tempdir().unwrap();
    let queue = |uid| QueueRecord {
        uid,
        region: "r".into(),
        account: "a".into(),
        name: format!("q{uid}"),
        attributes: Default::default(),
        tags: Default::default(),
        created_secs: 0,
        last_modified_secs: 0,
        last_purge_ms: None,
    };
    {
        let store = RedbStore::open(dir.path(), DurabilityMode::Strict).unwrap();
        block_on(
            store
                .submit(vec![
                    Mutation::PutQueue(queue(7)),
                    Mutation::PutQueue(queue(3)),
                    Mutation::DeleteQueue { uid: 7 },
                ])
                .wait(),
        )
        .unwrap();
    }
    let store = RedbStore::open(dir.path(), DurabilityMode::Strict).unwrap();
    let snapshot = store.load();
    assert_eq!(snapshot.max_queue_uid, 7);
    assert_eq!(snapshot.queues.len(), 1);
}

fn fill_and_purge(store: &RedbStore, messages: u64) {
    use redrive_store::Mutation;
    let mut runner = TestRunner::deterministic();
    let message = crate::common::message_record();
    let body: std::sync::Arc<str> = "x".repeat(4096).into();
    let mut batch = Vec::new();
    for seq in 0..messages {
        let mut m = message.new_tree(&mut runner).unwrap().current();
        m.queue_uid = 1;
        m.seq = seq;
        m.payload = redrive_store::Payload::new(&body, Default::default(), Default::default());
        batch.push(Mutation::PutMessage(m));
    }
    block_on(store.submit(batch).wait()).unwrap();
    // A load checkpoints the journal: the messages reach the redb file before the purge (in
    // one checkpoint they would never be written at all).
    store.try_load().unwrap();
    block_on(
        store
            .submit(vec![Mutation::Purge {
                queue_uid: 1,
                up_to_seq: messages - 11,
            }])
            .wait(),
    )
    .unwrap();
}

#[test]
fn compaction_shrinks_the_file_and_keeps_the_data() {
    use redrive_store::Mutation;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(FILE_NAME);
    let size = || std::fs::metadata(&file).unwrap().len();

    // Explicit compaction of a running store.
    let store = RedbStore::open(dir.path(), DurabilityMode::Strict).unwrap();
    fill_and_purge(&store, 1000);
    let before = size();
    let expected = sorted(store.try_load_full().unwrap());
    assert_eq!(expected.messages.len(), 10);
    assert!(store.compact().unwrap());
    let after = size();
    assert!(after < before / 2, "{before} -> {after}");
    assert_eq!(sorted(store.try_load_full().unwrap()), expected);
    // Writes still work after compaction.
    block_on(
        store
            .submit(vec![Mutation::DeleteMessage {
                queue_uid: 1,
                seq: 999,
            }])
            .wait(),
    )
    .unwrap();
    let expected = sorted(store.try_load_full().unwrap());

    // Compaction at open.
    block_on(
        store
            .submit(vec![Mutation::Purge {
                queue_uid: 1,
                up_to_seq: u64::MAX,
            }])
            .wait(),
    )
    .unwrap();
    fill_and_purge(&store, 1000);
    let expected_after = sorted(store.try_load_full().unwrap());
    assert_ne!(expected_after, expected);
    store.shutdown();
    let before = size();
    let store = RedbStore::open(dir.path(), DurabilityMode::Strict).unwrap();
    let after = size();
    assert!(after < before / 2, "{before} -> {after}");
    assert_eq!(sorted(store.try_load_full().unwrap()), expected_after);
}

/// A streamed load (queues, then messages in batches, while the store reads) delivers exactly
/// what a whole load does, each message once, with the rest in the returned snapshot:
/// over random histories, and over more messages than one batch holds.
#[test]
fn a_streamed_load_delivers_what_a_whole_load_does() {
    let mut runner = TestRunner::deterministic();
    let dir = tempfile::tempdir().unwrap();
    let store = RedbStore::open(dir.path(), DurabilityMode::Strict).unwrap();
    let queue = crate::common::queue_record()
        .new_tree(&mut runner)
        .unwrap()
        .current();
    let template = crate::common::message_record()
        .new_tree(&mut runner)
        .unwrap()
        .current();
    let mut bulk = vec![redrive_store::Mutation::PutQueue(queue.clone())];
    for seq in 0..70_000u64 {
        let mut m = template.clone();
        m.queue_uid = queue.uid;
        m.seq = seq;
        bulk.push(redrive_store::Mutation::PutMessage(m));
    }
    block_on(store.submit(bulk).wait()).unwrap();
    for round in 0..4 {
        if round > 0 {
            let batches = batches().new_tree(&mut runner).unwrap().current();
            let pending: Vec<_> = batches.into_iter().map(|b| store.submit(b)).collect();
            for d in pending {
                let _ = block_on(d.wait());
            }
        }
        let whole = store.try_load().unwrap();
        let (tx, rx) = std::sync::mpsc::sync_channel(2);
        let consumer = std::thread::spawn(move || rx.into_iter().collect::<Vec<_>>());
        let mut rest = store.try_load_streamed(tx).unwrap();
        let parts = consumer.join().unwrap();
        let mut parts = parts.into_iter();
        let Some(redrive_store::LoadPart::Queues(queues)) = parts.next() else {
            panic!("the queues come first");
        };
        let mut messages = Vec::new();
        let mut batches_seen = 0;
        for part in parts {
            let redrive_store::LoadPart::Messages(batch) = part else {
                panic!("queues sent twice");
            };
            assert!(!batch.is_empty());
            batches_seen += 1;
            messages.extend(batch);
        }
        assert!(batches_seen >= 2, "70,000 messages span batches");
        // Two threads read from both ends: batches come in no set order, each message once.
        messages.sort_by_key(|m| (m.queue_uid, m.seq));
        assert!(
            messages
                .windows(2)
                .all(|w| (w[0].queue_uid, w[0].seq) < (w[1].queue_uid, w[1].seq))
        );
        assert!(rest.queues.is_empty() && rest.messages.is_empty());
        rest.queues = queues;
        rest.messages = messages;
        assert_eq!(sorted(rest), sorted(whole), "round {round}");
    }
}
