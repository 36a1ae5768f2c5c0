//! The Lambda adapter (`LambdaHandler`, cargo feature `lambda`), invoked as Lambda would: with an
//! SQS event in AWS's documented JSON shape, returning the partial batch response
//! (`ReportBatchItemFailures`).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_sqs::types::{MessageAttributeValue, MessageSystemAttributeName};
use redrive_worker::{
    Backoff, Failure, Idempotency, InMemoryIdempotencyStore, Jitter, KeySource, LambdaHandler,
    Message, Outcome, Reason, SqsEvent, Worker, handler_fn,
};
use serde_json::{Value, json};

use crate::common::Env;

/// AWS's example event (Lambda developer guide, "Using Lambda with Amazon SQS"): two records.
const DOCUMENTED_EVENT: &str = include_str!("lambda/sqs_event.json");
const FIRST: &str = "059f36b4-87a3-44ab-83d2-661975830a7d";
const SECOND: &str = "2e1424d4-f6de-4be1-9c58-7c3ef0a1f1c9";

fn event(json: &str) -> SqsEvent {
    serde_json::from_str(json).expect("SQS event JSON")
}

async fn respond(handler: &LambdaHandler, event: SqsEvent) -> Value {
    let response = handler.handle(event).await.expect("handle");
    serde_json::to_value(response).expect("response JSON")
}

/// The outcome named by the body's `kind` (the documented event's plain bodies: by message id).
fn classify(message: &Message) -> Outcome {
    let kind = message
        .json::<Value>()
        .ok()
        .and_then(|v| v["kind"].as_str().map(str::to_string))
        .unwrap_or_else(|| {
            if message.id() == SECOND {
                "transient".into()
            } else {
                "done".into()
            }
        });
    match kind.as_str() {
        "done" => Outcome::Done,
        "transient" => Outcome::transient("http_503", "downstream unavailable"),
        "permanent" => Outcome::permanent("http_422", "negative amount"),
        "rate_limited" => Outcome::rate_limited(Some(Duration::from_secs(1))),
        other => Outcome::invalid(format!("unknown kind {other}")),
    }
}

#[tokio::test]
async fn documented_event_reports_exactly_the_failed_message_id() {
    let handler = LambdaHandler::builder()
        .build_lambda(handler_fn(|m: Message| async move { classify(&m) }))
        .expect("lambda handler");
    let response = respond(&handler, event(DOCUMENTED_EVENT)).await;
    assert_eq!(
        serde_json::to_string(&response).unwrap(),
        format!(r#"{{"batchItemFailures":[{{"itemIdentifier":"{SECOND}"}}]}}"#)
    );
    let stats = handler.stats().snapshot();
    assert_eq!(
        (stats.received, stats.completed, stats.retried),
        (2, 1, 1),
        "{stats:?}"
    );

    // Nothing failed: an empty list (Lambda deletes the whole batch).
    let all_done = LambdaHandler::builder()
        .build_lambda(handler_fn(|_m: Message| async { Outcome::Done }))
        .expect("lambda handler");
    let response = respond(&all_done, event(DOCUMENTED_EVENT)).await;
    assert_eq!(response, json!({"batchItemFailures": []}));
}

#[tokio::test]
async fn without_a_client_permanent_failures_are_reported_too() {
    // No SQS access: no DLQ to send to, so the record stays in the queue and its redrive
    // policy moves it; the message attribute arrived as Lambda delivers it.
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    let handler = LambdaHandler::builder()
        .build_lambda(handler_fn(move |m: Message| {
            log.lock().unwrap().push((
                m.id().to_string(),
                m.attribute("myAttribute").map(str::to_string),
                m.receive_count(),
            ));
            async { Outcome::permanent("http_422", "no") }
        }))
        .expect("lambda handler");
    let response = respond(&handler, event(DOCUMENTED_EVENT)).await;
    assert_eq!(
        response,
        json!({"batchItemFailures": [{"itemIdentifier": FIRST}, {"itemIdentifier": SECOND}]})
    );
    let mut seen = seen.lock().unwrap().clone();
    seen.sort();
    assert_eq!(
        seen,
        vec![
            (FIRST.to_string(), Some("myValue".to_string()), 1),
            (SECOND.to_string(), None, 1)
        ]
    );
}

#[tokio::test]
async fn fifo_stops_at_the_first_failure_and_reports_the_rest() {
    let mut records: Value = serde_json::from_str(DOCUMENTED_EVENT).unwrap();
    let template = records["Records"][0].clone();
    let mut list = Vec::new();
    for (i, kind) in ["done", "transient", "done"].into_iter().enumerate() {
        let mut r = template.clone();
        r["messageId"] = json!(format!("fifo-{i}"));
        r["body"] = json!(json!({"kind": kind}).to_string());
        r["attributes"]["MessageGroupId"] = json!("g1");
        r["eventSourceARN"] = json!("arn:aws:sqs:us-east-2:123456789012:orders.fifo");
        list.push(r);
    }
    records["Records"] = Value::Array(list);
    let handled = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&handled);
    let handler = LambdaHandler::builder()
        .build_lambda(handler_fn(move |m: Message| {
            log.lock().unwrap().push(m.id().to_string());
            async move { classify(&m) }
        }))
        .expect("lambda handler");
    let response = respond(&handler, event(&records.to_string())).await;
    assert_eq!(
        response,
        json!({"batchItemFailures": [{"itemIdentifier": "fifo-1"}, {"itemIdentifier": "fifo-2"}]})
    );
    assert_eq!(*handled.lock().unwrap(), vec!["fifo-0", "fifo-1"]);
}

