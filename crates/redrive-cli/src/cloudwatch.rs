//! `redrive metrics` from CloudWatch (`AWS/SQS`, dimension `QueueName`) through
//! `aws-sdk-cloudwatch`: one `GetMetricData` with a query per column (counters `Sum`, gauges
//! `Maximum`, as the seed's Step 5 reads them), paged by `NextToken`, into the same
//! [`MetricsTable`] as a Redrive server's history API.

use std::collections::BTreeMap;

use anyhow::{Result, anyhow};
use aws_sdk_cloudwatch::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{Dimension, Metric, MetricDataQuery, MetricStat, ScanBy};
use serde_json::{Value, json};

use crate::client::Conn;
use crate::metrics::{MetricsPlan, MetricsRow, MetricsTable, queue_name};

/// Column → (query id, CloudWatch metric, statistic).
const QUERIES: [(&str, &str, &str); 8] = [
    ("sent", "NumberOfMessagesSent", "Sum"),
    ("received", "NumberOfMessagesReceived", "Sum"),
    ("deleted", "NumberOfMessagesDeleted", "Sum"),
    ("empty", "NumberOfEmptyReceives", "Sum"),
    ("visible", "ApproximateNumberOfMessagesVisible", "Maximum"),
    (
        "notvisible",
        "ApproximateNumberOfMessagesNotVisible",
        "Maximum",
    ),
    ("age", "ApproximateAgeOfOldestMessage", "Maximum"),
    // Redrive's; AWS publishes no such metric, so the column stays 0 there.
    ("dlqarrivals", "NumberOfDeadLetterArrivals", "Sum"),
];

/// One `MetricStat` query of an `AWS/SQS` metric of queue `queue`.
fn sqs_query(id: &str, metric: &str, stat: &str, queue: &str, period: i32) -> MetricDataQuery {
    MetricDataQuery::builder()
        .id(id)
        .metric_stat(
            MetricStat::builder()
                .metric(
                    Metric::builder()
                        .namespace("AWS/SQS")
                        .metric_name(metric)
                        .dimensions(Dimension::builder().name("QueueName").value(queue).build())
                        .build(),
                )
                .period(period)
                .stat(stat)
                .build(),
        )
        .return_data(true)
        .build()
}

fn set(row: &mut MetricsRow, id: &str, value: u64) {
    match id {
        "sent" => row.sent = value,
        "received" => row.received = value,
        "deleted" => row.deleted = value,
        "empty" => row.empty_receives = value,
        "visible" => row.visible = value,
        "notvisible" => row.not_visible = value,
        "age" => row.age_of_oldest = value,
        _ => row.dead_letter_arrivals = value,
    }
}

fn cloudwatch_error<E>(e: SdkError<E>, endpoint: Option<&str>) -> anyhow::Error
where
    E: std::error::Error + ProvideErrorMetadata + Send + Sync + 'static,
{
    let where_ = endpoint.unwrap_or("AWS");
    match &e {
        SdkError::ServiceError(se) => match se.err().code() {
            Some(code) => anyhow!(
                "CloudWatch error ({where_}): {code}: {}",
                se.err().message().unwrap_or("(no message)")
            ),
            None => anyhow!(
                "CloudWatch error ({where_}): HTTP {} with no error code (does the endpoint serve CloudWatch's RPC v2 CBOR protocol?)",
                se.raw().status().as_u16()
            ),
        },
        _ => {
            let text = DisplayErrorContext(&e).to_string();
            let text = text.split(" (DispatchFailure").next().unwrap_or(&text);
            let text = text.split(" (TimeoutError").next().unwrap_or(text);
            anyhow!(
                "cannot read CloudWatch ({where_}): {}",
                text.split_whitespace().collect::<Vec<_>>().join(" ")
            )
        }
    }
}

