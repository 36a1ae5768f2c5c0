//! Message move tasks (`StartMessageMoveTask`, `ListMessageMoveTasks`,
//! `CancelMessageMoveTask`): redrive from a DLQ back to each message's own source queue, or to
//! a given destination.
//!
//! **Invariants:**
//! - A message is moved in one store batch (delete from the DLQ, put into the destination,
//!   task progress), with both queue locks held: it is never in two queues, never in none.
//! - The destination is resolved before the DLQ copy is touched; a missing destination fails
//!   the task with `AWS.SimpleQueueService.NonExistentQueue` and leaves the message in place.
//! - Only visible DLQ messages move (in-flight and delayed ones stay), oldest first.
//! - A redriven message is new: new MessageId, new enqueue time, receive count 0; body, message
//!   attributes, `AWSTraceHeader` and `MessageGroupId` are kept.
//!
//! Rate: a token schedule at `MaxNumberOfMessagesPerSecond` when given. Without it the rate is
//! adaptive: it starts at [`ADAPTIVE_START`] msg/s, doubles every second up to
//! [`ADAPTIVE_MAX`] while the destination's visible backlog stays under
//! [`ADAPTIVE_BACKLOG`], and halves (down to [`ADAPTIVE_MIN`]) whenever it is above, so a
//! redrive never piles up more than a bounded backlog in front of slow consumers.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use redrive_core::api::*;
use redrive_core::{ErrorCode, SqsError, SqsResult};
use serde_json::Value;

use crate::moves::{Commit, MoveResult, Pick};
use crate::store::{MoveTaskRecord, MoveTaskStatus, Mutation};
use crate::{Engine, Queue};

pub const ADAPTIVE_START: f64 = 50.0;
pub const ADAPTIVE_MAX: f64 = 500.0;
pub const ADAPTIVE_MIN: f64 = 10.0;
pub const ADAPTIVE_BACKLOG: usize = 1000;
/// Tasks kept per source for `ListMessageMoveTasks` (the newest; active ones are never pruned).
const TASKS_KEPT_PER_SOURCE: usize = 10;
const MAX_ACTIVE_TASKS: usize = 100;
const MAX_TASK_MS: u64 = 36 * 3600 * 1000;
const NON_EXISTENT_QUEUE: &str = "AWS.SimpleQueueService.NonExistentQueue";

pub(crate) fn not_found(param: &str) -> SqsError {
    SqsError::new(
        ErrorCode::ResourceNotFoundException,
        format!("The resource that you specified for the {param} parameter doesn't exist."),
    )
}

pub fn encode_task_handle(task_id: &str, source_arn: &str) -> String {
    // Key order as AWS writes it.
    let raw = format!(
        "{{\"taskId\":{},\"sourceArn\":{}}}",
        Value::String(task_id.to_string()),
        Value::String(source_arn.to_string())
    );
    STANDARD.encode(raw)
}

pub fn decode_task_handle(handle: &str) -> Option<(String, String)> {
    let raw = STANDARD.decode(handle.as_bytes()).ok()?;
    let v: Value = serde_json::from_slice(&raw).ok()?;
    Some((
        v.get("taskId")?.as_str()?.to_string(),
        v.get("sourceArn")?.as_str()?.to_string(),
    ))
}

/// What one step of a task did.
enum Step {
    Moved,
    Done,
    Failed(String),
    /// Lock contention or a racing consumer: try again shortly.
    Retry,
    /// The task no longer exists: its source queue was deleted (or the state reset). The
    /// runner stops without touching a queue that may since have taken the same name.
    Gone,
    /// The store failed the move (memory is already rebuilt without it): pause, then go on
    /// from what the store holds.
    StoreFailed,
}

/// How long a move task pauses after a store failure before it tries again.
const STORE_FAILURE_PAUSE: Duration = Duration::from_secs(1);

