//! A worker process killed mid-batch (SIGKILL): two worker processes (this test binary re-run as
//! `services::killed::worker_process`) consume one queue of an in-process Redrive server, sharing
//! an idempotency store on Redis or PostgreSQL. Every order is sent twice (a producer
//! duplicate). Each handler announces itself to a fake downstream (`/begin`), works for 1.5 s,
//! then applies its side effect (`/effect`) and returns `Done`. Process A is killed while its
//! first batch is in its handlers: its messages come back when their visibility runs out, its
//! idempotency claims block them (the message is deferred) until their lease runs out, and then
//! process B (idle by then) runs them. Every order's effect happens exactly once.

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_sqs::types::QueueAttributeName;
use redrive_worker::{
    Backoff, Idempotency, KeySource, Message, Outcome, SharedIdempotencyConfig, Worker, handler_fn,
    idempotency_from_url,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::{fresh_namespace, postgres_url, redis_url};
use crate::common::{Env, client_for};

const ORDERS: usize = 12;
/// A's slots: its first batch is 4 orders. B has room for everything else at once, so it is
/// idle when A's messages come back and the only thing holding them is A's claim.
const SLOTS_A: usize = 4;
const SLOTS_B: usize = 16;
const WORK: Duration = Duration::from_millis(1500);
/// Twice the visibility timeout: A's messages are visible again well before its claims expire.
const LEASE: Duration = Duration::from_secs(4);
const VISIBILITY: Duration = Duration::from_secs(2);

const ENV_SQS: &str = "REDRIVE_KILLED_SQS";
const ENV_QUEUE: &str = "REDRIVE_KILLED_QUEUE";
const ENV_DOWNSTREAM: &str = "REDRIVE_KILLED_DOWNSTREAM";
const ENV_STORE: &str = "REDRIVE_KILLED_STORE";
const ENV_NAMESPACE: &str = "REDRIVE_KILLED_NAMESPACE";
const ENV_SLOTS: &str = "REDRIVE_KILLED_SLOTS";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Call {
    Begin,
    Effect,
}

#[derive(Debug, Clone)]
struct Record {
    call: Call,
    order: String,
    pid: u32,
    at: Instant,
}

/// The fake downstream: records every `/begin/<order>/<pid>` and `/effect/<order>/<pid>`.
struct Downstream {
    addr: std::net::SocketAddr,
    log: Arc<Mutex<Vec<Record>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Downstream {
    async fn start() -> Downstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let log = Arc::new(Mutex::new(Vec::new()));
        let shared = Arc::clone(&log);
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let log = Arc::clone(&shared);
                tokio::spawn(async move {
                    let _ = serve_one(stream, &log).await;
                });
            }
        });
        Downstream { addr, log, task }
    }

    fn records(&self) -> Vec<Record> {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for Downstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve_one(mut stream: TcpStream, log: &Mutex<Vec<Record>>) -> std::io::Result<()> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 512];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let head = String::from_utf8_lossy(&buf);
    let path = head.split_whitespace().nth(1).unwrap_or_default();
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    if let [call, order, pid] = parts[..] {
        let call = if call == "begin" {
            Call::Begin
        } else {
            Call::Effect
        };
        log.lock().unwrap().push(Record {
            call,
            order: order.to_string(),
            pid: pid.parse().unwrap_or(0),
            at: Instant::now(),
        });
    }
    stream
        .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        .await?;
    stream.shutdown().await
}

async fn call(downstream: &str, path: &str) -> std::io::Result<()> {
    let mut stream = TcpStream::connect(downstream).await?;
    let request =
        format!("POST {path} HTTP/1.1\r\nHost: {downstream}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    if response.starts_with("HTTP/1.1 200") {
        Ok(())
    } else {
        Err(std::io::Error::other(response))
    }
}

