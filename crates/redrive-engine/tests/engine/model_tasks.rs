//! Random operation sequences with message move tasks: two source queues (`maxReceiveCount` 1
//! and 2) share one DLQ; a fourth queue is a possible explicit destination. Besides sends,
//! receives, deletes and clock steps, the sequences start move tasks (to each message's own
//! source, to the extra queue, or to source A) at various rates, cancel them, and let them run
//! (`Progress`: tokio's paused clock advances, so the runners progress deterministically; the
//! engine's `ManualClock` does not move then).
//!
//! After every operation:
//! - every message ever sent (tracked by its unique body) is in exactly one place: a queue or
//!   deleted by a consumer (deletions are predicted by the model);
//! - a message only changes queue by the lazy DLQ move (same MessageId, on a receive from its
//!   source) or by a redrive (a NEW MessageId never seen before, receive count 0, no
//!   `DeadLetterQueueSourceArn`, to the task's destination or to the message's own source,
//!   only while tasks progress);
//! - each task's `ApproximateNumberOfMessagesMoved` equals the redrives observed, and
//!   `ApproximateNumberOfMessagesToMove` the DLQ's visible count at the start;
//! - the store's message and task records equal the engine's.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use proptest::prelude::*;
use redrive_core::ErrorCode;
use redrive_core::api::{
    CancelMessageMoveTaskInput, ListMessageMoveTasksInput, ListMessageMoveTasksResultEntry,
    SendMessageBatchInput, SendMessageBatchRequestEntry, StartMessageMoveTaskInput,
};
use redrive_engine::queue::MessageState;
use redrive_engine::store::{MessageRecord, MoveTaskRecord};
use redrive_engine::{Clock, Store, decode_task_handle};

use crate::common::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Q {
    A,
    B,
    Dlq,
    Dest,
}

const QUEUES: [Q; 4] = [Q::A, Q::B, Q::Dlq, Q::Dest];

fn max_receive(q: Q) -> u32 {
    match q {
        Q::A => 1,
        Q::B => 2,
        _ => unreachable!("{q:?} has no RedrivePolicy"),
    }
}

#[derive(Debug, Clone)]
enum Op {
    Send {
        to_b: bool,
        n: u8,
    },
    Receive {
        q: u8,
        max: u8,
        vis_secs: u8,
    },
    AdvanceClock(u32),
    /// Delete with the receipt handle at this index (mod the number of handles seen).
    Delete(usize),
    /// `dest`: 0 = each message's own source, 1 = the extra queue, 2 = source A.
    /// `rate`: 0 = adaptive, else 500, 50 or 5 msg/s.
    StartMoveTask {
        dest: u8,
        rate: u8,
    },
    /// Cancel the task with this index (mod the number of tasks started).
    CancelMoveTask(usize),
    /// Let tokio's (paused) clock run this many milliseconds.
    Progress(u32),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (any::<bool>(), 1u8..=5).prop_map(|(to_b, n)| Op::Send { to_b, n }),
        // Mostly sources, mostly with visibility 0, so messages reach the DLQ.
        7 => (
            prop_oneof![3 => Just(0u8), 3 => Just(1u8), 1 => Just(2u8), 1 => Just(3u8)],
            1u8..=6,
            prop_oneof![3 => Just(0u8), 1 => 1u8..=3],
        )
            .prop_map(|(q, max, vis_secs)| Op::Receive { q, max, vis_secs }),
        2 => (0u32..4_000).prop_map(Op::AdvanceClock),
        2 => any::<usize>().prop_map(Op::Delete),
        2 => (0u8..3, 0u8..4).prop_map(|(dest, rate)| Op::StartMoveTask { dest, rate }),
        1 => any::<usize>().prop_map(Op::CancelMoveTask),
        3 => prop_oneof![Just(0u32), 1u32..50, 50u32..1_500].prop_map(Op::Progress),
    ]
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Loc {
    q: Q,
    message_id: String,
    count: u32,
    state: MessageState,
    visible_at: u64,
    dead_letter_source: Option<String>,
}

