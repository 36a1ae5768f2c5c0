//! The DLQ web console at `/console` (issue 15, first slice; see `docs/console.md`):
//! server-rendered HTML over the engine's browse, minute history and alert states. Read-only:
//! no page changes a message (the browse never receives), and there are no forms that post.
//!
//! - `GET /console`: queues with counts, age of oldest, DLQ ⇄ source links, alert state.
//! - `GET /console/queues/{name}?group=JQ&top=N&after=CURSOR`: counts, the minute-history
//!   chart (inline SVG), a group-by table over the bodies, and the message browser.
//! - `GET /console/queues/{name}/messages/{id}`: one message, pretty-printed.
//! - `GET /console/assets/console.css`: the embedded style sheet.
//!
//! - `GET|POST /console/login`, `POST /console/logout`: the login under `--auth sigv4`.
//!
//! Access ([`guard`]): under `--auth sigv4`, a session opened by a login with a configured
//! access key and its secret ([`session`]); otherwise only loopback peers, unless
//! `--console-public`.

mod chart;
pub mod html;
pub mod session;

use std::collections::HashMap;
use std::fmt::Write;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{ConnectInfo, Path, Query, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use redrive_core::SqsError;
use redrive_core::api::ListQueuesInput;
use redrive_engine::history::HistoryQuery;
use redrive_engine::{BrowseCursor, BrowseQuery, BrowsedMessage, Engine, RequestContext};
use redrive_select::jq::{GroupBy, body_value, from_json};
use redrive_select::selection::{MetaFields, meta};

use crate::AppState;
use crate::auth::Auth;
use html::{age_text, esc, page, time_text, url_part};

const CSS: &str = include_str!("assets/console.css");

/// Messages shown per page of the browser.
const PAGE_SIZE: usize = 50;
/// Most messages a group-by reads (the page says when it stopped early).
const GROUP_SCAN_LIMIT: usize = 100_000;
/// Minutes of history in the chart.
const CHART_MINUTES: u64 = 60;

pub fn routes(state: Arc<AppState>) -> Router<Arc<AppState>> {
    Router::new()
        .route("/console", get(queues_page))
        .route("/console/", get(queues_page))
        .route("/console/assets/console.css", get(css))
        .route("/console/queues/{name}", get(queue_page))
        .route("/console/queues/{name}/messages/{id}", get(message_page))
        .route("/console/login", get(login_form).post(login))
        .route("/console/logout", axum::routing::post(logout))
        .route_layer(axum::middleware::from_fn_with_state(state, guard))
}

const LOGIN_PATH: &str = "/console/login";
const CSS_PATH: &str = "/console/assets/console.css";

/// Why a request may not see the console when authentication is off: only loopback peers get
/// it, unless `console_public`.
fn refusal(console_public: bool, peer: Option<SocketAddr>) -> Option<&'static str> {
    if console_public || peer.is_some_and(|p| p.ip().is_loopback()) {
        return None;
    }
    Some(
        "The console answers only loopback clients unless the server runs with \
         `--console-public` (see docs/console.md).",
    )
}

/// Never served unauthenticated: under `--auth sigv4` every page but the login (and its style
/// sheet) needs a session; without authentication, see [`refusal`].
async fn guard(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    match &state.config.auth {
        Auth::SigV4 { .. } => {
            let path = req.uri().path();
            let open = path == LOGIN_PATH || path == CSS_PATH;
            let logged_in = session::token(req.headers())
                .and_then(|t| state.console_sessions.check(&t))
                .is_some();
            if !open && !logged_in {
                return (
                    StatusCode::SEE_OTHER,
                    [(header::LOCATION, LOGIN_PATH)],
                    "Log in first.\n",
                )
                    .into_response();
            }
        }
        Auth::None => {
            let peer = req
                .extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0);
            if let Some(text) = refusal(state.config.console_public, peer) {
                tracing::info!(?peer, "console refused");
                return refuse(text);
            }
        }
    }
    if let Err(e) = state.engine.ensure_synced() {
        return error_page(StatusCode::SERVICE_UNAVAILABLE, &e.message);
    }
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; img-src 'self' data:; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // Not `no-referrer`: under it browsers send `Origin: null` on a same-site form POST, which
    // the login's origin check must refuse.
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

