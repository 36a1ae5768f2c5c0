//! One transition at a time: migrations, queues, receipts, visibility on the database clock,
//! FIFO holds, deduplication across servers, leases.

use redrive_store_pg::{Claim, Created, HandleCheck, NewMessage, PgStore, SCHEMA_VERSION};
use serde_json::json;

use super::servers;

fn msg(body: &str) -> NewMessage {
    NewMessage {
        body: body.as_bytes().to_vec(),
        attributes: Vec::new(),
        delay_ms: 0,
        group_id: None,
        dedup: None,
    }
}

fn fifo(body: &str, group: &str, dedup: &str) -> NewMessage {
    NewMessage {
        group_id: Some(group.into()),
        dedup: Some((dedup.into(), 300_000)),
        ..msg(body)
    }
}

#[tokio::test]
async fn servers_starting_together_migrate_once() {
    let schema = format!(
        "t_migrate_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let url = super::url();
    let mut starts = Vec::new();
    for _ in 0..4 {
        let (url, schema) = (url.clone(), schema.clone());
        starts.push(tokio::spawn(async move {
            PgStore::connect(&url, Some(&schema), 1).await
        }));
    }
    for s in starts {
        let store = s.await.unwrap().unwrap();
        assert_eq!(store.schema_version().await.unwrap(), SCHEMA_VERSION);
    }
}

#[tokio::test]
async fn a_queue_created_twice_is_one_queue() {
    let s = servers("create", 2).await;
    let a = s[0]
        .create_queue(
            "us-east-1",
            "orders",
            false,
            8,
            &json!({"VisibilityTimeout": "30"}),
        )
        .await
        .unwrap();
    let b = s[1]
        .create_queue(
            "us-east-1",
            "orders",
            false,
            8,
            &json!({"VisibilityTimeout": "60"}),
        )
        .await
        .unwrap();
    let (Created::Created(a), Created::Existing(b)) = (a, b) else {
        panic!("first creates, second finds");
    };
    assert_eq!(a.uid, b.uid);
    assert_eq!(b.attributes, json!({"VisibilityTimeout": "30"}));
    assert!(s[1].queue("us-east-1", "nope").await.unwrap().is_none());
}

#[tokio::test]
async fn receipts_and_visibility_follow_the_database_clock() {
    let s = servers("receipts", 2).await;
    let q = super::create(&s[0], "q", false, 4).await;
    s[0].send(&q, &[msg("hello")]).await.unwrap();
    let first = s[0].receive(&q, 10, 30_000).await.unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].body, b"hello");
    assert_eq!(first[0].receive_count, 1);
    // In flight for every server.
    assert!(s[1].receive(&q, 10, 30_000).await.unwrap().is_empty());
    assert_eq!(s[1].counts(&q).await.unwrap(), (0, 1));
    s[0].advance_clock(30_001).await.unwrap();
    let second = s[1].receive(&q, 10, 30_000).await.unwrap();
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].receive_count, 2);
    assert_eq!(second[0].first_received_ms, first[0].first_received_ms);
    // An earlier receipt still changes the visibility of the message in flight (as the
    // embedded store and SQS do).
    assert_eq!(
        s[0].change_visibility(&q, first[0].claim, 30_000)
            .await
            .unwrap(),
        HandleCheck::Applied
    );
    // Visibility 0 makes it receivable at once.
    assert_eq!(
        s[0].change_visibility(&q, second[0].claim, 0)
            .await
            .unwrap(),
        HandleCheck::Applied
    );
    let third = s[0].receive(&q, 10, 30_000).await.unwrap();
    assert_eq!(third.len(), 1);
    // A delete with an earlier receipt deletes (SQS: the request succeeds).
    assert_eq!(
        s[1].delete(&q, first[0].claim).await.unwrap(),
        HandleCheck::Applied
    );
    assert_eq!(
        s[1].delete(&q, third[0].claim).await.unwrap(),
        HandleCheck::Stale
    );
    assert_eq!(s[0].counts(&q).await.unwrap(), (0, 0));
    let bogus = Claim {
        part: 0,
        seq: 1,
        token: 99,
    };
    assert_eq!(s[0].delete(&q, bogus).await.unwrap(), HandleCheck::Stale);
}

