//! Move tasks, schedules, alerts and the audit page: thin pages over the engine functions that
//! SQS's `StartMessageMoveTask`/`ListMessageMoveTasks`/`CancelMessageMoveTask`,
//! `/_redrive/v1/schedules` and `/_redrive/v1/alerts/…` call. State-changing forms are POSTs
//! (CSRF-checked by the guard) and audited; starting or cancelling a move task and removing a
//! schedule or an alert rule are confirmed on a page of their own first.

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Extension, Path, Query, State};
use axum::response::Response;
use axum::routing::get;
use http::{HeaderMap, StatusCode};
use redrive_core::SqsError;
use redrive_core::api::{
    CancelMessageMoveTaskInput, ListMessageMoveTasksInput, QueueUrlInput, StartMessageMoveTaskInput,
};
use redrive_engine::alerts::{AlertRuleRequest, SilenceRequest};
use redrive_engine::schedules::{WindowField, WindowSpec};
use redrive_engine::{Engine, RequestContext};

use super::html::{csrf_field, esc, hidden, page, page_refreshing, time_text, url_part};
use super::replay::{rate_text, see_other};
use super::{PostForm, Visitor, arn_name, context, html_response, queue_link, sqs_error_page};
use super::{alerts_view, schedule_form};
use crate::AppState;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/console/moves", get(moves_page))
        .route("/console/moves/start", get(move_confirm).post(move_start))
        .route(
            "/console/moves/cancel",
            get(move_cancel_confirm).post(move_cancel),
        )
        .route("/console/schedules", get(schedules_page).post(schedule_add))
        .route("/console/schedules/{id}", get(schedule_page))
        .route(
            "/console/schedules/{id}/remove",
            get(schedule_remove_confirm).post(schedule_remove),
        )
        .route("/console/alerts", get(alerts_page))
        .route("/console/alerts/rules", axum::routing::post(rule_add))
        .route(
            "/console/alerts/rules/{id}/remove",
            get(rule_remove_confirm).post(rule_remove),
        )
        .route("/console/alerts/silences", axum::routing::post(silence_add))
        .route(
            "/console/alerts/silences/{id}/remove",
            axum::routing::post(silence_remove),
        )
        .route("/console/audit", get(audit_page))
        .route(
            "/console/queues/{name}/purge",
            get(purge_confirm).post(purge),
        )
}

async fn audit(state: &AppState, visitor: &Visitor, action: &str, target: &str, detail: &str) {
    super::audit::record(&state.engine, &visitor.actor, action, target, detail).await;
}

/// DLQs of the caller's Region: (name, ARN, visible), by name.
async fn dead_letter_queues(engine: &Engine, ctx: &RequestContext) -> Vec<(String, String, u64)> {
    let mut out = Vec::new();
    for n in engine.load_queue_names(ctx).await.unwrap_or_default() {
        if let Ok(s) = engine.load_queue_summary(ctx, &n).await
            && !s.dead_letter_sources.is_empty()
        {
            out.push((s.name, s.arn, s.visible as u64));
        }
    }
    out.sort();
    out
}

fn options(items: &[String], selected: Option<&str>) -> String {
    items
        .iter()
        .map(|n| {
            format!(
                "<option value=\"{v}\"{}>{v}</option>",
                if Some(n.as_str()) == selected {
                    " selected"
                } else {
                    ""
                },
                v = esc(n)
            )
        })
        .collect()
}

fn status_span(s: &str) -> String {
    let s = esc(s);
    format!("<span class=\"status-{s}\">{s}</span>")
}

fn bad_request(title: &str, e: &str, back: &str) -> Response {
    html_response(
        StatusCode::BAD_REQUEST,
        page(
            title,
            &format!(
                "<h1>{}</h1><p class=\"error\" id=\"form-error\">{}</p><p><a href=\"{}\">Back</a></p>",
                esc(title),
                esc(e),
                esc(back)
            ),
        ),
    )
}

// ---- Move tasks ---------------------------------------------------------------------------