/// One worker process (run by the tests below, never on its own): consumes until its stdin
/// closes or it is killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a child process of the killed-worker tests"]
async fn worker_process() {
    let var = |name| std::env::var(name).unwrap_or_else(|_| panic!("{name} unset"));
    let (sqs, queue, downstream) = (var(ENV_SQS), var(ENV_QUEUE), var(ENV_DOWNSTREAM));
    let store = idempotency_from_url(
        &var(ENV_STORE),
        SharedIdempotencyConfig::new().with_namespace(var(ENV_NAMESPACE)),
    )
    .await
    .expect("idempotency store");
    let pid = std::process::id();
    let handler = handler_fn(move |message: Message| {
        let downstream = downstream.clone();
        async move {
            let order: serde_json::Value = match message.json() {
                Ok(v) => v,
                Err(e) => return Outcome::invalid(e.to_string()),
            };
            let order = order["order_id"].as_str().unwrap_or_default().to_string();
            if let Err(e) = call(&downstream, &format!("/begin/{order}/{pid}")).await {
                return Outcome::transient("io", e.to_string());
            }
            tokio::time::sleep(WORK).await;
            match call(&downstream, &format!("/effect/{order}/{pid}")).await {
                Ok(()) => Outcome::Done,
                Err(e) => Outcome::transient("io", e.to_string()),
            }
        }
    });
    let worker = Worker::builder(client_for(&sqs), queue)
        .worker_id(format!("killed-{pid}"))
        .concurrency(var(ENV_SLOTS).parse().expect("slots"))
        .wait_time(Duration::from_secs(1))
        .visibility_timeout(VISIBILITY)
        .delete_flush_interval(Duration::from_millis(10))
        // An in-progress key defers its message by the backoff's first ceiling (1 s).
        .backoff(Backoff::exponential(
            Duration::from_millis(500),
            Duration::from_secs(5),
        ))
        .idempotency(
            Idempotency::new(Arc::new(store))
                .key(KeySource::json_field("order_id"))
                .lease(LEASE),
        )
        .build(handler)
        .expect("worker");
    let stats = worker
        .run(async {
            let _ = tokio::task::spawn_blocking(|| {
                let mut sink = Vec::new();
                std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink)
            })
            .await;
        })
        .await
        .expect("worker run");
    println!(
        "STATS completed={} deferred={} duplicates={}",
        stats.completed, stats.deferred, stats.duplicates
    );
}

struct Process(Child);

