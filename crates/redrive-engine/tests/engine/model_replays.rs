//! Random operation sequences with selective redrive (replays), on the harness of
//! `model_tasks`: two source queues (`maxReceiveCount` 1 and 2) share one DLQ; a fourth queue
//! is a possible fixed destination. Bodies are JSON (`{"n": 17}`, each `n` unique). Besides
//! sends, receives (the DLQ included), deletes and clock steps, the sequences start replays
//! (a filter from a small set, a destination — each message's own source, the extra queue or
//! source A —, a rate, an optional per-key rate on `.n % 2`, an optional limit, dry or not),
//! cancel them, let them run (`Progress`: tokio's paused clock advances, the engine's
//! `ManualClock` does not), and let them run while a consumer reads the DLQ and deletes some
//! of what it gets (`ConsumeDlq`).
//!
//! After every operation:
//! - every message ever sent is in exactly one place: a queue, or deleted by a consumer as the
//!   model predicts;
//! - a message only changes queue by the lazy DLQ move (same MessageId, on a receive from its
//!   source) or by a replay: a NEW MessageId, receive count 0, the `Redrive.Replay` attribute
//!   (`replayOf` the old MessageId, `run` the replay, `replayCount` one more than before), into
//!   the replay's destination (fixed, or the message's `DeadLetterQueueSourceArn`);
//! - a replay only moves messages of its selected set, which the model computes on its own
//!   (visible DLQ messages matching the filter, oldest first, up to the limit) and which a dry
//!   run at the same moment reports; messages dead-lettered after the start are never moved by
//!   it; messages left in place keep their receive count and visibility;
//! - a dry run changes nothing (messages, store, replays);
//! - counters: `moved` = the moves observed = the move log; `moved + failed + skipped +
//!   remaining == selected`; only messages a consumer touched are skipped; a fixed rate (global
//!   and per key) is kept; at most one active replay per DLQ (a second start gets
//!   `ReplayError::Running`); a COMPLETED replay moved every selected message a consumer did
//!   not take;
//! - the store's message records and replay documents (task, selection, move log) equal the
//!   engine's.
//!
//! Bugs this test found, kept as regression tests at the end of this file (all fixed):
//! `returned_count_is_persisted` and `skipped_count_is_persisted` (the stored task lagged the
//! engine's `returned` / `skipped`), `per_key_rate_holds_for_retried_messages` (messages
//! retried after being in flight ignored `ratePer`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use proptest::prelude::*;
use redrive_core::ErrorCode;
use redrive_core::api::{
    DeleteMessageInput, ReceiveMessageInput, SendMessageBatchInput, SendMessageBatchRequestEntry,
};
use redrive_engine::queue::MessageState;
use redrive_engine::replays::{
    DOC_REPLAY, DOC_REPLAY_MOVE, DOC_REPLAY_SELECTION, RatePer, ReplayError, ReplayMove,
    ReplayRequest, ReplayStart, ReplayStatus, ReplayTask,
};
use redrive_engine::store::MessageRecord;
use redrive_engine::{Clock, Engine, RequestContext, Store};
use redrive_select::provenance::{self, Provenance};
use redrive_select::selection::SelectionSpec;

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

/// The filters a replay may use; `None` is no filter at all.
const FILTERS: [Option<&str>; 5] = [
    Some("true"),
    Some(".n % 2 == 0"),
    Some(".n % 3 == 0"),
    Some("$meta.receiveCount >= 2"),
    None,
];

/// The model's reading of [`FILTERS`].
fn filter_matches(filter: u8, n: u64, receive_count: u32) -> bool {
    match filter {
        0 | 4 => true,
        1 => n.is_multiple_of(2),
        2 => n.is_multiple_of(3),
        3 => receive_count >= 2,
        _ => unreachable!(),
    }
}

/// The per-key rate, msg/s, on `.n % 2`.
const RATE_PER: f64 = 4.0;

fn n_of(body: &str) -> u64 {
    let v: serde_json::Value = serde_json::from_str(body).expect("JSON body");
    v["n"].as_u64().expect("n")
}

#[derive(Debug, Clone, Copy)]
struct StartSpec {
    /// Index into [`FILTERS`].
    filter: u8,
    /// 0 = each message's own source, 1 = the extra queue, 2 = source A.
    dest: u8,
    /// 0 = adaptive, else 500, 50 or 5 msg/s.
    rate: u8,
    rate_per: bool,
    limit: Option<u8>,
    dry_run: bool,
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
    StartReplay(StartSpec),
    /// Cancel the replay with this index (mod the number of replays the model knows).
    CancelReplay(usize),
    /// Let tokio's (paused) clock run this many milliseconds.
    Progress(u32),
    /// Progress while a consumer receives from the DLQ every `every` ms (visibility
    /// `vis_secs` ≥ 1, so nothing it holds is visible again before the op ends) and deletes
    /// none (`delete` 0), those with an odd `n` (1) or all (2) of what it gets.
    ConsumeDlq {
        ms: u32,
        every: u32,
        max: u8,
        vis_secs: u8,
        delete: u8,
    },
    /// Not an operation of its own: sends `n` messages to A or B and receives from there (with
    /// visibility 0) until they are dead-lettered; each step is applied and checked.
    DeadLetter {
        to_b: bool,
        n: u8,
    },
}

impl Op {
    /// The operations to apply (a `DeadLetter` expands into sends and receives).
    fn steps(&self) -> Vec<Op> {
        match *self {
            Op::DeadLetter { to_b, n } => {
                let q = u8::from(to_b);
                let mut v = vec![Op::Send { to_b, n }];
                for _ in 0..=max_receive(QUEUES[usize::from(q)]) {
                    v.push(Op::Receive {
                        q,
                        max: 10,
                        vis_secs: 0,
                    });
                }
                v
            }
            ref op => vec![op.clone()],
        }
    }
}

