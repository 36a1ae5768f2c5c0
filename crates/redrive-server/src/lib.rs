//! The HTTP edge of Redrive: the only crate that knows HTTP.
//!
//! # Layout
//! - [`config`]: [`ServerConfig`] (listen address, identity, limits).
//! - [`http`]: the axum router; turns an HTTP request into a typed [`Request`] with
//!   `redrive-protocol`, calls [`dispatch`], and encodes the answer in the caller's protocol.
//! - [`dispatch`]: one `match` from [`Request`] to the engine's action methods.
//! - [`context`]: Region (from SigV4) and base URL (from `Host`) of a request.
//! - [`inspect`]: the `/_redrive/v1/` inspection extension (non-destructive browsing).
//!
//! [`Request`]: redrive_core::api::Request

pub mod config;
pub mod context;
pub mod dispatch;
pub mod http;
pub mod inspect;

use std::net::SocketAddr;
use std::sync::Arc;

pub use config::ServerConfig;
use redrive_engine::{Engine, EngineConfig};
use tokio::net::TcpListener;

/// Everything a request handler needs.
#[derive(Debug)]
pub struct AppState {
    pub engine: Arc<Engine>,
    pub config: ServerConfig,
}

/// A server bound to a socket, not yet serving.
pub struct Server {
    listener: TcpListener,
    state: Arc<AppState>,
}

impl Server {
    /// Binds the listener and opens the engine (in memory for now).
    pub async fn bind(config: ServerConfig) -> std::io::Result<Server> {
        let engine = Arc::new(Engine::in_memory(EngineConfig {
            account_id: config.account_id.clone(),
            default_region: config.region.clone(),
        }));
        Self::bind_with_engine(config, engine).await
    }

    pub async fn bind_with_engine(
        config: ServerConfig,
        engine: Arc<Engine>,
    ) -> std::io::Result<Server> {
        let listener = TcpListener::bind((config.host.as_str(), config.port)).await?;
        engine.resume_move_tasks();
        Ok(Server {
            listener,
            state: Arc::new(AppState { engine, config }),
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub fn engine(&self) -> Arc<Engine> {
        self.state.engine.clone()
    }

    /// Serves until `shutdown` resolves, then finishes in-flight requests.
    pub async fn serve(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let app = http::router(self.state);
        axum::serve(self.listener, app)
            .with_graceful_shutdown(shutdown)
            .await
    }
}
