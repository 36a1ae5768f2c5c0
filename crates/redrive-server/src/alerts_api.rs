//! The alerts extension (see `docs/alerts.md`, "API"), behind the same authentication as the
//! rest of `/_redrive/v1/`:
//!
//! - `POST /_redrive/v1/alerts/rules` (a rule; 201), `GET …/alerts/rules` (rules with the state
//!   of each matching queue), `GET|DELETE …/alerts/rules/{id or name}`.
//! - `GET /_redrive/v1/alerts/history?rule=&queue=&limit=`: transitions, newest first.
//! - `POST|GET /_redrive/v1/alerts/silences`, `DELETE …/alerts/silences/{id}`.
//! - `GET /_redrive/v1/alerts/outbox`: notifications not yet delivered (attempts, next try,
//!   last error).
//!
//! Errors: `{"__type", "message"}` as in `replay_api.rs`; a bad body changes nothing.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::{HeaderMap, StatusCode, header};
use redrive_core::SqsError;
use redrive_engine::alerts::{AlertRuleRequest, SilenceRequest};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::AppState;
use crate::inspect::context;
use crate::replay_api::error;

/// The routes, merged into the authenticated extension router.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/_redrive/v1/alerts/rules", get(list_rules).post(add_rule))
        .route(
            "/_redrive/v1/alerts/rules/{id}",
            get(get_rule).delete(remove_rule),
        )
        .route("/_redrive/v1/alerts/history", get(history))
        .route(
            "/_redrive/v1/alerts/silences",
            get(list_silences).post(add_silence),
        )
        .route(
            "/_redrive/v1/alerts/silences/{id}",
            axum::routing::delete(remove_silence),
        )
        .route("/_redrive/v1/alerts/outbox", get(outbox))
}

fn reply(status: StatusCode, v: Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        v.to_string(),
    )
        .into_response()
}

fn to_json<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

fn parse_body<T: DeserializeOwned>(body: &Bytes) -> Result<T, SqsError> {
    serde_json::from_slice(body)
        .map_err(|e| SqsError::invalid_parameter(format!("Invalid request body: {e}")))
}

async fn add_rule(
    State(state): State<Arc<AppState>>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let ctx = context(&state, &headers, &params);
    let req: AlertRuleRequest = match parse_body(&body) {
        Ok(r) => r,
        Err(e) => return error(e),
    };
    match state.engine.add_alert_rule(&ctx, req).await {
        Ok(rule) => reply(StatusCode::CREATED, to_json(&rule)),
        Err(e) => error(e),
    }
}

async fn list_rules(State(state): State<Arc<AppState>>) -> Response {
    if let Err(e) = state.engine.sync_alerts().await {
        return error(e);
    }
    reply(
        StatusCode::OK,
        json!({ "rules": to_json(&state.engine.alert_rules()) }),
    )
}

async fn get_rule(State(state): State<Arc<AppState>>, Path(id): Path<String>) -> Response {
    if let Err(e) = state.engine.sync_alerts().await {
        return error(e);
    }
    match state.engine.alert_rule(&id) {
        Ok(v) => reply(StatusCode::OK, to_json(&v)),
        Err(e) => error(e),
    }
}

async fn remove_rule(State(state): State<Arc<AppState>>, Path(id): Path<String>) -> Response {
    match state.engine.remove_alert_rule(&id).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => error(e),
    }
}

async fn history(
    State(state): State<Arc<AppState>>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let limit = match params.get("limit") {
        None => 100,
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=10_000).contains(&n) => n,
            _ => {
                return error(SqsError::invalid_value(
                    "limit",
                    v,
                    "Must be between 1 and 10000.",
                ));
            }
        },
    };
    if let Err(e) = state.engine.sync_alerts().await {
        return error(e);
    }
    let h = state.engine.alert_history(
        params.get("rule").map(String::as_str),
        params.get("queue").map(String::as_str),
        limit,
    );
    reply(StatusCode::OK, json!({ "history": to_json(&h) }))
}

async fn add_silence(State(state): State<Arc<AppState>>, body: Bytes) -> Response {
    let req: SilenceRequest = match parse_body(&body) {
        Ok(r) => r,
        Err(e) => return error(e),
    };
    match state.engine.add_silence(req).await {
        Ok(s) => reply(StatusCode::CREATED, to_json(&s)),
        Err(e) => error(e),
    }
}

async fn list_silences(State(state): State<Arc<AppState>>) -> Response {
    if let Err(e) = state.engine.sync_alerts().await {
        return error(e);
    }
    reply(
        StatusCode::OK,
        json!({ "silences": to_json(&state.engine.silences()) }),
    )
}

async fn remove_silence(State(state): State<Arc<AppState>>, Path(id): Path<String>) -> Response {
    match state.engine.remove_silence(&id).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => error(e),
    }
}

async fn outbox(State(state): State<Arc<AppState>>) -> Response {
    if let Err(e) = state.engine.sync_alerts().await {
        return error(e);
    }
    reply(
        StatusCode::OK,
        json!({ "notifications": to_json(&state.engine.pending_alert_notifications()) }),
    )
}
