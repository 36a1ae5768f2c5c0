//! FIFO message groups under a manual clock (issue 20): a message that becomes visible again
//! (VisibilityTimeout=0, ChangeMessageVisibility 0, expiry) unlocks its group and is again
//! its head; one receive serves the unlocked groups round-robin, each group in order; a
//! visibility change to a positive value keeps the group locked; long polls wake when a group
//! unlocks. Ends with a model test: random operations against an independent model of SQS's
//! FIFO rules that predicts every receive's exact answer.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use redrive_core::ErrorCode;
use redrive_core::api::*;
use redrive_engine::{Engine, EngineConfig};

use crate::common::*;

async fn fifo(h: &H, name: &str) -> String {
    h.create(name, &[("FifoQueue", "true")]).await
}

async fn send_all(h: &H, q: &str, msgs: &[(&str, &str)]) {
    for (body, group) in msgs {
        h.send_fifo(q, body, group, body).await;
    }
}

fn count(m: &ReceivedMessage) -> &str {
    &m.attributes["ApproximateReceiveCount"]
}

#[tokio::test]
async fn visibility_timeout_zero_keeps_the_message_at_the_head_of_its_group() {
    let h = H::new();
    let q = fifo(&h, "vis0.fifo").await;
    send_all(&h, &q, &[("a1", "A"), ("a2", "A"), ("b1", "B")]).await;
    let first = h.recv(&q, 1, Some(0)).await;
    assert_eq!(bodies(&first), ["a1"]);
    // Same instant: a1 is visible again, its group unlocked, a1 still first.
    let again = h.recv(&q, 10, Some(30)).await;
    assert_eq!(bodies(&again), ["a1", "b1", "a2"]);
    assert_eq!(count(&again[0]), "2");
}

#[tokio::test]
async fn change_visibility_zero_unlocks_the_group() {
    let h = H::new();
    let q = fifo(&h, "cmv0.fifo").await;
    send_all(&h, &q, &[("a1", "A"), ("a2", "A")]).await;
    let first = h.recv(&q, 1, Some(30)).await;
    assert!(h.recv(&q, 10, Some(30)).await.is_empty(), "A is locked");
    h.advance_ms(500);
    h.change_vis(&q, &first[0].receipt_handle, 0).await.unwrap();
    let again = h.recv(&q, 10, Some(30)).await;
    assert_eq!(bodies(&again), ["a1", "a2"]);
    assert_eq!(count(&again[0]), "2");
}

#[tokio::test]
async fn expiry_unlocks_the_group_only_when_nothing_of_it_is_in_flight() {
    let h = H::new();
    let q = fifo(&h, "expiry.fifo").await;
    send_all(&h, &q, &[("a1", "A"), ("a2", "A"), ("a3", "A")]).await;
    // a1 and a2 in flight together; a2 is extended, a1 is not.
    let got = h.recv(&q, 2, Some(10)).await;
    assert_eq!(bodies(&got), ["a1", "a2"]);
    h.change_vis(&q, &got[1].receipt_handle, 60).await.unwrap();
    h.advance_ms(10_000);
    // a1 is visible again, but a2 is still in flight: A stays locked.
    assert!(h.recv(&q, 10, Some(30)).await.is_empty());
    assert_eq!(h.counts(&q), (2, 1, 0));
    h.delete(&q, &got[1].receipt_handle).await.unwrap();
    let again = h.recv(&q, 10, Some(30)).await;
    assert_eq!(bodies(&again), ["a1", "a3"]);
}

#[tokio::test]
async fn extending_visibility_keeps_the_group_locked_past_the_first_deadline() {
    let h = H::new();
    let q = fifo(&h, "extend.fifo").await;
    send_all(&h, &q, &[("a1", "A"), ("a2", "A"), ("b1", "B")]).await;
    let first = h.recv(&q, 1, Some(1)).await;
    h.change_vis(&q, &first[0].receipt_handle, 30)
        .await
        .unwrap();
    h.advance_ms(5_000);
    assert_eq!(bodies(&h.recv(&q, 10, Some(30)).await), ["b1"]);
    h.advance_ms(25_000);
    // The extended deadline passed: a1 comes back first.
    assert_eq!(bodies(&h.recv(&q, 10, Some(30)).await), ["a1", "a2"]);
}

