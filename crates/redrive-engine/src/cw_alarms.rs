//! CloudWatch metric alarms over the minute history (see `docs/metrics.md`, "CloudWatch
//! alarms"): what `PutMetricAlarm` defines, evaluated once a minute (and at once when created
//! or updated) with [`redrive_core::alarm::evaluate`], every configuration change and state
//! change written as an alarm history item, as `DescribeAlarmHistory` answers.
//!
//! The store is the only copy: alarms are documents of kind [`DOC_CW_ALARM`] (key
//! `{region}/{name}`), history items of kind [`DOC_CW_ALARM_HISTORY`] (key
//! `{region}/{at ms:015}/{seq:06}`), read by key range on every request. A change is written
//! (and made durable) before it is answered, under one lock, so nothing in memory can be ahead
//! of the disk. History items older than [`HISTORY_RETENTION_MS`] (CloudWatch keeps 30 days)
//! are dropped by the evaluation.

use std::sync::atomic::{AtomicU64, Ordering};

use redrive_core::SqsError;
use redrive_core::alarm::{
    AlarmDefinition, AlarmHistoryRecord, AlarmRecord, AlarmStateValue,
    HISTORY_CONFIGURATION_UPDATE, HISTORY_STATE_UPDATE, INITIAL_REASON, evaluate,
};
use serde_json::json;

use crate::history::{COUNTERS, GAUGES, HistoryQuery};
use crate::store::{DocumentRecord, Mutation};
use crate::{Engine, RequestContext};

pub const DOC_CW_ALARM: &str = "cw-alarm";
pub const DOC_CW_ALARM_HISTORY: &str = "cw-alarm-history";
/// How long history items are kept (CloudWatch: 30 days).
pub const HISTORY_RETENTION_MS: u64 = 30 * 86_400_000;
/// Most alarms per region (CloudWatch's default quota is far higher; this bounds one
/// evaluation's work).
pub const MAX_ALARMS: usize = 5_000;
/// History items dropped per evaluation at most.
const PRUNE_BATCH: usize = 1_000;
const MINUTE_MS: u64 = 60_000;

/// Why an alarm operation failed, for the protocol layer to map to CloudWatch's codes.
#[derive(Debug, Clone, PartialEq)]
pub enum AlarmError {
    /// `ResourceNotFound`: the named alarm(s).
    NotFound(String),
    LimitExceeded(String),
    Internal(String),
}

impl From<SqsError> for AlarmError {
    fn from(e: SqsError) -> Self {
        AlarmError::Internal(e.message)
    }
}

/// Keeps history keys unique within a millisecond.
static HISTORY_SEQ: AtomicU64 = AtomicU64::new(0);

fn alarm_key(region: &str, name: &str) -> String {
    format!("{region}/{name}")
}

/// `[from, to)` of every key of a region (`/` + 1 = `0`).
fn region_range(region: &str) -> (String, String) {
    (format!("{region}/"), format!("{region}0"))
}

fn history_key(region: &str, at_ms: u64) -> String {
    let seq = HISTORY_SEQ.fetch_add(1, Ordering::Relaxed) % 1_000_000;
    format!("{region}/{at_ms:015}/{seq:06}")
}

fn history_doc(region: &str, item: &AlarmHistoryRecord) -> Mutation {
    Mutation::PutDocument(DocumentRecord {
        kind: DOC_CW_ALARM_HISTORY.into(),
        key: history_key(region, item.timestamp_ms.max(0) as u64),
        value: serde_json::to_vec(item).unwrap_or_default(),
    })
}

fn alarm_doc(region: &str, alarm: &AlarmRecord) -> Mutation {
    Mutation::PutDocument(DocumentRecord {
        kind: DOC_CW_ALARM.into(),
        key: alarm_key(region, &alarm.definition.alarm_name),
        value: serde_json::to_vec(alarm).unwrap_or_default(),
    })
}

fn state_item(alarm: &AlarmRecord, old: &AlarmRecord, at_ms: i64) -> AlarmHistoryRecord {
    let new_data: serde_json::Value = alarm
        .state_reason_data
        .as_deref()
        .and_then(|d| serde_json::from_str(d).ok())
        .unwrap_or(serde_json::Value::Null);
    let mut new_state = json!({
        "stateValue": alarm.state.name(),
        "stateReason": alarm.state_reason,
    });
    if !new_data.is_null() {
        new_state["stateReasonData"] = new_data;
    }
    AlarmHistoryRecord {
        alarm_name: alarm.definition.alarm_name.clone(),
        alarm_type: "MetricAlarm".into(),
        timestamp_ms: at_ms,
        history_item_type: HISTORY_STATE_UPDATE.into(),
        history_summary: format!(
            "Alarm updated from {} to {}",
            old.state.name(),
            alarm.state.name()
        ),
        history_data: json!({
            "version": "1.0",
            "oldState": {"stateValue": old.state.name(), "stateReason": old.state_reason},
            "newState": new_state,
        })
        .to_string(),
    }
}

