//! Scheduled redrives, a Redrive extension: a cron expression in a time zone starts a replay
//! of a DLQ with a relative window ("dead-lettered yesterday"); every fire is recorded.
//!
//! The scheduler reads the engine's clock, so tests drive it with a [`crate::ManualClock`]
//! and [`Engine::run_due_schedules`]. A fire is attempted at most once per due time; one missed
//! by more than [`MISSED_AFTER_MS`] (the server was down) is recorded as `MISSED` instead.

use std::sync::Arc;
use std::time::Duration;

use redrive_core::{ErrorCode, SqsError};
use redrive_select::schedule::{CronSchedule, RelativeWindow};
use serde::{Deserialize, Serialize};

use crate::replays::{ReplayError, ReplayRequest, ReplayStart};
use crate::store::{DocumentRecord, Mutation};
use crate::{Engine, RequestContext};

pub const DOC_SCHEDULE: &str = "schedule";
pub const DOC_SCHEDULE_RUN: &str = "schedule-run";
pub const MISSED_AFTER_MS: u64 = 3_600_000;
/// Runs kept per schedule (the newest).
pub(crate) const RUNS_KEPT: usize = 100;

fn yes() -> bool {
    true
}

fn utc() -> String {
    "UTC".to_string()
}

/// Which time a schedule's window applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum WindowField {
    DeadLettered,
    Sent,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WindowSpec {
    pub field: WindowField,
    /// `yesterday`, `today` or `last:DURATION`.
    pub range: String,
}

/// `POST /_redrive/v1/schedules` (see docs/replay-api.md): the replay every fire starts
/// (flattened, so the wire shape is the replay request's fields beside the schedule's own),
/// plus when and over which window it fires.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleRequest {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub cron: String,
    #[serde(default = "utc")]
    pub timezone: String,
    #[serde(default)]
    pub window: Option<WindowSpec>,
    #[serde(default)]
    pub max_count: Option<u64>,
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Source, destination, selection, transform, pacing, breaker and provenance. A fire is
    /// never a dry run and samples nothing: `add_schedule` normalises `dryRun`, `sample` and
    /// `requestedBy`.
    #[serde(flatten)]
    pub replay: ReplayRequest,
}

/// A stored schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Schedule {
    pub id: String,
    #[serde(flatten)]
    pub spec: ScheduleRequest,
    /// The source queue's ARN, resolved when the schedule was added.
    pub source_arn: String,
    pub created_at: u64,
    pub next_run_at: Option<u64>,
    pub last_run_at: Option<u64>,
}

/// One fire of a schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleRun {
    pub schedule_id: String,
    /// The due time.
    pub at: u64,
    /// When it actually ran.
    pub ran_at: u64,
    pub replay_id: Option<String>,
    /// `STARTED`, `NOTHING_SELECTED`, `SKIPPED_RUNNING`, `MISSED` or `ERROR`.
    pub outcome: String,
    pub selected: u64,
    pub message: Option<String>,
}

#[derive(Debug, Default)]
pub(crate) struct Schedules {
    list: Vec<Schedule>,
    runs: Vec<ScheduleRun>,
}

impl Schedules {
    pub(crate) fn from_documents(docs: &[DocumentRecord]) -> Schedules {
        let mut s = Schedules::default();
        for d in docs {
            match d.kind.as_str() {
                DOC_SCHEDULE => {
                    if let Ok(x) = serde_json::from_slice(&d.value) {
                        s.list.push(x);
                    }
                }
                DOC_SCHEDULE_RUN => {
                    if let Ok(x) = serde_json::from_slice(&d.value) {
                        s.runs.push(x);
                    }
                }
                _ => {}
            }
        }
        s.list.sort_by_key(|x| x.created_at);
        s.runs.sort_by_key(|r| r.ran_at);
        s
    }
}

fn schedule_doc(s: &Schedule) -> Mutation {
    Mutation::PutDocument(DocumentRecord {
        kind: DOC_SCHEDULE.into(),
        key: s.id.clone(),
        value: serde_json::to_vec(s).unwrap_or_default(),
    })
}

pub(crate) fn run_key(r: &ScheduleRun) -> String {
    format!("{}/{:020}", r.schedule_id, r.ran_at)
}

pub(crate) fn not_found() -> SqsError {
    SqsError::new(
        ErrorCode::ResourceNotFoundException,
        "Schedule does not exist.",
    )
}

fn invalid(msg: impl Into<String>) -> SqsError {
    SqsError::invalid_parameter(msg)
}

