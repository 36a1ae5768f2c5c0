//! Validation of names, bodies, message attributes and batch entries, with AWS's error texts.

use crate::api::{MessageAttributeValue, MessageAttributes};
use crate::error::{ErrorCode, SqsError, SqsResult};
use crate::limits;

/// Queue names: 1..=80 of `[A-Za-z0-9_-]`, FIFO names end in `.fifo`.
pub fn queue_name(name: &str, fifo: bool) -> SqsResult<()> {
    let base = if fifo {
        name.strip_suffix(".fifo")
    } else {
        Some(name)
    };
    let ok = match base {
        Some(base) => {
            !base.is_empty()
                && name.len() <= limits::MAX_QUEUE_NAME_LEN
                && base
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        }
        None => false,
    };
    if ok {
        return Ok(());
    }
    if fifo {
        Err(SqsError::invalid_parameter(
            "The name of a FIFO queue can only include alphanumeric characters, hyphens, or \
             underscores, must end with .fifo suffix and be 1 to 80 in length.",
        ))
    } else {
        Err(SqsError::invalid_parameter(
            "Can only include alphanumeric characters, hyphens, or underscores. 1 to 80 in length",
        ))
    }
}

/// Characters allowed in a message body and string attribute values:
/// `#x9 | #xA | #xD | #x20 to #xD7FF | #xE000 to #xFFFD | #x10000 to #x10FFFF`.
pub fn is_allowed_char(c: char) -> bool {
    matches!(c as u32, 0x9 | 0xA | 0xD | 0x20..=0xD7FF | 0xE000..=0xFFFD | 0x10000..=0x10FFFF)
}

pub fn message_body(body: Option<&str>) -> SqsResult<&str> {
    let body = body.ok_or_else(|| SqsError::missing_parameter("MessageBody"))?;
    if body.is_empty() {
        return Err(SqsError::missing_parameter("MessageBody"));
    }
    if !body.chars().all(is_allowed_char) {
        return Err(SqsError::new(
            ErrorCode::InvalidMessageContents,
            "Invalid characters found. Valid values: #x9 | #xA | #xD | #x20 to #xD7FF | #xE000 to \
             #xFFFD | #x10000 to #x10FFFF",
        ));
    }
    Ok(body)
}

/// Size counted against `MaximumMessageSize`: body plus attribute names, types and values.
pub fn message_size(body: &str, attrs: &MessageAttributes) -> usize {
    body.len()
        + attrs
            .iter()
            .map(|(name, v)| {
                name.len()
                    + v.data_type.len()
                    + v.string_value.as_ref().map_or(0, String::len)
                    + v.binary_value.as_ref().map_or(0, Vec::len)
                    + v.string_list_values.iter().map(String::len).sum::<usize>()
                    + v.binary_list_values.iter().map(Vec::len).sum::<usize>()
            })
            .sum::<usize>()
}

fn attribute_name(name: &str) -> SqsResult<()> {
    let lower = name.to_ascii_lowercase();
    let valid = !name.is_empty()
        && name.len() <= limits::MAX_ATTRIBUTE_NAME_LEN
        // Non-ASCII letters are accepted by AWS (AWS-recorded); ASCII is limited to the
        // documented set.
        && name
            .chars()
            .all(|c| !c.is_ascii() || c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        && !name.starts_with('.')
        && !name.ends_with('.')
        && !name.contains("..")
        && !lower.starts_with("aws.")
        && !lower.starts_with("amazon.");
    if valid {
        Ok(())
    } else {
        Err(SqsError::invalid_parameter(format!(
            "The message attribute name '{name}' is invalid. Attribute name can contain A-Z, \
             a-z, 0-9, underscore (_), hyphen (-), and period (.) characters."
        )))
    }
}

fn attribute_value(name: &str, v: &MessageAttributeValue) -> SqsResult<()> {
    if v.data_type.is_empty() {
        return Err(SqsError::invalid_parameter(format!(
            "The message attribute '{name}' must contain non-empty message attribute type."
        )));
    }
    let base = v.data_type.split('.').next().unwrap_or("");
    let custom = &v.data_type[base.len()..];
    if !matches!(base, "String" | "Number" | "Binary")
        || (!custom.is_empty() && custom.len() < 2)
        || v.data_type.len() > limits::MAX_ATTRIBUTE_NAME_LEN
    {
        return Err(SqsError::invalid_parameter(format!(
            "The message attribute '{name}' has an invalid message attribute type, the set of \
             supported type prefixes is Binary, Number, and String."
        )));
    }
    match base {
        "Binary" => {
            if v.binary_value.as_ref().is_none_or(Vec::is_empty) {
                return Err(SqsError::invalid_parameter(format!(
                    "The message attribute '{name}' with type 'Binary' must use field 'Binary'."
                )));
            }
        }
        _ => {
            // AWS's text for a missing or empty string value (AWS-recorded).
            let Some(s) = v.string_value.as_deref().filter(|s| !s.is_empty()) else {
                return Err(SqsError::invalid_parameter(format!(
                    "Message (user) attribute '{name}' must contain a non-empty value of type \
                     '{base}'."
                )));
            };
            if !s.chars().all(is_allowed_char) {
                return Err(SqsError::new(
                    ErrorCode::InvalidParameterValue,
                    format!(
                        "Message attribute '{name}' contains invalid characters. Valid values: \
                         #x9 | #xA | #xD | #x20 to #xD7FF | #xE000 to #xFFFD | #x10000 to \
                         #x10FFFF"
                    ),
                ));
            }
            if base == "Number" && !is_sqs_number(s) {
                return Err(SqsError::invalid_parameter(format!(
                    "Can't cast the value \"{s}\" to a number."
                )));
            }
        }
    }
    Ok(())
}

/// SQS Numbers: up to 38 significant digits, optional sign, decimal point and exponent.
fn is_sqs_number(s: &str) -> bool {
    let t = s.trim();
    !t.is_empty()
        && t.parse::<f64>().is_ok_and(f64::is_finite)
        && !t.contains(['x', 'X'])
        && !t.eq_ignore_ascii_case("nan")
        && !t.to_ascii_lowercase().contains("inf")
}

/// User message attributes: at most 10, valid names and types, non-empty values.
pub fn message_attributes(attrs: &MessageAttributes) -> SqsResult<()> {
    if attrs.len() > limits::MAX_MESSAGE_ATTRIBUTES {
        return Err(SqsError::invalid_parameter(format!(
            "Number of message attributes [{}] exceeds the allowed maximum [{}].",
            attrs.len(),
            limits::MAX_MESSAGE_ATTRIBUTES
        )));
    }
    for (name, v) in attrs {
        attribute_name(name)?;
        attribute_value(name, v)?;
    }
    Ok(())
}

/// Message system attributes on send: only `AWSTraceHeader`, a String.
pub fn message_system_attributes(attrs: &MessageAttributes) -> SqsResult<()> {
    for (name, v) in attrs {
        if name != "AWSTraceHeader" {
            return Err(SqsError::invalid_parameter(format!(
                "Message system attribute name '{name}' is invalid."
            )));
        }
        if v.data_type != "String" || v.string_value.as_deref().is_none_or(str::is_empty) {
            return Err(SqsError::invalid_parameter(format!(
                "Message system attribute '{name}' must be a non-empty String."
            )));
        }
    }
    Ok(())
}

/// `MessageGroupId` / `MessageDeduplicationId` / `ReceiveRequestAttemptId`: 1..=128 of
/// alphanumerics and ASCII punctuation.
pub fn group_style_id(param: &str, value: &str) -> SqsResult<()> {
    let ok = !value.is_empty()
        && value.len() <= limits::MAX_GROUP_ID_LEN
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b.is_ascii_punctuation());
    if ok {
        Ok(())
    } else {
        Err(SqsError::invalid_parameter(format!(
            "Value {value} for parameter {param} is invalid. Reason: {param} can only include \
             alphanumeric and punctuation characters. 1 to 128 in length."
        )))
    }
}

