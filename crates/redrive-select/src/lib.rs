//! Selective redrive, the parts the CLI and the server share so a filter, a transform, a
//! provenance attribute or a schedule means the same on both sides. Pure: no IO, no clock
//! reads (every function takes `now`).
//!
//! - [`jq`]: expressions over a message (body as `.`, metadata as `$meta`).
//! - [`selection`]: which messages a replay takes (filter, time windows, limit) and the
//!   transform that rewrites a body.
//! - [`provenance`]: the one message attribute a replayed message carries.
//! - [`pacing`]: global and per-key rate schedule.
//! - [`breaker`]: the circuit breaker on replayed messages coming back to the DLQ.
//! - [`schedule`]: cron expressions with a time zone, and relative windows ("yesterday").
//! - [`stats`]: the DLQ aggregations (group-by keys, time buckets, receive counts, payload
//!   shapes, burst signature, the dominant dead-letter minute) and [`enrich`] mappings.

pub mod breaker;
pub mod enrich;
pub mod jq;
pub mod pacing;
pub mod provenance;
pub mod schedule;
pub mod selection;
pub mod stats;
