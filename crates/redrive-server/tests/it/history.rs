//! The minute-history API (`GET /_redrive/v1/queues/{name}/metrics`) over HTTP: a burst
//! scripted on a manual clock through the SDK, read back per minute and aggregated over
//! 2-minute periods; bad input gets AWS-shaped 400s.

use std::sync::Arc;

use redrive_engine::{Engine, EngineConfig, ManualClock, MemoryStore};
use serde_json::Value;

use crate::common::*;

const MIN: u64 = 60_000;
/// 2026-04-20T20:20:00Z, a minute boundary (the seed's burst window).
const M0: u64 = 1_776_716_400_000;

async fn start() -> (TestServer, Arc<Engine>, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(M0));
    let engine = Arc::new(Engine::open(
        EngineConfig::default(),
        Arc::new(MemoryStore::new()),
        clock.clone(),
    ));
    (TestServer::with_engine(engine.clone()).await, engine, clock)
}

async fn get(ts: &TestServer, path: &str) -> (u16, Value) {
    let (status, headers, body) = ts.raw("GET", path, None, &[], Vec::new()).await;
    assert_eq!(
        header(&headers, "content-type").as_deref(),
        Some("application/json"),
        "{body}"
    );
    let v = serde_json::from_str(&body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"));
    (status, v)
}

fn series<'a>(v: &'a Value, name: &str) -> &'a Vec<Value> {
    v["metrics"]
        .as_array()
        .expect("metrics")
        .iter()
        .find(|m| m["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in {v}"))["points"]
        .as_array()
        .expect("points")
}

#[track_caller]
fn assert_400(status: u16, v: &Value, shape: &str, mentions: &str) {
    assert_eq!(status, 400, "{v}");
    assert_eq!(v["__type"], shape, "{v}");
    let msg = v["message"].as_str().unwrap_or_default();
    assert!(msg.contains(mentions), "{msg}");
}