/// The queue's minute table from CloudWatch.
pub async fn metrics(conn: &Conn, plan: &MetricsPlan) -> Result<MetricsTable> {
    let now = crate::util::now_ms();
    let since = redrive_select::schedule::parse_instant(&plan.since, now)
        .map_err(|e| anyhow!("--since: {e}"))?;
    let until = match &plan.until {
        Some(u) => {
            redrive_select::schedule::parse_instant(u, now).map_err(|e| anyhow!("--until: {e}"))?
        }
        None => now,
    };
    let name = queue_name(&plan.queue);
    let period = i32::try_from(plan.period_secs).map_err(|_| anyhow!("--period is too long"))?;
    let queries: Vec<MetricDataQuery> = QUERIES
        .iter()
        .map(|(id, metric, stat)| sqs_query(id, metric, stat, &name, period))
        .collect();
    let mut rows: BTreeMap<i64, MetricsRow> = BTreeMap::new();
    let mut series: BTreeMap<&str, Vec<Value>> = BTreeMap::new();
    let mut token = None;
    loop {
        let out = conn
            .cloudwatch
            .get_metric_data()
            .set_metric_data_queries(Some(queries.clone()))
            .start_time(DateTime::from_millis(since))
            .end_time(DateTime::from_millis(until))
            .scan_by(ScanBy::TimestampAscending)
            .set_next_token(token.take())
            .send()
            .await
            .map_err(|e| cloudwatch_error(e, conn.endpoint_url.as_deref()))?;
        for r in out.metric_data_results() {
            let Some(&(id, metric, stat)) = QUERIES.iter().find(|q| Some(q.0) == r.id()) else {
                continue;
            };
            for (t, v) in r.timestamps().iter().zip(r.values()) {
                let Ok(ts) = t.to_millis() else { continue };
                let row = rows.entry(ts).or_insert_with(|| MetricsRow {
                    timestamp: ts.max(0) as u64,
                    ..Default::default()
                });
                set(row, id, v.max(0.0).round() as u64);
                series
                    .entry(metric)
                    .or_default()
                    .push(json!({"timestamp": ts, stat: v}));
            }
        }
        match out.next_token() {
            Some(t) if !t.is_empty() => token = Some(t.to_string()),
            _ => break,
        }
    }
    Ok(MetricsTable {
        queue: name,
        since: since.max(0) as u64,
        until: until.max(0) as u64,
        period: plan.period_secs,
        rows: rows.into_values().collect(),
        series: Value::Array(
            series
                .into_iter()
                .map(|(name, points)| json!({"name": name, "source": "cloudwatch", "points": points}))
                .collect(),
        ),
    })
}

/// What the DLQ's CloudWatch alarms say about when alerting started, against when the backlog
/// did (the seed's "check whether the alarm itself is new").
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AlarmCheck {
    pub alarm: String,
    pub state: String,
    /// From the alarm's `ConfigurationUpdate` history (`Create`), epoch ms; `None` when the
    /// history no longer holds it (CloudWatch keeps 30 days) or cannot be read.
    pub created_ms: Option<i64>,
    /// `AlarmConfigurationUpdatedTimestamp`.
    pub configured_ms: Option<i64>,
    /// The first transition to ALARM in the history.
    pub first_alarm_ms: Option<i64>,
    /// The DLQ's visible messages just before the alarm was created (CloudWatch, Maximum).
    pub visible_at_creation: Option<u64>,
    /// `true`: the backlog already existed when the alarm was created.
    pub pre_existing_backlog: Option<bool>,
    pub verdict: String,
}

/// Minutes before an alarm's creation searched for the DLQ's depth.
const BEFORE_CREATION_MINUTES: i64 = 5;

/// The alarms on a queue's metrics (namespace `AWS/SQS`, dimension `QueueName` = `queue`).
async fn queue_alarms_raw(
    conn: &Conn,
    queue: &str,
) -> Result<Vec<aws_sdk_cloudwatch::types::MetricAlarm>> {
    let endpoint = conn.endpoint_url.as_deref();
    let mut alarms = Vec::new();
    let mut token = None;
    loop {
        let out = conn
            .cloudwatch
            .describe_alarms()
            .max_records(100)
            .set_next_token(token.take())
            .send()
            .await
            .map_err(|e| cloudwatch_error(e, endpoint))?;
        alarms.extend(
            out.metric_alarms()
                .iter()
                .filter(|a| {
                    a.namespace() == Some("AWS/SQS")
                        && a.dimensions()
                            .iter()
                            .any(|d| d.name() == Some("QueueName") && d.value() == Some(queue))
                })
                .cloned(),
        );
        match out.next_token() {
            Some(t) if !t.is_empty() => token = Some(t.to_string()),
            _ => break,
        }
    }
    Ok(alarms)
}

/// One alarm on a queue's metric, for the console.
#[derive(Debug, Clone)]
pub struct QueueAlarm {
    pub name: String,
    pub metric: String,
    pub comparison: String,
    pub threshold: f64,
    pub period: i32,
    pub state: String,
    pub reason: String,
}

