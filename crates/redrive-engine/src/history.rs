//! Minute history: every queue's CloudWatch-equivalent metrics per wall-clock minute, kept in
//! the store as extension documents (see `docs/metrics.md`, "Minute history").
//!
//! Once per minute (by the [`Clock`](crate::Clock)) a background task writes one document per
//! live queue for the minute that just ended: the deltas of the queue's durable counters
//! ([`QueueCounters`](crate::metrics::QueueCounters)) since the previous write, and one sample
//! of each gauge taken at the minute's end. Nothing is written per message. Whole days older
//! than the retention are dropped with one prefix delete per queue and day.
//!
//! Layout: kind [`DOC_METRICS_MINUTE`], key `{queue uid}/{YYYYMMDD}/{minute of day:04}` (UTC),
//! value a JSON array `[1, 10 counter deltas, 5 gauges]` (the version first; counters and gauges
//! in the order of [`COUNTERS`] and [`GAUGES`]).
//!
//! Counters restart at zero with the process, so the first write after a restart is the delta
//! since the restart: nothing is counted twice. A partial minute written at shutdown
//! ([`Engine::flush_history_partial`]) is added to, not replaced, by the next process's write of
//! the same minute.
//!
//! History is read only by the extension API ([`Engine::metric_history`]), straight from the
//! store with a key-range read; it is never kept in memory nor read on a request's path (the
//! writer reads nothing back: what it must add to is taken from the snapshot the engine opened
//! with, or remembered from its own partial write).

pub(crate) use redrive_core::civil::{civil_from_days, days_from_civil};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use redrive_core::{SqsError, SqsResult};

use crate::metrics::QueueCounters;
use crate::store::{DocumentRecord, Mutation};
use crate::{Engine, Queue, RequestContext};

/// Extension-document kind of one queue-minute.
pub const DOC_METRICS_MINUTE: &str = "metrics-minute";
/// Days of history kept unless configured otherwise.
pub const DEFAULT_RETENTION_DAYS: u32 = 15;

/// On a shared store: how long after the minute's flush the rules are judged.
const SHARED_JUDGE_DELAY: Duration = Duration::from_secs(5);
pub(crate) const MINUTE_MS: u64 = 60_000;
pub(crate) const DAY_MS: u64 = 86_400_000;
const MINUTES_PER_DAY: u64 = 1440;

/// How a stored number aggregates and what unit it has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    /// A count of events in the minute (the delta of a durable counter).
    Counter,
    /// One sample taken at the minute's end.
    Gauge,
}

/// One metric of the minute history.
#[derive(Debug, Clone, Copy)]
pub struct MetricDef {
    /// CloudWatch's name (`AWS/SQS`), or a Redrive name where CloudWatch has none.
    pub name: &'static str,
    pub unit: &'static str,
    pub kind: MetricKind,
}

const fn counter(name: &'static str, unit: &'static str) -> MetricDef {
    MetricDef {
        name,
        unit,
        kind: MetricKind::Counter,
    }
}

const fn gauge(name: &'static str, unit: &'static str) -> MetricDef {
    MetricDef {
        name,
        unit,
        kind: MetricKind::Gauge,
    }
}

/// The counters, in the order stored in `c`.
pub const COUNTERS: [MetricDef; 10] = [
    counter("NumberOfMessagesSent", "Count"),
    counter("SentMessageSize", "Bytes"),
    counter("NumberOfMessagesReceived", "Count"),
    counter("NumberOfMessagesDeleted", "Count"),
    counter("NumberOfEmptyReceives", "Count"),
    counter("NumberOfDeduplicatedSentMessages", "Count"),
    counter("NumberOfMessagesMovedToDeadLetterQueue", "Count"),
    counter("NumberOfDeadLetterArrivals", "Count"),
    counter("NumberOfMessagesRedrivenByMoveTasks", "Count"),
    counter("NumberOfMessagesRedrivenByReplays", "Count"),
];

/// Index of `SentMessageSize` in [`COUNTERS`] (its statistics are per message).
pub const SENT_BYTES: usize = 1;

