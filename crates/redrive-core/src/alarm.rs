//! CloudWatch metric alarms (`PutMetricAlarm`, see `docs/metrics.md`, "CloudWatch alarms"):
//! the definition as the API takes it, the three states, and the pure evaluation of one alarm
//! over its last `EvaluationPeriods` datapoints ("M out of N" with `TreatMissingData`), with
//! CloudWatch's state reason texts. No IO: the engine stores alarms and feeds the datapoints.

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::civil::civil_from_days;

/// `ComparisonOperator` (the static-threshold ones; anomaly-detection bands need metric math).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Comparison {
    GreaterThanOrEqualToThreshold,
    GreaterThanThreshold,
    LessThanThreshold,
    LessThanOrEqualToThreshold,
}

impl Comparison {
    pub const ALL: [Comparison; 4] = [
        Comparison::GreaterThanOrEqualToThreshold,
        Comparison::GreaterThanThreshold,
        Comparison::LessThanThreshold,
        Comparison::LessThanOrEqualToThreshold,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Comparison::GreaterThanOrEqualToThreshold => "GreaterThanOrEqualToThreshold",
            Comparison::GreaterThanThreshold => "GreaterThanThreshold",
            Comparison::LessThanThreshold => "LessThanThreshold",
            Comparison::LessThanOrEqualToThreshold => "LessThanOrEqualToThreshold",
        }
    }

    pub fn parse(s: &str) -> Option<Comparison> {
        Comparison::ALL.into_iter().find(|c| c.name() == s)
    }

    pub fn breaches(self, value: f64, threshold: f64) -> bool {
        match self {
            Comparison::GreaterThanOrEqualToThreshold => value >= threshold,
            Comparison::GreaterThanThreshold => value > threshold,
            Comparison::LessThanThreshold => value < threshold,
            Comparison::LessThanOrEqualToThreshold => value <= threshold,
        }
    }

    /// The words of CloudWatch's state reasons ("was greater than or equal to").
    fn words(self) -> &'static str {
        match self {
            Comparison::GreaterThanOrEqualToThreshold => "greater than or equal to",
            Comparison::GreaterThanThreshold => "greater than",
            Comparison::LessThanThreshold => "less than",
            Comparison::LessThanOrEqualToThreshold => "less than or equal to",
        }
    }

    fn negated_words(self) -> &'static str {
        match self {
            Comparison::GreaterThanOrEqualToThreshold => "less than",
            Comparison::GreaterThanThreshold => "less than or equal to",
            Comparison::LessThanThreshold => "greater than or equal to",
            Comparison::LessThanOrEqualToThreshold => "greater than",
        }
    }
}

/// `TreatMissingData`; CloudWatch's default is `missing`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum MissingData {
    #[default]
    #[serde(rename = "missing")]
    Missing,
    #[serde(rename = "ignore")]
    Ignore,
    #[serde(rename = "breaching")]
    Breaching,
    #[serde(rename = "notBreaching")]
    NotBreaching,
}

impl MissingData {
    pub fn name(self) -> &'static str {
        match self {
            MissingData::Missing => "missing",
            MissingData::Ignore => "ignore",
            MissingData::Breaching => "breaching",
            MissingData::NotBreaching => "notBreaching",
        }
    }

    pub fn parse(s: &str) -> Option<MissingData> {
        [
            MissingData::Missing,
            MissingData::Ignore,
            MissingData::Breaching,
            MissingData::NotBreaching,
        ]
        .into_iter()
        .find(|m| m.name() == s)
    }
}

/// `StateValue`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AlarmStateValue {
    #[serde(rename = "OK")]
    Ok,
    #[serde(rename = "ALARM")]
    Alarm,
    #[serde(rename = "INSUFFICIENT_DATA")]
    InsufficientData,
}

impl AlarmStateValue {
    pub fn name(self) -> &'static str {
        match self {
            AlarmStateValue::Ok => "OK",
            AlarmStateValue::Alarm => "ALARM",
            AlarmStateValue::InsufficientData => "INSUFFICIENT_DATA",
        }
    }

    pub fn parse(s: &str) -> Option<AlarmStateValue> {
        [
            AlarmStateValue::Ok,
            AlarmStateValue::Alarm,
            AlarmStateValue::InsufficientData,
        ]
        .into_iter()
        .find(|v| v.name() == s)
    }
}

