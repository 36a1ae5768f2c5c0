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
        .map(|(id, metric, stat)| {
            MetricDataQuery::builder()
                .id(*id)
                .metric_stat(
                    MetricStat::builder()
                        .metric(
                            Metric::builder()
                                .namespace("AWS/SQS")
                                .metric_name(*metric)
                                .dimensions(
                                    Dimension::builder().name("QueueName").value(&name).build(),
                                )
                                .build(),
                        )
                        .period(period)
                        .stat(*stat)
                        .build(),
                )
                .return_data(true)
                .build()
        })
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
