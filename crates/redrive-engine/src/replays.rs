//! Selective redrive ("replays"), a Redrive extension: move the dead letters a filter selects,
//! optionally rewriting their bodies, paced globally and per key, stopped by a circuit breaker
//! when replayed messages keep coming back.
//!
//! **Invariants:**
//! - The selected set is fixed when the replay starts (persisted with it); messages that
//!   arrive in the DLQ later are never taken, so a replayed message that fails again cannot
//!   loop within one replay.
//! - Everything is validated before the first move (destinations resolved, every transform
//!   applied, room for the provenance attribute): a bad request moves nothing.
//! - A message moves in one store batch (delete from the DLQ, put into the destination, task
//!   progress, move-log entry), with both queue locks held, exactly like a native move task.
//! - Messages that are not selected are only read, never received: their receive counts and
//!   visibility never change.
//! - Lock order: queue locks, then `replays` (a leaf lock: never held while taking a queue lock).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use redrive_core::api::MessageAttributeValue;
use redrive_core::{ErrorCode, SqsError, limits};
use redrive_select::breaker::{Breaker, BreakerSpec};
use redrive_select::jq::{self, GroupBy, Output};
use redrive_select::pacing::{Pacer, check_rate};
use redrive_select::provenance::{self, Provenance};
use redrive_select::selection::{
    Candidate, MetaFields, Selection, SelectionSpec, Transform, Verdict, meta,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::moves::{Commit, MoveResult, Pick};
use crate::store::{DocumentRecord, MessageRecord, Mutation};
use crate::tasks::{ADAPTIVE_BACKLOG, ADAPTIVE_MAX, ADAPTIVE_MIN, ADAPTIVE_START};
use crate::{Engine, Queue, RequestContext};

pub const DOC_REPLAY: &str = "replay";
pub const DOC_REPLAY_SELECTION: &str = "replay-selection";
pub const DOC_REPLAY_MOVE: &str = "replay-move";
/// Finished replays kept per source queue (the newest).
const REPLAYS_KEPT_PER_SOURCE: usize = 20;
const MAX_SAMPLE: usize = 100;
/// How long selected messages that are in flight (someone is reading the DLQ) are waited for
/// at the end before they are counted as skipped.
pub(crate) const IN_FLIGHT_GRACE: Duration = Duration::from_secs(30);
/// How far ahead of its schedule a replay may send (ms).
pub(crate) const PACING_SLACK_MS: f64 = 3.0;
/// Moves a runner may have submitted but not yet seen durable.
const MAX_UNSYNCED_MOVES: usize = 256;

/// A per-key rate: `key` is a jq expression, `rate` messages per second per key value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RatePer {
    pub key: String,
    pub rate: f64,
}

fn yes() -> bool {
    true
}

/// `POST /_redrive/v1/replays` (see docs/replay-api.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplayRequest {
    #[serde(default)]
    pub source: String,
    #[serde(default)]
    pub destination: Option<String>,
    #[serde(default)]
    pub selection: SelectionSpec,
    #[serde(default)]
    pub transform: Option<String>,
    #[serde(default)]
    pub rate: Option<f64>,
    #[serde(default)]
    pub rate_per: Option<RatePer>,
    #[serde(default)]
    pub breaker: Option<BreakerSpec>,
    #[serde(default = "yes")]
    pub provenance: bool,
    #[serde(default = "yes")]
    pub dry_run: bool,
    #[serde(default)]
    pub sample: Option<usize>,
    #[serde(default)]
    pub requested_by: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ReplayStatus {
    Running,
    Cancelling,
    Cancelled,
    Completed,
    Failed,
    Tripped,
}

impl ReplayStatus {
    pub fn is_active(self) -> bool {
        matches!(self, ReplayStatus::Running | ReplayStatus::Cancelling)
    }
}

/// A replay task as the API shows it and the store keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplayTask {
    pub id: String,
    pub status: ReplayStatus,
    /// ARN of the DLQ.
    pub source: String,
    /// ARN of the fixed destination, if any.
    pub destination: Option<String>,
    pub spec: ReplayRequest,
    pub selected: u64,
    pub moved: u64,
    pub failed: u64,
    pub skipped: u64,
    pub returned: u64,
    pub remaining: u64,
    pub started_at: u64,
    pub ended_at: Option<u64>,
    pub failure_reason: Option<String>,
    pub requested_by: Option<String>,
    pub schedule_id: Option<String>,
}

impl ReplayTask {
    pub(crate) fn refresh_remaining(&mut self) {
        self.remaining = self
            .selected
            .saturating_sub(self.moved + self.failed + self.skipped);
    }
}

/// One entry of a replay's move log (its audit trail).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplayMove {
    pub n: u64,
    pub from: String,
    pub to: String,
    pub destination: String,
    pub at: u64,
    /// The message's value of the per-key rate's key (none without a per-key rate).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub key: String,
}

