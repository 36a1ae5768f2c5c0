//! FIFO basics: group ids, ordering, group locking, deduplication, sequence numbers.

use aws_sdk_sqs::types::{Message, SendMessageBatchRequestEntry};

use crate::common::*;
use crate::expect_err;

async fn fifo(ts: &TestServer, name: &str, extra: &[(&str, &str)]) -> String {
    let mut attrs = vec![("FifoQueue", "true")];
    attrs.extend_from_slice(extra);
    ts.create_with(name, &attrs).await
}

async fn send_fifo(
    ts: &TestServer,
    url: &str,
    body: &str,
    group: &str,
    dedup: &str,
) -> (String, String) {
    let out = ts
        .client
        .send_message()
        .queue_url(url)
        .message_body(body)
        .message_group_id(group)
        .message_deduplication_id(dedup)
        .send()
        .await
        .unwrap_or_else(|e| panic!("fifo send: {}", describe(&e)));
    (
        out.message_id().unwrap().to_string(),
        out.sequence_number().expect("SequenceNumber").to_string(),
    )
}

#[tokio::test]
async fn fifo_queue_attributes() {
    let ts = TestServer::start().await;
    let url = fifo(&ts, "x.fifo", &[]).await;
    assert_eq!(url, ts.queue_url("x.fifo"));
    let a = ts.attrs(&url, &["All"]).await;
    assert_eq!(a["FifoQueue"], "true");
    assert_eq!(a["ContentBasedDeduplication"], "false");
    assert_eq!(a["QueueArn"], TestServer::arn("x.fifo"));
}

#[tokio::test]
async fn send_without_message_group_id_is_missing_parameter() {
    let ts = TestServer::start().await;
    let url = fifo(&ts, "nogroup.fifo", &[]).await;
    let (code, status, _) = expect_err!(
        ts.client
            .send_message()
            .queue_url(&url)
            .message_body("x")
            .message_deduplication_id("d")
            .send()
    );
    assert_eq!(code, "MissingParameter");
    assert_eq!(status, 400);
    // No dedup id and no content-based deduplication.
    let (code, _, _) = expect_err!(
        ts.client
            .send_message()
            .queue_url(&url)
            .message_body("x")
            .message_group_id("g")
            .send()
    );
    assert_eq!(code, "InvalidParameterValue");
    // Per-message delays are not allowed on FIFO queues.
    let (code, _, _) = expect_err!(
        ts.client
            .send_message()
            .queue_url(&url)
            .message_body("x")
            .message_group_id("g")
            .message_deduplication_id("d")
            .delay_seconds(1)
            .send()
    );
    assert_eq!(code, "InvalidParameterValue");
    assert_eq!(ts.counts(&url).await, (0, 0, 0));
}

