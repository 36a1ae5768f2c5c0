//! `redrive metrics` against a `redrive serve` child: the minute in progress is written at
//! SIGTERM and read back after a restart (durable store), as a table and as JSON; flags are
//! checked before the network; without a Redrive endpoint the command reads CloudWatch.

use std::process::{Command, Output};

use serde_json::{Value, json};

use crate::harness::ServerProcess;

/// Runs `redrive ARGS` with no AWS settings from the environment but `envs`.
fn redrive_env(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_redrive"));
    cmd.args(args);
    for (k, _) in std::env::vars() {
        if k.starts_with("AWS_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/nonexistent")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
        .env("AWS_REGION", "us-east-1");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.output().expect("run redrive")
}

fn redrive(endpoint: &str, args: &[&str]) -> Output {
    let mut all = args.to_vec();
    all.extend(["--endpoint-url", endpoint]);
    redrive_env(&all, &[])
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "redrive failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn failed(out: &Output) -> String {
    assert!(
        !out.status.success(),
        "expected a failure: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test]
async fn metrics_reads_the_history_kept_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = ServerProcess::start_durable(dir.path()).await;
    let sqs = server.client();
    let url = sqs.create_queue("hist-cli", json!({})).await;
    for i in 0..3 {
        sqs.call(
            "SendMessage",
            json!({"QueueUrl": url, "MessageBody": format!("m{i}")}),
        )
        .await
        .unwrap();
    }
    assert_eq!(sqs.receive(&url, 1, 600, 0).await.unwrap().len(), 1);
    // SIGTERM writes the minute in progress; the restarted server reads it from the store.
    assert!(server.terminate().success());
    let server = ServerProcess::start_durable(dir.path()).await;
    let endpoint = server.endpoint();

    let out = redrive(
        &endpoint,
        &["metrics", "hist-cli", "--since", "15m", "--format", "json"],
    );
    let v: Value = serde_json::from_str(&ok(&out)).unwrap();
    assert_eq!(v["queue"], "hist-cli");
    assert_eq!(v["period"], 60);
    let rows = v["rows"].as_array().expect("rows");
    assert!(!rows.is_empty(), "{v}");
    let total = |k: &str| rows.iter().map(|r| r[k].as_u64().unwrap()).sum::<u64>();
    assert_eq!(total("sent"), 3, "{v}");
    assert_eq!(total("received"), 1, "{v}");
    assert_eq!(total("deleted"), 0, "{v}");
    assert_eq!(v["series"].as_array().unwrap().len(), 15);

    let out = redrive(&endpoint, &["metrics", "hist-cli", "--period", "5m"]);
    let text = ok(&out);
    let header = text.lines().nth(1).unwrap_or_default();
    for col in [
        "time",
        "Sent",
        "Received",
        "Deleted",
        "EmptyReceives",
        "Visible",
        "NotVisible",
        "AgeOfOldest",
        "DLQArrivals",
    ] {
        assert!(header.contains(col), "{text}");
    }
    assert!(text.starts_with("hist-cli: "), "{text}");

    let err = failed(&redrive(&endpoint, &["metrics", "nope"]));
    assert!(err.contains("queue `nope` does not exist"), "{err}");
}

#[test]
fn bad_flags_and_aws_get_clear_errors() {
    let err = failed(&redrive_env(
        &[
            "metrics",
            "q",
            "--period",
            "30s",
            "--endpoint-url",
            "http://127.0.0.1:9",
        ],
        &[],
    ));
    assert!(err.contains("--period"), "{err}");
    let err = failed(&redrive_env(
        &[
            "metrics",
            "q",
            "--since",
            "last tuesday",
            "--endpoint-url",
            "http://127.0.0.1:9",
        ],
        &[],
    ));
    assert!(err.contains("--since"), "{err}");
    // AWS (no endpoint): the command reads CloudWatch (here an unreachable CloudWatch
    // endpoint, as the AWS CLI resolves `AWS_ENDPOINT_URL_CLOUDWATCH`).
    let err = failed(&redrive_env(
        &["metrics", "q"],
        &[
            ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
            ("AWS_SECRET_ACCESS_KEY", "secret"),
            ("AWS_ENDPOINT_URL_CLOUDWATCH", "http://127.0.0.1:9"),
        ],
    ));
    assert!(err.contains("cannot read CloudWatch"), "{err}");
    assert!(err.contains("Connection refused"), "{err}");
}

#[test]
fn the_retention_flag_is_checked() {
    let out = redrive_env(
        &["serve", "--in-memory", "--metrics-retention-days", "0"],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--metrics-retention-days"), "{err}");
    let out = redrive_env(
        &["serve", "--in-memory"],
        &[("REDRIVE_METRICS_RETENTION_DAYS", "two weeks")],
    );
    assert_eq!(out.status.code(), Some(2));
    let help = redrive_env(&["serve", "--help"], &[]);
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(
        text.contains("REDRIVE_METRICS_RETENTION_DAYS") && text.contains("[default: 15]"),
        "{text}"
    );
}
