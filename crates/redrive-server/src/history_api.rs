//! The minute-history extension (see `docs/inspection.md` and `docs/metrics.md`):
//!
//! - `GET /_redrive/v1/queues/{name}/metrics?since=…&until=…&period=…`: one series per
//!   metric (CloudWatch's names), each point with CloudWatch's statistics (`Sum`, `Average`,
//!   `Minimum`, `Maximum`, `SampleCount`) over one period. `since`/`until`: ISO 8601
//!   (RFC 3339), epoch seconds (or ms), or an age such as `2h`; defaults: the last 3 hours.
//!   `period`: seconds, a multiple of 60 (default 60).
//!
//! Errors use the JSON protocol's shape, as the rest of `/_redrive/v1/`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::response::Response;
use http::HeaderMap;
use redrive_core::{SqsError, SqsResult};
use redrive_engine::history::{Datapoint, HistoryQuery, MetricHistory, parse_time};
use serde_json::{Value, json};

use crate::AppState;
use crate::inspect::{context, json_response};

fn time_param(params: &HashMap<String, String>, name: &str, now: u64) -> SqsResult<Option<u64>> {
    match params.get(name).map(|s| s.trim()) {
        None | Some("") => Ok(None),
        Some(t) => parse_time(t, now).map(Some).map_err(|_| {
            SqsError::invalid_value(
                name,
                t,
                "Must be an ISO 8601 time (2026-04-20T20:20:00Z), epoch seconds, or an age such as 2h.",
            )
        }),
    }
}

fn query(params: &HashMap<String, String>, now: u64) -> SqsResult<HistoryQuery> {
    let period_secs = match params.get("period").map(|s| s.trim()) {
        None | Some("") => 60,
        Some(p) => p
            .parse::<u64>()
            .map_err(|_| SqsError::invalid_value("period", p, "Must be a multiple of 60."))?,
    };
    Ok(HistoryQuery {
        since_ms: time_param(params, "since", now)?,
        until_ms: time_param(params, "until", now)?,
        period_secs,
    })
}

fn point_json(p: &Datapoint) -> Value {
    json!({
        "timestamp": p.timestamp_ms,
        "Sum": p.sum,
        "Average": p.average,
        "Minimum": p.minimum,
        "Maximum": p.maximum,
        "SampleCount": p.sample_count,
    })
}

fn history_json(h: MetricHistory) -> Value {
    json!({
        "queue": h.queue,
        "arn": h.arn,
        "since": h.since_ms,
        "until": h.until_ms,
        "period": h.period_secs,
        "metrics": h.series.iter().map(|s| json!({
            "name": s.def.name,
            "unit": s.def.unit,
            "points": s.points.iter().map(point_json).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

pub async fn queue_metrics(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let ctx = context(&state, &headers, &params);
    let engine = state.engine.clone();
    let now = engine.clock_now_ms();
    let result = match query(&params, now) {
        Ok(q) => engine.queue_metric_history(&ctx, &name, &q).await,
        Err(e) => Err(e),
    };
    json_response(result.map(history_json))
}
