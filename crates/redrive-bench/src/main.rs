//! `redrive-bench`: a bounded load generator for SQS-compatible endpoints, speaking the AWS
//! JSON 1.0 protocol over HTTP/1.1 keep-alive (one connection pool shared by all workers).
//!
//! Patterns:
//! - `send`: workers send until `--messages` are sent;
//! - `drain`: the queue is pre-filled with `--messages` (untimed), then workers receive and
//!   delete until it is empty;
//! - `interleaved`: each worker loops send → receive → delete (queue depth stays near
//!   `--depth`, which is pre-filled untimed).
//!
//! Prints messages/s and per-call latency percentiles (p50/p99/p99.9) per action. Bounded on
//! purpose: at most 1,000,000 messages and 256 workers, and it refuses non-loopback endpoints
//! unless `--allow-remote` is given, so a typo cannot load a shared machine or a real account.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Parser, ValueEnum};
use serde_json::{Value, json};
use tokio::sync::Mutex;

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
enum Pattern {
    Send,
    Drain,
    Interleaved,
}

#[derive(Debug, Parser)]
#[command(
    name = "redrive-bench",
    version,
    about = "Load generator for SQS-compatible servers"
)]
struct Args {
    /// Endpoint URL. Repeat it to spread the calls over several servers sharing one store:
    /// each call goes to the next endpoint in turn.
    #[arg(long = "endpoint", default_value = "http://127.0.0.1:9324")]
    endpoints: Vec<String>,
    #[arg(long, value_enum, default_value = "interleaved")]
    pattern: Pattern,
    /// Messages to send (send), drain (drain) or cycle (interleaved).
    #[arg(long, default_value_t = 20_000)]
    messages: u64,
    /// Body size in bytes.
    #[arg(long, default_value_t = 100)]
    size: usize,
    /// Messages per call: 1 uses SendMessage/DeleteMessage, 2..10 the batch actions.
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Concurrent workers.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Messages pre-filled (untimed) before an interleaved run.
    #[arg(long, default_value_t = 0)]
    depth: u64,
    /// Stop sending after this many seconds even if `--messages` are not all sent (send and
    /// interleaved), so slow targets can be measured with the same command.
    #[arg(long)]
    duration: Option<f64>,
    /// Keep what the queue holds instead of purging it first (measure at an existing depth).
    #[arg(long)]
    no_purge: bool,
    /// Print one machine-readable summary line (`RESULT pattern=… msgs_per_s=… …`).
    #[arg(long)]
    summary: bool,
    /// Queue name (created if missing; purged before the run).
    #[arg(long, default_value = "redrive-bench")]
    queue: String,
    /// Allow an endpoint that is not on loopback.
    #[arg(long)]
    allow_remote: bool,
}

/// Latency samples per action, in microseconds.
#[derive(Default)]
struct Samples {
    send: Vec<u64>,
    receive: Vec<u64>,
    delete: Vec<u64>,
}

struct Client {
    http: reqwest::Client,
    endpoints: Vec<String>,
    next: AtomicU64,
}

impl Client {
    async fn call(&self, action: &str, body: Value) -> Result<Value> {
        let i = self.next.fetch_add(1, Ordering::Relaxed) as usize % self.endpoints.len();
        let resp = self
            .http
            .post(&self.endpoints[i])
            .header("content-type", "application/x-amz-json-1.0")
            .header("x-amz-target", format!("AmazonSQS.{action}"))
            .header(
                "authorization",
                "AWS4-HMAC-SHA256 Credential=bench/20260101/us-east-1/sqs/aws4_request, SignedHeaders=host, Signature=0",
            )
            .body(body.to_string())
            .send()
            .await
            .with_context(|| format!("{action}: request failed"))?;
        let status = resp.status();
        let text = resp.text().await?;
        if !status.is_success() {
            bail!("{action}: HTTP {status}: {text}");
        }
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }
}

fn body(size: usize, n: u64) -> String {
    let mut s = format!("message {n} ");
    while s.len() < size {
        s.push('x');
    }
    s.truncate(size.max(1));
    s
}

