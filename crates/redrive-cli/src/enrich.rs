//! `--enrich FILE`: a mapping from a group key to named columns (e.g. `mall_id → project_id,
//! product`), joined on the first `--group-by` key.
//!
//! - CSV: a header row; the first column is the key, the others are the columns.
//! - JSON: an object `{"key": {"column": value, …}}` (a scalar value becomes column `value`).

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

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
    #[error("{path}: {reason}")]
    File { path: String, reason: String },
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Mapping {
    pub columns: Vec<String>,
    rows: HashMap<String, Vec<String>>,
}

impl Mapping {
    pub fn load(path: &Path) -> Result<Mapping, MappingError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| MappingError::Io {
            path: name.clone(),
            source,
        })?;
        let is_json =
            path.extension().is_some_and(|e| e == "json") || text.trim_start().starts_with('{');
        if is_json {
            Mapping::from_json(&text, &name)
        } else {
            Mapping::from_csv(&text, &name)
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
        let mut rows = HashMap::new();
        for (i, line) in lines {
            let cells = split_csv(line).map_err(|r| row_err(i + 1, r))?;
            if cells.len() != header.len() {
                return Err(row_err(
                    i + 1,
                    format!("expected {} columns, found {}", header.len(), cells.len()),
                ));
            }
            let key = cells[0].clone();
            if key.is_empty() {
                return Err(row_err(i + 1, "empty key".into()));
            }
            if rows.insert(key.clone(), cells[1..].to_vec()).is_some() {
                return Err(row_err(i + 1, format!("duplicate key `{key}`")));
            }
        }
        Ok(Mapping {
            columns: header[1..].to_vec(),
            rows,
        })
    }

    pub fn from_json(text: &str, path: &str) -> Result<Mapping, MappingError> {
        let file_err = |reason: String| MappingError::File {
            path: path.to_string(),
            reason,
        };
        let v: Value =
            serde_json::from_str(text).map_err(|e| file_err(format!("not JSON: {e}")))?;
        let Value::Object(map) = v else {
            return Err(file_err(
                "expected an object {\"key\": {\"column\": value}}".into(),
            ));
        };
        let text_of = |v: &Value| match v {
            Value::String(s) => s.clone(),
            Value::Null => String::new(),
            other => other.to_string(),
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
}
