//! The investigation commands (`status`, `peek`, `stats`, `export`, `import`) run as a child
//! process against a `redrive serve` child loaded with a synthetic incident like the seed's:
//! two malls, a burst of `points_updated` for one mall, a few other commands, two non-JSON
//! bodies, all dead-lettered through a RedrivePolicy with maxReceiveCount 1.

use std::process::{Command, Output};

use serde_json::{Value, json};

use crate::harness::{ServerProcess, Sqs};

const BURST: usize = 30;

/// Runs `redrive ARGS --endpoint-url ENDPOINT` with no AWS settings from the environment.
fn redrive(endpoint: &str, args: &[&str]) -> Output {
    let mut all = args.to_vec();
    all.extend(["--endpoint-url", endpoint]);
    redrive_env(&all, &[])
}

/// Runs `redrive ARGS` with no AWS settings from the environment but `envs`.
fn redrive_env(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_redrive"));
    cmd.args(args);
    for (k, _) in std::env::vars() {
        if k.starts_with("AWS_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/nonexistent")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
        .env("AWS_REGION", "us-east-1");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.output().expect("run redrive")
}

/// CSV output parsed (RFC 4180) into its header and rows.
fn csv_of(out: &Output) -> (Vec<String>, Vec<Vec<String>>) {
    let text = ok(out);
    let mut records = redrive_cli::util::parse_csv(&text)
        .expect("CSV output")
        .into_iter()
        .map(|(_, r)| r);
    let header = records.next().expect("a header row");
    let rows: Vec<Vec<String>> = records.collect();
    for r in &rows {
        assert_eq!(r.len(), header.len(), "{text}");
    }
    (header, rows)
}

/// NDJSON output parsed line by line.
fn ndjson_of(out: &Output) -> Vec<Value> {
    ok(out)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect()
}

/// (visible, in flight) of a queue.
async fn counts(sqs: &Sqs, url: &str) -> (String, String) {
    (
        sqs.attr(url, "ApproximateNumberOfMessages").await,
        sqs.attr(url, "ApproximateNumberOfMessagesNotVisible").await,
    )
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "redrive failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn json_of(out: &Output) -> Value {
    serde_json::from_str(&ok(out)).expect("JSON output")
}

/// A failing run: exit status 1 (2 is for flag errors) and exactly one line on stderr.
fn fails(out: &Output) -> String {
    assert!(!out.status.success(), "expected failure, got success");
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
    assert_eq!(err.lines().count(), 1, "one line expected: {err}");
    err
}

async fn send(sqs: &Sqs, url: &str, body: &str, mall: &str) {
    sqs.call(
        "SendMessage",
        json!({"QueueUrl": url, "MessageBody": body,
               "MessageAttributes": {"mall": {"DataType": "String", "StringValue": mall}}}),
    )
    .await
    .expect("send");
}

/// Loads the incident; returns (source url, dlq url, total messages).
async fn incident(sqs: &Sqs) -> (String, String, usize) {
    let dlq = sqs.create_queue("cafe24-worker-queue-dlq", json!({})).await;
    let dlq_arn = sqs.attr(&dlq, "QueueArn").await;
    let policy = json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 1}).to_string();
    let src = sqs
        .create_queue("cafe24-worker-queue", json!({"RedrivePolicy": policy}))
        .await;
    for i in 0..BURST {
        let body = json!({"mall_id": "drlabnosh", "command": "points_updated",
                          "params": {"case_text": "order", "member_id": i}});
        send(sqs, &src, &body.to_string(), "drlabnosh").await;
    }
    for (mall, command) in [
        ("chosunhnb", "points_updated"),
        ("chosunhnb", "points_updated"),
        ("chosunhnb", "order_created"),
        ("drlabnosh", "customer_updated"),
    ] {
        let body = json!({"mall_id": mall, "command": command, "params": {}});
        send(sqs, &src, &body.to_string(), mall).await;
    }
    send(sqs, &src, "upstream timeout: 429", "none").await;
    send(sqs, &src, "<html>oops</html>", "none").await;
    let total = BURST + 6;
    // Receive with no visibility timeout until everything moved: the first receive counts 1,
    // the next one moves the message to the DLQ.
    for _ in 0..100 {
        sqs.receive(&src, 10, 0, 0).await.expect("receive");
        if sqs.attr(&dlq, "ApproximateNumberOfMessages").await == total.to_string() {
            return (src, dlq, total);
        }
    }
    panic!("messages were not dead-lettered");
}

