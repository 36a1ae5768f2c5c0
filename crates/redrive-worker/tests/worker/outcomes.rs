//! One test per handler outcome: transient, permanent, invalid, rate limited.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redrive_worker::{
    Backoff, ENVELOPE_ATTRIBUTE, Failure, Jitter, KeySource, Message, Outcome, Quota, Reason,
    TenantRateLimiter, handler_fn,
};

use crate::common::{Env, Log, Running, eventually, quick};
use crate::on_both;

const LIMIT: Duration = Duration::from_secs(20);

/// Transient failures come back after growing visibility timeouts (1 s, then 2 s: backoff
/// base 1 s without jitter), and the third attempt completes.
async fn transient_retries_with_growing_visibility(env: &Env) {
    let (url, dlq) = env.queue_with_dlq("transient", 10, 5).await;
    env.send(&url, r#"{"n":1}"#).await;
    let seen: Arc<Mutex<Vec<(u32, u32, Instant)>>> = Arc::default();
    let log = Arc::clone(&seen);
    let worker = quick(env, &url)
        .backoff(
            Backoff::exponential(Duration::from_secs(1), Duration::from_secs(30))
                .with_jitter(Jitter::None),
        )
        .build(handler_fn(move |m: Message| {
            let log = Arc::clone(&log);
            async move {
                let mut log = log.lock().unwrap();
                log.push((m.receive_count(), m.attempt(), Instant::now()));
                if log.len() < 3 {
                    Outcome::transient("timeout", "downstream timed out")
                } else {
                    Outcome::Done
                }
            }
        }))
        .unwrap();
    let running = Running::start(worker);
    eventually(LIMIT, "three attempts", || async {
        seen.lock().unwrap().len() >= 3
    })
    .await;
    let stats = running.stop().await;

    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 3, "{seen:?}");
    let counts: Vec<(u32, u32)> = seen.iter().map(|(r, a, _)| (*r, *a)).collect();
    assert_eq!(counts, vec![(1, 1), (2, 2), (3, 3)]);
    let first_gap = seen[1].2 - seen[0].2;
    let second_gap = seen[2].2 - seen[1].2;
    assert!(
        first_gap >= Duration::from_millis(950),
        "first backoff {first_gap:?} < 1 s"
    );
    assert!(
        second_gap >= Duration::from_millis(1950),
        "second backoff {second_gap:?} < 2 s"
    );
    assert!(
        second_gap > first_gap,
        "backoff must grow: {first_gap:?} then {second_gap:?}"
    );
    assert_eq!(
        (stats.retried, stats.completed, stats.dead_lettered),
        (2, 1, 0)
    );
    assert_eq!(env.counts(&url).await, (0, 0));
    assert_eq!(env.counts(&dlq).await, (0, 0));
}
on_both!(transient_retries_with_growing_visibility);

/// When transient failures use up `max_attempts`, the worker dead-letters the message itself
/// with an envelope saying so.
async fn transient_budget_spent_goes_to_dlq(env: &Env) {
    let (url, dlq) = env.queue_with_dlq("budget", 10, 5).await;
    env.send(&url, "payload").await;
    let calls = Arc::new(Mutex::new(0u32));
    let counter = Arc::clone(&calls);
    let worker = quick(env, &url)
        .max_attempts(2)
        .backoff(Backoff::exponential(
            Duration::from_millis(100),
            Duration::from_secs(1),
        ))
        .build(handler_fn(move |_m: Message| {
            *counter.lock().unwrap() += 1;
            async { Outcome::transient("http_503", "unavailable") }
        }))
        .unwrap();
    let running = Running::start(worker);
    eventually(LIMIT, "a dead letter", || async {
        env.counts(&dlq).await.0 == 1
    })
    .await;
    let stats = running.stop().await;
    assert_eq!(*calls.lock().unwrap(), 2);
    assert_eq!(stats.dead_lettered, 1);
    let dead = env.drain(&dlq, 1).await;
    let envelope = dead[0].envelope.clone().expect("envelope");
    assert_eq!(envelope.reason, Reason::MaxAttempts);
    assert_eq!(envelope.attempts, 2);
    assert!(envelope.retryable);
    let first = envelope.first_failed_at.clone().expect("first_failed_at");
    let last = envelope.last_failed_at.clone().expect("last_failed_at");
    // The first failure is this copy's first receive, before the last failure.
    assert!(first.starts_with("20") && first < last, "{first} / {last}");
    assert_eq!(envelope.error.unwrap().class, "http_503");
    assert_eq!(dead[0].body, "payload");
}
on_both!(transient_budget_spent_goes_to_dlq);

