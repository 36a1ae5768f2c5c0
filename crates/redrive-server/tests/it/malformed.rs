//! Malformed input over raw HTTP: every failure is a protocol-shaped 4xx, never a 500 and never
//! a framework's plain-text error.

use crate::common::*;

#[tokio::test]
async fn bad_json_body_is_serialization_exception() {
    let ts = TestServer::start().await;
    for body in [
        "{",
        "not json",
        "[1,2]",
        "\"str\"",
        "{\"QueueNamePrefix\":}",
    ] {
        let (status, headers, resp) = ts.raw_json("AmazonSQS.ListQueues", body).await;
        assert_json_error(
            status,
            &headers,
            &resp,
            400,
            "SerializationException",
            "SerializationException",
        );
    }
}

#[tokio::test]
async fn unknown_or_missing_target_is_unknown_operation() {
    let ts = TestServer::start().await;
    for target in [
        "AmazonSQS.Frobnicate",
        "AmazonSNS.Publish",
        "SendMessage",
        "",
    ] {
        let (status, headers, body) = ts.raw_json(target, "{}").await;
        assert_json_error(
            status,
            &headers,
            &body,
            400,
            "UnknownOperationException",
            "UnknownOperationException",
        );
    }
    // JSON content type with no target at all.
    let (status, headers, body) = ts
        .raw("POST", "/", Some(JSON_CT), &[], b"{}".to_vec())
        .await;
    assert_json_error(
        status,
        &headers,
        &body,
        400,
        "UnknownOperationException",
        "UnknownOperationException",
    );
}

