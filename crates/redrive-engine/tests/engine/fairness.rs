//! Fair queues: the field incident of seeds/000, replayed on a simulated clock.
//!
//! Tenant A bursts 5,000 messages in one second; tenant B sends 50 spread over the same second.
//! A consumer fleet keeps at most 50 messages in flight, each taking 100 ms, and polls every
//! 10 ms (so it drains ~500 msg/s). We measure each tenant's dwell time (send → first receive).
//! With `MessageGroupId` as the tenant key, B is served while A's backlog is still deep; the
//! same run without group ids shows B stuck behind A.

use std::collections::HashMap;

use redrive_core::api::*;

use crate::common::{AtUrl, H};

const A_MESSAGES: usize = 5_000;
const B_MESSAGES: usize = 50;
const MAX_IN_FLIGHT: usize = 50;
const PROCESSING_MS: u64 = 100;
const TICK_MS: u64 = 10;

#[derive(Debug)]
struct Dwell {
    mean_ms: f64,
    p50_ms: u64,
    max_ms: u64,
    last_done_ms: u64,
}

fn dwell(samples: &mut [u64], last_done_ms: u64) -> Dwell {
    samples.sort_unstable();
    Dwell {
        mean_ms: samples.iter().sum::<u64>() as f64 / samples.len() as f64,
        p50_ms: samples[samples.len() / 2],
        max_ms: *samples.last().unwrap(),
        last_done_ms,
    }
}

/// Runs the scenario; returns (A, B) dwell statistics in simulated milliseconds.
async fn run(with_groups: bool) -> (Dwell, Dwell) {
    let h = H::new();
    let url = h.create("tenants", &[]).await;
    let mut sent_at: HashMap<String, (char, u64)> = HashMap::new();
    let mut dwell_a = Vec::new();
    let mut dwell_b = Vec::new();
    let mut last_a = 0;
    let mut last_b = 0;
    let mut in_flight: Vec<(u64, String)> = Vec::new();
    let (mut a_sent, mut b_sent) = (0, 0);
    let mut t = 0;
    while dwell_a.len() < A_MESSAGES || dwell_b.len() < B_MESSAGES {
        // Producers: A's burst and B's trickle, both within the first second.
        let a_due = (A_MESSAGES * (t as usize + TICK_MS as usize) / 1000).min(A_MESSAGES);
        let b_due = (B_MESSAGES * (t as usize + TICK_MS as usize) / 1000).min(B_MESSAGES);
        for (tenant, due, sent) in [('A', a_due, &mut a_sent), ('B', b_due, &mut b_sent)] {
            while *sent < due {
                let out = h
                    .send_input(
                        SendMessageInput {
                            message_body: Some(format!("{tenant}-{sent}")),
                            message_group_id: with_groups.then(|| format!("tenant-{tenant}")),
                            ..Default::default()
                        }
                        .at(&url),
                    )
                    .await
                    .expect("send");
                sent_at.insert(out.message_id, (tenant, t));
                *sent += 1;
            }
        }
        // Consumers: finish what is done, then fill up to the in-flight budget.
        let mut still = Vec::new();
        for (done_at, handle) in in_flight.drain(..) {
            if done_at <= t {
                h.delete(&url, &handle).await.expect("delete");
            } else {
                still.push((done_at, handle));
            }
        }
        in_flight = still;
        while in_flight.len() < MAX_IN_FLIGHT {
            let want = (MAX_IN_FLIGHT - in_flight.len()).min(10) as i64;
            let got = h.recv(&url, want, Some(30)).await;
            if got.is_empty() {
                break;
            }
            for m in got {
                let (tenant, at) = sent_at[&m.message_id];
                if tenant == 'A' {
                    dwell_a.push(t - at);
                    last_a = t;
                } else {
                    dwell_b.push(t - at);
                    last_b = t;
                }
                in_flight.push((t + PROCESSING_MS, m.receipt_handle));
            }
        }
        h.advance_ms(TICK_MS);
        t += TICK_MS;
        assert!(t < 120_000, "simulation did not drain");
    }
    (dwell(&mut dwell_a, last_a), dwell(&mut dwell_b, last_b))
}

#[tokio::test]
async fn quiet_tenant_is_served_during_a_noisy_burst() {
    let (fair_a, fair_b) = run(true).await;
    let (plain_a, plain_b) = run(false).await;
    println!(
        "with MessageGroupId (fair):   A {fair_a:?}\n                              B {fair_b:?}"
    );
    println!(
        "without MessageGroupId:       A {plain_a:?}\n                              B {plain_b:?}"
    );
    // Without tenants, B waits behind A's backlog: its messages drain near the end.
    assert!(
        plain_b.mean_ms > 2_000.0,
        "expected B to be stuck behind A: {plain_b:?}"
    );
    // With tenants, B's messages are delivered long before A's backlog clears.
    assert!(
        fair_b.max_ms * 10 < fair_a.last_done_ms,
        "B not served early: {fair_b:?} vs {fair_a:?}"
    );
    assert!(
        fair_b.mean_ms * 20.0 < plain_b.mean_ms,
        "fairness made no difference"
    );
    assert!(fair_b.p50_ms * 20 < plain_b.p50_ms);
    // A still gets served (just later): the same total work finishes in about the same time.
    assert!(fair_a.last_done_ms <= plain_a.last_done_ms + 1_000);
}