/// The gauges, in the order stored in `g`.
pub const GAUGES: [MetricDef; 5] = [
    gauge("ApproximateNumberOfMessagesVisible", "Count"),
    gauge("ApproximateNumberOfMessagesNotVisible", "Count"),
    gauge("ApproximateNumberOfMessagesDelayed", "Count"),
    gauge("ApproximateAgeOfOldestMessage", "Seconds"),
    gauge("ApproximateNumberOfGroupsWithInflightMessages", "Count"),
];

/// One queue-minute.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MinuteRecord {
    /// Format version (1).
    pub v: u32,
    /// Counter deltas, in the order of [`COUNTERS`].
    pub c: [u64; 10],
    /// Gauge samples at the minute's end, in the order of [`GAUGES`].
    pub g: [u64; 5],
    /// The minute's gauges were never sampled (`g` is zeros, not a reading): on a shared
    /// store, a minute that ended while no server held the `history` lease (its holder had
    /// died). Gauge readers skip such a minute; its counters count. Never stored.
    pub no_gauges: bool,
}

impl MinuteRecord {
    /// The stored form: one flat JSON array, the version first, then the counters and the
    /// gauges (`[1,c0,…,c9,g0,…,g4]`; 33 bytes for an idle queue).
    pub fn encode(&self) -> Vec<u8> {
        let mut all = Vec::with_capacity(16);
        all.push(u64::from(self.v));
        all.extend_from_slice(&self.c);
        all.extend_from_slice(&self.g);
        serde_json::to_vec(&all).unwrap_or_default()
    }

    /// Reads version 1; anything else is `None` (skipped by readers).
    pub fn decode(bytes: &[u8]) -> Option<MinuteRecord> {
        let all: Vec<u64> = serde_json::from_slice(bytes).ok()?;
        if all.len() != 16 || all[0] != 1 {
            return None;
        }
        let mut r = MinuteRecord {
            v: 1,
            ..Default::default()
        };
        r.c.copy_from_slice(&all[1..11]);
        r.g.copy_from_slice(&all[11..16]);
        Some(r)
    }
}

/// One queue-minute as read back: its start (epoch ms) and values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MinutePoint {
    pub minute_ms: u64,
    pub record: MinuteRecord,
}

pub(crate) fn read_counters(c: &QueueCounters) -> [u64; 10] {
    let g = QueueCounters::get;
    [
        g(&c.sent),
        g(&c.sent_bytes),
        g(&c.received),
        g(&c.deleted),
        g(&c.empty_receives),
        g(&c.deduplicated),
        g(&c.moved_to_dlq),
        g(&c.dead_letter_arrivals),
        g(&c.redriven_by_move_tasks),
        g(&c.redriven_by_replays),
    ]
}

fn day_text(day: u64) -> String {
    let (y, m, d) = civil_from_days(day as i64);
    format!("{y:04}{m:02}{d:02}")
}

fn parse_day(text: &str) -> Option<u64> {
    if text.len() != 8 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let y: i64 = text[..4].parse().ok()?;
    let m: u32 = text[4..6].parse().ok()?;
    let d: u32 = text[6..].parse().ok()?;
    let days = days_from_civil(y, m, d);
    (days >= 0 && day_text(days as u64) == text).then_some(days as u64)
}

/// `{uid}/` — every document of a queue.
fn queue_prefix(uid: u64) -> String {
    format!("{uid}/")
}

/// `{uid}/{YYYYMMDD}/` — one queue-day.
fn day_prefix(uid: u64, day: u64) -> String {
    format!("{uid}/{}/", day_text(day))
}

/// The key of the minute starting at epoch minute `minute`.
pub fn minute_key(uid: u64, minute: u64) -> String {
    format!(
        "{uid}/{}/{:04}",
        day_text(minute / MINUTES_PER_DAY),
        minute % MINUTES_PER_DAY
    )
}

/// `{uid}/{YYYYMMDD}/{mmmm}` → (uid, epoch minute).
fn parse_key(key: &str) -> Option<(u64, u64)> {
    let mut parts = key.split('/');
    let uid = parts.next()?.parse().ok()?;
    let day = parse_day(parts.next()?)?;
    let mm = parts.next()?;
    if parts.next().is_some() || mm.len() != 4 {
        return None;
    }
    let mm: u64 = mm.parse().ok()?;
    (mm < MINUTES_PER_DAY).then_some((uid, day * MINUTES_PER_DAY + mm))
}

