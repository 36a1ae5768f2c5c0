//! Minute history (manual clock): exact per-minute counter deltas and gauge samples of a
//! scripted burst, period aggregation, retention by whole days, deleted queues, and a reopen
//! that keeps history without counting anything twice.

use redrive_engine::history::{
    COUNTERS, DOC_METRICS_MINUTE, GAUGES, HistoryQuery, MinutePoint, MinuteRecord,
};
use redrive_engine::store::Store;

use crate::common::*;

const MIN: u64 = 60_000;

/// Moves the clock to the start of the next minute (plus `offset_ms`).
fn to_next_minute(h: &H, offset_ms: u64) -> u64 {
    let now = h.engine.clock_now_ms();
    h.advance_ms(MIN - now % MIN + offset_ms);
    h.engine.clock_now_ms() / MIN * MIN
}

fn points(h: &H, url: &str, since: u64, until: u64) -> Vec<MinutePoint> {
    let q = h.engine.resolve(&h.ctx, url).expect("queue");
    h.engine.minute_points(&q, since, until)
}

fn idx(name: &str) -> usize {
    COUNTERS
        .iter()
        .chain(GAUGES.iter())
        .position(|d| d.name == name)
        .unwrap_or_else(|| panic!("no metric {name}"))
}

fn c(r: &MinuteRecord, name: &str) -> u64 {
    r.c[idx(name)]
}

fn g(r: &MinuteRecord, name: &str) -> u64 {
    r.g[idx(name) - COUNTERS.len()]
}

fn history_keys(h: &H) -> Vec<String> {
    // The minute history is not in the startup snapshot: read by key range.
    assert!(
        h.store
            .load()
            .documents
            .iter()
            .all(|d| d.kind != DOC_METRICS_MINUTE)
    );
    h.store
        .documents(DOC_METRICS_MINUTE, "", "\u{10ffff}")
        .unwrap()
        .into_iter()
        .map(|d| d.key)
        .collect()
}

