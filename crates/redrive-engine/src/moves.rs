//! The one move of a message between queues, shared by move tasks (`tasks.rs`) and
//! selective redrives (`replays.rs`), so a fix to it lands once.
//!
//! Invariants (see ARCHITECTURE.md): the message leaves the source and enters the destination
//! in one store batch, together with the caller's progress records, submitted while both queue
//! locks and the caller's progress table lock are held. The destination lock is only tried,
//! never waited for (the source lock is held), so lock order cannot deadlock.

use std::sync::Arc;

use redrive_core::api::MessageAttributes;

use crate::queue::QueueState;
use crate::store::{Durable, MessageRecord, Mutation, Payload};
use crate::{Engine, Queue};

/// Which message of the source to move.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Pick {
    /// The oldest visible one (a move task).
    Head,
    /// This one, if it is still there and visible (a replay's selection).
    Seq(u64),
}

/// A body and attributes that replace the message's own (a replay's transform and provenance).
pub(crate) type Rewrite = (Arc<str>, MessageAttributes);

/// What [`Engine::move_message`] did.
pub(crate) enum MoveResult<T> {
    /// Moved in memory; durable once the ticket resolves (store batches apply in order).
    Moved(T, Durable),
    /// `Pick::Head` and the source has no visible message.
    Empty,
    /// Lock contention or the head changed: try again shortly.
    Retry,
    /// The source queue is gone.
    SourceGone,
    /// `Pick::Seq` and the message is no longer in the source (deleted, expired, purged).
    MessageGone,
    /// `Pick::Seq` and the message is in flight or delayed.
    NotVisible,
    /// No fixed destination and the message has no dead-letter source.
    NoDestination,
    /// The destination (ARN) no longer exists.
    DestinationGone(String),
    DestinationIsSource,
    /// The caller's rewrite refused this message.
    Rejected(String),
    /// The caller's task left its table before the move (cancelled, its source deleted).
    TaskGone,
}

/// A move decided with both queue locks held, not yet done: the caller's commit step checks
/// its task, calls [`PendingMove::transfer`], adds its progress records and submits them all
/// as one batch before returning (its own table lock is a leaf lock).
pub(crate) struct PendingMove<'a> {
    engine: &'a Engine,
    source: &'a Queue,
    st: &'a mut QueueState,
    pub dest: &'a Queue,
    dst: &'a mut QueueState,
    seq: u64,
    pub now: u64,
    rewrite: Option<Rewrite>,
    /// The message's payload, read before the move (the destination's copy is written whole).
    payload: Arc<crate::store::MessagePayload>,
}

/// A message moved by [`PendingMove::transfer`].
pub(crate) struct Transferred {
    /// The MessageId it had in the source, and the new one in the destination.
    pub from_id: String,
    pub to_id: String,
    /// Delete from the source and put into the destination: the caller adds its progress
    /// records and submits them as one batch while both queue locks are still held.
    pub mutations: Vec<Mutation>,
}

/// The commit step's answer.
pub(crate) enum Commit<T> {
    /// Transferred and submitted.
    Submitted(T, Durable),
    /// The task is gone; nothing was transferred.
    TaskGone,
    /// The message was no longer in the source; nothing was transferred.
    NotTransferred,
}

impl PendingMove<'_> {
    /// Removes the message from the source and inserts the redriven one (new id, time and
    /// sequence; body and attributes kept unless rewritten) into the destination, in memory.
    /// The returned mutations must be submitted before the locks are released.
    pub fn transfer(self) -> Option<Transferred> {
        let old = self.st.remove(self.seq)?;
        let mut old = old.rec.to_record();
        old.payload = Payload::Loaded(self.payload.clone());
        let from_id = old.message_id.clone();
        let mut rec = redriven(old, self.dest, self.dst, self.now, self.engine);
        if let Some((body, attributes)) = self.rewrite {
            rec.payload = Payload::new(body, attributes, self.payload.system_attributes.clone());
        }
        let to_id = rec.message_id.clone();
        let mutations = vec![
            Mutation::DeleteMessage {
                queue_uid: self.source.uid,
                seq: self.seq,
            },
            Mutation::PutMessage(rec.clone()),
        ];
        self.dst.insert(self.engine.kept(rec), self.now);
        Some(Transferred {
            from_id,
            to_id,
            mutations,
        })
    }
}

