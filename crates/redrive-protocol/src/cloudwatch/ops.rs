//! Typed decoding (with CloudWatch's validation) and encoding of the three operations over the
//! protocol-neutral [`Doc`]. Parameter names in messages are spelled as in the Query protocol
//! (`MetricDataQueries.member.1.MetricStat.Period`), as AWS does.

use std::collections::HashSet;

use super::alarms;
use super::doc::{Doc, parse_time_text};
use super::*;

fn invalid(message: String) -> CwError {
    CwError::new(CwErrorCode::InvalidParameterValue, message)
}

pub(super) fn missing(name: &str) -> CwError {
    CwError::new(
        CwErrorCode::MissingParameter,
        format!("The parameter {name} is required."),
    )
}

fn not_valid(name: &str, what: &str) -> CwError {
    invalid(format!(
        "The value for parameter {name} is not valid: {what}."
    ))
}

pub(super) fn field<'a>(d: &'a Doc, key: &str) -> Option<&'a Doc> {
    d.get(key).filter(|v| !matches!(v, Doc::Null))
}

pub(super) fn string(d: &Doc, key: &str, name: &str) -> Result<Option<String>, CwError> {
    match field(d, key) {
        None => Ok(None),
        Some(Doc::Str(s)) => Ok(Some(s.clone())),
        Some(_) => Err(not_valid(name, "expected a string")),
    }
}

pub(super) fn integer(d: &Doc, key: &str, name: &str) -> Result<Option<i64>, CwError> {
    match field(d, key) {
        None => Ok(None),
        Some(Doc::Int(i)) => Ok(Some(*i)),
        Some(Doc::Float(f)) if f.fract() == 0.0 && f.abs() < 9e15 => Ok(Some(*f as i64)),
        Some(Doc::Str(s)) => s.trim().parse().map(Some).map_err(|_| {
            invalid(format!(
                "The value {s} for parameter {name} is not an integer."
            ))
        }),
        Some(_) => Err(not_valid(name, "expected an integer")),
    }
}

pub(super) fn boolean(d: &Doc, key: &str, name: &str) -> Result<Option<bool>, CwError> {
    match field(d, key) {
        None => Ok(None),
        Some(Doc::Bool(b)) => Ok(Some(*b)),
        Some(Doc::Str(s)) if s == "true" => Ok(Some(true)),
        Some(Doc::Str(s)) if s == "false" => Ok(Some(false)),
        Some(_) => Err(not_valid(name, "expected true or false")),
    }
}

fn time(d: &Doc, key: &str) -> Result<i64, CwError> {
    match field(d, key) {
        None => Err(missing(key)),
        Some(Doc::Time(ms)) => Ok(*ms),
        Some(Doc::Int(secs)) => secs
            .checked_mul(1000)
            .ok_or_else(|| not_valid(key, "out of range")),
        Some(Doc::Float(secs)) if secs.is_finite() && secs.abs() < 1e13 => {
            Ok((secs * 1000.0).round() as i64)
        }
        Some(Doc::Str(s)) => parse_time_text(s).ok_or_else(|| {
            invalid(format!(
                "The value {s} for parameter {key} is not a valid ISO 8601 time."
            ))
        }),
        Some(_) => Err(not_valid(key, "expected a time")),
    }
}

/// An optional time (`StartDate`, `EndDate`).
pub(super) fn time_opt(d: &Doc, key: &str) -> Result<Option<i64>, CwError> {
    if field(d, key).is_none() {
        return Ok(None);
    }
    time(d, key).map(Some)
}

pub(super) fn list<'a>(d: &'a Doc, key: &str, name: &str) -> Result<&'a [Doc], CwError> {
    match field(d, key) {
        None => Ok(&[]),
        Some(Doc::List(items)) => Ok(items),
        // Query: `Name=` (no members) is an empty list.
        Some(Doc::Str(s)) if s.is_empty() => Ok(&[]),
        Some(_) => Err(not_valid(name, "expected a list")),
    }
}

fn structure<'a>(d: &'a Doc, key: &str, name: &str) -> Result<Option<&'a Doc>, CwError> {
    match field(d, key) {
        None => Ok(None),
        Some(m @ Doc::Map(_)) => Ok(Some(m)),
        Some(_) => Err(not_valid(name, "expected a structure")),
    }
}