fn start_spec() -> impl Strategy<Value = StartSpec> {
    (
        0u8..5,
        0u8..3,
        0u8..4,
        any::<bool>(),
        prop_oneof![2 => Just(None), 1 => (1u8..=6).prop_map(Some)],
        prop_oneof![1 => Just(true), 2 => Just(false)],
    )
        .prop_map(|(filter, dest, rate, rate_per, limit, dry_run)| StartSpec {
            filter,
            dest,
            rate,
            rate_per,
            limit,
            dry_run,
        })
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => (any::<bool>(), 1u8..=5).prop_map(|(to_b, n)| Op::Send { to_b, n }),
        4 => (any::<bool>(), 1u8..=6).prop_map(|(to_b, n)| Op::DeadLetter { to_b, n }),
        // Mostly sources, mostly with visibility 0, so messages reach the DLQ.
        5 => (
            prop_oneof![3 => Just(0u8), 3 => Just(1u8), 2 => Just(2u8), 1 => Just(3u8)],
            1u8..=6,
            prop_oneof![3 => Just(0u8), 1 => 1u8..=3],
        )
            .prop_map(|(q, max, vis_secs)| Op::Receive { q, max, vis_secs }),
        2 => (0u32..4_000).prop_map(Op::AdvanceClock),
        2 => any::<usize>().prop_map(Op::Delete),
        3 => start_spec().prop_map(Op::StartReplay),
        1 => any::<usize>().prop_map(Op::CancelReplay),
        3 => prop_oneof![Just(0u32), 1u32..50, 50u32..1_500].prop_map(Op::Progress),
        2 => (1u32..1_500, 1u32..300, 1u8..=4, 1u8..=3, 0u8..3).prop_map(
            |(ms, every, max, vis_secs, delete)| Op::ConsumeDlq {
                ms,
                every,
                max,
                vis_secs,
                delete,
            }
        ),
    ]
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Loc {
    q: Q,
    seq: u64,
    message_id: String,
    count: u32,
    state: MessageState,
    visible_at: u64,
    sent_ms: u64,
    dead_lettered_ms: Option<u64>,
    dead_letter_source: Option<String>,
    /// The `Redrive.Replay` attribute's value.
    provenance: Option<String>,
}

impl Loc {
    fn visible_by(&self, now: u64) -> bool {
        self.state == MessageState::Ready || self.visible_at <= now
    }

    /// What "unchanged" means for a message nobody touched (a timer may flip its state).
    fn settled(&self, now: u64) -> impl PartialEq + std::fmt::Debug + use<> {
        (
            self.q,
            self.seq,
            self.message_id.clone(),
            self.count,
            self.visible_at,
            self.visible_by(now),
            self.dead_letter_source.clone(),
            self.provenance.clone(),
        )
    }
}

#[derive(Debug, Clone)]
struct Handle {
    q: Q,
    body: String,
    message_id: String,
    handle: String,
}

/// The model's view of one replay.
#[derive(Debug, Clone)]
struct Replay {
    id: String,
    spec: StartSpec,
    request: ReplayRequest,
    dest: Option<Q>,
    status: ReplayStatus,
    started_at: u64,
    /// Tokio time at the start (the runner's pacing starts no earlier).
    started: tokio::time::Instant,
    /// (body, MessageId in the DLQ), in selection order.
    selected: Vec<(String, String)>,
    selected_ids: BTreeSet<String>,
    /// (from, to, destination ARN, at) as observed.
    moves: Vec<(String, String, String, u64)>,
    /// Moves per rate key (`n % 2`).
    moves_per_key: [u64; 2],
    /// Selected MessageIds a DLQ consumer received since the start.
    touched: BTreeSet<String>,
    /// Messages it replayed that came back to the DLQ while it was active.
    returns: u64,
}

impl Replay {
    fn active(&self) -> bool {
        self.status.is_active()
    }

    fn moved_ids(&self) -> BTreeSet<&str> {
        self.moves.iter().map(|m| m.0.as_str()).collect()
    }
}

/// What the model expects a dry run to report.
#[derive(Debug, PartialEq)]
struct Expected {
    scanned: u64,
    not_visible: u64,
    /// (body, MessageId, destination ARN), oldest first.
    selected: Vec<(String, String, String)>,
}

/// One thing the concurrent DLQ consumer did.
#[derive(Debug, Clone)]
struct Consumed {
    body: String,
    message_id: String,
    count: u32,
    deleted: bool,
}

struct World {
    h: H,
    urls: BTreeMap<Q, String>,
    arns: BTreeMap<Q, String>,
    names: BTreeMap<Q, String>,
    next_n: u64,
    sent: BTreeSet<String>,
    deleted: BTreeSet<String>,
    /// Every MessageId the engine ever handed out (replays must not reuse one).
    ids_ever: BTreeSet<String>,
    handles: Vec<Handle>,
    /// Oldest first (the engine keeps the newest 20 per DLQ).
    replays: Vec<Replay>,
    replay_ids_ever: BTreeSet<String>,
    replayed: usize,
    /// Highest DLQ sequence number seen: "oldest first" is arrival order.
    dlq_max_seq: u64,
}

const KEPT: usize = 20;

