//! Alerts (`alerts.rs`) over a shared backend: the same documents, rules and state machine,
//! kept in the backend's documents so that every server reads and changes one set.
//!
//! - **Every change is one optimistic transaction.** A server reads the alert documents and
//!   the revision document ([`DOC_ALERT_REV`]), applies the rules to them in memory, and
//!   writes what changed together with the revision + 1 in one `edit_documents` of the
//!   revision's kind, which checks under that kind's lock that the revision is still the one
//!   read. When another server wrote in between, it reads again and re-applies the change
//!   (bounded by [`MAX_CONFLICTS`]).
//! - **Reads** are answered from memory after one read of the revision; the documents are read
//!   again only when it moved.
//! - **Evaluation and webhook delivery** run on the holder of the [`ALERTS_LEASE`] only, so a
//!   minute is judged once across servers and each notification is sent by one server (at
//!   least once: a holder killed mid-delivery leaves the notification in the outbox, and the
//!   next holder sends it again, with the same `x-redrive-notification-id`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use redrive_core::{SqsError, SqsResult};
use serde_json::{Value, json};

use crate::Engine;
use crate::alerts::{
    DOC_ALERT_HISTORY, DOC_ALERT_OUTBOX, DOC_ALERT_RULE, DOC_ALERT_SILENCE, DOC_ALERT_STATE,
};
use crate::backend::{Doc, DocsEdit, QueueBackend};
use crate::store::{DocumentRecord, Mutation};

/// The revision of the alert documents: `{"rev": n}` under key [`REV_KEY`].
pub const DOC_ALERT_REV: &str = "alert-rev";
const REV_KEY: &str = "rev";
/// The lease under which one server evaluates the rules and delivers the notifications.
pub(crate) const ALERTS_LEASE: &str = "alerts";
/// How long a dead holder keeps the lease (another server takes over after it).
const ALERTS_LEASE_MS: u64 = 30_000;
/// How often a server renews (or tries to take) the lease when asked more often.
const LEASE_CHECK_EVERY: Duration = Duration::from_secs(5);
/// Changes re-applied after another server's write before giving up.
pub(crate) const MAX_CONFLICTS: usize = 16;
const KINDS: [&str; 5] = [
    DOC_ALERT_RULE,
    DOC_ALERT_STATE,
    DOC_ALERT_HISTORY,
    DOC_ALERT_SILENCE,
    DOC_ALERT_OUTBOX,
];

/// This server's last look at the [`ALERTS_LEASE`].
#[derive(Debug, Default)]
pub(crate) struct LeaseCheck {
    at: Option<Instant>,
    held: bool,
}

fn rev_of(docs: &[(String, Value)]) -> u64 {
    docs.iter()
        .find(|(k, _)| k == REV_KEY)
        .and_then(|(_, v)| v["rev"].as_u64())
        .unwrap_or(0)
}

/// The alert store mutations as one backend edit, the last change of a key winning (the
/// backend applies prefix deletes, then key deletes, then puts).
/// A change re-applied [`MAX_CONFLICTS`] times, another server writing first each time.
pub(crate) fn conflicts_exhausted() -> SqsError {
    SqsError::internal("the alert documents kept changing under this change; try again")
}

pub(crate) fn docs_edit(muts: Vec<Mutation>) -> SqsResult<DocsEdit> {
    let mut edit = DocsEdit::default();
    for m in muts {
        match m {
            Mutation::PutDocument(d) => {
                let value: Value = serde_json::from_slice(&d.value).map_err(|e| {
                    SqsError::internal(format!("alert document {} is not JSON: {e}", d.key))
                })?;
                edit.delete.retain(|(k, key)| (k, key) != (&d.kind, &d.key));
                edit.put.retain(|p| (&p.kind, &p.key) != (&d.kind, &d.key));
                edit.put.push(Doc {
                    kind: d.kind,
                    key: d.key,
                    value,
                });
            }
            Mutation::DeleteDocument { kind, key } => {
                edit.put.retain(|p| (&p.kind, &p.key) != (&kind, &key));
                edit.delete.push((kind, key));
            }
            Mutation::DeleteDocuments { kind, prefix } => {
                edit.put
                    .retain(|p| p.kind != kind || !p.key.starts_with(&prefix));
                edit.delete_prefixed.push((kind, prefix));
            }
            _ => {
                return Err(SqsError::internal(
                    "an alert change touched something other than documents",
                ));
            }
        }
    }
    Ok(edit)
}