pub(super) fn dimensions(d: &Doc, prefix: &str) -> Result<Vec<Dimension>, CwError> {
    let items = list(d, "Dimensions", &format!("{prefix}Dimensions"))?;
    if items.len() > 30 {
        return Err(invalid(format!(
            "The collection {prefix}Dimensions must not have a size greater than 30."
        )));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let name = format!("{prefix}Dimensions.member.{}", i + 1);
            Ok(Dimension {
                name: string(item, "Name", &format!("{name}.Name"))?
                    .ok_or_else(|| missing(&format!("{name}.Name")))?,
                value: string(item, "Value", &format!("{name}.Value"))?
                    .ok_or_else(|| missing(&format!("{name}.Value")))?,
            })
        })
        .collect()
}

fn period(value: Option<i64>, name: &str) -> Result<u64, CwError> {
    let p = value.ok_or_else(|| missing(name))?;
    if p < 60 || p % 60 != 0 {
        // AWS accepts 1, 5, 10 and 30 for high-resolution metrics; SQS's are minute metrics
        // and this server keeps minutes only.
        return Err(invalid(format!(
            "The parameter {name} must be a multiple of 60."
        )));
    }
    Ok(p as u64)
}

fn time_range(d: &Doc, equal_code: CwErrorCode) -> Result<(i64, i64), CwError> {
    let start = time(d, "StartTime")?;
    let end = time(d, "EndTime")?;
    if start == end {
        return Err(CwError::new(
            equal_code,
            "The parameter StartTime must not equal parameter EndTime.",
        ));
    }
    if start > end {
        return Err(CwError::new(
            equal_code,
            "The parameter StartTime must be less than the parameter EndTime.",
        ));
    }
    Ok((start, end))
}

fn valid_id(id: &str) -> bool {
    let mut chars = id.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && id.len() <= 255
}

fn get_metric_data(d: &Doc) -> Result<GetMetricDataInput, CwError> {
    if field(d, "MetricDataQueries").is_none() {
        return Err(missing("MetricDataQueries"));
    }
    let items = list(d, "MetricDataQueries", "MetricDataQueries")?;
    if items.is_empty() {
        return Err(missing("MetricDataQueries"));
    }
    if items.len() > MAX_QUERIES {
        return Err(invalid(format!(
            "The collection MetricDataQueries must not have a size greater than {MAX_QUERIES}."
        )));
    }
    let (start_ms, end_ms) = time_range(d, CwErrorCode::ValidationError)?;
    let scan_by = match string(d, "ScanBy", "ScanBy")?.as_deref() {
        None | Some("TimestampDescending") => ScanBy::TimestampDescending,
        Some("TimestampAscending") => ScanBy::TimestampAscending,
        Some(other) => {
            return Err(invalid(format!(
                "The value {other} for parameter ScanBy is not valid. Valid values: TimestampDescending, TimestampAscending."
            )));
        }
    };
    let max_datapoints = match integer(d, "MaxDatapoints", "MaxDatapoints")? {
        None => DEFAULT_MAX_DATAPOINTS,
        Some(n) if n > 0 => n as u64,
        Some(n) => {
            return Err(invalid(format!(
                "The value {n} for parameter MaxDatapoints must be greater than 0."
            )));
        }
    };
    let mut ids = HashSet::new();
    let mut queries = Vec::with_capacity(items.len());
    for (i, q) in items.iter().enumerate() {
        let p = format!("MetricDataQueries.member.{}.", i + 1);
        let id = string(q, "Id", &format!("{p}Id"))?.ok_or_else(|| missing(&format!("{p}Id")))?;
        if !valid_id(&id) {
            return Err(invalid(format!(
                "The value {id} for parameter {p}Id is not valid. The Id must start with a lowercase letter and contain only letters, numbers and underscores."
            )));
        }
        if !ids.insert(id.clone()) {
            return Err(invalid(format!(
                "The value {id} for parameter {p}Id is not unique."
            )));
        }
        let stat = structure(q, "MetricStat", &format!("{p}MetricStat"))?;
        let expression = string(q, "Expression", &format!("{p}Expression"))?;
        let stat = match (stat, expression) {
            (Some(_), Some(_)) => {
                return Err(CwError::new(
                    CwErrorCode::InvalidParameterCombination,
                    format!(
                        "The parameters {p}MetricStat and {p}Expression are mutually exclusive and you have specified both."
                    ),
                ));
            }
            (None, None) => {
                return Err(CwError::new(
                    CwErrorCode::MissingParameter,
                    format!("The parameter {p}MetricStat or {p}Expression is required."),
                ));
            }
            (None, Some(_)) => {
                return Err(invalid(format!(
                    "The parameter {p}Expression is not supported: this server answers MetricStat queries only (no metric math)."
                )));
            }
            (Some(s), None) => s,
        };
        let sp = format!("{p}MetricStat.");
        let metric = structure(stat, "Metric", &format!("{sp}Metric"))?
            .ok_or_else(|| missing(&format!("{sp}Metric")))?;
        let mp = format!("{sp}Metric.");
        let metric = MetricId {
            namespace: string(metric, "Namespace", &format!("{mp}Namespace"))?
                .ok_or_else(|| missing(&format!("{mp}Namespace")))?,
            metric_name: string(metric, "MetricName", &format!("{mp}MetricName"))?
                .ok_or_else(|| missing(&format!("{mp}MetricName")))?,
            dimensions: dimensions(metric, &mp)?,
        };
        let period = period(
            integer(stat, "Period", &format!("{sp}Period"))?,
            &format!("{sp}Period"),
        )?;
        let stat_name = string(stat, "Stat", &format!("{sp}Stat"))?
            .ok_or_else(|| missing(&format!("{sp}Stat")))?;
        let stat_kind = Statistic::parse(&stat_name).ok_or_else(|| {
            invalid(format!(
                "The value {stat_name} for parameter {sp}Stat is not a supported statistic. Supported: SampleCount, Average, Sum, Minimum, Maximum."
            ))
        })?;
        queries.push(MetricStatQuery {
            id,
            metric,
            period,
            stat: stat_kind,
            unit: string(stat, "Unit", &format!("{sp}Unit"))?,
            label: string(q, "Label", &format!("{p}Label"))?,
            return_data: boolean(q, "ReturnData", &format!("{p}ReturnData"))?.unwrap_or(true),
        });
    }
    Ok(GetMetricDataInput {
        queries,
        start_ms,
        end_ms,
        next_token: string(d, "NextToken", "NextToken")?,
        scan_by,
        max_datapoints,
    })
}

