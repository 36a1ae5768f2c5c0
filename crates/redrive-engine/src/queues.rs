//! Queue-level actions: create, look up, list, delete, attributes, purge, tags, permissions,
//! dead-letter sources.

use std::collections::BTreeMap;
use std::sync::Arc;

use redrive_core::api::*;
use redrive_core::arn::QueueArn;
use redrive_core::{ErrorCode, SqsError, SqsResult, attributes, limits, validate};
use serde_json::{Value, json};
use tokio::sync::Notify;

use crate::queue::QueueState;
use crate::store::{Mutation, QueueRecord};
use crate::{Engine, Queue, RequestContext};

/// A validated `RedrivePolicy`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedrivePolicy {
    pub dead_letter_target_arn: String,
    pub max_receive_count: u32,
}

impl RedrivePolicy {
    pub fn parse_stored(s: &str) -> Option<RedrivePolicy> {
        let v: Value = serde_json::from_str(s).ok()?;
        Some(RedrivePolicy {
            dead_letter_target_arn: v.get("deadLetterTargetArn")?.as_str()?.to_string(),
            max_receive_count: match v.get("maxReceiveCount")? {
                Value::Number(n) => n.as_u64()? as u32,
                Value::String(s) => s.trim().parse().ok()?,
                _ => return None,
            },
        })
    }
}

/// A dead-letter target's facts the redrive policy rules need, by ARN: `(fifo, its
/// RedriveAllowPolicy)`; `None` when it does not exist.
pub(crate) type DlqFacts<'a> = dyn Fn(&str) -> Option<(bool, Option<String>)> + 'a;

fn redrive_error(policy: &str, reason: &str) -> SqsError {
    SqsError::invalid_parameter(format!(
        "Value {policy} for parameter RedrivePolicy is invalid. Reason: {reason}"
    ))
}