impl Engine {
    /// Brings the alert tables up to date with the shared backend (nothing to do on the
    /// embedded store, whose memory is the source of the documents). Call before reading
    /// [`Engine::alert_rules`], [`Engine::alert_history`], [`Engine::silences`] or
    /// [`Engine::pending_alert_notifications`] on a server that may share its store.
    pub async fn sync_alerts(&self) -> SqsResult<()> {
        let Some(b) = self.shared.clone() else {
            return Ok(());
        };
        let rev = rev_of(&b.documents(DOC_ALERT_REV, REV_KEY).await?);
        if self.alerts.loaded_rev() == Some(rev) {
            return Ok(());
        }
        let mut docs = Vec::new();
        for kind in KINDS {
            for (key, value) in b.documents(kind, "").await? {
                docs.push(DocumentRecord {
                    kind: kind.to_string(),
                    key,
                    value: serde_json::to_vec(&value).unwrap_or_default(),
                });
            }
        }
        self.alerts.replace(&docs, rev);
        Ok(())
    }

    /// Writes `muts` if the alert documents are still at revision `read`: `false` when another
    /// server wrote since (nothing written).
    pub(crate) async fn commit_shared_alerts(
        &self,
        b: &dyn QueueBackend,
        read: u64,
        muts: Vec<Mutation>,
    ) -> SqsResult<bool> {
        let mut edit = docs_edit(muts)?;
        edit.put.push(Doc {
            kind: DOC_ALERT_REV.into(),
            key: REV_KEY.into(),
            value: json!({ "rev": read + 1 }),
        });
        let moved = AtomicBool::new(false);
        let result = b
            .edit_documents(DOC_ALERT_REV, &|docs| {
                if rev_of(&docs) != read {
                    moved.store(true, Ordering::Relaxed);
                    return Err(SqsError::internal("the alert documents changed"));
                }
                Ok(edit.clone())
            })
            .await;
        match result {
            Ok(()) => Ok(true),
            Err(_) if moved.load(Ordering::Relaxed) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Whether this server holds the alerts lease (always on the embedded store). Asks the
    /// backend at most every [`LEASE_CHECK_EVERY`] unless `now` is set.
    pub(crate) async fn hold_alerts_lease(&self, now: bool) -> bool {
        let Some(b) = self.shared.clone() else {
            return true;
        };
        {
            let c = self.alerts.lease_check.lock();
            if !now && c.at.is_some_and(|at| at.elapsed() < LEASE_CHECK_EVERY) {
                return c.held;
            }
        }
        let held = match b
            .lease(ALERTS_LEASE, &self.shared_holder, ALERTS_LEASE_MS)
            .await
        {
            Ok(held) => held,
            Err(e) => {
                tracing::warn!(error = %e.message, "alerts lease not checked");
                false
            }
        };
        *self.alerts.lease_check.lock() = LeaseCheck {
            at: Some(Instant::now()),
            held,
        };
        held
    }

    /// At shutdown, after the last history write: gives up the `alerts` and `history` leases
    /// if this server holds them, so another server takes them at its next try instead of
    /// after their lifetimes (30 s and 150 s, during which no minute's gauges are sampled).
    /// A no-op on the embedded store.
    pub async fn release_shared_leases(&self) {
        let Some(b) = self.shared.clone() else {
            return;
        };
        *self.alerts.lease_check.lock() = LeaseCheck {
            at: Some(Instant::now()),
            held: false,
        };
        for lease in [ALERTS_LEASE, crate::shared_history::HISTORY_LEASE] {
            if let Err(e) = b.release(lease, &self.shared_holder).await {
                tracing::warn!(lease, error = %e.message, "lease not released at shutdown");
            }
        }
    }

    /// Whether this server delivers alert notifications now: always on the embedded store; on
    /// a shared one only the holder of the alerts lease, with its outbox read first.
    pub async fn alert_delivery_turn(&self) -> bool {
        if !self.hold_alerts_lease(false).await {
            return false;
        }
        match self.sync_alerts().await {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(error = %e.message, "alert outbox not read");
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(kind: &str, key: &str) -> Mutation {
        Mutation::PutDocument(DocumentRecord {
            kind: kind.into(),
            key: key.into(),
            value: b"{}".to_vec(),
        })
    }

    #[test]
    fn the_last_change_of_a_key_wins() {
        let edit = docs_edit(vec![
            put("a", "1"),
            Mutation::DeleteDocument {
                kind: "a".into(),
                key: "1".into(),
            },
            Mutation::DeleteDocument {
                kind: "a".into(),
                key: "2".into(),
            },
            put("a", "2"),
            put("b", "x/1"),
            Mutation::DeleteDocuments {
                kind: "b".into(),
                prefix: "x/".into(),
            },
            put("b", "y"),
        ])
        .unwrap();
        let puts: Vec<(&str, &str)> = edit
            .put
            .iter()
            .map(|d| (d.kind.as_str(), d.key.as_str()))
            .collect();
        assert_eq!(puts, [("a", "2"), ("b", "y")]);
        assert_eq!(edit.delete, [("a".to_string(), "1".to_string())]);
        assert_eq!(edit.delete_prefixed, [("b".to_string(), "x/".to_string())]);
    }

    #[test]
    fn the_revision_is_zero_until_written() {
        assert_eq!(rev_of(&[]), 0);
        assert_eq!(rev_of(&[(REV_KEY.into(), json!({"rev": 7}))]), 7);
    }
}
