//! A full disk, end to end, on a real small file system: the data directory is a tmpfs the test
//! mounts. Needs root, so it is `#[ignore]`d in the README's test command (reported as
//! skipped there); `.ci/run` runs it as root with `--run-ignored only`, where it fails rather
//! than skip if it cannot mount.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::{ServerProcess, Sqs};

struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Tmpfs {
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .expect("run mount");
        assert!(
            status.success(),
            "mounting a tmpfs failed: this test needs root (run by .ci/run)"
        );
        Tmpfs(dir.to_path_buf())
    }

    fn resize(&self, size: &str) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .status()
            .expect("run mount");
        assert!(status.success(), "remount failed");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

async fn health(server: &ServerProcess) -> (u16, Value) {
    let r = reqwest::get(format!("{}_redrive/v1/health", server.endpoint()))
        .await
        .expect("health");
    let status = r.status().as_u16();
    let text = r.text().await.expect("health body");
    (status, serde_json::from_str(&text).expect("health json"))
}

async fn count(sqs: &Sqs, url: &str) -> (u64, u64) {
    let n = |s: String| s.parse::<u64>().unwrap();
    (
        n(sqs.attr(url, "ApproximateNumberOfMessages").await),
        n(sqs.attr(url, "ApproximateNumberOfMessagesNotVisible").await),
    )
}

#[tokio::test]
#[ignore = "needs root to mount a tmpfs; .ci/run runs it"]
async fn a_full_disk_loses_nothing_and_writes_resume_without_a_restart() {
    let root = tempfile::tempdir().unwrap();
    let fs = Tmpfs::mount(root.path(), "12m");
    let data = root.path().join("data");
    let data_s = data.to_str().unwrap().to_string();
    let args = ["--data-dir", data_s.as_str(), "--disk-reserve-mib", "2"];
    let mut server = ServerProcess::start(&args, &[]).await;
    let sqs = server.client();
    let url = sqs.create_queue("full", json!({})).await;
    let spare = sqs.create_queue("spare", json!({})).await;
    for i in 0..5 {
        sqs.call(
            "SendMessage",
            json!({"QueueUrl": spare, "MessageBody": format!("spare-{i}")}),
        )
        .await
        .unwrap();
    }
    let (code, h) = health(&server).await;
    assert_eq!((code, h["status"].as_str()), (200, Some("ok")), "{h}");

    // Fill the disk: every acknowledged send is recorded.
    let pad = "x".repeat(8 * 1024);
    let mut acked: HashSet<String> = HashSet::new();
    let mut first_error = None;
    for i in 0..10_000 {
        let body = format!("{i}-{pad}");
        match sqs
            .call("SendMessage", json!({"QueueUrl": url, "MessageBody": body}))
            .await
        {
            Ok(_) => {
                acked.insert(format!("{i}"));
            }
            Err(e) => {
                first_error = Some(e.0);
                break;
            }
        }
    }
    let first_error = first_error.expect("the disk never filled up");
    assert!(
        first_error.contains("InternalError") || first_error.contains("ServiceUnavailable"),
        "{first_error}"
    );
    assert!(acked.len() > 100, "only {} sends fit", acked.len());

    // While space is short, sends are refused before they change anything (retryable 503)…
    for i in 0..5 {
        let e = sqs
            .call(
                "SendMessage",
                json!({"QueueUrl": url, "MessageBody": format!("refused-{i}")}),
            )
            .await
            .expect_err("a send on a full disk");
        assert!(e.0.contains("ServiceUnavailable"), "{}", e.0);
    }
    let (code, h) = health(&server).await;
    assert_eq!((code, h["status"].as_str()), (200, Some("degraded")), "{h}");
    assert!(h["store"]["lowSpace"].is_string(), "{h}");
    // …and the counts hold exactly the acknowledged sends.
    assert_eq!(count(&sqs, &url).await, (acked.len() as u64, 0));

    // Consumers can drain: receive, delete and purge commit on the full disk.
    let got = sqs
        .receive(&url, 10, 30, 0)
        .await
        .expect("receive while full");
    assert_eq!(got.len(), 10);
    for (body, handle) in &got {
        sqs.call(
            "DeleteMessage",
            json!({"QueueUrl": url, "ReceiptHandle": handle}),
        )
        .await
        .expect("delete while full");
        assert!(acked.remove(body.split('-').next().unwrap()));
    }
    sqs.call("PurgeQueue", json!({"QueueUrl": spare}))
        .await
        .expect("purge while full");
    assert_eq!(count(&sqs, &url).await, (acked.len() as u64, 0));

    // More room: writes resume without a restart once the reserve is back.
    fs.resize("64m");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (_, h) = health(&server).await;
        if h["status"] == "ok" {
            break;
        }
        assert!(Instant::now() < deadline, "never recovered: {h}");
        // Keep the store's writer busy (receives write their state): its free-space check must
        // not be postponed by requests arriving more often than once a second.
        sqs.receive(&url, 1, 0, 0)
            .await
            .expect("receive while waiting");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for i in 0..20 {
        let body = format!("after{i}-{pad}");
        sqs.call("SendMessage", json!({"QueueUrl": url, "MessageBody": body}))
            .await
            .expect("send after the file system grew");
        acked.insert(format!("after{i}"));
    }
    assert_eq!(count(&sqs, &url).await, (acked.len() as u64, 0));

    // A restart finds exactly the acknowledged state.
    server.kill();
    let server = ServerProcess::start(&args, &[]).await;
    let sqs = server.client();
    let mut found = HashSet::new();
    loop {
        let got = sqs.receive(&url, 10, 900, 0).await.expect("receive");
        if got.is_empty() {
            break;
        }
        for (body, _) in got {
            assert!(
                found.insert(body.split('-').next().unwrap().to_string()),
                "duplicate"
            );
        }
    }
    assert_eq!(found, acked, "after a restart");
    assert_eq!(
        sqs.attr(&spare, "ApproximateNumberOfMessages").await,
        "0",
        "the purge while full stays done"
    );
    drop(server);
}
