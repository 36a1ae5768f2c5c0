//! Receipt handles: `base64url("<queue uid>:<message seq>:<receive count>")`.
//!
//! The receive count makes every receive's handle distinct, and it is persisted with the
//! message, so handles stay valid across a restart.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceiptHandle {
    pub queue_uid: u64,
    pub seq: u64,
    pub receive_count: u32,
}

impl ReceiptHandle {
    pub fn encode(&self) -> String {
        let raw = format!("{}:{}:{}", self.queue_uid, self.seq, self.receive_count);
        URL_SAFE_NO_PAD.encode(raw.as_bytes())
    }

    pub fn decode(s: &str) -> Option<ReceiptHandle> {
        let raw = URL_SAFE_NO_PAD.decode(s.as_bytes()).ok()?;
        let raw = std::str::from_utf8(&raw).ok()?;
        let mut it = raw.split(':');
        let h = ReceiptHandle {
            queue_uid: it.next()?.parse().ok()?,
            seq: it.next()?.parse().ok()?,
            receive_count: it.next()?.parse().ok()?,
        };
        it.next().is_none().then_some(h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_garbage() {
        let h = ReceiptHandle {
            queue_uid: 7,
            seq: 42,
            receive_count: 3,
        };
        assert_eq!(ReceiptHandle::decode(&h.encode()), Some(h));
        assert_eq!(ReceiptHandle::decode("not a handle"), None);
        assert_eq!(ReceiptHandle::decode(""), None);
        assert_eq!(
            ReceiptHandle::decode(&URL_SAFE_NO_PAD.encode("1:2:3:4")),
            None
        );
    }
}
