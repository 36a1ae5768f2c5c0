//! Selective replay from the console: the CLI's options as a form, a dry run that shows the
//! server's exact preview, a confirmation that starts the replay, a progress page that reloads
//! itself until the replay ends and then shows its summary, and cancel (confirmed). Every call
//! goes to the same engine functions as `/_redrive/v1/replays` (`Engine::start_replay`,
//! `replay`, `replay_moves`, `cancel_replay`); options are parsed by `redrive-select` as on the
//! CLI (`--rate 5/s`, `--rate-per .mall 2/s`, `--breaker 20%/5m/10`).

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::Arc;

use axum::extract::{Extension, Path, Query, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode, header};
use redrive_engine::replays::{
    DryRun, RatePer, ReplayError, ReplayRequest, ReplayStart, ReplayStatus, ReplayTask,
};
use redrive_select::breaker::BreakerSpec;
use redrive_select::jq::GroupBy;
use redrive_select::pacing::parse_rate;
use redrive_select::selection::SelectionSpec;

use super::html::{MoveRow, csrf_field, esc, hidden, page, page_refreshing, time_text, url_part};
use super::{
    PostForm, Visitor, arn_name, body_preview, context, error_page, html_response, queue_link,
    sqs_error_page,
};
use crate::AppState;

/// Messages shown in a dry run's sample by default (at most 100, the engine's limit).
const DEFAULT_SAMPLE: usize = 10;
/// Seconds between reloads of a running replay's page.
const REFRESH_SECS: u32 = 1;
/// Moves listed on a finished replay's page.
const MOVES_SHOWN: usize = 50;

/// The replay form's fields, as typed (kept as text so the form can be shown again).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReplayForm {
    pub filter: String,
    pub transform: String,
    pub destination: String,
    pub rate: String,
    pub rate_key: String,
    pub rate_per: String,
    pub limit: String,
    pub breaker: String,
    pub no_provenance: bool,
    pub sample: String,
}

const FIELDS: [&str; 9] = [
    "filter",
    "transform",
    "destination",
    "rate",
    "rate_key",
    "rate_per",
    "limit",
    "breaker",
    "sample",
];

impl ReplayForm {
    pub fn from_map(m: &HashMap<String, String>) -> ReplayForm {
        let f = |k: &str| m.get(k).map(|v| v.trim().to_string()).unwrap_or_default();
        ReplayForm {
            filter: f("filter"),
            transform: f("transform"),
            destination: f("destination"),
            rate: f("rate"),
            rate_key: f("rate_key"),
            rate_per: f("rate_per"),
            limit: f("limit"),
            breaker: f("breaker"),
            no_provenance: m.get("no_provenance").is_some_and(|v| !v.is_empty()),
            sample: f("sample"),
        }
    }

    fn value(&self, name: &str) -> &str {
        match name {
            "filter" => &self.filter,
            "transform" => &self.transform,
            "destination" => &self.destination,
            "rate" => &self.rate,
            "rate_key" => &self.rate_key,
            "rate_per" => &self.rate_per,
            "limit" => &self.limit,
            "breaker" => &self.breaker,
            "sample" => &self.sample,
            _ => "",
        }
    }

    /// The replay request these fields make (a dry run; the caller flips `dry_run`), or what
    /// is wrong with them, in the CLI's words.
    pub fn request(&self, source: &str) -> Result<ReplayRequest, String> {
        let opt = |s: &str| (!s.is_empty()).then(|| s.to_string());
        let rate = opt(&self.rate)
            .map(|r| parse_rate(&r).map_err(|e| format!("Global rate: {e}")))
            .transpose()?;
        let rate_per = match (opt(&self.rate_key), opt(&self.rate_per)) {
            (None, None) => None,
            (Some(key), Some(r)) => {
                GroupBy::compile(&key).map_err(|e| format!("Per-key rate key: {e}"))?;
                let rate = parse_rate(&r).map_err(|e| format!("Per-key rate: {e}"))?;
                Some(RatePer { key, rate })
            }
            _ => {
                return Err(
                    "A per-key rate needs both a key (e.g. .mall) and a rate (e.g. 2/s).".into(),
                );
            }
        };
        let limit = opt(&self.limit)
            .map(|l| {
                l.parse::<u64>()
                    .ok()
                    .filter(|n| *n >= 1)
                    .ok_or_else(|| format!("Limit: `{l}` is not a whole number of at least 1."))
            })
            .transpose()?;
        let breaker = opt(&self.breaker)
            .map(|b| BreakerSpec::parse(&b).map_err(|e| format!("Breaker: {e}")))
            .transpose()?;
        let sample = match opt(&self.sample) {
            None => DEFAULT_SAMPLE,
            Some(s) => s
                .parse::<usize>()
                .ok()
                .filter(|n| *n <= 100)
                .ok_or_else(|| format!("Sample: `{s}` is not a number from 0 to 100."))?,
        };
        Ok(ReplayRequest {
            source: source.to_string(),
            destination: opt(&self.destination),
            selection: SelectionSpec {
                filter: opt(&self.filter),
                limit,
                ..Default::default()
            },
            transform: opt(&self.transform),
            rate,
            rate_per,
            breaker,
            provenance: !self.no_provenance,
            dry_run: true,
            sample: Some(sample),
            requested_by: None,
        })
    }