#[tokio::test]
async fn order_within_a_group_and_increasing_sequence_numbers() {
    let ts = TestServer::start().await;
    let url = fifo(&ts, "order.fifo", &[]).await;
    let mut seqs = Vec::new();
    for i in 0..5 {
        let (_, seq) = send_fifo(&ts, &url, &format!("m{i}"), "g", &format!("d{i}")).await;
        assert!(
            seq.len() <= 40 && seq.bytes().all(|b| b.is_ascii_digit()),
            "{seq}"
        );
        seqs.push(seq.parse::<u128>().unwrap());
    }
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    for (i, want_seq) in seqs.iter().enumerate() {
        let got = ts.receive(&url, 1, None).await;
        assert_eq!(got.len(), 1, "message {i}");
        assert_eq!(got[0].body(), Some(format!("m{i}").as_str()));
        assert_eq!(
            sys_attr(&got[0], "SequenceNumber"),
            Some(want_seq.to_string())
        );
        assert_eq!(sys_attr(&got[0], "MessageGroupId").as_deref(), Some("g"));
        assert_eq!(
            sys_attr(&got[0], "MessageDeduplicationId"),
            Some(format!("d{i}"))
        );
        ts.client
            .delete_message()
            .queue_url(&url)
            .receipt_handle(got[0].receipt_handle().unwrap())
            .send()
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn batch_keeps_order_within_group() {
    let ts = TestServer::start().await;
    let url = fifo(&ts, "batchorder.fifo", &[]).await;
    let entries = (0..5)
        .map(|i| {
            SendMessageBatchRequestEntry::builder()
                .id(format!("e{i}"))
                .message_body(format!("b{i}"))
                .message_group_id("g")
                .message_deduplication_id(format!("bd{i}"))
                .build()
                .unwrap()
        })
        .collect();
    let out = ts
        .client
        .send_message_batch()
        .queue_url(&url)
        .set_entries(Some(entries))
        .send()
        .await
        .unwrap();
    assert_eq!(out.successful().len(), 5);
    let mut bodies = Vec::new();
    for _ in 0..5 {
        let got = ts.receive(&url, 10, None).await;
        for m in &got {
            bodies.push(m.body().unwrap().to_string());
            ts.client
                .delete_message()
                .queue_url(&url)
                .receipt_handle(m.receipt_handle().unwrap())
                .send()
                .await
                .unwrap();
        }
        if bodies.len() == 5 {
            break;
        }
    }
    assert_eq!(bodies, ["b0", "b1", "b2", "b3", "b4"]);
}

#[tokio::test]
async fn group_is_locked_while_a_message_is_in_flight() {
    let ts = TestServer::start().await;
    let url = fifo(&ts, "lock.fifo", &[]).await;
    send_fifo(&ts, &url, "a1", "A", "a1").await;
    send_fifo(&ts, &url, "a2", "A", "a2").await;
    send_fifo(&ts, &url, "b1", "B", "b1").await;

    let first = ts.receive(&url, 1, Some(60)).await;
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].body(), Some("a1"));
    // Group A is locked: only B's message comes back.
    let second = ts.receive(&url, 10, Some(60)).await;
    let bodies: Vec<&str> = second.iter().filter_map(|m| m.body()).collect();
    assert_eq!(bodies, ["b1"]);
    assert!(ts.receive(&url, 10, Some(60)).await.is_empty());

    ts.client
        .delete_message()
        .queue_url(&url)
        .receipt_handle(first[0].receipt_handle().unwrap())
        .send()
        .await
        .unwrap();
    let third = ts.receive(&url, 10, Some(60)).await;
    let bodies: Vec<&str> = third.iter().filter_map(|m| m.body()).collect();
    assert_eq!(bodies, ["a2"]);
}

#[tokio::test]
async fn explicit_deduplication_id_suppresses_duplicates() {
    let ts = TestServer::start().await;
    let url = fifo(&ts, "dedup.fifo", &[]).await;
    let (id1, seq1) = send_fifo(&ts, &url, "once", "g", "same-id").await;
    let (id2, seq2) = send_fifo(&ts, &url, "different body", "g", "same-id").await;
    assert_eq!(id1, id2);
    assert_eq!(seq1, seq2);
    let got = ts.receive(&url, 10, None).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].body(), Some("once"));
    // Still a duplicate after the original was received and deleted.
    ts.client
        .delete_message()
        .queue_url(&url)
        .receipt_handle(got[0].receipt_handle().unwrap())
        .send()
        .await
        .unwrap();
    let (id3, _) = send_fifo(&ts, &url, "once", "g", "same-id").await;
    assert_eq!(id3, id1);
    assert!(ts.receive(&url, 10, None).await.is_empty());
    assert_eq!(ts.counts(&url).await, (0, 0, 0));
}

#[tokio::test]
async fn content_based_deduplication_uses_the_body() {
    let ts = TestServer::start().await;
    let url = fifo(&ts, "cbd.fifo", &[("ContentBasedDeduplication", "true")]).await;
    let send = |body: &'static str| {
        ts.client
            .send_message()
            .queue_url(&url)
            .message_body(body)
            .message_group_id("g")
            .send()
    };
    let a = send("same body").await.unwrap();
    let b = send("same body").await.unwrap();
    let c = send("other body").await.unwrap();
    assert_eq!(a.message_id(), b.message_id());
    assert_ne!(a.message_id(), c.message_id());
    let mut bodies = Vec::new();
    for _ in 0..3 {
        for m in ts.receive(&url, 10, None).await {
            bodies.push(m.body().unwrap().to_string());
            ts.client
                .delete_message()
                .queue_url(&url)
                .receipt_handle(m.receipt_handle().unwrap())
                .send()
                .await
                .unwrap();
        }
    }
    assert_eq!(bodies, ["same body", "other body"]);
}

#[tokio::test]
async fn fifo_only_attributes_rejected_on_standard_queue() {
    let ts = TestServer::start().await;
    let url = ts.create("std").await;
    let (code, _, _) = expect_err!(
        ts.client
            .set_queue_attributes()
            .queue_url(&url)
            .attributes(
                aws_sdk_sqs::types::QueueAttributeName::ContentBasedDeduplication,
                "true"
            )
            .send()
    );
    assert_eq!(code, "InvalidAttributeName");
}

