//! A failed write never leaves memory ahead of the disk. Each engine operation runs over the
//! real redb store on a backend that fails its k-th I/O operation (ENOSPC), for every k until
//! the operation needs fewer: whenever the operation answers with an error, the engine's memory
//! equals what the store holds (rebuilt from the reopened file), and the store takes writes
//! again without a restart.

use std::collections::BTreeMap;
use std::io::{Error, ErrorKind};
use std::sync::{Arc, Mutex};

use redb::StorageBackend;
use redrive_core::ErrorCode;
use redrive_core::SqsResult;
use redrive_core::api::*;
use redrive_engine::store::{DurabilityMode, RedbStore, Snapshot};
use redrive_engine::{Engine, EngineConfig, ManualClock, RequestContext, Store};

use crate::common::{T0, ctx, redrive_policy};

#[derive(Debug, Default)]
struct Image {
    bytes: Vec<u8>,
    /// I/O operations that change the image (write, set_len, sync) since arming.
    ops: u64,
    fail_at: Option<u64>,
    fired: bool,
}

impl Image {
    fn tick(&mut self) -> Result<(), Error> {
        self.ops += 1;
        if self.fail_at == Some(self.ops) {
            self.fail_at = None;
            self.fired = true;
            return Err(Error::from_raw_os_error(28)); // ENOSPC
        }
        Ok(())
    }
}

/// One shared image: every backend the store's factory hands out (the first open and each
/// reopen after a failure) sees the same bytes, as files of one path do.
#[derive(Debug, Clone, Default)]
struct FaultBackend(Arc<Mutex<Image>>);

impl FaultBackend {
    fn arm(&self, k: u64) {
        let mut i = self.0.lock().unwrap();
        i.ops = 0;
        i.fail_at = Some(k);
        i.fired = false;
    }

    fn disarm(&self) -> bool {
        let mut i = self.0.lock().unwrap();
        i.fail_at = None;
        i.fired
    }
}

impl StorageBackend for FaultBackend {
    fn len(&self) -> Result<u64, Error> {
        Ok(self.0.lock().unwrap().bytes.len() as u64)
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), Error> {
        let i = self.0.lock().unwrap();
        let offset = usize::try_from(offset).unwrap();
        if offset + out.len() > i.bytes.len() {
            return Err(Error::from(ErrorKind::UnexpectedEof));
        }
        out.copy_from_slice(&i.bytes[offset..offset + out.len()]);
        Ok(())
    }

    fn set_len(&self, len: u64) -> Result<(), Error> {
        let mut i = self.0.lock().unwrap();
        i.tick()?;
        i.bytes.resize(usize::try_from(len).unwrap(), 0);
        Ok(())
    }

    fn sync_data(&self) -> Result<(), Error> {
        self.0.lock().unwrap().tick()
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), Error> {
        let mut i = self.0.lock().unwrap();
        i.tick()?;
        let offset = usize::try_from(offset).unwrap();
        if i.bytes.len() < offset + data.len() {
            i.bytes.resize(offset + data.len(), 0);
        }
        i.bytes[offset..offset + data.len()].copy_from_slice(data);
        Ok(())
    }
}

/// Every mutation kind the engine writes.
#[derive(Debug, Clone, Copy)]
enum Op {
    Send,
    SendFifo,
    SendBatch,
    /// Receives with a DLQ move (a message already received once, maxReceiveCount 1) and
    /// receive-count updates in one batch.
    ReceiveWithDlqMove,
    FifoReceiveWithAttempt,
    Delete,
    DeleteBatch,
    ChangeVisibility,
    Purge,
    CreateQueue,
    DeleteQueue,
    SetAttributes,
    Tag,
    StartMoveTask,
}

const OPS: [Op; 14] = [
    Op::Send,
    Op::SendFifo,
    Op::SendBatch,
    Op::ReceiveWithDlqMove,
    Op::FifoReceiveWithAttempt,
    Op::Delete,
    Op::DeleteBatch,
    Op::ChangeVisibility,
    Op::Purge,
    Op::CreateQueue,
    Op::DeleteQueue,
    Op::SetAttributes,
    Op::Tag,
    Op::StartMoveTask,
];

struct Fixture {
    engine: Arc<Engine>,
    store: Arc<RedbStore>,
    backend: FaultBackend,
    ctx: RequestContext,
    src: String,
    dlq: String,
    fifo: String,
    /// Receipt handle of an in-flight message of `src`.
    in_flight: String,
}

