//! `GET /metrics`: Prometheus metrics in the OpenMetrics text format (prometheus-client).
//!
//! Two kinds: request metrics of the HTTP layer (per action: requests, errors by code,
//! latency), and per-queue metrics read from the engine at scrape time (the gauges and
//! counters AWS publishes to CloudWatch for SQS, under Prometheus names; the mapping is in
//! `docs/metrics.md`). Labels are bounded: `queue` (a queue name) and `action` (one of the 23
//! actions, or `unknown`), plus `code` (an error code of the one table). Never message fields.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::header;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use redrive_engine::Engine;
use redrive_engine::backend::SharedQueue;
use redrive_engine::metrics::{QueueCounters, QueueGauges};

use crate::AppState;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActionLabels {
    action: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    action: String,
    code: String,
}

/// Latency buckets, seconds: sub-millisecond in-memory answers up to 20 s long polls.
const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 20.0,
];

/// The server's metrics registry.
pub struct Metrics {
    registry: Registry,
    queues: Arc<QueueCollector>,
    /// One scrape at a time: a shared store's sample is set, then encoded.
    scrape: tokio::sync::Mutex<()>,
    requests: Family<ActionLabels, Counter>,
    errors: Family<ErrorLabels, Counter>,
    latency: Family<ActionLabels, Histogram>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    pub fn new(engine: Arc<Engine>) -> Metrics {
        let mut registry = Registry::default();
        let requests = Family::<ActionLabels, Counter>::default();
        let errors = Family::<ErrorLabels, Counter>::default();
        let latency = Family::<ActionLabels, Histogram>::new_with_constructor(
            (|| Histogram::new(LATENCY_BUCKETS)) as fn() -> Histogram,
        );
        registry.register(
            "redrive_requests",
            "SQS API requests answered, by action",
            requests.clone(),
        );
        registry.register(
            "redrive_request_errors",
            "SQS API requests answered with an error, by action and error code",
            errors.clone(),
        );
        registry.register_with_unit(
            "redrive_request_duration",
            "Time from the request's arrival to its answer (long polls included), by action",
            Unit::Seconds,
            latency.clone(),
        );
        let queues = Arc::new(QueueCollector {
            engine,
            shared_sample: std::sync::Mutex::new(None),
        });
        registry.register_collector(Box::new(SharedCollector(queues.clone())));
        Metrics {
            registry,
            queues,
            scrape: tokio::sync::Mutex::new(()),
            requests,
            errors,
            latency,
        }
    }

    /// Records one answered SQS request. `action` is the action's name (`-` or empty when the
    /// request could not be decoded); `error` the code of its error, if any.
    pub fn observe(&self, action: &str, error: Option<&str>, elapsed: Duration) {
        let action = match action {
            "" | "-" => "unknown",
            a => a,
        }
        .to_string();
        if let Some(code) = error {
            self.errors
                .get_or_create(&ErrorLabels {
                    action: action.clone(),
                    code: code.to_string(),
                })
                .inc();
        }
        let labels = ActionLabels { action };
        self.requests.get_or_create(&labels).inc();
        self.latency
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64());
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "encoding metrics failed");
        }
        out
    }
}

