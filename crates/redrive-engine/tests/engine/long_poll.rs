//! Long polling on the real runtime with the system clock.

use std::sync::Arc;
use std::time::{Duration, Instant};

use redrive_core::api::*;
use redrive_engine::{Engine, EngineConfig};

use crate::common::ctx;

async fn setup(name: &str) -> (Arc<Engine>, String) {
    let engine = Arc::new(Engine::in_memory(EngineConfig::default()));
    let url = engine
        .create_queue(
            &ctx(),
            CreateQueueInput {
                queue_name: name.into(),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .queue_url;
    (engine, url)
}

async fn send(engine: &Engine, url: &str, body: &str, delay: Option<i64>) -> String {
    engine
        .send_message(
            &ctx(),
            SendMessageInput {
                queue_url: url.into(),
                message_body: Some(body.into()),
                delay_seconds: delay,
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .message_id
}

async fn receive(engine: &Engine, url: &str, wait: i64, vis: Option<i64>) -> Vec<ReceivedMessage> {
    engine
        .receive_message(
            &ctx(),
            ReceiveMessageInput {
                queue_url: url.into(),
                wait_time_seconds: Some(wait),
                visibility_timeout: vis,
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .messages
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_poll_wakes_on_send_from_another_task() {
    let (engine, url) = setup("lp-send").await;
    let start = Instant::now();
    let poller = {
        let (engine, url) = (engine.clone(), url.clone());
        tokio::spawn(async move { receive(&engine, &url, 2, None).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let id = {
        let (engine, url) = (engine.clone(), url.clone());
        tokio::spawn(async move { send(&engine, &url, "wake up", None).await })
            .await
            .unwrap()
    };
    let got = poller.await.unwrap();
    let elapsed = start.elapsed();
    assert_eq!(got.len(), 1, "woken by the send, not timed out");
    assert_eq!(got[0].message_id, id);
    assert!(
        elapsed < Duration::from_millis(1_500),
        "took {elapsed:?}: should return right after the send"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_poll_wakes_when_a_delayed_message_becomes_due() {
    let (engine, url) = setup("lp-delay").await;
    let start = Instant::now();
    let id = send(&engine, &url, "delayed", Some(1)).await;
    let got = receive(&engine, &url, 3, None).await;
    let elapsed = start.elapsed();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].message_id, id);
    assert!(
        elapsed >= Duration::from_millis(900),
        "returned before the delay: {elapsed:?}"
    );
    assert!(elapsed < Duration::from_millis(2_500), "took {elapsed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_poll_wakes_when_visibility_expires_or_is_released() {
    let (engine, url) = setup("lp-vis").await;
    send(&engine, &url, "m", None).await;
    let first = receive(&engine, &url, 0, Some(1)).await;
    assert_eq!(first.len(), 1);

    // Visibility expiry is a timer like a delay.
    let start = Instant::now();
    let again = receive(&engine, &url, 3, Some(30)).await;
    let elapsed = start.elapsed();
    assert_eq!(again.len(), 1);
    assert!(elapsed < Duration::from_millis(2_500), "took {elapsed:?}");

    // ChangeMessageVisibility(0) from another task wakes a poller at once.
    let poller = {
        let (engine, url) = (engine.clone(), url.clone());
        tokio::spawn(async move { receive(&engine, &url, 5, None).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let start = Instant::now();
    engine
        .change_message_visibility(
            &ctx(),
            ChangeMessageVisibilityInput {
                queue_url: url.clone(),
                receipt_handle: Some(again[0].receipt_handle.clone()),
                visibility_timeout: Some(0),
            },
        )
        .await
        .unwrap();
    let got = poller.await.unwrap();
    assert_eq!(got.len(), 1);
    assert!(start.elapsed() < Duration::from_millis(1_500));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_poll_times_out_empty() {
    let (engine, url) = setup("lp-empty").await;
    let start = Instant::now();
    let got = receive(&engine, &url, 1, None).await;
    let elapsed = start.elapsed();
    assert!(got.is_empty());
    assert!(
        elapsed >= Duration::from_millis(950),
        "returned early: {elapsed:?}"
    );
    assert!(elapsed < Duration::from_millis(2_500), "took {elapsed:?}");
}
