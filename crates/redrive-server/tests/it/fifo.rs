//! FIFO basics: group ids, ordering, group locking, deduplication, sequence numbers.

use aws_sdk_sqs::types::SendMessageBatchRequestEntry;

use crate::common::*;
use crate::expect_err;

async fn fifo(ts: &TestServer, name: &str, extra: &[(&str, &str)]) -> String {
    let mut attrs = vec![("FifoQueue", "true")];
    attrs.extend_from_slice(extra);
    ts.create_with(name, &attrs).await
}

async fn send_fifo(
    ts: &TestServer,
    url: &str,
    body: &str,
    group: &str,
    dedup: &str,
) -> (String, String) {
    let out = ts
        .client
        .send_message()
        .queue_url(url)
        .message_body(body)
        .message_group_id(group)
        .message_deduplication_id(dedup)
        .send()
        .await
        .unwrap_or_else(|e| panic!("fifo send: {}", describe(&e)));
    (
        out.message_id().unwrap().to_string(),
        out.sequence_number().expect("SequenceNumber").to_string(),
    )
}

#[tokio::test]
async fn fifo_queue_attributes() {
    let ts = TestServer::start().await;
    let url = fifo(&ts, "x.fifo", &[]).await;
    assert_eq!(url, ts.queue_url("x.fifo"));
    let a = ts.attrs(&url, &["All"]).await;
    assert_eq!(a["FifoQueue"], "true");
    assert_eq!(a["ContentBasedDeduplication"], "false");
    assert_eq!(a["QueueArn"], TestServer::arn("x.fifo"));
}

#[tokio::test]
async fn send_without_message_group_id_is_missing_parameter() {
    let ts = TestServer::start().await;
    let url = fifo(&ts, "nogroup.fifo", &[]).await;
    let (code, status, _) = expect_err!(
        ts.client
            .send_message()
            .queue_url(&url)
            .message_body("x")
            .message_deduplication_id("d")
            .send()
    );
    assert_eq!(code, "MissingParameter");
    assert_eq!(status, 400);
    // No dedup id and no content-based deduplication.
    let (code, _, _) = expect_err!(
        ts.client
            .send_message()
            .queue_url(&url)
            .message_body("x")
            .message_group_id("g")
            .send()
    );
    assert_eq!(code, "InvalidParameterValue");
    // Per-message delays are not allowed on FIFO queues.
    let (code, _, _) = expect_err!(
        ts.client
            .send_message()
            .queue_url(&url)
            .message_body("x")
            .message_group_id("g")
            .message_deduplication_id("d")
            .delay_seconds(1)
            .send()
    );
    assert_eq!(code, "InvalidParameterValue");
    assert_eq!(ts.counts(&url).await, (0, 0, 0));
}

