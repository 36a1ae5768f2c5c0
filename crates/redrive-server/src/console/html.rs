//! HTML building blocks: escaping, the page frame, times and durations.

use std::fmt::Write;

/// Escapes text for HTML element content and double-quoted attribute values. Every value that
/// reaches a page goes through here (message bodies are untrusted input).
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Percent-encodes one URL path segment or query value.
pub fn url_part(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// A link to a queue's page.
pub fn queue_link(name: &str) -> String {
    format!(
        "<a href=\"/console/queues/{}\">{}</a>",
        url_part(name),
        esc(name)
    )
}

/// The page frame: `title` and `body_html` (already escaped by the caller).
pub fn page(title: &str, body_html: &str) -> String {
    page_refreshing(title, body_html, None)
}

/// The page frame; with `refresh_secs` the browser reloads the page that often (live progress
/// without a script: a `<meta http-equiv="refresh">`, allowed by the strict CSP).
pub fn page_refreshing(title: &str, body_html: &str, refresh_secs: Option<u32>) -> String {
    page_with_nav(title, body_html, refresh_secs, SERVER_NAV)
}

/// The navigation of the server's console.
const SERVER_NAV: &str = "<a href=\"/console\">Queues</a>\
     <a href=\"/console/replays\" accesskey=\"r\">Replays</a>\
     <a href=\"/console/moves\" accesskey=\"m\">Move tasks</a>\
     <a href=\"/console/schedules\" accesskey=\"s\">Schedules</a>\
     <a href=\"/console/alerts\" accesskey=\"a\">Alerts</a>\
     <a href=\"/console/audit\">Audit</a>";

/// The page frame with another navigation (`nav_html`: trusted markup, e.g. the links of
/// `redrive console`, which has no server-side tasks).
pub fn page_with_nav(
    title: &str,
    body_html: &str,
    refresh_secs: Option<u32>,
    nav_html: &str,
) -> String {
    let mut out = String::with_capacity(body_html.len() + 1024);
    let refresh = refresh_secs.map_or(String::new(), |s| {
        format!("<meta http-equiv=\"refresh\" content=\"{s}\">")
    });
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">{refresh}\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{} · Redrive console</title><link rel=\"icon\" href=\"data:,\">\
         <link rel=\"stylesheet\" href=\"/console/assets/console.css\"></head>\
         <body><header><a href=\"/console\" accesskey=\"q\">Redrive console</a>\
         <nav aria-label=\"Sections\">{nav_html}</nav></header>\
         <main>{}</main></body></html>\n",
        esc(title),
        body_html
    );
    out
}

/// The hidden CSRF field every state-changing form carries.
pub fn csrf_field(token: &str) -> String {
    format!(
        "<input type=\"hidden\" name=\"csrf\" value=\"{}\">",
        esc(token)
    )
}

/// A hidden field.
pub fn hidden(name: &str, value: &str) -> String {
    format!(
        "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
        esc(name),
        esc(value)
    )
}

/// `2026-04-20 20:20:05Z` (UTC, seconds).
pub fn time_text(ms: u64) -> String {
    let secs = ms / 1000;
    let days = (secs / 86_400) as i64;
    let (y, m, d) = civil_from_days(days);
    let rem = secs % 86_400;
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// `45s`, `12m 3s`, `3h 5m`, `2d 4h`.
pub fn age_text(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {}s", s / 60, s % 60),
        3600..86_400 => format!("{}h {}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d {}h", s / 86_400, s % 86_400 / 3600),
    }
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// The purge confirmation page's body, shared by the server console and `redrive console`:
/// `counts` describes the queue's messages now (HTML), `target` where the purge goes (HTML,
/// empty for this server), and the queue's name must be typed to confirm.
pub fn purge_confirm(
    name: &str,
    csrf: &str,
    counts: &str,
    target: &str,
    error: Option<&str>,
) -> String {
    format!(
        "<p><a href=\"/console/queues/{q}\">← {n}</a></p><h1>Purge {n}?</h1>{}\
         <form class=\"confirm\" id=\"confirm-purge-form\" method=\"post\" action=\"/console/queues/{q}/purge\">{}\
         <p><strong>Every message</strong> of <code>{n}</code> is deleted: {counts} now. \
         This is SQS's <code>PurgeQueue</code>{target} and \
         cannot be undone (once per 60 seconds per queue).</p>\
         <p><label for=\"confirm-name\">Type the queue name to confirm</label> \
         <input id=\"confirm-name\" type=\"text\" name=\"confirm_name\" autocomplete=\"off\" required></p>\
         <div class=\"actions\"><button type=\"submit\" class=\"danger\" id=\"confirm-purge\">Purge the queue</button>\
         <a href=\"/console/queues/{q}\">No, back</a></div></form>",
        error.map_or(String::new(), |e| format!(
            "<p class=\"error\" id=\"form-error\">{}</p>",
            esc(e)
        )),
        csrf_field(csrf),
        q = url_part(name),
        n = esc(name),
    )
}

/// One row of a replay's recent moves (both consoles' progress pages).
#[derive(Debug, Clone, Default)]
pub struct MoveRow {
    /// The message's id in the DLQ.
    pub message_id: String,
    /// Its id in the destination (empty when it was not sent).
    pub new_id: String,
    /// Its value of the per-key rate's key (empty without one).
    pub key: String,
    pub destination: String,
    pub at_ms: u64,
    /// `moved`, `sent` (the copy is sent, the DLQ's delete not yet confirmed), `failed: …`.
    pub outcome: String,
}

/// The recent moves table (`id="replay-moves"`), rows as given (newest first); `caption`
/// (trusted HTML) says what they are.
pub fn recent_moves(caption: &str, rows: &[MoveRow]) -> String {
    let mut out =
        format!("<h2 id=\"recent-moves\">Recent moves <span class=\"muted\">{caption}</span></h2>");
    if rows.is_empty() {
        out.push_str("<p class=\"muted\" id=\"no-moves-yet\">None yet.</p>");
        return out;
    }
    out.push_str(
        "<table id=\"replay-moves\"><thead><tr><th>At</th><th>Message</th><th>New id</th>\
         <th>Key</th><th>Destination</th><th>Outcome</th></tr></thead><tbody>",
    );
    for m in rows {
        let outcome_class = m.outcome.split(':').next().unwrap_or_default();
        let _ = write!(
            out,
            "<tr data-message=\"{}\" data-outcome=\"{}\"><td>{}</td><td><code>{}</code></td>\
             <td><code>{}</code></td><td>{}</td><td>{}</td><td><span class=\"status-{}\">{}</span></td></tr>",
            esc(&m.message_id),
            esc(outcome_class),
            esc(&time_text(m.at_ms)),
            esc(&m.message_id),
            esc(&m.new_id),
            esc(&m.key),
            esc(m.destination.rsplit(':').next().unwrap_or_default()),
            esc(outcome_class),
            esc(&m.outcome),
        );
    }
    out.push_str("</tbody></table>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            esc("<script>alert('x')</script> & \"q\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"
        );
    }

    #[test]
    fn times_and_ages() {
        assert_eq!(time_text(1_776_716_405_000), "2026-04-20 20:20:05Z");
        assert_eq!(age_text(59_999), "59s");
        assert_eq!(age_text(3_723_000), "1h 2m");
        assert_eq!(age_text(90_000_000), "1d 1h");
    }
}