#[tokio::test]
async fn delayed_messages_wait_on_the_database_clock() {
    let s = servers("delay", 1).await;
    let q = super::create(&s[0], "q", false, 2).await;
    let mut late = msg("late");
    late.delay_ms = 10_000;
    s[0].send(&q, &[late, msg("now")]).await.unwrap();
    let got = s[0].receive(&q, 10, 30_000).await.unwrap();
    assert_eq!(
        got.iter().map(|m| m.body.clone()).collect::<Vec<_>>(),
        [b"now".to_vec()]
    );
    s[0].advance_clock(10_000).await.unwrap();
    let got = s[0].receive(&q, 10, 30_000).await.unwrap();
    assert_eq!(got[0].body, b"late");
}

#[tokio::test]
async fn fifo_dedup_holds_across_servers_and_expires() {
    let s = servers("dedup", 3).await;
    let q = super::create(&s[0], "q.fifo", true, 1).await;
    // Three servers send the same deduplication id at once: one message.
    let s: Vec<_> = s.into_iter().map(std::sync::Arc::new).collect();
    let mut sends = Vec::new();
    for store in &s {
        let (store, q) = (store.clone(), q.clone());
        sends.push(tokio::spawn(async move {
            store
                .send(&q, &[fifo("order-1", "mall-a", "order-1")])
                .await
        }));
    }
    let mut results = Vec::new();
    for t in sends {
        results.push(t.await.unwrap());
    }
    let ids: std::collections::HashSet<_> = results
        .iter()
        .map(|r| r.as_ref().unwrap()[0].message_id)
        .collect();
    assert_eq!(ids.len(), 1, "all three answers name the same message");
    assert_eq!(
        results
            .iter()
            .filter(|r| r.as_ref().unwrap()[0].seq.is_some())
            .count(),
        1
    );
    assert_eq!(s[0].counts(&q).await.unwrap(), (1, 0));
    s[0].advance_clock(300_001).await.unwrap();
    let again = s[1]
        .send(&q, &[fifo("order-1", "mall-a", "order-1")])
        .await
        .unwrap();
    assert!(again[0].seq.is_some(), "the window has passed");
}

#[tokio::test]
async fn a_fifo_group_is_held_until_its_messages_are_deleted() {
    let s = servers("fifo", 2).await;
    let q = super::create(&s[0], "q.fifo", true, 1).await;
    s[0].send(
        &q,
        &[
            fifo("a1", "a", "a1"),
            fifo("a2", "a", "a2"),
            fifo("b1", "b", "b1"),
        ],
    )
    .await
    .unwrap();
    let first = s[0].receive(&q, 1, 30_000).await.unwrap();
    assert_eq!(first[0].body, b"a1");
    // Group a is held on every server; b is free.
    let other = s[1].receive(&q, 10, 30_000).await.unwrap();
    assert_eq!(
        other.iter().map(|m| m.body.clone()).collect::<Vec<_>>(),
        [b"b1".to_vec()]
    );
    assert!(s[1].receive(&q, 10, 30_000).await.unwrap().is_empty());
    // Deleting a1 frees a: a2 comes next, in order.
    assert_eq!(
        s[1].delete(&q, first[0].claim).await.unwrap(),
        HandleCheck::Applied
    );
    let next = s[1].receive(&q, 10, 30_000).await.unwrap();
    assert_eq!(
        next.iter().map(|m| m.body.clone()).collect::<Vec<_>>(),
        [b"a2".to_vec()]
    );
    // A visibility timeout that ends releases the group, and the same message comes back.
    s[0].advance_clock(30_001).await.unwrap();
    let back = s[0].receive(&q, 10, 30_000).await.unwrap();
    let bodies: Vec<_> = back.iter().map(|m| m.body.clone()).collect();
    assert!(bodies.contains(&b"a2".to_vec()), "{bodies:?}");
    let a2 = back.iter().find(|m| m.body == b"a2").unwrap();
    assert_eq!(a2.receive_count, 2);
}

