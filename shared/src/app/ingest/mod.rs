//! The ingest function's work for one request, free of Lambda types: route → verify the raw
//! bytes → normalize → one conditional write → one queue send → answer (the HTTP answers are in
//! docs/architecture.md, "What ingest answers").

use std::borrow::Cow;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use chrono::{DateTime, Duration, SubsecRound, Utc};
use serde_json::{Value, json};

use super::events_queue::queue_message;
use crate::config::IngestConfig;
use crate::delivery::{Delivery, Headers, REQUEST_URL, VERIFIED_HEADERS, Verified};
use crate::domain::event::CanonicalEvent;
use crate::domain::review::ReviewReason;
use crate::ports::{EventStatus, EventStore, Inserted, NewEvent, Queue, StoreError};
use crate::providers::{Provider, Providers};

/// One HTTP request as API Gateway hands it over.
#[derive(Clone)]
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

/// The path token and URL (which may carry it) hidden, headers as [`Headers`] shows them, the
/// body by its length.
impl std::fmt::Debug for Request<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hidden = |present: bool| if present { Some("***") } else { None };
        f.debug_struct("Request")
            .field("method", &self.method)
            .field("provider", &self.provider)
            .field("token", &hidden(self.token.is_some()))
            .field("headers", &self.headers)
            .field("body", &self.body.map(|b| format!("<{} bytes>", b.len())))
            .field("is_base64_encoded", &self.is_base64_encoded)
            .field("request_url", &hidden(self.request_url.is_some()))
            .field("received_at", &self.received_at)
            .finish()
    }
}

/// What ingest made of a request, for logs and metrics (`docs/metrics.md`: the `result` label).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IngestOutcome {
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

impl IngestOutcome {
    /// The stable snake_case label (the `result` dimension of `received`).
    pub fn as_str(&self) -> &'static str {
        match self {
            IngestOutcome::Accepted => "accepted",
            IngestOutcome::Review(_) => "review",
            IngestOutcome::Duplicate => "duplicate",
            IngestOutcome::Unauthorized => "unauthorized",
            IngestOutcome::BadRequest => "bad_request",
            IngestOutcome::NotFound => "not_found",
            IngestOutcome::TooLarge => "too_large",
            IngestOutcome::MethodNotAllowed => "method_not_allowed",
            IngestOutcome::Unavailable => "unavailable",
        }
    }

    pub fn status(&self) -> u16 {
        match self {
            IngestOutcome::Accepted | IngestOutcome::Review(_) | IngestOutcome::Duplicate => 200,
            IngestOutcome::Unauthorized => 401,
            IngestOutcome::BadRequest => 400,
            IngestOutcome::NotFound => 404,
            IngestOutcome::TooLarge => 413,
            IngestOutcome::MethodNotAllowed => 405,
            IngestOutcome::Unavailable => 503,
        }
    }
}

/// The HTTP answer: status, extra headers, JSON body; and what it means, for logs and metrics.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub headers: Vec<(&'static str, String)>,
    pub body: Value,
    pub outcome: IngestOutcome,
    /// The call the event belongs to, once the request was authentic and named one.
    pub call_id: Option<String>,
}

impl Answer {
    /// The HTTP status, which the outcome decides.
    pub fn status(&self) -> u16 {
        self.outcome.status()
    }

    fn new(outcome: IngestOutcome, body: Value) -> Self {
        Answer {
            headers: Vec::new(),
            body,
            outcome,
            call_id: None,
        }
    }

    fn error(outcome: IngestOutcome, message: impl Into<String>) -> Self {
        Answer::new(
            outcome,
            json!({ "status": "rejected", "error": message.into() }),
        )
    }

