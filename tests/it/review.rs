//! Review and replay against moto: an event the lifecycle cannot apply becomes a review item
//! (with the raw body kept byte-exact); a person discards it or, once the mapping is fixed,
//! replays it, and the lifecycle applies it once however often it is replayed.

use std::path::PathBuf;

use callhook::adapters::dynamodb::DynamoCallStore;
use callhook::adapters::dynamodb::DynamoEventReader;
use callhook::adapters::dynamodb::DynamoEventStore;
use callhook::adapters::dynamodb::DynamoReviewStore;
use callhook::app::events_queue::queue_message;
use callhook::app::replay::ReplayOutcome;
use callhook::app::replay::Selection;
use callhook::domain::event::CanonicalEvent;
use callhook::domain::review::{ReviewItem, ReviewStatus};
use callhook::ports::CallStore;
use callhook::ports::EventReader;
use callhook::ports::ReviewAdmin;
use callhook::ports::ReviewStore;
use callhook::ports::{EventStatus, EventStore, NewEvent};
use callhook::providers::{Delivery, Headers, Providers};
use callhook_cli::commands::replay;
use callhook_cli::commands::review;
use callhook_cli::target::Target;
use callhook_integration::{Stack, telnyx_request};
use chrono::Utc;

fn telnyx(event_type: &str, id: &str, session: &str, extra: &str) -> String {
    format!(
        r#"{{"data":{{"event_type":"{event_type}","id":"{id}","occurred_at":"2024-01-01T00:00:05Z","payload":{{"call_session_id":"{session}","direction":"incoming","from":"+15550100","to":"+15550199"{extra}}},"record_type":"event"}},"meta":{{"attempt":1}}}}"#
    )
}

fn review_table(stack: &Stack) -> String {
    stack.provisioned.tables["ReviewTable"].clone()
}

fn review_store(stack: &Stack) -> DynamoReviewStore {
    DynamoReviewStore::new(stack.dynamo.clone(), review_table(stack))
}

