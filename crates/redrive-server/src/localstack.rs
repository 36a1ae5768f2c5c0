//! LocalStack's developer endpoints, so test suites written for LocalStack run unchanged
//! (docs/compatibility.md, "LocalStack endpoints"):
//!
//! - `GET /_localstack/health`: `{"services": {"sqs": "running"}, "edition", "version"}`,
//!   what wait-for scripts and compose health checks poll.
//! - `GET /_localstack/init`: the init-hook stages, all complete (Redrive has no init
//!   scripts; queues come from `--config`).
//! - `GET|POST /_aws/sqs/messages` (`QueueUrl` as a query or form parameter, or a JSON 1.0
//!   `ReceiveMessage` body) and `GET /_aws/sqs/messages/{region}/{account}/{queue}`: every
//!   visible message, shaped as `ReceiveMessage`'s answer, without changing visibility or
//!   receive counts (our non-destructive browse). `ShowInvisible=true` adds in-flight
//!   messages (and FIFO messages behind an in-flight one of their group) with an `IsVisible`
//!   attribute; `ShowDelayed=true` adds delayed ones with `IsDelayed`. The answer is JSON 1.0
//!   for a JSON 1.0 request, XML otherwise, or the XML document's JSON form with
//!   `Accept: application/json`.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, Request as HttpRequest, State};
use axum::response::{IntoResponse, Response as HttpResponse};
use http::{HeaderMap, Method, StatusCode, header};
use redrive_core::api::{ReceiveMessageOutput, ReceivedMessage, Response};
use redrive_core::arn::{parse_queue_url, queue_url_region};
use redrive_core::digest::{md5_hex, md5_of_attributes};
use redrive_core::{ErrorCode, SqsError};
use redrive_engine::{BrowseQuery, MessageState, RequestContext};
use redrive_protocol::Protocol;
use serde_json::{Value, json};

use crate::AppState;
use crate::context::region_from_headers;
use crate::http::{error_response, read_body, success_response};

/// The receipt handle LocalStack gives peeked messages: not usable to delete or change them.
const BACKDOOR_RECEIPT: &str = "SQS/BACKDOOR/ACCESS";

fn json_body(status: StatusCode, v: Value) -> HttpResponse {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        v.to_string(),
    )
        .into_response()
}

pub async fn health() -> HttpResponse {
    json_body(
        StatusCode::OK,
        json!({
            "services": {"sqs": "running"},
            "edition": "community",
            "version": format!("redrive-{}", env!("CARGO_PKG_VERSION")),
        }),
    )
}

pub async fn init() -> HttpResponse {
    json_body(
        StatusCode::OK,
        json!({
            "completed": {"BOOT": true, "START": true, "READY": true, "SHUTDOWN": false},
            "scripts": [],
        }),
    )
}

/// `/_aws/sqs/messages`: the queue from `QueueUrl`.
pub async fn messages(State(state): State<Arc<AppState>>, req: HttpRequest) -> HttpResponse {
    let (parts, body) = req.into_parts();
    let format = Format::of(&parts.headers);
    let request_id = uuid::Uuid::new_v4().to_string();
    let body = match read_body(body, state.config.max_body_bytes).await {
        Ok(b) => b,
        Err(e) => return format.error(&e, &request_id),
    };
    // Parameters: the query string, a form body, or a JSON 1.0 ReceiveMessage body.
    let mut params: BTreeMap<String, String> = form_pairs(parts.uri.query().unwrap_or(""));
    if parts.method == Method::POST {
        if format == Format::Json {
            let target = parts
                .headers
                .get("x-amz-target")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if !target.is_empty() && target != "AmazonSQS.ReceiveMessage" {
                return format.error(
                    &SqsError::new(
                        ErrorCode::InvalidAction,
                        "This endpoint only accepts ReceiveMessage calls",
                    ),
                    &request_id,
                );
            }
            if let Ok(Value::Object(o)) = serde_json::from_slice::<Value>(&body)
                && let Some(Value::String(url)) = o.get("QueueUrl")
            {
                params.insert("QueueUrl".into(), url.clone());
            }
        } else {
            params.extend(form_pairs(&String::from_utf8_lossy(&body)));
        }
    }
    if params.get("Action").is_some_and(|a| a != "ReceiveMessage") {
        return format.error(
            &SqsError::new(
                ErrorCode::InvalidAction,
                "This endpoint only accepts ReceiveMessage calls",
            ),
            &request_id,
        );
    }
    let Some(url) = params.get("QueueUrl").filter(|u| !u.is_empty()) else {
        return format.error(&SqsError::queue_does_not_exist(), &request_id);
    };
    let Some((account, name)) = parse_queue_url(url) else {
        return format.error(&invalid_address(), &request_id);
    };
    let region = queue_url_region(url)
        .or_else(|| region_from_headers(&parts.headers))
        .unwrap_or_else(|| state.config.region.clone());
    peek(
        &state,
        format,
        &params,
        &region,
        &account,
        &name,
        &request_id,
    )
    .await
}

