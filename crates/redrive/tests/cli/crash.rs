//! Crash safety of the durable store, end to end: producers and consumers run against a
//! server that is killed with SIGKILL at random points and restarted over the same data
//! directory. Every acknowledged send must survive (unless its delete was acknowledged), no
//! acknowledged delete may come back, and nothing is duplicated beyond SQS's redelivery of
//! messages that were received but not deleted.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::{Rng, ServerProcess, Sqs};

const ROUNDS: usize = 4;
const PRODUCERS: usize = 4;
const CONSUMERS: usize = 2;
/// Short, so messages in flight at a crash come back quickly.
const VISIBILITY: u32 = 2;

#[derive(Default)]
struct Ledger {
    acked_sends: HashSet<String>,
    acked_deletes: HashSet<String>,
    /// Deletes sent whose answer was lost in the kill: the message may or may not be gone.
    unanswered_deletes: HashSet<String>,
}

async fn load_until_killed(sqs: Sqs, url: String, ledger: Arc<Mutex<Ledger>>, round: usize) {
    let mut tasks = Vec::new();
    for p in 0..PRODUCERS {
        let (sqs, url, ledger) = (sqs.clone(), url.clone(), ledger.clone());
        tasks.push(tokio::spawn(async move {
            for n in 0.. {
                let body = format!("r{round}-p{p}-{n}");
                let batch = n % 3 == 0;
                let ok = if batch {
                    let entries: Vec<_> = (0..3)
                        .map(|i| json!({"Id": i.to_string(), "MessageBody": format!("{body}-{i}")}))
                        .collect();
                    match sqs
                        .call(
                            "SendMessageBatch",
                            json!({"QueueUrl": url, "Entries": entries}),
                        )
                        .await
                    {
                        Ok(v) => {
                            let mut l = ledger.lock().unwrap();
                            for e in v["Successful"].as_array().into_iter().flatten() {
                                let i = e["Id"].as_str().unwrap();
                                l.acked_sends.insert(format!("{body}-{i}"));
                            }
                            true
                        }
                        Err(_) => false,
                    }
                } else {
                    match sqs
                        .call("SendMessage", json!({"QueueUrl": url, "MessageBody": body}))
                        .await
                    {
                        Ok(_) => {
                            ledger.lock().unwrap().acked_sends.insert(body);
                            true
                        }
                        Err(_) => false,
                    }
                };
                if !ok {
                    return; // the server is gone
                }
            }
        }));
    }
    for _ in 0..CONSUMERS {
        let (sqs, url, ledger) = (sqs.clone(), url.clone(), ledger.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let Ok(msgs) = sqs.receive(&url, 10, VISIBILITY, 0).await else {
                    return;
                };
                for (body, handle) in msgs {
                    match sqs
                        .call(
                            "DeleteMessage",
                            json!({"QueueUrl": url, "ReceiptHandle": handle}),
                        )
                        .await
                    {
                        Ok(_) => {
                            ledger.lock().unwrap().acked_deletes.insert(body);
                        }
                        Err(_) => {
                            ledger.lock().unwrap().unanswered_deletes.insert(body);
                            return;
                        }
                    }
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_under_load_loses_no_acknowledged_change() {
    let dir = tempfile::tempdir().unwrap();
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    println!("crash test seed {seed}");
    let mut rng = Rng(seed);
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let mut url = String::new();
    for round in 0..ROUNDS {
        let mut server = ServerProcess::start_durable(dir.path()).await;
        let sqs = server.client();
        url = sqs.create_queue("crash", json!({})).await;
        let load = tokio::spawn(load_until_killed(
            sqs.clone(),
            url.clone(),
            ledger.clone(),
            round,
        ));
        let run_ms = 200 + rng.next() % 1_300;
        tokio::time::sleep(Duration::from_millis(run_ms)).await;
        tokio::task::spawn_blocking(move || server.kill())
            .await
            .unwrap();
        load.await.unwrap();
        let l = ledger.lock().unwrap();
        println!(
            "round {round}: killed after {run_ms} ms; {} sends and {} deletes acknowledged so far",
            l.acked_sends.len(),
            l.acked_deletes.len()
        );
    }

    // Restart once more and drain everything, waiting out the visibility of messages that
    // were in flight at the last kill.
    let server = ServerProcess::start_durable(dir.path()).await;
    let sqs = server.client();
    let mut drained: HashMap<String, usize> = HashMap::new();
    let mut quiet_since = Instant::now();
    while quiet_since.elapsed() < Duration::from_secs(u64::from(VISIBILITY) + 2) {
        let msgs = sqs
            .receive(&url, 10, 60, 1)
            .await
            .expect("receive after restart");
        if !msgs.is_empty() {
            quiet_since = Instant::now();
        }
        for (body, handle) in msgs {
            *drained.entry(body).or_default() += 1;
            sqs.call(
                "DeleteMessage",
                json!({"QueueUrl": url, "ReceiptHandle": handle}),
            )
            .await
            .expect("delete after restart");
        }
    }
    let l = ledger.lock().unwrap();
    assert!(!l.acked_sends.is_empty(), "the load generated no traffic");
    let lost: Vec<_> = l
        .acked_sends
        .iter()
        .filter(|b| {
            !drained.contains_key(*b)
                && !l.acked_deletes.contains(*b)
                && !l.unanswered_deletes.contains(*b)
        })
        .collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged sends lost, e.g. {:?}",
        lost.len(),
        lost.iter().take(5).collect::<Vec<_>>()
    );
    let resurrected: Vec<_> = drained
        .keys()
        .filter(|b| l.acked_deletes.contains(*b))
        .collect();
    assert!(
        resurrected.is_empty(),
        "{} acknowledged deletes came back, e.g. {:?}",
        resurrected.len(),
        resurrected.iter().take(5).collect::<Vec<_>>()
    );
    let duplicated: Vec<_> = drained.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        duplicated.is_empty(),
        "duplicated after restart: {duplicated:?}"
    );
    println!(
        "{} acknowledged sends, {} acknowledged deletes, {} drained after the last restart (some sends were unacknowledged but durable)",
        l.acked_sends.len(),
        l.acked_deletes.len(),
        drained.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn move_task_resumes_after_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = ServerProcess::start_durable(dir.path()).await;
    let sqs = server.client();
    let dlq = sqs.create_queue("resume-dlq", json!({})).await;
    let dlq_arn = sqs.attr(&dlq, "QueueArn").await;
    let policy = json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 1}).to_string();
    let src = sqs
        .create_queue("resume-src", json!({"RedrivePolicy": policy}))
        .await;
    let total = 12;
    for i in 0..total {
        sqs.call(
            "SendMessage",
            json!({"QueueUrl": src, "MessageBody": format!("m{i}")}),
        )
        .await
        .unwrap();
    }
    // Spend every receive count, then one more receive moves them all to the DLQ.
    while sqs.attr(&dlq, "ApproximateNumberOfMessages").await != total.to_string() {
        sqs.receive(&src, 10, 0, 0).await.unwrap();
    }
    sqs.call(
        "StartMessageMoveTask",
        json!({"SourceArn": dlq_arn, "MaxNumberOfMessagesPerSecond": 4}),
    )
    .await
    .expect("start move task");
    tokio::time::sleep(Duration::from_millis(1_300)).await;
    tokio::task::spawn_blocking(move || server.kill())
        .await
        .unwrap();

    let server = ServerProcess::start_durable(dir.path()).await;
    let sqs = server.client();
    let deadline = Instant::now() + Duration::from_secs(20);
    let task = loop {
        let tasks = sqs
            .call("ListMessageMoveTasks", json!({"SourceArn": dlq_arn}))
            .await
            .expect("list tasks");
        let task = tasks["Results"][0].clone();
        if task["Status"] != "RUNNING" || Instant::now() > deadline {
            break task;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(task["Status"], "COMPLETED", "{task}");
    assert_eq!(task["ApproximateNumberOfMessagesMoved"], total, "{task}");
    assert_eq!(sqs.attr(&dlq, "ApproximateNumberOfMessages").await, "0");
    assert_eq!(
        sqs.attr(&src, "ApproximateNumberOfMessages").await,
        total.to_string()
    );
    let mut bodies = HashSet::new();
    loop {
        let msgs = sqs.receive(&src, 10, 60, 0).await.unwrap();
        if msgs.is_empty() {
            break;
        }
        for (b, _) in msgs {
            assert!(bodies.insert(b.clone()), "duplicate {b}");
        }
    }
    assert_eq!(bodies.len(), total);
}

/// A server-side selective replay survives SIGKILL: after the restart it finishes exactly the
/// selected set (each once), and the unselected dead letters stay where they were.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_resumes_after_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = ServerProcess::start_durable(dir.path()).await;
    let sqs = server.client();
    let dlq = sqs.create_queue("replay-dlq", json!({})).await;
    let dlq_arn = sqs.attr(&dlq, "QueueArn").await;
    let policy = json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 1}).to_string();
    let src = sqs
        .create_queue("replay-src", json!({"RedrivePolicy": policy}))
        .await;
    let total = 16;
    for i in 0..total {
        let body = json!({"i": i, "keep": i % 4 == 0}).to_string();
        sqs.call("SendMessage", json!({"QueueUrl": src, "MessageBody": body}))
            .await
            .unwrap();
    }
    while sqs.attr(&dlq, "ApproximateNumberOfMessages").await != total.to_string() {
        sqs.receive(&src, 10, 0, 0).await.unwrap();
    }
    let http = reqwest::Client::new();
    let api = server.endpoint().trim_end_matches('/').to_string();
    let started: Value = http
        .post(format!("{api}/_redrive/v1/replays"))
        .body(
            json!({"source": "replay-dlq", "selection": {"filter": ".keep | not"},
                   "rate": 4.0, "dryRun": false})
            .to_string(),
        )
        .send()
        .await
        .unwrap()
        .text()
        .await
        .map(|t| serde_json::from_str(&t).unwrap_or_else(|_| panic!("not JSON: {t}")))
        .unwrap();
    let id = started["id"].as_str().expect("replay id").to_string();
    assert_eq!(started["selected"], 12);
    tokio::time::sleep(Duration::from_millis(1_300)).await;
    tokio::task::spawn_blocking(move || server.kill())
        .await
        .unwrap();

    let server = ServerProcess::start_durable(dir.path()).await;
    let sqs = server.client();
    let api = server.endpoint().trim_end_matches('/').to_string();
    let deadline = Instant::now() + Duration::from_secs(20);
    let task = loop {
        let t: Value = http
            .get(format!("{api}/_redrive/v1/replays/{id}"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .map(|t| serde_json::from_str(&t).unwrap())
            .unwrap();
        if t["status"] != "RUNNING" || Instant::now() > deadline {
            break t;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(task["status"], "COMPLETED", "{task}");
    assert_eq!(task["moved"], 12, "{task}");
    assert_eq!(sqs.attr(&dlq, "ApproximateNumberOfMessages").await, "4");
    let mut seen = HashSet::new();
    loop {
        let msgs = sqs.receive(&src, 10, 60, 0).await.unwrap();
        if msgs.is_empty() {
            break;
        }
        for (b, _) in msgs {
            let v: Value = serde_json::from_str(&b).unwrap();
            assert_eq!(v["keep"], false, "an unselected message moved: {b}");
            assert!(seen.insert(b.clone()), "duplicate {b}");
        }
    }
    assert_eq!(seen.len(), 12);
    // The move log survived too: 12 entries.
    let log: Value = http
        .get(format!("{api}/_redrive/v1/replays/{id}/moves"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .map(|t| serde_json::from_str(&t).unwrap())
        .unwrap();
    assert_eq!(log["moves"].as_array().unwrap().len(), 12);
}

/// Format 3 keeps bodies and attributes in the store only and reads them on receive. After a
/// SIGKILL (with messages in flight, received and deleted ones, and sends racing the kill) a
/// restarted server, whose payload cache is empty, serves every acknowledged message with its
/// exact body, MD5 and attributes, read from the file.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bodies_and_attributes_are_read_from_the_store_after_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = ServerProcess::start_durable(dir.path()).await;
    let sqs = server.client();
    let url = sqs.create_queue("payloads", json!({})).await;
    let body = |i: usize| format!("payload-{i}-{}", "ü".repeat(i % 700));
    let mut acked = HashSet::new();
    for i in 0..200 {
        let r = sqs
            .call(
                "SendMessage",
                json!({"QueueUrl": url, "MessageBody": body(i),
                       "MessageAttributes": {
                           "n": {"DataType": "Number", "StringValue": i.to_string()},
                           "blob": {"DataType": "Binary", "BinaryValue": "AAEC/w=="}}}),
            )
            .await;
        if r.is_ok() {
            acked.insert(i);
        }
    }
    // Some received (in flight at the kill), some deleted.
    let mut deleted = HashSet::new();
    for (b, handle) in sqs.receive(&url, 10, 1, 0).await.unwrap() {
        let i: usize = b.split('-').nth(1).unwrap().parse().unwrap();
        if i.is_multiple_of(2) {
            sqs.call(
                "DeleteMessage",
                json!({"QueueUrl": url, "ReceiptHandle": handle}),
            )
            .await
            .unwrap();
            deleted.insert(i);
        }
    }
    sqs.receive(&url, 10, 1, 0).await.unwrap();
    // Sends racing the kill.
    let racing = {
        let (sqs, url) = (sqs.clone(), url.clone());
        tokio::spawn(async move {
            for i in 200..2_000 {
                if sqs
                    .call(
                        "SendMessage",
                        json!({"QueueUrl": url, "MessageBody": format!("late-{i}")}),
                    )
                    .await
                    .is_err()
                {
                    break;
                }
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    tokio::task::spawn_blocking(move || server.kill())
        .await
        .unwrap();
    let _ = racing.await;

    let server = ServerProcess::start_durable(dir.path()).await;
    let sqs = server.client();
    tokio::time::sleep(Duration::from_millis(1_100)).await; // in-flight ones come back
    let mut seen = HashSet::new();
    loop {
        let v = sqs
            .call(
                "ReceiveMessage",
                json!({"QueueUrl": url, "MaxNumberOfMessages": 10, "VisibilityTimeout": 60,
                       "MessageAttributeNames": ["All"], "WaitTimeSeconds": 0}),
            )
            .await
            .expect("receive after restart");
        let msgs = v["Messages"].as_array().cloned().unwrap_or_default();
        if msgs.is_empty() {
            break;
        }
        for m in msgs {
            let b = m["Body"].as_str().unwrap();
            if b.starts_with("late-") {
                continue;
            }
            let i: usize = b.split('-').nth(1).unwrap().parse().unwrap();
            assert_eq!(b, body(i));
            assert_eq!(
                m["MD5OfBody"].as_str().unwrap(),
                redrive_core::digest::md5_hex(b.as_bytes())
            );
            let attrs = &m["MessageAttributes"];
            assert_eq!(attrs["n"]["StringValue"], json!(i.to_string()), "{m}");
            assert_eq!(attrs["blob"]["BinaryValue"], json!("AAEC/w=="), "{m}");
            assert!(seen.insert(i), "{i} twice");
        }
    }
    let lost: Vec<_> = acked
        .iter()
        .filter(|i| !deleted.contains(*i) && !seen.contains(*i))
        .collect();
    assert!(lost.is_empty(), "acknowledged sends lost: {lost:?}");
    let back: Vec<_> = seen.intersection(&deleted).collect();
    assert!(back.is_empty(), "acknowledged deletes came back: {back:?}");
}