#[tokio::test]
async fn a_scripted_burst_gives_exact_minute_sums_and_gauge_samples() {
    let h = H::new();
    let dlq = h.create("burst-dlq", &[]).await;
    let dlq_arn = h.arn(&dlq);
    let main = h
        .create(
            "burst",
            &[
                ("VisibilityTimeout", "300"),
                ("RedrivePolicy", &redrive_policy(&dlq_arn, 1)),
            ],
        )
        .await;
    // The minute the engine opened in is written at the next boundary (nothing happened).
    let m1 = to_next_minute(&h, 0);
    let r = h.engine.flush_history().await;
    assert_eq!(r.minute_ms, Some(m1 - MIN));
    assert_eq!(r.documents, 2);

    // Minute 1: the burst. 10 sent (5 bytes each), 4 received, 1 deleted, 1 empty receive on
    // the DLQ.
    h.advance_ms(5_000);
    for i in 0..10 {
        h.send(&main, &format!("msg-{i}")).await;
    }
    h.advance_ms(10_000);
    let got = h.recv(&main, 4, None).await;
    assert_eq!(got.len(), 4);
    h.delete(&main, &got[0].receipt_handle).await.unwrap();
    assert!(h.recv(&dlq, 1, None).await.is_empty());
    h.advance_ms(45_000); // m1 + 60 s: minute 1 ended
    let r = h.engine.flush_history().await;
    assert_eq!(r.minute_ms, Some(m1));
    // A second flush in the same minute writes nothing.
    assert_eq!(h.engine.flush_history().await.documents, 0);

    // Minute 2: 5 more sent, 8 received, 2 deleted.
    h.advance_ms(1_000);
    for i in 10..15 {
        h.send(&main, &format!("msg-{i}")).await;
    }
    let got2 = h.recv(&main, 8, None).await;
    assert_eq!(got2.len(), 8);
    for m in &got2[..2] {
        h.delete(&main, &m.receipt_handle).await.unwrap();
    }
    h.advance_ms(59_000);
    h.engine.flush_history().await;

    // Minute 3: the in-flight messages time out (received 1 time, maxReceiveCount 1): the
    // next receive moves them to the DLQ. Nothing is sent.
    h.advance_ms(200_000); // m1 + 320 s: past the first receive's 300 s, not the second's
    // Minutes 3 and 4 passed without a flush: their counts (none) and those of minute 5 go
    // to the minute that ended last.
    let before = got.len() - 1;
    let _ = h.recv(&main, 10, Some(0)).await;
    let now_minute = h.engine.clock_now_ms() / MIN * MIN;
    to_next_minute(&h, 0);
    h.engine.flush_history().await;

    let pts = points(&h, &main, m1 - MIN, now_minute + MIN);
    let minutes: Vec<u64> = pts.iter().map(|p| p.minute_ms).collect();
    assert_eq!(minutes, vec![m1 - MIN, m1, m1 + MIN, now_minute]);
    let (p0, p1, p2, p3) = (
        &pts[0].record,
        &pts[1].record,
        &pts[2].record,
        &pts[3].record,
    );
    assert_eq!(p0.c, [0; 10]);
    assert_eq!(p0.g, [0; 5]);

    assert_eq!(c(p1, "NumberOfMessagesSent"), 10);
    assert_eq!(c(p1, "SentMessageSize"), 50);
    assert_eq!(c(p1, "NumberOfMessagesReceived"), 4);
    assert_eq!(c(p1, "NumberOfMessagesDeleted"), 1);
    assert_eq!(c(p1, "NumberOfEmptyReceives"), 0);
    assert_eq!(g(p1, "ApproximateNumberOfMessagesVisible"), 6);
    assert_eq!(g(p1, "ApproximateNumberOfMessagesNotVisible"), 3);
    // The oldest message was sent 5 s into the minute; sampled at its end.
    assert_eq!(g(p1, "ApproximateAgeOfOldestMessage"), 55);

    assert_eq!(c(p2, "NumberOfMessagesSent"), 5);
    assert_eq!(c(p2, "NumberOfMessagesReceived"), 8);
    assert_eq!(c(p2, "NumberOfMessagesDeleted"), 2);
    assert_eq!(g(p2, "ApproximateNumberOfMessagesVisible"), 3);
    assert_eq!(g(p2, "ApproximateNumberOfMessagesNotVisible"), 9);

    // Minute 6: the 3 messages of the first receive moved to the DLQ (their receive count
    // was 1), and the receive that triggered it returned the remaining visible ones.
    assert_eq!(c(p3, "NumberOfMessagesSent"), 0);
    assert_eq!(
        c(p3, "NumberOfMessagesMovedToDeadLetterQueue"),
        before as u64
    );
    let total_received: u64 = pts
        .iter()
        .map(|p| c(&p.record, "NumberOfMessagesReceived"))
        .sum();
    let q = h.engine.resolve(&h.ctx, &main).unwrap();
    assert_eq!(
        total_received,
        q.counters
            .received
            .load(std::sync::atomic::Ordering::Relaxed)
    );

    let dpts = points(&h, &dlq, m1 - MIN, now_minute + MIN);
    assert_eq!(c(&dpts[1].record, "NumberOfEmptyReceives"), 1);
    assert_eq!(
        c(&dpts[3].record, "NumberOfDeadLetterArrivals"),
        before as u64
    );
    assert_eq!(
        g(&dpts[3].record, "ApproximateNumberOfMessagesVisible"),
        before as u64
    );

    // Through the API: period 120 from minute 1 sums minutes 1 and 2.
    let hist = h
        .engine
        .metric_history(
            &h.ctx,
            "burst",
            &HistoryQuery {
                since_ms: Some(m1),
                until_ms: Some(m1 + 4 * MIN),
                period_secs: 120,
            },
        )
        .unwrap();
    let sent = hist
        .series
        .iter()
        .find(|s| s.def.name == "NumberOfMessagesSent")
        .unwrap();
    assert_eq!(sent.points.len(), 1);
    assert_eq!(sent.points[0].timestamp_ms, m1);
    assert_eq!(sent.points[0].sum, 15.0);
    assert_eq!(sent.points[0].sample_count, 2.0);
    assert_eq!(sent.points[0].maximum, Some(10.0));
    let nv = hist
        .series
        .iter()
        .find(|s| s.def.name == "ApproximateNumberOfMessagesNotVisible")
        .unwrap();
    assert_eq!(nv.points[0].maximum, Some(9.0));
    assert_eq!(nv.points[0].minimum, Some(3.0));
    let size = hist
        .series
        .iter()
        .find(|s| s.def.name == "SentMessageSize")
        .unwrap();
    assert_eq!(size.points[0].sum, 80.0); // 10 × 5 bytes + 5 × 6 bytes
    assert_eq!(size.points[0].average, Some(80.0 / 15.0));
    assert_eq!(size.points[0].sample_count, 15.0);
}