impl Engine {
    /// Validates and stores a schedule; answers it with its next run time.
    pub async fn add_schedule(
        self: &Arc<Self>,
        ctx: &RequestContext,
        mut spec: ScheduleRequest,
    ) -> Result<Schedule, SqsError> {
        if let Some(b) = self.shared.clone() {
            return self.sh_add_schedule(&*b, ctx, spec).await;
        }
        self.ensure_synced()?;
        self.admit_growth()?;
        let cron = check_schedule(&spec)?;
        // Validate everything a fire would need now (a dry run of the replay it would start).
        let source = self.resolve_any(ctx, &spec.replay.source)?;
        // Fires run without a request: keep ARNs, not names.
        if let Some(d) = &spec.replay.destination {
            spec.replay.destination = Some(self.resolve_any(ctx, d)?.arn.clone());
        }
        normalise(&mut spec);
        let probe = schedule_request(&spec, &source.arn, self.now_ms(), &cron, true);
        probe_result(self.start_replay_for(ctx, probe, None).await)?;
        let schedule = new_schedule(spec, &source.arn, &cron, self.now_ms());
        let ticket = {
            let mut s = self.schedules.lock();
            check_unique(&s.list, &schedule)?;
            s.list.push(schedule.clone());
            self.store.submit(vec![schedule_doc(&schedule)])
        };
        self.durable(ticket).await?;
        self.schedule_changed.notify_one();
        Ok(schedule)
    }

    pub fn list_schedules(&self) -> Vec<Schedule> {
        self.schedules.lock().list.clone()
    }

    /// A schedule by id or name.
    pub fn schedule(&self, id_or_name: &str) -> Result<Schedule, SqsError> {
        self.schedules
            .lock()
            .list
            .iter()
            .find(|s| s.id == id_or_name || s.spec.name == id_or_name)
            .cloned()
            .ok_or_else(not_found)
    }

    pub async fn remove_schedule(&self, id_or_name: &str) -> Result<(), SqsError> {
        if let Some(b) = self.shared.clone() {
            return self.sh_remove_schedule(&*b, id_or_name).await;
        }
        let ticket = {
            let mut s = self.schedules.lock();
            let pos = s
                .list
                .iter()
                .position(|x| x.id == id_or_name || x.spec.name == id_or_name)
                .ok_or_else(not_found)?;
            let removed = s.list.remove(pos);
            s.runs.retain(|r| r.schedule_id != removed.id);
            self.store.submit(vec![
                Mutation::DeleteDocument {
                    kind: DOC_SCHEDULE.into(),
                    key: removed.id.clone(),
                },
                Mutation::DeleteDocuments {
                    kind: DOC_SCHEDULE_RUN.into(),
                    prefix: format!("{}/", removed.id),
                },
            ])
        };
        self.durable(ticket).await
    }

    /// Runs of a schedule, newest first.
    pub fn schedule_runs(&self, id_or_name: &str) -> Result<Vec<ScheduleRun>, SqsError> {
        let id = self.schedule(id_or_name)?.id;
        Ok(self
            .schedules
            .lock()
            .runs
            .iter()
            .rev()
            .filter(|r| r.schedule_id == id)
            .cloned()
            .collect())
    }

    /// Fires every enabled schedule that is due; returns how many fired.
    pub async fn run_due_schedules(self: &Arc<Self>) -> usize {
        let now = self.now_ms();
        let due: Vec<Schedule> = self
            .schedules
            .lock()
            .list
            .iter()
            .filter(|s| s.spec.enabled && s.next_run_at.is_some_and(|t| t <= now))
            .cloned()
            .collect();
        let mut fired = 0;
        for s in due {
            let Ok(cron) = CronSchedule::parse(&s.spec.cron, &s.spec.timezone) else {
                continue;
            };
            let at = s.next_run_at.unwrap_or(now);
            let mut run = new_run(&s.id, at, now);
            if run.outcome.is_empty() {
                let ctx = RequestContext {
                    region: String::new(),
                    base_url: String::new(),
                };
                let req = schedule_request(&s.spec, &s.source_arn, at, &cron, false);
                record_outcome(
                    &mut run,
                    self.start_replay_for(&ctx, req, Some(s.id.clone())).await,
                );
            }
            tracing::info!(schedule = %s.spec.name, outcome = %run.outcome, "scheduled redrive fired");
            let ticket = {
                let mut st = self.schedules.lock();
                let mut muts = Vec::new();
                if let Some(x) = st.list.iter_mut().find(|x| x.id == s.id) {
                    x.last_run_at = Some(now);
                    // Strictly after now: a fire is never repeated, missed ones are not replayed.
                    x.next_run_at = cron.next_after(now as i64).map(|t| t as u64);
                    muts.push(schedule_doc(x));
                }
                muts.push(Mutation::PutDocument(DocumentRecord {
                    kind: DOC_SCHEDULE_RUN.into(),
                    key: run_key(&run),
                    value: serde_json::to_vec(&run).unwrap_or_default(),
                }));
                st.runs.push(run);
                let of_this: Vec<usize> = st
                    .runs
                    .iter()
                    .enumerate()
                    .filter(|(_, r)| r.schedule_id == s.id)
                    .map(|(i, _)| i)
                    .collect();
                if of_this.len() > RUNS_KEPT {
                    let drop_idx = of_this[0];
                    let old = st.runs.remove(drop_idx);
                    muts.push(Mutation::DeleteDocument {
                        kind: DOC_SCHEDULE_RUN.into(),
                        key: run_key(&old),
                    });
                }
                self.store.submit(muts)
            };
            if let Err(e) = self.durable(ticket).await {
                tracing::error!(error = %e, "could not persist a schedule run");
            }
            fired += 1;
        }
        fired
    }

