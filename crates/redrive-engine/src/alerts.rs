//! Alerts kept in the server (see `docs/alerts.md`): rules per queue or name pattern,
//! evaluated once a minute over the minute history ([`crate::history`]) right after the
//! minute's write, with CloudWatch's three states per (rule, queue), every transition recorded,
//! and an at-least-once outbox of webhook notifications that the server delivers.
//!
//! Everything is a store document, written in one batch with the transition that caused it:
//! rules ([`DOC_ALERT_RULE`], key = rule id), states ([`DOC_ALERT_STATE`],
//! `{rule id}/{region}/{queue}`), transitions ([`DOC_ALERT_HISTORY`], `{at ms:015}/{seq:08}`),
//! silences ([`DOC_ALERT_SILENCE`]) and pending notifications ([`DOC_ALERT_OUTBOX`]). Memory
//! holds the same (bounded) and is rebuilt from the snapshot at startup and after a write
//! failure. Evaluation reads history with key-range reads, never on a request's path.
//!
//! Episodes: a (rule, queue) enters an episode when it goes to ALARM and leaves it when it
//! goes to OK; INSUFFICIENT_DATA in between does not end it. One ALARM notification is queued
//! when the episode starts (or, if a silence held it back, at the first evaluation after the
//! silence ends) and one OK notification when it ends, only if its ALARM was queued.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use parking_lot::Mutex;
use redrive_core::{ErrorCode, SqsError, SqsResult};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use crate::history::{MinuteRecord, civil_from_days};
use crate::store::{DocumentRecord, Mutation};
use crate::{Engine, RequestContext};

pub const DOC_ALERT_RULE: &str = "alert-rule";
pub const DOC_ALERT_STATE: &str = "alert-state";
pub const DOC_ALERT_HISTORY: &str = "alert-history";
pub const DOC_ALERT_SILENCE: &str = "alert-silence";
pub const DOC_ALERT_OUTBOX: &str = "alert-outbox";

/// Transitions kept (the oldest are dropped beyond this).
pub const HISTORY_LIMIT: usize = 10_000;
/// Delivery attempts of one notification before it is dropped.
pub const MAX_ATTEMPTS: u32 = 12;
/// First retry delay; it doubles up to [`MAX_BACKOFF_MS`].
pub const FIRST_BACKOFF_MS: u64 = 1_000;
pub const MAX_BACKOFF_MS: u64 = 300_000;

const MINUTE_MS: u64 = 60_000;
const MAX_WINDOW_MINUTES: u32 = 1440;
/// Minutes of history the residue/growth text looks at, at least.
const CLASSIFY_MINUTES: u32 = 60;

/// What a rule watches. Windows are whole minutes of the minute history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "kind",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum Condition {
    /// `ApproximateNumberOfMessagesVisible ≥ threshold` in each of the last `minutes` minutes.
    Depth { threshold: u64, minutes: u32 },
    /// `ApproximateAgeOfOldestMessage ≥ seconds` at the last minute.
    Age { seconds: u64 },
    /// Arrivals (`NumberOfMessagesSent` + `NumberOfDeadLetterArrivals`) over the last
    /// `window_minutes` ≥ `count`.
    Arrivals { count: u64, window_minutes: u32 },
    /// Visible messages grew by ≥ `increase` over the last `window_minutes`.
    Growth { increase: u64, window_minutes: u32 },
}

impl Condition {
    /// Minutes of history the condition reads.
    fn window(&self) -> u32 {
        match self {
            Condition::Depth { minutes, .. } => *minutes,
            Condition::Age { .. } => 1,
            Condition::Arrivals { window_minutes, .. } => *window_minutes,
            Condition::Growth { window_minutes, .. } => window_minutes + 1,
        }
    }

    fn validate(&self) -> SqsResult<()> {
        let window = |name: &str, m: u32| {
            if m == 0 || m > MAX_WINDOW_MINUTES {
                Err(SqsError::invalid_value(
                    name,
                    m,
                    "Must be between 1 and 1440 minutes.",
                ))
            } else {
                Ok(())
            }
        };
        let positive = |name: &str, n: u64| {
            if n == 0 {
                Err(SqsError::invalid_value(name, n, "Must be at least 1."))
            } else {
                Ok(())
            }
        };
        match self {
            Condition::Depth { threshold, minutes } => {
                positive("condition.threshold", *threshold)?;
                window("condition.minutes", *minutes)
            }
            Condition::Age { seconds } => {
                positive("condition.seconds", *seconds)?;
                if *seconds > 14 * 86_400 {
                    return Err(SqsError::invalid_value(
                        "condition.seconds",
                        seconds,
                        "Must be at most 1209600 (14 days, the longest retention).",
                    ));
                }
                Ok(())
            }
            Condition::Arrivals {
                count,
                window_minutes,
            } => {
                positive("condition.count", *count)?;
                window("condition.windowMinutes", *window_minutes)
            }
            Condition::Growth {
                increase,
                window_minutes,
            } => {
                positive("condition.increase", *increase)?;
                window("condition.windowMinutes", *window_minutes)
            }
        }
    }

    /// "depth ≥ 100 for 30 min", for texts.
    pub fn describe(&self) -> String {
        match self {
            Condition::Depth { threshold, minutes } => {
                format!("depth ≥ {threshold} for {minutes} min")
            }
            Condition::Age { seconds } => format!("age of oldest ≥ {}", duration_text(*seconds)),
            Condition::Arrivals {
                count,
                window_minutes,
            } => format!("arrivals ≥ {count} in {window_minutes} min"),
            Condition::Growth {
                increase,
                window_minutes,
            } => format!("depth growth ≥ {increase} over {window_minutes} min"),
        }
    }
}

/// Body shape of a webhook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub enum WebhookFormat {
    /// Redrive's generic JSON (see docs/alerts.md).
    #[default]
    Json,
    /// Slack incoming-webhook body (`text` and `blocks`).
    Slack,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Webhook {
    pub url: String,
    #[serde(default)]
    pub format: WebhookFormat,
}

/// `POST /_redrive/v1/alerts/rules`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AlertRuleRequest {
    pub name: String,
    /// A queue name or a glob (`*`, `?`) over names, in the caller's Region.
    pub queue: String,
    pub condition: Condition,
    #[serde(default)]
    pub severity: Option<String>,
    #[serde(default)]
    pub webhooks: Vec<Webhook>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AlertRule {
    pub id: String,
    pub name: String,
    pub region: String,
    pub queue: String,
    pub condition: Condition,
    pub severity: String,
    pub webhooks: Vec<Webhook>,
    pub created_ms: u64,
    /// Visible messages of each matching queue when the rule was created (non-zero only).
    #[serde(default)]
    pub backlog_at_creation: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AlarmState {
    Ok,
    Alarm,
    InsufficientData,
}

impl AlarmState {
    pub fn as_str(self) -> &'static str {
        match self {
            AlarmState::Ok => "OK",
            AlarmState::Alarm => "ALARM",
            AlarmState::InsufficientData => "INSUFFICIENT_DATA",
        }
    }
}

