//! `redrive console`: the DLQ web console on localhost against any SQS endpoint (issue 15;
//! see docs/console.md, "`redrive console` against any endpoint").
//!
//! The pages are built from the server console's pieces (`redrive_server::console::html`,
//! `chart`, the style sheet and its CSP); the data comes from `redrive_cli`: the connection is
//! resolved like the AWS CLI ([`ConnArgs`]), messages are read through [`Source`] (the browse
//! API on a Redrive server, else ReceiveMessage, never deleting), group-by tables through
//! [`Stats`], the minute chart through [`redrive_cli::metrics`] (a Redrive server's history or
//! CloudWatch), and a replay runs the CLI's client-side receive/send/delete path with its
//! journal (the audit log, `./redrive-audit/<dlq>.ndjson` as for `redrive replay`).
//!
//! Served on a loopback address only. No GET changes a queue (on the receive path a GET with
//! `read=N` does hide messages for the visibility timeout, which the page says); every POST
//! must come from the console's origin and carry the console's CSRF token.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use aws_sdk_sqs::types::QueueAttributeName;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use clap::Args;
use http::{HeaderValue, StatusCode, header};
use redrive_cli::client::{Conn, QueueRef};
use redrive_cli::cloudwatch;
use redrive_cli::metrics::{MetricsPlan, MetricsSource, MetricsTable};
use redrive_cli::movetask;
use redrive_cli::replay::{self, Interrupt, ReplayPlan, ReplayResult, Summary};
use redrive_cli::schedule;
use redrive_cli::source::{Message, Source, approximate_count};
use redrive_cli::stats::sample;
use redrive_cli::util::now_ms;
use redrive_select::breaker::BreakerSpec;
use redrive_select::jq::GroupBy;
use redrive_select::pacing::parse_rate;
use redrive_select::selection::{Candidate, Selection, SelectionSpec, Transform, Verdict};
use redrive_server::console::alerts_view;
use redrive_server::console::chart::{ChartData, render_data};
use redrive_server::console::html::{
    MoveRow, age_text, csrf_field, esc, hidden, page_with_nav, time_text, url_part,
};
use redrive_server::console::message_view;
use redrive_server::console::schedule_form;
use redrive_server::console::session;
use redrive_server::console::stats_view::{self, StatsQuery};
use serde_json::{Value, json};

use crate::investigate::ConnArgs;

/// `redrive console`
#[derive(Debug, Args)]
pub struct ConsoleArgs {
    /// Port on 127.0.0.1 (0: any free port; the URL is printed).
    #[arg(long, default_value_t = 9325)]
    port: u16,
    /// Address to listen on: loopback only (127.0.0.1, ::1); anything else is refused.
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// Open the console in the default browser.
    #[arg(long)]
    open: bool,
    /// Seconds a message read on the receive path stays hidden (browsing and replay scans).
    #[arg(long, default_value_t = 30)]
    visibility_timeout: i32,
    #[command(flatten)]
    conn: ConnArgs,
}

/// Messages listed on a queue page, and read at most for its group-by.
const PAGE_MESSAGES: usize = 50;
const MAX_READ: usize = 10_000;
/// Queues described on the queues page.
const MAX_QUEUES: usize = 500;
/// Minutes of history in the chart.
const CHART_MINUTES: u64 = 60;

const NAV: &str = "<a href=\"/console\">Queues</a>\
                   <a href=\"/console/replays\" accesskey=\"r\">Replays</a>\
                   <a href=\"/console/schedules\">Schedules</a>\
                   <a href=\"/console/alerts\" accesskey=\"a\">Alerts</a>\
                   <a href=\"/console/audit\">Audit log</a>";
/// The CLI's audit logs (`redrive replay`'s default directory, relative to where the console
/// was started).
const AUDIT_DIR: &str = "redrive-audit";
/// Runs shown on the audit page at most.
const AUDIT_RUNS: usize = 500;

struct Console {
    conn: Conn,
    /// The CSRF token every form carries (one per console process; the page is only readable
    /// from this origin).
    csrf: String,
    /// `127.0.0.1:PORT` (and `localhost:PORT`): the only Host / Origin accepted.
    hosts: Vec<String>,
    visibility_timeout: i32,
    runs: Mutex<Vec<Run>>,
    /// The messages listed by the last reads, by (queue, message id), for their pages (on
    /// the receive path a message read is hidden for the visibility timeout, so its page
    /// shows what was read rather than receiving it again). Bounded by [`MAX_SEEN`].
    seen: Mutex<HashMap<(String, String), Message>>,
}

/// Most messages kept for their pages.
const MAX_SEEN: usize = 10_000;

/// A replay started from this console.
struct Run {
    id: String,
    dlq: String,
    /// The run's journal, its length when the run started, and the dry run's selected count:
    /// progress is the `deleted` records appended since.
    journal: std::path::PathBuf,
    journal_start: u64,
    selected: Option<u64>,
    started_ms: i64,
    preview: String,
    state: RunState,
    cancel: tokio::sync::watch::Sender<u64>,
}

enum RunState {
    Running,
    Done(Box<Summary>, String),
    Failed(String),
}

pub async fn run_console(a: ConsoleArgs) -> Result<u8> {
    if !a.host.is_loopback() {
        bail!(
            "--host {}: `redrive console` serves loopback addresses only (it acts with your AWS credentials)",
            a.host
        );
    }
    if !(1..=43_200).contains(&a.visibility_timeout) {
        bail!("--visibility-timeout must be between 1 and 43200 seconds");
    }
    let conn = a.conn.connect().await?;
    // Our events on stderr (runs started and ended, refused POSTs; never a message body), as
    // quiet about the SDK as the other CLI commands.
    let filter = tracing_subscriber::EnvFilter::try_from_env("REDRIVE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("redrive=info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
    let listener = tokio::net::TcpListener::bind(SocketAddr::new(a.host, a.port))
        .await
        .with_context(|| format!("cannot listen on {}:{}", a.host, a.port))?;
    let addr = listener.local_addr()?;
    let host = match addr.ip() {
        IpAddr::V6(ip) => format!("[{ip}]"),
        IpAddr::V4(ip) => ip.to_string(),
    };
    let state = Arc::new(Console {
        conn,
        csrf: session::new_token(),
        hosts: vec![
            format!("{host}:{}", addr.port()),
            format!("localhost:{}", addr.port()),
        ],
        visibility_timeout: a.visibility_timeout,
        runs: Mutex::new(Vec::new()),
        seen: Mutex::new(HashMap::new()),
    });
    let url = format!("http://{host}:{}/console", addr.port());
    println!("redrive console: {url}");
    let endpoint = state.conn.endpoint_url.as_deref().unwrap_or("AWS");
    eprintln!(
        "reading {endpoint} (region {}); Ctrl-C stops",
        state.conn.region
    );
    if a.open {
        open_browser(&url);
    }
    let app = Router::new()
        .route("/", get(|| async { redirect("/console") }))
        .route("/console", get(queues_page))
        .route("/console/", get(queues_page))
        .route("/console/assets/console.css", get(css))
        .route("/console/queues/{name}", get(queue_page))
        .route("/console/queues/{name}/messages/{id}", get(message_page))
        .route(
            "/console/queues/{name}/replay",
            get(replay_form).post(replay_post),
        )
        .route(
            "/console/queues/{name}/purge",
            get(purge_form).post(purge_post),
        )
        .route(
            "/console/queues/{name}/moves",
            get(moves_page).post(move_start),
        )
        .route(
            "/console/queues/{name}/moves/cancel",
            get(move_cancel_form).post(move_cancel_post),
        )
        .route("/console/schedules", get(schedules_page).post(schedule_add))
        .route("/console/schedules/{id}", get(schedule_runs_page))
        .route(
            "/console/schedules/{id}/remove",
            get(schedule_remove_form).post(schedule_remove_post),
        )
        .route(
            "/console/queues/{name}/alarms",
            get(alarms_page).post(alarm_add),
        )
        .route(
            "/console/queues/{name}/alarms/{alarm}/delete",
            get(alarm_delete_form).post(alarm_delete_post),
        )
        .route("/console/alerts", get(alerts_page))
        .route("/console/alerts/rules", post(rule_add))
        .route(
            "/console/alerts/rules/{id}/remove",
            get(rule_remove_form).post(rule_remove_post),
        )
        .route("/console/alerts/silences", post(silence_add))
        .route(
            "/console/alerts/silences/{id}/remove",
            post(silence_remove_post),
        )
        .route("/console/replays", get(runs_page))
        .route("/console/audit", get(audit_page))
        .route("/console/replays/{id}", get(run_page))
        .route("/console/replays/{id}/cancel", post(cancel_post))
        .layer(axum::middleware::from_fn_with_state(state.clone(), guard))
        .with_state(state);
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .context("console server")?;
    Ok(0)
}

fn open_browser(url: &str) {
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else if cfg!(windows) {
        "explorer"
    } else {
        "xdg-open"
    };
    if let Err(e) = std::process::Command::new(opener)
        .arg(url)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
    {
        eprintln!("cannot open a browser ({opener}: {e}); open {url}");
    }
}

/// Every request: the Host must be the console's (no DNS rebinding); every POST must come from
/// the console's origin and carry its CSRF token. The server console's security headers.
async fn guard(State(c): State<Arc<Console>>, req: Request, next: Next) -> Response {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    if !c.hosts.contains(&host) {
        return error_page(
            StatusCode::FORBIDDEN,
            "Refused: this console answers only requests addressed to its loopback address.",
        );
    }
    let req = if req.method() == http::Method::POST {
        match check_post(&c, req).await {
            Ok(r) => r,
            Err(r) => return r,
        }
    } else {
        req
    };
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(redrive_server::console::CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

const MAX_FORM_BYTES: usize = 64 * 1024;

async fn check_post(c: &Console, req: Request) -> Result<Request, Response> {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_string();
    let refused = |reason: &str| {
        tracing::warn!(%path, reason, "console POST refused");
        record_action(json!({"event": "refused", "path": path, "reason": reason}));
        error_page(
            StatusCode::FORBIDDEN,
            &format!("Refused: {reason}. Nothing was changed."),
        )
    };
    if !session::same_origin(&parts.headers) {
        return Err(refused("cross-site request (Origin is another site)"));
    }
    let Ok(bytes) = axum::body::to_bytes(body, MAX_FORM_BYTES).await else {
        return Err(error_page(
            StatusCode::PAYLOAD_TOO_LARGE,
            "The form is too large.",
        ));
    };
    let form = parse_form(&bytes);
    let ok = form
        .get("csrf")
        .is_some_and(|t| session::secrets_equal(t, &c.csrf));
    if !ok {
        return Err(refused("CSRF token missing or wrong"));
    }
    Ok(Request::from_parts(parts, axum::body::Body::from(bytes)))
}

fn parse_form(bytes: &[u8]) -> HashMap<String, String> {
    form_urlencoded::parse(bytes).into_owned().collect()
}

fn field<'a>(form: &'a HashMap<String, String>, name: &str) -> Option<&'a str> {
    form.get(name).map(|v| v.trim()).filter(|v| !v.is_empty())
}

fn html(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        body,
    )
        .into_response()
}

fn page(title: &str, body: &str) -> Response {
    html(StatusCode::OK, page_with_nav(title, body, None, NAV))
}

fn error_page(status: StatusCode, text: &str) -> Response {
    html(
        status,
        page_with_nav(
            "Error",
            &format!("<h1>Error</h1><p class=\"error\">{}</p>", esc(text)),
            None,
            NAV,
        ),
    )
}

fn failure(e: &anyhow::Error) -> Response {
    error_page(StatusCode::BAD_GATEWAY, &format!("{e:#}"))
}

fn redirect(to: &str) -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, to.to_string())]).into_response()
}

async fn css() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        redrive_server::console::CSS,
    )
        .into_response()
}

// ---------------------------------------------------------------------------------------------
// Queues

