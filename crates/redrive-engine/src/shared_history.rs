//! The minute history (`history.rs`) over a shared backend: the same minutes, metrics and
//! aggregation, stored as one backend row per queue-minute.
//!
//! - **Counters.** Every server counts the traffic it served (`shared_counters`) and, after each
//!   minute, adds its deltas to that minute's row: the backend adds, so servers never overwrite
//!   each other, and a minute's row is the whole queue's traffic once every server has written.
//!   A server with nothing counted for a queue writes nothing for it.
//! - **Gauges** are read from the backend (one count query per queue) by the holder of the
//!   `history` lease only, so N servers do not each count every queue every minute; the holder
//!   also drops minutes past the retention. A partial write (shutdown, the test hook) samples
//!   gauges whoever holds the lease: the lease holder's sample at the minute's end replaces it.
//! - A failed write gives the deltas back: they are added to the next minute written.

use redrive_core::SqsResult;

use crate::backend::{QueueBackend, SharedMinute};
use crate::history::{
    DAY_MS, FlushReport, HistoryQuery, MINUTE_MS, MetricHistory, MinutePoint, MinuteRecord,
    aggregate, read_counters,
};
use crate::{Engine, RequestContext};

/// The lease under which one server samples gauges and applies the retention.
pub(crate) const HISTORY_LEASE: &str = "history";
/// Longer than a minute, so the holder's renewal every minute keeps it.
const HISTORY_LEASE_MS: u64 = 150_000;

impl Engine {
    pub(crate) async fn write_shared_history(
        &self,
        b: &dyn QueueBackend,
        minute: u64,
        partial: bool,
    ) -> FlushReport {
        let mut report = FlushReport::default();
        // Counters first (one lock), deltas against the last write.
        let counted: Vec<(u64, [u64; 10])> = self
            .shared_counters
            .lock()
            .iter()
            .map(|(uid, c)| (*uid, read_counters(c)))
            .collect();
        let (mut rows, taken) = {
            let mut h = self.history.lock();
            if minute < h.written_through || (minute == h.written_through && !h.partial) {
                return report;
            }
            let mut rows = Vec::new();
            let mut taken = Vec::new();
            for (uid, counts) in &counted {
                let base = h.base.get(uid).copied().unwrap_or_default();
                let delta: [u64; 10] = std::array::from_fn(|i| counts[i].saturating_sub(base[i]));
                taken.push((*uid, delta));
                h.base.insert(*uid, *counts);
                if delta.iter().any(|d| *d > 0) {
                    rows.push(SharedMinute {
                        queue_uid: *uid,
                        minute,
                        counters: delta,
                        gauges: None,
                    });
                }
            }
            let live: std::collections::HashSet<u64> = counted.iter().map(|c| c.0).collect();
            h.base.retain(|uid, _| live.contains(uid));
            h.written_through = minute;
            h.partial = partial;
            (rows, taken)
        };
        let sample = partial
            || matches!(
                b.lease(HISTORY_LEASE, &self.shared_holder, HISTORY_LEASE_MS)
                    .await,
                Ok(true)
            );
        if sample {
            match self.sample_shared_gauges(b).await {
                Ok(gauges) => {
                    for (uid, g) in gauges {
                        match rows.iter_mut().find(|r| r.queue_uid == uid) {
                            Some(r) => r.gauges = Some(g),
                            None => rows.push(SharedMinute {
                                queue_uid: uid,
                                minute,
                                counters: [0; 10],
                                gauges: Some(g),
                            }),
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e.message, "minute history: gauges not sampled"),
            }
        }
        let documents = rows.len();
        if !rows.is_empty()
            && let Err(e) = b.add_minutes(rows).await
        {
            tracing::warn!(error = %e.message, "minute history not written");
            // Give the deltas back (taken off the base, whatever another flush took meanwhile):
            // the next write adds them.
            let mut h = self.history.lock();
            for (uid, delta) in taken {
                if let Some(base) = h.base.get_mut(&uid) {
                    for (b, d) in base.iter_mut().zip(delta) {
                        *b = b.saturating_sub(d);
                    }
                }
            }
            return report;
        }
        report.minute_ms = Some(minute * MINUTE_MS);
        report.documents = documents;
        if sample && !partial {
            let keep_from_day = self
                .now_ms()
                .saturating_sub(u64::from(self.history_retention_days()) * DAY_MS)
                / DAY_MS;
            match b.drop_minutes(keep_from_day * 1440).await {
                Ok(n) => report.days_dropped = usize::from(n > 0),
                Err(e) => tracing::warn!(error = %e.message, "minute history retention failed"),
            }
        }
        report
    }

    /// Every queue's gauges as the history stores them (`GAUGES` order).
    async fn sample_shared_gauges(&self, b: &dyn QueueBackend) -> SqsResult<Vec<(u64, [u64; 5])>> {
        let mut out = Vec::new();
        for q in b.all_queues().await? {
            let c = b.counts(&q).await?;
            let groups = if q.fifo {
                b.groups_in_flight(&q).await?
            } else {
                0
            };
            out.push((
                q.uid,
                [
                    c.visible,
                    c.in_flight,
                    c.delayed,
                    c.oldest_age_ms / 1000,
                    groups,
                ],
            ));
        }
        Ok(out)
    }

    /// A queue's minutes in `[since_ms, until_ms)` from the shared backend.
    pub(crate) async fn shared_minute_points(
        &self,
        b: &dyn QueueBackend,
        queue_uid: u64,
        since_ms: u64,
        until_ms: u64,
    ) -> SqsResult<Vec<MinutePoint>> {
        let rows = b
            .minutes(
                queue_uid,
                since_ms.div_ceil(MINUTE_MS),
                until_ms.div_ceil(MINUTE_MS),
            )
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| MinutePoint {
                minute_ms: r.minute * MINUTE_MS,
                record: MinuteRecord {
                    v: 1,
                    c: r.counters,
                    g: r.gauges.unwrap_or_default(),
                    no_gauges: r.gauges.is_none(),
                },
            })
            .collect())
    }

