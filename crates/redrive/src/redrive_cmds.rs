//! Flags of the commands that move messages (`move`, `replay`, `schedule`), validated into the
//! plans of `redrive_cli` before anything connects: a bad expression, rate, window or cron
//! expression is one clear error line and nothing moves.

use std::path::PathBuf;

use crate::investigate::ConnArgs;
use anyhow::{Result, anyhow, bail};
use clap::{Args, Subcommand};
use redrive_cli::movetask::{self, MovePlan};
use redrive_cli::replay::{self, Interrupt, ReplayPlan};
use redrive_cli::schedule::{self, ScheduleSpec};
use redrive_cli::util::now_ms;
use redrive_select::breaker::BreakerSpec;
use redrive_select::jq::GroupBy;
use redrive_select::pacing::parse_rate;
use redrive_select::schedule::{CronSchedule, RelativeWindow, parse_instant};
use redrive_select::selection::{SelectionSpec, Transform};

/// `redrive replay DLQ`
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The DLQ (name or URL).
    dlq: String,
    /// jq filter over the body (`.`) and `$meta` (messageId, sentTimestamp, deadLetteredAt,
    /// receiveCount, groupId, deadLetterQueueSourceArn, attributes, messageAttributes); a
    /// truthy first output selects the message.
    #[arg(long, value_name = "EXPR")]
    filter: Option<String>,
    /// Only messages sent at or after TIME (RFC 3339, 2026-11-23, epoch s/ms, or an age: 2h).
    #[arg(long, value_name = "TIME")]
    sent_after: Option<String>,
    /// Only messages sent before TIME.
    #[arg(long, value_name = "TIME")]
    sent_before: Option<String>,
    /// Only messages dead-lettered at or after TIME (known on a Redrive server only).
    #[arg(long, value_name = "TIME")]
    dead_lettered_after: Option<String>,
    /// Only messages dead-lettered before TIME.
    #[arg(long, value_name = "TIME")]
    dead_lettered_before: Option<String>,
    /// At most N messages.
    #[arg(long)]
    limit: Option<u64>,
    /// jq expression producing the new body (a string: end with `| tojson` for JSON).
    #[arg(long, value_name = "EXPR")]
    transform: Option<String>,
    /// Destination queue (default: each message's own source, from DeadLetterQueueSourceArn).
    #[arg(long, value_name = "QUEUE")]
    to: Option<String>,
    /// Global rate: N/s, N/m or N/h (0.01–10000 per second).
    #[arg(long)]
    rate: Option<String>,
    /// Per-key rate: a jq key and a rate for each of its values, e.g. `--rate-per .mall_id 5/s`.
    #[arg(long, num_args = 2, value_names = ["EXPR", "RATE"])]
    rate_per: Vec<String>,
    /// Circuit breaker SHARE[/WINDOW[/MIN]]: stop when more than SHARE of the messages
    /// replayed within WINDOW came back to the DLQ (e.g. 20%/5m/10).
    #[arg(long, value_name = "SPEC")]
    breaker: Option<String>,
    /// Do not add the `Redrive.Replay` provenance attribute.
    #[arg(long)]
    no_provenance: bool,
    /// Act. Without it the run is a dry run: it shows what would move and moves nothing.
    #[arg(long, short = 'y')]
    yes: bool,
    /// Messages shown by the dry run.
    #[arg(long, default_value_t = 5)]
    sample: usize,
    /// Export the selected messages to FILE (NDJSON, `redrive import` format) before anything moves.
    #[arg(long, value_name = "FILE")]
    backup: Option<PathBuf>,
    /// Audit log and journal (NDJSON; default ./redrive-audit/<dlq>.ndjson). A rerun with the
    /// same file finishes what an interrupted run started and never replays a message twice.
    #[arg(long, value_name = "FILE")]
    audit_log: Option<PathBuf>,
    /// Use receive / send / delete even on a Redrive server.
    #[arg(long)]
    client_side: bool,
    /// Server-side run without a terminal: Ctrl-C cancels the task instead of detaching.
    #[arg(long)]
    cancel_on_interrupt: bool,
    /// Client-side: seconds a received message is held (kept hidden by a heartbeat while the
    /// run works; a killed run's messages come back after it).
    #[arg(long, default_value_t = 120)]
    visibility_timeout: i32,
    /// List the replays of the DLQ (Redrive server).
    #[arg(long, conflicts_with_all = ["yes", "cancel"])]
    list: bool,
    /// Follow a running server-side replay by id (and write its moves to the audit log).
    #[arg(long, value_name = "ID", conflicts_with_all = ["list", "cancel"])]
    attach: Option<String>,
    /// Cancel a server-side replay by id.
    #[arg(long, value_name = "ID", conflicts_with = "yes")]
    cancel: Option<String>,
    /// Output: table or json.
    #[arg(long, value_parser = ["table", "json"], default_value = "table")]
    format: String,
    #[command(flatten)]
    conn: ConnArgs,
}

