//! Shared harness: an in-process server per test, an SDK client pointed at it, raw-HTTP helpers
//! for the Query and JSON protocols, and independent implementations of the SQS digests.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use aws_sdk_sqs::Client;
use aws_sdk_sqs::config::retry::RetryConfig;
use aws_sdk_sqs::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_sqs::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sqs::types::{MessageAttributeValue, QueueAttributeName};
use md5::{Digest, Md5};
use redrive_server::{Server, ServerConfig};
use reqwest::header::HeaderMap;

pub const ACCOUNT: &str = "000000000000";
pub const REGION: &str = "us-east-1";
pub const JSON_CT: &str = "application/x-amz-json-1.0";
pub const FORM_CT: &str = "application/x-www-form-urlencoded";
pub const XMLNS: &str = "http://queue.amazonaws.com/doc/2012-11-05/";

/// An in-process Redrive server on `127.0.0.1:<ephemeral>` plus clients for it. The server task
/// lives on the test's runtime and ends with it.
pub struct TestServer {
    pub addr: SocketAddr,
    pub base: String,
    pub client: Client,
    pub http: reqwest::Client,
    /// `services::blackbox::…`: the second server's base URL; [`TestServer::raw`] requests
    /// alternate between the two (the first's `Host` kept, as a load balancer keeps it).
    pub second: Option<String>,
    raw_turn: std::sync::atomic::AtomicUsize,
    /// The task serving this server ([`TestServer::kill`] aborts it).
    serving: tokio::task::AbortHandle,
}