// ---------------------------------------------------------------------------------------------
// Ordering, group locking, deduplication, sequence numbers, ReceiveRequestAttemptId,
// validation and fair queues (sqs-semantics.md §8, §9; docs/fair-queues.md).

/// SHA-256 of `abc` (FIPS 180-2 test vector), written out so the test does not share the
/// server's hashing code.
const SHA256_OF_ABC: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

async fn delete(ts: &TestServer, url: &str, m: &Message) {
    ts.client
        .delete_message()
        .queue_url(url)
        .receipt_handle(m.receipt_handle().expect("receipt handle"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("delete: {}", describe(&e)));
}

fn bodies(msgs: &[Message]) -> Vec<String> {
    msgs.iter()
        .map(|m| m.body().expect("body").to_string())
        .collect()
}

fn receive_count(m: &Message) -> String {
    sys_attr(m, "ApproximateReceiveCount").expect("ApproximateReceiveCount")
}

/// `(MessageId, ReceiptHandle)` pairs, sorted, to compare two receives as sets.
fn ids_and_handles(msgs: &[Message]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = msgs
        .iter()
        .map(|m| {
            (
                m.message_id().expect("message id").to_string(),
                m.receipt_handle().expect("receipt handle").to_string(),
            )
        })
        .collect();
    v.sort();
    v
}

/// Parses a SequenceNumber: a decimal string of at least 20 digits that fits in 128 bits.
#[track_caller]
fn parse_sequence(s: &str) -> u128 {
    assert!(
        s.len() >= 20 && s.bytes().all(|b| b.is_ascii_digit()),
        "SequenceNumber {s:?} is not a decimal string of at least 20 digits"
    );
    s.parse::<u128>()
        .unwrap_or_else(|e| panic!("SequenceNumber {s:?} does not fit in 128 bits: {e}"))
}

async fn receive_attempt(
    ts: &TestServer,
    url: &str,
    max: i32,
    visibility: i32,
    attempt: &str,
) -> Vec<Message> {
    ts.client
        .receive_message()
        .queue_url(url)
        .max_number_of_messages(max)
        .visibility_timeout(visibility)
        .receive_request_attempt_id(attempt)
        .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
        .send()
        .await
        .unwrap_or_else(|e| panic!("receive with attempt id {attempt}: {}", describe(&e)))
        .messages
        .unwrap_or_default()
}

#[tokio::test]
async fn thirty_messages_in_one_group_are_received_in_order() {
    let ts = TestServer::start().await;
    let url = fifo(&ts, "order30.fifo", &[]).await;
    let mut sent = Vec::new();
    for i in 0..30 {
        let body = format!("m{i:02}");
        let (id, seq) = send_fifo(&ts, &url, &body, "g", &body).await;
        sent.push((body, id, seq));
    }
    let mut received: Vec<Message> = Vec::new();
    for round in 0..30 {
        let got = ts.receive(&url, 10, Some(60)).await;
        if got.is_empty() {
            break;
        }
        assert!(got.len() <= 10, "round {round}: {} messages", got.len());
        // The group is locked while this batch is in flight.
        assert!(
            ts.receive(&url, 10, Some(60)).await.is_empty(),
            "round {round}: group g returned more while {} of its messages are in flight",
            got.len()
        );
        for m in &got {
            delete(&ts, &url, m).await;
        }
        received.extend(got);
    }
    assert_eq!(
        bodies(&received),
        sent.iter().map(|(b, _, _)| b.clone()).collect::<Vec<_>>()
    );
    for (m, (body, id, seq)) in received.iter().zip(&sent) {
        assert_eq!(m.message_id(), Some(id.as_str()), "{body}");
        assert_eq!(sys_attr(m, "SequenceNumber").as_ref(), Some(seq), "{body}");
        assert_eq!(receive_count(m), "1", "{body}");
    }
    assert_eq!(ts.counts(&url).await, (0, 0, 0));
}

#[tokio::test]
async fn one_receive_returns_several_groups_each_in_order() {
    let ts = TestServer::start().await;
    let url = fifo(&ts, "groups.fifo", &[]).await;
    // Interleaved sends: A1 B1 C1 A2 B2 C2 A3 B3 C3.
    for i in 1..=3 {
        for g in ["A", "B", "C"] {
            let body = format!("{g}{i}");
            send_fifo(&ts, &url, &body, g, &body).await;
        }
    }
    let first = ts.receive(&url, 10, Some(60)).await;
    let groups: std::collections::BTreeSet<String> = first
        .iter()
        .map(|m| sys_attr(m, "MessageGroupId").expect("MessageGroupId"))
        .collect();
    assert!(
        groups.len() > 1,
        "one receive of 10 returned a single group: {:?}",
        bodies(&first)
    );
    let mut all: Vec<Message> = Vec::new();
    let mut batch = first;
    for _ in 0..10 {
        if batch.is_empty() {
            break;
        }
        for m in &batch {
            delete(&ts, &url, m).await;
        }
        all.extend(batch);
        batch = ts.receive(&url, 10, Some(60)).await;
    }
    let all_bodies = bodies(&all);
    assert_eq!(all_bodies.len(), 9, "{all_bodies:?}");
    for g in ["A", "B", "C"] {
        let of_group: Vec<&String> = all_bodies.iter().filter(|b| b.starts_with(g)).collect();
        assert_eq!(
            of_group,
            [format!("{g}1"), format!("{g}2"), format!("{g}3")]
                .iter()
                .collect::<Vec<_>>(),
            "order of group {g} in {all_bodies:?}"
        );
    }
}

#[tokio::test]
async fn locked_group_is_skipped_and_an_expired_message_comes_back_first() {
    let ts = TestServer::start().await;
    let url = fifo(&ts, "expiry.fifo", &[]).await;
    for b in ["a1", "a2", "a3"] {
        send_fifo(&ts, &url, b, "A", b).await;
    }
    for b in ["b1", "b2"] {
        send_fifo(&ts, &url, b, "B", b).await;
    }

    let a1 = ts.receive(&url, 1, Some(60)).await;
    assert_eq!(bodies(&a1), ["a1"]);
    // A is locked; B is served.
    let others = ts.receive(&url, 10, Some(60)).await;
    assert_eq!(bodies(&others), ["b1", "b2"]);
    for m in &others {
        delete(&ts, &url, m).await;
    }
    assert!(ts.receive(&url, 10, Some(60)).await.is_empty());

    // After the delete, A's next message comes.
    delete(&ts, &url, &a1[0]).await;
    let a2 = ts.receive(&url, 1, Some(1)).await;
    assert_eq!(bodies(&a2), ["a2"]);
    assert_eq!(receive_count(&a2[0]), "1");
    assert!(
        ts.receive(&url, 10, Some(60)).await.is_empty(),
        "a3 returned while a2 is in flight"
    );

    // a2's visibility timeout expires: a2 itself comes back first, then a3.
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    let again = ts.receive(&url, 10, Some(60)).await;
    assert!(!again.is_empty(), "nothing after the visibility timeout");
    assert_eq!(again[0].body(), Some("a2"), "{:?}", bodies(&again));
    assert_eq!(again[0].message_id(), a2[0].message_id());
    assert_eq!(receive_count(&again[0]), "2");
    assert_ne!(again[0].receipt_handle(), a2[0].receipt_handle());
    assert!(
        bodies(&again).iter().all(|b| b == "a2" || b == "a3"),
        "{:?}",
        bodies(&again)
    );
    if again.len() > 1 {
        assert_eq!(bodies(&again), ["a2", "a3"]);
        assert_eq!(receive_count(&again[1]), "1");
    }
}

#[tokio::test]
async fn content_based_deduplication_returns_the_original_sequence_number() {
    let ts = TestServer::start().await;
    let url = fifo(&ts, "cbd2.fifo", &[("ContentBasedDeduplication", "true")]).await;
    let send = |body: &'static str| {
        ts.client
            .send_message()
            .queue_url(&url)
            .message_body(body)
            .message_group_id("g")
            .send()
    };
    let first = send("same").await.unwrap();
    let dup = send("same").await.unwrap();
    let other = send("not the same").await.unwrap();
    // The hash covers the body only: different message attributes do not make it unique.
    let with_attrs = ts
        .client
        .send_message()
        .queue_url(&url)
        .message_body("same")
        .message_group_id("g")
        .message_attributes("k", string_attr("String", "v"))
        .send()
        .await
        .unwrap();
    assert_eq!(with_attrs.message_id(), first.message_id());
    assert_eq!(dup.message_id(), first.message_id());
    assert_eq!(dup.sequence_number(), first.sequence_number());
    assert_ne!(other.message_id(), first.message_id());
    assert_ne!(other.sequence_number(), first.sequence_number());
    assert_eq!(ts.counts(&url).await, (2, 0, 0));
}

