//! Dispatch against a real moto server and a local HTTP receiver: retries through the queue with
//! backoff, review on client errors, timeouts, the call-back queue, ticketing, and the ledger's
//! "never twice".
//!
//! The tables and queues dispatch needs come from `DISPATCH_SNIPPET` (the resources proposed
//! for template.yaml) where template.yaml does not declare them yet, provisioned through the same
//! `callhook_cli::provision` code.

use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use callhook::adapters::dynamodb::DynamoLedger;
use callhook::adapters::dynamodb::DynamoReviewStore;
use callhook::domain::call;
use callhook::domain::call::{CallRecord, CallStatus, Effect};
use callhook::domain::dispatch::DispatchMessage;
use callhook::domain::event::{Direction, Outcome};
use callhook::domain::review::ReviewStatus;
use callhook::ports::ReviewAdmin;
use callhook::ports::{Ledger, LedgerStatus};
use callhook::providers::Headers;
use callhook::signing::standard_webhooks;
use callhook_cli::local::poller;
use callhook_cli::local::provision::{self, Provisioned};
use callhook_dispatch::{DispatchFunction, process_batch};
use callhook_integration::{HttpSink, Reply, Stack, TEMPLATE};
use chrono::Utc;
use serde_json::Value;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

struct Harness {
    stack: Stack,
    provisioned: Provisioned,
    function: DispatchFunction,
}

impl Harness {
    /// A stack with dispatch's resources and a dispatch function whose CRM / ticketing are the
    /// given receivers, retrying after 1 s, 2 s, … instead of 30 s, 60 s, ….
    async fn start(
        crm: Option<&HttpSink>,
        ticketing: Option<&HttpSink>,
        extra: &[(&str, &str)],
    ) -> Harness {
        let stack = Stack::start().await;
        let provisioned = stack.provisioned.clone();
        let mut env = stack.function_env("DispatchFunction");
        env.set("CRM_SIGNING_SECRET", SECRET);
        env.set("DISPATCH_RETRY_BASE_SECS", "1");
        if let Some(crm) = crm {
            env.set("CRM_WEBHOOK_URL", &crm.url);
        }
        if let Some(ticketing) = ticketing {
            env.set("TICKETING_WEBHOOK_URL", &ticketing.url);
        }
        for (k, v) in extra {
            env.set(k, *v);
        }
        let function = callhook_dispatch::build(&env).expect("dispatch config");
        Harness {
            stack,
            provisioned,
            function,
        }
    }

    fn table(&self, id: &str) -> &str {
        &self.provisioned.tables[id]
    }

    fn queue(&self, id: &str) -> &str {
        &self.provisioned.queues[id]
    }

    fn ledger(&self) -> DynamoLedger {
        DynamoLedger::new(self.stack.dynamo.clone(), self.table("LedgerTable"))
    }

    fn review(&self) -> DynamoReviewStore {
        DynamoReviewStore::new(self.stack.dynamo.clone(), self.table("ReviewTable"))
    }

    /// Stores a call as the lifecycle does (pk, record JSON, version, status copies).
    async fn put_call(&self, record: &CallRecord) {
        self.stack
            .dynamo
            .put_item()
            .table_name(self.table("CallsTable"))
            .item("pk", AttributeValue::S(record.call_id.clone()))
            .item(
                "record",
                AttributeValue::S(serde_json::to_string(record).unwrap()),
            )
            .item("version", AttributeValue::N(record.version.to_string()))
            .item("status", AttributeValue::S("ended".into()))
            .item("provider", AttributeValue::S(record.provider.clone()))
            .send()
            .await
            .unwrap();
    }

    /// Queues a dispatch as the lifecycle does (without the settle delay).
    async fn send(&self, effect: &Effect) -> DispatchMessage {
        let message = DispatchMessage::from_effect(effect).unwrap();
        self.stack
            .sqs
            .send_message()
            .queue_url(self.queue("DispatchQueue"))
            .message_body(serde_json::to_string(&message).unwrap())
            .send()
            .await
            .unwrap();
        message
    }

    async fn queue_depth(&self, id: &str) -> usize {
        self.stack.queue_depth(self.queue(id)).await
    }

    /// Runs the dispatch function on its queue the way the event source mapping does, until the
    /// queue is empty (messages waiting out a backoff included). Returns the batches run.
    async fn drain_dispatch_queue(&self, limit: Duration) -> usize {
        let queue = self.queue("DispatchQueue").to_owned();
        let started = Instant::now();
        let mut batches = 0;
        loop {
            assert!(
                started.elapsed() < limit,
                "dispatch queue not drained within {limit:?}"
            );
            let received = poller::poll_once(&self.stack.sqs, &queue, 10, 1, |event| async move {
                process_batch(&self.function, &event).await
            })
            .await
            .unwrap();
            if received == 0 {
                if self.queue_depth("DispatchQueue").await == 0 {
                    return batches;
                }
                continue;
            }
            batches += 1;
        }
    }
}