/// A selected message as persisted with the replay: its place in the DLQ and its rate key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Selected {
    pub seq: u64,
    pub key: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SelectionDoc {
    pub v: u32,
    pub selected: Vec<Selected>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DestinationCount {
    pub arn: String,
    pub name: String,
    pub count: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SampleMessage {
    pub message_id: String,
    pub destination: String,
    pub body: String,
    pub sent_timestamp: u64,
    pub dead_lettered_at: Option<u64>,
}

/// What a dry run answers.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DryRun {
    pub dry_run: bool,
    pub scanned: u64,
    pub selected: u64,
    pub filter_errors: u64,
    pub not_visible: u64,
    pub destinations: Vec<DestinationCount>,
    pub sample: Vec<SampleMessage>,
}

#[derive(Debug)]
pub enum ReplayStart {
    DryRun(DryRun),
    Started(Box<ReplayTask>),
}

/// Why a replay could not start.
#[derive(Debug)]
pub enum ReplayError {
    Sqs(SqsError),
    /// A replay is already running on this DLQ.
    Running {
        replay_id: String,
    },
}

impl From<SqsError> for ReplayError {
    fn from(e: SqsError) -> Self {
        ReplayError::Sqs(e)
    }
}

fn invalid(msg: impl Into<String>) -> ReplayError {
    ReplayError::Sqs(SqsError::invalid_parameter(msg))
}

/// The replays' shared state (behind `Engine::replays`, a leaf lock).
#[derive(Debug, Default)]
pub(crate) struct Replays {
    /// Oldest first.
    tasks: Vec<ReplayTask>,
    selections: HashMap<String, Vec<Selected>>,
    moves: HashMap<String, Vec<ReplayMove>>,
    /// Times replayed messages of a run came back to the DLQ, not yet seen by its runner.
    returns: HashMap<String, Vec<u64>>,
}

impl Replays {
    pub(crate) fn from_documents(docs: &[DocumentRecord]) -> Replays {
        let mut r = Replays::default();
        for d in docs {
            match d.kind.as_str() {
                DOC_REPLAY => {
                    if let Ok(t) = serde_json::from_slice::<ReplayTask>(&d.value) {
                        r.tasks.push(t);
                    }
                }
                DOC_REPLAY_SELECTION => {
                    if let Ok(s) = serde_json::from_slice::<SelectionDoc>(&d.value) {
                        r.selections.insert(d.key.clone(), s.selected);
                    }
                }
                DOC_REPLAY_MOVE => {
                    if let Ok(m) = serde_json::from_slice::<ReplayMove>(&d.value)
                        && let Some((id, _)) = d.key.split_once('/')
                    {
                        r.moves.entry(id.to_string()).or_default().push(m);
                    }
                }
                _ => {}
            }
        }
        r.tasks.sort_by_key(|t| t.started_at);
        for m in r.moves.values_mut() {
            m.sort_by_key(|m| m.n);
        }
        r
    }
}

fn task_doc(t: &ReplayTask) -> Mutation {
    Mutation::PutDocument(DocumentRecord {
        kind: DOC_REPLAY.into(),
        key: t.id.clone(),
        value: serde_json::to_vec(t).unwrap_or_default(),
    })
}

/// A validated replay, ready to start.
struct Plan {
    source: Arc<Queue>,
    destination: Option<Arc<Queue>>,
    selected: Vec<Selected>,
    dry_run: DryRun,
}

/// Compiled expressions of a request.
pub(crate) struct Compiled {
    selection: Selection,
    transform: Option<Transform>,
    key: Option<GroupBy>,
}

impl Compiled {
    pub(crate) fn new(req: &ReplayRequest) -> Result<Compiled, ReplayError> {
        let selection = Selection::compile(&req.selection).map_err(|e| invalid(e.to_string()))?;
        let transform = req
            .transform
            .as_deref()
            .map(Transform::compile)
            .transpose()
            .map_err(|e| invalid(e.to_string()))?;
        let key = req
            .rate_per
            .as_ref()
            .map(|r| GroupBy::compile(&r.key))
            .transpose()
            .map_err(|e| invalid(e.to_string()))?;
        Ok(Compiled {
            selection,
            transform,
            key,
        })
    }
}

/// `$meta` of a stored message (the same shape as the CLI's).
pub(crate) fn message_meta(m: &MessageRecord) -> Value {
    let mut attributes = serde_json::Map::new();
    attributes.insert("SentTimestamp".into(), m.sent_ms.to_string().into());
    attributes.insert(
        "ApproximateReceiveCount".into(),
        m.receive_count.to_string().into(),
    );
    if let Some(t) = m.first_receive_ms {
        attributes.insert(
            "ApproximateFirstReceiveTimestamp".into(),
            t.to_string().into(),
        );
    }
    if let Some(g) = &m.group_id {
        attributes.insert("MessageGroupId".into(), g.clone().into());
    }
    if let Some(s) = &m.dead_letter_source_arn {
        attributes.insert("DeadLetterQueueSourceArn".into(), s.clone().into());
    }
    if let Some(h) = m
        .payload_or_empty()
        .system_attributes
        .get("AWSTraceHeader")
        .and_then(|v| v.string_value.clone())
    {
        attributes.insert("AWSTraceHeader".into(), h.into());
    }
    meta(MetaFields {
        message_id: &m.message_id,
        sent_timestamp: Some(m.sent_ms as i64),
        dead_lettered_at: m.dead_lettered_ms.map(|t| t as i64),
        receive_count: Some(u64::from(m.receive_count)),
        group_id: m.group_id.as_deref(),
        dead_letter_source_arn: m.dead_letter_source_arn.as_deref(),
        attributes: Value::Object(attributes),
        message_attributes: serde_json::to_value(&m.payload_or_empty().attributes)
            .unwrap_or(Value::Null),
    })
}

fn candidate<'a>(m: &'a MessageRecord, meta: &'a Value) -> Candidate<'a> {
    Candidate {
        body: &m.payload_or_empty().body,
        meta,
        sent_ms: Some(m.sent_ms as i64),
        dead_lettered_ms: m.dead_lettered_ms.map(|t| t as i64),
    }
}

pub(crate) fn rate_key(key: &Option<GroupBy>, m: &MessageRecord, meta: &Value) -> String {
    match key {
        None => String::new(),
        Some(k) => match k.first(
            &jq::body_value(&m.payload_or_empty().body),
            &jq::from_json(meta),
        ) {
            Output::Value(v) => jq::val_text(&v),
            Output::Nothing => "(none)".into(),
            Output::Error(_) => "(error)".into(),
        },
    }
}

/// The body and attributes a selected message is replayed with.
pub(crate) fn rewrite(
    compiled: &Compiled,
    req: &ReplayRequest,
    m: &MessageRecord,
    meta: &Value,
    run: &str,
    from: &str,
    now: u64,
) -> Result<(Arc<str>, redrive_core::api::MessageAttributes), String> {
    let body: Arc<str> = match &compiled.transform {
        Some(t) => t
            .apply(&m.payload_or_empty().body, meta, limits::MAX_MESSAGE_SIZE)
            .map_err(|e| e.to_string())?
            .into(),
        None => Arc::from(m.payload_or_empty().body.as_str()),
    };
    let mut attributes = m.payload_or_empty().attributes.clone();
    if req.provenance {
        provenance::check_room(attributes.keys().map(String::as_str))?;
        let existing = attributes
            .get(provenance::ATTRIBUTE)
            .and_then(|v| v.string_value.as_deref());
        let p = Provenance::next(existing, &m.message_id, run, from, now as i64);
        attributes.insert(
            provenance::ATTRIBUTE.to_string(),
            MessageAttributeValue {
                string_value: Some(p.to_value()),
                data_type: "String".into(),
                ..Default::default()
            },
        );
    }
    Ok((body, attributes))
}

/// A dead-letter source as [`select`] needs it, however the backend looks queues up.
pub(crate) struct DeadLetterSource {
    pub arn: String,
    /// It is the replay's source queue itself.
    pub is_source: bool,
    pub fifo: bool,
}

/// The queues a selection is made against.
pub(crate) struct SelectOn<'a> {
    pub source_arn: &'a str,
    pub source_fifo: bool,
    pub destination_arn: Option<&'a str>,
    /// A message's dead-letter source ARN → that queue, if it exists.
    pub lookup: &'a dyn Fn(&str) -> Option<DeadLetterSource>,
}

