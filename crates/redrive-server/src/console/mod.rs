//! The DLQ web console at `/console` (issue 15; see `docs/console.md`): server-rendered HTML
//! over the engine's browse, minute history and alert states, and actions through the same
//! engine functions as the APIs. No GET changes anything (the browse never receives).
//!
//! - `GET /console`: queues with counts, age of oldest, DLQ ⇄ source links, alert state.
//! - `GET /console/queues/{name}?group=JQ[&group=JQ…]&top=N&after=CURSOR`: counts, the
//!   minute-history chart (inline SVG), group-by tables over the bodies (one per key, and the
//!   combined one), and the message browser.
//! - `GET /console/queues/{name}/messages/{id}`: one message, pretty-printed.
//! - Selective replay (`replay.rs`): `GET|POST /console/queues/{name}/replay`,
//!   `GET /console/replays[/{id}]`, `GET|POST /console/replays/{id}/cancel`.
//! - Move tasks, schedules, alerts, the audit page (`ops.rs`).
//! - `GET /console/assets/console.css`: the embedded style sheet.
//! - `GET|POST /console/login`, `POST /console/logout`: the login under `--auth sigv4`.
//!
//! Access ([`guard`]): under `--auth sigv4`, a session opened by a login with a configured
//! access key and its secret ([`session`]); otherwise only loopback peers, unless
//! `--console-public`. Every POST but the login must come from the console's origin and carry
//! the browser's CSRF token (`check_post`); actions are audited ([`audit`]).

pub mod alerts_view;
pub mod audit;
pub mod chart;
pub mod html;
pub mod message_view;
mod ops;
mod replay;
pub mod schedule_form;
pub mod session;
pub mod stats_view;