fn call(outcome: Outcome) -> CallRecord {
    let mut r = CallRecord::new("telnyx#call-1", "telnyx");
    r.status = Some(CallStatus::Ended);
    r.rank = 5;
    r.outcome = Some(outcome);
    r.direction = Some(Direction::Inbound);
    r.from = Some("+15550100".into());
    r.to = Some("+15550199".into());
    let t = chrono::DateTime::parse_from_rfc3339("2024-05-01T10:00:00Z")
        .unwrap()
        .with_timezone(&Utc);
    r.started_at = Some(t);
    r.ended_at = Some(t + chrono::Duration::seconds(42));
    r.duration_secs = Some(42);
    r.event_count = 2;
    r.applied_event_ids = ["telnyx#e1".to_owned(), "telnyx#e2".to_owned()].into();
    r.final_event_id = Some("telnyx#e2".into());
    r.finalized_at = Some(t + chrono::Duration::seconds(43));
    r.version = 2;
    r
}

fn finalize(record: &CallRecord, outcome: Outcome) -> Effect {
    Effect::Finalize {
        call_id: record.call_id.clone(),
        event_id: "telnyx#e2".into(),
        outcome: Some(outcome),
        dispatch_id: call::finalize_dispatch_id(&record.call_id),
    }
}

/// The delivery verifies with the Standard Webhooks verifier under the configured secret.
fn assert_signed(request: &callhook_integration::SinkRequest) {
    let headers: Headers = standard_webhooks::HEADERS
        .iter()
        .map(|name| (*name, request.header(name).unwrap_or_default().to_owned()))
        .collect();
    let keys = standard_webhooks::parse_keys("CRM_SIGNING_SECRET", &[SECRET]).unwrap();
    assert_eq!(
        standard_webhooks::verify(&keys, &headers, &request.body, Utc::now(), 300),
        Ok(()),
        "{request:?}"
    );
    assert_eq!(request.method, "POST");
    assert_eq!(request.header("content-type"), Some("application/json"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_are_retried_through_the_queue_and_sent_once() {
    let crm = HttpSink::start(vec![
        Reply::Status(500, "oops".into()),
        Reply::Status(500, "oops".into()),
        Reply::Status(200, "ok".into()),
    ])
    .await;
    let h = Harness::start(Some(&crm), None, &[]).await;
    let record = call(Outcome::Completed);
    h.put_call(&record).await;
    let message = h.send(&finalize(&record, Outcome::Completed)).await;

    let batches = h.drain_dispatch_queue(Duration::from_secs(180)).await;
    assert_eq!(batches, 3, "one delivery per attempt");
    let requests = crm.requests();
    assert_eq!(requests.len(), 3);
    for r in &requests {
        assert_signed(r);
        assert_eq!(r.header("webhook-id"), Some("telnyx#call-1#completed"));
    }
    let body: Value = serde_json::from_slice(&requests[2].body).unwrap();
    assert_eq!(body["type"], "call.completed");
    assert_eq!(body["call"]["call_id"], "telnyx#call-1");
    assert_eq!(body["call"]["outcome"], "completed");
    assert_eq!(body["call"]["duration_secs"], 42);
    assert!(body["call"].get("sources").is_none());
    assert!(body["call"].get("applied_event_ids").is_none());

    let entry = h.ledger().get(&message.dispatch_id).await.unwrap().unwrap();
    assert_eq!(entry.status, LedgerStatus::Sent);
    assert_eq!(entry.attempts, 3);
    assert_eq!(entry.status_code, Some(200));
    assert_eq!(h.stack.count_items(h.table("LedgerTable")).await, 1);
    assert_eq!(h.stack.count_items(h.table("ReviewTable")).await, 0);
    assert_eq!(h.queue_depth("DispatchDeadLetterQueue").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_error_leaves_a_review_item_with_the_answer() {
    let crm = HttpSink::start(vec![Reply::Status(400, "field `to` is required".into())]).await;
    let h = Harness::start(Some(&crm), None, &[]).await;
    let record = call(Outcome::Completed);
    h.put_call(&record).await;
    let message = h.send(&finalize(&record, Outcome::Completed)).await;

    h.drain_dispatch_queue(Duration::from_secs(30)).await;
    assert_eq!(crm.count(), 1, "a 400 is not retried");
    let item = h
        .review()
        .get("dispatch#telnyx#call-1#completed")
        .await
        .unwrap()
        .expect("review item");
    assert_eq!(item.reason, "dispatch_failed");
    assert_eq!(item.subject_id, message.dispatch_id);
    assert_eq!(item.status, ReviewStatus::Open);
    assert_eq!(item.status_code, Some(400));
    assert_eq!(
        item.response_body.as_deref(),
        Some("field `to` is required")
    );
    assert_eq!(item.attempts, 1);
    assert_eq!(item.payload, serde_json::to_value(&message).unwrap());
    let entry = h.ledger().get(&message.dispatch_id).await.unwrap().unwrap();
    assert_eq!(
        (entry.status, entry.status_code),
        (LedgerStatus::Failed, Some(400))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_hangs_past_the_timeout_is_retried() {
    let crm = HttpSink::start(vec![Reply::Hang, Reply::Status(204, String::new())]).await;
    let h = Harness::start(Some(&crm), None, &[("DISPATCH_TIMEOUT_SECS", "1")]).await;
    let record = call(Outcome::Voicemail);
    h.put_call(&record).await;
    let message = h.send(&finalize(&record, Outcome::Voicemail)).await;

    let started = Instant::now();
    h.drain_dispatch_queue(Duration::from_secs(180)).await;
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "timeout, then backoff"
    );
    assert_eq!(crm.count(), 2);
    let entry = h.ledger().get(&message.dispatch_id).await.unwrap().unwrap();
    assert_eq!(
        (entry.status, entry.attempts, entry.status_code),
        (LedgerStatus::Sent, 2, Some(204))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_call_requests_a_callback_and_never_reaches_the_crm() {
    let crm = HttpSink::start(vec![]).await;
    let h = Harness::start(Some(&crm), None, &[]).await;
    let record = call(Outcome::Busy);
    h.put_call(&record).await;
    // Finalized as busy; the record is what routes it.
    let message = h.send(&finalize(&record, Outcome::Busy)).await;

    h.drain_dispatch_queue(Duration::from_secs(30)).await;
    assert_eq!(crm.count(), 0);
    let callbacks = h.stack.drain(h.queue("CallbackQueue")).await;
    assert_eq!(callbacks.len(), 1);
    let body: Value = serde_json::from_str(&callbacks[0]).unwrap();
    assert_eq!(body["type"], "callback.requested");
    assert_eq!(body["dispatch_id"], "telnyx#call-1#completed");
    assert_eq!(body["call_id"], "telnyx#call-1");
    assert_eq!(body["outcome"], "busy");
    assert_eq!(body["callback_number"], "+15550100");
    assert_eq!(body["attempted_at"], "2024-05-01T10:00:00Z");
    let entry = h.ledger().get(&message.dispatch_id).await.unwrap().unwrap();
    assert_eq!(
        (entry.status, entry.status_code),
        (LedgerStatus::Sent, None)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_escalation_opens_one_ticket_and_nothing_at_the_crm() {
    let crm = HttpSink::start(vec![]).await;
    let tickets = HttpSink::start(vec![]).await;
    let h = Harness::start(Some(&crm), Some(&tickets), &[]).await;
    // Finalized as completed, escalated during the settle window: both messages are queued.
    let record = call(Outcome::Escalated);
    h.put_call(&record).await;
    h.send(&finalize(&record, Outcome::Completed)).await;
    h.send(&Effect::Escalate {
        call_id: record.call_id.clone(),
        event_id: "stateset#esc".into(),
        dispatch_id: call::escalation_dispatch_id(&record.call_id),
    })
    .await;

    h.drain_dispatch_queue(Duration::from_secs(180)).await;
    assert_eq!(crm.count(), 0);
    let requests = tickets.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_signed(&requests[0]);
    assert_eq!(
        requests[0].header("webhook-id"),
        Some("telnyx#call-1#escalated")
    );
    let body: Value = serde_json::from_slice(&requests[0].body).unwrap();
    assert_eq!(body["call"]["outcome"], "escalated");
    assert_eq!(h.stack.count_items(h.table("LedgerTable")).await, 1);
    let entry = h
        .ledger()
        .get("telnyx#call-1#escalated")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(entry.status, LedgerStatus::Sent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dispatch_already_sent_is_never_sent_again() {
    let crm = HttpSink::start(vec![]).await;
    let h = Harness::start(Some(&crm), None, &[]).await;
    let record = call(Outcome::Completed);
    h.put_call(&record).await;
    let ledger = h.ledger();
    let id = call::finalize_dispatch_id(&record.call_id);
    ledger.begin(&id, Utc::now(), 20).await.unwrap();
    ledger.mark_sent(&id, Some(200), Utc::now()).await.unwrap();

    // Redelivered twice (a replay, a duplicate from the lifecycle's outbox).
    h.send(&finalize(&record, Outcome::Completed)).await;
    h.send(&finalize(&record, Outcome::Completed)).await;
    h.drain_dispatch_queue(Duration::from_secs(30)).await;
    assert_eq!(crm.count(), 0);
    let entry = ledger.get(&id).await.unwrap().unwrap();
    assert_eq!((entry.status, entry.attempts), (LedgerStatus::Sent, 1));
    assert_eq!(h.stack.count_items(h.table("ReviewTable")).await, 0);
}

/// The redrive must not take a message away before the function has given up on it.
#[test]
fn the_dispatch_dlq_waits_for_the_function_to_give_up() {
    let plan = provision::plan_from_template(TEMPLATE).unwrap();
    let queue = plan
        .queues
        .iter()
        .find(|q| q.logical_id == "DispatchQueue")
        .expect("template.yaml declares DispatchQueue");
    let (_, max_receive) = queue.dead_letter.clone().expect("DispatchQueue has a DLQ");
    assert!(
        max_receive as u64 > callhook::domain::dispatch::DEFAULT_MAX_ATTEMPTS,
        "maxReceiveCount {max_receive}"
    );
}
