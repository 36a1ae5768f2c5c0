//! `redrive config import-elasticmq`: the `queues { … }` block of an ElasticMQ config
//! (HOCON) as a Redrive queue file (TOML). See docs/queue-config.md for the subset read and
//! the translation table.
//!
//! The HOCON read is the subset ElasticMQ configs use: nested objects `key { … }` or
//! `key = { … }`, `key = value` / `key : value` with quoted or bare strings, numbers,
//! booleans and durations (`10 seconds`), `//` and `#` comments, and `include` lines (ignored).
//! Substitutions (`${…}`), arrays and concatenation are refused with their line.

use std::fmt::Write as _;

#[derive(Debug, Clone, PartialEq)]
enum Value {
    Object(Vec<(String, Value, usize)>),
    Scalar(String),
}

struct Parser<'a> {
    chars: Vec<char>,
    at: usize,
    line: usize,
    _text: &'a str,
}

type ParseResult<T> = Result<T, String>;

impl Parser<'_> {
    fn err<T>(&self, msg: impl Into<String>) -> ParseResult<T> {
        Err(format!("{}: {}", self.line, msg.into()))
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.at).copied()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.at += 1;
        if c == '\n' {
            self.line += 1;
        }
        Some(c)
    }

    /// Skips spaces, newlines, commas and comments.
    fn skip(&mut self) {
        while let Some(c) = self.peek() {
            if c.is_whitespace() || c == ',' {
                self.bump();
            } else if c == '#' || (c == '/' && self.chars.get(self.at + 1) == Some(&'/')) {
                while let Some(c) = self.peek() {
                    if c == '\n' {
                        break;
                    }
                    self.bump();
                }
            } else {
                break;
            }
        }
    }

    /// Skips spaces and comments on the current line only.
    fn skip_inline(&mut self) {
        while let Some(c) = self.peek() {
            if c == ' ' || c == '\t' {
                self.bump();
            } else {
                break;
            }
        }
    }

    fn quoted(&mut self) -> ParseResult<String> {
        self.bump(); // opening quote
        let mut s = String::new();
        loop {
            match self.bump() {
                None | Some('\n') => return self.err("unterminated string"),
                Some('"') => return Ok(s),
                Some('\\') => match self.bump() {
                    Some('n') => s.push('\n'),
                    Some('t') => s.push('\t'),
                    Some(c) => s.push(c),
                    None => return self.err("unterminated string"),
                },
                Some(c) => s.push(c),
            }
        }
    }

    fn key(&mut self) -> ParseResult<String> {
        if self.peek() == Some('"') {
            return self.quoted();
        }
        let mut s = String::new();
        while let Some(c) = self.peek() {
            if c.is_alphanumeric() || matches!(c, '-' | '_' | '.') {
                s.push(c);
                self.bump();
            } else {
                break;
            }
        }
        if s.is_empty() {
            return self.err(format!(
                "expected a key, found `{}`",
                self.peek()
                    .map_or("end of file".to_string(), |c| c.to_string())
            ));
        }
        Ok(s)
    }

    /// The members of an object up to `}` (or the end of the file at the top level).
    fn members(&mut self, top: bool) -> ParseResult<Vec<(String, Value, usize)>> {
        let mut out = Vec::new();
        loop {
            self.skip();
            match self.peek() {
                None if top => return Ok(out),
                None => return self.err("missing `}`"),
                Some('}') if !top => {
                    self.bump();
                    return Ok(out);
                }
                Some('}') => return self.err("unexpected `}`"),
                _ => {}
            }
            let line = self.line;
            let key = self.key()?;
            if key == "include" {
                // `include classpath("application.conf")`: ElasticMQ's defaults; skipped.
                while let Some(c) = self.peek() {
                    if c == '\n' {
                        break;
                    }
                    self.bump();
                }
                continue;
            }
            self.skip_inline();
            let mut sep = false;
            if matches!(self.peek(), Some('=' | ':')) {
                self.bump();
                sep = true;
                self.skip_inline();
            }
            let value = match self.peek() {
                Some('{') => {
                    self.bump();
                    Value::Object(self.members(false)?)
                }
                _ if !sep => return self.err(format!("expected `=`, `:` or `{{` after `{key}`")),
                Some('"') => Value::Scalar(self.quoted()?),
                Some('[') => return self.err("arrays are not supported"),
                Some('$') => return self.err("substitutions (`${…}`) are not supported"),
                _ => {
                    let mut s = String::new();
                    while let Some(c) = self.peek() {
                        if c == '\n' || c == ',' || c == '}' || c == '#' {
                            break;
                        }
                        if c == '/' && self.chars.get(self.at + 1) == Some(&'/') {
                            break;
                        }
                        s.push(c);
                        self.bump();
                    }
                    let s = s.trim().to_string();
                    if s.is_empty() {
                        return self.err(format!("`{key}` has no value"));
                    }
                    Value::Scalar(s)
                }
            };
            // Dotted keys (`a.b = 1`) are nested objects.
            let mut parts: Vec<&str> = key.split('.').collect();
            let last = parts.pop().unwrap_or_default().to_string();
            let mut value = value;
            let mut name = last;
            while let Some(p) = parts.pop() {
                value = Value::Object(vec![(name, value, line)]);
                name = p.to_string();
            }
            merge(&mut out, name, value, line);
        }
    }
}