/// A replay request's checks that need no queue (both stores).
pub(crate) fn check_request(req: &ReplayRequest) -> Result<(), ReplayError> {
    if req.source.is_empty() {
        return Err(SqsError::missing_parameter("source").into());
    }
    if let Some(r) = req.rate {
        check_rate("rate", r).map_err(invalid)?;
    }
    if let Some(r) = &req.rate_per {
        check_rate("ratePer.rate", r.rate).map_err(invalid)?;
    }
    if let Some(b) = &req.breaker {
        b.check().map_err(invalid)?;
    }
    Ok(())
}

pub(crate) fn check_same_type(
    source_fifo: bool,
    destination_fifo: bool,
) -> Result<(), ReplayError> {
    if source_fifo != destination_fifo {
        return Err(invalid(
            "The source queue and destination queue must be of the same queue type.",
        ));
    }
    Ok(())
}

/// The selection of a replay (both stores): the DLQ's messages in sequence order, each with
/// whether it is visible, judged by the filter, checked (destination, transform, provenance
/// room) and keyed for the per-key rate. Any selected message that cannot be replayed refuses
/// the whole replay.
pub(crate) fn select(
    req: &ReplayRequest,
    compiled: &Compiled,
    run: &str,
    now: u64,
    messages: &[(MessageRecord, bool)],
    on: &SelectOn<'_>,
) -> Result<(Vec<Selected>, DryRun), ReplayError> {
    let sample_n = req.sample.unwrap_or(5).min(MAX_SAMPLE);
    let mut dry = DryRun {
        dry_run: true,
        scanned: messages.len() as u64,
        selected: 0,
        filter_errors: 0,
        not_visible: 0,
        destinations: Vec::new(),
        sample: Vec::new(),
    };
    let mut selected = Vec::new();
    let mut by_dest: BTreeMap<String, u64> = BTreeMap::new();
    let mut problems: Vec<String> = Vec::new();
    let mut problem_count = 0u64;
    let limit = req.selection.limit.unwrap_or(u64::MAX);
    for (m, visible) in messages {
        if selected.len() as u64 >= limit {
            break;
        }
        let meta = message_meta(m);
        match compiled.selection.judge(&candidate(m, &meta)) {
            Verdict::Selected => {}
            Verdict::NotSelected => continue,
            Verdict::FilterError(_) => {
                dry.filter_errors += 1;
                continue;
            }
        }
        if !visible {
            dry.not_visible += 1;
            continue;
        }
        let mut problem = |text: String| {
            problem_count += 1;
            if problems.len() < 5 {
                problems.push(format!("{}: {text}", m.message_id));
            }
        };
        let dest_arn = match on.destination_arn {
            Some(d) => d.to_string(),
            None => match &m.dead_letter_source_arn {
                None => {
                    problem(
                        "it has no source queue (it was not dead-lettered); use a destination"
                            .into(),
                    );
                    continue;
                }
                Some(arn) => match (on.lookup)(arn) {
                    None => {
                        problem(format!(
                            "its source queue {arn} no longer exists; use a destination"
                        ));
                        continue;
                    }
                    Some(q) if q.is_source => {
                        problem("its source is this queue itself".into());
                        continue;
                    }
                    Some(q) => {
                        if q.fifo != on.source_fifo {
                            problem(format!("its source queue {arn} is of another queue type"));
                            continue;
                        }
                        q.arn
                    }
                },
            },
        };
        let (body, _) = match rewrite(compiled, req, m, &meta, run, on.source_arn, now) {
            Ok(r) => r,
            Err(e) => {
                problem(e);
                continue;
            }
        };
        *by_dest.entry(dest_arn.clone()).or_default() += 1;
        if dry.sample.len() < sample_n {
            dry.sample.push(SampleMessage {
                message_id: m.message_id.clone(),
                destination: dest_arn,
                body: body.to_string(),
                sent_timestamp: m.sent_ms,
                dead_lettered_at: m.dead_lettered_ms,
            });
        }
        selected.push(Selected {
            seq: m.seq,
            key: rate_key(&compiled.key, m, &meta),
        });
    }
    if problem_count > 0 {
        return Err(invalid(format!(
            "{problem_count} selected message(s) cannot be replayed, nothing was moved: {}{}",
            problems.join("; "),
            if problem_count > problems.len() as u64 {
                "; …"
            } else {
                ""
            }
        )));
    }
    dry.selected = selected.len() as u64;
    dry.destinations = by_dest
        .into_iter()
        .map(|(arn, count)| DestinationCount {
            name: arn.rsplit(':').next().unwrap_or_default().to_string(),
            arn,
            count,
        })
        .collect();
    Ok((selected, dry))
}