/// The engine's history bookkeeping (a leaf lock).
#[derive(Debug)]
pub(crate) struct History {
    pub(crate) retention_days: u32,
    /// Counter values as of the last write, per queue uid (absent: zero, a fresh process).
    pub(crate) base: HashMap<u64, [u64; 10]>,
    /// The last epoch minute written (minutes before the engine opened belong to earlier
    /// processes).
    pub(crate) written_through: u64,
    /// Whether `written_through` was written before its end (at shutdown).
    pub(crate) partial: bool,
    /// Counter deltas already stored in the document of minute `carry_minute`, per queue: the
    /// next write of that minute adds to them. Set from the store for the minute the engine
    /// opened in (an earlier process may have written part of it at shutdown), and after a
    /// partial write.
    carry_minute: u64,
    carry: HashMap<u64, [u64; 10]>,
    /// Queue-days with documents, for retention and for queues deleted since.
    days: BTreeSet<(u64, u64)>,
}

impl History {
    /// Reads what the history writer needs from the store, not from the startup snapshot
    /// (which leaves the minute history out): which queue-days exist (one key-range seek per
    /// queue-day, never every document) and, for each queue with a document of the minute the
    /// engine opens in, that document (to add to it).
    pub(crate) fn from_store(store: &dyn crate::store::Store, now_ms: u64) -> History {
        let opened = now_ms / MINUTE_MS;
        let days: BTreeSet<(u64, u64)> = match store.document_prefixes(DOC_METRICS_MINUTE, 2) {
            Ok(prefixes) => prefixes
                .iter()
                .filter_map(|p| {
                    let mut parts = p.split('/');
                    let uid = parts.next()?.parse().ok()?;
                    let day = parse_day(parts.next()?)?;
                    Some((uid, day))
                })
                .collect(),
            Err(e) => {
                tracing::error!(error = %e, "reading the minute history's days failed");
                BTreeSet::new()
            }
        };
        let mut carry = HashMap::new();
        for (uid, day) in &days {
            if *day != opened / MINUTES_PER_DAY {
                continue;
            }
            let key = minute_key(*uid, opened);
            let next = format!("{key}\u{0}");
            if let Ok(docs) = store.documents(DOC_METRICS_MINUTE, &key, &next)
                && let Some(d) = docs.first()
                && let Some(r) = MinuteRecord::decode(&d.value)
            {
                carry.insert(*uid, r.c);
            }
        }
        History {
            retention_days: DEFAULT_RETENTION_DAYS,
            base: HashMap::new(),
            written_through: opened.saturating_sub(1),
            partial: false,
            carry_minute: opened,
            carry,
            days,
        }
    }
}

/// What one flush wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlushReport {
    /// The minute written (epoch ms of its start), if any.
    pub minute_ms: Option<u64>,
    pub documents: usize,
    /// Queue-days dropped (retention, or their queue was deleted).
    pub days_dropped: usize,
}

/// Range and period of a history query; times in epoch ms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryQuery {
    /// Default: three hours before `until`.
    pub since_ms: Option<u64>,
    /// Default: now.
    pub until_ms: Option<u64>,
    /// A multiple of 60.
    pub period_secs: u64,
}

impl HistoryQuery {
    /// `(since, until)` in epoch ms, the defaults filled in; the period checked.
    pub(crate) fn range(&self, now_ms: u64) -> SqsResult<(u64, u64)> {
        if self.period_secs < 60 || !self.period_secs.is_multiple_of(60) {
            return Err(SqsError::invalid_value(
                "period",
                self.period_secs,
                "Must be a multiple of 60.",
            ));
        }
        // Keys spell years with 4 digits: times past 9999 sort wrong, and no history is there.
        const LAST_MS: u64 = 253_402_300_799_999; // 9999-12-31T23:59:59.999Z
        let until = self.until_ms.unwrap_or(now_ms).min(LAST_MS);
        let since = self
            .since_ms
            .unwrap_or_else(|| until.saturating_sub(3 * 3_600_000))
            .min(LAST_MS);
        if until <= since {
            return Err(SqsError::invalid_parameter(format!(
                "The parameter since ({since}) must be less than the parameter until ({until})."
            )));
        }
        Ok((since, until))
    }
}