fn state_dir(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "callhook-review-test-{name}-{}-{}",
        std::process::id(),
        Utc::now().timestamp_nanos_opt().unwrap_or_default()
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_type_is_reviewed_with_its_raw_body_and_discarding_closes_it() {
    let stack = Stack::start().await;
    // Odd spacing and non-ASCII: what is kept must be the bytes received, not a re-encoding.
    let body = telnyx(
        "call.teleported",
        "unk-1",
        "sess-unk",
        ",  \"note\" : \"caf\u{e9} \u{2603}\"\n",
    );
    let ingest = callhook_ingest::build(&stack.ingest_env()).unwrap();
    let answer = ingest.handle(&telnyx_request(&body, Utc::now())).await;
    assert_eq!(answer.status(), 200, "{answer:?}");

    let function = stack.lifecycle();
    assert_eq!(stack.pump_lifecycle(&function).await, 1);
    assert_eq!(stack.event_status("telnyx#unk-1").await, "REVIEW");

    let store = review_store(&stack);
    let open = store.list(Some(ReviewStatus::Open), None).await.unwrap();
    assert_eq!(open.len(), 1, "{open:?}");
    let item = &open[0];
    assert_eq!(item.pk, "event#telnyx#unk-1");
    assert_eq!(item.reason, "unknown_type");
    assert_eq!(item.subject_id, "telnyx#unk-1");
    assert_eq!(item.provider.as_deref(), Some("telnyx"));
    assert_eq!(item.event_type.as_deref(), Some("call.teleported"));
    assert!(item.received_at.is_some());
    assert_eq!(item.attempts, 1);
    assert_eq!(
        store.list(None, Some("unknown_type")).await.unwrap().len(),
        1
    );
    assert!(
        store
            .list(None, Some("malformed"))
            .await
            .unwrap()
            .is_empty()
    );

    // `review show` finds it by event id too, and the raw body is the bytes received.
    let found = review::find(&store, "telnyx#unk-1").await.unwrap();
    assert_eq!(found.pk, item.pk);
    let stored = DynamoEventReader::new(stack.dynamo.clone(), stack.events_table())
        .get_event("telnyx#unk-1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.raw_body, body.as_bytes());

    // Nothing to replay yet: the type is still unknown.
    let dir = state_dir("unknown");
    let target = Target::local(&stack.dev_state(), &dir).unwrap();
    let err = review::replay(&target, &store, &item.pk, false)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("still_review"), "{err:#}");

    review::discard(&store, &item.pk, false).await.unwrap();
    assert!(
        store
            .list(Some(ReviewStatus::Open), None)
            .await
            .unwrap()
            .is_empty()
    );
    let discarded = store
        .list(Some(ReviewStatus::Discarded), None)
        .await
        .unwrap();
    assert_eq!(discarded.len(), 1);

    // SQS redelivers the event (another copy was still queued): it is reviewed again, and
    // the item a person discarded stays discarded.
    let telnyx_provider = Providers::from_env(&stack.ingest_env()).unwrap();
    let again = telnyx_provider.get("telnyx").unwrap().normalize(&Delivery {
        headers: &stored.headers,
        body: &stored.raw_body,
        path_token: None,
        request_url: None,
        received_at: stored.received_at,
    });
    stack
        .sqs
        .send_message()
        .queue_url(stack.events_queue())
        .message_body(queue_message(&again))
        .send()
        .await
        .unwrap();
    assert_eq!(stack.pump_lifecycle(&function).await, 1);
    let item = store.get("event#telnyx#unk-1").await.unwrap().unwrap();
    assert_eq!((item.status, item.attempts), (ReviewStatus::Discarded, 1));

    // A person forcing a replay of it un-discards it: the lifecycle still cannot apply it, so
    // the item is open again.
    let report = replay::replayer(&target, true)
        .unwrap()
        .run(&Selection::Events(vec!["telnyx#unk-1".into()]), |_| {})
        .await
        .unwrap();
    assert_eq!(
        (report.requeued, report.review_items_replayed),
        (1, 1),
        "{report:?}"
    );
    assert_eq!(stack.pump_lifecycle(&function).await, 1);
    let item = store.get("event#telnyx#unk-1").await.unwrap().unwrap();
    assert_eq!((item.status, item.attempts), (ReviewStatus::Open, 2));
    assert_eq!(stack.event_status("telnyx#unk-1").await, "REVIEW");
    let _ = std::fs::remove_dir_all(&dir);
}

/// An event an older mapping rejected (REVIEW, unknown_type) whose body is a known type today.
async fn store_as_if_rejected(stack: &Stack, id: &str, session: &str) -> String {
    let body = telnyx("call.answered", id, session, "");
    let event_id = format!("telnyx#{id}");
    let call_id = format!("telnyx#{session}");
    let received_at = Utc::now();
    let headers = Headers::new();
    let mut old = CanonicalEvent::new("telnyx", id, "call.answered", received_at);
    callhook::providers::mark_unknown(&mut old);
    old.call_id = Some(call_id.clone());
    let events = DynamoEventStore::new(stack.dynamo.clone(), stack.events_table());
    events
        .insert_new(&NewEvent {
            event_id: &event_id,
            call_id: Some(&call_id),
            raw_body: body.as_bytes(),
            headers: &headers,
            received_at,
            expires_at: received_at + chrono::Duration::days(30),
        })
        .await
        .unwrap();
    DynamoCallStore::new(
        stack.dynamo.clone(),
        &stack.provisioned.tables["CallsTable"],
        stack.events_table(),
    )
    .mark_event(&event_id, EventStatus::Review, Some("unknown_type"))
    .await
    .unwrap();
    review_store(stack)
        .open_event(&ReviewItem::event(&old, "unknown_type", Utc::now()))
        .await
        .unwrap();
    event_id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_review_event_whose_mapping_was_fixed_is_replayed_and_applied_once() {
    let stack = Stack::start().await;
    let event_id = store_as_if_rejected(&stack, "fix-1", "sess-fix").await;
    let store = review_store(&stack);
    let dir = state_dir("fixed");
    let target = Target::local(&stack.dev_state(), &dir).unwrap();
    let function = stack.lifecycle();

    review::replay(&target, &store, "event#telnyx#fix-1", false)
        .await
        .unwrap();
    let item = store.get("event#telnyx#fix-1").await.unwrap().unwrap();
    assert_eq!(item.status, ReviewStatus::Replayed);
    assert_eq!(stack.pump_lifecycle(&function).await, 1);

    let call = function
        .calls
        .get("telnyx#sess-fix")
        .await
        .unwrap()
        .unwrap();
    assert!(call.record.applied_event_ids.contains(&event_id));
    assert_eq!(call.record.event_count, 1);
    let version = call.record.version;
    assert_eq!(stack.event_status(&event_id).await, "PROCESSED");
    assert_eq!(
        store
            .get("event#telnyx#fix-1")
            .await
            .unwrap()
            .unwrap()
            .status,
        ReviewStatus::Replayed,
        "the lifecycle applied it: nothing reopened the item"
    );

    // Twice: the event is PROCESSED now, so there is nothing to send.
    let err = review::replay(&target, &store, "event#telnyx#fix-1", false)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("skipped_processed"), "{err:#}");
    let replayer = replay::replayer(&target, false).unwrap();
    for selection in [
        Selection::Events(vec![event_id.clone(), event_id.clone()]),
        Selection::Call("telnyx#sess-fix".into()),
        Selection::Status(EventStatus::Processed),
        Selection::Range {
            since: Utc::now() - chrono::Duration::minutes(10),
            until: None,
        },
    ] {
        let report = replayer.run(&selection, |_| {}).await.unwrap();
        assert_eq!(
            (report.selected, report.skipped_processed, report.requeued),
            (1, 1, 0),
            "{selection:?}: {report:?}"
        );
        assert_eq!(report.events[0].event_id, event_id);
    }
    let none = replayer
        .run(
            &Selection::Range {
                since: Utc::now() + chrono::Duration::minutes(10),
                until: None,
            },
            |_| {},
        )
        .await
        .unwrap();
    assert_eq!(none.selected, 0);
    let missing = replayer.replay_one("telnyx#never-stored").await.unwrap();
    assert_eq!(missing.outcome, ReplayOutcome::Missing);

    // Forced: sent again, and the lifecycle changes nothing.
    let forced = replay::replayer(&target, true)
        .unwrap()
        .run(&Selection::Events(vec![event_id.clone()]), |_| {})
        .await
        .unwrap();
    assert_eq!(forced.requeued, 1);
    assert_eq!(stack.pump_lifecycle(&function).await, 1);
    let call = function
        .calls
        .get("telnyx#sess-fix")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (call.record.event_count, call.record.version),
        (1, version),
        "applied once"
    );
    assert_eq!(stack.event_status(&event_id).await, "PROCESSED");
    assert_eq!(
        store
            .get("event#telnyx#fix-1")
            .await
            .unwrap()
            .unwrap()
            .status,
        ReviewStatus::Replayed
    );
    let _ = std::fs::remove_dir_all(&dir);
}
