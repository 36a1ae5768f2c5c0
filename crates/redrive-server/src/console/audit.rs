//! The audit log of console actions: every state-changing action (replay started, replay
//! cancelled, move task started or cancelled, queue purged, schedule, alert rule or silence
//! added or removed), every refused POST, and logins and logouts under `--auth sigv4` are
//! written to the server's log at info under the target `redrive::audit` (who, what, on which
//! queue or task; never a message body), and kept in
//! memory (the newest [`KEPT`]) for the console's audit page. A replay started from the console
//! also carries `requestedBy: "console:WHO"` in its persisted task, and its move log is the
//! server's durable trail of what moved (see docs/replay-api.md).

use std::collections::VecDeque;
use std::sync::Mutex;

use serde::Serialize;

/// Entries kept in memory.
pub const KEPT: usize = 1000;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEntry {
    pub at_ms: u64,
    /// The access key id under `--auth sigv4`, else `local:PEER-IP`.
    pub actor: String,
    /// `replay.start`, `replay.cancel`, `move.start`, `move.cancel`, `queue.purge`,
    /// `schedule.add`, `schedule.remove`, `rule.add`, `rule.remove`, `silence.add`,
    /// `silence.remove`, `post.refused`, `login`, `login.refused`, `logout`.
    pub action: String,
    /// The queue, replay, task, schedule or silence acted on.
    pub target: String,
    /// A short summary (counts, ids, the reason of a refusal): never a message body.
    pub detail: String,
}

#[derive(Debug, Default)]
pub struct AuditLog {
    entries: Mutex<VecDeque<AuditEntry>>,
}

impl AuditLog {
    pub fn record(&self, at_ms: u64, actor: &str, action: &str, target: &str, detail: &str) {
        tracing::info!(target: "redrive::audit", actor, action, target, detail, "console action");
        let mut e = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if e.len() >= KEPT {
            e.pop_front();
        }
        e.push_back(AuditEntry {
            at_ms,
            actor: actor.to_string(),
            action: action.to_string(),
            target: target.to_string(),
            detail: detail.to_string(),
        });
    }

    /// Newest first.
    pub fn entries(&self) -> Vec<AuditEntry> {
        let e = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        e.iter().rev().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_first_and_bounded() {
        let log = AuditLog::default();
        for i in 0..(KEPT + 5) {
            log.record(i as u64, "AKID", "replay.start", "dlq", &format!("{i}"));
        }
        let e = log.entries();
        assert_eq!(e.len(), KEPT);
        assert_eq!(e[0].detail, format!("{}", KEPT + 4));
        assert_eq!(e[KEPT - 1].detail, "5");
    }
}
