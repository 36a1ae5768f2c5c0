//! Bytes flipped inside a closed store file (message bodies, attribute values, a delivery-state
//! record): the damaged records are never served, they move to the quarantine, `verify` reports
//! each one, and every undamaged record loads unchanged.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use redrive_core::api::{MessageAttributeValue, MessageAttributes};
use redrive_store::codec::{self, MessageState};
use redrive_store::{
    DurabilityMode, FILE_NAME, MessageRecord, Mutation, Payload, QueueRecord, RedbStore, Store,
    verify,
};

use crate::common::block_on;

fn message(seq: u64) -> MessageRecord {
    let mut attributes = MessageAttributes::new();
    attributes.insert(
        "tag".into(),
        MessageAttributeValue {
            string_value: Some(format!("attr-marker-{seq:04}-zzzzzzzz")),
            data_type: "String".into(),
            ..Default::default()
        },
    );
    MessageRecord {
        queue_uid: 1,
        seq,
        message_id: format!("id-{seq}"),
        payload: redrive_store::Payload::new(
            Arc::from(format!("body-marker-{seq:04}-{}", "y".repeat(64))),
            attributes,
            MessageAttributes::new(),
        ),
        sender_id: "s".into(),
        sent_ms: 1_000 + seq,
        enqueued_ms: 1_000 + seq,
        visible_at_ms: 1_000 + seq,
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

/// Flips one bit in every occurrence of `needle` (at `at` within it); returns how many.
fn flip(file: &Path, needle: &[u8], at: usize) -> usize {
    let mut bytes = std::fs::read(file).unwrap();
    let mut hits = 0;
    let mut i = 0;
    while i + needle.len() <= bytes.len() {
        if &bytes[i..i + needle.len()] == needle {
            bytes[i + at] ^= 0x04;
            hits += 1;
            i += needle.len();
        } else {
            i += 1;
        }
    }
    std::fs::write(file, bytes).unwrap();
    hits
}

const RECEIVED: MessageState = MessageState {
    visible_at_ms: 9_000,
    receive_count: 3,
    first_receive_ms: Some(2_000),
    last_receive_ms: Some(8_000),
};

/// Writes queue 1 with messages 0..8 (messages 2 and 4 received three times) and closes it.
fn write_store(dir: &Path) -> Vec<MessageRecord> {
    let store = RedbStore::open(dir, DurabilityMode::Strict).unwrap();
    let queue = QueueRecord {
        uid: 1,
        region: "us-east-1".into(),
        account: "000000000000".into(),
        name: "q".into(),
        attributes: BTreeMap::new(),
        tags: BTreeMap::new(),
        created_secs: 1,
        last_modified_secs: 1,
        last_purge_ms: None,
    };
    let mut batch = vec![Mutation::PutQueue(queue)];
    batch.extend((0..8).map(|seq| Mutation::PutMessage(message(seq))));
    block_on(store.submit(batch).wait()).unwrap();
    for seq in [2, 4] {
        block_on(
            store
                .submit(vec![Mutation::UpdateMessage {
                    queue_uid: 1,
                    seq,
                    visible_at_ms: RECEIVED.visible_at_ms,
                    receive_count: RECEIVED.receive_count,
                    first_receive_ms: RECEIVED.first_receive_ms,
                    last_receive_ms: RECEIVED.last_receive_ms,
                }])
                .wait(),
        )
        .unwrap();
    }
    let snapshot = store.try_load_full().unwrap();
    assert!(snapshot.quarantined.is_empty());
    store.shutdown();
    snapshot.messages
}

#[test]
fn flipped_bytes_are_quarantined_never_served_and_reported_by_verify() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(FILE_NAME);
    let written = write_store(dir.path());
    assert!(verify(dir.path()).unwrap().ok());

    // Body of message 1, attribute value of message 3, delivery state of message 4.
    assert!(flip(&file, b"body-marker-0001", 14) >= 1);
    assert!(flip(&file, b"attr-marker-0003", 15) >= 1);
    let state = codec::encode_message_state(1, 4, &RECEIVED);
    assert!(
        flip(&file, &state, 10) >= 1,
        "state record found in the file"
    );

    // Offline: each damaged record is reported, and the file is not changed.
    let before = std::fs::read(&file).unwrap();
    let report = verify(dir.path()).unwrap();
    assert!(
        std::fs::read(&file).unwrap() == before,
        "verify must not write"
    );
    assert!(!report.ok());
    let mut failed: Vec<_> = report
        .problems
        .iter()
        .filter(|p| p.failed_verification)
        .map(|p| (p.table.as_str(), p.key.as_str()))
        .collect();
    failed.sort_unstable();
    // A damaged payload's header (and state record, if any) are listed as going with it;
    // messages 1 and 3 were never received, so format 5 stores no state record for them.
    let mut with: Vec<_> = report
        .problems
        .iter()
        .filter(|p| !p.failed_verification)
        .map(|p| (p.table.as_str(), p.key.as_str()))
        .collect();
    with.sort_unstable();
    assert_eq!(with, [("messages", "1/1"), ("messages", "1/3")]);
    // Format 3: the body and the attributes are in `message_body`.
    assert_eq!(
        failed,
        [
            ("message_body", "1/1"),
            ("message_body", "1/3"),
            ("message_state", "1/4"),
        ],
        "{report:#?}"
    );
    assert!(
        report
            .problems
            .iter()
            .filter(|p| p.table == "message_body")
            .all(|p| p.reason.contains("checksum mismatch")),
        "{report:#?}"
    );
    let count = |t: &str| {
        let r = report.tables.iter().find(|r| r.table == t).unwrap();
        (r.records, r.failed)
    };
    assert_eq!(count("messages"), (8, 0));
    assert_eq!(count("message_body"), (8, 2));
    // Format 5: only the two messages received have a state record.
    assert_eq!(count("message_state"), (2, 1));
    assert_eq!(report.failed(), 3);

    // Open: the load reads headers and states only, so it quarantines the bad state (the
    // message kept, visible now, receive count reset) and loads messages 1 and 3 without
    // their payloads.
    let expected: Vec<MessageRecord> = written
        .iter()
        .map(|m| MessageRecord {
            payload: Payload::Stored,
            ..if m.seq == 4 {
                MessageRecord {
                    visible_at_ms: 0,
                    receive_count: 0,
                    first_receive_ms: None,
                    last_receive_ms: None,
                    ..m.clone()
                }
            } else {
                m.clone()
            }
        })
        .collect();
    {
        let store = RedbStore::open(dir.path(), DurabilityMode::Strict).unwrap();
        let snapshot = store.try_load().unwrap();
        assert_eq!(snapshot.messages, expected);
        assert_eq!(snapshot.messages[2].receive_count, RECEIVED.receive_count);
        let quarantined: Vec<_> = snapshot
            .quarantined
            .iter()
            .map(|q| (q.table.as_str(), q.key.as_str(), q.failed_verification))
            .collect();
        assert_eq!(quarantined, [("message_state", "1/4", true)]);
        // Reading a damaged payload never serves it: it reads as gone and the message (all
        // three records) moves to the quarantine.
        for m in &written {
            let read = store.payload(1, m.seq).unwrap();
            if m.seq == 1 || m.seq == 3 {
                assert_eq!(read, None, "seq {}", m.seq);
            } else {
                assert_eq!(read.as_ref(), m.payload.loaded(), "seq {}", m.seq);
            }
        }
        store.flush().unwrap();
        let mut listed: Vec<_> = store
            .quarantined()
            .unwrap()
            .into_iter()
            .map(|q| (q.table, q.key, q.failed_verification))
            .collect();
        listed.sort_unstable();
        let own = |t: &str, k: &str, f: bool| (t.to_string(), k.to_string(), f);
        assert_eq!(
            listed,
            [
                own("message_body", "1/1", true),
                own("message_body", "1/3", true),
                own("message_state", "1/4", true),
                own("messages", "1/1", false),
                own("messages", "1/3", false),
            ]
        );
        // The store keeps working, and the damaged seqs can be written again.
        block_on(store.submit(vec![Mutation::PutMessage(message(1))]).wait()).unwrap();
    }

    // The next start finds nothing new; the quarantine is listed by the store and verify.
    let store = RedbStore::open(dir.path(), DurabilityMode::Strict).unwrap();
    let snapshot = store.try_load_full().unwrap();
    assert!(snapshot.quarantined.is_empty());
    assert_eq!(snapshot.quarantined_total, 5);
    assert_eq!(snapshot.messages.len(), 7);
    assert_eq!(snapshot.messages[1], message(1));
    let listed = store.quarantined().unwrap();
    assert!(listed.iter().all(|q| q.quarantined_ms > 0));
    assert!(
        listed
            .iter()
            .any(|q| q.table == "message_body" && q.key == "1/3" && q.reason.contains("checksum"))
    );
    store.shutdown();
    let report = verify(dir.path()).unwrap();
    assert!(report.ok(), "{report:#?}");
    assert_eq!(report.quarantined.len(), 5);
}

#[test]
fn a_damaged_queue_document_or_dedup_record_is_quarantined_too() {
    use redrive_store::{DedupRecord, DocumentRecord};
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(FILE_NAME);
    {
        let store = RedbStore::open(dir.path(), DurabilityMode::Strict).unwrap();
        let batch = vec![
            Mutation::PutDedup(DedupRecord {
                queue_uid: 2,
                key: "k".into(),
                expires_ms: 5,
                message_id: "dedup-marker-msgid".into(),
                sequence_number: "1".into(),
            }),
            Mutation::PutDocument(DocumentRecord {
                kind: "replay".into(),
                key: "r1".into(),
                value: br#"{"doc":"document-marker"}"#.to_vec(),
            }),
            Mutation::PutDocument(DocumentRecord {
                kind: "replay".into(),
                key: "r2".into(),
                value: br#"{"doc":"fine"}"#.to_vec(),
            }),
        ];
        block_on(store.submit(batch).wait()).unwrap();
    }
    assert!(flip(&file, b"dedup-marker-msgid", 3) >= 1);
    assert!(flip(&file, b"document-marker", 3) >= 1);
    let report = verify(dir.path()).unwrap();
    let mut failed: Vec<_> = report
        .problems
        .iter()
        .map(|p| format!("{} {}", p.table, p.key))
        .collect();
    failed.sort_unstable();
    assert_eq!(failed, ["dedup 2/k", "documents replay/r1"]);

    let store = RedbStore::open(dir.path(), DurabilityMode::Strict).unwrap();
    let snapshot = store.try_load().unwrap();
    assert!(snapshot.dedup.is_empty());
    assert_eq!(snapshot.documents.len(), 1);
    assert_eq!(snapshot.documents[0].key, "r2");
    assert_eq!(snapshot.quarantined.len(), 2);
}

/// A streamed load reads messages on two threads that meet in the middle (issue 16): with
/// damaged headers and states spread over the key range (at the ends, and around the middle
/// where the threads meet) and state records without a message, it loads and quarantines
/// exactly what a whole load of the same file does, each record once.
#[test]
fn a_streamed_load_quarantines_what_a_whole_load_does() {
    const N: u64 = 6_000;
    let whole_dir = tempfile::tempdir().unwrap();
    {
        let store = RedbStore::open(whole_dir.path(), DurabilityMode::Strict).unwrap();
        let queue = QueueRecord {
            uid: 1,
            region: "us-east-1".into(),
            account: "000000000000".into(),
            name: "q".into(),
            attributes: BTreeMap::new(),
            tags: BTreeMap::new(),
            created_secs: 1,
            last_modified_secs: 1,
            last_purge_ms: None,
        };
        let mut batch = vec![Mutation::PutQueue(queue)];
        batch.extend((0..N).map(|seq| {
            let mut m = message(seq);
            m.message_id = format!("hdr-marker-{seq:05}");
            Mutation::PutMessage(m)
        }));
        let received = [3, 2_999, 3_000, 3_001, 5_998];
        batch.extend(received.iter().map(|&seq| Mutation::UpdateMessage {
            queue_uid: 1,
            seq,
            visible_at_ms: RECEIVED.visible_at_ms,
            receive_count: RECEIVED.receive_count,
            first_receive_ms: RECEIVED.first_receive_ms,
            last_receive_ms: RECEIVED.last_receive_ms,
        }));
        block_on(store.submit(batch).wait()).unwrap();
        store.shutdown();
    }
    // State records without a message: before the first, between two, after the last.
    {
        let db = redb::Database::create(whole_dir.path().join(FILE_NAME)).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let def = redb::TableDefinition::<(u64, u64), &[u8]>::new(codec::table::MESSAGE_STATE);
            let mut states = txn.open_table(def).unwrap();
            for (uid, seq) in [(0, 5), (1, N + 10), (2, 1)] {
                let raw = codec::encode_message_state(uid, seq, &RECEIVED);
                states.insert((uid, seq), raw.as_slice()).unwrap();
            }
        }
        txn.commit().unwrap();
    }
    let file = whole_dir.path().join(FILE_NAME);
    for seq in [0, 1, 2_998, 2_999, 3_000, 3_002, 4_500, N - 1] {
        assert_eq!(
            flip(&file, format!("hdr-marker-{seq:05}").as_bytes(), 13),
            1
        );
    }
    for seq in [3, 3_001, 5_998] {
        let state = codec::encode_message_state(1, seq, &RECEIVED);
        assert_eq!(flip(&file, &state, 10), 1, "state of {seq}");
    }
    let streamed_dir = tempfile::tempdir().unwrap();
    std::fs::copy(&file, streamed_dir.path().join(FILE_NAME)).unwrap();

    let whole = {
        let store = RedbStore::open(whole_dir.path(), DurabilityMode::Strict).unwrap();
        let s = store.try_load().unwrap();
        store.shutdown();
        s
    };
    let streamed = {
        let store = RedbStore::open(streamed_dir.path(), DurabilityMode::Strict).unwrap();
        let (tx, rx) = std::sync::mpsc::sync_channel(2);
        let consumer = std::thread::spawn(move || rx.into_iter().collect::<Vec<_>>());
        let mut rest = store.try_load_streamed(tx).unwrap();
        for part in consumer.join().unwrap() {
            match part {
                redrive_store::LoadPart::Queues(q) => rest.queues.extend(q),
                redrive_store::LoadPart::Messages(m) => rest.messages.extend(m),
            }
        }
        store.shutdown();
        rest
    };
    let keys = |s: &redrive_store::Snapshot| {
        let mut k: Vec<(u64, u64)> = s.messages.iter().map(|m| (m.queue_uid, m.seq)).collect();
        k.sort_unstable();
        k
    };
    let streamed_keys = keys(&streamed);
    assert_eq!(streamed_keys.len() as u64, N - 8, "each message once");
    assert!(
        streamed_keys.windows(2).all(|w| w[0] < w[1]),
        "no message twice"
    );
    assert_eq!(streamed_keys, keys(&whole));
    let by_key = |s: &redrive_store::Snapshot| {
        let mut m = s.messages.clone();
        m.sort_by_key(|m| (m.queue_uid, m.seq));
        m
    };
    assert_eq!(by_key(&streamed), by_key(&whole));
    let quarantined = |s: &redrive_store::Snapshot| {
        let mut q: Vec<(String, String, String)> = s
            .quarantined
            .iter()
            .map(|r| (r.table.clone(), r.key.clone(), r.reason.clone()))
            .collect();
        q.sort();
        q
    };
    let q = quarantined(&streamed);
    assert_eq!(q, quarantined(&whole));
    let count = |table: &str, reason: &str| {
        q.iter()
            .filter(|(t, _, r)| t == table && r.contains(reason))
            .count()
    };
    assert_eq!(count("messages", ""), 8, "{q:#?}");
    assert_eq!(count("message_state", "without a message"), 3, "{q:#?}");
    assert_eq!(count("message_state", "receive count reset"), 3, "{q:#?}");
}
