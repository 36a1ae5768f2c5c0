//! Small pure helpers: durations, UTC timestamps, aligned tables, CSV (RFC 4180).

use redrive_core::civil::civil_from_days;
use std::time::Duration;

/// Parses `500ms`, `30s`, `5m`, `2h`, `1d` (a bare number means seconds).
/// The error code of an extension-API error body: `__type`, with or without a
/// `com.amazonaws.sqs#`-style namespace (the inspection API sent one until the error shapes were
/// made uniform; every extension API now sends the bare shape).
pub fn api_error_code(v: &serde_json::Value) -> &str {
    v["__type"]
        .as_str()
        .map_or("error", |t| t.rsplit('#').next().unwrap_or(t))
}

pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("invalid duration `{s}` (expected e.g. 30s, 5m, 1h)"))?;
    let ms = match unit {
        "ms" => n,
        "" | "s" => n * 1000,
        "m" => n * 60_000,
        "h" => n * 3_600_000,
        "d" => n * 86_400_000,
        _ => return Err(format!("invalid duration `{s}` (units: ms, s, m, h, d)")),
    };
    Ok(Duration::from_millis(ms))
}

/// Epoch milliseconds → `2026-04-20T20:15:07Z`.
pub fn format_ts(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// A duration in seconds as `3d 4h`, `12m 5s`, `42s`.
pub fn format_age(secs: i64) -> String {
    let secs = secs.max(0);
    let (d, h, m, s) = (
        secs / 86_400,
        (secs % 86_400) / 3600,
        (secs % 3600) / 60,
        secs % 60,
    );
    if d > 0 {
        format!("{d}d {h}h")
    } else if h > 0 {
        format!("{h}h {m}m")
    } else if m > 0 {
        format!("{m}m {s}s")
    } else {
        format!("{s}s")
    }
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Left-aligned columns separated by two spaces; numeric-looking cells are right-aligned.
pub fn render_table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let cols = headers.len();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate().take(cols) {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let numeric_cell = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_digit() || c == '.' || c == '%')
    };
    // A column is right-aligned when every cell in it is a number.
    let numeric_col: Vec<bool> = (0..cols)
        .map(|i| {
            !rows.is_empty()
                && rows
                    .iter()
                    .all(|r| r.get(i).is_some_and(|c| numeric_cell(c)))
        })
        .collect();
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let mut l = String::new();
        for (i, cell) in cells.iter().enumerate() {
            let pad = widths[i].saturating_sub(cell.chars().count());
            if i > 0 {
                l.push_str("  ");
            }
            if numeric_col[i] {
                l.push_str(&" ".repeat(pad));
                l.push_str(cell);
            } else {
                l.push_str(cell);
                if i + 1 < cells.len() {
                    l.push_str(&" ".repeat(pad));
                }
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(headers.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
    out
}

/// One CSV field (RFC 4180): quoted when it holds `,`, `"`, CR or LF, with `"` doubled.
pub fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// One CSV record, CRLF-terminated as RFC 4180 asks.
pub fn csv_record<S: AsRef<str>>(cells: &[S]) -> String {
    let mut out = cells
        .iter()
        .map(|c| csv_field(c.as_ref()))
        .collect::<Vec<_>>()
        .join(",");
    out.push_str("\r\n");
    out
}

/// A header row and the rows, as CSV.
pub fn render_csv<S: AsRef<str>>(headers: &[S], rows: &[Vec<String>]) -> String {
    let mut out = csv_record(headers);
    for r in rows {
        out.push_str(&csv_record(r));
    }
    out
}

/// A JSON value as a CSV cell: strings bare, `null` empty, anything else as JSON text.
pub fn csv_cell(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// A record with named fields in a fixed order (an NDJSON line or a CSV row).
pub type Record = Vec<(String, serde_json::Value)>;

/// A record as one line of JSON, its fields in order.
pub fn record_json(r: &Record) -> String {
    let fields: Vec<String> = r
        .iter()
        .map(|(k, v)| format!("{}:{v}", serde_json::Value::from(k.as_str())))
        .collect();
    format!("{{{}}}", fields.join(","))
}

/// Records as CSV: the columns are every field name in order of first appearance; a record
/// without a field leaves its cell empty.
pub fn records_to_csv(records: &[Record]) -> String {
    records_to_csv_with(&[], records)
}

/// [`records_to_csv`] with the columns of `first` (those that occur) leading, in that order.
pub fn records_to_csv_with(first: &[&str], records: &[Record]) -> String {
    let mut headers: Vec<&str> = first
        .iter()
        .copied()
        .filter(|h| records.iter().any(|r| r.iter().any(|(k, _)| k == h)))
        .collect();
    for r in records {
        for (k, _) in r {
            if !headers.contains(&k.as_str()) {
                headers.push(k);
            }
        }
    }
    let rows: Vec<Vec<String>> = records
        .iter()
        .map(|r| {
            headers
                .iter()
                .map(|h| {
                    r.iter()
                        .find(|(k, _)| k == h)
                        .map(|(_, v)| csv_cell(v))
                        .unwrap_or_default()
                })
                .collect()
        })
        .collect();
    render_csv(&headers, &rows)
}

/// A CSV record that cannot be parsed: the line it starts on (1-based) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvError {
    pub line: usize,
    pub reason: String,
}

/// Parses CSV text (RFC 4180: quoted fields may hold `,`, `""` and line breaks; CRLF or LF).
/// Returns every non-blank record with the line it starts on.
pub fn parse_csv(text: &str) -> Result<Vec<(usize, Vec<String>)>, CsvError> {
    let mut records = vec![];
    let mut fields: Vec<String> = vec![];
    let mut cur = String::new();
    let mut quoted = false; // inside quotes
    let mut was_quoted = false; // the current field was quoted and the quote closed
    let mut line = 1;
    let mut start = 1;
    let mut chars = text.chars().peekable();
    let end_record = |fields: &mut Vec<String>, records: &mut Vec<(usize, Vec<String>)>, start| {
        let f = std::mem::take(fields);
        if !(f.len() == 1 && f[0].is_empty()) {
            records.push((start, f));
        }
    };
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    cur.push('"');
                }
                '"' => {
                    quoted = false;
                    was_quoted = true;
                }
                c => {
                    if c == '\n' {
                        line += 1;
                    }
                    cur.push(c);
                }
            }
            continue;
        }
        match c {
            '"' if cur.is_empty() && !was_quoted => quoted = true,
            '"' => {
                return Err(CsvError {
                    line,
                    reason: "stray quote in an unquoted field".into(),
                });
            }
            ',' => {
                fields.push(std::mem::take(&mut cur));
                was_quoted = false;
            }
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' => {
                fields.push(std::mem::take(&mut cur));
                was_quoted = false;
                end_record(&mut fields, &mut records, start);
                line += 1;
                start = line;
            }
            c if was_quoted => {
                return Err(CsvError {
                    line,
                    reason: format!("text after a closing quote: `{c}`"),
                });
            }
            c => cur.push(c),
        }
    }
    if quoted {
        return Err(CsvError {
            line: start,
            reason: "unterminated quote".into(),
        });
    }
    if !cur.is_empty() || was_quoted || !fields.is_empty() {
        fields.push(cur);
        end_record(&mut fields, &mut records, start);
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn timestamps() {
        assert_eq!(format_ts(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_ts(1_776_716_107_000), "2026-04-20T20:15:07Z");
        assert_eq!(format_ts(951_782_400_000), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn table_alignment() {
        let t = render_table(
            &["mall", "count"],
            &[
                vec!["a".into(), "5".into()],
                vec!["longer".into(), "120".into()],
            ],
        );
        assert_eq!(t, "mall    count\na           5\nlonger    120\n");
    }

    #[test]
    fn csv_quoting() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("two\nlines"), "\"two\nlines\"");
        assert_eq!(
            render_csv(&["k", "v"], &[vec!["a,1".into(), "x".into()]]),
            "k,v\r\n\"a,1\",x\r\n"
        );
    }

    #[test]
    fn csv_round_trip_and_errors() {
        let rows = vec![
            vec!["1".to_string(), "{\"a\": \"x,y\"}".into(), "".into()],
            vec!["2".into(), "multi\r\nline \"quoted\"".into(), "z".into()],
        ];
        let text = render_csv(&["id", "body", "g"], &rows);
        let parsed = parse_csv(&text).unwrap();
        assert_eq!(parsed.len(), 3);
        assert_eq!(parsed[0], (1, vec!["id".into(), "body".into(), "g".into()]));
        assert_eq!(parsed[1].1, rows[0]);
        assert_eq!(parsed[2], (3, rows[1].clone()));
        // LF line ends, blank lines and a last record without a line end.
        assert_eq!(
            parse_csv("a,b\n\n1,2").unwrap(),
            vec![
                (1, vec!["a".into(), "b".into()]),
                (3, vec!["1".into(), "2".into()])
            ]
        );
        assert_eq!(parse_csv("a\n\"x").unwrap_err().line, 2);
        assert_eq!(parse_csv("a\nx\"y\"").unwrap_err().line, 2);
        assert_eq!(parse_csv("a\n\"x\"y").unwrap_err().line, 2);
    }

    #[test]
    fn records_as_csv_and_json() {
        use serde_json::json;
        let rec = |fields: &[(&str, serde_json::Value)]| -> Record {
            fields
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect()
        };
        let a = rec(&[
            ("table", json!("t")),
            ("key", json!("a,b")),
            ("count", json!(2)),
        ]);
        let b = rec(&[
            ("table", json!("u")),
            ("key", json!("c")),
            ("extra", json!([1])),
        ]);
        assert_eq!(record_json(&a), r#"{"table":"t","key":"a,b","count":2}"#);
        assert_eq!(
            records_to_csv(&[a, b]),
            "table,key,count,extra\r\nt,\"a,b\",2,\r\nu,c,,[1]\r\n"
        );
    }
}

#[cfg(test)]
mod api_error_tests {
    use super::api_error_code;

    #[test]
    fn reads_bare_and_namespaced_codes() {
        let v = |t: &str| serde_json::json!({"__type": t, "message": "m"});
        assert_eq!(api_error_code(&v("QueueDoesNotExist")), "QueueDoesNotExist");
        assert_eq!(
            api_error_code(&v("com.amazonaws.sqs#QueueDoesNotExist")),
            "QueueDoesNotExist"
        );
        assert_eq!(api_error_code(&serde_json::json!({})), "error");
    }
}
