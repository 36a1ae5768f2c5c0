//! CloudWatch's read API through the official `aws-sdk-cloudwatch` (Smithy RPC v2 CBOR), and raw
//! JSON 1.0 / Query requests: a burst scripted on a manual clock, read back per minute with
//! exact sums; pagination; AWS's error codes for bad input.

use std::sync::Arc;

use aws_sdk_cloudwatch::Client as CwClient;
use aws_sdk_cloudwatch::config::retry::RetryConfig;
use aws_sdk_cloudwatch::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_cloudwatch::error::ProvideErrorMetadata;
use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{
    Dimension, DimensionFilter, Metric, MetricDataQuery, MetricStat, ScanBy, Statistic, StatusCode,
};
use redrive_engine::{Engine, EngineConfig, ManualClock, MemoryStore};
use redrive_server::{Server, ServerConfig};

use crate::common::*;

const MIN: u64 = 60_000;
/// 2026-04-20T20:20:00Z, the seed's burst window.
const M0: u64 = 1_776_716_400_000;
const QUEUE: &str = "cafe24-worker-queue";

struct Fixture {
    ts: TestServer,
    cw: CwClient,
}

pub fn cloudwatch_client(base: &str) -> CwClient {
    let config = aws_sdk_cloudwatch::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .endpoint_url(base)
        .credentials_provider(Credentials::new("test", "test", None, None, "static"))
        .http_client(aws_smithy_http_client::Builder::new().build_http())
        .retry_config(RetryConfig::disabled())
        .build();
    CwClient::from_conf(config)
}

/// A server on a manual clock where three minutes were scripted:
/// - 20:20: 30 sent, 20 received (visibility 600 s), 5 deleted;
/// - 20:21: 2 sent, 2 received, 1 deleted;
/// - 20:22: nothing.
async fn burst() -> Fixture {
    let clock = Arc::new(ManualClock::new(M0));
    let engine = Arc::new(Engine::open(
        EngineConfig::default(),
        Arc::new(MemoryStore::new()),
        clock.clone(),
    ));
    let ts = TestServer::with_engine(engine.clone()).await;
    let url = ts.create(QUEUE).await;
    ts.create("other").await;

    clock.advance_ms(1_000);
    for i in 0..30 {
        ts.send(&url, &format!("burst-{i}")).await;
    }
    let mut got = Vec::new();
    for _ in 0..2 {
        got.extend(ts.receive(&url, 10, Some(600)).await);
    }
    assert_eq!(got.len(), 20);
    for m in &got[..5] {
        ts.client
            .delete_message()
            .queue_url(&url)
            .receipt_handle(m.receipt_handle().unwrap())
            .send()
            .await
            .unwrap();
    }
    clock.advance_ms(59_000);
    engine.flush_history().await;

    clock.advance_ms(1_000);
    ts.send(&url, "late-0").await;
    ts.send(&url, "late-1").await;
    let late = ts.receive(&url, 2, Some(600)).await;
    assert_eq!(late.len(), 2);
    ts.client
        .delete_message()
        .queue_url(&url)
        .receipt_handle(late[0].receipt_handle().unwrap())
        .send()
        .await
        .unwrap();
    clock.advance_ms(59_000);
    engine.flush_history().await;
    clock.advance_ms(60_000);
    engine.flush_history().await;
    clock.advance_ms(5_000);

    Fixture {
        cw: cloudwatch_client(&ts.base),
        ts,
    }
}

fn metric(name: &str, queue: &str) -> Metric {
    Metric::builder()
        .namespace("AWS/SQS")
        .metric_name(name)
        .dimensions(Dimension::builder().name("QueueName").value(queue).build())
        .build()
}

fn query(id: &str, name: &str, stat: &str, period: i32) -> MetricDataQuery {
    MetricDataQuery::builder()
        .id(id)
        .metric_stat(
            MetricStat::builder()
                .metric(metric(name, QUEUE))
                .period(period)
                .stat(stat)
                .build(),
        )
        .return_data(true)
        .build()
}