#[tokio::test]
async fn retention_drops_whole_old_days_and_deleted_queues() {
    let h = H::new();
    h.engine.set_history_retention_days(2);
    let keep = h.create("kept", &[]).await;
    let gone = h.create("gone", &[]).await;
    const DAY: u64 = 86_400_000;
    // Day 0 → start of day 1.
    let now = h.engine.clock_now_ms();
    let day0 = now / DAY;
    h.advance_ms(DAY - now % DAY);
    h.engine.flush_history().await; // writes the last minute of day 0
    h.send(&keep, "x").await;
    h.advance_ms(MIN);
    h.engine.flush_history().await; // the first minute of day 1
    let days = |h: &H| {
        let mut d: Vec<String> = history_keys(h)
            .iter()
            .map(|k| k.rsplit_once('/').unwrap().0.to_string())
            .collect();
        d.dedup();
        d
    };
    assert_eq!(days(&h).len(), 4, "{:?}", days(&h)); // 2 queues × days 0 and 1

    // Day 0 lies entirely more than 2 days back once day 3 starts.
    h.advance_ms(DAY);
    let r = h.engine.flush_history().await;
    assert_eq!(r.days_dropped, 0);
    h.advance_ms(DAY);
    let r = h.engine.flush_history().await;
    assert_eq!(r.days_dropped, 2);
    let left = days(&h);
    assert!(
        left.iter().all(|d| !d.ends_with(&day_text(day0))),
        "{left:?}"
    );
    assert_eq!(left.len(), 6, "{left:?}"); // days 1, 2 and 3 of both queues

    // A deleted queue's history goes at the next write.
    let gone_uid = h.engine.resolve(&h.ctx, &gone).unwrap().uid;
    h.engine
        .delete_queue(
            &h.ctx,
            redrive_core::api::QueueUrlInput {
                queue_url: gone.clone(),
            },
        )
        .await
        .unwrap();
    h.advance_ms(MIN);
    h.engine.flush_history().await;
    assert!(
        history_keys(&h)
            .iter()
            .all(|k| !k.starts_with(&format!("{gone_uid}/"))),
        "{:?}",
        history_keys(&h)
    );
    assert!(!history_keys(&h).is_empty());
}

