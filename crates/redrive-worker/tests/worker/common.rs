//! Shared harness: an SQS endpoint (in-process Redrive server or a `moto_server` child
//! process), an SDK client for it, queue helpers, and a worker runner.

use std::collections::HashMap;
use std::future::Future;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_sqs::Client;
use aws_sdk_sqs::config::retry::RetryConfig;
use aws_sdk_sqs::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_sqs::types::{MessageAttributeValue, MessageSystemAttributeName, QueueAttributeName};
use redrive_worker::{Envelope, Worker, WorkerError, WorkerStats};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Runs a test body against the Redrive server (`<name>::redrive`) and moto (`<name>::moto`).
#[macro_export]
macro_rules! on_both {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn redrive() {
                let env = $crate::common::Env::redrive().await;
                super::$name(&env).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn moto() {
                let env = $crate::common::Env::moto().await;
                super::$name(&env).await;
            }
        }
    };
}

/// A shared, growable record of what handlers saw.
pub type Log<T> = std::sync::Arc<std::sync::Mutex<Vec<T>>>;

/// An SQS endpoint under test.
pub struct Env {
    pub client: Client,
    pub endpoint: String,
    _moto: Option<MotoProcess>,
}

struct MotoProcess(Child);

impl Drop for MotoProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn client_for(endpoint: &str) -> Client {
    let config = aws_sdk_sqs::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new("test", "test", None, None, "static"))
        .http_client(aws_smithy_http_client::Builder::new().build_http())
        .retry_config(RetryConfig::disabled())
        .build();
    Client::from_conf(config)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

impl Env {
    /// An in-process Redrive server (in-memory storage) on an ephemeral port.
    pub async fn redrive() -> Env {
        let server = redrive_server::Server::bind(redrive_server::ServerConfig {
            port: 0,
            ..Default::default()
        })
        .await
        .expect("bind test server");
        let addr = server.local_addr().expect("local addr");
        tokio::spawn(server.serve(std::future::pending()));
        let endpoint = format!("http://{addr}");
        Env {
            client: client_for(&endpoint),
            endpoint,
            _moto: None,
        }
    }

    /// A `moto_server` child process; panics when it is not installed (the moto variants run
    /// only in the `moto` nextest profile, see .config/nextest.toml).
    pub async fn moto() -> Env {
        Self::try_moto().await.expect(
            "moto_server is not on PATH: the moto tests run only in `cargo nextest run --profile moto` (.ci/run installs it)",
        )
    }

