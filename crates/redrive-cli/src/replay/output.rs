//! What a replay reports: the dry-run preview, the summary, and their text renderings.
use super::*;

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

pub(super) fn yes() -> bool {
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

pub(super) fn render_preview(dlq: &str, p: &Preview) -> String {
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

pub(super) fn render_summary(dlq: &str, s: &Summary) -> String {
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

pub(super) fn queue_name_of(arn_or_url: &str) -> &str {
    arn_or_url
        .trim_end_matches('/')
        .rsplit([':', '/'])
        .next()
        .unwrap_or(arn_or_url)
}
