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
//! - [`transfer`]: NDJSON export and import.
//! - [`util`]: durations, timestamps, aligned tables.
//!
//! The binary parses flags with clap and turns them into the plans here; nothing in this
//! crate deletes or moves messages.

pub mod client;
pub mod enrich;
pub mod jq;
pub mod report;
pub mod source;
pub mod stats;
pub mod status;
pub mod transfer;
pub mod util;

use std::io::IsTerminal;

use serde_json::Value;

use crate::source::Message;
use crate::util::{format_ts, render_table};

/// Output format of the reading commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Table,
    Json,
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "table" => Ok(Format::Table),
            "json" => Ok(Format::Json),
            _ => Err(format!("unknown format `{s}` (table or json)")),
        }
    }
}

/// A `\rread N messages` line on stderr, only when stderr is a terminal.
pub struct Progress {
    on: bool,
    label: &'static str,
}

impl Progress {
    pub fn new(label: &'static str) -> Progress {
        Progress {
            on: std::io::stderr().is_terminal(),
            label,
        }
    }

    pub fn tick(&self, n: usize) {
        if self.on && n.is_multiple_of(500) {
            eprint!("\r{} {n} messages", self.label);
        }
    }

    pub fn finish(&self) {
        if self.on {
            eprint!("\r\x1b[2K");
        }
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
