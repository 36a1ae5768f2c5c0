//! Metrics go through the `metrics` facade (to whatever recorder the application installed),
//! and the library installs none itself.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use metrics::{
    Counter, CounterFn, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit,
};
use redrive_worker::{Message, Outcome, handler_fn};

use crate::common::{Env, Running, eventually, quick};

/// Counts counter increments per `name{label=value,…}`.
#[derive(Default, Clone)]
struct CountingRecorder {
    counters: Arc<Mutex<BTreeMap<String, Arc<Count>>>>,
}

#[derive(Default)]
struct Count(AtomicU64);

impl CounterFn for Count {
    fn increment(&self, value: u64) {
        self.0.fetch_add(value, Ordering::Relaxed);
    }

    fn absolute(&self, value: u64) {
        self.0.store(value, Ordering::Relaxed);
    }
}

impl CountingRecorder {
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        let mut labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        labels.sort();
        let key = format!("{name}{{{}}}", labels.join(","));
        self.counters
            .lock()
            .unwrap()
            .get(&key)
            .map_or(0, |c| c.0.load(Ordering::Relaxed))
    }
}

impl Recorder for CountingRecorder {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        let mut labels: Vec<String> = key
            .labels()
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        labels.sort();
        let name = format!("{}{{{}}}", key.name(), labels.join(","));
        let count = Arc::clone(self.counters.lock().unwrap().entry(name).or_default());
        Counter::from_arc(count)
    }

    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }

    fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::noop()
    }
}

#[test]
fn metrics_go_through_the_facade_and_no_recorder_is_installed() {
    let recorder = CountingRecorder::default();
    // A current-thread runtime keeps every task on this thread, where the local recorder is.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let queue = metrics::with_local_recorder(&recorder, || {
        runtime.block_on(async {
            let env = Env::redrive().await;
            let (url, dlq) = env.queue_with_dlq("metrics", 5, 5).await;
            env.send(&url, "ok").await;
            env.send(&url, "bad").await;
            let worker = quick(&env, &url)
                .build(handler_fn(|m: Message| async move {
                    if m.body() == "ok" {
                        Outcome::Done
                    } else {
                        Outcome::permanent("bad", "bad body")
                    }
                }))
                .unwrap();
            let running = Running::start(worker);
            eventually(Duration::from_secs(20), "both handled", || async {
                env.counts(&url).await == (0, 0) && env.counts(&dlq).await.0 == 1
            })
            .await;
            running.stop().await;
            url.rsplit('/').next().unwrap().to_string()
        })
    });
    let q = queue.as_str();
    assert_eq!(
        recorder.get("redrive_worker_received_total", &[("queue", q)]),
        2
    );
    assert_eq!(
        recorder.get(
            "redrive_worker_outcomes_total",
            &[("queue", q), ("outcome", "done")]
        ),
        1
    );
    assert_eq!(
        recorder.get(
            "redrive_worker_outcomes_total",
            &[("queue", q), ("outcome", "permanent")]
        ),
        1
    );
    assert_eq!(
        recorder.get(
            "redrive_worker_dead_lettered_total",
            &[("queue", q), ("reason", "permanent_error")]
        ),
        1
    );
    assert_eq!(
        recorder.get("redrive_worker_deleted_total", &[("queue", q)]),
        2
    );
    // The library did not install a global recorder, so the application still can.
    assert!(metrics::set_global_recorder(CountingRecorder::default()).is_ok());
}

/// The value of a counter in Prometheus text, summed over the samples of `queue` that carry
/// `labels` (parsed with a Prometheus text parser, not by string matching).
fn counter_value(text: &str, name: &str, queue: &str, labels: &[(&str, &str)]) -> f64 {
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap();
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name && s.labels.get("queue") == Some(queue))
        .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Untyped(v) => v,
            _ => panic!("{name} is not a counter"),
        })
        .sum()
}

/// A real recorder: `metrics-exporter-prometheus`, as a consumer binary would install it
/// (here as a local recorder, so tests sharing the process do not fight over the global one).
/// The rendered text parses with a Prometheus text parser and holds exactly the outcomes the
/// worker saw: done, transient (then done), rate limited (then done), permanent.
#[test]
fn prometheus_exporter_renders_every_outcome_count() {
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let queue = metrics::with_local_recorder(&recorder, || {
        runtime.block_on(async {
            let env = Env::redrive().await;
            let (url, dlq) = env.queue_with_dlq("prom", 5, 5).await;
            let queue = url.rsplit('/').next().unwrap().to_string();
            for body in ["ok", "bad", "flaky", "throttled"] {
                env.send(&url, body).await;
            }
            let throttled = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let worker = quick(&env, &url)
                .backoff(redrive_worker::Backoff::exponential(
                    Duration::from_secs(1),
                    Duration::from_secs(1),
                ))
                .rate_limit_pause(Duration::from_millis(100))
                .build(handler_fn(move |m: Message| {
                    // A rate-limited message does not spend an attempt: throttle it once.
                    let throttle =
                        m.body() == "throttled" && !throttled.swap(true, Ordering::SeqCst);
                    async move {
                        match (m.body(), m.attempt()) {
                            ("bad", _) => Outcome::permanent("bad", "bad body"),
                            ("flaky", 1) => Outcome::transient("timeout", "downstream timed out"),
                            ("throttled", _) if throttle => {
                                Outcome::rate_limited(Some(Duration::from_secs(1)))
                            }
                            _ => Outcome::Done,
                        }
                    }
                }))
                .unwrap();
            let running = Running::start(worker);
            // Done when the retried and the deferred message have come back and succeeded
            // (a deferred copy may sit delayed, outside the visible/in-flight counts).
            eventually(
                Duration::from_secs(30),
                "three done, one dead-lettered",
                || {
                    let text = handle.render();
                    let queue = queue.clone();
                    let (env, url, dlq) = (&env, url.clone(), dlq.clone());
                    async move {
                        counter_value(
                            &text,
                            "redrive_worker_outcomes_total",
                            &queue,
                            &[("outcome", "done")],
                        ) >= 3.0
                            && env.counts(&url).await == (0, 0)
                            && env.counts(&dlq).await.0 == 1
                    }
                },
            )
            .await;
            running.stop().await;
            queue
        })
    });
    let text = handle.render();
    let value = |name: &str, labels: &[(&str, &str)]| counter_value(&text, name, &queue, labels);
    let outcome = |o: &str| value("redrive_worker_outcomes_total", &[("outcome", o)]);
    assert_eq!(outcome("done"), 3.0, "{text}");
    assert_eq!(outcome("transient"), 1.0, "{text}");
    assert_eq!(outcome("rate_limited"), 1.0, "{text}");
    assert_eq!(outcome("permanent"), 1.0, "{text}");
    assert_eq!(value("redrive_worker_received_total", &[]), 6.0, "{text}");
    assert_eq!(value("redrive_worker_retried_total", &[]), 1.0, "{text}");
    assert_eq!(
        value(
            "redrive_worker_deferred_total",
            &[("cause", "rate_limited")]
        ),
        1.0,
        "{text}"
    );
    assert_eq!(
        value(
            "redrive_worker_dead_lettered_total",
            &[("reason", "permanent_error")]
        ),
        1.0,
        "{text}"
    );
    // Histograms render as summaries by default: the handler timings are there too.
    assert!(text.contains("redrive_worker_handler_seconds"), "{text}");
}
