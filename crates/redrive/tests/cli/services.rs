//! `redrive serve --store postgres://…` as real processes on one PostgreSQL (`source
//! tests/services/start.sh`; the `services` nextest profile): both flag and environment
//! variable, a message sent to one process received from another, and a process SIGKILLed
//! without losing anything it acknowledged.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::json;

use crate::harness::ServerProcess;

fn url() -> String {
    std::env::var("REDRIVE_TEST_POSTGRES_URL").expect(
        "REDRIVE_TEST_POSTGRES_URL is not set: `source tests/services/start.sh` first (the `services` nextest profile)",
    )
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
/// resurrected, no double delivery within a visibility timeout, FIFO order per group.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn checker_three_servers_on_postgres_with_sigkills() {
    let db = url();
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let seed = crate::checker::seed();
    println!("checker seed {seed} (REDRIVE_CHECKER_SEED to replay)");
    let mut cluster = crate::checker::Cluster::start(3, &["--store", &db]).await;
    let r = crate::checker::run(&mut cluster, &format!("chkpg-{nanos}"), 4, seed).await;
    println!(
        "{} acknowledged sends, {} deliveries, {} kills over 3 servers on PostgreSQL: no loss, no resurrection, no overlap, FIFO order kept",
        r.acked_sends, r.deliveries, r.kills
    );
}

