//! FIFO group locking through the SDK (issue 20): a message that becomes visible again
//! (VisibilityTimeout=0, ChangeMessageVisibility 0, timeout expiry) unlocks its group and is
//! again its group's head; one receive interleaves the available groups round-robin; a
//! visibility extension keeps the group locked; a long poll wakes when a group unlocks.

use std::time::{Duration, Instant};

use aws_sdk_sqs::types::{Message, MessageSystemAttributeName};

use crate::common::*;

async fn fifo(ts: &TestServer, name: &str) -> String {
    ts.create_with(name, &[("FifoQueue", "true")]).await
}

async fn send(ts: &TestServer, url: &str, body: &str, group: &str) {
    ts.client
        .send_message()
        .queue_url(url)
        .message_body(body)
        .message_group_id(group)
        .message_deduplication_id(body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("send {body}: {}", describe(&e)));
}

async fn delete(ts: &TestServer, url: &str, m: &Message) {
    ts.client
        .delete_message()
        .queue_url(url)
        .receipt_handle(m.receipt_handle().expect("receipt handle"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("delete: {}", describe(&e)));
}

async fn change_visibility(ts: &TestServer, url: &str, m: &Message, secs: i32) {
    ts.client
        .change_message_visibility()
        .queue_url(url)
        .receipt_handle(m.receipt_handle().expect("receipt handle"))
        .visibility_timeout(secs)
        .send()
        .await
        .unwrap_or_else(|e| panic!("change visibility to {secs}: {}", describe(&e)));
}

fn bodies(msgs: &[Message]) -> Vec<&str> {
    msgs.iter().map(|m| m.body().expect("body")).collect()
}

fn receive_count(m: &Message) -> String {
    sys_attr(m, "ApproximateReceiveCount").expect("ApproximateReceiveCount")
}

#[tokio::test]
async fn receive_with_visibility_timeout_zero_leaves_the_group_unlocked() {
    let ts = TestServer::start().await;
    let url = fifo(&ts, "vis0.fifo").await;
    send(&ts, &url, "a1", "A").await;
    send(&ts, &url, "a2", "A").await;

    let first = ts.receive(&url, 1, Some(0)).await;
    assert_eq!(bodies(&first), ["a1"]);
    // a1 is visible again at once: the group is not locked and a1 is still its head.
    let second = ts.receive(&url, 1, Some(60)).await;
    assert_eq!(
        bodies(&second),
        ["a1"],
        "group A stuck after VisibilityTimeout=0"
    );
    assert_eq!(second[0].message_id(), first[0].message_id());
    assert_eq!(receive_count(&second[0]), "2");
    // a1 is in flight now (60 s): nothing more from A.
    assert!(ts.receive(&url, 10, Some(60)).await.is_empty());
}

#[tokio::test]
async fn change_visibility_to_zero_unlocks_the_group_with_the_message_first() {
    let ts = TestServer::start().await;
    let url = fifo(&ts, "cmv0.fifo").await;
    for b in ["a1", "a2", "a3"] {
        send(&ts, &url, b, "A").await;
    }
    let first = ts.receive(&url, 1, Some(60)).await;
    assert_eq!(bodies(&first), ["a1"]);
    assert!(
        ts.receive(&url, 10, Some(60)).await.is_empty(),
        "A is locked"
    );

    change_visibility(&ts, &url, &first[0], 0).await;
    let again = ts.receive(&url, 10, Some(60)).await;
    assert_eq!(
        bodies(&again),
        ["a1", "a2", "a3"],
        "after ChangeMessageVisibility 0 the group must be served again, a1 first"
    );
    assert_eq!(receive_count(&again[0]), "2");
    assert_eq!(receive_count(&again[1]), "1");
}

#[tokio::test]
async fn visibility_timeout_expiry_unlocks_the_group_in_order() {
    let ts = TestServer::start().await;
    let url = fifo(&ts, "expire.fifo").await;
    for b in ["a1", "a2"] {
        send(&ts, &url, b, "A").await;
    }
    let first = ts.receive(&url, 1, Some(1)).await;
    assert_eq!(bodies(&first), ["a1"]);
    // (That A is locked meanwhile is checked elsewhere: a slow machine may already be past
    // the 1 s here.)
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let again = ts.receive(&url, 10, Some(60)).await;
    assert_eq!(
        bodies(&again),
        ["a1", "a2"],
        "after the visibility timeout the group must be served again, a1 first"
    );
    assert_eq!(again[0].message_id(), first[0].message_id());
    assert_eq!(receive_count(&again[0]), "2");
}

#[tokio::test]
async fn one_receive_interleaves_groups_round_robin_each_in_order() {
    let ts = TestServer::start().await;
    let url = fifo(&ts, "rr.fifo").await;
    // Each group's whole run is sent before the next group's.
    for g in ["g1", "g2", "g3"] {
        for i in 1..=3 {
            send(&ts, &url, &format!("{g}-m{i}"), g).await;
        }
    }
    let got = ts.receive(&url, 10, Some(60)).await;
    let got = bodies(&got);
    assert_eq!(got.len(), 9, "{got:?}");
    // Round-robin by oldest message: one message of each group per round.
    assert_eq!(
        got,
        [
            "g1-m1", "g2-m1", "g3-m1", "g1-m2", "g2-m2", "g3-m2", "g1-m3", "g2-m3", "g3-m3"
        ]
    );
    for g in ["g1", "g2", "g3"] {
        let of_group: Vec<&str> = got.iter().copied().filter(|b| b.starts_with(g)).collect();
        assert_eq!(
            of_group,
            [format!("{g}-m1"), format!("{g}-m2"), format!("{g}-m3")],
            "order within {g}"
        );
    }

    // With room for fewer messages than groups, each group gets one before any gets two.
    let url = fifo(&ts, "rr-small.fifo").await;
    for g in ["g1", "g2", "g3"] {
        for i in 1..=3 {
            send(&ts, &url, &format!("{g}-m{i}"), g).await;
        }
    }
    let got = ts.receive(&url, 3, Some(60)).await;
    assert_eq!(bodies(&got), ["g1-m1", "g2-m1", "g3-m1"]);
}

#[tokio::test]
async fn extending_visibility_keeps_the_group_locked() {
    let ts = TestServer::start().await;
    let url = fifo(&ts, "extend.fifo").await;
    send(&ts, &url, "a1", "A").await;
    send(&ts, &url, "a2", "A").await;
    send(&ts, &url, "b1", "B").await;

    let first = ts.receive(&url, 1, Some(2)).await;
    assert_eq!(bodies(&first), ["a1"]);
    change_visibility(&ts, &url, &first[0], 30).await;
    // Past the original 2 s timeout: a1 is still in flight, so A stays locked.
    tokio::time::sleep(Duration::from_millis(2300)).await;
    let others = ts.receive(&url, 10, Some(60)).await;
    assert_eq!(bodies(&others), ["b1"], "A returned while a1 is in flight");
    assert!(ts.receive(&url, 10, Some(60)).await.is_empty());
    assert_eq!(ts.counts(&url).await, (1, 2, 0));

    // Deleting the only in-flight message of A unlocks it.
    delete(&ts, &url, &first[0]).await;
    let next = ts.receive(&url, 10, Some(60)).await;
    assert_eq!(bodies(&next), ["a2"]);
}

/// Starts a long poll (WaitTimeSeconds=10) on `url` in a task.
fn long_poll(ts: &TestServer, url: &str) -> tokio::task::JoinHandle<(Vec<Message>, Instant)> {
    let client = ts.client.clone();
    let url = url.to_string();
    tokio::spawn(async move {
        let out = client
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .wait_time_seconds(10)
            .visibility_timeout(60)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await
            .unwrap_or_else(|e| panic!("long poll: {}", describe(&e)));
        (out.messages.unwrap_or_default(), Instant::now())
    })
}

#[tokio::test]
async fn long_poll_wakes_when_the_group_unlocks_by_delete() {
    let ts = TestServer::start().await;
    let url = fifo(&ts, "lp-delete.fifo").await;
    send(&ts, &url, "a1", "A").await;
    send(&ts, &url, "a2", "A").await;
    let first = ts.receive(&url, 1, Some(60)).await;
    assert_eq!(bodies(&first), ["a1"]);

    let poll = long_poll(&ts, &url);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !poll.is_finished(),
        "the long poll returned while A was locked"
    );
    let unlocked = Instant::now();
    delete(&ts, &url, &first[0]).await;
    let (got, done) = poll.await.expect("long poll task");
    let elapsed = done - unlocked;
    assert_eq!(bodies(&got), ["a2"]);
    assert!(
        elapsed < Duration::from_secs(5),
        "the long poll took {elapsed:?} after the delete: it was not woken"
    );
}