#[tokio::test]
async fn explicit_id_equal_to_the_body_hash_is_a_duplicate() {
    let ts = TestServer::start().await;
    let url = fifo(&ts, "hash.fifo", &[("ContentBasedDeduplication", "true")]).await;
    let first = ts
        .client
        .send_message()
        .queue_url(&url)
        .message_body("abc")
        .message_group_id("g")
        .send()
        .await
        .unwrap();
    // A different body with the explicit id SHA-256("abc"): the same dedup id.
    let (id, seq) = send_fifo(&ts, &url, "another body", "g", SHA256_OF_ABC).await;
    assert_eq!(Some(id.as_str()), first.message_id());
    assert_eq!(Some(seq.as_str()), first.sequence_number());
    let got = ts.receive(&url, 10, Some(60)).await;
    assert_eq!(bodies(&got), ["abc"]);
    // Still a duplicate after the original was received and deleted.
    for m in &got {
        delete(&ts, &url, m).await;
    }
    let again = ts
        .client
        .send_message()
        .queue_url(&url)
        .message_body("abc")
        .message_group_id("g")
        .send()
        .await
        .unwrap();
    assert_eq!(again.message_id(), first.message_id());
    let (id, _) = send_fifo(&ts, &url, "third body", "other-group", SHA256_OF_ABC).await;
    assert_eq!(Some(id.as_str()), first.message_id());
    assert!(ts.receive(&url, 10, Some(60)).await.is_empty());
    assert_eq!(ts.counts(&url).await, (0, 0, 0));
}

