//! The Lambda adapter as a function binary: the handler of `basic`'s outcome classes run by
//! `lambda_runtime`, answering SQS events with a partial batch response.
//!
//! Without AWS, through `cargo lambda` (`pip install cargo-lambda`):
//!
//! ```text
//! cargo lambda watch --only-lambda-apis -P 9009 &           # the runtime API emulator
//! AWS_LAMBDA_RUNTIME_API=http://127.0.0.1:9009/.rt AWS_LAMBDA_FUNCTION_NAME=_ AWS_LAMBDA_FUNCTION_MEMORY_SIZE=128 \
//!   AWS_LAMBDA_FUNCTION_VERSION=1 AWS_LAMBDA_LOG_STREAM_NAME=_ AWS_LAMBDA_LOG_GROUP_NAME=_ \
//!   cargo run -p redrive-worker --example lambda --features lambda &
//! cargo lambda invoke -P 9009 --data-file crates/redrive-worker/tests/worker/lambda/mixed_event.json _
//! ```
//!
//! With `QUEUE_URL` (and AWS credentials / `AWS_ENDPOINT_URL`) set, it uses an SQS client:
//! failures get their visibility set to the backoff and permanent ones are dead-lettered.

use std::time::Duration;

use redrive_worker::{LambdaHandler, Message, Outcome, Worker, WorkerBuilder, handler_fn};

#[tokio::main]
async fn main() -> Result<(), redrive_worker::lambda_runtime::Error> {
    let builder: WorkerBuilder = match std::env::var("QUEUE_URL") {
        Ok(queue_url) => {
            let mut config = aws_sdk_sqs::Config::builder()
                .behavior_version(aws_sdk_sqs::config::BehaviorVersion::latest())
                .region(aws_sdk_sqs::config::Region::new(
                    std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".into()),
                ))
                .http_client(aws_smithy_http_client::Builder::new().build_http());
            if let Ok(endpoint) = std::env::var("AWS_ENDPOINT_URL") {
                config = config.endpoint_url(endpoint).credentials_provider(
                    aws_credential_types::Credentials::new("test", "test", None, None, "static"),
                );
            }
            Worker::builder(aws_sdk_sqs::Client::from_conf(config.build()), queue_url)
        }
        Err(_) => LambdaHandler::builder(),
    };
    builder
        .build_lambda(handler_fn(|message: Message| async move {
            let kind = message
                .json::<serde_json::Value>()
                .ok()
                .and_then(|v| v["kind"].as_str().map(str::to_string));
            match kind.as_deref() {
                None | Some("done") => Outcome::Done,
                Some("transient") => Outcome::transient("http_503", "downstream unavailable"),
                Some("rate_limited") => Outcome::rate_limited(Some(Duration::from_secs(2))),
                Some("permanent") => Outcome::permanent("http_422", "negative amount"),
                Some(other) => Outcome::invalid(format!("unknown kind {other}")),
            }
        }))?
        .run()
        .await
}