fn login_page(status: StatusCode, error: Option<&str>) -> Response {
    let error = error.map_or(String::new(), |e| {
        format!("<p class=\"error\" id=\"login-error\">{}</p>", esc(e))
    });
    html_response(
        status,
        page(
            "Log in",
            &format!(
                "<h1>Log in</h1><p>The server checks signatures (<code>--auth sigv4</code>): log in \
                 with one of its access keys and the secret.</p>{error}\
                 <form method=\"post\" action=\"{LOGIN_PATH}\" class=\"login\">\
                 <p><label for=\"access-key\">Access key id</label><br>\
                 <input id=\"access-key\" type=\"text\" name=\"access_key\" autocomplete=\"username\" required autofocus></p>\
                 <p><label for=\"secret\">Secret access key</label><br>\
                 <input id=\"secret\" type=\"password\" name=\"secret\" autocomplete=\"current-password\" required></p>\
                 <p><button type=\"submit\">Log in</button></p></form>"
            ),
        ),
    )
}

async fn login_form(State(state): State<Arc<AppState>>) -> Response {
    match state.config.auth {
        Auth::None => (StatusCode::SEE_OTHER, [(header::LOCATION, "/console")]).into_response(),
        Auth::SigV4 { .. } => login_page(StatusCode::OK, None),
    }
}

async fn login(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Response {
    // A login form is small; anything larger is not one.
    let Ok(body) = crate::http::read_body(body, 16 * 1024).await else {
        return login_page(
            StatusCode::PAYLOAD_TOO_LARGE,
            Some("The form is too large."),
        );
    };
    let form: HashMap<String, String> = form_urlencoded::parse(&body).into_owned().collect();
    let Auth::SigV4 { keys } = &state.config.auth else {
        return (StatusCode::SEE_OTHER, [(header::LOCATION, "/console")]).into_response();
    };
    if !session::same_origin(&headers) {
        return refuse("Cross-site request refused.");
    }
    let access_key = form.get("access_key").map(|s| s.trim()).unwrap_or("");
    let secret = form.get("secret").map(String::as_str).unwrap_or("");
    let known = keys
        .get(access_key)
        .is_some_and(|expected| session::secrets_equal(expected, secret));
    if !known {
        tracing::info!(access_key, "console login refused");
        return login_page(
            StatusCode::UNAUTHORIZED,
            Some("Unknown access key id, or a wrong secret."),
        );
    }
    tracing::info!(access_key, "console login");
    let token = state.console_sessions.open(access_key);
    (
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, "/console".to_string()),
            (header::SET_COOKIE, session::set_cookie(&token)),
        ],
    )
        .into_response()
}

async fn logout(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if !session::same_origin(&headers) {
        return refuse("Cross-site request refused.");
    }
    if let Some(t) = session::token(&headers) {
        state.console_sessions.close(&t);
    }
    (
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, LOGIN_PATH.to_string()),
            (header::SET_COOKIE, session::clear_cookie()),
        ],
    )
        .into_response()
}

fn refuse(text: &'static str) -> Response {
    (
        StatusCode::FORBIDDEN,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("{text}\n"),
    )
        .into_response()
}

fn html_response(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        body,
    )
        .into_response()
}

fn error_page(status: StatusCode, message: &str) -> Response {
    html_response(
        status,
        page(
            "Error",
            &format!(
                "<h1>Error</h1><p class=\"error\">{}</p><p><a href=\"/console\">All queues</a></p>",
                esc(message)
            ),
        ),
    )
}

fn sqs_error_page(e: &SqsError) -> Response {
    let status = StatusCode::from_u16(e.code.status()).unwrap_or(StatusCode::BAD_REQUEST);
    error_page(status, &format!("{}: {}", e.code.shape(), e.message))
}

