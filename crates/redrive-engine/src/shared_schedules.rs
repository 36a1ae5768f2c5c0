//! Scheduled redrives over a shared [`QueueBackend`] (issue 17, ADR 0002): the same rules as
//! the embedded path (`schedules.rs`: checks, the probe, the window and limit of each fire,
//! `MISSED` after an hour, the run outcomes, the runs kept), with schedules and their runs as
//! documents in the backend, fired by whichever server holds the `schedules` lease.
//!
//! **A fire happens at most once per due time:** the firing server first claims it by moving
//! the schedule's `nextRunAt` past now under the schedule table's lock, only if it is still the
//! due time it read; then it starts the replay (on a shared store, so any server may run it)
//! and records the run. A server killed between the claim and the record loses that fire's run
//! record, never repeats the fire.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use redrive_core::SqsError;
use redrive_select::schedule::CronSchedule;
use serde_json::Value;

use crate::backend::{Doc, DocsEdit, QueueBackend};
use crate::schedules::{
    DOC_SCHEDULE, DOC_SCHEDULE_RUN, RUNS_KEPT, Schedule, ScheduleRequest, ScheduleRun,
    check_schedule, check_unique, new_run, new_schedule, normalise, not_found, probe_result,
    record_outcome, run_key, schedule_request,
};
use crate::shared_tasks::MOVE_TASK_LEASE_MS;
use crate::{Engine, RequestContext};

/// The scheduler's lease (one server fires schedules at a time).
const SCHEDULER_LEASE: &str = "schedules";
const SCHEDULER_LEASE_MS: u64 = MOVE_TASK_LEASE_MS;

fn to_value<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

fn schedule_doc(s: &Schedule) -> Doc {
    Doc {
        kind: DOC_SCHEDULE.into(),
        key: s.id.clone(),
        value: to_value(s),
    }
}

/// Schedules in creation order.
fn schedules_of(docs: &[(String, Value)]) -> Vec<Schedule> {
    let mut list: Vec<Schedule> = docs
        .iter()
        .filter_map(|(_, v)| serde_json::from_value(v.clone()).ok())
        .collect();
    list.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
    list
}

impl Engine {
    /// `POST /_redrive/v1/schedules` on a shared store.
    pub(crate) async fn sh_add_schedule(
        &self,
        b: &dyn QueueBackend,
        ctx: &RequestContext,
        mut spec: ScheduleRequest,
    ) -> Result<Schedule, SqsError> {
        let cron = check_schedule(&spec)?;
        let source = self.sh_resolve_any(b, ctx, &spec.replay.source).await?;
        let source_arn = self.sh_arn(&source);
        // Fires run without a request: keep ARNs, not names.
        if let Some(d) = &spec.replay.destination {
            let d = self.sh_resolve_any(b, ctx, d).await?;
            spec.replay.destination = Some(self.sh_arn(&d));
        }
        normalise(&mut spec);
        let now = b.now_ms().await?;
        let probe = schedule_request(&spec, &source_arn, now, &cron, true);
        probe_result(self.sh_start_replay(b, ctx, probe, None).await)?;
        let schedule = new_schedule(spec, &source_arn, &cron, b.now_ms().await?);
        b.edit_documents(DOC_SCHEDULE, &|docs| {
            check_unique(&schedules_of(&docs), &schedule)?;
            Ok(DocsEdit {
                put: vec![schedule_doc(&schedule)],
                delete_prefixed: Vec::new(),
                delete: Vec::new(),
            })
        })
        .await?;
        Ok(schedule)
    }

    pub(crate) async fn sh_list_schedules(
        &self,
        b: &dyn QueueBackend,
    ) -> Result<Vec<Schedule>, SqsError> {
        Ok(schedules_of(&b.documents(DOC_SCHEDULE, "").await?))
    }

    /// A schedule by id or name.
    pub(crate) async fn sh_schedule(
        &self,
        b: &dyn QueueBackend,
        id_or_name: &str,
    ) -> Result<Schedule, SqsError> {
        self.sh_list_schedules(b)
            .await?
            .into_iter()
            .find(|s| s.id == id_or_name || s.spec.name == id_or_name)
            .ok_or_else(not_found)
    }

    pub(crate) async fn sh_remove_schedule(
        &self,
        b: &dyn QueueBackend,
        id_or_name: &str,
    ) -> Result<(), SqsError> {
        b.edit_documents(DOC_SCHEDULE, &|docs| {
            let s = schedules_of(&docs)
                .into_iter()
                .find(|s| s.id == id_or_name || s.spec.name == id_or_name)
                .ok_or_else(not_found)?;
            Ok(DocsEdit {
                put: Vec::new(),
                delete_prefixed: vec![(DOC_SCHEDULE_RUN.into(), format!("{}/", s.id))],
                delete: vec![(DOC_SCHEDULE.into(), s.id.clone())],
            })
        })
        .await
    }

