//! SendMessageBatch, DeleteMessageBatch, ChangeMessageVisibilityBatch.

use aws_sdk_sqs::operation::change_message_visibility_batch::ChangeMessageVisibilityBatchError;
use aws_sdk_sqs::operation::delete_message_batch::DeleteMessageBatchError;
use aws_sdk_sqs::operation::send_message_batch::SendMessageBatchError;
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry,
    SendMessageBatchRequestEntry,
};

use crate::common::*;
use crate::expect_err;

fn send_entry(id: &str, body: &str) -> SendMessageBatchRequestEntry {
    SendMessageBatchRequestEntry::builder()
        .id(id)
        .message_body(body)
        .build()
        .unwrap()
}

fn delete_entry(id: &str, handle: &str) -> DeleteMessageBatchRequestEntry {
    DeleteMessageBatchRequestEntry::builder()
        .id(id)
        .receipt_handle(handle)
        .build()
        .unwrap()
}

fn vis_entry(id: &str, handle: &str, timeout: i32) -> ChangeMessageVisibilityBatchRequestEntry {
    ChangeMessageVisibilityBatchRequestEntry::builder()
        .id(id)
        .receipt_handle(handle)
        .visibility_timeout(timeout)
        .build()
        .unwrap()
}

/// The four whole-request id failures, as `(entry ids, expected legacy code)`.
fn id_cases() -> Vec<(Vec<String>, &'static str)> {
    vec![
        (vec![], "AWS.SimpleQueueService.EmptyBatchRequest"),
        (
            (0..11).map(|i| format!("id{i}")).collect(),
            "AWS.SimpleQueueService.TooManyEntriesInBatchRequest",
        ),
        (
            vec!["same".into(), "same".into()],
            "AWS.SimpleQueueService.BatchEntryIdsNotDistinct",
        ),
        (
            vec!["bad id!".into()],
            "AWS.SimpleQueueService.InvalidBatchEntryId",
        ),
        (
            vec!["a".repeat(81)],
            "AWS.SimpleQueueService.InvalidBatchEntryId",
        ),
    ]
}

