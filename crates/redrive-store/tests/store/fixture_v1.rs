//! The contents of `tests/fixtures/format-v1.redb`: a store file written by the last build of
//! format version 1 (commit 1122923 "Store: format-v1 fixture …", the parent of format 2). The
//! migration test (`migration.rs`) opens a copy with the current build and compares it with
//! these batches applied to a `MemoryStore`.
//!
//! `write_format_v1_fixture` (ignored) is how the file was made; run it again only with a
//! format-v1 build (`git checkout` that commit), never with the current one.

use std::sync::Arc;

use redrive_core::api::{MessageAttributeValue, MessageAttributes};
use redrive_store::{
    DedupRecord, DocumentRecord, MessageRecord, MoveTaskRecord, MoveTaskStatus, Mutation,
    QueueRecord,
};

pub const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/format-v1.redb");

fn queue(uid: u64, name: &str, attributes: &[(&str, &str)]) -> QueueRecord {
    QueueRecord {
        uid,
        region: "us-east-1".into(),
        account: "000000000000".into(),
        name: name.into(),
        attributes: attributes
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        tags: [("team".to_owned(), "payments".to_owned())].into(),
        created_secs: 1_700_000_000 + uid,
        last_modified_secs: 1_700_000_100 + uid,
        last_purge_ms: (uid == 2).then_some(1_700_000_050_000),
    }
}

fn attributes(seq: u64) -> MessageAttributes {
    let mut a = MessageAttributes::new();
    a.insert(
        "tenant".into(),
        MessageAttributeValue {
            string_value: Some(format!("tenant-{seq}-ü")),
            data_type: "String".into(),
            ..Default::default()
        },
    );
    a.insert(
        "blob".into(),
        MessageAttributeValue {
            binary_value: Some(vec![0, 1, 2, 255, u8::try_from(seq % 256).unwrap()]),
            data_type: "Binary.custom".into(),
            ..Default::default()
        },
    );
    if seq.is_multiple_of(2) {
        a.insert(
            "lists".into(),
            MessageAttributeValue {
                string_list_values: vec!["a".into(), String::new()],
                binary_list_values: vec![vec![], vec![7; 40]],
                data_type: "StringList".into(),
                ..Default::default()
            },
        );
    }
    a
}

fn message(queue_uid: u64, seq: u64, fifo: bool) -> MessageRecord {
    let mut system_attributes = MessageAttributes::new();
    if seq.is_multiple_of(3) {
        system_attributes.insert(
            "AWSTraceHeader".into(),
            MessageAttributeValue {
                string_value: Some(format!("Root=1-{seq:08x}")),
                data_type: "String".into(),
                ..Default::default()
            },
        );
    }
    MessageRecord {
        queue_uid,
        seq,
        message_id: format!("00000000-0000-4000-8000-{queue_uid:04}{seq:08}"),
        payload: redrive_store::Payload::new(
            Arc::from(format!(
                "body of {queue_uid}/{seq} {}",
                "x".repeat(seq as usize * 7)
            )),
            if seq % 4 == 3 {
                MessageAttributes::new()
            } else {
                attributes(seq)
            },
            system_attributes,
        ),
        sender_id: "AIDAEXAMPLE".into(),
        sent_ms: 1_700_000_000_000 + seq,
        enqueued_ms: 1_700_000_000_000 + seq,
        visible_at_ms: 1_700_000_000_000 + seq,
        receive_count: 0,
        first_receive_ms: None,
        last_receive_ms: None,
        group_id: fifo.then(|| format!("group-{}", seq % 3)),
        dedup_id: fifo.then(|| format!("dedup-{seq}")),
        sequence_number: fifo.then(|| format!("{:020}", 18_000_000 + seq)),
        dead_letter_source_arn: None,
        dead_lettered_ms: None,
    }
}

