//! Timers under a manual clock: visibility, delays, retention, cool-downs, FIFO dedup window.

use redrive_core::ErrorCode;
use redrive_core::api::QueueUrlInput;

use crate::common::*;

#[tokio::test]
async fn visibility_expires_exactly_at_the_deadline_and_counts_receives() {
    let h = H::new();
    let q = h.create("vis", &[("VisibilityTimeout", "30")]).await;
    h.send(&q, "hello").await;

    let r1 = h.recv(&q, 1, None).await;
    assert_eq!(bodies(&r1), ["hello"]);
    assert_eq!(r1[0].attributes["ApproximateReceiveCount"], "1");
    assert_eq!(
        r1[0].attributes["ApproximateFirstReceiveTimestamp"],
        T0.to_string()
    );
    assert_eq!(h.counts(&q), (0, 1, 0));

    h.advance_ms(29_999);
    assert!(h.recv(&q, 10, None).await.is_empty(), "visible 1 ms early");
    assert_eq!(h.counts(&q), (0, 1, 0));

    h.advance_ms(1);
    assert_eq!(h.counts(&q), (1, 0, 0));
    // The request-level timeout overrides the queue's for this receive only.
    let r2 = h.recv(&q, 1, Some(5)).await;
    assert_eq!(bodies(&r2), ["hello"]);
    assert_eq!(r2[0].attributes["ApproximateReceiveCount"], "2");
    assert_eq!(
        r2[0].attributes["ApproximateFirstReceiveTimestamp"],
        T0.to_string(),
        "first-receive time must not move"
    );
    assert_ne!(r1[0].receipt_handle, r2[0].receipt_handle);

    h.advance_ms(4_999);
    assert!(h.recv(&q, 10, None).await.is_empty());
    h.advance_ms(1);
    let r3 = h.recv(&q, 1, None).await;
    assert_eq!(r3[0].attributes["ApproximateReceiveCount"], "3");

    // Back on the queue's 30 s timeout.
    h.advance_ms(29_999);
    assert_eq!(h.counts(&q), (0, 1, 0));
    h.advance_ms(1);
    assert_eq!(h.counts(&q), (1, 0, 0));
}

#[tokio::test]
async fn per_message_delay_counts_as_delayed_until_due() {
    let h = H::new();
    let q = h.create("delay-msg", &[]).await;
    h.send_delayed(&q, "later", 5).await;
    assert_eq!(h.counts(&q), (0, 0, 1));
    assert!(h.recv(&q, 10, None).await.is_empty());

    h.advance_ms(4_999);
    assert_eq!(h.counts(&q), (0, 0, 1));
    assert!(h.recv(&q, 10, None).await.is_empty());

    h.advance_ms(1);
    assert_eq!(h.counts(&q), (1, 0, 0));
    let r = h.recv(&q, 10, None).await;
    assert_eq!(bodies(&r), ["later"]);
    assert_eq!(r[0].attributes["ApproximateReceiveCount"], "1");
    assert_eq!(r[0].attributes["SentTimestamp"], T0.to_string());
}

#[tokio::test]
async fn queue_delay_applies_and_message_delay_overrides_it() {
    let h = H::new();
    let q = h.create("delay-queue", &[("DelaySeconds", "10")]).await;
    h.send(&q, "queue-delay").await;
    h.send_delayed(&q, "no-delay", 0).await;
    h.send_delayed(&q, "three", 3).await;
    assert_eq!(h.counts(&q), (1, 0, 2));

    assert_eq!(bodies(&h.recv(&q, 10, None).await), ["no-delay"]);
    h.advance_ms(3_000);
    assert_eq!(h.counts(&q), (1, 1, 1));
    assert_eq!(bodies(&h.recv(&q, 10, None).await), ["three"]);

    h.advance_ms(6_999);
    assert_eq!(h.counts(&q).2, 1);
    assert!(h.recv(&q, 10, None).await.is_empty());
    h.advance_ms(1);
    assert_eq!(h.counts(&q).2, 0);
    assert_eq!(bodies(&h.recv(&q, 10, None).await), ["queue-delay"]);
}

