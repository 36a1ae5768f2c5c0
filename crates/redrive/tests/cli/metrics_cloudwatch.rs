//! `redrive metrics --source cloudwatch` against our own server's CloudWatch API: the same
//! minute table as the Redrive history API, read through `aws-sdk-cloudwatch`. The server runs
//! on a test clock (`--test-clock-start`) and its history is flushed through the test hooks.

use std::process::Command;

use serde_json::{Value, json};

use crate::harness::ServerProcess;

fn metrics_json(endpoint: &str, source: &str) -> Value {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_redrive"));
    for (k, _) in std::env::vars() {
        if k.starts_with("AWS_") {
            cmd.env_remove(k);
        }
    }
    let out = cmd
        .args([
            "metrics",
            "cw-cli",
            "--since",
            "2026-04-20T20:15:00Z",
            "--until",
            "2026-04-20T20:30:00Z",
            "--format",
            "json",
            "--source",
            source,
            "--endpoint-url",
            endpoint,
        ])
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/nonexistent")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
        .env("AWS_REGION", "us-east-1")
        .output()
        .expect("run redrive");
    assert!(
        out.status.success(),
        "redrive metrics --source {source}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test]
async fn cloudwatch_source_reads_the_same_minutes_as_the_history_api() {
    let server = ServerProcess::start(
        &[
            "--in-memory",
            "--enable-reset-api",
            "--test-clock-start",
            "2026-04-20T20:20:00Z",
        ],
        &[],
    )
    .await;
    let endpoint = server.endpoint();
    let sqs = server.client();
    let url = sqs.create_queue("cw-cli", json!({})).await;
    for i in 0..7 {
        sqs.call(
            "SendMessage",
            json!({"QueueUrl": url, "MessageBody": format!("m{i}")}),
        )
        .await
        .unwrap();
    }
    assert_eq!(sqs.receive(&url, 3, 600, 0).await.unwrap().len(), 3);
    let http = reqwest::Client::new();
    for path in [
        "_redrive/v1/test/clock?advance=60",
        "_redrive/v1/test/history/flush",
    ] {
        let r = http.post(format!("{endpoint}{path}")).send().await.unwrap();
        assert!(r.status().is_success(), "{path}: {}", r.status());
    }

    let from_cloudwatch = metrics_json(&endpoint, "cloudwatch");
    let from_history = metrics_json(&endpoint, "redrive");
    let rows = from_cloudwatch["rows"].as_array().expect("rows");
    assert_eq!(
        rows.len(),
        2,
        "20:20 and the partial 20:21: {from_cloudwatch}"
    );
    assert_eq!(rows[0]["timestamp"], 1_776_716_400_000u64);
    assert_eq!(rows[0]["sent"], 7);
    assert_eq!(rows[0]["received"], 3);
    assert_eq!(rows[0]["visible"], 4);
    assert_eq!(rows[0]["notVisible"], 3);
    assert_eq!(rows[1]["sent"], 0);
    assert_eq!(from_cloudwatch["rows"], from_history["rows"]);
    assert_eq!(from_cloudwatch["queue"], "cw-cli");
}

/// moto (no history API; its CloudWatch does not speak RPC v2 CBOR, which
/// `aws-sdk-cloudwatch` sends): the fallback to CloudWatch fails with a line that says so.
/// Run by the `moto` nextest profile (.ci/run installs moto).
#[tokio::test]
async fn metrics_on_moto_says_what_the_endpoint_lacks() {
    let port = crate::harness::free_port();
    let mut child = Command::new("moto_server")
        .args(["-p", &port.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("moto_server is not on PATH: the moto tests run only in `cargo nextest run --profile moto`");
    let endpoint = format!("http://127.0.0.1:{port}/");
    let http = reqwest::Client::new();
    let mut ready = false;
    for _ in 0..300 {
        if http
            .get(format!("{endpoint}moto-api/"))
            .send()
            .await
            .is_ok()
        {
            ready = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(ready, "moto_server did not become ready");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_redrive"));
    for (k, _) in std::env::vars() {
        if k.starts_with("AWS_") {
            cmd.env_remove(k);
        }
    }
    let out = cmd
        .args(["metrics", "q", "--endpoint-url", &endpoint])
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/nonexistent")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
        .env("AWS_REGION", "us-east-1")
        .output()
        .expect("run redrive");
    let _ = child.kill();
    let _ = child.wait();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("CloudWatch error"), "{err}");
    assert!(err.contains("HTTP 404"), "{err}");
}

#[test]
fn the_test_clock_needs_the_reset_api_and_a_time() {
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_redrive"))
            .args(["serve", "--in-memory", "--port", "0"])
            .args(args)
            .output()
            .expect("run redrive")
    };
    let out = run(&["--test-clock-start", "2026-04-20T20:20:00Z"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--enable-reset-api"));
    let out = run(&["--enable-reset-api", "--test-clock-start", "soon"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--test-clock-start"));
}
