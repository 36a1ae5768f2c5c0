//! A complete worker against a local SQS endpoint: queue + DLQ setup, a validator, an outcome
//! per error class, idempotency, and a graceful shutdown on Ctrl-C (or after `--seconds`).
//!
//! ```text
//! cargo run --release -p redrive -- serve --in-memory                 # terminal 1
//! cargo run -p redrive-worker --example basic -- --seconds 5           # terminal 2
//! ```
//!
//! Add `--fifo` to run the same against a FIFO queue (groups are handled in order).

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_sqs::Client;
use aws_sdk_sqs::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_sqs::types::QueueAttributeName;
use redrive_worker::{
    Failure, Idempotency, InMemoryIdempotencyStore, KeySource, Message, Outcome, Worker, handler_fn,
};

#[derive(serde::Deserialize)]
struct Order {
    order_id: String,
    amount: i64,
}

/// Pretend downstream call: negative amounts are a permanent error, amount 13 times out.
async fn charge(order: &Order) -> Result<(), (u16, String)> {
    tokio::time::sleep(Duration::from_millis(50)).await;
    match order.amount {
        a if a < 0 => Err((
            422,
            format!("order {} has a negative amount", order.order_id),
        )),
        13 => Err((504, "gateway timeout".into())),
        _ => Ok(()),
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut endpoint = String::from("http://127.0.0.1:9324");
    let mut seconds: Option<u64> = None;
    let mut fifo = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--endpoint-url" => endpoint = args.next().ok_or("--endpoint-url needs a value")?,
            "--seconds" => seconds = Some(args.next().ok_or("--seconds needs a value")?.parse()?),
            "--fifo" => fifo = true,
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    let client = Client::from_conf(
        aws_sdk_sqs::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(&endpoint)
            .credentials_provider(Credentials::new("test", "test", None, None, "static"))
            .http_client(aws_smithy_http_client::Builder::new().build_http())
            .build(),
    );

    // Queue setup (CreateQueue is idempotent): `orders` with a DLQ after 5 receives.
    let suffix = if fifo { ".fifo" } else { "" };
    let mut dlq = client
        .create_queue()
        .queue_name(format!("orders-dlq{suffix}"));
    if fifo {
        dlq = dlq.attributes(QueueAttributeName::FifoQueue, "true");
    }
    let dlq_url = dlq.send().await?.queue_url.unwrap_or_default();
    let dlq_arn = client
        .get_queue_attributes()
        .queue_url(&dlq_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await?
        .attributes
        .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
        .unwrap_or_default();
    let policy = format!(r#"{{"deadLetterTargetArn":"{dlq_arn}","maxReceiveCount":5}}"#);
    let mut queue = client
        .create_queue()
        .queue_name(format!("orders{suffix}"))
        .attributes(QueueAttributeName::RedrivePolicy, policy);
    if fifo {
        queue = queue
            .attributes(QueueAttributeName::FifoQueue, "true")
            .attributes(QueueAttributeName::ContentBasedDeduplication, "true");
    }
    let url = queue.send().await?.queue_url.unwrap_or_default();

    // A few orders: good ones, a duplicate, a bad payload, a permanent and a transient error.
    for body in [
        r#"{"order_id":"o-1","amount":10}"#,
        r#"{"order_id":"o-2","amount":20}"#,
        r#"{"order_id":"o-2","amount":20,"resent":true}"#,
        r#"{"order_id":"o-3","amount":-5}"#,
        r#"{"order_id":"o-4","amount":13}"#,
        r#"not json"#,
    ] {
        let mut send = client.send_message().queue_url(&url).message_body(body);
        if fifo {
            send = send.message_group_id("customer-42");
        }
        send.send().await?;
    }

    let worker = Worker::builder(client.clone(), &url)
        .concurrency(4)
        .wait_time(Duration::from_secs(2))
        .max_attempts(3)
        .validator(|m: &Message| {
            m.json::<Order>()
                .map(|_| ())
                .map_err(|e| Failure::new("bad_order", e.to_string()))
        })
        .tenant_key(KeySource::GroupId)
        .idempotency(
            Idempotency::new(Arc::new(InMemoryIdempotencyStore::new()))
                .key(KeySource::json_field("order_id")),
        )
        .build(handler_fn(|message: Message| async move {
            let Ok(order) = message.json::<Order>() else {
                return Outcome::invalid("unreadable order");
            };
            match charge(&order).await {
                Ok(()) => Outcome::Done,
                Err((429, _)) => Outcome::rate_limited(None),
                Err((status, text)) if status >= 500 => {
                    Outcome::transient(format!("http_{status}"), text)
                }
                Err((status, text)) => Outcome::permanent(format!("http_{status}"), text),
            }
        }))?;

    let shutdown = async move {
        match seconds {
            Some(s) => tokio::time::sleep(Duration::from_secs(s)).await,
            None => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    };
    let stats = worker.run(shutdown).await?;
    println!("{stats:#?}");

    // What the dead letters say.
    let dead = client
        .receive_message()
        .queue_url(&dlq_url)
        .max_number_of_messages(10)
        .visibility_timeout(1)
        .message_attribute_names("All")
        .send()
        .await?
        .messages
        .unwrap_or_default();
    for m in dead {
        let envelope = m
            .message_attributes
            .as_ref()
            .and_then(redrive_worker::Envelope::from_attributes);
        println!("dead letter {:?}\n  envelope {:?}", m.body(), envelope);
    }
    Ok(())
}