#[tokio::test]
async fn retention_period_expires_messages() {
    let h = H::new();
    let q = h
        .create("retention", &[("MessageRetentionPeriod", "60")])
        .await;
    h.send(&q, "old").await;
    h.advance_ms(30_000);
    h.send(&q, "young").await;

    h.advance_ms(29_999);
    assert_eq!(h.counts(&q), (2, 0, 0));
    h.advance_ms(2);
    assert_eq!(h.counts(&q), (1, 0, 0));
    assert_eq!(h.store.message_count(), 1, "expiry must reach the store");
    let r = h.recv(&q, 10, None).await;
    assert_eq!(bodies(&r), ["young"]);

    // In-flight messages expire too.
    h.advance_ms(30_000);
    assert_eq!(h.counts(&q), (0, 0, 0));
    assert_eq!(h.store.message_count(), 0);
    assert!(h.delete(&q, &r[0].receipt_handle).await.is_ok());
}

#[tokio::test]
async fn lowering_retention_expires_older_messages() {
    let h = H::new();
    let q = h.create("retention-lower", &[]).await;
    h.send(&q, "two-minutes-old").await;
    h.advance_ms(120_000);
    h.send(&q, "ten-seconds-old").await;
    h.advance_ms(10_000);
    assert_eq!(h.store.message_count(), 2);

    h.set_attrs(&q, &[("MessageRetentionPeriod", "60")]).await;
    assert_eq!(h.store.message_count(), 1, "expired by SetQueueAttributes");
    assert_eq!(h.counts(&q), (1, 0, 0));
    assert_eq!(h.attrs(&q)["MessageRetentionPeriod"], "60");
    assert_eq!(bodies(&h.recv(&q, 10, None).await), ["ten-seconds-old"]);
}

#[tokio::test]
async fn change_visibility_is_capped_at_12_hours_from_the_receive() {
    let h = H::new();
    let q = h.create("cap", &[("VisibilityTimeout", "30")]).await;
    h.send(&q, "m").await;
    let handle = h.recv(&q, 1, None).await.remove(0).receipt_handle;

    assert_code(
        h.change_vis(&q, &handle, 43_201).await,
        ErrorCode::InvalidParameterValue,
    );
    h.change_vis(&q, &handle, 43_200)
        .await
        .expect("43200 at t=0");

    h.advance_ms(100_000);
    assert_code(
        h.change_vis(&q, &handle, 43_200).await,
        ErrorCode::InvalidParameterValue,
    );
    h.change_vis(&q, &handle, 43_100)
        .await
        .expect("43100 at t=100s");

    // Deadline is receive + 12 h.
    h.advance_ms(43_200_000 - 100_000 - 1);
    assert_eq!(h.counts(&q), (0, 1, 0));
    h.advance_ms(1);
    assert_eq!(h.counts(&q), (1, 0, 0));
}

#[tokio::test]
async fn change_visibility_zero_makes_the_message_visible() {
    let h = H::new();
    let q = h.create("cmv0", &[("VisibilityTimeout", "30")]).await;
    h.send(&q, "m").await;
    let r1 = h.recv(&q, 1, None).await;
    h.change_vis(&q, &r1[0].receipt_handle, 0).await.unwrap();
    assert_eq!(h.counts(&q), (1, 0, 0));
    // The latest handle of a message visible again still works (AWS, issue 20 point 3): it
    // hides the message again without counting a receive.
    h.change_vis(&q, &r1[0].receipt_handle, 10).await.unwrap();
    assert_eq!(h.counts(&q), (0, 1, 0));
    h.change_vis(&q, &r1[0].receipt_handle, 0).await.unwrap();
    assert_eq!(h.counts(&q), (1, 0, 0));

    let r2 = h.recv(&q, 1, None).await;
    assert_eq!(bodies(&r2), ["m"]);
    assert_eq!(r2[0].attributes["ApproximateReceiveCount"], "2");
    // The changed value is not remembered: the next receive gets the queue's 30 s again.
    h.advance_ms(29_999);
    assert_eq!(h.counts(&q), (0, 1, 0));
    h.advance_ms(1);
    assert_eq!(h.counts(&q), (1, 0, 0));
    // The first receive's handle is no longer the latest: not in flight for it.
    assert_code(
        h.change_vis(&q, &r1[0].receipt_handle, 10).await,
        ErrorCode::MessageNotInflight,
    );
}