/// What one move of a selected message did.
enum MoveOutcome {
    /// Moved in memory; durable once the ticket resolves (store batches apply in order).
    Moved(ReplayMove, crate::store::Durable),
    /// No longer in the DLQ (deleted, expired, purged).
    Gone,
    /// In flight or delayed: try again later.
    NotVisible,
    /// Lock contention: try again shortly.
    Retry,
    /// This message cannot be replayed (its destination vanished, its transform fails now).
    Failed(String),
    /// The DLQ itself is gone.
    SourceGone,
}

impl Engine {
    /// A queue by name, URL or ARN.
    pub(crate) fn resolve_any(
        &self,
        ctx: &RequestContext,
        q: &str,
    ) -> Result<Arc<Queue>, SqsError> {
        if q.starts_with("arn:") {
            self.resolve_arn(q)
                .ok_or_else(SqsError::queue_does_not_exist)
        } else {
            self.resolve(ctx, q)
        }
    }

    /// Validates a replay request and computes its selection.
    fn plan_replay(
        &self,
        ctx: &RequestContext,
        req: &ReplayRequest,
        compiled: &Compiled,
        run: &str,
    ) -> Result<Plan, ReplayError> {
        check_request(req)?;
        let source = self.resolve_any(ctx, &req.source)?;
        let source_fifo = source.state.lock().settings.fifo;
        let destination = match &req.destination {
            None => None,
            Some(d) => {
                let d = self.resolve_any(ctx, d)?;
                if Arc::ptr_eq(&d, &source) {
                    return Err(invalid(
                        "The destination must differ from the source queue.",
                    ));
                }
                check_same_type(source_fifo, d.state.lock().settings.fifo)?;
                Some(d)
            }
        };
        // Copy what the selection needs under the lock; evaluate without it.
        let now = self.now_ms();
        let messages: Vec<(MessageRecord, bool)> = {
            let mut muts = Vec::new();
            let mut st = source.state.lock();
            st.tick(now, &mut muts);
            if !muts.is_empty() {
                let _ = self.store.submit(muts);
            }
            let mut v: Vec<(MessageRecord, bool)> = st
                .messages
                .iter()
                // Bodies read from the store when only there (the filters look at them).
                .filter_map(|(seq, m)| Some((self.loaded(&m.rec).ok()?, st.ready.contains(seq))))
                .collect();
            v.sort_by_key(|(m, _)| m.seq);
            v
        };
        let lookup = |arn: &str| {
            self.resolve_arn(arn).map(|q| DeadLetterSource {
                is_source: Arc::ptr_eq(&q, &source),
                fifo: q.state.lock().settings.fifo,
                arn: q.arn.clone(),
            })
        };
        let on = SelectOn {
            source_arn: &source.arn,
            source_fifo,
            destination_arn: destination.as_ref().map(|d| d.arn.as_str()),
            lookup: &lookup,
        };
        let (selected, dry) = select(req, compiled, run, now, &messages, &on)?;
        Ok(Plan {
            source,
            destination,
            selected,
            dry_run: dry,
        })
    }

    /// `POST /_redrive/v1/replays`: a dry run, or a started replay task.
    pub async fn start_replay(
        self: &Arc<Self>,
        ctx: &RequestContext,
        req: ReplayRequest,
    ) -> Result<ReplayStart, ReplayError> {
        if let Some(b) = self.shared.clone() {
            return self.sh_start_replay(&*b, ctx, req, None).await;
        }
        self.start_replay_for(ctx, req, None).await
    }

    pub(crate) async fn start_replay_for(
        self: &Arc<Self>,
        ctx: &RequestContext,
        req: ReplayRequest,
        schedule_id: Option<String>,
    ) -> Result<ReplayStart, ReplayError> {
        let compiled = Compiled::new(&req)?;
        let id = uuid::Uuid::new_v4().to_string();
        let plan = self.plan_replay(ctx, &req, &compiled, &id)?;
        if req.dry_run {
            return Ok(ReplayStart::DryRun(plan.dry_run));
        }
        if let Some(running) = self.running_replay(&plan.source.arn) {
            return Err(ReplayError::Running { replay_id: running });
        }
        let task = new_task(
            &id,
            req,
            &plan.source.arn,
            plan.destination.as_ref().map(|d| d.arn.clone()),
            plan.selected.len() as u64,
            self.now_ms(),
            schedule_id,
        );
        let ticket = {
            let mut r = self.replays.lock();
            // Checked again under the lock: two starts must not both win.
            if let Some(t) = r
                .tasks
                .iter()
                .find(|t| t.source == task.source && t.status.is_active())
            {
                return Err(ReplayError::Running {
                    replay_id: t.id.clone(),
                });
            }
            let mut muts = vec![
                task_doc(&task),
                Mutation::PutDocument(DocumentRecord {
                    kind: DOC_REPLAY_SELECTION.into(),
                    key: id.clone(),
                    value: serde_json::to_vec(&SelectionDoc {
                        v: 1,
                        selected: plan.selected.clone(),
                    })
                    .unwrap_or_default(),
                }),
            ];
            r.tasks.push(task.clone());
            r.selections.insert(id.clone(), plan.selected);
            muts.extend(prune_replays(&mut r, &task.source));
            self.store.submit(muts)
        };
        self.durable(ticket).await?;
        if task.status == ReplayStatus::Running {
            self.spawn_replay(id);
        }
        tracing::info!(source = %plan.source.name, replay = %task.id, selected = task.selected, "replay started");
        Ok(ReplayStart::Started(Box::new(task)))
    }

