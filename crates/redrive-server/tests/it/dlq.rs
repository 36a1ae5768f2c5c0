//! Dead-letter queues: ListDeadLetterSourceQueues and the lazy move on receive.

use std::collections::HashMap;

use aws_sdk_sqs::types::QueueAttributeName;

use crate::common::*;

fn policy(dlq: &str, max: u32) -> String {
    format!(
        r#"{{"deadLetterTargetArn":"{}","maxReceiveCount":{max}}}"#,
        TestServer::arn(dlq)
    )
}

#[tokio::test]
async fn list_dead_letter_source_queues_returns_only_own_sources() {
    let ts = TestServer::start().await;
    let dlq = ts.create("dlq-a").await;
    let dlq_b = ts.create("dlq-b").await;
    let src = ts
        .create_with("src-1", &[("RedrivePolicy", &policy("dlq-a", 3))])
        .await;
    let src2 = ts.create("src-2").await;
    ts.client
        .set_queue_attributes()
        .queue_url(&src2)
        .attributes(QueueAttributeName::RedrivePolicy, policy("dlq-a", 5))
        .send()
        .await
        .unwrap();
    let other = ts
        .create_with("elsewhere", &[("RedrivePolicy", &policy("dlq-b", 3))])
        .await;
    ts.create("unrelated").await;

    let out = ts
        .client
        .list_dead_letter_source_queues()
        .queue_url(&dlq)
        .send()
        .await
        .unwrap();
    let mut got: Vec<String> = out.queue_urls().to_vec();
    got.sort();
    assert_eq!(got, [src.clone(), src2.clone()]);
    assert_eq!(out.next_token(), None);

    let out = ts
        .client
        .list_dead_letter_source_queues()
        .queue_url(&dlq_b)
        .send()
        .await
        .unwrap();
    assert_eq!(out.queue_urls(), [other]);

    // Paging.
    let page = ts
        .client
        .list_dead_letter_source_queues()
        .queue_url(&dlq)
        .max_results(1)
        .send()
        .await
        .unwrap();
    assert_eq!(page.queue_urls().len(), 1);
    let token = page.next_token().expect("NextToken").to_string();
    let page2 = ts
        .client
        .list_dead_letter_source_queues()
        .queue_url(&dlq)
        .max_results(1)
        .next_token(token)
        .send()
        .await
        .unwrap();
    assert_eq!(page2.queue_urls().len(), 1);
    assert_ne!(page.queue_urls(), page2.queue_urls());
    assert_eq!(page2.next_token(), None);

    // A queue that is nobody's DLQ has no sources.
    let none = ts
        .client
        .list_dead_letter_source_queues()
        .queue_url(&src)
        .send()
        .await
        .unwrap();
    assert!(none.queue_urls().is_empty());
}

#[tokio::test]
async fn message_moves_lazily_to_dlq_keeping_identity() {
    let ts = TestServer::start().await;
    let dlq = ts.create("dead").await;
    let src = ts
        .create_with("live", &[("RedrivePolicy", &policy("dead", 1))])
        .await;
    let mut attrs = HashMap::new();
    attrs.insert("kind".to_string(), string_attr("String", "order"));
    attrs.insert("blob".to_string(), binary_attr("Binary", &[9, 8, 7]));
    let sent = ts
        .client
        .send_message()
        .queue_url(&src)
        .message_body("poison")
        .set_message_attributes(Some(attrs.clone()))
        .send()
        .await
        .unwrap();
    let id = sent.message_id().unwrap().to_string();

    let first = ts.receive(&src, 1, Some(0)).await;
    assert_eq!(first.len(), 1);
    assert_eq!(
        sys_attr(&first[0], "ApproximateReceiveCount").as_deref(),
        Some("1")
    );
    let sent_ts = sys_attr(&first[0], "SentTimestamp").unwrap();

    // Not moved at visibility expiry: the DLQ stays empty until the source is polled.
    assert_eq!(ts.counts(&dlq).await, (0, 0, 0));
    assert_eq!(ts.counts(&src).await, (1, 0, 0));

    // The next receive moves it instead of returning it.
    let second = ts.receive(&src, 10, Some(0)).await;
    assert!(second.is_empty(), "moved message was returned: {second:?}");
    assert_eq!(ts.counts(&src).await, (0, 0, 0));
    assert_eq!(ts.counts(&dlq).await, (1, 0, 0));

    let moved = ts.receive(&dlq, 1, None).await;
    assert_eq!(moved.len(), 1);
    let m = &moved[0];
    assert_eq!(m.message_id(), Some(id.as_str()));
    assert_eq!(m.body(), Some("poison"));
    assert_eq!(m.md5_of_body(), Some(md5_hex(b"poison").as_str()));
    assert_eq!(m.message_attributes().cloned().unwrap_or_default(), attrs);
    assert_eq!(
        m.md5_of_message_attributes(),
        Some(md5_of_attributes(&attrs).as_str())
    );
    assert_eq!(sys_attr(m, "ApproximateReceiveCount").as_deref(), Some("2"));
    assert_eq!(sys_attr(m, "SentTimestamp"), Some(sent_ts));
    assert_eq!(
        sys_attr(m, "DeadLetterQueueSourceArn"),
        Some(TestServer::arn("live"))
    );
}

#[tokio::test]
async fn messages_under_max_receive_count_stay_in_source() {
    let ts = TestServer::start().await;
    let dlq = ts.create("dead3").await;
    let src = ts
        .create_with("live3", &[("RedrivePolicy", &policy("dead3", 3))])
        .await;
    ts.send(&src, "retry me").await;
    for n in 1..=3 {
        let got = ts.receive(&src, 1, Some(0)).await;
        assert_eq!(got.len(), 1, "receive {n}");
        assert_eq!(
            sys_attr(&got[0], "ApproximateReceiveCount"),
            Some(n.to_string())
        );
    }
    assert_eq!(ts.counts(&dlq).await, (0, 0, 0));
    assert!(ts.receive(&src, 1, Some(0)).await.is_empty());
    assert_eq!(ts.counts(&dlq).await, (1, 0, 0));
    let m = ts.receive(&dlq, 1, None).await;
    assert_eq!(
        sys_attr(&m[0], "ApproximateReceiveCount").as_deref(),
        Some("4")
    );
}
