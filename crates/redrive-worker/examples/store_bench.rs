//! Benchmarks of the shared stores (not a test): limiter decisions per second, the latency one
//! decision or idempotency call adds, and what they add per message to a worker.
//!
//! ```text
//! source tests/services/start.sh        # a Redis and a PostgreSQL on loopback
//! cargo run --release -p redrive-worker --example store_bench --features redis,postgres
//! cargo run --release -p redrive-worker --example store_bench --features redis,postgres -- \
//!     --redis redis://127.0.0.1:6379/ --postgres postgres://redrive@127.0.0.1:5432/postgres --seconds 5
//! ```
//!
//! 1. **Latency**, one client, one call at a time (2,000 calls each, after 200 warm-up calls):
//!    `try_reserve` (GCRA decision, admitted; also 500 calls each after 5 ms idle, as between
//!    messages), `try_pause`, idempotency `try_begin` (fresh key, acquired), `complete`, `extend`.
//! 2. **Throughput**: limiter decisions per second with 1 × 1, 1 × 16 and 4 × 16 (clients ×
//!    concurrent callers per client), over 100 tenants, for `--seconds` each; the same for
//!    idempotency claims (4 × 16, fresh keys).
//! 3. **Per message in a worker**: an in-process Redrive server, 200 messages, one worker with 1
//!    slot (so every store call is on the message's path) — in-memory limiter and idempotency vs
//!    the Redis and the PostgreSQL ones (limiter + idempotency on the same store), after a
//!    warm-up run, 5 rounds in turn, medians; the difference per message is what the stores add
//!    (one `try_reserve`, one `try_begin`, one `complete`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_sqs::config::{BehaviorVersion, Credentials, Region};
use redrive_worker::{
    Admission, Idempotency, IdempotencyStore, InMemoryIdempotencyStore, KeySource, Message,
    Outcome, Quota, SharedIdempotencyConfig, SharedIdempotencyStore, SharedLimiterConfig,
    SharedTenantLimiter, TenantLimiter, TenantRateLimiter, Worker, handler_fn,
    idempotency_from_url, limiter_from_url,
};

const TENANTS: usize = 100;
const LONG: Duration = Duration::from_secs(600);

fn namespace(what: &str) -> String {
    format!(
        "bench_{what}_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    )
}

async fn limiter(url: &str) -> SharedTenantLimiter {
    // A quota no caller reaches: every decision runs the whole GCRA and admits.
    let config =
        SharedLimiterConfig::new(Quota::per_second(1_000_000)).with_namespace(namespace("limiter"));
    limiter_from_url(url, config).await.expect("limiter store")
}

async fn idempotency(url: &str) -> SharedIdempotencyStore {
    let config = SharedIdempotencyConfig::new().with_namespace(namespace("idem"));
    idempotency_from_url(url, config)
        .await
        .expect("idempotency store")
}

struct Latencies(Vec<Duration>);

impl std::fmt::Display for Latencies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut v = self.0.clone();
        v.sort();
        let at = |q: f64| v[((v.len() as f64 - 1.0) * q).round() as usize].as_secs_f64() * 1e6;
        let mean = v.iter().map(Duration::as_secs_f64).sum::<f64>() / v.len() as f64 * 1e6;
        write!(
            f,
            "p50 {:>6.0} µs  p90 {:>6.0} µs  p99 {:>6.0} µs  mean {:>6.0} µs",
            at(0.5),
            at(0.9),
            at(0.99),
            mean
        )
    }
}

async fn time_calls<F, Fut>(n: usize, mut call: F) -> Latencies
where
    F: FnMut(usize) -> Fut,
    Fut: Future<Output = ()>,
{
    for i in 0..200 {
        call(1_000_000 + i).await;
    }
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let started = Instant::now();
        call(i).await;
        out.push(started.elapsed());
    }
    Latencies(out)
}

