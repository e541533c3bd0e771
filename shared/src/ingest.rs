//! The ingest contract (DESIGN §3), free of Lambda types: route → verify the raw bytes →
//! normalize → one conditional write → one queue send → answer.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};

use crate::config::IngestConfig;
use crate::model::CanonicalEvent;
use crate::providers::{Delivery, Headers, Provider, Providers};
use crate::queue::Queue;
use crate::store::{EventStatus, EventStore, Inserted, NewEvent};

/// SQS refuses messages over 256 KiB; leave room for attributes.
pub const MAX_MESSAGE_BYTES: usize = 250 * 1024;

/// DynamoDB refuses items over 400 KB (KiB); leave room for attribute names and small values.
pub const MAX_ITEM_BYTES: usize = 400 * 1024 - 2048;

/// serde_json (the lifecycle reading a queue message) refuses JSON nested deeper than this.
pub const MAX_JSON_DEPTH: usize = 127;

/// One HTTP request as API Gateway hands it over.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    pub method: &'a str,
    pub provider: Option<&'a str>,
    pub token: Option<&'a str>,
    pub headers: Headers,
    pub body: Option<&'a str>,
    pub is_base64_encoded: bool,
    /// `https://{domain}{path}[?{query}]`, for providers that sign the URL.
    pub request_url: Option<String>,
    pub received_at: DateTime<Utc>,
}

/// What ingest made of a request, for logs and metrics (`docs/metrics.md`: the `result` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A new event, stored and queued.
    Accepted,
    /// A new event, stored and queued, that carries a review note.
    Review(ReviewReason),
    /// An event stored before (re-queued if its first send failed).
    Duplicate,
    /// 401: signature, token or timestamp missing, wrong or stale.
    Unauthorized,
    /// 400: a body that cannot be decoded.
    BadRequest,
    /// 404: unknown or unconfigured provider.
    NotFound,
    /// 413: over MAX_BODY_BYTES.
    TooLarge,
    /// 405: not a POST.
    MethodNotAllowed,
    /// 503: DynamoDB or SQS unavailable.
    Unavailable,
}

/// Why a new event needs a person (its review note's reason).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReviewReason {
    /// `unknown_type`: the provider's mapping does not know the event type.
    UnknownType,
    /// `malformed`: an authentic body that is not the documented shape.
    Malformed,
    /// Any other reason a provider gives (e.g. StateSet's `provider_delivery_failed`).
    Other,
}

impl ReviewReason {
    pub fn of(reason: &str) -> ReviewReason {
        match reason {
            "unknown_type" => ReviewReason::UnknownType,
            "malformed" => ReviewReason::Malformed,
            _ => ReviewReason::Other,
        }
    }
}

impl Outcome {
    /// The stable snake_case label (the `result` dimension of `received`).
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Accepted => "accepted",
            Outcome::Review(_) => "review",
            Outcome::Duplicate => "duplicate",
            Outcome::Unauthorized => "unauthorized",
            Outcome::BadRequest => "bad_request",
            Outcome::NotFound => "not_found",
            Outcome::TooLarge => "too_large",
            Outcome::MethodNotAllowed => "method_not_allowed",
            Outcome::Unavailable => "unavailable",
        }
    }

    pub fn status(self) -> u16 {
        match self {
            Outcome::Accepted | Outcome::Review(_) | Outcome::Duplicate => 200,
            Outcome::Unauthorized => 401,
            Outcome::BadRequest => 400,
            Outcome::NotFound => 404,
            Outcome::TooLarge => 413,
            Outcome::MethodNotAllowed => 405,
            Outcome::Unavailable => 503,
        }
    }
}

/// The HTTP answer: status, extra headers, JSON body; and what it means, for logs and metrics.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub headers: Vec<(&'static str, String)>,
    pub body: Value,
    pub outcome: Outcome,
    /// The call the event belongs to, once the request was authentic and named one.
    pub call_id: Option<String>,
}

impl Answer {
    /// The HTTP status, which the outcome decides.
    pub fn status(&self) -> u16 {
        self.outcome.status()
    }

    fn new(outcome: Outcome, body: Value) -> Self {
        Answer {
            headers: Vec::new(),
            body,
            outcome,
            call_id: None,
        }
    }

    fn error(outcome: Outcome, message: impl Into<String>) -> Self {
        Answer::new(
            outcome,
            json!({ "status": "rejected", "error": message.into() }),
        )
    }

    fn unavailable(what: &str) -> Self {
        let mut answer = Answer::new(
            Outcome::Unavailable,
            json!({ "status": "unavailable", "error": format!("{what} is unavailable; retry later") }),
        );
        answer.headers.push(("retry-after", "5".into()));
        answer
    }