impl Loc {
    fn visible_by(&self, now: u64) -> bool {
        self.state == MessageState::Ready || self.visible_at <= now
    }
}

#[derive(Debug, Clone)]
struct Handle {
    q: Q,
    body: String,
    message_id: String,
    handle: String,
}

/// The model's view of one task.
#[derive(Debug, Clone)]
struct Task {
    handle: String,
    dest: Option<Q>,
    rate: Option<i64>,
    to_move: u64,
    moved: u64,
    status: String,
}

impl Task {
    fn active(&self) -> bool {
        self.status == "RUNNING" || self.status == "CANCELLING"
    }
}

struct World {
    h: H,
    urls: BTreeMap<Q, String>,
    arns: BTreeMap<Q, String>,
    next_body: u64,
    sent: BTreeSet<String>,
    deleted: BTreeSet<String>,
    /// Every MessageId the engine ever handed out (redrives must not reuse one).
    ids_ever: BTreeSet<String>,
    handles: Vec<Handle>,
    /// Oldest first.
    tasks: Vec<Task>,
    redrives: usize,
}

impl World {
    async fn new() -> World {
        let h = H::new();
        let mut urls = BTreeMap::new();
        let mut arns = BTreeMap::new();
        let dlq = h.create("mt-dlq", &[]).await;
        arns.insert(Q::Dlq, h.arn(&dlq));
        urls.insert(Q::Dlq, dlq);
        for (q, name) in [(Q::A, "mt-a"), (Q::B, "mt-b")] {
            let policy = redrive_policy(&arns[&Q::Dlq], max_receive(q));
            let url = h
                .create(
                    name,
                    &[("VisibilityTimeout", "2"), ("RedrivePolicy", &policy)],
                )
                .await;
            arns.insert(q, h.arn(&url));
            urls.insert(q, url);
        }
        let dest = h.create("mt-dest", &[("VisibilityTimeout", "2")]).await;
        arns.insert(Q::Dest, h.arn(&dest));
        urls.insert(Q::Dest, dest);
        World {
            h,
            urls,
            arns,
            next_body: 0,
            sent: BTreeSet::new(),
            deleted: BTreeSet::new(),
            ids_ever: BTreeSet::new(),
            handles: Vec::new(),
            tasks: Vec::new(),
            redrives: 0,
        }
    }

    fn now(&self) -> u64 {
        self.h.clock.now_ms()
    }

    fn queue_of_arn(&self, arn: &str) -> Q {
        *self
            .arns
            .iter()
            .find(|(_, a)| a.as_str() == arn)
            .unwrap_or_else(|| panic!("unknown ARN {arn}"))
            .0
    }

    /// Where every live message is (by body), per the engine; checks each queue's indices,
    /// per-queue facts, and that the store holds exactly the engine's message records.
    fn snapshot(&self) -> BTreeMap<String, Loc> {
        let mut out = BTreeMap::new();
        let mut engine_recs: BTreeMap<(u64, u64), MessageRecord> = BTreeMap::new();
        for q in QUEUES {
            let queue = self.h.engine.resolve(&self.h.ctx, &self.urls[&q]).unwrap();
            let st = queue.state.lock();
            if let Err(e) = st.check_invariants() {
                panic!("{q:?}: {e}");
            }
            assert_eq!(
                st.ready.len() + st.delayed.len() + st.in_flight.len(),
                st.messages.len(),
                "{q:?}: indices do not partition the messages"
            );
            for (&seq, m) in &st.messages {
                let r = &m.rec.to_record();
                assert_eq!((r.seq, r.queue_uid), (seq, queue.uid));
                match q {
                    Q::A | Q::B => {
                        assert!(r.receive_count <= max_receive(q), "spent count in {q:?}");
                        assert_eq!(r.dead_letter_source_arn, None);
                    }
                    Q::Dest => assert_eq!(r.dead_letter_source_arn, None),
                    Q::Dlq => {
                        let src = r
                            .dead_letter_source_arn
                            .as_deref()
                            .expect("a DLQ message knows its source");
                        let src = self.queue_of_arn(src);
                        assert!(r.receive_count >= max_receive(src), "{r:?}");
                        assert!(r.dead_lettered_ms.is_some());
                    }
                }
                engine_recs.insert((queue.uid, seq), r.clone());
                let prev = out.insert(
                    r.payload_or_empty().body.to_string(),
                    Loc {
                        q,
                        message_id: r.message_id.clone(),
                        count: r.receive_count,
                        state: m.state,
                        visible_at: r.visible_at_ms,
                        dead_letter_source: r.dead_letter_source_arn.clone(),
                    },
                );
                assert!(
                    prev.is_none(),
                    "body {} is in two places",
                    r.payload_or_empty().body
                );
            }
        }
        let stored: BTreeMap<(u64, u64), MessageRecord> = self
            .h
            .store
            .load()
            .messages
            .into_iter()
            .map(|r| ((r.queue_uid, r.seq), r))
            .collect();
        assert_eq!(
            stored, engine_recs,
            "store records differ from the engine's"
        );
        out
    }