    fn running_replay(&self, source_arn: &str) -> Option<String> {
        self.replays
            .lock()
            .tasks
            .iter()
            .find(|t| t.source == source_arn && t.status.is_active())
            .map(|t| t.id.clone())
    }

    /// Replays, newest first; only those of `source` when given.
    pub fn list_replays(
        &self,
        ctx: &RequestContext,
        source: Option<&str>,
    ) -> Result<Vec<ReplayTask>, SqsError> {
        let arn = source
            .map(|s| self.resolve_any(ctx, s).map(|q| q.arn.clone()))
            .transpose()?;
        Ok(self
            .replays
            .lock()
            .tasks
            .iter()
            .rev()
            .filter(|t| arn.as_ref().is_none_or(|a| &t.source == a))
            .cloned()
            .collect())
    }

    pub fn replay(&self, id: &str) -> Result<ReplayTask, SqsError> {
        self.replays
            .lock()
            .tasks
            .iter()
            .find(|t| t.id == id)
            .cloned()
            .ok_or_else(replay_not_found)
    }

    /// A page of a replay's move log: entries with `n > after`.
    pub fn replay_moves(
        &self,
        id: &str,
        after: u64,
        limit: usize,
    ) -> Result<(Vec<ReplayMove>, Option<u64>), SqsError> {
        let r = self.replays.lock();
        if !r.tasks.iter().any(|t| t.id == id) {
            return Err(replay_not_found());
        }
        let all = r.moves.get(id).map(Vec::as_slice).unwrap_or_default();
        let start = all.partition_point(|m| m.n <= after);
        let page: Vec<ReplayMove> = all[start..].iter().take(limit).cloned().collect();
        let next = (start + page.len() < all.len()).then(|| page.last().map_or(after, |m| m.n));
        Ok((page, next))
    }

    pub async fn cancel_replay(&self, id: &str) -> Result<ReplayTask, SqsError> {
        if let Some(b) = self.shared.clone() {
            return self.sh_cancel_replay(&*b, id).await;
        }
        let (task, ticket) = {
            let mut r = self.replays.lock();
            let t = r
                .tasks
                .iter_mut()
                .find(|t| t.id == id)
                .ok_or_else(replay_not_found)?;
            cancel(t)?;
            (t.clone(), self.store.submit(vec![task_doc(t)]))
        };
        self.durable(ticket).await?;
        Ok(task)
    }

    /// Called by the lazy DLQ move (queue locks held; `replays` is a leaf lock): a message
    /// a replay sent came back.
    pub(crate) fn note_dead_letter(&self, rec: &MessageRecord, now: u64) {
        let Some(p) = rec
            .payload_or_empty()
            .attributes
            .get(provenance::ATTRIBUTE)
            .and_then(|v| v.string_value.as_deref())
            .and_then(Provenance::parse)
        else {
            return;
        };
        let mut r = self.replays.lock();
        if r.tasks
            .iter()
            .any(|t| t.id == p.run && t.status.is_active())
        {
            r.returns.entry(p.run).or_default().push(now);
        }
    }

    /// Restarts the runners of replays that were running when the store was last written.
    pub fn resume_replays(self: &Arc<Self>) {
        let (run, muts): (Vec<String>, Vec<Mutation>) = {
            let mut r = self.replays.lock();
            let now = self.now_ms();
            let mut run = Vec::new();
            let mut muts = Vec::new();
            for t in r.tasks.iter_mut() {
                match t.status {
                    ReplayStatus::Running => run.push(t.id.clone()),
                    ReplayStatus::Cancelling => {
                        t.status = ReplayStatus::Cancelled;
                        t.ended_at = Some(now);
                        muts.push(task_doc(t));
                    }
                    _ => {}
                }
            }
            (run, muts)
        };
        if !muts.is_empty() {
            let _ = self.store.submit(muts);
        }
        for id in run {
            tracing::info!(replay = %id, "resuming replay");
            self.spawn_replay(id);
        }
    }

    fn spawn_replay(self: &Arc<Self>, id: String) {
        let engine = Arc::clone(self);
        tokio::spawn(async move { engine.run_replay(id).await });
    }

    /// Waits for the moves still in flight to the store, then ends the replay.
    async fn finish_replay_after(
        &self,
        inflight: &mut VecDeque<crate::store::Durable>,
        id: &str,
        status: ReplayStatus,
        reason: Option<String>,
    ) {
        let mut failure = None;
        for t in inflight.drain(..) {
            if let Err(e) = self.durable(t).await {
                failure = Some(e.message);
            }
        }
        match failure {
            Some(e) => {
                self.finish_replay(
                    id,
                    ReplayStatus::Failed,
                    Some(format!("storage failure: {e}")),
                )
                .await
            }
            None => self.finish_replay(id, status, reason).await,
        }
    }

    async fn finish_replay(&self, id: &str, status: ReplayStatus, reason: Option<String>) {
        let ticket = {
            let mut r = self.replays.lock();
            let now = self.now_ms();
            let Some(t) = r.tasks.iter_mut().find(|t| t.id == id) else {
                return;
            };
            if !end_replay(t, status, reason, now) {
                return;
            }
            let doc = task_doc(t);
            r.returns.remove(id);
            self.store.submit(vec![doc])
        };
        if let Err(e) = self.durable(ticket).await {
            tracing::error!(replay = %id, error = %e, "could not persist replay status");
        }
        tracing::info!(replay = %id, "replay ended");
    }

