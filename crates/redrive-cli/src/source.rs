//! Reading a queue's messages, without side effects when the server allows it.
//!
//! - Our server answers `GET /_redrive/v1/queues/{name}`: messages are read through the
//!   browse API (nothing changes, receive counts stay as they are).
//! - Anything else (AWS, moto): `ReceiveMessage` with a short visibility timeout; messages are
//!   never deleted and come back when the timeout expires, but every receive counts toward the
//!   queue's `maxReceiveCount`.

use std::collections::{BTreeMap, HashSet};

use anyhow::{Context, Result, anyhow};
use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::client::{Conn, QueueRef, sdk_error};

/// One message, in the browse API's shape (also the NDJSON export line).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    pub message_id: String,
    pub body: String,
    #[serde(default)]
    pub sent_timestamp: Option<i64>,
    #[serde(default)]
    pub receive_count: Option<u64>,
    #[serde(default)]
    pub first_receive_timestamp: Option<i64>,
    #[serde(default)]
    pub dead_lettered_at: Option<i64>,
    #[serde(default)]
    pub dead_letter_queue_source_arn: Option<String>,
    #[serde(default)]
    pub message_group_id: Option<String>,
    #[serde(default)]
    pub message_deduplication_id: Option<String>,
    #[serde(default)]
    pub sequence_number: Option<String>,
    /// `{name: {"DataType", "StringValue" | "BinaryValue" (base64)}}`
    #[serde(default)]
    pub message_attributes: BTreeMap<String, Value>,
    /// System attributes as SQS names them (`SentTimestamp`, `ApproximateReceiveCount`, …).
    #[serde(default, alias = "systemAttributes")]
    pub attributes: BTreeMap<String, String>,
}

impl Message {
    /// Metadata bound to `$meta` in `--group-by` expressions.
    pub fn meta(&self) -> Value {
        serde_json::json!({
            "messageId": self.message_id,
            "sentTimestamp": self.sent_timestamp,
            "deadLetteredAt": self.dead_lettered_at,
            "receiveCount": self.receive_count,
            "groupId": self.message_group_id,
            "attributes": self.attributes,
            "messageAttributes": self.message_attributes,
        })
    }

    /// A message as `ReceiveMessage` returned it (all attributes requested).
    pub fn from_sdk(m: &aws_sdk_sqs::types::Message) -> Message {
        let mut attributes = BTreeMap::new();
        for (k, v) in m.attributes().into_iter().flatten() {
            attributes.insert(k.as_str().to_string(), v.clone());
        }
        let mut message_attributes = BTreeMap::new();
        for (k, v) in m.message_attributes().into_iter().flatten() {
            let mut o = serde_json::Map::new();
            o.insert("DataType".into(), Value::from(v.data_type()));
            if let Some(s) = v.string_value() {
                o.insert("StringValue".into(), Value::from(s));
            }
            if let Some(b) = v.binary_value() {
                o.insert(
                    "BinaryValue".into(),
                    Value::from(base64::engine::general_purpose::STANDARD.encode(b.as_ref())),
                );
            }
            message_attributes.insert(k.clone(), Value::Object(o));
        }
        let num = |name: &str| attributes.get(name).and_then(|v| v.parse::<i64>().ok());
        Message {
            message_id: m.message_id().unwrap_or_default().to_string(),
            body: m.body().unwrap_or_default().to_string(),
            sent_timestamp: num("SentTimestamp"),
            receive_count: num("ApproximateReceiveCount").map(|n| n as u64),
            first_receive_timestamp: num("ApproximateFirstReceiveTimestamp"),
            dead_lettered_at: None,
            dead_letter_queue_source_arn: attributes.get("DeadLetterQueueSourceArn").cloned(),
            message_group_id: attributes.get("MessageGroupId").cloned(),
            message_deduplication_id: attributes.get("MessageDeduplicationId").cloned(),
            sequence_number: attributes.get("SequenceNumber").cloned(),
            message_attributes,
            attributes,
        }
    }
}