fn t(ms: u64) -> DateTime {
    DateTime::from_millis(ms as i64)
}

/// The seed's five queries.
fn seed_queries() -> Vec<MetricDataQuery> {
    vec![
        query("sent", "NumberOfMessagesSent", "Sum", 60),
        query("received", "NumberOfMessagesReceived", "Sum", 60),
        query("deleted", "NumberOfMessagesDeleted", "Sum", 60),
        query(
            "visible",
            "ApproximateNumberOfMessagesVisible",
            "Maximum",
            60,
        ),
        query(
            "notvisible",
            "ApproximateNumberOfMessagesNotVisible",
            "Maximum",
            60,
        ),
    ]
}

#[tokio::test]
async fn get_metric_data_returns_the_burst_per_minute_over_cbor() {
    let f = burst().await;
    let out =
        f.cw.get_metric_data()
            .set_metric_data_queries(Some(seed_queries()))
            .start_time(t(M0))
            .end_time(t(M0 + 10 * MIN))
            .scan_by(ScanBy::TimestampAscending)
            .send()
            .await
            .expect("GetMetricData");
    assert!(out.next_token().is_none());
    let results = out.metric_data_results();
    let ids: Vec<_> = results.iter().map(|r| r.id().unwrap()).collect();
    assert_eq!(
        ids,
        ["sent", "received", "deleted", "visible", "notvisible"]
    );
    let minutes: Vec<i64> = (0..3).map(|i| (M0 + i * MIN) as i64).collect();
    for r in results {
        let ts: Vec<i64> = r
            .timestamps()
            .iter()
            .map(|d| d.to_millis().unwrap())
            .collect();
        assert_eq!(ts, minutes, "{r:?}");
        assert_eq!(r.status_code(), Some(&StatusCode::Complete));
    }
    let values = |i: usize| results[i].values().to_vec();
    assert_eq!(values(0), [30.0, 2.0, 0.0], "sent");
    assert_eq!(values(1), [20.0, 2.0, 0.0], "received");
    assert_eq!(values(2), [5.0, 1.0, 0.0], "deleted");
    assert_eq!(values(3), [10.0, 10.0, 10.0], "visible");
    assert_eq!(values(4), [15.0, 16.0, 16.0], "not visible");
    assert_eq!(results[0].label(), Some("NumberOfMessagesSent"));

    // Descending is the default; labels and ReturnData are honoured.
    let out =
        f.cw.get_metric_data()
            .metric_data_queries(
                MetricDataQuery::builder()
                    .id("s")
                    .label("sent per minute")
                    .metric_stat(
                        MetricStat::builder()
                            .metric(metric("NumberOfMessagesSent", QUEUE))
                            .period(60)
                            .stat("SampleCount")
                            .build(),
                    )
                    .build(),
            )
            .metric_data_queries(
                MetricDataQuery::builder()
                    .id("hidden")
                    .metric_stat(
                        MetricStat::builder()
                            .metric(metric("NumberOfMessagesSent", QUEUE))
                            .period(60)
                            .stat("Sum")
                            .build(),
                    )
                    .return_data(false)
                    .build(),
            )
            .start_time(t(M0))
            .end_time(t(M0 + 3 * MIN))
            .send()
            .await
            .unwrap();
    let results = out.metric_data_results();
    assert_eq!(results.len(), 1);
    assert_eq!(results[0].label(), Some("sent per minute"));
    assert_eq!(
        results[0].timestamps()[0].to_millis().unwrap(),
        (M0 + 2 * MIN) as i64
    );
    assert_eq!(results[0].values(), [1.0, 1.0, 1.0]);

    // 5-minute periods sum the minutes; another queue and unknown metrics are empty.
    let out =
        f.cw.get_metric_data()
            .metric_data_queries(query("sent5", "NumberOfMessagesSent", "Sum", 300))
            .metric_data_queries(
                MetricDataQuery::builder()
                    .id("other")
                    .metric_stat(
                        MetricStat::builder()
                            .metric(metric("NumberOfMessagesSent", "no-such-queue"))
                            .period(60)
                            .stat("Sum")
                            .build(),
                    )
                    .build(),
            )
            .metric_data_queries(query("nope", "CPUUtilization", "Average", 60))
            .start_time(t(M0))
            .end_time(t(M0 + 10 * MIN))
            .send()
            .await
            .unwrap();
    let r = out.metric_data_results();
    assert_eq!(r[0].values(), [32.0]);
    assert!(r[1].values().is_empty() && r[2].values().is_empty());
}

