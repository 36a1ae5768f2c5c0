//! Server-side selective redrive (`/_redrive/v1/replays`) and schedules
//! (`/_redrive/v1/schedules`), black-box over HTTP with the SDK checking what arrived.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_sqs::types::MessageAttributeValue;
use redrive_engine::{Engine, EngineConfig, ManualClock, MemoryStore};
use serde_json::{Value, json};

use crate::common::*;

fn policy(dlq: &str, max: u32) -> String {
    format!(
        r#"{{"deadLetterTargetArn":"{}","maxReceiveCount":{max}}}"#,
        TestServer::arn(dlq)
    )
}

/// The helpers of this file (a trait, not an inherent impl, so the file can be compiled a
/// second time for the shared-store suite).
trait ReplayApi {
    async fn api(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value);
    async fn send_with(
        &self,
        url: &str,
        body: &str,
        attrs: &[(&str, &str)],
        group: Option<&str>,
    ) -> String;
    async fn drain_to_dlq(&self, src: &str);
    async fn take_all(&self, url: &str) -> Vec<aws_sdk_sqs::types::Message>;
    async fn wait_replay(&self, id: &str) -> Value;
}

impl ReplayApi for TestServer {
    async fn api(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let url = format!("{}{path}", self.base);
        let req = match method {
            "POST" => self.http.post(url),
            "DELETE" => self.http.delete(url),
            _ => self.http.get(url),
        };
        let req = match body {
            Some(b) => req
                .header("content-type", "application/json")
                .body(b.to_string()),
            None => req,
        };
        let resp = req.send().await.expect("api request");
        let status = resp.status().as_u16();
        let text = resp.text().await.expect("api body");
        let v = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"))
        };
        (status, v)
    }

    async fn send_with(
        &self,
        url: &str,
        body: &str,
        attrs: &[(&str, &str)],
        group: Option<&str>,
    ) -> String {
        let mut req = self.client.send_message().queue_url(url).message_body(body);
        for (k, v) in attrs {
            req = req.message_attributes(*k, string_attr("String", v));
        }
        if let Some(g) = group {
            req = req
                .message_group_id(g)
                .message_deduplication_id(format!("d-{body}"));
        }
        req.send()
            .await
            .unwrap_or_else(|e| panic!("send: {}", describe(&e)))
            .message_id
            .expect("id")
    }

    /// Receives with visibility 0 until `src` is empty, so everything moves to its DLQ.
    async fn drain_to_dlq(&self, src: &str) {
        for _ in 0..100 {
            if self.counts(src).await == (0, 0, 0) {
                return;
            }
            self.receive(src, 10, Some(0)).await;
        }
        panic!("{src} never drained");
    }

    /// Every message currently in `url` (receives them for 60 s, deleting nothing).
    async fn take_all(&self, url: &str) -> Vec<aws_sdk_sqs::types::Message> {
        let mut out = Vec::new();
        loop {
            let got = self.receive(url, 10, Some(60)).await;
            if got.is_empty() {
                return out;
            }
            out.extend(got);
        }
    }

    async fn wait_replay(&self, id: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (s, t) = self
                .api("GET", &format!("/_redrive/v1/replays/{id}"), None)
                .await;
            assert_eq!(s, 200, "{t}");
            if !["RUNNING", "CANCELLING"].contains(&t["status"].as_str().unwrap_or("")) {
                return t;
            }
            assert!(Instant::now() < deadline, "replay did not end: {t}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// `orders` (maxReceiveCount 1) → `orders-dlq` with the seed's incident: mall m1 bursts
/// `points_updated`, m2 has a few other commands.
async fn incident(ts: &TestServer) -> (String, String, Vec<String>) {
    let dlq = ts.create("orders-dlq").await;
    let src = ts
        .create_with("orders", &[("RedrivePolicy", &policy("orders-dlq", 1))])
        .await;
    let mut ids = Vec::new();
    for i in 0..6 {
        let body = json!({"mall_id": "m1", "command": "points_updated", "n": i}).to_string();
        ids.push(
            ts.send_with(&src, &body, &[("trace", &format!("t{i}"))], None)
                .await,
        );
    }
    for (i, c) in ["order_created", "coupon_used"].iter().enumerate() {
        let body = json!({"mall_id": "m2", "command": c, "n": 10 + i}).to_string();
        ids.push(ts.send_with(&src, &body, &[], None).await);
    }
    ts.drain_to_dlq(&src).await;
    assert_eq!(ts.counts(&dlq).await.0, 8);
    (src, dlq, ids)
}

fn body_of(m: &aws_sdk_sqs::types::Message) -> Value {
    serde_json::from_str(m.body().unwrap()).unwrap()
}

fn attr(m: &aws_sdk_sqs::types::Message, name: &str) -> Option<String> {
    m.message_attributes()
        .and_then(|a| a.get(name))
        .and_then(|v| v.string_value().map(str::to_string))
}

#[tokio::test]
async fn dry_run_reports_and_moves_nothing() {
    let ts = TestServer::start().await;
    let (src, dlq, _) = incident(&ts).await;
    let before: Value = ts
        .api("GET", "/_redrive/v1/queues/orders-dlq/messages", None)
        .await
        .1;
    let (s, v) = ts
        .api(
            "POST",
            "/_redrive/v1/replays",
            Some(json!({"source": "orders-dlq", "selection": {"filter": ".mall_id == \"m1\""}, "sample": 2})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["dryRun"], true);
    assert_eq!(v["scanned"], 8);
    assert_eq!(v["selected"], 6);
    assert_eq!(v["destinations"][0]["name"], "orders");
    assert_eq!(v["destinations"][0]["count"], 6);
    assert_eq!(v["sample"].as_array().unwrap().len(), 2);
    assert!(v["sample"][0]["body"].as_str().unwrap().contains("\"m1\""));
    // Nothing moved, nothing received: the browse view is identical.
    assert_eq!(ts.counts(&dlq).await, (8, 0, 0));
    assert_eq!(ts.counts(&src).await, (0, 0, 0));
    let after: Value = ts
        .api("GET", "/_redrive/v1/queues/orders-dlq/messages", None)
        .await
        .1;
    assert_eq!(before, after);
}

#[tokio::test]
async fn replay_moves_exactly_the_selection_with_provenance() {
    let ts = TestServer::start().await;
    let (src, dlq, ids) = incident(&ts).await;
    let (s, t) = ts
        .api(
            "POST",
            "/_redrive/v1/replays",
            Some(json!({
                "source": "orders-dlq",
                "selection": {"filter": ".mall_id == \"m1\" and .n >= 2"},
                "rate": 1000.0,
                "dryRun": false,
                "requestedBy": "test"
            })),
        )
        .await;
    assert_eq!(s, 201, "{t}");
    assert_eq!(t["selected"], 4);
    assert_eq!(t["requestedBy"], "test");
    let id = t["id"].as_str().unwrap().to_string();
    let done = ts.wait_replay(&id).await;
    assert_eq!(done["status"], "COMPLETED", "{done}");
    assert_eq!(done["moved"], 4);
    assert_eq!(done["remaining"], 0);
    // The DLQ keeps the 4 unselected ones, untouched (receive count still 1 from the source).
    let (_, page) = ts
        .api("GET", "/_redrive/v1/queues/orders-dlq/messages", None)
        .await;
    let left: Vec<&Value> = page["messages"].as_array().unwrap().iter().collect();
    assert_eq!(left.len(), 4);
    for m in &left {
        assert_eq!(m["receiveCount"], 1, "{m}");
    }
    let moved = ts.take_all(&src).await;
    assert_eq!(moved.len(), 4);
    let mut ns: Vec<i64> = moved
        .iter()
        .map(|m| body_of(m)["n"].as_i64().unwrap())
        .collect();
    ns.sort();
    assert_eq!(ns, vec![2, 3, 4, 5]);
    for m in &moved {
        let n = body_of(m)["n"].as_i64().unwrap() as usize;
        // Attributes kept, provenance added, a new message id.
        assert_eq!(attr(m, "trace").as_deref(), Some(format!("t{n}").as_str()));
        let p: Value =
            serde_json::from_str(&attr(m, "Redrive.Replay").expect("provenance")).unwrap();
        assert_eq!(p["replayOf"], ids[n].as_str());
        assert_eq!(p["replayCount"], 1);
        assert_eq!(p["run"], id.as_str());
        assert_eq!(p["from"], TestServer::arn("orders-dlq"));
        assert_ne!(m.message_id().unwrap(), ids[n]);
        assert_eq!(sys_attr(m, "ApproximateReceiveCount").as_deref(), Some("1"));
    }
    // The move log names every move.
    let (_, log) = ts
        .api(
            "GET",
            &format!("/_redrive/v1/replays/{id}/moves?limit=3"),
            None,
        )
        .await;
    assert_eq!(log["moves"].as_array().unwrap().len(), 3);
    assert_eq!(log["next"], 3);
    let (_, rest) = ts
        .api(
            "GET",
            &format!("/_redrive/v1/replays/{id}/moves?after=3"),
            None,
        )
        .await;
    assert_eq!(rest["moves"].as_array().unwrap().len(), 1);
    assert_eq!(rest["next"], Value::Null);
    let froms: Vec<String> = log["moves"]
        .as_array()
        .unwrap()
        .iter()
        .chain(rest["moves"].as_array().unwrap())
        .map(|m| m["from"].as_str().unwrap().to_string())
        .collect();
    let mut expected: Vec<String> = ids[2..6].to_vec();
    expected.sort();
    let mut froms_sorted = froms.clone();
    froms_sorted.sort();
    assert_eq!(froms_sorted, expected);
    assert_eq!(ts.counts(&dlq).await.0, 4);
    // Listing shows it, newest first.
    let (_, list) = ts
        .api("GET", "/_redrive/v1/replays?source=orders-dlq", None)
        .await;
    assert_eq!(list["replays"][0]["id"], id.as_str());
}

#[tokio::test]
async fn transform_rewrites_bodies_and_bad_transforms_move_nothing() {
    let ts = TestServer::start().await;
    let (src, dlq, _) = incident(&ts).await;
    let start = |transform: &str| json!({"source": "orders-dlq", "transform": transform, "dryRun": false, "rate": 1000.0});
    // Not a string.
    let (s, e) = ts
        .api("POST", "/_redrive/v1/replays", Some(start(".v = 2")))
        .await;
    assert_eq!(s, 400, "{e}");
    assert_eq!(e["__type"], "InvalidParameterValue");
    assert!(
        e["message"].as_str().unwrap().contains("not a string"),
        "{e}"
    );
    // Too large for SQS.
    let (s, e) = ts
        .api(
            "POST",
            "/_redrive/v1/replays",
            Some(start("\"x\" * 1100000")),
        )
        .await;
    assert_eq!(s, 400, "{e}");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("maximum message size"),
        "{e}"
    );
    // Invalid jq.
    let (s, e) = ts
        .api("POST", "/_redrive/v1/replays", Some(start(".v |")))
        .await;
    assert_eq!(s, 400, "{e}");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("invalid jq expression"),
        "{e}"
    );
    assert_eq!(ts.counts(&dlq).await, (8, 0, 0), "nothing moved");
    // A good one: v1 → v2.
    let (s, t) = ts
        .api(
            "POST",
            "/_redrive/v1/replays",
            Some(start(". + {v: 2} | tojson")),
        )
        .await;
    assert_eq!(s, 201, "{t}");
    let done = ts.wait_replay(t["id"].as_str().unwrap()).await;
    assert_eq!(done["moved"], 8);
    for m in ts.take_all(&src).await {
        assert_eq!(body_of(&m)["v"], 2);
        assert!(body_of(&m)["mall_id"].is_string());
    }
}

#[tokio::test]
async fn bad_requests_are_refused_before_anything_moves() {
    let ts = TestServer::start().await;
    let (_src, dlq, _) = incident(&ts).await;
    ts.create("plain").await;
    ts.create_with("f.fifo", &[("FifoQueue", "true")]).await;
    let cases = [
        (
            json!({"source": "nosuch", "dryRun": false}),
            400,
            "QueueDoesNotExist",
        ),
        (json!({"dryRun": false}), 400, "MissingParameter"),
        (
            json!({"source": "orders-dlq", "destination": "nosuch", "dryRun": false}),
            400,
            "QueueDoesNotExist",
        ),
        (
            json!({"source": "orders-dlq", "destination": "f.fifo", "dryRun": false}),
            400,
            "InvalidParameterValue",
        ),
        (
            json!({"source": "orders-dlq", "rate": 0.0, "dryRun": false}),
            400,
            "InvalidParameterValue",
        ),
        (
            json!({"source": "orders-dlq", "rate": 1e9, "dryRun": false}),
            400,
            "InvalidParameterValue",
        ),
        (
            json!({"source": "orders-dlq", "ratePer": {"key": ".mall_id", "rate": -1.0}, "dryRun": false}),
            400,
            "InvalidParameterValue",
        ),
        (
            json!({"source": "orders-dlq", "ratePer": {"key": ".mall_id |", "rate": 1.0}, "dryRun": false}),
            400,
            "InvalidParameterValue",
        ),
        (
            json!({"source": "orders-dlq", "breaker": {"maxReturnShare": 2.0, "windowSecs": 10, "minReplayed": 1}, "dryRun": false}),
            400,
            "InvalidParameterValue",
        ),
        (
            json!({"source": "orders-dlq", "selection": {"sentAfter": 10, "sentBefore": 5}, "dryRun": false}),
            400,
            "InvalidParameterValue",
        ),
        (
            json!({"source": "orders-dlq", "selection": {"filter": "nosuchfn(1)"}, "dryRun": false}),
            400,
            "InvalidParameterValue",
        ),
        (
            json!({"source": "orders-dlq", "rate": "fast"}),
            400,
            "InvalidParameterValue",
        ),
    ];
    for (body, status, code) in cases {
        let (s, e) = ts
            .api("POST", "/_redrive/v1/replays", Some(body.clone()))
            .await;
        assert_eq!(s, status, "{body} → {e}");
        assert_eq!(e["__type"], code, "{body} → {e}");
        assert!(!e["message"].as_str().unwrap_or("").is_empty());
    }
    // Malformed JSON.
    let resp = ts
        .http
        .post(format!("{}/_redrive/v1/replays", ts.base))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    // Unknown replay.
    let (s, e) = ts.api("GET", "/_redrive/v1/replays/nope", None).await;
    assert_eq!(
        (s, e["__type"].as_str()),
        (404, Some("ResourceNotFoundException"))
    );
    let (s, _) = ts
        .api("POST", "/_redrive/v1/replays/nope/cancel", None)
        .await;
    assert_eq!(s, 404);
    // A message without a source (sent straight to the DLQ) needs a destination.
    ts.send(&dlq, "direct").await;
    let (s, e) = ts
        .api(
            "POST",
            "/_redrive/v1/replays",
            Some(json!({"source": "orders-dlq", "dryRun": false})),
        )
        .await;
    assert_eq!(s, 400, "{e}");
    assert!(
        e["message"].as_str().unwrap().contains("no source queue"),
        "{e}"
    );
    assert_eq!(ts.counts(&dlq).await.0, 9, "nothing moved");
    // With --to it is fine.
    let (s, t) = ts
        .api(
            "POST",
            "/_redrive/v1/replays",
            Some(json!({"source": "orders-dlq", "destination": "plain", "dryRun": false, "rate": 1000.0})),
        )
        .await;
    assert_eq!(s, 201, "{t}");
    assert_eq!(ts.wait_replay(t["id"].as_str().unwrap()).await["moved"], 9);
}

#[tokio::test]
async fn ten_attributes_leave_no_room_for_provenance() {
    let ts = TestServer::start().await;
    let dlq = ts.create("d").await;
    let target = ts.create("t").await;
    let attrs: Vec<(String, String)> = (0..10)
        .map(|i| (format!("a{i}"), "v".to_string()))
        .collect();
    let refs: Vec<(&str, &str)> = attrs
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    ts.send_with(&dlq, "full", &refs, None).await;
    let (s, e) = ts
        .api(
            "POST",
            "/_redrive/v1/replays",
            Some(json!({"source": "d", "destination": "t", "dryRun": false})),
        )
        .await;
    assert_eq!(s, 400, "{e}");
    assert!(
        e["message"].as_str().unwrap().contains("limit of 10"),
        "{e}"
    );
    assert_eq!(ts.counts(&dlq).await.0, 1);
    // Without provenance it goes, with all 10 attributes.
    let (s, t) = ts
        .api(
            "POST",
            "/_redrive/v1/replays",
            Some(json!({"source": "d", "destination": "t", "dryRun": false, "provenance": false})),
        )
        .await;
    assert_eq!(s, 201, "{t}");
    ts.wait_replay(t["id"].as_str().unwrap()).await;
    let got = ts.take_all(&target).await;
    assert_eq!(got[0].message_attributes().unwrap().len(), 10);
}

#[tokio::test]
async fn fifo_replay_keeps_groups_with_a_fresh_dedup_id() {
    let ts = TestServer::start().await;
    let fifo = [("FifoQueue", "true")];
    ts.create_with("q-dlq.fifo", &fifo).await;
    let src = ts
        .create_with(
            "q.fifo",
            &[
                ("FifoQueue", "true"),
                ("RedrivePolicy", &policy("q-dlq.fifo", 1)),
            ],
        )
        .await;
    for (i, g) in ["g1", "g1", "g2"].iter().enumerate() {
        ts.send_with(&src, &format!("m{i}"), &[], Some(g)).await;
    }
    // Dead-letter all three (one group at a time with FIFO locking).
    ts.drain_to_dlq(&src).await;
    let (s, t) = ts
        .api(
            "POST",
            "/_redrive/v1/replays",
            Some(json!({"source": "q-dlq.fifo", "dryRun": false, "rate": 1000.0})),
        )
        .await;
    assert_eq!(s, 201, "{t}");
    assert_eq!(ts.wait_replay(t["id"].as_str().unwrap()).await["moved"], 3);
    // Within the 5-minute window of the original dedup ids, all three arrive again.
    let got = ts.take_all(&src).await;
    let mut seen: Vec<(String, String)> = got
        .iter()
        .map(|m| {
            (
                sys_attr(m, "MessageGroupId").unwrap(),
                m.body().unwrap().to_string(),
            )
        })
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        vec![
            ("g1".into(), "m0".into()),
            ("g1".into(), "m1".into()),
            ("g2".into(), "m2".into())
        ]
    );
    for m in &got {
        assert_ne!(
            sys_attr(m, "MessageDeduplicationId").as_deref(),
            Some(format!("d-{}", m.body().unwrap()).as_str())
        );
    }
}

