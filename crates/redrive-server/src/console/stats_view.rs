//! The DLQ page's aggregations as HTML, shared by the server's console and `redrive console`:
//! the form (jq keys, top N, a time bucket, an enrich mapping pasted as CSV or JSON) read from
//! the query string, and the tables of a [`redrive_select::stats::Aggregate`] (the same
//! aggregation `redrive stats` prints): burst signature, one table per key (the first joined
//! with the mapping), the combined keys, time buckets, receive counts and payload shapes.

use std::fmt::Write;

use redrive_select::enrich::{KeyColumn, Mapping};
use redrive_select::jq::GroupBy;
use redrive_select::stats::{Aggregate, Bucket, top};

use super::html::{esc, time_text};

/// Most group-by keys at once.
pub const MAX_GROUP_KEYS: usize = 4;
/// Largest mapping accepted from the form (it travels in the URL).
pub const MAX_MAPPING_BYTES: usize = 16 * 1024;

/// The aggregation asked for in a page's query string: `group=JQ` (repeatable), `top=N`,
/// `bucket=FIELD:UNIT`, `enrich=MAPPING` (CSV or JSON text), `enrich_key=NAME`, `stats=1`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StatsQuery {
    pub groups: Vec<String>,
    pub top: usize,
    pub bucket: String,
    pub enrich: String,
    pub enrich_key: String,
    /// Aggregate even without a key (the form's button sends it).
    pub stats: bool,
}

