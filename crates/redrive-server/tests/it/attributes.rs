//! GetQueueAttributes / SetQueueAttributes, including RedrivePolicy validation.

use aws_sdk_sqs::operation::get_queue_attributes::GetQueueAttributesError;
use aws_sdk_sqs::operation::set_queue_attributes::SetQueueAttributesError;
use aws_sdk_sqs::types::QueueAttributeName;

use crate::common::*;
use crate::expect_err;

#[tokio::test]
async fn all_returns_defaults_arn_and_timestamps() {
    let ts = TestServer::start().await;
    let before = now_ms() / 1000;
    let url = ts.create("attrs").await;
    let after = now_ms() / 1000;
    let a = ts.attrs(&url, &["All"]).await;
    assert_eq!(a["QueueArn"], "arn:aws:sqs:us-east-1:000000000000:attrs");
    assert_eq!(a["VisibilityTimeout"], "30");
    assert_eq!(a["MaximumMessageSize"], "1048576");
    assert_eq!(a["MessageRetentionPeriod"], "345600");
    assert_eq!(a["DelaySeconds"], "0");
    assert_eq!(a["ReceiveMessageWaitTimeSeconds"], "0");
    assert_eq!(a["ApproximateNumberOfMessages"], "0");
    assert_eq!(a["ApproximateNumberOfMessagesNotVisible"], "0");
    assert_eq!(a["ApproximateNumberOfMessagesDelayed"], "0");
    assert!(!a.contains_key("RedrivePolicy"), "{a:?}");
    assert!(!a.contains_key("FifoQueue"), "standard queue: {a:?}");
    // Epoch seconds, not milliseconds.
    for k in ["CreatedTimestamp", "LastModifiedTimestamp"] {
        let t: u64 = a[k].parse().unwrap();
        assert!(
            (before..=after).contains(&t),
            "{k}={t} not in {before}..={after}"
        );
    }
}

#[tokio::test]
async fn specific_names_return_only_those() {
    let ts = TestServer::start().await;
    let url = ts.create_with("some", &[("DelaySeconds", "5")]).await;
    let a = ts.attrs(&url, &["DelaySeconds", "QueueArn"]).await;
    assert_eq!(a.len(), 2, "{a:?}");
    assert_eq!(a["DelaySeconds"], "5");
    assert_eq!(a["QueueArn"], TestServer::arn("some"));
}

#[tokio::test]
async fn no_names_return_nothing() {
    let ts = TestServer::start().await;
    let url = ts.create("none").await;
    let a = ts.attrs(&url, &[]).await;
    assert!(a.is_empty(), "{a:?}");
}

#[tokio::test]
async fn unknown_attribute_name_is_invalid_attribute_name() {
    let ts = TestServer::start().await;
    let url = ts.create("unknown").await;
    let err = ts
        .client
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(QueueAttributeName::from("Bogus"))
        .send()
        .await
        .unwrap_err();
    assert!(
        matches!(
            err.as_service_error(),
            Some(GetQueueAttributesError::InvalidAttributeName(_))
        ),
        "{err:?}"
    );
    let (code, status, _) = err_parts(&err);
    assert_eq!(code, "InvalidAttributeName");
    assert_eq!(status, 400);

    let err = ts
        .client
        .set_queue_attributes()
        .queue_url(&url)
        .attributes(QueueAttributeName::from("Bogus"), "1")
        .send()
        .await
        .unwrap_err();
    assert!(
        matches!(
            err.as_service_error(),
            Some(SetQueueAttributesError::InvalidAttributeName(_))
        ),
        "{err:?}"
    );
    let (code, _, _) = expect_err!(
        ts.client
            .create_queue()
            .queue_name("other")
            .attributes(QueueAttributeName::from("Bogus"), "1")
            .send()
    );
    assert_eq!(code, "InvalidAttributeName");
    // Read-only attributes cannot be set.
    let (code, _, _) = expect_err!(
        ts.client
            .set_queue_attributes()
            .queue_url(&url)
            .attributes(
                QueueAttributeName::QueueArn,
                "arn:aws:sqs:us-east-1:000000000000:x"
            )
            .send()
    );
    assert_eq!(code, "InvalidAttributeName");
}

