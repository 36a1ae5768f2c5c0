//! The connection edge: slow and idle connections are closed at their timeouts while normal
//! clients keep being served, bodies that never finish are dropped, the connection limit defers
//! extra connections, long polls outlive every timeout, unparseable heads and JSON requests with
//! the wrong content type get SQS-shaped errors.
//!
//! Timing bounds are behavioural and generous: "closed, and not before most of its timeout".

use std::time::{Duration, Instant};

use redrive_server::{HttpLimits, Server, ServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::*;

/// Short limits, so that the tests see them fire.
fn short_limits() -> HttpLimits {
    HttpLimits {
        header_timeout: Duration::from_secs(2),
        body_timeout: Duration::from_secs(2),
        min_body_rate: 0,
        idle_timeout: Duration::from_secs(3),
        max_connections: 10_000,
    }
}

async fn start_with(limits: HttpLimits) -> TestServer {
    TestServer::start_with(ServerConfig {
        port: 0,
        http: limits,
        ..Default::default()
    })
    .await
}

/// How many slow and idle connections each the process can hold: every connection costs two
/// descriptors here (client and server side), and the SDK and runtime need some of their own.
fn connections_per_kind(wanted: usize) -> usize {
    let soft = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|limits| {
            limits
                .lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3))
                .and_then(|n| n.parse::<usize>().ok())
        })
        .unwrap_or(4096);
    wanted.min(soft.saturating_sub(256) / 4).max(10)
}

/// A raw HTTP/1.1 exchange: writes `request`, reads one response (by `content-length`).
/// Returns `(status, head, body)` (the server writes header names in lower case).
async fn exchange(stream: &mut TcpStream, request: &[u8]) -> (u16, String, String) {
    stream.write_all(request).await.expect("write request");
    read_response(stream).await
}