#[tokio::test]
async fn investigation_of_a_dead_letter_incident() {
    let server = ServerProcess::start(&["--in-memory"], &[]).await;
    let sqs = server.client();
    let e = server.endpoint();
    let (_src, dlq, total) = incident(&sqs).await;

    // status, from the source queue: finds the DLQ, reads fresh dead letters as growth.
    let st = json_of(&redrive(
        &e,
        &["status", "cafe24-worker-queue", "--format", "json"],
    ));
    let queues = st["queues"].as_array().unwrap();
    assert_eq!(queues.len(), 2);
    assert_eq!(queues[0]["name"], "cafe24-worker-queue");
    assert_eq!(queues[0]["role"], "source");
    assert_eq!(queues[0]["maxReceiveCount"], 1);
    assert_eq!(queues[0]["visible"], 0);
    assert_eq!(queues[1]["name"], "cafe24-worker-queue-dlq");
    assert_eq!(queues[1]["role"], "dlq");
    assert_eq!(queues[1]["visible"], total);
    assert_eq!(st["reading"]["verdict"], "active-growth");
    // The same DLQ with a zero "recent" window reads as old residue; given the DLQ, the
    // sources are found.
    let st = json_of(&redrive(
        &e,
        &["status", &dlq, "--recent", "0s", "--format", "json"],
    ));
    assert_eq!(st["queues"][0]["name"], "cafe24-worker-queue");
    assert_eq!(st["reading"]["verdict"], "old-residue");
    let table = ok(&redrive(
        &e,
        &["status", "cafe24-worker-queue-dlq", "--recent", "0s"],
    ));
    assert!(table.contains("old residue"), "{table}");
    assert!(table.contains("the source queue is empty"), "{table}");
    assert!(
        table.contains("cafe24-worker-queue (maxReceiveCount 1)")
            || table.contains("dlq / sources"),
        "{table}"
    );

    // stats: groups, pairs, receive counts, non-JSON bodies, burst.
    let stats_args = [
        "stats",
        "cafe24-worker-queue-dlq",
        "--group-by",
        ".mall_id",
        "--group-by",
        ".command",
        "--bucket",
        "dead-lettered:hour",
        "--format",
        "json",
    ];
    let before = json_of(&redrive(&e, &stats_args));
    assert_eq!(before["scanned"], total);
    assert_eq!(before["complete"], true);
    assert_eq!(before["nonDestructive"], true);
    assert_eq!(before["nonJson"], 2);
    assert_eq!(
        before["groups"][0]["counts"],
        json!([{"key": "drlabnosh", "count": BURST + 1}, {"key": "chosunhnb", "count": 3}])
    );
    assert_eq!(
        before["groups"][1]["counts"],
        json!([{"key": "points_updated", "count": BURST + 2},
               {"key": "customer_updated", "count": 1},
               {"key": "order_created", "count": 1}])
    );
    assert_eq!(
        before["pairs"]["counts"][0],
        json!({"keys": ["drlabnosh", "points_updated"], "count": BURST})
    );
    assert_eq!(
        before["pairs"]["counts"][1],
        json!({"keys": ["chosunhnb", "points_updated"], "count": 2})
    );
    assert_eq!(before["pairs"]["distinct"], 4);
    let burst = &before["burst"];
    let share = burst["share"].as_f64().unwrap();
    // Everything was sent within seconds: at least half of it in the dominant minute.
    assert!(share >= 0.5, "{burst}");
    assert!(
        (share - burst["count"].as_f64().unwrap() / total as f64).abs() < 1e-9,
        "{burst}"
    );
    assert!(burst["first"].as_str().unwrap() <= burst["last"].as_str().unwrap());
    let bucket_total: u64 = before["buckets"]["counts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["count"].as_u64().unwrap())
        .sum();
    assert_eq!(bucket_total, total as u64);

    // `$meta` and the table output.
    let meta = json_of(&redrive(
        &e,
        &[
            "stats",
            "cafe24-worker-queue-dlq",
            "--group-by",
            "$meta.messageAttributes.mall.StringValue",
            "--format",
            "json",
        ],
    ));
    assert_eq!(
        meta["groups"][0]["counts"][0],
        json!({"key": "drlabnosh", "count": BURST + 1})
    );
    let table = ok(&redrive(
        &e,
        &[
            "stats",
            "cafe24-worker-queue-dlq",
            "--group-by",
            ".mall_id",
            "--group-by",
            ".command",
        ],
    ));
    assert!(
        table.contains(&format!("{} messages scanned, 2 non-JSON bodies", total)),
        "{table}"
    );
    assert!(
        table.contains("by .mall_id × .command (4 distinct)"),
        "{table}"
    );
    assert!(
        table
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>()
                == ["drlabnosh", "points_updated", &BURST.to_string(), "83.3%"]),
        "{table}"
    );
    // A bounded scan says it is incomplete.
    let part = redrive(
        &e,
        &[
            "stats",
            "cafe24-worker-queue-dlq",
            "--limit",
            "5",
            "--format",
            "json",
        ],
    );
    let pv = json_of(&part);
    assert_eq!(pv["scanned"], 5);
    assert_eq!(pv["complete"], false);
    assert!(String::from_utf8_lossy(&part.stderr).contains("incomplete"));

    // --enrich joins the mall with its project, and `report` writes the summary.
    let dir = tempfile::tempdir().unwrap();
    let mapping = dir.path().join("malls.csv");
    std::fs::write(
        &mapping,
        "mall_id,project_id,product\ndrlabnosh,p-101,\"Loyalty, Pro\"\nchosunhnb,p-202,Basic\n",
    )
    .unwrap();
    let mapping_s = mapping.to_str().unwrap();
    let enriched = json_of(&redrive(
        &e,
        &[
            "stats",
            "cafe24-worker-queue-dlq",
            "--group-by",
            ".mall_id",
            "--group-by",
            ".command",
            "--enrich",
            mapping_s,
            "--format",
            "json",
        ],
    ));
    assert_eq!(
        enriched["groups"][0]["counts"][0]["enrich"],
        json!({"project_id": "p-101", "product": "Loyalty, Pro"})
    );
    assert_eq!(
        enriched["pairs"]["counts"][1]["enrich"]["project_id"],
        "p-202"
    );
    let md = ok(&redrive(
        &e,
        &[
            "report",
            "cafe24-worker-queue",
            "--group-by",
            ".mall_id",
            "--group-by",
            ".command",
            "--enrich",
            mapping_s,
        ],
    ));
    assert!(
        md.starts_with("# DLQ report: cafe24-worker-queue-dlq\n"),
        "{md}"
    );
    assert!(
        md.contains(&format!(
            "- **Total:** {total} messages, read without receiving"
        )),
        "{md}"
    );
    assert!(
        md.contains(&format!(
            "| drlabnosh | p-101 | Loyalty, Pro | {} | 86.1% |",
            BURST + 1
        )),
        "{md}"
    );
    assert!(
        md.contains(&format!(
            "| drlabnosh × points_updated | p-101 | Loyalty, Pro | {BURST} | 83.3% |"
        )),
        "{md}"
    );
    assert!(
        md.contains(&format!("- Receive counts: {total} × received 1 times")),
        "{md}"
    );
    assert!(md.contains("retries ran and were exhausted"), "{md}");
    assert!(md.contains("the DLQ is still growing"), "{md}");
    assert!(md.contains("2 bodies are not JSON"), "{md}");
    let rj = json_of(&redrive(
        &e,
        &[
            "report",
            "cafe24-worker-queue-dlq",
            "--recent",
            "0s",
            "--group-by",
            ".mall_id",
            "--format",
            "json",
        ],
    ));
    assert_eq!(rj["queue"], "cafe24-worker-queue-dlq");
    assert_eq!(rj["status"]["reading"]["verdict"], "old-residue");
    assert_eq!(rj["stats"]["total"], total);
    assert!(
        rj["nextSteps"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s.as_str().unwrap().contains("redrive the residue"))
    );

    // peek: bodies and attributes, and no receive count touched.
    let peeked = json_of(&redrive(
        &e,
        &[
            "peek",
            "cafe24-worker-queue-dlq",
            "-n",
            "2",
            "--format",
            "json",
        ],
    ));
    assert_eq!(peeked.as_array().unwrap().len(), 2);
    assert_eq!(
        peeked[0]["messageAttributes"]["mall"]["StringValue"],
        "drlabnosh"
    );
    assert!(
        peeked[0]["body"]
            .as_str()
            .unwrap()
            .contains("points_updated")
    );
    assert!(peeked[0]["deadLetteredAt"].is_i64());
    let peek_table = ok(&redrive(&e, &["peek", "cafe24-worker-queue-dlq"]));
    assert!(peek_table.contains("msgattr mall"), "{peek_table}");
    let after = json_of(&redrive(&e, &stats_args));
    assert_eq!(before["receiveCounts"], after["receiveCounts"]);
    assert_eq!(
        sqs.attr(&dlq, "ApproximateNumberOfMessages").await,
        total.to_string()
    );
    assert_eq!(
        sqs.attr(&dlq, "ApproximateNumberOfMessagesNotVisible")
            .await,
        "0"
    );

    // export → import round trip, nothing deleted from the DLQ.
    let file = dir.path().join("dlq.ndjson");
    let file_s = file.to_str().unwrap();
    ok(&redrive(
        &e,
        &["export", "cafe24-worker-queue-dlq", "--to", file_s],
    ));
    let lines = std::fs::read_to_string(&file).unwrap();
    assert_eq!(lines.lines().count(), total);
    assert_eq!(
        sqs.attr(&dlq, "ApproximateNumberOfMessages").await,
        total.to_string()
    );
    let replay = sqs.create_queue("replay", json!({})).await;
    ok(&redrive(&e, &["import", file_s, "--to", "replay"]));
    assert_eq!(
        sqs.attr(&replay, "ApproximateNumberOfMessages").await,
        total.to_string()
    );
    let replayed = json_of(&redrive(
        &e,
        &[
            "stats",
            &replay,
            "--group-by",
            ".mall_id",
            "--group-by",
            "$meta.messageAttributes.mall.StringValue",
            "--format",
            "json",
        ],
    ));
    assert_eq!(
        replayed["groups"][0]["counts"],
        before["groups"][0]["counts"]
    );
    assert_eq!(
        replayed["groups"][1]["counts"][0],
        json!({"key": "drlabnosh", "count": BURST + 1})
    );
    assert_eq!(replayed["nonJson"], 2);
}

