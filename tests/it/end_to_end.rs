//! Every provider's full calls through ingest → lifecycle → dispatch on moto, delivered out of
//! order and twice: each call reaches exactly one business system exactly once, signed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use callhook::config::Env;
use callhook::domain::call;
use callhook::domain::event::{CanonicalEvent, Outcome};
use callhook::ports::CallStore;
use callhook::providers::{Delivery, FIXTURE_SEED, Headers, Providers};
use callhook_cli::commands::fixtures;
use callhook_cli::local::poller;
use callhook_integration::{HttpSink, SinkRequest, Stack};
use hmac::{Hmac, Mac};
use proptest::prelude::*;
use serde_json::Value;
use sha2::Digest;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn events_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../events")
}

/// One documented call: provider, sequence name (e.g. `inbound`), bodies in order.
type CallSequence = (String, String, Vec<Vec<u8>>);

/// Each provider's documented call sequences.
fn call_sequences() -> Vec<CallSequence> {
    // (provider, sequence) → (file name, body), sorted by file name below.
    type Files = Vec<(String, Vec<u8>)>;
    let mut sequences: BTreeMap<(String, String), Files> = BTreeMap::new();
    // Every provider with whole calls in events/: a new provider's calls run without being
    // listed here (and must then be in EXPECTED).
    let with_calls =
        callhook::providers::supported().filter(|p| events_dir().join(p).join("bodies").is_dir());
    for provider in with_calls {
        let dir = events_dir().join(provider).join("bodies");
        for entry in std::fs::read_dir(&dir).unwrap() {
            let name = entry.unwrap().file_name().to_string_lossy().into_owned();
            // Numbered files (inbound-01-…) form a call; telnyx's are named by event, and its
            // `-retry` body is a redelivery of call-initiated, not another fact.
            let sequence = if provider == "telnyx" {
                if !name.starts_with("call-") || name.contains("retry") {
                    continue;
                }
                "call".to_owned()
            } else {
                match name.split_once(|c: char| c.is_ascii_digit()) {
                    Some((prefix, _)) if !prefix.is_empty() => {
                        prefix.trim_end_matches('-').to_owned()
                    }
                    _ => continue,
                }
            };
            let body = std::fs::read(dir.join(&name)).unwrap();
            sequences
                .entry((provider.to_owned(), sequence))
                .or_default()
                .push((name, body));
        }
    }
    sequences
        .into_iter()
        .map(|((p, s), mut files)| {
            files.sort();
            (p, s, files.into_iter().map(|(_, b)| b).collect())
        })
        .collect()
}

/// What each documented call must become: (provider, sequence, outcome, transcript and
/// analysis on the final record). Every sequence in `events/*/bodies/` needs a row.
const EXPECTED: &[(&str, &str, Outcome, bool, bool)] = &[
    ("telnyx", "call", Outcome::Completed, false, false),
    ("bird", "inbound", Outcome::Completed, false, false),
    ("bird", "outbound", Outcome::NoAnswer, false, false),
    ("recho", "inbound", Outcome::Completed, false, false),
    ("recho", "outbound", Outcome::Failed, false, false),
    ("miraiminds", "outbound", Outcome::Completed, false, true),
    ("miraiminds", "outbound-retry", Outcome::Busy, false, false),
    ("stateset", "inbound", Outcome::Completed, false, true),
    ("stateset", "outbound", Outcome::Escalated, false, true),
    // Twilio: the inbound call's recording and transcription come after its terminal
    // callback; answering machine detection makes the last call voicemail.
    ("twilio", "inbound", Outcome::Completed, true, false),
    ("twilio", "outbound", Outcome::Completed, false, false),
    ("twilio", "noanswer", Outcome::NoAnswer, false, false),
    ("twilio", "voicemail", Outcome::Voicemail, false, false),
    // Vonage: `timeout` carries the outcome, the `completed` after it (duration 0) none.
    ("vonage", "inbound", Outcome::Completed, false, false),
    ("vonage", "outbound", Outcome::Completed, false, false),
    ("vonage", "unanswered", Outcome::NoAnswer, false, false),
    ("plivo", "inbound", Outcome::Completed, false, false),
    ("plivo", "outbound", Outcome::Completed, false, false),
    ("plivo", "noanswer", Outcome::NoAnswer, false, false),
    // The voice-AI providers: the conversation's transcript and analysis reach the record
    // after the call, in `call_analyzed`, `post_call_transcription`, `end-of-call-report`.
    ("retell", "outbound", Outcome::Completed, true, true),
    ("retell", "transfer", Outcome::Escalated, true, true),
    ("retell", "no-answer", Outcome::NoAnswer, false, false),
    ("elevenlabs", "outbound", Outcome::Completed, true, true),
    ("elevenlabs", "inbound", Outcome::Escalated, true, true),
    ("elevenlabs", "no-answer", Outcome::NoAnswer, false, false),
    ("vapi", "outbound", Outcome::Completed, true, true),
    ("vapi", "inbound", Outcome::Completed, true, true),
    ("vapi", "no-answer", Outcome::NoAnswer, false, false),
];