impl World {
    async fn new() -> World {
        let h = H::new();
        let mut urls = BTreeMap::new();
        let mut arns = BTreeMap::new();
        let mut names = BTreeMap::new();
        let dlq = h.create("rp-dlq", &[]).await;
        arns.insert(Q::Dlq, h.arn(&dlq));
        urls.insert(Q::Dlq, dlq);
        names.insert(Q::Dlq, "rp-dlq".to_string());
        for (q, name) in [(Q::A, "rp-a"), (Q::B, "rp-b")] {
            let policy = redrive_policy(&arns[&Q::Dlq], max_receive(q));
            let url = h
                .create(
                    name,
                    &[("VisibilityTimeout", "2"), ("RedrivePolicy", &policy)],
                )
                .await;
            arns.insert(q, h.arn(&url));
            urls.insert(q, url);
            names.insert(q, name.to_string());
        }
        let dest = h.create("rp-dest", &[("VisibilityTimeout", "2")]).await;
        arns.insert(Q::Dest, h.arn(&dest));
        urls.insert(Q::Dest, dest);
        names.insert(Q::Dest, "rp-dest".to_string());
        World {
            h,
            urls,
            arns,
            names,
            next_n: 0,
            sent: BTreeSet::new(),
            deleted: BTreeSet::new(),
            ids_ever: BTreeSet::new(),
            handles: Vec::new(),
            replays: Vec::new(),
            replay_ids_ever: BTreeSet::new(),
            replayed: 0,
            dlq_max_seq: 0,
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

    /// Where every live message is (by body), per the engine; checks each queue's indices and
    /// that the store holds exactly the engine's message records.
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
                // Sent without attributes: at most the provenance attribute.
                assert!(
                    r.payload_or_empty()
                        .attributes
                        .keys()
                        .all(|k| k == provenance::ATTRIBUTE),
                    "{r:?}"
                );
                engine_recs.insert((queue.uid, seq), r.clone());
                let prev = out.insert(
                    r.payload_or_empty().body.to_string(),
                    Loc {
                        q,
                        seq,
                        message_id: r.message_id.clone(),
                        count: r.receive_count,
                        state: m.state,
                        visible_at: r.visible_at_ms,
                        sent_ms: r.sent_ms,
                        dead_lettered_ms: r.dead_lettered_ms,
                        dead_letter_source: r.dead_letter_source_arn.clone(),
                        provenance: r
                            .payload_or_empty()
                            .attributes
                            .get(provenance::ATTRIBUTE)
                            .and_then(|v| v.string_value.clone()),
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
                self.next_n += 1;
                format!("{{\"n\": {}}}", self.next_n)
            })
            .collect()
    }

    fn dest_of(spec: &StartSpec) -> Option<Q> {
        match spec.dest {
            0 => None,
            1 => Some(Q::Dest),
            _ => Some(Q::A),
        }
    }

    fn request(&self, spec: &StartSpec, dry_run: bool) -> ReplayRequest {
        ReplayRequest {
            source: self.arns[&Q::Dlq].clone(),
            // By ARN and by URL (any form names a queue).
            destination: Self::dest_of(spec).map(|q| match q {
                Q::A => self.urls[&q].clone(),
                _ => self.arns[&q].clone(),
            }),
            selection: SelectionSpec {
                filter: FILTERS[usize::from(spec.filter)].map(str::to_string),
                limit: spec.limit.map(u64::from),
                ..Default::default()
            },
            transform: None,
            rate: match spec.rate {
                0 => None,
                1 => Some(500.0),
                2 => Some(50.0),
                _ => Some(5.0),
            },
            rate_per: spec.rate_per.then(|| RatePer {
                key: ".n % 2".into(),
                rate: RATE_PER,
            }),
            breaker: None,
            provenance: true,
            dry_run,
            sample: Some(100),
            requested_by: Some("model".into()),
        }
    }

    /// The model's own selection: visible DLQ messages matching the filter, oldest first (in
    /// DLQ arrival order), up to the limit.
    fn expected(&self, live: &BTreeMap<String, Loc>, spec: &StartSpec, now: u64) -> Expected {
        let mut dlq: Vec<(&String, &Loc)> = live.iter().filter(|(_, l)| l.q == Q::Dlq).collect();
        dlq.sort_by_key(|(_, l)| l.seq);
        let limit = spec.limit.map_or(usize::MAX, usize::from);
        let mut e = Expected {
            scanned: dlq.len() as u64,
            not_visible: 0,
            selected: Vec::new(),
        };
        for (body, l) in dlq {
            if e.selected.len() >= limit {
                break;
            }
            if !filter_matches(spec.filter, n_of(body), l.count) {
                continue;
            }
            if !l.visible_by(now) {
                e.not_visible += 1;
                continue;
            }
            let dest = match Self::dest_of(spec) {
                Some(q) => self.arns[&q].clone(),
                None => l.dead_letter_source.clone().expect("source"),
            };
            e.selected.push((body.clone(), l.message_id.clone(), dest));
        }
        e
    }

    /// Everything a dry run must leave alone.
    fn observable(&self, now: u64) -> impl PartialEq + std::fmt::Debug + use<> {
        let live = self.snapshot();
        let settled: Vec<_> = live
            .iter()
            .map(|(b, l)| (b.clone(), l.settled(now)))
            .collect();
        let docs: Vec<_> = self
            .h
            .store
            .load()
            .documents
            .into_iter()
            .map(|d| (d.kind, d.key, d.value))
            .collect();
        let replays = self.h.engine.list_replays(&self.h.ctx, None).unwrap();
        (settled, docs, replays)
    }

    /// A dry run, checked against the model; returns the model's expectation.
    async fn dry_run(&self, spec: &StartSpec, live: &BTreeMap<String, Loc>) -> Expected {
        let now = self.now();
        let expected = self.expected(live, spec, now);
        let before = self.observable(now);
        let out = self
            .h
            .engine
            .start_replay(&self.h.ctx, self.request(spec, true))
            .await;
        let dry = match out {
            Ok(ReplayStart::DryRun(d)) => d,
            other => panic!("a dry run answered {other:?}"),
        };
        assert_eq!(
            self.observable(now),
            before,
            "a dry run changed something ({spec:?})"
        );
        assert!(dry.dry_run);
        assert_eq!(dry.scanned, expected.scanned, "scanned ({spec:?})");
        assert_eq!(dry.filter_errors, 0);
        assert_eq!(
            dry.not_visible, expected.not_visible,
            "notVisible ({spec:?})"
        );
        assert_eq!(
            dry.selected,
            expected.selected.len() as u64,
            "selected ({spec:?}): {dry:?} vs model {expected:?}"
        );
        let sample: Vec<(String, String, String)> = dry
            .sample
            .iter()
            .map(|s| (s.body.clone(), s.message_id.clone(), s.destination.clone()))
            .collect();
        let want: Vec<_> = expected.selected.iter().take(100).cloned().collect();
        assert_eq!(sample, want, "the dry run's sample ({spec:?})");
        for s in &dry.sample {
            let l = &live[&s.body];
            assert_eq!(s.sent_timestamp, l.sent_ms);
            assert_eq!(s.dead_lettered_at, l.dead_lettered_ms);
        }
        let mut by_dest: BTreeMap<String, u64> = BTreeMap::new();
        for (_, _, d) in &expected.selected {
            *by_dest.entry(d.clone()).or_default() += 1;
        }
        let got: BTreeMap<String, u64> = dry
            .destinations
            .iter()
            .map(|d| {
                let q = self.queue_of_arn(&d.arn);
                assert_eq!(d.name, self.names[&q]);
                (d.arn.clone(), d.count)
            })
            .collect();
        assert_eq!(got, by_dest, "the dry run's destinations");
        expected
    }

    /// The engine's replays agree with the model's and with the store's documents.
    fn check_replays(&self) {
        let dlq_arn = &self.arns[&Q::Dlq];
        let listed = self
            .h
            .engine
            .list_replays(&self.h.ctx, Some(&self.urls[&Q::Dlq]))
            .unwrap();
        assert_eq!(
            listed.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(),
            self.replays
                .iter()
                .rev()
                .map(|r| r.id.as_str())
                .collect::<Vec<_>>(),
            "list_replays: newest first, the newest {KEPT} kept"
        );
        assert_eq!(
            self.h.engine.list_replays(&self.h.ctx, None).unwrap(),
            listed
        );
        assert!(
            listed.iter().filter(|t| t.status.is_active()).count() <= 1,
            "more than one active replay on the DLQ"
        );
        let mut stored_tasks: BTreeMap<String, ReplayTask> = BTreeMap::new();
        let mut stored_selections: BTreeSet<String> = BTreeSet::new();
        let mut stored_moves: BTreeMap<String, Vec<(String, ReplayMove)>> = BTreeMap::new();
        for d in self.h.store.load().documents {
            match d.kind.as_str() {
                DOC_REPLAY => {
                    let t: ReplayTask = serde_json::from_slice(&d.value)
                        .unwrap_or_else(|e| panic!("replay document {}: {e}", d.key));
                    assert_eq!(t.id, d.key);
                    stored_tasks.insert(d.key, t);
                }
                DOC_REPLAY_SELECTION => {
                    stored_selections.insert(d.key);
                }
                DOC_REPLAY_MOVE => {
                    let m: ReplayMove = serde_json::from_slice(&d.value)
                        .unwrap_or_else(|e| panic!("move document {}: {e}", d.key));
                    let (id, _) = d.key.split_once('/').expect("id/n");
                    stored_moves
                        .entry(id.to_string())
                        .or_default()
                        .push((d.key.clone(), m));
                }
                _ => {}
            }
        }
        let ids: BTreeSet<String> = self.replays.iter().map(|r| r.id.clone()).collect();
        assert_eq!(
            stored_tasks.keys().cloned().collect::<BTreeSet<_>>(),
            ids,
            "stored replay documents"
        );
        assert_eq!(stored_selections, ids, "stored selection documents");
        assert!(
            stored_moves.keys().all(|k| ids.contains(k)),
            "move documents of a pruned replay"
        );
        let elapsed_now = tokio::time::Instant::now();
        for (r, t) in self.replays.iter().rev().zip(&listed) {
            assert_eq!(t.id, r.id);
            let e = self.h.engine.replay(&r.id).expect("replay(id)");
            assert_eq!(&e, t, "replay(id) and list_replays disagree");
            assert_eq!(e.status, r.status, "{e:?} vs model {r:?}");
            assert_eq!(&e.source, dlq_arn);
            assert_eq!(
                e.destination.as_deref(),
                r.dest.map(|q| self.arns[&q].as_str())
            );
            let mut spec = r.request.clone();
            spec.dry_run = false;
            assert_eq!(e.spec, spec);
            assert_eq!(e.started_at, r.started_at);
            assert_eq!(e.requested_by.as_deref(), Some("model"));
            assert_eq!(e.schedule_id, None);
            assert_eq!(e.selected, r.selected.len() as u64, "{e:?}");
            assert_eq!(
                e.moved,
                r.moves.len() as u64,
                "moved of {e:?} vs model {r:?}"
            );
            assert_eq!(e.failed, 0, "{e:?}");
            assert_eq!(
                e.moved + e.failed + e.skipped + e.remaining,
                e.selected,
                "{e:?}"
            );
            // Only messages a consumer received (and the replay did not move) are skipped.
            let moved = r.moved_ids();
            let touched = r
                .touched
                .iter()
                .filter(|id| !moved.contains(id.as_str()))
                .count() as u64;
            assert!(
                e.skipped <= touched,
                "{} skipped, only {touched} touched by a consumer: {e:?}",
                e.skipped
            );
            assert!(e.returned <= r.returns, "{e:?} vs {} returns", r.returns);
            assert_eq!(e.ended_at.is_some(), !e.status.is_active(), "{e:?}");
            assert_eq!(e.failure_reason, None, "{e:?}");
            if e.status == ReplayStatus::Completed {
                assert_eq!(e.remaining, 0, "{e:?}");
            }
            // Pacing: a fixed rate is kept, globally and per key (3 ms of slack).
            let ms = (elapsed_now - r.started).as_secs_f64() * 1000.0 + 3.0;
            if let Some(rate) = r.request.rate {
                let most = (ms * rate / 1000.0).floor() as u64 + 1;
                assert!(
                    e.moved <= most,
                    "{} moved in {ms} ms at {rate}/s: {e:?}",
                    e.moved
                );
            }
            // Also for messages retried after being found in flight (they keep their key).
            if r.spec.rate_per {
                let most = (ms * RATE_PER / 1000.0).floor() as u64 + 1;
                for (k, &n) in r.moves_per_key.iter().enumerate() {
                    assert!(
                        n <= most,
                        "{n} moves of key {k} in {ms} ms at {RATE_PER}/s per key: {e:?}"
                    );
                }
            }

            // The move log: exactly the moves observed, numbered from 1, paged consistently.
            let (log, next) = self.h.engine.replay_moves(&r.id, 0, 10_000).unwrap();
            assert_eq!(next, None);
            assert_eq!(log.len() as u64, e.moved, "move log of {e:?}");
            for (i, m) in log.iter().enumerate() {
                assert_eq!(m.n, i as u64 + 1);
            }
            let got: BTreeSet<(String, String, String, u64)> = log
                .iter()
                .map(|m| (m.from.clone(), m.to.clone(), m.destination.clone(), m.at))
                .collect();
            let want: BTreeSet<(String, String, String, u64)> = r.moves.iter().cloned().collect();
            assert_eq!(got, want, "move log of {}", r.id);
            let mut paged = Vec::new();
            let mut after = 0;
            loop {
                let (page, next) = self.h.engine.replay_moves(&r.id, after, 3).unwrap();
                assert!(page.len() <= 3);
                paged.extend(page);
                match next {
                    Some(n) => {
                        assert_eq!(Some(n), paged.last().map(|m| m.n));
                        after = n;
                    }
                    None => break,
                }
            }
            assert_eq!(paged, log, "paging the move log");

            // The store agrees, counters included.
            let stored = stored_tasks.get(&r.id).cloned().expect("stored document");
            assert_eq!(
                stored, e,
                "the stored replay document differs from replay(id)"
            );
            let stored_log: Vec<ReplayMove> = stored_moves
                .get(&r.id)
                .map(|v| {
                    v.iter()
                        .map(|(k, m)| {
                            assert_eq!(k, &format!("{}/{:012}", r.id, m.n));
                            m.clone()
                        })
                        .collect()
                })
                .unwrap_or_default();
            assert_eq!(stored_log, log, "stored move log of {}", r.id);
        }
        assert_eq!(listed.len(), self.replays.len());
    }

    async fn apply(&mut self, op: &Op) {
        let before = self.snapshot();
        let now = self.now();
        let mut may_delete: BTreeSet<String> = BTreeSet::new();
        let mut appeared: BTreeMap<String, Q> = BTreeMap::new();
        // (queue, body, MessageId, receive count) of what was received and not deleted.
        let mut received: Vec<(Q, String, String, u32)> = Vec::new();
        let mut received_bodies: BTreeSet<String> = BTreeSet::new();
        let mut short_receive: Option<(Q, BTreeSet<String>)> = None;
        let mut lazy_from: Option<Q> = None;
        let progressing = matches!(op, Op::Progress(_) | Op::ConsumeDlq { .. });
        // The replay that may progress during this op.
        let active_before = self.replays.iter().rposition(Replay::active);

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
                    .expect("send batch");
                assert_eq!(out.successful.len(), bodies.len(), "{out:?}");
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
                    received_bodies.insert(m.body.clone());
                    if q == Q::Dlq
                        && let Some(i) = active_before
                        && self.replays[i].selected_ids.contains(&m.message_id)
                    {
                        self.replays[i].touched.insert(m.message_id.clone());
                    }
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
                        // A consumer took it (with a handle from before the start, maybe).
                        if hd.q == Q::Dlq
                            && let Some(i) = active_before
                            && self.replays[i].selected_ids.contains(&hd.message_id)
                        {
                            self.replays[i].touched.insert(hd.message_id.clone());
                        }
                        may_delete.insert(hd.body.clone());
                        self.deleted.insert(hd.body);
                    }
                }
            }
            Op::StartReplay(spec) => {
                // What a dry run reports now is what a start selects.
                let expected = self.dry_run(spec, &before).await;
                if !spec.dry_run {
                    let out = self
                        .h
                        .engine
                        .start_replay(&self.h.ctx, self.request(spec, false))
                        .await;
                    if let Some(i) = active_before {
                        match out {
                            Err(ReplayError::Running { replay_id }) => {
                                assert_eq!(replay_id, self.replays[i].id)
                            }
                            other => panic!("a second active replay: {other:?}"),
                        }
                    } else {
                        let task = match out {
                            Ok(ReplayStart::Started(t)) => t,
                            other => panic!("start: {other:?}"),
                        };
                        assert!(
                            self.replay_ids_ever.insert(task.id.clone()),
                            "replay id reused"
                        );
                        assert_eq!(task.selected, expected.selected.len() as u64);
                        assert_eq!(task.started_at, now);
                        let want = if task.selected == 0 {
                            ReplayStatus::Completed
                        } else {
                            ReplayStatus::Running
                        };
                        assert_eq!(task.status, want, "{task:?}");
                        self.replays.push(Replay {
                            id: task.id.clone(),
                            spec: *spec,
                            request: self.request(spec, false),
                            dest: Self::dest_of(spec),
                            status: task.status,
                            started_at: now,
                            started: tokio::time::Instant::now(),
                            selected: expected
                                .selected
                                .iter()
                                .map(|(b, id, _)| (b.clone(), id.clone()))
                                .collect(),
                            selected_ids: expected
                                .selected
                                .iter()
                                .map(|(_, id, _)| id.clone())
                                .collect(),
                            moves: Vec::new(),
                            moves_per_key: [0, 0],
                            touched: BTreeSet::new(),
                            returns: 0,
                        });
                        // The engine keeps the newest KEPT, dropping the oldest inactive.
                        let mut excess = self.replays.len().saturating_sub(KEPT);
                        self.replays.retain(|r| {
                            if excess > 0 && !r.active() {
                                excess -= 1;
                                false
                            } else {
                                true
                            }
                        });
                    }
                }
            }
            Op::CancelReplay(i) => {
                if !self.replays.is_empty() {
                    let idx = i % self.replays.len();
                    let out = self.h.engine.cancel_replay(&self.replays[idx].id).await;
                    let r = &mut self.replays[idx];
                    if r.status == ReplayStatus::Running {
                        let t = out.expect("cancel a running replay");
                        assert_eq!(t.status, ReplayStatus::Cancelling);
                        assert_eq!(t.moved, r.moves.len() as u64);
                        r.status = ReplayStatus::Cancelling;
                    } else {
                        let e = out.expect_err("cancelled a replay that is not RUNNING");
                        assert_eq!(e.code, ErrorCode::InvalidParameterValue, "{e}");
                    }
                }
            }
            Op::DeadLetter { .. } => unreachable!("expanded by Op::steps"),
            Op::Progress(ms) => {
                if *ms == 0 {
                    tokio::task::yield_now().await;
                } else {
                    tokio::time::sleep(Duration::from_millis(u64::from(*ms))).await;
                }
            }
            Op::ConsumeDlq {
                ms,
                every,
                max,
                vis_secs,
                delete,
            } => {
                let log: Arc<Mutex<Vec<Consumed>>> = Arc::default();
                let stop = Arc::new(AtomicBool::new(false));
                let consumer = tokio::spawn(consume(
                    self.h.engine.clone(),
                    self.h.ctx.clone(),
                    self.urls[&Q::Dlq].clone(),
                    Duration::from_millis(u64::from(*every)),
                    i64::from(*max),
                    i64::from(*vis_secs),
                    *delete,
                    log.clone(),
                    stop.clone(),
                ));
                tokio::time::sleep(Duration::from_millis(u64::from(*ms))).await;
                stop.store(true, Ordering::SeqCst);
                consumer.await.expect("the consumer");
                let log = log.lock().unwrap().clone();
                for c in log {
                    assert!(
                        received_bodies.insert(c.body.clone()),
                        "{} received twice while in flight",
                        c.body
                    );
                    if let Some(i) = active_before
                        && self.replays[i].selected_ids.contains(&c.message_id)
                    {
                        self.replays[i].touched.insert(c.message_id.clone());
                    }
                    let b = before
                        .get(&c.body)
                        .expect("a consumer got a message that was not in the DLQ");
                    assert_eq!((b.q, &b.message_id), (Q::Dlq, &c.message_id));
                    assert_eq!(c.count, b.count + 1);
                    if c.deleted {
                        may_delete.insert(c.body.clone());
                        self.deleted.insert(c.body);
                    } else {
                        received.push((Q::Dlq, c.body, c.message_id, c.count));
                    }
                }
            }
        }

        let after = self.snapshot();

        // Message transitions.
        let mut moves_now: Vec<(String, String, String, String)> = Vec::new();
        for (body, b) in &before {
            let Some(a) = after.get(body) else {
                assert!(may_delete.contains(body), "{body} vanished during {op:?}");
                continue;
            };
            if a.q == b.q {
                assert_eq!(a.message_id, b.message_id, "{body}: id changed in place");
                assert_eq!(a.seq, b.seq, "{body}: seq changed in place");
                if received_bodies.contains(body) {
                    assert_eq!(a.count, b.count + 1, "{body}: receive count during {op:?}");
                } else {
                    // Nobody received it: nothing about it changes (a replay only reads
                    // the messages it does not take).
                    assert_eq!(
                        a.settled(now),
                        b.settled(now),
                        "{body}: changed in place during {op:?}"
                    );
                }
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
                assert_eq!(a.dead_lettered_ms, Some(now));
                assert_eq!(a.provenance, b.provenance);
                assert!(a.seq > self.dlq_max_seq, "a DLQ arrival is the newest");
                // A message a replay sent came back while that replay runs.
                if let Some(p) = a.provenance.as_deref().and_then(Provenance::parse)
                    && let Some(r) = self.replays.iter_mut().find(|r| r.id == p.run)
                    && r.active()
                {
                    r.returns += 1;
                }
                continue;
            }
            // A replay: a new message, only while the active replay runs, only of its
            // selected set.
            assert!(progressing, "{body} replayed during {op:?}");
            let r = &self.replays[active_before.expect("a replay without an active replay")];
            assert!(
                r.selected_ids.contains(&b.message_id),
                "{body} ({}) moved but not selected by {}: selected {:?}",
                b.message_id,
                r.id,
                r.selected
            );
            let want = r.dest.unwrap_or_else(|| {
                self.queue_of_arn(b.dead_letter_source.as_deref().expect("source"))
            });
            assert_eq!(a.q, want, "{body} replayed to the wrong queue ({r:?})");
            assert!(
                !self.ids_ever.contains(&a.message_id),
                "{body}: replayed under an old MessageId {}",
                a.message_id
            );
            assert!(
                b.visible_by(now),
                "{body}: a non-visible DLQ message was replayed"
            );
            assert_eq!(a.count, 0, "{body}: the replay kept the receive count");
            assert_eq!(a.dead_letter_source, None);
            assert_eq!(a.dead_lettered_ms, None);
            assert_eq!(a.state, MessageState::Ready);
            assert_eq!((a.sent_ms, a.visible_at), (now, now));
            let p = a
                .provenance
                .as_deref()
                .and_then(Provenance::parse)
                .unwrap_or_else(|| panic!("{body}: no provenance: {a:?}"));
            let previous = b
                .provenance
                .as_deref()
                .and_then(Provenance::parse)
                .map_or(0, |p| p.replay_count);
            assert_eq!(
                p,
                Provenance {
                    replay_of: b.message_id.clone(),
                    replay_count: previous + 1,
                    run: r.id.clone(),
                    from: self.arns[&Q::Dlq].clone(),
                    at: now as i64,
                },
                "{body}: provenance"
            );
            moves_now.push((
                body.clone(),
                b.message_id.clone(),
                a.message_id.clone(),
                self.arns[&want].clone(),
            ));
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
        for a in after.values() {
            self.ids_ever.insert(a.message_id.clone());
            if a.q == Q::Dlq {
                self.dlq_max_seq = self.dlq_max_seq.max(a.seq);
            }
        }
        self.replayed += moves_now.len();
        if let Some(i) = active_before {
            let r = &mut self.replays[i];
            for (body, from, to, dest) in moves_now {
                r.moves_per_key[(n_of(&body) % 2) as usize] += 1;
                r.moves.push((from, to, dest, now));
            }
        }

        // Status transitions.
        let dlq_arn = self.arns[&Q::Dlq].clone();
        for r in self.replays.iter_mut() {
            let e = self.h.engine.replay(&r.id).expect("replay(id)");
            // The model's status is the one before this op (or CANCELLING if cancelled now).
            let was = r.status;
            let allowed: &[ReplayStatus] = match was {
                ReplayStatus::Running if progressing => {
                    &[ReplayStatus::Running, ReplayStatus::Completed]
                }
                ReplayStatus::Cancelling if progressing => {
                    &[ReplayStatus::Cancelling, ReplayStatus::Cancelled]
                }
                ref s => std::slice::from_ref(s),
            };
            assert!(
                allowed.contains(&e.status),
                "{:?} -> {:?} during {op:?}",
                was,
                e.status
            );
            if e.status == ReplayStatus::Completed && r.status != ReplayStatus::Completed {
                // Completed: every selected message moved, or taken by a consumer (deleted,
                // or still held in flight).
                let moved = r.moved_ids();
                let mut skipped = 0;
                for (body, id) in &r.selected {
                    if moved.contains(id.as_str()) {
                        continue;
                    }
                    skipped += 1;
                    assert!(
                        r.touched.contains(id),
                        "{body} ({id}) was selected, never touched, not moved: {e:?}"
                    );
                    if let Some(l) = after.get(body) {
                        assert_eq!((l.q, &l.message_id), (Q::Dlq, id));
                        assert!(
                            !l.visible_by(now),
                            "{body} is visible in the DLQ, selected, not moved, yet {e:?}"
                        );
                    }
                }
                assert_eq!(e.skipped, skipped, "{e:?}");
                assert_eq!(e.source, dlq_arn);
            }
            r.status = e.status;
        }
        self.check_replays();
        self.check_accounting(&after);
    }

    /// Lets every replay finish.
    async fn settle(&mut self) {
        for _ in 0..300 {
            if !self.replays.iter().any(Replay::active) {
                return;
            }
            self.apply(&Op::Progress(1_000)).await;
        }
        panic!("replays never finished: {:?}", self.replays);
    }
}