/// A queue's counts and links, from GetQueueAttributes.
struct QueueInfo {
    name: String,
    visible: u64,
    in_flight: u64,
    delayed: u64,
    dlq: Option<String>,
    max_receive_count: Option<u64>,
}

fn name_of(arn_or_url: &str) -> String {
    arn_or_url
        .trim_end_matches('/')
        .rsplit([':', '/'])
        .next()
        .unwrap_or(arn_or_url)
        .to_string()
}

async fn describe(conn: &Conn, url: &str) -> Result<QueueInfo> {
    let name = name_of(url);
    let out = conn
        .sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::All)
        .send()
        .await
        .map_err(|e| redrive_cli::client::sdk_error(e, &name, conn.endpoint_url.as_deref()))?;
    let attrs: BTreeMap<String, String> = out
        .attributes()
        .map(|a| {
            a.iter()
                .map(|(k, v)| (k.as_str().to_string(), v.clone()))
                .collect()
        })
        .unwrap_or_default();
    let n = |k: &str| attrs.get(k).and_then(|v| v.parse().ok()).unwrap_or(0);
    let policy: Option<Value> = attrs
        .get("RedrivePolicy")
        .and_then(|p| serde_json::from_str(p).ok());
    Ok(QueueInfo {
        visible: n("ApproximateNumberOfMessages"),
        in_flight: n("ApproximateNumberOfMessagesNotVisible"),
        delayed: n("ApproximateNumberOfMessagesDelayed"),
        dlq: policy
            .as_ref()
            .and_then(|p| p["deadLetterTargetArn"].as_str())
            .map(name_of),
        max_receive_count: policy.as_ref().and_then(|p| match &p["maxReceiveCount"] {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.parse().ok(),
            _ => None,
        }),
        name,
    })
}

async fn list_queue_urls(conn: &Conn) -> Result<(Vec<String>, bool)> {
    let mut urls = Vec::new();
    let mut token = None;
    loop {
        let out = conn
            .sqs
            .list_queues()
            .max_results(1000)
            .set_next_token(token)
            .send()
            .await
            .map_err(|e| redrive_cli::client::sdk_error(e, "", conn.endpoint_url.as_deref()))?;
        urls.extend(out.queue_urls().iter().cloned());
        token = out.next_token().map(str::to_string);
        if token.is_none() || urls.len() >= MAX_QUEUES {
            break;
        }
    }
    let more = urls.len() > MAX_QUEUES || token.is_some();
    urls.truncate(MAX_QUEUES);
    urls.sort();
    Ok((urls, more))
}

fn queue_link(name: &str) -> String {
    format!(
        "<a href=\"/console/queues/{}\">{}</a>",
        url_part(name),
        esc(name)
    )
}

fn endpoint_text(conn: &Conn) -> String {
    match &conn.endpoint_url {
        Some(e) => format!("endpoint <code>{}</code>", esc(e)),
        None => format!("AWS, region <code>{}</code>", esc(&conn.region)),
    }
}

async fn queues_page(State(c): State<Arc<Console>>) -> Response {
    let (urls, more) = match list_queue_urls(&c.conn).await {
        Ok(u) => u,
        Err(e) => return failure(&e),
    };
    // Described 16 at a time (hundreds of queues on AWS), kept in the listing's order.
    let limit = Arc::new(tokio::sync::Semaphore::new(16));
    let mut tasks = tokio::task::JoinSet::new();
    for (k, u) in urls.iter().enumerate() {
        let (conn, u, limit) = (c.conn.clone(), u.clone(), limit.clone());
        tasks.spawn(async move {
            let _permit = limit.acquire_owned().await;
            (k, describe(&conn, &u).await)
        });
    }
    let mut described = Vec::new();
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok((k, Ok(i))) => described.push((k, i)),
            // Deleted between the listing and the description.
            Ok((k, Err(e))) => tracing::debug!(queue = %urls[k], "cannot describe: {e:#}"),
            Err(e) => tracing::debug!("describe task: {e}"),
        }
    }
    described.sort_by_key(|(k, _)| *k);
    let infos: Vec<QueueInfo> = described.into_iter().map(|(_, i)| i).collect();
    // DLQ → its sources, from the sources' redrive policies.
    let mut sources: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for i in &infos {
        if let Some(d) = &i.dlq {
            sources.entry(d.clone()).or_default().push(i.name.clone());
        }
    }
    let mut body = format!(
        "<h1>Queues</h1><p class=\"note\">{} · {} queues{}</p>",
        endpoint_text(&c.conn),
        infos.len(),
        if more {
            format!(" (the first {MAX_QUEUES} only)")
        } else {
            String::new()
        }
    );
    body.push_str(
        "<table class=\"queues\"><thead><tr><th>Queue</th><th>Visible</th><th>In flight</th>\
         <th>Delayed</th><th>Dead-letter queue</th><th>Sources (as a DLQ)</th></tr></thead><tbody>",
    );
    for i in &infos {
        let dlq = i.dlq.as_deref().map_or(String::new(), |d| {
            format!(
                "→ {}{}",
                queue_link(d),
                i.max_receive_count
                    .map_or(String::new(), |m| format!(" after {m} receives"))
            )
        });
        let srcs = sources.get(&i.name).map_or(String::new(), |s| {
            s.iter()
                .map(|n| format!("← {}", queue_link(n)))
                .collect::<Vec<_>>()
                .join(" ")
        });
        body.push_str(&format!(
            "<tr data-queue=\"{}\"><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td><td>{dlq}</td><td>{srcs}</td></tr>",
            esc(&i.name),
            queue_link(&i.name),
            i.visible,
            i.in_flight,
            i.delayed
        ));
    }
    body.push_str("</tbody></table>");
    page("Queues", &body)
}

/// The queue page's query: the aggregation's fields (the server console's [`StatsQuery`]:
/// `group=JQ` repeatable, `top`, `bucket`, `enrich`, `enrich_key`) and `read=N`.
struct QueueQuery {
    stats: StatsQuery,
    read: Option<usize>,
    /// jq filter of the listed messages (the replay's: `Selection::judge`).
    filter: Option<String>,
}

