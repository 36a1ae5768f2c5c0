//! Per-tenant admission control: a rate limit per tenant key that the worker consults before
//! it runs the handler, and a pause that a 429 switches on.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A boxed, `Send` future, used by the pluggable traits so they stay object-safe.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a limiter answers to a reservation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// A permit is reserved; start after this wait (zero: start now).
    Reserved(Duration),
    /// No permit within the allowed wait; nothing was reserved. Try again after this long.
    Defer(Duration),
}

/// Admission control keyed by tenant. The worker calls [`reserve`](Self::reserve) before it
/// runs the handler for a message of `tenant`, and [`pause`](Self::pause) when the handler
/// reports [`Outcome::RateLimited`](crate::Outcome::RateLimited).
///
/// Share one limiter (an `Arc`) between all workers of a process. The in-memory
/// [`TenantRateLimiter`] covers one process; to hold a quota across processes use a shared
/// limiter (`limiter_from_url`, cargo features `redis`/`postgres`).
pub trait TenantLimiter: Send + Sync + 'static {
    /// Reserves the next permit of `tenant` if it is available within `max_wait`.
    fn reserve<'a>(&'a self, tenant: &'a str, max_wait: Duration) -> BoxFuture<'a, Admission>;

    /// Stops admitting `tenant` for `duration` (extends, never shortens, an existing pause).
    fn pause<'a>(&'a self, tenant: &'a str, duration: Duration) -> BoxFuture<'a, ()>;
}

/// A rate: `burst` permits at once, refilled one every `interval`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    interval: Duration,
    burst: u32,
}

impl Quota {
    /// `n` permits per second, spread evenly (burst 1). `n` of 0 is treated as 1.
    pub fn per_second(n: u32) -> Quota {
        Quota::with_period(n, Duration::from_secs(1))
    }

    /// `n` permits per minute, spread evenly (burst 1).
    pub fn per_minute(n: u32) -> Quota {
        Quota::with_period(n, Duration::from_secs(60))
    }

    /// `n` permits per `period`, spread evenly (burst 1).
    pub fn with_period(n: u32, period: Duration) -> Quota {
        Quota {
            interval: period / n.max(1),
            burst: 1,
        }
    }

    /// Allows up to `burst` permits back to back before spacing sets in (0 is treated as 1).
    pub fn with_burst(self, burst: u32) -> Quota {
        Quota {
            burst: burst.max(1),
            ..self
        }
    }

    /// Time between two permits at the sustained rate.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Permits allowed back to back.
    pub fn burst(&self) -> u32 {
        self.burst
    }

    /// GCRA's tolerance: how far ahead of now the theoretical arrival time may run.
    pub(crate) fn tolerance(&self) -> Duration {
        self.interval * (self.burst - 1)
    }
}

/// A default quota plus per-tenant overrides, shared by the limiter implementations.
#[derive(Debug, Clone, Default)]
pub(crate) struct QuotaTable {
    pub(crate) default_quota: Option<Quota>,
    pub(crate) overrides: HashMap<String, Quota>,
}

impl QuotaTable {
    pub(crate) fn quota_of(&self, tenant: &str) -> Option<Quota> {
        self.overrides.get(tenant).copied().or(self.default_quota)
    }
}

#[derive(Debug, Default)]
struct TenantState {
    /// GCRA "theoretical arrival time": when the bucket is next empty at the sustained rate.
    theoretical_arrival: Option<Instant>,
    paused_until: Option<Instant>,
}

/// An in-memory [`TenantLimiter`]: a GCRA token bucket per tenant (a default [`Quota`] plus
/// per-tenant overrides), and pauses.
///
/// ```
/// use std::sync::Arc;
/// use redrive_worker::{Quota, TenantRateLimiter};
///
/// // 10 calls/s per mall, but 2/s for one small mall.
/// let limiter = Arc::new(
///     TenantRateLimiter::new(Quota::per_second(10)).with_tenant_quota("tinymall", Quota::per_second(2)),
/// );
/// # let _ = limiter;
/// ```
#[derive(Debug, Default)]
pub struct TenantRateLimiter {
    quotas: QuotaTable,
    tenants: Mutex<HashMap<String, TenantState>>,
}

impl TenantRateLimiter {
    /// Every tenant gets `quota` unless overridden.
    pub fn new(quota: Quota) -> TenantRateLimiter {
        TenantRateLimiter {
            quotas: QuotaTable {
                default_quota: Some(quota),
                overrides: HashMap::new(),
            },
            ..TenantRateLimiter::default()
        }
    }

    /// No rate limit, only pauses after a 429. The worker's default.
    pub fn unlimited() -> TenantRateLimiter {
        TenantRateLimiter::default()
    }

    /// Sets the quota of one tenant.
    pub fn with_tenant_quota(
        mut self,
        tenant: impl Into<String>,
        quota: Quota,
    ) -> TenantRateLimiter {
        self.quotas.overrides.insert(tenant.into(), quota);
        self
    }

