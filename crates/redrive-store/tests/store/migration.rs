//! A format-1 file written by the last format-1 build (`tests/fixtures/format-v1.redb`, see
//! `fixture_v1.rs`) opens with this build: every record survives the migration exactly, the
//! file is format 2 afterwards and reopens as such.

use redrive_store::{
    DurabilityMode, FILE_NAME, FORMAT_VERSION, MemoryStore, RedbStore, Store, verify,
};

use crate::common::sorted;
use crate::fixture_v1::{FIXTURE, batches};

fn expected() -> crate::common::Sorted {
    let memory = MemoryStore::new();
    for b in batches() {
        let _ = memory.submit(b);
    }
    sorted(memory.load())
}

#[test]
fn a_format_1_file_migrates_and_keeps_every_record() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(FILE_NAME);
    std::fs::copy(FIXTURE, &file).unwrap();

    // verify reads a format-1 file too (decode only), without changing it.
    let before = std::fs::read(&file).unwrap();
    let report = verify(dir.path()).unwrap();
    assert_eq!(report.format_version, 1);
    assert!(report.ok(), "{report:?}");
    let messages = report
        .tables
        .iter()
        .find(|t| t.table == "messages")
        .unwrap();
    assert_eq!(messages.records, expected().messages.len() as u64);
    assert!(
        std::fs::read(&file).unwrap() == before,
        "verify must not write"
    );

    let expected = expected();
    assert!(expected.messages.iter().any(|m| m.receive_count > 1));
    assert!(expected.messages.iter().any(|m| !m.attributes.is_empty()));
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
        assert_eq!(sorted(store.try_load().unwrap()), expected);
        assert!(store.quarantined().unwrap().is_empty());
    }
    let report = verify(dir.path()).unwrap();
    assert_eq!(report.format_version, FORMAT_VERSION);
    assert!(report.ok(), "{report:?}");
    let count = |t: &str| report.tables.iter().find(|r| r.table == t).unwrap().records;
    assert_eq!(count("messages"), expected.messages.len() as u64);
    assert_eq!(count("message_state"), expected.messages.len() as u64);
    assert_eq!(count("documents"), expected.documents.len() as u64);

    // Reopens as format 2 (no second migration) with the same contents, and keeps working.
    let store = RedbStore::open(dir.path(), DurabilityMode::Strict).unwrap();
    assert_eq!(sorted(store.try_load().unwrap()), expected);
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
    let again = store.try_load().unwrap();
    let updated = again
        .messages
        .iter()
        .find(|r| (r.queue_uid, r.seq) == (m.queue_uid, m.seq))
        .unwrap();
    assert_eq!((updated.receive_count, updated.body.clone()), (9, m.body));
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
