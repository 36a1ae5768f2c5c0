//! The console over a large DLQ (issue 15: "a page over a 100,000-message DLQ renders its
//! first view in under a second").
//!
//! `cargo run --release -p redrive-server --example console_bench [N] [redb|memory]`
//!
//! Seeds a DLQ of N messages (default 100,000) the way an incident makes one: JSON bodies of
//! ~350 bytes (50 malls, 4 commands, an order number and a payload) sent to a source queue
//! with `maxReceiveCount` 1 and received until every message was moved to its DLQ by the
//! engine (so each has its dead-lettered time and source ARN). The store is a redb file in a
//! temporary directory (format 3: bodies in the file, read through the payload cache), or
//! memory. Then serves the console on a loopback port and times whole HTTP GETs (request to
//! last body byte, one client, keep-alive) of each page, 5 times each after one untimed warm-up
//! (the first, cold, time is printed too), and prints min / median / max in milliseconds.

use std::sync::Arc;
use std::time::{Duration, Instant};

use redrive_core::api::*;
use redrive_engine::{Engine, EngineConfig, RequestContext, SystemClock};
use redrive_server::{Server, ServerConfig};

const SOURCE: &str = "bench-orders";
const DLQ: &str = "bench-orders-dlq";
const RUNS: usize = 5;

fn ctx() -> RequestContext {
    RequestContext {
        region: "us-east-1".into(),
        base_url: "http://127.0.0.1".into(),
    }
}

fn body(i: usize) -> String {
    let commands = ["points_updated", "order_created", "refund", "sync"];
    serde_json::json!({
        "mall_id": format!("m-{:03}", i % 50),
        "command": commands[i % 4],
        "order": i,
        "payload": {"member": format!("member-{}", i * 7919 % 100_000), "points": i % 1000,
                    "note": "x".repeat(180)},
    })
    .to_string()
}

async fn create(engine: &Engine, name: &str, attrs: &[(&str, String)]) -> String {
    engine
        .create_queue(
            &ctx(),
            CreateQueueInput {
                queue_name: name.into(),
                attributes: attrs
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.clone()))
                    .collect(),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .queue_url
}

