//! The axum router: every SQS request goes through [`handle_sqs`], which decodes with the
//! caller's protocol and answers in it. Framework rejections never reach a client: bodies are
//! read by hand and every failure is an SQS-shaped error.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Request as HttpRequest, State};
use axum::response::{IntoResponse, Response as HttpResponse};
use axum::routing::{any, get, post};
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use redrive_core::api::{Request, Response};
use redrive_core::{ErrorCode, SqsError};
use redrive_engine::RequestContext;
use redrive_protocol::{Protocol, json, query};

use crate::AppState;
use crate::context::{base_url, region_from_credential, region_from_headers};
use crate::dispatch::dispatch;
use crate::replay_api;

pub fn router(state: Arc<AppState>) -> Router {
    // The extension API (and the reset hook) sit behind the same authentication as SQS.
    // What also serves a shared database store.
    let shared_ready = Router::new()
        .route(
            "/_redrive/v1/queues/{name}",
            get(crate::inspect::queue_summary),
        )
        .route(
            "/_redrive/v1/queues/{name}/messages",
            get(crate::inspect::queue_messages),
        )
        .route(
            "/_redrive/v1/replays",
            post(replay_api::start_replay).get(replay_api::list_replays),
        )
        .route("/_redrive/v1/replays/{id}", get(replay_api::get_replay))
        .route(
            "/_redrive/v1/replays/{id}/moves",
            get(replay_api::replay_moves),
        )
        .route(
            "/_redrive/v1/replays/{id}/cancel",
            post(replay_api::cancel_replay),
        )
        .route(
            "/_redrive/v1/schedules",
            post(replay_api::add_schedule).get(replay_api::list_schedules),
        )
        .route(
            "/_redrive/v1/schedules/{id}",
            get(replay_api::get_schedule).delete(replay_api::remove_schedule),
        )
        .route(
            "/_redrive/v1/schedules/{id}/runs",
            get(replay_api::schedule_runs),
        )
        .route(
            "/_aws/sqs/messages",
            get(crate::localstack::messages).post(crate::localstack::messages),
        )
        .route(
            "/_aws/sqs/messages/{region}/{account}/{queue}",
            get(crate::localstack::messages_of),
        )
        .route(
            "/_redrive/v1/queues/{name}/metrics",
            get(crate::history_api::queue_metrics),
        )
        .merge(crate::alerts_api::routes());
    let shared_ready = if state.config.enable_reset_api {
        crate::test_api::routes(shared_ready, &state).route("/moto-api/reset", post(handle_reset))
    } else {
        shared_ready
    };
    let shared_ready = shared_ready.route_layer(axum::middleware::from_fn_with_state(
        state.clone(),
        crate::auth::require,
    ));
    let extensions =
        Router::new().route("/_redrive/v1/quarantine", get(crate::inspect::quarantine));
    let extensions = extensions.route_layer(axum::middleware::from_fn_with_state(
        state.clone(),
        crate::auth::require,
    ));
    // The quarantine holds the embedded store's unreadable records: a database has none, so
    // over one it answers an error instead of an empty list.
    let extensions = if state.engine.shared_backend().is_some() {
        extensions.route_layer(axum::middleware::from_fn(shared_unsupported))
    } else {
        extensions
    };
    let console = crate::console::routes(state.clone());
    let router = Router::new()
        .route("/", any(handle_sqs))
        .route("/{account}/{queue}", any(handle_sqs))
        .route("/_redrive/health", any(|| async { "ok" }))
        .route("/_redrive/v1/health", get(crate::inspect::health))
        .route("/_localstack/health", get(crate::localstack::health))
        .route("/_localstack/init", get(crate::localstack::init))
        .route("/metrics", get(crate::metrics::handle))
        .merge(console)
        .merge(shared_ready)
        .merge(extensions);
    router
        .fallback(any(handle_sqs))
        .layer(DefaultBodyLimit::disable())
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(|_| {
            let err = SqsError::internal("The server encountered an internal error.");
            error_response(Protocol::Json, &err, &new_request_id())
        }))
        .with_state(state)
}

/// `UnsupportedOperation` for what a shared database store does not serve yet.
async fn shared_unsupported(req: HttpRequest, _next: axum::middleware::Next) -> HttpResponse {
    let err = SqsError::new(
        ErrorCode::UnsupportedOperation,
        format!(
            "{} is not supported yet with a shared database store (--store postgres://); see docs/compatibility.md.",
            req.uri().path()
        ),
    );
    error_response(Protocol::Json, &err, &new_request_id())
}

async fn handle_reset(State(state): State<Arc<AppState>>) -> HttpResponse {
    if let Err(e) = state.engine.reset_all().await {
        return error_response(Protocol::Json, &e, &new_request_id());
    }
    tracing::info!("state reset through /moto-api/reset");
    (
        [(header::CONTENT_TYPE, "application/json")],
        "{\"status\":\"ok\"}",
    )
        .into_response()
}

