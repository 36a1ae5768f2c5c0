//! `redrive serve --store postgres://…` as real processes on one PostgreSQL (`source
//! tests/services/start.sh`; the `services` nextest profile): both flag and environment
//! variable, a message sent to one process received from another, and a process SIGKILLed
//! without losing anything it acknowledged.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::json;

use crate::harness::{ServerProcess, Sqs};

fn url() -> String {
    std::env::var("REDRIVE_TEST_POSTGRES_URL").expect(
        "REDRIVE_TEST_POSTGRES_URL is not set: `source tests/services/start.sh` first (the `services` nextest profile)",
    )
}

fn nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// A source queue and its DLQ, holding `n` dead letters.
struct DeadLettered {
    dlq_name: String,
    dlq: String,
    dlq_arn: String,
    src: String,
}

/// Creates `{prefix}-src` with `{prefix}-dlq` (`maxReceiveCount` 1) and sends `n` messages
/// (`body(i)`), receiving each once so that it moves to the DLQ.
async fn dead_lettered(
    s: &Sqs,
    prefix: &str,
    n: usize,
    body: impl Fn(usize) -> String,
) -> DeadLettered {
    let dlq_name = format!("{prefix}-dlq");
    let dlq = s.create_queue(&dlq_name, json!({})).await;
    let dlq_arn = s.attr(&dlq, "QueueArn").await;
    let src = s
        .create_queue(
            &format!("{prefix}-src"),
            json!({"RedrivePolicy": json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 1}).to_string()}),
        )
        .await;
    for i in 0..n {
        s.call(
            "SendMessage",
            json!({"QueueUrl": src, "MessageBody": body(i)}),
        )
        .await
        .expect("send");
    }
    for _ in 0..100 {
        if s.attr(&src, "ApproximateNumberOfMessages").await == "0" {
            break;
        }
        s.receive(&src, 10, 0, 0).await.expect("receive");
    }
    assert_eq!(
        s.attr(&dlq, "ApproximateNumberOfMessages").await,
        n.to_string()
    );
    DeadLettered {
        dlq_name,
        dlq,
        dlq_arn,
        src,
    }
}