/// The call id of a documented sequence, as its provider normalizes its first body.
fn call_id_of(providers: &Providers, provider: &str, body: &[u8]) -> String {
    let headers = Headers::new();
    providers
        .get(provider)
        .unwrap()
        .normalize(&Delivery {
            headers: &headers,
            body,
            path_token: None,
            request_url: None,
            received_at: chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
        })
        .call_id
        .unwrap_or_else(|| panic!("{provider}: the first body names no call"))
}

/// Every provider configured with the fixture keys (for normalizing outside ingest).
fn fixture_providers() -> Providers {
    let mut env = Env::default();
    for provider in callhook::providers::supported() {
        let signer = callhook::providers::dev_signer(provider, &FIXTURE_SEED).unwrap();
        for (k, v) in signer.verifier_env() {
            env.set(k, v);
        }
    }
    // The fixture keys are public: accepted in dev mode only.
    env.set("CALLHOOK_DEV", "true");
    Providers::from_env(&env).unwrap()
}

/// Signed as the fixtures are (fixture keys, fixed time), so the environment mirrors
/// events/env.json.
fn ingest_env(stack: &Stack) -> Env {
    let mut env = stack.ingest_env();
    for provider in callhook::providers::supported() {
        env.set(
            &format!("{}_TOLERANCE_SECS", provider.to_ascii_uppercase()),
            fixtures::FIXTURE_TOLERANCE_SECS,
        );
    }
    env
}

