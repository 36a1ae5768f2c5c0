//! Message move tasks (DLQ redrive) and the DLQ-related scenarios recorded against AWS
//! (`sqs-semantics.md` §10–12), black-box over the JSON protocol (aws-sdk-sqs) and the Query
//! protocol (raw forms), plus the `/_redrive/v1/` inspection extension on DLQs.
//!
//! The lazy move itself and ListDeadLetterSourceQueues are covered in `dlq.rs`; this module
//! only adds what that file does not check.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use aws_sdk_sqs::types::{
    ListMessageMoveTasksResultEntry, MessageSystemAttributeNameForSends,
    MessageSystemAttributeValue, QueueAttributeName,
};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use crate::common::*;
use crate::expect_err;

const V: (&str, &str) = ("Version", "2012-11-05");

fn policy(dlq: &str, max: u32) -> String {
    format!(
        r#"{{"deadLetterTargetArn":"{}","maxReceiveCount":{max}}}"#,
        TestServer::arn(dlq)
    )
}

fn handle_for(task_id: &str, source_arn: &str) -> String {
    STANDARD.encode(json!({"taskId": task_id, "sourceArn": source_arn}).to_string())
}

/// Creates a source queue named `src` whose RedrivePolicy (maxReceiveCount 1) targets the
/// existing queue `dlq`; returns its URL.
async fn source_of(ts: &TestServer, src: &str, dlq: &str) -> String {
    ts.create_with(src, &[("RedrivePolicy", &policy(dlq, 1))])
        .await
}

/// Creates a DLQ and one source for it (maxReceiveCount 1); returns `(source, dlq)` URLs.
async fn dlq_pair(ts: &TestServer, src: &str, dlq: &str) -> (String, String) {
    let dlq_url = ts.create(dlq).await;
    (source_of(ts, src, dlq).await, dlq_url)
}

/// Sends one message per body to `src` and dead-letters them all: each is received once with
/// visibility 0, and the following receives move it. Returns the MessageIds.
async fn dead_letter(ts: &TestServer, src: &str, bodies: &[&str]) -> Vec<String> {
    let mut ids = Vec::new();
    for b in bodies {
        ids.push(ts.send(src, b).await);
    }
    for _ in 0..50 {
        if ts.counts(src).await == (0, 0, 0) {
            return ids;
        }
        ts.receive(src, 10, Some(0)).await;
    }
    panic!("source {src} never drained into its DLQ");
}

async fn start(ts: &TestServer, source: &str, dest: Option<&str>, rate: Option<i32>) -> String {
    ts.client
        .start_message_move_task()
        .source_arn(TestServer::arn(source))
        .set_destination_arn(dest.map(TestServer::arn))
        .set_max_number_of_messages_per_second(rate)
        .send()
        .await
        .unwrap_or_else(|e| panic!("start move task on {source}: {}", describe(&e)))
        .task_handle
        .expect("TaskHandle")
}

async fn list(
    ts: &TestServer,
    source: &str,
    max: Option<i32>,
) -> Vec<ListMessageMoveTasksResultEntry> {
    ts.client
        .list_message_move_tasks()
        .source_arn(TestServer::arn(source))
        .set_max_results(max)
        .send()
        .await
        .unwrap_or_else(|e| panic!("list move tasks: {}", describe(&e)))
        .results
        .unwrap_or_default()
}

async fn latest(ts: &TestServer, source: &str) -> ListMessageMoveTasksResultEntry {
    let mut v = list(ts, source, None).await;
    assert_eq!(v.len(), 1, "default MaxResults is 1: {v:?}");
    v.remove(0)
}

