use std::sync::atomic::Ordering;

use chrono::SubsecRound;

use super::*;
use crate::config::Env;
use crate::providers::{FIXTURE_SEED, dev_signer};
use crate::testing::{MemoryEventStore, MemoryQueue};

fn ingest(max_body_bytes: usize) -> Ingest<MemoryEventStore, MemoryQueue> {
    let mut env = Env::from_pairs(dev_signer("telnyx", &FIXTURE_SEED).unwrap().verifier_env());
    env.set("EVENTS_TABLE", "events");
    env.set("EVENTS_BUCKET", "bodies");
    env.set("EVENTS_QUEUE_URL", "queue");
    // The fixture keys are public: accepted in dev mode only.
    env.set("CALLHOOK_DEV", "true");
    env.set("MAX_BODY_BYTES", max_body_bytes.to_string());
    Ingest {
        providers: Providers::from_env(&env).unwrap(),
        store: MemoryEventStore::default(),
        queue: MemoryQueue::default(),
        config: IngestConfig::from_env(&env).unwrap(),
    }
}

fn body(event_type: &str, id: &str) -> String {
    format!(
        r#"{{"data":{{"event_type":"{event_type}","id":"{id}","occurred_at":"2024-01-01T00:00:00Z","payload":{{"call_session_id":"s1"}},"record_type":"event"}},"meta":{{"attempt":1}}}}"#
    )
}

fn signed<'a>(body: &'a str, now: DateTime<Utc>) -> Request<'a> {
    let signed =
        dev_signer("telnyx", &FIXTURE_SEED)
            .unwrap()
            .sign(body.as_bytes(), now.timestamp(), "");
    Request {
        method: "POST",
        provider: Some("telnyx"),
        token: None,
        headers: signed.headers.into_iter().collect(),
        body: Some(body),
        is_base64_encoded: false,
        request_url: None,
        received_at: now,
    }
}

