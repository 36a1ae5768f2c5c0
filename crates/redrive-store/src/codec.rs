//! The hand-written, versioned binary encoding of the records stored by
//! [`RedbStore`](crate::RedbStore). `docs/storage-format.md` describes every layout byte by byte.
//!
//! Conventions: every value starts with a record-version byte; integers are fixed-width
//! little-endian; strings and byte strings are a `u32` length followed by the bytes (strings are
//! UTF-8); an `Option` is a presence byte (`0` absent, `1` present) followed by the value if
//! present; maps and lists are a `u32` count followed by the entries (maps in key order).
//! Fields that are part of the redb key (queue uid, seq, task id, dedup key) are not repeated
//! in the value.
//!
//! Decoding never panics: truncated, oversized, non-UTF-8 or otherwise malformed input is a
//! [`CodecError`].

use std::collections::BTreeMap;
use std::sync::Arc;

use redrive_core::api::{MessageAttributeValue, MessageAttributes};

use crate::{DedupRecord, MessageRecord, MoveTaskRecord, MoveTaskStatus, QueueRecord};

/// Record version written for every record type by this build.
pub const RECORD_V1: u8 = 1;

/// Length of the fixed-width prefix of a message value that [`patch_message_state`] rewrites:
/// version (1), `visible_at_ms` (8), `receive_count` (4), `first_receive_ms` (1 + 8),
/// `last_receive_ms` (1 + 8).
pub const MESSAGE_STATE_LEN: usize = 1 + 8 + 4 + 9 + 9;

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
}

// ---------------------------------------------------------------------------------------------
// Writer

struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    fn new(version: u8, capacity: usize) -> Self {
        let mut buf = Vec::with_capacity(capacity);
        buf.push(version);
        Writer { buf }
    }

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

    fn finish(self) -> Vec<u8> {
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

    fn version(&mut self, what: &'static str) -> Result<(), CodecError> {
        match self.u8()? {
            RECORD_V1 => Ok(()),
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
// Records

/// Encodes a queue record (the uid is the key).
pub fn encode_queue(q: &QueueRecord) -> Vec<u8> {
    let mut w = Writer::new(RECORD_V1, 128);
    w.str(&q.region);
    w.str(&q.account);
    w.str(&q.name);
    w.string_map(&q.attributes);
    w.string_map(&q.tags);
    w.u64(q.created_secs);
    w.u64(q.last_modified_secs);
    w.opt_u64(q.last_purge_ms);
    w.finish()
}

pub fn decode_queue(uid: u64, bytes: &[u8]) -> Result<QueueRecord, CodecError> {
    let mut r = Reader::new(bytes);
    r.version("queue")?;
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

/// Encodes a message record (queue uid and seq are the key). The mutable delivery state comes
/// first at fixed offsets so [`patch_message_state`] can rewrite it without decoding the rest.
pub fn encode_message(m: &MessageRecord) -> Vec<u8> {
    let mut w = Writer::new(RECORD_V1, 96 + m.body.len());
    w.u64(m.visible_at_ms);
    w.u32(m.receive_count);
    w.fixed_opt_u64(m.first_receive_ms);
    w.fixed_opt_u64(m.last_receive_ms);
    w.u64(m.sent_ms);
    w.u64(m.enqueued_ms);
    w.str(&m.message_id);
    w.str(&m.sender_id);
    w.str(&m.body);
    w.attributes(&m.attributes);
    w.attributes(&m.system_attributes);
    w.opt_str(m.group_id.as_deref());
    w.opt_str(m.dedup_id.as_deref());
    w.opt_str(m.sequence_number.as_deref());
    w.opt_str(m.dead_letter_source_arn.as_deref());
    w.opt_u64(m.dead_lettered_ms);
    w.finish()
}

pub fn decode_message(queue_uid: u64, seq: u64, bytes: &[u8]) -> Result<MessageRecord, CodecError> {
    let mut r = Reader::new(bytes);
    r.version("message")?;
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
        body: Arc::from(r.string()?),
        attributes: r.attributes()?,
        system_attributes: r.attributes()?,
        group_id: r.opt_string()?,
        dedup_id: r.opt_string()?,
        sequence_number: r.opt_string()?,
        dead_letter_source_arn: r.opt_string()?,
        dead_lettered_ms: r.opt_u64()?,
    };
    r.finish()?;
    Ok(m)
}

/// Rewrites the delivery state (`Mutation::UpdateMessage`) of an encoded message in place.
pub fn patch_message_state(
    bytes: &mut [u8],
    visible_at_ms: u64,
    receive_count: u32,
    first_receive_ms: Option<u64>,
    last_receive_ms: Option<u64>,
) -> Result<(), CodecError> {
    if bytes.len() < MESSAGE_STATE_LEN {
        return Err(CodecError::Truncated {
            offset: bytes.len(),
            needed: MESSAGE_STATE_LEN - bytes.len(),
        });
    }
    if bytes[0] != RECORD_V1 {
        return Err(CodecError::UnknownVersion {
            what: "message",
            version: bytes[0],
        });
    }
    let mut w = Writer {
        buf: Vec::with_capacity(MESSAGE_STATE_LEN),
    };
    w.u8(RECORD_V1);
    w.u64(visible_at_ms);
    w.u32(receive_count);
    w.fixed_opt_u64(first_receive_ms);
    w.fixed_opt_u64(last_receive_ms);
    bytes[..MESSAGE_STATE_LEN].copy_from_slice(&w.buf);
    Ok(())
}

/// Encodes a move task record (the task id is the key).
pub fn encode_move_task(t: &MoveTaskRecord) -> Vec<u8> {
    let mut w = Writer::new(RECORD_V1, 128);
    w.str(&t.source_arn);
    w.opt_str(t.destination_arn.as_deref());
    w.opt_i64(t.max_per_second);
    w.u8(status_tag(t.status));
    w.u64(t.moved);
    w.u64(t.to_move);
    w.u64(t.started_ms);
    w.opt_str(t.failure_reason.as_deref());
    w.finish()
}

pub fn decode_move_task(task_id: &str, bytes: &[u8]) -> Result<MoveTaskRecord, CodecError> {
    let mut r = Reader::new(bytes);
    r.version("move task")?;
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

/// Encodes a deduplication entry (queue uid and key are the key).
pub fn encode_dedup(d: &DedupRecord) -> Vec<u8> {
    let mut w = Writer::new(RECORD_V1, 64);
    w.u64(d.expires_ms);
    w.str(&d.message_id);
    w.str(&d.sequence_number);
    w.finish()
}

pub fn decode_dedup(queue_uid: u64, key: &str, bytes: &[u8]) -> Result<DedupRecord, CodecError> {
    let mut r = Reader::new(bytes);
    r.version("dedup")?;
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
            body: Arc::from("body with \0 nul and ünicode"),
            attributes,
            system_attributes,
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
        let bytes = encode_message(&m);
        assert_eq!(bytes[0], RECORD_V1);
        assert_eq!(decode_message(m.queue_uid, m.seq, &bytes).unwrap(), m);
        let bare = MessageRecord {
            attributes: MessageAttributes::new(),
            system_attributes: MessageAttributes::new(),
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
            decode_message(bare.queue_uid, bare.seq, &bytes).unwrap(),
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
                decode_move_task(&t.task_id, &encode_move_task(&t)).unwrap(),
                t
            );
        }
        let t = MoveTaskRecord {
            destination_arn: Some("arn:dst".into()),
            max_per_second: None,
            failure_reason: None,
            ..sample_task()
        };
        assert_eq!(
            decode_move_task(&t.task_id, &encode_move_task(&t)).unwrap(),
            t
        );
    }

    #[test]
    fn dedup_round_trip() {
        let d = sample_dedup();
        assert_eq!(
            decode_dedup(d.queue_uid, &d.key, &encode_dedup(&d)).unwrap(),
            d
        );
    }

    #[test]
    fn message_layout_matches_the_documented_sizes() {
        let m = MessageRecord {
            attributes: MessageAttributes::new(),
            system_attributes: MessageAttributes::new(),
            group_id: None,
            dedup_id: None,
            sequence_number: None,
            dead_letter_source_arn: None,
            dead_lettered_ms: None,
            ..sample_message()
        };
        let bytes = encode_message(&m);
        let strings = m.message_id.len() + m.sender_id.len() + m.body.len();
        // docs/storage-format.md: 72 bytes besides message id, sender id and body.
        assert_eq!(bytes.len(), 72 + strings);
        assert_eq!(&bytes[31..39], &m.sent_ms.to_le_bytes());
        assert_eq!(
            &bytes[47..51],
            &u32::try_from(m.message_id.len()).unwrap().to_le_bytes()
        );
    }

    #[test]
    fn patch_rewrites_only_the_delivery_state() {
        let m = sample_message();
        let mut bytes = encode_message(&m);
        patch_message_state(&mut bytes, 99, 2, None, Some(77)).unwrap();
        let expected = MessageRecord {
            visible_at_ms: 99,
            receive_count: 2,
            first_receive_ms: None,
            last_receive_ms: Some(77),
            ..m.clone()
        };
        assert_eq!(
            decode_message(m.queue_uid, m.seq, &bytes).unwrap(),
            expected
        );
        assert!(patch_message_state(&mut [1u8; 5], 0, 0, None, None).is_err());
        let mut wrong_version = encode_message(&m);
        wrong_version[0] = 2;
        assert!(patch_message_state(&mut wrong_version, 0, 0, None, None).is_err());
    }

    #[test]
    fn malformed_input_is_an_error() {
        let bytes = encode_message(&sample_message());
        for cut in 0..bytes.len() {
            assert!(decode_message(0, 0, &bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(
            decode_message(0, 0, &longer),
            Err(CodecError::TrailingBytes { count: 1 })
        );
        let mut future = bytes.clone();
        future[0] = 2;
        assert!(matches!(
            decode_message(0, 0, &future),
            Err(CodecError::UnknownVersion { version: 2, .. })
        ));
        // An absurd count must fail fast instead of allocating.
        let mut huge = vec![RECORD_V1];
        huge.extend_from_slice(&[0; 8 + 4 + 9 + 9 + 8 + 8]);
        huge.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]); // three empty strings
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            decode_message(0, 0, &huge),
            Err(CodecError::Truncated { .. })
        ));
        let mut bad_status = encode_move_task(&sample_task());
        let status_at = bad_status.len() - 1 - 8 * 3 - 1 - 4 - "nope".len();
        bad_status[status_at] = 9;
        assert!(matches!(
            decode_move_task("t", &bad_status),
            Err(CodecError::InvalidTag { tag: 9, .. })
        ));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode_queue(1, &bytes);
            let _ = decode_message(1, 2, &bytes);
            let _ = decode_move_task("t", &bytes);
            let _ = decode_dedup(1, "k", &bytes);
            let mut patched = bytes.clone();
            let _ = patch_message_state(&mut patched, 1, 2, Some(3), None);
        }

        #[test]
        fn decoding_mutated_records_never_panics(
            flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
            cut in any::<prop::sample::Index>(),
        ) {
            for record in [
                encode_message(&sample_message()),
                encode_queue(&sample_queue()),
                encode_move_task(&sample_task()),
                encode_dedup(&sample_dedup()),
            ] {
                let mut bytes = record;
                for (at, v) in &flips {
                    let i = at.index(bytes.len());
                    bytes[i] ^= v;
                }
                bytes.truncate(cut.index(bytes.len() + 1));
                let _ = decode_queue(1, &bytes);
                let _ = decode_message(1, 2, &bytes);
                let _ = decode_move_task("t", &bytes);
                let _ = decode_dedup(1, "k", &bytes);
            }
        }
    }
}
