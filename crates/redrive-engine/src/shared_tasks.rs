//! Message move tasks over a shared [`QueueBackend`] (issue 17, ADR 0002): the same rules as
//! the embedded path (`tasks.rs`: validation, texts, the task table's rules, when a task ends,
//! the adaptive rate, what a redriven message keeps), with the task table in the backend and
//! each task run by whichever server holds its lease.
//!
//! **Invariants:**
//! - A task runs on at most one server at a time: its runner holds the lease
//!   `move-task/{id}` (renewed every third of [`MOVE_TASK_LEASE_MS`]), and every step is fenced
//!   by that lease inside the step's transaction, so a runner that lost it moves nothing.
//! - A step's moves and the task's progress are one transaction ([`QueueBackend::move_step`]):
//!   a server killed mid-task leaves progress that agrees with what moved; whoever takes the
//!   expired lease resumes from it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use redrive_core::SqsResult;
use redrive_core::api::*;

use crate::backend::{
    BoxFuture, MoveStep, QueueBackend, Redriven, Route, SharedQueue, StepOutcome, StepStop,
};
use crate::leased_jobs::{JobKind, Lease};
use crate::queues::RedrivePolicy;
use crate::store::{MoveTaskRecord, MoveTaskStatus};
use crate::tasks::{
    ADAPTIVE_START, DESTINATION_MISSING, adapt_rate, admit_task, cancel_task, check_list,
    check_start, encode_task_handle, end_task, ending, list_entries, new_task, not_found,
    task_of_handle,
};
use crate::{Engine, queue::QueueSettings};

/// A move task's lease lifetime: a dead runner's task is taken over within it.
pub const MOVE_TASK_LEASE_MS: u64 = 6_000;
/// Pause after a database failure before a runner tries again.
pub(crate) const FAILURE_PAUSE: Duration = Duration::from_secs(1);

fn lease_name(task_id: &str) -> String {
    format!("move-task/{task_id}")
}

impl Engine {
    pub(crate) async fn sh_start_move_task(
        &self,
        b: &dyn QueueBackend,
        input: StartMessageMoveTaskInput,
    ) -> SqsResult<StartMessageMoveTaskOutput> {
        let source = self.sh_resolve_arn(b, &input.source_arn).await?;
        let source_facts = match &source {
            Some(s) => Some((s.fifo, !self.sh_dead_letter_sources(b, s).await?.is_empty())),
            None => None,
        };
        let dest_fifo = match &input.destination_arn {
            Some(arn) => Some(self.sh_resolve_arn(b, arn).await?.map(|d| d.fifo)),
            None => None,
        };
        check_start(&input, source_facts, dest_fifo)?;
        let source = source.ok_or_else(|| not_found("SourceArn"))?;
        let to_move = b.counts(&source).await?.visible;
        let now = b.now_ms().await?;
        let record = new_task(&self.sh_arn(&source), &input, to_move, now);
        b.edit_move_tasks(&|tasks| admit_task(tasks, record.clone()).map(|_| ()))
            .await?;
        self.shared_tasks_wake.notify_one();
        tracing::info!(source = %source.name, task = %record.task_id, "message move task started");
        Ok(StartMessageMoveTaskOutput {
            task_handle: encode_task_handle(&record.task_id, &record.source_arn),
        })
    }

    pub(crate) async fn sh_cancel_move_task(
        &self,
        b: &dyn QueueBackend,
        input: CancelMessageMoveTaskInput,
    ) -> SqsResult<CancelMessageMoveTaskOutput> {
        let (task_id, source_arn) = task_of_handle(&input.task_handle)?;
        if self.sh_resolve_arn(b, &source_arn).await?.is_none() {
            return Err(not_found("SourceArn"));
        }
        let moved = Mutex::new(0);
        b.edit_move_tasks(&|tasks| {
            *moved.lock() = cancel_task(tasks, &task_id, &source_arn)?.moved;
            Ok(())
        })
        .await?;
        self.shared_tasks_wake.notify_one();
        Ok(CancelMessageMoveTaskOutput {
            approximate_number_of_messages_moved: *moved.lock() as i64,
        })
    }

