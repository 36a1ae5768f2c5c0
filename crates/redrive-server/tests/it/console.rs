//! The web console (`/console`) over HTTP against a real server: a seeded two-mall DLQ
//! incident, the queue list, group-by, the message page (bodies escaped), no receive counted
//! by browsing, and refusal under `--auth sigv4`.

use std::collections::BTreeMap;

use redrive_server::console::html::url_part;
use redrive_server::{Auth, Server, ServerConfig};

use crate::common::*;

pub const SOURCE: &str = "mall-orders";
pub const DLQ: &str = "mall-orders-dlq";
/// Messages of each mall in the DLQ.
pub const MALL_A: usize = 7;
pub const MALL_B: usize = 4;
pub const SCRIPT_BODY: &str = r#"{"mall":"beta","note":"<script>alert('pwned')</script>"}"#;

/// Seed 000 in small: two malls' orders fail and end up in the DLQ (maxReceiveCount 1), one
/// of them with markup in its body; a healthy message stays in the source.
pub async fn seed_incident(ts: &TestServer) -> (String, String) {
    let dlq = ts.create(DLQ).await;
    let policy = format!(
        r#"{{"deadLetterTargetArn":"{}","maxReceiveCount":1}}"#,
        TestServer::arn(DLQ)
    );
    let src = ts
        .create_with(SOURCE, &[("RedrivePolicy", policy.as_str())])
        .await;
    for i in 0..MALL_A {
        ts.send(
            &src,
            &format!(r#"{{"mall":"alpha","order":{i},"command":"sync"}}"#),
        )
        .await;
    }
    for i in 0..MALL_B - 1 {
        ts.send(
            &src,
            &format!(r#"{{"mall":"beta","order":{i},"command":"refund"}}"#),
        )
        .await;
    }
    ts.send(&src, SCRIPT_BODY).await;
    // First receive counts 1 (visibility 0), the next one moves every message to the DLQ.
    for _ in 0..20 {
        if ts.counts(&src).await == (0, 0, 0) {
            break;
        }
        ts.receive(&src, 10, Some(0)).await;
    }
    assert_eq!(ts.counts(&dlq).await, ((MALL_A + MALL_B) as u64, 0, 0));
    ts.send(&src, r#"{"mall":"gamma","order":99}"#).await;
    (src, dlq)
}

async fn get(ts: &TestServer, path: &str) -> (u16, String, reqwest::header::HeaderMap) {
    let resp = ts
        .http
        .get(format!("{}{path}", ts.base))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, resp.text().await.unwrap(), headers)
}

/// The text of the first element after `marker` up to the next `<`.
fn text_after<'a>(html: &'a str, marker: &str) -> &'a str {
    let start = html
        .find(marker)
        .unwrap_or_else(|| panic!("`{marker}` not in page"));
    let rest = &html[start + marker.len()..];
    let rest = &rest[rest.find('>').unwrap() + 1..];
    &rest[..rest.find('<').unwrap()]
}

/// The CSRF token in a page's forms.
pub fn csrf_token(html: &str) -> String {
    let marker = "name=\"csrf\" value=\"";
    let start = html.find(marker).expect("a CSRF field") + marker.len();
    html[start..start + html[start..].find('"').unwrap()].to_string()
}

/// Group rows `(value, count)` of the group-by table.
pub fn group_rows(html: &str) -> BTreeMap<String, u64> {
    let table = &html[html.find("id=\"group-table\"").expect("group table")..];
    let table = &table[..table.find("</table>").unwrap()];
    table
        .split("<tr><td><code>")
        .skip(1)
        .map(|row| {
            let value = &row[..row.find("</code>").unwrap()];
            let count = text_after(row, "data-count=").parse().unwrap();
            (value.to_string(), count)
        })
        .collect()
}

