//! Shared helpers: proptest strategies for records and mutations, snapshot comparison.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use proptest::prelude::*;
use redrive_core::api::{MessageAttributeValue, MessageAttributes};
use redrive_store::{
    DedupRecord, DocumentRecord, MessageRecord, MoveTaskRecord, MoveTaskStatus, Mutation,
    QuarantinedRecord, QueueRecord, Snapshot,
};

/// Runs a future (a `Durable::wait`) to completion on a throw-away current-thread runtime.
pub fn block_on<F: Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime")
        .block_on(f)
}

/// A snapshot in a canonical order, comparable with `assert_eq!`.
#[derive(Debug, PartialEq)]
pub struct Sorted {
    pub queues: Vec<QueueRecord>,
    pub messages: Vec<MessageRecord>,
    pub move_tasks: Vec<MoveTaskRecord>,
    pub dedup: Vec<DedupRecord>,
    pub documents: Vec<DocumentRecord>,
    pub max_queue_uid: u64,
    /// Always empty against `MemoryStore`: nothing undamaged may be quarantined.
    pub quarantined: Vec<QuarantinedRecord>,
    pub quarantined_total: u64,
}

/// Writes a fixture file of this build's format (`tests/fixtures/format-vN.redb`): `batches`
/// submitted to a fresh store, closed, reopened once so the file is compacted, copied to
/// `path`. Refuses unless this build writes format `version`: each fixture must be made by the
/// last build of its format.
pub fn write_fixture(version: u64, batches: Vec<Vec<redrive_store::Mutation>>, path: &str) {
    use redrive_store::{DurabilityMode, FILE_NAME, FORMAT_VERSION, RedbStore, Store};
    assert_eq!(
        FORMAT_VERSION, version,
        "the fixture must be written by a v{version} build"
    );
    let dir = tempfile::tempdir().unwrap();
    let store = RedbStore::open(dir.path(), DurabilityMode::Strict).unwrap();
    for batch in batches {
        block_on(store.submit(batch).wait()).unwrap();
    }
    store.shutdown();
    drop(RedbStore::open(dir.path(), DurabilityMode::Strict).unwrap());
    std::fs::copy(dir.path().join(FILE_NAME), path).unwrap();
}

pub fn sorted(mut s: Snapshot) -> Sorted {
    s.queues.sort_by_key(|q| q.uid);
    s.messages.sort_by_key(|m| (m.queue_uid, m.seq));
    s.move_tasks.sort_by(|a, b| a.task_id.cmp(&b.task_id));
    s.dedup
        .sort_by(|a, b| (a.queue_uid, &a.key).cmp(&(b.queue_uid, &b.key)));
    s.documents
        .sort_by(|a, b| (&a.kind, &a.key).cmp(&(&b.kind, &b.key)));
    Sorted {
        queues: s.queues,
        messages: s.messages,
        move_tasks: s.move_tasks,
        dedup: s.dedup,
        documents: s.documents,
        max_queue_uid: s.max_queue_uid,
        quarantined: s.quarantined,
        quarantined_total: s.quarantined_total,
    }
}

fn small_string() -> impl Strategy<Value = String> {
    prop_oneof![Just(String::new()), "[a-z]{1,6}", "\\PC{0,12}"]
}

fn string_map() -> impl Strategy<Value = BTreeMap<String, String>> {
    prop::collection::btree_map(small_string(), small_string(), 0..3)
}

fn attribute_value() -> impl Strategy<Value = MessageAttributeValue> {
    (
        prop::option::of(small_string()),
        prop::option::of(prop::collection::vec(any::<u8>(), 0..16)),
        prop::collection::vec(small_string(), 0..3),
        prop::collection::vec(prop::collection::vec(any::<u8>(), 0..8), 0..3),
        prop_oneof![
            Just("String".to_owned()),
            Just("Number".to_owned()),
            Just("Binary".to_owned()),
            small_string()
        ],
    )
        .prop_map(
            |(string_value, binary_value, string_list_values, binary_list_values, data_type)| {
                MessageAttributeValue {
                    string_value,
                    binary_value,
                    string_list_values,
                    binary_list_values,
                    data_type,
                }
            },
        )
}

fn attributes() -> impl Strategy<Value = MessageAttributes> {
    prop::collection::btree_map(small_string(), attribute_value(), 0..3)
}

fn queue_uid() -> impl Strategy<Value = u64> {
    prop_oneof![4 => 1..4u64, 1 => Just(u64::MAX)]
}

fn seq() -> impl Strategy<Value = u64> {
    prop_oneof![8 => 0..12u64, 1 => Just(u64::MAX)]
}

fn task_id() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["", "t1", "t2", "t10", "ü"]).prop_map(str::to_owned)
}

fn dedup_key() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["", "a", "b", "g\0a", "zz"]).prop_map(str::to_owned)
}

fn document_kind() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["", "replay", "replay-move", "ü"]).prop_map(str::to_owned)
}

fn document_key() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["", "a", "a/1", "a/2", "ab", "b/1", "\0"]).prop_map(str::to_owned)
}

