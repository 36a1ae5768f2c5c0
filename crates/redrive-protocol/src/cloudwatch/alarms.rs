//! The alarm operations: `PutMetricAlarm`, `DescribeAlarms`, `DescribeAlarmsForMetric`,
//! `DescribeAlarmHistory`, `DeleteAlarms`, `SetAlarmState`, decoded with CloudWatch's
//! validation into typed inputs and encoded from [`redrive_core::alarm`] records.

use redrive_core::alarm::{
    AlarmDefinition, AlarmDimension, AlarmHistoryRecord, AlarmRecord, AlarmStateValue, Comparison,
    HISTORY_ITEM_TYPES, MissingData,
};

use super::doc::Doc;
use super::ops::{boolean, dimensions, field, integer, list, missing, string, time_opt};
use super::*;

/// Most alarm names in `DescribeAlarms`/`DeleteAlarms`.
pub const MAX_ALARM_NAMES: usize = 100;
/// Most actions per state.
pub const MAX_ACTIONS: usize = 5;
/// The longest evaluation range of an alarm on a period of a minute or more (one day).
pub const MAX_EVALUATION_SECS: u64 = 86_400;

#[derive(Debug, Clone, PartialEq)]
pub struct DescribeAlarmsInput {
    pub alarm_names: Vec<String>,
    pub alarm_name_prefix: Option<String>,
    pub state_value: Option<AlarmStateValue>,
    pub action_prefix: Option<String>,
    /// False when `AlarmTypes` is given without `MetricAlarm` (this server has no composite
    /// alarms).
    pub metric_alarms: bool,
    pub max_records: usize,
    pub next_token: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DescribeAlarmsForMetricInput {
    pub metric: MetricId,
    pub statistic: Option<String>,
    pub period: Option<u64>,
    pub unit: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DescribeAlarmHistoryInput {
    pub alarm_name: Option<String>,
    pub metric_alarms: bool,
    pub history_item_type: Option<String>,
    pub start_ms: Option<i64>,
    pub end_ms: Option<i64>,
    pub max_records: usize,
    pub next_token: Option<String>,
    pub scan_by: ScanBy,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SetAlarmStateInput {
    pub alarm_name: String,
    pub state: AlarmStateValue,
    pub reason: String,
    pub reason_data: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct DescribeAlarmsOutput {
    pub alarms: Vec<AlarmRecord>,
    pub next_token: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct DescribeAlarmHistoryOutput {
    pub items: Vec<AlarmHistoryRecord>,
    pub next_token: Option<String>,
}

fn validation(message: String) -> CwError {
    CwError::new(CwErrorCode::ValidationError, message)
}

fn invalid(message: String) -> CwError {
    CwError::new(CwErrorCode::InvalidParameterValue, message)
}

/// AWS's enum constraint text.
fn not_in_enum(value: &str, member: &str, set: &[&str]) -> CwError {
    validation(format!(
        "1 validation error detected: Value '{value}' at '{member}' failed to satisfy constraint: Member must satisfy enum value set: [{}]",
        set.join(", ")
    ))
}

fn too_long(value: &str, member: &str, max: usize) -> CwError {
    validation(format!(
        "1 validation error detected: Value '{value}' at '{member}' failed to satisfy constraint: Member must have length less than or equal to {max}"
    ))
}

fn alarm_name(d: &Doc, key: &str) -> Result<Option<String>, CwError> {
    let Some(name) = string(d, key, key)? else {
        return Ok(None);
    };
    if name.is_empty() {
        return Err(validation(format!(
            "1 validation error detected: Value '' at '{}' failed to satisfy constraint: Member must have length greater than or equal to 1",
            lower_first(key)
        )));
    }
    if name.chars().count() > 255 {
        return Err(too_long(&name, &lower_first(key), 255));
    }
    if name.chars().any(|c| c.is_ascii_control()) {
        return Err(invalid(format!(
            "The value for parameter {key} must not contain ASCII control characters."
        )));
    }
    Ok(Some(name))
}

fn lower_first(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_ascii_lowercase().to_string() + c.as_str())
        .unwrap_or_default()
}

fn strings(d: &Doc, key: &str) -> Result<Vec<String>, CwError> {
    list(d, key, key)?
        .iter()
        .enumerate()
        .map(|(i, item)| match item {
            Doc::Str(s) => Ok(s.clone()),
            _ => Err(invalid(format!(
                "The value for parameter {key}.member.{} is not valid: expected a string.",
                i + 1
            ))),
        })
        .collect()
}

fn actions(d: &Doc, key: &str) -> Result<Vec<String>, CwError> {
    let items = strings(d, key)?;
    if items.len() > MAX_ACTIONS {
        return Err(validation(format!(
            "1 validation error detected: Value '[{}]' at '{}' failed to satisfy constraint: Member must have length less than or equal to {MAX_ACTIONS}",
            items.join(", "),
            lower_first(key)
        )));
    }
    for a in &items {
        if !a.starts_with("arn:") {
            return Err(validation(format!("Invalid arn syntax: {a}")));
        }
    }
    Ok(items)
}

fn max_records(d: &Doc, default: usize) -> Result<usize, CwError> {
    match integer(d, "MaxRecords", "MaxRecords")? {
        None => Ok(default),
        Some(n) if (1..=100).contains(&n) => Ok(n as usize),
        Some(n) => Err(validation(format!(
            "1 validation error detected: Value '{n}' at 'maxRecords' failed to satisfy constraint: Member must have value {} 100",
            if n < 1 {
                "greater than or equal to 1; less than or equal to"
            } else {
                "less than or equal to"
            }
        ))),
    }
}

/// `AlarmTypes`: whether metric alarms are asked for (the default when absent).
fn metric_alarms_wanted(d: &Doc) -> Result<bool, CwError> {
    let types = strings(d, "AlarmTypes")?;
    for t in &types {
        if t != "MetricAlarm" && t != "CompositeAlarm" {
            return Err(not_in_enum(
                t,
                "alarmTypes",
                &["CompositeAlarm", "MetricAlarm"],
            ));
        }
    }
    Ok(types.is_empty() || types.iter().any(|t| t == "MetricAlarm"))
}

const STATISTICS: [&str; 5] = ["SampleCount", "Average", "Sum", "Minimum", "Maximum"];
const STATES: [&str; 3] = ["OK", "ALARM", "INSUFFICIENT_DATA"];

fn statistic(d: &Doc) -> Result<Option<String>, CwError> {
    match string(d, "Statistic", "Statistic")? {
        Some(s) if !STATISTICS.contains(&s.as_str()) => {
            Err(not_in_enum(&s, "statistic", &STATISTICS))
        }
        other => Ok(other),
    }
}

fn state_value(d: &Doc) -> Result<Option<AlarmStateValue>, CwError> {
    match string(d, "StateValue", "StateValue")? {
        None => Ok(None),
        Some(s) => AlarmStateValue::parse(&s)
            .map(Some)
            .ok_or_else(|| not_in_enum(&s, "stateValue", &STATES)),
    }
}

pub(super) fn put_metric_alarm(d: &Doc) -> Result<AlarmDefinition, CwError> {
    let alarm_name = alarm_name(d, "AlarmName")?.ok_or_else(|| missing("AlarmName"))?;
    let alarm_description = string(d, "AlarmDescription", "AlarmDescription")?;
    if let Some(desc) = &alarm_description
        && desc.chars().count() > 1024
    {
        return Err(too_long(desc, "alarmDescription", 1024));
    }
    if field(d, "Metrics").is_some() || field(d, "ThresholdMetricId").is_some() {
        return Err(invalid(
            "The parameters Metrics and ThresholdMetricId are not supported: this server evaluates single-metric alarms (no metric math, no anomaly detection).".into(),
        ));
    }
    let namespace = string(d, "Namespace", "Namespace")?.ok_or_else(|| missing("Namespace"))?;
    let metric_name =
        string(d, "MetricName", "MetricName")?.ok_or_else(|| missing("MetricName"))?;
    let stat = statistic(d)?;
    let extended = string(d, "ExtendedStatistic", "ExtendedStatistic")?;
    let statistic = match (stat, extended) {
        (Some(_), Some(_)) => {
            return Err(CwError::new(
                CwErrorCode::InvalidParameterCombination,
                "Exactly one element of the Statistic and ExtendedStatistic parameters must be specified.",
            ));
        }
        (None, None) => {
            return Err(CwError::new(
                CwErrorCode::MissingParameter,
                "Exactly one element of the Statistic and ExtendedStatistic parameters must be specified.",
            ));
        }
        (None, Some(_)) => {
            return Err(invalid(
                "The parameter ExtendedStatistic is not supported: this server keeps minute values, not samples for percentiles.".into(),
            ));
        }
        (Some(s), None) => s,
    };
    let period = integer(d, "Period", "Period")?.ok_or_else(|| missing("Period"))?;
    if period < 1 {
        return Err(validation(format!(
            "1 validation error detected: Value '{period}' at 'period' failed to satisfy constraint: Member must have value greater than or equal to 1"
        )));
    }
    if !matches!(period, 10 | 20 | 30) && period % 60 != 0 {
        return Err(invalid(
            "The parameter Period must be 10, 20, 30 or a multiple of 60.".into(),
        ));
    }
    let evaluation_periods = integer(d, "EvaluationPeriods", "EvaluationPeriods")?
        .ok_or_else(|| missing("EvaluationPeriods"))?;
    if evaluation_periods < 1 {
        return Err(validation(format!(
            "1 validation error detected: Value '{evaluation_periods}' at 'evaluationPeriods' failed to satisfy constraint: Member must have value greater than or equal to 1"
        )));
    }
    if period >= 60
        && (period as u64).saturating_mul(evaluation_periods as u64) > MAX_EVALUATION_SECS
    {
        return Err(validation(
            "Metrics cannot be checked across more than a day (EvaluationPeriods * Period must be <= 86400).".into(),
        ));
    }
    let datapoints_to_alarm = match integer(d, "DatapointsToAlarm", "DatapointsToAlarm")? {
        None => None,
        Some(m) if m < 1 => {
            return Err(validation(format!(
                "1 validation error detected: Value '{m}' at 'datapointsToAlarm' failed to satisfy constraint: Member must have value greater than or equal to 1"
            )));
        }
        Some(m) if m > evaluation_periods => {
            return Err(validation(
                "DatapointsToAlarm must be less than or equal to EvaluationPeriods.".into(),
            ));
        }
        Some(m) => Some(m as u32),
    };
    let threshold = match field(d, "Threshold") {
        None => return Err(missing("Threshold")),
        Some(Doc::Float(f)) => *f,
        Some(Doc::Int(i)) => *i as f64,
        Some(Doc::Str(s)) => s.trim().parse::<f64>().map_err(|_| {
            invalid(format!(
                "The value {s} for parameter Threshold is not a number."
            ))
        })?,
        Some(_) => {
            return Err(invalid(
                "The value for parameter Threshold is not a number.".into(),
            ));
        }
    };
    if !threshold.is_finite() {
        return Err(invalid(
            "The value for parameter Threshold is not a number.".into(),
        ));
    }
    let comparison = string(d, "ComparisonOperator", "ComparisonOperator")?
        .ok_or_else(|| missing("ComparisonOperator"))?;
    let comparison_operator = Comparison::parse(&comparison).ok_or_else(|| {
        let names: Vec<&str> = Comparison::ALL.iter().map(|c| c.name()).collect();
        if comparison.contains("Band") || comparison.contains("Upper") {
            invalid(format!(
                "The value {comparison} for parameter ComparisonOperator is not supported: anomaly detection needs metric math, which this server does not evaluate."
            ))
        } else {
            not_in_enum(&comparison, "comparisonOperator", &names)
        }
    })?;
    let treat_missing_data = match string(d, "TreatMissingData", "TreatMissingData")? {
        None => None,
        Some(t) => Some(MissingData::parse(&t).ok_or_else(|| {
            validation(format!(
                "Option {t} is not supported. Supported options for parameter TreatMissingData are missing, ignore, breaching and notBreaching."
            ))
        })?),
    };
    Ok(AlarmDefinition {
        alarm_name,
        alarm_description,
        actions_enabled: boolean(d, "ActionsEnabled", "ActionsEnabled")?.unwrap_or(true),
        ok_actions: actions(d, "OKActions")?,
        alarm_actions: actions(d, "AlarmActions")?,
        insufficient_data_actions: actions(d, "InsufficientDataActions")?,
        namespace,
        metric_name,
        dimensions: dimensions(d, "")?
            .into_iter()
            .map(|x| AlarmDimension {
                name: x.name,
                value: x.value,
            })
            .collect(),
        statistic,
        period: period as u64,
        unit: string(d, "Unit", "Unit")?,
        evaluation_periods: evaluation_periods.min(u32::MAX as i64) as u32,
        datapoints_to_alarm,
        threshold,
        comparison_operator,
        treat_missing_data,
    })
}

pub(super) fn describe_alarms(d: &Doc) -> Result<DescribeAlarmsInput, CwError> {
    let alarm_names = strings(d, "AlarmNames")?;
    if alarm_names.len() > MAX_ALARM_NAMES {
        return Err(validation(format!(
            "1 validation error detected: Value at 'alarmNames' failed to satisfy constraint: Member must have length less than or equal to {MAX_ALARM_NAMES}"
        )));
    }
    let alarm_name_prefix = alarm_name(d, "AlarmNamePrefix")?;
    if !alarm_names.is_empty() && alarm_name_prefix.is_some() {
        return Err(CwError::new(
            CwErrorCode::InvalidParameterCombination,
            "AlarmNamePrefix and AlarmNames cannot be specified together.",
        ));
    }
    Ok(DescribeAlarmsInput {
        alarm_names,
        alarm_name_prefix,
        state_value: state_value(d)?,
        action_prefix: string(d, "ActionPrefix", "ActionPrefix")?,
        metric_alarms: metric_alarms_wanted(d)?,
        max_records: max_records(d, 50)?,
        next_token: string(d, "NextToken", "NextToken")?,
    })
}

pub(super) fn describe_alarms_for_metric(d: &Doc) -> Result<DescribeAlarmsForMetricInput, CwError> {
    let namespace = string(d, "Namespace", "Namespace")?.ok_or_else(|| missing("Namespace"))?;
    let metric_name =
        string(d, "MetricName", "MetricName")?.ok_or_else(|| missing("MetricName"))?;
    let period = match integer(d, "Period", "Period")? {
        None => None,
        Some(p) if p >= 1 => Some(p as u64),
        Some(p) => {
            return Err(validation(format!(
                "1 validation error detected: Value '{p}' at 'period' failed to satisfy constraint: Member must have value greater than or equal to 1"
            )));
        }
    };
    Ok(DescribeAlarmsForMetricInput {
        metric: MetricId {
            namespace,
            metric_name,
            dimensions: dimensions(d, "")?,
        },
        statistic: statistic(d)?,
        period,
        unit: string(d, "Unit", "Unit")?,
    })
}

pub(super) fn describe_alarm_history(d: &Doc) -> Result<DescribeAlarmHistoryInput, CwError> {
    let history_item_type = string(d, "HistoryItemType", "HistoryItemType")?;
    if let Some(t) = &history_item_type
        && !HISTORY_ITEM_TYPES.contains(&t.as_str())
    {
        return Err(not_in_enum(t, "historyItemType", &HISTORY_ITEM_TYPES));
    }
    let scan_by = match string(d, "ScanBy", "ScanBy")?.as_deref() {
        None | Some("TimestampDescending") => ScanBy::TimestampDescending,
        Some("TimestampAscending") => ScanBy::TimestampAscending,
        Some(other) => {
            return Err(not_in_enum(
                other,
                "scanBy",
                &["TimestampDescending", "TimestampAscending"],
            ));
        }
    };
    Ok(DescribeAlarmHistoryInput {
        alarm_name: alarm_name(d, "AlarmName")?,
        metric_alarms: metric_alarms_wanted(d)?,
        history_item_type,
        start_ms: time_opt(d, "StartDate")?,
        end_ms: time_opt(d, "EndDate")?,
        max_records: max_records(d, 100)?,
        next_token: string(d, "NextToken", "NextToken")?,
        scan_by,
    })
}

pub(super) fn delete_alarms(d: &Doc) -> Result<Vec<String>, CwError> {
    if field(d, "AlarmNames").is_none() {
        return Err(missing("AlarmNames"));
    }
    let names = strings(d, "AlarmNames")?;
    if names.len() > MAX_ALARM_NAMES {
        return Err(validation(format!(
            "1 validation error detected: Value at 'alarmNames' failed to satisfy constraint: Member must have length less than or equal to {MAX_ALARM_NAMES}"
        )));
    }
    Ok(names)
}

pub(super) fn set_alarm_state(d: &Doc) -> Result<SetAlarmStateInput, CwError> {
    let alarm_name = alarm_name(d, "AlarmName")?.ok_or_else(|| missing("AlarmName"))?;
    let state = state_value(d)?.ok_or_else(|| missing("StateValue"))?;
    let reason = string(d, "StateReason", "StateReason")?.ok_or_else(|| missing("StateReason"))?;
    if reason.chars().count() > 1023 {
        return Err(too_long(&reason, "stateReason", 1023));
    }
    let reason_data = string(d, "StateReasonData", "StateReasonData")?;
    if let Some(data) = &reason_data
        && serde_json::from_str::<serde_json::Value>(data).is_err()
    {
        return Err(CwError::new(
            CwErrorCode::InvalidFormat,
            "The value for parameter StateReasonData is not valid JSON.",
        ));
    }
    Ok(SetAlarmStateInput {
        alarm_name,
        state,
        reason,
        reason_data,
    })
}

fn str_list(items: &[String]) -> Doc {
    Doc::List(items.iter().cloned().map(Doc::Str).collect())
}

/// A `MetricAlarm` structure, members in the service model's order.
pub fn alarm_doc(a: &AlarmRecord) -> Doc {
    let d = &a.definition;
    let opt = |v: &Option<String>| v.clone().map_or(Doc::Null, Doc::Str);
    Doc::Map(vec![
        ("AlarmName".into(), Doc::Str(d.alarm_name.clone())),
        ("AlarmArn".into(), Doc::Str(a.arn.clone())),
        ("AlarmDescription".into(), opt(&d.alarm_description)),
        (
            "AlarmConfigurationUpdatedTimestamp".into(),
            Doc::Time(a.configuration_updated_ms),
        ),
        ("ActionsEnabled".into(), Doc::Bool(d.actions_enabled)),
        ("OKActions".into(), str_list(&d.ok_actions)),
        ("AlarmActions".into(), str_list(&d.alarm_actions)),
        (
            "InsufficientDataActions".into(),
            str_list(&d.insufficient_data_actions),
        ),
        ("StateValue".into(), Doc::Str(a.state.name().into())),
        ("StateReason".into(), Doc::Str(a.state_reason.clone())),
        ("StateReasonData".into(), opt(&a.state_reason_data)),
        (
            "StateUpdatedTimestamp".into(),
            Doc::Time(a.state_updated_ms),
        ),
        ("MetricName".into(), Doc::Str(d.metric_name.clone())),
        ("Namespace".into(), Doc::Str(d.namespace.clone())),
        ("Statistic".into(), Doc::Str(d.statistic.clone())),
        (
            "Dimensions".into(),
            Doc::List(
                d.dimensions
                    .iter()
                    .map(|x| {
                        Doc::Map(vec![
                            ("Name".into(), Doc::Str(x.name.clone())),
                            ("Value".into(), Doc::Str(x.value.clone())),
                        ])
                    })
                    .collect(),
            ),
        ),
        ("Period".into(), Doc::Int(d.period as i64)),
        ("Unit".into(), opt(&d.unit)),
        (
            "EvaluationPeriods".into(),
            Doc::Int(i64::from(d.evaluation_periods)),
        ),
        (
            "DatapointsToAlarm".into(),
            d.datapoints_to_alarm
                .map_or(Doc::Null, |m| Doc::Int(i64::from(m))),
        ),
        ("Threshold".into(), Doc::Float(d.threshold)),
        (
            "ComparisonOperator".into(),
            Doc::Str(d.comparison_operator.name().into()),
        ),
        (
            "TreatMissingData".into(),
            d.treat_missing_data
                .map_or(Doc::Null, |t| Doc::Str(t.name().into())),
        ),
        (
            "StateTransitionedTimestamp".into(),
            Doc::Time(a.state_transitioned_ms),
        ),
    ])
}

pub fn history_doc(h: &AlarmHistoryRecord) -> Doc {
    Doc::Map(vec![
        ("AlarmName".into(), Doc::Str(h.alarm_name.clone())),
        ("AlarmType".into(), Doc::Str(h.alarm_type.clone())),
        ("Timestamp".into(), Doc::Time(h.timestamp_ms)),
        (
            "HistoryItemType".into(),
            Doc::Str(h.history_item_type.clone()),
        ),
        ("HistorySummary".into(), Doc::Str(h.history_summary.clone())),
        ("HistoryData".into(), Doc::Str(h.history_data.clone())),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(v: serde_json::Value) -> Result<CwRequest, CwError> {
        decode(
            CwProtocol::Json,
            "PutMetricAlarm",
            None,
            v.to_string().as_bytes(),
        )
    }

    fn base() -> serde_json::Value {
        serde_json::json!({
            "AlarmName": "orders-dlq-not-empty",
            "Namespace": "AWS/SQS",
            "MetricName": "ApproximateNumberOfMessagesVisible",
            "Dimensions": [{"Name": "QueueName", "Value": "orders-dlq"}],
            "Statistic": "Maximum",
            "Period": 60,
            "EvaluationPeriods": 1,
            "Threshold": 0,
            "ComparisonOperator": "GreaterThanThreshold",
        })
    }

    #[test]
    fn put_metric_alarm_decodes_and_validates() {
        let CwRequest::PutMetricAlarm(def) = put(base()).unwrap() else {
            panic!()
        };
        assert_eq!(def.alarm_name, "orders-dlq-not-empty");
        assert!(def.actions_enabled);
        assert_eq!(def.dimensions[0].value, "orders-dlq");
        assert_eq!(def.comparison_operator, Comparison::GreaterThanThreshold);

        let cases: Vec<(&str, serde_json::Value, CwErrorCode)> = vec![
            (
                "AlarmName",
                serde_json::Value::Null,
                CwErrorCode::MissingParameter,
            ),
            (
                "Threshold",
                serde_json::Value::Null,
                CwErrorCode::MissingParameter,
            ),
            ("Statistic", "Median".into(), CwErrorCode::ValidationError),
            ("Period", 45.into(), CwErrorCode::InvalidParameterValue),
            ("EvaluationPeriods", 0.into(), CwErrorCode::ValidationError),
            (
                "EvaluationPeriods",
                1441.into(),
                CwErrorCode::ValidationError,
            ),
            ("DatapointsToAlarm", 2.into(), CwErrorCode::ValidationError),
            (
                "ComparisonOperator",
                "Bigger".into(),
                CwErrorCode::ValidationError,
            ),
            (
                "TreatMissingData",
                "sometimes".into(),
                CwErrorCode::ValidationError,
            ),
            (
                "ExtendedStatistic",
                "p99".into(),
                CwErrorCode::InvalidParameterCombination,
            ),
            (
                "AlarmActions",
                serde_json::json!(["not-an-arn"]),
                CwErrorCode::ValidationError,
            ),
        ];
        for (key, value, code) in cases {
            let mut v = base();
            if value.is_null() {
                v.as_object_mut().unwrap().remove(key);
            } else {
                v[key] = value;
            }
            let e = put(v).expect_err(key);
            assert_eq!(e.code, code, "{key}: {}", e.message);
        }
        let mut v = base();
        v["Period"] = 30.into();
        assert!(put(v).is_ok(), "high-resolution periods are accepted");
    }

    #[test]
    fn history_and_set_state_validate() {
        let dec = |op: &str, v: serde_json::Value| {
            decode(CwProtocol::Json, op, None, v.to_string().as_bytes())
        };
        let CwRequest::DescribeAlarmHistory(i) = dec(
            "DescribeAlarmHistory",
            serde_json::json!({"AlarmName": "a", "HistoryItemType": "ConfigurationUpdate", "ScanBy": "TimestampAscending"}),
        )
        .unwrap() else {
            panic!()
        };
        assert_eq!(i.scan_by, ScanBy::TimestampAscending);
        assert_eq!(i.max_records, 100);
        assert_eq!(
            dec(
                "DescribeAlarmHistory",
                serde_json::json!({"HistoryItemType": "Nope"})
            )
            .unwrap_err()
            .code,
            CwErrorCode::ValidationError
        );
        assert_eq!(
            dec("DescribeAlarms", serde_json::json!({"MaxRecords": 101}))
                .unwrap_err()
                .code,
            CwErrorCode::ValidationError
        );
        let e = dec(
            "SetAlarmState",
            serde_json::json!({"AlarmName": "a", "StateValue": "ALARM", "StateReason": "r", "StateReasonData": "{"}),
        )
        .unwrap_err();
        assert_eq!(e.code, CwErrorCode::InvalidFormat);
        let e = dec(
            "SetAlarmState",
            serde_json::json!({"AlarmName": "a", "StateValue": "RED", "StateReason": "r"}),
        )
        .unwrap_err();
        assert_eq!(e.code, CwErrorCode::ValidationError);
        assert!(
            e.message.contains("[OK, ALARM, INSUFFICIENT_DATA]"),
            "{}",
            e.message
        );
        assert_eq!(
            dec("DeleteAlarms", serde_json::json!({})).unwrap_err().code,
            CwErrorCode::MissingParameter
        );
    }

    #[test]
    fn query_form_lists_decode() {
        let form = "Action=DescribeAlarms&Version=2010-08-01&AlarmNames.member.1=a&AlarmNames.member.2=b&StateValue=ALARM";
        let CwRequest::DescribeAlarms(i) =
            decode(CwProtocol::Query, "DescribeAlarms", None, form.as_bytes()).unwrap()
        else {
            panic!()
        };
        assert_eq!(i.alarm_names, vec!["a", "b"]);
        assert_eq!(i.state_value, Some(AlarmStateValue::Alarm));
        assert!(i.metric_alarms);
    }
}
