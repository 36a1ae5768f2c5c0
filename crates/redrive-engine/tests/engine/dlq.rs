//! The lazy move to the dead-letter queue (sqs-semantics.md §11), under a manual clock.

use redrive_core::api::{MessageAttributeValue, SendMessageInput};

use crate::common::*;

fn string_attr(v: &str) -> MessageAttributeValue {
    MessageAttributeValue {
        string_value: Some(v.into()),
        data_type: "String".into(),
        ..Default::default()
    }
}

/// A standard source (VisibilityTimeout 30 s, maxReceiveCount `max`) and its DLQ.
async fn standard_pair(h: &H, max: u32, retention: &str) -> (String, String) {
    let dlq = h
        .create("dlq", &[("MessageRetentionPeriod", retention)])
        .await;
    let policy = redrive_policy(&h.arn(&dlq), max);
    let src = h
        .create(
            "src",
            &[
                ("VisibilityTimeout", "30"),
                ("MessageRetentionPeriod", retention),
                ("RedrivePolicy", &policy),
            ],
        )
        .await;
    (src, dlq)
}

#[tokio::test]
async fn standard_move_is_lazy_and_keeps_identity() {
    let h = H::new();
    let (src, dlq) = standard_pair(&h, 2, "345600").await;
    let mut input = SendMessageInput {
        message_body: Some("payload".into()),
        ..Default::default()
    }
    .at(&src);
    input
        .message_attributes
        .insert("color".into(), string_attr("blue"));
    input
        .message_system_attributes
        .insert("AWSTraceHeader".into(), string_attr("Root=1-abc-def"));
    let sent = h.send_input(input).await.unwrap();
    h.send(&src, "other").await;

    h.advance_ms(1_000);
    let r1 = h.recv(&src, 1, None).await;
    assert_eq!(r1[0].message_id, sent.message_id);
    assert_eq!(r1[0].attributes["ApproximateReceiveCount"], "1");
    h.advance_ms(30_000);
    let r2 = h.recv(&src, 1, None).await;
    assert_eq!(r2[0].message_id, sent.message_id);
    assert_eq!(r2[0].attributes["ApproximateReceiveCount"], "2");
    h.advance_ms(30_000);

    // Not moved at visibility expiry: still counted as visible in the source.
    assert_eq!(h.counts(&src), (2, 0, 0));
    assert_eq!(h.counts(&dlq), (0, 0, 0));

    // The third receive moves it, and returns the next message instead.
    let r3 = h.recv(&src, 1, None).await;
    assert_eq!(bodies(&r3), ["other"]);
    assert_eq!(h.counts(&src), (0, 1, 0));
    assert_eq!(h.counts(&dlq), (1, 0, 0));

    let d = h.recv(&dlq, 10, None).await;
    assert_eq!(d.len(), 1);
    let d = &d[0];
    assert_eq!(d.message_id, sent.message_id);
    assert_eq!(d.body, "payload");
    assert_eq!(d.md5_of_body, sent.md5_of_message_body);
    assert_eq!(d.message_attributes["color"], string_attr("blue"));
    assert_eq!(d.md5_of_message_attributes, sent.md5_of_message_attributes,);
    assert_eq!(d.attributes["SentTimestamp"], T0.to_string());
    assert_eq!(d.attributes["ApproximateReceiveCount"], "3");
    assert_eq!(
        d.attributes["ApproximateFirstReceiveTimestamp"],
        (T0 + 1_000).to_string()
    );
    assert_eq!(d.attributes["AWSTraceHeader"], "Root=1-abc-def");
    assert_eq!(d.attributes["DeadLetterQueueSourceArn"], h.arn(&src));

    // The DLQ's receipt handle deletes it there; nothing is left anywhere.
    h.delete(&dlq, &d.receipt_handle).await.unwrap();
    h.delete(&src, &r3[0].receipt_handle).await.unwrap();
    assert_eq!(h.store.message_count(), 0);
}