fn day_text(day: u64) -> String {
    // The day of an epoch-day number, as the keys spell it (via a minute key).
    redrive_engine::history::minute_key(0, day * 1440)
        .split('/')
        .nth(1)
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn a_reopen_keeps_history_and_counts_nothing_twice() {
    let h = H::new();
    let url = h.create("restart", &[]).await;
    let m1 = to_next_minute(&h, 1_000);
    for i in 0..3 {
        h.send(&url, &format!("a{i}")).await;
    }
    to_next_minute(&h, 20_000);
    let m2 = m1 + MIN;
    h.engine.flush_history().await; // minute 1: 3 sent
    h.send(&url, "b0").await;
    h.send(&url, "b1").await;
    // Shutdown 20 s into minute 2: the partial minute is written.
    let r = h.engine.flush_history_partial().await;
    assert_eq!(r.minute_ms, Some(m2));

    // The same store, the same minute: a new process.
    let h2 = h.reopen();
    drop(h);
    for i in 0..4 {
        h2.send(&url, &format!("c{i}")).await;
    }
    to_next_minute(&h2, 0);
    h2.engine.flush_history().await; // minute 2: 2 before the restart + 4 after
    h2.advance_ms(MIN);
    h2.engine.flush_history().await; // minute 3: nothing

    let pts = points(&h2, &url, m1, m1 + 3 * MIN);
    let sent: Vec<(u64, u64)> = pts
        .iter()
        .map(|p| (p.minute_ms, c(&p.record, "NumberOfMessagesSent")))
        .collect();
    assert_eq!(sent, vec![(m1, 3), (m2, 6), (m2 + MIN, 0)]);
    assert_eq!(
        g(&pts[1].record, "ApproximateNumberOfMessagesVisible"),
        9,
        "the gauge is the new process's sample at the minute's end"
    );

    // A restart in a later minute without a shutdown write: history before it stays, the new
    // process counts from zero.
    let h3 = h2.reopen();
    drop(h2);
    h3.advance_ms(30_000);
    h3.send(&url, "d").await;
    to_next_minute(&h3, 0);
    h3.engine.flush_history().await;
    let pts = points(&h3, &url, m1, m1 + 5 * MIN);
    let sent: Vec<u64> = pts
        .iter()
        .map(|p| c(&p.record, "NumberOfMessagesSent"))
        .collect();
    assert_eq!(sent, vec![3, 6, 0, 1]);
}

/// The size figures of docs/metrics.md and docs/performance.md: one day of minute history
/// for `QUEUES` queues in a real redb file (relaxed durability, compacted), idle and busy.
/// `cargo nextest run -p redrive-engine --run-ignored only measure_history_size --nocapture`
#[tokio::test(flavor = "multi_thread")]
#[ignore = "a measurement, not a test"]
async fn measure_history_size() {
    use std::sync::Arc;
    use std::sync::atomic::Ordering::Relaxed;

    use redrive_engine::store::{DurabilityMode, RedbStore, StoreOptions};
    use redrive_engine::{Engine, EngineConfig, ManualClock};

    const QUEUES: usize = 20;
    for busy in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(
            RedbStore::open_with(
                dir.path(),
                StoreOptions {
                    mode: DurabilityMode::Relaxed { interval_ms: 100 },
                    reserve_bytes: 0,
                    ..StoreOptions::default()
                },
            )
            .unwrap(),
        );
        let clock = Arc::new(ManualClock::new(T0 / 86_400_000 * 86_400_000));
        let engine = Engine::open(EngineConfig::default(), store.clone(), clock.clone());
        let mut urls = Vec::new();
        for i in 0..QUEUES {
            let url = engine
                .create_queue(
                    &ctx(),
                    redrive_core::api::CreateQueueInput {
                        queue_name: format!("orders-service-queue-{i:04}"),
                        ..Default::default()
                    },
                )
                .await
                .unwrap()
                .queue_url;
            if busy {
                for _ in 0..120 {
                    engine
                        .send_message(
                            &ctx(),
                            redrive_core::api::SendMessageInput {
                                queue_url: url.clone(),
                                message_body: Some("x".repeat(200)),
                                ..Default::default()
                            },
                        )
                        .await
                        .unwrap();
                }
            }
            urls.push(url);
        }
        store.flush().unwrap();
        store.compact().unwrap();
        let file = dir.path().join(redrive_engine::store::FILE_NAME);
        let before = std::fs::metadata(&file).unwrap().len();
        let queues: Vec<_> = urls
            .iter()
            .map(|u| engine.resolve(&ctx(), u).unwrap())
            .collect();
        for minute in 0..1440u64 {
            if busy {
                // Realistic minute counts of a busy queue (4–7 digit numbers).
                for q in &queues {
                    q.counters.sent.fetch_add(1_000 + minute % 500, Relaxed);
                    q.counters.sent_bytes.fetch_add(1_234_567, Relaxed);
                    q.counters.received.fetch_add(1_100 + minute % 300, Relaxed);
                    q.counters.deleted.fetch_add(990, Relaxed);
                    q.counters.empty_receives.fetch_add(37, Relaxed);
                    q.counters.moved_to_dlq.fetch_add(minute % 3, Relaxed);
                }
            }
            clock.advance_ms(60_000);
            let r = engine.flush_history().await;
            assert_eq!(r.documents, QUEUES);
        }
        store.flush().unwrap();
        store.compact().unwrap();
        let after = std::fs::metadata(&file).unwrap().len();
        let docs = store
            .documents(DOC_METRICS_MINUTE, "", "\u{10FFFF}")
            .unwrap();
        assert_eq!(docs.len(), QUEUES * 1440);
        let key: usize = docs.iter().map(|d| d.key.len()).sum();
        let value: usize = docs.iter().map(|d| d.value.len()).sum();
        let kind = DOC_METRICS_MINUTE.len() * docs.len();
        let n = docs.len() as f64;
        // Every document is read at startup (Store::load): its cost.
        let rss_kib = || {
            std::fs::read_to_string("/proc/self/status")
                .ok()
                .and_then(|s| {
                    s.lines()
                        .find(|l| l.starts_with("VmRSS:"))
                        .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
                })
                .unwrap_or(0)
        };
        let rss_before = rss_kib();
        let started = std::time::Instant::now();
        let snap = store.try_load().unwrap();
        let took = started.elapsed();
        let rss_after = rss_kib();
        println!(
            "startup load of {} documents: {:?}; resident memory +{} KiB while the snapshot \
             is held ({:.0} B per document)",
            snap.documents.len(),
            took,
            rss_after.saturating_sub(rss_before),
            rss_after.saturating_sub(rss_before) as f64 * 1024.0 / snap.documents.len() as f64
        );
        drop(snap);
        println!(
            "{}: {} documents; per document: key {:.1} B, value {:.1} B, kind {} B; \
             raw per queue-day {:.1} KiB; redb file growth per queue-day {:.1} KiB \
             ({} → {} bytes); example {} = {}",
            if busy { "busy" } else { "idle" },
            docs.len(),
            key as f64 / n,
            value as f64 / n,
            DOC_METRICS_MINUTE.len(),
            (key + value + kind) as f64 / QUEUES as f64 / 1024.0,
            (after - before) as f64 / QUEUES as f64 / 1024.0,
            before,
            after,
            docs[700].key,
            String::from_utf8_lossy(&docs[700].value),
        );
    }
}

