//! The field incident, replayable: a producer bursts `points_updated` events for two malls;
//! each event makes one call to a downstream API that allows a fixed number of calls per
//! second **per mall** and answers 429 beyond it. A naive worker (global concurrency, 429 =
//! transient failure) piles messages into the DLQ; a worker with per-mall admission control
//! (shared limiter keyed on `mall_id`, 429 = rate limited) dead-letters none.
//!
//! Shared by `examples/incident` and the `incident` integration test.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{QueueAttributeName, SendMessageBatchRequestEntry};
use redrive_worker::{
    Backoff, KeySource, Message, Outcome, Quota, Reason, StatsHandle, TenantRateLimiter, Worker,
    handler_fn,
};

/// How the consumer deals with the downstream quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Global concurrency only; a 429 is a transient failure retried through SQS.
    Naive,
    /// A per-mall limiter shared by all workers; a 429 is `Outcome::RateLimited`.
    AdmissionControl,
}

/// The knobs of one replay.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// `(mall_id, events)` in the burst.
    pub malls: Vec<(String, usize)>,
    /// Downstream quota per mall, calls per second.
    pub quota_per_second: u32,
    /// What the worker's limiter allows per mall, calls per second (admission control only).
    /// Equal to the quota when the quota is known; set it higher to see 429s still happen and
    /// be absorbed by pauses and deferrals.
    pub limiter_per_second: u32,
    /// Downstream bucket size (calls allowed back to back).
    pub downstream_burst: u32,
    /// Downstream latency per call.
    pub downstream_latency: Duration,
    /// Worker instances (like Lambda instances), each with `concurrency` slots.
    pub workers: usize,
    /// Slots per worker.
    pub concurrency: usize,
    /// The source queue's `maxReceiveCount`.
    pub max_receive_count: u32,
    /// Backoff base for transient failures.
    pub backoff_base: Duration,
    /// Give up waiting after this long.
    pub time_limit: Duration,
}

impl Scenario {
    /// The shape of the April burst, scaled to run in seconds: two malls, 10 calls/s per mall,
    /// 16 handlers in flight (the Lambda mapping's maximum concurrency), `maxReceiveCount` 3.
    pub fn small() -> Scenario {
        Scenario {
            malls: vec![("drlabnosh".into(), 40), ("chosunhnb".into(), 20)],
            quota_per_second: 10,
            limiter_per_second: 10,
            downstream_burst: 2,
            downstream_latency: Duration::from_millis(20),
            workers: 2,
            concurrency: 8,
            max_receive_count: 3,
            backoff_base: Duration::from_millis(500),
            time_limit: Duration::from_secs(60),
        }
    }

    fn events(&self) -> usize {
        self.malls.iter().map(|(_, n)| n).sum()
    }
}

/// What one replay measured.
#[derive(Debug, Clone)]
pub struct Report {
    /// Which consumer ran.
    pub mode: Mode,
    /// The limiter's rate (admission control only).
    pub limiter_per_second: u32,
    /// Events produced.
    pub events: usize,
    /// Events handled successfully.
    pub completed: u64,
    /// Messages in the DLQ at the end.
    pub dead_letters: u64,
    /// Dead letters per mall.
    pub dead_by_mall: BTreeMap<String, u64>,
    /// Envelope reasons of the dead letters.
    pub dead_by_reason: BTreeMap<String, u64>,
    /// Downstream calls answered 200.
    pub downstream_ok: u64,
    /// Downstream calls answered 429.
    pub downstream_429: u64,
    /// Deferrals without a failure (admission waits and rate limits).
    pub deferred: u64,
    /// Wall time until every event was completed or dead-lettered.
    pub elapsed: Duration,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mode = match self.mode {
            Mode::Naive => "naive worker (global concurrency, 429 = transient failure)",
            Mode::AdmissionControl => "per-mall admission control (429 = rate limited)",
        };
        match self.mode {
            Mode::Naive => writeln!(f, "{mode}")?,
            Mode::AdmissionControl => writeln!(
                f,
                "{mode}, limiter {} calls/s per mall",
                self.limiter_per_second
            )?,
        }
        writeln!(
            f,
            "  events {:>5}   completed {:>5}   dead letters {:>5}   elapsed {:.1} s",
            self.events,
            self.completed,
            self.dead_letters,
            self.elapsed.as_secs_f64()
        )?;
        writeln!(
            f,
            "  downstream: {} ok, {} × 429   deferred without failure: {}",
            self.downstream_ok, self.downstream_429, self.deferred
        )?;
        if !self.dead_by_mall.is_empty() {
            writeln!(
                f,
                "  dead letters by mall: {:?}   by reason: {:?}",
                self.dead_by_mall, self.dead_by_reason
            )?;
        }
        Ok(())
    }
}

