//! Issue 20 point 4: FIFO rules as recorded on AWS (LocalStack's AWS-validated snapshots):
//! PurgeQueue clears the deduplication cache; a FIFO message sent with `DelaySeconds=0` still
//! gets the queue's delay (FIFO has no per-message delay); switching to high throughput by
//! SetQueueAttributes; a batch entry without `MessageGroupId` is `InvalidParameterValue`.

use aws_sdk_sqs::types::{QueueAttributeName, SendMessageBatchRequestEntry};

use crate::common::*;
use crate::expect_err;

async fn send(ts: &TestServer, url: &str, body: &str, group: &str, dedup: &str) -> String {
    ts.client
        .send_message()
        .queue_url(url)
        .message_body(body)
        .message_group_id(group)
        .message_deduplication_id(dedup)
        .send()
        .await
        .unwrap_or_else(|e| panic!("send {body}: {}", describe(&e)))
        .message_id
        .unwrap()
}

#[tokio::test]
async fn purge_clears_the_deduplication_cache() {
    let ts = TestServer::start().await;
    let url = ts
        .create_with("fr-purge.fifo", &[("FifoQueue", "true")])
        .await;
    let first = send(&ts, &url, "a", "g", "d1").await;
    ts.client
        .purge_queue()
        .queue_url(&url)
        .send()
        .await
        .unwrap();
    assert_eq!(ts.counts(&url).await, (0, 0, 0));
    // The same dedup id right after the purge is a new message, delivered.
    let second = send(&ts, &url, "a", "g", "d1").await;
    assert_ne!(first, second);
    let got = ts.receive(&url, 10, None).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].message_id(), Some(second.as_str()));
}

#[tokio::test]
async fn fifo_delay_seconds_zero_keeps_the_queue_delay() {
    let ts = TestServer::start().await;
    let url = ts
        .create_with(
            "fr-delay.fifo",
            &[("FifoQueue", "true"), ("DelaySeconds", "2")],
        )
        .await;
    ts.client
        .send_message()
        .queue_url(&url)
        .message_body("m")
        .message_group_id("g")
        .message_deduplication_id("m")
        .delay_seconds(0)
        .send()
        .await
        .unwrap();
    assert_eq!(ts.counts(&url).await, (0, 0, 1), "delayed by the queue");
    assert!(ts.receive(&url, 1, None).await.is_empty());
    // Standard queues do honour a per-message 0.
    let std_url = ts
        .create_with("fr-delay-std", &[("DelaySeconds", "2")])
        .await;
    ts.client
        .send_message()
        .queue_url(&std_url)
        .message_body("m")
        .delay_seconds(0)
        .send()
        .await
        .unwrap();
    assert_eq!(ts.receive(&std_url, 1, None).await.len(), 1);
}

#[tokio::test]
async fn switching_to_high_throughput_by_set_queue_attributes() {
    let ts = TestServer::start().await;
    let url = ts.create_with("fr-ht.fifo", &[("FifoQueue", "true")]).await;
    ts.client
        .set_queue_attributes()
        .queue_url(&url)
        .attributes(QueueAttributeName::DeduplicationScope, "messageGroup")
        .attributes(QueueAttributeName::FifoThroughputLimit, "perMessageGroupId")
        .send()
        .await
        .unwrap();
    let attrs = ts
        .attrs(&url, &["DeduplicationScope", "FifoThroughputLimit"])
        .await;
    assert_eq!(attrs["DeduplicationScope"], "messageGroup");
    assert_eq!(attrs["FifoThroughputLimit"], "perMessageGroupId");
    // Deduplication is per group from now on: the same id in two groups is two messages.
    send(&ts, &url, "g1-m1", "g1", "same").await;
    send(&ts, &url, "g2-m1", "g2", "same").await;
    send(&ts, &url, "g1-m2", "g1", "other").await;
    let got = ts.receive(&url, 10, None).await;
    let bodies: Vec<_> = got.iter().map(|m| m.body().unwrap()).collect();
    assert_eq!(bodies, ["g1-m1", "g2-m1", "g1-m2"]);
}

#[tokio::test]
async fn batch_entry_without_group_is_invalid_parameter_value() {
    let ts = TestServer::start().await;
    let url = ts
        .create_with("fr-batch.fifo", &[("FifoQueue", "true")])
        .await;
    let entry = |id: &str, group: Option<&str>| {
        SendMessageBatchRequestEntry::builder()
            .id(id)
            .message_body("b")
            .message_deduplication_id(id)
            .set_message_group_id(group.map(str::to_string))
            .build()
            .unwrap()
    };
    let (code, status, message) = expect_err!(
        ts.client
            .send_message_batch()
            .queue_url(&url)
            .entries(entry("a", Some("g")))
            .entries(entry("b", None))
            .send()
    );
    assert_eq!((code.as_str(), status), ("InvalidParameterValue", 400));
    assert_eq!(
        message,
        "The request must contain the parameter MessageGroupId."
    );
    assert_eq!(ts.counts(&url).await, (0, 0, 0));
}