impl Engine {
    /// Validates a `RedrivePolicy` for queue `source` (name, fifo) and returns its canonical JSON.
    fn normalize_redrive_policy(
        &self,
        region: &str,
        source_name: &str,
        fifo: bool,
        raw: &str,
        dlq_facts: &DlqFacts<'_>,
    ) -> SqsResult<String> {
        let v: Value = serde_json::from_str(raw)
            .map_err(|_| redrive_error(raw, "Redrive policy is not a valid JSON map."))?;
        let obj = v
            .as_object()
            .ok_or_else(|| redrive_error(raw, "Redrive policy is not a valid JSON map."))?;
        let count = match obj.get("maxReceiveCount") {
            None => {
                return Err(redrive_error(
                    raw,
                    "The required parameter 'maxReceiveCount' is missing",
                ));
            }
            Some(Value::Number(n)) => n.as_i64(),
            Some(Value::String(s)) => s.trim().parse::<i64>().ok(),
            Some(_) => None,
        };
        let shown = obj.get("maxReceiveCount").map(|v| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        });
        let count = match count {
            Some(n) if (1..=1000).contains(&n) => n,
            _ => {
                return Err(redrive_error(
                    raw,
                    &format!(
                        "Invalid value for maxReceiveCount: {}, valid values are from 1 to 1000 both inclusive.",
                        shown.unwrap_or_default()
                    ),
                ));
            }
        };
        let arn = match obj.get("deadLetterTargetArn") {
            Some(Value::String(s)) => s.clone(),
            _ => {
                return Err(redrive_error(
                    raw,
                    "The required parameter 'deadLetterTargetArn' is missing",
                ));
            }
        };
        let parsed = QueueArn::parse(&arn)
            .ok_or_else(|| redrive_error(raw, "Invalid value for deadLetterTargetArn."))?;
        if parsed.region != region || parsed.account != self.config.account_id {
            return Err(redrive_error(raw, "Dead letter target does not exist."));
        }
        let (dlq_fifo, allow) = dlq_facts(&arn)
            .ok_or_else(|| redrive_error(raw, "Dead letter target does not exist."))?;
        if dlq_fifo != fifo {
            // AWS's text, double period included (AWS-recorded).
            return Err(redrive_error(
                raw,
                "Dead-letter queue must be same type of queue as the source..",
            ));
        }
        // The DLQ's RedriveAllowPolicy decides which sources may use it (checked here, on the
        // DLQ, when a source sets its policy).
        let source_arn = QueueArn::new(region, &self.config.account_id, source_name).to_string();
        if let Some(allow) = allow.and_then(|a| serde_json::from_str::<Value>(&a).ok()) {
            let permitted = match allow.get("redrivePermission").and_then(Value::as_str) {
                Some("denyAll") => false,
                Some("byQueue") => allow
                    .get("sourceQueueArns")
                    .and_then(Value::as_array)
                    .is_some_and(|a| a.iter().any(|x| x.as_str() == Some(&source_arn))),
                _ => true,
            };
            if !permitted {
                return Err(redrive_error(
                    raw,
                    &format!(
                        "Queue {source_arn} is not allowed to use {arn} as its dead-letter queue: the RedriveAllowPolicy of the dead-letter queue does not permit it."
                    ),
                ));
            }
        }
        // Canonical form (key order, spacing and an integer count as SQS clients compare it).
        Ok(format!(
            "{{\"deadLetterTargetArn\": {}, \"maxReceiveCount\": {count}}}",
            Value::String(arn)
        ))
    }

    /// Validates and canonicalises a map of settable attributes for a queue of the given type.
    fn normalize_attributes(
        &self,
        region: &str,
        queue_name: &str,
        fifo: bool,
        creating: bool,
        input: &BTreeMap<String, String>,
    ) -> SqsResult<BTreeMap<String, String>> {
        let local = |arn: &str| {
            let dlq = self.resolve_arn(arn)?;
            let st = dlq.state.lock();
            Some((
                st.settings.fifo,
                st.record.attributes.get("RedriveAllowPolicy").cloned(),
            ))
        };
        self.normalize_attributes_with(region, queue_name, fifo, creating, input, &local)
    }

    /// [`Engine::normalize_attributes`] with the dead-letter target looked up by `dlq_facts`
    /// (both backends).
    pub(crate) fn normalize_attributes_with(
        &self,
        region: &str,
        queue_name: &str,
        fifo: bool,
        creating: bool,
        input: &BTreeMap<String, String>,
        dlq_facts: &DlqFacts<'_>,
    ) -> SqsResult<BTreeMap<String, String>> {
        let mut out = BTreeMap::new();
        for (name, value) in input {
            if !attributes::SETTABLE.contains(&name.as_str())
                || (!fifo && attributes::FIFO_ONLY.contains(&name.as_str()))
            {
                return Err(SqsError::invalid_attribute_name(name));
            }
            if name == "FifoQueue" {
                // AWS: the type cannot change; `FifoQueue` is unknown to a standard queue
                // (also `FifoQueue=false` at creation).
                if !fifo {
                    return Err(SqsError::invalid_attribute_name(name));
                }
                if !creating {
                    return Err(SqsError::new(
                        ErrorCode::InvalidAttributeValue,
                        "Invalid value for the parameter FifoQueue. Reason: Modifying queue type is not supported.",
                    ));
                }
                continue;
            }
            let v = match name.as_str() {
                "RedrivePolicy" if value.is_empty() => String::new(),
                "RedrivePolicy" => {
                    self.normalize_redrive_policy(region, queue_name, fifo, value, dlq_facts)?
                }
                "RedriveAllowPolicy" if value.is_empty() => String::new(),
                "RedriveAllowPolicy" => normalize_redrive_allow_policy(value)?,
                _ => attributes::normalize(name, value)?,
            };
            out.insert(name.clone(), v);
        }
        if fifo
            && out
                .get("FifoThroughputLimit")
                .is_some_and(|v| v == "perMessageGroupId")
            && out.get("DeduplicationScope").is_some_and(|v| v == "queue")
        {
            return Err(SqsError::invalid_parameter(
                "The perMessageGroupId value is allowed only when the value for DeduplicationScope is messageGroup",
            ));
        }
        // SSE-KMS and SSE-SQS are exclusive: a KMS key turns the SSE-SQS default off.
        if out.get("KmsMasterKeyId").is_some_and(|k| !k.is_empty())
            && !out.contains_key("SqsManagedSseEnabled")
        {
            out.insert("SqsManagedSseEnabled".into(), "false".into());
        }
        Ok(out)
    }

    pub async fn create_queue(
        &self,
        ctx: &RequestContext,
        input: CreateQueueInput,
    ) -> SqsResult<QueueUrlOutput> {
        self.ensure_synced()?;
        self.admit_growth()?;
        let (name, attrs_in, fifo) = create_queue_request(input.queue_name, input.attributes)?;
        let given = self.normalize_attributes(&ctx.region, &name, fifo, true, &attrs_in)?;
        for (k, v) in &input.tags {
            validate_tag(k, v)?;
        }
        if let Some(ticket) = self.create_queue_registered(ctx, &name, fifo, given, input.tags)? {
            self.durable(ticket).await?;
            tracing::debug!(queue = %name, region = %ctx.region, "queue created");
        }
        Ok(QueueUrlOutput {
            queue_url: self.queue_url(ctx, &name),
        })
    }

    /// Check-and-insert under the registry write lock, so concurrent creates agree. `None`
    /// when an identical queue already exists.
    fn create_queue_registered(
        &self,
        ctx: &RequestContext,
        name: &str,
        fifo: bool,
        given: BTreeMap<String, String>,
        tags: BTreeMap<String, String>,
    ) -> SqsResult<Option<crate::store::Durable>> {
        let name = name.to_string();
        let now_ms = self.now_ms();
        let key = (ctx.region.clone(), name.clone());
        let mut reg = self.registry.write();
        if let Some(existing) = reg.queues.get(&key) {
            let st = existing.state.lock();
            if let Some(e) =
                exists_differently(&st.record.attributes, st.settings.fifo, fifo, &given)
            {
                return Err(e);
            }
            return Ok(None);
        }
        if let Some(&deleted) = reg.deleted_at_ms.get(&key) {
            if now_ms < deleted + 60_000 {
                return Err(queue_deleted_recently());
            }
            reg.deleted_at_ms.remove(&key);
            let _ = self.store.submit(vec![Mutation::DeleteDocument {
                kind: crate::DOC_DELETED_QUEUE.into(),
                key: crate::deleted_queue_key(&key.0, &key.1),
            }]);
        }
        let attrs = initial_attributes(fifo, given);
        let uid = self.alloc_queue_uid();
        let secs = now_ms / 1000;
        let record = QueueRecord {
            uid,
            region: ctx.region.clone(),
            account: self.config.account_id.clone(),
            name: name.clone(),
            attributes: attrs,
            tags,
            created_secs: secs,
            last_modified_secs: secs,
            last_purge_ms: None,
        };
        let queue = Arc::new(Queue {
            uid,
            region: ctx.region.clone(),
            name: name.clone(),
            arn: QueueArn::new(&ctx.region, &self.config.account_id, &name).to_string(),
            state: parking_lot::Mutex::new({
                let mut st = QueueState::new(record.clone());
                st.next_seq = crate::sequence_floor(now_ms);
                st
            }),
            notify: Notify::new(),
            counters: Default::default(),
        });
        let ticket = {
            let _st = queue.state.lock();
            self.store.submit(vec![Mutation::PutQueue(record)])
        };
        reg.queues.insert(key, queue);
        Ok(Some(ticket))
    }

    pub fn get_queue_url(
        &self,
        ctx: &RequestContext,
        input: GetQueueUrlInput,
    ) -> SqsResult<QueueUrlOutput> {
        if input.queue_name.is_empty() {
            return Err(SqsError::missing_parameter("QueueName"));
        }
        self.ensure_synced()?;
        if let Some(owner) = &input.queue_owner_aws_account_id
            && owner != &self.config.account_id
        {
            return Err(SqsError::queue_does_not_exist());
        }
        self.lookup(&ctx.region, &input.queue_name)
            .map(|q| QueueUrlOutput {
                queue_url: self.queue_url(ctx, &q.name),
            })
            .ok_or_else(SqsError::queue_does_not_exist)
    }

    pub fn list_queues(
        &self,
        ctx: &RequestContext,
        input: ListQueuesInput,
    ) -> SqsResult<ListQueuesOutput> {
        self.ensure_synced()?;
        let max = page_size(input.max_results)?;
        let prefix = input.queue_name_prefix.unwrap_or_default();
        let after = match &input.next_token {
            Some(t) if !t.is_empty() => Some(decode_token(t)?),
            _ => None,
        };
        let names: Vec<String> = self
            .queues_in(&ctx.region)
            .into_iter()
            .map(|q| q.name.clone())
            .filter(|n| n.starts_with(&prefix))
            .filter(|n| after.as_ref().is_none_or(|a| n > a))
            .collect();
        let (queue_urls, next_token) = self.page_of_urls(ctx, &names, max);
        Ok(ListQueuesOutput {
            queue_urls,
            next_token,
        })
    }

    pub async fn delete_queue(&self, ctx: &RequestContext, input: QueueUrlInput) -> SqsResult<()> {
        let queue = self.resolve(ctx, &input.queue_url)?;
        let ticket = {
            let mut reg = self.registry.write();
            let key = (queue.region.clone(), queue.name.clone());
            match reg.queues.get(&key) {
                Some(q) if Arc::ptr_eq(q, &queue) => {
                    reg.queues.remove(&key);
                    reg.deleted_at_ms.insert(key, self.now_ms());
                }
                _ => return Err(SqsError::queue_does_not_exist()),
            }
            let mut st = queue.state.lock();
            st.deleted = true;
            // The 60-second QueueDeletedRecently window survives a restart.
            let mut muts = vec![
                Mutation::DeleteQueue { uid: queue.uid },
                crate::deleted_queue_doc(&queue.region, &queue.name, self.now_ms()),
            ];
            // Its move tasks end with it (a later queue of the same name starts clean).
            muts.extend(self.forget_move_tasks(Some(&queue.arn)));
            self.store.submit(muts)
        };
        queue.notify.notify_waiters();
        self.durable(ticket).await
    }

    pub fn get_queue_attributes(
        &self,
        ctx: &RequestContext,
        input: GetQueueAttributesInput,
    ) -> SqsResult<GetQueueAttributesOutput> {
        let queue = self.resolve(ctx, &input.queue_url)?;
        check_attribute_names(&input.attribute_names)?;
        let now = self.now_ms();
        let mut muts = Vec::new();
        let mut st = queue.state.lock();
        st.tick(now, &mut muts);
        let (visible, in_flight, delayed) = st.counts();
        let out = attributes_output(
            &input.attribute_names,
            &QueueFacts {
                visible: visible as u64,
                in_flight: in_flight as u64,
                delayed: delayed as u64,
                created_secs: st.record.created_secs,
                last_modified_secs: st.record.last_modified_secs,
                arn: &queue.arn,
                attributes: &st.record.attributes,
                oldest_age_secs: st
                    .retention
                    .first()
                    .map_or(0, |(t, _)| now.saturating_sub(*t) / 1000),
            },
        );
        if !muts.is_empty() {
            let _ = self.store.submit(muts);
        }
        Ok(GetQueueAttributesOutput { attributes: out })
    }

    pub async fn set_queue_attributes(
        &self,
        ctx: &RequestContext,
        input: SetQueueAttributesInput,
    ) -> SqsResult<()> {
        let queue = self.resolve(ctx, &input.queue_url)?;
        self.admit_growth()?;
        let fifo = queue.state.lock().settings.fifo;
        let attrs_in: BTreeMap<String, String> = input
            .attributes
            .into_iter()
            .map(|(k, v)| (k.trim().to_string(), v))
            .collect();
        let given = self.normalize_attributes(&ctx.region, &queue.name, fifo, false, &attrs_in)?;
        let ticket = {
            let mut st = queue.state.lock();
            let merged = merge_attributes(&st.record.attributes, given)?;
            st.record.attributes = merged;
            st.record.last_modified_secs = self.now_ms() / 1000;
            st.refresh_settings();
            let mut muts = vec![Mutation::PutQueue(st.record.clone())];
            // A shorter retention may expire messages now.
            st.tick(self.now_ms(), &mut muts);
            self.store.submit(muts)
        };
        queue.notify.notify_waiters();
        self.durable(ticket).await
    }

    pub async fn purge_queue(&self, ctx: &RequestContext, input: QueueUrlInput) -> SqsResult<()> {
        if let Some(b) = self.shared.clone() {
            return self
                .handle_shared(&*b, ctx, Request::PurgeQueue(input))
                .await
                .map(|_| ());
        }
        let queue = self.resolve(ctx, &input.queue_url)?;
        let now = self.now_ms();
        let ticket = {
            let mut st = queue.state.lock();
            if let Some(last) = st.record.last_purge_ms
                && now < last + limits::PURGE_INTERVAL_MS
            {
                return Err(SqsError::new(
                    ErrorCode::PurgeQueueInProgress,
                    format!(
                        "Only one PurgeQueue operation on {} is allowed every 60 seconds.",
                        queue.name
                    ),
                ));
            }
            let seqs: Vec<u64> = st.messages.keys().copied().collect();
            for seq in seqs {
                st.remove(seq);
            }
            st.record.last_purge_ms = Some(now);
            let up_to_seq = st.next_seq.saturating_sub(1);
            let mut muts = vec![
                Mutation::Purge {
                    queue_uid: queue.uid,
                    up_to_seq,
                },
                Mutation::PutQueue(st.record.clone()),
            ];
            // A purge also clears the FIFO deduplication cache (AWS): a resend is delivered.
            st.dedup_expiry.clear();
            for (key, _) in std::mem::take(&mut st.dedup) {
                muts.push(Mutation::DeleteDedup {
                    queue_uid: queue.uid,
                    key,
                });
            }
            self.store.submit(muts)
        };
        self.durable(ticket).await
    }

    pub async fn tag_queue(&self, ctx: &RequestContext, input: TagQueueInput) -> SqsResult<()> {
        let queue = self.resolve(ctx, &input.queue_url)?;
        self.admit_growth()?;
        if input.tags.is_empty() {
            return Err(SqsError::missing_parameter("Tags"));
        }
        for (k, v) in &input.tags {
            validate_tag(k, v)?;
        }
        let ticket = {
            let mut st = queue.state.lock();
            st.record.tags = merged_tags(&queue.name, &st.record.tags, input.tags)?;
            self.store
                .submit(vec![Mutation::PutQueue(st.record.clone())])
        };
        self.durable(ticket).await
    }

    pub async fn untag_queue(&self, ctx: &RequestContext, input: UntagQueueInput) -> SqsResult<()> {
        let queue = self.resolve(ctx, &input.queue_url)?;
        if input.tag_keys.is_empty() || input.tag_keys.iter().any(|k| k.is_empty() || k.len() > 128)
        {
            return Err(SqsError::invalid_parameter(
                "Tag keys must be between 1 and 128 characters in length.",
            ));
        }
        let ticket = {
            let mut st = queue.state.lock();
            for k in &input.tag_keys {
                st.record.tags.remove(k);
            }
            self.store
                .submit(vec![Mutation::PutQueue(st.record.clone())])
        };
        self.durable(ticket).await
    }

    pub fn list_queue_tags(
        &self,
        ctx: &RequestContext,
        input: QueueUrlInput,
    ) -> SqsResult<ListQueueTagsOutput> {
        let queue = self.resolve(ctx, &input.queue_url)?;
        let st = queue.state.lock();
        Ok(ListQueueTagsOutput {
            tags: st.record.tags.clone(),
        })
    }

    pub async fn add_permission(
        &self,
        ctx: &RequestContext,
        input: AddPermissionInput,
    ) -> SqsResult<()> {
        let queue = self.resolve(ctx, &input.queue_url)?;
        self.admit_growth()?;
        let permission = check_add_permission(input)?;
        let ticket = {
            let mut st = queue.state.lock();
            add_permission_to(&mut st.record.attributes, &queue.arn, &permission)?;
            self.store
                .submit(vec![Mutation::PutQueue(st.record.clone())])
        };
        self.durable(ticket).await
    }

    pub async fn remove_permission(
        &self,
        ctx: &RequestContext,
        input: RemovePermissionInput,
    ) -> SqsResult<()> {
        let queue = self.resolve(ctx, &input.queue_url)?;
        let label = check_remove_permission(input)?;
        let ticket = {
            let mut st = queue.state.lock();
            remove_permission_from(&mut st.record.attributes, &label)?;
            self.store
                .submit(vec![Mutation::PutQueue(st.record.clone())])
        };
        self.durable(ticket).await
    }

    pub fn list_dead_letter_source_queues(
        &self,
        ctx: &RequestContext,
        input: ListDeadLetterSourceQueuesInput,
    ) -> SqsResult<ListDeadLetterSourceQueuesOutput> {
        let dlq = self.resolve(ctx, &input.queue_url)?;
        let max = page_size(input.max_results)?;
        let after = match &input.next_token {
            Some(t) if !t.is_empty() => Some(decode_token(t)?),
            _ => None,
        };
        let names: Vec<String> = self
            .dead_letter_sources(&dlq)
            .into_iter()
            .map(|q| q.name.clone())
            .filter(|n| after.as_ref().is_none_or(|a| n > a))
            .collect();
        let (queue_urls, next_token) = self.page_of_urls(ctx, &names, max);
        Ok(ListDeadLetterSourceQueuesOutput {
            queue_urls,
            next_token,
        })
    }
}

