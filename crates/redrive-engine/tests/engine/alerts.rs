//! Alerts (manual clock): each rule kind over the minute history, INSUFFICIENT_DATA before
//! data, the residue/growth text, the pre-existing-backlog text, one ALARM and one OK
//! notification per episode, silences, bad input, and a reopen of a redb file that keeps
//! rules, states, history and the outbox without notifying twice.

use std::sync::Arc;

use redrive_engine::alerts::{
    AlarmState, AlertRuleRequest, Condition, EvaluationReport, NotificationEvent, SilenceRequest,
    Webhook, WebhookFormat,
};
use redrive_engine::{Engine, EngineConfig, ManualClock};

use crate::common::*;

const MIN: u64 = 60_000;

/// Moves to the next minute (+1 s), writes the minute that ended and evaluates it.
async fn tick(h: &H) -> EvaluationReport {
    tick_engine(&h.engine, &h.clock).await
}

async fn tick_engine(engine: &Engine, clock: &ManualClock) -> EvaluationReport {
    let now = engine.clock_now_ms();
    clock.advance_ms(MIN - now % MIN + 1_000);
    engine.flush_history().await;
    engine.evaluate_alerts().await
}

fn rule(name: &str, queue: &str, condition: Condition) -> AlertRuleRequest {
    AlertRuleRequest {
        name: name.into(),
        queue: queue.into(),
        condition,
        severity: Some("P1".into()),
        webhooks: vec![Webhook {
            url: "http://127.0.0.1:9/hook".into(),
            format: WebhookFormat::Json,
        }],
    }
}

fn state_of(engine: &Engine, rule: &str, queue: &str) -> Option<AlarmState> {
    engine
        .alert_rule(rule)
        .ok()?
        .states
        .iter()
        .find(|s| s.queue == queue)
        .map(|s| s.state)
}

#[tokio::test]
async fn depth_rule_goes_insufficient_then_alarm_then_ok_with_one_notification_each_way() {
    let h = H::new();
    let dlq = h.create("orders-dlq", &[]).await;
    h.engine
        .add_alert_rule(
            &h.ctx,
            rule(
                "dlq-depth",
                "*-dlq",
                Condition::Depth {
                    threshold: 1,
                    minutes: 3,
                },
            ),
        )
        .await
        .unwrap();
    // No history yet for the minute being judged.
    let r = h.engine.evaluate_alerts().await;
    assert_eq!(r.evaluated, 1);
    assert!(r.transitions.is_empty());
    assert_eq!(
        state_of(&h.engine, "dlq-depth", "orders-dlq"),
        None,
        "no state before the first judged minute"
    );
    h.send(&dlq, "a").await;
    h.send(&dlq, "b").await;
    // Minute 1 and 2: all ≥ 1 but fewer than 3 minutes.
    let r = tick(&h).await;
    assert!(r.transitions.is_empty(), "{r:?}");
    tick(&h).await;
    assert_eq!(
        state_of(&h.engine, "dlq-depth", "orders-dlq"),
        None,
        "still INSUFFICIENT_DATA (initial state, no transition)"
    );
    let r = tick(&h).await;
    assert_eq!(r.transitions.len(), 1, "{r:?}");
    let t = &r.transitions[0];
    assert_eq!(
        (t.old_state, t.new_state),
        (AlarmState::InsufficientData, AlarmState::Alarm)
    );
    assert!(
        t.reason.contains("2 messages visible, ≥ 1 for 3 min"),
        "{}",
        t.reason
    );
    assert!(t.reason.contains("growing by"), "{}", t.reason);
    assert_eq!(r.notifications, 1);
    // Still in ALARM: no new transition nor notification; after 60 quiet minutes it is residue.
    for _ in 0..3 {
        let r = tick(&h).await;
        assert!(r.transitions.is_empty() && r.notifications == 0);
    }
    let out = h.engine.pending_alert_notifications();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].event, NotificationEvent::Alarm);
    // Drain: back to OK, one resolve queued.
    let msgs = h.recv(&dlq, 10, None).await;
    for m in &msgs {
        h.delete(&dlq, &m.receipt_handle).await.unwrap();
    }
    let r = tick(&h).await;
    assert_eq!(r.transitions.len(), 1);
    assert_eq!(r.transitions[0].new_state, AlarmState::Ok);
    assert_eq!(r.notifications, 1);
    let events: Vec<_> = h
        .engine
        .pending_alert_notifications()
        .iter()
        .map(|n| n.event)
        .collect();
    assert_eq!(
        events,
        vec![NotificationEvent::Alarm, NotificationEvent::Ok]
    );
    let hist = h.engine.alert_history(Some("dlq-depth"), None, 10);
    assert_eq!(hist.len(), 2);
    assert_eq!(hist[0].new_state, AlarmState::Ok, "newest first");
}

