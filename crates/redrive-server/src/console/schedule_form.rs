//! The add-schedule form, shared by the server console and `redrive console`: the replay
//! options a schedule carries (window, filter, transform, destination, per-key rate, global
//! rate, breaker, most messages per run) as the replay form has them, and the form's fields
//! turned into the schedules API's request (`POST /_redrive/v1/schedules`, see
//! docs/replay-api.md), checked with clear errors before anything is sent (the engine checks
//! again).

use std::collections::HashMap;

use redrive_engine::schedules::{ScheduleRequest, WindowField, WindowSpec};
use redrive_select::schedule::{CronSchedule, RelativeWindow};
use redrive_select::selection::{Selection, Transform};
use serde_json::Value;

use super::html::{csrf_field, esc};
use super::replay::ReplayForm;

fn get<'a>(form: &'a HashMap<String, String>, name: &str) -> Option<&'a str> {
    form.get(name).map(|v| v.trim()).filter(|v| !v.is_empty())
}

/// The form (`id="add-schedule-form"`, posting to `/console/schedules`): `source_html` is the
/// DLQ field (a `<select>` of DLQs on the server, a text input elsewhere, with
/// `id="s-source" name="source"`), `values` the fields of a refused form (kept), `error` why.
pub fn form_html(
    csrf: &str,
    source_html: &str,
    values: &HashMap<String, String>,
    error: Option<&str>,
) -> String {
    let v = |k: &str| esc(get(values, k).unwrap_or_default());
    let text = |id: &str, label: &str, placeholder: &str, hint: &str| {
        format!(
            "<p><label for=\"s-{id}\">{label}</label><input id=\"s-{id}\" type=\"text\" name=\"{id}\" \
             value=\"{}\" placeholder=\"{}\"><span class=\"hint\">{}</span></p>",
            v(id),
            esc(placeholder),
            esc(hint)
        )
    };
    let window_field = get(values, "window_field").unwrap_or_default();
    let selected = |f: &str| if window_field == f { " selected" } else { "" };
    format!(
        "<h2 id=\"add\">Add a schedule</h2>{}\
         <form class=\"stack add-schedule\" id=\"add-schedule-form\" method=\"post\" action=\"/console/schedules\">{}\
         {}{}{}<p><label for=\"s-source\">DLQ</label>{source_html}</p>\
         <p><label for=\"s-window-field\">Window</label><select id=\"s-window-field\" name=\"window_field\">\
         <option value=\"\">none: every visible message</option>\
         <option value=\"deadLettered\"{}>dead-lettered</option><option value=\"sent\"{}>sent</option></select> \
         <input id=\"s-window-range\" type=\"text\" name=\"window_range\" value=\"{}\" \
         placeholder=\"yesterday, today or last:24h\" aria-label=\"Window range\">\
         <span class=\"hint\">relative to each fire, in the schedule's time zone</span></p>\
         {}{}{}{}{}{}{}{}\
         <p><button type=\"submit\" class=\"primary\" id=\"add-schedule\">Add schedule</button></p></form>",
        error.map_or(String::new(), |e| format!(
            "<p class=\"error\" id=\"form-error\">{}</p>",
            esc(e)
        )),
        csrf_field(csrf),
        text("name", "Name", "morning-redrive", "unique"),
        text("cron", "Cron", "0 6 * * *", "minute hour day month weekday"),
        text("timezone", "Time zone", "UTC", "IANA, e.g. Asia/Seoul"),
        selected("deadLettered"),
        selected("sent"),
        v("window_range"),
        text(
            "filter",
            "Filter (jq)",
            ".mall == \"alpha\"",
            "optional; over the body and $meta"
        ),
        text(
            "transform",
            "Transform (jq)",
            ".version = 2 | tojson",
            "optional; produces the new body"
        ),
        text(
            "destination",
            "Destination queue",
            "each message's source queue",
            "optional"
        ),
        text(
            "rate_key",
            "Per-key rate: key",
            ".mall",
            "optional, with a rate"
        ),
        text(
            "rate_per",
            "Per-key rate",
            "2/s",
            "for each value of the key"
        ),
        text("rate", "Global rate", "adaptive", "optional: 5/s, 30/m"),
        text(
            "breaker",
            "Circuit breaker",
            "20%/5m/10",
            "optional: SHARE[/WINDOW[/MIN]]"
        ),
        text(
            "max_count",
            "Limit per run",
            "no limit",
            "optional: most messages each fire moves"
        ),
    )
}

