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

    fn default_audit_log(&self, dlq: &QueueRef) -> PathBuf {
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

// ---------------------------------------------------------------------------------------------
// Ctrl-C

/// Counts Ctrl-C presses once installed (the default "kill at once" is replaced, so every
/// path can finish its current step and leave nothing half-done); a second press exits at
/// once with 130.
#[derive(Clone)]
pub struct Interrupt {
    rx: tokio::sync::watch::Receiver<u64>,
}

impl Interrupt {
    /// Installs the handler (call once, inside the runtime).
    pub fn install() -> Interrupt {
        let (tx, rx) = tokio::sync::watch::channel(0u64);
        tokio::spawn(async move {
            loop {
                if tokio::signal::ctrl_c().await.is_err() {
                    return;
                }
                if *tx.borrow() >= 1 {
                    // Second press: leave now. Safe: every copy is journaled before its
                    // original is deleted, so a rerun with the same audit log finishes.
                    eprintln!(
                        "\nsecond Ctrl-C: exiting now (rerun with the same --audit-log to finish)"
                    );
                    std::process::exit(130);
                }
                tx.send_modify(|n| *n += 1);
            }
        });
        Interrupt { rx }
    }

    /// Ctrl-C presses so far.
    pub fn count(&self) -> u64 {
        *self.rx.borrow()
    }

    /// Resolves at the next Ctrl-C after `seen` presses.
    pub async fn after(&self, seen: u64) {
        let mut rx = self.rx.clone();
        let _ = rx.wait_for(|n| *n > seen).await;
    }
}

/// Whether a person can answer a question (stdin and stderr are terminals).
pub fn interactive() -> bool {
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

/// Asks a yes/no question on stderr, reading the answer from stdin (default no).
pub async fn ask(question: &str) -> bool {
    eprint!("\n{question} [y/N] ");
    let _ = std::io::stderr().flush();
    tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).ok();
        matches!(line.trim(), "y" | "Y" | "yes" | "YES" | "Yes")
    })
    .await
    .unwrap_or(false)
}

/// A progress bar on stderr when it is a terminal.
pub fn progress_bar(len: u64, label: &str) -> ProgressBar {
    let target = if std::io::stderr().is_terminal() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    };
    let bar = ProgressBar::with_draw_target(Some(len), target);
    bar.set_style(
        ProgressStyle::with_template(
            "{prefix} [{bar:30}] {pos}/{len} ({per_sec}, eta {eta}) {msg}",
        )
        .expect("a valid template")
        .progress_chars("=> "),
    );
    bar.set_prefix(label.to_string());
    if !bar.is_hidden() {
        bar.enable_steady_tick(Duration::from_millis(200));
    }
    bar
}

// ---------------------------------------------------------------------------------------------
// Reports

/// Where the selected messages would go (or went).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DestinationCount {
    pub arn: String,
    pub name: String,
    pub count: u64,
}

/// One message of a dry run's sample.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SampleEntry {
    pub message_id: String,
    pub destination: String,
    /// The body after the transform.
    pub body: String,
    #[serde(default)]
    pub sent_timestamp: Option<i64>,
    #[serde(default)]
    pub dead_lettered_at: Option<i64>,
}

/// What a dry run found (the same shape as the server's dry-run answer).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Preview {
    #[serde(default)]
    pub dry_run: bool,
    #[serde(default)]
    pub scanned: u64,
    #[serde(default)]
    pub selected: u64,
    #[serde(default)]
    pub filter_errors: u64,
    #[serde(default)]
    pub not_visible: u64,
    #[serde(default)]
    pub destinations: Vec<DestinationCount>,
    #[serde(default)]
    pub sample: Vec<SampleEntry>,
    /// Messages the scan skipped because this journal already replayed them.
    #[serde(default)]
    pub already_replayed: u64,
    /// `false` when the scan could not read the whole DLQ (client-side hold limit).
    #[serde(default = "yes")]
    pub complete: bool,
    /// `server` or `client`.
    #[serde(default)]
    pub path: String,
}

fn yes() -> bool {
    true
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Outcome {
    Completed,
    /// Some selected messages failed (they are still in the DLQ).
    Partial,
    Tripped,
    Interrupted,
    Cancelled,
    /// The server task is still running; the CLI stopped following it.
    Detached,
    Failed,
}

impl Outcome {
    pub fn exit_code(self) -> u8 {
        match self {
            Outcome::Completed | Outcome::Detached => 0,
            Outcome::Partial | Outcome::Failed => EXIT_PARTIAL,
            Outcome::Tripped => EXIT_TRIPPED,
            Outcome::Interrupted | Outcome::Cancelled => EXIT_INTERRUPTED,
        }
    }
}

/// The honest summary of a run.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// The client run id or the server task id.
    pub run: String,
    pub path: &'static str,
    pub outcome: Outcome,
    pub selected: u64,
    /// Copied to the destination and deleted from the DLQ by this run.
    pub moved: u64,
    /// Selected but gone (or already replayed) when their turn came.
    pub skipped: u64,
    pub failed: u64,
    /// Selected, not moved: still in the DLQ (stopped early, or failed).
    pub remaining: u64,
    /// Replayed messages that came back to the DLQ during the run.
    pub returned: u64,
    /// Copies made by an earlier, interrupted run whose DLQ delete this run finished.
    pub finished_pending: u64,
    /// Sent but not yet deleted from the DLQ (a rerun with the same audit log finishes them).
    pub pending_delete: u64,
    pub destinations: Vec<DestinationCount>,
    pub reason: Option<String>,
    pub audit_log: String,
    /// Approximate number of messages in the DLQ at the end.
    pub left_in_dlq: Option<u64>,
}

/// What `replay` produced.
pub enum ReplayResult {
    Preview(Preview),
    Summary(Summary),
}

impl ReplayResult {
    pub fn exit_code(&self) -> u8 {
        match self {
            ReplayResult::Preview(_) => 0,
            ReplayResult::Summary(s) => s.outcome.exit_code(),
        }
    }

    /// Text for people, or one JSON document.
    pub fn render(&self, dlq: &str, json: bool) -> String {
        match self {
            ReplayResult::Preview(p) if json => {
                serde_json::to_string_pretty(p).unwrap_or_default() + "\n"
            }
            ReplayResult::Summary(s) if json => {
                serde_json::to_string_pretty(s).unwrap_or_default() + "\n"
            }
            ReplayResult::Preview(p) => render_preview(dlq, p),
            ReplayResult::Summary(s) => render_summary(dlq, s),
        }
    }
}

fn render_preview(dlq: &str, p: &Preview) -> String {
    let mut out = format!(
        "DRY RUN ({} path): nothing was moved.\n{} of {} scanned messages in `{dlq}` would be replayed",
        p.path, p.selected, p.scanned
    );
    if !p.complete {
        out.push_str(" (the scan stopped early: more messages may match)");
    }
    out.push('\n');
    if p.filter_errors > 0 {
        out.push_str(&format!(
            "  {} messages made the filter fail (not selected)\n",
            p.filter_errors
        ));
    }
    if p.not_visible > 0 {
        out.push_str(&format!(
            "  {} messages were in flight (not considered)\n",
            p.not_visible
        ));
    }
    if p.already_replayed > 0 {
        out.push_str(&format!(
            "  {} messages were already replayed according to the audit log (would be deleted)\n",
            p.already_replayed
        ));
    }
    for d in &p.destinations {
        out.push_str(&format!("  → {}: {}\n", d.name, d.count));
    }
    if !p.sample.is_empty() {
        out.push_str("sample:\n");
        for s in &p.sample {
            let body: String = s.body.chars().take(200).collect();
            let more = if s.body.chars().count() > 200 {
                "…"
            } else {
                ""
            };
            out.push_str(&format!(
                "  {} → {}: {body}{more}\n",
                s.message_id,
                queue_name_of(&s.destination)
            ));
        }
    }
    out.push_str("Run again with --yes to replay them.\n");
    out
}