fn queue_query(raw: Option<&str>) -> QueueQuery {
    let read = form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
        .filter(|(k, _)| k == "read")
        .filter_map(|(_, v)| v.trim().parse().ok())
        .map(|n: usize| n.clamp(1, MAX_READ))
        .last();
    let filter = form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
        .filter(|(k, _)| k == "filter")
        .map(|(_, v)| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .last();
    QueueQuery {
        stats: StatsQuery::parse(raw),
        read,
        filter,
    }
}

async fn queue_page(
    State(c): State<Arc<Console>>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let q = queue_query(raw.as_deref());
    let queue = match c.conn.resolve(&name).await {
        Ok(q) => q,
        Err(e) => return error_page(StatusCode::NOT_FOUND, &format!("{e:#}")),
    };
    let info = match describe(&c.conn, &queue.url).await {
        Ok(i) => i,
        Err(e) => return failure(&e),
    };
    let source = match Source::open(&c.conn, &queue, c.visibility_timeout).await {
        Ok(s) => s,
        Err(e) => return failure(&e),
    };
    let mut body = format!(
        "<h1>{}</h1><p class=\"note\">{}</p>",
        esc(&queue.name),
        endpoint_text(&c.conn)
    );
    body.push_str(&format!(
        "<dl class=\"counts\"><dt>Visible</dt><dd id=\"visible\">{}</dd><dt>In flight</dt>\
         <dd id=\"in-flight\">{}</dd><dt>Delayed</dt><dd id=\"delayed\">{}</dd></dl>",
        info.visible, info.in_flight, info.delayed
    ));
    if let Some(d) = &info.dlq {
        body.push_str(&format!("<p>Dead-letter queue: {}</p>", queue_link(d)));
    }
    let srcs = redrive_cli::source::dead_letter_sources(&c.conn, &queue)
        .await
        .unwrap_or_default();
    if !srcs.is_empty() {
        body.push_str(&format!(
            "<p>Dead-letter queue of: {}</p>",
            srcs.iter()
                .map(|s| queue_link(s))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    body.push_str(&format!(
        "<p><a class=\"button\" href=\"/console/queues/{0}/replay\">Replay messages…</a> \
         <a class=\"button\" href=\"/console/queues/{0}/moves\" id=\"moves\">Move tasks</a> \
         <a class=\"button\" href=\"/console/queues/{0}/alarms\" id=\"alarms\">Alarms</a> \
         <a class=\"button\" href=\"/console/queues/{0}/purge\" id=\"purge\">Purge…</a></p>",
        url_part(&queue.name)
    ));
    body.push_str("<h2>Last hour</h2>");
    body.push_str(&chart(&c.conn, &info, !srcs.is_empty()).await);

    // Group-by form (a GET: reading changes nothing on the browse path).
    let receive = !source.non_destructive();
    body.push_str(&format!(
        "<h2>Messages</h2><form method=\"get\" class=\"group-by\" action=\"/console/queues/{}\">",
        url_part(&queue.name)
    ));
    body.push_str(&q.stats.fields_html());
    body.push_str(&format!(
        "<label>List only (jq filter, as a replay's) <input type=\"text\" name=\"filter\" \
         id=\"filter-input\" size=\"40\" value=\"{}\"></label> ",
        esc(q.filter.as_deref().unwrap_or(""))
    ));
    body.push_str(&format!(
        "<label>Read at most <input type=\"number\" name=\"read\" min=\"1\" max=\"{MAX_READ}\" value=\"{}\"></label> \
         <button type=\"submit\">Read</button></form>",
        q.read.unwrap_or(if receive { PAGE_MESSAGES } else { 1000 })
    ));
    if receive {
        body.push_str(&format!(
            "<p class=\"warning\" id=\"receive-warning\" role=\"alert\">This endpoint has no browse \
             API: messages are read with ReceiveMessage. Reading raises ApproximateReceiveCount and \
             hides messages for the visibility timeout ({}s), never deleting them.{}</p>",
            c.visibility_timeout,
            if srcs.is_empty() {
                " This queue is not a dead-letter queue: each read counts toward its \
                 maxReceiveCount and may move messages to its DLQ."
            } else {
                ""
            }
        ));
    }
    // On the receive path nothing is read until asked (`read=N`).
    let limit = match (q.read, receive) {
        (Some(n), _) => Some(n),
        (None, false) => Some(1000),
        (None, true) => None,
    };
    if let Some(limit) = limit {
        body.push_str(&messages_html(&c, &source, &queue, &q, limit).await);
    } else {
        body.push_str(
            "<p class=\"note\">Press <em>Read</em> to read messages (see the warning above).</p>",
        );
    }
    page(&queue.name, &body)
}

/// The minute chart from the CLI's metrics (a Redrive server's history, else CloudWatch); a
/// note when there is none (moto has no CloudWatch data). On a DLQ the burst window is marked:
/// the dominant dead-letter minute of the last 24 hours as `redrive status` finds it, in a
/// chart of its own when it is older than the hour.
async fn chart(conn: &Conn, info: &QueueInfo, is_dlq: bool) -> String {
    let plan = MetricsPlan {
        queue: info.name.clone(),
        since: format!("{}m", CHART_MINUTES),
        until: None,
        period_secs: 60,
        source: MetricsSource::Auto,
    };
    let read = tokio::time::timeout(
        Duration::from_secs(15),
        redrive_cli::metrics::metrics(conn, &plan),
    )
    .await;
    let table = match read {
        Ok(Ok(t)) => t,
        Ok(Err(e)) => {
            return format!(
                "<p class=\"note\" id=\"chart-note\">No minute history for this queue: {}</p>",
                esc(&format!("{e:#}"))
            );
        }
        Err(_) => {
            return "<p class=\"note\" id=\"chart-note\">No minute history: the metrics source did not answer in 15 s.</p>".into();
        }
    };
    let has_data = table.rows.iter().any(|r| {
        r.sent + r.received + r.deleted + r.visible + r.not_visible + r.dead_letter_arrivals > 0
    });
    let minute = if is_dlq {
        tokio::time::timeout(
            Duration::from_secs(15),
            redrive_cli::metrics::dominant_dead_letter_minute(conn, &info.name, 24),
        )
        .await
        .ok()
        .and_then(Result::ok)
        .flatten()
    } else {
        None
    };
    let arrivals = |t: &MetricsTable, m: u64| {
        t.rows
            .iter()
            .find(|r| r.timestamp == m)
            .map(|r| r.dead_letter_arrivals)
    };
    let mut out = String::new();
    let mut burst = minute.and_then(|m| arrivals(&table, m).map(|a| (m, a)));
    if let Some(m) = minute
        && burst.is_none()
    {
        // Older than the hour: its window in a chart of its own.
        let (tables, _) =
            redrive_cli::metrics::window_around(conn, std::slice::from_ref(&info.name), m).await;
        if let Some(w) = tables.first()
            && let Some(a) = arrivals(w, m)
        {
            burst = Some((m, a));
            out.push_str("<h2 id=\"burst-history\">Burst window, per minute</h2>");
            out.push_str(&render_data(&ChartData {
                burst,
                ..chart_data(w)
            }));
        }
    }
    if !has_data {
        return "<p class=\"note\" id=\"chart-note\">No minute history for this queue in the last \
                hour: its metrics source (a Redrive server's history, else CloudWatch) has no data \
                for it.</p>"
            .to_string()
            + &out;
    }
    render_data(&ChartData {
        burst,
        ..chart_data(&table)
    }) + &out
}

fn chart_data(t: &MetricsTable) -> ChartData {
    let pick = |f: fn(&redrive_cli::metrics::MetricsRow) -> u64| -> Vec<(u64, f64)> {
        t.rows.iter().map(|r| (r.timestamp, f(r) as f64)).collect()
    };
    ChartData {
        queue: t.queue.clone(),
        since_ms: t.since,
        until_ms: t.until,
        period_secs: t.period,
        series: vec![
            ("NumberOfMessagesSent".into(), pick(|r| r.sent)),
            ("NumberOfMessagesReceived".into(), pick(|r| r.received)),
            ("NumberOfMessagesDeleted".into(), pick(|r| r.deleted)),
            (
                "NumberOfDeadLetterArrivals".into(),
                pick(|r| r.dead_letter_arrivals),
            ),
            (
                "ApproximateNumberOfMessagesVisible".into(),
                pick(|r| r.visible),
            ),
        ],
        burst: None,
    }
}

/// Reads up to `limit` messages through the source: group-by tables (the CLI's `Stats`) and
/// the first messages.
async fn messages_html(
    c: &Console,
    source: &Source,
    queue: &QueueRef,
    q: &QueueQuery,
    limit: usize,
) -> String {
    let (mut agg, mapping) = match q.stats.compile() {
        Ok(c) => c,
        Err(e) => return format!("<p class=\"error\">{}</p>", esc(&e)),
    };
    let selection = match q
        .filter
        .as_ref()
        .map(|f| {
            Selection::compile(&SelectionSpec {
                filter: Some(f.clone()),
                ..SelectionSpec::default()
            })
        })
        .transpose()
    {
        Ok(s) => s,
        Err(e) => return format!("<p class=\"error\">filter: {}</p>", esc(&e.to_string())),
    };
    let mut shown: Vec<Message> = Vec::new();
    let mut matched = 0usize;
    let scan = source
        .scan(limit, |m| {
            agg.add(&sample(&m), || m.meta());
            let listed = selection.as_ref().is_none_or(|sel| {
                let meta = m.meta();
                sel.judge(&Candidate {
                    body: &m.body,
                    meta: &meta,
                    sent_ms: m.sent_timestamp,
                    dead_lettered_ms: m.dead_lettered_at,
                }) == Verdict::Selected
            });
            if listed {
                matched += 1;
                if shown.len() < PAGE_MESSAGES {
                    shown.push(m);
                }
            }
        })
        .await;
    let scan = match scan {
        Ok(s) => s,
        Err(e) => {
            return format!(
                "<p class=\"error\">reading failed: {}</p>",
                esc(&format!("{e:#}"))
            );
        }
    };
    let note = format!(
        "{}{}",
        if scan.complete {
            " (all of them)"
        } else {
            " (not all: raise the limit or wait for in-flight messages)"
        },
        if scan.non_destructive {
            " with the browse API"
        } else {
            " with ReceiveMessage"
        }
    );
    let mut out = format!(
        "<div id=\"scan\">{}</div>",
        stats_view::render(&agg, mapping.as_ref(), q.stats.top, &note)
    );
    out.push_str(&format!(
        "<h3>First {} messages{}</h3><table class=\"messages\"><thead><tr><th>Message id</th>\
         <th>Sent</th><th>Receives</th><th>Body</th></tr></thead><tbody>",
        shown.len(),
        q.filter.as_ref().map_or(String::new(), |f| format!(
            " <span class=\"muted\" id=\"filter-count\" data-count=\"{matched}\">({matched} of those read match \
             <code>{}</code>; the tables above cover every message read)</span>",
            esc(f)
        ))
    ));
    let now = now_ms();
    for m in &shown {
        let sent = m.sent_timestamp.map_or(String::new(), |t| {
            format!(
                "{} ({} ago)",
                time_text(t.max(0) as u64),
                age_text(now.saturating_sub(t).max(0) as u64)
            )
        });
        let body: String = m.body.chars().take(300).collect();
        let more = if m.body.chars().count() > 300 {
            "…"
        } else {
            ""
        };
        out.push_str(&format!(
            "<tr><td><a href=\"/console/queues/{}/messages/{}\"><code>{}</code></a></td><td>{}</td>\
             <td class=\"num\">{}</td><td><code>{}{more}</code></td></tr>",
            url_part(&queue.name),
            url_part(&m.message_id),
            esc(&m.message_id),
            esc(&sent),
            m.receive_count.map_or(String::new(), |r| r.to_string()),
            esc(&body)
        ));
    }
    out.push_str("</tbody></table>");
    let mut seen = c.seen.lock().unwrap();
    if seen.len() + shown.len() > MAX_SEEN {
        seen.clear();
    }
    for m in shown {
        seen.insert((queue.name.clone(), m.message_id.clone()), m);
    }
    out
}

/// One message: the facts, the body pretty-printed, its attributes and the worker's error
/// envelope decoded (the server console's `message_view`). Shown from this console's last
/// read of the queue; on the browse path a message not read yet is looked up (nothing
/// changes), on the receive path it must have been read on the queue page.
async fn message_page(
    State(c): State<Arc<Console>>,
    Path((name, id)): Path<(String, String)>,
) -> Response {
    let key = (name.clone(), id.clone());
    let mut found = c.seen.lock().unwrap().get(&key).cloned();
    if found.is_none() {
        let queue = match c.conn.resolve(&name).await {
            Ok(q) => q,
            Err(e) => return error_page(StatusCode::NOT_FOUND, &format!("{e:#}")),
        };
        let source = match Source::open(&c.conn, &queue, c.visibility_timeout).await {
            Ok(s) => s,
            Err(e) => return failure(&e),
        };
        if source.non_destructive() {
            let scan = source
                .scan(MAX_READ, |m| {
                    if m.message_id == id && found.is_none() {
                        found = Some(m);
                    }
                })
                .await;
            if let Err(e) = scan {
                return failure(&e);
            }
        }
    }
    let Some(m) = found else {
        return error_page(
            StatusCode::NOT_FOUND,
            &format!(
                "Message {id} was not among the messages this console read from {name}: read the \
                 queue page first (it may also have been deleted or moved)."
            ),
        );
    };
    let time = |t: Option<i64>| t.map_or("–".to_string(), |t| time_text(t.max(0) as u64));
    let attr = |k: &str| m.attributes.get(k).cloned();
    let facts: Vec<(&str, String)> = vec![
        ("Sent", time(m.sent_timestamp)),
        (
            "Receive count",
            m.receive_count.map_or("–".into(), |r| r.to_string()),
        ),
        ("First received", time(m.first_receive_timestamp)),
        ("Dead-lettered", time(m.dead_lettered_at)),
        (
            "DeadLetterQueueSourceArn",
            m.dead_letter_queue_source_arn
                .clone()
                .or_else(|| attr("DeadLetterQueueSourceArn"))
                .unwrap_or("–".into()),
        ),
        (
            "MessageGroupId",
            m.message_group_id.clone().unwrap_or("–".into()),
        ),
        ("Sender", attr("SenderId").unwrap_or("–".into())),
    ];
    let filter = format!("$meta.messageId == \"{}\"", m.message_id);
    let actions = format!(
        "<p class=\"actions\"><a href=\"/console/queues/{}/replay?filter={}\" id=\"replay-one\">\
         Replay this message…</a> <span class=\"muted\">(a dry run first)</span></p>",
        url_part(&name),
        url_part(&filter)
    );
    let body = format!(
        "<p><a href=\"/console/queues/{}\" accesskey=\"b\">← {}</a></p><h1>Message <code>{}</code></h1>{}",
        url_part(&name),
        esc(&name),
        esc(&m.message_id),
        message_view::render(&facts, &actions, &m.body, &m.message_attributes)
    );
    page(&format!("{name} message"), &body)
}

// ---------------------------------------------------------------------------------------------
// Replay

/// The replay form's fields.
#[derive(Debug, Clone, Default)]
struct ReplayForm {
    filter: String,
    to: String,
    limit: String,
    rate: String,
    transform: String,
    /// Per-key rate: the jq key and the rate for each of its values (`--rate-per KEY RATE`).
    rate_key: String,
    rate_per: String,
    breaker: String,
}

impl ReplayForm {
    fn from(form: &HashMap<String, String>) -> ReplayForm {
        let f = |n: &str| field(form, n).unwrap_or_default().to_string();
        ReplayForm {
            filter: f("filter"),
            to: f("to"),
            limit: f("limit"),
            rate: f("rate"),
            transform: f("transform"),
            rate_key: f("rate_key"),
            rate_per: f("rate_per"),
            breaker: f("breaker"),
        }
    }

    /// The CLI's plan for these fields (validated as `redrive replay` validates its flags).
    fn plan(&self, dlq: &str, c: &Console, dry_run: bool) -> Result<ReplayPlan> {
        let opt = |s: &str| (!s.is_empty()).then(|| s.to_string());
        let limit = match self.limit.as_str() {
            "" => None,
            l => Some(
                l.parse::<u64>()
                    .ok()
                    .filter(|n| *n >= 1)
                    .context("limit: a whole number of messages, at least 1")?,
            ),
        };
        let rate = match self.rate.as_str() {
            "" => None,
            r => Some(parse_rate(r).map_err(|e| anyhow::anyhow!("rate: {e}"))?),
        };
        // Checked as `redrive replay` checks `--transform`, `--rate-per` and `--breaker`.
        if let Some(t) = opt(&self.transform) {
            Transform::compile(&t).map_err(|e| anyhow::anyhow!("transform: {e}"))?;
        }
        let rate_per = match (opt(&self.rate_key), opt(&self.rate_per)) {
            (None, None) => None,
            (Some(k), Some(r)) => {
                GroupBy::compile(&k).map_err(|e| anyhow::anyhow!("per-key rate: {e}"))?;
                let r = parse_rate(&r).map_err(|e| anyhow::anyhow!("per-key rate: {e}"))?;
                Some((k, r))
            }
            _ => bail!("per-key rate: give both the jq key and the rate, e.g. .mall_id and 5/s"),
        };
        let breaker = opt(&self.breaker)
            .map(|b| BreakerSpec::parse(&b).map_err(|e| anyhow::anyhow!("breaker: {e}")))
            .transpose()?;
        let plan = ReplayPlan {
            source: dlq.to_string(),
            destination: opt(&self.to),
            selection: SelectionSpec {
                filter: opt(&self.filter),
                limit,
                ..SelectionSpec::default()
            },
            transform: opt(&self.transform),
            rate,
            rate_per,
            breaker,
            provenance: true,
            dry_run,
            sample: 5,
            backup: None,
            audit_log: None,
            client_side: true,
            cancel_on_interrupt: true,
            visibility_timeout: c.visibility_timeout,
            attach: None,
            requested_by: format!("{} (redrive console)", replay::whoami()),
        };
        plan.validate()?;
        Ok(plan)
    }

    fn hidden_fields(&self) -> String {
        [
            hidden("filter", &self.filter),
            hidden("to", &self.to),
            hidden("limit", &self.limit),
            hidden("rate", &self.rate),
            hidden("transform", &self.transform),
            hidden("rate_key", &self.rate_key),
            hidden("rate_per", &self.rate_per),
            hidden("breaker", &self.breaker),
        ]
        .concat()
    }
}

fn replay_form_html(c: &Console, dlq: &str, f: &ReplayForm, error: Option<&str>) -> String {
    let error = error.map_or(String::new(), |e| {
        format!("<p class=\"error\" id=\"form-error\">{}</p>", esc(e))
    });
    format!(
        "<h1>Replay from {}</h1><p class=\"note\">Client-side path, as <code>redrive replay \
         --client-side</code>: each selected message is received, copied to its destination, \
         journaled, then deleted from the DLQ. The run's journal is the CLI's audit log \
         (<code>redrive-audit/{}.ndjson</code> in the directory the console was started in).</p>\
         {error}<form method=\"post\" action=\"/console/queues/{}/replay\" class=\"replay\">{}\
         <p><label>Filter (jq over the body and <code>$meta</code>)<br>\
         <input type=\"text\" name=\"filter\" size=\"60\" value=\"{}\" placeholder=\".mall_id == &quot;m-1&quot;\"></label></p>\
         <p><label>Destination (default: each message's source queue)<br>\
         <input type=\"text\" name=\"to\" value=\"{}\"></label></p>\
         <p><label>Limit <input type=\"number\" name=\"limit\" min=\"1\" value=\"{}\"></label> \
         <label>Rate (5/s, 30/m) <input type=\"text\" name=\"rate\" value=\"{}\"></label></p>\
         <p><label>Transform (jq producing the new body as a string: end with <code>| tojson</code>)<br>\
         <input type=\"text\" name=\"transform\" size=\"60\" value=\"{}\" placeholder=\".version = 2 | tojson\"></label></p>\
         <p><label>Per-key rate: key (jq) <input type=\"text\" name=\"rate_key\" value=\"{}\" placeholder=\".mall_id\"></label> \
         <label>rate for each value <input type=\"text\" name=\"rate_per\" value=\"{}\" placeholder=\"5/s\"></label></p>\
         <p><label>Circuit breaker (SHARE[/WINDOW[/MIN]]: stop when more than SHARE of the replayed \
         messages come back to the DLQ within WINDOW) <input type=\"text\" name=\"breaker\" value=\"{}\" placeholder=\"20%/5m/10\"></label></p>\
         <p><button type=\"submit\" name=\"action\" value=\"preview\">Dry run</button></p></form>",
        queue_link(dlq),
        esc(dlq),
        url_part(dlq),
        csrf_field(&c.csrf),
        esc(&f.filter),
        esc(&f.to),
        esc(&f.limit),
        esc(&f.rate),
        esc(&f.transform),
        esc(&f.rate_key),
        esc(&f.rate_per),
        esc(&f.breaker),
    )
}

/// The replay form; `?filter=JQ` fills the filter (a message page's "Replay this message").
async fn replay_form(
    State(c): State<Arc<Console>>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    if let Err(e) = c.conn.resolve(&name).await {
        return error_page(StatusCode::NOT_FOUND, &format!("{e:#}"));
    }
    let filter = form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
        .find(|(k, _)| k == "filter")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    let form = ReplayForm {
        filter,
        ..ReplayForm::default()
    };
    page(
        &format!("Replay {name}"),
        &replay_form_html(&c, &name, &form, None),
    )
}

async fn replay_post(
    State(c): State<Arc<Console>>,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    let form = parse_form(&body);
    let f = ReplayForm::from(&form);
    let confirm = field(&form, "action") == Some("confirm");
    let plan = match f.plan(&name, &c, !confirm) {
        Ok(p) => p,
        Err(e) => {
            return html(
                StatusCode::BAD_REQUEST,
                page_with_nav(
                    &format!("Replay {name}"),
                    &replay_form_html(&c, &name, &f, Some(&format!("{e:#}"))),
                    None,
                    NAV,
                ),
            );
        }
    };
    if confirm {
        let selected = field(&form, "selected").and_then(|n| n.parse().ok());
        let preview = field(&form, "preview").unwrap_or_default().to_string();
        return start_run(c, &name, plan, &preview, selected).await;
    }
    // Dry run: the CLI's preview, exactly as `redrive replay` prints it.
    let (interrupt, _tx) = Interrupt::manual();
    let result = match replay::replay_client_side(&c.conn, &plan, &interrupt).await {
        Ok(r) => r,
        Err(e) => {
            return html(
                StatusCode::BAD_REQUEST,
                page_with_nav(
                    &format!("Replay {name}"),
                    &replay_form_html(&c, &name, &f, Some(&format!("{e:#}"))),
                    None,
                    NAV,
                ),
            );
        }
    };
    let ReplayResult::Preview(p) = &result else {
        return error_page(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the dry run moved messages",
        );
    };
    let text = result.render(&name, false);
    let mut body = format!(
        "<h1>Dry run: replay from {}</h1><p id=\"selected\">{} of {} scanned messages would be \
         replayed{}.</p>",
        queue_link(&name),
        p.selected,
        p.scanned,
        if p.complete {
            ""
        } else {
            " (the scan stopped early: more may match)"
        }
    );
    body.push_str("<table class=\"destinations\"><thead><tr><th>Destination</th><th>Messages</th></tr></thead><tbody>");
    for d in &p.destinations {
        body.push_str(&format!(
            "<tr><td>{}</td><td class=\"num\">{}</td></tr>",
            queue_link(&d.name),
            d.count
        ));
    }
    body.push_str("</tbody></table>");
    body.push_str(&format!(
        "<h2>Preview</h2><pre id=\"preview\">{}</pre>",
        esc(&text)
    ));
    if p.selected > 0 {
        body.push_str(&format!(
            "<form method=\"post\" action=\"/console/queues/{}/replay\" class=\"confirm\">{}{}{}{}\
             <p><button type=\"submit\" name=\"action\" value=\"confirm\">Replay {} messages</button> \
             <a href=\"/console/queues/{}/replay\">Change</a></p></form>",
            url_part(&name),
            csrf_field(&c.csrf),
            f.hidden_fields(),
            hidden("preview", &text),
            hidden("selected", &p.selected.to_string()),
            p.selected,
            url_part(&name),
        ));
    } else {
        body.push_str(&replay_form_html(&c, &name, &f, None));
    }
    page(&format!("Dry run {name}"), &body)
}

async fn start_run(
    c: Arc<Console>,
    dlq: &str,
    plan: ReplayPlan,
    preview: &str,
    selected: Option<u64>,
) -> Response {
    let queue = match c.conn.resolve(dlq).await {
        Ok(q) => q,
        Err(e) => return error_page(StatusCode::NOT_FOUND, &format!("{e:#}")),
    };
    let journal = plan.default_audit_log(&queue);
    let journal_start = std::fs::metadata(&journal).map_or(0, |m| m.len());
    let (interrupt, cancel) = Interrupt::manual();
    let id = format!("console-{}", &session::new_token()[..12]);
    {
        let mut runs = c.runs.lock().unwrap_or_else(|e| e.into_inner());
        runs.push(Run {
            id: id.clone(),
            dlq: dlq.to_string(),
            journal,
            journal_start,
            selected,
            started_ms: now_ms(),
            preview: preview.to_string(),
            state: RunState::Running,
            cancel,
        });
    }
    tracing::info!(run = %id, dlq, "console replay started");
    let c2 = c.clone();
    let id2 = id.clone();
    let name = dlq.to_string();
    tokio::spawn(async move {
        let result = replay::replay_client_side(&c2.conn, &plan, &interrupt).await;
        let state = match result {
            Ok(ReplayResult::Summary(s)) => {
                let text = ReplayResult::Summary(s.clone()).render(&name, false);
                RunState::Done(Box::new(s), text)
            }
            Ok(ReplayResult::Preview(_)) => RunState::Failed("the run was a dry run".into()),
            Err(e) => RunState::Failed(format!("{e:#}")),
        };
        tracing::info!(run = %id2, "console replay ended");
        let mut runs = c2.runs.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(r) = runs.iter_mut().find(|r| r.id == id2) {
            r.state = state;
        }
    });
    redirect(&format!("/console/replays/{}", url_part(&id)))
}

/// One run of a CLI audit log, summed up from its records.
#[derive(Debug, Default)]
struct AuditRun {
    file: String,
    run: String,
    at: i64,
    who: String,
    kind: &'static str,
    detail: String,
    sent: u64,
    deleted: u64,
    failed: u64,
    outcome: String,
}

/// Reads every `*.ndjson` under `dir`: one row per run (its `start` or `dryRun` record, its
/// `sent`/`deleted`/`failed` records counted, its `end`), newest first. Lines that are not
/// JSON are skipped (a run killed mid-line).
fn audit_runs(dir: &std::path::Path) -> Vec<AuditRun> {
    let mut runs: Vec<AuditRun> = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return runs;
    };
    let mut files: Vec<std::path::PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "ndjson"))
        .collect();
    files.sort();
    for path in files {
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let file = path
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut by_run: HashMap<String, usize> = HashMap::new();
        for line in text.lines() {
            let Ok(r) = serde_json::from_str::<Value>(line) else {
                continue;
            };
            let run = r["run"].as_str().unwrap_or_default().to_string();
            let i = *by_run.entry(run.clone()).or_insert_with(|| {
                runs.push(AuditRun {
                    file: file.clone(),
                    run,
                    at: r["at"].as_i64().unwrap_or_default(),
                    ..AuditRun::default()
                });
                runs.len() - 1
            });
            let a = &mut runs[i];
            match r["event"].as_str().unwrap_or_default() {
                ev @ ("start" | "dryRun") => {
                    a.kind = if ev == "start" { "replay" } else { "dry run" };
                    a.at = r["at"].as_i64().unwrap_or(a.at);
                    a.who = r["who"].as_str().unwrap_or_default().to_string();
                    let mut d = Vec::new();
                    if let Some(f) = r["selection"]["filter"].as_str() {
                        d.push(format!("filter {f}"));
                    }
                    if let Some(t) = r["transform"].as_str() {
                        d.push(format!("transform {t}"));
                    }
                    if let Some(to) = r["destination"].as_str() {
                        d.push(format!("to {to}"));
                    }
                    if let Some(rate) = r["rate"].as_f64() {
                        d.push(format!("rate {rate}/s"));
                    }
                    if r["ratePer"].is_object() {
                        d.push(format!(
                            "per-key rate {}/s per {}",
                            r["ratePer"]["rate"],
                            r["ratePer"]["key"].as_str().unwrap_or_default()
                        ));
                    }
                    if !r["breaker"].is_null() {
                        d.push(format!("breaker {}", r["breaker"]));
                    }
                    if ev == "dryRun" {
                        d.push(format!("{} of {} selected", r["selected"], r["scanned"]));
                    }
                    a.detail = d.join("; ");
                }
                "purge" => {
                    a.kind = "purge";
                    a.who = r["who"].as_str().unwrap_or_default().to_string();
                    a.detail = format!(
                        "queue {}; about {} visible before",
                        r["queue"].as_str().unwrap_or_default(),
                        r["visible"]
                    );
                    a.outcome = r["outcome"].as_str().unwrap_or_default().to_string();
                }
                ev @ ("moveStart" | "moveCancel") => {
                    a.kind = if ev == "moveStart" {
                        "move task"
                    } else {
                        "move cancel"
                    };
                    a.who = r["who"].as_str().unwrap_or_default().to_string();
                    a.detail = format!(
                        "queue {}; to {}; rate {}",
                        r["queue"].as_str().unwrap_or_default(),
                        r["destination"].as_str().unwrap_or("each source"),
                        r["rate"]
                            .as_i64()
                            .map_or("adaptive".to_string(), |n| format!("{n}/s"))
                    );
                    a.outcome = r["outcome"].as_str().unwrap_or_default().to_string();
                }
                ev @ ("scheduleAdd" | "scheduleRemove") => {
                    a.kind = if ev == "scheduleAdd" {
                        "schedule add"
                    } else {
                        "schedule remove"
                    };
                    a.who = r["who"].as_str().unwrap_or_default().to_string();
                    a.detail = format!("schedule {}", r["schedule"].as_str().unwrap_or_default());
                    a.outcome = r["outcome"].as_str().unwrap_or_default().to_string();
                }
                ev @ ("alarmAdd" | "alarmDelete") => {
                    a.kind = if ev == "alarmAdd" {
                        "alarm add"
                    } else {
                        "alarm delete"
                    };
                    a.who = r["who"].as_str().unwrap_or_default().to_string();
                    a.detail = format!(
                        "queue {}; alarm {}",
                        r["queue"].as_str().unwrap_or_default(),
                        r["alarm"].as_str().unwrap_or_default()
                    );
                    a.outcome = r["outcome"].as_str().unwrap_or_default().to_string();
                }
                ev @ ("alertRuleAdd" | "alertRuleRemove" | "silenceAdd" | "silenceRemove") => {
                    a.kind = match ev {
                        "alertRuleAdd" => "alert rule add",
                        "alertRuleRemove" => "alert rule remove",
                        "silenceAdd" => "silence add",
                        _ => "silence remove",
                    };
                    a.who = r["who"].as_str().unwrap_or_default().to_string();
                    a.detail = r["detail"].as_str().unwrap_or_default().to_string();
                    a.outcome = r["outcome"].as_str().unwrap_or_default().to_string();
                }
                "refused" => {
                    a.kind = "refused POST";
                    a.detail = format!(
                        "{}: {}",
                        r["path"].as_str().unwrap_or_default(),
                        r["reason"].as_str().unwrap_or_default()
                    );
                    a.outcome = "refused".to_string();
                }
                "sent" => a.sent += 1,
                "deleted" => a.deleted += 1,
                "failed" => a.failed += 1,
                "end" => {
                    a.outcome = r["outcome"]
                        .as_str()
                        .map_or_else(|| r["outcome"].to_string(), str::to_string);
                }
                _ => {}
            }
        }
    }
    runs.sort_by_key(|r| std::cmp::Reverse(r.at));
    runs.truncate(AUDIT_RUNS);
    runs
}

/// `GET /console/audit`: the CLI's audit logs (the journals of every `redrive replay` and
/// console replay run from this directory), one row per run.
async fn audit_page() -> Response {
    let dir = std::path::Path::new(AUDIT_DIR);
    let runs = tokio::task::spawn_blocking(move || audit_runs(dir))
        .await
        .unwrap_or_default();
    let mut body = format!(
        "<h1>Audit log</h1><p class=\"note\">The CLI's audit logs in <code>{}</code> (where \
         <code>redrive replay</code> and this console write each run's journal), one row per run, \
         newest first; this console's own actions (purges, move tasks, schedules, alarms, alert rules and silences) and refused POSTs are in \
         <code>console.actions.ndjson</code>.</p>",
        esc(&std::env::current_dir()
            .map(|d| d.join(AUDIT_DIR).display().to_string())
            .unwrap_or_else(|_| AUDIT_DIR.to_string()))
    );
    if runs.is_empty() {
        body.push_str("<p class=\"note\" id=\"no-audit\">No run yet.</p>");
        return page("Audit log", &body);
    }
    body.push_str(
        "<table id=\"audit-table\"><thead><tr><th>At</th><th>Log</th><th>Run</th><th>Who</th>\
         <th>Kind</th><th>Options</th><th class=\"num\">Sent</th><th class=\"num\">Deleted</th>\
         <th class=\"num\">Failed</th><th>Outcome</th></tr></thead><tbody>",
    );
    for r in &runs {
        body.push_str(&format!(
            "<tr data-run=\"{}\"><td>{}</td><td><code>{}</code></td><td><code>{}</code></td><td>{}</td>\
             <td>{}</td><td>{}</td><td class=\"num\" data-field=\"sent\">{}</td>\
             <td class=\"num\" data-field=\"deleted\">{}</td><td class=\"num\">{}</td><td data-field=\"outcome\">{}</td></tr>",
            esc(&r.run),
            esc(&time_text(r.at.max(0) as u64)),
            esc(&r.file),
            esc(&r.run),
            esc(&r.who),
            r.kind,
            esc(&r.detail),
            r.sent,
            r.deleted,
            r.failed,
            esc(&r.outcome),
        ));
    }
    body.push_str("</tbody></table>");
    page("Audit log", &body)
}

/// The journal of this console's own actions (purges, move tasks, schedules, alarms, refused
/// POSTs) in [`AUDIT_DIR`]; a dot cannot be in an SQS queue name, so no queue's replay journal
/// has this name.
const ACTIONS_LOG: &str = "console.actions.ndjson";

/// The audit journal's `outcome` of an action: `done` if it succeeded, else why it failed.
fn outcome_of<T>(result: &anyhow::Result<T>, done: &str) -> String {
    match result {
        Ok(_) => done.to_string(),
        Err(e) => format!("failed: {e:#}"),
    }
}

/// Appends one record (with `run`, `at` and `who` added) to [`ACTIONS_LOG`]; a failure to
/// write is logged on standard error, never fatal.
fn record_action(mut record: Value) {
    let at = now_ms();
    record["run"] = json!(format!(
        "console-{at}-{}",
        session::new_token().get(..8).unwrap_or("")
    ));
    record["at"] = json!(at);
    record["who"] = json!(format!("{} (redrive console)", replay::whoami()));
    let write = || -> std::io::Result<()> {
        use std::io::Write;
        std::fs::create_dir_all(AUDIT_DIR)?;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(std::path::Path::new(AUDIT_DIR).join(ACTIONS_LOG))?;
        writeln!(f, "{record}")
    };
    if let Err(e) = write() {
        tracing::warn!(error = %e, "cannot write the console's audit log");
    }
}

fn purge_form_html(c: &Console, name: &str, info: &QueueInfo, error: Option<&str>) -> String {
    redrive_server::console::html::purge_confirm(
        name,
        &c.csrf,
        &format!(
            "about {} visible, {} in flight, {} delayed",
            info.visible, info.in_flight, info.delayed
        ),
        &format!(" on {}", endpoint_text(&c.conn)),
        error,
    )
}

/// `GET /console/queues/{name}/purge`: the confirmation (the queue's name must be typed).
async fn purge_form(State(c): State<Arc<Console>>, Path(name): Path<String>) -> Response {
    let queue = match c.conn.resolve(&name).await {
        Ok(q) => q,
        Err(e) => return error_page(StatusCode::NOT_FOUND, &format!("{e:#}")),
    };
    match describe(&c.conn, &queue.url).await {
        Ok(info) => page(
            &format!("Purge {}", queue.name),
            &purge_form_html(&c, &queue.name, &info, None),
        ),
        Err(e) => failure(&e),
    }
}

/// `POST /console/queues/{name}/purge`: `PurgeQueue` once the name is typed, written to
/// [`ACTIONS_LOG`] with the counts seen just before.
async fn purge_post(
    State(c): State<Arc<Console>>,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    let form = parse_form(&body);
    let queue = match c.conn.resolve(&name).await {
        Ok(q) => q,
        Err(e) => return error_page(StatusCode::NOT_FOUND, &format!("{e:#}")),
    };
    let info = match describe(&c.conn, &queue.url).await {
        Ok(i) => i,
        Err(e) => return failure(&e),
    };
    if field(&form, "confirm_name") != Some(queue.name.as_str()) {
        return html(
            StatusCode::BAD_REQUEST,
            page_with_nav(
                &format!("Purge {}", queue.name),
                &purge_form_html(
                    &c,
                    &queue.name,
                    &info,
                    Some("The name typed is not the queue's: nothing was purged."),
                ),
                None,
                NAV,
            ),
        );
    }
    let result = c.conn.sqs.purge_queue().queue_url(&queue.url).send().await;
    let outcome = match &result {
        Ok(_) => "purged".to_string(),
        Err(e) => format!("failed: {}", aws_sdk_sqs::error::DisplayErrorContext(e)),
    };
    record_action(
        json!({"event": "purge", "queue": queue.name, "url": queue.url,
        "visible": info.visible, "inFlight": info.in_flight, "delayed": info.delayed,
        "outcome": outcome}),
    );
    tracing::info!(queue = %queue.name, %outcome, "console purge");
    match result {
        Ok(_) => redirect(&format!("/console/queues/{}", url_part(&queue.name))),
        Err(_) => error_page(
            StatusCode::BAD_GATEWAY,
            &format!("PurgeQueue on {} {outcome}", queue.name),
        ),
    }
}

/// `GET /console/queues/{dlq}/moves`: the DLQ's native move tasks (`ListMessageMoveTasks`,
/// newest 10, through `redrive move --list`'s function) and a form to start one. Reloads every
/// 2 s while one runs.
async fn moves_page(State(c): State<Arc<Console>>, Path(name): Path<String>) -> Response {
    moves_html(&c, &name, None).await
}

async fn moves_html(c: &Console, name: &str, error: Option<&str>) -> Response {
    let tasks = match movetask::list(&c.conn, name).await {
        Ok(t) => t,
        Err(e) => return failure(&e),
    };
    let q = url_part(name);
    let mut body = format!(
        "<p><a href=\"/console/queues/{q}\">← {n}</a></p><h1>Move tasks of {n}</h1>\
         <p class=\"note\">Native SQS message move tasks (<code>StartMessageMoveTask</code>, as \
         <code>redrive move</code>): every visible message of the DLQ back to its source (or to \
         one destination), on {}. The newest 10.</p>{}",
        endpoint_text(&c.conn),
        error.map_or(String::new(), |e| format!(
            "<p class=\"error\" id=\"form-error\">{}</p>",
            esc(e)
        )),
        n = esc(name),
    );
    let running = tasks.iter().any(|t| t.status == "RUNNING");
    if tasks.is_empty() {
        body.push_str("<p class=\"note\" id=\"no-moves\">No move tasks.</p>");
    } else {
        body.push_str(
            "<table id=\"move-table\"><thead><tr><th>Status</th><th class=\"num\">Moved</th>\
             <th class=\"num\">To move</th><th>Progress</th><th>Destination</th><th>Rate</th>\
             <th>Started</th><th>Failure</th><th></th></tr></thead><tbody>",
        );
        for t in &tasks {
            let to_move = t.approximate_number_of_messages_to_move.unwrap_or(0);
            let action = if t.status == "RUNNING" {
                format!(
                    "<a href=\"/console/queues/{q}/moves/cancel\" id=\"cancel-move\">Cancel…</a>"
                )
            } else {
                String::new()
            };
            body.push_str(&format!(
                "<tr data-status=\"{}\"><td>{}</td><td class=\"num\" data-field=\"moved\">{}</td>\
                 <td class=\"num\">{to_move}</td><td><progress max=\"{}\" value=\"{}\"></progress></td>\
                 <td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{action}</td></tr>",
                esc(&t.status),
                esc(&t.status),
                t.approximate_number_of_messages_moved,
                to_move.max(1),
                t.approximate_number_of_messages_moved,
                esc(t.destination_arn.as_deref().unwrap_or("(each source)")),
                t.max_number_of_messages_per_second
                    .map_or("adaptive".to_string(), |n| format!("{n}/s")),
                esc(&time_text(t.started_timestamp.max(0) as u64)),
                esc(t.failure_reason.as_deref().unwrap_or("")),
            ));
        }
        body.push_str("</tbody></table>");
    }
    if !running {
        body.push_str(&format!(
            "<h2 id=\"start\">Start a move task</h2>\
             <form class=\"start-move\" method=\"post\" action=\"/console/queues/{q}/moves\">{}\
             <p><label for=\"move-destination\">Destination queue</label> <input id=\"move-destination\" \
             name=\"destination\" placeholder=\"each message's source\"></p>\
             <p><label for=\"move-rate\">Messages per second</label> <input id=\"move-rate\" type=\"number\" \
             name=\"rate\" min=\"{}\" max=\"{}\" placeholder=\"adaptive\"></p>\
             <p><button type=\"submit\" id=\"start-move\">Start moving</button></p></form>",
            csrf_field(&c.csrf),
            movetask::MIN_MOVE_RATE,
            movetask::MAX_MOVE_RATE,
        ));
    }
    let mut out = page(&format!("Move tasks {name}"), &body);
    if running {
        out.headers_mut()
            .insert(header::REFRESH, HeaderValue::from_static("2"));
    }
    out
}

/// `POST /console/queues/{dlq}/moves`: `StartMessageMoveTask` (as `redrive move --no-follow`),
/// written to [`ACTIONS_LOG`].
async fn move_start(
    State(c): State<Arc<Console>>,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    let form = parse_form(&body);
    let rate = match field(&form, "rate").map(str::parse::<i32>) {
        None => None,
        Some(Ok(r)) => match movetask::check_move_rate(r) {
            Ok(r) => Some(r),
            Err(e) => {
                return with_status(
                    StatusCode::BAD_REQUEST,
                    moves_html(&c, &name, Some(&e)).await,
                );
            }
        },
        Some(Err(_)) => {
            return with_status(
                StatusCode::BAD_REQUEST,
                moves_html(
                    &c,
                    &name,
                    Some("rate: a whole number of messages per second"),
                )
                .await,
            );
        }
    };
    let destination = field(&form, "destination").map(str::to_string);
    let plan = movetask::MovePlan {
        source: name.clone(),
        destination: destination.clone(),
        rate,
        cancel_on_interrupt: false,
        no_follow: true,
    };
    let (interrupt, _tx) = Interrupt::manual();
    let result = movetask::start(&c.conn, &plan, &interrupt).await;
    let outcome = match &result {
        Ok(r) => format!(
            "started {}",
            r.task.task_handle.as_deref().unwrap_or_default()
        ),
        Err(e) => format!("failed: {e:#}"),
    };
    record_action(
        json!({"event": "moveStart", "queue": name, "destination": destination,
        "rate": rate, "outcome": outcome}),
    );
    tracing::info!(queue = %name, %outcome, "console move task");
    match result {
        Ok(_) => redirect(&format!("/console/queues/{}/moves", url_part(&name))),
        Err(e) => with_status(
            StatusCode::BAD_GATEWAY,
            moves_html(&c, &name, Some(&format!("{e:#}"))).await,
        ),
    }
}

fn with_status(status: StatusCode, mut r: Response) -> Response {
    *r.status_mut() = status;
    r
}

/// `GET /console/queues/{dlq}/moves/cancel`: the confirmation.
async fn move_cancel_form(State(c): State<Arc<Console>>, Path(name): Path<String>) -> Response {
    let q = url_part(&name);
    page(
        &format!("Cancel move task {name}"),
        &format!(
            "<p><a href=\"/console/queues/{q}/moves\">← Move tasks of {n}</a></p>\
             <h1>Cancel the move task of {n}?</h1>\
             <form class=\"confirm\" id=\"confirm-cancel-form\" method=\"post\" action=\"/console/queues/{q}/moves/cancel\">{}\
             <p>The running task stops (<code>CancelMessageMoveTask</code>); the messages moved so \
             far stay moved, the others stay in <code>{n}</code>.</p>\
             <div class=\"actions\"><button type=\"submit\" class=\"danger\" id=\"confirm-cancel\">Cancel the task</button>\
             <a href=\"/console/queues/{q}/moves\">No, back</a></div></form>",
            csrf_field(&c.csrf),
            n = esc(&name),
        ),
    )
}

/// `POST /console/queues/{dlq}/moves/cancel`: cancels the running task (as `redrive move
/// --cancel`), written to [`ACTIONS_LOG`].
async fn move_cancel_post(State(c): State<Arc<Console>>, Path(name): Path<String>) -> Response {
    let result = movetask::cancel(&c.conn, &name).await;
    let outcome = match &result {
        Ok(t) => format!("cancelled {}", t.task_handle.as_deref().unwrap_or_default()),
        Err(e) => format!("failed: {e:#}"),
    };
    let task = result.as_ref().ok();
    record_action(json!({"event": "moveCancel", "queue": name,
        "destination": task.and_then(|t| t.destination_arn.clone()),
        "rate": task.and_then(|t| t.max_number_of_messages_per_second),
        "outcome": outcome}));
    tracing::info!(queue = %name, %outcome, "console move task cancel");
    match result {
        Ok(_) => redirect(&format!("/console/queues/{}/moves", url_part(&name))),
        Err(e) => with_status(
            StatusCode::CONFLICT,
            moves_html(&c, &name, Some(&format!("{e:#}"))).await,
        ),
    }
}

/// `GET /console/schedules`: the endpoint's scheduled redrives (`redrive schedule list`'s
/// function; a Redrive server keeps them, AWS has none and the page says the CLI's words) and
/// a form to add one.
async fn schedules_page(State(c): State<Arc<Console>>) -> Response {
    schedules_html(&c, None, StatusCode::OK, &HashMap::new()).await
}

/// The schedules and the add form (the server console's, `schedule_form`); a refused form
/// comes back with its `values` and the reason.
async fn schedules_html(
    c: &Console,
    error: Option<&str>,
    status: StatusCode,
    values: &HashMap<String, String>,
) -> Response {
    let mut body = format!(
        "<h1>Schedules</h1><p class=\"note\">Scheduled redrives kept by the endpoint \
         (<code>redrive schedule</code>), on {}.</p>{}",
        endpoint_text(&c.conn),
        error.map_or(String::new(), |e| format!(
            "<p class=\"error\" id=\"form-error\">{}</p>",
            esc(e)
        )),
    );
    let list = match schedule::list(&c.conn).await {
        Ok(l) => l,
        Err(e) => {
            body.push_str(&format!(
                "<p class=\"note\" id=\"no-schedules-api\">{}</p>",
                esc(&format!("{e:#}"))
            ));
            return with_status(status, page("Schedules", &body));
        }
    };
    if list.is_empty() {
        body.push_str("<p class=\"note\" id=\"no-schedules\">No schedules.</p>");
    } else {
        body.push_str(
            "<table id=\"schedule-table\"><thead><tr><th>Name</th><th>Cron</th><th>Source</th>\
             <th>Window</th><th>Filter</th><th>Enabled</th><th>Next</th><th>Last</th><th></th></tr></thead><tbody>",
        );
        for s in &list {
            let id = s["id"].as_str().unwrap_or_default();
            let t = |v: &Value| {
                v.as_i64()
                    .map_or(String::new(), |n| time_text(n.max(0) as u64))
            };
            body.push_str(&format!(
                "<tr data-schedule=\"{}\"><td><a href=\"/console/schedules/{}\">{}</a></td>\
                 <td><code>{} {}</code></td><td>{}</td><td>{}</td><td><code>{}</code></td><td>{}</td>\
                 <td>{}</td><td>{}</td><td><a href=\"/console/schedules/{}/remove\">Remove…</a></td></tr>",
                esc(s["name"].as_str().unwrap_or_default()),
                url_part(id),
                esc(s["name"].as_str().unwrap_or_default()),
                esc(s["cron"].as_str().unwrap_or_default()),
                esc(s["timezone"].as_str().unwrap_or_default()),
                esc(s["source"].as_str().unwrap_or_default()),
                esc(&format!(
                    "{} {}",
                    s["window"]["field"].as_str().unwrap_or_default(),
                    s["window"]["range"].as_str().unwrap_or_default()
                )),
                esc(s["selection"]["filter"].as_str().unwrap_or_default()),
                if s["enabled"] == false { "no" } else { "yes" },
                esc(&t(&s["nextRunAt"])),
                esc(&t(&s["lastRunAt"])),
                url_part(id),
            ));
        }
        body.push_str("</tbody></table>");
    }
    body.push_str(&schedule_form::form_html(
        &c.csrf,
        &format!(
            "<input id=\"s-source\" type=\"text\" name=\"source\" value=\"{}\" required>",
            esc(field(values, "source").unwrap_or_default())
        ),
        values,
        None,
    ));
    with_status(status, page("Schedules", &body))
}

/// `POST /console/schedules`: `redrive schedule add`'s request (the endpoint validates it).
async fn schedule_add(State(c): State<Arc<Console>>, body: Bytes) -> Response {
    let form = parse_form(&body);
    let request = match schedule_form::request_json(&form) {
        Ok(r) => r,
        Err(e) => return schedules_html(&c, Some(&e), StatusCode::BAD_REQUEST, &form).await,
    };
    let name = request["name"].as_str().unwrap_or_default().to_string();
    let result = schedule::add(&c.conn, &request).await;
    let outcome = outcome_of(&result, "added");
    record_action(json!({"event": "scheduleAdd", "schedule": name, "outcome": outcome}));
    match result {
        Ok(_) => redirect("/console/schedules"),
        Err(e) => schedules_html(&c, Some(&format!("{e:#}")), StatusCode::BAD_REQUEST, &form).await,
    }
}

/// `GET /console/schedules/{id}`: a schedule's runs (`redrive schedule runs`).
async fn schedule_runs_page(State(c): State<Arc<Console>>, Path(id): Path<String>) -> Response {
    let runs = match schedule::runs(&c.conn, &id).await {
        Ok(r) => r,
        Err(e) => return error_page(StatusCode::NOT_FOUND, &format!("{e:#}")),
    };
    let mut body = format!(
        "<p><a href=\"/console/schedules\">← Schedules</a></p><h1>Runs of {}</h1>",
        esc(&id)
    );
    if runs.is_empty() {
        body.push_str("<p class=\"note\" id=\"no-runs\">No runs yet.</p>");
    } else {
        body.push_str(
            "<table id=\"run-table\"><thead><tr><th>At</th><th>Outcome</th>\
             <th class=\"num\">Selected</th><th>Replay</th><th>Message</th></tr></thead><tbody>",
        );
        for r in &runs {
            body.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td class=\"num\">{}</td><td><code>{}</code></td><td>{}</td></tr>",
                esc(&r["at"].as_i64().map_or(String::new(), |n| time_text(n.max(0) as u64))),
                esc(r["outcome"].as_str().unwrap_or_default()),
                r["selected"].as_u64().map_or(String::new(), |n| n.to_string()),
                esc(r["replayId"].as_str().unwrap_or_default()),
                esc(r["message"].as_str().unwrap_or_default()),
            ));
        }
        body.push_str("</tbody></table>");
    }
    page(&format!("Schedule {id}"), &body)
}