#[tokio::test]
async fn deduplication_scope_message_group_deduplicates_per_group() {
    for limit in ["perMessageGroupId", "perQueue"] {
        let ts = TestServer::start().await;
        let name = format!("scope-{limit}.fifo");
        let url = fifo(
            &ts,
            &name,
            &[
                ("DeduplicationScope", "messageGroup"),
                ("FifoThroughputLimit", limit),
            ],
        )
        .await;
        let a = ts
            .attrs(&url, &["DeduplicationScope", "FifoThroughputLimit"])
            .await;
        assert_eq!(a["DeduplicationScope"], "messageGroup");
        assert_eq!(a["FifoThroughputLimit"], limit);

        let (g1, s1) = send_fifo(&ts, &url, "in g1", "g1", "same-id").await;
        let (g2, s2) = send_fifo(&ts, &url, "in g2", "g2", "same-id").await;
        assert_ne!(
            g1, g2,
            "{limit}: same dedup id in two groups was deduplicated"
        );
        assert_ne!(s1, s2);
        let (g1_again, s1_again) = send_fifo(&ts, &url, "in g1 again", "g1", "same-id").await;
        assert_eq!(g1_again, g1, "{limit}: same id in the same group");
        assert_eq!(s1_again, s1);

        let mut got = ts.receive(&url, 10, Some(60)).await;
        got.sort_by(|x, y| x.body().cmp(&y.body()));
        assert_eq!(bodies(&got), ["in g1", "in g2"], "{limit}");
    }
}

#[tokio::test]
async fn deduplication_scope_queue_deduplicates_across_groups() {
    let ts = TestServer::start().await;
    let url = fifo(
        &ts,
        "scope-queue.fifo",
        &[
            ("DeduplicationScope", "queue"),
            ("FifoThroughputLimit", "perQueue"),
        ],
    )
    .await;
    let (g1, s1) = send_fifo(&ts, &url, "in g1", "g1", "same-id").await;
    let (g2, s2) = send_fifo(&ts, &url, "in g2", "g2", "same-id").await;
    assert_eq!(g1, g2);
    assert_eq!(s1, s2);
    let got = ts.receive(&url, 10, Some(60)).await;
    assert_eq!(bodies(&got), ["in g1"]);
    assert_eq!(sys_attr(&got[0], "MessageGroupId").as_deref(), Some("g1"));
    assert_eq!(ts.counts(&url).await, (0, 1, 0));
}