async fn latency(name: &str, url: &str) {
    let l = limiter(url).await;
    let reserve = time_calls(2000, |i| {
        let l = &l;
        async move {
            let a = l
                .try_reserve(&format!("t{}", i % TENANTS), Duration::from_secs(1))
                .await
                .expect("reserve");
            assert!(matches!(a, Admission::Reserved(_)));
        }
    })
    .await;
    let pause = time_calls(2000, |i| {
        let l = &l;
        async move {
            l.try_pause(&format!("p{}", i % TENANTS), Duration::from_millis(1))
                .await
                .expect("pause");
        }
    })
    .await;
    let s = idempotency(url).await;
    let run = uuid::Uuid::new_v4().simple().to_string();
    let begin = time_calls(2000, |i| {
        let (s, run) = (&s, &run);
        async move {
            s.try_begin(&format!("{run}-{i}"), "bench", LONG)
                .await
                .expect("begin");
        }
    })
    .await;
    let extend = time_calls(2000, |i| {
        let (s, run) = (&s, &run);
        async move {
            s.extend(&format!("{run}-{i}"), "bench", LONG)
                .await
                .expect("extend");
        }
    })
    .await;
    let complete = time_calls(2000, |i| {
        let (s, run) = (&s, &run);
        async move {
            s.complete(&format!("{run}-{i}"), "bench", LONG)
                .await
                .expect("complete");
        }
    })
    .await;
    // The same decision after 5 ms idle each time (as between messages in a worker).
    let mut idle = Vec::with_capacity(500);
    for i in 0..500 {
        tokio::time::sleep(Duration::from_millis(5)).await;
        let started = Instant::now();
        l.try_reserve(&format!("t{}", i % TENANTS), Duration::from_secs(1))
            .await
            .expect("reserve");
        idle.push(started.elapsed());
    }
    let idle = Latencies(idle);
    println!("{name:<10} limiter try_reserve       {reserve}");
    println!("{name:<10}   … after 5 ms idle       {idle}");
    println!("{name:<10} limiter try_pause         {pause}");
    println!("{name:<10} idempotency try_begin     {begin}");
    println!("{name:<10} idempotency extend        {extend}");
    println!("{name:<10} idempotency complete      {complete}");
}

async fn throughput(name: &str, url: &str, seconds: u64) {
    for (clients, callers) in [(1usize, 1usize), (1, 16), (4, 16)] {
        let mut limiters = Vec::new();
        for _ in 0..clients {
            limiters.push(Arc::new(limiter(url).await));
        }
        let done = Arc::new(AtomicU64::new(0));
        let deadline = Instant::now() + Duration::from_secs(seconds);
        let mut tasks = tokio::task::JoinSet::new();
        for (c, l) in limiters.iter().enumerate() {
            for k in 0..callers {
                let (l, done) = (Arc::clone(l), Arc::clone(&done));
                tasks.spawn(async move {
                    let mut i = c * 7 + k;
                    while Instant::now() < deadline {
                        l.try_reserve(&format!("t{}", i % TENANTS), Duration::from_secs(1))
                            .await
                            .expect("reserve");
                        done.fetch_add(1, Ordering::Relaxed);
                        i += 1;
                    }
                });
            }
        }
        while tasks.join_next().await.is_some() {}
        let rate = done.load(Ordering::Relaxed) as f64 / seconds as f64;
        println!(
            "{name:<10} limiter decisions/s, {clients} client(s) × {callers:>2} callers: {rate:>8.0}"
        );
    }
    let mut stores = Vec::new();
    for _ in 0..4 {
        stores.push(Arc::new(idempotency(url).await));
    }
    let done = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = tokio::task::JoinSet::new();
    for s in &stores {
        for _ in 0..16 {
            let (s, done) = (Arc::clone(s), Arc::clone(&done));
            tasks.spawn(async move {
                let run = uuid::Uuid::new_v4().simple().to_string();
                let mut i = 0u64;
                while Instant::now() < deadline {
                    s.try_begin(&format!("{run}-{i}"), "bench", LONG)
                        .await
                        .expect("begin");
                    done.fetch_add(1, Ordering::Relaxed);
                    i += 1;
                }
            });
        }
    }
    while tasks.join_next().await.is_some() {}
    let rate = done.load(Ordering::Relaxed) as f64 / seconds as f64;
    println!("{name:<10} idempotency claims/s, 4 clients × 16 callers: {rate:>8.0}");
}

const MESSAGES: usize = 200;
const ROUNDS: usize = 5;

