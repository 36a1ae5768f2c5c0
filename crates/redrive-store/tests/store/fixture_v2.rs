//! The contents of `tests/fixtures/format-v2.redb`: a store file written by the last build of
//! format version 2 (the parent of format 3, branch `s16`). It holds everything of the format-1
//! fixture (standard queue, its DLQ with a dead-lettered message, a FIFO queue with dedup
//! entries and an in-flight message, a deleted queue, a move task, documents) plus a delayed
//! message, a message with a 4 KiB body, and `metrics-minute` history documents. The migration
//! test (`migration.rs`) opens a copy with the current build and compares it with these
//! batches applied to a `MemoryStore`.
//!
//! `write_format_v2_fixture` (ignored) is how the file was made; run it again only with a
//! format-v2 build, never with the current one.

use redrive_store::{DocumentRecord, MessageRecord, Mutation, Payload};

pub const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/format-v2.redb");

/// Everything the fixture holds, as the batches that wrote it.
pub fn batches() -> Vec<Vec<Mutation>> {
    let mut out = crate::fixture_v1::batches();
    let base = match &out[1][0] {
        Mutation::PutMessage(m) => m.clone(),
        _ => unreachable!("the v1 fixture's second batch puts messages"),
    };
    let with_body = |body: &str| {
        let p = base.payload.loaded().expect("in memory");
        Payload::new(body, p.attributes.clone(), p.system_attributes.clone())
    };
    // A delayed message (visible far in the future, never received) and a large one.
    out.push(vec![
        Mutation::PutMessage(MessageRecord {
            seq: 100,
            message_id: "00000000-0000-4000-8000-delayed00100".into(),
            payload: with_body("delayed body"),
            visible_at_ms: 4_000_000_000_000,
            ..base.clone()
        }),
        Mutation::PutMessage(MessageRecord {
            seq: 101,
            message_id: "00000000-0000-4000-8000-large000101".into(),
            payload: with_body(&"L".repeat(4096)),
            ..base.clone()
        }),
    ]);
    // In flight on the standard queue.
    out.push(vec![Mutation::UpdateMessage {
        queue_uid: 1,
        seq: 101,
        visible_at_ms: 4_000_000_000_000,
        receive_count: 1,
        first_receive_ms: Some(1_700_000_009_000),
        last_receive_ms: Some(1_700_000_009_000),
    }]);
    out.push(
        (0..5)
            .map(|m| {
                Mutation::PutDocument(DocumentRecord {
                    kind: "metrics-minute".into(),
                    key: format!("1/20231114/{m:04}"),
                    value: format!("[1,{m},0,0,0,0,0,0,0,0,0,1,0,0,0,0]").into_bytes(),
                })
            })
            .collect(),
    );
    out
}

/// Writes the fixture. Only meaningful with a format-v2 build (see the module docs).
#[test]
#[ignore = "writes tests/fixtures/format-v2.redb; run only with a format-v2 build"]
fn write_format_v2_fixture() {
    crate::common::write_fixture(2, batches(), FIXTURE);
}