#[tokio::test]
async fn console_queue_list_shows_dlq_counts_and_links() {
    let ts = TestServer::start().await;
    seed_incident(&ts).await;
    let (status, html, headers) = get(&ts, "/console").await;
    assert_eq!(status, 200);
    assert!(
        header(&headers, "content-type")
            .unwrap()
            .starts_with("text/html")
    );
    assert!(
        header(&headers, "content-security-policy")
            .unwrap()
            .contains("default-src 'none'")
    );
    let row = &html[html
        .find(&format!("data-queue=\"{DLQ}\""))
        .expect("DLQ row")..];
    assert_eq!(
        text_after(row, "data-field=\"visible\""),
        (MALL_A + MALL_B).to_string()
    );
    assert_eq!(text_after(row, "data-field=\"inFlight\""), "0");
    let row = &row[..row.find("</tr>").unwrap()];
    assert!(
        row.contains(&format!("href=\"/console/queues/{SOURCE}\"")),
        "{row}"
    );
    let src_row = &html[html.find(&format!("data-queue=\"{SOURCE}\"")).unwrap()..];
    assert_eq!(text_after(src_row, "data-field=\"visible\""), "1");
    assert!(
        src_row[..src_row.find("</tr>").unwrap()]
            .contains(&format!("href=\"/console/queues/{DLQ}\""))
    );

    let (status, css, headers) = get(&ts, "/console/assets/console.css").await;
    assert_eq!(status, 200);
    assert!(
        header(&headers, "content-type")
            .unwrap()
            .starts_with("text/css")
    );
    assert!(css.contains(".series-0"));
}

#[tokio::test]
async fn console_group_by_mall_counts_exactly() {
    let ts = TestServer::start().await;
    seed_incident(&ts).await;
    let (status, html, _) = get(&ts, &format!("/console/queues/{DLQ}?group=.mall")).await;
    assert_eq!(status, 200);
    assert_eq!(
        group_rows(&html),
        BTreeMap::from([
            ("alpha".to_string(), MALL_A as u64),
            ("beta".to_string(), MALL_B as u64)
        ])
    );
    assert!(html.contains(&format!(
        "id=\"stats-scope\">{} messages read.",
        MALL_A + MALL_B
    )));
    assert!(html.contains("<code>.mall</code> <span class=\"muted\">(2 distinct)"));
    // A message-level key through $meta, and a broken expression shown as an error.
    let (_, html, _) = get(
        &ts,
        &format!("/console/queues/{DLQ}?group=%24meta.receiveCount"),
    )
    .await;
    assert_eq!(
        group_rows(&html),
        BTreeMap::from([("1".to_string(), (MALL_A + MALL_B) as u64)])
    );
    let (status, html, _) = get(&ts, &format!("/console/queues/{DLQ}?group=.mall%5B")).await;
    assert_eq!(status, 200);
    assert!(
        html.contains("class=\"error\">group by .mall[: invalid jq expression"),
        "{html}"
    );
    // Top 1 keeps the larger mall and says what it left out.
    let (_, html, _) = get(&ts, &format!("/console/queues/{DLQ}?group=.mall&top=1")).await;
    assert_eq!(
        group_rows(&html),
        BTreeMap::from([("alpha".to_string(), MALL_A as u64)])
    );
    assert!(html.contains(&format!("1 more values ({MALL_B} messages) not shown")));
}