/// `GET /console/moves[?source=Q][&watch=1]`: every DLQ's move tasks (newest 10 each), and the
/// form that starts one. With `watch`, the page reloads every 2 s while a task is active.
async fn moves_page(
    State(state): State<Arc<AppState>>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let ctx = context(&state, &headers);
    let dlqs = dead_letter_queues(&state.engine, &ctx).await;
    let mut body = String::from(
        "<h1>Move tasks</h1><p class=\"muted\">Native SQS message move tasks \
         (<code>StartMessageMoveTask</code>): every visible message of a DLQ back to its source \
         queue, or to one destination. For a selection, use a DLQ's Selective replay.</p>",
    );
    let mut active = false;
    let mut rows = String::new();
    for (name, arn, _) in &dlqs {
        let Ok(out) = state
            .engine
            .load_move_tasks(ListMessageMoveTasksInput {
                source_arn: arn.clone(),
                max_results: Some(10),
            })
            .await
        else {
            continue;
        };
        for t in out.results {
            active |= t.status == "RUNNING" || t.status == "CANCELLING";
            let to_move = t.approximate_number_of_messages_to_move.unwrap_or(0);
            let cancel = t.task_handle.as_deref().map_or(String::new(), |h| {
                format!(
                    "<a href=\"/console/moves/cancel?handle={}\">Cancel…</a>",
                    url_part(h)
                )
            });
            let _ = write!(
                rows,
                "<tr data-source=\"{}\"><td>{}</td><td data-field=\"status\">{}</td>\
                 <td class=\"num\" data-field=\"moved\">{}</td><td class=\"num\">{to_move}</td>\
                 <td><progress max=\"{}\" value=\"{}\"></progress></td><td>{}</td><td>{}</td><td>{}</td>\
                 <td>{}</td><td>{cancel}</td></tr>",
                esc(name),
                queue_link(name),
                status_span(&t.status),
                t.approximate_number_of_messages_moved,
                to_move.max(1),
                t.approximate_number_of_messages_moved,
                t.destination_arn
                    .as_deref()
                    .map_or("each message's source".into(), |d| esc(arn_name(d))),
                t.max_number_of_messages_per_second
                    .map_or("adaptive".into(), |r| format!("{r}/s")),
                esc(&time_text(t.started_timestamp.max(0) as u64)),
                esc(t.failure_reason.as_deref().unwrap_or("")),
            );
        }
    }
    if rows.is_empty() {
        body.push_str("<p class=\"muted\" id=\"no-moves\">No move tasks.</p>");
    } else {
        let _ = write!(
            body,
            "<table id=\"move-table\"><thead><tr><th>DLQ</th><th>Status</th><th class=\"num\">Moved</th>\
             <th class=\"num\">To move</th><th>Progress</th><th>Destination</th><th>Rate</th><th>Started</th>\
             <th>Failure</th><th></th></tr></thead><tbody>{rows}</tbody></table>"
        );
    }
    let names: Vec<String> = dlqs.iter().map(|(n, _, _)| n.clone()).collect();
    if names.is_empty() {
        body.push_str("<p class=\"muted\">No queue is a DLQ (no RedrivePolicy targets one).</p>");
    } else {
        let _ = write!(
            body,
            "<h2 id=\"start\">Start a move task</h2>\
             <form class=\"stack\" method=\"get\" action=\"/console/moves/start\">\
             <p><label for=\"move-source\">DLQ</label><select id=\"move-source\" name=\"source\">{}</select></p>\
             <p><label for=\"move-destination\">Destination queue</label><input id=\"move-destination\" \
             type=\"text\" name=\"destination\" placeholder=\"each message's source queue\"></p>\
             <p><label for=\"move-rate\">Messages per second</label><input id=\"move-rate\" type=\"number\" \
             name=\"rate\" min=\"1\" max=\"500\"><span class=\"hint\">1–500; empty = adaptive</span></p>\
             <p><button type=\"submit\">Review…</button></p></form>",
            options(&names, params.get("source").map(String::as_str))
        );
    }
    let watch = params.contains_key("watch") && active;
    html_response(
        StatusCode::OK,
        page_refreshing("Move tasks", &body, watch.then_some(2)),
    )
}

