//! Reads of the extension state on either store, for callers that serve both (the web
//! console): each `load_*` answers from the embedded engine's memory and store, or from the
//! shared backend (ADR 0002) through the same rule functions the `sh_*` APIs use. The async
//! changes (`start_replay`, `cancel_replay`, `add_schedule`, `remove_schedule`,
//! `start_message_move_task`, `cancel_message_move_task`, `purge_queue`, `record_audit`)
//! dispatch to the shared backend themselves.

use std::sync::Arc;

use redrive_core::{SqsError, SqsResult};

use crate::audit::AuditRecord;
use crate::replays::{ReplayMove, ReplayTask};
use crate::schedules::{Schedule, ScheduleRun};
use crate::{BrowsePage, BrowseQuery, Engine, QueueSummary, RequestContext};
use redrive_core::api::{ListMessageMoveTasksInput, ListMessageMoveTasksOutput, ListQueuesInput};

impl Engine {
    /// [`Engine::queue_summary`] on either store.
    pub async fn load_queue_summary(
        &self,
        ctx: &RequestContext,
        queue_name: &str,
    ) -> SqsResult<QueueSummary> {
        match &self.shared {
            Some(b) => self.sh_queue_summary(&**b, ctx, queue_name).await,
            None => self.queue_summary(ctx, queue_name),
        }
    }

    /// [`Engine::browse_messages`] on either store (the embedded store's payload reads on a
    /// blocking thread).
    pub async fn load_messages(
        self: &Arc<Self>,
        ctx: &RequestContext,
        queue_name: &str,
        query: &BrowseQuery,
    ) -> SqsResult<BrowsePage> {
        if let Some(b) = &self.shared {
            return self.sh_browse_messages(&**b, ctx, queue_name, query).await;
        }
        let (engine, ctx, name, query) = (
            self.clone(),
            ctx.clone(),
            queue_name.to_string(),
            query.clone(),
        );
        tokio::task::spawn_blocking(move || engine.browse_messages(&ctx, &name, &query))
            .await
            .unwrap_or_else(|e| Err(SqsError::internal(format!("browse failed: {e}"))))
    }

    /// The names of the queues of the request's Region, sorted.
    pub async fn load_queue_names(&self, ctx: &RequestContext) -> SqsResult<Vec<String>> {
        if let Some(b) = &self.shared {
            let mut names: Vec<String> = b
                .list_queues(&ctx.region, "")
                .await?
                .into_iter()
                .map(|q| q.name)
                .collect();
            names.sort();
            return Ok(names);
        }
        let mut names = Vec::new();
        let mut next_token = None;
        loop {
            let out = self.list_queues(
                ctx,
                ListQueuesInput {
                    queue_name_prefix: None,
                    max_results: Some(1000),
                    next_token,
                },
            )?;
            names.extend(
                out.queue_urls
                    .iter()
                    .map(|u| u.rsplit('/').next().unwrap_or(u).to_string()),
            );
            match out.next_token {
                Some(t) => next_token = Some(t),
                None => return Ok(names),
            }
        }
    }

    /// [`Engine::list_message_move_tasks`] on either store.
    pub async fn load_move_tasks(
        &self,
        input: ListMessageMoveTasksInput,
    ) -> SqsResult<ListMessageMoveTasksOutput> {
        match &self.shared {
            Some(b) => self.sh_list_move_tasks(&**b, input).await,
            None => self.list_message_move_tasks(input),
        }
    }

    /// [`Engine::list_replays`] on either store.
    pub async fn load_replays(
        &self,
        ctx: &RequestContext,
        source: Option<&str>,
    ) -> SqsResult<Vec<ReplayTask>> {
        match &self.shared {
            Some(b) => self.sh_list_replays(&**b, ctx, source).await,
            None => self.list_replays(ctx, source),
        }
    }

    /// [`Engine::replay`] on either store.
    pub async fn load_replay(&self, id: &str) -> SqsResult<ReplayTask> {
        match &self.shared {
            Some(b) => self.sh_replay(&**b, id).await,
            None => self.replay(id),
        }
    }

    /// [`Engine::replay_moves`] on either store.
    pub async fn load_replay_moves(
        &self,
        id: &str,
        after: u64,
        limit: usize,
    ) -> SqsResult<(Vec<ReplayMove>, Option<u64>)> {
        match &self.shared {
            Some(b) => self.sh_replay_moves(&**b, id, after, limit).await,
            None => self.replay_moves(id, after, limit),
        }
    }

    /// [`Engine::list_schedules`] on either store.
    pub async fn load_schedules(&self) -> SqsResult<Vec<Schedule>> {
        match &self.shared {
            Some(b) => self.sh_list_schedules(&**b).await,
            None => Ok(self.list_schedules()),
        }
    }

    /// [`Engine::schedule`] on either store.
    pub async fn load_schedule(&self, id_or_name: &str) -> SqsResult<Schedule> {
        match &self.shared {
            Some(b) => self.sh_schedule(&**b, id_or_name).await,
            None => self.schedule(id_or_name),
        }
    }

    /// [`Engine::schedule_runs`] on either store.
    pub async fn load_schedule_runs(&self, id_or_name: &str) -> SqsResult<Vec<ScheduleRun>> {
        match &self.shared {
            Some(b) => self.sh_schedule_runs(&**b, id_or_name).await,
            None => self.schedule_runs(id_or_name),
        }
    }

    /// [`Engine::audit_entries`] on either store.
    pub async fn load_audit(&self, since_ms: u64, limit: usize) -> SqsResult<Vec<AuditRecord>> {
        match &self.shared {
            Some(b) => self.sh_audit_entries(&**b, since_ms, limit).await,
            None => self.audit_entries(since_ms, limit),
        }
    }
}