#[tokio::test]
async fn purge_is_limited_to_once_per_60_seconds() {
    let h = H::new();
    let q = h.create("purge", &[]).await;
    for i in 0..3 {
        h.send(&q, &format!("m{i}")).await;
    }
    h.recv(&q, 1, None).await;
    h.purge(&q).await.expect("first purge");
    assert_eq!(h.counts(&q), (0, 0, 0));
    assert_eq!(h.store.message_count(), 0);

    h.send(&q, "after").await;
    h.advance_ms(59_999);
    assert_code(h.purge(&q).await, ErrorCode::PurgeQueueInProgress);
    assert_eq!(h.counts(&q), (1, 0, 0), "a refused purge deletes nothing");

    h.advance_ms(1);
    h.purge(&q).await.expect("purge after 60 s");
    assert_eq!(h.counts(&q), (0, 0, 0));
}

#[tokio::test]
async fn queue_name_is_blocked_for_60_seconds_after_delete() {
    let h = H::new();
    let q = h.create("recreate", &[]).await;
    h.send(&q, "m").await;
    h.engine
        .delete_queue(
            &h.ctx,
            QueueUrlInput {
                queue_url: q.clone(),
            },
        )
        .await
        .unwrap();
    assert_code(h.try_recv(&q, 1, None).await, ErrorCode::QueueDoesNotExist);
    assert_eq!(h.store.message_count(), 0);

    h.advance_ms(59_999);
    assert_code(
        h.try_create("recreate", &[]).await,
        ErrorCode::QueueDeletedRecently,
    );
    h.advance_ms(1);
    let q2 = h.create("recreate", &[]).await;
    assert_eq!(q2, q);
    assert_eq!(h.counts(&q2), (0, 0, 0));
    assert!(h.recv(&q2, 10, None).await.is_empty());
}

#[tokio::test]
async fn fifo_duplicate_within_window_returns_original_and_is_not_delivered() {
    let h = H::new();
    let q = h.create("dedup.fifo", &[("FifoQueue", "true")]).await;
    let a = h.send_fifo(&q, "one", "g", "d1").await;
    h.advance_ms(1_000);
    let b = h.send_fifo(&q, "one-again", "g", "d1").await;
    assert_eq!(b.message_id, a.message_id);
    assert_eq!(b.sequence_number, a.sequence_number);
    assert_eq!(h.counts(&q), (1, 0, 0));
    assert_eq!(h.store.message_count(), 1);
    assert_eq!(bodies(&h.recv(&q, 10, None).await), ["one"]);
}

#[tokio::test]
async fn fifo_dedup_window_is_five_minutes_and_outlives_the_delete() {
    let h = H::new();
    let q = h.create("window.fifo", &[("FifoQueue", "true")]).await;
    let a = h.send_fifo(&q, "first", "g", "d1").await;
    let r = h.recv(&q, 1, None).await;
    assert_eq!(r[0].message_id, a.message_id);
    h.delete(&q, &r[0].receipt_handle).await.unwrap();

    h.advance_ms(1_000);
    let dup = h.send_fifo(&q, "first", "g", "d1").await;
    assert_eq!(dup.message_id, a.message_id, "dedup must hold after delete");
    assert!(h.recv(&q, 10, None).await.is_empty());

    h.advance_ms(300_000 - 1_000 - 1);
    let dup = h.send_fifo(&q, "first", "g", "d1").await;
    assert_eq!(dup.message_id, a.message_id, "still inside the window");
    assert!(h.recv(&q, 10, None).await.is_empty());

    h.advance_ms(2);
    let c = h.send_fifo(&q, "first", "g", "d1").await;
    assert_ne!(c.message_id, a.message_id, "window is over");
    let r = h.recv(&q, 10, None).await;
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].message_id, c.message_id);
}