    fn list_tasks(&self) -> Vec<ListMessageMoveTasksResultEntry> {
        self.h
            .engine
            .list_message_move_tasks(ListMessageMoveTasksInput {
                source_arn: self.arns[&Q::Dlq].clone(),
                max_results: Some(10),
            })
            .expect("list move tasks")
            .results
    }

    /// The engine's tasks agree with the store's and with the model's.
    fn check_tasks(&self) -> Vec<ListMessageMoveTasksResultEntry> {
        let listed = self.list_tasks();
        let key = |status: &str,
                   moved: u64,
                   to_move: u64,
                   dest: Option<&String>,
                   rate: Option<i64>,
                   started: u64| {
            (
                started,
                status.to_string(),
                moved,
                to_move,
                dest.cloned(),
                rate,
            )
        };
        let mut from_engine: Vec<_> = listed
            .iter()
            .map(|t| {
                assert_eq!(t.source_arn, self.arns[&Q::Dlq]);
                key(
                    &t.status,
                    t.approximate_number_of_messages_moved as u64,
                    t.approximate_number_of_messages_to_move.expect("ToMove") as u64,
                    t.destination_arn.as_ref(),
                    t.max_number_of_messages_per_second,
                    t.started_timestamp as u64,
                )
            })
            .collect();
        let stored: Vec<MoveTaskRecord> = self.h.store.load().move_tasks;
        let mut from_store: Vec<_> = stored
            .iter()
            .map(|t| {
                key(
                    t.status.as_str(),
                    t.moved,
                    t.to_move,
                    t.destination_arn.as_ref(),
                    t.max_per_second,
                    t.started_ms,
                )
            })
            .collect();
        from_engine.sort();
        from_store.sort();
        assert_eq!(
            from_store, from_engine,
            "store tasks differ from the engine's"
        );

        // Newest first; the newest 10 are kept.
        let expected: Vec<&Task> = self.tasks.iter().rev().take(10).collect();
        assert_eq!(listed.len(), expected.len(), "{listed:?}");
        for (t, m) in listed.iter().zip(expected) {
            assert_eq!(t.status, m.status, "{t:?} vs model {m:?}");
            assert_eq!(
                t.approximate_number_of_messages_moved as u64, m.moved,
                "moved count of {t:?}"
            );
            assert_eq!(
                t.approximate_number_of_messages_to_move,
                Some(m.to_move as i64)
            );
            assert!(m.moved <= m.to_move, "{t:?}");
            assert_eq!(
                t.destination_arn.as_deref(),
                m.dest.map(|q| self.arns[&q].as_str())
            );
            assert_eq!(t.max_number_of_messages_per_second, m.rate);
            assert_eq!(
                t.task_handle.as_deref(),
                (t.status == "RUNNING").then_some(m.handle.as_str()),
                "TaskHandle only while RUNNING"
            );
            assert_eq!(t.failure_reason, None, "{t:?}");
        }
        assert!(
            self.tasks.iter().filter(|t| t.active()).count() <= 1,
            "more than one active task"
        );
        listed
    }

