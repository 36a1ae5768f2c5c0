//! Black-box integration tests: each test starts its own in-process Redrive server and talks to
//! it over HTTP, through the AWS SDK (JSON protocol) or raw requests (Query protocol, malformed
//! input).

// `services::blackbox` compiles some of these files a second time, against PostgreSQL.
#![allow(clippy::duplicate_mod)]

mod alerts;
mod attribute_fidelity;
mod attributes;
mod auth;
mod batches;
mod browser_kit;
mod cloudwatch;
mod cloudwatch_alarms;
mod common;
mod console;
mod console_actions;
mod console_browser;
mod dlq;
mod edge;
mod fifo;
mod fifo_groups;
mod fifo_rules;
mod history;
mod json_error_names;
mod localstack;
mod malformed;
mod messages;
mod metrics;
mod move_tasks;
mod query_get;
mod query_protocol;
mod queue_urls;
mod queues;
mod receipts;
mod replays;
mod services;
mod store_faults;
mod texts;
