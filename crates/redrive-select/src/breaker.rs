//! Circuit breaker for a replay: stop when too many replayed messages come back to the DLQ
//! soon after being replayed (the root cause is not fixed yet; going on would re-poison the
//! queue and burn the consumers' retry budget again).

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

/// When to trip.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BreakerSpec {
    /// Trip when more than this share (0..1] of the messages replayed within the window came
    /// back to the DLQ.
    pub max_return_share: f64,
    /// The window, in seconds.
    pub window_secs: u64,
    /// Judge only once at least this many messages were replayed within the window.
    pub min_replayed: u64,
}

impl BreakerSpec {
    pub fn check(&self) -> Result<(), String> {
        if !(self.max_return_share > 0.0 && self.max_return_share <= 1.0) {
            return Err(format!(
                "the breaker's return share must be in (0, 1] (got {})",
                self.max_return_share
            ));
        }
        if self.window_secs == 0 || self.window_secs > 86_400 {
            return Err("the breaker's window must be between 1 second and 1 day".to_string());
        }
        if self.min_replayed == 0 {
            return Err("the breaker's minimum sample must be at least 1".to_string());
        }
        Ok(())
    }

    /// Parses `SHARE[/WINDOW[/MIN]]`, e.g. `0.2`, `20%/5m`, `0.5/60s/10`.
    pub fn parse(text: &str) -> Result<BreakerSpec, String> {
        let mut parts = text.split('/');
        let share = parts.next().unwrap_or_default().trim();
        let max_return_share = match share.strip_suffix('%') {
            Some(p) => p.trim().parse::<f64>().map(|p| p / 100.0),
            None => share.parse::<f64>(),
        }
        .map_err(|_| format!("invalid breaker `{text}` (e.g. 20%/5m/10: share/window/min)"))?;
        let window_secs = match parts.next() {
            Some(w) => parse_secs(w).ok_or_else(|| format!("invalid breaker window `{w}`"))?,
            None => 300,
        };
        let min_replayed = match parts.next() {
            Some(m) => m
                .trim()
                .parse()
                .map_err(|_| format!("invalid breaker minimum `{m}`"))?,
            None => 10,
        };
        let spec = BreakerSpec {
            max_return_share,
            window_secs,
            min_replayed,
        };
        spec.check()?;
        Ok(spec)
    }
}

fn parse_secs(s: &str) -> Option<u64> {
    let s = s.trim();
    let (n, mult) = match s.char_indices().last()? {
        (i, 's') => (&s[..i], 1),
        (i, 'm') => (&s[..i], 60),
        (i, 'h') => (&s[..i], 3600),
        _ => (s, 1),
    };
    n.parse::<u64>().ok().map(|n| n * mult)
}

/// Replays and returns observed over time.
#[derive(Debug, Clone)]
pub struct Breaker {
    spec: BreakerSpec,
    replayed: VecDeque<u64>,
    returned: VecDeque<u64>,
}

impl Breaker {
    pub fn new(spec: BreakerSpec) -> Breaker {
        Breaker {
            spec,
            replayed: VecDeque::new(),
            returned: VecDeque::new(),
        }
    }

    pub fn replayed(&mut self, at_ms: u64) {
        self.replayed.push_back(at_ms);
    }

    /// A message this run replayed came back to the DLQ.
    pub fn returned(&mut self, at_ms: u64) {
        self.returned.push_back(at_ms);
    }

    /// `Some(reason)` once the breaker trips.
    pub fn check(&mut self, now_ms: u64) -> Option<String> {
        let from = now_ms.saturating_sub(self.spec.window_secs * 1000);
        while self.replayed.front().is_some_and(|&t| t < from) {
            self.replayed.pop_front();
        }
        while self.returned.front().is_some_and(|&t| t < from) {
            self.returned.pop_front();
        }
        let replayed = self.replayed.len() as u64;
        let returned = self.returned.len() as u64;
        if replayed < self.spec.min_replayed || replayed == 0 {
            return None;
        }
        let share = returned as f64 / replayed as f64;
        (share > self.spec.max_return_share).then(|| {
            format!(
                "circuit breaker: {returned} of {replayed} messages replayed in the last {}s came back to the DLQ ({:.0}% > {:.0}%)",
                self.spec.window_secs,
                share * 100.0,
                self.spec.max_return_share * 100.0
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_trips_on_share_within_window() {
        let spec = BreakerSpec::parse("20%/10s/5").unwrap();
        assert_eq!(spec.max_return_share, 0.2);
        assert_eq!(spec.window_secs, 10);
        assert_eq!(spec.min_replayed, 5);
        assert!(BreakerSpec::parse("0").is_err());
        assert!(BreakerSpec::parse("150%").is_err());
        assert!(BreakerSpec::parse("x").is_err());

        let mut b = Breaker::new(spec);
        for t in 0..4 {
            b.replayed(t * 100);
            b.returned(t * 100 + 50);
        }
        assert_eq!(b.check(1000), None, "below the minimum sample");
        b.replayed(500);
        assert!(b.check(1000).is_some(), "4 of 5 returned");
        // Outside the window, old events no longer count.
        let mut b = Breaker::new(spec);
        for t in 0..10 {
            b.replayed(t);
        }
        b.returned(5);
        b.returned(6);
        assert_eq!(b.check(100), None, "2 of 10 is not more than 20%");
        b.returned(7);
        assert!(b.check(100).is_some());
        assert_eq!(b.check(20_000), None, "window slid past everything");
    }
}
