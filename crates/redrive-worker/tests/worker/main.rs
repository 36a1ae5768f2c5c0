//! Integration tests for `redrive-worker`, run against an in-process Redrive server and, when
//! `moto_server` is on `PATH`, against moto too (otherwise the moto variants print a note and
//! pass without running).

mod common;
mod incident;
mod lifecycle;
mod observability;
mod outcomes;
