//! Issue 20 point 6: error texts and codes as recorded on AWS (LocalStack's AWS-validated
//! snapshots).

use crate::common::*;
use crate::expect_err;

#[tokio::test]
async fn empty_string_attribute_text() {
    let ts = TestServer::start().await;
    let url = ts.create("tx-attr").await;
    let (code, status, message) = expect_err!(
        ts.client
            .send_message()
            .queue_url(&url)
            .message_body("m")
            .message_attributes(
                "X",
                aws_sdk_sqs::types::MessageAttributeValue::builder()
                    .data_type("String")
                    .string_value("")
                    .build()
                    .unwrap()
            )
            .send()
    );
    assert_eq!((code.as_str(), status), ("InvalidParameterValue", 400));
    assert_eq!(
        message,
        "Message (user) attribute 'X' must contain a non-empty value of type 'String'."
    );
}

#[tokio::test]
async fn non_ascii_attribute_names_are_accepted_and_bad_value_chars_are_invalid_parameter() {
    let ts = TestServer::start().await;
    let url = ts.create("tx-nonascii").await;
    ts.client
        .send_message()
        .queue_url(&url)
        .message_body("m")
        .message_attributes("ümlaut_名前", string_attr("String", "v"))
        .send()
        .await
        .expect("non-ASCII attribute name accepted");
    let got = ts.receive(&url, 1, None).await;
    assert!(
        got[0]
            .message_attributes()
            .unwrap()
            .contains_key("ümlaut_名前")
    );
    let (code, _, _) = expect_err!(
        ts.client
            .send_message()
            .queue_url(&url)
            .message_body("m")
            .message_attributes("a", string_attr("String", "bad\u{1}value"))
            .send()
    );
    assert_eq!(code, "InvalidParameterValue");
}

#[tokio::test]
async fn create_queue_with_different_attributes_text() {
    let ts = TestServer::start().await;
    ts.create_with("tx-dup", &[("DelaySeconds", "1")]).await;
    let (code, _, message) = expect_err!(
        ts.client
            .create_queue()
            .queue_name("tx-dup")
            .attributes(aws_sdk_sqs::types::QueueAttributeName::DelaySeconds, "2")
            .send()
    );
    assert_eq!(code, "QueueAlreadyExists");
    assert_eq!(
        message,
        "A queue already exists with the same name and a different value for attribute DelaySeconds"
    );
}

#[tokio::test]
async fn redrive_policy_with_dlq_of_other_type_text() {
    let ts = TestServer::start().await;
    ts.create_with("tx-dlq.fifo", &[("FifoQueue", "true")])
        .await;
    let policy = format!(
        r#"{{"deadLetterTargetArn":"{}","maxReceiveCount":1}}"#,
        TestServer::arn("tx-dlq.fifo")
    );
    let (code, _, message) = expect_err!(
        ts.client
            .create_queue()
            .queue_name("tx-src")
            .attributes(
                aws_sdk_sqs::types::QueueAttributeName::RedrivePolicy,
                &policy
            )
            .send()
    );
    assert_eq!(code, "InvalidParameterValue");
    assert!(
        message.ends_with("Reason: Dead-letter queue must be same type of queue as the source.."),
        "{message}"
    );
}

#[tokio::test]
async fn lone_surrogate_in_json_is_invalid_message_contents() {
    let ts = TestServer::start().await;
    let url = ts.create("tx-surrogate").await;
    let body = format!(r#"{{"QueueUrl":"{url}","MessageBody":"a\ud800b"}}"#);
    let (status, headers, resp) = ts.raw_json("AmazonSQS.SendMessage", &body).await;
    assert_json_error(
        status,
        &headers,
        &resp,
        400,
        "InvalidMessageContents",
        "InvalidMessageContents",
    );
    assert_eq!(ts.counts(&url).await, (0, 0, 0));
}

fn batch_entries(max: usize) -> Vec<aws_sdk_sqs::types::SendMessageBatchRequestEntry> {
    // "k" + "String" + "x": the attribute's share of the size.
    let attr_size = 1 + 6 + 1;
    vec![
        aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder()
            .id("1")
            .message_body("a".repeat(max - attr_size))
            .message_attributes("k", string_attr("String", "x"))
            .build()
            .unwrap(),
        aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder()
            .id("2")
            .message_body("a")
            .build()
            .unwrap(),
    ]
}

/// AWS-recorded: a batch whose total passes the queue's lowered MaximumMessageSize (each entry
/// within it) succeeds — the batch limit stays 1 MiB; over 1 MiB the whole batch fails.
#[tokio::test]
async fn batch_size_limits_after_maximum_message_size_changed() {
    let ts = TestServer::start().await;
    let url = ts
        .create_with("tx-batch", &[("MaximumMessageSize", "2048")])
        .await;
    let out = ts
        .client
        .send_message_batch()
        .queue_url(&url)
        .set_entries(Some(batch_entries(2048)))
        .send()
        .await
        .expect("batch over the queue's MaximumMessageSize in total succeeds");
    assert_eq!(out.successful().len(), 2, "{out:?}");
    assert!(out.failed().is_empty());

    let big = ts.create("tx-batch-big").await;
    let (code, status, message) = expect_err!(
        ts.client
            .send_message_batch()
            .queue_url(&big)
            .set_entries(Some(batch_entries(1_048_576)))
            .send()
    );
    assert_eq!(
        (code.as_str(), status),
        ("AWS.SimpleQueueService.BatchRequestTooLong", 400)
    );
    assert_eq!(
        message,
        "Batch requests cannot be longer than 1048576 bytes. You have sent 1048577 bytes."
    );
}
