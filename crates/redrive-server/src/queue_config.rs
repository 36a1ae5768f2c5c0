//! Queues declared in a TOML file (`redrive serve --config FILE`, `redrive config check FILE`):
//! created at start if missing, never changed or deleted when they exist. See
//! docs/queue-config.md.
//!
//! A file is applied in two steps, so a bad file changes nothing: every queue (with its
//! messages) is first created in a scratch in-memory engine, which runs every AWS validation
//! exactly as a request would; only a file that passes is applied to the real engine. Errors
//! name `FILE:LINE`, the queue and the field.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use redrive_core::api::{
    CreateQueueInput, GetQueueUrlInput, MessageAttributeValue, Request, Response, SendMessageInput,
};
use redrive_core::arn::QueueArn;
use redrive_core::{ErrorCode, SqsError};
use redrive_engine::{Engine, EngineConfig, RequestContext};
use serde::Deserialize;
use toml::Spanned;

use crate::dispatch::dispatch;

/// On a shared store: the lease under which one server at a time applies a queue file.
pub const CONFIG_LEASE: &str = "queue-config";
const CONFIG_LEASE_MS: u64 = 30_000;
/// How long a starting server waits for another one's apply.
const CONFIG_LEASE_WAIT: std::time::Duration = std::time::Duration::from_secs(120);

/// One problem in a queue file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    pub line: usize,
    /// `queue `NAME`, field `FIELD`` (or empty for a file-level problem).
    pub place: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: ", self.file.display(), self.line)?;
        if !self.place.is_empty() {
            write!(f, "{}: ", self.place)?;
        }
        f.write_str(&self.message)
    }
}

