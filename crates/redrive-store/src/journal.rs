//! Format 4's write-ahead journal: `redrive.journal` beside the redb file.
//!
//! A group commit appends one *entry* (every mutation of the group, in submission order) and,
//! in strict mode, `fdatasync`s the journal before any batch of the group is acknowledged. The
//! mutations are applied to redb later, many groups in one transaction (a *checkpoint*, see
//! `redb_store.rs`), so the per-group cost is one sequential write and one fsync instead of a
//! copy-on-write B-tree commit.
//!
//! **Entry:** `len: u32 | crc: u32 | epoch: u64 | n: u64 | body` (little-endian), where `len` is
//! the length of `body`, `crc` is the CRC32C of `epoch | n | body`, and `n` counts the entries
//! of this epoch from 0. The body is `count: u32` followed by `count` mutations (tag byte, then
//! fields; records are the sealed record encodings of `codec`, so they carry their own
//! checksums too).
//!
//! **Epochs:** `meta.journal_epoch` in redb names the only epoch whose entries are replayed.
//! A checkpoint applies the entries and sets `journal_epoch + 1` in the same redb transaction,
//! then truncates the journal; an open replays the entries of the current epoch and does the
//! same. So an entry is applied to redb exactly once whatever the crash point: before the
//! checkpoint's commit the epoch is old and the entries are replayed; after it they belong to
//! an old epoch and are ignored, truncated or not. Replay stops at the first entry that is
//! short, fails its checksum, or has another epoch or an unexpected `n`: a torn tail or stale
//! bytes of an older epoch beyond it.

use std::io;
use std::sync::Arc;

use redb::StorageBackend;

use crate::codec::{self, CodecError, MessageState};
use crate::{MessagePayload, Mutation, Payload};

/// Name of the journal inside the store directory.
pub const JOURNAL_FILE_NAME: &str = "redrive.journal";

/// `len`, `crc`, `epoch`, `n`.
const ENTRY_HEADER: usize = 4 + 4 + 8 + 8;

/// The journal file and where the next entry goes.
#[derive(Debug)]
pub(crate) struct Journal {
    backend: Arc<dyn StorageBackend>,
    pub(crate) epoch: u64,
    next_n: u64,
    pub(crate) len: u64,
    /// The file's length. The file is grown ahead of the entries with zeros, [`GROWTH`] at a
    /// time, and reused in place after a checkpoint (not truncated), so that an append
    /// overwrites allocated blocks and its fsync has no size or allocation to record. Bytes
    /// after the last entry (zeros, or entries of an older epoch) fail the next entry's checks.
    allocated: u64,
    buf: Vec<u8>,
}

/// How much the journal file grows at a time.
const GROWTH: u64 = 1 << 20;

/// A checkpoint shrinks a journal file larger than this (grown by a very large group) back to
/// empty instead of reusing it.
const KEEP_AT_MOST: u64 = 64 << 20;

impl Journal {
    pub(crate) fn new(backend: Box<dyn StorageBackend>) -> Self {
        Journal {
            backend: Arc::from(backend),
            epoch: 0,
            next_n: 0,
            len: 0,
            allocated: 0,
            buf: Vec::new(),
        }
    }

    /// The file, for the thread that fsyncs it while the next entries are written.
    pub(crate) fn backend(&self) -> Arc<dyn StorageBackend> {
        self.backend.clone()
    }

    /// The whole file.
    pub(crate) fn read_all(&self) -> io::Result<Vec<u8>> {
        let len = usize::try_from(self.backend.len()?).map_err(io::Error::other)?;
        let mut out = vec![0; len];
        self.backend.read(0, &mut out)?;
        Ok(out)
    }

    /// Appends one entry holding `batches` (not synced).
    pub(crate) fn append<'a>(
        &mut self,
        batches: impl IntoIterator<Item = &'a Vec<Mutation>>,
    ) -> io::Result<()> {
        self.buf.clear();
        encode_entry(&mut self.buf, self.epoch, self.next_n, batches);
        let end = self.len + self.buf.len() as u64;
        if end > self.allocated {
            let allocated = end.next_multiple_of(GROWTH);
            let zeros = vec![0; usize::try_from(allocated - self.allocated).expect("fits")];
            self.backend.set_len(allocated)?;
            self.backend.write(self.allocated, &zeros)?;
            self.allocated = allocated;
        }
        self.backend.write(self.len, &self.buf)?;
        self.len += self.buf.len() as u64;
        self.next_n += 1;
        // A burst of large groups must not keep a large buffer forever.
        if self.buf.capacity() > 16 << 20 {
            self.buf = Vec::new();
        }
        Ok(())
    }

    pub(crate) fn sync(&self) -> io::Result<()> {
        self.backend.sync_data()
    }

    /// Starts `epoch` at the start of the journal (after a checkpoint, or an open's replay,
    /// committed `epoch` to redb): the entries there now belong to an older epoch.
    pub(crate) fn restart(&mut self, epoch: u64) -> io::Result<()> {
        self.epoch = epoch;
        self.next_n = 0;
        self.len = 0;
        self.allocated = self.backend.len()?;
        if self.allocated > KEEP_AT_MOST {
            self.truncate()?;
        }
        Ok(())
    }

    /// Gives the file's blocks back (it grows again with the next entries).
    pub(crate) fn truncate(&mut self) -> io::Result<()> {
        self.allocated = 0;
        self.backend.set_len(0)
    }
}

