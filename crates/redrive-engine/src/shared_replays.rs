//! Selective redrives ("replays") over a shared [`QueueBackend`] (issue 17, ADR 0002): the same
//! rules as the embedded path (`replays.rs`: request checks, the selection, transforms and
//! provenance, the task's states and texts, pruning, the order and pacing (`Pacing`), the
//! adaptive rate, the breaker), with the replay table, selections and move logs as documents in the backend and
//! each replay run by whichever server holds its lease.
//!
//! **Invariants:**
//! - A replay runs on at most one server at a time: its runner holds the lease `replay/{id}`
//!   (the move tasks' lifetime, renewed every third of it), and every step is fenced by that
//!   lease inside the step's transaction, so a runner that lost it moves nothing.
//! - A step moves one selected message (delete from the DLQ, send the rewritten message) and
//!   writes the replay's progress and move-log entry in the same transaction
//!   ([`QueueBackend::replay_step`]): a server killed mid-replay leaves progress that agrees
//!   with what moved; whoever takes the expired lease resumes from it, and a moved message is
//!   no longer in the DLQ, so it never moves twice.
//! - Returns (replayed messages dead-lettered again) are counted from the DLQ itself: the
//!   messages past the selection whose provenance names the replay.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use redrive_core::{SqsError, SqsResult};
use redrive_select::breaker::Breaker;
use redrive_select::provenance::{self, Provenance};
use serde_json::Value;

use crate::backend::BoxFuture;
use crate::backend::{
    BrowseRange, Doc, DocsEdit, QueueBackend, ReplayFound, ReplayRules, ReplayStep,
    ReplayStepOutcome, Replayed, SharedQueue, Stored,
};
use crate::leased_jobs::{JobKind, Lease};
use crate::queue::QueueSettings;
use crate::replays::{
    Compiled, DOC_REPLAY, DOC_REPLAY_MOVE, DOC_REPLAY_SELECTION, DeadLetterSource, Pacing,
    ReplayError, ReplayMove, ReplayRequest, ReplayStart, ReplayStatus, ReplayTask, SelectOn,
    Selected, SelectionDoc, Turn, cancel, check_request, check_same_type, end_replay, message_meta,
    new_task, prune_tasks, replay_not_found, rewrite, select,
};
use crate::shared_tasks::{FAILURE_PAUSE, MOVE_TASK_LEASE_MS};
use crate::store::{MessagePayload, MessageRecord, Payload};
use crate::tasks::{ADAPTIVE_START, adapt_rate};
use crate::{Engine, RequestContext};

/// A replay's lease lifetime (as a move task's): a dead runner's replay is taken over within it.
pub const REPLAY_LEASE_MS: u64 = MOVE_TASK_LEASE_MS;
/// Messages read per page when a replay reads its DLQ.
const PAGE: usize = 1000;

fn lease_name(id: &str) -> String {
    format!("replay/{id}")
}

fn to_value<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

fn task_of(v: &Value) -> Option<ReplayTask> {
    serde_json::from_value(v.clone()).ok()
}

fn task_doc(t: &ReplayTask) -> Doc {
    Doc {
        kind: DOC_REPLAY.into(),
        key: t.id.clone(),
        value: to_value(t),
    }
}

/// Replays in start order.
fn tasks_of(docs: &[(String, Value)]) -> Vec<ReplayTask> {
    let mut tasks: Vec<ReplayTask> = docs.iter().filter_map(|(_, v)| task_of(v)).collect();
    tasks.sort_by(|a, b| (a.started_at, &a.id).cmp(&(b.started_at, &b.id)));
    tasks
}

/// A stored message as the replay rules read it (they are written over the embedded record).
fn record_of(m: &Stored, queue_uid: u64, sender_id: &str) -> MessageRecord {
    MessageRecord {
        queue_uid,
        seq: m.seq,
        message_id: m.message_id.clone(),
        payload: Payload::Loaded(Arc::new(MessagePayload {
            body: m.body.clone(),
            attributes: m.attributes.clone(),
            system_attributes: m.system_attributes.clone(),
        })),
        sender_id: sender_id.to_string(),
        sent_ms: m.sent_ms,
        enqueued_ms: m.dead_lettered_ms.unwrap_or(m.sent_ms),
        visible_at_ms: m.visible_at_ms,
        receive_count: m.receive_count,
        first_receive_ms: m.first_received_ms,
        last_receive_ms: None,
        group_id: m.group_id.clone(),
        dedup_id: m.dedup_id.clone(),
        sequence_number: None,
        dead_letter_source_arn: m.dead_letter_source_arn.clone(),
        dead_lettered_ms: m.dead_lettered_ms,
    }
}

