//! Aggregation of a scanned queue: groups, pairs, time buckets, receive counts, payload
//! shapes and the burst signature. Pure: fed one [`Message`] at a time.

use std::collections::HashMap;

use serde::Serialize;
use serde_json::{Value, json};

use crate::enrich::Mapping;
use crate::jq::GroupBy;
use crate::source::{Message, ScanOutcome};
use crate::util::{Record, format_ts, record_json, records_to_csv_with, render_table};
pub use redrive_select::stats::{Aggregate, Bucket, Sample, TimeField};

/// The dominant minute of the sent times.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Burst {
    pub minute: String,
    pub count: usize,
    /// `count / messages with a sent time`.
    pub share: f64,
    pub first: String,
    pub last: String,
}

/// What the shared aggregation reads of a scanned message.
pub fn sample(m: &Message) -> Sample<'_> {
    Sample {
        body: &m.body,
        sent_ms: m.sent_timestamp,
        dead_lettered_ms: m.dead_lettered_at,
        receive_count: m.receive_count,
    }
}

/// A mapping column's field name in a row record: `enrich.NAME` when NAME is one of the
/// record's own fields (`table`, `key`, `key2`, …, `count`, `share`, `first`, `last`).
fn enrich_field(c: &str) -> String {
    let own = matches!(c, "table" | "key" | "count" | "share" | "first" | "last")
        || c.strip_prefix("key")
            .is_some_and(|n| !n.is_empty() && n.chars().all(|d| d.is_ascii_digit()));
    if own {
        format!("enrich.{c}")
    } else {
        c.to_string()
    }
}

/// Everything `stats` computes: the shared [`Aggregate`] and the `--enrich` mapping.
pub struct Stats {
    agg: Aggregate,
    pub total: usize,
    pub non_json: usize,
    mapping: Option<Mapping>,
}

impl Stats {
    pub fn new(group_bys: Vec<GroupBy>, bucket: Option<Bucket>) -> Stats {
        Stats {
            agg: Aggregate::new(group_bys, bucket),
            total: 0,
            non_json: 0,
            mapping: None,
        }
    }

    /// The shared aggregation (the console renders it).
    pub fn aggregate(&self) -> &Aggregate {
        &self.agg
    }

    pub fn mapping(&self) -> Option<&Mapping> {
        self.mapping.as_ref()
    }

    /// Joins the first `--group-by` key with `mapping` in every output.
    pub fn with_mapping(mut self, mapping: Option<Mapping>) -> Stats {
        self.mapping = mapping;
        self
    }

    /// Messages that had a sent time.
    pub fn with_sent(&self) -> usize {
        self.agg.with_sent()
    }

    pub fn group_exprs(&self) -> Vec<String> {
        self.agg
            .group_bys()
            .iter()
            .map(|g| g.expr.clone())
            .collect()
    }

    pub fn add(&mut self, m: &Message) {
        self.agg.add(&sample(m), || m.meta());
        self.total = self.agg.total;
        self.non_json = self.agg.non_json;
    }

    /// Start of the dominant sent minute, epoch ms.
    pub fn burst_minute_ms(&self) -> Option<u64> {
        self.agg.burst().map(|b| b.minute_ms as u64)
    }

    pub fn burst(&self) -> Option<Burst> {
        let b = self.agg.burst()?;
        Some(Burst {
            minute: format_ts(b.minute_ms),
            count: b.count,
            share: b.share,
            first: format_ts(b.first_ms),
            last: format_ts(b.last_ms),
        })
    }

    /// Counts sorted by count (desc) then key, at most `top`.
    fn top<K: Clone + Ord>(map: &HashMap<K, usize>, top: usize) -> Vec<(K, usize)> {
        redrive_select::stats::top(map, top)
    }

