//! The alerts page, shared by the server console (over the engine) and `redrive console`
//! (over a Redrive server's `/_redrive/v1/alerts/…`): both render the API's JSON shapes (a
//! rule with its `states`, a transition, a silence; see docs/alerts.md, "API"), so the markup
//! exists once. The forms' fields become the API's request bodies here too, checked with the
//! same clear errors in both consoles (the engine checks them again).
//!
//! Routes (the same in both consoles): `GET /console/alerts`; `POST /console/alerts/rules`;
//! `GET|POST /console/alerts/rules/{id}/remove` (confirmation, then removal);
//! `POST /console/alerts/silences`; `POST /console/alerts/silences/{id}/remove`.

use std::collections::HashMap;
use std::fmt::Write;

use redrive_engine::alerts::{Condition, parse_duration_secs};
use serde_json::{Value, json};

use super::html::{csrf_field, esc, queue_link, time_text, url_part};

/// Transitions shown, newest first.
pub const HISTORY_SHOWN: usize = 50;

fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or_default()
}

/// "depth ≥ 100 for 30 min" from a rule's `condition` (the engine's words).
fn condition_text(c: &Value) -> String {
    serde_json::from_value::<Condition>(c.clone()).map_or_else(|_| c.to_string(), |c| c.describe())
}

fn state_span(state: &str) -> String {
    let s = esc(state);
    format!("<span class=\"state-{s}\">{s}</span>")
}