/// A DLQ consumer: every `every`, receives up to `max` messages (visibility `vis_secs`) and
/// deletes what `delete` says, until `stop`.
#[allow(clippy::too_many_arguments)]
async fn consume(
    engine: Arc<Engine>,
    ctx: RequestContext,
    url: String,
    every: Duration,
    max: i64,
    vis_secs: i64,
    delete: u8,
    log: Arc<Mutex<Vec<Consumed>>>,
    stop: Arc<AtomicBool>,
) {
    loop {
        tokio::time::sleep(every).await;
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let msgs = engine
            .receive_message(
                &ctx,
                ReceiveMessageInput {
                    queue_url: url.clone(),
                    message_system_attribute_names: vec!["All".into()],
                    max_number_of_messages: Some(max),
                    visibility_timeout: Some(vis_secs),
                    wait_time_seconds: Some(0),
                    ..Default::default()
                },
            )
            .await
            .expect("receive from the DLQ")
            .messages;
        for m in msgs {
            let deleted = match delete {
                0 => false,
                1 => n_of(&m.body) % 2 == 1,
                _ => true,
            };
            if deleted {
                engine
                    .delete_message(
                        &ctx,
                        DeleteMessageInput {
                            queue_url: url.clone(),
                            receipt_handle: Some(m.receipt_handle.clone()),
                        },
                    )
                    .await
                    .expect("delete from the DLQ");
            }
            log.lock().unwrap().push(Consumed {
                count: m.attributes["ApproximateReceiveCount"].parse().unwrap(),
                body: m.body,
                message_id: m.message_id,
                deleted,
            });
        }
    }
}

