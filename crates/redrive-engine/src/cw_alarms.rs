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
//!
//! On a shared backend the same documents are the backend's: every write goes through
//! `edit_documents` of [`DOC_CW_ALARM`] (one writer at a time across servers) and checks that
//! the alarms it read are unchanged, so an evaluation never overwrites a definition another
//! server changed meanwhile (the change is re-applied, or the evaluation waits for the next
//! minute). Only the holder of the alerts lease evaluates.

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

/// Keeps history keys unique within a millisecond (from a random start per process, so that
/// servers sharing a store do not collide).
static HISTORY_SEQ: AtomicU64 = AtomicU64::new(0);
static HISTORY_SEQ_BASE: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
/// Times a change is re-applied after another server changed the alarms it read.
const MAX_CONFLICTS: usize = 16;

fn alarm_key(region: &str, name: &str) -> String {
    format!("{region}/{name}")
}

/// `[from, to)` of every key of a region (`/` + 1 = `0`).
fn region_range(region: &str) -> (String, String) {
    (format!("{region}/"), format!("{region}0"))
}

fn history_key(region: &str, at_ms: u64) -> String {
    let base = *HISTORY_SEQ_BASE.get_or_init(|| u64::from(uuid::Uuid::new_v4().as_u128() as u32));
    let seq = base.wrapping_add(HISTORY_SEQ.fetch_add(1, Ordering::Relaxed)) % 1_000_000;
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

fn limit_exceeded() -> AlarmError {
    AlarmError::LimitExceeded(format!(
        "The maximum number of alarms ({MAX_ALARMS}) in this region has been reached."
    ))
}

fn conflicts_exhausted() -> AlarmError {
    AlarmError::Internal("the alarms kept changing under this change; try again".into())
}

impl Engine {
    fn alarm_arn(&self, region: &str, name: &str) -> String {
        format!(
            "arn:aws:cloudwatch:{region}:{}:alarm:{name}",
            self.config.account_id
        )
    }

    /// The documents of `kind` whose keys are in `[from, to)`, on either store.
    async fn alarm_documents(
        &self,
        kind: &str,
        from: &str,
        to: &str,
    ) -> Result<Vec<(String, Vec<u8>)>, AlarmError> {
        let Some(b) = &self.shared else {
            let docs = self
                .store
                .documents(kind, from, to)
                .map_err(|e| AlarmError::Internal(format!("cannot read the alarms: {e}")))?;
            return Ok(docs.into_iter().map(|d| (d.key, d.value)).collect());
        };
        // The backend reads by prefix: the longest common prefix of the bounds, then the range.
        let common = from
            .char_indices()
            .zip(to.chars())
            .find(|((_, a), b)| a != b)
            .map_or(from.len().min(to.len()), |((i, _), _)| i);
        let docs = b.documents(kind, &from[..common]).await?;
        Ok(docs
            .into_iter()
            .filter(|(k, _)| k.as_str() >= from && k.as_str() < to)
            .map(|(k, v)| (k, serde_json::to_vec(&v).unwrap_or_default()))
            .collect())
    }

    async fn read_alarms(&self, region: &str) -> Result<Vec<AlarmRecord>, AlarmError> {
        let (from, to) = region_range(region);
        Ok(self
            .alarm_documents(DOC_CW_ALARM, &from, &to)
            .await?
            .iter()
            .filter_map(|(_, v)| serde_json::from_slice::<AlarmRecord>(v).ok())
            .collect())
    }

    async fn read_alarm(
        &self,
        region: &str,
        name: &str,
    ) -> Result<Option<AlarmRecord>, AlarmError> {
        let key = alarm_key(region, name);
        let mut end = key.clone();
        end.push('\0');
        Ok(self
            .alarm_documents(DOC_CW_ALARM, &key, &end)
            .await?
            .iter()
            .find(|(k, _)| *k == key)
            .and_then(|(_, v)| serde_json::from_slice(v).ok()))
    }

    /// Writes `muts`. On a shared backend only if every alarm in `read` (key, as read) is still
    /// as read: `Ok(false)` (nothing written) when another server changed one. `max_alarms`
    /// (region, the count not to reach) is checked in the same transaction.
    async fn write_alarm_batch(
        &self,
        muts: Vec<Mutation>,
        read: &[(String, Option<AlarmRecord>)],
        max_alarms: Option<&str>,
    ) -> Result<bool, AlarmError> {
        if muts.is_empty() {
            return Ok(true);
        }
        let Some(b) = &self.shared else {
            let ticket = self.store.submit(muts);
            self.durable(ticket).await.map_err(AlarmError::from)?;
            return Ok(true);
        };
        let edit = crate::shared_alerts::docs_edit(muts)?;
        let outcome = parking_lot::Mutex::new(None);
        let result = b
            .edit_documents(DOC_CW_ALARM, &|docs| {
                let current = |key: &str| {
                    docs.iter()
                        .find(|(k, _)| k == key)
                        .and_then(|(_, v)| serde_json::from_value::<AlarmRecord>(v.clone()).ok())
                };
                if read.iter().any(|(key, was)| current(key) != *was) {
                    *outcome.lock() = Some(Ok(false));
                    return Err(SqsError::internal("the alarms changed"));
                }
                if let Some(region) = max_alarms {
                    let prefix = format!("{region}/");
                    if docs.iter().filter(|(k, _)| k.starts_with(&prefix)).count() >= MAX_ALARMS {
                        *outcome.lock() = Some(Err(limit_exceeded()));
                        return Err(SqsError::internal("too many alarms"));
                    }
                }
                Ok(edit.clone())
            })
            .await;
        match (result, outcome.into_inner()) {
            (Ok(()), _) => Ok(true),
            (Err(_), Some(decided)) => decided,
            (Err(e), None) => Err(e.into()),
        }
    }

    /// The alarm's last `EvaluationPeriods` periods, oldest first, each with its value when
    /// the history has one. Only `AWS/SQS` metrics with the one dimension `QueueName` of an
    /// existing queue have data.
    async fn alarm_points(
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
                let history = match &self.shared {
                    Some(b) => self.shared_metric_history(&**b, &ctx, q, &query).await,
                    None => self.metric_history(&ctx, q, &query),
                };
                history
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
    async fn judge_alarm(
        &self,
        region: &str,
        alarm: &mut AlarmRecord,
        now_ms: u64,
    ) -> Option<AlarmHistoryRecord> {
        let points = self.alarm_points(region, &alarm.definition, now_ms).await;
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
        for _ in 0..MAX_CONFLICTS {
            if self.try_put_metric_alarm(ctx, &def).await? {
                return Ok(());
            }
        }
        Err(conflicts_exhausted())
    }

    /// One attempt of [`Engine::put_metric_alarm`]: `false` when another server changed the
    /// alarm meanwhile (nothing written).
    async fn try_put_metric_alarm(
        &self,
        ctx: &RequestContext,
        def: &AlarmDefinition,
    ) -> Result<bool, AlarmError> {
        let def = def.clone();
        let now = self.now_ms();
        let region = &ctx.region;
        let existing = self.read_alarm(region, &def.alarm_name).await?;
        let read = vec![(alarm_key(region, &def.alarm_name), existing.clone())];
        let creating = existing.is_none();
        if creating && self.shared.is_none() && self.read_alarms(region).await?.len() >= MAX_ALARMS
        {
            return Err(limit_exceeded());
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
        if let Some(change) = self.judge_alarm(region, &mut alarm, now).await {
            muts.push(history_doc(region, &change));
        }
        muts.push(alarm_doc(region, &alarm));
        self.write_alarm_batch(muts, &read, creating.then_some(region.as_str()))
            .await
    }

    /// `DescribeAlarms` (by name, prefix, state, action prefix), sorted by name.
    pub async fn describe_alarms(
        &self,
        ctx: &RequestContext,
        names: &[String],
        prefix: Option<&str>,
        state: Option<AlarmStateValue>,
        action_prefix: Option<&str>,
    ) -> Result<Vec<AlarmRecord>, AlarmError> {
        let mut all = self.read_alarms(&ctx.region).await?;
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
    pub async fn describe_alarm_history(
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
            .alarm_documents(DOC_CW_ALARM_HISTORY, &from, &to)
            .await?;
        Ok(docs
            .iter()
            .filter_map(|(_, v)| serde_json::from_slice::<AlarmHistoryRecord>(v).ok())
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
        for _ in 0..MAX_CONFLICTS {
            if self.try_delete_alarms(ctx, names).await? {
                return Ok(());
            }
        }
        Err(conflicts_exhausted())
    }

    async fn try_delete_alarms(
        &self,
        ctx: &RequestContext,
        names: &[String],
    ) -> Result<bool, AlarmError> {
        let region = &ctx.region;
        let now = self.now_ms() as i64;
        let mut muts = Vec::new();
        let mut read = Vec::new();
        for name in names {
            let Some(alarm) = self.read_alarm(region, name).await? else {
                return Err(AlarmError::NotFound(format!(
                    "An alarm named {name} does not exist."
                )));
            };
            read.push((alarm_key(region, name), Some(alarm.clone())));
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
        self.write_alarm_batch(muts, &read, None).await
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
        for _ in 0..MAX_CONFLICTS {
            let Some(mut alarm) = self.read_alarm(region, name).await? else {
                return Err(AlarmError::NotFound(format!(
                    "An alarm named {name} does not exist."
                )));
            };
            let now = self.now_ms() as i64;
            let old = alarm.clone();
            alarm.state = state;
            alarm.state_reason = reason.clone();
            alarm.state_reason_data = reason_data.clone();
            alarm.state_updated_ms = now;
            let mut muts = Vec::new();
            if old.state != state {
                alarm.state_transitioned_ms = now;
                muts.push(history_doc(region, &state_item(&alarm, &old, now)));
            }
            muts.push(alarm_doc(region, &alarm));
            let read = [(alarm_key(region, name), Some(old))];
            if self.write_alarm_batch(muts, &read, None).await? {
                return Ok(());
            }
        }
        Err(conflicts_exhausted())
    }

    /// Evaluates every alarm of every region (after the minute's history is written) and drops
    /// expired history. Returns the number of state changes.
    pub async fn evaluate_cw_alarms(&self) -> usize {
        let _one = self.cw_alarms.lock().await;
        if self.shared.is_some() {
            // One server evaluates: the holder of the alerts lease.
            if !self.hold_alerts_lease(false).await {
                return 0;
            }
        } else if self.ensure_synced().is_err() {
            return 0;
        }
        for _ in 0..3 {
            match self.try_evaluate_cw_alarms().await {
                Ok(Some(changes)) => return changes,
                Ok(None) => continue, // an alarm changed meanwhile: judge it again
                Err(e) => {
                    tracing::warn!(error = ?e, "alarm states not written");
                    return 0;
                }
            }
        }
        0
    }

    /// One evaluation: the number of state changes, or `None` when another server changed an
    /// alarm it judged (nothing written).
    async fn try_evaluate_cw_alarms(&self) -> Result<Option<usize>, AlarmError> {
        let now = self.now_ms();
        let docs = self.alarm_documents(DOC_CW_ALARM, "", "\u{10FFFF}").await?;
        let mut muts = Vec::new();
        let mut read = Vec::new();
        let mut changes = 0;
        let mut regions = Vec::new();
        for (key, value) in docs {
            let Some((region, _)) = key.split_once('/') else {
                continue;
            };
            regions.push(region.to_string());
            let Ok(mut alarm) = serde_json::from_slice::<AlarmRecord>(&value) else {
                continue;
            };
            let before = alarm.clone();
            if let Some(item) = self.judge_alarm(region, &mut alarm, now).await {
                changes += 1;
                muts.push(history_doc(region, &item));
                muts.push(alarm_doc(region, &alarm));
                read.push((key.clone(), Some(before)));
            }
        }
        // Expired history, per region of a stored alarm (a key range up to the cutoff).
        let cutoff = now.saturating_sub(HISTORY_RETENTION_MS);
        let regions: std::collections::BTreeSet<String> = regions.into_iter().collect();
        for region in regions {
            let (from, _) = region_range(&region);
            let to = format!("{region}/{cutoff:015}");
            if let Ok(old) = self.alarm_documents(DOC_CW_ALARM_HISTORY, &from, &to).await {
                muts.extend(old.into_iter().take(PRUNE_BATCH).map(|(key, _)| {
                    Mutation::DeleteDocument {
                        kind: DOC_CW_ALARM_HISTORY.into(),
                        key,
                    }
                }));
            }
        }
        Ok(self
            .write_alarm_batch(muts, &read, None)
            .await?
            .then_some(changes))
    }
}