#[tokio::test]
async fn a_quiet_backlog_is_called_residue() {
    let h = H::new();
    let q = h.create("stale-dlq", &[]).await;
    h.send(&q, "a").await;
    // An hour passes with the message sitting there (history written every minute).
    for _ in 0..70 {
        tick(&h).await;
    }
    let rule = h
        .engine
        .add_alert_rule(
            &h.ctx,
            rule(
                "stale",
                "stale-dlq",
                Condition::Depth {
                    threshold: 1,
                    minutes: 1,
                },
            ),
        )
        .await
        .unwrap();
    assert_eq!(rule.backlog_at_creation.get("stale-dlq"), Some(&1));
    let r = tick(&h).await;
    assert_eq!(r.transitions.len(), 1);
    let reason = &r.transitions[0].reason;
    assert!(
        reason.contains("residue: 1 messages, none arrived in the last 1 h"),
        "{reason}"
    );
    assert!(
        reason.contains("backlog existed before this rule was created at 2023-11-14T"),
        "{reason}"
    );
}

#[tokio::test]
async fn age_arrivals_and_growth_rules() {
    let h = H::new();
    let q = h.create("work", &[]).await;
    for (name, c) in [
        ("old", Condition::Age { seconds: 180 }),
        (
            "busy",
            Condition::Arrivals {
                count: 10,
                window_minutes: 60,
            },
        ),
        (
            "growing",
            Condition::Growth {
                increase: 5,
                window_minutes: 2,
            },
        ),
    ] {
        h.engine
            .add_alert_rule(&h.ctx, rule(name, "work", c))
            .await
            .unwrap();
    }
    // Minute 1: empty queue → age and arrivals OK; growth lacks its start minute.
    tick(&h).await;
    assert_eq!(state_of(&h.engine, "old", "work"), Some(AlarmState::Ok));
    assert_eq!(state_of(&h.engine, "busy", "work"), Some(AlarmState::Ok));
    assert_eq!(state_of(&h.engine, "growing", "work"), None);
    for i in 0..6 {
        h.send(&q, &format!("m{i}")).await;
    }
    tick(&h).await;
    assert_eq!(
        state_of(&h.engine, "growing", "work"),
        None,
        "the window's first minute predates the history"
    );
    for i in 0..6 {
        h.send(&q, &format!("n{i}")).await;
    }
    let r = tick(&h).await;
    let by_rule = |n: &str| r.transitions.iter().find(|t| t.rule == n).cloned();
    let grow = by_rule("growing").expect("growth transition");
    assert_eq!(grow.new_state, AlarmState::Alarm);
    assert!(
        grow.reason.contains("depth went from 0 to 12 over 2 min"),
        "{}",
        grow.reason
    );
    let busy = by_rule("busy").expect("arrivals transition");
    assert!(
        busy.reason
            .contains("12 messages arrived in the last 60 min (≥ 10)"),
        "{}",
        busy.reason
    );
    // The first messages are now three minutes old.
    let r = tick(&h).await;
    let old = r
        .transitions
        .iter()
        .find(|t| t.rule == "old")
        .expect("age transition");
    assert_eq!(old.new_state, AlarmState::Alarm);
    assert!(old.reason.contains("oldest message is"), "{}", old.reason);
}

#[tokio::test]
async fn dead_letter_arrivals_count_for_a_dlq() {
    let h = H::new();
    let dlq = h.create("pay-dlq", &[]).await;
    let policy = redrive_policy(&h.arn(&dlq), 1);
    let src = h.create("pay", &[("RedrivePolicy", &policy)]).await;
    h.engine
        .add_alert_rule(
            &h.ctx,
            rule(
                "dlq-arrivals",
                "pay-dlq",
                Condition::Arrivals {
                    count: 2,
                    window_minutes: 60,
                },
            ),
        )
        .await
        .unwrap();
    h.send(&src, "a").await;
    h.send(&src, "b").await;
    h.recv(&src, 10, Some(0)).await;
    // The second receive moves both to the DLQ.
    h.recv(&src, 10, Some(0)).await;
    let r = tick(&h).await;
    assert_eq!(r.transitions.len(), 1, "{r:?}");
    assert!(
        r.transitions[0]
            .reason
            .contains("2 messages arrived in the last 60 min"),
        "{}",
        r.transitions[0].reason
    );
}