    /// The scheduler: checks for due schedules every second (and when one is added).
    pub fn spawn_scheduler(self: &Arc<Self>) {
        let engine = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                let Some(e) = engine.upgrade() else { return };
                e.run_due_schedules().await;
                let wake = async {
                    tokio::select! {
                        _ = e.schedule_changed.notified() => {}
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                };
                wake.await;
            }
        });
    }
}

/// The replay a fire at `at_ms` starts.
pub(crate) fn schedule_request(
    spec: &ScheduleRequest,
    source_arn: &str,
    at_ms: u64,
    cron: &CronSchedule,
    dry_run: bool,
) -> ReplayRequest {
    let mut selection = spec.replay.selection.clone();
    if let Some(w) = &spec.window
        && let Ok(range) = RelativeWindow::parse(&w.range)
    {
        let (after, before) = range.resolve(at_ms as i64, cron.tz);
        match w.field {
            WindowField::DeadLettered => {
                selection.dead_lettered_after = Some(after);
                selection.dead_lettered_before = Some(before);
            }
            WindowField::Sent => {
                selection.sent_after = Some(after);
                selection.sent_before = Some(before);
            }
        }
    }
    if let Some(m) = spec.max_count {
        selection.limit = Some(selection.limit.map_or(m, |l| l.min(m)));
    }
    ReplayRequest {
        source: source_arn.to_string(),
        selection,
        dry_run,
        sample: Some(0),
        requested_by: Some(format!("schedule:{}", spec.name)),
        ..spec.replay.clone()
    }
}

/// A schedule's checks that need no queue (both stores): the cron expression and time zone.
pub(crate) fn check_schedule(spec: &ScheduleRequest) -> Result<CronSchedule, SqsError> {
    if spec.name.trim().is_empty() {
        return Err(SqsError::missing_parameter("name"));
    }
    if spec.cron.trim().is_empty() {
        return Err(SqsError::missing_parameter("cron"));
    }
    let cron = CronSchedule::parse(&spec.cron, &spec.timezone).map_err(invalid)?;
    if let Some(w) = &spec.window {
        RelativeWindow::parse(&w.range).map_err(invalid)?;
    }
    if spec.max_count == Some(0) {
        return Err(invalid("maxCount must be at least 1"));
    }
    Ok(cron)
}

/// A fire is never a dry run, samples nothing and is requested by the schedule.
pub(crate) fn normalise(spec: &mut ScheduleRequest) {
    spec.replay.dry_run = false;
    spec.replay.sample = None;
    spec.replay.requested_by = Some(format!("schedule:{}", spec.name));
}

/// The probe's answer (a dry run of the replay a fire would start): its errors refuse the
/// schedule; a running replay does not.
pub(crate) fn probe_result(r: Result<ReplayStart, ReplayError>) -> Result<(), SqsError> {
    match r {
        Ok(_) | Err(ReplayError::Running { .. }) => Ok(()),
        Err(ReplayError::Sqs(e)) => Err(e),
    }
}

pub(crate) fn new_schedule(
    spec: ScheduleRequest,
    source_arn: &str,
    cron: &CronSchedule,
    now: u64,
) -> Schedule {
    Schedule {
        id: uuid::Uuid::new_v4().to_string(),
        next_run_at: cron.next_after(now as i64).map(|t| t as u64),
        source_arn: source_arn.to_string(),
        spec,
        created_at: now,
        last_run_at: None,
    }
}

pub(crate) fn check_unique(list: &[Schedule], schedule: &Schedule) -> Result<(), SqsError> {
    if list.iter().any(|x| x.spec.name == schedule.spec.name) {
        return Err(invalid(format!(
            "A schedule named `{}` already exists.",
            schedule.spec.name
        )));
    }
    Ok(())
}

