//! Ingest → events queue → lifecycle (through the local event source mapping) → calls table
//! and dispatch queue, against moto.

use callhook::ports::CallStore;
use callhook_cli::local::poller;
use callhook_integration::{Stack, telnyx_request};
use chrono::Utc;

fn telnyx(event_type: &str, id: &str, at: &str, extra: &str) -> String {
    format!(
        r#"{{"data":{{"event_type":"{event_type}","id":"{id}","occurred_at":"{at}","payload":{{"call_session_id":"sess-1","direction":"incoming","from":"+15550100","to":"+15550199"{extra}}},"record_type":"event"}},"meta":{{"attempt":1}}}}"#
    )
}

fn full_call() -> Vec<String> {
    vec![
        telnyx("call.initiated", "e1", "2024-01-01T00:00:00Z", ""),
        telnyx("call.answered", "e2", "2024-01-01T00:00:05Z", ""),
        telnyx(
            "call.hangup",
            "e3",
            "2024-01-01T00:01:05Z",
            r#","hangup_cause":"normal_clearing""#,
        ),
        telnyx(
            "call.recording.saved",
            "e4",
            "2024-01-01T00:01:10Z",
            r#","recording_urls":{"mp3":"https://r.example/1.mp3"}"#,
        ),
    ]
}

async fn ingest_all(stack: &Stack, bodies: &[String]) {
    let ingest = callhook_ingest::build(&stack.ingest_env()).unwrap();
    for body in bodies {
        let answer = ingest.handle(&telnyx_request(body, Utc::now())).await;
        assert_eq!(answer.status(), 200, "{answer:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shuffled_duplicated_call_is_one_record_and_one_completion() {
    let stack = Stack::start().await;
    let call = full_call();
    // Out of order, with a redelivery of the hangup and of the first event.
    let deliveries = [
        call[2].clone(),
        call[3].clone(),
        call[0].clone(),
        call[2].clone(),
        call[1].clone(),
        call[0].clone(),
    ];
    ingest_all(&stack, &deliveries).await;
    let function = stack.lifecycle();
    stack.pump_lifecycle(&function).await;

    let stored = function.calls.get("telnyx#sess-1").await.unwrap().unwrap();
    let record = stored.record;
    assert_eq!(record.event_count, 4);
    assert_eq!(record.rank, 5);
    assert_eq!(
        record.outcome,
        Some(callhook::domain::event::Outcome::Completed)
    );
    assert_eq!(
        record.recording_url.as_deref(),
        Some("https://r.example/1.mp3")
    );
    assert_eq!(record.duration_secs, Some(60));
    assert!(record.finalized_at.is_some());
    assert!(stored.outbox.is_empty());

    let dispatches = stack
        .drain(&stack.provisioned.queues["DispatchQueue"])
        .await;
    let completed = dispatches
        .iter()
        .filter(|m| m.contains("\"call.completed\""))
        .count();
    assert_eq!(completed, 1, "{dispatches:?}");

    // Every event ended PROCESSED, none left for the sweeper.
    for id in ["e1", "e2", "e3", "e4"] {
        let item = stack
            .dynamo
            .get_item()
            .table_name(stack.events_table())
            .key(
                "pk",
                aws_sdk_dynamodb::types::AttributeValue::S(format!("telnyx#{id}")),
            )
            .send()
            .await
            .unwrap();
        let item = item.item().unwrap();
        assert_eq!(item["status"].as_s().unwrap(), "PROCESSED", "{id}");
        assert!(!item.contains_key("pending_since"), "{id}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_message_fails_only_itself() {
    let stack = Stack::start().await;
    ingest_all(&stack, &full_call()[..1]).await;
    stack
        .sqs
        .send_message()
        .queue_url(stack.events_queue())
        .message_body("this is not an event")
        .send()
        .await
        .unwrap();
    let function = stack.lifecycle();
    let failures = std::sync::Mutex::new(Vec::new());
    poller::poll_once(&stack.sqs, stack.events_queue(), 10, 1, |event| {
        let (function, failures) = (&function, &failures);
        async move {
            let response = callhook_lifecycle::process_batch(function, &event).await;
            *failures.lock().unwrap() = response.batch_item_failures.clone();
            response
        }
    })
    .await
    .unwrap();
    assert_eq!(failures.lock().unwrap().len(), 1);
    assert!(function.calls.get("telnyx#sess-1").await.unwrap().is_some());
}

/// The local event source mapping leaves failed messages on the queue, and the queue's redrive
/// policy (maxReceiveCount 5, from template.yaml) moves a poison message to the DLQ.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_message_reaches_the_dead_letter_queue_after_five_receives() {
    let stack = Stack::start().await;
    // Visibility of one second so redelivery does not take minutes.
    stack
        .sqs
        .set_queue_attributes()
        .queue_url(stack.events_queue())
        .attributes(
            aws_sdk_sqs::types::QueueAttributeName::VisibilityTimeout,
            "1",
        )
        .send()
        .await
        .unwrap();
    stack
        .sqs
        .send_message()
        .queue_url(stack.events_queue())
        .message_body("{\"not\":\"an event\"}")
        .send()
        .await
        .unwrap();
    let function = stack.lifecycle();
    let mut receives = 0;
    let started = std::time::Instant::now();
    while started.elapsed() < std::time::Duration::from_secs(60) {
        receives += poller::poll_once(&stack.sqs, stack.events_queue(), 10, 2, |event| {
            let function = &function;
            async move { callhook_lifecycle::process_batch(function, &event).await }
        })
        .await
        .unwrap();
        let dead = stack
            .drain(&stack.provisioned.queues["EventsDeadLetterQueue"])
            .await;
        if !dead.is_empty() {
            assert_eq!(dead, vec!["{\"not\":\"an event\"}".to_owned()]);
            assert_eq!(receives, 5, "moved after maxReceiveCount receives");
            return;
        }
    }
    panic!("the poison message never reached the DLQ ({receives} receives)");
}
