//! Two Redrive servers on one PostgreSQL (`--store postgres://…`, ADR 0002), driven through the
//! official SDK with requests alternating between them: whatever one server did, the other sees.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_sqs::types::{MessageAttributeValue, QueueAttributeName};
use redrive_engine::backend::QueueBackend;
use redrive_engine::{Engine, EngineConfig, ManualClock};
use redrive_server::{Server, ServerConfig, SharedStore, Storage};
use redrive_store_pg::PgBackend;

use crate::common::{TestServer, code, describe, md5_hex, sys_attr};

fn url() -> String {
    std::env::var("REDRIVE_TEST_POSTGRES_URL").expect(
        "REDRIVE_TEST_POSTGRES_URL is not set: `source tests/services/start.sh` first (the `services` nextest profile)",
    )
}

/// A schema name of its own for one test's servers.
fn fresh_schema() -> String {
    format!(
        "it_{}",
        uuid::Uuid::new_v4().simple().to_string()[..12].to_owned()
    )
}

/// `n` servers on one fresh schema of the test database.
async fn servers(n: usize) -> Vec<TestServer> {
    servers_and_db(n).await.0
}

/// [`servers`], and a backend of the same schema for the test itself (to move its clock).
async fn servers_and_db(n: usize) -> (Vec<TestServer>, PgBackend) {
    servers_with_auth(n, redrive_server::Auth::default()).await
}

/// [`servers_and_db`] with `auth` on every server.
async fn servers_with_auth(n: usize, auth: redrive_server::Auth) -> (Vec<TestServer>, PgBackend) {
    servers_with(n, || ServerConfig {
        auth: auth.clone(),
        ..Default::default()
    })
    .await
}

/// [`servers_and_db`], each server configured by `config` (its port and store are set here).
async fn servers_with(n: usize, config: impl Fn() -> ServerConfig) -> (Vec<TestServer>, PgBackend) {
    let schema = fresh_schema();
    let mut out = Vec::new();
    for _ in 0..n {
        let backend = PgBackend::connect(&url(), Some(&schema), 4)
            .await
            .expect("connect to PostgreSQL");
        let server = Server::bind(ServerConfig {
            port: 0,
            storage: Storage::Shared(SharedStore(Arc::new(backend))),
            ..config()
        })
        .await
        .expect("bind");
        out.push(TestServer::from_server(server));
    }
    let db = PgBackend::connect(&url(), Some(&schema), 1)
        .await
        .expect("connect to PostgreSQL");
    (out, db)
}

#[tokio::test]
async fn a_queue_and_its_messages_are_the_same_on_every_server() {
    let s = servers(2).await;
    let (a, b) = (&s[0], &s[1]);
    let url = a
        .create_with("shared-std", &[("VisibilityTimeout", "30")])
        .await;
    // The other server knows the queue: URL, list, attributes.
    let got = b
        .client
        .get_queue_url()
        .queue_name("shared-std")
        .send()
        .await
        .unwrap();
    assert_eq!(got.queue_url(), Some(b.queue_url("shared-std").as_str()));
    let listed = b.client.list_queues().send().await.unwrap();
    assert_eq!(listed.queue_urls(), [b.queue_url("shared-std")]);
    assert_eq!(
        b.attrs(&url, &["VisibilityTimeout"]).await["VisibilityTimeout"],
        "30"
    );
    // Creating it again on the other server with other attributes is refused there.
    let e = b
        .client
        .create_queue()
        .queue_name("shared-std")
        .attributes(QueueAttributeName::VisibilityTimeout, "31")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "QueueAlreadyExists");

    // Sent on one, received on the other, with its attributes and digests.
    let sent = a
        .client
        .send_message()
        .queue_url(&url)
        .message_body("hello")
        .message_attributes(
            "colour",
            MessageAttributeValue::builder()
                .data_type("String")
                .string_value("blue")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let got = b.receive(&url, 10, None).await;
    assert_eq!(got.len(), 1);
    let m = &got[0];
    assert_eq!(m.message_id(), sent.message_id());
    assert_eq!(m.body(), Some("hello"));
    assert_eq!(m.md5_of_body(), Some(md5_hex(b"hello").as_str()));
    assert_eq!(
        m.md5_of_message_attributes(),
        sent.md5_of_message_attributes()
    );
    assert_eq!(
        m.message_attributes().unwrap()["colour"].string_value(),
        Some("blue")
    );
    assert_eq!(sys_attr(m, "ApproximateReceiveCount").as_deref(), Some("1"));
    // In flight on both servers.
    assert!(a.receive(&url, 10, None).await.is_empty());
    assert_eq!(a.counts(&url).await, (0, 1, 0));
    // Deleted on the first with the second's handle: gone everywhere.
    a.client
        .delete_message()
        .queue_url(&url)
        .receipt_handle(m.receipt_handle().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(b.counts(&url).await, (0, 0, 0));

    // Tags and attributes set on one are read on the other.
    b.client
        .tag_queue()
        .queue_url(&url)
        .tags("team", "payments")
        .send()
        .await
        .unwrap();
    let tags = a
        .client
        .list_queue_tags()
        .queue_url(&url)
        .send()
        .await
        .unwrap();
    assert_eq!(tags.tags().unwrap()["team"], "payments");
    a.client
        .set_queue_attributes()
        .queue_url(&url)
        .attributes(QueueAttributeName::DelaySeconds, "5")
        .send()
        .await
        .unwrap();
    assert_eq!(b.attrs(&url, &["DelaySeconds"]).await["DelaySeconds"], "5");
    b.send(&url, "later").await;
    assert_eq!(a.counts(&url).await, (0, 0, 1));

    // Purged on one, empty and purge-limited on the other; deleted on one, gone on the other.
    a.client.purge_queue().queue_url(&url).send().await.unwrap();
    assert_eq!(b.counts(&url).await, (0, 0, 0));
    let e = b
        .client
        .purge_queue()
        .queue_url(&url)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "AWS.SimpleQueueService.PurgeQueueInProgress");
    b.client
        .delete_queue()
        .queue_url(&url)
        .send()
        .await
        .unwrap();
    let e = a
        .client
        .get_queue_url()
        .queue_name("shared-std")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "AWS.SimpleQueueService.NonExistentQueue");
    let e = a
        .client
        .create_queue()
        .queue_name("shared-std")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "AWS.SimpleQueueService.QueueDeletedRecently");
}

#[tokio::test]
async fn alternating_servers_hand_each_message_out_once() {
    let s = servers(2).await;
    let url = s[0].create("shared-alternating").await;
    let mut bodies: Vec<String> = (0..40).map(|i| format!("m{i}")).collect();
    for (i, body) in bodies.iter().enumerate() {
        s[i % 2].send(&url, body).await;
    }
    let mut seen = Vec::new();
    for round in 0..40 {
        let got = s[round % 2].receive(&url, 10, Some(60)).await;
        for m in &got {
            seen.push(m.body().unwrap().to_string());
            s[(round + 1) % 2]
                .client
                .delete_message()
                .queue_url(&url)
                .receipt_handle(m.receipt_handle().unwrap())
                .send()
                .await
                .unwrap();
        }
        if seen.len() == bodies.len() {
            break;
        }
    }
    seen.sort();
    bodies.sort();
    assert_eq!(seen, bodies, "every message once, none twice");
    assert_eq!(s[1].counts(&url).await, (0, 0, 0));
}

#[tokio::test]
async fn a_long_poll_on_one_server_wakes_on_a_send_to_the_other() {
    let s = servers(2).await;
    let url = s[0].create("shared-long-poll").await;
    let client = s[1].client.clone();
    let poll_url = url.clone();
    let started = Instant::now();
    let poll = tokio::spawn(async move {
        client
            .receive_message()
            .queue_url(&poll_url)
            .wait_time_seconds(10)
            .send()
            .await
            .unwrap()
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    s[0].send(&url, "wake up").await;
    let got = poll.await.unwrap();
    assert_eq!(got.messages()[0].body(), Some("wake up"));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "woken by the send, not the timeout ({:?})",
        started.elapsed()
    );
}

#[tokio::test]
async fn visibility_changes_and_stale_handles_across_servers() {
    let s = servers(2).await;
    let (a, b) = (&s[0], &s[1]);
    let url = a.create("shared-visibility").await;
    a.send(&url, "x").await;
    let first = a.receive(&url, 1, Some(60)).await;
    let old = first[0].receipt_handle().unwrap().to_string();
    // Made visible again from the other server: received again, a second receive.
    b.client
        .change_message_visibility()
        .queue_url(&url)
        .receipt_handle(&old)
        .visibility_timeout(0)
        .send()
        .await
        .unwrap();
    let second = a.receive(&url, 1, Some(60)).await;
    assert_eq!(second.len(), 1);
    assert_eq!(
        sys_attr(&second[0], "ApproximateReceiveCount").as_deref(),
        Some("2")
    );
    // The first receive's handle still changes the visibility of the message in flight, as on
    // the embedded store (moto's test_change_message_visibility_on_old_message).
    b.client
        .change_message_visibility()
        .queue_url(&url)
        .receipt_handle(&old)
        .visibility_timeout(0)
        .send()
        .await
        .unwrap();
    assert_eq!(b.counts(&url).await, (1, 0, 0));
    let third = a.receive(&url, 1, Some(60)).await;
    assert_eq!(third.len(), 1);
    // A malformed handle is refused as on the embedded store.
    let e = b
        .client
        .delete_message()
        .queue_url(&url)
        .receipt_handle("garbage")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "ReceiptHandleIsInvalid");
    assert_eq!(b.counts(&url).await, (0, 1, 0));
}