/// Serves `engine` on `127.0.0.1:<ephemeral>` until the returned sender fires (or is dropped):
/// its base URL, the stop sender and the server task (await it to know the server is gone,
/// e.g. before reopening its redb file).
pub async fn serve_engine(
    engine: std::sync::Arc<redrive_engine::Engine>,
) -> (
    String,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let server = Server::bind_with_engine(
        ServerConfig {
            port: 0,
            ..Default::default()
        },
        engine,
    )
    .await
    .unwrap();
    let base = format!("http://{}", server.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(async move {
        let _ = server
            .serve(async move {
                let _ = stopped.await;
            })
            .await;
    });
    (base, stop, handle)
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::start_with(ServerConfig {
            port: 0,
            ..Default::default()
        })
        .await
    }

    /// A server with `config` (its storage aside, in `services::blackbox::…`: there, the same
    /// test runs against two servers with `config` on PostgreSQL).
    pub async fn start_with(config: ServerConfig) -> TestServer {
        if let Some(shared) = crate::services::blackbox::shared_pair(config.clone()).await {
            return shared;
        }
        let server = Server::bind(config).await.expect("bind test server");
        Self::from_server(server)
    }

    /// `builder` for an SDK client of this server: in `services::blackbox::…`, its requests
    /// alternate between the two servers as [`TestServer::client`]'s do.
    pub fn sdk_config(
        &self,
        builder: aws_sdk_sqs::config::Builder,
    ) -> aws_sdk_sqs::config::Builder {
        match &self.second {
            Some(second) => {
                crate::services::blackbox::alternate(builder, self.addr.to_string(), second)
            }
            None => builder,
        }
    }

    /// Serves `engine` with the default configuration on an ephemeral port.
    pub async fn with_engine(engine: std::sync::Arc<redrive_engine::Engine>) -> TestServer {
        let server = Server::bind_with_engine(
            ServerConfig {
                port: 0,
                ..Default::default()
            },
            engine,
        )
        .await
        .expect("bind");
        TestServer::from_server(server)
    }

    /// Serves `server` on the test's runtime and connects clients to it.
    pub fn from_server(server: Server) -> TestServer {
        let addr = server.local_addr().expect("local addr");
        let serving = tokio::spawn(server.serve(std::future::pending())).abort_handle();
        let base = format!("http://{addr}");
        let http_client = aws_smithy_http_client::Builder::new().build_http();
        let config = aws_sdk_sqs::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(REGION))
            .endpoint_url(&base)
            .credentials_provider(Credentials::new("test", "test", None, None, "static"))
            .http_client(http_client)
            .retry_config(RetryConfig::disabled())
            .build();
        TestServer {
            addr,
            client: Client::from_conf(config),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("reqwest client"),
            base,
            second: None,
            raw_turn: std::sync::atomic::AtomicUsize::new(0),
            serving,
        }
    }

    /// Stops serving at once, as a killed process would: nothing is released or flushed. Its
    /// engine's background work ends once the test drops its own handles to the engine.
    pub fn kill(&self) {
        self.serving.abort();
    }

    /// The URL this server hands out for queue `name`.
    pub fn queue_url(&self, name: &str) -> String {
        format!("{}/{ACCOUNT}/{name}", self.base)
    }

    pub fn arn(name: &str) -> String {
        format!("arn:aws:sqs:{REGION}:{ACCOUNT}:{name}")
    }

    /// Creates a standard queue and returns its URL.
    pub async fn create(&self, name: &str) -> String {
        self.create_with(name, &[]).await
    }

    /// Creates a queue with attributes and returns its URL.
    pub async fn create_with(&self, name: &str, attrs: &[(&str, &str)]) -> String {
        let mut req = self.client.create_queue().queue_name(name);
        for (k, v) in attrs {
            req = req.attributes(QueueAttributeName::from(*k), *v);
        }
        let out = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("create {name}: {}", describe(&e)));
        out.queue_url.expect("queue url")
    }

    pub async fn send(&self, url: &str, body: &str) -> String {
        self.client
            .send_message()
            .queue_url(url)
            .message_body(body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("send: {}", describe(&e)))
            .message_id
            .expect("message id")
    }

    /// Queue attributes as a plain map.
    pub async fn attrs(&self, url: &str, names: &[&str]) -> HashMap<String, String> {
        let mut req = self.client.get_queue_attributes().queue_url(url);
        for n in names {
            req = req.attribute_names(QueueAttributeName::from(*n));
        }
        req.send()
            .await
            .unwrap_or_else(|e| panic!("get attributes: {}", describe(&e)))
            .attributes
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k.as_str().to_string(), v))
            .collect()
    }

    /// `(visible, not visible, delayed)`.
    pub async fn counts(&self, url: &str) -> (u64, u64, u64) {
        let a = self
            .attrs(
                url,
                &[
                    "ApproximateNumberOfMessages",
                    "ApproximateNumberOfMessagesNotVisible",
                    "ApproximateNumberOfMessagesDelayed",
                ],
            )
            .await;
        let n = |k: &str| -> u64 {
            a.get(k)
                .unwrap_or_else(|| panic!("{k} missing"))
                .parse()
                .unwrap()
        };
        (
            n("ApproximateNumberOfMessages"),
            n("ApproximateNumberOfMessagesNotVisible"),
            n("ApproximateNumberOfMessagesDelayed"),
        )
    }

    /// POSTs a Query-protocol form to `/`.
    pub async fn query(&self, params: &[(&str, &str)]) -> (u16, HeaderMap, String) {
        self.query_at("/", params).await
    }

    /// POSTs a Query-protocol form to `path`.
    pub async fn query_at(&self, path: &str, params: &[(&str, &str)]) -> (u16, HeaderMap, String) {
        self.raw("POST", path, Some(FORM_CT), &[], form(params).into_bytes())
            .await
    }

    /// A JSON-protocol request with `X-Amz-Target: <target>` and a raw body.
    pub async fn raw_json(&self, target: &str, body: &str) -> (u16, HeaderMap, String) {
        self.raw(
            "POST",
            "/",
            Some(JSON_CT),
            &[("x-amz-target", target)],
            body.as_bytes().to_vec(),
        )
        .await
    }

    /// Any request; the body comes back as (lossy) UTF-8.
    pub async fn raw(
        &self,
        method: &str,
        path_and_query: &str,
        content_type: Option<&str>,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> (u16, HeaderMap, String) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let turn = self
            .raw_turn
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let base = match &self.second {
            Some(second) if turn % 2 == 1 => second,
            _ => &self.base,
        };
        let mut req = self.http.request(method, format!("{base}{path_and_query}"));
        if base != &self.base && !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
            req = req.header("host", self.addr.to_string());
        }
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.body(body).send().await.expect("http request");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await.expect("response body");
        (
            status,
            headers,
            String::from_utf8_lossy(&bytes).into_owned(),
        )
    }
}