impl StatsQuery {
    pub fn parse(raw: Option<&str>) -> StatsQuery {
        let mut q = StatsQuery {
            top: 20,
            ..StatsQuery::default()
        };
        for (k, v) in form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
            match k.as_ref() {
                "group" => {
                    let v = v.trim();
                    if !v.is_empty() && q.groups.len() < MAX_GROUP_KEYS {
                        q.groups.push(v.to_string());
                    }
                }
                "top" => q.top = v.trim().parse().unwrap_or(20).clamp(1, 1000),
                "bucket" => q.bucket = v.trim().to_string(),
                "enrich" => q.enrich = v.trim().to_string(),
                "enrich_key" => q.enrich_key = v.trim().to_string(),
                "stats" => q.stats = !v.is_empty(),
                _ => {}
            }
        }
        q
    }

    /// Whether the page should aggregate at all (the first view does not: it reads no more
    /// than a page of messages).
    pub fn wanted(&self) -> bool {
        self.stats || !self.groups.is_empty() || !self.bucket.is_empty() || !self.enrich.is_empty()
    }

    /// The query string that asks for this aggregation again (for paging links).
    pub fn to_query(&self) -> String {
        let mut s = form_urlencoded::Serializer::new(String::new());
        for g in &self.groups {
            s.append_pair("group", g);
        }
        if self.wanted() {
            s.append_pair("top", &self.top.to_string());
            s.append_pair("stats", "1");
        }
        for (k, v) in [
            ("bucket", &self.bucket),
            ("enrich", &self.enrich),
            ("enrich_key", &self.enrich_key),
        ] {
            if !v.is_empty() {
                s.append_pair(k, v);
            }
        }
        s.finish()
    }

    /// The compiled aggregation and mapping, or the first error in the words of `redrive
    /// stats`.
    pub fn compile(&self) -> Result<(Aggregate, Option<Mapping>), String> {
        let group_bys = self
            .groups
            .iter()
            .map(|g| GroupBy::compile(g).map_err(|e| format!("group by {g}: {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        let bucket = match self.bucket.as_str() {
            "" => None,
            b => Some(Bucket::parse(b)?),
        };
        let mapping = match self.enrich.as_str() {
            "" => None,
            _ if self.enrich.len() > MAX_MAPPING_BYTES => {
                return Err(format!(
                    "enrich mapping: larger than {MAX_MAPPING_BYTES} bytes"
                ));
            }
            text => {
                if self.groups.is_empty() {
                    return Err("enrich mapping: it joins the first group-by key; give one".into());
                }
                let flag = (!self.enrich_key.is_empty()).then_some(self.enrich_key.as_str());
                let key = KeyColumn::choose(flag, self.groups.first().map(String::as_str));
                Some(Mapping::parse(text, "the mapping", false, &key).map_err(|e| e.to_string())?)
            }
        };
        Ok((Aggregate::new(group_bys, bucket), mapping))
    }

    /// The form's fields (without the `<form>` element, so each console puts its own around
    /// them). Keyboard: `g` focuses the first key.
    pub fn fields_html(&self) -> String {
        let mut out = String::new();
        for i in 0..self.groups.len().clamp(2, MAX_GROUP_KEYS) {
            let (label, hint) = match i {
                0 => ("jq path", ".tenant"),
                1 => ("then by", ".command (optional)"),
                _ => ("then by", "(optional)"),
            };
            let suffix = if i == 0 {
                String::new()
            } else {
                format!("-{}", i + 1)
            };
            let _ = write!(
                out,
                "<label for=\"group-input{suffix}\">{label}</label>\
                 <input id=\"group-input{suffix}\" type=\"text\" name=\"group\" value=\"{}\" \
                 placeholder=\"{hint}\"{}>",
                esc(self.groups.get(i).map_or("", String::as_str)),
                if i == 0 { " accesskey=\"g\"" } else { "" },
            );
        }
        let _ = write!(
            out,
            "<label for=\"top-input\">top</label>\
             <input id=\"top-input\" type=\"number\" name=\"top\" min=\"1\" max=\"1000\" value=\"{}\">\
             <label for=\"bucket-input\">time buckets</label><select id=\"bucket-input\" name=\"bucket\">",
            self.top
        );
        for (value, label) in [
            ("", "none"),
            ("dead-lettered:minute", "dead-lettered, per minute"),
            ("dead-lettered:hour", "dead-lettered, per hour"),
            ("sent:minute", "sent, per minute"),
            ("sent:hour", "sent, per hour"),
            ("sent:day", "sent, per day"),
        ] {
            let _ = write!(
                out,
                "<option value=\"{value}\"{}>{label}</option>",
                if self.bucket == value {
                    " selected"
                } else {
                    ""
                }
            );
        }
        let _ = write!(
            out,
            "</select><details class=\"enrich\"{}><summary>Enrich the first key with a mapping</summary>\
             <label for=\"enrich-input\">mapping (CSV with a header row, or JSON)</label>\
             <textarea id=\"enrich-input\" name=\"enrich\" rows=\"4\" cols=\"60\" \
             placeholder=\"mall,project&#10;alpha,p-1\">{}</textarea>\
             <label for=\"enrich-key-input\">key column (default: the first)</label>\
             <input id=\"enrich-key-input\" type=\"text\" name=\"enrich_key\" value=\"{}\"></details>\
             <input type=\"hidden\" name=\"stats\" value=\"1\">",
            if self.enrich.is_empty() { "" } else { " open" },
            esc(&self.enrich),
            esc(&self.enrich_key)
        );
        out
    }
}

/// The tables of an aggregation over `agg.total` messages. `note` follows the message count
/// (how they were read, whether the scan stopped early). Ids: `burst`, `group-table`,
/// `group-table-N`, `group-pairs`, `bucket-table`, `receive-table`, `shape-table`.
pub fn render(agg: &Aggregate, mapping: Option<&Mapping>, top_n: usize, note: &str) -> String {
    let total = agg.total;
    let share = |c: usize| format!("{:.1}%", 100.0 * c as f64 / total.max(1) as f64);
    let mut out = String::new();
    let _ = write!(
        out,
        "<p class=\"muted\" id=\"stats-scope\">{total} messages read{note}{}.</p>",
        if agg.non_json > 0 {
            format!(", {} with a body that is not JSON", agg.non_json)
        } else {
            String::new()
        }
    );
    if let Some(b) = agg.burst() {
        let _ = write!(
            out,
            "<p id=\"burst\" data-minute=\"{}\" data-count=\"{}\"><strong>Burst signature:</strong> \
             {} of {} messages ({:.1}%) were sent in the minute {}; first sent {}, last {}.</p>",
            b.minute_ms,
            b.count,
            b.count,
            agg.with_sent(),
            b.share * 100.0,
            esc(&time_text(b.minute_ms.max(0) as u64)),
            esc(&time_text(b.first_ms.max(0) as u64)),
            esc(&time_text(b.last_ms.max(0) as u64)),
        );
    }
    let columns: &[String] = mapping.map_or(&[], |m| &m.columns);
    let exprs: Vec<&str> = agg.group_bys().iter().map(|g| g.expr.as_str()).collect();
    for (i, expr) in exprs.iter().enumerate() {
        let counts = agg.group(i);
        let id = if i == 0 {
            "group-table".to_string()
        } else {
            format!("group-table-{}", i + 1)
        };
        let extra: String = if i == 0 {
            columns
                .iter()
                .map(|c| format!("<th class=\"enrich\">{}</th>", esc(c)))
                .collect()
        } else {
            String::new()
        };
        let _ = write!(
            out,
            "<h3>By <code>{}</code> <span class=\"muted\">({} distinct)</span></h3>\
             <table id=\"{id}\"><thead><tr><th>Value</th>{extra}<th class=\"num\">Messages</th>\
             <th class=\"num\">Share</th></tr></thead><tbody>",
            esc(expr),
            counts.len(),
        );
        for (value, count) in top(counts, top_n) {
            let cells: String = match (i, mapping) {
                (0, Some(m)) => m
                    .get(&value)
                    .iter()
                    .map(|v| format!("<td class=\"enrich\">{}</td>", esc(v)))
                    .collect(),
                _ => String::new(),
            };
            let _ = write!(
                out,
                "<tr><td><code>{}</code></td>{cells}<td class=\"num\" data-count=\"{count}\">{count}</td>\
                 <td class=\"num\">{}</td></tr>",
                esc(&value),
                share(count)
            );
        }
        out.push_str("</tbody></table>");
        if counts.len() > top_n {
            let shown: usize = top(counts, top_n).iter().map(|(_, c)| c).sum();
            let rest: usize = counts.values().sum::<usize>() - shown;
            let _ = write!(
                out,
                "<p class=\"muted\">{} more values ({rest} messages) not shown.</p>",
                counts.len() - top_n
            );
        }
    }
    if exprs.len() >= 2 {
        let pairs = agg.pairs();
        let heads: String = exprs
            .iter()
            .enumerate()
            .map(|(i, e)| {
                let mut h = format!("<th><code>{}</code></th>", esc(e));
                if i == 0 {
                    for c in columns {
                        let _ = write!(h, "<th class=\"enrich\">{}</th>", esc(c));
                    }
                }
                h
            })
            .collect();
        let _ = write!(
            out,
            "<h3>Combined <span class=\"muted\">({} combinations)</span></h3><table id=\"group-pairs\">\
             <thead><tr>{heads}<th class=\"num\">Messages</th><th class=\"num\">Share</th></tr></thead><tbody>",
            pairs.len()
        );
        for (values, count) in top(pairs, top_n) {
            let mut cells = String::new();
            for (i, v) in values.iter().enumerate() {
                let _ = write!(cells, "<td><code>{}</code></td>", esc(v));
                if let (0, Some(m)) = (i, mapping) {
                    for e in m.get(v) {
                        let _ = write!(cells, "<td class=\"enrich\">{}</td>", esc(&e));
                    }
                }
            }
            let _ = write!(
                out,
                "<tr class=\"pair\">{cells}<td class=\"num\" data-count=\"{count}\">{count}</td>\
                 <td class=\"num\">{}</td></tr>",
                share(count)
            );
        }
        out.push_str("</tbody></table>");
        if pairs.len() > top_n {
            let _ = write!(
                out,
                "<p class=\"muted\">{} more combinations not shown.</p>",
                pairs.len() - top_n
            );
        }
    }
    if let Some(b) = agg.bucket() {
        let max = agg.buckets().values().copied().max().unwrap_or(0).max(1);
        let _ = write!(
            out,
            "<h3>By {} time, per {}</h3><table id=\"bucket-table\"><thead><tr><th>{}</th>\
             <th class=\"num\">Messages</th><th>Share</th></tr></thead><tbody>",
            b.field.as_str(),
            b.unit,
            b.unit
        );
        for (start, count) in agg.buckets() {
            // A bar per bucket: a person sees the burst before reading the numbers.
            let width = (100.0 * *count as f64 / max as f64).round();
            let _ = write!(
                out,
                "<tr><td data-start=\"{start}\">{}</td><td class=\"num\" data-count=\"{count}\">{count}</td>\
                 <td><svg class=\"bar\" width=\"200\" height=\"10\" viewBox=\"0 0 100 10\" \
                 preserveAspectRatio=\"none\" aria-hidden=\"true\"><rect width=\"{width}\" height=\"10\" \
                 fill=\"#b3261e\"/></svg> {}</td></tr>",
                esc(&time_text((*start).max(0) as u64)),
                share(*count)
            );
        }
        out.push_str("</tbody></table>");
    }
    if !agg.receive_counts().is_empty() {
        out.push_str(
            "<h3>Receive counts</h3><table id=\"receive-table\"><thead><tr><th class=\"num\">Receives</th>\
             <th class=\"num\">Messages</th><th class=\"num\">Share</th></tr></thead><tbody>",
        );
        for (r, count) in agg.receive_counts() {
            let _ = write!(
                out,
                "<tr><td class=\"num\">{r}</td><td class=\"num\" data-count=\"{count}\">{count}</td>\
                 <td class=\"num\">{}</td></tr>",
                share(*count)
            );
        }
        out.push_str("</tbody></table>");
    }
    if !agg.shapes().is_empty() {
        out.push_str(
            "<h3>Payload shapes <span class=\"muted\">(the body's top-level keys)</span></h3>\
             <table id=\"shape-table\"><thead><tr><th>Keys</th><th class=\"num\">Messages</th>\
             <th class=\"num\">Share</th></tr></thead><tbody>",
        );
        for (shape, count) in top(agg.shapes(), top_n) {
            let _ = write!(
                out,
                "<tr><td><code>{}</code></td><td class=\"num\" data-count=\"{count}\">{count}</td>\
                 <td class=\"num\">{}</td></tr>",
                esc(&shape),
                share(count)
            );
        }
        out.push_str("</tbody></table>");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use redrive_select::stats::Sample;

    #[test]
    fn the_query_round_trips_and_compiles() {
        let q = StatsQuery::parse(Some(
            "group=.mall&group=.command&top=5&bucket=sent:hour&enrich=mall%2Cproject%0Aalpha%2Cp-1",
        ));
        assert_eq!(q.groups, vec![".mall", ".command"]);
        assert_eq!(q.top, 5);
        assert!(q.wanted());
        assert_eq!(
            StatsQuery::parse(Some(&q.to_query())),
            StatsQuery {
                stats: true,
                ..q.clone()
            }
        );
        let (mut agg, mapping) = q.compile().unwrap();
        for (mall, sent) in [("alpha", 0), ("alpha", 1_000), ("beta", 3_600_000)] {
            let body = format!(r#"{{"mall":"{mall}","command":"sync"}}"#);
            agg.add(
                &Sample {
                    body: &body,
                    sent_ms: Some(sent),
                    receive_count: Some(2),
                    ..Sample::default()
                },
                || serde_json::Value::Null,
            );
        }
        let html = render(&agg, mapping.as_ref(), 5, "");
        assert!(
            html.contains("<td><code>alpha</code></td><td class=\"enrich\">p-1</td>"),
            "{html}"
        );
        assert!(
            html.contains("<td><code>beta</code></td><td class=\"enrich\"></td>"),
            "{html}"
        );
        assert!(html.contains("id=\"bucket-table\""), "{html}");
        assert!(html.contains("data-start=\"3600000\""), "{html}");
        assert!(
            html.contains("<td class=\"num\">2</td><td class=\"num\" data-count=\"3\">3</td>"),
            "{html}"
        );
        assert!(html.contains("<code>{command,mall}</code>"), "{html}");
        assert!(
            html.contains("id=\"burst\" data-minute=\"0\" data-count=\"2\""),
            "{html}"
        );
    }

    #[test]
    fn bad_inputs_are_named() {
        let err = |raw: &str| StatsQuery::parse(Some(raw)).compile().err().unwrap();
        assert!(err("bucket=received:minute").contains("field must be"));
        assert!(err("group=.a%20%7C").contains("group by .a |"));
        assert!(err("enrich=a%2Cb").contains("first group-by key"));
        assert!(err("group=.a&enrich=%7Bnope").contains("the mapping"));
        assert!(!StatsQuery::parse(None).wanted());
    }
}
