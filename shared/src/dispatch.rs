//! Dispatch (DESIGN §8): hands a final or changed call to the business systems, once.
//!
//! The lifecycle puts a [`DispatchMessage`] on the dispatch queue for every dispatching
//! [`Effect`]. The dispatch function reads the call record *when it sends* (so facts that
//! arrived during the settle delay are in it), picks the route, claims the dispatch id in the
//! ledger, and POSTs a Standard Webhooks–signed body (CRM, ticketing) or sends a call-back
//! request to SQS. `docs/dispatch.md` is the operator-facing version of this page.
//!
//! Everything here is logic over traits ([`CallReader`], [`Ledger`], [`ReviewStore`],
//! [`HttpPoster`], [`QueueSender`]); the function crate supplies reqwest and SQS, the tests
//! supply memory and scripts.
//!
//! # Routes
//!
//! A route key is chosen per message: `call.completed` by the record's outcome at send time
//! (`completed`, `voicemail`, `rescheduled`, `no_outcome` → CRM; `escalated` → ticketing;
//! `no_answer`, `busy`, `failed`, `canceled` → call-back queue), `call.updated` → `updated`
//! (CRM), `call.escalated` → `escalated`, `call.action` → `action` (ticketing).
//! `DISPATCH_ROUTES` overrides any key. A route whose destination is not configured sends the
//! message to review, unless it is explicitly `"drop"`.
//!
//! `rescheduled` goes to the CRM, not the call-back queue: the provider has already scheduled
//! the next attempt itself, and a call-back request would call the customer twice.
//!
//! # Exactly once
//!
//! The ledger id of a send is the message's dispatch id, except for a `call.completed` whose
//! record is escalated: that send opens the call's one ticket, so it is recorded under
//! [`lifecycle::escalation_dispatch_id`], and a `call.escalated` racing it finds it sent.
//! The same id is the `webhook-id` header, so a receiver that dedupes by it also sees one
//! delivery when the at-least-once window (POST succeeded, ledger write lost) repeats a send.

use std::collections::BTreeMap;
use std::future::Future;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::config::{ConfigError, Env};
use crate::lifecycle::{self, CallRecord, Effect};
use crate::model::{Direction, Outcome};
use crate::queue::QueueError;
use crate::standard_webhooks;
use crate::store::StoreError;
use crate::store::calls::CallStore;
use crate::store::ledger::{Begun, Failure, Ledger, truncate_utf8};
use crate::store::review::{REASON_MALFORMED, RESPONSE_BODY_LIMIT, ReviewItem, ReviewStore};

/// What a dispatch announces; the `type` of the message and of the HTTP body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MessageType {
    #[serde(rename = "call.completed")]
    Completed,
    #[serde(rename = "call.updated")]
    Updated,
    #[serde(rename = "call.escalated")]
    Escalated,
    #[serde(rename = "call.action")]
    Action,
}

impl MessageType {
    pub fn as_str(self) -> &'static str {
        match self {
            MessageType::Completed => "call.completed",
            MessageType::Updated => "call.updated",
            MessageType::Escalated => "call.escalated",
            MessageType::Action => "call.action",
        }
    }
}

/// One message on the dispatch queue, sent by the lifecycle after a call changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DispatchMessage {
    pub dispatch_id: String,
    #[serde(rename = "type")]
    pub message_type: MessageType,
    pub call_id: String,
    pub event_id: String,
    pub outcome: Option<Outcome>,
}

impl DispatchMessage {
    /// The message for a dispatching effect; `None` for [`Effect::Review`].
    pub fn from_effect(effect: &Effect) -> Option<DispatchMessage> {
        let (message_type, call_id, event_id, dispatch_id, outcome) = match effect {
            Effect::Finalize {
                call_id,
                event_id,
                outcome,
                dispatch_id,
            } => (
                MessageType::Completed,
                call_id,
                event_id,
                dispatch_id,
                *outcome,
            ),
            Effect::Enrich {
                call_id,
                event_id,
                dispatch_id,
            } => (MessageType::Updated, call_id, event_id, dispatch_id, None),
            Effect::Escalate {
                call_id,
                event_id,
                dispatch_id,
            } => (
                MessageType::Escalated,
                call_id,
                event_id,
                dispatch_id,
                Some(Outcome::Escalated),
            ),
            Effect::Action {
                call_id,
                event_id,
                dispatch_id,
            } => (MessageType::Action, call_id, event_id, dispatch_id, None),
            Effect::Review { .. } => return None,
        };
        Some(DispatchMessage {
            dispatch_id: dispatch_id.clone(),
            message_type,
            call_id: call_id.clone(),
            event_id: event_id.clone(),
            outcome,
        })
    }

    /// The SQS `DelaySeconds` to send it with: the finalization waits `settle` seconds so that
    /// facts arriving just behind the terminal one are in the record it sends; others go at once.
    pub fn delay_secs(&self, settle: u32) -> u32 {
        match self.message_type {
            MessageType::Completed => settle.min(900),
            _ => 0,
        }
    }
}

// ------------------------------------------------------------------------------------------------
// Routes

pub const CRM_WEBHOOK_URL: &str = "CRM_WEBHOOK_URL";
pub const TICKETING_WEBHOOK_URL: &str = "TICKETING_WEBHOOK_URL";
pub const CALLBACK_QUEUE_URL: &str = "CALLBACK_QUEUE_URL";
pub const CRM_SIGNING_SECRET: &str = "CRM_SIGNING_SECRET";
pub const DISPATCH_ROUTES: &str = "DISPATCH_ROUTES";

/// What a message is routed by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RouteKey {
    Completed,
    Voicemail,
    Rescheduled,
    /// A final call whose provider reported no outcome.
    NoOutcome,
    NoAnswer,
    Busy,
    Failed,
    Canceled,
    Escalated,
    Action,
    Updated,
}

impl RouteKey {
    pub const ALL: [RouteKey; 11] = [
        RouteKey::Completed,
        RouteKey::Voicemail,
        RouteKey::Rescheduled,
        RouteKey::NoOutcome,
        RouteKey::NoAnswer,
        RouteKey::Busy,
        RouteKey::Failed,
        RouteKey::Canceled,
        RouteKey::Escalated,
        RouteKey::Action,
        RouteKey::Updated,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RouteKey::Completed => "completed",
            RouteKey::Voicemail => "voicemail",
            RouteKey::Rescheduled => "rescheduled",
            RouteKey::NoOutcome => "no_outcome",
            RouteKey::NoAnswer => "no_answer",
            RouteKey::Busy => "busy",
            RouteKey::Failed => "failed",
            RouteKey::Canceled => "canceled",
            RouteKey::Escalated => "escalated",
            RouteKey::Action => "action",
            RouteKey::Updated => "updated",
        }
    }

    pub fn parse(s: &str) -> Option<RouteKey> {
        RouteKey::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The key of a finalization with this outcome.
    pub fn for_outcome(outcome: Option<Outcome>) -> RouteKey {
        match outcome {
            None => RouteKey::NoOutcome,
            Some(Outcome::Completed) => RouteKey::Completed,
            Some(Outcome::Voicemail) => RouteKey::Voicemail,
            Some(Outcome::Rescheduled) => RouteKey::Rescheduled,
            Some(Outcome::NoAnswer) => RouteKey::NoAnswer,
            Some(Outcome::Busy) => RouteKey::Busy,
            Some(Outcome::Failed) => RouteKey::Failed,
            Some(Outcome::Canceled) => RouteKey::Canceled,
            Some(Outcome::Escalated) => RouteKey::Escalated,
        }
    }

    /// DESIGN §8's table.
    pub fn default_target(self) -> Target {
        match self {
            RouteKey::Completed
            | RouteKey::Voicemail
            | RouteKey::Rescheduled
            | RouteKey::NoOutcome
            | RouteKey::Updated => Target::Crm,
            RouteKey::Escalated | RouteKey::Action => Target::Ticketing,
            RouteKey::NoAnswer | RouteKey::Busy | RouteKey::Failed | RouteKey::Canceled => {
                Target::Callback
            }
        }
    }

    fn known_keys() -> String {
        RouteKey::ALL.map(RouteKey::as_str).join(", ")
    }
}

/// The three configured destinations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Crm,
    Ticketing,
    Callback,
}

impl Target {
    /// The destination's name: the `route` label of the dispatch metrics, and its name in
    /// DISPATCH_ROUTES.
    pub fn as_str(self) -> &'static str {
        match self {
            Target::Crm => "crm",
            Target::Ticketing => "ticketing",
            Target::Callback => "callback",
        }
    }

    pub fn var(self) -> &'static str {
        match self {
            Target::Crm => CRM_WEBHOOK_URL,
            Target::Ticketing => TICKETING_WEBHOOK_URL,
            Target::Callback => CALLBACK_QUEUE_URL,
        }
    }
}

/// Where one route key goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// A signed POST to this URL.
    Http(String),
    /// A SendMessage to this queue URL.
    Sqs(String),
    /// Explicitly nothing (`"drop"` in DISPATCH_ROUTES).
    Drop,
    /// The destination's variable is not set: such messages go to review.
    Unconfigured(&'static str),
}

/// The route of every key, after configuration, and the name of each one's destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routes {
    routes: BTreeMap<RouteKey, Route>,
    destinations: BTreeMap<RouteKey, &'static str>,
}

