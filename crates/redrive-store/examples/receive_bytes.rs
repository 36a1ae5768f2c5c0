//! Bytes written to the file per receive (`UpdateMessage`), format 2 against a model of
//! format 1.
//!
//! `cargo run -p redrive-store --example receive_bytes [MESSAGES] [BODY_BYTES]`
//!
//! Format 2 is measured through `RedbStore` itself. Format 1 is modelled with plain redb, doing
//! exactly what its `UpdateMessage` did: read the whole message value, patch the 31-byte state
//! prefix, write the whole value back (values of the same size as format 2's `messages`
//! record). Both run on a byte-counting in-memory backend, one fsync'd commit per group,
//! receives of random messages, singly (one receive per commit) and in groups of 10 and 100.
//! Byte counts do not depend on the build profile.

use std::sync::{Arc, Mutex};

use redb::backends::InMemoryBackend;
use redb::{Database, Durability, ReadableTable, StorageBackend, TableDefinition};
use redrive_store::{DurabilityMode, MessageRecord, Mutation, RedbStore, Store, codec};

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

impl Counting {
    fn written(&self) -> u64 {
        *self.written.lock().unwrap()
    }
}

struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) % n
    }
}

fn message(seq: u64, body: &Arc<str>) -> MessageRecord {
    MessageRecord {
        queue_uid: 1,
        seq,
        message_id: format!("{seq:036}"),
        payload: redrive_store::Payload::new(body.clone(), Default::default(), Default::default()),
        sender_id: "AIDAEXAMPLE".into(),
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

const RECEIVES: u64 = 2_000;

fn format2(messages: u64, body: &Arc<str>, per_commit: u64) -> f64 {
    let backend = Counting::default();
    let store = RedbStore::with_backend(backend.clone(), DurabilityMode::Strict).unwrap();
    for chunk in (0..messages).collect::<Vec<_>>().chunks(1000) {
        let batch = chunk
            .iter()
            .map(|&s| Mutation::PutMessage(message(s, body)))
            .collect();
        wait(store.submit(batch));
    }
    let mut rng = Rng(7);
    let before = backend.written();
    for i in 0..RECEIVES / per_commit {
        let batch = (0..per_commit)
            .map(|_| Mutation::UpdateMessage {
                queue_uid: 1,
                seq: rng.below(messages),
                visible_at_ms: 1_000 + i,
                receive_count: 1,
                first_receive_ms: Some(i),
                last_receive_ms: Some(i),
            })
            .collect();
        wait(store.submit(batch));
    }
    (backend.written() - before) as f64 / RECEIVES as f64
}

fn format1_model(messages: u64, body: &Arc<str>, per_commit: u64) -> f64 {
    const MESSAGES: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("messages");
    let backend = Counting::default();
    let db = Database::builder()
        .create_with_backend(backend.clone())
        .unwrap();
    // Format 1's value: the format-2 message record plus the 31 state bytes, minus the CRC.
    let size = |seq| codec::encode_message(&message(seq, body)).len() + 31 - 4;
    for chunk in (0..messages).collect::<Vec<_>>().chunks(1000) {
        let txn = db.begin_write().unwrap();
        {
            let mut t = txn.open_table(MESSAGES).unwrap();
            for &seq in chunk {
                t.insert((1, seq), vec![1u8; size(seq)].as_slice()).unwrap();
            }
        }
        txn.commit().unwrap();
    }
    let mut rng = Rng(7);
    let before = backend.written();
    for i in 0..RECEIVES / per_commit {
        let mut txn = db.begin_write().unwrap();
        txn.set_durability(Durability::Immediate).unwrap();
        {
            let mut t = txn.open_table(MESSAGES).unwrap();
            for _ in 0..per_commit {
                let key = (1, rng.below(messages));
                let mut value = t.get(key).unwrap().unwrap().value().to_vec();
                value[1..9].copy_from_slice(&(1_000 + i).to_le_bytes());
                t.insert(key, value.as_slice()).unwrap();
            }
        }
        txn.commit().unwrap();
    }
    (backend.written() - before) as f64 / RECEIVES as f64
}

fn wait(d: redrive_store::Durable) {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(d.wait())
        .unwrap();
}

fn main() {
    let mut args = std::env::args().skip(1);
    let messages: u64 = args.next().map_or(20_000, |a| a.parse().unwrap());
    let body_len: usize = args.next().map_or(1024, |a| a.parse().unwrap());
    let body: Arc<str> = Arc::from("x".repeat(body_len));
    println!(
        "{messages} queued messages, {body_len}-byte bodies, {RECEIVES} receives of random messages"
    );
    println!("| receives per commit | format 1 (model) bytes/receive | format 2 bytes/receive |");
    println!("|---:|---:|---:|");
    for per_commit in [1, 10, 100] {
        let v1 = format1_model(messages, &body, per_commit);
        let v2 = format2(messages, &body, per_commit);
        println!("| {per_commit} | {v1:.0} | {v2:.0} |");
    }
}
