//! AWS JSON 1.0: the action comes from `X-Amz-Target`, members are the serde names of the
//! `redrive-core` input and output structs.

use redrive_core::api::{Action, Request, Response};
use redrive_core::{ErrorCode, SqsError};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// `Content-Type` of every JSON response, errors included.
pub const CONTENT_TYPE: &str = "application/x-amz-json-1.0";

/// The service prefix of `X-Amz-Target` values.
const TARGET_PREFIX: &str = "AmazonSQS.";

/// Decodes a request from its `X-Amz-Target` value (e.g. `AmazonSQS.SendMessage`) and body.
///
/// An empty (or all-whitespace) body is `{}`. Members set to `null` count as absent; unknown
/// members are ignored. Never panics: every failure is an [`SqsError`].
pub fn decode(target: Option<&str>, body: &[u8]) -> Result<Request, SqsError> {
    let action = action_from_target(target)?;
    let mut value = if body.iter().all(u8::is_ascii_whitespace) {
        Value::Object(Default::default())
    } else {
        serde_json::from_slice(body).map_err(|e| {
            if has_surrogate_escape(body) {
                invalid_contents()
            } else {
                serialization_error(e)
            }
        })?
    };
    if !value.is_object() {
        return Err(SqsError::new(
            ErrorCode::SerializationException,
            "The request body must be a JSON object.",
        ));
    }
    strip_nulls(&mut value);
    if matches!(action, Action::CreateQueue | Action::GetQueueUrl)
        && value.get("QueueName").is_none()
    {
        return Err(SqsError::missing_parameter("QueueName"));
    }
    Ok(match action {
        Action::AddPermission => Request::AddPermission(input(value)?),
        Action::CancelMessageMoveTask => Request::CancelMessageMoveTask(input(value)?),
        Action::ChangeMessageVisibility => Request::ChangeMessageVisibility(input(value)?),
        Action::ChangeMessageVisibilityBatch => {
            Request::ChangeMessageVisibilityBatch(input(value)?)
        }
        Action::CreateQueue => Request::CreateQueue(input(value)?),
        Action::DeleteMessage => Request::DeleteMessage(input(value)?),
        Action::DeleteMessageBatch => Request::DeleteMessageBatch(input(value)?),
        Action::DeleteQueue => Request::DeleteQueue(input(value)?),
        Action::GetQueueAttributes => Request::GetQueueAttributes(input(value)?),
        Action::GetQueueUrl => Request::GetQueueUrl(input(value)?),
        Action::ListDeadLetterSourceQueues => Request::ListDeadLetterSourceQueues(input(value)?),
        Action::ListMessageMoveTasks => Request::ListMessageMoveTasks(input(value)?),
        Action::ListQueueTags => Request::ListQueueTags(input(value)?),
        Action::ListQueues => Request::ListQueues(input(value)?),
        Action::PurgeQueue => Request::PurgeQueue(input(value)?),
        Action::ReceiveMessage => Request::ReceiveMessage(input(value)?),
        Action::RemovePermission => Request::RemovePermission(input(value)?),
        Action::SendMessage => Request::SendMessage(input(value)?),
        Action::SendMessageBatch => Request::SendMessageBatch(input(value)?),
        Action::SetQueueAttributes => Request::SetQueueAttributes(input(value)?),
        Action::StartMessageMoveTask => Request::StartMessageMoveTask(input(value)?),
        Action::TagQueue => Request::TagQueue(input(value)?),
        Action::UntagQueue => Request::UntagQueue(input(value)?),
    })
}

/// The response body: the output struct as JSON, `{}` for [`Response::Empty`].
pub fn encode_response(resp: &Response) -> Vec<u8> {
    match resp {
        Response::Empty(_) => b"{}".to_vec(),
        Response::CreateQueue(o) | Response::GetQueueUrl(o) => to_vec(o),
        Response::ListQueues(o) => to_vec(o),
        Response::GetQueueAttributes(o) => to_vec(o),
        Response::SendMessage(o) => to_vec(o),
        Response::SendMessageBatch(o) => to_vec(o),
        Response::ReceiveMessage(o) => to_vec(o),
        Response::DeleteMessageBatch(o) | Response::ChangeMessageVisibilityBatch(o) => to_vec(o),
        Response::ListQueueTags(o) => to_vec(o),
        Response::ListDeadLetterSourceQueues(o) => to_vec(o),
        Response::StartMessageMoveTask(o) => to_vec(o),
        Response::CancelMessageMoveTask(o) => to_vec(o),
        Response::ListMessageMoveTasks(o) => to_vec(o),
    }
}