impl Engine {
    /// Forgets the move tasks of a source queue that is being deleted (`None`: every task,
    /// for a reset), returning the store mutations. A task belongs to its queue: a queue
    /// created later under the same name (and ARN) neither lists nor inherits it, and its
    /// runner stops at its next step (issue 20 point 8). Called with the queue's lock held
    /// (the task table is a leaf lock).
    pub(crate) fn forget_move_tasks(&self, source_arn: Option<&str>) -> Vec<Mutation> {
        let mut tasks = self.move_tasks.lock();
        let mut muts = Vec::new();
        tasks.retain(|t| {
            let forget = source_arn.is_none_or(|a| t.source_arn == a);
            if forget {
                muts.push(Mutation::DeleteMoveTask {
                    task_id: t.task_id.clone(),
                });
            }
            !forget
        });
        muts
    }

    fn is_dead_letter_queue(&self, queue: &Queue) -> bool {
        !self.dead_letter_sources(queue).is_empty()
    }

    pub async fn start_message_move_task(
        self: &Arc<Self>,
        input: StartMessageMoveTaskInput,
    ) -> SqsResult<StartMessageMoveTaskOutput> {
        if let Some(b) = self.shared.clone() {
            return self.sh_start_move_task(&*b, input).await;
        }
        self.ensure_synced()?;
        let source = self.resolve_arn(&input.source_arn);
        // The state's guard must be gone before `is_dead_letter_queue`, which locks every
        // queue's state (this one included).
        let source_facts = source.as_ref().map(|s| {
            let fifo = s.state.lock().settings.fifo;
            (fifo, self.is_dead_letter_queue(s))
        });
        let dest_fifo = input
            .destination_arn
            .as_ref()
            .map(|arn| self.resolve_arn(arn).map(|d| d.state.lock().settings.fifo));
        check_start(&input, source_facts, dest_fifo)?;
        let source = source.ok_or_else(|| not_found("SourceArn"))?;
        let now = self.now_ms();
        let to_move = {
            let mut muts = Vec::new();
            let mut st = source.state.lock();
            st.tick(now, &mut muts);
            if !muts.is_empty() {
                let _ = self.store.submit(muts);
            }
            st.ready.len() as u64
        };
        let record = new_task(&source.arn, &input, to_move, now);
        let ticket = {
            let mut tasks = self.move_tasks.lock();
            let pruned = admit_task(&mut tasks, record.clone())?;
            let mut muts = vec![Mutation::PutMoveTask(record.clone())];
            muts.extend(
                pruned
                    .into_iter()
                    .map(|task_id| Mutation::DeleteMoveTask { task_id }),
            );
            self.store.submit(muts)
        };
        self.durable(ticket).await?;
        self.spawn_move_task(record.task_id.clone());
        tracing::info!(source = %source.name, task = %record.task_id, "message move task started");
        Ok(StartMessageMoveTaskOutput {
            task_handle: encode_task_handle(&record.task_id, &record.source_arn),
        })
    }

    pub async fn cancel_message_move_task(
        &self,
        input: CancelMessageMoveTaskInput,
    ) -> SqsResult<CancelMessageMoveTaskOutput> {
        if let Some(b) = self.shared.clone() {
            return self.sh_cancel_move_task(&*b, input).await;
        }
        let (task_id, source_arn) = task_of_handle(&input.task_handle)?;
        if self.resolve_arn(&source_arn).is_none() {
            return Err(not_found("SourceArn"));
        }
        let (moved, ticket) = {
            let mut tasks = self.move_tasks.lock();
            let task = cancel_task(&mut tasks, &task_id, &source_arn)?;
            (
                task.moved,
                self.store.submit(vec![Mutation::PutMoveTask(task.clone())]),
            )
        };
        self.durable(ticket).await?;
        Ok(CancelMessageMoveTaskOutput {
            approximate_number_of_messages_moved: moved as i64,
        })
    }

