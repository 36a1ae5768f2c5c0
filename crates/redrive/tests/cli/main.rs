//! Tests that run the built `redrive` binary as a child process.
//!
//! - `checker`: producers and consumers across a cluster of servers (one on the embedded store
//!   here) with SIGKILLs and restarts; checks no loss, no resurrection, no double delivery
//!   within a visibility timeout, FIFO order per group. Also shown to fail on a server that
//!   forgets.
//! - `serve`: flags, environment variables, graceful shutdown.
//! - `crash`: SIGKILL at random points under load; after each restart every acknowledged send
//!   is there (or was acknowledged as deleted), no acknowledged delete comes back, and a move
//!   task resumes.
//! - `full_disk`: a tmpfs data directory filled up: acknowledged sends survive, counts stay
//!   exact, consumers drain, writes resume when the file system grows (root only; `#[ignore]`d,
//!   run by `.ci/run`).
//! - `investigate`: `status`, `peek`, `stats`, `export`, `import` against a synthetic DLQ
//!   incident.
//! - `metrics`: `metrics` reading the minute history a SIGTERM wrote, after a restart.
//! - `metrics_cloudwatch`: `metrics --source cloudwatch` against our CloudWatch API.
//! - `replay`: `replay` (client-side and server-side paths, moto), `move`, `schedule`.
//! - `console`: `redrive console` against moto_server, driven over HTTP (group-by, dry run,
//!   confirmed client-side replay, CSRF refusal).
//! - `console_browser`: `redrive console` against `redrive serve` in a headless Chromium
//!   (alerts, schedules, a replay's live progress; `browser` profile).
//! - `verify`: `redrive verify` on a clean and on a damaged data directory.
//! - `services`: `serve --store postgres://…` processes sharing one PostgreSQL (`services`
//!   profile).

mod alerts;
mod checker;
mod console;
mod console_browser;
mod crash;
mod full_disk;
mod harness;
mod investigate;
mod metrics;
mod metrics_cloudwatch;
mod queue_config;
mod replay;
mod serve;
mod services;
mod verify;
