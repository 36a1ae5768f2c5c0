//! Black-box integration tests: each test starts its own in-process Redrive server and talks to
//! it over HTTP, through the AWS SDK (JSON protocol) or raw requests (Query protocol, malformed
//! input).

mod attributes;
mod auth;
mod batches;
mod common;
mod dlq;
mod fifo;
mod fifo_groups;
mod history;
mod malformed;
mod messages;
mod metrics;
mod move_tasks;
mod query_protocol;
mod queues;
mod replays;
mod store_faults;
