//! The AWS Query protocol over raw HTTP: form in, XML out.

use std::collections::HashMap;

use base64::Engine as _;

use crate::common::*;

const V: (&str, &str) = ("Version", "2012-11-05");

#[track_caller]
fn assert_ok(status: u16, body: &str, action: &str) {
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains(&format!("<{action}Response xmlns=\"{XMLNS}\">")),
        "{body}"
    );
    assert!(
        body.trim_end().ends_with(&format!("</{action}Response>")),
        "{body}"
    );
    assert!(!xml_one(body, "RequestId").is_empty(), "{body}");
}

async fn create(ts: &TestServer, name: &str) -> String {
    let (status, headers, body) = ts
        .query(&[("Action", "CreateQueue"), ("QueueName", name), V])
        .await;
    assert_ok(status, &body, "CreateQueue");
    assert!(
        header(&headers, "content-type").is_some_and(|c| c.contains("xml")),
        "{headers:?}"
    );
    let url = xml_one(&xml_one(&body, "CreateQueueResult"), "QueueUrl");
    assert_eq!(url, ts.queue_url(name));
    url
}

#[tokio::test]
async fn create_queue_with_attributes_and_tags() {
    let ts = TestServer::start().await;
    let (status, _, body) = ts
        .query(&[
            ("Action", "CreateQueue"),
            ("QueueName", "qattrs"),
            ("Attribute.1.Name", "VisibilityTimeout"),
            ("Attribute.1.Value", "45"),
            ("Attribute.2.Name", "DelaySeconds"),
            ("Attribute.2.Value", "3"),
            ("Tag.1.Key", "team"),
            ("Tag.1.Value", "core"),
            V,
        ])
        .await;
    assert_ok(status, &body, "CreateQueue");
    let url = ts.queue_url("qattrs");
    let a = ts.attrs(&url, &["VisibilityTimeout", "DelaySeconds"]).await;
    assert_eq!(a["VisibilityTimeout"], "45");
    assert_eq!(a["DelaySeconds"], "3");

    let (status, _, body) = ts
        .query(&[("Action", "ListQueueTags"), ("QueueUrl", &url), V])
        .await;
    assert_ok(status, &body, "ListQueueTags");
    let tags = xml_all(&body, "Tag");
    assert_eq!(tags.len(), 1, "{body}");
    assert_eq!(xml_one(&tags[0], "Key"), "team");
    assert_eq!(xml_one(&tags[0], "Value"), "core");
}