async fn css() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        CSS,
    )
        .into_response()
}

fn context(state: &AppState, headers: &HeaderMap) -> RequestContext {
    crate::inspect::context(state, headers, &HashMap::new())
}

fn queue_link(name: &str) -> String {
    format!(
        "<a href=\"/console/queues/{}\">{}</a>",
        url_part(name),
        esc(name)
    )
}

/// The queue name at the end of an ARN.
fn arn_name(arn: &str) -> &str {
    arn.rsplit(':').next().unwrap_or(arn)
}

/// The worst alert state of a queue over every rule that watches it (`ALARM` first).
fn alert_state(engine: &Engine, region: &str, queue: &str) -> Option<&'static str> {
    engine
        .alert_rules()
        .iter()
        .flat_map(|r| r.states.iter())
        .filter(|s| s.region == region && s.queue == queue)
        .map(|s| s.state.as_str())
        .min_by_key(|s| match *s {
            "ALARM" => 0,
            "INSUFFICIENT_DATA" => 1,
            _ => 2,
        })
}

fn queue_names(engine: &Engine, ctx: &RequestContext) -> Result<Vec<String>, SqsError> {
    let mut names = Vec::new();
    let mut next_token = None;
    loop {
        let out = engine.list_queues(
            ctx,
            ListQueuesInput {
                queue_name_prefix: None,
                max_results: Some(1000),
                next_token,
            },
        )?;
        names.extend(
            out.queue_urls
                .iter()
                .map(|u| u.rsplit('/').next().unwrap_or(u).to_string()),
        );
        match out.next_token {
            Some(t) => next_token = Some(t),
            None => return Ok(names),
        }
    }
}

async fn queues_page(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let ctx = context(&state, &headers);
    let engine = &state.engine;
    let names = match queue_names(engine, &ctx) {
        Ok(n) => n,
        Err(e) => return sqs_error_page(&e),
    };
    let now = engine.clock_now_ms();
    let mut rows = String::new();
    for name in &names {
        // A queue deleted since the listing is skipped.
        let Ok(s) = engine.queue_summary(&ctx, name) else {
            continue;
        };
        let dlq = s
            .attributes
            .get("RedrivePolicy")
            .and_then(|p| serde_json::from_str::<serde_json::Value>(p).ok())
            .and_then(|p| p["deadLetterTargetArn"].as_str().map(str::to_string));
        let mut links = String::new();
        if let Some(arn) = &dlq {
            let _ = write!(links, "DLQ → {}", queue_link(arn_name(arn)));
        }
        if !s.dead_letter_sources.is_empty() {
            let sources: Vec<String> = s
                .dead_letter_sources
                .iter()
                .map(|n| queue_link(n))
                .collect();
            let _ = write!(links, "DLQ of ← {}", sources.join(", "));
        }
        let age = s
            .oldest_enqueued_ms
            .map_or("–".to_string(), |t| age_text(now.saturating_sub(t)));
        let alert = alert_state(engine, &ctx.region, name)
            .map_or("<span class=\"muted\">no rule</span>".to_string(), |st| {
                format!("<span class=\"state-{st}\">{st}</span>")
            });
        let _ = write!(
            rows,
            "<tr data-queue=\"{}\"><td>{}</td><td class=\"num\" data-field=\"visible\">{}</td>\
             <td class=\"num\" data-field=\"inFlight\">{}</td><td class=\"num\" data-field=\"delayed\">{}</td>\
             <td class=\"num\">{}</td><td>{}</td><td>{}</td></tr>",
            esc(name),
            queue_link(name),
            s.visible,
            s.in_flight,
            s.delayed,
            esc(&age),
            links,
            alert,
        );
    }
    let body = if names.is_empty() {
        format!(
            "<h1>Queues</h1><p class=\"muted\">No queues in {}.</p>",
            esc(&ctx.region)
        )
    } else {
        format!(
            "<h1>Queues <span class=\"muted\">({} in {})</span></h1>\
             <table><thead><tr><th>Queue</th><th class=\"num\">Visible</th>\
             <th class=\"num\">In flight</th><th class=\"num\">Delayed</th>\
             <th class=\"num\">Age of oldest</th><th>Dead-letter links</th><th>Alert</th></tr></thead>\
             <tbody>{rows}</tbody></table>",
            names.len(),
            esc(&ctx.region)
        )
    };
    let mut body = body;
    if let Auth::SigV4 { .. } = state.config.auth {
        body.push_str(
            "<form method=\"post\" action=\"/console/logout\"><p><button type=\"submit\">Log out</button></p></form>",
        );
    }
    html_response(StatusCode::OK, page("Queues", &body))
}

