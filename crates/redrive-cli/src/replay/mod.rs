//! `redrive replay`: selective redrive of a DLQ.
//!
//! Two paths, one selection language (`redrive-select`):
//!
//! - **Server-side** (a Redrive server, detected through its `/_redrive/v1/replays` API): the
//!   server moves each message atomically (see docs/replay-api.md); the CLI previews, starts,
//!   follows, cancels and writes the audit log from the task's `/moves` pages.
//! - **Client-side** (AWS, moto, or `--client-side`): receive / send / delete, in chunks:
//!   1. *scan*: receive messages (holding them with a visibility timeout, extended by a
//!      heartbeat), judge each, transform it, resolve its destination, check the attribute
//!      room; any problem stops the run before anything of the chunk moves;
//!   2. *act*: copy each selected message (paced globally and per key) to its destination,
//!      journal the copy, then delete it from the DLQ;
//!   3. release everything else that was held (visibility 0).
//!
//! # Invariants (client-side)
//! - A message is deleted from the DLQ only after its copy was accepted by the destination and
//!   the `sent` record is durable in the journal (the audit log).
//! - Any message id ever journaled as `sent` for this DLQ is never sent again: if it shows up
//!   in the DLQ it is deleted (its copy already exists). A run whose `end` record is missing
//!   (killed) is resumed with the same run id, so FIFO deduplication ids repeat and SQS
//!   itself drops a resend of a copy whose `sent` record did not reach the disk.
//! - Messages a run replayed that come back to the DLQ (provenance `run` = this run) are
//!   counted by the circuit breaker and not replayed again by the same run.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry,
    MessageAttributeValue, MessageSystemAttributeName, MessageSystemAttributeNameForSends,
    MessageSystemAttributeValue, QueueAttributeName, SendMessageBatchRequestEntry,
};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use redrive_select::breaker::{Breaker, BreakerSpec};
use redrive_select::jq::{self, GroupBy};
use redrive_select::pacing::Pacer;
use redrive_select::provenance::{self, Provenance};
use redrive_select::selection::{
    Candidate, MetaFields, Selection, SelectionSpec, Transform, Verdict, meta,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::client::{Conn, QueueRef, sdk_error};
use crate::source::{Message, Source, browse_info};
use crate::util::now_ms;

/// Exit code of a run that left some selected messages unmoved because of failures.
pub const EXIT_PARTIAL: u8 = 3;
/// Exit code of a run stopped by the circuit breaker.
pub const EXIT_TRIPPED: u8 = 4;
/// Exit code of a run stopped by Ctrl-C (or cancelled).
pub const EXIT_INTERRUPTED: u8 = 130;

/// Messages held (in flight) at most by a client-side run: below SQS's 120,000 in-flight limit.
const MAX_HELD: usize = 100_000;
/// Selected messages scanned, validated and moved per chunk (client-side).
const CHUNK: usize = 10_000;

/// What a replay should do, validated by the binary (every expression compiles, every rate is
/// in range) before any connection is made.
#[derive(Debug, Clone)]
pub struct ReplayPlan {
    /// The DLQ (name or URL).
    pub source: String,
    /// `--to`; default each message's own source (`DeadLetterQueueSourceArn`).
    pub destination: Option<String>,
    pub selection: SelectionSpec,
    pub transform: Option<String>,
    /// Global rate (msg/s).
    pub rate: Option<f64>,
    /// Per-key rate: (jq key expression, msg/s per key value).
    pub rate_per: Option<(String, f64)>,
    pub breaker: Option<BreakerSpec>,
    pub provenance: bool,
    /// `false` only with `--yes`.
    pub dry_run: bool,
    /// Messages shown by the dry run.
    pub sample: usize,
    /// Export the selected messages (NDJSON, `redrive import` format) before anything moves.
    pub backup: Option<PathBuf>,
    /// The audit log / journal; default `./redrive-audit/<dlq>.ndjson`.
    pub audit_log: Option<PathBuf>,
    /// Force the receive / send / delete path on a Redrive server.
    pub client_side: bool,
    /// Server path, non-interactive Ctrl-C: cancel the task instead of detaching.
    pub cancel_on_interrupt: bool,
    /// Client path: visibility timeout (s) messages are held with (extended by a heartbeat).
    pub visibility_timeout: i32,
    /// Server path: follow (and audit) a running replay by id instead of starting one.
    pub attach: Option<String>,
    /// Who asked (audit log).
    pub requested_by: String,
}

/// The compiled expressions of a plan.
struct Compiled {
    selection: Selection,
    transform: Option<Transform>,
    rate_key: Option<GroupBy>,
}

impl ReplayPlan {
    /// Compiles every expression: the one place bad input is caught before connecting.
    fn compile(&self) -> Result<Compiled> {
        let selection =
            Selection::compile(&self.selection).map_err(|e| anyhow!("--filter: {e}"))?;
        let transform = self
            .transform
            .as_deref()
            .map(Transform::compile)
            .transpose()
            .map_err(|e| anyhow!("--transform: {e}"))?;
        let rate_key = self
            .rate_per
            .as_ref()
            .map(|(k, _)| GroupBy::compile(k))
            .transpose()
            .map_err(|e| anyhow!("--rate-per: {e}"))?;
        Ok(Compiled {
            selection,
            transform,
            rate_key,
        })
    }

    /// Checks the plan without connecting (flags of the binary).
    pub fn validate(&self) -> Result<()> {
        self.compile().map(|_| ())
    }

    /// The journal a client-side run of this plan writes (`--audit-log`, else
    /// `./redrive-audit/<dlq>.ndjson`).
    pub fn default_audit_log(&self, dlq: &QueueRef) -> PathBuf {
        self.audit_log.clone().unwrap_or_else(|| {
            PathBuf::from("redrive-audit").join(format!("{}.ndjson", sanitize(&dlq.name)))
        })
    }
}

fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Who is running this: `$USER@host`.
pub fn whoami() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("USERNAME"))
        .unwrap_or_else(|_| "unknown".into());
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_string())
        })
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into());
    format!("{user}@{host}")
}