/// Every problem found (a file is checked whole before reporting).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Document {
    /// Region of every queue that names none (default: the server's).
    #[serde(default)]
    region: Option<String>,
    #[serde(default, rename = "queue")]
    queues: Vec<Spanned<QueueSpec>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct QueueSpec {
    name: Spanned<String>,
    #[serde(default)]
    region: Option<Spanned<String>>,
    #[serde(default)]
    fifo: Option<Spanned<bool>>,
    #[serde(default)]
    visibility_timeout: Option<Spanned<i64>>,
    #[serde(default)]
    delay: Option<Spanned<i64>>,
    #[serde(default)]
    receive_wait_time: Option<Spanned<i64>>,
    #[serde(default)]
    message_retention: Option<Spanned<i64>>,
    #[serde(default)]
    maximum_message_size: Option<Spanned<i64>>,
    #[serde(default)]
    content_based_deduplication: Option<Spanned<bool>>,
    #[serde(default)]
    deduplication_scope: Option<Spanned<String>>,
    #[serde(default)]
    fifo_throughput_limit: Option<Spanned<String>>,
    #[serde(default)]
    dead_letter_queue: Option<Spanned<DeadLetterSpec>>,
    #[serde(default)]
    redrive_allow_policy: Option<Spanned<AllowSpec>>,
    #[serde(default)]
    tags: Option<Spanned<BTreeMap<String, String>>>,
    /// Any other attribute, by its AWS name (e.g. `KmsMasterKeyId`, `Policy`).
    #[serde(default)]
    attributes: BTreeMap<String, Spanned<String>>,
    /// Sent once, when the queue is created by this file.
    #[serde(default, rename = "message")]
    messages: Vec<Spanned<MessageSpec>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeadLetterSpec {
    name: String,
    max_receive_count: i64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AllowSpec {
    /// `allowAll`, `denyAll` or `byQueue`.
    permission: String,
    /// Names of the queues allowed to use this one as their DLQ (`byQueue`).
    #[serde(default)]
    source_queues: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MessageSpec {
    body: String,
    #[serde(default)]
    group_id: Option<String>,
    #[serde(default)]
    deduplication_id: Option<String>,
    #[serde(default)]
    delay: Option<i64>,
    /// String message attributes.
    #[serde(default)]
    attributes: BTreeMap<String, String>,
}

/// A parsed queue file, ready to check or apply.
#[derive(Debug)]
pub struct QueueConfig {
    file: PathBuf,
    text: String,
    region: Option<String>,
    queues: Vec<Spanned<QueueSpec>>,
}

/// What applying a file did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ApplyReport {
    /// Queues created now (`region/name`).
    pub created: Vec<String>,
    /// Queues that existed and were left as they are.
    pub existing: Vec<String>,
    /// Existing queues whose attributes differ from the file's (left as they are).
    pub differing: Vec<String>,
    pub messages_sent: usize,
}

impl QueueConfig {
    /// Reads and parses `path` (syntax, field names and types).
    pub fn load(path: &Path) -> Result<QueueConfig, ConfigErrors> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigErrors(vec![ConfigError {
                file: path.to_path_buf(),
                line: 0,
                place: String::new(),
                message: format!("cannot read: {e}"),
            }])
        })?;
        QueueConfig::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<QueueConfig, ConfigErrors> {
        let doc: Document = toml::from_str(text).map_err(|e| {
            let line = e.span().map_or(0, |s| line_of(text, s.start));
            ConfigErrors(vec![ConfigError {
                file: path.to_path_buf(),
                line,
                place: String::new(),
                message: e.message().trim().to_string(),
            }])
        })?;
        Ok(QueueConfig {
            file: path.to_path_buf(),
            text: text.to_string(),
            region: doc.region,
            queues: doc.queues,
        })
    }

    /// The number of queues declared.
    pub fn len(&self) -> usize {
        self.queues.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queues.is_empty()
    }

    /// Runs every check `apply` would, on a scratch in-memory engine; changes nothing.
    /// `existing` answers whether a queue the file does not declare exists already (a DLQ
    /// named by the file but created elsewhere).
    pub async fn check(
        &self,
        account_id: &str,
        default_region: &str,
        existing: impl Fn(&str, &str) -> bool,
    ) -> Result<ApplyReport, ConfigErrors> {
        let scratch = Arc::new(Engine::in_memory(EngineConfig {
            account_id: account_id.to_string(),
            ..EngineConfig::default()
        }));
        let plan = self.plan(account_id, default_region)?;
        // DLQs declared elsewhere must exist; in the scratch engine they are stand-ins.
        let mut errors = Vec::new();
        for q in &plan {
            if let Some((dlq, span)) = &q.external_dlq {
                if existing(&q.region, dlq) {
                    let ctx = ctx_for(&q.region);
                    let fifo = dlq.ends_with(".fifo");
                    let mut attributes = BTreeMap::new();
                    if fifo {
                        attributes.insert("FifoQueue".into(), "true".into());
                    }
                    let _ = scratch
                        .create_queue(
                            &ctx,
                            CreateQueueInput {
                                queue_name: dlq.clone(),
                                attributes,
                                tags: BTreeMap::new(),
                            },
                        )
                        .await;
                } else {
                    errors.push(self.error(
                        span.start,
                        &q.name,
                        "dead_letter_queue",
                        format!(
                            "queue `{dlq}` is neither declared in this file nor exists in Region {}",
                            q.region
                        ),
                    ));
                }
            }
        }
        if !errors.is_empty() {
            return Err(ConfigErrors(errors));
        }
        self.apply_plan(&scratch, &plan, false).await
    }

    /// Creates every declared queue that does not exist yet (and sends its messages); leaves
    /// existing queues as they are. Checks the whole file first: a bad file changes nothing.
    /// On a shared store, servers starting together apply the file one at a time (under the
    /// [`CONFIG_LEASE`]), so a queue's messages are sent once, by the server that created it.
    pub async fn apply(
        &self,
        engine: &Arc<Engine>,
        account_id: &str,
        default_region: &str,
    ) -> Result<ApplyReport, ConfigErrors> {
        let Some(b) = engine.shared_backend().cloned() else {
            return self.apply_checked(engine, account_id, default_region).await;
        };
        let holder = uuid::Uuid::new_v4().to_string();
        let deadline = std::time::Instant::now() + CONFIG_LEASE_WAIT;
        loop {
            match b.lease(CONFIG_LEASE, &holder, CONFIG_LEASE_MS).await {
                Ok(true) => break,
                Ok(false) if std::time::Instant::now() < deadline => {
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                }
                Ok(false) => {
                    return Err(self.file_error(format!(
                        "another server has been applying queue files for over {} s",
                        CONFIG_LEASE_WAIT.as_secs()
                    )));
                }
                Err(e) => return Err(self.file_error(e.message)),
            }
        }
        let applied = self.apply_checked(engine, account_id, default_region).await;
        if let Err(e) = b.release(CONFIG_LEASE, &holder).await {
            tracing::warn!(error = %e.message, "queue-file lease not released (it expires)");
        }
        applied
    }

    async fn apply_checked(
        &self,
        engine: &Arc<Engine>,
        account_id: &str,
        default_region: &str,
    ) -> Result<ApplyReport, ConfigErrors> {
        let plan = self.plan(account_id, default_region)?;
        // Which DLQs the file names but does not declare exist now (read before the check).
        let mut existing = HashSet::new();
        for q in &plan {
            if let Some((dlq, _)) = &q.external_dlq
                && queue_exists(engine, &q.region, dlq).await
            {
                existing.insert((q.region.clone(), dlq.clone()));
            }
        }
        let exists =
            |region: &str, name: &str| existing.contains(&(region.to_string(), name.to_string()));
        self.check(account_id, default_region, exists).await?;
        self.apply_plan(engine, &plan, true).await
    }

    /// Resolves names, orders queues so every DLQ comes before the queues that use it, and
    /// builds the AWS attributes.
    fn plan(&self, account_id: &str, default_region: &str) -> Result<Vec<Planned>, ConfigErrors> {
        let mut errors = Vec::new();
        let region_of = |q: &QueueSpec| {
            q.region
                .as_ref()
                .map(|r| r.get_ref().clone())
                .or_else(|| self.region.clone())
                .unwrap_or_else(|| default_region.to_string())
        };
        let mut declared: HashMap<(String, String), usize> = HashMap::new();
        for (i, q) in self.queues.iter().enumerate() {
            let q = q.get_ref();
            let key = (region_of(q), q.name.get_ref().clone());
            if declared.insert(key, i).is_some() {
                errors.push(self.error(
                    q.name.span().start,
                    q.name.get_ref(),
                    "name",
                    "declared twice".into(),
                ));
            }
        }
        let mut planned = Vec::new();
        for (i, spanned) in self.queues.iter().enumerate() {
            let q = spanned.get_ref();
            let name = q.name.get_ref().clone();
            let region = region_of(q);
            let mut attributes: BTreeMap<String, Spanned<String>> = BTreeMap::new();
            let mut put = |aws: &str, span: std::ops::Range<usize>, value: String| {
                attributes.insert(aws.to_string(), Spanned::new(span, value));
            };
            if let Some(v) = &q.fifo {
                put("FifoQueue", v.span(), v.get_ref().to_string());
            } else if name.ends_with(".fifo") {
                put("FifoQueue", q.name.span(), "true".into());
            }
            for (aws, v) in [
                ("VisibilityTimeout", &q.visibility_timeout),
                ("DelaySeconds", &q.delay),
                ("ReceiveMessageWaitTimeSeconds", &q.receive_wait_time),
                ("MessageRetentionPeriod", &q.message_retention),
                ("MaximumMessageSize", &q.maximum_message_size),
            ] {
                if let Some(v) = v {
                    put(aws, v.span(), v.get_ref().to_string());
                }
            }
            if let Some(v) = &q.content_based_deduplication {
                put(
                    "ContentBasedDeduplication",
                    v.span(),
                    v.get_ref().to_string(),
                );
            }
            for (aws, v) in [
                ("DeduplicationScope", &q.deduplication_scope),
                ("FifoThroughputLimit", &q.fifo_throughput_limit),
            ] {
                if let Some(v) = v {
                    put(aws, v.span(), v.get_ref().clone());
                }
            }
            let mut dlq_index = None;
            let mut external_dlq = None;
            if let Some(d) = &q.dead_letter_queue {
                let spec = d.get_ref();
                let arn = QueueArn::new(&region, account_id, &spec.name).to_string();
                let policy = serde_json::json!({
                    "deadLetterTargetArn": arn,
                    "maxReceiveCount": spec.max_receive_count,
                });
                put("RedrivePolicy", d.span(), policy.to_string());
                match declared.get(&(region.clone(), spec.name.clone())) {
                    Some(&j) if j == i => errors.push(self.error(
                        d.span().start,
                        &name,
                        "dead_letter_queue",
                        "a queue cannot be its own dead-letter queue".into(),
                    )),
                    Some(&j) => dlq_index = Some(j),
                    None => external_dlq = Some((spec.name.clone(), d.span())),
                }
            }
            if let Some(a) = &q.redrive_allow_policy {
                let spec = a.get_ref();
                let mut policy = serde_json::json!({ "redrivePermission": spec.permission });
                if !spec.source_queues.is_empty() {
                    policy["sourceQueueArns"] = spec
                        .source_queues
                        .iter()
                        .map(|n| QueueArn::new(&region, account_id, n).to_string())
                        .collect();
                }
                put("RedriveAllowPolicy", a.span(), policy.to_string());
            }
            for (k, v) in &q.attributes {
                put(k, v.span(), v.get_ref().clone());
            }
            planned.push(Planned {
                index: i,
                name,
                region,
                attributes,
                dlq_index,
                external_dlq,
            });
        }
        if !errors.is_empty() {
            return Err(ConfigErrors(errors));
        }
        // Depth-first: a queue after its DLQ; a cycle of DLQs is an error.
        let mut order = Vec::with_capacity(planned.len());
        let mut state = vec![0u8; planned.len()]; // 0 new, 1 visiting, 2 done
        for start in 0..planned.len() {
            let mut chain = Vec::new();
            let mut at = Some(start);
            while let Some(i) = at {
                match state[i] {
                    2 => break,
                    1 => {
                        let q = &planned[i];
                        let span = self.queues[q.index]
                            .get_ref()
                            .dead_letter_queue
                            .as_ref()
                            .map_or(0, |d| d.span().start);
                        return Err(ConfigErrors(vec![self.error(
                            span,
                            &q.name,
                            "dead_letter_queue",
                            "dead-letter queues form a cycle".into(),
                        )]));
                    }
                    _ => {
                        state[i] = 1;
                        chain.push(i);
                        at = planned[i].dlq_index;
                    }
                }
            }
            for &i in chain.iter().rev() {
                state[i] = 2;
                order.push(i);
            }
        }
        let mut by_index: Vec<Option<Planned>> = planned.into_iter().map(Some).collect();
        Ok(order
            .into_iter()
            .filter_map(|i| by_index[i].take())
            .collect())
    }

    async fn apply_plan(
        &self,
        engine: &Arc<Engine>,
        plan: &[Planned],
        log: bool,
    ) -> Result<ApplyReport, ConfigErrors> {
        let mut report = ApplyReport::default();
        let mut errors = Vec::new();
        let mut failed: HashSet<usize> = HashSet::new();
        for q in plan {
            if q.dlq_index.is_some_and(|d| failed.contains(&d)) {
                failed.insert(q.index);
                continue;
            }
            let spec = self.queues[q.index].get_ref();
            let ctx = ctx_for(&q.region);
            let label = format!("{}/{}", q.region, q.name);
            let existed = queue_exists(engine, &q.region, &q.name).await;
            let input = CreateQueueInput {
                queue_name: q.name.clone(),
                attributes: q
                    .attributes
                    .iter()
                    .map(|(k, v)| (k.clone(), v.get_ref().clone()))
                    .collect(),
                tags: spec
                    .tags
                    .as_ref()
                    .map(|t| t.get_ref().clone())
                    .unwrap_or_default(),
            };
            match dispatch(engine, &ctx, Request::CreateQueue(input)).await {
                Ok(_) if existed => report.existing.push(label),
                Ok(_) => report.created.push(label),
                Err(e) if existed && e.code == ErrorCode::QueueNameExists => {
                    if log {
                        tracing::warn!(queue = %label, "{}; left as it is", e.message);
                    }
                    report.differing.push(label);
                }
                Err(e) => {
                    failed.insert(q.index);
                    errors.push(self.queue_error(q, &e));
                    continue;
                }
            }
            if existed {
                continue;
            }
            for m in &spec.messages {
                let msg = m.get_ref();
                let input = SendMessageInput {
                    queue_url: queue_url(engine, &q.region, &q.name)
                        .await
                        .unwrap_or_default(),
                    message_body: Some(msg.body.clone()),
                    delay_seconds: msg.delay,
                    message_attributes: msg
                        .attributes
                        .iter()
                        .map(|(k, v)| {
                            (
                                k.clone(),
                                MessageAttributeValue {
                                    string_value: Some(v.clone()),
                                    data_type: "String".into(),
                                    ..Default::default()
                                },
                            )
                        })
                        .collect(),
                    message_system_attributes: BTreeMap::new(),
                    message_deduplication_id: msg.deduplication_id.clone(),
                    message_group_id: msg.group_id.clone(),
                };
                match dispatch(engine, &ctx, Request::SendMessage(input)).await {
                    Ok(_) => report.messages_sent += 1,
                    Err(e) => errors.push(self.error(
                        m.span().start,
                        &q.name,
                        "message",
                        e.message.clone(),
                    )),
                }
            }
        }
        if errors.is_empty() {
            if log {
                tracing::info!(
                    created = report.created.len(),
                    existing = report.existing.len() + report.differing.len(),
                    messages = report.messages_sent,
                    file = %self.file.display(),
                    "queues from the config file"
                );
            }
            Ok(report)
        } else {
            Err(ConfigErrors(errors))
        }
    }

    /// An engine error on a queue, placed at the field whose AWS attribute it names.
    fn queue_error(&self, q: &Planned, e: &SqsError) -> ConfigError {
        let spec = self.queues[q.index].get_ref();
        let named = q
            .attributes
            .iter()
            .filter(|(k, _)| e.message.contains(k.as_str()))
            .max_by_key(|(k, _)| k.len());
        match named {
            Some((aws, v)) => {
                self.error(v.span().start, &q.name, &field_of(aws), e.message.clone())
            }
            None if e.message.to_ascii_lowercase().contains("tag") => {
                let at = spec
                    .tags
                    .as_ref()
                    .map_or(spec.name.span().start, |t| t.span().start);
                self.error(at, &q.name, "tags", e.message.clone())
            }
            None => self.error(spec.name.span().start, &q.name, "name", e.message.clone()),
        }
    }

    /// A problem of the whole file (line 1, no place).
    fn file_error(&self, message: String) -> ConfigErrors {
        ConfigErrors(vec![ConfigError {
            file: self.file.clone(),
            line: 1,
            place: String::new(),
            message,
        }])
    }

    fn error(&self, offset: usize, queue: &str, field: &str, message: String) -> ConfigError {
        ConfigError {
            file: self.file.clone(),
            line: line_of(&self.text, offset),
            place: format!("queue `{queue}`, field `{field}`"),
            message,
        }
    }
}

