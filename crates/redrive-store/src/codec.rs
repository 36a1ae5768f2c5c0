//! The hand-written, versioned binary encoding of the records stored by
//! [`RedbStore`](crate::RedbStore). `docs/storage-format.md` describes every layout byte by byte.
//!
//! Format version 2: every stored value is **sealed**: a 4-byte CRC32C (little-endian) followed
//! by the record's payload. The checksum covers the table name, the record's key (in the
//! canonical key encoding of [`key`]) and the payload, so a flipped bit anywhere in the value,
//! and a value stored under the wrong key or in the wrong table, fails verification
//! ([`CodecError::ChecksumMismatch`]).
//!
//! Payload conventions: every payload starts with a record-version byte (except extension
//! documents, which are JSON versioned by the engine); integers are fixed-width little-endian;
//! strings and byte strings are a `u32` length followed by the bytes (strings are UTF-8); an
//! `Option` is a presence byte (`0` absent, `1` present) followed by the value if present; maps
//! and lists are a `u32` count followed by the entries (maps in key order). Fields that are
//! part of the redb key (queue uid, seq, task id, dedup key) are not repeated in the value.
//!
//! A message is two records: the immutable part in `messages` ([`encode_message`]) and the
//! small delivery state in `message_state` ([`encode_message_state`]), so a receive rewrites
//! 35 bytes instead of the whole message.
//!
//! Decoding never panics: truncated, oversized, non-UTF-8 or otherwise malformed input is a
//! [`CodecError`]. The `*_v1` decoders read the unsealed records of format version 1 (used only
//! by the migration).

use std::collections::BTreeMap;
use std::sync::Arc;

use redrive_core::api::{MessageAttributeValue, MessageAttributes};

use crate::{
    DedupRecord, DocumentRecord, MessagePayload, MessageRecord, MoveTaskRecord, MoveTaskStatus,
    Payload, QueueRecord,
};

/// Record version 1: queues, message state, move tasks, dedup entries, quarantine entries, and
/// every record of format version 1.
pub const RECORD_V1: u8 = 1;

/// Record version 2: the immutable part of a message (format version 2; version 1 held the
/// delivery state too).
pub const RECORD_V2: u8 = 2;

/// Record version 3: the header of a message (format version 3: the body and attributes moved
/// to `message_body`).
pub const RECORD_V3: u8 = 3;

/// Length of the CRC32C that starts every sealed value.
pub const CHECKSUM_LEN: usize = 4;

/// Length of a stored `message_state` value: checksum (4), version (1), `visible_at_ms` (8),
/// `receive_count` (4), `first_receive_ms` (1 + 8), `last_receive_ms` (1 + 8).
pub const MESSAGE_STATE_LEN: usize = CHECKSUM_LEN + 1 + 8 + 4 + 9 + 9;

/// Table names, as redb knows them and as the checksum covers them.
pub mod table {
    pub const META: &str = "meta";
    pub const QUEUES: &str = "queues";
    pub const MESSAGES: &str = "messages";
    pub const MESSAGE_STATE: &str = "message_state";
    pub const MESSAGE_BODY: &str = "message_body";
    pub const MOVE_TASKS: &str = "move_tasks";
    pub const DEDUP: &str = "dedup";
    pub const DOCUMENTS: &str = "documents";
    pub const QUARANTINE: &str = "quarantine";

    /// Every table holding sealed records, in load order.
    pub const SEALED: [&str; 8] = [
        QUEUES,
        MESSAGES,
        MESSAGE_STATE,
        MESSAGE_BODY,
        MOVE_TASKS,
        DEDUP,
        DOCUMENTS,
        QUARANTINE,
    ];
}

/// A record that could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    #[error("record truncated: needed {needed} more bytes at offset {offset}")]
    Truncated { offset: usize, needed: usize },
    #[error("unknown {what} record version {version}")]
    UnknownVersion { what: &'static str, version: u8 },
    #[error("invalid {what} tag {tag} at offset {offset}")]
    InvalidTag {
        what: &'static str,
        tag: u8,
        offset: usize,
    },
    #[error("invalid UTF-8 in string at offset {offset}")]
    InvalidUtf8 { offset: usize },
    #[error("duplicate map key at offset {offset}")]
    DuplicateKey { offset: usize },
    #[error("{count} trailing bytes after record")]
    TrailingBytes { count: usize },
    #[error("checksum mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    ChecksumMismatch { stored: u32, computed: u32 },
    #[error("invalid UTF-8 in key")]
    InvalidKey,
}

/// The CRC32C (Castagnoli) of a record: over the table name, a zero byte, the key's length
/// (`u32` LE), the key bytes and the payload.
pub fn checksum(table: &str, key: &[u8], payload: &[u8]) -> u32 {
    let mut crc = crc32c::crc32c(table.as_bytes());
    crc = crc32c::crc32c_append(crc, &[0]);
    crc = crc32c::crc32c_append(
        crc,
        &u32::try_from(key.len()).unwrap_or(u32::MAX).to_le_bytes(),
    );
    crc = crc32c::crc32c_append(crc, key);
    crc32c::crc32c_append(crc, payload)
}

/// `checksum ‖ payload`: the stored form of a record.
pub fn seal(table: &str, key: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(CHECKSUM_LEN + payload.len());
    out.extend_from_slice(&checksum(table, key, payload).to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// Verifies a sealed value and returns its payload.
pub fn unseal<'a>(table: &str, key: &[u8], value: &'a [u8]) -> Result<&'a [u8], CodecError> {
    if value.len() < CHECKSUM_LEN {
        return Err(CodecError::Truncated {
            offset: value.len(),
            needed: CHECKSUM_LEN - value.len(),
        });
    }
    let (stored, payload) = value.split_at(CHECKSUM_LEN);
    let stored = u32::from_le_bytes([stored[0], stored[1], stored[2], stored[3]]);
    let computed = checksum(table, key, payload);
    if stored != computed {
        return Err(CodecError::ChecksumMismatch { stored, computed });
    }
    Ok(payload)
}

/// The checksum kept in `meta.checksum`: the CRC32C of table `meta`, an empty key and the
/// payload `format_version (u64 LE) ‖ max_queue_uid (u64 LE)`, widened to `u64`.
pub fn meta_checksum(format_version: u64, max_queue_uid: u64) -> u64 {
    let mut payload = [0u8; 16];
    payload[..8].copy_from_slice(&format_version.to_le_bytes());
    payload[8..].copy_from_slice(&max_queue_uid.to_le_bytes());
    u64::from(checksum(table::META, &[], &payload))
}

