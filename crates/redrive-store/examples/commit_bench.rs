//! Group-commit throughput of `RedbStore`: N submitter threads, each submitting one
//! single-mutation batch (a `PutMessage` with a 256-byte body) and waiting for it to be durable
//! before the next, as one request handler would.
//!
//! ```text
//! cargo run --release -p redrive-store --example commit_bench [DIR] [SECONDS]
//! ```
//!
//! `DIR` (default: a temporary directory under the current directory, so it is on the same
//! file system as the checkout rather than a tmpfs) holds the database; `SECONDS` (default 3)
//! is the length of each run.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use redrive_store::{DurabilityMode, MessageRecord, Mutation, RedbStore, Store};

fn message(queue_uid: u64, seq: u64, body: &Arc<str>) -> MessageRecord {
    MessageRecord {
        queue_uid,
        seq,
        message_id: format!("{queue_uid:08}-{seq:012}"),
        payload: redrive_store::Payload::new(body.clone(), Default::default(), Default::default()),
        sender_id: "AIDABENCH".into(),
        sent_ms: seq,
        enqueued_ms: seq,
        visible_at_ms: seq,
        receive_count: 0,
        first_receive_ms: None,
        last_receive_ms: None,
        group_id: None,
        dedup_id: None,
        sequence_number: None,
        dead_letter_source_arn: None,
        dead_lettered_ms: None,
    }
}

fn run(base: &std::path::Path, mode: DurabilityMode, submitters: u64, seconds: u64) {
    let dir = tempfile::tempdir_in(base).expect("temp dir");
    let store = Arc::new(RedbStore::open(dir.path(), mode).expect("open"));
    let body: Arc<str> = Arc::from("x".repeat(256));
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let threads: Vec<_> = (0..submitters)
        .map(|t| {
            let (store, body, stop, done) =
                (store.clone(), body.clone(), stop.clone(), done.clone());
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .build()
                    .expect("runtime");
                let mut seq = 0;
                while !stop.load(Ordering::Relaxed) {
                    let d = store.submit(vec![Mutation::PutMessage(message(t + 1, seq, &body))]);
                    rt.block_on(d.wait()).expect("durable");
                    seq += 1;
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(seconds));
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().expect("submitter");
    }
    let elapsed = started.elapsed().as_secs_f64();
    let n = done.load(Ordering::Relaxed);
    let commits = store.commits();
    println!(
        "{:<22} {:>4} submitters  {:>9.0} mutations/s  {:>8} commits ({} fsync'd)  {:>6.1} mutations/commit",
        format!("{mode:?}"),
        submitters,
        n as f64 / elapsed,
        commits,
        store.durable_commits(),
        n as f64 / commits.max(1) as f64,
    );
    store.shutdown();
}

fn main() {
    let mut args = std::env::args().skip(1);
    let base = args
        .next()
        .map_or_else(|| PathBuf::from("."), PathBuf::from);
    let seconds = args.next().map_or(3, |s| s.parse().expect("seconds"));
    for submitters in [1, 8, 64] {
        run(&base, DurabilityMode::Strict, submitters, seconds);
    }
    for submitters in [1, 8, 64] {
        run(
            &base,
            DurabilityMode::Relaxed { interval_ms: 100 },
            submitters,
            seconds,
        );
    }
}