#[tokio::test]
async fn minute_history_is_served_per_minute_and_per_period() {
    let (ts, engine, clock) = start().await;
    let url = ts.create("hist").await;
    // Minute 0: 3 sent.
    clock.advance_ms(1_000);
    for i in 0..3 {
        ts.send(&url, &format!("m0-{i}")).await;
    }
    clock.advance_ms(59_000);
    engine.flush_history().await;
    // Minute 1: 2 sent, 4 received, 1 deleted, then an empty receive elsewhere.
    clock.advance_ms(2_000);
    ts.send(&url, "m1-0").await;
    ts.send(&url, "m1-1").await;
    let got = ts.receive(&url, 4, Some(600)).await;
    assert_eq!(got.len(), 4);
    ts.client
        .delete_message()
        .queue_url(&url)
        .receipt_handle(got[0].receipt_handle().unwrap())
        .send()
        .await
        .unwrap();
    assert!(ts.receive(&url, 1, None).await.len() == 1);
    clock.advance_ms(58_000);
    engine.flush_history().await;
    // Minute 2 (not ended yet): nothing is served for it.
    clock.advance_ms(10_000);

    // Per minute, times in epoch seconds.
    let s = M0 / 1000;
    let (status, v) = get(
        &ts,
        &format!(
            "/_redrive/v1/queues/hist/metrics?since={s}&until={}",
            s + 180
        ),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["period"], 60);
    assert_eq!(v["since"], M0);
    let sent = series(&v, "NumberOfMessagesSent");
    assert_eq!(sent.len(), 2, "{v}");
    assert_eq!(sent[0]["timestamp"], M0);
    assert_eq!(sent[0]["Sum"], 3.0);
    assert_eq!(sent[1]["timestamp"], M0 + MIN);
    assert_eq!(sent[1]["Sum"], 2.0);
    assert_eq!(sent[1]["SampleCount"], 1.0);
    let recv = series(&v, "NumberOfMessagesReceived");
    assert_eq!(recv[1]["Sum"], 5.0);
    assert_eq!(series(&v, "NumberOfMessagesDeleted")[1]["Sum"], 1.0);
    let nv = series(&v, "ApproximateNumberOfMessagesNotVisible");
    assert_eq!(nv[0]["Maximum"], 0.0);
    assert_eq!(
        nv[1]["Maximum"], 3.0,
        "4 received for 600 s, 1 deleted; 1 for 30 s"
    );
    let vis = series(&v, "ApproximateNumberOfMessagesVisible");
    assert_eq!(vis[0]["Sum"], 3.0);
    // The 30 s receive of minute 1 is visible again at its end.
    assert_eq!(vis[1]["Sum"], 1.0);
    assert_eq!(
        series(&v, "ApproximateAgeOfOldestMessage")[1]["Maximum"],
        119.0
    );

    // period=120 sums the two minutes; ISO 8601 times.
    let (status, v) = get(
        &ts,
        "/_redrive/v1/queues/hist/metrics?since=2026-04-20T20:20:00Z&until=2026-04-20T20:24:00Z&period=120",
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let sent = series(&v, "NumberOfMessagesSent");
    assert_eq!(sent.len(), 1, "{v}");
    assert_eq!(sent[0]["timestamp"], M0);
    assert_eq!(sent[0]["Sum"], 5.0);
    assert_eq!(sent[0]["SampleCount"], 2.0);
    assert_eq!(sent[0]["Average"], 2.5);
    assert_eq!(sent[0]["Minimum"], 2.0);
    assert_eq!(sent[0]["Maximum"], 3.0);
    let size = series(&v, "SentMessageSize");
    assert_eq!(size[0]["Sum"], 5.0 * 4.0);
    assert_eq!(size[0]["SampleCount"], 5.0);
    assert_eq!(size[0]["Average"], 4.0);
    assert_eq!(size[0]["Maximum"], Value::Null);
    let vis = series(&v, "ApproximateNumberOfMessagesVisible");
    assert_eq!(vis[0]["Maximum"], 3.0);
    assert_eq!(vis[0]["Minimum"], 1.0);

    // Defaults: the last 3 hours, period 60.
    let (status, v) = get(&ts, "/_redrive/v1/queues/hist/metrics").await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["until"], M0 + 2 * MIN + 10_000);
    assert_eq!(v["since"], M0 + 2 * MIN + 10_000 - 3 * 3_600_000);
    assert_eq!(series(&v, "NumberOfMessagesSent").len(), 2);
    // Every metric is listed, also without points.
    assert_eq!(v["metrics"].as_array().unwrap().len(), 15);

    // A range with nothing stored.
    let (status, v) = get(
        &ts,
        &format!("/_redrive/v1/queues/hist/metrics?since={}", s + 120),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert!(series(&v, "NumberOfMessagesSent").is_empty());
}

#[tokio::test]
async fn bad_history_requests_get_aws_shaped_400s() {
    let (ts, _engine, _clock) = start().await;
    ts.create("h").await;
    let (status, v) = get(&ts, "/_redrive/v1/queues/h/metrics?period=30").await;
    assert_400(status, &v, "InvalidParameterValue", "period");
    let (status, v) = get(&ts, "/_redrive/v1/queues/h/metrics?period=90").await;
    assert_400(
        status,
        &v,
        "InvalidParameterValue",
        "Must be a multiple of 60",
    );
    let (status, v) = get(&ts, "/_redrive/v1/queues/h/metrics?period=1m").await;
    assert_400(status, &v, "InvalidParameterValue", "period");
    let (status, v) = get(&ts, "/_redrive/v1/queues/nope/metrics").await;
    assert_400(status, &v, "QueueDoesNotExist", "does not exist");
    let (status, v) = get(
        &ts,
        "/_redrive/v1/queues/h/metrics?since=2026-04-20T21:00:00Z&until=2026-04-20T20:00:00Z",
    )
    .await;
    assert_400(status, &v, "InvalidParameterValue", "must be less than");
    let (status, v) = get(&ts, "/_redrive/v1/queues/h/metrics?since=yesterday-ish").await;
    assert_400(status, &v, "InvalidParameterValue", "since");
    // Out-of-range numbers are a 400 or an empty answer, never a 500.
    let (status, v) = get(
        &ts,
        "/_redrive/v1/queues/h/metrics?period=18446744073709551600",
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let (status, v) = get(
        &ts,
        "/_redrive/v1/queues/h/metrics?period=18446744073709551616",
    )
    .await;
    assert_400(status, &v, "InvalidParameterValue", "period");
    let (status, v) = get(
        &ts,
        "/_redrive/v1/queues/h/metrics?since=1776716400&until=99999999999999999",
    )
    .await;
    assert_eq!(status, 200, "{v}");
}
