//! The HTTP edge of Redrive: the only crate that knows HTTP.
//!
//! # Layout
//! - [`config`]: [`ServerConfig`] (listen address, identity, limits).
//! - [`edge`]: the accept loop: connection limit, header/body/idle timeouts, graceful shutdown,
//!   SQS-shaped answers to unparseable request heads.
//! - [`http`]: the axum router; turns an HTTP request into a typed [`Request`] with
//!   `redrive-protocol`, calls [`dispatch`], and encodes the answer in the caller's protocol.
//! - [`dispatch`]: one `match` from [`Request`] to the engine's action methods.
//! - [`context`]: Region (from SigV4) and base URL (from `Host`) of a request.
//! - [`inspect`]: the `/_redrive/v1/` inspection extension (non-destructive browsing).
//! - [`history_api`]: `/_redrive/v1/queues/{name}/metrics`, the per-minute history.
//! - [`cloudwatch`]: CloudWatch's `GetMetricData`/`GetMetricStatistics`/`ListMetrics` over it.
//! - [`test_api`]: test-only hooks behind `--enable-reset-api` (history flush, shifted clock).
//! - [`alerts_api`]: `/_redrive/v1/alerts/…` (rules, history, silences, outbox);
//!   [`alert_webhooks`]: the deliverer of alert notifications.
//! - [`console`]: the web console at `/console` (server-rendered HTML, inline SVG): browse,
//!   group-by, selective replay, move tasks, schedules, alerts; CSRF-checked forms, audit log.
//!
//! [`Request`]: redrive_core::api::Request

pub mod alert_webhooks;
pub mod alerts_api;
pub mod auth;
pub mod cloudwatch;
pub mod config;
pub mod console;
pub mod context;
pub mod dispatch;
pub mod edge;
pub mod elasticmq;
pub mod history_api;
pub mod http;
pub mod inspect;
pub mod localstack;
pub mod metrics;
pub mod queue_config;
pub mod replay_api;
pub mod test_api;

use std::net::SocketAddr;
use std::sync::Arc;

pub use auth::Auth;
pub use config::{HttpLimits, ServerConfig, SharedStore, Storage};
pub use redrive_engine::QueueUrlStyle;
use redrive_engine::{Engine, EngineConfig};
use tokio::net::TcpListener;

/// Everything a request handler needs.
#[derive(Debug)]
pub struct AppState {
    pub engine: Arc<Engine>,
    pub config: ServerConfig,
    pub metrics: metrics::Metrics,
    /// Logged-in console sessions (used only under `--auth sigv4`).
    pub console_sessions: console::session::Sessions,
}

/// A server bound to a socket, not yet serving.
pub struct Server {
    listener: TcpListener,
    state: Arc<AppState>,
    /// The durable store, flushed and closed after the last request.
    durable: Option<Arc<redrive_store::RedbStore>>,
}