    fn check_accounting(&self, live: &BTreeMap<String, Loc>) {
        for body in &self.sent {
            let n = usize::from(live.contains_key(body)) + usize::from(self.deleted.contains(body));
            assert_eq!(n, 1, "{body}: live={:?} deleted", live.get(body));
        }
        for body in live.keys() {
            assert!(self.sent.contains(body), "{body} was never sent");
        }
    }

    fn new_bodies(&mut self, n: u8) -> Vec<String> {
        (0..n)
            .map(|_| {
                self.next_body += 1;
                format!("m{}", self.next_body)
            })
            .collect()
    }

    async fn apply(&mut self, op: &Op) {
        let before = self.snapshot();
        let now = self.now();
        let mut may_delete: BTreeSet<String> = BTreeSet::new();
        let mut appeared: BTreeMap<String, Q> = BTreeMap::new();
        let mut received: Vec<(Q, String, String, u32)> = Vec::new();
        let mut short_receive: Option<(Q, BTreeSet<String>)> = None;
        let mut lazy_from: Option<Q> = None;
        let progressing = matches!(op, Op::Progress(_));
        // The task that may progress during this op, and the model's statuses before it.
        let active_before = self.tasks.iter().rposition(Task::active);

        match op {
            Op::Send { to_b, n } => {
                let q = if *to_b { Q::B } else { Q::A };
                let bodies = self.new_bodies(*n);
                let out = self
                    .h
                    .engine
                    .send_message_batch(
                        &self.h.ctx,
                        SendMessageBatchInput {
                            queue_url: self.urls[&q].clone(),
                            entries: bodies
                                .iter()
                                .enumerate()
                                .map(|(i, b)| SendMessageBatchRequestEntry {
                                    id: format!("e{i}"),
                                    message_body: Some(b.clone()),
                                    ..Default::default()
                                })
                                .collect(),
                        },
                    )
                    .await
                    .unwrap();
                assert!(out.failed.is_empty());
                assert_eq!(out.successful.len(), bodies.len());
                for e in out.successful {
                    assert!(
                        self.ids_ever.insert(e.result.message_id),
                        "MessageId reused"
                    );
                }
                for b in bodies {
                    self.sent.insert(b.clone());
                    appeared.insert(b, q);
                }
            }
            Op::Receive { q, max, vis_secs } => {
                let q = QUEUES[usize::from(*q)];
                let msgs = self
                    .h
                    .recv(&self.urls[&q], i64::from(*max), Some(i64::from(*vis_secs)))
                    .await;
                assert!(msgs.len() <= usize::from(*max));
                let mut seen = BTreeSet::new();
                for m in msgs {
                    assert!(seen.insert(m.body.clone()), "returned twice");
                    let count: u32 = m.attributes["ApproximateReceiveCount"].parse().unwrap();
                    received.push((q, m.body.clone(), m.message_id.clone(), count));
                    self.handles.push(Handle {
                        q,
                        body: m.body,
                        message_id: m.message_id,
                        handle: m.receipt_handle,
                    });
                }
                if seen.len() < usize::from(*max) {
                    short_receive = Some((q, seen));
                }
                if matches!(q, Q::A | Q::B) {
                    lazy_from = Some(q);
                }
            }
            Op::AdvanceClock(ms) => self.h.advance_ms(u64::from(*ms)),
            Op::Delete(i) => {
                if !self.handles.is_empty() {
                    let hd = self.handles[i % self.handles.len()].clone();
                    // Deleted iff that very message (same MessageId) is still in the queue
                    // the handle came from.
                    let predicted = before
                        .get(&hd.body)
                        .is_some_and(|l| l.q == hd.q && l.message_id == hd.message_id);
                    self.h
                        .delete(&self.urls[&hd.q], &hd.handle)
                        .await
                        .expect("delete with a handle we were given");
                    if predicted {
                        may_delete.insert(hd.body.clone());
                        self.deleted.insert(hd.body);
                    }
                }
            }
            Op::StartMoveTask { dest, rate } => {
                let dest = match dest {
                    0 => None,
                    1 => Some(Q::Dest),
                    _ => Some(Q::A),
                };
                let rate = match rate {
                    0 => None,
                    1 => Some(500),
                    2 => Some(50),
                    _ => Some(5),
                };
                let visible = before
                    .values()
                    .filter(|l| l.q == Q::Dlq && l.visible_by(now))
                    .count() as u64;
                let result = self
                    .h
                    .engine
                    .start_message_move_task(StartMessageMoveTaskInput {
                        source_arn: self.arns[&Q::Dlq].clone(),
                        destination_arn: dest.map(|q| self.arns[&q].clone()),
                        max_number_of_messages_per_second: rate,
                    })
                    .await;
                if active_before.is_some() {
                    let e = result.expect_err("a second active task was accepted");
                    assert_eq!(e.code, ErrorCode::InvalidParameterValue, "{e}");
                } else {
                    let handle = result.expect("start move task").task_handle;
                    let (_, source) = decode_task_handle(&handle).expect("decodable handle");
                    assert_eq!(source, self.arns[&Q::Dlq]);
                    self.tasks.push(Task {
                        handle,
                        dest,
                        rate,
                        to_move: visible,
                        moved: 0,
                        status: "RUNNING".into(),
                    });
                    let listed = self.list_tasks();
                    assert_eq!(listed[0].started_timestamp as u64, now);
                }
            }
            Op::CancelMoveTask(i) => {
                if !self.tasks.is_empty() {
                    let idx = i % self.tasks.len();
                    let result = self
                        .h
                        .engine
                        .cancel_message_move_task(CancelMessageMoveTaskInput {
                            task_handle: self.tasks[idx].handle.clone(),
                        })
                        .await;
                    let t = &mut self.tasks[idx];
                    if t.status == "RUNNING" {
                        let out = result.expect("cancel a running task");
                        assert_eq!(out.approximate_number_of_messages_moved as u64, t.moved);
                        t.status = "CANCELLING".into();
                    } else {
                        let e = result.expect_err("cancelled a task that is not RUNNING");
                        assert_eq!(e.code, ErrorCode::InvalidParameterValue, "{e}");
                    }
                }
            }
            Op::Progress(ms) => {
                if *ms == 0 {
                    tokio::task::yield_now().await;
                } else {
                    tokio::time::sleep(Duration::from_millis(u64::from(*ms))).await;
                }
            }
        }

        let after = self.snapshot();

        // Message transitions.
        let mut redriven = 0u64;
        for (body, b) in &before {
            let Some(a) = after.get(body) else {
                assert!(may_delete.contains(body), "{body} vanished during {op:?}");
                continue;
            };
            if a.q == b.q {
                assert_eq!(a.message_id, b.message_id, "{body}: id changed in place");
                let was_received = received.iter().any(|(_, r, _, _)| r == body);
                let expect = b.count + u32::from(was_received);
                assert_eq!(a.count, expect, "{body}: receive count during {op:?}");
                continue;
            }
            if b.q != Q::Dlq {
                // The lazy move: same message, on a receive from its own source.
                assert_eq!(
                    lazy_from,
                    Some(b.q),
                    "{body} moved {b:?} -> {a:?} during {op:?}"
                );
                assert_eq!(a.q, Q::Dlq, "{body}: {b:?} -> {a:?}");
                assert_eq!(
                    a.message_id, b.message_id,
                    "the DLQ move keeps the MessageId"
                );
                assert!(b.count >= max_receive(b.q), "moved with count {}", b.count);
                assert_eq!(a.count, b.count, "a move does not count as a receive");
                assert_eq!(a.state, MessageState::Ready);
                assert_eq!(a.dead_letter_source.as_deref(), Some(&*self.arns[&b.q]));
                continue;
            }
            // A redrive: a new message, only while a task runs.
            assert!(progressing, "{body} redriven during {op:?}");
            let task = &self.tasks[active_before.expect("redrive without an active task")];
            let want = task.dest.unwrap_or_else(|| {
                self.queue_of_arn(b.dead_letter_source.as_deref().expect("source"))
            });
            assert_eq!(a.q, want, "{body} redriven to the wrong queue ({task:?})");
            assert!(
                !self.ids_ever.contains(&a.message_id),
                "{body}: redriven under an old MessageId {}",
                a.message_id
            );
            assert!(
                b.visible_by(now),
                "{body}: a non-visible DLQ message was moved"
            );
            assert_eq!(a.count, 0, "{body}: redrive kept the receive count");
            assert_eq!(a.dead_letter_source, None);
            assert_eq!(a.state, MessageState::Ready);
            redriven += 1;
        }
        for (body, a) in &after {
            if !before.contains_key(body) {
                assert_eq!(
                    appeared.get(body),
                    Some(&a.q),
                    "{body} appeared during {op:?}"
                );
                assert_eq!(a.count, 0);
            }
        }
        for body in &may_delete {
            assert!(
                !after.contains_key(body),
                "{body} predicted deleted but live"
            );
        }
        for (q, body, id, count) in &received {
            let a = &after[body];
            assert_eq!(
                (a.q, &a.message_id),
                (*q, id),
                "returned from the wrong queue"
            );
            assert_eq!(a.state, MessageState::InFlight);
            assert_eq!(a.count, *count);
        }
        if let Some((q, returned)) = short_receive {
            for (body, a) in &after {
                if a.q == q && !returned.contains(body) {
                    assert!(
                        !a.visible_by(now),
                        "{body} was receivable but not returned by {op:?}: {a:?}"
                    );
                }
            }
        }
        // Redriven messages get ids nobody saw before; remember them.
        for a in after.values() {
            self.ids_ever.insert(a.message_id.clone());
        }
        self.redrives += redriven as usize;

        // Task progress: exactly the redrives observed; status transitions as allowed.
        let listed = self.list_tasks();
        if let Some(i) = active_before {
            // Only the newest task can be active, and the listing starts with it.
            assert_eq!(i, self.tasks.len() - 1);
            let e = &listed[0];
            let t = &mut self.tasks[i];
            t.moved += redriven;
            let dlq_empty = !after.values().any(|l| l.q == Q::Dlq && l.visible_by(now));
            let allowed: &[&str] = match t.status.as_str() {
                "RUNNING" if progressing => &["RUNNING", "COMPLETED"],
                "CANCELLING" if progressing => &["CANCELLING", "CANCELLED"],
                s => &[s],
            };
            assert!(
                allowed.contains(&e.status.as_str()),
                "{} -> {} during {op:?}",
                t.status,
                e.status
            );
            if e.status == "COMPLETED" && t.moved < t.to_move {
                // Finished early only because the DLQ ran out of visible messages.
                assert!(
                    dlq_empty,
                    "completed with {}/{} moved while messages were visible",
                    t.moved, t.to_move
                );
            }
            t.status = e.status.clone();
        } else {
            assert_eq!(redriven, 0);
        }
        self.check_tasks();
        self.check_accounting(&after);
    }