/// Canonical key bytes of each table (what the checksum covers; `describe_key` prints them).
pub mod key {
    /// `queues`: the uid, 8 bytes LE.
    pub fn queue(uid: u64) -> [u8; 8] {
        uid.to_le_bytes()
    }

    /// `messages` and `message_state`: uid ‖ seq, 8 bytes LE each.
    pub fn message(queue_uid: u64, seq: u64) -> [u8; 16] {
        let mut out = [0u8; 16];
        out[..8].copy_from_slice(&queue_uid.to_le_bytes());
        out[8..].copy_from_slice(&seq.to_le_bytes());
        out
    }

    /// `move_tasks`: the task id's UTF-8 bytes.
    pub fn move_task(task_id: &[u8]) -> Vec<u8> {
        task_id.to_vec()
    }

    /// `dedup`: uid (8 bytes LE) ‖ the scope key's bytes.
    pub fn dedup(queue_uid: u64, key: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + key.len());
        out.extend_from_slice(&queue_uid.to_le_bytes());
        out.extend_from_slice(key);
        out
    }

    /// `documents`: kind length (`u32` LE) ‖ kind ‖ key.
    pub fn document(kind: &[u8], key: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(4 + kind.len() + key.len());
        out.extend_from_slice(&u32::try_from(kind.len()).unwrap_or(u32::MAX).to_le_bytes());
        out.extend_from_slice(kind);
        out.extend_from_slice(key);
        out
    }

    /// `quarantine`: table name length (`u32` LE) ‖ table name ‖ the record's canonical key.
    pub fn quarantine(table: &[u8], key: &[u8]) -> Vec<u8> {
        document(table, key)
    }

    /// `(queue_uid, seq)` of a `messages`/`message_state` key.
    pub fn message_parts(key: &[u8]) -> Option<(u64, u64)> {
        let uid = u64::from_le_bytes(key.get(..8)?.try_into().ok()?);
        let seq = u64::from_le_bytes(key.get(8..16)?.try_into().ok()?);
        (key.len() == 16).then_some((uid, seq))
    }
}

/// A printable form of a record's canonical key: `uid` for queues, `uid/seq` for messages and
/// their state, the task id, `uid/key` for dedup entries, `kind/key` for documents (non-UTF-8
/// bytes and control characters escaped).
pub fn describe_key(table: &str, key: &[u8]) -> String {
    let text = |b: &[u8]| String::from_utf8_lossy(b).escape_debug().to_string();
    match table {
        table::QUEUES if key.len() == 8 => {
            u64::from_le_bytes(key.try_into().unwrap_or([0; 8])).to_string()
        }
        table::MESSAGES | table::MESSAGE_STATE | table::MESSAGE_BODY => {
            match key::message_parts(key) {
                Some((uid, seq)) => format!("{uid}/{seq}"),
                None => hex(key),
            }
        }
        table::MOVE_TASKS | table::META => text(key),
        table::DEDUP if key.len() >= 8 => {
            let uid = u64::from_le_bytes(key[..8].try_into().unwrap_or([0; 8]));
            format!("{uid}/{}", text(&key[8..]))
        }
        table::DOCUMENTS => match split_prefixed(key) {
            Some((kind, rest)) => format!("{}/{}", text(kind), text(rest)),
            None => hex(key),
        },
        _ => hex(key),
    }
}

/// Splits `u32 len ‖ first ‖ rest`.
pub(crate) fn split_prefixed(key: &[u8]) -> Option<(&[u8], &[u8])> {
    let n = usize::try_from(u32::from_le_bytes(key.get(..4)?.try_into().ok()?)).ok()?;
    let first = key.get(4..4usize.checked_add(n)?)?;
    Some((first, &key[4 + n..]))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

// ---------------------------------------------------------------------------------------------
// Writer

struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }

    fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    fn i64(&mut self, v: i64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    /// Lengths and counts above `u32::MAX` cannot occur for SQS data (a message, attributes
    /// included, is at most 1 MiB and rejected long before); they saturate rather than panic.
    fn len(&mut self, n: usize) {
        self.u32(u32::try_from(n).unwrap_or(u32::MAX));
    }

    fn bytes(&mut self, v: &[u8]) {
        self.len(v.len());
        self.buf.extend_from_slice(v);
    }

    fn str(&mut self, v: &str) {
        self.bytes(v.as_bytes());
    }

    fn opt_u64(&mut self, v: Option<u64>) {
        match v {
            None => self.u8(0),
            Some(v) => {
                self.u8(1);
                self.u64(v);
            }
        }
    }

    /// A fixed-width option: presence byte plus 8 bytes (zero when absent).
    fn fixed_opt_u64(&mut self, v: Option<u64>) {
        self.u8(u8::from(v.is_some()));
        self.u64(v.unwrap_or(0));
    }

    fn opt_i64(&mut self, v: Option<i64>) {
        match v {
            None => self.u8(0),
            Some(v) => {
                self.u8(1);
                self.i64(v);
            }
        }
    }

    fn opt_str(&mut self, v: Option<&str>) {
        match v {
            None => self.u8(0),
            Some(v) => {
                self.u8(1);
                self.str(v);
            }
        }
    }

    fn opt_bytes(&mut self, v: Option<&[u8]>) {
        match v {
            None => self.u8(0),
            Some(v) => {
                self.u8(1);
                self.bytes(v);
            }
        }
    }

    fn string_map(&mut self, m: &BTreeMap<String, String>) {
        self.len(m.len());
        for (k, v) in m {
            self.str(k);
            self.str(v);
        }
    }

    fn attributes(&mut self, m: &MessageAttributes) {
        self.len(m.len());
        for (name, v) in m {
            self.str(name);
            self.str(&v.data_type);
            self.opt_str(v.string_value.as_deref());
            self.opt_bytes(v.binary_value.as_deref());
            self.len(v.string_list_values.len());
            for s in &v.string_list_values {
                self.str(s);
            }
            self.len(v.binary_list_values.len());
            for b in &v.binary_list_values {
                self.bytes(b);
            }
        }
    }

    /// A writer whose buffer starts with room for the checksum, then the version byte.
    fn sealed(version: u8, capacity: usize) -> Self {
        let mut buf = Vec::with_capacity(CHECKSUM_LEN + capacity);
        buf.extend_from_slice(&[0; CHECKSUM_LEN]);
        buf.push(version);
        Writer { buf }
    }

    /// Fills in the checksum of a [`Writer::sealed`] buffer.
    fn finish_sealed(mut self, table: &str, key: &[u8]) -> Vec<u8> {
        let crc = checksum(table, key, &self.buf[CHECKSUM_LEN..]);
        self.buf[..CHECKSUM_LEN].copy_from_slice(&crc.to_le_bytes());
        self.buf
    }
}

