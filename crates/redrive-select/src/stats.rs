//! The aggregations of a DLQ's messages that `redrive stats`, `redrive report`, the server's
//! console and `redrive console` share: counts per jq key (several keys and their
//! combinations), time buckets of the sent or dead-lettered time, receive counts, payload key
//! shapes and the burst signature (the dominant sent minute); and the dominant dead-letter
//! minute of a minute history with the window shown around it. Pure: fed one [`Sample`] at a
//! time, times are epoch milliseconds (formatting is the caller's).

use std::collections::{BTreeMap, HashMap};

use jaq_json::Val;
use serde::Serialize;

use crate::jq::{self, GroupBy};

/// Which timestamp a time bucket uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TimeField {
    Sent,
    DeadLettered,
}

impl TimeField {
    pub fn as_str(self) -> &'static str {
        match self {
            TimeField::Sent => "sent",
            TimeField::DeadLettered => "dead-lettered",
        }
    }
}

/// `FIELD:UNIT`, e.g. `sent:minute` or `dead-lettered:hour` (`--bucket`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bucket {
    pub field: TimeField,
    pub unit_ms: i64,
    pub unit: &'static str,
}

impl Bucket {
    pub fn parse(s: &str) -> Result<Bucket, String> {
        let (field, unit) = s.split_once(':').unwrap_or((s, "minute"));
        let field = match field {
            "sent" => TimeField::Sent,
            "dead-lettered" | "deadlettered" | "dead_lettered" => TimeField::DeadLettered,
            _ => {
                return Err(format!(
                    "invalid --bucket `{s}`: field must be `sent` or `dead-lettered`"
                ));
            }
        };
        let (unit_ms, unit) = match unit {
            "minute" => (60_000, "minute"),
            "hour" => (3_600_000, "hour"),
            "day" => (86_400_000, "day"),
            _ => {
                return Err(format!(
                    "invalid --bucket `{s}`: unit must be minute, hour or day"
                ));
            }
        };
        Ok(Bucket {
            field,
            unit_ms,
            unit,
        })
    }

    /// The spelling [`Bucket::parse`] reads back.
    pub fn text(&self) -> String {
        format!("{}:{}", self.field.as_str(), self.unit)
    }

    fn time_of(&self, s: &Sample) -> Option<i64> {
        match self.field {
            TimeField::Sent => s.sent_ms,
            TimeField::DeadLettered => s.dead_lettered_ms,
        }
    }
}

/// What the aggregation reads of one message.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sample<'a> {
    pub body: &'a str,
    pub sent_ms: Option<i64>,
    pub dead_lettered_ms: Option<i64>,
    pub receive_count: Option<u64>,
}

/// The dominant minute of the sent times (epoch ms).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BurstMinute {
    pub minute_ms: i64,
    pub count: usize,
    /// `count / messages with a sent time`.
    pub share: f64,
    pub first_ms: i64,
    pub last_ms: i64,
}

/// Counts sorted by count (desc) then key, at most `top`.
pub fn top<K: Clone + Ord>(map: &HashMap<K, usize>, top: usize) -> Vec<(K, usize)> {
    let mut v: Vec<(K, usize)> = map.iter().map(|(k, c)| (k.clone(), *c)).collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    v.truncate(top);
    v
}

/// Everything aggregated over the messages added so far.
pub struct Aggregate {
    group_bys: Vec<GroupBy>,
    bucket: Option<Bucket>,
    pub total: usize,
    pub non_json: usize,
    groups: Vec<HashMap<String, usize>>,
    pairs: HashMap<Vec<String>, usize>,
    buckets: BTreeMap<i64, usize>,
    receive_counts: BTreeMap<u64, usize>,
    shapes: HashMap<String, usize>,
    minutes: HashMap<i64, usize>,
    first_sent: Option<i64>,
    last_sent: Option<i64>,
    with_sent: usize,
    needs_meta: bool,
}

impl Aggregate {
    pub fn new(group_bys: Vec<GroupBy>, bucket: Option<Bucket>) -> Aggregate {
        let n = group_bys.len();
        let needs_meta = group_bys.iter().any(|g| g.expr.contains("$meta"));
        Aggregate {
            needs_meta,
            group_bys,
            bucket,
            total: 0,
            non_json: 0,
            groups: vec![HashMap::new(); n],
            pairs: HashMap::new(),
            buckets: BTreeMap::new(),
            receive_counts: BTreeMap::new(),
            shapes: HashMap::new(),
            minutes: HashMap::new(),
            first_sent: None,
            last_sent: None,
            with_sent: 0,
        }
    }

    pub fn group_bys(&self) -> &[GroupBy] {
        &self.group_bys
    }

    pub fn bucket(&self) -> Option<Bucket> {
        self.bucket
    }

    /// Messages that had a sent time.
    pub fn with_sent(&self) -> usize {
        self.with_sent
    }