/// The alerts page's body: `intro` (trusted HTML) under the title, an `error` of the last
/// form, then rules with their states per queue, the newest transitions, silences and the
/// forms (each carrying `csrf`).
pub fn alerts_body(
    intro: &str,
    error: Option<&str>,
    rules: &[Value],
    history: &[Value],
    silences: &[Value],
    now_ms: u64,
    csrf: &str,
) -> String {
    let mut body = format!(
        "<h1>Alerts</h1>{intro}{}<h2 id=\"rules\">Rules</h2>",
        error.map_or(String::new(), |e| format!(
            "<p class=\"error\" id=\"form-error\">{}</p>",
            esc(e)
        ))
    );
    if rules.is_empty() {
        body.push_str("<p class=\"muted\" id=\"no-rules\">No rules.</p>");
    } else {
        body.push_str(
            "<table id=\"rule-table\"><thead><tr><th>Rule</th><th>Queues</th><th>Condition</th>\
             <th>Severity</th><th>States</th><th>Webhooks</th><th></th></tr></thead><tbody>",
        );
        for r in rules {
            let states: Vec<String> = r["states"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
                .iter()
                .map(|s| {
                    format!(
                        "{} {}",
                        queue_link(text(s, "queue")),
                        state_span(text(s, "state"))
                    )
                })
                .collect();
            let _ = write!(
                body,
                "<tr data-rule=\"{}\"><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td>\
                 <td class=\"num\">{}</td><td><a href=\"/console/alerts/rules/{}/remove\">Remove…</a></td></tr>",
                esc(text(r, "name")),
                esc(text(r, "name")),
                esc(text(r, "queue")),
                esc(&condition_text(&r["condition"])),
                esc(text(r, "severity")),
                if states.is_empty() {
                    "<span class=\"muted\">not evaluated yet (once a minute)</span>".into()
                } else {
                    states.join("<br>")
                },
                r["webhooks"].as_array().map_or(0, Vec::len),
                url_part(text(r, "id")),
            );
        }
        body.push_str("</tbody></table>");
    }
    let _ = write!(
        body,
        "<details><summary>Add a rule</summary><form class=\"stack add-rule\" method=\"post\" action=\"/console/alerts/rules\">{}\
         <p><label for=\"r-name\">Name</label><input id=\"r-name\" type=\"text\" name=\"name\" required></p>\
         <p><label for=\"r-queue\">Queue or glob</label><input id=\"r-queue\" type=\"text\" name=\"queue\" placeholder=\"*-dlq\" required></p>\
         <p><label for=\"r-kind\">Condition</label><select id=\"r-kind\" name=\"kind\">\
         <option value=\"depth\">depth ≥ N for M minutes</option><option value=\"age\">age of oldest ≥ N seconds</option>\
         <option value=\"arrivals\">arrivals ≥ N in M minutes</option><option value=\"growth\">growth ≥ N over M minutes</option>\
         </select></p>\
         <p><label for=\"r-n\">N</label><input id=\"r-n\" type=\"number\" name=\"n\" min=\"1\" required></p>\
         <p><label for=\"r-m\">M (minutes)</label><input id=\"r-m\" type=\"number\" name=\"m\" min=\"1\" max=\"1440\" value=\"5\"></p>\
         <p><label for=\"r-severity\">Severity</label><input id=\"r-severity\" type=\"text\" name=\"severity\" placeholder=\"warning\"></p>\
         <p><label for=\"r-webhook\">Webhook URL</label><input id=\"r-webhook\" type=\"url\" name=\"webhook\" placeholder=\"https://hooks.slack.com/services/…\">\
         <span class=\"hint\">optional; notified on every transition</span></p>\
         <p><label for=\"r-webhook-format\">Webhook body</label><select id=\"r-webhook-format\" name=\"webhook_format\">\
         <option value=\"json\">Redrive JSON</option><option value=\"slack\">Slack</option></select></p>\
         <p><button type=\"submit\" id=\"add-rule\">Add rule</button></p></form></details>",
        csrf_field(csrf)
    );

    let _ = write!(
        body,
        "<h2 id=\"history\">History <span class=\"muted\">(newest {HISTORY_SHOWN})</span></h2>"
    );
    if history.is_empty() {
        body.push_str("<p class=\"muted\" id=\"no-history\">No transitions yet.</p>");
    } else {
        body.push_str(
            "<table id=\"alert-history\"><thead><tr><th>At</th><th>Rule</th><th>Queue</th>\
             <th>From</th><th>To</th><th>Reason</th><th>Silenced by</th></tr></thead><tbody>",
        );
        for h in history {
            let _ = write!(
                body,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&time_text(h["atMs"].as_u64().unwrap_or(0))),
                esc(text(h, "rule")),
                queue_link(text(h, "queue")),
                esc(text(h, "oldState")),
                state_span(text(h, "newState")),
                esc(text(h, "reason")),
                esc(text(h, "silencedBy")),
            );
        }
        body.push_str("</tbody></table>");
    }

    body.push_str("<h2 id=\"silences\">Silences</h2>");
    if silences.is_empty() {
        body.push_str("<p class=\"muted\" id=\"no-silences\">No silences.</p>");
    } else {
        body.push_str(
            "<table id=\"silence-table\"><thead><tr><th>Rule</th><th>Queue</th><th>Until</th>\
             <th>Comment</th><th></th></tr></thead><tbody>",
        );
        for s in silences {
            let until = s["untilMs"].as_u64().unwrap_or(0);
            let _ = write!(
                body,
                "<tr data-silence=\"{}\"><td>{}</td><td><code>{}</code></td><td>{}{}</td><td>{}</td>\
                 <td><form class=\"remove-silence\" method=\"post\" action=\"/console/alerts/silences/{}/remove\">{}\
                 <button type=\"submit\">Remove</button></form></td></tr>",
                esc(text(s, "id")),
                esc(s["rule"].as_str().unwrap_or("any")),
                esc(s["queue"].as_str().unwrap_or("*")),
                esc(&time_text(until)),
                if until <= now_ms { " (ended)" } else { "" },
                esc(text(s, "comment")),
                url_part(text(s, "id")),
                csrf_field(csrf),
            );
        }
        body.push_str("</tbody></table>");
    }
    let rule_options: String = rules
        .iter()
        .map(|r| {
            format!(
                "<option value=\"{n}\">{n}</option>",
                n = esc(text(r, "name"))
            )
        })
        .collect();
    let _ = write!(
        body,
        "<h3>Silence notifications</h3><form class=\"stack add-silence\" method=\"post\" action=\"/console/alerts/silences\">{}\
         <p><label for=\"sil-rule\">Rule</label><select id=\"sil-rule\" name=\"rule\"><option value=\"\">any rule</option>{rule_options}</select></p>\
         <p><label for=\"sil-queue\">Queue or glob</label><input id=\"sil-queue\" type=\"text\" name=\"queue\" placeholder=\"any queue\"></p>\
         <p><label for=\"sil-duration\">For</label><input id=\"sil-duration\" type=\"text\" name=\"duration\" value=\"2h\">\
         <span class=\"hint\">30m, 2h, 1d</span></p>\
         <p><label for=\"sil-comment\">Comment</label><input id=\"sil-comment\" type=\"text\" name=\"comment\"></p>\
         <p><button type=\"submit\" id=\"add-silence\">Silence</button></p></form>",
        csrf_field(csrf),
    );
    body
}

/// The confirmation page's body for removing `rule` (the API's JSON of a rule).
pub fn rule_remove_confirm(rule: &Value, csrf: &str) -> String {
    format!(
        "<p><a href=\"/console/alerts\">← Alerts</a></p><h1>Remove alert rule {}?</h1>\
         <form class=\"confirm\" id=\"confirm-remove-rule-form\" method=\"post\" action=\"/console/alerts/rules/{}/remove\">{}\
         <p>Its states and pending notifications go with it (<code>{}</code> on <code>{}</code>); \
         its history stays.</p>\
         <div class=\"actions\"><button type=\"submit\" class=\"danger\" id=\"confirm-remove-rule\">Yes, remove it</button>\
         <a href=\"/console/alerts\">No, back</a></div></form>",
        esc(text(rule, "name")),
        url_part(text(rule, "id")),
        csrf_field(csrf),
        esc(&condition_text(&rule["condition"])),
        esc(text(rule, "queue")),
    )
}

fn get<'a>(form: &'a HashMap<String, String>, name: &str) -> Option<&'a str> {
    form.get(name).map(|v| v.trim()).filter(|v| !v.is_empty())
}