/// `/_aws/sqs/messages/{region}/{account}/{queue}`.
pub async fn messages_of(
    State(state): State<Arc<AppState>>,
    Path((region, account, name)): Path<(String, String, String)>,
    headers: HeaderMap,
    uri: http::Uri,
) -> HttpResponse {
    let request_id = uuid::Uuid::new_v4().to_string();
    let params = form_pairs(uri.query().unwrap_or(""));
    peek(
        &state,
        Format::of(&headers),
        &params,
        &region,
        &account,
        &name,
        &request_id,
    )
    .await
}

async fn peek(
    state: &AppState,
    format: Format,
    params: &BTreeMap<String, String>,
    region: &str,
    account: &str,
    name: &str,
    request_id: &str,
) -> HttpResponse {
    let flag = |k: &str| {
        params
            .get(k)
            .is_some_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
    };
    let (show_invisible, show_delayed) = (flag("ShowInvisible"), flag("ShowDelayed"));
    if account != state.config.account_id {
        return format.error(&SqsError::queue_does_not_exist(), request_id);
    }
    let ctx = RequestContext {
        region: region.to_string(),
        base_url: String::new(),
    };
    let mut messages = Vec::new();
    let mut query = BrowseQuery {
        state: None,
        limit: 1000,
        after: None,
    };
    loop {
        let page = state.engine.load_messages(&ctx, name, &query).await;
        let page = match page {
            Ok(p) => p,
            Err(e) => return format.error(&e, request_id),
        };
        for m in page.messages {
            let visible = m.state == MessageState::Ready && !m.group_blocked;
            let delayed = m.state == MessageState::Delayed;
            let shown = visible || (delayed && show_delayed) || (!delayed && show_invisible);
            if !shown {
                continue;
            }
            let mut attributes = BTreeMap::new();
            attributes.insert("SenderId".to_string(), m.sender_id.clone());
            attributes.insert("SentTimestamp".to_string(), m.sent_ms.to_string());
            attributes.insert(
                "ApproximateReceiveCount".to_string(),
                m.receive_count.to_string(),
            );
            let optional = [
                (
                    "ApproximateFirstReceiveTimestamp",
                    m.first_receive_ms.map(|t| t.to_string()),
                ),
                ("MessageGroupId", m.group_id.clone()),
                ("MessageDeduplicationId", m.dedup_id.clone()),
                ("SequenceNumber", m.sequence_number.clone()),
                (
                    "AWSTraceHeader",
                    m.system_attributes
                        .get("AWSTraceHeader")
                        .and_then(|v| v.string_value.clone()),
                ),
                ("DeadLetterQueueSourceArn", m.dead_letter_source_arn.clone()),
            ];
            for (k, v) in optional {
                if let Some(v) = v {
                    attributes.insert(k.to_string(), v);
                }
            }
            if show_invisible {
                attributes.insert("IsVisible".into(), visible.to_string());
            }
            if show_delayed {
                attributes.insert("IsDelayed".into(), delayed.to_string());
            }
            messages.push(ReceivedMessage {
                message_id: m.message_id,
                receipt_handle: BACKDOOR_RECEIPT.into(),
                md5_of_body: md5_hex(m.body.as_bytes()),
                body: m.body,
                attributes,
                md5_of_message_attributes: md5_of_attributes(&m.message_attributes),
                message_attributes: m.message_attributes,
            });
        }
        match page.next {
            Some(next) => query.after = Some(next),
            None => break,
        }
    }
    format.ok(ReceiveMessageOutput { messages }, request_id)
}

