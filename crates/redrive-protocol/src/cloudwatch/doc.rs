//! One document tree for the three CloudWatch wire formats: JSON 1.0 and Smithy RPC v2 CBOR
//! bodies, AWS Query form parameters (`A.member.1.B=…`) in; JSON, CBOR and Query XML out. The
//! typed decoders in [`super::ops`] read this tree, so every protocol means the same thing.

use redrive_core::civil::{civil_from_days, days_from_civil};
use std::collections::BTreeMap;
use std::fmt::Write as _;

use minicbor::data::{Tag, Type};

/// A protocol-neutral value. Query parameters arrive as [`Doc::Str`] only: readers accept a
/// number, boolean or time spelled as text.
#[derive(Debug, Clone, PartialEq)]
pub enum Doc {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    /// Epoch milliseconds (CBOR tag 1; JSON epoch seconds; Query ISO 8601).
    Time(i64),
    List(Vec<Doc>),
    Map(Vec<(String, Doc)>),
}

impl Doc {
    pub fn get(&self, key: &str) -> Option<&Doc> {
        match self {
            Doc::Map(m) => m.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }
}

// ---- JSON ----

pub fn from_json(v: serde_json::Value) -> Doc {
    use serde_json::Value;
    match v {
        Value::Null => Doc::Null,
        Value::Bool(b) => Doc::Bool(b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Doc::Int(i),
            None => Doc::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => Doc::Str(s),
        Value::Array(a) => Doc::List(a.into_iter().map(from_json).collect()),
        Value::Object(o) => Doc::Map(o.into_iter().map(|(k, v)| (k, from_json(v))).collect()),
    }
}

pub fn to_json(d: &Doc) -> serde_json::Value {
    use serde_json::Value;
    match d {
        Doc::Null => Value::Null,
        Doc::Bool(b) => Value::Bool(*b),
        Doc::Int(i) => Value::from(*i),
        Doc::Float(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
        Doc::Str(s) => Value::String(s.clone()),
        Doc::Time(ms) => {
            if ms % 1000 == 0 {
                Value::from(ms / 1000)
            } else {
                serde_json::Number::from_f64(*ms as f64 / 1000.0).map_or(Value::Null, Value::Number)
            }
        }
        Doc::List(l) => Value::Array(l.iter().map(to_json).collect()),
        Doc::Map(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), to_json(v))).collect()),
    }
}

// ---- CBOR ----

/// Decodes one CBOR data item (definite or indefinite containers; tag 1 is a time).
pub fn from_cbor(bytes: &[u8]) -> Result<Doc, String> {
    let mut d = minicbor::Decoder::new(bytes);
    let doc = cbor_item(&mut d, 0)?;
    if d.position() != bytes.len() {
        return Err("trailing bytes after the CBOR body".into());
    }
    Ok(doc)
}

const MAX_DEPTH: u32 = 32;