#[tokio::test]
async fn long_poll_wakes_when_the_group_unlocks_by_visibility_change() {
    let ts = TestServer::start().await;
    let url = fifo(&ts, "lp-cmv.fifo").await;
    send(&ts, &url, "a1", "A").await;
    send(&ts, &url, "a2", "A").await;
    let first = ts.receive(&url, 1, Some(60)).await;
    assert_eq!(bodies(&first), ["a1"]);

    let poll = long_poll(&ts, &url);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !poll.is_finished(),
        "the long poll returned while A was locked"
    );
    let unlocked = Instant::now();
    change_visibility(&ts, &url, &first[0], 0).await;
    let (got, done) = poll.await.expect("long poll task");
    let elapsed = done - unlocked;
    assert_eq!(bodies(&got), ["a1", "a2"]);
    assert!(
        elapsed < Duration::from_secs(5),
        "the long poll took {elapsed:?} after ChangeMessageVisibility 0: it was not woken"
    );
}

#[tokio::test]
async fn long_poll_wakes_when_the_visibility_timeout_ends() {
    let ts = TestServer::start().await;
    let url = fifo(&ts, "lp-expire.fifo").await;
    send(&ts, &url, "a1", "A").await;
    send(&ts, &url, "a2", "A").await;
    let first = ts.receive(&url, 1, Some(1)).await;
    assert_eq!(bodies(&first), ["a1"]);
    let received = Instant::now();

    let (got, done) = long_poll(&ts, &url).await.expect("long poll task");
    let elapsed = done - received;
    assert_eq!(bodies(&got), ["a1", "a2"]);
    assert!(
        elapsed < Duration::from_secs(5),
        "the long poll took {elapsed:?} for a 1 s visibility timeout: it was not woken"
    );
}
