//! The EMF metrics (docs/metrics.md), end to end on moto: a burst of mixed deliveries through the
//! ingest function, the lifecycle on the events queue, and dispatch against a CRM that answers
//! 500 then 200. Every EMF line is captured and parsed back; the totals are asserted exactly,
//! with both dimension sets (the metric's own and the empty one) and the documented units.

use std::time::{Duration, Instant};

use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use callhook::observability::emf::Sink;
use callhook::observability::metrics::{
    DISPATCH_ATTEMPTS, DISPATCH_FAILURES, DUPLICATES, MALFORMED, PROCESSING_LAG, RECEIVED,
    SIGNATURE_FAILURES, UNKNOWN_TYPES,
};
use callhook::observability::readback::Sample;
use callhook::providers::{self, FIXTURE_SEED};
use callhook_cli::commands::fixtures;
use callhook_cli::local::poller;
use callhook_integration::{HttpSink, Reply, Stack};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn telnyx(event_type: &str, id: &str, call: &str, at: DateTime<Utc>) -> String {
    let at = at.to_rfc3339_opts(SecondsFormat::Millis, true);
    // A hangup's cause decides the route: normal_clearing completes the call (CRM).
    let cause = if event_type == "call.hangup" {
        r#","hangup_cause":"normal_clearing""#
    } else {
        ""
    };
    format!(
        r#"{{"data":{{"event_type":"{event_type}","id":"{id}","occurred_at":"{at}","payload":{{"call_session_id":"{call}","direction":"incoming","from":"+15550100","to":"+15550199"{cause}}},"record_type":"event"}},"meta":{{"attempt":1}}}}"#
    )
}

/// An API Gateway event for `body`, signed with the Telnyx fixture key now (as a provider
/// would send it), or not signed.
fn delivery(body: &str, signed: bool) -> Value {
    let mut event = fixtures::wrap("telnyx", body.as_bytes(), false);
    if signed {
        let signature = providers::dev_signer("telnyx", &FIXTURE_SEED)
            .unwrap()
            .sign(body.as_bytes(), Utc::now().timestamp(), "");
        for (name, value) in signature.headers {
            event["headers"][name] = Value::from(value);
        }
    }
    event
}

