//! The client-side path (AWS, moto, or `--client-side`): receive / send / delete in chunks.

use super::*;

/// A resolved destination queue.
#[derive(Debug, Clone)]
pub(super) struct Dest {
    pub queue: QueueRef,
    pub arn: String,
    pub max_size: usize,
}

/// A message received from the DLQ and still held by this run.
struct Held {
    receipt: String,
    /// The message in export shape (for the backup and `$meta`).
    msg: Message,
    sdk: aws_sdk_sqs::types::Message,
}

/// A selected message, ready to send.
struct Ready {
    held: Held,
    body: String,
    dest: usize,
    key: Option<String>,
}

fn to_message(m: &aws_sdk_sqs::types::Message) -> Message {
    Message::from_sdk(m)
}

/// The FIFO deduplication id of a replayed copy: fresh w.r.t. the original (it names the
/// run), identical for a resend of the same message by a resumed run (so SQS drops it).
pub(super) fn dedup_id(run: &str, message_id: &str) -> String {
    let id = format!("{run}.{message_id}");
    if id.len() <= 128 && id.chars().all(|c| c.is_ascii_graphic()) {
        id
    } else {
        use std::hash::{Hash, Hasher};
        let mut h = std::hash::DefaultHasher::new();
        message_id.hash(&mut h);
        format!("{run}.{:016x}", h.finish())
    }
}

fn queued_receipts(queues: &HashMap<String, VecDeque<Ready>>) -> Vec<String> {
    queues
        .values()
        .flat_map(|q| q.iter().map(|x| x.held.receipt.clone()))
        .collect()
}

struct Run<'a> {
    conn: &'a Conn,
    plan: &'a ReplayPlan,
    c: Compiled,
    dlq: QueueRef,
    dlq_arn: String,
    fifo: bool,
    run: String,
    journal: Journal,
    /// Every id ever copied from this DLQ (journal), and whether its delete is known.
    sent: HashMap<String, (String, bool)>,
    dests: Vec<Dest>,
    dest_by_arn: HashMap<String, usize>,
    fixed_dest: Option<usize>,
    /// Held but not to be replayed now (unselected, returned, new): receipt by id.
    parked: HashMap<String, String>,
    /// Ids received at least once by this run.
    seen: HashSet<String>,
    /// Received while polling for returns during the act phase; judged by the next scan.
    backlog: Vec<aws_sdk_sqs::types::Message>,
    held_until: Instant,
    started: Instant,
    pacer: Pacer,
    breaker: Option<Breaker>,
    s: Summary,
    dest_counts: BTreeMap<usize, u64>,
    preview: Preview,
}