#[tokio::test]
async fn fifo_export_import_keeps_group_ids() {
    let server = ServerProcess::start(&["--in-memory"], &[]).await;
    let sqs = server.client();
    let e = server.endpoint();
    let attrs = json!({"FifoQueue": "true", "ContentBasedDeduplication": "true"});
    let src = sqs.create_queue("orders.fifo", attrs.clone()).await;
    sqs.create_queue("orders-copy.fifo", attrs).await;
    for (i, g) in ["mall-a", "mall-a", "mall-b"].iter().enumerate() {
        sqs.call(
            "SendMessage",
            json!({"QueueUrl": src, "MessageBody": format!("{{\"n\":{i}}}"), "MessageGroupId": g}),
        )
        .await
        .expect("send");
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("orders.ndjson");
    let file_s = file.to_str().unwrap();
    ok(&redrive(&e, &["export", "orders.fifo", "--to", file_s]));
    ok(&redrive(
        &e,
        &["import", file_s, "--to", "orders-copy.fifo"],
    ));
    let copy = json_of(&redrive(
        &e,
        &[
            "stats",
            "orders-copy.fifo",
            "--group-by",
            "$meta.groupId",
            "--format",
            "json",
        ],
    ));
    assert_eq!(
        copy["groups"][0]["counts"],
        json!([{"key": "mall-a", "count": 2}, {"key": "mall-b", "count": 1}])
    );
}

#[tokio::test]
async fn bad_input_gives_one_line_and_a_failure_exit() {
    let server = ServerProcess::start(&["--in-memory"], &[]).await;
    let sqs = server.client();
    let e = server.endpoint();
    let url = sqs.create_queue("q", json!({})).await;
    sqs.call(
        "SendMessage",
        json!({"QueueUrl": url, "MessageBody": "{\"mall_id\":\"m\"}"}),
    )
    .await
    .expect("send");
    let before = counts(&sqs, &url).await;

    let err = fails(&redrive(&e, &["status", "no-such-queue"]));
    assert!(
        err.contains("queue `no-such-queue` does not exist"),
        "{err}"
    );
    let err = fails(&redrive(&e, &["peek", "no-such-queue"]));
    assert!(err.contains("does not exist"), "{err}");
    let err = fails(&redrive(&e, &["stats", "q", "--group-by", ".mall_id |"]));
    assert!(err.contains("invalid jq expression `.mall_id |`"), "{err}");
    let err = fails(&redrive(&e, &["stats", "q", "--bucket", "sent:week"]));
    assert!(err.contains("--bucket"), "{err}");
    let dead = format!("http://127.0.0.1:{}/", crate::harness::free_port());
    let err = fails(&redrive(&dead, &["status", "q"]));
    assert!(err.contains("cannot reach the SQS endpoint"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.ndjson");
    std::fs::write(&file, "{\"messageId\":\"1\",\"body\":\"ok\"}\nnot json\n").unwrap();
    let err = fails(&redrive(
        &e,
        &["import", file.to_str().unwrap(), "--to", "q"],
    ));
    assert!(err.contains("bad.ndjson:2: not a message line"), "{err}");
    let err = fails(&redrive(
        &e,
        &["import", "/nonexistent.ndjson", "--to", "q"],
    ));
    assert!(err.contains("cannot open"), "{err}");
    // Nothing was sent by the failed import, nothing received or deleted by the rest.
    assert_eq!(counts(&sqs, &url).await, before);
    assert_eq!(before, ("1".to_string(), "0".to_string()));
}

#[tokio::test]
async fn ndjson_and_csv_output_formats() {
    let server = ServerProcess::start(&["--in-memory"], &[]).await;
    let sqs = server.client();
    let e = server.endpoint();
    let (_src, dlq, total) = incident(&sqs).await;
    let before = counts(&sqs, &dlq).await;

    // status: one line / row per queue.
    let lines = ndjson_of(&redrive(
        &e,
        &["status", "cafe24-worker-queue", "--format", "ndjson"],
    ));
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["queue"], "cafe24-worker-queue");
    assert_eq!(lines[0]["role"], "source");
    assert_eq!(lines[0]["deadLetterQueue"], "cafe24-worker-queue-dlq");
    assert_eq!(lines[0]["maxReceiveCount"], 1);
    assert_eq!(lines[1]["queue"], "cafe24-worker-queue-dlq");
    assert_eq!(lines[1]["visible"], total);
    assert_eq!(lines[1]["deadLetterSources"], "cafe24-worker-queue");
    assert_eq!(lines[1]["verdict"], "active-growth");
    let (header, rows) = csv_of(&redrive(
        &e,
        &["status", "cafe24-worker-queue-dlq", "--format", "csv"],
    ));
    assert_eq!(
        header,
        [
            "queue",
            "url",
            "role",
            "visible",
            "inFlight",
            "delayed",
            "oldestAgeSecs",
            "deadLetterQueue",
            "maxReceiveCount",
            "deadLetterSources",
            "verdict"
        ]
    );
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1][0], "cafe24-worker-queue-dlq");
    assert_eq!(rows[1][2], "dlq");
    assert_eq!(rows[1][3], total.to_string());

    // peek: one message per line; CSV in the export's columns.
    let lines = ndjson_of(&redrive(
        &e,
        &[
            "peek",
            "cafe24-worker-queue-dlq",
            "-n",
            "3",
            "--format",
            "ndjson",
        ],
    ));
    assert_eq!(lines.len(), 3);
    assert_eq!(
        lines[0]["messageAttributes"]["mall"]["StringValue"],
        "drlabnosh"
    );
    assert!(
        lines[2]["body"]
            .as_str()
            .unwrap()
            .contains("points_updated")
    );
    let (header, rows) = csv_of(&redrive(
        &e,
        &[
            "peek",
            "cafe24-worker-queue-dlq",
            "-n",
            "2",
            "--format",
            "csv",
        ],
    ));
    assert_eq!(header[..3], ["messageId", "body", "sentTimestamp"]);
    assert_eq!(header.len(), 10);
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0][0], lines[0]["messageId"].as_str().unwrap());
    assert_eq!(rows[0][1], lines[0]["body"].as_str().unwrap());
    let attrs: Value = serde_json::from_str(&rows[0][8]).unwrap();
    assert_eq!(attrs["mall"]["StringValue"], "drlabnosh");

    // stats: one line per table row, with the table it belongs to.
    let stats = [
        "stats",
        "cafe24-worker-queue-dlq",
        "--group-by",
        ".mall_id",
        "--group-by",
        ".command",
    ];
    let mut args = stats.to_vec();
    args.extend(["--format", "ndjson"]);
    let lines = ndjson_of(&redrive(&e, &args));
    let by_mall: Vec<&Value> = lines
        .iter()
        .filter(|l| l["table"] == "group:.mall_id")
        .collect();
    assert_eq!(by_mall.len(), 2);
    assert_eq!(by_mall[0]["key"], "drlabnosh");
    assert_eq!(by_mall[0]["count"], BURST + 1);
    let share = by_mall[0]["share"].as_f64().unwrap();
    assert!(
        (share - (BURST + 1) as f64 / total as f64).abs() < 1e-4,
        "{share}"
    );
    let pair = lines
        .iter()
        .find(|l| l["table"] == "pair:.mall_id × .command")
        .unwrap();
    assert_eq!(
        (&pair["key"], &pair["key2"], &pair["count"]),
        (&json!("drlabnosh"), &json!("points_updated"), &json!(BURST))
    );
    assert_eq!(lines[0]["table"], "burst");
    assert!(
        lines
            .iter()
            .any(|l| l["table"] == "receiveCount" && l["key"] == "1" && l["count"] == total)
    );
    let mut args = stats.to_vec();
    args.extend(["--format", "csv"]);
    let (header, rows) = csv_of(&redrive(&e, &args));
    assert_eq!(header[..5], ["table", "key", "key2", "count", "share"]);
    assert_eq!(rows.len(), lines.len());
    assert!(
        rows.iter()
            .any(|r| r[..4] == ["group:.mall_id", "drlabnosh", "", &(BURST + 1).to_string()]),
        "{rows:?}"
    );
    assert!(
        rows.iter().any(|r| r[..4]
            == [
                "pair:.mall_id × .command",
                "drlabnosh",
                "points_updated",
                &BURST.to_string()
            ]),
        "{rows:?}"
    );
    // Piped stderr never carries the progress bar.
    let out = redrive(&e, &args);
    assert!(String::from_utf8_lossy(&out.stderr).trim().is_empty());

    // An unknown format names all four.
    let out = redrive(&e, &["stats", "cafe24-worker-queue-dlq", "--format", "xml"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("unknown format `xml` (table, json, ndjson or csv)"),
        "{err}"
    );
    assert_eq!(counts(&sqs, &dlq).await, before);
}

