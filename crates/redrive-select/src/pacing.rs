//! Rate schedule for a replay: a global rate and a per-key rate (e.g. per mall), so a redrive
//! cannot recreate a burst against one tenant's quota. Time is milliseconds (f64) given by the
//! caller; nothing here sleeps.

use std::collections::HashMap;

/// Accepted range of a rate, in messages per second.
pub const MIN_RATE: f64 = 0.01;
pub const MAX_RATE: f64 = 10_000.0;

/// Checks a rate given by a user.
pub fn check_rate(what: &str, rate: f64) -> Result<f64, String> {
    if rate.is_finite() && (MIN_RATE..=MAX_RATE).contains(&rate) {
        Ok(rate)
    } else {
        Err(format!(
            "{what} must be between {MIN_RATE} and {MAX_RATE} messages per second (got {rate})"
        ))
    }
}

/// Parses `N/s`, `N/m`, `N/h` or a bare `N` (per second) into messages per second.
pub fn parse_rate(text: &str) -> Result<f64, String> {
    let t = text.trim();
    let (num, per) = match t.split_once('/') {
        Some((n, unit)) => {
            let per = match unit.trim() {
                "s" | "sec" | "second" => 1.0,
                "m" | "min" | "minute" => 60.0,
                "h" | "hour" => 3600.0,
                other => {
                    return Err(format!(
                        "unknown rate unit `{other}` in `{text}` (use /s, /m or /h)"
                    ));
                }
            };
            (n.trim(), per)
        }
        None => (t, 1.0),
    };
    let n: f64 = num
        .parse()
        .map_err(|_| format!("invalid rate `{text}` (e.g. 50/s, 120/m)"))?;
    check_rate("a rate", n / per)
}

/// Slots per key and globally: each send takes the next free slot of both.
#[derive(Debug, Clone, Default)]
pub struct Pacer {
    global_interval_ms: Option<f64>,
    key_interval_ms: Option<f64>,
    global_next: f64,
    key_next: HashMap<String, f64>,
}

impl Pacer {
    pub fn new(global_rate: Option<f64>, per_key_rate: Option<f64>) -> Pacer {
        Pacer {
            global_interval_ms: global_rate.map(|r| 1000.0 / r),
            key_interval_ms: per_key_rate.map(|r| 1000.0 / r),
            global_next: 0.0,
            key_next: HashMap::new(),
        }
    }

    pub fn set_global_rate(&mut self, rate: Option<f64>) {
        self.global_interval_ms = rate.map(|r| 1000.0 / r);
    }

    /// The earliest time a message of `key` may go.
    pub fn ready_at(&self, key: Option<&str>) -> f64 {
        let k = key
            .filter(|_| self.key_interval_ms.is_some())
            .and_then(|k| self.key_next.get(k))
            .copied()
            .unwrap_or(0.0);
        k.max(self.global_next)
    }

    /// Records a send of `key` at `now` (which should be ≥ `ready_at(key)`).
    pub fn record(&mut self, key: Option<&str>, now: f64) {
        if let Some(i) = self.global_interval_ms {
            // Idle time is not banked: no burst after a pause.
            self.global_next = self.global_next.max(now) + i;
        }
        if let (Some(i), Some(k)) = (self.key_interval_ms, key) {
            let next = self.key_next.entry(k.to_string()).or_insert(0.0);
            *next = next.max(now) + i;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_and_are_checked() {
        assert_eq!(parse_rate("50/s").unwrap(), 50.0);
        assert_eq!(parse_rate("120/m").unwrap(), 2.0);
        assert_eq!(parse_rate("7").unwrap(), 7.0);
        assert!(parse_rate("0/s").is_err());
        assert!(parse_rate("1000000/s").is_err());
        assert!(parse_rate("x/s").is_err());
        assert!(parse_rate("5/week").is_err());
    }

    #[test]
    fn per_key_slots_do_not_hold_back_other_keys() {
        let mut p = Pacer::new(None, Some(2.0)); // 500 ms apart per key
        assert_eq!(p.ready_at(Some("a")), 0.0);
        p.record(Some("a"), 0.0);
        assert_eq!(p.ready_at(Some("a")), 500.0);
        assert_eq!(p.ready_at(Some("b")), 0.0);
        p.record(Some("b"), 10.0);
        assert_eq!(p.ready_at(Some("b")), 510.0);
        p.record(Some("a"), 500.0);
        assert_eq!(p.ready_at(Some("a")), 1000.0);
    }

    #[test]
    fn global_rate_spaces_every_send() {
        let mut p = Pacer::new(Some(10.0), None);
        p.record(None, 0.0);
        assert_eq!(p.ready_at(Some("x")), 100.0);
        p.record(Some("x"), 100.0);
        assert_eq!(p.ready_at(None), 200.0);
        // After a long pause, no credit is banked.
        p.record(None, 5000.0);
        assert_eq!(p.ready_at(None), 5100.0);
    }
}
