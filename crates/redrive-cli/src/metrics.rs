//! `redrive metrics QUEUE`: a queue's minute history (Sent, Received, Deleted, empty receives,
//! Visible, NotVisible, age of the oldest message, DLQ arrivals) from a Redrive server's
//! `GET /_redrive/v1/queues/{name}/metrics` (see docs/metrics.md, "Minute history"), or from
//! CloudWatch (`AWS/SQS`, [`crate::cloudwatch`]) on AWS, on an endpoint without that API, or
//! with `--source cloudwatch`.

use anyhow::{Result, anyhow, bail};
use serde::Serialize;
use serde_json::Value;

use crate::client::Conn;
use crate::util::{format_ts, render_csv, render_table};

/// What to read.
#[derive(Debug, Clone)]
pub struct MetricsPlan {
    /// Queue name (or URL: its last path segment is the name).
    pub queue: String,
    /// As given: an age (`2h`), RFC 3339, a date, or epoch seconds / ms.
    pub since: String,
    pub until: Option<String>,
    /// Seconds, a multiple of 60.
    pub period_secs: u64,
    pub source: MetricsSource,
}

/// Where the minute series come from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum MetricsSource {
    /// A Redrive server's history API when the endpoint has one, CloudWatch otherwise (AWS).
    #[default]
    Auto,
    /// The Redrive history API only.
    Redrive,
    /// CloudWatch's `GetMetricData` (AWS, or a Redrive server's CloudWatch API).
    CloudWatch,
}

impl MetricsPlan {
    /// Checks the times and the period before anything is sent.
    pub fn validate(&self) -> Result<()> {
        let now = crate::util::now_ms();
        let since = redrive_select::schedule::parse_instant(&self.since, now)
            .map_err(|e| anyhow!("--since: {e}"))?;
        if let Some(u) = &self.until {
            let until = redrive_select::schedule::parse_instant(u, now)
                .map_err(|e| anyhow!("--until: {e}"))?;
            if until <= since {
                bail!("--until must be later than --since");
            }
        }
        if self.period_secs < 60 || !self.period_secs.is_multiple_of(60) {
            bail!(
                "--period must be a whole number of minutes (1m, 5m, 1h), not {}s",
                self.period_secs
            );
        }
        Ok(())
    }
}

/// One period of the table: counters are sums over the period, gauges the maximum sample
/// (as the seed's CloudWatch query reads them).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricsRow {
    /// Start of the period, epoch ms.
    pub timestamp: u64,
    pub sent: u64,
    pub received: u64,
    pub deleted: u64,
    pub empty_receives: u64,
    pub visible: u64,
    pub not_visible: u64,
    /// Seconds.
    pub age_of_oldest: u64,
    pub dead_letter_arrivals: u64,
}

/// The answer: the rows, and the server's full series (every metric and statistic).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricsTable {
    pub queue: String,
    pub since: u64,
    pub until: u64,
    pub period: u64,
    pub rows: Vec<MetricsRow>,
    /// The server's answer as is (`metrics`: one series per metric with Sum, Average,
    /// Minimum, Maximum, SampleCount per period).
    pub series: Value,
}

const COLUMNS: [&str; 9] = [
    "time",
    "Sent",
    "Received",
    "Deleted",
    "EmptyReceives",
    "Visible",
    "NotVisible",
    "AgeOfOldest",
    "DLQArrivals",
];

impl MetricsTable {
    fn cells(r: &MetricsRow) -> Vec<String> {
        vec![
            format_ts(r.timestamp as i64),
            r.sent.to_string(),
            r.received.to_string(),
            r.deleted.to_string(),
            r.empty_receives.to_string(),
            r.visible.to_string(),
            r.not_visible.to_string(),
            r.age_of_oldest.to_string(),
            r.dead_letter_arrivals.to_string(),
        ]
    }

    pub fn to_table(&self) -> String {
        let rows: Vec<Vec<String>> = self.rows.iter().map(Self::cells).collect();
        let mut out = format!(
            "{}: {} → {}, per {}\n",
            self.queue,
            format_ts(self.since as i64),
            format_ts(self.until as i64),
            period_text(self.period)
        );
        if rows.is_empty() {
            out.push_str("(no history in this range)\n");
        } else {
            out.push_str(&render_table(&COLUMNS, &rows));
        }
        out
    }