/// The fake downstream: a token bucket per mall, answering 429 with a `Retry-After` when
/// the mall's bucket is empty.
struct Downstream {
    rate: f64,
    burst: f64,
    latency: Duration,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
    ok: AtomicU64,
    limited: AtomicU64,
}

impl Downstream {
    /// `Ok(())` for a 200, `Err(retry_after)` for a 429.
    async fn get_customer(&self, mall: &str) -> Result<(), Duration> {
        tokio::time::sleep(self.latency / 2).await;
        let verdict = {
            let mut buckets = self.buckets.lock().unwrap();
            let now = Instant::now();
            let (tokens, last) = buckets.entry(mall.to_string()).or_insert((self.burst, now));
            *tokens =
                (*tokens + now.duration_since(*last).as_secs_f64() * self.rate).min(self.burst);
            *last = now;
            if *tokens >= 1.0 {
                *tokens -= 1.0;
                Ok(())
            } else {
                Err(Duration::from_secs_f64((1.0 - *tokens) / self.rate))
            }
        };
        tokio::time::sleep(self.latency / 2).await;
        match verdict {
            Ok(()) => self.ok.fetch_add(1, Ordering::Relaxed),
            Err(_) => self.limited.fetch_add(1, Ordering::Relaxed),
        };
        verdict
    }
}

