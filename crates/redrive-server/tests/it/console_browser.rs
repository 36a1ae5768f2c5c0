//! The console in a real headless Chromium driven over WebDriver (Debian's `chromium` and
//! `chromium-driver`): open the queues page, follow the DLQ link, group by `.mall`, open a
//! message; the counts equal the server's and the browser log holds no error.
//!
//! Needs `chromedriver` on PATH: not run by the default nextest profile (reported skipped),
//! run by `.ci/run` with `--profile browser`, where a missing driver fails it. With
//! `REDRIVE_CONSOLE_SCREENSHOTS=DIR` it writes a 1280×800 screenshot of each page into `DIR`.

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

use crate::common::*;
use crate::console::{DLQ, MALL_A, MALL_B, SCRIPT_BODY, group_rows, seed_incident};

/// A chromedriver child process, killed on drop.
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
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
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
    // Readiness: the driver listens once it can take a session.
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
    let caps = json!({
        "browserName": "chrome",
        "goog:chromeOptions": chrome,
        "goog:loggingPrefs": { "browser": "ALL" },
    });
    let Value::Object(caps) = caps else {
        unreachable!()
    };
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    let client = ClientBuilder::new(connector)
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
    let inner = client
        .execute("return [window.innerWidth, window.innerHeight]", vec![])
        .await
        .unwrap();
    assert_eq!(inner, json!([1280, 800]));
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

async fn severe_log_entries(client: &Client) -> Vec<Value> {
    let log = client
        .issue_cmd(BrowserLog)
        .await
        .expect("read the browser log");
    log.as_array()
        .expect("log entries")
        .iter()
        .filter(|e| e["level"] == "SEVERE")
        .cloned()
        .collect()
}

async fn screenshot(client: &Client, name: &str) {
    if let Ok(dir) = std::env::var("REDRIVE_CONSOLE_SCREENSHOTS") {
        let png = client.screenshot().await.expect("screenshot");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(std::path::Path::new(&dir).join(name), png).unwrap();
    }
}

async fn text(client: &Client, css: &str) -> String {
    client
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("`{css}` not found: {e}"))
        .text()
        .await
        .unwrap()
}

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
    assert!(client.current_url().await.unwrap().path().ends_with(DLQ));
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

    let severe = severe_log_entries(&client).await;
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
    assert_eq!(client.current_url().await.unwrap().path(), "/console");
    assert!(text(&client, "h1").await.starts_with("Queues"));
    // The session cookie is HttpOnly: scripts in the page cannot read it.
    let cookies = client
        .execute("return document.cookie", vec![])
        .await
        .unwrap();
    assert_eq!(cookies, json!(""));

    // The browser logs the failed login's 401 as a resource error; nothing else may be there.
    let severe: Vec<Value> = severe_log_entries(&client)
        .await
        .into_iter()
        .filter(|e| !e["message"].as_str().unwrap_or("").contains("401"))
        .collect();
    assert!(severe.is_empty(), "browser errors: {severe:?}");
    client.close().await.unwrap();
}
