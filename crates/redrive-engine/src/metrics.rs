//! What a queue's metrics are made of: counters of what happened since the process started
//! (added only once the change they count is durable) and gauges read from the queue's state
//! at the moment they are asked for. The server exposes them to Prometheus
//! (`redrive-server`'s `metrics.rs`); names and their CloudWatch equivalents are in
//! `docs/metrics.md`.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::queue::QueueState;

/// Per-queue counters (monotonic for the life of the process).
#[derive(Debug, Default)]
pub struct QueueCounters {
    /// `NumberOfMessagesSent`: messages added by SendMessage(Batch).
    pub sent: AtomicU64,
    /// `SentMessageSize` (sum): body plus message attributes of those messages, in bytes.
    pub sent_bytes: AtomicU64,
    /// `NumberOfDeduplicatedSentMessages`: FIFO sends answered from the deduplication cache.
    pub deduplicated: AtomicU64,
    /// `NumberOfMessagesReceived`: messages handed out by ReceiveMessage.
    pub received: AtomicU64,
    /// `NumberOfEmptyReceives`: ReceiveMessage calls that returned nothing.
    pub empty_receives: AtomicU64,
    /// `NumberOfMessagesDeleted`: successful deletes (also of a message already deleted by an
    /// older handle, as AWS counts them).
    pub deleted: AtomicU64,
    /// Messages this queue moved to its dead-letter queue (maxReceiveCount exceeded).
    pub moved_to_dlq: AtomicU64,
    /// Messages that arrived in this queue as a dead-letter queue.
    pub dead_letter_arrivals: AtomicU64,
    /// Messages moved out of this queue by message move tasks.
    pub redriven_by_move_tasks: AtomicU64,
    /// Messages moved out of this queue by selective redrives (replays).
    pub redriven_by_replays: AtomicU64,
}

/// Counts of one operation, added to [`QueueCounters`] once the operation is durable.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tally {
    pub sent: u64,
    pub sent_bytes: u64,
    pub deduplicated: u64,
    pub received: u64,
    pub empty_receives: u64,
    pub deleted: u64,
}

impl QueueCounters {
    pub(crate) fn add(&self, t: &Tally) {
        let add = |c: &AtomicU64, n: u64| {
            if n > 0 {
                c.fetch_add(n, Ordering::Relaxed);
            }
        };
        add(&self.sent, t.sent);
        add(&self.sent_bytes, t.sent_bytes);
        add(&self.deduplicated, t.deduplicated);
        add(&self.received, t.received);
        add(&self.empty_receives, t.empty_receives);
        add(&self.deleted, t.deleted);
    }

    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }
}

/// A queue's gauges at one moment, as CloudWatch's `Approximate…` metrics define them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueGauges {
    pub visible: u64,
    pub not_visible: u64,
    pub delayed: u64,
    /// `ApproximateAgeOfOldestMessage`, seconds; 0 for an empty queue. Standard queues leave
    /// out messages received 3 or more times and not deleted; in a dead-letter queue a
    /// message's age starts when it was dead-lettered.
    pub oldest_age_secs: u64,
    /// FIFO: groups with a message in flight.
    pub groups_with_inflight: u64,
    /// Fair queues (standard queues with message groups): noisy tenants right now.
    pub noisy_groups: u64,
    pub visible_in_quiet_groups: u64,
    pub not_visible_in_quiet_groups: u64,
    pub delayed_in_quiet_groups: u64,
    pub oldest_age_in_quiet_groups_secs: u64,
}

/// Standard queues: a message received this often and not deleted no longer counts for the
/// age of the oldest message (AWS moves it to the back of the queue for the metric).
const AGE_RECEIVE_LIMIT: u32 = 3;

impl QueueState {
    /// The gauges now. Walks the queue's messages (metrics are read every few seconds at
    /// most; scheduling never does this).
    pub fn gauges(&self, now_ms: u64) -> QueueGauges {
        let (visible, not_visible, delayed) = self.counts();
        let mut g = QueueGauges {
            visible: visible as u64,
            not_visible: not_visible as u64,
            delayed: delayed as u64,
            groups_with_inflight: if self.settings.fifo {
                self.in_flight_groups() as u64
            } else {
                0
            },
            ..QueueGauges::default()
        };
        let fair = !self.settings.fifo;
        let noisy: std::collections::HashSet<&str> = if fair {
            self.in_flight_group_keys()
                .filter(|k| self.is_noisy(k))
                .collect()
        } else {
            Default::default()
        };
        g.noisy_groups = noisy.len() as u64;
        let mut oldest: Option<u64> = None;
        let mut oldest_quiet: Option<u64> = None;
        for m in self.messages.values() {
            let r = &m.rec;
            let quiet = fair && !r.group_id.as_deref().is_some_and(|k| noisy.contains(k));
            if quiet && r.group_id.is_some() {
                match m.state {
                    crate::queue::MessageState::Ready => g.visible_in_quiet_groups += 1,
                    crate::queue::MessageState::InFlight => g.not_visible_in_quiet_groups += 1,
                    crate::queue::MessageState::Delayed => g.delayed_in_quiet_groups += 1,
                }
            }
            if m.state == crate::queue::MessageState::Delayed {
                continue;
            }
            if !self.settings.fifo && r.receive_count >= AGE_RECEIVE_LIMIT {
                continue;
            }
            let since = r.dead_lettered_ms().unwrap_or(r.sent_ms);
            oldest = Some(oldest.map_or(since, |o| o.min(since)));
            if quiet && r.group_id.is_some() {
                oldest_quiet = Some(oldest_quiet.map_or(since, |o| o.min(since)));
            }
        }
        let age = |t: Option<u64>| t.map_or(0, |t| now_ms.saturating_sub(t) / 1000);
        g.oldest_age_secs = age(oldest);
        g.oldest_age_in_quiet_groups_secs = age(oldest_quiet);
        g
    }
}

