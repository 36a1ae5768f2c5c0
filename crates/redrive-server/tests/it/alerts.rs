//! Alerts over HTTP with a real webhook receiver (an axum listener in the test): exactly one
//! ALARM and one OK per episode on both a generic-JSON and a Slack webhook, retries after the
//! receiver answers 500, nothing after a silence (while the transition is still recorded), and
//! AWS-shaped errors for bad input that change nothing, and a restart on a redb file that keeps
//! the state and the outbox (a failed delivery is retried by the new process, once) and notifies
//! nothing twice. Minutes are driven by a manual clock.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path as AxPath, State as AxState};
use axum::routing::post;
use http::{HeaderMap, StatusCode};
use redrive_engine::{Engine, EngineConfig, ManualClock, MemoryStore};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::common::*;

const MIN: u64 = 60_000;
const M0: u64 = 1_776_716_400_000;

/// One request the receiver got.
#[derive(Debug)]
struct Delivery {
    hook: String,
    answered: u16,
    notification_id: String,
    body: Value,
}

struct Receiver {
    base: String,
    rx: mpsc::UnboundedReceiver<Delivery>,
}

#[derive(Clone)]
struct ReceiverState {
    tx: mpsc::UnboundedSender<Delivery>,
    /// Requests to `/json` answered 500 before it starts answering 200.
    json_failures_left: Arc<AtomicUsize>,
}

async fn hook(
    AxState(st): AxState<ReceiverState>,
    AxPath(name): AxPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let fail = name == "json"
        && st
            .json_failures_left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
    let status = if fail {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    };
    let _ = st.tx.send(Delivery {
        hook: name,
        answered: status.as_u16(),
        notification_id: header(&headers, "x-redrive-notification-id").unwrap_or_default(),
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
    });
    status
}