/// A queue with its resolved Region and AWS attributes (each with the span it came from).
#[derive(Debug)]
struct Planned {
    index: usize,
    name: String,
    region: String,
    attributes: BTreeMap<String, Spanned<String>>,
    /// The DLQ, when declared in the same file.
    dlq_index: Option<usize>,
    /// The DLQ, when not declared in the file (must exist already).
    external_dlq: Option<(String, std::ops::Range<usize>)>,
}

/// The file's field for an AWS attribute name.
fn field_of(aws: &str) -> String {
    match aws {
        "FifoQueue" => "fifo",
        "VisibilityTimeout" => "visibility_timeout",
        "DelaySeconds" => "delay",
        "ReceiveMessageWaitTimeSeconds" => "receive_wait_time",
        "MessageRetentionPeriod" => "message_retention",
        "MaximumMessageSize" => "maximum_message_size",
        "ContentBasedDeduplication" => "content_based_deduplication",
        "DeduplicationScope" => "deduplication_scope",
        "FifoThroughputLimit" => "fifo_throughput_limit",
        "RedrivePolicy" => "dead_letter_queue",
        "RedriveAllowPolicy" => "redrive_allow_policy",
        other => return format!("attributes.{other}"),
    }
    .to_string()
}

fn ctx_for(region: &str) -> RequestContext {
    RequestContext {
        region: region.to_string(),
        base_url: "http://localhost".to_string(),
    }
}

