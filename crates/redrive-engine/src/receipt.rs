//! Receipt handles.
//!
//! Current form (version 2, 180 characters like AWS's): `base64url(0x02 ‖ queue uid (u64 BE) ‖
//! message seq (u64 BE) ‖ receive count (u32 BE) ‖ 114 filler bytes)`. The filler is derived
//! from the three fields (a fixed mixing function, no secret), so a handle is deterministic (a
//! FIFO receive-attempt replay hands out the same handle), looks random like AWS's, and a
//! garbled handle fails the filler check. Handles carry no time: they stay valid across a
//! restart because the receive count is persisted with the message.
//!
//! Version 1 (28 characters, before issue 20): `base64url("<queue uid>:<seq>:<receive count>")`.
//! Still decoded, so clients holding handles across an upgrade can delete them.
//!
//! The receive count makes every receive's handle distinct.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceiptHandle {
    pub queue_uid: u64,
    pub seq: u64,
    pub receive_count: u32,
}

const V2: u8 = 2;
const FIELDS: usize = 1 + 8 + 8 + 4;
const FILLER: usize = 114;
/// Length of an encoded version-2 handle in characters.
pub const HANDLE_LEN: usize = (FIELDS + FILLER) * 4 / 3;

/// SplitMix64: a fixed mixing function for the filler.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn filler(h: &ReceiptHandle) -> [u8; FILLER] {
    let mut out = [0u8; FILLER];
    let mut state = mix(h.queue_uid ^ mix(h.seq ^ mix(u64::from(h.receive_count))));
    for chunk in out.chunks_mut(8) {
        state = mix(state);
        chunk.copy_from_slice(&state.to_be_bytes()[..chunk.len()]);
    }
    out
}

impl ReceiptHandle {
    pub fn encode(&self) -> String {
        let mut raw = Vec::with_capacity(FIELDS + FILLER);
        raw.push(V2);
        raw.extend_from_slice(&self.queue_uid.to_be_bytes());
        raw.extend_from_slice(&self.seq.to_be_bytes());
        raw.extend_from_slice(&self.receive_count.to_be_bytes());
        raw.extend_from_slice(&filler(self));
        URL_SAFE_NO_PAD.encode(raw)
    }

    pub fn decode(s: &str) -> Option<ReceiptHandle> {
        let raw = URL_SAFE_NO_PAD.decode(s.as_bytes()).ok()?;
        if raw.len() == FIELDS + FILLER && raw[0] == V2 {
            let h = ReceiptHandle {
                queue_uid: u64::from_be_bytes(raw[1..9].try_into().ok()?),
                seq: u64::from_be_bytes(raw[9..17].try_into().ok()?),
                receive_count: u32::from_be_bytes(raw[17..21].try_into().ok()?),
            };
            return (raw[FIELDS..] == filler(&h)).then_some(h);
        }
        Self::decode_v1(&raw)
    }

    /// The pre-issue-20 text form `uid:seq:count`.
    fn decode_v1(raw: &[u8]) -> Option<ReceiptHandle> {
        let raw = std::str::from_utf8(raw).ok()?;
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

    #[test]
    fn handles_are_long_distinct_and_deterministic() {
        let h = ReceiptHandle {
            queue_uid: u64::MAX,
            seq: 1_800_000_000_000 * 1024,
            receive_count: 1,
        };
        let s = h.encode();
        assert_eq!(s.len(), HANDLE_LEN);
        assert!(s.len() >= 100, "{s}");
        assert_eq!(s, h.encode());
        let next = ReceiptHandle {
            receive_count: 2,
            ..h
        };
        assert_ne!(s, next.encode());
        // The filler differs too, not only the field bytes.
        assert_ne!(s[40..], next.encode()[40..]);
    }

    #[test]
    fn old_short_handles_still_decode() {
        let old = URL_SAFE_NO_PAD.encode("7:42:3");
        assert_eq!(old.len(), 8);
        assert_eq!(
            ReceiptHandle::decode(&old),
            Some(ReceiptHandle {
                queue_uid: 7,
                seq: 42,
                receive_count: 3
            })
        );
    }

    #[test]
    fn a_garbled_long_handle_is_invalid() {
        let h = ReceiptHandle {
            queue_uid: 9,
            seq: 10,
            receive_count: 1,
        };
        let s = h.encode();
        // Change one character of the filler.
        let mut b = s.into_bytes();
        let i = b.len() - 10;
        b[i] = if b[i] == b'A' { b'B' } else { b'A' };
        assert_eq!(ReceiptHandle::decode(&String::from_utf8(b).unwrap()), None);
        // Change a field byte: the filler no longer matches.
        let mut raw = URL_SAFE_NO_PAD.decode(h.encode()).unwrap();
        raw[20] ^= 1;
        assert_eq!(ReceiptHandle::decode(&URL_SAFE_NO_PAD.encode(raw)), None);
    }
}