use std::collections::HashMap;
use std::fmt::Write;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{ConnectInfo, Extension, Path, Query, RawQuery, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use redrive_core::SqsError;
use redrive_engine::history::HistoryQuery;
use redrive_engine::{BrowseCursor, BrowseQuery, BrowsedMessage, Engine, RequestContext};
use redrive_select::selection::{Candidate, MetaFields, Selection, SelectionSpec, Verdict, meta};
use redrive_select::stats::{Aggregate, Sample};

use crate::AppState;
use crate::auth::Auth;
use html::{age_text, esc, page, time_text, url_part};
use stats_view::StatsQuery;

/// The console's Content-Security-Policy: no script at all, styles from the console only.
pub const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self' data:; \
                       form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The console's style sheet (also served by `redrive console`).
pub const CSS: &str = include_str!("assets/console.css");

/// Messages shown per page of the browser.
const PAGE_SIZE: usize = 50;
/// Most messages a group-by reads (the page says when it stopped early).
const GROUP_SCAN_LIMIT: usize = 100_000;
/// Minutes of history in the chart.
const CHART_MINUTES: u64 = 60;
/// Minutes of a DLQ's history searched for its dominant dead-letter minute (24 h, as
/// `redrive status`).
const BURST_SEARCH_MINUTES: u64 = 24 * 60;

pub fn routes(state: Arc<AppState>) -> Router<Arc<AppState>> {
    Router::new()
        .route("/console", get(queues_page))
        .route("/console/", get(queues_page))
        .route("/console/assets/console.css", get(css))
        .route("/console/queues/{name}", get(queue_page))
        .route("/console/queues/{name}/messages/{id}", get(message_page))
        .route(
            "/console/queues/{name}/replay",
            get(replay::replay_page).post(replay::start_replay),
        )
        .route("/console/replays", get(replay::replays_page))
        .route("/console/replays/{id}", get(replay::replay_progress))
        .route(
            "/console/replays/{id}/cancel",
            get(replay::cancel_confirm).post(replay::cancel),
        )
        .merge(ops::routes())
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

/// Who is at the browser, as the guard established it: passed to every handler.
#[derive(Debug, Clone)]
pub struct Visitor {
    /// The access key id under `--auth sigv4`, else `local:PEER-IP`.
    pub actor: String,
    /// The CSRF token this browser's forms must carry (empty before a login).
    pub csrf: String,
}

/// The fields of a console POST, read (and its CSRF token checked) by the guard.
#[derive(Debug, Clone, Default)]
pub struct PostForm(pub HashMap<String, String>);

impl PostForm {
    /// A trimmed field, `None` when absent or blank.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(|v| v.trim()).filter(|v| !v.is_empty())
    }
}

/// Largest console form.
const MAX_FORM_BYTES: usize = 64 * 1024;

/// Never served unauthenticated: under `--auth sigv4` every page but the login (and its style
/// sheet) needs a session; without authentication, see [`refusal`]. Every POST but the login
/// must come from the console's own origin and carry the browser's CSRF token.
async fn guard(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    let mut new_csrf_cookie = None;
    let visitor = match &state.config.auth {
        Auth::SigV4 { .. } => {
            let open = path == LOGIN_PATH || path == CSS_PATH;
            let session = match session::token(req.headers()) {
                Some(t) => state.console_sessions.check(&t).await,
                None => None,
            };
            match session {
                Some(s) => Visitor {
                    actor: s.access_key,
                    csrf: s.csrf,
                },
                None if open => Visitor {
                    actor: "anonymous".into(),
                    csrf: String::new(),
                },
                None => {
                    return (
                        StatusCode::SEE_OTHER,
                        [(header::LOCATION, LOGIN_PATH)],
                        "Log in first.\n",
                    )
                        .into_response();
                }
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
            let csrf = match session::cookie(req.headers(), session::CSRF_COOKIE)
                .filter(|t| session::is_token(t))
            {
                Some(t) => t,
                None => {
                    let t = session::new_token();
                    // Not from the style sheet: a page and its sheet load together, and the
                    // page's forms carry the page's token.
                    if path != CSS_PATH {
                        new_csrf_cookie = Some(t.clone());
                    }
                    t
                }
            };
            Visitor {
                actor: format!("local:{}", peer.map_or("?".into(), |p| p.ip().to_string())),
                csrf,
            }
        }
    };
    if let Err(e) = state.engine.ensure_synced() {
        return error_page(StatusCode::SERVICE_UNAVAILABLE, &e.message);
    }
    let mut req = req;
    if req.method() == http::Method::POST && path != LOGIN_PATH {
        req = match check_post(&state, &visitor, req).await {
            Ok(r) => r,
            Err(refused) => return refused,
        };
    }
    req.extensions_mut().insert(visitor);
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    if let Some(t) = new_csrf_cookie
        && let Ok(v) = HeaderValue::from_str(&session::set_csrf_cookie(&t))
    {
        h.append(header::SET_COOKIE, v);
    }
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // Not `no-referrer`: under it browsers send `Origin: null` on a same-site form POST, which
    // the origin check must refuse.
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// A console POST passes when its `Origin` (if any) is the console's host and its form's
/// `csrf` field equals the browser's token; the form is handed on as [`PostForm`]. A refusal
/// (403, nothing changed) is audited.
async fn check_post(
    state: &AppState,
    visitor: &Visitor,
    req: Request,
) -> Result<Request, Response> {
    let (mut parts, body) = req.into_parts();
    let path = parts.uri.path().to_string();
    let refused = async |reason: &str| {
        audit::record(&state.engine, &visitor.actor, "post.refused", &path, reason).await;
        refuse_owned(format!("Refused: {reason}. Nothing was changed."))
    };
    if !session::same_origin(&parts.headers) {
        return Err(refused("cross-site request (Origin is another site)").await);
    }
    let Ok(bytes) = crate::http::read_body(body, MAX_FORM_BYTES).await else {
        return Err(error_page(
            StatusCode::PAYLOAD_TOO_LARGE,
            "The form is too large.",
        ));
    };
    let form: HashMap<String, String> = form_urlencoded::parse(&bytes).into_owned().collect();
    let token_ok = !visitor.csrf.is_empty()
        && form
            .get("csrf")
            .is_some_and(|t| session::secrets_equal(t, &visitor.csrf));
    if !token_ok {
        return Err(refused("CSRF token missing or wrong").await);
    }
    parts.extensions.insert(PostForm(form));
    Ok(Request::from_parts(parts, axum::body::Body::from(bytes)))
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
        audit::record(
            &state.engine,
            access_key,
            "login.refused",
            "",
            "unknown access key id or wrong secret",
        )
        .await;
        return login_page(
            StatusCode::UNAUTHORIZED,
            Some("Unknown access key id, or a wrong secret."),
        );
    }
    tracing::info!(access_key, "console login");
    audit::record(&state.engine, access_key, "login", "", "").await;
    let token = match state.console_sessions.open(access_key).await {
        Ok(token) => token,
        Err(e) => return error_page(StatusCode::SERVICE_UNAVAILABLE, &e),
    };
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
        if let Some(s) = state.console_sessions.check(&t).await {
            audit::record(&state.engine, &s.access_key, "logout", "", "").await;
        }
        state.console_sessions.close(&t).await;
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
    refuse_owned(text.to_string())
}

fn refuse_owned(text: String) -> Response {
    html_response(
        StatusCode::FORBIDDEN,
        page(
            "Refused",
            &format!(
                "<h1>Refused</h1><p class=\"error\" id=\"refused\">{}</p>\
                 <p><a href=\"/console\">Queues</a></p>",
                esc(&text)
            ),
        ),
    )
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
    html::queue_link(name)
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

async fn queues_page(
    State(state): State<Arc<AppState>>,
    Extension(visitor): Extension<Visitor>,
    headers: HeaderMap,
) -> Response {
    let ctx = context(&state, &headers);
    let engine = &state.engine;
    let names = match engine.load_queue_names(&ctx).await {
        Ok(n) => n,
        Err(e) => return sqs_error_page(&e),
    };
    if let Err(e) = engine.sync_alerts().await {
        return sqs_error_page(&e);
    }
    let now = engine.clock_now_ms();
    let mut rows = String::new();
    for name in &names {
        // A queue deleted since the listing is skipped.
        let Ok(s) = engine.load_queue_summary(&ctx, name).await else {
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
        let _ = write!(
            body,
            "<form method=\"post\" action=\"/console/logout\">{}<p>Logged in as <code>{}</code> \
             <button type=\"submit\">Log out</button></p></form>",
            html::csrf_field(&visitor.csrf),
            esc(&visitor.actor)
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

/// The DLQ page's aggregation (the one `redrive stats` computes) over a queue's messages,
/// read through the browse (so no receive count changes), at most [`GROUP_SCAN_LIMIT`]; and
/// whether it stopped early.
async fn aggregate(
    engine: &Arc<Engine>,
    ctx: &RequestContext,
    queue: &str,
    agg: &mut Aggregate,
) -> Result<bool, SqsError> {
    let mut after = None;
    let mut scanned = 0;
    loop {
        let page = browse_from(engine, ctx, queue, 1000, after).await?;
        for m in &page.messages {
            agg.add(
                &Sample {
                    body: &m.body,
                    sent_ms: Some(m.sent_ms as i64),
                    dead_lettered_ms: m.dead_lettered_ms.map(|t| t as i64),
                    receive_count: Some(u64::from(m.receive_count)),
                },
                || message_meta(m),
            );
            scanned += 1;
        }
        after = page.next;
        if after.is_none() || scanned >= GROUP_SCAN_LIMIT {
            break;
        }
    }
    Ok(after.is_some())
}

/// One page of a queue's messages (every state) from `after`, on either store.
async fn browse_from(
    engine: &Arc<Engine>,
    ctx: &RequestContext,
    queue: &str,
    limit: usize,
    after: Option<BrowseCursor>,
) -> Result<redrive_engine::BrowsePage, SqsError> {
    let query = BrowseQuery {
        state: None,
        limit,
        after,
    };
    engine.load_messages(ctx, queue, &query).await
}

/// Messages browsed past at most to find one page of matches of a filter.
const FILTER_SCAN_LIMIT: usize = 10_000;

/// One page of the browser under a filter: browse pages of [`PAGE_SIZE`] from `after`, keeping
/// the messages the filter selects (a failing filter does not select), until a page's worth
/// is found or [`FILTER_SCAN_LIMIT`] were looked at; `next` continues after the last page read.
async fn filtered_page(
    engine: &Arc<Engine>,
    ctx: &RequestContext,
    queue: &str,
    sel: &Selection,
    mut after: Option<BrowseCursor>,
) -> Result<redrive_engine::BrowsePage, SqsError> {
    let mut messages = Vec::new();
    let mut looked = 0;
    loop {
        let page = browse_from(engine, ctx, queue, PAGE_SIZE, after).await?;
        looked += page.messages.len();
        for m in page.messages {
            let meta = message_meta(&m);
            let verdict = sel.judge(&Candidate {
                body: &m.body,
                meta: &meta,
                sent_ms: Some(m.sent_ms as i64),
                dead_lettered_ms: m.dead_lettered_ms.map(|t| t as i64),
            });
            if verdict == Verdict::Selected {
                messages.push(m);
            }
        }
        after = page.next;
        if after.is_none() || messages.len() >= PAGE_SIZE || looked >= FILTER_SCAN_LIMIT {
            return Ok(redrive_engine::BrowsePage {
                messages,
                next: after,
            });
        }
    }
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
    RawQuery(raw_query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let ctx = context(&state, &headers);
    let engine = state.engine.clone();
    let summary = match engine.load_queue_summary(&ctx, &name).await {
        Ok(s) => s,
        Err(e) => return sqs_error_page(&e),
    };
    if let Err(e) = engine.sync_alerts().await {
        return sqs_error_page(&e);
    }
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
        let _ = write!(
            body,
            "<p class=\"actions\"><a href=\"/console/queues/{q}/replay\" id=\"replay-link\">Selective replay…</a>\
             <a href=\"/console/moves?source={q}#start\">Move all (native move task)…</a>\
             <a href=\"/console/replays?source={q}\">Replays of this queue</a></p>",
            q = url_part(&name)
        );
    }
    if let Some(st) = alert_state(&engine, &ctx.region, &name) {
        let _ = write!(body, "<p>Alert: <span class=\"state-{st}\">{st}</span></p>");
    }
    let _ = write!(
        body,
        "<p class=\"actions\"><a href=\"/console/queues/{}/purge\" class=\"button\" id=\"purge-link\">Purge…</a></p>",
        url_part(&name)
    );

    // The chart: the last hour of the minute history (a store read, off the async threads);
    // on a DLQ with the burst window marked: the dominant dead-letter minute of the last 24
    // hours, as `redrive status` finds it (in a chart of its own when older than the hour).
    body.push_str("<h2 id=\"history\">Last hour, per minute</h2>");
    let is_dlq = !summary.dead_letter_sources.is_empty();
    let since = (now / 60_000).saturating_sub(CHART_MINUTES - 1) * 60_000;
    let charts = charts(&engine, &ctx, &name, since, is_dlq).await;
    match charts {
        Ok((hour, window)) => {
            body.push_str(&chart::render_data(&hour));
            if let Some(w) = window {
                body.push_str("<h2 id=\"burst-history\">Burst window, per minute</h2>");
                body.push_str(&chart::render_data(&w));
            }
        }
        Err(e) => {
            let _ = write!(body, "<p class=\"error\">{}</p>", esc(&e.message));
        }
    }

    // Aggregations: jq keys (`?group=.mall&group=.command`), time buckets, enrich mapping.
    let sq = StatsQuery::parse(raw_query.as_deref());
    let _ = write!(
        body,
        "<h2 id=\"group\">Group by</h2>\
         <form class=\"inline\" method=\"get\" action=\"/console/queues/{}#group\">{}\
         <button type=\"submit\">Group</button></form>",
        url_part(&name),
        sq.fields_html()
    );
    if sq.wanted() {
        match sq.compile() {
            Err(e) => {
                let _ = write!(body, "<p class=\"error\">{}</p>", esc(&e));
            }
            Ok((mut agg, mapping)) => {
                let result = aggregate(&engine, &ctx, &name, &mut agg)
                    .await
                    .map(|t| (agg, t));
                match result {
                    Err(e) => {
                        let _ = write!(body, "<p class=\"error\">{}</p>", esc(&e.message));
                    }
                    Ok((agg, truncated)) => {
                        let note = if truncated {
                            format!(" (stopped after the first {GROUP_SCAN_LIMIT})")
                        } else {
                            String::new()
                        };
                        body.push_str(&stats_view::render(&agg, mapping.as_ref(), sq.top, &note));
                    }
                }
            }
        }
    }

    // Message browser, optionally filtered by jq (the replay's filter: `Selection::judge`).
    let after = params.get("after").and_then(|c| BrowseCursor::decode(c));
    let filter = params
        .get("filter")
        .map(|f| f.trim().to_string())
        .filter(|f| !f.is_empty());
    body.push_str("<h2 id=\"messages\">Messages <span class=\"muted\">(oldest first; browsing receives nothing)</span></h2>");
    let _ = write!(
        body,
        "<form class=\"inline\" method=\"get\" action=\"/console/queues/{}#messages\">\
         <label for=\"filter-input\">filter (jq over the body and <code>$meta</code>, as a replay's)</label>\
         <input id=\"filter-input\" type=\"text\" name=\"filter\" size=\"50\" value=\"{}\" \
         placeholder=\".mall == &quot;alpha&quot;\" accesskey=\"f\"><button type=\"submit\">Filter</button></form>",
        url_part(&name),
        esc(filter.as_deref().unwrap_or(""))
    );
    let listed = match &filter {
        None => browse_from(&engine, &ctx, &name, PAGE_SIZE, after).await,
        Some(f) => match Selection::compile(&SelectionSpec {
            filter: Some(f.clone()),
            ..SelectionSpec::default()
        }) {
            Err(e) => Err(SqsError::invalid_value("filter", f, &e.to_string())),
            Ok(sel) => filtered_page(&engine, &ctx, &name, &sel, after).await,
        },
    };
    match listed {
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
                    "<a href=\"/console/queues/{}{}#messages\">First page</a>",
                    url_part(&name),
                    filter
                        .as_deref()
                        .map_or(String::new(), |f| format!("?filter={}", url_part(f)))
                );
            }
            if let Some(next) = page_of.next {
                let mut href = format!(
                    "/console/queues/{}?after={}",
                    url_part(&name),
                    url_part(&next.encode())
                );
                if sq.wanted() {
                    let _ = write!(href, "&{}", sq.to_query());
                }
                if let Some(f) = &filter {
                    let _ = write!(href, "&filter={}", url_part(f));
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

/// The chart of the last hour from `since`, and on a DLQ the burst window's own chart when its
/// dominant dead-letter minute (of the last day) is older than the hour.
async fn charts(
    engine: &Arc<Engine>,
    ctx: &RequestContext,
    name: &str,
    since: u64,
    is_dlq: bool,
) -> Result<(chart::ChartData, Option<chart::ChartData>), SqsError> {
    let read = |since_ms: u64, until_ms: u64| async move {
        let query = HistoryQuery {
            since_ms: Some(since_ms),
            until_ms: Some(until_ms),
            period_secs: 60,
        };
        engine.queue_metric_history(ctx, name, &query).await
    };
    let until = since + CHART_MINUTES * 60_000;
    let burst = if is_dlq {
        let day = read(until.saturating_sub(BURST_SEARCH_MINUTES * 60_000), until).await?;
        chart::dominant_dead_letter_minute(&day)
    } else {
        None
    };
    let hour = chart::ChartData::from_history(&read(since, until).await?).with_burst(burst);
    let window = match burst {
        Some((minute, _)) if minute < since => {
            let (start, end) = redrive_select::stats::burst_window(minute);
            Some(chart::ChartData::from_history(&read(start, end).await?).with_burst(burst))
        }
        _ => None,
    };
    Ok((hour, window))
}

async fn find_message(
    engine: &Arc<Engine>,
    ctx: &RequestContext,
    queue: &str,
    id: &str,
) -> Result<Option<BrowsedMessage>, SqsError> {
    let mut after = None;
    loop {
        let page = browse_from(engine, ctx, queue, 1000, after).await?;
        if let Some(m) = page.messages.into_iter().find(|m| m.message_id == id) {
            return Ok(Some(m));
        }
        after = page.next;
        if after.is_none() {
            return Ok(None);
        }
    }
}

async fn message_page(
    State(state): State<Arc<AppState>>,
    Path((name, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let ctx = context(&state, &headers);
    let found = find_message(&state.engine, &ctx, &name, &id).await;
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
         <h1>Message <code>{}</code></h1>",
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
    let mut actions = String::new();
    if m.dead_letter_source_arn.is_some() {
        let filter = format!("$meta.messageId == \"{}\"", m.message_id);
        let _ = write!(
            actions,
            "<p class=\"actions\"><a href=\"/console/queues/{}/replay?preview=1&amp;filter={}\" id=\"replay-one\">\
             Replay this message…</a> <span class=\"muted\">(a dry run first)</span></p>",
            url_part(&name),
            url_part(&filter)
        );
    }
    let attributes: Vec<(String, serde_json::Value)> = m
        .message_attributes
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                serde_json::to_value(v).unwrap_or(serde_json::Value::Null),
            )
        })
        .collect();
    body.push_str(&message_view::render(
        &facts,
        &actions,
        &m.body,
        attributes.iter().map(|(k, v)| (k, v)),
    ));
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