#[tokio::test]
async fn send_and_receive_with_message_attributes() {
    let ts = TestServer::start().await;
    let url = create(&ts, "qmsg").await;
    let body_text = "hello <world> & \"friends\"\r\nline2\ttab ✓";
    let bin = [0u8, 1, 2, 250];
    let bin_b64 = base64::engine::general_purpose::STANDARD.encode(bin);
    let (status, _, body) = ts
        .query(&[
            ("Action", "SendMessage"),
            ("QueueUrl", &url),
            ("MessageBody", body_text),
            ("MessageAttribute.1.Name", "color"),
            ("MessageAttribute.1.Value.StringValue", "blue"),
            ("MessageAttribute.1.Value.DataType", "String"),
            ("MessageAttribute.2.Name", "count"),
            ("MessageAttribute.2.Value.StringValue", "7"),
            ("MessageAttribute.2.Value.DataType", "Number.int"),
            ("MessageAttribute.3.Name", "raw"),
            ("MessageAttribute.3.Value.BinaryValue", &bin_b64),
            ("MessageAttribute.3.Value.DataType", "Binary"),
            V,
        ])
        .await;
    assert_ok(status, &body, "SendMessage");
    let result = xml_one(&body, "SendMessageResult");
    let message_id = xml_one(&result, "MessageId");
    assert!(!message_id.is_empty());
    assert_eq!(
        xml_one(&result, "MD5OfMessageBody"),
        md5_hex(body_text.as_bytes())
    );
    let mut attrs = HashMap::new();
    attrs.insert("color".to_string(), string_attr("String", "blue"));
    attrs.insert("count".to_string(), string_attr("Number.int", "7"));
    attrs.insert("raw".to_string(), binary_attr("Binary", &bin));
    let attrs_md5 = md5_of_attributes(&attrs);
    assert_eq!(xml_one(&result, "MD5OfMessageAttributes"), attrs_md5);

    let (status, _, body) = ts
        .query(&[
            ("Action", "ReceiveMessage"),
            ("QueueUrl", &url),
            ("AttributeName.1", "All"),
            ("MessageAttributeName.1", "All"),
            ("MaxNumberOfMessages", "10"),
            V,
        ])
        .await;
    assert_ok(status, &body, "ReceiveMessage");
    let messages = xml_all(&body, "Message");
    assert_eq!(messages.len(), 1, "{body}");
    // Parse the raw (escaped) message element, not the unescaped text.
    let raw = &body[body.find("<Message>").unwrap()..body.rfind("</Message>").unwrap()];
    assert_eq!(xml_one(raw, "MessageId"), message_id);
    assert_eq!(
        xml_one(raw, "Body"),
        body_text,
        "body must round-trip exactly"
    );
    assert_eq!(xml_one(raw, "MD5OfBody"), md5_hex(body_text.as_bytes()));
    assert_eq!(xml_one(raw, "MD5OfMessageAttributes"), attrs_md5);
    assert!(!xml_one(raw, "ReceiptHandle").is_empty());
    let system = xml_pairs(raw, "Attribute");
    assert_eq!(system["ApproximateReceiveCount"], "1");
    assert!(system["SentTimestamp"].parse::<u64>().is_ok(), "{system:?}");
    assert!(system.contains_key("SenderId"), "{system:?}");
    assert!(
        system.contains_key("ApproximateFirstReceiveTimestamp"),
        "{system:?}"
    );
    let user: HashMap<String, String> = xml_all(raw, "MessageAttribute")
        .iter()
        .map(|a| {
            let value = xml_one(a, "Value");
            (xml_one(a, "Name"), value)
        })
        .collect();
    assert_eq!(user.len(), 3, "{raw}");
    assert!(
        user["color"].contains("<StringValue>blue</StringValue>"),
        "{raw}"
    );
    assert!(
        user["color"].contains("<DataType>String</DataType>"),
        "{raw}"
    );
    assert!(
        user["count"].contains("<DataType>Number.int</DataType>"),
        "{raw}"
    );
    assert!(
        user["raw"].contains(&format!("<BinaryValue>{bin_b64}</BinaryValue>")),
        "{raw}"
    );
}

#[tokio::test]
async fn get_queue_attributes_all() {
    let ts = TestServer::start().await;
    let url = create(&ts, "qga").await;
    let (status, _, body) = ts
        .query(&[
            ("Action", "GetQueueAttributes"),
            ("QueueUrl", &url),
            ("AttributeName.1", "All"),
            V,
        ])
        .await;
    assert_ok(status, &body, "GetQueueAttributes");
    let a = xml_pairs(&xml_one(&body, "GetQueueAttributesResult"), "Attribute");
    assert_eq!(a["QueueArn"], "arn:aws:sqs:us-east-1:000000000000:qga");
    assert_eq!(a["VisibilityTimeout"], "30");
    assert_eq!(a["ApproximateNumberOfMessages"], "0");

    let (status, _, body) = ts
        .query(&[
            ("Action", "GetQueueAttributes"),
            ("QueueUrl", &url),
            ("AttributeName.1", "QueueArn"),
            ("AttributeName.2", "DelaySeconds"),
            V,
        ])
        .await;
    assert_ok(status, &body, "GetQueueAttributes");
    let a = xml_pairs(&body, "Attribute");
    assert_eq!(a.len(), 2, "{body}");
    assert_eq!(a["DelaySeconds"], "0");
}

#[tokio::test]
async fn set_queue_attributes_and_empty_result_responses() {
    let ts = TestServer::start().await;
    let url = create(&ts, "qsa").await;
    let (status, _, body) = ts
        .query(&[
            ("Action", "SetQueueAttributes"),
            ("QueueUrl", &url),
            ("Attribute.1.Name", "VisibilityTimeout"),
            ("Attribute.1.Value", "12"),
            V,
        ])
        .await;
    assert_ok(status, &body, "SetQueueAttributes");
    assert!(!body.contains("<SetQueueAttributesResult"), "{body}");
    assert_eq!(
        ts.attrs(&url, &["VisibilityTimeout"]).await["VisibilityTimeout"],
        "12"
    );
}