impl Fixture {
    async fn new() -> Fixture {
        let backend = FaultBackend::default();
        let shared = backend.clone();
        let store = Arc::new(
            RedbStore::with_backend_factory(move || Ok(shared.clone()), DurabilityMode::Strict)
                .unwrap(),
        );
        let engine = Arc::new(Engine::open(
            EngineConfig::default(),
            store.clone(),
            Arc::new(ManualClock::new(T0)),
        ));
        let ctx = ctx();
        let create = |name: &str, attrs: Vec<(&str, String)>| {
            let engine = engine.clone();
            let ctx = ctx.clone();
            let input = CreateQueueInput {
                queue_name: name.into(),
                attributes: attrs.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
                ..Default::default()
            };
            async move { engine.create_queue(&ctx, input).await.unwrap().queue_url }
        };
        let dlq = create("faults-dlq", vec![]).await;
        let dlq_arn = "arn:aws:sqs:us-east-1:000000000000:faults-dlq";
        let src = create(
            "faults-src",
            vec![
                ("VisibilityTimeout", "30".into()),
                ("RedrivePolicy", redrive_policy(dlq_arn, 1)),
            ],
        )
        .await;
        let fifo = create(
            "faults.fifo",
            vec![
                ("FifoQueue", "true".into()),
                ("ContentBasedDeduplication", "true".into()),
            ],
        )
        .await;
        let mut f = Fixture {
            engine,
            store,
            backend,
            ctx,
            src,
            dlq,
            fifo,
            in_flight: String::new(),
        };
        for body in ["a", "b", "c", "d"] {
            f.send(&f.src.clone(), body, None).await.unwrap();
        }
        f.send(&f.fifo.clone(), "x", Some("g1")).await.unwrap();
        f.send(&f.fifo.clone(), "y", Some("g2")).await.unwrap();
        f.send(&f.dlq.clone(), "z", None).await.unwrap();
        // "a" in flight; "b" received once and visible again (its next receive moves it).
        f.in_flight = f.receive(&f.src.clone(), 1, 30, None).await.unwrap()[0]
            .receipt_handle
            .clone();
        f.receive(&f.src.clone(), 1, 0, None).await.unwrap();
        f
    }

    async fn send(&self, url: &str, body: &str, group: Option<&str>) -> SqsResult<()> {
        let input = SendMessageInput {
            queue_url: url.into(),
            message_body: Some(body.into()),
            message_group_id: group.map(str::to_string),
            ..Default::default()
        };
        self.engine.send_message(&self.ctx, input).await.map(|_| ())
    }

    async fn receive(
        &self,
        url: &str,
        max: i64,
        vis: i64,
        attempt: Option<&str>,
    ) -> SqsResult<Vec<ReceivedMessage>> {
        let input = ReceiveMessageInput {
            queue_url: url.into(),
            max_number_of_messages: Some(max),
            visibility_timeout: Some(vis),
            wait_time_seconds: Some(0),
            receive_request_attempt_id: attempt.map(str::to_string),
            ..Default::default()
        };
        Ok(self
            .engine
            .receive_message(&self.ctx, input)
            .await?
            .messages)
    }

    async fn run(&self, op: Op) -> SqsResult<()> {
        let e = &self.engine;
        let ctx = &self.ctx;
        let url = |u: &str| QueueUrlInput {
            queue_url: u.into(),
        };
        match op {
            Op::Send => self.send(&self.src, "new", None).await,
            Op::SendFifo => self.send(&self.fifo, "new", Some("g3")).await,
            Op::SendBatch => {
                let entries = (0..3)
                    .map(|i| SendMessageBatchRequestEntry {
                        id: format!("e{i}"),
                        message_body: Some(format!("batch-{i}")),
                        ..Default::default()
                    })
                    .collect();
                let out = e
                    .send_message_batch(
                        ctx,
                        SendMessageBatchInput {
                            queue_url: self.src.clone(),
                            entries,
                        },
                    )
                    .await?;
                assert_eq!(out.successful.len(), 3);
                Ok(())
            }
            Op::ReceiveWithDlqMove => {
                let got = self.receive(&self.src, 10, 30, None).await?;
                assert_eq!(got.len(), 2, "c and d; b moved to the DLQ");
                Ok(())
            }
            Op::FifoReceiveWithAttempt => {
                let got = self.receive(&self.fifo, 10, 30, Some("attempt-1")).await?;
                assert_eq!(got.len(), 2);
                Ok(())
            }
            Op::Delete => {
                e.delete_message(
                    ctx,
                    DeleteMessageInput {
                        queue_url: self.src.clone(),
                        receipt_handle: Some(self.in_flight.clone()),
                    },
                )
                .await
            }
            Op::DeleteBatch => {
                let out = e
                    .delete_message_batch(
                        ctx,
                        DeleteMessageBatchInput {
                            queue_url: self.src.clone(),
                            entries: vec![DeleteMessageBatchRequestEntry {
                                id: "d".into(),
                                receipt_handle: self.in_flight.clone(),
                            }],
                        },
                    )
                    .await?;
                assert_eq!(out.successful.len(), 1);
                Ok(())
            }
            Op::ChangeVisibility => {
                e.change_message_visibility(
                    ctx,
                    ChangeMessageVisibilityInput {
                        queue_url: self.src.clone(),
                        receipt_handle: Some(self.in_flight.clone()),
                        visibility_timeout: Some(0),
                    },
                )
                .await
            }
            Op::Purge => e.purge_queue(ctx, url(&self.src)).await,
            Op::CreateQueue => e
                .create_queue(
                    ctx,
                    CreateQueueInput {
                        queue_name: "faults-new".into(),
                        ..Default::default()
                    },
                )
                .await
                .map(|_| ()),
            Op::DeleteQueue => e.delete_queue(ctx, url(&self.src)).await,
            Op::SetAttributes => {
                e.set_queue_attributes(
                    ctx,
                    SetQueueAttributesInput {
                        queue_url: self.src.clone(),
                        attributes: BTreeMap::from([(
                            "VisibilityTimeout".to_string(),
                            "60".to_string(),
                        )]),
                    },
                )
                .await
            }
            Op::Tag => {
                e.tag_queue(
                    ctx,
                    TagQueueInput {
                        queue_url: self.src.clone(),
                        tags: BTreeMap::from([("team".to_string(), "ops".to_string())]),
                    },
                )
                .await
            }
            Op::StartMoveTask => e
                .start_message_move_task(StartMessageMoveTaskInput {
                    source_arn: "arn:aws:sqs:us-east-1:000000000000:faults-dlq".into(),
                    destination_arn: None,
                    max_number_of_messages_per_second: Some(1),
                })
                .await
                .map(|_| ()),
        }
    }