    /// Hidden fields carrying these options through the confirmation.
    fn hidden_fields(&self) -> String {
        let mut out: String = FIELDS.iter().map(|f| hidden(f, self.value(f))).collect();
        if self.no_provenance {
            out.push_str(&hidden("no_provenance", "on"));
        }
        out
    }

    /// The query string that shows the form again with these options.
    fn query(&self) -> String {
        let mut q = form_urlencoded::Serializer::new(String::new());
        for f in FIELDS {
            if !self.value(f).is_empty() {
                q.append_pair(f, self.value(f));
            }
        }
        if self.no_provenance {
            q.append_pair("no_provenance", "on");
        }
        q.finish()
    }
}

fn input(id: &str, label: &str, value: &str, placeholder: &str, hint: &str) -> String {
    format!(
        "<p><label for=\"{id}\">{label}</label><input id=\"{id}\" type=\"text\" name=\"{id}\" \
         value=\"{}\" placeholder=\"{}\"><span class=\"hint\">{}</span></p>",
        esc(value),
        esc(placeholder),
        esc(hint)
    )
}

/// The replay form (a GET: a dry run changes nothing).
fn form_html(queue: &str, f: &ReplayForm, error: Option<&str>) -> String {
    let mut out = String::new();
    if let Some(e) = error {
        let _ = write!(out, "<p class=\"error\" id=\"replay-error\">{}</p>", esc(e));
    }
    let _ = write!(
        out,
        "<form class=\"stack\" id=\"replay-form\" method=\"get\" action=\"/console/queues/{}/replay\">\
         {}{}{}{}{}{}{}{}{}\
         <p><label for=\"no_provenance\">No provenance</label><input id=\"no_provenance\" type=\"checkbox\" \
         name=\"no_provenance\"{}><span class=\"hint\">do not add the Redrive.Replay attribute</span></p>\
         <input type=\"hidden\" name=\"preview\" value=\"1\">\
         <p><button type=\"submit\" class=\"primary\" id=\"dry-run\">Dry run</button> \
         <span class=\"hint\">shows exactly what would move; nothing moves until you confirm</span></p></form>",
        url_part(queue),
        input(
            "filter",
            "Filter (jq)",
            &f.filter,
            ".mall == \"alpha\"",
            "over the body, with $meta; empty = every visible message"
        ),
        input(
            "transform",
            "Transform (jq)",
            &f.transform,
            ".retry = true | tojson",
            "new body; must yield a string"
        ),
        input(
            "destination",
            "Destination queue",
            &f.destination,
            "each message's source queue",
            "name, URL or ARN"
        ),
        input(
            "rate_key",
            "Per-key rate: key (jq)",
            &f.rate_key,
            ".mall",
            "one pace per value of this key"
        ),
        input(
            "rate_per",
            "Per-key rate",
            &f.rate_per,
            "2/s",
            "N/s, N/m or N/h per key value"
        ),
        input(
            "rate",
            "Global rate",
            &f.rate,
            "adaptive",
            "N/s, N/m or N/h over all messages"
        ),
        input(
            "limit",
            "Limit",
            &f.limit,
            "no limit",
            "at most this many messages, oldest first"
        ),
        input(
            "breaker",
            "Circuit breaker",
            &f.breaker,
            "20%/5m/10",
            "SHARE[/WINDOW[/MIN]]: stop when replayed messages come back"
        ),
        input(
            "sample",
            "Preview sample",
            &f.sample,
            "10",
            "messages shown in the dry run (0–100)"
        ),
        if f.no_provenance { " checked" } else { "" },
    );
    out
}

fn heading(queue: &str) -> String {
    format!(
        "<p><a href=\"/console/queues/{}\">← {}</a></p><h1>Selective replay of {}</h1>",
        url_part(queue),
        esc(queue),
        esc(queue)
    )
}

