//! The review function against moto: a poison message goes to the events DLQ, the
//! review function turns it into a review item, a person replays it once the code is fixed and
//! the event is processed once; discarding closes an item; the review queue takes canonical
//! events; closed items carry the TTL attribute and open ones do not.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_sqs::types::QueueAttributeName;
use callhook::domain::event::CanonicalEvent;
use callhook::domain::review::{ReviewItem, ReviewStatus};
use callhook::ports::CallStore;
use callhook::ports::ReviewAdmin;
use callhook_cli::commands::review;
use callhook_cli::local::poller;
use callhook_cli::target::Target;
use callhook_integration::{Stack, telnyx_request};
use chrono::Utc;

fn target(stack: &Stack, name: &str) -> Target {
    let dir: PathBuf = std::env::temp_dir().join(format!(
        "callhook-review-fn-{name}-{}-{}",
        std::process::id(),
        Utc::now().timestamp_nanos_opt().unwrap_or_default()
    ));
    Target::local(&stack.dev_state(), &dir).unwrap()
}

fn review_function(stack: &Stack) -> callhook_review::ReviewFunction {
    callhook_review::build(&stack.function_env("ReviewFunction")).expect("review configuration")
}

/// The review function on `queue` (logical id) until it is empty.
async fn pump_review(
    stack: &Stack,
    function: &callhook_review::ReviewFunction,
    queue: &str,
) -> usize {
    stack
        .pump(&stack.provisioned.queues[queue], |event| async move {
            callhook_review::process_batch(function, &event).await
        })
        .await
}

async fn send(stack: &Stack, queue: &str, body: &str) {
    stack
        .sqs
        .send_message()
        .queue_url(&stack.provisioned.queues[queue])
        .message_body(body)
        .send()
        .await
        .unwrap();
}