fn time(flag: &str, v: &Option<String>, now: i64) -> Result<Option<i64>> {
    v.as_deref()
        .map(|t| parse_instant(t, now).map_err(|e| anyhow!("--{flag}: {e}")))
        .transpose()
}

fn rate_per(v: &[String]) -> Result<Option<(String, f64)>> {
    match v {
        [] => Ok(None),
        [expr, rate] => {
            GroupBy::compile(expr).map_err(|e| anyhow!("--rate-per: {e}"))?;
            let r = parse_rate(rate).map_err(|e| anyhow!("--rate-per: {e}"))?;
            Ok(Some((expr.clone(), r)))
        }
        _ => bail!("--rate-per takes a jq key and a rate, e.g. --rate-per .mall_id 5/s"),
    }
}

fn rate(v: &Option<String>) -> Result<Option<f64>> {
    v.as_deref()
        .map(|r| parse_rate(r).map_err(|e| anyhow!("--rate: {e}")))
        .transpose()
}

fn breaker(v: &Option<String>) -> Result<Option<BreakerSpec>> {
    v.as_deref()
        .map(|b| BreakerSpec::parse(b).map_err(|e| anyhow!("--breaker: {e}")))
        .transpose()
}

impl ReplayArgs {
    fn plan(&self) -> Result<ReplayPlan> {
        let now = now_ms();
        let selection = SelectionSpec {
            filter: self.filter.clone(),
            sent_after: time("sent-after", &self.sent_after, now)?,
            sent_before: time("sent-before", &self.sent_before, now)?,
            dead_lettered_after: time("dead-lettered-after", &self.dead_lettered_after, now)?,
            dead_lettered_before: time("dead-lettered-before", &self.dead_lettered_before, now)?,
            limit: self.limit,
        };
        if !(1..=43_200).contains(&self.visibility_timeout) {
            bail!("--visibility-timeout must be between 1 and 43200 seconds");
        }
        let plan = ReplayPlan {
            source: self.dlq.clone(),
            destination: self.to.clone(),
            selection,
            transform: self.transform.clone(),
            rate: rate(&self.rate)?,
            rate_per: rate_per(&self.rate_per)?,
            breaker: breaker(&self.breaker)?,
            provenance: !self.no_provenance,
            dry_run: !self.yes,
            sample: self.sample,
            backup: self.backup.clone(),
            audit_log: self.audit_log.clone(),
            client_side: self.client_side,
            cancel_on_interrupt: self.cancel_on_interrupt,
            visibility_timeout: self.visibility_timeout,
            attach: self.attach.clone(),
            requested_by: replay::whoami(),
        };
        plan.validate()?;
        Ok(plan)
    }
}

/// `redrive replay`: exit 0 (done or dry run), 3 partial failure, 4 breaker tripped, 130
/// interrupted.
pub async fn run_replay(a: ReplayArgs) -> Result<u8> {
    let json = a.format == "json";
    if a.list || a.cancel.is_some() {
        let conn = a.conn.connect().await?;
        let dlq = conn.resolve(&a.dlq).await?;
        if let Some(id) = &a.cancel {
            let t = replay::cancel_task(&conn, &dlq, id).await?;
            println!("replay {} on `{}`: {}", t.id, dlq.name, t.status);
            return Ok(0);
        }
        let tasks = replay::list_tasks(&conn, &dlq).await?;
        if json {
            println!("{}", serde_json::to_string_pretty(&tasks)?);
        } else if tasks.is_empty() {
            println!("(no replays)");
        } else {
            let rows: Vec<Vec<String>> = tasks
                .iter()
                .map(|t| {
                    vec![
                        t.id.clone(),
                        t.status.clone(),
                        t.selected.to_string(),
                        t.moved.to_string(),
                        t.failed.to_string(),
                        t.remaining.to_string(),
                        t.started_at
                            .map(redrive_cli::util::format_ts)
                            .unwrap_or_default(),
                        t.requested_by.clone().unwrap_or_default(),
                    ]
                })
                .collect();
            print!(
                "{}",
                redrive_cli::util::render_table(
                    &[
                        "id",
                        "status",
                        "selected",
                        "moved",
                        "failed",
                        "remaining",
                        "started",
                        "by"
                    ],
                    &rows
                )
            );
        }
        return Ok(0);
    }
    let plan = a.plan()?;
    let conn = a.conn.connect().await?;
    let interrupt = Interrupt::install();
    let result = replay::replay(&conn, &plan, &interrupt).await?;
    print!("{}", result.render(&a.dlq, json));
    Ok(result.exit_code())
}