/// The state of one (rule, queue).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AlertStatus {
    pub rule_id: String,
    pub region: String,
    pub queue: String,
    pub state: AlarmState,
    /// When the state was entered.
    pub since_ms: u64,
    /// The reason text of the last transition.
    pub reason: String,
    /// Inside an ALARM episode (entered ALARM, not yet back to OK).
    pub episode_open: bool,
    /// The episode's ALARM notification was queued (so its OK will be).
    pub notified: bool,
    /// Episodes so far.
    pub episodes: u64,
}

/// One recorded transition (like CloudWatch's alarm history).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AlertTransition {
    pub at_ms: u64,
    pub rule_id: String,
    pub rule: String,
    pub severity: String,
    pub region: String,
    pub queue: String,
    pub old_state: AlarmState,
    pub new_state: AlarmState,
    pub reason: String,
    /// Webhook notifications queued for this transition.
    pub notifications: usize,
    /// The silence that held notifications back, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub silenced_by: Option<String>,
}

/// `POST /_redrive/v1/alerts/silences`: at least one of `rule`, `queue`; `until` or `duration`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SilenceRequest {
    /// A rule name or id.
    #[serde(default)]
    pub rule: Option<String>,
    /// A queue name or glob.
    #[serde(default)]
    pub queue: Option<String>,
    /// RFC 3339 or epoch seconds/ms.
    #[serde(default)]
    pub until: Option<String>,
    /// `30m`, `2h`, `1d`, or seconds.
    #[serde(default)]
    pub duration: Option<String>,
    #[serde(default)]
    pub comment: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Silence {
    pub id: String,
    #[serde(default)]
    pub rule: Option<String>,
    #[serde(default)]
    pub queue: Option<String>,
    pub until_ms: u64,
    pub created_ms: u64,
    #[serde(default)]
    pub comment: Option<String>,
}

impl Silence {
    fn matches(&self, rule: &AlertRule, queue: &str, now: u64) -> bool {
        now < self.until_ms
            && self
                .rule
                .as_ref()
                .is_none_or(|r| *r == rule.name || *r == rule.id)
            && self.queue.as_ref().is_none_or(|p| glob_match(p, queue))
    }
}

/// `ALARM` (an episode starts) or `OK` (it is resolved).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum NotificationEvent {
    Alarm,
    Ok,
}

/// One webhook delivery waiting in the outbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Notification {
    pub id: String,
    pub event: NotificationEvent,
    pub rule_id: String,
    pub rule: String,
    pub severity: String,
    pub region: String,
    pub queue: String,
    pub condition: String,
    pub reason: String,
    /// When the transition happened.
    pub at_ms: u64,
    pub url: String,
    pub format: WebhookFormat,
    pub attempts: u32,
    pub next_attempt_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// A rule with the states of the queues it matches.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RuleView {
    #[serde(flatten)]
    pub rule: AlertRule,
    pub states: Vec<AlertStatus>,
}

/// What one evaluation did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EvaluationReport {
    /// The minute judged (epoch ms of its start).
    pub minute_ms: u64,
    pub evaluated: usize,
    pub transitions: Vec<AlertTransition>,
    pub notifications: usize,
}

type StateKey = (String, String, String);
/// (rule id, queue name, judgement, burst classification when in ALARM).
type Judged = (String, String, Judgement, Option<String>);

#[derive(Debug, Default, Clone)]
struct AlertTables {
    rules: BTreeMap<String, AlertRule>,
    states: BTreeMap<StateKey, AlertStatus>,
    /// (document key, transition), oldest first.
    history: VecDeque<(String, AlertTransition)>,
    silences: BTreeMap<String, Silence>,
    outbox: BTreeMap<String, Notification>,
    /// Ids handed to the deliverer and not yet reported back.
    in_delivery: std::collections::BTreeSet<String>,
    seq: u64,
    /// On a shared backend: the revision these tables were read at (`None`: read again).
    rev: Option<u64>,
}

impl AlertTables {
    fn from_documents(docs: &[DocumentRecord]) -> AlertTables {
        fn parse<T: serde::de::DeserializeOwned>(d: &DocumentRecord) -> Option<T> {
            let parsed = serde_json::from_slice(&d.value);
            if parsed.is_err() {
                tracing::warn!(kind = %d.kind, key = %d.key, "unreadable alert document skipped");
            }
            parsed.ok()
        }
        let mut t = AlertTables::default();
        for d in docs {
            match d.kind.as_str() {
                DOC_ALERT_RULE => {
                    if let Some(r) = parse::<AlertRule>(d) {
                        t.rules.insert(r.id.clone(), r);
                    }
                }
                DOC_ALERT_STATE => {
                    if let Some(s) = parse::<AlertStatus>(d) {
                        t.states
                            .insert((s.rule_id.clone(), s.region.clone(), s.queue.clone()), s);
                    }
                }
                DOC_ALERT_HISTORY => {
                    if let Some(h) = parse::<AlertTransition>(d) {
                        t.history.push_back((d.key.clone(), h));
                    }
                }
                DOC_ALERT_SILENCE => {
                    if let Some(s) = parse::<Silence>(d) {
                        t.silences.insert(s.id.clone(), s);
                    }
                }
                DOC_ALERT_OUTBOX => {
                    if let Some(n) = parse::<Notification>(d) {
                        t.outbox.insert(n.id.clone(), n);
                    }
                }
                _ => {}
            }
        }
        t.seq = t
            .history
            .back()
            .and_then(|(k, _)| k.split_once('/'))
            .and_then(|(_, s)| s.parse().ok())
            .unwrap_or(0);
        t
    }

    fn find_rule(&self, id_or_name: &str) -> Option<&AlertRule> {
        self.rules
            .get(id_or_name)
            .or_else(|| self.rules.values().find(|r| r.name == id_or_name))
    }

    fn silence_for(&self, rule: &AlertRule, queue: &str, now: u64) -> Option<&Silence> {
        self.silences.values().find(|s| s.matches(rule, queue, now))
    }