#[tokio::test]
async fn a_fifo_group_is_held_across_servers_and_deduplicated_across_them() {
    let s = servers(2).await;
    let (a, b) = (&s[0], &s[1]);
    let url = a.create_with("shared.fifo", &[("FifoQueue", "true")]).await;
    let send = |srv: &TestServer, group: &str, dedup: &str, body: &str| {
        let req = srv
            .client
            .send_message()
            .queue_url(&url)
            .message_group_id(group)
            .message_deduplication_id(dedup)
            .message_body(body);
        async move {
            req.send()
                .await
                .unwrap_or_else(|e| panic!("{}", describe(&e)))
        }
    };
    let m1 = send(a, "g1", "d1", "g1-first").await;
    send(b, "g1", "d2", "g1-second").await;
    send(a, "g2", "d3", "g2-first").await;
    // The same deduplication id on the other server: the first message, not a new one.
    let dup = send(b, "g1", "d1", "g1-first again").await;
    assert_eq!(dup.message_id(), m1.message_id());
    assert_eq!(dup.sequence_number(), m1.sequence_number());

    let got = a.receive(&url, 1, Some(60)).await;
    assert_eq!(got.len(), 1);
    let held = got[0].clone();
    let group = sys_attr(&held, "MessageGroupId").unwrap();
    // The other server gets only the other group while this one is in flight.
    let other = b.receive(&url, 10, Some(60)).await;
    assert!(
        other
            .iter()
            .all(|m| sys_attr(m, "MessageGroupId").unwrap() != group),
        "a held group was handed out by the other server"
    );
    for m in &other {
        a.client
            .delete_message()
            .queue_url(&url)
            .receipt_handle(m.receipt_handle().unwrap())
            .send()
            .await
            .unwrap();
    }
    // Deleting the held message on the other server frees its group, in order.
    b.client
        .delete_message()
        .queue_url(&url)
        .receipt_handle(held.receipt_handle().unwrap())
        .send()
        .await
        .unwrap();
    let mut rest = Vec::new();
    for i in 0..4 {
        for m in s[i % 2].receive(&url, 10, Some(60)).await {
            rest.push(m.body().unwrap().to_string());
            s[(i + 1) % 2]
                .client
                .delete_message()
                .queue_url(&url)
                .receipt_handle(m.receipt_handle().unwrap())
                .send()
                .await
                .unwrap();
        }
    }
    let mut all: Vec<String> = std::iter::once(held.body().unwrap().to_string())
        .chain(other.iter().map(|m| m.body().unwrap().to_string()))
        .chain(rest)
        .collect();
    let g1: Vec<&String> = all.iter().filter(|b| b.starts_with("g1")).collect();
    assert_eq!(g1, ["g1-first", "g1-second"], "group order kept");
    all.sort();
    assert_eq!(all, ["g1-first", "g1-second", "g2-first"]);
}

#[tokio::test]
async fn a_message_received_too_often_moves_to_the_dlq_across_servers() {
    let s = servers(2).await;
    let (a, b) = (&s[0], &s[1]);
    let dlq = a.create("shared-dlq").await;
    let policy = format!(
        r#"{{"deadLetterTargetArn":"{}","maxReceiveCount":"1"}}"#,
        TestServer::arn("shared-dlq")
    );
    let src = b
        .create_with("shared-src", &[("RedrivePolicy", &policy)])
        .await;
    a.send(&src, "poison").await;
    let first = b.receive(&src, 1, Some(0)).await;
    assert_eq!(first.len(), 1);
    // Received once already: the next receive (on the other server) moves it.
    assert!(a.receive(&src, 1, Some(0)).await.is_empty());
    let moved = b.receive(&dlq, 1, Some(30)).await;
    assert_eq!(moved.len(), 1);
    assert_eq!(moved[0].body(), Some("poison"));
    assert_eq!(
        sys_attr(&moved[0], "DeadLetterQueueSourceArn"),
        Some(TestServer::arn("shared-src"))
    );
    let sources = a
        .client
        .list_dead_letter_source_queues()
        .queue_url(&dlq)
        .send()
        .await
        .unwrap();
    assert_eq!(sources.queue_urls(), [a.queue_url("shared-src")]);
}

/// The in-flight limit (120,000) counted in the database: a server that never served the
/// queue sees the other's in-flight messages; at the limit a receive with messages waiting is
/// `OverLimit` (403); a deleted message makes room once the count is read again (each server
/// re-reads it at most once a second).
#[tokio::test]
async fn the_in_flight_limit_holds_across_servers() {
    const LIMIT: usize = 120_000;
    let (s, db) = servers_and_db(2).await;
    let (a, b) = (&s[0], &s[1]);
    let url = a.create("busy").await;
    let q = db
        .store()
        .queue("us-east-1", "busy")
        .await
        .unwrap()
        .unwrap();
    let message = redrive_store_pg::NewMessage {
        body: b"filler".to_vec(),
        attributes: b"{}".to_vec(),
        delay_ms: 0,
        group_id: None,
        dedup: None,
    };
    for _ in 0..(LIMIT + 2) / 1000 {
        db.store()
            .send(&q, &vec![message.clone(); 1000])
            .await
            .unwrap();
    }
    db.store().send(&q, &vec![message; 2]).await.unwrap();
    let held = db.store().receive(&q, LIMIT - 1, 3_600_000).await.unwrap();
    assert_eq!(held.len(), LIMIT - 1);

    // Room for one, whatever is asked for.
    let got = a.receive(&url, 10, Some(3600)).await;
    assert_eq!(got.len(), 1);
    for server in [b, a] {
        let e = server
            .client
            .receive_message()
            .queue_url(&url)
            .max_number_of_messages(10)
            .send()
            .await
            .unwrap_err();
        let (code, status, message) = crate::common::err_parts(&e);
        assert_eq!((code.as_str(), status), ("OverLimit", 403), "{message}");
        assert_eq!(
            message,
            "Too many messages in flight: the limit of 120000 in-flight messages per queue is reached."
        );
    }
    a.client
        .delete_message()
        .queue_url(&url)
        .receipt_handle(got[0].receipt_handle().unwrap())
        .send()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(b.receive(&url, 10, Some(3600)).await.len(), 1);
}

#[tokio::test]
async fn what_the_shared_store_does_not_do_yet_is_an_error() {
    let s = servers(1).await;
    s[0].create("shared-unsupported").await;
    // What of the extension API and the console reads one process's state: an error, not an
    // empty server.
    for path in ["/_redrive/v1/quarantine"] {
        let resp = s[0]
            .http
            .get(format!("{}{path}", s[0].base))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "{path}");
        assert!(
            resp.text().await.unwrap().contains("UnsupportedOperation"),
            "{path}"
        );
    }
}

/// `n` servers on one fresh schema, each on its own manual clock at `start_ms` (the tests move
/// them together), with their engines.
async fn servers_on_clocks(
    n: usize,
    start_ms: u64,
) -> (Vec<(TestServer, Arc<Engine>, Arc<ManualClock>)>, PgBackend) {
    let schema = fresh_schema();
    let mut out = Vec::new();
    for _ in 0..n {
        let backend = PgBackend::connect(&url(), Some(&schema), 4)
            .await
            .expect("connect to PostgreSQL");
        let clock = Arc::new(ManualClock::new(start_ms));
        let engine = Arc::new(Engine::open_shared(
            EngineConfig::default(),
            Arc::new(backend),
            clock.clone(),
        ));
        out.push((TestServer::with_engine(engine.clone()).await, engine, clock));
    }
    let db = PgBackend::connect(&url(), Some(&schema), 1)
        .await
        .expect("connect to PostgreSQL");
    (out, db)
}

async fn get_json(ts: &TestServer, path: &str) -> (u16, serde_json::Value) {
    let (status, _, body) = ts.raw("GET", path, None, &[], Vec::new()).await;
    let v = serde_json::from_str(&body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"));
    (status, v)
}

fn series<'a>(v: &'a serde_json::Value, name: &str) -> &'a Vec<serde_json::Value> {
    v["metrics"]
        .as_array()
        .expect("metrics")
        .iter()
        .find(|m| m["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in {v}"))["points"]
        .as_array()
        .expect("points")
}

