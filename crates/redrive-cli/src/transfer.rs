//! `redrive export` (queue → NDJSON or CSV, nothing deleted) and `redrive import` (NDJSON or
//! CSV → queue).
//!
//! NDJSON: one [`Message`] per line. CSV (RFC 4180, header row): the columns of
//! [`CSV_COLUMNS`]; times are epoch milliseconds, `messageAttributes` and `attributes` are
//! JSON text.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use aws_sdk_sqs::primitives::Blob;
use aws_sdk_sqs::types::{MessageAttributeValue, SendMessageBatchRequestEntry};
use base64::Engine as _;
use serde_json::Value;

use crate::client::{Conn, QueueRef, sdk_error};
use crate::source::{Message, ScanOutcome, Source};
use crate::util::{csv_record, parse_csv};

/// The file format of `export` and `import`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    Ndjson,
    Csv,
}

impl std::str::FromStr for FileFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "ndjson" | "jsonl" => Ok(FileFormat::Ndjson),
            "csv" => Ok(FileFormat::Csv),
            _ => Err(format!("unknown file format `{s}` (ndjson or csv)")),
        }
    }
}

impl FileFormat {
    /// `given`, else CSV for a `.csv` file, else NDJSON.
    pub fn for_path(given: Option<FileFormat>, path: &Path) -> FileFormat {
        given.unwrap_or_else(|| {
            if path
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("csv"))
            {
                FileFormat::Csv
            } else {
                FileFormat::Ndjson
            }
        })
    }
}

/// The columns of a CSV export, in order.
pub const CSV_COLUMNS: &[&str] = &[
    "messageId",
    "body",
    "sentTimestamp",
    "receiveCount",
    "deadLetteredAt",
    "deadLetterQueueSourceArn",
    "messageGroupId",
    "messageDeduplicationId",
    "messageAttributes",
    "attributes",
];

/// A message as a CSV row (the cells of [`CSV_COLUMNS`]).
pub fn csv_row(m: &Message) -> Vec<String> {
    let opt = |v: Option<String>| v.unwrap_or_default();
    vec![
        m.message_id.clone(),
        m.body.clone(),
        opt(m.sent_timestamp.map(|t| t.to_string())),
        opt(m.receive_count.map(|t| t.to_string())),
        opt(m.dead_lettered_at.map(|t| t.to_string())),
        opt(m.dead_letter_queue_source_arn.clone()),
        opt(m.message_group_id.clone()),
        opt(m.message_deduplication_id.clone()),
        serde_json::to_string(&m.message_attributes).expect("attributes serialize"),
        serde_json::to_string(&m.attributes).expect("attributes serialize"),
    ]
}

/// Writes every message read from `source` (up to `limit`): one JSON line each, or a CSV
/// header and one row each.
pub async fn export(
    source: &Source,
    limit: usize,
    format: FileFormat,
    out: &mut dyn Write,
    mut progress: impl FnMut(usize),
) -> Result<ScanOutcome> {
    let mut err = None;
    if format == FileFormat::Csv
        && let Err(e) = out.write_all(csv_record(CSV_COLUMNS).as_bytes())
    {
        return Err(e).context("cannot write the export file");
    }
    let mut n = 0;
    let scan = source
        .scan(limit, |m| {
            if err.is_some() {
                return;
            }
            n += 1;
            progress(n);
            let written = match format {
                FileFormat::Ndjson => {
                    let line = serde_json::to_string(&m).expect("a message serializes");
                    writeln!(out, "{line}")
                }
                FileFormat::Csv => out.write_all(csv_record(&csv_row(&m)).as_bytes()),
            };
            if let Err(e) = written {
                err = Some(e);
            }
        })
        .await?;
    if let Some(e) = err {
        return Err(e).context("cannot write the export file");
    }
    out.flush().context("cannot write the export file")?;
    Ok(scan)
}

/// Reads an export file in `format`; a bad line or row is an error naming it.
pub fn read_messages(path: &Path, format: FileFormat) -> Result<Vec<Message>> {
    match format {
        FileFormat::Ndjson => read_ndjson(path),
        FileFormat::Csv => read_csv(path),
    }
}

