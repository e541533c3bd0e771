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

/// An open call of `provider`, last heard of five hours ago.
async fn open_call(
    lifecycle: &callhook_lifecycle::LifecycleFunction,
    provider: &str,
    key: &str,
) -> String {
    let call_id = format!("{provider}#{key}");
    let heard = Utc::now() - Duration::hours(5);
    let mut answered =
        callhook::domain::event::CanonicalEvent::new(provider, "answered-1", "answered", heard);
    answered.kind = callhook::domain::event::Kind::Answered;
    answered.call_id = Some(call_id.clone());
    lifecycle.apply(&answered).await.unwrap();
    call_id
}

/// For every provider with an API: a call whose hangup never came finalizes from the (fake) API
/// with the API's end time, duration and outcome, and is dispatched once; a second run asks
/// nothing more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_providers_api_finishes_a_call_whose_hangup_never_came() {
    use callhook::testing::api_cases::cases;
    use callhook::testing::fake_api::FakeApi;
    let stack = Stack::start().await;
    let lifecycle = stack.lifecycle();
    for case in cases() {
        let api = FakeApi::start(case.ended).await.unwrap();
        let call_id = open_call(&lifecycle, case.provider, case.key).await;
        let mut env = stack.function_env("SweeperFunction");
        for (name, value) in (case.vars)() {
            env.set(name, value);
        }
        env.set(case.url_var, api.url());
        let sweeper = callhook_sweeper::build(&env).unwrap();
        let sink = Sink::memory();
        run_sweeper(&sweeper, &sink).await;
        assert_eq!(
            sink.sum(
                "backfill_results",
                &[("provider", case.provider), ("result", "finalized")]
            ),
            1.0,
            "{}: {:?}",
            case.provider,
            sink.lines()
        );
        stack.pump_lifecycle(&lifecycle).await;
        let expected = (case.expected)();
        let call = lifecycle.calls.get(&call_id).await.unwrap().unwrap().record;
        assert!(call.is_final(), "{}", case.provider);
        assert_eq!(call.ended_at, expected.ended_at, "{}", case.provider);
        assert_eq!(
            call.duration_secs, expected.duration_secs,
            "{}",
            case.provider
        );
        assert_eq!(call.outcome, expected.outcome, "{}", case.provider);
        assert!(!call.incomplete);
        let dispatches = stack
            .drain(&stack.provisioned.queues["DispatchQueue"])
            .await;
        assert_eq!(dispatches.len(), 1, "{}: {dispatches:?}", case.provider);
        assert!(
            dispatches[0].contains("call.completed"),
            "{}",
            case.provider
        );

        // Final now: nothing more to ask.
        let asked = api.count();
        run_sweeper(&sweeper, &Sink::memory()).await;
        assert_eq!(api.count(), asked, "{}", case.provider);
    }
}

/// A provider API that is down, then limiting, delays the call but never loses it: each failure
/// is remembered with backoff, and the answer that finally comes finishes the call once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_down_then_limiting_delays_but_never_loses_the_call() {
    use callhook::testing::api_cases::cases;
    use callhook::testing::fake_api::{FakeApi, Reply};
    let stack = Stack::start().await;
    let lifecycle = stack.lifecycle();
    let case = cases()
        .into_iter()
        .find(|c| c.provider == "twilio")
        .unwrap();
    let ended = case.ended;
    let answers = std::sync::atomic::AtomicUsize::new(0);
    // Three 503s (the client's attempts in the first run), three 429s, then the answer.
    let api = FakeApi::start(move |request| {
        match answers.fetch_add(1, std::sync::atomic::Ordering::SeqCst) {
            0..=2 => Reply::status(503),
            3..=5 => Reply::status(429),
            _ => ended(request),
        }
    })
    .await
    .unwrap();
    let call_id = open_call(&lifecycle, case.provider, case.key).await;
    let mut env = stack.function_env("SweeperFunction");
    for (name, value) in (case.vars)() {
        env.set(name, value);
    }
    env.set(case.url_var, api.url());
    env.set("PROVIDER_API_TIMEOUT_SECS", "5");
    let sweeper = callhook_sweeper::build(&env).unwrap();
    let pass = sweeper.stale.as_ref().unwrap();
    let now = Utc::now();
    let down = pass.run(now).await.unwrap();
    assert_eq!((down.asked, down.errors), (1, 1), "{down:?}");
    assert_eq!(pass.run(now).await.unwrap().asked, 0, "in its backoff");
    let limited = pass.run(now + Duration::minutes(20)).await.unwrap();
    assert_eq!(limited.results["twilio"]["rate_limited"], 1, "{limited:?}");
    let answered = pass.run(now + Duration::hours(2)).await.unwrap();
    assert_eq!(answered.backfilled, 1, "{answered:?}");
    stack.pump_lifecycle(&lifecycle).await;
    let call = lifecycle.calls.get(&call_id).await.unwrap().unwrap().record;
    assert_eq!(call.ended_at, (case.expected)().ended_at);
    assert_eq!(
        stack
            .drain(&stack.provisioned.queues["DispatchQueue"])
            .await
            .len(),
        1
    );
}