    pub fn list_message_move_tasks(
        &self,
        input: ListMessageMoveTasksInput,
    ) -> SqsResult<ListMessageMoveTasksOutput> {
        let max = check_list(&input)?;
        let source = self
            .resolve_arn(&input.source_arn)
            .ok_or_else(|| not_found("SourceArn"))?;
        let tasks = self.move_tasks.lock();
        Ok(ListMessageMoveTasksOutput {
            results: list_entries(&tasks, &source.arn, max),
        })
    }

    /// Restarts the runners of tasks that were active when the store was last written.
    /// A task that was being cancelled is finished as CANCELLED.
    pub fn resume_move_tasks(self: &Arc<Self>) {
        let to_run: Vec<String> = {
            let mut tasks = self.move_tasks.lock();
            let mut muts = Vec::new();
            let mut run = Vec::new();
            for t in tasks.iter_mut() {
                match t.status {
                    MoveTaskStatus::Running => run.push(t.task_id.clone()),
                    MoveTaskStatus::Cancelling => {
                        t.status = MoveTaskStatus::Cancelled;
                        muts.push(Mutation::PutMoveTask(t.clone()));
                    }
                    _ => {}
                }
            }
            if !muts.is_empty() {
                let _ = self.store.submit(muts);
            }
            run
        };
        for id in to_run {
            tracing::info!(task = %id, "resuming message move task");
            self.spawn_move_task(id);
        }
    }

    fn spawn_move_task(self: &Arc<Self>, task_id: String) {
        let engine = Arc::clone(self);
        tokio::spawn(async move { engine.run_move_task(task_id).await });
    }

    fn task(&self, task_id: &str) -> Option<MoveTaskRecord> {
        self.move_tasks
            .lock()
            .iter()
            .find(|t| t.task_id == task_id)
            .cloned()
    }

    async fn finish_task(&self, task_id: &str, status: MoveTaskStatus, reason: Option<String>) {
        let ticket = {
            let mut tasks = self.move_tasks.lock();
            let Some(t) = tasks.iter_mut().find(|t| t.task_id == task_id) else {
                return;
            };
            if !end_task(t, status, reason) {
                return; // already ended
            }
            self.store.submit(vec![Mutation::PutMoveTask(t.clone())])
        };
        if let Err(e) = self.durable(ticket).await {
            tracing::error!(task = %task_id, error = %e, "could not persist move task status");
        }
        tracing::info!(task = %task_id, "message move task ended");
    }

    async fn run_move_task(self: Arc<Self>, task_id: String) {
        let Some(task) = self.task(&task_id) else {
            return;
        };
        let mut rate = task.max_per_second.map_or(ADAPTIVE_START, |r| r as f64);
        let mut next_slot = tokio::time::Instant::now();
        let mut window_start = tokio::time::Instant::now();
        loop {
            let Some(task) = self.task(&task_id) else {
                return;
            };
            if !task.status.is_active() {
                return;
            }
            if let Some((status, reason)) = ending(&task, self.now_ms()) {
                self.finish_task(&task_id, status, reason).await;
                return;
            }
            tokio::time::sleep_until(next_slot).await;
            match self.move_one(&task).await {
                Step::Moved => {
                    next_slot = next_slot.max(tokio::time::Instant::now())
                        + Duration::from_secs_f64(1.0 / rate);
                }
                Step::Done => {
                    self.finish_task(&task_id, MoveTaskStatus::Completed, None)
                        .await;
                    return;
                }
                Step::Failed(reason) => {
                    self.finish_task(&task_id, MoveTaskStatus::Failed, Some(reason))
                        .await;
                    return;
                }
                Step::Retry => tokio::time::sleep(Duration::from_millis(5)).await,
                Step::Gone => return,
                Step::StoreFailed => tokio::time::sleep(STORE_FAILURE_PAUSE).await,
            }
            if task.max_per_second.is_none() && window_start.elapsed() >= Duration::from_secs(1) {
                window_start = tokio::time::Instant::now();
                rate = adapt_rate(rate, self.destination_backlog(&task));
            }
        }
    }

