//! Issue 20 point 3: receipt-handle lifetimes as recorded on AWS, and AWS-sized handles.
//!
//! - ChangeMessageVisibility with the latest handle still works after the visibility timeout
//!   ended, while the message was not received again (standard and FIFO): the message is hidden
//!   again (LocalStack PR #9632, validated against AWS).
//! - DeleteMessage on a FIFO queue with a handle whose visibility ended fails with
//!   `InvalidParameterValue` "Value <h> for parameter ReceiptHandle is invalid. Reason: The
//!   receipt handle has expired." (real AWS output quoted in aws/aws-sdk-js #1750 and
//!   awsdocs/aws-doc-sdk-examples #165; localstack #12278 / PR #12442); standard queues delete.
//! - Handles are 180 characters (AWS's are ~180; tools assert > 100).

use std::time::Duration;

use aws_sdk_sqs::types::Message;

use crate::common::*;

async fn send_fifo(ts: &TestServer, url: &str, body: &str, group: &str) {
    ts.client
        .send_message()
        .queue_url(url)
        .message_body(body)
        .message_group_id(group)
        .message_deduplication_id(body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("send {body}: {}", describe(&e)));
}

fn handle(m: &Message) -> &str {
    m.receipt_handle().expect("receipt handle")
}

async fn cmv(ts: &TestServer, url: &str, h: &str, secs: i32) -> Result<(), (String, u16, String)> {
    ts.client
        .change_message_visibility()
        .queue_url(url)
        .receipt_handle(h)
        .visibility_timeout(secs)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| err_parts(&e))
}

async fn delete(ts: &TestServer, url: &str, h: &str) -> Result<(), (String, u16, String)> {
    ts.client
        .delete_message()
        .queue_url(url)
        .receipt_handle(h)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| err_parts(&e))
}

const PAST_TIMEOUT: Duration = Duration::from_millis(1400);

#[tokio::test]
async fn standard_change_visibility_after_expiry_hides_the_message_again() {
    let ts = TestServer::start().await;
    let url = ts.create("rh-std-cmv").await;
    ts.send(&url, "m1").await;
    let got = ts.receive(&url, 1, Some(1)).await;
    assert_eq!(got.len(), 1);
    let h = handle(&got[0]).to_string();
    tokio::time::sleep(PAST_TIMEOUT).await;
    // Visible again, not received again: the last handle still works.
    cmv(&ts, &url, &h, 30).await.expect("CMV after expiry");
    assert!(ts.receive(&url, 1, None).await.is_empty(), "hidden again");
    assert_eq!(ts.counts(&url).await, (0, 1, 0));
    // And it can be released again with the same handle; no receive was counted meanwhile.
    cmv(&ts, &url, &h, 0).await.expect("CMV 0");
    let again = ts.receive(&url, 1, None).await;
    assert_eq!(again.len(), 1);
    assert_eq!(
        sys_attr(&again[0], "ApproximateReceiveCount").as_deref(),
        Some("2")
    );
}

#[tokio::test]
async fn fifo_change_visibility_after_expiry_locks_the_group_again() {
    let ts = TestServer::start().await;
    let url = ts
        .create_with("rh-fifo-cmv.fifo", &[("FifoQueue", "true")])
        .await;
    send_fifo(&ts, &url, "g1-m1", "g1").await;
    send_fifo(&ts, &url, "g1-m2", "g1").await;
    let got = ts.receive(&url, 1, Some(1)).await;
    assert_eq!(got.len(), 1);
    let h = handle(&got[0]).to_string();
    tokio::time::sleep(PAST_TIMEOUT).await;
    cmv(&ts, &url, &h, 30)
        .await
        .expect("CMV after expiry (FIFO)");
    // The group is locked again: nothing from g1.
    assert!(ts.receive(&url, 10, None).await.is_empty());
    // The handle is current again, so it deletes, and the group moves on.
    delete(&ts, &url, &h)
        .await
        .expect("delete after re-acquire");
    let next = ts.receive(&url, 10, None).await;
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].body(), Some("g1-m2"));
}

#[tokio::test]
async fn fifo_delete_with_expired_handle_fails() {
    let ts = TestServer::start().await;
    let url = ts
        .create_with("rh-fifo-del.fifo", &[("FifoQueue", "true")])
        .await;
    send_fifo(&ts, &url, "only", "g").await;
    let got = ts.receive(&url, 1, Some(1)).await;
    let h = handle(&got[0]).to_string();
    tokio::time::sleep(PAST_TIMEOUT).await;
    let (code, status, message) = delete(&ts, &url, &h).await.unwrap_err();
    assert_eq!((code.as_str(), status), ("InvalidParameterValue", 400));
    assert_eq!(
        message,
        format!(
            "Value {h} for parameter ReceiptHandle is invalid. Reason: The receipt handle has expired."
        )
    );
    // The message was not deleted.
    let again = ts.receive(&url, 1, None).await;
    assert_eq!(again.len(), 1);
    // After a second receive, the first handle stays expired; the new one deletes.
    let (code, _, _) = delete(&ts, &url, &h).await.unwrap_err();
    assert_eq!(code, "InvalidParameterValue");
    delete(&ts, &url, handle(&again[0]))
        .await
        .expect("delete with current handle");
    assert_eq!(ts.counts(&url).await, (0, 0, 0));
}