/// Standard Webhooks v1 checked with nothing but HMAC-SHA256 and base64, independent of
/// callhook's own implementation.
fn independently_verified(request: &SinkRequest) -> bool {
    let (Some(id), Some(ts), Some(sig)) = (
        request.header("webhook-id"),
        request.header("webhook-timestamp"),
        request.header("webhook-signature"),
    ) else {
        return false;
    };
    let key = B64.decode(SECRET.trim_start_matches("whsec_")).unwrap();
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{ts}.").as_bytes());
    mac.update(&request.body);
    let expected = format!("v1,{}", B64.encode(mac.finalize().into_bytes()));
    sig.split(' ').any(|s| s == expected)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_providers_calls_reach_one_business_system_exactly_once() {
    let stack = Stack::start().await;
    let crm = HttpSink::start(Vec::new()).await;
    let ticketing = HttpSink::start(Vec::new()).await;
    let ingest = callhook_ingest::build(&ingest_env(&stack)).unwrap();
    let mut lifecycle_env = stack.function_env("LifecycleFunction");
    lifecycle_env.set("DISPATCH_SETTLE_SECS", "0");
    let lifecycle = callhook_lifecycle::build(&lifecycle_env).unwrap();
    let mut dispatch_env = stack.function_env("DispatchFunction");
    dispatch_env.set("CRM_WEBHOOK_URL", &crm.url);
    dispatch_env.set("TICKETING_WEBHOOK_URL", &ticketing.url);
    dispatch_env.set("CRM_SIGNING_SECRET", SECRET);
    let dispatch = callhook_dispatch::build(&dispatch_env).unwrap();

    let sequences = call_sequences();
    let providers = fixture_providers();
    // call id → its sequence's row of EXPECTED.
    let mut expected = BTreeMap::new();
    for (provider, sequence, bodies) in &sequences {
        let row = EXPECTED
            .iter()
            .find(|(p, s, ..)| p == provider && s == sequence)
            .unwrap_or_else(|| panic!("{provider}/{sequence}: no row in EXPECTED"));
        let call_id = call_id_of(&providers, provider, &bodies[0]);
        assert!(
            expected.insert(call_id.clone(), row).is_none(),
            "{call_id}: two sequences"
        );
    }
    assert_eq!(
        expected.len(),
        EXPECTED.len(),
        "a row of EXPECTED has no bodies"
    );
    for (provider, sequence, bodies) in &sequences {
        // Last fact first, then the rest backwards, then every fact again in an order
        // shuffled per call (by a digest of its name and position, so a failure reproduces).
        let mut shuffled: Vec<&Vec<u8>> = bodies.iter().collect();
        shuffled.sort_by_cached_key(|body| {
            let position = bodies.iter().position(|b| std::ptr::eq(b, *body)).unwrap();
            sha2::Sha256::digest(format!("{provider}/{sequence}/{position}").as_bytes())
        });
        let deliveries = bodies.iter().rev().chain(shuffled);
        for body in deliveries {
            let mut event = fixtures::wrap(provider, body, false);
            fixtures::sign(&mut event).unwrap();
            let event = serde_json::from_value(event).unwrap();
            let response = callhook_ingest::respond(&ingest, &event).await;
            assert_eq!(
                response.status_code, 200,
                "{provider}/{sequence}: {response:?}"
            );
        }
    }
    stack
        .pump(stack.events_queue(), |e| {
            let lifecycle = &lifecycle;
            async move { callhook_lifecycle::process_batch(lifecycle, &e).await }
        })
        .await;
    stack
        .pump(&stack.provisioned.queues["DispatchQueue"], |e| {
            let dispatch = &dispatch;
            async move { callhook_dispatch::process_batch(dispatch, &e).await }
        })
        .await;

    let mut completions: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    let crm_requests = crm.requests();
    let ticket_requests = ticketing.requests();
    for (route, requests) in [("crm", &crm_requests), ("ticketing", &ticket_requests)] {
        for request in requests.iter() {
            assert!(
                independently_verified(request),
                "{route}: unsigned delivery"
            );
            let body: Value = serde_json::from_slice(&request.body).unwrap();
            if body["type"] == "call.completed" {
                let call_id = body["call"]["call_id"].as_str().unwrap().to_owned();
                completions.entry(call_id).or_default().push(route);
            }
        }
    }
    for message in stack
        .drain(&stack.provisioned.queues["CallbackQueue"])
        .await
    {
        let body: Value = serde_json::from_str(&message).unwrap();
        assert_eq!(body["type"], "callback.requested");
        let call_id = body["call_id"].as_str().unwrap().to_owned();
        completions.entry(call_id).or_default().push("callback");
    }
    assert_eq!(
        completions.len(),
        sequences.len(),
        "one completion per call: {completions:?}"
    );
    // Every call's differences from its documented result, all reported at once.
    let mut wrong = Vec::new();
    for (call_id, routes) in &completions {
        assert_eq!(routes.len(), 1, "{call_id} completed {routes:?}");
        let &&(provider, sequence, outcome, transcript, analysis) = expected
            .get(call_id)
            .unwrap_or_else(|| panic!("{call_id}: completed, but no documented call has it"));
        let name = format!("{provider}/{sequence} ({call_id})");
        let record = lifecycle.calls.get(call_id).await.unwrap().unwrap().record;
        let route = match outcome {
            Outcome::Completed | Outcome::Rescheduled | Outcome::Voicemail => "crm",
            Outcome::Escalated => "ticketing",
            _ => "callback",
        };
        let got = (
            record.is_final(),
            record.outcome,
            routes[0],
            record.transcript.is_some(),
            record.analysis.is_some(),
        );
        let documented = (true, Some(outcome), route, transcript, analysis);
        if got != documented {
            wrong.push(format!(
                "{name}: (final, outcome, route, transcript, analysis) is {got:?}, documented {documented:?}"
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    assert_eq!(
        stack
            .count_items(&stack.provisioned.tables["ReviewTable"])
            .await,
        0
    );
}

/// Canonical events of every provider's sequences, normalized with the providers' own code.
fn canonical_calls() -> Vec<Vec<CanonicalEvent>> {
    let providers = fixture_providers();
    let headers = Headers::new();
    call_sequences()
        .into_iter()
        .map(|(provider, _, bodies)| {
            let p = providers.get(&provider).unwrap();
            bodies
                .iter()
                .map(|body| {
                    p.normalize(&Delivery {
                        headers: &headers,
                        body,
                        path_token: None,
                        request_url: None,
                        received_at: chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
                    })
                })
                .collect()
        })
        .collect()
}

/// The reducer's order-independence, through the real DynamoDB store on moto, for a small
/// sample: any permutation with duplicates gives the in-order record and one finalization.
#[test]
fn any_order_through_the_dynamodb_store_gives_the_same_record() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let stack = runtime.block_on(Stack::start());
    let mut env = stack.function_env("LifecycleFunction");
    env.set("DISPATCH_SETTLE_SECS", "0");
    let function = callhook_lifecycle::build(&env).unwrap();
    let calls = canonical_calls();
    let case = std::sync::atomic::AtomicUsize::new(0);
    let config = ProptestConfig {
        cases: 12,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    proptest!(config, |(pick in 0..calls.len(), order in Just(()).prop_perturb(|_, mut rng| {
        let mut idx: Vec<usize> = (0..32).collect();
        for i in (1..idx.len()).rev() { idx.swap(i, rng.random_range(0..=i)); }
        idx
    }))| {
        let n = case.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        // A fresh call id per case keeps cases apart in one table.
        let events: Vec<CanonicalEvent> = calls[pick].iter().map(|e| {
            let mut e = e.clone();
            e.call_id = e.call_id.map(|c| format!("{c}-case{n}"));
            e.event_id = format!("{}-case{n}", e.event_id);
            e
        }).collect();
        let (expected, _) = call::apply_all(&events);
        let expected = expected.unwrap();
        // Every event twice, in the drawn order.
        let k = events.len();
        let deliveries: Vec<usize> = order.iter().filter(|&&i| i < 2 * k).map(|i| i % k).collect();
        let got = runtime.block_on(async {
            for &i in &deliveries {
                function.apply(&events[i]).await.unwrap();
            }
            function.calls.get(&expected.call_id).await.unwrap().unwrap().record
        });
        let strip = |mut r: call::CallRecord| { r.version = 0; r.finalized_at = None; r };
        // Stored as stored: large facts by reference to their events.
        prop_assert_eq!(strip(got), strip(expected.by_reference()));
    });
    let dispatches = runtime.block_on(stack.drain(&stack.provisioned.queues["DispatchQueue"]));
    let completed = dispatches
        .iter()
        .filter(|m| m.contains("\"call.completed\""))
        .count();
    assert_eq!(completed, 12, "one finalization per case");
}

/// A CRM that hangs holds only the dispatch function: ingest and the lifecycle are separate
/// functions on separate queues, and keep answering while a dispatch waits out its timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_crm_does_not_slow_ingest() {
    let stack = Stack::start().await;
    let crm = HttpSink::start(vec![callhook_integration::Reply::Hang]).await;
    let ingest = callhook_ingest::build(&ingest_env(&stack)).unwrap();
    let mut lifecycle_env = stack.function_env("LifecycleFunction");
    lifecycle_env.set("DISPATCH_SETTLE_SECS", "0");
    let lifecycle = callhook_lifecycle::build(&lifecycle_env).unwrap();
    let mut dispatch_env = stack.function_env("DispatchFunction");
    dispatch_env.set("CRM_WEBHOOK_URL", &crm.url);
    dispatch_env.set("CRM_SIGNING_SECRET", SECRET);
    dispatch_env.set("DISPATCH_TIMEOUT_SECS", "6");
    let dispatch = callhook_dispatch::build(&dispatch_env).unwrap();

    // One finished call, so there is a dispatch to hang on.
    let (_, _, bodies) = call_sequences()
        .into_iter()
        .find(|(p, _, _)| p == "telnyx")
        .unwrap();
    for body in &bodies {
        let mut event = fixtures::wrap("telnyx", body, false);
        fixtures::sign(&mut event).unwrap();
        let response =
            callhook_ingest::respond(&ingest, &serde_json::from_value(event).unwrap()).await;
        assert_eq!(response.status_code, 200);
    }
    stack
        .pump(stack.events_queue(), |e| {
            let lifecycle = &lifecycle;
            async move { callhook_lifecycle::process_batch(lifecycle, &e).await }
        })
        .await;

    let dispatch_queue = stack.provisioned.queues["DispatchQueue"].clone();
    let hanging = async {
        let started = std::time::Instant::now();
        let response = poller::poll_once(&stack.sqs, &dispatch_queue, 10, 1, |e| {
            let dispatch = &dispatch;
            async move { callhook_dispatch::process_batch(dispatch, &e).await }
        })
        .await
        .unwrap();
        (response, started.elapsed())
    };
    let ingesting = async {
        // Let the dispatch reach the CRM first.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let mut slowest = Duration::ZERO;
        for i in 0..10 {
            let body = format!(
                r#"{{"data":{{"event_type":"call.initiated","id":"during-hang-{i}","occurred_at":"2023-11-14T22:12:30Z","payload":{{"call_session_id":"other-{i}"}},"record_type":"event"}},"meta":{{"attempt":1}}}}"#
            );
            let mut event = fixtures::wrap("telnyx", body.as_bytes(), false);
            fixtures::sign(&mut event).unwrap();
            let started = std::time::Instant::now();
            let response =
                callhook_ingest::respond(&ingest, &serde_json::from_value(event).unwrap()).await;
            slowest = slowest.max(started.elapsed());
            assert_eq!(response.status_code, 200);
        }
        slowest
    };
    let ((received, hung_for), slowest_ingest) = tokio::join!(hanging, ingesting);
    // call.completed, and call.updated for the recording that came after the hangup.
    assert_eq!(received, 2);
    assert!(
        hung_for >= Duration::from_secs(5),
        "the CRM did hang ({hung_for:?})"
    );
    // Ten ingests finished while the one dispatch waited out its timeout, each far quicker.
    assert!(
        slowest_ingest < Duration::from_secs(3),
        "slowest ingest during the hang took {slowest_ingest:?}"
    );
    assert_eq!(
        crm.count(),
        2,
        "one attempt each so far; the queue retries the hung one"
    );
}
