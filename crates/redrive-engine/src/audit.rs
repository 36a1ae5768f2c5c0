//! The console's audit log in the store (issue 15): one document of kind [`DOC_CONSOLE_AUDIT`]
//! per action, key `{at ms:015}/{seq:06}`, written and made durable before the action is
//! answered, read by key range (newest first) for the console's audit page, and dropped after
//! [`AUDIT_RETENTION_MS`]. Lazily read like the minute history: not part of the startup
//! snapshot (`redrive_store::LAZY_DOCUMENT_KINDS`).

use std::sync::atomic::{AtomicU64, Ordering};

use redrive_core::{SqsError, SqsResult};
use serde::{Deserialize, Serialize};

use crate::Engine;
use crate::backend::{Doc, QueueBackend};
use crate::store::{DocumentRecord, Mutation};

pub const DOC_CONSOLE_AUDIT: &str = "console-audit";
/// How long audit entries are kept.
pub const AUDIT_RETENTION_MS: u64 = 90 * 86_400_000;
/// Expired entries dropped per write at most.
const PRUNE_BATCH: usize = 100;

/// Keeps keys unique within a millisecond (from a random start per process, so that servers
/// sharing a store do not collide).
static SEQ: AtomicU64 = AtomicU64::new(0);
static SEQ_BASE: std::sync::OnceLock<u64> = std::sync::OnceLock::new();

fn audit_key(at_ms: u64) -> String {
    let base = *SEQ_BASE.get_or_init(|| u64::from(uuid::Uuid::new_v4().as_u128() as u32));
    let seq = base.wrapping_add(SEQ.fetch_add(1, Ordering::Relaxed)) % 1_000_000;
    format!("{at_ms:015}/{seq:06}")
}

/// One console action (see the server's `console::audit`). Never a message body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditRecord {
    pub at_ms: u64,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub detail: String,
}

impl Engine {
    /// Writes one audit entry and waits until it is durable; drops a batch of expired ones in
    /// the same commit.
    pub async fn record_audit(&self, rec: &AuditRecord) -> SqsResult<()> {
        if let Some(b) = self.shared.clone() {
            return self.sh_record_audit(&*b, rec).await;
        }
        self.ensure_synced()?;
        let mut muts = vec![Mutation::PutDocument(DocumentRecord {
            kind: DOC_CONSOLE_AUDIT.into(),
            key: audit_key(rec.at_ms),
            value: serde_json::to_vec(rec)
                .map_err(|e| SqsError::internal(format!("audit entry: {e}")))?,
        })];
        let cutoff = rec.at_ms.saturating_sub(AUDIT_RETENTION_MS);
        if let Ok(old) = self
            .store
            .documents(DOC_CONSOLE_AUDIT, "", &format!("{cutoff:015}"))
        {
            muts.extend(
                old.into_iter()
                    .take(PRUNE_BATCH)
                    .map(|d| Mutation::DeleteDocument {
                        kind: DOC_CONSOLE_AUDIT.into(),
                        key: d.key,
                    }),
            );
        }
        let ticket = self.store.submit(muts);
        self.durable(ticket).await
    }

    /// Audit entries from `since_ms` on, newest first, at most `limit`.
    pub fn audit_entries(&self, since_ms: u64, limit: usize) -> SqsResult<Vec<AuditRecord>> {
        let docs = self
            .store
            .documents(DOC_CONSOLE_AUDIT, &format!("{since_ms:015}"), "~")
            .map_err(|e| SqsError::internal(format!("cannot read the audit log: {e}")))?;
        Ok(docs
            .iter()
            .rev()
            .filter_map(|d| serde_json::from_slice(&d.value).ok())
            .take(limit)
            .collect())
    }
}

impl Engine {
    /// [`Engine::record_audit`] on a shared backend: the entry (its key is this server's own)
    /// and the expired ones dropped, in one transaction.
    async fn sh_record_audit(&self, b: &dyn QueueBackend, rec: &AuditRecord) -> SqsResult<()> {
        let doc = Doc {
            kind: DOC_CONSOLE_AUDIT.into(),
            // This server's name after the key: no two servers write one key.
            key: format!("{}/{}", audit_key(rec.at_ms), self.shared_holder),
            value: serde_json::to_value(rec)
                .map_err(|e| SqsError::internal(format!("audit entry: {e}")))?,
        };
        let cutoff = format!("{:015}", rec.at_ms.saturating_sub(AUDIT_RETENTION_MS));
        b.append_document(&doc, &cutoff).await
    }

    /// [`Engine::audit_entries`] on a shared backend.
    pub(crate) async fn sh_audit_entries(
        &self,
        b: &dyn QueueBackend,
        since_ms: u64,
        limit: usize,
    ) -> SqsResult<Vec<AuditRecord>> {
        let since = format!("{since_ms:015}");
        let docs = b.documents(DOC_CONSOLE_AUDIT, "").await?;
        Ok(docs
            .iter()
            .rev()
            .filter(|(k, _)| *k >= since)
            .filter_map(|(_, v)| serde_json::from_value(v.clone()).ok())
            .take(limit)
            .collect())
    }
}