#[tokio::test]
async fn one_lease_holder_at_a_time_and_takeover_after_expiry() {
    let s = servers("lease", 2).await;
    assert!(s[0].lease("move-task:1", "server-a", 10_000).await.unwrap());
    assert!(!s[1].lease("move-task:1", "server-b", 10_000).await.unwrap());
    assert!(
        s[0].lease("move-task:1", "server-a", 10_000).await.unwrap(),
        "renewal"
    );
    s[0].advance_clock(10_001).await.unwrap();
    assert!(
        s[1].lease("move-task:1", "server-b", 10_000).await.unwrap(),
        "takeover"
    );
    assert!(!s[0].lease("move-task:1", "server-a", 10_000).await.unwrap());
    s[1].release("move-task:1", "server-b").await.unwrap();
    assert!(s[0].lease("move-task:1", "server-a", 10_000).await.unwrap());
}

#[tokio::test]
async fn the_dlq_move_happens_in_the_receive_that_decides_it() {
    use redrive_store_pg::{Candidate, Decision};
    let s = servers("dlq", 2).await;
    let src = super::create(&s[0], "src", false, 4).await;
    let dlq = super::create(&s[0], "dlq", false, 4).await;
    let arn = "arn:aws:sqs:us-east-1:000000000000:src".to_string();
    // maxReceiveCount 2: the third receive moves it instead.
    let rule = |c: &Candidate| {
        if c.receive_count >= 2 {
            Decision::MoveTo {
                queue: dlq.clone(),
                source_arn: arn.clone(),
                dedup_id: None,
            }
        } else {
            Decision::Deliver
        }
    };
    let sent = s[0].send(&src, &[msg("poison")]).await.unwrap();
    for round in 1..=2 {
        let r = s[round % 2]
            .receive_with(&src, 10, 1_000, &rule)
            .await
            .unwrap();
        assert_eq!(r.delivered.len(), 1, "round {round}");
        assert_eq!(r.delivered[0].receive_count, round as i32);
        s[0].advance_clock(1_001).await.unwrap();
    }
    let r = s[1].receive_with(&src, 10, 1_000, &rule).await.unwrap();
    assert!(r.delivered.is_empty());
    assert_eq!(r.moved, vec![(sent[0].message_id, dlq.uid)]);
    assert_eq!(s[0].counts(&src).await.unwrap(), (0, 0));
    assert_eq!(s[0].counts(&dlq).await.unwrap(), (1, 0));
    let dead = s[0].receive(&dlq, 10, 30_000).await.unwrap();
    assert_eq!(dead[0].message_id, sent[0].message_id);
    assert_eq!(dead[0].body, b"poison");
    assert_eq!(dead[0].receive_count, 3, "the count goes on in the DLQ");
    assert_eq!(dead[0].dead_letter_source.as_deref(), Some(arn.as_str()));
    assert!(dead[0].dead_lettered_ms.is_some());
}

#[tokio::test]
async fn a_long_poll_wakes_on_another_servers_send() {
    use std::time::Duration;
    let mut s = servers("longpoll", 2).await;
    // No fallback polling within the test's wait: only the notification can wake it.
    let waiter = std::sync::Arc::new(s.remove(1).with_poll_interval(Duration::from_secs(60)));
    let sender = &s[0];
    let q = super::create(sender, "q", false, 4).await;
    // Nothing comes: the wait ends empty at its deadline.
    let empty = waiter
        .receive_wait(&q, 10, 30_000, Duration::from_millis(300))
        .await
        .unwrap();
    assert!(empty.is_empty());
    let (w, q2) = (waiter.clone(), q.clone());
    let poll = tokio::spawn(async move {
        w.receive_wait(&q2, 10, 30_000, Duration::from_secs(20))
            .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!poll.is_finished(), "still waiting before the send");
    sender.send(&q, &[msg("wake up")]).await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(15), poll)
        .await
        .expect("the send's notification woke the long poll (fallback polling is 60 s)")
        .unwrap()
        .unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].body, b"wake up");
}