pub(super) async fn run(
    conn: &Conn,
    plan: &ReplayPlan,
    c: Compiled,
    dlq: &QueueRef,
    interrupt: &Interrupt,
) -> Result<ReplayResult> {
    let attrs = queue_attrs(conn, dlq).await?;
    let dlq_arn = attrs.get("QueueArn").cloned().unwrap_or_default();
    let fifo = dlq.is_fifo();
    let audit = plan.default_audit_log(dlq);
    let (journal, state) = Journal::open(&audit, &dlq_arn)?;
    let resumed = state.unfinished_run.clone();
    let run = resumed
        .clone()
        .unwrap_or_else(|| format!("cli-{}", uuid::Uuid::new_v4()));
    let mut r = Run {
        conn,
        plan,
        c,
        dlq: dlq.clone(),
        dlq_arn,
        fifo,
        run: run.clone(),
        journal,
        sent: state.sent,
        dests: Vec::new(),
        dest_by_arn: HashMap::new(),
        fixed_dest: None,
        parked: HashMap::new(),
        seen: HashSet::new(),
        backlog: Vec::new(),
        held_until: Instant::now(),
        started: Instant::now(),
        pacer: Pacer::new(plan.rate, plan.rate_per.as_ref().map(|(_, r)| *r)),
        breaker: plan.breaker.map(Breaker::new),
        s: Summary {
            run,
            path: "client",
            outcome: Outcome::Completed,
            selected: 0,
            moved: 0,
            skipped: 0,
            failed: 0,
            remaining: 0,
            returned: 0,
            finished_pending: 0,
            pending_delete: 0,
            destinations: Vec::new(),
            reason: None,
            audit_log: audit.display().to_string(),
            left_in_dlq: None,
        },
        dest_counts: BTreeMap::new(),
        preview: Preview {
            dry_run: true,
            complete: true,
            path: "client".into(),
            ..Preview::default()
        },
    };
    if let Some(to) = &plan.destination {
        let d = r.resolve_dest(to).await?;
        r.fixed_dest = Some(d);
    }
    if let Some(prev) = &resumed
        && !plan.dry_run
    {
        eprintln!(
            "resuming run {prev} (its process ended without an end record); copies it made are not sent again"
        );
    }
    if plan.dry_run {
        let result = r.dry_run().await;
        r.release_all().await;
        return result;
    }
    if resumed.is_none() {
        r.journal.write(&[r.record(
            "start",
            json!({
                "who": plan.requested_by,
                "path": "client",
                "dryRun": false,
                "destination": plan.destination,
                "selection": plan.selection,
                "transform": plan.transform,
                "rate": plan.rate,
                "ratePer": plan.rate_per.as_ref().map(|(k, v)| json!({"key": k, "rate": v})),
                "breaker": plan.breaker,
                "provenance": plan.provenance,
            }),
        )])?;
    }
    let result = r.act(interrupt).await;
    r.release_all().await;
    match result {
        Ok(()) => {}
        Err(e) => {
            // Bad input found by a chunk's scan: nothing of that chunk moved.
            r.s.outcome = Outcome::Failed;
            r.s.reason = Some(format!("{e:#}"));
            r.finish_record()?;
            if r.s.moved == 0 && r.s.finished_pending == 0 {
                return Err(e);
            }
        }
    }
    if matches!(r.s.outcome, Outcome::Completed) && (r.s.failed > 0 || r.s.pending_delete > 0) {
        r.s.outcome = Outcome::Partial;
    }
    if r.s.outcome != Outcome::Failed {
        r.finish_record()?;
    }
    r.s.left_in_dlq = crate::source::approximate_count(conn, dlq).await.ok();
    Ok(ReplayResult::Summary(r.s))
}

