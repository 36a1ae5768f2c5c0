//! The DLQ investigation commands of the `redrive` binary.
//!
//! # Layout
//! - [`client`]: an SQS client resolved like the AWS CLI (profile, region, endpoint,
//!   credentials, with dummy credentials for a local endpoint); queues by name or URL.
//! - [`source`]: reading messages, non-destructively through our server's browse API, else
//!   with `ReceiveMessage` and a short visibility timeout (never deleting).
//! - [`status`]: a queue and its DLQ, and the residue / growth / healthy reading.
//! - [`stats`] and [`jq`]: aggregation of a scan, `--group-by` jq expressions.
//! - [`enrich`]: `--enrich` mapping files (CSV or JSON) joined on the first group key.
//! - [`report`]: the Markdown / JSON summary a person would write.
//! - [`metrics`]: a queue's minute history from a Redrive server (`redrive metrics`).
//! - [`cloudwatch`]: the same minute table from CloudWatch's `GetMetricData` (AWS).
//! - [`transfer`]: NDJSON / CSV export and import.
//! - [`alerts`]: alert rules, history and silences on a Redrive server (`redrive alerts`).
//! - [`util`]: durations, timestamps, aligned tables, CSV.
//!
//! The binary parses flags with clap and turns them into the plans here; nothing in this
//! crate deletes or moves messages.

pub mod alerts;
pub mod client;
pub mod cloudwatch;
pub mod enrich;
pub mod jq;
pub mod metrics;
pub mod movetask;
pub mod replay;
pub mod report;
pub mod schedule;
pub mod source;
pub mod stats;
pub mod status;
pub mod transfer;
pub mod util;

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::Value;

use crate::source::Message;
use crate::util::{format_ts, render_table};

/// Output format of the reading commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Aligned tables for people.
    Table,
    /// One pretty-printed JSON document.
    Json,
    /// One JSON object per line (a message, a queue or a table row).
    Ndjson,
    /// RFC 4180 CSV with a header row.
    Csv,
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "table" => Ok(Format::Table),
            "json" => Ok(Format::Json),
            "ndjson" => Ok(Format::Ndjson),
            "csv" => Ok(Format::Csv),
            _ => Err(format!("unknown format `{s}` (table, json, ndjson or csv)")),
        }
    }
}

/// A progress bar on stderr (count read, and the approximate total and rate when known);
/// drawn only when stderr is a terminal, so pipes and files never see it.
pub struct Progress {
    bar: ProgressBar,
}