impl crate::Engine {
    /// On a shared backend: every queue (all Regions) with its gauges read from the backend
    /// now, sorted by Region and name; `None` on the embedded store (use
    /// [`Engine::queue_metrics`](crate::Engine::queue_metrics)). One count query per queue
    /// (two for a FIFO queue, three for a standard one: its quiet-group gauges). A queue whose
    /// count fails is left out (logged).
    pub async fn shared_queue_metrics(
        &self,
    ) -> Option<
        Vec<(
            crate::backend::SharedQueue,
            QueueGauges,
            std::sync::Arc<QueueCounters>,
        )>,
    > {
        let backend = self.shared.as_ref()?;
        let mut queues = match backend.all_queues().await {
            Ok(q) => q,
            Err(e) => {
                tracing::warn!(error = %e.message, "metrics: listing the shared store's queues failed");
                return Some(Vec::new());
            }
        };
        queues.sort_by(|a, b| (&a.region, &a.name).cmp(&(&b.region, &b.name)));
        let mut out = Vec::with_capacity(queues.len());
        for q in queues {
            let groups = if q.fifo {
                backend.groups_in_flight(&q).await
            } else {
                Ok(0)
            };
            let quiet = if q.fifo {
                Ok(crate::backend::QuietGroups::default())
            } else {
                backend.quiet_groups(&q).await
            };
            match backend
                .counts(&q)
                .await
                .and_then(|c| Ok((c, groups?, quiet?)))
            {
                Ok((c, groups_with_inflight, quiet)) => {
                    let g = QueueGauges {
                        visible: c.visible,
                        not_visible: c.in_flight,
                        delayed: c.delayed,
                        oldest_age_secs: c.oldest_age_ms / 1000,
                        groups_with_inflight,
                        noisy_groups: quiet.noisy_groups,
                        visible_in_quiet_groups: quiet.visible,
                        not_visible_in_quiet_groups: quiet.not_visible,
                        delayed_in_quiet_groups: quiet.delayed,
                        oldest_age_in_quiet_groups_secs: quiet.oldest_age_ms / 1000,
                    };
                    let counters = self.sh_counters(&q);
                    out.push((q, g, counters));
                }
                Err(e) => {
                    tracing::warn!(queue = %q.name, error = %e.message, "metrics: counting a shared queue failed");
                }
            }
        }
        Some(out)
    }

    /// Every live queue with its gauges now, sorted by Region and name.
    pub fn queue_metrics(&self) -> Vec<(std::sync::Arc<crate::Queue>, QueueGauges)> {
        let _ = self.ensure_synced();
        let mut queues: Vec<std::sync::Arc<crate::Queue>> =
            self.registry.read().queues.values().cloned().collect();
        queues.sort_by(|a, b| (&a.region, &a.name).cmp(&(&b.region, &b.name)));
        let now = self.now_ms();
        queues
            .into_iter()
            .filter_map(|q| {
                let g = self.sample_gauges(&q, now)?;
                Some((q, g))
            })
            .collect()
    }

    /// A queue's gauges at `now`, its timers brought up to date first (a visibility timeout or
    /// delay that ran out since the queue was last touched counts as visible, as
    /// GetQueueAttributes shows it). `None` for a deleted queue.
    pub(crate) fn sample_gauges(&self, q: &crate::Queue, now: u64) -> Option<QueueGauges> {
        let mut st = q.state.lock();
        if st.deleted {
            return None;
        }
        let mut muts = Vec::new();
        st.tick(now, &mut muts);
        if !muts.is_empty() {
            // Expired messages and dedup entries; submitted under the queue's lock, like every
            // change, and not waited for.
            let _ = self.store.submit(muts);
        }
        Some(st.gauges(now))
    }
}