/// Every message of `q` after `after`, in sequence order.
async fn all_messages(b: &dyn QueueBackend, q: &SharedQueue, after: u64) -> SqsResult<Vec<Stored>> {
    let mut out: Vec<Stored> = Vec::new();
    let mut after = after;
    loop {
        let page = b
            .browse(
                q,
                BrowseRange {
                    after_seq: after,
                    state: None,
                    limit: PAGE,
                },
            )
            .await?;
        let n = page.len();
        if let Some(last) = page.last() {
            after = last.seq;
        }
        out.extend(page);
        if n < PAGE {
            return Ok(out);
        }
    }
}

impl Engine {
    /// A queue by name, URL or ARN (as [`Engine::resolve_any`]).
    pub(crate) async fn sh_resolve_any(
        &self,
        b: &dyn QueueBackend,
        ctx: &RequestContext,
        q: &str,
    ) -> SqsResult<SharedQueue> {
        if q.starts_with("arn:") {
            self.sh_resolve_arn(b, q)
                .await?
                .ok_or_else(SqsError::queue_does_not_exist)
        } else {
            let (region, name) = self.queue_key_of_url(ctx, q)?;
            b.queue(&region, &name)
                .await?
                .ok_or_else(SqsError::queue_does_not_exist)
        }
    }

    /// `POST /_redrive/v1/replays` on a shared store: a dry run, or a started replay (run by
    /// whichever server takes its lease).
    pub(crate) async fn sh_start_replay(
        &self,
        b: &dyn QueueBackend,
        ctx: &RequestContext,
        req: ReplayRequest,
        schedule_id: Option<String>,
    ) -> Result<ReplayStart, ReplayError> {
        let compiled = Compiled::new(&req)?;
        check_request(&req)?;
        let id = uuid::Uuid::new_v4().to_string();
        let source = self.sh_resolve_any(b, ctx, &req.source).await?;
        let destination = match &req.destination {
            None => None,
            Some(d) => {
                let d = self.sh_resolve_any(b, ctx, d).await?;
                if d.uid == source.uid {
                    return Err(ReplayError::Sqs(SqsError::invalid_parameter(
                        "The destination must differ from the source queue.",
                    )));
                }
                check_same_type(source.fifo, d.fifo)?;
                Some(d)
            }
        };
        let now = b.now_ms().await?;
        let stored = all_messages(b, &source, 0).await?;
        let mut sources: HashMap<String, DeadLetterSource> = HashMap::new();
        for arn in stored
            .iter()
            .filter_map(|m| m.dead_letter_source_arn.as_deref())
            .collect::<HashSet<_>>()
        {
            if let Some(q) = self.sh_resolve_arn(b, arn).await? {
                sources.insert(
                    arn.to_string(),
                    DeadLetterSource {
                        arn: self.sh_arn(&q),
                        is_source: q.uid == source.uid,
                        fifo: q.fifo,
                    },
                );
            }
        }
        let messages: Vec<(MessageRecord, bool)> = stored
            .iter()
            .map(|m| {
                (
                    record_of(m, source.uid, &self.config.account_id),
                    m.state == crate::MessageState::Ready,
                )
            })
            .collect();
        let source_arn = self.sh_arn(&source);
        let destination_arn = destination.as_ref().map(|d| self.sh_arn(d));
        let (selected, dry) = {
            let lookup = |arn: &str| {
                sources.get(arn).map(|s| DeadLetterSource {
                    arn: s.arn.clone(),
                    is_source: s.is_source,
                    fifo: s.fifo,
                })
            };
            let on = SelectOn {
                source_arn: &source_arn,
                source_fifo: source.fifo,
                destination_arn: destination_arn.as_deref(),
                lookup: &lookup,
            };
            select(&req, &compiled, &id, now, &messages, &on)?
        };
        drop(messages);
        if req.dry_run {
            return Ok(ReplayStart::DryRun(dry));
        }
        let task = new_task(
            &id,
            req,
            &source_arn,
            destination_arn,
            selected.len() as u64,
            now,
            schedule_id,
        );
        let selection = Doc {
            kind: DOC_REPLAY_SELECTION.into(),
            key: id.clone(),
            value: to_value(&SelectionDoc { v: 1, selected }),
        };
        let running: Mutex<Option<String>> = Mutex::new(None);
        let edited = b
            .edit_documents(DOC_REPLAY, &|docs| {
                let mut tasks = tasks_of(&docs);
                // Checked under the table's lock: two starts must not both win.
                if let Some(t) = tasks
                    .iter()
                    .find(|t| t.source == task.source && t.status.is_active())
                {
                    *running.lock() = Some(t.id.clone());
                    return Err(SqsError::internal("a replay is running"));
                }
                tasks.push(task.clone());
                let mut edit = DocsEdit {
                    put: vec![task_doc(&task), selection.clone()],
                    delete_prefixed: Vec::new(),
                    delete: Vec::new(),
                };
                for gone in prune_tasks(&mut tasks, &task.source) {
                    edit.delete.push((DOC_REPLAY.into(), gone.clone()));
                    edit.delete
                        .push((DOC_REPLAY_SELECTION.into(), gone.clone()));
                    edit.delete_prefixed
                        .push((DOC_REPLAY_MOVE.into(), format!("{gone}/")));
                }
                Ok(edit)
            })
            .await;
        if let Some(replay_id) = running.lock().take() {
            return Err(ReplayError::Running { replay_id });
        }
        edited?;
        if task.status == ReplayStatus::Running {
            self.shared_replays_wake.notify_one();
        }
        tracing::info!(source = %source.name, replay = %task.id, selected = task.selected, "replay started");
        Ok(ReplayStart::Started(Box::new(task)))
    }