/// The alarms on a queue's metrics with their state.
pub async fn queue_alarms(conn: &Conn, queue: &str) -> Result<Vec<QueueAlarm>> {
    Ok(queue_alarms_raw(conn, queue)
        .await?
        .into_iter()
        .map(|a| QueueAlarm {
            name: a.alarm_name().unwrap_or_default().to_string(),
            metric: a.metric_name().unwrap_or_default().to_string(),
            comparison: a
                .comparison_operator()
                .map(|c| c.as_str().to_string())
                .unwrap_or_default(),
            threshold: a.threshold().unwrap_or_default(),
            period: a.period().unwrap_or_default(),
            state: a
                .state_value()
                .map(|s| s.as_str().to_string())
                .unwrap_or_default(),
            reason: a.state_reason().unwrap_or_default().to_string(),
        })
        .collect())
}

/// `PutMetricAlarm`: `metric` of `queue` (Maximum over `period` seconds, one period)
/// greater than or equal to `threshold`.
pub async fn put_queue_alarm(
    conn: &Conn,
    queue: &str,
    name: &str,
    metric: &str,
    threshold: f64,
    period: i32,
) -> Result<()> {
    use aws_sdk_cloudwatch::types::{ComparisonOperator, Statistic};
    conn.cloudwatch
        .put_metric_alarm()
        .alarm_name(name)
        .namespace("AWS/SQS")
        .metric_name(metric)
        .dimensions(Dimension::builder().name("QueueName").value(queue).build())
        .statistic(Statistic::Maximum)
        .period(period)
        .evaluation_periods(1)
        .threshold(threshold)
        .comparison_operator(ComparisonOperator::GreaterThanOrEqualToThreshold)
        .send()
        .await
        .map_err(|e| cloudwatch_error(e, conn.endpoint_url.as_deref()))?;
    Ok(())
}

/// `DeleteAlarms` of one alarm.
pub async fn delete_alarm(conn: &Conn, name: &str) -> Result<()> {
    conn.cloudwatch
        .delete_alarms()
        .alarm_names(name)
        .send()
        .await
        .map_err(|e| cloudwatch_error(e, conn.endpoint_url.as_deref()))?;
    Ok(())
}

/// `DescribeAlarmHistory` of one alarm, newest first: (epoch ms, summary).
pub async fn alarm_history(conn: &Conn, name: &str) -> Result<Vec<(i64, String)>> {
    let out = conn
        .cloudwatch
        .describe_alarm_history()
        .alarm_name(name)
        .scan_by(ScanBy::TimestampDescending)
        .max_records(50)
        .send()
        .await
        .map_err(|e| cloudwatch_error(e, conn.endpoint_url.as_deref()))?;
    Ok(out
        .alarm_history_items()
        .iter()
        .map(|i| {
            (
                i.timestamp().and_then(|t| t.to_millis().ok()).unwrap_or(0),
                i.history_summary().unwrap_or_default().to_string(),
            )
        })
        .collect())
}

