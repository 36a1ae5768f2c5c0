//! `redrive verify` on a data directory written by `redrive serve`: clean, then with a flipped
//! byte in a stored body (reported, exit 1), and after the server quarantined it on start.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::{Value, json};

use crate::harness::ServerProcess;

fn verify(dir: &Path, json: bool) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_redrive"));
    cmd.args(["verify", "--data-dir", dir.to_str().unwrap()]);
    if json {
        cmd.arg("--json");
    }
    cmd.output().expect("run redrive verify")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Flips one bit in every occurrence of `needle`; returns how many.
fn flip(file: &Path, needle: &[u8]) -> usize {
    let mut bytes = std::fs::read(file).unwrap();
    let mut hits = 0;
    for i in 0..bytes.len().saturating_sub(needle.len()) {
        if &bytes[i..i + needle.len()] == needle {
            bytes[i + needle.len() / 2] ^= 0x01;
            hits += 1;
        }
    }
    std::fs::write(file, bytes).unwrap();
    hits
}

#[tokio::test]
async fn verify_reports_a_flipped_body_and_the_server_never_serves_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = ServerProcess::start_durable(dir.path()).await;
    let sqs = server.client();
    let url = sqs.create_queue("verify-me", json!({})).await;
    for i in 0..3 {
        sqs.call(
            "SendMessage",
            json!({"QueueUrl": url, "MessageBody": format!("cli-marker-{i}-body"),
                   "MessageAttributes": {"k": {"DataType": "String", "StringValue": format!("v{i}")}}}),
        )
        .await
        .expect("send");
    }
    assert!(server.terminate().success());

    let out = verify(dir.path(), false);
    assert!(out.status.success(), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("ok: every record verified"),
        "{}",
        stdout(&out)
    );

    let file = dir.path().join(redrive_store::FILE_NAME);
    assert!(flip(&file, b"cli-marker-1-body") >= 1);
    let out = verify(dir.path(), false);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let text = stdout(&out);
    // Format 3: the body is in `message_body`; its header goes with it (format 5: a message
    // never received has no state record).
    assert!(text.contains("FAILED message_body 1/"), "{text}");
    assert!(text.contains("checksum mismatch"), "{text}");
    assert!(
        text.contains("1 records failed verification (1 more"),
        "{text}"
    );
    assert!(
        !text.contains("cli-marker"),
        "never prints contents: {text}"
    );

    let out = verify(dir.path(), true);
    assert_eq!(out.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    assert_eq!(report["ok"], false);
    assert_eq!(report["formatVersion"], redrive_store::FORMAT_VERSION);
    assert_eq!(report["failed"][0]["table"], "message_body");
    assert_eq!(report["failedCount"], 1);
    assert_eq!(report["failed"][1]["table"], "messages");
    assert_eq!(report["failed"][1]["failedVerification"], false);
    assert_eq!(report["failed"].as_array().unwrap().len(), 2);
    let messages = report["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == "message_body")
        .unwrap()
        .clone();
    assert_eq!(
        (messages["records"].clone(), messages["failed"].clone()),
        (json!(3), json!(1))
    );

    // The server starts (a load does not read payloads), and the receive that reads the damaged
    // body quarantines it (with its header) and never delivers it.
    let mut server = ServerProcess::start_durable(dir.path()).await;
    let sqs = server.client();
    let got = sqs.receive(&url, 10, 60, 1).await.expect("receive");
    let mut bodies: Vec<_> = got.into_iter().map(|(b, _)| b).collect();
    bodies.sort();
    assert_eq!(bodies, ["cli-marker-0-body", "cli-marker-2-body"]);
    // The inspection API lists what was quarantined (never its contents); health counts it.
    let get = |path: &str| {
        let url = format!("{}{path}", server.endpoint());
        async move {
            let text = reqwest::get(url).await.unwrap().text().await.unwrap();
            serde_json::from_str::<Value>(&text).unwrap()
        }
    };
    let q = get("_redrive/v1/quarantine").await;
    assert_eq!(q["count"], 2, "{q}");
    assert_eq!(q["failedVerification"], 1, "{q}");
    let failed = q["records"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["failedVerification"] == true)
        .unwrap();
    assert_eq!(failed["table"], "message_body", "{q}");
    assert!(
        failed["reason"].as_str().unwrap().contains("checksum"),
        "{q}"
    );
    assert!(!q.to_string().contains("cli-marker"), "never contents: {q}");
    let h = get("_redrive/v1/health").await;
    assert_eq!(h["status"], "ok", "{h}");
    assert_eq!(h["store"]["quarantinedRecords"], 2, "{h}");
    assert!(server.terminate().success());

    let out = verify(dir.path(), false);
    assert!(out.status.success(), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("2 records in the quarantine"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn verify_of_a_missing_directory_fails() {
    let dir = tempfile::tempdir().unwrap();
    let out = verify(&dir.path().join("nope"), false);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot verify"));
}