async fn expires_at(stack: &Stack, pk: &str) -> Option<i64> {
    stack
        .dynamo
        .get_item()
        .table_name(&stack.provisioned.tables["ReviewTable"])
        .key("pk", AttributeValue::S(pk.to_owned()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item()
        .and_then(|item| item.get("expires_at"))
        .and_then(|v| v.as_n().ok())
        .map(|n| n.parse().unwrap())
}

/// Runs the lifecycle on the events queue (visibility 1 s) until the poison message has been
/// moved to the events DLQ by the queue's redrive policy.
async fn fail_until_dead_lettered(stack: &Stack, function: &callhook_lifecycle::LifecycleFunction) {
    let started = Instant::now();
    let dlq = &stack.provisioned.queues["EventsDeadLetterQueue"];
    while started.elapsed() < Duration::from_secs(90) {
        poller::poll_once(
            &stack.sqs,
            stack.events_queue(),
            10,
            2,
            |event| async move { callhook_lifecycle::process_batch(function, &event).await },
        )
        .await
        .unwrap();
        let depth = stack.queue_depth(dlq).await;
        if depth > 0 {
            return;
        }
    }
    panic!("the poison message never reached the events DLQ");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_message_goes_to_review_and_its_replay_after_the_fix_is_processed_once() {
    let stack = Stack::start().await;
    stack
        .sqs
        .set_queue_attributes()
        .queue_url(stack.events_queue())
        .attributes(QueueAttributeName::VisibilityTimeout, "1")
        .send()
        .await
        .unwrap();

    // An authentic event is stored, but the message queued for it is one the lifecycle cannot
    // read (as if an older ingest had written it): it fails every receive.
    let body = r#"{"data":{"event_type":"call.initiated","id":"p-1","occurred_at":"2024-01-01T00:00:00Z","payload":{"call_session_id":"sess-p","direction":"incoming","from":"+15550100","to":"+15550199"},"record_type":"event"},"meta":{"attempt":1}}"#;
    let ingest = callhook_ingest::build(&stack.ingest_env()).unwrap();
    assert_eq!(
        ingest
            .handle(&telnyx_request(body, Utc::now()))
            .await
            .status(),
        200
    );
    assert_eq!(stack.drain(stack.events_queue()).await.len(), 1);
    let poison = r#"{"event_id":"telnyx#p-1","provider":"telnyx","schema":"v0"}"#;
    send(&stack, "EventsQueue", poison).await;

    let lifecycle = stack.lifecycle();
    fail_until_dead_lettered(&stack, &lifecycle).await;
    assert_eq!(stack.event_status("telnyx#p-1").await, "RECEIVED");

    // The review function keeps the dead letter as it was, naming the event.
    let function = review_function(&stack);
    assert_eq!(
        pump_review(&stack, &function, "EventsDeadLetterQueue").await,
        1
    );
    let store = &function.review;
    let open = store.list(Some(ReviewStatus::Open), None).await.unwrap();
    assert_eq!(open.len(), 1, "{open:?}");
    let item = &open[0];
    assert!(item.pk.starts_with("dlq#events#"), "{}", item.pk);
    assert_eq!(item.reason, "dlq:events");
    assert_eq!(item.subject_id, "telnyx#p-1");
    assert_eq!(
        item.attempts, 5,
        "the receive count when it was dead-lettered"
    );
    assert_eq!(item.payload["schema"], "v0");
    assert_eq!(
        expires_at(&stack, &item.pk).await,
        None,
        "open items never expire"
    );

    // The fix is the current code: replay normalizes the stored raw bytes again.
    let target = target(&stack, "poison");
    review::replay(&target, store, &item.pk, false)
        .await
        .unwrap();
    let replayed = store.get(&item.pk).await.unwrap().unwrap();
    assert_eq!(replayed.status, ReviewStatus::Replayed);
    let expires = expires_at(&stack, &item.pk)
        .await
        .expect("closed items expire");
    let days = (expires - Utc::now().timestamp()) as f64 / 86_400.0;
    assert!((29.9..=30.1).contains(&days), "{days} days");

    assert_eq!(stack.pump_lifecycle(&lifecycle).await, 1);
    assert_eq!(stack.event_status("telnyx#p-1").await, "PROCESSED");
    let call = lifecycle.calls.get("telnyx#sess-p").await.unwrap().unwrap();
    assert_eq!(call.record.event_count, 1);

    // Again: the event is processed, so nothing is sent, and nothing changes.
    let err = review::replay(&target, store, &item.pk, false)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("skipped_processed"), "{err:#}");
    assert_eq!(stack.pump_lifecycle(&lifecycle).await, 0);
    let again = lifecycle.calls.get("telnyx#sess-p").await.unwrap().unwrap();
    assert_eq!(again.record.version, call.record.version);
    assert_eq!(
        stack
            .count_items(&stack.provisioned.tables["ReviewTable"])
            .await,
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_of_every_queue_are_kept_discarded_or_sent_back_to_their_queue() {
    let stack = Stack::start().await;
    let function = review_function(&stack);
    let target = target(&stack, "dlqs");
    let store = &function.review;

    send(&stack, "EventsDeadLetterQueue", "\u{1}not JSON").await;
    let dispatch = r#"{"dispatch_id":"telnyx#c1#completed","call_id":"telnyx#c1"}"#;
    send(&stack, "DispatchDeadLetterQueue", dispatch).await;
    send(
        &stack,
        "CallbackDeadLetterQueue",
        r#"{"call_id":"telnyx#c2"}"#,
    )
    .await;
    for queue in [
        "EventsDeadLetterQueue",
        "DispatchDeadLetterQueue",
        "CallbackDeadLetterQueue",
    ] {
        assert_eq!(pump_review(&stack, &function, queue).await, 1, "{queue}");
    }
    let open = store.list(Some(ReviewStatus::Open), None).await.unwrap();
    let mut reasons: Vec<String> = open.iter().map(|i| i.reason.to_string()).collect();
    reasons.sort();
    assert_eq!(reasons, ["dlq:callback", "dlq:dispatch", "dlq:events"]);

    // Discard: gone from the open list, kept (until its TTL) as discarded.
    let text = open.iter().find(|i| i.reason == "dlq:events").unwrap();
    assert_eq!(
        text.payload,
        serde_json::Value::String("\u{1}not JSON".into())
    );
    review::discard(store, &text.pk, false).await.unwrap();
    let open_now = store.list(Some(ReviewStatus::Open), None).await.unwrap();
    assert!(open_now.iter().all(|i| i.pk != text.pk), "{open_now:?}");
    assert_eq!(
        store
            .list(Some(ReviewStatus::Discarded), None)
            .await
            .unwrap()[0]
            .pk,
        text.pk
    );
    assert!(expires_at(&stack, &text.pk).await.is_some());
    let err = review::replay(&target, store, &text.pk, false)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("was discarded"), "{err:#}");

    // Replay sends a dead letter back, as it was, to the queue it came from.
    let dead_dispatch = open.iter().find(|i| i.reason == "dlq:dispatch").unwrap();
    assert_eq!(dead_dispatch.subject_id, "telnyx#c1#completed");
    review::replay(&target, store, &dead_dispatch.pk, false)
        .await
        .unwrap();
    let resent = stack
        .drain(&stack.provisioned.queues["DispatchQueue"])
        .await;
    assert_eq!(resent.len(), 1);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&resent[0]).unwrap(),
        serde_json::from_str::<serde_json::Value>(dispatch).unwrap()
    );
    let callback = open.iter().find(|i| i.reason == "dlq:callback").unwrap();
    review::replay(&target, store, &callback.pk, false)
        .await
        .unwrap();
    assert_eq!(
        stack
            .drain(&stack.provisioned.queues["CallbackQueue"])
            .await
            .len(),
        1
    );
    assert!(
        store
            .list(Some(ReviewStatus::Open), None)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_sent_to_the_review_queue_is_reviewed_and_marked_and_processed_ones_stay_processed()
 {
    let stack = Stack::start().await;
    let function = review_function(&stack);
    let ingest = callhook_ingest::build(&stack.ingest_env()).unwrap();
    let lifecycle = stack.lifecycle();

    // Two stored events: one still RECEIVED, one the lifecycle already applied.
    let body = |id: &str, kind: &str| {
        format!(
            r#"{{"data":{{"event_type":"{kind}","id":"{id}","occurred_at":"2024-01-01T00:00:00Z","payload":{{"call_session_id":"sess-r","direction":"incoming","from":"+15550100","to":"+15550199"}},"record_type":"event"}},"meta":{{"attempt":1}}}}"#
        )
    };
    for (id, kind) in [("r-1", "call.initiated"), ("r-2", "call.answered")] {
        let answer = ingest
            .handle(&telnyx_request(&body(id, kind), Utc::now()))
            .await;
        assert_eq!(answer.status(), 200, "{answer:?}");
    }
    let queued = stack.drain(stack.events_queue()).await;
    assert_eq!(queued.len(), 2);
    let events: Vec<CanonicalEvent> = queued
        .iter()
        .map(|m| serde_json::from_str(m).unwrap())
        .collect();
    let answered = events.iter().find(|e| e.event_id == "telnyx#r-2").unwrap();
    lifecycle
        .process(&serde_json::to_string(answered).unwrap())
        .await
        .unwrap();
    assert_eq!(stack.event_status("telnyx#r-2").await, "PROCESSED");

    for message in &queued {
        send(&stack, "ReviewQueue", message).await;
    }
    send(&stack, "ReviewQueue", "[not an event").await;
    assert_eq!(pump_review(&stack, &function, "ReviewQueue").await, 3);

    let store = &function.review;
    let item: ReviewItem = store.get("event#telnyx#r-1").await.unwrap().unwrap();
    assert_eq!(item.reason, "requested");
    assert_eq!(stack.event_status("telnyx#r-1").await, "REVIEW");
    assert!(store.get("event#telnyx#r-2").await.unwrap().is_some());
    assert_eq!(
        stack.event_status("telnyx#r-2").await,
        "PROCESSED",
        "a review request does not undo the lifecycle's work"
    );
    let open = store
        .list(Some(ReviewStatus::Open), Some("malformed"))
        .await
        .unwrap();
    assert_eq!(open.len(), 1);
    assert!(open[0].pk.starts_with("queue#review#"), "{}", open[0].pk);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweeper_reports_how_many_review_items_are_open() {
    let stack = Stack::start().await;
    let review = review_function(&stack);
    for body in ["one", "two", "three"] {
        send(&stack, "DispatchDeadLetterQueue", body).await;
    }
    assert_eq!(
        pump_review(&stack, &review, "DispatchDeadLetterQueue").await,
        3
    );
    let first = review.review.list(None, None).await.unwrap()[0].pk.clone();
    review::discard(&review.review, &first, false)
        .await
        .unwrap();

    let sweeper = callhook_sweeper::build(&stack.function_env("SweeperFunction"))
        .expect("sweeper configuration");
    let sink = callhook::observability::emf::Sink::memory();
    let event = lambda_runtime::LambdaEvent::new(
        serde_json::json!({"source": "aws.events"}),
        lambda_runtime::Context::default(),
    );
    callhook_sweeper::handle_with(&sweeper, event, &sink)
        .await
        .unwrap();
    assert_eq!(sink.sum("review_open", &[]), 2.0, "{:?}", sink.lines());
}