#[tokio::test]
async fn max_datapoints_pages_with_next_token() {
    let f = burst().await;
    let mut pages = Vec::new();
    let mut token = None;
    loop {
        let out =
            f.cw.get_metric_data()
                .set_metric_data_queries(Some(seed_queries()[..2].to_vec()))
                .start_time(t(M0))
                .end_time(t(M0 + 10 * MIN))
                .scan_by(ScanBy::TimestampAscending)
                .max_datapoints(2)
                .set_next_token(token.clone())
                .send()
                .await
                .unwrap();
        pages.push(
            out.metric_data_results()
                .iter()
                .map(|r| {
                    (
                        r.id().unwrap().to_string(),
                        r.values().to_vec(),
                        r.status_code().cloned(),
                    )
                })
                .collect::<Vec<_>>(),
        );
        token = out.next_token().map(str::to_string);
        if token.is_none() {
            break;
        }
        assert!(pages.len() < 10, "pagination does not end");
    }
    let partial = Some(StatusCode::PartialData);
    let complete = Some(StatusCode::Complete);
    assert_eq!(
        pages,
        vec![
            vec![("sent".to_string(), vec![30.0, 2.0], partial.clone())],
            vec![
                ("sent".to_string(), vec![0.0], complete.clone()),
                ("received".to_string(), vec![20.0], partial)
            ],
            vec![("received".to_string(), vec![2.0, 0.0], complete)],
        ]
    );
    let err =
        f.cw.get_metric_data()
            .set_metric_data_queries(Some(seed_queries()))
            .start_time(t(M0))
            .end_time(t(M0 + MIN))
            .next_token("garbage")
            .send()
            .await
            .unwrap_err();
    assert_eq!(err.code(), Some("InvalidNextToken"));
}

#[tokio::test]
async fn get_metric_statistics_and_list_metrics() {
    let f = burst().await;
    let out =
        f.cw.get_metric_statistics()
            .namespace("AWS/SQS")
            .metric_name("NumberOfMessagesReceived")
            .dimensions(Dimension::builder().name("QueueName").value(QUEUE).build())
            .start_time(t(M0))
            .end_time(t(M0 + 4 * MIN))
            .period(120)
            .statistics(Statistic::Sum)
            .statistics(Statistic::Maximum)
            .statistics(Statistic::SampleCount)
            .send()
            .await
            .unwrap();
    assert_eq!(out.label(), Some("NumberOfMessagesReceived"));
    let points: Vec<_> = out
        .datapoints()
        .iter()
        .map(|d| {
            (
                d.timestamp().unwrap().to_millis().unwrap(),
                d.sum(),
                d.maximum(),
                d.sample_count(),
                d.average(),
            )
        })
        .collect();
    assert_eq!(
        points,
        [
            (M0 as i64, Some(22.0), Some(20.0), Some(2.0), None),
            ((M0 + 2 * MIN) as i64, Some(0.0), Some(0.0), Some(1.0), None),
        ]
    );

    // A unit other than the metric's gives no datapoints, as on AWS.
    let out =
        f.cw.get_metric_statistics()
            .namespace("AWS/SQS")
            .metric_name("NumberOfMessagesReceived")
            .dimensions(Dimension::builder().name("QueueName").value(QUEUE).build())
            .start_time(t(M0))
            .end_time(t(M0 + 4 * MIN))
            .period(60)
            .statistics(Statistic::Sum)
            .unit(aws_sdk_cloudwatch::types::StandardUnit::Bytes)
            .send()
            .await
            .unwrap();
    assert!(out.datapoints().is_empty());

    let out =
        f.cw.list_metrics()
            .namespace("AWS/SQS")
            .dimensions(
                DimensionFilter::builder()
                    .name("QueueName")
                    .value(QUEUE)
                    .build(),
            )
            .send()
            .await
            .unwrap();
    let names: Vec<_> = out
        .metrics()
        .iter()
        .map(|m| m.metric_name().unwrap())
        .collect();
    assert!(names.contains(&"NumberOfMessagesSent"), "{names:?}");
    assert!(names.contains(&"ApproximateNumberOfMessagesNotVisible"));
    assert!(
        out.metrics()
            .iter()
            .all(|m| m.dimensions()[0].value() == Some(QUEUE))
    );
    let out =
        f.cw.list_metrics()
            .metric_name("NumberOfMessagesSent")
            .send()
            .await
            .unwrap();
    let queues: Vec<_> = out
        .metrics()
        .iter()
        .map(|m| m.dimensions()[0].value().unwrap())
        .collect();
    assert_eq!(queues, [QUEUE, "other"]);
    let out =
        f.cw.list_metrics()
            .namespace("AWS/EC2")
            .send()
            .await
            .unwrap();
    assert!(out.metrics().is_empty());
}