fn samples_named<'a>(samples: &'a [Sample], name: &str) -> Vec<&'a Sample> {
    samples.iter().filter(|s| s.name == name).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mixed_burst_gives_exact_emf_totals_through_ingest_lifecycle_and_dispatch() {
    let started_ms = Utc::now().timestamp_millis();
    let stack = Stack::start().await;
    let mut env = stack.ingest_env();
    // A slow machine must not turn a duplicate into a re-send: the counts are exact.
    env.set("RESEND_AFTER_SECS", "3600");
    let ingest = callhook_ingest::build(&env).unwrap();

    // ---- ingest ----------------------------------------------------------------------------
    // Facts that occurred a day ago (a provider's late retry, or a replayed fixture): the lag is
    // callhook's own, from receipt, not a day.
    let past = Utc::now() - chrono::Duration::days(1);
    let initiated = telnyx("call.initiated", "m1", "sess-m", past);
    let answered = telnyx("call.answered", "m2", "sess-m", past);
    let hangup = telnyx("call.hangup", "m3", "sess-m", past);
    // A provider clock ahead of ours changes nothing either.
    let ahead = telnyx(
        "call.initiated",
        "m4",
        "sess-n",
        Utc::now() + chrono::Duration::hours(1),
    );
    let unknown_1 = telnyx("call.teleported", "u1", "sess-m", past);
    let unknown_2 = telnyx("call.levitated", "u2", "sess-m", past);
    let malformed = r#"{"data":"an authentic body of the wrong shape"}"#.to_owned();

    let mut tampered = delivery(&initiated, true);
    tampered["body"] = Value::from(initiated.replace("sess-m", "sess-x"));
    let mut stale = delivery(&answered, false);
    let old = providers::dev_signer("telnyx", &FIXTURE_SEED)
        .unwrap()
        .sign(answered.as_bytes(), Utc::now().timestamp() - 3600, "");
    for (name, value) in old.headers {
        stale["headers"][name] = Value::from(value);
    }
    let unsigned = delivery(&hangup, false);
    let mut get = delivery(&initiated, true);
    get["requestContext"]["http"]["method"] = Value::from("GET");
    let mut nobody = delivery(&initiated, true);
    nobody["pathParameters"]["provider"] = Value::from("nobody");
    let mut no_provider = delivery(&initiated, true);
    no_provider["pathParameters"] = serde_json::json!({});

    // (event, expected HTTP status), in delivery order.
    let burst: Vec<(Value, i64)> = vec![
        (delivery(&initiated, true), 200),
        (delivery(&unknown_1, true), 200),
        (tampered, 401),
        (delivery(&answered, true), 200),
        (delivery(&initiated, true), 200), // duplicate
        (delivery(&malformed, true), 200),
        (stale, 401),
        (delivery(&hangup, true), 200),
        (delivery(&unknown_1, true), 200), // duplicate of a review event: not unknown again
        (unsigned, 401),
        (delivery(&unknown_2, true), 200),
        (delivery(&hangup, true), 200), // duplicate
        (get, 405),
        (nobody, 404),
        (no_provider, 404),
        (delivery(&ahead, true), 200),
    ];
    let ingest_sink = Sink::memory();
    for (n, (event, status)) in burst.iter().enumerate() {
        let event: ApiGatewayV2httpRequest = serde_json::from_value(event.clone()).unwrap();
        let response = callhook_ingest::respond_with(&ingest, &event, &ingest_sink).await;
        assert_eq!(response.status_code, *status, "delivery {n}: {response:?}");
    }

    let lines = ingest_sink.lines();
    assert_eq!(
        lines.len(),
        15,
        "one EMF line per request that names a provider: {lines:#?}"
    );
    let samples = ingest_sink.samples();
    let received =
        |provider, result| ingest_sink.sum(RECEIVED, &[("provider", provider), ("result", result)]);
    let by_provider = |name| ingest_sink.sum(name, &[("provider", "telnyx")]);
    assert_eq!(received("telnyx", "accepted"), 4.0);
    assert_eq!(received("telnyx", "review"), 3.0);
    assert_eq!(received("telnyx", "duplicate"), 3.0);
    assert_eq!(received("telnyx", "unauthorized"), 3.0);
    assert_eq!(received("telnyx", "method_not_allowed"), 1.0);
    assert_eq!(received("other", "not_found"), 1.0);
    assert_eq!(by_provider(DUPLICATES), 3.0);
    assert_eq!(by_provider(SIGNATURE_FAILURES), 3.0);
    assert_eq!(by_provider(UNKNOWN_TYPES), 2.0);
    assert_eq!(by_provider(MALFORMED), 1.0);
    // Nothing else was counted, and every sample is well-formed EMF.
    let total: f64 = samples_named(&samples, RECEIVED)
        .iter()
        .flat_map(|s| &s.values)
        .sum();
    assert_eq!(total, 15.0);
    assert_eq!(samples.len(), 15 + 3 + 3 + 2 + 1, "{samples:#?}");
    let now_ms = Utc::now().timestamp_millis();
    for sample in &samples {
        assert_eq!(sample.namespace, "callhook");
        assert_eq!(sample.unit, "Count", "{sample:?}");
        assert_eq!(sample.values, [1.0], "{sample:?}");
        assert!(
            sample.dimension_sets.iter().any(Vec::is_empty),
            "the aggregate set: {sample:?}"
        );
        assert!(
            (started_ms..=now_ms).contains(&sample.timestamp_ms),
            "{sample:?}"
        );
    }

    // ---- lifecycle ---------------------------------------------------------------------------
    let lifecycle = stack.lifecycle();
    let lifecycle_sink = Sink::memory();
    let (function, sink) = (&lifecycle, &lifecycle_sink);
    let before_pump = Utc::now();
    let received_messages = stack
        .pump(stack.events_queue(), move |event| async move {
            callhook_lifecycle::process_batch_with(function, &event, sink).await
        })
        .await;
    let pumped_ms = (Utc::now() - before_pump).num_milliseconds() as f64;
    // Four call events, two unknown types, one malformed body; duplicates were not queued.
    assert_eq!(received_messages, 7);
    let lag_samples = lifecycle_sink.samples();
    assert!(
        lag_samples
            .iter()
            .all(|s| s.name == PROCESSING_LAG && s.unit == "Milliseconds"),
        "{lag_samples:#?}"
    );
    assert!(
        lag_samples
            .iter()
            .all(|s| s.is(PROCESSING_LAG, &[("provider", "telnyx")])),
        "{lag_samples:#?}"
    );
    let mut lags: Vec<f64> = lag_samples.iter().flat_map(|s| s.values.clone()).collect();
    lags.sort_by(f64::total_cmp);
    // One per event applied to its call; review events are not processed.
    assert_eq!(lags.len(), 4, "{lags:?}");
    for lag in &lags {
        // Received during this test and applied within the pump, whenever the facts occurred.
        let upper = (Utc::now().timestamp_millis() - started_ms) as f64 + 1.0;
        assert!(
            (0.0..=upper).contains(lag),
            "{lag} ms (pump took {pumped_ms} ms)"
        );
    }

    // ---- dispatch --------------------------------------------------------------------------
    let crm = HttpSink::start(vec![Reply::Status(500, "down".into())]).await;
    let mut dispatch_env = stack.function_env("DispatchFunction");
    dispatch_env.set("CRM_WEBHOOK_URL", &crm.url);
    dispatch_env.set("CRM_SIGNING_SECRET", SECRET);
    dispatch_env.set("DISPATCH_RETRY_BASE_SECS", "1");
    let dispatch = callhook_dispatch::build(&dispatch_env).unwrap();
    let dispatch_queue = stack.provisioned.queues["DispatchQueue"].clone();
    let dispatch_sink = Sink::memory();
    let limit = Duration::from_secs(180);
    let begun = Instant::now();
    loop {
        assert!(begun.elapsed() < limit, "dispatch queue not drained");
        let (function, sink) = (&dispatch, &dispatch_sink);
        let received = poller::poll_once(&stack.sqs, &dispatch_queue, 10, 1, |event| async move {
            callhook_dispatch::process_batch_with(function, &event, sink).await
        })
        .await
        .unwrap();
        if received == 0 && stack.queue_depth(&dispatch_queue).await == 0 {
            break;
        }
    }
    // The completed call: one 500, then one 200.
    assert_eq!(crm.count(), 2);
    assert_eq!(
        dispatch_sink.sum(DISPATCH_ATTEMPTS, &[("route", "crm")]),
        2.0
    );
    assert_eq!(
        dispatch_sink.sum(DISPATCH_FAILURES, &[("route", "crm")]),
        1.0
    );
    let dispatch_samples = dispatch_sink.samples();
    assert!(
        dispatch_samples
            .iter()
            .all(|s| s.unit == "Count" && s.labels == [("route".to_owned(), "crm".to_owned())]),
        "{dispatch_samples:#?}"
    );
    assert_eq!(
        samples_named(&dispatch_samples, DISPATCH_ATTEMPTS).len(),
        2,
        "one line per batch that made an attempt"
    );
}