/// Reads a CSV export: a header naming at least `messageId` and `body` (any order; the other
/// [`CSV_COLUMNS`] are optional, unknown columns are an error). A bad row is an error naming
/// its line.
pub fn read_csv(path: &Path) -> Result<Vec<Message>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot open {}", path.display()))?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let name = path.display();
    let records = parse_csv(text).map_err(|e| anyhow!("{name}:{}: {}", e.line, e.reason))?;
    let mut records = records.into_iter();
    let Some((hl, header)) = records.next() else {
        bail!("{name}: empty CSV file (a header row is required)");
    };
    for h in &header {
        if !CSV_COLUMNS.contains(&h.as_str()) {
            bail!(
                "{name}:{hl}: unknown column `{h}` (expected {})",
                CSV_COLUMNS.join(", ")
            );
        }
    }
    let col = |n: &str| header.iter().position(|h| h == n);
    let (Some(id_col), Some(body_col)) = (col("messageId"), col("body")) else {
        bail!("{name}:{hl}: the header needs the columns messageId and body");
    };
    let mut out = vec![];
    for (line, cells) in records {
        let row_err = |reason: String| anyhow!("{name}:{line}: {reason}");
        if cells.len() != header.len() {
            return Err(row_err(format!(
                "expected {} columns, found {}",
                header.len(),
                cells.len()
            )));
        }
        let cell = |n: &str| col(n).map(|i| cells[i].as_str()).filter(|c| !c.is_empty());
        let int = |n: &str| -> Result<Option<i64>> {
            cell(n)
                .map(|c| {
                    c.parse::<i64>()
                        .map_err(|_| row_err(format!("{n} `{c}` is not an integer")))
                })
                .transpose()
        };
        let text = |n: &str| cell(n).map(str::to_string);
        let message_attributes: BTreeMap<String, Value> = match cell("messageAttributes") {
            None => BTreeMap::new(),
            Some(c) => serde_json::from_str(c)
                .map_err(|e| row_err(format!("messageAttributes is not a JSON object: {e}")))?,
        };
        let attributes: BTreeMap<String, String> = match cell("attributes") {
            None => BTreeMap::new(),
            Some(c) => serde_json::from_str(c)
                .map_err(|e| row_err(format!("attributes is not a JSON object of strings: {e}")))?,
        };
        let receive_count = match int("receiveCount")? {
            Some(n) if n < 0 => return Err(row_err(format!("receiveCount `{n}` is negative"))),
            other => other.map(|n| n as u64),
        };
        out.push(Message {
            message_id: cells[id_col].clone(),
            body: cells[body_col].clone(),
            sent_timestamp: int("sentTimestamp")?,
            receive_count,
            dead_lettered_at: int("deadLetteredAt")?,
            dead_letter_queue_source_arn: text("deadLetterQueueSourceArn"),
            message_group_id: text("messageGroupId"),
            message_deduplication_id: text("messageDeduplicationId"),
            message_attributes,
            attributes,
            ..Message::default()
        });
    }
    Ok(out)
}