/// Everything the fixture holds, as the batches that wrote it.
pub fn batches() -> Vec<Vec<Mutation>> {
    let mut out = Vec::new();
    // Queues: standard (1), its DLQ (2), FIFO (3), and one deleted later (4).
    out.push(vec![
        Mutation::PutQueue(queue(1, "orders", &[("VisibilityTimeout", "30")])),
        Mutation::PutQueue(queue(2, "orders-dlq", &[])),
        Mutation::PutQueue(queue(
            3,
            "orders.fifo",
            &[
                ("FifoQueue", "true"),
                ("ContentBasedDeduplication", "false"),
            ],
        )),
        Mutation::PutQueue(queue(4, "gone", &[])),
    ]);
    out.push(
        (0..12)
            .map(|seq| Mutation::PutMessage(message(1, seq, false)))
            .collect(),
    );
    out.push(
        (0..6)
            .flat_map(|seq| {
                let m = message(3, seq, true);
                [
                    Mutation::PutDedup(DedupRecord {
                        queue_uid: 3,
                        key: m.dedup_id.clone().unwrap(),
                        expires_ms: m.sent_ms + 300_000,
                        message_id: m.message_id.clone(),
                        sequence_number: m.sequence_number.clone().unwrap(),
                    }),
                    Mutation::PutMessage(m),
                ]
            })
            .collect(),
    );
    out.push(vec![Mutation::PutDedup(DedupRecord {
        queue_uid: 3,
        key: "group-1\0scoped".into(),
        expires_ms: 1_700_000_300_000,
        message_id: "scoped-message".into(),
        sequence_number: "00000000000018000099".into(),
    })]);
    // Receives: some messages received once or several times, one made visible again.
    for (seq, count) in [(1u64, 1u32), (2, 3), (5, 2), (7, 1)] {
        out.push(vec![Mutation::UpdateMessage {
            queue_uid: 1,
            seq,
            visible_at_ms: 1_700_000_030_000 + seq,
            receive_count: count,
            first_receive_ms: Some(1_700_000_001_000 + seq),
            last_receive_ms: Some(1_700_000_002_000 + seq),
        }]);
    }
    out.push(vec![Mutation::UpdateMessage {
        queue_uid: 3,
        seq: 0,
        visible_at_ms: 1_700_000_040_000,
        receive_count: 1,
        first_receive_ms: Some(1_700_000_010_000),
        last_receive_ms: Some(1_700_000_010_000),
    }]);
    // Deletes and a DLQ move of 1/2 to 2/0.
    out.push(vec![
        Mutation::DeleteMessage {
            queue_uid: 1,
            seq: 4,
        },
        Mutation::DeleteMessage {
            queue_uid: 1,
            seq: 2,
        },
        Mutation::PutMessage(MessageRecord {
            queue_uid: 2,
            seq: 0,
            receive_count: 3,
            first_receive_ms: Some(1_700_000_001_002),
            last_receive_ms: Some(1_700_000_002_002),
            dead_letter_source_arn: Some("arn:aws:sqs:us-east-1:000000000000:orders".into()),
            dead_lettered_ms: Some(1_700_000_003_000),
            ..message(1, 2, false)
        }),
    ]);
    out.push(vec![Mutation::PutMoveTask(MoveTaskRecord {
        task_id: "task-1".into(),
        source_arn: "arn:aws:sqs:us-east-1:000000000000:orders-dlq".into(),
        destination_arn: Some("arn:aws:sqs:us-east-1:000000000000:orders".into()),
        max_per_second: Some(50),
        status: MoveTaskStatus::Cancelled,
        moved: 1,
        to_move: 4,
        started_ms: 1_700_000_004_000,
        failure_reason: None,
    })]);
    out.push(vec![
        Mutation::PutDocument(DocumentRecord {
            kind: "replay".into(),
            key: "r-1".into(),
            value: br#"{"v":1,"status":"COMPLETED"}"#.to_vec(),
        }),
        Mutation::PutDocument(DocumentRecord {
            kind: "fifo-attempt".into(),
            key: "3/attempt-1".into(),
            value: br#"{"expires":1700000300000,"messages":[[0,1,1700000040000]]}"#.to_vec(),
        }),
        Mutation::PutDocument(DocumentRecord {
            kind: "deleted-queue".into(),
            key: "us-east-1\ngone".into(),
            value: br#"{"at":1700000005000}"#.to_vec(),
        }),
    ]);
    out.push(vec![
        Mutation::PutMessage(message(4, 0, false)),
        Mutation::DeleteQueue { uid: 4 },
    ]);
    out
}

/// Writes the fixture. Only meaningful with a format-v1 build (see the module docs).
#[test]
#[ignore = "writes tests/fixtures/format-v1.redb; run only with a format-v1 build"]
fn write_format_v1_fixture() {
    crate::common::write_fixture(1, batches(), FIXTURE);
}