#[tokio::test]
async fn out_of_range_values_are_invalid_attribute_value() {
    let ts = TestServer::start().await;
    let url = ts.create("range").await;
    for (name, bad) in [
        ("VisibilityTimeout", "43201"),
        ("VisibilityTimeout", "-1"),
        ("DelaySeconds", "901"),
        ("MessageRetentionPeriod", "59"),
        ("MessageRetentionPeriod", "1209601"),
        ("MaximumMessageSize", "1023"),
        ("MaximumMessageSize", "1048577"),
        ("ReceiveMessageWaitTimeSeconds", "21"),
        ("VisibilityTimeout", "ten"),
    ] {
        let err = ts
            .client
            .set_queue_attributes()
            .queue_url(&url)
            .attributes(QueueAttributeName::from(name), bad)
            .send()
            .await
            .unwrap_err();
        let (code, status, _) = err_parts(&err);
        assert_eq!(code, "InvalidAttributeValue", "{name}={bad}");
        assert_eq!(status, 400);
        assert!(
            matches!(
                err.as_service_error(),
                Some(SetQueueAttributesError::InvalidAttributeValue(_))
            ),
            "{name}={bad}: {err:?}"
        );
        let (code, _, _) = expect_err!(
            ts.client
                .create_queue()
                .queue_name("range2")
                .attributes(QueueAttributeName::from(name), bad)
                .send()
        );
        assert_eq!(code, "InvalidAttributeValue", "create {name}={bad}");
    }
    // Nothing changed, and the edges are accepted.
    assert_eq!(
        ts.attrs(&url, &["VisibilityTimeout"]).await["VisibilityTimeout"],
        "30"
    );
    ts.client
        .set_queue_attributes()
        .queue_url(&url)
        .attributes(QueueAttributeName::VisibilityTimeout, "43200")
        .attributes(QueueAttributeName::DelaySeconds, "900")
        .attributes(QueueAttributeName::MessageRetentionPeriod, "60")
        .attributes(QueueAttributeName::MaximumMessageSize, "1024")
        .send()
        .await
        .unwrap();
    let a = ts.attrs(&url, &["All"]).await;
    assert_eq!(a["VisibilityTimeout"], "43200");
    assert_eq!(a["DelaySeconds"], "900");
    assert_eq!(a["MessageRetentionPeriod"], "60");
    assert_eq!(a["MaximumMessageSize"], "1024");
}

#[tokio::test]
async fn set_attributes_are_returned() {
    let ts = TestServer::start().await;
    let url = ts.create("setme").await;
    let policy = r#"{"Version":"2012-10-17","Statement":[{"Sid":"s1","Effect":"Allow","Principal":"*","Action":"sqs:SendMessage","Resource":"*"}]}"#;
    ts.client
        .set_queue_attributes()
        .queue_url(&url)
        .attributes(QueueAttributeName::Policy, policy)
        .attributes(QueueAttributeName::KmsMasterKeyId, "alias/aws/sqs")
        .attributes(QueueAttributeName::KmsDataKeyReusePeriodSeconds, "600")
        .attributes(QueueAttributeName::VisibilityTimeout, "7")
        .attributes(QueueAttributeName::ReceiveMessageWaitTimeSeconds, "3")
        .send()
        .await
        .unwrap();
    let a = ts.attrs(&url, &["All"]).await;
    let stored: serde_json::Value = serde_json::from_str(&a["Policy"]).unwrap();
    let given: serde_json::Value = serde_json::from_str(policy).unwrap();
    assert_eq!(stored, given);
    assert_eq!(a["KmsMasterKeyId"], "alias/aws/sqs");
    assert_eq!(a["KmsDataKeyReusePeriodSeconds"], "600");
    assert_eq!(a["VisibilityTimeout"], "7");
    assert_eq!(a["ReceiveMessageWaitTimeSeconds"], "3");
    // Individually requested, too.
    let a = ts.attrs(&url, &["KmsMasterKeyId"]).await;
    assert_eq!(a.len(), 1);
    assert_eq!(a["KmsMasterKeyId"], "alias/aws/sqs");
}