    /// The `status` field of the body (`accepted`, `duplicate`, `rejected`, `unavailable`).
    pub fn result(&self) -> &str {
        self.body["status"].as_str().unwrap_or("")
    }
}

/// The ingest function's state, built once per cold start.
pub struct Ingest<S, Q> {
    pub providers: Providers,
    pub store: S,
    pub queue: Q,
    pub config: IngestConfig,
}

impl<S: EventStore, Q: Queue> Ingest<S, Q> {
    /// Answers one request and logs it: one line with provider, event id, call id, outcome,
    /// status and duration. Never a header value, a body or a key: a rejection names only the
    /// failed check.
    pub async fn handle(&self, request: &Request<'_>) -> Answer {
        let started = std::time::Instant::now();
        let answer = self.answer(request).await;
        tracing::info!(
            provider = request.provider.unwrap_or(""),
            event_id = answer.body["event_id"].as_str().unwrap_or(""),
            call_id = answer.call_id.as_deref().unwrap_or(""),
            outcome = answer.outcome.as_str(),
            status = answer.status(),
            result = answer.result(),
            error = answer.body["error"].as_str().unwrap_or(""),
            duration_ms = started.elapsed().as_secs_f64() * 1000.0,
            "ingest"
        );
        answer
    }

    async fn answer(&self, request: &Request<'_>) -> Answer {
        if !request.method.eq_ignore_ascii_case("POST") {
            let mut answer = Answer::error(Outcome::MethodNotAllowed, "only POST is accepted");
            answer.headers.push(("allow", "POST".into()));
            return answer;
        }
        let Some(provider) = request.provider.and_then(|name| self.providers.get(name)) else {
            return Answer::error(Outcome::NotFound, "unknown or unconfigured provider");
        };
        let body = match self.decode_body(request) {
            Ok(body) => body,
            Err(answer) => return answer,
        };
        let delivery = Delivery {
            headers: &request.headers,
            body: &body,
            path_token: request.token,
            request_url: request.request_url.as_deref(),
            received_at: request.received_at,
        };
        if let Err(failed) = provider.verify(&delivery) {
            return Answer::error(Outcome::Unauthorized, failed.to_string());
        }
        let event = provider.normalize(&delivery);
        let mut answer = self.store_and_queue(provider, &delivery, &event).await;
        answer.call_id = event.call_id;
        answer
    }

    fn decode_body(&self, request: &Request<'_>) -> Result<Vec<u8>, Answer> {
        let max = self.config.max_body_bytes;
        let too_large = || Answer::error(Outcome::TooLarge, format!("body exceeds {max} bytes"));
        let text = request.body.unwrap_or("");
        if !request.is_base64_encoded {
            if text.len() > max {
                return Err(too_large());
            }
            return Ok(text.as_bytes().to_vec());
        }
        // Base64 is 4/3 the size: refuse an oversized encoding before decoding it.
        if text.len() / 4 * 3 > max + 3 {
            return Err(too_large());
        }
        let body = B64
            .decode(text)
            .map_err(|_| Answer::error(Outcome::BadRequest, "body is not valid base64"))?;
        if body.len() > max {
            return Err(too_large());
        }
        Ok(body)
    }

