//! The shared-database backend against a real PostgreSQL (`source tests/services/start.sh`
//! exports `REDRIVE_TEST_POSTGRES_URL`; run by the `services` nextest profile). Each test works
//! in its own schema; "servers" are separate `PgStore`s with their own connections.

mod services;
