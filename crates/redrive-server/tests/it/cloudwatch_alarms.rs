//! CloudWatch metric alarms through the official `aws-sdk-cloudwatch`: the seed's "alarm created
//! on a backlog that already existed" (created long after the dead letters arrived, in ALARM at
//! once, its configuration and state history as `DescribeAlarmHistory` gives them), OK after the
//! DLQ drains, updates that keep the state, `SetAlarmState`, deletion, CloudWatch's error codes
//! in the three protocols, and alarms surviving a restart on redb.

use std::sync::Arc;

use aws_sdk_cloudwatch::Client as CwClient;
use aws_sdk_cloudwatch::error::ProvideErrorMetadata;
use aws_sdk_cloudwatch::types::{
    ComparisonOperator, Dimension, HistoryItemType, ScanBy, StateValue, Statistic,
};
use redrive_engine::{Clock, Engine, EngineConfig, ManualClock, MemoryStore, RequestContext};

use crate::cloudwatch::cloudwatch_client;
use crate::common::*;

const MIN: u64 = 60_000;
/// 2026-04-20T20:20:00Z.
const M0: u64 = 1_776_716_400_000;
const DLQ: &str = "cafe24-worker-dlq";
const ALARM: &str = "cafe24-worker-dlq-not-empty";

struct Fixture {
    ts: TestServer,
    cw: CwClient,
    engine: Arc<Engine>,
    clock: Arc<ManualClock>,
    dlq_url: String,
}

impl Fixture {
    /// Advances the clock by whole minutes, writing each minute's history and evaluating the
    /// alarms after it, as the server's minute task does.
    async fn minutes(&self, n: u64) {
        for _ in 0..n {
            self.clock.advance_ms(MIN);
            self.engine.flush_history().await;
            self.engine.evaluate_cw_alarms().await;
        }
    }
}

/// Five messages land in the DLQ at 20:20; thirty quiet minutes follow.
async fn backlog() -> Fixture {
    let clock = Arc::new(ManualClock::new(M0 + 1_000));
    let engine = Arc::new(Engine::open(
        EngineConfig::default(),
        Arc::new(MemoryStore::new()),
        clock.clone(),
    ));
    let ts = TestServer::with_engine(engine.clone()).await;
    let dlq_url = ts.create(DLQ).await;
    for i in 0..5 {
        ts.send(&dlq_url, &format!("{{\"mall\":\"m{i}\"}}")).await;
    }
    let f = Fixture {
        cw: cloudwatch_client(&ts.base),
        ts,
        engine,
        clock,
        dlq_url,
    };
    f.minutes(30).await;
    f
}