/// Creates a fresh queue pair, bursts the events, runs the consumers until every event is
/// completed or dead-lettered, and reports.
pub async fn replay(client: &Client, scenario: &Scenario, mode: Mode) -> Report {
    let suffix = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let tag = match mode {
        Mode::Naive => "naive",
        Mode::AdmissionControl => "shaped",
    };
    let dlq = create(client, &format!("points-{tag}-{suffix}-dlq"), &[]).await;
    let dlq_arn = client
        .get_queue_attributes()
        .queue_url(&dlq)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .expect("GetQueueAttributes")
        .attributes
        .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
        .expect("QueueArn");
    let policy = serde_json::json!({
        "deadLetterTargetArn": dlq_arn,
        "maxReceiveCount": scenario.max_receive_count,
    })
    .to_string();
    let url = create(
        client,
        &format!("points-{tag}-{suffix}"),
        &[
            ("RedrivePolicy", policy),
            ("VisibilityTimeout", "30".into()),
        ],
    )
    .await;

    // The burst: interleaved malls, as the webhooks arrived.
    let mut bodies = Vec::new();
    let longest = scenario.malls.iter().map(|(_, n)| *n).max().unwrap_or(0);
    for i in 0..longest {
        for (mall, n) in &scenario.malls {
            if i < *n {
                bodies.push(
                    serde_json::json!({
                        "mall_id": mall,
                        "command": "points_updated",
                        "params": {"member_id": format!("m{i}"), "shop_no": 1},
                    })
                    .to_string(),
                );
            }
        }
    }
    for chunk in bodies.chunks(10) {
        let entries = chunk
            .iter()
            .enumerate()
            .map(|(i, body)| {
                SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(body)
                    .build()
                    .expect("entry")
            })
            .collect();
        client
            .send_message_batch()
            .queue_url(&url)
            .set_entries(Some(entries))
            .send()
            .await
            .expect("SendMessageBatch");
    }

    let downstream = Arc::new(Downstream {
        rate: f64::from(scenario.quota_per_second),
        burst: f64::from(scenario.downstream_burst),
        latency: scenario.downstream_latency,
        buckets: Mutex::default(),
        ok: AtomicU64::new(0),
        limited: AtomicU64::new(0),
    });
    let limiter = Arc::new(TenantRateLimiter::new(Quota::per_second(
        scenario.limiter_per_second,
    )));
    let started = Instant::now();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut stats: Vec<StatsHandle> = Vec::new();
    let mut runs = Vec::new();
    for w in 0..scenario.workers {
        let api = Arc::clone(&downstream);
        let handler = handler_fn(move |message: Message| {
            let api = Arc::clone(&api);
            async move {
                let event: serde_json::Value = match message.json() {
                    Ok(v) => v,
                    Err(e) => return Outcome::invalid(e.to_string()),
                };
                let mall = event["mall_id"].as_str().unwrap_or_default().to_string();
                match (api.get_customer(&mall).await, mode) {
                    (Ok(()), _) => Outcome::Done,
                    (Err(_), Mode::Naive) => {
                        Outcome::transient("http_429", "Too Many Requests from getCustomer")
                    }
                    (Err(retry_after), Mode::AdmissionControl) => {
                        Outcome::rate_limited(Some(retry_after))
                    }
                }
            }
        });
        let mut builder = Worker::builder(client.clone(), url.clone())
            .worker_id(format!("{tag}-{w}"))
            .concurrency(scenario.concurrency)
            .wait_time(Duration::from_secs(1))
            .delete_flush_interval(Duration::from_millis(10))
            .backoff(Backoff::exponential(
                scenario.backoff_base,
                Duration::from_secs(30),
            ));
        if mode == Mode::AdmissionControl {
            builder = builder
                .tenant_key(KeySource::json_field("mall_id"))
                .limiter(limiter.clone());
        }
        let worker = builder.build(handler).expect("worker");
        stats.push(worker.stats());
        let mut stop = stop_rx.clone();
        runs.push(tokio::spawn(worker.run(async move {
            let _ = stop.wait_for(|s| *s).await;
        })));
    }

    let events = scenario.events() as u64;
    loop {
        let completed: u64 = stats.iter().map(|s| s.snapshot().completed).sum();
        let dead = visible(client, &dlq).await;
        if completed + dead >= events || started.elapsed() > scenario.time_limit {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let elapsed = started.elapsed();
    let _ = stop_tx.send(true);
    let mut completed = 0;
    let mut deferred = 0;
    for run in runs {
        let s = run.await.expect("worker task").expect("worker run");
        completed += s.completed;
        deferred += s.deferred;
    }

    let mut dead_by_mall = BTreeMap::new();
    let mut dead_by_reason = BTreeMap::new();
    let dead_letters = visible(client, &dlq).await;
    loop {
        let got = client
            .receive_message()
            .queue_url(&dlq)
            .max_number_of_messages(10)
            .visibility_timeout(60)
            .message_attribute_names("All")
            .send()
            .await
            .expect("ReceiveMessage")
            .messages
            .unwrap_or_default();
        if got.is_empty() {
            break;
        }
        for m in got {
            let body: serde_json::Value =
                serde_json::from_str(m.body().unwrap_or("{}")).unwrap_or_default();
            let mall = body["mall_id"].as_str().unwrap_or("?").to_string();
            *dead_by_mall.entry(mall).or_insert(0) += 1;
            let reason = m
                .message_attributes
                .as_ref()
                .and_then(redrive_worker::Envelope::from_attributes)
                .map_or("no envelope".to_string(), |e| reason_name(e.reason));
            *dead_by_reason.entry(reason).or_insert(0) += 1;
        }
    }
    Report {
        mode,
        limiter_per_second: scenario.limiter_per_second,
        events: scenario.events(),
        completed,
        dead_letters,
        dead_by_mall,
        dead_by_reason,
        downstream_ok: downstream.ok.load(Ordering::Relaxed),
        downstream_429: downstream.limited.load(Ordering::Relaxed),
        deferred,
        elapsed,
    }
}

fn reason_name(reason: Reason) -> String {
    serde_json::to_value(reason)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

async fn create(client: &Client, name: &str, attrs: &[(&str, String)]) -> String {
    let mut req = client.create_queue().queue_name(name);
    for (k, v) in attrs {
        req = req.attributes(QueueAttributeName::from(*k), v);
    }
    req.send()
        .await
        .expect("CreateQueue")
        .queue_url
        .expect("queue url")
}

async fn visible(client: &Client, url: &str) -> u64 {
    client
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .send()
        .await
        .expect("GetQueueAttributes")
        .attributes
        .and_then(|a| {
            a.get(&QueueAttributeName::ApproximateNumberOfMessages)
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}
