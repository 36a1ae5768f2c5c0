//! LocalStack's developer endpoints (`/_localstack/health`, `/_aws/sqs/messages`), with the
//! scenarios of LocalStack's own developer-endpoint tests: peek shows visible, in-flight and
//! delayed messages as the flags say, in each response format, and never changes a message.

use aws_sdk_sqs::types::MessageSystemAttributeName;
use serde_json::Value;

use crate::common::{ACCOUNT, JSON_CT, TestServer};

/// The messages of an `Accept: application/json` answer, as `(body, attributes)`.
async fn peek_json(s: &TestServer, query: &str) -> Vec<(String, serde_json::Map<String, Value>)> {
    let (status, headers, body) = s
        .raw(
            "GET",
            &format!("/_aws/sqs/messages?{query}"),
            None,
            &[("accept", "application/json")],
            vec![],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers["content-type"], "application/json");
    let v: Value = serde_json::from_str(&body).unwrap();
    v["ReceiveMessageResponse"]["ReceiveMessageResult"]["Message"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            assert_eq!(m["ReceiptHandle"], "SQS/BACKDOOR/ACCESS");
            let attrs = m["Attribute"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| (a["Name"].as_str().unwrap().to_string(), a["Value"].clone()))
                .collect();
            (m["Body"].as_str().unwrap().to_string(), attrs)
        })
        .collect()
}

fn q(url: &str) -> String {
    form_urlencoded::Serializer::new(String::new())
        .append_pair("QueueUrl", url)
        .finish()
}

#[tokio::test]
async fn health_lists_sqs_as_running_and_init_is_complete() {
    let s = TestServer::start().await;
    let (status, _, body) = s.raw("GET", "/_localstack/health", None, &[], vec![]).await;
    assert_eq!(status, 200);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["services"]["sqs"], "running");
    assert!(v["version"].as_str().unwrap().starts_with("redrive-"));
    let (status, _, body) = s.raw("GET", "/_localstack/init", None, &[], vec![]).await;
    assert_eq!(status, 200);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["completed"]["READY"], true);
}

#[tokio::test]
async fn peek_lists_visible_messages_without_touching_them() {
    let s = TestServer::start().await;
    let url = s.create("peeked").await;
    for i in 1..=3 {
        s.send(&url, &format!("message-{i}")).await;
    }
    for _ in 0..2 {
        let msgs = peek_json(&s, &q(&url)).await;
        let bodies: Vec<&str> = msgs.iter().map(|(b, _)| b.as_str()).collect();
        assert_eq!(bodies, ["message-1", "message-2", "message-3"]);
        for (_, a) in &msgs {
            assert_eq!(a["ApproximateReceiveCount"], "0");
            assert!(a.contains_key("SentTimestamp") && a.contains_key("SenderId"));
            assert!(!a.contains_key("IsVisible") && !a.contains_key("IsDelayed"));
        }
    }
    // Nothing changed: a real receive gets all three, each received for the first time.
    let got = s
        .client
        .receive_message()
        .queue_url(&url)
        .max_number_of_messages(10)
        .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
        .send()
        .await
        .unwrap()
        .messages
        .unwrap_or_default();
    assert_eq!(got.len(), 3);
    for m in got {
        let count = &m.attributes.unwrap()[&MessageSystemAttributeName::ApproximateReceiveCount];
        assert_eq!(count, "1");
    }
}

#[tokio::test]
async fn show_invisible_and_show_delayed_add_flagged_messages() {
    let s = TestServer::start().await;
    let url = s.create("flags").await;
    s.send(&url, "a").await;
    s.send(&url, "b").await;
    s.client
        .send_message()
        .queue_url(&url)
        .message_body("later")
        .delay_seconds(60)
        .send()
        .await
        .unwrap();
    let received = s
        .client
        .receive_message()
        .queue_url(&url)
        .max_number_of_messages(1)
        .visibility_timeout(60)
        .send()
        .await
        .unwrap()
        .messages
        .unwrap();
    let taken = received[0].body().unwrap().to_string();
    let other = if taken == "a" { "b" } else { "a" };

    let plain = peek_json(&s, &q(&url)).await;
    assert_eq!(plain.len(), 1);
    assert_eq!(plain[0].0, other);

    let inv = peek_json(&s, &format!("{}&ShowInvisible=true", q(&url))).await;
    assert_eq!(inv.len(), 2);
    for (body, a) in &inv {
        let visible = body == other;
        assert_eq!(a["IsVisible"], visible.to_string(), "{body}");
        let count = if visible { "0" } else { "1" };
        assert_eq!(a["ApproximateReceiveCount"], count, "{body}");
    }

    let del = peek_json(&s, &format!("{}&ShowDelayed=true", q(&url))).await;
    let bodies: Vec<&str> = del.iter().map(|(b, _)| b.as_str()).collect();
    assert_eq!(bodies, [other, "later"]);
    assert_eq!(del[1].1["IsDelayed"], "true");
    assert_eq!(del[0].1["IsDelayed"], "false");

    let all = peek_json(&s, &format!("{}&ShowInvisible=1&ShowDelayed=1", q(&url))).await;
    assert_eq!(all.len(), 3);
    // The in-flight message was not touched by any peek.
    let inv = peek_json(&s, &format!("{}&ShowInvisible=true", q(&url))).await;
    let taken_now = inv.iter().find(|(b, _)| *b == taken).unwrap();
    assert_eq!(taken_now.1["ApproximateReceiveCount"], "1");
}