    /// Adds one message. `meta` builds its `$meta` (see [`crate::selection::meta`]); it is
    /// called only when a key reads `$meta` (it costs a JSON round trip per message).
    pub fn add(&mut self, s: &Sample, meta: impl FnOnce() -> serde_json::Value) {
        self.total += 1;
        if let Some(rc) = s.receive_count {
            *self.receive_counts.entry(rc).or_default() += 1;
        }
        if let Some(t) = s.sent_ms {
            self.with_sent += 1;
            *self.minutes.entry(t.div_euclid(60_000)).or_default() += 1;
            self.first_sent = Some(self.first_sent.map_or(t, |f| f.min(t)));
            self.last_sent = Some(self.last_sent.map_or(t, |l| l.max(t)));
        }
        if let Some(b) = &self.bucket
            && let Some(t) = b.time_of(s)
        {
            *self
                .buckets
                .entry(t.div_euclid(b.unit_ms) * b.unit_ms)
                .or_default() += 1;
        }
        let Some(body) = jq::parse(s.body) else {
            self.non_json += 1;
            return;
        };
        let shape = match &body {
            Val::Obj(o) => {
                let mut keys: Vec<String> = o.keys().map(jq::val_text).collect();
                keys.sort();
                format!("{{{}}}", keys.join(","))
            }
            Val::Arr(_) => "[array]".to_string(),
            _ => "(scalar)".to_string(),
        };
        *self.shapes.entry(shape).or_default() += 1;
        if self.group_bys.is_empty() {
            return;
        }
        let meta = if self.needs_meta {
            jq::from_json(&meta())
        } else {
            Val::Null
        };
        let keys: Vec<String> = self.group_bys.iter().map(|g| g.key(&body, &meta)).collect();
        for (i, k) in keys.iter().enumerate() {
            *self.groups[i].entry(k.clone()).or_default() += 1;
        }
        if keys.len() >= 2 {
            *self.pairs.entry(keys).or_default() += 1;
        }
    }

    /// The counts of group key `i`.
    pub fn group(&self, i: usize) -> &HashMap<String, usize> {
        &self.groups[i]
    }

    /// The counts of each combination of the keys' values (empty with fewer than two keys).
    pub fn pairs(&self) -> &HashMap<Vec<String>, usize> {
        &self.pairs
    }

    /// Bucket start (epoch ms) → count, oldest first.
    pub fn buckets(&self) -> &BTreeMap<i64, usize> {
        &self.buckets
    }

    /// Receive count → messages, lowest first.
    pub fn receive_counts(&self) -> &BTreeMap<u64, usize> {
        &self.receive_counts
    }

    /// Payload shape (`{key,key}`, `[array]`, `(scalar)`) → count.
    pub fn shapes(&self) -> &HashMap<String, usize> {
        &self.shapes
    }

    /// The dominant sent minute: most messages, the earliest on a tie.
    pub fn burst(&self) -> Option<BurstMinute> {
        let (&minute, &count) = self
            .minutes
            .iter()
            .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))?;
        Some(BurstMinute {
            minute_ms: minute * 60_000,
            count,
            share: count as f64 / self.with_sent.max(1) as f64,
            first_ms: self.first_sent?,
            last_ms: self.last_sent?,
        })
    }
}

/// Minutes shown before and after a burst minute.
pub const WINDOW_BEFORE_MIN: u64 = 5;
pub const WINDOW_AFTER_MIN: u64 = 10;

/// The burst window around a dead-letter minute: `[start, end)` in epoch ms.
pub fn burst_window(minute_ms: u64) -> (u64, u64) {
    (
        minute_ms.saturating_sub(WINDOW_BEFORE_MIN * 60_000),
        minute_ms + (WINDOW_AFTER_MIN + 1) * 60_000,
    )
}

/// The minute with the most dead-letter arrivals (the earliest on a tie) of
/// `(minute start ms, arrivals)` rows, if any message arrived.
pub fn dominant_dead_letter_minute(rows: impl IntoIterator<Item = (u64, u64)>) -> Option<u64> {
    rows.into_iter()
        .filter(|(_, n)| *n > 0)
        .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0)))
        .map(|(t, _)| t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dominant_minute_is_the_busiest_then_the_earliest() {
        assert_eq!(dominant_dead_letter_minute([(0, 0), (60_000, 0)]), None);
        assert_eq!(
            dominant_dead_letter_minute([(0, 1), (60_000, 5), (120_000, 5), (180_000, 2)]),
            Some(60_000)
        );
        assert_eq!(burst_window(600_000), (300_000, 1_260_000));
        assert_eq!(burst_window(60_000), (0, 720_000));
    }

    #[test]
    fn meta_is_built_only_for_keys_that_read_it() {
        let mut a = Aggregate::new(vec![GroupBy::compile(".m").unwrap()], None);
        a.add(
            &Sample {
                body: r#"{"m":"x"}"#,
                ..Sample::default()
            },
            || panic!("$meta built for a key that does not read it"),
        );
        let mut b = Aggregate::new(vec![GroupBy::compile("$meta.receiveCount").unwrap()], None);
        b.add(
            &Sample {
                body: "{}",
                ..Sample::default()
            },
            || serde_json::json!({"receiveCount": 3}),
        );
        assert_eq!(a.group(0).get("x"), Some(&1));
        assert_eq!(b.group(0).get("3"), Some(&1));
    }
}
