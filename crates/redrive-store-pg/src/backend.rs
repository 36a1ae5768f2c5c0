//! [`PgBackend`]: the engine's [`QueueBackend`] over [`PgStore`] (ADR 0002, order of work 3).
//! Only translation lives here: the engine's SQS-level values to rows and back, and database
//! errors to `InternalError` (retryable by every SDK). The AWS rules stay in the engine.

use std::collections::BTreeMap;
use std::time::Duration;

use redrive_core::api::MessageAttributes;
use redrive_core::{SqsError, SqsResult};
use redrive_engine::backend::{
    self as eb, BoxFuture, CreateOutcome, Decide, EditTasks, MoveStep, QueueBackend, ReceiveSpec,
    Route, SharedQueue, StepOutcome,
};
use redrive_engine::{MessageState, MoveTaskRecord, MoveTaskStatus};
use serde_json::{Value, json};

use crate::{
    Claim, Created, Decision, Document, DocumentEdit, NewMessage, PgError, PgStore, QueueRow,
    StepMove, StepResult,
};

/// The document kind of move tasks (key: the task id).
const MOVE_TASK: &str = "move-task";

/// Partitions of a new standard queue (ADR 0002: a receive starts at a random one).
pub const STANDARD_PARTITIONS: i16 = 8;
/// FIFO queues are claimed by group, not by partition.
const FIFO_PARTITIONS: i16 = 1;
/// The FIFO deduplication window.
const DEDUP_WINDOW_MS: i64 = 5 * 60 * 1000;

/// The shared-database backend of `redrive serve --store postgres://…`.
pub struct PgBackend {
    store: PgStore,
}

fn internal(e: PgError) -> SqsError {
    tracing::warn!(error = %e, "a database transition failed");
    SqsError::internal(format!("database failure: {e}"))
}

/// The message attributes, system attributes and shown deduplication id, as the opaque
/// `attributes` column holds them.
fn encode_attributes(m: &eb::NewMessage) -> Vec<u8> {
    json!({"a": m.attributes, "s": m.system_attributes, "d": m.dedup_id})
        .to_string()
        .into_bytes()
}

fn decode_attributes(raw: &[u8]) -> (MessageAttributes, MessageAttributes, Option<String>) {
    let v: Value = serde_json::from_slice(raw).unwrap_or(Value::Null);
    let map = |k: &str| -> MessageAttributes {
        v.get(k)
            .and_then(|a| serde_json::from_value(a.clone()).ok())
            .unwrap_or_default()
    };
    let dedup = v.get("d").and_then(Value::as_str).map(str::to_string);
    (map("a"), map("s"), dedup)
}

fn task_document(t: &MoveTaskRecord) -> Value {
    json!({
        "task_id": t.task_id,
        "source_arn": t.source_arn,
        "destination_arn": t.destination_arn,
        "max_per_second": t.max_per_second,
        "status": t.status.as_str(),
        "moved": t.moved,
        "to_move": t.to_move,
        "started_ms": t.started_ms,
        "failure_reason": t.failure_reason,
    })
}

fn task_of_document(v: &Value) -> Option<MoveTaskRecord> {
    let text = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    let status = match v.get("status")?.as_str()? {
        "RUNNING" => MoveTaskStatus::Running,
        "COMPLETED" => MoveTaskStatus::Completed,
        "CANCELLING" => MoveTaskStatus::Cancelling,
        "CANCELLED" => MoveTaskStatus::Cancelled,
        "FAILED" => MoveTaskStatus::Failed,
        _ => return None,
    };
    Some(MoveTaskRecord {
        task_id: text("task_id")?,
        source_arn: text("source_arn")?,
        destination_arn: text("destination_arn"),
        max_per_second: v.get("max_per_second").and_then(Value::as_i64),
        status,
        moved: v.get("moved")?.as_u64()?,
        to_move: v.get("to_move")?.as_u64()?,
        started_ms: v.get("started_ms")?.as_u64()?,
        failure_reason: text("failure_reason"),
    })
}