/// Failure to start a server.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot open storage: {0}")]
    Storage(#[from] redrive_store::StoreError),
    #[error("cannot listen: {0}")]
    Listen(#[from] std::io::Error),
}

/// A restart's load, past the stage that converts records to the engine's compact form.
enum Prepared {
    Queues(Vec<redrive_store::QueueRecord>),
    Messages(redrive_engine::PreparedMessages),
}

impl Server {
    /// Opens the configured storage, rebuilds the engine from it, and binds the listener.
    pub async fn bind(config: ServerConfig) -> Result<Server, StartError> {
        let engine_config = EngineConfig {
            account_id: config.account_id.clone(),
            queue_url_style: config.queue_url_style,
        };
        let clock: Arc<dyn redrive_engine::Clock> = match &config.test_clock {
            Some(c) => c.clone(),
            None => Arc::new(redrive_engine::SystemClock),
        };
        let mut durable = None;
        let engine = match &config.storage {
            Storage::Shared(shared) => {
                Arc::new(Engine::open_shared(engine_config, shared.0.clone(), clock))
            }
            Storage::InMemory => Arc::new(Engine::open(
                engine_config,
                Arc::new(redrive_store::MemoryStore::new()),
                clock,
            )),
            Storage::Durable {
                dir,
                mode,
                reserve_bytes,
            } => {
                let dir = dir.clone();
                let options = redrive_store::StoreOptions {
                    mode: *mode,
                    reserve_bytes: *reserve_bytes,
                    ..redrive_store::StoreOptions::default()
                };
                // Open and read the whole file off the async threads; an unreadable file stops
                // startup here instead of serving an empty server. Records that fail their
                // checksum are quarantined by the load (never served) and counted here.
                let load_clock = clock.clone();
                // Read off the async threads: the store's thread reads and decodes while this
                // one indexes what it has sent (a restart's read and rebuild overlap).
                let (store, rebuilder, snapshot) = tokio::task::spawn_blocking(move || {
                    let started = std::time::Instant::now();
                    let store = Arc::new(redrive_store::RedbStore::open_with(&dir, options)?);
                    let opened = started.elapsed();
                    // Up to 64 batches (~256k messages) in flight: the reader does not wait
                    // on a momentarily slower indexer.
                    let (parts_tx, parts) = std::sync::mpsc::sync_channel(64);
                    let reader = {
                        let store = store.clone();
                        std::thread::Builder::new()
                            .name("redrive-load".into())
                            .spawn(move || store.try_load_streamed(parts_tx))
                            .map_err(|_| {
                                redrive_store::StoreError::LoadStopped("its thread did not start")
                            })?
                    };
                    // A third stage between the readers and this thread converts records to
                    // the engine's compact form (the indexing is the longer step once the
                    // two readers keep up).
                    let (prepared_tx, prepared) = std::sync::mpsc::sync_channel(16);
                    let preparer = std::thread::Builder::new()
                        .name("redrive-prepare".into())
                        .spawn(move || {
                            let mut senders = redrive_engine::queue::SenderIds::default();
                            for part in parts {
                                let part = match part {
                                    redrive_store::LoadPart::Queues(q) => Prepared::Queues(q),
                                    redrive_store::LoadPart::Messages(m) => Prepared::Messages(
                                        redrive_engine::Rebuilder::prepare(m, &mut senders),
                                    ),
                                };
                                if prepared_tx.send(part).is_err() {
                                    break;
                                }
                            }
                        })
                        .map_err(|_| {
                            redrive_store::StoreError::LoadStopped("its thread did not start")
                        })?;
                    let mut rebuilder = redrive_engine::Rebuilder::new(load_clock.now_ms());
                    // Time this thread waited for the store (the read is the slower side
                    // when it is most of the total).
                    let mut waited = std::time::Duration::ZERO;
                    loop {
                        let before = std::time::Instant::now();
                        let Ok(part) = prepared.recv() else { break };
                        waited += before.elapsed();
                        match part {
                            Prepared::Queues(queues) => rebuilder.add_queues(queues),
                            Prepared::Messages(messages) => rebuilder.add_prepared(messages),
                        }
                    }
                    let snapshot = reader.join().map_err(|_| {
                        redrive_store::StoreError::LoadStopped("its thread panicked")
                    })??;
                    preparer.join().map_err(|_| {
                        redrive_store::StoreError::LoadStopped("its thread panicked")
                    })?;
                    tracing::info!(
                        open_ms = opened.as_millis() as u64,
                        read_and_index_ms = (started.elapsed() - opened).as_millis() as u64,
                        index_waited_ms = waited.as_millis() as u64,
                        messages = rebuilder.messages(),
                        "store read and indexed"
                    );
                    Ok::<_, redrive_store::StoreError>((store, rebuilder, snapshot))
                })
                .await
                .map_err(|e| std::io::Error::other(e.to_string()))??;
                let failed = snapshot
                    .quarantined
                    .iter()
                    .filter(|q| q.failed_verification)
                    .count();
                if snapshot.quarantined.is_empty() {
                    tracing::info!(
                        quarantined_total = snapshot.quarantined_total,
                        "0 records failed verification"
                    );
                } else {
                    tracing::error!(
                        failed,
                        moved = snapshot.quarantined.len(),
                        quarantined_total = snapshot.quarantined_total,
                        "{failed} records failed verification and were quarantined, never served \
                         (`redrive verify` lists them)"
                    );
                }
                durable = Some(store.clone());
                let finish_started = std::time::Instant::now();
                let engine =
                    Engine::from_rebuilder(engine_config, store, clock, rebuilder, snapshot);
                tracing::info!(
                    finish_ms = finish_started.elapsed().as_millis() as u64,
                    "engine ready (bulk-built indices, history, alerts)"
                );
                Arc::new(engine)
            }
        };
        let mut server = Self::bind_with_engine(config, engine).await?;
        server.durable = durable;
        Ok(server)
    }

    /// Binds the listener for an engine built by the caller (tests, embedding).
    pub async fn bind_with_engine(
        config: ServerConfig,
        engine: Arc<Engine>,
    ) -> std::io::Result<Server> {
        let listener = TcpListener::bind((config.host.as_str(), config.port)).await?;
        engine.resume_move_tasks();
        engine.resume_replays();
        engine.spawn_scheduler();
        engine.spawn_shared_background();
        engine.set_history_retention_days(config.metrics_retention_days);
        if config.metrics_enabled {
            engine.spawn_history();
        }
        alert_webhooks::spawn(&engine);
        Ok(Server {
            listener,
            state: Arc::new(AppState {
                metrics: metrics::Metrics::new(engine.clone()),
                console_sessions: console::session::Sessions::new(engine.shared_backend().cloned()),
                engine,
                config,
            }),
            durable: None,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub fn engine(&self) -> Arc<Engine> {
        self.state.engine.clone()
    }

    /// Serves until `shutdown` resolves, then stops accepting, finishes in-flight requests and
    /// returns once every connection is closed.
    pub async fn serve(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let limits = self.state.config.http;
        let app = http::router(self.state);
        edge::serve(self.listener, app, limits, shutdown).await
    }
}