/// The move task a form describes: source and destination ARNs, rate.
async fn move_input(
    state: &AppState,
    ctx: &RequestContext,
    f: &HashMap<String, String>,
) -> Result<(StartMessageMoveTaskInput, String, u64), SqsError> {
    let get = |k: &str| {
        f.get(k)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    let source = get("source").ok_or_else(|| SqsError::missing_parameter("source"))?;
    let s = state.engine.load_queue_summary(ctx, &source).await?;
    let destination = match get("destination") {
        Some(d) => Some(state.engine.load_queue_summary(ctx, &d).await?.arn),
        None => None,
    };
    let rate = get("rate")
        .map(|r| {
            r.parse::<i64>().map_err(|_| {
                SqsError::invalid_value("rate", &r, "Must be a whole number from 1 to 500.")
            })
        })
        .transpose()?;
    Ok((
        StartMessageMoveTaskInput {
            source_arn: s.arn,
            destination_arn: destination,
            max_number_of_messages_per_second: rate,
        },
        s.name,
        s.visible as u64,
    ))
}

/// `GET /console/moves/start?source=&destination=&rate=`: the confirmation.
async fn move_confirm(
    State(state): State<Arc<AppState>>,
    Extension(visitor): Extension<Visitor>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let ctx = context(&state, &headers);
    let (input, name, visible) = match move_input(&state, &ctx, &params).await {
        Ok(v) => v,
        Err(e) => return bad_request("Move task", &e.message, "/console/moves"),
    };
    let body = format!(
        "<h1>Start a move task?</h1><form class=\"confirm\" id=\"confirm-move-form\" method=\"post\" action=\"/console/moves/start\">{}{}{}{}\
         <p>Move <strong>every visible message</strong> ({visible} now) out of <code>{}</code> to {}, {}. \
         Messages arriving meanwhile are moved too.</p><div class=\"actions\">\
         <button type=\"submit\" class=\"danger\" id=\"confirm-move\">Start the move task</button>\
         <a href=\"/console/moves\">No, back</a></div></form>",
        csrf_field(&visitor.csrf),
        hidden("source", &name),
        hidden(
            "destination",
            params.get("destination").map_or("", |d| d.trim())
        ),
        hidden("rate", params.get("rate").map_or("", |r| r.trim())),
        esc(&name),
        input
            .destination_arn
            .as_deref()
            .map_or("each message's source queue".into(), |d| format!(
                "<code>{}</code>",
                esc(arn_name(d))
            )),
        input
            .max_number_of_messages_per_second
            .map_or("at the adaptive pace".into(), |r| format!(
                "at {r} per second"
            )),
    );
    html_response(StatusCode::OK, page("Start a move task", &body))
}

async fn move_start(
    State(state): State<Arc<AppState>>,
    Extension(visitor): Extension<Visitor>,
    Extension(form): Extension<PostForm>,
    headers: HeaderMap,
) -> Response {
    let ctx = context(&state, &headers);
    let (input, name, _) = match move_input(&state, &ctx, &form.0).await {
        Ok(v) => v,
        Err(e) => return bad_request("Move task", &e.message, "/console/moves"),
    };
    let destination = input.destination_arn.clone();
    match state.engine.start_message_move_task(input).await {
        Ok(out) => {
            let task = redrive_engine::decode_task_handle(&out.task_handle)
                .map_or(String::new(), |(id, _)| id);
            audit(
                &state,
                &visitor,
                "move.start",
                &name,
                &format!(
                    "move task {task} to {}",
                    destination
                        .as_deref()
                        .map_or("each message's source", arn_name)
                ),
            )
            .await;
            see_other(&format!(
                "/console/moves?watch=1&source={}",
                url_part(&name)
            ))
        }
        Err(e) => bad_request("Move task", &e.message, "/console/moves"),
    }
}

async fn move_cancel_confirm(
    Extension(visitor): Extension<Visitor>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let handle = params.get("handle").cloned().unwrap_or_default();
    let Some((task, source)) = redrive_engine::decode_task_handle(&handle) else {
        return bad_request("Cancel move task", "Unknown task handle.", "/console/moves");
    };
    let body = format!(
        "<h1>Cancel move task <code>{}</code>?</h1>\
         <form class=\"confirm\" id=\"confirm-cancel-move-form\" method=\"post\" action=\"/console/moves/cancel\">{}{}\
         <p>The task stops moving messages out of <code>{}</code>; moved messages stay moved.</p>\
         <div class=\"actions\"><button type=\"submit\" class=\"danger\" id=\"confirm-cancel-move\">Yes, cancel it</button>\
         <a href=\"/console/moves\">No, back</a></div></form>",
        esc(&task),
        csrf_field(&visitor.csrf),
        hidden("handle", &handle),
        esc(arn_name(&source)),
    );
    html_response(StatusCode::OK, page("Cancel move task", &body))
}

async fn move_cancel(
    State(state): State<Arc<AppState>>,
    Extension(visitor): Extension<Visitor>,
    Extension(form): Extension<PostForm>,
) -> Response {
    let handle = form.get("handle").unwrap_or_default().to_string();
    let (task, source) = redrive_engine::decode_task_handle(&handle).unwrap_or_default();
    match state
        .engine
        .cancel_message_move_task(CancelMessageMoveTaskInput {
            task_handle: handle,
        })
        .await
    {
        Ok(out) => {
            audit(
                &state,
                &visitor,
                "move.cancel",
                arn_name(&source),
                &format!(
                    "move task {task}: {} moved",
                    out.approximate_number_of_messages_moved
                ),
            )
            .await;
            see_other("/console/moves?watch=1")
        }
        Err(e) => bad_request("Cancel move task", &e.message, "/console/moves"),
    }
}

// ---- Schedules ----------------------------------------------------------------------------

async fn schedules_page(
    State(state): State<Arc<AppState>>,
    Extension(visitor): Extension<Visitor>,
    headers: HeaderMap,
) -> Response {
    schedules_html(&state, &visitor, &headers, &HashMap::new(), None).await
}

/// The schedules and the add form; a refused form comes back with its values and the reason
/// (400).
async fn schedules_html(
    state: &AppState,
    visitor: &Visitor,
    headers: &HeaderMap,
    values: &HashMap<String, String>,
    error: Option<&str>,
) -> Response {
    let ctx = context(state, headers);
    let mut body = String::from(
        "<h1>Schedules</h1><p class=\"muted\">Replays that start on a cron schedule \
         (<code>redrive schedule</code>, <code>/_redrive/v1/schedules</code>).</p>",
    );
    let list = match state.engine.load_schedules().await {
        Ok(list) => list,
        Err(e) => return sqs_error_page(&e),
    };
    if list.is_empty() {
        body.push_str("<p class=\"muted\" id=\"no-schedules\">No schedules.</p>");
    } else {
        body.push_str(
            "<table id=\"schedule-table\"><thead><tr><th>Name</th><th>Cron</th><th>Time zone</th>\
             <th>DLQ</th><th>Window</th><th>Filter</th><th>Next run</th><th>Last run</th><th>Enabled</th>\
             <th></th></tr></thead><tbody>",
        );
        for s in &list {
            let _ = write!(
                body,
                "<tr data-schedule=\"{}\"><td><a href=\"/console/schedules/{id}\">{}</a></td><td><code>{}</code></td>\
                 <td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td>\
                 <td><a href=\"/console/schedules/{id}/remove\">Remove…</a></td></tr>",
                esc(&s.spec.name),
                esc(&s.spec.name),
                esc(&s.spec.cron),
                esc(&s.spec.timezone),
                queue_link(arn_name(&s.source_arn)),
                esc(&window_text(s.spec.window.as_ref())),
                esc(s.spec.replay.selection.filter.as_deref().unwrap_or("")),
                s.next_run_at.map_or("–".into(), time_text),
                s.last_run_at.map_or("–".into(), time_text),
                if s.spec.enabled { "yes" } else { "no" },
                id = url_part(&s.id),
            );
        }
        body.push_str("</tbody></table>");
    }
    let dlqs: Vec<String> = dead_letter_queues(&state.engine, &ctx)
        .await
        .into_iter()
        .map(|(n, _, _)| n)
        .collect();
    body.push_str(&schedule_form::form_html(
        &visitor.csrf,
        &format!(
            "<select id=\"s-source\" name=\"source\">{}</select>",
            options(&dlqs, values.get("source").map(String::as_str))
        ),
        values,
        error,
    ));
    html_response(
        if error.is_some() {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::OK
        },
        page("Schedules", &body),
    )
}

fn window_text(w: Option<&WindowSpec>) -> String {
    w.map_or("–".into(), |w| {
        format!(
            "{} {}",
            match w.field {
                WindowField::DeadLettered => "dead-lettered",
                WindowField::Sent => "sent",
            },
            w.range
        )
    })
}

async fn schedule_add(
    State(state): State<Arc<AppState>>,
    Extension(visitor): Extension<Visitor>,
    Extension(form): Extension<PostForm>,
    headers: HeaderMap,
) -> Response {
    let ctx = context(&state, &headers);
    let req = match schedule_form::request(&form.0) {
        Ok(r) => r,
        Err(e) => return schedules_html(&state, &visitor, &headers, &form.0, Some(&e)).await,
    };
    match state.engine.add_schedule(&ctx, req).await {
        Ok(s) => {
            audit(
                &state,
                &visitor,
                "schedule.add",
                arn_name(&s.source_arn),
                &format!("schedule {} ({}): {}", s.spec.name, s.id, s.spec.cron),
            )
            .await;
            see_other(&format!("/console/schedules/{}", url_part(&s.id)))
        }
        Err(e) => schedules_html(&state, &visitor, &headers, &form.0, Some(&e.message)).await,
    }
}

async fn schedule_page(State(state): State<Arc<AppState>>, Path(id): Path<String>) -> Response {
    let s = match state.engine.load_schedule(&id).await {
        Ok(s) => s,
        Err(e) => return sqs_error_page(&e),
    };
    let runs = state
        .engine
        .load_schedule_runs(&id)
        .await
        .unwrap_or_default();
    let r = &s.spec.replay;
    let mut body = format!(
        "<p><a href=\"/console/schedules\">← Schedules</a></p><h1>Schedule {}</h1>\
         <table class=\"options\" id=\"schedule-facts\"><tbody>",
        esc(&s.spec.name)
    );
    for (k, v) in [
        ("Id", s.id.clone()),
        ("Cron", format!("{} ({})", s.spec.cron, s.spec.timezone)),
        ("DLQ", arn_name(&s.source_arn).to_string()),
        ("Window", window_text(s.spec.window.as_ref())),
        ("Filter", r.selection.filter.clone().unwrap_or("–".into())),
        ("Transform", r.transform.clone().unwrap_or("–".into())),
        (
            "Destination",
            r.destination
                .clone()
                .unwrap_or("each message's source queue".into()),
        ),
        (
            "Per-key rate",
            r.rate_per.as_ref().map_or("–".into(), |p| {
                format!("{} per {}", rate_text(p.rate), p.key)
            }),
        ),
        ("Global rate", r.rate.map_or("adaptive".into(), rate_text)),
        (
            "Breaker",
            r.breaker.as_ref().map_or("–".into(), |b| {
                format!(
                    "{}% returned within {}s (after {})",
                    b.max_return_share * 100.0,
                    b.window_secs,
                    b.min_replayed
                )
            }),
        ),
        (
            "Limit per run",
            s.spec.max_count.map_or("–".into(), |m| m.to_string()),
        ),
        ("Next run", s.next_run_at.map_or("–".into(), time_text)),
        ("Last run", s.last_run_at.map_or("–".into(), time_text)),
    ] {
        let _ = write!(
            body,
            "<tr><th>{}</th><td><code>{}</code></td></tr>",
            esc(k),
            esc(&v)
        );
    }
    let _ = write!(
        body,
        "</tbody></table><p class=\"actions\"><a href=\"/console/schedules/{}/remove\">Remove this schedule…</a></p>\
         <h2>Runs</h2>",
        url_part(&s.id)
    );
    if runs.is_empty() {
        body.push_str("<p class=\"muted\" id=\"no-runs\">No runs yet.</p>");
    } else {
        body.push_str(
            "<table id=\"run-table\"><thead><tr><th>Due</th><th>Ran</th><th>Outcome</th>\
             <th class=\"num\">Selected</th><th>Replay</th><th>Message</th></tr></thead><tbody>",
        );
        for run in &runs {
            let _ = write!(
                body,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td><td>{}</td><td>{}</td></tr>",
                esc(&time_text(run.at)),
                esc(&time_text(run.ran_at)),
                esc(&run.outcome),
                run.selected,
                run.replay_id.as_deref().map_or("–".into(), |r| format!(
                    "<a href=\"/console/replays/{}\"><code>{}</code></a>",
                    url_part(r),
                    esc(&r.chars().take(8).collect::<String>())
                )),
                esc(run.message.as_deref().unwrap_or("")),
            );
        }
        body.push_str("</tbody></table>");
    }
    html_response(
        StatusCode::OK,
        page(&format!("Schedule {}", s.spec.name), &body),
    )
}

async fn schedule_remove_confirm(
    State(state): State<Arc<AppState>>,
    Extension(visitor): Extension<Visitor>,
    Path(id): Path<String>,
) -> Response {
    let s = match state.engine.load_schedule(&id).await {
        Ok(s) => s,
        Err(e) => return sqs_error_page(&e),
    };
    let body = format!(
        "<h1>Remove schedule {}?</h1><form class=\"confirm\" id=\"confirm-remove-schedule-form\" method=\"post\" action=\"/console/schedules/{id}/remove\">{}\
         <p>It will not fire again (<code>{}</code>). Replays it started are kept.</p>\
         <div class=\"actions\"><button type=\"submit\" class=\"danger\" id=\"confirm-remove-schedule\">Yes, remove it</button>\
         <a href=\"/console/schedules/{id}\">No, back</a></div></form>",
        esc(&s.spec.name),
        csrf_field(&visitor.csrf),
        esc(&s.spec.cron),
        id = url_part(&s.id),
    );
    html_response(StatusCode::OK, page("Remove schedule", &body))
}

async fn schedule_remove(
    State(state): State<Arc<AppState>>,
    Extension(visitor): Extension<Visitor>,
    Path(id): Path<String>,
) -> Response {
    let source = state
        .engine
        .load_schedule(&id)
        .await
        .map(|s| arn_name(&s.source_arn).to_string())
        .unwrap_or_default();
    match state.engine.remove_schedule(&id).await {
        Ok(()) => {
            audit(
                &state,
                &visitor,
                "schedule.remove",
                &source,
                &format!("schedule {id}"),
            )
            .await;
            see_other("/console/schedules")
        }
        Err(e) => sqs_error_page(&e),
    }
}

// ---- Alerts -------------------------------------------------------------------------------

fn json_of<T: serde::Serialize>(v: &T) -> Vec<serde_json::Value> {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::Array(a)) => a,
        _ => Vec::new(),
    }
}

