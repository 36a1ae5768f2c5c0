//! `redrive alerts add|list|history|silence|unsilence|remove`: alert rules kept and evaluated
//! by a Redrive server (`/_redrive/v1/alerts/…`, see docs/alerts.md). Against AWS the
//! equivalent is CloudWatch alarms; the command says so instead of guessing.

use anyhow::{Result, anyhow, bail};
use serde_json::{Value, json};

use crate::client::Conn;
use crate::util::{format_ts, render_table};

/// The alerts API base of the endpoint, or a clear error.
async fn base(conn: &Conn) -> Result<String> {
    let no_server = || {
        anyhow!(
            "alerts are kept by a Redrive server and this endpoint ({}) has no /_redrive/v1/alerts API; on AWS use CloudWatch alarms on the AWS/SQS metrics (docs/alerts.md)",
            conn.endpoint_url.as_deref().unwrap_or("AWS")
        )
    };
    let endpoint = conn.endpoint_url.as_deref().ok_or_else(no_server)?;
    let base = endpoint.trim_end_matches('/').to_string();
    let (status, v) = conn
        .json_request(
            reqwest::Method::GET,
            &format!("{base}/_redrive/v1/alerts/silences"),
            None,
        )
        .await
        .map_err(|_| no_server())?;
    if status != 200 || v.get("silences").is_none() {
        return Err(no_server());
    }
    Ok(base)
}

async fn call(
    conn: &Conn,
    method: reqwest::Method,
    url: &str,
    body: Option<&Value>,
) -> Result<Value> {
    let (status, v) = conn.json_request(method, url, body).await?;
    if status >= 300 {
        let code = crate::util::api_error_code(&v);
        let msg = v["message"].as_str().unwrap_or("(no message)");
        bail!("the server refused ({status} {code}): {msg}");
    }
    Ok(v)
}

/// Percent-encodes a path segment or query value.
fn escape(id: &str) -> String {
    id.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// What a rule watches, validated by the binary's flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConditionSpec {
    Depth { threshold: u64, minutes: u32 },
    Age { seconds: u64 },
    Arrivals { count: u64, window_minutes: u32 },
    Growth { increase: u64, window_minutes: u32 },
}

/// The request body of a rule.
#[derive(Debug, Clone)]
pub struct RuleSpec {
    pub name: String,
    pub queue: String,
    pub condition: ConditionSpec,
    pub severity: String,
    /// (url, `json` | `slack`)
    pub webhooks: Vec<(String, String)>,
}

impl RuleSpec {
    pub fn to_request(&self) -> Value {
        let condition = match &self.condition {
            ConditionSpec::Depth { threshold, minutes } => {
                json!({"kind": "depth", "threshold": threshold, "minutes": minutes})
            }
            ConditionSpec::Age { seconds } => json!({"kind": "age", "seconds": seconds}),
            ConditionSpec::Arrivals {
                count,
                window_minutes,
            } => json!({"kind": "arrivals", "count": count, "windowMinutes": window_minutes}),
            ConditionSpec::Growth {
                increase,
                window_minutes,
            } => json!({"kind": "growth", "increase": increase, "windowMinutes": window_minutes}),
        };
        json!({
            "name": self.name,
            "queue": self.queue,
            "condition": condition,
            "severity": self.severity,
            "webhooks": self.webhooks.iter().map(|(url, format)| json!({"url": url, "format": format})).collect::<Vec<_>>(),
        })
    }
}

/// A whole number of minutes from a duration, or an error naming the flag.
pub fn whole_minutes(flag: &str, d: std::time::Duration) -> Result<u32> {
    let secs = d.as_secs();
    if secs == 0 || !secs.is_multiple_of(60) || d.subsec_millis() != 0 {
        bail!("{flag} must be a whole number of minutes (1m, 30m, 2h)");
    }
    u32::try_from(secs / 60)
        .ok()
        .filter(|m| *m <= 1440)
        .ok_or_else(|| anyhow!("{flag} must be at most 24h"))
}

pub async fn add(conn: &Conn, spec: &RuleSpec) -> Result<Value> {
    let base = base(conn).await?;
    call(
        conn,
        reqwest::Method::POST,
        &format!("{base}/_redrive/v1/alerts/rules"),
        Some(&spec.to_request()),
    )
    .await
}

