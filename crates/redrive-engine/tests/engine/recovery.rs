//! Reopening an engine over the same store rebuilds everything (a restart).

use std::collections::BTreeMap;

use redrive_core::ErrorCode;
use redrive_core::api::{ListQueuesInput, QueueUrlInput, TagQueueInput, UntagQueueInput};
use redrive_engine::Store;

use crate::common::*;

fn sn(s: &Option<String>) -> u128 {
    s.as_deref()
        .expect("SequenceNumber")
        .parse()
        .expect("decimal")
}

#[tokio::test]
async fn queues_messages_and_handles_survive_reopen() {
    let h1 = H::new();
    let dlq = h1.create("rec-dlq", &[]).await;
    let policy = redrive_policy(&h1.arn(&dlq), 5);
    let src = h1
        .create(
            "rec-src",
            &[
                ("VisibilityTimeout", "30"),
                ("MessageRetentionPeriod", "3600"),
                ("RedrivePolicy", &policy),
            ],
        )
        .await;
    let url = |u: &str| QueueUrlInput {
        queue_url: u.into(),
    };
    h1.engine
        .tag_queue(
            &h1.ctx,
            TagQueueInput {
                queue_url: src.clone(),
                tags: BTreeMap::from([
                    ("env".into(), "test".into()),
                    ("team".into(), "queue".into()),
                    ("tmp".into(), "x".into()),
                ]),
            },
        )
        .await
        .unwrap();
    h1.engine
        .untag_queue(
            &h1.ctx,
            UntagQueueInput {
                queue_url: src.clone(),
                tag_keys: vec!["tmp".into()],
            },
        )
        .await
        .unwrap();

    let mut ids = Vec::new();
    for i in 1..=5 {
        ids.push(h1.send(&src, &format!("m{i}")).await.message_id);
    }
    h1.send_delayed(&src, "m6", 60).await;

    let r = h1.recv(&src, 3, None).await;
    assert_eq!(bodies(&r), ["m1", "m2", "m3"]);
    h1.delete(&src, &r[2].receipt_handle).await.unwrap();
    h1.change_vis(&src, &r[1].receipt_handle, 0).await.unwrap();
    let r2 = h1.recv(&src, 1, None).await;
    assert_eq!(bodies(&r2), ["m2"]);
    assert_eq!(r2[0].attributes["ApproximateReceiveCount"], "2");
    // m1 in flight (1 receive), m2 in flight (2), m4 + m5 visible, m6 delayed.
    assert_eq!(h1.counts(&src), (2, 2, 1));

    // Purge the DLQ so its cool-down is part of the persisted state.
    h1.purge(&dlq).await.unwrap();

    let before_src = h1.attrs(&src);
    let before_dlq = h1.attrs(&dlq);
    let before_tags = h1.engine.list_queue_tags(&h1.ctx, url(&src)).unwrap().tags;
    let before_list = h1
        .engine
        .list_queues(&h1.ctx, ListQueuesInput::default())
        .unwrap()
        .queue_urls;

    h1.advance_ms(500);
    let h2 = h1.reopen();
    drop(h1);

    // Every attribute, counts and timestamps included, is as before.
    assert_eq!(h2.attrs(&src), before_src);
    assert_eq!(h2.attrs(&dlq), before_dlq);
    assert_eq!(
        h2.engine.list_queue_tags(&h2.ctx, url(&src)).unwrap().tags,
        before_tags
    );
    assert_eq!(before_tags.len(), 2);
    assert_eq!(
        h2.engine
            .list_queues(&h2.ctx, ListQueuesInput::default())
            .unwrap()
            .queue_urls,
        before_list
    );
    assert_eq!(h2.counts(&src), (2, 2, 1));
    assert_code(h2.purge(&dlq).await, ErrorCode::PurgeQueueInProgress);

    // A receipt handle from before the restart still deletes.
    h2.delete(&src, &r[0].receipt_handle).await.unwrap();
    assert_eq!(h2.counts(&src), (2, 1, 1));
    // The latest handle of m2 still changes its visibility.
    h2.change_vis(&src, &r2[0].receipt_handle, 5).await.unwrap();

    // Receive counts survive: m2 comes back as its 3rd receive.
    h2.advance_ms(5_000);
    let r3 = h2.recv(&src, 10, None).await;
    assert_eq!(bodies(&r3), ["m2", "m4", "m5"]);
    assert_eq!(r3[0].attributes["ApproximateReceiveCount"], "3");
    assert_eq!(
        r3[0].attributes["ApproximateFirstReceiveTimestamp"],
        T0.to_string()
    );
    assert_eq!(r3[0].message_id, ids[1]);
    assert_eq!(r3[1].attributes["ApproximateReceiveCount"], "1");
    for m in &r3 {
        h2.delete(&src, &m.receipt_handle).await.unwrap();
    }

    // The delayed message keeps its due time (t0 + 60 s).
    h2.advance_ms(60_000 - 5_500 - 1);
    assert_eq!(h2.counts(&src).2, 1);
    h2.advance_ms(1);
    assert_eq!(h2.counts(&src).2, 0);
    assert_eq!(bodies(&h2.recv(&src, 10, None).await), ["m6"]);
}

