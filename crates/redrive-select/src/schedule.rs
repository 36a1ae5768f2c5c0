//! Schedules for recurring redrives: a 5-field cron expression evaluated in an IANA time zone
//! (so "06:00 Asia/Seoul" stays 06:00 across DST changes), and relative windows such as
//! "dead-lettered yesterday" resolved in the same zone at fire time.

use std::str::FromStr;

use chrono::{DateTime, Duration, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds};
use serde::{Deserialize, Serialize};

/// A cron expression with its time zone.
#[derive(Debug, Clone)]
pub struct CronSchedule {
    pub expr: String,
    pub tz: Tz,
    cron: Cron,
}

impl CronSchedule {
    /// `expr`: minute hour day-of-month month day-of-week (names and `@daily`-style nicknames
    /// allowed); `tz`: an IANA zone such as `UTC` or `Asia/Seoul`.
    pub fn parse(expr: &str, tz: &str) -> Result<CronSchedule, String> {
        let tz = Tz::from_str(tz).map_err(|_| {
            format!("unknown time zone `{tz}` (use an IANA name such as UTC or Asia/Seoul)")
        })?;
        let cron = CronParser::builder()
            .seconds(Seconds::Disallowed)
            .build()
            .parse(expr)
            .map_err(|e| format!("invalid cron expression `{expr}`: {e}"))?;
        Ok(CronSchedule {
            expr: expr.to_string(),
            tz,
            cron,
        })
    }

    /// The first fire time strictly after `after_ms` (ms since the Unix epoch).
    pub fn next_after(&self, after_ms: i64) -> Option<i64> {
        let start = self.tz.timestamp_millis_opt(after_ms).single()?;
        let next = self.cron.find_next_occurrence(&start, false).ok()?;
        Some(next.timestamp_millis())
    }
}

/// A window relative to a schedule's fire time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum RelativeWindow {
    /// The previous calendar day in the schedule's time zone.
    Yesterday,
    /// From midnight of the fire day (schedule's zone) until the fire time.
    Today,
    /// The last `secs` seconds before the fire time.
    Last { secs: u64 },
}

impl RelativeWindow {
    /// `yesterday`, `today` or `last:DURATION` (e.g. `last:24h`, `last:90m`).
    pub fn parse(text: &str) -> Result<RelativeWindow, String> {
        match text.trim() {
            "yesterday" => Ok(RelativeWindow::Yesterday),
            "today" => Ok(RelativeWindow::Today),
            t => {
                let d = t
                    .strip_prefix("last:")
                    .and_then(parse_duration_secs)
                    .filter(|&s| s > 0)
                    .ok_or_else(|| {
                        format!("invalid window `{text}` (yesterday, today or last:DURATION such as last:24h)")
                    })?;
                Ok(RelativeWindow::Last { secs: d })
            }
        }
    }

    /// `[after, before)` in ms for a fire at `at_ms`, in zone `tz`.
    pub fn resolve(&self, at_ms: i64, tz: Tz) -> (i64, i64) {
        let at: DateTime<Tz> = tz.timestamp_millis_opt(at_ms).single().unwrap_or_else(|| {
            Utc.timestamp_millis_opt(at_ms)
                .single()
                .unwrap_or_default()
                .with_timezone(&tz)
        });
        let midnight = |d: chrono::NaiveDate| {
            tz.from_local_datetime(&d.and_time(NaiveTime::MIN))
                .earliest()
                .map_or(at_ms, |t| t.timestamp_millis())
        };
        match self {
            RelativeWindow::Yesterday => {
                let today = at.date_naive();
                let yesterday = today - Duration::days(1);
                (midnight(yesterday), midnight(today))
            }
            RelativeWindow::Today => (midnight(at.date_naive()), at_ms),
            RelativeWindow::Last { secs } => (at_ms - (*secs as i64) * 1000, at_ms),
        }
    }
}

/// A point in time given by a user, as ms since the Unix epoch: RFC 3339
/// (`2026-11-23T06:00:00+09:00`), a date (`2026-11-23`, midnight UTC), epoch milliseconds
/// (13 digits or more) or seconds, or a duration before `now_ms` (`2h`, `90m`, `3d`).
pub fn parse_instant(text: &str, now_ms: i64) -> Result<i64, String> {
    let t = text.trim();
    if let Ok(dt) = DateTime::parse_from_rfc3339(t) {
        return Ok(dt.timestamp_millis());
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(t, "%Y-%m-%d") {
        return Ok(Utc
            .from_utc_datetime(&d.and_time(NaiveTime::MIN))
            .timestamp_millis());
    }
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        let n: i64 = t.parse().map_err(|_| format!("invalid time `{text}`"))?;
        // Epoch seconds have at most 11 digits until the year 5138.
        return Ok(if t.len() >= 12 { n } else { n * 1000 });
    }
    if let Some(secs) = parse_duration_secs(t.strip_suffix(" ago").unwrap_or(t)) {
        return Ok(now_ms - (secs as i64) * 1000);
    }
    Err(format!(
        "invalid time `{text}` (RFC 3339 such as 2026-11-23T06:00:00Z, a date 2026-11-23, epoch seconds or ms, or an age such as 2h)"
    ))
}

