//! Redrive's domain: typed SQS requests and responses, the error table, limits, queue
//! attributes, validation and digests. No IO, no async runtime.
//!
//! # Layout
//! - [`api`]: the 23 actions, their typed inputs and outputs (shared by both wire protocols).
//! - [`error`]: [`SqsError`] and the one table from [`ErrorCode`] to wire codes and statuses.
//! - [`limits`]: every numeric limit SQS enforces.
//! - [`attributes`]: queue attribute names, defaults and validation.
//! - [`validate`]: names, bodies, message attributes, batch ids.
//! - [`digest`]: `MD5OfMessageBody`, `MD5OfMessageAttributes`.
//! - [`arn`]: queue ARNs and URLs.
//! - [`alarm`]: CloudWatch metric alarms: definition, states, evaluation.

pub mod alarm;
pub mod api;
pub mod arn;
pub mod attributes;
pub mod civil;
pub mod digest;
pub mod error;
pub mod limits;
pub mod validate;

pub use error::{ErrorCode, Fault, SqsError, SqsResult};