/// Appends one entry to `out`.
pub fn encode_entry<'a>(
    out: &mut Vec<u8>,
    epoch: u64,
    n: u64,
    batches: impl IntoIterator<Item = &'a Vec<Mutation>>,
) {
    let start = out.len();
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&epoch.to_le_bytes());
    out.extend_from_slice(&n.to_le_bytes());
    let count_at = out.len();
    out.extend_from_slice(&[0; 4]);
    let mut count = 0u32;
    for m in batches.into_iter().flatten() {
        encode_mutation(out, m);
        count += 1;
    }
    out[count_at..count_at + 4].copy_from_slice(&count.to_le_bytes());
    let body_len = u32::try_from(out.len() - start - ENTRY_HEADER).expect("entry under 4 GiB");
    let crc = crc32c::crc32c(&out[start + 8..]);
    out[start..start + 4].copy_from_slice(&body_len.to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// What [`decode_entries`] found.
#[derive(Debug, Default)]
pub struct Replay {
    /// The mutations of every valid entry of the epoch, in order.
    pub mutations: Vec<Mutation>,
    pub entries: u64,
    /// Bytes of the valid entries (the rest of the file is a torn tail or stale).
    pub valid_bytes: u64,
}

/// The valid entries of `epoch` at the start of `bytes`. An entry whose checksum matches but
/// whose body does not decode is damage, not a torn write: an error.
pub fn decode_entries(bytes: &[u8], epoch: u64) -> Result<Replay, CodecError> {
    let mut out = Replay::default();
    let mut at = 0usize;
    while bytes.len() - at >= ENTRY_HEADER {
        let word = |i: usize| u32::from_le_bytes(bytes[at + i..at + i + 4].try_into().unwrap());
        let long = |i: usize| u64::from_le_bytes(bytes[at + i..at + i + 8].try_into().unwrap());
        let body_len = word(0) as usize;
        let Some(end) = (at + ENTRY_HEADER).checked_add(body_len) else {
            break;
        };
        if end > bytes.len() || crc32c::crc32c(&bytes[at + 8..end]) != word(4) {
            break;
        }
        if long(8) != epoch || long(16) != out.entries {
            break;
        }
        let mut r = Cursor::new(&bytes[at + ENTRY_HEADER..end]);
        let count = r.u32()?;
        for _ in 0..count {
            out.mutations.push(decode_mutation(&mut r)?);
        }
        if !r.rest().is_empty() {
            return Err(CodecError::TrailingBytes {
                count: r.rest().len(),
            });
        }
        out.entries += 1;
        at = end;
        out.valid_bytes = at as u64;
    }
    Ok(out)
}

const PUT_QUEUE: u8 = 1;
const DELETE_QUEUE: u8 = 2;
const PUT_MESSAGE: u8 = 3;
const UPDATE_MESSAGE: u8 = 4;
const DELETE_MESSAGE: u8 = 5;
const PURGE: u8 = 6;
const PUT_MOVE_TASK: u8 = 7;
const DELETE_MOVE_TASK: u8 = 8;
const PUT_DEDUP: u8 = 9;
const DELETE_DEDUP: u8 = 10;
const PUT_DOCUMENT: u8 = 11;
const DELETE_DOCUMENT: u8 = 12;
const DELETE_DOCUMENTS: u8 = 13;

fn u64s(out: &mut Vec<u8>, values: &[u64]) {
    for v in values {
        out.extend_from_slice(&v.to_le_bytes());
    }
}

fn bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&u32::try_from(b.len()).expect("under 4 GiB").to_le_bytes());
    out.extend_from_slice(b);
}