/// Which statistic of a history datapoint an alarm reads.
fn stat_of(p: &crate::history::Datapoint, statistic: &str) -> Option<f64> {
    match statistic {
        "Sum" => Some(p.sum),
        "SampleCount" => Some(p.sample_count),
        "Average" => p.average,
        "Minimum" => p.minimum,
        "Maximum" => p.maximum,
        _ => None,
    }
}

impl Engine {
    fn alarm_arn(&self, region: &str, name: &str) -> String {
        format!(
            "arn:aws:cloudwatch:{region}:{}:alarm:{name}",
            self.config.account_id
        )
    }

    fn read_alarms(&self, region: &str) -> Result<Vec<AlarmRecord>, AlarmError> {
        let (from, to) = region_range(region);
        let docs = self
            .store
            .documents(DOC_CW_ALARM, &from, &to)
            .map_err(|e| AlarmError::Internal(format!("cannot read the alarms: {e}")))?;
        Ok(docs
            .iter()
            .filter_map(|d| serde_json::from_slice::<AlarmRecord>(&d.value).ok())
            .collect())
    }

    fn read_alarm(&self, region: &str, name: &str) -> Result<Option<AlarmRecord>, AlarmError> {
        let key = alarm_key(region, name);
        let mut end = key.clone();
        end.push('\0');
        let docs = self
            .store
            .documents(DOC_CW_ALARM, &key, &end)
            .map_err(|e| AlarmError::Internal(format!("cannot read the alarm: {e}")))?;
        Ok(docs
            .iter()
            .find(|d| d.key == key)
            .and_then(|d| serde_json::from_slice(&d.value).ok()))
    }

    async fn write_alarm_batch(&self, muts: Vec<Mutation>) -> Result<(), AlarmError> {
        if muts.is_empty() {
            return Ok(());
        }
        let ticket = self.store.submit(muts);
        self.durable(ticket).await.map_err(AlarmError::from)
    }

    /// The alarm's last `EvaluationPeriods` periods, oldest first, each with its value when
    /// the history has one. Only `AWS/SQS` metrics with the one dimension `QueueName` of an
    /// existing queue have data.
    fn alarm_points(
        &self,
        region: &str,
        def: &AlarmDefinition,
        now_ms: u64,
    ) -> Vec<(i64, Option<f64>)> {
        let period_ms = def.period * 1000;
        let n = u64::from(def.evaluation_periods);
        // Periods end at the last whole minute that has been written.
        let written_until = now_ms / MINUTE_MS * MINUTE_MS;
        let end = written_until / period_ms * period_ms;
        let start = end.saturating_sub(n * period_ms);
        let starts: Vec<u64> = (0..n).map(|i| start + i * period_ms).collect();
        let queue = match def.dimensions.as_slice() {
            [d] if d.name == "QueueName" && def.namespace == "AWS/SQS" => Some(d.value.as_str()),
            _ => None,
        };
        let known = COUNTERS
            .iter()
            .chain(GAUGES.iter())
            .any(|m| m.name == def.metric_name);
        let series = match queue {
            Some(q) if known && def.period >= 60 && end > start => {
                let ctx = RequestContext {
                    region: region.to_string(),
                    base_url: String::new(),
                };
                let query = HistoryQuery {
                    since_ms: Some(start),
                    until_ms: Some(end),
                    period_secs: def.period,
                };
                self.metric_history(&ctx, q, &query)
                    .ok()
                    .and_then(|h| h.series.into_iter().find(|s| s.def.name == def.metric_name))
            }
            _ => None,
        };
        starts
            .into_iter()
            .map(|t| {
                let value = series.as_ref().and_then(|s| {
                    s.points
                        .iter()
                        .find(|p| p.timestamp_ms == t && p.sample_count > 0.0)
                        .and_then(|p| stat_of(p, &def.statistic))
                });
                (t as i64, value)
            })
            .collect()
    }

    /// Applies an evaluation to `alarm`; the history item when its state changed.
    fn judge_alarm(
        &self,
        region: &str,
        alarm: &mut AlarmRecord,
        now_ms: u64,
    ) -> Option<AlarmHistoryRecord> {
        let points = self.alarm_points(region, &alarm.definition, now_ms);
        let verdict = evaluate(&alarm.definition, &points, now_ms as i64)?;
        let now = now_ms as i64;
        if verdict.state == alarm.state {
            return None;
        }
        let old = alarm.clone();
        alarm.state = verdict.state;
        alarm.state_reason = verdict.reason;
        alarm.state_reason_data = Some(verdict.reason_data);
        alarm.state_updated_ms = now;
        alarm.state_transitioned_ms = now;
        Some(state_item(alarm, &old, now))
    }