#[tokio::test]
async fn fifo_messages_behind_an_in_flight_one_are_invisible() {
    let s = TestServer::start().await;
    let url = s
        .create_with(
            "group.fifo",
            &[("FifoQueue", "true"), ("ContentBasedDeduplication", "true")],
        )
        .await;
    for body in ["first", "second"] {
        s.client
            .send_message()
            .queue_url(&url)
            .message_body(body)
            .message_group_id("g")
            .send()
            .await
            .unwrap();
    }
    assert_eq!(peek_json(&s, &q(&url)).await.len(), 2);
    s.client
        .receive_message()
        .queue_url(&url)
        .max_number_of_messages(1)
        .visibility_timeout(60)
        .send()
        .await
        .unwrap();
    assert!(peek_json(&s, &q(&url)).await.is_empty());
    let inv = peek_json(&s, &format!("{}&ShowInvisible=true", q(&url))).await;
    assert_eq!(inv.len(), 2);
    assert!(inv.iter().all(|(_, a)| a["IsVisible"] == "false"));
    assert_eq!(inv[0].1["MessageGroupId"], "g");
}

#[tokio::test]
async fn xml_json_and_path_forms() {
    let s = TestServer::start().await;
    let url = s.create("forms").await;
    s.send(&url, "hello").await;

    // Default: the Query protocol's XML.
    let (status, _, body) = s
        .raw(
            "GET",
            &format!("/_aws/sqs/messages?{}", q(&url)),
            None,
            &[],
            vec![],
        )
        .await;
    assert_eq!(status, 200);
    assert!(body.contains("<ReceiveMessageResponse"), "{body}");
    assert!(body.contains("<Body>hello</Body>"), "{body}");

    // A form POST, as an SDK's Query client sends it.
    let (status, _, body) = s
        .raw(
            "POST",
            "/_aws/sqs/messages",
            Some("application/x-www-form-urlencoded"),
            &[],
            format!("Action=ReceiveMessage&{}", q(&url)).into_bytes(),
        )
        .await;
    assert_eq!(status, 200);
    assert!(body.contains("<Body>hello</Body>"), "{body}");

    // A JSON 1.0 ReceiveMessage: the JSON protocol's shape.
    let (status, _, body) = s
        .raw(
            "POST",
            "/_aws/sqs/messages",
            Some(JSON_CT),
            &[("x-amz-target", "AmazonSQS.ReceiveMessage")],
            serde_json::json!({"QueueUrl": url})
                .to_string()
                .into_bytes(),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["Messages"][0]["Body"], "hello");
    assert_eq!(v["Messages"][0]["ReceiptHandle"], "SQS/BACKDOOR/ACCESS");

    // The path form.
    let (status, _, body) = s
        .raw(
            "GET",
            &format!("/_aws/sqs/messages/us-east-1/{ACCOUNT}/forms"),
            None,
            &[("accept", "application/json")],
            vec![],
        )
        .await;
    assert_eq!(status, 200);
    assert!(body.contains("\"Body\":\"hello\""), "{body}");
}

#[tokio::test]
async fn bad_peeks_get_localstacks_errors() {
    let s = TestServer::start().await;
    let (status, _, body) = s.raw("GET", "/_aws/sqs/messages", None, &[], vec![]).await;
    assert_eq!(status, 400);
    assert!(
        body.contains("AWS.SimpleQueueService.NonExistentQueue"),
        "{body}"
    );
    let (status, _, body) = s
        .raw(
            "GET",
            &format!("/_aws/sqs/messages?{}", q(&s.queue_url("missing"))),
            None,
            &[("accept", "application/json")],
            vec![],
        )
        .await;
    assert_eq!(status, 400);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        v["ErrorResponse"]["Error"]["Code"],
        "AWS.SimpleQueueService.NonExistentQueue"
    );
    let (status, _, body) = s
        .raw(
            "GET",
            "/_aws/sqs/messages?QueueUrl=nonsense",
            None,
            &[],
            vec![],
        )
        .await;
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("InvalidAddress"), "{body}");
    let (status, _, body) = s
        .raw(
            "POST",
            "/_aws/sqs/messages",
            Some(JSON_CT),
            &[("x-amz-target", "AmazonSQS.DeleteQueue")],
            b"{}".to_vec(),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("only accepts ReceiveMessage"), "{body}");
}
