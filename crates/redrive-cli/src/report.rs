//! `redrive report`: the summary a person would write after an investigation (the seed's
//! "output template"): total, composition, timing and burst, retry evidence, residue vs
//! growth, and what to check next. Markdown for people, JSON for machines.

use std::time::Duration;

use anyhow::Result;
use serde::Serialize;
use serde_json::Value;

use crate::Progress;
use crate::client::Conn;
use crate::enrich::Mapping;
use crate::jq::GroupBy;
use crate::metrics::{MetricsTable, WINDOW_BEFORE_MIN};
use crate::source::Source;
use crate::stats::{Bucket, Stats};
use crate::status::{Status, StatusPlan, Verdict, status};
use crate::util::format_ts;

pub struct ReportPlan {
    pub queue: String,
    pub group_bys: Vec<GroupBy>,
    pub bucket: Option<Bucket>,
    pub mapping: Option<Mapping>,
    pub limit: usize,
    pub top: usize,
    pub recent: Duration,
    pub watch: Option<Duration>,
    pub visibility_timeout: i32,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub queue: String,
    pub status: Status,
    pub stats: Value,
    pub next_steps: Vec<String>,
    /// Per-minute Sent/Received/Deleted/NotVisible around the dominant sent minute, for the
    /// source queue(s) and the DLQ (from the server's history or CloudWatch).
    pub burst_window: Vec<MetricsTable>,
    /// Why the burst window is missing or partial, if it is.
    pub burst_window_note: Option<String>,
    #[serde(skip)]
    pub warning: Option<String>,
}

/// What the burst minute's row says, in the seed's words. Pure.
pub fn burst_reading(t: &MetricsTable, burst_ms: u64) -> Option<String> {
    let row = t.rows.iter().find(|r| r.timestamp == burst_ms)?;
    let before: Vec<&crate::metrics::MetricsRow> =
        t.rows.iter().filter(|r| r.timestamp < burst_ms).collect();
    let usual_sent = before.iter().map(|r| r.sent).max().unwrap_or(0);
    let mut parts = vec![format!(
        "{}: {} sent, {} received, {} deleted in the burst minute",
        t.queue, row.sent, row.received, row.deleted
    )];
    if row.sent >= 10 && row.sent > 3 * usual_sent.max(1) {
        parts.push(format!(
            "sends spiked (at most {usual_sent} per minute in the {WINDOW_BEFORE_MIN} minutes before)"
        ));
    }
    if row.received > 0 && row.deleted * 2 < row.received {
        parts.push("far fewer deletes than receives: the consumer failed on most of them".into());
    }
    let after: Vec<&crate::metrics::MetricsRow> =
        t.rows.iter().filter(|r| r.timestamp > burst_ms).collect();
    if row.not_visible > 0
        && after
            .iter()
            .take(3)
            .all(|r| r.not_visible >= row.not_visible / 2)
        && !after.is_empty()
    {
        parts.push("NotVisible jumped and stayed high: messages held in flight and retried".into());
    }
    Some(parts.join("; "))
}

/// Runs `status` and a `stats` scan of the DLQ (or of the queue itself when it has none).
pub async fn report(conn: &Conn, plan: ReportPlan) -> Result<Report> {
    let mut st = status(
        conn,
        &StatusPlan {
            queue: plan.queue.clone(),
            watch: plan.watch,
            recent: plan.recent,
        },
    )
    .await?;
    crate::status::add_alarm_checks(conn, &mut st).await;
    let target = st
        .queues
        .iter()
        .find(|q| q.role == "dlq")
        .unwrap_or(&st.queues[0])
        .clone();
    let qref = conn.resolve(&target.url).await?;
    let src = Source::open(conn, &qref, plan.visibility_timeout).await?;
    let warning = src.warning();
    let mut stats = Stats::new(plan.group_bys, plan.bucket).with_mapping(plan.mapping);
    let progress = Progress::new("scanned");
    if progress.is_visible() {
        let size = src.approximate_size().await;
        progress.set_total(size.map(|n| n.min(plan.limit as u64)));
    }
    let scan = src
        .scan(plan.limit, |m| {
            stats.add(&m);
            progress.tick(stats.total);
        })
        .await;
    progress.finish();
    let scan = scan?;
    let stats_json = stats.to_json(&target.name, &scan, plan.top);
    let max_receive = st.queues.iter().find_map(|q| q.max_receive_count);
    let next_steps = next_steps(&st, &stats_json, max_receive);
    let burst_ms = stats.burst_minute_ms();
    let (burst_window, burst_window_note) = match burst_ms {
        Some(ms) => {
            // The source queue(s) first (where the burst was sent and received), then the DLQ.
            let mut queues: Vec<String> = st
                .queues
                .iter()
                .filter(|q| q.name != target.name)
                .map(|q| q.name.clone())
                .collect();
            queues.push(target.name.clone());
            crate::metrics::window_around(conn, &queues, ms).await
        }
        None => (Vec::new(), None),
    };
    Ok(Report {
        queue: target.name,
        status: st,
        stats: stats_json,
        next_steps,
        burst_window,
        burst_window_note,
        warning,
    })
}