    /// Visible messages waiting in the destination (the fixed one, or the busiest source).
    fn destination_backlog(&self, task: &MoveTaskRecord) -> usize {
        let dests: Vec<Arc<Queue>> = match &task.destination_arn {
            Some(arn) => self.resolve_arn(arn).into_iter().collect(),
            None => match self.resolve_arn(&task.source_arn) {
                Some(source) => self.dead_letter_sources(&source),
                None => return 0,
            },
        };
        dests
            .iter()
            .map(|q| q.state.lock().ready.len())
            .max()
            .unwrap_or(0)
    }

    /// Moves the oldest visible message of the task's source.
    async fn move_one(&self, task: &MoveTaskRecord) -> Step {
        let Some(source) = self.resolve_arn(&task.source_arn) else {
            return Step::Failed(NON_EXISTENT_QUEUE.to_string());
        };
        let moved = self.move_message(
            &source,
            Pick::Head,
            task.destination_arn.as_deref(),
            |_, _| Ok(None),
            |pending| {
                // Checked with both queue locks held: a task whose source was deleted is gone
                // from the table (see `forget_move_tasks`), and must not move messages of a
                // new queue that took the same name (and ARN) since.
                let mut tasks = self.move_tasks.lock();
                let Some(t) = tasks.iter_mut().find(|t| t.task_id == task.task_id) else {
                    return Commit::TaskGone;
                };
                let Some(moved) = pending.transfer() else {
                    return Commit::NotTransferred;
                };
                let mut muts = moved.mutations;
                t.moved += 1;
                muts.push(Mutation::PutMoveTask(t.clone()));
                Commit::Submitted((), self.store.submit(muts))
            },
        );
        let ticket = match moved {
            MoveResult::Moved((), ticket) => ticket,
            MoveResult::Empty => return Step::Done,
            MoveResult::TaskGone => return Step::Gone,
            MoveResult::Retry | MoveResult::MessageGone | MoveResult::NotVisible => {
                return Step::Retry;
            }
            MoveResult::SourceGone
            | MoveResult::NoDestination
            | MoveResult::DestinationGone(_)
            | MoveResult::DestinationIsSource
            | MoveResult::Rejected(_) => return Step::Failed(NON_EXISTENT_QUEUE.to_string()),
        };
        match self.durable(ticket).await {
            Ok(()) => {
                source
                    .counters
                    .redriven_by_move_tasks
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                Step::Moved
            }
            Err(e) => {
                tracing::warn!(task = %task.task_id, error = %e, "move task paused by a store failure");
                Step::StoreFailed
            }
        }
    }
}

/// Keeps the newest [`TASKS_KEPT_PER_SOURCE`] tasks of a source (never dropping active ones),
/// returning the ids dropped.
fn prune(tasks: &mut Vec<MoveTaskRecord>, source_arn: &str) -> Vec<String> {
    let of_source = tasks.iter().filter(|t| t.source_arn == source_arn).count();
    let mut excess = of_source.saturating_sub(TASKS_KEPT_PER_SOURCE);
    let mut removed = Vec::new();
    tasks.retain(|t| {
        if excess > 0 && t.source_arn == source_arn && !t.status.is_active() {
            excess -= 1;
            removed.push(t.task_id.clone());
            false
        } else {
            true
        }
    });
    removed
}

// The move-task rules below are shared by the embedded path and the shared store
// (`shared_tasks.rs`); the caller looks up what they need and persists what they change.