#[tokio::test]
async fn a_fifo_dlq_move_keeps_the_group_and_the_next_message_follows() {
    use redrive_store_pg::{Candidate, Decision};
    let s = servers("fifo_dlq", 1).await;
    let src = super::create(&s[0], "src.fifo", true, 1).await;
    let dlq = super::create(&s[0], "dlq.fifo", true, 1).await;
    s[0].send(&src, &[fifo("g1", "g", "g1"), fifo("g2", "g", "g2")])
        .await
        .unwrap();
    let rule = |c: &Candidate| {
        if c.receive_count >= 1 {
            Decision::MoveTo {
                queue: dlq.clone(),
                source_arn: "arn:aws:sqs:us-east-1:000000000000:src.fifo".into(),
                dedup_id: None,
            }
        } else {
            Decision::Deliver
        }
    };
    let first = s[0].receive_with(&src, 1, 1_000, &rule).await.unwrap();
    assert_eq!(first.delivered[0].body, b"g1");
    assert!(
        s[0].receive_with(&src, 10, 1_000, &rule)
            .await
            .unwrap()
            .delivered
            .is_empty()
    );
    s[0].advance_clock(1_001).await.unwrap();
    // g1 has used its receive: it moves, and g2 is delivered in the same receive, in order.
    let second = s[0].receive_with(&src, 10, 1_000, &rule).await.unwrap();
    assert_eq!(second.moved.len(), 1);
    assert_eq!(
        second
            .delivered
            .iter()
            .map(|m| m.body.clone())
            .collect::<Vec<_>>(),
        [b"g2".to_vec()]
    );
    let dead = s[0].receive(&dlq, 10, 30_000).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].body, b"g1");
    assert_eq!(dead[0].group_id.as_deref(), Some("g"));
}

#[tokio::test]
async fn catalog_purge_and_delete() {
    let s = servers("catalog", 2).await;
    for name in ["orders", "orders-dlq", "billing"] {
        s[0].create_queue("us-east-1", name, false, 2, &json!({}))
            .await
            .unwrap();
    }
    s[0].create_queue("eu-west-1", "orders", false, 2, &json!({}))
        .await
        .unwrap();
    let names: Vec<String> = s[1]
        .list_queues("us-east-1", "orders")
        .await
        .unwrap()
        .into_iter()
        .map(|q| q.name)
        .collect();
    assert_eq!(names, ["orders", "orders-dlq"]);
    let q = s[1].queue("us-east-1", "orders").await.unwrap().unwrap();
    assert!(
        s[1].set_attributes(&q, &json!({"DelaySeconds": "5"}))
            .await
            .unwrap()
    );
    let q = s[0].queue("us-east-1", "orders").await.unwrap().unwrap();
    assert_eq!(q.attributes, json!({"DelaySeconds": "5"}));
    s[0].send(&q, &[msg("a"), msg("b")]).await.unwrap();
    assert_eq!(s[1].purge(&q).await.unwrap(), 2);
    assert_eq!(s[0].counts(&q).await.unwrap(), (0, 0));
    s[0].send(&q, &[msg("c")]).await.unwrap();
    assert_eq!(s[1].delete_queue(&q).await.unwrap(), 1);
    assert!(s[0].queue("us-east-1", "orders").await.unwrap().is_none());
    let deleted = s[0]
        .document("deleted-queue", "us-east-1\norders")
        .await
        .unwrap()
        .unwrap();
    assert!(deleted.value["at"].as_i64().unwrap() > 0);
    assert!(
        s[0].queue("eu-west-1", "orders").await.unwrap().is_some(),
        "other Region untouched"
    );
}

/// Every statement is prepared once per connection and then reused: repeating the same work
/// (sends, duplicate FIFO sends, receives, deletes) prepares nothing new.
#[tokio::test]
async fn statements_are_prepared_once_per_connection() {
    let s = servers("prepared", 1).await;
    let q = super::create(&s[0], "q.fifo", true, 4).await;
    let round = |i: usize| {
        let (s, q) = (&s[0], &q);
        async move {
            s.send(q, &[fifo(&format!("m{i}"), "g", &format!("d{i}"))])
                .await
                .unwrap();
            s.send(q, &[fifo("again", "g", &format!("d{i}"))])
                .await
                .unwrap();
            for m in s.receive(q, 10, 30_000).await.unwrap() {
                assert_eq!(s.delete(q, m.claim).await.unwrap(), HandleCheck::Applied);
            }
        }
    };
    // Enough rounds that every one of the pool's four connections ran each statement.
    for i in 0..16 {
        round(i).await;
    }
    let prepared = s[0].prepared_statements().await;
    assert!(prepared > 0);
    for i in 16..48 {
        round(i).await;
    }
    assert_eq!(s[0].prepared_statements().await, prepared);
    assert_eq!(s[0].counts(&q).await.unwrap(), (0, 0));
}

