//! Heartbeat, graceful shutdown, idempotency, FIFO ordering and start-up errors.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redrive_worker::{
    Backoff, Idempotency, InMemoryIdempotencyStore, Jitter, KeySource, Message, Outcome, Worker,
    WorkerError, handler_fn,
};

use crate::common::{Env, Running, eventually, quick};
use crate::on_both;

const LIMIT: Duration = Duration::from_secs(20);

/// A handler that runs 4 s with a 2 s visibility timeout: the heartbeat keeps the message
/// invisible, so neither another consumer nor the worker itself sees it again.
async fn heartbeat_keeps_a_slow_message_invisible(env: &Env) {
    let (url, dlq) = env.queue_with_dlq("heartbeat", 5, 2).await;
    env.send(&url, "slow").await;
    let calls = Arc::new(Mutex::new(0u32));
    let counter = Arc::clone(&calls);
    let worker = quick(env, &url)
        .concurrency(2)
        .visibility_timeout(Duration::from_secs(2))
        .build(handler_fn(move |_m: Message| {
            *counter.lock().unwrap() += 1;
            async {
                tokio::time::sleep(Duration::from_secs(4)).await;
                Outcome::Done
            }
        }))
        .unwrap();
    let running = Running::start(worker);
    eventually(LIMIT, "the handler started", || async {
        *calls.lock().unwrap() == 1
    })
    .await;
    // Another consumer polls throughout the handler's run (well past the 2 s timeout).
    let mut stolen = 0;
    for _ in 0..4 {
        let got = env
            .client
            .receive_message()
            .queue_url(&url)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        stolen += got.messages.unwrap_or_default().len();
    }
    eventually(LIMIT, "the message deleted", || async {
        env.counts(&url).await == (0, 0)
    })
    .await;
    let stats = running.stop().await;
    assert_eq!(stolen, 0, "the message became visible while being handled");
    assert_eq!(*calls.lock().unwrap(), 1, "handled exactly once");
    assert_eq!(stats.completed, 1);
    assert_eq!(env.counts(&dlq).await, (0, 0));
}
on_both!(heartbeat_keeps_a_slow_message_invisible);

/// Shutdown in the middle of a backlog: handlers that started finish and are deleted, the
/// rest is released visible at once, and a second worker finishes the job — every message
/// handled exactly once.
async fn graceful_shutdown_loses_nothing(env: &Env) {
    let (url, dlq) = env.queue_with_dlq("shutdown", 5, 30).await;
    let total = 20;
    for i in 0..total {
        env.send(&url, &format!("m{i}")).await;
    }
    let started: Arc<Mutex<Vec<String>>> = Arc::default();
    let finished: Arc<Mutex<Vec<String>>> = Arc::default();
    let make = |started: Arc<Mutex<Vec<String>>>, finished: Arc<Mutex<Vec<String>>>| {
        handler_fn(move |m: Message| {
            let (started, finished) = (Arc::clone(&started), Arc::clone(&finished));
            async move {
                started.lock().unwrap().push(m.body().to_string());
                tokio::time::sleep(Duration::from_millis(300)).await;
                finished.lock().unwrap().push(m.body().to_string());
                Outcome::Done
            }
        })
    };
    let worker = quick(env, &url)
        .concurrency(4)
        .build(make(Arc::clone(&started), Arc::clone(&finished)))
        .unwrap();
    let running = Running::start(worker);
    eventually(LIMIT, "four handlers running", || async {
        started.lock().unwrap().len() >= 4
    })
    .await;
    let stats = running.stop().await;

    let first_started: HashSet<String> = started.lock().unwrap().iter().cloned().collect();
    let first_finished: HashSet<String> = finished.lock().unwrap().iter().cloned().collect();
    assert_eq!(
        first_started, first_finished,
        "every started handler finished"
    );
    let done = first_finished.len() as u64;
    assert!(done < total, "shutdown came before the backlog was done");
    assert_eq!(stats.completed, done);
    // Nothing is left invisible: the rest is visible again right away.
    assert_eq!(env.counts(&url).await, (total - done, 0));

    let worker = quick(env, &url)
        .concurrency(4)
        .build(make(Arc::clone(&started), Arc::clone(&finished)))
        .unwrap();
    let running = Running::start(worker);
    eventually(LIMIT, "the rest handled", || async {
        finished.lock().unwrap().len() as u64 >= total
    })
    .await;
    running.stop().await;
    let all = finished.lock().unwrap().clone();
    let unique: HashSet<&String> = all.iter().collect();
    assert_eq!(
        all.len() as u64,
        total,
        "each message handled exactly once: {all:?}"
    );
    assert_eq!(unique.len() as u64, total);
    assert_eq!(env.counts(&url).await, (0, 0));
    assert_eq!(env.counts(&dlq).await, (0, 0));
}
on_both!(graceful_shutdown_loses_nothing);

