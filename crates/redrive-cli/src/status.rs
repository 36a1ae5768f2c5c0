//! `redrive status`: a queue and its DLQ side by side, with a plain-language reading.

use std::time::Duration;

use anyhow::Result;
use aws_sdk_sqs::types::QueueAttributeName;
use serde::Serialize;
use serde_json::Value;

use crate::client::{Conn, QueueRef, sdk_error};
use crate::source::{Source, browse_info, dead_letter_sources};
use crate::util::{
    Record, format_age, format_ts, now_ms, record_json, records_to_csv, render_table,
};

/// What one queue looks like right now.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct QueueState {
    pub name: String,
    pub url: String,
    pub role: &'static str,
    pub visible: u64,
    pub in_flight: u64,
    pub delayed: u64,
    /// Seconds since the oldest message was enqueued (only known on our server).
    pub oldest_age_secs: Option<i64>,
    pub dead_letter_queue: Option<String>,
    pub max_receive_count: Option<u64>,
    pub dead_letter_sources: Vec<String>,
    #[serde(skip)]
    browse: bool,
}

/// Residue vs growth vs healthy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    Healthy,
    OldResidue,
    ActiveGrowth,
    Unknown,
    NoDlq,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Reading {
    pub verdict: Verdict,
    pub explanation: String,
    pub newest_dead_lettered_at: Option<String>,
    pub watch: Option<WatchResult>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WatchResult {
    pub seconds: u64,
    pub samples: usize,
    pub dlq_start: u64,
    pub dlq_end: u64,
    pub dlq_max: u64,
    pub sources_start: u64,
    pub sources_end: u64,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    pub queues: Vec<QueueState>,
    pub reading: Reading,
    /// The minute with the most dead-letter arrivals in the last 24 h (see
    /// [`add_burst_window`]), epoch ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dead_letter_minute: Option<u64>,
    /// Per-minute series of the sources and the DLQ around that minute.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub burst_window: Vec<crate::metrics::MetricsTable>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub burst_window_note: Option<String>,
    /// The DLQ's CloudWatch alarms against its backlog (see [`add_alarm_checks`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub alarms: Vec<crate::cloudwatch::AlarmCheck>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alarms_note: Option<String>,
}

/// Hours of DLQ history searched for the dominant dead-letter minute.
const DEAD_LETTER_SEARCH_HOURS: u64 = 24;

/// Adds the burst window to a status: the DLQ's dominant dead-letter minute of the last 24 h
/// (from its minute history, or CloudWatch on AWS) and the sources' and DLQ's minute series
/// around it. A history that cannot be read leaves a note, never an error.
pub async fn add_burst_window(conn: &Conn, st: &mut Status) {
    let Some(dlq) = st
        .queues
        .iter()
        .find(|q| q.role == "dlq")
        .map(|q| q.name.clone())
    else {
        return;
    };
    match crate::metrics::dominant_dead_letter_minute(conn, &dlq, DEAD_LETTER_SEARCH_HOURS).await {
        Ok(Some(minute)) => {
            let mut queues: Vec<String> = st
                .queues
                .iter()
                .filter(|q| q.name != dlq)
                .map(|q| q.name.clone())
                .collect();
            queues.push(dlq);
            let (tables, note) = crate::metrics::window_around(conn, &queues, minute).await;
            st.dead_letter_minute = Some(minute);
            st.burst_window = tables;
            st.burst_window_note = note;
        }
        Ok(None) => {}
        Err(e) => st.burst_window_note = Some(format!("minute history not read: {e:#}")),
    }
}

/// Adds the DLQ's CloudWatch alarm checks to a status: for each alarm on the DLQ, when it was
/// created and first went to ALARM, and whether the backlog already existed then. An endpoint
/// without CloudWatch leaves a note, never an error.
pub async fn add_alarm_checks(conn: &Conn, st: &mut Status) {
    let Some(dlq) = st.queues.iter().find(|q| q.role == "dlq") else {
        return;
    };
    let oldest_ms = dlq
        .oldest_age_secs
        .map(|age| crate::util::now_ms() - age * 1000);
    let name = dlq.name.clone();
    match crate::cloudwatch::dlq_alarm_checks(conn, &name, oldest_ms).await {
        Ok(checks) => st.alarms = checks,
        Err(e) => st.alarms_note = Some(format!("CloudWatch alarms not read: {e:#}")),
    }
}

fn arn_name(arn: &str) -> String {
    arn.rsplit(':').next().unwrap_or(arn).to_string()
}

fn parse_policy(policy: &str) -> Option<(String, Option<u64>)> {
    let v: Value = serde_json::from_str(policy).ok()?;
    let arn = v.get("deadLetterTargetArn")?.as_str()?;
    let max = match v.get("maxReceiveCount") {
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.parse().ok(),
        _ => None,
    };
    Some((arn_name(arn), max))
}

async fn queue_state(conn: &Conn, q: &QueueRef) -> Result<QueueState> {
    let mut st = QueueState {
        name: q.name.clone(),
        url: q.url.clone(),
        role: "queue",
        visible: 0,
        in_flight: 0,
        delayed: 0,
        oldest_age_secs: None,
        dead_letter_queue: None,
        max_receive_count: None,
        dead_letter_sources: vec![],
        browse: false,
    };
    let policy;
    if let Some((_, info)) = browse_info(conn, q).await? {
        st.browse = true;
        st.visible = info.visible;
        st.in_flight = info.in_flight;
        st.delayed = info.delayed;
        st.oldest_age_secs = info.oldest_enqueued_at.map(|t| (now_ms() - t) / 1000);
        st.dead_letter_sources = info.dead_letter_sources;
        policy = info.attributes.get("RedrivePolicy").cloned();
    } else {
        let out = conn
            .sqs
            .get_queue_attributes()
            .queue_url(&q.url)
            .attribute_names(QueueAttributeName::All)
            .send()
            .await
            .map_err(|e| sdk_error(e, &q.name, conn.endpoint_url.as_deref()))?;
        let attrs = out.attributes().cloned().unwrap_or_default();
        let num = |n: QueueAttributeName| attrs.get(&n).and_then(|v| v.parse().ok()).unwrap_or(0);
        st.visible = num(QueueAttributeName::ApproximateNumberOfMessages);
        st.in_flight = num(QueueAttributeName::ApproximateNumberOfMessagesNotVisible);
        st.delayed = num(QueueAttributeName::ApproximateNumberOfMessagesDelayed);
        policy = attrs.get(&QueueAttributeName::RedrivePolicy).cloned();
        st.dead_letter_sources = dead_letter_sources(conn, q).await?;
    }
    if let Some((dlq, max)) = policy.as_deref().and_then(parse_policy) {
        st.dead_letter_queue = Some(dlq);
        st.max_receive_count = max;
    }
    st.role = if !st.dead_letter_sources.is_empty() {
        "dlq"
    } else if st.dead_letter_queue.is_some() {
        "source"
    } else {
        "queue"
    };
    Ok(st)
}

/// Options of `redrive status`.
pub struct StatusPlan {
    pub queue: String,
    pub watch: Option<Duration>,
    /// A dead letter newer than this means active growth (our server only).
    pub recent: Duration,
}

pub async fn status(conn: &Conn, plan: &StatusPlan) -> Result<Status> {
    let q = conn.resolve(&plan.queue).await?;
    let first = queue_state(conn, &q).await?;
    let mut sources = vec![];
    let dlq;
    if let Some(d) = first.dead_letter_queue.clone() {
        let dref = conn.resolve(&d).await?;
        dlq = Some(queue_state(conn, &dref).await?);
        sources.push(first);
    } else if first.role == "dlq" {
        for s in first.dead_letter_sources.clone() {
            let sref = conn.resolve(&s).await?;
            sources.push(queue_state(conn, &sref).await?);
        }
        dlq = Some(first);
    } else {
        return Ok(Status {
            queues: vec![first.clone()],
            reading: Reading {
                verdict: Verdict::NoDlq,
                explanation: format!(
                    "`{}` has no RedrivePolicy and no queue uses it as a DLQ",
                    first.name
                ),
                newest_dead_lettered_at: None,
                watch: None,
            },
            dead_letter_minute: None,
            burst_window: Vec::new(),
            burst_window_note: None,
            alarms: Vec::new(),
            alarms_note: None,
        });
    }
    let dlq = dlq.expect("set above");
    let watch = match plan.watch {
        Some(d) => Some(watch(conn, &dlq, &sources, d).await?),
        None => None,
    };
    let mut newest = None;
    if dlq.browse && dlq.visible + dlq.in_flight + dlq.delayed > 0 {
        let dref = QueueRef {
            name: dlq.name.clone(),
            url: dlq.url.clone(),
        };
        let src = Source::open(conn, &dref, 30).await?;
        src.scan(1_000_000, |m| {
            if let Some(t) = m.dead_lettered_at {
                newest = Some(newest.map_or(t, |n: i64| n.max(t)));
            }
        })
        .await?;
    }
    let reading = read_evidence(&dlq, &sources, newest, watch.clone(), plan.recent, now_ms());
    let mut queues = sources;
    queues.push(dlq);
    Ok(Status {
        queues,
        reading,
        dead_letter_minute: None,
        burst_window: Vec::new(),
        burst_window_note: None,
        alarms: Vec::new(),
        alarms_note: None,
    })
}

async fn watch(
    conn: &Conn,
    dlq: &QueueState,
    sources: &[QueueState],
    d: Duration,
) -> Result<WatchResult> {
    let interval = (d / 6).clamp(Duration::from_millis(200), Duration::from_secs(10));
    let start = std::time::Instant::now();
    let dref = QueueRef {
        name: dlq.name.clone(),
        url: dlq.url.clone(),
    };
    let srefs: Vec<QueueRef> = sources
        .iter()
        .map(|s| QueueRef {
            name: s.name.clone(),
            url: s.url.clone(),
        })
        .collect();
    let total = |s: &QueueState| s.visible + s.in_flight + s.delayed;
    let sources_start: u64 = sources.iter().map(total).sum();
    let (dlq_start, mut dlq_end, mut dlq_max, mut sources_end) =
        (total(dlq), total(dlq), total(dlq), sources_start);
    let mut samples = 1;
    while start.elapsed() < d {
        tokio::time::sleep(interval.min(d.saturating_sub(start.elapsed()))).await;
        let ds = queue_state(conn, &dref).await?;
        dlq_end = total(&ds);
        dlq_max = dlq_max.max(dlq_end);
        let mut s_sum = 0;
        for s in &srefs {
            s_sum += total(&queue_state(conn, s).await?);
        }
        sources_end = s_sum;
        samples += 1;
    }
    Ok(WatchResult {
        seconds: d.as_secs(),
        samples,
        dlq_start,
        dlq_end,
        dlq_max,
        sources_start,
        sources_end,
    })
}

/// The plain-language reading from the evidence at hand. Pure.
pub fn read_evidence(
    dlq: &QueueState,
    sources: &[QueueState],
    newest_dead_lettered: Option<i64>,
    watch: Option<WatchResult>,
    recent: Duration,
    now: i64,
) -> Reading {
    let dlq_total = dlq.visible + dlq.in_flight + dlq.delayed;
    let src_total: u64 = sources
        .iter()
        .map(|s| s.visible + s.in_flight + s.delayed)
        .sum();
    let src_note = if src_total == 0 {
        "the source queue is empty".to_string()
    } else {
        format!("the source queue holds {src_total} messages")
    };
    let newest_txt = newest_dead_lettered.map(format_ts);
    let mk = |verdict, explanation: String| Reading {
        verdict,
        explanation,
        newest_dead_lettered_at: newest_txt.clone(),
        watch: watch.clone(),
    };
    if let Some(w) = &watch
        && w.dlq_max > w.dlq_start
    {
        return mk(
            Verdict::ActiveGrowth,
            format!(
                "active growth: the DLQ grew from {} to {} during the {}s watch; {src_note}",
                w.dlq_start, w.dlq_max, w.seconds
            ),
        );
    }
    if dlq_total == 0 {
        return mk(
            Verdict::Healthy,
            format!("healthy: the DLQ is empty; {src_note}"),
        );
    }
    if let Some(t) = newest_dead_lettered {
        let age_ms = now - t;
        if age_ms <= recent.as_millis() as i64 {
            return mk(
                Verdict::ActiveGrowth,
                format!(
                    "active growth: the newest dead letter arrived {} ago ({}); {src_note}",
                    format_age(age_ms / 1000),
                    format_ts(t)
                ),
            );
        }
        return mk(
            Verdict::OldResidue,
            format!(
                "old residue: {dlq_total} messages, the newest dead-lettered {} ago ({}), nothing newer; {src_note}",
                format_age(age_ms / 1000),
                format_ts(t)
            ),
        );
    }
    if let Some(w) = &watch {
        return mk(
            Verdict::OldResidue,
            format!(
                "old residue: the DLQ stayed at {} messages during the {}s watch; {src_note}",
                w.dlq_end, w.seconds
            ),
        );
    }
    mk(
        Verdict::Unknown,
        format!(
            "{dlq_total} messages in the DLQ; this endpoint does not record when messages were dead-lettered, so use --watch DURATION to tell residue from growth; {src_note}"
        ),
    )
}

impl Status {
    /// One record per queue (the rows of the table) with the reading's verdict on each:
    /// `queue`, `url`, `role`, `visible`, `inFlight`, `delayed`, `oldestAgeSecs`,
    /// `deadLetterQueue`, `maxReceiveCount`, `deadLetterSources` (comma-separated), `verdict`.
    pub fn to_records(&self) -> Vec<Record> {
        let verdict = serde_json::to_value(self.reading.verdict).expect("a verdict serializes");
        self.queues
            .iter()
            .map(|q| {
                vec![
                    ("queue".into(), Value::from(q.name.clone())),
                    ("url".into(), Value::from(q.url.clone())),
                    ("role".into(), Value::from(q.role)),
                    ("visible".into(), Value::from(q.visible)),
                    ("inFlight".into(), Value::from(q.in_flight)),
                    ("delayed".into(), Value::from(q.delayed)),
                    ("oldestAgeSecs".into(), Value::from(q.oldest_age_secs)),
                    (
                        "deadLetterQueue".into(),
                        Value::from(q.dead_letter_queue.clone()),
                    ),
                    ("maxReceiveCount".into(), Value::from(q.max_receive_count)),
                    (
                        "deadLetterSources".into(),
                        Value::from(q.dead_letter_sources.join(",")),
                    ),
                    ("verdict".into(), verdict.clone()),
                ]
            })
            .collect()
    }

    /// One JSON object per queue.
    pub fn to_ndjson(&self) -> String {
        self.to_records()
            .iter()
            .map(|r| record_json(r) + "\n")
            .collect()
    }

    /// One CSV row per queue, with a header.
    pub fn to_csv(&self) -> String {
        records_to_csv(&self.to_records())
    }

    pub fn to_table(&self) -> String {
        let rows: Vec<Vec<String>> = self
            .queues
            .iter()
            .map(|q| {
                vec![
                    q.name.clone(),
                    q.role.to_string(),
                    q.visible.to_string(),
                    q.in_flight.to_string(),
                    q.delayed.to_string(),
                    q.oldest_age_secs
                        .map(format_age)
                        .unwrap_or_else(|| "n/a".into()),
                    match (&q.dead_letter_queue, q.max_receive_count) {
                        (Some(d), Some(m)) => format!("{d} (maxReceiveCount {m})"),
                        (Some(d), None) => d.clone(),
                        _ => q.dead_letter_sources.join(","),
                    },
                ]
            })
            .collect();
        let mut out = render_table(
            &[
                "queue",
                "role",
                "visible",
                "in flight",
                "delayed",
                "oldest",
                "dlq / sources",
            ],
            &rows,
        );
        out.push('\n');
        out.push_str(&self.reading.explanation);
        out.push('\n');
        if !self.alarms.is_empty() {
            out.push_str("\nCloudWatch alarms on the DLQ:\n");
            for a in &self.alarms {
                out.push_str(&format!("- [{}] {}\n", a.state, a.verdict));
            }
        }
        if let Some(n) = &self.alarms_note {
            out.push_str(&format!("\n({n})\n"));
        }
        if let Some(minute) = self.dead_letter_minute {
            out.push_str(&format!(
                "\nMost dead letters of the last {DEAD_LETTER_SEARCH_HOURS} h arrived in the minute {}; per minute around it:\n",
                format_ts(minute as i64)
            ));
            for t in &self.burst_window {
                let rows: Vec<Vec<String>> = t
                    .rows
                    .iter()
                    .map(|r| {
                        let mark = if r.timestamp == minute { " ◀" } else { "" };
                        vec![
                            format!("{}{mark}", format_ts(r.timestamp as i64)),
                            r.sent.to_string(),
                            r.received.to_string(),
                            r.deleted.to_string(),
                            r.not_visible.to_string(),
                            r.dead_letter_arrivals.to_string(),
                        ]
                    })
                    .collect();
                out.push_str(&format!("\n{}\n", t.queue));
                out.push_str(&render_table(
                    &[
                        "minute",
                        "Sent",
                        "Received",
                        "Deleted",
                        "NotVisible",
                        "DLQ arrivals",
                    ],
                    &rows,
                ));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(visible: u64) -> QueueState {
        QueueState {
            name: "q".into(),
            url: "u".into(),
            role: "dlq",
            visible,
            in_flight: 0,
            delayed: 0,
            oldest_age_secs: None,
            dead_letter_queue: None,
            max_receive_count: None,
            dead_letter_sources: vec![],
            browse: true,
        }
    }

    const MIN: i64 = 60_000;
    const RECENT: Duration = Duration::from_secs(600);

    #[test]
    fn readings() {
        let now = 100 * MIN;
        let r = read_evidence(&q(0), &[q(0)], None, None, RECENT, now);
        assert_eq!(r.verdict, Verdict::Healthy);
        let r = read_evidence(&q(5), &[q(0)], Some(now - 60 * MIN), None, RECENT, now);
        assert_eq!(r.verdict, Verdict::OldResidue);
        assert!(r.explanation.contains("1h 0m ago"), "{}", r.explanation);
        let r = read_evidence(&q(5), &[q(3)], Some(now - 2 * MIN), None, RECENT, now);
        assert_eq!(r.verdict, Verdict::ActiveGrowth);
        let r = read_evidence(&q(5), &[q(0)], None, None, RECENT, now);
        assert_eq!(r.verdict, Verdict::Unknown);
        let w = WatchResult {
            seconds: 30,
            samples: 4,
            dlq_start: 5,
            dlq_end: 7,
            dlq_max: 7,
            sources_start: 1,
            sources_end: 0,
        };
        let r = read_evidence(&q(5), &[q(0)], None, Some(w.clone()), RECENT, now);
        assert_eq!(r.verdict, Verdict::ActiveGrowth);
        let still = WatchResult {
            dlq_end: 5,
            dlq_max: 5,
            ..w
        };
        let r = read_evidence(&q(5), &[q(0)], None, Some(still), RECENT, now);
        assert_eq!(r.verdict, Verdict::OldResidue);
    }

    #[test]
    fn redrive_policy() {
        assert_eq!(
            parse_policy(
                r#"{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:1:q-dlq","maxReceiveCount":"3"}"#
            ),
            Some(("q-dlq".into(), Some(3)))
        );
        assert_eq!(
            parse_policy(
                r#"{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:1:q-dlq","maxReceiveCount":1}"#
            ),
            Some(("q-dlq".into(), Some(1)))
        );
        assert_eq!(parse_policy("nope"), None);
    }

    #[test]
    fn ndjson_and_csv_rows() {
        let mut src = q(2);
        src.name = "src".into();
        src.role = "source";
        src.dead_letter_queue = Some("q".into());
        src.max_receive_count = Some(3);
        let mut dlq = q(5);
        dlq.dead_letter_sources = vec!["src".into(), "other, one".into()];
        dlq.oldest_age_secs = Some(90);
        let st = Status {
            queues: vec![src, dlq],
            reading: read_evidence(&q(5), &[q(2)], None, None, RECENT, 0),
            dead_letter_minute: None,
            burst_window: Vec::new(),
            burst_window_note: None,
            alarms: Vec::new(),
            alarms_note: None,
        };
        let lines: Vec<Value> = st
            .to_ndjson()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(
            lines[0],
            serde_json::json!({"queue": "src", "url": "u", "role": "source", "visible": 2,
                "inFlight": 0, "delayed": 0, "oldestAgeSecs": null, "deadLetterQueue": "q",
                "maxReceiveCount": 3, "deadLetterSources": "", "verdict": "unknown"})
        );
        assert_eq!(lines[1]["deadLetterSources"], "src,other, one");
        assert_eq!(
            st.to_csv(),
            "queue,url,role,visible,inFlight,delayed,oldestAgeSecs,deadLetterQueue,maxReceiveCount,deadLetterSources,verdict\r\n\
             src,u,source,2,0,0,,q,3,,unknown\r\n\
             q,u,dlq,5,0,0,90,,,\"src,other, one\",unknown\r\n"
        );
    }
}
