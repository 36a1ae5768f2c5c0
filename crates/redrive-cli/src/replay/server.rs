//! The server-side path: a Redrive server moves each message atomically; the CLI previews,
//! starts, follows, cancels and writes the audit log.

use super::*;

/// The replay task object of the server API.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Task {
    pub id: String,
    pub status: String,
    pub source: String,
    pub destination: Option<String>,
    pub spec: Value,
    pub selected: u64,
    pub moved: u64,
    pub failed: u64,
    pub skipped: u64,
    pub remaining: u64,
    pub returned: u64,
    pub started_at: Option<i64>,
    pub ended_at: Option<i64>,
    pub failure_reason: Option<String>,
    pub requested_by: Option<String>,
}

fn body(plan: &ReplayPlan, dry_run: bool) -> Value {
    json!({
        "source": plan.source,
        "destination": plan.destination,
        "selection": plan.selection,
        "transform": plan.transform,
        "rate": plan.rate,
        "ratePer": plan.rate_per.as_ref().map(|(k, r)| json!({"key": k, "rate": r})),
        "breaker": plan.breaker,
        "provenance": plan.provenance,
        "dryRun": dry_run,
        "sample": plan.sample,
        "requestedBy": plan.requested_by,
    })
}

/// A request to the replays API: (status, JSON body).
pub(super) async fn call(
    conn: &Conn,
    method: reqwest::Method,
    url: &str,
    body: Option<&Value>,
) -> Result<(u16, Value)> {
    conn.json_request(method, url, body).await
}

pub(super) fn api_error(status: u16, v: &Value) -> anyhow::Error {
    let code = crate::util::api_error_code(v);
    let msg = v["message"].as_str().unwrap_or("(no message)");
    if code.contains("NonExistentQueue") || code == "QueueDoesNotExist" {
        anyhow!("{msg}")
    } else {
        anyhow!("the server refused the replay ({status} {code}): {msg}")
    }
}

pub(super) async fn run(
    conn: &Conn,
    plan: &ReplayPlan,
    dlq: &QueueRef,
    interrupt: &Interrupt,
) -> Result<ReplayResult> {
    let base = conn
        .endpoint_url
        .clone()
        .unwrap_or_default()
        .trim_end_matches('/')
        .to_string();
    let url = format!("{base}/_redrive/v1/replays");
    let audit = plan.default_audit_log(dlq);
    let attrs = queue_attrs(conn, dlq).await?;
    let dlq_arn = attrs.get("QueueArn").cloned().unwrap_or_default();
    let (mut journal, _) = Journal::open(&audit, &dlq_arn)?;
    let rec = |event: &str, run: &str, extra: Value| {
        let mut v = json!({"event": event, "at": now_ms(), "run": run, "source": dlq_arn});
        if let (Some(o), Value::Object(e)) = (v.as_object_mut(), extra) {
            o.extend(e);
        }
        v
    };
    if let Some(id) = &plan.attach {
        let (s, t) = call(conn, reqwest::Method::GET, &format!("{url}/{id}"), None).await?;
        if s >= 300 {
            return Err(api_error(s, &t));
        }
        let task: Task = serde_json::from_value(t).context("unexpected task from the server")?;
        journal.write(&[rec(
            "attach",
            &task.id,
            json!({"who": plan.requested_by, "path": "server", "status": task.status}),
        )])?;
        return finish(
            conn,
            plan,
            dlq,
            &url,
            task,
            Preview::default(),
            journal,
            &rec,
            interrupt,
        )
        .await;
    }
    if let Some(d) = &plan.destination {
        // Named in the error, before asking the server.
        conn.resolve(d)
            .await
            .map_err(|e| anyhow!("destination: {e:#}"))?;
    }
    // The preview always comes first: it validates everything server-side.
    let (status, v) = call(conn, reqwest::Method::POST, &url, Some(&body(plan, true))).await?;
    let preview = if status == 409 && !plan.dry_run {
        // A replay is running: the start below attaches to it if it is the same.
        Preview::default()
    } else if status >= 300 {
        return Err(api_error(status, &v));
    } else {
        let mut preview: Preview =
            serde_json::from_value(v).context("unexpected dry-run answer from the server")?;
        preview.path = "server".into();
        preview.dry_run = true;
        preview
    };
    if plan.dry_run {
        journal.write(&[rec(
            "dryRun",
            "",
            json!({"who": plan.requested_by, "path": "server",
                   "selection": plan.selection, "transform": plan.transform,
                   "destination": plan.destination,
                   "scanned": preview.scanned, "selected": preview.selected}),
        )])?;
        return Ok(ReplayResult::Preview(preview));
    }
    if let Some(path) = &plan.backup {
        write_backup(conn, plan, dlq, path).await?;
    }
    let (status, v) = call(conn, reqwest::Method::POST, &url, Some(&body(plan, false))).await?;
    let task: Task = match status {
        200 | 201 => serde_json::from_value(v).context("unexpected task from the server")?,
        409 => {
            let id = v["replayId"].as_str().unwrap_or_default().to_string();
            let (s, t) = call(conn, reqwest::Method::GET, &format!("{url}/{id}"), None).await?;
            if s >= 300 {
                return Err(api_error(s, &t));
            }
            let task: Task = serde_json::from_value(t)?;
            if !same_spec(&task.spec, &body(plan, false)) {
                bail!(
                    "another replay ({id}) with a different selection is running on `{}`; wait for it or cancel it with `redrive replay {} --cancel {id}`",
                    dlq.name,
                    dlq.name
                );
            }
            eprintln!("a replay with the same selection is already running ({id}); following it");
            task
        }
        _ => return Err(api_error(status, &v)),
    };
    journal.write(&[rec(
        "start",
        &task.id,
        json!({"who": plan.requested_by, "path": "server", "dryRun": false,
               "request": body(plan, false), "selected": task.selected}),
    )])?;
    finish(
        conn, plan, dlq, &url, task, preview, journal, &rec, interrupt,
    )
    .await
}

