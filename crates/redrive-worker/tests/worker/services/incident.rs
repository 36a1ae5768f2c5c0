//! Seed 000's incident across processes: 4 worker processes (this test binary re-run as
//! `worker_process`) consume one queue of an in-process Redrive server and call a fake Cafe24
//! that allows 10 requests per second per mall and answers 429 above it. With the in-process
//! limiter each process keeps its own 10/s and together they exceed the quota; with the Redis or
//! the PostgreSQL limiter no second exceeds it and nothing dead-letters.

use std::collections::BTreeMap;
use std::fmt;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_sqs::types::{QueueAttributeName, SendMessageBatchRequestEntry};
use redrive_worker::{
    KeySource, Message, Outcome, Quota, SharedLimiterConfig, TenantLimiter, TenantRateLimiter,
    Worker, handler_fn, limiter_from_url,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::{fresh_namespace, postgres_url, redis_url};
use crate::common::{Env, client_for};

const QUOTA_PER_SECOND: u32 = 10;
const PROCESSES: usize = 4;
const SLOTS_PER_PROCESS: usize = 2;
const MALLS: [(&str, usize); 2] = [("drlabnosh", 40), ("chosunhnb", 30)];

/// The fake Cafe24 Admin API: counts requests per mall per second (since it started) and
/// answers 429 with `Retry-After: 1` to every request beyond the quota within its second.
#[derive(Default)]
struct Cafe24Counts {
    per_second: BTreeMap<(String, u64), u32>,
    ok: u64,
    too_many: u64,
}

struct FakeCafe24 {
    addr: std::net::SocketAddr,
    counts: Arc<Mutex<Cafe24Counts>>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeCafe24 {
    async fn start() -> FakeCafe24 {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let counts = Arc::new(Mutex::new(Cafe24Counts::default()));
        let started = Instant::now();
        let shared = Arc::clone(&counts);
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let counts = Arc::clone(&shared);
                tokio::spawn(async move {
                    let _ = serve_one(stream, &counts, started).await;
                });
            }
        });
        FakeCafe24 { addr, counts, task }
    }

    fn ok(&self) -> u64 {
        self.counts.lock().unwrap().ok
    }
}

impl Drop for FakeCafe24 {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve_one(
    mut stream: TcpStream,
    counts: &Mutex<Cafe24Counts>,
    started: Instant,
) -> std::io::Result<()> {
    let head = read_head(&mut stream).await?;
    // GET /api/v2/admin/customers?mall_id=<mall>
    let mall = head
        .split_whitespace()
        .nth(1)
        .and_then(|path| path.split_once("mall_id="))
        .map_or("?", |(_, m)| m)
        .to_string();
    let over = {
        let mut counts = counts.lock().unwrap();
        let second = started.elapsed().as_secs();
        let n = counts.per_second.entry((mall, second)).or_insert(0);
        *n += 1;
        let over = *n > QUOTA_PER_SECOND;
        if over {
            counts.too_many += 1;
        } else {
            counts.ok += 1;
        }
        over
    };
    let response: &[u8] = if over {
        b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    } else {
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}"
    };
    stream.write_all(response).await?;
    stream.shutdown().await
}

async fn read_head(stream: &mut TcpStream) -> std::io::Result<String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 512];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

/// The worker's downstream call: `Ok` for a 200, `Err(retry_after)` for a 429.
async fn get_customer(cafe24: &str, mall: &str) -> std::io::Result<Result<(), Duration>> {
    let mut stream = TcpStream::connect(cafe24).await?;
    let request = format!(
        "GET /api/v2/admin/customers?mall_id={mall} HTTP/1.1\r\nHost: {cafe24}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    if response.starts_with("HTTP/1.1 200") {
        return Ok(Ok(()));
    }
    let retry_after = response
        .lines()
        .find_map(|l| l.strip_prefix("Retry-After: "))
        .and_then(|s| s.trim().parse().ok())
        .map_or(Duration::from_secs(1), Duration::from_secs);
    Ok(Err(retry_after))
}

