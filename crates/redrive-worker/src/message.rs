//! The message a handler sees, and where tenant and idempotency keys come from.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use aws_sdk_sqs::types::{MessageAttributeValue, MessageSystemAttributeName};

use crate::envelope::{Envelope, Reason};

/// One received SQS message, as passed to the validator and the handler.
#[derive(Debug, Clone)]
pub struct Message {
    pub(crate) id: String,
    pub(crate) body: String,
    pub(crate) receipt_handle: String,
    pub(crate) receive_count: u32,
    pub(crate) group_id: Option<String>,
    pub(crate) tenant: Option<String>,
    pub(crate) attributes: HashMap<String, MessageAttributeValue>,
    pub(crate) system_attributes: HashMap<String, String>,
    pub(crate) envelope: Option<Envelope>,
    pub(crate) received_at: Instant,
}

impl Message {
    pub(crate) fn from_sqs(
        m: aws_sdk_sqs::types::Message,
        received_at: Instant,
    ) -> Option<Message> {
        let receipt_handle = m.receipt_handle?;
        let system_attributes: HashMap<String, String> = m
            .attributes
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k.as_str().to_string(), v))
            .collect();
        let attributes = m.message_attributes.unwrap_or_default();
        let receive_count = system_attributes
            .get(MessageSystemAttributeName::ApproximateReceiveCount.as_str())
            .and_then(|v| v.parse().ok())
            .unwrap_or(1);
        let group_id = system_attributes
            .get(MessageSystemAttributeName::MessageGroupId.as_str())
            .cloned();
        let envelope = Envelope::from_attributes(&attributes);
        Some(Message {
            id: m.message_id.unwrap_or_default(),
            body: m.body.unwrap_or_default(),
            receipt_handle,
            receive_count,
            group_id,
            tenant: None,
            attributes,
            system_attributes,
            envelope,
            received_at,
        })
    }

    /// A record of a Lambda SQS event (same fields as a received message; attribute names
    /// and values as Lambda delivers them).
    #[cfg(feature = "lambda")]
    pub(crate) fn from_lambda(
        record: &aws_lambda_events::event::sqs::SqsMessage,
        received_at: Instant,
    ) -> Message {
        let attributes: HashMap<String, MessageAttributeValue> = record
            .message_attributes
            .iter()
            .filter_map(|(name, a)| {
                let value = MessageAttributeValue::builder()
                    .data_type(a.data_type.clone().unwrap_or_else(|| "String".into()))
                    .set_string_value(a.string_value.clone())
                    .set_binary_value(
                        a.binary_value
                            .as_ref()
                            .map(|b| aws_sdk_sqs::primitives::Blob::new(b.0.clone())),
                    )
                    .build()
                    .ok()?;
                Some((name.clone(), value))
            })
            .collect();
        let system_attributes = record.attributes.clone();
        let receive_count = system_attributes
            .get(MessageSystemAttributeName::ApproximateReceiveCount.as_str())
            .and_then(|v| v.parse().ok())
            .unwrap_or(1);
        let group_id = system_attributes
            .get(MessageSystemAttributeName::MessageGroupId.as_str())
            .cloned();
        let envelope = Envelope::from_attributes(&attributes);
        Message {
            id: record.message_id.clone().unwrap_or_default(),
            body: record.body.clone().unwrap_or_default(),
            receipt_handle: record.receipt_handle.clone().unwrap_or_default(),
            receive_count,
            group_id,
            tenant: None,
            attributes,
            system_attributes,
            envelope,
            received_at,
        }
    }

    /// This copy's `MessageId`.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The `MessageId` of the first copy: differs from [`id`](Self::id) after the worker
    /// re-sent a deferred copy (the envelope carries the original id).
    pub fn original_id(&self) -> &str {
        self.envelope
            .as_ref()
            .map(|e| e.original_message_id.as_str())
            .filter(|id| !id.is_empty())
            .unwrap_or(&self.id)
    }

    /// The body, unchanged.
    pub fn body(&self) -> &str {
        &self.body
    }

    /// Parses the body as JSON.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_str(&self.body)
    }

    /// SQS's `ApproximateReceiveCount` of this copy (1 on the first delivery).
    pub fn receive_count(&self) -> u32 {
        self.receive_count
    }

    /// The 1-based number of this handling attempt: failed attempts recorded by earlier copies
    /// (in the envelope) plus this copy's receive count. Rate-limited returns do not count.
    pub fn attempt(&self) -> u32 {
        self.prior_attempts()
            .saturating_add(self.receive_count.max(1))
    }

    /// Failed attempts of earlier copies. Only a deferred copy continues the count; a redriven
    /// dead letter starts a fresh budget (its envelope history is kept when it fails again).
    pub(crate) fn prior_attempts(&self) -> u32 {
        self.envelope
            .as_ref()
            .filter(|e| e.reason == Reason::Deferred)
            .map_or(0, |e| e.attempts)
    }

    /// `MessageGroupId` (FIFO queues, and fair queues that set it).
    pub fn group_id(&self) -> Option<&str> {
        self.group_id.as_deref()
    }

    /// The tenant key computed by the worker's [`KeySource`], if one is configured.
    pub fn tenant(&self) -> Option<&str> {
        self.tenant.as_deref()
    }

    /// A `String`/`Number` message attribute's value.
    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes.get(name)?.string_value()
    }

    /// All message attributes (including the envelope attribute, if present).
    pub fn attributes(&self) -> &HashMap<String, MessageAttributeValue> {
        &self.attributes
    }

    /// A system attribute such as `SentTimestamp` or `ApproximateFirstReceiveTimestamp`.
    pub fn system_attribute(&self, name: &str) -> Option<&str> {
        self.system_attributes.get(name).map(String::as_str)
    }

    /// The envelope an earlier worker attached (a deferred copy, or a redriven dead letter).
    pub fn envelope(&self) -> Option<&Envelope> {
        self.envelope.as_ref()
    }
}