    async fn store_and_queue(
        &self,
        provider: &dyn Provider,
        delivery: &Delivery<'_>,
        event: &CanonicalEvent,
    ) -> Answer {
        let headers = delivery.headers.subset(provider.signed_headers());
        let beside = delivery.body.len()
            + headers
                .iter()
                .map(|(k, v)| k.len() + v.len())
                .sum::<usize>()
            + event.event_id.len()
            + event.event_type.len()
            + event.call_id.as_deref().map_or(0, str::len);
        let envelope = stored_envelope(event, MAX_ITEM_BYTES.saturating_sub(beside));
        let retention = Duration::days(self.config.raw_retention_days as i64);
        let new = NewEvent {
            event_id: &event.event_id,
            provider: &event.provider,
            event_type: &event.event_type,
            call_id: event.call_id.as_deref(),
            raw_body: delivery.body,
            headers: &headers,
            envelope_json: &envelope,
            received_at: event.received_at,
            expires_at: event.received_at + retention,
        };
        let message = match self.store.insert_new(&new).await {
            Ok(Inserted::New) => queue_message(event),
            Ok(Inserted::Duplicate(stored)) => {
                let overdue = event.received_at - stored.received_at
                    >= Duration::seconds(self.config.resend_after_secs as i64);
                // Re-queue only a copy that may never have been queued: its send failed, or it
                // is overdue. A duplicate racing the first delivery must not queue it twice.
                if stored.status != EventStatus::Received || !(stored.queue_failed || overdue) {
                    return duplicate(&event.event_id);
                }
                // Normalized as first received, so the message is the one first meant.
                let original = Delivery {
                    headers: &stored.headers,
                    body: &stored.raw_body,
                    path_token: delivery.path_token,
                    request_url: delivery.request_url,
                    received_at: stored.received_at,
                };
                let requeued = provider.normalize(&original);
                if let Err(err) = self.queue.send(queue_message(&requeued), 0).await {
                    tracing::warn!(event_id = %event.event_id, error = %err, "re-send of duplicate failed");
                    return Answer::unavailable("the queue");
                }
                return duplicate(&event.event_id);
            }
            Err(err) => {
                tracing::warn!(event_id = %event.event_id, error = %err, "store failed");
                return Answer::unavailable("storage");
            }
        };
        if let Err(err) = self.queue.send(message, 0).await {
            // The event is stored as RECEIVED: the provider's retry (deduped) or the sweeper
            // will queue it. The mark lets the retry re-send at once.
            tracing::warn!(event_id = %event.event_id, error = %err, "queue send failed");
            if let Err(err) = self.store.mark_queue_failed(&event.event_id).await {
                tracing::warn!(event_id = %event.event_id, error = %err, "could not mark the failed send");
            }
            return Answer::unavailable("the queue");
        }
        let mut body = json!({ "status": "accepted", "event_id": event.event_id });
        let mut outcome = Outcome::Accepted;
        if let Some(note) = &event.review {
            body["review"] = Value::Bool(true);
            outcome = Outcome::Review(ReviewReason::of(&note.reason));
        }
        Answer::new(outcome, body)
    }
}

fn duplicate(event_id: &str) -> Answer {
    Answer::new(
        Outcome::Duplicate,
        json!({ "status": "duplicate", "event_id": event_id }),
    )
}

/// The envelope stored beside the raw body, within `room` bytes. The facts repeat parts of the
/// raw body (a long transcript would be stored twice and pass DynamoDB's item limit): past
/// `room` they are left out; normalizing the stored body again gives them back.
fn stored_envelope(event: &CanonicalEvent, room: usize) -> String {
    let mut envelope = event.envelope();
    let json = serde_json::to_string(&envelope).unwrap_or_default();
    if json.len() <= room {
        return json;
    }
    envelope.facts = Default::default();
    serde_json::to_string(&envelope).unwrap_or_default()
}

/// The canonical event as the queue carries it, always a message the lifecycle can read back.
/// Over the SQS limit, or nested deeper than serde_json reads (a body at its depth limit is one
/// level deeper inside the event), the payload is left out: the raw body stays in the events
/// table and the reducer needs only the canonical fields; if that is still not enough, the
/// facts are left out too.
pub fn queue_message(event: &CanonicalEvent) -> String {
    let full = serde_json::to_string(event).unwrap_or_default();
    if readable(&full) {
        return full;
    }
    tracing::warn!(event_id = %event.event_id, bytes = full.len(), "payload left out of queue message");
    let mut lean = event.envelope();
    let message = serde_json::to_string(&lean).unwrap_or_default();
    if readable(&message) {
        return message;
    }
    tracing::warn!(event_id = %event.event_id, bytes = message.len(), "facts left out of queue message");
    lean.facts = Default::default();
    serde_json::to_string(&lean).unwrap_or_default()
}

fn readable(message: &str) -> bool {
    message.len() <= MAX_MESSAGE_BYTES && nesting(message) <= MAX_JSON_DEPTH
}