    /// Records a transition (and drops the oldest beyond [`HISTORY_LIMIT`]).
    fn record(&mut self, t: AlertTransition, muts: &mut Vec<Mutation>) {
        self.seq += 1;
        let key = format!("{:015}/{:08}", t.at_ms, self.seq);
        muts.push(put_doc(DOC_ALERT_HISTORY, &key, &t));
        self.history.push_back((key, t));
        while self.history.len() > HISTORY_LIMIT {
            if let Some((old, _)) = self.history.pop_front() {
                muts.push(Mutation::DeleteDocument {
                    kind: DOC_ALERT_HISTORY.into(),
                    key: old,
                });
            }
        }
    }

    /// Queues one notification per webhook of `rule`.
    fn enqueue(
        &mut self,
        rule: &AlertRule,
        queue: &str,
        event: NotificationEvent,
        reason: &str,
        now: u64,
        muts: &mut Vec<Mutation>,
    ) -> usize {
        for hook in &rule.webhooks {
            self.seq += 1;
            let n = Notification {
                id: format!("{now:015}-{:08}", self.seq),
                event,
                rule_id: rule.id.clone(),
                rule: rule.name.clone(),
                severity: rule.severity.clone(),
                region: rule.region.clone(),
                queue: queue.to_string(),
                condition: rule.condition.describe(),
                reason: reason.to_string(),
                at_ms: now,
                url: hook.url.clone(),
                format: hook.format,
                attempts: 0,
                next_attempt_ms: now,
                last_error: None,
            };
            muts.push(put_doc(DOC_ALERT_OUTBOX, &n.id, &n));
            self.outbox.insert(n.id.clone(), n);
        }
        rule.webhooks.len()
    }
}

fn put_doc<T: Serialize>(kind: &str, key: &str, value: &T) -> Mutation {
    Mutation::PutDocument(DocumentRecord {
        kind: kind.into(),
        key: key.into(),
        value: serde_json::to_vec(value).unwrap_or_default(),
    })
}

fn state_key(rule_id: &str, region: &str, queue: &str) -> String {
    format!("{rule_id}/{region}/{queue}")
}

/// The engine's alert tables (a leaf lock) and the wakeup of the notification deliverer.
#[derive(Debug)]
pub(crate) struct AlertBook {
    tables: Mutex<AlertTables>,
    /// One evaluation at a time (held across its store reads).
    evaluating: tokio::sync::Mutex<()>,
    outbox_changed: Notify,
    /// On a shared backend: this server's last look at the alerts lease (a leaf lock).
    pub(crate) lease_check: Mutex<crate::shared_alerts::LeaseCheck>,
}

impl AlertBook {
    pub(crate) fn from_documents(docs: &[DocumentRecord]) -> AlertBook {
        AlertBook {
            tables: Mutex::new(AlertTables::from_documents(docs)),
            evaluating: tokio::sync::Mutex::new(()),
            outbox_changed: Notify::new(),
            lease_check: Mutex::default(),
        }
    }

    /// The shared backend's revision the tables were read at.
    pub(crate) fn loaded_rev(&self) -> Option<u64> {
        self.tables.lock().rev
    }

    /// Replaces memory with the shared backend's documents at revision `rev`, keeping which
    /// notifications this server is delivering.
    pub(crate) fn replace(&self, docs: &[DocumentRecord], rev: u64) {
        let mut fresh = AlertTables::from_documents(docs);
        let mut t = self.tables.lock();
        fresh.in_delivery = std::mem::take(&mut t.in_delivery);
        fresh.in_delivery.retain(|id| fresh.outbox.contains_key(id));
        fresh.rev = Some(rev);
        *t = fresh;
    }

    /// Replaces memory with the store's documents (after a write failure).
    pub(crate) fn reload(&self, docs: &[DocumentRecord]) {
        *self.tables.lock() = AlertTables::from_documents(docs);
        self.outbox_changed.notify_waiters();
    }
}

/// `*` matches any run of characters, `?` one character; everything else itself.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// `2026-04-20T20:20Z` (UTC, minute precision).
pub fn time_text(ms: u64) -> String {
    let (y, m, d) = civil_from_days((ms / 86_400_000) as i64);
    let mins = ms % 86_400_000 / MINUTE_MS;
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}Z", mins / 60, mins % 60)
}

/// `45s`, `12 min`, `3 h 5 min`, `2 d 4 h`.
pub fn duration_text(secs: u64) -> String {
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{} min", s / 60),
        s if s < 86_400 => match s % 3600 / 60 {
            0 => format!("{} h", s / 3600),
            m => format!("{} h {m} min", s / 3600),
        },
        s => match s % 86_400 / 3600 {
            0 => format!("{} d", s / 86_400),
            h => format!("{} d {h} h", s / 86_400),
        },
    }
}

/// `90`, `90s`, `30m`, `2h`, `1d` → seconds.
pub fn parse_duration_secs(text: &str) -> Option<u64> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let n: u64 = t[..split].parse().ok()?;
    let unit = match &t[split..] {
        "" | "s" => 1,
        "m" | "min" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return None,
    };
    n.checked_mul(unit)
}

const VISIBLE: usize = 0;
const AGE: usize = 3;

fn arrivals(r: &MinuteRecord) -> u64 {
    // NumberOfMessagesSent + NumberOfDeadLetterArrivals.
    r.c[0] + r.c[7]
}

/// A judged condition: the state and the numbers behind it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Judgement {
    pub state: AlarmState,
    pub reason: String,
}