/// A permanent failure goes to the DLQ after one attempt, body and attributes unchanged,
/// with a complete envelope.
async fn permanent_goes_to_dlq_after_one_attempt(env: &Env) {
    let (url, dlq) = env.queue_with_dlq("permanent", 5, 5).await;
    let body = r#"{"mall_id":"drlabnosh","member_id":42}"#;
    let id = env.send_with(&url, body, &[("trace", "abc")], None).await;
    let calls = Arc::new(Mutex::new(0u32));
    let counter = Arc::clone(&calls);
    let worker = quick(env, &url)
        .tenant_key(KeySource::json_field("mall_id"))
        .build(handler_fn(move |_m: Message| {
            *counter.lock().unwrap() += 1;
            async { Outcome::permanent("http_404", "member 42 not found") }
        }))
        .unwrap();
    let running = Running::start(worker);
    eventually(LIMIT, "a dead letter", || async {
        env.counts(&dlq).await.0 == 1
    })
    .await;
    let stats = running.stop().await;

    assert_eq!(
        *calls.lock().unwrap(),
        1,
        "permanent failures are not retried"
    );
    assert_eq!((stats.dead_lettered, stats.retried), (1, 0));
    assert_eq!(env.counts(&url).await, (0, 0));
    let dead = env.drain(&dlq, 1).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].body, body, "the body is kept as is");
    assert_eq!(
        dead[0]
            .attributes
            .get("trace")
            .and_then(|v| v.string_value()),
        Some("abc"),
        "original attributes are kept"
    );
    assert_eq!(dead[0].attributes.len(), 2, "exactly one attribute added");
    let raw = dead[0].attributes[ENVELOPE_ATTRIBUTE]
        .string_value()
        .unwrap();
    let json: serde_json::Value = serde_json::from_str(raw).unwrap();
    assert_eq!(json["v"], 1);
    assert_eq!(json["reason"], "permanent_error");
    assert_eq!(json["error"]["class"], "http_404");
    assert_eq!(json["error"]["message"], "member 42 not found");
    assert_eq!(json["attempts"], 1);
    assert_eq!(json["retryable"], false);
    assert_eq!(json["source_queue"], url.as_str());
    assert_eq!(json["worker_id"], "test-worker");
    assert_eq!(json["original_message_id"], id.as_str());
    assert_eq!(json["tenant"], "drlabnosh");
    let first = json["first_failed_at"].as_str().expect("first_failed_at");
    assert!(first.ends_with('Z') && first.len() == 24, "{first}");
    assert_eq!(json["last_failed_at"], json["first_failed_at"]);
}
on_both!(permanent_goes_to_dlq_after_one_attempt);

