//! `redrive move`: SQS's native message move tasks (`StartMessageMoveTask`,
//! `ListMessageMoveTasks`, `CancelMessageMoveTask`), on AWS or on a Redrive server.
//!
//! A move task takes every message of the DLQ (no selection) to each message's source queue
//! or to one destination. The CLI starts it and follows it with a progress bar; Ctrl-C asks
//! whether to cancel it (on a terminal), else detaches (the task keeps running) unless
//! `--cancel-on-interrupt`.

use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use aws_sdk_sqs::types::QueueAttributeName;
use serde::Serialize;

use crate::client::{Conn, QueueRef, sdk_error};
use crate::replay::{Interrupt, Outcome, ask, interactive, progress_bar};

/// SQS's range for `MaxNumberOfMessagesPerSecond`.
pub const MIN_MOVE_RATE: i32 = 1;
pub const MAX_MOVE_RATE: i32 = 500;

/// Checks `--rate` of a move task.
pub fn check_move_rate(rate: i32) -> Result<i32, String> {
    if (MIN_MOVE_RATE..=MAX_MOVE_RATE).contains(&rate) {
        Ok(rate)
    } else {
        Err(format!(
            "--rate of a move task must be between {MIN_MOVE_RATE} and {MAX_MOVE_RATE} messages per second (SQS's limit; got {rate}); `redrive replay` accepts other rates"
        ))
    }
}

/// What `move` should do.
#[derive(Debug, Clone)]
pub struct MovePlan {
    /// The DLQ (name or URL).
    pub source: String,
    /// Default: each message's own source queue.
    pub destination: Option<String>,
    pub rate: Option<i32>,
    /// Without a terminal, Ctrl-C cancels the task instead of detaching.
    pub cancel_on_interrupt: bool,
    /// Start it and return at once.
    pub no_follow: bool,
}

/// One move task, as `ListMessageMoveTasks` reports it.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MoveTask {
    pub task_handle: Option<String>,
    pub status: String,
    pub source_arn: String,
    pub destination_arn: Option<String>,
    pub max_number_of_messages_per_second: Option<i32>,
    pub approximate_number_of_messages_moved: i64,
    pub approximate_number_of_messages_to_move: Option<i64>,
    pub failure_reason: Option<String>,
    pub started_timestamp: i64,
}

/// How a followed task ended.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MoveReport {
    pub outcome: Outcome,
    pub task: MoveTask,
}

async fn arn_of(conn: &Conn, q: &QueueRef) -> Result<String> {
    let out = conn
        .sqs
        .get_queue_attributes()
        .queue_url(&q.url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| sdk_error(e, &q.name, conn.endpoint_url.as_deref()))?;
    out.attributes()
        .and_then(|a| a.get(&QueueAttributeName::QueueArn))
        .cloned()
        .ok_or_else(|| anyhow!("`{}` has no QueueArn", q.name))
}

/// The tasks on a DLQ, newest first.
pub async fn list(conn: &Conn, source: &str) -> Result<Vec<MoveTask>> {
    let q = conn.resolve(source).await?;
    let arn = arn_of(conn, &q).await?;
    list_arn(conn, &arn, 10).await
}

async fn list_arn(conn: &Conn, arn: &str, max: i32) -> Result<Vec<MoveTask>> {
    let out = conn
        .sqs
        .list_message_move_tasks()
        .source_arn(arn)
        .max_results(max)
        .send()
        .await
        .map_err(|e| sdk_error(e, arn, conn.endpoint_url.as_deref()))?;
    Ok(out
        .results()
        .iter()
        .map(|t| MoveTask {
            task_handle: t.task_handle().map(str::to_string),
            status: t.status().unwrap_or_default().to_string(),
            source_arn: t.source_arn().unwrap_or_default().to_string(),
            destination_arn: t.destination_arn().map(str::to_string),
            max_number_of_messages_per_second: t.max_number_of_messages_per_second(),
            approximate_number_of_messages_moved: t.approximate_number_of_messages_moved(),
            approximate_number_of_messages_to_move: t.approximate_number_of_messages_to_move(),
            failure_reason: t.failure_reason().map(str::to_string),
            started_timestamp: t.started_timestamp(),
        })
        .collect())
}

/// Cancels the running task on a DLQ.
pub async fn cancel(conn: &Conn, source: &str) -> Result<MoveTask> {
    let tasks = list(conn, source).await?;
    let Some(task) = tasks.into_iter().find(|t| t.status == "RUNNING") else {
        bail!("no move task is running on `{source}`");
    };
    let handle = task.task_handle.clone().unwrap_or_default();
    cancel_handle(conn, &handle).await?;
    Ok(task)
}

