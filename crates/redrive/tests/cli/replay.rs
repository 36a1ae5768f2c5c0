//! `redrive replay` and `redrive move` run as a child process against a `redrive serve` child
//! (client-side path forced with `--client-side`; the server-side path through
//! `/_redrive/v1/replays`) and against `moto_server` (tests named `*moto*`: run by the `moto`
//! nextest profile only, see .config/nextest.toml).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::{ServerProcess, Sqs};

/// `redrive ARGS --endpoint-url ENDPOINT` with no AWS settings from the environment.
pub(crate) fn command(endpoint: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_redrive"));
    cmd.args(args).args(["--endpoint-url", endpoint]);
    for (k, _) in std::env::vars() {
        if k.starts_with("AWS_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/nonexistent")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
        .env("AWS_REGION", "us-east-1")
        .stdin(Stdio::null());
    cmd
}

fn redrive(endpoint: &str, args: &[&str]) -> Output {
    command(endpoint, args).output().expect("run redrive")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "redrive failed ({:?}): {}\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr),
        stdout(out)
    );
    stdout(out)
}

fn json_of(out: &Output) -> Value {
    serde_json::from_str(&ok(out)).expect("JSON output")
}

/// A failing run: non-zero exit and exactly one line on stderr.
fn fails(out: &Output) -> String {
    assert!(
        !out.status.success(),
        "expected failure, got success: {}",
        stdout(out)
    );
    let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
    assert_eq!(err.lines().count(), 1, "one line expected: {err}");
    err
}

fn audit(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// A DLQ `{name}-dlq` and its source `{name}` (maxReceiveCount 1); returns (source, dlq) URLs.
async fn pair(sqs: &Sqs, name: &str, fifo: bool) -> (String, String) {
    let (src_name, dlq_name) = if fifo {
        (format!("{name}.fifo"), format!("{name}-dlq.fifo"))
    } else {
        (name.to_string(), format!("{name}-dlq"))
    };
    let fifo_attrs = if fifo {
        json!({"FifoQueue": "true"})
    } else {
        json!({})
    };
    let dlq = sqs.create_queue(&dlq_name, fifo_attrs.clone()).await;
    let dlq_arn = sqs.attr(&dlq, "QueueArn").await;
    let policy = json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 1}).to_string();
    let mut attrs = fifo_attrs;
    attrs["RedrivePolicy"] = Value::from(policy);
    let src = sqs.create_queue(&src_name, attrs).await;
    (src, dlq)
}

pub(crate) async fn send(sqs: &Sqs, url: &str, body: &str, attrs: Value, group: Option<&str>) {
    let mut req = json!({"QueueUrl": url, "MessageBody": body, "MessageAttributes": attrs});
    if let Some(g) = group {
        req["MessageGroupId"] = Value::from(g);
        req["MessageDeduplicationId"] =
            Value::from(format!("{g}-{body}").replace(['{', '}', '"', ':', ','], "_"));
    }
    sqs.call("SendMessage", req).await.expect("send");
}

pub(crate) async fn count(sqs: &Sqs, url: &str) -> u64 {
    let n = |s: String| s.parse::<u64>().unwrap_or(0);
    n(sqs.attr(url, "ApproximateNumberOfMessages").await)
        + n(sqs.attr(url, "ApproximateNumberOfMessagesNotVisible").await)
}

/// Receives (and hides) messages from `src` until they are all in the DLQ.
async fn dead_letter_all(sqs: &Sqs, src: &str, dlq: &str, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while count(sqs, dlq).await < n {
        assert!(Instant::now() < deadline, "messages did not reach the DLQ");
        sqs.call(
            "ReceiveMessage",
            json!({"QueueUrl": src, "MaxNumberOfMessages": 10, "VisibilityTimeout": 0}),
        )
        .await
        .expect("receive");
    }
}

/// Every message of a queue (received and deleted), with attributes.
pub(crate) async fn drain(sqs: &Sqs, url: &str) -> Vec<Value> {
    let mut all = Vec::new();
    let mut empty = 0;
    while empty < 2 {
        let v = sqs
            .call(
                "ReceiveMessage",
                json!({"QueueUrl": url, "MaxNumberOfMessages": 10, "VisibilityTimeout": 60,
                       "WaitTimeSeconds": 1, "MessageAttributeNames": ["All"],
                       "MessageSystemAttributeNames": ["All"], "AttributeNames": ["All"]}),
            )
            .await
            .expect("receive");
        let msgs = v["Messages"].as_array().cloned().unwrap_or_default();
        if msgs.is_empty() {
            empty += 1;
            continue;
        }
        empty = 0;
        for m in msgs {
            sqs.call(
                "DeleteMessage",
                json!({"QueueUrl": url, "ReceiptHandle": m["ReceiptHandle"]}),
            )
            .await
            .expect("delete");
            all.push(m);
        }
    }
    all
}

fn provenance(m: &Value) -> Value {
    let text = m["MessageAttributes"]["Redrive.Replay"]["StringValue"]
        .as_str()
        .unwrap_or_else(|| panic!("no provenance on {m}"));
    serde_json::from_str(text).unwrap()
}

pub(crate) fn body(m: &Value) -> Value {
    serde_json::from_str(m["Body"].as_str().unwrap()).unwrap()
}

/// Ten orders (six of mall a, four of mall b) dead-lettered from `orders` into `orders-dlq`.
async fn orders(sqs: &Sqs) -> (String, String) {
    let (src, dlq) = pair(sqs, "orders", false).await;
    for i in 0..10 {
        let mall = if i < 6 { "a" } else { "b" };
        send(
            sqs,
            &src,
            &json!({"mall": mall, "n": i, "v": 1}).to_string(),
            json!({"mall": {"DataType": "String", "StringValue": mall},
                   "tries": {"DataType": "Number", "StringValue": "3"}}),
            None,
        )
        .await;
    }
    dead_letter_all(sqs, &src, &dlq, 10).await;
    (src, dlq)
}

