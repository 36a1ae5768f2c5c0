//! Benchmark (ignored by default): server-side selective redrive over a large DLQ, in-process.
//! `cargo nextest run -p redrive-engine --release --run-ignored only replay_throughput
//! --no-capture`; results go to docs/performance.md.

use std::sync::Arc;
use std::time::{Duration, Instant};

use redrive_core::api::*;
use redrive_engine::replays::{ReplayRequest, ReplayStart, ReplayStatus};
use redrive_engine::store::{DurabilityMode, RedbStore, Store};
use redrive_engine::{Engine, EngineConfig, MemoryStore, SystemClock};
use redrive_select::selection::SelectionSpec;

use crate::common::ctx;

const N: usize = 100_000;

async fn fill(engine: &Engine) {
    let c = ctx();
    for name in ["bench-dlq", "bench-src"] {
        engine
            .create_queue(
                &c,
                CreateQueueInput {
                    queue_name: name.into(),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
    }
    for b in 0..N / 10 {
        let entries = (0..10)
            .map(|i| {
                let n = b * 10 + i;
                SendMessageBatchRequestEntry {
                    id: format!("e{i}"),
                    message_body: Some(format!(
                        r#"{{"tenant":"t{}","command":"points_updated","n":{n},"pad":"{}"}}"#,
                        n % 2,
                        "x".repeat(900)
                    )),
                    ..Default::default()
                }
            })
            .collect();
        engine
            .send_message_batch(
                &c,
                SendMessageBatchInput {
                    queue_url: "bench-dlq".into(),
                    entries,
                },
            )
            .await
            .unwrap();
    }
}

async fn run(label: &str, store: Arc<dyn Store>) {
    let engine = Arc::new(Engine::open(
        EngineConfig::default(),
        store,
        Arc::new(SystemClock),
    ));
    fill(&engine).await;
    let req = |dry_run: bool| ReplayRequest {
        source: "bench-dlq".into(),
        destination: Some("bench-src".into()),
        selection: SelectionSpec {
            filter: Some(r#".tenant == "t1""#.into()),
            ..Default::default()
        },
        transform: None,
        rate: Some(10_000.0),
        rate_per: None,
        breaker: None,
        provenance: true,
        dry_run,
        sample: Some(3),
        requested_by: None,
    };
    let t = Instant::now();
    let Ok(ReplayStart::DryRun(d)) = engine.start_replay(&ctx(), req(true)).await else {
        panic!("dry run failed")
    };
    let dry = t.elapsed();
    assert_eq!(d.selected as usize, N / 2);
    let t = Instant::now();
    let Ok(ReplayStart::Started(task)) = engine.start_replay(&ctx(), req(false)).await else {
        panic!("start failed")
    };
    let started = t.elapsed();
    loop {
        let r = engine.replay(&task.id).unwrap();
        if r.status != ReplayStatus::Running {
            assert_eq!(r.status, ReplayStatus::Completed);
            assert_eq!(r.moved as usize, N / 2);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let total = t.elapsed();
    let moving = total - started;
    eprintln!(
        "{label}: {N} dead letters, {} selected by a jq filter; dry run {:.2} s; start (plan + persist selection) {:.2} s; moves {:.2} s = {:.0} msg/s (rate cap 10,000/s)",
        N / 2,
        dry.as_secs_f64(),
        started.as_secs_f64(),
        moving.as_secs_f64(),
        (N / 2) as f64 / moving.as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark; run explicitly"]
async fn replay_throughput() {
    run("memory", Arc::new(MemoryStore::new())).await;
    for mode in [
        DurabilityMode::Strict,
        DurabilityMode::Relaxed { interval_ms: 100 },
    ] {
        let dir = tempfile::tempdir().unwrap();
        let store = RedbStore::open(dir.path(), mode).unwrap();
        run(&format!("redb {mode:?}"), Arc::new(store)).await;
    }
}
