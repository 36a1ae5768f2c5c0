//! `redrive console` against a real `redrive serve` in a headless Chromium (Debian's
//! `chromium` and `chromium-driver`, as the server console's browser tests): the server's alert
//! rules (add a rule and a silence through the forms, remove the rule through its
//! confirmation), a schedule with the replay options, a client-side replay whose progress
//! page lists the messages moved so far; a forged cross-site POST from another site is
//! refused; no error in the browser log.
//!
//! Named `*browser*`: run by the `browser` nextest profile only. With
//! `REDRIVE_CONSOLE_SCREENSHOTS=DIR` it writes 1280×800 screenshots (`redrive-console-*.png`).

use std::time::{Duration, Instant};

use fantoccini::{Client, Locator};
use serde_json::{Value, json};

#[path = "../../../redrive-server/tests/it/browser_kit.rs"]
mod browser_kit;
use browser_kit::*;

use crate::console::start_console;
use crate::replay::{count, send};

async fn find(client: &Client, css: &str) -> fantoccini::elements::Element {
    client
        .wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
}

async fn type_into(client: &Client, css: &str, text: &str) {
    let e = find(client, css).await;
    e.clear().await.unwrap();
    e.send_keys(text).await.unwrap();
}

async fn click(client: &Client, css: &str) {
    find(client, css).await.click().await.unwrap();
}

/// A page on another site with a form that posts an alert rule to the console.
async fn evil_site(console_base: &str) -> String {
    forged_form_site(
        &format!("{console_base}/console/alerts/rules"),
        &[("name", "forged"), ("queue", "*"), ("n", "1")],
    )
    .await
}