    async fn run_replay(self: Arc<Self>, id: String) {
        let Ok(task) = self.replay(&id) else { return };
        let Ok(compiled) = Compiled::new(&task.spec) else {
            self.finish_replay(
                &id,
                ReplayStatus::Failed,
                Some("the replay's expressions no longer compile".into()),
            )
            .await;
            return;
        };
        let Some(source) = self.resolve_arn(&task.source) else {
            self.finish_replay(
                &id,
                ReplayStatus::Failed,
                Some("the source queue no longer exists".into()),
            )
            .await;
            return;
        };
        // What is left: selected messages still in the DLQ (a moved one is gone, atomically).
        let pending: Vec<Selected> = {
            let selection = self
                .replays
                .lock()
                .selections
                .get(&id)
                .cloned()
                .unwrap_or_default();
            let st = source.state.lock();
            selection
                .into_iter()
                .filter(|s| st.messages.contains_key(&s.seq))
                .collect()
        };
        // Selected messages that left the DLQ by other means before a resume count as skipped.
        let still_there = pending.len() as u64;
        self.bump_replay(&id, |t| {
            let done = t.moved + t.failed + t.skipped;
            t.skipped += t.selected.saturating_sub(done + still_there);
        });
        let adaptive = task.spec.rate.is_none();
        let mut rate = task.spec.rate.unwrap_or(ADAPTIVE_START);
        let mut pacing = Pacing::new(pending, rate, task.spec.rate_per.as_ref().map(|r| r.rate));
        let mut breaker = task.spec.breaker.map(Breaker::new);
        let mut window_start = tokio::time::Instant::now();
        // Moves not yet known durable: awaited in a window, so a durable store group-commits
        // many moves per fsync (a crash loses a suffix of moves, each atomically: those
        // messages are simply still in the DLQ).
        let mut inflight: VecDeque<crate::store::Durable> = VecDeque::new();
        loop {
            // Only the status, not a clone of the whole task: this runs once per move.
            let status = self
                .replays
                .lock()
                .tasks
                .iter()
                .find(|t| t.id == id)
                .map(|t| t.status);
            match status {
                Some(ReplayStatus::Running) => {}
                Some(ReplayStatus::Cancelling) => {
                    self.finish_replay_after(&mut inflight, &id, ReplayStatus::Cancelled, None)
                        .await;
                    return;
                }
                _ => return,
            }
            // Returns seen since the last step feed the breaker.
            let returns = self.replays.lock().returns.remove(&id).unwrap_or_default();
            if !returns.is_empty() {
                let n = returns.len() as u64;
                self.bump_replay(&id, |t| t.returned += n);
            }
            if let Some(b) = breaker.as_mut() {
                for at in returns {
                    b.returned(at);
                }
                if let Some(reason) = b.check(self.now_ms()) {
                    self.finish_replay_after(
                        &mut inflight,
                        &id,
                        ReplayStatus::Tripped,
                        Some(reason),
                    )
                    .await;
                    return;
                }
            }
            if adaptive && window_start.elapsed() >= Duration::from_secs(1) {
                window_start = tokio::time::Instant::now();
                let backlog = self.replay_backlog(&task);
                rate = if backlog > ADAPTIVE_BACKLOG {
                    (rate / 2.0).max(ADAPTIVE_MIN)
                } else {
                    (rate * 2.0).min(ADAPTIVE_MAX)
                };
                pacing.set_global_rate(rate);
            }
            let (seq, key) = match pacing.turn() {
                Turn::Move { seq, key } => (seq, key),
                Turn::Sleep(d) => {
                    tokio::time::sleep(d).await;
                    continue;
                }
                Turn::Finished { given_up } => {
                    if given_up > 0 {
                        self.bump_replay(&id, |t| t.skipped += given_up);
                    }
                    self.finish_replay_after(&mut inflight, &id, ReplayStatus::Completed, None)
                        .await;
                    return;
                }
            };
            let outcome = self.replay_one(&task, &compiled, &source, seq, &key).await;
            match outcome {
                MoveOutcome::Moved(m, ticket) => {
                    // Counted when submitted (its durability is awaited a few moves later).
                    source
                        .counters
                        .redriven_by_replays
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    inflight.push_back(ticket);
                    if inflight.len() > MAX_UNSYNCED_MOVES
                        && let Some(t) = inflight.pop_front()
                        && let Err(e) = self.durable(t).await
                    {
                        self.finish_replay_after(
                            &mut inflight,
                            &id,
                            ReplayStatus::Failed,
                            Some(e.message),
                        )
                        .await;
                        return;
                    }
                    tracing::debug!(replay = %id, from = %m.from, to = %m.to, "replayed");
                    pacing.moved(&key);
                    if let Some(b) = breaker.as_mut() {
                        b.replayed(self.now_ms());
                    }
                }
                MoveOutcome::Gone => {
                    self.bump_replay(&id, |t| t.skipped += 1);
                    pacing.passed(&key);
                }
                MoveOutcome::NotVisible => pacing.defer(seq, &key),
                MoveOutcome::Retry => {
                    pacing.retry(seq, &key);
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                MoveOutcome::Failed(reason) => {
                    tracing::warn!(replay = %id, %reason, "a selected message could not be replayed");
                    self.bump_replay(&id, |t| t.failed += 1);
                    pacing.passed(&key);
                }
                MoveOutcome::SourceGone => {
                    self.finish_replay(
                        &id,
                        ReplayStatus::Failed,
                        Some("the source queue no longer exists".into()),
                    )
                    .await;
                    return;
                }
            }
        }
    }

    fn bump_replay(&self, id: &str, f: impl FnOnce(&mut ReplayTask)) {
        let mut r = self.replays.lock();
        if let Some(t) = r.tasks.iter_mut().find(|t| t.id == id) {
            f(t);
            t.refresh_remaining();
            let _ = self.store.submit(vec![task_doc(t)]);
        }
    }

    fn replay_backlog(&self, task: &ReplayTask) -> usize {
        let dests: Vec<Arc<Queue>> = match &task.destination {
            Some(arn) => self.resolve_arn(arn).into_iter().collect(),
            None => match self.resolve_arn(&task.source) {
                Some(source) => self.dead_letter_sources(&source),
                None => Vec::new(),
            },
        };
        dests
            .iter()
            .map(|q| q.state.lock().ready.len())
            .max()
            .unwrap_or(0)
    }

    /// Moves one selected message (if it is still there and visible).
    async fn replay_one(
        &self,
        task: &ReplayTask,
        compiled: &Compiled,
        source: &Arc<Queue>,
        seq: u64,
        key: &str,
    ) -> MoveOutcome {
        let moved = self.move_message(
            source,
            Pick::Seq(seq),
            task.destination.as_deref(),
            |rec, now| {
                let meta = message_meta(rec);
                rewrite(
                    compiled,
                    &task.spec,
                    rec,
                    &meta,
                    &task.id,
                    &task.source,
                    now,
                )
                .map(Some)
            },
            |pending| {
                let mut r = self.replays.lock();
                let Some(t) = r.tasks.iter_mut().find(|t| t.id == task.id) else {
                    return Commit::TaskGone;
                };
                let (destination, at) = (pending.dest.arn.clone(), pending.now);
                let Some(moved) = pending.transfer() else {
                    return Commit::NotTransferred;
                };
                let mut muts = moved.mutations;
                t.moved += 1;
                t.refresh_remaining();
                muts.push(task_doc(t));
                let e = ReplayMove {
                    n: t.moved,
                    from: moved.from_id,
                    to: moved.to_id,
                    destination,
                    at,
                    key: key.to_string(),
                };
                muts.push(Mutation::PutDocument(DocumentRecord {
                    kind: DOC_REPLAY_MOVE.into(),
                    key: format!("{}/{:012}", task.id, e.n),
                    value: serde_json::to_vec(&e).unwrap_or_default(),
                }));
                r.moves.entry(task.id.clone()).or_default().push(e.clone());
                // Submitted with both queue locks held (see the module invariants).
                Commit::Submitted(e, self.store.submit(muts))
            },
        );
        match moved {
            MoveResult::Moved(e, ticket) => MoveOutcome::Moved(e, ticket),
            MoveResult::MessageGone | MoveResult::TaskGone | MoveResult::Empty => MoveOutcome::Gone,
            MoveResult::NotVisible => MoveOutcome::NotVisible,
            MoveResult::Retry => MoveOutcome::Retry,
            MoveResult::SourceGone => MoveOutcome::SourceGone,
            MoveResult::NoDestination => MoveOutcome::Failed("no destination".into()),
            MoveResult::DestinationGone(arn) => {
                MoveOutcome::Failed(format!("destination {arn} no longer exists"))
            }
            MoveResult::DestinationIsSource => {
                MoveOutcome::Failed("destination is the source".into())
            }
            MoveResult::Rejected(e) => MoveOutcome::Failed(e),
        }
    }
}

pub(crate) fn replay_not_found() -> SqsError {
    SqsError::new(
        ErrorCode::ResourceNotFoundException,
        "Replay does not exist.",
    )
}

/// Keeps the newest [`REPLAYS_KEPT_PER_SOURCE`] replays of a source (never active ones), with
/// their selections and move logs.
fn prune_replays(r: &mut Replays, source: &str) -> Vec<Mutation> {
    let removed = prune_tasks(&mut r.tasks, source);
    let mut muts = Vec::new();
    for id in removed {
        r.selections.remove(&id);
        r.moves.remove(&id);
        muts.push(Mutation::DeleteDocument {
            kind: DOC_REPLAY.into(),
            key: id.clone(),
        });
        muts.push(Mutation::DeleteDocument {
            kind: DOC_REPLAY_SELECTION.into(),
            key: id.clone(),
        });
        muts.push(Mutation::DeleteDocuments {
            kind: DOC_REPLAY_MOVE.into(),
            prefix: format!("{id}/"),
        });
    }
    muts
}

/// The replays of `source` past the newest [`REPLAYS_KEPT_PER_SOURCE`] (never active ones)
/// leave `tasks` (oldest first): their ids, whose selections and move logs go with them.
pub(crate) fn prune_tasks(tasks: &mut Vec<ReplayTask>, source: &str) -> Vec<String> {
    let of_source = tasks.iter().filter(|t| t.source == source).count();
    let mut excess = of_source.saturating_sub(REPLAYS_KEPT_PER_SOURCE);
    let mut removed = Vec::new();
    tasks.retain(|t| {
        if excess > 0 && t.source == source && !t.status.is_active() {
            excess -= 1;
            removed.push(t.id.clone());
            false
        } else {
            true
        }
    });
    removed
}

/// A started replay's task (both stores): running, or completed at once when nothing was
/// selected.
pub(crate) fn new_task(
    id: &str,
    mut req: ReplayRequest,
    source_arn: &str,
    destination_arn: Option<String>,
    selected: u64,
    now: u64,
    schedule_id: Option<String>,
) -> ReplayTask {
    req.dry_run = false;
    let mut task = ReplayTask {
        id: id.to_string(),
        status: ReplayStatus::Running,
        source: source_arn.to_string(),
        destination: destination_arn,
        requested_by: req.requested_by.clone(),
        spec: req,
        selected,
        moved: 0,
        failed: 0,
        skipped: 0,
        returned: 0,
        remaining: 0,
        started_at: now,
        ended_at: None,
        failure_reason: None,
        schedule_id,
    };
    task.refresh_remaining();
    if task.selected == 0 {
        task.status = ReplayStatus::Completed;
        task.ended_at = Some(now);
    }
    task
}

/// A cancel request (both stores): only a running replay, which becomes CANCELLING (its
/// runner ends it CANCELLED).
pub(crate) fn cancel(t: &mut ReplayTask) -> Result<(), SqsError> {
    if t.status != ReplayStatus::Running {
        return Err(SqsError::invalid_parameter(format!(
            "Only a running replay can be cancelled; this one is {}.",
            serde_json::to_value(t.status)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default()
        )));
    }
    t.status = ReplayStatus::Cancelling;
    Ok(())
}

/// Ends an active replay (both stores): a CANCELLING one as CANCELLED, else as `status` with
/// `reason`. `false` when it had already ended.
pub(crate) fn end_replay(
    t: &mut ReplayTask,
    status: ReplayStatus,
    reason: Option<String>,
    now: u64,
) -> bool {
    if !t.status.is_active() {
        return false;
    }
    if t.status == ReplayStatus::Cancelling {
        t.status = ReplayStatus::Cancelled;
    } else {
        t.status = status;
        t.failure_reason = reason;
    }
    t.ended_at = Some(now);
    t.refresh_remaining();
    true
}

/// What a replay runner does next (both stores): [`Pacing::turn`].
#[derive(Debug, PartialEq)]
pub(crate) enum Turn {
    /// Move this selected message now; then report with `moved`, `passed`, `defer` or `retry`.
    Move { seq: u64, key: String },
    /// Nothing is due yet: sleep, then ask again.
    Sleep(Duration),
    /// Every selected message went once; `given_up` were still in flight after the grace.
    Finished { given_up: u64 },
}

/// A replay's order and pacing (both stores): the selected messages queued per rate key, a
/// heap of keys by when each may send next (global and per-key rate), and the messages found in
/// flight, tried again at the end for up to [`IN_FLIGHT_GRACE`].
pub(crate) struct Pacing {
    by_key: HashMap<String, VecDeque<u64>>,
    heap: BinaryHeap<Reverse<(u64, u64, String)>>,
    pacer: Pacer,
    start: tokio::time::Instant,
    deferred: Vec<(u64, String)>,
    deferred_since: Option<tokio::time::Instant>,
}

impl Pacing {
    pub(crate) fn new(pending: Vec<Selected>, rate: f64, per_key: Option<f64>) -> Pacing {
        let mut by_key: HashMap<String, VecDeque<u64>> = HashMap::new();
        for s in pending {
            by_key.entry(s.key).or_default().push_back(s.seq);
        }
        let heap = by_key
            .iter()
            .filter_map(|(k, q)| q.front().map(|&seq| Reverse((0, seq, k.clone()))))
            .collect();
        Pacing {
            by_key,
            heap,
            pacer: Pacer::new(Some(rate), per_key),
            start: tokio::time::Instant::now(),
            deferred: Vec::new(),
            deferred_since: None,
        }
    }