#[tokio::test]
async fn order_within_a_group_and_increasing_sequence_numbers() {
    let ts = TestServer::start().await;
    let url = fifo(&ts, "order.fifo", &[]).await;
    let mut seqs = Vec::new();
    for i in 0..5 {
        let (_, seq) = send_fifo(&ts, &url, &format!("m{i}"), "g", &format!("d{i}")).await;
        assert!(
            seq.len() <= 40 && seq.bytes().all(|b| b.is_ascii_digit()),
            "{seq}"
        );
        seqs.push(seq.parse::<u128>().unwrap());
    }
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    for (i, want_seq) in seqs.iter().enumerate() {
        let got = ts.receive(&url, 1, None).await;
        assert_eq!(got.len(), 1, "message {i}");
        assert_eq!(got[0].body(), Some(format!("m{i}").as_str()));
        assert_eq!(
            sys_attr(&got[0], "SequenceNumber"),
            Some(want_seq.to_string())
        );
        assert_eq!(sys_attr(&got[0], "MessageGroupId").as_deref(), Some("g"));
        assert_eq!(
            sys_attr(&got[0], "MessageDeduplicationId"),
            Some(format!("d{i}"))
        );
        ts.client
            .delete_message()
            .queue_url(&url)
            .receipt_handle(got[0].receipt_handle().unwrap())
            .send()
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn batch_keeps_order_within_group() {
    let ts = TestServer::start().await;
    let url = fifo(&ts, "batchorder.fifo", &[]).await;
    let entries = (0..5)
        .map(|i| {
            SendMessageBatchRequestEntry::builder()
                .id(format!("e{i}"))
                .message_body(format!("b{i}"))
                .message_group_id("g")
                .message_deduplication_id(format!("bd{i}"))
                .build()
                .unwrap()
        })
        .collect();
    let out = ts
        .client
        .send_message_batch()
        .queue_url(&url)
        .set_entries(Some(entries))
        .send()
        .await
        .unwrap();
    assert_eq!(out.successful().len(), 5);
    let mut bodies = Vec::new();
    for _ in 0..5 {
        let got = ts.receive(&url, 10, None).await;
        for m in &got {
            bodies.push(m.body().unwrap().to_string());
            ts.client
                .delete_message()
                .queue_url(&url)
                .receipt_handle(m.receipt_handle().unwrap())
                .send()
                .await
                .unwrap();
        }
        if bodies.len() == 5 {
            break;
        }
    }
    assert_eq!(bodies, ["b0", "b1", "b2", "b3", "b4"]);
}

#[tokio::test]
async fn group_is_locked_while_a_message_is_in_flight() {
    let ts = TestServer::start().await;
    let url = fifo(&ts, "lock.fifo", &[]).await;
    send_fifo(&ts, &url, "a1", "A", "a1").await;
    send_fifo(&ts, &url, "a2", "A", "a2").await;
    send_fifo(&ts, &url, "b1", "B", "b1").await;

    let first = ts.receive(&url, 1, Some(60)).await;
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].body(), Some("a1"));
    // Group A is locked: only B's message comes back.
    let second = ts.receive(&url, 10, Some(60)).await;
    let bodies: Vec<&str> = second.iter().filter_map(|m| m.body()).collect();
    assert_eq!(bodies, ["b1"]);
    assert!(ts.receive(&url, 10, Some(60)).await.is_empty());

    ts.client
        .delete_message()
        .queue_url(&url)
        .receipt_handle(first[0].receipt_handle().unwrap())
        .send()
        .await
        .unwrap();
    let third = ts.receive(&url, 10, Some(60)).await;
    let bodies: Vec<&str> = third.iter().filter_map(|m| m.body()).collect();
    assert_eq!(bodies, ["a2"]);
}

#[tokio::test]
async fn explicit_deduplication_id_suppresses_duplicates() {
    let ts = TestServer::start().await;
    let url = fifo(&ts, "dedup.fifo", &[]).await;
    let (id1, seq1) = send_fifo(&ts, &url, "once", "g", "same-id").await;
    let (id2, seq2) = send_fifo(&ts, &url, "different body", "g", "same-id").await;
    assert_eq!(id1, id2);
    assert_eq!(seq1, seq2);
    let got = ts.receive(&url, 10, None).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].body(), Some("once"));
    // Still a duplicate after the original was received and deleted.
    ts.client
        .delete_message()
        .queue_url(&url)
        .receipt_handle(got[0].receipt_handle().unwrap())
        .send()
        .await
        .unwrap();
    let (id3, _) = send_fifo(&ts, &url, "once", "g", "same-id").await;
    assert_eq!(id3, id1);
    assert!(ts.receive(&url, 10, None).await.is_empty());
    assert_eq!(ts.counts(&url).await, (0, 0, 0));
}

#[tokio::test]
async fn content_based_deduplication_uses_the_body() {
    let ts = TestServer::start().await;
    let url = fifo(&ts, "cbd.fifo", &[("ContentBasedDeduplication", "true")]).await;
    let send = |body: &'static str| {
        ts.client
            .send_message()
            .queue_url(&url)
            .message_body(body)
            .message_group_id("g")
            .send()
    };
    let a = send("same body").await.unwrap();
    let b = send("same body").await.unwrap();
    let c = send("other body").await.unwrap();
    assert_eq!(a.message_id(), b.message_id());
    assert_ne!(a.message_id(), c.message_id());
    let mut bodies = Vec::new();
    for _ in 0..3 {
        for m in ts.receive(&url, 10, None).await {
            bodies.push(m.body().unwrap().to_string());
            ts.client
                .delete_message()
                .queue_url(&url)
                .receipt_handle(m.receipt_handle().unwrap())
                .send()
                .await
                .unwrap();
        }
    }
    assert_eq!(bodies, ["same body", "other body"]);
}

#[tokio::test]
async fn fifo_only_attributes_rejected_on_standard_queue() {
    let ts = TestServer::start().await;
    let url = ts.create("std").await;
    let (code, _, _) = expect_err!(
        ts.client
            .set_queue_attributes()
            .queue_url(&url)
            .attributes(
                aws_sdk_sqs::types::QueueAttributeName::ContentBasedDeduplication,
                "true"
            )
            .send()
    );
    assert_eq!(code, "InvalidAttributeName");
}