fn encode_mutation(out: &mut Vec<u8>, m: &Mutation) {
    match m {
        Mutation::PutQueue(q) => {
            out.push(PUT_QUEUE);
            u64s(out, &[q.uid]);
            bytes(out, &codec::encode_queue(q));
        }
        Mutation::DeleteQueue { uid } => {
            out.push(DELETE_QUEUE);
            u64s(out, &[*uid]);
        }
        Mutation::PutMessage(r) => {
            out.push(PUT_MESSAGE);
            u64s(out, &[r.queue_uid, r.seq]);
            bytes(out, &codec::encode_message(r));
            bytes(
                out,
                &codec::encode_message_state(r.queue_uid, r.seq, &MessageState::of(r)),
            );
            match r.payload.loaded() {
                Some(p) => {
                    out.push(1);
                    bytes(out, &codec::encode_message_body(r.queue_uid, r.seq, p));
                }
                None => out.push(0),
            }
        }
        Mutation::UpdateMessage {
            queue_uid,
            seq,
            visible_at_ms,
            receive_count,
            first_receive_ms,
            last_receive_ms,
        } => {
            out.push(UPDATE_MESSAGE);
            u64s(out, &[*queue_uid, *seq]);
            bytes(
                out,
                &codec::encode_message_state(
                    *queue_uid,
                    *seq,
                    &MessageState {
                        visible_at_ms: *visible_at_ms,
                        receive_count: *receive_count,
                        first_receive_ms: *first_receive_ms,
                        last_receive_ms: *last_receive_ms,
                    },
                ),
            );
        }
        Mutation::DeleteMessage { queue_uid, seq } => {
            out.push(DELETE_MESSAGE);
            u64s(out, &[*queue_uid, *seq]);
        }
        Mutation::Purge {
            queue_uid,
            up_to_seq,
        } => {
            out.push(PURGE);
            u64s(out, &[*queue_uid, *up_to_seq]);
        }
        Mutation::PutMoveTask(t) => {
            out.push(PUT_MOVE_TASK);
            bytes(out, t.task_id.as_bytes());
            bytes(out, &codec::encode_move_task(t));
        }
        Mutation::DeleteMoveTask { task_id } => {
            out.push(DELETE_MOVE_TASK);
            bytes(out, task_id.as_bytes());
        }
        Mutation::PutDedup(d) => {
            out.push(PUT_DEDUP);
            u64s(out, &[d.queue_uid]);
            bytes(out, d.key.as_bytes());
            bytes(out, &codec::encode_dedup(d));
        }
        Mutation::DeleteDedup { queue_uid, key } => {
            out.push(DELETE_DEDUP);
            u64s(out, &[*queue_uid]);
            bytes(out, key.as_bytes());
        }
        Mutation::PutDocument(d) => {
            out.push(PUT_DOCUMENT);
            bytes(out, d.kind.as_bytes());
            bytes(out, d.key.as_bytes());
            bytes(out, &codec::encode_document(d));
        }
        Mutation::DeleteDocument { kind, key } => {
            out.push(DELETE_DOCUMENT);
            bytes(out, kind.as_bytes());
            bytes(out, key.as_bytes());
        }
        Mutation::DeleteDocuments { kind, prefix } => {
            out.push(DELETE_DOCUMENTS);
            bytes(out, kind.as_bytes());
            bytes(out, prefix.as_bytes());
        }
    }
}

struct Cursor<'a> {
    rest: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn new(rest: &'a [u8]) -> Self {
        Cursor { rest }
    }

    fn rest(&self) -> &'a [u8] {
        self.rest
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], CodecError> {
        if self.rest.len() < n {
            return Err(CodecError::Truncated {
                offset: 0,
                needed: n - self.rest.len(),
            });
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, CodecError> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, CodecError> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }

    fn u64(&mut self) -> Result<u64, CodecError> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().unwrap()))
    }

    fn bytes(&mut self) -> Result<&'a [u8], CodecError> {
        let n = self.u32()? as usize;
        self.take(n)
    }

    fn text(&mut self) -> Result<String, CodecError> {
        std::str::from_utf8(self.bytes()?)
            .map(str::to_owned)
            .map_err(|_| CodecError::InvalidKey)
    }
}

