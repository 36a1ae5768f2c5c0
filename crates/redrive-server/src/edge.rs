//! The connection edge: the accept loop, the connection limit, per-connection timeouts and
//! graceful shutdown (see `docs/operations.md`, "Connection limits and timeouts").
//!
//! Each connection is in one of three phases, tracked by [`ConnState`]:
//! - **idle**: accepted, or between keep-alive requests, with no byte of a request yet; closed
//!   after [`HttpLimits::idle_timeout`].
//! - **head**: the first byte of a request has arrived but not the end of its headers; closed
//!   after [`HttpLimits::header_timeout`] (slowloris).
//! - **busy**: the headers are in and the request is being handled or answered. No deadline
//!   here, so a long poll is never cut; the body's own deadline and minimum rate are enforced by
//!   [`GuardedBody`] while the handler reads it.
//!
//! hyper's own `header_read_timeout` is off: it starts as soon as a connection is idle, so it
//! would close idle keep-alive connections at the header timeout instead of the idle one.
//!
//! A request head that hyper cannot parse (a control byte in a header, a broken request line)
//! would get hyper's empty-bodied `400`; [`EdgeIo`] replaces that answer with an SQS-shaped
//! error in the protocol the head looked like.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use bytes::Bytes;
use http::{Request, Response};
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use redrive_core::{ErrorCode, SqsError};
use redrive_protocol::{json, query};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};
use tokio::time::Sleep;
use tower::ServiceExt;

use crate::config::{BODY_RATE_GRACE, HttpLimits};

/// Accepts connections until `shutdown` resolves, then lets every open connection finish its
/// request in flight (idle ones close at once) and returns when all are closed.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    limits: HttpLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    // Every connection task holds a receiver of both: `stop` tells them to shut down
    // gracefully, and `done` is closed once the last of them has ended.
    let (stop_tx, stop_rx) = watch::channel(false);
    let (done_tx, done_rx) = watch::channel(());
    tokio::pin!(shutdown);
    loop {
        // At the limit, stop accepting: further connections wait in the kernel's backlog.
        let permit = tokio::select! {
            permit = slots.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => (stream, peer),
                Err(e) if is_connection_error(&e) => continue,
                Err(e) => {
                    // EMFILE and friends: wait rather than spin; the next accept may succeed.
                    tracing::error!(error = %e, "accept failed");
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                        () = &mut shutdown => break,
                    }
                }
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = stream;
        tokio::spawn(serve_connection(
            stream,
            peer,
            permit,
            router.clone(),
            limits,
            stop_rx.clone(),
            done_rx.clone(),
        ));
    }
    drop(listener);
    let _ = stop_tx.send(true);
    drop(done_rx);
    done_tx.closed().await;
    Ok(())
}

fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    _permit: OwnedSemaphorePermit,
    router: Router,
    limits: HttpLimits,
    mut stop: watch::Receiver<bool>,
    _done: watch::Receiver<()>,
) {
    let _ = stream.set_nodelay(true);
    let state = Arc::new(ConnState::new());
    let io = TokioIo::new(EdgeIo::new(stream, state.clone()));
    let service = EdgeService {
        router,
        state: state.clone(),
        limits,
        peer,
    };
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(None)
        .keep_alive(true);
    let conn = builder.serve_connection(io, service);
    tokio::pin!(conn);
    let watchdog = watchdog(&state, limits);
    tokio::pin!(watchdog);
    let mut stopping = false;
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                break;
            }
            reason = &mut watchdog => {
                // Dropping the connection closes the socket.
                tracing::debug!(reason, "closing connection");
                break;
            }
            _ = stop.changed(), if !stopping => {
                stopping = true;
                // Nothing in progress (and the last response flushed): close now. hyper would
                // keep a connection that never sent a byte open until its first request.
                if state.phase() == Phase::Idle {
                    break;
                }
                // Finish the request in progress, then close.
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

/// Resolves when the connection has been idle, or reading one request's headers, for too long.
async fn watchdog(state: &ConnState, limits: HttpLimits) -> &'static str {
    loop {
        let (phase, since) = state.load();
        let (limit, reason) = match phase {
            Phase::Idle => (limits.idle_timeout, "idle timeout"),
            Phase::Head => (limits.header_timeout, "header timeout"),
            Phase::Busy => {
                state.changed.notified().await;
                continue;
            }
        };
        let deadline = since + limit;
        tokio::select! {
            () = tokio::time::sleep_until(deadline.into()) => {
                if state.load() == (phase, since) {
                    return reason;
                }
            }
            () = state.changed.notified() => {}
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Idle = 0,
    Head = 1,
    Busy = 2,
}

/// The phase of one connection and when it began. Everything that touches it runs inside the
/// connection's task; atomics only make it `Sync`.
#[derive(Debug)]
struct ConnState {
    epoch: Instant,
    phase: AtomicU8,
    /// Microseconds from `epoch` to the start of the phase.
    since_us: AtomicU64,
    /// The response body is done; the connection turns idle once its bytes are flushed.
    response_done: AtomicBool,
    changed: Notify,
}

impl ConnState {
    fn new() -> ConnState {
        ConnState {
            epoch: Instant::now(),
            phase: AtomicU8::new(Phase::Idle as u8),
            since_us: AtomicU64::new(0),
            response_done: AtomicBool::new(false),
            changed: Notify::new(),
        }
    }

    fn phase(&self) -> Phase {
        match self.phase.load(Ordering::Acquire) {
            0 => Phase::Idle,
            1 => Phase::Head,
            _ => Phase::Busy,
        }
    }

    fn load(&self) -> (Phase, Instant) {
        let since = Duration::from_micros(self.since_us.load(Ordering::Acquire));
        (self.phase(), self.epoch + since)
    }

    fn enter(&self, phase: Phase) {
        let since = u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.since_us.store(since, Ordering::Release);
        self.phase.store(phase as u8, Ordering::Release);
        self.changed.notify_one();
    }
}

/// The socket, watched: the first byte of a request starts the header phase; the bytes of a
/// head are kept (up to [`SNIFF_LIMIT`]) so that hyper's bare `400` for an unparseable head can
/// be replaced by an SQS-shaped error.
struct EdgeIo {
    inner: TcpStream,
    state: Arc<ConnState>,
    head: Vec<u8>,
    /// The replacement for hyper's `400`, and how much of it is written.
    replacement: Option<(Vec<u8>, usize)>,
}

/// Enough of a head to find its `X-Amz-Target` and `Content-Type`.
const SNIFF_LIMIT: usize = 16 * 1024;

impl EdgeIo {
    fn new(inner: TcpStream, state: Arc<ConnState>) -> EdgeIo {
        EdgeIo {
            inner,
            state,
            head: Vec::new(),
            replacement: None,
        }
    }
}

impl AsyncRead for EdgeIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let result = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = result {
            let new = &buf.filled()[before..];
            if !new.is_empty() {
                match this.state.phase() {
                    Phase::Idle => {
                        this.head.clear();
                        this.state.enter(Phase::Head);
                        sniff(&mut this.head, new);
                    }
                    Phase::Head => sniff(&mut this.head, new),
                    Phase::Busy => {}
                }
            }
        }
        result
    }
}

fn sniff(head: &mut Vec<u8>, new: &[u8]) {
    let room = SNIFF_LIMIT.saturating_sub(head.len());
    head.extend_from_slice(&new[..new.len().min(room)]);
}

impl AsyncWrite for EdgeIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.replacement.is_none()
            && this.state.phase() == Phase::Head
            && is_hyper_parse_error_response(buf)
        {
            this.replacement = Some((malformed_head_response(&this.head), 0));
        }
        if let Some((bytes, written)) = &mut this.replacement
            && *written < bytes.len()
        {
            while *written < bytes.len() {
                match Pin::new(&mut this.inner).poll_write(cx, &bytes[*written..]) {
                    Poll::Ready(Ok(0)) => {
                        return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                    }
                    Poll::Ready(Ok(n)) => *written += n,
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => return Poll::Pending,
                }
            }
            // hyper's bytes count as written: ours went in their place.
            return Poll::Ready(Ok(buf.len()));
        }
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_flush(cx);
        // hyper flushes the socket only once its buffer is written out: a finished response
        // is now entirely on the wire.
        if let Poll::Ready(Ok(())) = result
            && this.state.response_done.swap(false, Ordering::AcqRel)
        {
            this.state.enter(Phase::Idle);
        }
        result
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    // Vectored writes stay off so that every write passes through `poll_write` above.
    fn is_write_vectored(&self) -> bool {
        false
    }
}

