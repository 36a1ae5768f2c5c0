//! Issue 20 point 2: the JSON 1.0 `__type` of every error is AWS's JSON name, while
//! `x-amzn-query-error` keeps the legacy Query code that the SDKs (Rust, Java, boto) match on.

use crate::common::*;

/// `InvalidParameterValue` is `…#InvalidParameterValueException` on the JSON wire.
#[tokio::test]
async fn invalid_parameter_value_has_the_exception_name() {
    let ts = TestServer::start().await;
    let url = ts.create("jn-ipv").await;
    let body = format!(r#"{{"QueueUrl":"{url}","MessageBody":"x","DelaySeconds":901}}"#);
    let (status, headers, resp) = ts.raw_json("AmazonSQS.SendMessage", &body).await;
    assert_json_error(
        status,
        &headers,
        &resp,
        400,
        "InvalidParameterValueException",
        "InvalidParameterValue",
    );
}

/// `MissingParameter` is `…#MissingRequiredParameterException` on the JSON wire.
#[tokio::test]
async fn missing_parameter_has_the_required_parameter_name() {
    let ts = TestServer::start().await;
    let (status, headers, resp) = ts
        .raw_json("AmazonSQS.ReceiveMessage", r#"{"MaxNumberOfMessages":1}"#)
        .await;
    assert_json_error(
        status,
        &headers,
        &resp,
        400,
        "MissingRequiredParameterException",
        "MissingParameter",
    );
}

/// Modelled shapes keep their Smithy shape names.
#[tokio::test]
async fn modelled_shapes_keep_their_names() {
    let ts = TestServer::start().await;
    let url = ts.create("jn-model").await;
    // ReceiptHandleIsInvalid (404).
    let body = format!(r#"{{"QueueUrl":"{url}","ReceiptHandle":"garbage"}}"#);
    let (status, headers, resp) = ts.raw_json("AmazonSQS.DeleteMessage", &body).await;
    assert_json_error(
        status,
        &headers,
        &resp,
        404,
        "ReceiptHandleIsInvalid",
        "ReceiptHandleIsInvalid",
    );
    // EmptyBatchRequest.
    let body = format!(r#"{{"QueueUrl":"{url}","Entries":[]}}"#);
    let (status, headers, resp) = ts.raw_json("AmazonSQS.SendMessageBatch", &body).await;
    assert_json_error(
        status,
        &headers,
        &resp,
        400,
        "EmptyBatchRequest",
        "AWS.SimpleQueueService.EmptyBatchRequest",
    );
    // InvalidAttributeName.
    let body = format!(r#"{{"QueueUrl":"{url}","Attributes":{{"Nope":"1"}}}}"#);
    let (status, headers, resp) = ts.raw_json("AmazonSQS.SetQueueAttributes", &body).await;
    assert_json_error(
        status,
        &headers,
        &resp,
        400,
        "InvalidAttributeName",
        "InvalidAttributeName",
    );
}

/// The official Rust SDK still reports the legacy codes (`err.code()`), taken from
/// `x-amzn-query-error`, and still maps modelled errors to their typed variants.
#[tokio::test]
async fn rust_sdk_still_maps_the_codes() {
    let ts = TestServer::start().await;
    let url = ts.create("jn-sdk").await;
    let err = ts
        .client
        .send_message()
        .queue_url(&url)
        .message_body("x")
        .delay_seconds(901)
        .send()
        .await
        .unwrap_err();
    let (code, status, _) = err_parts(&err);
    assert_eq!((code.as_str(), status), ("InvalidParameterValue", 400));

    let err = ts
        .client
        .get_queue_url()
        .queue_name("jn-ghost")
        .send()
        .await
        .unwrap_err();
    assert!(
        err.as_service_error()
            .is_some_and(|e| e.is_queue_does_not_exist()),
        "{err:?}"
    );
    let err = ts
        .client
        .delete_message()
        .queue_url(&url)
        .receipt_handle("garbage")
        .send()
        .await
        .unwrap_err();
    assert!(
        err.as_service_error()
            .is_some_and(|e| e.is_receipt_handle_is_invalid()),
        "{err:?}"
    );
}
