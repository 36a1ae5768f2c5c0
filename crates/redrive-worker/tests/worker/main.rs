//! Integration tests for `redrive-worker`, run against an in-process Redrive server and against
//! moto (the `::moto` variants: skipped by the default nextest profile, run by
//! `cargo nextest run --profile moto`, which fails them when `moto_server` is missing), and
//! against a real Redis and PostgreSQL (`services::`: the `services` profile, see
//! `tests/services/start.sh`).

mod common;
mod incident;
mod lambda;
mod lifecycle;
mod observability;
mod outcomes;
mod services;
