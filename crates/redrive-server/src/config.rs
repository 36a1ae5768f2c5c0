//! Server configuration.

use std::path::PathBuf;
use std::time::Duration;

use redrive_store::DurabilityMode;

/// Where queues and messages live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Storage {
    /// Nothing survives a restart.
    InMemory,
    /// One redb file in `dir`, written with group commit, beside a space reserve of
    /// `reserve_bytes` (see `redrive_store::StoreOptions`).
    Durable {
        dir: PathBuf,
        mode: DurabilityMode,
        reserve_bytes: u64,
    },
    /// Queues and messages in a database several servers share (ADR 0002); the backend is
    /// opened by the caller (`redrive serve --store postgres://…`).
    Shared(SharedStore),
}

/// A shared backend handle (compared by identity).
#[derive(Clone)]
pub struct SharedStore(pub std::sync::Arc<dyn redrive_engine::backend::QueueBackend>);

impl std::fmt::Debug for SharedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedStore")
    }
}

impl PartialEq for SharedStore {
    fn eq(&self, other: &Self) -> bool {
        std::sync::Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for SharedStore {}

impl Storage {
    pub fn is_durable(&self) -> bool {
        matches!(self, Storage::Durable { .. })
    }
}

/// How the server listens and whom it claims to be.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub host: String,
    pub port: u16,
    /// Region used when a request carries no SigV4 credential scope.
    pub region: String,
    pub account_id: String,
    /// Largest HTTP body accepted, in bytes. A 1 MiB message percent-encoded in a Query form
    /// can take up to three times its size.
    pub max_body_bytes: usize,
    /// Serve `POST /moto-api/reset` (drops all state; for test-suites only).
    pub enable_reset_api: bool,
    pub storage: Storage,
    /// Request authentication (off by default).
    pub auth: crate::auth::Auth,
    /// Connection limits and timeouts of the HTTP edge.
    pub http: HttpLimits,
    /// How queue URLs are written (`path`, the default; `host-region`; `path-region`).
    pub queue_url_style: redrive_engine::QueueUrlStyle,
    /// Days of per-queue minute history kept in the store.
    pub metrics_retention_days: u32,
    /// Per-request Prometheus observations and the minute history (with the alert evaluation
    /// that follows each minute). Off: `/metrics` still serves the queue gauges and counters.
    pub metrics_enabled: bool,
    /// Test suites only: the engine's clock runs from a given start and can be moved forward
    /// (`POST /_redrive/v1/test/clock`, with `enable_reset_api`).
    pub test_clock: Option<std::sync::Arc<crate::test_api::ShiftedClock>>,
    /// Serve `/console` to any peer; by default only loopback peers get it when
    /// authentication is off (see `docs/console.md`).
    pub console_public: bool,
}

/// Connection limits and timeouts (see `docs/operations.md`). None of them can cut a long poll:
/// a request being handled has no deadline; these only bound a client that is slow to *send*.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// From the first byte of a request to the end of its headers.
    pub header_timeout: Duration,
    /// From the end of the headers to the end of the body.
    pub body_timeout: Duration,
    /// After [`BODY_RATE_GRACE`], a body must have arrived at this average rate (bytes per
    /// second) or it is dropped; 0 turns the check off.
    pub min_body_rate: u64,
    /// A connection with no request in progress (freshly accepted, or between keep-alive
    /// requests) is closed after this long.
    pub idle_timeout: Duration,
    /// Connections served at once; further ones wait in the listen backlog until one closes.
    pub max_connections: usize,
}

/// How long a body may arrive at any rate before [`HttpLimits::min_body_rate`] applies.
pub const BODY_RATE_GRACE: Duration = Duration::from_secs(5);

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            header_timeout: Duration::from_secs(30),
            body_timeout: Duration::from_secs(60),
            min_body_rate: 1024,
            idle_timeout: Duration::from_secs(75),
            max_connections: 10_000,
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            host: "127.0.0.1".into(),
            port: 9324,
            region: "us-east-1".into(),
            account_id: "000000000000".into(),
            max_body_bytes: 4 * 1024 * 1024,
            enable_reset_api: false,
            storage: Storage::InMemory,
            auth: crate::auth::Auth::None,
            http: HttpLimits::default(),
            queue_url_style: redrive_engine::QueueUrlStyle::Path,
            metrics_retention_days: redrive_engine::history::DEFAULT_RETENTION_DAYS,
            metrics_enabled: true,
            test_clock: None,
            console_public: false,
        }
    }
}