impl Engine {
    /// One page of queue URLs from names sorted ascending: without `max` up to 1,000 and no
    /// token; with it, `max` and a token naming the last one when more follow.
    pub(crate) fn page_of_urls(
        &self,
        ctx: &RequestContext,
        names: &[String],
        max: Option<usize>,
    ) -> (Vec<String>, Option<String>) {
        let limit = max.unwrap_or(limits::MAX_LIST_RESULTS as usize);
        let next_token = match max {
            Some(m) if names.len() > m => Some(encode_token(&names[m - 1])),
            _ => None,
        };
        let urls = names
            .iter()
            .take(limit)
            .map(|n| self.queue_url(ctx, n))
            .collect();
        (urls, next_token)
    }
}

/// `QueueNameExists` when an existing queue's attributes differ from those given.
/// The front of `CreateQueue` shared by both stores: attribute names are matched after
/// trimming whitespace (moto and boto users rely on it; see docs/compatibility.md), anything
/// but `FifoQueue=true` (any case) makes a standard queue, as moto and the CLI treat it, and
/// the name is checked for that kind. Returns (name, attributes, fifo).
pub(crate) fn create_queue_request(
    name: String,
    attributes: BTreeMap<String, String>,
) -> SqsResult<(String, BTreeMap<String, String>, bool)> {
    let attrs: BTreeMap<String, String> = attributes
        .into_iter()
        .map(|(k, v)| (k.trim().to_string(), v))
        .collect();
    let fifo = attrs
        .get("FifoQueue")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    validate::queue_name(&name, fifo)?;
    Ok((name, attrs, fifo))
}