#[tokio::test]
async fn csv_export_import_round_trip() {
    let server = ServerProcess::start(&["--in-memory"], &[]).await;
    let sqs = server.client();
    let e = server.endpoint();
    let (_src, dlq, total) = incident(&sqs).await;

    // The incident's DLQ out to CSV and into another queue: same composition and attributes.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dlq.csv");
    let file_s = file.to_str().unwrap();
    let out = redrive(&e, &["export", "cafe24-worker-queue-dlq", "--to", file_s]);
    ok(&out);
    assert!(String::from_utf8_lossy(&out.stderr).contains(&format!("exported {total} messages")));
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.starts_with(
        "messageId,body,sentTimestamp,receiveCount,deadLetteredAt,deadLetterQueueSourceArn,\
         messageGroupId,messageDeduplicationId,messageAttributes,attributes\r\n"
    ));
    let records = redrive_cli::util::parse_csv(&text).unwrap();
    assert_eq!(records.len(), total + 1);
    assert_eq!(counts(&sqs, &dlq).await, (total.to_string(), "0".into()));
    let copy = sqs.create_queue("replay-csv", json!({})).await;
    ok(&redrive(&e, &["import", file_s, "--to", "replay-csv"]));
    assert_eq!(
        sqs.attr(&copy, "ApproximateNumberOfMessages").await,
        total.to_string()
    );
    let stats = |q: &str| {
        json_of(&redrive(
            &e,
            &[
                "stats",
                q,
                "--group-by",
                ".mall_id",
                "--group-by",
                "$meta.messageAttributes.mall.StringValue",
                "--format",
                "json",
            ],
        ))
    };
    let (a, b) = (stats("cafe24-worker-queue-dlq"), stats("replay-csv"));
    assert_eq!(a["groups"], b["groups"]);
    assert_eq!(b["nonJson"], 2);
    assert_eq!(b["total"], total);

    // FIFO: bodies with commas, quotes and line breaks, every attribute type, group ids.
    let attrs = json!({"FifoQueue": "true", "ContentBasedDeduplication": "true"});
    let src = sqs.create_queue("orders.fifo", attrs.clone()).await;
    sqs.create_queue("orders-copy.fifo", attrs.clone()).await;
    sqs.create_queue("orders-again.fifo", attrs).await;
    let sent = [
        (
            "{\"n\":0,\"note\":\"a, \\\"b\\\"\\nc\"}",
            "mall-a",
            json!({"mall": {"DataType": "String", "StringValue": "a,\"b\""}}),
        ),
        (
            "plain, \"text\"\r\nsecond line",
            "mall-b",
            json!({"n": {"DataType": "Number", "StringValue": "42"},
                   "raw": {"DataType": "Binary", "BinaryValue": "AAEC/w=="}}),
        ),
        ("{\"n\":2}", "mall-a", json!({})),
    ];
    for (body, group, attrs) in &sent {
        sqs.call(
            "SendMessage",
            json!({"QueueUrl": src, "MessageBody": body, "MessageGroupId": group,
                   "MessageAttributes": attrs}),
        )
        .await
        .expect("send");
    }
    let file = dir.path().join("orders.csv");
    let file_s = file.to_str().unwrap();
    ok(&redrive(&e, &["export", "orders.fifo", "--to", file_s]));
    ok(&redrive(
        &e,
        &["import", file_s, "--to", "orders-copy.fifo"],
    ));
    // --format wins over the extension, both ways.
    let txt = dir.path().join("orders.txt");
    std::fs::copy(&file, &txt).unwrap();
    let txt_s = txt.to_str().unwrap();
    let err = fails(&redrive(
        &e,
        &["import", txt_s, "--to", "orders-again.fifo"],
    ));
    assert!(err.contains("orders.txt:1: not a message line"), "{err}");
    ok(&redrive(
        &e,
        &[
            "import",
            txt_s,
            "--format",
            "csv",
            "--to",
            "orders-again.fifo",
        ],
    ));
    let seen = |q: &str| {
        let v = json_of(&redrive(&e, &["peek", q, "-n", "10", "--format", "json"]));
        v.as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["body"].clone(),
                    m["messageGroupId"].clone(),
                    m["messageAttributes"].clone(),
                )
            })
            .collect::<Vec<_>>()
    };
    let original = seen("orders.fifo");
    assert_eq!(original.len(), 3);
    assert_eq!(original[1].0, sent[1].0);
    assert_eq!(original[1].2, sent[1].2);
    assert_eq!(seen("orders-copy.fifo"), original);
    assert_eq!(seen("orders-again.fifo"), original);
    // An NDJSON export of the same queue, chosen with --format.
    let nd = dir.path().join("orders.out");
    ok(&redrive(
        &e,
        &[
            "export",
            "orders.fifo",
            "--to",
            nd.to_str().unwrap(),
            "--format",
            "ndjson",
        ],
    ));
    let first: Value = serde_json::from_str(
        std::fs::read_to_string(&nd)
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(first["messageGroupId"], "mall-a");
}

