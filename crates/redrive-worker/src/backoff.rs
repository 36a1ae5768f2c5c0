//! Exponential backoff with full jitter, and the 12-hour visibility cap.

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// SQS's limit on a message's total invisibility since it was received (12 hours).
pub const MAX_VISIBILITY: Duration = Duration::from_secs(43_200);

/// How the random part of a backoff is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Jitter {
    /// "Full jitter": a uniform draw from `0..=ceiling`. Spreads retries of a burst so they do
    /// not hit the downstream together again. The default.
    Full,
    /// No randomness: the delay is the ceiling itself. Predictable, for tests and demos.
    None,
}

/// Exponential backoff: the ceiling for attempt `n` (1-based) is `base · 2^(n−1)`, capped at
/// `max` (and always at [`MAX_VISIBILITY`]); the delay is drawn below it according to the
/// [`Jitter`].
///
/// ```
/// use std::time::Duration;
/// use redrive_worker::{Backoff, Jitter};
///
/// let b = Backoff::exponential(Duration::from_secs(2), Duration::from_secs(60)).with_jitter(Jitter::None);
/// assert_eq!(b.delay(1), Duration::from_secs(2));
/// assert_eq!(b.delay(3), Duration::from_secs(8));
/// assert_eq!(b.delay(10), Duration::from_secs(60));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    jitter: Jitter,
}

impl Default for Backoff {
    /// Base 2 s, cap 15 min, full jitter.
    fn default() -> Backoff {
        Backoff::exponential(Duration::from_secs(2), Duration::from_secs(900))
    }
}

impl Backoff {
    /// Exponential backoff from `base`, capped at `max`, with full jitter.
    pub fn exponential(base: Duration, max: Duration) -> Backoff {
        Backoff {
            base,
            max: max.min(MAX_VISIBILITY),
            jitter: Jitter::Full,
        }
    }

    /// Replaces the jitter mode.
    pub fn with_jitter(self, jitter: Jitter) -> Backoff {
        Backoff { jitter, ..self }
    }

    /// The upper bound of the delay for `attempt` (1-based; 0 is treated as 1).
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let exponent = attempt.saturating_sub(1).min(40);
        self.base
            .checked_mul(1u32 << exponent.min(31))
            .unwrap_or(self.max)
            .min(self.max)
    }

    /// The delay before retrying after failed attempt `attempt`.
    pub fn delay(&self, attempt: u32) -> Duration {
        let ceiling = self.ceiling(attempt);
        match self.jitter {
            Jitter::None => ceiling,
            Jitter::Full => {
                let millis = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
                Duration::from_millis(random_below(millis.saturating_add(1)))
            }
        }
    }
}

/// The visibility timeout to request now so that the total since receipt stays within 12 h.
pub(crate) fn clamp_to_visibility_cap(wanted: Duration, since_receipt: Duration) -> Duration {
    wanted.min(MAX_VISIBILITY.saturating_sub(since_receipt))
}

/// A uniform-enough draw from `0..bound` (0 when `bound` is 0). Jitter does not need a
/// cryptographic generator; std's randomly keyed SipHash over a counter avoids a dependency.
pub(crate) fn random_below(bound: u64) -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    if bound == 0 {
        return 0;
    }
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    hasher.finish() % bound
}

/// Seconds for an SQS API parameter, rounded up, within `0..=max`.
pub(crate) fn whole_seconds_up(d: Duration, max: u64) -> i32 {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    i32::try_from(secs.min(max)).unwrap_or(i32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceiling_doubles_and_caps() {
        let b = Backoff::exponential(Duration::from_millis(500), Duration::from_secs(5));
        assert_eq!(b.ceiling(0), Duration::from_millis(500));
        assert_eq!(b.ceiling(1), Duration::from_millis(500));
        assert_eq!(b.ceiling(2), Duration::from_secs(1));
        assert_eq!(b.ceiling(4), Duration::from_secs(4));
        assert_eq!(b.ceiling(5), Duration::from_secs(5));
        assert_eq!(b.ceiling(u32::MAX), Duration::from_secs(5));
    }

    #[test]
    fn max_is_capped_at_twelve_hours() {
        let b = Backoff::exponential(Duration::from_secs(3600), Duration::from_secs(100_000))
            .with_jitter(Jitter::None);
        assert_eq!(b.delay(20), MAX_VISIBILITY);
    }

    #[test]
    fn full_jitter_stays_below_the_ceiling_and_varies() {
        let b = Backoff::exponential(Duration::from_secs(1), Duration::from_secs(60));
        let draws: Vec<Duration> = (0..200).map(|_| b.delay(4)).collect();
        assert!(draws.iter().all(|d| *d <= Duration::from_secs(8)));
        let distinct: std::collections::HashSet<_> = draws.iter().collect();
        assert!(
            distinct.len() > 50,
            "jitter should spread: {}",
            distinct.len()
        );
    }

    #[test]
    fn visibility_cap_counts_time_since_receipt() {
        let eleven_hours = Duration::from_secs(11 * 3600);
        assert_eq!(
            clamp_to_visibility_cap(Duration::from_secs(7200), eleven_hours),
            Duration::from_secs(3600)
        );
        assert_eq!(
            clamp_to_visibility_cap(Duration::from_secs(10), Duration::from_secs(50_000)),
            Duration::ZERO
        );
        assert_eq!(
            clamp_to_visibility_cap(Duration::from_secs(10), Duration::ZERO),
            Duration::from_secs(10)
        );
    }

    #[test]
    fn whole_seconds_round_up() {
        assert_eq!(whole_seconds_up(Duration::from_millis(1), 900), 1);
        assert_eq!(whole_seconds_up(Duration::from_secs(2), 900), 2);
        assert_eq!(whole_seconds_up(Duration::from_secs(5000), 900), 900);
        assert_eq!(whole_seconds_up(Duration::ZERO, 900), 0);
    }
}
