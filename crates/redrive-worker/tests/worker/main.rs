//! Integration tests for `redrive-worker`, run against an in-process Redrive server and against
//! moto (the `::moto` variants: skipped by the default nextest profile, run by
//! `cargo nextest run --profile moto`, which fails them when `moto_server` is missing).

mod common;
mod incident;
mod lifecycle;
mod observability;
mod outcomes;