/// Judges `condition` at minute `last` (epoch minutes) over `points` (epoch minute → record).
pub fn judge(condition: &Condition, points: &BTreeMap<u64, MinuteRecord>, last: u64) -> Judgement {
    // Conditions on gauges judge only the minutes whose gauges were sampled: an unsampled
    // minute is missing data, not an empty queue.
    if !matches!(condition, Condition::Arrivals { .. }) && points.values().any(|r| r.no_gauges) {
        return judge(condition, &sampled(points), last);
    }
    let j = |state, reason: String| Judgement { state, reason };
    let window = |minutes: u32| {
        let first = last + 1 - u64::from(minutes).min(last + 1);
        points.range(first..=last)
    };
    match condition {
        Condition::Depth { threshold, minutes } => {
            let values: Vec<u64> = window(*minutes).map(|(_, r)| r.g[VISIBLE]).collect();
            let latest = points.get(&last).map(|r| r.g[VISIBLE]);
            if values.is_empty() {
                return j(
                    AlarmState::InsufficientData,
                    format!("no minute history in the last {minutes} min"),
                );
            }
            let min = values.iter().copied().min().unwrap_or(0);
            let max = values.iter().copied().max().unwrap_or(0);
            if min < *threshold {
                j(
                    AlarmState::Ok,
                    format!(
                        "{} messages visible, below {threshold} within the last {minutes} min (lowest {min})",
                        latest.unwrap_or(min)
                    ),
                )
            } else if values.len() < *minutes as usize {
                j(
                    AlarmState::InsufficientData,
                    format!(
                        "only {} of the last {minutes} minutes have history (all ≥ {threshold})",
                        values.len()
                    ),
                )
            } else {
                j(
                    AlarmState::Alarm,
                    format!(
                        "{} messages visible, ≥ {threshold} for {minutes} min (lowest {min}, highest {max})",
                        latest.unwrap_or(max)
                    ),
                )
            }
        }
        Condition::Age { seconds } => match points.get(&last) {
            None => j(
                AlarmState::InsufficientData,
                format!("no minute history at {}", time_text(last * MINUTE_MS)),
            ),
            Some(r) if r.g[AGE] >= *seconds => j(
                AlarmState::Alarm,
                format!(
                    "oldest message is {} old (≥ {}), {} messages visible",
                    duration_text(r.g[AGE]),
                    duration_text(*seconds),
                    r.g[VISIBLE]
                ),
            ),
            Some(r) => j(
                AlarmState::Ok,
                format!(
                    "oldest message is {} old (< {})",
                    duration_text(r.g[AGE]),
                    duration_text(*seconds)
                ),
            ),
        },
        Condition::Arrivals {
            count,
            window_minutes,
        } => {
            let recs: Vec<&MinuteRecord> = window(*window_minutes).map(|(_, r)| r).collect();
            if recs.is_empty() {
                return j(
                    AlarmState::InsufficientData,
                    format!("no minute history in the last {window_minutes} min"),
                );
            }
            let sum: u64 = recs.iter().map(|r| arrivals(r)).sum();
            let state = if sum >= *count {
                AlarmState::Alarm
            } else {
                AlarmState::Ok
            };
            let cmp = if sum >= *count { "≥" } else { "<" };
            j(
                state,
                format!("{sum} messages arrived in the last {window_minutes} min ({cmp} {count})"),
            )
        }
        Condition::Growth {
            increase,
            window_minutes,
        } => {
            let start = last.checked_sub(u64::from(*window_minutes));
            match (start.and_then(|s| points.get(&s)), points.get(&last)) {
                (Some(a), Some(b)) => {
                    let (from, to) = (a.g[VISIBLE], b.g[VISIBLE]);
                    let grew = to.saturating_sub(from);
                    let state = if grew >= *increase {
                        AlarmState::Alarm
                    } else {
                        AlarmState::Ok
                    };
                    let cmp = if grew >= *increase { "≥" } else { "<" };
                    j(
                        state,
                        format!(
                            "depth went from {from} to {to} over {window_minutes} min (growth {grew} {cmp} {increase})"
                        ),
                    )
                }
                _ => j(
                    AlarmState::InsufficientData,
                    format!("no minute history at both ends of the last {window_minutes} min"),
                ),
            }
        }
    }
}

/// The minutes of `points` whose gauges were sampled ([`MinuteRecord::no_gauges`]).
fn sampled(points: &BTreeMap<u64, MinuteRecord>) -> BTreeMap<u64, MinuteRecord> {
    points
        .iter()
        .filter(|(_, r)| !r.no_gauges)
        .map(|(m, r)| (*m, r.clone()))
        .collect()
}

/// "residue" or "growth": whether anything arrived over the last `minutes` of history, and how
/// fast depth moved.
pub fn classify(points: &BTreeMap<u64, MinuteRecord>, last: u64, minutes: u32) -> String {
    let first = last + 1 - u64::from(minutes).min(last + 1);
    let recs: Vec<(&u64, &MinuteRecord)> = points.range(first..=last).collect();
    // Arrivals over every minute; depth from the sampled ones.
    let mut with_gauges = recs.iter().filter(|(_, r)| !r.no_gauges);
    let (Some((first_m, first_r)), Some((last_m, last_r))) = (
        with_gauges.next(),
        recs.iter().rev().find(|(_, r)| !r.no_gauges),
    ) else {
        return "no minute history to tell residue from growth".into();
    };
    let span = **last_m - **first_m + 1;
    let came: u64 = recs
        .iter()
        .filter(|(m, _)| (**first_m..=**last_m).contains(*m))
        .map(|(_, r)| arrivals(r))
        .sum();
    let visible = last_r.g[VISIBLE];
    if came == 0 {
        return format!(
            "residue: {visible} messages, none arrived in the last {}",
            duration_text(span * 60)
        );
    }
    // Depth before the window's first minute, as well as the history tells it.
    let baseline = first_r.g[VISIBLE].saturating_sub(arrivals(first_r));
    if visible == baseline {
        format!(
            "steady: {came} arrived in the last {} and depth did not grow",
            duration_text(span * 60)
        )
    } else if visible > baseline {
        format!(
            "growing by {:.1}/min ({came} arrived in the last {})",
            came as f64 / span as f64,
            duration_text(span * 60)
        )
    } else {
        format!(
            "draining: {came} arrived in the last {} while depth fell",
            duration_text(span * 60)
        )
    }
}

fn not_found(what: &str, id: &str) -> SqsError {
    SqsError::new(
        ErrorCode::ResourceNotFoundException,
        format!("No {what} named {id}."),
    )
}

fn valid_pattern(p: &str) -> bool {
    !p.is_empty()
        && p.len() <= 80
        && p.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.*?".contains(c))
}

impl Engine {
    /// Applies `change` to the alert tables and makes what it wrote durable: on the embedded
    /// store as one store batch submitted under the tables' lock; on a shared backend as one
    /// optimistic transaction (`shared_alerts.rs`) over a copy of freshly read tables, which
    /// replaces memory only once written, re-applied when another server wrote in between.
    /// An error from `change` writes nothing.
    async fn edit_alerts<T>(
        &self,
        mut change: impl FnMut(&mut AlertTables) -> SqsResult<(T, Vec<Mutation>)>,
    ) -> SqsResult<T> {
        let Some(b) = self.shared.clone() else {
            self.ensure_synced()?;
            let (value, ticket) = {
                let mut t = self.alerts.tables.lock();
                let (value, muts) = change(&mut t)?;
                (value, (!muts.is_empty()).then(|| self.store.submit(muts)))
            };
            if let Some(ticket) = ticket {
                self.durable(ticket).await?;
            }
            return Ok(value);
        };
        let mut attempt = 0;
        loop {
            if attempt >= crate::shared_alerts::MAX_CONFLICTS {
                return Err(crate::shared_alerts::conflicts_exhausted());
            }
            attempt += 1;
            self.sync_alerts().await?;
            let mut copy = self.alerts.tables.lock().clone();
            let Some(read) = copy.rev else {
                continue; // another change on this server failed meanwhile: read again
            };
            let (value, muts) = change(&mut copy)?;
            if muts.is_empty() {
                return Ok(value);
            }
            match self.commit_shared_alerts(&*b, read, muts).await {
                Ok(true) => {
                    let mut t = self.alerts.tables.lock();
                    if t.rev == Some(read) {
                        copy.in_delivery = std::mem::take(&mut t.in_delivery);
                        copy.rev = Some(read + 1);
                        *t = copy;
                    } else {
                        t.rev = None;
                    }
                    return Ok(value);
                }
                Ok(false) => self.alerts.tables.lock().rev = None,
                Err(e) => {
                    self.alerts.tables.lock().rev = None;
                    return Err(e);
                }
            }
        }
    }