    /// Replays, newest first; only those of `source` when given.
    pub(crate) async fn sh_list_replays(
        &self,
        b: &dyn QueueBackend,
        ctx: &RequestContext,
        source: Option<&str>,
    ) -> SqsResult<Vec<ReplayTask>> {
        let arn = match source {
            Some(s) => Some(self.sh_arn(&self.sh_resolve_any(b, ctx, s).await?)),
            None => None,
        };
        let docs = b.documents(DOC_REPLAY, "").await?;
        Ok(tasks_of(&docs)
            .into_iter()
            .rev()
            .filter(|t| arn.as_ref().is_none_or(|a| &t.source == a))
            .collect())
    }

    pub(crate) async fn sh_replay(&self, b: &dyn QueueBackend, id: &str) -> SqsResult<ReplayTask> {
        b.document(DOC_REPLAY, id)
            .await?
            .as_ref()
            .and_then(task_of)
            .ok_or_else(replay_not_found)
    }

    /// A page of a replay's move log: entries with `n > after`.
    pub(crate) async fn sh_replay_moves(
        &self,
        b: &dyn QueueBackend,
        id: &str,
        after: u64,
        limit: usize,
    ) -> SqsResult<(Vec<ReplayMove>, Option<u64>)> {
        self.sh_replay(b, id).await?;
        let mut all: Vec<ReplayMove> = b
            .documents(DOC_REPLAY_MOVE, &format!("{id}/"))
            .await?
            .iter()
            .filter_map(|(_, v)| serde_json::from_value(v.clone()).ok())
            .collect();
        all.sort_by_key(|m| m.n);
        let start = all.partition_point(|m| m.n <= after);
        let page: Vec<ReplayMove> = all[start..].iter().take(limit).cloned().collect();
        let next = (start + page.len() < all.len()).then(|| page.last().map_or(after, |m| m.n));
        Ok((page, next))
    }

    pub(crate) async fn sh_cancel_replay(
        &self,
        b: &dyn QueueBackend,
        id: &str,
    ) -> SqsResult<ReplayTask> {
        let out: Mutex<Option<ReplayTask>> = Mutex::new(None);
        b.edit_documents(DOC_REPLAY, &|docs| {
            let mut t = docs
                .iter()
                .find(|(k, _)| k == id)
                .and_then(|(_, v)| task_of(v))
                .ok_or_else(replay_not_found)?;
            cancel(&mut t)?;
            *out.lock() = Some(t.clone());
            Ok(DocsEdit {
                put: vec![task_doc(&t)],
                delete_prefixed: Vec::new(),
                delete: Vec::new(),
            })
        })
        .await?;
        self.shared_replays_wake.notify_one();
        out.lock().take().ok_or_else(replay_not_found)
    }