/// `redrive move DLQ`
#[derive(Debug, Args)]
pub struct MoveArgs {
    /// The DLQ (name or URL).
    dlq: String,
    /// Destination queue (default: each message's own source queue).
    #[arg(long, value_name = "QUEUE")]
    to: Option<String>,
    /// Messages per second (1–500, SQS's limit); default: SQS's adaptive rate.
    #[arg(long)]
    rate: Option<i32>,
    /// List the move tasks of the DLQ (newest first).
    #[arg(long, conflicts_with_all = ["cancel", "to", "rate"])]
    list: bool,
    /// Cancel the running move task of the DLQ.
    #[arg(long, conflicts_with_all = ["to", "rate"])]
    cancel: bool,
    /// Start the task and return without following it.
    #[arg(long)]
    no_follow: bool,
    /// Without a terminal, Ctrl-C cancels the task (default: detach; it keeps running).
    #[arg(long)]
    cancel_on_interrupt: bool,
    /// Output: table or json.
    #[arg(long, value_parser = ["table", "json"], default_value = "table")]
    format: String,
    #[command(flatten)]
    conn: ConnArgs,
}

/// `redrive move`: exit 0 when the task completed (or was left running), 3 when it failed,
/// 130 when cancelled.
pub async fn run_move(a: MoveArgs) -> Result<u8> {
    if let Some(r) = a.rate {
        movetask::check_move_rate(r).map_err(|e| anyhow!(e))?;
    }
    let json = a.format == "json";
    let conn = a.conn.connect().await?;
    if a.list {
        let tasks = movetask::list(&conn, &a.dlq).await?;
        if json {
            println!("{}", serde_json::to_string_pretty(&tasks)?);
        } else {
            print!("{}", movetask::render_tasks(&tasks));
        }
        return Ok(0);
    }
    if a.cancel {
        let t = movetask::cancel(&conn, &a.dlq).await?;
        println!(
            "cancelling move task {} on `{}` ({} moved so far)",
            t.task_handle.unwrap_or_default(),
            a.dlq,
            t.approximate_number_of_messages_moved
        );
        return Ok(0);
    }
    let plan = MovePlan {
        source: a.dlq.clone(),
        destination: a.to.clone(),
        rate: a.rate,
        cancel_on_interrupt: a.cancel_on_interrupt,
        no_follow: a.no_follow,
    };
    let interrupt = Interrupt::install();
    let report = movetask::start(&conn, &plan, &interrupt).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        let t = &report.task;
        println!(
            "move task on `{}`: {:?} ({}; {} moved{})",
            a.dlq,
            report.outcome,
            t.status,
            t.approximate_number_of_messages_moved,
            t.failure_reason
                .as_deref()
                .map(|r| format!("; {r}"))
                .unwrap_or_default()
        );
    }
    Ok(report.outcome.exit_code())
}

/// `redrive schedule …`
#[derive(Debug, Args)]
pub struct ScheduleArgs {
    #[command(subcommand)]
    command: ScheduleCommand,
    #[command(flatten)]
    conn: ConnArgs,
}

#[derive(Debug, Subcommand)]
enum ScheduleCommand {
    /// Add a recurring redrive (kept and run by the Redrive server).
    Add(Box<ScheduleAddArgs>),
    /// List the schedules.
    List {
        /// Output: table or json.
        #[arg(long, value_parser = ["table", "json"], default_value = "table")]
        format: String,
    },
    /// Remove a schedule (by name or id).
    Remove {
        /// Name or id.
        name: String,
    },
    /// The runs of a schedule, newest first.
    Runs {
        /// Name or id.
        name: String,
        /// Output: table or json.
        #[arg(long, value_parser = ["table", "json"], default_value = "table")]
        format: String,
    },
}