async fn alerts_html(state: &AppState, visitor: &Visitor, error: Option<&str>) -> String {
    let engine = &state.engine;
    let mut error = error.map(str::to_string);
    if let Err(e) = engine.sync_alerts().await {
        error.get_or_insert(e.message);
    }
    let error = error.as_deref();
    alerts_view::alerts_body(
        "<p class=\"muted\">Rules over the minute history, their states per queue, transitions \
         and silences (<code>redrive alerts</code>, <code>/_redrive/v1/alerts</code>; see \
         docs/alerts.md).</p>",
        error,
        &json_of(&engine.alert_rules()),
        &json_of(&engine.alert_history(None, None, alerts_view::HISTORY_SHOWN)),
        &json_of(&engine.silences()),
        engine.clock_now_ms(),
        &visitor.csrf,
    )
}

async fn alerts_page(
    State(state): State<Arc<AppState>>,
    Extension(visitor): Extension<Visitor>,
) -> Response {
    html_response(
        StatusCode::OK,
        page("Alerts", &alerts_html(&state, &visitor, None).await),
    )
}

async fn alerts_error(state: &AppState, visitor: &Visitor, e: &str) -> Response {
    html_response(
        StatusCode::BAD_REQUEST,
        page("Alerts", &alerts_html(state, visitor, Some(e)).await),
    )
}

