//! The console in a real headless Chromium driven over WebDriver (Debian's `chromium` and
//! `chromium-driver`): open the queues page, follow the DLQ link, group by `.mall`, open a
//! message; the counts equal the server's and the browser log holds no error.
//!
//! Needs `chromedriver` on PATH: not run by the default nextest profile (reported skipped),
//! run by `.ci/run` with `--profile browser`, where a missing driver fails it. With
//! `REDRIVE_CONSOLE_SCREENSHOTS=DIR` it writes a 1280×800 screenshot of each page into `DIR`.

use std::collections::BTreeMap;
use std::time::Duration;

use fantoccini::{Client, Locator};
use serde_json::{Value, json};

use crate::browser_kit::*;
use crate::common::*;
use crate::console::{DLQ, MALL_A, MALL_B, SCRIPT_BODY, group_rows, seed_incident};

/// Counts per `.mall` straight from the inspection API (the server's own answer).
async fn server_mall_counts(ts: &TestServer) -> BTreeMap<String, u64> {
    let text = ts
        .http
        .get(format!(
            "{}/_redrive/v1/queues/{DLQ}/messages?limit=1000",
            ts.base
        ))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let page: Value = serde_json::from_str(&text).unwrap();
    let mut counts = BTreeMap::new();
    for m in page["messages"].as_array().unwrap() {
        let body: Value = serde_json::from_str(m["body"].as_str().unwrap()).unwrap();
        *counts
            .entry(body["mall"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_console_walkthrough() {
    let server = redrive_server::Server::bind(redrive_server::ServerConfig {
        port: 0,
        ..Default::default()
    })
    .await
    .unwrap();
    let engine = server.engine();
    let ts = TestServer::from_server(server);
    let (_, dlq_url) = seed_incident(&ts).await;
    // The current minute into the history, so the chart has something to draw.
    engine.flush_history_partial().await;
    let driver = start_driver().await;
    let client = browser(&driver).await;

    // Queues page: the DLQ row shows the server's counts.
    client.goto(&format!("{}/console", ts.base)).await.unwrap();
    let (visible, in_flight, _) = ts.counts(&dlq_url).await;
    let row = format!("tr[data-queue='{DLQ}']");
    assert_eq!(
        text(&client, &format!("{row} td[data-field='visible']")).await,
        visible.to_string()
    );
    assert_eq!(visible, (MALL_A + MALL_B) as u64);
    assert_eq!(
        text(&client, &format!("{row} td[data-field='inFlight']")).await,
        in_flight.to_string()
    );
    screenshot(&client, "queues.png").await;

    // Follow the DLQ link, group by .mall with the form.
    client
        .find(Locator::Css(&format!("{row} td:first-child a")))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for_path(&client, |p| p.ends_with(DLQ)).await;
    client.find(Locator::Css("svg.chart")).await.unwrap();
    screenshot(&client, "dlq.png").await;
    let input = client.find(Locator::Id("group-input")).await.unwrap();
    input.send_keys(".mall").await.unwrap();
    client
        .find(Locator::Css("form.inline button[type='submit']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    client.find(Locator::Id("group-table")).await.unwrap();
    let html = client.source().await.unwrap();
    let shown = group_rows(&html);
    assert_eq!(shown, server_mall_counts(&ts).await);
    assert_eq!(shown.len(), 2);
    screenshot(&client, "dlq-group-by.png").await;

    // The other aggregations through the form: dead-lettered minutes and a pasted mapping.
    client
        .find(Locator::Css(
            "#bucket-input option[value='dead-lettered:minute']",
        ))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    client
        .find(Locator::Css("details.enrich summary"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    client
        .find(Locator::Id("enrich-input"))
        .await
        .unwrap()
        .send_keys("mall,project,owner\nalpha,p-1,team-a\nbeta,p-2,team-b")
        .await
        .unwrap();
    client
        .find(Locator::Css("form.inline button[type='submit']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    client
        .wait()
        .for_element(Locator::Id("bucket-table"))
        .await
        .unwrap();
    let html = client.source().await.unwrap();
    assert_eq!(group_rows(&html), server_mall_counts(&ts).await);
    assert!(html.contains("<td class=\"enrich\">p-2</td>"), "{html}");
    let bucketed: u64 = client
        .find_all(Locator::Css("#bucket-table td[data-count]"))
        .await
        .unwrap()
        .len() as u64;
    assert!(bucketed >= 1);
    assert_eq!(
        text(&client, "#receive-table td[data-count]").await,
        (MALL_A + MALL_B).to_string()
    );
    client
        .execute(
            "document.getElementById('burst').scrollIntoView({block: 'start'})",
            vec![],
        )
        .await
        .unwrap();
    screenshot(&client, "dlq-aggregations.png").await;

    // Open the message whose body carries markup: shown as text, never run.
    let rows = client
        .find_all(Locator::Css("#message-table tbody tr"))
        .await
        .unwrap();
    assert_eq!(rows.len(), MALL_A + MALL_B);
    let mut opened = false;
    for row in rows {
        if row.text().await.unwrap().contains("<script>") {
            row.find(Locator::Css("td:first-child a"))
                .await
                .unwrap()
                .click()
                .await
                .unwrap();
            opened = true;
            break;
        }
    }
    assert!(opened, "the message with markup is listed");
    let body = text(&client, "#message-body").await;
    let pretty: Value = serde_json::from_str(&body).expect("pretty-printed JSON body");
    assert_eq!(pretty, serde_json::from_str::<Value>(SCRIPT_BODY).unwrap());
    let scripts = client
        .execute("return document.scripts.length", vec![])
        .await
        .unwrap();
    assert_eq!(scripts, json!(0));
    let facts = text(&client, "#message-facts").await;
    assert!(
        facts.contains(&TestServer::arn(crate::console::SOURCE)),
        "{facts}"
    );
    screenshot(&client, "message.png").await;

    // A worker's dead letter (its `redrive-error` envelope) in a queue of its own: decoded.
    let worker_dlq = ts.create("points-dlq").await;
    let envelope = json!({"v": 1, "reason": "permanent_error",
        "error": {"class": "http_404", "message": "member 42 not found"},
        "retryable": false, "attempts": 1, "throttles": 0, "deferrals": 0,
        "first_failed_at": "2026-11-23T15:30:00.120Z", "last_failed_at": "2026-11-23T15:30:00.120Z",
        "source_queue": "http://127.0.0.1:9324/000000000000/points", "tenant": "alpha"})
    .to_string();
    let id = ts
        .client
        .send_message()
        .queue_url(&worker_dlq)
        .message_body(r#"{"mall":"alpha","member":42,"points":120}"#)
        .message_attributes("redrive-error", string_attr("String", &envelope))
        .send()
        .await
        .unwrap()
        .message_id
        .unwrap();
    client
        .goto(&format!(
            "{}/console/queues/points-dlq/messages/{id}",
            ts.base
        ))
        .await
        .unwrap();
    assert_eq!(
        text(&client, "#error-envelope td[data-field='Error class']").await,
        "http_404"
    );
    assert_eq!(
        text(&client, "#error-envelope td[data-field='Error message']").await,
        "member 42 not found"
    );
    screenshot(&client, "message-envelope.png").await;

    let severe = severe_log_entries(&client, &[]).await;
    assert!(severe.is_empty(), "browser errors: {severe:?}");
    client.close().await.unwrap();

    // Nothing the browser did counted a receive.
    let all = ts.receive(&dlq_url, 10, Some(30)).await;
    assert!(
        all.iter()
            .all(|m| sys_attr(m, "ApproximateReceiveCount").as_deref() == Some("2"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_console_login_under_sigv4() {
    let server = redrive_server::Server::bind(redrive_server::ServerConfig {
        port: 0,
        auth: redrive_server::Auth::SigV4 {
            keys: BTreeMap::from([("AKIDCONSOLE".to_string(), "s3cr3t+key".to_string())]),
        },
        ..Default::default()
    })
    .await
    .unwrap();
    let ts = TestServer::from_server(server);
    let driver = start_driver().await;
    let client = browser(&driver).await;

    client.goto(&format!("{}/console", ts.base)).await.unwrap();
    assert_eq!(client.current_url().await.unwrap().path(), "/console/login");
    let log_in = |secret: &'static str| {
        let client = client.clone();
        async move {
            client
                .find(Locator::Id("access-key"))
                .await
                .unwrap()
                .send_keys("AKIDCONSOLE")
                .await
                .unwrap();
            client
                .find(Locator::Id("secret"))
                .await
                .unwrap()
                .send_keys(secret)
                .await
                .unwrap();
            client
                .find(Locator::Css("form.login button[type='submit']"))
                .await
                .unwrap()
                .click()
                .await
                .unwrap();
        }
    };
    log_in("wrong").await;
    client
        .wait()
        .for_element(Locator::Id("login-error"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        text(&client, "#login-error").await,
        "Unknown access key id, or a wrong secret."
    );
    screenshot(&client, "login.png").await;
    log_in("s3cr3t+key").await;
    wait_for_path(&client, |p| p == "/console").await;
    assert!(text(&client, "h1").await.starts_with("Queues"));
    // The session cookie is HttpOnly: scripts in the page cannot read it.
    let cookies = client
        .execute("return document.cookie", vec![])
        .await
        .unwrap();
    assert_eq!(cookies, json!(""));

    // The browser logs the failed login's 401 as a resource error; nothing else may be there.
    let severe: Vec<Value> = severe_log_entries(&client, &[])
        .await
        .into_iter()
        .filter(|e| !e["message"].as_str().unwrap_or("").contains("401"))
        .collect();
    assert!(severe.is_empty(), "browser errors: {severe:?}");
    client.close().await.unwrap();
}

/// `(mall, command)` counts of the DLQ from the inspection API (`null` when a body has no
/// command, as jq prints it).
async fn server_pair_counts(ts: &TestServer) -> Vec<(String, String, u64)> {
    let text = ts
        .http
        .get(format!(
            "{}/_redrive/v1/queues/{DLQ}/messages?limit=1000",
            ts.base
        ))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let page: Value = serde_json::from_str(&text).unwrap();
    let mut counts: BTreeMap<(String, String), u64> = BTreeMap::new();
    for m in page["messages"].as_array().unwrap() {
        let body: Value = serde_json::from_str(m["body"].as_str().unwrap()).unwrap();
        let command = body["command"].as_str().unwrap_or("null").to_string();
        *counts
            .entry((body["mall"].as_str().unwrap().to_string(), command))
            .or_default() += 1;
    }
    let mut v: Vec<(String, String, u64)> =
        counts.into_iter().map(|((a, b), c)| (a, b, c)).collect();
    v.sort_by(|a, b| b.2.cmp(&a.2).then_with(|| (&a.0, &a.1).cmp(&(&b.0, &b.1))));
    v
}

async fn type_into(client: &Client, id: &str, text: &str) {
    let e = client
        .find(Locator::Id(id))
        .await
        .unwrap_or_else(|e| panic!("#{id}: {e}"));
    e.clear().await.unwrap();
    e.send_keys(text).await.unwrap();
}

async fn click(client: &Client, css: &str) {
    client
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("`{css}` not found: {e}"))
        .click()
        .await
        .unwrap();
}

/// A page on another site with a form that posts a replay of the whole DLQ to the console.
async fn evil_site(console_base: &str) -> String {
    forged_form_site(
        &format!("{console_base}/console/queues/{DLQ}/replay"),
        &[("expected", &MALL_B.to_string())],
    )
    .await
}

/// The judged scenario: find the DLQ of a seeded two-mall incident, group it by mall and
/// command, open a message, dry-run a replay filtered to one mall with a per-mall rate,
/// confirm it, watch its progress until the DLQ holds only the other mall; the counts equal
/// the server's; no error in the browser log; a forged cross-site POST is refused. Then the
/// move task, schedule, alert and audit pages through their forms.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_console_replays_one_mall_end_to_end() {
    let server = redrive_server::Server::bind(redrive_server::ServerConfig {
        port: 0,
        ..Default::default()
    })
    .await
    .unwrap();
    let engine = server.engine();
    let ts = TestServer::from_server(server);
    let (src_url, dlq_url) = seed_incident(&ts).await;
    engine.flush_history_partial().await;
    let driver = start_driver().await;
    let client = browser(&driver).await;
    // Elements of the next page are waited for (clicks return before navigations commit).
    client
        .update_timeouts(fantoccini::wd::TimeoutConfiguration::new(
            None,
            None,
            Some(Duration::from_secs(5)),
        ))
        .await
        .unwrap();

    // Find the DLQ from the queue list.
    client.goto(&format!("{}/console", ts.base)).await.unwrap();
    click(&client, &format!("tr[data-queue='{DLQ}'] td:first-child a")).await;
    wait_for_path(&client, |p| p.ends_with(DLQ)).await;

    // Group by mall and command.
    type_into(&client, "group-input", ".mall").await;
    type_into(&client, "group-input-2", ".command").await;
    click(&client, "form.inline button[type='submit']").await;
    client
        .wait()
        .for_element(Locator::Id("group-pairs"))
        .await
        .unwrap();
    let mut shown = Vec::new();
    for row in client
        .find_all(Locator::Css("#group-pairs tr.pair"))
        .await
        .unwrap()
    {
        let cells = row.find_all(Locator::Css("td")).await.unwrap();
        shown.push((
            cells[0].text().await.unwrap(),
            cells[1].text().await.unwrap(),
            cells[2].text().await.unwrap().parse::<u64>().unwrap(),
        ));
    }
    assert_eq!(shown, server_pair_counts(&ts).await);
    let html = client.source().await.unwrap();
    assert_eq!(group_rows(&html), server_mall_counts(&ts).await);
    screenshot(&client, "dlq-group-by-two.png").await;

    // Open a message, then back.
    click(
        &client,
        "#message-table tbody tr:first-child td:first-child a",
    )
    .await;
    let body: Value = serde_json::from_str(&text(&client, "#message-body").await).unwrap();
    assert!(body["mall"].is_string());
    click(&client, "a[accesskey='b']").await;

    // Dry run: mall alpha, 2/s per mall (slow enough, ~3 s for 7, to watch it drain).
    click(&client, "#replay-link").await;
    type_into(&client, "filter", ".mall == \"alpha\"").await;
    type_into(&client, "rate_key", ".mall").await;
    type_into(&client, "rate_per", "2/s").await;
    screenshot(&client, "replay-form.png").await;
    click(&client, "#dry-run").await;
    client
        .wait()
        .for_element(Locator::Id("preview-selected"))
        .await
        .unwrap();
    let expected_alpha = server_mall_counts(&ts).await["alpha"];
    assert_eq!(
        text(&client, "#preview-selected").await,
        expected_alpha.to_string()
    );
    assert_eq!(expected_alpha, MALL_A as u64);
    // The per-mall pacing of the selection: one mall, all of it.
    assert_eq!(
        text(&client, "#preview-keys td[data-count]").await,
        expected_alpha.to_string()
    );
    let sample_rows = client
        .find_all(Locator::Css("#preview-sample tbody tr"))
        .await
        .unwrap();
    assert_eq!(sample_rows.len(), MALL_A.min(10));
    for r in &sample_rows {
        assert!(r.text().await.unwrap().contains("alpha"));
    }
    // Nothing moved by the dry run.
    assert_eq!(ts.counts(&dlq_url).await.0, (MALL_A + MALL_B) as u64);
    screenshot(&client, "replay-preview.png").await;
    client
        .execute(
            "document.getElementById('confirm-form').scrollIntoView({block: 'end'})",
            vec![],
        )
        .await
        .unwrap();
    screenshot(&client, "replay-confirm.png").await;

    // Confirm, then watch the progress page (it reloads itself) until the replay completes.
    click(&client, "#confirm-replay").await;
    wait_for_path(&client, |p| p.starts_with("/console/replays/")).await;
    let mut seen_moved = Vec::new();
    // Progress seen strictly between start and end while running, with the server's DLQ
    // count at that moment.
    let mut partway: Option<(u64, u64)> = None;
    let mut shot = false;
    let mut status = String::new();
    for _ in 0..300 {
        // The page may be reloading: read the whole source, retry on a half-loaded one.
        let Ok(html) = client.source().await else {
            continue;
        };
        let Some(s) = html.find("data-status=\"") else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        status = html[s + 13..s + 13 + html[s + 13..].find('"').unwrap()].to_string();
        if let Some(m) = html.find("data-field=\"moved\"") {
            let v = &html[m..];
            let v = &v[v.find("class=\"v\">").unwrap() + 10..];
            let moved = v[..v.find('<').unwrap()].parse::<u64>().unwrap();
            seen_moved.push(moved);
            if status == "RUNNING" && moved > 0 && moved < MALL_A as u64 && partway.is_none() {
                partway = Some((moved, ts.counts(&dlq_url).await.0));
            }
        }
        if status == "RUNNING" && !shot && partway.is_some() {
            screenshot(&client, "replay-progress.png").await;
            shot = true;
        }
        if status != "RUNNING" && status != "CANCELLING" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, "COMPLETED");
    assert!(
        seen_moved.windows(2).all(|w| w[0] <= w[1]),
        "{seen_moved:?}"
    );
    // The DLQ was watched draining: a running page with some but not all moved, and the
    // server's DLQ then held fewer than at the start (the page never runs ahead of it).
    let (moved_then, dlq_then) =
        partway.unwrap_or_else(|| panic!("no partial progress seen: {seen_moved:?}"));
    assert!(
        dlq_then <= (MALL_A + MALL_B) as u64 - moved_then && dlq_then >= MALL_B as u64,
        "page said {moved_then} moved, the DLQ held {dlq_then}"
    );
    // The last reload may still be in flight: wait for the summary.
    client
        .wait()
        .for_element(Locator::Id("replay-summary"))
        .await
        .unwrap();
    assert_eq!(
        text(&client, "div[data-field='moved'] .v").await,
        MALL_A.to_string()
    );
    assert_eq!(text(&client, "div[data-field='remaining'] .v").await, "0");
    // The recent moves: every message of mall alpha, with its key and outcome.
    let moves = text(&client, "#replay-moves tbody").await;
    assert_eq!(moves.matches("alpha").count(), MALL_A, "{moves}");
    assert_eq!(
        client
            .find_all(Locator::Css("#replay-moves tr[data-outcome='moved']"))
            .await
            .unwrap()
            .len(),
        MALL_A
    );
    screenshot(&client, "replay-summary.png").await;

    // The DLQ holds only the other mall, by the SQS API and by the inspection API; the
    // console's numbers are the server's.
    let (visible, in_flight, delayed) = ts.counts(&dlq_url).await;
    assert_eq!((visible, in_flight, delayed), (MALL_B as u64, 0, 0));
    assert_eq!(
        text(&client, "div[data-field='dlqVisible'] .v").await,
        visible.to_string()
    );
    assert_eq!(
        server_mall_counts(&ts).await,
        BTreeMap::from([("beta".to_string(), MALL_B as u64)])
    );
    assert_eq!(ts.counts(&src_url).await.0, MALL_A as u64 + 1);
    client.goto(&format!("{}/console", ts.base)).await.unwrap();
    assert_eq!(
        text(
            &client,
            &format!("tr[data-queue='{DLQ}'] td[data-field='visible']")
        )
        .await,
        visible.to_string()
    );
    let severe = severe_log_entries(&client, &[]).await;
    assert!(severe.is_empty(), "browser errors: {severe:?}");

    // A forged cross-site POST from another site's page: refused, nothing moves.
    client.goto(&evil_site(&ts.base).await).await.unwrap();
    click(&client, "#claim").await;
    wait_for_path(&client, |p| p.ends_with("/replay")).await;
    let refused = text(&client, "body").await;
    assert!(refused.contains("Refused"), "{refused}");
    screenshot(&client, "forged-post-refused.png").await;
    assert_eq!(ts.counts(&dlq_url).await, (MALL_B as u64, 0, 0));
    client
        .goto(&format!("{}/console/audit", ts.base))
        .await
        .unwrap();
    let audit = text(&client, "#audit-table").await;
    assert!(audit.contains("post.refused"), "{audit}");
    assert!(audit.contains("replay.start"), "{audit}");
    screenshot(&client, "audit.png").await;

    // Alerts: add a rule and silence it, through the forms.
    client
        .goto(&format!("{}/console/alerts", ts.base))
        .await
        .unwrap();
    click(&client, "details summary").await;
    type_into(&client, "r-name", "dlq-depth").await;
    type_into(&client, "r-queue", "*-dlq").await;
    type_into(&client, "r-n", "3").await;
    click(&client, "form[action='/console/alerts/rules'] button").await;
    client
        .wait()
        .for_element(Locator::Css("tr[data-rule='dlq-depth']"))
        .await
        .unwrap();
    client
        .find(Locator::Id("sil-rule"))
        .await
        .unwrap()
        .select_by_value("dlq-depth")
        .await
        .unwrap();
    type_into(&client, "sil-comment", "incident 000: replaying mall alpha").await;
    click(&client, "#add-silence").await;
    client
        .wait()
        .for_element(Locator::Id("silence-table"))
        .await
        .unwrap();
    screenshot(&client, "alerts.png").await;

    // Schedules: add one through the form.
    client
        .goto(&format!("{}/console/schedules", ts.base))
        .await
        .unwrap();
    type_into(&client, "s-name", "morning-beta").await;
    type_into(&client, "s-cron", "0 6 * * *").await;
    type_into(&client, "s-timezone", "Asia/Seoul").await;
    type_into(&client, "s-filter", ".mall == \"beta\"").await;
    type_into(&client, "s-rate_key", ".mall").await;
    type_into(&client, "s-rate_per", "2/s").await;
    client
        .find(Locator::Id("s-window-field"))
        .await
        .unwrap()
        .select_by_value("deadLettered")
        .await
        .unwrap();
    type_into(&client, "s-window-range", "yesterday").await;
    type_into(&client, "s-transform", ". + {replayed: true} | tojson").await;
    type_into(&client, "s-max_count", "500").await;
    // A bad breaker: the form comes back with the reason and what was typed.
    type_into(&client, "s-breaker", "150%").await;
    click(&client, "form[action='/console/schedules'] button").await;
    client
        .wait()
        .for_element(Locator::Id("form-error"))
        .await
        .unwrap();
    let error = text(&client, "#form-error").await;
    assert!(error.starts_with("Breaker:"), "{error}");
    let kept = client
        .find(Locator::Id("s-transform"))
        .await
        .unwrap()
        .prop("value")
        .await
        .unwrap();
    assert_eq!(kept.as_deref(), Some(". + {replayed: true} | tojson"));
    screenshot(&client, "schedule-form-error.png").await;
    type_into(&client, "s-breaker", "20%/5m/10").await;
    click(&client, "form[action='/console/schedules'] button").await;
    client
        .wait()
        .for_element(Locator::Id("schedule-facts"))
        .await
        .unwrap();
    let facts = text(&client, "#schedule-facts").await;
    for shown in [
        "dead-lettered yesterday",
        ". + {replayed: true} | tojson",
        "2/s per .mall",
        "20% returned within 300s (after 10)",
        "500",
    ] {
        assert!(facts.contains(shown), "{shown}: {facts}");
    }
    screenshot(&client, "schedule.png").await;
    client
        .goto(&format!("{}/console/schedules", ts.base))
        .await
        .unwrap();
    client
        .find(Locator::Css("tr[data-schedule='morning-beta']"))
        .await
        .unwrap();
    screenshot(&client, "schedules.png").await;

    // Move tasks: move the rest back with a native move task, confirmed.
    client
        .goto(&format!("{}/console/moves", ts.base))
        .await
        .unwrap();
    type_into(&client, "move-rate", "50").await;
    click(&client, "form[action='/console/moves/start'] button").await;
    click(&client, "#confirm-move").await;
    let mut done = false;
    for _ in 0..200 {
        if let Ok(html) = client.source().await
            && html.contains("status-COMPLETED")
        {
            done = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(done, "the move task completes");
    assert_eq!(ts.counts(&dlq_url).await, (0, 0, 0));
    screenshot(&client, "moves.png").await;

    // The replays list, and a purge's confirmation (not confirmed: nothing is purged).
    client
        .goto(&format!("{}/console/replays", ts.base))
        .await
        .unwrap();
    assert_eq!(
        client
            .find_all(Locator::Css("#replay-table tbody tr"))
            .await
            .unwrap()
            .len(),
        1
    );
    screenshot(&client, "replays.png").await;
    client
        .goto(&format!(
            "{}/console/queues/{}/purge",
            ts.base,
            crate::console::SOURCE
        ))
        .await
        .unwrap();
    type_into(&client, "confirm-name", "not-the-name").await;
    click(&client, "#confirm-purge").await;
    client
        .wait()
        .for_element(Locator::Id("form-error"))
        .await
        .unwrap();
    screenshot(&client, "purge-confirm.png").await;
    assert_eq!(ts.counts(&src_url).await.0, (MALL_A + MALL_B + 1) as u64);

    let severe: Vec<Value> = severe_log_entries(&client, &[])
        .await
        .into_iter()
        .filter(|e| {
            let m = e["message"].as_str().unwrap_or("");
            // The refused forged POST (403) and the refused purge confirmation (400).
            !(m.contains("status of 403") || m.contains("status of 400"))
        })
        .collect();
    assert!(severe.is_empty(), "browser errors: {severe:?}");
    client.close().await.unwrap();
}