/// A queue's URL on either store (as `GetQueueUrl` answers it).
async fn queue_url(engine: &Arc<Engine>, region: &str, name: &str) -> Option<String> {
    let request = Request::GetQueueUrl(GetQueueUrlInput {
        queue_name: name.to_string(),
        queue_owner_aws_account_id: None,
    });
    match dispatch(engine, &ctx_for(region), request).await {
        Ok(Response::GetQueueUrl(o)) => Some(o.queue_url),
        _ => None,
    }
}

async fn queue_exists(engine: &Arc<Engine>, region: &str, name: &str) -> bool {
    queue_url(engine, region, name).await.is_some()
}

/// 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> QueueConfig {
        QueueConfig::parse(Path::new("q.toml"), text).unwrap()
    }

    async fn check(text: &str) -> Result<ApplyReport, ConfigErrors> {
        parse(text)
            .check("000000000000", "us-east-1", |_, _| false)
            .await
    }

    #[tokio::test]
    async fn dlq_declared_after_its_source_is_created_first() {
        let r = check(
            r#"
[[queue]]
name = "orders"
dead_letter_queue = { name = "orders-dlq", max_receive_count = 3 }

[[queue]]
name = "orders-dlq"
"#,
        )
        .await
        .unwrap();
        assert_eq!(r.created, ["us-east-1/orders-dlq", "us-east-1/orders"]);
    }

    #[tokio::test]
    async fn syntax_and_unknown_fields_name_the_line() {
        let e = QueueConfig::parse(
            Path::new("q.toml"),
            "[[queue]]\nname = \"a\"\nvisibility = 3\n",
        )
        .unwrap_err();
        assert_eq!(e.0[0].line, 3, "{e}");
        assert!(e.to_string().starts_with("q.toml:3: "), "{e}");
        assert!(e.to_string().contains("visibility"), "{e}");
        let e = QueueConfig::parse(Path::new("q.toml"), "[[queue]\n").unwrap_err();
        assert_eq!(e.0[0].line, 1, "{e}");
    }

    #[tokio::test]
    async fn aws_rejections_name_line_queue_and_field() {
        let e = check("[[queue]]\nname = \"a\"\n\nvisibility_timeout = 50000\n")
            .await
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "q.toml:4: queue `a`, field `visibility_timeout`: Invalid value for the parameter VisibilityTimeout."
        );
        let e = check("[[queue]]\nname = \"bad name!\"\n")
            .await
            .unwrap_err();
        assert_eq!(e.0[0].line, 2, "{e}");
        assert!(e.0[0].place.contains("`name`"), "{e}");
    }

    #[tokio::test]
    async fn unknown_dlq_cycles_and_duplicates_are_refused() {
        let e = check("[[queue]]\nname = \"a\"\ndead_letter_queue = { name = \"nope\", max_receive_count = 1 }\n")
            .await
            .unwrap_err();
        assert!(e.to_string().contains("neither declared"), "{e}");
        assert_eq!(e.0[0].line, 3);
        let e = check(
            "[[queue]]\nname = \"a\"\ndead_letter_queue = { name = \"b\", max_receive_count = 1 }\n\
             [[queue]]\nname = \"b\"\ndead_letter_queue = { name = \"a\", max_receive_count = 1 }\n",
        )
        .await
        .unwrap_err();
        assert!(e.to_string().contains("cycle"), "{e}");
        let e = check("[[queue]]\nname = \"a\"\n[[queue]]\nname = \"a\"\n")
            .await
            .unwrap_err();
        assert!(e.to_string().contains("declared twice"), "{e}");
        assert_eq!(e.0[0].line, 4);
    }

    #[tokio::test]
    async fn fifo_message_without_group_is_refused_at_its_line() {
        let e = check(
            "[[queue]]\nname = \"a.fifo\"\ncontent_based_deduplication = true\n\n[[queue.message]]\nbody = \"x\"\n",
        )
        .await
        .unwrap_err();
        assert_eq!(e.0[0].line, 5, "{e}");
        assert!(e.0[0].message.contains("MessageGroupId"), "{e}");
    }
}