    /// The synchronous core of [`TenantLimiter::reserve`], at time `now`.
    pub fn reserve_at(&self, tenant: &str, max_wait: Duration, now: Instant) -> Admission {
        let quota = self.quotas.quota_of(tenant);
        let mut tenants = self.tenants.lock().unwrap_or_else(|e| e.into_inner());
        let state = tenants.entry(tenant.to_string()).or_default();
        let mut earliest = now;
        if let Some(until) = state.paused_until {
            earliest = earliest.max(until);
        }
        if let (Some(quota), Some(tat)) = (quota, state.theoretical_arrival) {
            // GCRA: a request at t conforms when t >= tat - (burst - 1) * interval.
            if let Some(allowed_from) = tat.checked_sub(quota.tolerance()) {
                earliest = earliest.max(allowed_from);
            }
        }
        let wait = earliest - now;
        if wait > max_wait {
            return Admission::Defer(wait);
        }
        if let Some(quota) = quota {
            let base = state
                .theoretical_arrival
                .map_or(earliest, |t| t.max(earliest));
            state.theoretical_arrival = Some(base + quota.interval);
        }
        Admission::Reserved(wait)
    }

    /// The synchronous core of [`TenantLimiter::pause`], at time `now`.
    pub fn pause_at(&self, tenant: &str, duration: Duration, now: Instant) {
        let mut tenants = self.tenants.lock().unwrap_or_else(|e| e.into_inner());
        let state = tenants.entry(tenant.to_string()).or_default();
        let until = now + duration;
        state.paused_until = Some(state.paused_until.map_or(until, |u| u.max(until)));
    }
}

impl TenantLimiter for TenantRateLimiter {
    fn reserve<'a>(&'a self, tenant: &'a str, max_wait: Duration) -> BoxFuture<'a, Admission> {
        Box::pin(std::future::ready(self.reserve_at(
            tenant,
            max_wait,
            Instant::now(),
        )))
    }

    fn pause<'a>(&'a self, tenant: &'a str, duration: Duration) -> BoxFuture<'a, ()> {
        self.pause_at(tenant, duration, Instant::now());
        Box::pin(std::future::ready(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn spaces_permits_per_tenant() {
        let l = TenantRateLimiter::new(Quota::per_second(10));
        let t0 = Instant::now();
        let big = Duration::from_secs(10);
        assert_eq!(
            l.reserve_at("a", big, t0),
            Admission::Reserved(Duration::ZERO)
        );
        assert_eq!(l.reserve_at("a", big, t0), Admission::Reserved(100 * MS));
        assert_eq!(l.reserve_at("a", big, t0), Admission::Reserved(200 * MS));
        // Another tenant has its own bucket.
        assert_eq!(
            l.reserve_at("b", big, t0),
            Admission::Reserved(Duration::ZERO)
        );
        // Beyond max_wait nothing is reserved.
        assert_eq!(l.reserve_at("a", 250 * MS, t0), Admission::Defer(300 * MS));
        assert_eq!(l.reserve_at("a", big, t0), Admission::Reserved(300 * MS));
        // After idling the bucket is full again (burst 1).
        let later = t0 + Duration::from_secs(5);
        assert_eq!(
            l.reserve_at("a", big, later),
            Admission::Reserved(Duration::ZERO)
        );
        assert_eq!(l.reserve_at("a", big, later), Admission::Reserved(100 * MS));
    }

    #[test]
    fn burst_allows_back_to_back_permits() {
        let l = TenantRateLimiter::new(Quota::per_second(10).with_burst(3));
        let t0 = Instant::now();
        let big = Duration::from_secs(10);
        for _ in 0..3 {
            assert_eq!(
                l.reserve_at("a", big, t0),
                Admission::Reserved(Duration::ZERO)
            );
        }
        assert_eq!(l.reserve_at("a", big, t0), Admission::Reserved(100 * MS));
    }

    #[test]
    fn pause_blocks_only_that_tenant() {
        let l = TenantRateLimiter::unlimited();
        let t0 = Instant::now();
        l.pause_at("a", Duration::from_secs(2), t0);
        assert_eq!(
            l.reserve_at("a", Duration::from_secs(1), t0),
            Admission::Defer(Duration::from_secs(2))
        );
        assert_eq!(
            l.reserve_at("b", Duration::from_secs(1), t0),
            Admission::Reserved(Duration::ZERO)
        );
        // A shorter pause does not shorten the running one.
        l.pause_at("a", Duration::from_millis(10), t0);
        assert_eq!(
            l.reserve_at("a", Duration::ZERO, t0 + Duration::from_secs(1)),
            Admission::Defer(Duration::from_secs(1))
        );
        assert_eq!(
            l.reserve_at("a", Duration::ZERO, t0 + Duration::from_secs(2)),
            Admission::Reserved(Duration::ZERO)
        );
    }

    #[test]
    fn overrides_apply_per_tenant() {
        let l = TenantRateLimiter::new(Quota::per_second(100))
            .with_tenant_quota("slow", Quota::per_second(1));
        let t0 = Instant::now();
        let big = Duration::from_secs(10);
        l.reserve_at("slow", big, t0);
        assert_eq!(
            l.reserve_at("slow", big, t0),
            Admission::Reserved(Duration::from_secs(1))
        );
        l.reserve_at("fast", big, t0);
        assert_eq!(l.reserve_at("fast", big, t0), Admission::Reserved(10 * MS));
    }
}