async fn api(endpoint: &str, path: &str) -> Value {
    let text = reqwest::get(format!("{endpoint}_redrive/v1/{path}"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    serde_json::from_str(&text).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_redrive_console_alerts_schedules_and_replay_progress() {
    let server = crate::harness::ServerProcess::start(&["--in-memory"], &[]).await;
    let e = server.endpoint();
    let sqs = server.client();
    let dlq = sqs.create_queue("pay-dlq", json!({})).await;
    let dlq_arn = sqs.attr(&dlq, "QueueArn").await;
    let src = sqs
        .create_queue(
            "pay",
            json!({"RedrivePolicy": json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "3"}).to_string()}),
        )
        .await;
    for i in 0..6 {
        let mall = if i < 4 { "alpha" } else { "beta" };
        send(
            &sqs,
            &dlq,
            &json!({"mall": mall, "n": i}).to_string(),
            json!({}),
            None,
        )
        .await;
    }
    let dir = tempfile::tempdir().unwrap();
    let console = start_console(&e, dir.path());
    let base = console.url.trim_end_matches("/console").to_string();
    let driver = start_driver().await;
    let client = browser(&driver).await;

    // Alerts: the server's rules, through the forms.
    client
        .goto(&format!("{base}/console/alerts"))
        .await
        .unwrap();
    find(&client, "#no-rules").await;
    click(&client, "details summary").await;
    type_into(&client, "#r-name", "pay-deep").await;
    type_into(&client, "#r-queue", "*-dlq").await;
    type_into(&client, "#r-n", "3").await;
    click(&client, "#add-rule").await;
    find(&client, "tr[data-rule='pay-deep']").await;
    client
        .find(Locator::Id("sil-rule"))
        .await
        .unwrap()
        .select_by_value("pay-deep")
        .await
        .unwrap();
    type_into(
        &client,
        "#sil-comment",
        "incident 000: replaying mall alpha",
    )
    .await;
    click(&client, "#add-silence").await;
    find(&client, "#silence-table").await;
    let rules = api(&e, "alerts/rules").await;
    assert_eq!(rules["rules"][0]["name"], "pay-deep", "{rules}");
    let silences = api(&e, "alerts/silences").await;
    assert_eq!(silences["silences"][0]["rule"], "pay-deep", "{silences}");
    screenshot(&client, "redrive-console-alerts.png").await;

    // A forged cross-site POST: refused, nothing added.
    client.goto(&evil_site(&base).await).await.unwrap();
    click(&client, "#claim").await;
    wait_for_path(&client, |p| p.ends_with("/alerts/rules")).await;
    let refused = text(&client, "body").await;
    assert!(refused.contains("Refused"), "{refused}");
    let rules = api(&e, "alerts/rules").await;
    assert_eq!(rules["rules"].as_array().unwrap().len(), 1, "{rules}");

    // The rule's removal, confirmed.
    client
        .goto(&format!("{base}/console/alerts"))
        .await
        .unwrap();
    click(&client, "tr[data-rule='pay-deep'] a").await;
    click(&client, "#confirm-remove-rule").await;
    find(&client, "#no-rules").await;
    assert!(
        api(&e, "alerts/rules").await["rules"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    // A schedule with the replay options.
    client
        .goto(&format!("{base}/console/schedules"))
        .await
        .unwrap();
    type_into(&client, "#s-name", "nightly-alpha").await;
    type_into(&client, "#s-cron", "0 3 * * *").await;
    type_into(&client, "#s-source", "pay-dlq").await;
    client
        .find(Locator::Id("s-window-field"))
        .await
        .unwrap()
        .select_by_value("deadLettered")
        .await
        .unwrap();
    type_into(&client, "#s-window-range", "yesterday").await;
    type_into(&client, "#s-filter", ".mall == \"alpha\"").await;
    type_into(&client, "#s-rate_key", ".mall").await;
    type_into(&client, "#s-rate_per", "2/s").await;
    type_into(&client, "#s-breaker", "20%/5m/10").await;
    type_into(&client, "#s-max_count", "500").await;
    click(&client, "#add-schedule").await;
    find(&client, "tr[data-schedule='nightly-alpha']").await;
    let s = &api(&e, "schedules").await["schedules"][0];
    assert_eq!(
        s["window"],
        json!({"field": "deadLettered", "range": "yesterday"})
    );
    assert_eq!(s["ratePer"], json!({"key": ".mall", "rate": 2.0}));
    assert_eq!(s["maxCount"], 500);
    screenshot(&client, "redrive-console-schedules.png").await;

    // A replay of mall alpha at 2/s per mall: its page lists the messages moved so far.
    client
        .goto(&format!("{base}/console/queues/pay-dlq/replay"))
        .await
        .unwrap();
    type_into(&client, "input[name='filter']", ".mall == \"alpha\"").await;
    type_into(&client, "input[name='to']", "pay").await;
    type_into(&client, "input[name='rate_key']", ".mall").await;
    type_into(&client, "input[name='rate_per']", "2/s").await;
    click(&client, "button[value='preview']").await;
    let selected = text(&client, "#selected").await;
    assert!(selected.starts_with("4 of 6"), "{selected}");
    click(&client, "button[value='confirm']").await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut shot = false;
    let done = loop {
        assert!(Instant::now() < deadline, "the replay did not end");
        let Ok(html) = client.source().await else {
            continue;
        };
        if html.contains("data-status=\"running\"") {
            if !shot && html.contains("data-outcome=\"moved\"") {
                // Live: only mall alpha's messages, each with its key.
                assert_eq!(
                    html.matches("<tr data-message=").count(),
                    html.matches("<td>alpha</td>").count(),
                    "{html}"
                );
                screenshot(&client, "redrive-console-replay-progress.png").await;
                shot = true;
            }
        } else if html.contains("data-status=\"completed\"") {
            break html;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(done.matches("data-outcome=\"moved\"").count(), 4, "{done}");
    assert_eq!(done.matches("<td>alpha</td>").count(), 4, "{done}");
    if !shot {
        screenshot(&client, "redrive-console-replay-progress.png").await;
    }
    assert_eq!(count(&sqs, &src).await, 4);
    assert_eq!(count(&sqs, &dlq).await, 2);

    // The console's audit page has every action and the refusal.
    client.goto(&format!("{base}/console/audit")).await.unwrap();
    let audit = text(&client, "#audit-table").await;
    for kind in [
        "alert rule add",
        "silence add",
        "alert rule remove",
        "schedule add",
        "refused POST",
    ] {
        assert!(audit.contains(kind), "{kind}: {audit}");
    }
    let severe = severe_log_entries(&client, &["403"]).await;
    assert!(severe.is_empty(), "browser errors: {severe:?}");
    client.close().await.unwrap();
}