fn render_summary(dlq: &str, s: &Summary) -> String {
    let mut out = format!(
        "replay of `{dlq}` ({} path, run {}): {:?}\n  selected {}  moved {}  skipped {}  failed {}  remaining {}\n",
        s.path, s.run, s.outcome, s.selected, s.moved, s.skipped, s.failed, s.remaining
    );
    if s.returned > 0 {
        out.push_str(&format!(
            "  returned to the DLQ during the run: {}\n",
            s.returned
        ));
    }
    if s.finished_pending > 0 {
        out.push_str(&format!(
            "  finished the DLQ delete of {} messages copied by an interrupted run\n",
            s.finished_pending
        ));
    }
    if s.pending_delete > 0 {
        out.push_str(&format!(
            "  {} copied messages could not be deleted from the DLQ yet: rerun with the same --audit-log to finish\n",
            s.pending_delete
        ));
    }
    for d in &s.destinations {
        out.push_str(&format!("  → {}: {}\n", d.name, d.count));
    }
    if let Some(r) = &s.reason {
        out.push_str(&format!("  reason: {r}\n"));
    }
    if let Some(n) = s.left_in_dlq {
        out.push_str(&format!("  messages now in the DLQ: ~{n}\n"));
    }
    out.push_str(&format!("  audit log: {}\n", s.audit_log));
    out
}

fn queue_name_of(arn_or_url: &str) -> &str {
    arn_or_url
        .trim_end_matches('/')
        .rsplit([':', '/'])
        .next()
        .unwrap_or(arn_or_url)
}

// ---------------------------------------------------------------------------------------------
// Journal (the audit log)

/// The audit log, NDJSON, one record per line, appended and fsync'd; it is also the journal a
/// rerun reads to finish what an interrupted run started. Records (`event`):
/// `start`, `sent` (a copy accepted by the destination: `messageId`, `newMessageId`,
/// `receipt`, `destination`), `deleted`, `failed`, `moved` (server path), `end`.
pub struct Journal {
    file: File,
    pub path: PathBuf,
}

/// What a journal says about a DLQ.
#[derive(Debug, Default)]
pub struct JournalState {
    /// Every message id ever copied from this DLQ → (receipt handle, deleted?).
    pub sent: HashMap<String, (String, bool)>,
    /// The last run on this DLQ that has a `start` but no `end` record (killed).
    pub unfinished_run: Option<String>,
}

impl Journal {
    /// Opens (creating directories and the file) and reads what it already holds about `source`.
    pub fn open(path: &Path, source_arn: &str) -> Result<(Journal, JournalState)> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let mut state = JournalState::default();
        if let Ok(f) = File::open(path) {
            let mut open_runs: Vec<String> = Vec::new();
            for line in BufReader::new(f).lines() {
                let Ok(line) = line else { break };
                // A torn last line (crash while writing) is ignored.
                let Ok(v) = serde_json::from_str::<Value>(&line) else {
                    continue;
                };
                if v["source"].as_str() != Some(source_arn) {
                    continue;
                }
                let id = v["messageId"].as_str().unwrap_or_default().to_string();
                let run = v["run"].as_str().unwrap_or_default().to_string();
                match v["event"].as_str() {
                    Some("start") if v["path"] == "client" && v["dryRun"] != true => {
                        open_runs.push(run)
                    }
                    Some("end") => open_runs.retain(|r| *r != run),
                    Some("sent") => {
                        let receipt = v["receipt"].as_str().unwrap_or_default().to_string();
                        state.sent.insert(id, (receipt, false));
                    }
                    Some("deleted") => {
                        if let Some(e) = state.sent.get_mut(&id) {
                            e.1 = true;
                        }
                    }
                    _ => {}
                }
            }
            state.unfinished_run = open_runs.pop();
        }
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("cannot open the audit log {}", path.display()))?;
        // After a torn last line (a crash while writing), start on a fresh line.
        let text_end = std::fs::read(path).ok().and_then(|b| b.last().copied());
        if text_end.is_some_and(|b| b != b'\n') {
            file.write_all(b"\n")
                .with_context(|| format!("cannot write the audit log {}", path.display()))?;
        }
        Ok((
            Journal {
                file,
                path: path.to_path_buf(),
            },
            state,
        ))
    }

    /// Appends records and makes them durable before returning.
    pub fn write(&mut self, records: &[Value]) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        let mut buf = String::new();
        for r in records {
            buf.push_str(&r.to_string());
            buf.push('\n');
        }
        self.file
            .write_all(buf.as_bytes())
            .and_then(|_| self.file.sync_data())
            .with_context(|| format!("cannot write the audit log {}", self.path.display()))
    }
}

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

// ---------------------------------------------------------------------------------------------
// Client-side path

mod client {
    use super::*;

    /// A resolved destination queue.
    #[derive(Debug, Clone)]
    pub(super) struct Dest {
        pub queue: QueueRef,
        pub arn: String,
        pub max_size: usize,
    }

    /// A message received from the DLQ and still held by this run.
    struct Held {
        receipt: String,
        /// The message in export shape (for the backup and `$meta`).
        msg: Message,
        sdk: aws_sdk_sqs::types::Message,
    }

    /// A selected message, ready to send.
    struct Ready {
        held: Held,
        body: String,
        dest: usize,
        key: Option<String>,
    }

    fn to_message(m: &aws_sdk_sqs::types::Message) -> Message {
        Message::from_sdk(m)
    }

    /// The FIFO deduplication id of a replayed copy: fresh w.r.t. the original (it names the
    /// run), identical for a resend of the same message by a resumed run (so SQS drops it).
    pub(super) fn dedup_id(run: &str, message_id: &str) -> String {
        let id = format!("{run}.{message_id}");
        if id.len() <= 128 && id.chars().all(|c| c.is_ascii_graphic()) {
            id
        } else {
            use std::hash::{Hash, Hasher};
            let mut h = std::hash::DefaultHasher::new();
            message_id.hash(&mut h);
            format!("{run}.{:016x}", h.finish())
        }
    }

    fn queued_receipts(queues: &HashMap<String, VecDeque<Ready>>) -> Vec<String> {
        queues
            .values()
            .flat_map(|q| q.iter().map(|x| x.held.receipt.clone()))
            .collect()
    }