/// `application/x-www-form-urlencoded` encoding of `params`.
pub fn form(params: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish()
}

/// The error's legacy code, HTTP status and message, for assertions.
pub fn err_parts<E: ProvideErrorMetadata>(e: &SdkError<E>) -> (String, u16, String) {
    let status = e.raw_response().map(|r| r.status().as_u16()).unwrap_or(0);
    (
        e.code().unwrap_or("<no code>").to_string(),
        status,
        e.message().unwrap_or("").to_string(),
    )
}

/// The legacy code of an SDK error.
pub fn code<E: ProvideErrorMetadata>(e: &SdkError<E>) -> String {
    err_parts(e).0
}

pub fn describe<E: std::error::Error + 'static>(e: &E) -> String {
    aws_sdk_sqs::error::DisplayErrorContext(e).to_string()
}

/// Unwraps a result that must be an error, returning `(code, status, message)`.
#[macro_export]
macro_rules! expect_err {
    ($fut:expr) => {{
        match $fut.await {
            Ok(v) => panic!("expected an error, got {v:?}"),
            Err(e) => $crate::common::err_parts(&e),
        }
    }};
}

pub fn md5_hex(bytes: &[u8]) -> String {
    let digest = Md5::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// MD5 of message attributes as the SQS Developer Guide defines it: attributes sorted by name;
/// each one encoded as length-prefixed name, length-prefixed data type, a transport byte (1 =
/// string, 2 = binary) and the length-prefixed value. Written independently of the server.
pub fn md5_of_attributes(attrs: &HashMap<String, MessageAttributeValue>) -> String {
    fn put(buf: &mut Vec<u8>, bytes: &[u8]) {
        buf.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
        buf.extend_from_slice(bytes);
    }
    let mut names: Vec<&String> = attrs.keys().collect();
    names.sort();
    let mut buf = Vec::new();
    for name in names {
        let v = &attrs[name];
        put(&mut buf, name.as_bytes());
        put(&mut buf, v.data_type().as_bytes());
        if let Some(b) = v.binary_value() {
            buf.push(2);
            put(&mut buf, b.as_ref());
        } else {
            buf.push(1);
            put(&mut buf, v.string_value().unwrap_or("").as_bytes());
        }
    }
    md5_hex(&buf)
}

pub fn string_attr(data_type: &str, value: &str) -> MessageAttributeValue {
    MessageAttributeValue::builder()
        .data_type(data_type)
        .string_value(value)
        .build()
        .expect("attribute")
}

pub fn binary_attr(data_type: &str, value: &[u8]) -> MessageAttributeValue {
    MessageAttributeValue::builder()
        .data_type(data_type)
        .binary_value(aws_sdk_sqs::primitives::Blob::new(value.to_vec()))
        .build()
        .expect("attribute")
}

/// Text of every `<tag>…</tag>` element (not nested in itself), entities decoded.
pub fn xml_all(xml: &str, tag: &str) -> Vec<String> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(start) = rest.find(&open) {
        let after = &rest[start + open.len()..];
        let Some(end) = after.find(&close) else {
            break;
        };
        out.push(xml_unescape(&after[..end]));
        rest = &after[end + close.len()..];
    }
    out
}

/// Text of the only (or first) `<tag>` element.
pub fn xml_one(xml: &str, tag: &str) -> String {
    xml_all(xml, tag)
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("no <{tag}> in {xml}"))
}