/// Reads `read()` until `done` holds for what it answers, and returns that; panics with
/// `what` and the last answer once `deadline` has passed.
async fn wait_until<F, Fut>(
    deadline: std::time::Instant,
    what: &str,
    read: F,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = serde_json::Value>,
{
    loop {
        let v = read().await;
        if done(&v) {
            return v;
        }
        assert!(std::time::Instant::now() < deadline, "{what}: {v}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

fn in_secs(secs: u64) -> std::time::Instant {
    std::time::Instant::now() + std::time::Duration::from_secs(secs)
}

/// The move task of the DLQ `dlq_arn`, as `ListMessageMoveTasks` shows it.
async fn move_task_of(s: &Sqs, dlq_arn: &str) -> serde_json::Value {
    s.call("ListMessageMoveTasks", json!({"SourceArn": dlq_arn}))
        .await
        .expect("list")["Results"][0]
        .clone()
}

/// A replay as `GET {path}` on `endpoint` shows it.
async fn replay_of(endpoint: &str, path: &str) -> serde_json::Value {
    replay_api(endpoint, "GET", path, json!({})).await.1
}

/// Every body in `url`, received with a long visibility timeout (so each at most once).
async fn drain_bodies(s: &Sqs, url: &str) -> Vec<String> {
    let mut got = Vec::new();
    for _ in 0..40 {
        let batch = s.receive(url, 10, 60, 0).await.expect("receive");
        if batch.is_empty() {
            break;
        }
        got.extend(batch.into_iter().map(|(body, _)| body));
    }
    got.sort();
    got
}

#[tokio::test]
async fn processes_share_a_postgres_store_and_survive_a_sigkill() {
    let db = url();
    let mut a = ServerProcess::start(&["--store", &db], &[]).await;
    let b = ServerProcess::start(&[], &[("REDRIVE_STORE", &db)]).await;
    // The database outlives test runs: a name of its own.
    let name = format!(
        "procs-{}",
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let q = a.client().create_queue(&name, json!({})).await;
    for i in 0..20 {
        a.client()
            .call(
                "SendMessage",
                json!({"QueueUrl": q, "MessageBody": format!("m{i}")}),
            )
            .await
            .expect("send");
    }
    // The process that acknowledged the sends is gone without warning.
    a.kill();
    let mut got = Vec::new();
    for _ in 0..10 {
        let batch = b.client().receive(&q, 10, 60, 0).await.expect("receive");
        for (body, handle) in batch {
            b.client()
                .call(
                    "DeleteMessage",
                    json!({"QueueUrl": q, "ReceiptHandle": handle}),
                )
                .await
                .expect("delete");
            got.push(body);
        }
        if got.len() == 20 {
            break;
        }
    }
    got.sort();
    let mut want: Vec<String> = (0..20).map(|i| format!("m{i}")).collect();
    want.sort();
    assert_eq!(got, want);
    // A restarted process sees the deletes the other made.
    let a = ServerProcess::start(&["--store", &db], &[]).await;
    assert_eq!(
        a.client().attr(&q, "ApproximateNumberOfMessages").await,
        "0"
    );
    assert_eq!(
        a.client()
            .attr(&q, "ApproximateNumberOfMessagesNotVisible")
            .await,
        "0"
    );
}

#[tokio::test]
async fn a_store_url_that_is_not_postgres_is_refused() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_redrive"))
        .args(["serve", "--store", "mysql://x"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("only postgres:// URLs"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The checker (`checker.rs`) over three servers on one PostgreSQL, one of them SIGKILLed and
/// restarted at random during the load: no acknowledged send lost, no acknowledged delete
/// resurrected, no double delivery within a visibility timeout, FIFO order per group. A
/// message move task and a replay run through the same chaos (whichever server holds one's
/// lease may be killed, and another takes it over from the persisted progress): each ends
/// COMPLETED with every message moved exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn checker_three_servers_on_postgres_with_sigkills() {
    let db = url();
    let n = nanos();
    let seed = crate::checker::seed();
    println!("checker seed {seed} (REDRIVE_CHECKER_SEED to replay)");
    let mut cluster = crate::checker::Cluster::start(3, &["--store", &db]).await;
    let endpoints = cluster.endpoints();
    let first = Sqs::new(&endpoints[0]);
    const N: usize = 40;
    let moving = dead_lettered(&first, &format!("chkmt-{n}"), N, |i| format!("mt-{i:02}")).await;
    let replaying = dead_lettered(&first, &format!("chkrp-{n}"), N, |i| {
        json!({"i": i}).to_string()
    })
    .await;
    // 5 messages a second each: both are still running when the chaos starts.
    first
        .call(
            "StartMessageMoveTask",
            json!({"SourceArn": moving.dlq_arn, "MaxNumberOfMessagesPerSecond": 5}),
        )
        .await
        .expect("start the move task");
    let (status, t) = replay_api(
        &endpoints[1],
        "POST",
        "/_redrive/v1/replays",
        json!({"source": replaying.dlq_name, "dryRun": false, "rate": 5}),
    )
    .await;
    assert_eq!(status, 201, "{t}");
    let replay = format!("/_redrive/v1/replays/{}", t["id"].as_str().unwrap());

    let r = crate::checker::run(&mut cluster, &format!("chkpg-{n}"), 4, seed).await;
    println!(
        "{} acknowledged sends, {} deliveries, {} kills over 3 servers on PostgreSQL: no loss, no resurrection, no overlap, FIFO order kept",
        r.acked_sends, r.deliveries, r.kills
    );

    // Every server is back: ask any of them until both have ended.
    let endpoints = cluster.endpoints();
    let s = Sqs::new(&endpoints[2]);
    let deadline = in_secs(90);
    let task = wait_until(
        deadline,
        "never finished",
        || move_task_of(&s, &moving.dlq_arn),
        |t| t["Status"] != "RUNNING",
    )
    .await;
    assert_eq!(task["Status"], "COMPLETED", "{task}");
    assert_eq!(task["ApproximateNumberOfMessagesMoved"], N, "{task}");
    let done = wait_until(
        deadline,
        "never finished",
        || replay_of(&endpoints[0], &replay),
        |t| t["status"] != "RUNNING",
    )
    .await;
    assert_eq!(done["status"], "COMPLETED", "{done}");
    assert_eq!(done["moved"], N, "{done}");
    assert_eq!(done["skipped"], 0, "{done}");
    assert_eq!(done["failed"], 0, "{done}");
    let (_, log) = replay_api(&endpoints[1], "GET", &format!("{replay}/moves"), json!({})).await;
    let ns: Vec<u64> = log["moves"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["n"].as_u64().unwrap())
        .collect();
    assert_eq!(ns, (1..=N as u64).collect::<Vec<_>>(), "{log}");
    for dl in [&moving, &replaying] {
        assert_eq!(s.attr(&dl.dlq, "ApproximateNumberOfMessages").await, "0");
    }
    let want: Vec<String> = (0..N).map(|i| format!("mt-{i:02}")).collect();
    assert_eq!(
        drain_bodies(&s, &moving.src).await,
        want,
        "moved exactly once"
    );
    let mut seen: Vec<u64> = drain_bodies(&s, &replaying.src)
        .await
        .iter()
        .map(|b| {
            serde_json::from_str::<serde_json::Value>(b).unwrap()["i"]
                .as_u64()
                .unwrap()
        })
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        (0..N as u64).collect::<Vec<_>>(),
        "replayed exactly once"
    );
}

/// A slow move task on one process, that process SIGKILLed mid-task: the other process takes
/// the task's lease when it expires and finishes from the persisted progress, every message
/// moved exactly once and the progress exact.
#[tokio::test]
async fn a_move_task_survives_the_sigkill_of_its_server() {
    let db = url();
    let mut a = ServerProcess::start(&["--store", &db], &[]).await;
    const N: usize = 30;
    let DeadLettered {
        dlq, dlq_arn, src, ..
    } = dead_lettered(&a.client(), &format!("mt-kill-{}", nanos()), N, |i| {
        format!("m{i:02}")
    })
    .await;
    // Started while A is the only server, so A runs it: 3 messages a second.
    a.client()
        .call(
            "StartMessageMoveTask",
            json!({"SourceArn": dlq_arn, "MaxNumberOfMessagesPerSecond": 3}),
        )
        .await
        .expect("start");
    let (a_sqs, arn) = (a.client(), dlq_arn.as_str());
    wait_until(
        in_secs(30),
        "no progress",
        || move_task_of(&a_sqs, arn),
        |t| t["ApproximateNumberOfMessagesMoved"].as_i64().unwrap_or(0) >= 4,
    )
    .await;
    let b = ServerProcess::start(&[], &[("REDRIVE_STORE", &db)]).await;
    a.kill();
    let b_sqs = b.client();
    let killed_at = move_task_of(&b_sqs, arn).await;
    assert_eq!(killed_at["Status"], "RUNNING", "{killed_at}");
    let done = wait_until(
        in_secs(60),
        "never finished",
        || move_task_of(&b_sqs, arn),
        |t| t["Status"] != "RUNNING",
    )
    .await;
    assert_eq!(done["Status"], "COMPLETED", "{done}");
    assert_eq!(done["ApproximateNumberOfMessagesMoved"], N, "{done}");
    assert_eq!(
        b.client().attr(&dlq, "ApproximateNumberOfMessages").await,
        "0"
    );
    let got = drain_bodies(&b.client(), &src).await;
    let want: Vec<String> = (0..N).map(|i| format!("m{i:02}")).collect();
    assert_eq!(got, want, "every message moved exactly once");
}

/// `POST`/`GET` on a server's replay API: (status, JSON body).
async fn replay_api(
    endpoint: &str,
    method: &str,
    path: &str,
    body: serde_json::Value,
) -> (u16, serde_json::Value) {
    let http = reqwest::Client::new();
    let url = format!("{}{path}", endpoint.trim_end_matches('/'));
    let req = match method {
        "POST" => http
            .post(url)
            .header("content-type", "application/json")
            .body(body.to_string()),
        _ => http.get(url),
    };
    let resp = req.send().await.expect("replay API");
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("body");
    (
        status,
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}")),
    )
}

/// A slow replay (rate-limited, with a transform) on one process, that process SIGKILLed
/// mid-replay: the other process takes the replay's lease when it expires and finishes from
/// the persisted progress: every selected message in the source exactly once (rewritten), none
/// left in the DLQ, the progress and move log exact.
#[tokio::test]
async fn a_replay_survives_the_sigkill_of_its_server() {
    let db = url();
    let mut a = ServerProcess::start(&["--store", &db], &[]).await;
    const N: usize = 30;
    let DeadLettered {
        dlq_name, dlq, src, ..
    } = dead_lettered(&a.client(), &format!("rp-kill-{}", nanos()), N, |i| {
        json!({"i": i}).to_string()
    })
    .await;
    // Started while A is the only server, so A runs it: 3 messages a second.
    let (status, t) = replay_api(&a.endpoint(),
        "POST",
        "/_redrive/v1/replays",
        json!({"source": dlq_name, "dryRun": false, "rate": 3, "transform": ".replayed = true | tojson"}),
    )
    .await;
    assert_eq!(status, 201, "{t}");
    let id = t["id"].as_str().unwrap().to_string();
    let path = format!("/_redrive/v1/replays/{id}");
    let a_endpoint = a.endpoint();
    wait_until(
        in_secs(30),
        "no progress",
        || replay_of(&a_endpoint, &path),
        |t| t["moved"].as_u64().unwrap_or(0) >= 4,
    )
    .await;
    let b = ServerProcess::start(&[], &[("REDRIVE_STORE", &db)]).await;
    a.kill();
    let b_endpoint = b.endpoint();
    let killed_at = replay_of(&b_endpoint, &path).await;
    assert_eq!(killed_at["status"], "RUNNING", "{killed_at}");
    assert!(
        killed_at["moved"].as_u64().unwrap() < N as u64,
        "{killed_at}"
    );
    let done = wait_until(
        in_secs(60),
        "never finished",
        || replay_of(&b_endpoint, &path),
        |t| t["status"] != "RUNNING",
    )
    .await;
    assert_eq!(done["status"], "COMPLETED", "{done}");
    assert_eq!(done["moved"], N, "{done}");
    assert_eq!(done["skipped"], 0, "{done}");
    assert_eq!(done["failed"], 0, "{done}");
    assert_eq!(done["remaining"], 0, "{done}");
    let (_, log) = replay_api(&b.endpoint(), "GET", &format!("{path}/moves"), json!({})).await;
    let ns: Vec<u64> = log["moves"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["n"].as_u64().unwrap())
        .collect();
    assert_eq!(ns, (1..=N as u64).collect::<Vec<_>>(), "{log}");
    assert_eq!(
        b.client().attr(&dlq, "ApproximateNumberOfMessages").await,
        "0"
    );
    let got = drain_bodies(&b.client(), &src).await;
    let mut seen: Vec<u64> = got
        .iter()
        .map(|body| {
            let v: serde_json::Value = serde_json::from_str(body).expect("JSON body");
            assert_eq!(v["replayed"], true, "{v}");
            v["i"].as_u64().unwrap()
        })
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        (0..N as u64).collect::<Vec<_>>(),
        "every message replayed exactly once"
    );
}

/// `redrive replay` against one of two servers on a shared store takes the server-side path
/// (the replay API is there) and follows the replay to its end, whichever server runs it.
#[tokio::test]
async fn the_replay_command_runs_server_side_against_a_shared_store() {
    let db = url();
    let a = ServerProcess::start(&["--store", &db], &[]).await;
    let b = ServerProcess::start(&[], &[("REDRIVE_STORE", &db)]).await;
    let DeadLettered {
        dlq_name, dlq, src, ..
    } = dead_lettered(&a.client(), &format!("rp-cli-{}", nanos()), 6, |i| {
        json!({"i": i}).to_string()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.ndjson");
    let out = crate::replay::command(
        &b.endpoint(),
        &[
            "replay",
            &dlq_name,
            "--filter",
            ".i % 2 == 0",
            "--yes",
            "--audit-log",
            log.to_str().unwrap(),
        ],
    )
    .output()
    .expect("run redrive");
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    let journal = std::fs::read_to_string(&log).unwrap();
    assert!(journal.contains(r#""path":"server""#), "{journal}");
    assert_eq!(
        a.client().attr(&src, "ApproximateNumberOfMessages").await,
        "3"
    );
    assert_eq!(
        b.client().attr(&dlq, "ApproximateNumberOfMessages").await,
        "3"
    );
}

/// Two servers started together with one queue file on one PostgreSQL: the queues are created
/// once and their seed messages sent once (the servers apply the file one at a time), and a
/// third server started later finds them and sends nothing.
#[tokio::test]
async fn a_queue_file_applied_by_servers_starting_together_seeds_once() {
    let db = url();
    let prefix = format!("cfg-{}", nanos());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("queues.toml");
    std::fs::write(
        &file,
        format!(
            r#"
[[queue]]
name = "{prefix}-orders"
dead_letter_queue = {{ name = "{prefix}-orders-dlq", max_receive_count = 3 }}

[[queue.message]]
body = "seed-1"

[[queue.message]]
body = "seed-2"

[[queue]]
name = "{prefix}-orders-dlq"
"#
        ),
    )
    .unwrap();
    let file = file.to_str().unwrap();
    let args = ["--store", db.as_str(), "--config", file];
    let (a, b) = tokio::join!(
        ServerProcess::start(&args, &[]),
        ServerProcess::start(&args, &[]),
    );
    let c = ServerProcess::start(&args, &[]).await;
    let q = b
        .client()
        .call(
            "GetQueueUrl",
            json!({"QueueName": format!("{prefix}-orders")}),
        )
        .await
        .expect("the queue exists")["QueueUrl"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        c.client().attr(&q, "ApproximateNumberOfMessages").await,
        "2"
    );
    let policy = a.client().attr(&q, "RedrivePolicy").await;
    assert!(policy.contains(&format!("{prefix}-orders-dlq")), "{policy}");
    let mut bodies = drain_bodies(&a.client(), &q).await;
    bodies.sort();
    assert_eq!(bodies, ["seed-1", "seed-2"]);
}
