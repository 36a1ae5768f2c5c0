//! Concurrent consumers on three "servers": no message is delivered to two consumers within
//! one visibility timeout, every message is delivered, and FIFO order holds per group with one
//! consumer per group at a time.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use redrive_store_pg::{HandleCheck, NewMessage};
use serde_json::json;
use tokio::sync::Mutex;

use super::servers;

#[tokio::test]
async fn standard_queue_no_double_delivery_across_three_servers() {
    const MESSAGES: usize = 600;
    const CONSUMERS: usize = 12;
    let s: Vec<_> = servers("checker_std", 3)
        .await
        .into_iter()
        .map(Arc::new)
        .collect();
    let q = super::create(&s[0], "load", false, 8).await;
    for chunk in (0..MESSAGES).collect::<Vec<_>>().chunks(10) {
        let batch: Vec<NewMessage> = chunk
            .iter()
            .map(|i| NewMessage {
                body: format!("m{i}").into_bytes(),
                attributes: Vec::new(),
                delay_ms: 0,
                group_id: None,
                dedup: None,
            })
            .collect();
        s[chunk[0] % 3].send(&q, &batch).await.unwrap();
    }
    let seen = Arc::new(Mutex::new(HashSet::new()));
    let mut tasks = Vec::new();
    for c in 0..CONSUMERS {
        let (store, q, seen) = (s[c % 3].clone(), q.clone(), seen.clone());
        tasks.push(tokio::spawn(async move {
            let mut empty = 0;
            let mut mine = 0;
            while empty < 3 {
                // Long visibility: nothing may come back during the run.
                let got = store.receive(&q, 10, 600_000).await.unwrap();
                if got.is_empty() {
                    empty += 1;
                    continue;
                }
                empty = 0;
                for m in got {
                    assert!(
                        seen.lock().await.insert(m.body.clone()),
                        "{} delivered twice",
                        String::from_utf8_lossy(&m.body)
                    );
                    assert_eq!(
                        store.delete(&q, m.claim).await.unwrap(),
                        HandleCheck::Applied
                    );
                    mine += 1;
                }
            }
            mine
        }));
    }
    let mut per_consumer = Vec::new();
    for t in tasks {
        per_consumer.push(t.await.unwrap());
    }
    assert_eq!(seen.lock().await.len(), MESSAGES);
    assert_eq!(per_consumer.iter().sum::<usize>(), MESSAGES);
    assert!(
        per_consumer.iter().filter(|n| **n > 0).count() > 1,
        "the work was shared: {per_consumer:?}"
    );
    assert_eq!(s[1].counts(&q).await.unwrap(), (0, 0));
}