const ENV_SQS: &str = "REDRIVE_INCIDENT_SQS";
const ENV_QUEUE: &str = "REDRIVE_INCIDENT_QUEUE";
const ENV_CAFE24: &str = "REDRIVE_INCIDENT_CAFE24";
const ENV_LIMITER: &str = "REDRIVE_INCIDENT_LIMITER";
const ENV_NAMESPACE: &str = "REDRIVE_INCIDENT_NAMESPACE";

/// One worker process of the replay (run by `incident_across_processes`, never on its own):
/// consumes until its stdin closes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a child process of incident_across_processes"]
async fn worker_process() {
    let var = |name| std::env::var(name).unwrap_or_else(|_| panic!("{name} unset"));
    let (sqs, queue, cafe24) = (var(ENV_SQS), var(ENV_QUEUE), var(ENV_CAFE24));
    let limiter_url = var(ENV_LIMITER);
    let quota = Quota::per_second(QUOTA_PER_SECOND);
    let limiter: Arc<dyn TenantLimiter> = if limiter_url == "memory" {
        Arc::new(TenantRateLimiter::new(quota))
    } else {
        let config = SharedLimiterConfig::new(quota).with_namespace(var(ENV_NAMESPACE));
        Arc::new(
            limiter_from_url(&limiter_url, config)
                .await
                .expect("limiter store"),
        )
    };
    let handler = handler_fn(move |message: Message| {
        let cafe24 = cafe24.clone();
        async move {
            let event: serde_json::Value = match message.json() {
                Ok(v) => v,
                Err(e) => return Outcome::invalid(e.to_string()),
            };
            let mall = event["mall_id"].as_str().unwrap_or_default().to_string();
            match get_customer(&cafe24, &mall).await {
                Ok(Ok(())) => Outcome::Done,
                Ok(Err(retry_after)) => Outcome::rate_limited(Some(retry_after)),
                Err(e) => Outcome::transient("io", e.to_string()),
            }
        }
    });
    let worker = Worker::builder(client_for(&sqs), queue)
        .worker_id(format!("incident-{}", std::process::id()))
        .concurrency(SLOTS_PER_PROCESS)
        .wait_time(Duration::from_secs(1))
        .delete_flush_interval(Duration::from_millis(10))
        .tenant_key(KeySource::json_field("mall_id"))
        .limiter(limiter)
        .build(handler)
        .expect("worker");
    worker
        .run(async {
            let _ = tokio::task::spawn_blocking(|| {
                let mut sink = Vec::new();
                std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink)
            })
            .await;
        })
        .await
        .expect("worker run");
}

struct Replay {
    limiter: &'static str,
    events: usize,
    completed: u64,
    too_many: u64,
    dead_letters: u64,
    /// Highest requests in one second, per mall.
    peak_per_second: BTreeMap<String, u32>,
    seconds_over_quota: usize,
    elapsed: Duration,
}

impl fmt::Display for Replay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{PROCESSES} processes × {SLOTS_PER_PROCESS} slots, quota {QUOTA_PER_SECOND}/s per mall, limiter {:<10} events {} completed {} | 429s {} | seconds over quota {} | peak requests/s per mall {:?} | dead letters {} | {:.1} s",
            self.limiter,
            self.events,
            self.completed,
            self.too_many,
            self.seconds_over_quota,
            self.peak_per_second,
            self.dead_letters,
            self.elapsed.as_secs_f64()
        )
    }
}