#[tokio::test]
async fn enrich_with_a_json_array_mapping() {
    let server = ServerProcess::start(&["--in-memory"], &[]).await;
    let sqs = server.client();
    let e = server.endpoint();
    let (_src, dlq, total) = incident(&sqs).await;
    let dir = tempfile::tempdir().unwrap();
    let mapping = dir.path().join("malls.json");
    std::fs::write(
        &mapping,
        r#"[{"mall_id": "drlabnosh", "project_id": "p-101", "product": "Loyalty, Pro"},
            {"product": "Basic", "mall_id": "chosunhnb", "project_id": "p-202"}]"#,
    )
    .unwrap();
    let mapping_s = mapping.to_str().unwrap();
    // The key field defaults to the --group-by key's name (`.mall_id` → mall_id).
    let enriched = json_of(&redrive(
        &e,
        &[
            "stats",
            "cafe24-worker-queue-dlq",
            "--group-by",
            ".mall_id",
            "--enrich",
            mapping_s,
            "--format",
            "json",
        ],
    ));
    assert_eq!(
        enriched["groups"][0]["counts"][0]["enrich"],
        json!({"project_id": "p-101", "product": "Loyalty, Pro"})
    );
    assert_eq!(
        enriched["groups"][0]["counts"][1]["enrich"],
        json!({"project_id": "p-202", "product": "Basic"})
    );
    assert_eq!(enriched["enrichColumns"], json!(["project_id", "product"]));
    // The table shows the columns in the file's order.
    let table = ok(&redrive(
        &e,
        &[
            "stats",
            "cafe24-worker-queue-dlq",
            "--group-by",
            ".mall_id",
            "--enrich",
            mapping_s,
        ],
    ));
    assert!(table.contains(".mall_id   project_id  product"), "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("chosunhnb  p-202       Basic")),
        "{table}"
    );
    // A grouping whose name is not in the file: --enrich-key says which field is the key.
    let by_meta = [
        "stats",
        "cafe24-worker-queue-dlq",
        "--group-by",
        "$meta.messageAttributes.mall.StringValue",
        "--enrich",
        mapping_s,
        "--format",
        "ndjson",
    ];
    let err = fails(&redrive(&e, &by_meta));
    assert_eq!(
        err,
        format!(
            "error: {mapping_s}: row 1: no `StringValue` field (the key field, from --group-by \
             $meta.messageAttributes.mall.StringValue; choose another with --enrich-key)"
        )
    );
    let mut args = by_meta.to_vec();
    args.extend(["--enrich-key", "mall_id"]);
    let lines = ndjson_of(&redrive(&e, &args));
    let first = lines.iter().find(|l| l["table"] != "burst").unwrap();
    assert_eq!(
        first,
        &json!({"table": "group:$meta.messageAttributes.mall.StringValue", "key": "drlabnosh",
                "project_id": "p-101", "product": "Loyalty, Pro", "count": BURST + 1,
                "share": ((BURST + 1) as f64 / total as f64 * 10_000.0).round() / 10_000.0})
    );

    // Bad rows: one line naming the row, exit 1, nothing touched.
    let before = counts(&sqs, &dlq).await;
    let bad = dir.path().join("bad.json");
    for (text, want) in [
        (
            r#"[{"mall_id": "a"}, ["b"]]"#,
            "row 2: expected an object, found an array",
        ),
        (
            r#"[{"mall_id": "a"}, {"mall_id": "b"}, {"project_id": "p"}]"#,
            "row 3: no `mall_id` field",
        ),
        (
            r#"[{"mall_id": null}]"#,
            "row 1: the key field `mall_id` is not a string",
        ),
    ] {
        std::fs::write(&bad, text).unwrap();
        let out = redrive(
            &e,
            &[
                "stats",
                "cafe24-worker-queue-dlq",
                "--group-by",
                ".mall_id",
                "--enrich",
                bad.to_str().unwrap(),
            ],
        );
        assert_eq!(out.status.code(), Some(1));
        let err = fails(&out);
        assert!(err.contains(&format!("bad.json: {want}")), "{err}");
    }
    assert_eq!(counts(&sqs, &dlq).await, before);
}