pub fn queue_record() -> impl Strategy<Value = QueueRecord> {
    (
        queue_uid(),
        small_string(),
        small_string(),
        small_string(),
        string_map(),
        string_map(),
        any::<u64>(),
        any::<u64>(),
        any::<Option<u64>>(),
    )
        .prop_map(
            |(uid, region, account, name, attributes, tags, created, modified, purge)| {
                QueueRecord {
                    uid,
                    region,
                    account,
                    name,
                    attributes,
                    tags,
                    created_secs: created,
                    last_modified_secs: modified,
                    last_purge_ms: purge,
                }
            },
        )
}

pub fn message_record() -> impl Strategy<Value = MessageRecord> {
    (
        (
            queue_uid(),
            seq(),
            small_string(),
            "\\PC{0,40}",
            attributes(),
            attributes(),
        ),
        (
            small_string(),
            any::<u64>(),
            any::<u64>(),
            any::<u64>(),
            any::<u32>(),
        ),
        (
            any::<Option<u64>>(),
            any::<Option<u64>>(),
            prop::option::of(small_string()),
            prop::option::of(small_string()),
            prop::option::of(small_string()),
            prop::option::of(small_string()),
            any::<Option<u64>>(),
        ),
    )
        .prop_map(
            |(
                (queue_uid, seq, message_id, body, attributes, system_attributes),
                (sender_id, sent_ms, enqueued_ms, visible_at_ms, receive_count),
                (first, last, group_id, dedup_id, sequence_number, dl_arn, dl_ms),
            )| MessageRecord {
                queue_uid,
                seq,
                message_id,
                payload: redrive_store::Payload::new(
                    Arc::from(body),
                    attributes,
                    system_attributes,
                ),
                sender_id,
                sent_ms,
                enqueued_ms,
                visible_at_ms,
                receive_count,
                first_receive_ms: first,
                last_receive_ms: last,
                group_id,
                dedup_id,
                sequence_number,
                dead_letter_source_arn: dl_arn,
                dead_lettered_ms: dl_ms,
            },
        )
}

fn status() -> impl Strategy<Value = MoveTaskStatus> {
    prop::sample::select(vec![
        MoveTaskStatus::Running,
        MoveTaskStatus::Completed,
        MoveTaskStatus::Cancelling,
        MoveTaskStatus::Cancelled,
        MoveTaskStatus::Failed,
    ])
}

pub fn move_task_record() -> impl Strategy<Value = MoveTaskRecord> {
    (
        task_id(),
        small_string(),
        prop::option::of(small_string()),
        any::<Option<i64>>(),
        status(),
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
        prop::option::of(small_string()),
    )
        .prop_map(
            |(task_id, source_arn, destination_arn, max, status, moved, to_move, started, why)| {
                MoveTaskRecord {
                    task_id,
                    source_arn,
                    destination_arn,
                    max_per_second: max,
                    status,
                    moved,
                    to_move,
                    started_ms: started,
                    failure_reason: why,
                }
            },
        )
}

pub fn dedup_record() -> impl Strategy<Value = DedupRecord> {
    (
        queue_uid(),
        dedup_key(),
        any::<u64>(),
        small_string(),
        small_string(),
    )
        .prop_map(
            |(queue_uid, key, expires_ms, message_id, sequence_number)| DedupRecord {
                queue_uid,
                key,
                expires_ms,
                message_id,
                sequence_number,
            },
        )
}

pub fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        2 => queue_record().prop_map(Mutation::PutQueue),
        1 => queue_uid().prop_map(|uid| Mutation::DeleteQueue { uid }),
        6 => message_record().prop_map(Mutation::PutMessage),
        4 => (
            queue_uid(),
            seq(),
            any::<u64>(),
            any::<u32>(),
            any::<Option<u64>>(),
            any::<Option<u64>>()
        )
            .prop_map(|(queue_uid, seq, visible_at_ms, receive_count, first, last)| {
                Mutation::UpdateMessage {
                    queue_uid,
                    seq,
                    visible_at_ms,
                    receive_count,
                    first_receive_ms: first,
                    last_receive_ms: last,
                }
            }),
        3 => (queue_uid(), seq())
            .prop_map(|(queue_uid, seq)| Mutation::DeleteMessage { queue_uid, seq }),
        1 => (queue_uid(), seq())
            .prop_map(|(queue_uid, up_to_seq)| Mutation::Purge { queue_uid, up_to_seq }),
        2 => move_task_record().prop_map(Mutation::PutMoveTask),
        1 => task_id().prop_map(|task_id| Mutation::DeleteMoveTask { task_id }),
        2 => dedup_record().prop_map(Mutation::PutDedup),
        1 => (queue_uid(), dedup_key())
            .prop_map(|(queue_uid, key)| Mutation::DeleteDedup { queue_uid, key }),
        2 => (document_kind(), document_key(), prop::collection::vec(any::<u8>(), 0..16))
            .prop_map(|(kind, key, value)| Mutation::PutDocument(DocumentRecord { kind, key, value })),
        1 => (document_kind(), document_key())
            .prop_map(|(kind, key)| Mutation::DeleteDocument { kind, key }),
        1 => (document_kind(), prop::sample::select(vec!["", "a", "a/", "b/1"]))
            .prop_map(|(kind, prefix)| Mutation::DeleteDocuments { kind, prefix: prefix.to_owned() }),
    ]
}

/// A sequence of batches (1–6 mutations each).
pub fn batches() -> impl Strategy<Value = Vec<Vec<Mutation>>> {
    prop::collection::vec(prop::collection::vec(mutation(), 1..6), 1..24)
}