#[tokio::test]
async fn send_message_batch_with_flattened_entries() {
    let ts = TestServer::start().await;
    let url = create(&ts, "qbatch").await;
    let (status, _, body) = ts
        .query(&[
            ("Action", "SendMessageBatch"),
            ("QueueUrl", &url),
            ("SendMessageBatchRequestEntry.1.Id", "one"),
            ("SendMessageBatchRequestEntry.1.MessageBody", "first"),
            ("SendMessageBatchRequestEntry.2.Id", "two"),
            ("SendMessageBatchRequestEntry.2.MessageBody", "second"),
            ("SendMessageBatchRequestEntry.2.DelaySeconds", "0"),
            (
                "SendMessageBatchRequestEntry.2.MessageAttribute.1.Name",
                "k",
            ),
            (
                "SendMessageBatchRequestEntry.2.MessageAttribute.1.Value.StringValue",
                "v",
            ),
            (
                "SendMessageBatchRequestEntry.2.MessageAttribute.1.Value.DataType",
                "String",
            ),
            ("SendMessageBatchRequestEntry.3.Id", "three"),
            ("SendMessageBatchRequestEntry.3.MessageBody", "bad\u{1}"),
            V,
        ])
        .await;
    assert_ok(status, &body, "SendMessageBatch");
    let ok = xml_all(&body, "SendMessageBatchResultEntry");
    assert_eq!(ok.len(), 2, "{body}");
    let by_id: HashMap<String, String> = ok.iter().map(|e| (xml_one(e, "Id"), e.clone())).collect();
    assert_eq!(
        xml_one(&by_id["one"], "MD5OfMessageBody"),
        md5_hex(b"first")
    );
    assert_eq!(
        xml_one(&by_id["two"], "MD5OfMessageBody"),
        md5_hex(b"second")
    );
    let mut attrs = HashMap::new();
    attrs.insert("k".to_string(), string_attr("String", "v"));
    assert_eq!(
        xml_one(&by_id["two"], "MD5OfMessageAttributes"),
        md5_of_attributes(&attrs)
    );
    let failed = xml_all(&body, "BatchResultErrorEntry");
    assert_eq!(failed.len(), 1, "{body}");
    assert_eq!(xml_one(&failed[0], "Id"), "three");
    assert_eq!(xml_one(&failed[0], "SenderFault"), "true");
    assert_eq!(xml_one(&failed[0], "Code"), "InvalidMessageContents");
    assert_eq!(ts.counts(&url).await.0, 2);
}

#[tokio::test]
async fn queue_url_path_stands_in_for_queue_url_parameter() {
    let ts = TestServer::start().await;
    create(&ts, "qpath").await;
    let path = format!("/{ACCOUNT}/qpath");
    let (status, _, body) = ts
        .query_at(
            &path,
            &[("Action", "SendMessage"), ("MessageBody", "via path"), V],
        )
        .await;
    assert_ok(status, &body, "SendMessage");
    let got = ts.receive(&ts.queue_url("qpath"), 1, None).await;
    assert_eq!(got[0].body(), Some("via path"));

    let (status, _, body) = ts
        .query_at(
            &path,
            &[
                ("Action", "GetQueueAttributes"),
                ("AttributeName.1", "QueueArn"),
                V,
            ],
        )
        .await;
    assert_ok(status, &body, "GetQueueAttributes");
    assert_eq!(
        xml_pairs(&body, "Attribute")["QueueArn"],
        TestServer::arn("qpath")
    );

    // A queue path that does not exist.
    let (status, headers, body) = ts
        .query_at(
            &format!("/{ACCOUNT}/missing"),
            &[("Action", "SendMessage"), ("MessageBody", "x"), V],
        )
        .await;
    assert_xml_error(
        status,
        &headers,
        &body,
        400,
        "AWS.SimpleQueueService.NonExistentQueue",
    );
}

