//! The incident replay as a test: the naive worker dead-letters messages, admission control
//! dead-letters none and completes every event.

#[path = "../../examples/incident/scenario.rs"]
mod scenario;

use scenario::{Mode, Scenario, replay};

use crate::common::Env;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incident_naive_worker_fills_the_dlq() {
    let env = Env::redrive().await;
    let scenario = Scenario::small();
    let report = replay(&env.client, &scenario, Mode::Naive).await;
    eprintln!("{report}");
    assert!(report.downstream_429 > 0, "{report}");
    assert!(
        report.dead_letters > 0,
        "the naive worker should dead-letter: {report}"
    );
    assert_eq!(
        report.completed + report.dead_letters,
        report.events as u64,
        "{report}"
    );
    // The worker dead-lettered them itself, with an envelope, when maxReceiveCount was hit.
    assert_eq!(
        report.dead_by_reason.get("max_receives").copied(),
        Some(report.dead_letters),
        "{report}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incident_admission_control_dead_letters_nothing() {
    let env = Env::redrive().await;
    let scenario = Scenario::small();
    let report = replay(&env.client, &scenario, Mode::AdmissionControl).await;
    eprintln!("{report}");
    assert_eq!(report.dead_letters, 0, "{report}");
    assert_eq!(report.completed, report.events as u64, "{report}");
}

/// The limiter set above the real quota: 429s still happen, and the pause + deferral keeps
/// every message out of the DLQ.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incident_limiter_above_quota_still_dead_letters_nothing() {
    let env = Env::redrive().await;
    let mut scenario = Scenario::small();
    scenario.limiter_per_second = 15;
    let report = replay(&env.client, &scenario, Mode::AdmissionControl).await;
    eprintln!("{report}");
    assert!(
        report.downstream_429 > 0,
        "429s should still happen: {report}"
    );
    assert!(report.deferred >= report.downstream_429, "{report}");
    assert_eq!(report.dead_letters, 0, "{report}");
    assert_eq!(report.completed, report.events as u64, "{report}");
}