fn cbor_item(d: &mut minicbor::Decoder<'_>, depth: u32) -> Result<Doc, String> {
    if depth > MAX_DEPTH {
        return Err("CBOR body nested too deeply".into());
    }
    let e = |e: minicbor::decode::Error| e.to_string();
    Ok(match d.datatype().map_err(e)? {
        Type::Null | Type::Undefined => {
            d.skip().map_err(e)?;
            Doc::Null
        }
        Type::Bool => Doc::Bool(d.bool().map_err(e)?),
        Type::U8
        | Type::U16
        | Type::U32
        | Type::U64
        | Type::I8
        | Type::I16
        | Type::I32
        | Type::I64
        | Type::Int => Doc::Int(d.i64().map_err(e)?),
        Type::F16 | Type::F32 | Type::F64 => Doc::Float(d.f64().map_err(e)?),
        Type::String => Doc::Str(d.str().map_err(e)?.to_string()),
        Type::StringIndef => {
            let mut s = String::new();
            for part in d.str_iter().map_err(e)? {
                s.push_str(part.map_err(e)?);
            }
            Doc::Str(s)
        }
        Type::Tag => {
            let tag = d.tag().map_err(e)?;
            if tag != Tag::new(1) {
                return Err(format!("unsupported CBOR tag {}", tag.as_u64()));
            }
            let secs = match cbor_item(d, depth + 1)? {
                Doc::Int(i) => i as f64,
                Doc::Float(f) => f,
                _ => return Err("CBOR tag 1 must hold a number".into()),
            };
            Doc::Time(secs_to_ms(secs).ok_or("timestamp out of range")?)
        }
        Type::Array | Type::ArrayIndef => {
            let mut items = Vec::new();
            match d.array().map_err(e)? {
                Some(n) => {
                    for _ in 0..n {
                        items.push(cbor_item(d, depth + 1)?);
                    }
                }
                None => loop {
                    if d.datatype().map_err(e)? == Type::Break {
                        d.skip().map_err(e)?;
                        break;
                    }
                    items.push(cbor_item(d, depth + 1)?);
                },
            }
            Doc::List(items)
        }
        Type::Map | Type::MapIndef => {
            let mut entries = Vec::new();
            let mut entry = |d: &mut minicbor::Decoder<'_>| -> Result<(), String> {
                let Doc::Str(k) = cbor_item(d, depth + 1)? else {
                    return Err("CBOR map keys must be text".into());
                };
                entries.push((k, cbor_item(d, depth + 1)?));
                Ok(())
            };
            match d.map().map_err(e)? {
                Some(n) => {
                    for _ in 0..n {
                        entry(d)?;
                    }
                }
                None => loop {
                    if d.datatype().map_err(e)? == Type::Break {
                        d.skip().map_err(e)?;
                        break;
                    }
                    entry(d)?;
                },
            }
            Doc::Map(entries)
        }
        other => return Err(format!("unsupported CBOR type {other}")),
    })
}

fn secs_to_ms(secs: f64) -> Option<i64> {
    let ms = (secs * 1000.0).round();
    (ms.is_finite() && ms.abs() < 1e16).then_some(ms as i64)
}

pub fn to_cbor(doc: &Doc) -> Vec<u8> {
    let mut e = minicbor::Encoder::new(Vec::new());
    cbor_write(&mut e, doc);
    e.into_writer()
}

fn cbor_write(e: &mut minicbor::Encoder<Vec<u8>>, doc: &Doc) {
    // Writing to a Vec cannot fail.
    let _ = match doc {
        Doc::Null => e.null().map(|_| ()),
        Doc::Bool(b) => e.bool(*b).map(|_| ()),
        Doc::Int(i) => e.i64(*i).map(|_| ()),
        Doc::Float(f) => e.f64(*f).map(|_| ()),
        Doc::Str(s) => e.str(s).map(|_| ()),
        Doc::Time(ms) => e
            .tag(Tag::new(1))
            .and_then(|e| e.f64(*ms as f64 / 1000.0))
            .map(|_| ()),
        Doc::List(l) => {
            let _ = e.array(l.len() as u64);
            for item in l {
                cbor_write(e, item);
            }
            Ok(())
        }
        Doc::Map(m) => {
            let _ = e.map(m.len() as u64);
            for (k, v) in m {
                let _ = e.str(k);
                cbor_write(e, v);
            }
            Ok(())
        }
    };
}

// ---- Query (form parameters) ----

#[derive(Debug, Default)]
enum Node {
    #[default]
    Empty,
    Leaf(String),
    Obj(BTreeMap<String, Node>),
    Arr(BTreeMap<u32, Node>),
}