impl Run<'_> {
    fn record(&self, event: &str, extra: Value) -> Value {
        let mut v = json!({
            "event": event,
            "at": now_ms(),
            "run": self.run,
            "source": self.dlq_arn,
        });
        if let (Some(o), Value::Object(e)) = (v.as_object_mut(), extra) {
            o.extend(e);
        }
        v
    }

    fn finish_record(&mut self) -> Result<()> {
        self.s.destinations = self.destination_counts();
        let rec = self.record(
            "end",
            json!({
                "outcome": self.s.outcome,
                "reason": self.s.reason,
                "counts": {
                    "selected": self.s.selected, "moved": self.s.moved,
                    "skipped": self.s.skipped, "failed": self.s.failed,
                    "remaining": self.s.remaining, "returned": self.s.returned,
                    "finishedPending": self.s.finished_pending,
                    "pendingDelete": self.s.pending_delete,
                },
            }),
        );
        self.journal.write(&[rec])
    }

    fn destination_counts(&self) -> Vec<DestinationCount> {
        self.dest_counts
            .iter()
            .map(|(&i, &count)| DestinationCount {
                arn: self.dests[i].arn.clone(),
                name: self.dests[i].queue.name.clone(),
                count,
            })
            .collect()
    }

    async fn resolve_dest(&mut self, q: &str) -> Result<usize> {
        if let Some(&i) = self.dest_by_arn.get(q) {
            return Ok(i);
        }
        let name = if q.starts_with("arn:") {
            queue_name_of(q).to_string()
        } else {
            q.to_string()
        };
        let queue = self
            .conn
            .resolve(&name)
            .await
            .map_err(|e| anyhow!("destination: {e:#}"))?;
        let attrs = queue_attrs(self.conn, &queue).await?;
        let arn = attrs.get("QueueArn").cloned().unwrap_or_default();
        if arn == self.dlq_arn || queue.url == self.dlq.url {
            bail!(
                "the destination `{}` is the DLQ itself; use --to with another queue",
                queue.name
            );
        }
        if queue.is_fifo() != self.fifo {
            let (a, b) = if self.fifo {
                ("FIFO", "standard")
            } else {
                ("standard", "FIFO")
            };
            bail!(
                "the DLQ `{}` is a {a} queue but the destination `{}` is a {b} queue; a replay keeps MessageGroupId and needs both of the same type",
                self.dlq.name,
                queue.name
            );
        }
        let max_size = attrs
            .get("MaximumMessageSize")
            .and_then(|v| v.parse().ok())
            .unwrap_or(262_144);
        let i = self.dests.len();
        self.dests.push(Dest {
            queue,
            arn: arn.clone(),
            max_size,
        });
        self.dest_by_arn.insert(arn, i);
        self.dest_by_arn.insert(q.to_string(), i);
        Ok(i)
    }

    fn elapsed_ms(&self) -> f64 {
        self.started.elapsed().as_secs_f64() * 1000.0
    }

    fn vt(&self) -> i32 {
        self.plan.visibility_timeout.clamp(1, 43_200)
    }

    async fn receive(&mut self, wait: i32) -> Result<Vec<aws_sdk_sqs::types::Message>> {
        if !self.backlog.is_empty() {
            return Ok(std::mem::take(&mut self.backlog));
        }
        let out = self
            .conn
            .sqs
            .receive_message()
            .queue_url(&self.dlq.url)
            .max_number_of_messages(10)
            .visibility_timeout(self.vt())
            .wait_time_seconds(wait)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .send()
            .await
            .map_err(|e| sdk_error(e, &self.dlq.name, self.conn.endpoint_url.as_deref()))?;
        let now = Instant::now() + Duration::from_secs(self.vt() as u64);
        if self.held_until < Instant::now() {
            self.held_until = now;
        }
        Ok(out.messages.unwrap_or_default())
    }

    /// Scans up to `cap` selected messages: judged, transformed, destinations resolved.
    /// Returns the selected ones; messages already copied (journal) go to `done`.
    async fn scan(
        &mut self,
        cap: usize,
        limit_left: Option<u64>,
        interrupt: &Interrupt,
        seen_ctrl_c: u64,
    ) -> Result<(Vec<Ready>, Vec<Held>, Vec<String>, bool)> {
        let mut ready: Vec<Ready> = Vec::new();
        let mut done: Vec<Held> = Vec::new();
        let mut problems: Vec<String> = Vec::new();
        let mut empty = 0;
        let mut complete = true;
        let want = limit_left.map_or(cap, |l| (l as usize).min(cap));
        while ready.len() < want && empty < 2 {
            if interrupt.count() > seen_ctrl_c {
                complete = false;
                break;
            }
            if self.parked.len() + ready.len() >= MAX_HELD {
                complete = false;
                break;
            }
            if self.needs_heartbeat() {
                // Long scans (or short --visibility-timeout): keep what is held hidden.
                let queued: Vec<String> = ready
                    .iter()
                    .map(|x| x.held.receipt.clone())
                    .chain(done.iter().map(|d| d.receipt.clone()))
                    .collect();
                self.heartbeat(queued).await;
            }
            let msgs = self.receive(1).await?;
            if msgs.is_empty() {
                empty += 1;
                // One empty long poll and nothing visible left: the scan is done.
                if self.visible_now().await == Some(0) {
                    break;
                }
                continue;
            }
            empty = 0;
            for m in msgs {
                let receipt = m.receipt_handle().unwrap_or_default().to_string();
                let msg = to_message(&m);
                let id = msg.message_id.clone();
                if !self.seen.insert(id.clone()) {
                    // Seen before (its hold expired): keep the newest receipt.
                    if let Some(r) = self.parked.get_mut(&id) {
                        *r = receipt;
                    } else if let Some(x) = ready.iter_mut().find(|x| x.held.msg.message_id == id) {
                        x.held.receipt = receipt;
                    } else {
                        self.parked.insert(id, receipt);
                    }
                    continue;
                }
                self.preview.scanned += 1;
                if self.sent.contains_key(&id) {
                    // Copied by an earlier run: delete it, never send it again.
                    self.preview.already_replayed += 1;
                    done.push(Held {
                        receipt,
                        msg,
                        sdk: m,
                    });
                    continue;
                }
                let own = m
                    .message_attributes()
                    .and_then(|a| a.get(provenance::ATTRIBUTE))
                    .and_then(|v| v.string_value())
                    .and_then(Provenance::parse);
                if own.is_some_and(|p| p.run == self.run) {
                    // Replayed by this very run and back in the DLQ.
                    self.s.returned += 1;
                    if let Some(b) = &mut self.breaker {
                        b.returned(self.started.elapsed().as_millis() as u64);
                    }
                    self.parked.insert(id, receipt);
                    continue;
                }
                if ready.len() >= want {
                    self.parked.insert(id, receipt);
                    continue;
                }
                let meta = meta_of(&msg);
                match judge(&self.c.selection, &msg, &meta) {
                    Verdict::Selected => {}
                    Verdict::NotSelected => {
                        self.parked.insert(id, receipt);
                        continue;
                    }
                    Verdict::FilterError(_) => {
                        self.preview.filter_errors += 1;
                        self.parked.insert(id, receipt);
                        continue;
                    }
                }
                match self.prepare(&msg, &m, &meta).await {
                    Ok((body, dest, key)) => ready.push(Ready {
                        held: Held {
                            receipt,
                            msg,
                            sdk: m,
                        },
                        body,
                        dest,
                        key,
                    }),
                    Err(e) => {
                        problems.push(format!("message {id}: {e:#}"));
                        self.parked.insert(id, receipt);
                    }
                }
            }
        }
        Ok((ready, done, problems, complete))
    }

    /// Transform, destination, key and attribute room of one selected message.
    async fn prepare(
        &mut self,
        msg: &Message,
        m: &aws_sdk_sqs::types::Message,
        meta: &Value,
    ) -> Result<(String, usize, Option<String>)> {
        let dest = match self.fixed_dest {
            Some(d) => d,
            None => {
                let Some(src) = msg.dead_letter_queue_source_arn.clone() else {
                    bail!(
                        "it has no DeadLetterQueueSourceArn (it was not dead-lettered by a redrive policy); use --to QUEUE"
                    );
                };
                self.resolve_dest(&src)
                    .await
                    .map_err(|e| anyhow!("its source queue {src} cannot be used: {e:#}"))?
            }
        };
        let body = match &self.c.transform {
            Some(t) => t
                .apply(&msg.body, meta, self.dests[dest].max_size)
                .map_err(|e| anyhow!("{e}"))?,
            None => msg.body.clone(),
        };
        if self.plan.provenance {
            let names = m
                .message_attributes()
                .map(|a| a.keys().map(String::as_str).collect::<Vec<_>>())
                .unwrap_or_default();
            provenance::check_room(names).map_err(|e| anyhow!("{e}"))?;
        }
        let key = self
            .c
            .rate_key
            .as_ref()
            .map(|k| k.key(&jq::body_value(&msg.body), &jq::from_json(meta)));
        Ok((body, dest, key))
    }

    async fn dry_run(&mut self) -> Result<ReplayResult> {
        let limit = self.plan.selection.limit;
        let never = Interrupt {
            rx: tokio::sync::watch::channel(0).1,
        };
        let (ready, done, problems, complete) = self.scan(MAX_HELD, limit, &never, 0).await?;
        for d in done {
            self.parked.insert(d.msg.message_id.clone(), d.receipt);
        }
        self.preview.complete = complete;
        self.preview.selected = ready.len() as u64;
        for x in &ready {
            *self.dest_counts.entry(x.dest).or_default() += 1;
        }
        self.preview.destinations = self.destination_counts();
        self.preview.sample = ready
            .iter()
            .take(self.plan.sample)
            .map(|x| SampleEntry {
                message_id: x.held.msg.message_id.clone(),
                destination: self.dests[x.dest].arn.clone(),
                body: x.body.clone(),
                sent_timestamp: x.held.msg.sent_timestamp,
                dead_lettered_at: x.held.msg.dead_lettered_at,
            })
            .collect();
        for x in ready {
            self.parked
                .insert(x.held.msg.message_id.clone(), x.held.receipt);
        }
        let _ = self.journal.write(&[self.record(
            "dryRun",
            json!({"who": self.plan.requested_by, "path": "client",
                   "selection": self.plan.selection, "transform": self.plan.transform,
                   "destination": self.plan.destination,
                   "scanned": self.preview.scanned, "selected": self.preview.selected,
                   "problems": problems.len()}),
        )]);
        if !problems.is_empty() {
            let shown = &problems[0];
            bail!(
                "{} selected message(s) cannot be replayed; first: {shown}",
                problems.len()
            );
        }
        Ok(ReplayResult::Preview(self.preview.clone()))
    }

    async fn act(&mut self, interrupt: &Interrupt) -> Result<()> {
        let seen_ctrl_c = interrupt.count();
        let mut first_chunk = true;
        loop {
            let limit_left = self
                .plan
                .selection
                .limit
                .map(|l| l.saturating_sub(self.s.selected));
            if limit_left == Some(0) {
                break;
            }
            let (ready, done, problems, _complete) =
                self.scan(CHUNK, limit_left, interrupt, seen_ctrl_c).await?;
            if !problems.is_empty() {
                for x in ready {
                    self.parked
                        .insert(x.held.msg.message_id.clone(), x.held.receipt);
                }
                for d in done {
                    self.parked.insert(d.msg.message_id.clone(), d.receipt);
                }
                bail!(
                    "{} selected message(s) cannot be replayed{}; first: {}",
                    problems.len(),
                    if first_chunk {
                        " (nothing was moved)"
                    } else {
                        " (this chunk was not moved)"
                    },
                    problems[0]
                );
            }
            first_chunk = false;
            let progressed = !ready.is_empty() || !done.is_empty();
            self.finish_done(done).await?;
            if ready.is_empty() {
                break;
            }
            self.s.selected += ready.len() as u64;
            if let Some(path) = &self.plan.backup {
                let msgs: Vec<&Message> = ready.iter().map(|x| &x.held.msg).collect();
                backup(path, &msgs)?;
            }
            self.send_all(ready, interrupt, seen_ctrl_c).await?;
            if self.s.outcome != Outcome::Completed || !progressed {
                break;
            }
        }
        Ok(())
    }

    /// Deletes DLQ messages whose copy an earlier run already made.
    async fn finish_done(&mut self, done: Vec<Held>) -> Result<()> {
        for chunk in done.chunks(10) {
            let ids: Vec<(String, String)> = chunk
                .iter()
                .map(|h| (h.msg.message_id.clone(), h.receipt.clone()))
                .collect();
            let deleted = self.delete(&ids).await;
            let recs: Vec<Value> = deleted
                .iter()
                .map(|id| self.record("deleted", json!({"messageId": id, "finishing": true})))
                .collect();
            self.journal.write(&recs)?;
            self.s.finished_pending += deleted.len() as u64;
            for (id, receipt) in ids {
                if !deleted.contains(&id) {
                    self.parked.insert(id, receipt);
                }
            }
        }
        Ok(())
    }

    /// Deletes from the DLQ; the ids whose delete succeeded.
    async fn delete(&mut self, items: &[(String, String)]) -> Vec<String> {
        let entries: Vec<DeleteMessageBatchRequestEntry> = items
            .iter()
            .enumerate()
            .filter_map(|(i, (_, r))| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(r)
                    .build()
                    .ok()
            })
            .collect();
        if entries.is_empty() {
            return Vec::new();
        }
        match self
            .conn
            .sqs
            .delete_message_batch()
            .queue_url(&self.dlq.url)
            .set_entries(Some(entries))
            .send()
            .await
        {
            Ok(out) => out
                .successful()
                .iter()
                .filter_map(|s| s.id().parse::<usize>().ok())
                .filter_map(|i| items.get(i).map(|(id, _)| id.clone()))
                .collect(),
            // Not deleted: they stay `sent` in the journal; a rerun deletes them.
            Err(_) => Vec::new(),
        }
    }

    async fn visible_now(&self) -> Option<u64> {
        let out = self
            .conn
            .sqs
            .get_queue_attributes()
            .queue_url(&self.dlq.url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .send()
            .await
            .ok()?;
        out.attributes()?
            .get(&QueueAttributeName::ApproximateNumberOfMessages)?
            .parse()
            .ok()
    }

    fn needs_heartbeat(&self) -> bool {
        let margin = Duration::from_secs_f64((self.vt() as f64 / 2.0).max(0.5));
        Instant::now() + margin >= self.held_until
    }

    /// Keeps every held message hidden while the run works: the parked ones and `queued`.
    async fn heartbeat(&mut self, queued: Vec<String>) {
        let mut all: Vec<String> = self.parked.values().cloned().collect();
        all.extend(queued);
        self.change_visibility(&all, self.vt()).await;
        self.held_until = Instant::now() + Duration::from_secs(self.vt() as u64);
    }

    async fn change_visibility(&self, receipts: &[String], secs: i32) {
        for chunk in receipts.chunks(10) {
            let entries: Vec<_> = chunk
                .iter()
                .enumerate()
                .filter_map(|(i, r)| {
                    ChangeMessageVisibilityBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(r)
                        .visibility_timeout(secs)
                        .build()
                        .ok()
                })
                .collect();
            // Best effort: a message not released comes back when its timeout expires.
            let _ = self
                .conn
                .sqs
                .change_message_visibility_batch()
                .queue_url(&self.dlq.url)
                .set_entries(Some(entries))
                .send()
                .await;
        }
    }

    /// Makes every message still held visible again.
    async fn release_all(&mut self) {
        let all: Vec<String> = self.parked.drain().map(|(_, r)| r).collect();
        self.change_visibility(&all, 0).await;
    }

    /// Sends the chunk, paced; each copy journaled before its DLQ delete.
    async fn send_all(
        &mut self,
        ready: Vec<Ready>,
        interrupt: &Interrupt,
        seen_ctrl_c: u64,
    ) -> Result<()> {
        // One queue per key, in the order received (oldest first within a key for FIFO
        // groups); the next message is the one whose key is ready first.
        let mut keys: Vec<String> = Vec::new();
        let mut queues: HashMap<String, VecDeque<Ready>> = HashMap::new();
        for x in ready {
            let k = x.key.clone().unwrap_or_default();
            if !queues.contains_key(&k) {
                keys.push(k.clone());
            }
            queues.entry(k).or_default().push_back(x);
        }
        let mut last_poll = Instant::now();
        let bar = progress_bar(queues.values().map(|q| q.len() as u64).sum(), "replaying");
        let mut consecutive_errors = 0;
        loop {
            if interrupt.count() > seen_ctrl_c {
                self.s.outcome = Outcome::Interrupted;
                self.s.reason = Some("interrupted (Ctrl-C)".into());
                break;
            }
            let mut batch: Vec<Ready> = Vec::new();
            // Fill a batch with messages ready now for the same destination.
            loop {
                let next = keys
                    .iter()
                    .filter(|k| queues.get(*k).is_some_and(|q| !q.is_empty()))
                    .map(|k| {
                        let key = queues[k].front().and_then(|x| x.key.as_deref());
                        (self.pacer.ready_at(key), k.clone())
                    })
                    .min_by(|a, b| a.0.total_cmp(&b.0));
                let Some((at, k)) = next else { break };
                let now = self.elapsed_ms();
                if at > now {
                    if !batch.is_empty() {
                        break;
                    }
                    if self.needs_heartbeat() {
                        let queued = queued_receipts(&queues);
                        self.heartbeat(queued).await;
                    }
                    let wait = Duration::from_secs_f64((at - now) / 1000.0)
                        .min(Duration::from_millis(500));
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {},
                        _ = interrupt.after(seen_ctrl_c) => {},
                    }
                    if interrupt.count() > seen_ctrl_c {
                        break;
                    }
                    continue;
                }
                let dest = queues[&k].front().map(|x| x.dest);
                if batch.first().is_some_and(|b| Some(b.dest) != dest) {
                    break;
                }
                let x = queues
                    .get_mut(&k)
                    .and_then(|q| q.pop_front())
                    .expect("non-empty");
                self.pacer.record(x.key.as_deref(), now.max(at));
                batch.push(x);
                if batch.len() == 10 {
                    break;
                }
            }
            if batch.is_empty() {
                if queues.values().all(|q| q.is_empty()) {
                    break;
                }
                continue;
            }
            match self.send_batch(batch).await {
                Ok(n) => {
                    consecutive_errors = 0;
                    bar.inc(n);
                }
                Err((e, back)) => {
                    // Nothing of this batch was accepted: it stays in the DLQ.
                    consecutive_errors += 1;
                    for x in back {
                        self.s.failed += 1;
                        self.parked
                            .insert(x.held.msg.message_id.clone(), x.held.receipt);
                    }
                    if consecutive_errors >= 3 {
                        self.s.outcome = Outcome::Failed;
                        self.s.reason = Some(format!("sends keep failing: {e:#}"));
                        break;
                    }
                }
            }
            if self.needs_heartbeat() {
                let queued = queued_receipts(&queues);
                self.heartbeat(queued).await;
            }
            if self.breaker.is_some() && last_poll.elapsed() >= Duration::from_millis(500) {
                last_poll = Instant::now();
                self.poll_returns().await;
                let now = self.started.elapsed().as_millis() as u64;
                if let Some(reason) = self.breaker.as_mut().and_then(|b| b.check(now)) {
                    self.s.outcome = Outcome::Tripped;
                    self.s.reason = Some(reason);
                    break;
                }
            }
        }
        bar.finish_and_clear();
        // Whatever was not sent stays in the DLQ (released at the end).
        for q in queues.into_values() {
            for x in q {
                self.s.remaining += 1;
                self.parked
                    .insert(x.held.msg.message_id.clone(), x.held.receipt);
            }
        }
        Ok(())
    }

    /// Receives what arrived in the DLQ while acting: this run's returns feed the breaker.
    async fn poll_returns(&mut self) {
        let Ok(out) = self
            .conn
            .sqs
            .receive_message()
            .queue_url(&self.dlq.url)
            .max_number_of_messages(10)
            .visibility_timeout(self.vt())
            .wait_time_seconds(0)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .send()
            .await
        else {
            return;
        };
        let now = self.started.elapsed().as_millis() as u64;
        for m in out.messages.unwrap_or_default() {
            let own = m
                .message_attributes()
                .and_then(|a| a.get(provenance::ATTRIBUTE))
                .and_then(|v| v.string_value())
                .and_then(Provenance::parse);
            let id = m.message_id().unwrap_or_default().to_string();
            let receipt = m.receipt_handle().unwrap_or_default().to_string();
            if own.is_some_and(|p| p.run == self.run) {
                if self.seen.insert(id.clone()) {
                    self.s.returned += 1;
                    if let Some(b) = &mut self.breaker {
                        b.returned(now);
                    }
                }
                self.parked.insert(id, receipt);
            } else if self.seen.contains(&id) {
                if let Some(r) = self.parked.get_mut(&id) {
                    *r = receipt;
                }
            } else {
                // Not seen yet: the next scan judges it.
                self.backlog.push(m);
            }
        }
    }

    /// Sends one batch to one destination; journals the accepted copies, then deletes
    /// them from the DLQ. `Err` when the request itself failed (nothing accepted).
    async fn send_batch(
        &mut self,
        batch: Vec<Ready>,
    ) -> std::result::Result<u64, (anyhow::Error, Vec<Ready>)> {
        let dest = self.dests[batch[0].dest].clone();
        let at = now_ms();
        let mut entries = Vec::new();
        for (i, x) in batch.iter().enumerate() {
            match self.entry(i, x, &dest, at) {
                Ok(e) => entries.push(e),
                Err(e) => return Err((e, batch)),
            }
        }
        let out = match self
            .conn
            .sqs
            .send_message_batch()
            .queue_url(&dest.queue.url)
            .set_entries(Some(entries))
            .send()
            .await
        {
            Ok(o) => o,
            Err(e) => {
                return Err((
                    sdk_error(e, &dest.queue.name, self.conn.endpoint_url.as_deref()),
                    batch,
                ));
            }
        };
        let mut sent_recs = Vec::new();
        let mut sent_items: Vec<(String, String)> = Vec::new();
        for ok in out.successful() {
            let Some(x) = ok.id().parse::<usize>().ok().and_then(|i| batch.get(i)) else {
                continue;
            };
            sent_recs.push(self.record(
                "sent",
                json!({"messageId": x.held.msg.message_id, "newMessageId": ok.message_id(),
                       "receipt": x.held.receipt, "destination": dest.arn, "key": x.key}),
            ));
            sent_items.push((x.held.msg.message_id.clone(), x.held.receipt.clone()));
        }
        let mut failed_recs = Vec::new();
        for f in out.failed() {
            let Some(x) = f.id().parse::<usize>().ok().and_then(|i| batch.get(i)) else {
                continue;
            };
            self.s.failed += 1;
            failed_recs.push(self.record(
                "failed",
                json!({"messageId": x.held.msg.message_id, "destination": dest.arn,
                       "reason": format!("{}: {}", f.code(), f.message().unwrap_or(""))}),
            ));
            self.parked
                .insert(x.held.msg.message_id.clone(), x.held.receipt.clone());
        }
        // Invariant: the copies are journaled (fsync) before the originals are deleted.
        // If the journal cannot be written the originals stay (a duplicate is better than
        // a loss).
        sent_recs.extend(failed_recs);
        if let Err(e) = self.journal.write(&sent_recs) {
            return Err((e, Vec::new()));
        }
        let now = self.started.elapsed().as_millis() as u64;
        for (id, r) in &sent_items {
            self.sent.insert(id.clone(), (r.clone(), false));
            if let Some(b) = &mut self.breaker {
                b.replayed(now);
            }
        }
        *self.dest_counts.entry(batch[0].dest).or_default() += sent_items.len() as u64;
        self.s.moved += sent_items.len() as u64;
        let deleted = self.delete(&sent_items).await;
        let del_recs: Vec<Value> = deleted
            .iter()
            .map(|id| self.record("deleted", json!({"messageId": id})))
            .collect();
        // Informational: a missing `deleted` record only makes a rerun retry the delete.
        let _ = self.journal.write(&del_recs);
        self.s.pending_delete += (sent_items.len() - deleted.len()) as u64;
        Ok(sent_items.len() as u64)
    }

    fn entry(
        &self,
        i: usize,
        x: &Ready,
        dest: &Dest,
        at: i64,
    ) -> Result<SendMessageBatchRequestEntry> {
        let mut attrs: HashMap<String, MessageAttributeValue> =
            x.held.sdk.message_attributes().cloned().unwrap_or_default();
        if self.plan.provenance {
            let existing = attrs
                .get(provenance::ATTRIBUTE)
                .and_then(|v| v.string_value())
                .map(str::to_string);
            let p = Provenance::next(
                existing.as_deref(),
                &x.held.msg.message_id,
                &self.run,
                &self.dlq_arn,
                at,
            );
            attrs.insert(
                provenance::ATTRIBUTE.to_string(),
                MessageAttributeValue::builder()
                    .data_type("String")
                    .string_value(p.to_value())
                    .build()?,
            );
        }
        let mut e = SendMessageBatchRequestEntry::builder()
            .id(i.to_string())
            .message_body(&x.body)
            .set_message_attributes((!attrs.is_empty()).then_some(attrs));
        if let Some(trace) = x.held.msg.attributes.get("AWSTraceHeader") {
            e = e.message_system_attributes(
                MessageSystemAttributeNameForSends::AwsTraceHeader,
                MessageSystemAttributeValue::builder()
                    .data_type("String")
                    .string_value(trace)
                    .build()?,
            );
        }
        if dest.queue.is_fifo() {
            let group = x
                .held
                .msg
                .message_group_id
                .clone()
                .unwrap_or_else(|| "redrive-replay".to_string());
            e = e
                .message_group_id(group)
                .message_deduplication_id(dedup_id(&self.run, &x.held.msg.message_id));
        }
        Ok(e.build()?)
    }
}