fn parse_duration_secs(s: &str) -> Option<u64> {
    let s = s.trim();
    let unit_at = s.find(|c: char| !c.is_ascii_digit())?;
    let n: u64 = s[..unit_at].parse().ok()?;
    let mult = match &s[unit_at..] {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return None,
    };
    Some(n * mult)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(s: &str) -> i64 {
        DateTime::parse_from_rfc3339(s).unwrap().timestamp_millis()
    }

    #[test]
    fn next_fire_in_a_time_zone() {
        let s = CronSchedule::parse("0 6 * * *", "Asia/Seoul").unwrap();
        // 2026-11-23 05:59 KST = 2026-11-22 20:59 UTC.
        let next = s.next_after(ms("2026-11-22T20:59:00Z")).unwrap();
        assert_eq!(next, ms("2026-11-22T21:00:00Z"));
        // Strictly after: at the fire time itself, the next one is a day later.
        assert_eq!(s.next_after(next).unwrap(), ms("2026-11-23T21:00:00Z"));

        let s = CronSchedule::parse("30 6 * * MON-FRI", "UTC").unwrap();
        // 2026-11-28 is a Saturday.
        assert_eq!(
            s.next_after(ms("2026-11-27T07:00:00Z")).unwrap(),
            ms("2026-11-30T06:30:00Z")
        );
        assert!(CronSchedule::parse("0 6 * *", "UTC").is_err());
        assert!(
            CronSchedule::parse("0 0 6 * * *", "UTC").is_err(),
            "no seconds field"
        );
        assert!(CronSchedule::parse("0 6 * * *", "Mars/Olympus").is_err());
    }

    #[test]
    fn dst_keeps_local_time() {
        let s = CronSchedule::parse("0 6 * * *", "America/New_York").unwrap();
        // Before the 2026-11-01 switch: 06:00 EDT = 10:00Z; after: 06:00 EST = 11:00Z.
        assert_eq!(
            s.next_after(ms("2026-10-31T12:00:00Z")).unwrap(),
            ms("2026-11-01T11:00:00Z")
        );
        assert_eq!(
            s.next_after(ms("2026-10-30T12:00:00Z")).unwrap(),
            ms("2026-10-31T10:00:00Z")
        );
    }

    #[test]
    fn windows_resolve_in_the_zone() {
        let tz: Tz = "Asia/Seoul".parse().unwrap();
        let at = ms("2026-11-22T21:00:00Z"); // 2026-11-23 06:00 KST
        assert_eq!(
            RelativeWindow::Yesterday.resolve(at, tz),
            (ms("2026-11-21T15:00:00Z"), ms("2026-11-22T15:00:00Z"))
        );
        assert_eq!(
            RelativeWindow::Today.resolve(at, tz),
            (ms("2026-11-22T15:00:00Z"), at)
        );
        assert_eq!(
            RelativeWindow::parse("last:2h").unwrap().resolve(at, tz),
            (at - 7_200_000, at)
        );
        assert!(RelativeWindow::parse("last:0h").is_err());
        assert!(RelativeWindow::parse("lastweek").is_err());
    }

    #[test]
    fn instants_parse() {
        let now = ms("2026-11-23T12:00:00Z");
        assert_eq!(
            parse_instant("2026-11-23T06:00:00+09:00", now).unwrap(),
            ms("2026-11-22T21:00:00Z")
        );
        assert_eq!(
            parse_instant("2026-11-23", now).unwrap(),
            ms("2026-11-23T00:00:00Z")
        );
        assert_eq!(parse_instant("1763856000", now).unwrap(), 1_763_856_000_000);
        assert_eq!(
            parse_instant("1763856000123", now).unwrap(),
            1_763_856_000_123
        );
        assert_eq!(parse_instant("2h", now).unwrap(), now - 7_200_000);
        assert_eq!(parse_instant("3d ago", now).unwrap(), now - 3 * 86_400_000);
        assert!(parse_instant("yesterday-ish", now).is_err());
        assert!(parse_instant("", now).is_err());
    }
}