fn paused_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap()
}

/// Runs `ops`, lets the replays finish, then replays whatever is left in the DLQ.
async fn run(ops: &[Op]) -> World {
    let mut w = World::new().await;
    for op in ops {
        for step in op.steps() {
            w.apply(&step).await;
        }
    }
    w.settle().await;
    // A final replay of everything to each message's own source empties the DLQ.
    w.apply(&Op::AdvanceClock(4_000)).await;
    let all = StartSpec {
        filter: 4,
        dest: 0,
        rate: 1,
        rate_per: false,
        limit: None,
        dry_run: false,
    };
    w.apply(&Op::StartReplay(all)).await;
    w.settle().await;
    let live = w.snapshot();
    assert!(
        !live.values().any(|l| l.q == Q::Dlq),
        "DLQ not emptied: {live:?}"
    );
    let last = w.replays.last().unwrap();
    assert_eq!(last.status, ReplayStatus::Completed);
    assert_eq!(last.moves.len(), last.selected.len());
    w
}

proptest! {
    #![proptest_config(ProptestConfig {
        // RP_CASES=2000 for a longer hunt.
        cases: std::env::var("RP_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(64),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn replays_move_exactly_their_selection(ops in prop::collection::vec(op(), 1..=40)) {
        paused_runtime().block_on(run(&ops));
    }
}

