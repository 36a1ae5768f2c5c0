//! The testkit used the way a consumer's test would: a queue file with a FIFO queue, a standard
//! queue declared before its DLQ, tags and a redrive allow policy, read back through the
//! official SDK.

use aws_sdk_sqs::types::QueueAttributeName;
use redrive_testkit::RedriveServer;

const QUEUES: &str = r#"
[[queue]]
name = "orders"
visibility_timeout = 20
dead_letter_queue = { name = "orders-dlq", max_receive_count = 2 }
tags = { team = "payments" }

[[queue]]
name = "orders-dlq"
redrive_allow_policy = { permission = "byQueue", source_queues = ["orders"] }

[[queue]]
name = "audit.fifo"
content_based_deduplication = true
"#;

#[tokio::test]
async fn queues_from_a_file_read_back_through_the_sdk() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("queues.toml");
    std::fs::write(&file, QUEUES).unwrap();
    let sqs = RedriveServer::start_with_queues(&file).await.unwrap();
    let c = &sqs.client;

    let urls = c.list_queues().send().await.unwrap().queue_urls.unwrap();
    assert_eq!(urls.len(), 3);
    let orders = c
        .get_queue_url()
        .queue_name("orders")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    assert_eq!(orders, sqs.queue_url("orders"));
    let attrs = c
        .get_queue_attributes()
        .queue_url(&orders)
        .attribute_names(QueueAttributeName::All)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap();
    assert_eq!(attrs[&QueueAttributeName::VisibilityTimeout], "20");
    assert!(attrs[&QueueAttributeName::RedrivePolicy].contains("orders-dlq"));
    let tags = c
        .list_queue_tags()
        .queue_url(&orders)
        .send()
        .await
        .unwrap()
        .tags
        .unwrap();
    assert_eq!(tags["team"], "payments");
    let sources = c
        .list_dead_letter_source_queues()
        .queue_url(sqs.queue_url("orders-dlq"))
        .send()
        .await
        .unwrap()
        .queue_urls;
    assert_eq!(sources, vec![orders.clone()]);
    let fifo = c
        .get_queue_attributes()
        .queue_url(sqs.queue_url("audit.fifo"))
        .attribute_names(QueueAttributeName::FifoQueue)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap();
    assert_eq!(fifo[&QueueAttributeName::FifoQueue], "true");

    // And the server is a real SQS: a message round-trips.
    c.send_message()
        .queue_url(&orders)
        .message_body("hello")
        .send()
        .await
        .unwrap();
    let got = c
        .receive_message()
        .queue_url(&orders)
        .send()
        .await
        .unwrap()
        .messages
        .unwrap();
    assert_eq!(got[0].body(), Some("hello"));
}