/// HOCON merges repeated object keys; a repeated scalar replaces.
fn merge(out: &mut Vec<(String, Value, usize)>, key: String, value: Value, line: usize) {
    if let Some(existing) = out.iter_mut().find(|(k, _, _)| *k == key) {
        match (&mut existing.1, value) {
            (Value::Object(a), Value::Object(b)) => {
                for (k, v, l) in b {
                    merge(a, k, v, l);
                }
            }
            (slot, v) => {
                *slot = v;
                existing.2 = line;
            }
        }
    } else {
        out.push((key, value, line));
    }
}

/// `10 seconds`, `5s`, `1 minute`, `30` (seconds) → seconds.
fn seconds(text: &str) -> Option<i64> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (n, unit) = t.split_at(split);
    let n: i64 = n.parse().ok()?;
    let mult = match unit.trim() {
        "" | "s" | "second" | "seconds" => 1,
        "m" | "minute" | "minutes" => 60,
        "h" | "hour" | "hours" => 3600,
        "d" | "day" | "days" => 86_400,
        "ms" | "milli" | "millis" | "millisecond" | "milliseconds" => {
            return (n % 1000 == 0).then_some(n / 1000);
        }
        _ => return None,
    };
    Some(n * mult)
}

fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

fn toml_key(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        s.to_string()
    } else {
        toml_string(s)
    }
}