#[tokio::test]
async fn gauges_count_a_visibility_timeout_that_ran_out_unobserved() {
    // Nothing touches the queue after the receive: the gauges (history and /metrics) still
    // see the message visible again once its timeout has passed.
    let h = H::new();
    let url = h.create("expiring", &[("VisibilityTimeout", "30")]).await;
    h.send(&url, "x").await;
    assert_eq!(h.recv(&url, 1, None).await.len(), 1);
    h.advance_ms(31_000);
    let (_, g) = h
        .engine
        .queue_metrics()
        .into_iter()
        .find(|(q, _)| q.name == "expiring")
        .unwrap();
    assert_eq!((g.visible, g.not_visible), (1, 0));
}

#[tokio::test]
async fn history_survives_a_reopen_of_a_redb_file_and_ranges_stay_per_queue() {
    use std::sync::Arc;

    use redrive_engine::store::{DurabilityMode, RedbStore};
    use redrive_engine::{Engine, EngineConfig, ManualClock};

    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0));
    let open = || {
        let store = Arc::new(RedbStore::open(dir.path(), DurabilityMode::Strict).unwrap());
        let engine = Engine::open(EngineConfig::default(), store.clone(), clock.clone());
        (engine, store)
    };
    let (engine, store) = open();
    // uids 1 and 10/11: "1/…" keys must not pick up "10/…" or "11/…".
    let mut urls = Vec::new();
    for i in 0..11 {
        urls.push(
            engine
                .create_queue(
                    &ctx(),
                    redrive_core::api::CreateQueueInput {
                        queue_name: format!("q{i}"),
                        ..Default::default()
                    },
                )
                .await
                .unwrap()
                .queue_url,
        );
    }
    let uids: Vec<u64> = urls
        .iter()
        .map(|u| engine.resolve(&ctx(), u).unwrap().uid)
        .collect();
    assert!(uids.contains(&1) && uids.contains(&10), "{uids:?}");
    let now = redrive_engine::Clock::now_ms(&*clock);
    clock.advance_ms(MIN - now % MIN);
    let m1 = redrive_engine::Clock::now_ms(&*clock);
    for (i, url) in urls.iter().enumerate() {
        for _ in 0..=i {
            engine
                .send_message(
                    &ctx(),
                    redrive_core::api::SendMessageInput {
                        queue_url: url.clone(),
                        message_body: Some("x".into()),
                        ..Default::default()
                    },
                )
                .await
                .unwrap();
        }
    }
    clock.advance_ms(MIN);
    assert_eq!(engine.flush_history().await.documents, 11);
    drop(engine);
    store.shutdown();
    drop(store);

    let (engine, _store) = open();
    for (i, url) in urls.iter().enumerate() {
        let q = engine.resolve(&ctx(), url).unwrap();
        let pts = engine.minute_points(&q, m1 - 10 * MIN, m1 + 10 * MIN);
        assert_eq!(pts.len(), 1, "queue {i}: {pts:?}");
        assert_eq!(pts[0].minute_ms, m1);
        assert_eq!(c(&pts[0].record, "NumberOfMessagesSent"), i as u64 + 1);
        assert_eq!(
            g(&pts[0].record, "ApproximateNumberOfMessagesVisible"),
            i as u64 + 1
        );
    }
}