/// Follows a started task, then writes its moves and the end to the audit log.
#[allow(clippy::too_many_arguments)]
async fn finish(
    conn: &Conn,
    plan: &ReplayPlan,
    dlq: &QueueRef,
    url: &str,
    task: Task,
    preview: Preview,
    mut journal: Journal,
    rec: &dyn Fn(&str, &str, Value) -> Value,
    interrupt: &Interrupt,
) -> Result<ReplayResult> {
    let audit = journal.path.clone();
    let (task, outcome) = follow(conn, url, task, plan, interrupt).await?;
    // The audit trail of what moved, from the task's own record.
    let mut after = 0u64;
    loop {
        let (s, page) = call(
            conn,
            reqwest::Method::GET,
            &format!("{url}/{}/moves?after={after}&limit=10000", task.id),
            None,
        )
        .await?;
        if s >= 300 {
            break;
        }
        let moves = page["moves"].as_array().cloned().unwrap_or_default();
        let recs: Vec<Value> = moves
            .iter()
            .map(|m| {
                rec(
                    "moved",
                    &task.id,
                    json!({"n": m["n"], "messageId": m["from"], "newMessageId": m["to"],
                           "destination": m["destination"], "movedAt": m["at"], "key": m["key"]}),
                )
            })
            .collect();
        journal.write(&recs)?;
        match page["next"].as_u64() {
            Some(n) if !moves.is_empty() => after = n,
            _ => break,
        }
    }
    let mut dests: BTreeMap<String, u64> = BTreeMap::new();
    let summary = Summary {
        run: task.id.clone(),
        path: "server",
        outcome,
        selected: task.selected,
        moved: task.moved,
        skipped: task.skipped,
        failed: task.failed,
        remaining: task.remaining,
        returned: task.returned,
        finished_pending: 0,
        pending_delete: 0,
        destinations: {
            for d in &preview.destinations {
                dests.insert(d.arn.clone(), d.count);
            }
            preview.destinations.clone()
        },
        reason: task.failure_reason.clone(),
        audit_log: audit.display().to_string(),
        left_in_dlq: crate::source::approximate_count(conn, dlq).await.ok(),
    };
    journal.write(&[rec(
        "end",
        &task.id,
        json!({"outcome": outcome, "status": task.status, "reason": task.failure_reason,
               "counts": {"selected": task.selected, "moved": task.moved,
                          "skipped": task.skipped, "failed": task.failed,
                          "remaining": task.remaining, "returned": task.returned}}),
    )])?;
    Ok(ReplayResult::Summary(summary))
}

fn same_spec(running: &Value, ours: &Value) -> bool {
    ["selection", "transform", "destination"]
        .iter()
        .all(|k| norm(&running[k]) == norm(&ours[k]))
}