/// Polls the newest task of `source` until its status is one of `want`.
async fn wait_for(
    ts: &TestServer,
    source: &str,
    want: &[&str],
    timeout: Duration,
) -> ListMessageMoveTasksResultEntry {
    let deadline = Instant::now() + timeout;
    loop {
        let t = latest(ts, source).await;
        if want.contains(&t.status().unwrap_or("")) {
            return t;
        }
        assert!(
            Instant::now() < deadline,
            "task never reached {want:?} within {timeout:?}: {t:?}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Receives everything currently visible in `url` (visibility 60 s) and returns the messages.
async fn receive_all(ts: &TestServer, url: &str) -> Vec<aws_sdk_sqs::types::Message> {
    let mut out = Vec::new();
    for _ in 0..20 {
        let got = ts.receive(url, 10, Some(60)).await;
        if got.is_empty() {
            break;
        }
        out.extend(got);
    }
    out
}

fn body_set(ms: &[aws_sdk_sqs::types::Message]) -> BTreeSet<String> {
    ms.iter()
        .map(|m| m.body().unwrap_or("").to_string())
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

// ---------------------------------------------------------------------------------------------
// The automatic move: what dlq.rs does not check.

#[tokio::test]
async fn dlq_move_keeps_trace_header_and_first_receive_timestamp() {
    let ts = TestServer::start().await;
    let (src, dlq) = dlq_pair(&ts, "trace-src", "trace-dlq").await;
    let trace = "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1";
    ts.client
        .send_message()
        .queue_url(&src)
        .message_body("traced")
        .message_system_attributes(
            MessageSystemAttributeNameForSends::AwsTraceHeader,
            MessageSystemAttributeValue::builder()
                .data_type("String")
                .string_value(trace)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let first = ts.receive(&src, 1, Some(0)).await;
    let first_receive = sys_attr(&first[0], "ApproximateFirstReceiveTimestamp").unwrap();
    assert!(ts.receive(&src, 1, Some(0)).await.is_empty());
    let m = ts.receive(&dlq, 1, None).await;
    assert_eq!(m.len(), 1);
    assert_eq!(sys_attr(&m[0], "AWSTraceHeader").as_deref(), Some(trace));
    assert_eq!(
        sys_attr(&m[0], "ApproximateFirstReceiveTimestamp"),
        Some(first_receive)
    );
    assert_eq!(
        sys_attr(&m[0], "DeadLetterQueueSourceArn"),
        Some(TestServer::arn("trace-src"))
    );
}

// ---------------------------------------------------------------------------------------------
// StartMessageMoveTask / CancelMessageMoveTask errors (AWS-recorded texts).

#[tokio::test]
async fn start_rejects_invalid_requests_with_aws_errors() {
    let ts = TestServer::start().await;
    let (src, _dlq) = dlq_pair(&ts, "err-src", "err-dlq").await;
    ts.create("plain").await;
    ts.create_with("dest.fifo", &[("FifoQueue", "true")]).await;

    // Not any queue's DLQ.
    let (code, status, msg) = expect_err!(
        ts.client
            .start_message_move_task()
            .source_arn(TestServer::arn("plain"))
            .send()
    );
    assert_eq!(
        (code.as_str(), status, msg.as_str()),
        (
            "InvalidParameterValue",
            400,
            "Source queue must be configured as a Dead Letter Queue."
        )
    );

    // A source queue is not a DLQ either.
    let (code, status, _) = expect_err!(
        ts.client
            .start_message_move_task()
            .source_arn(TestServer::arn("err-src"))
            .send()
    );
    assert_eq!((code.as_str(), status), ("InvalidParameterValue", 400));

    // Unknown source.
    let (code, status, msg) = expect_err!(
        ts.client
            .start_message_move_task()
            .source_arn(TestServer::arn("no-such-dlq"))
            .send()
    );
    assert_eq!(
        (code.as_str(), status, msg.as_str()),
        (
            "ResourceNotFoundException",
            404,
            "The resource that you specified for the SourceArn parameter doesn't exist."
        )
    );

    // Unknown destination.
    let (code, status, msg) = expect_err!(
        ts.client
            .start_message_move_task()
            .source_arn(TestServer::arn("err-dlq"))
            .destination_arn(TestServer::arn("no-such-dest"))
            .send()
    );
    assert_eq!(
        (code.as_str(), status, msg.as_str()),
        (
            "ResourceNotFoundException",
            404,
            "The resource that you specified for the DestinationArn parameter doesn't exist."
        )
    );

    // Rate outside 1..500 (AWS's text is unrecorded; the parameter must be named).
    for rate in [0, 501, -1] {
        let (code, status, msg) = expect_err!(
            ts.client
                .start_message_move_task()
                .source_arn(TestServer::arn("err-dlq"))
                .max_number_of_messages_per_second(rate)
                .send()
        );
        assert_eq!(
            (code.as_str(), status),
            ("InvalidParameterValue", 400),
            "{rate}"
        );
        assert!(
            msg.contains("MaxNumberOfMessagesPerSecond"),
            "{rate}: {msg}"
        );
    }

    // Standard DLQ to a FIFO destination.
    let (code, status, _) = expect_err!(
        ts.client
            .start_message_move_task()
            .source_arn(TestServer::arn("err-dlq"))
            .destination_arn(TestServer::arn("dest.fifo"))
            .send()
    );
    assert_eq!((code.as_str(), status), ("InvalidParameterValue", 400));

    // None of the failures created a task.
    assert!(list(&ts, "err-dlq", Some(10)).await.is_empty());

    // A second task while one is active.
    dead_letter(&ts, &src, &["a", "b", "c"]).await;
    start(&ts, "err-dlq", None, Some(1)).await;
    let (code, status, msg) = expect_err!(
        ts.client
            .start_message_move_task()
            .source_arn(TestServer::arn("err-dlq"))
            .send()
    );
    assert_eq!(
        (code.as_str(), status, msg.as_str()),
        (
            "InvalidParameterValue",
            400,
            "There is already a task running. Only one active task is allowed for a source queue arn at a given time."
        )
    );
    assert_eq!(list(&ts, "err-dlq", Some(10)).await.len(), 1);
}

#[tokio::test]
async fn resource_not_found_has_the_json_wire_shape() {
    let ts = TestServer::start().await;
    let body = json!({"SourceArn": TestServer::arn("ghost")}).to_string();
    let (status, headers, text) = ts.raw_json("AmazonSQS.StartMessageMoveTask", &body).await;
    let msg = assert_json_error(
        status,
        &headers,
        &text,
        404,
        "ResourceNotFoundException",
        "ResourceNotFoundException",
    );
    assert_eq!(
        msg,
        "The resource that you specified for the SourceArn parameter doesn't exist."
    );
}

#[tokio::test]
async fn cancel_rejects_bad_handles_with_aws_errors() {
    let ts = TestServer::start().await;
    let (src, _dlq) = dlq_pair(&ts, "c-src", "c-dlq").await;

    for bad in [
        "not-a-handle".to_string(),
        STANDARD.encode("not json"),
        STANDARD.encode(r#"{"taskId":"x"}"#),
    ] {
        let (code, status, msg) = expect_err!(
            ts.client
                .cancel_message_move_task()
                .task_handle(&bad)
                .send()
        );
        assert_eq!(
            (code.as_str(), status, msg.as_str()),
            (
                "InvalidParameterValue",
                400,
                "Value for parameter TaskHandle is invalid."
            ),
            "handle {bad}"
        );
    }

    let ghost = handle_for(
        "6d4f5a8e-0000-4000-8000-000000000000",
        &TestServer::arn("ghost-dlq"),
    );
    let (code, status, msg) = expect_err!(
        ts.client
            .cancel_message_move_task()
            .task_handle(ghost)
            .send()
    );
    assert_eq!(
        (code.as_str(), status, msg.as_str()),
        (
            "ResourceNotFoundException",
            404,
            "The resource that you specified for the SourceArn parameter doesn't exist."
        )
    );

    let unknown = handle_for(
        "6d4f5a8e-0000-4000-8000-000000000000",
        &TestServer::arn("c-dlq"),
    );
    let (code, status, msg) = expect_err!(
        ts.client
            .cancel_message_move_task()
            .task_handle(unknown)
            .send()
    );
    assert_eq!(
        (code.as_str(), status, msg.as_str()),
        ("ResourceNotFoundException", 404, "Task does not exist.")
    );

    // A finished task cannot be cancelled (AWS's answer is unrecorded; docs/redrive.md).
    dead_letter(&ts, &src, &["done"]).await;
    let handle = start(&ts, "c-dlq", None, Some(100)).await;
    wait_for(&ts, "c-dlq", &["COMPLETED"], Duration::from_secs(5)).await;
    let (code, status, _) = expect_err!(
        ts.client
            .cancel_message_move_task()
            .task_handle(handle)
            .send()
    );
    assert_eq!((code.as_str(), status), ("InvalidParameterValue", 400));
}

// ---------------------------------------------------------------------------------------------
// TaskHandle and ListMessageMoveTasks.

#[tokio::test]
async fn task_handle_and_list_message_move_tasks() {
    let ts = TestServer::start().await;
    let (src, _dlq) = dlq_pair(&ts, "l-src", "l-dlq").await;
    ts.create("l-dest").await;
    let dlq_arn = TestServer::arn("l-dlq");

    // Nothing yet.
    assert!(list(&ts, "l-dlq", Some(10)).await.is_empty());

    dead_letter(&ts, &src, &["1", "2", "3"]).await;
    let before = now_ms() as i64;
    let h1 = start(&ts, "l-dlq", Some("l-dest"), Some(2)).await;

    let decoded: Value =
        serde_json::from_slice(&STANDARD.decode(&h1).expect("base64 handle")).expect("JSON handle");
    let obj = decoded.as_object().expect("object");
    assert_eq!(obj.len(), 2, "{decoded}");
    let task_id = obj["taskId"].as_str().expect("taskId");
    uuid::Uuid::parse_str(task_id).expect("taskId is a UUID");
    assert_eq!(obj["sourceArn"], dlq_arn.as_str());

    // While running: the handle is listed, with everything that was given.
    let t = latest(&ts, "l-dlq").await;
    assert_eq!(t.status(), Some("RUNNING"), "{t:?}");
    assert_eq!(t.task_handle(), Some(h1.as_str()));
    assert_eq!(t.source_arn(), Some(dlq_arn.as_str()));
    assert_eq!(
        t.destination_arn(),
        Some(TestServer::arn("l-dest").as_str())
    );
    assert_eq!(t.max_number_of_messages_per_second(), Some(2));
    assert_eq!(t.approximate_number_of_messages_to_move(), Some(3));
    assert_eq!(t.failure_reason(), None);
    let started = t.started_timestamp();
    assert!(
        started >= before - 1000 && started <= now_ms() as i64 + 1000,
        "StartedTimestamp {started} is not epoch ms near {before}"
    );

    let t = wait_for(&ts, "l-dlq", &["COMPLETED"], Duration::from_secs(8)).await;
    assert_eq!(t.task_handle(), None, "no handle once COMPLETED: {t:?}");
    assert_eq!(t.approximate_number_of_messages_moved(), 3);
    assert_eq!(t.approximate_number_of_messages_to_move(), Some(3));
    assert_eq!(t.started_timestamp(), started);

    // A second task, without destination or rate.
    dead_letter(&ts, &src, &["4", "5"]).await;
    let h2 = start(&ts, "l-dlq", None, None).await;
    assert_ne!(h1, h2);
    wait_for(&ts, "l-dlq", &["COMPLETED"], Duration::from_secs(5)).await;

    let all = list(&ts, "l-dlq", Some(10)).await;
    assert_eq!(all.len(), 2, "{all:?}");
    // Newest first.
    assert_eq!(all[0].approximate_number_of_messages_to_move(), Some(2));
    assert_eq!(all[1].approximate_number_of_messages_to_move(), Some(3));
    assert!(all[0].started_timestamp() >= all[1].started_timestamp());
    assert_eq!(all[0].destination_arn(), None);
    assert_eq!(all[0].max_number_of_messages_per_second(), None);
    assert_eq!(all[1].max_number_of_messages_per_second(), Some(2));
    assert!(all.iter().all(|t| t.status() == Some("COMPLETED")));
    assert_eq!(list(&ts, "l-dlq", Some(1)).await.len(), 1);

    // On the wire, absent means absent (not null).
    let (status, _, text) = ts
        .raw_json(
            "AmazonSQS.ListMessageMoveTasks",
            &json!({"SourceArn": dlq_arn, "MaxResults": 10}).to_string(),
        )
        .await;
    assert_eq!(status, 200, "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    let results = v["Results"].as_array().expect("Results");
    assert_eq!(results.len(), 2);
    let newest = results[0].as_object().unwrap();
    for absent in [
        "DestinationArn",
        "MaxNumberOfMessagesPerSecond",
        "TaskHandle",
        "FailureReason",
    ] {
        assert!(!newest.contains_key(absent), "{absent} present: {text}");
    }
    let older = results[1].as_object().unwrap();
    assert_eq!(older["DestinationArn"], TestServer::arn("l-dest").as_str());
    assert_eq!(older["MaxNumberOfMessagesPerSecond"], 2);
    assert_eq!(older["Status"], "COMPLETED");
    assert!(older["StartedTimestamp"].is_i64(), "{text}");

    // MaxResults must be 1..10.
    for n in [0, 11] {
        let (code, status, _) = expect_err!(
            ts.client
                .list_message_move_tasks()
                .source_arn(&dlq_arn)
                .max_results(n)
                .send()
        );
        assert_eq!(
            (code.as_str(), status),
            ("InvalidParameterValue", 400),
            "{n}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Where messages go.

#[tokio::test]
async fn default_destination_returns_each_message_to_its_own_source() {
    let ts = TestServer::start().await;
    let dlq = ts.create("shared-dlq").await;
    let a = source_of(&ts, "src-a", "shared-dlq").await;
    let b = source_of(&ts, "src-b", "shared-dlq").await;
    dead_letter(&ts, &a, &["a1", "a2"]).await;
    dead_letter(&ts, &b, &["b1", "b2", "b3"]).await;
    assert_eq!(ts.counts(&dlq).await, (5, 0, 0));

    start(&ts, "shared-dlq", None, Some(10)).await;
    let t = wait_for(&ts, "shared-dlq", &["COMPLETED"], Duration::from_secs(8)).await;
    assert_eq!(t.approximate_number_of_messages_moved(), 5);
    assert_eq!(ts.counts(&dlq).await, (0, 0, 0));
    assert_eq!(body_set(&receive_all(&ts, &a).await), set(&["a1", "a2"]));
    assert_eq!(
        body_set(&receive_all(&ts, &b).await),
        set(&["b1", "b2", "b3"])
    );
}

#[tokio::test]
async fn explicit_destination_receives_every_message() {
    let ts = TestServer::start().await;
    let dlq = ts.create("x-dlq").await;
    let a = source_of(&ts, "x-src-a", "x-dlq").await;
    let b = source_of(&ts, "x-src-b", "x-dlq").await;
    let dest = ts.create("x-dest").await;
    dead_letter(&ts, &a, &["a1", "a2"]).await;
    dead_letter(&ts, &b, &["b1"]).await;

    start(&ts, "x-dlq", Some("x-dest"), Some(10)).await;
    let t = wait_for(&ts, "x-dlq", &["COMPLETED"], Duration::from_secs(8)).await;
    assert_eq!(t.approximate_number_of_messages_moved(), 3);
    assert_eq!(ts.counts(&dlq).await, (0, 0, 0));
    assert_eq!(ts.counts(&a).await, (0, 0, 0));
    assert_eq!(ts.counts(&b).await, (0, 0, 0));
    assert_eq!(
        body_set(&receive_all(&ts, &dest).await),
        set(&["a1", "a2", "b1"])
    );
}

// ---------------------------------------------------------------------------------------------
// Rate, cancel, failure.

#[tokio::test]
async fn rate_limit_is_enforced() {
    let ts = TestServer::start().await;
    let (src, dlq) = dlq_pair(&ts, "r-src", "r-dlq").await;
    dead_letter(&ts, &src, &["1", "2", "3", "4"]).await;

    let t0 = Instant::now();
    start(&ts, "r-dlq", None, Some(1)).await;
    loop {
        let t = latest(&ts, "r-dlq").await;
        let elapsed = t0.elapsed();
        // Moves are spaced 1 s apart from the start: never ahead of the schedule.
        let allowed = elapsed.as_secs() as i64 + 1;
        assert!(
            t.approximate_number_of_messages_moved() <= allowed,
            "{} moved after {elapsed:?}",
            t.approximate_number_of_messages_moved()
        );
        if t.status() == Some("COMPLETED") {
            assert_eq!(t.approximate_number_of_messages_moved(), 4);
            break;
        }
        assert_eq!(t.status(), Some("RUNNING"));
        assert!(elapsed < Duration::from_secs(8), "too slow: {t:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(2900),
        "4 messages at 1/s took {took:?}"
    );
    assert!(took < Duration::from_secs(8), "took {took:?}");
    assert_eq!(ts.counts(&dlq).await, (0, 0, 0));
    assert_eq!(ts.counts(&src).await.0, 4);
}

#[tokio::test]
async fn cancel_stops_the_task_and_keeps_what_moved() {
    let ts = TestServer::start().await;
    let (src, dlq) = dlq_pair(&ts, "k-src", "k-dlq").await;
    let bodies: Vec<String> = (0..10).map(|i| format!("k{i}")).collect();
    let refs: Vec<&str> = bodies.iter().map(String::as_str).collect();
    dead_letter(&ts, &src, &refs).await;

    let handle = start(&ts, "k-dlq", None, Some(1)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let out = ts
        .client
        .cancel_message_move_task()
        .task_handle(&handle)
        .send()
        .await
        .unwrap_or_else(|e| panic!("cancel: {}", describe(&e)));
    let moved_at_cancel = out.approximate_number_of_messages_moved();
    assert!((0..10).contains(&moved_at_cancel), "{moved_at_cancel}");

    let t = latest(&ts, "k-dlq").await;
    assert!(
        matches!(t.status(), Some("CANCELLING") | Some("CANCELLED")),
        "{t:?}"
    );
    assert_eq!(
        t.task_handle(),
        None,
        "handle listed while not RUNNING: {t:?}"
    );

    let t = wait_for(&ts, "k-dlq", &["CANCELLED"], Duration::from_secs(5)).await;
    let moved = t.approximate_number_of_messages_moved();
    assert!(moved >= moved_at_cancel, "{moved} < {moved_at_cancel}");
    assert!(moved < 10, "cancel did not stop the task: {t:?}");
    assert_eq!(t.approximate_number_of_messages_to_move(), Some(10));

    // Settled: nothing moves any more, and the counts add up.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let t = latest(&ts, "k-dlq").await;
    assert_eq!(t.status(), Some("CANCELLED"));
    assert_eq!(t.approximate_number_of_messages_moved(), moved);
    assert_eq!(ts.counts(&dlq).await, (10 - moved as u64, 0, 0));
    assert_eq!(ts.counts(&src).await, (moved as u64, 0, 0));

    // A cancelled task frees the source for a new one.
    start(&ts, "k-dlq", None, Some(100)).await;
    let t = wait_for(&ts, "k-dlq", &["COMPLETED"], Duration::from_secs(5)).await;
    assert_eq!(t.approximate_number_of_messages_moved(), 10 - moved);
    assert_eq!(ts.counts(&src).await, (10, 0, 0));
}

#[tokio::test]
async fn destination_deleted_mid_task_fails_and_keeps_the_rest() {
    let ts = TestServer::start().await;
    let (src, dlq) = dlq_pair(&ts, "f-src", "f-dlq").await;
    let dest = ts.create("f-dest").await;
    dead_letter(&ts, &src, &["1", "2", "3", "4", "5"]).await;

    start(&ts, "f-dlq", Some("f-dest"), Some(1)).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while latest(&ts, "f-dlq")
        .await
        .approximate_number_of_messages_moved()
        < 1
    {
        assert!(Instant::now() < deadline, "first move never happened");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    ts.client
        .delete_queue()
        .queue_url(&dest)
        .send()
        .await
        .unwrap();

    let t = wait_for(
        &ts,
        "f-dlq",
        &["FAILED", "COMPLETED", "CANCELLED"],
        Duration::from_secs(8),
    )
    .await;
    assert_eq!(t.status(), Some("FAILED"), "{t:?}");
    assert_eq!(
        t.failure_reason(),
        Some("AWS.SimpleQueueService.NonExistentQueue")
    );
    assert_eq!(t.task_handle(), None);
    let moved = t.approximate_number_of_messages_moved();
    assert!((1..5).contains(&moved), "{t:?}");
    let (visible, in_flight, delayed) = ts.counts(&dlq).await;
    assert_eq!((visible, in_flight, delayed), (5 - moved as u64, 0, 0));
}

#[tokio::test]
async fn in_flight_and_delayed_dlq_messages_are_not_moved() {
    let ts = TestServer::start().await;
    let (src, dlq) = dlq_pair(&ts, "i-src", "i-dlq").await;
    dead_letter(&ts, &src, &["stay", "go1", "go2"]).await;
    // One DLQ message in flight (received, long visibility), one delayed (sent directly).
    let held = ts.receive(&dlq, 1, Some(600)).await;
    assert_eq!(held.len(), 1);
    let held_body = held[0].body().unwrap().to_string();
    ts.client
        .send_message()
        .queue_url(&dlq)
        .message_body("later")
        .delay_seconds(600)
        .send()
        .await
        .unwrap();
    assert_eq!(ts.counts(&dlq).await, (2, 1, 1));

    start(&ts, "i-dlq", None, Some(10)).await;
    let t = wait_for(&ts, "i-dlq", &["COMPLETED"], Duration::from_secs(5)).await;
    assert_eq!(t.approximate_number_of_messages_to_move(), Some(2));
    assert_eq!(t.approximate_number_of_messages_moved(), 2);
    assert_eq!(ts.counts(&dlq).await, (0, 1, 1));

    let back = receive_all(&ts, &src).await;
    assert_eq!(back.len(), 2);
    assert!(!body_set(&back).contains(&held_body));
    assert!(!body_set(&back).contains("later"));
}

#[tokio::test]
async fn a_redriven_message_is_a_new_message() {
    let ts = TestServer::start().await;
    let (src, dlq) = dlq_pair(&ts, "n-src", "n-dlq").await;
    let mut attrs = HashMap::new();
    attrs.insert("kind".to_string(), string_attr("String", "order"));
    attrs.insert("n".to_string(), string_attr("Number", "42"));
    attrs.insert("blob".to_string(), binary_attr("Binary", &[0, 1, 254]));
    let old_id = ts
        .client
        .send_message()
        .queue_url(&src)
        .message_body("payload")
        .set_message_attributes(Some(attrs.clone()))
        .send()
        .await
        .unwrap()
        .message_id
        .unwrap();
    let first = ts.receive(&src, 1, Some(0)).await;
    let old_sent: i64 = sys_attr(&first[0], "SentTimestamp")
        .unwrap()
        .parse()
        .unwrap();
    assert!(ts.receive(&src, 1, Some(0)).await.is_empty());
    assert_eq!(ts.counts(&dlq).await, (1, 0, 0));

    // Make a new SentTimestamp distinguishable from the old one.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let before = now_ms() as i64;
    start(&ts, "n-dlq", None, Some(10)).await;
    let t = wait_for(&ts, "n-dlq", &["COMPLETED"], Duration::from_secs(5)).await;

    let got = ts.receive(&src, 1, Some(30)).await;
    assert_eq!(got.len(), 1);
    let m = &got[0];
    assert_ne!(m.message_id(), Some(old_id.as_str()), "MessageId was kept");
    uuid::Uuid::parse_str(m.message_id().unwrap()).expect("new MessageId is a UUID");
    let sent: i64 = sys_attr(m, "SentTimestamp").unwrap().parse().unwrap();
    assert!(sent > old_sent, "SentTimestamp kept: {sent} vs {old_sent}");
    assert!(
        sent >= before - 5,
        "SentTimestamp {sent} before the task started ({before})"
    );
    assert!(
        sent >= t.started_timestamp(),
        "SentTimestamp {sent} before StartedTimestamp"
    );
    assert_eq!(sys_attr(m, "ApproximateReceiveCount").as_deref(), Some("1"));
    assert_eq!(sys_attr(m, "DeadLetterQueueSourceArn"), None);
    assert_eq!(m.body(), Some("payload"));
    assert_eq!(m.md5_of_body(), Some(md5_hex(b"payload").as_str()));
    assert_eq!(m.message_attributes().cloned().unwrap_or_default(), attrs);
    assert_eq!(
        m.md5_of_message_attributes(),
        Some(md5_of_attributes(&attrs).as_str())
    );
}

// ---------------------------------------------------------------------------------------------
// RedriveAllowPolicy.

#[tokio::test]
async fn redrive_allow_policy_is_enforced_when_a_source_sets_its_policy() {
    let ts = TestServer::start().await;
    let dlq = ts
        .create_with(
            "guarded",
            &[("RedriveAllowPolicy", r#"{"redrivePermission":"denyAll"}"#)],
        )
        .await;
    let ok_src = ts.create("allowed-src").await;
    let other = ts.create("other-src").await;

    let set_policy = |url: String| {
        ts.client
            .set_queue_attributes()
            .queue_url(url)
            .attributes(QueueAttributeName::RedrivePolicy, policy("guarded", 3))
            .send()
    };
    let (code, status, _) = expect_err!(set_policy(ok_src.clone()));
    assert_eq!((code.as_str(), status), ("InvalidParameterValue", 400));
    assert!(
        !ts.attrs(&ok_src, &["All"])
            .await
            .contains_key("RedrivePolicy"),
        "the refused policy was stored"
    );
    // CreateQueue is checked the same way.
    let (code, status, _) = expect_err!(
        ts.client
            .create_queue()
            .queue_name("born-refused")
            .attributes(QueueAttributeName::RedrivePolicy, policy("guarded", 3))
            .send()
    );
    assert_eq!((code.as_str(), status), ("InvalidParameterValue", 400));

    let by_queue = json!({
        "redrivePermission": "byQueue",
        "sourceQueueArns": [TestServer::arn("allowed-src")],
    })
    .to_string();
    ts.client
        .set_queue_attributes()
        .queue_url(&dlq)
        .attributes(QueueAttributeName::RedriveAllowPolicy, by_queue)
        .send()
        .await
        .unwrap();
    set_policy(ok_src.clone())
        .await
        .unwrap_or_else(|e| panic!("byQueue source refused: {}", describe(&e)));
    let (code, status, _) = expect_err!(set_policy(other.clone()));
    assert_eq!((code.as_str(), status), ("InvalidParameterValue", 400));

    let sources = ts
        .client
        .list_dead_letter_source_queues()
        .queue_url(&dlq)
        .send()
        .await
        .unwrap();
    assert_eq!(sources.queue_urls(), [ok_src]);

    ts.client
        .set_queue_attributes()
        .queue_url(&dlq)
        .attributes(
            QueueAttributeName::RedriveAllowPolicy,
            r#"{"redrivePermission":"allowAll"}"#,
        )
        .send()
        .await
        .unwrap();
    set_policy(other).await.expect("allowAll admits any source");
}

// ---------------------------------------------------------------------------------------------
// The inspection extension on DLQs.

async fn get_json(ts: &TestServer, path: &str) -> (u16, Value) {
    let (status, headers, body) = ts.raw("GET", path, None, &[], Vec::new()).await;
    assert_eq!(
        header(&headers, "content-type").as_deref(),
        Some("application/json"),
        "{body}"
    );
    let v = serde_json::from_str(&body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"));
    (status, v)
}

#[tokio::test]
async fn inspection_lists_dlq_messages_without_receiving_them() {
    let ts = TestServer::start().await;
    let (src, dlq) = dlq_pair(&ts, "b-src", "b-dlq").await;
    let before = now_ms();
    let ids = dead_letter(&ts, &src, &["one", "two", "three"]).await;

    let (status, v) = get_json(&ts, "/_redrive/v1/queues/b-dlq/messages").await;
    assert_eq!(status, 200, "{v}");
    let msgs = v["messages"].as_array().expect("messages");
    assert_eq!(msgs.len(), 3, "{v}");
    assert!(v["next"].is_null(), "{v}");
    let listed: BTreeSet<&str> = msgs
        .iter()
        .map(|m| m["messageId"].as_str().unwrap())
        .collect();
    assert_eq!(listed, ids.iter().map(String::as_str).collect());
    for m in msgs {
        assert_eq!(m["state"], "visible", "{m}");
        assert_eq!(m["receiveCount"], 1, "{m}");
        assert_eq!(
            m["deadLetterQueueSourceArn"],
            TestServer::arn("b-src").as_str()
        );
        let sent = m["sentTimestamp"].as_u64().expect("sentTimestamp");
        let dead = m["deadLetteredAt"].as_u64().expect("deadLetteredAt");
        assert!(
            sent >= before - 1000 && dead >= sent && dead <= now_ms() + 1000,
            "{m}"
        );
    }

    // Browsing again changes nothing; a receive afterwards sees count 2, not more.
    get_json(&ts, "/_redrive/v1/queues/b-dlq/messages").await;
    let got = ts.receive(&dlq, 1, Some(600)).await;
    assert_eq!(got.len(), 1);
    assert_eq!(
        sys_attr(&got[0], "ApproximateReceiveCount").as_deref(),
        Some("2")
    );
    let received_id = got[0].message_id().unwrap().to_string();

    let (_, v) = get_json(&ts, "/_redrive/v1/queues/b-dlq/messages?state=inflight").await;
    let inflight = v["messages"].as_array().unwrap();
    assert_eq!(inflight.len(), 1, "{v}");
    assert_eq!(inflight[0]["messageId"], received_id.as_str());
    assert_eq!(inflight[0]["state"], "inflight");
    assert_eq!(inflight[0]["receiveCount"], 2);
    assert!(inflight[0]["visibleAt"].as_u64().is_some(), "{v}");
    let (_, v) = get_json(&ts, "/_redrive/v1/queues/b-dlq/messages?state=visible").await;
    assert_eq!(v["messages"].as_array().unwrap().len(), 2, "{v}");

    // Pages of one, following `next`.
    let mut seen = Vec::new();
    let mut path = "/_redrive/v1/queues/b-dlq/messages?limit=1".to_string();
    for _ in 0..10 {
        let (status, v) = get_json(&ts, &path).await;
        assert_eq!(status, 200, "{v}");
        let page = v["messages"].as_array().unwrap();
        assert!(page.len() <= 1, "{v}");
        seen.extend(
            page.iter()
                .map(|m| m["messageId"].as_str().unwrap().to_string()),
        );
        match v["next"].as_str() {
            Some(next) => path = format!("/_redrive/v1/queues/b-dlq/messages?limit=1&after={next}"),
            None => break,
        }
    }
    let distinct: BTreeSet<&String> = seen.iter().collect();
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert_eq!(distinct.len(), 3, "{seen:?}");

    // None of this counted as a receive.
    let (_, v) = get_json(&ts, "/_redrive/v1/queues/b-dlq/messages?state=visible").await;
    for m in v["messages"].as_array().unwrap() {
        assert_eq!(m["receiveCount"], 1, "{m}");
    }
}

#[tokio::test]
async fn inspection_summary_shows_pending_moves_and_sources() {
    let ts = TestServer::start().await;
    let dlq = ts.create("s-dlq").await;
    let src = source_of(&ts, "s-src", "s-dlq").await;
    source_of(&ts, "s-src2", "s-dlq").await;
    ts.send(&src, "x").await;
    ts.send(&src, "y").await;
    let got = ts.receive(&src, 10, Some(0)).await;
    assert_eq!(got.len(), 2);

    let (status, v) = get_json(&ts, "/_redrive/v1/queues/s-src").await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["pendingDeadLetter"], 2, "{v}");
    assert_eq!(v["visible"], 2, "{v}");
    assert_eq!(v["arn"], TestServer::arn("s-src").as_str());
    let (_, d) = get_json(&ts, "/_redrive/v1/queues/s-dlq").await;
    let mut sources: Vec<&str> = d["deadLetterSources"]
        .as_array()
        .expect("deadLetterSources")
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    sources.sort();
    assert_eq!(sources, ["s-src", "s-src2"], "{d}");
    assert_eq!(d["visible"], 0);
    assert_eq!(d["pendingDeadLetter"], 0);

    // The next receive performs the moves.
    assert!(ts.receive(&src, 10, Some(0)).await.is_empty());
    let (_, v) = get_json(&ts, "/_redrive/v1/queues/s-src").await;
    assert_eq!(v["pendingDeadLetter"], 0, "{v}");
    assert_eq!(v["visible"], 0, "{v}");
    let (_, d) = get_json(&ts, "/_redrive/v1/queues/s-dlq").await;
    assert_eq!(d["visible"], 2, "{d}");
    assert_eq!(ts.counts(&dlq).await, (2, 0, 0));
}

#[tokio::test]
async fn inspection_of_an_unknown_queue_is_queue_does_not_exist() {
    let ts = TestServer::start().await;
    for path in [
        "/_redrive/v1/queues/nope",
        "/_redrive/v1/queues/nope/messages",
    ] {
        let (status, v) = get_json(&ts, path).await;
        assert_eq!(status, 400, "{path}: {v}");
        assert_eq!(v["__type"], "QueueDoesNotExist", "{path}: {v}");
        assert!(v["message"].is_string(), "{v}");
    }
}

// ---------------------------------------------------------------------------------------------
// The Query protocol.

#[track_caller]
fn assert_query_ok(status: u16, body: &str, action: &str) {
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains(&format!("<{action}Response xmlns=\"{XMLNS}\">")),
        "{body}"
    );
    assert!(
        body.trim_end().ends_with(&format!("</{action}Response>")),
        "{body}"
    );
}

#[tokio::test]
async fn query_protocol_start_list_cancel() {
    let ts = TestServer::start().await;
    let (src, dlq) = dlq_pair(&ts, "q-src", "q-dlq").await;
    dead_letter(&ts, &src, &["1", "2", "3", "4", "5"]).await;
    let dlq_arn = TestServer::arn("q-dlq");

    let (status, _, body) = ts
        .query(&[
            ("Action", "StartMessageMoveTask"),
            ("SourceArn", &dlq_arn),
            ("MaxNumberOfMessagesPerSecond", "1"),
            V,
        ])
        .await;
    assert_query_ok(status, &body, "StartMessageMoveTask");
    let handle = xml_one(&xml_one(&body, "StartMessageMoveTaskResult"), "TaskHandle");
    let decoded: Value = serde_json::from_slice(&STANDARD.decode(&handle).unwrap()).unwrap();
    assert_eq!(decoded["sourceArn"], dlq_arn.as_str());

    let (status, _, body) = ts
        .query(&[
            ("Action", "ListMessageMoveTasks"),
            ("SourceArn", &dlq_arn),
            ("MaxResults", "10"),
            V,
        ])
        .await;
    assert_query_ok(status, &body, "ListMessageMoveTasks");
    let entries = xml_all(&body, "ListMessageMoveTasksResultEntry");
    assert_eq!(entries.len(), 1, "{body}");
    let e = &entries[0];
    assert_eq!(xml_one(e, "Status"), "RUNNING", "{body}");
    assert_eq!(xml_one(e, "TaskHandle"), handle);
    assert_eq!(xml_one(e, "SourceArn"), dlq_arn);
    assert_eq!(xml_one(e, "MaxNumberOfMessagesPerSecond"), "1");
    assert_eq!(xml_one(e, "ApproximateNumberOfMessagesToMove"), "5");
    assert!(xml_all(e, "DestinationArn").is_empty(), "{body}");
    let started: i64 = xml_one(e, "StartedTimestamp").parse().unwrap();
    assert!((started - now_ms() as i64).abs() < 10_000, "{started}");

    let (status, _, body) = ts
        .query(&[
            ("Action", "CancelMessageMoveTask"),
            ("TaskHandle", &handle),
            V,
        ])
        .await;
    assert_query_ok(status, &body, "CancelMessageMoveTask");
    let moved_at_cancel: i64 = xml_one(
        &xml_one(&body, "CancelMessageMoveTaskResult"),
        "ApproximateNumberOfMessagesMoved",
    )
    .parse()
    .unwrap();

    let t = wait_for(&ts, "q-dlq", &["CANCELLED"], Duration::from_secs(5)).await;
    assert!(t.approximate_number_of_messages_moved() >= moved_at_cancel);
    assert!(t.approximate_number_of_messages_moved() < 5);
    let (status, _, body) = ts
        .query(&[
            ("Action", "ListMessageMoveTasks"),
            ("SourceArn", &dlq_arn),
            V,
        ])
        .await;
    assert_query_ok(status, &body, "ListMessageMoveTasks");
    let e = xml_one(&body, "ListMessageMoveTasksResultEntry");
    assert_eq!(xml_one(&e, "Status"), "CANCELLED");
    assert!(xml_all(&e, "TaskHandle").is_empty(), "{body}");
    let left = 5 - t.approximate_number_of_messages_moved() as u64;
    assert_eq!(ts.counts(&dlq).await, (left, 0, 0));
}

#[tokio::test]
async fn query_protocol_move_task_errors() {
    let ts = TestServer::start().await;
    ts.create("q-plain").await;

    let (status, headers, body) = ts
        .query(&[
            ("Action", "StartMessageMoveTask"),
            ("SourceArn", &TestServer::arn("q-ghost")),
            V,
        ])
        .await;
    let msg = assert_xml_error(status, &headers, &body, 404, "ResourceNotFoundException");
    assert_eq!(
        msg,
        "The resource that you specified for the SourceArn parameter doesn't exist."
    );

    let (status, headers, body) = ts
        .query(&[
            ("Action", "StartMessageMoveTask"),
            ("SourceArn", &TestServer::arn("q-plain")),
            V,
        ])
        .await;
    let msg = assert_xml_error(status, &headers, &body, 400, "InvalidParameterValue");
    assert_eq!(
        msg,
        "Source queue must be configured as a Dead Letter Queue."
    );

    let (status, headers, body) = ts
        .query(&[
            ("Action", "CancelMessageMoveTask"),
            ("TaskHandle", "garbage"),
            V,
        ])
        .await;
    let msg = assert_xml_error(status, &headers, &body, 400, "InvalidParameterValue");
    assert_eq!(msg, "Value for parameter TaskHandle is invalid.");

    let unknown = handle_for(
        "6d4f5a8e-0000-4000-8000-000000000000",
        &TestServer::arn("q-plain"),
    );
    let (status, headers, body) = ts
        .query(&[
            ("Action", "CancelMessageMoveTask"),
            ("TaskHandle", &unknown),
            V,
        ])
        .await;
    let msg = assert_xml_error(status, &headers, &body, 404, "ResourceNotFoundException");
    assert_eq!(msg, "Task does not exist.");
}

#[tokio::test]

async fn cancel_with_nothing_visible_left_ends_cancelled() {
    let ts = TestServer::start().await;
    let (src, dlq) = dlq_pair(&ts, "cv-src", "cv-dlq").await;
    dead_letter(&ts, &src, &["1", "2"]).await;
    let handle = start(&ts, "cv-dlq", None, Some(1)).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while latest(&ts, "cv-dlq")
        .await
        .approximate_number_of_messages_moved()
        < 1
    {
        assert!(Instant::now() < deadline, "first move never happened");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The other message is now in flight: nothing visible is left to move.
    assert_eq!(ts.receive(&dlq, 10, Some(600)).await.len(), 1);
    ts.client
        .cancel_message_move_task()
        .task_handle(handle)
        .send()
        .await
        .unwrap();
    let t = wait_for(
        &ts,
        "cv-dlq",
        &["CANCELLED", "COMPLETED", "FAILED"],
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(
        t.status(),
        Some("CANCELLED"),
        "RUNNING -> CANCELLING -> CANCELLED: {t:?}"
    );
    assert_eq!(t.approximate_number_of_messages_moved(), 1);
}

#[tokio::test]
async fn fifo_dlq_move_and_redrive() {
    let ts = TestServer::start().await;
    let dlq = ts.create_with("f.fifo", &[("FifoQueue", "true")]).await;
    let src = ts
        .create_with(
            "fsrc.fifo",
            &[
                ("FifoQueue", "true"),
                ("RedrivePolicy", &policy("f.fifo", 1)),
            ],
        )
        .await;
    let mut old_ids = Vec::new();
    for (body, dedup) in [("f1", "d1"), ("f2", "d2")] {
        let out = ts
            .client
            .send_message()
            .queue_url(&src)
            .message_body(body)
            .message_group_id("g1")
            .message_deduplication_id(dedup)
            .send()
            .await
            .unwrap();
        old_ids.push(out.message_id.unwrap());
    }
    for _ in 0..10 {
        if ts.counts(&src).await == (0, 0, 0) {
            break;
        }
        ts.receive(&src, 10, Some(0)).await;
    }
    assert_eq!(ts.counts(&dlq).await, (2, 0, 0));

    // The DLQ copy keeps its MessageId and group; its dedup id is the MessageId.
    let dead = ts.receive(&dlq, 10, Some(0)).await;
    assert_eq!(dead.len(), 2);
    for (m, id) in dead.iter().zip(&old_ids) {
        assert_eq!(m.message_id(), Some(id.as_str()));
        assert_eq!(sys_attr(m, "MessageGroupId").as_deref(), Some("g1"));
        assert_eq!(
            sys_attr(m, "MessageDeduplicationId").as_deref(),
            Some(id.as_str())
        );
        assert_eq!(
            sys_attr(m, "DeadLetterQueueSourceArn"),
            Some(TestServer::arn("fsrc.fifo"))
        );
    }

    start(&ts, "f.fifo", None, Some(10)).await;
    let t = wait_for(&ts, "f.fifo", &["COMPLETED"], Duration::from_secs(5)).await;
    assert_eq!(t.approximate_number_of_messages_moved(), 2);

    // Back in the source as new messages, in order, in their group, not swallowed by the
    // source's deduplication window (d1/d2 were sent moments ago).
    let back = ts.receive(&src, 10, Some(30)).await;
    let bodies: Vec<&str> = back.iter().map(|m| m.body().unwrap()).collect();
    assert_eq!(bodies, ["f1", "f2"]);
    let mut seqs = Vec::new();
    for m in &back {
        let id = m.message_id().unwrap();
        assert!(!old_ids.iter().any(|o| o == id), "MessageId kept: {id}");
        assert_eq!(sys_attr(m, "MessageGroupId").as_deref(), Some("g1"));
        assert_eq!(sys_attr(m, "MessageDeduplicationId").as_deref(), Some(id));
        assert_eq!(sys_attr(m, "ApproximateReceiveCount").as_deref(), Some("1"));
        assert_eq!(sys_attr(m, "DeadLetterQueueSourceArn"), None);
        seqs.push(sys_attr(m, "SequenceNumber").expect("SequenceNumber"));
    }
    assert!(seqs[0] < seqs[1], "{seqs:?}");
}

// ---------------------------------------------------------------------------------------------
// Issue 20 point 8: a task belongs to its queue, not to a name that can be reused.

async fn reset(ts: &TestServer) {
    let (status, _, body) = ts
        .raw("POST", "/moto-api/reset", None, &[], Vec::new())
        .await;
    assert_eq!(status, 200, "{body}");
}

/// A client run that resets between tests and reuses queue names: an earlier test's task on
/// the same DLQ ARN (still RUNNING at a slow rate when its queues were dropped) must neither
/// block nor hijack nor be listed for the new queue. The plain DLQ → source redrive of the
/// next test reaches COMPLETED.
#[tokio::test]
async fn a_reused_queue_name_does_not_inherit_an_old_task() {
    let server = redrive_server::Server::bind(redrive_server::ServerConfig {
        port: 0,
        enable_reset_api: true,
        ..Default::default()
    })
    .await
    .unwrap();
    let ts = TestServer::from_server(server);

    // Test 1: a slow task to an explicit destination, interrupted by the reset.
    let (src, _dlq) = dlq_pair(&ts, "reuse-src", "reuse-dlq").await;
    ts.create("reuse-dest").await;
    dead_letter(&ts, &src, &["o1", "o2", "o3", "o4", "o5"]).await;
    start(&ts, "reuse-dlq", Some("reuse-dest"), Some(1)).await;
    reset(&ts).await;

    // Test 2: the same names, a plain redrive back to the source.
    let (src, dlq) = dlq_pair(&ts, "reuse-src", "reuse-dlq").await;
    dead_letter(&ts, &src, &["n1", "n2"]).await;
    assert_eq!(
        list(&ts, "reuse-dlq", Some(10)).await.len(),
        0,
        "old tasks listed"
    );
    start(&ts, "reuse-dlq", None, None).await;
    let t = wait_for(
        &ts,
        "reuse-dlq",
        &["COMPLETED", "FAILED"],
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(t.status(), Some("COMPLETED"), "{t:?}");
    assert_eq!(t.approximate_number_of_messages_moved(), 2);
    assert_eq!(ts.counts(&dlq).await, (0, 0, 0));
    assert_eq!(body_set(&receive_all(&ts, &src).await), set(&["n1", "n2"]));
    // The old runner, waking after its 1 s slot, must not touch the new queues.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(list(&ts, "reuse-dlq", Some(10)).await.len(), 1);
    assert_eq!(latest(&ts, "reuse-dlq").await.status(), Some("COMPLETED"));
}