#[tokio::test]
async fn client_side_filter_transform_provenance_and_dry_run() {
    let server = ServerProcess::start(&["--in-memory"], &[]).await;
    let sqs = server.client();
    let e = server.endpoint();
    let (src, dlq) = orders(&sqs).await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.ndjson");
    let log_s = log.to_str().unwrap();
    let backup = dir.path().join("backup.ndjson");
    let args = [
        "replay",
        "orders-dlq",
        "--client-side",
        "--filter",
        r#".mall == "a" and $meta.messageAttributes.tries.StringValue == "3""#,
        "--transform",
        r#".v = 2 | .migrated = true | tojson"#,
        "--audit-log",
        log_s,
        "--format",
        "json",
    ];

    // Dry run (the default): counts, destination, transformed sample; nothing moves.
    let p = json_of(&redrive(&e, &args));
    assert_eq!(p["dryRun"], true);
    assert_eq!(p["path"], "client");
    assert_eq!(p["selected"], 6);
    assert_eq!(p["scanned"], 10);
    assert_eq!(p["destinations"][0]["name"], "orders");
    assert_eq!(p["destinations"][0]["count"], 6);
    let sample = p["sample"].as_array().unwrap();
    assert_eq!(sample.len(), 5);
    for s in sample {
        let b: Value = serde_json::from_str(s["body"].as_str().unwrap()).unwrap();
        assert_eq!((b["mall"].as_str(), b["v"].as_i64()), (Some("a"), Some(2)));
    }
    assert_eq!(count(&sqs, &src).await, 0, "the dry run moved something");
    // Released at once at the end of the dry run: all visible again.
    assert_eq!(sqs.attr(&dlq, "ApproximateNumberOfMessages").await, "10");

    // --yes (with a backup): exactly the selected six move, transformed, with provenance.
    let mut yes = args.to_vec();
    yes.extend(["--yes", "--backup", backup.to_str().unwrap()]);
    let s = json_of(&redrive(&e, &yes));
    assert_eq!(s["outcome"], "completed", "{s}");
    assert_eq!(
        (&s["selected"], &s["moved"], &s["failed"], &s["remaining"]),
        (&json!(6), &json!(6), &json!(0), &json!(0))
    );
    let run = s["run"].as_str().unwrap().to_string();
    let backed_up: Vec<Value> = std::fs::read_to_string(&backup)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(backed_up.len(), 6);
    let original_ids: HashSet<String> = backed_up
        .iter()
        .map(|m| m["messageId"].as_str().unwrap().to_string())
        .collect();
    assert!(
        backed_up
            .iter()
            .all(|m| m["body"].as_str().unwrap().contains(r#""v":1"#))
    );

    let moved = drain(&sqs, &src).await;
    assert_eq!(moved.len(), 6);
    let dlq_arn = sqs.attr(&dlq, "QueueArn").await;
    let mut replay_of = HashSet::new();
    for m in &moved {
        let b = body(m);
        assert_eq!(b["mall"], "a");
        assert_eq!(b["v"], 2);
        assert_eq!(b["migrated"], true);
        assert_eq!(m["MessageAttributes"]["mall"]["StringValue"], "a");
        assert_eq!(m["MessageAttributes"]["tries"]["DataType"], "Number");
        let p = provenance(m);
        assert_eq!(p["run"], run);
        assert_eq!(p["replayCount"], 1);
        assert_eq!(p["from"], dlq_arn);
        replay_of.insert(p["replayOf"].as_str().unwrap().to_string());
    }
    assert_eq!(replay_of, original_ids);
    let left = drain(&sqs, &dlq).await;
    assert_eq!(left.len(), 4);
    assert!(left.iter().all(|m| body(m)["mall"] == "b"));

    // The audit log: who, what, each copy before its delete, the end.
    let recs = audit(&log);
    let events: Vec<&str> = recs.iter().filter_map(|r| r["event"].as_str()).collect();
    assert_eq!(events.first(), Some(&"dryRun"));
    assert!(recs.iter().any(|r| r["event"] == "start"
        && r["selection"]["filter"].as_str().is_some()
        && r["who"].as_str().is_some_and(|w| w.contains('@'))));
    let sent: Vec<&Value> = recs.iter().filter(|r| r["event"] == "sent").collect();
    assert_eq!(sent.len(), 6);
    for r in &sent {
        let id = r["messageId"].as_str().unwrap();
        let sent_at = recs
            .iter()
            .position(|x| x["event"] == "sent" && x["messageId"] == id);
        let deleted_at = recs
            .iter()
            .position(|x| x["event"] == "deleted" && x["messageId"] == id);
        assert!(sent_at < deleted_at, "journaled before deleted");
    }
    let end = recs.last().unwrap();
    assert_eq!(end["event"], "end");
    assert_eq!(end["outcome"], "completed");
    assert_eq!(end["counts"]["moved"], 6);

    // A replay of a replay counts up (and the attribute is replaced, not added).
    send(
        &sqs,
        &dlq,
        "again",
        json!({"Redrive.Replay": {"DataType": "String", "StringValue":
            json!({"replayOf": "x", "replayCount": 1, "run": "old", "from": "arn", "at": 1}).to_string()}}),
        None,
    )
    .await;
    ok(&redrive(
        &e,
        &[
            "replay",
            "orders-dlq",
            "--client-side",
            "--filter",
            r#". == "again""#,
            "--to",
            "orders",
            "--yes",
            "--audit-log",
            log_s,
        ],
    ));
    let again = drain(&sqs, &src).await;
    assert_eq!(again.len(), 1);
    assert_eq!(provenance(&again[0])["replayCount"], 2);
}

#[tokio::test]
async fn fifo_groups_and_order_are_kept_with_fresh_dedup_ids() {
    let server = ServerProcess::start(&["--in-memory"], &[]).await;
    let sqs = server.client();
    let e = server.endpoint();
    let (src, dlq) = pair(&sqs, "jobs", true).await;
    for g in ["g1", "g2"] {
        for i in 0..4 {
            send(
                &sqs,
                &src,
                &json!({"g": g, "i": i}).to_string(),
                json!({"kind": {"DataType": "String", "StringValue": "job"}}),
                Some(g),
            )
            .await;
        }
    }
    dead_letter_all(&sqs, &src, &dlq, 8).await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("a.ndjson");
    let s = json_of(&redrive(
        &e,
        &[
            "replay",
            "jobs-dlq.fifo",
            "--client-side",
            "--yes",
            "--format",
            "json",
            "--audit-log",
            log.to_str().unwrap(),
        ],
    ));
    assert_eq!(s["moved"], 8, "{s}");
    assert_eq!(s["destinations"][0]["name"], "jobs.fifo");
    // Within 5 minutes of the original sends: the copies were not swallowed by deduplication.
    let moved = drain(&sqs, &src).await;
    assert_eq!(moved.len(), 8);
    let mut per_group: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for m in &moved {
        let g = m["Attributes"]["MessageGroupId"]
            .as_str()
            .unwrap()
            .to_string();
        assert_eq!(body(m)["g"], g.as_str());
        assert_eq!(m["MessageAttributes"]["kind"]["StringValue"], "job");
        let dedup = m["Attributes"]["MessageDeduplicationId"]
            .as_str()
            .unwrap_or_default();
        assert!(
            dedup.starts_with(s["run"].as_str().unwrap()),
            "fresh dedup id: {dedup}"
        );
        per_group
            .entry(g)
            .or_default()
            .push(body(m)["i"].as_i64().unwrap());
    }
    assert_eq!(
        per_group["g1"],
        vec![0, 1, 2, 3],
        "order within a group kept"
    );
    assert_eq!(per_group["g2"], vec![0, 1, 2, 3]);
    assert_eq!(count(&sqs, &dlq).await, 0);

    // A FIFO DLQ cannot be replayed into a standard queue.
    sqs.create_queue("plain", json!({})).await;
    send(&sqs, &dlq, "x", json!({}), Some("g9")).await;
    let err = fails(&redrive(
        &e,
        &[
            "replay",
            "jobs-dlq.fifo",
            "--client-side",
            "--to",
            "plain",
            "--yes",
            "--audit-log",
            log.to_str().unwrap(),
        ],
    ));
    assert!(err.contains("FIFO") && err.contains("standard"), "{err}");
    assert_eq!(count(&sqs, &dlq).await, 1);
}

#[tokio::test]
async fn per_key_rate_spaces_each_key() {
    let server = ServerProcess::start(&["--in-memory"], &[]).await;
    let sqs = server.client();
    let e = server.endpoint();
    let (src, dlq) = pair(&sqs, "rates", false).await;
    for i in 0..12 {
        let mall = ["a", "b", "c"][i % 3];
        send(
            &sqs,
            &src,
            &json!({"mall": mall, "i": i}).to_string(),
            json!({}),
            None,
        )
        .await;
    }
    dead_letter_all(&sqs, &src, &dlq, 12).await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("a.ndjson");
    let started = Instant::now();
    let s = json_of(&redrive(
        &e,
        &[
            "replay",
            "rates-dlq",
            "--client-side",
            "--yes",
            "--format",
            "json",
            "--rate-per",
            ".mall",
            "2/s",
            "--audit-log",
            log.to_str().unwrap(),
        ],
    ));
    let took = started.elapsed();
    assert_eq!(s["moved"], 12);
    // Four per key at 2/s: at least 1.5 s; the keys go side by side, so well under the 5.5 s a
    // global 2/s would take.
    assert!(took >= Duration::from_millis(1400), "{took:?}");
    assert!(took < Duration::from_secs(20), "{took:?}");
    // Per key, consecutive copies are at least ~500 ms apart (journal times, 100 ms tolerance).
    let mall_of: HashMap<String, String> = drain(&sqs, &src)
        .await
        .iter()
        .map(|m| {
            (
                provenance(m)["replayOf"].as_str().unwrap().to_string(),
                body(m)["mall"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let mut times: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for r in audit(&log).iter().filter(|r| r["event"] == "sent") {
        let mall = &mall_of[r["messageId"].as_str().unwrap()];
        times
            .entry(mall.clone())
            .or_default()
            .push(r["at"].as_i64().unwrap());
    }
    assert_eq!(times.len(), 3);
    for (mall, ts) in &times {
        assert_eq!(ts.len(), 4);
        for w in ts.windows(2) {
            assert!(w[1] - w[0] >= 400, "mall {mall}: {ts:?}");
        }
    }
    // And a global rate of 4/s over all of them: 8 messages take at least 1.75 s.
    for i in 0..8 {
        send(&sqs, &dlq, &format!("g{i}"), json!({}), None).await;
    }
    let started = Instant::now();
    let s = json_of(&redrive(
        &e,
        &[
            "replay",
            "rates-dlq",
            "--client-side",
            "--yes",
            "--format",
            "json",
            "--to",
            "rates",
            "--rate",
            "4/s",
            "--audit-log",
            log.to_str().unwrap(),
        ],
    ));
    assert_eq!(s["moved"], 8);
    assert!(
        started.elapsed() >= Duration::from_millis(1650),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn breaker_trips_when_replayed_messages_keep_coming_back() {
    let server = ServerProcess::start(&["--in-memory"], &[]).await;
    let sqs = server.client();
    let e = server.endpoint();
    let (src, dlq) = pair(&sqs, "flaky", false).await;
    for i in 0..40 {
        send(&sqs, &src, &format!("job {i}"), json!({}), None).await;
    }
    dead_letter_all(&sqs, &src, &dlq, 40).await;
    // A consumer that keeps failing: receives, never deletes (maxReceiveCount 1 sends every
    // replayed message back to the DLQ on its next receive).
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let consumer = {
        let (sqs, src, stop) = (sqs.clone(), src.clone(), stop.clone());
        tokio::spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = sqs.receive(&src, 10, 1, 1).await;
            }
        })
    };
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("a.ndjson");
    let log_s = log.to_str().unwrap().to_string();
    // The consumer runs on this runtime: the CLI must not block it.
    let out = tokio::task::spawn_blocking(move || {
        redrive(
            &e,
            &[
                "replay",
                "flaky-dlq",
                "--client-side",
                "--yes",
                "--format",
                "json",
                "--rate",
                "5/s",
                "--breaker",
                "20%/60s/5",
                "--audit-log",
                &log_s,
            ],
        )
    })
    .await
    .unwrap();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    consumer.await.unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", stdout(&out));
    let s: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(s["outcome"], "tripped");
    assert!(
        s["reason"].as_str().unwrap().contains("circuit breaker"),
        "{s}"
    );
    let moved = s["moved"].as_u64().unwrap();
    assert!((5..40).contains(&moved), "{s}");
    assert!(s["returned"].as_u64().unwrap() >= 1, "{s}");
    assert_eq!(s["remaining"].as_u64().unwrap(), 40 - moved, "{s}");
    // Nothing lost: every job is in the source or the DLQ.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let total = count(&sqs, &src).await + count(&sqs, &dlq).await;
    assert_eq!(total, 40);
    assert_eq!(audit(&log).last().unwrap()["outcome"], "tripped");
}

#[tokio::test]
async fn killed_mid_replay_then_rerun_moves_everything_and_never_recopies_a_journaled_message() {
    let server = ServerProcess::start(&["--in-memory"], &[]).await;
    let sqs = server.client();
    let e = server.endpoint();
    let (src, dlq) = pair(&sqs, "kill", false).await;
    for i in 0..20 {
        send(&sqs, &src, &format!("m{i}"), json!({}), None).await;
    }
    dead_letter_all(&sqs, &src, &dlq, 20).await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("a.ndjson");
    let log_s = log.to_str().unwrap();
    let mut child = command(
        &e,
        &[
            "replay",
            "kill-dlq",
            "--client-side",
            "--yes",
            "--rate",
            "5/s",
            "--visibility-timeout",
            "3",
            "--audit-log",
            log_s,
        ],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while count(&sqs, &src).await < 6 {
        assert!(Instant::now() < deadline, "the replay did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let first = count(&sqs, &src).await;
    assert!(first < 20, "killed too late");
    let first_run = audit(&log);
    assert!(first_run.iter().all(|r| r["event"] != "end"));
    // What the killed run journaled as sent is never sent again.
    let journaled: HashSet<String> = first_run
        .iter()
        .filter(|r| r["event"] == "sent")
        .map(|r| r["messageId"].as_str().unwrap().to_string())
        .collect();
    // The held messages come back after their visibility timeout; the rerun resumes the run.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let out = redrive(
        &e,
        &[
            "replay",
            "kill-dlq",
            "--client-side",
            "--yes",
            "--format",
            "json",
            "--audit-log",
            log_s,
        ],
    );
    let s: Value = serde_json::from_str(&ok(&out)).unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("resuming run"));
    let moved = drain(&sqs, &src).await;
    let mut bodies: Vec<String> = moved
        .iter()
        .map(|m| m["Body"].as_str().unwrap().to_string())
        .collect();
    bodies.sort();
    bodies.dedup();
    let mut want: Vec<String> = (0..20).map(|i| format!("m{i}")).collect();
    want.sort();
    assert_eq!(bodies, want, "every message at the destination ({s})");
    // On a standard queue the one window for a duplicate is a batch the destination accepted
    // and the killed run had not journaled yet (the kill may land there: it follows a send).
    // Such a copy names its original; nothing journaled as sent is ever copied twice.
    let mut copies: HashMap<String, usize> = HashMap::new();
    for m in &moved {
        *copies
            .entry(provenance(m)["replayOf"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    let twice: Vec<&String> = copies
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(id, _)| id)
        .collect();
    assert!(
        twice.iter().all(|id| !journaled.contains(*id)),
        "a message journaled as sent was copied again ({s})"
    );
    assert!(
        twice.len() <= 10,
        "more than the one unjournaled batch was copied twice ({s})"
    );
    assert!(
        copies.values().all(|n| *n <= 2),
        "a message copied three times ({s})"
    );
    assert_eq!(count(&sqs, &dlq).await, 0, "nothing left behind");
    let runs: HashSet<String> = moved
        .iter()
        .map(|m| provenance(m)["run"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(runs.len(), 1, "the rerun resumed the same run id");
    // A third run finds nothing and replays nothing.
    let s = json_of(&redrive(
        &e,
        &[
            "replay",
            "kill-dlq",
            "--client-side",
            "--yes",
            "--format",
            "json",
            "--audit-log",
            log_s,
        ],
    ));
    assert_eq!(s["moved"], 0);
}

#[tokio::test]
async fn bad_input_is_refused_before_anything_moves() {
    let server = ServerProcess::start(&["--in-memory"], &[]).await;
    let sqs = server.client();
    let e = server.endpoint();
    let (src, dlq) = orders(&sqs).await;
    sqs.create_queue("small", json!({"MaximumMessageSize": "1024"}))
        .await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("a.ndjson");
    let log_s = log.to_str().unwrap();
    let base = [
        "replay",
        "orders-dlq",
        "--client-side",
        "--yes",
        "--audit-log",
        log_s,
    ];
    let run = |extra: &[&str]| {
        let mut a = base.to_vec();
        a.extend(extra);
        redrive(&e, &a)
    };
    let err = fails(&run(&["--filter", ".mall ==="]));
    assert!(
        err.contains("--filter") && err.contains("invalid jq"),
        "{err}"
    );
    let err = fails(&run(&["--transform", "{"]));
    assert!(err.contains("--transform"), "{err}");
    let err = fails(&run(&["--to", "no-such-queue"]));
    assert!(
        err.contains("no-such-queue") && err.contains("does not exist"),
        "{err}"
    );
    let err = fails(&run(&["--rate", "0/s"]));
    assert!(err.contains("--rate") && err.contains("between"), "{err}");
    let err = fails(&run(&["--rate-per", ".mall", "20000/s"]));
    assert!(err.contains("--rate-per"), "{err}");
    let err = fails(&run(&["--breaker", "150%"]));
    assert!(err.contains("--breaker"), "{err}");
    let err = fails(&run(&["--sent-after", "last tuesday"]));
    assert!(err.contains("--sent-after"), "{err}");
    let err = fails(&run(&["--transform", ".v = 2"]));
    assert!(
        err.contains("not a string") && err.contains("nothing was moved"),
        "{err}"
    );
    let err = fails(&run(&[
        "--to",
        "small",
        "--transform",
        r#"[limit(2000; repeat("x"))] | add"#,
    ]));
    assert!(err.contains("maximum message size"), "{err}");
    let err = fails(&run(&["--to", "orders-dlq"]));
    assert!(err.contains("DLQ itself"), "{err}");
    // A message with ten attributes leaves no room for the provenance attribute.
    let mut ten = serde_json::Map::new();
    for i in 0..10 {
        ten.insert(
            format!("a{i}"),
            json!({"DataType": "String", "StringValue": "x"}),
        );
    }
    send(&sqs, &dlq, "full", Value::Object(ten), None).await;
    let err = fails(&run(&["--to", "orders"]));
    assert!(err.contains("limit of 10"), "{err}");
    // Nothing moved by any of them; everything visible again.
    assert_eq!(count(&sqs, &src).await, 0);
    assert_eq!(sqs.attr(&dlq, "ApproximateNumberOfMessages").await, "11");
    // --no-provenance replays it as is.
    let s = json_of(&run(&[
        "--to",
        "orders",
        "--filter",
        r#". == "full""#,
        "--no-provenance",
        "--format",
        "json",
    ]));
    assert_eq!(s["moved"], 1);
}

/// `moto_server` (no browse API, no replays API): the client-side path is the only one.
pub(crate) struct Moto {
    child: std::process::Child,
    pub(crate) endpoint: String,
}

impl Moto {
    pub(crate) async fn start() -> Option<Moto> {
        let port = crate::harness::free_port();
        let child = Command::new("moto_server")
            .args(["-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let moto = Moto {
            child,
            endpoint: format!("http://127.0.0.1:{port}/"),
        };
        let sqs = Sqs::with_scope(&moto.endpoint, "us-east-1");
        for _ in 0..300 {
            if sqs.call("ListQueues", json!({})).await.is_ok() {
                return Some(moto);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("moto_server did not become ready");
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn replay_against_moto() {
    let moto = Moto::start().await.expect("moto_server is not on PATH: the moto tests run only in `cargo nextest run --profile moto` (.ci/run installs it)");
    let e = moto.endpoint.clone();
    let sqs = Sqs::with_scope(&e, "us-east-1");
    let dlq = sqs.create_queue("orders-dlq", json!({})).await;
    let dest = sqs.create_queue("orders", json!({})).await;
    for i in 0..10 {
        let mall = if i < 6 { "a" } else { "b" };
        send(
            &sqs,
            &dlq,
            &json!({"mall": mall, "n": i, "v": 1}).to_string(),
            json!({"mall": {"DataType": "String", "StringValue": mall}}),
            None,
        )
        .await;
    }
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("a.ndjson");
    let args = [
        "replay",
        "orders-dlq",
        "--to",
        "orders",
        "--filter",
        r#".mall == "a""#,
        "--transform",
        ".v = 2 | tojson",
        "--format",
        "json",
        "--audit-log",
        log.to_str().unwrap(),
        "--visibility-timeout",
        "30",
    ];
    let p = json_of(&redrive(&e, &args));
    assert_eq!(p["path"], "client");
    assert_eq!(p["selected"], 6);
    assert_eq!(count(&sqs, &dest).await, 0);
    let mut yes = args.to_vec();
    yes.push("--yes");
    let s = json_of(&redrive(&e, &yes));
    assert_eq!(s["moved"], 6, "{s}");
    let moved = drain(&sqs, &dest).await;
    assert_eq!(moved.len(), 6);
    for m in &moved {
        assert_eq!(body(m)["v"], 2);
        assert_eq!(m["MessageAttributes"]["mall"]["StringValue"], "a");
        assert_eq!(provenance(m)["run"], s["run"]);
    }
    let left = drain(&sqs, &dlq).await;
    assert_eq!(left.len(), 4);
    assert!(left.iter().all(|m| body(m)["mall"] == "b"));
}

#[tokio::test]
async fn move_tasks_start_follow_list_cancel() {
    let server = ServerProcess::start(&["--in-memory"], &[]).await;
    let sqs = server.client();
    let e = server.endpoint();
    let (src, dlq) = orders(&sqs).await;
    // Start and follow to the end.
    let r = json_of(&redrive(&e, &["move", "orders-dlq", "--format", "json"]));
    assert_eq!(r["outcome"], "completed", "{r}");
    assert_eq!(r["task"]["status"], "COMPLETED");
    assert_eq!(r["task"]["approximateNumberOfMessagesMoved"], 10);
    assert_eq!(count(&sqs, &src).await, 10);
    assert_eq!(count(&sqs, &dlq).await, 0);
    let list = json_of(&redrive(
        &e,
        &["move", "orders-dlq", "--list", "--format", "json"],
    ));
    assert_eq!(list[0]["status"], "COMPLETED");
    // Slow task to a destination, cancelled from another invocation.
    dead_letter_all(&sqs, &src, &dlq, 10).await;
    sqs.create_queue("elsewhere", json!({})).await;
    ok(&redrive(
        &e,
        &[
            "move",
            "orders-dlq",
            "--to",
            "elsewhere",
            "--rate",
            "1",
            "--no-follow",
        ],
    ));
    let out = ok(&redrive(&e, &["move", "orders-dlq", "--cancel"]));
    assert!(out.contains("cancelling"), "{out}");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let list = json_of(&redrive(
            &e,
            &["move", "orders-dlq", "--list", "--format", "json"],
        ));
        if list[0]["status"] == "CANCELLED" {
            assert!(
                list[0]["approximateNumberOfMessagesMoved"]
                    .as_i64()
                    .unwrap()
                    < 10
            );
            break;
        }
        assert!(Instant::now() < deadline, "{list}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let err = fails(&redrive(&e, &["move", "orders-dlq", "--cancel"]));
    assert!(err.contains("no move task is running"), "{err}");
    let err = fails(&redrive(&e, &["move", "orders-dlq", "--rate", "501"]));
    assert!(err.contains("between 1 and 500"), "{err}");
}

#[tokio::test]
async fn schedules_need_a_redrive_server_not_moto() {
    let moto = Moto::start().await.expect("moto_server is not on PATH: the moto tests run only in `cargo nextest run --profile moto` (.ci/run installs it)");
    let err = fails(&redrive(&moto.endpoint, &["schedule", "list"]));
    assert!(err.contains("cron"), "{err}");
    // Bad cron / zone / window are refused before any request.
    let server = ServerProcess::start(&["--in-memory"], &[]).await;
    let e = server.endpoint();
    for (args, want) in [
        (vec!["--cron", "0 6 * *"], "--cron"),
        (
            vec!["--cron", "0 6 * * *", "--timezone", "Mars/Base"],
            "time zone",
        ),
        (
            vec!["--cron", "0 6 * * *", "--dead-lettered", "lastweek"],
            "--dead-lettered",
        ),
    ] {
        let mut a = vec!["schedule", "add", "nightly", "--source", "orders-dlq"];
        a.extend(args);
        let err = fails(&redrive(&e, &a));
        assert!(err.contains(want), "{err}");
    }
}

/// Waits until `redrive replay DLQ --list` shows `id` in one of `statuses`.
async fn wait_status(e: &str, dlq: &str, id: &str, statuses: &[&str]) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let list = json_of(&redrive(e, &["replay", dlq, "--list", "--format", "json"]));
        if let Some(t) = list
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["id"] == id && statuses.contains(&t["status"].as_str().unwrap_or("")))
        {
            return t.clone();
        }
        assert!(Instant::now() < deadline, "{list}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn sigint(child: &std::process::Child) {
    let st = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
}

#[tokio::test]
async fn server_side_replay_preview_move_audit_detach_cancel_attach() {
    let server = ServerProcess::start(&["--in-memory"], &[]).await;
    let sqs = server.client();
    let e = server.endpoint();
    let (src, dlq) = orders(&sqs).await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.ndjson");
    let log_s = log.to_str().unwrap();
    let backup = dir.path().join("backup.ndjson");
    let args = [
        "replay",
        "orders-dlq",
        "--filter",
        r#".mall == "a""#,
        "--transform",
        ".v = 2 | tojson",
        "--audit-log",
        log_s,
        "--format",
        "json",
    ];
    // Preview: the server's dry run, nothing moves.
    let p = json_of(&redrive(&e, &args));
    assert_eq!(p["path"], "server");
    assert_eq!(p["selected"], 6);
    assert_eq!(p["destinations"][0]["name"], "orders");
    assert!(
        p["sample"][0]["body"]
            .as_str()
            .unwrap()
            .contains(r#""v":2"#)
    );
    assert_eq!(count(&sqs, &src).await, 0);
    // --yes: the server task moves exactly the six; the audit log lists every move.
    let mut yes = args.to_vec();
    yes.extend(["--yes", "--backup", backup.to_str().unwrap()]);
    let s = json_of(&redrive(&e, &yes));
    assert_eq!(s["path"], "server");
    assert_eq!(s["outcome"], "completed", "{s}");
    assert_eq!((&s["moved"], &s["failed"]), (&json!(6), &json!(0)));
    let task = s["run"].as_str().unwrap().to_string();
    assert_eq!(std::fs::read_to_string(&backup).unwrap().lines().count(), 6);
    let moved = drain(&sqs, &src).await;
    assert_eq!(moved.len(), 6);
    let recs = audit(&log);
    let audited: HashSet<String> = recs
        .iter()
        .filter(|r| r["event"] == "moved" && r["run"] == task.as_str())
        .map(|r| r["newMessageId"].as_str().unwrap().to_string())
        .collect();
    for m in &moved {
        assert_eq!(body(m)["v"], 2);
        assert_eq!(provenance(m)["run"], task.as_str());
        assert!(audited.contains(m["MessageId"].as_str().unwrap()));
    }
    assert_eq!(recs.last().unwrap()["event"], "end");

    // A slow one, interrupted without a terminal: detaches, the task keeps running.
    let slow = [
        "replay",
        "orders-dlq",
        "--yes",
        "--rate",
        "1/s",
        "--to",
        "orders",
        "--audit-log",
        log_s,
        "--format",
        "json",
    ];
    let child = command(&e, &slow)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    sigint(&child);
    let out = child.wait_with_output().unwrap();
    let s: Value = serde_json::from_str(&ok(&out)).unwrap();
    assert_eq!(s["outcome"], "detached");
    assert!(String::from_utf8_lossy(&out.stderr).contains("keeps running"));
    let id = s["run"].as_str().unwrap().to_string();
    wait_status(&e, "orders-dlq", &id, &["RUNNING"]).await;
    // The same request again attaches to it instead of starting a second one.
    let attached = command(&e, &slow)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    // A different selection is refused while it runs.
    let err = fails(&redrive(
        &e,
        &[
            "replay",
            "orders-dlq",
            "--yes",
            "--filter",
            ".n == 9",
            "--audit-log",
            log_s,
        ],
    ));
    assert!(err.contains(&id) && err.contains("--cancel"), "{err}");
    // Cancel it from a third invocation; the attached one sees it end.
    ok(&redrive(&e, &["replay", "orders-dlq", "--cancel", &id]));
    let t = wait_status(&e, "orders-dlq", &id, &["CANCELLED"]).await;
    let out = attached.wait_with_output().unwrap();
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("already running"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(130));
    let s: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(s["outcome"], "cancelled");
    let moved_slow = t["moved"].as_u64().unwrap();
    assert!(moved_slow < 4, "{t}");
    // Nothing lost or doubled: four mall-b messages between the DLQ and the source.
    assert_eq!(count(&sqs, &src).await, moved_slow);
    assert_eq!(count(&sqs, &dlq).await, 4 - moved_slow);
    // --cancel-on-interrupt: Ctrl-C cancels it.
    for i in 0..5 {
        send(&sqs, &dlq, &format!("late {i}"), json!({}), None).await;
    }
    let mut c = slow.to_vec();
    c.push("--cancel-on-interrupt");
    let child = command(&e, &c)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    sigint(&child);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", stdout(&out));

    // Bad input, refused by the server before anything moves.
    send(&sqs, &dlq, r#"{"k": 7}"#, json!({}), None).await;
    let before = count(&sqs, &dlq).await;
    let err = fails(&redrive(
        &e,
        &[
            "replay",
            "orders-dlq",
            "--yes",
            "--to",
            "orders",
            "--filter",
            ".k == 7",
            "--transform",
            ".k",
            "--audit-log",
            log_s,
        ],
    ));
    assert!(err.contains("string"), "{err}");
    let err = fails(&redrive(
        &e,
        &[
            "replay",
            "orders-dlq",
            "--yes",
            "--to",
            "nope",
            "--audit-log",
            log_s,
        ],
    ));
    assert!(err.contains("nope"), "{err}");
    assert_eq!(count(&sqs, &dlq).await, before);
}

#[tokio::test]
async fn schedules_add_list_fire_runs_remove() {
    let server = ServerProcess::start(&["--in-memory"], &[]).await;
    let sqs = server.client();
    let e = server.endpoint();
    let (src, _dlq) = orders(&sqs).await;
    let s = json_of(&redrive(
        &e,
        &[
            "schedule",
            "add",
            "every-minute",
            "--cron",
            "* * * * *",
            "--timezone",
            "Asia/Seoul",
            "--source",
            "orders-dlq",
            "--dead-lettered",
            "last:1h",
            "--filter",
            r#".mall == "a""#,
            "--max-count",
            "4",
            "--rate",
            "50/s",
            "--format",
            "json",
        ],
    ));
    assert_eq!(s["name"], "every-minute");
    assert!(s["nextRunAt"].as_i64().is_some(), "{s}");
    let list = json_of(&redrive(&e, &["schedule", "list", "--format", "json"]));
    assert_eq!(list[0]["cron"], "* * * * *");
    assert_eq!(list[0]["timezone"], "Asia/Seoul");
    let table = ok(&redrive(&e, &["schedule", "list"]));
    assert!(
        table.contains("every-minute") && table.contains("deadLettered last:1h"),
        "{table}"
    );
    let err = fails(&redrive(
        &e,
        &[
            "schedule",
            "add",
            "every-minute",
            "--cron",
            "0 6 * * *",
            "--source",
            "orders-dlq",
        ],
    ));
    assert!(
        err.contains("every-minute") || err.contains("exists"),
        "{err}"
    );
    // The server's clock is the real one here: wait for the next minute (at most ~61 s).
    let deadline = Instant::now() + Duration::from_secs(75);
    let runs = loop {
        let runs = json_of(&redrive(
            &e,
            &["schedule", "runs", "every-minute", "--format", "json"],
        ));
        if runs.as_array().is_some_and(|r| !r.is_empty()) {
            break runs;
        }
        assert!(Instant::now() < deadline, "the schedule did not fire");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(runs[0]["outcome"], "STARTED", "{runs}");
    assert_eq!(runs[0]["selected"], 4);
    let id = runs[0]["replayId"].as_str().unwrap().to_string();
    wait_status(&e, "orders-dlq", &id, &["COMPLETED"]).await;
    let moved = drain(&sqs, &src).await;
    assert_eq!(moved.len(), 4);
    assert!(moved.iter().all(|m| body(m)["mall"] == "a"));
    assert!(ok(&redrive(&e, &["schedule", "runs", "every-minute"])).contains("STARTED"));
    ok(&redrive(&e, &["schedule", "remove", "every-minute"]));
    let list = json_of(&redrive(&e, &["schedule", "list", "--format", "json"]));
    assert_eq!(list, json!([]));
    let err = fails(&redrive(&e, &["schedule", "runs", "every-minute"]));
    assert!(err.contains("404") || err.contains("not"), "{err}");
}

#[tokio::test]
async fn client_side_ctrl_c_stops_cleanly_and_a_rerun_finishes() {
    let server = ServerProcess::start(&["--in-memory"], &[]).await;
    let sqs = server.client();
    let e = server.endpoint();
    let (src, dlq) = pair(&sqs, "intr", false).await;
    for i in 0..12 {
        send(&sqs, &src, &format!("m{i}"), json!({}), None).await;
    }
    dead_letter_all(&sqs, &src, &dlq, 12).await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("a.ndjson");
    let log_s = log.to_str().unwrap();
    let args = [
        "replay",
        "intr-dlq",
        "--client-side",
        "--yes",
        "--rate",
        "4/s",
        "--format",
        "json",
        "--audit-log",
        log_s,
    ];
    let child = command(&e, &args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while count(&sqs, &src).await < 3 {
        assert!(Instant::now() < deadline, "the replay did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    sigint(&child);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", stdout(&out));
    let s: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(s["outcome"], "interrupted");
    let moved = s["moved"].as_u64().unwrap();
    assert!((3..12).contains(&moved), "{s}");
    assert_eq!(s["remaining"].as_u64().unwrap(), 12 - moved);
    // Released at once (not after the visibility timeout), and the end is journaled.
    assert_eq!(
        sqs.attr(&dlq, "ApproximateNumberOfMessages").await,
        (12 - moved).to_string()
    );
    assert_eq!(audit(&log).last().unwrap()["outcome"], "interrupted");
    // A rerun takes the rest; every message exactly once.
    let s = json_of(&redrive(&e, &args));
    assert_eq!(s["moved"].as_u64().unwrap(), 12 - moved);
    let mut bodies: Vec<String> = drain(&sqs, &src)
        .await
        .iter()
        .map(|m| m["Body"].as_str().unwrap().to_string())
        .collect();
    bodies.sort();
    let mut want: Vec<String> = (0..12).map(|i| format!("m{i}")).collect();
    want.sort();
    assert_eq!(bodies, want);
    assert_eq!(count(&sqs, &dlq).await, 0);
}

#[tokio::test]
async fn breaker_trips_server_side() {
    let server = ServerProcess::start(&["--in-memory"], &[]).await;
    let sqs = server.client();
    let e = server.endpoint();
    let (src, dlq) = pair(&sqs, "flaky", false).await;
    for i in 0..40 {
        send(&sqs, &src, &format!("job {i}"), json!({}), None).await;
    }
    dead_letter_all(&sqs, &src, &dlq, 40).await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let consumer = {
        let (sqs, src, stop) = (sqs.clone(), src.clone(), stop.clone());
        tokio::spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = sqs.receive(&src, 10, 1, 1).await;
            }
        })
    };
    let dir = tempfile::tempdir().unwrap();
    let log_s = dir.path().join("a.ndjson").to_str().unwrap().to_string();
    let out = tokio::task::spawn_blocking(move || {
        redrive(
            &e,
            &[
                "replay",
                "flaky-dlq",
                "--yes",
                "--format",
                "json",
                "--rate",
                "5/s",
                "--breaker",
                "20%/60s/5",
                "--audit-log",
                &log_s,
            ],
        )
    })
    .await
    .unwrap();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    consumer.await.unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", stdout(&out));
    let s: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(
        (&s["path"], &s["outcome"]),
        (&json!("server"), &json!("tripped"))
    );
    assert!(s["moved"].as_u64().unwrap() < 40, "{s}");
}

#[tokio::test]
async fn move_ctrl_c_detaches_or_cancels_without_a_terminal() {
    let server = ServerProcess::start(&["--in-memory"], &[]).await;
    let sqs = server.client();
    let e = server.endpoint();
    let (_src, _dlq) = orders(&sqs).await;
    sqs.create_queue("elsewhere", json!({})).await;
    let args = [
        "move",
        "orders-dlq",
        "--to",
        "elsewhere",
        "--rate",
        "1",
        "--format",
        "json",
    ];
    let child = command(&e, &args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    sigint(&child);
    let out = child.wait_with_output().unwrap();
    let r: Value = serde_json::from_str(&ok(&out)).unwrap();
    assert_eq!(r["outcome"], "detached");
    assert!(String::from_utf8_lossy(&out.stderr).contains("keeps running"));
    let list = json_of(&redrive(
        &e,
        &["move", "orders-dlq", "--list", "--format", "json"],
    ));
    assert_eq!(list[0]["status"], "RUNNING");
    ok(&redrive(&e, &["move", "orders-dlq", "--cancel"]));
    let deadline = Instant::now() + Duration::from_secs(10);
    while json_of(&redrive(
        &e,
        &["move", "orders-dlq", "--list", "--format", "json"],
    ))[0]["status"]
        != "CANCELLED"
    {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // --cancel-on-interrupt: Ctrl-C cancels and waits for the end.
    let mut c = args.to_vec();
    c.push("--cancel-on-interrupt");
    let child = command(&e, &c)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    sigint(&child);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", stdout(&out));
    let r: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(r["task"]["status"], "CANCELLED");
}