fn new_request_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

async fn handle_sqs(State(state): State<Arc<AppState>>, req: HttpRequest) -> HttpResponse {
    let started = Instant::now();
    let request_id = new_request_id();
    let (parts, body) = req.into_parts();
    let headers = &parts.headers;
    // A target that is present but not visible ASCII still makes the request JSON.
    let has_target = headers.contains_key("x-amz-target");
    let protocol = redrive_protocol::detect(
        header_str(headers, "content-type"),
        has_target.then_some(""),
    );

    let body = match read_body(body, state.config.max_body_bytes).await {
        Ok(b) => b,
        Err(e) => {
            tracing::info!(code = e.code.query_code(), message = %e.message, "request body dropped");
            // The rest of the body is unread: answer, then close the connection.
            return close_connection(error_response(protocol, &e, &request_id));
        }
    };

    if let Some(resp) = crate::cloudwatch::try_handle(&state, &parts, &body).await {
        return resp;
    }
    if let Err(e) = crate::auth::authenticate(&state.config.auth, &parts, &body) {
        return error_response(protocol, &e, &request_id);
    }

    let path = parts.uri.path().to_string();
    let query_string = parts.uri.query();
    // A bare GET (no Action): AWS's front end answers 404 `<UnknownOperationException/>`.
    if matches!(protocol, Protocol::Query)
        && parts.method == Method::GET
        && !has_action(query_string)
    {
        return unknown_operation(&request_id);
    }
    let mut region = region_from_headers(headers);
    let base = base_url(
        headers,
        &format!("{}:{}", state.config.host, state.config.port),
    );

    let decoded: Result<Request, SqsError> = match protocol {
        Protocol::Json => {
            if parts.method != Method::POST {
                Err(SqsError::new(
                    ErrorCode::InvalidAction,
                    "The JSON protocol requires POST.",
                ))
            } else if has_target && !is_json_1_0(headers) {
                Err(SqsError::new(
                    ErrorCode::UnknownOperationException,
                    "An X-Amz-Target request must have Content-Type application/x-amz-json-1.0.",
                ))
            } else if has_target && header_str(headers, "x-amz-target").is_none() {
                Err(SqsError::new(
                    ErrorCode::UnknownOperationException,
                    "The X-Amz-Target header contains a character that is not allowed.",
                ))
            } else {
                json::decode(header_str(headers, "x-amz-target"), &body)
            }
        }
        Protocol::Query => {
            let form_body: &[u8] = if parts.method == Method::POST {
                &body
            } else {
                &[]
            };
            query::parse_params(query_string, form_body).and_then(|params| {
                if region.is_none() {
                    region = params
                        .str("X-Amz-Credential")
                        .and_then(region_from_credential)
                        .map(str::to_string);
                }
                let path_url = queue_path(&path).map(|p| format!("{base}{p}"));
                query::decode(&params, path_url.as_deref())
            })
        }
    };
    let ctx = RequestContext {
        region: region.unwrap_or_else(|| state.config.region.clone()),
        base_url: base,
    };

    let decoded = decoded.map(|r| with_trace_header(r, headers));
    let (action, result) = match decoded {
        Ok(request) => {
            let action = request.action().name();
            (action, dispatch(&state.engine, &ctx, request).await)
        }
        Err(e) => ("-", Err(e)),
    };
    let response = match &result {
        Ok(resp) => success_response(protocol, resp, &request_id),
        Err(e) => error_response(protocol, e, &request_id),
    };
    let status = response.status().as_u16();
    if state.config.metrics_enabled {
        state.metrics.observe(
            action,
            result.as_ref().err().map(|e| e.code.shape()),
            started.elapsed(),
        );
    }
    match &result {
        Err(e) if e.code.status() >= 500 => {
            tracing::error!(%action, status, code = e.code.query_code(), message = %e.message, "request failed");
        }
        Err(e) => tracing::info!(
            %action, status, code = e.code.query_code(), elapsed_ms = started.elapsed().as_millis() as u64,
            "request rejected"
        ),
        Ok(_) => {
            tracing::info!(%action, status, elapsed_ms = started.elapsed().as_millis() as u64, "request")
        }
    }
    response
}

/// `Content-Type: application/x-amz-json-1.0`, any case, parameters (`; charset=…`) ignored.
fn is_json_1_0(headers: &HeaderMap) -> bool {
    header_str(headers, "content-type").is_some_and(|ct| {
        ct.split(';')
            .next()
            .is_some_and(|media| media.trim().eq_ignore_ascii_case(json::CONTENT_TYPE))
    })
}

