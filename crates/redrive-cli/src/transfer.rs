//! `redrive export` (queue → NDJSON, nothing deleted) and `redrive import` (NDJSON → queue).

use std::io::{BufRead, Write};
use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use aws_sdk_sqs::primitives::Blob;
use aws_sdk_sqs::types::{MessageAttributeValue, SendMessageBatchRequestEntry};
use base64::Engine as _;
use serde_json::Value;

use crate::client::{Conn, QueueRef, sdk_error};
use crate::source::{Message, ScanOutcome, Source};

/// Writes every message read from `source` (up to `limit`) as one JSON line.
pub async fn export(
    source: &Source,
    limit: usize,
    out: &mut dyn Write,
    mut progress: impl FnMut(usize),
) -> Result<ScanOutcome> {
    let mut err = None;
    let mut n = 0;
    let scan = source
        .scan(limit, |m| {
            if err.is_some() {
                return;
            }
            n += 1;
            progress(n);
            let line = serde_json::to_string(&m).expect("a message serializes");
            if let Err(e) = writeln!(out, "{line}") {
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
/// (FIFO queues get a fresh deduplication id). Returns the number sent.
pub async fn import(conn: &Conn, queue: &QueueRef, messages: &[Message]) -> Result<usize> {
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
    }
    Ok(sent)
}
