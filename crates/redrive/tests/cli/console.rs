//! `redrive console` against `moto_server` (our stand-in for AWS: no browse API, no replays
//! API, no CloudWatch data), driven over HTTP: the queues and queue pages, the group-by over the
//! receive-based source, a dry run, a confirmed replay through the CLI's client-side
//! receive/send/delete path, and POSTs refused without the CSRF token or from another origin.
//! Named `*moto*`: run by the `moto` nextest profile only.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::Sqs;
use crate::replay::{Moto, body, command, count, drain, send};

pub(crate) struct Console {
    child: Child,
    pub(crate) url: String,
}

impl Drop for Console {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn start_console(endpoint: &str, dir: &std::path::Path) -> Console {
    let mut child = command(
        endpoint,
        &["console", "--port", "0", "--visibility-timeout", "2"],
    )
    .current_dir(dir)
    .stdout(Stdio::piped())
    .stderr(Stdio::null())
    .spawn()
    .expect("start redrive console");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .expect("the console prints its URL");
    let url = line
        .trim()
        .strip_prefix("redrive console: ")
        .unwrap_or_else(|| panic!("unexpected first line: {line}"))
        .to_string();
    Console { child, url }
}

fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The hidden fields of the form whose class is `class` (as a browser would submit them).
fn hidden_fields(page: &str, class: &str) -> Vec<(String, String)> {
    let start = page
        .find(&format!("class=\"{class}\""))
        .unwrap_or_else(|| panic!("no form .{class} in {page}"));
    let form = &page[start..start + page[start..].find("</form>").unwrap()];
    form.split("<input type=\"hidden\" ")
        .skip(1)
        .map(|i| {
            let name = i
                .split("name=\"")
                .nth(1)
                .unwrap()
                .split('"')
                .next()
                .unwrap();
            let value = i
                .split("value=\"")
                .nth(1)
                .unwrap()
                .split('"')
                .next()
                .unwrap();
            (name.to_string(), unescape(value))
        })
        .collect()
}

/// The CSRF token in the form whose class is `class`.
fn csrf_of(page: &str, class: &str) -> String {
    hidden_fields(page, class)
        .into_iter()
        .find(|(k, _)| k == "csrf")
        .unwrap_or_else(|| panic!("no CSRF token in form .{class}"))
        .1
}

/// An HTTP client that shows redirects instead of following them (a form's answer is a 303).
fn console_http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

async fn get(http: &reqwest::Client, url: &str) -> String {
    let r = http.get(url).send().await.expect("GET");
    assert_eq!(r.status(), 200, "GET {url}");
    r.text().await.unwrap()
}

#[tokio::test]
async fn console_against_moto() {
    let moto = Moto::start().await.expect("moto_server is not on PATH: the moto tests run only in `cargo nextest run --profile moto` (.ci/run installs it)");
    let e = moto.endpoint.clone();
    let sqs = Sqs::with_scope(&e, "us-east-1");
    let dlq = sqs.create_queue("orders-dlq", json!({})).await;
    let dlq_arn = sqs.attr(&dlq, "QueueArn").await;
    let src = sqs
        .create_queue(
            "orders",
            json!({"RedrivePolicy": json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "3"}).to_string()}),
        )
        .await;
    // A two-mall incident in the DLQ; the last message carries the worker's error envelope.
    let envelope = json!({"v": 1, "reason": "permanent_error",
        "error": {"class": "http_404", "message": "member <42> not found"},
        "retryable": false, "attempts": 3, "tenant": "m-2"})
    .to_string();
    for i in 0..10 {
        let mall = if i < 6 { "m-1" } else { "m-2" };
        let attrs = if i == 9 {
            json!({"redrive-error": {"DataType": "String", "StringValue": envelope}})
        } else {
            json!({})
        };
        send(
            &sqs,
            &dlq,
            // One hostile body: every page escapes it.
            &json!({"mall_id": mall, "n": i, "note": if i == 9 { "<script>alert(1)</script>" } else { "" }})
                .to_string(),
            attrs,
            None,
        )
        .await;
    }
    let dir = tempfile::tempdir().unwrap();
    let console = start_console(&e, dir.path());
    let base = console.url.trim_end_matches("/console").to_string();
    assert!(base.starts_with("http://127.0.0.1:"), "{base}");
    let http = console_http();

    // Queues: counts and DLQ ⇄ source links.
    let queues = get(&http, &console.url).await;
    assert!(queues.contains("data-queue=\"orders-dlq\""), "{queues}");
    assert!(
        queues.contains("→ <a href=\"/console/queues/orders-dlq\">orders-dlq</a>"),
        "{queues}"
    );
    assert!(
        queues.contains("← <a href=\"/console/queues/orders\">orders</a>"),
        "{queues}"
    );

    // The queue page: counts, a note instead of a chart, the receive warning, nothing read.
    let q = format!("{base}/console/queues/orders-dlq");
    let page = get(&http, &q).await;
    assert!(page.contains("<dd id=\"visible\">10</dd>"), "{page}");
    assert!(page.contains("id=\"chart-note\""), "{page}");
    assert!(
        page.to_lowercase().contains(
            "reading raises approximatereceivecount and hides messages for the visibility timeout"
        ),
        "{page}"
    );
    assert!(!page.contains("id=\"scan\""), "{page}");

    // Group-by over the receive-based source, with the shared aggregations: an enrich
    // mapping on the first key, sent-minute buckets, receive counts, payload shapes, burst.
    let page = get(
        &http,
        &format!(
            "{q}?group=.mall_id&read=50&bucket=sent:minute&enrich={}",
            "mall_id%2Cproject%0Am-1%2Cp-one"
        ),
    )
    .await;
    assert!(
        page.contains("10 messages read (all of them) with ReceiveMessage"),
        "{page}"
    );
    assert!(
        page.contains(
            "<td><code>m-1</code></td><td class=\"enrich\">p-one</td><td class=\"num\" data-count=\"6\">6</td>"
        ),
        "{page}"
    );
    assert!(
        page.contains(
            "<td><code>m-2</code></td><td class=\"enrich\"></td><td class=\"num\" data-count=\"4\">4</td>"
        ),
        "{page}"
    );
    let bucket_total: u64 = {
        let t = &page[page.find("id=\"bucket-table\"").expect("buckets")..];
        let t = &t[..t.find("</table>").unwrap()];
        t.split("data-count=\"")
            .skip(1)
            .map(|c| c[..c.find('"').unwrap()].parse::<u64>().unwrap())
            .sum()
    };
    assert_eq!(bucket_total, 10);
    // The console's own receive is the first: every message read once.
    assert!(
        page.contains("<tr><td class=\"num\">1</td><td class=\"num\" data-count=\"10\">10</td>"),
        "{page}"
    );
    assert!(
        page.contains("<td><code>{mall_id,n,note}</code></td><td class=\"num\" data-count=\"10\">"),
        "{page}"
    );
    assert!(page.contains("id=\"burst\""), "{page}");

    // The message with the envelope: its page from the console's read (no second receive).
    let id_of_9 = {
        let row = page
            .split("<tr><td><a href=\"/console/queues/orders-dlq/messages/")
            .skip(1)
            .find(|r| r.contains("&quot;n&quot;:9"))
            .expect("message 9 listed");
        row[..row.find('"').unwrap()].to_string()
    };
    let msg = get(&http, &format!("{q}/messages/{id_of_9}")).await;
    assert!(
        msg.contains("<th>Error class</th><td data-field=\"Error class\">http_404</td>"),
        "{msg}"
    );
    assert!(msg.contains("member &lt;42&gt; not found"), "{msg}");
    assert!(msg.contains("data-field=\"Attempts\">3<"), "{msg}");
    assert!(
        msg.contains("&quot;mall_id&quot;: &quot;m-2&quot;,\n"),
        "{msg}"
    );
    assert!(msg.contains("<th>Receive count</th><td>1</td>"), "{msg}");
    assert!(msg.contains("<code>redrive-error</code>"), "{msg}");
    assert!(msg.contains("id=\"replay-one\""), "{msg}");
    let r = http
        .get(format!("{q}/messages/not-an-id"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert!(!page.contains("<script>"), "{page}");
    assert!(
        page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{page}"
    );
    // The read hid them for the visibility timeout (2 s).
    tokio::time::sleep(Duration::from_secs(3)).await;

    // The message list under a jq filter (the replay's): only mall m-2 listed.
    let page = get(
        &http,
        &format!("{q}?read=50&filter={}", ".mall_id%20%3D%3D%20%22m-2%22"),
    )
    .await;
    assert!(
        page.contains("id=\"filter-count\" data-count=\"4\""),
        "{page}"
    );
    let listed: Vec<&str> = page
        .split("<tr><td><a href=\"/console/queues/orders-dlq/messages/")
        .skip(1)
        .collect();
    assert_eq!(listed.len(), 4, "{page}");
    assert!(listed.iter().all(|r| r.contains("&quot;m-2&quot;")));
    tokio::time::sleep(Duration::from_secs(3)).await;

    let form_page = get(&http, &format!("{q}/replay")).await;
    let csrf = hidden_fields(&form_page, "replay")
        .into_iter()
        .find(|(n, _)| n == "csrf")
        .expect("the form carries the CSRF token")
        .1;
    let replay_url = format!("{q}/replay");
    let fields = |extra: &[(&str, &str)]| -> Vec<(String, String)> {
        let mut f: Vec<(String, String)> = vec![
            ("filter".into(), r#".mall_id == "m-1""#.into()),
            ("to".into(), "orders".into()),
            // Slow enough to see the run in progress: 3/s for each mall.
            ("rate_key".into(), ".mall_id".into()),
            ("rate_per".into(), "3/s".into()),
            ("transform".into(), ". + {replayed: true} | tojson".into()),
            ("breaker".into(), "50%/1m/5".into()),
        ];
        f.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        f
    };

    // Refused: no token; a wrong token; another origin (with the right token).
    for (form, origin) in [
        (fields(&[("action", "confirm")]), None),
        (fields(&[("action", "confirm"), ("csrf", "0000")]), None),
        (
            fields(&[("action", "confirm"), ("csrf", &csrf)]),
            Some("https://evil.example"),
        ),
    ] {
        let mut req = http.post(&replay_url).form(&form);
        if let Some(o) = origin {
            req = req.header("origin", o);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 403, "{form:?} {origin:?}");
    }
    assert_eq!(count(&sqs, &src).await, 0);
    assert_eq!(count(&sqs, &dlq).await, 10);

    // A per-key rate without its key is refused in the CLI's words.
    let origin = base.clone();
    let r = http
        .post(&replay_url)
        .header("origin", &origin)
        .form(&[
            ("csrf", csrf.as_str()),
            ("action", "preview"),
            ("rate_per", "3/s"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("per-key rate: give both"));

    // Dry run: the CLI's exact preview; nothing moves.
    let r = http
        .post(&replay_url)
        .header("origin", &origin)
        .form(&fields(&[("action", "preview"), ("csrf", &csrf)]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let preview = r.text().await.unwrap();
    assert!(
        preview.contains("6 of 10 scanned messages in `orders-dlq` would be replayed"),
        "{preview}"
    );
    assert!(preview.contains("→ orders: 6"), "{preview}");
    assert_eq!(count(&sqs, &src).await, 0);

    // Confirm: the browser submits the confirm form as it is.
    let mut confirm = hidden_fields(&preview, "confirm");
    confirm.push(("action".into(), "confirm".into()));
    let r = http
        .post(&replay_url)
        .header("origin", &origin)
        .form(&confirm)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let progress = format!("{base}{}", r.headers()["location"].to_str().unwrap());
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen_running = false;
    let done = loop {
        let p = get(&http, &progress).await;
        if !p.contains("data-status=\"running\"") {
            break p;
        }
        assert!(p.contains(" of 6 selected"), "{p}");
        // The recent moves, live: every message listed is mall m-1's, newest first.
        assert!(p.contains("id=\"recent-moves\""), "{p}");
        assert!(
            p.matches("<tr data-message=").count() == p.matches("<td>m-1</td>").count(),
            "{p}"
        );
        seen_running = true;
        assert!(Instant::now() < deadline, "the replay did not end: {p}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert!(
        seen_running,
        "the progress page never showed the run running"
    );
    assert!(done.contains("data-status=\"completed\""), "{done}");
    assert!(done.contains("6 moved"), "{done}");
    // Each message moved, with its id, new id, key and outcome, from the run's journal.
    assert_eq!(done.matches("data-outcome=\"moved\"").count(), 6, "{done}");
    assert_eq!(done.matches("<td>m-1</td>").count(), 6, "{done}");

    // The DLQ holds only the other mall; the source got the replayed ones.
    let moved = drain(&sqs, &src).await;
    assert_eq!(moved.len(), 6);
    assert!(moved.iter().all(|m| body(m)["mall_id"] == "m-1"));
    // The transform ran on each.
    assert!(moved.iter().all(|m| body(m)["replayed"] == true));
    let left = drain(&sqs, &dlq).await;
    assert_eq!(left.len(), 4);
    assert!(left.iter().all(|m| body(m)["mall_id"] == "m-2"));

    // The CLI's journal, in the console's working directory.
    let journal = std::fs::read_to_string(dir.path().join("redrive-audit/orders-dlq.ndjson"))
        .expect("the run's audit log");
    let records: Vec<Value> = journal
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.iter().filter(|r| r["event"] == "sent").count(), 6);
    assert!(records.iter().any(|r| r["event"] == "end"));
    let start = records.iter().find(|r| r["event"] == "start").unwrap();
    assert_eq!(
        start["ratePer"],
        json!({"key": ".mall_id", "rate": 3.0}),
        "{start}"
    );
    assert_eq!(
        start["transform"], ". + {replayed: true} | tojson",
        "{start}"
    );
    assert!(!start["breaker"].is_null(), "{start}");
    assert!(records.iter().any(|r| {
        r["event"] == "start"
            && r["who"]
                .as_str()
                .is_some_and(|w| w.contains("redrive console"))
    }));

    // The audit page shows the journal: the dry run, and the run with its counts.
    let audit = get(&http, &format!("{base}/console/audit")).await;
    let row = audit
        .split("<tr data-run=")
        .skip(1)
        .find(|r| r.contains("<td>replay</td>"))
        .unwrap_or_else(|| panic!("no replay row: {audit}"));
    assert!(row.contains("data-field=\"sent\">6<"), "{row}");
    assert!(row.contains("data-field=\"deleted\">6<"), "{row}");
    assert!(row.contains("per-key rate 3.0/s per .mall_id"), "{row}");
    assert!(row.contains("redrive console"), "{row}");
    assert!(row.contains("<code>orders-dlq.ndjson</code>"), "{row}");
    assert!(audit.contains("<td>dry run</td>"), "{audit}");

    // Not from a loopback name: refused (DNS rebinding).
    let r = http
        .get(&console.url)
        .header("host", "evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
}

#[test]
fn console_refuses_a_non_loopback_address() {
    let out = command(
        "http://127.0.0.1:1/",
        &["console", "--host", "0.0.0.0", "--port", "0"],
    )
    .output()
    .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("loopback"), "{err}");
}

/// Purge from the console: a confirmation that needs the queue's name typed, `PurgeQueue`,
/// and the console's audit journal; a forged POST (no CSRF token, another origin) is refused
/// and shows on the audit page.
#[tokio::test]
async fn console_purge_and_refused_posts_audited_against_moto() {
    let moto = Moto::start().await.expect("moto_server is not on PATH: the moto tests run only in `cargo nextest run --profile moto` (.ci/run installs it)");
    let e = moto.endpoint.clone();
    let sqs = Sqs::with_scope(&e, "us-east-1");
    let junk = sqs.create_queue("junk-dlq", json!({})).await;
    for i in 0..5 {
        send(&sqs, &junk, &json!({"n": i}).to_string(), json!({}), None).await;
    }
    let dir = tempfile::tempdir().unwrap();
    let console = start_console(&e, dir.path());
    let base = console.url.trim_end_matches("/console").to_string();
    let http = console_http();
    let q = format!("{base}/console/queues/junk-dlq");
    let page = get(&http, &q).await;
    assert!(
        page.contains("href=\"/console/queues/junk-dlq/purge\""),
        "{page}"
    );
    let purge_url = format!("{q}/purge");
    let confirm = get(&http, &purge_url).await;
    assert!(confirm.contains("Purge junk-dlq?"), "{confirm}");
    assert!(confirm.contains("about 5 visible"), "{confirm}");
    let fields = hidden_fields(&confirm, "confirm");
    let csrf = fields
        .iter()
        .find(|(k, _)| k == "csrf")
        .map(|(_, v)| v.clone())
        .expect("the confirm form carries the CSRF token");

    // Forged: no token; another origin with the right token. Refused, nothing purged.
    let r = http
        .post(&purge_url)
        .form(&[("confirm_name", "junk-dlq")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = http
        .post(&purge_url)
        .header("origin", "https://evil.example")
        .form(&[("csrf", csrf.as_str()), ("confirm_name", "junk-dlq")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // The wrong name typed: nothing purged either.
    let r = http
        .post(&purge_url)
        .header("origin", &base)
        .form(&[("csrf", csrf.as_str()), ("confirm_name", "junk")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let text = r.text().await.unwrap();
    assert!(text.contains("nothing was purged"), "{text}");
    assert_eq!(count(&sqs, &junk).await, 5);

    // Confirmed: the queue is empty.
    let r = http
        .post(&purge_url)
        .header("origin", &base)
        .form(&[("csrf", csrf.as_str()), ("confirm_name", "junk-dlq")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(
        r.headers()["location"].to_str().unwrap(),
        "/console/queues/junk-dlq"
    );
    assert_eq!(count(&sqs, &junk).await, 0);
    assert!(drain(&sqs, &junk).await.is_empty());

    // The audit page: the purge (with the count before) and both refused POSTs.
    let audit = get(&http, &format!("{base}/console/audit")).await;
    let rows: Vec<&str> = audit.split("<tr data-run=").skip(1).collect();
    let purge = rows
        .iter()
        .find(|r| r.contains("<td>purge</td>"))
        .unwrap_or_else(|| panic!("no purge row: {audit}"));
    assert!(
        purge.contains("queue junk-dlq; about 5 visible before"),
        "{purge}"
    );
    assert!(purge.contains("data-field=\"outcome\">purged<"), "{purge}");
    assert!(purge.contains("redrive console"), "{purge}");
    let refused: Vec<&&str> = rows
        .iter()
        .filter(|r| r.contains("<td>refused POST</td>"))
        .collect();
    assert_eq!(refused.len(), 2, "{audit}");
    assert!(
        refused
            .iter()
            .any(|r| r.contains("/console/queues/junk-dlq/purge: CSRF token missing or wrong")),
        "{audit}"
    );
    assert!(
        refused.iter().any(|r| r.contains("cross-site request")),
        "{audit}"
    );
    let journal =
        std::fs::read_to_string(dir.path().join("redrive-audit/console.actions.ndjson")).unwrap();
    assert_eq!(journal.lines().count(), 3, "{journal}");
}

/// Native move tasks from `redrive console`, against a real `redrive serve` (moto_server does
/// not implement StartMessageMoveTask): a task started from the page moves the DLQ back to its
/// source and shows in the list; a slow one is cancelled through its confirmation page; both
/// actions are on the audit page.
#[tokio::test]
async fn console_move_tasks_against_redrive_serve() {
    let server = crate::harness::ServerProcess::start(&["--in-memory"], &[]).await;
    let e = server.endpoint();
    let sqs = server.client();
    let dlq = sqs.create_queue("pay-dlq", json!({})).await;
    let dlq_arn = sqs.attr(&dlq, "QueueArn").await;
    let src = sqs
        .create_queue(
            "pay",
            json!({"RedrivePolicy": json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "1"}).to_string()}),
        )
        .await;
    for i in 0..4 {
        send(&sqs, &dlq, &json!({"n": i}).to_string(), json!({}), None).await;
    }
    let dir = tempfile::tempdir().unwrap();
    let console = start_console(&e, dir.path());
    let base = console.url.trim_end_matches("/console").to_string();
    let http = console_http();
    let moves = format!("{base}/console/queues/pay-dlq/moves");
    let page = get(&http, &moves).await;
    assert!(page.contains("id=\"no-moves\""), "{page}");
    let csrf = csrf_of(&page, "start-move");
    // A rate out of SQS's range is refused in the CLI's words.
    let r = http
        .post(&moves)
        .header("origin", &base)
        .form(&[("csrf", csrf.as_str()), ("rate", "501")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("between 1 and 500"));
    // Without the token: refused, nothing moves.
    let r = http
        .post(&moves)
        .form(&[("rate", "10")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(count(&sqs, &dlq).await, 4);

    // Started from the page: the DLQ goes back to its source; the list shows it completed.
    let r = http
        .post(&moves)
        .header("origin", &base)
        .form(&[
            ("csrf", csrf.as_str()),
            ("rate", "100"),
            ("destination", "pay"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let deadline = Instant::now() + Duration::from_secs(30);
    let page = loop {
        let p = get(&http, &moves).await;
        if p.contains("data-status=\"COMPLETED\"") {
            break p;
        }
        assert!(Instant::now() < deadline, "the task did not complete: {p}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert!(page.contains("data-field=\"moved\">4<"), "{page}");
    assert!(page.contains("100/s"), "{page}");
    assert_eq!(count(&sqs, &dlq).await, 0);
    assert_eq!(count(&sqs, &src).await, 4);

    // A slow task (1/s over 30 messages), cancelled through its confirmation page.
    for i in 0..30 {
        send(&sqs, &dlq, &json!({"n": i}).to_string(), json!({}), None).await;
    }
    let r = http
        .post(&moves)
        .header("origin", &base)
        .form(&[
            ("csrf", csrf.as_str()),
            ("rate", "1"),
            ("destination", "pay"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let page = get(&http, &moves).await;
    assert!(page.contains("data-status=\"RUNNING\""), "{page}");
    assert!(
        page.contains("/console/queues/pay-dlq/moves/cancel"),
        "{page}"
    );
    let confirm = get(&http, &format!("{moves}/cancel")).await;
    assert!(
        confirm.contains("Cancel the move task of pay-dlq?"),
        "{confirm}"
    );
    let fields = hidden_fields(&confirm, "confirm");
    let r = http
        .post(format!("{moves}/cancel"))
        .header("origin", &base)
        .form(&fields)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    // CANCELLING, then CANCELLED once the runner stops.
    let deadline = Instant::now() + Duration::from_secs(30);
    let page = loop {
        let p = get(&http, &moves).await;
        if p.contains("data-status=\"CANCELLED\"") {
            break p;
        }
        assert!(Instant::now() < deadline, "the task was not cancelled: {p}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert!(!page.contains("data-status=\"RUNNING\""), "{page}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let left = count(&sqs, &dlq).await;
    assert!(left > 20, "the cancelled task kept moving: {left} left");

    let audit = get(&http, &format!("{base}/console/audit")).await;
    assert_eq!(audit.matches("<td>move task</td>").count(), 2, "{audit}");
    assert_eq!(audit.matches("<td>move cancel</td>").count(), 1, "{audit}");
    assert!(
        audit.contains("data-field=\"outcome\">cancelled "),
        "{audit}"
    );
    assert!(audit.contains("<td>refused POST</td>"), "{audit}");
}

/// Schedules from `redrive console` against a real `redrive serve` (moto_server has no
/// schedules API): one added through the form is in the server's API and the list, its runs
/// page answers, and it is removed through its confirmation page.
#[tokio::test]
async fn console_schedules_against_redrive_serve() {
    let server = crate::harness::ServerProcess::start(&["--in-memory"], &[]).await;
    let e = server.endpoint();
    let sqs = server.client();
    let dlq = sqs.create_queue("bill-dlq", json!({})).await;
    let dlq_arn = sqs.attr(&dlq, "QueueArn").await;
    sqs.create_queue(
        "bill",
        json!({"RedrivePolicy": json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "3"}).to_string()}),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let console = start_console(&e, dir.path());
    let base = console.url.trim_end_matches("/console").to_string();
    let http = console_http();
    let api = format!("{e}_redrive/v1/schedules");
    let schedules = format!("{base}/console/schedules");
    let page = get(&http, &schedules).await;
    assert!(page.contains("id=\"no-schedules\""), "{page}");
    let csrf = csrf_of(&page, "stack add-schedule");
    let form = [
        ("csrf", csrf.as_str()),
        ("name", "nightly"),
        ("cron", "0 3 * * *"),
        ("timezone", "UTC"),
        ("source", "bill-dlq"),
        ("filter", ".tenant == \"t-1\""),
        ("window_field", "deadLettered"),
        ("window_range", "last:24h"),
        ("transform", ".v = 2 | tojson"),
        ("rate_key", ".tenant"),
        ("rate_per", "2/s"),
        ("rate", "10/s"),
        ("breaker", "20%/5m/10"),
        ("max_count", "100"),
    ];
    // Without the token: refused, nothing added.
    let r = http.post(&schedules).form(&form[1..]).send().await.unwrap();
    assert_eq!(r.status(), 403);
    let v: Value = serde_json::from_str(&get(&http, &api).await).unwrap();
    assert_eq!(v["schedules"].as_array().unwrap().len(), 0, "{v}");
    // A bad cron: the server's refusal on the page.
    let mut bad = form.to_vec();
    bad[2] = ("cron", "not a cron");
    let r = http
        .post(&schedules)
        .header("origin", &base)
        .form(&bad)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("id=\"form-error\""));
    // Each replay option is checked before anything is sent, the reason named and the form
    // kept.
    for (k, v, says) in [
        ("window_range", "last week", "Window: invalid window"),
        ("rate_per", "fast", "Per-key rate:"),
        ("breaker", "150%", "Breaker:"),
        ("max_count", "0", "Limit per run:"),
        ("transform", "tojson |", "Transform:"),
    ] {
        let mut bad = form.to_vec();
        bad.iter_mut().find(|(f, _)| *f == k).unwrap().1 = v;
        let r = http
            .post(&schedules)
            .header("origin", &base)
            .form(&bad)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{k}");
        let text = r.text().await.unwrap();
        assert!(text.contains(says), "{k}: {text}");
        assert!(text.contains("value=\"nightly\""), "{text}");
    }
    let v: Value = serde_json::from_str(&get(&http, &api).await).unwrap();
    assert_eq!(v["schedules"].as_array().unwrap().len(), 0, "{v}");

    let r = http
        .post(&schedules)
        .header("origin", &base)
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let v: Value = serde_json::from_str(&get(&http, &api).await).unwrap();
    let list = v["schedules"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{v}");
    assert_eq!(list[0]["name"], "nightly");
    assert_eq!(list[0]["selection"]["filter"], ".tenant == \"t-1\"");
    assert_eq!(
        list[0]["window"],
        json!({"field": "deadLettered", "range": "last:24h"})
    );
    assert_eq!(list[0]["transform"], ".v = 2 | tojson");
    assert_eq!(list[0]["ratePer"], json!({"key": ".tenant", "rate": 2.0}));
    assert_eq!(list[0]["rate"], 10.0);
    assert_eq!(list[0]["maxCount"], 100);
    assert!(list[0]["breaker"].is_object(), "{v}");
    let id = list[0]["id"].as_str().unwrap().to_string();
    let page = get(&http, &schedules).await;
    assert!(page.contains("data-schedule=\"nightly\""), "{page}");
    assert!(page.contains("0 3 * * * UTC"), "{page}");
    let runs = get(&http, &format!("{schedules}/{id}")).await;
    assert!(runs.contains("id=\"no-runs\""), "{runs}");

    let confirm = get(&http, &format!("{schedules}/{id}/remove")).await;
    let fields = hidden_fields(&confirm, "confirm");
    let r = http
        .post(format!("{schedules}/{id}/remove"))
        .header("origin", &base)
        .form(&fields)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let v: Value = serde_json::from_str(&get(&http, &api).await).unwrap();
    assert_eq!(v["schedules"].as_array().unwrap().len(), 0, "{v}");
    let page = get(&http, &schedules).await;
    assert!(page.contains("id=\"no-schedules\""), "{page}");

    let audit = get(&http, &format!("{base}/console/audit")).await;
    assert!(audit.contains("<td>schedule add</td>"), "{audit}");
    assert!(audit.contains("<td>schedule remove</td>"), "{audit}");
}

/// CloudWatch's `DescribeAlarms` in the Query protocol: the alarm names.
async fn cloudwatch_alarm_names(endpoint: &str) -> Vec<String> {
    let r = reqwest::Client::new()
        .post(endpoint)
        .header(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/monitoring/aws4_request, \
             SignedHeaders=host, Signature=0",
        )
        .form(&[("Action", "DescribeAlarms"), ("Version", "2010-08-01")])
        .send()
        .await
        .unwrap();
    let text = r.text().await.unwrap();
    text.split("<AlarmName>")
        .skip(1)
        .map(|s| s.split('<').next().unwrap().to_string())
        .collect()
}

/// CloudWatch alarms from `redrive console` against a real `redrive serve` (moto_server does
/// not speak CloudWatch's RPC v2 CBOR protocol, which aws-sdk-cloudwatch uses): one added
/// through the page is visible through CloudWatch's API and on the page with its state and
/// history; deleted through its confirmation page it is gone; both on the audit page.
#[tokio::test]
async fn console_alarms_against_redrive_serve() {
    let server = crate::harness::ServerProcess::start(&["--in-memory"], &[]).await;
    let e = server.endpoint();
    let sqs = server.client();
    sqs.create_queue("ship-dlq", json!({})).await;
    let dir = tempfile::tempdir().unwrap();
    let console = start_console(&e, dir.path());
    let base = console.url.trim_end_matches("/console").to_string();
    let http = console_http();
    let alarms = format!("{base}/console/queues/ship-dlq/alarms");
    let page = get(&http, &alarms).await;
    assert!(page.contains("id=\"no-alarms\""), "{page}");
    let csrf = csrf_of(&page, "add-alarm");
    let form = [
        ("csrf", csrf.as_str()),
        ("alarm", "ship-dlq-depth"),
        ("metric", "ApproximateNumberOfMessagesVisible"),
        ("threshold", "5"),
        ("period", "60"),
    ];
    let r = http.post(&alarms).form(&form[1..]).send().await.unwrap();
    assert_eq!(r.status(), 403);
    assert!(cloudwatch_alarm_names(&e).await.is_empty());
    let r = http
        .post(&alarms)
        .header("origin", &base)
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(cloudwatch_alarm_names(&e).await, vec!["ship-dlq-depth"]);
    let page = get(&http, &alarms).await;
    let row = page
        .split("<tr data-alarm=\"ship-dlq-depth\">")
        .nth(1)
        .unwrap_or_else(|| panic!("no alarm row: {page}"));
    assert!(row.contains("ApproximateNumberOfMessagesVisible"), "{row}");
    assert!(
        row.contains("GreaterThanOrEqualToThreshold 5 over 60 s"),
        "{row}"
    );
    assert!(row.contains("data-field=\"state\">"), "{row}");
    // DescribeAlarmHistory: the alarm's creation.
    let history = page.split("<h2>History</h2>").nth(1).unwrap();
    assert!(history.contains("<li>"), "{history}");

    let delete = format!("{alarms}/ship-dlq-depth/delete");
    let confirm = get(&http, &delete).await;
    assert!(
        confirm.contains("Delete alarm ship-dlq-depth?"),
        "{confirm}"
    );
    let r = http
        .post(&delete)
        .header("origin", &base)
        .form(&hidden_fields(&confirm, "confirm"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert!(cloudwatch_alarm_names(&e).await.is_empty());
    let page = get(&http, &alarms).await;
    assert!(page.contains("id=\"no-alarms\""), "{page}");
    let audit = get(&http, &format!("{base}/console/audit")).await;
    assert!(audit.contains("<td>alarm add</td>"), "{audit}");
    assert!(audit.contains("<td>alarm delete</td>"), "{audit}");
    assert!(audit.contains("<td>refused POST</td>"), "{audit}");
}

async fn alert_rules(http: &reqwest::Client, api: &str) -> Vec<Value> {
    let v: Value = serde_json::from_str(&get(http, &format!("{api}/rules")).await).unwrap();
    v["rules"].as_array().unwrap().clone()
}

/// A Redrive server's own alert rules from `redrive console` (moto_server has no alerts API):
/// a rule added through the form is in the server's API and on the page with its state;
/// a silence is added and removed; the rule is removed through its confirmation page; a bad
/// form says what is wrong; a forged cross-site POST is refused and changes nothing; every
/// action is on the audit page.
#[tokio::test]
async fn console_alerts_against_redrive_serve() {
    let server = crate::harness::ServerProcess::start(&["--in-memory"], &[]).await;
    let e = server.endpoint();
    let sqs = server.client();
    sqs.create_queue("pay-dlq", json!({})).await;
    let dir = tempfile::tempdir().unwrap();
    let console = start_console(&e, dir.path());
    let base = console.url.trim_end_matches("/console").to_string();
    let http = console_http();
    let api = format!("{e}_redrive/v1/alerts");
    let alerts = format!("{base}/console/alerts");
    let page = get(&http, &alerts).await;
    assert!(page.contains("id=\"no-rules\""), "{page}");
    assert!(page.contains("id=\"no-silences\""), "{page}");
    let csrf = csrf_of(&page, "stack add-rule");
    let form = [
        ("csrf", csrf.as_str()),
        ("name", "pay-deep"),
        ("queue", "*-dlq"),
        ("kind", "depth"),
        ("n", "5"),
        ("m", "3"),
    ];
    // Forged: from another site (even with the token), and without the token.
    let r = http
        .post(format!("{alerts}/rules"))
        .header("origin", "http://evil.example")
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = http
        .post(format!("{alerts}/rules"))
        .form(&form[1..])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(alert_rules(&http, &api).await.is_empty());
    // A bad form: the reason on the page, nothing added.
    let mut bad = form.to_vec();
    bad[4] = ("n", "zero");
    let r = http
        .post(format!("{alerts}/rules"))
        .header("origin", &base)
        .form(&bad)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let text = r.text().await.unwrap();
    assert!(text.contains("id=\"form-error\">N: `zero`"), "{text}");
    assert!(alert_rules(&http, &api).await.is_empty());

    let r = http
        .post(format!("{alerts}/rules"))
        .header("origin", &base)
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let list = alert_rules(&http, &api).await;
    assert_eq!(list.len(), 1);
    assert_eq!(
        list[0]["condition"],
        json!({"kind": "depth", "threshold": 5, "minutes": 3})
    );
    let id = list[0]["id"].as_str().unwrap().to_string();
    let page = get(&http, &alerts).await;
    assert!(page.contains("data-rule=\"pay-deep\""), "{page}");
    assert!(page.contains("depth ≥ 5 for 3 min"), "{page}");

    // A silence of the rule, then its removal.
    let r = http
        .post(format!("{alerts}/silences"))
        .header("origin", &base)
        .form(&[
            ("csrf", csrf.as_str()),
            ("rule", "pay-deep"),
            ("duration", "2h"),
            ("comment", "incident 000"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let v: Value = serde_json::from_str(&get(&http, &format!("{api}/silences")).await).unwrap();
    let sil = v["silences"][0]["id"].as_str().unwrap().to_string();
    let page = get(&http, &alerts).await;
    assert!(page.contains(&format!("data-silence=\"{sil}\"")), "{page}");
    assert!(page.contains("incident 000"), "{page}");
    let r = http
        .post(format!("{alerts}/silences/{sil}/remove"))
        .header("origin", &base)
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let page = get(&http, &alerts).await;
    assert!(page.contains("id=\"no-silences\""), "{page}");

    // Removal: confirmed on a page of its own.
    let confirm = get(&http, &format!("{alerts}/rules/{id}/remove")).await;
    assert!(confirm.contains("Remove alert rule pay-deep?"), "{confirm}");
    let r = http
        .post(format!("{alerts}/rules/{id}/remove"))
        .header("origin", &base)
        .form(&hidden_fields(&confirm, "confirm"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert!(alert_rules(&http, &api).await.is_empty());

    let audit = get(&http, &format!("{base}/console/audit")).await;
    for kind in [
        "alert rule add",
        "alert rule remove",
        "silence add",
        "silence remove",
        "refused POST",
    ] {
        assert!(
            audit.contains(&format!("<td>{kind}</td>")),
            "{kind}: {audit}"
        );
    }
}