fn get_metric_statistics(d: &Doc) -> Result<GetMetricStatisticsInput, CwError> {
    let namespace = string(d, "Namespace", "Namespace")?.ok_or_else(|| missing("Namespace"))?;
    let metric_name =
        string(d, "MetricName", "MetricName")?.ok_or_else(|| missing("MetricName"))?;
    let (start_ms, end_ms) = time_range(d, CwErrorCode::InvalidParameterValue)?;
    let period = period(integer(d, "Period", "Period")?, "Period")?;
    let stats = list(d, "Statistics", "Statistics")?;
    let extended = list(d, "ExtendedStatistics", "ExtendedStatistics")?;
    if !extended.is_empty() {
        return Err(invalid(
            "The parameter ExtendedStatistics is not supported: this server keeps minute values, not samples for percentiles.".into(),
        ));
    }
    if stats.is_empty() {
        return Err(CwError::new(
            CwErrorCode::MissingParameter,
            "Must specify either Statistics or ExtendedStatistics.",
        ));
    }
    if stats.len() > 5 {
        return Err(invalid(
            "The collection Statistics must not have a size greater than 5.".into(),
        ));
    }
    let mut statistics = Vec::new();
    for (i, s) in stats.iter().enumerate() {
        let name = format!("Statistics.member.{}", i + 1);
        let Doc::Str(text) = s else {
            return Err(not_valid(&name, "expected a string"));
        };
        let st = Statistic::parse(text).ok_or_else(|| {
            invalid(format!(
                "The value {text} for parameter {name} is not valid. Valid values: SampleCount, Average, Sum, Minimum, Maximum."
            ))
        })?;
        if !statistics.contains(&st) {
            statistics.push(st);
        }
    }
    Ok(GetMetricStatisticsInput {
        metric: MetricId {
            namespace,
            metric_name,
            dimensions: dimensions(d, "")?,
        },
        start_ms,
        end_ms,
        period,
        statistics,
        unit: string(d, "Unit", "Unit")?,
    })
}

fn list_metrics(d: &Doc) -> Result<ListMetricsInput, CwError> {
    let items = list(d, "Dimensions", "Dimensions")?;
    if items.len() > 10 {
        return Err(invalid(
            "The collection Dimensions must not have a size greater than 10.".into(),
        ));
    }
    let dimensions = items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let name = format!("Dimensions.member.{}", i + 1);
            Ok(DimensionFilter {
                name: string(item, "Name", &format!("{name}.Name"))?
                    .ok_or_else(|| missing(&format!("{name}.Name")))?,
                value: string(item, "Value", &format!("{name}.Value"))?,
            })
        })
        .collect::<Result<_, CwError>>()?;
    Ok(ListMetricsInput {
        namespace: string(d, "Namespace", "Namespace")?,
        metric_name: string(d, "MetricName", "MetricName")?,
        dimensions,
        next_token: string(d, "NextToken", "NextToken")?,
    })
}

