//! Tests that need a real PostgreSQL (`source tests/services/start.sh` exports
//! `REDRIVE_TEST_POSTGRES_URL`; run by the `services` nextest profile).

pub mod blackbox;
mod shared_pg;