impl Engine {
    /// Moves one message of `source` to `fixed_destination`, or else to the queue it was
    /// dead-lettered from. `rewrite` sees the message (with the source lock held) and may
    /// replace its body and attributes or refuse it; `commit` records the caller's progress
    /// (see [`PendingMove`]). The destination's waiters are woken after a move.
    pub(crate) fn move_message<T>(
        &self,
        source: &Arc<Queue>,
        pick: Pick,
        fixed_destination: Option<&str>,
        rewrite: impl FnOnce(&MessageRecord, u64) -> Result<Option<Rewrite>, String>,
        commit: impl FnOnce(PendingMove<'_>) -> Commit<T>,
    ) -> MoveResult<T> {
        let now = self.now_ms();
        // Find the message and its destination without holding the source lock across the
        // registry.
        let (seq, dest_arn) = {
            let mut st = source.state.lock();
            if st.deleted {
                return MoveResult::SourceGone;
            }
            let mut muts = Vec::new();
            st.tick(now, &mut muts);
            if !muts.is_empty() {
                let _ = self.store.submit(muts);
            }
            let seq = match eligible(&st, pick) {
                Ok(seq) => seq,
                Err(not) => return not,
            };
            let dest = fixed_destination.map(str::to_string).or_else(|| {
                st.messages[&seq]
                    .rec
                    .dead_letter_source_arn()
                    .map(str::to_string)
            });
            match dest {
                Some(d) => (seq, d),
                None => return MoveResult::NoDestination,
            }
        };
        let Some(dest) = self.resolve_arn(&dest_arn) else {
            return MoveResult::DestinationGone(dest_arn);
        };
        if Arc::ptr_eq(&dest, source) {
            return MoveResult::DestinationIsSource;
        }
        let committed = {
            let mut st = source.state.lock();
            if st.deleted {
                return MoveResult::SourceGone;
            }
            match (pick, eligible(&st, pick)) {
                (_, Ok(s)) if s == seq => {}
                // Another consumer took the head meanwhile.
                (Pick::Head, _) => return MoveResult::Retry,
                (_, Ok(_)) => return MoveResult::Retry,
                (_, Err(not)) => return not,
            }
            let rec = match self.loaded(&st.messages[&seq].rec) {
                Ok(rec) => rec,
                Err(crate::Unreadable::Gone) => return MoveResult::MessageGone,
                Err(crate::Unreadable::Failed) => return MoveResult::Retry,
            };
            let Some(payload) = rec.payload.loaded().cloned() else {
                return MoveResult::Retry;
            };
            let rewrite = match rewrite(&rec, now) {
                Ok(r) => r,
                Err(e) => return MoveResult::Rejected(e),
            };
            let Some(mut dst) = dest.state.try_lock() else {
                return MoveResult::Retry;
            };
            if dst.deleted {
                return MoveResult::DestinationGone(dest_arn);
            }
            commit(PendingMove {
                engine: self,
                source,
                st: &mut st,
                dest: &dest,
                dst: &mut dst,
                seq,
                now,
                rewrite,
                payload,
            })
        };
        match committed {
            Commit::Submitted(entry, ticket) => {
                dest.notify.notify_waiters();
                MoveResult::Moved(entry, ticket)
            }
            Commit::TaskGone => MoveResult::TaskGone,
            Commit::NotTransferred => MoveResult::MessageGone,
        }
    }
}

/// The message `pick` means, if it can move now.
fn eligible<T>(st: &QueueState, pick: Pick) -> Result<u64, MoveResult<T>> {
    match pick {
        Pick::Head => st.ready.first().copied().ok_or(MoveResult::Empty),
        Pick::Seq(seq) if !st.messages.contains_key(&seq) => Err(MoveResult::MessageGone),
        Pick::Seq(seq) if !st.ready.contains(&seq) => Err(MoveResult::NotVisible),
        Pick::Seq(seq) => Ok(seq),
    }
}

/// The new message a redrive sends: new id, time and sequence; body and attributes kept.
fn redriven(
    old: MessageRecord,
    dest: &Queue,
    dst: &mut QueueState,
    now: u64,
    engine: &Engine,
) -> MessageRecord {
    let message_id = uuid::Uuid::new_v4().to_string();
    let fifo = dst.settings.fifo;
    let delay = dst.settings.delay_secs;
    MessageRecord {
        queue_uid: dest.uid,
        seq: dst.alloc_seq(),
        dedup_id: fifo.then(|| message_id.clone()),
        sequence_number: fifo.then(|| engine.next_sequence_number()),
        message_id,
        payload: old.payload,
        sender_id: old.sender_id,
        sent_ms: now,
        enqueued_ms: now,
        visible_at_ms: now + (delay.max(0) as u64) * 1000,
        receive_count: 0,
        first_receive_ms: None,
        last_receive_ms: None,
        group_id: old.group_id,
        dead_letter_source_arn: None,
        dead_lettered_ms: None,
    }
}