/// The destination name of a DISPATCH_ROUTES `{"http": url}` override.
pub const CUSTOM_HTTP: &str = "http";
/// The destination name of a DISPATCH_ROUTES `{"sqs": queue_url}` override.
pub const CUSTOM_SQS: &str = "sqs";
/// The destination name of a `"drop"` route.
pub const DROPPED: &str = "drop";

fn check_url(var: &str, what: &str, url: &str) -> Result<String, ConfigError> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    // The authority runs to the first '/', '?' or '#'; without a host there is nowhere to send.
    let host = rest
        .and_then(|r| r.split(['/', '?', '#']).next())
        .map(|authority| authority.rsplit('@').next().unwrap_or(authority))
        .unwrap_or("");
    match rest {
        Some(_)
            if !host.is_empty() && !host.starts_with(':') && !url.contains(char::is_whitespace) =>
        {
            Ok(url.to_owned())
        }
        // The value itself is never echoed: a URL may carry a token.
        _ => Err(ConfigError::invalid(
            var,
            format!("{what} must be an http:// or https:// URL"),
        )),
    }
}

impl Routes {
    /// The default table with the configured destinations, then DISPATCH_ROUTES on top.
    pub fn from_env(env: &Env) -> Result<Routes, ConfigError> {
        let mut targets = BTreeMap::new();
        for target in [Target::Crm, Target::Ticketing, Target::Callback] {
            let var = target.var();
            let route = match env.get(var) {
                None => Route::Unconfigured(var),
                Some(url) => {
                    let url = check_url(var, "the value", url)?;
                    match target {
                        Target::Callback => Route::Sqs(url),
                        Target::Crm | Target::Ticketing => Route::Http(url),
                    }
                }
            };
            targets.insert(var, route);
        }
        let resolve = |t: Target| targets[t.var()].clone();
        let mut routes: BTreeMap<RouteKey, Route> = RouteKey::ALL
            .into_iter()
            .map(|k| (k, resolve(k.default_target())))
            .collect();
        let mut destinations: BTreeMap<RouteKey, &'static str> = RouteKey::ALL
            .into_iter()
            .map(|k| (k, k.default_target().as_str()))
            .collect();

        if let Some(raw) = env.get(DISPATCH_ROUTES) {
            let overrides: serde_json::Map<String, Value> = serde_json::from_str(raw)
                .map_err(|_| {
                    ConfigError::invalid(
                        DISPATCH_ROUTES,
                        r#"not a JSON object (expected e.g. {"busy": {"sqs": "https://…"}, "voicemail": "drop"})"#,
                    )
                })?;
            for (key, value) in overrides {
                let route_key = RouteKey::parse(&key).ok_or_else(|| {
                    ConfigError::invalid(
                        DISPATCH_ROUTES,
                        format!(
                            "unknown route key {key:?} (known: {})",
                            RouteKey::known_keys()
                        ),
                    )
                })?;
                let (route, destination) = Self::parse_override(&key, &value, &resolve)?;
                routes.insert(route_key, route);
                destinations.insert(route_key, destination);
            }
        }
        Ok(Routes {
            routes,
            destinations,
        })
    }

    fn parse_override(
        key: &str,
        value: &Value,
        resolve: &dyn Fn(Target) -> Route,
    ) -> Result<(Route, &'static str), ConfigError> {
        let expected = || {
            ConfigError::invalid(
                DISPATCH_ROUTES,
                format!(
                    r#"route {key:?}: expected "drop", "crm", "ticketing", "callback", {{"http": url}} or {{"sqs": queue_url}}"#
                ),
            )
        };
        match value {
            Value::String(s) => match s.as_str() {
                "drop" => Ok((Route::Drop, DROPPED)),
                "crm" => Ok((resolve(Target::Crm), Target::Crm.as_str())),
                "ticketing" => Ok((resolve(Target::Ticketing), Target::Ticketing.as_str())),
                "callback" => Ok((resolve(Target::Callback), Target::Callback.as_str())),
                _ => Err(expected()),
            },
            Value::Object(map) if map.len() == 1 => {
                let (kind, url) = map.iter().next().expect("one entry");
                let url = url.as_str().ok_or_else(expected)?;
                let what = format!("route {key:?}: the {kind} URL");
                match kind.as_str() {
                    "http" => Ok((
                        Route::Http(check_url(DISPATCH_ROUTES, &what, url)?),
                        CUSTOM_HTTP,
                    )),
                    "sqs" => Ok((
                        Route::Sqs(check_url(DISPATCH_ROUTES, &what, url)?),
                        CUSTOM_SQS,
                    )),
                    _ => Err(expected()),
                }
            }
            _ => Err(expected()),
        }
    }

    pub fn get(&self, key: RouteKey) -> &Route {
        self.routes.get(&key).unwrap_or(&Route::Drop)
    }

    /// The name of `key`'s destination, a small fixed set (the `route` label of the dispatch
    /// metrics): `crm`, `ticketing`, `callback` (the configured destinations, by default or
    /// named in DISPATCH_ROUTES), `http` / `sqs` (a DISPATCH_ROUTES URL of its own), `drop`.
    pub fn destination(&self, key: RouteKey) -> &'static str {
        self.destinations.get(&key).copied().unwrap_or(DROPPED)
    }

    /// Some route POSTs (so a signing secret is needed).
    pub fn has_http(&self) -> bool {
        self.routes.values().any(|r| matches!(r, Route::Http(_)))
    }
}

/// The route key of a message, and the id its send is recorded under in the ledger (and sent
/// as `webhook-id`).
pub fn plan(message: &DispatchMessage, record: &CallRecord) -> (RouteKey, String) {
    match message.message_type {
        MessageType::Completed => {
            let outcome = record.outcome.or(message.outcome);
            let id = if outcome == Some(Outcome::Escalated) {
                lifecycle::escalation_dispatch_id(&message.call_id)
            } else {
                message.dispatch_id.clone()
            };
            (RouteKey::for_outcome(outcome), id)
        }
        MessageType::Updated => (RouteKey::Updated, message.dispatch_id.clone()),
        MessageType::Escalated => (RouteKey::Escalated, message.dispatch_id.clone()),
        MessageType::Action => (RouteKey::Action, message.dispatch_id.clone()),
    }
}

// ------------------------------------------------------------------------------------------------
// Configuration

pub const DEFAULT_MAX_ATTEMPTS: u64 = 5;
pub const DEFAULT_TIMEOUT_SECS: u64 = 10;
pub const DEFAULT_RETRY_BASE_SECS: u64 = 30;
pub const DEFAULT_RETRY_MAX_SECS: u64 = 900;
/// SQS's longest visibility timeout.
pub const MAX_VISIBILITY_SECS: u64 = 43_200;

/// When to retry and when to give up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// A retryable failure on the attempt whose ApproximateReceiveCount reaches this goes to
    /// review (DISPATCH_MAX_ATTEMPTS).
    pub max_attempts: u32,
    /// Visibility after the first failure; doubled for each further one
    /// (DISPATCH_RETRY_BASE_SECS).
    pub base_secs: u32,
    /// The longest wait between attempts (DISPATCH_RETRY_MAX_SECS).
    pub max_secs: u32,
    /// HTTP timeout (DISPATCH_TIMEOUT_SECS).
    pub timeout_secs: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: DEFAULT_MAX_ATTEMPTS as u32,
            base_secs: DEFAULT_RETRY_BASE_SECS as u32,
            max_secs: DEFAULT_RETRY_MAX_SECS as u32,
            timeout_secs: DEFAULT_TIMEOUT_SECS as u32,
        }
    }
}

impl RetryPolicy {
    /// `base × 2^(receive_count − 1)`, at most `max_secs`.
    pub fn backoff_secs(&self, receive_count: u32) -> u32 {
        let exp = receive_count.saturating_sub(1).min(30);
        let secs = u64::from(self.base_secs).saturating_mul(1u64 << exp);
        secs.min(u64::from(self.max_secs)) as u32
    }

    /// The backoff, or the receiver's `Retry-After` when that is longer (up to `max_secs`).
    pub fn retry_after(&self, receive_count: u32, asked: Option<u32>) -> u32 {
        let backoff = self.backoff_secs(receive_count);
        asked.map_or(backoff, |a| backoff.max(a.min(self.max_secs)))
    }

    pub fn exhausted(&self, receive_count: u32) -> bool {
        receive_count >= self.max_attempts
    }

    /// How long an attempt holds its ledger claim: the HTTP timeout plus a margin.
    pub fn lease_secs(&self) -> u32 {
        self.timeout_secs.saturating_add(10)
    }
}

/// The decoded `whsec_` secret; never printed.
#[derive(Clone)]
pub struct SigningSecret(Vec<u8>);

impl SigningSecret {
    pub fn new(bytes: Vec<u8>) -> Self {
        SigningSecret(bytes)
    }

    pub fn bytes(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningSecret(<redacted>)")
    }
}

/// What the dispatch function needs, validated at cold start.
#[derive(Debug, Clone)]
pub struct DispatchConfig {
    pub calls_table: String,
    pub ledger_table: String,
    /// Unset: failed dispatches stay on the queue until its DLQ.
    pub review_table: Option<String>,
    pub routes: Routes,
    /// Required when some route POSTs.
    pub signing_secret: Option<SigningSecret>,
    pub policy: RetryPolicy,
}