/// `GET /console/queues/{name}/replay[?preview=1&…]`: the form; with `preview`, the dry run.
pub async fn replay_page(
    State(state): State<Arc<AppState>>,
    Extension(visitor): Extension<Visitor>,
    Path(queue): Path<String>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let ctx = context(&state, &headers);
    let summary = match state.engine.load_queue_summary(&ctx, &queue).await {
        Ok(s) => s,
        Err(e) => return sqs_error_page(&e),
    };
    let f = ReplayForm::from_map(&params);
    let mut body = heading(&queue);
    let _ = write!(
        body,
        "<p>{} visible messages in the DLQ. The replay moves the selected ones to each message's \
         source queue (or the destination below), paced and watched by the breaker; the same \
         engine as <code>redrive replay</code> against this server.</p>",
        summary.visible
    );
    if let Some(running) = running_replay(&state, &ctx, &queue) {
        let _ = write!(
            body,
            "<p class=\"notice\">A replay is running on this queue: <a href=\"/console/replays/{}\">{}</a>.</p>",
            url_part(&running),
            esc(&running)
        );
    }
    if !params.contains_key("preview") {
        body.push_str(&form_html(&queue, &f, None));
        return html_response(StatusCode::OK, page(&format!("Replay {queue}"), &body));
    }
    let req = match f.request(&queue) {
        Ok(r) => r,
        Err(e) => {
            body.push_str(&form_html(&queue, &f, Some(&e)));
            return html_response(
                StatusCode::BAD_REQUEST,
                page(&format!("Replay {queue}"), &body),
            );
        }
    };
    let for_pacing = req.clone();
    match state.engine.start_replay(&ctx, req).await {
        Ok(ReplayStart::DryRun(d)) => {
            let pacing = pacing_html(&state, &ctx, for_pacing, &d).await;
            body.push_str(&preview_html(&queue, &f, &d, &visitor, &pacing, None));
            html_response(StatusCode::OK, page(&format!("Replay {queue}"), &body))
        }
        Ok(ReplayStart::Started(_)) => error_page(
            StatusCode::INTERNAL_SERVER_ERROR,
            "A dry run started a replay.",
        ),
        Err(e) => {
            body.push_str(&form_html(&queue, &f, Some(&replay_error_text(&e))));
            html_response(
                StatusCode::BAD_REQUEST,
                page(&format!("Replay {queue}"), &body),
            )
        }
    }
}

fn replay_error_text(e: &ReplayError) -> String {
    match e {
        ReplayError::Sqs(e) => e.message.clone(),
        ReplayError::Running { replay_id } => {
            format!("A replay is already running on this queue: {replay_id}.")
        }
    }
}

fn running_replay(
    state: &AppState,
    ctx: &redrive_engine::RequestContext,
    queue: &str,
) -> Option<String> {
    state
        .engine
        .list_replays(ctx, Some(queue))
        .ok()?
        .into_iter()
        .find(|t| t.status.is_active())
        .map(|t| t.id)
}