fn message_meta(m: &BrowsedMessage) -> serde_json::Value {
    let mut attributes = serde_json::Map::new();
    attributes.insert("SentTimestamp".into(), m.sent_ms.to_string().into());
    attributes.insert(
        "ApproximateReceiveCount".into(),
        m.receive_count.to_string().into(),
    );
    if let Some(g) = &m.group_id {
        attributes.insert("MessageGroupId".into(), g.clone().into());
    }
    if let Some(s) = &m.dead_letter_source_arn {
        attributes.insert("DeadLetterQueueSourceArn".into(), s.clone().into());
    }
    meta(MetaFields {
        message_id: &m.message_id,
        sent_timestamp: Some(m.sent_ms as i64),
        dead_lettered_at: m.dead_lettered_ms.map(|t| t as i64),
        receive_count: Some(u64::from(m.receive_count)),
        group_id: m.group_id.as_deref(),
        dead_letter_source_arn: m.dead_letter_source_arn.as_deref(),
        attributes: serde_json::Value::Object(attributes),
        message_attributes: serde_json::to_value(&m.message_attributes)
            .unwrap_or(serde_json::Value::Null),
    })
}

/// Counts of each value of `filter` over a queue's messages (read through the browse, so no
/// receive count changes), most frequent first; and how many messages were read.
struct Groups {
    counts: Vec<(String, u64)>,
    scanned: usize,
    truncated: bool,
}

fn group_by(
    engine: &Engine,
    ctx: &RequestContext,
    queue: &str,
    filter: &GroupBy,
) -> Result<Groups, SqsError> {
    let mut counts: HashMap<String, u64> = HashMap::new();
    let mut after = None;
    let mut scanned = 0;
    loop {
        let page = engine.browse_messages(
            ctx,
            queue,
            &BrowseQuery {
                state: None,
                limit: 1000,
                after,
            },
        )?;
        for m in &page.messages {
            let key = filter.key(&body_value(&m.body), &from_json(&message_meta(m)));
            *counts.entry(key).or_default() += 1;
            scanned += 1;
        }
        after = page.next;
        if after.is_none() || scanned >= GROUP_SCAN_LIMIT {
            break;
        }
    }
    let mut counts: Vec<(String, u64)> = counts.into_iter().collect();
    counts.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    Ok(Groups {
        counts,
        scanned,
        truncated: after.is_some(),
    })
}

fn body_preview(body: &str) -> String {
    let one_line: String = body.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut preview: String = one_line.chars().take(140).collect();
    if one_line.chars().count() > 140 {
        preview.push('…');
    }
    preview
}