#[tokio::test]
async fn fifo_order_and_one_consumer_per_group_across_three_servers() {
    const GROUPS: usize = 6;
    const PER_GROUP: usize = 25;
    let s: Vec<_> = servers("checker_fifo", 3)
        .await
        .into_iter()
        .map(Arc::new)
        .collect();
    let q = super::create(&s[0], "load.fifo", true, 1).await;
    for i in 0..PER_GROUP {
        let batch: Vec<NewMessage> = (0..GROUPS)
            .map(|g| NewMessage {
                body: format!("{g}:{i}").into_bytes(),
                attributes: Vec::new(),
                delay_ms: 0,
                group_id: Some(format!("g{g}")),
                dedup: Some((format!("{g}:{i}"), 300_000)),
            })
            .collect();
        s[i % 3].send(&q, &batch).await.unwrap();
    }
    // group -> consumer currently holding it; group -> next expected index.
    let holders: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let next: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let mut tasks = Vec::new();
    for c in 0..9 {
        let (store, q, holders, next) =
            (s[c % 3].clone(), q.clone(), holders.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut empty = 0;
            while empty < 5 {
                let got = store.receive(&q, 4, 600_000).await.unwrap();
                if got.is_empty() {
                    empty += 1;
                    tokio::task::yield_now().await;
                    continue;
                }
                empty = 0;
                for m in &got {
                    let g = m.group_id.clone().unwrap();
                    let mut h = holders.lock().await;
                    match h.get(&g) {
                        Some(other) if *other != c => {
                            panic!("group {g} held by consumers {other} and {c} at once")
                        }
                        _ => {
                            h.insert(g.clone(), c);
                        }
                    }
                    drop(h);
                    let text = String::from_utf8(m.body.clone()).unwrap();
                    let i: usize = text.split(':').nth(1).unwrap().parse().unwrap();
                    let mut n = next.lock().await;
                    let want = n.entry(g.clone()).or_insert(0);
                    assert_eq!(i, *want, "group {g} out of order");
                    *want += 1;
                }
                // Release the hold before the last delete frees the group in the database.
                let mut groups: Vec<String> =
                    got.iter().map(|m| m.group_id.clone().unwrap()).collect();
                groups.dedup();
                let mut h = holders.lock().await;
                for g in &groups {
                    h.remove(g);
                }
                drop(h);
                for m in got {
                    assert_eq!(
                        store.delete(&q, m.claim).await.unwrap(),
                        HandleCheck::Applied
                    );
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let n = next.lock().await;
    assert_eq!(n.len(), GROUPS);
    assert!(n.values().all(|v| *v == PER_GROUP), "{n:?}");
    assert_eq!(s[2].counts(&q).await.unwrap(), (0, 0));
}

#[tokio::test]
async fn dlq_moves_race_across_three_servers_and_each_message_moves_once() {
    use redrive_store_pg::{Candidate, Decision};
    const MESSAGES: usize = 300;
    let s: Vec<_> = servers("checker_dlq", 3)
        .await
        .into_iter()
        .map(Arc::new)
        .collect();
    let src = super::create(&s[0], "src", false, 4).await;
    let dlq = super::create(&s[0], "dlq", false, 4).await;
    for chunk in (0..MESSAGES).collect::<Vec<_>>().chunks(10) {
        let batch: Vec<NewMessage> = chunk
            .iter()
            .map(|i| NewMessage {
                body: format!("m{i}").into_bytes(),
                attributes: Vec::new(),
                delay_ms: 0,
                group_id: None,
                dedup: None,
            })
            .collect();
        s[0].send(&src, &batch).await.unwrap();
    }
    // Half the consumers deliver, half move: whichever claims a message decides it, once.
    let moved = Arc::new(Mutex::new(Vec::new()));
    let delivered = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for c in 0..8 {
        let (store, src, dlq) = (s[c % 3].clone(), src.clone(), dlq.clone());
        let (moved, delivered) = (moved.clone(), delivered.clone());
        tasks.push(tokio::spawn(async move {
            let mover = c % 2 == 0;
            let rule = move |_: &Candidate| {
                if mover {
                    Decision::MoveTo {
                        queue: dlq.clone(),
                        source_arn: "arn:aws:sqs:us-east-1:000000000000:src".into(),
                        dedup_id: None,
                    }
                } else {
                    Decision::Deliver
                }
            };
            let mut empty = 0;
            while empty < 3 {
                let r = store.receive_with(&src, 10, 600_000, &rule).await.unwrap();
                if r.delivered.is_empty() && r.moved.is_empty() {
                    empty += 1;
                    continue;
                }
                empty = 0;
                moved.lock().await.extend(r.moved.iter().map(|m| m.0));
                delivered
                    .lock()
                    .await
                    .extend(r.delivered.iter().map(|m| m.message_id));
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let moved = moved.lock().await.clone();
    let delivered = delivered.lock().await.clone();
    let all: HashSet<_> = moved.iter().chain(&delivered).collect();
    assert_eq!(
        moved.len() + delivered.len(),
        MESSAGES,
        "each message decided once"
    );
    assert_eq!(all.len(), MESSAGES);
    assert_eq!(s[1].counts(&dlq).await.unwrap(), (moved.len() as i64, 0));
    assert_eq!(
        s[2].counts(&src).await.unwrap(),
        (0, delivered.len() as i64)
    );
}

#[tokio::test]
async fn move_task_steps_on_two_servers_move_each_message_once_with_their_progress() {
    use redrive_store_pg::Document;
    const MESSAGES: usize = 200;
    let s: Vec<_> = servers("checker_transfer", 2)
        .await
        .into_iter()
        .map(Arc::new)
        .collect();
    let dlq = super::create(&s[0], "dlq", false, 4).await;
    let src = super::create(&s[0], "src", false, 4).await;
    for chunk in (0..MESSAGES).collect::<Vec<_>>().chunks(10) {
        let batch: Vec<NewMessage> = chunk
            .iter()
            .map(|i| NewMessage {
                body: format!("m{i}").into_bytes(),
                attributes: Vec::new(),
                delay_ms: 0,
                group_id: None,
                dedup: None,
            })
            .collect();
        s[0].send(&dlq, &batch).await.unwrap();
    }
    // A step that cannot write its progress moves nothing.
    let bad = |_: usize| Document {
        kind: "move-task".into(),
        key: "k".repeat(2000),
        value: json!({}),
    };
    assert!(s[0].transfer(&dlq, &src, 10, &bad).await.is_err());
    assert_eq!(s[0].counts(&dlq).await.unwrap(), (MESSAGES as i64, 0));

    let mut tasks = Vec::new();
    for (i, store) in s.iter().enumerate() {
        let (store, dlq, src) = (store.clone(), dlq.clone(), src.clone());
        tasks.push(tokio::spawn(async move {
            let mut total = 0;
            let mut ids = Vec::new();
            loop {
                let done = total;
                let progress = move |n: usize| Document {
                    kind: "move-task".into(),
                    key: format!("t1/server-{i}"),
                    value: json!({"moved": done + n}),
                };
                let moved = store.transfer(&dlq, &src, 7, &progress).await.unwrap();
                if moved.is_empty() {
                    break;
                }
                total += moved.len();
                ids.extend(moved);
            }
            ids
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let distinct: HashSet<_> = all.iter().collect();
    assert_eq!(all.len(), MESSAGES);
    assert_eq!(distinct.len(), MESSAGES);
    let mut recorded = 0;
    for i in 0..2 {
        if let Some(d) = s[0]
            .document("move-task", &format!("t1/server-{i}"))
            .await
            .unwrap()
        {
            recorded += d.value["moved"].as_u64().unwrap();
        }
    }
    assert_eq!(recorded, MESSAGES as u64, "progress equals what moved");
    assert_eq!(s[1].counts(&dlq).await.unwrap(), (0, 0));
    assert_eq!(s[1].counts(&src).await.unwrap(), (MESSAGES as i64, 0));
    let back = s[1].receive(&src, 10, 30_000).await.unwrap();
    assert!(
        back.iter().all(|m| m.receive_count == 1),
        "receive state was reset"
    );
}