async fn put_alarm(cw: &CwClient, threshold: f64) {
    cw.put_metric_alarm()
        .alarm_name(ALARM)
        .namespace("AWS/SQS")
        .metric_name("ApproximateNumberOfMessagesVisible")
        .dimensions(Dimension::builder().name("QueueName").value(DLQ).build())
        .statistic(Statistic::Maximum)
        .period(60)
        .evaluation_periods(1)
        .threshold(threshold)
        .comparison_operator(ComparisonOperator::GreaterThanThreshold)
        .alarm_actions("arn:aws:sns:us-east-1:000000000000:oncall")
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn an_alarm_created_on_an_old_backlog_is_in_alarm_at_once_and_its_history_says_so() {
    let f = backlog().await;
    let created_ms = f.clock.now_ms();
    put_alarm(&f.cw, 0.0).await;

    let out =
        f.cw.describe_alarms()
            .alarm_names(ALARM)
            .send()
            .await
            .unwrap();
    let a = &out.metric_alarms()[0];
    assert_eq!(a.state_value(), Some(&StateValue::Alarm));
    assert_eq!(
        a.alarm_arn(),
        Some(format!("arn:aws:cloudwatch:{REGION}:000000000000:alarm:{ALARM}").as_str())
    );
    assert_eq!(
        a.alarm_configuration_updated_timestamp()
            .unwrap()
            .to_millis()
            .unwrap(),
        created_ms as i64
    );
    let reason = a.state_reason().unwrap();
    assert!(
        reason.starts_with("Threshold Crossed: 1 datapoint [5.0 (20/04/26 20:49:00)]")
            && reason.ends_with("was greater than the threshold (0.0)."),
        "{reason}"
    );
    assert_eq!(
        a.alarm_actions(),
        ["arn:aws:sns:us-east-1:000000000000:oncall"]
    );
    assert_eq!(a.threshold(), Some(0.0));
    assert_eq!(a.dimensions()[0].value(), Some(DLQ));

    // The seed's check: configuration history first, then the first transition to ALARM.
    let cfg =
        f.cw.describe_alarm_history()
            .alarm_name(ALARM)
            .history_item_type(HistoryItemType::ConfigurationUpdate)
            .scan_by(ScanBy::TimestampAscending)
            .send()
            .await
            .unwrap();
    let items = cfg.alarm_history_items();
    assert_eq!(items.len(), 1);
    assert_eq!(
        items[0].history_summary(),
        Some(format!("Alarm \"{ALARM}\" created").as_str())
    );
    assert_eq!(
        items[0].timestamp().unwrap().to_millis().unwrap(),
        created_ms as i64
    );
    let data: serde_json::Value = serde_json::from_str(items[0].history_data().unwrap()).unwrap();
    assert_eq!(data["type"], "Create");
    assert_eq!(
        data["createdAlarm"]["metricName"],
        "ApproximateNumberOfMessagesVisible"
    );

    let states =
        f.cw.describe_alarm_history()
            .alarm_name(ALARM)
            .history_item_type(HistoryItemType::StateUpdate)
            .send()
            .await
            .unwrap();
    let s = states.alarm_history_items();
    assert_eq!(s.len(), 1);
    assert_eq!(
        s[0].history_summary(),
        Some("Alarm updated from INSUFFICIENT_DATA to ALARM")
    );
    let data: serde_json::Value = serde_json::from_str(s[0].history_data().unwrap()).unwrap();
    assert_eq!(
        data["oldState"]["stateReason"],
        "Unchecked: Initial alarm creation"
    );
    assert_eq!(
        data["newState"]["stateReasonData"]["recentDatapoints"],
        serde_json::json!([5.0])
    );

    // A metric's alarms.
    let for_metric =
        f.cw.describe_alarms_for_metric()
            .namespace("AWS/SQS")
            .metric_name("ApproximateNumberOfMessagesVisible")
            .dimensions(Dimension::builder().name("QueueName").value(DLQ).build())
            .send()
            .await
            .unwrap();
    assert_eq!(for_metric.metric_alarms().len(), 1);
    let none =
        f.cw.describe_alarms_for_metric()
            .namespace("AWS/SQS")
            .metric_name("ApproximateNumberOfMessagesVisible")
            .dimensions(
                Dimension::builder()
                    .name("QueueName")
                    .value("other")
                    .build(),
            )
            .send()
            .await
            .unwrap();
    assert!(none.metric_alarms().is_empty());
}

#[tokio::test]
async fn the_alarm_goes_ok_when_the_dlq_drains_and_updates_keep_the_state() {
    let f = backlog().await;
    put_alarm(&f.cw, 0.0).await;
    f.ts.client
        .purge_queue()
        .queue_url(&f.dlq_url)
        .send()
        .await
        .unwrap();
    f.minutes(1).await;
    let state = |cw: CwClient| async move {
        let out = cw
            .describe_alarms()
            .alarm_names(ALARM)
            .send()
            .await
            .unwrap();
        out.metric_alarms()[0].state_value().cloned()
    };
    assert_eq!(state(f.cw.clone()).await, Some(StateValue::Ok));
    let only_alarm =
        f.cw.describe_alarms()
            .state_value(StateValue::Alarm)
            .send()
            .await
            .unwrap();
    assert!(only_alarm.metric_alarms().is_empty());

    // An update keeps the state and records what changed.
    put_alarm(&f.cw, 10.0).await;
    assert_eq!(state(f.cw.clone()).await, Some(StateValue::Ok));
    let cfg =
        f.cw.describe_alarm_history()
            .alarm_name(ALARM)
            .history_item_type(HistoryItemType::ConfigurationUpdate)
            .send()
            .await
            .unwrap();
    let items = cfg.alarm_history_items();
    assert_eq!(items.len(), 2);
    // Newest first by default.
    assert_eq!(
        items[0].history_summary(),
        Some(format!("Alarm \"{ALARM}\" updated").as_str())
    );
    let data: serde_json::Value = serde_json::from_str(items[0].history_data().unwrap()).unwrap();
    assert_eq!(data["originalUpdatedFields"]["threshold"], 0.0);
    assert_eq!(data["updatedAlarm"]["threshold"], 10.0);

    // SetAlarmState holds until the next evaluation.
    f.cw.set_alarm_state()
        .alarm_name(ALARM)
        .state_value(StateValue::Alarm)
        .state_reason("testing the pager")
        .send()
        .await
        .unwrap();
    assert_eq!(state(f.cw.clone()).await, Some(StateValue::Alarm));
    f.minutes(1).await;
    assert_eq!(state(f.cw.clone()).await, Some(StateValue::Ok));
    let transitions =
        f.cw.describe_alarm_history()
            .alarm_name(ALARM)
            .history_item_type(HistoryItemType::StateUpdate)
            .scan_by(ScanBy::TimestampAscending)
            .send()
            .await
            .unwrap();
    let summaries: Vec<_> = transitions
        .alarm_history_items()
        .iter()
        .filter_map(|i| i.history_summary())
        .collect();
    assert_eq!(
        summaries,
        [
            "Alarm updated from INSUFFICIENT_DATA to ALARM",
            "Alarm updated from ALARM to OK",
            "Alarm updated from OK to ALARM",
            "Alarm updated from ALARM to OK",
        ]
    );
    // Paging.
    let first =
        f.cw.describe_alarm_history()
            .alarm_name(ALARM)
            .max_records(3)
            .send()
            .await
            .unwrap();
    assert_eq!(first.alarm_history_items().len(), 3);
    let rest =
        f.cw.describe_alarm_history()
            .alarm_name(ALARM)
            .max_records(3)
            .next_token(first.next_token().unwrap())
            .send()
            .await
            .unwrap();
    assert_eq!(rest.alarm_history_items().len(), 3);
    assert!(rest.next_token().is_none());

    // Deletion: unknown names change nothing; the history keeps the deletion.
    let e =
        f.cw.delete_alarms()
            .alarm_names(ALARM)
            .alarm_names("no-such-alarm")
            .send()
            .await
            .unwrap_err();
    assert_eq!(e.code(), Some("ResourceNotFound"));
    assert_eq!(e.raw_response().unwrap().status().as_u16(), 404);
    assert_eq!(
        f.cw.describe_alarms()
            .send()
            .await
            .unwrap()
            .metric_alarms()
            .len(),
        1
    );
    f.cw.delete_alarms()
        .alarm_names(ALARM)
        .send()
        .await
        .unwrap();
    assert!(
        f.cw.describe_alarms()
            .send()
            .await
            .unwrap()
            .metric_alarms()
            .is_empty()
    );
    let last =
        f.cw.describe_alarm_history()
            .alarm_name(ALARM)
            .max_records(1)
            .send()
            .await
            .unwrap();
    assert_eq!(
        last.alarm_history_items()[0].history_summary(),
        Some(format!("Alarm \"{ALARM}\" deleted").as_str())
    );
    let e =
        f.cw.set_alarm_state()
            .alarm_name(ALARM)
            .state_value(StateValue::Ok)
            .state_reason("r")
            .send()
            .await
            .unwrap_err();
    assert_eq!(e.code(), Some("ResourceNotFound"));
}

#[tokio::test]
async fn bad_alarms_get_cloudwatch_error_codes_in_every_protocol() {
    let f = backlog().await;
    // CBOR (the SDK).
    let e =
        f.cw.put_metric_alarm()
            .alarm_name("x")
            .namespace("AWS/SQS")
            .metric_name("ApproximateNumberOfMessagesVisible")
            .statistic(Statistic::Maximum)
            .period(60)
            .evaluation_periods(2)
            .datapoints_to_alarm(3)
            .threshold(1.0)
            .comparison_operator(ComparisonOperator::GreaterThanThreshold)
            .send()
            .await
            .unwrap_err();
    assert_eq!(e.code(), Some("ValidationError"), "{:?}", e.message());
    let e =
        f.cw.put_metric_alarm()
            .alarm_name("x")
            .namespace("AWS/SQS")
            .metric_name("ApproximateNumberOfMessagesVisible")
            .statistic(Statistic::Maximum)
            .period(60)
            .evaluation_periods(1)
            .comparison_operator(ComparisonOperator::GreaterThanThreshold)
            .send()
            .await
            .unwrap_err();
    assert_eq!(e.code(), Some("MissingParameter"), "{:?}", e.message());
    let e =
        f.cw.set_alarm_state()
            .alarm_name("x")
            .state_value(StateValue::Ok)
            .state_reason("r")
            .state_reason_data("{not json")
            .send()
            .await
            .unwrap_err();
    assert_eq!(e.code(), Some("InvalidFormat"));
    assert!(
        f.cw.describe_alarms()
            .send()
            .await
            .unwrap()
            .metric_alarms()
            .is_empty(),
        "nothing was created"
    );

    // JSON 1.0.
    let (status, headers, text) =
        f.ts.raw_json(
            "GraniteServiceVersion20100801.DeleteAlarms",
            r#"{"AlarmNames":["nope"]}"#,
        )
        .await;
    assert_eq!(status, 404, "{text}");
    assert_eq!(
        header(&headers, "x-amzn-query-error").as_deref(),
        Some("ResourceNotFound;Sender")
    );

    // Query: an alarm created and described in XML.
    let (status, _, xml) =
        f.ts.query(&[
            ("Action", "PutMetricAlarm"),
            ("Version", "2010-08-01"),
            ("AlarmName", "q-alarm"),
            ("Namespace", "AWS/SQS"),
            ("MetricName", "ApproximateNumberOfMessagesVisible"),
            ("Dimensions.member.1.Name", "QueueName"),
            ("Dimensions.member.1.Value", DLQ),
            ("Statistic", "Maximum"),
            ("Period", "60"),
            ("EvaluationPeriods", "1"),
            ("Threshold", "3"),
            ("ComparisonOperator", "GreaterThanOrEqualToThreshold"),
        ])
        .await;
    assert_eq!(status, 200, "{xml}");
    assert!(xml.contains("<PutMetricAlarmResponse"), "{xml}");
    let (status, _, xml) =
        f.ts.query(&[
            ("Action", "DescribeAlarms"),
            ("Version", "2010-08-01"),
            ("AlarmNames.member.1", "q-alarm"),
        ])
        .await;
    assert_eq!(status, 200, "{xml}");
    assert_eq!(xml_one(&xml, "StateValue"), "ALARM");
    assert_eq!(xml_one(&xml, "Threshold"), "3.0");
    assert_eq!(
        xml_one(&xml, "ComparisonOperator"),
        "GreaterThanOrEqualToThreshold"
    );
    let (status, _, xml) =
        f.ts.query(&[
            ("Action", "DescribeAlarms"),
            ("Version", "2010-08-01"),
            ("StateValue", "PURPLE"),
        ])
        .await;
    assert_eq!(status, 400);
    assert_eq!(xml_one(&xml, "Code"), "ValidationError");
}

#[tokio::test]
async fn alarms_and_their_history_survive_a_restart_on_redb() {
    use redrive_core::alarm::{AlarmDefinition, AlarmDimension, AlarmStateValue, Comparison};
    use redrive_store::{DurabilityMode, RedbStore};

    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(M0));
    let ctx = RequestContext {
        region: REGION.into(),
        base_url: String::new(),
    };
    let def = AlarmDefinition {
        alarm_name: ALARM.into(),
        alarm_description: Some("the seed's DLQ alarm".into()),
        actions_enabled: true,
        ok_actions: vec![],
        alarm_actions: vec![],
        insufficient_data_actions: vec![],
        namespace: "AWS/SQS".into(),
        metric_name: "ApproximateNumberOfMessagesVisible".into(),
        dimensions: vec![AlarmDimension {
            name: "QueueName".into(),
            value: DLQ.into(),
        }],
        statistic: "Maximum".into(),
        period: 60,
        unit: None,
        evaluation_periods: 1,
        datapoints_to_alarm: None,
        threshold: 0.0,
        comparison_operator: Comparison::GreaterThanThreshold,
        treat_missing_data: None,
    };
    {
        let store = Arc::new(RedbStore::open(dir.path(), DurabilityMode::Strict).unwrap());
        let engine = Engine::open(EngineConfig::default(), store, clock.clone());
        engine.put_metric_alarm(&ctx, def.clone()).await.unwrap();
    }
    let store = Arc::new(RedbStore::open(dir.path(), DurabilityMode::Strict).unwrap());
    let engine = Engine::open(EngineConfig::default(), store, clock.clone());
    let alarms = engine
        .describe_alarms(&ctx, &[], None, None, None)
        .await
        .unwrap();
    assert_eq!(alarms.len(), 1);
    assert_eq!(alarms[0].definition, def);
    // No such queue: no data.
    assert_eq!(alarms[0].state, AlarmStateValue::InsufficientData);
    let history = engine
        .describe_alarm_history(&ctx, Some(ALARM), None, None, None)
        .await
        .unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].history_item_type, "ConfigurationUpdate");
}
