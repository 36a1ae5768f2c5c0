//! A store short of space, seen through the official SDK: writes that grow the store are
//! refused with 503 `ServiceUnavailable` before they change anything, the SDK's standard retry
//! treats it as transient (a send retried until space is back succeeds), and reads, receives and
//! deletes keep working. The real full disk is tested end to end in
//! `crates/redrive/tests/cli/full_disk.rs`; the store here is `MemoryStore` with a switch for the
//! low-space condition the redb store reports after a failed write.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_sqs::config::retry::RetryConfig;
use aws_sdk_sqs::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_sqs::error::ProvideErrorMetadata;
use redrive_engine::store::{Durable, MemoryStore, Mutation, Snapshot, Store, StoreHealth};
use redrive_engine::{Engine, EngineConfig, SystemClock};
use redrive_server::{Server, ServerConfig};

use crate::common::{REGION, TestServer};

#[derive(Default)]
struct ShortOfSpace {
    inner: MemoryStore,
    low: AtomicBool,
}

impl Store for ShortOfSpace {
    fn load(&self) -> Snapshot {
        self.inner.load()
    }

    fn submit(&self, batch: Vec<Mutation>) -> Durable {
        self.inner.submit(batch)
    }

    fn health(&self) -> StoreHealth {
        StoreHealth {
            low_space: self
                .low
                .load(Ordering::SeqCst)
                .then(|| "the space reserve is given up".to_string()),
            ..StoreHealth::default()
        }
    }
}

async fn start() -> (TestServer, Arc<ShortOfSpace>) {
    let store = Arc::new(ShortOfSpace::default());
    let engine = Arc::new(Engine::open(
        EngineConfig::default(),
        store.clone(),
        Arc::new(SystemClock),
    ));
    let server = Server::bind_with_engine(
        ServerConfig {
            port: 0,
            ..Default::default()
        },
        engine,
    )
    .await
    .unwrap();
    (TestServer::from_server(server), store)
}

#[tokio::test]
async fn writes_that_grow_the_store_get_503_and_change_nothing() {
    let (s, store) = start().await;
    let url = s.create("short").await;
    s.client
        .send_message()
        .queue_url(&url)
        .message_body("before")
        .send()
        .await
        .unwrap();
    store.low.store(true, Ordering::SeqCst);

    let err = s
        .client
        .send_message()
        .queue_url(&url)
        .message_body("refused")
        .send()
        .await
        .expect_err("send while short of space");
    assert_eq!(err.code(), Some("ServiceUnavailable"), "{err:?}");
    let raw = err.raw_response().expect("a response");
    assert_eq!(raw.status().as_u16(), 503);
    let err = s
        .client
        .create_queue()
        .queue_name("another")
        .send()
        .await
        .expect_err("create while short of space");
    assert_eq!(err.code(), Some("ServiceUnavailable"));

    // Wire shape on both protocols.
    let (status, headers, body) = s
        .raw_json(
            "AmazonSQS.SendMessage",
            &serde_json::json!({"QueueUrl": url, "MessageBody": "x"}).to_string(),
        )
        .await;
    assert_eq!(status, 503);
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["__type"], "com.amazonaws.sqs#ServiceUnavailable");
    assert_eq!(
        headers["x-amzn-query-error"].to_str().unwrap(),
        "ServiceUnavailable;Receiver"
    );
    let (status, _, text) = s
        .query(&[
            ("Action", "SendMessage"),
            ("QueueUrl", &url),
            ("MessageBody", "x"),
        ])
        .await;
    assert_eq!(status, 503);
    assert!(text.contains("<Code>ServiceUnavailable</Code>"), "{text}");
    assert!(text.contains("<Type>Receiver</Type>"), "{text}");

    // Reads, receives and deletes go on; nothing refused was counted.
    let got = s
        .client
        .receive_message()
        .queue_url(&url)
        .max_number_of_messages(10)
        .send()
        .await
        .unwrap();
    let msgs = got.messages();
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0].body(), Some("before"));
    s.client
        .delete_message()
        .queue_url(&url)
        .receipt_handle(msgs[0].receipt_handle().unwrap())
        .send()
        .await
        .unwrap();
    s.client.purge_queue().queue_url(&url).send().await.unwrap();
    assert_eq!(s.counts(&url).await, (0, 0, 0));
}

#[tokio::test]
async fn the_sdk_retries_503_until_space_is_back() {
    let (s, store) = start().await;
    let url = s.create("retried").await;
    let retrying = aws_sdk_sqs::Client::from_conf(
        aws_sdk_sqs::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(REGION))
            .endpoint_url(&s.base)
            .credentials_provider(Credentials::new("test", "test", None, None, "static"))
            .http_client(aws_smithy_http_client::Builder::new().build_http())
            .retry_config(
                RetryConfig::standard()
                    .with_max_attempts(10)
                    .with_initial_backoff(Duration::from_millis(100))
                    .with_max_backoff(Duration::from_millis(400)),
            )
            .build(),
    );
    store.low.store(true, Ordering::SeqCst);
    let freed = {
        let store = store.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(500)).await;
            store.low.store(false, Ordering::SeqCst);
        })
    };
    let started = Instant::now();
    retrying
        .send_message()
        .queue_url(&url)
        .message_body("eventually")
        .send()
        .await
        .expect("the SDK retries ServiceUnavailable");
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "the first attempts must have been refused"
    );
    freed.await.unwrap();
    assert_eq!(s.counts(&url).await, (1, 0, 0));
}
