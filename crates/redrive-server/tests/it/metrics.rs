//! `GET /metrics`, parsed with a Prometheus text parser (prometheus-parse): per-queue gauges
//! equal GetQueueAttributes at the same moment, counters equal the operations the test
//! performed, request counts and error codes per action.

use std::collections::HashMap;

use aws_sdk_sqs::types::{QueueAttributeName, SendMessageBatchRequestEntry};
use prometheus_parse::{Sample, Scrape, Value};

use crate::common::TestServer;

struct Metrics(Vec<Sample>);

impl Metrics {
    async fn scrape(s: &TestServer) -> Metrics {
        let r = s
            .http
            .get(format!("{}/metrics", s.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        let ct = r.headers()["content-type"].to_str().unwrap().to_string();
        assert!(ct.starts_with("application/openmetrics-text"), "{ct}");
        let text = r.text().await.unwrap();
        assert!(
            text.trim_end().ends_with("# EOF"),
            "OpenMetrics ends with # EOF"
        );
        let scrape = Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap();
        Metrics(scrape.samples)
    }

    /// The value of `name` with exactly these labels (0 when absent).
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let found: Vec<&Sample> = self
            .0
            .iter()
            .filter(|s| s.metric == name)
            .filter(|s| {
                labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v))
                    && s.labels.len() == labels.len()
            })
            .collect();
        assert!(
            found.len() <= 1,
            "{name} {labels:?}: {} samples",
            found.len()
        );
        match found.first().map(|s| &s.value) {
            None => 0.0,
            Some(Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v)) => *v,
            Some(other) => panic!("{name}: unexpected {other:?}"),
        }
    }

    fn queue(&self, name: &str, queue: &str) -> u64 {
        self.get(name, &[("queue", queue)]) as u64
    }

    fn histogram_count(&self, name: &str, action: &str) -> f64 {
        self.0
            .iter()
            .filter(|s| s.metric == name && s.labels.get("action") == Some(action))
            .find_map(|s| match &s.value {
                Value::Histogram(buckets) => buckets
                    .iter()
                    .find(|b| b.less_than.is_infinite())
                    .map(|b| b.count),
                _ => None,
            })
            .unwrap_or(0.0)
    }
}

async fn attributes(s: &TestServer, url: &str) -> HashMap<String, u64> {
    let out = s
        .client
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::All)
        .send()
        .await
        .unwrap();
    out.attributes()
        .unwrap()
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_string(), v.parse().ok()?)))
        .collect()
}