    fn unavailable(what: &str) -> Self {
        let mut answer = Answer::new(
            IngestOutcome::Unavailable,
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
            let mut answer =
                Answer::error(IngestOutcome::MethodNotAllowed, "only POST is accepted");
            answer.headers.push(("allow", "POST".into()));
            return answer;
        }
        let Some(provider) = request.provider.and_then(|name| self.providers.get(name)) else {
            return Answer::error(IngestOutcome::NotFound, "unknown or unconfigured provider");
        };
        let body = match self.decode_body(request) {
            Ok(body) => body,
            Err(answer) => return answer,
        };
        // Pseudo-headers (`:…`) are ingest's own: none a request brought is kept.
        let headers = Verified::default().apply(&request.headers);
        let delivery = Delivery {
            headers: &headers,
            body: &body,
            path_token: request.token,
            request_url: request.request_url.as_deref(),
            // Milliseconds, as stored: every later reading of the event agrees with this one.
            received_at: request.received_at.trunc_subsecs(3),
        };
        let verified = match provider.authenticate(&delivery) {
            Ok(verified) => verified,
            Err(failed) => return Answer::error(IngestOutcome::Unauthorized, failed.to_string()),
        };
        // What the check established travels with the delivery: normalize reads it, and it is
        // stored, so the stored copy normalizes to the same ids.
        let headers = verified.apply(&headers);
        let delivery = Delivery {
            headers: &headers,
            ..delivery
        };
        let event = provider.normalize(&delivery);
        let mut answer = self.store_and_queue(provider, &delivery, &event).await;
        answer.call_id = event.call_id;
        answer
    }

    /// The body's bytes: borrowed from the request when API Gateway passed it as text (no copy
    /// of a body of megabytes), decoded when it passed it as base64.
    fn decode_body<'r>(&self, request: &Request<'r>) -> Result<Cow<'r, [u8]>, Answer> {
        let max = self.config.max_body_bytes;
        let too_large =
            || Answer::error(IngestOutcome::TooLarge, format!("body exceeds {max} bytes"));
        let text = request.body.unwrap_or("");
        if !request.is_base64_encoded {
            if text.len() > max {
                return Err(too_large());
            }
            return Ok(Cow::Borrowed(text.as_bytes()));
        }
        // Base64 is 4/3 the size: refuse an oversized encoding before decoding it.
        if text.len() / 4 * 3 > max + 3 {
            return Err(too_large());
        }
        let body = B64
            .decode(text)
            .map_err(|_| Answer::error(IngestOutcome::BadRequest, "body is not valid base64"))?;
        if body.len() > max {
            return Err(too_large());
        }
        Ok(Cow::Owned(body))
    }

    async fn store_and_queue(
        &self,
        provider: &dyn Provider,
        delivery: &Delivery<'_>,
        event: &CanonicalEvent,
    ) -> Answer {
        let mut headers = delivery.headers.subset(provider.signed_headers());
        for name in VERIFIED_HEADERS {
            if let Some(value) = delivery.headers.get(name) {
                headers.insert(name, value);
            }
        }
        if let Some(url) = delivery.request_url.filter(|_| provider.signs_url()) {
            headers.insert(REQUEST_URL, url);
        }
        let retention = Duration::days(self.config.raw_retention_days as i64);
        let new = NewEvent {
            event_id: &event.event_id,
            call_id: event.call_id.as_deref(),
            raw_body: delivery.body,
            headers: &headers,
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
                    path_token: delivery.path_token,
                    ..stored.delivery()
                };
                let requeued = provider.normalize(&original);
                if let Err(err) = self.queue.send(queue_message(&requeued), 0).await {
                    tracing::warn!(event_id = %event.event_id, error = %err, "re-send of duplicate failed");
                    return Answer::unavailable("the queue");
                }
                return duplicate(&event.event_id);
            }
            Err(StoreError::TooLarge(_)) => {
                // Nothing the provider can retry into success: its body cannot be kept.
                return Answer::error(
                    IngestOutcome::TooLarge,
                    "body is too large to store once packed",
                );
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
        let mut outcome = IngestOutcome::Accepted;
        if let Some(note) = &event.review {
            body["review"] = Value::Bool(true);
            outcome = IngestOutcome::Review(note.reason.clone());
        }
        Answer::new(outcome, body)
    }
}

fn duplicate(event_id: &str) -> Answer {
    Answer::new(
        IngestOutcome::Duplicate,
        json!({ "status": "duplicate", "event_id": event_id }),
    )
}

#[cfg(test)]
mod tests;