#[tokio::test]
async fn more_bad_input_gives_one_line_and_a_failure_exit() {
    let server = ServerProcess::start(&["--in-memory"], &[]).await;
    let sqs = server.client();
    let e = server.endpoint();
    let url = sqs.create_queue("q", json!({})).await;
    for i in 0..3 {
        sqs.call(
            "SendMessage",
            json!({"QueueUrl": url, "MessageBody": format!("{{\"mall_id\":\"m{i}\"}}")}),
        )
        .await
        .expect("send");
    }
    sqs.call(
        "SendMessage",
        json!({"QueueUrl": url, "MessageBody": "not json at all"}),
    )
    .await
    .expect("send");
    let before = counts(&sqs, &url).await;
    assert_eq!(before, ("4".to_string(), "0".to_string()));
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config");
    let credentials = dir.path().join("credentials");
    std::fs::write(&config, "[profile other]\nregion = us-east-1\n").unwrap();
    std::fs::write(
        &credentials,
        "[other]\naws_access_key_id = AKIDEXAMPLE\naws_secret_access_key = wrong\n",
    )
    .unwrap();
    let files = [
        ("AWS_CONFIG_FILE", config.to_str().unwrap()),
        ("AWS_SHARED_CREDENTIALS_FILE", credentials.to_str().unwrap()),
    ];

    // An unknown profile, by flag or by AWS_PROFILE, with or without an endpoint.
    let want = "profile `nosuch` (--profile) is not defined in the AWS config files \
                (AWS_CONFIG_FILE / AWS_SHARED_CREDENTIALS_FILE); known profiles: other";
    for args in [
        vec!["stats", "q", "--profile", "nosuch", "--endpoint-url", &e],
        vec!["export", "q", "--to", "-", "--profile", "nosuch"],
    ] {
        let out = redrive_env(&args, &files);
        assert_eq!(out.status.code(), Some(1));
        assert_eq!(fails(&out), format!("error: {want}"));
    }
    let out = redrive_env(
        &["peek", "q", "--endpoint-url", &e],
        &[files[0], files[1], ("AWS_PROFILE", "nosuch")],
    );
    let err = fails(&out);
    assert!(
        err.contains("profile `nosuch` (AWS_PROFILE) is not defined"),
        "{err}"
    );
    // A known profile works against a local server (which does not check signatures).
    let out = redrive_env(
        &[
            "peek",
            "q",
            "-n",
            "1",
            "--profile",
            "other",
            "--endpoint-url",
            &e,
        ],
        &files,
    );
    ok(&out);
    // No endpoint and no credentials anywhere: the clear error, before any request.
    let out = redrive_env(&["status", "q"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        fails(&out),
        "error: no AWS credentials found (set AWS_PROFILE / AWS_ACCESS_KEY_ID, or use \
         --endpoint-url for a local server)"
    );

    // Mapping files with bad rows (CSV) and --enrich-key without --enrich.
    let csv = dir.path().join("malls.csv");
    std::fs::write(&csv, "mall_id,project_id\nm0,p-0\nm1\n").unwrap();
    let err = fails(&redrive(
        &e,
        &[
            "stats",
            "q",
            "--group-by",
            ".mall_id",
            "--enrich",
            csv.to_str().unwrap(),
        ],
    ));
    assert!(
        err.ends_with("malls.csv:3: expected 2 columns, found 1"),
        "{err}"
    );
    let err = fails(&redrive(
        &e,
        &[
            "stats",
            "q",
            "--group-by",
            ".mall_id",
            "--enrich-key",
            "mall_id",
        ],
    ));
    assert!(
        err.contains("--enrich-key names the key of an --enrich file"),
        "{err}"
    );
    let err = fails(&redrive(
        &e,
        &["report", "q", "--enrich", csv.to_str().unwrap()],
    ));
    assert!(err.contains("malls.csv:3"), "{err}");

    // A CSV import with a bad row sends nothing.
    let copy = sqs.create_queue("copy", json!({})).await;
    let bad = dir.path().join("bad.csv");
    std::fs::write(
        &bad,
        "messageId,body,messageAttributes\n1,ok,{}\n2,\"two\nlines\",\"{\"\"mall\"\": 1\"\n",
    )
    .unwrap();
    let err = fails(&redrive(
        &e,
        &["import", bad.to_str().unwrap(), "--to", "copy"],
    ));
    assert!(
        err.contains("bad.csv:3: messageAttributes is not a JSON object"),
        "{err}"
    );
    let err = fails(&redrive(
        &e,
        &["import", bad.to_str().unwrap(), "--to", "no-such-queue"],
    ));
    assert!(err.contains("bad.csv:3"), "{err}");
    assert_eq!(counts(&sqs, &copy).await, ("0".into(), "0".into()));
    // Importing into an unknown queue: the file is fine, the queue is not.
    let good = dir.path().join("good.csv");
    std::fs::write(&good, "messageId,body\n1,ok\n").unwrap();
    let err = fails(&redrive(
        &e,
        &["import", good.to_str().unwrap(), "--to", "no-such-queue"],
    ));
    assert!(
        err.contains("queue `no-such-queue` does not exist"),
        "{err}"
    );
    // Exporting an unknown queue creates no file.
    let none = dir.path().join("none.csv");
    let err = fails(&redrive(
        &e,
        &["export", "no-such-queue", "--to", none.to_str().unwrap()],
    ));
    assert!(err.contains("does not exist"), "{err}");
    assert!(!none.exists());

    // A body that is not JSON is counted, not an error, in every format.
    let v = json_of(&redrive(
        &e,
        &["stats", "q", "--group-by", ".mall_id", "--format", "json"],
    ));
    assert_eq!(v["nonJson"], 1);
    assert_eq!(v["total"], 4);
    let lines = ndjson_of(&redrive(
        &e,
        &["peek", "q", "-n", "10", "--format", "ndjson"],
    ));
    assert_eq!(lines.len(), 4);
    // Invalid jq through the ndjson path too.
    let err = fails(&redrive(
        &e,
        &["stats", "q", "--group-by", ".[", "--format", "csv"],
    ));
    assert!(err.contains("invalid jq expression"), "{err}");
    // Nothing was deleted or moved by any of it.
    assert_eq!(counts(&sqs, &url).await, before);
}

/// `moto_server` as a second SQS implementation without the browse API (skipped, with a
/// note, when it is not installed: `pip install 'moto[server]'`).
struct Moto {
    child: std::process::Child,
    endpoint: String,
}

impl Moto {
    async fn start() -> Option<Moto> {
        let port = crate::harness::free_port();
        let child = Command::new("moto_server")
            .args(["-p", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
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
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
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
async fn receive_fallback_against_moto() {
    let moto = Moto::start().await.expect("moto_server is not on PATH: the moto tests run only in `cargo nextest run --profile moto` (.ci/run installs it)");
    let e = moto.endpoint.clone();
    let sqs = Sqs::with_scope(&e, "us-east-1");
    let dlq = sqs.create_queue("cafe24-worker-queue-dlq", json!({})).await;
    let dlq_arn = sqs.attr(&dlq, "QueueArn").await;
    let policy = json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 1}).to_string();
    sqs.create_queue("cafe24-worker-queue", json!({"RedrivePolicy": policy}))
        .await;
    // Load the DLQ through `redrive import`.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("incident.ndjson");
    let mut lines = String::new();
    for i in 0..BURST + 4 {
        let (mall, command) = match i {
            i if i < BURST => ("drlabnosh", "points_updated"),
            i if i < BURST + 3 => ("chosunhnb", "order_created"),
            _ => ("none", ""),
        };
        let body = if mall == "none" {
            "not json".to_string()
        } else {
            json!({"mall_id": mall, "command": command}).to_string()
        };
        let line = json!({"messageId": i.to_string(), "body": body, "messageAttributes":
            {"mall": {"DataType": "String", "StringValue": mall}}});
        lines.push_str(&format!("{line}\n"));
    }
    std::fs::write(&file, lines).unwrap();
    ok(&redrive(
        &e,
        &[
            "import",
            file.to_str().unwrap(),
            "--to",
            "cafe24-worker-queue-dlq",
        ],
    ));
    let total = BURST + 4;

    // status: no dead-letter times on moto, so only --watch can tell.
    let st = json_of(&redrive(
        &e,
        &["status", "cafe24-worker-queue", "--format", "json"],
    ));
    assert_eq!(st["queues"][1]["visible"], total);
    assert_eq!(st["reading"]["verdict"], "unknown");
    let st = json_of(&redrive(
        &e,
        &[
            "status",
            "cafe24-worker-queue-dlq",
            "--watch",
            "1s",
            "--format",
            "json",
        ],
    ));
    assert_eq!(st["queues"][0]["name"], "cafe24-worker-queue");
    assert_eq!(st["reading"]["verdict"], "old-residue");

    // stats through ReceiveMessage, with the warning; nothing deleted.
    let out = redrive(
        &e,
        &[
            "stats",
            "cafe24-worker-queue-dlq",
            "--group-by",
            ".mall_id",
            "--visibility-timeout",
            "1",
            "--format",
            "json",
        ],
    );
    let stats = json_of(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("ReceiveMessage"), "{stderr}");
    assert!(!stderr.contains("not a dead-letter queue"), "{stderr}");
    assert_eq!(stats["scanned"], total);
    assert_eq!(stats["complete"], true);
    assert_eq!(stats["nonDestructive"], false);
    assert_eq!(stats["nonJson"], 1);
    assert_eq!(
        stats["groups"][0]["counts"],
        json!([{"key": "drlabnosh", "count": BURST}, {"key": "chosunhnb", "count": 3}])
    );
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;

    // peek of the source queue warns that receives count toward maxReceiveCount.
    let out = redrive(
        &e,
        &["peek", "cafe24-worker-queue", "--visibility-timeout", "1"],
    );
    ok(&out);
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a dead-letter queue"));
    let peeked = json_of(&redrive(
        &e,
        &[
            "peek",
            "cafe24-worker-queue-dlq",
            "-n",
            "1",
            "--visibility-timeout",
            "1",
            "--format",
            "json",
        ],
    ));
    assert_eq!(peeked.as_array().unwrap().len(), 1);
    assert!(peeked[0]["attributes"]["SentTimestamp"].is_string());
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let visible = sqs.attr(&dlq, "ApproximateNumberOfMessages").await;
    let hidden = sqs
        .attr(&dlq, "ApproximateNumberOfMessagesNotVisible")
        .await;
    assert_eq!(
        visible.parse::<usize>().unwrap() + hidden.parse::<usize>().unwrap(),
        total
    );

    let err = fails(&redrive(&e, &["status", "no-such-queue"]));
    assert!(err.contains("does not exist"), "{err}");
}

/// Against a server that verifies SigV4 (`--auth sigv4`): the right keys work (SQS calls and
/// the signed browse API), a wrong secret or an unknown key is a one-line error, and nothing
/// is received or deleted by the failed attempts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_credentials_are_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap().to_string();
    let mut open = ServerProcess::start(&["--data-dir", &data], &[]).await;
    let sqs = open.client();
    let url = sqs.create_queue("q", json!({})).await;
    for i in 0..4 {
        send(
            &sqs,
            &url,
            &format!("{{\"mall_id\":\"m{}\",\"n\":{i}}}", i % 2),
            "m",
        )
        .await;
    }
    assert!(open.terminate().success());

    let creds = "AKIDREDRIVE:s3cr3t-key";
    let server = ServerProcess::start(
        &[
            "--data-dir",
            &data,
            "--auth",
            "sigv4",
            "--credentials",
            creds,
        ],
        &[],
    )
    .await;
    let e = server.endpoint();
    let env = |secret: &'static str, key: &'static str| {
        [
            ("AWS_ACCESS_KEY_ID", key),
            ("AWS_SECRET_ACCESS_KEY", secret),
        ]
    };
    let out = redrive_env(
        &[
            "stats",
            "q",
            "--group-by",
            ".mall_id",
            "--format",
            "json",
            "--endpoint-url",
            &e,
        ],
        &env("s3cr3t-key", "AKIDREDRIVE"),
    );
    let v = json_of(&out);
    assert_eq!(v["scanned"], 4, "{v}");
    assert_eq!(
        v["nonDestructive"], true,
        "the browse API was used, signed: {v}"
    );

    let err = fails(&redrive_env(
        &["stats", "q", "--endpoint-url", &e],
        &env("wrong-secret", "AKIDREDRIVE"),
    ));
    assert!(err.contains("SignatureDoesNotMatch"), "{err}");
    let err = fails(&redrive_env(
        &["peek", "q", "--endpoint-url", &e],
        &env("s3cr3t-key", "AKIDNOSUCH"),
    ));
    assert!(err.contains("InvalidClientTokenId"), "{err}");
    drop(server);

    let open = ServerProcess::start(&["--data-dir", &data], &[]).await;
    let sqs = open.client();
    let url = format!("{}000000000000/q", open.endpoint());
    assert_eq!(counts(&sqs, &url).await, ("4".to_string(), "0".to_string()));
}
