//! Shared harness: an engine over a `MemoryStore` driven by a `ManualClock`.

use std::collections::BTreeMap;
use std::sync::Arc;

use redrive_core::api::*;
use redrive_core::{ErrorCode, SqsResult};
use redrive_engine::{Engine, EngineConfig, ManualClock, MemoryStore, RequestContext};

/// A start time on a whole second (so "the same second" is easy to reason about).
pub const T0: u64 = 1_700_000_000_000;

pub fn ctx() -> RequestContext {
    RequestContext {
        region: "us-east-1".into(),
        base_url: "http://localhost:9324".into(),
    }
}

pub struct H {
    /// In an `Arc`: `start_message_move_task` spawns runners that hold the engine.
    pub engine: Arc<Engine>,
    pub clock: Arc<ManualClock>,
    pub store: Arc<MemoryStore>,
    pub ctx: RequestContext,
}

impl H {
    pub fn new() -> Self {
        let clock = Arc::new(ManualClock::new(T0));
        let store = Arc::new(MemoryStore::new());
        H {
            engine: Arc::new(Engine::open(
                EngineConfig::default(),
                store.clone(),
                clock.clone(),
            )),
            clock,
            store,
            ctx: ctx(),
        }
    }

    /// A "restarted" engine: same store, same clock.
    pub fn reopen(&self) -> H {
        H {
            engine: Arc::new(Engine::open(
                EngineConfig::default(),
                self.store.clone(),
                self.clock.clone(),
            )),
            clock: self.clock.clone(),
            store: self.store.clone(),
            ctx: ctx(),
        }
    }

    pub fn advance_ms(&self, ms: u64) {
        self.clock.advance_ms(ms);
    }

    pub async fn create(&self, name: &str, attrs: &[(&str, &str)]) -> String {
        self.try_create(name, attrs).await.expect("create queue")
    }

    pub async fn try_create(&self, name: &str, attrs: &[(&str, &str)]) -> SqsResult<String> {
        let input = CreateQueueInput {
            queue_name: name.into(),
            attributes: attrs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Default::default()
        };
        Ok(self.engine.create_queue(&self.ctx, input).await?.queue_url)
    }

    pub async fn send(&self, url: &str, body: &str) -> SendMessageOutput {
        self.send_input(
            SendMessageInput {
                message_body: Some(body.into()),
                ..Default::default()
            }
            .at(url),
        )
        .await
        .expect("send")
    }

    pub async fn send_delayed(&self, url: &str, body: &str, delay: i64) -> SendMessageOutput {
        self.send_input(
            SendMessageInput {
                message_body: Some(body.into()),
                delay_seconds: Some(delay),
                ..Default::default()
            }
            .at(url),
        )
        .await
        .expect("send")
    }

    pub async fn send_fifo(
        &self,
        url: &str,
        body: &str,
        group: &str,
        dedup: &str,
    ) -> SendMessageOutput {
        self.send_input(
            SendMessageInput {
                message_body: Some(body.into()),
                message_group_id: Some(group.into()),
                message_deduplication_id: Some(dedup.into()),
                ..Default::default()
            }
            .at(url),
        )
        .await
        .expect("send fifo")
    }

    pub async fn send_input(&self, input: SendMessageInput) -> SqsResult<SendMessageOutput> {
        self.engine.send_message(&self.ctx, input).await
    }

    /// Short-poll receive asking for every attribute. `vis` overrides the queue's timeout.
    pub async fn recv(&self, url: &str, max: i64, vis: Option<i64>) -> Vec<ReceivedMessage> {
        self.try_recv(url, max, vis).await.expect("receive")
    }

    pub async fn try_recv(
        &self,
        url: &str,
        max: i64,
        vis: Option<i64>,
    ) -> SqsResult<Vec<ReceivedMessage>> {
        let input = ReceiveMessageInput {
            queue_url: url.into(),
            message_system_attribute_names: vec!["All".into()],
            message_attribute_names: vec!["All".into()],
            max_number_of_messages: Some(max),
            visibility_timeout: vis,
            wait_time_seconds: Some(0),
            ..Default::default()
        };
        Ok(self
            .engine
            .receive_message(&self.ctx, input)
            .await?
            .messages)
    }

    pub async fn delete(&self, url: &str, handle: &str) -> SqsResult<()> {
        self.engine
            .delete_message(
                &self.ctx,
                DeleteMessageInput {
                    queue_url: url.into(),
                    receipt_handle: Some(handle.into()),
                },
            )
            .await
    }

    pub async fn change_vis(&self, url: &str, handle: &str, secs: i64) -> SqsResult<()> {
        self.engine
            .change_message_visibility(
                &self.ctx,
                ChangeMessageVisibilityInput {
                    queue_url: url.into(),
                    receipt_handle: Some(handle.into()),
                    visibility_timeout: Some(secs),
                },
            )
            .await
    }

    pub async fn set_attrs(&self, url: &str, attrs: &[(&str, &str)]) {
        self.engine
            .set_queue_attributes(
                &self.ctx,
                SetQueueAttributesInput {
                    queue_url: url.into(),
                    attributes: attrs
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                },
            )
            .await
            .expect("set attributes");
    }

    pub async fn purge(&self, url: &str) -> SqsResult<()> {
        self.engine
            .purge_queue(
                &self.ctx,
                QueueUrlInput {
                    queue_url: url.into(),
                },
            )
            .await
    }

    pub fn attrs(&self, url: &str) -> BTreeMap<String, String> {
        self.engine
            .get_queue_attributes(
                &self.ctx,
                GetQueueAttributesInput {
                    queue_url: url.into(),
                    attribute_names: vec!["All".into()],
                },
            )
            .expect("get attributes")
            .attributes
    }

    /// (ApproximateNumberOfMessages, ...NotVisible, ...Delayed).
    pub fn counts(&self, url: &str) -> (u64, u64, u64) {
        let a = self.attrs(url);
        let n = |k: &str| a[k].parse::<u64>().expect("count");
        (
            n("ApproximateNumberOfMessages"),
            n("ApproximateNumberOfMessagesNotVisible"),
            n("ApproximateNumberOfMessagesDelayed"),
        )
    }

    pub fn arn(&self, url: &str) -> String {
        self.attrs(url)["QueueArn"].clone()
    }
}

pub trait AtUrl {
    fn at(self, url: &str) -> Self;
}

impl AtUrl for SendMessageInput {
    fn at(mut self, url: &str) -> Self {
        self.queue_url = url.into();
        self
    }
}

pub fn redrive_policy(dlq_arn: &str, max_receive_count: u32) -> String {
    serde_json::json!({
        "deadLetterTargetArn": dlq_arn,
        "maxReceiveCount": max_receive_count.to_string(),
    })
    .to_string()
}

#[track_caller]
pub fn assert_code<T: std::fmt::Debug>(r: SqsResult<T>, code: ErrorCode) {
    match r {
        Err(e) => assert_eq!(e.code, code, "unexpected error: {e}"),
        Ok(v) => panic!("expected {code:?}, got Ok({v:?})"),
    }
}

pub fn bodies(ms: &[ReceivedMessage]) -> Vec<&str> {
    ms.iter().map(|m| m.body.as_str()).collect()
}
