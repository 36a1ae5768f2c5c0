//! Integration tests for the queue engine, driven directly (no HTTP).
//!
//! - `timers`: visibility, delays, retention, purge/delete cool-downs, FIFO dedup window
//!   (manual clock).
//! - `dlq`: the lazy move to the dead-letter queue (manual clock).
//! - `recovery`: reopening an engine over the same store.
//! - `model`: a proptest over random operation sequences checking the "exactly one place"
//!   invariant and that the store agrees with the in-memory state.
//! - `model_tasks`: the same with message move tasks (start, cancel, progress on tokio's
//!   paused clock): redrives create new MessageIds, task counters are exact.
//! - `model_replays`: the same with selective redrive (replays): only the selected set moves
//!   (as a dry run reports it), with provenance; counters, move logs and documents are exact.
//! - `faults`: a store write failing at every I/O point of each mutation kind leaves memory
//!   equal to the disk, and writes continue without a restart.
//! - `fifo`: FIFO group locking and round-robin receives (manual clock), long polls woken
//!   when a group unlocks, and a model test predicting every FIFO receive exactly.
//! - `history`: minute history (manual clock): exact per-minute sums and gauge samples,
//!   retention by whole days, a reopen that keeps history without double counting.
//! - `in_flight_limit`: the 120,000 in-flight messages reached for real: `OverLimit` on a
//!   standard queue with messages waiting, nothing more from a FIFO queue.
//! - `long_poll`: `WaitTimeSeconds` with the real runtime and the system clock.
//! - `alerts`: alert rules over the minute history (manual clock): each rule kind,
//!   INSUFFICIENT_DATA before data, residue/growth and pre-existing-backlog texts, one ALARM and
//!   one OK per episode, silences, backoff, bad input, and a redb reopen.

mod alerts;
mod common;
mod concurrency;
mod dlq;
mod fairness;
mod faults;
mod fifo;
mod history;
mod in_flight_limit;
mod long_poll;
mod model;
mod model_replays;
mod model_tasks;
mod recovery;
mod replay_bench;
mod timers;