async fn rule_add(
    State(state): State<Arc<AppState>>,
    Extension(visitor): Extension<Visitor>,
    Extension(form): Extension<PostForm>,
    headers: HeaderMap,
) -> Response {
    let ctx = context(&state, &headers);
    let req = alerts_view::rule_request(&form.0)
        .and_then(|v| serde_json::from_value::<AlertRuleRequest>(v).map_err(|e| e.to_string()));
    let req = match req {
        Ok(r) => r,
        Err(e) => return alerts_error(&state, &visitor, &e).await,
    };
    match state.engine.add_alert_rule(&ctx, req).await {
        Ok(rule) => {
            audit(
                &state,
                &visitor,
                "rule.add",
                &rule.queue,
                &format!("rule {} ({})", rule.name, rule.condition.describe()),
            )
            .await;
            see_other("/console/alerts#rules")
        }
        Err(e) => alerts_error(&state, &visitor, &e.message).await,
    }
}

async fn rule_remove_confirm(
    State(state): State<Arc<AppState>>,
    Extension(visitor): Extension<Visitor>,
    Path(id): Path<String>,
) -> Response {
    if let Err(e) = state.engine.sync_alerts().await {
        return sqs_error_page(&e);
    }
    let r = match state.engine.alert_rule(&id) {
        Ok(r) => r,
        Err(e) => return sqs_error_page(&e),
    };
    let rule = serde_json::to_value(&r).unwrap_or_default();
    html_response(
        StatusCode::OK,
        page(
            "Remove alert rule",
            &alerts_view::rule_remove_confirm(&rule, &visitor.csrf),
        ),
    )
}