/// The error body: `{"__type":"com.amazonaws.sqs#<Shape>","message":"…"}`. The server adds the
/// `x-amzn-query-error` header from [`SqsError::query_error_header`].
pub fn encode_error(err: &SqsError) -> Vec<u8> {
    to_vec(&serde_json::json!({ "__type": err.json_type(), "message": err.message }))
}

fn action_from_target(target: Option<&str>) -> Result<Action, SqsError> {
    let target = target.ok_or_else(|| {
        SqsError::new(
            ErrorCode::UnknownOperationException,
            "Missing X-Amz-Target header.",
        )
    })?;
    target
        .strip_prefix(TARGET_PREFIX)
        .and_then(Action::from_name)
        .ok_or_else(|| {
            SqsError::new(
                ErrorCode::UnknownOperationException,
                format!("Operation {target} is not supported."),
            )
        })
}

fn input<T: DeserializeOwned>(value: Value) -> Result<T, SqsError> {
    serde_json::from_value(value).map_err(serialization_error)
}

/// Whether the body has a `\uD800`..`\uDFFF` escape. Paired surrogates parse; a body that
/// failed to parse and has one is taken to hold a lone surrogate.
fn has_surrogate_escape(body: &[u8]) -> bool {
    body.windows(4).any(|w| {
        w[0] == b'\\'
            && w[1] == b'u'
            && w[2].eq_ignore_ascii_case(&b'd')
            && matches!(w[3].to_ascii_lowercase(), b'8'..=b'9' | b'a'..=b'f')
    })
}

/// A lone surrogate escape (`"\ud800"`) is a string SQS cannot store: AWS answers
/// InvalidMessageContents, not a parse error (AWS-recorded; the text is our body-character
/// text, AWS's exact wording for this case is unrecorded).
fn invalid_contents() -> SqsError {
    SqsError::new(
        ErrorCode::InvalidMessageContents,
        "Invalid characters found. Valid values: #x9 | #xA | #xD | #x20 to #xD7FF | #xE000 to \
         #xFFFD | #x10000 to #x10FFFF",
    )
}

fn serialization_error(err: serde_json::Error) -> SqsError {
    SqsError::new(ErrorCode::SerializationException, err.to_string())
}