async fn receiver(json_failures: usize) -> Receiver {
    let (tx, rx) = mpsc::unbounded_channel();
    let app = axum::Router::new()
        .route("/hooks/{name}", post(hook))
        .with_state(ReceiverState {
            tx,
            json_failures_left: Arc::new(AtomicUsize::new(json_failures)),
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    Receiver { base, rx }
}

impl Receiver {
    /// The next delivery (the bound only guards against a hang).
    async fn next(&mut self) -> Delivery {
        tokio::time::timeout(Duration::from_secs(60), self.rx.recv())
            .await
            .expect("a webhook delivery")
            .expect("receiver open")
    }
}

async fn start() -> (TestServer, Arc<Engine>, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(M0));
    let engine = Arc::new(Engine::open(
        EngineConfig::default(),
        Arc::new(MemoryStore::new()),
        clock.clone(),
    ));
    (TestServer::with_engine(engine.clone()).await, engine, clock)
}

async fn call(ts: &TestServer, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let (status, _, text) = ts
        .raw(
            method,
            path,
            body.as_ref().map(|_| "application/json"),
            &[],
            body.map(|b| b.to_string().into_bytes()).unwrap_or_default(),
        )
        .await;
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Next minute (+1 s): the history write and the evaluation the background task would do.
async fn tick(engine: &Engine, clock: &ManualClock) -> redrive_engine::alerts::EvaluationReport {
    let now = engine.clock_now_ms();
    clock.advance_ms(MIN - now % MIN + 1_000);
    engine.flush_history().await;
    engine.evaluate_alerts().await
}

/// Waits until notification `id` has `attempts` failures recorded, then moves the clock to
/// its next attempt; returns the delay.
async fn advance_to_retry(engine: &Engine, clock: &ManualClock, id: &str, attempts: u32) -> u64 {
    for _ in 0..600 {
        let pending = engine.pending_alert_notifications();
        if let Some(n) = pending
            .iter()
            .find(|n| n.id == id && n.attempts >= attempts)
        {
            let delay = n.next_attempt_ms.saturating_sub(engine.clock_now_ms());
            clock.advance_ms(delay);
            return delay;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("failure {attempts} of {id} never recorded");
}

/// Waits until the outbox is empty (every queued notification answered 2xx).
async fn outbox_drained(engine: &Engine) {
    for _ in 0..600 {
        if engine.pending_alert_notifications().is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "outbox not drained: {:?}",
        engine.pending_alert_notifications()
    );
}

#[tokio::test]
async fn one_alarm_and_one_ok_per_episode_with_retries_and_silences() {
    let mut rcv = receiver(2).await;
    let (ts, engine, clock) = start().await;
    let dlq = ts.create("orders-dlq").await;
    let (status, rule) = call(
        &ts,
        "POST",
        "/_redrive/v1/alerts/rules",
        Some(json!({
            "name": "dlq-any",
            "queue": "*-dlq",
            "condition": {"kind": "depth", "threshold": 1, "minutes": 1},
            "severity": "P1",
            "webhooks": [
                {"url": format!("{}/hooks/json", rcv.base)},
                {"url": format!("{}/hooks/slack", rcv.base), "format": "slack"},
            ],
        })),
    )
    .await;
    assert_eq!(status, 201, "{rule}");
    assert_eq!(rule["condition"]["kind"], "depth");

    // Episode 1 starts.
    ts.send(&dlq, "boom").await;
    let r = tick(&engine, &clock).await;
    assert_eq!(r.transitions.len(), 1);
    assert_eq!(r.notifications, 2);
    let mut json_tries = Vec::new();
    let mut slack = Vec::new();
    let mut delays = Vec::new();
    // The JSON hook answers 500 twice: retried after 1 s, then 2 s (engine clock).
    while json_tries.len() < 3 || slack.is_empty() {
        let d = rcv.next().await;
        if d.hook == "json" {
            json_tries.push(d);
            if json_tries.len() < 3 {
                // Once the failure is recorded, move the clock to the retry (1 s, then 2 s).
                let id = json_tries[0].notification_id.clone();
                let tries = json_tries.len() as u32;
                delays.push(advance_to_retry(&engine, &clock, &id, tries).await);
            }
        } else {
            slack.push(d);
        }
    }
    outbox_drained(&engine).await;
    let answers: Vec<u16> = json_tries.iter().map(|d| d.answered).collect();
    assert_eq!(answers, vec![500, 500, 200]);
    assert_eq!(delays, vec![1_000, 2_000], "exponential backoff");
    assert!(
        json_tries
            .iter()
            .all(|d| d.notification_id == json_tries[0].notification_id),
        "the same notification, retried"
    );
    let alarm = &json_tries[2].body;
    assert_eq!(alarm["event"], "ALARM");
    assert_eq!(alarm["status"], "firing");
    assert_eq!(alarm["queue"], "orders-dlq");
    assert_eq!(alarm["severity"], "P1");
    assert!(
        alarm["reason"]
            .as_str()
            .unwrap()
            .contains("1 messages visible"),
        "{alarm}"
    );
    assert!(
        slack[0].body["text"]
            .as_str()
            .unwrap()
            .contains("[P1] ALARM orders-dlq"),
        "{}",
        slack[0].body
    );
    assert!(
        slack[0].body["blocks"]
            .as_array()
            .is_some_and(|b| !b.is_empty())
    );

    // Still in ALARM for two more minutes: nothing new.
    for _ in 0..2 {
        let r = tick(&engine, &clock).await;
        assert!(r.transitions.is_empty() && r.notifications == 0);
    }

    // Drained: one OK on each hook.
    let out = ts
        .client
        .receive_message()
        .queue_url(&dlq)
        .send()
        .await
        .unwrap();
    for m in out.messages() {
        ts.client
            .delete_message()
            .queue_url(&dlq)
            .receipt_handle(m.receipt_handle().unwrap())
            .send()
            .await
            .unwrap();
    }
    let r = tick(&engine, &clock).await;
    assert_eq!(r.notifications, 2);
    let mut resolved = [rcv.next().await, rcv.next().await];
    resolved.sort_by(|a, b| a.hook.cmp(&b.hook));
    assert_eq!(resolved[0].body["event"], "OK");
    assert_eq!(resolved[0].body["status"], "resolved");
    assert!(
        resolved[1].body["text"]
            .as_str()
            .unwrap()
            .contains("RESOLVED")
    );
    outbox_drained(&engine).await;

    // A silence: the next episode is recorded but nothing is sent.
    let (status, silence) = call(
        &ts,
        "POST",
        "/_redrive/v1/alerts/silences",
        Some(json!({"rule": "dlq-any", "duration": "2h", "comment": "deploy"})),
    )
    .await;
    assert_eq!(status, 201, "{silence}");
    ts.send(&dlq, "again").await;
    let r = tick(&engine, &clock).await;
    assert_eq!(r.transitions.len(), 1);
    assert_eq!(r.notifications, 0);
    let (_, hist) = call(&ts, "GET", "/_redrive/v1/alerts/history?rule=dlq-any", None).await;
    let hist = hist["history"].as_array().unwrap().clone();
    let states: Vec<(&str, &str)> = hist
        .iter()
        .map(|h| {
            (
                h["oldState"].as_str().unwrap(),
                h["newState"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        states,
        vec![
            ("OK", "ALARM"),
            ("ALARM", "OK"),
            ("INSUFFICIENT_DATA", "ALARM")
        ]
    );
    assert_eq!(hist[0]["silencedBy"], silence["id"]);
    let (_, rules) = call(&ts, "GET", "/_redrive/v1/alerts/rules", None).await;
    assert_eq!(rules["rules"][0]["states"][0]["state"], "ALARM");
    let (_, outbox) = call(&ts, "GET", "/_redrive/v1/alerts/outbox", None).await;
    assert_eq!(outbox["notifications"], json!([]));
    // Nothing arrived beyond the 3 + 1 JSON and 1 + 1 Slack requests.
    assert!(rcv.rx.try_recv().is_err());
}

#[tokio::test]
async fn bad_alert_requests_get_aws_shaped_errors_and_change_nothing() {
    let (ts, _engine, _clock) = start().await;
    let cases = [
        (
            "POST",
            "/_redrive/v1/alerts/rules",
            Some(json!({"name": "x"})),
        ),
        (
            "POST",
            "/_redrive/v1/alerts/rules",
            Some(
                json!({"name": "x", "queue": "q", "condition": {"kind": "depth", "threshold": 0, "minutes": 1}}),
            ),
        ),
        (
            "POST",
            "/_redrive/v1/alerts/rules",
            Some(
                json!({"name": "x", "queue": "q", "condition": {"kind": "age", "seconds": 5}, "webhooks": [{"url": "file:///etc"}]}),
            ),
        ),
        (
            "POST",
            "/_redrive/v1/alerts/silences",
            Some(json!({"queue": "*", "duration": "forever"})),
        ),
        ("GET", "/_redrive/v1/alerts/history?limit=0", None),
    ];
    for (method, path, body) in cases {
        let (status, v) = call(&ts, method, path, body.clone()).await;
        assert_eq!(status, 400, "{path} {body:?}: {v}");
        assert!(
            v["__type"].as_str().is_some_and(|t| !t.contains('#')),
            "{v}"
        );
        assert!(v["message"].as_str().is_some(), "{v}");
    }
    let (status, v) = call(&ts, "DELETE", "/_redrive/v1/alerts/rules/nope", None).await;
    assert_eq!(status, 404, "{v}");
    assert_eq!(v["__type"], "ResourceNotFoundException");
    let (_, rules) = call(&ts, "GET", "/_redrive/v1/alerts/rules", None).await;
    assert_eq!(rules["rules"], json!([]));
    let (_, silences) = call(&ts, "GET", "/_redrive/v1/alerts/silences", None).await;
    assert_eq!(silences["silences"], json!([]));
}

#[tokio::test]
async fn a_restart_on_redb_keeps_state_and_outbox_and_sends_nothing_twice() {
    use redrive_store::{DurabilityMode, RedbStore};

    let mut rcv = receiver(1).await;
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(M0));
    let open = |clock: Arc<ManualClock>| {
        let store = Arc::new(RedbStore::open(dir.path(), DurabilityMode::Strict).unwrap());
        let engine = Arc::new(Engine::open(EngineConfig::default(), store.clone(), clock));
        (engine, store)
    };

    let (engine, store) = open(clock.clone());
    let (base, stop, handle) = crate::common::serve_engine(engine.clone()).await;
    let resp = reqwest::Client::new()
        .post(format!("{base}/_redrive/v1/alerts/rules"))
        .body(
            json!({
            "name": "r",
            "queue": "r-dlq",
            "condition": {"kind": "depth", "threshold": 1, "minutes": 1},
            "webhooks": [{"url": format!("{}/hooks/json", rcv.base)}],
            })
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 201);
    engine
        .create_queue(
            &redrive_engine::RequestContext {
                region: REGION.into(),
                base_url: base.clone(),
            },
            redrive_core::api::CreateQueueInput {
                queue_name: "r-dlq".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let url = format!("{base}/{ACCOUNT}/r-dlq");
    let ctx = redrive_engine::RequestContext {
        region: REGION.into(),
        base_url: base.clone(),
    };
    engine
        .send_message(
            &ctx,
            redrive_core::api::SendMessageInput {
                queue_url: url.clone(),
                message_body: Some("x".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    tick(&engine, &clock).await;
    // The first attempt fails (500) and is recorded for a retry in 1 s.
    let first = rcv.next().await;
    assert_eq!(first.answered, 500);
    let _ = advance_to_retry_recorded(&engine, &first.notification_id).await;

    // "Restart": stop serving and close the file. The old engine object lingers in this test
    // process (its background tasks hold it), so it keeps its own clock, frozen: nothing of
    // it falls due again, as nothing would in a dead process.
    stop.send(()).unwrap();
    handle.await.unwrap();
    drop(engine);
    store.shutdown();
    drop(store);
    let clock = Arc::new(ManualClock::new(redrive_engine::Clock::now_ms(&*clock)));

    let (engine, _store) = open(clock.clone());
    let rules = engine.alert_rules();
    assert_eq!(
        rules[0].states[0].state,
        redrive_engine::alerts::AlarmState::Alarm
    );
    assert_eq!(engine.alert_history(None, None, 10).len(), 1);
    let pending = engine.pending_alert_notifications();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].attempts, 1);
    let (_base2, _stop2, _handle2) = crate::common::serve_engine(engine.clone()).await;
    // The retry falls due on the new process and is delivered once.
    clock.advance_ms(1_000);
    let second = rcv.next().await;
    assert_eq!(
        (second.answered, second.notification_id.as_str()),
        (200, first.notification_id.as_str())
    );
    outbox_drained(&engine).await;
    // Still ALARM after the restart: no new transition, nothing queued.
    let r = tick(&engine, &clock).await;
    assert!(r.transitions.is_empty() && r.notifications == 0, "{r:?}");
    assert!(rcv.rx.try_recv().is_err());
}

/// Waits until notification `id` has a failure recorded (back in the outbox for a retry).
async fn advance_to_retry_recorded(engine: &Engine, id: &str) -> u64 {
    for _ in 0..600 {
        if let Some(n) = engine
            .pending_alert_notifications()
            .into_iter()
            .find(|n| n.id == id && n.attempts >= 1)
        {
            return n.next_attempt_ms;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("failure of {id} never recorded");
}