    /// Runs of a schedule, newest first.
    pub(crate) async fn sh_schedule_runs(
        &self,
        b: &dyn QueueBackend,
        id_or_name: &str,
    ) -> Result<Vec<ScheduleRun>, SqsError> {
        let id = self.sh_schedule(b, id_or_name).await?.id;
        let mut runs: Vec<ScheduleRun> = b
            .documents(DOC_SCHEDULE_RUN, &format!("{id}/"))
            .await?
            .iter()
            .filter_map(|(_, v)| serde_json::from_value(v.clone()).ok())
            .collect();
        runs.sort_by_key(|r| r.ran_at);
        runs.reverse();
        Ok(runs)
    }

    /// Fires every enabled schedule that is due, if this server holds the scheduler's lease;
    /// returns how many fired.
    async fn sh_run_due_schedules(
        &self,
        b: &dyn QueueBackend,
        holder: &str,
    ) -> Result<usize, SqsError> {
        if !b.lease(SCHEDULER_LEASE, holder, SCHEDULER_LEASE_MS).await? {
            return Ok(0);
        }
        let now = b.now_ms().await?;
        let due: Vec<Schedule> = self
            .sh_list_schedules(b)
            .await?
            .into_iter()
            .filter(|s| s.spec.enabled && s.next_run_at.is_some_and(|t| t <= now))
            .collect();
        let mut fired = 0;
        for s in due {
            let Ok(cron) = CronSchedule::parse(&s.spec.cron, &s.spec.timezone) else {
                continue;
            };
            let at = s.next_run_at.unwrap_or(now);
            // Claim the fire: still due at `at` (nobody fired it), then never again.
            let claimed = Mutex::new(false);
            b.edit_documents(DOC_SCHEDULE, &|docs| {
                let Some(mut x) = schedules_of(&docs).into_iter().find(|x| x.id == s.id) else {
                    return Ok(DocsEdit::default());
                };
                if x.next_run_at != Some(at) {
                    return Ok(DocsEdit::default());
                }
                x.last_run_at = Some(now);
                // Strictly after now: a fire is never repeated, missed ones are not replayed.
                x.next_run_at = cron.next_after(now as i64).map(|t| t as u64);
                *claimed.lock() = true;
                Ok(DocsEdit {
                    put: vec![schedule_doc(&x)],
                    delete_prefixed: Vec::new(),
                    delete: Vec::new(),
                })
            })
            .await?;
            if !*claimed.lock() {
                continue;
            }
            let mut run = new_run(&s.id, at, now);
            if run.outcome.is_empty() {
                let ctx = RequestContext {
                    region: String::new(),
                    base_url: String::new(),
                };
                let req = schedule_request(&s.spec, &s.source_arn, at, &cron, false);
                record_outcome(
                    &mut run,
                    self.sh_start_replay(b, &ctx, req, Some(s.id.clone())).await,
                );
            }
            tracing::info!(schedule = %s.spec.name, outcome = %run.outcome, "scheduled redrive fired");
            let prefix = format!("{}/", s.id);
            b.edit_documents(DOC_SCHEDULE_RUN, &|docs| {
                let mut of_this: Vec<&String> = docs
                    .iter()
                    .map(|(k, _)| k)
                    .filter(|k| k.starts_with(&prefix))
                    .collect();
                of_this.sort();
                let mut edit = DocsEdit {
                    put: vec![Doc {
                        kind: DOC_SCHEDULE_RUN.into(),
                        key: run_key(&run),
                        value: to_value(&run),
                    }],
                    delete_prefixed: Vec::new(),
                    delete: Vec::new(),
                };
                // Keys sort by run time: the oldest beyond the kept ones go.
                let excess = (of_this.len() + 1).saturating_sub(RUNS_KEPT);
                for k in of_this.into_iter().take(excess) {
                    edit.delete.push((DOC_SCHEDULE_RUN.into(), k.clone()));
                }
                Ok(edit)
            })
            .await?;
            fired += 1;
        }
        Ok(fired)
    }

    /// Every server checks for due schedules every second; the holder of the `schedules`
    /// lease fires them.
    pub(crate) fn spawn_shared_scheduler(self: &Arc<Self>, backend: Arc<dyn QueueBackend>) {
        let holder = uuid::Uuid::new_v4().to_string();
        let engine = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let Some(e) = engine.upgrade() else { return };
                if let Err(err) = e.sh_run_due_schedules(&*backend, &holder).await {
                    tracing::warn!(error = %err.message, "scheduled redrives not checked");
                }
            }
        });
    }
}
