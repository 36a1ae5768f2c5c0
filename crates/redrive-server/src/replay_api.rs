//! The selective-redrive and schedules API (a Redrive extension under `/_redrive/v1/`; the
//! contract is docs/replay-api.md). Errors: `{"__type": SHAPE, "message"}` with the status
//! of the error table, plus `409 ReplayRunning` with `replayId`. Replays and schedules also
//! serve a shared database store (the engine dispatches: `Engine::load_*`, `start_replay`, …).

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode, header};
use redrive_core::SqsError;
use redrive_engine::replays::{ReplayError, ReplayRequest, ReplayStart};
use redrive_engine::schedules::ScheduleRequest;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::AppState;
use crate::inspect::context;

fn ok(status: StatusCode, v: Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        v.to_string(),
    )
        .into_response()
}

/// The one error response of every extension API (inspection, replays, schedules, auth):
/// `{"__type": SHAPE, "message"}` with the error table's status; `SHAPE` is the bare shape name
/// (`QueueDoesNotExist`), without SQS's `com.amazonaws.sqs#` namespace.
pub(crate) fn error(e: SqsError) -> Response {
    let status = StatusCode::from_u16(e.code.status()).unwrap_or(StatusCode::BAD_REQUEST);
    ok(
        status,
        json!({"__type": e.code.extension_name(), "message": e.message}),
    )
}

fn replay_error(e: ReplayError) -> Response {
    match e {
        ReplayError::Sqs(e) => error(e),
        ReplayError::Running { replay_id } => ok(
            StatusCode::CONFLICT,
            json!({
                "__type": "ReplayRunning",
                "message": format!("A replay is already running on this queue: {replay_id}."),
                "replayId": replay_id,
            }),
        ),
    }
}

fn parse_body<T: DeserializeOwned>(body: &Bytes) -> Result<T, SqsError> {
    let text = if body.is_empty() {
        &b"{}"[..]
    } else {
        &body[..]
    };
    serde_json::from_slice(text)
        .map_err(|e| SqsError::invalid_parameter(format!("Invalid request body: {e}")))
}

fn to_json<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

pub async fn start_replay(
    State(state): State<Arc<AppState>>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let ctx = context(&state, &headers, &params);
    let req: ReplayRequest = match parse_body(&body) {
        Ok(r) => r,
        Err(e) => return error(e),
    };
    let started = state.engine.start_replay(&ctx, req).await;
    match started {
        Ok(ReplayStart::DryRun(d)) => ok(StatusCode::OK, to_json(&d)),
        Ok(ReplayStart::Started(t)) => ok(StatusCode::CREATED, to_json(&t)),
        Err(e) => replay_error(e),
    }
}

pub async fn list_replays(
    State(state): State<Arc<AppState>>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let ctx = context(&state, &headers, &params);
    let source = params.get("source").map(String::as_str);
    let listed = state.engine.load_replays(&ctx, source).await;
    match listed {
        Ok(v) => ok(StatusCode::OK, json!({ "replays": to_json(&v) })),
        Err(e) => error(e),
    }
}

pub async fn get_replay(State(state): State<Arc<AppState>>, Path(id): Path<String>) -> Response {
    let found = state.engine.load_replay(&id).await;
    match found {
        Ok(t) => ok(StatusCode::OK, to_json(&t)),
        Err(e) => error(e),
    }
}

pub async fn replay_moves(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let num =
        |name: &str, default: u64, max: u64| -> Result<u64, SqsError> {
            match params.get(name) {
                None => Ok(default),
                Some(v) => v.parse::<u64>().ok().filter(|n| *n <= max).ok_or_else(|| {
                    SqsError::invalid_value(name, v, "Must be a number within range.")
                }),
            }
        };
    let (after, limit) = match (num("after", 0, u64::MAX), num("limit", 1000, 10_000)) {
        (Ok(a), Ok(l)) => (a, l.max(1)),
        (Err(e), _) | (_, Err(e)) => return error(e),
    };
    let page = state
        .engine
        .load_replay_moves(&id, after, limit as usize)
        .await;
    match page {
        Ok((moves, next)) => ok(
            StatusCode::OK,
            json!({"moves": to_json(&moves), "next": next}),
        ),
        Err(e) => error(e),
    }
}

pub async fn cancel_replay(State(state): State<Arc<AppState>>, Path(id): Path<String>) -> Response {
    let cancelled = state.engine.cancel_replay(&id).await;
    match cancelled {
        Ok(t) => ok(StatusCode::OK, to_json(&t)),
        Err(e) => error(e),
    }
}

pub async fn add_schedule(
    State(state): State<Arc<AppState>>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let ctx = context(&state, &headers, &params);
    let req: ScheduleRequest = match parse_body(&body) {
        Ok(r) => r,
        Err(e) => return error(e),
    };
    let added = state.engine.add_schedule(&ctx, req).await;
    match added {
        Ok(s) => ok(StatusCode::CREATED, to_json(&s)),
        Err(e) => error(e),
    }
}

pub async fn list_schedules(State(state): State<Arc<AppState>>) -> Response {
    let listed = state.engine.load_schedules().await;
    match listed {
        Ok(l) => ok(StatusCode::OK, json!({ "schedules": to_json(&l) })),
        Err(e) => error(e),
    }
}

pub async fn get_schedule(State(state): State<Arc<AppState>>, Path(id): Path<String>) -> Response {
    let found = state.engine.load_schedule(&id).await;
    match found {
        Ok(s) => ok(StatusCode::OK, to_json(&s)),
        Err(e) => error(e),
    }
}

pub async fn remove_schedule(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Response {
    let removed = state.engine.remove_schedule(&id).await;
    match removed {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => error(e),
    }
}

pub async fn schedule_runs(State(state): State<Arc<AppState>>, Path(id): Path<String>) -> Response {
    let runs = state.engine.load_schedule_runs(&id).await;
    match runs {
        Ok(r) => ok(StatusCode::OK, json!({ "runs": to_json(&r) })),
        Err(e) => error(e),
    }
}
