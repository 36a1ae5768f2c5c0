//! `redrive alerts` through the built binary against a `redrive serve` child with a durable
//! store: add, list, silence, a restart that keeps rules and silences, history, unsilence,
//! remove; bad flags fail before anything is sent and add nothing.

use std::process::{Command, Output};

use serde_json::Value;

use crate::harness::ServerProcess;

fn redrive(endpoint: Option<&str>, args: &[&str]) -> Output {
    redrive_env(endpoint, args, &[])
}

fn redrive_env(endpoint: Option<&str>, args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_redrive"));
    cmd.args(args);
    if let Some(e) = endpoint {
        cmd.args(["--endpoint-url", e]);
    }
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

fn list_json(endpoint: &str) -> Value {
    serde_json::from_str(&ok(&redrive(
        Some(endpoint),
        &["alerts", "list", "--format", "json"],
    )))
    .unwrap()
}

#[tokio::test]
async fn alerts_commands_against_a_server_kept_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = ServerProcess::start_durable(dir.path()).await;
    let ep = server.endpoint();
    let sqs = server.client();
    sqs.create_queue("orders-dlq", serde_json::json!({})).await;

    // Bad flags: refused before anything is sent.
    for args in [
        vec!["alerts", "add", "x", "--queue", "q"],
        vec![
            "alerts", "add", "x", "--queue", "q", "--depth", "1", "--age", "1h",
        ],
        vec![
            "alerts", "add", "x", "--queue", "q", "--depth", "1", "--for", "90s",
        ],
        vec![
            "alerts",
            "add",
            "x",
            "--queue",
            "q",
            "--growth",
            "5",
            "--webhook",
            "ftp://h",
        ],
        vec!["alerts", "silence", "--for", "1h"],
    ] {
        failed(&redrive(Some(&ep), &args));
    }
    // Refused by the server: nothing half-applied.
    let err = failed(&redrive(
        Some(&ep),
        &["alerts", "add", "bad name", "--queue", "q", "--depth", "1"],
    ));
    assert!(err.contains("InvalidParameterValue"), "{err}");
    assert_eq!(list_json(&ep)["rules"], serde_json::json!([]));

    let added = ok(&redrive(
        Some(&ep),
        &[
            "alerts",
            "add",
            "dlq-p0",
            "--queue",
            "*-dlq",
            "--depth",
            "100",
            "--severity",
            "P0",
            "--slack-webhook",
            "http://127.0.0.1:9/hook",
            "--format",
            "json",
        ],
    ));
    let rule: Value = serde_json::from_str(&added).unwrap();
    assert_eq!(rule["condition"]["threshold"], 100);
    assert_eq!(rule["webhooks"][0]["format"], "slack");
    ok(&redrive(
        Some(&ep),
        &[
            "alerts",
            "add",
            "dlq-any",
            "--queue",
            "orders-dlq",
            "--arrivals",
            "10",
            "--per",
            "1h",
        ],
    ));
    let silenced = ok(&redrive(
        Some(&ep),
        &[
            "alerts",
            "silence",
            "--rule",
            "dlq-p0",
            "--for",
            "2h",
            "--comment",
            "deploy",
        ],
    ));
    assert!(silenced.starts_with("silence "), "{silenced}");
    let table = ok(&redrive(Some(&ep), &["alerts", "list"]));
    assert!(
        table.contains("dlq-p0") && table.contains("depth ≥ 100 for 1m"),
        "{table}"
    );
    assert!(table.contains("arrivals ≥ 10 in 60m"), "{table}");
    assert!(
        table.contains("silences:") && table.contains("deploy"),
        "{table}"
    );
    let before = list_json(&ep);

    server.terminate();
    let server = ServerProcess::start_durable(dir.path()).await;
    let ep = server.endpoint();
    let after = list_json(&ep);
    assert_eq!(after, before, "rules and silences survive a restart");

    let history = ok(&redrive(
        Some(&ep),
        &["alerts", "history", "--rule", "dlq-p0"],
    ));
    assert_eq!(history, "(no transitions)\n");
    let silence_id = after["silences"][0]["id"].as_str().unwrap().to_string();
    ok(&redrive(Some(&ep), &["alerts", "unsilence", &silence_id]));
    ok(&redrive(Some(&ep), &["alerts", "remove", "dlq-p0"]));
    let err = failed(&redrive(Some(&ep), &["alerts", "remove", "dlq-p0"]));
    assert!(err.contains("ResourceNotFoundException"), "{err}");
    let left = list_json(&ep);
    assert_eq!(left["rules"].as_array().unwrap().len(), 1);
    assert_eq!(left["silences"], serde_json::json!([]));
}

#[test]
fn alerts_without_a_redrive_endpoint_point_to_cloudwatch() {
    let err = failed(&redrive_env(
        None,
        &["alerts", "list"],
        &[
            ("AWS_ACCESS_KEY_ID", "AKID"),
            ("AWS_SECRET_ACCESS_KEY", "secret"),
        ],
    ));
    assert!(err.contains("CloudWatch alarms"), "{err}");
}