#[tokio::test]
async fn send_batch_succeeds_with_md5s_in_order() {
    let ts = TestServer::start().await;
    let url = ts.create("sb").await;
    let out = ts
        .client
        .send_message_batch()
        .queue_url(&url)
        .entries(send_entry("first", "one"))
        .entries(
            SendMessageBatchRequestEntry::builder()
                .id("second-2_x")
                .message_body("two")
                .message_attributes("k", string_attr("String", "v"))
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert!(out.failed().is_empty(), "{:?}", out.failed());
    let ok = out.successful();
    assert_eq!(ok.len(), 2);
    let by_id = |id: &str| ok.iter().find(|e| e.id() == id).expect(id);
    assert_eq!(by_id("first").md5_of_message_body(), md5_hex(b"one"));
    assert_eq!(by_id("first").md5_of_message_attributes(), None);
    assert_eq!(by_id("second-2_x").md5_of_message_body(), md5_hex(b"two"));
    let mut attrs = std::collections::HashMap::new();
    attrs.insert("k".to_string(), string_attr("String", "v"));
    assert_eq!(
        by_id("second-2_x").md5_of_message_attributes(),
        Some(md5_of_attributes(&attrs).as_str())
    );
    assert_ne!(
        by_id("first").message_id(),
        by_id("second-2_x").message_id()
    );
    assert_eq!(ts.counts(&url).await.0, 2);
}

#[tokio::test]
async fn send_batch_whole_request_errors() {
    let ts = TestServer::start().await;
    let url = ts.create("sberr").await;
    for (ids, want) in id_cases() {
        let entries = ids.iter().map(|id| send_entry(id, "x")).collect();
        let err = ts
            .client
            .send_message_batch()
            .queue_url(&url)
            .set_entries(Some(entries))
            .send()
            .await
            .unwrap_err();
        let (code, status, _) = err_parts(&err);
        assert_eq!(code, want, "{ids:?}");
        assert_eq!(status, 400);
        let typed_ok = match err.as_service_error() {
            Some(SendMessageBatchError::EmptyBatchRequest(_)) => {
                want.ends_with("EmptyBatchRequest")
            }
            Some(SendMessageBatchError::TooManyEntriesInBatchRequest(_)) => {
                want.ends_with("TooManyEntriesInBatchRequest")
            }
            Some(SendMessageBatchError::BatchEntryIdsNotDistinct(_)) => {
                want.ends_with("BatchEntryIdsNotDistinct")
            }
            Some(SendMessageBatchError::InvalidBatchEntryId(_)) => {
                want.ends_with("InvalidBatchEntryId")
            }
            _ => false,
        };
        assert!(typed_ok, "{want}: {err:?}");
    }
    // Nothing from the failed requests was enqueued.
    assert_eq!(ts.counts(&url).await, (0, 0, 0));
}

#[tokio::test]
async fn send_batch_over_one_mib_total_is_batch_request_too_long() {
    let ts = TestServer::start().await;
    let url = ts.create("sbbig").await;
    let half = "x".repeat(600 * 1024);
    let err = ts
        .client
        .send_message_batch()
        .queue_url(&url)
        .entries(send_entry("a", &half))
        .entries(send_entry("b", &half))
        .send()
        .await
        .unwrap_err();
    assert!(
        matches!(
            err.as_service_error(),
            Some(SendMessageBatchError::BatchRequestTooLong(_))
        ),
        "{err:?}"
    );
    let (code, status, _) = err_parts(&err);
    assert_eq!(code, "AWS.SimpleQueueService.BatchRequestTooLong");
    assert_eq!(status, 400);
    assert_eq!(ts.counts(&url).await, (0, 0, 0));

    // Exactly 1 MiB in total is fine.
    let quarter = "y".repeat(256 * 1024);
    let out = ts
        .client
        .send_message_batch()
        .queue_url(&url)
        .set_entries(Some(
            (0..4)
                .map(|i| send_entry(&format!("q{i}"), &quarter))
                .collect(),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(out.successful().len(), 4);
}

#[tokio::test]
async fn send_batch_partial_failure_reports_failed_entries() {
    let ts = TestServer::start().await;
    let url = ts.create("sbpartial").await;
    let out = ts
        .client
        .send_message_batch()
        .queue_url(&url)
        .entries(send_entry("good", "fine"))
        .entries(send_entry("bad", "nope\u{1}"))
        .entries(
            SendMessageBatchRequestEntry::builder()
                .id("late")
                .message_body("x")
                .delay_seconds(901)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(out.successful().len(), 1);
    assert_eq!(out.successful()[0].id(), "good");
    let failed = out.failed();
    assert_eq!(failed.len(), 2, "{failed:?}");
    let bad = failed.iter().find(|f| f.id() == "bad").expect("bad entry");
    assert!(bad.sender_fault());
    assert_eq!(bad.code(), "InvalidMessageContents");
    assert!(!bad.message().unwrap_or("").is_empty());
    let late = failed
        .iter()
        .find(|f| f.id() == "late")
        .expect("late entry");
    assert!(late.sender_fault());
    assert_eq!(late.code(), "InvalidParameterValue");
    let got = ts.receive(&url, 10, None).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].body(), Some("fine"));
}

#[tokio::test]
async fn delete_batch_success_and_partial_failure() {
    let ts = TestServer::start().await;
    let url = ts.create("db").await;
    ts.send(&url, "a").await;
    ts.send(&url, "b").await;
    let got = ts.receive(&url, 10, Some(60)).await;
    assert_eq!(got.len(), 2);
    let out = ts
        .client
        .delete_message_batch()
        .queue_url(&url)
        .entries(delete_entry("d0", got[0].receipt_handle().unwrap()))
        .entries(delete_entry("d1", got[1].receipt_handle().unwrap()))
        .entries(delete_entry("junk", "not-a-handle"))
        .send()
        .await
        .unwrap();
    let mut ok: Vec<&str> = out.successful().iter().map(|e| e.id()).collect();
    ok.sort();
    assert_eq!(ok, ["d0", "d1"]);
    assert_eq!(out.failed().len(), 1);
    let f = &out.failed()[0];
    assert_eq!(f.id(), "junk");
    assert!(f.sender_fault());
    assert_eq!(f.code(), "ReceiptHandleIsInvalid");
    assert_eq!(ts.counts(&url).await, (0, 0, 0));
}

#[tokio::test]
async fn delete_batch_whole_request_errors() {
    let ts = TestServer::start().await;
    let url = ts.create("dberr").await;
    for (ids, want) in id_cases() {
        let entries = ids.iter().map(|id| delete_entry(id, "h")).collect();
        let err = ts
            .client
            .delete_message_batch()
            .queue_url(&url)
            .set_entries(Some(entries))
            .send()
            .await
            .unwrap_err();
        let (code, status, _) = err_parts(&err);
        assert_eq!(code, want, "{ids:?}");
        assert_eq!(status, 400);
        let typed_ok = match err.as_service_error() {
            Some(DeleteMessageBatchError::EmptyBatchRequest(_)) => {
                want.ends_with("EmptyBatchRequest")
            }
            Some(DeleteMessageBatchError::TooManyEntriesInBatchRequest(_)) => {
                want.ends_with("TooManyEntriesInBatchRequest")
            }
            Some(DeleteMessageBatchError::BatchEntryIdsNotDistinct(_)) => {
                want.ends_with("BatchEntryIdsNotDistinct")
            }
            Some(DeleteMessageBatchError::InvalidBatchEntryId(_)) => {
                want.ends_with("InvalidBatchEntryId")
            }
            _ => false,
        };
        assert!(typed_ok, "{want}: {err:?}");
    }
}

#[tokio::test]
async fn change_visibility_batch_success_and_partial_failure() {
    let ts = TestServer::start().await;
    let url = ts.create("cvb").await;
    ts.send(&url, "a").await;
    ts.send(&url, "b").await;
    let got = ts.receive(&url, 10, Some(60)).await;
    assert_eq!(got.len(), 2);
    let out = ts
        .client
        .change_message_visibility_batch()
        .queue_url(&url)
        .entries(vis_entry("release", got[0].receipt_handle().unwrap(), 0))
        .entries(vis_entry(
            "toolong",
            got[1].receipt_handle().unwrap(),
            43201,
        ))
        .entries(vis_entry("junk", "not-a-handle", 5))
        .send()
        .await
        .unwrap();
    let ok: Vec<&str> = out.successful().iter().map(|e| e.id()).collect();
    assert_eq!(ok, ["release"]);
    let failed = out.failed();
    assert_eq!(failed.len(), 2, "{failed:?}");
    let toolong = failed.iter().find(|f| f.id() == "toolong").unwrap();
    assert!(toolong.sender_fault());
    assert_eq!(toolong.code(), "InvalidParameterValue");
    let junk = failed.iter().find(|f| f.id() == "junk").unwrap();
    assert!(junk.sender_fault());
    assert_eq!(junk.code(), "ReceiptHandleIsInvalid");
    // The released message is visible, the other still in flight.
    assert_eq!(ts.counts(&url).await, (1, 1, 0));
    let again = ts.receive(&url, 10, None).await;
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].message_id(), got[0].message_id());
}