/// Drops nulls so `{"filter": null}` equals `{}`.
fn norm(v: &Value) -> Value {
    match v {
        Value::Object(o) => Value::Object(
            o.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), norm(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Polls the task until it ends; Ctrl-C asks (or detaches / cancels without a terminal).
async fn follow(
    conn: &Conn,
    url: &str,
    mut task: Task,
    plan: &ReplayPlan,
    interrupt: &Interrupt,
) -> Result<(Task, Outcome)> {
    let bar = progress_bar(task.selected, "replaying (server)");
    let mut seen = interrupt.count();
    let mut cancelled = false;
    loop {
        bar.set_position(task.moved + task.skipped + task.failed);
        match task.status.as_str() {
            "COMPLETED" => {
                bar.finish_and_clear();
                let o = if task.failed > 0 {
                    Outcome::Partial
                } else {
                    Outcome::Completed
                };
                return Ok((task, o));
            }
            "CANCELLED" => {
                bar.finish_and_clear();
                return Ok((task, Outcome::Cancelled));
            }
            "TRIPPED" => {
                bar.finish_and_clear();
                return Ok((task, Outcome::Tripped));
            }
            "FAILED" => {
                bar.finish_and_clear();
                return Ok((task, Outcome::Failed));
            }
            _ => {}
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(300)) => {}
            _ = interrupt.after(seen) => {
                seen = interrupt.count();
                if !cancelled {
                    let cancel = if interactive() {
                        bar.suspend(|| ());
                        ask(&format!("Cancel replay {} on the server? (no: it keeps running there)", task.id)).await
                    } else {
                        plan.cancel_on_interrupt
                    };
                    if cancel {
                        let (s, v) = call(conn, reqwest::Method::POST, &format!("{url}/{}/cancel", task.id), None).await?;
                        if s >= 300 {
                            return Err(api_error(s, &v));
                        }
                        cancelled = true;
                    } else {
                        bar.finish_and_clear();
                        eprintln!(
                            "detached: replay {} keeps running on the server; follow it with `redrive replay {} --attach {}`, cancel it with `--cancel {}`",
                            task.id, plan.source, task.id, task.id
                        );
                        return Ok((task, Outcome::Detached));
                    }
                }
            }
        }
        let (s, v) = call(
            conn,
            reqwest::Method::GET,
            &format!("{url}/{}", task.id),
            None,
        )
        .await?;
        if s >= 300 {
            return Err(api_error(s, &v));
        }
        task = serde_json::from_value(v).context("unexpected task from the server")?;
    }
}

/// Exports the messages the selection takes, read through the browse API (the server
/// fixes its set at start; a message dead-lettered in between may differ).
async fn write_backup(conn: &Conn, plan: &ReplayPlan, dlq: &QueueRef, path: &Path) -> Result<()> {
    let sel = Selection::compile(&plan.selection).map_err(|e| anyhow!("--filter: {e}"))?;
    let source = Source::open(conn, dlq, 30).await?;
    let limit = plan.selection.limit.map_or(usize::MAX, |l| l as usize);
    let mut picked: Vec<Message> = Vec::new();
    source
        .scan(usize::MAX, |m| {
            if picked.len() < limit && judge(&sel, &m, &meta_of(&m)) == Verdict::Selected {
                picked.push(m);
            }
        })
        .await?;
    let refs: Vec<&Message> = picked.iter().collect();
    backup(path, &refs)
}

/// `--list`: the replays on a DLQ, newest first.
pub async fn list(conn: &Conn, dlq: &QueueRef) -> Result<Vec<Task>> {
    let base = server_api(conn, dlq)
        .await
        .ok_or_else(|| anyhow!("--list and --cancel need a Redrive server (the endpoint has no /_redrive/v1/replays API); client-side runs are in their audit log"))?;
    let (s, v) = call(
        conn,
        reqwest::Method::GET,
        &format!("{base}/_redrive/v1/replays?source={}", dlq.name),
        None,
    )
    .await?;
    if s >= 300 {
        return Err(api_error(s, &v));
    }
    Ok(serde_json::from_value(v["replays"].clone()).unwrap_or_default())
}

/// `--cancel ID`.
pub async fn cancel(conn: &Conn, dlq: &QueueRef, id: &str) -> Result<Task> {
    let base = server_api(conn, dlq).await.ok_or_else(|| {
        anyhow!("--cancel needs a Redrive server (the endpoint has no /_redrive/v1/replays API)")
    })?;
    let (s, v) = call(
        conn,
        reqwest::Method::POST,
        &format!("{base}/_redrive/v1/replays/{id}/cancel"),
        None,
    )
    .await?;
    if s >= 300 {
        return Err(api_error(s, &v));
    }
    Ok(serde_json::from_value(v)?)
}