/// The statistics of one metric over one period, as CloudWatch computes them over the minute
/// values (a counter's value is its minute's count; a gauge's is its sample).
#[derive(Debug, Clone, PartialEq)]
pub struct Datapoint {
    /// Start of the period, epoch ms.
    pub timestamp_ms: u64,
    pub sum: f64,
    /// `None` when there is nothing to average (SentMessageSize with no message sent).
    pub average: Option<f64>,
    /// `None` for SentMessageSize (sizes of single messages are not kept).
    pub minimum: Option<f64>,
    pub maximum: Option<f64>,
    pub sample_count: f64,
}

/// One metric's datapoints, oldest first.
#[derive(Debug, Clone)]
pub struct Series {
    pub def: MetricDef,
    pub points: Vec<Datapoint>,
}

/// A queue's history over a range.
#[derive(Debug, Clone)]
pub struct MetricHistory {
    pub queue: String,
    pub arn: String,
    pub since_ms: u64,
    pub until_ms: u64,
    pub period_secs: u64,
    /// Every metric of [`COUNTERS`] then [`GAUGES`] (empty `points` when nothing is stored).
    pub series: Vec<Series>,
}

/// Parses a time given to the history API: RFC 3339 / ISO 8601, epoch seconds (or ms), or an
/// age before `now_ms` such as `2h`.
pub fn parse_time(text: &str, now_ms: u64) -> Result<u64, String> {
    let t = redrive_select::schedule::parse_instant(text, now_ms as i64)?;
    u64::try_from(t).map_err(|_| format!("time `{text}` is before 1970"))
}

/// Aggregates minute points (sorted by time) into periods of `period_secs` starting at
/// `since_ms` (rounded down to the minute).
pub fn aggregate(points: &[MinutePoint], since_ms: u64, period_secs: u64) -> Vec<Series> {
    let start = since_ms / MINUTE_MS * MINUTE_MS;
    let period_ms = period_secs.max(60).saturating_mul(1000);
    // Minute points grouped by period.
    let mut groups: Vec<(u64, Vec<&MinuteRecord>)> = Vec::new();
    for p in points {
        let bucket = start + (p.minute_ms.saturating_sub(start)) / period_ms * period_ms;
        match groups.last_mut() {
            Some((b, v)) if *b == bucket => v.push(&p.record),
            _ => groups.push((bucket, vec![&p.record])),
        }
    }
    let stats = |ts: u64, values: &[u64]| {
        let n = values.len() as f64;
        let sum: u64 = values.iter().sum();
        Datapoint {
            timestamp_ms: ts,
            sum: sum as f64,
            average: Some(sum as f64 / n),
            minimum: values.iter().min().map(|v| *v as f64),
            maximum: values.iter().max().map(|v| *v as f64),
            sample_count: n,
        }
    };
    let mut series = Vec::new();
    for (i, def) in COUNTERS.iter().enumerate() {
        let points = groups
            .iter()
            .map(|(ts, recs)| {
                if i == SENT_BYTES {
                    // CloudWatch's SentMessageSize is per message: SampleCount is messages.
                    let bytes: u64 = recs.iter().map(|r| r.c[SENT_BYTES]).sum();
                    let sent: u64 = recs.iter().map(|r| r.c[0]).sum();
                    Datapoint {
                        timestamp_ms: *ts,
                        sum: bytes as f64,
                        average: (sent > 0).then(|| bytes as f64 / sent as f64),
                        minimum: None,
                        maximum: None,
                        sample_count: sent as f64,
                    }
                } else {
                    let values: Vec<u64> = recs.iter().map(|r| r.c[i]).collect();
                    stats(*ts, &values)
                }
            })
            .collect();
        series.push(Series { def: *def, points });
    }
    for (i, def) in GAUGES.iter().enumerate() {
        // A period whose minutes were none of them sampled has no gauge datapoint.
        let points = groups
            .iter()
            .filter_map(|(ts, recs)| {
                let values: Vec<u64> = recs
                    .iter()
                    .filter(|r| !r.no_gauges)
                    .map(|r| r.g[i])
                    .collect();
                (!values.is_empty()).then(|| stats(*ts, &values))
            })
            .collect();
        series.push(Series { def: *def, points });
    }
    series
}

impl Engine {
    /// Days of minute history kept (whole UTC days are dropped once entirely older).
    pub fn set_history_retention_days(&self, days: u32) {
        self.history.lock().retention_days = days.max(1);
    }