#[tokio::test]
async fn a_silence_keeps_transitions_but_queues_nothing() {
    let h = H::new();
    let q = h.create("quiet-dlq", &[]).await;
    h.engine
        .add_alert_rule(
            &h.ctx,
            rule(
                "d",
                "quiet-dlq",
                Condition::Depth {
                    threshold: 1,
                    minutes: 1,
                },
            ),
        )
        .await
        .unwrap();
    let s = h
        .engine
        .add_silence(SilenceRequest {
            rule: Some("d".into()),
            queue: None,
            until: None,
            duration: Some("10m".into()),
            comment: Some("maintenance".into()),
        })
        .await
        .unwrap();
    h.send(&q, "x").await;
    let r = tick(&h).await;
    assert_eq!(r.transitions.len(), 1);
    assert_eq!(r.transitions[0].silenced_by.as_deref(), Some(s.id.as_str()));
    assert_eq!(r.notifications, 0);
    assert!(h.engine.pending_alert_notifications().is_empty());
    // Resolved under the silence: no OK either (its ALARM was never sent).
    let m = h.recv(&q, 1, None).await;
    h.delete(&q, &m[0].receipt_handle).await.unwrap();
    let r = tick(&h).await;
    assert_eq!(r.transitions[0].new_state, AlarmState::Ok);
    assert!(h.engine.pending_alert_notifications().is_empty());
    // A removed silence no longer holds anything back.
    h.engine.remove_silence(&s.id).await.unwrap();
    h.send(&q, "y").await;
    let r = tick(&h).await;
    assert_eq!(r.notifications, 1);
}

#[tokio::test]
async fn bad_rules_and_silences_are_refused_and_nothing_is_added() {
    let h = H::new();
    let bad = [
        rule("", "q", Condition::Age { seconds: 1 }),
        rule("a b", "q", Condition::Age { seconds: 1 }),
        rule("x", "q/1", Condition::Age { seconds: 1 }),
        rule(
            "x",
            "q",
            Condition::Depth {
                threshold: 0,
                minutes: 1,
            },
        ),
        rule(
            "x",
            "q",
            Condition::Growth {
                increase: 1,
                window_minutes: 0,
            },
        ),
        AlertRuleRequest {
            webhooks: vec![Webhook {
                url: "ftp://x".into(),
                format: WebhookFormat::Slack,
            }],
            ..rule("x", "q", Condition::Age { seconds: 1 })
        },
        AlertRuleRequest {
            webhooks: vec![Webhook {
                url: "http://host/a b".into(),
                format: WebhookFormat::Json,
            }],
            ..rule("x", "q", Condition::Age { seconds: 1 })
        },
    ];
    for r in bad {
        assert!(h.engine.add_alert_rule(&h.ctx, r).await.is_err());
    }
    assert!(h.engine.alert_rules().is_empty());
    h.engine
        .add_alert_rule(&h.ctx, rule("x", "q", Condition::Age { seconds: 1 }))
        .await
        .unwrap();
    assert!(
        h.engine
            .add_alert_rule(&h.ctx, rule("x", "q", Condition::Age { seconds: 1 }))
            .await
            .is_err(),
        "duplicate name"
    );
    let silence = |rule: Option<&str>, duration: Option<&str>| SilenceRequest {
        rule: rule.map(String::from),
        queue: None,
        until: None,
        duration: duration.map(String::from),
        comment: None,
    };
    assert!(
        h.engine
            .add_silence(silence(None, Some("1h")))
            .await
            .is_err()
    );
    assert!(
        h.engine
            .add_silence(silence(Some("nope"), Some("1h")))
            .await
            .is_err()
    );
    assert!(
        h.engine
            .add_silence(silence(Some("x"), Some("soon")))
            .await
            .is_err()
    );
    assert!(
        h.engine
            .add_silence(silence(Some("x"), None))
            .await
            .is_err()
    );
    assert!(h.engine.silences().is_empty());
    assert_eq!(h.engine.alert_rules().len(), 1);
    h.engine.remove_alert_rule("x").await.unwrap();
    assert!(h.engine.remove_alert_rule("x").await.is_err());
}