/// `StartMessageMoveTask`'s validation, in AWS's order: `source` is the source queue's
/// `(fifo, is a dead-letter queue)` if it exists, `destination` the destination's FIFO-ness
/// when a `DestinationArn` is given (`None` inside when it does not exist).
pub(crate) fn check_start(
    input: &StartMessageMoveTaskInput,
    source: Option<(bool, bool)>,
    destination: Option<Option<bool>>,
) -> SqsResult<()> {
    if input.source_arn.is_empty() {
        return Err(SqsError::missing_parameter("SourceArn"));
    }
    let (source_fifo, is_dlq) = source.ok_or_else(|| not_found("SourceArn"))?;
    if !is_dlq {
        return Err(SqsError::invalid_parameter(
            "Source queue must be configured as a Dead Letter Queue.",
        ));
    }
    if let Some(dest) = destination {
        let dest_fifo = dest.ok_or_else(|| not_found("DestinationArn"))?;
        if dest_fifo != source_fifo {
            return Err(SqsError::invalid_parameter(
                "The source queue and destination queue must be of the same queue type.",
            ));
        }
    }
    if let Some(rate) = input.max_number_of_messages_per_second
        && !(1..=500).contains(&rate)
    {
        return Err(SqsError::invalid_value(
            "MaxNumberOfMessagesPerSecond",
            rate,
            "Must be between 1 and 500.",
        ));
    }
    Ok(())
}

/// A new running task of `source_arn` with `to_move` visible messages.
pub(crate) fn new_task(
    source_arn: &str,
    input: &StartMessageMoveTaskInput,
    to_move: u64,
    now: u64,
) -> MoveTaskRecord {
    MoveTaskRecord {
        task_id: uuid::Uuid::new_v4().to_string(),
        source_arn: source_arn.to_string(),
        destination_arn: input.destination_arn.clone(),
        max_per_second: input.max_number_of_messages_per_second,
        status: MoveTaskStatus::Running,
        moved: 0,
        to_move,
        started_ms: now,
        failure_reason: None,
    }
}

/// Adds a started task to the table (in start order) if its source has no active task and
/// the account is under [`MAX_ACTIVE_TASKS`]; returns the ids of old tasks pruned.
pub(crate) fn admit_task(
    tasks: &mut Vec<MoveTaskRecord>,
    record: MoveTaskRecord,
) -> SqsResult<Vec<String>> {
    if tasks
        .iter()
        .any(|t| t.source_arn == record.source_arn && t.status.is_active())
    {
        return Err(SqsError::invalid_parameter(
            "There is already a task running. Only one active task is allowed for a source queue arn at a given time.",
        ));
    }
    if tasks.iter().filter(|t| t.status.is_active()).count() >= MAX_ACTIVE_TASKS {
        return Err(SqsError::invalid_parameter(format!(
            "There are already {MAX_ACTIVE_TASKS} active message move tasks in this account."
        )));
    }
    let source = record.source_arn.clone();
    tasks.push(record);
    Ok(prune(tasks, &source))
}

/// The task a `TaskHandle` names: `(task id, source ARN)`.
pub(crate) fn task_of_handle(handle: &str) -> SqsResult<(String, String)> {
    decode_task_handle(handle)
        .ok_or_else(|| SqsError::invalid_parameter("Value for parameter TaskHandle is invalid."))
}

/// `CancelMessageMoveTask` on the table: a running task becomes CANCELLING (its runner ends it).
pub(crate) fn cancel_task<'a>(
    tasks: &'a mut [MoveTaskRecord],
    task_id: &str,
    source_arn: &str,
) -> SqsResult<&'a MoveTaskRecord> {
    let task = tasks
        .iter_mut()
        .find(|t| t.task_id == task_id && t.source_arn == source_arn)
        .ok_or_else(|| {
            SqsError::new(ErrorCode::ResourceNotFoundException, "Task does not exist.")
        })?;
    if task.status != MoveTaskStatus::Running {
        return Err(SqsError::invalid_parameter(format!(
            "Only a task with status RUNNING can be cancelled; this task is {}.",
            task.status.as_str()
        )));
    }
    task.status = MoveTaskStatus::Cancelling;
    Ok(task)
}