/// How deeply JSON text nests arrays and objects.
fn nesting(json: &str) -> usize {
    let (mut depth, mut deepest, mut in_string, mut escaped) = (0usize, 0, false, false);
    for b in json.bytes() {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
        } else {
            match b {
                b'"' => in_string = true,
                b'[' | b'{' => {
                    depth += 1;
                    deepest = deepest.max(depth);
                }
                b']' | b'}' => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
    }
    deepest
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::*;
    use crate::config::Env;
    use crate::providers::{FIXTURE_SEED, dev_signer};
    use crate::queue::MemoryQueue;
    use crate::store::memory::MemoryEventStore;

    fn ingest(max_body_bytes: usize) -> Ingest<MemoryEventStore, MemoryQueue> {
        let mut env = Env::from_pairs(dev_signer("telnyx", &FIXTURE_SEED).unwrap().verifier_env());
        env.set("EVENTS_TABLE", "events");
        env.set("EVENTS_QUEUE_URL", "queue");
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
        assert_eq!(answer.outcome, Outcome::Accepted);
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
        assert_eq!(racing.outcome, Outcome::Duplicate);
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
        assert_eq!(answer.outcome, Outcome::Review(ReviewReason::UnknownType));
        assert_eq!(answer.outcome.as_str(), "review");
        let event: CanonicalEvent = serde_json::from_str(&ingest.queue.taken()[0]).unwrap();
        assert_eq!(event.review.unwrap().reason, "unknown_type");

        // An authentic body that is not the documented shape.
        let answer = ingest
            .handle(&signed(r#"{"data":"not an event"}"#, Utc::now()))
            .await;
        assert_eq!(answer.status(), 200);
        assert_eq!(answer.outcome, Outcome::Review(ReviewReason::Malformed));

        // A duplicate of a review event is a duplicate.
        let again = ingest.handle(&signed(&body, Utc::now())).await;
        assert_eq!(again.outcome, Outcome::Duplicate);
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
        assert_eq!(answer.outcome, Outcome::Unauthorized);
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
        assert_eq!(answer.outcome, Outcome::MethodNotAllowed);
        assert_eq!(answer.headers, vec![("allow", "POST".to_owned())]);

        for provider in [Some("nobody"), Some("bird"), None] {
            let req = Request {
                provider,
                ..signed(&body, now)
            };
            let answer = ingest.handle(&req).await;
            assert_eq!(answer.status(), 404, "{provider:?}");
            assert_eq!(answer.outcome, Outcome::NotFound);
        }

        let answer = ingest.handle(&signed(&body, now)).await;
        assert_eq!((answer.status(), answer.outcome), (413, Outcome::TooLarge));

        let bad64 = Request {
            body: Some("!!not base64!!"),
            is_base64_encoded: true,
            ..signed(&body, now)
        };
        let answer = ingest.handle(&bad64).await;
        assert_eq!(
            (answer.status(), answer.outcome),
            (400, Outcome::BadRequest)
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
        let now = Utc::now();

        ingest.store.fail.store(true, Ordering::SeqCst);
        let answer = ingest.handle(&signed(&body, now)).await;
        assert_eq!(answer.status(), 503);
        assert_eq!(answer.outcome, Outcome::Unavailable);
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
        assert_eq!(event.received_at, now, "the stored copy is what is queued");
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
        env.set("EVENTS_QUEUE_URL", "queue");
        let secret = signer.verifier_env()[0].1.clone();
        assert!(secret.starts_with("whsec_"));
        let ingest = Ingest {
            providers: Providers::from_env(&env).unwrap(),
            store: MemoryEventStore::default(),
            queue: MemoryQueue::default(),
            config: IngestConfig::from_env(&env).unwrap(),
        };
        let body = r#"{"type":"call.answered","timestamp":"2024-01-01T00:00:00Z","data":{"call_id":"c-77"}}"#;
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
        assert_eq!(accepted.outcome, Outcome::Accepted);
        let tampered = body.replace("c-77", "c-78");
        let rejected = ingest.handle(&request(&tampered)).await;
        assert_eq!(rejected.outcome, Outcome::Unauthorized);

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
            if name == crate::standard_webhooks::SIGNATURE {
                secrets.push(value.clone());
                // `v1,<base64>`: the signature itself too.
                secrets.extend(value.split([',', ' ']).map(str::to_owned));
            }
        }
        for secret in secrets.iter().filter(|s| s.len() > 4) {
            assert!(!logs.contains(secret.as_str()), "{secret:?} logged: {logs}");
        }
    }

    #[test]
    fn queue_messages_stay_within_serde_json_depth() {
        assert_eq!(nesting(r#"{"a":["[{\"]",{"b":"}}}"}]}"#), 3);
        let mut event = CanonicalEvent::new("telnyx", "deep", "", Utc::now());
        event.data =
            serde_json::from_str(&format!("{}{}", "[".repeat(127), "]".repeat(127))).unwrap();
        let back: CanonicalEvent = serde_json::from_str(&queue_message(&event)).unwrap();
        assert!(back.data.is_null());
    }

    #[test]
    fn oversized_payloads_leave_the_queue_message_lean() {
        let mut event = CanonicalEvent::new("telnyx", "big", "call.hangup", Utc::now());
        event.data = Value::String("x".repeat(MAX_MESSAGE_BYTES));
        let message = queue_message(&event);
        assert!(message.len() < 1024);
        let back: CanonicalEvent = serde_json::from_str(&message).unwrap();
        assert_eq!(back.event_id, "telnyx#big");
        assert!(back.data.is_null());
    }
}