#[tokio::test]
async fn sequence_numbers_are_long_decimals_increasing_within_each_group() {
    let ts = TestServer::start().await;
    let url = fifo(&ts, "seq.fifo", &[]).await;
    let mut sent: Vec<(String, String, u128)> = Vec::new(); // (body, group, sequence)
    for i in 0..4 {
        for g in ["x", "y"] {
            let body = format!("{g}{i}");
            let (_, seq) = send_fifo(&ts, &url, &body, g, &body).await;
            sent.push((body, g.to_string(), parse_sequence(&seq)));
        }
    }
    let entries = (0..4)
        .map(|i| {
            SendMessageBatchRequestEntry::builder()
                .id(format!("e{i}"))
                .message_body(format!("x-batch{i}"))
                .message_group_id("x")
                .message_deduplication_id(format!("x-batch{i}"))
                .build()
                .unwrap()
        })
        .collect();
    let out = ts
        .client
        .send_message_batch()
        .queue_url(&url)
        .set_entries(Some(entries))
        .send()
        .await
        .unwrap();
    assert_eq!(out.successful().len(), 4, "{:?}", out.failed());
    for i in 0..4 {
        let e = out
            .successful()
            .iter()
            .find(|e| e.id() == format!("e{i}"))
            .expect("batch entry");
        let seq = e.sequence_number().expect("batch entry SequenceNumber");
        sent.push((format!("x-batch{i}"), "x".into(), parse_sequence(seq)));
    }
    for g in ["x", "y"] {
        let seqs: Vec<u128> = sent
            .iter()
            .filter(|(_, sg, _)| sg == g)
            .map(|(_, _, s)| *s)
            .collect();
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "group {g}: {seqs:?}");
    }
    // The system attribute carries the same value.
    let mut received = 0;
    for _ in 0..20 {
        let got = ts.receive(&url, 10, Some(60)).await;
        if got.is_empty() {
            break;
        }
        for m in &got {
            let (body, _, seq) = sent
                .iter()
                .find(|(b, _, _)| Some(b.as_str()) == m.body())
                .expect("a sent body");
            let attr = sys_attr(m, "SequenceNumber").expect("SequenceNumber attribute");
            assert_eq!(parse_sequence(&attr), *seq, "{body}");
            delete(&ts, &url, m).await;
            received += 1;
        }
    }
    assert_eq!(received, sent.len());
}

#[tokio::test]
async fn receive_request_attempt_id_retry_returns_the_same_messages_and_handles() {
    let ts = TestServer::start().await;
    let url = fifo(&ts, "attempt.fifo", &[]).await;
    for (b, g) in [("a1", "A"), ("a2", "A"), ("b1", "B")] {
        send_fifo(&ts, &url, b, g, b).await;
    }
    let first = receive_attempt(&ts, &url, 10, 60, "attempt-1").await;
    assert_eq!(first.len(), 3, "{:?}", bodies(&first));

    let retry = receive_attempt(&ts, &url, 10, 60, "attempt-1").await;
    assert_eq!(ids_and_handles(&retry), ids_and_handles(&first));

    // A different attempt id is a new receive: A and B are locked, only C's new message comes.
    send_fifo(&ts, &url, "c1", "C", "c1").await;
    let other = receive_attempt(&ts, &url, 10, 60, "attempt-2").await;
    assert_eq!(bodies(&other), ["c1"]);

    // The first attempt can still be retried.
    let retry = receive_attempt(&ts, &url, 10, 60, "attempt-1").await;
    assert_eq!(ids_and_handles(&retry), ids_and_handles(&first));

    // After one of its messages is deleted, the attempt id no longer replays: a retry is a new
    // receive, which cannot return the deleted message.
    let a1 = first.iter().find(|m| m.body() == Some("a1")).unwrap();
    delete(&ts, &url, a1).await;
    send_fifo(&ts, &url, "d1", "D", "d1").await;
    let after_delete = receive_attempt(&ts, &url, 10, 60, "attempt-1").await;
    assert!(
        after_delete
            .iter()
            .all(|m| m.message_id() != a1.message_id()),
        "deleted message replayed: {:?}",
        bodies(&after_delete)
    );
    // A (a2), B and C are still locked; only D's message is available.
    assert_eq!(bodies(&after_delete), ["d1"]);
}