async fn queue_page(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let ctx = context(&state, &headers);
    let engine = state.engine.clone();
    let summary = match engine.queue_summary(&ctx, &name) {
        Ok(s) => s,
        Err(e) => return sqs_error_page(&e),
    };
    let now = engine.clock_now_ms();
    let mut body = String::new();
    let _ = write!(
        body,
        "<p><a href=\"/console\">← All queues</a></p><h1>{}</h1>\
         <p class=\"muted\"><code>{}</code></p><div class=\"cards\">",
        esc(&name),
        esc(&summary.arn)
    );
    let oldest = summary
        .oldest_enqueued_ms
        .map_or("–".to_string(), |t| age_text(now.saturating_sub(t)));
    for (key, label, value) in [
        ("visible", "visible", summary.visible.to_string()),
        ("inFlight", "in flight", summary.in_flight.to_string()),
        ("delayed", "delayed", summary.delayed.to_string()),
        ("oldest", "age of oldest", oldest),
    ] {
        let _ = write!(
            body,
            "<div class=\"card\" data-field=\"{key}\"><div class=\"v\">{}</div><div class=\"k\">{label}</div></div>",
            esc(&value)
        );
    }
    body.push_str("</div>");
    if !summary.dead_letter_sources.is_empty() {
        let sources: Vec<String> = summary
            .dead_letter_sources
            .iter()
            .map(|n| queue_link(n))
            .collect();
        let _ = write!(body, "<p>Dead-letter queue of {}.</p>", sources.join(", "));
    }
    if let Some(st) = alert_state(&engine, &ctx.region, &name) {
        let _ = write!(body, "<p>Alert: <span class=\"state-{st}\">{st}</span></p>");
    }

    // The chart: the last hour of the minute history (a store read, off the async threads).
    body.push_str("<h2 id=\"history\">Last hour, per minute</h2>");
    let history = {
        let engine = engine.clone();
        let ctx = ctx.clone();
        let name = name.clone();
        let since = (now / 60_000).saturating_sub(CHART_MINUTES - 1) * 60_000;
        tokio::task::spawn_blocking(move || {
            engine.metric_history(
                &ctx,
                &name,
                &HistoryQuery {
                    since_ms: Some(since),
                    until_ms: Some(since + CHART_MINUTES * 60_000),
                    period_secs: 60,
                },
            )
        })
        .await
        .unwrap_or_else(|e| Err(SqsError::internal(format!("history read failed: {e}"))))
    };
    match history {
        Ok(h) => body.push_str(&chart::render(&h)),
        Err(e) => {
            let _ = write!(body, "<p class=\"error\">{}</p>", esc(&e.message));
        }
    }

    // Group-by.
    let group = params
        .get("group")
        .map(|g| g.trim().to_string())
        .filter(|g| !g.is_empty());
    let top: usize = params
        .get("top")
        .and_then(|t| t.parse().ok())
        .filter(|t| (1..=1000).contains(t))
        .unwrap_or(20);
    let _ = write!(
        body,
        "<h2 id=\"group\">Group by</h2>\
         <form class=\"inline\" method=\"get\" action=\"/console/queues/{}#group\">\
         <label for=\"group-input\">jq path</label>\
         <input id=\"group-input\" type=\"text\" name=\"group\" value=\"{}\" placeholder=\".tenant\" accesskey=\"g\">\
         <label for=\"top-input\">top</label>\
         <input id=\"top-input\" type=\"number\" name=\"top\" min=\"1\" max=\"1000\" value=\"{top}\">\
         <button type=\"submit\">Group</button></form>",
        url_part(&name),
        esc(group.as_deref().unwrap_or(""))
    );
    if let Some(expr) = &group {
        match GroupBy::compile(expr) {
            Err(e) => {
                let _ = write!(body, "<p class=\"error\">{}</p>", esc(&e.to_string()));
            }
            Ok(filter) => {
                let result = {
                    let engine = engine.clone();
                    let ctx = ctx.clone();
                    let name = name.clone();
                    tokio::task::spawn_blocking(move || group_by(&engine, &ctx, &name, &filter))
                        .await
                        .unwrap_or_else(|e| {
                            Err(SqsError::internal(format!("group-by failed: {e}")))
                        })
                };
                match result {
                    Err(e) => {
                        let _ = write!(body, "<p class=\"error\">{}</p>", esc(&e.message));
                    }
                    Ok(g) => render_groups(&mut body, expr, &g, top),
                }
            }
        }
    }

    // Message browser.
    let after = params.get("after").and_then(|c| BrowseCursor::decode(c));
    body.push_str("<h2 id=\"messages\">Messages <span class=\"muted\">(oldest first; browsing receives nothing)</span></h2>");
    match engine.browse_messages(
        &ctx,
        &name,
        &BrowseQuery {
            state: None,
            limit: PAGE_SIZE,
            after,
        },
    ) {
        Err(e) => {
            let _ = write!(body, "<p class=\"error\">{}</p>", esc(&e.message));
        }
        Ok(page_of) => {
            body.push_str(
                "<table id=\"message-table\"><thead><tr><th>Message</th><th>State</th>\
                 <th>Sent</th><th>Dead-lettered</th><th class=\"num\">Receives</th>\
                 <th>From</th><th>Body</th></tr></thead><tbody>",
            );
            for m in &page_of.messages {
                let _ = write!(
                    body,
                    "<tr><td><a href=\"/console/queues/{}/messages/{}\"><code>{}</code></a></td>\
                     <td>{}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td><td>{}</td>\
                     <td class=\"body\">{}</td></tr>",
                    url_part(&name),
                    url_part(&m.message_id),
                    esc(&m.message_id.chars().take(8).collect::<String>()),
                    m.state.as_str(),
                    esc(&time_text(m.sent_ms)),
                    m.dead_lettered_ms.map_or("–".into(), time_text),
                    m.receive_count,
                    m.dead_letter_source_arn
                        .as_deref()
                        .map_or("–".into(), |a| esc(arn_name(a))),
                    esc(&body_preview(&m.body)),
                );
            }
            body.push_str("</tbody></table><nav class=\"pager\">");
            if after.is_some() {
                let _ = write!(
                    body,
                    "<a href=\"/console/queues/{}#messages\">First page</a>",
                    url_part(&name)
                );
            }
            if let Some(next) = page_of.next {
                let mut href = format!(
                    "/console/queues/{}?after={}",
                    url_part(&name),
                    url_part(&next.encode())
                );
                if let Some(g) = &group {
                    let _ = write!(href, "&group={}&top={top}", url_part(g));
                }
                let _ = write!(
                    body,
                    "<a href=\"{}#messages\" accesskey=\"n\" rel=\"next\">Next page →</a>",
                    esc(&href)
                );
            }
            body.push_str("</nav>");
        }
    }
    html_response(StatusCode::OK, page(&name, &body))
}