    /// What the store holds now, in `Engine::memory_snapshot`'s form.
    fn on_disk(&self) -> Snapshot {
        let mut s = self.store.try_load().expect("store readable");
        s.documents.clear();
        s.move_tasks.sort_by(|a, b| a.task_id.cmp(&b.task_id));
        s
    }

    #[track_caller]
    fn assert_memory_matches_disk(&self, what: &str) {
        let memory = self.engine.memory_snapshot();
        let disk = self.on_disk();
        assert_eq!(memory.queues, disk.queues, "{what}: queues");
        assert_eq!(memory.messages, disk.messages, "{what}: messages");
        assert_eq!(memory.dedup, disk.dedup, "{what}: FIFO dedup entries");
        assert_eq!(memory.move_tasks, disk.move_tasks, "{what}: move tasks");
        // Format 3: memory holds no payloads; what a receive would read (pending puts, the
        // payload cache, the file) is exactly what the file holds, so no refused write left a
        // payload behind to be served.
        assert!(
            memory
                .messages
                .iter()
                .all(|m| m.payload == redrive_engine::store::Payload::Stored),
            "{what}: a payload kept in memory"
        );
        let full = self
            .store
            .try_load_full()
            .expect("every payload in the file");
        for m in &full.messages {
            assert_eq!(
                Store::payload(&*self.store, m.queue_uid, m.seq)
                    .unwrap()
                    .as_ref(),
                m.payload.loaded(),
                "{what}: payload of {}/{}",
                m.queue_uid,
                m.seq
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_write_at_any_point_leaves_memory_as_the_disk_is() {
    for op in OPS {
        let mut failures = 0;
        for k in 1.. {
            assert!(k < 500, "{op:?}: never completed without hitting the fault");
            let f = Fixture::new().await;
            f.assert_memory_matches_disk("after setup");
            let before = f.engine.memory_snapshot();
            f.backend.arm(k);
            let result = f.run(op).await;
            let fired = f.backend.disarm();
            let what = format!("{op:?} failing at I/O #{k}");
            match result {
                Ok(()) => {
                    // The operation's commit took fewer than k I/O operations (a later one,
                    // such as a move task's first move, may have met the fault: it recovers).
                    f.engine.ensure_synced().unwrap();
                    break;
                }
                Err(e) => {
                    assert!(fired, "{what}: failed without a fault: {e}");
                    assert!(
                        matches!(
                            e.code,
                            ErrorCode::InternalError | ErrorCode::ServiceUnavailable
                        ),
                        "{what}: {e}"
                    );
                    failures += 1;
                }
            }
            f.assert_memory_matches_disk(&what);
            // Unless the failure came after the commit record reached the image (a failed
            // final fsync), the disk, and so memory, is exactly as before.
            let now = f.engine.memory_snapshot();
            if now.messages != before.messages || now.queues != before.queues {
                eprintln!("{what}: the change reached the disk before the error (kept)");
            }
            // Writes go on without a restart, and memory keeps matching the disk.
            f.send(&f.dlq, "after", None).await.unwrap_or_else(|e| {
                panic!("{what}: a write after recovery failed: {e}");
            });
            f.assert_memory_matches_disk(&format!("{what}, then a send"));
            let h = f.store.health();
            assert!(h.failed.is_none(), "{what}: {h:?}");
            assert!(h.failures >= 1, "{what}: {h:?}");
        }
        assert!(failures > 0, "{op:?}: the fault never hit its write");
    }
}