    /// Starts the replay runner of this server (`leased_jobs.rs`): each active replay is run
    /// by the holder of its lease `replay/{id}`.
    pub(crate) fn spawn_replay_runner(self: &Arc<Self>, backend: Arc<dyn QueueBackend>) {
        let wake = Arc::clone(&self.shared_replays_wake);
        self.spawn_leased_jobs(
            backend,
            wake,
            JobKind {
                what: "replay",
                lease_ms: REPLAY_LEASE_MS,
                active: active_replays,
                id: |t: &ReplayTask| t.id.clone(),
                lease_name,
                run: run_replay,
            },
        );
    }
}

fn active_replays(b: &dyn QueueBackend) -> BoxFuture<'_, SqsResult<Vec<ReplayTask>>> {
    Box::pin(async move {
        let mut tasks = tasks_of(&b.documents(DOC_REPLAY, "").await?);
        tasks.retain(|t| t.status.is_active());
        Ok(tasks)
    })
}

fn run_replay(lease: Lease, task: ReplayTask) -> BoxFuture<'static, ()> {
    Box::pin(async move {
        let runner = Runner {
            engine: lease.engine,
            b: lease.b,
            holder: lease.holder,
            lease: lease.name,
            renewed: Mutex::new(tokio::time::Instant::now()),
            returned: Mutex::new(0),
        };
        runner.run(task).await;
    })
}

/// The replay rules inside one step's transaction.
struct Rules<'a> {
    engine: &'a Engine,
    task: &'a ReplayTask,
    compiled: &'a Compiled,
    source: &'a SharedQueue,
    /// The fixed destination, resolved (`None` inside: it no longer exists).
    fixed: Option<Option<SharedQueue>>,
    /// Dead-letter source ARN → that queue, for the selected messages.
    by_arn: &'a BTreeMap<String, SharedQueue>,
    /// Returns counted from the DLQ so far.
    returned: u64,
    /// The message's per-key rate key (recorded in the move log).
    key: &'a str,
}

impl Rules<'_> {
    fn destination(&self, m: &Stored) -> Result<&SharedQueue, String> {
        let (arn, q) = match &self.fixed {
            Some(q) => (
                self.task.destination.clone().unwrap_or_default(),
                q.as_ref(),
            ),
            None => {
                let arn = m
                    .dead_letter_source_arn
                    .clone()
                    .ok_or_else(|| "no destination".to_string())?;
                let q = self.by_arn.get(&arn);
                (arn, q)
            }
        };
        match q {
            None => Err(format!("destination {arn} no longer exists")),
            Some(q) if q.uid == self.source.uid => Err("destination is the source".into()),
            Some(q) => Ok(q),
        }
    }
}

impl ReplayRules for Rules<'_> {
    fn running(&self, task: &Value) -> bool {
        task_of(task).is_some_and(|t| t.status == ReplayStatus::Running)
    }

    fn rewrite(&self, m: &Stored, now_ms: u64) -> Result<Replayed, String> {
        let dest = self.destination(m)?;
        let rec = record_of(m, self.source.uid, &self.engine.config.account_id);
        let meta = message_meta(&rec);
        let (body, attributes) = rewrite(
            self.compiled,
            &self.task.spec,
            &rec,
            &meta,
            &self.task.id,
            &self.task.source,
            now_ms,
        )?;
        let message_id = uuid::Uuid::new_v4().to_string();
        let delay = QueueSettings::from_attributes(&dest.attributes).delay_secs;
        Ok(Replayed {
            queue: Box::new(dest.clone()),
            dedup_id: dest.fifo.then(|| message_id.clone()),
            message_id,
            delay_ms: (delay.max(0) as u64) * 1000,
            body: body.to_string(),
            attributes,
            system_attributes: m.system_attributes.clone(),
        })
    }

    fn record(&self, task: &Value, found: &ReplayFound, now_ms: u64) -> Vec<Doc> {
        let Some(mut t) = task_of(task) else {
            return Vec::new();
        };
        t.returned = t.returned.max(self.returned);
        let mut docs = Vec::new();
        match found {
            ReplayFound::NotVisible => return docs,
            ReplayFound::Gone => t.skipped += 1,
            ReplayFound::Failed(_) => t.failed += 1,
            ReplayFound::Moved {
                from_id,
                to_id,
                destination_uid,
            } => {
                t.moved += 1;
                let destination = self
                    .fixed
                    .iter()
                    .flatten()
                    .chain(self.by_arn.values())
                    .find(|q| q.uid == *destination_uid)
                    .map(|q| self.engine.sh_arn(q))
                    .unwrap_or_default();
                let e = ReplayMove {
                    n: t.moved,
                    from: from_id.clone(),
                    to: to_id.clone(),
                    destination,
                    at: now_ms,
                    key: self.key.to_string(),
                };
                docs.push(Doc {
                    kind: DOC_REPLAY_MOVE.into(),
                    key: format!("{}/{:012}", t.id, e.n),
                    value: to_value(&e),
                });
            }
        }
        t.refresh_remaining();
        docs.insert(0, task_doc(&t));
        docs
    }
}