#[tokio::test]
async fn bad_input_gets_cloudwatch_error_codes_over_cbor() {
    let f = burst().await;
    async fn gmd_err(
        f: &Fixture,
        queries: Vec<MetricDataQuery>,
        start: u64,
        end: u64,
    ) -> (String, String) {
        let err =
            f.cw.get_metric_data()
                .set_metric_data_queries(Some(queries))
                .start_time(t(start))
                .end_time(t(end))
                .send()
                .await
                .expect_err("an error");
        let raw = err.raw_response().map(|r| r.status().as_u16());
        assert_eq!(raw, Some(400), "{err:?}");
        (
            err.code().unwrap_or_default().to_string(),
            err.message().unwrap_or_default().to_string(),
        )
    }
    let end = M0 + 10 * MIN;
    let (code, msg) = gmd_err(
        &f,
        vec![query("a", "NumberOfMessagesSent", "Sum", 30)],
        M0,
        end,
    )
    .await;
    assert_eq!(code, "InvalidParameterValue");
    assert!(msg.contains("Period must be a multiple of 60"), "{msg}");
    let (code, msg) = gmd_err(
        &f,
        vec![query("a", "NumberOfMessagesSent", "Median", 60)],
        M0,
        end,
    )
    .await;
    assert_eq!(code, "InvalidParameterValue");
    assert!(msg.contains("Median"), "{msg}");
    let (code, _) = gmd_err(
        &f,
        vec![query("Bad-Id", "NumberOfMessagesSent", "Sum", 60)],
        M0,
        end,
    )
    .await;
    assert_eq!(code, "InvalidParameterValue");
    let twice = vec![
        query("a", "NumberOfMessagesSent", "Sum", 60),
        query("a", "NumberOfMessagesSent", "Sum", 60),
    ];
    let (code, msg) = gmd_err(&f, twice, M0, end).await;
    assert_eq!(code, "InvalidParameterValue");
    assert!(msg.contains("not unique"), "{msg}");
    let many = (0..501)
        .map(|i| query(&format!("q{i}"), "NumberOfMessagesSent", "Sum", 60))
        .collect();
    let (code, msg) = gmd_err(&f, many, M0, end).await;
    assert_eq!(code, "InvalidParameterValue");
    assert!(msg.contains("greater than 500"), "{msg}");
    let (code, msg) = gmd_err(&f, seed_queries(), M0, M0).await;
    assert_eq!(code, "ValidationError");
    assert_eq!(
        msg,
        "The parameter StartTime must not equal parameter EndTime."
    );
    let (code, _) = gmd_err(&f, seed_queries(), end, M0).await;
    assert_eq!(code, "ValidationError");
    let math = MetricDataQuery::builder()
        .id("e")
        .expression("SUM(METRICS())")
        .build();
    let (code, msg) = gmd_err(&f, vec![math], M0, end).await;
    assert_eq!(code, "InvalidParameterValue");
    assert!(msg.contains("Expression"), "{msg}");

    let err =
        f.cw.get_metric_statistics()
            .namespace("AWS/SQS")
            .metric_name("NumberOfMessagesSent")
            .start_time(t(M0))
            .end_time(t(end))
            .period(60)
            .send()
            .await
            .unwrap_err();
    assert_eq!(err.code(), Some("MissingParameter"), "{err:?}");
}