async fn rule_remove(
    State(state): State<Arc<AppState>>,
    Extension(visitor): Extension<Visitor>,
    Path(id): Path<String>,
) -> Response {
    let _ = state.engine.sync_alerts().await;
    let name = state
        .engine
        .alert_rule(&id)
        .map(|r| r.rule.name)
        .unwrap_or_default();
    match state.engine.remove_alert_rule(&id).await {
        Ok(()) => {
            audit(
                &state,
                &visitor,
                "rule.remove",
                "",
                &format!("rule {name} ({id})"),
            )
            .await;
            see_other("/console/alerts#rules")
        }
        Err(e) => sqs_error_page(&e),
    }
}

async fn silence_add(
    State(state): State<Arc<AppState>>,
    Extension(visitor): Extension<Visitor>,
    Extension(form): Extension<PostForm>,
) -> Response {
    let req = alerts_view::silence_request(&form.0)
        .and_then(|v| serde_json::from_value::<SilenceRequest>(v).map_err(|e| e.to_string()));
    let req = match req {
        Ok(r) => r,
        Err(e) => return alerts_error(&state, &visitor, &e).await,
    };
    match state.engine.add_silence(req).await {
        Ok(s) => {
            audit(
                &state,
                &visitor,
                "silence.add",
                s.queue.as_deref().unwrap_or("*"),
                &format!(
                    "silence {} of rule {} until {}",
                    s.id,
                    s.rule.as_deref().unwrap_or("any"),
                    time_text(s.until_ms)
                ),
            )
            .await;
            see_other("/console/alerts#silences")
        }
        Err(e) => alerts_error(&state, &visitor, &e.message).await,
    }
}