struct Runner {
    engine: Arc<Engine>,
    b: Arc<dyn QueueBackend>,
    holder: String,
    lease: String,
    renewed: Mutex<tokio::time::Instant>,
    /// Returns counted from the DLQ (written with the next step, or the end).
    returned: Mutex<u64>,
}

/// How a runner stops.
enum Stop {
    /// Ends the replay with this status and reason.
    End(ReplayStatus, Option<String>),
    /// Another server runs it now, or it is gone or ended.
    Leave,
}

impl Runner {
    async fn run(&self, task: ReplayTask) {
        let id = task.id.clone();
        let stop = match self.steps(task).await {
            Ok(stop) => stop,
            Err(e) => {
                tracing::warn!(replay = %id, error = %e.message, "replay runner stopped");
                Stop::Leave
            }
        };
        if let Stop::End(status, reason) = stop
            && let Err(e) = self.finish(&id, status, reason).await
        {
            tracing::warn!(replay = %id, error = %e.message, "could not end a replay");
        }
        if let Err(e) = self.b.release(&self.lease, &self.holder).await {
            tracing::warn!(error = %e.message, "could not release a replay's lease");
        }
    }

    /// Ends the replay (if this server still holds it); a completed replay counts what it did
    /// not reach (gone before a resume, or in flight past the grace) as skipped.
    async fn finish(
        &self,
        id: &str,
        status: ReplayStatus,
        reason: Option<String>,
    ) -> SqsResult<()> {
        if !self
            .b
            .lease(&self.lease, &self.holder, REPLAY_LEASE_MS)
            .await?
        {
            return Ok(());
        }
        let now = self.b.now_ms().await?;
        let returned = *self.returned.lock();
        self.b
            .edit_documents(DOC_REPLAY, &|docs| {
                let Some(mut t) = docs
                    .iter()
                    .find(|(k, _)| k == id)
                    .and_then(|(_, v)| task_of(v))
                else {
                    return Ok(DocsEdit::default());
                };
                t.returned = t.returned.max(returned);
                if status == ReplayStatus::Completed && t.status == ReplayStatus::Running {
                    t.skipped += t.remaining;
                }
                if !end_replay(&mut t, status, reason.clone(), now) {
                    return Ok(DocsEdit::default());
                }
                Ok(DocsEdit {
                    put: vec![task_doc(&t)],
                    delete_prefixed: Vec::new(),
                    delete: Vec::new(),
                })
            })
            .await?;
        tracing::info!(replay = %id, "replay ended");
        Ok(())
    }

    /// Every message of `q` after `after` (as [`all_messages`]), renewing the lease between
    /// pages (a large DLQ takes a while to read): `None` once another server has it.
    async fn read_all(&self, q: &SharedQueue, after: u64) -> SqsResult<Option<Vec<Stored>>> {
        let mut out: Vec<Stored> = Vec::new();
        let mut after = after;
        loop {
            if !self.keep_lease().await? {
                return Ok(None);
            }
            let page = self
                .b
                .browse(
                    q,
                    BrowseRange {
                        after_seq: after,
                        state: None,
                        limit: PAGE,
                    },
                )
                .await?;
            let n = page.len();
            if let Some(last) = page.last() {
                after = last.seq;
            }
            out.extend(page);
            if n < PAGE {
                return Ok(Some(out));
            }
        }
    }