    /// Lets every task finish.
    async fn settle(&mut self) {
        for _ in 0..200 {
            if !self.tasks.iter().any(Task::active) {
                return;
            }
            self.apply(&Op::Progress(1_000)).await;
        }
        panic!("tasks never finished: {:?}", self.tasks);
    }
}

fn paused_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 128,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn move_tasks_keep_every_message_in_exactly_one_place(
        ops in prop::collection::vec(op(), 1..=80)
    ) {
        paused_runtime().block_on(async {
            let mut w = World::new().await;
            for op in &ops {
                w.apply(op).await;
            }
            w.settle().await;
            // A final redrive of whatever is left in the DLQ empties its visible part.
            w.apply(&Op::AdvanceClock(4_000)).await;
            w.apply(&Op::StartMoveTask { dest: 0, rate: 1 }).await;
            w.settle().await;
            let live = w.snapshot();
            assert!(
                !live.values().any(|l| l.q == Q::Dlq),
                "DLQ not emptied: {live:?}"
            );
            let last = w.tasks.last().unwrap();
            assert_eq!(last.status, "COMPLETED");
            assert_eq!(last.moved, last.to_move);
        });
    }
}

/// The model with a fixed script, so a regression shows without shrinking: a shared DLQ fans
/// back out, a cancelled task keeps what it moved, a second task finishes the job.
#[test]
fn scripted_redrive_round_trip() {
    paused_runtime().block_on(async {
        let mut w = World::new().await;
        for op in [
            Op::Send { to_b: false, n: 3 },
            Op::Send { to_b: true, n: 3 },
            Op::Receive {
                q: 0,
                max: 4,
                vis_secs: 0,
            },
            Op::Receive {
                q: 1,
                max: 4,
                vis_secs: 0,
            },
            Op::Receive {
                q: 1,
                max: 4,
                vis_secs: 0,
            },
            Op::Receive {
                q: 0,
                max: 4,
                vis_secs: 0,
            },
            Op::Receive {
                q: 1,
                max: 4,
                vis_secs: 0,
            },
            Op::StartMoveTask { dest: 0, rate: 3 },
            Op::StartMoveTask { dest: 1, rate: 1 },
            Op::Progress(250),
            Op::CancelMoveTask(0),
            Op::CancelMoveTask(0),
            Op::Progress(1_000),
            Op::StartMoveTask { dest: 1, rate: 0 },
            Op::Progress(1_000),
        ] {
            w.apply(&op).await;
        }
        assert_eq!(w.tasks.len(), 2);
        assert_eq!(w.tasks[0].status, "CANCELLED");
        assert!((1..6).contains(&w.tasks[0].moved), "{:?}", w.tasks[0]);
        assert_eq!(w.tasks[1].status, "COMPLETED");
        assert_eq!(w.tasks[0].moved + w.tasks[1].moved, 6);
        assert_eq!(w.redrives, 6);
        let live = w.snapshot();
        assert_eq!(live.len(), 6);
        assert_eq!(
            live.values().filter(|l| l.q == Q::Dest).count() as u64,
            w.tasks[1].moved
        );
    });
}

