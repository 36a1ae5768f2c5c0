//! Background jobs kept in a shared backend (move tasks, replays), each run by whichever server
//! holds its own lease: every [`DISCOVER_EVERY_MS`] (or at once when woken) a server reads the
//! active jobs, takes the lease of each it is not running yet, and runs those it got. A job
//! whose holder dies is taken over once the lease expires, and resumes from the progress the
//! holder persisted; the job's own steps are fenced by the lease (see `QueueBackend::move_step`
//! and `replay_step`).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use redrive_core::SqsResult;
use tokio::sync::Notify;

use crate::Engine;
use crate::backend::{BoxFuture, QueueBackend};

/// How often a server looks for jobs to take over (a job started here wakes it at once).
pub(crate) const DISCOVER_EVERY_MS: u64 = 1_000;

/// One kind of leased job.
pub(crate) struct JobKind<J> {
    /// For logs: "message move task", "replay".
    pub what: &'static str,
    pub lease_ms: u64,
    /// The jobs that should be running now.
    pub active: for<'a> fn(&'a dyn QueueBackend) -> BoxFuture<'a, SqsResult<Vec<J>>>,
    pub id: fn(&J) -> String,
    pub lease_name: fn(&str) -> String,
    /// Runs one job to its end (or until its lease is lost).
    pub run: fn(Lease, J) -> BoxFuture<'static, ()>,
}

/// A held lease, with what a job runner needs to renew it and to work.
pub(crate) struct Lease {
    pub engine: Arc<Engine>,
    pub b: Arc<dyn QueueBackend>,
    pub holder: String,
    pub name: String,
}

impl Engine {
    /// Starts this server's runner of `kind`'s jobs; it ends when the engine is dropped.
    pub(crate) fn spawn_leased_jobs<J: Send + 'static>(
        self: &Arc<Self>,
        backend: Arc<dyn QueueBackend>,
        wake: Arc<Notify>,
        kind: JobKind<J>,
    ) {
        let holder = uuid::Uuid::new_v4().to_string();
        let running: Arc<Mutex<HashSet<String>>> = Arc::default();
        let engine = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_millis(DISCOVER_EVERY_MS)) => {}
                    () = wake.notified() => {}
                }
                let Some(e) = engine.upgrade() else {
                    break;
                };
                let jobs = match (kind.active)(&*backend).await {
                    Ok(j) => j,
                    Err(err) => {
                        tracing::warn!(error = %err.message, "could not read the {}s", kind.what);
                        continue;
                    }
                };
                for job in jobs {
                    let id = (kind.id)(&job);
                    if running.lock().contains(&id) {
                        continue;
                    }
                    let name = (kind.lease_name)(&id);
                    match backend.lease(&name, &holder, kind.lease_ms).await {
                        Ok(true) => {}
                        Ok(false) => continue,
                        Err(err) => {
                            tracing::warn!(error = %err.message, "could not take a {}'s lease", kind.what);
                            continue;
                        }
                    }
                    running.lock().insert(id.clone());
                    tracing::info!(id = %id, "running {}", kind.what);
                    let lease = Lease {
                        engine: Arc::clone(&e),
                        b: Arc::clone(&backend),
                        holder: holder.clone(),
                        name,
                    };
                    let (running, run) = (Arc::clone(&running), kind.run);
                    tokio::spawn(async move {
                        run(lease, job).await;
                        running.lock().remove(&id);
                    });
                }
            }
        });
    }
}