/// What one minute's write costs with 1,000 queues in a strict (fsync) redb store: the
/// sampling under each queue's lock, the batch and its commit. For docs/performance.md.
/// `cargo nextest run -p redrive-engine --release --run-ignored only measure_history_flush --no-capture`
#[tokio::test(flavor = "multi_thread")]
#[ignore = "a measurement, not a test"]
async fn measure_history_flush() {
    use std::sync::Arc;

    use redrive_engine::store::{DurabilityMode, RedbStore};
    use redrive_engine::{Engine, EngineConfig, ManualClock};

    const QUEUES: usize = 1_000;
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(RedbStore::open(dir.path(), DurabilityMode::Strict).unwrap());
    let clock = Arc::new(ManualClock::new(T0 / 60_000 * 60_000));
    let engine = Engine::open(EngineConfig::default(), store.clone(), clock.clone());
    for i in 0..QUEUES {
        let url = engine
            .create_queue(
                &ctx(),
                redrive_core::api::CreateQueueInput {
                    queue_name: format!("q{i:04}"),
                    ..Default::default()
                },
            )
            .await
            .unwrap()
            .queue_url;
        // A few messages each, so the gauges walk something.
        for _ in 0..10 {
            engine
                .send_message(
                    &ctx(),
                    redrive_core::api::SendMessageInput {
                        queue_url: url.clone(),
                        message_body: Some("x".repeat(100)),
                        ..Default::default()
                    },
                )
                .await
                .unwrap();
        }
    }
    let mut times = Vec::new();
    for _ in 0..20 {
        clock.advance_ms(60_000);
        let started = std::time::Instant::now();
        let r = engine.flush_history().await;
        times.push(started.elapsed());
        assert_eq!(r.documents, QUEUES);
    }
    times.sort();
    println!(
        "{QUEUES} queues (10 messages each), strict: one minute's history write (sample + batch + fsync'd commit): median {:?}, max {:?}",
        times[times.len() / 2],
        times[times.len() - 1]
    );
}

#[tokio::test]
async fn fifo_minutes_count_deduplicated_sends_and_groups_in_flight() {
    let h = H::new();
    let url = h
        .create(
            "hist.fifo",
            &[("FifoQueue", "true"), ("VisibilityTimeout", "600")],
        )
        .await;
    let m1 = to_next_minute(&h, 0);
    h.send_fifo(&url, "a1", "a", "d1").await;
    h.send_fifo(&url, "a1", "a", "d1").await; // a duplicate: not sent
    h.send_fifo(&url, "a2", "a", "d2").await;
    h.send_fifo(&url, "b1", "b", "d3").await;
    h.send_fifo(&url, "c1", "c", "d4").await;
    // One message from each of two groups in flight.
    assert_eq!(h.recv(&url, 1, None).await.len(), 1);
    assert_eq!(h.recv(&url, 1, None).await.len(), 1);
    h.advance_ms(MIN);
    h.engine.flush_history().await;
    let pts = points(&h, &url, m1, m1 + MIN);
    assert_eq!(pts.len(), 1);
    let r = &pts[0].record;
    assert_eq!(c(r, "NumberOfMessagesSent"), 4);
    assert_eq!(c(r, "NumberOfDeduplicatedSentMessages"), 1);
    assert_eq!(c(r, "NumberOfMessagesReceived"), 2);
    assert_eq!(g(r, "ApproximateNumberOfGroupsWithInflightMessages"), 2);
    assert_eq!(g(r, "ApproximateNumberOfMessagesNotVisible"), 2);
    assert_eq!(g(r, "ApproximateNumberOfMessagesVisible"), 2);
}