#[tokio::test]
async fn max_receive_count_one_reports_two_in_the_dlq() {
    let h = H::new();
    let (src, dlq) = standard_pair(&h, 1, "345600").await;
    h.send(&src, "m").await;
    h.recv(&src, 1, Some(0)).await;
    assert!(h.recv(&src, 10, None).await.is_empty());
    let d = h.recv(&dlq, 1, None).await;
    assert_eq!(d[0].attributes["ApproximateReceiveCount"], "2");
}

#[tokio::test]
async fn standard_move_keeps_the_retention_clock() {
    let h = H::new();
    let (src, dlq) = standard_pair(&h, 2, "600").await;
    h.send(&src, "m").await;
    h.recv(&src, 1, None).await;
    h.advance_ms(30_000);
    h.recv(&src, 1, None).await;
    h.advance_ms(30_000);
    assert!(h.recv(&src, 1, None).await.is_empty());
    assert_eq!(h.counts(&dlq), (1, 0, 0), "moved at t0+60s");

    h.advance_ms(600_000 - 60_000 - 1);
    assert_eq!(h.counts(&dlq), (1, 0, 0));
    h.advance_ms(2);
    assert_eq!(
        h.counts(&dlq),
        (0, 0, 0),
        "expires at original enqueue + retention"
    );
    assert_eq!(h.store.message_count(), 0);
}

#[tokio::test]
async fn fifo_move_unlocks_the_group_and_resets_retention() {
    let h = H::new();
    let dlq = h
        .create(
            "dlq.fifo",
            &[("FifoQueue", "true"), ("MessageRetentionPeriod", "600")],
        )
        .await;
    let policy = redrive_policy(&h.arn(&dlq), 2);
    let src = h
        .create(
            "src.fifo",
            &[
                ("FifoQueue", "true"),
                ("VisibilityTimeout", "30"),
                ("MessageRetentionPeriod", "600"),
                ("RedrivePolicy", &policy),
            ],
        )
        .await;
    let m1 = h.send_fifo(&src, "m1", "g", "d1").await;
    let m2 = h.send_fifo(&src, "m2", "g", "d2").await;

    assert_eq!(bodies(&h.recv(&src, 1, None).await), ["m1"]);
    assert!(h.recv(&src, 10, None).await.is_empty(), "group is locked");
    h.advance_ms(30_000);
    assert_eq!(bodies(&h.recv(&src, 1, None).await), ["m1"]);
    h.advance_ms(30_000);

    // m1 moves; the group is free, so m2 comes out of the same receive.
    let r = h.recv(&src, 1, None).await;
    assert_eq!(bodies(&r), ["m2"]);
    assert_eq!(r[0].message_id, m2.message_id);
    assert_eq!(h.counts(&dlq), (1, 0, 0));

    let d = h.recv(&dlq, 10, None).await;
    assert_eq!(d.len(), 1);
    let d = &d[0];
    assert_eq!(d.message_id, m1.message_id);
    assert_eq!(d.body, "m1");
    assert_eq!(d.attributes["ApproximateReceiveCount"], "3");
    assert_eq!(d.attributes["DeadLetterQueueSourceArn"], h.arn(&src));
    assert_eq!(d.attributes["MessageGroupId"], "g");
    assert_eq!(
        Some(&d.attributes["SequenceNumber"]),
        m1.sequence_number.as_ref()
    );
    assert_eq!(d.attributes["MessageDeduplicationId"], m1.message_id);
    assert_eq!(d.attributes["SentTimestamp"], T0.to_string());

    // FIFO resets the retention clock at the move (t0+60s).
    let total = |c: (u64, u64, u64)| c.0 + c.1 + c.2;
    h.advance_ms(600_000 - 60_000 + 1);
    assert_eq!(total(h.counts(&dlq)), 1, "FIFO DLQ gets full retention");
    h.advance_ms(60_000 - 2);
    assert_eq!(total(h.counts(&dlq)), 1);
    h.advance_ms(2);
    assert_eq!(total(h.counts(&dlq)), 0);
}
