//! Random operation sequences against a source queue with a RedrivePolicy (maxReceiveCount 2)
//! and its DLQ. After every operation:
//! - every MessageId ever sent is in exactly one place: the source, the DLQ, or deleted by a
//!   consumer (deletions are predicted by the model, not read back from the engine);
//! - each queue's indices hold every message exactly once, in the index matching its state;
//! - the store's records equal the engine's in-memory records;
//! - each operation moved messages only in the ways it may (only a source receive moves to
//!   the DLQ, and only messages whose receive count is spent).

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use redrive_core::ErrorCode;
use redrive_core::api::{SendMessageBatchInput, SendMessageBatchRequestEntry};
use redrive_engine::queue::MessageState;
use redrive_engine::store::MessageRecord;
use redrive_engine::{Clock, Store};

use crate::common::*;

const MAX_RECEIVE_COUNT: u32 = 2;

#[derive(Debug, Clone)]
enum Op {
    /// Send this many messages to the source (a batch when more than one).
    Send(u8),
    Receive {
        dlq: bool,
        max: u8,
        vis_secs: u8,
    },
    AdvanceClock(u32),
    /// Delete using the receipt handle at this index (mod the number of handles seen).
    DeleteRandomReceived(usize),
    ChangeVisibilityRandom(usize, u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (1u8..=3).prop_map(Op::Send),
        5 => (0u8..4, 1u8..=4, 0u8..=3).prop_map(|(d, max, vis_secs)| Op::Receive {
            dlq: d == 0,
            max,
            vis_secs,
        }),
        3 => (0u32..4_000).prop_map(Op::AdvanceClock),
        2 => any::<usize>().prop_map(Op::DeleteRandomReceived),
        1 => (any::<usize>(), 0u8..=3).prop_map(|(i, s)| Op::ChangeVisibilityRandom(i, s)),
    ]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Which {
    Src,
    Dlq,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Loc {
    which: Which,
    count: u32,
    state: MessageState,
    visible_at: u64,
}

#[derive(Debug, Clone)]
struct Handle {
    which: Which,
    message_id: String,
    handle: String,
}

struct World {
    h: H,
    src: String,
    dlq: String,
    src_arn: String,
    sent: BTreeSet<String>,
    deleted: BTreeSet<String>,
    handles: Vec<Handle>,
}

impl World {
    async fn new() -> World {
        let h = H::new();
        let dlq = h.create("model-dlq", &[]).await;
        let policy = redrive_policy(&h.arn(&dlq), MAX_RECEIVE_COUNT);
        let src = h
            .create(
                "model-src",
                &[("VisibilityTimeout", "2"), ("RedrivePolicy", &policy)],
            )
            .await;
        let src_arn = h.arn(&src);
        World {
            h,
            src,
            dlq,
            src_arn,
            sent: BTreeSet::new(),
            deleted: BTreeSet::new(),
            handles: Vec::new(),
        }
    }

    fn url(&self, w: Which) -> &str {
        match w {
            Which::Src => &self.src,
            Which::Dlq => &self.dlq,
        }
    }

    /// Where every live message is, per the engine; checks the index invariant and that the
    /// store holds exactly the engine's records.
    fn snapshot(&self) -> BTreeMap<String, Loc> {
        let mut out = BTreeMap::new();
        let mut engine_recs: BTreeMap<(u64, u64), MessageRecord> = BTreeMap::new();
        for which in [Which::Src, Which::Dlq] {
            let q = self.h.engine.resolve(&self.h.ctx, self.url(which)).unwrap();
            let st = q.state.lock();
            if let Err(e) = st.check_invariants() {
                panic!("{which:?}: {e}");
            }
            let n = st.messages.len();
            assert_eq!(
                st.ready.len() + st.delayed.len() + st.in_flight.len(),
                n,
                "{which:?}: indices do not partition the messages"
            );
            assert_eq!(st.retention.len(), n, "{which:?}: retention index size");
            for (&seq, m) in &st.messages {
                let r = &m.rec.to_record();
                assert_eq!(r.seq, seq);
                assert_eq!(r.queue_uid, q.uid);
                let indexed = match m.state {
                    MessageState::Ready => st.ready.contains(&seq),
                    MessageState::Delayed => st.delayed.contains(&(r.visible_at_ms, seq)),
                    MessageState::InFlight => st.in_flight.contains(&(r.visible_at_ms, seq)),
                };
                assert!(
                    indexed,
                    "{which:?} seq {seq}: not in its {:?} index",
                    m.state
                );
                assert!(st.retention.contains(&(r.enqueued_ms, seq)));
                match which {
                    Which::Src => {
                        assert!(
                            r.receive_count <= MAX_RECEIVE_COUNT,
                            "spent count in source"
                        );
                        assert_eq!(r.dead_letter_source_arn, None);
                    }
                    Which::Dlq => {
                        assert!(r.receive_count >= MAX_RECEIVE_COUNT);
                        assert_eq!(r.dead_letter_source_arn.as_deref(), Some(&*self.src_arn));
                    }
                }
                engine_recs.insert((q.uid, seq), r.clone());
                let prev = out.insert(
                    r.message_id.clone(),
                    Loc {
                        which,
                        count: r.receive_count,
                        state: m.state,
                        visible_at: r.visible_at_ms,
                    },
                );
                assert!(prev.is_none(), "{} is in two places", r.message_id);
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
        let ids = |m: &BTreeMap<(u64, u64), MessageRecord>| -> BTreeSet<(u64, String)> {
            m.values()
                .map(|r| (r.queue_uid, r.message_id.clone()))
                .collect()
        };
        assert_eq!(
            ids(&stored),
            ids(&engine_recs),
            "store's (queue, MessageId) set differs from the engine's"
        );
        assert_eq!(
            stored, engine_recs,
            "store records differ from the engine's"
        );
        out
    }

    /// Every MessageId ever sent is live in exactly one queue or deleted, never both.
    fn check_accounting(&self, live: &BTreeMap<String, Loc>) {
        for id in &self.sent {
            let n = usize::from(live.contains_key(id)) + usize::from(self.deleted.contains(id));
            assert_eq!(
                n,
                1,
                "{id}: live={} deleted={}",
                live.contains_key(id),
                self.deleted.contains(id)
            );
        }
        for id in live.keys() {
            assert!(self.sent.contains(id), "{id} was never sent");
        }
    }

    async fn apply(&mut self, op: &Op) {
        let before = self.snapshot();
        let now = self.h.clock.now_ms();
        // Messages that may leave `before` (deleted) and that may move Src -> Dlq.
        let mut may_delete: BTreeSet<String> = BTreeSet::new();
        let mut may_move = false;
        let mut received: Vec<(Which, String, u32)> = Vec::new();
        let mut short_receive: Option<(Which, BTreeSet<String>)> = None;
        let mut cmv_ok: Option<(String, u64)> = None;

        match op {
            Op::Send(n) => {
                let ids: Vec<String> = if *n == 1 {
                    vec![self.h.send(&self.src, "one").await.message_id]
                } else {
                    let out = self
                        .h
                        .engine
                        .send_message_batch(
                            &self.h.ctx,
                            SendMessageBatchInput {
                                queue_url: self.src.clone(),
                                entries: (0..*n)
                                    .map(|i| SendMessageBatchRequestEntry {
                                        id: format!("e{i}"),
                                        message_body: Some(format!("batch {i}")),
                                        ..Default::default()
                                    })
                                    .collect(),
                            },
                        )
                        .await
                        .unwrap();
                    assert!(out.failed.is_empty());
                    out.successful
                        .into_iter()
                        .map(|e| e.result.message_id)
                        .collect()
                };
                assert_eq!(ids.len(), usize::from(*n));
                for id in ids {
                    assert!(self.sent.insert(id), "MessageId reused");
                }
            }
            Op::Receive { dlq, max, vis_secs } => {
                let which = if *dlq { Which::Dlq } else { Which::Src };
                let msgs = self
                    .h
                    .recv(self.url(which), i64::from(*max), Some(i64::from(*vis_secs)))
                    .await;
                assert!(msgs.len() <= usize::from(*max));
                let mut seen = BTreeSet::new();
                for m in msgs {
                    assert!(seen.insert(m.message_id.clone()), "returned twice");
                    let count: u32 = m.attributes["ApproximateReceiveCount"].parse().unwrap();
                    received.push((which, m.message_id.clone(), count));
                    self.handles.push(Handle {
                        which,
                        message_id: m.message_id,
                        handle: m.receipt_handle,
                    });
                }
                if seen.len() < usize::from(*max) {
                    short_receive = Some((which, seen));
                }
                may_move = which == Which::Src;
            }
            Op::AdvanceClock(ms) => self.h.advance_ms(u64::from(*ms)),
            Op::DeleteRandomReceived(i) => {
                if !self.handles.is_empty() {
                    let hd = self.handles[i % self.handles.len()].clone();
                    // Predicted: deleted iff the message is still in the queue it was received
                    // from (a handle from the source does nothing once it moved to the DLQ).
                    let predicted = before
                        .get(&hd.message_id)
                        .is_some_and(|l| l.which == hd.which);
                    self.h
                        .delete(self.url(hd.which), &hd.handle)
                        .await
                        .expect("delete with a handle we were given");
                    if predicted {
                        may_delete.insert(hd.message_id.clone());
                        self.deleted.insert(hd.message_id);
                    }
                }
            }
            Op::ChangeVisibilityRandom(i, secs) => {
                if !self.handles.is_empty() {
                    let hd = self.handles[i % self.handles.len()].clone();
                    match self
                        .h
                        .change_vis(self.url(hd.which), &hd.handle, i64::from(*secs))
                        .await
                    {
                        Ok(()) => cmv_ok = Some((hd.message_id, now + u64::from(*secs) * 1000)),
                        Err(e) => assert!(
                            matches!(
                                e.code,
                                ErrorCode::MessageNotInflight | ErrorCode::InvalidParameterValue
                            ),
                            "unexpected ChangeMessageVisibility error {e}"
                        ),
                    }
                }
            }
        }

        let after = self.snapshot();
        self.check_accounting(&after);

        // Allowed transitions.
        for (id, b) in &before {
            match after.get(id) {
                None => assert!(may_delete.contains(id), "{id} vanished during {op:?}"),
                Some(a) if a.which != b.which => {
                    assert!(may_move, "{id} moved during {op:?}");
                    assert_eq!((b.which, a.which), (Which::Src, Which::Dlq));
                    assert!(b.count >= MAX_RECEIVE_COUNT, "moved with count {}", b.count);
                    assert_eq!(a.count, b.count, "a move does not count as a receive");
                    assert_eq!(a.state, MessageState::Ready);
                }
                Some(a) => {
                    let was_received = received.iter().any(|(_, r, _)| r == id);
                    let expect = if was_received { b.count + 1 } else { b.count };
                    assert_eq!(a.count, expect, "{id}: receive count during {op:?}");
                }
            }
        }
        for id in &may_delete {
            assert!(
                !after.contains_key(id),
                "{id} predicted deleted but still live"
            );
        }
        for (which, id, count) in &received {
            let a = &after[id];
            assert_eq!(a.which, *which, "returned from the wrong queue");
            assert_eq!(a.state, MessageState::InFlight);
            assert_eq!(a.count, *count);
            if *which == Which::Src {
                assert!(*count <= MAX_RECEIVE_COUNT);
            }
        }
        if let Some((which, returned)) = short_receive {
            // Fewer than asked for: nothing else in that queue was receivable.
            for (id, a) in &after {
                if a.which == which && !returned.contains(id) {
                    assert!(
                        a.visible_at > now && a.state != MessageState::Ready,
                        "{id} was receivable but not returned by {op:?}: {a:?}"
                    );
                }
            }
        }
        if let Some((id, deadline)) = cmv_ok {
            let a = &after[&id];
            // ChangeMessageVisibility 0 with the latest handle of a message that is visible
            // again leaves it visible (issue 20 point 3); every other success hides it until
            // the deadline.
            let b = &before[&id];
            if deadline == now && (b.state == MessageState::Ready || b.visible_at <= now) {
                assert_eq!(a.state, MessageState::Ready);
            } else {
                assert_eq!(a.state, MessageState::InFlight);
                assert_eq!(a.visible_at, deadline);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 64,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn every_message_is_in_exactly_one_place(ops in prop::collection::vec(op(), 1..=60)) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut w = World::new().await;
            for op in &ops {
                w.apply(op).await;
            }
            // Drain: keep receiving (and abandoning) from the source until every message
            // left is in the DLQ; nothing may be lost on the way.
            w.apply(&Op::AdvanceClock(4_000)).await;
            for _ in 0..200 {
                w.apply(&Op::Receive { dlq: false, max: 10, vis_secs: 0 }).await;
                if w.snapshot().values().all(|l| l.which == Which::Dlq) {
                    break;
                }
            }
            let live = w.snapshot();
            assert!(
                live.values().all(|l| l.which == Which::Dlq),
                "source not drained: {live:?}"
            );
        });
    }
}