#[tokio::test]
async fn in_flight_fifo_group_stays_locked_after_reopen() {
    let h1 = H::new();
    let q = h1
        .create(
            "lock.fifo",
            &[("FifoQueue", "true"), ("VisibilityTimeout", "30")],
        )
        .await;
    h1.send_fifo(&q, "a", "g", "1").await;
    h1.send_fifo(&q, "b", "g", "2").await;
    let r = h1.recv(&q, 1, None).await;
    assert_eq!(bodies(&r), ["a"]);

    let h2 = h1.reopen();
    drop(h1);
    assert!(h2.recv(&q, 10, None).await.is_empty(), "group still locked");
    h2.delete(&q, &r[0].receipt_handle).await.unwrap();
    assert_eq!(bodies(&h2.recv(&q, 10, None).await), ["b"]);
}

#[tokio::test]
async fn fifo_sequence_numbers_grow_across_reopen() {
    let h1 = H::new();
    let q = h1.create("seq.fifo", &[("FifoQueue", "true")]).await;
    let a = h1.send_fifo(&q, "a", "g", "1").await;
    let b = h1.send_fifo(&q, "b", "g", "2").await;
    assert!(sn(&b.sequence_number) > sn(&a.sequence_number));
    assert_eq!(b.sequence_number.as_deref().map(str::len), Some(20));

    let h2 = h1.reopen();
    drop(h1);
    let c = h2.send_fifo(&q, "c", "g", "3").await;
    assert!(
        sn(&c.sequence_number) > sn(&b.sequence_number),
        "{:?} after {:?}",
        c.sequence_number,
        b.sequence_number
    );
}

#[tokio::test]
async fn fifo_sequence_numbers_grow_across_reopen_after_queue_drained() {
    let h1 = H::new();
    let q = h1.create("seq2.fifo", &[("FifoQueue", "true")]).await;
    h1.send_fifo(&q, "a", "g", "1").await;
    let b = h1.send_fifo(&q, "b", "g", "2").await;
    for m in h1.recv(&q, 10, None).await {
        h1.delete(&q, &m.receipt_handle).await.unwrap();
    }
    assert_eq!(h1.store.message_count(), 0);

    // Restarted 500 ms later: same wall-clock second.
    h1.advance_ms(500);
    let h2 = h1.reopen();
    drop(h1);
    let c = h2.send_fifo(&q, "c", "g", "3").await;
    assert!(
        sn(&c.sequence_number) > sn(&b.sequence_number),
        "{:?} after {:?}",
        c.sequence_number,
        b.sequence_number
    );
}

#[tokio::test]
async fn fifo_dedup_survives_reopen() {
    let h1 = H::new();
    let q = h1
        .create("dedup-restart.fifo", &[("FifoQueue", "true")])
        .await;
    // d1 is still queued at the restart; d2 was received and deleted before it.
    let a = h1.send_fifo(&q, "a", "g1", "d1").await;
    let b = h1.send_fifo(&q, "b", "g2", "d2").await;
    let r = h1.recv(&q, 10, None).await;
    let rb = r.iter().find(|m| m.message_id == b.message_id).unwrap();
    h1.delete(&q, &rb.receipt_handle).await.unwrap();
    let ra = r.iter().find(|m| m.message_id == a.message_id).unwrap();
    h1.change_vis(&q, &ra.receipt_handle, 0).await.unwrap();

    h1.advance_ms(10_000);
    let h2 = h1.reopen();
    drop(h1);
    let dup_a = h2.send_fifo(&q, "a", "g1", "d1").await;
    let dup_b = h2.send_fifo(&q, "b", "g2", "d2").await;
    assert_eq!(
        dup_a.message_id, a.message_id,
        "queued message deduplicated"
    );
    assert_eq!(
        dup_b.message_id, b.message_id,
        "deleted message deduplicated"
    );
    assert_eq!(bodies(&h2.recv(&q, 10, None).await), ["a"]);
}