#[tokio::test]
async fn one_receive_serves_groups_round_robin_by_oldest_message() {
    let h = H::new();
    let q = fifo(&h, "rr.fifo").await;
    send_all(
        &h,
        &q,
        &[
            ("b1", "B"),
            ("a1", "A"),
            ("a2", "A"),
            ("a3", "A"),
            ("b2", "B"),
            ("c1", "C"),
        ],
    )
    .await;
    let got = h.recv(&q, 10, Some(30)).await;
    // Groups by oldest message: B (b1), A (a1), C (c1); one each per round.
    assert_eq!(bodies(&got), ["b1", "a1", "c1", "b2", "a2", "a3"]);
    // A limit smaller than the number of groups takes the oldest groups first.
    let q = fifo(&h, "rr2.fifo").await;
    send_all(
        &h,
        &q,
        &[("a1", "A"), ("a2", "A"), ("b1", "B"), ("c1", "C")],
    )
    .await;
    assert_eq!(bodies(&h.recv(&q, 2, Some(30)).await), ["a1", "b1"]);
    assert_eq!(bodies(&h.recv(&q, 2, Some(30)).await), ["c1"]);
}

#[tokio::test]
async fn a_locked_group_is_left_out_of_the_rounds() {
    let h = H::new();
    let q = fifo(&h, "rr-locked.fifo").await;
    send_all(
        &h,
        &q,
        &[("a1", "A"), ("a2", "A"), ("b1", "B"), ("b2", "B")],
    )
    .await;
    let a1 = h.recv(&q, 1, Some(30)).await;
    assert_eq!(bodies(&a1), ["a1"]);
    send_all(&h, &q, &[("c1", "C")]).await;
    assert_eq!(bodies(&h.recv(&q, 10, Some(30)).await), ["b1", "c1", "b2"]);
}

#[tokio::test]
async fn dlq_move_of_a_head_lets_the_group_continue_in_order() {
    let h = H::new();
    let dlq = fifo(&h, "rr-dlq.fifo").await;
    let policy = redrive_policy(&h.arn(&dlq), 1);
    let q = h
        .create(
            "rr-src.fifo",
            &[("FifoQueue", "true"), ("RedrivePolicy", &policy)],
        )
        .await;
    send_all(&h, &q, &[("a1", "A"), ("a2", "A"), ("b1", "B")]).await;
    // a1 is received once and abandoned: its next receive moves it to the DLQ.
    assert_eq!(bodies(&h.recv(&q, 1, Some(0)).await), ["a1"]);
    let got = h.recv(&q, 10, Some(30)).await;
    let mut got = bodies(&got);
    got.sort();
    assert_eq!(got, ["a2", "b1"]);
    assert_eq!(bodies(&h.recv(&dlq, 10, Some(30)).await), ["a1"]);
}

// ---------------------------------------------------------------------------------------------
// Long polls (real runtime, system clock).