/// `GET /console/schedules/{id}/remove`: the confirmation.
async fn schedule_remove_form(State(c): State<Arc<Console>>, Path(id): Path<String>) -> Response {
    page(
        &format!("Remove schedule {id}"),
        &format!(
            "<p><a href=\"/console/schedules\">← Schedules</a></p><h1>Remove schedule {n}?</h1>\
             <form class=\"confirm\" id=\"confirm-remove-form\" method=\"post\" action=\"/console/schedules/{q}/remove\">{}\
             <p>The schedule stops; its past runs' replays stay in the audit log.</p>\
             <div class=\"actions\"><button type=\"submit\" class=\"danger\" id=\"confirm-remove\">Remove</button>\
             <a href=\"/console/schedules\">No, back</a></div></form>",
            csrf_field(&c.csrf),
            n = esc(&id),
            q = url_part(&id),
        ),
    )
}

/// `POST /console/schedules/{id}/remove`: `redrive schedule remove`.
async fn schedule_remove_post(State(c): State<Arc<Console>>, Path(id): Path<String>) -> Response {
    let result = schedule::remove(&c.conn, &id).await;
    let outcome = outcome_of(&result, "removed");
    record_action(json!({"event": "scheduleRemove", "schedule": id, "outcome": outcome}));
    match result {
        Ok(()) => redirect("/console/schedules"),
        Err(e) => {
            schedules_html(
                &c,
                Some(&format!("{e:#}")),
                StatusCode::BAD_REQUEST,
                &HashMap::new(),
            )
            .await
        }
    }
}