/// One dimension of the alarm's metric.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlarmDimension {
    pub name: String,
    pub value: String,
}

/// A metric alarm as `PutMetricAlarm` defines it (validated by the protocol decoder).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AlarmDefinition {
    pub alarm_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alarm_description: Option<String>,
    pub actions_enabled: bool,
    #[serde(default)]
    pub ok_actions: Vec<String>,
    #[serde(default)]
    pub alarm_actions: Vec<String>,
    #[serde(default)]
    pub insufficient_data_actions: Vec<String>,
    pub namespace: String,
    pub metric_name: String,
    #[serde(default)]
    pub dimensions: Vec<AlarmDimension>,
    /// `SampleCount`, `Average`, `Sum`, `Minimum` or `Maximum`.
    pub statistic: String,
    /// Seconds.
    pub period: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    pub evaluation_periods: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datapoints_to_alarm: Option<u32>,
    pub threshold: f64,
    pub comparison_operator: Comparison,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub treat_missing_data: Option<MissingData>,
}

impl AlarmDefinition {
    /// M of "M out of N".
    pub fn datapoints_needed(&self) -> u32 {
        self.datapoints_to_alarm.unwrap_or(self.evaluation_periods)
    }

    /// The alarm as CloudWatch writes it in `HistoryData` (`createdAlarm`, `updatedAlarm`).
    pub fn history_json(&self) -> serde_json::Value {
        let dims: Vec<_> = self
            .dimensions
            .iter()
            .map(|d| json!({"name": d.name, "value": d.value}))
            .collect();
        let mut v = json!({
            "alarmName": self.alarm_name,
            "actionsEnabled": self.actions_enabled,
            "okactions": self.ok_actions,
            "alarmActions": self.alarm_actions,
            "insufficientDataActions": self.insufficient_data_actions,
            "namespace": self.namespace,
            "metricName": self.metric_name,
            "dimensions": dims,
            "statistic": self.statistic,
            "period": self.period,
            "evaluationPeriods": self.evaluation_periods,
            "datapointsToAlarm": self.datapoints_needed(),
            "threshold": self.threshold,
            "comparisonOperator": self.comparison_operator.name(),
            "treatMissingData": self.treat_missing_data.unwrap_or_default().name(),
        });
        if let Some(d) = &self.alarm_description {
            v["alarmDescription"] = json!(d);
        }
        if let Some(u) = &self.unit {
            v["unit"] = json!(u);
        }
        v
    }
}

/// A stored alarm: its definition and its state (what `DescribeAlarms` answers).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AlarmRecord {
    pub definition: AlarmDefinition,
    pub arn: String,
    pub configuration_updated_ms: i64,
    pub state: AlarmStateValue,
    pub state_reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_reason_data: Option<String>,
    pub state_updated_ms: i64,
    pub state_transitioned_ms: i64,
}

/// What a new alarm's state reason says until its first evaluation.
pub const INITIAL_REASON: &str = "Unchecked: Initial alarm creation";

/// `HistoryItemType` values this server writes.
pub const HISTORY_CONFIGURATION_UPDATE: &str = "ConfigurationUpdate";
pub const HISTORY_STATE_UPDATE: &str = "StateUpdate";
/// Every `HistoryItemType` the API accepts as a filter.
pub const HISTORY_ITEM_TYPES: [&str; 5] = [
    "ConfigurationUpdate",
    "StateUpdate",
    "Action",
    "AlarmContributorStateUpdate",
    "AlarmContributorAction",
];

/// One alarm history item (`DescribeAlarmHistory`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AlarmHistoryRecord {
    pub alarm_name: String,
    /// `MetricAlarm`.
    pub alarm_type: String,
    pub timestamp_ms: i64,
    pub history_item_type: String,
    pub history_summary: String,
    /// JSON text.
    pub history_data: String,
}

/// An evaluation's verdict: the state, and CloudWatch's reason text and data.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub state: AlarmStateValue,
    pub reason: String,
    /// JSON text (`StateReasonData`).
    pub reason_data: String,
}

/// `dd/mm/yy HH:MM:SS` in UTC, as CloudWatch's state reasons print datapoint times.
pub fn reason_time(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{:02}/{:02}/{:02} {:02}:{:02}:{:02}",
        d,
        m,
        y.rem_euclid(100),
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// ISO 8601 with milliseconds and `+0000`, as CloudWatch writes times in reason data.
pub fn reason_data_time(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}+0000",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms.rem_euclid(1000)
    )
}

fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.1}")
    } else {
        format!("{v}")
    }
}

/// Evaluates an alarm over its last `EvaluationPeriods` periods, `points` oldest first, each
/// `(period start ms, value or None when missing)`. `None` when the alarm keeps its state
/// (all missing with `ignore`). `now_ms` is written into the reason data.
pub fn evaluate(
    def: &AlarmDefinition,
    points: &[(i64, Option<f64>)],
    now_ms: i64,
) -> Option<Verdict> {
    let n = def.evaluation_periods as usize;
    let m = def.datapoints_needed() as usize;
    let treat = def.treat_missing_data.unwrap_or_default();
    let present: Vec<(i64, f64)> = points
        .iter()
        .filter_map(|(t, v)| v.map(|v| (*t, v)))
        .collect();
    let breaching = |v: f64| def.comparison_operator.breaches(v, def.threshold);
    let mut breaches = present.iter().filter(|(_, v)| breaching(*v)).count();
    let missing = points.len().saturating_sub(present.len()) + n.saturating_sub(points.len());
    match treat {
        MissingData::Breaching => breaches += missing,
        MissingData::NotBreaching | MissingData::Missing | MissingData::Ignore => {}
    }
    let start_ms = points.first().map_or(now_ms, |p| p.0);
    let recent: Vec<f64> = present.iter().rev().map(|(_, v)| *v).collect();
    let data = json!({
        "version": "1.0",
        "queryDate": reason_data_time(now_ms),
        "startDate": reason_data_time(start_ms),
        "statistic": def.statistic,
        "period": def.period,
        "recentDatapoints": recent,
        "threshold": def.threshold,
        "evaluatedDatapoints": present.iter().rev().map(|(t, v)| json!({
            "timestamp": reason_data_time(*t),
            "sampleCount": 1.0,
            "value": v,
        })).collect::<Vec<_>>(),
    })
    .to_string();
    if present.is_empty() && !matches!(treat, MissingData::Breaching | MissingData::NotBreaching) {
        if treat == MissingData::Ignore {
            return None;
        }
        return Some(Verdict {
            state: AlarmStateValue::InsufficientData,
            reason: format!(
                "Insufficient Data: {n} datapoint{} {} unknown.",
                if n == 1 { "" } else { "s" },
                if n == 1 { "was" } else { "were" }
            ),
            reason_data: data,
        });
    }
    let listed: Vec<String> = present
        .iter()
        .rev()
        .map(|(t, v)| format!("{} ({})", number(*v), reason_time(*t)))
        .collect();
    let threshold = number(def.threshold);
    if breaches >= m {
        let reason = if n == 1 {
            format!(
                "Threshold Crossed: 1 datapoint [{}] was {} the threshold ({threshold}).",
                listed.join(", "),
                def.comparison_operator.words()
            )
        } else {
            format!(
                "Threshold Crossed: {breaches} out of the last {n} datapoints [{}] {} {} the threshold ({threshold}) (minimum {m} datapoint{} for OK -> ALARM transition).",
                listed.join(", "),
                if breaches == 1 { "was" } else { "were" },
                def.comparison_operator.words(),
                if m == 1 { "" } else { "s" }
            )
        };
        return Some(Verdict {
            state: AlarmStateValue::Alarm,
            reason,
            reason_data: data,
        });
    }
    let not_breaching = present.len() - present.iter().filter(|(_, v)| breaching(*v)).count();
    let reason = if n == 1 {
        format!(
            "Threshold Crossed: 1 datapoint [{}] was not {} the threshold ({threshold}).",
            listed.join(", "),
            def.comparison_operator.words()
        )
    } else {
        format!(
            "Threshold Crossed: no datapoints were {} the threshold ({threshold}). The most recent datapoints which crossed the threshold: [{}]; {not_breaching} were {}.",
            def.comparison_operator.words(),
            listed.join(", "),
            def.comparison_operator.negated_words()
        )
    };
    Some(Verdict {
        state: AlarmStateValue::Ok,
        reason,
        reason_data: data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(n: u32, m: Option<u32>, treat: Option<MissingData>) -> AlarmDefinition {
        AlarmDefinition {
            alarm_name: "dlq-depth".into(),
            alarm_description: None,
            actions_enabled: true,
            ok_actions: vec![],
            alarm_actions: vec![],
            insufficient_data_actions: vec![],
            namespace: "AWS/SQS".into(),
            metric_name: "ApproximateNumberOfMessagesVisible".into(),
            dimensions: vec![AlarmDimension {
                name: "QueueName".into(),
                value: "dlq".into(),
            }],
            statistic: "Maximum".into(),
            period: 60,
            unit: None,
            evaluation_periods: n,
            datapoints_to_alarm: m,
            threshold: 0.0,
            comparison_operator: Comparison::GreaterThanThreshold,
            treat_missing_data: treat,
        }
    }

    const T: i64 = 1_764_820_800_000; // 2025-12-04T04:00:00Z

    #[test]
    fn one_breaching_datapoint_alarms_with_cloudwatchs_text() {
        let v = evaluate(&def(1, None, None), &[(T, Some(42.0))], T + 90_000).unwrap();
        assert_eq!(v.state, AlarmStateValue::Alarm);
        assert_eq!(
            v.reason,
            "Threshold Crossed: 1 datapoint [42.0 (04/12/25 04:00:00)] was greater than the threshold (0.0)."
        );
        let data: serde_json::Value = serde_json::from_str(&v.reason_data).unwrap();
        assert_eq!(data["recentDatapoints"], json!([42.0]));
        assert_eq!(data["startDate"], "2025-12-04T04:00:00.000+0000");
        let ok = evaluate(&def(1, None, None), &[(T, Some(0.0))], T).unwrap();
        assert_eq!(ok.state, AlarmStateValue::Ok);
    }

    #[test]
    fn m_out_of_n_counts_breaches() {
        let pts = [
            (T, Some(1.0)),
            (T + 60_000, Some(0.0)),
            (T + 120_000, Some(3.0)),
        ];
        let two_of_three = evaluate(&def(3, Some(2), None), &pts, T).unwrap();
        assert_eq!(two_of_three.state, AlarmStateValue::Alarm);
        assert!(
            two_of_three
                .reason
                .starts_with("Threshold Crossed: 2 out of the last 3 datapoints [3.0"),
            "{}",
            two_of_three.reason
        );
        assert_eq!(
            evaluate(&def(3, None, None), &pts, T).unwrap().state,
            AlarmStateValue::Ok
        );
    }

    #[test]
    fn missing_data_follows_treat_missing_data() {
        let none = [(T, None), (T + 60_000, None)];
        assert_eq!(
            evaluate(&def(2, None, None), &none, T).unwrap().state,
            AlarmStateValue::InsufficientData
        );
        assert_eq!(
            evaluate(&def(2, None, Some(MissingData::Ignore)), &none, T),
            None
        );
        assert_eq!(
            evaluate(&def(2, None, Some(MissingData::Breaching)), &none, T)
                .unwrap()
                .state,
            AlarmStateValue::Alarm
        );
        assert_eq!(
            evaluate(&def(2, None, Some(MissingData::NotBreaching)), &none, T)
                .unwrap()
                .state,
            AlarmStateValue::Ok
        );
        // One present, breaching; one missing treated as breaching: 2 of 2.
        let half = [(T, Some(5.0)), (T + 60_000, None)];
        assert_eq!(
            evaluate(&def(2, None, Some(MissingData::Breaching)), &half, T)
                .unwrap()
                .state,
            AlarmStateValue::Alarm
        );
        assert_eq!(
            evaluate(&def(2, None, None), &half, T).unwrap().state,
            AlarmStateValue::Ok
        );
    }

    #[test]
    fn definitions_round_trip_and_names_parse() {
        let d = def(3, Some(2), Some(MissingData::NotBreaching));
        let text = serde_json::to_string(&d).unwrap();
        assert_eq!(serde_json::from_str::<AlarmDefinition>(&text).unwrap(), d);
        for c in Comparison::ALL {
            assert_eq!(Comparison::parse(c.name()), Some(c));
        }
        assert_eq!(
            MissingData::parse("notBreaching"),
            Some(MissingData::NotBreaching)
        );
        assert_eq!(
            AlarmStateValue::parse("ALARM"),
            Some(AlarmStateValue::Alarm)
        );
        assert_eq!(d.history_json()["treatMissingData"], "notBreaching");
    }
}