#[tokio::test]
async fn the_minute_history_adds_up_what_every_server_served() {
    const M0: u64 = 1_776_716_400_000; // 2026-04-20T20:20:00Z, a minute boundary
    let (s, db) = servers_on_clocks(2, M0).await;
    let ((a, ea, ca), (b, eb, cb)) = (&s[0], &s[1]);
    let advance = |ms: u64| {
        ca.advance_ms(ms);
        cb.advance_ms(ms);
    };
    let url = a.create("hist-shared").await;
    let fifo = a
        .create_with("hist-shared.fifo", &[("FifoQueue", "true")])
        .await;
    // Minute 0: 3 sent on A, 2 on B; B receives 4 for ten minutes and deletes one.
    advance(1_000);
    for i in 0..3 {
        a.send(&url, &format!("a{i}")).await;
    }
    for i in 0..2 {
        b.send(&url, &format!("b{i}")).await;
    }
    let got = b.receive(&url, 4, Some(600)).await;
    assert_eq!(got.len(), 4);
    b.client
        .delete_message()
        .queue_url(&url)
        .receipt_handle(got[0].receipt_handle().unwrap())
        .send()
        .await
        .unwrap();
    // Two FIFO groups, one held by an in-flight message.
    for g in ["g1", "g2"] {
        a.client
            .send_message()
            .queue_url(&fifo)
            .message_body(g)
            .message_group_id(g)
            .message_deduplication_id(g)
            .send()
            .await
            .unwrap();
    }
    let held = a.receive(&fifo, 1, Some(600)).await;
    assert_eq!(held.len(), 1);
    // A writes part of minute 0 early (a shutdown, say), then both write it whole.
    advance(58_000);
    ea.flush_history_partial().await;
    a.send(&url, "late").await;
    advance(1_000);
    let ra = ea.flush_history().await;
    let rb = eb.flush_history().await;
    assert_eq!(ra.minute_ms, Some(M0));
    assert_eq!(rb.minute_ms, Some(M0));
    // Minute 1: B sends one more.
    advance(1_000);
    b.send(&url, "m1").await;
    advance(59_000);
    ea.flush_history().await;
    eb.flush_history().await;

    let since = M0 / 1000;
    for ts in [a, b] {
        let (status, v) = get_json(
            ts,
            &format!(
                "/_redrive/v1/queues/hist-shared/metrics?since={since}&until={}",
                since + 180
            ),
        )
        .await;
        assert_eq!(status, 200, "{v}");
        let sent = series(&v, "NumberOfMessagesSent");
        assert_eq!(sent.len(), 2, "{v}");
        assert_eq!(sent[0]["timestamp"], M0);
        assert_eq!(sent[0]["Sum"], 6.0, "3 + 2 + the late one, none twice");
        assert_eq!(sent[1]["Sum"], 1.0);
        assert_eq!(series(&v, "NumberOfMessagesReceived")[0]["Sum"], 4.0);
        assert_eq!(series(&v, "NumberOfMessagesDeleted")[0]["Sum"], 1.0);
        // Gauges are sampled from the database by one server.
        let nv = series(&v, "ApproximateNumberOfMessagesNotVisible");
        assert_eq!(nv[0]["Maximum"], 3.0, "{v}");
        let vis = series(&v, "ApproximateNumberOfMessagesVisible");
        assert_eq!(vis[0]["Maximum"], 2.0, "{v}");
        assert_eq!(vis[1]["Maximum"], 3.0, "{v}");
        let (status, f) = get_json(
            ts,
            &format!(
                "/_redrive/v1/queues/hist-shared.fifo/metrics?since={since}&until={}",
                since + 120
            ),
        )
        .await;
        assert_eq!(status, 200, "{f}");
        assert_eq!(
            series(&f, "ApproximateNumberOfGroupsWithInflightMessages")[0]["Maximum"],
            1.0,
            "{f}"
        );
        // The CloudWatch API reads the same history.
        let body = serde_json::json!({
            "Namespace": "AWS/SQS",
            "MetricName": "NumberOfMessagesSent",
            "Dimensions": [{"Name": "QueueName", "Value": "hist-shared"}],
            "StartTime": since,
            "EndTime": since + 180,
            "Period": 120,
            "Statistics": ["Sum"],
        });
        let (status, _, text) = ts
            .raw(
                "POST",
                "/",
                Some("application/x-amz-json-1.0"),
                &[(
                    "x-amz-target",
                    "GraniteServiceVersion20100801.GetMetricStatistics",
                )],
                body.to_string().into_bytes(),
            )
            .await;
        assert_eq!(status, 200, "{text}");
        let cw: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(cw["Datapoints"][0]["Sum"], 7.0, "{cw}");
        let (status, _, text) = ts
            .raw_json("GraniteServiceVersion20100801.ListMetrics", "{}")
            .await;
        assert_eq!(status, 200, "{text}");
        assert!(text.contains("hist-shared.fifo"), "{text}");
    }

    // A deleted queue's history goes with it.
    let uid = db
        .queue("us-east-1", "hist-shared")
        .await
        .unwrap()
        .expect("queue")
        .uid;
    assert_eq!(db.minutes(uid, 0, u64::MAX / 2).await.unwrap().len(), 2);
    a.client
        .delete_queue()
        .queue_url(&url)
        .send()
        .await
        .unwrap();
    let (status, v) = get_json(b, "/_redrive/v1/queues/hist-shared/metrics").await;
    assert_eq!(status, 400, "{v}");
    assert_eq!(v["__type"], "QueueDoesNotExist", "{v}");
    assert!(db.minutes(uid, 0, u64::MAX / 2).await.unwrap().is_empty());
}

#[tokio::test]
async fn messages_past_retention_are_deleted_once_for_every_server() {
    let (s, db) = servers_and_db(2).await;
    let url = s[0]
        .create_with("shared-retention", &[("MessageRetentionPeriod", "60")])
        .await;
    s[1].send(&url, "old").await;
    // The database's clock (every server's) moves past the old message's retention.
    db.store().advance_clock(61_000).await.unwrap();
    s[0].send(&url, "new").await;
    // One of the servers holds the retention lease and sweeps within a few seconds.
    let deadline = Instant::now() + Duration::from_secs(20);
    while s[1].counts(&url).await != (1, 0, 0) {
        assert!(Instant::now() < deadline, "the old message was not expired");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let got = s[0].receive(&url, 10, None).await;
    assert_eq!(
        got.iter().map(|m| m.body().unwrap()).collect::<Vec<_>>(),
        ["new"]
    );
}

#[tokio::test]
async fn concurrent_queue_changes_on_two_servers_are_all_kept() {
    let s = servers(2).await;
    let url = s[0].create("shared-concurrent-tags").await;
    let mut tasks = Vec::new();
    for i in 0..10 {
        let client = s[i % 2].client.clone();
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            client
                .tag_queue()
                .queue_url(&url)
                .tags(format!("k{i}"), "v")
                .send()
                .await
                .unwrap();
        }));
    }
    let client = s[1].client.clone();
    let set_url = url.clone();
    tasks.push(tokio::spawn(async move {
        client
            .set_queue_attributes()
            .queue_url(&set_url)
            .attributes(QueueAttributeName::VisibilityTimeout, "42")
            .send()
            .await
            .unwrap();
    }));
    for t in tasks {
        t.await.unwrap();
    }
    let tags = s[0]
        .client
        .list_queue_tags()
        .queue_url(&url)
        .send()
        .await
        .unwrap();
    assert_eq!(
        tags.tags().unwrap().len(),
        10,
        "no tag lost: {:?}",
        tags.tags()
    );
    assert_eq!(
        s[0].attrs(&url, &["VisibilityTimeout"]).await["VisibilityTimeout"],
        "42"
    );
}

/// The newest move task of `source`, as `server` lists it.
async fn latest_task(
    server: &TestServer,
    source: &str,
) -> aws_sdk_sqs::types::ListMessageMoveTasksResultEntry {
    let mut got = server
        .client
        .list_message_move_tasks()
        .source_arn(TestServer::arn(source))
        .send()
        .await
        .unwrap_or_else(|e| panic!("list move tasks: {}", describe(&e)))
        .results
        .unwrap_or_default();
    assert_eq!(got.len(), 1, "{got:?}");
    got.remove(0)
}