/// A create within 60 seconds of a delete of the same name.
pub(crate) fn queue_deleted_recently() -> SqsError {
    SqsError::new(
        ErrorCode::QueueDeletedRecently,
        "You must wait 60 seconds after deleting a queue before you can create another with the same name.",
    )
}

pub(crate) fn exists_differently(
    current: &BTreeMap<String, String>,
    current_fifo: bool,
    fifo: bool,
    given: &BTreeMap<String, String>,
) -> Option<SqsError> {
    let differs = given
        .iter()
        .any(|(k, v)| current.get(k).map(String::as_str).unwrap_or("") != v)
        || (fifo != current_fifo);
    differs.then(|| {
        SqsError::new(
            ErrorCode::QueueNameExists,
            format!(
                "A queue already exists with the same name and a different value for attribute {}",
                given
                    .iter()
                    .filter(|(k, v)| current.get(*k) != Some(*v))
                    .map(|(k, _)| k.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
    })
}

/// A new queue's attributes: the defaults, overridden by the normalised ones given.
pub(crate) fn initial_attributes(
    fifo: bool,
    given: BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut attrs = attributes::defaults(fifo);
    for (k, v) in given {
        if v.is_empty()
            && matches!(
                k.as_str(),
                "RedrivePolicy" | "RedriveAllowPolicy" | "Policy"
            )
        {
            attrs.remove(&k);
        } else {
            attrs.insert(k, v);
        }
    }
    attrs
}

/// `SetQueueAttributes`: the normalised attributes given, merged into the current ones.
pub(crate) fn merge_attributes(
    current: &BTreeMap<String, String>,
    given: BTreeMap<String, String>,
) -> SqsResult<BTreeMap<String, String>> {
    let mut merged = current.clone();
    for (k, v) in given {
        if v.is_empty()
            && matches!(
                k.as_str(),
                "RedrivePolicy" | "RedriveAllowPolicy" | "Policy" | "KmsMasterKeyId"
            )
        {
            merged.remove(&k);
        } else {
            merged.insert(k, v);
        }
    }
    if merged
        .get("FifoThroughputLimit")
        .is_some_and(|v| v == "perMessageGroupId")
        && merged
            .get("DeduplicationScope")
            .is_some_and(|v| v == "queue")
    {
        return Err(SqsError::invalid_parameter(
            "The perMessageGroupId value is allowed only when the value for DeduplicationScope is messageGroup",
        ));
    }
    // Without a KMS key, the default reuse period is not shown (AWS omits both once
    // they are set back to their defaults).
    if !merged.contains_key("KmsMasterKeyId")
        && merged
            .get("KmsDataKeyReusePeriodSeconds")
            .is_some_and(|v| v == "300")
    {
        merged.remove("KmsDataKeyReusePeriodSeconds");
    }
    Ok(merged)
}

/// A list action's `MaxResults` (1..=1000), `None` when not given.
pub(crate) fn page_size(max_results: Option<i64>) -> SqsResult<Option<usize>> {
    match max_results {
        None => Ok(None),
        Some(n) if (1..=limits::MAX_LIST_RESULTS).contains(&n) => Ok(Some(n as usize)),
        Some(n) => Err(SqsError::invalid_value(
            "MaxResults",
            n,
            "MaxResults must be an integer between 1 and 1000.",
        )),
    }
}

/// Every name asked for by `GetQueueAttributes` is known (both backends).
pub(crate) fn check_attribute_names(names: &[String]) -> SqsResult<()> {
    for n in names {
        if !attributes::is_known(n) && n != "ApproximateAgeOfOldestMessage" {
            return Err(SqsError::invalid_attribute_name(n));
        }
    }
    Ok(())
}

/// What `GetQueueAttributes` reports of a queue (both backends).
pub(crate) struct QueueFacts<'a> {
    pub visible: u64,
    pub in_flight: u64,
    pub delayed: u64,
    pub created_secs: u64,
    pub last_modified_secs: u64,
    pub arn: &'a str,
    pub attributes: &'a BTreeMap<String, String>,
    pub oldest_age_secs: u64,
}

/// `GetQueueAttributes`' answer for the names asked for (`All` for every SQS attribute).
pub(crate) fn attributes_output(names: &[String], q: &QueueFacts<'_>) -> BTreeMap<String, String> {
    let all = names.iter().any(|n| n == "All");
    let wants = |n: &str| all || names.iter().any(|x| x == n);
    let mut out = BTreeMap::new();
    let mut put = |k: &str, v: String| {
        if wants(k) {
            out.insert(k.to_string(), v);
        }
    };
    put("ApproximateNumberOfMessages", q.visible.to_string());
    put(
        "ApproximateNumberOfMessagesNotVisible",
        q.in_flight.to_string(),
    );
    put("ApproximateNumberOfMessagesDelayed", q.delayed.to_string());
    put("CreatedTimestamp", q.created_secs.to_string());
    put("LastModifiedTimestamp", q.last_modified_secs.to_string());
    put("QueueArn", q.arn.to_string());
    for (k, v) in q.attributes {
        put(k, v.clone());
    }
    // Extension: not an SQS attribute (AWS has it as a CloudWatch metric); only returned
    // when asked for by name.
    if names.iter().any(|n| n == "ApproximateAgeOfOldestMessage") {
        out.insert(
            "ApproximateAgeOfOldestMessage".into(),
            q.oldest_age_secs.to_string(),
        );
    }
    out
}

/// `TagQueue`: the tags given merged into the current ones, within the limit.
pub(crate) fn merged_tags(
    queue_name: &str,
    current: &BTreeMap<String, String>,
    add: BTreeMap<String, String>,
) -> SqsResult<BTreeMap<String, String>> {
    let mut merged = current.clone();
    merged.extend(add);
    if merged.len() > limits::MAX_TAGS {
        return Err(SqsError::invalid_parameter(format!(
            "Too many tags added for queue {queue_name}."
        )));
    }
    Ok(merged)
}

fn normalize_redrive_allow_policy(raw: &str) -> SqsResult<String> {
    let bad = |reason: &str| {
        SqsError::invalid_parameter(format!(
            "Value {raw} for parameter RedriveAllowPolicy is invalid. Reason: {reason}"
        ))
    };
    let v: Value = serde_json::from_str(raw)
        .map_err(|_| bad("Redrive allow policy is not a valid JSON map."))?;
    let obj = v
        .as_object()
        .ok_or_else(|| bad("Redrive allow policy is not a valid JSON map."))?;
    let permission = obj
        .get("redrivePermission")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("The required parameter 'redrivePermission' is missing"))?;
    let sources: Vec<String> = match obj.get("sourceQueueArns") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|x| {
                x.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| bad("Invalid value for sourceQueueArns."))
            })
            .collect::<SqsResult<_>>()?,
        Some(_) => return Err(bad("Invalid value for sourceQueueArns.")),
    };
    match permission {
        "allowAll" | "denyAll" => {
            if !sources.is_empty() {
                return Err(bad(
                    "Only when permission is set to byQueue, sourceQueueArns can be specified.",
                ));
            }
            Ok(json!({"redrivePermission": permission}).to_string())
        }
        "byQueue" => {
            if sources.is_empty() {
                return Err(bad(
                    "sourceQueueArns is required when redrivePermission is byQueue.",
                ));
            }
            if sources.len() > 10 {
                return Err(bad("Up to 10 sourceQueueArns can be specified."));
            }
            Ok(json!({"redrivePermission": permission, "sourceQueueArns": sources}).to_string())
        }
        _ => Err(bad("Invalid value for redrivePermission.")),
    }
}