/// The queue metrics an alarm can be put on from the page.
const ALARM_METRICS: [&str; 3] = [
    "ApproximateNumberOfMessagesVisible",
    "ApproximateAgeOfOldestMessage",
    "NumberOfMessagesSent",
];

/// `GET /console/queues/{name}/alarms`: the CloudWatch alarms on the queue's metrics
/// (`DescribeAlarms`, as `redrive status` finds them) with state and history
/// (`DescribeAlarmHistory`), and a form to add one (`PutMetricAlarm`).
async fn alarms_page(State(c): State<Arc<Console>>, Path(name): Path<String>) -> Response {
    alarms_html(&c, &name, None, StatusCode::OK).await
}

async fn alarms_html(c: &Console, name: &str, error: Option<&str>, status: StatusCode) -> Response {
    let q = url_part(name);
    let mut body = format!(
        "<p><a href=\"/console/queues/{q}\">← {n}</a></p><h1>Alarms of {n}</h1>\
         <p class=\"note\">CloudWatch alarms on <code>AWS/SQS</code> metrics with dimension \
         <code>QueueName</code> = <code>{n}</code>, on {}.</p>{}",
        endpoint_text(&c.conn),
        error.map_or(String::new(), |e| format!(
            "<p class=\"error\" id=\"form-error\">{}</p>",
            esc(e)
        )),
        n = esc(name),
    );
    match cloudwatch::queue_alarms(&c.conn, name).await {
        Err(e) => body.push_str(&format!(
            "<p class=\"error\" id=\"alarms-error\">{}</p>",
            esc(&format!("{e:#}"))
        )),
        Ok(alarms) if alarms.is_empty() => {
            body.push_str("<p class=\"note\" id=\"no-alarms\">No alarms.</p>")
        }
        Ok(alarms) => {
            body.push_str(
                "<table id=\"alarm-table\"><thead><tr><th>Alarm</th><th>State</th><th>Metric</th>\
                 <th>Condition</th><th>Reason</th><th></th></tr></thead><tbody>",
            );
            for a in &alarms {
                body.push_str(&format!(
                    "<tr data-alarm=\"{}\"><td>{}</td><td data-field=\"state\">{}</td><td>{}</td>\
                     <td>{} {} over {} s</td><td>{}</td>\
                     <td><a href=\"/console/queues/{q}/alarms/{}/delete\">Delete…</a></td></tr>",
                    esc(&a.name),
                    esc(&a.name),
                    esc(&a.state),
                    esc(&a.metric),
                    esc(&a.comparison),
                    a.threshold,
                    a.period,
                    esc(&a.reason),
                    url_part(&a.name),
                ));
            }
            body.push_str("</tbody></table><h2>History</h2>");
            for a in &alarms {
                match cloudwatch::alarm_history(&c.conn, &a.name).await {
                    Ok(h) if h.is_empty() => body.push_str(&format!(
                        "<p class=\"note\">{}: no history.</p>",
                        esc(&a.name)
                    )),
                    Ok(h) => {
                        body.push_str(&format!("<h3>{}</h3><ul class=\"history\">", esc(&a.name)));
                        for (at, summary) in h {
                            body.push_str(&format!(
                                "<li>{} {}</li>",
                                esc(&time_text(at.max(0) as u64)),
                                esc(&summary)
                            ));
                        }
                        body.push_str("</ul>");
                    }
                    Err(e) => body.push_str(&format!(
                        "<p class=\"note\">{}: history not available ({}).</p>",
                        esc(&a.name),
                        esc(&format!("{e:#}"))
                    )),
                }
            }
        }
    }
    body.push_str(&format!(
        "<h2>Add an alarm</h2><form class=\"add-alarm\" method=\"post\" action=\"/console/queues/{q}/alarms\">{}\
         <p><label for=\"a-name\">Name</label> <input id=\"a-name\" name=\"alarm\" required></p>\
         <p><label for=\"a-metric\">Metric (maximum ≥ threshold)</label> <select id=\"a-metric\" name=\"metric\">{}</select></p>\
         <p><label for=\"a-threshold\">Threshold</label> <input id=\"a-threshold\" type=\"number\" step=\"any\" name=\"threshold\" required></p>\
         <p><label for=\"a-period\">Period (seconds)</label> <input id=\"a-period\" type=\"number\" name=\"period\" value=\"60\" min=\"10\"></p>\
         <p><button type=\"submit\" id=\"add-alarm\">Add</button></p></form>",
        csrf_field(&c.csrf),
        ALARM_METRICS
            .iter()
            .map(|m| format!("<option>{m}</option>"))
            .collect::<String>(),
    ));
    with_status(status, page(&format!("Alarms {name}"), &body))
}