async fn cancel_handle(conn: &Conn, handle: &str) -> Result<()> {
    conn.sqs
        .cancel_message_move_task()
        .task_handle(handle)
        .send()
        .await
        .map_err(|e| sdk_error(e, handle, conn.endpoint_url.as_deref()))?;
    Ok(())
}

/// Starts a task and (unless `no_follow`) follows it until it ends.
pub async fn start(conn: &Conn, plan: &MovePlan, interrupt: &Interrupt) -> Result<MoveReport> {
    let q = conn.resolve(&plan.source).await?;
    let arn = arn_of(conn, &q).await?;
    let dest_arn = match &plan.destination {
        Some(d) => {
            let dq = conn
                .resolve(d)
                .await
                .map_err(|e| anyhow!("destination: {e:#}"))?;
            Some(arn_of(conn, &dq).await?)
        }
        None => None,
    };
    if let Some(r) = plan.rate {
        check_move_rate(r).map_err(|e| anyhow!(e))?;
    }
    let out = conn
        .sqs
        .start_message_move_task()
        .source_arn(&arn)
        .set_destination_arn(dest_arn)
        .set_max_number_of_messages_per_second(plan.rate)
        .send()
        .await
        .map_err(|e| sdk_error(e, &q.name, conn.endpoint_url.as_deref()))?;
    let handle = out.task_handle().unwrap_or_default().to_string();
    eprintln!("started move task {handle} on `{}`", q.name);
    let current = || async {
        let tasks = list_arn(conn, &arn, 10).await?;
        Ok::<_, anyhow::Error>(
            tasks
                .iter()
                .find(|t| t.task_handle.as_deref() == Some(handle.as_str()))
                .or_else(|| tasks.first())
                .cloned()
                .unwrap_or_default(),
        )
    };
    let mut task = current().await?;
    if plan.no_follow {
        return Ok(MoveReport {
            outcome: Outcome::Detached,
            task,
        });
    }
    let bar = progress_bar(
        task.approximate_number_of_messages_to_move
            .unwrap_or(0)
            .max(0) as u64,
        "moving",
    );
    let mut seen = interrupt.count();
    let mut cancelled = false;
    loop {
        if let Some(n) = task.approximate_number_of_messages_to_move {
            bar.set_length(n.max(0) as u64);
        }
        bar.set_position(task.approximate_number_of_messages_moved.max(0) as u64);
        let outcome = match task.status.as_str() {
            "COMPLETED" => Some(Outcome::Completed),
            "CANCELLED" => Some(if cancelled {
                Outcome::Interrupted
            } else {
                Outcome::Cancelled
            }),
            "FAILED" => Some(Outcome::Failed),
            _ => None,
        };
        if let Some(outcome) = outcome {
            bar.finish_and_clear();
            return Ok(MoveReport { outcome, task });
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            _ = interrupt.after(seen) => {
                seen = interrupt.count();
                if !cancelled {
                    let cancel = if interactive() {
                        ask(&format!("Cancel move task {handle}? (no: it keeps running)")).await
                    } else {
                        plan.cancel_on_interrupt
                    };
                    if cancel {
                        cancel_handle(conn, &handle).await?;
                        cancelled = true;
                    } else {
                        bar.finish_and_clear();
                        eprintln!(
                            "detached: move task {handle} keeps running; `redrive move {} --list` shows it, `--cancel` stops it",
                            plan.source
                        );
                        return Ok(MoveReport { outcome: Outcome::Detached, task });
                    }
                }
            }
        }
        task = current().await?;
    }
}

/// Text for people.
pub fn render_tasks(tasks: &[MoveTask]) -> String {
    if tasks.is_empty() {
        return "(no move tasks)\n".to_string();
    }
    let rows: Vec<Vec<String>> = tasks
        .iter()
        .map(|t| {
            vec![
                t.status.clone(),
                t.approximate_number_of_messages_moved.to_string(),
                t.approximate_number_of_messages_to_move
                    .map(|n| n.to_string())
                    .unwrap_or_default(),
                t.destination_arn
                    .clone()
                    .unwrap_or_else(|| "(each source)".into()),
                t.max_number_of_messages_per_second
                    .map(|n| format!("{n}/s"))
                    .unwrap_or_else(|| "adaptive".into()),
                crate::util::format_ts(t.started_timestamp),
                t.task_handle.clone().unwrap_or_default(),
                t.failure_reason.clone().unwrap_or_default(),
            ]
        })
        .collect();
    crate::util::render_table(
        &[
            "status",
            "moved",
            "to move",
            "destination",
            "rate",
            "started",
            "handle",
            "failure",
        ],
        &rows,
    )
}