struct Children(Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for child in &mut self.0 {
            drop(child.stdin.take());
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        for child in &mut self.0 {
            while Instant::now() < deadline && matches!(child.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

async fn replay(limiter: &'static str, limiter_url: &str) -> Replay {
    let env = Env::redrive().await;
    let endpoint = env.endpoint.clone();
    let (queue, dlq) = env.queue_with_dlq("points", 3, 30).await;
    let mut bodies = Vec::new();
    let longest = MALLS.iter().map(|(_, n)| *n).max().unwrap_or(0);
    for i in 0..longest {
        for (mall, n) in MALLS {
            if i < n {
                bodies.push(
                    serde_json::json!({"mall_id": mall, "command": "points_updated", "member_id": i})
                        .to_string(),
                );
            }
        }
    }
    for chunk in bodies.chunks(10) {
        let entries = chunk.iter().enumerate().map(|(i, body)| {
            SendMessageBatchRequestEntry::builder()
                .id(i.to_string())
                .message_body(body)
                .build()
                .expect("entry")
        });
        env.client
            .send_message_batch()
            .queue_url(&queue)
            .set_entries(Some(entries.collect()))
            .send()
            .await
            .expect("SendMessageBatch");
    }

    let cafe24 = FakeCafe24::start().await;
    let namespace = fresh_namespace();
    let exe = std::env::current_exe().expect("test binary");
    let started = Instant::now();
    let children = Children(
        (0..PROCESSES)
            .map(|_| {
                Command::new(&exe)
                    .args(["services::incident::worker_process", "--exact", "--ignored"])
                    .env(ENV_SQS, &endpoint)
                    .env(ENV_QUEUE, &queue)
                    .env(ENV_CAFE24, cafe24.addr.to_string())
                    .env(ENV_LIMITER, limiter_url)
                    .env(ENV_NAMESPACE, &namespace)
                    .stdin(Stdio::piped())
                    .stdout(Stdio::null())
                    .spawn()
                    .expect("spawn worker process")
            })
            .collect(),
    );
    let events = bodies.len() as u64;
    loop {
        let dead = dead_letters(&env, &dlq).await;
        if cafe24.ok() + dead >= events || started.elapsed() > Duration::from_secs(90) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let elapsed = started.elapsed();
    drop(children);
    let dead_letters = dead_letters(&env, &dlq).await;
    let counts = cafe24.counts.lock().unwrap();
    let mut peak_per_second = BTreeMap::new();
    for ((mall, _), n) in &counts.per_second {
        let peak = peak_per_second.entry(mall.clone()).or_insert(0);
        *peak = (*peak).max(*n);
    }
    Replay {
        limiter,
        events: bodies.len(),
        completed: counts.ok,
        too_many: counts.too_many,
        dead_letters,
        seconds_over_quota: counts
            .per_second
            .values()
            .filter(|n| **n > QUOTA_PER_SECOND)
            .count(),
        peak_per_second,
        elapsed,
    }
}

async fn dead_letters(env: &Env, dlq: &str) -> u64 {
    let attrs = env
        .client
        .get_queue_attributes()
        .queue_url(dlq)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .expect("GetQueueAttributes")
        .attributes
        .unwrap_or_default();
    attrs.values().filter_map(|v| v.parse::<u64>().ok()).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incident_across_processes_in_process_limiter_exceeds_the_quota() {
    let run = replay("in-process", "memory").await;
    eprintln!("{run}");
    assert!(run.seconds_over_quota > 0, "{run}");
    assert!(run.too_many > 0, "{run}");
}

async fn shared_limiter_holds_the_quota(name: &'static str, url: &str) {
    let run = replay(name, url).await;
    eprintln!("{run}");
    assert_eq!(run.seconds_over_quota, 0, "{run}");
    assert_eq!(run.too_many, 0, "{run}");
    assert_eq!(run.dead_letters, 0, "{run}");
    assert_eq!(run.completed, run.events as u64, "{run}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incident_across_processes_redis_limiter_holds_the_quota() {
    shared_limiter_holds_the_quota("Redis", &redis_url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incident_across_processes_postgres_limiter_holds_the_quota() {
    shared_limiter_holds_the_quota("PostgreSQL", &postgres_url()).await;
}