#[tokio::test]
async fn a_stale_receipt_handle_never_matches_a_message_sent_after_reopen() {
    let h = H::new();
    let url = h.create("stale-handles", &[]).await;
    h.send(&url, "before").await;
    let old = h.recv(&url, 1, Some(0)).await.remove(0);
    h.delete(&url, &old.receipt_handle).await.unwrap();
    // The queue is empty when the server restarts a moment later.
    h.advance_ms(1);
    let h2 = h.reopen();
    h2.send(&url, "after").await;
    let new = h2.recv(&url, 1, Some(60)).await.remove(0);
    assert_ne!(new.receipt_handle, old.receipt_handle);
    // Deleting with the stale handle must not delete the new message.
    let _ = h2.delete(&url, &old.receipt_handle).await;
    assert_eq!(h2.attrs(&url)["ApproximateNumberOfMessagesNotVisible"], "1");
}

#[tokio::test]
async fn queue_deleted_recently_survives_reopen() {
    let h1 = H::new();
    let q = h1.create("gone", &[]).await;
    h1.create("other", &[]).await;
    h1.engine
        .delete_queue(&h1.ctx, QueueUrlInput { queue_url: q })
        .await
        .unwrap();
    h1.advance_ms(30_000);
    // A restart inside the window keeps the name blocked.
    let h2 = h1.reopen();
    let err = h2.try_create("gone", &[]).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::QueueDeletedRecently);
    h2.try_create("other-new", &[])
        .await
        .expect("other names are free");
    // After the window the name is free again, also across another restart.
    h2.advance_ms(30_000);
    let h3 = h2.reopen();
    h3.try_create("gone", &[]).await.expect("window over");
    // The stale record is gone from the store.
    let docs = h3.store.load().documents;
    assert!(docs.iter().all(|d| d.kind != "deleted-queue"), "{docs:?}");
}

#[tokio::test]
async fn fifo_receive_attempt_replays_after_reopen() {
    use redrive_core::api::ReceiveMessageInput;
    let h1 = H::new();
    let q = h1.create("att.fifo", &[("FifoQueue", "true")]).await;
    for (i, g) in ["g1", "g1", "g2"].iter().enumerate() {
        h1.send_fifo(&q, &format!("m{i}"), g, &format!("d{i}"))
            .await;
    }
    let input = ReceiveMessageInput {
        queue_url: q.clone(),
        max_number_of_messages: Some(10),
        visibility_timeout: Some(30),
        wait_time_seconds: Some(0),
        receive_request_attempt_id: Some("attempt-1".into()),
        ..Default::default()
    };
    let first = h1
        .engine
        .receive_message(&h1.ctx, input.clone())
        .await
        .unwrap()
        .messages;
    assert_eq!(first.len(), 3);
    h1.advance_ms(10_000);
    // The client retries the same attempt after the server restarted: same messages, same
    // receipt handles.
    let h2 = h1.reopen();
    let again = h2
        .engine
        .receive_message(&h2.ctx, input.clone())
        .await
        .unwrap()
        .messages;
    let handles = |v: &[redrive_core::api::ReceivedMessage]| {
        v.iter()
            .map(|m| (m.message_id.clone(), m.receipt_handle.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(handles(&again), handles(&first));
    // After the 5-minute window the attempt is forgotten (and dropped from the store at open).
    h2.advance_ms(300_000);
    let h3 = h2.reopen();
    assert!(
        h3.store
            .load()
            .documents
            .iter()
            .all(|d| d.kind != "fifo-attempt")
    );
}

/// Issue 20 point 3: handles are 180 characters, still valid after a restart, and the
/// 28-character handles of earlier versions (`base64url("uid:seq:count")`) still delete, so
/// clients holding them across an upgrade are not stranded.
#[tokio::test]
async fn long_handles_survive_reopen_and_old_short_handles_still_work() {
    use base64::Engine as _;
    use redrive_engine::receipt::ReceiptHandle;

    let h1 = H::new();
    let q = h1
        .create("rh-upgrade", &[("VisibilityTimeout", "60")])
        .await;
    h1.send(&q, "a").await;
    h1.send(&q, "b").await;
    let got = h1.recv(&q, 2, None).await;
    assert_eq!(got.len(), 2);
    assert!(got.iter().all(|m| m.receipt_handle.len() == 180));

    let h2 = h1.reopen();
    // The new-form handle of "a" deletes after the restart.
    h2.delete(&q, &got[0].receipt_handle).await.unwrap();
    // "b" by the old short form of its handle, as an older server would have issued it.
    let decoded = ReceiptHandle::decode(&got[1].receipt_handle).expect("decodes");
    let old = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!(
        "{}:{}:{}",
        decoded.queue_uid, decoded.seq, decoded.receive_count
    ));
    assert!(old.len() < 40, "{old}");
    h2.delete(&q, &old).await.unwrap();
    assert_eq!(h2.counts(&q), (0, 0, 0));
}
