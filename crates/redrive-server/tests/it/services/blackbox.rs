//! A part of the black-box suite run again against two servers sharing one PostgreSQL (ADR
//! 0002, issue 17): the same test files, compiled a second time here, where
//! [`crate::common::TestServer::start`] starts two `--store postgres://` servers on a fresh
//! schema and gives a client whose requests alternate between them, the `Host` kept as a load
//! balancer keeps it (see [`shared_pair`]).
//! Raw-HTTP requests (Query protocol, malformed input) alternate too, and so do the SDK clients
//! a test builds itself through [`crate::common::TestServer::sdk_config`].
//!
//! Tests of behaviour the shared store does not have yet are excluded in
//! `.config/nextest.toml` (profile `services`), each with its reason.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use aws_sdk_sqs::config::interceptors::BeforeTransmitInterceptorContextMut;
use aws_sdk_sqs::config::{ConfigBag, Intercept, RuntimeComponents};
use redrive_server::{Server, ServerConfig, SharedStore, Storage};
use redrive_store_pg::PgBackend;

use crate::common::TestServer;

#[path = "../attribute_fidelity.rs"]
mod attribute_fidelity;
#[path = "../attributes.rs"]
mod attributes;
#[path = "../auth.rs"]
mod auth;
#[path = "../batches.rs"]
mod batches;
#[path = "../dlq.rs"]
mod dlq;
#[path = "../edge.rs"]
mod edge;
#[path = "../fifo.rs"]
mod fifo;
#[path = "../fifo_groups.rs"]
mod fifo_groups;
#[path = "../fifo_rules.rs"]
mod fifo_rules;
#[path = "../json_error_names.rs"]
mod json_error_names;
#[path = "../localstack.rs"]
mod localstack;
#[path = "../malformed.rs"]
mod malformed;
#[path = "../messages.rs"]
mod messages;
#[path = "../move_tasks.rs"]
mod move_tasks;
#[path = "../query_get.rs"]
mod query_get;
#[path = "../query_protocol.rs"]
mod query_protocol;
#[path = "../queue_urls.rs"]
mod queue_urls;
#[path = "../queues.rs"]
mod queues;
#[path = "../receipts.rs"]
mod receipts;
#[path = "../replays.rs"]
mod replays;
#[path = "../texts.rs"]
mod texts;

/// Sends every other request to the second server, keeping the first's `Host` (as a load
/// balancer does), so queue URLs are the same whichever server answers.
#[derive(Debug)]
struct Alternate {
    first: String,
    second: String,
    next: AtomicUsize,
}

impl Intercept for Alternate {
    fn name(&self) -> &'static str {
        "Alternate"
    }

    fn modify_before_transmit(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        if self.next.fetch_add(1, Ordering::Relaxed) % 2 == 1 {
            let req = context.request_mut();
            let uri = req.uri().replacen(&self.first, &self.second, 1);
            req.set_uri(uri)?;
            req.headers_mut().insert("host", self.first.clone());
        }
        Ok(())
    }
}

/// `builder` with requests alternating between `first` and `second` (`host:port` each).
pub fn alternate(
    builder: aws_sdk_sqs::config::Builder,
    first: String,
    second: &str,
) -> aws_sdk_sqs::config::Builder {
    builder.interceptor(Alternate {
        first,
        second: second.trim_start_matches("http://").to_string(),
        next: AtomicUsize::new(0),
    })
}

/// Whether the running test is one of this module's (libtest names each test's thread after
/// the test).
fn in_blackbox() -> bool {
    std::thread::current()
        .name()
        .is_some_and(|name| name.starts_with("services::blackbox::"))
}

/// A shared-store backend on a fresh schema (each server of a test connects to the same one).
async fn backend(schema: &str) -> Storage {
    let url = std::env::var("REDRIVE_TEST_POSTGRES_URL").expect(
        "REDRIVE_TEST_POSTGRES_URL is not set: `source tests/services/start.sh` first (the `services` nextest profile)",
    );
    let backend = PgBackend::connect(&url, Some(schema), 3)
        .await
        .expect("connect to PostgreSQL");
    Storage::Shared(SharedStore(Arc::new(backend)))
}

fn fresh_schema() -> String {
    format!(
        "bb_{}",
        uuid::Uuid::new_v4().simple().to_string()[..12].to_owned()
    )
}

/// `config` on a fresh PostgreSQL schema when the running test is one of this module's (for
/// tests that start and stop one server themselves); `config` unchanged otherwise.
pub async fn shared_config(config: ServerConfig) -> ServerConfig {
    if !in_blackbox() {
        return config;
    }
    ServerConfig {
        storage: backend(&fresh_schema()).await,
        ..config
    }
}

/// Two shared-store servers with `config` (its storage replaced) and an alternating client,
/// when the running test is one of this module's; `None` otherwise.
pub async fn shared_pair(config: ServerConfig) -> Option<TestServer> {
    if !in_blackbox() {
        return None;
    }
    let schema = fresh_schema();
    let mut servers = Vec::new();
    for _ in 0..2 {
        let server = Server::bind(ServerConfig {
            port: 0,
            storage: backend(&schema).await,
            ..config.clone()
        })
        .await
        .expect("bind");
        servers.push(server);
    }
    let second = servers[1].local_addr().expect("addr").to_string();
    tokio::spawn(servers.pop().expect("second").serve(std::future::pending()));
    let mut first = TestServer::from_server(servers.pop().expect("first"));
    let conf = alternate(
        first.client.config().to_builder(),
        first.addr.to_string(),
        &second,
    )
    .build();
    first.client = aws_sdk_sqs::Client::from_conf(conf);
    first.second = Some(format!("http://{second}"));
    Some(first)
}