/// The dry run's exact preview and the confirmation form.
fn preview_html(
    queue: &str,
    f: &ReplayForm,
    d: &DryRun,
    visitor: &Visitor,
    pacing: &str,
    notice: Option<&str>,
) -> String {
    let mut out = String::new();
    if let Some(n) = notice {
        let _ = write!(
            out,
            "<p class=\"notice\" id=\"replay-notice\">{}</p>",
            esc(n)
        );
    }
    let _ = write!(
        out,
        "<h2 id=\"preview\">Dry run</h2><p id=\"preview-summary\"><strong id=\"preview-selected\" \
         data-count=\"{sel}\">{sel}</strong> of {scanned} visible messages would move\
         {errors}{not_visible}.</p>",
        sel = d.selected,
        scanned = d.scanned,
        errors = if d.filter_errors > 0 {
            format!("; the filter failed on {} (not selected)", d.filter_errors)
        } else {
            String::new()
        },
        not_visible = if d.not_visible > 0 {
            format!("; {} in flight are not considered", d.not_visible)
        } else {
            String::new()
        },
    );
    out.push_str(&options_table(&request_summary(f)));
    if !d.destinations.is_empty() {
        out.push_str(
            "<table id=\"preview-destinations\" class=\"options\"><thead><tr><th>Destination</th>\
             <th class=\"num\">Messages</th></tr></thead><tbody>",
        );
        for dest in &d.destinations {
            let _ = write!(
                out,
                "<tr><td>{}</td><td class=\"num\" data-count=\"{c}\">{c}</td></tr>",
                queue_link(&dest.name),
                c = dest.count
            );
        }
        out.push_str("</tbody></table>");
    }
    out.push_str(pacing);
    if !d.sample.is_empty() {
        let _ = write!(
            out,
            "<h3>Sample ({} of {}, oldest first, bodies after the transform)</h3>\
             <table id=\"preview-sample\"><thead><tr><th>Message</th><th>To</th><th>Sent</th>\
             <th>Dead-lettered</th><th>Body</th></tr></thead><tbody>",
            d.sample.len(),
            d.selected
        );
        for m in &d.sample {
            let _ = write!(
                out,
                "<tr><td><a href=\"/console/queues/{}/messages/{}\"><code>{}</code></a></td><td>{}</td>\
                 <td>{}</td><td>{}</td><td class=\"body\">{}</td></tr>",
                url_part(queue),
                url_part(&m.message_id),
                esc(&m.message_id.chars().take(8).collect::<String>()),
                esc(arn_name(&m.destination)),
                esc(&time_text(m.sent_timestamp)),
                m.dead_lettered_at.map_or("–".into(), time_text),
                esc(&body_preview(&m.body)),
            );
        }
        out.push_str("</tbody></table>");
    }
    let edit = format!(
        "<a href=\"/console/queues/{}/replay?{}\" id=\"edit-replay\">Change the options</a>",
        url_part(queue),
        esc(&f.query())
    );
    if d.selected == 0 {
        let _ = write!(
            out,
            "<p class=\"notice\">Nothing to replay with these options.</p><p>{edit}</p>"
        );
        return out;
    }
    let _ = write!(
        out,
        "<form class=\"confirm\" id=\"confirm-form\" method=\"post\" action=\"/console/queues/{}/replay\">\
         {}{}{}<p><strong>Confirm:</strong> move these {n} messages out of <code>{}</code> now? \
         This is <code>redrive replay --yes</code>: each message is deleted from the DLQ and sent \
         to its destination.</p><div class=\"actions\">\
         <button type=\"submit\" class=\"danger\" id=\"confirm-replay\">Replay {n} messages</button>\
         {edit}</div></form>",
        url_part(queue),
        csrf_field(&visitor.csrf),
        hidden("expected", &d.selected.to_string()),
        f.hidden_fields(),
        esc(queue),
        n = d.selected,
    );
    out
}

/// (label, value) rows describing a replay's options.
fn request_summary(f: &ReplayForm) -> Vec<(&'static str, String)> {
    let or = |v: &str, d: &str| {
        if v.is_empty() {
            d.to_string()
        } else {
            v.to_string()
        }
    };
    vec![
        ("Filter", or(&f.filter, "(every visible message)")),
        ("Transform", or(&f.transform, "(none: bodies unchanged)")),
        (
            "Destination",
            or(&f.destination, "each message's source queue"),
        ),
        (
            "Per-key rate",
            if f.rate_key.is_empty() {
                "(none)".into()
            } else {
                format!("{} per value of {}", f.rate_per, f.rate_key)
            },
        ),
        ("Global rate", or(&f.rate, "adaptive")),
        ("Limit", or(&f.limit, "(none)")),
        ("Breaker", or(&f.breaker, "(none)")),
        (
            "Provenance",
            if f.no_provenance {
                "off"
            } else {
                "Redrive.Replay attribute"
            }
            .into(),
        ),
    ]
}

fn options_table(rows: &[(&str, String)]) -> String {
    let mut out = String::from("<table class=\"options\"><tbody>");
    for (k, v) in rows {
        let _ = write!(
            out,
            "<tr><th>{}</th><td><code>{}</code></td></tr>",
            esc(k),
            esc(v)
        );
    }
    out.push_str("</tbody></table>");
    out
}