/// Form parameters → a tree: `A.member.N` is element N (1-based) of list `A`; other dots are
/// structure members. `Action` and `Version` are left out.
pub fn from_query(pairs: &[(String, String)]) -> Result<Doc, String> {
    let mut root = Node::Obj(BTreeMap::new());
    for (key, value) in pairs {
        if key == "Action" || key == "Version" {
            continue;
        }
        let segs: Vec<&str> = key.split('.').collect();
        if segs.iter().any(|s| s.is_empty()) {
            return Err(format!("malformed parameter name `{key}`"));
        }
        // The deepest real name has 9 segments; the bound keeps the tree (and its recursive
        // conversion and drop) shallow whatever a client sends.
        if segs.len() > MAX_DEPTH as usize {
            return Err(format!("parameter name `{key}` is nested too deeply"));
        }
        let mut node = &mut root;
        let mut i = 0;
        while i < segs.len() {
            if segs[i] == "member" {
                let n: u32 = segs
                    .get(i + 1)
                    .and_then(|n| n.parse().ok())
                    .filter(|n| *n >= 1)
                    .ok_or_else(|| format!("malformed list index in `{key}`"))?;
                if matches!(node, Node::Empty) || matches!(node, Node::Leaf(s) if s.is_empty()) {
                    *node = Node::Arr(BTreeMap::new());
                }
                let Node::Arr(items) = node else {
                    return Err(format!("parameter `{key}` conflicts with another"));
                };
                node = items.entry(n).or_default();
                i += 2;
            } else {
                if matches!(node, Node::Empty) {
                    *node = Node::Obj(BTreeMap::new());
                }
                let Node::Obj(members) = node else {
                    return Err(format!("parameter `{key}` conflicts with another"));
                };
                node = members.entry(segs[i].to_string()).or_default();
                i += 1;
            }
        }
        match node {
            Node::Empty => *node = Node::Leaf(value.clone()),
            // `A=` next to `A.member.1=…`: the empty list marker is ignored.
            Node::Arr(_) if value.is_empty() => {}
            _ => return Err(format!("parameter `{key}` is given twice")),
        }
    }
    Ok(node_doc(root))
}

fn node_doc(n: Node) -> Doc {
    match n {
        Node::Empty => Doc::Null,
        Node::Leaf(s) => Doc::Str(s),
        Node::Obj(m) => Doc::Map(m.into_iter().map(|(k, v)| (k, node_doc(v))).collect()),
        Node::Arr(m) => Doc::List(m.into_values().map(node_doc).collect()),
    }
}

// ---- Query XML ----

pub fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// Writes a structure's members as elements; lists as `<member>` children.
pub fn to_xml(out: &mut String, doc: &Doc) {
    match doc {
        Doc::Null => {}
        Doc::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Doc::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Doc::Float(f) => out.push_str(&format_double(*f)),
        Doc::Str(s) => out.push_str(&xml_escape(s)),
        Doc::Time(ms) => out.push_str(&iso8601(*ms)),
        Doc::List(l) => {
            for item in l {
                out.push_str("<member>");
                to_xml(out, item);
                out.push_str("</member>");
            }
        }
        Doc::Map(m) => {
            for (k, v) in m {
                if matches!(v, Doc::Null) {
                    continue;
                }
                let _ = write!(out, "<{k}>");
                to_xml(out, v);
                let _ = write!(out, "</{k}>");
            }
        }
    }
}

/// `3.0`, `12.5`: a double as AWS's XML writes it.
pub fn format_double(f: f64) -> String {
    if f.is_finite() && f.fract() == 0.0 && f.abs() < 1e15 {
        format!("{f:.1}")
    } else {
        format!("{f}")
    }
}

// ---- Time ----

/// `2026-04-20T20:20:00Z` (milliseconds only when not zero).
pub fn iso8601(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let milli = ms.rem_euclid(1000);
    let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    let (h, mi, se) = (s / 3600, s / 60 % 60, s % 60);
    if milli == 0 {
        format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{se:02}Z")
    } else {
        format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{se:02}.{milli:03}Z")
    }
}

