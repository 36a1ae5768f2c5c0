//! A black-box checker for servers that are SIGKILLed and restarted under load.
//!
//! Producers and consumers talk to every server of a [`Cluster`] in turn (each request to the
//! next live server), while the chaos loop kills a random server with SIGKILL and restarts it.
//! Every request's start and end are recorded on one clock, and at the end the history is
//! checked:
//!
//! - **no acknowledged send lost**: every acknowledged send was delivered at least once;
//! - **no acknowledged delete resurrected**: no receive that started after a delete was
//!   acknowledged returned that message;
//! - **no double delivery within a visibility timeout**: for two deliveries of one message, the
//!   second ended at least `VISIBILITY` after the first began (the claim happened inside each
//!   request, so a second delivery that ended earlier proves an overlap);
//! - **FIFO order per group**: when a message of a group is delivered, every earlier message of
//!   that group was either delivered earlier in the same response or had its delete sent before
//!   this delivery ended.
//!
//! Used with one server on the embedded store here, and with several servers on one shared
//! database by the `services` tests when that store is configured.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::{CallError, Rng, ServerProcess, Sqs};

/// Visibility timeout of every receive, seconds. Short, so messages whose receive answer was
/// lost in a kill come back within the run.
pub const VISIBILITY: u64 = 3;
const STANDARD_PRODUCERS: usize = 3;
const FIFO_GROUPS: usize = 4;
const CONSUMERS: usize = 4;

/// Several `redrive serve` processes started with the same arguments (one shared store, or one
/// data directory when there is one server).
pub struct Cluster {
    args: Vec<String>,
    servers: Vec<Option<ServerProcess>>,
    endpoints: Arc<RwLock<Vec<String>>>,
}

impl Cluster {
    pub async fn start(n: usize, args: &[&str]) -> Cluster {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let mut servers = Vec::new();
        let mut endpoints = Vec::new();
        for _ in 0..n {
            let s = start(&args).await;
            endpoints.push(s.endpoint());
            servers.push(Some(s));
        }
        Cluster {
            args,
            servers,
            endpoints: Arc::new(RwLock::new(endpoints)),
        }
    }

    pub fn len(&self) -> usize {
        self.servers.len()
    }

    /// The servers' endpoints now (a killed server's stays listed until it is back).
    pub fn endpoints(&self) -> Vec<String> {
        self.endpoints.read().unwrap().clone()
    }

    /// SIGKILL server `i` (its endpoint stays listed: requests to it fail until it is back).
    pub async fn kill(&mut self, i: usize) {
        if let Some(mut s) = self.servers[i].take() {
            tokio::task::spawn_blocking(move || s.kill()).await.unwrap();
        }
    }

    pub async fn restart(&mut self, i: usize) {
        let s = start(&self.args).await;
        self.endpoints.write().unwrap()[i] = s.endpoint();
        self.servers[i] = Some(s);
    }

    fn router(&self) -> Router {
        Router {
            endpoints: self.endpoints.clone(),
            next: Arc::new(AtomicUsize::new(0)),
        }
    }
}

async fn start(args: &[String]) -> ServerProcess {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    ServerProcess::start(&args, &[]).await
}

/// Sends each request to the next server in turn.
#[derive(Clone)]
struct Router {
    endpoints: Arc<RwLock<Vec<String>>>,
    next: Arc<AtomicUsize>,
}

impl Router {
    async fn call(&self, action: &str, body: Value) -> Result<Value, CallError> {
        let endpoint = {
            let e = self.endpoints.read().unwrap();
            e[self.next.fetch_add(1, Ordering::Relaxed) % e.len()].clone()
        };
        Sqs::new(&endpoint).call(action, body).await
    }
}

struct Delivery {
    body: String,
    consumer: usize,
    /// One id per receive response, and the position in it.
    response: u64,
    position: usize,
    start_ms: u64,
    end_ms: u64,
}