    pub fn to_csv(&self) -> String {
        let rows: Vec<Vec<String>> = self.rows.iter().map(Self::cells).collect();
        render_csv(&COLUMNS, &rows)
    }

    pub fn to_ndjson(&self) -> String {
        self.rows
            .iter()
            .map(|r| serde_json::to_string(r).unwrap_or_default() + "\n")
            .collect()
    }
}

fn period_text(secs: u64) -> String {
    if secs.is_multiple_of(3600) {
        format!("{}h", secs / 3600)
    } else {
        format!("{}m", secs / 60)
    }
}

/// The series' points as `timestamp → statistic`.
fn points<'a>(v: &'a Value, metric: &str) -> impl Iterator<Item = (u64, &'a Value)> {
    v["metrics"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(move |m| m["name"] == metric)
        .flat_map(|m| m["points"].as_array().into_iter().flatten())
        .filter_map(|p| Some((p["timestamp"].as_u64()?, p)))
}

/// Builds the rows from the server's answer.
pub fn rows_from(v: &Value) -> Vec<MetricsRow> {
    let mut rows: std::collections::BTreeMap<u64, MetricsRow> = Default::default();
    let mut fill = |metric: &str, stat: &str, set: fn(&mut MetricsRow, u64)| {
        for (ts, p) in points(v, metric) {
            let row = rows.entry(ts).or_insert_with(|| MetricsRow {
                timestamp: ts,
                ..Default::default()
            });
            set(row, p[stat].as_f64().unwrap_or(0.0).round() as u64);
        }
    };
    fill("NumberOfMessagesSent", "Sum", |r, x| r.sent = x);
    fill("NumberOfMessagesReceived", "Sum", |r, x| r.received = x);
    fill("NumberOfMessagesDeleted", "Sum", |r, x| r.deleted = x);
    fill("NumberOfEmptyReceives", "Sum", |r, x| r.empty_receives = x);
    fill("ApproximateNumberOfMessagesVisible", "Maximum", |r, x| {
        r.visible = x
    });
    fill(
        "ApproximateNumberOfMessagesNotVisible",
        "Maximum",
        |r, x| r.not_visible = x,
    );
    fill("ApproximateAgeOfOldestMessage", "Maximum", |r, x| {
        r.age_of_oldest = x
    });
    fill("NumberOfDeadLetterArrivals", "Sum", |r, x| {
        r.dead_letter_arrivals = x
    });
    rows.into_values().collect()
}

/// The queue name of a name or URL.
pub(crate) fn queue_name(queue: &str) -> String {
    queue
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_string()
}

/// Reads the queue's history from the plan's source.
pub async fn metrics(conn: &Conn, plan: &MetricsPlan) -> Result<MetricsTable> {
    plan.validate()?;
    match (plan.source, conn.endpoint_url.as_deref()) {
        (MetricsSource::CloudWatch, _) | (MetricsSource::Auto, None) => {
            crate::cloudwatch::metrics(conn, plan).await
        }
        (MetricsSource::Redrive, None) => bail!(
            "--source redrive reads the minute history of a Redrive server: give --endpoint-url"
        ),
        (source, Some(endpoint)) => match from_redrive(conn, plan, endpoint).await? {
            Some(t) => Ok(t),
            None if source == MetricsSource::Auto => crate::cloudwatch::metrics(conn, plan).await,
            None => bail!(
                "this endpoint ({endpoint}) has no Redrive minute-history API (/_redrive/v1/queues/…/metrics); try --source cloudwatch"
            ),
        },
    }
}

/// The Redrive history API's answer; `None` when the endpoint has no such API.
async fn from_redrive(
    conn: &Conn,
    plan: &MetricsPlan,
    endpoint: &str,
) -> Result<Option<MetricsTable>> {
    let name = queue_name(&plan.queue);
    let base = endpoint.trim_end_matches('/');
    let url = format!("{base}/_redrive/v1/queues/{}/metrics", escape(&name));
    let period = plan.period_secs.to_string();
    let mut query = vec![("since", plan.since.as_str()), ("period", period.as_str())];
    if let Some(u) = &plan.until {
        query.push(("until", u.as_str()));
    }
    let resp = conn
        .extension_request(reqwest::Method::GET, &url, &query, None)
        .await?;
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    let v: Option<Value> = serde_json::from_str(&text).ok();
    match (status, v) {
        (200, Some(v)) if v.get("metrics").is_some() => Ok(Some(MetricsTable {
            queue: v["queue"].as_str().unwrap_or(&name).to_string(),
            since: v["since"].as_u64().unwrap_or_default(),
            until: v["until"].as_u64().unwrap_or_default(),
            period: v["period"].as_u64().unwrap_or(plan.period_secs),
            rows: rows_from(&v),
            series: v["metrics"].clone(),
        })),
        (_, Some(v)) if v["__type"].as_str().is_some() => {
            let code = v["__type"].as_str().unwrap_or_default();
            let code = code.rsplit('#').next().unwrap_or(code);
            if code == "QueueDoesNotExist" {
                bail!("queue `{name}` does not exist ({endpoint})");
            }
            let msg = v["message"].as_str().unwrap_or("(no message)");
            bail!("the server refused ({status} {code}): {msg}")
        }
        _ => Ok(None),
    }
}

fn escape(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Minutes shown before and after the burst minute.
pub use redrive_select::stats::{WINDOW_AFTER_MIN, WINDOW_BEFORE_MIN};

/// Reads the minute series of `queues` around `burst_ms` (a burst minute, epoch ms). A queue
/// whose series cannot be read is left out and the reason returned.
pub async fn window_around(
    conn: &Conn,
    queues: &[String],
    burst_ms: u64,
) -> (Vec<MetricsTable>, Option<String>) {
    let (since, until) = redrive_select::stats::burst_window(burst_ms);
    let mut tables = Vec::new();
    let mut notes = Vec::new();
    for q in queues {
        let plan = MetricsPlan {
            queue: q.clone(),
            since: format_ts(since as i64),
            until: Some(format_ts(until as i64)),
            period_secs: 60,
            source: MetricsSource::Auto,
        };
        match metrics(conn, &plan).await {
            Ok(t) => tables.push(t),
            Err(e) => notes.push(format!("{q}: {e:#}")),
        }
    }
    let note =
        (!notes.is_empty()).then(|| format!("minute history not read: {}", notes.join("; ")));
    (tables, note)
}

/// The minute with the most dead-letter arrivals in the DLQ's last `hours` of history, if any
/// message arrived (epoch ms).
pub async fn dominant_dead_letter_minute(
    conn: &Conn,
    dlq: &str,
    hours: u64,
) -> Result<Option<u64>> {
    let plan = MetricsPlan {
        queue: dlq.to_string(),
        since: format!("{hours}h"),
        until: None,
        period_secs: 60,
        source: MetricsSource::Auto,
    };
    let t = metrics(conn, &plan).await?;
    Ok(redrive_select::stats::dominant_dead_letter_minute(
        t.rows.iter().map(|r| (r.timestamp, r.dead_letter_arrivals)),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rows_take_sums_of_counters_and_maxima_of_gauges() {
        let p = |ts: u64, sum: f64, max: f64| json!({"timestamp": ts, "Sum": sum, "Maximum": max});
        let v = json!({"metrics": [
            {"name": "NumberOfMessagesSent", "points": [p(0, 5.0, 3.0), p(60_000, 1.0, 1.0)]},
            {"name": "ApproximateNumberOfMessagesNotVisible", "points": [p(0, 7.0, 4.0)]},
            {"name": "NumberOfDeadLetterArrivals", "points": [p(60_000, 2.0, 2.0)]},
        ]});
        let rows = rows_from(&v);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].sent, 5);
        assert_eq!(rows[0].not_visible, 4);
        assert_eq!(rows[1].dead_letter_arrivals, 2);
        let t = MetricsTable {
            queue: "q".into(),
            since: 0,
            until: 120_000,
            period: 60,
            rows,
            series: Value::Null,
        };
        let text = t.to_table();
        assert!(text.contains("1970-01-01T00:01:00Z"), "{text}");
        assert!(text.lines().nth(1).unwrap().starts_with("time"), "{text}");
    }

    #[test]
    fn the_period_must_be_whole_minutes() {
        let plan = |since: &str, period| MetricsPlan {
            queue: "q".into(),
            since: since.into(),
            until: None,
            period_secs: period,
            source: MetricsSource::Auto,
        };
        assert!(plan("2h", 60).validate().is_ok());
        assert!(plan("2h", 30).validate().is_err());
        assert!(plan("2h", 90).validate().is_err());
        assert!(plan("yesterday-ish", 60).validate().is_err());
    }
}
