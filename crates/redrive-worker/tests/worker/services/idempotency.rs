//! The shared idempotency stores' contract, on each store: two clients (as two processes would)
//! contend for one key and exactly one wins, a lease that runs out lets another client take the
//! key over (and the old owner can then neither renew nor release it), a completed key blocks
//! repeats for its retention, and an unreachable store fails with a clear error.

use std::time::Duration;

use redrive_worker::{
    Claim, IdempotencyStore, IdempotencyStoreError, SharedIdempotencyConfig,
    SharedIdempotencyStore, idempotency_from_url,
};

use super::limiter::OwnRedis;
use super::{fresh_namespace, postgres_url, redis_url};

const LEASE: Duration = Duration::from_millis(600);
const LONG: Duration = Duration::from_secs(60);

async fn two_clients(url: &str) -> [SharedIdempotencyStore; 2] {
    let config = SharedIdempotencyConfig::new().with_namespace(fresh_namespace());
    [
        idempotency_from_url(url, config.clone())
            .await
            .expect("connect"),
        idempotency_from_url(url, config).await.expect("connect"),
    ]
}

async fn begin(store: &SharedIdempotencyStore, key: &str, owner: &str, lease: Duration) -> Claim {
    store.try_begin(key, owner, lease).await.expect("try_begin")
}

/// 50 keys, each claimed by both clients at the same moment: exactly one claim wins per key,
/// and the loser sees it in progress.
async fn one_of_two_contenders_wins(url: &str) {
    let [a, b] = two_clients(url).await;
    let (mut a_won, mut b_won) = (0, 0);
    for i in 0..50 {
        let key = format!("order-{i}");
        let (ca, cb) = tokio::join!(begin(&a, &key, "a", LONG), begin(&b, &key, "b", LONG));
        match (ca, cb) {
            (Claim::Acquired, Claim::InProgress) => a_won += 1,
            (Claim::InProgress, Claim::Acquired) => b_won += 1,
            other => panic!("key {key}: {other:?}"),
        }
        // A third attempt by either client, even the winner's store, sees it in progress.
        assert_eq!(begin(&a, &key, "c", LONG).await, Claim::InProgress);
    }
    eprintln!("contention: a won {a_won}, b won {b_won}");
    assert_eq!(a_won + b_won, 50);
}

/// A lease renewed by its owner holds; once it runs out, another client takes the key over and
/// the old owner can neither renew nor release the new claim.
async fn lease_expiry_lets_another_take_over(url: &str) {
    let [a, b] = two_clients(url).await;
    assert_eq!(begin(&a, "k", "a", LEASE).await, Claim::Acquired);
    assert_eq!(begin(&b, "k", "b", LEASE).await, Claim::InProgress);
    // Renewed twice within its lease: still held after 2 × the original lease.
    for _ in 0..2 {
        tokio::time::sleep(LEASE / 2).await;
        assert!(a.extend("k", "a", LEASE).await.expect("extend"));
    }
    assert_eq!(begin(&b, "k", "b", LEASE).await, Claim::InProgress);
    assert!(
        !b.extend("k", "b", LEASE).await.expect("extend"),
        "not b's claim"
    );
    // a stops renewing (it crashed): its claim expires and b takes over.
    tokio::time::sleep(LEASE + Duration::from_millis(300)).await;
    assert_eq!(begin(&b, "k", "b", LONG).await, Claim::Acquired);
    assert!(
        !a.extend("k", "a", LEASE).await.expect("extend"),
        "a lost it"
    );
    a.release("k", "a").await.expect("release");
    assert_eq!(begin(&a, "k", "c", LONG).await, Claim::InProgress);
    // The owner's release frees the key at once.
    b.release("k", "b").await.expect("release");
    assert_eq!(begin(&a, "k", "c", LONG).await, Claim::Acquired);
}

/// A completed key blocks repeats from every client for its retention, survives a stray
/// release, and is claimable again afterwards.
async fn done_blocks_repeats(url: &str) {
    let [a, b] = two_clients(url).await;
    let retention = Duration::from_millis(1500);
    assert_eq!(begin(&a, "k", "a", LEASE).await, Claim::Acquired);
    a.complete("k", "a", retention).await.expect("complete");
    // Well past the lease: completion replaced it.
    tokio::time::sleep(LEASE + Duration::from_millis(100)).await;
    for store in [&a, &b, &b] {
        assert_eq!(begin(store, "k", "b", LEASE).await, Claim::Completed);
    }
    b.release("k", "b").await.expect("release");
    a.release("k", "a").await.expect("release");
    assert!(!a.extend("k", "a", LEASE).await.expect("extend"));
    assert_eq!(begin(&b, "k", "b", LEASE).await, Claim::Completed);
    tokio::time::sleep(retention).await;
    assert_eq!(begin(&b, "k", "b", LEASE).await, Claim::Acquired);
    // Completed by a consumer whose lease was taken over: still completed (the effect happened).
    assert_eq!(begin(&a, "j", "a", LONG).await, Claim::Acquired);
    b.complete("j", "b", LONG).await.expect("complete");
    assert_eq!(begin(&a, "j", "c", LONG).await, Claim::Completed);
}

