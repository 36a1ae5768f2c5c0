//! The worker's error type.

/// Errors that stop a worker from starting or running. Per-message problems never surface
/// here: they become retries, dead letters and metrics.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WorkerError {
    /// A builder setting is out of range.
    #[error("invalid worker configuration: {0}")]
    Config(String),
    /// No dead-letter queue: none was configured and the queue has no `RedrivePolicy`.
    #[error(
        "queue {queue_url} has no RedrivePolicy and no dead-letter queue was configured (WorkerBuilder::dead_letter_queue)"
    )]
    NoDeadLetterQueue {
        /// The source queue.
        queue_url: String,
    },
    /// An SQS call needed to start the worker failed.
    #[error("SQS {operation} failed: {message}")]
    Sqs {
        /// The SQS action, e.g. `GetQueueAttributes`.
        operation: &'static str,
        /// The SDK error with its context.
        message: String,
    },
}

impl WorkerError {
    pub(crate) fn sqs<E: std::error::Error + 'static>(
        operation: &'static str,
        e: &E,
    ) -> WorkerError {
        WorkerError::Sqs {
            operation,
            message: aws_sdk_sqs::error::DisplayErrorContext(e).to_string(),
        }
    }
}