/// Rows `(first cell, count)` of the table with `id`.
fn table_rows(html: &str, id: &str) -> Vec<(String, u64)> {
    let table = &html[html
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no table {id}"))..];
    let table = &table[..table.find("</tbody>").unwrap()];
    table
        .split("<tr>")
        .skip(2)
        .map(|row| {
            let first = &row[row.find("<td").unwrap()..];
            let first = &first[first.find('>').unwrap() + 1..];
            let first = first.trim_start_matches("<code>");
            let first = &first[..first.find('<').unwrap()];
            let count = text_after(row, "data-count=").parse().unwrap();
            (first.to_string(), count)
        })
        .collect()
}

#[tokio::test]
async fn console_dlq_aggregations_buckets_receive_counts_shapes_burst_and_enrich() {
    let ts = TestServer::start().await;
    seed_incident(&ts).await;
    let mapping = "mall,project,owner\nalpha,p-1,team-a\n";
    let path = format!(
        "/console/queues/{DLQ}?group=.mall&bucket=dead-lettered:minute&enrich={}",
        url_part(mapping)
    );
    let (status, html, _) = get(&ts, &path).await;
    assert_eq!(status, 200);
    let total = (MALL_A + MALL_B) as u64;
    // The first key joined with the mapping: alpha has its columns, beta empty cells.
    assert!(
        html.contains("<th class=\"enrich\">project</th><th class=\"enrich\">owner</th>"),
        "{html}"
    );
    assert!(html.contains(&format!(
        "<td><code>alpha</code></td><td class=\"enrich\">p-1</td><td class=\"enrich\">team-a</td>\
         <td class=\"num\" data-count=\"{MALL_A}\">"
    )));
    assert!(html.contains(&format!(
        "<td><code>beta</code></td><td class=\"enrich\"></td><td class=\"enrich\"></td>\
         <td class=\"num\" data-count=\"{MALL_B}\">"
    )));
    // Dead-lettered minutes: every DLQ message is in one, and the buckets are whole minutes.
    let buckets = table_rows(&html, "bucket-table");
    assert!(!buckets.is_empty());
    assert_eq!(buckets.iter().map(|(_, c)| c).sum::<u64>(), total);
    for start in html.split("data-start=\"").skip(1) {
        let ms: u64 = start[..start.find('"').unwrap()].parse().unwrap();
        assert_eq!(ms % 60_000, 0);
    }
    // Every message was received once in the source before its move.
    assert_eq!(
        table_rows(&html, "receive-table"),
        vec![("1".to_string(), total)]
    );
    // Payload shapes: the orders, and the one body with a note.
    assert_eq!(
        table_rows(&html, "shape-table"),
        vec![
            ("{command,mall,order}".to_string(), total - 1),
            ("{mall,note}".to_string(), 1)
        ]
    );
    // The burst signature: the dominant sent minute, within the messages read.
    let burst = &html[html.find("id=\"burst\"").expect("burst signature")..];
    let count: u64 = {
        let c = &burst[burst.find("data-count=\"").unwrap() + 12..];
        c[..c.find('"').unwrap()].parse().unwrap()
    };
    assert!(count >= total.div_ceil(2) && count <= total, "{burst}");
    // Errors in the words of `redrive stats`; a mapping without a key is refused.
    let (_, html, _) = get(
        &ts,
        &format!("/console/queues/{DLQ}?bucket=received:minute"),
    )
    .await;
    assert!(
        html.contains("field must be `sent` or `dead-lettered`"),
        "{html}"
    );
    let (_, html, _) = get(&ts, &format!("/console/queues/{DLQ}?enrich=a%2Cb")).await;
    assert!(html.contains("joins the first group-by key"), "{html}");
    // The first view aggregates nothing.
    let (_, html, _) = get(&ts, &format!("/console/queues/{DLQ}")).await;
    assert!(!html.contains("id=\"shape-table\""));
}

#[tokio::test]
async fn console_message_list_filters_by_jq() {
    let ts = TestServer::start().await;
    seed_incident(&ts).await;
    let listed = |html: &str| -> Vec<String> {
        let t = &html[html.find("id=\"message-table\"").expect("message table")..];
        let t = &t[..t.find("</table>").unwrap()];
        t.split("<td class=\"body\">")
            .skip(1)
            .map(|b| b[..b.find("</td>").unwrap()].to_string())
            .collect()
    };
    let (status, html, _) = get(
        &ts,
        &format!(
            "/console/queues/{DLQ}?filter={}",
            url_part(".mall == \"beta\"")
        ),
    )
    .await;
    assert_eq!(status, 200);
    let rows = listed(&html);
    assert_eq!(rows.len(), MALL_B, "{html}");
    assert!(
        rows.iter().all(|b| b.contains("&quot;beta&quot;")),
        "{rows:?}"
    );
    // The filter stays in the form.
    assert!(
        html.contains("value=\".mall == &quot;beta&quot;\""),
        "{html}"
    );
    // Over `$meta`, as a replay's filter.
    let (_, html, _) = get(
        &ts,
        &format!(
            "/console/queues/{DLQ}?filter={}",
            url_part("$meta.receiveCount == 1 and .command == \"sync\"")
        ),
    )
    .await;
    assert_eq!(listed(&html).len(), MALL_A);
    // Nothing matches: an empty table; a broken filter: its error, no table.
    let (_, html, _) = get(
        &ts,
        &format!("/console/queues/{DLQ}?filter=.mall%20%3D%3D%201"),
    )
    .await;
    assert!(listed(&html).is_empty());
    let (_, html, _) = get(&ts, &format!("/console/queues/{DLQ}?filter=.mall%5B")).await;
    assert!(html.contains("class=\"error\">"), "{html}");
    assert!(!html.contains("id=\"message-table\""));
    // Unfiltered: all of them.
    let (_, html, _) = get(&ts, &format!("/console/queues/{DLQ}")).await;
    assert_eq!(listed(&html).len(), MALL_A + MALL_B);
}

#[tokio::test]
async fn console_message_page_escapes_the_body_and_browsing_receives_nothing() {
    let ts = TestServer::start().await;
    let (_, dlq) = seed_incident(&ts).await;
    let (status, html, _) = get(&ts, &format!("/console/queues/{DLQ}")).await;
    assert_eq!(status, 200);
    assert!(!html.contains("<script>"), "raw markup on the queue page");
    assert!(html.contains("&lt;script&gt;alert(&#39;pwned&#39;)&lt;/script&gt;"));
    assert!(html.contains("<svg class=\"chart\""));
    // Every DLQ message is listed with a link to its page.
    let links: Vec<&str> = html
        .split(&format!("href=\"/console/queues/{DLQ}/messages/"))
        .skip(1)
        .map(|s| &s[..s.find('"').unwrap()])
        .collect();
    assert_eq!(links.len(), MALL_A + MALL_B);

    let mut script_pages = 0;
    for id in &links {
        let (status, page, _) = get(&ts, &format!("/console/queues/{DLQ}/messages/{id}")).await;
        assert_eq!(status, 200);
        assert!(!page.contains("<script>"), "raw markup on a message page");
        assert!(
            page.contains(&TestServer::arn(SOURCE)),
            "DeadLetterQueueSourceArn shown"
        );
        assert_eq!(text_after(&page, "<th>Receive count</th><td"), "1");
        if page.contains("&lt;script&gt;") {
            script_pages += 1;
            // Pretty-printed JSON, escaped.
            assert!(
                page.contains("  &quot;mall&quot;: &quot;beta&quot;"),
                "{page}"
            );
        }
    }
    assert_eq!(script_pages, 1);
    let (status, _, _) = get(&ts, &format!("/console/queues/{DLQ}/messages/no-such-id")).await;
    assert_eq!(status, 404);
    let (status, _, _) = get(&ts, "/console/queues/no-such-queue").await;
    assert_eq!(status, 400);

    // The SDK sees every message with one more receive than before the visits: the console
    // counted none. (Receive count 1 from the source, plus this receive.)
    let received = ts.receive(&dlq, 10, Some(30)).await;
    let mut all = received;
    all.extend(ts.receive(&dlq, 10, Some(30)).await);
    assert_eq!(all.len(), MALL_A + MALL_B);
    for m in &all {
        assert_eq!(sys_attr(m, "ApproximateReceiveCount").as_deref(), Some("2"));
    }
}

#[tokio::test]
async fn console_pages_messages_with_the_cursor() {
    let ts = TestServer::start().await;
    let q = ts.create("many").await;
    for i in 0..60 {
        ts.send(&q, &format!(r#"{{"n":{i}}}"#)).await;
    }
    let (_, first, _) = get(&ts, "/console/queues/many").await;
    let next = text_after(&first, "rel=\"next\"");
    assert_eq!(next, "Next page →");
    let href_start = first
        .rfind("<a href=\"/console/queues/many?after=")
        .unwrap();
    let href = &first[href_start + 9..];
    let href = href[..href.find('"').unwrap()].replace("&amp;", "&");
    let (_, second, _) = get(&ts, &href).await;
    let rows = |html: &str| {
        html.matches("<tr><td><a href=\"/console/queues/many/messages/")
            .count()
    };
    assert_eq!(rows(&first), 50);
    assert_eq!(rows(&second), 10);
    assert!(second.contains("{&quot;n&quot;:59}"));
    assert!(!second.contains("{&quot;n&quot;:0}"));
    assert!(!second.contains("rel=\"next\""));
}

#[tokio::test]
async fn console_under_sigv4_needs_a_login_with_a_configured_key() {
    let server = Server::bind(ServerConfig {
        port: 0,
        auth: Auth::SigV4 {
            keys: BTreeMap::from([("AKIDCONSOLE".to_string(), "s3cr3t+key".to_string())]),
        },
        ..Default::default()
    })
    .await
    .unwrap();
    let ts = TestServer::from_server(server);
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let url = |p: &str| format!("{}{p}", ts.base);
    let get = |path: &str, cookie: Option<&str>| {
        let mut r = http.get(url(path));
        if let Some(c) = cookie {
            r = r.header("cookie", c);
        }
        r.send()
    };
    let post = |path: &str, form: &str, origin: &str, cookie: Option<&str>| {
        let mut r = http
            .post(url(path))
            .header("content-type", FORM_CT)
            .header("origin", origin)
            .body(form.to_string());
        if let Some(c) = cookie {
            r = r.header("cookie", c);
        }
        r.send()
    };
    let same_origin = ts.base.clone();

    // Nothing but the login page (and its style sheet) without a session.
    for path in [
        "/console",
        "/console/queues/x",
        "/console/queues/x/messages/y",
    ] {
        let resp = get(path, None).await.unwrap();
        assert_eq!(resp.status().as_u16(), 303, "{path}");
        assert_eq!(
            header(resp.headers(), "location").as_deref(),
            Some("/console/login")
        );
    }
    assert_eq!(
        get("/console/assets/console.css", None)
            .await
            .unwrap()
            .status()
            .as_u16(),
        200
    );
    let form = get("/console/login", None)
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(form.contains("name=\"secret\" autocomplete=\"current-password\""));

    // A wrong secret, an unknown key: 401 and no cookie.
    for body in [
        "access_key=AKIDCONSOLE&secret=wrong",
        "access_key=NOPE&secret=s3cr3t%2Bkey",
    ] {
        let resp = post("/console/login", body, &same_origin, None)
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 401);
        assert!(resp.headers().get("set-cookie").is_none());
        assert!(
            resp.text()
                .await
                .unwrap()
                .contains("Unknown access key id, or a wrong secret.")
        );
    }
    // The right key from another site: refused.
    let good = "access_key=AKIDCONSOLE&secret=s3cr3t%2Bkey";
    let resp = post("/console/login", good, "https://evil.example", None)
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 403);
    assert!(resp.headers().get("set-cookie").is_none());

    // The right key: a session cookie, HttpOnly and SameSite=Strict.
    let resp = post("/console/login", good, &same_origin, None)
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 303);
    assert_eq!(
        header(resp.headers(), "location").as_deref(),
        Some("/console")
    );
    let set_cookie = header(resp.headers(), "set-cookie").unwrap();
    for part in ["HttpOnly", "SameSite=Strict", "Path=/console"] {
        assert!(set_cookie.contains(part), "{set_cookie}");
    }
    let cookie = set_cookie.split(';').next().unwrap().to_string();
    let resp = get("/console", Some(&cookie)).await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert!(resp.text().await.unwrap().contains("Log out"));
    assert_eq!(
        get("/console", Some("redrive_console=forged"))
            .await
            .unwrap()
            .status()
            .as_u16(),
        303
    );
    // The console session opens the console only, not the signed APIs.
    let resp = get("/_redrive/v1/queues/x", Some(&cookie)).await.unwrap();
    assert_eq!(resp.status().as_u16(), 403);

    // Log out: refused cross-site, then closes the session.
    let resp = post("/console/logout", "", "https://evil.example", Some(&cookie))
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 403);
    assert_eq!(
        get("/console", Some(&cookie))
            .await
            .unwrap()
            .status()
            .as_u16(),
        200
    );
    // Same origin but without the session's CSRF token, or with another one: refused.
    let page = get("/console", Some(&cookie))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let token = csrf_token(&page);
    assert_eq!(token.len(), 64);
    assert_ne!(cookie, format!("redrive_console={token}"));
    for body in ["".to_string(), format!("csrf={}", "0".repeat(64))] {
        let resp = post("/console/logout", &body, &same_origin, Some(&cookie))
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 403, "{body}");
        assert!(resp.text().await.unwrap().contains("CSRF token"));
    }
    assert_eq!(
        get("/console", Some(&cookie))
            .await
            .unwrap()
            .status()
            .as_u16(),
        200
    );
    let resp = post(
        "/console/logout",
        &format!("csrf={token}"),
        &same_origin,
        Some(&cookie),
    )
    .await
    .unwrap();
    assert_eq!(resp.status().as_u16(), 303);
    assert_eq!(
        get("/console", Some(&cookie))
            .await
            .unwrap()
            .status()
            .as_u16(),
        303
    );
}