#[tokio::test]
async fn redis_idempotency_one_of_two_contenders_wins() {
    one_of_two_contenders_wins(&redis_url()).await;
}

#[tokio::test]
async fn postgres_idempotency_one_of_two_contenders_wins() {
    one_of_two_contenders_wins(&postgres_url()).await;
}

#[tokio::test]
async fn redis_idempotency_lease_expiry_lets_another_take_over() {
    lease_expiry_lets_another_take_over(&redis_url()).await;
}

#[tokio::test]
async fn postgres_idempotency_lease_expiry_lets_another_take_over() {
    lease_expiry_lets_another_take_over(&postgres_url()).await;
}

#[tokio::test]
async fn redis_idempotency_done_blocks_repeats() {
    done_blocks_repeats(&redis_url()).await;
}

#[tokio::test]
async fn postgres_idempotency_done_blocks_repeats() {
    done_blocks_repeats(&postgres_url()).await;
}

#[tokio::test]
async fn postgres_idempotency_purges_expired_rows() {
    let config = SharedIdempotencyConfig::new().with_namespace(fresh_namespace());
    let store = redrive_worker::PostgresIdempotencyStore::connect(&postgres_url(), config)
        .await
        .expect("connect");
    store
        .claim("a", "x", Duration::from_millis(50))
        .await
        .expect("claim");
    store
        .mark_done("b", "x", Duration::from_millis(50))
        .await
        .expect("done");
    store.mark_done("c", "x", LONG).await.expect("done");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(store.purge_expired().await.expect("purge"), 2);
    assert_eq!(
        store.claim("c", "y", LONG).await.expect("claim"),
        Claim::Completed
    );
}

#[tokio::test]
async fn idempotency_from_url_fails_clearly_when_the_store_is_unreachable() {
    let config = SharedIdempotencyConfig::new().with_op_timeout(Duration::from_millis(500));
    let err = idempotency_from_url("memcached://127.0.0.1:1", config.clone())
        .await
        .expect_err("unknown scheme");
    assert!(
        matches!(err, IdempotencyStoreError::UnsupportedUrl { .. }),
        "{err}"
    );
    let err = idempotency_from_url("postgres://u:secret@127.0.0.1:1/db", config.clone())
        .await
        .expect_err("nothing listens on port 1");
    let shown = err.to_string();
    eprintln!("{shown}");
    assert!(!shown.contains("secret"), "{shown}");
    assert!(
        shown.contains("PostgreSQL idempotency store at postgres://…@127.0.0.1:1/db"),
        "{shown}"
    );
    assert!(
        matches!(err, IdempotencyStoreError::Postgres { .. }),
        "{err}"
    );
    let err = idempotency_from_url("redis://127.0.0.1:1/", config)
        .await
        .expect_err("nothing listens on port 1");
    let shown = err.to_string();
    eprintln!("{shown}");
    assert!(shown.contains("redis://127.0.0.1:1/"), "{shown}");
    assert!(
        matches!(
            err,
            IdempotencyStoreError::Redis { .. } | IdempotencyStoreError::Timeout { .. }
        ),
        "{err}"
    );
}