/// Whole-batch checks shared by the three batch actions: non-empty, at most 10 entries, valid
/// and distinct ids.
pub fn batch_ids(entry_name: &str, ids: &[&str]) -> SqsResult<()> {
    let n = ids.len();
    if n == 0 {
        return Err(SqsError::new(
            ErrorCode::EmptyBatchRequest,
            format!("There should be at least one {entry_name} in the request."),
        ));
    }
    if n > limits::MAX_BATCH_ENTRIES {
        return Err(SqsError::new(
            ErrorCode::TooManyEntriesInBatchRequest,
            format!("Maximum number of entries per request are 10. You have sent {n}."),
        ));
    }
    let mut seen = std::collections::HashSet::new();
    for &id in ids {
        let valid = !id.is_empty()
            && id.len() <= limits::MAX_BATCH_ENTRY_ID_LEN
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !valid {
            return Err(SqsError::new(
                ErrorCode::InvalidBatchEntryId,
                "A batch entry id can only contain alphanumeric characters, hyphens and \
                 underscores. It can be at most 80 letters long.",
            ));
        }
        if !seen.insert(id) {
            return Err(SqsError::new(
                ErrorCode::BatchEntryIdsNotDistinct,
                format!("Id {id} repeated."),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(queue_name("good-name_1", false).is_ok());
        assert!(queue_name("bad.name", false).is_err());
        assert!(queue_name("", false).is_err());
        assert!(queue_name(&"a".repeat(81), false).is_err());
        assert!(queue_name(&"a".repeat(80), false).is_ok());
        assert!(queue_name("q.fifo", true).is_ok());
        assert!(queue_name(".fifo", true).is_err());
        assert!(queue_name("q", true).is_err());
    }

    #[test]
    fn bodies() {
        assert!(message_body(Some("hello\t\n")).is_ok());
        assert_eq!(
            message_body(Some("a\u{1}b")).unwrap_err().code,
            ErrorCode::InvalidMessageContents
        );
        assert_eq!(
            message_body(None).unwrap_err().code,
            ErrorCode::MissingParameter
        );
    }

    #[test]
    fn batch() {
        assert_eq!(
            batch_ids("Entry", &[]).unwrap_err().code,
            ErrorCode::EmptyBatchRequest
        );
        assert_eq!(
            batch_ids("Entry", &["a", "a"]).unwrap_err().code,
            ErrorCode::BatchEntryIdsNotDistinct
        );
        assert_eq!(
            batch_ids("Entry", &["a b"]).unwrap_err().code,
            ErrorCode::InvalidBatchEntryId
        );
        let eleven: Vec<String> = (0..11).map(|i| i.to_string()).collect();
        assert_eq!(
            batch_ids(
                "Entry",
                &eleven.iter().map(String::as_str).collect::<Vec<_>>()
            )
            .unwrap_err()
            .code,
            ErrorCode::TooManyEntriesInBatchRequest
        );
    }

    #[test]
    fn attributes() {
        let mut attrs = MessageAttributes::new();
        attrs.insert(
            "n".into(),
            MessageAttributeValue {
                string_value: Some("12.5".into()),
                data_type: "Number".into(),
                ..Default::default()
            },
        );
        assert!(message_attributes(&attrs).is_ok());
        attrs.get_mut("n").unwrap().string_value = Some("abc".into());
        assert!(message_attributes(&attrs).is_err());
        attrs.get_mut("n").unwrap().data_type = "Float".into();
        assert!(message_attributes(&attrs).is_err());
    }
}