/// A fire due at `at`, run at `now`: `MISSED` when too late, else to be recorded by
/// [`record_outcome`].
pub(crate) fn new_run(schedule_id: &str, at: u64, now: u64) -> ScheduleRun {
    let mut run = ScheduleRun {
        schedule_id: schedule_id.to_string(),
        at,
        ran_at: now,
        replay_id: None,
        outcome: String::new(),
        selected: 0,
        message: None,
    };
    if now.saturating_sub(at) > MISSED_AFTER_MS {
        run.outcome = "MISSED".into();
        run.message = Some("the server was not running at the due time".into());
    }
    run
}

/// What a fire's replay start means for its run.
pub(crate) fn record_outcome(run: &mut ScheduleRun, r: Result<ReplayStart, ReplayError>) {
    match r {
        Ok(ReplayStart::Started(t)) => {
            run.selected = t.selected;
            if t.selected == 0 {
                run.outcome = "NOTHING_SELECTED".into();
            } else {
                run.outcome = "STARTED".into();
                run.replay_id = Some(t.id.clone());
            }
        }
        Ok(ReplayStart::DryRun(_)) => run.outcome = "ERROR".into(),
        Err(ReplayError::Running { replay_id }) => {
            run.outcome = "SKIPPED_RUNNING".into();
            run.message = Some(format!("replay {replay_id} is still running"));
        }
        Err(ReplayError::Sqs(e)) => {
            run.outcome = "ERROR".into();
            run.message = Some(e.message);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use redrive_select::selection::SelectionSpec;

    /// The schedule body clients sent before `ScheduleRequest` held a `ReplayRequest` still
    /// decodes field for field, and a stored schedule written before still loads.
    #[test]
    fn schedule_wire_shape_is_the_flat_one() {
        let body = serde_json::json!({
            "name": "nightly",
            "cron": "0 3 * * *",
            "timezone": "Asia/Seoul",
            "source": "orders-dlq",
            "destination": "orders",
            "window": {"field": "deadLettered", "range": "yesterday"},
            "selection": {"filter": ".mall == \"a\"", "limit": 50},
            "maxCount": 20,
            "transform": ".retry = true",
            "rate": 5.0,
            "ratePer": {"key": ".mall", "rate": 1.5},
            "breaker": {"maxReturnShare": 0.5, "windowSecs": 60, "minReplayed": 10},
            "provenance": false,
            "enabled": false
        });
        let spec: ScheduleRequest = serde_json::from_value(body.clone()).unwrap();
        assert_eq!(spec.name, "nightly");
        assert_eq!(spec.timezone, "Asia/Seoul");
        assert_eq!(spec.max_count, Some(20));
        assert!(!spec.enabled);
        assert_eq!(spec.replay.source, "orders-dlq");
        assert_eq!(spec.replay.destination.as_deref(), Some("orders"));
        assert_eq!(
            spec.replay.selection.filter.as_deref(),
            Some(".mall == \"a\"")
        );
        assert_eq!(spec.replay.selection.limit, Some(50));
        assert_eq!(spec.replay.transform.as_deref(), Some(".retry = true"));
        assert_eq!(spec.replay.rate, Some(5.0));
        assert_eq!(spec.replay.rate_per.as_ref().map(|r| r.rate), Some(1.5));
        assert_eq!(spec.replay.breaker.map(|b| b.min_replayed), Some(10));
        assert!(!spec.replay.provenance);

        // Serialised, every field sits at the top level, as before.
        let out = serde_json::to_value(&spec).unwrap();
        for (k, v) in body.as_object().unwrap() {
            assert_eq!(&out[k], v, "field {k}");
        }
        assert!(out.get("replay").is_none());

        // A stored schedule (flat, as written by earlier releases) loads.
        let mut stored = body;
        stored["id"] = "s-1".into();
        stored["sourceArn"] = "arn:aws:sqs:us-east-1:000000000000:orders-dlq".into();
        stored["createdAt"] = 1.into();
        stored["nextRunAt"] = 2.into();
        stored["lastRunAt"] = serde_json::Value::Null;
        let s: Schedule = serde_json::from_value(stored).unwrap();
        assert_eq!(s.spec, spec);
    }

    #[test]
    fn schedule_defaults_match_the_replay_defaults() {
        let spec: ScheduleRequest =
            serde_json::from_str(r#"{"name":"n","cron":"* * * * *","source":"q"}"#).unwrap();
        assert_eq!(spec.timezone, "UTC");
        assert!(spec.enabled);
        assert!(spec.replay.provenance);
        assert_eq!(spec.replay.selection, SelectionSpec::default());
    }
}