/// `POST /console/queues/{name}/replay`: the confirmation. The selection is computed again
/// and must still be the previewed count; then the replay starts (audited).
pub async fn start_replay(
    State(state): State<Arc<AppState>>,
    Extension(visitor): Extension<Visitor>,
    Extension(form): Extension<PostForm>,
    Path(queue): Path<String>,
    headers: HeaderMap,
) -> Response {
    let ctx = context(&state, &headers);
    let f = ReplayForm::from_map(&form.0);
    let mut req = match f.request(&queue) {
        Ok(r) => r,
        Err(e) => {
            let body = heading(&queue) + &form_html(&queue, &f, Some(&e));
            return html_response(StatusCode::BAD_REQUEST, page("Replay", &body));
        }
    };
    let expected: Option<u64> = form.get("expected").and_then(|e| e.parse().ok());
    // The preview must still hold: the DLQ may have changed since.
    let again = match state.engine.start_replay(&ctx, req.clone()).await {
        Ok(ReplayStart::DryRun(d)) => d,
        Ok(ReplayStart::Started(_)) => {
            return error_page(StatusCode::INTERNAL_SERVER_ERROR, "A dry run started.");
        }
        Err(e) => {
            let body = heading(&queue) + &form_html(&queue, &f, Some(&replay_error_text(&e)));
            return html_response(StatusCode::BAD_REQUEST, page("Replay", &body));
        }
    };
    if expected != Some(again.selected) {
        let body = heading(&queue)
            + &preview_html(
                &queue,
                &f,
                &again,
                &visitor,
                "",
                Some(&format!(
                    "The DLQ changed since the preview: {} messages would move now, not {}. \
                     Nothing was moved; review and confirm again.",
                    again.selected,
                    expected.map_or("?".into(), |e| e.to_string())
                )),
            );
        return html_response(StatusCode::CONFLICT, page("Replay", &body));
    }
    req.dry_run = false;
    req.sample = None;
    req.requested_by = Some(format!("console:{}", visitor.actor));
    match state.engine.start_replay(&ctx, req).await {
        Ok(ReplayStart::Started(task)) => {
            super::audit::record(
                &state.engine,
                &visitor.actor,
                "replay.start",
                &queue,
                &format!(
                    "replay {}: {} selected; filter {}; per-key rate {}",
                    task.id,
                    task.selected,
                    if f.filter.is_empty() {
                        "(none)"
                    } else {
                        &f.filter
                    },
                    if f.rate_key.is_empty() {
                        "(none)".to_string()
                    } else {
                        format!("{} per {}", f.rate_per, f.rate_key)
                    }
                ),
            )
            .await;
            see_other(&format!("/console/replays/{}", url_part(&task.id)))
        }
        Ok(ReplayStart::DryRun(_)) => error_page(
            StatusCode::INTERNAL_SERVER_ERROR,
            "The replay did not start.",
        ),
        Err(ReplayError::Running { replay_id }) => error_page_html(
            StatusCode::CONFLICT,
            &format!(
                "A replay is already running on this queue: <a href=\"/console/replays/{}\">{}</a>. \
                 Nothing was started.",
                url_part(&replay_id),
                esc(&replay_id)
            ),
        ),
        Err(ReplayError::Sqs(e)) => sqs_error_page(&e),
    }
}

pub(super) fn see_other(location: &str) -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response()
}

/// An error page whose message is already HTML.
pub(super) fn error_page_html(status: StatusCode, message_html: &str) -> Response {
    html_response(
        status,
        page(
            "Error",
            &format!(
                "<h1>Error</h1><p class=\"error\">{message_html}</p><p><a href=\"/console\">All queues</a></p>"
            ),
        ),
    )
}

fn status_text(s: ReplayStatus) -> &'static str {
    match s {
        ReplayStatus::Running => "RUNNING",
        ReplayStatus::Cancelling => "CANCELLING",
        ReplayStatus::Cancelled => "CANCELLED",
        ReplayStatus::Completed => "COMPLETED",
        ReplayStatus::Failed => "FAILED",
        ReplayStatus::Tripped => "TRIPPED",
    }
}

fn status_span(s: ReplayStatus) -> String {
    let t = status_text(s);
    format!("<span class=\"status-{t}\">{t}</span>")
}

/// `GET /console/replays[?source=Q]`: replays, newest first.
pub async fn replays_page(
    State(state): State<Arc<AppState>>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let ctx = context(&state, &headers);
    let source = params.get("source").filter(|s| !s.is_empty());
    let tasks = match state
        .engine
        .load_replays(&ctx, source.map(String::as_str))
        .await
    {
        Ok(t) => t,
        Err(e) => return sqs_error_page(&e),
    };
    let mut body = format!(
        "<h1>Replays{}</h1><p class=\"muted\">Start one from a DLQ's page (Selective replay…). \
         The same tasks as <code>GET /_redrive/v1/replays</code>, newest first.</p>",
        source.map_or(String::new(), |s| format!(" of {}", esc(s)))
    );
    if tasks.is_empty() {
        body.push_str("<p class=\"muted\">No replays.</p>");
    } else {
        body.push_str(
            "<table id=\"replay-table\"><thead><tr><th>Replay</th><th>DLQ</th><th>Status</th>\
             <th class=\"num\">Moved</th><th class=\"num\">Selected</th><th>Started</th>\
             <th>Requested by</th></tr></thead><tbody>",
        );
        for t in &tasks {
            let _ = write!(
                body,
                "<tr><td><a href=\"/console/replays/{}\"><code>{}</code></a></td><td>{}</td><td>{}</td>\
                 <td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td><td>{}</td></tr>",
                url_part(&t.id),
                esc(&t.id.chars().take(8).collect::<String>()),
                queue_link(arn_name(&t.source)),
                status_span(t.status),
                t.moved,
                t.selected,
                esc(&time_text(t.started_at)),
                esc(t.requested_by.as_deref().unwrap_or("–")),
            );
        }
        body.push_str("</tbody></table>");
    }
    html_response(StatusCode::OK, page("Replays", &body))
}