/// `Name`/`Value` pairs of the `<{tag}><Name/><Value/></{tag}>` elements (queue attributes,
/// system attributes).
pub fn xml_pairs(xml: &str, tag: &str) -> HashMap<String, String> {
    xml_all(xml, tag)
        .into_iter()
        .map(|inner| (xml_one(&inner, "Name"), xml_one(&inner, "Value")))
        .collect()
}

pub fn xml_unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let end = after.find(';').expect("entity end");
        let ent = &after[..end];
        let c = match ent {
            "lt" => '<',
            "gt" => '>',
            "amp" => '&',
            "quot" => '"',
            "apos" => '\'',
            _ if ent.starts_with("#x") => {
                char::from_u32(u32::from_str_radix(&ent[2..], 16).expect("hex entity"))
                    .expect("char")
            }
            _ if ent.starts_with('#') => {
                char::from_u32(ent[1..].parse().expect("dec entity")).expect("char")
            }
            _ => panic!("unknown entity &{ent};"),
        };
        out.push(c);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

/// Asserts the AWS Query error shape and returns the `<Message>`.
#[track_caller]
pub fn assert_xml_error(
    status: u16,
    headers: &HeaderMap,
    body: &str,
    want_status: u16,
    want_code: &str,
) -> String {
    assert_eq!(status, want_status, "status of {body}");
    assert!(
        body.starts_with("<?xml") || body.starts_with("<ErrorResponse"),
        "not XML: {body}"
    );
    assert!(body.contains("<ErrorResponse"), "{body}");
    assert!(body.trim_end().ends_with("</ErrorResponse>"), "{body}");
    let error = xml_one(body, "Error");
    assert_eq!(xml_one(&error, "Type"), "Sender", "{body}");
    assert_eq!(xml_one(&error, "Code"), want_code, "{body}");
    assert!(!xml_one(body, "RequestId").is_empty(), "{body}");
    let ct = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    assert!(ct.contains("xml"), "content-type {ct}");
    assert_eq!(
        header(headers, "x-amzn-query-error").as_deref(),
        Some(format!("{want_code};Sender").as_str())
    );
    xml_one(&error, "Message")
}

/// Asserts the AWS JSON 1.0 error shape (body and `x-amzn-query-error`) and returns the
/// `message`.
#[track_caller]
pub fn assert_json_error(
    status: u16,
    headers: &HeaderMap,
    body: &str,
    want_status: u16,
    want_shape: &str,
    want_query_code: &str,
) -> String {
    assert_eq!(status, want_status, "status of {body}");
    let v: serde_json::Value =
        serde_json::from_str(body).unwrap_or_else(|e| panic!("error body not JSON ({e}): {body}"));
    let ty = v["__type"]
        .as_str()
        .unwrap_or_else(|| panic!("no __type: {body}"));
    assert_eq!(ty, format!("com.amazonaws.sqs#{want_shape}"), "{body}");
    let message = v["message"]
        .as_str()
        .unwrap_or_else(|| panic!("no message: {body}"));
    assert_eq!(
        header(headers, "content-type").as_deref(),
        Some(JSON_CT),
        "content-type"
    );
    assert_eq!(
        header(headers, "x-amzn-query-error").as_deref(),
        Some(format!("{want_query_code};Sender").as_str())
    );
    message.to_string()
}

pub fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

impl TestServer {
    /// Receives with every system and message attribute requested.
    pub async fn receive(
        &self,
        url: &str,
        max: i32,
        visibility: Option<i32>,
    ) -> Vec<aws_sdk_sqs::types::Message> {
        self.client
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(max)
            .set_visibility_timeout(visibility)
            .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .send()
            .await
            .unwrap_or_else(|e| panic!("receive: {}", describe(&e)))
            .messages
            .unwrap_or_default()
    }
}

/// A system attribute of a received message.
pub fn sys_attr(m: &aws_sdk_sqs::types::Message, name: &str) -> Option<String> {
    m.attributes().and_then(|a| {
        a.get(&aws_sdk_sqs::types::MessageSystemAttributeName::from(name))
            .cloned()
    })
}