fn bounded(env: &Env, var: &str, default: u64, min: u64, max: u64) -> Result<u32, ConfigError> {
    let v = env.number(var, default)?;
    if v < min || v > max {
        return Err(ConfigError::invalid(
            var,
            format!("must be between {min} and {max}"),
        ));
    }
    Ok(v as u32)
}

impl DispatchConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let routes = Routes::from_env(env)?;
        let signing_secret = match env.get(CRM_SIGNING_SECRET) {
            Some(secret) => Some(SigningSecret(standard_webhooks::decode_hmac_secret(
                CRM_SIGNING_SECRET,
                secret,
            )?)),
            None if routes.has_http() => {
                return Err(ConfigError::invalid(
                    CRM_SIGNING_SECRET,
                    "not set, and an HTTP route needs it to sign deliveries (a whsec_ secret)",
                ));
            }
            None => None,
        };
        let max_secs = bounded(
            env,
            "DISPATCH_RETRY_MAX_SECS",
            DEFAULT_RETRY_MAX_SECS,
            1,
            MAX_VISIBILITY_SECS,
        )?;
        let policy = RetryPolicy {
            max_attempts: bounded(env, "DISPATCH_MAX_ATTEMPTS", DEFAULT_MAX_ATTEMPTS, 1, 1000)?,
            base_secs: bounded(
                env,
                "DISPATCH_RETRY_BASE_SECS",
                DEFAULT_RETRY_BASE_SECS,
                0,
                MAX_VISIBILITY_SECS,
            )?,
            max_secs,
            timeout_secs: bounded(env, "DISPATCH_TIMEOUT_SECS", DEFAULT_TIMEOUT_SECS, 1, 600)?,
        };
        Ok(DispatchConfig {
            calls_table: env.require("CALLS_TABLE")?.to_owned(),
            ledger_table: env.require("LEDGER_TABLE")?.to_owned(),
            review_table: env.get("REVIEW_TABLE").map(str::to_owned),
            routes,
            signing_secret,
            policy,
        })
    }
}

// ------------------------------------------------------------------------------------------------
// What is sent

/// The record as business systems see it: without the internal bookkeeping `sources` and
/// `applied_event_ids`.
pub fn call_view(record: &CallRecord) -> Value {
    let mut value = serde_json::to_value(record).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut value {
        map.remove("sources");
        map.remove("applied_event_ids");
    }
    value
}

/// The HTTP body (and the body of a non-finalization message routed to a queue):
/// `{"type", "dispatch_id", "event_id", "call"}`, plus `action` (the requested action) for
/// `call.action`.
pub fn http_body(message: &DispatchMessage, dispatch_id: &str, record: &CallRecord) -> Value {
    let mut body = json!({
        "type": message.message_type.as_str(),
        "dispatch_id": dispatch_id,
        "event_id": message.event_id,
        "call": call_view(record),
    });
    if message.message_type == MessageType::Action {
        body["action"] = record
            .actions
            .iter()
            .find(|a| a.event_id == message.event_id)
            .and_then(|a| serde_json::to_value(a).ok())
            .unwrap_or(Value::Null);
    }
    body
}

pub const CALLBACK_TYPE: &str = "callback.requested";

/// The call-back request sent to an SQS route for a finalization (docs/dispatch.md).
pub fn callback_body(
    message: &DispatchMessage,
    dispatch_id: &str,
    record: &CallRecord,
    now: DateTime<Utc>,
) -> Value {
    let callback_number = match record.direction {
        Some(Direction::Inbound) => record.from.clone(),
        Some(Direction::Outbound) => record.to.clone(),
        None => None,
    };
    json!({
        "type": CALLBACK_TYPE,
        "dispatch_id": dispatch_id,
        "call_id": record.call_id,
        "event_id": message.event_id,
        "provider": record.provider,
        "outcome": record.outcome.or(message.outcome),
        "direction": record.direction,
        "from": record.from,
        "to": record.to,
        "callback_number": callback_number,
        "attempted_at": record.started_at.or(record.ended_at),
        "ended_at": record.ended_at,
        "hangup_cause": record.hangup_cause,
        "requested_at": now,
    })
}

/// The body an SQS route receives.
pub fn queue_body(
    message: &DispatchMessage,
    dispatch_id: &str,
    record: &CallRecord,
    now: DateTime<Utc>,
) -> Value {
    match message.message_type {
        MessageType::Completed => callback_body(message, dispatch_id, record, now),
        _ => http_body(message, dispatch_id, record),
    }
}

/// A dispatch id as a header value: bytes outside visible ASCII, and `%`, are percent-encoded.
/// Deterministic, so a resend carries the same `webhook-id`.
pub fn webhook_id(dispatch_id: &str) -> String {
    let mut out = String::with_capacity(dispatch_id.len());
    for b in dispatch_id.bytes() {
        if (0x21..=0x7e).contains(&b) && b != b'%' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The headers of a signed delivery: content type and Standard Webhooks' three.
pub fn signed_headers(
    secret: &[u8],
    dispatch_id: &str,
    timestamp: i64,
    body: &[u8],
) -> Vec<(&'static str, String)> {
    let id = webhook_id(dispatch_id);
    let signature = standard_webhooks::sign(secret, &id, timestamp, body);
    vec![
        ("content-type", "application/json".to_owned()),
        (standard_webhooks::ID, id),
        (standard_webhooks::TIMESTAMP, timestamp.to_string()),
        (standard_webhooks::SIGNATURE, signature),
    ]
}

// ------------------------------------------------------------------------------------------------
// Results

/// What an HTTP attempt gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpResult {
    /// `body` is at most [`RESPONSE_BODY_LIMIT`] bytes; `retry_after_secs` from `Retry-After`.
    Response {
        status: u16,
        body: String,
        retry_after_secs: Option<u32>,
    },
    Timeout,
    Connect(String),
    /// Any other transport failure (reset, TLS, …).
    Transport(String),
    /// The request could not be made at all (a malformed URL): retrying cannot help.
    Invalid(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Sent,
    Retry,
    /// Give up now: review.
    Reject,
}

/// 2xx sent; 408, 429, 5xx, timeouts and transport failures retry; other statuses (3xx are
/// not followed, 4xx) and requests that cannot be made go to review.
pub fn classify(result: &HttpResult) -> Verdict {
    match result {
        HttpResult::Response { status, .. } => match status {
            200..=299 => Verdict::Sent,
            408 | 429 => Verdict::Retry,
            500.. => Verdict::Retry,
            _ => Verdict::Reject,
        },
        HttpResult::Timeout | HttpResult::Connect(_) | HttpResult::Transport(_) => Verdict::Retry,
        HttpResult::Invalid(_) => Verdict::Reject,
    }
}

fn describe(result: &HttpResult) -> String {
    match result {
        HttpResult::Response { status, .. } => format!("answered {status}"),
        HttpResult::Timeout => "timed out".to_owned(),
        HttpResult::Connect(e) => format!("could not connect: {e}"),
        HttpResult::Transport(e) => format!("transport error: {e}"),
        HttpResult::Invalid(e) => format!("request not possible: {e}"),
    }
}

// ------------------------------------------------------------------------------------------------
// The dispatcher

/// Reads a call when its dispatch is sent (consistent read).
pub trait CallReader: Send + Sync {
    fn read_call(
        &self,
        call_id: &str,
    ) -> impl Future<Output = Result<Option<CallRecord>, StoreError>> + Send;
}

impl<T: CallStore> CallReader for T {
    async fn read_call(&self, call_id: &str) -> Result<Option<CallRecord>, StoreError> {
        Ok(self.get(call_id).await?.map(|stored| stored.record))
    }
}

pub trait HttpPoster: Send + Sync {
    /// One POST with the configured timeout; never follows redirects.
    fn post(
        &self,
        url: &str,
        headers: &[(&'static str, String)],
        body: Vec<u8>,
    ) -> impl Future<Output = HttpResult> + Send;
}

pub trait QueueSender: Send + Sync {
    fn send_to(
        &self,
        queue_url: &str,
        body: String,
    ) -> impl Future<Output = Result<(), QueueError>> + Send;
}

/// One message off the dispatch queue.
#[derive(Debug, Clone, Copy)]
pub struct Delivery<'a> {
    pub message_id: &'a str,
    pub body: &'a str,
    /// SQS ApproximateReceiveCount (1 on the first delivery).
    pub receive_count: u32,
}

/// What became of a message. Everything but [`Disposition::Retry`] deletes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    Sent {
        dispatch_id: String,
        route: RouteKey,
        status_code: Option<u16>,
    },
    AlreadySent {
        dispatch_id: String,
    },
    Dropped {
        dispatch_id: String,
        route: RouteKey,
    },
    Reviewed {
        subject_id: String,
        reason: String,
        detail: String,
    },
    /// Leave it on the queue, invisible for `after_secs`.
    Retry {
        after_secs: u32,
        detail: String,
    },
}

impl Disposition {
    pub fn retry_after(&self) -> Option<u32> {
        match self {
            Disposition::Retry { after_secs, .. } => Some(*after_secs),
            _ => None,
        }
    }
}

/// What handling one message did beyond its [`Disposition`], for logs and metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// The call the message is about (absent when the message could not be read).
    pub call_id: Option<String>,
    /// The call's provider (absent until the call was read).
    pub provider: Option<String>,
    /// The delivery attempt made, if one was (none for a message dropped, already sent,
    /// unroutable or unreadable, or one that could not claim its dispatch id).
    pub attempt: Option<Attempted>,
}