/// The schedule the form describes, or what is wrong with it (naming the field).
pub fn request(form: &HashMap<String, String>) -> Result<ScheduleRequest, String> {
    let name = get(form, "name").ok_or("Name: give the schedule a name.")?;
    let cron = get(form, "cron").ok_or("Cron: a 5-field expression such as 0 6 * * *.")?;
    let timezone = get(form, "timezone").unwrap_or("UTC");
    CronSchedule::parse(cron, timezone).map_err(|e| format!("Cron: {e}"))?;
    let source = get(form, "source").ok_or("DLQ: choose the queue to redrive from.")?;
    let window = match (get(form, "window_field"), get(form, "window_range")) {
        (None, None) => None,
        (None, Some(_)) => {
            return Err(
                "Window: choose what the range is about (dead-lettered or sent).".to_string(),
            );
        }
        (Some(_), None) => {
            return Err("Window: give a range (yesterday, today or last:24h).".to_string());
        }
        (Some(f), Some(range)) => {
            let field = match f {
                "deadLettered" => WindowField::DeadLettered,
                "sent" => WindowField::Sent,
                other => return Err(format!("Window: unknown field `{other}`.")),
            };
            RelativeWindow::parse(range).map_err(|e| format!("Window: {e}"))?;
            Some(WindowSpec {
                field,
                range: range.to_string(),
            })
        }
    };
    let f = ReplayForm::from_map(form);
    if let Some(filter) = get(form, "filter") {
        Selection::compile(&redrive_select::selection::SelectionSpec {
            filter: Some(filter.to_string()),
            ..Default::default()
        })
        .map_err(|e| format!("Filter: {e}"))?;
    }
    if let Some(t) = get(form, "transform") {
        Transform::compile(t).map_err(|e| format!("Transform: {e}"))?;
    }
    let mut replay = f.request(source)?;
    replay.selection.limit = None;
    replay.dry_run = false;
    replay.sample = None;
    let max_count = get(form, "max_count")
        .map(|m| {
            m.parse::<u64>()
                .ok()
                .filter(|n| *n >= 1)
                .ok_or_else(|| format!("Limit per run: `{m}` is not a whole number of at least 1."))
        })
        .transpose()?;
    Ok(ScheduleRequest {
        name: name.to_string(),
        cron: cron.to_string(),
        timezone: timezone.to_string(),
        window,
        max_count,
        enabled: true,
        replay,
    })
}

/// [`request`] as the API's JSON body (for `redrive console`, which sends it to the
/// endpoint).
pub fn request_json(form: &HashMap<String, String>) -> Result<Value, String> {
    let r = request(form)?;
    serde_json::to_value(&r).map_err(|e| e.to_string())
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

    const BASE: [(&str, &str); 3] = [("name", "n"), ("cron", "0 6 * * *"), ("source", "d")];

    #[test]
    fn every_replay_option_reaches_the_request() {
        let mut f = BASE.to_vec();
        f.extend([
            ("timezone", "Asia/Seoul"),
            ("window_field", "sent"),
            ("window_range", "last:24h"),
            ("filter", ".mall == \"a\""),
            ("transform", ".v = 2 | tojson"),
            ("destination", "orders"),
            ("rate_key", ".mall"),
            ("rate_per", "2/s"),
            ("rate", "10/s"),
            ("breaker", "20%/5m/10"),
            ("max_count", "500"),
        ]);
        let v = request_json(&form(&f)).unwrap();
        assert_eq!(v["window"]["field"], "sent");
        assert_eq!(v["window"]["range"], "last:24h");
        assert_eq!(v["transform"], ".v = 2 | tojson");
        assert_eq!(v["ratePer"]["key"], ".mall");
        assert_eq!(v["ratePer"]["rate"], 2.0);
        assert_eq!(v["rate"], 10.0);
        assert_eq!(v["maxCount"], 500);
        assert_eq!(v["destination"], "orders");
        assert!(v["breaker"].is_object(), "{v}");
        assert_eq!(v["dryRun"], false);
        let back: ScheduleRequest = serde_json::from_value(v).unwrap();
        assert_eq!(back.timezone, "Asia/Seoul");
    }

    #[test]
    fn bad_fields_are_named() {
        for (extra, says) in [
            (vec![("window_range", "yesterday")], "Window: choose"),
            (vec![("window_field", "sent")], "Window: give a range"),
            (
                vec![("window_field", "sent"), ("window_range", "last week")],
                "Window: invalid window",
            ),
            (vec![("filter", ".a ==")], "Filter:"),
            (vec![("transform", "tojson |")], "Transform:"),
            (vec![("rate_key", ".mall")], "per-key rate needs both"),
            (vec![("rate_per", "fast")], "per-key rate needs both"),
            (
                vec![("rate_key", ".mall"), ("rate_per", "fast")],
                "Per-key rate:",
            ),
            (vec![("rate", "0/s")], "Global rate:"),
            (vec![("breaker", "150%")], "Breaker:"),
            (vec![("max_count", "0")], "Limit per run:"),
            (vec![("cron", "every day")], "Cron:"),
            (vec![("timezone", "Mars/Olympus")], "Cron:"),
        ] {
            let mut f = form(&BASE);
            for (k, v) in extra {
                f.insert(k.to_string(), v.to_string());
            }
            let e = request(&f).unwrap_err();
            assert!(e.contains(says), "{says}: {e}");
        }
    }
}
