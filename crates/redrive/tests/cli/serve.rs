//! `redrive serve` as users start it.

use serde_json::json;

use crate::harness::ServerProcess;

#[tokio::test]
async fn account_and_region_flags_shape_urls_and_arns() {
    let server = ServerProcess::start(
        &[
            "--in-memory",
            "--account-id",
            "123456789012",
            "--region",
            "eu-west-1",
        ],
        &[],
    )
    .await;
    let sqs = server.client();
    let url = sqs.create_queue("flags", json!({})).await;
    assert_eq!(
        url,
        format!("http://127.0.0.1:{}/123456789012/flags", server.port)
    );
    assert_eq!(
        sqs.attr(&url, "QueueArn").await,
        "arn:aws:sqs:eu-west-1:123456789012:flags"
    );
}

#[tokio::test]
async fn environment_variables_configure_the_server() {
    let server = ServerProcess::start(
        &[],
        &[
            ("REDRIVE_IN_MEMORY", "true"),
            ("REDRIVE_ACCOUNT_ID", "111122223333"),
        ],
    )
    .await;
    let url = server.client().create_queue("env", json!({})).await;
    assert!(url.ends_with("/111122223333/env"), "{url}");
}

#[tokio::test]
async fn sigterm_finishes_a_long_poll_and_exits_cleanly() {
    let mut server = ServerProcess::start(&["--in-memory"], &[]).await;
    let sqs = server.client();
    let url = sqs.create_queue("shutdown", json!({})).await;
    let poller = {
        let (sqs, url) = (sqs.clone(), url.clone());
        tokio::spawn(async move { sqs.receive(&url, 1, 30, 2).await })
    };
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let status = tokio::task::spawn_blocking(move || server.terminate())
        .await
        .unwrap();
    assert!(status.success(), "exit status {status:?}");
    // The in-flight long poll got an answer (empty), not a reset connection.
    let answer = poller
        .await
        .unwrap()
        .expect("long poll answered during shutdown");
    assert!(answer.is_empty());
}

/// `redrive health`, the container health check: 0 against a live server, 1 against a port
/// nobody listens on.
#[tokio::test]
async fn health_command_probes_a_server() {
    let server = ServerProcess::start(&["--in-memory"], &[]).await;
    let run = |endpoint: String| {
        std::process::Command::new(env!("CARGO_BIN_EXE_redrive"))
            .args(["health", "--endpoint", &endpoint])
            .output()
            .unwrap()
    };
    let ok = run(format!("http://127.0.0.1:{}", server.port));
    assert_eq!(ok.status.code(), Some(0));
    let down = run(format!("http://127.0.0.1:{}", crate::harness::free_port()));
    assert_eq!(down.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&down.stderr).contains("127.0.0.1"));
}
