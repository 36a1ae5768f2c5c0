//! Server configuration.

use std::path::PathBuf;

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
}

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
    /// Days of per-queue minute history kept in the store.
    pub metrics_retention_days: u32,
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
            metrics_retention_days: redrive_engine::history::DEFAULT_RETENTION_DAYS,
        }
    }
}
