//! The Redrive inspection API (an extension outside SQS), under `/_redrive/v1/`:
//!
//! - `GET /_redrive/v1/queues/{name}`: counts, settings, DLQ sources, pending DLQ moves.
//! - `GET /_redrive/v1/queues/{name}/messages?state=visible|inflight|delayed&limit=N&after=C`:
//!   messages with body, attributes, state and `deadLetteredAt`, oldest first, without
//!   receiving them (receive counts and visibility never change).
//!
//! Both also serve a shared database store (`--store postgres://`), reading its rows.
//!
//! The Region is the `region` query parameter, else the SigV4 scope, else the server's.
//! Errors use the JSON protocol's shape.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode, header};
use redrive_core::{SqsError, SqsResult};
use redrive_engine::{BrowseCursor, BrowseQuery, BrowsedMessage, MessageState, RequestContext};
use serde_json::{Value, json};

use crate::AppState;
use crate::context::{base_url, region_from_headers};

pub(crate) fn context(
    state: &AppState,
    headers: &HeaderMap,
    params: &HashMap<String, String>,
) -> RequestContext {
    let region = params
        .get("region")
        .cloned()
        .or_else(|| region_from_headers(headers))
        .unwrap_or_else(|| state.config.region.clone());
    RequestContext {
        region,
        base_url: base_url(
            headers,
            &format!("{}:{}", state.config.host, state.config.port),
        ),
    }
}

pub(crate) fn json_response(result: SqsResult<Value>) -> Response {
    match result {
        Ok(v) => ([(header::CONTENT_TYPE, "application/json")], v.to_string()).into_response(),
        Err(e) => crate::replay_api::error(e),
    }
}

pub async fn queue_summary(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let ctx = context(&state, &headers, &params);
    let summary = state.engine.load_queue_summary(&ctx, &name).await;
    json_response(summary.map(|s| {
        json!({
            "name": s.name,
            "arn": s.arn,
            "url": state.engine.queue_url(&ctx, &name),
            "fifo": s.fifo,
            "visible": s.visible,
            "inFlight": s.in_flight,
            "delayed": s.delayed,
            "pendingDeadLetter": s.pending_dead_letter,
            "oldestEnqueuedAt": s.oldest_enqueued_ms,
            "attributes": s.attributes,
            "deadLetterSources": s.dead_letter_sources,
        })
    }))
}

/// `GET /_redrive/v1/quarantine`: stored records that failed verification (checksum or
/// decode) and were moved aside instead of being served, oldest first. Contents are never shown.
pub async fn quarantine(State(state): State<Arc<AppState>>) -> Response {
    json_response(state.engine.quarantined().map(|records| {
        let failed = records.iter().filter(|r| r.failed_verification).count();
        json!({
            "count": records.len(),
            "failedVerification": failed,
            "records": records.into_iter().map(|r| json!({
                "table": r.table,
                "key": r.key,
                "reason": r.reason,
                "failedVerification": r.failed_verification,
                "queueUid": r.message.map(|(q, _)| q),
                "seq": r.message.map(|(_, s)| s),
                "quarantinedAt": r.quarantined_ms,
            })).collect::<Vec<_>>(),
        })
    }))
}

fn message_json(m: BrowsedMessage) -> Value {
    json!({
        "messageId": m.message_id,
        "body": m.body,
        "state": m.state.as_str(),
        "sentTimestamp": m.sent_ms,
        "enqueuedAt": m.enqueued_ms,
        "visibleAt": m.visible_at_ms,
        "receiveCount": m.receive_count,
        "firstReceiveTimestamp": m.first_receive_ms,
        "messageGroupId": m.group_id,
        "messageDeduplicationId": m.dedup_id,
        "sequenceNumber": m.sequence_number,
        "deadLetterQueueSourceArn": m.dead_letter_source_arn,
        "deadLetteredAt": m.dead_lettered_ms,
        "messageAttributes": serde_json::to_value(&m.message_attributes).unwrap_or(Value::Null),
        "systemAttributes": serde_json::to_value(&m.system_attributes).unwrap_or(Value::Null),
    })
}

pub async fn queue_messages(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let ctx = context(&state, &headers, &params);
    let query = (|| -> SqsResult<BrowseQuery> {
        let state_filter = match params.get("state").map(String::as_str) {
            None | Some("") | Some("all") => None,
            Some(s) => Some(MessageState::parse(s).ok_or_else(|| {
                SqsError::invalid_value("state", s, "Must be visible, inflight, delayed or all.")
            })?),
        };
        let limit = match params.get("limit") {
            None => 100,
            Some(l) => l
                .parse()
                .map_err(|_| SqsError::invalid_value("limit", l, "Must be between 1 and 1000."))?,
        };
        let after = match params.get("after") {
            None => None,
            Some(c) => Some(BrowseCursor::decode(c).ok_or_else(|| {
                SqsError::invalid_value("after", c, "Not a cursor from a previous page.")
            })?),
        };
        Ok(BrowseQuery {
            state: state_filter,
            limit,
            after,
        })
    })();
    let page = match query {
        Err(e) => Err(e),
        Ok(q) => state.engine.load_messages(&ctx, &name, &q).await,
    };
    json_response(page.map(|page| {
        json!({
            "messages": page.messages.into_iter().map(message_json).collect::<Vec<_>>(),
            "next": page.next.map(|c| c.encode()),
        })
    }))
}

/// `GET /_redrive/v1/health`: whether the server can serve and write. 200 while it serves
/// (`status` `ok`, or `degraded` while store space is short and writes that grow the store are
/// refused); 503 while the store refuses every write and cannot be recovered. Unauthenticated,
/// like `/_redrive/health`, for load balancers and wait-for scripts.
pub async fn health(State(state): State<Arc<AppState>>) -> Response {
    let synced = state.engine.ensure_synced();
    let h = state.engine.store_health();
    let quarantined = state.engine.quarantined_count();
    let status = if synced.is_err() || h.failed.is_some() {
        "failing"
    } else if h.low_space.is_some() {
        "degraded"
    } else {
        "ok"
    };
    let body = json!({
        "status": status,
        "store": {
            "durable": state.config.storage.is_durable(),
            "writable": synced.is_ok() && h.failed.is_none(),
            "acceptsAllWrites": status == "ok",
            "failure": h.failed,
            "lowSpace": h.low_space,
            "freeBytes": h.free_bytes,
            "writeFailures": h.failures,
            "lastError": h.last_error,
            "quarantinedRecords": quarantined,
        },
    });
    let code = if status == "failing" {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}