/// Reads an NDJSON export; a bad line is an error naming the line.
pub fn read_ndjson(path: &Path) -> Result<Vec<Message>> {
    let f = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut out = vec![];
    for (i, line) in std::io::BufReader::new(f).lines().enumerate() {
        let line = line.with_context(|| format!("cannot read {}", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let m: Message = serde_json::from_str(&line)
            .map_err(|e| anyhow!("{}:{}: not a message line: {e}", path.display(), i + 1))?;
        out.push(m);
    }
    Ok(out)
}

fn attribute(name: &str, v: &Value) -> Result<MessageAttributeValue> {
    let dt = v
        .get("DataType")
        .and_then(Value::as_str)
        .ok_or_else(|| anyhow!("message attribute `{name}` has no DataType"))?;
    let mut b = MessageAttributeValue::builder().data_type(dt);
    if let Some(s) = v.get("StringValue").and_then(Value::as_str) {
        b = b.string_value(s);
    }
    if let Some(s) = v.get("BinaryValue").and_then(Value::as_str) {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(s)
            .with_context(|| format!("message attribute `{name}`: BinaryValue is not base64"))?;
        b = b.binary_value(Blob::new(bytes));
    }
    b.build()
        .map_err(|e| anyhow!("message attribute `{name}`: {e}"))
}

/// Sends `messages` to `queue` in batches of ten, keeping message attributes and group ids
/// (FIFO queues get a fresh deduplication id); `progress` gets the number sent after each
/// batch. Returns the number sent.
pub async fn import(
    conn: &Conn,
    queue: &QueueRef,
    messages: &[Message],
    mut progress: impl FnMut(usize),
) -> Result<usize> {
    let fifo = queue.is_fifo();
    let mut sent = 0;
    for chunk in messages.chunks(10) {
        let mut req = conn.sqs.send_message_batch().queue_url(&queue.url);
        for (i, m) in chunk.iter().enumerate() {
            let mut e = SendMessageBatchRequestEntry::builder()
                .id(format!("m{i}"))
                .message_body(&m.body);
            for (k, v) in &m.message_attributes {
                e = e.message_attributes(k, attribute(k, v)?);
            }
            if fifo {
                let group = m
                    .message_group_id
                    .clone()
                    .unwrap_or_else(|| "redrive-import".to_string());
                e = e
                    .message_group_id(group)
                    .message_deduplication_id(uuid::Uuid::new_v4().to_string());
            } else if let Some(g) = &m.message_group_id {
                e = e.message_group_id(g);
            }
            req = req.entries(e.build().map_err(|e| anyhow!("bad message: {e}"))?);
        }
        let out = req
            .send()
            .await
            .map_err(|e| sdk_error(e, &queue.name, conn.endpoint_url.as_deref()))?;
        if let Some(f) = out.failed().first() {
            bail!(
                "import into `{}` failed after {sent} messages: {} {}",
                queue.name,
                f.code(),
                f.message().unwrap_or("")
            );
        }
        sent += out.successful().len();
        progress(sent);
    }
    Ok(sent)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> Vec<Message> {
        let mut attrs = BTreeMap::new();
        attrs.insert(
            "mall".to_string(),
            json!({"DataType": "String", "StringValue": "a,b \"c\""}),
        );
        attrs.insert(
            "raw".to_string(),
            json!({"DataType": "Binary", "BinaryValue": "AAE="}),
        );
        let mut sys = BTreeMap::new();
        sys.insert("SentTimestamp".to_string(), "1776716107000".to_string());
        vec![
            Message {
                message_id: "m1".into(),
                body: "{\"mall_id\": \"x\",\n \"n\": 1}".into(),
                sent_timestamp: Some(1_776_716_107_000),
                receive_count: Some(3),
                dead_lettered_at: Some(1_776_716_108_000),
                dead_letter_queue_source_arn: Some("arn:aws:sqs:us-east-1:1:src".into()),
                message_group_id: Some("g-1".into()),
                message_deduplication_id: Some("d-1".into()),
                message_attributes: attrs,
                attributes: sys,
                ..Message::default()
            },
            Message {
                message_id: "m2".into(),
                body: "not json, \"quoted\"\r\n".into(),
                ..Message::default()
            },
        ]
    }

    #[test]
    fn csv_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.csv");
        let mut text = csv_record(CSV_COLUMNS);
        for m in sample() {
            text.push_str(&csv_record(&csv_row(&m)));
        }
        std::fs::write(&path, &text).unwrap();
        assert_eq!(read_csv(&path).unwrap(), sample());
        assert_eq!(
            FileFormat::for_path(None, &path),
            FileFormat::Csv,
            "by extension"
        );
        assert_eq!(
            FileFormat::for_path(None, Path::new("x.ndjson")),
            FileFormat::Ndjson
        );
        assert_eq!(
            FileFormat::for_path(Some(FileFormat::Ndjson), &path),
            FileFormat::Ndjson
        );
    }

    #[test]
    fn bad_csv_rows_name_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.csv");
        let check = |text: &str, want: &str| {
            std::fs::write(&path, text).unwrap();
            let e = read_csv(&path).unwrap_err().to_string();
            assert!(e.ends_with(want), "{e}");
            assert!(e.contains("bad.csv"), "{e}");
        };
        check(
            "messageId,body\nm1,ok\nm2\n",
            "bad.csv:3: expected 2 columns, found 1",
        );
        check(
            "messageId,body,sentTimestamp\nm1,ok,soon\n",
            "bad.csv:2: sentTimestamp `soon` is not an integer",
        );
        check(
            "messageId,body,messageAttributes\n\"m1\",\"multi\nline\",{x\n",
            "bad.csv:2: messageAttributes is not a JSON object: key must be a string at line 1 column 2",
        );
        check(
            "messageId,nope\n",
            "bad.csv:1: unknown column `nope` (expected messageId, body, sentTimestamp, receiveCount, deadLetteredAt, deadLetterQueueSourceArn, messageGroupId, messageDeduplicationId, messageAttributes, attributes)",
        );
        check(
            "body\nx\n",
            "bad.csv:1: the header needs the columns messageId and body",
        );
        check("", "bad.csv: empty CSV file (a header row is required)");
        check(
            "messageId,body\nm1,\"open\n",
            "bad.csv:2: unterminated quote",
        );
    }
}