/// Move tasks from their documents, in start order.
fn tasks_of(docs: &[Document]) -> Vec<MoveTaskRecord> {
    let mut tasks: Vec<MoveTaskRecord> = docs
        .iter()
        .filter_map(|d| {
            let t = task_of_document(&d.value);
            if t.is_none() {
                tracing::warn!(key = %d.key, "an unreadable move-task document is ignored");
            }
            t
        })
        .collect();
    tasks.sort_by(|a, b| (a.started_ms, &a.task_id).cmp(&(b.started_ms, &b.task_id)));
    tasks
}

fn to_shared(r: QueueRow) -> SharedQueue {
    let doc = &r.attributes;
    let strings = |k: &str| -> BTreeMap<String, String> {
        doc.get(k)
            .and_then(|a| serde_json::from_value(a.clone()).ok())
            .unwrap_or_default()
    };
    SharedQueue {
        uid: r.uid as u64,
        attributes: strings("attributes"),
        tags: strings("tags"),
        created_secs: (r.created_ms / 1000) as u64,
        last_modified_secs: doc
            .get("modified")
            .and_then(Value::as_u64)
            .unwrap_or((r.created_ms / 1000) as u64),
        last_purge_ms: doc.get("purged").and_then(Value::as_u64),
        version: doc.get("version").and_then(Value::as_u64).unwrap_or(0),
        partitions: r.partitions as u16,
        region: r.region,
        name: r.name,
        fifo: r.fifo,
    }
}

fn document(q: &SharedQueue) -> Value {
    json!({
        "attributes": q.attributes,
        "tags": q.tags,
        "modified": q.last_modified_secs,
        "purged": q.last_purge_ms,
        "version": q.version,
    })
}

fn to_row(q: &SharedQueue) -> QueueRow {
    QueueRow {
        uid: q.uid as i64,
        region: q.region.clone(),
        name: q.name.clone(),
        fifo: q.fifo,
        partitions: q.partitions.max(1) as i16,
        attributes: document(q),
        created_ms: (q.created_secs * 1000) as i64,
    }
}

fn claim_of(q: &SharedQueue, c: eb::Claim) -> Claim {
    Claim {
        part: (c.seq % u64::from(q.partitions.max(1))) as i16,
        seq: c.seq as i64,
        token: c.token as i64,
    }
}

fn check(h: crate::HandleCheck) -> eb::HandleCheck {
    match h {
        crate::HandleCheck::Applied => eb::HandleCheck::Applied,
        crate::HandleCheck::Stale => eb::HandleCheck::Stale,
        crate::HandleCheck::NotInFlight => eb::HandleCheck::NotInFlight,
        crate::HandleCheck::BeyondLimit => eb::HandleCheck::BeyondLimit,
    }
}

/// A message row as the engine's inspection and replay rules read it.
fn stored_of(m: crate::BrowseRow) -> eb::Stored {
    let (attributes, system_attributes, dedup_id) = decode_attributes(&m.attributes);
    eb::Stored {
        seq: m.seq as u64,
        message_id: m.message_id.to_string(),
        group_id: m.group_id,
        dedup_id,
        body: String::from_utf8_lossy(&m.body).into_owned(),
        attributes,
        system_attributes,
        receive_count: m.receive_count.max(0) as u32,
        sent_ms: m.sent_ms.max(0) as u64,
        first_received_ms: m.first_received_ms.map(|t| t.max(0) as u64),
        visible_at_ms: m.visible_at_ms.max(0) as u64,
        dead_letter_source_arn: m.dead_letter_source,
        dead_lettered_ms: m.dead_lettered_ms.map(|t| t.max(0) as u64),
        state: match m.state {
            0 => MessageState::Ready,
            1 => MessageState::Delayed,
            _ => MessageState::InFlight,
        },
        group_blocked: m.state == 0 && m.group_blocked,
    }
}