    async fn try_moto() -> Option<Env> {
        let port = free_port();
        let child = Command::new("moto_server")
            .args(["-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let process = MotoProcess(child);
        let endpoint = format!("http://127.0.0.1:{port}");
        let client = client_for(&endpoint);
        for _ in 0..300 {
            if client.list_queues().send().await.is_ok() {
                return Some(Env {
                    client,
                    endpoint,
                    _moto: Some(process),
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("moto_server did not become ready");
    }

    pub async fn create(&self, name: &str, attrs: &[(&str, String)]) -> String {
        let mut req = self.client.create_queue().queue_name(name);
        for (k, v) in attrs {
            req = req.attributes(QueueAttributeName::from(*k), v);
        }
        req.send()
            .await
            .unwrap_or_else(|e| panic!("create {name}: {}", describe(&e)))
            .queue_url
            .expect("queue url")
    }

    pub async fn arn(&self, url: &str) -> String {
        self.client
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .expect("get arn")
            .attributes
            .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
            .expect("QueueArn")
    }

    /// A source queue with a DLQ (`maxReceiveCount`, visibility timeout in seconds); names get
    /// a unique suffix. Returns `(source, dlq)`.
    pub async fn queue_with_dlq(&self, name: &str, max_receive: u32, vt: u32) -> (String, String) {
        let suffix = &uuid::Uuid::new_v4().simple().to_string()[..8];
        let dlq = self.create(&format!("{name}-{suffix}-dlq"), &[]).await;
        let policy = serde_json::json!({
            "deadLetterTargetArn": self.arn(&dlq).await,
            "maxReceiveCount": max_receive,
        });
        let url = self
            .create(
                &format!("{name}-{suffix}"),
                &[
                    ("RedrivePolicy", policy.to_string()),
                    ("VisibilityTimeout", vt.to_string()),
                ],
            )
            .await;
        (url, dlq)
    }

    /// FIFO source + FIFO DLQ.
    pub async fn fifo_with_dlq(&self, name: &str, max_receive: u32, vt: u32) -> (String, String) {
        let suffix = &uuid::Uuid::new_v4().simple().to_string()[..8];
        let fifo = ("FifoQueue", "true".to_string());
        let dedup = ("ContentBasedDeduplication", "false".to_string());
        let dlq = self
            .create(
                &format!("{name}-{suffix}-dlq.fifo"),
                &[fifo.clone(), dedup.clone()],
            )
            .await;
        let policy = serde_json::json!({
            "deadLetterTargetArn": self.arn(&dlq).await,
            "maxReceiveCount": max_receive,
        });
        let url = self
            .create(
                &format!("{name}-{suffix}.fifo"),
                &[
                    fifo,
                    dedup,
                    ("RedrivePolicy", policy.to_string()),
                    ("VisibilityTimeout", vt.to_string()),
                ],
            )
            .await;
        (url, dlq)
    }

    pub async fn send(&self, url: &str, body: &str) -> String {
        self.send_with(url, body, &[], None).await
    }

    pub async fn send_with(
        &self,
        url: &str,
        body: &str,
        attrs: &[(&str, &str)],
        group: Option<&str>,
    ) -> String {
        let mut req = self.client.send_message().queue_url(url).message_body(body);
        for (k, v) in attrs {
            req = req.message_attributes(
                *k,
                MessageAttributeValue::builder()
                    .data_type("String")
                    .string_value(*v)
                    .build()
                    .unwrap(),
            );
        }
        if let Some(g) = group {
            req = req
                .message_group_id(g)
                .message_deduplication_id(uuid::Uuid::new_v4().to_string());
        }
        req.send()
            .await
            .unwrap_or_else(|e| panic!("send: {}", describe(&e)))
            .message_id
            .expect("message id")
    }

    /// `(visible, in flight)`.
    pub async fn counts(&self, url: &str) -> (u64, u64) {
        let attrs = self
            .client
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .expect("get attributes")
            .attributes
            .unwrap_or_default();
        let n = |k: QueueAttributeName| -> u64 {
            attrs.get(&k).and_then(|v| v.parse().ok()).unwrap_or(0)
        };
        (
            n(QueueAttributeName::ApproximateNumberOfMessages),
            n(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
        )
    }

    /// Receives up to `max` messages (stops at the first empty receive), leaving them
    /// invisible for 60 s.
    pub async fn drain(&self, url: &str, max: usize) -> Vec<Received> {
        let mut out = Vec::new();
        while out.len() < max {
            let got = self
                .client
                .receive_message()
                .queue_url(url)
                .max_number_of_messages(10)
                .wait_time_seconds(1)
                .visibility_timeout(60)
                .message_system_attribute_names(MessageSystemAttributeName::All)
                .message_attribute_names("All")
                .send()
                .await
                .expect("receive")
                .messages
                .unwrap_or_default();
            if got.is_empty() {
                break;
            }
            out.extend(got.into_iter().map(|m| {
                let attributes = m.message_attributes.clone().unwrap_or_default();
                Received {
                    body: m.body.clone().unwrap_or_default(),
                    envelope: Envelope::from_attributes(&attributes),
                    attributes,
                }
            }));
        }
        out
    }
}

/// A message read back by a test.
#[derive(Debug)]
pub struct Received {
    pub body: String,
    pub attributes: HashMap<String, MessageAttributeValue>,
    pub envelope: Option<Envelope>,
}

pub fn describe<E: std::error::Error + 'static>(e: &E) -> String {
    aws_sdk_sqs::error::DisplayErrorContext(e).to_string()
}

/// A worker running in the background until [`Running::stop`].
pub struct Running {
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<WorkerStats, WorkerError>>,
}

impl Running {
    pub fn start(worker: Worker) -> Running {
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(worker.run(async move {
            let _ = rx.await;
        }));
        Running {
            stop: Some(tx),
            task,
        }
    }

    /// Requests shutdown and waits for the run to finish.
    pub async fn stop(mut self) -> WorkerStats {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .expect("worker stops within 30 s")
            .expect("worker task")
            .expect("worker run")
    }
}

/// Polls `check` every 50 ms until it returns true; panics after `limit` with `what`.
pub async fn eventually<F, Fut>(limit: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let started = Instant::now();
    loop {
        if check().await {
            return;
        }
        assert!(started.elapsed() < limit, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A builder with test-friendly timings: 1 s long polls, fast delete flushes.
pub fn quick(env: &Env, url: &str) -> redrive_worker::WorkerBuilder {
    Worker::builder(env.client.clone(), url)
        .wait_time(Duration::from_secs(1))
        .delete_flush_interval(Duration::from_millis(10))
        .worker_id("test-worker")
}