fn spec_rows(t: &ReplayTask) -> Vec<(&'static str, String)> {
    let s = &t.spec;
    vec![
        (
            "Filter",
            s.selection
                .filter
                .clone()
                .unwrap_or("(every visible message)".into()),
        ),
        ("Transform", s.transform.clone().unwrap_or("(none)".into())),
        (
            "Destination",
            t.destination
                .as_deref()
                .map_or("each message's source queue".into(), |d| {
                    arn_name(d).to_string()
                }),
        ),
        (
            "Per-key rate",
            s.rate_per.as_ref().map_or("(none)".into(), |r| {
                format!("{} per value of {}", rate_text(r.rate), r.key)
            }),
        ),
        ("Global rate", s.rate.map_or("adaptive".into(), rate_text)),
        (
            "Limit",
            s.selection.limit.map_or("(none)".into(), |l| l.to_string()),
        ),
        (
            "Breaker",
            s.breaker.as_ref().map_or("(none)".into(), |b| {
                format!(
                    "{}% returned within {}s (after {})",
                    b.max_return_share * 100.0,
                    b.window_secs,
                    b.min_replayed
                )
            }),
        ),
        ("Requested by", t.requested_by.clone().unwrap_or("–".into())),
    ]
}

/// `GET /console/replays/{id}`: live progress (the page reloads itself every second while the
/// replay runs), then the summary.
pub async fn replay_progress(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let ctx = context(&state, &headers);
    let t = match state.engine.load_replay(&id).await {
        Ok(t) => t,
        Err(e) => return sqs_error_page(&e),
    };
    let queue = arn_name(&t.source).to_string();
    let active = t.status.is_active();
    let mut body = String::new();
    let _ = write!(
        body,
        "<p><a href=\"/console/queues/{q}\">← {}</a> · <a href=\"/console/replays?source={q}\">Replays of this queue</a></p>\
         <h1>Replay <code>{}</code>: <span id=\"replay-status\" data-status=\"{st}\" class=\"status-{st}\">{st}</span></h1>",
        esc(&queue),
        esc(&t.id),
        q = url_part(&queue),
        st = status_text(t.status),
    );
    let done = t.moved + t.failed + t.skipped;
    let _ = write!(
        body,
        "<p><progress id=\"replay-progress\" max=\"{}\" value=\"{done}\">{done} of {}</progress> \
         {done} of {} handled{}</p><div class=\"cards\">",
        t.selected.max(1),
        t.selected,
        t.selected,
        if active {
            " · this page reloads every second"
        } else {
            ""
        }
    );
    let dlq_visible = state
        .engine
        .queue_summary(&ctx, &queue)
        .map_or("–".into(), |s| s.visible.to_string());
    for (key, label, value) in [
        ("selected", "selected", t.selected.to_string()),
        ("moved", "moved", t.moved.to_string()),
        ("remaining", "remaining", t.remaining.to_string()),
        ("failed", "failed", t.failed.to_string()),
        ("skipped", "skipped (gone)", t.skipped.to_string()),
        ("returned", "came back to the DLQ", t.returned.to_string()),
        ("dlqVisible", "visible in the DLQ now", dlq_visible),
    ] {
        let _ = write!(
            body,
            "<div class=\"card\" data-field=\"{key}\"><div class=\"v\">{}</div><div class=\"k\">{label}</div></div>",
            esc(&value)
        );
    }
    body.push_str("</div>");
    if t.status == ReplayStatus::Running {
        let _ = write!(
            body,
            "<p class=\"actions\"><a href=\"/console/replays/{}/cancel\" id=\"cancel-replay\" class=\"button\">Cancel this replay…</a></p>",
            url_part(&t.id)
        );
    }
    if !active {
        let took = t.ended_at.map_or(String::new(), |e| {
            format!(
                " in {}",
                super::html::age_text(e.saturating_sub(t.started_at))
            )
        });
        let _ = write!(
            body,
            "<h2 id=\"replay-summary\">Summary</h2><p id=\"summary-text\">{st}: moved {} of {} selected{took}; \
             {} failed, {} skipped, {} came back to the DLQ.{}</p>",
            t.moved,
            t.selected,
            t.failed,
            t.skipped,
            t.returned,
            t.failure_reason
                .as_deref()
                .map_or(String::new(), |r| format!(" Reason: {}.", esc(r))),
            st = status_text(t.status),
        );
    }
    // The newest moves, newest first (the move log's `n` counts the moves, so the newest N
    // are the ones after moved − N); with the page's reload, a live list.
    let after = t.moved.saturating_sub(MOVES_SHOWN as u64);
    if let Ok((moves, _)) = state
        .engine
        .load_replay_moves(&t.id, after, MOVES_SHOWN)
        .await
    {
        let rows: Vec<MoveRow> = moves
            .iter()
            .rev()
            .map(|m| MoveRow {
                message_id: m.from.clone(),
                new_id: m.to.clone(),
                key: m.key.clone(),
                destination: m.destination.clone(),
                at_ms: m.at,
                outcome: "moved".into(),
            })
            .collect();
        body.push_str(&super::html::recent_moves(
            &format!(
                "(the newest {} of {} moved, newest first{})",
                rows.len(),
                t.moved,
                if active { "; live" } else { "" },
            ),
            &rows,
        ));
    }
    body.push_str("<h2>Options</h2>");
    body.push_str(&options_table(&spec_rows(&t)));
    let _ = write!(
        body,
        "<p class=\"muted\">Started {}{}.</p>",
        esc(&time_text(t.started_at)),
        t.ended_at
            .map_or(String::new(), |e| format!(", ended {}", time_text(e)))
    );
    html_response(
        StatusCode::OK,
        page_refreshing(
            &format!("Replay {}", &t.id),
            &body,
            active.then_some(REFRESH_SECS),
        ),
    )
}