#[tokio::test]
async fn fifo_send_validation_errors() {
    let ts = TestServer::start().await;
    let url = fifo(&ts, "validate.fifo", &[]).await;

    let (code, status, msg) = expect_err!(
        ts.client
            .send_message()
            .queue_url(&url)
            .message_body("x")
            .message_deduplication_id("d")
            .send()
    );
    assert_eq!((code.as_str(), status), ("MissingParameter", 400));
    assert_eq!(
        msg,
        "The request must contain the parameter MessageGroupId."
    );

    let (code, _, msg) = expect_err!(
        ts.client
            .send_message()
            .queue_url(&url)
            .message_body("x")
            .message_group_id("g")
            .send()
    );
    assert_eq!(code, "InvalidParameterValue");
    assert_eq!(
        msg,
        "The queue should either have ContentBasedDeduplication enabled or MessageDeduplicationId provided explicitly"
    );

    let (code, _, msg) = expect_err!(
        ts.client
            .send_message()
            .queue_url(&url)
            .message_body("x")
            .message_group_id("g")
            .message_deduplication_id("d")
            .delay_seconds(5)
            .send()
    );
    assert_eq!(code, "InvalidParameterValue");
    assert_eq!(
        msg,
        "Value 5 for parameter DelaySeconds is invalid. Reason: The request include parameter that is not valid for this queue type."
    );

    for bad in ["g".repeat(129), "has space".to_string()] {
        let (code, _, msg) = expect_err!(
            ts.client
                .send_message()
                .queue_url(&url)
                .message_body("x")
                .message_group_id(&bad)
                .message_deduplication_id("d")
                .send()
        );
        assert_eq!(code, "InvalidParameterValue", "group id {bad:?}");
        assert!(msg.contains("MessageGroupId"), "{msg}");
    }
    assert_eq!(ts.counts(&url).await, (0, 0, 0), "a rejected send enqueued");

    // DelaySeconds=0 and a 128-character group id are fine.
    let ok = ts
        .client
        .send_message()
        .queue_url(&url)
        .message_body("x")
        .message_group_id("g".repeat(128))
        .message_deduplication_id("d0")
        .delay_seconds(0)
        .send()
        .await
        .unwrap_or_else(|e| panic!("DelaySeconds=0: {}", describe(&e)));
    assert!(ok.sequence_number().is_some());
    let got = ts.receive(&url, 1, None).await;
    assert_eq!(sys_attr(&got[0], "MessageGroupId"), Some("g".repeat(128)));
}