/// Translates the `queues` block of an ElasticMQ config into a queue file. Errors are
/// `LINE: problem`.
pub fn to_queue_file(hocon: &str) -> Result<String, String> {
    let mut p = Parser {
        chars: hocon.chars().collect(),
        at: 0,
        line: 1,
        _text: hocon,
    };
    let root = p.members(true)?;
    let Some((_, Value::Object(queues), _)) = root.iter().find(|(k, _, _)| k == "queues") else {
        return Err("1: no `queues { … }` block".into());
    };
    let mut out = String::from(
        "# Translated from an ElasticMQ config by `redrive config import-elasticmq`.\n",
    );
    for (name, value, line) in queues {
        let Value::Object(fields) = value else {
            return Err(format!(
                "{line}: queue `{name}` must be an object `{{ … }}`"
            ));
        };
        let _ = write!(out, "\n[[queue]]\nname = {}\n", toml_string(name));
        let mut tags = Vec::new();
        let mut notes = Vec::new();
        for (key, v, line) in fields {
            let scalar = |v: &Value| match v {
                Value::Scalar(s) => Ok(s.clone()),
                Value::Object(_) => Err(format!("{line}: `{key}` must be a value")),
            };
            let secs = |v: &Value| {
                let s = scalar(v)?;
                seconds(&s).ok_or_else(|| format!("{line}: `{key}`: `{s}` is not a duration"))
            };
            let boolean = |v: &Value| {
                let s = scalar(v)?;
                match s.as_str() {
                    "true" | "yes" | "on" => Ok(true),
                    "false" | "no" | "off" => Ok(false),
                    _ => Err(format!("{line}: `{key}`: `{s}` is not a boolean")),
                }
            };
            match key.as_str() {
                "defaultVisibilityTimeout" => {
                    let _ = writeln!(out, "visibility_timeout = {}", secs(v)?);
                }
                "delay" => {
                    let _ = writeln!(out, "delay = {}", secs(v)?);
                }
                "receiveMessageWait" => {
                    let _ = writeln!(out, "receive_wait_time = {}", secs(v)?);
                }
                "messageRetentionPeriod" | "retentionPeriod" => {
                    let _ = writeln!(out, "message_retention = {}", secs(v)?);
                }
                "fifo" => {
                    let _ = writeln!(out, "fifo = {}", boolean(v)?);
                }
                "contentBasedDeduplication" => {
                    let _ = writeln!(out, "content_based_deduplication = {}", boolean(v)?);
                }
                "deadLettersQueue" => {
                    let Value::Object(d) = v else {
                        return Err(format!("{line}: `deadLettersQueue` must be an object"));
                    };
                    let get = |k: &str| {
                        d.iter()
                            .find(|(n, _, _)| n == k)
                            .and_then(|(_, v, _)| match v {
                                Value::Scalar(s) => Some(s.clone()),
                                Value::Object(_) => None,
                            })
                    };
                    let name = get("name")
                        .ok_or_else(|| format!("{line}: `deadLettersQueue` needs `name`"))?;
                    let count = get("maxReceiveCount").ok_or_else(|| {
                        format!("{line}: `deadLettersQueue` needs `maxReceiveCount`")
                    })?;
                    let count: i64 = count.parse().map_err(|_| {
                        format!("{line}: `maxReceiveCount`: `{count}` is not a number")
                    })?;
                    let _ = writeln!(
                        out,
                        "dead_letter_queue = {{ name = {}, max_receive_count = {count} }}",
                        toml_string(&name)
                    );
                }
                "tags" => {
                    let Value::Object(t) = v else {
                        return Err(format!("{line}: `tags` must be an object"));
                    };
                    for (k, v, l) in t {
                        match v {
                            Value::Scalar(s) => tags.push((k.clone(), s.clone())),
                            Value::Object(_) => {
                                return Err(format!("{l}: tag `{k}` must be a value"));
                            }
                        }
                    }
                }
                "copyTo" | "moveTo" => notes.push(format!(
                    "# ElasticMQ `{key} = {}` has no SQS equivalent and was left out.",
                    scalar(v).unwrap_or_default()
                )),
                other => notes.push(format!(
                    "# ElasticMQ `{other}` (line {line}) is not translated."
                )),
            }
        }
        if !tags.is_empty() {
            let body: Vec<String> = tags
                .iter()
                .map(|(k, v)| format!("{} = {}", toml_key(k), toml_string(v)))
                .collect();
            let _ = writeln!(out, "tags = {{ {} }}", body.join(", "));
        }
        for n in notes {
            let _ = writeln!(out, "{n}");
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ElasticMQ's README example, translated and then accepted by the queue-file checker.
    const ELASTICMQ_README: &str = r#"
include classpath("application.conf")

queues {
  queue1 {
    defaultVisibilityTimeout = 10 seconds
    delay = 5 seconds
    receiveMessageWait = 0 seconds
    deadLettersQueue {
      name = "queue1-dead-letters"
      maxReceiveCount = 3 // from 1 to 1000
    }
    fifo = false
    contentBasedDeduplication = false
    copyTo = "audit-queue-name"
    moveTo = "redirect-queue-name"
    tags {
      tag1 = "tagged1"
      tag2 = "tagged2"
    }
  }
  queue1-dead-letters { }
  audit-queue-name { }
  redirect-queue-name { }
}
"#;

    #[test]
    fn readme_example_translates() {
        let toml = to_queue_file(ELASTICMQ_README).unwrap();
        assert!(
            toml.contains(
                "name = \"queue1\"\nvisibility_timeout = 10\ndelay = 5\nreceive_wait_time = 0\n"
            ),
            "{toml}"
        );
        assert!(
            toml.contains(
                "dead_letter_queue = { name = \"queue1-dead-letters\", max_receive_count = 3 }"
            ),
            "{toml}"
        );
        assert!(
            toml.contains("tags = { tag1 = \"tagged1\", tag2 = \"tagged2\" }"),
            "{toml}"
        );
        assert!(
            toml.contains("# ElasticMQ `copyTo = audit-queue-name` has no SQS equivalent"),
            "{toml}"
        );
        assert_eq!(toml.matches("[[queue]]").count(), 4);
        // The result is a valid queue file.
        let parsed: toml::Table = toml::from_str(&toml).unwrap();
        assert_eq!(parsed["queue"].as_array().unwrap().len(), 4);
    }

    #[test]
    fn unsupported_hocon_names_its_line() {
        let e = to_queue_file("queues {\n  a {\n    delay = ${D}\n  }\n}\n").unwrap_err();
        assert!(e.starts_with("3: "), "{e}");
        let e = to_queue_file("queues {\n  a {\n    delay = ten\n  }\n}\n").unwrap_err();
        assert!(e.starts_with("3: ") && e.contains("duration"), "{e}");
        let e = to_queue_file("queues {\n  a {\n").unwrap_err();
        assert!(e.contains("missing `}`"), "{e}");
        assert!(
            to_queue_file("node-address { host = x }\n")
                .unwrap_err()
                .contains("no `queues")
        );
    }

    #[test]
    fn durations_and_dotted_keys() {
        assert_eq!(seconds("10 seconds"), Some(10));
        assert_eq!(seconds("2 minutes"), Some(120));
        assert_eq!(seconds("3000 millis"), Some(3));
        assert_eq!(seconds("30"), Some(30));
        assert_eq!(seconds("1500 millis"), None);
        let toml = to_queue_file("queues.q.delay = 3 seconds\n").unwrap();
        assert!(toml.contains("name = \"q\"\ndelay = 3\n"), "{toml}");
    }
}