    pub fn history_retention_days(&self) -> u32 {
        self.history.lock().retention_days
    }

    /// Epoch ms by the engine's clock.
    pub fn clock_now_ms(&self) -> u64 {
        self.now_ms()
    }

    /// Writes the minute that ended last, if it is not written yet (one document per live
    /// queue), and drops history past the retention. The background task
    /// ([`Engine::spawn_history`]) calls it after every minute boundary; tests call it after
    /// moving a manual clock.
    pub async fn flush_history(&self) -> FlushReport {
        let now = self.now_ms();
        let ended = (now / MINUTE_MS).saturating_sub(1);
        self.write_history(ended, now, false).await
    }

    /// Writes the current, unfinished minute (at shutdown). A later process adds its own
    /// counts of the same minute to this document.
    pub async fn flush_history_partial(&self) -> FlushReport {
        let now = self.now_ms();
        self.write_history(now / MINUTE_MS, now, true).await
    }

    async fn write_history(&self, minute: u64, now: u64, partial: bool) -> FlushReport {
        if let Some(backend) = self.shared.clone() {
            return self.write_shared_history(&*backend, minute, partial).await;
        }
        let mut report = FlushReport::default();
        if self.ensure_synced().is_err() {
            return report;
        }
        let ticket = {
            // Held while sampling so that two flushes never interleave; a leaf lock otherwise
            // (queue locks are taken under it, never the reverse).
            let _one = self.history_flush.lock();
            {
                let h = self.history.lock();
                if minute < h.written_through || (minute == h.written_through && !h.partial) {
                    return report;
                }
            }
            let mut queues: Vec<Arc<Queue>> =
                self.registry.read().queues.values().cloned().collect();
            queues.sort_by_key(|q| q.uid);
            // Sample every queue: counters first, then the gauges under the queue's lock.
            let mut samples = Vec::with_capacity(queues.len());
            for q in &queues {
                let counts = read_counters(&q.counters);
                let Some(g) = self.sample_gauges(q, now) else {
                    continue;
                };
                samples.push((
                    q.uid,
                    counts,
                    [
                        g.visible,
                        g.not_visible,
                        g.delayed,
                        g.oldest_age_secs,
                        g.groups_with_inflight,
                    ],
                ));
            }
            let mut h = self.history.lock();
            let mut records = Vec::with_capacity(samples.len());
            let live: std::collections::HashSet<u64> = samples.iter().map(|s| s.0).collect();
            for (uid, counts, gauges) in samples {
                let base = h.base.get(&uid).copied().unwrap_or_default();
                let mut c = [0u64; 10];
                for i in 0..10 {
                    // A counter below its base belongs to a queue object rebuilt since: count
                    // from zero.
                    c[i] = if counts[i] >= base[i] {
                        counts[i] - base[i]
                    } else {
                        counts[i]
                    };
                }
                h.base.insert(uid, counts);
                if h.carry_minute == minute
                    && let Some(stored) = h.carry.get(&uid)
                {
                    // Counted in this minute before (by an earlier process, or before a
                    // partial write): the document gets the total.
                    for i in 0..10 {
                        c[i] += stored[i];
                    }
                }
                h.days.insert((uid, minute / MINUTES_PER_DAY));
                records.push((
                    uid,
                    MinuteRecord {
                        v: 1,
                        c,
                        g: gauges,
                        no_gauges: false,
                    },
                ));
            }
            h.base.retain(|uid, _| live.contains(uid));
            h.written_through = minute;
            h.partial = partial;
            h.carry_minute = minute;
            h.carry = if partial {
                records.iter().map(|(uid, r)| (*uid, r.c)).collect()
            } else {
                HashMap::new()
            };
            // Retention: whole days entirely older than the retention, and queues gone.
            let keep_from = now.saturating_sub(u64::from(h.retention_days) * DAY_MS) / DAY_MS;
            let dropped: Vec<(u64, u64)> = h
                .days
                .iter()
                .filter(|(uid, day)| *day < keep_from || !live.contains(uid))
                .copied()
                .collect();
            let mut muts = Vec::new();
            let mut gone = BTreeSet::new();
            for (uid, day) in &dropped {
                h.days.remove(&(*uid, *day));
                if live.contains(uid) {
                    muts.push(Mutation::DeleteDocuments {
                        kind: DOC_METRICS_MINUTE.into(),
                        prefix: day_prefix(*uid, *day),
                    });
                } else {
                    gone.insert(*uid);
                }
            }
            for uid in gone {
                muts.push(Mutation::DeleteDocuments {
                    kind: DOC_METRICS_MINUTE.into(),
                    prefix: queue_prefix(uid),
                });
            }
            report.days_dropped = dropped.len();
            drop(h);
            if self.admit_growth().is_err() {
                tracing::debug!("minute history not written while store space is short");
            } else {
                report.minute_ms = Some(minute * MINUTE_MS);
                report.documents = records.len();
                for (uid, rec) in records {
                    muts.push(Mutation::PutDocument(DocumentRecord {
                        kind: DOC_METRICS_MINUTE.into(),
                        key: minute_key(uid, minute),
                        value: rec.encode(),
                    }));
                }
            }
            (!muts.is_empty()).then(|| self.store.submit(muts))
        };
        if let Some(ticket) = ticket
            && let Err(e) = self.durable(ticket).await
        {
            tracing::warn!(error = %e.message, "minute history not written");
            report.documents = 0;
        }
        report
    }