#[tokio::test]
async fn a_fifo_dlq_move_can_set_the_copys_deduplication_id() {
    use redrive_store_pg::{Candidate, Decision};
    let s = servers("fifo_dlq_dedup", 1).await;
    let src = super::create(&s[0], "src.fifo", true, 1).await;
    let dlq = super::create(&s[0], "dlq.fifo", true, 1).await;
    let doc = json!({"a": {}, "s": {}, "d": "given"}).to_string();
    s[0].send(
        &src,
        &[NewMessage {
            attributes: doc.into_bytes(),
            ..fifo("g1", "g", "given")
        }],
    )
    .await
    .unwrap();
    let rule = |c: &Candidate| Decision::MoveTo {
        queue: dlq.clone(),
        source_arn: "arn:aws:sqs:us-east-1:000000000000:src.fifo".into(),
        dedup_id: Some(c.message_id.to_string()),
    };
    let got = s[0].receive_with(&src, 10, 1_000, &rule).await.unwrap();
    assert_eq!(got.moved.len(), 1);
    let dead = s[0].receive(&dlq, 10, 30_000).await.unwrap();
    let attrs: serde_json::Value = serde_json::from_slice(&dead[0].attributes).unwrap();
    assert_eq!(attrs["d"], json!(dead[0].message_id.to_string()));
    assert_eq!(attrs["a"], json!({}));
}

#[tokio::test]
async fn a_fifo_receive_attempt_is_replayed_on_another_server_within_its_window() {
    use redrive_store_pg::{Attempt, Candidate, Decision};
    use std::time::Duration;
    let s = servers("attempt", 2).await;
    let q = super::create(&s[0], "att.fifo", true, 1).await;
    s[0].send(&q, &[fifo("g1", "g", "g1"), fifo("h1", "h", "h1")])
        .await
        .unwrap();
    let deliver = |_: &Candidate| Decision::Deliver;
    let x = Attempt {
        id: "x",
        window_ms: 300_000,
    };
    let attempt = Some(x);
    // Ten minutes of visibility: only the attempt's window runs out below.
    let vis = 600_000;
    let first = s[0]
        .receive_wait_attempt(&q, 10, vis, Duration::ZERO, attempt, &deliver)
        .await
        .unwrap()
        .delivered;
    assert_eq!(first.len(), 2);
    let again = s[1]
        .receive_wait_attempt(&q, 10, vis, Duration::ZERO, attempt, &deliver)
        .await
        .unwrap()
        .delivered;
    let key = |v: &[redrive_store_pg::Claimed]| -> Vec<_> {
        v.iter()
            .map(|m| (m.claim.part, m.claim.seq, m.claim.token, m.receive_count))
            .collect()
    };
    assert_eq!(key(&again), key(&first));
    // Another attempt id is a new receive: both groups are held.
    let other = Attempt { id: "y", ..x };
    assert!(
        s[1].receive_wait_attempt(&q, 10, vis, Duration::ZERO, Some(other), &deliver)
            .await
            .unwrap()
            .delivered
            .is_empty()
    );
    // Past the window (counted from the last replay), a retry is a new receive too.
    s[0].advance_clock(300_001).await.unwrap();
    assert!(
        s[0].receive_wait_attempt(&q, 10, vis, Duration::ZERO, attempt, &deliver)
            .await
            .unwrap()
            .delivered
            .is_empty()
    );
}

