//! Queue attributes: names, defaults, which are settable, and value validation.

use std::collections::BTreeMap;

use crate::error::{ErrorCode, SqsError, SqsResult};
use crate::limits;

/// Every `QueueAttributeName` (sqs-semantics.md §4), plus `All`.
pub const ALL_QUEUE_ATTRIBUTES: &[&str] = &[
    "All",
    "Policy",
    "VisibilityTimeout",
    "MaximumMessageSize",
    "MessageRetentionPeriod",
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "CreatedTimestamp",
    "LastModifiedTimestamp",
    "QueueArn",
    "ApproximateNumberOfMessagesDelayed",
    "DelaySeconds",
    "ReceiveMessageWaitTimeSeconds",
    "RedrivePolicy",
    "FifoQueue",
    "ContentBasedDeduplication",
    "KmsMasterKeyId",
    "KmsDataKeyReusePeriodSeconds",
    "DeduplicationScope",
    "FifoThroughputLimit",
    "RedriveAllowPolicy",
    "SqsManagedSseEnabled",
];

/// Attributes that `CreateQueue` and `SetQueueAttributes` accept.
pub const SETTABLE: &[&str] = &[
    "DelaySeconds",
    "MaximumMessageSize",
    "MessageRetentionPeriod",
    "Policy",
    "ReceiveMessageWaitTimeSeconds",
    "VisibilityTimeout",
    "RedrivePolicy",
    "RedriveAllowPolicy",
    "KmsMasterKeyId",
    "KmsDataKeyReusePeriodSeconds",
    "SqsManagedSseEnabled",
    "FifoQueue",
    "ContentBasedDeduplication",
    "DeduplicationScope",
    "FifoThroughputLimit",
];

/// FIFO-only attributes.
pub const FIFO_ONLY: &[&str] = &[
    "ContentBasedDeduplication",
    "DeduplicationScope",
    "FifoThroughputLimit",
];

pub fn is_known(name: &str) -> bool {
    ALL_QUEUE_ATTRIBUTES.contains(&name)
}

fn integer_in(name: &str, value: &str, min: i64, max: i64) -> SqsResult<i64> {
    match value.trim().parse::<i64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(SqsError::new(
            ErrorCode::InvalidAttributeValue,
            format!("Invalid value for the parameter {name}."),
        )),
    }
}

fn boolean(name: &str, value: &str) -> SqsResult<bool> {
    match value.to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(SqsError::new(
            ErrorCode::InvalidAttributeValue,
            format!("Invalid value for the parameter {name}."),
        )),
    }
}

/// Validates one settable attribute and returns its canonical string form (what
/// `GetQueueAttributes` will return).
pub fn normalize(name: &str, value: &str) -> SqsResult<String> {
    Ok(match name {
        "DelaySeconds" => integer_in(name, value, 0, limits::MAX_DELAY_SECONDS)?.to_string(),
        "MaximumMessageSize" => integer_in(
            name,
            value,
            limits::MIN_MAXIMUM_MESSAGE_SIZE,
            limits::MAX_MESSAGE_SIZE as i64,
        )?
        .to_string(),
        "MessageRetentionPeriod" => integer_in(
            name,
            value,
            limits::MIN_RETENTION_SECONDS,
            limits::MAX_RETENTION_SECONDS,
        )?
        .to_string(),
        "ReceiveMessageWaitTimeSeconds" => {
            integer_in(name, value, 0, limits::MAX_WAIT_TIME_SECONDS)?.to_string()
        }
        "VisibilityTimeout" => {
            integer_in(name, value, 0, limits::MAX_VISIBILITY_TIMEOUT)?.to_string()
        }
        "KmsDataKeyReusePeriodSeconds" => integer_in(
            name,
            value,
            limits::MIN_KMS_REUSE_SECONDS,
            limits::MAX_KMS_REUSE_SECONDS,
        )?
        .to_string(),
        "SqsManagedSseEnabled" | "FifoQueue" | "ContentBasedDeduplication" => {
            boolean(name, value)?.to_string()
        }
        "DeduplicationScope" => match value {
            "queue" | "messageGroup" => value.to_string(),
            _ => {
                return Err(SqsError::new(
                    ErrorCode::InvalidAttributeValue,
                    format!("Invalid value for the parameter {name}."),
                ));
            }
        },
        "FifoThroughputLimit" => match value {
            "perQueue" | "perMessageGroupId" => value.to_string(),
            _ => {
                return Err(SqsError::new(
                    ErrorCode::InvalidAttributeValue,
                    format!("Invalid value for the parameter {name}."),
                ));
            }
        },
        "Policy" => {
            if !value.is_empty() && serde_json::from_str::<serde_json::Value>(value).is_err() {
                return Err(SqsError::new(
                    ErrorCode::InvalidAttributeValue,
                    format!("Invalid value for the parameter {name}."),
                ));
            }
            value.to_string()
        }
        _ => value.to_string(),
    })
}

/// Defaults of a new queue (attributes left out at creation take these).
pub fn defaults(fifo: bool) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    m.insert("DelaySeconds".into(), "0".into());
    m.insert(
        "MaximumMessageSize".into(),
        limits::MAX_MESSAGE_SIZE.to_string(),
    );
    m.insert(
        "MessageRetentionPeriod".into(),
        limits::DEFAULT_RETENTION_SECONDS.to_string(),
    );
    m.insert("ReceiveMessageWaitTimeSeconds".into(), "0".into());
    m.insert(
        "VisibilityTimeout".into(),
        limits::DEFAULT_VISIBILITY_TIMEOUT.to_string(),
    );
    // SSE-SQS is on by default for new queues (AWS, since 2022-10).
    m.insert("SqsManagedSseEnabled".into(), "true".into());
    if fifo {
        m.insert("FifoQueue".into(), "true".into());
        m.insert("ContentBasedDeduplication".into(), "false".into());
        m.insert("DeduplicationScope".into(), "queue".into());
        m.insert("FifoThroughputLimit".into(), "perQueue".into());
    }
    m
}