    fn now(&self) -> f64 {
        self.start.elapsed().as_secs_f64() * 1000.0
    }

    pub(crate) fn set_global_rate(&mut self, rate: f64) {
        self.pacer.set_global_rate(Some(rate));
    }

    pub(crate) fn turn(&mut self) -> Turn {
        let Some(Reverse((_, _, key))) = self.heap.pop() else {
            // Everything went once; wait a while for in-flight ones, then give up on them.
            if self.deferred.is_empty() {
                return Turn::Finished { given_up: 0 };
            }
            let since = *self
                .deferred_since
                .get_or_insert_with(tokio::time::Instant::now);
            if since.elapsed() >= IN_FLIGHT_GRACE {
                return Turn::Finished {
                    given_up: self.deferred.len() as u64,
                };
            }
            for (seq, key) in self.deferred.drain(..) {
                self.by_key.entry(key).or_default().push_back(seq);
            }
            for (key, q) in &self.by_key {
                if let Some(&first) = q.front() {
                    self.heap.push(Reverse((
                        self.pacer.ready_at(Some(key)) as u64,
                        first,
                        key.clone(),
                    )));
                }
            }
            return Turn::Sleep(Duration::from_millis(200));
        };
        let ready = self.pacer.ready_at(Some(&key));
        let now = self.now();
        // Timers are millisecond-grained: go a little early and let the schedule run ahead by
        // at most PACING_SLACK_MS (a tiny burst), so high rates are reachable.
        if ready > now + PACING_SLACK_MS {
            if let Some(&seq) = self.by_key.get(&key).and_then(|q| q.front()) {
                self.heap.push(Reverse((ready as u64, seq, key)));
            }
            return Turn::Sleep(
                Duration::from_secs_f64((ready - now) / 1000.0).min(Duration::from_millis(250)),
            );
        }
        match self.by_key.get_mut(&key).and_then(VecDeque::pop_front) {
            Some(seq) => Turn::Move { seq, key },
            None => Turn::Sleep(Duration::ZERO),
        }
    }

    /// The key's next message, onto the heap.
    fn next_of(&mut self, key: &str) {
        if let Some(&next) = self.by_key.get(key).and_then(|q| q.front()) {
            self.heap.push(Reverse((
                self.pacer.ready_at(Some(key)) as u64,
                next,
                key.to_string(),
            )));
        }
    }

    /// The message moved: it counts against the rates.
    pub(crate) fn moved(&mut self, key: &str) {
        let now = self.now();
        self.pacer.record(Some(key), now);
        self.next_of(key);
    }

    /// The message did not move and will not (gone, failed).
    pub(crate) fn passed(&mut self, key: &str) {
        self.next_of(key);
    }

    /// The message is in flight: tried again at the end.
    pub(crate) fn defer(&mut self, seq: u64, key: &str) {
        self.deferred.push((seq, key.to_string()));
        self.next_of(key);
    }

    /// Try the message again next (lock contention).
    pub(crate) fn retry(&mut self, seq: u64, key: &str) {
        self.by_key
            .entry(key.to_string())
            .or_default()
            .push_front(seq);
        self.next_of(key);
    }
}