/// How a scan ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScanOutcome {
    pub read: usize,
    /// Every message present was read (browse API), or the receive loop ran dry after reading
    /// at least the approximate number of visible and in-flight messages.
    pub complete: bool,
    /// `true` when messages were read with the non-destructive browse API.
    pub non_destructive: bool,
}

/// Where messages are read from.
pub enum Source {
    Browse {
        conn: Conn,
        base: String,
        queue: QueueRef,
    },
    Receive {
        conn: Conn,
        queue: QueueRef,
        visibility_timeout: i32,
        is_dlq: bool,
    },
}

/// The browse API's queue description (only the fields we use).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BrowseQueue {
    pub visible: u64,
    pub in_flight: u64,
    pub delayed: u64,
    #[serde(default)]
    pub pending_dead_letter: u64,
    #[serde(default)]
    pub oldest_enqueued_at: Option<i64>,
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
    #[serde(default)]
    pub dead_letter_sources: Vec<String>,
}

/// `GET /_redrive/v1/queues/{name}` when the endpoint is a Redrive server, else `None`.
pub async fn browse_info(conn: &Conn, queue: &QueueRef) -> Result<Option<(String, BrowseQueue)>> {
    let Some(endpoint) = &conn.endpoint_url else {
        return Ok(None);
    };
    let base = endpoint.trim_end_matches('/').to_string();
    let url = format!("{base}/_redrive/v1/queues/{}", queue.name);
    let resp = match conn
        .extension_request(reqwest::Method::GET, &url, &[], None)
        .await
    {
        Ok(r) => r,
        Err(_) => return Ok(None),
    };
    if !resp.status().is_success() {
        return Ok(None);
    }
    let text = resp.text().await.unwrap_or_default();
    match serde_json::from_str::<BrowseQueue>(&text) {
        Ok(info) => Ok(Some((base, info))),
        Err(_) => Ok(None),
    }
}

/// Is some queue's RedrivePolicy pointing at `queue`?
pub async fn dead_letter_sources(conn: &Conn, queue: &QueueRef) -> Result<Vec<String>> {
    let out = conn
        .sqs
        .list_dead_letter_source_queues()
        .queue_url(&queue.url)
        .send()
        .await
        .map_err(|e| sdk_error(e, &queue.name, conn.endpoint_url.as_deref()))?;
    Ok(out
        .queue_urls()
        .iter()
        .map(|u| u.rsplit('/').next().unwrap_or(u).to_string())
        .collect())
}

impl Source {
    /// Picks the browse API when the server offers it, else the receive-based reader.
    pub async fn open(conn: &Conn, queue: &QueueRef, visibility_timeout: i32) -> Result<Source> {
        if let Some((base, _)) = browse_info(conn, queue).await? {
            return Ok(Source::Browse {
                conn: conn.clone(),
                base,
                queue: queue.clone(),
            });
        }
        let is_dlq = !dead_letter_sources(conn, queue).await?.is_empty();
        Ok(Source::Receive {
            conn: conn.clone(),
            queue: queue.clone(),
            visibility_timeout,
            is_dlq,
        })
    }

    /// The approximate number of messages in the queue (for a progress bar's total), when
    /// the server answers.
    pub async fn approximate_size(&self) -> Option<u64> {
        match self {
            Source::Browse { conn, queue, .. } => browse_info(conn, queue)
                .await
                .ok()
                .flatten()
                .map(|(_, i)| i.visible + i.in_flight + i.delayed),
            Source::Receive { conn, queue, .. } => approximate_count(conn, queue).await.ok(),
        }
    }

    pub fn non_destructive(&self) -> bool {
        matches!(self, Source::Browse { .. })
    }

    /// The warning to print before reading (receive path only).
    pub fn warning(&self) -> Option<String> {
        match self {
            Source::Browse { .. } => None,
            Source::Receive {
                queue,
                visibility_timeout,
                is_dlq,
                ..
            } => {
                let mut w = format!(
                    "warning: the endpoint has no browse API; reading `{}` with ReceiveMessage (messages are hidden for {visibility_timeout}s, never deleted)",
                    queue.name
                );
                if !*is_dlq {
                    w.push_str(&format!(
                        "; `{}` is not a dead-letter queue, so each receive counts toward its maxReceiveCount and may move messages to its DLQ",
                        queue.name
                    ));
                }
                Some(w)
            }
        }
    }