/// `POST /console/queues/{name}/alarms`: `PutMetricAlarm`, written to [`ACTIONS_LOG`].
async fn alarm_add(
    State(c): State<Arc<Console>>,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    let form = parse_form(&body);
    let alarm = field(&form, "alarm").unwrap_or_default().to_string();
    let metric = field(&form, "metric").unwrap_or_default();
    let threshold = field(&form, "threshold").and_then(|t| t.parse::<f64>().ok());
    let period = field(&form, "period").map_or(Some(60), |p| p.parse::<i32>().ok());
    let (Some(threshold), Some(period)) = (threshold, period) else {
        return alarms_html(
            &c,
            &name,
            Some("threshold and period: numbers"),
            StatusCode::BAD_REQUEST,
        )
        .await;
    };
    if alarm.is_empty() || !ALARM_METRICS.contains(&metric) || period < 10 {
        return alarms_html(
            &c,
            &name,
            Some("a name, one of the listed metrics and a period of at least 10 s"),
            StatusCode::BAD_REQUEST,
        )
        .await;
    }
    let result =
        cloudwatch::put_queue_alarm(&c.conn, &name, &alarm, metric, threshold, period).await;
    let outcome = outcome_of(&result, "added");
    record_action(json!({"event": "alarmAdd", "queue": name, "alarm": alarm, "outcome": outcome}));
    match result {
        Ok(()) => redirect(&format!("/console/queues/{}/alarms", url_part(&name))),
        Err(e) => alarms_html(&c, &name, Some(&format!("{e:#}")), StatusCode::BAD_GATEWAY).await,
    }
}