impl Process {
    /// Closes stdin (graceful shutdown), waits, and returns the `STATS` line's counters.
    fn finish(mut self) -> BTreeMap<String, u64> {
        drop(self.0.stdin.take());
        let mut out = String::new();
        if let Some(mut stdout) = self.0.stdout.take() {
            let _ = std::io::Read::read_to_string(&mut stdout, &mut out);
        }
        out.lines()
            .filter_map(|l| l.strip_prefix("STATS "))
            .flat_map(|l| l.split_whitespace())
            .filter_map(|kv| kv.split_once('='))
            .filter_map(|(k, v)| Some((k.to_string(), v.parse().ok()?)))
            .collect()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        drop(self.0.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline && matches!(self.0.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn remaining(env: &Env, url: &str) -> u64 {
    let attrs = env
        .client
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesDelayed)
        .send()
        .await
        .expect("GetQueueAttributes")
        .attributes
        .unwrap_or_default();
    attrs.values().filter_map(|v| v.parse::<u64>().ok()).sum()
}

async fn killed_worker_claims_expire_and_another_finishes(store_url: &str) {
    let env = Env::redrive().await;
    let (queue, dlq) = env.queue_with_dlq("killed", 5, 2).await;
    // Every order twice, the copies far apart.
    for copy in 0..2 {
        for i in 0..ORDERS {
            let body = serde_json::json!({"order_id": format!("o{i}"), "copy": copy});
            env.send(&queue, &body.to_string()).await;
        }
    }
    let downstream = Downstream::start().await;
    let namespace = fresh_namespace();
    let exe = std::env::current_exe().expect("test binary");
    let spawn = |slots: usize| {
        Process(
            Command::new(&exe)
                .args([
                    "services::killed::worker_process",
                    "--exact",
                    "--ignored",
                    "--nocapture",
                ])
                .env(ENV_SQS, &env.endpoint)
                .env(ENV_QUEUE, &queue)
                .env(ENV_DOWNSTREAM, downstream.addr.to_string())
                .env(ENV_STORE, store_url)
                .env(ENV_NAMESPACE, &namespace)
                .env(ENV_SLOTS, slots.to_string())
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .expect("spawn worker process"),
        )
    };
    let started = Instant::now();
    let mut a = spawn(SLOTS_A);
    let a_pid = a.0.id();
    // Kill A 400 ms after its first handler began: its first batch is in the 1.5 s of work,
    // before any of its effects.
    let first_begin = loop {
        let first = downstream
            .records()
            .into_iter()
            .find(|r| r.pid == a_pid && r.call == Call::Begin);
        if let Some(r) = first {
            break r.at;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "A never began");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let b = spawn(SLOTS_B);
    tokio::time::sleep_until((first_begin + Duration::from_millis(400)).into()).await;
    a.0.kill().expect("SIGKILL A");
    let killed_at = Instant::now();
    let _ = a.0.wait();
    let a_began: BTreeSet<String> = downstream
        .records()
        .into_iter()
        .filter(|r| r.pid == a_pid)
        .map(|r| {
            assert_eq!(
                r.call,
                Call::Begin,
                "A applied an effect before it was killed"
            );
            r.order
        })
        .collect();
    assert!(!a_began.is_empty());

    let all_done = |records: &[Record]| {
        records
            .iter()
            .filter(|r| r.call == Call::Effect)
            .map(|r| r.order.clone())
            .collect::<BTreeSet<_>>()
            .len()
            == ORDERS
    };
    while !all_done(&downstream.records()) {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "not every order was applied: {:?}",
            downstream.records()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Let the duplicates and any late retry run into the completed keys.
    while remaining(&env, &queue).await > 0 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "queue not drained"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let elapsed = started.elapsed();
    let b_stats = b.finish();

    let records = downstream.records();
    let mut effects: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    let mut begins: BTreeMap<String, Vec<(u32, Instant)>> = BTreeMap::new();
    for r in &records {
        match r.call {
            Call::Effect => effects.entry(r.order.clone()).or_default().push(r.pid),
            Call::Begin => begins
                .entry(r.order.clone())
                .or_default()
                .push((r.pid, r.at)),
        }
    }
    eprintln!(
        "store {store_url}: A (pid {a_pid}) began {a_began:?} and was killed {:.0} ms later; \
         {} begins, {} effects, all applied in {:.1} s; B {b_stats:?}",
        (killed_at - first_begin).as_secs_f64() * 1000.0,
        records.iter().filter(|r| r.call == Call::Begin).count(),
        records.iter().filter(|r| r.call == Call::Effect).count(),
        elapsed.as_secs_f64()
    );
    // Exactly once, never by the killed process.
    for i in 0..ORDERS {
        let order = format!("o{i}");
        let by = effects.get(&order).cloned().unwrap_or_default();
        assert_eq!(by.len(), 1, "order {order} applied by {by:?}");
        assert_ne!(by[0], a_pid, "order {order}");
    }
    // A's claims blocked B until their lease ran out: A claimed each key just before its
    // `/begin` and was killed before its first renewal (lease / 3), so the claims held until
    // about first_begin + LEASE, while the messages were visible again at first_begin +
    // VISIBILITY (B, idle, received them then and deferred them: the key was in progress).
    for order in &a_began {
        let takeover = begins[order]
            .iter()
            .filter(|(pid, _)| *pid != a_pid)
            .map(|(_, at)| *at)
            .min()
            .unwrap_or_else(|| panic!("{order} never taken over"));
        let after = takeover.saturating_duration_since(first_begin);
        eprintln!(
            "  {order}: taken over {:.2} s after A began it (visibility {VISIBILITY:?}, lease {LEASE:?})",
            after.as_secs_f64()
        );
        assert!(
            after >= LEASE - Duration::from_millis(300),
            "{order} taken over {after:?} after A began it, before A's lease ran out"
        );
    }
    // Every order began at most twice: once in A (killed), once in B — the duplicate copies
    // met the completed key and never ran the handler.
    for (order, b) in &begins {
        let expected = if a_began.contains(order) { 2 } else { 1 };
        assert_eq!(b.len(), expected, "order {order} began {b:?}");
    }
    // B met A's live claims (deferred them), completed every order, and deleted every
    // second copy as a duplicate.
    assert!(b_stats["deferred"] >= 1, "B {b_stats:?}");
    assert_eq!(b_stats["completed"], ORDERS as u64, "B {b_stats:?}");
    assert_eq!(b_stats["duplicates"], ORDERS as u64, "B {b_stats:?}");
    assert_eq!(remaining(&env, &dlq).await, 0, "dead letters");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_worker_redis_claims_expire_and_another_finishes_exactly_once() {
    killed_worker_claims_expire_and_another_finishes(&redis_url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_worker_postgres_claims_expire_and_another_finishes_exactly_once() {
    killed_worker_claims_expire_and_another_finishes(&postgres_url()).await;
}