type KeyFn = dyn Fn(&Message) -> Option<String> + Send + Sync;

/// Where a key (a tenant key or an idempotency key) is read from.
///
/// ```
/// use redrive_worker::KeySource;
/// let by_mall = KeySource::json_field("mall_id");
/// let by_group = KeySource::GroupId;
/// let custom = KeySource::custom(|m| m.body().split(':').next().map(str::to_string));
/// # let _ = (by_mall, by_group, custom);
/// ```
#[derive(Clone)]
pub enum KeySource {
    /// This copy's `MessageId`.
    MessageId,
    /// The original `MessageId` (stable across the worker's deferral re-sends).
    OriginalMessageId,
    /// The `MessageGroupId`.
    GroupId,
    /// A `String` message attribute.
    Attribute(String),
    /// A JSON pointer into the body (RFC 6901, e.g. `/mall_id` or `/params/member_id`);
    /// strings are used as is, other JSON values in their JSON form.
    JsonPointer(String),
    /// Any function of the message.
    Custom(Arc<KeyFn>),
}

impl KeySource {
    /// A top-level field of a JSON body: `json_field("mall_id")` is `JsonPointer("/mall_id")`.
    pub fn json_field(name: &str) -> KeySource {
        KeySource::JsonPointer(format!("/{}", name.replace('~', "~0").replace('/', "~1")))
    }

    /// A key computed by `f`; `None` means "no key for this message".
    pub fn custom(f: impl Fn(&Message) -> Option<String> + Send + Sync + 'static) -> KeySource {
        KeySource::Custom(Arc::new(f))
    }

    /// The key of `message`, or `None` when the source is absent.
    pub fn extract(&self, message: &Message) -> Option<String> {
        match self {
            KeySource::MessageId => Some(message.id.clone()),
            KeySource::OriginalMessageId => Some(message.original_id().to_string()),
            KeySource::GroupId => message.group_id.clone(),
            KeySource::Attribute(name) => message.attribute(name).map(str::to_string),
            KeySource::JsonPointer(pointer) => {
                let value: serde_json::Value = serde_json::from_str(&message.body).ok()?;
                match value.pointer(pointer)? {
                    serde_json::Value::String(s) => Some(s.clone()),
                    serde_json::Value::Null => None,
                    other => Some(other.to_string()),
                }
            }
            KeySource::Custom(f) => f(message),
        }
    }
}

impl fmt::Debug for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeySource::MessageId => f.write_str("MessageId"),
            KeySource::OriginalMessageId => f.write_str("OriginalMessageId"),
            KeySource::GroupId => f.write_str("GroupId"),
            KeySource::Attribute(a) => f.debug_tuple("Attribute").field(a).finish(),
            KeySource::JsonPointer(p) => f.debug_tuple("JsonPointer").field(p).finish(),
            KeySource::Custom(_) => f.write_str("Custom(..)"),
        }
    }
}

#[cfg(test)]
pub(crate) fn test_message(id: &str, body: &str) -> Message {
    Message {
        id: id.to_string(),
        body: body.to_string(),
        receipt_handle: String::new(),
        receive_count: 1,
        group_id: Some("g".into()),
        tenant: None,
        attributes: HashMap::new(),
        system_attributes: HashMap::new(),
        envelope: None,
        received_at: Instant::now(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_sources_extract() {
        let m = test_message("m1", r#"{"mall_id":"drlabnosh","params":{"member_id":42}}"#);
        assert_eq!(
            KeySource::json_field("mall_id").extract(&m).as_deref(),
            Some("drlabnosh")
        );
        assert_eq!(
            KeySource::JsonPointer("/params/member_id".into())
                .extract(&m)
                .as_deref(),
            Some("42")
        );
        assert_eq!(KeySource::json_field("nope").extract(&m), None);
        assert_eq!(KeySource::GroupId.extract(&m).as_deref(), Some("g"));
        assert_eq!(KeySource::MessageId.extract(&m).as_deref(), Some("m1"));
        assert_eq!(
            KeySource::OriginalMessageId.extract(&m).as_deref(),
            Some("m1")
        );
        let not_json = test_message("m2", "plain");
        assert_eq!(KeySource::json_field("mall_id").extract(&not_json), None);
        let custom = KeySource::custom(|m| Some(m.body().len().to_string()));
        assert_eq!(custom.extract(&not_json).as_deref(), Some("5"));
    }

    #[test]
    fn attempt_adds_prior_failures() {
        let mut m = test_message("m", "b");
        m.receive_count = 2;
        assert_eq!(m.attempt(), 2);
        m.envelope = Some(Envelope {
            v: 1,
            reason: Reason::Deferred,
            error: None,
            retryable: true,
            attempts: 3,
            throttles: 1,
            deferrals: 1,
            first_failed_at: None,
            last_failed_at: None,
            source_queue: String::new(),
            worker_id: String::new(),
            original_message_id: "first".into(),
            tenant: None,
        });
        assert_eq!(m.attempt(), 5);
        assert_eq!(m.original_id(), "first");
    }
}