fn doc_of(d: &eb::Doc) -> Document {
    Document {
        kind: d.kind.clone(),
        key: d.key.clone(),
        value: d.value.clone(),
    }
}

impl PgBackend {
    /// Connects (see [`PgStore::connect`]) and applies the migrations.
    pub async fn connect(
        url: &str,
        schema: Option<&str>,
        connections: usize,
    ) -> Result<PgBackend, PgError> {
        Ok(PgBackend {
            store: PgStore::connect(url, schema, connections).await?,
        })
    }

    /// The store underneath (tests move its clock).
    pub fn store(&self) -> &PgStore {
        &self.store
    }
}

impl QueueBackend for PgBackend {
    fn now_ms(&self) -> BoxFuture<'_, SqsResult<u64>> {
        Box::pin(async move { Ok(self.store.now_ms().await.map_err(internal)? as u64) })
    }

    fn create_queue<'a>(&'a self, q: &'a SharedQueue) -> BoxFuture<'a, SqsResult<CreateOutcome>> {
        Box::pin(async move {
            let partitions = if q.fifo {
                FIFO_PARTITIONS
            } else {
                STANDARD_PARTITIONS
            };
            Ok(
                match self
                    .store
                    .create_queue(&q.region, &q.name, q.fifo, partitions, &document(q))
                    .await
                    .map_err(internal)?
                {
                    Created::Created(r) => CreateOutcome::Created(to_shared(r)),
                    Created::Existing(r) => CreateOutcome::Existing(to_shared(r)),
                },
            )
        })
    }

    fn deleted_at_ms<'a>(
        &'a self,
        region: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, SqsResult<Option<u64>>> {
        Box::pin(async move {
            Ok(self
                .store
                .document("deleted-queue", &format!("{region}\n{name}"))
                .await
                .map_err(internal)?
                .and_then(|d| d.value.get("at").and_then(Value::as_u64)))
        })
    }

    fn queue<'a>(
        &'a self,
        region: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, SqsResult<Option<SharedQueue>>> {
        Box::pin(async move {
            Ok(self
                .store
                .queue(region, name)
                .await
                .map_err(internal)?
                .map(to_shared))
        })
    }

    fn list_queues<'a>(
        &'a self,
        region: &'a str,
        prefix: &'a str,
    ) -> BoxFuture<'a, SqsResult<Vec<SharedQueue>>> {
        Box::pin(async move {
            Ok(self
                .store
                .list_queues(region, prefix)
                .await
                .map_err(internal)?
                .into_iter()
                .map(to_shared)
                .collect())
        })
    }

    fn update_queue<'a>(&'a self, q: &'a SharedQueue) -> BoxFuture<'a, SqsResult<bool>> {
        Box::pin(async move {
            let next = SharedQueue {
                version: q.version + 1,
                ..q.clone()
            };
            self.store
                .set_attributes_if(&to_row(q), &document(&next), q.version as i64)
                .await
                .map_err(internal)
        })
    }

    fn delete_queue<'a>(&'a self, q: &'a SharedQueue) -> BoxFuture<'a, SqsResult<()>> {
        Box::pin(async move {
            self.store
                .delete_queue(&to_row(q))
                .await
                .map_err(internal)?;
            Ok(())
        })
    }

    fn send<'a>(
        &'a self,
        q: &'a SharedQueue,
        msgs: Vec<eb::NewMessage>,
    ) -> BoxFuture<'a, SqsResult<Vec<eb::Sent>>> {
        Box::pin(async move {
            let rows: Vec<NewMessage> = msgs
                .iter()
                .map(|m| NewMessage {
                    body: m.body.as_bytes().to_vec(),
                    attributes: encode_attributes(m),
                    delay_ms: m.delay_ms as i64,
                    group_id: m.group_id.clone(),
                    // The key is the engine's (group and id); `text` cannot hold its NUL.
                    dedup: m
                        .dedup_key
                        .as_ref()
                        .map(|k| (k.replace('\0', "\u{1f}"), DEDUP_WINDOW_MS)),
                })
                .collect();
            let sent = self.store.send(&to_row(q), &rows).await.map_err(internal)?;
            Ok(sent
                .into_iter()
                .map(|s| eb::Sent {
                    message_id: s.message_id.to_string(),
                    seq: s.seq.or(s.first_seq).unwrap_or(0) as u64,
                    duplicate: s.seq.is_none(),
                })
                .collect())
        })
    }

    fn receive<'a>(
        &'a self,
        q: &'a SharedQueue,
        spec: ReceiveSpec,
        decide: &'a dyn Decide,
    ) -> BoxFuture<'a, SqsResult<eb::Received>> {
        Box::pin(async move {
            let ask = |c: &crate::Candidate| -> Decision {
                match decide.decide(&eb::Candidate {
                    message_id: c.message_id.to_string(),
                    group_id: c.group_id.clone(),
                    receive_count: c.receive_count.max(0) as u32,
                    sent_ms: c.sent_ms.max(0) as u64,
                }) {
                    eb::Decision::Deliver => Decision::Deliver,
                    eb::Decision::Skip => Decision::Skip,
                    eb::Decision::MoveTo {
                        queue,
                        source_arn,
                        dedup_id,
                    } => Decision::MoveTo {
                        queue: to_row(&queue),
                        source_arn,
                        dedup_id,
                    },
                }
            };
            let attempt = spec.attempt_id.as_deref().map(|id| crate::Attempt {
                id,
                window_ms: redrive_core::limits::DEDUP_INTERVAL_MS as i64,
            });
            let got = self
                .store
                .receive_wait_attempt(
                    &to_row(q),
                    spec.max,
                    spec.visibility_ms as i64,
                    Duration::from_millis(spec.wait_ms),
                    attempt,
                    &ask,
                )
                .await
                .map_err(internal)?;
            Ok(eb::Received {
                delivered: got
                    .delivered
                    .into_iter()
                    .map(|m| {
                        let (attributes, system_attributes, dedup_id) =
                            decode_attributes(&m.attributes);
                        eb::Delivered {
                            claim: eb::Claim {
                                seq: m.claim.seq as u64,
                                token: m.claim.token as u64,
                            },
                            message_id: m.message_id.to_string(),
                            group_id: m.group_id,
                            dedup_id,
                            body: String::from_utf8_lossy(&m.body).into_owned(),
                            attributes,
                            system_attributes,
                            receive_count: m.receive_count.max(0) as u32,
                            sent_ms: m.sent_ms as u64,
                            first_received_ms: m.first_received_ms as u64,
                            dead_letter_source_arn: m.dead_letter_source,
                        }
                    })
                    .collect(),
                moved: got
                    .moved
                    .into_iter()
                    .map(|(id, uid)| (id.to_string(), uid as u64))
                    .collect(),
            })
        })
    }

    fn delete<'a>(
        &'a self,
        q: &'a SharedQueue,
        claim: eb::Claim,
    ) -> BoxFuture<'a, SqsResult<eb::HandleCheck>> {
        Box::pin(async move {
            let row = to_row(q);
            let claim = claim_of(q, claim);
            let h = if q.fifo {
                self.store.delete_in_flight(&row, claim).await
            } else {
                self.store.delete(&row, claim).await
            }
            .map_err(internal)?;
            Ok(check(h))
        })
    }

    fn delete_many<'a>(
        &'a self,
        q: &'a SharedQueue,
        claims: Vec<eb::Claim>,
    ) -> BoxFuture<'a, SqsResult<Vec<eb::HandleCheck>>> {
        Box::pin(async move {
            if q.fifo {
                let mut out = Vec::with_capacity(claims.len());
                for claim in claims {
                    out.push(self.delete(q, claim).await?);
                }
                return Ok(out);
            }
            let claims: Vec<Claim> = claims.into_iter().map(|c| claim_of(q, c)).collect();
            let checks = self
                .store
                .delete_many(&to_row(q), &claims)
                .await
                .map_err(internal)?;
            Ok(checks.into_iter().map(check).collect())
        })
    }

    fn change_visibility_many<'a>(
        &'a self,
        q: &'a SharedQueue,
        changes: Vec<(eb::Claim, u64)>,
    ) -> BoxFuture<'a, SqsResult<Vec<eb::HandleCheck>>> {
        Box::pin(async move {
            if q.fifo {
                let mut out = Vec::with_capacity(changes.len());
                for (claim, v) in changes {
                    out.push(self.change_visibility(q, claim, v).await?);
                }
                return Ok(out);
            }
            let changes: Vec<(Claim, i64)> = changes
                .into_iter()
                .map(|(c, v)| (claim_of(q, c), v as i64))
                .collect();
            let checks = self
                .store
                .change_visibility_many(&to_row(q), &changes)
                .await
                .map_err(internal)?;
            Ok(checks.into_iter().map(check).collect())
        })
    }

    fn change_visibility<'a>(
        &'a self,
        q: &'a SharedQueue,
        claim: eb::Claim,
        visibility_ms: u64,
    ) -> BoxFuture<'a, SqsResult<eb::HandleCheck>> {
        Box::pin(async move {
            let h = self
                .store
                .change_visibility(&to_row(q), claim_of(q, claim), visibility_ms as i64)
                .await
                .map_err(internal)?;
            Ok(check(h))
        })
    }

    fn purge<'a>(&'a self, q: &'a SharedQueue) -> BoxFuture<'a, SqsResult<u64>> {
        Box::pin(async move { self.store.purge(&to_row(q)).await.map_err(internal) })
    }

    fn counts<'a>(&'a self, q: &'a SharedQueue) -> BoxFuture<'a, SqsResult<eb::Counts>> {
        Box::pin(async move {
            let (visible, in_flight, delayed, oldest, now) =
                self.store.stats(&to_row(q)).await.map_err(internal)?;
            Ok(eb::Counts {
                visible: visible as u64,
                in_flight: in_flight as u64,
                delayed: delayed as u64,
                oldest_age_ms: oldest.map_or(0, |t| now.saturating_sub(t).max(0) as u64),
            })
        })
    }

    fn browse<'a>(
        &'a self,
        q: &'a SharedQueue,
        range: eb::BrowseRange,
    ) -> BoxFuture<'a, SqsResult<Vec<eb::Stored>>> {
        Box::pin(async move {
            let state = range.state.map(|s| match s {
                MessageState::Ready => 0i16,
                MessageState::Delayed => 1,
                MessageState::InFlight => 2,
            });
            let after = i64::try_from(range.after_seq).unwrap_or(i64::MAX);
            let (rows, _) = self
                .store
                .browse(&to_row(q), after, state, range.limit)
                .await
                .map_err(internal)?;
            Ok(rows.into_iter().map(stored_of).collect())
        })
    }

    fn inspect<'a>(
        &'a self,
        q: &'a SharedQueue,
        max_receive_count: Option<u32>,
    ) -> BoxFuture<'a, SqsResult<eb::Inspection>> {
        Box::pin(async move {
            let max = max_receive_count.map(|m| i32::try_from(m).unwrap_or(i32::MAX));
            let (visible, in_flight, delayed, pending, oldest) = self
                .store
                .inspect(&to_row(q), max)
                .await
                .map_err(internal)?;
            Ok(eb::Inspection {
                visible: visible as u64,
                in_flight: in_flight as u64,
                delayed: delayed as u64,
                pending_dead_letter: pending as u64,
                oldest_enqueued_ms: oldest.map(|t| t.max(0) as u64),
            })
        })
    }

    fn quiet_groups<'a>(&'a self, q: &'a SharedQueue) -> BoxFuture<'a, SqsResult<eb::QuietGroups>> {
        Box::pin(async move {
            let (noisy, visible, not_visible, delayed, oldest, now) = self
                .store
                .quiet_group_stats(&to_row(q))
                .await
                .map_err(internal)?;
            let n = |v: i64| v.max(0) as u64;
            Ok(eb::QuietGroups {
                noisy_groups: n(noisy),
                visible: n(visible),
                not_visible: n(not_visible),
                delayed: n(delayed),
                oldest_age_ms: oldest.map_or(0, |t| n(now - t)),
            })
        })
    }

    fn in_flight<'a>(
        &'a self,
        q: &'a SharedQueue,
        cap: u64,
    ) -> BoxFuture<'a, SqsResult<eb::InFlight>> {
        Box::pin(async move {
            let cap = i64::try_from(cap).unwrap_or(i64::MAX);
            let (count, any_visible) = self
                .store
                .in_flight(&to_row(q), cap)
                .await
                .map_err(internal)?;
            Ok(eb::InFlight {
                count: count.max(0) as u64,
                any_visible,
            })
        })
    }

    fn groups_in_flight<'a>(&'a self, q: &'a SharedQueue) -> BoxFuture<'a, SqsResult<u64>> {
        Box::pin(async move {
            let n = self
                .store
                .groups_in_flight(&to_row(q))
                .await
                .map_err(internal)?;
            Ok(n.max(0) as u64)
        })
    }

    fn add_minutes(&self, rows: Vec<eb::SharedMinute>) -> BoxFuture<'_, SqsResult<()>> {
        Box::pin(async move {
            let big = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
            let rows: Vec<crate::MinuteRow> = rows
                .iter()
                .map(|r| crate::MinuteRow {
                    queue_uid: big(r.queue_uid),
                    minute: big(r.minute),
                    counters: r.counters.map(big),
                    gauges: r.gauges.map(|g| g.map(big)),
                })
                .collect();
            self.store.add_minutes(&rows).await.map_err(internal)
        })
    }

    fn minutes(
        &self,
        queue_uid: u64,
        from: u64,
        to: u64,
    ) -> BoxFuture<'_, SqsResult<Vec<eb::SharedMinute>>> {
        Box::pin(async move {
            let big = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
            let small = |v: i64| v.max(0) as u64;
            let rows = self
                .store
                .minutes(big(queue_uid), big(from), big(to))
                .await
                .map_err(internal)?;
            Ok(rows
                .into_iter()
                .map(|r| eb::SharedMinute {
                    queue_uid,
                    minute: small(r.minute),
                    counters: r.counters.map(small),
                    gauges: r.gauges.map(|g| g.map(small)),
                })
                .collect())
        })
    }

    fn drop_minutes(&self, before: u64) -> BoxFuture<'_, SqsResult<u64>> {
        Box::pin(async move {
            self.store
                .drop_minutes(i64::try_from(before).unwrap_or(i64::MAX))
                .await
                .map_err(internal)
        })
    }

    fn all_queues(&self) -> BoxFuture<'_, SqsResult<Vec<SharedQueue>>> {
        Box::pin(async move {
            Ok(self
                .store
                .all_queues()
                .await
                .map_err(internal)?
                .into_iter()
                .map(to_shared)
                .collect())
        })
    }

    fn expire<'a>(
        &'a self,
        q: &'a SharedQueue,
        retention_ms: u64,
    ) -> BoxFuture<'a, SqsResult<u64>> {
        Box::pin(async move {
            self.store
                .expire(&to_row(q), retention_ms as i64)
                .await
                .map_err(internal)
        })
    }

    fn lease<'a>(
        &'a self,
        name: &'a str,
        holder: &'a str,
        ttl_ms: u64,
    ) -> BoxFuture<'a, SqsResult<bool>> {
        Box::pin(async move {
            self.store
                .lease(name, holder, ttl_ms as i64)
                .await
                .map_err(internal)
        })
    }

    fn release<'a>(&'a self, name: &'a str, holder: &'a str) -> BoxFuture<'a, SqsResult<()>> {
        Box::pin(async move { self.store.release(name, holder).await.map_err(internal) })
    }

    fn move_tasks(&self) -> BoxFuture<'_, SqsResult<Vec<MoveTaskRecord>>> {
        Box::pin(async move {
            Ok(tasks_of(
                &self.store.documents(MOVE_TASK).await.map_err(internal)?,
            ))
        })
    }

    fn edit_move_tasks<'a>(&'a self, edit: EditTasks<'a>) -> BoxFuture<'a, SqsResult<()>> {
        Box::pin(async move {
            let change = |docs: Vec<Document>| -> SqsResult<DocumentEdit> {
                let before = tasks_of(&docs);
                let mut after = before.clone();
                edit(&mut after)?;
                let mut change = DocumentEdit::default();
                for t in &before {
                    if !after.iter().any(|a| a.task_id == t.task_id) {
                        change.delete.push(t.task_id.clone());
                    }
                }
                for t in &after {
                    if !before.contains(t) {
                        change.put.push((t.task_id.clone(), task_document(t)));
                    }
                }
                Ok(change)
            };
            self.store
                .edit_documents(MOVE_TASK, &change)
                .await
                .map_err(internal)?
        })
    }

    fn documents<'a>(
        &'a self,
        kind: &'a str,
        prefix: &'a str,
    ) -> BoxFuture<'a, SqsResult<Vec<(String, Value)>>> {
        Box::pin(async move {
            Ok(self
                .store
                .documents_with_prefix(kind, prefix)
                .await
                .map_err(internal)?
                .into_iter()
                .map(|d| (d.key, d.value))
                .collect())
        })
    }

    fn document<'a>(
        &'a self,
        kind: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, SqsResult<Option<Value>>> {
        Box::pin(async move {
            Ok(self
                .store
                .document(kind, key)
                .await
                .map_err(internal)?
                .map(|d| d.value))
        })
    }

    fn append_document<'a>(
        &'a self,
        doc: &'a eb::Doc,
        drop_before: &'a str,
    ) -> BoxFuture<'a, SqsResult<()>> {
        Box::pin(async move {
            self.store
                .append_document(&doc_of(doc), drop_before)
                .await
                .map_err(internal)
        })
    }

    fn edit_documents<'a>(
        &'a self,
        kind: &'a str,
        edit: eb::EditDocs<'a>,
    ) -> BoxFuture<'a, SqsResult<()>> {
        Box::pin(async move {
            let change = |docs: Vec<Document>| -> SqsResult<crate::DocumentsEdit> {
                let e = edit(docs.into_iter().map(|d| (d.key, d.value)).collect())?;
                Ok(crate::DocumentsEdit {
                    put: e.put.iter().map(doc_of).collect(),
                    delete_prefixed: e.delete_prefixed,
                    delete: e.delete,
                })
            };
            self.store
                .edit_documents_with(kind, &change)
                .await
                .map_err(internal)?
        })
    }

    fn replay_step<'a>(
        &'a self,
        step: eb::ReplayStep<'a>,
        rules: &'a dyn eb::ReplayRules,
    ) -> BoxFuture<'a, SqsResult<eb::ReplayStepOutcome>> {
        Box::pin(async move {
            let running = |v: &Value| rules.running(v);
            let rewrite = |m: &crate::BrowseRow, now: i64| -> Result<StepMove, String> {
                let r = rules.rewrite(&stored_of(m.clone()), now.max(0) as u64)?;
                let message_id = uuid::Uuid::parse_str(&r.message_id).map_err(|e| e.to_string())?;
                Ok(StepMove {
                    queue: to_row(&r.queue),
                    message_id,
                    attributes:
                        json!({"a": r.attributes, "s": r.system_attributes, "d": r.dedup_id})
                            .to_string()
                            .into_bytes(),
                    delay_ms: r.delay_ms as i64,
                    body: Some(r.body.into_bytes()),
                })
            };
            let found_of = |f: &crate::ReplayFound| match f {
                crate::ReplayFound::Moved {
                    from_id,
                    to_id,
                    destination_uid,
                } => eb::ReplayFound::Moved {
                    from_id: from_id.to_string(),
                    to_id: to_id.to_string(),
                    destination_uid: *destination_uid as u64,
                },
                crate::ReplayFound::Gone => eb::ReplayFound::Gone,
                crate::ReplayFound::NotVisible => eb::ReplayFound::NotVisible,
                crate::ReplayFound::Failed(r) => eb::ReplayFound::Failed(r.clone()),
            };
            let record = |v: &Value, f: &crate::ReplayFound, now: i64| -> Vec<Document> {
                rules
                    .record(v, &found_of(f), now.max(0) as u64)
                    .iter()
                    .map(doc_of)
                    .collect()
            };
            let got = self
                .store
                .replay_step(
                    step.lease,
                    step.holder,
                    (step.kind, step.replay_id),
                    &to_row(step.source),
                    i64::try_from(step.seq).unwrap_or(i64::MAX),
                    &running,
                    &rewrite,
                    &record,
                )
                .await
                .map_err(internal)?;
            Ok(match got {
                crate::ReplayStepResult::LeaseLost => eb::ReplayStepOutcome::LeaseLost,
                crate::ReplayStepResult::Gone => eb::ReplayStepOutcome::TaskGone,
                crate::ReplayStepResult::NotRunning(v) => eb::ReplayStepOutcome::NotRunning(v),
                crate::ReplayStepResult::Done { found, doc } => eb::ReplayStepOutcome::Done {
                    found: found_of(&found),
                    task: doc,
                },
            })
        })
    }

    fn move_step<'a>(
        &'a self,
        step: MoveStep<'a>,
        route: &'a dyn Route,
    ) -> BoxFuture<'a, SqsResult<StepOutcome>> {
        Box::pin(async move {
            let running = |v: &Value| v.get("status").and_then(Value::as_str) == Some("RUNNING");
            let to = |c: &crate::StepCandidate| -> Option<StepMove> {
                let r = route.route(c.dead_letter_source.as_deref())?;
                let (attributes, system_attributes, _) = decode_attributes(&c.attributes);
                let message_id = uuid::Uuid::parse_str(&r.message_id).ok()?;
                Some(StepMove {
                    queue: to_row(&r.queue),
                    message_id,
                    attributes: json!({"a": attributes, "s": system_attributes, "d": r.dedup_id})
                        .to_string()
                        .into_bytes(),
                    delay_ms: r.delay_ms as i64,
                    body: None,
                })
            };
            let progress = |v: &Value, moved: usize| -> Value {
                let mut v = v.clone();
                let before = v.get("moved").and_then(Value::as_u64).unwrap_or(0);
                v["moved"] = json!(before + moved as u64);
                v
            };
            let got = self
                .store
                .move_step(
                    step.lease,
                    step.holder,
                    (MOVE_TASK, step.task_id),
                    &to_row(step.source),
                    step.max,
                    &running,
                    &to,
                    &progress,
                )
                .await
                .map_err(internal)?;
            let task = |v: &Value| {
                task_of_document(v)
                    .ok_or_else(|| SqsError::internal("an unreadable move-task document"))
            };
            Ok(match got {
                StepResult::LeaseLost => StepOutcome::LeaseLost,
                StepResult::Gone => StepOutcome::TaskGone,
                StepResult::NotRunning(v) => StepOutcome::NotRunning(task(&v)?),
                StepResult::Moved { moved, doc, stop } => StepOutcome::Moved {
                    moved: moved as u64,
                    task: task(&doc)?,
                    stop: stop.map(|s| match s {
                        crate::StepStop::Empty => eb::StepStop::Empty,
                        crate::StepStop::Unrouted(arn) => eb::StepStop::Unrouted(arn),
                    }),
                },
            })
        })
    }
}
