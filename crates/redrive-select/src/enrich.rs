//! `--enrich FILE`: a mapping from a group key to named columns (e.g. `mall_id → project_id,
//! product`), joined on the first `--group-by` key.
//!
//! - CSV: a header row; the first column is the key (or the column named by `--enrich-key`),
//!   the others are the columns.
//! - JSON object: `{"key": {"column": value, …}}` (a scalar value becomes column `value`).
//! - JSON array of objects: `[{"mall_id": "m1", "project_id": "p-1", …}, …]`; the key field is
//!   named by `--enrich-key`, else it is the first `--group-by` key's trailing field name
//!   (`.mall_id` → `mall_id`), else each row's first field.

use std::collections::{BTreeSet, HashMap};

use serde::Deserialize;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::Value;

/// A mapping file that cannot be used; names the file and, for CSV, the line.
#[derive(Debug, thiserror::Error)]
pub enum MappingError {
    #[error("cannot read mapping file {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}:{line}: {reason}")]
    Row {
        path: String,
        line: usize,
        reason: String,
    },
    #[error("{path}: row {row}: {reason}")]
    Item {
        path: String,
        row: usize,
        reason: String,
    },
    #[error("{path}: {reason}")]
    File { path: String, reason: String },
}

/// Which field of a row holds the key (JSON array rows and, when given, CSV columns).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum KeyColumn {
    /// CSV: the first column; JSON array: each row's first field.
    #[default]
    First,
    /// `--enrich-key NAME` (CSV and JSON array).
    Flag(String),
    /// The trailing field name of the first `--group-by` key (JSON array only; CSV keeps its
    /// first column).
    GroupBy { field: String, expr: String },
}

impl KeyColumn {
    /// `--enrich-key`, else the first group-by expression's trailing field name, else the
    /// first field.
    pub fn choose(flag: Option<&str>, first_group_by: Option<&str>) -> KeyColumn {
        if let Some(f) = flag {
            return KeyColumn::Flag(f.to_string());
        }
        match first_group_by.and_then(|e| trailing_field(e).map(|f| (f, e))) {
            Some((field, expr)) => KeyColumn::GroupBy {
                field,
                expr: expr.to_string(),
            },
            None => KeyColumn::First,
        }
    }

    fn why(&self) -> String {
        match self {
            KeyColumn::First => String::new(),
            KeyColumn::Flag(_) => " (--enrich-key)".to_string(),
            KeyColumn::GroupBy { expr, .. } => {
                format!(
                    " (the key field, from --group-by {expr}; choose another with --enrich-key)"
                )
            }
        }
    }
}

/// `.mall_id` → `mall_id`, `.params.mall_id?` → `mall_id`, `$meta.groupId` → `groupId`;
/// `None` for anything that is not a plain path.
pub fn trailing_field(expr: &str) -> Option<String> {
    let e = expr.trim().trim_end_matches('?');
    let rest = e.strip_prefix("$meta").unwrap_or(e);
    if !rest.starts_with('.') {
        return None;
    }
    let mut last = None;
    for seg in rest[1..].split('.') {
        let seg = seg.trim_end_matches('?');
        let ident = seg
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && seg.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !ident {
            return None;
        }
        last = Some(seg.to_string());
    }
    last
}

/// A JSON object with its fields in file order (serde_json's map sorts them).
struct OrderedObject(Vec<(String, Value)>);

impl<'de> Deserialize<'de> for OrderedObject {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = OrderedObject;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<OrderedObject, A::Error> {
                let mut fields = vec![];
                while let Some((k, v)) = a.next_entry::<String, Value>()? {
                    fields.push((k, v));
                }
                Ok(OrderedObject(fields))
            }
        }
        d.deserialize_map(V)
    }
}

/// One element of the array form: an object, or anything else (an error).
#[derive(Deserialize)]
#[serde(untagged)]
enum ArrayRow {
    Object(OrderedObject),
    Other(Value),
}

fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Mapping {
    pub columns: Vec<String>,
    rows: HashMap<String, Vec<String>>,
}

impl Mapping {
    /// A mapping from its text: JSON when `json` says so or the text starts with `{` / `[`,
    /// else CSV. `name` names it in errors (a path, or where it was pasted).
    pub fn parse(
        text: &str,
        name: &str,
        json: bool,
        key: &KeyColumn,
    ) -> Result<Mapping, MappingError> {
        let head = text.trim_start();
        if json || head.starts_with('{') || head.starts_with('[') {
            Mapping::from_json_keyed(text, name, key)
        } else {
            Mapping::from_csv_keyed(text, name, key)
        }
    }

    /// The columns for `key`, empty strings when it is not mapped.
    pub fn get(&self, key: &str) -> Vec<String> {
        self.rows
            .get(key)
            .cloned()
            .unwrap_or_else(|| vec![String::new(); self.columns.len()])
    }

    pub fn get_json(&self, key: &str) -> Value {
        match self.rows.get(key) {
            None => Value::Null,
            Some(vals) => Value::Object(
                self.columns
                    .iter()
                    .cloned()
                    .zip(vals.iter().cloned().map(Value::from))
                    .collect(),
            ),
        }
    }

    pub fn from_csv(text: &str, path: &str) -> Result<Mapping, MappingError> {
        Mapping::from_csv_keyed(text, path, &KeyColumn::First)
    }