/// `GET /console/queues/{name}/alarms/{alarm}/delete`: the confirmation.
async fn alarm_delete_form(
    State(c): State<Arc<Console>>,
    Path((name, alarm)): Path<(String, String)>,
) -> Response {
    let q = url_part(&name);
    page(
        &format!("Delete alarm {alarm}"),
        &format!(
            "<p><a href=\"/console/queues/{q}/alarms\">← Alarms of {n}</a></p><h1>Delete alarm {a}?</h1>\
             <form class=\"confirm\" id=\"confirm-delete-form\" method=\"post\" action=\"/console/queues/{q}/alarms/{ap}/delete\">{}\
             <p>CloudWatch's <code>DeleteAlarms</code>: the alarm and its actions are gone.</p>\
             <div class=\"actions\"><button type=\"submit\" class=\"danger\" id=\"confirm-delete\">Delete</button>\
             <a href=\"/console/queues/{q}/alarms\">No, back</a></div></form>",
            csrf_field(&c.csrf),
            n = esc(&name),
            a = esc(&alarm),
            ap = url_part(&alarm),
        ),
    )
}

/// `POST /console/queues/{name}/alarms/{alarm}/delete`: `DeleteAlarms`, written to
/// [`ACTIONS_LOG`].
async fn alarm_delete_post(
    State(c): State<Arc<Console>>,
    Path((name, alarm)): Path<(String, String)>,
) -> Response {
    let result = cloudwatch::delete_alarm(&c.conn, &alarm).await;
    let outcome = outcome_of(&result, "deleted");
    record_action(
        json!({"event": "alarmDelete", "queue": name, "alarm": alarm, "outcome": outcome}),
    );
    match result {
        Ok(()) => redirect(&format!("/console/queues/{}/alarms", url_part(&name))),
        Err(e) => alarms_html(&c, &name, Some(&format!("{e:#}")), StatusCode::BAD_GATEWAY).await,
    }
}

// ---------------------------------------------------------------------------------------------
// Alerts: a Redrive server's own rules (`/_redrive/v1/alerts/…`), on the server console's page.

/// `GET /console/alerts`: the endpoint's alert rules with their state per queue, the newest
/// transitions and the silences, with the forms (the server console's page,
/// `redrive_server::console::alerts_view`); elsewhere (AWS, moto) the CLI's words and a
/// pointer to each queue's CloudWatch alarms page.
async fn alerts_page(State(c): State<Arc<Console>>) -> Response {
    alerts_html(&c, None, StatusCode::OK).await
}

async fn alerts_html(c: &Console, error: Option<&str>, status: StatusCode) -> Response {
    let intro = format!(
        "<p class=\"note\">Alert rules kept and evaluated every minute by the Redrive server, on \
         {} (<code>redrive alerts</code>; see docs/alerts.md). CloudWatch alarms are on each \
         queue's Alarms page.</p>",
        endpoint_text(&c.conn)
    );
    let listed = async {
        let (rules, silences) = redrive_cli::alerts::list(&c.conn).await?;
        let history =
            redrive_cli::alerts::history(&c.conn, None, None, alerts_view::HISTORY_SHOWN as u32)
                .await?;
        anyhow::Ok((rules, history, silences))
    };
    match listed.await {
        Ok((rules, history, silences)) => with_status(
            status,
            page(
                "Alerts",
                &alerts_view::alerts_body(
                    &intro,
                    error,
                    &rules,
                    &history,
                    &silences,
                    now_ms().max(0) as u64,
                    &c.csrf,
                ),
            ),
        ),
        Err(e) => with_status(
            status,
            page(
                "Alerts",
                &format!(
                    "<h1>Alerts</h1>{intro}{}<p class=\"note\" id=\"no-alerts-api\">{}</p>",
                    error.map_or(String::new(), |e| format!(
                        "<p class=\"error\" id=\"form-error\">{}</p>",
                        esc(e)
                    )),
                    esc(&format!("{e:#}"))
                ),
            ),
        ),
    }
}

/// `POST /console/alerts/rules`: the form checked by the server console's rules, then the
/// API; written to [`ACTIONS_LOG`].
async fn rule_add(State(c): State<Arc<Console>>, body: Bytes) -> Response {
    let form = parse_form(&body);
    let request = match alerts_view::rule_request(&form) {
        Ok(r) => r,
        Err(e) => return alerts_html(&c, Some(&e), StatusCode::BAD_REQUEST).await,
    };
    let name = request["name"].as_str().unwrap_or_default().to_string();
    let result = redrive_cli::alerts::add_request(&c.conn, &request).await;
    let outcome = outcome_of(&result, "added");
    record_action(json!({
        "event": "alertRuleAdd",
        "detail": format!("rule {name} on {}", request["queue"].as_str().unwrap_or_default()),
        "outcome": outcome,
    }));
    match result {
        Ok(_) => redirect("/console/alerts#rules"),
        Err(e) => alerts_html(&c, Some(&format!("{e:#}")), StatusCode::BAD_REQUEST).await,
    }
}

