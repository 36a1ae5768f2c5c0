//! Issue 20 point 9: `--queue-url-style path|host-region|path-region` (LocalStack's endpoint
//! strategies). The Region in the URL is the caller's (SigV4 scope); URLs naming a Region are
//! resolved there, so multi-Region code works; the default stays `http://{Host}/{account}/{name}`.

use aws_sdk_sqs::Client;
use aws_sdk_sqs::config::retry::RetryConfig;
use aws_sdk_sqs::config::{BehaviorVersion, Credentials, Region};
use redrive_server::{QueueUrlStyle, ServerConfig};

use crate::common::*;

async fn server(style: QueueUrlStyle) -> TestServer {
    TestServer::start_with(ServerConfig {
        port: 0,
        queue_url_style: style,
        ..Default::default()
    })
    .await
}

fn client_in(ts: &TestServer, region: &str) -> Client {
    let config = ts
        .sdk_config(aws_sdk_sqs::Config::builder())
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region.to_string()))
        .endpoint_url(&ts.base)
        .credentials_provider(Credentials::new("test", "test", None, None, "static"))
        .http_client(aws_smithy_http_client::Builder::new().build_http())
        .retry_config(RetryConfig::disabled())
        .build();
    Client::from_conf(config)
}

async fn create(c: &Client, name: &str) -> String {
    c.create_queue()
        .queue_name(name)
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap()
}

#[tokio::test]
async fn default_style_is_unchanged() {
    let ts = TestServer::start().await;
    let url = create(&ts.client, "qu-default").await;
    assert_eq!(url, format!("{}/{ACCOUNT}/qu-default", ts.base));
}

#[tokio::test]
async fn host_region_style_and_multi_region_use() {
    let ts = server(QueueUrlStyle::HostRegion).await;
    let host = ts.base.trim_start_matches("http://").to_string();
    let east = client_in(&ts, "us-east-1");
    let west = client_in(&ts, "eu-west-1");
    let url_east = create(&east, "qu-host").await;
    assert_eq!(
        url_east,
        format!("http://sqs.us-east-1.{host}/{ACCOUNT}/qu-host")
    );
    let url_west = create(&west, "qu-host").await;
    assert_eq!(
        url_west,
        format!("http://sqs.eu-west-1.{host}/{ACCOUNT}/qu-host")
    );
    // GetQueueUrl and ListQueues hand out the same form, per Region.
    let got = east
        .get_queue_url()
        .queue_name("qu-host")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    assert_eq!(got, url_east);
    let listed = west.list_queues().send().await.unwrap().queue_urls.unwrap();
    assert_eq!(listed, vec![url_west.clone()]);
    // A client of one Region can use the other Region's queue by its URL.
    east.send_message()
        .queue_url(&url_west)
        .message_body("to the west")
        .send()
        .await
        .unwrap();
    let msgs = west
        .receive_message()
        .queue_url(&url_west)
        .send()
        .await
        .unwrap()
        .messages
        .unwrap();
    assert_eq!(msgs[0].body(), Some("to the west"));
    let east_msgs = east
        .receive_message()
        .queue_url(&url_east)
        .send()
        .await
        .unwrap()
        .messages
        .unwrap_or_default();
    assert!(east_msgs.is_empty());
}

#[tokio::test]
async fn host_region_style_does_not_repeat_the_prefix() {
    let ts = server(QueueUrlStyle::HostRegion).await;
    let host = ts.base.trim_start_matches("http://").to_string();
    ts.client
        .create_queue()
        .queue_name("qu-pfx")
        .send()
        .await
        .unwrap();
    // A request that already came to `sqs.<region>.<host>`.
    let (status, _, body) = ts
        .raw(
            "POST",
            "/",
            Some(FORM_CT),
            &[("host", &format!("sqs.us-east-1.{host}"))],
            form(&[("Action", "GetQueueUrl"), ("QueueName", "qu-pfx")]).into_bytes(),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        xml_one(&body, "QueueUrl"),
        format!("http://sqs.us-east-1.{host}/{ACCOUNT}/qu-pfx")
    );
}

#[tokio::test]
async fn path_region_style_and_query_at_the_queue_url() {
    let ts = server(QueueUrlStyle::PathRegion).await;
    let url = create(&ts.client, "qu-path").await;
    assert_eq!(url, format!("{}/queue/{REGION}/{ACCOUNT}/qu-path", ts.base));
    ts.client
        .send_message()
        .queue_url(&url)
        .message_body("via sdk")
        .send()
        .await
        .unwrap();
    // Query requests sent to the queue URL itself.
    let (status, _, body) = ts
        .raw(
            "POST",
            &format!("/queue/{REGION}/{ACCOUNT}/qu-path"),
            Some(FORM_CT),
            &[],
            form(&[("Action", "SendMessage"), ("MessageBody", "via query")]).into_bytes(),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(ts.counts(&url).await, (2, 0, 0));
    // A path-region URL of another Region resolves there (no queue there: does not exist).
    let other = format!("{}/queue/eu-west-1/{ACCOUNT}/qu-path", ts.base);
    let (code, _, _) = err_parts(
        &ts.client
            .get_queue_attributes()
            .queue_url(&other)
            .send()
            .await
            .unwrap_err(),
    );
    assert_eq!(code, "AWS.SimpleQueueService.NonExistentQueue");
}