#[tokio::test]
async fn json_and_query_protocols_answer_the_same_series() {
    let f = burst().await;
    let body = serde_json::json!({
        "MetricDataQueries": [{"Id": "sent", "MetricStat": {
            "Metric": {"Namespace": "AWS/SQS", "MetricName": "NumberOfMessagesSent",
                       "Dimensions": [{"Name": "QueueName", "Value": QUEUE}]},
            "Period": 60, "Stat": "Sum"}}],
        "StartTime": M0 / 1000, "EndTime": (M0 + 10 * MIN) / 1000, "ScanBy": "TimestampAscending",
    });
    let (status, headers, text) =
        f.ts.raw_json(
            "GraniteServiceVersion20100801.GetMetricData",
            &body.to_string(),
        )
        .await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(header(&headers, "content-type").as_deref(), Some(JSON_CT));
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let r = &v["MetricDataResults"][0];
    assert_eq!(r["Values"], serde_json::json!([30.0, 2.0, 0.0]));
    assert_eq!(r["Timestamps"][0], M0 / 1000);

    let start = "2026-04-20T20:20:00Z";
    let (status, _, xml) =
        f.ts.query(&[
            ("Action", "GetMetricData"),
            ("Version", "2010-08-01"),
            ("MetricDataQueries.member.1.Id", "sent"),
            (
                "MetricDataQueries.member.1.MetricStat.Metric.Namespace",
                "AWS/SQS",
            ),
            (
                "MetricDataQueries.member.1.MetricStat.Metric.MetricName",
                "NumberOfMessagesSent",
            ),
            (
                "MetricDataQueries.member.1.MetricStat.Metric.Dimensions.member.1.Name",
                "QueueName",
            ),
            (
                "MetricDataQueries.member.1.MetricStat.Metric.Dimensions.member.1.Value",
                QUEUE,
            ),
            ("MetricDataQueries.member.1.MetricStat.Period", "60"),
            ("MetricDataQueries.member.1.MetricStat.Stat", "Sum"),
            ("StartTime", start),
            ("EndTime", "2026-04-20T20:30:00Z"),
            ("ScanBy", "TimestampAscending"),
        ])
        .await;
    assert_eq!(status, 200, "{xml}");
    assert!(
        xml.contains(
            "<GetMetricDataResponse xmlns=\"http://monitoring.amazonaws.com/doc/2010-08-01/\">"
        ),
        "{xml}"
    );
    assert!(
        xml.contains(&format!("<Timestamps><member>{start}</member>")),
        "{xml}"
    );
    assert!(
        xml.contains(
            "<Values><member>30.0</member><member>2.0</member><member>0.0</member></Values>"
        ),
        "{xml}"
    );

    // Errors in each shape, with the Query code in x-amzn-query-error.
    let (status, headers, text) =
        f.ts.raw_json("GraniteServiceVersion20100801.GetMetricStatistics", "{}")
            .await;
    assert_eq!(status, 400);
    assert_eq!(
        header(&headers, "x-amzn-query-error").as_deref(),
        Some("MissingParameter;Sender")
    );
    assert!(text.contains("MissingRequiredParameterException"), "{text}");
    let (status, _, xml) =
        f.ts.query(&[
            ("Action", "ListMetrics"),
            ("Version", "2010-08-01"),
            ("NextToken", "x"),
        ])
        .await;
    assert_eq!(status, 400);
    assert!(xml.contains("<Code>InvalidNextToken</Code>"), "{xml}");
    let (status, _, xml) =
        f.ts.query(&[("Action", "PutMetricData"), ("Version", "2010-08-01")])
            .await;
    assert_eq!(status, 400);
    assert!(xml.contains("<Code>InvalidAction</Code>"), "{xml}");
    // SQS's Query protocol is untouched on the same listener.
    let (status, _, xml) =
        f.ts.query(&[("Action", "ListQueues"), ("Version", "2012-11-05")])
            .await;
    assert_eq!(status, 200, "{xml}");
    assert!(xml.contains(QUEUE), "{xml}");
}