#[test]
fn a_requests_debug_hides_its_token_headers_body_and_url() {
    let request = Request {
        method: "POST",
        provider: Some("miraiminds"),
        token: Some("s3cret-path-token"),
        headers: [("authorization", "Bearer s3cret-bearer")]
            .into_iter()
            .collect(),
        body: Some(r#"{"card":"s3cret-body"}"#),
        is_base64_encoded: false,
        request_url: Some("https://h.example/webhooks/miraiminds/s3cret-path-token".into()),
        received_at: Utc::now(),
    };
    let debug = format!("{request:?}");
    for shown in ["POST", "miraiminds", "authorization", "22 bytes"] {
        assert!(debug.contains(shown), "{shown}: {debug}");
    }
    assert!(!debug.contains("s3cret"), "{debug}");
}

#[tokio::test]
async fn new_event_is_stored_and_queued_once() {
    let ingest = ingest(1024);
    let body = body("call.initiated", "e1");
    let answer = ingest.handle(&signed(&body, Utc::now())).await;
    assert_eq!(answer.status(), 200);
    assert_eq!(
        answer.body,
        json!({"status":"accepted","event_id":"telnyx#e1"})
    );
    assert_eq!(answer.outcome, IngestOutcome::Accepted);
    assert_eq!(answer.call_id.as_deref(), Some("telnyx#s1"));
    assert_eq!(ingest.store.len(), 1);
    let queued = ingest.queue.taken();
    assert_eq!(queued.len(), 1);
    let event: CanonicalEvent = serde_json::from_str(&queued[0]).unwrap();
    assert_eq!(event.event_id, "telnyx#e1");
    assert_eq!(event.call_id.as_deref(), Some("telnyx#s1"));
    let stored = ingest.store.events.lock().unwrap()["telnyx#e1"].clone();
    assert_eq!(stored.raw_body, body.as_bytes());
    assert!(stored.headers.get("telnyx-signature-ed25519").is_some());
}

#[tokio::test]
async fn duplicate_resends_only_when_overdue_and_still_received() {
    let ingest = ingest(1024);
    let body = body("call.answered", "e2");
    let first = Utc::now();
    ingest.handle(&signed(&body, first)).await;
    ingest.queue.taken();

    let racing = ingest
        .handle(&signed(&body, first + Duration::seconds(1)))
        .await;
    assert_eq!(
        racing.body,
        json!({"status":"duplicate","event_id":"telnyx#e2"})
    );
    assert_eq!(racing.outcome, IngestOutcome::Duplicate);
    assert!(
        ingest.queue.taken().is_empty(),
        "the first delivery queued it"
    );

    let late = first + Duration::seconds(15);
    let again = ingest.handle(&signed(&body, late)).await;
    assert_eq!(again.result(), "duplicate");
    assert_eq!(
        ingest.queue.taken().len(),
        1,
        "overdue and still RECEIVED: re-sent"
    );

    ingest.store.set_status("telnyx#e2", EventStatus::Processed);
    let third = ingest.handle(&signed(&body, late)).await;
    assert_eq!(third.result(), "duplicate");
    assert!(ingest.queue.taken().is_empty(), "processed: not re-sent");
    assert_eq!(ingest.store.len(), 1);
}

#[tokio::test]
async fn unknown_type_is_accepted_for_review() {
    let ingest = ingest(1024);
    let body = body("call.teleported", "e3");
    let answer = ingest.handle(&signed(&body, Utc::now())).await;
    assert_eq!(
        answer.body,
        json!({"status":"accepted","event_id":"telnyx#e3","review":true})
    );
    assert_eq!(
        answer.outcome,
        IngestOutcome::Review(ReviewReason::UnknownType)
    );
    assert_eq!(answer.outcome.as_str(), "review");
    let event: CanonicalEvent = serde_json::from_str(&ingest.queue.taken()[0]).unwrap();
    assert_eq!(event.review.unwrap().reason, "unknown_type");

    // An authentic body that is not the documented shape.
    let answer = ingest
        .handle(&signed(r#"{"data":"not an event"}"#, Utc::now()))
        .await;
    assert_eq!(answer.status(), 200);
    assert_eq!(
        answer.outcome,
        IngestOutcome::Review(ReviewReason::Malformed)
    );

    // A duplicate of a review event is a duplicate.
    let again = ingest.handle(&signed(&body, Utc::now())).await;
    assert_eq!(again.outcome, IngestOutcome::Duplicate);
}

#[tokio::test]
async fn authentication_failures_are_401_and_store_nothing() {
    let ingest = ingest(1024);
    let body = body("call.initiated", "e4");
    let now = Utc::now();

    let mut tampered = signed(&body, now);
    let changed = body.replace("e4", "e5");
    tampered.body = Some(&changed);
    let answer = ingest.handle(&tampered).await;
    assert_eq!(answer.status(), 401);
    assert_eq!(answer.outcome, IngestOutcome::Unauthorized);
    assert_eq!(answer.call_id, None);
    assert_eq!(answer.body["error"], "signature does not match");

    let stale = signed(&body, now - Duration::seconds(301));
    let stale = Request {
        received_at: now,
        ..stale
    };
    let answer = ingest.handle(&stale).await;
    assert_eq!(answer.status(), 401);
    assert!(answer.body["error"].as_str().unwrap().contains("timestamp"));

    let mut unsigned = signed(&body, now);
    unsigned.headers = Headers::new();
    let answer = ingest.handle(&unsigned).await;
    assert_eq!(answer.status(), 401);
    assert_eq!(
        answer.body["error"],
        "missing header telnyx-signature-ed25519"
    );
    assert!(ingest.store.is_empty());
    assert!(ingest.queue.taken().is_empty());
}

#[tokio::test]
async fn routing_method_size_and_encoding_answers() {
    let ingest = ingest(64);
    let body = body("call.initiated", "e6");
    let now = Utc::now();

    let get = Request {
        method: "GET",
        ..signed(&body, now)
    };
    let answer = ingest.handle(&get).await;
    assert_eq!(answer.status(), 405);
    assert_eq!(answer.outcome, IngestOutcome::MethodNotAllowed);
    assert_eq!(answer.headers, vec![("allow", "POST".to_owned())]);

    for provider in [Some("nobody"), Some("bird"), None] {
        let req = Request {
            provider,
            ..signed(&body, now)
        };
        let answer = ingest.handle(&req).await;
        assert_eq!(answer.status(), 404, "{provider:?}");
        assert_eq!(answer.outcome, IngestOutcome::NotFound);
    }

    let answer = ingest.handle(&signed(&body, now)).await;
    assert_eq!(
        (answer.status(), answer.outcome),
        (413, IngestOutcome::TooLarge)
    );

    let bad64 = Request {
        body: Some("!!not base64!!"),
        is_base64_encoded: true,
        ..signed(&body, now)
    };
    let answer = ingest.handle(&bad64).await;
    assert_eq!(
        (answer.status(), answer.outcome),
        (400, IngestOutcome::BadRequest)
    );

    let big64 = "QUFB".repeat(40);
    let big = Request {
        body: Some(&big64),
        is_base64_encoded: true,
        ..signed(&body, now)
    };
    assert_eq!(ingest.handle(&big).await.status(), 413);
    assert!(ingest.store.is_empty());
}

#[tokio::test]
async fn base64_bodies_are_verified_on_their_decoded_bytes() {
    let ingest = ingest(1024);
    let body = body("call.initiated", "e7");
    let encoded = B64.encode(&body);
    let req = Request {
        body: Some(&encoded),
        is_base64_encoded: true,
        ..signed(&body, Utc::now())
    };
    assert_eq!(ingest.handle(&req).await.result(), "accepted");
}

#[tokio::test]
async fn store_or_queue_failure_is_503_and_the_retry_recovers() {
    let ingest = ingest(1024);
    let body = body("call.hangup", "e8");
    // Milliseconds, as ingest keeps the receipt time.
    let now = Utc::now().trunc_subsecs(3);

    ingest.store.fail.store(true, Ordering::SeqCst);
    let answer = ingest.handle(&signed(&body, now)).await;
    assert_eq!(answer.status(), 503);
    assert_eq!(answer.outcome, IngestOutcome::Unavailable);
    assert!(ingest.queue.taken().is_empty());
    ingest.store.fail.store(false, Ordering::SeqCst);

    ingest.queue.fail.store(true, Ordering::SeqCst);
    assert_eq!(ingest.handle(&signed(&body, now)).await.status(), 503);
    assert_eq!(ingest.store.len(), 1, "the write was durable");
    ingest.queue.fail.store(false, Ordering::SeqCst);

    let retry = ingest
        .handle(&signed(&body, now + Duration::seconds(10)))
        .await;
    assert_eq!(retry.status(), 200);
    assert_eq!(retry.result(), "duplicate");
    let queued = ingest.queue.taken();
    assert_eq!(queued.len(), 1);
    let event: CanonicalEvent = serde_json::from_str(&queued[0]).unwrap();
    assert_eq!(event.event_id, "telnyx#e8");
    // Stored to the millisecond, as every later reading of the event sees it.
    assert_eq!(
        event.received_at,
        now.trunc_subsecs(3),
        "the stored copy is what is queued"
    );
}

/// What tracing writes, captured.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;

    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

/// Logs name the event, the call, the outcome and the duration, and never a signature
/// header's value or a configured secret, whether the request is accepted or rejected.
#[tokio::test(flavor = "current_thread")]
async fn logs_carry_the_event_and_never_a_signature_or_a_secret() {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(captured.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let signer = dev_signer("standard", &FIXTURE_SEED).unwrap();
    let mut env = Env::from_pairs(signer.verifier_env());
    env.set("EVENTS_TABLE", "events");
    env.set("EVENTS_BUCKET", "bodies");
    env.set("EVENTS_QUEUE_URL", "queue");
    // The fixture keys are public: accepted in dev mode only.
    env.set("CALLHOOK_DEV", "true");
    let secret = signer.verifier_env()[0].1.clone();
    assert!(secret.starts_with("whsec_"));
    let ingest = Ingest {
        providers: Providers::from_env(&env).unwrap(),
        store: MemoryEventStore::default(),
        queue: MemoryQueue::default(),
        config: IngestConfig::from_env(&env).unwrap(),
    };
    let body =
        r#"{"type":"call.answered","timestamp":"2024-01-01T00:00:00Z","data":{"call_id":"c-77"}}"#;
    let now = Utc::now();
    let signature = signer.sign(body.as_bytes(), now.timestamp(), "");
    let request = |body| Request {
        method: "POST",
        provider: Some("standard"),
        token: None,
        headers: signature.headers.iter().cloned().collect(),
        body: Some(body),
        is_base64_encoded: false,
        request_url: None,
        received_at: now,
    };
    let accepted = ingest.handle(&request(body)).await;
    assert_eq!(accepted.outcome, IngestOutcome::Accepted);
    let tampered = body.replace("c-77", "c-78");
    let rejected = ingest.handle(&request(&tampered)).await;
    assert_eq!(rejected.outcome, IngestOutcome::Unauthorized);

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<Value> = logs
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{logs}");
    let event_id = accepted.body["event_id"].as_str().unwrap();
    let fields = &lines[0]["fields"];
    assert_eq!(fields["event_id"], event_id);
    assert_eq!(fields["provider"], "standard");
    assert_eq!(fields["call_id"], "standard#c-77");
    assert_eq!(fields["outcome"], "accepted");
    assert!(fields["duration_ms"].as_f64().unwrap() >= 0.0);
    assert_eq!(lines[1]["fields"]["outcome"], "unauthorized");
    assert!(lines[1]["fields"]["duration_ms"].is_number());

    let mut secrets = vec![secret.clone(), secret["whsec_".len()..].to_owned()];
    for (name, value) in &signature.headers {
        if name == crate::signing::standard_webhooks::SIGNATURE {
            secrets.push(value.clone());
            // `v1,<base64>`: the signature itself too.
            secrets.extend(value.split([',', ' ']).map(str::to_owned));
        }
    }
    for secret in secrets.iter().filter(|s| s.len() > 4) {
        assert!(!logs.contains(secret.as_str()), "{secret:?} logged: {logs}");
    }
}

/// A provider that signs the URL: the URL is stored with the body, so the stored copy verifies
/// again (and replay, the sweeper and dispatch normalize it as first received).
#[tokio::test]
async fn a_url_signed_delivery_is_stored_so_it_verifies_again() {
    let signer = dev_signer("twilio", &FIXTURE_SEED).unwrap();
    let mut env = Env::from_pairs(signer.verifier_env());
    env.set("EVENTS_TABLE", "events");
    env.set("EVENTS_BUCKET", "bodies");
    env.set("EVENTS_QUEUE_URL", "queue");
    // The fixture keys are public: accepted in dev mode only.
    env.set("CALLHOOK_DEV", "true");
    let ingest = Ingest {
        providers: Providers::from_env(&env).unwrap(),
        store: MemoryEventStore::default(),
        queue: MemoryQueue::default(),
        config: IngestConfig::from_env(&env).unwrap(),
    };
    let body = "AccountSid=AC1&CallSid=CA1&CallStatus=ringing&SequenceNumber=1&Direction=inbound";
    let url = "https://hooks.example.com/webhooks/twilio?x=1";
    let now = Utc::now();
    let signed = signer.sign(body.as_bytes(), now.timestamp(), url);
    let request = Request {
        method: "POST",
        provider: Some("twilio"),
        token: None,
        headers: signed.headers.into_iter().collect(),
        body: Some(body),
        is_base64_encoded: false,
        request_url: Some(signed.url.unwrap_or_else(|| url.to_owned())),
        received_at: now,
    };
    let answer = ingest.handle(&request).await;
    assert_eq!(answer.status(), 200, "{:?}", answer.body);
    let event_id = answer.body["event_id"].as_str().unwrap();
    let stored = ingest.store.events.lock().unwrap()[event_id].clone();
    assert_eq!(
        stored.headers.get(REQUEST_URL),
        request.request_url.as_deref()
    );
    let twilio = ingest.providers.get("twilio").unwrap();
    assert_eq!(twilio.verify(&stored.delivery()), Ok(()));

    // Without its URL the copy could not be checked: the signature covers it.
    let mut without = stored.clone();
    without.headers = stored
        .headers
        .iter()
        .filter(|(name, _)| *name != REQUEST_URL)
        .collect();
    assert!(twilio.verify(&without.delivery()).is_err());
}

/// A huge RAW_RETENTION_DAYS or RESEND_AFTER_SECS once passed configuration and made chrono panic
/// on every request (`TimeDelta::days` / `TimeDelta::seconds` out of range): it must be refused
/// at cold start instead.
#[tokio::test]
async fn huge_retention_or_resend_delay_is_a_config_error_not_a_panic_per_request() {
    for (var, value) in [
        ("RAW_RETENTION_DAYS", "1000000000000"),
        ("RESEND_AFTER_SECS", "100000000000000000"),
    ] {
        let mut env = Env::from_pairs(dev_signer("telnyx", &FIXTURE_SEED).unwrap().verifier_env());
        env.set("EVENTS_TABLE", "events");
        env.set("EVENTS_QUEUE_URL", "queue");
        env.set("EVENTS_BUCKET", "bodies");
        env.set("CALLHOOK_DEV", "true");
        env.set(var, value);
        let config = match IngestConfig::from_env(&env) {
            Err(err) => {
                assert!(
                    err.to_string().starts_with(&format!("{var} is invalid")),
                    "{err}"
                );
                continue;
            }
            Ok(config) => config,
        };
        let ingest = Ingest {
            providers: Providers::from_env(&env).unwrap(),
            store: MemoryEventStore::default(),
            queue: MemoryQueue::default(),
            config,
        };
        let body = body("call.initiated", "huge");
        let now = Utc::now();
        // The first delivery stores (retention), a late copy compares with RESEND_AFTER_SECS.
        ingest.handle(&signed(&body, now)).await;
        ingest
            .handle(&signed(&body, now + Duration::seconds(60)))
            .await;
        panic!("{var}={value} was accepted, and requests survived it");
    }
}

/// Two Standard Webhooks senders (`STANDARD_WEBHOOK_SECRETS=acme=…,beta=…`): what one sends
/// can never deduplicate against, or change, the other's events and calls, even with the same
/// webhook-id and call id; the stored copy normalizes again to the same ids.
#[tokio::test]
async fn one_standard_webhooks_sender_never_collides_with_another() {
    use crate::signing::standard_webhooks as sw;
    let (acme, beta) = ([0xac; 32], [0xbe; 32]);
    let mut env = Env::from_pairs([(
        "STANDARD_WEBHOOK_SECRETS",
        format!(
            "acme={},beta={},{}",
            sw::encode_secret(&acme),
            sw::encode_secret(&beta),
            sw::encode_secret(&[0xde; 32])
        ),
    )]);
    env.set("EVENTS_TABLE", "events");
    env.set("EVENTS_QUEUE_URL", "queue");
    env.set("EVENTS_BUCKET", "bodies");
    let ingest = Ingest {
        providers: Providers::from_env(&env).unwrap(),
        store: MemoryEventStore::default(),
        queue: MemoryQueue::default(),
        config: IngestConfig::from_env(&env).unwrap(),
    };
    let body = r#"{"type":"call.ended","data":{"call_id":"c-1","outcome":"busy"}}"#;
    let now = Utc::now();
    let from = |secret: &[u8], id: &str| {
        let headers: Headers = [
            (sw::ID, id.to_owned()),
            (sw::TIMESTAMP, now.timestamp().to_string()),
            (
                sw::SIGNATURE,
                sw::sign(secret, id, now.timestamp(), body.as_bytes()),
            ),
        ]
        .into_iter()
        .collect();
        Request {
            method: "POST",
            provider: Some("standard"),
            token: None,
            headers,
            body: Some(body),
            is_base64_encoded: false,
            request_url: None,
            received_at: now,
        }
    };
    // acme sends beta's future message id first: beta's own message is still new.
    let first = ingest.handle(&from(&acme, "msg_1")).await;
    let second = ingest.handle(&from(&beta, "msg_1")).await;
    let third = ingest.handle(&from(&[0xde; 32], "msg_1")).await;
    assert_eq!(
        first.body,
        json!({"status":"accepted","event_id":"standard#acme#msg_1"})
    );
    assert_eq!(
        second.body,
        json!({"status":"accepted","event_id":"standard#beta#msg_1"})
    );
    // The unnamed sender (`default`) keeps the ids stored before senders had names.
    assert_eq!(
        third.body,
        json!({"status":"accepted","event_id":"standard#msg_1"})
    );
    assert_eq!(first.call_id.as_deref(), Some("standard#acme#c-1"));
    assert_eq!(second.call_id.as_deref(), Some("standard#beta#c-1"));
    assert_eq!(third.call_id.as_deref(), Some("standard#c-1"));
    // The default sender cannot spell a named sender's ids either.
    let spoof = ingest.handle(&from(&[0xde; 32], "acme#msg_2")).await;
    assert_eq!(spoof.body["event_id"], "standard#default#acme#msg_2");
    // A stored copy normalizes again to its id (replay, the sweeper, a re-send).
    let normalizers = Providers::normalizers(&Env::default()).unwrap();
    for id in [
        "standard#acme#msg_1",
        "standard#beta#msg_1",
        "standard#msg_1",
    ] {
        let stored = ingest.store.events.lock().unwrap()[id].clone();
        let again = normalizers
            .get("standard")
            .unwrap()
            .normalize(&stored.delivery());
        assert_eq!(again.event_id, id);
    }
}

/// RECHO_AUTH=none (with RECHO_ALLOW_UNAUTHENTICATED=true): every event is marked
/// unauthenticated — in the queued event, in the stored copy (so replay and the sweeper agree),
/// and in the call record the lifecycle makes of it, which dispatch then keeps away from the
/// call-back route. Each cold start warns and writes a metric.
#[tokio::test]
async fn an_unauthenticated_providers_events_are_marked_from_ingest_to_the_record() {
    let env = Env::from_pairs([
        ("RECHO_AUTH", "none"),
        ("RECHO_ALLOW_UNAUTHENTICATED", "true"),
        ("EVENTS_TABLE", "events"),
        ("EVENTS_QUEUE_URL", "queue"),
        ("EVENTS_BUCKET", "bodies"),
    ]);
    let ingest = Ingest {
        providers: Providers::from_env(&env).unwrap(),
        store: MemoryEventStore::default(),
        queue: MemoryQueue::default(),
        config: IngestConfig::from_env(&env).unwrap(),
    };
    let sink = crate::observability::emf::Sink::memory();
    assert_eq!(
        crate::observability::metrics::warn_unauthenticated(&ingest.providers, &sink),
        vec!["recho"]
    );
    let lines = sink.lines();
    assert_eq!(lines.len(), 1, "{lines:?}");
    let line: Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(
        line["unauthenticated_providers"].as_f64(),
        Some(1.0),
        "{line}"
    );
    assert_eq!(line["provider"], "recho");

    let body =
        r#"{"projectId":"p","eventType":"OUTBOUND_CALL_BUSY","body":{"data":{"callId":"c-9"}}}"#;
    let request = Request {
        method: "POST",
        provider: Some("recho"),
        token: None,
        // A request cannot set the mark (or clear it) itself.
        headers: [(crate::delivery::UNAUTHENTICATED, "false")]
            .into_iter()
            .collect(),
        body: Some(body),
        is_base64_encoded: false,
        request_url: None,
        received_at: Utc::now(),
    };
    let answer = ingest.handle(&request).await;
    assert_eq!(answer.status(), 200, "{answer:?}");
    let queued: CanonicalEvent = serde_json::from_str(&ingest.queue.taken()[0]).unwrap();
    assert!(queued.unauthenticated);
    let id = answer.body["event_id"].as_str().unwrap().to_owned();
    let stored = ingest.store.events.lock().unwrap()[&id].clone();
    let normalizers = Providers::normalizers(&Env::default()).unwrap();
    assert!(
        normalizers
            .get("recho")
            .unwrap()
            .normalize(&stored.delivery())
            .unauthenticated
    );
    let (record, _) = crate::domain::call::apply(None, &queued);
    assert!(record.unwrap().unauthenticated);

    // An authenticated provider warns of nothing.
    let quiet = crate::observability::emf::Sink::memory();
    let telnyx = ingest_providers_of("telnyx");
    assert!(crate::observability::metrics::warn_unauthenticated(&telnyx, &quiet).is_empty());
    assert!(quiet.lines().is_empty());
}

fn ingest_providers_of(provider: &str) -> Providers {
    let mut env = Env::from_pairs(dev_signer(provider, &FIXTURE_SEED).unwrap().verifier_env());
    env.set("CALLHOOK_DEV", "true");
    Providers::from_env(&env).unwrap()
}