#[tokio::test]
async fn fifo_queue_attribute_validation_errors() {
    let ts = TestServer::start().await;
    let create = |name: &str, attrs: &[(&str, &str)]| {
        let mut req = ts.client.create_queue().queue_name(name);
        for (k, v) in attrs {
            req = req.attributes(aws_sdk_sqs::types::QueueAttributeName::from(*k), *v);
        }
        req.send()
    };

    let (code, _, _) = expect_err!(create("no-suffix", &[("FifoQueue", "true")]));
    assert_eq!(code, "InvalidParameterValue");

    let (code, _, _) = expect_err!(create(
        "tp.fifo",
        &[
            ("FifoQueue", "true"),
            ("DeduplicationScope", "queue"),
            ("FifoThroughputLimit", "perMessageGroupId"),
        ]
    ));
    assert_eq!(code, "InvalidParameterValue");

    let (code, _, _) = expect_err!(create("std-cbd", &[("ContentBasedDeduplication", "true")]));
    assert_eq!(code, "InvalidAttributeName");

    // None of the refused queues exists.
    let listed = ts.client.list_queues().send().await.unwrap();
    assert!(listed.queue_urls().is_empty(), "{:?}", listed.queue_urls());

    // A FIFO queue's DLQ must be FIFO, at creation and through SetQueueAttributes.
    ts.create("std-dlq").await;
    fifo(&ts, "fifo-dlq.fifo", &[]).await;
    let policy = |arn: String| format!(r#"{{"deadLetterTargetArn":"{arn}","maxReceiveCount":3}}"#);
    let (code, _, _) = expect_err!(create(
        "src.fifo",
        &[
            ("FifoQueue", "true"),
            ("RedrivePolicy", &policy(TestServer::arn("std-dlq")))
        ]
    ));
    assert_eq!(code, "InvalidParameterValue");
    let src = fifo(
        &ts,
        "src.fifo",
        &[("RedrivePolicy", &policy(TestServer::arn("fifo-dlq.fifo")))],
    )
    .await;
    let (code, _, _) = expect_err!(
        ts.client
            .set_queue_attributes()
            .queue_url(&src)
            .attributes(
                aws_sdk_sqs::types::QueueAttributeName::RedrivePolicy,
                policy(TestServer::arn("std-dlq"))
            )
            .send()
    );
    assert_eq!(code, "InvalidParameterValue");
    let a = ts.attrs(&src, &["RedrivePolicy"]).await;
    assert!(
        a["RedrivePolicy"].contains("fifo-dlq.fifo"),
        "{}",
        a["RedrivePolicy"]
    );
}

#[tokio::test]
async fn standard_queue_returns_message_group_id_system_attribute() {
    let ts = TestServer::start().await;
    let url = ts.create("tenants").await;
    let out = ts
        .client
        .send_message()
        .queue_url(&url)
        .message_body("with tenant")
        .message_group_id("tenant-1")
        .send()
        .await
        .unwrap();
    assert!(out.message_id().is_some());
    ts.send(&url, "without tenant").await;
    let mut got = ts.receive(&url, 10, Some(60)).await;
    if got.len() < 2 {
        got.extend(ts.receive(&url, 10, Some(60)).await);
    }
    let with = got
        .iter()
        .find(|m| m.body() == Some("with tenant"))
        .expect("tenant message");
    let without = got
        .iter()
        .find(|m| m.body() == Some("without tenant"))
        .expect("message without tenant");
    assert_eq!(
        sys_attr(with, "MessageGroupId").as_deref(),
        Some("tenant-1")
    );
    assert_eq!(sys_attr(without, "MessageGroupId"), None);
}

#[tokio::test]
async fn fair_queue_serves_a_quiet_tenant_before_a_noisy_backlog() {
    let ts = TestServer::start().await;
    let url = ts.create("fair-noisy").await;
    // Tenant A: 50 messages.
    for batch in 0..5 {
        let entries = (0..10)
            .map(|i| {
                SendMessageBatchRequestEntry::builder()
                    .id(format!("e{i}"))
                    .message_body(format!("A{}", batch * 10 + i))
                    .message_group_id("tenant-a")
                    .build()
                    .unwrap()
            })
            .collect();
        let out = ts
            .client
            .send_message_batch()
            .queue_url(&url)
            .set_entries(Some(entries))
            .send()
            .await
            .unwrap();
        assert_eq!(out.successful().len(), 10);
    }
    // A keeps 40 in flight (well over 30 and over 10 % of the queue's in-flight messages).
    let mut in_flight = Vec::new();
    while in_flight.len() < 40 {
        let want = (40 - in_flight.len()).min(10) as i32;
        let got = ts.receive(&url, want, Some(600)).await;
        assert!(
            !got.is_empty(),
            "A's backlog ran dry at {}",
            in_flight.len()
        );
        in_flight.extend(got);
    }
    assert!(
        in_flight
            .iter()
            .all(|m| sys_attr(m, "MessageGroupId").as_deref() == Some("tenant-a"))
    );
    assert_eq!(ts.counts(&url).await, (10, 40, 0));

    // B sends after A's whole backlog; B's message is served before A's 10 waiting ones.
    ts.client
        .send_message()
        .queue_url(&url)
        .message_body("B0")
        .message_group_id("tenant-b")
        .send()
        .await
        .unwrap();
    let next = ts.receive(&url, 1, Some(600)).await;
    assert_eq!(
        bodies(&next),
        ["B0"],
        "the noisy tenant's backlog came first"
    );
    assert_eq!(
        sys_attr(&next[0], "MessageGroupId").as_deref(),
        Some("tenant-b")
    );

    // A is still served afterwards.
    let rest = ts.receive(&url, 10, Some(600)).await;
    assert!(!rest.is_empty(), "the noisy tenant is no longer served");
    assert!(
        rest.iter()
            .all(|m| sys_attr(m, "MessageGroupId").as_deref() == Some("tenant-a")),
        "{:?}",
        bodies(&rest)
    );
}

#[tokio::test]

async fn receive_request_attempt_id_is_not_replayed_after_a_visibility_change() {
    let ts = TestServer::start().await;
    let url = fifo(&ts, "attempt-vis.fifo", &[]).await;
    send_fifo(&ts, &url, "a1", "A", "a1").await;
    send_fifo(&ts, &url, "a2", "A", "a2").await;
    let first = receive_attempt(&ts, &url, 1, 60, "attempt-v").await;
    assert_eq!(bodies(&first), ["a1"]);
    ts.client
        .change_message_visibility()
        .queue_url(&url)
        .receipt_handle(first[0].receipt_handle().unwrap())
        .visibility_timeout(120)
        .send()
        .await
        .unwrap();
    // The attempt's message was modified, so a retry is a new receive: group A is locked by
    // a1, so nothing comes back (in particular not a1 with its old receipt handle).
    let retry = receive_attempt(&ts, &url, 1, 60, "attempt-v").await;
    assert!(
        retry.is_empty(),
        "replayed after ChangeMessageVisibility: {:?}",
        ids_and_handles(&retry)
    );
}