/// A rule from a request body already in the API's shape (the consoles' forms).
pub async fn add_request(conn: &Conn, request: &Value) -> Result<Value> {
    let base = base(conn).await?;
    call(
        conn,
        reqwest::Method::POST,
        &format!("{base}/_redrive/v1/alerts/rules"),
        Some(request),
    )
    .await
}

/// One rule (name or id) with its states.
pub async fn rule(conn: &Conn, rule: &str) -> Result<Value> {
    let base = base(conn).await?;
    call(
        conn,
        reqwest::Method::GET,
        &format!("{base}/_redrive/v1/alerts/rules/{}", escape(rule)),
        None,
    )
    .await
}

/// A silence from a request body already in the API's shape (the consoles' forms).
pub async fn silence_request(conn: &Conn, request: &Value) -> Result<Value> {
    let base = base(conn).await?;
    call(
        conn,
        reqwest::Method::POST,
        &format!("{base}/_redrive/v1/alerts/silences"),
        Some(request),
    )
    .await
}

/// Rules (each with the state of every queue it matches) and active silences.
pub async fn list(conn: &Conn) -> Result<(Vec<Value>, Vec<Value>)> {
    let base = base(conn).await?;
    let rules = call(
        conn,
        reqwest::Method::GET,
        &format!("{base}/_redrive/v1/alerts/rules"),
        None,
    )
    .await?;
    let silences = call(
        conn,
        reqwest::Method::GET,
        &format!("{base}/_redrive/v1/alerts/silences"),
        None,
    )
    .await?;
    Ok((
        rules["rules"].as_array().cloned().unwrap_or_default(),
        silences["silences"].as_array().cloned().unwrap_or_default(),
    ))
}

pub async fn remove(conn: &Conn, rule: &str) -> Result<()> {
    let base = base(conn).await?;
    call(
        conn,
        reqwest::Method::DELETE,
        &format!("{base}/_redrive/v1/alerts/rules/{}", escape(rule)),
        None,
    )
    .await?;
    Ok(())
}

pub async fn history(
    conn: &Conn,
    rule: Option<&str>,
    queue: Option<&str>,
    limit: u32,
) -> Result<Vec<Value>> {
    let base = base(conn).await?;
    let mut url = format!("{base}/_redrive/v1/alerts/history?limit={limit}");
    if let Some(r) = rule {
        url.push_str(&format!("&rule={}", escape(r)));
    }
    if let Some(q) = queue {
        url.push_str(&format!("&queue={}", escape(q)));
    }
    let v = call(conn, reqwest::Method::GET, &url, None).await?;
    Ok(v["history"].as_array().cloned().unwrap_or_default())
}

/// A silence: `until` is RFC 3339 or epoch; `duration` like `2h`.
pub async fn silence(
    conn: &Conn,
    rule: Option<&str>,
    queue: Option<&str>,
    until: Option<&str>,
    duration: Option<&str>,
    comment: Option<&str>,
) -> Result<Value> {
    let base = base(conn).await?;
    call(
        conn,
        reqwest::Method::POST,
        &format!("{base}/_redrive/v1/alerts/silences"),
        Some(&json!({
            "rule": rule, "queue": queue, "until": until, "duration": duration, "comment": comment,
        })),
    )
    .await
}

pub async fn unsilence(conn: &Conn, id: &str) -> Result<()> {
    let base = base(conn).await?;
    call(
        conn,
        reqwest::Method::DELETE,
        &format!("{base}/_redrive/v1/alerts/silences/{}", escape(id)),
        None,
    )
    .await?;
    Ok(())
}

fn condition_text(c: &Value) -> String {
    let n = |k: &str| c[k].as_u64().unwrap_or(0);
    match c["kind"].as_str().unwrap_or_default() {
        "depth" => format!("depth ≥ {} for {}m", n("threshold"), n("minutes")),
        "age" => format!("age ≥ {}s", n("seconds")),
        "arrivals" => format!("arrivals ≥ {} in {}m", n("count"), n("windowMinutes")),
        "growth" => format!("growth ≥ {} over {}m", n("increase"), n("windowMinutes")),
        other => other.to_string(),
    }
}

