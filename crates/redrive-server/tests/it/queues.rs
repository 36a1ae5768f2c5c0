//! Queue lifecycle: create, look up, list, delete, purge, tags, permissions.

use std::collections::HashSet;

use aws_sdk_sqs::operation::create_queue::CreateQueueError;
use aws_sdk_sqs::operation::get_queue_url::GetQueueUrlError;
use aws_sdk_sqs::operation::purge_queue::PurgeQueueError;
use aws_sdk_sqs::operation::send_message::SendMessageError;
use aws_sdk_sqs::types::QueueAttributeName;

use crate::common::*;
use crate::expect_err;

#[tokio::test]
async fn create_queue_returns_url_built_from_host() {
    let ts = TestServer::start().await;
    let url = ts.create("orders").await;
    assert_eq!(url, ts.queue_url("orders"));
    assert_eq!(url, format!("http://{}/000000000000/orders", ts.addr));
}

#[tokio::test]
async fn create_queue_is_idempotent_with_identical_attributes() {
    let ts = TestServer::start().await;
    let a = ts
        .create_with(
            "idem",
            &[("VisibilityTimeout", "45"), ("DelaySeconds", "2")],
        )
        .await;
    let b = ts
        .create_with(
            "idem",
            &[("VisibilityTimeout", "45"), ("DelaySeconds", "2")],
        )
        .await;
    assert_eq!(a, b);
    // Leaving attributes out is not a conflict either.
    let c = ts.create("idem").await;
    assert_eq!(a, c);
    let attrs = ts.attrs(&a, &["VisibilityTimeout"]).await;
    assert_eq!(attrs["VisibilityTimeout"], "45");
    let listed = ts.client.list_queues().send().await.unwrap();
    assert_eq!(listed.queue_urls(), std::slice::from_ref(&a));
}

#[tokio::test]
async fn create_queue_with_different_attributes_is_queue_already_exists() {
    let ts = TestServer::start().await;
    ts.create_with("dup", &[("VisibilityTimeout", "45")]).await;
    let err = ts
        .client
        .create_queue()
        .queue_name("dup")
        .attributes(QueueAttributeName::VisibilityTimeout, "46")
        .send()
        .await
        .unwrap_err();
    let (code, status, _) = err_parts(&err);
    assert_eq!(code, "QueueAlreadyExists");
    assert_eq!(status, 400);
    assert!(
        matches!(
            err.as_service_error(),
            Some(CreateQueueError::QueueNameExists(_))
        ),
        "{err:?}"
    );
    // The original attribute is untouched.
    let url = ts.queue_url("dup");
    assert_eq!(
        ts.attrs(&url, &["VisibilityTimeout"]).await["VisibilityTimeout"],
        "45"
    );
}

#[tokio::test]
async fn create_queue_rejects_invalid_names() {
    let ts = TestServer::start().await;
    let long = "a".repeat(81);
    for name in [
        "bad name",
        "bad.name",
        "slash/name",
        "ünïcode",
        long.as_str(),
        "q.fifo",
    ] {
        let (code, status, _) = expect_err!(ts.client.create_queue().queue_name(name).send());
        assert_eq!(code, "InvalidParameterValue", "name {name:?}");
        assert_eq!(status, 400, "name {name:?}");
    }
    // A FIFO queue must end in .fifo.
    let (code, _, _) = expect_err!(
        ts.client
            .create_queue()
            .queue_name("notfifo")
            .attributes(QueueAttributeName::FifoQueue, "true")
            .send()
    );
    assert_eq!(code, "InvalidParameterValue");
    // 80 characters of every allowed kind is fine.
    let ok = format!("{}-_{}", "A".repeat(39), "9".repeat(39));
    assert_eq!(ok.len(), 80);
    ts.create(&ok).await;
    let listed = ts.client.list_queues().send().await.unwrap();
    assert_eq!(listed.queue_urls(), [ts.queue_url(&ok)]);
}

#[tokio::test]
async fn get_queue_url_finds_existing_queue() {
    let ts = TestServer::start().await;
    let url = ts.create("lookup").await;
    let out = ts
        .client
        .get_queue_url()
        .queue_name("lookup")
        .send()
        .await
        .unwrap();
    assert_eq!(out.queue_url(), Some(url.as_str()));
}

#[tokio::test]
async fn get_queue_url_of_unknown_queue_is_queue_does_not_exist() {
    let ts = TestServer::start().await;
    ts.create("Lookup").await;
    // Names are case-sensitive.
    for name in ["nope", "lookup"] {
        let err = ts
            .client
            .get_queue_url()
            .queue_name(name)
            .send()
            .await
            .unwrap_err();
        // The typed variant only maps when the server sends x-amzn-query-error.
        assert!(
            matches!(
                err.as_service_error(),
                Some(GetQueueUrlError::QueueDoesNotExist(_))
            ),
            "{err:?}"
        );
        let (code, status, _) = err_parts(&err);
        assert_eq!(code, "AWS.SimpleQueueService.NonExistentQueue");
        assert_eq!(status, 400);
    }
}