#[derive(Default)]
struct History {
    acked_sends: HashSet<String>,
    deliveries: Vec<Delivery>,
    /// body → when the acknowledged delete's answer arrived.
    delete_acked_ms: HashMap<String, u64>,
    /// body → when the first delete request (answered or not) was sent.
    delete_sent_ms: HashMap<String, u64>,
    responses: u64,
}

/// The body names its queue kind, group and index: `std-p{producer}-{n}` or `fifo-g{group}-{n}`.
fn fifo_position(body: &str) -> Option<(usize, u64)> {
    let rest = body.strip_prefix("fifo-g")?;
    let (g, n) = rest.split_once('-')?;
    Some((g.parse().ok()?, n.parse().ok()?))
}

pub struct Report {
    pub acked_sends: usize,
    pub deliveries: usize,
    pub kills: usize,
}

/// Runs the load against `cluster` for `rounds` kill/restart cycles and checks the history.
pub async fn run(cluster: &mut Cluster, queue_prefix: &str, rounds: usize, seed: u64) -> Report {
    let clock = Instant::now();
    let ms = move || clock.elapsed().as_millis() as u64;
    let router = cluster.router();
    let std_url = create(&router, &format!("{queue_prefix}-std"), json!({})).await;
    let fifo_url = create(
        &router,
        &format!("{queue_prefix}.fifo"),
        json!({"FifoQueue": "true"}),
    )
    .await;

    let history = Arc::new(Mutex::new(History::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();

    for p in 0..STANDARD_PRODUCERS {
        let (router, url, history, stop) = (
            router.clone(),
            std_url.clone(),
            history.clone(),
            stop.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let body = format!("std-p{p}-{n}");
                n += 1;
                // An unanswered send may or may not be stored: not acknowledged, not retried.
                if router
                    .call("SendMessage", json!({"QueueUrl": url, "MessageBody": body}))
                    .await
                    .is_ok()
                {
                    history.lock().unwrap().acked_sends.insert(body);
                }
            }
        }));
    }
    for g in 0..FIFO_GROUPS {
        let (router, url, history, stop) = (
            router.clone(),
            fifo_url.clone(),
            history.clone(),
            stop.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let body = format!("fifo-g{g}-{n}");
                // Retried with the same deduplication id until acknowledged, so the group's
                // order is the order of `n`.
                let req = json!({"QueueUrl": url, "MessageBody": body,
                                 "MessageGroupId": format!("g{g}"),
                                 "MessageDeduplicationId": body});
                while !stop.load(Ordering::Relaxed) {
                    if router.call("SendMessage", req.clone()).await.is_ok() {
                        history.lock().unwrap().acked_sends.insert(body.clone());
                        n += 1;
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }));
    }
    for c in 0..CONSUMERS {
        let (router, history, stop) = (router.clone(), history.clone(), stop.clone());
        let url = if c % 2 == 0 {
            std_url.clone()
        } else {
            fifo_url.clone()
        };
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                consume_once(&router, &url, c, &history, ms, 1).await;
            }
        }));
    }

    let mut rng = Rng(seed | 1);
    let mut kills = 0;
    for round in 0..rounds {
        let run_ms = 400 + rng.next() % 1_200;
        tokio::time::sleep(Duration::from_millis(run_ms)).await;
        let victim = (rng.next() % cluster.len() as u64) as usize;
        cluster.kill(victim).await;
        kills += 1;
        let down_ms = rng.next() % 400;
        tokio::time::sleep(Duration::from_millis(down_ms)).await;
        cluster.restart(victim).await;
        println!(
            "round {round}: server {victim} killed after {run_ms} ms, restarted after {down_ms} ms"
        );
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }

    // Drain both queues, waiting out the visibility of messages whose receive answer was lost.
    for url in [&std_url, &fifo_url] {
        let mut quiet_since = Instant::now();
        while quiet_since.elapsed() < Duration::from_secs(VISIBILITY + 2) {
            if consume_once(&router, url, usize::MAX, &history, ms, 1).await > 0 {
                quiet_since = Instant::now();
            }
        }
    }

    let h = history.lock().unwrap();
    check(&h);
    Report {
        acked_sends: h.acked_sends.len(),
        deliveries: h.deliveries.len(),
        kills,
    }
}