/// The model with a fixed script: a filtered, limited replay with a per-key rate and a DLQ
/// consumer racing it, a second start refused while it runs, a replayed message that fails
/// again and is replayed a second time (replayCount 2).
#[test]
fn scripted_replay_round_trip() {
    paused_runtime().block_on(async {
        let spec = |filter, dest, rate, rate_per, limit, dry_run| {
            Op::StartReplay(StartSpec {
                filter,
                dest,
                rate,
                rate_per,
                limit,
                dry_run,
            })
        };
        let recv = |q, max, vis_secs| Op::Receive { q, max, vis_secs };
        let ops = [
            Op::Send { to_b: false, n: 5 },
            Op::Send { to_b: true, n: 4 },
            recv(0, 6, 0),
            recv(1, 6, 0),
            recv(1, 6, 0),
            recv(0, 6, 0),
            recv(1, 6, 0),
            // Dry, then real: even n, at most 3, 5/s, per-key rate.
            spec(1, 0, 3, true, Some(3), true),
            spec(1, 0, 3, true, Some(3), false),
            spec(0, 1, 1, false, None, false),
            Op::ConsumeDlq {
                ms: 300,
                every: 100,
                max: 1,
                vis_secs: 2,
                delete: 1,
            },
            Op::Progress(1_500),
            // Everything else to source A, which dead-letters at once.
            spec(0, 2, 1, false, None, false),
            Op::Progress(1_500),
            Op::AdvanceClock(3_000),
            recv(0, 10, 0),
            recv(0, 10, 0),
            // Replayed ones that came back are replayed again.
            spec(3, 1, 2, false, None, false),
            Op::CancelReplay(usize::MAX),
            Op::Progress(1_000),
        ];
        let w = run(&ops).await;
        assert!(w.replays.len() >= 4, "{:?}", w.replays);
        assert_eq!(w.replays[0].selected.len(), 3);
        assert_eq!(w.replays[0].status, ReplayStatus::Completed);
        assert!(w.replayed >= 9, "{}", w.replayed);
        let twice = w
            .snapshot()
            .values()
            .filter_map(|l| l.provenance.as_deref().and_then(Provenance::parse))
            .filter(|p| p.replay_count >= 2)
            .count();
        assert!(twice > 0, "no message was replayed twice");
    });
}

