//! An in-process Redrive server for tests: `#[tokio::test]` starts one on a free loopback port
//! (in memory, nothing on disk) and gets its endpoint and an `aws-sdk-sqs` client for it.
//!
//! ```no_run
//! # async fn demo() -> Result<(), redrive_testkit::TestkitError> {
//! let sqs = redrive_testkit::RedriveServer::start().await?;
//! let url = sqs.client.create_queue().queue_name("jobs").send().await.unwrap();
//! # Ok(()) }
//! ```
//!
//! The server runs on the test's runtime and stops when the [`RedriveServer`] is dropped.

use std::net::SocketAddr;
use std::path::Path;

use aws_credential_types::Credentials;
use aws_sdk_sqs::config::{BehaviorVersion, Region};
use redrive_server::queue_config::{ConfigErrors, QueueConfig};
use redrive_server::{Server, ServerConfig};

/// Why a test server did not start.
#[derive(Debug, thiserror::Error)]
pub enum TestkitError {
    #[error("cannot start the server: {0}")]
    Start(#[from] redrive_server::StartError),
    #[error("cannot read the local address: {0}")]
    Io(#[from] std::io::Error),
    #[error("queue file: {0}")]
    Config(#[from] ConfigErrors),
}

/// A running in-process server.
pub struct RedriveServer {
    /// `http://127.0.0.1:PORT`
    pub endpoint: String,
    pub addr: SocketAddr,
    /// Account id in queue URLs and ARNs.
    pub account_id: String,
    /// A client for it: region `us-east-1`, static test credentials, no retries.
    pub client: aws_sdk_sqs::Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl RedriveServer {
    /// A server with the defaults (`us-east-1`, account `000000000000`, in memory).
    pub async fn start() -> Result<RedriveServer, TestkitError> {
        Self::start_with(ServerConfig::default(), None).await
    }

    /// A server with queues created from a queue file first (see docs/queue-config.md).
    pub async fn start_with_queues(file: &Path) -> Result<RedriveServer, TestkitError> {
        let queues = QueueConfig::load(file)?;
        Self::start_with(ServerConfig::default(), Some(queues)).await
    }

    /// A server with a configuration of your own (its `port` is replaced by a free one).
    pub async fn start_with(
        config: ServerConfig,
        queues: Option<QueueConfig>,
    ) -> Result<RedriveServer, TestkitError> {
        let config = ServerConfig {
            host: "127.0.0.1".into(),
            port: 0,
            ..config
        };
        let account_id = config.account_id.clone();
        let region = config.region.clone();
        let server = Server::bind(config).await?;
        if let Some(q) = queues {
            q.apply(&server.engine(), &account_id, &region).await?;
        }
        let addr = server.local_addr()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(server.serve(async {
            let _ = stopped.await;
        }));
        let endpoint = format!("http://{addr}");
        let sdk_config = aws_sdk_sqs::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(region))
            .endpoint_url(&endpoint)
            .credentials_provider(Credentials::new("test", "test", None, None, "testkit"))
            .http_client(aws_smithy_http_client::Builder::new().build_http())
            .build();
        Ok(RedriveServer {
            endpoint,
            addr,
            account_id,
            client: aws_sdk_sqs::Client::from_conf(sdk_config),
            stop: Some(stop),
        })
    }

    /// The URL the server hands out for queue `name`.
    pub fn queue_url(&self, name: &str) -> String {
        format!("{}/{}/{name}", self.endpoint, self.account_id)
    }
}

impl Drop for RedriveServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