    /// A CSV mapping; the key is the first column, or the column `--enrich-key` names.
    pub fn from_csv_keyed(
        text: &str,
        path: &str,
        key: &KeyColumn,
    ) -> Result<Mapping, MappingError> {
        let row_err = |line: usize, reason: String| MappingError::Row {
            path: path.to_string(),
            line,
            reason,
        };
        let mut lines = text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty());
        let Some((hl, header)) = lines.next() else {
            return Err(MappingError::File {
                path: path.to_string(),
                reason: "empty mapping file (a header row is required)".into(),
            });
        };
        let header = split_csv(header).map_err(|r| row_err(hl + 1, r))?;
        if header.len() < 2 {
            return Err(row_err(
                hl + 1,
                "the header needs a key column and at least one more".into(),
            ));
        }
        let key_at = match key {
            KeyColumn::Flag(k) => header.iter().position(|h| h == k).ok_or_else(|| {
                row_err(
                    hl + 1,
                    format!("no column `{k}` (--enrich-key) in the header"),
                )
            })?,
            _ => 0,
        };
        let mut rows = HashMap::new();
        for (i, line) in lines {
            let mut cells = split_csv(line).map_err(|r| row_err(i + 1, r))?;
            if cells.len() != header.len() {
                return Err(row_err(
                    i + 1,
                    format!("expected {} columns, found {}", header.len(), cells.len()),
                ));
            }
            let key = cells.remove(key_at);
            if key.is_empty() {
                return Err(row_err(i + 1, "empty key".into()));
            }
            if rows.insert(key.clone(), cells).is_some() {
                return Err(row_err(i + 1, format!("duplicate key `{key}`")));
            }
        }
        let mut columns = header;
        columns.remove(key_at);
        Ok(Mapping { columns, rows })
    }

    pub fn from_json(text: &str, path: &str) -> Result<Mapping, MappingError> {
        Mapping::from_json_keyed(text, path, &KeyColumn::First)
    }

    /// A JSON mapping: an object keyed by the key, or an array of objects whose key field is
    /// chosen by `key`.
    pub fn from_json_keyed(
        text: &str,
        path: &str,
        key: &KeyColumn,
    ) -> Result<Mapping, MappingError> {
        let file_err = |reason: String| MappingError::File {
            path: path.to_string(),
            reason,
        };
        let v: Value =
            serde_json::from_str(text).map_err(|e| file_err(format!("not JSON: {e}")))?;
        if v.is_array() {
            let rows: Vec<ArrayRow> =
                serde_json::from_str(text).map_err(|e| file_err(format!("not JSON: {e}")))?;
            return Mapping::from_rows(rows, path, key);
        }
        let Value::Object(map) = v else {
            return Err(file_err(
                "expected an object {\"key\": {\"column\": value}} or an array of objects".into(),
            ));
        };
        let mut columns = BTreeSet::new();
        for (k, v) in &map {
            match v {
                Value::Object(o) => columns.extend(o.keys().cloned()),
                Value::Array(_) => {
                    return Err(file_err(format!(
                        "key `{k}`: expected an object or a scalar"
                    )));
                }
                _ => {
                    columns.insert("value".to_string());
                }
            }
        }
        let columns: Vec<String> = columns.into_iter().collect();
        let rows = map
            .iter()
            .map(|(k, v)| {
                let vals = columns
                    .iter()
                    .map(|c| match v {
                        Value::Object(o) => o.get(c).map(text_of).unwrap_or_default(),
                        scalar if c == "value" => text_of(scalar),
                        _ => String::new(),
                    })
                    .collect();
                (k.clone(), vals)
            })
            .collect();
        Ok(Mapping { columns, rows })
    }

    /// The array form: every row an object holding the key field.
    fn from_rows(
        rows: Vec<ArrayRow>,
        path: &str,
        key: &KeyColumn,
    ) -> Result<Mapping, MappingError> {
        let item_err = |row: usize, reason: String| MappingError::Item {
            path: path.to_string(),
            row,
            reason,
        };
        let mut objects = Vec::with_capacity(rows.len());
        for (i, r) in rows.into_iter().enumerate() {
            match r {
                ArrayRow::Object(o) => objects.push(o.0),
                ArrayRow::Other(v) => {
                    let what = match v {
                        Value::Array(_) => "an array",
                        Value::String(_) => "a string",
                        Value::Number(_) => "a number",
                        Value::Bool(_) => "a boolean",
                        _ => "null",
                    };
                    return Err(item_err(i + 1, format!("expected an object, found {what}")));
                }
            }
        }
        let mut columns: Vec<String> = vec![];
        let mut keyed = Vec::with_capacity(objects.len());
        for (i, fields) in objects.into_iter().enumerate() {
            let at = match key {
                KeyColumn::First => (!fields.is_empty()).then_some(0),
                KeyColumn::Flag(k) | KeyColumn::GroupBy { field: k, .. } => {
                    fields.iter().position(|(f, _)| f == k)
                }
            };
            let Some(at) = at else {
                let reason = match key {
                    KeyColumn::First => "an empty object has no key field".to_string(),
                    KeyColumn::Flag(k) | KeyColumn::GroupBy { field: k, .. } => {
                        format!("no `{k}` field{}", key.why())
                    }
                };
                return Err(item_err(i + 1, reason));
            };
            let k = match &fields[at].1 {
                Value::String(s) => s.clone(),
                v @ (Value::Number(_) | Value::Bool(_)) => v.to_string(),
                _ => {
                    return Err(item_err(
                        i + 1,
                        format!(
                            "the key field `{}` is not a string or a number",
                            fields[at].0
                        ),
                    ));
                }
            };
            if k.is_empty() {
                return Err(item_err(i + 1, "empty key".into()));
            }
            for (j, (f, _)) in fields.iter().enumerate() {
                if j != at && !columns.contains(f) {
                    columns.push(f.clone());
                }
            }
            keyed.push((i + 1, k, at, fields));
        }
        let mut rows = HashMap::new();
        for (row, k, at, fields) in keyed {
            let vals = columns
                .iter()
                .map(|c| {
                    fields
                        .iter()
                        .enumerate()
                        .find(|(j, (f, _))| *j != at && f == c)
                        .map(|(_, (_, v))| text_of(v))
                        .unwrap_or_default()
                })
                .collect();
            if rows.insert(k.clone(), vals).is_some() {
                return Err(item_err(row, format!("duplicate key `{k}`")));
            }
        }
        Ok(Mapping { columns, rows })
    }
}