pub(crate) fn validate_tag(key: &str, value: &str) -> SqsResult<()> {
    if key.is_empty() || key.len() > 128 {
        return Err(SqsError::invalid_parameter(format!(
            "Tag key must be between 1 and 128 characters: {key}"
        )));
    }
    if value.len() > 256 {
        return Err(SqsError::invalid_parameter(format!(
            "Tag value must be at most 256 characters: {key}"
        )));
    }
    Ok(())
}

fn encode_token(last: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(last.as_bytes())
}

pub(crate) fn decode_token(token: &str) -> SqsResult<String> {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token.as_bytes())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| SqsError::invalid_parameter("Invalid NextToken value."))
}

/// An `AddPermission` request that passed validation.
pub(crate) struct Permission {
    label: String,
    account_ids: Vec<String>,
    actions: Vec<String>,
}

/// `AddPermission`'s validation (after the queue is resolved), with AWS's texts.
pub(crate) fn check_add_permission(input: AddPermissionInput) -> SqsResult<Permission> {
    let label = input
        .label
        .filter(|l| !l.is_empty())
        .ok_or_else(|| SqsError::missing_parameter("Label"))?;
    if input.aws_account_ids.is_empty() {
        return Err(SqsError::invalid_parameter(
            "Value [] for parameter PrincipalId is invalid. Reason: Unable to verify.",
        ));
    }
    if input.actions.is_empty() {
        return Err(SqsError::missing_parameter("Actions"));
    }
    if input.actions.len() > 7 {
        return Err(SqsError::new(
            ErrorCode::OverLimit,
            format!(
                "{} Actions were found, maximum allowed is 7.",
                input.actions.len()
            ),
        ));
    }
    const ALLOWED: &[&str] = &[
        "*",
        "ChangeMessageVisibility",
        "DeleteMessage",
        "GetQueueAttributes",
        "GetQueueUrl",
        "ListDeadLetterSourceQueues",
        "PurgeQueue",
        "ReceiveMessage",
        "SendMessage",
        "ListQueueTags",
        "ListMessageMoveTasks",
        "StartMessageMoveTask",
        "CancelMessageMoveTask",
    ];
    for a in &input.actions {
        if !ALLOWED.contains(&a.as_str()) {
            return Err(SqsError::invalid_parameter(format!(
                "Value SQS:{a} for parameter ActionName is invalid. Reason: Only the queue owner is allowed to invoke this action."
            )));
        }
    }
    Ok(Permission {
        label,
        account_ids: input.aws_account_ids,
        actions: input.actions,
    })
}

