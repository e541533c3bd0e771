//! The sweeper against moto: an ingest that "dies" between PutItem and SendMessage (its queue
//! is unreachable) leaves the event RECEIVED; the sweeper finds it through the sparse `pending`
//! index and re-enqueues it; the lifecycle applies it once, however many sweeps sent it.

use std::time::Duration;

use callhook::adapters::dynamodb::DynamoEventReader;
use callhook::adapters::sqs::SqsQueue;
use callhook::app::sweep::Sweeper;
use callhook::config::Env;
use callhook::domain::event::CanonicalEvent;
use callhook::ports::CallStore;
use callhook::providers::Providers;
use callhook_integration::{Stack, counted_ingest, dead_endpoint, telnyx_request};
use chrono::Utc;

fn telnyx(event_type: &str, id: &str, session: &str, extra: &str) -> String {
    format!(
        r#"{{"data":{{"event_type":"{event_type}","id":"{id}","occurred_at":"2024-01-01T00:01:05Z","payload":{{"call_session_id":"{session}","direction":"incoming","from":"+15550100","to":"+15550199"{extra}}},"record_type":"event"}},"meta":{{"attempt":1}}}}"#
    )
}

fn hangup(id: &str, session: &str) -> String {
    telnyx(
        "call.hangup",
        id,
        session,
        r#","hangup_cause":"normal_clearing""#,
    )
}

fn sweeper(stack: &Stack, min_age_secs: u64) -> Sweeper<DynamoEventReader, SqsQueue> {
    Sweeper {
        store: DynamoEventReader::new(stack.dynamo.clone(), stack.events_table()),
        queue: SqsQueue::new(stack.sqs.clone(), stack.events_queue()),
        providers: Providers::from_env(&stack.ingest_env()).unwrap(),
        min_age: Duration::from_secs(min_age_secs),
    }
}

/// Ingest whose SendMessage cannot reach SQS: the item is written, the message never sent.
async fn ingest_and_lose_the_send(stack: &Stack, body: &str) {
    let counted = counted_ingest(&stack.ingest_env(), &stack.moto.endpoint, &dead_endpoint());
    let answer = counted
        .ingest
        .handle(&telnyx_request(body, Utc::now()))
        .await;
    assert_eq!(answer.status(), 503, "{answer:?}");
}

async fn completions(stack: &Stack) -> usize {
    stack
        .drain(&stack.provisioned.queues["DispatchQueue"])
        .await
        .iter()
        .filter(|m| m.contains("\"call.completed\""))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_send_is_swept_applied_once_and_not_swept_again() {
    let stack = Stack::start().await;
    ingest_and_lose_the_send(&stack, &hangup("lost-1", "sess-lost")).await;
    let item = stack
        .event_item("telnyx#lost-1")
        .await
        .expect("the event is stored");
    assert_eq!(item["status"].as_s().unwrap(), "RECEIVED");
    assert!(item.contains_key("pending_since"));
    assert!(
        stack.drain(stack.events_queue()).await.is_empty(),
        "never queued"
    );

    // Too young for the default age: the index filter leaves it.
    let report = sweeper(&stack, 120).sweep(Utc::now()).await.unwrap();
    assert_eq!((report.scanned, report.requeued), (0, 0), "{report:?}");

    let report = sweeper(&stack, 0).sweep(Utc::now()).await.unwrap();
    assert_eq!((report.scanned, report.requeued), (1, 1), "{report:?}");

    let function = stack.lifecycle();
    assert_eq!(stack.pump_lifecycle(&function).await, 1);
    let item = stack
        .event_item("telnyx#lost-1")
        .await
        .expect("the event is stored");
    assert_eq!(item["status"].as_s().unwrap(), "PROCESSED");
    assert!(
        !item.contains_key("pending_since"),
        "out of the sparse index"
    );
    let call = function
        .calls
        .get("telnyx#sess-lost")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(call.record.event_count, 1);
    assert!(call.record.finalized_at.is_some());
    assert_eq!(completions(&stack).await, 1);

    // PROCESSED: not in the index, so not sent again.
    let report = sweeper(&stack, 0).sweep(Utc::now()).await.unwrap();
    assert_eq!((report.scanned, report.requeued), (0, 0), "{report:?}");
    assert!(stack.drain(stack.events_queue()).await.is_empty());
}

/// Two sweeps at once (one of them built the way `callhook sweep` builds it) both send the
/// event: harmless, the lifecycle applies it once and finalizes the call once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_concurrent_sweeps_still_apply_and_finalize_once() {
    let stack = Stack::start().await;
    ingest_and_lose_the_send(&stack, &hangup("twice-1", "sess-twice")).await;
    ingest_and_lose_the_send(
        &stack,
        &telnyx("call.initiated", "twice-0", "sess-twice", ""),
    )
    .await;

    let state_dir = std::env::temp_dir().join(format!(
        "callhook-sweeper-test-{}-{}",
        std::process::id(),
        Utc::now().timestamp_nanos_opt().unwrap_or_default()
    ));
    let mut env = Env::default();
    callhook_cli::local::keys::fill_dev_keys(&state_dir, &mut env).unwrap();
    let from_cli = callhook_cli::local::schedule::sweeper(
        &env,
        &stack.moto.endpoint,
        &stack.provisioned,
        Duration::ZERO,
    )
    .unwrap();
    let direct = sweeper(&stack, 0);
    let now = Utc::now();
    let (a, b) = tokio::join!(direct.sweep(now), from_cli.sweeper.sweep(now));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!((a.requeued, b.requeued), (2, 2), "{a:?} {b:?}");
    let _ = std::fs::remove_dir_all(&state_dir);

    let function = stack.lifecycle();
    assert_eq!(
        stack.pump_lifecycle(&function).await,
        4,
        "every copy was delivered"
    );
    let call = function
        .calls
        .get("telnyx#sess-twice")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(call.record.event_count, 2, "each event applied once");
    assert!(call.record.finalized_at.is_some());
    assert_eq!(completions(&stack).await, 1, "one finalization");
    for id in ["telnyx#twice-0", "telnyx#twice-1"] {
        let item = stack.event_item(id).await.expect("the event is stored");
        assert_eq!(item["status"].as_s().unwrap(), "PROCESSED", "{id}");
    }
    let report = direct.sweep(Utc::now()).await.unwrap();
    assert_eq!(report.scanned, 0, "{report:?}");
}

/// The message the sweeper sends is the event as first received (its original receipt time),
/// rebuilt from the stored raw body and headers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_swept_message_is_the_event_as_first_received() {
    let stack = Stack::start().await;
    let body = telnyx("call.initiated", "first-1", "sess-first", "");
    ingest_and_lose_the_send(&stack, &body).await;
    let item = stack
        .event_item("telnyx#first-1")
        .await
        .expect("the event is stored");
    let received_at = item["received_at"].as_n().unwrap().clone();

    let report = sweeper(&stack, 0).sweep(Utc::now()).await.unwrap();
    assert_eq!(report.requeued, 1, "{report:?}");
    let messages = stack.drain(stack.events_queue()).await;
    assert_eq!(messages.len(), 1);
    let event: CanonicalEvent = serde_json::from_str(&messages[0]).unwrap();
    assert_eq!(event.event_id, "telnyx#first-1");
    assert_eq!(event.call_id.as_deref(), Some("telnyx#sess-first"));
    assert_eq!(
        event.received_at.timestamp_millis().to_string(),
        received_at
    );
    assert_eq!(
        event.data["call_session_id"], "sess-first",
        "the payload came back from the raw body"
    );
}