#[tokio::test]
async fn browse_reads_without_changing_and_a_replay_step_is_fenced_by_its_lease() {
    use redrive_store_pg::{Document, DocumentsEdit, ReplayFound, ReplayStepResult, StepMove};
    let s = servers("replay_step", 2).await;
    let src = super::create(&s[0], "dlq", false, 8).await;
    let dst = super::create(&s[0], "orders", false, 8).await;
    let sent = s[0].send(&src, &[msg("one"), msg("two")]).await.unwrap();
    let first = sent[0].seq.unwrap();
    // Browsing twice, from either store: the same rows, nothing claimed.
    let (rows, _) = s[1].browse(&src, 0, None, 10).await.unwrap();
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|r| r.state == 0 && r.receive_count == 0));
    let (again, _) = s[0].browse(&src, 0, None, 10).await.unwrap();
    assert_eq!(rows, again);
    let (after, _) = s[0].browse(&src, first, None, 10).await.unwrap();
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].body, b"two");
    let (inflight, _) = s[0].browse(&src, 0, Some(2), 10).await.unwrap();
    assert!(inflight.is_empty());
    assert_eq!(
        s[0].inspect(&src, Some(1)).await.unwrap(),
        (2, 0, 0, 0, rows.iter().map(|r| r.sent_ms).min())
    );

    s[0].edit_documents_with("replay", &|_: Vec<Document>| -> Result<DocumentsEdit, ()> {
        Ok(DocumentsEdit {
            put: vec![Document {
                kind: "replay".into(),
                key: "r1".into(),
                value: json!({"status": "RUNNING", "moved": 0}),
            }],
            delete_prefixed: Vec::new(),
            delete: Vec::new(),
        })
    })
    .await
    .unwrap()
    .unwrap();
    assert!(s[0].lease("replay/r1", "a", 10_000).await.unwrap());
    let running = |v: &serde_json::Value| v["status"] == "RUNNING";
    let dst_row = dst.clone();
    let rewrite = move |m: &redrive_store_pg::BrowseRow, _now: i64| -> Result<StepMove, String> {
        Ok(StepMove {
            queue: dst_row.clone(),
            message_id: uuid::Uuid::new_v4(),
            attributes: m.attributes.clone(),
            delay_ms: 0,
            body: Some(format!("re-{}", String::from_utf8_lossy(&m.body)).into_bytes()),
        })
    };
    let record = |v: &serde_json::Value, found: &ReplayFound, _now: i64| -> Vec<Document> {
        let mut v = v.clone();
        if matches!(found, ReplayFound::Moved { .. }) {
            v["moved"] = json!(v["moved"].as_u64().unwrap() + 1);
        }
        vec![Document {
            kind: "replay".into(),
            key: "r1".into(),
            value: v,
        }]
    };
    // Not the holder: nothing moves.
    let got = s[1]
        .replay_step(
            "replay/r1",
            "b",
            ("replay", "r1"),
            &src,
            first,
            &running,
            &rewrite,
            &record,
        )
        .await
        .unwrap();
    assert_eq!(got, ReplayStepResult::LeaseLost);
    assert_eq!(s[1].counts(&src).await.unwrap(), (2, 0));
    // The holder: the message moves, rewritten, with its progress.
    let got = s[0]
        .replay_step(
            "replay/r1",
            "a",
            ("replay", "r1"),
            &src,
            first,
            &running,
            &rewrite,
            &record,
        )
        .await
        .unwrap();
    let ReplayStepResult::Done {
        found: ReplayFound::Moved { from_id, .. },
        doc,
    } = got
    else {
        panic!("{got:?}");
    };
    assert_eq!(from_id, sent[0].message_id);
    assert_eq!(doc["moved"], 1);
    assert_eq!(s[1].counts(&src).await.unwrap(), (1, 0));
    let (moved, _) = s[1].browse(&dst, 0, None, 10).await.unwrap();
    assert_eq!(moved.len(), 1);
    assert_eq!(moved[0].body, b"re-one");
    assert_eq!(moved[0].receive_count, 0);
    // Again: it is gone, and counted once.
    let got = s[0]
        .replay_step(
            "replay/r1",
            "a",
            ("replay", "r1"),
            &src,
            first,
            &running,
            &rewrite,
            &record,
        )
        .await
        .unwrap();
    let ReplayStepResult::Done {
        found: ReplayFound::Gone,
        doc,
    } = got
    else {
        panic!("{got:?}");
    };
    assert_eq!(doc["moved"], 1);
    assert_eq!(
        s[0].document("replay", "r1").await.unwrap().unwrap().value["moved"],
        1
    );
}