    pub fn to_json(&self, queue: &str, scan: &ScanOutcome, top: usize) -> Value {
        let enrich = |i: usize, k: &str, mut v: Value| {
            if let (0, Some(m)) = (i, &self.mapping) {
                v["enrich"] = m.get_json(k);
            }
            v
        };
        let groups: Vec<Value> = self
            .agg
            .group_bys()
            .iter()
            .zip((0..self.agg.group_bys().len()).map(|i| self.agg.group(i)))
            .enumerate()
            .map(|(i, (g, counts))| {
                json!({
                    "expr": g.expr,
                    "distinct": counts.len(),
                    "counts": Self::top(counts, top).into_iter()
                        .map(|(k, c)| enrich(i, &k, json!({"key": k, "count": c})))
                        .collect::<Vec<_>>(),
                })
            })
            .collect();
        let pairs = (self.agg.group_bys().len() >= 2).then(|| {
            json!({
                "exprs": self.agg.group_bys().iter().map(|g| g.expr.clone()).collect::<Vec<_>>(),
                "distinct": self.agg.pairs().len(),
                "counts": Self::top(self.agg.pairs(), top).into_iter()
                    .map(|(k, c)| enrich(0, &k[0].clone(), json!({"keys": k, "count": c})))
                    .collect::<Vec<_>>(),
            })
        });
        let buckets = self.agg.bucket().map(|b| {
            json!({
                "field": b.field,
                "unit": b.unit,
                "counts": self.agg.buckets().iter()
                    .map(|(t, c)| json!({"start": format_ts(*t), "count": c})).collect::<Vec<_>>(),
            })
        });
        json!({
            "queue": queue,
            "scanned": scan.read,
            "complete": scan.complete,
            "nonDestructive": scan.non_destructive,
            "total": self.total,
            "nonJson": self.non_json,
            "groups": groups,
            "pairs": pairs,
            "buckets": buckets,
            "receiveCounts": self.agg.receive_counts().iter()
                .map(|(r, c)| json!({"receiveCount": r, "count": c})).collect::<Vec<_>>(),
            "shapes": Self::top(self.agg.shapes(), top).into_iter()
                .map(|(k, c)| json!({"keys": k, "count": c})).collect::<Vec<_>>(),
            "burst": self.burst(),
            "enrichColumns": self.mapping.as_ref().map(|m| m.columns.clone()),
        })
    }

    /// Every table row as a record with a leading `table` field naming its table
    /// (`burst`, `group:EXPR`, `pair:EXPR × EXPR`, `bucket:FIELD:UNIT`, `receiveCount`,
    /// `shape`), then `key` (and `key2`, … for pairs), the mapping's columns for the first
    /// group key, `count` and `share` (of the messages scanned, a fraction).
    pub fn to_records(&self, top: usize) -> Vec<Record> {
        let share = |c: usize| {
            let f = c as f64 / self.total.max(1) as f64;
            json!((f * 10_000.0).round() / 10_000.0)
        };
        let mut out: Vec<Record> = vec![];
        let mut push = |table: &str, keys: &[String], enrich: bool, c: usize| {
            let mut r: Record = vec![
                ("table".into(), json!(table)),
                ("key".into(), json!(keys[0])),
            ];
            if enrich && let Some(m) = &self.mapping {
                r.extend(
                    m.columns
                        .iter()
                        .map(|c| enrich_field(c))
                        .zip(m.get(&keys[0]).into_iter().map(Value::from)),
                );
            }
            for (i, k) in keys.iter().enumerate().skip(1) {
                r.push((format!("key{}", i + 1), json!(k)));
            }
            r.extend([("count".into(), json!(c)), ("share".into(), share(c))]);
            out.push(r);
        };
        for (i, (g, counts)) in self
            .agg
            .group_bys()
            .iter()
            .zip((0..self.agg.group_bys().len()).map(|i| self.agg.group(i)))
            .enumerate()
        {
            let table = format!("group:{}", g.expr);
            for (k, c) in Self::top(counts, top) {
                push(&table, &[k], i == 0, c);
            }
        }
        if self.agg.group_bys().len() >= 2 {
            let exprs: Vec<&str> = self
                .agg
                .group_bys()
                .iter()
                .map(|g| g.expr.as_str())
                .collect();
            let table = format!("pair:{}", exprs.join(" × "));
            for (k, c) in Self::top(self.agg.pairs(), top) {
                push(&table, &k, true, c);
            }
        }
        if let Some(b) = &self.agg.bucket() {
            let field = match b.field {
                TimeField::Sent => "sent",
                TimeField::DeadLettered => "dead-lettered",
            };
            let table = format!("bucket:{field}:{}", b.unit);
            for (t, c) in self.agg.buckets() {
                push(&table, &[format_ts(*t)], false, *c);
            }
        }
        for (r, c) in self.agg.receive_counts() {
            push("receiveCount", &[r.to_string()], false, *c);
        }
        for (k, c) in Self::top(self.agg.shapes(), top) {
            push("shape", &[k], false, c);
        }
        if let Some(b) = self.burst() {
            // The share of the burst is of the messages with a sent time, as in the table.
            out.insert(
                0,
                vec![
                    ("table".into(), json!("burst")),
                    ("key".into(), json!(b.minute)),
                    ("count".into(), json!(b.count)),
                    (
                        "share".into(),
                        json!((b.share * 10_000.0).round() / 10_000.0),
                    ),
                    ("first".into(), json!(b.first)),
                    ("last".into(), json!(b.last)),
                ],
            );
        }
        out
    }