/// `GET /console/alerts/rules/{id}/remove`: the confirmation.
async fn rule_remove_form(State(c): State<Arc<Console>>, Path(id): Path<String>) -> Response {
    match redrive_cli::alerts::rule(&c.conn, &id).await {
        Ok(rule) => page(
            "Remove alert rule",
            &alerts_view::rule_remove_confirm(&rule, &c.csrf),
        ),
        Err(e) => error_page(StatusCode::NOT_FOUND, &format!("{e:#}")),
    }
}

/// `POST /console/alerts/rules/{id}/remove`: `DELETE …/alerts/rules/{id}`, written to
/// [`ACTIONS_LOG`].
async fn rule_remove_post(State(c): State<Arc<Console>>, Path(id): Path<String>) -> Response {
    let name = redrive_cli::alerts::rule(&c.conn, &id)
        .await
        .ok()
        .and_then(|r| r["name"].as_str().map(str::to_string))
        .unwrap_or_default();
    let result = redrive_cli::alerts::remove(&c.conn, &id).await;
    let outcome = outcome_of(&result, "removed");
    record_action(json!({
        "event": "alertRuleRemove",
        "detail": format!("rule {name} ({id})"),
        "outcome": outcome,
    }));
    match result {
        Ok(()) => redirect("/console/alerts#rules"),
        Err(e) => alerts_html(&c, Some(&format!("{e:#}")), StatusCode::BAD_REQUEST).await,
    }
}

/// `POST /console/alerts/silences`: written to [`ACTIONS_LOG`].
async fn silence_add(State(c): State<Arc<Console>>, body: Bytes) -> Response {
    let form = parse_form(&body);
    let request = match alerts_view::silence_request(&form) {
        Ok(r) => r,
        Err(e) => return alerts_html(&c, Some(&e), StatusCode::BAD_REQUEST).await,
    };
    let result = redrive_cli::alerts::silence_request(&c.conn, &request).await;
    let (outcome, detail) = match &result {
        Ok(s) => (
            "added".to_string(),
            format!(
                "silence {} of rule {} on {} until {}",
                s["id"].as_str().unwrap_or_default(),
                s["rule"].as_str().unwrap_or("any"),
                s["queue"].as_str().unwrap_or("*"),
                time_text(s["untilMs"].as_u64().unwrap_or(0))
            ),
        ),
        Err(e) => (
            format!("failed: {e:#}"),
            format!(
                "silence of rule {} on {}",
                request["rule"].as_str().unwrap_or("any"),
                request["queue"].as_str().unwrap_or("*")
            ),
        ),
    };
    record_action(json!({"event": "silenceAdd", "detail": detail, "outcome": outcome}));
    match result {
        Ok(_) => redirect("/console/alerts#silences"),
        Err(e) => alerts_html(&c, Some(&format!("{e:#}")), StatusCode::BAD_REQUEST).await,
    }
}

/// `POST /console/alerts/silences/{id}/remove`: ends a silence early (written to
/// [`ACTIONS_LOG`]).
async fn silence_remove_post(State(c): State<Arc<Console>>, Path(id): Path<String>) -> Response {
    let result = redrive_cli::alerts::unsilence(&c.conn, &id).await;
    let outcome = outcome_of(&result, "removed");
    record_action(json!({
        "event": "silenceRemove",
        "detail": format!("silence {id}"),
        "outcome": outcome,
    }));
    match result {
        Ok(()) => redirect("/console/alerts#silences"),
        Err(e) => alerts_html(&c, Some(&format!("{e:#}")), StatusCode::BAD_REQUEST).await,
    }
}

async fn runs_page(State(c): State<Arc<Console>>) -> Response {
    let runs = c.runs.lock().unwrap_or_else(|e| e.into_inner());
    let mut body = String::from(
        "<h1>Replays</h1><p class=\"note\">Replays started from this console since it started \
         (the CLI's audit logs keep every run).</p><table class=\"replays\"><thead><tr><th>Run</th>\
         <th>DLQ</th><th>Started</th><th>State</th></tr></thead><tbody>",
    );
    for r in runs.iter().rev() {
        body.push_str(&format!(
            "<tr><td><a href=\"/console/replays/{}\">{}</a></td><td>{}</td><td>{}</td><td>{}</td></tr>",
            url_part(&r.id),
            esc(&r.id),
            queue_link(&r.dlq),
            time_text(r.started_ms.max(0) as u64),
            state_text(&r.state)
        ));
    }
    body.push_str("</tbody></table>");
    page("Replays", &body)
}

fn state_text(s: &RunState) -> String {
    match s {
        RunState::Running => "running".into(),
        RunState::Done(s, _) => format!("{:?}: {} moved", s.outcome, s.moved).to_lowercase(),
        RunState::Failed(_) => "failed".into(),
    }
}

async fn run_page(State(c): State<Arc<Console>>, Path(id): Path<String>) -> Response {
    let (dlq, started, preview, state, progress) = {
        let runs = c.runs.lock().unwrap_or_else(|e| e.into_inner());
        let Some(r) = runs.iter().find(|r| r.id == id) else {
            return error_page(StatusCode::NOT_FOUND, "No such replay in this console.");
        };
        let state = match &r.state {
            RunState::Running => None,
            RunState::Done(s, text) => Some(Ok((s.clone(), text.clone()))),
            RunState::Failed(e) => Some(Err(e.clone())),
        };
        let progress = (r.journal.clone(), r.journal_start, r.selected);
        (
            r.dlq.clone(),
            r.started_ms,
            r.preview.clone(),
            state,
            progress,
        )
    };
    let mut body = format!(
        "<h1>Replay {} from {}</h1><p class=\"note\">Started {} (<code>{}</code>).</p>",
        esc(&id),
        queue_link(&dlq),
        time_text(started.max(0) as u64),
        esc(&id)
    );
    let (moved, recent) = {
        let (journal, start, _) = &progress;
        let (journal, start) = (journal.clone(), *start);
        tokio::task::spawn_blocking(move || moves_since(&journal, start))
            .await
            .unwrap_or_default()
    };
    let running = state.is_none();
    let refresh = match state {
        None => {
            let left = match c.conn.resolve(&dlq).await {
                Ok(q) => approximate_count(&c.conn, &q).await.ok(),
                Err(_) => None,
            };
            let (_, _, selected) = progress;
            body.push_str(&format!(
                "<p id=\"progress\">Moved {moved}{} (from the run's journal).</p>",
                selected.map_or(String::new(), |n| format!(" of {n} selected"))
            ));
            if let Some(n) = selected.filter(|n| *n > 0) {
                body.push_str(&format!(
                    "<progress max=\"{n}\" value=\"{}\"></progress>",
                    moved.min(n)
                ));
            }
            body.push_str(&format!(
                "<p id=\"status\" data-status=\"running\">Running… the DLQ holds ~{} messages \
                 (this page refreshes every 2 s).</p><form method=\"post\" action=\"/console/replays/{}/cancel\">{}\
                 <button type=\"submit\">Stop after the current step</button></form>",
                left.map_or("?".into(), |n| n.to_string()),
                url_part(&id),
                csrf_field(&c.csrf)
            ));
            Some(2)
        }
        Some(Ok((s, text))) => {
            body.push_str(&format!(
                "<p id=\"status\" data-status=\"{}\">{:?}: {} moved, {} skipped, {} failed, {} \
                 remaining.</p><pre id=\"summary\">{}</pre>",
                format!("{:?}", s.outcome).to_lowercase(),
                s.outcome,
                s.moved,
                s.skipped,
                s.failed,
                s.remaining,
                esc(&text)
            ));
            None
        }
        Some(Err(e)) => {
            body.push_str(&format!(
                "<p id=\"status\" data-status=\"failed\" class=\"error\">Failed: {}</p>",
                esc(&e)
            ));
            None
        }
    };
    body.push_str(&redrive_server::console::html::recent_moves(
        &format!(
            "(the newest {} messages, newest first, from the run's journal{})",
            recent.len(),
            if running { "; live" } else { "" }
        ),
        &recent,
    ));
    if !preview.is_empty() {
        body.push_str(&format!(
            "<h2>The confirmed dry run</h2><pre>{}</pre>",
            esc(&preview)
        ));
    }
    html(
        StatusCode::OK,
        page_with_nav(&format!("Replay {id}"), &body, refresh, NAV),
    )
}

/// Messages listed at most under a run's progress.
const MOVES_SHOWN: usize = 50;

/// This run's moves from its journal after byte `start`: the number moved (`deleted`
/// records: copied, then deleted from the DLQ) and each message's latest state, newest first
/// (at most [`MOVES_SHOWN`]): `sent` (copied, delete not yet confirmed), `moved`, or
/// `failed: reason`.
fn moves_since(journal: &std::path::Path, start: u64) -> (u64, Vec<MoveRow>) {
    let Ok(bytes) = std::fs::read(journal) else {
        return (0, Vec::new());
    };
    let tail = bytes.get(start as usize..).unwrap_or_default();
    let mut moved = 0;
    let mut rows: Vec<MoveRow> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for r in String::from_utf8_lossy(tail)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
    {
        let s = |k: &str| r[k].as_str().unwrap_or_default().to_string();
        let id = s("messageId");
        let at = r["at"].as_u64().unwrap_or(0);
        let row = |rows: &mut Vec<MoveRow>, index: &mut HashMap<String, usize>| {
            *index.entry(id.clone()).or_insert_with(|| {
                rows.push(MoveRow {
                    message_id: id.clone(),
                    ..MoveRow::default()
                });
                rows.len() - 1
            })
        };
        match r["event"].as_str().unwrap_or_default() {
            "sent" => {
                let i = row(&mut rows, &mut index);
                let m = &mut rows[i];
                m.new_id = s("newMessageId");
                m.key = s("key");
                m.destination = s("destination");
                m.at_ms = at;
                m.outcome = "sent".into();
            }
            "deleted" => {
                moved += 1;
                let i = row(&mut rows, &mut index);
                rows[i].outcome = "moved".into();
                rows[i].at_ms = rows[i].at_ms.max(at);
            }
            "failed" => {
                let i = row(&mut rows, &mut index);
                let m = &mut rows[i];
                m.destination = s("destination");
                m.at_ms = at;
                m.outcome = format!("failed: {}", s("reason"));
            }
            _ => {}
        }
    }
    let newest: Vec<MoveRow> = rows.into_iter().rev().take(MOVES_SHOWN).collect();
    (moved, newest)
}

async fn cancel_post(State(c): State<Arc<Console>>, Path(id): Path<String>) -> Response {
    {
        let runs = c.runs.lock().unwrap_or_else(|e| e.into_inner());
        let Some(r) = runs.iter().find(|r| r.id == id) else {
            return error_page(StatusCode::NOT_FOUND, "No such replay in this console.");
        };
        r.cancel.send_modify(|n| *n += 1);
    }
    tracing::info!(run = %id, "console replay stop requested");
    redirect(&format!("/console/replays/{}", url_part(&id)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_query_reads_repeated_groups() {
        let q = queue_query(Some("group=.mall&group=&group=.kind&top=5&read=99999"));
        assert_eq!(q.stats.groups, vec![".mall", ".kind"]);
        assert_eq!(q.stats.top, 5);
        assert_eq!(q.read, Some(MAX_READ));
        assert_eq!(name_of("arn:aws:sqs:us-east-1:1:orders-dlq"), "orders-dlq");
        assert_eq!(name_of("http://h/1/orders"), "orders");
    }
}