async fn silence_remove(
    State(state): State<Arc<AppState>>,
    Extension(visitor): Extension<Visitor>,
    Path(id): Path<String>,
) -> Response {
    match state.engine.remove_silence(&id).await {
        Ok(()) => {
            audit(
                &state,
                &visitor,
                "silence.remove",
                "",
                &format!("silence {id}"),
            )
            .await;
            see_other("/console/alerts#silences")
        }
        Err(e) => sqs_error_page(&e),
    }
}

// ---- Audit --------------------------------------------------------------------------------

async fn audit_page(State(state): State<Arc<AppState>>) -> Response {
    let entries = match super::audit::entries(&state.engine).await {
        Ok(e) => e,
        Err(e) => return sqs_error_page(&e),
    };
    let mut body = String::from(
        "<h1>Audit log</h1><p class=\"muted\">Console actions and refused console POSTs of the \
         last 30 days, newest first (the newest 1000), from the server's store: they survive a \
         restart (also written to the server's log at info, target <code>redrive::audit</code>). \
         A replay's own moves are listed on its page.</p>",
    );
    if entries.is_empty() {
        body.push_str("<p class=\"muted\" id=\"no-audit\">Nothing yet.</p>");
    } else {
        body.push_str(
            "<table id=\"audit-table\"><thead><tr><th>At</th><th>Who</th><th>Action</th>\
             <th>On</th><th>Detail</th></tr></thead><tbody>",
        );
        for e in &entries {
            let _ = write!(
                body,
                "<tr data-action=\"{}\"><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&e.action),
                esc(&time_text(e.at_ms)),
                esc(&e.actor),
                esc(&e.action),
                esc(&e.target),
                esc(&e.detail),
            );
        }
        body.push_str("</tbody></table>");
    }
    html_response(StatusCode::OK, page("Audit log", &body))
}