    pub(crate) async fn sh_list_move_tasks(
        &self,
        b: &dyn QueueBackend,
        input: ListMessageMoveTasksInput,
    ) -> SqsResult<ListMessageMoveTasksOutput> {
        let max = check_list(&input)?;
        let source = self
            .sh_resolve_arn(b, &input.source_arn)
            .await?
            .ok_or_else(|| not_found("SourceArn"))?;
        let tasks = b.move_tasks().await?;
        Ok(ListMessageMoveTasksOutput {
            results: list_entries(&tasks, &self.sh_arn(&source), max),
        })
    }

    /// Forgets the move tasks of a deleted source queue (as the embedded `forget_move_tasks`):
    /// their runners stop at their next step.
    pub(crate) async fn sh_forget_move_tasks(
        &self,
        b: &dyn QueueBackend,
        source_arn: &str,
    ) -> SqsResult<()> {
        b.edit_move_tasks(&|tasks| {
            tasks.retain(|t| t.source_arn != source_arn);
            Ok(())
        })
        .await
    }

    /// `/moto-api/reset` on a shared store: every queue (with its messages and history), every
    /// move task, and the deletion times that hold a name for 60 s, for every server.
    pub(crate) async fn sh_reset(&self, b: &dyn QueueBackend) -> SqsResult<()> {
        for q in b.all_queues().await? {
            b.delete_queue(&q).await?;
        }
        b.edit_move_tasks(&|tasks| {
            tasks.clear();
            Ok(())
        })
        .await?;
        b.edit_documents(crate::DOC_DELETED_QUEUE, &|_| {
            Ok(crate::backend::DocsEdit {
                delete_prefixed: vec![(crate::DOC_DELETED_QUEUE.into(), String::new())],
                ..Default::default()
            })
        })
        .await?;
        self.shared_tasks_wake.notify_one();
        Ok(())
    }

    /// The queues whose `RedrivePolicy` names `dlq` as their dead-letter queue, by name.
    pub(crate) async fn sh_dead_letter_sources(
        &self,
        b: &dyn QueueBackend,
        dlq: &SharedQueue,
    ) -> SqsResult<Vec<SharedQueue>> {
        let arn = self.sh_arn(dlq);
        Ok(b.list_queues(&dlq.region, "")
            .await?
            .into_iter()
            .filter(|q| {
                q.attributes
                    .get("RedrivePolicy")
                    .and_then(|p| RedrivePolicy::parse_stored(p))
                    .is_some_and(|p| p.dead_letter_target_arn == arn)
            })
            .collect())
    }

    /// Starts the move-task runner of this server (`leased_jobs.rs`): each active task is run
    /// by the holder of its lease `move-task/{id}`.
    pub(crate) fn spawn_move_task_runner(self: &Arc<Self>, backend: Arc<dyn QueueBackend>) {
        let wake = Arc::clone(&self.shared_tasks_wake);
        self.spawn_leased_jobs(
            backend,
            wake,
            JobKind {
                what: "message move task",
                lease_ms: MOVE_TASK_LEASE_MS,
                active: active_tasks,
                id: |t: &MoveTaskRecord| t.task_id.clone(),
                lease_name,
                run: run_task,
            },
        );
    }
}

fn active_tasks(b: &dyn QueueBackend) -> BoxFuture<'_, SqsResult<Vec<MoveTaskRecord>>> {
    Box::pin(async move {
        let mut tasks = b.move_tasks().await?;
        tasks.retain(|t| t.status.is_active());
        Ok(tasks)
    })
}