async fn lp_setup(name: &str) -> (Arc<Engine>, String, ReceivedMessage) {
    let engine = Arc::new(Engine::in_memory(EngineConfig::default()));
    let url = engine
        .create_queue(
            &ctx(),
            CreateQueueInput {
                queue_name: name.into(),
                attributes: [("FifoQueue".to_string(), "true".to_string())].into(),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .queue_url;
    for body in ["a1", "a2"] {
        engine
            .send_message(
                &ctx(),
                SendMessageInput {
                    queue_url: url.clone(),
                    message_body: Some(body.into()),
                    message_group_id: Some("A".into()),
                    message_deduplication_id: Some(body.into()),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
    }
    let first = lp_receive(&engine, &url, 1, 0, Some(60)).await;
    assert_eq!(bodies(&first), ["a1"]);
    (engine, url, first.into_iter().next().unwrap())
}

async fn lp_receive(
    engine: &Engine,
    url: &str,
    max: i64,
    wait: i64,
    vis: Option<i64>,
) -> Vec<ReceivedMessage> {
    engine
        .receive_message(
            &ctx(),
            ReceiveMessageInput {
                queue_url: url.into(),
                max_number_of_messages: Some(max),
                wait_time_seconds: Some(wait),
                visibility_timeout: vis,
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .messages
}

fn spawn_poll(
    engine: &Arc<Engine>,
    url: &str,
) -> tokio::task::JoinHandle<(Vec<ReceivedMessage>, Instant)> {
    let (engine, url) = (engine.clone(), url.to_string());
    tokio::spawn(async move {
        let got = lp_receive(&engine, &url, 10, 5, Some(60)).await;
        (got, Instant::now())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_poll_wakes_when_a_delete_unlocks_the_group() {
    let (engine, url, a1) = lp_setup("lp-del.fifo").await;
    let poll = spawn_poll(&engine, &url);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!poll.is_finished());
    let t = Instant::now();
    engine
        .delete_message(
            &ctx(),
            DeleteMessageInput {
                queue_url: url.clone(),
                receipt_handle: Some(a1.receipt_handle.clone()),
            },
        )
        .await
        .unwrap();
    let (got, done) = poll.await.unwrap();
    assert_eq!(bodies(&got), ["a2"]);
    assert!(done - t < Duration::from_millis(3_000), "{:?}", done - t);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_poll_wakes_when_a_batch_delete_unlocks_the_group() {
    let (engine, url, a1) = lp_setup("lp-delb.fifo").await;
    let poll = spawn_poll(&engine, &url);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let t = Instant::now();
    let out = engine
        .delete_message_batch(
            &ctx(),
            DeleteMessageBatchInput {
                queue_url: url.clone(),
                entries: vec![DeleteMessageBatchRequestEntry {
                    id: "e".into(),
                    receipt_handle: a1.receipt_handle.clone(),
                }],
            },
        )
        .await
        .unwrap();
    assert_eq!(out.successful.len(), 1);
    let (got, done) = poll.await.unwrap();
    assert_eq!(bodies(&got), ["a2"]);
    assert!(done - t < Duration::from_millis(3_000), "{:?}", done - t);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_poll_wakes_when_visibility_is_changed_to_zero() {
    let (engine, url, a1) = lp_setup("lp-cmv.fifo").await;
    let poll = spawn_poll(&engine, &url);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let t = Instant::now();
    engine
        .change_message_visibility(
            &ctx(),
            ChangeMessageVisibilityInput {
                queue_url: url.clone(),
                receipt_handle: Some(a1.receipt_handle.clone()),
                visibility_timeout: Some(0),
            },
        )
        .await
        .unwrap();
    let (got, done) = poll.await.unwrap();
    assert_eq!(bodies(&got), ["a1", "a2"]);
    assert!(done - t < Duration::from_millis(3_000), "{:?}", done - t);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_poll_wakes_when_a_shortened_deadline_passes() {
    let (engine, url, a1) = lp_setup("lp-short.fifo").await;
    let poll = spawn_poll(&engine, &url);
    tokio::time::sleep(Duration::from_millis(300)).await;
    // 60 s -> 1 s: the waiter sleeps towards its 5 s deadline and must re-arm its timer.
    let t = Instant::now();
    engine
        .change_message_visibility(
            &ctx(),
            ChangeMessageVisibilityInput {
                queue_url: url.clone(),
                receipt_handle: Some(a1.receipt_handle.clone()),
                visibility_timeout: Some(1),
            },
        )
        .await
        .unwrap();
    let (got, done) = poll.await.unwrap();
    assert_eq!(bodies(&got), ["a1", "a2"]);
    let took = done - t;
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_millis(3_500),
        "{took:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_poll_does_not_return_while_an_extended_message_is_in_flight() {
    let (engine, url, a1) = lp_setup("lp-ext.fifo").await;
    engine
        .change_message_visibility(
            &ctx(),
            ChangeMessageVisibilityInput {
                queue_url: url.clone(),
                receipt_handle: Some(a1.receipt_handle.clone()),
                visibility_timeout: Some(120),
            },
        )
        .await
        .unwrap();
    let t = Instant::now();
    let got = lp_receive(&engine, &url, 10, 1, Some(60)).await;
    assert!(got.is_empty(), "{:?}", bodies(&got));
    assert!(t.elapsed() >= Duration::from_millis(900));
}

// ---------------------------------------------------------------------------------------------
// Model test.

const GROUPS: [&str; 3] = ["A", "B", "C"];

#[derive(Debug, Clone)]
enum Op {
    Send(usize),
    Receive { max: u8, vis_secs: u8 },
    Advance(u32),
    Delete(usize),
    ChangeVisibility(usize, u8),
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..GROUPS.len()).prop_map(Op::Send),
        5 => (1u8..=5, 0u8..=2).prop_map(|(max, vis_secs)| Op::Receive { max, vis_secs }),
        3 => (0u32..2_500).prop_map(Op::Advance),
        2 => any::<usize>().prop_map(Op::Delete),
        2 => (any::<usize>(), 0u8..=2).prop_map(|(i, s)| Op::ChangeVisibility(i, s)),
        1 => Just(Op::Reopen),
    ]
}

/// The model's view of one live message.
#[derive(Debug, Clone)]
struct ModelMsg {
    group: &'static str,
    count: u32,
    /// `Some(deadline)` while in flight.
    in_flight_until: Option<u64>,
}

struct World {
    h: H,
    q: String,
    now: u64,
    sent: usize,
    /// Live messages by body; bodies sort in send order (`m0000`, `m0001`, …).
    live: BTreeMap<String, ModelMsg>,
    /// Every receipt handle handed out, with the body it belongs to.
    /// (body, receipt handle, the receive count the handle was issued with).
    handles: Vec<(String, String, u32)>,
}

impl World {
    /// Makes messages whose deadline passed visible (what the engine's timers do).
    fn expire(&mut self) {
        for m in self.live.values_mut() {
            if m.in_flight_until.is_some_and(|d| d <= self.now) {
                m.in_flight_until = None;
            }
        }
    }

    /// SQS's answer: round-robin over the groups with nothing in flight, in order of their
    /// oldest message, one message per group per round.
    fn expected_receive(&self, max: usize) -> Vec<String> {
        let mut groups: Vec<Vec<String>> = Vec::new();
        let mut by_group: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        let locked: Vec<&str> = self
            .live
            .values()
            .filter(|m| m.in_flight_until.is_some())
            .map(|m| m.group)
            .collect();
        let mut order: Vec<&str> = Vec::new();
        for (body, m) in &self.live {
            if locked.contains(&m.group) {
                continue;
            }
            if !order.contains(&m.group) {
                order.push(m.group);
            }
            by_group.entry(m.group).or_default().push(body.clone());
        }
        for g in order {
            groups.push(by_group.remove(g).unwrap());
        }
        let mut out = Vec::new();
        let mut round = 0;
        while out.len() < max && groups.iter().any(|g| g.len() > round) {
            for g in &groups {
                if out.len() < max
                    && let Some(b) = g.get(round)
                {
                    out.push(b.clone());
                }
            }
            round += 1;
        }
        out
    }

    async fn apply(&mut self, op: &Op) {
        match op {
            Op::Send(g) => {
                let body = format!("m{:04}", self.sent);
                self.sent += 1;
                self.h.send_fifo(&self.q, &body, GROUPS[*g], &body).await;
                self.live.insert(
                    body,
                    ModelMsg {
                        group: GROUPS[*g],
                        count: 0,
                        in_flight_until: None,
                    },
                );
            }
            Op::Receive { max, vis_secs } => {
                self.expire();
                let want = self.expected_receive(*max as usize);
                let got = self
                    .h
                    .recv(&self.q, i64::from(*max), Some(i64::from(*vis_secs)))
                    .await;
                assert_eq!(bodies(&got), want, "receive {op:?}");
                for m in &got {
                    let mm = self.live.get_mut(&m.body).unwrap();
                    mm.count += 1;
                    mm.in_flight_until = Some(self.now + u64::from(*vis_secs) * 1000);
                    assert_eq!(count(m), mm.count.to_string(), "{}", m.body);
                    self.handles
                        .push((m.body.clone(), m.receipt_handle.clone(), mm.count));
                }
            }
            Op::Advance(ms) => {
                self.h.advance_ms(u64::from(*ms));
                self.now += u64::from(*ms);
            }
            Op::Delete(i) => {
                if self.handles.is_empty() {
                    return;
                }
                self.expire();
                let (body, handle, issued) = self.handles[i % self.handles.len()].clone();
                let r = self.h.delete(&self.q, &handle).await;
                match self.live.get(&body) {
                    // FIFO: only a current handle of an in-flight message deletes; an expired
                    // one is refused (issue 20 point 3).
                    Some(m) if m.in_flight_until.is_some() && m.count == issued => {
                        r.expect("delete");
                        self.live.remove(&body);
                    }
                    Some(_) => assert_code(r, ErrorCode::InvalidParameterValue),
                    None => r.expect("delete of a deleted message succeeds"),
                }
            }
            Op::ChangeVisibility(i, secs) => {
                if self.handles.is_empty() {
                    return;
                }
                self.expire();
                let (body, handle, issued) = self.handles[i % self.handles.len()].clone();
                let r = self.h.change_vis(&self.q, &handle, i64::from(*secs)).await;
                match self.live.get_mut(&body) {
                    Some(m) if m.in_flight_until.is_some() => {
                        r.expect("change visibility of an in-flight message");
                        m.in_flight_until = Some(self.now + u64::from(*secs) * 1000);
                    }
                    // The latest handle of a message visible again: accepted, hidden again.
                    Some(m) if m.count == issued => {
                        r.expect("change visibility with the latest handle after expiry");
                        if *secs > 0 {
                            m.in_flight_until = Some(self.now + u64::from(*secs) * 1000);
                        }
                    }
                    Some(_) => assert_code(r, ErrorCode::MessageNotInflight),
                    None => assert!(r.is_err(), "changed a deleted message"),
                }
            }
            Op::Reopen => {
                // A restart takes time; message sequences (named by receipt handles) only
                // stay unique across restarts when the clock moves (see `sequence_floor`).
                self.h.advance_ms(1);
                self.now += 1;
                self.h = self.h.reopen();
            }
        }
        let q = self.h.engine.resolve(&self.h.ctx, &self.q).unwrap();
        let st = q.state.lock();
        if let Err(e) = st.check_invariants() {
            panic!("after {op:?}: {e}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 96,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn fifo_receives_match_the_model(ops in prop::collection::vec(op(), 1..=60)) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        rt.block_on(async {
            let h = H::new();
            let q = fifo(&h, "model.fifo").await;
            let mut w = World {
                h,
                q,
                now: T0,
                sent: 0,
                live: BTreeMap::new(),
                handles: Vec::new(),
            };
            for op in &ops {
                w.apply(op).await;
            }
            // Everything left is eventually received, in order per group.
            w.apply(&Op::Advance(3_000)).await;
            w.apply(&Op::Receive { max: 10, vis_secs: 1 }).await;
        });
    }
}