    struct Run<'a> {
        conn: &'a Conn,
        plan: &'a ReplayPlan,
        c: Compiled,
        dlq: QueueRef,
        dlq_arn: String,
        fifo: bool,
        run: String,
        journal: Journal,
        /// Every id ever copied from this DLQ (journal), and whether its delete is known.
        sent: HashMap<String, (String, bool)>,
        dests: Vec<Dest>,
        dest_by_arn: HashMap<String, usize>,
        fixed_dest: Option<usize>,
        /// Held but not to be replayed now (unselected, returned, new): receipt by id.
        parked: HashMap<String, String>,
        /// Ids received at least once by this run.
        seen: HashSet<String>,
        /// Received while polling for returns during the act phase; judged by the next scan.
        backlog: Vec<aws_sdk_sqs::types::Message>,
        held_until: Instant,
        started: Instant,
        pacer: Pacer,
        breaker: Option<Breaker>,
        s: Summary,
        dest_counts: BTreeMap<usize, u64>,
        preview: Preview,
    }

    pub(super) async fn run(
        conn: &Conn,
        plan: &ReplayPlan,
        c: Compiled,
        dlq: &QueueRef,
        interrupt: &Interrupt,
    ) -> Result<ReplayResult> {
        let attrs = queue_attrs(conn, dlq).await?;
        let dlq_arn = attrs.get("QueueArn").cloned().unwrap_or_default();
        let fifo = dlq.is_fifo();
        let audit = plan.default_audit_log(dlq);
        let (journal, state) = Journal::open(&audit, &dlq_arn)?;
        let resumed = state.unfinished_run.clone();
        let run = resumed
            .clone()
            .unwrap_or_else(|| format!("cli-{}", uuid::Uuid::new_v4()));
        let mut r = Run {
            conn,
            plan,
            c,
            dlq: dlq.clone(),
            dlq_arn,
            fifo,
            run: run.clone(),
            journal,
            sent: state.sent,
            dests: Vec::new(),
            dest_by_arn: HashMap::new(),
            fixed_dest: None,
            parked: HashMap::new(),
            seen: HashSet::new(),
            backlog: Vec::new(),
            held_until: Instant::now(),
            started: Instant::now(),
            pacer: Pacer::new(plan.rate, plan.rate_per.as_ref().map(|(_, r)| *r)),
            breaker: plan.breaker.map(Breaker::new),
            s: Summary {
                run,
                path: "client",
                outcome: Outcome::Completed,
                selected: 0,
                moved: 0,
                skipped: 0,
                failed: 0,
                remaining: 0,
                returned: 0,
                finished_pending: 0,
                pending_delete: 0,
                destinations: Vec::new(),
                reason: None,
                audit_log: audit.display().to_string(),
                left_in_dlq: None,
            },
            dest_counts: BTreeMap::new(),
            preview: Preview {
                dry_run: true,
                complete: true,
                path: "client".into(),
                ..Preview::default()
            },
        };
        if let Some(to) = &plan.destination {
            let d = r.resolve_dest(to).await?;
            r.fixed_dest = Some(d);
        }
        if let Some(prev) = &resumed
            && !plan.dry_run
        {
            eprintln!(
                "resuming run {prev} (its process ended without an end record); copies it made are not sent again"
            );
        }
        if plan.dry_run {
            let result = r.dry_run().await;
            r.release_all().await;
            return result;
        }
        if resumed.is_none() {
            r.journal.write(&[r.record(
                "start",
                json!({
                    "who": plan.requested_by,
                    "path": "client",
                    "dryRun": false,
                    "destination": plan.destination,
                    "selection": plan.selection,
                    "transform": plan.transform,
                    "rate": plan.rate,
                    "ratePer": plan.rate_per.as_ref().map(|(k, v)| json!({"key": k, "rate": v})),
                    "breaker": plan.breaker,
                    "provenance": plan.provenance,
                }),
            )])?;
        }
        let result = r.act(interrupt).await;
        r.release_all().await;
        match result {
            Ok(()) => {}
            Err(e) => {
                // Bad input found by a chunk's scan: nothing of that chunk moved.
                r.s.outcome = Outcome::Failed;
                r.s.reason = Some(format!("{e:#}"));
                r.finish_record()?;
                if r.s.moved == 0 && r.s.finished_pending == 0 {
                    return Err(e);
                }
            }
        }
        if matches!(r.s.outcome, Outcome::Completed) && (r.s.failed > 0 || r.s.pending_delete > 0) {
            r.s.outcome = Outcome::Partial;
        }
        if r.s.outcome != Outcome::Failed {
            r.finish_record()?;
        }
        r.s.left_in_dlq = crate::source::approximate_count(conn, dlq).await.ok();
        Ok(ReplayResult::Summary(r.s))
    }

    impl Run<'_> {
        fn record(&self, event: &str, extra: Value) -> Value {
            let mut v = json!({
                "event": event,
                "at": now_ms(),
                "run": self.run,
                "source": self.dlq_arn,
            });
            if let (Some(o), Value::Object(e)) = (v.as_object_mut(), extra) {
                o.extend(e);
            }
            v
        }

        fn finish_record(&mut self) -> Result<()> {
            self.s.destinations = self.destination_counts();
            let rec = self.record(
                "end",
                json!({
                    "outcome": self.s.outcome,
                    "reason": self.s.reason,
                    "counts": {
                        "selected": self.s.selected, "moved": self.s.moved,
                        "skipped": self.s.skipped, "failed": self.s.failed,
                        "remaining": self.s.remaining, "returned": self.s.returned,
                        "finishedPending": self.s.finished_pending,
                        "pendingDelete": self.s.pending_delete,
                    },
                }),
            );
            self.journal.write(&[rec])
        }

        fn destination_counts(&self) -> Vec<DestinationCount> {
            self.dest_counts
                .iter()
                .map(|(&i, &count)| DestinationCount {
                    arn: self.dests[i].arn.clone(),
                    name: self.dests[i].queue.name.clone(),
                    count,
                })
                .collect()
        }

        async fn resolve_dest(&mut self, q: &str) -> Result<usize> {
            if let Some(&i) = self.dest_by_arn.get(q) {
                return Ok(i);
            }
            let name = if q.starts_with("arn:") {
                queue_name_of(q).to_string()
            } else {
                q.to_string()
            };
            let queue = self
                .conn
                .resolve(&name)
                .await
                .map_err(|e| anyhow!("destination: {e:#}"))?;
            let attrs = queue_attrs(self.conn, &queue).await?;
            let arn = attrs.get("QueueArn").cloned().unwrap_or_default();
            if arn == self.dlq_arn || queue.url == self.dlq.url {
                bail!(
                    "the destination `{}` is the DLQ itself; use --to with another queue",
                    queue.name
                );
            }
            if queue.is_fifo() != self.fifo {
                let (a, b) = if self.fifo {
                    ("FIFO", "standard")
                } else {
                    ("standard", "FIFO")
                };
                bail!(
                    "the DLQ `{}` is a {a} queue but the destination `{}` is a {b} queue; a replay keeps MessageGroupId and needs both of the same type",
                    self.dlq.name,
                    queue.name
                );
            }
            let max_size = attrs
                .get("MaximumMessageSize")
                .and_then(|v| v.parse().ok())
                .unwrap_or(262_144);
            let i = self.dests.len();
            self.dests.push(Dest {
                queue,
                arn: arn.clone(),
                max_size,
            });
            self.dest_by_arn.insert(arn, i);
            self.dest_by_arn.insert(q.to_string(), i);
            Ok(i)
        }

        fn elapsed_ms(&self) -> f64 {
            self.started.elapsed().as_secs_f64() * 1000.0
        }

        fn vt(&self) -> i32 {
            self.plan.visibility_timeout.clamp(1, 43_200)
        }

        async fn receive(&mut self, wait: i32) -> Result<Vec<aws_sdk_sqs::types::Message>> {
            if !self.backlog.is_empty() {
                return Ok(std::mem::take(&mut self.backlog));
            }
            let out = self
                .conn
                .sqs
                .receive_message()
                .queue_url(&self.dlq.url)
                .max_number_of_messages(10)
                .visibility_timeout(self.vt())
                .wait_time_seconds(wait)
                .message_system_attribute_names(MessageSystemAttributeName::All)
                .message_attribute_names("All")
                .send()
                .await
                .map_err(|e| sdk_error(e, &self.dlq.name, self.conn.endpoint_url.as_deref()))?;
            let now = Instant::now() + Duration::from_secs(self.vt() as u64);
            if self.held_until < Instant::now() {
                self.held_until = now;
            }
            Ok(out.messages.unwrap_or_default())
        }

        /// Scans up to `cap` selected messages: judged, transformed, destinations resolved.
        /// Returns the selected ones; messages already copied (journal) go to `done`.
        async fn scan(
            &mut self,
            cap: usize,
            limit_left: Option<u64>,
            interrupt: &Interrupt,
            seen_ctrl_c: u64,
        ) -> Result<(Vec<Ready>, Vec<Held>, Vec<String>, bool)> {
            let mut ready: Vec<Ready> = Vec::new();
            let mut done: Vec<Held> = Vec::new();
            let mut problems: Vec<String> = Vec::new();
            let mut empty = 0;
            let mut complete = true;
            let want = limit_left.map_or(cap, |l| (l as usize).min(cap));
            while ready.len() < want && empty < 2 {
                if interrupt.count() > seen_ctrl_c {
                    complete = false;
                    break;
                }
                if self.parked.len() + ready.len() >= MAX_HELD {
                    complete = false;
                    break;
                }
                if self.needs_heartbeat() {
                    // Long scans (or short --visibility-timeout): keep what is held hidden.
                    let queued: Vec<String> = ready
                        .iter()
                        .map(|x| x.held.receipt.clone())
                        .chain(done.iter().map(|d| d.receipt.clone()))
                        .collect();
                    self.heartbeat(queued).await;
                }
                let msgs = self.receive(1).await?;
                if msgs.is_empty() {
                    empty += 1;
                    // One empty long poll and nothing visible left: the scan is done.
                    if self.visible_now().await == Some(0) {
                        break;
                    }
                    continue;
                }
                empty = 0;
                for m in msgs {
                    let receipt = m.receipt_handle().unwrap_or_default().to_string();
                    let msg = to_message(&m);
                    let id = msg.message_id.clone();
                    if !self.seen.insert(id.clone()) {
                        // Seen before (its hold expired): keep the newest receipt.
                        if let Some(r) = self.parked.get_mut(&id) {
                            *r = receipt;
                        } else if let Some(x) =
                            ready.iter_mut().find(|x| x.held.msg.message_id == id)
                        {
                            x.held.receipt = receipt;
                        } else {
                            self.parked.insert(id, receipt);
                        }
                        continue;
                    }
                    self.preview.scanned += 1;
                    if self.sent.contains_key(&id) {
                        // Copied by an earlier run: delete it, never send it again.
                        self.preview.already_replayed += 1;
                        done.push(Held {
                            receipt,
                            msg,
                            sdk: m,
                        });
                        continue;
                    }
                    let own = m
                        .message_attributes()
                        .and_then(|a| a.get(provenance::ATTRIBUTE))
                        .and_then(|v| v.string_value())
                        .and_then(Provenance::parse);
                    if own.is_some_and(|p| p.run == self.run) {
                        // Replayed by this very run and back in the DLQ.
                        self.s.returned += 1;
                        if let Some(b) = &mut self.breaker {
                            b.returned(self.started.elapsed().as_millis() as u64);
                        }
                        self.parked.insert(id, receipt);
                        continue;
                    }
                    if ready.len() >= want {
                        self.parked.insert(id, receipt);
                        continue;
                    }
                    let meta = meta_of(&msg);
                    match judge(&self.c.selection, &msg, &meta) {
                        Verdict::Selected => {}
                        Verdict::NotSelected => {
                            self.parked.insert(id, receipt);
                            continue;
                        }
                        Verdict::FilterError(_) => {
                            self.preview.filter_errors += 1;
                            self.parked.insert(id, receipt);
                            continue;
                        }
                    }
                    match self.prepare(&msg, &m, &meta).await {
                        Ok((body, dest, key)) => ready.push(Ready {
                            held: Held {
                                receipt,
                                msg,
                                sdk: m,
                            },
                            body,
                            dest,
                            key,
                        }),
                        Err(e) => {
                            problems.push(format!("message {id}: {e:#}"));
                            self.parked.insert(id, receipt);
                        }
                    }
                }
            }
            Ok((ready, done, problems, complete))
        }

        /// Transform, destination, key and attribute room of one selected message.
        async fn prepare(
            &mut self,
            msg: &Message,
            m: &aws_sdk_sqs::types::Message,
            meta: &Value,
        ) -> Result<(String, usize, Option<String>)> {
            let dest = match self.fixed_dest {
                Some(d) => d,
                None => {
                    let Some(src) = msg.dead_letter_queue_source_arn.clone() else {
                        bail!(
                            "it has no DeadLetterQueueSourceArn (it was not dead-lettered by a redrive policy); use --to QUEUE"
                        );
                    };
                    self.resolve_dest(&src)
                        .await
                        .map_err(|e| anyhow!("its source queue {src} cannot be used: {e:#}"))?
                }
            };
            let body = match &self.c.transform {
                Some(t) => t
                    .apply(&msg.body, meta, self.dests[dest].max_size)
                    .map_err(|e| anyhow!("{e}"))?,
                None => msg.body.clone(),
            };
            if self.plan.provenance {
                let names = m
                    .message_attributes()
                    .map(|a| a.keys().map(String::as_str).collect::<Vec<_>>())
                    .unwrap_or_default();
                provenance::check_room(names).map_err(|e| anyhow!("{e}"))?;
            }
            let key = self
                .c
                .rate_key
                .as_ref()
                .map(|k| k.key(&jq::body_value(&msg.body), &jq::from_json(meta)));
            Ok((body, dest, key))
        }

        async fn dry_run(&mut self) -> Result<ReplayResult> {
            let limit = self.plan.selection.limit;
            let never = Interrupt {
                rx: tokio::sync::watch::channel(0).1,
            };
            let (ready, done, problems, complete) = self.scan(MAX_HELD, limit, &never, 0).await?;
            for d in done {
                self.parked.insert(d.msg.message_id.clone(), d.receipt);
            }
            self.preview.complete = complete;
            self.preview.selected = ready.len() as u64;
            for x in &ready {
                *self.dest_counts.entry(x.dest).or_default() += 1;
            }
            self.preview.destinations = self.destination_counts();
            self.preview.sample = ready
                .iter()
                .take(self.plan.sample)
                .map(|x| SampleEntry {
                    message_id: x.held.msg.message_id.clone(),
                    destination: self.dests[x.dest].arn.clone(),
                    body: x.body.clone(),
                    sent_timestamp: x.held.msg.sent_timestamp,
                    dead_lettered_at: x.held.msg.dead_lettered_at,
                })
                .collect();
            for x in ready {
                self.parked
                    .insert(x.held.msg.message_id.clone(), x.held.receipt);
            }
            let _ = self.journal.write(&[self.record(
                "dryRun",
                json!({"who": self.plan.requested_by, "path": "client",
                       "selection": self.plan.selection, "transform": self.plan.transform,
                       "destination": self.plan.destination,
                       "scanned": self.preview.scanned, "selected": self.preview.selected,
                       "problems": problems.len()}),
            )]);
            if !problems.is_empty() {
                let shown = &problems[0];
                bail!(
                    "{} selected message(s) cannot be replayed; first: {shown}",
                    problems.len()
                );
            }
            Ok(ReplayResult::Preview(self.preview.clone()))
        }

        async fn act(&mut self, interrupt: &Interrupt) -> Result<()> {
            let seen_ctrl_c = interrupt.count();
            let mut first_chunk = true;
            loop {
                let limit_left = self
                    .plan
                    .selection
                    .limit
                    .map(|l| l.saturating_sub(self.s.selected));
                if limit_left == Some(0) {
                    break;
                }
                let (ready, done, problems, _complete) =
                    self.scan(CHUNK, limit_left, interrupt, seen_ctrl_c).await?;
                if !problems.is_empty() {
                    for x in ready {
                        self.parked
                            .insert(x.held.msg.message_id.clone(), x.held.receipt);
                    }
                    for d in done {
                        self.parked.insert(d.msg.message_id.clone(), d.receipt);
                    }
                    bail!(
                        "{} selected message(s) cannot be replayed{}; first: {}",
                        problems.len(),
                        if first_chunk {
                            " (nothing was moved)"
                        } else {
                            " (this chunk was not moved)"
                        },
                        problems[0]
                    );
                }
                first_chunk = false;
                let progressed = !ready.is_empty() || !done.is_empty();
                self.finish_done(done).await?;
                if ready.is_empty() {
                    break;
                }
                self.s.selected += ready.len() as u64;
                if let Some(path) = &self.plan.backup {
                    let msgs: Vec<&Message> = ready.iter().map(|x| &x.held.msg).collect();
                    backup(path, &msgs)?;
                }
                self.send_all(ready, interrupt, seen_ctrl_c).await?;
                if self.s.outcome != Outcome::Completed || !progressed {
                    break;
                }
            }
            Ok(())
        }

        /// Deletes DLQ messages whose copy an earlier run already made.
        async fn finish_done(&mut self, done: Vec<Held>) -> Result<()> {
            for chunk in done.chunks(10) {
                let ids: Vec<(String, String)> = chunk
                    .iter()
                    .map(|h| (h.msg.message_id.clone(), h.receipt.clone()))
                    .collect();
                let deleted = self.delete(&ids).await;
                let recs: Vec<Value> = deleted
                    .iter()
                    .map(|id| self.record("deleted", json!({"messageId": id, "finishing": true})))
                    .collect();
                self.journal.write(&recs)?;
                self.s.finished_pending += deleted.len() as u64;
                for (id, receipt) in ids {
                    if !deleted.contains(&id) {
                        self.parked.insert(id, receipt);
                    }
                }
            }
            Ok(())
        }

        /// Deletes from the DLQ; the ids whose delete succeeded.
        async fn delete(&mut self, items: &[(String, String)]) -> Vec<String> {
            let entries: Vec<DeleteMessageBatchRequestEntry> = items
                .iter()
                .enumerate()
                .filter_map(|(i, (_, r))| {
                    DeleteMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(r)
                        .build()
                        .ok()
                })
                .collect();
            if entries.is_empty() {
                return Vec::new();
            }
            match self
                .conn
                .sqs
                .delete_message_batch()
                .queue_url(&self.dlq.url)
                .set_entries(Some(entries))
                .send()
                .await
            {
                Ok(out) => out
                    .successful()
                    .iter()
                    .filter_map(|s| s.id().parse::<usize>().ok())
                    .filter_map(|i| items.get(i).map(|(id, _)| id.clone()))
                    .collect(),
                // Not deleted: they stay `sent` in the journal; a rerun deletes them.
                Err(_) => Vec::new(),
            }
        }

        async fn visible_now(&self) -> Option<u64> {
            let out = self
                .conn
                .sqs
                .get_queue_attributes()
                .queue_url(&self.dlq.url)
                .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
                .send()
                .await
                .ok()?;
            out.attributes()?
                .get(&QueueAttributeName::ApproximateNumberOfMessages)?
                .parse()
                .ok()
        }

        fn needs_heartbeat(&self) -> bool {
            let margin = Duration::from_secs_f64((self.vt() as f64 / 2.0).max(0.5));
            Instant::now() + margin >= self.held_until
        }

        /// Keeps every held message hidden while the run works: the parked ones and `queued`.
        async fn heartbeat(&mut self, queued: Vec<String>) {
            let mut all: Vec<String> = self.parked.values().cloned().collect();
            all.extend(queued);
            self.change_visibility(&all, self.vt()).await;
            self.held_until = Instant::now() + Duration::from_secs(self.vt() as u64);
        }

        async fn change_visibility(&self, receipts: &[String], secs: i32) {
            for chunk in receipts.chunks(10) {
                let entries: Vec<_> = chunk
                    .iter()
                    .enumerate()
                    .filter_map(|(i, r)| {
                        ChangeMessageVisibilityBatchRequestEntry::builder()
                            .id(i.to_string())
                            .receipt_handle(r)
                            .visibility_timeout(secs)
                            .build()
                            .ok()
                    })
                    .collect();
                // Best effort: a message not released comes back when its timeout expires.
                let _ = self
                    .conn
                    .sqs
                    .change_message_visibility_batch()
                    .queue_url(&self.dlq.url)
                    .set_entries(Some(entries))
                    .send()
                    .await;
            }
        }

        /// Makes every message still held visible again.
        async fn release_all(&mut self) {
            let all: Vec<String> = self.parked.drain().map(|(_, r)| r).collect();
            self.change_visibility(&all, 0).await;
        }

        /// Sends the chunk, paced; each copy journaled before its DLQ delete.
        async fn send_all(
            &mut self,
            ready: Vec<Ready>,
            interrupt: &Interrupt,
            seen_ctrl_c: u64,
        ) -> Result<()> {
            // One queue per key, in the order received (oldest first within a key for FIFO
            // groups); the next message is the one whose key is ready first.
            let mut keys: Vec<String> = Vec::new();
            let mut queues: HashMap<String, VecDeque<Ready>> = HashMap::new();
            for x in ready {
                let k = x.key.clone().unwrap_or_default();
                if !queues.contains_key(&k) {
                    keys.push(k.clone());
                }
                queues.entry(k).or_default().push_back(x);
            }
            let mut last_poll = Instant::now();
            let bar = progress_bar(queues.values().map(|q| q.len() as u64).sum(), "replaying");
            let mut consecutive_errors = 0;
            loop {
                if interrupt.count() > seen_ctrl_c {
                    self.s.outcome = Outcome::Interrupted;
                    self.s.reason = Some("interrupted (Ctrl-C)".into());
                    break;
                }
                let mut batch: Vec<Ready> = Vec::new();
                // Fill a batch with messages ready now for the same destination.
                loop {
                    let next = keys
                        .iter()
                        .filter(|k| queues.get(*k).is_some_and(|q| !q.is_empty()))
                        .map(|k| {
                            let key = queues[k].front().and_then(|x| x.key.as_deref());
                            (self.pacer.ready_at(key), k.clone())
                        })
                        .min_by(|a, b| a.0.total_cmp(&b.0));
                    let Some((at, k)) = next else { break };
                    let now = self.elapsed_ms();
                    if at > now {
                        if !batch.is_empty() {
                            break;
                        }
                        if self.needs_heartbeat() {
                            let queued = queued_receipts(&queues);
                            self.heartbeat(queued).await;
                        }
                        let wait = Duration::from_secs_f64((at - now) / 1000.0)
                            .min(Duration::from_millis(500));
                        tokio::select! {
                            _ = tokio::time::sleep(wait) => {},
                            _ = interrupt.after(seen_ctrl_c) => {},
                        }
                        if interrupt.count() > seen_ctrl_c {
                            break;
                        }
                        continue;
                    }
                    let dest = queues[&k].front().map(|x| x.dest);
                    if batch.first().is_some_and(|b| Some(b.dest) != dest) {
                        break;
                    }
                    let x = queues
                        .get_mut(&k)
                        .and_then(|q| q.pop_front())
                        .expect("non-empty");
                    self.pacer.record(x.key.as_deref(), now.max(at));
                    batch.push(x);
                    if batch.len() == 10 {
                        break;
                    }
                }
                if batch.is_empty() {
                    if queues.values().all(|q| q.is_empty()) {
                        break;
                    }
                    continue;
                }
                match self.send_batch(batch).await {
                    Ok(n) => {
                        consecutive_errors = 0;
                        bar.inc(n);
                    }
                    Err((e, back)) => {
                        // Nothing of this batch was accepted: it stays in the DLQ.
                        consecutive_errors += 1;
                        for x in back {
                            self.s.failed += 1;
                            self.parked
                                .insert(x.held.msg.message_id.clone(), x.held.receipt);
                        }
                        if consecutive_errors >= 3 {
                            self.s.outcome = Outcome::Failed;
                            self.s.reason = Some(format!("sends keep failing: {e:#}"));
                            break;
                        }
                    }
                }
                if self.needs_heartbeat() {
                    let queued = queued_receipts(&queues);
                    self.heartbeat(queued).await;
                }
                if self.breaker.is_some() && last_poll.elapsed() >= Duration::from_millis(500) {
                    last_poll = Instant::now();
                    self.poll_returns().await;
                    let now = self.started.elapsed().as_millis() as u64;
                    if let Some(reason) = self.breaker.as_mut().and_then(|b| b.check(now)) {
                        self.s.outcome = Outcome::Tripped;
                        self.s.reason = Some(reason);
                        break;
                    }
                }
            }
            bar.finish_and_clear();
            // Whatever was not sent stays in the DLQ (released at the end).
            for q in queues.into_values() {
                for x in q {
                    self.s.remaining += 1;
                    self.parked
                        .insert(x.held.msg.message_id.clone(), x.held.receipt);
                }
            }
            Ok(())
        }

        /// Receives what arrived in the DLQ while acting: this run's returns feed the breaker.
        async fn poll_returns(&mut self) {
            let Ok(out) = self
                .conn
                .sqs
                .receive_message()
                .queue_url(&self.dlq.url)
                .max_number_of_messages(10)
                .visibility_timeout(self.vt())
                .wait_time_seconds(0)
                .message_system_attribute_names(MessageSystemAttributeName::All)
                .message_attribute_names("All")
                .send()
                .await
            else {
                return;
            };
            let now = self.started.elapsed().as_millis() as u64;
            for m in out.messages.unwrap_or_default() {
                let own = m
                    .message_attributes()
                    .and_then(|a| a.get(provenance::ATTRIBUTE))
                    .and_then(|v| v.string_value())
                    .and_then(Provenance::parse);
                let id = m.message_id().unwrap_or_default().to_string();
                let receipt = m.receipt_handle().unwrap_or_default().to_string();
                if own.is_some_and(|p| p.run == self.run) {
                    if self.seen.insert(id.clone()) {
                        self.s.returned += 1;
                        if let Some(b) = &mut self.breaker {
                            b.returned(now);
                        }
                    }
                    self.parked.insert(id, receipt);
                } else if self.seen.contains(&id) {
                    if let Some(r) = self.parked.get_mut(&id) {
                        *r = receipt;
                    }
                } else {
                    // Not seen yet: the next scan judges it.
                    self.backlog.push(m);
                }
            }
        }

        /// Sends one batch to one destination; journals the accepted copies, then deletes
        /// them from the DLQ. `Err` when the request itself failed (nothing accepted).
        async fn send_batch(
            &mut self,
            batch: Vec<Ready>,
        ) -> std::result::Result<u64, (anyhow::Error, Vec<Ready>)> {
            let dest = self.dests[batch[0].dest].clone();
            let at = now_ms();
            let mut entries = Vec::new();
            for (i, x) in batch.iter().enumerate() {
                match self.entry(i, x, &dest, at) {
                    Ok(e) => entries.push(e),
                    Err(e) => return Err((e, batch)),
                }
            }
            let out = match self
                .conn
                .sqs
                .send_message_batch()
                .queue_url(&dest.queue.url)
                .set_entries(Some(entries))
                .send()
                .await
            {
                Ok(o) => o,
                Err(e) => {
                    return Err((
                        sdk_error(e, &dest.queue.name, self.conn.endpoint_url.as_deref()),
                        batch,
                    ));
                }
            };
            let mut sent_recs = Vec::new();
            let mut sent_items: Vec<(String, String)> = Vec::new();
            for ok in out.successful() {
                let Some(x) = ok.id().parse::<usize>().ok().and_then(|i| batch.get(i)) else {
                    continue;
                };
                sent_recs.push(self.record(
                    "sent",
                    json!({"messageId": x.held.msg.message_id, "newMessageId": ok.message_id(),
                           "receipt": x.held.receipt, "destination": dest.arn}),
                ));
                sent_items.push((x.held.msg.message_id.clone(), x.held.receipt.clone()));
            }
            let mut failed_recs = Vec::new();
            for f in out.failed() {
                let Some(x) = f.id().parse::<usize>().ok().and_then(|i| batch.get(i)) else {
                    continue;
                };
                self.s.failed += 1;
                failed_recs.push(self.record(
                    "failed",
                    json!({"messageId": x.held.msg.message_id, "destination": dest.arn,
                           "reason": format!("{}: {}", f.code(), f.message().unwrap_or(""))}),
                ));
                self.parked
                    .insert(x.held.msg.message_id.clone(), x.held.receipt.clone());
            }
            // Invariant: the copies are journaled (fsync) before the originals are deleted.
            // If the journal cannot be written the originals stay (a duplicate is better than
            // a loss).
            sent_recs.extend(failed_recs);
            if let Err(e) = self.journal.write(&sent_recs) {
                return Err((e, Vec::new()));
            }
            let now = self.started.elapsed().as_millis() as u64;
            for (id, r) in &sent_items {
                self.sent.insert(id.clone(), (r.clone(), false));
                if let Some(b) = &mut self.breaker {
                    b.replayed(now);
                }
            }
            *self.dest_counts.entry(batch[0].dest).or_default() += sent_items.len() as u64;
            self.s.moved += sent_items.len() as u64;
            let deleted = self.delete(&sent_items).await;
            let del_recs: Vec<Value> = deleted
                .iter()
                .map(|id| self.record("deleted", json!({"messageId": id})))
                .collect();
            // Informational: a missing `deleted` record only makes a rerun retry the delete.
            let _ = self.journal.write(&del_recs);
            self.s.pending_delete += (sent_items.len() - deleted.len()) as u64;
            Ok(sent_items.len() as u64)
        }

        fn entry(
            &self,
            i: usize,
            x: &Ready,
            dest: &Dest,
            at: i64,
        ) -> Result<SendMessageBatchRequestEntry> {
            let mut attrs: HashMap<String, MessageAttributeValue> =
                x.held.sdk.message_attributes().cloned().unwrap_or_default();
            if self.plan.provenance {
                let existing = attrs
                    .get(provenance::ATTRIBUTE)
                    .and_then(|v| v.string_value())
                    .map(str::to_string);
                let p = Provenance::next(
                    existing.as_deref(),
                    &x.held.msg.message_id,
                    &self.run,
                    &self.dlq_arn,
                    at,
                );
                attrs.insert(
                    provenance::ATTRIBUTE.to_string(),
                    MessageAttributeValue::builder()
                        .data_type("String")
                        .string_value(p.to_value())
                        .build()?,
                );
            }
            let mut e = SendMessageBatchRequestEntry::builder()
                .id(i.to_string())
                .message_body(&x.body)
                .set_message_attributes((!attrs.is_empty()).then_some(attrs));
            if let Some(trace) = x.held.msg.attributes.get("AWSTraceHeader") {
                e = e.message_system_attributes(
                    MessageSystemAttributeNameForSends::AwsTraceHeader,
                    MessageSystemAttributeValue::builder()
                        .data_type("String")
                        .string_value(trace)
                        .build()?,
                );
            }
            if dest.queue.is_fifo() {
                let group = x
                    .held
                    .msg
                    .message_group_id
                    .clone()
                    .unwrap_or_else(|| "redrive-replay".to_string());
                e = e
                    .message_group_id(group)
                    .message_deduplication_id(dedup_id(&self.run, &x.held.msg.message_id));
            }
            Ok(e.build()?)
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Server-side path

mod server {
    use super::*;

    /// The replay task object of the server API.
    #[derive(Debug, Clone, Default, Deserialize, Serialize)]
    #[serde(rename_all = "camelCase", default)]
    pub struct Task {
        pub id: String,
        pub status: String,
        pub source: String,
        pub destination: Option<String>,
        pub spec: Value,
        pub selected: u64,
        pub moved: u64,
        pub failed: u64,
        pub skipped: u64,
        pub remaining: u64,
        pub returned: u64,
        pub started_at: Option<i64>,
        pub ended_at: Option<i64>,
        pub failure_reason: Option<String>,
        pub requested_by: Option<String>,
    }

    fn body(plan: &ReplayPlan, dry_run: bool) -> Value {
        json!({
            "source": plan.source,
            "destination": plan.destination,
            "selection": plan.selection,
            "transform": plan.transform,
            "rate": plan.rate,
            "ratePer": plan.rate_per.as_ref().map(|(k, r)| json!({"key": k, "rate": r})),
            "breaker": plan.breaker,
            "provenance": plan.provenance,
            "dryRun": dry_run,
            "sample": plan.sample,
            "requestedBy": plan.requested_by,
        })
    }

    /// A request to the replays API: (status, JSON body).
    pub(super) async fn call(
        conn: &Conn,
        method: reqwest::Method,
        url: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Value)> {
        conn.json_request(method, url, body).await
    }

    pub(super) fn api_error(status: u16, v: &Value) -> anyhow::Error {
        let code = crate::util::api_error_code(v);
        let msg = v["message"].as_str().unwrap_or("(no message)");
        if code.contains("NonExistentQueue") || code == "QueueDoesNotExist" {
            anyhow!("{msg}")
        } else {
            anyhow!("the server refused the replay ({status} {code}): {msg}")
        }
    }

    pub(super) async fn run(
        conn: &Conn,
        plan: &ReplayPlan,
        dlq: &QueueRef,
        interrupt: &Interrupt,
    ) -> Result<ReplayResult> {
        let base = conn
            .endpoint_url
            .clone()
            .unwrap_or_default()
            .trim_end_matches('/')
            .to_string();
        let url = format!("{base}/_redrive/v1/replays");
        let audit = plan.default_audit_log(dlq);
        let attrs = queue_attrs(conn, dlq).await?;
        let dlq_arn = attrs.get("QueueArn").cloned().unwrap_or_default();
        let (mut journal, _) = Journal::open(&audit, &dlq_arn)?;
        let rec = |event: &str, run: &str, extra: Value| {
            let mut v = json!({"event": event, "at": now_ms(), "run": run, "source": dlq_arn});
            if let (Some(o), Value::Object(e)) = (v.as_object_mut(), extra) {
                o.extend(e);
            }
            v
        };
        if let Some(id) = &plan.attach {
            let (s, t) = call(conn, reqwest::Method::GET, &format!("{url}/{id}"), None).await?;
            if s >= 300 {
                return Err(api_error(s, &t));
            }
            let task: Task =
                serde_json::from_value(t).context("unexpected task from the server")?;
            journal.write(&[rec(
                "attach",
                &task.id,
                json!({"who": plan.requested_by, "path": "server", "status": task.status}),
            )])?;
            return finish(
                conn,
                plan,
                dlq,
                &url,
                task,
                Preview::default(),
                journal,
                &rec,
                interrupt,
            )
            .await;
        }
        if let Some(d) = &plan.destination {
            // Named in the error, before asking the server.
            conn.resolve(d)
                .await
                .map_err(|e| anyhow!("destination: {e:#}"))?;
        }
        // The preview always comes first: it validates everything server-side.
        let (status, v) = call(conn, reqwest::Method::POST, &url, Some(&body(plan, true))).await?;
        let preview = if status == 409 && !plan.dry_run {
            // A replay is running: the start below attaches to it if it is the same.
            Preview::default()
        } else if status >= 300 {
            return Err(api_error(status, &v));
        } else {
            let mut preview: Preview =
                serde_json::from_value(v).context("unexpected dry-run answer from the server")?;
            preview.path = "server".into();
            preview.dry_run = true;
            preview
        };
        if plan.dry_run {
            journal.write(&[rec(
                "dryRun",
                "",
                json!({"who": plan.requested_by, "path": "server",
                       "selection": plan.selection, "transform": plan.transform,
                       "destination": plan.destination,
                       "scanned": preview.scanned, "selected": preview.selected}),
            )])?;
            return Ok(ReplayResult::Preview(preview));
        }
        if let Some(path) = &plan.backup {
            write_backup(conn, plan, dlq, path).await?;
        }
        let (status, v) = call(conn, reqwest::Method::POST, &url, Some(&body(plan, false))).await?;
        let task: Task = match status {
            200 | 201 => serde_json::from_value(v).context("unexpected task from the server")?,
            409 => {
                let id = v["replayId"].as_str().unwrap_or_default().to_string();
                let (s, t) = call(conn, reqwest::Method::GET, &format!("{url}/{id}"), None).await?;
                if s >= 300 {
                    return Err(api_error(s, &t));
                }
                let task: Task = serde_json::from_value(t)?;
                if !same_spec(&task.spec, &body(plan, false)) {
                    bail!(
                        "another replay ({id}) with a different selection is running on `{}`; wait for it or cancel it with `redrive replay {} --cancel {id}`",
                        dlq.name,
                        dlq.name
                    );
                }
                eprintln!(
                    "a replay with the same selection is already running ({id}); following it"
                );
                task
            }
            _ => return Err(api_error(status, &v)),
        };
        journal.write(&[rec(
            "start",
            &task.id,
            json!({"who": plan.requested_by, "path": "server", "dryRun": false,
                   "request": body(plan, false), "selected": task.selected}),
        )])?;
        finish(
            conn, plan, dlq, &url, task, preview, journal, &rec, interrupt,
        )
        .await
    }

    /// Follows a started task, then writes its moves and the end to the audit log.
    #[allow(clippy::too_many_arguments)]
    async fn finish(
        conn: &Conn,
        plan: &ReplayPlan,
        dlq: &QueueRef,
        url: &str,
        task: Task,
        preview: Preview,
        mut journal: Journal,
        rec: &dyn Fn(&str, &str, Value) -> Value,
        interrupt: &Interrupt,
    ) -> Result<ReplayResult> {
        let audit = journal.path.clone();
        let (task, outcome) = follow(conn, url, task, plan, interrupt).await?;
        // The audit trail of what moved, from the task's own record.
        let mut after = 0u64;
        loop {
            let (s, page) = call(
                conn,
                reqwest::Method::GET,
                &format!("{url}/{}/moves?after={after}&limit=10000", task.id),
                None,
            )
            .await?;
            if s >= 300 {
                break;
            }
            let moves = page["moves"].as_array().cloned().unwrap_or_default();
            let recs: Vec<Value> = moves
                .iter()
                .map(|m| {
                    rec(
                        "moved",
                        &task.id,
                        json!({"n": m["n"], "messageId": m["from"], "newMessageId": m["to"],
                               "destination": m["destination"], "movedAt": m["at"]}),
                    )
                })
                .collect();
            journal.write(&recs)?;
            match page["next"].as_u64() {
                Some(n) if !moves.is_empty() => after = n,
                _ => break,
            }
        }
        let mut dests: BTreeMap<String, u64> = BTreeMap::new();
        let summary = Summary {
            run: task.id.clone(),
            path: "server",
            outcome,
            selected: task.selected,
            moved: task.moved,
            skipped: task.skipped,
            failed: task.failed,
            remaining: task.remaining,
            returned: task.returned,
            finished_pending: 0,
            pending_delete: 0,
            destinations: {
                for d in &preview.destinations {
                    dests.insert(d.arn.clone(), d.count);
                }
                preview.destinations.clone()
            },
            reason: task.failure_reason.clone(),
            audit_log: audit.display().to_string(),
            left_in_dlq: crate::source::approximate_count(conn, dlq).await.ok(),
        };
        journal.write(&[rec(
            "end",
            &task.id,
            json!({"outcome": outcome, "status": task.status, "reason": task.failure_reason,
                   "counts": {"selected": task.selected, "moved": task.moved,
                              "skipped": task.skipped, "failed": task.failed,
                              "remaining": task.remaining, "returned": task.returned}}),
        )])?;
        Ok(ReplayResult::Summary(summary))
    }

    fn same_spec(running: &Value, ours: &Value) -> bool {
        ["selection", "transform", "destination"]
            .iter()
            .all(|k| norm(&running[k]) == norm(&ours[k]))
    }

    /// Drops nulls so `{"filter": null}` equals `{}`.
    fn norm(v: &Value) -> Value {
        match v {
            Value::Object(o) => Value::Object(
                o.iter()
                    .filter(|(_, v)| !v.is_null())
                    .map(|(k, v)| (k.clone(), norm(v)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }

    /// Polls the task until it ends; Ctrl-C asks (or detaches / cancels without a terminal).
    async fn follow(
        conn: &Conn,
        url: &str,
        mut task: Task,
        plan: &ReplayPlan,
        interrupt: &Interrupt,
    ) -> Result<(Task, Outcome)> {
        let bar = progress_bar(task.selected, "replaying (server)");
        let mut seen = interrupt.count();
        let mut cancelled = false;
        loop {
            bar.set_position(task.moved + task.skipped + task.failed);
            match task.status.as_str() {
                "COMPLETED" => {
                    bar.finish_and_clear();
                    let o = if task.failed > 0 {
                        Outcome::Partial
                    } else {
                        Outcome::Completed
                    };
                    return Ok((task, o));
                }
                "CANCELLED" => {
                    bar.finish_and_clear();
                    return Ok((task, Outcome::Cancelled));
                }
                "TRIPPED" => {
                    bar.finish_and_clear();
                    return Ok((task, Outcome::Tripped));
                }
                "FAILED" => {
                    bar.finish_and_clear();
                    return Ok((task, Outcome::Failed));
                }
                _ => {}
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(300)) => {}
                _ = interrupt.after(seen) => {
                    seen = interrupt.count();
                    if !cancelled {
                        let cancel = if interactive() {
                            bar.suspend(|| ());
                            ask(&format!("Cancel replay {} on the server? (no: it keeps running there)", task.id)).await
                        } else {
                            plan.cancel_on_interrupt
                        };
                        if cancel {
                            let (s, v) = call(conn, reqwest::Method::POST, &format!("{url}/{}/cancel", task.id), None).await?;
                            if s >= 300 {
                                return Err(api_error(s, &v));
                            }
                            cancelled = true;
                        } else {
                            bar.finish_and_clear();
                            eprintln!(
                                "detached: replay {} keeps running on the server; follow it with `redrive replay {} --attach {}`, cancel it with `--cancel {}`",
                                task.id, plan.source, task.id, task.id
                            );
                            return Ok((task, Outcome::Detached));
                        }
                    }
                }
            }
            let (s, v) = call(
                conn,
                reqwest::Method::GET,
                &format!("{url}/{}", task.id),
                None,
            )
            .await?;
            if s >= 300 {
                return Err(api_error(s, &v));
            }
            task = serde_json::from_value(v).context("unexpected task from the server")?;
        }
    }

    /// Exports the messages the selection takes, read through the browse API (the server
    /// fixes its set at start; a message dead-lettered in between may differ).
    async fn write_backup(
        conn: &Conn,
        plan: &ReplayPlan,
        dlq: &QueueRef,
        path: &Path,
    ) -> Result<()> {
        let sel = Selection::compile(&plan.selection).map_err(|e| anyhow!("--filter: {e}"))?;
        let source = Source::open(conn, dlq, 30).await?;
        let limit = plan.selection.limit.map_or(usize::MAX, |l| l as usize);
        let mut picked: Vec<Message> = Vec::new();
        source
            .scan(usize::MAX, |m| {
                if picked.len() < limit && judge(&sel, &m, &meta_of(&m)) == Verdict::Selected {
                    picked.push(m);
                }
            })
            .await?;
        let refs: Vec<&Message> = picked.iter().collect();
        backup(path, &refs)
    }

    /// `--list`: the replays on a DLQ, newest first.
    pub async fn list(conn: &Conn, dlq: &QueueRef) -> Result<Vec<Task>> {
        let base = server_api(conn, dlq)
            .await
            .ok_or_else(|| anyhow!("--list and --cancel need a Redrive server (the endpoint has no /_redrive/v1/replays API); client-side runs are in their audit log"))?;
        let (s, v) = call(
            conn,
            reqwest::Method::GET,
            &format!("{base}/_redrive/v1/replays?source={}", dlq.name),
            None,
        )
        .await?;
        if s >= 300 {
            return Err(api_error(s, &v));
        }
        Ok(serde_json::from_value(v["replays"].clone()).unwrap_or_default())
    }

    /// `--cancel ID`.
    pub async fn cancel(conn: &Conn, dlq: &QueueRef, id: &str) -> Result<Task> {
        let base = server_api(conn, dlq).await.ok_or_else(|| {
            anyhow!(
                "--cancel needs a Redrive server (the endpoint has no /_redrive/v1/replays API)"
            )
        })?;
        let (s, v) = call(
            conn,
            reqwest::Method::POST,
            &format!("{base}/_redrive/v1/replays/{id}/cancel"),
            None,
        )
        .await?;
        if s >= 300 {
            return Err(api_error(s, &v));
        }
        Ok(serde_json::from_value(v)?)
    }
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
