//! `redrive metrics --source cloudwatch` against our own server's CloudWatch API: the same
//! minute table as the Redrive history API, read through `aws-sdk-cloudwatch`. The server runs
//! on a test clock (`--test-clock-start`) and its history is flushed through the test hooks.

use std::process::Command;

use serde_json::{Value, json};

use crate::harness::ServerProcess;

/// Runs the built `redrive` with test credentials: `args`, then `--endpoint-url endpoint`.
fn redrive_at(endpoint: &str, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_redrive"))
        .args(args)
        .args(["--endpoint-url", endpoint])
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .output()
        .unwrap()
}

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

/// `redrive report` shows the minute series around the dominant sent minute (seed 000:
/// "Sent/Received spike hard in one minute, Deleted much lower, NotVisible jumps and stays
/// high"), for the source queue and the DLQ, from the server's minute history.
#[tokio::test]
async fn report_shows_the_burst_window_from_the_minute_history() {
    let server = ServerProcess::start(
        &[
            "--in-memory",
            "--enable-reset-api",
            "--test-clock-start",
            "2026-04-20T20:18:00Z",
        ],
        &[],
    )
    .await;
    let endpoint = server.endpoint();
    let sqs = server.client();
    let http = reqwest::Client::new();
    let post = |path: &'static str| {
        let (http, endpoint) = (http.clone(), endpoint.clone());
        async move {
            let r = http.post(format!("{endpoint}{path}")).send().await.unwrap();
            assert!(r.status().is_success(), "{path}: {}", r.status());
        }
    };
    // A minute's counts are written when it has ended: move the clock on, then flush.
    let next_minute = || async {
        post("_redrive/v1/test/clock?advance=60").await;
        post("_redrive/v1/test/history/flush").await;
    };
    let dlq = sqs.create_queue("burst-dlq", json!({})).await;
    let dlq_arn = sqs.attr(&dlq, "QueueArn").await;
    let src = sqs
        .create_queue(
            "burst-src",
            json!({"RedrivePolicy": json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 1}).to_string()}),
        )
        .await;
    // Two quiet minutes, then the burst minute 20:20: 12 sends, all received, 2 deleted.
    for _ in 0..2 {
        sqs.call(
            "SendMessage",
            json!({"QueueUrl": src, "MessageBody": "{\"mall\":\"a\"}"}),
        )
        .await
        .unwrap();
        next_minute().await;
    }
    for i in 0..12 {
        sqs.call(
            "SendMessage",
            json!({"QueueUrl": src, "MessageBody": format!("{{\"mall\":\"b\",\"n\":{i}}}")}),
        )
        .await
        .unwrap();
    }
    let got = sqs.receive(&src, 10, 1, 0).await.unwrap();
    let got2 = sqs.receive(&src, 10, 1, 0).await.unwrap();
    assert_eq!(got.len() + got2.len(), 14);
    for (_, handle) in got.iter().take(2) {
        sqs.call(
            "DeleteMessage",
            json!({"QueueUrl": src, "ReceiptHandle": handle}),
        )
        .await
        .unwrap();
    }
    // A minute later the visibility timeout has passed: the next receives move the rest
    // to the DLQ (maxReceiveCount 1).
    next_minute().await;
    assert!(sqs.receive(&src, 10, 1, 0).await.unwrap().is_empty());
    assert!(sqs.receive(&src, 10, 1, 0).await.unwrap().is_empty());
    next_minute().await;

    let out = redrive_at(&endpoint, &["report", "burst-src", "--format", "json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["stats"]["burst"]["minute"], "2026-04-20T20:20:00Z");
    assert!(report["burstWindowNote"].is_null(), "{report}");
    let windows = report["burstWindow"].as_array().unwrap();
    let names: Vec<&str> = windows
        .iter()
        .map(|t| t["queue"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["burst-src", "burst-dlq"]);
    let row = |t: &Value, minute: &str| {
        let ms = redrive_minute_ms(minute);
        t["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["timestamp"] == ms)
            .cloned()
            .unwrap_or_else(|| panic!("no row {minute} in {t}"))
    };
    let burst = row(&windows[0], "20:20");
    assert_eq!(burst["sent"], 12, "{}", windows[0]["rows"]);
    assert_eq!(burst["received"], 14);
    assert_eq!(burst["deleted"], 2);
    assert_eq!(row(&windows[0], "20:18")["sent"], 1);
    assert_eq!(
        row(&windows[1], "20:21")["deadLetterArrivals"],
        12,
        "{}",
        windows[1]["rows"]
    );

    let md = redrive_at(&endpoint, &["report", "burst-src"]);
    let md = String::from_utf8_lossy(&md.stdout);
    assert!(md.contains("## Burst window (per minute)"), "{md}");
    assert!(
        md.contains("| 2026-04-20T20:20:00Z ◀ burst | 12 | 14 | 2 |"),
        "{md}"
    );
    assert!(md.contains("far fewer deletes than receives"), "{md}");

    // `status` finds the dominant dead-letter minute in the DLQ's history by itself (no
    // message scan) and shows the same window around it.
    let out = redrive_at(&endpoint, &["status", "burst-src", "--format", "json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let st: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(st["deadLetterMinute"], redrive_minute_ms("20:21"), "{st}");
    let names: Vec<&str> = st["burstWindow"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["queue"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["burst-src", "burst-dlq"]);
    assert_eq!(row(&st["burstWindow"][0], "20:20")["received"], 14);
}

/// Epoch ms of 2026-04-20 at `HH:MM` UTC.
fn redrive_minute_ms(hh_mm: &str) -> u64 {
    let (h, m) = hh_mm.split_once(':').unwrap();
    // 2026-04-20T00:00:00Z
    1_776_643_200_000 + (h.parse::<u64>().unwrap() * 60 + m.parse::<u64>().unwrap()) * 60_000
}

/// `redrive status` reads the DLQ's CloudWatch alarms and their history (seed 000: "check
/// whether the alarm itself is new"): an alarm created on a backlog that was already there is
/// called new alerting on old residue; one created while the DLQ was empty is not.
#[tokio::test]
async fn status_tells_an_alarm_created_on_old_residue_from_a_new_incident() {
    let server = ServerProcess::start(
        &[
            "--in-memory",
            "--enable-reset-api",
            "--test-clock-start",
            "2026-04-20T20:18:00Z",
        ],
        &[],
    )
    .await;
    let endpoint = server.endpoint();
    let sqs = server.client();
    let http = reqwest::Client::new();
    let post = |path: &'static str| {
        let (http, endpoint) = (http.clone(), endpoint.clone());
        async move {
            let r = http.post(format!("{endpoint}{path}")).send().await.unwrap();
            assert!(r.status().is_success(), "{path}: {}", r.status());
        }
    };
    let next_minute = || async {
        post("_redrive/v1/test/clock?advance=60").await;
        post("_redrive/v1/test/history/flush").await;
    };
    let put_alarm = |name: &'static str, dlq: &'static str| {
        let (http, endpoint) = (http.clone(), endpoint.clone());
        async move {
            let body = json!({
                "AlarmName": name, "Namespace": "AWS/SQS",
                "MetricName": "ApproximateNumberOfMessagesVisible",
                "Dimensions": [{"Name": "QueueName", "Value": dlq}],
                "Statistic": "Maximum", "Period": 60, "EvaluationPeriods": 1,
                "Threshold": 0, "ComparisonOperator": "GreaterThanThreshold",
            });
            let r = http
                .post(&endpoint)
                .header(
                    "x-amz-target",
                    "GraniteServiceVersion20100801.PutMetricAlarm",
                )
                .header("content-type", "application/x-amz-json-1.0")
                .body(body.to_string())
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
        }
    };
    // Two source/DLQ pairs: `old` dead-letters now, `new` later.
    let mut srcs = Vec::new();
    for name in ["old", "new"] {
        let dlq = sqs.create_queue(&format!("{name}-dlq"), json!({})).await;
        let arn = sqs.attr(&dlq, "QueueArn").await;
        let src = sqs
            .create_queue(
                &format!("{name}-src"),
                json!({"RedrivePolicy": json!({"deadLetterTargetArn": arn, "maxReceiveCount": 1}).to_string(), "VisibilityTimeout": "30"}),
            )
            .await;
        srcs.push(src);
    }
    let dead_letter = |src: String, n: usize| {
        let sqs = server.client();
        async move {
            for i in 0..n {
                sqs.call(
                    "SendMessage",
                    json!({"QueueUrl": src, "MessageBody": format!("{{\"n\":{i}}}")}),
                )
                .await
                .unwrap();
            }
            assert_eq!(sqs.receive(&src, 10, 1, 0).await.unwrap().len(), n);
        }
    };
    dead_letter(srcs[0].clone(), 4).await;
    next_minute().await;
    assert!(sqs.receive(&srcs[0], 10, 1, 0).await.unwrap().is_empty());
    // The `new` DLQ's alarm exists before anything fails there.
    put_alarm("new-dlq-alarm", "new-dlq").await;
    for _ in 0..20 {
        next_minute().await;
    }
    // Twenty minutes into the backlog, someone adds the alarm on `old-dlq`.
    put_alarm("old-dlq-alarm", "old-dlq").await;
    dead_letter(srcs[1].clone(), 3).await;
    next_minute().await;
    assert!(sqs.receive(&srcs[1], 10, 1, 0).await.unwrap().is_empty());
    next_minute().await;

    let status = |queue: &'static str| {
        let endpoint = endpoint.clone();
        async move {
            let out = redrive_at(&endpoint, &["status", queue, "--format", "json"]);
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            serde_json::from_slice::<Value>(&out.stdout).unwrap()
        }
    };
    let old = status("old-src").await;
    assert!(old["alarmsNote"].is_null(), "{old}");
    let a = &old["alarms"][0];
    assert_eq!(a["alarm"], "old-dlq-alarm", "{old}");
    assert_eq!(a["state"], "ALARM");
    assert_eq!(a["preExistingBacklog"], true, "{a}");
    assert_eq!(a["visibleAtCreation"], 4, "{a}");
    let minute = |v: &Value| v.as_u64().unwrap() / 60_000 * 60_000;
    assert_eq!(minute(&a["createdMs"]), redrive_minute_ms("20:39"), "{a}");
    // The alarm is evaluated when it is created: ALARM at once.
    assert_eq!(a["firstAlarmMs"], a["createdMs"], "{a}");
    let verdict = a["verdict"].as_str().unwrap();
    assert!(
        verdict.contains("on a backlog that already existed (4 messages visible just before)")
            && verdict.contains("new alerting on old residue"),
        "{verdict}"
    );

    let new = status("new-src").await;
    let a = &new["alarms"][0];
    assert_eq!(a["alarm"], "new-dlq-alarm", "{new}");
    assert_eq!(a["preExistingBacklog"], false, "{a}");
    assert_eq!(a["state"], "ALARM");
    let verdict = a["verdict"].as_str().unwrap();
    assert!(
        verdict.contains("while the DLQ was empty") && verdict.contains("means new dead letters"),
        "{verdict}"
    );

    // The table says the same.
    let out = redrive_at(&endpoint, &["status", "old-src"]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("CloudWatch alarms on the DLQ:"), "{table}");
    assert!(
        table.contains("[ALARM] alarm `old-dlq-alarm` created at 2026-04-20T20:39"),
        "{table}"
    );
}
