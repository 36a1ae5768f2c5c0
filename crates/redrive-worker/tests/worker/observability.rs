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