    /// `PutMetricAlarm`: creates or replaces the alarm (keeping its state, as CloudWatch
    /// does), records the configuration change, and evaluates it at once.
    pub async fn put_metric_alarm(
        &self,
        ctx: &RequestContext,
        def: AlarmDefinition,
    ) -> Result<(), AlarmError> {
        let _one = self.cw_alarms.lock().await;
        let now = self.now_ms();
        let region = &ctx.region;
        let existing = self.read_alarm(region, &def.alarm_name)?;
        if existing.is_none() && self.read_alarms(region)?.len() >= MAX_ALARMS {
            return Err(AlarmError::LimitExceeded(format!(
                "The maximum number of alarms ({MAX_ALARMS}) in this region has been reached."
            )));
        }
        let name = def.alarm_name.clone();
        let (mut alarm, item) = match existing {
            None => {
                let alarm = AlarmRecord {
                    arn: self.alarm_arn(region, &name),
                    configuration_updated_ms: now as i64,
                    state: AlarmStateValue::InsufficientData,
                    state_reason: INITIAL_REASON.into(),
                    state_reason_data: None,
                    state_updated_ms: now as i64,
                    state_transitioned_ms: now as i64,
                    definition: def.clone(),
                };
                let data = json!({
                    "type": "Create",
                    "version": "1.0",
                    "createdAlarm": def.history_json(),
                });
                (alarm, (format!("Alarm \"{name}\" created"), data))
            }
            Some(mut old) => {
                let before = old.definition.history_json();
                let after = def.history_json();
                let changed: serde_json::Map<String, serde_json::Value> = before
                    .as_object()
                    .into_iter()
                    .flatten()
                    .filter(|(k, v)| after.get(k.as_str()) != Some(v))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                old.definition = def.clone();
                old.configuration_updated_ms = now as i64;
                let data = json!({
                    "type": "Update",
                    "version": "1.0",
                    "originalUpdatedFields": changed,
                    "updatedAlarm": after,
                });
                (old, (format!("Alarm \"{name}\" updated"), data))
            }
        };
        let mut muts = vec![history_doc(
            region,
            &AlarmHistoryRecord {
                alarm_name: name.clone(),
                alarm_type: "MetricAlarm".into(),
                timestamp_ms: now as i64,
                history_item_type: HISTORY_CONFIGURATION_UPDATE.into(),
                history_summary: item.0,
                history_data: item.1.to_string(),
            },
        )];
        if let Some(change) = self.judge_alarm(region, &mut alarm, now) {
            muts.push(history_doc(region, &change));
        }
        muts.push(alarm_doc(region, &alarm));
        self.write_alarm_batch(muts).await
    }

    /// `DescribeAlarms` (by name, prefix, state, action prefix), sorted by name.
    pub fn describe_alarms(
        &self,
        ctx: &RequestContext,
        names: &[String],
        prefix: Option<&str>,
        state: Option<AlarmStateValue>,
        action_prefix: Option<&str>,
    ) -> Result<Vec<AlarmRecord>, AlarmError> {
        let mut all = self.read_alarms(&ctx.region)?;
        all.retain(|a| {
            let d = &a.definition;
            (names.is_empty() || names.contains(&d.alarm_name))
                && prefix.is_none_or(|p| d.alarm_name.starts_with(p))
                && state.is_none_or(|s| a.state == s)
                && action_prefix.is_none_or(|p| {
                    d.ok_actions
                        .iter()
                        .chain(&d.alarm_actions)
                        .chain(&d.insufficient_data_actions)
                        .any(|x| x.starts_with(p))
                })
        });
        all.sort_by(|a, b| a.definition.alarm_name.cmp(&b.definition.alarm_name));
        Ok(all)
    }

    /// `DescribeAlarmHistory`, oldest first (the caller orders and pages).
    pub fn describe_alarm_history(
        &self,
        ctx: &RequestContext,
        alarm_name: Option<&str>,
        item_type: Option<&str>,
        start_ms: Option<i64>,
        end_ms: Option<i64>,
    ) -> Result<Vec<AlarmHistoryRecord>, AlarmError> {
        let region = &ctx.region;
        let from = format!("{region}/{:015}", start_ms.unwrap_or(0).max(0));
        let to = match end_ms {
            Some(e) => format!("{region}/{:015}", e.max(0).saturating_add(1)),
            None => region_range(region).1,
        };
        let docs = self
            .store
            .documents(DOC_CW_ALARM_HISTORY, &from, &to)
            .map_err(|e| AlarmError::Internal(format!("cannot read the alarm history: {e}")))?;
        Ok(docs
            .iter()
            .filter_map(|d| serde_json::from_slice::<AlarmHistoryRecord>(&d.value).ok())
            .filter(|h| {
                alarm_name.is_none_or(|n| h.alarm_name == n)
                    && item_type.is_none_or(|t| h.history_item_type == t)
            })
            .collect())
    }

