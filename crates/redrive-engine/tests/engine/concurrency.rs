//! DLQ moves racing with consumers of the DLQ, on a multi-threaded runtime: the store must end
//! up agreeing with the engine (no message deleted in memory but resurrected by the store).

use std::collections::BTreeSet;
use std::sync::Arc;

use redrive_engine::Store;

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]

async fn dlq_moves_racing_dlq_consumers_keep_the_store_in_step() {
    // The race is timing-dependent; a few rounds make a miss unlikely.
    for round in 0..5 {
        race_round(round).await;
    }
}

async fn race_round(round: usize) {
    let h = Arc::new(H::new());
    let dlq = h.create("race-dlq", &[]).await;
    let policy = redrive_policy(&h.arn(&dlq), 1);
    let src = h
        .create(
            "race-src",
            &[("VisibilityTimeout", "0"), ("RedrivePolicy", &policy)],
        )
        .await;
    const N: usize = 2_000;
    for i in 0..N / 10 {
        let entries = (0..10)
            .map(|j| redrive_core::api::SendMessageBatchRequestEntry {
                id: format!("e{j}"),
                message_body: Some(format!("m{i}-{j}")),
                ..Default::default()
            })
            .collect();
        h.engine
            .send_message_batch(
                &h.ctx,
                redrive_core::api::SendMessageBatchInput {
                    queue_url: src.clone(),
                    entries,
                },
            )
            .await
            .unwrap();
    }

    // Producer of moves: receive with visibility 0 until the source is empty.
    let mover = {
        let (h, src) = (h.clone(), src.clone());
        tokio::spawn(async move {
            for _ in 0..100_000 {
                h.recv(&src, 10, Some(0)).await;
                if h.counts(&src) == (0, 0, 0) {
                    break;
                }
            }
        })
    };
    // Consumer of the DLQ: receive and delete as fast as possible.
    let consumer = {
        let (h, dlq) = (h.clone(), dlq.clone());
        tokio::spawn(async move {
            let mut deleted = BTreeSet::new();
            for _ in 0..1_000_000 {
                for m in h.recv(&dlq, 10, Some(30)).await {
                    h.delete(&dlq, &m.receipt_handle).await.unwrap();
                    deleted.insert(m.message_id);
                }
                if deleted.len() == N {
                    break;
                }
                tokio::task::yield_now().await;
            }
            deleted
        })
    };
    mover.await.unwrap();
    let deleted = consumer.await.unwrap();
    assert_eq!(deleted.len(), N, "every message reaches the DLQ once");
    assert_eq!(h.counts(&src), (0, 0, 0));
    assert_eq!(h.counts(&dlq), (0, 0, 0));
    let ghosts: Vec<String> = h
        .store
        .load()
        .messages
        .into_iter()
        .map(|r| r.message_id)
        .collect();
    assert!(
        ghosts.is_empty(),
        "round {round}: {} deleted messages are still in the store (they come back on restart)",
        ghosts.len()
    );
    assert_eq!(h.reopen().counts(&dlq), (0, 0, 0), "round {round}");
}
