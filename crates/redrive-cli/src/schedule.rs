//! `redrive schedule add|list|remove|runs`: recurring redrives kept in a Redrive server
//! (`/_redrive/v1/schedules`, see docs/replay-api.md). Against AWS there is no such API: the
//! recipe is `redrive replay … --yes` from cron (docs/redrive-cli.md).

use anyhow::{Result, anyhow};
use serde_json::{Value, json};

use crate::client::Conn;

/// The schedules API base of the endpoint, or a clear error pointing to the cron recipe.
async fn base(conn: &Conn) -> Result<String> {
    let no_server = || {
        anyhow!(
            "schedules are kept by a Redrive server and this endpoint ({}) has no /_redrive/v1/schedules API; against AWS, run `redrive replay DLQ … --yes` from cron instead (see docs/redrive-cli.md, \"Scheduled redrive on AWS\")",
            conn.endpoint_url.as_deref().unwrap_or("AWS")
        )
    };
    let endpoint = conn.endpoint_url.as_deref().ok_or_else(no_server)?;
    let base = endpoint.trim_end_matches('/').to_string();
    let resp = conn
        .extension_request(
            reqwest::Method::GET,
            &format!("{base}/_redrive/v1/schedules"),
            &[],
            None,
        )
        .await?;
    if !resp.status().is_success() {
        return Err(no_server());
    }
    let text = resp.text().await.unwrap_or_default();
    match serde_json::from_str::<Value>(&text) {
        Ok(v) if v.get("schedules").is_some() => Ok(base),
        _ => Err(no_server()),
    }
}

async fn call(
    conn: &Conn,
    method: reqwest::Method,
    url: &str,
    body: Option<&Value>,
) -> Result<(u16, Value)> {
    let (status, v) = conn.json_request(method, url, body).await?;
    if status >= 300 {
        let code = crate::util::api_error_code(&v);
        let msg = v["message"].as_str().unwrap_or("(no message)");
        return Err(anyhow!("the server refused ({status} {code}): {msg}"));
    }
    Ok((status, v))
}

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

/// Creates a schedule (the request body of `POST /_redrive/v1/schedules`).
pub async fn add(conn: &Conn, request: &Value) -> Result<Value> {
    let base = base(conn).await?;
    let (_, v) = call(
        conn,
        reqwest::Method::POST,
        &format!("{base}/_redrive/v1/schedules"),
        Some(request),
    )
    .await?;
    Ok(v)
}

/// All schedules.
pub async fn list(conn: &Conn) -> Result<Vec<Value>> {
    let base = base(conn).await?;
    let (_, v) = call(
        conn,
        reqwest::Method::GET,
        &format!("{base}/_redrive/v1/schedules"),
        None,
    )
    .await?;
    Ok(v["schedules"].as_array().cloned().unwrap_or_default())
}

/// Deletes a schedule by id or name.
pub async fn remove(conn: &Conn, id: &str) -> Result<()> {
    let base = base(conn).await?;
    call(
        conn,
        reqwest::Method::DELETE,
        &format!("{base}/_redrive/v1/schedules/{}", escape(id)),
        None,
    )
    .await?;
    Ok(())
}

/// A schedule's runs, newest first.
pub async fn runs(conn: &Conn, id: &str) -> Result<Vec<Value>> {
    let base = base(conn).await?;
    let (_, v) = call(
        conn,
        reqwest::Method::GET,
        &format!("{base}/_redrive/v1/schedules/{}/runs", escape(id)),
        None,
    )
    .await?;
    Ok(v["runs"].as_array().cloned().unwrap_or_default())
}

/// The request body of a schedule (the binary validates every field before).
#[derive(Debug, Clone, Default)]
pub struct ScheduleSpec {
    pub name: String,
    pub cron: String,
    pub timezone: String,
    pub source: String,
    pub destination: Option<String>,
    /// (`deadLettered` | `sent`, `yesterday` | `today` | `last:DURATION`)
    pub window: Option<(String, String)>,
    pub filter: Option<String>,
    pub max_count: Option<u64>,
    pub transform: Option<String>,
    pub rate: Option<f64>,
    pub rate_per: Option<(String, f64)>,
    pub breaker: Option<redrive_select::breaker::BreakerSpec>,
    pub enabled: bool,
}

impl ScheduleSpec {
    pub fn to_request(&self) -> Value {
        json!({
            "name": self.name,
            "cron": self.cron,
            "timezone": self.timezone,
            "source": self.source,
            "destination": self.destination,
            "window": self.window.as_ref().map(|(f, r)| json!({"field": f, "range": r})),
            "selection": {"filter": self.filter},
            "maxCount": self.max_count,
            "transform": self.transform,
            "rate": self.rate,
            "ratePer": self.rate_per.as_ref().map(|(k, r)| json!({"key": k, "rate": r})),
            "breaker": self.breaker,
            "enabled": self.enabled,
        })
    }
}

fn ts(v: &Value) -> String {
    v.as_i64().map(crate::util::format_ts).unwrap_or_default()
}

/// `schedule list` for people.
pub fn render_list(schedules: &[Value]) -> String {
    if schedules.is_empty() {
        return "(no schedules)\n".to_string();
    }
    let rows: Vec<Vec<String>> = schedules
        .iter()
        .map(|s| {
            let window = match (&s["window"]["field"], &s["window"]["range"]) {
                (Value::String(f), Value::String(r)) => format!("{f} {r}"),
                _ => String::new(),
            };
            vec![
                s["name"].as_str().unwrap_or_default().to_string(),
                format!(
                    "{} {}",
                    s["cron"].as_str().unwrap_or_default(),
                    s["timezone"].as_str().unwrap_or_default()
                ),
                s["source"].as_str().unwrap_or_default().to_string(),
                window,
                s["selection"]["filter"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                if s["enabled"] == false { "no" } else { "yes" }.to_string(),
                ts(&s["nextRunAt"]),
                ts(&s["lastRunAt"]),
                s["id"].as_str().unwrap_or_default().to_string(),
            ]
        })
        .collect();
    crate::util::render_table(
        &[
            "name", "cron", "source", "window", "filter", "enabled", "next", "last", "id",
        ],
        &rows,
    )
}

/// `schedule runs` for people.
pub fn render_runs(runs: &[Value]) -> String {
    if runs.is_empty() {
        return "(no runs yet)\n".to_string();
    }
    let rows: Vec<Vec<String>> = runs
        .iter()
        .map(|r| {
            vec![
                ts(&r["at"]),
                r["outcome"].as_str().unwrap_or_default().to_string(),
                r["selected"]
                    .as_u64()
                    .map(|n| n.to_string())
                    .unwrap_or_default(),
                r["replayId"].as_str().unwrap_or_default().to_string(),
                r["message"].as_str().unwrap_or_default().to_string(),
            ]
        })
        .collect();
    crate::util::render_table(&["at", "outcome", "selected", "replay", "message"], &rows)
}