/// A decoded body (any protocol) → a typed, validated request.
pub fn decode_doc(operation: &str, d: &Doc) -> Result<CwRequest, CwError> {
    match operation {
        "GetMetricData" => get_metric_data(d).map(CwRequest::GetMetricData),
        "GetMetricStatistics" => get_metric_statistics(d).map(CwRequest::GetMetricStatistics),
        "ListMetrics" => list_metrics(d).map(CwRequest::ListMetrics),
        "PutMetricAlarm" => alarms::put_metric_alarm(d).map(CwRequest::PutMetricAlarm),
        "DescribeAlarms" => alarms::describe_alarms(d).map(CwRequest::DescribeAlarms),
        "DescribeAlarmsForMetric" => {
            alarms::describe_alarms_for_metric(d).map(CwRequest::DescribeAlarmsForMetric)
        }
        "DescribeAlarmHistory" => {
            alarms::describe_alarm_history(d).map(CwRequest::DescribeAlarmHistory)
        }
        "DeleteAlarms" => alarms::delete_alarms(d).map(CwRequest::DeleteAlarms),
        "SetAlarmState" => alarms::set_alarm_state(d).map(CwRequest::SetAlarmState),
        "" => Err(missing("Action")),
        other => Err(CwError::new(
            CwErrorCode::InvalidAction,
            format!(
                "The action {other} is not valid for this web service (Redrive serves GetMetricData, GetMetricStatistics, ListMetrics, PutMetricAlarm, DescribeAlarms, DescribeAlarmsForMetric, DescribeAlarmHistory, DeleteAlarms and SetAlarmState)."
            ),
        )),
    }
}

fn metric_doc(m: &MetricId) -> Doc {
    Doc::Map(vec![
        ("Namespace".into(), Doc::Str(m.namespace.clone())),
        ("MetricName".into(), Doc::Str(m.metric_name.clone())),
        (
            "Dimensions".into(),
            Doc::List(
                m.dimensions
                    .iter()
                    .map(|d| {
                        Doc::Map(vec![
                            ("Name".into(), Doc::Str(d.name.clone())),
                            ("Value".into(), Doc::Str(d.value.clone())),
                        ])
                    })
                    .collect(),
            ),
        ),
    ])
}

