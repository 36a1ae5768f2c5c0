//! The error envelope: one JSON-valued message attribute that travels with a dead letter (and
//! with a deferred copy), so operators see why a message failed and the attempt count survives
//! a re-send.

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use aws_sdk_sqs::types::MessageAttributeValue;
use serde::{Deserialize, Serialize};

use crate::outcome::Failure;

/// Name of the message attribute holding the [`Envelope`] as JSON (data type `String`).
/// One attribute only, because SQS allows at most 10 per message.
pub const ENVELOPE_ATTRIBUTE: &str = "redrive-error";

/// Current envelope format version (the `v` field).
pub const ENVELOPE_VERSION: u32 = 1;

/// Longest error message kept in an envelope, in bytes (longer ones are cut at a character
/// boundary and end with `…`).
pub const MAX_ERROR_MESSAGE_BYTES: usize = 2048;

/// Longest error class kept in an envelope, in bytes.
pub const MAX_ERROR_CLASS_BYTES: usize = 256;

/// SQS's per-message attribute limit.
pub(crate) const MAX_MESSAGE_ATTRIBUTES: usize = 10;

/// Why a message carries an envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The handler returned [`Outcome::Permanent`](crate::Outcome::Permanent).
    PermanentError,
    /// The validator rejected the payload, or the handler returned
    /// [`Outcome::Invalid`](crate::Outcome::Invalid).
    Validation,
    /// Transient failures used up the worker's `max_attempts`.
    MaxAttempts,
    /// Transient failures reached the queue's `maxReceiveCount`; the worker dead-lettered the
    /// message itself (with this envelope) instead of letting SQS move it without context.
    MaxReceives,
    /// Not a dead letter: a delayed copy re-sent to the source queue after a rate limit or an
    /// admission deferral. Carries the counters across the new `MessageId`.
    Deferred,
}

/// The error class and (truncated) message inside an envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvelopeError {
    /// Error class, see [`Failure::class`].
    pub class: String,
    /// Error message, see [`Failure::message`].
    pub message: String,
}

/// The JSON stored in the [`ENVELOPE_ATTRIBUTE`] attribute. Example:
///
/// ```json
/// {"v":1,"reason":"permanent_error","error":{"class":"http_404","message":"member 42 not found"},
///  "retryable":false,"attempts":1,"throttles":0,"deferrals":0,
///  "first_failed_at":"2026-11-23T15:30:00.120Z","last_failed_at":"2026-11-23T15:30:00.120Z",
///  "source_queue":"http://127.0.0.1:9324/000000000000/points","worker_id":"points-7f3a…",
///  "original_message_id":"5d0c…","tenant":"drlabnosh"}
/// ```
///
/// Readers must accept unknown fields and missing optional ones; the message body is never
/// changed, so a redrive can always re-run the original payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// Format version, [`ENVELOPE_VERSION`].
    pub v: u32,
    /// Why the message carries the envelope.
    pub reason: Reason,
    /// The last error, if the message failed at all (absent on a copy deferred before any failure).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<EnvelopeError>,
    /// Whether the worker classified the last error as retryable.
    #[serde(default)]
    pub retryable: bool,
    /// Handler runs that failed (transient, permanent or invalid), across re-sends.
    /// Rate-limited returns are not counted here but in `throttles`.
    #[serde(default)]
    pub attempts: u32,
    /// Rate-limited ([`Outcome::RateLimited`](crate::Outcome::RateLimited)) returns.
    #[serde(default)]
    pub throttles: u32,
    /// Times the message was re-sent as a delayed copy (rate limits and admission deferrals).
    #[serde(default)]
    pub deferrals: u32,
    /// RFC 3339 UTC time of the first failure, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_failed_at: Option<String>,
    /// RFC 3339 UTC time of the latest failure, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failed_at: Option<String>,
    /// URL of the queue the message was consumed from.
    #[serde(default)]
    pub source_queue: String,
    /// The [`worker_id`](crate::WorkerBuilder::worker_id) that wrote the envelope.
    #[serde(default)]
    pub worker_id: String,
    /// `MessageId` of the first copy; kept across deferral re-sends and dead-lettering, which
    /// assign new ids.
    #[serde(default)]
    pub original_message_id: String,
    /// The tenant key, when the worker was configured with one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
}