// ---------------------------------------------------------------------------------------------
// Restart and the 36-hour limit (fixed scripts on the same harness).

/// A DLQ `name-dlq` holding `n` dead-lettered messages from `name-src` (maxReceiveCount 1).
async fn dead_lettered(h: &H, name: &str, n: usize) -> (String, String) {
    let dlq = h.create(&format!("{name}-dlq"), &[]).await;
    let policy = redrive_policy(&h.arn(&dlq), 1);
    let src = h
        .create(&format!("{name}-src"), &[("RedrivePolicy", &policy)])
        .await;
    for i in 0..n {
        h.send(&src, &format!("{name}-{i}")).await;
    }
    assert_eq!(h.recv(&src, 10, Some(0)).await.len(), n);
    assert!(h.recv(&src, 10, Some(0)).await.is_empty());
    assert_eq!(h.counts(&dlq), (n as u64, 0, 0));
    (src, dlq)
}

fn tasks_of(h: &H, dlq: &str) -> Vec<ListMessageMoveTasksResultEntry> {
    h.engine
        .list_message_move_tasks(ListMessageMoveTasksInput {
            source_arn: h.arn(dlq),
            max_results: Some(10),
        })
        .unwrap()
        .results
}

fn start_input(h: &H, dlq: &str, rate: i64) -> StartMessageMoveTaskInput {
    StartMessageMoveTaskInput {
        source_arn: h.arn(dlq),
        destination_arn: None,
        max_number_of_messages_per_second: Some(rate),
    }
}

