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