/// ISO 8601 with a `Z` or `±HH:MM` offset (fractions of a second kept to the millisecond), or
/// epoch seconds.
pub fn parse_time_text(t: &str) -> Option<i64> {
    if let Ok(secs) = t.parse::<f64>() {
        return secs_to_ms(secs);
    }
    let b = t.as_bytes();
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let s = t.get(r)?;
        s.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| s.parse().ok())?
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, s) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if b[13] != b':' || b[16] != b':' || !(1..=12).contains(&mo) || !(1..=31).contains(&d) {
        return None;
    }
    if h > 23 || mi > 59 || s > 60 {
        return None;
    }
    let mut rest = &t[19..];
    let mut milli = 0i64;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let first3 = format!("{:0<3}", &frac[..digits.min(3)]);
        milli = first3.parse().ok()?;
        rest = &frac[digits..];
    }
    let offset_secs = match rest {
        "Z" | "z" | "" => 0,
        o if o.len() == 6 && (o.starts_with('+') || o.starts_with('-')) && &o[3..4] == ":" => {
            let oh: i64 = o[1..3].parse().ok()?;
            let om: i64 = o[4..6].parse().ok()?;
            let v = oh * 3600 + om * 60;
            if o.starts_with('-') { -v } else { v }
        }
        _ => return None,
    };
    let days = days_from_civil(y, mo as u32, d as u32);
    if civil_from_days(days) != (y, mo as u32, d as u32) {
        return None;
    }
    Some((days * 86_400 + h * 3600 + mi * 60 + s - offset_secs) * 1000 + milli)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip() {
        let ms = 1_776_716_400_000; // 2026-04-20T20:20:00Z
        assert_eq!(iso8601(ms), "2026-04-20T20:20:00Z");
        assert_eq!(parse_time_text("2026-04-20T20:20:00Z"), Some(ms));
        assert_eq!(parse_time_text("2026-04-20T20:20:00.250Z"), Some(ms + 250));
        assert_eq!(parse_time_text("2026-04-20T22:20:00+02:00"), Some(ms));
        assert_eq!(parse_time_text("1776716400"), Some(ms));
        assert_eq!(parse_time_text("2026-02-30T00:00:00Z"), None);
        assert_eq!(parse_time_text("yesterday"), None);
        assert_eq!(iso8601(ms + 5), "2026-04-20T20:20:00.005Z");
    }

    #[test]
    fn query_parameters_become_a_tree() {
        let p = |k: &str, v: &str| (k.to_string(), v.to_string());
        let doc = from_query(&[
            p("Action", "GetMetricData"),
            p("MetricDataQueries.member.2.Id", "b"),
            p("MetricDataQueries.member.1.Id", "a"),
            p(
                "MetricDataQueries.member.1.MetricStat.Metric.Dimensions.member.1.Name",
                "QueueName",
            ),
            p("StartTime", "2026-04-20T20:20:00Z"),
        ])
        .unwrap();
        let qs = doc.get("MetricDataQueries").unwrap();
        let Doc::List(items) = qs else {
            panic!("{qs:?}")
        };
        assert_eq!(items[0].get("Id"), Some(&Doc::Str("a".into())));
        assert_eq!(items[1].get("Id"), Some(&Doc::Str("b".into())));
        assert!(doc.get("Action").is_none());
        assert!(from_query(&[p("A.member.x", "1")]).is_err());
        assert!(from_query(&[p("A", "1"), p("A.B", "2")]).is_err());
        assert!(from_query(&[p("A..B", "1")]).is_err());
        let deep = vec!["a"; 1_000_000].join(".");
        assert!(from_query(&[p(&deep, "1")]).is_err());
    }

    #[test]
    fn cbor_round_trips_including_times_and_indefinite_maps() {
        let doc = Doc::Map(vec![
            ("a".into(), Doc::List(vec![Doc::Float(1.5), Doc::Int(-3)])),
            ("t".into(), Doc::Time(1_776_716_400_000)),
            ("s".into(), Doc::Str("x".into())),
        ]);
        assert_eq!(from_cbor(&to_cbor(&doc)).unwrap(), doc);
        // {_ "k": "v"} as an indefinite-length map.
        let bytes = [0xbf, 0x61, b'k', 0x61, b'v', 0xff];
        assert_eq!(
            from_cbor(&bytes).unwrap(),
            Doc::Map(vec![("k".into(), Doc::Str("v".into()))])
        );
        assert!(from_cbor(&[0xbf, 0x61]).is_err());
        assert!(from_cbor(&[0xc2, 0x41, 0x00]).is_err()); // tag 2 is not ours
    }
}
