//! Integration tests of the durable store: equivalence with `MemoryStore`, reopen, group commit
//! under concurrency, and crash consistency over a fault-injecting redb backend.

mod common;
mod concurrency;
mod corruption;
mod crash;
mod equivalence;
mod fixture_v1;
mod fixture_v2;
mod fixture_v3;
mod fixture_v4;
mod layout;
mod migration;
mod reopen;