/// How the answer is written (LocalStack's content negotiation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    /// A JSON 1.0 request: the JSON protocol's `{"Messages": […]}`.
    Json,
    /// The Query protocol's XML.
    Xml,
    /// `Accept: application/json` on a non-JSON request: the XML document as JSON.
    XmlAsJson,
}

impl Format {
    fn of(headers: &HeaderMap) -> Format {
        let header = |n: header::HeaderName| {
            headers
                .get(n)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_ascii_lowercase()
        };
        if header(header::CONTENT_TYPE).starts_with("application/x-amz-json-1.0") {
            Format::Json
        } else if header(header::ACCEPT).contains("application/json") {
            Format::XmlAsJson
        } else {
            Format::Xml
        }
    }

    fn ok(self, out: ReceiveMessageOutput, request_id: &str) -> HttpResponse {
        match self {
            Format::Json => {
                success_response(Protocol::Json, &Response::ReceiveMessage(out), request_id)
            }
            Format::Xml => {
                success_response(Protocol::Query, &Response::ReceiveMessage(out), request_id)
            }
            Format::XmlAsJson => {
                let messages: Vec<Value> = out.messages.iter().map(xml_shaped).collect();
                json_body(
                    StatusCode::OK,
                    json!({
                        "ReceiveMessageResponse": {
                            "ReceiveMessageResult": {"Message": messages},
                            "ResponseMetadata": {"RequestId": request_id},
                        }
                    }),
                )
            }
        }
    }

    fn error(self, err: &SqsError, request_id: &str) -> HttpResponse {
        match self {
            Format::Json => error_response(Protocol::Json, err, request_id),
            Format::Xml => error_response(Protocol::Query, err, request_id),
            Format::XmlAsJson => {
                let status =
                    StatusCode::from_u16(err.code.status()).unwrap_or(StatusCode::BAD_REQUEST);
                let body = json!({
                    "ErrorResponse": {
                        "Error": {
                            "Type": if err.code.status() >= 500 { "Receiver" } else { "Sender" },
                            "Code": err.code.query_code(),
                            "Message": err.message,
                        },
                        "RequestId": request_id,
                    }
                });
                json_body(status, body)
            }
        }
    }
}

/// A message as the Query protocol's XML has it (`Attribute` and `MessageAttribute` lists).
fn xml_shaped(m: &ReceivedMessage) -> Value {
    let mut v = json!({
        "MessageId": m.message_id,
        "ReceiptHandle": m.receipt_handle,
        "MD5OfBody": m.md5_of_body,
        "Body": m.body,
        "Attribute": m.attributes.iter().map(|(k, v)| json!({"Name": k, "Value": v})).collect::<Vec<_>>(),
    });
    if let Some(md5) = &m.md5_of_message_attributes {
        v["MD5OfMessageAttributes"] = json!(md5);
    }
    if !m.message_attributes.is_empty() {
        v["MessageAttribute"] = m
            .message_attributes
            .iter()
            .map(|(k, a)| {
                let mut value = json!({"DataType": a.data_type});
                if let Some(s) = &a.string_value {
                    value["StringValue"] = json!(s);
                }
                if let Some(b) = &a.binary_value {
                    use base64::Engine as _;
                    value["BinaryValue"] =
                        json!(base64::engine::general_purpose::STANDARD.encode(b));
                }
                json!({"Name": k, "Value": value})
            })
            .collect();
    }
    v
}

fn invalid_address() -> SqsError {
    SqsError::new(
        ErrorCode::InvalidAddress,
        "The address https://queue.amazonaws.com/ is not valid for this endpoint.",
    )
}

fn form_pairs(text: &str) -> BTreeMap<String, String> {
    form_urlencoded::parse(text.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}