async fn per_message(
    endpoint: &str,
    client: &aws_sdk_sqs::Client,
    limiter: Arc<dyn TenantLimiter>,
    store: Arc<dyn IdempotencyStore>,
) -> Duration {
    let suffix = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let dlq = client
        .create_queue()
        .queue_name(format!("bench-{suffix}-dlq"))
        .send()
        .await
        .expect("create dlq")
        .queue_url
        .expect("url");
    let queue = client
        .create_queue()
        .queue_name(format!("bench-{suffix}"))
        .send()
        .await
        .expect("create queue")
        .queue_url
        .expect("url");
    for chunk in (0..MESSAGES).collect::<Vec<_>>().chunks(10) {
        let entries = chunk.iter().map(|i| {
            aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder()
                .id(i.to_string())
                .message_body(format!(r#"{{"tenant":"t{}","n":{i}}}"#, i % 10))
                .build()
                .expect("entry")
        });
        client
            .send_message_batch()
            .queue_url(&queue)
            .set_entries(Some(entries.collect()))
            .send()
            .await
            .expect("send");
    }
    let _ = endpoint;
    let done = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&done);
    let worker = Worker::builder(client.clone(), &queue)
        .dead_letter_queue(dlq)
        .concurrency(1)
        .wait_time(Duration::from_secs(1))
        .delete_flush_interval(Duration::from_millis(1))
        .tenant_key(KeySource::json_field("tenant"))
        .limiter(limiter)
        .idempotency(Idempotency::new(store).key(KeySource::json_field("n")))
        .build(handler_fn(move |_m: Message| {
            counter.fetch_add(1, Ordering::Relaxed);
            async { Outcome::Done }
        }))
        .expect("worker");
    let started = Instant::now();
    let watched = Arc::clone(&done);
    let stats = worker
        .run(async move {
            while watched.load(Ordering::Relaxed) < MESSAGES as u64 {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
        .await
        .expect("run");
    assert_eq!(stats.completed, MESSAGES as u64, "{stats:?}");
    started.elapsed()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut redis = std::env::var("REDRIVE_TEST_REDIS_URL").ok();
    let mut postgres = std::env::var("REDRIVE_TEST_POSTGRES_URL").ok();
    let mut seconds = 3u64;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--redis" => redis = args.next(),
            "--postgres" => postgres = args.next(),
            "--seconds" => {
                seconds = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--seconds N")
            }
            "-h" | "--help" => {
                println!("usage: store_bench [--redis URL] [--postgres URL] [--seconds N]");
                return;
            }
            other => panic!("unknown argument {other}; see --help"),
        }
    }
    let stores: Vec<(&str, String)> = [("Redis", redis), ("PostgreSQL", postgres)]
        .into_iter()
        .filter_map(|(n, u)| Some((n, u?)))
        .collect();
    assert!(
        !stores.is_empty(),
        "no store: pass --redis/--postgres or source tests/services/start.sh"
    );
    println!("## 1. latency of one call (one client, sequential)");
    for (name, url) in &stores {
        latency(name, url).await;
    }
    println!("\n## 2. throughput ({seconds} s per row)");
    for (name, url) in &stores {
        throughput(name, url, seconds).await;
    }

    println!("\n## 3. per message in a worker ({MESSAGES} messages, 1 slot, in-process Redrive)");
    let server = redrive_server::Server::bind(redrive_server::ServerConfig {
        port: 0,
        ..Default::default()
    })
    .await
    .expect("bind server");
    let endpoint = format!("http://{}", server.local_addr().expect("addr"));
    tokio::spawn(server.serve(std::future::pending()));
    let config = aws_sdk_sqs::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(&endpoint)
        .credentials_provider(Credentials::new("test", "test", None, None, "static"))
        .http_client(aws_smithy_http_client::Builder::new().build_http())
        .build();
    let client = aws_sdk_sqs::Client::from_conf(config);
    let quota = Quota::per_second(1_000_000);
    // A warm-up run, then ROUNDS rounds of every variant in turn; the median of each.
    per_message(
        &endpoint,
        &client,
        Arc::new(TenantRateLimiter::new(quota)),
        Arc::new(InMemoryIdempotencyStore::new()),
    )
    .await;
    let mut runs: Vec<(&str, Vec<f64>)> = vec![("in-memory", Vec::new())];
    runs.extend(stores.iter().map(|(name, _)| (*name, Vec::new())));
    let per = |d: Duration| d.as_secs_f64() * 1e6 / MESSAGES as f64;
    for _ in 0..ROUNDS {
        let took = per_message(
            &endpoint,
            &client,
            Arc::new(TenantRateLimiter::new(quota)),
            Arc::new(InMemoryIdempotencyStore::new()),
        )
        .await;
        runs[0].1.push(per(took));
        for (i, (_, url)) in stores.iter().enumerate() {
            let took = per_message(
                &endpoint,
                &client,
                Arc::new(limiter(url).await),
                Arc::new(idempotency(url).await),
            )
            .await;
            runs[i + 1].1.push(per(took));
        }
    }
    let median = |v: &[f64]| {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let baseline = median(&runs[0].1);
    for (name, v) in &runs {
        let m = median(v);
        println!(
            "{name:<10} median {m:>7.0} µs per message (runs {}): {:+.0} µs vs in-memory",
            v.iter()
                .map(|x| format!("{x:.0}"))
                .collect::<Vec<_>>()
                .join(", "),
            m - baseline
        );
    }
}