/// Polls until `server` lists the newest task of `source` with a status in `want`.
async fn task_ends(
    server: &TestServer,
    source: &str,
    want: &[&str],
    timeout: Duration,
) -> aws_sdk_sqs::types::ListMessageMoveTasksResultEntry {
    let deadline = Instant::now() + timeout;
    loop {
        let t = latest_task(server, source).await;
        if want.contains(&t.status().unwrap_or("")) {
            return t;
        }
        assert!(Instant::now() < deadline, "task never ended: {t:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A source queue dead-lettering into `dlq` after one receive, on `server`; returns its URL.
async fn dlq_source(server: &TestServer, src: &str, dlq: &str) -> String {
    let policy = format!(
        r#"{{"deadLetterTargetArn":"{}","maxReceiveCount":"1"}}"#,
        TestServer::arn(dlq)
    );
    server.create_with(src, &[("RedrivePolicy", &policy)]).await
}

/// Sends `bodies` to `src` (with a trace header and an attribute) and dead-letters them all.
async fn dead_letter_all(server: &TestServer, src: &str, bodies: &[String]) {
    for b in bodies {
        server
            .client
            .send_message()
            .queue_url(src)
            .message_body(b)
            .message_attributes(
                "n",
                MessageAttributeValue::builder()
                    .data_type("String")
                    .string_value(b)
                    .build()
                    .unwrap(),
            )
            .message_system_attributes(
                aws_sdk_sqs::types::MessageSystemAttributeNameForSends::AwsTraceHeader,
                aws_sdk_sqs::types::MessageSystemAttributeValue::builder()
                    .data_type("String")
                    .string_value(format!("Root=1-{b}"))
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
    }
    for _ in 0..100 {
        if server.counts(src).await == (0, 0, 0) {
            return;
        }
        server.receive(src, 10, Some(0)).await;
    }
    panic!("{src} never drained into its DLQ");
}

#[tokio::test]
async fn a_move_task_started_on_one_server_is_listed_cancelled_and_finished_on_another() {
    let s = servers(2).await;
    let (a, b) = (&s[0], &s[1]);
    let dlq = a.create("mt-dlq").await;
    let src = dlq_source(b, "mt-src", "mt-dlq").await;
    let bodies: Vec<String> = (0..30).map(|i| format!("m{i:02}")).collect();
    dead_letter_all(a, &src, &bodies).await;
    assert_eq!(a.counts(&dlq).await, (30, 0, 0));

    // Started on A, slowly; listed and cancelled from B.
    let handle = a
        .client
        .start_message_move_task()
        .source_arn(TestServer::arn("mt-dlq"))
        .max_number_of_messages_per_second(5)
        .send()
        .await
        .unwrap()
        .task_handle
        .unwrap();
    let t = latest_task(b, "mt-dlq").await;
    assert_eq!(t.status(), Some("RUNNING"));
    assert_eq!(t.task_handle(), Some(handle.as_str()));
    assert_eq!(t.approximate_number_of_messages_to_move(), Some(30));
    assert_eq!(t.max_number_of_messages_per_second(), Some(5));
    // One active task per source, whichever server is asked.
    let e = b
        .client
        .start_message_move_task()
        .source_arn(TestServer::arn("mt-dlq"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidParameterValue");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let cancelled = b
        .client
        .cancel_message_move_task()
        .task_handle(&handle)
        .send()
        .await
        .unwrap();
    assert!(cancelled.approximate_number_of_messages_moved() >= 1);
    let t = task_ends(a, "mt-dlq", &["CANCELLED"], Duration::from_secs(10)).await;
    assert_eq!(t.task_handle(), None);
    let moved = t.approximate_number_of_messages_moved();
    assert!((1..30).contains(&moved), "{t:?}");
    // A cancelled task cannot be cancelled again.
    let e = a
        .client
        .cancel_message_move_task()
        .task_handle(&handle)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidParameterValue");
    // What moved is in the source, the rest still in the DLQ: nothing lost or doubled.
    assert_eq!(b.counts(&src).await.0 as i64, moved);
    assert_eq!(b.counts(&dlq).await.0 as i64, 30 - moved);

    // A second task from B (no rate) finishes the rest; A lists it COMPLETED.
    b.client
        .start_message_move_task()
        .source_arn(TestServer::arn("mt-dlq"))
        .send()
        .await
        .unwrap();
    let t = task_ends(a, "mt-dlq", &["COMPLETED"], Duration::from_secs(20)).await;
    assert_eq!(t.approximate_number_of_messages_moved(), 30 - moved);
    let mut got = Vec::new();
    for _ in 0..20 {
        let batch = a.receive(&src, 10, Some(60)).await;
        if batch.is_empty() {
            break;
        }
        got.extend(batch);
    }
    let mut seen: Vec<String> = got.iter().map(|m| m.body().unwrap().to_string()).collect();
    seen.sort();
    assert_eq!(seen, bodies, "every message moved exactly once");
    // Kept as the embedded redrive keeps them: attributes and trace header; a new message
    // (receive count 1 now, no dead-letter source).
    for m in &got {
        let body = m.body().unwrap();
        assert_eq!(
            m.message_attributes().unwrap()["n"].string_value(),
            Some(body)
        );
        assert_eq!(
            sys_attr(m, "AWSTraceHeader").as_deref(),
            Some(format!("Root=1-{body}").as_str())
        );
        assert_eq!(sys_attr(m, "ApproximateReceiveCount").as_deref(), Some("1"));
        assert_eq!(sys_attr(m, "DeadLetterQueueSourceArn"), None);
    }
    assert_eq!(a.counts(&dlq).await, (0, 0, 0));
    // Whichever servers ran the steps counted them: the sum over both is every move.
    let mut counted = 0;
    for server in [a, b] {
        let body = metrics_text(server).await;
        counted += gauge(
            &body,
            "sqs_queue_messages_redriven_by_move_tasks_total",
            "mt-dlq",
        )
        .unwrap_or(0);
    }
    assert_eq!(counted, 30);
}

#[tokio::test]
async fn a_move_task_to_a_fifo_destination_keeps_groups_and_order_across_servers() {
    let s = servers(2).await;
    let (a, b) = (&s[0], &s[1]);
    let fifo = [("FifoQueue", "true"), ("ContentBasedDeduplication", "true")];
    let dlq = a.create_with("mt-dlq.fifo", &fifo).await;
    let policy = format!(
        r#"{{"deadLetterTargetArn":"{}","maxReceiveCount":"1"}}"#,
        TestServer::arn("mt-dlq.fifo")
    );
    let mut attrs = fifo.to_vec();
    attrs.push(("RedrivePolicy", &policy));
    let src = b.create_with("mt-src.fifo", &attrs).await;
    let dest = b.create_with("mt-dest.fifo", &fifo).await;
    for i in 0..6 {
        a.client
            .send_message()
            .queue_url(&src)
            .message_body(format!("g{}-{i}", i % 2))
            .message_group_id(format!("g{}", i % 2))
            .send()
            .await
            .unwrap();
    }
    for _ in 0..100 {
        if a.counts(&src).await == (0, 0, 0) {
            break;
        }
        a.receive(&src, 10, Some(0)).await;
    }
    assert_eq!(b.counts(&dlq).await, (6, 0, 0));
    a.client
        .start_message_move_task()
        .source_arn(TestServer::arn("mt-dlq.fifo"))
        .destination_arn(TestServer::arn("mt-dest.fifo"))
        .send()
        .await
        .unwrap();
    let t = task_ends(b, "mt-dlq.fifo", &["COMPLETED"], Duration::from_secs(20)).await;
    assert_eq!(t.approximate_number_of_messages_moved(), 6);
    let mut by_group: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for _ in 0..20 {
        let got = b.receive(&dest, 10, Some(60)).await;
        if got.is_empty() {
            break;
        }
        for m in got {
            let g = sys_attr(&m, "MessageGroupId").unwrap();
            assert_eq!(
                sys_attr(&m, "MessageDeduplicationId").as_deref(),
                m.message_id(),
                "a redriven FIFO message is deduplicated by its new id"
            );
            by_group
                .entry(g)
                .or_default()
                .push(m.body().unwrap().to_string());
            b.client
                .delete_message()
                .queue_url(&dest)
                .receipt_handle(m.receipt_handle().unwrap())
                .send()
                .await
                .unwrap();
        }
    }
    assert_eq!(by_group["g0"], ["g0-0", "g0-2", "g0-4"]);
    assert_eq!(by_group["g1"], ["g1-1", "g1-3", "g1-5"]);
}

#[tokio::test]
async fn permissions_are_kept_in_the_catalog_for_every_server() {
    let s = servers(2).await;
    let (a, b) = (&s[0], &s[1]);
    let url = a.create("shared-perm").await;
    a.client
        .add_permission()
        .queue_url(&url)
        .label("l1")
        .aws_account_ids("111122223333")
        .actions("SendMessage")
        .send()
        .await
        .unwrap();
    // The same label again, on the other server: refused there.
    let e = b
        .client
        .add_permission()
        .queue_url(&url)
        .label("l1")
        .aws_account_ids("111122223333")
        .actions("ReceiveMessage")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidParameterValue");
    b.client
        .add_permission()
        .queue_url(&url)
        .label("l2")
        .aws_account_ids("111122223333")
        .actions("ReceiveMessage")
        .send()
        .await
        .unwrap();
    let policy: serde_json::Value =
        serde_json::from_str(&a.attrs(&url, &["Policy"]).await["Policy"]).unwrap();
    let sids: Vec<&str> = policy["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["Sid"].as_str().unwrap())
        .collect();
    assert_eq!(sids, ["l1", "l2"]);
    a.client
        .remove_permission()
        .queue_url(&url)
        .label("l1")
        .send()
        .await
        .unwrap();
    let e = b
        .client
        .remove_permission()
        .queue_url(&url)
        .label("l1")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidParameterValue");
}

/// The value of `metric{queue="<queue>"}` in a `/metrics` answer.
/// A server's `/metrics` page.
async fn metrics_text(server: &TestServer) -> String {
    server
        .http
        .get(format!("{}/metrics", server.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

fn gauge(body: &str, metric: &str, queue: &str) -> Option<i64> {
    let prefix = format!("{metric}{{queue=\"{queue}\"}} ");
    body.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map(|v| v.trim().parse().unwrap())
}

/// Every server's `/metrics` shows the shared queues' depth from the database: messages sent
/// and received through one server are counted by the other.
#[tokio::test]
async fn every_server_reports_the_shared_queue_gauges() {
    let s = servers(2).await;
    let url = s[0].create("shared-metrics").await;
    let other = s[0].create("shared-metrics-other").await;
    for i in 0..3 {
        s[0].send(&url, &format!("m{i}")).await;
    }
    s[0].send(&other, "x").await;
    assert_eq!(s[1].receive(&url, 1, Some(60)).await.len(), 1);
    for server in &s {
        let body = metrics_text(server).await;
        let q = "shared-metrics";
        assert_eq!(
            gauge(&body, "sqs_queue_messages_visible", q),
            Some(2),
            "{body}"
        );
        assert_eq!(gauge(&body, "sqs_queue_messages_not_visible", q), Some(1));
        assert_eq!(gauge(&body, "sqs_queue_messages_delayed", q), Some(0));
        assert_eq!(
            gauge(&body, "sqs_queue_messages_visible", "shared-metrics-other"),
            Some(1)
        );
        assert!(body.ends_with("# EOF\n"));
    }
}

/// A fair queue's tenant gauges on a shared store: one tenant with 40 messages in flight (over
/// 30 and over 10 % of the queue's) is noisy; the quiet tenants' messages are counted by
/// state, on every server.
#[tokio::test]
async fn every_server_reports_a_fair_queues_noisy_and_quiet_tenants() {
    let s = servers(2).await;
    let url = s[0].create("shared-fair").await;
    let send = |tenant: &'static str, n: usize, delay: Option<i32>| {
        let (server, url) = (&s[0], url.clone());
        async move {
            for i in 0..n {
                server
                    .client
                    .send_message()
                    .queue_url(&url)
                    .message_body(format!("{tenant}-{i}"))
                    .message_group_id(tenant)
                    .set_delay_seconds(delay)
                    .send()
                    .await
                    .unwrap();
            }
        }
    };
    send("big", 40, None).await;
    // Every message in flight: the big tenant's 40, then the quiet ones arrive.
    let mut got = 0;
    while got < 40 {
        let n = s[1].receive(&url, 10, Some(600)).await.len();
        assert!(n > 0, "received {got} of 40");
        got += n;
    }
    send("small", 3, None).await;
    send("late", 2, Some(600)).await;
    assert_eq!(
        s[0].receive(&url, 1, Some(600)).await.len(),
        1,
        "a quiet one"
    );
    for server in &s {
        let body = metrics_text(server).await;
        let q = "shared-fair";
        assert_eq!(gauge(&body, "sqs_queue_noisy_groups", q), Some(1), "{body}");
        assert_eq!(
            gauge(&body, "sqs_queue_messages_visible_in_quiet_groups", q),
            Some(2)
        );
        assert_eq!(
            gauge(&body, "sqs_queue_messages_not_visible_in_quiet_groups", q),
            Some(1)
        );
        assert_eq!(
            gauge(&body, "sqs_queue_messages_delayed_in_quiet_groups", q),
            Some(2)
        );
        assert!(
            gauge(
                &body,
                "sqs_queue_oldest_message_age_in_quiet_groups_seconds",
                q
            )
            .is_some()
        );
        assert_eq!(gauge(&body, "sqs_queue_messages_not_visible", q), Some(41));
    }
}

/// The queue counters on a shared store are each process's own: a server counts the sends,
/// receives, empty receives and deletes it served (Prometheus adds counters up across
/// instances), next to the database's gauges.
#[tokio::test]
async fn each_server_counts_the_traffic_it_served() {
    let s = servers(2).await;
    let q = "shared-counters";
    let url = s[0].create(q).await;
    for i in 0..3 {
        s[0].send(&url, &format!("m{i}")).await;
    }
    let mut got = Vec::new();
    for _ in 0..20 {
        got.extend(s[1].receive(&url, 10, Some(60)).await);
        if got.len() == 3 {
            break;
        }
    }
    assert_eq!(got.len(), 3);
    // Everything is in flight: an empty receive.
    assert!(s[1].receive(&url, 10, Some(60)).await.is_empty());
    for m in &got {
        s[0].client
            .delete_message()
            .queue_url(&url)
            .receipt_handle(m.receipt_handle().unwrap())
            .send()
            .await
            .unwrap();
    }
    let a = metrics_text(&s[0]).await;
    assert_eq!(
        gauge(&a, "sqs_queue_messages_sent_total", q),
        Some(3),
        "{a}"
    );
    assert_eq!(
        gauge(&a, "sqs_queue_messages_deleted_total", q),
        Some(3),
        "{a}"
    );
    assert_eq!(
        gauge(&a, "sqs_queue_messages_received_total", q),
        Some(0),
        "{a}"
    );
    assert!(
        gauge(&a, "sqs_queue_sent_message_bytes_total", q).unwrap() >= 6,
        "{a}"
    );
    let b = metrics_text(&s[1]).await;
    assert_eq!(
        gauge(&b, "sqs_queue_messages_received_total", q),
        Some(3),
        "{b}"
    );
    assert!(
        gauge(&b, "sqs_queue_empty_receives_total", q).unwrap() >= 1,
        "{b}"
    );
    assert_eq!(
        gauge(&b, "sqs_queue_messages_sent_total", q),
        Some(0),
        "{b}"
    );
    assert_eq!(
        gauge(&b, "sqs_queue_messages_deleted_total", q),
        Some(0),
        "{b}"
    );
    // The gauges are the database's, the same on both.
    for body in [&a, &b] {
        assert_eq!(
            gauge(body, "sqs_queue_messages_visible", q),
            Some(0),
            "{body}"
        );
        assert_eq!(
            gauge(body, "sqs_queue_messages_not_visible", q),
            Some(0),
            "{body}"
        );
    }
}

async fn inspect_json(server: &TestServer, path: &str) -> serde_json::Value {
    let resp = server
        .http
        .get(format!("{}{path}", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{path}");
    serde_json::from_str(&resp.text().await.unwrap()).unwrap()
}

#[tokio::test]
async fn inspection_reads_the_database_without_changing_it_on_every_server() {
    let s = servers(2).await;
    let q = s[0]
        .create_with(
            "peek.fifo",
            &[("FifoQueue", "true"), ("ContentBasedDeduplication", "true")],
        )
        .await;
    for (body, group) in [("a1", "a"), ("a2", "a"), ("b1", "b")] {
        s[1].client
            .send_message()
            .queue_url(&q)
            .message_body(body)
            .message_group_id(group)
            .send()
            .await
            .unwrap();
    }
    let plain = s[1].create("peek-std").await;
    s[0].client
        .send_message()
        .queue_url(&plain)
        .message_body("later")
        .delay_seconds(600)
        .send()
        .await
        .unwrap();
    // One of group a is in flight: a2 waits behind it.
    let got = s[0].receive(&q, 1, Some(600)).await;
    assert_eq!(got[0].body(), Some("a1"));

    let a = inspect_json(&s[0], "/_redrive/v1/queues/peek.fifo/messages").await;
    let b = inspect_json(&s[1], "/_redrive/v1/queues/peek.fifo/messages").await;
    assert_eq!(a, b, "every server reads the same rows");
    let msgs = a["messages"].as_array().unwrap();
    let view: Vec<(&str, &str, u64)> = msgs
        .iter()
        .map(|m| {
            (
                m["body"].as_str().unwrap(),
                m["state"].as_str().unwrap(),
                m["receiveCount"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        view,
        [
            ("a1", "inflight", 1),
            ("a2", "visible", 0),
            ("b1", "visible", 0)
        ]
    );
    assert!(msgs[0]["visibleAt"].as_u64().is_some(), "{a}");
    assert!(msgs[1]["visibleAt"].is_null(), "{a}");
    assert_eq!(msgs[0]["messageGroupId"], "a");
    assert_eq!(msgs[0]["sequenceNumber"].as_str().map(str::len), Some(20));
    assert!(msgs[0]["firstReceiveTimestamp"].as_u64().is_some(), "{a}");
    assert!(msgs[1]["firstReceiveTimestamp"].is_null(), "{a}");
    // Pages of one across the two servers, by the cursor.
    let mut seen = Vec::new();
    let mut path = "/_redrive/v1/queues/peek.fifo/messages?limit=1".to_string();
    for i in 0..10 {
        let v = inspect_json(&s[i % 2], &path).await;
        seen.extend(
            v["messages"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["body"].as_str().unwrap().to_string()),
        );
        match v["next"].as_str() {
            Some(next) => {
                path = format!("/_redrive/v1/queues/peek.fifo/messages?limit=1&after={next}")
            }
            None => break,
        }
    }
    assert_eq!(seen, ["a1", "a2", "b1"]);
    let v = inspect_json(
        &s[1],
        "/_redrive/v1/queues/peek.fifo/messages?state=visible",
    )
    .await;
    assert_eq!(v["messages"].as_array().unwrap().len(), 2, "{v}");
    let v = inspect_json(&s[0], "/_redrive/v1/queues/peek-std/messages?state=delayed").await;
    assert_eq!(v["messages"][0]["body"], "later", "{v}");
    assert_eq!(v["messages"][0]["state"], "delayed", "{v}");

    let sum = inspect_json(&s[1], "/_redrive/v1/queues/peek.fifo").await;
    assert_eq!(
        (&sum["visible"], &sum["inFlight"], &sum["delayed"]),
        (
            &serde_json::json!(2),
            &serde_json::json!(1),
            &serde_json::json!(0)
        ),
        "{sum}"
    );
    assert_eq!(sum["fifo"], true);
    assert!(sum["oldestEnqueuedAt"].as_u64().is_some(), "{sum}");
    let sum = inspect_json(&s[0], "/_redrive/v1/queues/peek-std").await;
    assert_eq!(sum["delayed"], 1, "{sum}");
    // Nothing was received by reading: b1 is still the next, first receive of group b.
    let got = s[1].receive(&q, 10, Some(600)).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].body(), Some("b1"));
    assert_eq!(
        sys_attr(&got[0], "ApproximateReceiveCount").as_deref(),
        Some("1")
    );
}

async fn post_json(
    server: &TestServer,
    path: &str,
    body: serde_json::Value,
) -> (u16, serde_json::Value) {
    let resp = server
        .http
        .post(format!("{}{path}", server.base))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}")),
    )
}

/// Polls replay `id` on `server` until its status is not active.
async fn replay_ends(server: &TestServer, id: &str, within: Duration) -> serde_json::Value {
    let deadline = Instant::now() + within;
    loop {
        let v = inspect_json(server, &format!("/_redrive/v1/replays/{id}")).await;
        let status = v["status"].as_str().unwrap().to_string();
        if status != "RUNNING" && status != "CANCELLING" {
            return v;
        }
        assert!(Instant::now() < deadline, "replay {id} still {status}: {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_replay_started_on_one_server_is_listed_cancelled_and_finished_on_another() {
    let s = servers(2).await;
    let dlq = s[0].create("rp-dlq").await;
    let src = dlq_source(&s[0], "rp-src", "rp-dlq").await;
    let bodies: Vec<String> = (0..10)
        .map(|i| format!(r#"{{"n":{i},"k":{}}}"#, i % 2))
        .collect();
    dead_letter_all(&s[1], &src, &bodies).await;
    assert_eq!(s[0].counts(&dlq).await, (10, 0, 0));

    // A dry run on either server: nothing moves.
    let (status, dry) = post_json(
        &s[1],
        "/_redrive/v1/replays",
        serde_json::json!({"source": "rp-dlq", "selection": {"filter": ".k == 0"}, "transform": ".n += 100 | tojson", "sample": 10}),
    )
    .await;
    assert_eq!(status, 200, "{dry}");
    assert_eq!(dry["selected"], 5, "{dry}");
    assert_eq!(dry["scanned"], 10, "{dry}");
    assert_eq!(dry["destinations"][0]["name"], "rp-src", "{dry}");
    assert_eq!(dry["sample"].as_array().unwrap().len(), 5, "{dry}");
    assert!(
        dry["sample"][0]["body"].as_str().unwrap().contains("10"),
        "{dry}"
    );
    assert_eq!(s[1].counts(&dlq).await, (10, 0, 0));

    // Started on one server, slowly; listed, followed and cancelled on the other.
    let (status, t) = post_json(
        &s[0],
        "/_redrive/v1/replays",
        serde_json::json!({"source": "rp-dlq", "selection": {"filter": ".k == 0"}, "dryRun": false, "rate": 2}),
    )
    .await;
    assert_eq!(status, 201, "{t}");
    let id = t["id"].as_str().unwrap().to_string();
    assert_eq!(t["status"], "RUNNING");
    assert_eq!(t["selected"], 5);
    // A second start on the same DLQ, through the other server: 409.
    let (status, v) = post_json(
        &s[1],
        "/_redrive/v1/replays",
        serde_json::json!({"source": "rp-dlq", "dryRun": false}),
    )
    .await;
    assert_eq!(status, 409, "{v}");
    assert_eq!(v["replayId"], id.as_str());
    let listed = inspect_json(&s[1], "/_redrive/v1/replays?source=rp-dlq").await;
    assert_eq!(listed["replays"][0]["id"], id.as_str(), "{listed}");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let v = inspect_json(&s[1], &format!("/_redrive/v1/replays/{id}")).await;
        if v["moved"].as_u64().unwrap() >= 1 {
            break;
        }
        assert!(Instant::now() < deadline, "{v}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, v) = post_json(
        &s[1],
        &format!("/_redrive/v1/replays/{id}/cancel"),
        serde_json::json!({}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["status"], "CANCELLING", "{v}");
    let done = replay_ends(&s[0], &id, Duration::from_secs(20)).await;
    assert_eq!(done["status"], "CANCELLED", "{done}");
    let moved = done["moved"].as_u64().unwrap();
    assert!((1..5).contains(&moved), "{done}");
    // Counts exact: what moved is in the source once, the rest in the DLQ, the log agrees.
    assert_eq!(s[0].counts(&src).await.0, moved, "{done}");
    assert_eq!(s[1].counts(&dlq).await.0, 10 - moved, "{done}");
    let log = inspect_json(&s[1], &format!("/_redrive/v1/replays/{id}/moves")).await;
    assert_eq!(
        log["moves"].as_array().unwrap().len() as u64,
        moved,
        "{log}"
    );
    assert_eq!(log["moves"][0]["n"], 1, "{log}");
    assert_eq!(
        log["moves"][0]["destination"],
        TestServer::arn("rp-src").as_str(),
        "{log}"
    );
    let (status, v) = post_json(
        &s[0],
        &format!("/_redrive/v1/replays/{id}/cancel"),
        serde_json::json!({}),
    )
    .await;
    assert_eq!(status, 400, "{v}");
    assert!(v["message"].as_str().unwrap().contains("CANCELLED"), "{v}");
    // Drain what moved.
    for m in s[0].receive(&src, 10, Some(600)).await {
        s[0].client
            .delete_message()
            .queue_url(&src)
            .receipt_handle(m.receipt_handle().unwrap())
            .send()
            .await
            .unwrap();
    }

    // Another one, to the end, with a transform: started on the second server.
    let (status, t) = post_json(
        &s[1],
        "/_redrive/v1/replays",
        serde_json::json!({"source": "rp-dlq", "selection": {"filter": ".k == 0"}, "transform": ".n += 100 | tojson", "dryRun": false}),
    )
    .await;
    assert_eq!(status, 201, "{t}");
    let id2 = t["id"].as_str().unwrap().to_string();
    assert_eq!(t["selected"], 5 - moved, "{t}");
    let done = replay_ends(&s[0], &id2, Duration::from_secs(20)).await;
    assert_eq!(done["status"], "COMPLETED", "{done}");
    assert_eq!(done["moved"], 5 - moved, "{done}");
    assert_eq!(done["remaining"], 0, "{done}");
    let got = s[1].receive(&src, 10, Some(600)).await;
    assert_eq!(got.len() as u64, 5 - moved);
    for m in &got {
        let v: serde_json::Value = serde_json::from_str(m.body().unwrap()).unwrap();
        assert!(v["n"].as_u64().unwrap() >= 100, "{v}");
        assert_eq!(v["k"], 0, "{v}");
    }
    // The unselected stay in the DLQ, untouched.
    let left = inspect_json(&s[0], "/_redrive/v1/queues/rp-dlq/messages").await;
    let left = left["messages"].as_array().unwrap();
    assert_eq!(left.len(), 5);
    for m in left {
        assert!(m["body"].as_str().unwrap().contains(r#""k":1"#), "{m}");
        assert_eq!(m["receiveCount"], 1, "{m}");
    }
    let listed = inspect_json(&s[0], "/_redrive/v1/replays").await;
    let ids: Vec<&str> = listed["replays"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [id2.as_str(), id.as_str()], "newest first");
}

#[tokio::test]
async fn a_schedule_added_on_one_server_fires_once_for_both() {
    let (s, db) = servers_and_db(2).await;
    let dlq = s[0].create("sc-dlq").await;
    let src = dlq_source(&s[0], "sc-src", "sc-dlq").await;
    let bodies: Vec<String> = (0..4).map(|i| format!(r#"{{"n":{i}}}"#)).collect();
    dead_letter_all(&s[1], &src, &bodies).await;
    // Refused as embedded: a bad cron, an unknown queue, a taken name.
    let (status, v) = post_json(
        &s[0],
        "/_redrive/v1/schedules",
        serde_json::json!({"name": "bad", "cron": "nope", "source": "sc-dlq"}),
    )
    .await;
    assert_eq!(status, 400, "{v}");
    let (status, v) = post_json(
        &s[0],
        "/_redrive/v1/schedules",
        serde_json::json!({"name": "bad", "cron": "* * * * *", "source": "nope"}),
    )
    .await;
    assert_eq!(v["__type"], "QueueDoesNotExist", "{status} {v}");
    let (status, added) = post_json(
        &s[0],
        "/_redrive/v1/schedules",
        serde_json::json!({"name": "hourly", "cron": "0 * * * *", "source": "sc-dlq", "selection": {"filter": ".n < 3"}}),
    )
    .await;
    assert_eq!(status, 201, "{added}");
    let id = added["id"].as_str().unwrap().to_string();
    assert_eq!(added["sourceArn"], TestServer::arn("sc-dlq").as_str());
    let (status, v) = post_json(
        &s[1],
        "/_redrive/v1/schedules",
        serde_json::json!({"name": "hourly", "cron": "* * * * *", "source": "sc-dlq"}),
    )
    .await;
    assert_eq!(status, 400, "{v}");
    let listed = inspect_json(&s[1], "/_redrive/v1/schedules").await;
    assert_eq!(listed["schedules"].as_array().unwrap().len(), 1, "{listed}");
    let by_name = inspect_json(&s[1], "/_redrive/v1/schedules/hourly").await;
    assert_eq!(by_name["id"], id.as_str());
    assert!(
        inspect_json(&s[0], &format!("/_redrive/v1/schedules/{id}/runs")).await["runs"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    // The database's clock past the next hour: one fire, whichever server holds the lease.
    let next = added["nextRunAt"].as_i64().unwrap();
    let created = added["createdAt"].as_i64().unwrap();
    db.store()
        .advance_clock(next - created + 1_000)
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    let run = loop {
        let runs = inspect_json(&s[1], &format!("/_redrive/v1/schedules/{id}/runs")).await;
        if let Some(r) = runs["runs"].as_array().unwrap().first() {
            break r.clone();
        }
        assert!(Instant::now() < deadline, "never fired");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(run["outcome"], "STARTED", "{run}");
    assert_eq!(run["selected"], 3, "{run}");
    let replay = replay_ends(
        &s[0],
        run["replayId"].as_str().unwrap(),
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(replay["status"], "COMPLETED", "{replay}");
    assert_eq!(replay["moved"], 3, "{replay}");
    assert_eq!(replay["scheduleId"], id.as_str(), "{replay}");
    assert_eq!(replay["requestedBy"], "schedule:hourly", "{replay}");
    assert_eq!(s[0].counts(&src).await.0, 3);
    assert_eq!(s[1].counts(&dlq).await.0, 1);
    // Both servers check every second: still one run for that due time.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let runs = inspect_json(&s[0], &format!("/_redrive/v1/schedules/{id}/runs")).await;
    assert_eq!(runs["runs"].as_array().unwrap().len(), 1, "{runs}");

    let resp = s[1]
        .http
        .delete(format!("{}/_redrive/v1/schedules/hourly", s[1].base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let listed = inspect_json(&s[0], "/_redrive/v1/schedules").await;
    assert!(
        listed["schedules"].as_array().unwrap().is_empty(),
        "{listed}"
    );
    let resp = s[0]
        .http
        .get(format!("{}/_redrive/v1/schedules/{id}", s[0].base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
}

/// A webhook receiver: the notification id and event of every request, answered 200.
async fn alert_receiver() -> (
    String,
    tokio::sync::mpsc::UnboundedReceiver<(String, serde_json::Value)>,
) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: http::HeaderMap, body: axum::body::Bytes| {
            let tx = tx.clone();
            async move {
                let id = headers
                    .get("x-redrive-notification-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string();
                let _ = tx.send((
                    id,
                    serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
                ));
                http::StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (base, rx)
}

/// Adds (through `server`) a rule `name`: any `*-dlq` queue with at least one message for a
/// minute, notifying `webhook` if given. Returns the rule as created.
async fn add_dlq_depth_rule(
    server: &TestServer,
    name: &str,
    webhook: Option<&str>,
) -> serde_json::Value {
    let mut body = serde_json::json!({
        "name": name,
        "queue": "*-dlq",
        "condition": {"kind": "depth", "threshold": 1, "minutes": 1},
    });
    if let Some(url) = webhook {
        body["webhooks"] = serde_json::json!([{ "url": url }]);
    }
    let (status, rule) = post_json(server, "/_redrive/v1/alerts/rules", body).await;
    assert_eq!(status, 201, "{rule}");
    rule
}

async fn delete_path(server: &TestServer, path: &str) -> u16 {
    let (status, _, _) = server.raw("DELETE", path, None, &[], Vec::new()).await;
    status
}

#[tokio::test]
async fn alert_rules_are_shared_judged_once_and_notify_once() {
    const M0: u64 = 1_776_716_400_000;
    let (s, _db) = servers_on_clocks(2, M0).await;
    let ((a, ea, ca), (b, eb, cb)) = (&s[0], &s[1]);
    let advance = |ms: u64| {
        ca.advance_ms(ms);
        cb.advance_ms(ms);
    };
    let (hook, mut deliveries) = alert_receiver().await;
    let dlq = a.create("orders-dlq").await;
    let rule = add_dlq_depth_rule(a, "dlq-any", Some(&hook)).await;
    // Every server sees the rule, and names stay unique across servers.
    let (_, rules) = get_json(b, "/_redrive/v1/alerts/rules").await;
    assert_eq!(rules["rules"][0]["id"], rule["id"], "{rules}");
    let (status, dup) = post_json(
        b,
        "/_redrive/v1/alerts/rules",
        serde_json::json!({
            "name": "dlq-any",
            "queue": "x",
            "condition": {"kind": "depth", "threshold": 1, "minutes": 1},
        }),
    )
    .await;
    assert_eq!(status, 400, "{dup}");
    assert!(
        dup["message"].as_str().unwrap().contains("already exists"),
        "{dup}"
    );

    // A dead letter arrives through B; the minute ends and both servers flush and evaluate.
    advance(1_000);
    b.send(&dlq, "boom").await;
    advance(60_000);
    let (fa, fb) = tokio::join!(ea.flush_history(), eb.flush_history());
    assert_eq!((fa.minute_ms, fb.minute_ms), (Some(M0), Some(M0)));
    let (ra, rb) = tokio::join!(ea.evaluate_alerts(), eb.evaluate_alerts());
    assert_eq!(
        ra.transitions.len() + rb.transitions.len(),
        1,
        "one server judges the minute: {ra:?} {rb:?}"
    );
    assert_eq!(ra.notifications + rb.notifications, 1);
    // Judged again by either server: no second transition.
    let (ra, rb) = tokio::join!(ea.evaluate_alerts(), eb.evaluate_alerts());
    assert!(ra.transitions.is_empty() && rb.transitions.is_empty());

    // One ALARM reaches the webhook, from one server, and leaves every outbox.
    let (id, body) = tokio::time::timeout(Duration::from_secs(30), deliveries.recv())
        .await
        .expect("a delivery")
        .expect("receiver open");
    assert_eq!(body["event"], "ALARM", "{body}");
    assert_eq!(body["queue"], "orders-dlq", "{body}");
    let deadline = Instant::now() + Duration::from_secs(30);
    for server in [a, b] {
        loop {
            let (_, outbox) = get_json(server, "/_redrive/v1/alerts/outbox").await;
            if outbox["notifications"].as_array().unwrap().is_empty() {
                break;
            }
            assert!(Instant::now() < deadline, "outbox not drained: {outbox}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert!(
        deliveries.try_recv().is_err(),
        "notification {id} delivered once"
    );
    for server in [a, b] {
        let (_, h) = get_json(server, "/_redrive/v1/alerts/history").await;
        let h = h["history"].as_array().unwrap();
        assert_eq!(h.len(), 1, "{h:?}");
        assert_eq!(h[0]["newState"], "ALARM", "{h:?}");
        let (_, rules) = get_json(server, "/_redrive/v1/alerts/rules").await;
        assert_eq!(rules["rules"][0]["states"][0]["state"], "ALARM", "{rules}");
    }

    // Silences added on both servers at once are all kept (each change re-applied when the
    // other server wrote first), and removed from the other server.
    let add = |i: usize| {
        let server = if i.is_multiple_of(2) { a } else { b };
        post_json(
            server,
            "/_redrive/v1/alerts/silences",
            serde_json::json!({"queue": format!("q{i}-*"), "duration": "1h"}),
        )
    };
    let (s0, s1, s2, s3, s4, s5) = tokio::join!(add(0), add(1), add(2), add(3), add(4), add(5));
    let added = [s0, s1, s2, s3, s4, s5];
    assert!(added.iter().all(|(status, _)| *status == 201), "{added:?}");
    let (_, silences) = get_json(b, "/_redrive/v1/alerts/silences").await;
    assert_eq!(
        silences["silences"].as_array().unwrap().len(),
        6,
        "{silences}"
    );
    for (_, sil) in &added {
        let id = sil["id"].as_str().unwrap();
        assert_eq!(
            delete_path(a, &format!("/_redrive/v1/alerts/silences/{id}")).await,
            204
        );
    }
    let (_, silences) = get_json(b, "/_redrive/v1/alerts/silences").await;
    assert!(
        silences["silences"].as_array().unwrap().is_empty(),
        "{silences}"
    );

    // The rule removed on B is gone on A, with its states.
    assert_eq!(
        delete_path(b, "/_redrive/v1/alerts/rules/dlq-any").await,
        204
    );
    let (_, rules) = get_json(a, "/_redrive/v1/alerts/rules").await;
    assert!(rules["rules"].as_array().unwrap().is_empty(), "{rules}");
    let (status, v) = get_json(a, "/_redrive/v1/alerts/rules/dlq-any").await;
    assert_eq!(v["__type"], "ResourceNotFoundException", "{status} {v}");
}

/// A killed server held both background leases: the alerts lease (30 s) passes first, and
/// the new holder judges the minutes nobody sampled as missing data, not as an empty queue
/// (no false OK); once the `history` lease (150 s) has passed too, the fresh gauges end the
/// alarm the dead server raised with one OK. Lease lifetimes run on the database's clock,
/// moved here.
#[tokio::test]
async fn the_alerts_pass_to_another_server_when_their_holder_dies() {
    const M0: u64 = 1_776_716_400_000;
    let (mut s, db) = servers_on_clocks(2, M0).await;
    let clocks: Vec<Arc<ManualClock>> = s.iter().map(|(_, _, c)| c.clone()).collect();
    let advance = |ms: u64| clocks.iter().for_each(|c| c.advance_ms(ms));
    let (hook, mut deliveries) = alert_receiver().await;
    let dlq = s[0].0.create("orders-dlq").await;
    add_dlq_depth_rule(&s[0].0, "dlq-any", Some(&hook)).await;
    advance(1_000);
    s[1].0.send(&dlq, "boom").await;
    advance(60_000);
    // Server 0 flushes and judges first: it takes both leases.
    assert_eq!(s[0].1.flush_history().await.minute_ms, Some(M0));
    assert_eq!(s[1].1.flush_history().await.minute_ms, Some(M0));
    assert_eq!(s[0].1.evaluate_alerts().await.transitions.len(), 1);
    assert!(s[1].1.evaluate_alerts().await.transitions.is_empty());
    let (_, alarm) = tokio::time::timeout(Duration::from_secs(30), deliveries.recv())
        .await
        .expect("the ALARM delivered")
        .expect("receiver open");
    assert_eq!(alarm["event"], "ALARM", "{alarm}");

    // Server 0 dies without releasing anything; the DLQ is emptied through server 1.
    let (dead, dead_engine, _) = s.remove(0);
    dead.kill();
    drop((dead, dead_engine));
    let (survivor, engine, _) = &s[0];
    let got = survivor.receive(&dlq, 1, Some(60)).await;
    survivor
        .client
        .delete_message()
        .queue_url(&dlq)
        .receipt_handle(got[0].receipt_handle().unwrap())
        .send()
        .await
        .unwrap();

    // Within the alerts lease's lifetime the survivor does not judge.
    advance(60_000);
    engine.flush_history().await;
    assert!(engine.evaluate_alerts().await.transitions.is_empty());

    // Past it, the survivor judges, but the minute's gauges were never sampled (its row holds
    // only the survivor's counts, here an empty receive): no OK.
    db.store().advance_clock(31_000).await.unwrap();
    assert!(survivor.receive(&dlq, 1, Some(60)).await.is_empty());
    advance(60_000);
    engine.flush_history().await;
    let r = engine.evaluate_alerts().await;
    assert!(
        r.transitions
            .iter()
            .all(|t| t.new_state != redrive_engine::alerts::AlarmState::Ok),
        "an unsampled minute is not an empty queue: {r:?}"
    );
    // Past the history lease too: sampled, judged, one OK.
    db.store().advance_clock(120_000).await.unwrap();
    advance(60_000);
    engine.flush_history().await;
    let r = engine.evaluate_alerts().await;
    assert!(
        r.transitions
            .iter()
            .any(|t| t.new_state == redrive_engine::alerts::AlarmState::Ok),
        "{r:?}"
    );
    let (_, ok) = tokio::time::timeout(Duration::from_secs(30), deliveries.recv())
        .await
        .expect("the OK delivered")
        .expect("receiver open");
    assert_eq!(ok["event"], "OK", "{ok}");
    let (_, h) = get_json(survivor, "/_redrive/v1/alerts/history").await;
    let states: Vec<&str> = h["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["newState"].as_str().unwrap())
        .collect();
    assert_eq!(states.first(), Some(&"OK"), "{h}");
    assert_eq!(states.last(), Some(&"ALARM"), "{h}");
    assert_eq!(states.iter().filter(|s| **s == "OK").count(), 1, "{h}");
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert!(deliveries.try_recv().is_err(), "one notification each");
}

/// A server stopping gracefully gives up its background leases: the other server samples
/// the gauges and judges the very next minute (no 30 s or 150 s wait).
#[tokio::test]
async fn a_server_stopping_hands_its_background_leases_over_at_once() {
    const M0: u64 = 1_776_716_400_000;
    let (s, _db) = servers_on_clocks(2, M0).await;
    let ((a, ea, ca), (b, eb, cb)) = (&s[0], &s[1]);
    let advance = |ms: u64| {
        ca.advance_ms(ms);
        cb.advance_ms(ms);
    };
    let dlq = a.create("stock-dlq").await;
    add_dlq_depth_rule(a, "stock-any", None).await;
    advance(1_000);
    a.send(&dlq, "one").await;
    advance(60_000);
    ea.flush_history().await;
    assert_eq!(ea.evaluate_alerts().await.transitions.len(), 1);
    eb.flush_history().await;
    assert!(eb.evaluate_alerts().await.transitions.is_empty());

    ea.release_shared_leases().await;
    a.kill();
    b.send(&dlq, "two").await;
    advance(60_000);
    eb.flush_history().await;
    let r = eb.evaluate_alerts().await;
    assert_eq!(r.evaluated, 1, "B judges at once: {r:?}");
    let since = M0 / 1000;
    let (_, v) = get_json(
        b,
        &format!(
            "/_redrive/v1/queues/stock-dlq/metrics?since={since}&until={}",
            since + 180
        ),
    )
    .await;
    let visible = series(&v, "ApproximateNumberOfMessagesVisible");
    assert_eq!(visible.len(), 2, "{v}");
    assert_eq!(visible[1]["Maximum"], 2.0, "B sampled the gauges: {v}");
}

#[tokio::test]
async fn cloudwatch_alarms_are_shared_and_judged_once() {
    use aws_sdk_cloudwatch::types::{
        ComparisonOperator, Dimension, HistoryItemType, StateValue, Statistic,
    };
    const M0: u64 = 1_776_716_400_000;
    let (s, _db) = servers_on_clocks(2, M0).await;
    let ((a, ea, ca), (b, eb, cb)) = (&s[0], &s[1]);
    let advance = |ms: u64| {
        ca.advance_ms(ms);
        cb.advance_ms(ms);
    };
    let (cwa, cwb) = (
        crate::cloudwatch::cloudwatch_client(&a.base),
        crate::cloudwatch::cloudwatch_client(&b.base),
    );
    let dlq = a.create("orders-dlq").await;
    let put = |cw: &aws_sdk_cloudwatch::Client, threshold: f64| {
        cw.put_metric_alarm()
            .alarm_name("orders-dlq-not-empty")
            .namespace("AWS/SQS")
            .metric_name("ApproximateNumberOfMessagesVisible")
            .dimensions(
                Dimension::builder()
                    .name("QueueName")
                    .value("orders-dlq")
                    .build(),
            )
            .statistic(Statistic::Maximum)
            .period(60)
            .evaluation_periods(1)
            .threshold(threshold)
            .comparison_operator(ComparisonOperator::GreaterThanThreshold)
            .send()
    };
    // Created on both servers at once: one alarm, both changes in its history.
    let (pa, pb) = tokio::join!(put(&cwa, 0.0), put(&cwb, 0.0));
    pa.unwrap();
    pb.unwrap();
    let alarms = cwb.describe_alarms().send().await.unwrap();
    assert_eq!(alarms.metric_alarms().len(), 1);
    let configs = cwa
        .describe_alarm_history()
        .history_item_type(HistoryItemType::ConfigurationUpdate)
        .send()
        .await
        .unwrap();
    assert_eq!(configs.alarm_history_items().len(), 2, "{configs:?}");

    // A dead letter through B; both servers flush the minute and evaluate: one change.
    advance(1_000);
    b.send(&dlq, "boom").await;
    advance(60_000);
    tokio::join!(ea.flush_history(), eb.flush_history());
    let (na, nb) = tokio::join!(ea.evaluate_cw_alarms(), eb.evaluate_cw_alarms());
    assert_eq!(na + nb, 1, "one server judges the alarms: {na} + {nb}");
    let (na, nb) = tokio::join!(ea.evaluate_cw_alarms(), eb.evaluate_cw_alarms());
    assert_eq!(na + nb, 0);
    for cw in [&cwa, &cwb] {
        let alarms = cw.describe_alarms().send().await.unwrap();
        assert_eq!(
            alarms.metric_alarms()[0].state_value(),
            Some(&StateValue::Alarm)
        );
        let states = cw
            .describe_alarm_history()
            .history_item_type(HistoryItemType::StateUpdate)
            .send()
            .await
            .unwrap();
        assert_eq!(states.alarm_history_items().len(), 1, "{states:?}");
    }

    // SetAlarmState on B, seen on A; an update on A keeps that state.
    cwb.set_alarm_state()
        .alarm_name("orders-dlq-not-empty")
        .state_value(StateValue::Ok)
        .state_reason("silenced by hand")
        .send()
        .await
        .unwrap();
    put(&cwa, 5.0).await.unwrap();
    let alarms = cwa.describe_alarms().send().await.unwrap();
    let alarm = &alarms.metric_alarms()[0];
    assert_eq!(alarm.state_value(), Some(&StateValue::Ok));
    assert_eq!(alarm.threshold(), Some(5.0));

    // Deleted on A: gone on B; deleting again is CloudWatch's ResourceNotFound.
    cwa.delete_alarms()
        .alarm_names("orders-dlq-not-empty")
        .send()
        .await
        .unwrap();
    assert!(
        cwb.describe_alarms()
            .send()
            .await
            .unwrap()
            .metric_alarms()
            .is_empty()
    );
    let err = cwb
        .delete_alarms()
        .alarm_names("orders-dlq-not-empty")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        aws_sdk_cloudwatch::error::ProvideErrorMetadata::code(&err),
        Some("ResourceNotFound"),
        "{err:?}"
    );
}

#[tokio::test]
async fn the_console_works_on_any_server_of_a_shared_store() {
    use crate::console::{DLQ, MALL_A, MALL_B, SOURCE, seed_incident};
    use crate::console_actions::{Browser, hidden_fields, preview_selected};
    let s = servers(2).await;
    let (a, b) = (&s[0], &s[1]);
    let (src, dlq) = seed_incident(a).await;
    let (ba, bb) = (Browser::open(a).await, Browser::open(b).await);
    let dead = MALL_A + MALL_B;

    // The queue list and a DLQ's page, read from the database by either server.
    let (status, list) = bb.get("/console").await;
    assert_eq!(status, 200, "{list}");
    let row = &list[list
        .find(&format!("<tr data-queue=\"{DLQ}\">"))
        .expect("the DLQ row")..];
    assert!(
        row.contains(&format!("data-field=\"visible\">{dead}<")),
        "{row}"
    );
    let (status, page) = ba.get(&format!("/console/queues/{DLQ}?group=.mall")).await;
    assert_eq!(status, 200, "{page}");
    assert!(!page.contains("class=\"error\""), "{page}");
    assert!(page.contains("id=\"history\""), "the chart is drawn");
    assert!(page.contains("alpha") && page.contains("beta"), "{page}");
    // A message's page on one server; its one-message replay previewed on the other.
    let marker = format!("href=\"/console/queues/{DLQ}/messages/");
    let id_start = page.find(&marker).expect("a message link") + marker.len();
    let id = &page[id_start..id_start + page[id_start..].find('"').unwrap()];
    let (status, msg) = ba
        .get(&format!("/console/queues/{DLQ}/messages/{id}"))
        .await;
    assert_eq!(status, 200, "{msg}");
    let end = msg.find("\" id=\"replay-one\"").expect("a replay link");
    let start = msg[..end].rfind("href=\"").unwrap() + 6;
    let link = msg[start..end].replace("&amp;", "&");
    let (status, preview) = bb.get(&link).await;
    assert_eq!(status, 200, "{link}: {preview}");
    assert_eq!(preview_selected(&preview), 1);

    // A move task started on B's console runs (on whichever server holds its lease) and is
    // watched on A's; the audit entry B wrote is on A's audit page.
    let (status, confirm) = bb
        .get(&format!("/console/moves/start?source={DLQ}&rate=100"))
        .await;
    assert_eq!(status, 200, "{confirm}");
    assert!(confirm.contains(&format!("({dead} now)")), "{confirm}");
    let (status, location, text) = bb
        .post(
            "/console/moves/start",
            &hidden_fields(&confirm, "confirm-move-form"),
        )
        .await;
    assert_eq!(status, 303, "{text}");
    let location = location.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, page) = ba.get(&location).await;
        if page.contains("status-COMPLETED") {
            break;
        }
        assert!(Instant::now() < deadline, "{page}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(a.counts(&dlq).await.0, 0);
    assert_eq!(b.counts(&src).await.0, (dead + 1) as u64);
    let (_, audit) = ba.get("/console/audit").await;
    assert!(audit.contains("data-action=\"move.start\""), "{audit}");

    // Purge on A's console (the name typed); the other pages answer on both.
    let (status, confirm) = ba.get(&format!("/console/queues/{SOURCE}/purge")).await;
    assert_eq!(status, 200, "{confirm}");
    let mut fields = hidden_fields(&confirm, "confirm-purge-form");
    fields.push(("confirm_name".into(), SOURCE.into()));
    let (status, _, text) = ba
        .post(&format!("/console/queues/{SOURCE}/purge"), &fields)
        .await;
    assert_eq!(status, 303, "{text}");
    assert_eq!(b.counts(&src).await, (0, 0, 0));
    let (_, audit) = bb.get("/console/audit").await;
    assert!(audit.contains("data-action=\"queue.purge\""), "{audit}");
    for path in ["/console/alerts", "/console/schedules", "/console/replays"] {
        for browser in [&ba, &bb] {
            let (status, html) = browser.get(path).await;
            assert_eq!(status, 200, "{path}: {html}");
            assert!(!html.contains("class=\"error\""), "{path}: {html}");
        }
    }
}

#[tokio::test]
async fn a_console_login_holds_on_every_server_until_logout() {
    let keys =
        std::collections::BTreeMap::from([("AKIDALICE".to_string(), "alice-secret".to_string())]);
    let (s, _db) = servers_with_auth(2, redrive_server::Auth::SigV4 { keys }).await;
    let (a, b) = (&s[0], &s[1]);
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let resp = http
        .post(format!("{}/console/login", a.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("origin", &a.base)
        .body("access_key=AKIDALICE&secret=alice-secret")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 303);
    let cookie = resp
        .headers()
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let get = |base: &str| {
        http.get(format!("{base}/console/alerts"))
            .header("cookie", &cookie)
            .send()
    };
    // The session opened on A opens B's console, with the same CSRF token.
    let on_a = get(&a.base).await.unwrap().text().await.unwrap();
    let on_b = get(&b.base).await.unwrap();
    assert_eq!(on_b.status().as_u16(), 200);
    let on_b = on_b.text().await.unwrap();
    assert_eq!(
        crate::console::csrf_token(&on_a),
        crate::console::csrf_token(&on_b)
    );
    // A forged cookie opens nothing.
    let forged = http
        .get(format!("{}/console/alerts", b.base))
        .header("cookie", format!("redrive_console={}", "ab".repeat(32)))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status().as_u16(), 303);
    // Logged out on B: A refuses the cookie too.
    let out = http
        .post(format!("{}/console/logout", b.base))
        .header("cookie", &cookie)
        .header("origin", &b.base)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("csrf={}", crate::console::csrf_token(&on_b)))
        .send()
        .await
        .unwrap();
    assert_eq!(out.status().as_u16(), 303);
    let after = get(&a.base).await.unwrap();
    assert_eq!(after.status().as_u16(), 303, "the session ended everywhere");
    assert_eq!(after.headers().get("location").unwrap(), "/console/login");
}

#[tokio::test]
async fn the_reset_hook_clears_the_shared_store_for_every_server() {
    let (s, _db) = servers_with(2, || ServerConfig {
        enable_reset_api: true,
        ..Default::default()
    })
    .await;
    let (a, b) = (&s[0], &s[1]);
    let url = a.create("reset-me").await;
    a.send(&url, "x").await;
    a.create_with("reset-me-too.fifo", &[("FifoQueue", "true")])
        .await;
    let (status, _, text) = b
        .raw("POST", "/moto-api/reset", None, &[], Vec::new())
        .await;
    assert_eq!(status, 200, "{text}");
    for server in [a, b] {
        let listed = server.client.list_queues().send().await.unwrap();
        assert!(listed.queue_urls().is_empty(), "{listed:?}");
    }
    // A reset frees the names at once (no 60-second wait after a delete).
    let again = a.create("reset-me").await;
    assert_eq!(again, url);
    assert_eq!(b.counts(&again).await, (0, 0, 0));
}