    /// Adds a rule (names are unique). The visible depth of every queue it matches now is kept
    /// with it, so that an ALARM on a backlog that predates the rule says so.
    pub async fn add_alert_rule(
        &self,
        ctx: &RequestContext,
        req: AlertRuleRequest,
    ) -> SqsResult<AlertRule> {
        let name = req.name.trim().to_string();
        if name.is_empty()
            || name.len() > 80
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err(SqsError::invalid_value(
                "name",
                &req.name,
                "Must be 1 to 80 characters: letters, digits, '-', '_', '.'.",
            ));
        }
        if !valid_pattern(&req.queue) {
            return Err(SqsError::invalid_value(
                "queue",
                &req.queue,
                "Must be a queue name or a glob of 1 to 80 characters (letters, digits, '-', '_', '.', '*', '?').",
            ));
        }
        req.condition.validate()?;
        let severity = req.severity.unwrap_or_else(|| "P1".into());
        if severity.is_empty() || severity.len() > 32 || severity.chars().any(char::is_control) {
            return Err(SqsError::invalid_value(
                "severity",
                &severity,
                "Must be 1 to 32 printable characters.",
            ));
        }
        if req.webhooks.len() > 5 {
            return Err(SqsError::invalid_parameter(
                "A rule has at most 5 webhooks.",
            ));
        }
        for w in &req.webhooks {
            let rest = w
                .url
                .strip_prefix("http://")
                .or_else(|| w.url.strip_prefix("https://"));
            if w.url.len() > 2048
                || w.url.chars().any(|c| c.is_whitespace() || c.is_control())
                || rest.is_none_or(|r| r.is_empty() || r.starts_with('/'))
            {
                return Err(SqsError::invalid_value(
                    "webhooks.url",
                    &w.url,
                    "Must be an http:// or https:// URL with a host.",
                ));
            }
        }
        let now = self.now_ms();
        let mut backlog = BTreeMap::new();
        if let Some(b) = &self.shared {
            for q in b.all_queues().await? {
                if q.region == ctx.region && glob_match(&req.queue, &q.name) {
                    let visible = b.counts(&q).await?.visible;
                    if visible > 0 {
                        backlog.insert(q.name.clone(), visible);
                    }
                }
            }
        } else {
            self.ensure_synced()?;
            let matching: Vec<Arc<crate::Queue>> = self
                .queues_in(&ctx.region)
                .into_iter()
                .filter(|q| glob_match(&req.queue, &q.name))
                .collect();
            for q in matching {
                if let Some(g) = self.sample_gauges(&q, now)
                    && g.visible > 0
                {
                    backlog.insert(q.name.clone(), g.visible);
                }
            }
        }
        let rule = AlertRule {
            id: uuid::Uuid::new_v4().to_string(),
            name,
            region: ctx.region.clone(),
            queue: req.queue,
            condition: req.condition,
            severity,
            webhooks: req.webhooks,
            created_ms: now,
            backlog_at_creation: backlog,
        };
        self.edit_alerts(|t| {
            if t.rules.values().any(|r| r.name == rule.name) {
                return Err(SqsError::invalid_parameter(format!(
                    "An alert rule named {} already exists.",
                    rule.name
                )));
            }
            t.rules.insert(rule.id.clone(), rule.clone());
            Ok((rule.clone(), vec![put_doc(DOC_ALERT_RULE, &rule.id, &rule)]))
        })
        .await
    }

    /// Every rule with the states of its queues, by name.
    pub fn alert_rules(&self) -> Vec<RuleView> {
        let t = self.alerts.tables.lock();
        let mut v: Vec<RuleView> = t
            .rules
            .values()
            .map(|r| RuleView {
                rule: r.clone(),
                states: t
                    .states
                    .values()
                    .filter(|s| s.rule_id == r.id)
                    .cloned()
                    .collect(),
            })
            .collect();
        v.sort_by(|a, b| a.rule.name.cmp(&b.rule.name));
        v
    }

    /// One rule by id or name.
    pub fn alert_rule(&self, id_or_name: &str) -> SqsResult<RuleView> {
        self.alert_rules()
            .into_iter()
            .find(|v| v.rule.id == id_or_name || v.rule.name == id_or_name)
            .ok_or_else(|| not_found("alert rule", id_or_name))
    }

    /// Removes a rule, its states and its undelivered notifications (its history stays).
    pub async fn remove_alert_rule(&self, id_or_name: &str) -> SqsResult<()> {
        self.edit_alerts(|t| {
            let id = t
                .find_rule(id_or_name)
                .map(|r| r.id.clone())
                .ok_or_else(|| not_found("alert rule", id_or_name))?;
            t.rules.remove(&id);
            t.states.retain(|k, _| k.0 != id);
            let mut muts = vec![
                Mutation::DeleteDocument {
                    kind: DOC_ALERT_RULE.into(),
                    key: id.clone(),
                },
                Mutation::DeleteDocuments {
                    kind: DOC_ALERT_STATE.into(),
                    prefix: format!("{id}/"),
                },
            ];
            let dropped: Vec<String> = t
                .outbox
                .values()
                .filter(|n| n.rule_id == id)
                .map(|n| n.id.clone())
                .collect();
            for n in dropped {
                t.outbox.remove(&n);
                muts.push(Mutation::DeleteDocument {
                    kind: DOC_ALERT_OUTBOX.into(),
                    key: n,
                });
            }
            Ok(((), muts))
        })
        .await
    }

    /// Transitions, newest first, optionally of one rule (id or name) and/or one queue.
    pub fn alert_history(
        &self,
        rule: Option<&str>,
        queue: Option<&str>,
        limit: usize,
    ) -> Vec<AlertTransition> {
        let t = self.alerts.tables.lock();
        t.history
            .iter()
            .rev()
            .map(|(_, h)| h)
            .filter(|h| rule.is_none_or(|r| h.rule == r || h.rule_id == r))
            .filter(|h| queue.is_none_or(|q| h.queue == q))
            .take(limit)
            .cloned()
            .collect()
    }

    /// Adds a silence: notifications of matching (rule, queue) pairs are not queued until it
    /// ends; transitions are still recorded.
    pub async fn add_silence(&self, req: SilenceRequest) -> SqsResult<Silence> {
        let now = self.now_ms();
        let rule = req
            .rule
            .map(|r| r.trim().to_string())
            .filter(|r| !r.is_empty());
        let queue = req
            .queue
            .map(|q| q.trim().to_string())
            .filter(|q| !q.is_empty());
        if rule.is_none() && queue.is_none() {
            return Err(SqsError::invalid_parameter(
                "A silence needs a rule, a queue pattern, or both (use queue \"*\" for everything).",
            ));
        }
        if let Some(q) = &queue
            && !valid_pattern(q)
        {
            return Err(SqsError::invalid_value(
                "queue",
                q,
                "Must be a queue name or a glob (letters, digits, '-', '_', '.', '*', '?').",
            ));
        }
        let until_ms = match (req.until.as_deref(), req.duration.as_deref()) {
            (Some(_), Some(_)) => {
                return Err(SqsError::invalid_parameter(
                    "Give either until or duration, not both.",
                ));
            }
            (Some(u), None) => crate::history::parse_time(u, now).map_err(|_| {
                SqsError::invalid_value("until", u, "Must be an ISO 8601 time or epoch seconds.")
            })?,
            (None, Some(d)) => parse_duration_secs(d)
                .filter(|s| *s > 0)
                .and_then(|s| now.checked_add(s.checked_mul(1000)?))
                .ok_or_else(|| {
                    SqsError::invalid_value(
                        "duration",
                        d,
                        "Must be a duration such as 30m, 2h, 1d.",
                    )
                })?,
            (None, None) => {
                return Err(SqsError::missing_parameter("until"));
            }
        };
        if until_ms <= now {
            return Err(SqsError::invalid_value(
                "until",
                until_ms,
                "Must be in the future.",
            ));
        }
        let silence = Silence {
            id: uuid::Uuid::new_v4().to_string(),
            rule,
            queue,
            until_ms,
            created_ms: now,
            comment: req.comment,
        };
        self.edit_alerts(|t| {
            if let Some(r) = &silence.rule
                && t.find_rule(r).is_none()
            {
                return Err(not_found("alert rule", r));
            }
            t.silences.insert(silence.id.clone(), silence.clone());
            Ok((
                silence.clone(),
                vec![put_doc(DOC_ALERT_SILENCE, &silence.id, &silence)],
            ))
        })
        .await
    }

    /// Silences not yet ended.
    pub fn silences(&self) -> Vec<Silence> {
        let now = self.now_ms();
        let t = self.alerts.tables.lock();
        t.silences
            .values()
            .filter(|s| s.until_ms > now)
            .cloned()
            .collect()
    }

    pub async fn remove_silence(&self, id: &str) -> SqsResult<()> {
        self.edit_alerts(|t| {
            t.silences
                .remove(id)
                .ok_or_else(|| not_found("silence", id))?;
            Ok((
                (),
                vec![Mutation::DeleteDocument {
                    kind: DOC_ALERT_SILENCE.into(),
                    key: id.into(),
                }],
            ))
        })
        .await
    }

    /// Judges every rule on every queue of its Region it matches at minute `last`, from the
    /// minute history (the embedded store's documents or the shared backend's rows).
    async fn judge_rules(&self, rules: &[AlertRule], last: u64) -> SqsResult<Vec<Judged>> {
        let longest = rules
            .iter()
            .map(|r| r.condition.window().max(CLASSIFY_MINUTES))
            .max()
            .unwrap_or(CLASSIFY_MINUTES);
        let since = (last + 1).saturating_sub(u64::from(longest) + 1) * MINUTE_MS;
        let until = (last + 1) * MINUTE_MS;
        // (region, name, uid, the embedded queue)
        let queues: Vec<(String, String, u64, Option<Arc<crate::Queue>>)> = match &self.shared {
            Some(b) => b
                .all_queues()
                .await?
                .into_iter()
                .map(|q| (q.region, q.name, q.uid, None))
                .collect(),
            None => {
                let regions: std::collections::BTreeSet<&str> =
                    rules.iter().map(|r| r.region.as_str()).collect();
                regions
                    .into_iter()
                    .flat_map(|region| self.queues_in(region))
                    .map(|q| (q.region.clone(), q.name.clone(), q.uid, Some(q)))
                    .collect()
            }
        };
        let mut judged = Vec::new();
        let mut history_cache: BTreeMap<u64, BTreeMap<u64, MinuteRecord>> = BTreeMap::new();
        for rule in rules {
            for (region, name, uid, local) in &queues {
                if *region != rule.region || !glob_match(&rule.queue, name) {
                    continue;
                }
                if !history_cache.contains_key(uid) {
                    let points = match (local, &self.shared) {
                        (Some(q), _) => self.minute_points(q, since, until),
                        (None, Some(b)) => {
                            self.shared_minute_points(&**b, *uid, since, until).await?
                        }
                        (None, None) => Vec::new(),
                    };
                    history_cache.insert(
                        *uid,
                        points
                            .into_iter()
                            .map(|p| (p.minute_ms / MINUTE_MS, p.record))
                            .collect(),
                    );
                }
                let points = &history_cache[uid];
                let j = judge(&rule.condition, points, last);
                let class = (j.state == AlarmState::Alarm)
                    .then(|| classify(points, last, rule.condition.window().max(CLASSIFY_MINUTES)));
                judged.push((rule.id.clone(), name.clone(), j, class));
            }
        }
        Ok(judged)
    }

    /// Evaluates every rule on every queue it matches at the minute that ended last (whose
    /// history the background task has just written), records transitions and queues
    /// notifications, all in one store batch. Called by the history task after each write;
    /// tests call it after [`Engine::flush_history`].
    pub async fn evaluate_alerts(&self) -> EvaluationReport {
        let _one = self.alerts.evaluating.lock().await;
        let now = self.now_ms();
        let last = (now / MINUTE_MS).saturating_sub(1);
        let mut report = EvaluationReport {
            minute_ms: last * MINUTE_MS,
            ..Default::default()
        };
        if self.shared.is_some() {
            // One server judges each minute: the holder of the alerts lease.
            if !self.hold_alerts_lease(true).await {
                return report;
            }
            if let Err(e) = self.sync_alerts().await {
                tracing::warn!(error = %e.message, "alert rules not read");
                return report;
            }
        } else if self.ensure_synced().is_err() {
            return report;
        }
        let rules: Vec<AlertRule> = self.alerts.tables.lock().rules.values().cloned().collect();
        if rules.is_empty() {
            return report;
        }
        // Judge off the lock: history reads go to the store.
        let judged = match self.judge_rules(&rules, last).await {
            Ok(judged) => judged,
            Err(e) => {
                tracing::warn!(error = %e.message, "alert history not read");
                return report;
            }
        };
        report.evaluated = judged.len();
        let recorded = self.edit_alerts(|t| {
            let mut transitions = Vec::new();
            let mut notifications = 0;
            let mut muts = Vec::new();
            let mut live = std::collections::BTreeSet::new();
            for (rule_id, queue, j, class) in judged.iter().cloned() {
                let Some(rule) = t.rules.get(&rule_id).cloned() else {
                    continue; // removed meanwhile
                };
                let key = (rule_id.clone(), rule.region.clone(), queue.clone());
                live.insert(key.clone());
                let mut status = t.states.get(&key).cloned().unwrap_or(AlertStatus {
                    rule_id: rule_id.clone(),
                    region: rule.region.clone(),
                    queue: queue.clone(),
                    state: AlarmState::InsufficientData,
                    since_ms: rule.created_ms,
                    reason: "rule created".into(),
                    episode_open: false,
                    notified: false,
                    episodes: 0,
                });
                let silence = t.silence_for(&rule, &queue, now).map(|s| s.id.clone());
                let before = status.clone();
                if j.state != status.state {
                    let mut reason = format!("{}: {}", rule.condition.describe(), j.reason);
                    if let Some(c) = &class {
                        reason.push_str("; ");
                        reason.push_str(c);
                    }
                    let mut queued = 0;
                    match j.state {
                        AlarmState::Alarm if !status.episode_open => {
                            if status.episodes == 0
                                && let Some(n) = rule.backlog_at_creation.get(&queue)
                            {
                                reason.push_str(&format!(
                                    "; backlog existed before this rule was created at {} ({n} messages visible then)",
                                    time_text(rule.created_ms)
                                ));
                            }
                            status.episode_open = true;
                            status.episodes += 1;
                            status.notified = false;
                            if silence.is_none() {
                                queued = t.enqueue(
                                    &rule,
                                    &queue,
                                    NotificationEvent::Alarm,
                                    &reason,
                                    now,
                                    &mut muts,
                                );
                                status.notified = queued > 0;
                            }
                        }
                        AlarmState::Ok if status.episode_open => {
                            if status.notified && silence.is_none() {
                                queued = t.enqueue(
                                    &rule,
                                    &queue,
                                    NotificationEvent::Ok,
                                    &reason,
                                    now,
                                    &mut muts,
                                );
                            }
                            status.episode_open = false;
                            status.notified = false;
                        }
                        _ => {}
                    }
                    let transition = AlertTransition {
                        at_ms: now,
                        rule_id: rule_id.clone(),
                        rule: rule.name.clone(),
                        severity: rule.severity.clone(),
                        region: rule.region.clone(),
                        queue: queue.clone(),
                        old_state: status.state,
                        new_state: j.state,
                        reason: reason.clone(),
                        notifications: queued,
                        silenced_by: silence
                            .clone()
                            .filter(|_| matches!(j.state, AlarmState::Alarm | AlarmState::Ok)),
                    };
                    notifications += queued;
                    status.state = j.state;
                    status.since_ms = now;
                    status.reason = reason;
                    t.record(transition.clone(), &mut muts);
                    transitions.push(transition);
                } else if status.state == AlarmState::Alarm
                    && status.episode_open
                    && !status.notified
                    && silence.is_none()
                    && !rule.webhooks.is_empty()
                {
                    // A silence held this episode's ALARM back and has ended.
                    let reason = format!("{} (still in ALARM after a silence)", status.reason);
                    notifications += t.enqueue(
                        &rule,
                        &queue,
                        NotificationEvent::Alarm,
                        &reason,
                        now,
                        &mut muts,
                    );
                    status.notified = true;
                }
                if status != before {
                    muts.push(put_doc(
                        DOC_ALERT_STATE,
                        &state_key(&rule_id, &rule.region, &queue),
                        &status,
                    ));
                    t.states.insert(key, status);
                }
            }
            // States of queues that are gone (deleted, or no longer matched).
            let rule_ids: std::collections::BTreeSet<String> =
                rules.iter().map(|r| r.id.clone()).collect();
            let gone: Vec<StateKey> = t
                .states
                .keys()
                .filter(|k| rule_ids.contains(&k.0) && !live.contains(*k))
                .cloned()
                .collect();
            for k in gone {
                t.states.remove(&k);
                muts.push(Mutation::DeleteDocument {
                    kind: DOC_ALERT_STATE.into(),
                    key: state_key(&k.0, &k.1, &k.2),
                });
            }
            let ended: Vec<String> = t
                .silences
                .values()
                .filter(|s| s.until_ms <= now)
                .map(|s| s.id.clone())
                .collect();
            for id in ended {
                t.silences.remove(&id);
                muts.push(Mutation::DeleteDocument {
                    kind: DOC_ALERT_SILENCE.into(),
                    key: id,
                });
            }
            Ok(((transitions, notifications), muts))
        });
        match recorded.await {
            Ok((transitions, notifications)) => {
                report.transitions = transitions;
                report.notifications = notifications;
            }
            Err(e) => {
                tracing::warn!(error = %e.message, "alert evaluation not recorded");
                return EvaluationReport {
                    minute_ms: report.minute_ms,
                    ..Default::default()
                };
            }
        }
        for tr in &report.transitions {
            tracing::info!(
                rule = %tr.rule, queue = %tr.queue, from = tr.old_state.as_str(),
                to = tr.new_state.as_str(), "alert state changed"
            );
        }
        if report.notifications > 0 {
            self.alerts.outbox_changed.notify_waiters();
        }
        report
    }

    /// Notifications whose next attempt is due, handed out once until reported back with
    /// [`Engine::alert_notification_result`].
    pub fn due_alert_notifications(&self, limit: usize) -> Vec<Notification> {
        let now = self.now_ms();
        let mut t = self.alerts.tables.lock();
        let due: Vec<Notification> = t
            .outbox
            .values()
            .filter(|n| n.next_attempt_ms <= now && !t.in_delivery.contains(&n.id))
            .take(limit)
            .cloned()
            .collect();
        for n in &due {
            t.in_delivery.insert(n.id.clone());
        }
        due
    }

    /// Undelivered notifications (for the API and tests).
    pub fn pending_alert_notifications(&self) -> Vec<Notification> {
        self.alerts.tables.lock().outbox.values().cloned().collect()
    }

    /// Epoch ms of the earliest retry not yet due, if any.
    pub fn next_alert_retry_ms(&self) -> Option<u64> {
        let t = self.alerts.tables.lock();
        t.outbox
            .values()
            .filter(|n| !t.in_delivery.contains(&n.id))
            .map(|n| n.next_attempt_ms)
            .min()
    }

    /// Resolves when notifications were queued (or memory was reloaded).
    pub async fn alert_outbox_changed(&self) {
        self.alerts.outbox_changed.notified().await;
    }

    /// Reports one delivery: delivered notifications leave the outbox; failed ones are retried
    /// after 1 s doubling up to 5 min, and dropped after [`MAX_ATTEMPTS`].
    pub async fn alert_notification_result(&self, id: &str, result: Result<(), String>) {
        let now = self.now_ms();
        let written = self
            .edit_alerts(|t| {
                let Some(mut n) = t.outbox.remove(id) else {
                    return Ok(((), Vec::new()));
                };
                let remove = Mutation::DeleteDocument {
                    kind: DOC_ALERT_OUTBOX.into(),
                    key: n.id.clone(),
                };
                match &result {
                    Ok(()) => Ok(((), vec![remove])),
                    Err(e) => {
                        n.attempts += 1;
                        if n.attempts >= MAX_ATTEMPTS {
                            tracing::warn!(
                                rule = %n.rule, queue = %n.queue, attempts = n.attempts, error = %e,
                                "alert notification dropped after its last attempt"
                            );
                            Ok(((), vec![remove]))
                        } else {
                            let backoff = FIRST_BACKOFF_MS
                                .saturating_mul(1 << (n.attempts - 1).min(20))
                                .min(MAX_BACKOFF_MS);
                            n.next_attempt_ms = now + backoff;
                            n.last_error = Some(e.clone());
                            let doc = put_doc(DOC_ALERT_OUTBOX, &n.id, &n);
                            t.outbox.insert(n.id.clone(), n);
                            Ok(((), vec![doc]))
                        }
                    }
                }
            })
            .await;
        // Handed out again once memory shows the outcome (or the old entry, if not written).
        self.alerts.tables.lock().in_delivery.remove(id);
        if let Err(e) = written {
            tracing::warn!(error = %e.message, "alert outbox not updated");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(visible: u64, age: u64, sent: u64, dla: u64) -> MinuteRecord {
        let mut r = MinuteRecord {
            v: 1,
            ..Default::default()
        };
        r.g[VISIBLE] = visible;
        r.g[AGE] = age;
        r.c[0] = sent;
        r.c[7] = dla;
        r
    }

    #[test]
    fn globs() {
        assert!(glob_match("*-dlq", "orders-dlq"));
        assert!(glob_match("*", "x"));
        assert!(glob_match("a?c*", "abcdef"));
        assert!(!glob_match("*-dlq", "orders"));
        assert!(!glob_match("orders", "orders-dlq"));
        assert!(glob_match("o*s*q", "orders-dlq"));
    }

    #[test]
    fn durations_and_times() {
        assert_eq!(parse_duration_secs("2h"), Some(7200));
        assert_eq!(parse_duration_secs("90"), Some(90));
        assert_eq!(parse_duration_secs("2x"), None);
        assert_eq!(duration_text(3900), "1 h 5 min");
        assert_eq!(time_text(1_700_000_000_000), "2023-11-14T22:13Z");
    }

    #[test]
    fn depth_needs_every_minute_of_its_window() {
        let c = Condition::Depth {
            threshold: 1,
            minutes: 3,
        };
        let mut p = BTreeMap::new();
        assert_eq!(judge(&c, &p, 10).state, AlarmState::InsufficientData);
        p.insert(9, rec(5, 0, 0, 0));
        p.insert(10, rec(5, 0, 0, 0));
        assert_eq!(judge(&c, &p, 10).state, AlarmState::InsufficientData);
        p.insert(8, rec(5, 0, 0, 0));
        assert_eq!(judge(&c, &p, 10).state, AlarmState::Alarm);
        p.insert(9, rec(0, 0, 0, 0));
        assert_eq!(judge(&c, &p, 10).state, AlarmState::Ok);
    }

    /// A shared store's minute nobody sampled (its `history` lease holder died) is missing
    /// data: an alarm is not ended by its zero depth, and arrivals still count.
    #[test]
    fn unsampled_minutes_are_missing_gauges_not_zeros() {
        let unsampled = |sent: u64, dla: u64| MinuteRecord {
            no_gauges: true,
            ..rec(0, 0, sent, dla)
        };
        let depth = Condition::Depth {
            threshold: 1,
            minutes: 2,
        };
        let mut p = BTreeMap::new();
        p.insert(8, rec(5, 600, 0, 0));
        p.insert(9, rec(5, 600, 0, 0));
        assert_eq!(judge(&depth, &p, 9).state, AlarmState::Alarm);
        p.insert(10, unsampled(0, 3));
        assert_eq!(judge(&depth, &p, 10).state, AlarmState::InsufficientData);
        let age = Condition::Age { seconds: 300 };
        assert_eq!(judge(&age, &p, 10).state, AlarmState::InsufficientData);
        let growth = Condition::Growth {
            increase: 1,
            window_minutes: 1,
        };
        assert_eq!(judge(&growth, &p, 10).state, AlarmState::InsufficientData);
        let arrivals = Condition::Arrivals {
            count: 3,
            window_minutes: 1,
        };
        assert_eq!(judge(&arrivals, &p, 10).state, AlarmState::Alarm);
        p.insert(11, rec(8, 600, 0, 0));
        assert_eq!(
            classify(&p, 11, 60),
            "growing by 0.8/min (3 arrived in the last 4 min)"
        );
    }

    #[test]
    fn residue_and_growth_texts() {
        let mut p = BTreeMap::new();
        for m in 0..10 {
            p.insert(m, rec(50, 0, 0, 0));
        }
        assert_eq!(
            classify(&p, 9, 60),
            "residue: 50 messages, none arrived in the last 10 min"
        );
        for m in 0..10 {
            p.insert(m, rec(10 * m, 0, 0, 10));
        }
        assert_eq!(
            classify(&p, 9, 60),
            "growing by 10.0/min (100 arrived in the last 10 min)"
        );
    }
}