async fn seed(engine: Arc<Engine>, n: usize) {
    let start = Instant::now();
    let dlq = create(&engine, DLQ, &[]).await;
    let dlq_arn = engine.queue_summary(&ctx(), DLQ).unwrap().arn;
    let _ = dlq;
    let policy = format!(r#"{{"deadLetterTargetArn":"{dlq_arn}","maxReceiveCount":1}}"#);
    let src = create(&engine, SOURCE, &[("RedrivePolicy", policy)]).await;
    // Sends: batches of 10, 8 senders.
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..8 {
        let (engine, src) = (engine.clone(), src.clone());
        tasks.spawn(async move {
            let mut i = w * 10;
            while i < n {
                let entries = (i..(i + 10).min(n))
                    .map(|k| SendMessageBatchRequestEntry {
                        id: k.to_string(),
                        message_body: Some(body(k)),
                        ..Default::default()
                    })
                    .collect();
                engine
                    .send_message_batch(
                        &ctx(),
                        SendMessageBatchInput {
                            queue_url: src.clone(),
                            entries,
                        },
                    )
                    .await
                    .unwrap();
                i += 80;
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    eprintln!("sent {n} in {:.1}s", start.elapsed().as_secs_f64());
    // Receives with visibility 0: the first counts 1, the next moves the message to the DLQ.
    for _ in 0..8 {
        let (engine, src) = (engine.clone(), src.clone());
        tasks.spawn(async move {
            loop {
                let out = engine
                    .receive_message(
                        &ctx(),
                        ReceiveMessageInput {
                            queue_url: src.clone(),
                            max_number_of_messages: Some(10),
                            visibility_timeout: Some(0),
                            ..Default::default()
                        },
                    )
                    .await
                    .unwrap();
                if out.messages.is_empty() {
                    let s = engine.queue_summary(&ctx(), SOURCE).unwrap();
                    if s.visible + s.in_flight + s.delayed == 0 {
                        break;
                    }
                }
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    let s = engine.queue_summary(&ctx(), DLQ).unwrap();
    assert_eq!(s.visible, n, "every message in the DLQ");
    eprintln!(
        "seeded the DLQ with {n} in {:.1}s",
        start.elapsed().as_secs_f64()
    );
}

async fn time(http: &reqwest::Client, url: &str) -> (f64, usize) {
    let t = Instant::now();
    let r = http.get(url).send().await.unwrap();
    assert_eq!(r.status(), 200, "{url}");
    let len = r.bytes().await.unwrap().len();
    (t.elapsed().as_secs_f64() * 1000.0, len)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().map_or(100_000, |a| a.parse().expect("N"));
    let kind = args.next().unwrap_or_else(|| "redb".into());
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn redrive_store::Store> = match kind.as_str() {
        "memory" => Arc::new(redrive_store::MemoryStore::new()),
        "redb" => Arc::new(
            redrive_store::RedbStore::open(
                dir.path(),
                redrive_store::DurabilityMode::Relaxed { interval_ms: 100 },
            )
            .unwrap(),
        ),
        other => panic!("store {other}: redb or memory"),
    };
    let engine = Arc::new(Engine::open(
        EngineConfig::default(),
        store,
        Arc::new(SystemClock),
    ));
    seed(engine.clone(), n).await;
    // The current minute into the history: the chart has points and the DLQ its burst.
    engine.flush_history_partial().await;
    let server = Server::bind_with_engine(
        ServerConfig {
            port: 0,
            ..Default::default()
        },
        engine.clone(),
    )
    .await
    .unwrap();
    let base = format!("http://{}", server.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = server.serve(std::future::pending()).await;
    });
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(600))
        .build()
        .unwrap();
    // The newest message's id, for the message page (the browse is oldest first: the worst
    // case of a lookup by id).
    let last_id = {
        let mut after = None;
        loop {
            let page = engine
                .browse_messages(
                    &ctx(),
                    DLQ,
                    &redrive_engine::BrowseQuery {
                        state: None,
                        limit: 1000,
                        after,
                    },
                )
                .unwrap();
            after = page.next;
            if after.is_none() {
                break page.messages.last().unwrap().message_id.clone();
            }
        }
    };
    let pages = [
        ("queues page", "/console".to_string()),
        (
            "DLQ page, first view (counts, chart + burst, 50 messages)",
            format!("/console/queues/{DLQ}"),
        ),
        (
            "DLQ page, next page of messages (cursor)",
            format!("/console/queues/{DLQ}?after=PLACEHOLDER"),
        ),
        (
            "DLQ page, group by .mall_id (whole queue)",
            format!("/console/queues/{DLQ}?group=.mall_id"),
        ),
        (
            "DLQ page, .mall_id × .command, dead-lettered minutes, shapes, receive counts, burst",
            format!(
                "/console/queues/{DLQ}?group=.mall_id&group=.command&bucket=dead-lettered:minute"
            ),
        ),
        (
            "message page (the newest message: found last)",
            format!("/console/queues/{DLQ}/messages/{last_id}"),
        ),
        ("replay form", format!("/console/queues/{DLQ}/replay")),
    ];
    // The cursor of the second page, from the first.
    let first = http
        .get(format!("{base}/console/queues/{DLQ}"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let cursor = {
        let m = "?after=";
        let s = first.find(m).expect("a next-page link") + m.len();
        first[s..s + first[s..].find(['&', '#', '"']).unwrap()].to_string()
    };
    println!(
        "console over a {n}-message DLQ, store {kind}, ms per GET (first = the first request; \
         min / median / max of the {RUNS} after it)"
    );
    println!("| page | bytes | first | min | median | max |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (label, path) in pages {
        let url = format!("{base}{}", path.replace("PLACEHOLDER", &cursor));
        let (cold, len) = time(&http, &url).await;
        let mut ms = Vec::new();
        for _ in 0..RUNS {
            ms.push(time(&http, &url).await.0);
        }
        ms.sort_by(|a, b| a.partial_cmp(b).unwrap());
        println!(
            "| {label} | {len} | {cold:.1} | {:.1} | {:.1} | {:.1} |",
            ms[0],
            ms[RUNS / 2],
            ms[RUNS - 1]
        );
    }
}