#[test]
fn tasks_resume_after_a_restart() {
    let h = H::new();
    // First life: one task part-way through, one being cancelled. Dropping the runtime kills
    // the runners, as a crash would.
    let (src, dlq, src2, dlq2) = paused_runtime().block_on(async {
        let (src, dlq) = dead_lettered(&h, "run", 5).await;
        let (src2, dlq2) = dead_lettered(&h, "cxl", 3).await;
        h.engine
            .start_message_move_task(start_input(&h, &dlq, 5))
            .await
            .unwrap();
        let handle = h
            .engine
            .start_message_move_task(start_input(&h, &dlq2, 5))
            .await
            .unwrap()
            .task_handle;
        tokio::time::sleep(Duration::from_millis(250)).await;
        // Cancelled with no chance for its runner to see it.
        h.engine
            .cancel_message_move_task(CancelMessageMoveTaskInput {
                task_handle: handle,
            })
            .await
            .unwrap();
        (src, dlq, src2, dlq2)
    });
    let t = &tasks_of(&h, &dlq)[0];
    assert_eq!(
        (t.status.as_str(), t.approximate_number_of_messages_moved),
        ("RUNNING", 2)
    );
    let c = &tasks_of(&h, &dlq2)[0];
    assert_eq!(c.status, "CANCELLING");
    let moved2 = c.approximate_number_of_messages_moved;
    assert_eq!(moved2, 2);

    // Second life over the same store.
    let h2 = h.reopen();
    paused_runtime().block_on(async {
        let t = &tasks_of(&h2, &dlq)[0];
        assert_eq!(
            (t.status.as_str(), t.approximate_number_of_messages_moved),
            ("RUNNING", 2)
        );
        h2.engine.resume_move_tasks();
        let c = &tasks_of(&h2, &dlq2)[0];
        assert_eq!(
            c.status, "CANCELLED",
            "a CANCELLING task ends CANCELLED on restart"
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
        let t = &tasks_of(&h2, &dlq)[0];
        assert_eq!(t.status, "COMPLETED");
        assert_eq!(t.approximate_number_of_messages_moved, 5);
        assert_eq!(t.approximate_number_of_messages_to_move, Some(5));
        assert_eq!(h2.counts(&dlq), (0, 0, 0));
        assert_eq!(h2.counts(&src), (5, 0, 0));
        let c = &tasks_of(&h2, &dlq2)[0];
        assert_eq!(c.approximate_number_of_messages_moved, moved2);
        assert_eq!(h2.counts(&dlq2), (3 - moved2 as u64, 0, 0));
        assert_eq!(h2.counts(&src2), (moved2 as u64, 0, 0));
    });
}

#[test]
fn a_task_fails_after_36_hours() {
    paused_runtime().block_on(async {
        let h = H::new();
        let (src, dlq) = dead_lettered(&h, "long", 4).await;
        h.engine
            .start_message_move_task(start_input(&h, &dlq, 1))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(
            tasks_of(&h, &dlq)[0].approximate_number_of_messages_moved,
            1
        );
        h.advance_ms(36 * 3600 * 1000);
        tokio::time::sleep(Duration::from_secs(2)).await;
        let t = &tasks_of(&h, &dlq)[0];
        assert_eq!(t.status, "FAILED", "{t:?}");
        assert!(t.failure_reason.is_some(), "{t:?}");
        assert_eq!(t.task_handle, None);
        let moved = t.approximate_number_of_messages_moved as u64;
        assert!(moved < 4, "{t:?}");
        assert_eq!(h.counts(&dlq).0, 4 - moved);
        assert_eq!(h.counts(&src).0, moved);
    });
}

#[test]

fn cancel_with_nothing_visible_left_ends_cancelled() {
    paused_runtime().block_on(async {
        let h = H::new();
        let (_src, dlq) = dead_lettered(&h, "cv", 2).await;
        let handle = h
            .engine
            .start_message_move_task(start_input(&h, &dlq, 1))
            .await
            .unwrap()
            .task_handle;
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(
            tasks_of(&h, &dlq)[0].approximate_number_of_messages_moved,
            1
        );
        // The other message is in flight: nothing visible is left to move.
        assert_eq!(h.recv(&dlq, 10, Some(600)).await.len(), 1);
        h.engine
            .cancel_message_move_task(CancelMessageMoveTaskInput {
                task_handle: handle,
            })
            .await
            .unwrap();
        assert_eq!(tasks_of(&h, &dlq)[0].status, "CANCELLING");
        tokio::time::sleep(Duration::from_secs(2)).await;
        let t = &tasks_of(&h, &dlq)[0];
        assert_eq!(
            t.status, "CANCELLED",
            "RUNNING -> CANCELLING -> CANCELLED: {t:?}"
        );
        assert_eq!(t.approximate_number_of_messages_moved, 1);
    });
}