/// A response → (operation name, document).
pub fn encode_response_doc(r: &CwResponse) -> (&'static str, Doc) {
    let opt_token = |t: &Option<String>| t.clone().map_or(Doc::Null, Doc::Str);
    match r {
        CwResponse::GetMetricData(o) => (
            "GetMetricData",
            Doc::Map(vec![
                (
                    "MetricDataResults".into(),
                    Doc::List(
                        o.results
                            .iter()
                            .map(|r| {
                                Doc::Map(vec![
                                    ("Id".into(), Doc::Str(r.id.clone())),
                                    ("Label".into(), Doc::Str(r.label.clone())),
                                    (
                                        "Timestamps".into(),
                                        Doc::List(
                                            r.timestamps_ms.iter().map(|t| Doc::Time(*t)).collect(),
                                        ),
                                    ),
                                    (
                                        "Values".into(),
                                        Doc::List(
                                            r.values.iter().map(|v| Doc::Float(*v)).collect(),
                                        ),
                                    ),
                                    (
                                        "StatusCode".into(),
                                        Doc::Str(
                                            match r.status {
                                                StatusCode::Complete => "Complete",
                                                StatusCode::PartialData => "PartialData",
                                            }
                                            .into(),
                                        ),
                                    ),
                                ])
                            })
                            .collect(),
                    ),
                ),
                ("NextToken".into(), opt_token(&o.next_token)),
                ("Messages".into(), Doc::List(Vec::new())),
            ]),
        ),
        CwResponse::GetMetricStatistics(o) => (
            "GetMetricStatistics",
            Doc::Map(vec![
                ("Label".into(), Doc::Str(o.label.clone())),
                (
                    "Datapoints".into(),
                    Doc::List(
                        o.datapoints
                            .iter()
                            .map(|p| {
                                let mut m = vec![("Timestamp".into(), Doc::Time(p.timestamp_ms))];
                                for (st, v) in &p.values {
                                    m.push((st.name().to_string(), Doc::Float(*v)));
                                }
                                m.push(("Unit".into(), Doc::Str(p.unit.clone())));
                                Doc::Map(m)
                            })
                            .collect(),
                    ),
                ),
            ]),
        ),
        CwResponse::DescribeAlarms(o) => (
            "DescribeAlarms",
            Doc::Map(vec![
                (
                    "MetricAlarms".into(),
                    Doc::List(o.alarms.iter().map(alarms::alarm_doc).collect()),
                ),
                ("CompositeAlarms".into(), Doc::List(Vec::new())),
                ("NextToken".into(), opt_token(&o.next_token)),
            ]),
        ),
        CwResponse::DescribeAlarmsForMetric(list) => (
            "DescribeAlarmsForMetric",
            Doc::Map(vec![(
                "MetricAlarms".into(),
                Doc::List(list.iter().map(alarms::alarm_doc).collect()),
            )]),
        ),
        CwResponse::DescribeAlarmHistory(o) => (
            "DescribeAlarmHistory",
            Doc::Map(vec![
                (
                    "AlarmHistoryItems".into(),
                    Doc::List(o.items.iter().map(alarms::history_doc).collect()),
                ),
                ("NextToken".into(), opt_token(&o.next_token)),
            ]),
        ),
        CwResponse::Empty(op) => (op, Doc::Map(Vec::new())),
        CwResponse::ListMetrics(o) => (
            "ListMetrics",
            Doc::Map(vec![
                (
                    "Metrics".into(),
                    Doc::List(o.metrics.iter().map(metric_doc).collect()),
                ),
                ("NextToken".into(), opt_token(&o.next_token)),
            ]),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gmd(queries: serde_json::Value) -> Result<CwRequest, CwError> {
        let body = serde_json::json!({
            "MetricDataQueries": queries,
            "StartTime": 1_776_716_400,
            "EndTime": 1_776_717_000,
        });
        decode(
            CwProtocol::Json,
            "GetMetricData",
            None,
            body.to_string().as_bytes(),
        )
    }

    fn q(id: &str, period: i64, stat: &str) -> serde_json::Value {
        serde_json::json!({
            "Id": id,
            "MetricStat": {
                "Metric": {"Namespace": "AWS/SQS", "MetricName": "NumberOfMessagesSent",
                           "Dimensions": [{"Name": "QueueName", "Value": "q"}]},
                "Period": period, "Stat": stat,
            },
        })
    }

    #[track_caller]
    fn code(r: Result<CwRequest, CwError>) -> (CwErrorCode, String) {
        let e = r.expect_err("an error");
        (e.code, e.message)
    }

    #[test]
    fn get_metric_data_validates_like_cloudwatch() {
        let ok = gmd(serde_json::json!([q("sent", 60, "Sum")])).unwrap();
        let CwRequest::GetMetricData(i) = ok else {
            panic!()
        };
        assert_eq!(i.queries[0].stat, Statistic::Sum);
        assert_eq!(i.start_ms, 1_776_716_400_000);
        assert_eq!(i.scan_by, ScanBy::TimestampDescending);
        assert!(i.queries[0].return_data);

        for p in [30, 0, -60, 90] {
            let (c, m) = code(gmd(serde_json::json!([q("a", p, "Sum")])));
            assert_eq!(c, CwErrorCode::InvalidParameterValue, "{p}");
            assert!(
                m.contains("MetricDataQueries.member.1.MetricStat.Period"),
                "{m}"
            );
        }
        let (c, m) = code(gmd(serde_json::json!([q("a", 60, "p99.9x")])));
        assert_eq!(c, CwErrorCode::InvalidParameterValue);
        assert!(m.contains("p99.9x"), "{m}");
        for bad in ["A", "1a", "a-b", ""] {
            let (c, _) = code(gmd(serde_json::json!([q(bad, 60, "Sum")])));
            assert_eq!(c, CwErrorCode::InvalidParameterValue, "{bad}");
        }
        let (c, m) = code(gmd(serde_json::json!([
            q("a", 60, "Sum"),
            q("a", 60, "Sum")
        ])));
        assert_eq!(c, CwErrorCode::InvalidParameterValue);
        assert!(m.contains("member.2.Id"), "{m}");
        let many: Vec<_> = (0..501).map(|i| q(&format!("q{i}"), 60, "Sum")).collect();
        let (c, m) = code(gmd(serde_json::Value::Array(many)));
        assert_eq!(c, CwErrorCode::InvalidParameterValue);
        assert!(m.contains("500"), "{m}");
        let (c, _) = code(gmd(
            serde_json::json!([{"Id": "e", "Expression": "SUM(METRICS())"}]),
        ));
        assert_eq!(c, CwErrorCode::InvalidParameterValue);
        let (c, _) = code(gmd(serde_json::json!([{"Id": "e"}])));
        assert_eq!(c, CwErrorCode::MissingParameter);
        let mut both = q("a", 60, "Sum");
        both["Expression"] = "a*2".into();
        let (c, _) = code(gmd(serde_json::json!([both])));
        assert_eq!(c, CwErrorCode::InvalidParameterCombination);

        let (c, m) = code(decode(CwProtocol::Json, "GetMetricData", None, b"{}"));
        assert_eq!(
            (c, m.as_str()),
            (
                CwErrorCode::MissingParameter,
                "The parameter MetricDataQueries is required."
            )
        );
        let body = serde_json::json!({"MetricDataQueries": [q("a", 60, "Sum")], "StartTime": 5, "EndTime": 5});
        let (c, _) = code(decode(
            CwProtocol::Json,
            "GetMetricData",
            None,
            body.to_string().as_bytes(),
        ));
        assert_eq!(c, CwErrorCode::ValidationError);
        let body = serde_json::json!({"MetricDataQueries": [q("a", 60, "Sum")], "StartTime": 5});
        let (c, m) = code(decode(
            CwProtocol::Json,
            "GetMetricData",
            None,
            body.to_string().as_bytes(),
        ));
        assert_eq!(
            (c, m.as_str()),
            (
                CwErrorCode::MissingParameter,
                "The parameter EndTime is required."
            )
        );
    }

    #[test]
    fn query_form_decodes_to_the_same_request_as_json() {
        let form = "Action=GetMetricData&Version=2010-08-01\
            &MetricDataQueries.member.1.Id=sent\
            &MetricDataQueries.member.1.MetricStat.Metric.Namespace=AWS%2FSQS\
            &MetricDataQueries.member.1.MetricStat.Metric.MetricName=NumberOfMessagesSent\
            &MetricDataQueries.member.1.MetricStat.Metric.Dimensions.member.1.Name=QueueName\
            &MetricDataQueries.member.1.MetricStat.Metric.Dimensions.member.1.Value=q\
            &MetricDataQueries.member.1.MetricStat.Period=60\
            &MetricDataQueries.member.1.MetricStat.Stat=Sum\
            &MetricDataQueries.member.1.ReturnData=true\
            &StartTime=2026-04-20T20%3A20%3A00Z&EndTime=2026-04-20T20%3A30%3A00Z";
        let from_query = decode(CwProtocol::Query, "GetMetricData", None, form.as_bytes()).unwrap();
        let mut one = q("sent", 60, "Sum");
        one["ReturnData"] = true.into();
        assert_eq!(from_query, gmd(serde_json::json!([one])).unwrap());
    }

    #[test]
    fn get_metric_statistics_needs_statistics() {
        let base = serde_json::json!({
            "Namespace": "AWS/SQS", "MetricName": "NumberOfMessagesSent",
            "StartTime": 1_776_716_400, "EndTime": 1_776_717_000, "Period": 60,
        });
        let dec = |v: &serde_json::Value| {
            decode(
                CwProtocol::Json,
                "GetMetricStatistics",
                None,
                v.to_string().as_bytes(),
            )
        };
        assert_eq!(code(dec(&base)).0, CwErrorCode::MissingParameter);
        let mut with = base.clone();
        with["Statistics"] = serde_json::json!(["Sum", "Maximum"]);
        let CwRequest::GetMetricStatistics(i) = dec(&with).unwrap() else {
            panic!()
        };
        assert_eq!(i.statistics, vec![Statistic::Sum, Statistic::Maximum]);
        with["Statistics"] = serde_json::json!(["Median"]);
        assert_eq!(code(dec(&with)).0, CwErrorCode::InvalidParameterValue);
        with["Statistics"] = serde_json::json!(["Sum"]);
        with["Period"] = 30.into();
        assert_eq!(code(dec(&with)).0, CwErrorCode::InvalidParameterValue);
        with["Period"] = 60.into();
        with["EndTime"] = 1.into();
        assert_eq!(code(dec(&with)).0, CwErrorCode::InvalidParameterValue);
        assert_eq!(
            code(decode(CwProtocol::Json, "PutMetricData", None, b"{}")).0,
            CwErrorCode::InvalidAction
        );
    }
}