/// A database error says what PostgreSQL said (severity, SQLSTATE, message), not only the
/// driver's "db error": a missing database when connecting.
#[tokio::test]
async fn a_database_error_carries_postgresqls_words() {
    let base = super::url();
    let (prefix, _) = base.rsplit_once('/').expect("a URL with a database");
    let missing = format!("{prefix}/redrive_no_such_database");
    let Err(e) = PgStore::connect(&missing, None, 1).await else {
        panic!("connected to a database that does not exist");
    };
    let text = e.to_string();
    assert!(text.contains("3D000"), "{text}");
    assert!(text.contains("redrive_no_such_database"), "{text}");
    assert!(text.contains("does not exist"), "{text}");
}

#[tokio::test]
async fn minute_history_rows_add_up_across_servers_and_are_dropped_by_age_and_with_their_queue() {
    use redrive_store_pg::MinuteRow;
    let s = servers("minutes", 2).await;
    let q = super::create(&s[0], "hist", false, 1).await;
    let other = super::create(&s[0], "other", false, 1).await;
    let row = |uid: i64, minute: i64, sent: i64, gauges: Option<[i64; 5]>| MinuteRow {
        queue_uid: uid,
        minute,
        counters: [sent, sent * 10, 0, 0, 0, 0, 0, 0, 0, 1],
        gauges,
    };
    // Two servers add to the same minute, concurrently; only one samples the gauges.
    let first = [row(q.uid, 100, 3, None), row(q.uid, 101, 1, None)];
    let second = [
        row(q.uid, 101, 2, Some([5, 4, 3, 2, 1])),
        row(q.uid, 100, 4, None),
    ];
    let (a, b) = tokio::join!(s[0].add_minutes(&first), s[1].add_minutes(&second));
    a.unwrap();
    b.unwrap();
    // A later write without gauges keeps the sampled ones.
    s[0].add_minutes(&[row(q.uid, 101, 1, None), row(other.uid, 100, 9, None)])
        .await
        .unwrap();
    let got = s[1].minutes(q.uid, 0, 1000).await.unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(
        (got[0].minute, got[0].counters[0], got[0].counters[1]),
        (100, 7, 70)
    );
    assert_eq!(got[0].gauges, None, "minute 100 was never sampled");
    assert_eq!(
        (got[1].minute, got[1].counters[0], got[1].counters[9]),
        (101, 4, 3)
    );
    assert_eq!(got[1].gauges, Some([5, 4, 3, 2, 1]));
    assert_eq!(s[0].minutes(q.uid, 101, 102).await.unwrap().len(), 1);
    // Retention drops what is older, queue by queue; a deleted queue's minutes go with it.
    assert_eq!(s[0].drop_minutes(101).await.unwrap(), 2);
    assert_eq!(s[0].minutes(q.uid, 0, 1000).await.unwrap().len(), 1);
    s[0].add_minutes(&[row(other.uid, 200, 1, None)])
        .await
        .unwrap();
    s[1].delete_queue(&other).await.unwrap();
    assert!(s[0].minutes(other.uid, 0, 1000).await.unwrap().is_empty());
}

#[tokio::test]
async fn appended_documents_drop_the_ones_before_the_cutoff() {
    let s = servers("append", 2).await;
    let doc = |key: &str| redrive_store_pg::Document {
        kind: "log".into(),
        key: key.into(),
        value: json!({"k": key}),
    };
    // Two servers append at once without waiting on each other's lock.
    let (da, db) = (doc("001/a"), doc("001/b"));
    let (a, b) = tokio::join!(
        s[0].append_document(&da, "000"),
        s[1].append_document(&db, "000"),
    );
    a.unwrap();
    b.unwrap();
    s[0].append_document(&doc("005/a"), "002").await.unwrap();
    let keys: Vec<String> = s[1]
        .documents("log")
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.key)
        .collect();
    assert_eq!(keys, ["005/a"], "the entries before 002 are gone");
}