fn ts(v: &Value) -> String {
    v.as_i64().map(format_ts).unwrap_or_default()
}

/// `alerts list` for people: one row per (rule, queue) state, then the silences.
pub fn render_list(rules: &[Value], silences: &[Value]) -> String {
    let mut out = String::new();
    if rules.is_empty() {
        out.push_str("(no alert rules)\n");
    } else {
        let mut rows = Vec::new();
        for r in rules {
            let base = |queue: String, state: &str, since: String| {
                vec![
                    r["name"].as_str().unwrap_or_default().to_string(),
                    r["severity"].as_str().unwrap_or_default().to_string(),
                    condition_text(&r["condition"]),
                    queue,
                    state.to_string(),
                    since,
                    r["webhooks"].as_array().map_or(0, Vec::len).to_string(),
                ]
            };
            let states = r["states"].as_array().cloned().unwrap_or_default();
            if states.is_empty() {
                rows.push(base(
                    r["queue"].as_str().unwrap_or_default().to_string(),
                    "INSUFFICIENT_DATA",
                    ts(&r["createdMs"]),
                ));
            }
            for s in states {
                rows.push(base(
                    s["queue"].as_str().unwrap_or_default().to_string(),
                    s["state"].as_str().unwrap_or_default(),
                    ts(&s["sinceMs"]),
                ));
            }
        }
        out.push_str(&render_table(
            &[
                "rule",
                "severity",
                "condition",
                "queue",
                "state",
                "since",
                "webhooks",
            ],
            &rows,
        ));
    }
    if !silences.is_empty() {
        out.push_str("\nsilences:\n");
        let rows: Vec<Vec<String>> = silences
            .iter()
            .map(|s| {
                vec![
                    s["id"].as_str().unwrap_or_default().to_string(),
                    s["rule"].as_str().unwrap_or("*").to_string(),
                    s["queue"].as_str().unwrap_or("*").to_string(),
                    ts(&s["untilMs"]),
                    s["comment"].as_str().unwrap_or_default().to_string(),
                ]
            })
            .collect();
        out.push_str(&render_table(
            &["id", "rule", "queue", "until", "comment"],
            &rows,
        ));
    }
    out
}

/// `alerts history` for people, newest first.
pub fn render_history(history: &[Value]) -> String {
    if history.is_empty() {
        return "(no transitions)\n".to_string();
    }
    let rows: Vec<Vec<String>> = history
        .iter()
        .map(|h| {
            let mut reason = h["reason"].as_str().unwrap_or_default().to_string();
            if let Some(s) = h["silencedBy"].as_str() {
                reason.push_str(&format!(" [silenced by {s}]"));
            }
            vec![
                ts(&h["atMs"]),
                h["rule"].as_str().unwrap_or_default().to_string(),
                h["queue"].as_str().unwrap_or_default().to_string(),
                format!(
                    "{} → {}",
                    h["oldState"].as_str().unwrap_or_default(),
                    h["newState"].as_str().unwrap_or_default()
                ),
                reason,
            ]
        })
        .collect();
    render_table(&["time", "rule", "queue", "transition", "reason"], &rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_request_body() {
        let spec = RuleSpec {
            name: "p0".into(),
            queue: "*-dlq".into(),
            condition: ConditionSpec::Depth {
                threshold: 100,
                minutes: 1,
            },
            severity: "P0".into(),
            webhooks: vec![("http://h/x".into(), "slack".into())],
        };
        let v = spec.to_request();
        assert_eq!(v["condition"]["kind"], "depth");
        assert_eq!(v["webhooks"][0]["format"], "slack");
    }

    #[test]
    fn minutes_must_be_whole() {
        use std::time::Duration;
        assert_eq!(
            whole_minutes("--for", Duration::from_secs(1800)).unwrap(),
            30
        );
        assert!(whole_minutes("--for", Duration::from_secs(90)).is_err());
        assert!(whole_minutes("--for", Duration::from_secs(0)).is_err());
        assert!(whole_minutes("--for", Duration::from_secs(2 * 86_400)).is_err());
    }
}