fn render_groups(body: &mut String, expr: &str, g: &Groups, top: usize) {
    let _ = write!(
        body,
        "<p class=\"muted\">{} messages read, {} distinct values of <code>{}</code>{}.</p>\
         <table id=\"group-table\"><thead><tr><th>Value</th><th class=\"num\">Messages</th>\
         <th class=\"num\">Share</th></tr></thead><tbody>",
        g.scanned,
        g.counts.len(),
        esc(expr),
        if g.truncated {
            format!(" (stopped after the first {GROUP_SCAN_LIMIT})")
        } else {
            String::new()
        }
    );
    for (value, count) in g.counts.iter().take(top) {
        let share = 100.0 * *count as f64 / g.scanned.max(1) as f64;
        let _ = write!(
            body,
            "<tr><td><code>{}</code></td><td class=\"num\" data-count=\"{count}\">{count}</td>\
             <td class=\"num\">{share:.1}%</td></tr>",
            esc(value)
        );
    }
    body.push_str("</tbody></table>");
    if g.counts.len() > top {
        let rest: u64 = g.counts.iter().skip(top).map(|(_, c)| c).sum();
        let _ = write!(
            body,
            "<p class=\"muted\">{} more values ({rest} messages) not shown.</p>",
            g.counts.len() - top
        );
    }
}

fn find_message(
    engine: &Engine,
    ctx: &RequestContext,
    queue: &str,
    id: &str,
) -> Result<Option<BrowsedMessage>, SqsError> {
    let mut after = None;
    loop {
        let page = engine.browse_messages(
            ctx,
            queue,
            &BrowseQuery {
                state: None,
                limit: 1000,
                after,
            },
        )?;
        if let Some(m) = page.messages.into_iter().find(|m| m.message_id == id) {
            return Ok(Some(m));
        }
        after = page.next;
        if after.is_none() {
            return Ok(None);
        }
    }
}