/// Bug (found by `replays_move_exactly_their_selection`): the runner adds returned messages to
/// the task's `returned` in memory without writing the task document, so the store lags (here
/// while the replay waits for a message a consumer holds), and a restart loses the count.
#[test]
fn returned_count_is_persisted() {
    paused_runtime().block_on(async {
        let h = H::new();
        let dlq = h.create("ret-dlq", &[]).await;
        let policy = redrive_policy(&h.arn(&dlq), 1);
        let src = h.create("ret-src", &[("RedrivePolicy", &policy)]).await;
        h.send(&src, r#"{"n": 1}"#).await;
        h.send(&src, r#"{"n": 2}"#).await;
        assert_eq!(h.recv(&src, 10, Some(0)).await.len(), 2);
        assert!(h.recv(&src, 10, Some(0)).await.is_empty());
        assert_eq!(h.counts(&dlq), (2, 0, 0));
        let req = ReplayRequest {
            source: h.arn(&dlq),
            destination: None,
            selection: SelectionSpec::default(),
            transform: None,
            rate: Some(50.0),
            rate_per: None,
            breaker: None,
            provenance: true,
            dry_run: false,
            sample: None,
            requested_by: None,
        };
        let id = match h.engine.start_replay(&h.ctx, req).await {
            Ok(ReplayStart::Started(t)) => t.id,
            other => panic!("{other:?}"),
        };
        // A DLQ consumer holds one selected message; the replay moves the other, then waits.
        assert_eq!(h.recv(&dlq, 1, Some(600)).await.len(), 1);
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(h.engine.replay(&id).unwrap().moved, 1);
        // The replayed message fails again: back in the DLQ, a return the runner counts.
        assert_eq!(h.recv(&src, 10, Some(0)).await.len(), 1);
        assert!(h.recv(&src, 10, Some(0)).await.is_empty());
        tokio::time::sleep(Duration::from_millis(500)).await;
        let t = h.engine.replay(&id).unwrap();
        assert_eq!((t.status, t.returned), (ReplayStatus::Running, 1), "{t:?}");
        let doc = h
            .store
            .load()
            .documents
            .into_iter()
            .find(|d| d.kind == DOC_REPLAY && d.key == id)
            .expect("the task document");
        let stored: ReplayTask = serde_json::from_slice(&doc.value).unwrap();
        assert_eq!(stored.returned, 1, "the stored task lags: {stored:?}");
        // A restart reads the stored task.
        assert_eq!(h.reopen().engine.replay(&id).unwrap().returned, 1);
    });
}

/// Bug (found by `replays_move_exactly_their_selection`): selected messages gone before the
/// runner first runs (or resumes) are added to `skipped` in memory without writing the task
/// document, so the stored task lags until the next write (here: while the replay waits for a
/// message a consumer holds).
#[test]
fn skipped_count_is_persisted() {
    paused_runtime().block_on(async {
        let h = H::new();
        let dlq = h.create("skip-dlq", &[]).await;
        let policy = redrive_policy(&h.arn(&dlq), 1);
        let src = h.create("skip-src", &[("RedrivePolicy", &policy)]).await;
        h.send(&src, r#"{"n": 1}"#).await;
        h.send(&src, r#"{"n": 2}"#).await;
        assert_eq!(h.recv(&src, 10, Some(0)).await.len(), 2);
        assert!(h.recv(&src, 10, Some(0)).await.is_empty());
        let req = ReplayRequest {
            source: h.arn(&dlq),
            destination: None,
            selection: SelectionSpec::default(),
            transform: None,
            rate: None,
            rate_per: None,
            breaker: None,
            provenance: true,
            dry_run: false,
            sample: None,
            requested_by: None,
        };
        let id = match h.engine.start_replay(&h.ctx, req).await {
            Ok(ReplayStart::Started(t)) => t.id,
            other => panic!("{other:?}"),
        };
        // Before the runner runs, a consumer takes both selected messages and deletes one.
        let got = h.recv(&dlq, 10, Some(600)).await;
        assert_eq!(got.len(), 2);
        h.delete(&dlq, &got[0].receipt_handle).await.unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let t = h.engine.replay(&id).unwrap();
        assert_eq!(
            (t.status, t.skipped, t.remaining),
            (ReplayStatus::Running, 1, 1)
        );
        let doc = h
            .store
            .load()
            .documents
            .into_iter()
            .find(|d| d.kind == DOC_REPLAY && d.key == id)
            .expect("the task document");
        let stored: ReplayTask = serde_json::from_slice(&doc.value).unwrap();
        assert_eq!(stored, t, "the stored task lags");
    });
}

/// Bug (found by `replays_move_exactly_their_selection`): a selected message that is in flight
/// when its turn comes is retried later under the key `""` instead of its `ratePer` key: the
/// retried messages share one slot of their own and bypass their key's (here two messages of
/// one key move ~200 ms apart at a per-key rate of 1/s).
#[test]
fn per_key_rate_holds_for_retried_messages() {
    paused_runtime().block_on(async {
        let h = H::new();
        let dlq = h.create("key-dlq", &[]).await;
        let policy = redrive_policy(&h.arn(&dlq), 1);
        let src = h.create("key-src", &[("RedrivePolicy", &policy)]).await;
        for n in [2, 4, 6, 8] {
            h.send(&src, &format!(r#"{{"n": {n}}}"#)).await;
        }
        assert_eq!(h.recv(&src, 10, Some(0)).await.len(), 4);
        assert!(h.recv(&src, 10, Some(0)).await.is_empty());
        let req = ReplayRequest {
            source: h.arn(&dlq),
            destination: None,
            selection: SelectionSpec::default(),
            transform: None,
            rate: Some(500.0),
            rate_per: Some(RatePer {
                key: ".n % 2".into(),
                rate: 1.0,
            }),
            breaker: None,
            provenance: true,
            dry_run: false,
            sample: None,
            requested_by: None,
        };
        let id = match h.engine.start_replay(&h.ctx, req).await {
            Ok(ReplayStart::Started(t)) => t.id,
            other => panic!("{other:?}"),
        };
        let t0 = tokio::time::Instant::now();
        // Before the runner runs, a consumer holds three of them for a second.
        assert_eq!(h.recv(&dlq, 3, Some(1)).await.len(), 3);
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(h.engine.replay(&id).unwrap().moved, 1);
        // They become visible again; the runner retries them.
        h.advance_ms(1_000);
        tokio::time::sleep_until(t0 + Duration::from_millis(900)).await;
        // One key, 1/s: the second message may not go before 1 s.
        let t = h.engine.replay(&id).unwrap();
        assert_eq!(t.moved, 1, "ratePer not kept for retried messages: {t:?}");
        tokio::time::sleep(Duration::from_secs(5)).await;
        let t = h.engine.replay(&id).unwrap();
        assert_eq!((t.status, t.moved), (ReplayStatus::Completed, 4));
    });
}