/// One delivery attempt: a POST or a SendMessage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attempted {
    /// [`Routes::destination`] of the route used.
    pub route: &'static str,
    /// Not sent: retryable (5xx, 408, 429, timeout, transport) or not (other statuses).
    pub failed: bool,
}

/// One attempt's result, whatever the destination.
struct Attempt {
    verdict: Verdict,
    status_code: Option<u16>,
    response_body: Option<String>,
    retry_after_secs: Option<u32>,
    detail: String,
}

pub struct Dispatcher<C, L, R, H, Q> {
    pub routes: Routes,
    pub policy: RetryPolicy,
    pub signing_secret: Option<SigningSecret>,
    pub calls: C,
    pub ledger: L,
    /// `None` when REVIEW_TABLE is not set.
    pub review: Option<R>,
    pub http: H,
    pub queues: Q,
}

impl<C, L, R, H, Q> Dispatcher<C, L, R, H, Q>
where
    C: CallReader,
    L: Ledger,
    R: ReviewStore,
    H: HttpPoster,
    Q: QueueSender,
{
    /// Handles one message: never panics on bad input, never sends a sent dispatch id again.
    pub async fn handle(&self, delivery: &Delivery<'_>, now: DateTime<Utc>) -> Disposition {
        self.handle_reporting(delivery, now).await.0
    }

    /// [`Dispatcher::handle`], with what the logs and metrics need to know of it.
    pub async fn handle_reporting(
        &self,
        delivery: &Delivery<'_>,
        now: DateTime<Utc>,
    ) -> (Disposition, Report) {
        let mut report = Report::default();
        let disposition = self.run(delivery, now, &mut report).await;
        (disposition, report)
    }

    async fn run(
        &self,
        delivery: &Delivery<'_>,
        now: DateTime<Utc>,
        report: &mut Report,
    ) -> Disposition {
        let attempt = delivery.receive_count.max(1);
        let message: DispatchMessage = match serde_json::from_str(delivery.body) {
            Ok(message) => message,
            Err(err) => {
                let item = ReviewItem::open(
                    format!("dispatch#sqs#{}", delivery.message_id),
                    REASON_MALFORMED,
                    delivery.message_id,
                    Value::String(delivery.body.to_owned()),
                    attempt,
                    &format!("not a dispatch message: {err}"),
                    None,
                    None,
                    now,
                );
                return self.review(item, attempt).await;
            }
        };
        report.call_id = Some(message.call_id.clone());
        let record = match self.calls.read_call(&message.call_id).await {
            Ok(Some(record)) => record,
            Ok(None) => {
                // The lifecycle queues a dispatch only after the call is written, so this
                // should not happen; retry in case, then hand it to a person.
                let detail = format!("call {} not found", message.call_id);
                if self.policy.exhausted(attempt) {
                    let item = self.review_item(
                        &message,
                        &message.dispatch_id,
                        attempt,
                        &detail,
                        None,
                        None,
                        now,
                    );
                    return self.review(item, attempt).await;
                }
                return self.retry(attempt, None, detail);
            }
            Err(err) => return self.retry(attempt, None, err.to_string()),
        };

        report.provider = Some(record.provider.clone());
        let (route_key, dispatch_id) = plan(&message, &record);
        let route = self.routes.get(route_key).clone();
        match &route {
            Route::Drop => {
                return Disposition::Dropped {
                    dispatch_id,
                    route: route_key,
                };
            }
            Route::Unconfigured(var) => {
                let detail = format!(
                    "route {} has no destination: {var} is not set",
                    route_key.as_str()
                );
                let item =
                    self.review_item(&message, &dispatch_id, attempt, &detail, None, None, now);
                return self.review(item, attempt).await;
            }
            Route::Http(_) | Route::Sqs(_) => {}
        }

        match self
            .ledger
            .begin(&dispatch_id, now, self.policy.lease_secs())
            .await
        {
            Ok(Begun::Claimed { .. }) => {}
            Ok(Begun::AlreadySent { .. }) => return Disposition::AlreadySent { dispatch_id },
            Ok(Begun::InFlight { until }) => {
                let secs = (until - now)
                    .num_seconds()
                    .clamp(1, i64::from(self.policy.max_secs.max(1)));
                return Disposition::Retry {
                    after_secs: secs as u32,
                    detail: format!("{dispatch_id} is being sent by another attempt"),
                };
            }
            Err(err) => return self.retry(attempt, None, err.to_string()),
        }

        let result = match &route {
            Route::Http(url) => self.post(url, &message, &dispatch_id, &record, now).await,
            Route::Sqs(url) => {
                let body = queue_body(&message, &dispatch_id, &record, now).to_string();
                match self.queues.send_to(url, body).await {
                    Ok(()) => Attempt {
                        verdict: Verdict::Sent,
                        status_code: None,
                        response_body: None,
                        retry_after_secs: None,
                        detail: "queued".to_owned(),
                    },
                    Err(err) => Attempt {
                        verdict: Verdict::Retry,
                        status_code: None,
                        response_body: None,
                        retry_after_secs: None,
                        detail: err.to_string(),
                    },
                }
            }
            Route::Drop | Route::Unconfigured(_) => unreachable!("handled above"),
        };
        report.attempt = Some(Attempted {
            route: self.routes.destination(route_key),
            failed: result.verdict != Verdict::Sent,
        });

        let route_name = route_key.as_str();
        match result.verdict {
            Verdict::Sent => {
                if let Err(err) = self
                    .ledger
                    .mark_sent(&dispatch_id, result.status_code, now)
                    .await
                {
                    // Sent, and the message is acknowledged: only a replay could send it again,
                    // and the receiver dedupes it by webhook-id.
                    tracing::warn!(dispatch_id, error = %err, "sent, but the ledger was not updated");
                }
                Disposition::Sent {
                    dispatch_id,
                    route: route_key,
                    status_code: result.status_code,
                }
            }
            Verdict::Retry if !self.policy.exhausted(attempt) => {
                let failure = Failure {
                    terminal: false,
                    status_code: result.status_code,
                    detail: &result.detail,
                };
                if let Err(err) = self.ledger.mark_failed(&dispatch_id, &failure, now).await {
                    tracing::warn!(dispatch_id, error = %err, "ledger not updated after a failed attempt");
                }
                let detail = format!("{route_name}: {}", result.detail);
                self.retry(attempt, result.retry_after_secs, detail)
            }
            verdict => {
                let detail = if verdict == Verdict::Retry {
                    format!(
                        "{route_name}: gave up after {attempt} attempts: {}",
                        result.detail
                    )
                } else {
                    format!("{route_name}: {}", result.detail)
                };
                let failure = Failure {
                    terminal: true,
                    status_code: result.status_code,
                    detail: &detail,
                };
                if let Err(err) = self.ledger.mark_failed(&dispatch_id, &failure, now).await {
                    tracing::warn!(dispatch_id, error = %err, "ledger not updated after giving up");
                }
                let item = self.review_item(
                    &message,
                    &dispatch_id,
                    attempt,
                    &detail,
                    result.status_code,
                    result.response_body.as_deref(),
                    now,
                );
                self.review(item, attempt).await
            }
        }
    }

    async fn post(
        &self,
        url: &str,
        message: &DispatchMessage,
        dispatch_id: &str,
        record: &CallRecord,
        now: DateTime<Utc>,
    ) -> Attempt {
        let Some(secret) = &self.signing_secret else {
            return Attempt {
                verdict: Verdict::Reject,
                status_code: None,
                response_body: None,
                retry_after_secs: None,
                detail: format!("{CRM_SIGNING_SECRET} is not set"),
            };
        };
        let body = http_body(message, dispatch_id, record)
            .to_string()
            .into_bytes();
        let headers = signed_headers(secret.bytes(), dispatch_id, now.timestamp(), &body);
        let result = self.http.post(url, &headers, body).await;
        let verdict = classify(&result);
        let detail = match &result {
            HttpResult::Timeout => format!("timed out after {} s", self.policy.timeout_secs),
            other => describe(other),
        };
        match result {
            HttpResult::Response {
                status,
                body,
                retry_after_secs,
            } => Attempt {
                verdict,
                status_code: Some(status),
                response_body: Some(truncate_utf8(&body, RESPONSE_BODY_LIMIT).to_owned()),
                retry_after_secs,
                detail,
            },
            _ => Attempt {
                verdict,
                status_code: None,
                response_body: None,
                retry_after_secs: None,
                detail,
            },
        }
    }

    fn retry(&self, attempt: u32, asked: Option<u32>, detail: String) -> Disposition {
        Disposition::Retry {
            after_secs: self.policy.retry_after(attempt, asked),
            detail,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn review_item(
        &self,
        message: &DispatchMessage,
        dispatch_id: &str,
        attempt: u32,
        detail: &str,
        status_code: Option<u16>,
        response_body: Option<&str>,
        now: DateTime<Utc>,
    ) -> ReviewItem {
        ReviewItem::dispatch_failed(
            dispatch_id,
            serde_json::to_value(message).unwrap_or(Value::Null),
            attempt,
            detail,
            status_code,
            response_body,
            now,
        )
    }

    async fn review(&self, item: ReviewItem, attempt: u32) -> Disposition {
        let Some(store) = &self.review else {
            return self.retry(
                attempt,
                None,
                format!(
                    "{}; REVIEW_TABLE is not set, so the message stays on the queue until its DLQ",
                    item.detail
                ),
            );
        };
        match store.put(&item).await {
            Ok(()) => Disposition::Reviewed {
                subject_id: item.subject_id,
                reason: item.reason,
                detail: item.detail,
            },
            Err(err) => self.retry(
                attempt,
                None,
                format!("{}; review not written: {err}", item.detail),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::Mutex;

    use chrono::TimeZone;
    use hmac::{Hmac, Mac};
    use sha2::Sha256;

    use super::*;
    use crate::lifecycle::{
        ActionRequest, CallStatus, action_dispatch_id, finalize_dispatch_id, update_dispatch_id,
    };
    use crate::providers::Headers;
    use crate::store::calls::{MemoryCallStore, StoredCall};
    use crate::store::ledger::{LedgerStatus, MemoryLedger};
    use crate::store::review::MemoryReviewStore;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const CRM: &str = "https://crm.example/hook";
    const TICKETS: &str = "https://tickets.example/hook";
    const CALLBACKS: &str = "https://sqs.us-east-1.amazonaws.com/123456789012/callbacks";
    const CALL: &str = "telnyx#call-1";

    fn now() -> DateTime<Utc> {
        Utc.timestamp_opt(1_700_000_000, 0).unwrap()
    }

    fn env(pairs: &[(&str, &str)]) -> Env {
        let mut env = Env::from_pairs([
            ("CALLS_TABLE", "calls"),
            ("LEDGER_TABLE", "ledger"),
            ("REVIEW_TABLE", "review"),
            (CRM_WEBHOOK_URL, CRM),
            (TICKETING_WEBHOOK_URL, TICKETS),
            (CALLBACK_QUEUE_URL, CALLBACKS),
            (CRM_SIGNING_SECRET, SECRET),
        ]);
        for (k, v) in pairs {
            env.set(k, *v);
        }
        env
    }

    fn record(outcome: Option<Outcome>) -> CallRecord {
        let mut r = CallRecord::new(CALL, "telnyx");
        r.status = Some(CallStatus::Ended);
        r.rank = 5;
        r.outcome = outcome;
        r.direction = Some(Direction::Inbound);
        r.from = Some("+15550100".into());
        r.to = Some("+15550199".into());
        r.started_at = Some(now() - chrono::Duration::seconds(60));
        r.ended_at = Some(now() - chrono::Duration::seconds(10));
        r.event_count = 2;
        r.applied_event_ids = ["telnyx#e1".to_owned(), "telnyx#e2".to_owned()].into();
        r.final_event_id = Some("telnyx#e2".into());
        r
    }

    fn finalize(outcome: Option<Outcome>) -> DispatchMessage {
        DispatchMessage::from_effect(&Effect::Finalize {
            call_id: CALL.into(),
            event_id: "telnyx#e2".into(),
            outcome,
            dispatch_id: finalize_dispatch_id(CALL),
        })
        .unwrap()
    }

    // ---- messages ----

    #[test]
    fn messages_from_effects() {
        let m = finalize(Some(Outcome::Busy));
        assert_eq!(
            serde_json::to_value(&m).unwrap(),
            json!({"dispatch_id": "telnyx#call-1#completed", "type": "call.completed",
                   "call_id": CALL, "event_id": "telnyx#e2", "outcome": "busy"})
        );
        assert_eq!(m.delay_secs(5), 5);
        let enrich = DispatchMessage::from_effect(&Effect::Enrich {
            call_id: CALL.into(),
            event_id: "telnyx#e3".into(),
            dispatch_id: update_dispatch_id(CALL, "telnyx#e3"),
        })
        .unwrap();
        assert_eq!(enrich.message_type, MessageType::Updated);
        assert_eq!(enrich.outcome, None);
        assert_eq!(enrich.delay_secs(5), 0);
        let escalate = DispatchMessage::from_effect(&Effect::Escalate {
            call_id: CALL.into(),
            event_id: "e".into(),
            dispatch_id: lifecycle::escalation_dispatch_id(CALL),
        })
        .unwrap();
        assert_eq!(escalate.message_type.as_str(), "call.escalated");
        assert_eq!(escalate.delay_secs(5), 0);
        let action = DispatchMessage::from_effect(&Effect::Action {
            call_id: CALL.into(),
            event_id: "e".into(),
            dispatch_id: action_dispatch_id(CALL, "e"),
        })
        .unwrap();
        assert_eq!(action.message_type.as_str(), "call.action");
        assert_eq!(
            DispatchMessage::from_effect(&Effect::Review {
                event_id: "e".into(),
                reason: "unknown_type".into()
            }),
            None
        );
        // What the lifecycle writes reads back.
        let text = serde_json::to_string(&action).unwrap();
        assert_eq!(
            serde_json::from_str::<DispatchMessage>(&text).unwrap(),
            action
        );
    }

    // ---- routes ----

    #[test]
    fn default_routes_follow_the_design_table() {
        let routes = Routes::from_env(&env(&[])).unwrap();
        let http = |u: &str| Route::Http(u.to_owned());
        for (key, route) in [
            ("completed", http(CRM)),
            ("voicemail", http(CRM)),
            ("rescheduled", http(CRM)),
            ("no_outcome", http(CRM)),
            ("updated", http(CRM)),
            ("escalated", http(TICKETS)),
            ("action", http(TICKETS)),
            ("no_answer", Route::Sqs(CALLBACKS.into())),
            ("busy", Route::Sqs(CALLBACKS.into())),
            ("failed", Route::Sqs(CALLBACKS.into())),
            ("canceled", Route::Sqs(CALLBACKS.into())),
        ] {
            assert_eq!(routes.get(RouteKey::parse(key).unwrap()), &route, "{key}");
        }
        let bare = Env::from_pairs([("CALLS_TABLE", "c"), ("LEDGER_TABLE", "l")]);
        let routes = Routes::from_env(&bare).unwrap();
        assert_eq!(
            routes.get(RouteKey::Busy),
            &Route::Unconfigured(CALLBACK_QUEUE_URL)
        );
        assert_eq!(
            routes.get(RouteKey::Completed),
            &Route::Unconfigured(CRM_WEBHOOK_URL)
        );
        assert!(!routes.has_http());
    }

    #[test]
    fn plan_routes_completion_by_the_record_and_escalation_by_its_ticket_id() {
        let m = finalize(Some(Outcome::Completed));
        // The record's outcome at send time wins over the one at finalization.
        assert_eq!(
            plan(&m, &record(Some(Outcome::Busy))),
            (RouteKey::Busy, "telnyx#call-1#completed".to_owned())
        );
        assert_eq!(
            plan(&m, &record(Some(Outcome::Escalated))),
            (RouteKey::Escalated, "telnyx#call-1#escalated".to_owned())
        );
        assert_eq!(plan(&m, &record(None)).0, RouteKey::Completed);
        assert_eq!(plan(&finalize(None), &record(None)).0, RouteKey::NoOutcome);
        let mut updated = m.clone();
        updated.message_type = MessageType::Updated;
        updated.dispatch_id = "u".into();
        assert_eq!(
            plan(&updated, &record(Some(Outcome::Escalated))),
            (RouteKey::Updated, "u".to_owned())
        );
    }

    #[test]
    fn overrides_replace_single_routes() {
        let routes = Routes::from_env(&env(&[(
            DISPATCH_ROUTES,
            r#"{"busy": {"http": "http://127.0.0.1:9/busy"}, "voicemail": "drop",
                "rescheduled": "callback", "updated": {"sqs": "http://127.0.0.1:9/q/updates"},
                "action": "crm"}"#,
        )]))
        .unwrap();
        assert_eq!(
            routes.get(RouteKey::Busy),
            &Route::Http("http://127.0.0.1:9/busy".into())
        );
        assert_eq!(routes.get(RouteKey::Voicemail), &Route::Drop);
        assert_eq!(
            routes.get(RouteKey::Rescheduled),
            &Route::Sqs(CALLBACKS.into())
        );
        assert_eq!(
            routes.get(RouteKey::Updated),
            &Route::Sqs("http://127.0.0.1:9/q/updates".into())
        );
        assert_eq!(routes.get(RouteKey::Action), &Route::Http(CRM.into()));
        // Untouched keys keep the default.
        assert_eq!(
            routes.get(RouteKey::NoAnswer),
            &Route::Sqs(CALLBACKS.into())
        );
        // A named target that is not configured stays unconfigured (review), not dropped.
        let bare = Env::from_pairs([(DISPATCH_ROUTES, r#"{"completed": "ticketing"}"#)]);
        assert_eq!(
            Routes::from_env(&bare).unwrap().get(RouteKey::Completed),
            &Route::Unconfigured(TICKETING_WEBHOOK_URL)
        );
    }

    #[test]
    fn destinations_name_the_route_label_set() {
        let defaults = Routes::from_env(&env(&[])).unwrap();
        for (key, destination) in [
            (RouteKey::Completed, "crm"),
            (RouteKey::Updated, "crm"),
            (RouteKey::Escalated, "ticketing"),
            (RouteKey::Action, "ticketing"),
            (RouteKey::Busy, "callback"),
            (RouteKey::NoAnswer, "callback"),
        ] {
            assert_eq!(defaults.destination(key), destination, "{key:?}");
        }
        let routes = Routes::from_env(&env(&[(
            DISPATCH_ROUTES,
            r#"{"busy": {"http": "http://127.0.0.1:9/busy"}, "voicemail": "drop",
                "rescheduled": "callback", "updated": {"sqs": "http://127.0.0.1:9/q/updates"},
                "action": "crm"}"#,
        )]))
        .unwrap();
        for (key, destination) in [
            (RouteKey::Busy, "http"),
            (RouteKey::Voicemail, "drop"),
            (RouteKey::Rescheduled, "callback"),
            (RouteKey::Updated, "sqs"),
            (RouteKey::Action, "crm"),
            (RouteKey::Completed, "crm"),
        ] {
            assert_eq!(routes.destination(key), destination, "{key:?}");
        }
    }

    #[test]
    fn bad_overrides_are_config_errors_naming_dispatch_routes() {
        for (raw, needle) in [
            ("not json", "not a JSON object"),
            ("[1, 2]", "not a JSON object"),
            (r#"{"bogus": "drop"}"#, "unknown route key \"bogus\""),
            (r#"{"busy": "somewhere"}"#, "route \"busy\": expected"),
            (r#"{"busy": {"ftp": "x"}}"#, "route \"busy\": expected"),
            (r#"{"busy": {"http": 5}}"#, "route \"busy\": expected"),
            (
                r#"{"busy": {"http": "http://a", "sqs": "http://b"}}"#,
                "route \"busy\": expected",
            ),
            (
                r#"{"busy": {"http": "crm.example/secret-token"}}"#,
                "must be an http:// or https:// URL",
            ),
        ] {
            let err = DispatchConfig::from_env(&env(&[(DISPATCH_ROUTES, raw)]))
                .unwrap_err()
                .to_string();
            assert!(
                err.starts_with("DISPATCH_ROUTES is invalid"),
                "{raw}: {err}"
            );
            assert!(err.contains(needle), "{raw}: {err}");
            assert!(!err.contains("secret-token"), "{err}");
        }
    }

    #[test]
    fn config_validates_at_cold_start() {
        let cfg = DispatchConfig::from_env(&env(&[])).unwrap();
        assert_eq!(cfg.policy, RetryPolicy::default());
        assert_eq!(cfg.review_table.as_deref(), Some("review"));
        assert!(!format!("{cfg:?}").contains("MfKQ9r8"), "secret in Debug");

        let err = |pairs: &[(&str, &str)]| {
            DispatchConfig::from_env(&env(pairs))
                .unwrap_err()
                .to_string()
        };
        assert!(
            err(&[(CRM_SIGNING_SECRET, "")]).starts_with("CRM_SIGNING_SECRET is invalid: not set")
        );
        assert!(err(&[(CRM_SIGNING_SECRET, "whsec_%%%")]).starts_with("CRM_SIGNING_SECRET"));
        assert!(err(&[(CRM_WEBHOOK_URL, "crm.example")]).starts_with("CRM_WEBHOOK_URL is invalid"));
        assert!(err(&[(CALLBACK_QUEUE_URL, "https://")]).starts_with("CALLBACK_QUEUE_URL"));
        assert!(err(&[("DISPATCH_MAX_ATTEMPTS", "0")]).starts_with("DISPATCH_MAX_ATTEMPTS"));
        assert!(err(&[("DISPATCH_TIMEOUT_SECS", "ten")]).starts_with("DISPATCH_TIMEOUT_SECS"));
        assert!(
            err(&[("DISPATCH_RETRY_MAX_SECS", "50000")]).starts_with("DISPATCH_RETRY_MAX_SECS")
        );
        assert_eq!(err(&[("LEDGER_TABLE", "")]), "LEDGER_TABLE is not set");

        // No HTTP route (everything to queues or dropped): no secret needed.
        let queues_only = Env::from_pairs([
            ("CALLS_TABLE", "c"),
            ("LEDGER_TABLE", "l"),
            (CALLBACK_QUEUE_URL, CALLBACKS),
        ]);
        let cfg = DispatchConfig::from_env(&queues_only).unwrap();
        assert!(cfg.signing_secret.is_none() && cfg.review_table.is_none());
    }

    // ---- retry classification ----

    #[test]
    fn classification_of_results() {
        let status = |status| HttpResult::Response {
            status,
            body: String::new(),
            retry_after_secs: None,
        };
        for s in [200, 201, 202, 204, 299] {
            assert_eq!(classify(&status(s)), Verdict::Sent, "{s}");
        }
        for s in [408, 429, 500, 502, 503, 504, 599] {
            assert_eq!(classify(&status(s)), Verdict::Retry, "{s}");
        }
        for s in [301, 302, 304, 400, 401, 403, 404, 409, 410, 413, 422] {
            assert_eq!(classify(&status(s)), Verdict::Reject, "{s}");
        }
        assert_eq!(classify(&HttpResult::Timeout), Verdict::Retry);
        assert_eq!(
            classify(&HttpResult::Connect("refused".into())),
            Verdict::Retry
        );
        assert_eq!(
            classify(&HttpResult::Transport("reset".into())),
            Verdict::Retry
        );
        assert_eq!(
            classify(&HttpResult::Invalid("bad url".into())),
            Verdict::Reject
        );
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let p = RetryPolicy::default();
        let waits: Vec<u32> = (1..=7).map(|n| p.backoff_secs(n)).collect();
        assert_eq!(waits, [30, 60, 120, 240, 480, 900, 900]);
        assert_eq!(p.backoff_secs(0), 30);
        assert_eq!(p.backoff_secs(u32::MAX), 900);
        assert_eq!(p.retry_after(1, Some(120)), 120);
        assert_eq!(p.retry_after(3, Some(5)), 120);
        assert_eq!(p.retry_after(1, Some(100_000)), 900);
        assert!(!p.exhausted(4) && p.exhausted(5) && p.exhausted(6));
    }

    // ---- signing ----

    /// HMAC-SHA256 over `id.ts.body`, written here from the spec, not with the code under test.
    fn independent_signature(secret: &str, id: &str, ts: &str, body: &[u8]) -> String {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD;
        let key = b64.decode(secret.strip_prefix("whsec_").unwrap()).unwrap();
        let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
        mac.update(format!("{id}.{ts}.").as_bytes());
        mac.update(body);
        format!("v1,{}", b64.encode(mac.finalize().into_bytes()))
    }

    #[test]
    fn signed_headers_match_the_spec_vectors() {
        for (secret, id, ts, body, expected) in [
            (
                "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1614265330,
                r#"{"test": 2432232314}"#,
                "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
            ),
            (
                "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
                "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
                1649367553,
                r#"{"email":"test@example.com","username":"test_user"}"#,
                "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=",
            ),
        ] {
            let key = standard_webhooks::decode_hmac_secret("S", secret).unwrap();
            let headers = signed_headers(&key, id, ts, body.as_bytes());
            let get = |name| headers.iter().find(|(k, _)| *k == name).unwrap().1.clone();
            assert_eq!(get("webhook-id"), id);
            assert_eq!(get("webhook-timestamp"), ts.to_string());
            assert_eq!(get("webhook-signature"), expected);
            assert_eq!(
                independent_signature(secret, id, &ts.to_string(), body.as_bytes()),
                expected
            );
        }
    }

    #[test]
    fn a_dispatch_verifies_with_standard_webhooks_and_an_independent_hmac() {
        let key = standard_webhooks::decode_hmac_secret("S", SECRET).unwrap();
        let message = finalize(Some(Outcome::Completed));
        let body = http_body(
            &message,
            &message.dispatch_id,
            &record(Some(Outcome::Completed)),
        )
        .to_string();
        let headers = signed_headers(
            &key,
            &message.dispatch_id,
            now().timestamp(),
            body.as_bytes(),
        );
        let map: Headers = headers.iter().map(|(k, v)| (*k, v.clone())).collect();
        let keys = standard_webhooks::parse_keys("S", &[SECRET]).unwrap();
        assert_eq!(
            standard_webhooks::verify(&keys, &map, body.as_bytes(), now(), 300),
            Ok(())
        );
        let get = |name| headers.iter().find(|(k, _)| *k == name).unwrap().1.clone();
        assert_eq!(get("webhook-id"), "telnyx#call-1#completed");
        assert_eq!(
            get("webhook-signature"),
            independent_signature(
                SECRET,
                &get("webhook-id"),
                &get("webhook-timestamp"),
                body.as_bytes()
            )
        );
        // Tampering is caught.
        let tampered = body.replace("completed", "failed");
        assert!(standard_webhooks::verify(&keys, &map, tampered.as_bytes(), now(), 300).is_err());
    }

    #[test]
    fn webhook_ids_are_valid_header_values_and_deterministic() {
        assert_eq!(
            webhook_id("telnyx#abc-1#completed"),
            "telnyx#abc-1#completed"
        );
        assert_eq!(webhook_id("a b%c\u{e9}\n"), "a%20b%25c%C3%A9%0A");
        for id in ["a b", "é", "x\r\ny", "%"] {
            let v = webhook_id(id);
            // RFC 9110 field-value: visible ASCII (no controls, no spaces at the ends).
            assert!(v.bytes().all(|b| (0x21..=0x7e).contains(&b)), "{v}");
            assert_eq!(v, webhook_id(id));
        }
    }

    // ---- bodies ----

    #[test]
    fn bodies_carry_the_record_view() {
        let mut r = record(Some(Outcome::Busy));
        r.sources.insert(
            "outcome".into(),
            lifecycle::Source {
                class: 1,
                at: now(),
                event_id: "telnyx#e2".into(),
            },
        );
        let view = call_view(&r);
        assert!(view.get("sources").is_none() && view.get("applied_event_ids").is_none());
        assert_eq!(view["call_id"], CALL);
        assert_eq!(view["outcome"], "busy");
        assert_eq!(view["event_count"], 2);

        let m = finalize(Some(Outcome::Busy));
        let body = http_body(&m, &m.dispatch_id, &r);
        assert_eq!(body["type"], "call.completed");
        assert_eq!(body["dispatch_id"], "telnyx#call-1#completed");
        assert_eq!(body["call"], view);
        assert!(body.get("action").is_none());

        let cb = queue_body(&m, &m.dispatch_id, &r, now());
        assert_eq!(
            cb,
            json!({"type": "callback.requested", "dispatch_id": "telnyx#call-1#completed",
                   "call_id": CALL, "event_id": "telnyx#e2", "provider": "telnyx",
                   "outcome": "busy", "direction": "inbound", "from": "+15550100",
                   "to": "+15550199", "callback_number": "+15550100",
                   "attempted_at": "2023-11-14T22:12:20Z", "ended_at": "2023-11-14T22:13:10Z",
                   "hangup_cause": null, "requested_at": "2023-11-14T22:13:20Z"})
        );

        r.actions.push(ActionRequest {
            event_id: "stateset#a1".into(),
            event_type: "handoff".into(),
            occurred_at: now(),
            action: Some(json!({"queue": "billing"})),
        });
        let action = DispatchMessage::from_effect(&Effect::Action {
            call_id: CALL.into(),
            event_id: "stateset#a1".into(),
            dispatch_id: action_dispatch_id(CALL, "stateset#a1"),
        })
        .unwrap();
        let body = http_body(&action, &action.dispatch_id, &r);
        assert_eq!(body["action"]["action"]["queue"], "billing");
        // A non-finalization routed to a queue carries the HTTP body.
        assert_eq!(queue_body(&action, &action.dispatch_id, &r, now()), body);
    }

    // ---- the dispatcher, in memory ----

    /// (url, headers, body) of one POST.
    type Request = (String, Vec<(&'static str, String)>, Vec<u8>);

    #[derive(Default)]
    struct ScriptedHttp {
        script: Mutex<VecDeque<HttpResult>>,
        requests: Mutex<Vec<Request>>,
    }

    impl ScriptedHttp {
        fn answering(results: Vec<HttpResult>) -> Self {
            ScriptedHttp {
                script: Mutex::new(results.into()),
                requests: Mutex::default(),
            }
        }

        fn urls(&self) -> Vec<String> {
            self.requests
                .lock()
                .unwrap()
                .iter()
                .map(|r| r.0.clone())
                .collect()
        }
    }

    impl HttpPoster for ScriptedHttp {
        async fn post(
            &self,
            url: &str,
            headers: &[(&'static str, String)],
            body: Vec<u8>,
        ) -> HttpResult {
            self.requests
                .lock()
                .unwrap()
                .push((url.to_owned(), headers.to_vec(), body));
            self.script
                .lock()
                .unwrap()
                .pop_front()
                .unwrap_or_else(|| status(200))
        }
    }

    #[derive(Default)]
    struct Queues {
        sent: Mutex<Vec<(String, String)>>,
        fail: std::sync::atomic::AtomicBool,
    }

    impl QueueSender for Queues {
        async fn send_to(&self, queue_url: &str, body: String) -> Result<(), QueueError> {
            if self.fail.load(std::sync::atomic::Ordering::SeqCst) {
                return Err(QueueError("injected".into()));
            }
            self.sent.lock().unwrap().push((queue_url.to_owned(), body));
            Ok(())
        }
    }

    fn status(status: u16) -> HttpResult {
        HttpResult::Response {
            status,
            body: format!("status {status}"),
            retry_after_secs: None,
        }
    }

    type TestDispatcher =
        Dispatcher<MemoryCallStore, MemoryLedger, MemoryReviewStore, ScriptedHttp, Queues>;

    fn dispatcher(records: Vec<CallRecord>, http: Vec<HttpResult>) -> TestDispatcher {
        let cfg = DispatchConfig::from_env(&env(&[])).unwrap();
        let calls = MemoryCallStore::default();
        for r in records {
            calls.calls.lock().unwrap().insert(
                r.call_id.clone(),
                StoredCall {
                    record: r,
                    outbox: Vec::new(),
                },
            );
        }
        Dispatcher {
            routes: cfg.routes,
            policy: cfg.policy,
            signing_secret: cfg.signing_secret,
            calls,
            ledger: MemoryLedger::default(),
            review: Some(MemoryReviewStore::default()),
            http: ScriptedHttp::answering(http),
            queues: Queues::default(),
        }
    }

    async fn deliver(d: &TestDispatcher, m: &DispatchMessage, receive_count: u32) -> Disposition {
        let body = serde_json::to_string(m).unwrap();
        d.handle(
            &Delivery {
                message_id: "sqs-1",
                body: &body,
                receive_count,
            },
            now(),
        )
        .await
    }

    #[tokio::test]
    async fn server_errors_retry_with_backoff_then_one_send_is_recorded() {
        let d = dispatcher(
            vec![record(Some(Outcome::Completed))],
            vec![status(500), status(503), status(200)],
        );
        let m = finalize(Some(Outcome::Completed));
        assert_eq!(deliver(&d, &m, 1).await.retry_after(), Some(30));
        assert_eq!(
            d.ledger.entry(&m.dispatch_id).unwrap().status,
            LedgerStatus::Retrying
        );
        assert_eq!(deliver(&d, &m, 2).await.retry_after(), Some(60));
        assert_eq!(
            deliver(&d, &m, 3).await,
            Disposition::Sent {
                dispatch_id: m.dispatch_id.clone(),
                route: RouteKey::Completed,
                status_code: Some(200)
            }
        );
        assert_eq!(d.http.urls(), [CRM, CRM, CRM]);
        let entry = d.ledger.entry(&m.dispatch_id).unwrap();
        assert_eq!(
            (entry.status, entry.attempts, entry.status_code),
            (LedgerStatus::Sent, 3, Some(200))
        );
        // A redelivered copy is never sent again.
        assert_eq!(
            deliver(&d, &m, 1).await,
            Disposition::AlreadySent {
                dispatch_id: m.dispatch_id.clone()
            }
        );
        assert_eq!(d.http.urls().len(), 3);
        assert!(d.review.as_ref().unwrap().is_empty());
    }

    #[tokio::test]
    async fn reports_name_the_call_and_each_attempt_made() {
        let d = dispatcher(
            vec![record(Some(Outcome::Completed))],
            vec![status(500), status(200)],
        );
        let m = finalize(Some(Outcome::Completed));
        let body = serde_json::to_string(&m).unwrap();
        let report = |receive_count| {
            let body = body.clone();
            let d = &d;
            async move {
                let delivery = Delivery {
                    message_id: "sqs-1",
                    body: &body,
                    receive_count,
                };
                d.handle_reporting(&delivery, now()).await
            }
        };
        let crm = |failed| {
            Some(Attempted {
                route: "crm",
                failed,
            })
        };
        let (disposition, first) = report(1).await;
        assert!(disposition.retry_after().is_some());
        assert_eq!(
            first,
            Report {
                call_id: Some(CALL.into()),
                provider: Some("telnyx".into()),
                attempt: crm(true),
            }
        );
        let (disposition, second) = report(2).await;
        assert!(matches!(disposition, Disposition::Sent { .. }));
        assert_eq!(second.attempt, crm(false));
        let (disposition, third) = report(3).await;
        assert!(matches!(disposition, Disposition::AlreadySent { .. }));
        assert_eq!(third.attempt, None, "no attempt: nothing sent");

        // A client error is a failed attempt too (not retryable).
        let d = dispatcher(vec![record(Some(Outcome::Completed))], vec![status(400)]);
        let delivery = Delivery {
            message_id: "sqs-2",
            body: &body,
            receive_count: 1,
        };
        let (disposition, rejected) = d.handle_reporting(&delivery, now()).await;
        assert!(matches!(disposition, Disposition::Reviewed { .. }));
        assert_eq!(rejected.attempt, crm(true));

        // The call-back queue is an attempt on `callback`; an unreadable message is none.
        let d = dispatcher(vec![record(Some(Outcome::Busy))], vec![]);
        let (_, queued) = d.handle_reporting(&delivery, now()).await;
        assert_eq!(
            queued.attempt,
            Some(Attempted {
                route: "callback",
                failed: false
            })
        );
        let garbage = Delivery {
            body: "not json",
            ..delivery
        };
        assert_eq!(
            d.handle_reporting(&garbage, now()).await.1,
            Report::default()
        );
    }

    #[tokio::test]
    async fn retry_after_from_the_receiver_is_honoured() {
        let d = dispatcher(
            vec![record(Some(Outcome::Completed))],
            vec![HttpResult::Response {
                status: 429,
                body: String::new(),
                retry_after_secs: Some(200),
            }],
        );
        assert_eq!(
            deliver(&d, &finalize(None), 1).await.retry_after(),
            Some(200)
        );
    }

    #[tokio::test]
    async fn client_errors_go_to_review_with_status_and_body() {
        let long = "e".repeat(10_000);
        let d = dispatcher(
            vec![record(Some(Outcome::Completed))],
            vec![HttpResult::Response {
                status: 400,
                body: long,
                retry_after_secs: None,
            }],
        );
        let m = finalize(Some(Outcome::Completed));
        let disposition = deliver(&d, &m, 1).await;
        assert!(
            matches!(disposition, Disposition::Reviewed { .. }),
            "{disposition:?}"
        );
        let item = d
            .review
            .as_ref()
            .unwrap()
            .get("dispatch#telnyx#call-1#completed")
            .unwrap();
        assert_eq!(item.reason, "dispatch_failed");
        assert_eq!(item.subject_id, m.dispatch_id);
        assert_eq!(item.status_code, Some(400));
        assert_eq!(item.response_body.as_ref().unwrap().len(), 4096);
        assert_eq!(item.payload, serde_json::to_value(&m).unwrap());
        assert_eq!(item.attempts, 1);
        assert!(item.detail.contains("answered 400"), "{}", item.detail);
        assert_eq!(
            d.ledger.entry(&m.dispatch_id).unwrap().status,
            LedgerStatus::Failed
        );
    }

    #[tokio::test]
    async fn exhausted_retries_go_to_review() {
        let d = dispatcher(
            vec![record(Some(Outcome::Completed))],
            vec![HttpResult::Timeout; 5],
        );
        let m = finalize(None);
        for n in 1..5 {
            assert!(deliver(&d, &m, n).await.retry_after().is_some());
        }
        let last = deliver(&d, &m, 5).await;
        let Disposition::Reviewed { detail, .. } = last else {
            panic!("{last:?}")
        };
        assert!(
            detail.contains("gave up after 5 attempts: timed out after 10 s"),
            "{detail}"
        );
        assert_eq!(d.http.urls().len(), 5);
    }

    #[tokio::test]
    async fn unanswered_calls_request_a_callback_not_the_crm() {
        let d = dispatcher(vec![record(Some(Outcome::Busy))], vec![]);
        let m = finalize(Some(Outcome::Busy));
        assert!(matches!(
            deliver(&d, &m, 1).await,
            Disposition::Sent {
                route: RouteKey::Busy,
                status_code: None,
                ..
            }
        ));
        assert!(d.http.urls().is_empty());
        let sent = d.queues.sent.lock().unwrap().clone();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].0, CALLBACKS);
        let body: Value = serde_json::from_str(&sent[0].1).unwrap();
        assert_eq!(body["type"], "callback.requested");
        assert_eq!(body["outcome"], "busy");

        // A queue failure retries.
        let d = dispatcher(vec![record(Some(Outcome::NoAnswer))], vec![]);
        d.queues
            .fail
            .store(true, std::sync::atomic::Ordering::SeqCst);
        assert_eq!(
            deliver(&d, &finalize(None), 1).await.retry_after(),
            Some(30)
        );
    }

    #[tokio::test]
    async fn an_escalated_completion_opens_the_one_ticket() {
        let d = dispatcher(vec![record(Some(Outcome::Escalated))], vec![]);
        // Finalized as completed; escalated within the settle window.
        let completion = finalize(Some(Outcome::Completed));
        let escalate = DispatchMessage::from_effect(&Effect::Escalate {
            call_id: CALL.into(),
            event_id: "stateset#esc".into(),
            dispatch_id: lifecycle::escalation_dispatch_id(CALL),
        })
        .unwrap();
        assert_eq!(
            deliver(&d, &completion, 1).await,
            Disposition::Sent {
                dispatch_id: "telnyx#call-1#escalated".into(),
                route: RouteKey::Escalated,
                status_code: Some(200)
            }
        );
        assert_eq!(
            deliver(&d, &escalate, 1).await,
            Disposition::AlreadySent {
                dispatch_id: "telnyx#call-1#escalated".into()
            }
        );
        let requests = d.http.requests.lock().unwrap().clone();
        assert_eq!(requests.len(), 1);
        assert_eq!(requests[0].0, TICKETS);
        let id = requests[0]
            .1
            .iter()
            .find(|(k, _)| *k == "webhook-id")
            .unwrap();
        assert_eq!(id.1, "telnyx#call-1#escalated");
    }

    #[tokio::test]
    async fn updates_and_actions_follow_their_routes() {
        let d = dispatcher(vec![record(Some(Outcome::Completed))], vec![]);
        let update = DispatchMessage::from_effect(&Effect::Enrich {
            call_id: CALL.into(),
            event_id: "telnyx#rec".into(),
            dispatch_id: update_dispatch_id(CALL, "telnyx#rec"),
        })
        .unwrap();
        let action = DispatchMessage::from_effect(&Effect::Action {
            call_id: CALL.into(),
            event_id: "telnyx#act".into(),
            dispatch_id: action_dispatch_id(CALL, "telnyx#act"),
        })
        .unwrap();
        assert!(matches!(
            deliver(&d, &update, 1).await,
            Disposition::Sent {
                route: RouteKey::Updated,
                ..
            }
        ));
        assert!(matches!(
            deliver(&d, &action, 1).await,
            Disposition::Sent {
                route: RouteKey::Action,
                ..
            }
        ));
        assert_eq!(d.http.urls(), [CRM, TICKETS]);
        let body: Value = serde_json::from_slice(&d.http.requests.lock().unwrap()[0].2).unwrap();
        assert_eq!(body["type"], "call.updated");
    }

    #[tokio::test]
    async fn unconfigured_routes_go_to_review_and_drop_drops() {
        let mut d = dispatcher(vec![record(Some(Outcome::Busy))], vec![]);
        d.routes = Routes::from_env(&env(&[(CALLBACK_QUEUE_URL, "")])).unwrap();
        let m = finalize(Some(Outcome::Busy));
        let Disposition::Reviewed { detail, .. } = deliver(&d, &m, 1).await else {
            panic!()
        };
        assert_eq!(
            detail,
            "route busy has no destination: CALLBACK_QUEUE_URL is not set"
        );
        assert!(d.ledger.entry(&m.dispatch_id).is_none());

        d.routes = Routes::from_env(&env(&[(DISPATCH_ROUTES, r#"{"busy": "drop"}"#)])).unwrap();
        assert_eq!(
            deliver(&d, &m, 1).await,
            Disposition::Dropped {
                dispatch_id: m.dispatch_id.clone(),
                route: RouteKey::Busy
            }
        );
        assert!(d.queues.sent.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn malformed_messages_missing_calls_and_store_outages() {
        let d = dispatcher(vec![], vec![]);
        let disposition = d
            .handle(
                &Delivery {
                    message_id: "m-1",
                    body: "{\"nope\":1}",
                    receive_count: 1,
                },
                now(),
            )
            .await;
        assert!(
            matches!(&disposition, Disposition::Reviewed { reason, .. } if reason == "malformed")
        );
        assert!(d.review.as_ref().unwrap().get("dispatch#sqs#m-1").is_some());

        // No call yet: retried, and reviewed once attempts are exhausted.
        let m = finalize(None);
        assert_eq!(deliver(&d, &m, 1).await.retry_after(), Some(30));
        assert!(matches!(
            deliver(&d, &m, 5).await,
            Disposition::Reviewed { .. }
        ));

        // Ledger down: retry, nothing sent.
        let d = dispatcher(vec![record(None)], vec![]);
        d.ledger
            .fail
            .store(true, std::sync::atomic::Ordering::SeqCst);
        assert!(deliver(&d, &m, 1).await.retry_after().is_some());
        assert!(d.http.urls().is_empty());
    }

    #[tokio::test]
    async fn without_a_review_table_failures_stay_on_the_queue() {
        let mut d = dispatcher(vec![record(None)], vec![status(400)]);
        d.review = None;
        let disposition = deliver(&d, &finalize(None), 1).await;
        let Disposition::Retry { detail, .. } = disposition else {
            panic!("{disposition:?}")
        };
        assert!(detail.contains("REVIEW_TABLE is not set"), "{detail}");

        // And a review store outage retries too.
        let d = dispatcher(vec![record(None)], vec![status(404)]);
        d.review
            .as_ref()
            .unwrap()
            .fail
            .store(true, std::sync::atomic::Ordering::SeqCst);
        assert!(
            deliver(&d, &finalize(None), 1)
                .await
                .retry_after()
                .is_some()
        );
    }

    #[tokio::test]
    async fn a_copy_in_flight_waits_for_the_lease() {
        let d = dispatcher(vec![record(None)], vec![]);
        let m = finalize(None);
        d.ledger.begin(&m.dispatch_id, now(), 20).await.unwrap();
        assert_eq!(deliver(&d, &m, 1).await.retry_after(), Some(20));
        assert!(d.http.urls().is_empty());
    }
}

#[cfg(test)]
mod url_tests {
    use super::check_url;

    #[test]
    fn urls_need_a_scheme_and_a_host() {
        for good in [
            "https://crm.example.com/hooks?token=x",
            "http://127.0.0.1:3001/crm",
            "https://user:pw@crm.example.com",
        ] {
            assert!(check_url("V", "the value", good).is_ok(), "{good}");
        }
        for bad in [
            "https://?token=x",
            "https:///path",
            "https://#frag",
            "https://:443/x",
            "ftp://crm.example.com",
            "crm.example.com",
            "https://crm.example.com/a b",
            "https://user@/x",
        ] {
            let err = check_url("V", "the value", bad).unwrap_err().to_string();
            assert!(!err.contains(bad), "the URL is never echoed: {err}");
        }
    }
}