/// Two deliveries of the same order (a producer duplicate, then a redrive after completion)
/// run the side effect once.
async fn idempotency_stops_a_duplicate_side_effect(env: &Env) {
    let (url, _dlq) = env.queue_with_dlq("idempotency", 5, 5).await;
    env.send(&url, r#"{"order_id":"A"}"#).await;
    env.send(&url, r#"{"order_id":"A"}"#).await;
    env.send(&url, r#"{"order_id":"B"}"#).await;
    let effects: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
    let log = Arc::clone(&effects);
    let store = Arc::new(InMemoryIdempotencyStore::new());
    let worker = quick(env, &url)
        .concurrency(4)
        .backoff(Backoff::exponential(
            Duration::from_secs(1),
            Duration::from_secs(5),
        ))
        .idempotency(
            Idempotency::new(store.clone())
                .key(KeySource::json_field("order_id"))
                .retention(Duration::from_secs(600)),
        )
        .build(handler_fn(move |m: Message| {
            let log = Arc::clone(&log);
            async move {
                let order: serde_json::Value = m.json().unwrap();
                tokio::time::sleep(Duration::from_millis(200)).await;
                *log.lock()
                    .unwrap()
                    .entry(order["order_id"].as_str().unwrap().to_string())
                    .or_default() += 1;
                Outcome::Done
            }
        }))
        .unwrap();
    let stats_handle = worker.stats();
    let running = Running::start(worker);
    eventually(LIMIT, "all three messages gone", || async {
        env.counts(&url).await == (0, 0) && stats_handle.snapshot().duplicates == 1
    })
    .await;
    // A redrive of the completed order later.
    env.send(&url, r#"{"order_id":"A"}"#).await;
    eventually(LIMIT, "the redriven copy skipped", || async {
        stats_handle.snapshot().duplicates == 2 && env.counts(&url).await == (0, 0)
    })
    .await;
    let stats = running.stop().await;
    let effects = effects.lock().unwrap().clone();
    assert_eq!(effects.get("A"), Some(&1), "{effects:?}");
    assert_eq!(effects.get("B"), Some(&1), "{effects:?}");
    assert_eq!((stats.completed, stats.duplicates), (2, 2));
    assert_eq!(store.len(), 2, "two completed keys");
}
on_both!(idempotency_stops_a_duplicate_side_effect);

/// FIFO: a group is handled in order, and when one message fails the later ones of its group
/// wait for it; another group is not held up.
async fn fifo_failure_does_not_let_later_messages_overtake(env: &Env) {
    let (url, dlq) = env.fifo_with_dlq("fifo", 5, 5).await;
    for i in 1..=4 {
        env.send_with(&url, &format!("g1-{i}"), &[], Some("g1"))
            .await;
    }
    for i in 1..=3 {
        env.send_with(&url, &format!("g2-{i}"), &[], Some("g2"))
            .await;
    }
    let order: Arc<Mutex<Vec<(String, bool)>>> = Arc::default();
    let log = Arc::clone(&order);
    let worker = quick(env, &url)
        .concurrency(4)
        .backoff(
            Backoff::exponential(Duration::from_secs(1), Duration::from_secs(5))
                .with_jitter(Jitter::None),
        )
        .build(handler_fn(move |m: Message| {
            let log = Arc::clone(&log);
            async move {
                let fail = m.body() == "g1-2" && m.receive_count() == 1;
                log.lock().unwrap().push((m.body().to_string(), !fail));
                if fail {
                    Outcome::transient("timeout", "first try of g1-2 fails")
                } else {
                    Outcome::Done
                }
            }
        }))
        .unwrap();
    let running = Running::start(worker);
    eventually(LIMIT, "seven messages done", || async {
        order.lock().unwrap().iter().filter(|(_, ok)| *ok).count() == 7
    })
    .await;
    let stats = running.stop().await;
    let order = order.lock().unwrap().clone();
    let group = |g: &str| -> Vec<(String, bool)> {
        order
            .iter()
            .filter(|(b, _)| b.starts_with(g))
            .cloned()
            .collect()
    };
    let s = |b: &str, ok: bool| (b.to_string(), ok);
    assert_eq!(
        group("g1"),
        vec![
            s("g1-1", true),
            s("g1-2", false),
            s("g1-2", true),
            s("g1-3", true),
            s("g1-4", true)
        ],
        "{order:?}"
    );
    assert_eq!(
        group("g2"),
        vec![s("g2-1", true), s("g2-2", true), s("g2-3", true)]
    );
    assert_eq!(
        (stats.completed, stats.retried, stats.dead_lettered),
        (7, 1, 0)
    );
    assert_eq!(env.counts(&dlq).await, (0, 0));
}
on_both!(fifo_failure_does_not_let_later_messages_overtake);

/// Without a RedrivePolicy or an explicit DLQ the worker refuses to start; bad settings are
/// rejected by `build`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_up_errors() {
    let env = Env::redrive().await;
    let url = env.create("no-dlq", &[]).await;
    let worker = quick(&env, &url)
        .build(handler_fn(|_m: Message| async { Outcome::Done }))
        .unwrap();
    let err = worker.run(async {}).await.unwrap_err();
    assert!(
        matches!(err, WorkerError::NoDeadLetterQueue { .. }),
        "{err}"
    );

    let dlq = env.create("explicit-dlq", &[]).await;
    let worker = quick(&env, &url)
        .dead_letter_queue(dlq)
        .build(handler_fn(|_m: Message| async { Outcome::Done }))
        .unwrap();
    let stats = worker.run(async {}).await.expect("explicit DLQ is enough");
    assert_eq!(stats.received, 0);

    let build = |b: redrive_worker::WorkerBuilder| {
        b.build(handler_fn(|_m: Message| async { Outcome::Done }))
            .unwrap_err()
            .to_string()
    };
    let base = || Worker::builder(env.client.clone(), url.clone());
    assert!(build(base().concurrency(0)).contains("concurrency"));
    assert!(build(base().wait_time(Duration::from_secs(21))).contains("wait_time"));
    assert!(build(base().visibility_timeout(Duration::ZERO)).contains("visibility_timeout"));
    assert!(
        build(
            base()
                .visibility_timeout(Duration::from_secs(10))
                .heartbeat_interval(Duration::from_secs(10))
        )
        .contains("heartbeat_interval")
    );
    assert!(build(base().max_attempts(0)).contains("max_attempts"));
}
