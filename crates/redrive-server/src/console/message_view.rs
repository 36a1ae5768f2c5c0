//! One message's page body, shared by the server's console and `redrive console`: the facts
//! table, the body pretty-printed, the message attributes, and the worker's error envelope
//! (the `redrive-error` attribute `redrive-worker` puts on a dead letter) decoded.

use std::fmt::Write;

use serde_json::Value;

use super::html::esc;

/// The attribute `redrive-worker` writes on a dead letter (its `ENVELOPE_ATTRIBUTE`).
pub const ENVELOPE_ATTRIBUTE: &str = "redrive-error";

/// The body as indented JSON when it is JSON, else as it is.
pub fn pretty_body(body: &str) -> String {
    serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| body.to_string())
}

/// A message attribute in SQS's JSON shape (`DataType`, `StringValue` | `BinaryValue`) as
/// `(type, shown value)`.
fn attribute_text(v: &Value) -> (String, String) {
    let shown = v
        .get("StringValue")
        .or_else(|| v.get("BinaryValue"))
        .map(|v| v.as_str().map_or(v.to_string(), str::to_string))
        .unwrap_or_default();
    let data_type = v.get("DataType").and_then(Value::as_str).unwrap_or("");
    (data_type.to_string(), shown)
}

/// The page below the title: `facts` (label, value) as a table (`message-facts`), `actions`
/// (already HTML), the worker's error envelope when the message has one (`error-envelope`),
/// the body (`message-body`) and the attributes (`message-attributes`). Every value escaped.
pub fn render<'a>(
    facts: &[(&str, String)],
    actions: &str,
    body: &str,
    attributes: impl IntoIterator<Item = (&'a String, &'a Value)>,
) -> String {
    let attributes: Vec<(&String, &Value)> = attributes.into_iter().collect();
    let mut out = String::from("<table id=\"message-facts\"><tbody>");
    for (k, v) in facts {
        let _ = write!(out, "<tr><th>{}</th><td>{}</td></tr>", esc(k), esc(v));
    }
    out.push_str("</tbody></table>");
    out.push_str(actions);
    if let Some((_, v)) = attributes.iter().find(|(k, _)| *k == ENVELOPE_ATTRIBUTE) {
        out.push_str(&envelope_html(&attribute_text(v).1));
    }
    let _ = write!(
        out,
        "<h2>Body</h2><pre id=\"message-body\">{}</pre><h2>Message attributes</h2>",
        esc(&pretty_body(body))
    );
    if attributes.is_empty() {
        out.push_str("<p class=\"muted\">None.</p>");
        return out;
    }
    out.push_str(
        "<table id=\"message-attributes\"><thead><tr><th>Name</th><th>Type</th><th>Value</th></tr></thead><tbody>",
    );
    for (k, v) in &attributes {
        let (data_type, shown) = attribute_text(v);
        let _ = write!(
            out,
            "<tr><td><code>{}</code></td><td>{}</td><td><code>{}</code></td></tr>",
            esc(k),
            esc(&data_type),
            esc(&shown)
        );
    }
    out.push_str("</tbody></table>");
    out
}

/// The envelope's fields in the order a person reads them, then any others; a value that is
/// not a JSON object is shown as it is, with a note.
pub fn envelope_html(text: &str) -> String {
    let mut out = String::from(
        "<h2 id=\"why\">Why it failed <span class=\"muted\">(the worker's <code>redrive-error</code> envelope)</span></h2>",
    );
    let Ok(Value::Object(env)) = serde_json::from_str::<Value>(text) else {
        let _ = write!(
            out,
            "<p class=\"error\">The envelope is not a JSON object:</p><pre>{}</pre>",
            esc(text)
        );
        return out;
    };
    let mut rows: Vec<(String, String)> = Vec::new();
    let text_of = |v: &Value| v.as_str().map_or_else(|| v.to_string(), str::to_string);
    let known = [
        ("reason", "Reason"),
        ("retryable", "Retryable"),
        ("attempts", "Attempts"),
        ("throttles", "Throttles"),
        ("deferrals", "Deferrals"),
        ("first_failed_at", "First failed"),
        ("last_failed_at", "Last failed"),
        ("source_queue", "Source queue"),
        ("tenant", "Tenant"),
        ("worker_id", "Worker"),
        ("original_message_id", "Original message id"),
        ("v", "Envelope version"),
    ];
    if let Some(e) = env.get("error") {
        rows.push((
            "Error class".into(),
            e.get("class").map(text_of).unwrap_or_default(),
        ));
        rows.push((
            "Error message".into(),
            e.get("message").map(text_of).unwrap_or_default(),
        ));
    }
    for (k, label) in known {
        if let Some(v) = env.get(k) {
            rows.push((label.to_string(), text_of(v)));
        }
    }
    for (k, v) in &env {
        if k != "error" && !known.iter().any(|(n, _)| n == k) {
            rows.push((k.clone(), text_of(v)));
        }
    }
    out.push_str("<table id=\"error-envelope\"><tbody>");
    for (k, v) in rows {
        let _ = write!(
            out,
            "<tr><th>{}</th><td data-field=\"{}\">{}</td></tr>",
            esc(&k),
            esc(&k),
            esc(&v)
        );
    }
    out.push_str("</tbody></table>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_envelope_is_decoded_and_escaped() {
        let env = r#"{"v":1,"reason":"permanent_error","error":{"class":"http_404","message":"member <42> not found"},"retryable":false,"attempts":3,"tenant":"alpha","extra":"x"}"#;
        let attrs = [(
            ENVELOPE_ATTRIBUTE.to_string(),
            serde_json::json!({"DataType": "String", "StringValue": env}),
        )];
        let html = render(
            &[("Sent", "now".into())],
            "",
            "{\"a\":1}",
            attrs.iter().map(|(k, v)| (k, v)),
        );
        assert!(
            html.contains("<th>Error class</th><td data-field=\"Error class\">http_404</td>"),
            "{html}"
        );
        assert!(html.contains("member &lt;42&gt; not found"), "{html}");
        assert!(
            html.contains("data-field=\"Reason\">permanent_error<"),
            "{html}"
        );
        assert!(html.contains("data-field=\"Attempts\">3<"), "{html}");
        assert!(html.contains("data-field=\"extra\">x<"), "{html}");
        assert!(html.contains("{\n  &quot;a&quot;: 1\n}"), "{html}");
        assert!(!render(&[], "", "x", std::iter::empty()).contains("error-envelope"));
        assert!(envelope_html("nope").contains("not a JSON object"));
    }
}