// ---------------------------------------------------------------------------------------------
// Reader

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], CodecError> {
        if n > self.remaining() {
            return Err(CodecError::Truncated {
                offset: self.pos,
                needed: n - self.remaining(),
            });
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], CodecError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, CodecError> {
        Ok(self.array::<1>()?[0])
    }

    fn u32(&mut self) -> Result<u32, CodecError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, CodecError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    fn i64(&mut self) -> Result<i64, CodecError> {
        Ok(i64::from_le_bytes(self.array()?))
    }

    fn len(&mut self) -> Result<usize, CodecError> {
        // u32 always fits in usize on the 32- and 64-bit targets Redrive supports; a value that
        // did not would fail the bounds check in `take` anyway.
        Ok(usize::try_from(self.u32()?).unwrap_or(usize::MAX))
    }

    /// A count of entries each at least `min_entry` bytes long; bounding it by the remaining
    /// input keeps a corrupt count from causing a huge allocation.
    fn count(&mut self, min_entry: usize) -> Result<usize, CodecError> {
        let offset = self.pos;
        let n = self.len()?;
        let needed = n.saturating_mul(min_entry);
        if needed > self.remaining() {
            return Err(CodecError::Truncated {
                offset,
                needed: needed - self.remaining(),
            });
        }
        Ok(n)
    }

    fn bytes(&mut self) -> Result<&'a [u8], CodecError> {
        let n = self.len()?;
        self.take(n)
    }

    fn string(&mut self) -> Result<String, CodecError> {
        let offset = self.pos;
        let raw = self.bytes()?;
        std::str::from_utf8(raw)
            .map(str::to_owned)
            .map_err(|_| CodecError::InvalidUtf8 { offset })
    }

    fn presence(&mut self) -> Result<bool, CodecError> {
        let offset = self.pos;
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            tag => Err(CodecError::InvalidTag {
                what: "presence",
                tag,
                offset,
            }),
        }
    }

    fn opt_u64(&mut self) -> Result<Option<u64>, CodecError> {
        if self.presence()? {
            Ok(Some(self.u64()?))
        } else {
            Ok(None)
        }
    }

    fn fixed_opt_u64(&mut self) -> Result<Option<u64>, CodecError> {
        let present = self.presence()?;
        let v = self.u64()?;
        Ok(present.then_some(v))
    }

    fn opt_i64(&mut self) -> Result<Option<i64>, CodecError> {
        if self.presence()? {
            Ok(Some(self.i64()?))
        } else {
            Ok(None)
        }
    }

    fn opt_string(&mut self) -> Result<Option<String>, CodecError> {
        if self.presence()? {
            Ok(Some(self.string()?))
        } else {
            Ok(None)
        }
    }

    fn opt_bytes(&mut self) -> Result<Option<Vec<u8>>, CodecError> {
        if self.presence()? {
            Ok(Some(self.bytes()?.to_vec()))
        } else {
            Ok(None)
        }
    }

    fn string_map(&mut self) -> Result<BTreeMap<String, String>, CodecError> {
        let n = self.count(8)?;
        let mut m = BTreeMap::new();
        for _ in 0..n {
            let offset = self.pos;
            let k = self.string()?;
            let v = self.string()?;
            if m.insert(k, v).is_some() {
                return Err(CodecError::DuplicateKey { offset });
            }
        }
        Ok(m)
    }

    fn attributes(&mut self) -> Result<MessageAttributes, CodecError> {
        // name (4) + data type (4) + two presence bytes (2) + two counts (8)
        let n = self.count(18)?;
        let mut m = BTreeMap::new();
        for _ in 0..n {
            let offset = self.pos;
            let name = self.string()?;
            let data_type = self.string()?;
            let string_value = self.opt_string()?;
            let binary_value = self.opt_bytes()?;
            let strings = self.count(4)?;
            let mut string_list_values = Vec::with_capacity(strings);
            for _ in 0..strings {
                string_list_values.push(self.string()?);
            }
            let blobs = self.count(4)?;
            let mut binary_list_values = Vec::with_capacity(blobs);
            for _ in 0..blobs {
                binary_list_values.push(self.bytes()?.to_vec());
            }
            let value = MessageAttributeValue {
                string_value,
                binary_value,
                string_list_values,
                binary_list_values,
                data_type,
            };
            if m.insert(name, value).is_some() {
                return Err(CodecError::DuplicateKey { offset });
            }
        }
        Ok(m)
    }

    fn version(&mut self, what: &'static str, expected: u8) -> Result<(), CodecError> {
        match self.u8()? {
            v if v == expected => Ok(()),
            version => Err(CodecError::UnknownVersion { what, version }),
        }
    }

    fn finish(self) -> Result<(), CodecError> {
        match self.remaining() {
            0 => Ok(()),
            count => Err(CodecError::TrailingBytes { count }),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Records (format version 2)

/// Encodes a queue record (the uid is the key). Payload version 1 (the layout of format 1).
pub fn encode_queue(q: &QueueRecord) -> Vec<u8> {
    let mut w = Writer::sealed(RECORD_V1, 128);
    queue_fields(&mut w, q);
    w.finish_sealed(table::QUEUES, &key::queue(q.uid))
}

fn queue_fields(w: &mut Writer, q: &QueueRecord) {
    w.str(&q.region);
    w.str(&q.account);
    w.str(&q.name);
    w.string_map(&q.attributes);
    w.string_map(&q.tags);
    w.u64(q.created_secs);
    w.u64(q.last_modified_secs);
    w.opt_u64(q.last_purge_ms);
}

/// Verifies and decodes a stored queue value.
pub fn decode_queue(uid: u64, value: &[u8]) -> Result<QueueRecord, CodecError> {
    decode_queue_v1(uid, unseal(table::QUEUES, &key::queue(uid), value)?)
}

/// Decodes a format-1 queue value (no checksum), which is also the format-2 payload.
pub fn decode_queue_v1(uid: u64, bytes: &[u8]) -> Result<QueueRecord, CodecError> {
    let mut r = Reader::new(bytes);
    r.version("queue", RECORD_V1)?;
    let q = QueueRecord {
        uid,
        region: r.string()?,
        account: r.string()?,
        name: r.string()?,
        attributes: r.string_map()?,
        tags: r.string_map()?,
        created_secs: r.u64()?,
        last_modified_secs: r.u64()?,
        last_purge_ms: r.opt_u64()?,
    };
    r.finish()?;
    Ok(q)
}

/// The mutable delivery state of a message (`Mutation::UpdateMessage`), stored apart from the
/// message in `message_state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MessageState {
    pub visible_at_ms: u64,
    pub receive_count: u32,
    pub first_receive_ms: Option<u64>,
    pub last_receive_ms: Option<u64>,
}

impl MessageState {
    pub fn of(m: &MessageRecord) -> Self {
        MessageState {
            visible_at_ms: m.visible_at_ms,
            receive_count: m.receive_count,
            first_receive_ms: m.first_receive_ms,
            last_receive_ms: m.last_receive_ms,
        }
    }

    /// The state of a message enqueued at `enqueued_ms`, never received and not delayed:
    /// visible since it was enqueued. Format 5 stores no `message_state` record for a message
    /// in this state; a message without one is in it.
    pub fn implied(enqueued_ms: u64) -> Self {
        MessageState {
            visible_at_ms: enqueued_ms,
            receive_count: 0,
            first_receive_ms: None,
            last_receive_ms: None,
        }
    }

    /// Whether `m`'s state is [`MessageState::implied`] by its header (no record is stored).
    pub fn is_implied(m: &MessageRecord) -> bool {
        Self::of(m) == Self::implied(m.enqueued_ms)
    }
}

/// Encodes the header of a message: its immutable part without the payload (queue uid and seq
/// are the key; the delivery state is [`encode_message_state`], the payload
/// [`encode_message_body`]). Payload version 3.
pub fn encode_message(m: &MessageRecord) -> Vec<u8> {
    let mut w = Writer::sealed(RECORD_V3, 128);
    w.u64(m.sent_ms);
    w.u64(m.enqueued_ms);
    w.str(&m.message_id);
    w.str(&m.sender_id);
    w.opt_str(m.group_id.as_deref());
    w.opt_str(m.dedup_id.as_deref());
    w.opt_str(m.sequence_number.as_deref());
    w.opt_str(m.dead_letter_source_arn.as_deref());
    w.opt_u64(m.dead_lettered_ms);
    w.finish_sealed(table::MESSAGES, &key::message(m.queue_uid, m.seq))
}

/// Encodes a format-2 `messages` value (header and payload in one record, payload version 2).
/// Only for tests and benchmarks that model format 2.
pub fn encode_message_v2(m: &MessageRecord, p: &MessagePayload) -> Vec<u8> {
    let mut w = Writer::sealed(RECORD_V2, 96 + p.body.len());
    w.u64(m.sent_ms);
    w.u64(m.enqueued_ms);
    w.str(&m.message_id);
    w.str(&m.sender_id);
    w.opt_str(m.group_id.as_deref());
    w.opt_str(m.dedup_id.as_deref());
    w.opt_str(m.sequence_number.as_deref());
    w.opt_str(m.dead_letter_source_arn.as_deref());
    w.opt_u64(m.dead_lettered_ms);
    w.attributes(&p.attributes);
    w.attributes(&p.system_attributes);
    w.str(&p.body);
    w.finish_sealed(table::MESSAGES, &key::message(m.queue_uid, m.seq))
}

/// Encodes a message's payload for `message_body`. Payload version 1: attributes, system
/// attributes, body (last).
pub fn encode_message_body(queue_uid: u64, seq: u64, p: &MessagePayload) -> Vec<u8> {
    let mut w = Writer::sealed(RECORD_V1, 32 + p.body.len());
    w.attributes(&p.attributes);
    w.attributes(&p.system_attributes);
    w.str(&p.body);
    w.finish_sealed(table::MESSAGE_BODY, &key::message(queue_uid, seq))
}

/// Verifies and decodes a stored `message_body` value.
pub fn decode_message_body(
    queue_uid: u64,
    seq: u64,
    value: &[u8],
) -> Result<MessagePayload, CodecError> {
    let payload = unseal(table::MESSAGE_BODY, &key::message(queue_uid, seq), value)?;
    let mut r = Reader::new(payload);
    r.version("message body", RECORD_V1)?;
    let attributes = r.attributes()?;
    let system_attributes = r.attributes()?;
    let body = r.string()?;
    r.finish()?;
    Ok(MessagePayload {
        body,
        attributes,
        system_attributes,
    })
}

/// Verifies and decodes a stored message value; the delivery state comes from `state`. A
/// version-3 header gives [`Payload::Stored`]; a version-2 record (format 2, read by the
/// migration) gives its payload [`Payload::Loaded`].
pub fn decode_message(
    queue_uid: u64,
    seq: u64,
    value: &[u8],
    state: MessageState,
) -> Result<MessageRecord, CodecError> {
    let payload = unseal(table::MESSAGES, &key::message(queue_uid, seq), value)?;
    let mut r = Reader::new(payload);
    let version = r.u8()?;
    if version != RECORD_V3 && version != RECORD_V2 {
        return Err(CodecError::UnknownVersion {
            what: "message",
            version,
        });
    }
    let sent_ms = r.u64()?;
    let enqueued_ms = r.u64()?;
    let message_id = r.string()?;
    let sender_id = r.string()?;
    let group_id = r.opt_string()?;
    let dedup_id = r.opt_string()?;
    let sequence_number = r.opt_string()?;
    let dead_letter_source_arn = r.opt_string()?;
    let dead_lettered_ms = r.opt_u64()?;
    let payload = if version == RECORD_V2 {
        let attributes = r.attributes()?;
        let system_attributes = r.attributes()?;
        let body = r.string()?;
        Payload::Loaded(Arc::new(MessagePayload {
            body,
            attributes,
            system_attributes,
        }))
    } else {
        Payload::Stored
    };
    r.finish()?;
    Ok(MessageRecord {
        queue_uid,
        seq,
        message_id,
        payload,
        sender_id,
        sent_ms,
        enqueued_ms,
        visible_at_ms: state.visible_at_ms,
        receive_count: state.receive_count,
        first_receive_ms: state.first_receive_ms,
        last_receive_ms: state.last_receive_ms,
        group_id,
        dedup_id,
        sequence_number,
        dead_letter_source_arn,
        dead_lettered_ms,
    })
}

/// Encodes a message's delivery state: always [`MESSAGE_STATE_LEN`] bytes.
pub fn encode_message_state(queue_uid: u64, seq: u64, s: &MessageState) -> Vec<u8> {
    let mut w = Writer::sealed(RECORD_V1, MESSAGE_STATE_LEN);
    w.u64(s.visible_at_ms);
    w.u32(s.receive_count);
    w.fixed_opt_u64(s.first_receive_ms);
    w.fixed_opt_u64(s.last_receive_ms);
    w.finish_sealed(table::MESSAGE_STATE, &key::message(queue_uid, seq))
}

/// Verifies and decodes a stored `message_state` value.
pub fn decode_message_state(
    queue_uid: u64,
    seq: u64,
    value: &[u8],
) -> Result<MessageState, CodecError> {
    let payload = unseal(table::MESSAGE_STATE, &key::message(queue_uid, seq), value)?;
    let mut r = Reader::new(payload);
    r.version("message state", RECORD_V1)?;
    let s = MessageState {
        visible_at_ms: r.u64()?,
        receive_count: r.u32()?,
        first_receive_ms: r.fixed_opt_u64()?,
        last_receive_ms: r.fixed_opt_u64()?,
    };
    r.finish()?;
    Ok(s)
}

/// Decodes a format-1 message value (no checksum; delivery state in its first 31 bytes).
pub fn decode_message_v1(
    queue_uid: u64,
    seq: u64,
    bytes: &[u8],
) -> Result<MessageRecord, CodecError> {
    let mut r = Reader::new(bytes);
    r.version("message", RECORD_V1)?;
    let visible_at_ms = r.u64()?;
    let receive_count = r.u32()?;
    let first_receive_ms = r.fixed_opt_u64()?;
    let last_receive_ms = r.fixed_opt_u64()?;
    let m = MessageRecord {
        queue_uid,
        seq,
        visible_at_ms,
        receive_count,
        first_receive_ms,
        last_receive_ms,
        sent_ms: r.u64()?,
        enqueued_ms: r.u64()?,
        message_id: r.string()?,
        sender_id: r.string()?,
        payload: {
            let body = r.string()?;
            let attributes = r.attributes()?;
            let system_attributes = r.attributes()?;
            Payload::Loaded(Arc::new(MessagePayload {
                body,
                attributes,
                system_attributes,
            }))
        },
        group_id: r.opt_string()?,
        dedup_id: r.opt_string()?,
        sequence_number: r.opt_string()?,
        dead_letter_source_arn: r.opt_string()?,
        dead_lettered_ms: r.opt_u64()?,
    };
    r.finish()?;
    Ok(m)
}

/// Encodes a move task record (the task id is the key). Payload version 1.
pub fn encode_move_task(t: &MoveTaskRecord) -> Vec<u8> {
    let mut w = Writer::sealed(RECORD_V1, 128);
    w.str(&t.source_arn);
    w.opt_str(t.destination_arn.as_deref());
    w.opt_i64(t.max_per_second);
    w.u8(status_tag(t.status));
    w.u64(t.moved);
    w.u64(t.to_move);
    w.u64(t.started_ms);
    w.opt_str(t.failure_reason.as_deref());
    w.finish_sealed(table::MOVE_TASKS, &key::move_task(t.task_id.as_bytes()))
}

/// Verifies and decodes a stored move task; `task_id` is the raw key.
pub fn decode_move_task(task_id: &[u8], value: &[u8]) -> Result<MoveTaskRecord, CodecError> {
    let payload = unseal(table::MOVE_TASKS, &key::move_task(task_id), value)?;
    let task_id = std::str::from_utf8(task_id).map_err(|_| CodecError::InvalidKey)?;
    decode_move_task_v1(task_id, payload)
}

/// Decodes a format-1 move task value, which is also the format-2 payload.
pub fn decode_move_task_v1(task_id: &str, bytes: &[u8]) -> Result<MoveTaskRecord, CodecError> {
    let mut r = Reader::new(bytes);
    r.version("move task", RECORD_V1)?;
    let source_arn = r.string()?;
    let destination_arn = r.opt_string()?;
    let max_per_second = r.opt_i64()?;
    let offset = r.pos;
    let tag = r.u8()?;
    let status = status_from_tag(tag).ok_or(CodecError::InvalidTag {
        what: "move task status",
        tag,
        offset,
    })?;
    let t = MoveTaskRecord {
        task_id: task_id.to_owned(),
        source_arn,
        destination_arn,
        max_per_second,
        status,
        moved: r.u64()?,
        to_move: r.u64()?,
        started_ms: r.u64()?,
        failure_reason: r.opt_string()?,
    };
    r.finish()?;
    Ok(t)
}

fn status_tag(s: MoveTaskStatus) -> u8 {
    match s {
        MoveTaskStatus::Running => 0,
        MoveTaskStatus::Completed => 1,
        MoveTaskStatus::Cancelling => 2,
        MoveTaskStatus::Cancelled => 3,
        MoveTaskStatus::Failed => 4,
    }
}

fn status_from_tag(tag: u8) -> Option<MoveTaskStatus> {
    Some(match tag {
        0 => MoveTaskStatus::Running,
        1 => MoveTaskStatus::Completed,
        2 => MoveTaskStatus::Cancelling,
        3 => MoveTaskStatus::Cancelled,
        4 => MoveTaskStatus::Failed,
        _ => return None,
    })
}

/// Encodes a deduplication entry (queue uid and key are the key). Payload version 1.
pub fn encode_dedup(d: &DedupRecord) -> Vec<u8> {
    let mut w = Writer::sealed(RECORD_V1, 64);
    w.u64(d.expires_ms);
    w.str(&d.message_id);
    w.str(&d.sequence_number);
    w.finish_sealed(table::DEDUP, &key::dedup(d.queue_uid, d.key.as_bytes()))
}

/// Verifies and decodes a stored dedup entry; `key` is the raw scope key.
pub fn decode_dedup(queue_uid: u64, key: &[u8], value: &[u8]) -> Result<DedupRecord, CodecError> {
    let payload = unseal(table::DEDUP, &key::dedup(queue_uid, key), value)?;
    let key = std::str::from_utf8(key).map_err(|_| CodecError::InvalidKey)?;
    decode_dedup_v1(queue_uid, key, payload)
}

/// Decodes a format-1 dedup value, which is also the format-2 payload.
pub fn decode_dedup_v1(queue_uid: u64, key: &str, bytes: &[u8]) -> Result<DedupRecord, CodecError> {
    let mut r = Reader::new(bytes);
    r.version("dedup", RECORD_V1)?;
    let d = DedupRecord {
        queue_uid,
        key: key.to_owned(),
        expires_ms: r.u64()?,
        message_id: r.string()?,
        sequence_number: r.string()?,
    };
    r.finish()?;
    Ok(d)
}

/// Encodes an extension document: the payload is the JSON itself (no version byte; the engine
/// versions its documents).
pub fn encode_document(d: &DocumentRecord) -> Vec<u8> {
    seal(
        table::DOCUMENTS,
        &key::document(d.kind.as_bytes(), d.key.as_bytes()),
        &d.value,
    )
}

/// Verifies a stored document; `kind` and `key` are the raw key parts.
pub fn decode_document(
    kind: &[u8],
    key: &[u8],
    value: &[u8],
) -> Result<DocumentRecord, CodecError> {
    let payload = unseal(table::DOCUMENTS, &key::document(kind, key), value)?;
    let text = |b: &[u8]| {
        std::str::from_utf8(b)
            .map(str::to_owned)
            .map_err(|_| CodecError::InvalidKey)
    };
    Ok(DocumentRecord {
        kind: text(kind)?,
        key: text(key)?,
        value: payload.to_vec(),
    })
}

/// A `quarantine` entry: a record that failed verification, moved out of its table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuarantineEntry {
    /// When it was quarantined (ms since the epoch).
    pub at_ms: u64,
    pub reason: String,
    /// The stored value exactly as found.
    pub raw: Vec<u8>,
}

