//! `--auth sigv4`: real signatures from the official SDK and from `aws-sigv4` (Query forms,
//! presigned URLs, the extension API) are accepted; wrong secrets, unknown keys, unsigned and
//! tampered requests get AWS's errors.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use aws_sdk_sqs::Client;
use aws_sdk_sqs::config::retry::RetryConfig;
use aws_sdk_sqs::config::{BehaviorVersion, Credentials, Region};
use aws_sigv4::http_request::{
    SignableBody, SignableRequest, SignatureLocation, SigningSettings, sign,
};
use aws_sigv4::sign::v4::SigningParams;
use redrive_server::{Auth, ServerConfig};

use crate::common::*;

const AKID: &str = "AKIDREDRIVE";
const SECRET: &str = "s3cr3t/K7MDENG+bPxRfiCYEXAMPLEKEY";

async fn auth_server() -> TestServer {
    TestServer::start_with(ServerConfig {
        port: 0,
        auth: Auth::SigV4 {
            keys: BTreeMap::from([(AKID.to_string(), SECRET.to_string())]),
        },
        ..Default::default()
    })
    .await
}

fn client(ts: &TestServer, akid: &str, secret: &str) -> Client {
    let config = ts
        .sdk_config(aws_sdk_sqs::Config::builder())
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .endpoint_url(&ts.base)
        .credentials_provider(Credentials::new(akid, secret, None, None, "static"))
        .http_client(aws_smithy_http_client::Builder::new().build_http())
        .retry_config(RetryConfig::disabled())
        .build();
    Client::from_conf(config)
}

/// Signs a request with aws-sigv4 (headers, or a presigned query string); returns the URL to
/// use and the headers to add.
fn signed(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    secret: &str,
    presigned: bool,
) -> (String, Vec<(String, String)>) {
    let identity = Credentials::new(AKID, secret, None, None, "test").into();
    let mut settings = SigningSettings::default();
    if presigned {
        settings.signature_location = SignatureLocation::QueryParams;
        settings.expires_in = Some(Duration::from_secs(300));
    }
    let params = SigningParams::builder()
        .identity(&identity)
        .region(REGION)
        .name("sqs")
        .time(SystemTime::now())
        .settings(settings)
        .build()
        .unwrap()
        .into();
    let req = SignableRequest::new(
        method,
        url,
        headers.iter().copied(),
        SignableBody::Bytes(body),
    )
    .unwrap();
    let (instructions, _) = sign(req, &params).unwrap().into_parts();
    let mut out_headers: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    for (k, v) in instructions.headers() {
        out_headers.push((k.to_string(), v.to_string()));
    }
    let mut url = url.to_string();
    for (i, (k, v)) in instructions.params().iter().enumerate() {
        let sep = if i == 0 && !url.contains('?') {
            '?'
        } else {
            '&'
        };
        let v: String = form_urlencoded::byte_serialize(v.as_bytes()).collect();
        url.push_str(&format!("{sep}{k}={}", v.replace('+', "%20")));
    }
    (url, out_headers)
}

async fn send(
    ts: &TestServer,
    method: &str,
    url: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> (u16, String) {
    let mut req = match method {
        "GET" => ts.http.get(url),
        _ => ts.http.post(url),
    };
    for (k, v) in headers {
        req = req.header(k, v);
    }
    let resp = req.body(body.to_vec()).send().await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

#[tokio::test]
async fn sdk_with_the_right_key_works_and_wrong_keys_are_refused() {
    let ts = auth_server().await;
    let good = client(&ts, AKID, SECRET);
    let url = good
        .create_queue()
        .queue_name("signed")
        .send()
        .await
        .unwrap_or_else(|e| panic!("{}", describe(&e)))
        .queue_url
        .unwrap();
    good.send_message()
        .queue_url(&url)
        .message_body("hello with spaces & symbols ✓")
        .send()
        .await
        .unwrap_or_else(|e| panic!("{}", describe(&e)));

    let e = client(&ts, AKID, "wrong-secret")
        .list_queues()
        .send()
        .await
        .unwrap_err();
    let (c, status, msg) = err_parts(&e);
    assert_eq!(
        (c.as_str(), status),
        ("SignatureDoesNotMatch", 403),
        "{msg}"
    );
    assert!(
        msg.starts_with("The request signature we calculated does not match"),
        "{msg}"
    );

    let e = client(&ts, "AKIDUNKNOWN", SECRET)
        .list_queues()
        .send()
        .await
        .unwrap_err();
    let (c, status, msg) = err_parts(&e);
    assert_eq!((c.as_str(), status), ("InvalidClientTokenId", 403), "{msg}");
    assert_eq!(
        msg,
        "The security token included in the request is invalid."
    );

    // Unsigned JSON.
    let (status, _, body) = ts.raw_json("AmazonSQS.ListQueues", "{}").await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("MissingAuthenticationToken"), "{body}");
    // Nothing happened through the refused requests: one message in the one queue.
    let got = good
        .receive_message()
        .queue_url(&url)
        .send()
        .await
        .unwrap()
        .messages
        .unwrap_or_default();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].body(), Some("hello with spaces & symbols ✓"));
}

