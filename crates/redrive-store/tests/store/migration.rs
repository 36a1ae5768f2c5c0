//! Files written by the last format-1, format-2 and format-3 builds
//! (`tests/fixtures/format-v1.redb`, `format-v2.redb`, `format-v3.redb`, see `fixture_v1.rs`,
//! `fixture_v2.rs`, `fixture_v3.rs`) open with this build: every record
//! survives the migration exactly, the file is of this build's format afterwards and reopens as
//! such; a migration that fails part-way leaves the old file readable.

use redrive_store::{
    DurabilityMode, FILE_NAME, FORMAT_VERSION, MemoryStore, Payload, RedbStore, Store, verify,
};

use crate::common::sorted;

pub fn expected(batches: Vec<Vec<redrive_store::Mutation>>) -> crate::common::Sorted {
    let memory = MemoryStore::new();
    for b in batches {
        let _ = memory.submit(b);
    }
    let mut snapshot = memory.load();
    // The whole contents, the lazily read history documents included.
    for kind in redrive_store::LAZY_DOCUMENT_KINDS {
        snapshot
            .documents
            .extend(memory.documents(kind, "", "\u{10ffff}").unwrap());
    }
    sorted(snapshot)
}

/// Opens a copy of `fixture` (a file of format `version`) with this build and checks that every
/// record survives exactly, that the file is then of this build's format and reopens as such.
fn migrates(fixture: &str, batches: Vec<Vec<redrive_store::Mutation>>, version: u64) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(FILE_NAME);
    std::fs::copy(fixture, &file).unwrap();
    let expected = expected(batches);

    // verify reads the old file too, without changing it.
    let before = std::fs::read(&file).unwrap();
    let report = verify(dir.path()).unwrap();
    assert_eq!(report.format_version, version);
    assert!(report.ok(), "{report:?}");
    let messages = report
        .tables
        .iter()
        .find(|t| t.table == "messages")
        .unwrap();
    assert_eq!(messages.records, expected.messages.len() as u64);
    assert!(
        std::fs::read(&file).unwrap() == before,
        "verify must not write"
    );

    assert!(expected.messages.iter().any(|m| m.receive_count > 1));
    assert!(
        expected
            .messages
            .iter()
            .any(|m| !m.payload.loaded().unwrap().attributes.is_empty())
    );
    assert!(
        expected
            .messages
            .iter()
            .any(|m| m.dead_letter_source_arn.is_some())
    );
    assert!(!expected.dedup.is_empty() && !expected.move_tasks.is_empty());
    assert!(expected.documents.len() >= 3);
    assert_eq!(expected.max_queue_uid, 4);

    {
        let store = RedbStore::open(dir.path(), DurabilityMode::Strict).unwrap();
        assert_eq!(sorted(store.try_load_full().unwrap()), expected);
        // The load itself holds no payloads and no history documents.
        let light = store.try_load().unwrap();
        assert!(light.messages.iter().all(|m| m.payload == Payload::Stored));
        assert!(light.documents.iter().all(|d| d.kind != "metrics-minute"));
        assert!(store.quarantined().unwrap().is_empty());
    }
    let report = verify(dir.path()).unwrap();
    assert_eq!(report.format_version, FORMAT_VERSION);
    assert!(report.ok(), "{report:?}");
    let count = |t: &str| report.tables.iter().find(|r| r.table == t).unwrap().records;
    assert_eq!(count("messages"), expected.messages.len() as u64);
    // Format 5 keeps a state record only where the header does not imply the state.
    let stated = expected
        .messages
        .iter()
        .filter(|m| !redrive_store::codec::MessageState::is_implied(m))
        .count();
    assert!(stated > 0 && stated < expected.messages.len());
    assert_eq!(count("message_state"), stated as u64);
    assert_eq!(count("message_body"), expected.messages.len() as u64);
    assert_eq!(count("documents"), expected.documents.len() as u64);

    // Reopens in this format (no second migration) with the same contents, and keeps working.
    let store = RedbStore::open(dir.path(), DurabilityMode::Strict).unwrap();
    assert_eq!(sorted(store.try_load_full().unwrap()), expected);
    let m = expected.messages[0].clone();
    crate::common::block_on(
        store
            .submit(vec![redrive_store::Mutation::UpdateMessage {
                queue_uid: m.queue_uid,
                seq: m.seq,
                visible_at_ms: 5,
                receive_count: 9,
                first_receive_ms: Some(1),
                last_receive_ms: Some(2),
            }])
            .wait(),
    )
    .unwrap();
    let again = store.try_load_full().unwrap();
    let updated = again
        .messages
        .iter()
        .find(|r| (r.queue_uid, r.seq) == (m.queue_uid, m.seq))
        .unwrap();
    assert_eq!((updated.receive_count, &updated.payload), (9, &m.payload));
    // Every payload reads through the store's read path too.
    for m in &expected.messages {
        assert_eq!(
            store.payload(m.queue_uid, m.seq).unwrap().as_ref(),
            m.payload.loaded()
        );
    }
}

#[test]
fn a_format_1_file_migrates_and_keeps_every_record() {
    migrates(crate::fixture_v1::FIXTURE, crate::fixture_v1::batches(), 1);
}

#[test]
fn a_format_2_file_migrates_and_keeps_every_record() {
    migrates(crate::fixture_v2::FIXTURE, crate::fixture_v2::batches(), 2);
}

#[test]
fn a_format_3_file_migrates_and_keeps_every_record() {
    migrates(crate::fixture_v3::FIXTURE, crate::fixture_v3::batches(), 3);
}

#[test]
fn a_format_4_file_migrates_and_keeps_every_record() {
    migrates(crate::fixture_v4::FIXTURE, crate::fixture_v4::batches(), 4);
}

#[test]
fn a_newer_format_is_still_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    drop(RedbStore::open(dir.path(), DurabilityMode::Strict).unwrap());
    {
        let db = redb::Database::create(dir.path().join(FILE_NAME)).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(redb::TableDefinition::<&str, u64>::new("meta"))
            .unwrap()
            .insert("format_version", FORMAT_VERSION + 1)
            .unwrap();
        txn.commit().unwrap();
    }
    assert!(RedbStore::open(dir.path(), DurabilityMode::Strict).is_err());
    assert!(verify(dir.path()).is_err());
    // Nothing was migrated or rewritten: the version is still the newer one.
    let db = redb::Database::create(dir.path().join(FILE_NAME)).unwrap();
    let txn = redb::ReadableDatabase::begin_read(&db).unwrap();
    let meta = txn
        .open_table(redb::TableDefinition::<&str, u64>::new("meta"))
        .unwrap();
    assert_eq!(
        meta.get("format_version").unwrap().unwrap().value(),
        FORMAT_VERSION + 1
    );
}