#[tokio::test]
async fn list_queues_filters_by_prefix() {
    let ts = TestServer::start().await;
    for name in ["alpha-1", "alpha-2", "beta-1", "Alpha-3"] {
        ts.create(name).await;
    }
    let out = ts
        .client
        .list_queues()
        .queue_name_prefix("alpha")
        .send()
        .await
        .unwrap();
    let got: HashSet<&str> = out.queue_urls().iter().map(String::as_str).collect();
    let want: HashSet<String> = ["alpha-1", "alpha-2"]
        .iter()
        .map(|n| ts.queue_url(n))
        .collect();
    assert_eq!(got, want.iter().map(String::as_str).collect());
    assert_eq!(out.next_token(), None);

    let all = ts.client.list_queues().send().await.unwrap();
    assert_eq!(all.queue_urls().len(), 4);
    assert_eq!(all.next_token(), None);

    let none = ts
        .client
        .list_queues()
        .queue_name_prefix("gamma")
        .send()
        .await
        .unwrap();
    assert!(none.queue_urls().is_empty());
}

#[tokio::test]
async fn list_queues_pages_with_max_results_and_next_token() {
    let ts = TestServer::start().await;
    let names: Vec<String> = (0..5).map(|i| format!("page-{i}")).collect();
    for n in &names {
        ts.create(n).await;
    }
    ts.create("other").await;
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = Vec::new();
    loop {
        let out = ts
            .client
            .list_queues()
            .queue_name_prefix("page-")
            .max_results(2)
            .set_next_token(token.clone())
            .send()
            .await
            .unwrap();
        pages.push(out.queue_urls().len());
        seen.extend(out.queue_urls().iter().cloned());
        match out.next_token() {
            Some(t) => token = Some(t.to_string()),
            None => break,
        }
        assert!(pages.len() < 10, "paging does not terminate");
    }
    assert_eq!(pages, [2, 2, 1]);
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), 5, "{seen:?}");
    for n in &names {
        assert!(seen.contains(&ts.queue_url(n)), "{n} missing from {seen:?}");
    }
}

#[tokio::test]
async fn list_queues_rejects_out_of_range_max_results() {
    let ts = TestServer::start().await;
    for n in [0, 1001] {
        let (code, status, _) = expect_err!(ts.client.list_queues().max_results(n).send());
        assert_eq!(code, "InvalidParameterValue", "MaxResults {n}");
        assert_eq!(status, 400);
    }
}

#[tokio::test]
async fn deleted_queue_is_gone() {
    let ts = TestServer::start().await;
    let url = ts.create("doomed").await;
    ts.send(&url, "x").await;
    ts.client
        .delete_queue()
        .queue_url(&url)
        .send()
        .await
        .unwrap();

    let err = ts
        .client
        .send_message()
        .queue_url(&url)
        .message_body("y")
        .send()
        .await
        .unwrap_err();
    assert!(
        matches!(
            err.as_service_error(),
            Some(SendMessageError::QueueDoesNotExist(_))
        ),
        "{err:?}"
    );
    assert_eq!(code(&err), "AWS.SimpleQueueService.NonExistentQueue");
    let (code, status, _) = expect_err!(ts.client.get_queue_url().queue_name("doomed").send());
    assert_eq!(code, "AWS.SimpleQueueService.NonExistentQueue");
    assert_eq!(status, 400);
    let (code, _, _) = expect_err!(ts.client.delete_queue().queue_url(&url).send());
    assert_eq!(code, "AWS.SimpleQueueService.NonExistentQueue");
    assert!(
        ts.client
            .list_queues()
            .send()
            .await
            .unwrap()
            .queue_urls()
            .is_empty()
    );
}

#[tokio::test]
async fn recreating_a_deleted_queue_within_60s_is_queue_deleted_recently() {
    let ts = TestServer::start().await;
    let url = ts.create("phoenix").await;
    ts.client
        .delete_queue()
        .queue_url(&url)
        .send()
        .await
        .unwrap();
    let err = ts
        .client
        .create_queue()
        .queue_name("phoenix")
        .send()
        .await
        .unwrap_err();
    assert!(
        matches!(
            err.as_service_error(),
            Some(CreateQueueError::QueueDeletedRecently(_))
        ),
        "{err:?}"
    );
    let (code, status, _) = err_parts(&err);
    assert_eq!(code, "AWS.SimpleQueueService.QueueDeletedRecently");
    assert_eq!(status, 400);
    // Another name is unaffected.
    ts.create("phoenix2").await;
}