// ---- Purge --------------------------------------------------------------------------------

fn purge_form(
    name: &str,
    visitor: &Visitor,
    counts: (usize, usize, usize),
    error: Option<&str>,
) -> String {
    let (visible, in_flight, delayed) = counts;
    super::html::purge_confirm(
        name,
        &visitor.csrf,
        &format!("{visible} visible, {in_flight} in flight, {delayed} delayed"),
        "",
        error,
    )
}

/// `GET /console/queues/{name}/purge`: the confirmation (the queue's name must be typed).
async fn purge_confirm(
    State(state): State<Arc<AppState>>,
    Extension(visitor): Extension<Visitor>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    let ctx = context(&state, &headers);
    match state.engine.load_queue_summary(&ctx, &name).await {
        Ok(s) => html_response(
            StatusCode::OK,
            page(
                &format!("Purge {name}"),
                &purge_form(&name, &visitor, (s.visible, s.in_flight, s.delayed), None),
            ),
        ),
        Err(e) => sqs_error_page(&e),
    }
}

/// `POST /console/queues/{name}/purge`: `PurgeQueue` (audited with the counts it deleted).
async fn purge(
    State(state): State<Arc<AppState>>,
    Extension(visitor): Extension<Visitor>,
    Extension(form): Extension<PostForm>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    let ctx = context(&state, &headers);
    let s = match state.engine.load_queue_summary(&ctx, &name).await {
        Ok(s) => s,
        Err(e) => return sqs_error_page(&e),
    };
    if form.get("confirm_name") != Some(name.as_str()) {
        return html_response(
            StatusCode::BAD_REQUEST,
            page(
                &format!("Purge {name}"),
                &purge_form(
                    &name,
                    &visitor,
                    (s.visible, s.in_flight, s.delayed),
                    Some("The name typed is not the queue's: nothing was purged."),
                ),
            ),
        );
    }
    match state
        .engine
        .purge_queue(
            &ctx,
            QueueUrlInput {
                queue_url: name.clone(),
            },
        )
        .await
    {
        Ok(()) => {
            audit(
                &state,
                &visitor,
                "queue.purge",
                &name,
                &format!(
                    "{} visible, {} in flight, {} delayed",
                    s.visible, s.in_flight, s.delayed
                ),
            )
            .await;
            see_other(&format!("/console/queues/{}", url_part(&name)))
        }
        Err(e) => bad_request(
            &format!("Purge {name}"),
            &e.message,
            &format!("/console/queues/{}", url_part(&name)),
        ),
    }
}