    /// [`Engine::metric_history`] on either store: the shared backend's rows, or the embedded
    /// store's documents (read on a blocking thread).
    pub async fn queue_metric_history(
        self: &std::sync::Arc<Self>,
        ctx: &RequestContext,
        queue_name: &str,
        query: &HistoryQuery,
    ) -> SqsResult<MetricHistory> {
        let Some(b) = self.shared.clone() else {
            let (engine, ctx, name, query) =
                (self.clone(), ctx.clone(), queue_name.to_string(), *query);
            return tokio::task::spawn_blocking(move || engine.metric_history(&ctx, &name, &query))
                .await
                .unwrap_or_else(|e| {
                    Err(redrive_core::SqsError::internal(format!(
                        "minute history read failed: {e}"
                    )))
                });
        };
        self.shared_metric_history(&*b, ctx, queue_name, query)
            .await
    }

    /// [`Engine::metric_history`] over the shared backend's rows.
    pub(crate) async fn shared_metric_history(
        &self,
        b: &dyn QueueBackend,
        ctx: &RequestContext,
        queue_name: &str,
        query: &HistoryQuery,
    ) -> SqsResult<MetricHistory> {
        let (since, until) = query.range(self.now_ms())?;
        let q = b
            .queue(&ctx.region, queue_name)
            .await?
            .ok_or_else(redrive_core::SqsError::queue_does_not_exist)?;
        let points = self.shared_minute_points(b, q.uid, since, until).await?;
        Ok(MetricHistory {
            queue: q.name.clone(),
            arn: self.sh_arn(&q),
            since_ms: since,
            until_ms: until,
            period_secs: query.period_secs,
            series: aggregate(&points, since, query.period_secs),
        })
    }
}
