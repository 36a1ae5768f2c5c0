//! The digests SQS returns and SDKs verify: `MD5OfMessageBody` and the length-prefixed
//! `MD5OfMessageAttributes` encoding from the SQS Developer Guide.

use md5::{Digest, Md5};

use crate::api::{MessageAttributeValue, MessageAttributes};

pub fn md5_hex(data: &[u8]) -> String {
    hex::encode(Md5::digest(data))
}

pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Sha256;
    hex::encode(Sha256::digest(data))
}

fn push_len_prefixed(buf: &mut Vec<u8>, bytes: &[u8]) {
    buf.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    buf.extend_from_slice(bytes);
}

/// MD5 over attributes sorted by name: for each, name, data type, a transport byte (1 = string
/// values, 2 = binary, 3 = string list, 4 = binary list) and the value(s), every field prefixed
/// with its 4-byte big-endian length. `None` for no attributes (AWS omits the member).
pub fn md5_of_attributes(attrs: &MessageAttributes) -> Option<String> {
    if attrs.is_empty() {
        return None;
    }
    let mut buf = Vec::new();
    for (name, value) in attrs {
        push_len_prefixed(&mut buf, name.as_bytes());
        push_len_prefixed(&mut buf, value.data_type.as_bytes());
        encode_value(&mut buf, value);
    }
    Some(md5_hex(&buf))
}

fn encode_value(buf: &mut Vec<u8>, value: &MessageAttributeValue) {
    if let Some(s) = &value.string_value {
        buf.push(1);
        push_len_prefixed(buf, s.as_bytes());
    } else if let Some(b) = &value.binary_value {
        buf.push(2);
        push_len_prefixed(buf, b);
    } else if !value.string_list_values.is_empty() {
        buf.push(3);
        for s in &value.string_list_values {
            push_len_prefixed(buf, s.as_bytes());
        }
    } else if !value.binary_list_values.is_empty() {
        buf.push(4);
        for b in &value.binary_list_values {
            push_len_prefixed(buf, b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn string_attr(data_type: &str, v: &str) -> MessageAttributeValue {
        MessageAttributeValue {
            string_value: Some(v.to_string()),
            data_type: data_type.to_string(),
            ..Default::default()
        }
    }

    #[test]
    fn body_md5() {
        // Plain MD5 of the UTF-8 body.
        assert_eq!(
            md5_hex(b"this is a test message"),
            "905ed04ee04ac9a8b461f9f3b10eec6d"
        );
    }

    #[test]
    fn attribute_md5_matches_aws_reference() {
        // From moto's test-suite (`test_send_message_with_message_attributes`), a value recorded
        // against AWS: {"timestamp": String "1493147359900"}.
        let mut attrs = MessageAttributes::new();
        attrs.insert("timestamp".into(), string_attr("Number", "1493147359900"));
        assert_eq!(
            md5_of_attributes(&attrs).unwrap(),
            "235c5c510d26fb653d073faed50ae77c"
        );
    }

    #[test]
    fn no_attributes_no_md5() {
        assert_eq!(md5_of_attributes(&MessageAttributes::new()), None);
    }
}