/// One CSV line: comma-separated, fields optionally in double quotes with `""` escapes.
fn split_csv(line: &str) -> Result<Vec<String>, String> {
    let line = line.strip_suffix('\r').unwrap_or(line);
    let mut out = vec![];
    let mut cur = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    let mut was_quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                cur.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => cur.push(c),
            (false, '"') if cur.trim().is_empty() && !was_quoted => {
                cur.clear();
                quoted = true;
                was_quoted = true;
            }
            (false, ',') => {
                out.push(if was_quoted {
                    std::mem::take(&mut cur)
                } else {
                    cur.trim().to_string()
                });
                cur.clear();
                was_quoted = false;
            }
            (false, '"') => return Err("stray quote".into()),
            (false, c) => {
                if was_quoted && !c.is_whitespace() {
                    return Err("text after a closing quote".into());
                }
                if !was_quoted {
                    cur.push(c);
                }
            }
        }
    }
    if quoted {
        return Err("unterminated quote".into());
    }
    out.push(if was_quoted {
        cur
    } else {
        cur.trim().to_string()
    });
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_mapping() {
        let m = Mapping::from_csv(
            "mall_id,project_id,product\ndrlabnosh,p-1,\"Shop, Plus\"\nchosunhnb,p-2,\"say \"\"hi\"\"\"\n",
            "m.csv",
        )
        .unwrap();
        assert_eq!(m.columns, ["project_id", "product"]);
        assert_eq!(m.get("drlabnosh"), ["p-1", "Shop, Plus"]);
        assert_eq!(m.get("chosunhnb"), ["p-2", "say \"hi\""]);
        assert_eq!(m.get("other"), ["", ""]);
        assert_eq!(m.get_json("drlabnosh")["product"], "Shop, Plus");
    }

    #[test]
    fn bad_csv_rows_name_the_line() {
        let e = Mapping::from_csv("k,v\na,1\nb\n", "m.csv").unwrap_err();
        assert_eq!(e.to_string(), "m.csv:3: expected 2 columns, found 1");
        let e = Mapping::from_csv("k,v\na,1\na,2\n", "m.csv").unwrap_err();
        assert_eq!(e.to_string(), "m.csv:3: duplicate key `a`");
        let e = Mapping::from_csv("k,v\n\"a,1\n", "m.csv").unwrap_err();
        assert_eq!(e.to_string(), "m.csv:2: unterminated quote");
        assert!(Mapping::from_csv("", "m.csv").is_err());
    }

    #[test]
    fn json_mapping() {
        let m = Mapping::from_json(
            r#"{"drlabnosh": {"project_id": "p-1", "n": 3}, "chosunhnb": {"project_id": "p-2"}}"#,
            "m.json",
        )
        .unwrap();
        assert_eq!(m.columns, ["n", "project_id"]);
        assert_eq!(m.get("drlabnosh"), ["3", "p-1"]);
        assert_eq!(m.get("chosunhnb"), ["", "p-2"]);
        assert!(Mapping::from_json("[1]", "m.json").is_err());
        assert!(Mapping::from_json("{\"a\": [1]}", "m.json").is_err());
        assert!(Mapping::from_json("{nope", "m.json").is_err());
    }

    #[test]
    fn json_array_mapping() {
        let text = r#"[
            {"mall_id": "drlabnosh", "project_id": "p-1", "product": "Loyalty, Pro"},
            {"project_id": "p-2", "mall_id": "chosunhnb", "seats": 3},
            {"mall_id": 42, "project_id": null}
        ]"#;
        let by_group = KeyColumn::choose(None, Some(".mall_id"));
        let m = Mapping::from_json_keyed(text, "m.json", &by_group).unwrap();
        assert_eq!(m.columns, ["project_id", "product", "seats"]);
        assert_eq!(m.get("drlabnosh"), ["p-1", "Loyalty, Pro", ""]);
        assert_eq!(m.get("chosunhnb"), ["p-2", "", "3"]);
        assert_eq!(m.get("42"), ["", "", ""]);
        assert_eq!(m.get_json("42")["project_id"], "");
        // Without a usable --group-by name: each row's first field.
        let first = KeyColumn::choose(None, Some("keys | join(\",\")"));
        assert_eq!(first, KeyColumn::First);
        let m = Mapping::from_json_keyed(
            r#"[{"mall": "a", "project_id": "p-1"}, {"mall": "b", "project_id": "p-2"}]"#,
            "m.json",
            &first,
        )
        .unwrap();
        assert_eq!(m.columns, ["project_id"]);
        assert_eq!(m.get("b"), ["p-2"]);
        // --enrich-key names the key, for CSV too.
        let flag = KeyColumn::choose(Some("project_id"), Some(".mall_id"));
        let m = Mapping::from_json_keyed(text, "m.json", &flag);
        assert_eq!(
            m.unwrap_err().to_string(),
            "m.json: row 3: the key field `project_id` is not a string or a number"
        );
        let m = Mapping::from_csv_keyed(
            "mall,project\na,p-1\n",
            "m.csv",
            &KeyColumn::Flag("project".into()),
        )
        .unwrap();
        assert_eq!(m.columns, ["mall"]);
        assert_eq!(m.get("p-1"), ["a"]);
        let e = Mapping::from_csv_keyed("mall,project\n", "m.csv", &KeyColumn::Flag("x".into()));
        assert_eq!(
            e.unwrap_err().to_string(),
            "m.csv:1: no column `x` (--enrich-key) in the header"
        );
    }

    #[test]
    fn bad_json_array_rows_name_the_row() {
        let key = KeyColumn::choose(None, Some(".mall_id"));
        let err = |text: &str| {
            Mapping::from_json_keyed(text, "m.json", &key)
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            err(r#"[{"mall_id": "a"}, {"mall": "b"}]"#),
            "m.json: row 2: no `mall_id` field (the key field, from --group-by .mall_id; choose another with --enrich-key)"
        );
        assert_eq!(
            err(r#"[{"mall_id": "a"}, {"mall_id": "b"}, "c"]"#),
            "m.json: row 3: expected an object, found a string"
        );
        assert_eq!(
            err(r#"[{"mall_id": "a"}, {"mall_id": "a"}]"#),
            "m.json: row 2: duplicate key `a`"
        );
        assert_eq!(
            err(r#"[{"mall_id": {"x": 1}}]"#),
            "m.json: row 1: the key field `mall_id` is not a string or a number"
        );
        assert_eq!(err(r#"[{"mall_id": ""}]"#), "m.json: row 1: empty key");
        let e = Mapping::from_json_keyed("[{}]", "m.json", &KeyColumn::First).unwrap_err();
        assert_eq!(
            e.to_string(),
            "m.json: row 1: an empty object has no key field"
        );
        assert!(err("[1,").starts_with("m.json: not JSON"));
    }

    #[test]
    fn trailing_field_names() {
        assert_eq!(trailing_field(".mall_id").as_deref(), Some("mall_id"));
        assert_eq!(
            trailing_field(" .params.mall_id? ").as_deref(),
            Some("mall_id")
        );
        assert_eq!(trailing_field("$meta.groupId").as_deref(), Some("groupId"));
        assert_eq!(trailing_field("."), None);
        assert_eq!(trailing_field(".a | ascii_downcase"), None);
        assert_eq!(trailing_field(".[\"mall id\"]"), None);
        assert_eq!(trailing_field("keys"), None);
    }
}