    /// One JSON object per table row (see [`Stats::to_records`]).
    pub fn to_ndjson(&self, top: usize) -> String {
        self.to_records(top)
            .iter()
            .map(|r| record_json(r) + "\n")
            .collect()
    }

    /// The table rows as CSV with a leading `table` column (see [`Stats::to_records`]).
    pub fn to_csv(&self, top: usize) -> String {
        let keys: Vec<String> = (2..=self.agg.group_bys().len())
            .map(|i| format!("key{i}"))
            .collect();
        let mut first = vec!["table", "key"];
        first.extend(keys.iter().map(String::as_str));
        let enrich: Vec<String> = self
            .mapping
            .iter()
            .flat_map(|m| m.columns.iter().map(|c| enrich_field(c)))
            .collect();
        first.extend(enrich.iter().map(String::as_str));
        first.extend(["count", "share"]);
        records_to_csv_with(&first, &self.to_records(top))
    }

    pub fn to_table(&self, queue: &str, scan: &ScanOutcome, top: usize) -> String {
        let mut out = String::new();
        let pct = |c: usize| format!("{:.1}%", 100.0 * c as f64 / self.total.max(1) as f64);
        out.push_str(&format!(
            "queue {queue}: {} messages scanned{}{}\n",
            scan.read,
            if scan.complete { "" } else { " (INCOMPLETE: limit reached or queue not drained; counts cover only the scanned messages)" },
            if self.non_json > 0 { format!(", {} non-JSON bodies", self.non_json) } else { String::new() },
        ));
        if let Some(b) = self.burst() {
            out.push_str(&format!(
                "burst: {} of {} messages ({:.1}%) sent in the minute {}; first {}, last {}\n",
                b.count,
                self.with_sent(),
                b.share * 100.0,
                b.minute,
                b.first,
                b.last
            ));
        }
        let extra_cols: Vec<&str> = self
            .mapping
            .as_ref()
            .map(|m| m.columns.iter().map(String::as_str).collect())
            .unwrap_or_default();
        let extra = |k: &str| self.mapping.as_ref().map(|m| m.get(k)).unwrap_or_default();
        for (i, (g, counts)) in self
            .agg
            .group_bys()
            .iter()
            .zip((0..self.agg.group_bys().len()).map(|i| self.agg.group(i)))
            .enumerate()
        {
            out.push_str(&format!("\nby {} ({} distinct)\n", g.expr, counts.len()));
            let rows: Vec<Vec<String>> = Self::top(counts, top)
                .into_iter()
                .map(|(k, c)| {
                    let mut row = vec![k.clone()];
                    if i == 0 {
                        row.extend(extra(&k));
                    }
                    row.extend([c.to_string(), pct(c)]);
                    row
                })
                .collect();
            let mut headers = vec![g.expr.as_str()];
            if i == 0 {
                headers.extend(extra_cols.iter().copied());
            }
            headers.extend(["count", "share"]);
            out.push_str(&render_table(&headers, &rows));
        }
        if self.agg.group_bys().len() >= 2 {
            let exprs: Vec<&str> = self
                .agg
                .group_bys()
                .iter()
                .map(|g| g.expr.as_str())
                .collect();
            out.push_str(&format!(
                "\nby {} ({} distinct)\n",
                exprs.join(" × "),
                self.agg.pairs().len()
            ));
            let rows: Vec<Vec<String>> = Self::top(self.agg.pairs(), top)
                .into_iter()
                .map(|(k, c)| {
                    let mut row = vec![k[0].clone()];
                    row.extend(extra(&k[0]));
                    row.extend(k[1..].iter().cloned());
                    row.extend([c.to_string(), pct(c)]);
                    row
                })
                .collect();
            let mut headers = vec![exprs[0]];
            headers.extend(extra_cols.iter().copied());
            headers.extend(exprs[1..].iter().copied());
            headers.extend(["count", "share"]);
            out.push_str(&render_table(&headers, &rows));
        }
        if let Some(b) = &self.agg.bucket() {
            let field = match b.field {
                TimeField::Sent => "sent",
                TimeField::DeadLettered => "dead-lettered",
            };
            out.push_str(&format!("\nby {field} {}\n", b.unit));
            let rows: Vec<Vec<String>> = self
                .agg
                .buckets()
                .iter()
                .map(|(t, c)| vec![format_ts(*t), c.to_string()])
                .collect();
            out.push_str(&render_table(&[b.unit, "count"], &rows));
        }
        if !self.agg.receive_counts().is_empty() {
            out.push_str("\nreceive counts\n");
            let rows: Vec<Vec<String>> = self
                .agg
                .receive_counts()
                .iter()
                .map(|(r, c)| vec![r.to_string(), c.to_string()])
                .collect();
            out.push_str(&render_table(&["receives", "count"], &rows));
        }
        if !self.agg.shapes().is_empty() {
            out.push_str("\npayload key shapes\n");
            let rows: Vec<Vec<String>> = Self::top(self.agg.shapes(), top)
                .into_iter()
                .map(|(k, c)| vec![k, c.to_string()])
                .collect();
            out.push_str(&render_table(&["keys", "count"], &rows));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(body: &str, sent: i64, rc: u64) -> Message {
        Message {
            message_id: format!("{sent}-{body}"),
            body: body.to_string(),
            sent_timestamp: Some(sent),
            receive_count: Some(rc),
            dead_lettered_at: Some(sent + 3_600_000),
            ..Message::default()
        }
    }

    const T0: i64 = 1_776_716_100_000; // 2026-04-20T20:15:00Z

    fn sample() -> Stats {
        let gb = vec![
            GroupBy::compile(".mall_id").unwrap(),
            GroupBy::compile(".command").unwrap(),
        ];
        let mut s = Stats::new(gb, Some(Bucket::parse("sent:minute").unwrap()));
        for i in 0..8 {
            s.add(&msg(
                r#"{"mall_id":"a","command":"points_updated"}"#,
                T0 + i * 1000,
                2,
            ));
        }
        s.add(&msg(
            r#"{"mall_id":"b","command":"order_created"}"#,
            T0 + 300_000,
            2,
        ));
        s.add(&msg("not json", T0 + 600_000, 3));
        s
    }

    #[test]
    fn groups_pairs_and_non_json() {
        let s = sample();
        let j = s.to_json(
            "q",
            &ScanOutcome {
                read: 10,
                complete: true,
                non_destructive: true,
            },
            10,
        );
        assert_eq!(j["total"], 10);
        assert_eq!(j["nonJson"], 1);
        assert_eq!(j["groups"][0]["counts"][0], json!({"key": "a", "count": 8}));
        assert_eq!(j["groups"][0]["counts"][1], json!({"key": "b", "count": 1}));
        assert_eq!(
            j["pairs"]["counts"][0],
            json!({"keys": ["a", "points_updated"], "count": 8})
        );
        assert_eq!(
            j["receiveCounts"],
            json!([{"receiveCount": 2, "count": 9}, {"receiveCount": 3, "count": 1}])
        );
        assert_eq!(
            j["shapes"][0],
            json!({"keys": "{command,mall_id}", "count": 9})
        );
    }

    #[test]
    fn minute_buckets_and_burst() {
        let s = sample();
        let j = s.to_json(
            "q",
            &ScanOutcome {
                read: 10,
                complete: true,
                non_destructive: true,
            },
            10,
        );
        assert_eq!(
            j["buckets"]["counts"],
            json!([
                {"start": "2026-04-20T20:15:00Z", "count": 8},
                {"start": "2026-04-20T20:20:00Z", "count": 1},
                {"start": "2026-04-20T20:25:00Z", "count": 1},
            ])
        );
        let b = s.burst().unwrap();
        assert_eq!(b.minute, "2026-04-20T20:15:00Z");
        assert_eq!(b.count, 8);
        assert!((b.share - 0.8).abs() < 1e-9);
        assert_eq!(b.first, "2026-04-20T20:15:00Z");
        assert_eq!(b.last, "2026-04-20T20:25:00Z");
    }

    #[test]
    fn bucket_parsing() {
        assert_eq!(
            Bucket::parse("dead-lettered:hour").unwrap().unit_ms,
            3_600_000
        );
        assert_eq!(Bucket::parse("sent").unwrap().unit, "minute");
        assert!(Bucket::parse("received:minute").is_err());
        assert!(Bucket::parse("sent:week").is_err());
        let mut s = Stats::new(vec![], Some(Bucket::parse("dead-lettered:day").unwrap()));
        s.add(&msg("{}", T0, 1));
        let keys: Vec<String> = s.agg.buckets().keys().map(|k| format_ts(*k)).collect();
        assert_eq!(keys, vec!["2026-04-20T00:00:00Z".to_string()]);
    }

    #[test]
    fn enrichment_joins_the_first_key() {
        let m = Mapping::from_csv("mall,project\na,p-1\n", "m.csv").unwrap();
        let s = sample().with_mapping(Some(m));
        let scan = ScanOutcome {
            read: 10,
            complete: true,
            non_destructive: true,
        };
        let j = s.to_json("q", &scan, 10);
        assert_eq!(
            j["groups"][0]["counts"][0]["enrich"],
            json!({"project": "p-1"})
        );
        assert_eq!(j["groups"][0]["counts"][1]["enrich"], Value::Null);
        assert!(j["groups"][1]["counts"][0].get("enrich").is_none());
        assert_eq!(j["pairs"]["counts"][0]["enrich"], json!({"project": "p-1"}));
        let t = s.to_table("q", &scan, 10);
        assert!(
            t.contains(".mall_id  project  .command        count  share"),
            "{t}"
        );
        assert!(
            t.contains("a         p-1      points_updated      8  80.0%"),
            "{t}"
        );
    }

    #[test]
    fn empty_queue_has_no_burst() {
        let s = Stats::new(vec![], None);
        assert!(s.burst().is_none());
    }

    #[test]
    fn records_ndjson_and_csv() {
        let m = Mapping::from_csv("mall,project\na,\"p-1, main\"\n", "m.csv").unwrap();
        let s = sample().with_mapping(Some(m));
        let lines: Vec<Value> = s
            .to_ndjson(10)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(
            lines[0],
            json!({"table": "burst", "key": "2026-04-20T20:15:00Z", "count": 8, "share": 0.8,
                   "first": "2026-04-20T20:15:00Z", "last": "2026-04-20T20:25:00Z"})
        );
        assert_eq!(
            lines[1],
            json!({"table": "group:.mall_id", "key": "a", "project": "p-1, main", "count": 8,
                   "share": 0.8})
        );
        assert_eq!(
            lines[2],
            json!({"table": "group:.mall_id", "key": "b", "project": "", "count": 1, "share": 0.1})
        );
        assert_eq!(
            lines[3],
            json!({"table": "group:.command", "key": "points_updated", "count": 8, "share": 0.8})
        );
        let pair = lines
            .iter()
            .find(|l| l["table"] == "pair:.mall_id × .command")
            .unwrap();
        assert_eq!(
            *pair,
            json!({"table": "pair:.mall_id × .command", "key": "a", "project": "p-1, main",
                   "key2": "points_updated", "count": 8, "share": 0.8})
        );
        assert!(
            lines
                .iter()
                .any(|l| *l
                    == json!({"table": "receiveCount", "key": "3", "count": 1, "share": 0.1}))
        );
        assert!(lines.iter().any(|l| l["table"] == "bucket:sent:minute"));
        assert!(lines.iter().any(|l| l["table"] == "shape"));
        // Field order is kept on each line.
        assert!(
            s.to_ndjson(10)
                .lines()
                .nth(1)
                .unwrap()
                .starts_with(r#"{"table":"group:.mall_id","key":"a","project""#)
        );

        let csv = s.to_csv(10);
        let mut rows = csv.lines();
        assert_eq!(
            rows.next().unwrap(),
            "table,key,key2,project,count,share,first,last"
        );
        assert_eq!(
            rows.next().unwrap(),
            "burst,2026-04-20T20:15:00Z,,,8,0.8,2026-04-20T20:15:00Z,2026-04-20T20:25:00Z"
        );
        assert_eq!(
            rows.next().unwrap(),
            "group:.mall_id,a,,\"p-1, main\",8,0.8,,"
        );
        assert!(
            csv.contains("pair:.mall_id × .command,a,points_updated,\"p-1, main\",8,0.8,,\r\n")
        );
        assert_eq!(csv.lines().count(), lines.len() + 1);
    }

    #[test]
    fn mapping_columns_never_shadow_row_fields() {
        let m = Mapping::from_csv("mall,count,key2,owner\na,99,x,o\n", "m.csv").unwrap();
        let s = sample().with_mapping(Some(m));
        let line = s
            .to_ndjson(10)
            .lines()
            .find(|l| l.contains("group:.mall_id"))
            .unwrap()
            .to_string();
        assert_eq!(
            line,
            r#"{"table":"group:.mall_id","key":"a","enrich.count":"99","enrich.key2":"x","owner":"o","count":8,"share":0.8}"#
        );
        assert!(s.to_csv(10).starts_with(
            "table,key,key2,enrich.count,enrich.key2,owner,count,share,first,last\r\n"
        ));
    }
}
