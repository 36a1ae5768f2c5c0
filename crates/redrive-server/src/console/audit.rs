//! The audit log of console actions: every state-changing action (replay started, replay
//! cancelled, move task started or cancelled, queue purged, schedule, alert rule or silence
//! added or removed), every refused POST, and logins and logouts under `--auth sigv4` are
//! written to the server's log at info under the target `redrive::audit` (who, what, on which
//! queue or task; never a message body) and to the store (the engine's `console-audit`
//! documents, durable before the action is answered, kept [`AUDIT_RETENTION_MS`]), which the
//! console's audit page reads, so the log survives a restart. A replay started from the console
//! also carries `requestedBy: "console:WHO"` in its persisted task, and its move log is the
//! server's durable trail of what moved (see docs/replay-api.md).

use redrive_engine::Engine;
pub use redrive_engine::audit::{AUDIT_RETENTION_MS, AuditRecord as AuditEntry};

/// Entries shown on the audit page at most.
pub const SHOWN: usize = 1000;
/// The audit page reads this far back.
pub const SHOWN_DAYS: u64 = 30;

/// Records one console action: the server's log, then the store, waiting until it is
/// durable. A write that fails is logged at error (the action itself is not undone).
///
/// `action`: `replay.start`, `replay.cancel`, `move.start`, `move.cancel`, `queue.purge`,
/// `schedule.add`, `schedule.remove`, `rule.add`, `rule.remove`, `silence.add`,
/// `silence.remove`, `post.refused`, `login`, `login.refused`, `logout`. `actor`: the access
/// key id under `--auth sigv4`, else `local:PEER-IP`. `target`: the queue, replay, task,
/// schedule or silence. `detail`: counts, ids, a refusal's reason, never a message body.
pub async fn record(engine: &Engine, actor: &str, action: &str, target: &str, detail: &str) {
    tracing::info!(target: "redrive::audit", actor, action, target, detail, "console action");
    let entry = AuditEntry {
        at_ms: engine.clock_now_ms(),
        actor: actor.to_string(),
        action: action.to_string(),
        target: target.to_string(),
        detail: detail.to_string(),
    };
    if let Err(e) = engine.record_audit(&entry).await {
        tracing::error!(target: "redrive::audit", actor, action, target, error = %e.message,
            "console audit entry not written to the store");
    }
}

/// The newest entries of the last [`SHOWN_DAYS`], newest first, at most [`SHOWN`].
pub async fn entries(engine: &Engine) -> Result<Vec<AuditEntry>, redrive_core::SqsError> {
    let since = engine
        .clock_now_ms()
        .saturating_sub(SHOWN_DAYS * 86_400_000);
    engine.load_audit(since, SHOWN).await
}