/// Advice from the evidence. Pure.
pub fn next_steps(st: &Status, stats: &Value, max_receive: Option<u64>) -> Vec<String> {
    let mut out = vec![];
    let total = stats["total"].as_u64().unwrap_or(0);
    if let Some(share) = stats["burst"]["share"].as_f64()
        && share >= 0.5
        && total >= 10
    {
        out.push(format!(
            "{:.0}% of the messages were sent within the minute {}: look for a producer burst and for rate limiting or quota errors (e.g. HTTP 429) of the downstream API in the consumer's logs around that time",
            share * 100.0,
            stats["burst"]["minute"].as_str().unwrap_or("?")
        ));
    }
    if let Some(max) = max_receive {
        let counts = stats["receiveCounts"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let below: u64 = counts
            .iter()
            .filter(|c| c["receiveCount"].as_u64().unwrap_or(0) < max)
            .map(|c| c["count"].as_u64().unwrap_or(0))
            .sum();
        if !counts.is_empty() && below == 0 {
            out.push(format!(
                "every message was received at least maxReceiveCount ({max}) times: retries ran and were exhausted; if the failures are transient (throttling), retry with backoff inside the consumer or raise maxReceiveCount"
            ));
        } else if below > 0 {
            out.push(format!(
                "{below} messages reached the DLQ with fewer receives than maxReceiveCount ({max}): check whether maxReceiveCount was changed or messages were moved by hand"
            ));
        }
    }
    match st.reading.verdict {
        Verdict::ActiveGrowth => out.push(
            "the DLQ is still growing: check the consumer's errors now, before redriving anything".into(),
        ),
        Verdict::OldResidue => out.push(
            "nothing new is arriving: once the cause is fixed, redrive the residue to the source queue (or let retention expire it); check whether a recently created alarm is firing on this old backlog".into(),
        ),
        Verdict::Unknown => out.push(format!(
            "run `redrive status {} --watch 5m` to tell old residue from active growth",
            st.queues.last().map(|q| q.name.as_str()).unwrap_or("QUEUE")
        )),
        Verdict::Healthy | Verdict::NoDlq => {}
    }
    if let Some(n) = stats["nonJson"].as_u64().filter(|n| *n > 0) {
        out.push(format!(
            "{n} bodies are not JSON: `redrive peek` them to see which producer sends them"
        ));
    }
    if stats["complete"] == false {
        out.push("the scan was incomplete: raise --limit for exact counts".into());
    }
    out
}

fn md_escape(s: &str) -> String {
    s.replace('|', "\\|")
}

impl Report {
    pub fn to_markdown(&self) -> String {
        let s = &self.stats;
        let total = s["total"].as_u64().unwrap_or(0);
        let pct = |c: u64| format!("{:.1}%", 100.0 * c as f64 / total.max(1) as f64);
        let mut md = format!("# DLQ report: {}\n\n", self.queue);
        md.push_str(&format!(
            "- **Total:** {total} messages{}{}\n",
            if s["complete"] == true {
                ""
            } else {
                " (incomplete scan)"
            },
            if s["nonDestructive"] == true {
                ", read without receiving (browse API)"
            } else {
                ", read with ReceiveMessage"
            }
        ));
        for q in &self.status.queues {
            md.push_str(&format!(
                "- **{}** ({}): {} visible, {} in flight, {} delayed{}\n",
                q.name,
                q.role,
                q.visible,
                q.in_flight,
                q.delayed,
                q.max_receive_count
                    .map(|m| format!(", maxReceiveCount {m}"))
                    .unwrap_or_default()
            ));
        }
        if let Some(n) = s["nonJson"].as_u64().filter(|n| *n > 0) {
            md.push_str(&format!("- **Non-JSON bodies:** {n}\n"));
        }
        md.push_str("\n## Composition\n");
        let tables = s["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|g| {
                (
                    g["expr"].as_str().unwrap_or("").to_string(),
                    g["counts"].clone(),
                    "key",
                )
            })
            .chain(s["pairs"].is_object().then(|| {
                let exprs: Vec<String> = s["pairs"]["exprs"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|e| e.as_str().map(str::to_string))
                    .collect();
                (exprs.join(" × "), s["pairs"]["counts"].clone(), "keys")
            }));
        let mut any = false;
        for (title, counts, field) in tables {
            any = true;
            let rows = counts.as_array().cloned().unwrap_or_default();
            // Mapping columns in the file's order, on the tables joined with the mapping.
            let enrich_cols: Vec<String> = if rows.iter().any(|r| r.get("enrich").is_some()) {
                s["enrichColumns"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|c| c.as_str().map(str::to_string))
                    .collect()
            } else {
                vec![]
            };
            md.push_str(&format!(
                "\n### by {}\n\n| {} |",
                md_escape(&title),
                md_escape(&title)
            ));
            for c in &enrich_cols {
                md.push_str(&format!(" {} |", md_escape(c)));
            }
            md.push_str(" count | share |\n|---|");
            md.push_str(&"---|".repeat(enrich_cols.len()));
            md.push_str("---:|---:|\n");
            for r in rows {
                let key = match &r[field] {
                    Value::String(k) => k.clone(),
                    Value::Array(ks) => ks
                        .iter()
                        .map(|k| k.as_str().unwrap_or("").to_string())
                        .collect::<Vec<_>>()
                        .join(" × "),
                    _ => String::new(),
                };
                let c = r["count"].as_u64().unwrap_or(0);
                md.push_str(&format!("| {} |", md_escape(&key)));
                for col in &enrich_cols {
                    md.push_str(&format!(
                        " {} |",
                        md_escape(r["enrich"][col].as_str().unwrap_or(""))
                    ));
                }
                md.push_str(&format!(" {c} | {} |\n", pct(c)));
            }
        }
        if !any {
            md.push_str("\n(no --group-by given)\n");
        }
        md.push_str("\n## Timing\n\n");
        match s["burst"].as_object() {
            Some(b) => md.push_str(&format!(
                "- Dominant sent minute: **{}** with {} messages ({:.1}%)\n- First sent {}, last sent {}\n",
                b["minute"].as_str().unwrap_or(""),
                b["count"],
                b["share"].as_f64().unwrap_or(0.0) * 100.0,
                b["first"].as_str().unwrap_or(""),
                b["last"].as_str().unwrap_or("")
            )),
            None => md.push_str("- No sent times (empty queue)\n"),
        }
        if let Some(t) = &self.status.reading.newest_dead_lettered_at {
            md.push_str(&format!("- Newest dead letter: {t}\n"));
        }
        if !self.burst_window.is_empty() || self.burst_window_note.is_some() {
            md.push_str("\n## Burst window (per minute)\n");
        }
        let burst_ms = self.stats["burst"]["minute"]
            .as_str()
            .and_then(|m| redrive_select::schedule::parse_instant(m, 0).ok())
            .map(|ms| ms as u64);
        for t in &self.burst_window {
            md.push_str(&format!(
                "\n### {}\n\n| minute | Sent | Received | Deleted | NotVisible | DLQ arrivals |\n|---|---:|---:|---:|---:|---:|\n",
                md_escape(&t.queue)
            ));
            for r in &t.rows {
                let mark = if Some(r.timestamp) == burst_ms {
                    " ◀ burst"
                } else {
                    ""
                };
                md.push_str(&format!(
                    "| {}{mark} | {} | {} | {} | {} | {} |\n",
                    format_ts(r.timestamp as i64),
                    r.sent,
                    r.received,
                    r.deleted,
                    r.not_visible,
                    r.dead_letter_arrivals
                ));
            }
            if let Some(reading) = burst_ms.and_then(|ms| burst_reading(t, ms)) {
                md.push_str(&format!("\n{reading}.\n"));
            }
        }
        if let Some(n) = &self.burst_window_note {
            md.push_str(&format!("\n({n})\n"));
        }
        if !self.status.alarms.is_empty() || self.status.alarms_note.is_some() {
            md.push_str("\n## CloudWatch alarms on the DLQ\n\n");
            for a in &self.status.alarms {
                md.push_str(&format!("- **{}**: {}\n", a.state, md_escape(&a.verdict)));
            }
            if let Some(n) = &self.status.alarms_note {
                md.push_str(&format!("\n({})\n", md_escape(n)));
            }
        }
        md.push_str("\n## Retry evidence\n\n");
        let counts: Vec<String> = s["receiveCounts"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| format!("{} × received {} times", c["count"], c["receiveCount"]))
            .collect();
        md.push_str(&format!(
            "- Receive counts: {}\n",
            if counts.is_empty() {
                "n/a".to_string()
            } else {
                counts.join(", ")
            }
        ));
        if let Some(m) = self.status.queues.iter().find_map(|q| q.max_receive_count) {
            md.push_str(&format!("- maxReceiveCount of the source: {m}\n"));
        }
        md.push_str(&format!(
            "\n## Residue or growth\n\n{}\n\n## What to check next\n\n",
            self.status.reading.explanation
        ));
        for step in &self.next_steps {
            md.push_str(&format!("- {step}\n"));
        }
        if self.next_steps.is_empty() {
            md.push_str("- nothing stands out\n");
        }
        md
    }
}