#[tokio::test]
async fn a_redb_reopen_keeps_rules_states_history_and_the_outbox_without_notifying_twice() {
    use redrive_engine::store::{DurabilityMode, RedbStore};

    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0));
    let open = || {
        let store = Arc::new(RedbStore::open(dir.path(), DurabilityMode::Strict).unwrap());
        let engine = Engine::open(EngineConfig::default(), store.clone(), clock.clone());
        (engine, store)
    };
    let (engine, store) = open();
    let url = engine
        .create_queue(
            &ctx(),
            redrive_core::api::CreateQueueInput {
                queue_name: "r-dlq".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .queue_url;
    engine
        .add_alert_rule(
            &ctx(),
            rule(
                "r",
                "r-dlq",
                Condition::Depth {
                    threshold: 1,
                    minutes: 1,
                },
            ),
        )
        .await
        .unwrap();
    engine
        .send_message(
            &ctx(),
            redrive_core::api::SendMessageInput {
                queue_url: url,
                message_body: Some("x".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let r = tick_engine(&engine, &clock).await;
    assert_eq!(r.transitions.len(), 1);
    let rules_before = engine.alert_rules();
    let history_before = engine.alert_history(None, None, 100);
    let outbox_before = engine.pending_alert_notifications();
    assert_eq!(outbox_before.len(), 1);
    drop(engine);
    store.shutdown();
    drop(store);

    let (engine, _store) = open();
    let rules_after = engine.alert_rules();
    assert_eq!(rules_after.len(), 1);
    assert_eq!(rules_after[0].rule, rules_before[0].rule);
    assert_eq!(rules_after[0].states, rules_before[0].states);
    assert_eq!(rules_after[0].states[0].state, AlarmState::Alarm);
    assert_eq!(engine.alert_history(None, None, 100), history_before);
    assert_eq!(engine.pending_alert_notifications(), outbox_before);
    // The next minute is still ALARM: no transition, nothing queued again.
    let r = tick_engine(&engine, &clock).await;
    assert!(r.transitions.is_empty() && r.notifications == 0, "{r:?}");
    assert_eq!(engine.pending_alert_notifications().len(), 1);
    // Delivered, it leaves the outbox for good.
    let due = engine.due_alert_notifications(10);
    assert_eq!(due.len(), 1);
    engine.alert_notification_result(&due[0].id, Ok(())).await;
    assert!(engine.pending_alert_notifications().is_empty());
}

#[tokio::test]
async fn failed_deliveries_back_off_exponentially() {
    let h = H::new();
    let q = h.create("b-dlq", &[]).await;
    h.engine
        .add_alert_rule(
            &h.ctx,
            rule(
                "b",
                "b-dlq",
                Condition::Depth {
                    threshold: 1,
                    minutes: 1,
                },
            ),
        )
        .await
        .unwrap();
    h.send(&q, "x").await;
    tick(&h).await;
    let mut delays = Vec::new();
    for _ in 0..10 {
        let due = h.engine.due_alert_notifications(10);
        assert_eq!(due.len(), 1);
        assert!(
            h.engine.due_alert_notifications(10).is_empty(),
            "handed out once"
        );
        h.engine
            .alert_notification_result(&due[0].id, Err("500".into()))
            .await;
        let next = h.engine.next_alert_retry_ms().unwrap();
        let delay = next - h.engine.clock_now_ms();
        delays.push(delay / 1000);
        assert!(h.engine.due_alert_notifications(10).is_empty());
        h.advance_ms(delay);
    }
    assert_eq!(delays, vec![1, 2, 4, 8, 16, 32, 64, 128, 256, 300]);
    // The last attempts: dropped after MAX_ATTEMPTS.
    for _ in 0..2 {
        let due = h.engine.due_alert_notifications(10);
        h.engine
            .alert_notification_result(&due[0].id, Err("500".into()))
            .await;
        h.advance_ms(300_000);
    }
    assert!(h.engine.pending_alert_notifications().is_empty());
}

#[tokio::test(start_paused = true)]
async fn the_history_task_evaluates_right_after_each_minute_write() {
    let h = H::new();
    let q = h.create("bg-dlq", &[]).await;
    h.engine
        .add_alert_rule(
            &h.ctx,
            rule(
                "bg",
                "bg-dlq",
                Condition::Depth {
                    threshold: 1,
                    minutes: 1,
                },
            ),
        )
        .await
        .unwrap();
    h.send(&q, "x").await;
    h.engine.spawn_history();
    // Let the task compute its wait (to the next minute boundary) before the clock moves.
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    // The engine clock crosses the minute; tokio's paused clock lets the task's sleep end.
    let now = h.engine.clock_now_ms();
    h.advance_ms(MIN - now % MIN + 1_000);
    tokio::time::sleep(std::time::Duration::from_millis(MIN - now % MIN + 1_000)).await;
    for _ in 0..1000 {
        if !h.engine.alert_history(Some("bg"), None, 10).is_empty() {
            break;
        }
        tokio::task::yield_now().await;
    }
    let hist = h.engine.alert_history(Some("bg"), None, 10);
    assert_eq!(hist.len(), 1, "evaluated by the background task");
    assert_eq!(hist[0].new_state, AlarmState::Alarm);
    assert_eq!(h.engine.pending_alert_notifications().len(), 1);
}