fn decode_mutation(r: &mut Cursor<'_>) -> Result<Mutation, CodecError> {
    Ok(match r.u8()? {
        PUT_QUEUE => {
            let uid = r.u64()?;
            Mutation::PutQueue(codec::decode_queue(uid, r.bytes()?)?)
        }
        DELETE_QUEUE => Mutation::DeleteQueue { uid: r.u64()? },
        PUT_MESSAGE => {
            let (uid, seq) = (r.u64()?, r.u64()?);
            let header = r.bytes()?;
            let state = codec::decode_message_state(uid, seq, r.bytes()?)?;
            let mut m = codec::decode_message(uid, seq, header, state)?;
            if r.u8()? == 1 {
                let p: MessagePayload = codec::decode_message_body(uid, seq, r.bytes()?)?;
                m.payload = Payload::Loaded(Arc::new(p));
            }
            Mutation::PutMessage(m)
        }
        UPDATE_MESSAGE => {
            let (queue_uid, seq) = (r.u64()?, r.u64()?);
            let s = codec::decode_message_state(queue_uid, seq, r.bytes()?)?;
            Mutation::UpdateMessage {
                queue_uid,
                seq,
                visible_at_ms: s.visible_at_ms,
                receive_count: s.receive_count,
                first_receive_ms: s.first_receive_ms,
                last_receive_ms: s.last_receive_ms,
            }
        }
        DELETE_MESSAGE => Mutation::DeleteMessage {
            queue_uid: r.u64()?,
            seq: r.u64()?,
        },
        PURGE => Mutation::Purge {
            queue_uid: r.u64()?,
            up_to_seq: r.u64()?,
        },
        PUT_MOVE_TASK => {
            let id = r.bytes()?;
            Mutation::PutMoveTask(codec::decode_move_task(id, r.bytes()?)?)
        }
        DELETE_MOVE_TASK => Mutation::DeleteMoveTask { task_id: r.text()? },
        PUT_DEDUP => {
            let uid = r.u64()?;
            let key = r.bytes()?;
            Mutation::PutDedup(codec::decode_dedup(uid, key, r.bytes()?)?)
        }
        DELETE_DEDUP => Mutation::DeleteDedup {
            queue_uid: r.u64()?,
            key: r.text()?,
        },
        PUT_DOCUMENT => {
            let kind = r.bytes()?;
            let key = r.bytes()?;
            Mutation::PutDocument(codec::decode_document(kind, key, r.bytes()?)?)
        }
        DELETE_DOCUMENT => Mutation::DeleteDocument {
            kind: r.text()?,
            key: r.text()?,
        },
        DELETE_DOCUMENTS => Mutation::DeleteDocuments {
            kind: r.text()?,
            prefix: r.text()?,
        },
        tag => {
            return Err(CodecError::InvalidTag {
                what: "journal mutation",
                tag,
                offset: 0,
            });
        }
    })
}

/// Which of `mutations` a checkpoint may skip without changing what redb ends up holding:
/// every message mutation before the last `DeleteMessage` of its key (a delete's result does
/// not depend on what came before it), and that delete too when the key's first mutation in
/// the window is a `PutMessage` of a sequence number above `stored_max(queue)` (the highest
/// sequence number that can be in redb for the queue), i.e. the message never reached redb.
pub(crate) fn skippable(mutations: &[Mutation], stored_max: impl Fn(u64) -> u64) -> Vec<bool> {
    use std::collections::HashMap;
    #[derive(Default)]
    struct Key {
        first_is_fresh_put: Option<bool>,
        last_delete: Option<usize>,
    }
    let mut keys: HashMap<(u64, u64), Key> = HashMap::new();
    for (i, m) in mutations.iter().enumerate() {
        let (key, fresh_put, delete) = match m {
            Mutation::PutMessage(r) => {
                ((r.queue_uid, r.seq), r.seq > stored_max(r.queue_uid), false)
            }
            Mutation::UpdateMessage { queue_uid, seq, .. } => ((*queue_uid, *seq), false, false),
            Mutation::DeleteMessage { queue_uid, seq } => ((*queue_uid, *seq), false, true),
            _ => continue,
        };
        let k = keys.entry(key).or_default();
        k.first_is_fresh_put.get_or_insert(fresh_put);
        if delete {
            k.last_delete = Some(i);
        }
    }
    let mut skip = vec![false; mutations.len()];
    for (i, m) in mutations.iter().enumerate() {
        let key = match m {
            Mutation::PutMessage(r) => (r.queue_uid, r.seq),
            Mutation::UpdateMessage { queue_uid, seq, .. }
            | Mutation::DeleteMessage { queue_uid, seq } => (*queue_uid, *seq),
            _ => continue,
        };
        let k = &keys[&key];
        if let Some(last) = k.last_delete {
            skip[i] = i < last || (i == last && k.first_is_fresh_put == Some(true));
        }
    }
    skip
}

/// The journal's file (positioned reads and writes; no locking: the redb file's lock, taken
/// first, keeps a second process out of the directory).
#[derive(Debug)]
pub(crate) struct JournalFile(std::fs::File);

impl JournalFile {
    pub(crate) fn open(path: &std::path::Path) -> io::Result<Self> {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map(JournalFile)
    }
}

impl StorageBackend for JournalFile {
    fn len(&self) -> io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        std::os::unix::fs::FileExt::read_exact_at(&self.0, out, offset)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.0.sync_data()
    }

    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        std::os::unix::fs::FileExt::write_all_at(&self.0, data, offset)
    }
}