#[tokio::test]
async fn fifo_delete_in_batch_with_expired_handle_fails_per_entry() {
    let ts = TestServer::start().await;
    let url = ts
        .create_with("rh-fifo-delb.fifo", &[("FifoQueue", "true")])
        .await;
    send_fifo(&ts, &url, "only", "g").await;
    let got = ts.receive(&url, 1, Some(1)).await;
    let h = handle(&got[0]).to_string();
    tokio::time::sleep(PAST_TIMEOUT).await;
    let out = ts
        .client
        .delete_message_batch()
        .queue_url(&url)
        .entries(
            aws_sdk_sqs::types::DeleteMessageBatchRequestEntry::builder()
                .id("a")
                .receipt_handle(&h)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert!(out.successful().is_empty());
    assert_eq!(out.failed()[0].code(), "InvalidParameterValue");
    assert!(out.failed()[0].sender_fault());
}

#[tokio::test]
async fn standard_delete_with_expired_handle_still_deletes() {
    let ts = TestServer::start().await;
    let url = ts.create("rh-std-del").await;
    ts.send(&url, "m").await;
    let got = ts.receive(&url, 1, Some(1)).await;
    tokio::time::sleep(PAST_TIMEOUT).await;
    delete(&ts, &url, handle(&got[0]))
        .await
        .expect("standard delete");
    assert_eq!(ts.counts(&url).await, (0, 0, 0));
}

/// A standard queue's batch: an expired handle still deletes, a handle of a message already
/// deleted succeeds, a malformed one fails alone; each entry as its single delete would.
#[tokio::test]
async fn standard_delete_batch_answers_each_handle_as_a_single_delete() {
    let ts = TestServer::start().await;
    let url = ts.create("rh-std-delb").await;
    for body in ["expired", "current", "gone"] {
        ts.send(&url, body).await;
    }
    let first = ts.receive(&url, 10, Some(1)).await;
    assert_eq!(first.len(), 3);
    let by_body = |ms: &[Message], b: &str| {
        handle(ms.iter().find(|m| m.body() == Some(b)).unwrap()).to_string()
    };
    let gone = by_body(&first, "gone");
    delete(&ts, &url, &gone).await.unwrap();
    tokio::time::sleep(PAST_TIMEOUT).await;
    let expired = by_body(&first, "expired");
    let again = ts.receive(&url, 10, Some(60)).await;
    assert_eq!(again.len(), 2);
    let current = by_body(&again, "current");
    let entry = |id: &str, h: &str| {
        aws_sdk_sqs::types::DeleteMessageBatchRequestEntry::builder()
            .id(id)
            .receipt_handle(h)
            .build()
            .unwrap()
    };
    let out = ts
        .client
        .delete_message_batch()
        .queue_url(&url)
        .entries(entry("expired", &expired))
        .entries(entry("current", &current))
        .entries(entry("gone", &gone))
        .entries(entry("junk", "not-a-handle"))
        .send()
        .await
        .unwrap();
    let mut ok: Vec<&str> = out.successful().iter().map(|e| e.id()).collect();
    ok.sort();
    assert_eq!(ok, ["current", "expired", "gone"]);
    assert_eq!(out.failed().len(), 1);
    assert_eq!(out.failed()[0].id(), "junk");
    assert_eq!(out.failed()[0].code(), "ReceiptHandleIsInvalid");
    assert_eq!(ts.counts(&url).await, (0, 0, 0));
}

/// A standard queue's visibility batch: each entry answered as its single change would be
/// (applied; an older handle of a visible message: not in flight; a deleted message; beyond
/// the 12-hour total; a malformed handle; a bad timeout), in one request.
#[tokio::test]
async fn standard_visibility_batch_answers_each_entry_as_a_single_change() {
    let ts = TestServer::start().await;
    let url = ts.create("rh-std-cmvb").await;
    for body in ["applied", "visible", "gone", "long"] {
        ts.send(&url, body).await;
    }
    let first = ts.receive(&url, 10, Some(60)).await;
    assert_eq!(first.len(), 4);
    let by_body = |ms: &[Message], b: &str| {
        handle(ms.iter().find(|m| m.body() == Some(b)).unwrap()).to_string()
    };
    // "visible": received again, then visible: its first handle is not the latest.
    let old_visible = by_body(&first, "visible");
    cmv(&ts, &url, &old_visible, 0).await.unwrap();
    let again = ts.receive(&url, 1, Some(60)).await;
    assert_eq!(again[0].body(), Some("visible"));
    cmv(&ts, &url, handle(&again[0]), 0).await.unwrap();
    let gone = by_body(&first, "gone");
    delete(&ts, &url, &gone).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let entry = |id: &str, h: &str, secs: i32| {
        aws_sdk_sqs::types::ChangeMessageVisibilityBatchRequestEntry::builder()
            .id(id)
            .receipt_handle(h)
            .visibility_timeout(secs)
            .build()
            .unwrap()
    };
    let out = ts
        .client
        .change_message_visibility_batch()
        .queue_url(&url)
        .entries(entry("applied", &by_body(&first, "applied"), 120))
        .entries(entry("visible", &old_visible, 30))
        .entries(entry("gone", &gone, 30))
        .entries(entry("long", &by_body(&first, "long"), 43_200))
        .entries(entry("junk", "not-a-handle", 30))
        .entries(entry("too-long", &by_body(&first, "long"), 43_201))
        .send()
        .await
        .unwrap();
    let ok: Vec<&str> = out.successful().iter().map(|e| e.id()).collect();
    assert_eq!(ok, ["applied"]);
    let mut failed: Vec<(&str, &str)> = out.failed().iter().map(|e| (e.id(), e.code())).collect();
    failed.sort();
    assert_eq!(
        failed,
        [
            ("gone", "InvalidParameterValue"),
            ("junk", "ReceiptHandleIsInvalid"),
            ("long", "InvalidParameterValue"),
            ("too-long", "InvalidParameterValue"),
            ("visible", "AWS.SimpleQueueService.MessageNotInflight"),
        ]
    );
    let message = |id: &str| {
        out.failed()
            .iter()
            .find(|e| e.id() == id)
            .and_then(|e| e.message())
            .unwrap_or_default()
            .to_string()
    };
    assert!(
        message("gone").contains("Message does not exist or is not available"),
        "{}",
        message("gone")
    );
    assert!(
        message("long").contains("Total VisibilityTimeout for the message is beyond the limit"),
        "{}",
        message("long")
    );
    // Only "applied" changed: still in flight with "long"; "visible" is visible.
    assert_eq!(ts.counts(&url).await, (1, 2, 0));
}

#[tokio::test]
async fn handles_are_aws_sized_and_distinct_per_receive() {
    let ts = TestServer::start().await;
    let url = ts.create("rh-len").await;
    ts.send(&url, "m").await;
    let first = ts.receive(&url, 1, Some(0)).await;
    let second = ts.receive(&url, 1, None).await;
    let (a, b) = (handle(&first[0]), handle(&second[0]));
    assert!(a.len() > 100, "{a}");
    assert_eq!(a.len(), 180);
    assert_ne!(a, b);
    // Query protocol hands out the same form.
    ts.send(&url, "q").await;
    let (status, _, body) = ts
        .query(&[
            ("Action", "ReceiveMessage"),
            ("QueueUrl", &url),
            ("MaxNumberOfMessages", "10"),
        ])
        .await;
    assert_eq!(status, 200, "{body}");
    let handles = xml_all(&body, "ReceiptHandle");
    assert!(!handles.is_empty());
    assert!(handles.iter().all(|h| h.len() == 180), "{handles:?}");
    delete(&ts, &url, b)
        .await
        .expect("delete with a long handle");
}

/// The total visibility counts from the current receive, in whole seconds since it (AWS:
/// "Total VisibilityTimeout for the message is beyond the limit [43200 seconds]"): 43200 is
/// accepted right after a receive, refused a second later, when 43199 still fits; the refused
/// change leaves the message as it was. Runs on both stores (the shared one checks it in SQL).
#[tokio::test]
async fn the_total_visibility_counts_from_the_current_receive() {
    let ts = TestServer::start().await;
    let url = ts.create("rh-total-visibility").await;
    ts.send(&url, "m1").await;
    let got = ts.receive(&url, 1, Some(30)).await;
    assert_eq!(got.len(), 1);
    let h = handle(&got[0]).to_string();
    cmv(&ts, &url, &h, 43_200)
        .await
        .expect("43200 right after the receive");
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let (code, status, message) = cmv(&ts, &url, &h, 43_200).await.unwrap_err();
    assert_eq!((code.as_str(), status), ("InvalidParameterValue", 400));
    assert!(
        message.contains(
            "Total VisibilityTimeout for the message is beyond the limit [43200 seconds]"
        ),
        "{message}"
    );
    cmv(&ts, &url, &h, 43_198)
        .await
        .expect("still within 12 hours");
    assert_eq!(ts.counts(&url).await, (0, 1, 0));
}