impl Envelope {
    /// Reads the envelope from a message's attributes; `None` when absent or unreadable (the
    /// envelope is never required).
    pub fn from_attributes(
        attributes: &HashMap<String, MessageAttributeValue>,
    ) -> Option<Envelope> {
        let value = attributes.get(ENVELOPE_ATTRIBUTE)?.string_value()?;
        serde_json::from_str(value).ok()
    }

    /// The envelope as a `String` message attribute value.
    pub fn to_attribute(&self) -> MessageAttributeValue {
        let json = serde_json::to_string(self).unwrap_or_else(|_| String::from("{}"));
        MessageAttributeValue::builder()
            .data_type("String")
            .string_value(json)
            .build()
            .unwrap_or_else(|_| unreachable!("data_type is set"))
    }

    pub(crate) fn set_error(&mut self, failure: &Failure, retryable: bool) {
        self.error = Some(EnvelopeError {
            class: truncate(&failure.class, MAX_ERROR_CLASS_BYTES),
            message: truncate(&failure.message, MAX_ERROR_MESSAGE_BYTES),
        });
        self.retryable = retryable;
        let now = rfc3339(SystemTime::now());
        if self.first_failed_at.is_none() {
            self.first_failed_at = Some(now.clone());
        }
        self.last_failed_at = Some(now);
    }
}

/// `s` cut to at most `max` bytes at a character boundary, with `…` when cut.
pub(crate) fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let ellipsis = '…';
    let mut end = max.saturating_sub(ellipsis.len_utf8());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    let mut out = s[..end].to_string();
    out.push(ellipsis);
    out
}

/// RFC 3339 UTC with milliseconds, e.g. `2026-11-23T15:30:00.120Z`.
pub(crate) fn rfc3339(t: SystemTime) -> String {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60,
        since.subsec_millis()
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (
        y,
        u32::try_from(m).unwrap_or(1),
        u32::try_from(d).unwrap_or(1),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn rfc3339_formats_known_instants() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = UNIX_EPOCH + Duration::from_millis(1_795_448_445_123);
        assert_eq!(rfc3339(t), "2026-11-23T15:40:45.123Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(rfc3339(leap), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn truncate_respects_char_boundaries() {
        assert_eq!(truncate("short", 10), "short");
        let cut = truncate("ééééé", 6);
        assert!(cut.len() <= 6, "{cut}");
        assert!(cut.ends_with('…'));
        assert_eq!(truncate(&"x".repeat(5000), 2048).len(), 2048);
    }

    #[test]
    fn envelope_round_trips_through_an_attribute() {
        let mut envelope = Envelope {
            v: ENVELOPE_VERSION,
            reason: Reason::PermanentError,
            error: None,
            retryable: false,
            attempts: 1,
            throttles: 2,
            deferrals: 1,
            first_failed_at: None,
            last_failed_at: None,
            source_queue: "q".into(),
            worker_id: "w".into(),
            original_message_id: "m".into(),
            tenant: Some("mall".into()),
        };
        envelope.set_error(&Failure::new("http_404", "x".repeat(10_000)), false);
        let mut attrs = HashMap::new();
        attrs.insert(ENVELOPE_ATTRIBUTE.to_string(), envelope.to_attribute());
        let back = Envelope::from_attributes(&attrs).expect("envelope");
        assert_eq!(back, envelope);
        assert_eq!(back.error.unwrap().message.len(), MAX_ERROR_MESSAGE_BYTES);
        assert_eq!(back.first_failed_at, back.last_failed_at);
    }

    #[test]
    fn envelope_reader_tolerates_missing_and_unknown_fields() {
        let mut attrs = HashMap::new();
        attrs.insert(
            ENVELOPE_ATTRIBUTE.to_string(),
            MessageAttributeValue::builder()
                .data_type("String")
                .string_value(r#"{"v":2,"reason":"manual","x":1}"#)
                .build()
                .unwrap(),
        );
        // An unknown reason is unreadable; the worker then treats the message as fresh.
        assert_eq!(Envelope::from_attributes(&attrs), None);
        attrs.insert(
            ENVELOPE_ATTRIBUTE.to_string(),
            MessageAttributeValue::builder()
                .data_type("String")
                .string_value(r#"{"v":1,"reason":"deferred","attempts":3,"future":true}"#)
                .build()
                .unwrap(),
        );
        let e = Envelope::from_attributes(&attrs).unwrap();
        assert_eq!(
            (e.reason, e.attempts, e.throttles),
            (Reason::Deferred, 3, 0)
        );
    }
}