/// `GET /console/replays/{id}/cancel`: the confirmation.
pub async fn cancel_confirm(
    State(state): State<Arc<AppState>>,
    Extension(visitor): Extension<Visitor>,
    Path(id): Path<String>,
) -> Response {
    let t = match state.engine.load_replay(&id).await {
        Ok(t) => t,
        Err(e) => return sqs_error_page(&e),
    };
    let body = format!(
        "<h1>Cancel replay <code>{}</code>?</h1>\
         <form class=\"confirm\" id=\"confirm-cancel-form\" method=\"post\" action=\"/console/replays/{id_q}/cancel\">{}\
         <p>{} of {} moved so far. Cancelling stops it after the message in hand; the {} not yet \
         moved stay in <code>{}</code>. Moved messages are not brought back.</p>\
         <div class=\"actions\"><button type=\"submit\" class=\"danger\" id=\"confirm-cancel\">Yes, cancel the replay</button>\
         <a href=\"/console/replays/{id_q}\">No, back to its progress</a></div></form>",
        esc(&t.id),
        csrf_field(&visitor.csrf),
        t.moved,
        t.selected,
        t.remaining,
        esc(arn_name(&t.source)),
        id_q = url_part(&t.id),
    );
    html_response(StatusCode::OK, page("Cancel replay", &body))
}

/// `POST /console/replays/{id}/cancel` (audited).
pub async fn cancel(
    State(state): State<Arc<AppState>>,
    Extension(visitor): Extension<Visitor>,
    Path(id): Path<String>,
) -> Response {
    match state.engine.cancel_replay(&id).await {
        Ok(t) => {
            super::audit::record(
                &state.engine,
                &visitor.actor,
                "replay.cancel",
                arn_name(&t.source),
                &format!("replay {}: {} of {} moved", t.id, t.moved, t.selected),
            )
            .await;
            see_other(&format!("/console/replays/{}", url_part(&t.id)))
        }
        Err(e) => sqs_error_page(&e),
    }
}

/// Most selected messages the per-key table is shown for (the engine's largest sample).
const PACING_TABLE_MAX: u64 = 100;