#[derive(Debug, Args)]
struct ScheduleAddArgs {
    /// A unique name.
    name: String,
    /// Cron expression (minute hour day-of-month month day-of-week), e.g. "0 6 * * *".
    #[arg(long)]
    cron: String,
    /// IANA time zone of the cron expression and of the window.
    #[arg(long, default_value = "UTC")]
    timezone: String,
    /// The DLQ.
    #[arg(long)]
    source: String,
    /// Destination queue (default: each message's own source).
    #[arg(long, value_name = "QUEUE")]
    to: Option<String>,
    /// Only messages dead-lettered in this window at fire time: yesterday, today, last:24h.
    #[arg(long, value_name = "RANGE", conflicts_with = "sent")]
    dead_lettered: Option<String>,
    /// Only messages sent in this window at fire time: yesterday, today, last:24h.
    #[arg(long, value_name = "RANGE")]
    sent: Option<String>,
    /// jq filter (as for `replay --filter`).
    #[arg(long, value_name = "EXPR")]
    filter: Option<String>,
    /// At most N messages per run.
    #[arg(long)]
    max_count: Option<u64>,
    /// jq expression producing the new body.
    #[arg(long, value_name = "EXPR")]
    transform: Option<String>,
    /// Global rate (N/s, N/m, N/h).
    #[arg(long)]
    rate: Option<String>,
    /// Per-key rate: a jq key and a rate.
    #[arg(long, num_args = 2, value_names = ["EXPR", "RATE"])]
    rate_per: Vec<String>,
    /// Circuit breaker SHARE[/WINDOW[/MIN]].
    #[arg(long, value_name = "SPEC")]
    breaker: Option<String>,
    /// Create it disabled.
    #[arg(long)]
    disabled: bool,
    /// Output: table or json.
    #[arg(long, value_parser = ["table", "json"], default_value = "table")]
    format: String,
}

impl ScheduleAddArgs {
    fn spec(&self) -> Result<ScheduleSpec> {
        CronSchedule::parse(&self.cron, &self.timezone).map_err(|e| anyhow!("--cron: {e}"))?;
        let window = match (&self.dead_lettered, &self.sent) {
            (Some(r), _) => Some(("deadLettered", "dead-lettered", r)),
            (None, Some(r)) => Some(("sent", "sent", r)),
            _ => None,
        };
        if let Some((_, flag, r)) = window {
            RelativeWindow::parse(r).map_err(|e| anyhow!("--{flag}: {e}"))?;
        }
        if let Some(f) = &self.filter {
            GroupBy::compile(f).map_err(|e| anyhow!("--filter: {e}"))?;
        }
        if let Some(t) = &self.transform {
            Transform::compile(t).map_err(|e| anyhow!("--transform: {e}"))?;
        }
        if self.max_count == Some(0) {
            bail!("--max-count must be at least 1");
        }
        Ok(ScheduleSpec {
            name: self.name.clone(),
            cron: self.cron.clone(),
            timezone: self.timezone.clone(),
            source: self.source.clone(),
            destination: self.to.clone(),
            window: window.map(|(f, _, r)| (f.to_string(), r.clone())),
            filter: self.filter.clone(),
            max_count: self.max_count,
            transform: self.transform.clone(),
            rate: rate(&self.rate)?,
            rate_per: rate_per(&self.rate_per)?,
            breaker: breaker(&self.breaker)?,
            enabled: !self.disabled,
        })
    }
}

/// `redrive schedule …`
pub async fn run_schedule(a: ScheduleArgs) -> Result<u8> {
    match a.command {
        ScheduleCommand::Add(add) => {
            let spec = add.spec()?;
            let conn = a.conn.connect().await?;
            let s = schedule::add(&conn, &spec.to_request()).await?;
            if add.format == "json" {
                println!("{}", serde_json::to_string_pretty(&s)?);
            } else {
                print!("{}", schedule::render_list(std::slice::from_ref(&s)));
            }
        }
        ScheduleCommand::List { format } => {
            let conn = a.conn.connect().await?;
            let list = schedule::list(&conn).await?;
            if format == "json" {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                print!("{}", schedule::render_list(&list));
            }
        }
        ScheduleCommand::Remove { name } => {
            let conn = a.conn.connect().await?;
            schedule::remove(&conn, &name).await?;
            println!("removed schedule `{name}`");
        }
        ScheduleCommand::Runs { name, format } => {
            let conn = a.conn.connect().await?;
            let runs = schedule::runs(&conn, &name).await?;
            if format == "json" {
                println!("{}", serde_json::to_string_pretty(&runs)?);
            } else {
                print!("{}", schedule::render_runs(&runs));
            }
        }
    }
    Ok(0)
}