#[tokio::test]
async fn get_with_query_string() {
    let ts = TestServer::start().await;
    create(&ts, "qget").await;
    let (status, _, body) = ts
        .raw(
            "GET",
            &format!("/?{}", form(&[("Action", "ListQueues"), V])),
            None,
            &[],
            Vec::new(),
        )
        .await;
    assert_ok(status, &body, "ListQueues");
    assert_eq!(
        xml_all(&xml_one(&body, "ListQueuesResult"), "QueueUrl"),
        [ts.queue_url("qget")]
    );

    let (status, _, body) = ts
        .raw(
            "GET",
            &format!(
                "/{ACCOUNT}/qget?{}",
                form(&[("Action", "SendMessage"), ("MessageBody", "from GET ✓"), V])
            ),
            None,
            &[],
            Vec::new(),
        )
        .await;
    assert_ok(status, &body, "SendMessage");
    let got = ts.receive(&ts.queue_url("qget"), 1, None).await;
    assert_eq!(got[0].body(), Some("from GET ✓"));
}

#[tokio::test]
async fn delete_and_change_visibility_through_query() {
    let ts = TestServer::start().await;
    let url = create(&ts, "qdel").await;
    ts.send(&url, "a").await;
    ts.send(&url, "b").await;
    let (_, _, body) = ts
        .query(&[
            ("Action", "ReceiveMessage"),
            ("QueueUrl", &url),
            ("MaxNumberOfMessages", "2"),
            V,
        ])
        .await;
    let handles = xml_all(&body, "ReceiptHandle");
    assert_eq!(handles.len(), 2, "{body}");
    let (status, _, body) = ts
        .query(&[
            ("Action", "DeleteMessage"),
            ("QueueUrl", &url),
            ("ReceiptHandle", &handles[0]),
            V,
        ])
        .await;
    assert_ok(status, &body, "DeleteMessage");
    let (status, _, body) = ts
        .query(&[
            ("Action", "ChangeMessageVisibilityBatch"),
            ("QueueUrl", &url),
            ("ChangeMessageVisibilityBatchRequestEntry.1.Id", "x"),
            (
                "ChangeMessageVisibilityBatchRequestEntry.1.ReceiptHandle",
                &handles[1],
            ),
            (
                "ChangeMessageVisibilityBatchRequestEntry.1.VisibilityTimeout",
                "0",
            ),
            V,
        ])
        .await;
    assert_ok(status, &body, "ChangeMessageVisibilityBatch");
    let entries = xml_all(&body, "ChangeMessageVisibilityBatchResultEntry");
    assert_eq!(entries.len(), 1, "{body}");
    assert_eq!(xml_one(&entries[0], "Id"), "x");
    assert_eq!(ts.counts(&url).await, (1, 0, 0));
}

#[tokio::test]
async fn errors_are_error_response_xml_with_query_error_header() {
    let ts = TestServer::start().await;
    let (status, headers, body) = ts
        .query(&[("Action", "GetQueueUrl"), ("QueueName", "nope"), V])
        .await;
    assert!(body.contains("<ErrorResponse"), "{body}");
    let message = assert_xml_error(
        status,
        &headers,
        &body,
        400,
        "AWS.SimpleQueueService.NonExistentQueue",
    );
    assert!(!message.is_empty());

    // A 404 and a 403 error keep their statuses in Query, too.
    let url = create(&ts, "qerr").await;
    let (status, headers, body) = ts
        .query(&[
            ("Action", "DeleteMessage"),
            ("QueueUrl", &url),
            ("ReceiptHandle", "garbage"),
            V,
        ])
        .await;
    assert_xml_error(status, &headers, &body, 404, "ReceiptHandleIsInvalid");
    for expected in [None, Some("AWS.SimpleQueueService.PurgeQueueInProgress")] {
        let (status, headers, body) = ts
            .query(&[("Action", "PurgeQueue"), ("QueueUrl", &url), V])
            .await;
        match expected {
            None => assert_ok(status, &body, "PurgeQueue"),
            Some(code) => {
                assert_xml_error(status, &headers, &body, 403, code);
            }
        }
    }
    // A bad integer.
    let (status, headers, body) = ts
        .query(&[
            ("Action", "ReceiveMessage"),
            ("QueueUrl", &url),
            ("MaxNumberOfMessages", "ten"),
            V,
        ])
        .await;
    assert_xml_error(status, &headers, &body, 400, "InvalidParameterValue");
}