#[tokio::test]
async fn query_forms_and_presigned_urls_are_verified() {
    let ts = auth_server().await;
    let host = ts.base.trim_start_matches("http://").to_string();
    let form = "Action=CreateQueue&QueueName=q1&Version=2012-11-05";
    let headers = [("content-type", FORM_CT), ("host", host.as_str())];
    let url = format!("{}/", ts.base);
    let (u, h) = signed("POST", &url, &headers, form.as_bytes(), SECRET, false);
    let (status, body) = send(&ts, "POST", &u, &h, form.as_bytes()).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("<QueueUrl>"), "{body}");

    // The same signature over a different body: refused, in the Query protocol's shape.
    let tampered = "Action=CreateQueue&QueueName=q2&Version=2012-11-05";
    let (status, body) = send(&ts, "POST", &u, &h, tampered.as_bytes()).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body.contains("<Code>SignatureDoesNotMatch</Code>"),
        "{body}"
    );

    // A presigned GET on the queue URL.
    let get = format!(
        "{}/{ACCOUNT}/q1?Action=SendMessage&MessageBody=hi%20there&Version=2012-11-05",
        ts.base
    );
    let (u, h) = signed("GET", &get, &[("host", host.as_str())], b"", SECRET, true);
    assert!(u.contains("X-Amz-Signature="), "{u}");
    let (status, body) = send(&ts, "GET", &u, &h, b"").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("<MessageId>"), "{body}");
    // The presigned URL with another message body: refused.
    let forged = u.replace("hi%20there", "forged");
    let (status, body) = send(&ts, "GET", &forged, &h, b"").await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(signed_counts(&ts, "q1").await, 1);
}

/// `counts` through a signed client (the harness client is unsigned-by-our-keys).
async fn signed_counts(ts: &TestServer, name: &str) -> usize {
    let c = client(ts, AKID, SECRET);
    let a = c
        .get_queue_attributes()
        .queue_url(ts.queue_url(name))
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
        .send()
        .await
        .unwrap();
    a.attributes().unwrap()[&aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages]
        .parse()
        .unwrap()
}

#[tokio::test]
async fn extension_api_needs_a_signature_too() {
    let ts = auth_server().await;
    let good = client(&ts, AKID, SECRET);
    good.create_queue().queue_name("x").send().await.unwrap();
    let host = ts.base.trim_start_matches("http://").to_string();
    let url = format!("{}/_redrive/v1/queues/x", ts.base);
    let (status, body) = send(&ts, "GET", &url, &[], b"").await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("MissingAuthenticationToken"), "{body}");
    let (u, h) = signed("GET", &url, &[("host", host.as_str())], b"", SECRET, false);
    let (status, body) = send(&ts, "GET", &u, &h, b"").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"name\":\"x\""), "{body}");
    let (u, h) = signed("GET", &url, &[("host", host.as_str())], b"", "bad", false);
    let (status, body) = send(&ts, "GET", &u, &h, b"").await;
    assert_eq!(status, 403, "{body}");
    // A replay start with a signed JSON body.
    let replay = format!("{}/_redrive/v1/replays", ts.base);
    let json = br#"{"source":"x"}"#;
    let (u, h) = signed(
        "POST",
        &replay,
        &[
            ("host", host.as_str()),
            ("content-type", "application/json"),
        ],
        json,
        SECRET,
        false,
    );
    let (status, body) = send(&ts, "POST", &u, &h, json).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"dryRun\":true"), "{body}");
    assert_eq!(signed_counts(&ts, "x").await, 0);
}

#[tokio::test]
async fn history_api_needs_a_signature_too() {
    let ts = auth_server().await;
    let good = client(&ts, AKID, SECRET);
    good.create_queue().queue_name("x").send().await.unwrap();
    let host = ts.base.trim_start_matches("http://").to_string();
    // The minute history.
    let metrics = format!("{}/_redrive/v1/queues/x/metrics", ts.base);
    let (status, body) = send(&ts, "GET", &metrics, &[], b"").await;
    assert_eq!(status, 403, "{body}");
    let (u, h) = signed(
        "GET",
        &metrics,
        &[("host", host.as_str())],
        b"",
        SECRET,
        false,
    );
    let (status, body) = send(&ts, "GET", &u, &h, b"").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"period\":60"), "{body}");
}