    /// Reads up to `limit` distinct messages, calling `each` for every one.
    pub async fn scan(&self, limit: usize, mut each: impl FnMut(Message)) -> Result<ScanOutcome> {
        match self {
            Source::Browse { conn, base, queue } => {
                let mut after: Option<String> = None;
                let mut read = 0usize;
                loop {
                    let page = (limit - read).clamp(1, 1000);
                    let page_s = page.to_string();
                    let mut query = vec![("limit", page_s.as_str()), ("state", "all")];
                    if let Some(a) = &after {
                        query.push(("after", a.as_str()));
                    }
                    let resp = conn
                        .extension_request(
                            reqwest::Method::GET,
                            &format!("{base}/_redrive/v1/queues/{}/messages", queue.name),
                            &query,
                            None,
                        )
                        .await?;
                    let status = resp.status();
                    let text = resp.text().await.context("reading the browse page")?;
                    if !status.is_success() {
                        return Err(anyhow!("browse API error {status}: {}", text.trim()));
                    }
                    #[derive(Deserialize)]
                    struct Page {
                        messages: Vec<Message>,
                        next: Option<String>,
                    }
                    let page: Page =
                        serde_json::from_str(&text).context("unexpected browse API answer")?;
                    for m in page.messages {
                        if read >= limit {
                            break;
                        }
                        read += 1;
                        each(m);
                    }
                    match page.next {
                        Some(n) if read < limit => after = Some(n),
                        Some(_) => {
                            return Ok(ScanOutcome {
                                read,
                                complete: false,
                                non_destructive: true,
                            });
                        }
                        None => {
                            return Ok(ScanOutcome {
                                read,
                                complete: true,
                                non_destructive: true,
                            });
                        }
                    }
                }
            }
            Source::Receive {
                conn,
                queue,
                visibility_timeout,
                ..
            } => {
                // Visible plus in flight: an in-flight message cannot be read now, so a scan
                // that misses it is incomplete.
                let approx = approximate_count(conn, queue).await?;
                let mut seen = HashSet::new();
                let mut empty = 0;
                let mut stale = 0;
                while seen.len() < limit && empty < 2 && stale < 3 {
                    let want = (limit - seen.len()).min(10) as i32;
                    let out = conn
                        .sqs
                        .receive_message()
                        .queue_url(&queue.url)
                        .max_number_of_messages(want)
                        .visibility_timeout(*visibility_timeout)
                        .wait_time_seconds(1)
                        .message_system_attribute_names(MessageSystemAttributeName::All)
                        .message_attribute_names("All")
                        .send()
                        .await
                        .map_err(|e| sdk_error(e, &queue.name, conn.endpoint_url.as_deref()))?;
                    let msgs = out.messages();
                    if msgs.is_empty() {
                        empty += 1;
                        continue;
                    }
                    empty = 0;
                    let mut new = 0;
                    for m in msgs {
                        let msg = Message::from_sdk(m);
                        if seen.len() < limit && seen.insert(msg.message_id.clone()) {
                            new += 1;
                            each(msg);
                        }
                    }
                    stale = if new == 0 { stale + 1 } else { 0 };
                }
                let read = seen.len();
                Ok(ScanOutcome {
                    read,
                    complete: read < limit && read as u64 >= approx,
                    non_destructive: false,
                })
            }
        }
    }
}

/// Visible plus in-flight messages, as SQS approximates them.
pub async fn approximate_count(conn: &Conn, queue: &QueueRef) -> Result<u64> {
    let out = conn
        .sqs
        .get_queue_attributes()
        .queue_url(&queue.url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .map_err(|e| sdk_error(e, &queue.name, conn.endpoint_url.as_deref()))?;
    let get = |n: QueueAttributeName| {
        out.attributes()
            .and_then(|a| a.get(&n))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    Ok(get(QueueAttributeName::ApproximateNumberOfMessages)
        + get(QueueAttributeName::ApproximateNumberOfMessagesNotVisible))
}
