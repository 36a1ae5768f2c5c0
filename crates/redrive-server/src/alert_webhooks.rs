//! Delivery of alert notifications (see `docs/alerts.md`, "Webhooks"): a background task takes
//! due notifications from the engine's persisted outbox, POSTs each to its webhook (generic
//! JSON or Slack's `{"text", "blocks"}`) over HTTP or HTTPS (hyper-util's client, rustls with
//! the system's roots), and reports the outcome back: a 2xx removes it from the outbox, anything
//! else is retried by the engine's backoff. At least once: a notification whose answer was lost
//! (crash, timeout) is sent again; receivers can deduplicate on `X-Redrive-Notification-Id`.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use redrive_engine::Engine;
use redrive_engine::alerts::{Notification, NotificationEvent, WebhookFormat, time_text};
use serde_json::{Value, json};

type HttpsClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// One attempt may take this long (connect, send, answer).
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the outbox is looked at besides when the engine signals new notifications
/// (retries fall due by the engine's clock).
const POLL: Duration = Duration::from_millis(250);
/// Deliveries started per look.
const BATCH: usize = 16;

/// The HTTP(S) client: rustls (ring) with the system's root certificates, or with none when
/// the system has none (http:// webhooks still work; https:// ones fail and are retried).
fn client() -> Option<HttpsClient> {
    let provider = || Arc::new(rustls::crypto::ring::default_provider());
    let builder = match hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_native_roots(provider())
    {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!(error = %e, "no TLS root certificates found; https webhooks will fail");
            let config = rustls::ClientConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()
                .ok()?
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth();
            hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(config)
        }
    };
    let https = builder.https_or_http().enable_http1().build();
    Some(Client::builder(TokioExecutor::new()).build(https))
}

/// Starts the deliverer; it ends when the engine is dropped.
pub fn spawn(engine: &Arc<Engine>) {
    let engine = Arc::downgrade(engine);
    tokio::spawn(async move {
        let client = client();
        if client.is_none() {
            tracing::error!("no TLS configuration; alert webhooks cannot be delivered");
        }
        loop {
            let Some(e) = engine.upgrade() else { return };
            // On a shared store only the holder of the alerts lease delivers.
            let due = if e.alert_delivery_turn().await {
                e.due_alert_notifications(BATCH)
            } else {
                Vec::new()
            };
            for n in due {
                let (e, client) = (e.clone(), client.clone());
                tokio::spawn(async move {
                    let result = match &client {
                        Some(c) => deliver(c, &n).await,
                        None => Err("no HTTP client (TLS configuration failed)".into()),
                    };
                    if let Err(err) = &result {
                        tracing::info!(
                            rule = %n.rule, queue = %n.queue, attempt = n.attempts + 1,
                            error = %err, "alert webhook failed"
                        );
                    }
                    e.alert_notification_result(&n.id, result).await;
                });
            }
            let changed = e.clone();
            drop(e);
            tokio::select! {
                () = changed.alert_outbox_changed() => {}
                () = tokio::time::sleep(POLL) => {}
            }
        }
    });
}

async fn deliver(client: &HttpsClient, n: &Notification) -> Result<(), String> {
    let body = match n.format {
        WebhookFormat::Json => generic_body(n),
        WebhookFormat::Slack => slack_body(n),
    };
    let request = http::Request::post(&n.url)
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(http::header::USER_AGENT, "redrive-alerts")
        .header("x-redrive-notification-id", &n.id)
        .body(Full::new(Bytes::from(body.to_string())))
        .map_err(|e| format!("bad webhook URL: {e}"))?;
    match tokio::time::timeout(ATTEMPT_TIMEOUT, client.request(request)).await {
        Err(_) => Err(format!("no answer within {}s", ATTEMPT_TIMEOUT.as_secs())),
        Ok(Err(e)) => Err(format!("{e}")),
        Ok(Ok(resp)) if resp.status().is_success() => Ok(()),
        Ok(Ok(resp)) => Err(format!("HTTP {}", resp.status().as_u16())),
    }
}

fn event_text(n: &Notification) -> &'static str {
    match n.event {
        NotificationEvent::Alarm => "ALARM",
        NotificationEvent::Ok => "OK",
    }
}

/// Redrive's generic body (docs/alerts.md).
pub fn generic_body(n: &Notification) -> Value {
    json!({
        "version": 1,
        "notificationId": n.id,
        "event": event_text(n),
        "status": match n.event { NotificationEvent::Alarm => "firing", NotificationEvent::Ok => "resolved" },
        "rule": n.rule,
        "ruleId": n.rule_id,
        "severity": n.severity,
        "region": n.region,
        "queue": n.queue,
        "condition": n.condition,
        "reason": n.reason,
        "at": time_text(n.at_ms),
        "atMs": n.at_ms,
    })
}

fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut s: String = text.chars().take(max - 1).collect();
    s.push('…');
    s
}

/// Slack's incoming-webhook body: `text` (the fallback) and `blocks`.
pub fn slack_body(n: &Notification) -> Value {
    let (icon, word) = match n.event {
        NotificationEvent::Alarm => (":rotating_light:", "ALARM"),
        NotificationEvent::Ok => (":white_check_mark:", "RESOLVED"),
    };
    let text = format!(
        "{icon} [{}] {word} {} — {}: {}",
        n.severity, n.queue, n.rule, n.reason
    );
    json!({
        "text": clip(&text, 3000),
        "blocks": [
            {
                "type": "header",
                "text": {
                    "type": "plain_text",
                    "text": clip(&format!("{word} · {} · {}", n.severity, n.queue), 150),
                }
            },
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": clip(&format!("*Rule* `{}` ({})\n{}", n.rule, n.condition, n.reason), 3000),
                }
            },
            {
                "type": "context",
                "elements": [
                    { "type": "mrkdwn", "text": format!("{} · {} · Redrive", time_text(n.at_ms), n.region) }
                ]
            }
        ]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(event: NotificationEvent) -> Notification {
        Notification {
            id: "1".into(),
            event,
            rule_id: "r1".into(),
            rule: "dlq-p0".into(),
            severity: "P0".into(),
            region: "us-east-1".into(),
            queue: "orders-dlq".into(),
            condition: "depth ≥ 100 for 1 min".into(),
            reason: "120 messages visible".into(),
            at_ms: 1_700_000_000_000,
            url: "http://x".into(),
            format: WebhookFormat::Slack,
            attempts: 0,
            next_attempt_ms: 0,
            last_error: None,
        }
    }

    #[test]
    fn slack_body_has_text_and_blocks() {
        let b = slack_body(&n(NotificationEvent::Alarm));
        assert_eq!(
            b["text"],
            ":rotating_light: [P0] ALARM orders-dlq — dlq-p0: 120 messages visible"
        );
        assert_eq!(b["blocks"][0]["text"]["text"], "ALARM · P0 · orders-dlq");
        let ok = slack_body(&n(NotificationEvent::Ok));
        assert!(ok["text"].as_str().unwrap().contains("RESOLVED"));
    }

    #[test]
    fn generic_body_fields() {
        let b = generic_body(&n(NotificationEvent::Ok));
        assert_eq!(b["status"], "resolved");
        assert_eq!(b["event"], "OK");
        assert_eq!(b["at"], "2023-11-14T22:13Z");
    }
}