fn run_task(lease: Lease, task: MoveTaskRecord) -> BoxFuture<'static, ()> {
    Box::pin(async move {
        let runner = Runner {
            engine: lease.engine,
            b: lease.b,
            holder: lease.holder,
            lease: lease.name,
        };
        runner.run(task).await;
    })
}

/// Destinations a step may route to: the task's fixed one, or the queues messages were
/// dead-lettered from (resolved as they are met).
struct Router {
    fixed: Option<SharedQueue>,
    by_arn: BTreeMap<String, SharedQueue>,
    source_uid: u64,
}

impl Route for Router {
    fn route(&self, dead_letter_source_arn: Option<&str>) -> Option<Redriven> {
        let dest = match &self.fixed {
            Some(q) => q,
            None => self.by_arn.get(dead_letter_source_arn?)?,
        };
        (dest.uid != self.source_uid).then(|| redriven(dest))
    }
}

/// What a message moved into `dest` becomes (as the embedded move's `redriven`): a new
/// message id, FIFO deduplication id = that id, the destination's delay.
fn redriven(dest: &SharedQueue) -> Redriven {
    let message_id = uuid::Uuid::new_v4().to_string();
    let delay = QueueSettings::from_attributes(&dest.attributes).delay_secs;
    Redriven {
        queue: Box::new(dest.clone()),
        dedup_id: dest.fifo.then(|| message_id.clone()),
        message_id,
        delay_ms: (delay.max(0) as u64) * 1000,
    }
}

struct Runner {
    engine: Arc<Engine>,
    b: Arc<dyn QueueBackend>,
    holder: String,
    lease: String,
}

impl Runner {
    async fn run(&self, task: MoveTaskRecord) {
        match self.steps(task).await {
            Ok(()) => {}
            Err(e) => tracing::warn!(error = %e.message, "move task runner stopped"),
        }
        if let Err(e) = self.b.release(&self.lease, &self.holder).await {
            tracing::warn!(error = %e.message, "could not release a move task's lease");
        }
    }

    async fn finish(
        &self,
        task_id: &str,
        status: MoveTaskStatus,
        reason: Option<String>,
    ) -> SqsResult<()> {
        self.b
            .edit_move_tasks(&|tasks| {
                if let Some(t) = tasks.iter_mut().find(|t| t.task_id == task_id) {
                    end_task(t, status, reason.clone());
                }
                Ok(())
            })
            .await?;
        tracing::info!(task = %task_id, "message move task ended");
        Ok(())
    }