#[tokio::test]
async fn json_member_of_wrong_type_is_rejected() {
    let ts = TestServer::start().await;
    let url = ts.create("typed").await;
    for body in [
        format!(r#"{{"QueueUrl":"{url}","MessageBody":7}}"#),
        format!(r#"{{"QueueUrl":"{url}","MessageBody":"x","DelaySeconds":"5"}}"#),
        format!(r#"{{"QueueUrl":"{url}","MessageBody":"x","MessageAttributes":[]}}"#),
        format!(
            r#"{{"QueueUrl":"{url}","MessageBody":"x","MessageAttributes":{{"a":{{"DataType":"Binary","BinaryValue":"***"}}}}}}"#
        ),
        r#"{"QueueUrl":["a"],"MessageBody":"x"}"#.to_string(),
    ] {
        let (status, headers, resp) = ts.raw_json("AmazonSQS.SendMessage", &body).await;
        assert_json_error(
            status,
            &headers,
            &resp,
            400,
            "SerializationException",
            "SerializationException",
        );
    }
    assert_eq!(ts.counts(&url).await, (0, 0, 0));
}

#[tokio::test]
async fn unknown_json_members_are_ignored_and_nulls_are_absent() {
    let ts = TestServer::start().await;
    let url = ts.create("lenient").await;
    let body = format!(
        r#"{{"QueueUrl":"{url}","MessageBody":"ok","SomethingNew":{{"x":[1,2]}},"DelaySeconds":null}}"#
    );
    let (status, headers, resp) = ts.raw_json("AmazonSQS.SendMessage", &body).await;
    assert_eq!(status, 200, "{resp}");
    assert_eq!(header(&headers, "content-type").as_deref(), Some(JSON_CT));
    let v: serde_json::Value = serde_json::from_str(&resp).unwrap();
    assert_eq!(v["MD5OfMessageBody"], md5_hex(b"ok"));
    assert!(v["MessageId"].is_string());
    assert!(header(&headers, "x-amzn-requestid").is_some());
}

#[tokio::test]
async fn json_missing_queue_url_is_missing_parameter() {
    let ts = TestServer::start().await;
    let (status, headers, body) = ts
        .raw_json("AmazonSQS.SendMessage", r#"{"MessageBody":"x"}"#)
        .await;
    assert_json_error(
        status,
        &headers,
        &body,
        400,
        "MissingRequiredParameterException",
        "MissingParameter",
    );
}

#[tokio::test]
async fn json_unknown_queue_is_queue_does_not_exist() {
    let ts = TestServer::start().await;
    let body = format!(
        r#"{{"QueueUrl":"{}","MessageBody":"x"}}"#,
        ts.queue_url("ghost")
    );
    let (status, headers, resp) = ts.raw_json("AmazonSQS.SendMessage", &body).await;
    let message = assert_json_error(
        status,
        &headers,
        &resp,
        400,
        "QueueDoesNotExist",
        "AWS.SimpleQueueService.NonExistentQueue",
    );
    assert!(!message.is_empty());
}

#[tokio::test]
async fn bad_percent_encoding_is_malformed_query_string() {
    let ts = TestServer::start().await;
    for body in [
        "Action=ListQueues&QueueNamePrefix=%zz",
        "Action=ListQueues&QueueNamePrefix=%4",
        "Action=ListQueues&QueueNamePrefix=abc%",
    ] {
        let (status, headers, resp) = ts
            .raw("POST", "/", Some(FORM_CT), &[], body.as_bytes().to_vec())
            .await;
        assert_xml_error(status, &headers, &resp, 400, "MalformedQueryString");
    }
    // In a GET query string, too.
    let (status, headers, resp) = ts
        .raw(
            "GET",
            "/?Action=ListQueues&QueueNamePrefix=%G1",
            None,
            &[],
            Vec::new(),
        )
        .await;
    assert_xml_error(status, &headers, &resp, 400, "MalformedQueryString");
}

#[tokio::test]
async fn invalid_utf8_in_form_value_is_rejected() {
    let ts = TestServer::start().await;
    let mut raw_bytes = b"Action=ListQueues&QueueNamePrefix=".to_vec();
    raw_bytes.extend_from_slice(&[0xff, 0xfe]);
    for body in [
        b"Action=ListQueues&QueueNamePrefix=%FF%FE".to_vec(),
        b"Action=ListQueues&QueueNamePrefix=%C3".to_vec(),
        raw_bytes,
    ] {
        let (status, headers, resp) = ts.raw("POST", "/", Some(FORM_CT), &[], body).await;
        assert_xml_error(status, &headers, &resp, 400, "MalformedQueryString");
    }
}

#[tokio::test]
async fn unknown_action_is_invalid_action() {
    let ts = TestServer::start().await;
    let (status, headers, body) = ts
        .query(&[("Action", "Frobnicate"), ("Version", "2012-11-05")])
        .await;
    assert_xml_error(status, &headers, &body, 400, "InvalidAction");
}

#[tokio::test]
async fn missing_action_is_rejected() {
    let ts = TestServer::start().await;
    for body in ["", "Version=2012-11-05"] {
        let (status, headers, resp) = ts
            .raw("POST", "/", Some(FORM_CT), &[], body.as_bytes().to_vec())
            .await;
        assert_eq!(status, 400, "{resp}");
        assert!(resp.contains("<ErrorResponse"), "{resp}");
        let code = xml_one(&xml_one(&resp, "Error"), "Code");
        assert!(
            code == "MissingParameter" || code == "MissingAction" || code == "InvalidAction",
            "{code}"
        );
        assert!(header(&headers, "x-amzn-query-error").is_some());
    }
}

#[tokio::test]
async fn query_missing_queue_url_is_missing_parameter() {
    let ts = TestServer::start().await;
    let (status, headers, body) = ts
        .query(&[("Action", "SendMessage"), ("MessageBody", "x")])
        .await;
    assert_xml_error(status, &headers, &body, 400, "MissingParameter");
    let (status, headers, body) = ts
        .query(&[("Action", "ReceiveMessage"), ("MaxNumberOfMessages", "1")])
        .await;
    assert_xml_error(status, &headers, &body, 400, "MissingParameter");
}

#[tokio::test]

async fn query_create_queue_without_name_is_missing_parameter() {
    let ts = TestServer::start().await;
    let (status, headers, body) = ts.query(&[("Action", "CreateQueue")]).await;
    assert_xml_error(status, &headers, &body, 400, "MissingParameter");
    let (status, headers, body) = ts.raw_json("AmazonSQS.CreateQueue", "{}").await;
    assert_json_error(
        status,
        &headers,
        &body,
        400,
        "MissingRequiredParameterException",
        "MissingParameter",
    );
}

#[tokio::test]
async fn query_unknown_queue_is_non_existent_queue() {
    let ts = TestServer::start().await;
    let url = ts.queue_url("ghost");
    let (status, headers, body) = ts
        .query(&[
            ("Action", "SendMessage"),
            ("QueueUrl", &url),
            ("MessageBody", "x"),
        ])
        .await;
    assert_xml_error(
        status,
        &headers,
        &body,
        400,
        "AWS.SimpleQueueService.NonExistentQueue",
    );
    // A URL of another account.
    let other = format!("{}/123456789012/ghost", ts.base);
    let (status, headers, body) = ts
        .query(&[("Action", "PurgeQueue"), ("QueueUrl", &other)])
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
async fn body_over_limit_is_413_in_the_callers_protocol() {
    let ts = TestServer::start().await;
    let limit = 4 * 1024 * 1024;
    // Query: a form just over the limit.
    let mut form_body = b"Action=ListQueues&Pad=".to_vec();
    form_body.resize(limit + 1, b'a');
    let (status, headers, body) = ts.raw("POST", "/", Some(FORM_CT), &[], form_body).await;
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("<ErrorResponse"), "{body}");
    assert_eq!(xml_one(&xml_one(&body, "Error"), "Type"), "Sender");
    let code = xml_one(&xml_one(&body, "Error"), "Code");
    assert!(!code.is_empty());
    assert_eq!(
        header(&headers, "x-amzn-query-error"),
        Some(format!("{code};Sender"))
    );

    // JSON: same, with a JSON error shape.
    let mut json_body = b"{\"QueueNamePrefix\":\"".to_vec();
    json_body.resize(limit + 1, b'a');
    let (status, headers, body) = ts
        .raw(
            "POST",
            "/",
            Some(JSON_CT),
            &[("x-amz-target", "AmazonSQS.ListQueues")],
            json_body,
        )
        .await;
    assert_eq!(status, 413, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("JSON error body");
    assert!(
        v["__type"]
            .as_str()
            .is_some_and(|t| t.starts_with("com.amazonaws.sqs#")),
        "{body}"
    );
    assert!(v["message"].is_string(), "{body}");
    assert!(header(&headers, "x-amzn-query-error").is_some());

    // The server is still healthy afterwards.
    assert!(ts.client.list_queues().send().await.is_ok());
}

#[tokio::test]
async fn json_requires_post() {
    let ts = TestServer::start().await;
    let (status, headers, body) = ts
        .raw(
            "GET",
            "/",
            Some(JSON_CT),
            &[("x-amz-target", "AmazonSQS.ListQueues")],
            Vec::new(),
        )
        .await;
    assert!((400..500).contains(&status), "{status} {body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("JSON error body");
    assert!(v["__type"].is_string(), "{body}");
    assert!(header(&headers, "x-amzn-query-error").is_some());
}

#[tokio::test]
async fn odd_paths_and_methods_get_aws_shaped_errors() {
    let ts = TestServer::start().await;
    let cases: Vec<(&str, &str, Option<&str>, Vec<u8>)> = vec![
        ("POST", "/a/b/c/d", Some(FORM_CT), b"Action=Nope".to_vec()),
        (
            "PUT",
            "/",
            Some(FORM_CT),
            b"Action=ListQueues&QueueNamePrefix=%".to_vec(),
        ),
        ("DELETE", "/000000000000/none", None, Vec::new()),
        ("POST", "/", Some("text/plain"), vec![0xff, 0x00, 0x01]),
        (
            "POST",
            "/",
            Some("application/x-amz-json-1.0"),
            vec![0xff, 0x00],
        ),
    ];
    for (method, path, ct, body) in cases {
        let headers: Vec<(&str, &str)> = if ct == Some(JSON_CT) {
            vec![("x-amz-target", "AmazonSQS.SendMessage")]
        } else {
            vec![]
        };
        let (status, resp_headers, resp) = ts.raw(method, path, ct, &headers, body).await;
        assert!(
            (400..500).contains(&status),
            "{method} {path}: {status} {resp}"
        );
        assert!(
            header(&resp_headers, "x-amzn-query-error").is_some(),
            "{method} {path}: {resp}"
        );
        if ct == Some(JSON_CT) {
            let v: serde_json::Value = serde_json::from_str(&resp).expect("JSON error");
            assert!(v["__type"].is_string(), "{resp}");
        } else {
            assert!(resp.contains("<ErrorResponse"), "{method} {path}: {resp}");
            assert_eq!(xml_one(&xml_one(&resp, "Error"), "Type"), "Sender");
        }
    }
}