/// The validator dead-letters bad payloads without calling the handler; good ones go through.
async fn invalid_goes_to_dlq_without_calling_the_handler(env: &Env) {
    let (url, dlq) = env.queue_with_dlq("invalid", 5, 5).await;
    env.send(&url, "not json").await;
    env.send(&url, r#"{"ok":true}"#).await;
    let handled: Arc<Mutex<Vec<String>>> = Arc::default();
    let log = Arc::clone(&handled);
    let worker = quick(env, &url)
        .validator(|m: &Message| {
            m.json::<serde_json::Value>()
                .map(|_| ())
                .map_err(|e| Failure::new("bad_json", e.to_string()))
        })
        .build(handler_fn(move |m: Message| {
            log.lock().unwrap().push(m.body().to_string());
            async { Outcome::Done }
        }))
        .unwrap();
    let running = Running::start(worker);
    eventually(LIMIT, "one dead letter and one done", || async {
        env.counts(&dlq).await.0 == 1 && !handled.lock().unwrap().is_empty()
    })
    .await;
    let stats = running.stop().await;
    assert_eq!(*handled.lock().unwrap(), vec![r#"{"ok":true}"#.to_string()]);
    assert_eq!(
        (stats.dead_lettered, stats.completed, stats.handled),
        (1, 1, 1)
    );
    let dead = env.drain(&dlq, 1).await;
    assert_eq!(dead[0].body, "not json");
    let envelope = dead[0].envelope.clone().expect("envelope");
    assert_eq!(envelope.reason, Reason::Validation);
    assert_eq!(envelope.attempts, 0, "the handler never ran");
    assert_eq!(envelope.error.unwrap().class, "bad_json");
    assert_eq!(env.counts(&url).await, (0, 0));
}
on_both!(invalid_goes_to_dlq_without_calling_the_handler);

/// Rate-limited messages never reach the DLQ even though they come back more often than the
/// queue's `maxReceiveCount` (2): each deferral is a fresh copy whose envelope carries the
/// throttle count and the original id. While a tenant is paused, none of its messages is
/// handled.
async fn rate_limited_never_reaches_the_dlq(env: &Env) {
    let (url, dlq) = env.queue_with_dlq("ratelimited", 2, 5).await;
    let mut sent = HashMap::new();
    for (i, mall) in ["a", "a", "b", "b"].iter().enumerate() {
        let body = format!(r#"{{"mall_id":"{mall}","n":{i}}}"#);
        let id = env.send(&url, &body).await;
        sent.insert(body, id);
    }
    // Per body: calls so far. Each body is rate limited twice, then done.
    let calls: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
    // (tenant, start, end, rate limited?)
    let timeline: Log<(String, Instant, Instant, bool)> = Arc::default();
    let finals: Log<(String, String, u32, u32)> = Arc::default();
    let (c, t, f) = (
        Arc::clone(&calls),
        Arc::clone(&timeline),
        Arc::clone(&finals),
    );
    let worker = quick(env, &url)
        .concurrency(4)
        .tenant_key(KeySource::json_field("mall_id"))
        .build(handler_fn(move |m: Message| {
            let (c, t, f) = (Arc::clone(&c), Arc::clone(&t), Arc::clone(&f));
            async move {
                let start = Instant::now();
                tokio::time::sleep(Duration::from_millis(20)).await;
                let n = {
                    let mut calls = c.lock().unwrap();
                    let n = calls.entry(m.body().to_string()).or_default();
                    *n += 1;
                    *n
                };
                let limited = n <= 2;
                let tenant = m.tenant().unwrap_or("").to_string();
                t.lock()
                    .unwrap()
                    .push((tenant, start, Instant::now(), limited));
                if limited {
                    Outcome::rate_limited(Some(Duration::from_secs(1)))
                } else {
                    let throttles = m.envelope().map_or(0, |e| e.throttles);
                    f.lock().unwrap().push((
                        m.body().to_string(),
                        m.original_id().to_string(),
                        throttles,
                        m.attempt(),
                    ));
                    Outcome::Done
                }
            }
        }))
        .unwrap();
    let running = Running::start(worker);
    eventually(LIMIT, "all four done", || async {
        finals.lock().unwrap().len() == 4
    })
    .await;
    let stats = running.stop().await;

    assert_eq!(env.counts(&dlq).await, (0, 0), "no dead letters");
    assert_eq!(env.counts(&url).await, (0, 0));
    assert_eq!(
        (stats.completed, stats.dead_lettered, stats.retried),
        (4, 0, 0)
    );
    assert_eq!(stats.rate_limited, 8);
    assert!(stats.deferred >= 8, "{stats:?}");
    for (body, original_id, throttles, attempt) in finals.lock().unwrap().iter() {
        assert_eq!(
            original_id, &sent[body],
            "original id carried across re-sends"
        );
        assert_eq!(*throttles, 2, "throttles carried across re-sends");
        assert_eq!(*attempt, 1, "rate limits are not failed attempts");
    }
    // The pause holds: after a 429 for a tenant, no handler of that tenant starts within
    // the pause (a 300 ms margin covers calls admitted just before the 429 arrived).
    let timeline = timeline.lock().unwrap();
    for (tenant, _, limited_at, limited) in timeline.iter() {
        if !limited {
            continue;
        }
        for (other, start, _, _) in timeline.iter() {
            if other == tenant && *start > *limited_at + Duration::from_millis(300) {
                assert!(
                    *start >= *limited_at + Duration::from_millis(950),
                    "tenant {tenant} handled {:?} after a 429",
                    *start - *limited_at
                );
            }
        }
    }
}
on_both!(rate_limited_never_reaches_the_dlq);

/// Admission control: a tenant limited to 2 calls/s never gets two handler starts closer than
/// the quota allows, whatever the concurrency; the other tenant is not held back; messages
/// whose permit is too far off are deferred (not failed) and all complete.
async fn admission_control_spaces_a_tenants_calls(env: &Env) {
    let (url, dlq) = env.queue_with_dlq("admission", 2, 5).await;
    for i in 0..6 {
        env.send(&url, &format!(r#"{{"mall_id":"slow","n":{i}}}"#))
            .await;
    }
    for i in 0..3 {
        env.send(&url, &format!(r#"{{"mall_id":"fast","n":{i}}}"#))
            .await;
    }
    let starts: Log<(String, Instant)> = Arc::default();
    let log = Arc::clone(&starts);
    let limiter = Arc::new(
        TenantRateLimiter::new(Quota::per_second(100))
            .with_tenant_quota("slow", Quota::per_second(2)),
    );
    let worker = quick(env, &url)
        .concurrency(8)
        .tenant_key(KeySource::json_field("mall_id"))
        .limiter(limiter)
        .max_admission_wait(Duration::from_millis(600))
        .build(handler_fn(move |m: Message| {
            log.lock()
                .unwrap()
                .push((m.tenant().unwrap_or("").to_string(), Instant::now()));
            async { Outcome::Done }
        }))
        .unwrap();
    let running = Running::start(worker);
    eventually(LIMIT, "nine messages done", || async {
        starts.lock().unwrap().len() >= 9
    })
    .await;
    let stats = running.stop().await;
    assert_eq!(
        (stats.completed, stats.dead_lettered, stats.retried),
        (9, 0, 0)
    );
    assert!(
        stats.deferred >= 1,
        "far-off permits are deferred: {stats:?}"
    );
    assert_eq!(env.counts(&dlq).await, (0, 0));
    assert_eq!(env.counts(&url).await, (0, 0));
    let starts = starts.lock().unwrap().clone();
    let mut slow: Vec<Instant> = starts
        .iter()
        .filter(|(t, _)| t == "slow")
        .map(|(_, i)| *i)
        .collect();
    slow.sort();
    assert_eq!(slow.len(), 6);
    for pair in slow.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(
            gap >= Duration::from_millis(450),
            "two calls of the 2/s tenant {gap:?} apart"
        );
    }
    let fast_done = starts
        .iter()
        .filter(|(t, _)| t == "fast")
        .map(|(_, i)| *i)
        .max()
        .unwrap();
    assert!(
        fast_done < slow[2],
        "the fast tenant was held back by the slow one"
    );
}
on_both!(admission_control_spaces_a_tenants_calls);

/// A panicking handler is a transient failure: the message comes back and completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_handler_is_retried() {
    let env = Env::redrive().await;
    let (url, dlq) = env.queue_with_dlq("panic", 5, 5).await;
    env.send(&url, "boom once").await;
    let worker = quick(&env, &url)
        .backoff(Backoff::exponential(
            Duration::from_millis(100),
            Duration::from_secs(1),
        ))
        .build(handler_fn(|m: Message| async move {
            assert!(m.receive_count() > 1, "first delivery panics");
            Outcome::Done
        }))
        .unwrap();
    let stats_handle = worker.stats();
    let running = Running::start(worker);
    eventually(LIMIT, "completed after the panic", || async {
        stats_handle.snapshot().completed == 1
    })
    .await;
    let stats = running.stop().await;
    assert_eq!((stats.panics, stats.retried, stats.completed), (1, 1, 1));
    assert_eq!(env.counts(&dlq).await, (0, 0));
}

/// A failure, then a rate limit: the deferred copy's receive count starts again at 1, but the
/// envelope carries the failed attempt, so the attempt number keeps counting (2).
async fn deferred_copy_carries_the_attempt_count(env: &Env) {
    let (url, dlq) = env.queue_with_dlq("carry", 5, 5).await;
    let id = env.send(&url, "carry").await;
    // (receive count, attempt, envelope (attempts, throttles), original id) per call.
    type Call = (u32, u32, Option<(u32, u32)>, String);
    let seen: Log<Call> = Arc::default();
    let log = Arc::clone(&seen);
    let worker = quick(env, &url)
        .backoff(Backoff::exponential(
            Duration::from_millis(100),
            Duration::from_secs(1),
        ))
        .build(handler_fn(move |m: Message| {
            let log = Arc::clone(&log);
            async move {
                let mut log = log.lock().unwrap();
                log.push((
                    m.receive_count(),
                    m.attempt(),
                    m.envelope().map(|e| (e.attempts, e.throttles)),
                    m.original_id().to_string(),
                ));
                match log.len() {
                    1 => Outcome::transient("timeout", "first try"),
                    2 => Outcome::rate_limited(Some(Duration::from_millis(500))),
                    _ => Outcome::Done,
                }
            }
        }))
        .unwrap();
    let running = Running::start(worker);
    eventually(LIMIT, "three calls", || async {
        seen.lock().unwrap().len() >= 3
    })
    .await;
    let stats = running.stop().await;
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen[0], (1, 1, None, id.clone()));
    assert_eq!(seen[1], (2, 2, None, id.clone()));
    assert_eq!(seen[2], (1, 2, Some((1, 1)), id), "{seen:?}");
    assert_eq!((stats.completed, stats.retried, stats.deferred), (1, 1, 1));
    assert_eq!(env.counts(&dlq).await, (0, 0));
}
on_both!(deferred_copy_carries_the_attempt_count);
