//! Replays the `points_updated` incident against a running SQS endpoint and prints how many
//! messages end in the DLQ with a naive worker and with per-mall admission control.
//!
//! ```text
//! cargo run --release -p redrive -- serve --in-memory          # terminal 1
//! cargo run --release -p redrive-worker --example incident     # terminal 2
//! cargo run --release -p redrive-worker --example incident -- --endpoint-url http://127.0.0.1:9324 --scale 5
//! ```
//!
//! `--scale N` multiplies the burst (default 5: 200 events for one mall, 100 for the other).

mod scenario;

use std::time::Duration;

use aws_sdk_sqs::config::{BehaviorVersion, Credentials, Region};
use scenario::{Mode, Scenario, replay};

#[tokio::main]
async fn main() {
    let mut endpoint = String::from("http://127.0.0.1:9324");
    let mut scale = 5usize;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--endpoint-url" => endpoint = args.next().expect("--endpoint-url needs a value"),
            "--scale" => {
                scale = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--scale needs a number")
            }
            "-h" | "--help" => {
                println!("usage: incident [--endpoint-url URL] [--scale N]");
                return;
            }
            other => panic!("unknown argument {other}; see --help"),
        }
    }
    let config = aws_sdk_sqs::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(&endpoint)
        .credentials_provider(Credentials::new("test", "test", None, None, "static"))
        .http_client(aws_smithy_http_client::Builder::new().build_http())
        .build();
    let client = aws_sdk_sqs::Client::from_conf(config);

    let mut scenario = Scenario::small();
    for (_, events) in &mut scenario.malls {
        *events *= scale;
    }
    scenario.time_limit = Duration::from_secs(300);
    println!(
        "burst: {:?}; downstream quota {} calls/s per mall; {} workers × {} slots; maxReceiveCount {}\n",
        scenario.malls,
        scenario.quota_per_second,
        scenario.workers,
        scenario.concurrency,
        scenario.max_receive_count
    );
    for mode in [Mode::Naive, Mode::AdmissionControl] {
        let report = replay(&client, &scenario, mode).await;
        println!("{report}");
    }
    // The limiter set 50 % above the real quota: 429s still happen; the tenant is paused and
    // its messages deferred, none dead-lettered.
    scenario.limiter_per_second = scenario.quota_per_second * 3 / 2;
    let report = replay(&client, &scenario, Mode::AdmissionControl).await;
    println!("{report}");
}
