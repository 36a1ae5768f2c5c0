//! What a handler reports about one message, and the failure detail that ends up in the
//! dead-letter envelope.

use std::fmt;
use std::time::Duration;

/// The result of handling one message. The worker turns each variant into SQS calls:
///
/// | Outcome | What the worker does |
/// |---|---|
/// | [`Outcome::Done`] | deletes the message (batched `DeleteMessageBatch`) |
/// | [`Outcome::Transient`] | `ChangeMessageVisibility` to an exponential backoff with jitter computed from the attempt number; dead-letters once the attempt budget is spent |
/// | [`Outcome::Permanent`] | sends the message to the DLQ at once with an error envelope, then deletes it |
/// | [`Outcome::Invalid`] | like `Permanent`, with reason `validation` |
/// | [`Outcome::RateLimited`] | pauses the message's tenant and defers the message **without counting a failure** |
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The work is done; the message is deleted.
    Done,
    /// A failure worth retrying (timeout, 5xx, lock conflict). Retried after a backoff.
    Transient(Failure),
    /// A failure that retrying will not fix (404, authorisation, a bug). Dead-lettered now.
    Permanent(Failure),
    /// The payload is bad; dead-lettered now with reason `validation`. Prefer a validator
    /// ([`WorkerBuilder::validator`](crate::WorkerBuilder::validator)), which runs before the
    /// handler; this variant is for problems found only while handling.
    Invalid(Failure),
    /// A downstream said "too many requests" (HTTP 429). The tenant is paused for `retry_after`
    /// (or the configured default) and the message comes back later; this is not a failure.
    RateLimited {
        /// How long the downstream asked us to wait (its `Retry-After`), if it said.
        retry_after: Option<Duration>,
    },
}

impl Outcome {
    /// A transient failure with an error class (e.g. `"timeout"`) and a message.
    pub fn transient(class: impl Into<String>, message: impl Into<String>) -> Outcome {
        Outcome::Transient(Failure::new(class, message))
    }

    /// A permanent failure with an error class and a message.
    pub fn permanent(class: impl Into<String>, message: impl Into<String>) -> Outcome {
        Outcome::Permanent(Failure::new(class, message))
    }

    /// Invalid input found by the handler.
    pub fn invalid(message: impl Into<String>) -> Outcome {
        Outcome::Invalid(Failure::new("validation", message))
    }

    /// Rate limited, with the downstream's `Retry-After` if it sent one.
    pub fn rate_limited(retry_after: Option<Duration>) -> Outcome {
        Outcome::RateLimited { retry_after }
    }

    /// A short lowercase name, used as the `outcome` metric label.
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Done => "done",
            Outcome::Transient(_) => "transient",
            Outcome::Permanent(_) => "permanent",
            Outcome::Invalid(_) => "invalid",
            Outcome::RateLimited { .. } => "rate_limited",
        }
    }
}

/// An error class and message, as recorded in the dead-letter envelope (both are truncated
/// there; see [`Envelope`](crate::Envelope)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// A stable, grep-able name for the kind of error, e.g. `"http_404"` or `"TimeoutError"`.
    pub class: String,
    /// Human-readable detail. Do not put secrets or whole payloads here: it is stored in the DLQ.
    pub message: String,
}

impl Failure {
    /// A failure with an explicit class and message.
    pub fn new(class: impl Into<String>, message: impl Into<String>) -> Failure {
        Failure {
            class: class.into(),
            message: message.into(),
        }
    }

    /// A failure from any error: the class is the error's type name without its module path,
    /// the message its `Display` output including its `source()` chain.
    pub fn from_error<E: std::error::Error>(error: &E) -> Failure {
        let full = std::any::type_name::<E>();
        let class = full.rsplit("::").next().unwrap_or(full);
        let mut message = error.to_string();
        let mut source = error.source();
        while let Some(cause) = source {
            message.push_str(": ");
            message.push_str(&cause.to_string());
            source = cause.source();
        }
        Failure::new(class, message)
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.class, self.message)
    }
}