async fn read_response(stream: &mut TcpStream) -> (u16, String, String) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            let len: usize = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(str::to_string)
                })
                .map(|v| v.trim().parse().expect("content-length"))
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                let status = head[9..12].parse().expect("status");
                let body = String::from_utf8_lossy(&buf[end + 4..end + 4 + len]).into_owned();
                return (status, head, body);
            }
        }
        let n = stream.read(&mut chunk).await.expect("read response");
        assert!(
            n > 0,
            "connection closed before a full response: {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Waits until the server closes `stream` (EOF or reset), discarding anything it sends.
async fn closed_by_server(stream: &mut TcpStream) {
    let mut chunk = [0u8; 1024];
    loop {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

fn json_request(target: &str, content_type: Option<&str>, body: &str) -> Vec<u8> {
    let ct = content_type
        .map(|c| format!("Content-Type: {c}\r\n"))
        .unwrap_or_default();
    format!(
        "POST / HTTP/1.1\r\nHost: x\r\n{ct}X-Amz-Target: {target}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn json_error(head: &str, body: &str) -> (String, String) {
    assert!(
        head.contains("content-type: application/x-amz-json-1.0"),
        "{head}"
    );
    let v: serde_json::Value =
        serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"));
    let shape = v["__type"].as_str().expect("__type").to_string();
    let query_error = head
        .lines()
        .find_map(|l| l.strip_prefix("x-amzn-query-error:"))
        .map(|v| v.trim().to_string())
        .unwrap_or_default();
    (shape, query_error)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_and_idle_connections_are_closed_while_a_client_is_served() {
    let limits = short_limits();
    let ts = start_with(limits).await;
    let url = ts.create("busy").await;
    let n = connections_per_kind(500);

    // Slowloris: a header one byte every 200 ms, never finished.
    let mut slow = Vec::new();
    for _ in 0..n {
        let mut stream = TcpStream::connect(ts.addr).await.expect("connect");
        slow.push(tokio::spawn(async move {
            let started = Instant::now();
            let head =
                b"POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Target: AmazonSQS.ListQueues\r\nX-Pad: ";
            let (mut rd, mut wr) = stream.split();
            let drip = async {
                for i in 0.. {
                    let byte = [head.get(i).copied().unwrap_or(b'a')];
                    if wr.write_all(&byte).await.is_err() {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                std::future::pending::<()>().await;
            };
            let mut chunk = [0u8; 64];
            let closed = async {
                loop {
                    match rd.read(&mut chunk).await {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {}
                    }
                }
            };
            tokio::select! {
                () = drip => {}
                () = closed => {}
            }
            started.elapsed()
        }));
    }
    // Idle: connect and send nothing.
    let mut idle = Vec::new();
    for _ in 0..n {
        let mut stream = TcpStream::connect(ts.addr).await.expect("connect");
        idle.push(tokio::spawn(async move {
            let started = Instant::now();
            closed_by_server(&mut stream).await;
            started.elapsed()
        }));
    }

    // Meanwhile a normal client keeps getting answers, including a long poll that outlasts
    // every timeout.
    let client = ts.client.clone();
    let url2 = url.clone();
    let served = tokio::spawn(async move {
        let mut answered = 0;
        let until = Instant::now() + Duration::from_secs(4);
        while Instant::now() < until {
            client
                .send_message()
                .queue_url(&url2)
                .message_body("during")
                .send()
                .await
                .unwrap_or_else(|e| panic!("send during the attack: {}", describe(&e)));
            answered += 1;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        answered
    });
    let long_poll_url = ts.create("long-poll").await;
    let long_poll_started = Instant::now();
    let out = ts
        .client
        .receive_message()
        .queue_url(&long_poll_url)
        .wait_time_seconds(5)
        .send()
        .await
        .unwrap_or_else(|e| panic!("long poll: {}", describe(&e)));
    assert!(out.messages.unwrap_or_default().is_empty());
    assert!(long_poll_started.elapsed() >= Duration::from_secs(4));
    assert!(served.await.unwrap() > 5);

    let slack = Duration::from_secs(10);
    for task in slow {
        let lived = tokio::time::timeout(limits.header_timeout + slack, task)
            .await
            .expect("a slowloris connection outlived the header timeout")
            .unwrap();
        assert!(lived >= limits.header_timeout / 2, "closed after {lived:?}");
    }
    for task in idle {
        let lived = tokio::time::timeout(limits.idle_timeout + slack, task)
            .await
            .expect("an idle connection outlived the idle timeout")
            .unwrap();
        assert!(lived >= limits.idle_timeout / 2, "closed after {lived:?}");
    }
    // And the server still answers.
    let (visible, _, _) = ts.counts(&url).await;
    assert!(visible > 5);
}

#[tokio::test]
async fn keep_alive_connection_is_closed_after_the_idle_timeout_not_the_header_timeout() {
    let limits = HttpLimits {
        header_timeout: Duration::from_secs(1),
        idle_timeout: Duration::from_secs(3),
        ..short_limits()
    };
    let ts = start_with(limits).await;
    let mut stream = TcpStream::connect(ts.addr).await.unwrap();
    let request = json_request("AmazonSQS.ListQueues", Some(JSON_CT), "{}");
    let (status, _, body) = exchange(&mut stream, &request).await;
    assert_eq!(status, 200, "{body}");
    // Idle for longer than the header timeout: still open, and serves the next request.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (status, _, body) = exchange(&mut stream, &request).await;
    assert_eq!(status, 200, "{body}");
    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(15), closed_by_server(&mut stream))
        .await
        .expect("idle keep-alive connection not closed");
    assert!(started.elapsed() >= Duration::from_millis(1500));
}

#[tokio::test]
async fn unterminated_chunked_body_is_dropped_after_the_body_timeout() {
    let limits = short_limits();
    let ts = start_with(limits).await;
    let mut stream = TcpStream::connect(ts.addr).await.unwrap();
    let started = Instant::now();
    stream
        .write_all(
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-amz-json-1.0\r\n\
              X-Amz-Target: AmazonSQS.ListQueues\r\nTransfer-Encoding: chunked\r\n\r\n\
              f\r\n{\"QueueNamePref\r\n",
        )
        .await
        .unwrap();
    let (status, head, body) = tokio::time::timeout(
        limits.body_timeout + Duration::from_secs(10),
        read_response(&mut stream),
    )
    .await
    .expect("no answer to an unfinished body");
    assert!(started.elapsed() >= limits.body_timeout / 2);
    assert_eq!(status, 400, "{body}");
    let (shape, query_error) = json_error(&head, &body);
    assert_eq!(shape, "com.amazonaws.sqs#RequestTimeout");
    assert_eq!(query_error, "RequestTimeout;Sender");
    assert!(head.contains("connection: close"), "{head}");
    tokio::time::timeout(Duration::from_secs(5), closed_by_server(&mut stream))
        .await
        .expect("connection kept open after a dropped body");
    // The server is fine.
    assert!(ts.client.list_queues().send().await.is_ok());
}

#[tokio::test]
async fn trickling_body_is_dropped_below_the_minimum_rate() {
    let limits = HttpLimits {
        body_timeout: Duration::from_secs(60),
        min_body_rate: 1000,
        ..short_limits()
    };
    let ts = start_with(limits).await;
    let mut stream = TcpStream::connect(ts.addr).await.unwrap();
    stream
        .write_all(
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n\
              Content-Length: 100000\r\n\r\nAction=ListQueues&X=",
        )
        .await
        .unwrap();
    let started = Instant::now();
    let (mut rd, mut wr) = stream.split();
    let trickle = async {
        loop {
            if wr.write_all(b"aaaaaaaaaa").await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        std::future::pending::<()>().await;
    };
    let answer = tokio::select! {
        () = trickle => unreachable!(),
        answer = tokio::time::timeout(Duration::from_secs(30), async {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            loop {
                match rd.read(&mut chunk).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
            String::from_utf8_lossy(&buf).into_owned()
        }) => answer.expect("a trickling body was not dropped"),
    };
    // Dropped after the 5 s grace, long before the 60 s deadline.
    assert!(started.elapsed() >= Duration::from_secs(4));
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("<Code>RequestTimeout</Code>"), "{answer}");
}

#[tokio::test]
async fn connection_limit_defers_the_extra_connection_until_one_closes() {
    let limits = HttpLimits {
        idle_timeout: Duration::from_secs(60),
        header_timeout: Duration::from_secs(60),
        max_connections: 2,
        ..short_limits()
    };
    let ts = start_with(limits).await;
    let request = json_request("AmazonSQS.ListQueues", Some(JSON_CT), "{}");
    let mut first = TcpStream::connect(ts.addr).await.unwrap();
    let mut second = TcpStream::connect(ts.addr).await.unwrap();
    assert_eq!(exchange(&mut first, &request).await.0, 200);
    assert_eq!(exchange(&mut second, &request).await.0, 200);

    // The third connects (the kernel's backlog takes it) but is not served...
    let mut third = TcpStream::connect(ts.addr).await.unwrap();
    third.write_all(&request).await.unwrap();
    let waiting = tokio::time::timeout(Duration::from_secs(1), read_response(&mut third)).await;
    assert!(waiting.is_err(), "served beyond the connection limit");
    // ...until one of the first two closes.
    drop(first);
    let (status, _, body) =
        tokio::time::timeout(Duration::from_secs(10), read_response(&mut third))
            .await
            .expect("the deferred connection was not served after a slot freed");
    assert_eq!(status, 200, "{body}");
    assert_eq!(exchange(&mut second, &request).await.0, 200);
}

#[tokio::test]
async fn control_byte_in_target_gets_an_aws_shaped_json_error() {
    let ts = TestServer::start().await;
    for target in [
        &b"AmazonSQS.Send\x01Message"[..],
        b"AmazonSQS.Send\x00Message",
        b"AmazonSQS.List\x7fQueues",
        b"AmazonSQS.List\xffQueues",
    ] {
        let mut request = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-amz-json-1.0\r\nX-Amz-Target: ".to_vec();
        request.extend_from_slice(target);
        request.extend_from_slice(b"\r\nContent-Length: 2\r\n\r\n{}");
        let mut stream = TcpStream::connect(ts.addr).await.unwrap();
        let (status, head, body) = exchange(&mut stream, &request).await;
        assert_eq!(status, 400, "{target:?}: {body}");
        let (shape, query_error) = json_error(&head, &body);
        assert_eq!(shape, "com.amazonaws.sqs#UnknownOperationException");
        assert_eq!(query_error, "UnknownOperationException;Sender");
        assert!(head.contains("x-amzn-requestid:"), "{head}");
    }
    // A control byte elsewhere in a Query request: an XML error.
    let mut stream = TcpStream::connect(ts.addr).await.unwrap();
    let (status, head, body) = exchange(
        &mut stream,
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n\
          X-Odd: a\x02b\r\nContent-Length: 17\r\n\r\nAction=ListQueues",
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(head.contains("content-type: text/xml"), "{head}");
    assert!(
        body.contains("<Code>InvalidParameterValue</Code>"),
        "{body}"
    );
    assert!(head.contains("x-amzn-query-error: InvalidParameterValue;Sender"));
    // The server is fine.
    assert!(ts.client.list_queues().send().await.is_ok());
}

#[tokio::test]
async fn json_requests_need_the_json_1_0_content_type() {
    let ts = TestServer::start().await;
    for ct in [
        None,
        Some("application/x-www-form-urlencoded"),
        Some("application/json"),
        Some("text/plain"),
        Some("application/x-amz-json-1.1"),
    ] {
        let mut stream = TcpStream::connect(ts.addr).await.unwrap();
        let (status, head, body) =
            exchange(&mut stream, &json_request("AmazonSQS.ListQueues", ct, "{}")).await;
        assert_eq!(status, 400, "{ct:?}: {body}");
        let (shape, query_error) = json_error(&head, &body);
        assert_eq!(shape, "com.amazonaws.sqs#UnknownOperationException");
        assert_eq!(query_error, "UnknownOperationException;Sender");
        assert!(body.contains("application/x-amz-json-1.0"), "{body}");
    }
    for ct in [
        "application/x-amz-json-1.0",
        "Application/X-Amz-Json-1.0",
        "application/x-amz-json-1.0; charset=utf-8",
    ] {
        let mut stream = TcpStream::connect(ts.addr).await.unwrap();
        let (status, _, body) = exchange(
            &mut stream,
            &json_request("AmazonSQS.ListQueues", Some(ct), "{}"),
        )
        .await;
        assert_eq!(status, 200, "{ct}: {body}");
    }
    // Query stays as it was: a form POST and a GET query string.
    let (status, _, body) = ts.query(&[("Action", "ListQueues")]).await;
    assert_eq!(status, 200, "{body}");
    let (status, _, body) = ts
        .raw(
            "GET",
            "/?Action=ListQueues&Version=2012-11-05",
            None,
            &[],
            Vec::new(),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    // And the SDK, which sends the right type.
    assert!(ts.client.list_queues().send().await.is_ok());
}

#[tokio::test]
async fn graceful_shutdown_finishes_a_long_poll_and_stops_accepting() {
    // Idle connections would close on their own only after 60 s.
    let config = crate::services::blackbox::shared_config(ServerConfig {
        port: 0,
        http: HttpLimits {
            idle_timeout: Duration::from_secs(60),
            ..short_limits()
        },
        ..Default::default()
    })
    .await;
    let server = Server::bind(config).await.unwrap();
    let addr = server.local_addr().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.serve(async {
        let _ = stop_rx.await;
    }));
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let create = json_request(
        "AmazonSQS.CreateQueue",
        Some(JSON_CT),
        r#"{"QueueName":"q"}"#,
    );
    let (status, _, body) = exchange(&mut stream, &create).await;
    assert_eq!(status, 200, "{body}");
    let url = serde_json::from_str::<serde_json::Value>(&body).unwrap()["QueueUrl"]
        .as_str()
        .unwrap()
        .to_string();
    let mut idle = TcpStream::connect(addr).await.unwrap();
    // A 4 s long poll, longer than the header and body timeouts.
    let receive = json_request(
        "AmazonSQS.ReceiveMessage",
        Some(JSON_CT),
        &format!(r#"{{"QueueUrl":"{url}","WaitTimeSeconds":4}}"#),
    );
    stream.write_all(&receive).await.unwrap();
    let started = Instant::now();
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop_tx.send(()).unwrap();
    let (status, _, body) =
        tokio::time::timeout(Duration::from_secs(15), read_response(&mut stream))
            .await
            .expect("long poll not answered during shutdown");
    assert_eq!(status, 200, "{body}");
    assert!(started.elapsed() >= Duration::from_secs(3));
    // Both the connection that never sent a byte and the one whose long poll was answered.
    tokio::time::timeout(Duration::from_secs(10), closed_by_server(&mut idle))
        .await
        .expect("idle connection not closed at shutdown");
    tokio::time::timeout(Duration::from_secs(10), closed_by_server(&mut stream))
        .await
        .expect("connection not closed after its last answer at shutdown");
    tokio::time::timeout(Duration::from_secs(10), serving)
        .await
        .expect("serve did not return after shutdown")
        .unwrap()
        .unwrap();
    assert!(TcpStream::connect(addr).await.is_err(), "still accepting");
}
