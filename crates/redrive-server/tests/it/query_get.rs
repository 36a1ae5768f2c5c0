//! Issue 20 point 7: Query over GET as recorded on AWS (LocalStack's AWS-validated
//! TestSqsQueryApi; its query handler answers the same).

use crate::common::*;

const V: (&str, &str) = ("Version", "2012-11-05");

#[tokio::test]
async fn create_queue_and_list_queues_at_a_queue_url_are_invalid_action() {
    let ts = TestServer::start().await;
    let url = ts.create("qg-q").await;
    for action in ["CreateQueue", "ListQueues"] {
        let (status, headers, body) = ts
            .raw(
                "GET",
                &format!(
                    "/{ACCOUNT}/qg-q?{}",
                    form(&[("Action", action), ("QueueName", "qg-other"), V])
                ),
                None,
                &[],
                Vec::new(),
            )
            .await;
        let message = assert_xml_error(status, &headers, &body, 400, "InvalidAction");
        assert_eq!(
            message,
            format!("The action {action} is not valid for this endpoint.")
        );
    }
    // Nothing was created; queue actions at the queue URL still work.
    assert!(
        ts.client
            .get_queue_url()
            .queue_name("qg-other")
            .send()
            .await
            .is_err()
    );
    let (status, _, body) = ts
        .raw(
            "GET",
            &format!(
                "/{ACCOUNT}/qg-q?{}",
                form(&[
                    ("Action", "GetQueueAttributes"),
                    ("AttributeName.1", "QueueArn"),
                    V
                ])
            ),
            None,
            &[],
            Vec::new(),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("QueueArn"), "{body}");
    let _ = url;
}

#[tokio::test]
async fn bare_get_is_unknown_operation() {
    let ts = TestServer::start().await;
    ts.create("qg-bare").await;
    for path in ["/".to_string(), format!("/{ACCOUNT}/qg-bare")] {
        let (status, _, body) = ts.raw("GET", &path, None, &[], Vec::new()).await;
        assert_eq!(status, 404, "{path}: {body}");
        assert_eq!(body, "<UnknownOperationException/>");
    }
}

#[tokio::test]
async fn empty_receive_is_a_self_closing_result() {
    let ts = TestServer::start().await;
    let url = ts.create("qg-empty").await;
    let (status, _, body) = ts
        .query(&[("Action", "ReceiveMessage"), ("QueueUrl", &url), V])
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("<ReceiveMessageResult/>"), "{body}");
    assert!(!body.contains("</ReceiveMessageResult>"), "{body}");
    // With a message, the result element holds it.
    ts.send(&url, "m").await;
    let (_, _, body) = ts
        .query(&[("Action", "ReceiveMessage"), ("QueueUrl", &url), V])
        .await;
    assert!(body.contains("<ReceiveMessageResult><Message>"), "{body}");
}