async fn send(c: &Client, url: &str, size: usize, batch: usize, start: u64) -> Result<()> {
    if batch <= 1 {
        c.call(
            "SendMessage",
            json!({"QueueUrl": url, "MessageBody": body(size, start)}),
        )
        .await?;
    } else {
        let entries: Vec<Value> = (0..batch as u64)
            .map(|i| json!({"Id": i.to_string(), "MessageBody": body(size, start + i)}))
            .collect();
        c.call(
            "SendMessageBatch",
            json!({"QueueUrl": url, "Entries": entries}),
        )
        .await?;
    }
    Ok(())
}

/// Receives up to `batch` messages; returns their receipt handles.
async fn receive(c: &Client, url: &str, batch: usize) -> Result<Vec<String>> {
    let v = c
        .call(
            "ReceiveMessage",
            json!({"QueueUrl": url, "MaxNumberOfMessages": batch.max(1), "WaitTimeSeconds": 0}),
        )
        .await?;
    Ok(v.get("Messages")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|m| {
                    m.get("ReceiptHandle")
                        .and_then(Value::as_str)
                        .map(String::from)
                })
                .collect()
        })
        .unwrap_or_default())
}

async fn delete(c: &Client, url: &str, handles: &[String]) -> Result<()> {
    if handles.len() == 1 {
        c.call(
            "DeleteMessage",
            json!({"QueueUrl": url, "ReceiptHandle": handles[0]}),
        )
        .await?;
    } else if !handles.is_empty() {
        let entries: Vec<Value> = handles
            .iter()
            .enumerate()
            .map(|(i, h)| json!({"Id": i.to_string(), "ReceiptHandle": h}))
            .collect();
        c.call(
            "DeleteMessageBatch",
            json!({"QueueUrl": url, "Entries": entries}),
        )
        .await?;
    }
    Ok(())
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx] as f64 / 1000.0
}

fn report(name: &str, samples: &mut [u64]) {
    if samples.is_empty() {
        return;
    }
    samples.sort_unstable();
    println!(
        "  {name:<8} calls {:>8}  p50 {:>7.3} ms  p99 {:>7.3} ms  p99.9 {:>7.3} ms",
        samples.len(),
        percentile(samples, 0.50),
        percentile(samples, 0.99),
        percentile(samples, 0.999)
    );
}

fn check_endpoint(args: &Args) -> Result<()> {
    for endpoint in &args.endpoints {
        let host = endpoint
            .split("://")
            .nth(1)
            .and_then(|r| r.split(['/', ':']).next())
            .unwrap_or("");
        let loopback = matches!(host, "127.0.0.1" | "localhost" | "[::1]" | "::1");
        if !loopback && !args.allow_remote {
            bail!("{endpoint} is not a loopback endpoint; pass --allow-remote to load it anyway");
        }
    }
    if args.messages > 1_000_000 || args.concurrency == 0 || args.concurrency > 256 {
        bail!("--messages must be ≤ 1,000,000 and --concurrency 1..=256");
    }
    if !(1..=10).contains(&args.batch) {
        bail!("--batch must be 1..=10");
    }
    Ok(())
}