/// hyper's automatic answer to a head it could not parse: a bare `400` with no body, written in
/// one piece while a head is being read (no request was handed to the router since its first
/// byte, else the phase would be busy; the phase turns idle only once a response is flushed).
/// A normal response never matches: its head is written while the phase is busy, and a body
/// never ends in an empty line.
fn is_hyper_parse_error_response(buf: &[u8]) -> bool {
    buf.len() < 256
        && buf.starts_with(b"HTTP/1.1 400 Bad Request\r\n")
        && buf.ends_with(b"\r\n\r\n")
        && buf
            .windows(19)
            .any(|w| w.eq_ignore_ascii_case(b"content-length: 0\r\n"))
}

/// Bytes HTTP never allows in a header line (HTAB is allowed).
fn is_forbidden(b: u8) -> bool {
    (b < 0x20 && b != b'\t') || b == 0x7f
}

/// The SQS-shaped answer to a head hyper rejected: JSON when the head carries an
/// `X-Amz-Target` or a JSON content type, Query otherwise.
fn malformed_head_response(head: &[u8]) -> Vec<u8> {
    let end = head
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(head.len());
    let mut json_protocol = false;
    let mut bad_header: Option<String> = None;
    let mut bad_request_line = false;
    for (i, raw) in head[..end].split(|&b| b == b'\n').enumerate() {
        let line = raw.strip_suffix(b"\r").unwrap_or(raw);
        let bad = line.iter().copied().any(is_forbidden);
        if i == 0 {
            bad_request_line = bad;
            continue;
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            if bad && bad_header.is_none() {
                bad_header = Some(String::from_utf8_lossy(line).into_owned());
            }
            continue;
        };
        let name = String::from_utf8_lossy(&line[..colon])
            .trim()
            .to_ascii_lowercase();
        let value = &line[colon + 1..];
        let value = value.strip_prefix(b" ").unwrap_or(value);
        if name == "x-amz-target"
            || (name == "content-type"
                && value.len() >= 22
                && value[..22].eq_ignore_ascii_case(b"application/x-amz-json"))
        {
            json_protocol = true;
        }
        if bad && bad_header.is_none() {
            bad_header = Some(name);
        }
    }
    let err = match bad_header.as_deref() {
        Some("x-amz-target") => SqsError::new(
            ErrorCode::UnknownOperationException,
            "The X-Amz-Target header contains a character that is not allowed.",
        ),
        Some(name) if !bad_request_line => SqsError::new(
            ErrorCode::InvalidParameterValue,
            format!(
                "The {} header contains a character that is not allowed.",
                printable(name)
            ),
        ),
        _ => SqsError::new(
            ErrorCode::InvalidParameterValue,
            "The request line or headers are malformed.",
        ),
    };
    let request_id = uuid::Uuid::new_v4().to_string();
    let (content_type, body) = if json_protocol {
        (json::CONTENT_TYPE, json::encode_error(&err))
    } else {
        (
            query::CONTENT_TYPE,
            query::encode_error(&err, &request_id).into_bytes(),
        )
    };
    let mut out = format!(
        "HTTP/1.1 {} Bad Request\r\ncontent-type: {content_type}\r\nx-amzn-requestid: {request_id}\r\n\
         x-amzn-query-error: {}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        err.code.status(),
        err.query_error_header(),
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(&body);
    out
}

/// A header name fit to quote in a message: forbidden bytes become `?`, at most 64 characters.
fn printable(name: &str) -> String {
    name.chars()
        .take(64)
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect()
}

/// The router, called for one connection: marks the connection busy for the time of a request
/// and guards the request body.
#[derive(Clone)]
struct EdgeService {
    router: Router,
    state: Arc<ConnState>,
    limits: HttpLimits,
    /// The client's address, given to handlers as axum's `ConnectInfo` (the console's
    /// loopback check).
    peer: SocketAddr,
}

impl hyper::service::Service<Request<Incoming>> for EdgeService {
    type Response = Response<TrackedBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        self.state.response_done.store(false, Ordering::Release);
        self.state.enter(Phase::Busy);
        let router = self.router.clone();
        let state = self.state.clone();
        let limits = self.limits;
        let peer = self.peer;
        Box::pin(async move {
            let mut req = req.map(|body| Body::new(GuardedBody::new(body, limits)));
            req.extensions_mut()
                .insert(axum::extract::ConnectInfo(peer));
            let response = router.oneshot(req).await?;
            Ok(response.map(|inner| TrackedBody { inner, state }))
        })
    }
}

/// A response body that returns its connection to the idle phase once hyper is done with it
/// and has flushed it.
struct TrackedBody {
    inner: Body,
    state: Arc<ConnState>,
}