async fn create(router: &Router, name: &str, attrs: Value) -> String {
    for _ in 0..50 {
        if let Ok(v) = router
            .call(
                "CreateQueue",
                json!({"QueueName": name, "Attributes": attrs}),
            )
            .await
        {
            return v["QueueUrl"].as_str().unwrap().to_string();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("CreateQueue {name} failed on every server");
}

/// One receive and the deletes of what it returned; returns how many messages it returned.
async fn consume_once(
    router: &Router,
    url: &str,
    consumer: usize,
    history: &Mutex<History>,
    ms: impl Fn() -> u64,
    wait: u64,
) -> usize {
    let start_ms = ms();
    let Ok(v) = router
        .call(
            "ReceiveMessage",
            json!({"QueueUrl": url, "MaxNumberOfMessages": 10,
                   "VisibilityTimeout": VISIBILITY, "WaitTimeSeconds": wait}),
        )
        .await
    else {
        tokio::time::sleep(Duration::from_millis(20)).await;
        return 0;
    };
    let end_ms = ms();
    let msgs: Vec<(String, String)> = v
        .get("Messages")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|m| {
            (
                m["Body"].as_str().unwrap().to_string(),
                m["ReceiptHandle"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    {
        let mut h = history.lock().unwrap();
        h.responses += 1;
        let response = h.responses;
        for (position, (body, _)) in msgs.iter().enumerate() {
            h.deliveries.push(Delivery {
                body: body.clone(),
                consumer,
                response,
                position,
                start_ms,
                end_ms,
            });
        }
    }
    for (body, handle) in &msgs {
        history
            .lock()
            .unwrap()
            .delete_sent_ms
            .entry(body.clone())
            .or_insert_with(&ms);
        if router
            .call(
                "DeleteMessage",
                json!({"QueueUrl": url, "ReceiptHandle": handle}),
            )
            .await
            .is_ok()
        {
            let at = ms();
            history
                .lock()
                .unwrap()
                .delete_acked_ms
                .entry(body.clone())
                .or_insert(at);
        }
    }
    msgs.len()
}

fn check(h: &History) {
    assert!(
        h.acked_sends.len() >= 20,
        "the load generated almost no traffic ({} acknowledged sends)",
        h.acked_sends.len()
    );
    let delivered: HashSet<&str> = h.deliveries.iter().map(|d| d.body.as_str()).collect();

    let lost: Vec<_> = h
        .acked_sends
        .iter()
        .filter(|b| !delivered.contains(b.as_str()))
        .collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged sends never delivered, e.g. {:?}",
        lost.len(),
        lost.iter().take(5).collect::<Vec<_>>()
    );

    let resurrected: Vec<_> = h
        .deliveries
        .iter()
        .filter(|d| {
            h.delete_acked_ms
                .get(&d.body)
                .is_some_and(|&acked| d.start_ms > acked)
        })
        .collect();
    assert!(
        resurrected.is_empty(),
        "{} deliveries after an acknowledged delete, e.g. {:?}",
        resurrected.len(),
        resurrected
            .iter()
            .take(5)
            .map(|d| format!("{} at {} ms", d.body, d.start_ms))
            .collect::<Vec<_>>()
    );

    // Claims happen inside the receive request; the server's deadline is in whole
    // milliseconds, hence 2 ms of slack.
    let mut by_body: HashMap<&str, Vec<&Delivery>> = HashMap::new();
    for d in &h.deliveries {
        by_body.entry(&d.body).or_default().push(d);
    }
    let mut overlaps = Vec::new();
    for ds in by_body.values_mut() {
        ds.sort_by_key(|d| d.start_ms);
        for pair in ds.windows(2) {
            let (first, second) = (pair[0], pair[1]);
            if second.end_ms + 2 < first.start_ms + VISIBILITY * 1000 {
                overlaps.push(format!(
                    "{}: consumer {} at {}..{} ms, consumer {} at {}..{} ms",
                    first.body,
                    first.consumer,
                    first.start_ms,
                    first.end_ms,
                    second.consumer,
                    second.start_ms,
                    second.end_ms
                ));
            }
        }
    }
    assert!(
        overlaps.is_empty(),
        "{} messages delivered twice within one visibility timeout, e.g. {:?}",
        overlaps.len(),
        overlaps.iter().take(3).collect::<Vec<_>>()
    );

    // FIFO: group → index → body, for every message known to exist.
    let mut groups: BTreeMap<usize, BTreeMap<u64, &str>> = BTreeMap::new();
    for b in h
        .acked_sends
        .iter()
        .map(String::as_str)
        .chain(delivered.iter().copied())
    {
        if let Some((g, n)) = fifo_position(b) {
            groups.entry(g).or_default().insert(n, b);
        }
    }
    // Checking the nearest earlier message is enough: its own deliveries were checked against
    // its predecessor, and its delete was sent after one of them.
    let position_in_response: HashMap<(u64, &str), usize> = h
        .deliveries
        .iter()
        .map(|d| ((d.response, d.body.as_str()), d.position))
        .collect();
    let mut out_of_order = Vec::new();
    for d in &h.deliveries {
        let Some((g, k)) = fifo_position(&d.body) else {
            continue;
        };
        let Some((_, earlier)) = groups[&g].range(..k).next_back() else {
            continue;
        };
        let in_same_response_before = position_in_response
            .get(&(d.response, *earlier))
            .is_some_and(|&p| p < d.position);
        let delete_sent_before = h
            .delete_sent_ms
            .get(*earlier)
            .is_some_and(|&sent| sent < d.end_ms);
        if !in_same_response_before && !delete_sent_before {
            out_of_order.push(format!(
                "{} delivered to consumer {} at {}..{} ms before {earlier} was done",
                d.body, d.consumer, d.start_ms, d.end_ms
            ));
        }
    }
    assert!(
        out_of_order.is_empty(),
        "{} FIFO deliveries before an earlier message of their group was done, e.g. {:?}",
        out_of_order.len(),
        out_of_order.iter().take(3).collect::<Vec<_>>()
    );
    let fifo_delivered = delivered.iter().filter(|b| b.starts_with("fifo-")).count();
    assert!(fifo_delivered > 0, "no FIFO message was delivered");
}

/// `REDRIVE_CHECKER_SEED`, or the clock.
pub fn seed() -> u64 {
    std::env::var("REDRIVE_CHECKER_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        })
}

/// One server on the embedded store, killed and restarted over the same data directory.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn checker_one_server_embedded_store_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let seed = seed();
    println!("checker seed {seed} (REDRIVE_CHECKER_SEED to replay)");
    let mut cluster = Cluster::start(1, &["--data-dir", dir.path().to_str().unwrap()]).await;
    let r = run(&mut cluster, "chk", 4, seed).await;
    println!(
        "{} acknowledged sends, {} deliveries, {} kills: no loss, no resurrection, no overlap, FIFO order kept",
        r.acked_sends, r.deliveries, r.kills
    );
}

/// The checker itself can fail: an in-memory server forgets everything at each kill, and the
/// checker must report the lost acknowledged sends.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn checker_reports_losses_of_an_in_memory_server() {
    let seed = seed();
    let outcome = tokio::spawn(async move {
        let mut cluster = Cluster::start(1, &["--in-memory"]).await;
        run(&mut cluster, "chk-mem", 2, seed).await;
    })
    .await;
    let panic = outcome.expect_err("the checker accepted a server that loses messages");
    let msg = panic.into_panic();
    let msg = msg
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| msg.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default();
    assert!(
        msg.contains("never delivered"),
        "unexpected checker failure: {msg}"
    );
}
