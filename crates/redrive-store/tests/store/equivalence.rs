//! Every mutation, applied to `RedbStore` and to the reference `MemoryStore`, gives the same
//! snapshot.

use proptest::prelude::*;
use redb::backends::InMemoryBackend;
use redrive_store::{DurabilityMode, MemoryStore, Mutation, RedbStore, Store};

use crate::common::{batches, block_on, sorted};

fn apply_all(store: &RedbStore, batches: &[Vec<Mutation>]) {
    // Submit everything first (as the engine does under its locks), then wait: exercises
    // ordering across group commits.
    let pending: Vec<_> = batches.iter().map(|b| store.submit(b.clone())).collect();
    for d in pending {
        block_on(d.wait()).expect("batch durable");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn redb_store_matches_memory_store(batches in batches(), strict in any::<bool>()) {
        let mode = if strict {
            DurabilityMode::Strict
        } else {
            DurabilityMode::Relaxed { interval_ms: 5 }
        };
        let store = RedbStore::with_backend(InMemoryBackend::new(), mode).unwrap();
        let memory = MemoryStore::new();
        apply_all(&store, &batches);
        for b in &batches {
            let _ = memory.submit(b.clone());
        }
        prop_assert_eq!(sorted(store.try_load_full().unwrap()), sorted(memory.load()));
    }
}

#[test]
fn empty_batches_are_done_at_once() {
    let store = RedbStore::with_backend(InMemoryBackend::new(), DurabilityMode::Strict).unwrap();
    block_on(store.submit(Vec::new()).wait()).unwrap();
    assert_eq!(store.commits(), 0);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn every_record_round_trips(
        q in crate::common::queue_record(),
        m in crate::common::message_record(),
        t in crate::common::move_task_record(),
        d in crate::common::dedup_record(),
    ) {
        use redrive_store::codec::{self, MessageState};
        prop_assert_eq!(codec::decode_queue(q.uid, &codec::encode_queue(&q)).unwrap(), q);
        let state = codec::encode_message_state(m.queue_uid, m.seq, &MessageState::of(&m));
        let state = codec::decode_message_state(m.queue_uid, m.seq, &state).unwrap();
        prop_assert_eq!(
            codec::decode_message(m.queue_uid, m.seq, &codec::encode_message(&m), state).unwrap(),
            redrive_store::MessageRecord { payload: redrive_store::Payload::Stored, ..m.clone() }
        );
        let p = m.payload.loaded().unwrap();
        prop_assert_eq!(
            &codec::decode_message_body(m.queue_uid, m.seq, &codec::encode_message_body(m.queue_uid, m.seq, p)).unwrap(),
            &**p
        );
        prop_assert_eq!(
            codec::decode_move_task(t.task_id.as_bytes(), &codec::encode_move_task(&t)).unwrap(),
            t
        );
        prop_assert_eq!(
            codec::decode_dedup(d.queue_uid, d.key.as_bytes(), &codec::encode_dedup(&d)).unwrap(),
            d
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Format 4: the same through the journal, checkpointed every few mutations (so some
    /// checkpoints skip a put and its delete), in both modes.
    #[test]
    fn journaled_store_matches_memory_store(
        batches in batches(),
        strict in any::<bool>(),
        every in 1usize..40,
    ) {
        let mode = if strict {
            DurabilityMode::Strict
        } else {
            DurabilityMode::Relaxed { interval_ms: 5 }
        };
        let mut db = Some(InMemoryBackend::new());
        let store = RedbStore::with_backends(
            move || db.take().ok_or_else(|| redrive_store::StoreError::Failed("no reopen".into())),
            InMemoryBackend::new(),
            mode,
            every,
        )
        .unwrap();
        let memory = MemoryStore::new();
        apply_all(&store, &batches);
        for b in &batches {
            let _ = memory.submit(b.clone());
        }
        prop_assert_eq!(sorted(store.try_load_full().unwrap()), sorted(memory.load()));
    }

    /// Every mutation survives a journal entry's encoding as it is (what a replay applies).
    #[test]
    fn every_mutation_round_trips_through_a_journal_entry(batches in batches(), epoch in any::<u64>()) {
        let mut bytes = Vec::new();
        redrive_store::journal::encode_entry(&mut bytes, epoch, 0, &batches);
        redrive_store::journal::encode_entry(&mut bytes, epoch, 1, &batches[..batches.len() / 2]);
        let replay = redrive_store::journal::decode_entries(&bytes, epoch).unwrap();
        prop_assert_eq!(replay.entries, 2);
        prop_assert_eq!(replay.valid_bytes, bytes.len() as u64);
        let expected: Vec<Mutation> = batches
            .iter()
            .flatten()
            .chain(batches[..batches.len() / 2].iter().flatten())
            .cloned()
            .collect();
        prop_assert_eq!(replay.mutations, expected);
        // Another epoch's entries, and a torn tail, are not replayed.
        prop_assert_eq!(
            redrive_store::journal::decode_entries(&bytes, epoch.wrapping_add(1)).unwrap().entries,
            0
        );
        let torn = &bytes[..bytes.len() - 1];
        prop_assert_eq!(redrive_store::journal::decode_entries(torn, epoch).unwrap().entries, 1);
    }
}
