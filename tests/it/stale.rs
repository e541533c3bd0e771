//! The stale pass on moto, through the sweeper function as template.yaml configures it: a call
//! whose final webhook never came is given up on once (two overlapping runs), dispatched once as
//! `call.completed` with outcome `unknown` and `incomplete: true`, with one review item; the
//! real hangup arriving afterwards goes out as `call.updated` only.

use callhook::observability::emf::Sink;
use callhook::ports::{CallStore, ReviewAdmin};
use callhook_integration::{Stack, telnyx_request};
use chrono::{DateTime, Duration, Utc};
use serde_json::Value;

fn telnyx(event_type: &str, id: &str, at: DateTime<Utc>, extra: &str) -> String {
    let at = at.to_rfc3339();
    format!(
        r#"{{"data":{{"event_type":"{event_type}","id":"{id}","occurred_at":"{at}","payload":{{"call_session_id":"sess-stale","direction":"incoming","from":"+15550100","to":"+15550199"{extra}}},"record_type":"event"}},"meta":{{"attempt":1}}}}"#
    )
}

async fn deliver(stack: &Stack, body: &str, received_at: DateTime<Utc>) {
    let ingest = callhook_ingest::build(&stack.ingest_env()).unwrap();
    let answer = ingest.handle(&telnyx_request(body, received_at)).await;
    assert_eq!(answer.status(), 200, "{answer:?}");
}

async fn run_sweeper(function: &callhook_sweeper::SweeperFunction, sink: &Sink) {
    let event = lambda_runtime::LambdaEvent::new(
        serde_json::json!({"source": "aws.events"}),
        lambda_runtime::Context::default(),
    );
    callhook_sweeper::handle_with(function, event, sink)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_nobody_finishes_is_given_up_once_and_a_late_hangup_updates_it() {
    let stack = Stack::start().await;
    let lifecycle = stack.lifecycle();
    let day_ago = Utc::now() - Duration::hours(25);
    deliver(
        &stack,
        &telnyx("call.initiated", "s1", day_ago, ""),
        day_ago,
    )
    .await;
    let answered = day_ago + Duration::seconds(5);
    deliver(
        &stack,
        &telnyx("call.answered", "s2", answered, ""),
        answered,
    )
    .await;
    stack.pump_lifecycle(&lifecycle).await;

    let mut env = stack.function_env("SweeperFunction");
    env.set("STALE_AFTER_SECS", "14400");
    let sweeper = callhook_sweeper::build(&env).unwrap();
    let sink = Sink::memory();
    // Two runs at once: both give up, the lifecycle applies it once.
    tokio::join!(run_sweeper(&sweeper, &sink), run_sweeper(&sweeper, &sink));
    assert_eq!(sink.sum("stale_calls", &[]), 2.0, "{:?}", sink.lines());
    assert_eq!(
        sink.sum(
            "backfill_results",
            &[("provider", "telnyx"), ("result", "gave_up")]
        ),
        2.0
    );
    stack.pump_lifecycle(&lifecycle).await;

    let call = lifecycle
        .calls
        .get("telnyx#sess-stale")
        .await
        .unwrap()
        .unwrap()
        .record;
    assert_eq!(call.outcome.map(|o| o.as_str()), Some("unknown"));
    assert!(call.incomplete);
    let dispatches: Vec<Value> = stack
        .drain(&stack.provisioned.queues["DispatchQueue"])
        .await
        .iter()
        .map(|m| serde_json::from_str(m).unwrap())
        .collect();
    assert_eq!(dispatches.len(), 1, "{dispatches:?}");
    assert_eq!(dispatches[0]["type"], "call.completed");
    assert_eq!(dispatches[0]["outcome"], "unknown");

    let review = stack_review(&stack);
    let item = review.get("call#telnyx#sess-stale").await.unwrap().unwrap();
    assert_eq!(item.reason, "stale_call");
    assert!(
        item.detail.contains("no API credentials"),
        "{}",
        item.detail
    );

    // Final now: the next run neither asks nor gives up again.
    let quiet = Sink::memory();
    run_sweeper(&sweeper, &quiet).await;
    assert_eq!(quiet.sum("stale_calls", &[]), 0.0);

    // The real hangup, a day late: an update, never a second completion.
    let ended = answered + Duration::minutes(3);
    deliver(
        &stack,
        &telnyx(
            "call.hangup",
            "s3",
            ended,
            r#","hangup_cause":"normal_clearing""#,
        ),
        Utc::now(),
    )
    .await;
    stack.pump_lifecycle(&lifecycle).await;
    let call = lifecycle
        .calls
        .get("telnyx#sess-stale")
        .await
        .unwrap()
        .unwrap()
        .record;
    assert_eq!(call.outcome.map(|o| o.as_str()), Some("completed"));
    assert!(!call.incomplete);
    let dispatches: Vec<Value> = stack
        .drain(&stack.provisioned.queues["DispatchQueue"])
        .await
        .iter()
        .map(|m| serde_json::from_str(m).unwrap())
        .collect();
    assert_eq!(dispatches.len(), 1);
    assert_eq!(dispatches[0]["type"], "call.updated");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_call_is_not_stale() {
    let stack = Stack::start().await;
    let lifecycle = stack.lifecycle();
    let opened = Utc::now() - Duration::hours(30);
    deliver(&stack, &telnyx("call.initiated", "b1", opened, ""), opened).await;
    // Still talking: a webhook a minute ago.
    let recent = Utc::now() - Duration::minutes(1);
    deliver(
        &stack,
        &telnyx("call.dtmf.received", "b2", recent, ""),
        recent,
    )
    .await;
    stack.pump_lifecycle(&lifecycle).await;
    let sweeper = callhook_sweeper::build(&stack.function_env("SweeperFunction")).unwrap();
    let sink = Sink::memory();
    let event =
        lambda_runtime::LambdaEvent::new(serde_json::json!({}), lambda_runtime::Context::default());
    let report = callhook_sweeper::handle_with(&sweeper, event, &sink)
        .await
        .unwrap();
    let stale = report.stale.unwrap();
    assert_eq!((stale.open_scanned, stale.stale, stale.gave_up), (1, 0, 0));
    assert_eq!(stale.waiting, 1);
}

fn stack_review(stack: &Stack) -> callhook::adapters::dynamodb::DynamoReviewStore {
    callhook::adapters::dynamodb::DynamoReviewStore::new(
        stack.dynamo.clone(),
        &stack.provisioned.tables["ReviewTable"],
    )
}
