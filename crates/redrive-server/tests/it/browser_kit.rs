//! WebDriver plumbing shared by the browser tests of the server's console
//! (`console_browser.rs` here) and of `redrive console` (`crates/redrive/tests/cli/`, which
//! includes this file by path): a chromedriver process, a headless Chromium session with a
//! 1280×800 viewport, the browser log, screenshots, and a page on another site that posts a
//! forged form.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

/// A chromedriver child process, killed on drop.
pub struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub async fn start_driver() -> Driver {
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

/// A headless Chromium session whose viewport is 1280×800 (the size the console is judged
/// at), with the browser log kept.
pub async fn browser(driver: &Driver) -> Client {
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
    // The window is the viewport plus the browser's own frame.
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

/// The browser log's SEVERE entries since the last read, except those whose message
/// contains one of `expected` (such as the 403 of a refused forged POST).
pub async fn severe_log_entries(client: &Client, expected: &[&str]) -> Vec<Value> {
    let log = client
        .issue_cmd(BrowserLog)
        .await
        .expect("read the browser log");
    log.as_array()
        .expect("log entries")
        .iter()
        .filter(|e| e["level"] == "SEVERE")
        .filter(|e| {
            let message = e["message"].as_str().unwrap_or_default();
            !expected.iter().any(|x| message.contains(x))
        })
        .cloned()
        .collect()
}

/// With `REDRIVE_CONSOLE_SCREENSHOTS=DIR`, writes the page as `DIR/name` (a relative `DIR`
/// is taken from the workspace root; tests run in their crate's directory).
pub async fn screenshot(client: &Client, name: &str) {
    if let Ok(dir) = std::env::var("REDRIVE_CONSOLE_SCREENSHOTS") {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .join(dir);
        let png = client.screenshot().await.expect("screenshot");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), png).unwrap();
    }
}

/// Serves a page on another site (`localhost:PORT` is not a console's `127.0.0.1` origin)
/// whose button `#claim` posts `fields` (hidden inputs, with a made-up `csrf` token) to
/// `action`, as a forged cross-site request would. Returns the page's URL.
pub async fn forged_form_site(action: &str, fields: &[(&str, &str)]) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut inputs = format!(
        "<input type=\"hidden\" name=\"csrf\" value=\"{}\">",
        "0".repeat(64)
    );
    for (name, value) in fields {
        inputs.push_str(&format!(
            "<input type=\"hidden\" name=\"{name}\" value=\"{value}\">"
        ));
    }
    let html = format!(
        "<!DOCTYPE html><html><body><h1>Free coupons</h1>\
         <form method=\"post\" action=\"{action}\">{inputs}\
         <button id=\"claim\" type=\"submit\">Claim</button></form></body></html>"
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

/// Waits (up to 10 s) until the browser's URL path satisfies `want`: a click on a link or a
/// form's button returns before the navigation it starts has committed.
pub async fn wait_for_path(client: &Client, want: impl Fn(&str) -> bool) -> String {
    let mut path = String::new();
    for _ in 0..100 {
        if let Ok(url) = client.current_url().await {
            path = url.path().to_string();
            if want(&path) {
                return path;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the browser stayed at {path}")
}

/// The text of the element `css`; retried while a reload (a progress page's meta refresh)
/// replaces the document under the driver.
pub async fn text(client: &Client, css: &str) -> String {
    let mut last = String::new();
    for _ in 0..50 {
        match client.find(Locator::Css(css)).await {
            Ok(e) => match e.text().await {
                Ok(t) => return t,
                Err(err) => last = err.to_string(),
            },
            Err(err) => last = err.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("`{css}`: {last}")
}