impl Drop for TrackedBody {
    fn drop(&mut self) {
        self.state.response_done.store(true, Ordering::Release);
    }
}

impl http_body::Body for TrackedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Why a request body was dropped before its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BodyTimeout {
    #[error("the request body did not arrive within {0:?}")]
    Deadline(Duration),
    #[error("the request body arrived slower than {0} bytes per second")]
    TooSlow(u64),
}

/// A request body with a deadline ([`HttpLimits::body_timeout`], from the end of the headers)
/// and a minimum average rate ([`HttpLimits::min_body_rate`], after [`BODY_RATE_GRACE`]).
/// Either failure ends the body with a [`BodyTimeout`] error.
struct GuardedBody {
    inner: Incoming,
    limits: HttpLimits,
    started: Instant,
    received: u64,
    timer: Option<Pin<Box<Sleep>>>,
}

impl GuardedBody {
    fn new(inner: Incoming, limits: HttpLimits) -> GuardedBody {
        GuardedBody {
            inner,
            limits,
            started: Instant::now(),
            received: 0,
            timer: None,
        }
    }

    fn next_failure(&self) -> (Instant, BodyTimeout) {
        next_failure(self.started, self.received, self.limits)
    }
}

/// The next instant at which a body started at `started` fails if nothing more than `received`
/// bytes arrive, and why.
fn next_failure(started: Instant, received: u64, limits: HttpLimits) -> (Instant, BodyTimeout) {
    let deadline = (
        started + limits.body_timeout,
        BodyTimeout::Deadline(limits.body_timeout),
    );
    let rate = limits.min_body_rate;
    if rate == 0 {
        return deadline;
    }
    // `received` bytes satisfy the rate until grace + received / rate.
    let allowed = BODY_RATE_GRACE + Duration::from_secs_f64(received as f64 / rate as f64);
    let too_slow = started + allowed;
    if too_slow < deadline.0 {
        (too_slow, BodyTimeout::TooSlow(rate))
    } else {
        deadline
    }
}

impl http_body::Body for GuardedBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.received += data.len() as u64;
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                let (at, why) = this.next_failure();
                if Instant::now() >= at {
                    return Poll::Ready(Some(Err(why.into())));
                }
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at.into())));
                if timer.deadline() != at.into() {
                    timer.as_mut().reset(at.into());
                }
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(why.into()))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(resp: &[u8]) -> (String, serde_json::Value) {
        let text = String::from_utf8_lossy(resp).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        (
            head.to_string(),
            serde_json::from_str(body).unwrap_or(serde_json::Value::Null),
        )
    }

    #[test]
    fn control_byte_in_target_is_unknown_operation_in_json() {
        let head = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-amz-json-1.0\r\nX-Amz-Target: AmazonSQS.Send\x01Message\r\n\r\n";
        let (h, v) = parse(&malformed_head_response(head));
        assert!(h.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{h}");
        assert!(h.contains("x-amzn-query-error: UnknownOperationException;Sender"));
        assert!(h.contains("content-type: application/x-amz-json-1.0"));
        assert_eq!(
            v["__type"], "com.amazonaws.sqs#UnknownOperationException",
            "{v}"
        );
    }

    #[test]
    fn other_bad_header_in_query_is_xml() {
        let head = b"POST / HTTP/1.1\r\nHost: x\r\nX-Odd: a\x00b\r\nContent-Type: application/x-www-form-urlencoded\r\n\r\n";
        let resp = String::from_utf8(malformed_head_response(head)).unwrap();
        assert!(resp.contains("<ErrorResponse"), "{resp}");
        assert!(
            resp.contains("<Code>InvalidParameterValue</Code>"),
            "{resp}"
        );
        assert!(resp.contains("x-odd"), "{resp}");
    }

    #[test]
    fn rate_deadline_grows_with_received_bytes() {
        let limits = HttpLimits {
            body_timeout: Duration::from_secs(60),
            min_body_rate: 100,
            ..HttpLimits::default()
        };
        let started = Instant::now();
        let at = |received: u64| next_failure(started, received, limits);
        assert_eq!(
            at(0),
            (started + BODY_RATE_GRACE, BodyTimeout::TooSlow(100))
        );
        assert_eq!(
            at(500).0,
            started + BODY_RATE_GRACE + Duration::from_secs(5)
        );
        assert_eq!(
            at(100_000),
            (
                started + Duration::from_secs(60),
                BodyTimeout::Deadline(Duration::from_secs(60))
            )
        );
    }
}