#[tokio::test]
async fn change_visibility_batch_whole_request_errors() {
    let ts = TestServer::start().await;
    let url = ts.create("cvberr").await;
    for (ids, want) in id_cases() {
        let entries = ids.iter().map(|id| vis_entry(id, "h", 1)).collect();
        let err = ts
            .client
            .change_message_visibility_batch()
            .queue_url(&url)
            .set_entries(Some(entries))
            .send()
            .await
            .unwrap_err();
        let (code, status, _) = err_parts(&err);
        assert_eq!(code, want, "{ids:?}");
        assert_eq!(status, 400);
        let typed_ok = match err.as_service_error() {
            Some(ChangeMessageVisibilityBatchError::EmptyBatchRequest(_)) => {
                want.ends_with("EmptyBatchRequest")
            }
            Some(ChangeMessageVisibilityBatchError::TooManyEntriesInBatchRequest(_)) => {
                want.ends_with("TooManyEntriesInBatchRequest")
            }
            Some(ChangeMessageVisibilityBatchError::BatchEntryIdsNotDistinct(_)) => {
                want.ends_with("BatchEntryIdsNotDistinct")
            }
            Some(ChangeMessageVisibilityBatchError::InvalidBatchEntryId(_)) => {
                want.ends_with("InvalidBatchEntryId")
            }
            _ => false,
        };
        assert!(typed_ok, "{want}: {err:?}");
    }
}

#[tokio::test]
async fn batch_on_unknown_queue_is_queue_does_not_exist() {
    let ts = TestServer::start().await;
    let (code, status, _) = expect_err!(
        ts.client
            .send_message_batch()
            .queue_url(ts.queue_url("ghost"))
            .entries(send_entry("a", "x"))
            .send()
    );
    assert_eq!(code, "AWS.SimpleQueueService.NonExistentQueue");
    assert_eq!(status, 400);
}