fn pretty_body(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| body.to_string())
}

async fn message_page(
    State(state): State<Arc<AppState>>,
    Path((name, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let ctx = context(&state, &headers);
    let found = {
        let engine = state.engine.clone();
        let (name, id, ctx) = (name.clone(), id.clone(), ctx.clone());
        tokio::task::spawn_blocking(move || find_message(&engine, &ctx, &name, &id))
            .await
            .unwrap_or_else(|e| Err(SqsError::internal(format!("browse failed: {e}"))))
    };
    let m = match found {
        Err(e) => return sqs_error_page(&e),
        Ok(None) => {
            return error_page(
                StatusCode::NOT_FOUND,
                &format!("No message {id} in {name} (it may have been deleted or moved)."),
            );
        }
        Ok(Some(m)) => m,
    };
    let mut body = String::new();
    let _ = write!(
        body,
        "<p><a href=\"/console/queues/{}#messages\" accesskey=\"b\">← {}</a></p>\
         <h1>Message <code>{}</code></h1><table id=\"message-facts\"><tbody>",
        url_part(&name),
        esc(&name),
        esc(&m.message_id)
    );
    let facts: Vec<(&str, String)> = vec![
        ("State", m.state.as_str().to_string()),
        ("Sent", time_text(m.sent_ms)),
        ("Receive count", m.receive_count.to_string()),
        (
            "First received",
            m.first_receive_ms.map_or("–".into(), time_text),
        ),
        (
            "Dead-lettered",
            m.dead_lettered_ms.map_or("–".into(), time_text),
        ),
        (
            "DeadLetterQueueSourceArn",
            m.dead_letter_source_arn.clone().unwrap_or("–".into()),
        ),
        ("MessageGroupId", m.group_id.clone().unwrap_or("–".into())),
        ("Sender", m.sender_id.clone()),
    ];
    for (k, v) in facts {
        let _ = write!(body, "<tr><th>{}</th><td>{}</td></tr>", esc(k), esc(&v));
    }
    body.push_str("</tbody></table><h2>Body</h2>");
    let _ = write!(
        body,
        "<pre id=\"message-body\">{}</pre>",
        esc(&pretty_body(&m.body))
    );
    body.push_str("<h2>Message attributes</h2>");
    if m.message_attributes.is_empty() {
        body.push_str("<p class=\"muted\">None.</p>");
    } else {
        body.push_str(
            "<table id=\"message-attributes\"><thead><tr><th>Name</th><th>Type</th><th>Value</th></tr></thead><tbody>",
        );
        for (k, v) in &m.message_attributes {
            let value = serde_json::to_value(v).unwrap_or(serde_json::Value::Null);
            let shown = value
                .get("StringValue")
                .or_else(|| value.get("BinaryValue"))
                .map(|v| v.as_str().map_or(v.to_string(), str::to_string))
                .unwrap_or_default();
            let data_type = value.get("DataType").and_then(|t| t.as_str()).unwrap_or("");
            let _ = write!(
                body,
                "<tr><td><code>{}</code></td><td>{}</td><td><code>{}</code></td></tr>",
                esc(k),
                esc(data_type),
                esc(&shown)
            );
        }
        body.push_str("</tbody></table>");
    }
    html_response(StatusCode::OK, page(&format!("{name} message"), &body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_without_auth_unless_public() {
        let local: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let local6: SocketAddr = "[::1]:5000".parse().unwrap();
        let remote: SocketAddr = "10.1.2.3:5000".parse().unwrap();
        assert_eq!(refusal(false, Some(local)), None);
        assert_eq!(refusal(false, Some(local6)), None);
        assert!(refusal(false, Some(remote)).unwrap().contains("loopback"));
        assert!(refusal(false, None).is_some());
        assert_eq!(refusal(true, Some(remote)), None);
    }
}