mod client;
mod journal;
mod output;
mod server;
mod terminal;

pub use journal::*;
pub use output::*;
pub use terminal::*;

// ---------------------------------------------------------------------------------------------
// Entry point

/// Runs a replay: server-side on a Redrive server (unless `--client-side`), else client-side.
pub async fn replay(conn: &Conn, plan: &ReplayPlan, interrupt: &Interrupt) -> Result<ReplayResult> {
    let compiled = plan.compile()?;
    let dlq = conn.resolve(&plan.source).await?;
    if !plan.client_side && server_api(conn, &dlq).await.is_some() {
        return server::run(conn, plan, &dlq, interrupt).await;
    }
    if plan.attach.is_some() {
        bail!(
            "--attach follows a server-side replay and needs a Redrive server (without --client-side)"
        );
    }
    client::run(conn, plan, compiled, &dlq, interrupt).await
}

/// Runs a replay on the client-side path (receive / send / delete) whatever the endpoint, as
/// `--client-side` does (`redrive console`, whose run is spawned: this future is `Send`).
pub async fn replay_client_side(
    conn: &Conn,
    plan: &ReplayPlan,
    interrupt: &Interrupt,
) -> Result<ReplayResult> {
    let compiled = plan.compile()?;
    let dlq = conn.resolve(&plan.source).await?;
    if plan.attach.is_some() {
        bail!("--attach follows a server-side replay, not a client-side run");
    }
    client::run(conn, plan, compiled, &dlq, interrupt).await
}

/// The base URL of the replays API when the endpoint is a Redrive server that has it.
pub async fn server_api(conn: &Conn, dlq: &QueueRef) -> Option<String> {
    let (base, _) = browse_info(conn, dlq).await.ok()??;
    let resp = conn
        .extension_request(
            reqwest::Method::GET,
            &format!("{base}/_redrive/v1/replays"),
            &[("source", dlq.name.as_str())],
            None,
        )
        .await
        .ok()?;
    resp.status().is_success().then_some(base)
}