#[tokio::test]
async fn per_key_rate_spaces_each_key_without_holding_back_others() {
    let ts = TestServer::start().await;
    let (_src, _dlq, _) = incident(&ts).await; // m1 × 6, m2 × 2
    let (s, t) = ts
        .api(
            "POST",
            "/_redrive/v1/replays",
            Some(json!({"source": "orders-dlq", "ratePer": {"key": ".mall_id", "rate": 5.0}, "rate": 1000.0, "dryRun": false})),
        )
        .await;
    assert_eq!(s, 201, "{t}");
    let id = t["id"].as_str().unwrap().to_string();
    let done = ts.wait_replay(&id).await;
    assert_eq!(done["moved"], 8);
    let (_, log) = ts
        .api("GET", &format!("/_redrive/v1/replays/{id}/moves"), None)
        .await;
    let moves = log["moves"].as_array().unwrap().clone();
    // Map each move to its mall through the destination's copies.
    let (_, page) = ts
        .api("GET", "/_redrive/v1/queues/orders/messages", None)
        .await;
    let mall_of: HashMap<String, String> = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let b: Value = serde_json::from_str(m["body"].as_str().unwrap()).unwrap();
            (
                m["messageId"].as_str().unwrap().to_string(),
                b["mall_id"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let times = |mall: &str| -> Vec<u64> {
        moves
            .iter()
            .filter(|m| mall_of[m["to"].as_str().unwrap()] == mall)
            .map(|m| m["at"].as_u64().unwrap())
            .collect()
    };
    let m1 = times("m1");
    let m2 = times("m2");
    assert_eq!((m1.len(), m2.len()), (6, 2));
    // 5/s per mall: consecutive moves of one mall are ≥ 200 ms apart (tolerance 30 ms).
    for w in m1.windows(2) {
        assert!(w[1] - w[0] >= 170, "m1 moves too close: {m1:?}");
    }
    assert!(m2[1] - m2[0] >= 170, "{m2:?}");
    // m2 is not queued behind m1's six: both of its moves happen before m1's last.
    assert!(m2[1] < m1[5], "m2 {m2:?} waited for m1 {m1:?}");
}

#[tokio::test]
async fn breaker_trips_when_replayed_messages_keep_failing() {
    let ts = TestServer::start().await;
    let dlq = ts.create("b-dlq").await;
    let src = ts
        .create_with("b", &[("RedrivePolicy", &policy("b-dlq", 1))])
        .await;
    for i in 0..40 {
        ts.send(&src, &format!("{{\"n\":{i}}}")).await;
    }
    ts.drain_to_dlq(&src).await;
    assert_eq!(ts.counts(&dlq).await.0, 40);
    // A consumer that keeps failing: receives with visibility 0 and never deletes.
    let client = ts.client.clone();
    let src2 = src.clone();
    let consumer = tokio::spawn(async move {
        loop {
            let _ = client
                .receive_message()
                .queue_url(&src2)
                .max_number_of_messages(10)
                .visibility_timeout(0)
                .wait_time_seconds(1)
                .send()
                .await;
        }
    });
    let (s, t) = ts
        .api(
            "POST",
            "/_redrive/v1/replays",
            Some(json!({"source": "b-dlq", "rate": 20.0, "dryRun": false,
                        "breaker": {"maxReturnShare": 0.5, "windowSecs": 60, "minReplayed": 5}})),
        )
        .await;
    assert_eq!(s, 201, "{t}");
    let done = ts.wait_replay(t["id"].as_str().unwrap()).await;
    consumer.abort();
    assert_eq!(done["status"], "TRIPPED", "{done}");
    assert!(
        done["failureReason"]
            .as_str()
            .unwrap()
            .contains("circuit breaker"),
        "{done}"
    );
    let moved = done["moved"].as_u64().unwrap();
    assert!((5..40).contains(&moved), "stopped early: {done}");
    assert!(done["returned"].as_u64().unwrap() >= 3, "{done}");
    assert!(done["remaining"].as_u64().unwrap() > 0, "{done}");
}

#[tokio::test]
async fn one_replay_per_dlq_and_cancel() {
    let ts = TestServer::start().await;
    let (_src, dlq, _) = incident(&ts).await;
    let body = json!({"source": "orders-dlq", "rate": 2.0, "dryRun": false});
    let (s, t) = ts
        .api("POST", "/_redrive/v1/replays", Some(body.clone()))
        .await;
    assert_eq!(s, 201, "{t}");
    let id = t["id"].as_str().unwrap();
    let (s, e) = ts.api("POST", "/_redrive/v1/replays", Some(body)).await;
    assert_eq!(s, 409, "{e}");
    assert_eq!(e["__type"], "ReplayRunning");
    assert_eq!(e["replayId"], id);
    let (s, c) = ts
        .api("POST", &format!("/_redrive/v1/replays/{id}/cancel"), None)
        .await;
    assert_eq!(s, 200, "{c}");
    let done = ts.wait_replay(id).await;
    assert_eq!(done["status"], "CANCELLED");
    let moved = done["moved"].as_u64().unwrap();
    assert!(moved < 8);
    // Nothing lost: moved + still in the DLQ = 8.
    assert_eq!(ts.counts(&dlq).await.0 + moved, 8);
    let (s, _) = ts
        .api("POST", &format!("/_redrive/v1/replays/{id}/cancel"), None)
        .await;
    assert_eq!(s, 400, "only a running replay can be cancelled");
}

/// A server on a manual clock, for the scheduler.
async fn server_at(clock: Arc<ManualClock>) -> TestServer {
    let engine = Arc::new(Engine::open(
        EngineConfig::default(),
        Arc::new(MemoryStore::new()),
        clock,
    ));
    TestServer::with_engine(engine).await
}

#[tokio::test]
async fn scheduled_redrive_fires_at_its_local_time_with_yesterdays_window() {
    // 2026-11-22 10:00 KST.
    let day1 = 1_763_773_200_000u64;
    let clock = Arc::new(ManualClock::new(day1));
    let ts = server_at(clock.clone()).await;
    let dlq = ts.create("s-dlq").await;
    let src = ts
        .create_with("s", &[("RedrivePolicy", &policy("s-dlq", 1))])
        .await;
    for i in 0..3 {
        ts.send(&src, &format!("{{\"n\":{i}}}")).await;
    }
    ts.drain_to_dlq(&src).await; // dead-lettered on day 1 (KST)
    // Bad schedules are refused.
    for (bad, what) in [
        (
            json!({"name": "x", "cron": "0 6 * *", "source": "s-dlq"}),
            "cron",
        ),
        (
            json!({"name": "x", "cron": "0 6 * * *", "timezone": "Mars/Base", "source": "s-dlq"}),
            "time zone",
        ),
        (
            json!({"name": "x", "cron": "0 6 * * *", "source": "nosuch"}),
            "does not exist",
        ),
        (
            json!({"name": "x", "cron": "0 6 * * *", "source": "s-dlq", "window": {"field": "deadLettered", "range": "lastweek"}}),
            "window",
        ),
    ] {
        let (s, e) = ts.api("POST", "/_redrive/v1/schedules", Some(bad)).await;
        assert_eq!(s, 400, "{e}");
        assert!(
            e["message"].as_str().unwrap().to_lowercase().contains(what),
            "{what}: {e}"
        );
    }
    let (s, sched) = ts
        .api(
            "POST",
            "/_redrive/v1/schedules",
            Some(json!({"name": "morning", "cron": "0 6 * * *", "timezone": "Asia/Seoul",
                        "source": "s-dlq", "window": {"field": "deadLettered", "range": "yesterday"},
                        "rate": 1000.0, "maxCount": 2})),
        )
        .await;
    assert_eq!(s, 201, "{sched}");
    // Next 06:00 KST is 2026-11-23 06:00 KST = 2026-11-22 21:00 UTC.
    assert_eq!(sched["nextRunAt"], 1_763_845_200_000u64);
    let (s, e) = ts
        .api(
            "POST",
            "/_redrive/v1/schedules",
            Some(json!({"name": "morning", "cron": "0 6 * * *", "source": "s-dlq"})),
        )
        .await;
    assert_eq!(s, 400, "duplicate name: {e}");
    // Before the due time nothing happens.
    clock.advance_ms(1_763_845_200_000 - day1 - 1000);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(ts.counts(&dlq).await.0, 3);
    // At 06:00 it fires: yesterday's (KST) dead letters, at most 2.
    clock.advance_ms(2000);
    let deadline = Instant::now() + Duration::from_secs(10);
    let runs = loop {
        let (_, r) = ts
            .api("GET", "/_redrive/v1/schedules/morning/runs", None)
            .await;
        if !r["runs"].as_array().unwrap().is_empty() {
            break r;
        }
        assert!(Instant::now() < deadline, "schedule never fired");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let run = &runs["runs"][0];
    assert_eq!(run["outcome"], "STARTED", "{runs}");
    assert_eq!(run["selected"], 2);
    let done = ts.wait_replay(run["replayId"].as_str().unwrap()).await;
    assert_eq!(done["moved"], 2);
    assert_eq!(done["requestedBy"], "schedule:morning");
    assert_eq!(ts.counts(&dlq).await.0, 1);
    // It does not fire again for the same due time; the next is a day later.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (_, r) = ts
        .api("GET", "/_redrive/v1/schedules/morning/runs", None)
        .await;
    assert_eq!(r["runs"].as_array().unwrap().len(), 1);
    let (_, s1) = ts.api("GET", "/_redrive/v1/schedules/morning", None).await;
    assert_eq!(s1["nextRunAt"], 1_763_845_200_000u64 + 86_400_000);
    // The next day's window (the 23rd, KST) has none of these: nothing selected.
    clock.advance_ms(86_400_000);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, r) = ts
            .api("GET", "/_redrive/v1/schedules/morning/runs", None)
            .await;
        if r["runs"].as_array().unwrap().len() == 2 {
            assert_eq!(r["runs"][0]["outcome"], "NOTHING_SELECTED", "{r}");
            break;
        }
        assert!(Instant::now() < deadline, "second fire missing");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Listing and removal.
    let (_, l) = ts.api("GET", "/_redrive/v1/schedules", None).await;
    assert_eq!(l["schedules"][0]["name"], "morning");
    let (s, _) = ts
        .api("DELETE", "/_redrive/v1/schedules/morning", None)
        .await;
    assert_eq!(s, 204);
    let (s, _) = ts.api("GET", "/_redrive/v1/schedules/morning", None).await;
    assert_eq!(s, 404);
}

#[tokio::test]
async fn unselected_dead_letters_keep_their_receive_counts_and_attributes() {
    let ts = TestServer::start().await;
    let dlq = ts.create("k-dlq").await;
    let src = ts
        .create_with("k", &[("RedrivePolicy", &policy("k-dlq", 3))])
        .await;
    ts.client
        .send_message()
        .queue_url(&src)
        .message_body("{\"keep\":true}")
        .message_attributes(
            "a",
            MessageAttributeValue::builder()
                .data_type("Number")
                .string_value("7")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    ts.send(&src, "{\"keep\":false}").await;
    ts.drain_to_dlq(&src).await;
    let before = ts
        .api("GET", "/_redrive/v1/queues/k-dlq/messages", None)
        .await
        .1;
    let (s, t) = ts
        .api("POST", "/_redrive/v1/replays", Some(json!({"source": "k-dlq", "selection": {"filter": ".keep == false"}, "dryRun": false})))
        .await;
    assert_eq!(s, 201, "{t}");
    ts.wait_replay(t["id"].as_str().unwrap()).await;
    let after = ts
        .api("GET", "/_redrive/v1/queues/k-dlq/messages", None)
        .await
        .1;
    let kept: Vec<&Value> = before["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["body"].as_str().unwrap().contains("true"))
        .collect();
    assert_eq!(
        after["messages"].as_array().unwrap(),
        &kept.into_iter().cloned().collect::<Vec<_>>()
    );
    assert_eq!(ts.counts(&dlq).await.0, 1);
}