#[tokio::test]
async fn redis_idempotency_outage_is_an_error_not_an_answer() {
    let _ = redis_url();
    let mut redis = OwnRedis::start();
    let url = format!("redis://127.0.0.1:{}/", redis.1);
    let config = SharedIdempotencyConfig::new().with_op_timeout(Duration::from_millis(500));
    let mut store = None;
    for _ in 0..100 {
        if let Ok(s) = idempotency_from_url(&url, config.clone()).await {
            store = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let store = store.expect("redis-server did not come up");
    assert_eq!(begin(&store, "k", "a", LONG).await, Claim::Acquired);
    redis.kill();
    // Never "acquired" while the store is down: the worker retries such messages later.
    let err = store
        .try_begin("k2", "a", LONG)
        .await
        .expect_err("Redis is gone");
    eprintln!("{err}");
    assert!(err.to_string().contains(&url), "{err}");
    assert!(store.complete("k", "a", LONG).await.is_err());
}

/// A worker whose shared idempotency store goes down fails closed: the message is retried with
/// the backoff (a transient failure), its handler never runs unguarded; once Redis is back (a new
/// server on the same port) the message completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_with_an_unreachable_idempotency_store_retries_instead_of_running_unguarded() {
    use std::sync::atomic::{AtomicU32, Ordering};

    use redrive_worker::{Backoff, Idempotency, Jitter, KeySource, Message, Outcome, handler_fn};

    use crate::common::{Env, Running, eventually, quick};

    let _ = redis_url();
    let mut redis = OwnRedis::start();
    let port = redis.1;
    let url = format!("redis://127.0.0.1:{port}/");
    let config = SharedIdempotencyConfig::new().with_op_timeout(Duration::from_millis(300));
    let mut store = None;
    for _ in 0..100 {
        if let Ok(s) = idempotency_from_url(&url, config.clone()).await {
            store = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let store = store.expect("redis-server did not come up");
    redis.kill();

    let env = Env::redrive().await;
    let (queue, dlq) = env.queue_with_dlq("idem-down", 10, 30).await;
    env.send(&queue, r#"{"order_id":"o-1"}"#).await;
    let calls = std::sync::Arc::new(AtomicU32::new(0));
    let counted = std::sync::Arc::clone(&calls);
    let worker = quick(&env, &queue)
        .backoff(
            Backoff::exponential(Duration::from_secs(1), Duration::from_secs(1))
                .with_jitter(Jitter::None),
        )
        .idempotency(
            Idempotency::new(std::sync::Arc::new(store)).key(KeySource::json_field("order_id")),
        )
        .build(handler_fn(move |_m: Message| {
            counted.fetch_add(1, Ordering::SeqCst);
            async { Outcome::Done }
        }))
        .expect("worker");
    let stats = worker.stats();
    let running = Running::start(worker);
    eventually(Duration::from_secs(10), "two retries", || {
        let s = stats.snapshot();
        async move { s.retried >= 2 }
    })
    .await;
    assert_eq!(
        calls.load(Ordering::SeqCst),
        0,
        "handler ran without the guard"
    );

    // Redis back on the same port: the connection manager reconnects, the message completes.
    let mut back = None;
    for _ in 0..50 {
        let mut candidate = OwnRedis::start_on(port);
        tokio::time::sleep(Duration::from_millis(200)).await;
        if candidate.0.try_wait().ok().flatten().is_none() {
            back = Some(candidate);
            break;
        }
        candidate.kill();
    }
    let _back = back.expect("redis-server restarted on its port");
    eventually(Duration::from_secs(20), "the message completes", || {
        let s = stats.snapshot();
        async move { s.completed == 1 }
    })
    .await;
    let stats = running.stop().await;
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(stats.dead_lettered, 0, "{stats:?}");
    assert_eq!(env.counts(&dlq).await, (0, 0));
}

/// Two Lambda instances (two handlers, each with its own client of the shared store) get the
/// same record at once, as a duplicate delivery can: the handler runs once; the instance that
/// lost reports the record as failed (in progress elsewhere); redelivered after completion it
/// succeeds without running the handler.
async fn lambda_instances_share_the_guard(url: &str) {
    use std::sync::atomic::{AtomicU32, Ordering};

    use redrive_worker::{
        Idempotency, KeySource, LambdaHandler, Message, Outcome, SqsEvent, handler_fn,
    };

    let config = SharedIdempotencyConfig::new().with_namespace(fresh_namespace());
    let calls = std::sync::Arc::new(AtomicU32::new(0));
    let mut instances = Vec::new();
    for _ in 0..2 {
        let store = idempotency_from_url(url, config.clone())
            .await
            .expect("connect");
        let counted = std::sync::Arc::clone(&calls);
        instances.push(
            LambdaHandler::builder()
                .idempotency(
                    Idempotency::new(std::sync::Arc::new(store))
                        .key(KeySource::json_field("order_id")),
                )
                .build_lambda(handler_fn(move |_m: Message| {
                    counted.fetch_add(1, Ordering::SeqCst);
                    async {
                        tokio::time::sleep(Duration::from_millis(300)).await;
                        Outcome::Done
                    }
                }))
                .expect("lambda handler"),
        );
    }
    let event = |id: &str| -> SqsEvent {
        serde_json::from_value(serde_json::json!({"Records": [{
            "messageId": id, "receiptHandle": "rh", "body": r#"{"order_id":"o-7"}"#,
            "attributes": {"ApproximateReceiveCount": "1"}, "messageAttributes": {},
            "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:us-east-2:123456789012:orders",
            "awsRegion": "us-east-2"}]}))
        .expect("event")
    };
    let (a, b) = tokio::join!(
        instances[0].handle(event("m-a")),
        instances[1].handle(event("m-b"))
    );
    let mut failed: Vec<String> = [a.expect("handle"), b.expect("handle")]
        .into_iter()
        .flat_map(|r| r.batch_item_failures.into_iter().map(|f| f.item_identifier))
        .collect();
    failed.sort();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    // The failed copy comes back after the first completed: a duplicate, not reported.
    let again = instances[1]
        .handle(event(&failed[0]))
        .await
        .expect("handle");
    assert!(again.batch_item_failures.is_empty());
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_idempotency_lambda_instances_share_the_guard() {
    lambda_instances_share_the_guard(&redis_url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_idempotency_lambda_instances_share_the_guard() {
    lambda_instances_share_the_guard(&postgres_url()).await;
}