impl Progress {
    /// A bar on stderr when it is a terminal, else a hidden one.
    pub fn new(label: &'static str) -> Progress {
        let target = if std::io::stderr().is_terminal() {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        Progress::with_target(label, target)
    }

    /// A bar that never draws.
    pub fn hidden(label: &'static str) -> Progress {
        Progress::with_target(label, ProgressDrawTarget::hidden())
    }

    fn with_target(label: &'static str, target: ProgressDrawTarget) -> Progress {
        let bar = ProgressBar::with_draw_target(None, target)
            .with_style(
                ProgressStyle::with_template(
                    "{spinner} {prefix} {human_pos} messages ({per_sec:0}, {elapsed})",
                )
                .expect("a valid template"),
            )
            .with_prefix(label);
        Progress { bar }
    }

    /// Whether anything is drawn (callers may skip work that only feeds the bar).
    pub fn is_visible(&self) -> bool {
        !self.bar.is_hidden()
    }

    /// The expected number of messages (e.g. the approximate queue size), when known.
    pub fn set_total(&self, total: Option<u64>) {
        let Some(total) = total else {
            return;
        };
        self.bar.set_length(total);
        self.bar.set_style(
            ProgressStyle::with_template(
                "{prefix} [{bar:30}] {human_pos}/~{human_len} messages ({per_sec:0}, eta {eta})",
            )
            .expect("a valid template")
            .progress_chars("=> "),
        );
    }

    /// `n` messages read so far.
    pub fn tick(&self, n: usize) {
        self.bar.set_position(n as u64);
        // Redraw (spinner, elapsed time) while a slow read waits for the next message.
        if n == 1 && !self.bar.is_hidden() {
            self.bar.enable_steady_tick(Duration::from_millis(200));
        }
    }

    pub fn position(&self) -> u64 {
        self.bar.position()
    }

    pub fn total(&self) -> Option<u64> {
        self.bar.length()
    }

    /// Removes the bar from the terminal.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// `peek` output for people: one block per message.
pub fn peek_table(messages: &[Message]) -> String {
    let mut out = String::new();
    for m in messages {
        let mut rows = vec![
            vec!["messageId".to_string(), m.message_id.clone()],
            vec![
                "sent".into(),
                m.sent_timestamp.map(format_ts).unwrap_or_default(),
            ],
            vec![
                "receiveCount".into(),
                m.receive_count.map(|r| r.to_string()).unwrap_or_default(),
            ],
        ];
        if let Some(t) = m.dead_lettered_at {
            rows.push(vec!["deadLetteredAt".into(), format_ts(t)]);
        }
        if let Some(g) = &m.message_group_id {
            rows.push(vec!["groupId".into(), g.clone()]);
        }
        for (k, v) in &m.attributes {
            rows.push(vec![format!("attr {k}"), v.clone()]);
        }
        for (k, v) in &m.message_attributes {
            let val = v
                .get("StringValue")
                .or_else(|| v.get("BinaryValue"))
                .and_then(Value::as_str)
                .unwrap_or("");
            let dt = v.get("DataType").and_then(Value::as_str).unwrap_or("");
            rows.push(vec![format!("msgattr {k}"), format!("{val} ({dt})")]);
        }
        rows.push(vec!["body".into(), m.body.clone()]);
        out.push_str(&render_table(&["field", "value"], &rows));
        out.push('\n');
    }
    if messages.is_empty() {
        out.push_str("(no messages)\n");
    }
    out
}

/// `peek --format ndjson`: one message per line, in the export's shape.
pub fn peek_ndjson(messages: &[Message]) -> String {
    let mut out = String::new();
    for m in messages {
        out.push_str(&serde_json::to_string(m).expect("a message serializes"));
        out.push('\n');
    }
    out
}

/// `peek --format csv`: one row per message, the columns of `export --format csv`.
pub fn peek_csv(messages: &[Message]) -> String {
    let mut out = util::csv_record(transfer::CSV_COLUMNS);
    for m in messages {
        out.push_str(&util::csv_record(&transfer::csv_row(m)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_parse() {
        assert_eq!("ndjson".parse::<Format>(), Ok(Format::Ndjson));
        assert_eq!("csv".parse::<Format>(), Ok(Format::Csv));
        assert_eq!(
            "xml".parse::<Format>(),
            Err("unknown format `xml` (table, json, ndjson or csv)".to_string())
        );
    }

    #[test]
    fn hidden_progress_counts() {
        let p = Progress::hidden("scanned");
        assert!(!p.is_visible());
        p.set_total(Some(10));
        p.tick(1);
        p.tick(7);
        assert_eq!((p.position(), p.total()), (7, Some(10)));
        p.set_total(None);
        assert_eq!(p.total(), Some(10));
        p.finish();
    }

    #[test]
    fn peek_machine_formats() {
        let m = Message {
            message_id: "m1".into(),
            body: "a,\"b\"\nc".into(),
            message_group_id: Some("g".into()),
            ..Message::default()
        };
        let nd = peek_ndjson(std::slice::from_ref(&m));
        let back: Message = serde_json::from_str(nd.trim_end()).unwrap();
        assert_eq!(back, m);
        assert_eq!(nd.lines().count(), 1);
        let csv = peek_csv(&[m]);
        assert_eq!(
            csv,
            "messageId,body,sentTimestamp,receiveCount,deadLetteredAt,deadLetterQueueSourceArn,messageGroupId,messageDeduplicationId,messageAttributes,attributes\r\n\
             m1,\"a,\"\"b\"\"\nc\",,,,,g,,{},{}\r\n"
        );
    }
}