/// Adds the permission's statement to the `Policy` among a queue's attributes (created with
/// AWS's default `Version` and `Id` when there is none); a label already there is refused.
pub(crate) fn add_permission_to(
    attributes: &mut BTreeMap<String, String>,
    queue_arn: &str,
    p: &Permission,
) -> SqsResult<()> {
    let mut policy: Value = attributes
        .get("Policy")
        .and_then(|p| serde_json::from_str(p).ok())
        .unwrap_or_else(|| {
            json!({"Version": "2008-10-17", "Id": format!("{queue_arn}/SQSDefaultPolicy"), "Statement": []})
        });
    let statements = policy
        .get_mut("Statement")
        .and_then(Value::as_array_mut)
        .ok_or_else(|| SqsError::internal("stored policy has no Statement list"))?;
    if statements
        .iter()
        .any(|s| s.get("Sid").and_then(Value::as_str) == Some(&p.label))
    {
        return Err(SqsError::invalid_parameter(format!(
            "Value {} for parameter Label is invalid. Reason: Already exists.",
            p.label
        )));
    }
    let one_or_many = |v: Vec<String>| {
        if v.len() == 1 {
            Value::String(v[0].clone())
        } else {
            json!(v)
        }
    };
    let principals: Vec<String> = p
        .account_ids
        .iter()
        .map(|a| format!("arn:aws:iam::{a}:root"))
        .collect();
    let actions: Vec<String> = p.actions.iter().map(|a| format!("SQS:{a}")).collect();
    statements.push(json!({
        "Sid": p.label,
        "Effect": "Allow",
        "Principal": {"AWS": one_or_many(principals)},
        "Action": one_or_many(actions),
        "Resource": queue_arn,
    }));
    attributes.insert("Policy".into(), policy.to_string());
    Ok(())
}