/// Reads a whole request body of at most `limit` bytes. The connection edge bounds how long
/// that may take ([`crate::edge::BodyTimeout`]); every failure is an SQS error.
pub async fn read_body(body: Body, limit: usize) -> Result<bytes::Bytes, SqsError> {
    use http_body_util::BodyExt;
    let mut body = body;
    let mut buf = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| body_error(e.into_inner()))?;
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > limit {
                return Err(SqsError::new(
                    ErrorCode::RequestEntityTooLarge,
                    format!("Request body is larger than {limit} bytes."),
                ));
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(buf.freeze())
}

fn body_error(err: Box<dyn std::error::Error + Send + Sync>) -> SqsError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err.as_ref());
    while let Some(e) = source {
        if let Some(timeout) = e.downcast_ref::<crate::edge::BodyTimeout>() {
            return SqsError::new(
                ErrorCode::RequestTimeout,
                format!(
                    "Your socket connection to the server was not read from within the timeout \
                     period: {timeout}."
                ),
            );
        }
        source = e.source();
    }
    SqsError::new(
        ErrorCode::InvalidParameterValue,
        format!("The request body could not be read: {err}."),
    )
}

/// Marks a response as the last on its connection.
pub fn close_connection(mut resp: HttpResponse) -> HttpResponse {
    resp.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    resp
}

/// A send carrying an `X-Amzn-Trace-Id` header (the SDKs' recursion detection sets it from
/// Lambda's `_X_AMZN_TRACE_ID`; X-Ray instrumentation sets it too) stores it as the
/// `AWSTraceHeader` system attribute, unless the message sets that attribute itself.
fn with_trace_header(mut request: Request, headers: &http::HeaderMap) -> Request {
    let Some(trace) = header_str(headers, "x-amzn-trace-id").filter(|t| !t.is_empty()) else {
        return request;
    };
    let value = redrive_core::api::MessageAttributeValue {
        string_value: Some(trace.to_string()),
        data_type: "String".into(),
        ..Default::default()
    };
    let add = |attrs: &mut redrive_core::api::MessageAttributes| {
        attrs
            .entry("AWSTraceHeader".into())
            .or_insert_with(|| value.clone());
    };
    match &mut request {
        Request::SendMessage(i) => add(&mut i.message_system_attributes),
        Request::SendMessageBatch(i) => {
            for e in &mut i.entries {
                add(&mut e.message_system_attributes);
            }
        }
        _ => {}
    }
    request
}

/// Whether a query string names an `Action`.
fn has_action(query: Option<&str>) -> bool {
    query.is_some_and(|q| q.split('&').any(|kv| kv.starts_with("Action=")))
}

/// AWS's answer to a GET without an action: 404 with the body `<UnknownOperationException/>`
/// (AWS-recorded; LocalStack's validated query API answers the same).
fn unknown_operation(request_id: &str) -> HttpResponse {
    with_common_headers(
        (StatusCode::NOT_FOUND, "<UnknownOperationException/>").into_response(),
        query::CONTENT_TYPE,
        request_id,
    )
}

/// `/{account}/{queue}` or `/queue/{region}/{account}/{queue}` → that path (queue-URL path
/// requests of the Query protocol).
fn queue_path(path: &str) -> Option<&str> {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    (segs.len() == 2 || (segs.len() == 4 && segs[0] == "queue")).then_some(path)
}

fn with_common_headers(
    mut resp: HttpResponse,
    content_type: &'static str,
    request_id: &str,
) -> HttpResponse {
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(v) = HeaderValue::from_str(request_id) {
        h.insert("x-amzn-requestid", v);
    }
    resp
}

pub(crate) fn success_response(
    protocol: Protocol,
    resp: &Response,
    request_id: &str,
) -> HttpResponse {
    match protocol {
        Protocol::Json => with_common_headers(
            (StatusCode::OK, Body::from(json::encode_response(resp))).into_response(),
            json::CONTENT_TYPE,
            request_id,
        ),
        Protocol::Query => with_common_headers(
            (
                StatusCode::OK,
                Body::from(query::encode_response(resp, request_id)),
            )
                .into_response(),
            query::CONTENT_TYPE,
            request_id,
        ),
    }
}

pub(crate) fn error_response(protocol: Protocol, err: &SqsError, request_id: &str) -> HttpResponse {
    let status = StatusCode::from_u16(err.code.status()).unwrap_or(StatusCode::BAD_REQUEST);
    let mut resp = match protocol {
        Protocol::Json => with_common_headers(
            (status, Body::from(json::encode_error(err))).into_response(),
            json::CONTENT_TYPE,
            request_id,
        ),
        Protocol::Query => with_common_headers(
            (status, Body::from(query::encode_error(err, request_id))).into_response(),
            query::CONTENT_TYPE,
            request_id,
        ),
    };
    if let Ok(v) = HeaderValue::from_str(&err.query_error_header()) {
        resp.headers_mut().insert("x-amzn-query-error", v);
    }
    resp
}