/// Removes `null` object members at every depth. serde_json limits nesting to 128 levels, so the
/// recursion is bounded.
fn strip_nulls(value: &mut Value) {
    match value {
        Value::Object(members) => {
            members.retain(|_, v| !v.is_null());
            members.values_mut().for_each(strip_nulls);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}

/// Output structs hold only strings, integers, booleans and string-keyed maps, which always
/// serialize.
fn to_vec<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("output structs always serialize to JSON")
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;
    use redrive_core::api::*;

    use super::*;

    fn decode_ok(action: &str, body: &str) -> Request {
        decode(Some(&format!("AmazonSQS.{action}")), body.as_bytes()).unwrap()
    }

    fn decode_err(target: Option<&str>, body: &str) -> SqsError {
        decode(target, body.as_bytes()).unwrap_err()
    }

    #[test]
    fn decodes_send_message() {
        let req = decode_ok(
            "SendMessage",
            r#"{"QueueUrl":"http://h/1/q","MessageBody":"hi","DelaySeconds":5,
                "MessageAttributes":{"a":{"DataType":"Binary","BinaryValue":"AAE="},
                                     "s":{"DataType":"String","StringValue":"v"}},
                "MessageGroupId":null,"Unknown":[1,2]}"#,
        );
        let mut attrs = MessageAttributes::new();
        attrs.insert(
            "a".into(),
            MessageAttributeValue {
                binary_value: Some(vec![0, 1]),
                data_type: "Binary".into(),
                ..Default::default()
            },
        );
        attrs.insert(
            "s".into(),
            MessageAttributeValue {
                string_value: Some("v".into()),
                data_type: "String".into(),
                ..Default::default()
            },
        );
        assert_eq!(
            req,
            Request::SendMessage(SendMessageInput {
                queue_url: "http://h/1/q".into(),
                message_body: Some("hi".into()),
                delay_seconds: Some(5),
                message_attributes: attrs,
                ..Default::default()
            })
        );
    }

    #[test]
    fn empty_body_is_empty_object() {
        assert_eq!(
            decode_ok("ListQueues", ""),
            Request::ListQueues(ListQueuesInput::default())
        );
        assert_eq!(
            decode_ok("PurgeQueue", " \n"),
            Request::PurgeQueue(QueueUrlInput::default())
        );
    }

    #[test]
    fn nulls_are_absent_at_any_depth() {
        let req = decode_ok(
            "CreateQueue",
            r#"{"QueueName":"q","Attributes":null,"tags":{"k":"v","gone":null}}"#,
        );
        assert_eq!(
            req,
            Request::CreateQueue(CreateQueueInput {
                queue_name: "q".into(),
                tags: BTreeMap::from([("k".into(), "v".into())]),
                ..Default::default()
            })
        );
        let req = decode_ok(
            "SendMessageBatch",
            r#"{"Entries":[{"Id":"1","MessageBody":null}]}"#,
        );
        let Request::SendMessageBatch(input) = req else {
            panic!("wrong variant")
        };
        assert_eq!(input.entries[0].id, "1");
        assert_eq!(input.entries[0].message_body, None);
    }

    #[test]
    fn bad_target_is_unknown_operation() {
        let e = decode_err(None, "{}");
        assert_eq!(e.code, ErrorCode::UnknownOperationException);
        assert_eq!(e.message, "Missing X-Amz-Target header.");
        let e = decode_err(Some("AmazonSQS.Frobnicate"), "{}");
        assert_eq!(e.code, ErrorCode::UnknownOperationException);
        assert_eq!(
            e.message,
            "Operation AmazonSQS.Frobnicate is not supported."
        );
        let e = decode_err(Some("AmazonSNS.SendMessage"), "{}");
        assert_eq!(e.code, ErrorCode::UnknownOperationException);
    }

    #[test]
    fn malformed_bodies_are_serialization_errors() {
        let t = Some("AmazonSQS.SendMessage");
        for body in [
            "{",
            "[]",
            "\"x\"",
            r#"{"DelaySeconds":"5"}"#,
            r#"{"DelaySeconds":1.5}"#,
            r#"{"MessageBody":7}"#,
            r#"{"MessageAttributes":{"a":{"BinaryValue":"***"}}}"#,
            r#"{"MessageAttributes":[]}"#,
        ] {
            assert_eq!(
                decode_err(t, body).code,
                ErrorCode::SerializationException,
                "{body}"
            );
        }
        let deep = "[".repeat(10_000);
        assert_eq!(decode_err(t, &deep).code, ErrorCode::SerializationException);
    }

    #[test]
    fn encodes_responses() {
        assert_eq!(
            encode_response(&Response::Empty(Action::DeleteQueue)),
            b"{}"
        );
        let resp = Response::SendMessageBatch(SendMessageBatchOutput {
            successful: vec![SendMessageBatchResultEntry {
                id: "a".into(),
                result: SendMessageOutput {
                    message_id: "m".into(),
                    md5_of_message_body: "d".into(),
                    ..Default::default()
                },
            }],
            failed: vec![],
        });
        assert_eq!(
            String::from_utf8(encode_response(&resp)).unwrap(),
            r#"{"Successful":[{"Id":"a","MessageId":"m","MD5OfMessageBody":"d"}],"Failed":[]}"#
        );
    }

    #[test]
    fn encodes_errors() {
        let body = encode_error(&SqsError::queue_does_not_exist());
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "__type": "com.amazonaws.sqs#QueueDoesNotExist",
                "message": "The specified queue does not exist."
            })
        );
    }

    proptest! {
        #[test]
        fn decode_never_panics(body in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode(Some("AmazonSQS.SendMessageBatch"), &body);
        }

        #[test]
        fn decode_never_panics_on_json_shapes(
            action in proptest::sample::select(Action::ALL.to_vec()),
            body in json_body(),
        ) {
            let _ = decode(Some(&format!("AmazonSQS.{}", action.name())), body.as_bytes());
        }
    }

    /// Objects built from real member names with arbitrary leaf values.
    fn json_body() -> impl Strategy<Value = String> {
        let names = proptest::sample::select(vec![
            "QueueUrl",
            "QueueName",
            "MessageBody",
            "DelaySeconds",
            "Entries",
            "Id",
            "Attributes",
            "MessageAttributes",
            "StringValue",
            "BinaryValue",
            "DataType",
            "StringListValues",
            "BinaryListValues",
            "AttributeNames",
            "MaxNumberOfMessages",
            "tags",
            "TagKeys",
        ]);
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            ".{0,8}".prop_map(Value::from),
        ];
        let value = leaf.prop_recursive(4, 32, 4, move |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
                proptest::collection::btree_map(names.clone(), inner, 0..4).prop_map(|m| {
                    Value::Object(m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
                }),
            ]
        });
        value.prop_map(|v| v.to_string())
    }
}
