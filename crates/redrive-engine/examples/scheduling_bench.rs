//! In-process scheduling benchmark (no HTTP, in-memory store, system clock).
//!
//! `cargo run --release -p redrive-engine --example scheduling_bench`
//!
//! 1. FIFO: 10,000 groups × 20 messages = 200,000 retained; then receive (10 per call) +
//!    delete until drained. Reports receive calls/s and messages/s, and how the cost of one
//!    receive changes between a full and a nearly empty queue.
//! 2. Standard: the same depth without groups, for comparison.
//! 3. Standard with a deep backlog: send/receive/delete latency at depth 0 and 200,000.

use std::sync::Arc;
use std::time::Instant;

use redrive_core::api::*;
use redrive_engine::{Engine, EngineConfig, RequestContext};

const GROUPS: usize = 10_000;
const PER_GROUP: usize = 20;

fn ctx() -> RequestContext {
    RequestContext {
        region: "us-east-1".into(),
        base_url: "http://localhost:9324".into(),
    }
}

async fn create(engine: &Engine, name: &str, fifo: bool) -> String {
    let mut attributes = std::collections::BTreeMap::new();
    if fifo {
        attributes.insert("FifoQueue".to_string(), "true".to_string());
        attributes.insert("ContentBasedDeduplication".to_string(), "true".to_string());
    }
    engine
        .create_queue(
            &ctx(),
            CreateQueueInput {
                queue_name: name.into(),
                attributes,
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .queue_url
}

async fn fill(engine: &Engine, url: &str, fifo: bool) -> f64 {
    let start = Instant::now();
    for i in 0..PER_GROUP {
        for g in 0..GROUPS {
            engine
                .send_message(
                    &ctx(),
                    SendMessageInput {
                        queue_url: url.into(),
                        message_body: Some(format!("group {g} message {i}")),
                        message_group_id: fifo.then(|| format!("g{g}")),
                        ..Default::default()
                    },
                )
                .await
                .unwrap();
        }
    }
    (GROUPS * PER_GROUP) as f64 / start.elapsed().as_secs_f64()
}

/// Receives 10 at a time and deletes them until the queue is empty. Returns
/// (messages/s, µs per receive call in the first 1,000 calls, in the last 1,000 calls).
async fn drain(engine: &Engine, url: &str) -> (f64, f64, f64) {
    let total = GROUPS * PER_GROUP;
    let start = Instant::now();
    let mut received = 0;
    let mut call_us = Vec::new();
    while received < total {
        let t = Instant::now();
        let out = engine
            .receive_message(
                &ctx(),
                ReceiveMessageInput {
                    queue_url: url.into(),
                    max_number_of_messages: Some(10),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        call_us.push(t.elapsed().as_secs_f64() * 1e6);
        assert!(!out.messages.is_empty(), "queue ran dry at {received}");
        received += out.messages.len();
        engine
            .delete_message_batch(
                &ctx(),
                DeleteMessageBatchInput {
                    queue_url: url.into(),
                    entries: out
                        .messages
                        .iter()
                        .enumerate()
                        .map(|(i, m)| DeleteMessageBatchRequestEntry {
                            id: i.to_string(),
                            receipt_handle: m.receipt_handle.clone(),
                        })
                        .collect(),
                },
            )
            .await
            .unwrap();
    }
    let rate = total as f64 / start.elapsed().as_secs_f64();
    let n = call_us.len().min(1000);
    let first = call_us[..n].iter().sum::<f64>() / n as f64;
    let last = call_us[call_us.len() - n..].iter().sum::<f64>() / n as f64;
    (rate, first, last)
}

async fn latency_at_depth(engine: &Engine, url: &str) -> (f64, f64, f64) {
    let n = 10_000;
    let mut send = 0.0;
    let mut recv = 0.0;
    let mut del = 0.0;
    for i in 0..n {
        let t = Instant::now();
        engine
            .send_message(
                &ctx(),
                SendMessageInput {
                    queue_url: url.into(),
                    message_body: Some(format!("probe {i}")),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        send += t.elapsed().as_secs_f64();
        let t = Instant::now();
        let m = engine
            .receive_message(
                &ctx(),
                ReceiveMessageInput {
                    queue_url: url.into(),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        recv += t.elapsed().as_secs_f64();
        let t = Instant::now();
        engine
            .delete_message(
                &ctx(),
                DeleteMessageInput {
                    queue_url: url.into(),
                    receipt_handle: Some(m.messages[0].receipt_handle.clone()),
                },
            )
            .await
            .unwrap();
        del += t.elapsed().as_secs_f64();
    }
    let us = |s: f64| s / n as f64 * 1e6;
    (us(send), us(recv), us(del))
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let engine = Arc::new(Engine::in_memory(EngineConfig::default()));
    for (name, fifo) in [("bench.fifo", true), ("bench-standard", false)] {
        let url = create(&engine, name, fifo).await;
        let send_rate = fill(&engine, &url, fifo).await;
        let (rate, first, last) = drain(&engine, &url).await;
        println!(
            "{name}: {} messages in {} groups; send {send_rate:.0} msg/s; receive(10)+delete-batch {rate:.0} msg/s; receive call {first:.1} µs at full depth, {last:.1} µs near empty",
            GROUPS * PER_GROUP,
            if fifo { GROUPS } else { 0 },
        );
    }
    let url = create(&engine, "depth", false).await;
    let (s0, r0, d0) = latency_at_depth(&engine, &url).await;
    for i in 0..200_000 {
        engine
            .send_message(
                &ctx(),
                SendMessageInput {
                    queue_url: url.clone(),
                    message_body: Some(format!("backlog {i}")),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
    }
    let deep = create(&engine, "deep", false).await;
    for i in 0..200_000 {
        engine
            .send_message(
                &ctx(),
                SendMessageInput {
                    queue_url: deep.clone(),
                    message_body: Some(format!("backlog {i}")),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
    }
    // The probe messages go behind the backlog in `deep`; measure on a queue whose head is
    // the backlog, so receive really works at depth.
    let (s1, r1, d1) = latency_at_depth(&engine, &deep).await;
    println!(
        "standard, per call (µs): depth 0: send {s0:.1}, receive {r0:.1}, delete {d0:.1}; depth 200,000: send {s1:.1}, receive {r1:.1}, delete {d1:.1}"
    );
}
