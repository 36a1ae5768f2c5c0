//! The console's state-changing pages over HTTP against a real server: CSRF refusals that
//! change nothing, group-by over several keys, selective replay (dry run → preview → confirm →
//! progress → summary, cancel), move tasks, schedules, alerts and the audit page.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

use crate::common::*;
use crate::console::{DLQ, MALL_A, MALL_B, SOURCE, csrf_token, seed_incident};

/// A cookie-keeping browser stand-in: follows no redirect, sends the console's Origin.
pub struct Browser {
    http: reqwest::Client,
    base: String,
    cookie: String,
}

impl Browser {
    pub async fn open(ts: &TestServer) -> Browser {
        Browser::open_at(&ts.base).await
    }

    pub async fn open_at(base: &str) -> Browser {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let resp = http.get(format!("{base}/console")).send().await.unwrap();
        let set = header(resp.headers(), "set-cookie").expect("a CSRF cookie");
        for part in [
            "redrive_console_csrf=",
            "HttpOnly",
            "SameSite=Strict",
            "Path=/console",
        ] {
            assert!(set.contains(part), "{set}");
        }
        Browser {
            http,
            base: base.to_string(),
            cookie: set.split(';').next().unwrap().to_string(),
        }
    }

    pub async fn get(&self, path: &str) -> (u16, String) {
        let resp = self
            .http
            .get(format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .send()
            .await
            .unwrap();
        assert!(
            resp.headers().get("set-cookie").is_none(),
            "the CSRF cookie is set once"
        );
        (resp.status().as_u16(), resp.text().await.unwrap())
    }

    /// A POST as a browser sends it: cookie, own Origin. Answers (status, Location, body).
    pub async fn post_as(
        &self,
        path: &str,
        fields: &[(String, String)],
        origin: Option<&str>,
        with_cookie: bool,
    ) -> (u16, Option<String>, String) {
        let mut body = form_urlencoded::Serializer::new(String::new());
        for (k, v) in fields {
            body.append_pair(k, v);
        }
        let mut req = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", FORM_CT)
            .body(body.finish());
        if let Some(o) = origin {
            req = req.header("origin", o);
        }
        if with_cookie {
            req = req.header("cookie", &self.cookie);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let location = header(resp.headers(), "location");
        (status, location, resp.text().await.unwrap())
    }

    pub async fn post(
        &self,
        path: &str,
        fields: &[(String, String)],
    ) -> (u16, Option<String>, String) {
        let origin = self.base.clone();
        self.post_as(path, fields, Some(&origin), true).await
    }
}

fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The hidden fields of the form with id `form_id`.
pub fn hidden_fields(html: &str, form_id: &str) -> Vec<(String, String)> {
    let start = html
        .find(&format!("id=\"{form_id}\""))
        .unwrap_or_else(|| panic!("no form {form_id}: {html}"));
    let form = &html[start..];
    let form = &form[..form.find("</form>").unwrap()];
    form.split("<input type=\"hidden\" name=\"")
        .skip(1)
        .map(|rest| {
            let name = &rest[..rest.find('"').unwrap()];
            let v = &rest[rest.find("value=\"").unwrap() + 7..];
            (unescape(name), unescape(&v[..v.find('"').unwrap()]))
        })
        .collect()
}

/// The value of `data-field="key"`'s first text.
pub fn field(html: &str, key: &str) -> String {
    let start = html
        .find(&format!("data-field=\"{key}\""))
        .unwrap_or_else(|| panic!("no field {key}"));
    let rest = &html[start..];
    let rest = &rest[rest.find("class=\"v\">").unwrap() + 10..];
    rest[..rest.find('<').unwrap()].to_string()
}

pub fn replay_status(html: &str) -> String {
    let start = html.find("id=\"replay-status\" data-status=\"").unwrap() + 32;
    html[start..start + html[start..].find('"').unwrap()].to_string()
}

pub fn preview_selected(html: &str) -> u64 {
    let start = html.find("id=\"preview-selected\" data-count=\"").unwrap() + 34;
    html[start..start + html[start..].find('"').unwrap()]
        .parse()
        .unwrap()
}

async fn replays(ts: &TestServer) -> Vec<Value> {
    let text = ts
        .http
        .get(format!("{}/_redrive/v1/replays", ts.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    serde_json::from_str::<Value>(&text).unwrap()["replays"]
        .as_array()
        .unwrap()
        .clone()
}

/// Mall counts of a queue from the server's inspection API.
pub async fn mall_counts(ts: &TestServer, queue: &str) -> BTreeMap<String, u64> {
    let text = ts
        .http
        .get(format!(
            "{}/_redrive/v1/queues/{queue}/messages?limit=1000",
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

fn pairs(fields: &[(&str, &str)]) -> Vec<(String, String)> {
    fields
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

async fn schedule_names(ts: &TestServer) -> Vec<String> {
    let (_, _, v) = ts
        .raw("GET", "/_redrive/v1/schedules", None, &[], Vec::new())
        .await;
    let v: serde_json::Value = serde_json::from_str(&v).unwrap();
    v["schedules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn console_csrf_refuses_forged_posts_and_changes_nothing() {
    let ts = TestServer::start().await;
    let (_, dlq) = seed_incident(&ts).await;
    let b = Browser::open(&ts).await;
    let (status, preview) = b
        .get(&format!(
            "/console/queues/{DLQ}/replay?preview=1&filter=.mall"
        ))
        .await;
    assert_eq!(status, 200, "{preview}");
    let good = hidden_fields(&preview, "confirm-form");
    let token = csrf_token(&preview);
    assert!(good.contains(&("csrf".to_string(), token.clone())));
    assert_eq!(b.cookie, format!("redrive_console_csrf={token}"));
    let without: Vec<(String, String)> =
        good.iter().filter(|(k, _)| k != "csrf").cloned().collect();
    let mut wrong = without.clone();
    wrong.push(("csrf".into(), "f".repeat(64)));
    let path = format!("/console/queues/{DLQ}/replay");
    let origin = ts.base.clone();
    for (what, fields, origin, cookie) in [
        ("no token", &without, Some(origin.as_str()), true),
        ("a wrong token", &wrong, Some(origin.as_str()), true),
        ("another site", &good, Some("https://evil.example"), true),
        (
            "the token without its cookie",
            &good,
            Some(origin.as_str()),
            false,
        ),
    ] {
        let (status, _, text) = b.post_as(&path, fields, origin, cookie).await;
        assert_eq!(status, 403, "{what}: {text}");
        assert!(text.contains("Nothing was changed"), "{what}: {text}");
    }
    // Nothing moved, no replay exists, and every refusal is in the audit log.
    assert_eq!(ts.counts(&dlq).await, ((MALL_A + MALL_B) as u64, 0, 0));
    assert!(replays(&ts).await.is_empty());
    let (_, audit) = b.get("/console/audit").await;
    assert_eq!(audit.matches("data-action=\"post.refused\"").count(), 4);
    assert!(audit.contains("CSRF token missing or wrong"));
    assert!(audit.contains("cross-site request"));
    // The same form with its token goes through.
    let (status, location, _) = b.post(&path, &good).await;
    assert_eq!(status, 303);
    assert!(location.unwrap().starts_with("/console/replays/"));
    assert_eq!(replays(&ts).await.len(), 1);
}

#[tokio::test]
async fn console_group_by_two_keys_counts_each_combination() {
    let ts = TestServer::start().await;
    seed_incident(&ts).await;
    let b = Browser::open(&ts).await;
    let (status, html) = b
        .get(&format!("/console/queues/{DLQ}?group=.mall&group=.command"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        crate::console::group_rows(&html),
        mall_counts(&ts, DLQ).await
    );
    let table = &html[html.find("id=\"group-pairs\"").expect("combined table")..];
    let table = &table[..table.find("</table>").unwrap()];
    let rows: Vec<Vec<String>> = table
        .split("<tr class=\"pair\">")
        .skip(1)
        .map(|r| {
            r.split("<code>")
                .skip(1)
                .map(|c| c[..c.find("</code>").unwrap()].to_string())
                .chain(std::iter::once({
                    let c = &r[r.find("data-count=\"").unwrap() + 12..];
                    c[..c.find('"').unwrap()].to_string()
                }))
                .collect()
        })
        .collect();
    assert_eq!(
        rows,
        vec![
            vec!["alpha".to_string(), "sync".into(), MALL_A.to_string()],
            vec!["beta".into(), "refund".into(), (MALL_B - 1).to_string()],
            vec!["beta".into(), "null".into(), "1".into()],
        ]
    );
    assert!(html.contains("id=\"group-table-2\""));
    assert!(html.contains("value=\".command\""));
}

#[tokio::test]
async fn console_replay_dry_run_confirm_progress_summary_and_cancel() {
    let ts = TestServer::start().await;
    let (src, dlq) = seed_incident(&ts).await;
    let b = Browser::open(&ts).await;
    let (status, form) = b.get(&format!("/console/queues/{DLQ}/replay")).await;
    assert_eq!(status, 200);
    for id in [
        "filter",
        "transform",
        "destination",
        "rate_key",
        "rate_per",
        "rate",
        "limit",
        "breaker",
    ] {
        assert!(form.contains(&format!("<label for=\"{id}\"")), "{id}");
    }
    // A bad option is shown with the form, in the CLI's words.
    let (status, html) = b
        .get(&format!(
            "/console/queues/{DLQ}/replay?preview=1&rate_key=.mall&rate_per=fast"
        ))
        .await;
    assert_eq!(status, 400);
    assert!(
        html.contains("id=\"replay-error\">Per-key rate: "),
        "{html}"
    );

    // Dry run: mall alpha only, 20/s per mall.
    let query = "preview=1&filter=.mall+%3D%3D+%22alpha%22&rate_key=.mall&rate_per=20%2Fs&sample=3";
    let (status, preview) = b
        .get(&format!("/console/queues/{DLQ}/replay?{query}"))
        .await;
    assert_eq!(status, 200, "{preview}");
    assert_eq!(preview_selected(&preview), MALL_A as u64);
    assert!(preview.contains(&format!(
        "of {} visible messages would move",
        MALL_A + MALL_B
    )));
    assert!(preview.contains(&format!("<a href=\"/console/queues/{SOURCE}\">{SOURCE}</a></td><td class=\"num\" data-count=\"{MALL_A}\"")));
    // The per-mall pacing: every selected message is alpha, 6 gaps at 20/s.
    let keys = &preview[preview.find("id=\"preview-keys\"").expect("per-key table")..];
    let keys = &keys[..keys.find("</table>").unwrap()];
    assert!(
        keys.contains(&format!(
            "<tr><td><code>alpha</code></td><td class=\"num\" data-count=\"{MALL_A}\">{MALL_A}</td><td>≈ 0.3s</td></tr>"
        )),
        "{keys}"
    );
    assert_eq!(keys.matches("<tr><td>").count(), 1);
    let sample = &preview[preview.find("id=\"preview-sample\"").unwrap()..];
    assert_eq!(
        sample[..sample.find("</table>").unwrap()]
            .matches("<tr><td>")
            .count(),
        3
    );
    // The dry run moved nothing.
    assert_eq!(ts.counts(&dlq).await.0, (MALL_A + MALL_B) as u64);
    let confirm = hidden_fields(&preview, "confirm-form");

    // A stale preview (another count) is refused and shown again.
    let stale: Vec<(String, String)> = confirm
        .iter()
        .map(|(k, v)| {
            if k == "expected" {
                (k.clone(), "99".into())
            } else {
                (k.clone(), v.clone())
            }
        })
        .collect();
    let (status, _, html) = b
        .post(&format!("/console/queues/{DLQ}/replay"), &stale)
        .await;
    assert_eq!(status, 409);
    assert!(html.contains("The DLQ changed since the preview"));
    assert!(replays(&ts).await.is_empty());

    // Confirm: the replay starts; its page shows progress until it completes.
    let (status, location, _) = b
        .post(&format!("/console/queues/{DLQ}/replay"), &confirm)
        .await;
    assert_eq!(status, 303);
    let location = location.unwrap();
    let mut page = String::new();
    for _ in 0..200 {
        page = b.get(&location).await.1;
        if replay_status(&page) != "RUNNING" {
            break;
        }
        assert!(page.contains("<meta http-equiv=\"refresh\" content=\"1\">"));
        assert!(page.contains("id=\"cancel-replay\""));
        // The recent moves, live (reloaded with the page): only alpha's.
        assert!(page.contains("id=\"recent-moves\""), "{page}");
        assert_eq!(
            page.matches("data-outcome=\"moved\"").count(),
            page.matches("<td>alpha</td>").count(),
            "{page}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(replay_status(&page), "COMPLETED", "{page}");
    assert!(!page.contains("http-equiv=\"refresh\""));
    assert_eq!(field(&page, "moved"), MALL_A.to_string());
    assert_eq!(field(&page, "remaining"), "0");
    assert_eq!(field(&page, "dlqVisible"), MALL_B.to_string());
    assert!(page.contains(&format!("COMPLETED: moved {MALL_A} of {MALL_A} selected")));
    // The move log: each message with its id, new id, key (mall) and outcome.
    assert_eq!(
        page.matches("data-outcome=\"moved\"").count(),
        MALL_A,
        "the move log: {page}"
    );
    assert_eq!(page.matches("<td>alpha</td>").count(), MALL_A, "{page}");
    // The server agrees: only mall beta is left in the DLQ, alpha is back in the source.
    assert_eq!(ts.counts(&dlq).await, (MALL_B as u64, 0, 0));
    assert_eq!(
        mall_counts(&ts, DLQ).await,
        BTreeMap::from([("beta".to_string(), MALL_B as u64)])
    );
    assert_eq!(ts.counts(&src).await.0, MALL_A as u64 + 1);
    let tasks = replays(&ts).await;
    assert_eq!(tasks[0]["moved"], MALL_A as u64);
    assert_eq!(tasks[0]["requestedBy"], "console:local:127.0.0.1");
    assert_eq!(tasks[0]["spec"]["ratePer"]["rate"], 20.0);

    // A slow replay of the rest, cancelled through the confirmation.
    let (_, preview) = b
        .get(&format!(
            "/console/queues/{DLQ}/replay?preview=1&rate=1%2Fm"
        ))
        .await;
    assert_eq!(preview_selected(&preview), MALL_B as u64);
    assert!(preview.contains(&format!(
        "At the global rate (1/m) the {MALL_B} messages take ≈ 3m 0s."
    )));
    assert!(!preview.contains("id=\"preview-keys\""));
    let (_, location, _) = b
        .post(
            &format!("/console/queues/{DLQ}/replay"),
            &hidden_fields(&preview, "confirm-form"),
        )
        .await;
    let location = location.unwrap();
    let (status, confirm_page) = b.get(&format!("{location}/cancel")).await;
    assert_eq!(status, 200);
    let fields = hidden_fields(&confirm_page, "confirm-cancel-form");
    let (status, back, _) = b.post(&format!("{location}/cancel"), &fields).await;
    assert_eq!(status, 303);
    assert_eq!(back.as_deref(), Some(location.as_str()));
    let mut page = String::new();
    for _ in 0..200 {
        page = b.get(&location).await.1;
        if replay_status(&page) == "CANCELLED" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(replay_status(&page), "CANCELLED");
    assert!(ts.counts(&dlq).await.0 >= MALL_B as u64 - 1);

    let (_, audit) = b.get("/console/audit").await;
    assert_eq!(audit.matches("data-action=\"replay.start\"").count(), 2);
    assert_eq!(audit.matches("data-action=\"replay.cancel\"").count(), 1);
    assert!(
        !audit.contains("refund"),
        "no message body in the audit log"
    );
    let (_, list) = b.get(&format!("/console/replays?source={DLQ}")).await;
    assert_eq!(
        list.matches("<tr><td><a href=\"/console/replays/").count(),
        2
    );
}

#[tokio::test]
async fn console_move_task_schedule_and_alert_pages() {
    let ts = TestServer::start().await;
    let (src, dlq) = seed_incident(&ts).await;
    let b = Browser::open(&ts).await;

    // Move tasks: review, confirm, watch it finish.
    let (_, moves) = b.get(&format!("/console/moves?source={DLQ}")).await;
    assert!(moves.contains("id=\"no-moves\""));
    assert!(moves.contains(&format!("<option value=\"{DLQ}\" selected>")));
    let (status, confirm) = b
        .get(&format!("/console/moves/start?source={DLQ}&rate=100"))
        .await;
    assert_eq!(status, 200);
    assert!(confirm.contains(&format!("({} now)", MALL_A + MALL_B)));
    let (status, location, _) = b
        .post(
            "/console/moves/start",
            &hidden_fields(&confirm, "confirm-move-form"),
        )
        .await;
    assert_eq!(status, 303, "{location:?}");
    let mut page = String::new();
    for _ in 0..200 {
        page = b.get(&location.clone().unwrap()).await.1;
        if page.contains("status-COMPLETED") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(page.contains("status-COMPLETED"), "{page}");
    assert_eq!(ts.counts(&dlq).await.0, 0);
    assert_eq!(ts.counts(&src).await.0, (MALL_A + MALL_B + 1) as u64);

    // Schedules: add, list, runs page, remove (confirmed).
    let (_, schedules) = b.get("/console/schedules").await;
    let token = csrf_token(&schedules);
    let (status, location, text) = b
        .post(
            "/console/schedules",
            &pairs(&[
                ("csrf", &token),
                ("name", "morning"),
                ("cron", "0 6 * * *"),
                ("timezone", "Asia/Seoul"),
                ("source", DLQ),
                ("window_field", "deadLettered"),
                ("window_range", "yesterday"),
                ("filter", ".mall == \"alpha\""),
                ("rate_key", ".mall"),
                ("rate_per", "2/s"),
            ]),
        )
        .await;
    assert_eq!(status, 303, "{text}");
    let location = location.unwrap();
    let (_, sched) = b.get(&location).await;
    assert!(sched.contains("0 6 * * * (Asia/Seoul)"), "{sched}");
    assert!(sched.contains("id=\"no-runs\""));
    let (_, list) = b.get("/console/schedules").await;
    assert!(list.contains("data-schedule=\"morning\""));
    let (status, _, text) = b
        .post(
            "/console/schedules",
            &pairs(&[
                ("csrf", &token),
                ("name", "bad"),
                ("cron", "nope"),
                ("source", DLQ),
            ]),
        )
        .await;
    assert_eq!(status, 400);
    assert!(text.contains("id=\"form-error\""));
    // The replay options a schedule carries: each checked with its field named, the form kept;
    // a forged cross-site POST of a good form is refused; a good one keeps every option.
    let full = |extra: &[(&'static str, &'static str)]| {
        let mut f = vec![
            ("csrf", token.as_str()),
            ("name", "nightly"),
            ("cron", "0 3 * * *"),
            ("source", DLQ),
            ("window_field", "sent"),
            ("window_range", "last:24h"),
            ("transform", ".v = 2 | tojson"),
            ("rate_key", ".mall"),
            ("rate_per", "2/s"),
            ("rate", "10/s"),
            ("breaker", "20%/5m/10"),
            ("max_count", "100"),
        ];
        for &(k, v) in extra {
            f.retain(|(f, _)| *f != k);
            f.push((k, v));
        }
        pairs(&f)
    };
    for (k, v, says) in [
        ("window_range", "last week", "Window: invalid window"),
        ("window_field", "", "Window: choose"),
        ("rate_per", "fast", "Per-key rate:"),
        ("breaker", "150%", "Breaker:"),
        ("max_count", "0", "Limit per run:"),
        ("transform", "tojson |", "Transform:"),
    ] {
        let (status, _, text) = b.post("/console/schedules", &full(&[(k, v)])).await;
        assert_eq!(status, 400, "{k}: {text}");
        assert!(text.contains(says), "{k}: {text}");
        assert!(text.contains("value=\"nightly\""), "{k}: the form is kept");
    }
    let (status, _, text) = b
        .post_as(
            "/console/schedules",
            &full(&[]),
            Some("https://evil.example"),
            true,
        )
        .await;
    assert_eq!(status, 403, "{text}");
    assert!(schedule_names(&ts).await == vec!["morning".to_string()]);
    let (status, location2, text) = b.post("/console/schedules", &full(&[])).await;
    assert_eq!(status, 303, "{text}");
    let (_, nightly) = b.get(&location2.unwrap()).await;
    for shown in [
        "sent last:24h",
        ".v = 2 | tojson",
        "2/s per .mall",
        "10/s",
        "20% returned within 300s (after 10)",
        "<code>100</code>",
    ] {
        assert!(
            nightly.contains(&shown.replace('"', "&quot;")),
            "{shown}: {nightly}"
        );
    }
    let (_, confirm) = b.get(&format!("{location}/remove")).await;
    let (status, _, _) = b
        .post(
            &format!("{location}/remove"),
            &hidden_fields(&confirm, "confirm-remove-schedule-form"),
        )
        .await;
    assert_eq!(status, 303);
    let (_, list) = b.get("/console/schedules").await;
    assert!(!list.contains("data-schedule=\"morning\""));

    // Alerts: a rule, a silence, its removal.
    let (status, _, text) = b
        .post(
            "/console/alerts/rules",
            &pairs(&[
                ("csrf", &token),
                ("name", "dlq-depth"),
                ("queue", "*-dlq"),
                ("kind", "depth"),
                ("n", "5"),
                ("m", "3"),
            ]),
        )
        .await;
    assert_eq!(status, 303, "{text}");
    let (status, _, text) = b
        .post(
            "/console/alerts/silences",
            &pairs(&[
                ("csrf", &token),
                ("rule", "dlq-depth"),
                ("duration", "2h"),
                ("comment", "incident 000"),
            ]),
        )
        .await;
    assert_eq!(status, 303, "{text}");
    // A rule with a webhook from the form; a URL that is not http(s) is refused.
    let (status, _, text) = b
        .post(
            "/console/alerts/rules",
            &pairs(&[
                ("csrf", &token),
                ("name", "dlq-slack"),
                ("queue", "*-dlq"),
                ("kind", "arrivals"),
                ("n", "10"),
                ("m", "60"),
                ("webhook", "https://hooks.example.test/T000/B000"),
                ("webhook_format", "slack"),
            ]),
        )
        .await;
    assert_eq!(status, 303, "{text}");
    let (status, _, text) = b
        .post(
            "/console/alerts/rules",
            &pairs(&[
                ("csrf", &token),
                ("name", "dlq-bad-hook"),
                ("queue", "*-dlq"),
                ("kind", "depth"),
                ("n", "1"),
                ("webhook", "ftp://hooks.example.test/x"),
            ]),
        )
        .await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("http:// or https://"), "{text}");
    let (_, _, rules) = ts
        .raw("GET", "/_redrive/v1/alerts/rules", None, &[], Vec::new())
        .await;
    let rules: serde_json::Value = serde_json::from_str(&rules).unwrap();
    let rules = rules["rules"].as_array().unwrap();
    let slack = rules.iter().find(|r| r["name"] == "dlq-slack").unwrap();
    assert_eq!(
        slack["webhooks"],
        serde_json::json!([{"url": "https://hooks.example.test/T000/B000", "format": "slack"}])
    );
    assert!(rules.iter().all(|r| r["name"] != "dlq-bad-hook"));
    let (_, alerts) = b.get("/console/alerts").await;
    assert!(alerts.contains("data-rule=\"dlq-depth\""));
    assert!(alerts.contains("depth ≥ 5 for 3 min"));
    assert!(alerts.contains("incident 000"));
    let sil = &alerts[alerts.find("data-silence=\"").unwrap() + 14..];
    let sil_id = &sil[..sil.find('"').unwrap()];
    let (status, _, _) = b
        .post(
            &format!("/console/alerts/silences/{sil_id}/remove"),
            &pairs(&[("csrf", &token)]),
        )
        .await;
    assert_eq!(status, 303);
    let (_, alerts) = b.get("/console/alerts").await;
    assert!(alerts.contains("id=\"no-silences\""));

    let (_, audit) = b.get("/console/audit").await;
    for action in [
        "move.start",
        "schedule.add",
        "schedule.remove",
        "rule.add",
        "silence.add",
        "silence.remove",
    ] {
        assert!(
            audit.contains(&format!("data-action=\"{action}\"")),
            "{action}"
        );
    }
}

#[tokio::test]
async fn console_purge_needs_the_typed_name_and_replay_one_message_links_a_dry_run() {
    let ts = TestServer::start().await;
    let (_, dlq) = seed_incident(&ts).await;
    let b = Browser::open(&ts).await;
    let (_, page) = b.get(&format!("/console/queues/{DLQ}")).await;
    assert!(page.contains(&format!("href=\"/console/queues/{DLQ}/purge\"")));

    // One message's page links to a dry run of replaying just it.
    let id_start = page
        .find(&format!("href=\"/console/queues/{DLQ}/messages/"))
        .unwrap()
        + 32
        + DLQ.len();
    let id = &page[id_start..id_start + page[id_start..].find('"').unwrap()];
    let (_, msg) = b.get(&format!("/console/queues/{DLQ}/messages/{id}")).await;
    let end = msg.find("\" id=\"replay-one\"").expect("a replay link");
    let start = msg[..end].rfind("href=\"").unwrap() + 6;
    let link = unescape(&msg[start..end]);
    let (status, preview) = b.get(&link).await;
    assert_eq!(status, 200, "{link}");
    assert_eq!(preview_selected(&preview), 1);

    // Purge: the confirmation wants the queue's name typed.
    let (status, confirm) = b.get(&format!("/console/queues/{DLQ}/purge")).await;
    assert_eq!(status, 200);
    assert!(confirm.contains(&format!(
        "{} visible, 0 in flight, 0 delayed",
        MALL_A + MALL_B
    )));
    let mut fields = hidden_fields(&confirm, "confirm-purge-form");
    fields.push(("confirm_name".into(), "mall-orders".into()));
    let (status, _, text) = b
        .post(&format!("/console/queues/{DLQ}/purge"), &fields)
        .await;
    assert_eq!(status, 400);
    assert!(text.contains("nothing was purged"));
    assert_eq!(ts.counts(&dlq).await.0, (MALL_A + MALL_B) as u64);
    fields.pop();
    fields.push(("confirm_name".into(), DLQ.into()));
    let (status, location, _) = b
        .post(&format!("/console/queues/{DLQ}/purge"), &fields)
        .await;
    assert_eq!(status, 303);
    assert_eq!(location.unwrap(), format!("/console/queues/{DLQ}"));
    assert_eq!(ts.counts(&dlq).await, (0, 0, 0));
    let (_, audit) = b.get("/console/audit").await;
    assert!(audit.contains("data-action=\"queue.purge\""));
    assert!(audit.contains(&format!(
        "{} visible, 0 in flight, 0 delayed",
        MALL_A + MALL_B
    )));
}

#[tokio::test]
async fn console_under_sigv4_checks_the_sessions_own_csrf_token() {
    use redrive_server::{Auth, Server, ServerConfig};
    let server = Server::bind(ServerConfig {
        port: 0,
        auth: Auth::SigV4 {
            keys: BTreeMap::from([
                ("AKIDALICE".to_string(), "alice-secret".to_string()),
                ("AKIDBOB".to_string(), "bob-secret".to_string()),
            ]),
        },
        ..Default::default()
    })
    .await
    .unwrap();
    let engine = server.engine();
    let ts = TestServer::from_server(server);
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let login = |key: &'static str, secret: &'static str| {
        let http = http.clone();
        let base = ts.base.clone();
        async move {
            let resp = http
                .post(format!("{base}/console/login"))
                .header("content-type", FORM_CT)
                .header("origin", &base)
                .body(format!("access_key={key}&secret={secret}"))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status().as_u16(), 303);
            assert_eq!(resp.headers().get_all("set-cookie").iter().count(), 1);
            header(resp.headers(), "set-cookie")
                .unwrap()
                .split(';')
                .next()
                .unwrap()
                .to_string()
        }
    };
    let alice = login("AKIDALICE", "alice-secret").await;
    let bob = login("AKIDBOB", "bob-secret").await;
    // The audit page, as a session sees it (no per-browser CSRF cookie under sigv4).
    let page = |cookie: String| {
        let http = http.clone();
        let base = ts.base.clone();
        async move {
            let resp = http
                .get(format!("{base}/console/audit"))
                .header("cookie", cookie)
                .send()
                .await
                .unwrap();
            assert!(
                resp.headers().get("set-cookie").is_none(),
                "no CSRF cookie under sigv4"
            );
            resp.text().await.unwrap()
        }
    };
    let token = |cookie: String| {
        let http = http.clone();
        let base = ts.base.clone();
        async move {
            let html = http
                .get(format!("{base}/console/alerts"))
                .header("cookie", cookie)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            csrf_token(&html)
        }
    };
    let (alice_token, bob_token) = (token(alice.clone()).await, token(bob.clone()).await);
    assert_ne!(alice_token, bob_token);
    assert_eq!(
        alice_token,
        token(alice.clone()).await,
        "stable within a session"
    );
    let silence = |cookie: String, csrf: String| {
        let http = http.clone();
        let base = ts.base.clone();
        async move {
            http.post(format!("{base}/console/alerts/silences"))
                .header("content-type", FORM_CT)
                .header("origin", &base)
                .header("cookie", cookie)
                .body(format!("csrf={csrf}&queue=orders-dlq&duration=1h"))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    // Bob's token in Alice's session: refused; her own: accepted, audited under her key.
    assert_eq!(silence(alice.clone(), bob_token.clone()).await, 403);
    assert!(engine.silences().is_empty());
    assert_eq!(silence(alice.clone(), alice_token.clone()).await, 303);
    assert_eq!(engine.silences().len(), 1);
    let audit = page(alice).await;
    assert!(
        audit.contains("<code>AKIDALICE</code></td><td>silence.add"),
        "{audit}"
    );
    assert!(
        audit.contains("<code>AKIDALICE</code></td><td>post.refused"),
        "{audit}"
    );
}

#[tokio::test]
async fn console_move_task_cancel_is_confirmed_and_audited() {
    let ts = TestServer::start().await;
    let (_, dlq) = seed_incident(&ts).await;
    let b = Browser::open(&ts).await;
    let (_, confirm) = b
        .get(&format!("/console/moves/start?source={DLQ}&rate=1"))
        .await;
    let (status, _, _) = b
        .post(
            "/console/moves/start",
            &hidden_fields(&confirm, "confirm-move-form"),
        )
        .await;
    assert_eq!(status, 303);
    let (_, moves) = b.get("/console/moves").await;
    let start = moves
        .find("href=\"/console/moves/cancel?handle=")
        .expect("a cancel link on the running task")
        + 6;
    let link = unescape(&moves[start..start + moves[start..].find('"').unwrap()]);
    let (status, confirm) = b.get(&link).await;
    assert_eq!(status, 200);
    let (status, _, text) = b
        .post(
            "/console/moves/cancel",
            &hidden_fields(&confirm, "confirm-cancel-move-form"),
        )
        .await;
    assert_eq!(status, 303, "{text}");
    let mut page = String::new();
    for _ in 0..100 {
        page = b.get("/console/moves").await.1;
        if page.contains("status-CANCELLED") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(page.contains("status-CANCELLED"), "{page}");
    assert!(ts.counts(&dlq).await.0 >= (MALL_A + MALL_B - 2) as u64);
    let (_, audit) = b.get("/console/audit").await;
    assert!(audit.contains("data-action=\"move.cancel\""));
}

/// The audit log is in the store: a console action and a refused POST are on the audit page
/// after the server is stopped and its redb file reopened by a new engine, and a new action
/// after the restart is listed above them.
#[tokio::test]
async fn console_audit_log_survives_a_redb_restart() {
    use std::sync::Arc;

    use redrive_engine::{Engine, EngineConfig, ManualClock};
    use redrive_store::{DurabilityMode, RedbStore};

    let dir = tempfile::tempdir().unwrap();
    let t0 = 1_776_716_430_000;
    let open = |clock: Arc<ManualClock>| {
        let store = Arc::new(RedbStore::open(dir.path(), DurabilityMode::Strict).unwrap());
        let engine = Arc::new(Engine::open(EngineConfig::default(), store.clone(), clock));
        (engine, store)
    };
    let rule = |name: &str, token: &str| {
        pairs(&[
            ("csrf", token),
            ("name", name),
            ("queue", "*-dlq"),
            ("kind", "depth"),
            ("n", "5"),
            ("m", "3"),
        ])
    };
    let audit_rows = |html: &str| -> Vec<(String, String)> {
        html.split("<tr data-action=\"")
            .skip(1)
            .map(|r| {
                let action = r[..r.find('"').unwrap()].to_string();
                let row = &r[..r.find("</tr>").unwrap()];
                let detail = row.rsplit("<td>").next().unwrap();
                (action, detail.trim_end_matches("</td>").to_string())
            })
            .collect()
    };

    let (engine, store) = open(Arc::new(ManualClock::new(t0)));
    let (base, stop, handle) = crate::common::serve_engine(engine.clone()).await;
    let b = Browser::open_at(&base).await;
    let (_, page) = b.get("/console/alerts").await;
    let token = csrf_token(&page);
    let (status, _, text) = b
        .post("/console/alerts/rules", &rule("before", &token))
        .await;
    assert_eq!(status, 303, "{text}");
    let (status, _, _) = b
        .post("/console/alerts/rules", &rule("forged", "0000"))
        .await;
    assert_eq!(status, 403);
    let (_, before) = b.get("/console/audit").await;
    let rows = audit_rows(&before);
    assert_eq!(rows.len(), 2, "{before}");
    assert_eq!(rows[0].0, "post.refused");
    assert_eq!(rows[1].0, "rule.add");

    // Restart: stop serving, close the file, open it again in a new engine.
    stop.send(()).unwrap();
    handle.await.unwrap();
    drop(engine);
    store.shutdown();
    drop(store);
    let (engine, _store) = open(Arc::new(ManualClock::new(t0 + 60_000)));
    let (base, _stop, _handle) = crate::common::serve_engine(engine.clone()).await;
    let b = Browser::open_at(&base).await;
    let (_, after) = b.get("/console/audit").await;
    assert_eq!(audit_rows(&after), rows, "{after}");
    let (_, page) = b.get("/console/alerts").await;
    let token = csrf_token(&page);
    let (status, _, _) = b
        .post("/console/alerts/rules", &rule("after", &token))
        .await;
    assert_eq!(status, 303);
    let (_, now) = b.get("/console/audit").await;
    let now = audit_rows(&now);
    assert_eq!(now.len(), 3);
    assert_eq!(now[0].0, "rule.add");
    assert!(now[0].1.contains("after"), "{now:?}");
    assert_eq!(&now[1..], &rows[..]);
}