/// The add-rule form as the API's request body (`POST /_redrive/v1/alerts/rules`), or what is
/// wrong with it.
pub fn rule_request(form: &HashMap<String, String>) -> Result<Value, String> {
    let name = get(form, "name").ok_or("Name: give the rule a name.")?;
    let queue = get(form, "queue").ok_or("Queue: a queue name or a glob such as *-dlq.")?;
    let whole = |k: &str, label: &str, max: u64| -> Result<Option<u64>, String> {
        get(form, k)
            .map(|v| {
                v.parse::<u64>()
                    .ok()
                    .filter(|n| (1..=max).contains(n))
                    .ok_or_else(|| format!("{label}: `{v}` is not a whole number from 1 to {max}."))
            })
            .transpose()
    };
    let n = whole("n", "N", u64::MAX)?.ok_or("N: a whole number of at least 1.")?;
    let m = whole("m", "M (minutes)", 1440)?.unwrap_or(5);
    let condition = match get(form, "kind").unwrap_or("depth") {
        "depth" => json!({"kind": "depth", "threshold": n, "minutes": m}),
        "age" => json!({"kind": "age", "seconds": n}),
        "arrivals" => json!({"kind": "arrivals", "count": n, "windowMinutes": m}),
        "growth" => json!({"kind": "growth", "increase": n, "windowMinutes": m}),
        other => return Err(format!("Condition: unknown kind `{other}`.")),
    };
    let mut webhooks = Vec::new();
    if let Some(url) = get(form, "webhook") {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(format!(
                "Webhook URL: `{url}` is not an http:// or https:// URL."
            ));
        }
        let format = match get(form, "webhook_format") {
            None | Some("json") => "json",
            Some("slack") => "slack",
            Some(other) => return Err(format!("Webhook body: unknown format `{other}`.")),
        };
        webhooks.push(json!({"url": url, "format": format}));
    }
    Ok(json!({
        "name": name,
        "queue": queue,
        "condition": condition,
        "severity": get(form, "severity"),
        "webhooks": webhooks,
    }))
}

/// The silence form as the API's request body (`POST /_redrive/v1/alerts/silences`), or what
/// is wrong with it.
pub fn silence_request(form: &HashMap<String, String>) -> Result<Value, String> {
    let (rule, queue) = (get(form, "rule"), get(form, "queue"));
    if rule.is_none() && queue.is_none() {
        return Err(
            "Silence: choose a rule or give a queue (`*` silences every queue).".to_string(),
        );
    }
    let duration = get(form, "duration").ok_or("For: how long, e.g. 30m, 2h or 1d.")?;
    if parse_duration_secs(duration).is_none_or(|s| s == 0) {
        return Err(format!(
            "For: `{duration}` is not a duration such as 30m, 2h or 1d."
        ));
    }
    Ok(json!({
        "rule": rule,
        "queue": queue,
        "duration": duration,
        "comment": get(form, "comment"),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn rule_form_becomes_the_api_request() {
        let v = rule_request(&form(&[
            ("name", "dlq-deep"),
            ("queue", "*-dlq"),
            ("kind", "arrivals"),
            ("n", "10"),
            ("m", "30"),
            ("webhook", "https://hooks.example/x"),
            ("webhook_format", "slack"),
        ]))
        .unwrap();
        assert_eq!(
            v["condition"],
            json!({"kind": "arrivals", "count": 10, "windowMinutes": 30})
        );
        assert_eq!(v["webhooks"][0]["format"], "slack");
        let req: redrive_engine::alerts::AlertRuleRequest = serde_json::from_value(v).unwrap();
        assert_eq!(req.name, "dlq-deep");
        for (bad, says) in [
            (vec![("queue", "q"), ("n", "1")], "Name"),
            (vec![("name", "a"), ("queue", "q"), ("n", "0")], "N:"),
            (vec![("name", "a"), ("queue", "q"), ("n", "x")], "N:"),
            (
                vec![("name", "a"), ("queue", "q"), ("n", "1"), ("m", "2000")],
                "M (minutes)",
            ),
            (
                vec![
                    ("name", "a"),
                    ("queue", "q"),
                    ("n", "1"),
                    ("webhook", "ftp://x"),
                ],
                "Webhook URL",
            ),
        ] {
            let e = rule_request(&form(&bad)).unwrap_err();
            assert!(e.contains(says), "{e}");
        }
    }

    #[test]
    fn silence_form_is_checked() {
        let v = silence_request(&form(&[("queue", "*"), ("duration", "2h")])).unwrap();
        assert_eq!(v["queue"], "*");
        assert_eq!(v["rule"], Value::Null);
        let _: redrive_engine::alerts::SilenceRequest = serde_json::from_value(v).unwrap();
        assert!(silence_request(&form(&[("duration", "2h")])).is_err());
        let e = silence_request(&form(&[("rule", "r"), ("duration", "soon")])).unwrap_err();
        assert!(e.contains("`soon`"), "{e}");
    }
}
