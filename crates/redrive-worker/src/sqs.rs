//! SQS plumbing shared by the message lanes: the batched deleter and the visibility heartbeat.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry,
};
use tokio::sync::{Mutex, mpsc};
use tokio::task::JoinHandle;

use crate::backoff::{clamp_to_visibility_cap, whole_seconds_up};
use crate::metrics_names as m;
use crate::stats::Counters;

/// Collects receipt handles and deletes them with `DeleteMessageBatch` (up to 10 per call,
/// or whatever arrived within the flush interval).
pub(crate) struct Deleter {
    tx: mpsc::UnboundedSender<String>,
    task: JoinHandle<()>,
}

impl Deleter {
    pub(crate) fn start(
        client: Client,
        queue_url: String,
        queue_label: String,
        flush_interval: Duration,
        counters: Arc<Counters>,
    ) -> Deleter {
        let (tx, mut rx) = mpsc::unbounded_channel::<String>();
        let task = tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let mut batch = vec![first];
                let deadline = tokio::time::Instant::now() + flush_interval;
                while batch.len() < 10 {
                    match tokio::time::timeout_at(deadline, rx.recv()).await {
                        Ok(Some(handle)) => batch.push(handle),
                        Ok(None) | Err(_) => break,
                    }
                }
                delete_batch(&client, &queue_url, &queue_label, batch, &counters).await;
            }
        });
        Deleter { tx, task }
    }

    pub(crate) fn sender(&self) -> mpsc::UnboundedSender<String> {
        self.tx.clone()
    }

    /// Deletes everything still queued, then stops.
    pub(crate) async fn finish(self) {
        drop(self.tx);
        let _ = self.task.await;
    }
}

async fn delete_batch(
    client: &Client,
    queue_url: &str,
    queue_label: &str,
    batch: Vec<String>,
    counters: &Counters,
) {
    let entries: Vec<DeleteMessageBatchRequestEntry> = batch
        .iter()
        .enumerate()
        .filter_map(|(i, handle)| {
            DeleteMessageBatchRequestEntry::builder()
                .id(i.to_string())
                .receipt_handle(handle)
                .build()
                .ok()
        })
        .collect();
    let result = client
        .delete_message_batch()
        .queue_url(queue_url)
        .set_entries(Some(entries))
        .send()
        .await;
    match result {
        Ok(out) => {
            metrics::counter!(m::DELETED, "queue" => queue_label.to_string())
                .increment(out.successful.len() as u64);
            for failed in &out.failed {
                Counters::bump(&counters.sqs_errors);
                metrics::counter!(m::SQS_ERRORS, "queue" => queue_label.to_string(), "operation" => "DeleteMessageBatch").increment(1);
                tracing::warn!(code = %failed.code, message = ?failed.message, "delete failed; the message will be delivered again");
            }
        }
        Err(e) => {
            counters
                .sqs_errors
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            metrics::counter!(m::SQS_ERRORS, "queue" => queue_label.to_string(), "operation" => "DeleteMessageBatch").increment(1);
            tracing::warn!(error = %aws_sdk_sqs::error::DisplayErrorContext(&e), count = batch.len(), "DeleteMessageBatch failed; the messages will be delivered again");
        }
    }
}

/// A message a lane still holds (received, not yet deleted, retried or released).
#[derive(Debug, Clone)]
pub(crate) struct HeldMessage {
    pub receipt_handle: String,
    pub received_at: Instant,
}

/// The messages a lane holds, kept invisible by its heartbeat. The heartbeat holds the lock
/// across its `ChangeMessageVisibilityBatch` call, and a lane removes a message under the
/// same lock before its final call, so a heartbeat can never overwrite a backoff.
#[derive(Debug, Default)]
pub(crate) struct Held(Mutex<Vec<HeldMessage>>);

impl Held {
    pub(crate) fn new(messages: Vec<HeldMessage>) -> Held {
        Held(Mutex::new(messages))
    }

    pub(crate) async fn remove(&self, receipt_handle: &str) {
        self.0
            .lock()
            .await
            .retain(|m| m.receipt_handle != receipt_handle);
    }
}

/// Every `interval`, extends the visibility of everything in `held` to `timeout` (clamped
/// so no message exceeds 12 h of total invisibility). Runs until aborted.
pub(crate) async fn heartbeat(
    client: Client,
    queue_url: String,
    queue_label: String,
    held: Arc<Held>,
    interval: Duration,
    timeout: Duration,
) {
    loop {
        tokio::time::sleep(interval).await;
        let guard = held.0.lock().await;
        for chunk in guard.chunks(10) {
            let entries: Vec<_> = chunk
                .iter()
                .enumerate()
                .filter_map(|(i, m)| {
                    let vt = clamp_to_visibility_cap(timeout, m.received_at.elapsed());
                    ChangeMessageVisibilityBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(&m.receipt_handle)
                        .visibility_timeout(whole_seconds_up(vt, 43_200))
                        .build()
                        .ok()
                })
                .collect();
            let result = client
                .change_message_visibility_batch()
                .queue_url(&queue_url)
                .set_entries(Some(entries))
                .send()
                .await;
            match result {
                Ok(out) => {
                    metrics::counter!(m::HEARTBEATS, "queue" => queue_label.clone())
                        .increment(out.successful.len() as u64);
                    for failed in out.failed {
                        tracing::warn!(code = %failed.code, "heartbeat could not extend visibility");
                    }
                }
                Err(e) => {
                    metrics::counter!(m::SQS_ERRORS, "queue" => queue_label.clone(), "operation" => "ChangeMessageVisibilityBatch").increment(1);
                    tracing::warn!(error = %aws_sdk_sqs::error::DisplayErrorContext(&e), "heartbeat failed");
                }
            }
        }
        drop(guard);
    }
}
