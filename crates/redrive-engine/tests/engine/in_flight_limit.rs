//! The in-flight limit (`limits::MAX_INFLIGHT_STANDARD`, 120,000 per queue; sqs-semantics.md
//! §3), reached for real: a standard queue with messages waiting answers `OverLimit`, a FIFO
//! queue returns nothing more; one message leaving flight makes room for exactly one.

use redrive_core::api::*;
use redrive_core::{ErrorCode, limits};

use crate::common::{H, assert_code};

const LIMIT: usize = limits::MAX_INFLIGHT_STANDARD;

/// Sends `n` messages in batches of 10 (on a FIFO queue, each in a group of its own).
async fn fill(h: &H, url: &str, n: usize, fifo: bool) {
    for start in (0..n).step_by(10) {
        let entries = (start..(start + 10).min(n))
            .map(|i| SendMessageBatchRequestEntry {
                id: format!("m{i}"),
                message_body: Some(format!("body {i}")),
                message_group_id: fifo.then(|| format!("g{i}")),
                message_deduplication_id: fifo.then(|| format!("d{i}")),
                ..Default::default()
            })
            .collect();
        let out = h
            .engine
            .send_message_batch(
                &h.ctx,
                SendMessageBatchInput {
                    queue_url: url.into(),
                    entries,
                },
            )
            .await
            .expect("send batch");
        assert!(out.failed.is_empty(), "{:?}", out.failed);
    }
}

/// Receives until `n` messages are in flight (for an hour); returns the last handle.
async fn take(h: &H, url: &str, n: usize) -> String {
    let mut taken = 0;
    let mut last = String::new();
    while taken < n {
        let got = h.recv(url, (n - taken).min(10) as i64, Some(3600)).await;
        assert!(!got.is_empty(), "nothing to receive after {taken}");
        taken += got.len();
        last = got.last().unwrap().receipt_handle.clone();
    }
    last
}

#[tokio::test]
async fn a_standard_queue_at_the_limit_answers_over_limit_while_messages_wait() {
    let h = H::new();
    let url = h.create("busy", &[]).await;
    fill(&h, &url, LIMIT + 2, false).await;
    let handle = take(&h, &url, LIMIT).await;
    assert_eq!(h.counts(&url), (2, LIMIT as u64, 0));

    let refused = h.try_recv(&url, 10, None).await;
    match &refused {
        Err(e) => assert_eq!(
            e.message,
            "Too many messages in flight: the limit of 120000 in-flight messages per queue is reached."
        ),
        Ok(m) => panic!("received {} past the limit", m.len()),
    }
    assert_code(refused, ErrorCode::OverLimit);
    assert_eq!(
        h.counts(&url),
        (2, LIMIT as u64, 0),
        "a refusal moves nothing"
    );

    // One deleted: room for one, whatever the receive asks for.
    h.delete(&url, &handle).await.unwrap();
    assert_eq!(h.recv(&url, 10, Some(3600)).await.len(), 1);
    assert_code(h.try_recv(&url, 10, None).await, ErrorCode::OverLimit);
}

#[tokio::test]
async fn a_standard_queue_at_the_limit_with_nothing_waiting_returns_nothing() {
    let h = H::new();
    let url = h.create("drained", &[]).await;
    fill(&h, &url, LIMIT, false).await;
    take(&h, &url, LIMIT).await;
    assert!(h.recv(&url, 10, None).await.is_empty());
}

#[tokio::test]
async fn a_fifo_queue_at_the_limit_returns_nothing_more() {
    let h = H::new();
    let url = h.create("busy.fifo", &[("FifoQueue", "true")]).await;
    fill(&h, &url, LIMIT + 2, true).await;
    let handle = take(&h, &url, LIMIT).await;
    assert!(h.recv(&url, 10, None).await.is_empty());
    assert_eq!(h.counts(&url), (2, LIMIT as u64, 0));
    h.delete(&url, &handle).await.unwrap();
    assert_eq!(h.recv(&url, 10, Some(3600)).await.len(), 1);
}