#[tokio::test]
async fn a_completed_key_is_not_run_again() {
    let calls = Arc::new(Mutex::new(0));
    let count = Arc::clone(&calls);
    let handler = LambdaHandler::builder()
        .idempotency(
            Idempotency::new(Arc::new(InMemoryIdempotencyStore::new())).key(KeySource::MessageId),
        )
        .build_lambda(handler_fn(move |_m: Message| {
            *count.lock().unwrap() += 1;
            async { Outcome::Done }
        }))
        .expect("lambda handler");
    for _ in 0..2 {
        let response = respond(&handler, event(DOCUMENTED_EVENT)).await;
        assert_eq!(response, json!({"batchItemFailures": []}));
    }
    assert_eq!(*calls.lock().unwrap(), 2);
    assert_eq!(handler.stats().snapshot().duplicates, 2);
}

/// Receives what the queue holds and writes it as a Lambda SQS event (the documented shape),
/// as the event source mapping would.
async fn receive_as_event(env: &Env, queue: &str, arn: &str, n: usize) -> (SqsEvent, Vec<String>) {
    let mut records = Vec::new();
    let mut ids = Vec::new();
    while records.len() < n {
        let got = env
            .client
            .receive_message()
            .queue_url(queue)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .visibility_timeout(60)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .send()
            .await
            .expect("receive")
            .messages
            .unwrap_or_default();
        assert!(!got.is_empty(), "only {} of {n} messages", records.len());
        for m in got {
            let attributes: serde_json::Map<String, Value> = m
                .attributes
                .clone()
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k.as_str().to_string(), json!(v)))
                .collect();
            let message_attributes: serde_json::Map<String, Value> = m
                .message_attributes
                .clone()
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v): (String, MessageAttributeValue)| {
                    (
                        k,
                        json!({"stringValue": v.string_value(), "stringListValues": [],
                               "binaryListValues": [], "dataType": v.data_type()}),
                    )
                })
                .collect();
            ids.push(m.message_id.clone().unwrap_or_default());
            records.push(json!({
                "messageId": m.message_id,
                "receiptHandle": m.receipt_handle,
                "body": m.body,
                "attributes": attributes,
                "messageAttributes": message_attributes,
                "md5OfBody": m.md5_of_body,
                "eventSource": "aws:sqs",
                "eventSourceARN": arn,
                "awsRegion": "us-east-1",
            }));
        }
    }
    (event(&json!({"Records": records}).to_string()), ids)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_an_sqs_client_failures_back_off_and_permanent_ones_are_dead_lettered() {
    let env = Env::redrive().await;
    let (queue, dlq) = env.queue_with_dlq("lambda", 5, 30).await;
    let arn = env.arn(&queue).await;
    let kinds = ["done", "transient", "permanent", "invalid", "rate_limited"];
    for kind in kinds {
        env.client
            .send_message()
            .queue_url(&queue)
            .message_body(json!({"kind": kind, "mall_id": "m1"}).to_string())
            .message_attributes(
                "trace",
                MessageAttributeValue::builder()
                    .data_type("String")
                    .string_value(format!("t-{kind}"))
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .expect("send");
    }
    let (sqs_event, ids) = receive_as_event(&env, &queue, &arn, kinds.len()).await;
    let kind_of = |body: &str| -> String {
        serde_json::from_str::<Value>(body).unwrap()["kind"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let id_of = |kind: &str| -> String {
        sqs_event
            .records
            .iter()
            .find(|r| kind_of(r.body.as_deref().unwrap()) == kind)
            .and_then(|r| r.message_id.clone())
            .unwrap()
    };
    let handler = Worker::builder(env.client.clone(), &queue)
        .worker_id("lambda-test")
        .tenant_key(KeySource::json_field("mall_id"))
        .backoff(
            Backoff::exponential(Duration::from_secs(2), Duration::from_secs(60))
                .with_jitter(Jitter::None),
        )
        .validator(|m: &Message| match m.json::<Value>() {
            Ok(v) if v["kind"] == "invalid" => Err(Failure::new("bad_kind", "invalid kind")),
            _ => Ok(()),
        })
        .build_lambda(handler_fn(|m: Message| async move { classify(&m) }))
        .expect("lambda handler");
    let started = Instant::now();
    let response = respond(&handler, sqs_event.clone()).await;
    // Right after: nothing visible (the reported ones wait for their backoff).
    assert_eq!(env.counts(&queue).await, (0, 5));
    // Exactly the transient and the rate-limited records, in event order.
    let expected: Vec<Value> = sqs_event
        .records
        .iter()
        .filter(|r| {
            matches!(
                kind_of(r.body.as_deref().unwrap()).as_str(),
                "transient" | "rate_limited"
            )
        })
        .map(|r| json!({"itemIdentifier": r.message_id}))
        .collect();
    assert_eq!(response, json!({"batchItemFailures": expected}));
    assert_eq!(ids.len(), 5);
    let stats = handler.stats().snapshot();
    assert_eq!(
        (
            stats.completed,
            stats.retried,
            stats.rate_limited,
            stats.dead_lettered
        ),
        (1, 1, 1, 2),
        "{stats:?}"
    );

    // The dead letters: body and attribute kept, the envelope added.
    let dead = env.drain(&dlq, 10).await;
    assert_eq!(dead.len(), 2, "{dead:?}");
    for letter in &dead {
        let envelope = letter.envelope.as_ref().expect("envelope");
        let kind = kind_of(&letter.body);
        assert_eq!(
            letter.attributes["trace"].string_value(),
            Some(format!("t-{kind}").as_str())
        );
        assert_eq!(envelope.source_queue, queue);
        assert_eq!(envelope.worker_id, "lambda-test");
        assert_eq!(envelope.original_message_id, id_of(&kind));
        assert_eq!(envelope.tenant.as_deref(), Some("m1"));
        match kind.as_str() {
            "permanent" => {
                assert_eq!(envelope.reason, Reason::PermanentError);
                assert_eq!(envelope.error.as_ref().unwrap().class, "http_422");
                assert_eq!(envelope.attempts, 1);
            }
            "invalid" => {
                assert_eq!(envelope.reason, Reason::Validation);
                assert_eq!(envelope.error.as_ref().unwrap().class, "bad_kind");
            }
            other => panic!("{other} dead-lettered"),
        }
    }

    // The reported ones had their visibility set to the backoff (2 s, no jitter) and the
    // pause (1 s + up to 50 %, whole seconds: 2 s), instead of the 60 s they were received
    // with: they come back within a few seconds, not at once.
    let mut back = Vec::new();
    while back.len() < 2 && started.elapsed() < Duration::from_secs(10) {
        back.extend(
            env.drain(&queue, 10)
                .await
                .into_iter()
                .map(|r| kind_of(&r.body)),
        );
    }
    back.sort();
    assert_eq!(
        back,
        vec!["rate_limited", "transient"],
        "{:?}",
        handler.stats().snapshot()
    );
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_an_sqs_client_a_spent_budget_is_dead_lettered_not_reported() {
    let env = Env::redrive().await;
    let (queue, dlq) = env.queue_with_dlq("lambda-budget", 3, 30).await;
    // The documented event, as if its second record were on its 3rd receive (maxReceiveCount 3).
    let mut records: Value = serde_json::from_str(DOCUMENTED_EVENT).unwrap();
    records["Records"][1]["attributes"]["ApproximateReceiveCount"] = json!("3");
    let handler = Worker::builder(env.client.clone(), &queue)
        .build_lambda(handler_fn(|m: Message| async move { classify(&m) }))
        .expect("lambda handler");
    let response = respond(&handler, event(&records.to_string())).await;
    assert_eq!(response, json!({"batchItemFailures": []}));
    let dead = env.drain(&dlq, 10).await;
    assert_eq!(dead.len(), 1);
    let envelope = dead[0].envelope.as_ref().expect("envelope");
    assert_eq!(envelope.reason, Reason::MaxReceives);
    assert!(envelope.retryable);
    assert_eq!(envelope.original_message_id, SECOND);
    assert_eq!(envelope.attempts, 3);
    // First failure: the record's ApproximateFirstReceiveTimestamp.
    assert_eq!(
        envelope.first_failed_at.as_deref(),
        Some("2018-12-17T21:37:30.649Z")
    );
}

#[tokio::test]
async fn a_queue_without_a_dead_letter_queue_fails_the_invocation() {
    let env = Env::redrive().await;
    let queue = env.create("lambda-no-dlq", &[]).await;
    let handler = Worker::builder(env.client.clone(), &queue)
        .build_lambda(handler_fn(|_m: Message| async { Outcome::Done }))
        .expect("lambda handler");
    let err = handler
        .handle(event(DOCUMENTED_EVENT))
        .await
        .expect_err("no DLQ");
    assert!(err.to_string().contains("no RedrivePolicy"), "{err}");
}