    /// Renews the lease every third of its lifetime: `false` once another server has it.
    async fn keep_lease(&self) -> SqsResult<bool> {
        if self.renewed.lock().elapsed() < Duration::from_millis(REPLAY_LEASE_MS / 3) {
            return Ok(true);
        }
        if !self
            .b
            .lease(&self.lease, &self.holder, REPLAY_LEASE_MS)
            .await?
        {
            return Ok(false);
        }
        *self.renewed.lock() = tokio::time::Instant::now();
        Ok(true)
    }

    /// Runs the replay until it ends or another server has it.
    async fn steps(&self, task: ReplayTask) -> SqsResult<Stop> {
        let e = &*self.engine;
        let b = &*self.b;
        let id = task.id.clone();
        if task.status == ReplayStatus::Cancelling {
            return Ok(Stop::End(ReplayStatus::Cancelled, None));
        }
        let Ok(compiled) = Compiled::new(&task.spec) else {
            return Ok(Stop::End(
                ReplayStatus::Failed,
                Some("the replay's expressions no longer compile".into()),
            ));
        };
        let Some(source) = e.sh_resolve_arn(b, &task.source).await? else {
            return Ok(Stop::End(
                ReplayStatus::Failed,
                Some("the source queue no longer exists".into()),
            ));
        };
        let selection: Vec<Selected> = b
            .document(DOC_REPLAY_SELECTION, &id)
            .await?
            .and_then(|v| serde_json::from_value::<SelectionDoc>(v).ok())
            .map(|s| s.selected)
            .unwrap_or_default();
        // Returned messages arrive after every selected one.
        let mut watermark = selection.iter().map(|s| s.seq).max().unwrap_or(0);
        // What is left: selected messages still in the DLQ (a moved one is gone, atomically).
        let Some(there) = self.read_all(&source, 0).await? else {
            return Ok(Stop::Leave);
        };
        let mut by_arn: BTreeMap<String, SharedQueue> = BTreeMap::new();
        let present: HashMap<u64, &Stored> = there.iter().map(|m| (m.seq, m)).collect();
        let pending: Vec<Selected> = selection
            .into_iter()
            .filter(|s| present.contains_key(&s.seq))
            .collect();
        let fixed = match &task.destination {
            Some(arn) => Some(e.sh_resolve_arn(b, arn).await?),
            None => None,
        };
        if fixed.is_none() {
            for arn in pending
                .iter()
                .filter_map(|s| present.get(&s.seq)?.dead_letter_source_arn.clone())
                .collect::<HashSet<_>>()
            {
                if let Some(q) = e.sh_resolve_arn(b, &arn).await? {
                    by_arn.insert(arn, q);
                }
            }
        }
        drop(present);
        drop(there);
        let adaptive = task.spec.rate.is_none();
        let mut rate = task.spec.rate.unwrap_or(ADAPTIVE_START);
        let mut pacing = Pacing::new(pending, rate, task.spec.rate_per.as_ref().map(|r| r.rate));
        let mut breaker = task.spec.breaker.map(Breaker::new);
        let mut returned = task.returned;
        let mut seen_returns = 0u64;
        let mut window_start = tokio::time::Instant::now();
        let mut returns_read = tokio::time::Instant::now() - Duration::from_secs(1);
        loop {
            if !self.keep_lease().await? {
                return Ok(Stop::Leave);
            }
            // Returns: replayed messages of this run dead-lettered again since the last look.
            if returns_read.elapsed() >= Duration::from_secs(1) {
                returns_read = tokio::time::Instant::now();
                let Some(arrived) = self.read_all(&source, watermark).await? else {
                    return Ok(Stop::Leave);
                };
                for m in arrived {
                    watermark = watermark.max(m.seq);
                    let run = m
                        .attributes
                        .get(provenance::ATTRIBUTE)
                        .and_then(|v| v.string_value.as_deref())
                        .and_then(Provenance::parse)
                        .map(|p| p.run);
                    if run.as_deref() == Some(id.as_str()) {
                        seen_returns += 1;
                        if let Some(br) = breaker.as_mut() {
                            br.returned(m.dead_lettered_ms.unwrap_or(m.sent_ms));
                        }
                    }
                }
                returned = returned.max(seen_returns);
                *self.returned.lock() = returned;
                if let Some(br) = breaker.as_mut()
                    && let Some(reason) = br.check(b.now_ms().await?)
                {
                    return Ok(Stop::End(ReplayStatus::Tripped, Some(reason)));
                }
            }
            if adaptive && window_start.elapsed() >= Duration::from_secs(1) {
                window_start = tokio::time::Instant::now();
                let backlog = self.backlog(&task, &source).await?;
                rate = adapt_rate(rate, backlog as usize);
                pacing.set_global_rate(rate);
            }
            let (seq, key) = match pacing.turn() {
                Turn::Move { seq, key } => (seq, key),
                Turn::Sleep(d) => {
                    // Waiting (for in-flight messages, or the rate): a cancel ends it meanwhile.
                    if d >= Duration::from_millis(100)
                        && b.document(DOC_REPLAY, &id)
                            .await?
                            .as_ref()
                            .and_then(task_of)
                            .is_none_or(|t| t.status != ReplayStatus::Running)
                    {
                        return Ok(Stop::End(ReplayStatus::Cancelled, None));
                    }
                    tokio::time::sleep(d).await;
                    continue;
                }
                // What is left (gone before a takeover, in flight past the grace) is counted
                // skipped by the end.
                Turn::Finished { .. } => return Ok(Stop::End(ReplayStatus::Completed, None)),
            };
            let rules = Rules {
                engine: e,
                task: &task,
                compiled: &compiled,
                source: &source,
                fixed: fixed.clone(),
                by_arn: &by_arn,
                returned,
                key: &key,
            };
            let step = ReplayStep {
                kind: DOC_REPLAY,
                replay_id: &id,
                lease: &self.lease,
                holder: &self.holder,
                source: &source,
                seq,
            };
            match b.replay_step(step, &rules).await {
                Err(err) => {
                    tracing::warn!(replay = %id, error = %err.message, "replay paused by a database failure");
                    pacing.retry(seq, &key);
                    tokio::time::sleep(FAILURE_PAUSE).await;
                }
                Ok(ReplayStepOutcome::LeaseLost) | Ok(ReplayStepOutcome::TaskGone) => {
                    return Ok(Stop::Leave);
                }
                Ok(ReplayStepOutcome::NotRunning(v)) => {
                    return Ok(match task_of(&v).map(|t| t.status) {
                        Some(ReplayStatus::Cancelling) => Stop::End(ReplayStatus::Cancelled, None),
                        _ => Stop::Leave,
                    });
                }
                Ok(ReplayStepOutcome::Done { found, .. }) => match found {
                    ReplayFound::Moved { from_id, to_id, .. } => {
                        tracing::debug!(replay = %id, from = %from_id, to = %to_id, "replayed");
                        e.sh_counters(&source)
                            .redriven_by_replays
                            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        pacing.moved(&key);
                        if let Some(br) = breaker.as_mut() {
                            br.replayed(b.now_ms().await?);
                        }
                    }
                    ReplayFound::NotVisible => pacing.defer(seq, &key),
                    ReplayFound::Gone => {
                        pacing.passed(&key);
                        // Counted as skipped; the DLQ itself gone fails the replay.
                        if e.sh_resolve_arn(b, &task.source)
                            .await?
                            .is_none_or(|q| q.uid != source.uid)
                        {
                            return Ok(Stop::End(
                                ReplayStatus::Failed,
                                Some("the source queue no longer exists".into()),
                            ));
                        }
                    }
                    ReplayFound::Failed(reason) => {
                        tracing::warn!(replay = %id, %reason, "a selected message could not be replayed");
                        pacing.passed(&key);
                    }
                },
            }
        }
    }

    /// Visible messages waiting in the destination (the fixed one, or the busiest source).
    async fn backlog(&self, task: &ReplayTask, source: &SharedQueue) -> SqsResult<u64> {
        let e = &*self.engine;
        let b = &*self.b;
        let dests = match &task.destination {
            Some(arn) => e.sh_resolve_arn(b, arn).await?.into_iter().collect(),
            None => e.sh_dead_letter_sources(b, source).await?,
        };
        let mut most = 0;
        for q in dests {
            most = most.max(b.counts(&q).await?.visible);
        }
        Ok(most)
    }
}
