//! Ingest against a real moto server: dedupe by conditional write, the queue, and failures.

use std::sync::Arc;

use callhook::adapters::dynamodb::unpack_request;
use callhook::app::ingest::{Answer, Ingest};
use callhook::config::Env;
use callhook::domain::event::CanonicalEvent;
use callhook_integration::{AtomicOnMoto, Stack, counted_ingest, dead_endpoint, telnyx_request};
use chrono::{SubsecRound, Utc};

fn body(id: &str) -> String {
    format!(
        r#"{{"data":{{"event_type":"call.initiated","id":"{id}","occurred_at":"2024-01-01T00:00:00Z","payload":{{"call_session_id":"s-{id}","direction":"incoming","from":"+15550100","to":"+15550199"}},"record_type":"event"}},"meta":{{"attempt":1}}}}"#
    )
}

fn env(stack: &Stack) -> Env {
    stack.ingest_env()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepted_event_is_one_item_one_message_and_exactly_two_requests() {
    let stack = Stack::start().await;
    let counted = counted_ingest(&env(&stack), &stack.moto.endpoint, &stack.moto.endpoint);
    let body = body("accepted-1");

    let answer = counted
        .ingest
        .handle(&telnyx_request(&body, Utc::now()))
        .await;
    assert_eq!(answer.status(), 200, "{answer:?}");
    assert_eq!(answer.result(), "accepted");
    assert_eq!(counted.dynamo_requests.get(), 1, "one conditional PutItem");
    assert_eq!(counted.sqs_requests.get(), 1, "one SendMessage");

    assert_eq!(stack.count_items(stack.events_table()).await, 1);
    let messages = stack.drain(stack.events_queue()).await;
    assert_eq!(messages.len(), 1);
    let event: CanonicalEvent = serde_json::from_str(&messages[0]).unwrap();
    assert_eq!(event.event_id, "telnyx#accepted-1");
    assert_eq!(event.call_id.as_deref(), Some("telnyx#s-accepted-1"));

    let item = stack
        .dynamo
        .get_item()
        .table_name(stack.events_table())
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S("telnyx#accepted-1".into()),
        )
        .send()
        .await
        .unwrap();
    let item = item.item().unwrap();
    assert_eq!(item["status"].as_s().unwrap(), "RECEIVED");
    let (headers, stored_body) = unpack_request(item["request"].as_b().unwrap().as_ref()).unwrap();
    assert_eq!(stored_body, body.as_bytes(), "the body is kept byte-exact");
    assert!(headers.get("telnyx-signature-ed25519").is_some());
    assert!(item.contains_key("pending_since"));
    assert!(item.contains_key("expires_at"));
}

/// `copies` concurrent deliveries of one event: one accepted, the rest duplicates, one item,
/// one message.
async fn concurrent_identical_deliveries(copies: usize) {
    let stack = Stack::start().await;
    let counted = counted_ingest(&env(&stack), &stack.moto.endpoint, &stack.moto.endpoint).ingest;
    let ingest = Arc::new(Ingest {
        providers: counted.providers,
        store: AtomicOnMoto::new(counted.store),
        queue: counted.queue,
        config: counted.config,
    });
    let body = Arc::new(body(&format!("burst-{copies}")));
    let now = Utc::now();
    let mut tasks = Vec::new();
    for _ in 0..copies {
        let (ingest, body) = (ingest.clone(), body.clone());
        tasks.push(tokio::spawn(async move {
            ingest.handle(&telnyx_request(&body, now)).await
        }));
    }
    let mut answers: Vec<Answer> = Vec::new();
    for task in tasks {
        answers.push(task.await.unwrap());
    }
    assert!(answers.iter().all(|a| a.status() == 200), "{answers:?}");
    let accepted = answers.iter().filter(|a| a.result() == "accepted").count();
    let duplicates = answers.iter().filter(|a| a.result() == "duplicate").count();
    assert_eq!((accepted, duplicates), (1, copies - 1));
    assert_eq!(stack.count_items(stack.events_table()).await, 1);
    assert_eq!(stack.drain(stack.events_queue()).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_concurrent_identical_deliveries_store_and_queue_once() {
    concurrent_identical_deliveries(20).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_identical_deliveries_store_and_queue_once() {
    concurrent_identical_deliveries(50).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamodb_unreachable_is_503_and_nothing_is_queued() {
    let stack = Stack::start().await;
    let counted = counted_ingest(&env(&stack), &dead_endpoint(), &stack.moto.endpoint);
    let answer = counted
        .ingest
        .handle(&telnyx_request(&body("no-db"), Utc::now()))
        .await;
    assert_eq!(answer.status(), 503, "{answer:?}");
    assert_eq!(answer.headers, vec![("retry-after", "5".to_owned())]);
    assert_eq!(counted.sqs_requests.get(), 0);
    assert!(stack.drain(stack.events_queue()).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqs_unreachable_after_the_write_is_503_then_the_retry_requeues() {
    let stack = Stack::start().await;
    let env = env(&stack);
    let broken = counted_ingest(&env, &stack.moto.endpoint, &dead_endpoint());
    let body = body("no-queue");
    let now = Utc::now();

    let answer = broken.ingest.handle(&telnyx_request(&body, now)).await;
    assert_eq!(answer.status(), 503, "{answer:?}");
    assert_eq!(
        stack.count_items(stack.events_table()).await,
        1,
        "the write was durable"
    );

    // The provider retries a few seconds later, the queue is back.
    let healthy = counted_ingest(&env, &stack.moto.endpoint, &stack.moto.endpoint);
    let retry = healthy
        .ingest
        .handle(&telnyx_request(&body, now + chrono::Duration::seconds(2)))
        .await;
    assert_eq!(retry.status(), 200);
    assert_eq!(retry.result(), "duplicate");
    let messages = stack.drain(stack.events_queue()).await;
    assert_eq!(
        messages.len(),
        1,
        "the stored event was queued by the retry"
    );
    let event: CanonicalEvent = serde_json::from_str(&messages[0]).unwrap();
    assert_eq!(event.event_id, "telnyx#no-queue");
    assert_eq!(
        event.received_at,
        now.trunc_subsecs(3),
        "the stored copy, as first received (to the millisecond)"
    );

    // While it stays RECEIVED and marked, each retry re-sends it; the lifecycle applies an
    // event once, so the extra message is harmless, and nothing is lost.
    let again = healthy
        .ingest
        .handle(&telnyx_request(&body, now + chrono::Duration::seconds(3)))
        .await;
    assert_eq!(again.result(), "duplicate");
    assert_eq!(stack.drain(stack.events_queue()).await.len(), 1);
}