/// `ListMessageMoveTasks`' validation: the `MaxResults` to answer with.
pub(crate) fn check_list(input: &ListMessageMoveTasksInput) -> SqsResult<usize> {
    if input.source_arn.is_empty() {
        return Err(SqsError::missing_parameter("SourceArn"));
    }
    match input.max_results {
        None => Ok(1),
        Some(n) if (1..=10).contains(&n) => Ok(n as usize),
        Some(n) => Err(SqsError::invalid_value(
            "MaxResults",
            n,
            "You must enter a number that's between 1 and 10.",
        )),
    }
}

/// The newest `max` tasks of a source, newest first (`tasks` in start order).
pub(crate) fn list_entries(
    tasks: &[MoveTaskRecord],
    source_arn: &str,
    max: usize,
) -> Vec<ListMessageMoveTasksResultEntry> {
    tasks
        .iter()
        .rev()
        .filter(|t| t.source_arn == source_arn)
        .take(max)
        .map(|t| ListMessageMoveTasksResultEntry {
            task_handle: (t.status == MoveTaskStatus::Running)
                .then(|| encode_task_handle(&t.task_id, &t.source_arn)),
            status: t.status.as_str().to_string(),
            source_arn: t.source_arn.clone(),
            destination_arn: t.destination_arn.clone(),
            max_number_of_messages_per_second: t.max_per_second,
            approximate_number_of_messages_moved: t.moved as i64,
            approximate_number_of_messages_to_move: Some(t.to_move as i64),
            failure_reason: t.failure_reason.clone(),
            started_timestamp: t.started_ms as i64,
        })
        .collect()
}

/// Whether an active task ends before its next step, and how: a cancel ends it CANCELLED,
/// the 36-hour limit FAILED, everything counted moved COMPLETED.
pub(crate) fn ending(task: &MoveTaskRecord, now: u64) -> Option<(MoveTaskStatus, Option<String>)> {
    if task.status == MoveTaskStatus::Cancelling {
        return Some((MoveTaskStatus::Cancelled, None));
    }
    if now >= task.started_ms + MAX_TASK_MS {
        return Some((
            MoveTaskStatus::Failed,
            Some("The task exceeded its 36 hour limit.".to_string()),
        ));
    }
    (task.moved >= task.to_move).then_some((MoveTaskStatus::Completed, None))
}

/// Ends an active task with `status` (`false` when it had already ended). A cancel that
/// arrived while the runner was finishing wins: CANCELLING always ends as CANCELLED.
pub(crate) fn end_task(
    t: &mut MoveTaskRecord,
    status: MoveTaskStatus,
    reason: Option<String>,
) -> bool {
    if !t.status.is_active() {
        return false;
    }
    if t.status == MoveTaskStatus::Cancelling {
        t.status = MoveTaskStatus::Cancelled;
        t.failure_reason = None;
    } else {
        t.status = status;
        t.failure_reason = reason;
    }
    true
}

/// The adaptive rate's next value (messages per second) given the destination's visible
/// backlog: halved above [`ADAPTIVE_BACKLOG`], doubled otherwise, within bounds.
pub(crate) fn adapt_rate(rate: f64, backlog: usize) -> f64 {
    if backlog > ADAPTIVE_BACKLOG {
        (rate / 2.0).max(ADAPTIVE_MIN)
    } else {
        (rate * 2.0).min(ADAPTIVE_MAX)
    }
}

/// The failure reason of a task whose destination is missing (AWS's code as the reason).
pub(crate) const DESTINATION_MISSING: &str = NON_EXISTENT_QUEUE;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_handle_roundtrip() {
        let h = encode_task_handle("abc", "arn:aws:sqs:us-east-1:000000000000:dlq");
        assert_eq!(
            decode_task_handle(&h),
            Some((
                "abc".to_string(),
                "arn:aws:sqs:us-east-1:000000000000:dlq".to_string()
            ))
        );
        assert_eq!(decode_task_handle("not base64!"), None);
        assert_eq!(decode_task_handle(&STANDARD.encode("{}")), None);
    }
}