    /// Runs the task until it ends, its lease is lost or it is gone.
    async fn steps(&self, mut task: MoveTaskRecord) -> SqsResult<()> {
        let e = &*self.engine;
        let b = &*self.b;
        let task_id = task.task_id.clone();
        let mut rate = task.max_per_second.map_or(ADAPTIVE_START, |r| r as f64);
        let mut next_slot = tokio::time::Instant::now();
        let mut window_start = tokio::time::Instant::now();
        let mut renewed = tokio::time::Instant::now();
        let mut by_arn = BTreeMap::new();
        loop {
            if !task.status.is_active() {
                return Ok(());
            }
            if let Some((status, reason)) = ending(&task, b.now_ms().await?) {
                return self.finish(&task_id, status, reason).await;
            }
            tokio::time::sleep_until(next_slot).await;
            if renewed.elapsed() >= Duration::from_millis(MOVE_TASK_LEASE_MS / 3) {
                if !b
                    .lease(&self.lease, &self.holder, MOVE_TASK_LEASE_MS)
                    .await?
                {
                    return Ok(());
                }
                renewed = tokio::time::Instant::now();
            }
            let Some(source) = e.sh_resolve_arn(b, &task.source_arn).await? else {
                return self
                    .finish(
                        &task_id,
                        MoveTaskStatus::Failed,
                        Some(DESTINATION_MISSING.into()),
                    )
                    .await;
            };
            let fixed = match &task.destination_arn {
                Some(arn) => match e.sh_resolve_arn(b, arn).await? {
                    Some(q) => Some(q),
                    None => {
                        return self
                            .finish(
                                &task_id,
                                MoveTaskStatus::Failed,
                                Some(DESTINATION_MISSING.into()),
                            )
                            .await;
                    }
                },
                None => None,
            };
            let router = Router {
                fixed,
                by_arn: std::mem::take(&mut by_arn),
                source_uid: source.uid,
            };
            // Steps of about a tenth of a second at the rate, never past what is left.
            let left = task.to_move.saturating_sub(task.moved).max(1);
            let max = ((rate / 10.0) as u64).clamp(1, left) as usize;
            let outcome = b
                .move_step(
                    MoveStep {
                        task_id: &task_id,
                        lease: &self.lease,
                        holder: &self.holder,
                        source: &source,
                        max,
                    },
                    &router,
                )
                .await;
            by_arn = router.by_arn;
            let outcome = match outcome {
                Ok(o) => o,
                Err(err) => {
                    tracing::warn!(task = %task_id, error = %err.message, "move task paused by a database failure");
                    tokio::time::sleep(FAILURE_PAUSE).await;
                    continue;
                }
            };
            match outcome {
                StepOutcome::LeaseLost | StepOutcome::TaskGone => return Ok(()),
                StepOutcome::NotRunning(t) => task = t,
                StepOutcome::Moved {
                    moved,
                    task: t,
                    stop,
                } => {
                    task = t;
                    e.sh_counters(&source)
                        .redriven_by_move_tasks
                        .fetch_add(moved, std::sync::atomic::Ordering::Relaxed);
                    next_slot = next_slot.max(tokio::time::Instant::now())
                        + Duration::from_secs_f64(moved as f64 / rate);
                    match stop {
                        None if moved == 0 => {
                            // Another claim held the head: try again shortly.
                            next_slot += Duration::from_millis(5);
                        }
                        None => {}
                        Some(StepStop::Empty) => {
                            return self.finish(&task_id, MoveTaskStatus::Completed, None).await;
                        }
                        Some(StepStop::Unrouted(arn)) => {
                            // A message from a queue not met yet: look it up, or fail the task
                            // as the embedded move does (no such queue, no dead-letter source,
                            // or the source itself).
                            let found = match &arn {
                                Some(a) if task.destination_arn.is_none() => {
                                    e.sh_resolve_arn(b, a).await?
                                }
                                _ => None,
                            };
                            match found {
                                Some(q)
                                    if q.uid != source.uid
                                        && !by_arn.contains_key(&e.sh_arn(&q)) =>
                                {
                                    by_arn.insert(e.sh_arn(&q), q);
                                }
                                _ => {
                                    return self
                                        .finish(
                                            &task_id,
                                            MoveTaskStatus::Failed,
                                            Some(DESTINATION_MISSING.into()),
                                        )
                                        .await;
                                }
                            }
                        }
                    }
                }
            }
            if task.max_per_second.is_none() && window_start.elapsed() >= Duration::from_secs(1) {
                window_start = tokio::time::Instant::now();
                rate = adapt_rate(rate, self.backlog(&task).await? as usize);
            }
        }
    }

    /// Visible messages waiting in the destination (the fixed one, or the busiest source).
    async fn backlog(&self, task: &MoveTaskRecord) -> SqsResult<u64> {
        let e = &*self.engine;
        let b = &*self.b;
        let dests = match &task.destination_arn {
            Some(arn) => e.sh_resolve_arn(b, arn).await?.into_iter().collect(),
            None => match e.sh_resolve_arn(b, &task.source_arn).await? {
                Some(source) => e.sh_dead_letter_sources(b, &source).await?,
                None => return Ok(0),
            },
        };
        let mut most = 0;
        for q in dests {
            most = most.max(b.counts(&q).await?.visible);
        }
        Ok(most)
    }
}