/// Encodes a quarantine entry (the key is `(table, original canonical key)`). Payload
/// version 1: `at_ms` (`u64`), `reason` (`str`), `raw` (`bytes`).
pub fn encode_quarantine(table: &str, original_key: &[u8], e: &QuarantineEntry) -> Vec<u8> {
    let mut w = Writer::sealed(RECORD_V1, 32 + e.reason.len() + e.raw.len());
    w.u64(e.at_ms);
    w.str(&e.reason);
    w.bytes(&e.raw);
    w.finish_sealed(
        table::QUARANTINE,
        &key::quarantine(table.as_bytes(), original_key),
    )
}

/// Verifies and decodes a quarantine entry.
pub fn decode_quarantine(
    table: &[u8],
    original_key: &[u8],
    value: &[u8],
) -> Result<QuarantineEntry, CodecError> {
    let payload = unseal(
        table::QUARANTINE,
        &key::quarantine(table, original_key),
        value,
    )?;
    let mut r = Reader::new(payload);
    r.version("quarantine", RECORD_V1)?;
    let e = QuarantineEntry {
        at_ms: r.u64()?,
        reason: r.string()?,
        raw: r.bytes()?.to_vec(),
    };
    r.finish()?;
    Ok(e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn attr(data_type: &str) -> MessageAttributeValue {
        MessageAttributeValue {
            data_type: data_type.to_owned(),
            ..Default::default()
        }
    }

    fn sample_message() -> MessageRecord {
        let mut attributes = MessageAttributes::new();
        attributes.insert(
            "s".into(),
            MessageAttributeValue {
                string_value: Some("héllo".into()),
                ..attr("String")
            },
        );
        attributes.insert(
            "b".into(),
            MessageAttributeValue {
                binary_value: Some(vec![0, 1, 2, 255]),
                ..attr("Binary.custom")
            },
        );
        attributes.insert(
            "lists".into(),
            MessageAttributeValue {
                string_value: Some(String::new()),
                binary_value: Some(Vec::new()),
                string_list_values: vec!["a".into(), String::new(), "ü".into()],
                binary_list_values: vec![vec![], vec![9; 300]],
                data_type: "StringList".into(),
            },
        );
        let mut system_attributes = MessageAttributes::new();
        system_attributes.insert(
            "AWSTraceHeader".into(),
            MessageAttributeValue {
                string_value: Some("Root=1-abc".into()),
                ..attr("String")
            },
        );
        MessageRecord {
            queue_uid: 7,
            seq: u64::MAX,
            message_id: "6a1f…".into(),
            payload: Payload::new(
                "body with \0 nul and ünicode",
                attributes,
                system_attributes,
            ),
            sender_id: "AIDAEXAMPLE".into(),
            sent_ms: 1,
            enqueued_ms: 2,
            visible_at_ms: 3,
            receive_count: u32::MAX,
            first_receive_ms: Some(0),
            last_receive_ms: None,
            group_id: Some("g".into()),
            dedup_id: Some(String::new()),
            sequence_number: Some("18889".into()),
            dead_letter_source_arn: Some("arn:aws:sqs:us-east-1:000000000000:src".into()),
            dead_lettered_ms: Some(u64::MAX),
        }
    }

    fn sample_queue() -> QueueRecord {
        QueueRecord {
            uid: 3,
            region: "us-east-1".into(),
            account: "000000000000".into(),
            name: "orders.fifo".into(),
            attributes: [("FifoQueue".to_owned(), "true".to_owned())].into(),
            tags: [("team".to_owned(), String::new())].into(),
            created_secs: 10,
            last_modified_secs: 11,
            last_purge_ms: Some(12),
        }
    }

    fn sample_task() -> MoveTaskRecord {
        MoveTaskRecord {
            task_id: "task-1".into(),
            source_arn: "arn:src".into(),
            destination_arn: None,
            max_per_second: Some(-5),
            status: MoveTaskStatus::Cancelling,
            moved: 4,
            to_move: 9,
            started_ms: 100,
            failure_reason: Some("nope".into()),
        }
    }

    fn sample_dedup() -> DedupRecord {
        DedupRecord {
            queue_uid: 1,
            key: "g\0id".into(),
            expires_ms: 300_000,
            message_id: "m".into(),
            sequence_number: "1".into(),
        }
    }

    fn no_state() -> MessageState {
        MessageState::default()
    }

    #[test]
    fn queue_round_trip() {
        let q = sample_queue();
        assert_eq!(decode_queue(q.uid, &encode_queue(&q)).unwrap(), q);
        let empty = QueueRecord {
            attributes: BTreeMap::new(),
            tags: BTreeMap::new(),
            last_purge_ms: None,
            ..q
        };
        assert_eq!(
            decode_queue(empty.uid, &encode_queue(&empty)).unwrap(),
            empty
        );
    }

    #[test]
    fn message_round_trip() {
        let m = sample_message();
        let p = m.payload.loaded().unwrap().clone();
        let bytes = encode_message(&m);
        assert_eq!(bytes[CHECKSUM_LEN], RECORD_V3);
        let state = MessageState::of(&m);
        let value = encode_message_state(m.queue_uid, m.seq, &state);
        assert_eq!(value.len(), MESSAGE_STATE_LEN);
        let decoded_state = decode_message_state(m.queue_uid, m.seq, &value).unwrap();
        assert_eq!(decoded_state, state);
        // The header decodes without its payload; the payload from `message_body`.
        assert_eq!(
            decode_message(m.queue_uid, m.seq, &bytes, decoded_state).unwrap(),
            MessageRecord {
                payload: Payload::Stored,
                ..m.clone()
            }
        );
        let body = encode_message_body(m.queue_uid, m.seq, &p);
        assert_eq!(decode_message_body(m.queue_uid, m.seq, &body).unwrap(), *p);
        // A format-2 record decodes with its payload.
        let v2 = encode_message_v2(&m, &p);
        assert_eq!(v2[CHECKSUM_LEN], RECORD_V2);
        assert_eq!(
            decode_message(m.queue_uid, m.seq, &v2, decoded_state).unwrap(),
            m
        );
        let bare = MessageRecord {
            payload: Payload::Stored,
            first_receive_ms: None,
            group_id: None,
            dedup_id: None,
            sequence_number: None,
            dead_letter_source_arn: None,
            dead_lettered_ms: None,
            ..m
        };
        let bytes = encode_message(&bare);
        assert_eq!(
            decode_message(bare.queue_uid, bare.seq, &bytes, MessageState::of(&bare)).unwrap(),
            bare
        );
    }

    #[test]
    fn move_task_round_trip() {
        for status in [
            MoveTaskStatus::Running,
            MoveTaskStatus::Completed,
            MoveTaskStatus::Cancelling,
            MoveTaskStatus::Cancelled,
            MoveTaskStatus::Failed,
        ] {
            let t = MoveTaskRecord {
                status,
                ..sample_task()
            };
            assert_eq!(
                decode_move_task(t.task_id.as_bytes(), &encode_move_task(&t)).unwrap(),
                t
            );
        }
    }

    #[test]
    fn dedup_document_and_quarantine_round_trip() {
        let d = sample_dedup();
        assert_eq!(
            decode_dedup(d.queue_uid, d.key.as_bytes(), &encode_dedup(&d)).unwrap(),
            d
        );
        let doc = DocumentRecord {
            kind: "replay".into(),
            key: "r/1".into(),
            value: br#"{"v":1}"#.to_vec(),
        };
        assert_eq!(
            decode_document(b"replay", b"r/1", &encode_document(&doc)).unwrap(),
            doc
        );
        let e = QuarantineEntry {
            at_ms: 5,
            reason: "checksum mismatch".into(),
            raw: vec![1, 2, 3],
        };
        let k = key::message(1, 2);
        assert_eq!(
            decode_quarantine(b"messages", &k, &encode_quarantine("messages", &k, &e)).unwrap(),
            e
        );
    }

    #[test]
    fn message_layout_matches_the_documented_sizes() {
        let m = MessageRecord {
            group_id: None,
            dedup_id: None,
            sequence_number: None,
            dead_letter_source_arn: None,
            dead_lettered_ms: None,
            ..sample_message()
        };
        let bytes = encode_message(&m);
        let strings = m.message_id.len() + m.sender_id.len();
        // docs/storage-format.md: a format-3 header is 34 bytes besides message id and sender
        // id (no optional fields).
        assert_eq!(bytes.len(), 34 + strings);
        assert_eq!(&bytes[5..13], &m.sent_ms.to_le_bytes());
        assert_eq!(
            &bytes[21..25],
            &u32::try_from(m.message_id.len()).unwrap().to_le_bytes()
        );
        // The payload record: 18 bytes besides the attributes and the body, body last.
        let p = MessagePayload {
            body: "the body".into(),
            ..Default::default()
        };
        let body = encode_message_body(1, 2, &p);
        assert_eq!(body.len(), 4 + 1 + 4 + 4 + 4 + p.body.len());
        assert!(body.ends_with(p.body.as_bytes()));
        assert_eq!(encode_message_state(1, 2, &MessageState::of(&m)).len(), 35);
    }

    #[test]
    fn every_flipped_bit_and_every_wrong_key_is_caught() {
        let m = sample_message();
        let value = encode_message(&m);
        for i in 0..value.len() {
            for bit in [0x01u8, 0x80] {
                let mut bad = value.clone();
                bad[i] ^= bit;
                assert!(
                    decode_message(m.queue_uid, m.seq, &bad, no_state()).is_err(),
                    "byte {i}"
                );
            }
        }
        let state = encode_message_state(m.queue_uid, m.seq, &MessageState::of(&m));
        for i in 0..state.len() {
            let mut bad = state.clone();
            bad[i] ^= 0x10;
            assert!(decode_message_state(m.queue_uid, m.seq, &bad).is_err());
        }
        // The right bytes under another key, or in the other table, do not verify.
        assert!(matches!(
            decode_message(m.queue_uid, m.seq - 1, &value, no_state()),
            Err(CodecError::ChecksumMismatch { .. })
        ));
        assert!(decode_message_state(m.queue_uid + 1, m.seq, &state).is_err());
        let body = encode_message_body(m.queue_uid, m.seq, m.payload.loaded().unwrap());
        for i in 0..body.len() {
            let mut bad = body.clone();
            bad[i] ^= 0x04;
            assert!(
                decode_message_body(m.queue_uid, m.seq, &bad).is_err(),
                "byte {i}"
            );
        }
        assert!(decode_message_body(m.queue_uid, m.seq - 1, &body).is_err());
        let q = sample_queue();
        assert!(decode_queue(q.uid + 1, &encode_queue(&q)).is_err());
        let t = sample_task();
        assert!(decode_move_task(b"task-2", &encode_move_task(&t)).is_err());
        let d = sample_dedup();
        assert!(decode_dedup(d.queue_uid, b"other", &encode_dedup(&d)).is_err());
        // A value moved between the two message tables fails too (same key shape).
        let key = key::message(1, 2);
        let payload = [RECORD_V1; 31];
        assert!(
            unseal(
                table::MESSAGES,
                &key,
                &seal(table::MESSAGE_STATE, &key, &payload)
            )
            .is_err()
        );
    }

    /// Pins the stored bytes: a change here is a format change (docs/storage-format.md).
    #[test]
    fn golden_bytes() {
        // CRC32C check value (RFC 3720 / iSCSI).
        assert_eq!(crc32c::crc32c(b"123456789"), 0xE306_9283);
        let state = MessageState {
            visible_at_ms: 3,
            receive_count: 4,
            first_receive_ms: Some(5),
            last_receive_ms: None,
        };
        let value = encode_message_state(1, 2, &state);
        let mut payload = vec![1u8];
        payload.extend_from_slice(&3u64.to_le_bytes());
        payload.extend_from_slice(&4u32.to_le_bytes());
        payload.push(1);
        payload.extend_from_slice(&5u64.to_le_bytes());
        payload.push(0);
        payload.extend_from_slice(&[0; 8]);
        assert_eq!(&value[CHECKSUM_LEN..], &payload[..]);
        let mut input = b"message_state\0".to_vec();
        input.extend_from_slice(&16u32.to_le_bytes());
        input.extend_from_slice(&1u64.to_le_bytes());
        input.extend_from_slice(&2u64.to_le_bytes());
        input.extend_from_slice(&payload);
        assert_eq!(
            &value[..CHECKSUM_LEN],
            &crc32c::crc32c(&input).to_le_bytes()
        );
        assert_eq!(
            u32::from_le_bytes(value[..4].try_into().unwrap()),
            GOLDEN_STATE_CRC
        );
        assert_eq!(meta_checksum(2, 7), GOLDEN_META_CHECKSUM);
    }

    const GOLDEN_STATE_CRC: u32 = 0x776C_39DA;
    const GOLDEN_META_CHECKSUM: u64 = 1_658_336_327;

    #[test]
    fn describes_keys() {
        assert_eq!(describe_key(table::QUEUES, &key::queue(7)), "7");
        assert_eq!(describe_key(table::MESSAGES, &key::message(7, 9)), "7/9");
        assert_eq!(
            describe_key(table::DEDUP, &key::dedup(3, b"g\0id")),
            "3/g\\0id"
        );
        assert_eq!(
            describe_key(table::DOCUMENTS, &key::document(b"replay", b"r1")),
            "replay/r1"
        );
        assert_eq!(describe_key(table::MOVE_TASKS, b"t\xff"), "t\u{fffd}");
        assert_eq!(key::message_parts(&key::message(7, 9)), Some((7, 9)));
        assert_eq!(key::message_parts(&[0; 15]), None);
    }

    #[test]
    fn malformed_input_is_an_error() {
        let m = sample_message();
        let bytes = encode_message(&m);
        for cut in 0..bytes.len() {
            assert!(
                decode_message(m.queue_uid, m.seq, &bytes[..cut], no_state()).is_err(),
                "cut at {cut}"
            );
        }
        // Trailing bytes and unknown versions are caught after the checksum, too.
        let k = key::message(0, 0);
        let mut payload = bytes[CHECKSUM_LEN..].to_vec();
        payload.push(0);
        assert_eq!(
            decode_message(0, 0, &seal(table::MESSAGES, &k, &payload), no_state()),
            Err(CodecError::TrailingBytes { count: 1 })
        );
        let mut future = bytes[CHECKSUM_LEN..].to_vec();
        future[0] = 4;
        assert!(matches!(
            decode_message(0, 0, &seal(table::MESSAGES, &k, &future), no_state()),
            Err(CodecError::UnknownVersion { version: 4, .. })
        ));
        // An absurd count must fail fast instead of allocating.
        let mut huge = vec![RECORD_V2];
        huge.extend_from_slice(&[0; 16]);
        huge.extend_from_slice(&[0; 8]); // two empty strings
        huge.extend_from_slice(&[0; 5]); // four absent strings, absent u64
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            decode_message(0, 0, &seal(table::MESSAGES, &k, &huge), no_state()),
            Err(CodecError::Truncated { .. })
        ));
        let t = sample_task();
        let mut bad_status = encode_move_task(&t)[CHECKSUM_LEN..].to_vec();
        let status_at = bad_status.len() - 1 - 8 * 3 - 1 - 4 - "nope".len();
        bad_status[status_at] = 9;
        assert!(matches!(
            decode_move_task(
                t.task_id.as_bytes(),
                &seal(table::MOVE_TASKS, t.task_id.as_bytes(), &bad_status)
            ),
            Err(CodecError::InvalidTag { tag: 9, .. })
        ));
        // Keys that are not UTF-8 are an error, not a panic.
        let d = sample_dedup();
        let payload = encode_dedup(&d)[CHECKSUM_LEN..].to_vec();
        let raw_key = b"\xff";
        let value = seal(table::DEDUP, &key::dedup(1, raw_key), &payload);
        assert_eq!(
            decode_dedup(1, raw_key, &value),
            Err(CodecError::InvalidKey)
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode_queue(1, &bytes);
            let _ = decode_queue_v1(1, &bytes);
            let _ = decode_message(1, 2, &bytes, MessageState::default());
            let _ = decode_message_v1(1, 2, &bytes);
            let _ = decode_message_state(1, 2, &bytes);
            let _ = decode_move_task(b"t", &bytes);
            let _ = decode_move_task_v1("t", &bytes);
            let _ = decode_dedup(1, b"k", &bytes);
            let _ = decode_dedup_v1(1, "k", &bytes);
            let _ = decode_document(&bytes, &bytes, &bytes);
            let _ = decode_quarantine(&bytes, &bytes, &bytes);
            let _ = describe_key(table::DOCUMENTS, &bytes);
            let _ = describe_key(table::DEDUP, &bytes);
            let _ = describe_key(table::QUEUES, &bytes);
        }

        #[test]
        fn decoding_mutated_payloads_never_panics(
            flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
            cut in any::<prop::sample::Index>(),
        ) {
            let m = sample_message();
            for record in [
                encode_message(&m),
                encode_queue(&sample_queue()),
                encode_move_task(&sample_task()),
                encode_dedup(&sample_dedup()),
            ] {
                // Mutate the payload and re-seal it, so the decoders (not just the checksum)
                // see the damage.
                let mut bytes = record[CHECKSUM_LEN..].to_vec();
                for (at, v) in &flips {
                    let i = at.index(bytes.len());
                    bytes[i] ^= v;
                }
                bytes.truncate(cut.index(bytes.len() + 1));
                let k = key::message(1, 2);
                let _ = decode_message(1, 2, &seal(table::MESSAGES, &k, &bytes), MessageState::default());
                let _ = decode_message_v1(1, 2, &bytes);
                let _ = decode_queue_v1(1, &bytes);
                let _ = decode_move_task_v1("t", &bytes);
                let _ = decode_dedup_v1(1, "k", &bytes);
            }
        }
    }
}
