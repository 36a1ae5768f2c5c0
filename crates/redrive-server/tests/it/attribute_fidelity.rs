//! Issue 20 point 5: attribute defaults and answers as recorded on AWS (LocalStack's
//! AWS-validated snapshots).

use std::collections::HashMap;

use aws_sdk_sqs::types::{
    MessageSystemAttributeName, MessageSystemAttributeNameForSends, MessageSystemAttributeValue,
    QueueAttributeName,
};

use crate::common::*;
use crate::expect_err;

#[tokio::test]
async fn sqs_managed_sse_is_on_by_default() {
    let ts = TestServer::start().await;
    let url = ts.create("af-sse").await;
    let a = ts.attrs(&url, &["All"]).await;
    assert_eq!(a["SqsManagedSseEnabled"], "true");
}

#[tokio::test]
async fn kms_attributes_are_omitted_once_set_back_to_defaults() {
    let ts = TestServer::start().await;
    let url = ts.create("af-kms").await;
    let set = |k: QueueAttributeName, v: &str| {
        ts.client
            .set_queue_attributes()
            .queue_url(&url)
            .attributes(k, v)
            .send()
    };
    set(QueueAttributeName::KmsMasterKeyId, "alias/aws/sqs")
        .await
        .unwrap();
    set(QueueAttributeName::KmsDataKeyReusePeriodSeconds, "600")
        .await
        .unwrap();
    let a = ts.attrs(&url, &["All"]).await;
    assert_eq!(a["KmsMasterKeyId"], "alias/aws/sqs");
    assert_eq!(a["KmsDataKeyReusePeriodSeconds"], "600");
    // One SSE option per queue: the KMS key turns the SSE-SQS default off.
    assert_eq!(a["SqsManagedSseEnabled"], "false");
    set(QueueAttributeName::KmsMasterKeyId, "").await.unwrap();
    set(QueueAttributeName::KmsDataKeyReusePeriodSeconds, "300")
        .await
        .unwrap();
    let a = ts.attrs(&url, &["All"]).await;
    assert!(!a.contains_key("KmsMasterKeyId"), "{a:?}");
    assert!(!a.contains_key("KmsDataKeyReusePeriodSeconds"), "{a:?}");
}

#[tokio::test]
async fn policy_keeps_version_2008_after_remove_permission() {
    let ts = TestServer::start().await;
    let url = ts.create("af-policy").await;
    ts.client
        .add_permission()
        .queue_url(&url)
        .label("l1")
        .aws_account_ids(ACCOUNT)
        .actions("SendMessage")
        .send()
        .await
        .unwrap();
    let a = ts.attrs(&url, &["Policy"]).await;
    let p: serde_json::Value = serde_json::from_str(&a["Policy"]).unwrap();
    assert_eq!(p["Version"], "2008-10-17");
    ts.client
        .remove_permission()
        .queue_url(&url)
        .label("l1")
        .send()
        .await
        .unwrap();
    let a = ts.attrs(&url, &["Policy"]).await;
    let p: serde_json::Value = serde_json::from_str(&a["Policy"]).unwrap();
    assert_eq!(p["Version"], "2008-10-17");
    assert_eq!(p["Statement"], serde_json::json!([]));
}

#[tokio::test]
async fn fifo_queue_attribute_rules() {
    let ts = TestServer::start().await;
    let (code, status, message) = expect_err!(
        ts.client
            .create_queue()
            .queue_name("af-std")
            .attributes(QueueAttributeName::FifoQueue, "false")
            .send()
    );
    assert_eq!((code.as_str(), status), ("InvalidAttributeName", 400));
    assert_eq!(message, "Unknown Attribute FifoQueue.");
    let url = ts
        .create_with("af-fifo.fifo", &[("FifoQueue", "true")])
        .await;
    let (code, _, message) = expect_err!(
        ts.client
            .set_queue_attributes()
            .queue_url(&url)
            .attributes(QueueAttributeName::FifoQueue, "false")
            .send()
    );
    assert_eq!(code, "InvalidAttributeValue");
    assert!(
        message.ends_with("Modifying queue type is not supported."),
        "{message}"
    );
}

