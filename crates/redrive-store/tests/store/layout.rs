//! The split message layout: a receive (`UpdateMessage`) writes only the 35-byte
//! `message_state` record; the `messages` value is never rewritten.

use std::path::Path;
use std::sync::{Arc, Mutex};

use redb::backends::InMemoryBackend;
use redb::{ReadableDatabase, StorageBackend, TableDefinition};
use redrive_store::codec::{self, MessageState};
use redrive_store::{DurabilityMode, FILE_NAME, MessageRecord, Mutation, RedbStore, Store};

use crate::common::block_on;

const MESSAGES: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("messages");
const STATE: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("message_state");

fn message(seq: u64, body_len: usize) -> MessageRecord {
    MessageRecord {
        queue_uid: 1,
        seq,
        message_id: format!("m{seq}"),
        payload: redrive_store::Payload::new(
            Arc::from("b".repeat(body_len)),
            Default::default(),
            Default::default(),
        ),
        sender_id: "s".into(),
        sent_ms: 1,
        enqueued_ms: 1,
        visible_at_ms: 1,
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

fn receive(seq: u64, n: u32) -> Mutation {
    Mutation::UpdateMessage {
        queue_uid: 1,
        seq,
        visible_at_ms: 100 + u64::from(n),
        receive_count: n,
        first_receive_ms: Some(50),
        last_receive_ms: Some(60 + u64::from(n)),
    }
}

fn raw(dir: &Path, def: TableDefinition<(u64, u64), &[u8]>, seq: u64) -> Option<Vec<u8>> {
    let db = redb::Database::create(dir.join(FILE_NAME)).unwrap();
    let txn = db.begin_read().unwrap();
    let table = txn.open_table(def).unwrap();
    table.get((1, seq)).unwrap().map(|v| v.value().to_vec())
}

#[test]
fn a_receive_writes_only_the_state_record() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = RedbStore::open(dir.path(), DurabilityMode::Strict).unwrap();
        block_on(
            store
                .submit(vec![Mutation::PutMessage(message(7, 10_000))])
                .wait(),
        )
        .unwrap();
    }
    let message_before = raw(dir.path(), MESSAGES, 7).unwrap();
    // Format 5: a message never received has no state record (its header implies it).
    assert_eq!(raw(dir.path(), STATE, 7), None);
    {
        let store = RedbStore::open(dir.path(), DurabilityMode::Strict).unwrap();
        block_on(
            store
                .submit(vec![receive(7, 1), receive(7, 2), receive(99, 1)])
                .wait(),
        )
        .unwrap();
    }
    assert!(raw(dir.path(), MESSAGES, 7).unwrap() == message_before);
    let state = raw(dir.path(), STATE, 7).unwrap();
    assert_eq!(state.len(), codec::MESSAGE_STATE_LEN);
    assert_eq!(state.len(), 35);
    let expected = MessageState {
        visible_at_ms: 102,
        receive_count: 2,
        first_receive_ms: Some(50),
        last_receive_ms: Some(62),
    };
    assert_eq!(state, codec::encode_message_state(1, 7, &expected));
    // An update of a message that does not exist writes nothing (as in MemoryStore).
    assert_eq!(raw(dir.path(), STATE, 99), None);
    assert_eq!(raw(dir.path(), MESSAGES, 99), None);
}

/// Counts the bytes redb writes.
#[derive(Debug, Default, Clone)]
struct Counting {
    inner: Arc<InMemoryBackend>,
    written: Arc<Mutex<u64>>,
}

impl StorageBackend for Counting {
    fn len(&self) -> Result<u64, std::io::Error> {
        self.inner.len()
    }
    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), std::io::Error> {
        self.inner.read(offset, out)
    }
    fn set_len(&self, len: u64) -> Result<(), std::io::Error> {
        self.inner.set_len(len)
    }
    fn sync_data(&self) -> Result<(), std::io::Error> {
        self.inner.sync_data()
    }
    fn write(&self, offset: u64, data: &[u8]) -> Result<(), std::io::Error> {
        *self.written.lock().unwrap() += data.len() as u64;
        self.inner.write(offset, data)
    }
}

/// Bytes written per committed receive of 64 KiB messages stay far below the message size
/// (format 1 rewrote the whole value, so at least 64 KiB per receive).
#[test]
fn receive_commits_write_far_less_than_the_message() {
    let backend = Counting::default();
    let store = RedbStore::with_backend(backend.clone(), DurabilityMode::Strict).unwrap();
    let batch: Vec<_> = (0..16)
        .map(|seq| Mutation::PutMessage(message(seq, 65_536)))
        .collect();
    block_on(store.submit(batch).wait()).unwrap();
    let written = || *backend.written.lock().unwrap();
    let before = written();
    for n in 1..=10u32 {
        block_on(store.submit(vec![receive(u64::from(n), n)]).wait()).unwrap();
    }
    let per_receive = (written() - before) / 10;
    assert!(per_receive < 32 * 1024, "{per_receive} bytes per receive");
    let snapshot = store.try_load().unwrap();
    assert_eq!(snapshot.messages[3].receive_count, 3);
}