    /// The background writer: wakes after every minute boundary of the engine's clock and
    /// calls [`Engine::flush_history`]. Ends when the engine is dropped.
    pub fn spawn_history(self: &Arc<Self>) {
        let engine = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                let wait = {
                    let Some(e) = engine.upgrade() else { return };
                    let now = e.now_ms();
                    MINUTE_MS - now % MINUTE_MS
                };
                // A little past the boundary, so the clock has surely crossed it.
                tokio::time::sleep(Duration::from_millis(wait + 50)).await;
                let Some(e) = engine.upgrade() else { return };
                e.flush_history().await;
                if e.shared.is_some() {
                    // Judge once every server has added its counts of the minute (each
                    // flushes within about a second of the boundary).
                    drop(e);
                    tokio::time::sleep(SHARED_JUDGE_DELAY).await;
                    let Some(again) = engine.upgrade() else {
                        return;
                    };
                    again.evaluate_alerts().await;
                    again.evaluate_cw_alarms().await;
                    continue;
                }
                e.evaluate_alerts().await;
                e.evaluate_cw_alarms().await;
            }
        });
    }

    /// A queue's minute history over `query`'s range, aggregated by its period. Reads the
    /// store (a key-range read of the queue's documents), never the request path's state.
    pub fn metric_history(
        &self,
        ctx: &RequestContext,
        queue_name: &str,
        query: &HistoryQuery,
    ) -> SqsResult<MetricHistory> {
        let (since, until) = query.range(self.now_ms())?;
        self.ensure_synced()?;
        let queue = self
            .lookup(&ctx.region, queue_name)
            .ok_or_else(SqsError::queue_does_not_exist)?;
        let first = since.div_ceil(MINUTE_MS);
        let end = until.div_ceil(MINUTE_MS);
        let docs = self
            .store
            .documents(
                DOC_METRICS_MINUTE,
                &minute_key(queue.uid, first),
                &minute_key(queue.uid, end),
            )
            .map_err(|e| SqsError::internal(format!("cannot read the minute history: {e}")))?;
        let points: Vec<MinutePoint> = docs
            .iter()
            .filter_map(|d| {
                let (_, minute) = parse_key(&d.key)?;
                let record = MinuteRecord::decode(&d.value)?;
                Some(MinutePoint {
                    minute_ms: minute * MINUTE_MS,
                    record,
                })
            })
            .collect();
        Ok(MetricHistory {
            queue: queue.name.clone(),
            arn: queue.arn.clone(),
            since_ms: since,
            until_ms: until,
            period_secs: query.period_secs,
            series: aggregate(&points, since, query.period_secs),
        })
    }

    /// The raw minute documents of a queue in `[since_ms, until_ms)` (tests, diagnostics).
    pub fn minute_points(&self, queue: &Queue, since_ms: u64, until_ms: u64) -> Vec<MinutePoint> {
        let docs = self
            .store
            .documents(
                DOC_METRICS_MINUTE,
                &minute_key(queue.uid, since_ms.div_ceil(MINUTE_MS)),
                &minute_key(queue.uid, until_ms.div_ceil(MINUTE_MS)),
            )
            .unwrap_or_default();
        docs.iter()
            .filter_map(|d| {
                Some(MinutePoint {
                    minute_ms: parse_key(&d.key)?.1 * MINUTE_MS,
                    record: MinuteRecord::decode(&d.value)?,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sort_by_time_and_round_trip() {
        let m = 1_700_000_000_000 / MINUTE_MS;
        let k = minute_key(7, m);
        assert_eq!(k, "7/20231114/1333"); // 22:13 UTC
        assert_eq!(parse_key(&k), Some((7, m)));
        assert!(minute_key(7, m) < minute_key(7, m + 1));
        assert!(minute_key(7, m + 1439) < minute_key(7, m + 1441));
        assert_eq!(parse_key("7/20231131/0000"), None);
        assert_eq!(parse_key("7/20231114/1440"), None);
        assert_eq!(days_from_civil(2023, 11, 14), (m / MINUTES_PER_DAY) as i64);
    }

    #[test]
    fn records_round_trip_compactly() {
        let r = MinuteRecord {
            v: 1,
            c: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
            g: [11, 12, 13, 14, 15],
            no_gauges: false,
        };
        assert_eq!(
            String::from_utf8(r.encode()).unwrap(),
            "[1,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15]"
        );
        assert_eq!(MinuteRecord::decode(&r.encode()), Some(r));
        assert_eq!(MinuteRecord::default().encode().len() + 1, 34);
        assert_eq!(
            MinuteRecord::decode(b"[2,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0]"),
            None
        );
        assert_eq!(MinuteRecord::decode(b"{}"), None);
    }

    #[test]
    fn periods_aggregate_minutes() {
        let rec = |sent: u64, bytes: u64, vis: u64| MinuteRecord {
            v: 1,
            c: [sent, bytes, 0, 0, 0, 0, 0, 0, 0, 0],
            g: [vis, 0, 0, 0, 0],
            no_gauges: false,
        };
        let pts = vec![
            MinutePoint {
                minute_ms: 0,
                record: rec(3, 30, 3),
            },
            MinutePoint {
                minute_ms: 60_000,
                record: rec(5, 70, 1),
            },
            MinutePoint {
                minute_ms: 120_000,
                record: rec(0, 0, 0),
            },
        ];
        let s = aggregate(&pts, 0, 120);
        let sent = &s[0].points;
        assert_eq!(sent.len(), 2);
        assert_eq!(sent[0].sum, 8.0);
        assert_eq!(sent[0].sample_count, 2.0);
        assert_eq!(sent[0].maximum, Some(5.0));
        assert_eq!(sent[1].timestamp_ms, 120_000);
        let size = &s[SENT_BYTES].points;
        assert_eq!(size[0].average, Some(12.5));
        assert_eq!(size[1].average, None);
        let vis = &s[COUNTERS.len()].points;
        assert_eq!(vis[0].minimum, Some(1.0));
        assert_eq!(vis[0].average, Some(2.0));
    }

    /// Minutes whose gauges nobody sampled (a shared store between two `history` lease
    /// holders) give no gauge datapoint; their counters count.
    #[test]
    fn unsampled_minutes_have_no_gauge_datapoints() {
        let rec = |sent: u64, vis: u64, no_gauges: bool| MinuteRecord {
            v: 1,
            c: [sent, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            g: [vis, 0, 0, 0, 0],
            no_gauges,
        };
        let pts: Vec<MinutePoint> = [rec(1, 4, false), rec(2, 0, true), rec(3, 0, true)]
            .into_iter()
            .enumerate()
            .map(|(i, record)| MinutePoint {
                minute_ms: i as u64 * 60_000,
                record,
            })
            .collect();
        let s = aggregate(&pts, 0, 60);
        assert_eq!(s[0].points.len(), 3);
        assert_eq!(s[0].points[2].sum, 3.0);
        let vis = &s[COUNTERS.len()].points;
        assert_eq!(vis.len(), 1);
        assert_eq!((vis[0].timestamp_ms, vis[0].maximum), (0, Some(4.0)));
        let s = aggregate(&pts, 0, 180);
        let vis = &s[COUNTERS.len()].points;
        assert_eq!((vis[0].sample_count, vis[0].average), (1.0, Some(4.0)));
    }
}
