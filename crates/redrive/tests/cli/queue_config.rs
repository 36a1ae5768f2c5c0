//! `serve --config`, `config check` and `config import-elasticmq` through the built binary.

use std::process::Command;

use serde_json::{Value, json};

use crate::harness::ServerProcess;

const CONFIG: &str = r#"
# A standard queue declared before its DLQ, a FIFO queue, tags, a redrive allow policy.
[[queue]]
name = "orders"
visibility_timeout = 45
receive_wait_time = 2
dead_letter_queue = { name = "orders-dlq", max_receive_count = 4 }
tags = { team = "payments", env = "dev" }

[[queue.message]]
body = '{"mall":"a","cmd":"sync"}'
attributes = { source = "seed" }

[[queue]]
name = "orders-dlq"
message_retention = 1209600
redrive_allow_policy = { permission = "byQueue", source_queues = ["orders"] }

[[queue]]
name = "events.fifo"
content_based_deduplication = true
deduplication_scope = "messageGroup"
fifo_throughput_limit = "perMessageGroupId"

[[queue.message]]
body = "first"
group_id = "g1"
"#;

fn redrive(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_redrive"))
        .args(args)
        .output()
        .expect("run redrive");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn all_attributes(sqs: &crate::harness::Sqs, url: &str) -> Value {
    sqs.call(
        "GetQueueAttributes",
        json!({"QueueUrl": url, "AttributeNames": ["All"]}),
    )
    .await
    .unwrap()["Attributes"]
        .clone()
}

#[tokio::test]
async fn config_creates_queues_as_declared_and_a_restart_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("queues.toml");
    std::fs::write(&file, CONFIG).unwrap();
    let data = dir.path().join("data");
    let args = [
        "--data-dir",
        data.to_str().unwrap(),
        "--config",
        file.to_str().unwrap(),
    ];
    let mut server = ServerProcess::start(&args, &[]).await;
    let sqs = server.client();
    let base = format!("http://127.0.0.1:{}/000000000000", server.port);
    let (orders, dlq, fifo) = (
        format!("{base}/orders"),
        format!("{base}/orders-dlq"),
        format!("{base}/events.fifo"),
    );

    let a = all_attributes(&sqs, &orders).await;
    assert_eq!(a["VisibilityTimeout"], "45");
    assert_eq!(a["ReceiveMessageWaitTimeSeconds"], "2");
    let policy: Value = serde_json::from_str(a["RedrivePolicy"].as_str().unwrap()).unwrap();
    assert_eq!(
        policy["deadLetterTargetArn"],
        "arn:aws:sqs:us-east-1:000000000000:orders-dlq"
    );
    assert_eq!(policy["maxReceiveCount"], 4);
    let tags = sqs
        .call("ListQueueTags", json!({"QueueUrl": orders}))
        .await
        .unwrap();
    assert_eq!(tags["Tags"], json!({"team": "payments", "env": "dev"}));

    let d = all_attributes(&sqs, &dlq).await;
    assert_eq!(d["MessageRetentionPeriod"], "1209600");
    let allow: Value = serde_json::from_str(d["RedriveAllowPolicy"].as_str().unwrap()).unwrap();
    assert_eq!(allow["redrivePermission"], "byQueue");
    assert_eq!(
        allow["sourceQueueArns"],
        json!(["arn:aws:sqs:us-east-1:000000000000:orders"])
    );

    let f = all_attributes(&sqs, &fifo).await;
    assert_eq!(f["FifoQueue"], "true");
    assert_eq!(f["ContentBasedDeduplication"], "true");
    assert_eq!(f["DeduplicationScope"], "messageGroup");
    assert_eq!(f["FifoThroughputLimit"], "perMessageGroupId");

    // The initial messages were sent once.
    assert_eq!(sqs.attr(&orders, "ApproximateNumberOfMessages").await, "1");
    assert_eq!(sqs.attr(&fifo, "ApproximateNumberOfMessages").await, "1");

    // A consumer changes the queue, then the server restarts with the same file: nothing
    // is re-sent, nothing reset.
    let got = sqs.receive(&orders, 1, 600, 0).await.unwrap();
    assert_eq!(got.len(), 1);
    assert!(server.terminate().success());
    let server = ServerProcess::start(&args, &[]).await;
    let sqs = server.client();
    let base = format!("http://127.0.0.1:{}/000000000000", server.port);
    let orders = format!("{base}/orders");
    assert_eq!(sqs.attr(&orders, "ApproximateNumberOfMessages").await, "0");
    assert_eq!(
        sqs.attr(&orders, "ApproximateNumberOfMessagesNotVisible")
            .await,
        "1"
    );
    assert_eq!(
        sqs.attr(
            &format!("{base}/events.fifo"),
            "ApproximateNumberOfMessages"
        )
        .await,
        "1"
    );
    let listed = sqs.call("ListQueues", json!({})).await.unwrap();
    assert_eq!(listed["QueueUrls"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn a_bad_config_is_refused_with_file_and_line_and_starts_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(
        &file,
        "[[queue]]\nname = \"ok\"\n\n[[queue]]\nname = \"slow\"\nvisibility_timeout = 99999\n",
    )
    .unwrap();
    let path = file.to_str().unwrap();
    let (code, _, err) = redrive(&["config", "check", path]);
    assert_eq!(code, 1);
    assert_eq!(
        err.trim(),
        format!(
            "{path}:6: queue `slow`, field `visibility_timeout`: Invalid value for the parameter VisibilityTimeout."
        )
    );
    // `serve` refuses it the same way, before creating anything.
    let data = dir.path().join("data");
    let (code, _, err) = redrive(&[
        "serve",
        "--port",
        &crate::harness::free_port().to_string(),
        "--data-dir",
        data.to_str().unwrap(),
        "--config",
        path,
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains(&format!("{path}:6:")), "{err}");
    // Nothing half-applied: the good queue before the bad one was not created either.
    let server = ServerProcess::start(&["--data-dir", data.to_str().unwrap()], &[]).await;
    let listed = server.client().call("ListQueues", json!({})).await.unwrap();
    assert!(
        listed
            .get("QueueUrls")
            .is_none_or(|q| q.as_array().unwrap().is_empty())
    );

    std::fs::write(&file, CONFIG).unwrap();
    let (code, out, err) = redrive(&["config", "check", path]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("ok, 3 queues, 2 messages"), "{out}");
}

#[tokio::test]
async fn elasticmq_import_produces_a_file_serve_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("elasticmq.conf");
    std::fs::write(
        &conf,
        "include classpath(\"application.conf\")\nqueues {\n  jobs {\n    defaultVisibilityTimeout = 10 seconds\n    \
         deadLettersQueue {\n      name = \"jobs-dead\"\n      maxReceiveCount = 3\n    }\n  }\n  jobs-dead { }\n}\n",
    )
    .unwrap();
    let (code, toml, err) = redrive(&["config", "import-elasticmq", conf.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let file = dir.path().join("queues.toml");
    std::fs::write(&file, &toml).unwrap();
    let server =
        ServerProcess::start(&["--in-memory", "--config", file.to_str().unwrap()], &[]).await;
    let sqs = server.client();
    let url = format!("http://127.0.0.1:{}/000000000000/jobs", server.port);
    assert_eq!(sqs.attr(&url, "VisibilityTimeout").await, "10");
    assert!(sqs.attr(&url, "RedrivePolicy").await.contains("jobs-dead"));
}