#[tokio::test]
async fn counters_track_visible_in_flight_and_delayed() {
    let ts = TestServer::start().await;
    let url = ts.create("counters").await;
    for i in 0..3 {
        ts.send(&url, &format!("m{i}")).await;
    }
    ts.client
        .send_message()
        .queue_url(&url)
        .message_body("later")
        .delay_seconds(60)
        .send()
        .await
        .unwrap();
    assert_eq!(ts.counts(&url).await, (3, 0, 1));
    let got = ts.receive(&url, 2, Some(60)).await;
    assert_eq!(got.len(), 2);
    assert_eq!(ts.counts(&url).await, (1, 2, 1));
    ts.client
        .delete_message()
        .queue_url(&url)
        .receipt_handle(got[0].receipt_handle().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(ts.counts(&url).await, (1, 1, 1));
    ts.client
        .change_message_visibility()
        .queue_url(&url)
        .receipt_handle(got[1].receipt_handle().unwrap())
        .visibility_timeout(0)
        .send()
        .await
        .unwrap();
    assert_eq!(ts.counts(&url).await, (2, 0, 1));
}

fn redrive_json(arn: &str, count: Option<&str>) -> String {
    match count {
        Some(c) => format!(r#"{{"deadLetterTargetArn":"{arn}","maxReceiveCount":{c}}}"#),
        None => format!(r#"{{"deadLetterTargetArn":"{arn}"}}"#),
    }
}

#[tokio::test]
async fn redrive_policy_is_validated_with_aws_texts() {
    let ts = TestServer::start().await;
    ts.create("dlq").await;
    let src = ts.create("src").await;
    let dlq_arn = TestServer::arn("dlq");
    let cases = [
        (
            redrive_json(&dlq_arn, Some("0")),
            "Invalid value for maxReceiveCount: 0, valid values are from 1 to 1000 both inclusive.",
        ),
        (
            redrive_json(&dlq_arn, Some("1001")),
            "Invalid value for maxReceiveCount: 1001, valid values are from 1 to 1000 both inclusive.",
        ),
        (
            redrive_json(&dlq_arn, None),
            "The required parameter 'maxReceiveCount' is missing",
        ),
        (
            redrive_json(&TestServer::arn("no-such-queue"), Some("3")),
            "Dead letter target does not exist.",
        ),
    ];
    for (policy, reason) in &cases {
        let (code, status, message) = expect_err!(
            ts.client
                .set_queue_attributes()
                .queue_url(&src)
                .attributes(QueueAttributeName::RedrivePolicy, policy)
                .send()
        );
        assert_eq!(code, "InvalidParameterValue", "{policy}");
        assert_eq!(status, 400);
        assert!(
            message.starts_with("Value ")
                && message.contains("for parameter RedrivePolicy is invalid. Reason: ")
                && message.ends_with(reason),
            "{policy}: {message}"
        );
        // Same validation at creation.
        let (code, _, message) = expect_err!(
            ts.client
                .create_queue()
                .queue_name("src2")
                .attributes(QueueAttributeName::RedrivePolicy, policy)
                .send()
        );
        assert_eq!(code, "InvalidParameterValue", "create {policy}");
        assert!(message.ends_with(reason), "create {policy}: {message}");
    }
    assert!(!ts.attrs(&src, &["All"]).await.contains_key("RedrivePolicy"));
}

#[tokio::test]
async fn redrive_policy_is_stored_and_empty_value_removes_it() {
    let ts = TestServer::start().await;
    ts.create("dlq").await;
    let src = ts.create("src").await;
    let dlq_arn = TestServer::arn("dlq");
    ts.client
        .set_queue_attributes()
        .queue_url(&src)
        .attributes(
            QueueAttributeName::RedrivePolicy,
            redrive_json(&dlq_arn, Some("5")),
        )
        .send()
        .await
        .unwrap();
    let stored = ts
        .attrs(&src, &["RedrivePolicy"])
        .await
        .remove("RedrivePolicy");
    let v: serde_json::Value = serde_json::from_str(stored.as_deref().expect("stored")).unwrap();
    assert_eq!(v["deadLetterTargetArn"], dlq_arn.as_str());
    assert_eq!(
        v["maxReceiveCount"].to_string().trim_matches('"'),
        "5",
        "{v}"
    );

    ts.client
        .set_queue_attributes()
        .queue_url(&src)
        .attributes(QueueAttributeName::RedrivePolicy, "")
        .send()
        .await
        .unwrap();
    let a = ts.attrs(&src, &["All"]).await;
    assert!(a.get("RedrivePolicy").is_none_or(String::is_empty), "{a:?}");
    let sources = ts
        .client
        .list_dead_letter_source_queues()
        .queue_url(ts.queue_url("dlq"))
        .send()
        .await
        .unwrap();
    assert!(sources.queue_urls().is_empty());
}

#[tokio::test]
async fn redrive_policy_target_must_be_same_queue_type() {
    let ts = TestServer::start().await;
    ts.create_with("dlq.fifo", &[("FifoQueue", "true")]).await;
    let src = ts.create("src").await;
    let (code, _, message) = expect_err!(
        ts.client
            .set_queue_attributes()
            .queue_url(&src)
            .attributes(
                QueueAttributeName::RedrivePolicy,
                redrive_json(&TestServer::arn("dlq.fifo"), Some("3")),
            )
            .send()
    );
    assert_eq!(code, "InvalidParameterValue");
    assert!(message.contains("RedrivePolicy"), "{message}");
}