#[tokio::test]
async fn queue_gauges_and_counters_match_the_operations() {
    let s = TestServer::start().await;
    let dlq = s.create("metrics-dlq").await;
    let policy = serde_json::json!({
        "deadLetterTargetArn": TestServer::arn("metrics-dlq"),
        "maxReceiveCount": "1",
    })
    .to_string();
    let src = s
        .create_with(
            "metrics-src",
            &[("RedrivePolicy", &policy), ("VisibilityTimeout", "30")],
        )
        .await;
    let fifo = s
        .create_with(
            "metrics.fifo",
            &[("FifoQueue", "true"), ("ContentBasedDeduplication", "true")],
        )
        .await;

    // 5 single sends and a batch of 3 (bodies of known size, no attributes).
    let mut bytes = 0;
    for i in 0..5 {
        let body = format!("message-{i}");
        bytes += body.len();
        s.client
            .send_message()
            .queue_url(&src)
            .message_body(body)
            .send()
            .await
            .unwrap();
    }
    let mut batch = s.client.send_message_batch().queue_url(&src);
    for i in 0..3 {
        let body = format!("batch-{i}");
        bytes += body.len();
        batch = batch.entries(
            SendMessageBatchRequestEntry::builder()
                .id(format!("e{i}"))
                .message_body(body)
                .build()
                .unwrap(),
        );
    }
    batch.send().await.unwrap();
    // FIFO: the same body twice within 5 minutes is deduplicated.
    for _ in 0..2 {
        s.client
            .send_message()
            .queue_url(&fifo)
            .message_body("once")
            .message_group_id("g")
            .send()
            .await
            .unwrap();
    }
    // Receive 4 for 30 s, delete 2 of them; two empty receives on the DLQ.
    let got = s
        .client
        .receive_message()
        .queue_url(&src)
        .max_number_of_messages(4)
        .send()
        .await
        .unwrap();
    let got = got.messages();
    assert_eq!(got.len(), 4);
    for m in &got[..2] {
        s.client
            .delete_message()
            .queue_url(&src)
            .receipt_handle(m.receipt_handle().unwrap())
            .send()
            .await
            .unwrap();
    }
    for _ in 0..2 {
        let r = s
            .client
            .receive_message()
            .queue_url(&dlq)
            .send()
            .await
            .unwrap();
        assert!(r.messages().is_empty());
    }
    // The two received and not deleted come back at once and move to the DLQ on the next
    // receive (maxReceiveCount 1); that receive also hands out the 4 never received.
    for m in &got[2..] {
        s.client
            .change_message_visibility()
            .queue_url(&src)
            .receipt_handle(m.receipt_handle().unwrap())
            .visibility_timeout(0)
            .send()
            .await
            .unwrap();
    }
    let second = s
        .client
        .receive_message()
        .queue_url(&src)
        .max_number_of_messages(10)
        .send()
        .await
        .unwrap();
    assert_eq!(second.messages().len(), 4);
    // One error: a queue that does not exist.
    let _ = s
        .client
        .send_message()
        .queue_url(s.queue_url("metrics-none"))
        .message_body("x")
        .send()
        .await
        .expect_err("no such queue");

    let m = Metrics::scrape(&s).await;
    for (queue, url) in [
        ("metrics-src", &src),
        ("metrics-dlq", &dlq),
        ("metrics.fifo", &fifo),
    ] {
        let a = attributes(&s, url).await;
        assert_eq!(
            m.queue("sqs_queue_messages_visible", queue),
            a["ApproximateNumberOfMessages"],
            "{queue}"
        );
        assert_eq!(
            m.queue("sqs_queue_messages_not_visible", queue),
            a["ApproximateNumberOfMessagesNotVisible"],
            "{queue}"
        );
        assert_eq!(
            m.queue("sqs_queue_messages_delayed", queue),
            a["ApproximateNumberOfMessagesDelayed"],
            "{queue}"
        );
    }
    assert_eq!(m.queue("sqs_queue_messages_not_visible", "metrics-src"), 4);
    assert_eq!(m.queue("sqs_queue_messages_visible", "metrics-dlq"), 2);
    assert_eq!(m.queue("sqs_queue_messages_sent_total", "metrics-src"), 8);
    assert_eq!(
        m.queue("sqs_queue_sent_message_bytes_total", "metrics-src"),
        bytes as u64
    );
    assert_eq!(
        m.queue("sqs_queue_messages_received_total", "metrics-src"),
        8
    );
    assert_eq!(
        m.queue("sqs_queue_messages_deleted_total", "metrics-src"),
        2
    );
    assert_eq!(
        m.queue("sqs_queue_messages_moved_to_dlq_total", "metrics-src"),
        2
    );
    assert_eq!(
        m.queue("sqs_queue_dead_letter_arrivals_total", "metrics-dlq"),
        2
    );
    assert_eq!(m.queue("sqs_queue_empty_receives_total", "metrics-dlq"), 2);
    assert_eq!(m.queue("sqs_queue_empty_receives_total", "metrics-src"), 0);
    assert_eq!(m.queue("sqs_queue_messages_sent_total", "metrics.fifo"), 1);
    assert_eq!(
        m.queue("sqs_queue_deduplicated_sent_messages_total", "metrics.fifo"),
        1
    );
    assert_eq!(
        m.queue("sqs_queue_groups_with_inflight_messages", "metrics.fifo"),
        0
    );
    // Requests per action (the SDK calls above, plus the GetQueueAttributes reads), errors by
    // code, and one latency observation per request.
    let sends = m.get("redrive_requests_total", &[("action", "SendMessage")]);
    assert_eq!(sends, 8.0, "5 + 2 FIFO + 1 failed");
    assert_eq!(
        m.get("redrive_requests_total", &[("action", "DeleteMessage")]),
        2.0
    );
    assert_eq!(
        m.get(
            "redrive_request_errors_total",
            &[("action", "SendMessage"), ("code", "QueueDoesNotExist")]
        ),
        1.0
    );
    assert_eq!(
        m.histogram_count("redrive_request_duration_seconds", "SendMessage"),
        sends
    );
}

#[tokio::test]
async fn age_of_oldest_message_and_fifo_groups_in_flight() {
    let s = TestServer::start().await;
    let fifo = s
        .create_with(
            "age.fifo",
            &[("FifoQueue", "true"), ("ContentBasedDeduplication", "true")],
        )
        .await;
    for (g, body) in [("a", "1"), ("b", "2"), ("b", "3")] {
        s.client
            .send_message()
            .queue_url(&fifo)
            .message_body(body)
            .message_group_id(g)
            .send()
            .await
            .unwrap();
    }
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let got = s
        .client
        .receive_message()
        .queue_url(&fifo)
        .max_number_of_messages(10)
        .visibility_timeout(60)
        .send()
        .await
        .unwrap();
    assert_eq!(got.messages().len(), 3, "round-robin: both groups");
    let m = Metrics::scrape(&s).await;
    assert_eq!(
        m.queue("sqs_queue_groups_with_inflight_messages", "age.fifo"),
        2
    );
    let age = m.queue("sqs_queue_oldest_message_age_seconds", "age.fifo");
    assert!((2..10).contains(&age), "age {age}");
    let empty = s.create("age-empty").await;
    let _ = empty;
    let m = Metrics::scrape(&s).await;
    assert_eq!(
        m.queue("sqs_queue_oldest_message_age_seconds", "age-empty"),
        0
    );
}

/// `--metrics off` (the A/B switch of the overhead benchmark): no per-request observations;
/// the queue gauges and counters are still served. (That the history task is not spawned is
/// one `if` in `Server::bind_with_engine`; its minute cadence makes it untestable here.)
#[tokio::test]
async fn metrics_off_skips_request_observations_and_history() {
    let server = redrive_server::Server::bind(redrive_server::ServerConfig {
        port: 0,
        metrics_enabled: false,
        ..Default::default()
    })
    .await
    .unwrap();
    let s = TestServer::from_server(server);
    let url = s.create("quiet").await;
    s.send(&url, "one").await;
    let m = Metrics::scrape(&s).await;
    assert_eq!(
        m.get("redrive_requests_total", &[("action", "SendMessage")]),
        0.0
    );
    assert_eq!(m.queue("sqs_queue_messages_visible", "quiet"), 1);
}