    /// `DeleteAlarms`: all or nothing; `NotFound` names the first missing alarm.
    pub async fn delete_alarms(
        &self,
        ctx: &RequestContext,
        names: &[String],
    ) -> Result<(), AlarmError> {
        let _one = self.cw_alarms.lock().await;
        let region = &ctx.region;
        let now = self.now_ms() as i64;
        let mut muts = Vec::new();
        for name in names {
            let Some(alarm) = self.read_alarm(region, name)? else {
                return Err(AlarmError::NotFound(format!(
                    "An alarm named {name} does not exist."
                )));
            };
            muts.push(Mutation::DeleteDocument {
                kind: DOC_CW_ALARM.into(),
                key: alarm_key(region, name),
            });
            muts.push(history_doc(
                region,
                &AlarmHistoryRecord {
                    alarm_name: name.clone(),
                    alarm_type: "MetricAlarm".into(),
                    timestamp_ms: now,
                    history_item_type: HISTORY_CONFIGURATION_UPDATE.into(),
                    history_summary: format!("Alarm \"{name}\" deleted"),
                    history_data: json!({
                        "type": "Delete",
                        "version": "1.0",
                        "deletedAlarm": alarm.definition.history_json(),
                    })
                    .to_string(),
                },
            ));
        }
        self.write_alarm_batch(muts).await
    }

    /// `SetAlarmState`: sets the state until the next evaluation, as CloudWatch does.
    pub async fn set_alarm_state(
        &self,
        ctx: &RequestContext,
        name: &str,
        state: AlarmStateValue,
        reason: String,
        reason_data: Option<String>,
    ) -> Result<(), AlarmError> {
        let _one = self.cw_alarms.lock().await;
        let region = &ctx.region;
        let Some(mut alarm) = self.read_alarm(region, name)? else {
            return Err(AlarmError::NotFound(format!(
                "An alarm named {name} does not exist."
            )));
        };
        let now = self.now_ms() as i64;
        let old = alarm.clone();
        alarm.state = state;
        alarm.state_reason = reason;
        alarm.state_reason_data = reason_data;
        alarm.state_updated_ms = now;
        let mut muts = Vec::new();
        if old.state != state {
            alarm.state_transitioned_ms = now;
            muts.push(history_doc(region, &state_item(&alarm, &old, now)));
        }
        muts.push(alarm_doc(region, &alarm));
        self.write_alarm_batch(muts).await
    }

    /// Evaluates every alarm of every region (after the minute's history is written) and drops
    /// expired history. Returns the number of state changes.
    pub async fn evaluate_cw_alarms(&self) -> usize {
        let _one = self.cw_alarms.lock().await;
        if self.ensure_synced().is_err() {
            return 0;
        }
        let now = self.now_ms();
        let docs = match self.store.documents(DOC_CW_ALARM, "", "\u{10FFFF}") {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, "alarms not evaluated");
                return 0;
            }
        };
        let mut muts = Vec::new();
        let mut changes = 0;
        let mut regions = Vec::new();
        for d in docs {
            let Some((region, _)) = d.key.split_once('/') else {
                continue;
            };
            regions.push(region.to_string());
            let Ok(mut alarm) = serde_json::from_slice::<AlarmRecord>(&d.value) else {
                continue;
            };
            if let Some(item) = self.judge_alarm(region, &mut alarm, now) {
                changes += 1;
                muts.push(history_doc(region, &item));
                muts.push(alarm_doc(region, &alarm));
            }
        }
        // Expired history, per region of a stored alarm (a key range up to the cutoff).
        let cutoff = now.saturating_sub(HISTORY_RETENTION_MS);
        let regions: std::collections::BTreeSet<String> = regions.into_iter().collect();
        for region in regions {
            let (from, _) = region_range(&region);
            let to = format!("{region}/{cutoff:015}");
            if let Ok(old) = self.store.documents(DOC_CW_ALARM_HISTORY, &from, &to) {
                muts.extend(
                    old.into_iter()
                        .take(PRUNE_BATCH)
                        .map(|h| Mutation::DeleteDocument {
                            kind: DOC_CW_ALARM_HISTORY.into(),
                            key: h.key,
                        }),
                );
            }
        }
        if let Err(e) = self.write_alarm_batch(muts).await {
            tracing::warn!(error = ?e, "alarm states not written");
            return 0;
        }
        changes
    }
}