#[tokio::test]
async fn aws_trace_header_is_returned_when_requested() {
    let ts = TestServer::start().await;
    let url = ts.create("af-trace").await;
    let trace = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
    ts.client
        .send_message()
        .queue_url(&url)
        .message_body("m")
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
    let got = ts
        .client
        .receive_message()
        .queue_url(&url)
        .message_system_attribute_names(MessageSystemAttributeName::AwsTraceHeader)
        .send()
        .await
        .unwrap()
        .messages
        .unwrap();
    assert_eq!(sys_attr(&got[0], "AWSTraceHeader").as_deref(), Some(trace));
}

#[tokio::test]
async fn star_selects_every_message_attribute() {
    let ts = TestServer::start().await;
    let url = ts.create("af-star").await;
    let attrs: HashMap<_, _> = [
        ("a".to_string(), string_attr("String", "1")),
        ("b.c".to_string(), string_attr("Number", "2")),
    ]
    .into();
    ts.client
        .send_message()
        .queue_url(&url)
        .message_body("m")
        .set_message_attributes(Some(attrs.clone()))
        .send()
        .await
        .unwrap();
    let got = ts
        .client
        .receive_message()
        .queue_url(&url)
        .message_attribute_names("*")
        .visibility_timeout(0)
        .send()
        .await
        .unwrap()
        .messages
        .unwrap();
    assert_eq!(got[0].message_attributes().map(|m| m.len()), Some(2));
    assert_eq!(
        got[0].md5_of_message_attributes(),
        Some(md5_of_attributes(&attrs).as_str())
    );
}

#[tokio::test]
async fn change_visibility_accepts_43200() {
    let ts = TestServer::start().await;
    let url = ts.create("af-cmv").await;
    ts.send(&url, "m").await;
    let got = ts.receive(&url, 1, None).await;
    ts.client
        .change_message_visibility()
        .queue_url(&url)
        .receipt_handle(got[0].receipt_handle().unwrap())
        .visibility_timeout(43200)
        .send()
        .await
        .expect("43200 is the maximum, accepted");
}

/// A send with an `X-Amzn-Trace-Id` header (set by the SDKs' recursion detection in Lambda and
/// by X-Ray instrumentation) is returned as `AWSTraceHeader`; an explicit attribute wins.
#[tokio::test]
async fn trace_id_header_becomes_aws_trace_header() {
    let ts = TestServer::start().await;
    let url = ts.create("af-trace-hdr").await;
    let trace = "Root=1-67891233-abcdef012345678912345678;Parent=463ac35c9f6413ad;Sampled=1";
    for body in [
        format!(r#"{{"QueueUrl":"{url}","MessageBody":"from header"}}"#),
        format!(
            r#"{{"QueueUrl":"{url}","MessageBody":"explicit","MessageSystemAttributes":{{"AWSTraceHeader":{{"DataType":"String","StringValue":"Root=explicit"}}}}}}"#
        ),
    ] {
        let (status, _, resp) = ts
            .raw(
                "POST",
                "/",
                Some(JSON_CT),
                &[
                    ("x-amz-target", "AmazonSQS.SendMessage"),
                    ("x-amzn-trace-id", trace),
                ],
                body.into_bytes(),
            )
            .await;
        assert_eq!(status, 200, "{resp}");
    }
    let got = ts
        .client
        .receive_message()
        .queue_url(&url)
        .max_number_of_messages(10)
        .message_system_attribute_names(MessageSystemAttributeName::AwsTraceHeader)
        .send()
        .await
        .unwrap()
        .messages
        .unwrap();
    let by_body: HashMap<_, _> = got
        .iter()
        .map(|m| (m.body().unwrap(), sys_attr(m, "AWSTraceHeader")))
        .collect();
    assert_eq!(by_body["from header"].as_deref(), Some(trace));
    assert_eq!(by_body["explicit"].as_deref(), Some("Root=explicit"));
}