#[tokio::test]
async fn sigv4_is_verified_for_service_monitoring() {
    let keys = redrive_server::Auth::parse_keys("test:test").unwrap();
    let server = Server::bind(ServerConfig {
        port: 0,
        auth: redrive_server::Auth::SigV4 { keys },
        ..Default::default()
    })
    .await
    .unwrap();
    let ts = TestServer::from_server(server);
    // Signed with the right secret (the SDK signs for `monitoring`).
    let out = cloudwatch_client(&ts.base).list_metrics().send().await;
    assert!(out.is_ok(), "{out:?}");
    let wrong = aws_sdk_cloudwatch::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .endpoint_url(&ts.base)
        .credentials_provider(Credentials::new("test", "wrong", None, None, "static"))
        .http_client(aws_smithy_http_client::Builder::new().build_http())
        .retry_config(RetryConfig::disabled())
        .build();
    let err = CwClient::from_conf(wrong)
        .list_metrics()
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("SignatureDoesNotMatch"), "{err:?}");
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(403));
}

#[tokio::test]
async fn malformed_bodies_get_errors_in_their_protocol() {
    let ts = TestServer::start().await;
    let path = "/service/GraniteServiceVersion20100801/operation/GetMetricData";
    let cbor = [("smithy-protocol", "rpc-v2-cbor")];
    // A CBOR map header with nothing after it.
    let (status, headers, body) = ts
        .raw(
            "POST",
            path,
            Some("application/cbor"),
            &cbor,
            vec![0xbf, 0x61],
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        header(&headers, "x-amzn-query-error").as_deref(),
        Some("SerializationException;Sender")
    );
    assert_eq!(
        header(&headers, "smithy-protocol").as_deref(),
        Some("rpc-v2-cbor")
    );
    assert_eq!(
        header(&headers, "content-type").as_deref(),
        Some("application/cbor")
    );
    assert!(
        body.contains("__type") && body.contains("SerializationException"),
        "{body}"
    );
    // An operation CloudWatch has but we do not serve: 404 in RPC v2, as Smithy routes it.
    let (status, _, body) = ts
        .raw(
            "POST",
            "/service/GraniteServiceVersion20100801/operation/PutMetricData",
            Some("application/cbor"),
            &cbor,
            vec![0xa0],
        )
        .await;
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("UnknownOperationException"), "{body}");
    let (status, headers, body) = ts
        .raw_json(
            "GraniteServiceVersion20100801.ListMetrics",
            "{\"Namespace\": 7",
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        header(&headers, "x-amzn-query-error").as_deref(),
        Some("SerializationException;Sender")
    );
    // A Query parameter nested a million levels deep is refused, not recursed into.
    let deep = vec!["a"; 1_000_000].join(".");
    let form = format!("Action=ListMetrics&Version=2010-08-01&{deep}=1");
    let (status, _, body) = ts
        .raw("POST", "/", Some(FORM_CT), &[], form.into_bytes())
        .await;
    assert_eq!(status, 400);
    assert!(body.contains("<Code>MalformedQueryString</Code>"), "{body}");
}
