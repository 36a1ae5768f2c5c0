//! `redrive console` against a real `redrive serve` in a headless Chromium (Debian's
//! `chromium` and `chromium-driver`, as the server console's browser tests): the server's alert
//! rules (add a rule and a silence through the forms, remove the rule through its
//! confirmation), a schedule with the replay options, a client-side replay whose progress
//! page lists the messages moved so far; a forged cross-site POST from another site is
//! refused; no error in the browser log.
//!
//! Named `*browser*`: run by the `browser` nextest profile only. With
//! `REDRIVE_CONSOLE_SCREENSHOTS=DIR` it writes 1280×800 screenshots (`redrive-console-*.png`).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

use crate::console::start_console;
use crate::replay::{count, send};

struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_driver() -> Driver {
    let port = crate::harness::free_port();
    let child = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver is not installed (apt-get install chromium chromium-driver)");
    let driver = Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return driver;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("chromedriver did not start listening on port {port}");
}

async fn browser(driver: &Driver) -> Client {
    let mut chrome = json!({
        "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--window-size=1280,800", "--hide-scrollbars"],
    });
    if std::path::Path::new("/usr/bin/chromium").exists() {
        chrome["binary"] = json!("/usr/bin/chromium");
    }
    let Value::Object(caps) = json!({
        "browserName": "chrome",
        "goog:chromeOptions": chrome,
        "goog:loggingPrefs": { "browser": "ALL" },
    }) else {
        unreachable!()
    };
    let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("start a Chromium session");
    // A 1280×800 viewport: the window is the viewport plus the browser's own frame.
    client.goto("about:blank").await.unwrap();
    let inner = client
        .execute("return [window.innerWidth, window.innerHeight]", vec![])
        .await
        .unwrap();
    let (w, h) = (inner[0].as_u64().unwrap(), inner[1].as_u64().unwrap());
    let (_, _, outer_w, outer_h) = client.get_window_rect().await.unwrap();
    client
        .set_window_size((outer_w + 1280 - w) as u32, (outer_h + 800 - h) as u32)
        .await
        .unwrap();
    client
}

/// chromedriver's browser log (`POST /session/{id}/se/log`, outside W3C WebDriver).
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/se/log",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(r#"{"type":"browser"}"#.into()))
    }
}

/// The browser log's SEVERE entries, except the 403 of the forged POST (the refusal itself).
async fn severe_log_entries(client: &Client) -> Vec<Value> {
    let log = client.issue_cmd(BrowserLog).await.expect("the browser log");
    log.as_array()
        .expect("log entries")
        .iter()
        .filter(|e| e["level"] == "SEVERE")
        .filter(|e| !e["message"].as_str().unwrap_or_default().contains("403"))
        .cloned()
        .collect()
}

async fn screenshot(client: &Client, name: &str) {
    if let Ok(dir) = std::env::var("REDRIVE_CONSOLE_SCREENSHOTS") {
        // A relative directory is taken from the workspace root (tests run in the crate's).
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .join(dir);
        let png = client.screenshot().await.expect("screenshot");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), png).unwrap();
    }
}

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

async fn text(client: &Client, css: &str) -> String {
    find(client, css).await.text().await.unwrap()
}

/// A page on another site (`localhost:OTHER` is not the console's origin) whose form posts an
/// alert rule to the console, as a forged cross-site request would.
async fn evil_site(console_base: &str) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let html = format!(
        "<!DOCTYPE html><html><body><h1>Free coupons</h1>\
         <form method=\"post\" action=\"{console_base}/console/alerts/rules\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
         <input type=\"hidden\" name=\"name\" value=\"forged\">\
         <input type=\"hidden\" name=\"queue\" value=\"*\">\
         <input type=\"hidden\" name=\"n\" value=\"1\">\
         <button id=\"claim\" type=\"submit\">Claim</button></form></body></html>",
        "0".repeat(64)
    );
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut sock, _)) = listener.accept().await {
            let html = html.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = sock.read(&mut buf).await;
                let resp = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{html}",
                    html.len()
                );
                let _ = sock.write_all(resp.as_bytes()).await;
            });
        }
    });
    format!("http://localhost:{port}/")
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
    let severe = severe_log_entries(&client).await;
    assert!(severe.is_empty(), "browser errors: {severe:?}");
    client.close().await.unwrap();
}