/// `GET /metrics`. On a shared store the queue gauges are read from the database first
/// (the collector itself cannot wait).
pub async fn handle(State(state): State<Arc<AppState>>) -> Response {
    let body = {
        let _one = state.metrics.scrape.lock().await;
        let sample = state.engine.shared_queue_metrics().await;
        let shared = sample.is_some();
        *state
            .metrics
            .queues
            .shared_sample
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = sample;
        let body = state.metrics.render();
        if shared {
            *state
                .metrics
                .queues
                .shared_sample
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
        }
        body
    };
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

/// A shared store's queues with their gauges (from the database) and this process's counters.
type SharedSample = Vec<(SharedQueue, QueueGauges, Arc<QueueCounters>)>;

/// Reads every queue's gauges and counters at scrape time (embedded store), or encodes the
/// sample `handle` read from a shared store (the gauges are the database's, the same on every
/// server; the counters are this process's, to be added up across servers).
#[derive(Debug)]
struct QueueCollector {
    engine: Arc<Engine>,
    shared_sample: std::sync::Mutex<Option<SharedSample>>,
}

/// The registry's handle on the [`QueueCollector`] that [`Metrics`] also keeps.
#[derive(Debug)]
struct SharedCollector(Arc<QueueCollector>);

impl Collector for SharedCollector {
    fn encode(&self, encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        self.0.encode(encoder)
    }
}

type Gauge = fn(&QueueGauges) -> u64;
type Count = fn(&QueueCounters) -> u64;

/// `(Prometheus name, CloudWatch name, reader)`: one-to-one with AWS/SQS metrics where AWS has
/// one (see docs/metrics.md).
const GAUGES: &[(&str, &str, Option<Unit>, Gauge)] = &[
    (
        "sqs_queue_messages_visible",
        "ApproximateNumberOfMessagesVisible",
        None,
        |g| g.visible,
    ),
    (
        "sqs_queue_messages_not_visible",
        "ApproximateNumberOfMessagesNotVisible",
        None,
        |g| g.not_visible,
    ),
    (
        "sqs_queue_messages_delayed",
        "ApproximateNumberOfMessagesDelayed",
        None,
        |g| g.delayed,
    ),
    (
        "sqs_queue_oldest_message_age",
        "ApproximateAgeOfOldestMessage",
        Some(Unit::Seconds),
        |g| g.oldest_age_secs,
    ),
    (
        "sqs_queue_groups_with_inflight_messages",
        "ApproximateNumberOfGroupsWithInflightMessages (FIFO queues)",
        None,
        |g| g.groups_with_inflight,
    ),
    (
        "sqs_queue_noisy_groups",
        "ApproximateNumberOfNoisyGroups (fair queues)",
        None,
        |g| g.noisy_groups,
    ),
    (
        "sqs_queue_messages_visible_in_quiet_groups",
        "ApproximateNumberOfMessagesVisibleInQuietGroups (fair queues)",
        None,
        |g| g.visible_in_quiet_groups,
    ),
    (
        "sqs_queue_messages_not_visible_in_quiet_groups",
        "ApproximateNumberOfMessagesNotVisibleInQuietGroups (fair queues)",
        None,
        |g| g.not_visible_in_quiet_groups,
    ),
    (
        "sqs_queue_messages_delayed_in_quiet_groups",
        "ApproximateNumberOfMessagesDelayedInQuietGroups (fair queues)",
        None,
        |g| g.delayed_in_quiet_groups,
    ),
    (
        "sqs_queue_oldest_message_age_in_quiet_groups",
        "ApproximateAgeOfOldestMessageInQuietGroups (fair queues)",
        Some(Unit::Seconds),
        |g| g.oldest_age_in_quiet_groups_secs,
    ),
];

const COUNTERS: &[(&str, &str, Option<Unit>, Count)] = &[
    (
        "sqs_queue_messages_sent",
        "NumberOfMessagesSent",
        None,
        |c| QueueCounters::get(&c.sent),
    ),
    (
        "sqs_queue_sent_message",
        "SentMessageSize (Sum)",
        Some(Unit::Bytes),
        |c| QueueCounters::get(&c.sent_bytes),
    ),
    (
        "sqs_queue_messages_received",
        "NumberOfMessagesReceived",
        None,
        |c| QueueCounters::get(&c.received),
    ),
    (
        "sqs_queue_messages_deleted",
        "NumberOfMessagesDeleted",
        None,
        |c| QueueCounters::get(&c.deleted),
    ),
    (
        "sqs_queue_empty_receives",
        "NumberOfEmptyReceives",
        None,
        |c| QueueCounters::get(&c.empty_receives),
    ),
    (
        "sqs_queue_deduplicated_sent_messages",
        "NumberOfDeduplicatedSentMessages (FIFO queues)",
        None,
        |c| QueueCounters::get(&c.deduplicated),
    ),
    (
        "sqs_queue_messages_moved_to_dlq",
        "Redrive: messages this queue moved to its dead-letter queue (maxReceiveCount exceeded)",
        None,
        |c| QueueCounters::get(&c.moved_to_dlq),
    ),
    (
        "sqs_queue_dead_letter_arrivals",
        "Redrive: messages that arrived in this queue as a dead-letter queue",
        None,
        |c| QueueCounters::get(&c.dead_letter_arrivals),
    ),
    (
        "sqs_queue_messages_redriven_by_move_tasks",
        "Redrive: messages moved out of this queue by message move tasks",
        None,
        |c| QueueCounters::get(&c.redriven_by_move_tasks),
    ),
    (
        "sqs_queue_messages_redriven_by_replays",
        "Redrive: messages moved out of this queue by selective redrives (replays)",
        None,
        |c| QueueCounters::get(&c.redriven_by_replays),
    ),
];

/// AWS's metrics say which CloudWatch metric they are; ours say they are ours.
fn describe(help: &str) -> String {
    if help.starts_with("Redrive:") {
        help.to_string()
    } else {
        format!("AWS/SQS {help}")
    }
}

/// Every gauge family over `queues` (name, gauges), in [`GAUGES`] order.
fn encode_gauges<'a>(
    encoder: &mut DescriptorEncoder,
    queues: impl Iterator<Item = (&'a str, &'a QueueGauges)> + Clone,
) -> Result<(), std::fmt::Error> {
    for (name, help, unit, read) in GAUGES {
        let mut family = encoder.encode_descriptor(
            name,
            &describe(help),
            unit.as_ref(),
            ConstGauge::new(0i64).metric_type(),
        )?;
        for (queue, g) in queues.clone() {
            let value = i64::try_from(read(g)).unwrap_or(i64::MAX);
            ConstGauge::new(value).encode(family.encode_family(&[("queue", queue)])?)?;
        }
    }
    Ok(())
}

/// Every counter family over `queues` (name, counters), in [`COUNTERS`] order.
fn encode_counters<'a>(
    encoder: &mut DescriptorEncoder,
    queues: impl Iterator<Item = (&'a str, &'a QueueCounters)> + Clone,
) -> Result<(), std::fmt::Error> {
    for (name, help, unit, read) in COUNTERS {
        let mut family = encoder.encode_descriptor(
            name,
            &describe(help),
            unit.as_ref(),
            ConstCounter::new(0u64).metric_type(),
        )?;
        for (queue, c) in queues.clone() {
            ConstCounter::new(read(c)).encode(family.encode_family(&[("queue", queue)])?)?;
        }
    }
    Ok(())
}

impl Collector for QueueCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        if let Some(sample) = self
            .shared_sample
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_ref()
        {
            encode_gauges(
                &mut encoder,
                sample.iter().map(|(q, g, _)| (q.name.as_str(), g)),
            )?;
            return encode_counters(
                &mut encoder,
                sample.iter().map(|(q, _, c)| (q.name.as_str(), &**c)),
            );
        }
        let queues = self.engine.queue_metrics();
        encode_gauges(
            &mut encoder,
            queues.iter().map(|(q, g)| (q.name.as_str(), g)),
        )?;
        encode_counters(
            &mut encoder,
            queues.iter().map(|(q, _)| (q.name.as_str(), &q.counters)),
        )
    }
}