/// A slow move task on one process, that process SIGKILLed mid-task: the other process takes
/// the task's lease when it expires and finishes from the persisted progress, every message
/// moved exactly once and the progress exact.
#[tokio::test]
async fn a_move_task_survives_the_sigkill_of_its_server() {
    let db = url();
    let mut a = ServerProcess::start(&["--store", &db], &[]).await;
    let suffix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let dlq_name = format!("mt-kill-dlq-{suffix}");
    let dlq = a.client().create_queue(&dlq_name, json!({})).await;
    let dlq_arn = a.client().attr(&dlq, "QueueArn").await;
    let src = a
        .client()
        .create_queue(
            &format!("mt-kill-src-{suffix}"),
            json!({"RedrivePolicy": json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 1}).to_string()}),
        )
        .await;
    const N: usize = 30;
    for i in 0..N {
        a.client()
            .call(
                "SendMessage",
                json!({"QueueUrl": src, "MessageBody": format!("m{i:02}")}),
            )
            .await
            .expect("send");
    }
    for _ in 0..100 {
        if a.client().attr(&src, "ApproximateNumberOfMessages").await == "0" {
            break;
        }
        a.client().receive(&src, 10, 0, 0).await.expect("receive");
    }
    assert_eq!(
        a.client().attr(&dlq, "ApproximateNumberOfMessages").await,
        N.to_string()
    );
    // Started while A is the only server, so A runs it: 3 messages a second.
    a.client()
        .call(
            "StartMessageMoveTask",
            json!({"SourceArn": dlq_arn, "MaxNumberOfMessagesPerSecond": 3}),
        )
        .await
        .expect("start");
    let list = |s: crate::harness::Sqs| {
        let arn = dlq_arn.clone();
        async move {
            s.call("ListMessageMoveTasks", json!({"SourceArn": arn}))
                .await
                .expect("list")["Results"][0]
                .clone()
        }
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let t = list(a.client()).await;
        if t["ApproximateNumberOfMessagesMoved"].as_i64().unwrap_or(0) >= 4 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no progress: {t}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let b = ServerProcess::start(&[], &[("REDRIVE_STORE", &db)]).await;
    a.kill();
    let killed_at = list(b.client()).await;
    assert_eq!(killed_at["Status"], "RUNNING", "{killed_at}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let done = loop {
        let t = list(b.client()).await;
        if t["Status"] != "RUNNING" {
            break t;
        }
        assert!(std::time::Instant::now() < deadline, "never finished: {t}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert_eq!(done["Status"], "COMPLETED", "{done}");
    assert_eq!(done["ApproximateNumberOfMessagesMoved"], N, "{done}");
    assert_eq!(
        b.client().attr(&dlq, "ApproximateNumberOfMessages").await,
        "0"
    );
    let mut got = Vec::new();
    for _ in 0..20 {
        let batch = b.client().receive(&src, 10, 60, 0).await.expect("receive");
        if batch.is_empty() {
            break;
        }
        got.extend(batch.into_iter().map(|(body, _)| body));
    }
    got.sort();
    let want: Vec<String> = (0..N).map(|i| format!("m{i:02}")).collect();
    assert_eq!(got, want, "every message moved exactly once");
}

/// `POST`/`GET` on a server's replay API: (status, JSON body).
async fn replay_api(
    s: &ServerProcess,
    method: &str,
    path: &str,
    body: serde_json::Value,
) -> (u16, serde_json::Value) {
    let http = reqwest::Client::new();
    let url = format!("{}{path}", s.endpoint().trim_end_matches('/'));
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
    let suffix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let dlq_name = format!("rp-kill-dlq-{suffix}");
    let dlq = a.client().create_queue(&dlq_name, json!({})).await;
    let dlq_arn = a.client().attr(&dlq, "QueueArn").await;
    let src = a
        .client()
        .create_queue(
            &format!("rp-kill-src-{suffix}"),
            json!({"RedrivePolicy": json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 1}).to_string()}),
        )
        .await;
    const N: usize = 30;
    for i in 0..N {
        a.client()
            .call(
                "SendMessage",
                json!({"QueueUrl": src, "MessageBody": json!({"i": i}).to_string()}),
            )
            .await
            .expect("send");
    }
    for _ in 0..100 {
        if a.client().attr(&src, "ApproximateNumberOfMessages").await == "0" {
            break;
        }
        a.client().receive(&src, 10, 0, 0).await.expect("receive");
    }
    assert_eq!(
        a.client().attr(&dlq, "ApproximateNumberOfMessages").await,
        N.to_string()
    );
    // Started while A is the only server, so A runs it: 3 messages a second.
    let (status, t) = replay_api(
        &a,
        "POST",
        "/_redrive/v1/replays",
        json!({"source": dlq_name, "dryRun": false, "rate": 3, "transform": ".replayed = true | tojson"}),
    )
    .await;
    assert_eq!(status, 201, "{t}");
    let id = t["id"].as_str().unwrap().to_string();
    let path = format!("/_redrive/v1/replays/{id}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let (_, t) = replay_api(&a, "GET", &path, json!({})).await;
        if t["moved"].as_u64().unwrap_or(0) >= 4 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no progress: {t}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let b = ServerProcess::start(&[], &[("REDRIVE_STORE", &db)]).await;
    a.kill();
    let (_, killed_at) = replay_api(&b, "GET", &path, json!({})).await;
    assert_eq!(killed_at["status"], "RUNNING", "{killed_at}");
    assert!(
        killed_at["moved"].as_u64().unwrap() < N as u64,
        "{killed_at}"
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let done = loop {
        let (_, t) = replay_api(&b, "GET", &path, json!({})).await;
        if t["status"] != "RUNNING" {
            break t;
        }
        assert!(std::time::Instant::now() < deadline, "never finished: {t}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert_eq!(done["status"], "COMPLETED", "{done}");
    assert_eq!(done["moved"], N, "{done}");
    assert_eq!(done["skipped"], 0, "{done}");
    assert_eq!(done["failed"], 0, "{done}");
    assert_eq!(done["remaining"], 0, "{done}");
    let (_, log) = replay_api(&b, "GET", &format!("{path}/moves"), json!({})).await;
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
    let mut got = Vec::new();
    for _ in 0..20 {
        let batch = b.client().receive(&src, 10, 60, 0).await.expect("receive");
        if batch.is_empty() {
            break;
        }
        got.extend(batch.into_iter().map(|(body, _)| body));
    }
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
    let suffix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let dlq_name = format!("rp-cli-dlq-{suffix}");
    let dlq = a.client().create_queue(&dlq_name, json!({})).await;
    let dlq_arn = a.client().attr(&dlq, "QueueArn").await;
    let src = a
        .client()
        .create_queue(
            &format!("rp-cli-src-{suffix}"),
            json!({"RedrivePolicy": json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 1}).to_string()}),
        )
        .await;
    for i in 0..6 {
        a.client()
            .call(
                "SendMessage",
                json!({"QueueUrl": src, "MessageBody": json!({"i": i}).to_string()}),
            )
            .await
            .expect("send");
    }
    for _ in 0..100 {
        if a.client().attr(&src, "ApproximateNumberOfMessages").await == "0" {
            break;
        }
        a.client().receive(&src, 10, 0, 0).await.expect("receive");
    }
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