#[tokio::test]
async fn purge_queue_empties_and_rate_limits() {
    let ts = TestServer::start().await;
    let url = ts.create("purge").await;
    for i in 0..3 {
        ts.send(&url, &format!("m{i}")).await;
    }
    // One in flight, too: purge removes in-flight messages as well.
    assert_eq!(ts.receive(&url, 1, Some(30)).await.len(), 1);
    assert_eq!(ts.counts(&url).await, (2, 1, 0));
    ts.client
        .purge_queue()
        .queue_url(&url)
        .send()
        .await
        .unwrap();
    assert_eq!(ts.counts(&url).await, (0, 0, 0));
    assert!(ts.receive(&url, 10, None).await.is_empty());

    let err = ts
        .client
        .purge_queue()
        .queue_url(&url)
        .send()
        .await
        .unwrap_err();
    assert!(
        matches!(
            err.as_service_error(),
            Some(PurgeQueueError::PurgeQueueInProgress(_))
        ),
        "{err:?}"
    );
    let (code, status, _) = err_parts(&err);
    assert_eq!(code, "AWS.SimpleQueueService.PurgeQueueInProgress");
    assert_eq!(status, 403);

    // Messages sent after the purge are kept.
    ts.send(&url, "after").await;
    let got = ts.receive(&url, 10, None).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].body(), Some("after"));
}

#[tokio::test]
async fn tags_on_create_and_tag_untag_list() {
    let ts = TestServer::start().await;
    let url = ts
        .client
        .create_queue()
        .queue_name("tagged")
        .tags("team", "core")
        .tags("env", "test")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let tags = ts
        .client
        .list_queue_tags()
        .queue_url(&url)
        .send()
        .await
        .unwrap()
        .tags
        .unwrap_or_default();
    assert_eq!(tags.len(), 2);
    assert_eq!(tags["team"], "core");
    assert_eq!(tags["env"], "test");

    ts.client
        .tag_queue()
        .queue_url(&url)
        .tags("env", "prod")
        .tags("cost", "42")
        .send()
        .await
        .unwrap();
    ts.client
        .untag_queue()
        .queue_url(&url)
        .tag_keys("team")
        .send()
        .await
        .unwrap();
    let tags = ts
        .client
        .list_queue_tags()
        .queue_url(&url)
        .send()
        .await
        .unwrap()
        .tags
        .unwrap_or_default();
    assert_eq!(tags.len(), 2, "{tags:?}");
    assert_eq!(tags["env"], "prod");
    assert_eq!(tags["cost"], "42");
    assert!(!tags.contains_key("team"));

    // A queue without tags lists none.
    let plain = ts.create("plain").await;
    let tags = ts
        .client
        .list_queue_tags()
        .queue_url(&plain)
        .send()
        .await
        .unwrap()
        .tags
        .unwrap_or_default();
    assert!(tags.is_empty());
}

fn policy_sids(policy: &str) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_str(policy).expect("policy is JSON");
    v["Statement"]
        .as_array()
        .expect("Statement list")
        .iter()
        .map(|s| s["Sid"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test]
async fn add_and_remove_permission_edit_the_policy() {
    let ts = TestServer::start().await;
    let url = ts.create("perm").await;
    ts.client
        .add_permission()
        .queue_url(&url)
        .label("p1")
        .aws_account_ids("111122223333")
        .actions("SendMessage")
        .send()
        .await
        .unwrap();
    ts.client
        .add_permission()
        .queue_url(&url)
        .label("p2")
        .aws_account_ids("111122223333")
        .aws_account_ids("444455556666")
        .actions("ReceiveMessage")
        .actions("DeleteMessage")
        .send()
        .await
        .unwrap();
    let policy = ts
        .attrs(&url, &["Policy"])
        .await
        .remove("Policy")
        .expect("Policy");
    assert_eq!(policy_sids(&policy), ["p1", "p2"]);
    let v: serde_json::Value = serde_json::from_str(&policy).unwrap();
    let p1 = &v["Statement"][0];
    assert_eq!(p1["Effect"], "Allow");
    assert_eq!(p1["Resource"], TestServer::arn("perm"));
    assert!(p1["Action"].to_string().contains("SQS:SendMessage"), "{p1}");
    assert!(p1["Principal"].to_string().contains("111122223333"), "{p1}");

    // Same label again.
    let (code, status, _) = expect_err!(
        ts.client
            .add_permission()
            .queue_url(&url)
            .label("p1")
            .aws_account_ids("111122223333")
            .actions("SendMessage")
            .send()
    );
    assert_eq!(code, "InvalidParameterValue");
    assert_eq!(status, 400);

    ts.client
        .remove_permission()
        .queue_url(&url)
        .label("p1")
        .send()
        .await
        .unwrap();
    let policy = ts
        .attrs(&url, &["Policy"])
        .await
        .remove("Policy")
        .expect("Policy");
    assert_eq!(policy_sids(&policy), ["p2"]);

    let (code, status, _) = expect_err!(
        ts.client
            .remove_permission()
            .queue_url(&url)
            .label("p1")
            .send()
    );
    assert_eq!(code, "InvalidParameterValue");
    assert_eq!(status, 400);

    ts.client
        .remove_permission()
        .queue_url(&url)
        .label("p2")
        .send()
        .await
        .unwrap();
    let policy = ts.attrs(&url, &["Policy"]).await.remove("Policy");
    assert!(
        policy
            .as_deref()
            .is_none_or(|p| p.is_empty() || policy_sids(p).is_empty()),
        "{policy:?}"
    );
}