#[tokio::test]
async fn console_chart_draws_the_minute_history() {
    // A manual clock in the middle of a minute: the background history writer cannot cross a
    // minute boundary during the test and draw a point before the test writes one.
    let clock = std::sync::Arc::new(redrive_engine::ManualClock::new(1_776_716_430_000));
    let engine = std::sync::Arc::new(redrive_engine::Engine::open(
        redrive_engine::EngineConfig::default(),
        std::sync::Arc::new(redrive_engine::MemoryStore::new()),
        clock.clone(),
    ));
    let ts = TestServer::with_engine(engine.clone()).await;
    seed_incident(&ts).await;
    // Before any minute is written the chart is empty but drawn.
    let (_, html, _) = get(&ts, &format!("/console/queues/{SOURCE}")).await;
    assert!(html.contains("<svg class=\"chart\""));
    assert!(!html.contains("<circle"));
    engine.flush_history_partial().await;
    let (_, html, _) = get(&ts, &format!("/console/queues/{SOURCE}")).await;
    let sent = MALL_A + MALL_B + 1;
    assert!(
        html.contains(&format!(
            "data-metric=\"NumberOfMessagesSent\">sent: total {sent}<"
        )),
        "{html}"
    );
    assert!(html.contains("data-metric=\"ApproximateNumberOfMessagesVisible\">visible: last 1<"));
    assert!(html.contains("<circle"));
    let (_, html, _) = get(&ts, &format!("/console/queues/{DLQ}")).await;
    let arrivals = MALL_A + MALL_B;
    assert!(html.contains(&format!(
        "data-metric=\"NumberOfDeadLetterArrivals\">dead-letter arrivals: total {arrivals}<"
    )));
    // The burst window on the DLQ's chart: the dominant dead-letter minute (the clock's) and
    // the window from 5 minutes before to 10 after it.
    let minute = 1_776_716_430_000_u64 / 60_000 * 60_000;
    assert!(
        html.contains(&format!(
            "<g id=\"burst-window\" data-minute=\"{minute}\" data-start=\"{}\" data-end=\"{}\">",
            minute - 5 * 60_000,
            minute + 11 * 60_000
        )),
        "{html}"
    );
    assert!(html.contains(&format!(
        "id=\"burst-note\" data-minute=\"{minute}\">Burst: {arrivals} dead-letter arrivals"
    )));
    assert!(!html.contains("id=\"burst-history\""));
    // Not on a queue that is no DLQ.
    let (_, html, _) = get(&ts, &format!("/console/queues/{SOURCE}")).await;
    assert!(!html.contains("burst-window"));
    // Three hours later the burst is out of the hour's chart: its window gets its own.
    clock.advance_ms(3 * 3_600_000);
    let (_, html, _) = get(&ts, &format!("/console/queues/{DLQ}")).await;
    let window = &html[html
        .find("id=\"burst-history\"")
        .expect("a burst-window chart")..];
    assert!(
        window.contains(&format!("<g id=\"burst-window\" data-minute=\"{minute}\"")),
        "{window}"
    );
    let hour = &html[..html.find("id=\"burst-history\"").unwrap()];
    assert!(!hour.contains("<g id=\"burst-window\""), "{hour}");
}