async fn queue_attrs(conn: &Conn, q: &QueueRef) -> Result<HashMap<String, String>> {
    let out = conn
        .sqs
        .get_queue_attributes()
        .queue_url(&q.url)
        .attribute_names(QueueAttributeName::All)
        .send()
        .await
        .map_err(|e| sdk_error(e, &q.name, conn.endpoint_url.as_deref()))?;
    Ok(out
        .attributes()
        .map(|a| {
            a.iter()
                .map(|(k, v)| (k.as_str().to_string(), v.clone()))
                .collect()
        })
        .unwrap_or_default())
}

/// The `$meta` of a received or browsed message.
fn meta_of(m: &Message) -> Value {
    meta(MetaFields {
        message_id: &m.message_id,
        sent_timestamp: m.sent_timestamp,
        dead_lettered_at: m.dead_lettered_at,
        receive_count: m.receive_count,
        group_id: m.message_group_id.as_deref(),
        dead_letter_source_arn: m.dead_letter_queue_source_arn.as_deref(),
        attributes: serde_json::to_value(&m.attributes).unwrap_or_default(),
        message_attributes: serde_json::to_value(&m.message_attributes).unwrap_or_default(),
    })
}

fn judge(sel: &Selection, m: &Message, meta: &Value) -> Verdict {
    sel.judge(&Candidate {
        body: &m.body,
        meta,
        sent_ms: m.sent_timestamp,
        dead_lettered_ms: m.dead_lettered_at,
    })
}

/// Appends the selected messages in the `redrive export` NDJSON format (fsync'd). Never
/// truncates: a rerun must not erase the backup of what an earlier run moved.
fn backup(path: &Path, messages: &[&Message]) -> Result<()> {
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("cannot write the backup {}", path.display()))?;
    let mut buf = String::new();
    for m in messages {
        buf.push_str(&serde_json::to_string(m)?);
        buf.push('\n');
    }
    f.write_all(buf.as_bytes())
        .and_then(|_| f.sync_all())
        .with_context(|| format!("cannot write the backup {}", path.display()))
}

pub use server::{Task, cancel as cancel_task, list as list_tasks};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dedup_ids_are_deterministic_and_valid() {
        let a = client::dedup_id("cli-1", "m-1");
        assert_eq!(a, client::dedup_id("cli-1", "m-1"));
        assert_ne!(a, client::dedup_id("cli-2", "m-1"));
        let long = "x".repeat(200);
        let b = client::dedup_id("cli-1", &long);
        assert!(b.len() <= 128, "{b}");
        assert_eq!(b, client::dedup_id("cli-1", &long));
    }

    #[test]
    fn journal_finds_sent_and_unfinished_runs() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b.ndjson");
        let (mut j, st) = Journal::open(&path, "arn:dlq").unwrap();
        assert!(st.sent.is_empty() && st.unfinished_run.is_none());
        j.write(&[
            json!({"event": "start", "run": "r1", "source": "arn:dlq", "path": "client"}),
            json!({"event": "sent", "run": "r1", "source": "arn:dlq", "messageId": "m1", "receipt": "h1"}),
            json!({"event": "sent", "run": "r1", "source": "arn:dlq", "messageId": "m2", "receipt": "h2"}),
            json!({"event": "deleted", "run": "r1", "source": "arn:dlq", "messageId": "m1"}),
            json!({"event": "sent", "run": "r9", "source": "arn:other", "messageId": "m3", "receipt": "h3"}),
        ])
        .unwrap();
        // A torn last line is ignored.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"{\"event\":\"sen")
            .unwrap();
        let (_, st) = Journal::open(&path, "arn:dlq").unwrap();
        assert_eq!(st.unfinished_run.as_deref(), Some("r1"));
        assert_eq!(st.sent.len(), 2);
        assert_eq!(st.sent["m1"], ("h1".to_string(), true));
        assert_eq!(st.sent["m2"], ("h2".to_string(), false));
        let (mut j, _) = Journal::open(&path, "arn:dlq").unwrap();
        j.write(&[json!({"event": "end", "run": "r1", "source": "arn:dlq"})])
            .unwrap();
        let (_, st) = Journal::open(&path, "arn:dlq").unwrap();
        assert_eq!(st.unfinished_run, None);
    }
}
