//! Test-only hooks, served only with `--enable-reset-api` (like `/moto-api/reset`), so that a
//! test on a real process can read minute history without waiting minutes:
//!
//! - `POST /_redrive/v1/test/history/flush`: writes the minute history up to now (the ended
//!   minute, then the current one as a partial minute that later writes add to).
//! - `POST /_redrive/v1/test/clock?advance=SECONDS`: moves the engine's clock forward, when the
//!   server runs on a [`ShiftedClock`] (`redrive serve --test-clock-start TIME`).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use axum::Router;
use axum::extract::{Query, State};
use axum::response::Response;
use axum::routing::post;
use redrive_core::SqsError;
use redrive_engine::{Clock, SystemClock};
use serde_json::json;

use crate::AppState;
use crate::inspect::json_response;

/// The system clock shifted by an offset that only grows: it starts at a chosen time and moves
/// forward with real time, or faster when told.
#[derive(Debug)]
pub struct ShiftedClock {
    offset_ms: AtomicI64,
}

impl ShiftedClock {
    /// A clock that reads `start_ms` now.
    pub fn starting_at(start_ms: u64) -> ShiftedClock {
        ShiftedClock {
            offset_ms: AtomicI64::new(start_ms as i64 - SystemClock.now_ms() as i64),
        }
    }

    pub fn advance_ms(&self, ms: u64) {
        self.offset_ms
            .fetch_add(ms.min(i64::MAX as u64 / 2) as i64, Ordering::SeqCst);
    }
}

impl Clock for ShiftedClock {
    fn now_ms(&self) -> u64 {
        (SystemClock.now_ms() as i64)
            .saturating_add(self.offset_ms.load(Ordering::SeqCst))
            .max(0) as u64
    }
}

/// Adds the hooks to the (authenticated) extension router.
pub fn routes(router: Router<Arc<AppState>>, _state: &Arc<AppState>) -> Router<Arc<AppState>> {
    router
        .route("/_redrive/v1/test/history/flush", post(flush_history))
        .route("/_redrive/v1/test/clock", post(advance_clock))
}

async fn flush_history(State(state): State<Arc<AppState>>) -> Response {
    let ended = state.engine.flush_history().await;
    let current = state.engine.flush_history_partial().await;
    let alarm_changes = state.engine.evaluate_cw_alarms().await;
    json_response(Ok(json!({
        "alarmStateChanges": alarm_changes,
        "ended": {"minute": ended.minute_ms, "documents": ended.documents},
        "current": {"minute": current.minute_ms, "documents": current.documents},
    })))
}

async fn advance_clock(
    State(state): State<Arc<AppState>>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let Some(clock) = &state.config.test_clock else {
        return json_response(Err(SqsError::invalid_parameter(
            "The server does not run on a test clock (start it with --test-clock-start).",
        )));
    };
    let secs = match params.get("advance").map(|s| s.trim().parse::<u64>()) {
        Some(Ok(s)) => s,
        _ => {
            return json_response(Err(SqsError::invalid_parameter(
                "The parameter advance (seconds, a whole number) is required.",
            )));
        }
    };
    clock.advance_ms(secs.saturating_mul(1000));
    json_response(Ok(json!({"now": state.engine.clock_now_ms()})))
}