async fn prefill(c: &Arc<Client>, url: &str, n: u64, size: usize, workers: usize) -> Result<()> {
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..workers.clamp(1, 16) {
        let (c, url, next) = (c.clone(), url.to_string(), next.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let start = next.fetch_add(10, Ordering::SeqCst);
                if start >= n {
                    return anyhow::Ok(());
                }
                let b = (n - start).min(10) as usize;
                send(&c, &url, size, b, start).await?;
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    check_endpoint(&args)?;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .tcp_nodelay(true)
        .build()?;
    let client = Arc::new(Client {
        http,
        endpoints: args
            .endpoints
            .iter()
            .map(|e| e.trim_end_matches('/').to_string() + "/")
            .collect(),
        next: AtomicU64::new(0),
    });
    let url = client
        .call("CreateQueue", json!({"QueueName": args.queue}))
        .await?
        .get("QueueUrl")
        .and_then(Value::as_str)
        .context("CreateQueue returned no QueueUrl")?
        .to_string();
    // Purge may be refused within 60 s of the last one; then the queue is drained by hand.
    if !args.no_purge
        && client
            .call("PurgeQueue", json!({"QueueUrl": url}))
            .await
            .is_err()
    {
        loop {
            let h = receive(&client, &url, 10).await?;
            if h.is_empty() {
                break;
            }
            delete(&client, &url, &h).await?;
        }
    }
    match args.pattern {
        Pattern::Drain => {
            prefill(&client, &url, args.messages, args.size, args.concurrency).await?
        }
        Pattern::Interleaved => {
            prefill(&client, &url, args.depth, args.size, args.concurrency).await?
        }
        Pattern::Send => {}
    }

    let per_call = args.batch.max(1) as u64;
    let remaining = Arc::new(AtomicU64::new(args.messages));
    let processed = Arc::new(AtomicU64::new(0));
    let samples = Arc::new(Mutex::new(Samples::default()));
    let started = Instant::now();
    let deadline = args.duration.map(|d| started + Duration::from_secs_f64(d));
    let mut workers = Vec::new();
    for w in 0..args.concurrency {
        let (client, url, remaining, processed, samples) = (
            client.clone(),
            url.clone(),
            remaining.clone(),
            processed.clone(),
            samples.clone(),
        );
        let (pattern, size, batch) = (args.pattern, args.size, args.batch);
        workers.push(tokio::spawn(async move {
            let mut local = Samples::default();
            let mut seq = (w as u64) << 40;
            let mut empty_polls = 0;
            loop {
                if deadline.is_some_and(|d| Instant::now() >= d) && pattern != Pattern::Drain {
                    break;
                }
                let take = match pattern {
                    Pattern::Drain => per_call,
                    _ => {
                        let prev = remaining
                            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |r| {
                                r.checked_sub(per_call)
                            })
                            .ok();
                        if prev.is_none() {
                            break;
                        }
                        per_call
                    }
                };
                if pattern != Pattern::Drain {
                    let t = Instant::now();
                    send(&client, &url, size, batch, seq).await?;
                    local.send.push(t.elapsed().as_micros() as u64);
                    seq += take;
                }
                if pattern == Pattern::Send {
                    processed.fetch_add(take, Ordering::Relaxed);
                    continue;
                }
                let t = Instant::now();
                let handles = receive(&client, &url, batch).await?;
                local.receive.push(t.elapsed().as_micros() as u64);
                if handles.is_empty() {
                    if pattern == Pattern::Drain {
                        empty_polls += 1;
                        if empty_polls >= 3 {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    continue;
                }
                empty_polls = 0;
                let t = Instant::now();
                delete(&client, &url, &handles).await?;
                local.delete.push(t.elapsed().as_micros() as u64);
                processed.fetch_add(handles.len() as u64, Ordering::Relaxed);
            }
            let mut all = samples.lock().await;
            all.send.extend(local.send);
            all.receive.extend(local.receive);
            all.delete.extend(local.delete);
            anyhow::Ok(())
        }));
    }
    for w in workers {
        w.await??;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let done = processed.load(Ordering::Relaxed);
    println!(
        "pattern {:?}, {} messages of {} B, batch {}, concurrency {}, depth {}: {:.0} msg/s ({done} in {elapsed:.2} s)",
        args.pattern,
        args.messages,
        args.size,
        args.batch,
        args.concurrency,
        args.depth,
        done as f64 / elapsed
    );
    let mut s = samples.lock().await;
    report("send", &mut s.send);
    report("receive", &mut s.receive);
    report("delete", &mut s.delete);
    if args.summary {
        let p = |v: &[u64], q: f64| percentile(v, q);
        println!(
            "RESULT pattern={:?} batch={} concurrency={} depth={} msgs_per_s={:.0} send_p50_ms={:.3} send_p99_ms={:.3} receive_p50_ms={:.3} receive_p99_ms={:.3}",
            args.pattern,
            args.batch,
            args.concurrency,
            args.depth,
            done as f64 / elapsed,
            p(&s.send, 0.5),
            p(&s.send, 0.99),
            p(&s.receive, 0.5),
            p(&s.receive, 0.99)
        );
    }
    Ok(())
}