/// `RemovePermission`'s validation: the label.
pub(crate) fn check_remove_permission(input: RemovePermissionInput) -> SqsResult<String> {
    input
        .label
        .filter(|l| !l.is_empty())
        .ok_or_else(|| SqsError::missing_parameter("Label"))
}

/// Removes the statement labelled `label` from the `Policy` among a queue's attributes.
pub(crate) fn remove_permission_from(
    attributes: &mut BTreeMap<String, String>,
    label: &str,
) -> SqsResult<()> {
    let not_found = || {
        SqsError::invalid_parameter(format!(
            "Value {label} for parameter Label is invalid. Reason: can't find label on existing policy."
        ))
    };
    let mut policy: Value = attributes
        .get("Policy")
        .and_then(|p| serde_json::from_str(p).ok())
        .ok_or_else(not_found)?;
    let statements = policy
        .get_mut("Statement")
        .and_then(Value::as_array_mut)
        .ok_or_else(not_found)?;
    let before = statements.len();
    statements.retain(|s| s.get("Sid").and_then(Value::as_str) != Some(label));
    if statements.len() == before {
        return Err(not_found());
    }
    // AWS keeps the policy (Version 2008-10-17, its Id) with an empty statement list.
    attributes.insert("Policy".into(), policy.to_string());
    Ok(())
}