/// With a per-key rate: the selected messages per key value and how long each key's share
/// takes at that rate (and the whole at the global rate). The keys come from a second dry run
/// of the same selection without the transform (the selection does not depend on it), whose
/// sample is then every selected message with its original body; shown when at most
/// [`PACING_TABLE_MAX`] are selected and the key does not read `$meta` (the sample carries
/// bodies only).
async fn pacing_html(
    state: &AppState,
    ctx: &redrive_engine::RequestContext,
    mut req: ReplayRequest,
    d: &DryRun,
) -> String {
    let n = d.selected;
    let mut out = String::new();
    let duration = |count: u64, rate: f64| {
        if count <= 1 {
            "immediately".to_string()
        } else {
            let secs = (count - 1) as f64 / rate;
            if secs < 60.0 {
                format!("≈ {secs:.1}s")
            } else {
                format!("≈ {}", super::html::age_text((secs * 1000.0) as u64))
            }
        }
    };
    if let Some(rate) = req.rate {
        let _ = write!(
            out,
            "<p id=\"preview-global-pace\">At the global rate ({}) the {n} messages take {}.</p>",
            rate_text(rate),
            duration(n, rate)
        );
    }
    let Some(per) = req.rate_per.clone() else {
        return out;
    };
    if n == 0 || n > PACING_TABLE_MAX || per.key.contains("$meta") {
        return out;
    }
    let Ok(key) = GroupBy::compile(&per.key) else {
        return out;
    };
    req.transform = None;
    req.sample = Some(PACING_TABLE_MAX as usize);
    let Ok(ReplayStart::DryRun(all)) = state.engine.start_replay(ctx, req).await else {
        return out;
    };
    if all.selected != n || all.sample.len() as u64 != n {
        return out;
    }
    let empty = redrive_select::jq::from_json(&serde_json::json!({}));
    let mut counts: HashMap<String, u64> = HashMap::new();
    for m in &all.sample {
        *counts
            .entry(key.key(&redrive_select::jq::body_value(&m.body), &empty))
            .or_default() += 1;
    }
    let mut counts: Vec<(String, u64)> = counts.into_iter().collect();
    counts.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let _ = write!(
        out,
        "<table id=\"preview-keys\" class=\"options\"><thead><tr><th>{}</th><th class=\"num\">Messages</th>\
         <th>At {} per value</th></tr></thead><tbody>",
        esc(&per.key),
        rate_text(per.rate)
    );
    for (value, count) in &counts {
        let _ = write!(
            out,
            "<tr><td><code>{}</code></td><td class=\"num\" data-count=\"{count}\">{count}</td><td>{}</td></tr>",
            esc(value),
            duration(*count, per.rate)
        );
    }
    out.push_str("</tbody></table>");
    out
}

/// A rate as people write it: `5/s`, `30/m`, `2/h` (three decimals at most).
pub(super) fn rate_text(per_second: f64) -> String {
    let num = |x: f64| {
        let t = format!("{x:.3}");
        t.trim_end_matches('0').trim_end_matches('.').to_string()
    };
    if per_second >= 1.0 {
        format!("{}/s", num(per_second))
    } else if per_second * 60.0 >= 1.0 {
        format!("{}/m", num(per_second * 60.0))
    } else {
        format!("{}/h", num(per_second * 3600.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_fields_make_the_clis_request() {
        let m: HashMap<String, String> = [
            ("filter", ".mall == \"alpha\""),
            ("rate_key", ".mall"),
            ("rate_per", "2/s"),
            ("rate", "30/m"),
            ("limit", "5"),
            ("breaker", "20%/5m/10"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let f = ReplayForm::from_map(&m);
        let r = f.request("dlq").unwrap();
        assert_eq!(r.selection.filter.as_deref(), Some(".mall == \"alpha\""));
        assert_eq!(
            r.rate_per,
            Some(RatePer {
                key: ".mall".into(),
                rate: 2.0
            })
        );
        assert_eq!(r.rate, Some(0.5));
        assert_eq!(r.selection.limit, Some(5));
        assert_eq!(r.breaker.unwrap().window_secs, 300);
        assert!(r.dry_run && r.provenance);
        // Round trip through the confirmation's hidden fields and the edit link.
        let back: HashMap<String, String> = form_urlencoded::parse(f.query().as_bytes())
            .into_owned()
            .collect();
        assert_eq!(ReplayForm::from_map(&back), f);

        let bad = |k: &str, v: &str| {
            let m = HashMap::from([(k.to_string(), v.to_string())]);
            ReplayForm::from_map(&m).request("dlq").unwrap_err()
        };
        assert!(bad("rate", "fast").contains("Global rate"));
        assert!(bad("rate_key", ".mall").contains("needs both"));
        assert!(bad("limit", "0").contains("Limit"));
        assert!(bad("breaker", "lots").contains("Breaker"));
        assert!(bad("sample", "500").contains("Sample"));
        assert_eq!(rate_text(5.0), "5/s");
        assert_eq!(rate_text(0.5), "30/m");
        assert_eq!(rate_text(1.0 / 60.0), "1/m");
        assert_eq!(rate_text(2.0 / 3600.0), "2/h");
        assert_eq!(rate_text(2.5), "2.5/s");
    }
}