/// The DLQ's alarms (namespace `AWS/SQS`, dimension `QueueName` = the DLQ) and, for each, its
/// creation and first ALARM from `DescribeAlarmHistory`, compared with the DLQ's depth then.
/// `oldest_ms` (when the oldest message still in the DLQ arrived, if known) decides when
/// CloudWatch has no depth for the minutes before creation.
pub async fn dlq_alarm_checks(
    conn: &Conn,
    dlq: &str,
    oldest_ms: Option<i64>,
) -> Result<Vec<AlarmCheck>> {
    let endpoint = conn.endpoint_url.as_deref();
    let alarms = queue_alarms_raw(conn, dlq).await?;
    let mut checks = Vec::new();
    for a in alarms {
        let name = a.alarm_name().unwrap_or_default().to_string();
        let configured_ms = a
            .alarm_configuration_updated_timestamp()
            .and_then(|t| t.to_millis().ok());
        let history = |kind: aws_sdk_cloudwatch::types::HistoryItemType| {
            conn.cloudwatch
                .describe_alarm_history()
                .alarm_name(&name)
                .history_item_type(kind)
                .scan_by(ScanBy::TimestampAscending)
                .max_records(100)
                .send()
        };
        use aws_sdk_cloudwatch::types::HistoryItemType;
        let (created_ms, first_alarm_ms, history_note) =
            match history(HistoryItemType::ConfigurationUpdate).await {
                Ok(cfg) => {
                    let created = cfg.alarm_history_items().iter().find_map(|i| {
                        let data: Value = serde_json::from_str(i.history_data()?).ok()?;
                        (data["type"] == "Create")
                            .then(|| i.timestamp().and_then(|t| t.to_millis().ok()))
                            .flatten()
                    });
                    let first_alarm = match history(HistoryItemType::StateUpdate).await {
                        Ok(s) => s.alarm_history_items().iter().find_map(|i| {
                            i.history_summary()
                                .is_some_and(|s| s.ends_with(" to ALARM"))
                                .then(|| i.timestamp().and_then(|t| t.to_millis().ok()))
                                .flatten()
                        }),
                        Err(_) => None,
                    };
                    (created, first_alarm, None)
                }
                Err(e) => (
                    None,
                    None,
                    Some(format!(
                        "alarm history not read: {}",
                        cloudwatch_error(e, endpoint)
                    )),
                ),
            };
        let visible_at_creation = match created_ms {
            Some(c) => depth_before(conn, dlq, c).await.ok().flatten(),
            None => None,
        };
        let pre_existing = created_ms.and_then(|c| match visible_at_creation {
            Some(v) => Some(v > 0),
            None => oldest_ms.map(|o| o < c),
        });
        let state = a
            .state_value()
            .map(|s| s.as_str().to_string())
            .unwrap_or_default();
        let at = |ms: i64| crate::util::format_ts(ms);
        let verdict = match (created_ms, pre_existing) {
            (Some(c), Some(true)) => format!(
                "alarm `{name}` created at {} on a backlog that already existed{}{}: new alerting on old residue, not necessarily a fresh incident",
                at(c),
                visible_at_creation
                    .map(|v| format!(" ({v} messages visible just before)"))
                    .unwrap_or_else(|| " (its oldest message is older than the alarm)".into()),
                first_alarm_ms
                    .map(|f| format!("; first ALARM at {}", at(f)))
                    .unwrap_or_default()
            ),
            (Some(c), Some(false)) => format!(
                "alarm `{name}` created at {} while the DLQ was empty{}",
                at(c),
                first_alarm_ms
                    .map(|f| format!("; its ALARM at {} means new dead letters", at(f)))
                    .unwrap_or_default()
            ),
            (Some(c), None) => format!(
                "alarm `{name}` created at {}; the DLQ's depth then is unknown",
                at(c)
            ),
            (None, _) => match (&history_note, configured_ms) {
                (Some(n), Some(t)) => {
                    format!("alarm `{name}` last configured at {} ({n})", at(t))
                }
                (None, Some(t)) => format!(
                    "alarm `{name}` last configured at {}; its creation is older than the alarm history keeps (30 days)",
                    at(t)
                ),
                (_, None) => format!("alarm `{name}`: no configuration time"),
            },
        };
        checks.push(AlarmCheck {
            alarm: name,
            state,
            created_ms,
            configured_ms,
            first_alarm_ms,
            visible_at_creation,
            pre_existing_backlog: pre_existing,
            verdict,
        });
    }
    Ok(checks)
}

/// The DLQ's largest `ApproximateNumberOfMessagesVisible` in the minutes just before `at_ms`
/// (the minute of `at_ms` excluded); `None` when CloudWatch has no datapoint there.
async fn depth_before(conn: &Conn, dlq: &str, at_ms: i64) -> Result<Option<u64>> {
    let minute = at_ms.div_euclid(60_000) * 60_000;
    let out = conn
        .cloudwatch
        .get_metric_data()
        .metric_data_queries(sqs_query(
            "visible",
            "ApproximateNumberOfMessagesVisible",
            "Maximum",
            dlq,
            60,
        ))
        .start_time(DateTime::from_millis(
            minute - BEFORE_CREATION_MINUTES * 60_000,
        ))
        .end_time(DateTime::from_millis(minute))
        .send()
        .await
        .map_err(|e| cloudwatch_error(e, conn.endpoint_url.as_deref()))?;
    Ok(out
        .metric_data_results()
        .iter()
        .flat_map(|r| r.values().iter().copied())
        .fold(None, |m: Option<u64>, v| {
            Some(m.unwrap_or(0).max(v.max(0.0).round() as u64))
        }))
}
