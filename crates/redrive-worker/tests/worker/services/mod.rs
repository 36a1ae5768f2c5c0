//! Tests against a real Redis and PostgreSQL (`tests/services/start.sh`). Skipped by the default
//! nextest profile; `cargo nextest run --profile services` runs them and fails any whose URL is
//! missing.

mod idempotency;
mod incident;
mod killed;
mod limiter;

pub fn redis_url() -> String {
    service_url("REDRIVE_TEST_REDIS_URL")
}

pub fn postgres_url() -> String {
    service_url("REDRIVE_TEST_POSTGRES_URL")
}

fn service_url(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!("{var} is not set: run `source tests/services/start.sh` first (.ci/run does)")
    })
}

/// A namespace no other test run shares (Redis key prefix / PostgreSQL table name).
pub fn fresh_namespace() -> String {
    format!(
        "redrive_test_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}
