//! Vapi server messages (the assistant's, phone number's or organization's server URL).
//!
//! Authentication: Vapi has no fixed scheme; each customer attaches a credential to the server
//! URL, so VAPI_AUTH says which one, explicitly (unset with secrets or tokens present is a
//! configuration error naming VAPI_AUTH):
//! - `hmac` (Vapi's HMAC credential with its defaults): hex HMAC-SHA256 keyed with a secret of
//!   VAPI_HMAC_SECRETS over `{timestamp}.{raw body}`, the timestamp header's value as sent.
//!   Headers VAPI_SIGNATURE_HEADER (default `x-signature`) and VAPI_TIMESTAMP_HEADER (default
//!   `x-timestamp`). The signature may also be base64 and carry a `sha256=` prefix (the
//!   credential's `signatureEncoding` and `signaturePrefix`: the same MAC written otherwise). A
//!   secret entry `base64:<…>` is decoded first (the credential's `secretIsBase64`). Vapi does
//!   not document the timestamp's unit: 10^12 and above is milliseconds (Vapi's own JSON times
//!   are), below seconds; ±300 s (VAPI_TOLERANCE_SECS), both sides. A credential that signs
//!   without the timestamp (`includeTimestamp: false`, `payloadFormat: {body}`) is refused:
//!   its signatures can be replayed forever.
//! - `token` (a Bearer credential; the legacy `serverUrlSecret`): the header VAPI_TOKEN_HEADER
//!   (default `x-vapi-secret`) must equal one of VAPI_TOKENS (at least 16 characters each),
//!   compared in constant time; a `Bearer ` prefix is accepted. It authenticates the sender,
//!   not the bytes, and is never stored.
//!
//! Only messages that need no answer belong here. `assistant-request`, `tool-calls`,
//! `function-call`, `transfer-destination-request`, `handoff-destination-request`,
//! `knowledge-base-request`, `voice-request`, `call.endpointing.request` and
//! `phone-call-control` wait for a synchronous answer that callhook cannot give: a server URL
//! that receives them must not point at callhook (set the assistant's `serverMessages` to
//! the lifecycle messages). If they come anyway they are kept for review
//! (`response_required`) and Vapi gets callhook's usual 200.
//!
//! Envelope: `{"message":{"type","timestamp":<Unix ms>,"call":{…},"customer","phoneNumber",…}}`.
//! Vapi sends no event id: the dedupe key is `derived_key(message.call.id, "status-update",
//! status)` for a status update (each status is reported once per call),
//! `derived_key(message.call.id, "end-of-call-report")` for the report, and adds the SHA-256
//! of the raw body for the messages that recur (transcripts, conversation updates, …) and
//! unknown types. Call key: `message.call.id`. occurred_at: `message.timestamp`, else the call's
//! own time for the fact (`endedAt` for an end), else the receipt time.
//!
//! `endedReason` → outcome by [`ENDED_REASONS`], then [`ENDED_REASON_PATTERNS`]; a reason
//! neither covers is not guessed: no outcome, the raw reason in `hangup_cause`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::Value;

use super::{
    Delivery, Provider, ProviderEntry, derived_key, malformed, mark_unknown, millis_at, scoped_id,
    sha256_hex, str_at, time_at,
};
#[cfg(any(test, feature = "dev"))]
use super::{DevSigner, Signed};
use crate::config::{ConfigError, Env, vars};
use crate::domain::event::{CanonicalEvent, Direction, Facts, Kind, Outcome, ReviewNote};
use crate::domain::review::ReviewReason;
use crate::signing::{self as verify, AuthError};
use chrono::{DateTime, Utc};

pub const NAME: &str = "vapi";
const AUTH_VAR: &str = vars::VAPI_AUTH;
const SECRETS_VAR: &str = vars::VAPI_HMAC_SECRETS;
const TOKENS_VAR: &str = vars::VAPI_TOKENS;
const SIGNATURE_HEADER_VAR: &str = vars::VAPI_SIGNATURE_HEADER;
const TIMESTAMP_HEADER_VAR: &str = vars::VAPI_TIMESTAMP_HEADER;
const TOKEN_HEADER_VAR: &str = vars::VAPI_TOKEN_HEADER;
pub const DEFAULT_SIGNATURE_HEADER: &str = "x-signature";
pub const DEFAULT_TIMESTAMP_HEADER: &str = "x-timestamp";
pub const DEFAULT_TOKEN_HEADER: &str = "x-vapi-secret";
/// Shortest token accepted in VAPI_TOKENS: a token binds nothing, so it must not be guessable.
pub const MIN_TOKEN_LEN: usize = 16;
/// A timestamp at or above this is milliseconds (10^12 s would be the year 33658).
const MILLIS_FROM: i64 = 1_000_000_000_000;

use Kind::*;

pub const ENTRY: ProviderEntry = ProviderEntry {
    name: NAME,
    from_env: Vapi::from_env,
    normalizer,
    #[cfg(any(test, feature = "dev"))]
    dev_signer: |seed| Box::new(HmacSigner(dev_secret(seed))),
};

/// Server message types that need no answer → kind, terminal fact, recurs within a call.
/// `status-update`'s kind comes from its status ([`STATUSES`]).
pub const MAPPING: &[(&str, Kind, bool, bool)] = &[
    ("status-update", Progress, false, false),
    // "Sent when the call ends and post-processing is complete": the terminal fact, carrying
    // the transcript, analysis, recording and cost the CRM wants.
    ("end-of-call-report", Ended, true, false),
    ("transcript", Progress, false, true),
    (
        "transcript[transcriptType=\"final\"]",
        Progress,
        false,
        true,
    ),
    // The assistant is slow to answer (model, voice or tool latency); not a hang-up.
    ("hang", Progress, false, true),
    ("conversation-update", Progress, false, true),
    ("speech-update", Progress, false, true),
    ("model-output", Progress, false, true),
    ("user-interrupted", Progress, false, true),
    ("transfer-update", Progress, false, true),
    ("language-change-detected", Progress, false, true),
    ("assistant.started", Progress, false, true),
];

/// `status` of a `status-update` → kind. `ended` carries `endedReason` and moves the call to
/// ended without finalizing it: the end-of-call report follows. Other statuses (`not-found`,
/// `deletion-failed`) are not about a call's progress: review.
pub const STATUSES: &[(&str, Kind)] = &[
    ("scheduled", Queued),
    ("queued", Queued),
    ("ringing", Ringing),
    ("in-progress", Answered),
    ("forwarding", Progress),
    ("ended", Ended),
];

/// Messages Vapi sends expecting an answer in the response: never point them at callhook.
pub const RESPONSE_REQUIRED: &[&str] = &[
    "assistant-request",
    "tool-calls",
    "function-call",
    "transfer-destination-request",
    "handoff-destination-request",
    "knowledge-base-request",
    "voice-request",
    "call.endpointing.request",
    "phone-call-control",
];

/// `endedReason` values with their own outcome (Vapi's "Call ended reasons" page). Checked
/// before [`ENDED_REASON_PATTERNS`].
pub const ENDED_REASONS: &[(&str, Outcome)] = &[
    ("customer-ended-call", Outcome::Completed),
    ("assistant-ended-call", Outcome::Completed),
    ("assistant-said-end-call-phrase", Outcome::Completed),
    (
        "assistant-ended-call-after-message-spoken",
        Outcome::Completed,
    ),
    ("assistant-ended-call-with-hangup-task", Outcome::Completed),
    ("silence-timed-out", Outcome::Completed),
    ("exceeded-max-duration", Outcome::Completed),
    ("call.in-progress.twilio-completed-call", Outcome::Completed),
    ("call.in-progress.sip-completed-call", Outcome::Completed),
    ("vonage-completed", Outcome::Completed),
    ("assistant-forwarded-call", Outcome::Escalated),
    ("call.ringing.hook-executed-transfer", Outcome::Escalated),
    ("call.ending.hook-executed-transfer", Outcome::Escalated),
    (
        "assistant-request-returned-forwarding-phone-number",
        Outcome::Escalated,
    ),
    // A transfer to a person that did not complete: the caller still wants one, so it is an
    // escalation (ticketing follows up), not a missed call.
    ("customer-ended-call-during-transfer", Outcome::Escalated),
    (
        "customer-ended-call-before-warm-transfer",
        Outcome::Escalated,
    ),
    (
        "customer-ended-call-after-warm-transfer-attempt",
        Outcome::Escalated,
    ),
    ("call.forwarding.operator-busy", Outcome::Escalated),
    ("call.forwarding.no-answer", Outcome::Escalated),
    ("voicemail", Outcome::Voicemail),
    ("customer-busy", Outcome::Busy),
    ("customer-did-not-answer", Outcome::NoAnswer),
    // "Phone rang but no answer … SIP 408/480".
    (
        "call.in-progress.error-providerfault-outbound-sip-408-request-timeout",
        Outcome::NoAnswer,
    ),
    (
        "call.in-progress.error-providerfault-outbound-sip-480-temporarily-unavailable",
        Outcome::NoAnswer,
    ),
    ("manually-canceled", Outcome::Canceled),
    ("scheduled-call-deleted", Outcome::Canceled),
    ("call-deleted", Outcome::Canceled),
    ("vonage-rejected", Outcome::Failed),
    ("twilio-reported-customer-misdialed", Outcome::Failed),
    ("phone-call-provider-closed-websocket", Outcome::Failed),
    ("worker-shutdown", Outcome::Failed),
    ("assistant-not-found", Outcome::Failed),
];

/// Where an [`ENDED_REASON_PATTERNS`] entry looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pattern {
    Prefix(&'static str),
    Contains(&'static str),
}

impl Pattern {
    fn matches(self, reason: &str) -> bool {
        match self {
            Pattern::Prefix(p) => reason.starts_with(p),
            Pattern::Contains(p) => reason.contains(p),
        }
    }
}

/// The families of `endedReason`, first match wins: failed transfers (escalated), then the
/// error prefixes Vapi documents (`call.start.error-`, `call.in-progress.error-vapifault-` and
/// `-providerfault-`, `pipeline-error-`, …) and any `-error-` or `-failed` (failed).
pub const ENDED_REASON_PATTERNS: &[(Pattern, Outcome)] = &[
    (Pattern::Contains("transfer-failed"), Outcome::Escalated),
    (Pattern::Contains("warm-transfer"), Outcome::Escalated),
    (Pattern::Prefix("call.start.error-"), Outcome::Failed),
    (Pattern::Prefix("call-start-error-"), Outcome::Failed),
    (Pattern::Prefix("call.in-progress.error-"), Outcome::Failed),
    (Pattern::Prefix("call.ringing.error-"), Outcome::Failed),
    (Pattern::Prefix("pipeline-error-"), Outcome::Failed),
    (Pattern::Prefix("assistant-request-"), Outcome::Failed),
    (Pattern::Contains("-error-"), Outcome::Failed),
    (Pattern::Contains("-failed"), Outcome::Failed),
];

/// The outcome of an `endedReason`; `None` for a reason neither table covers.
pub fn ended_reason_outcome(reason: &str) -> Option<Outcome> {
    ENDED_REASONS
        .iter()
        .find(|(r, _)| *r == reason)
        .map(|(_, outcome)| *outcome)
        .or_else(|| {
            ENDED_REASON_PATTERNS
                .iter()
                .find(|(p, _)| p.matches(reason))
                .map(|(_, outcome)| *outcome)
        })
}

enum Auth {
    Hmac {
        secrets: Vec<Vec<u8>>,
        signature_header: &'static str,
        timestamp_header: &'static str,
        /// `[signature_header, timestamp_header]`, kept to re-verify a stored delivery.
        signed_headers: &'static [&'static str],
    },
    Token {
        tokens: Vec<String>,
        header: &'static str,
    },
}

pub struct Vapi {
    auth: Auth,
    tolerance_secs: u64,
}

/// A header name from `var` (lower-cased), or `default`. Configured names are leaked once at
/// cold start: authentication errors and `signed_headers` name them for the life of the process.
fn header_name(env: &Env, var: &str, default: &'static str) -> Result<&'static str, ConfigError> {
    let Some(name) = env.get(var) else {
        return Ok(default);
    };
    let name = name.to_ascii_lowercase();
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(ConfigError::invalid(
            var,
            "a header name has characters other than a-z 0-9 - _",
        ));
    }
    Ok(if name == default {
        default
    } else {
        Box::leak(name.into_boxed_str())
    })
}

/// A secret of VAPI_HMAC_SECRETS: its UTF-8 bytes, or `base64:<…>` decoded.
fn parse_secret(entry: &str) -> Result<Vec<u8>, ConfigError> {
    let bytes = match entry.strip_prefix("base64:") {
        Some(encoded) => B64.decode(encoded).map_err(|_| {
            ConfigError::invalid(SECRETS_VAR, "a base64: secret is not valid base64")
        })?,
        None => entry.as_bytes().to_vec(),
    };
    if bytes.is_empty() {
        return Err(ConfigError::invalid(SECRETS_VAR, "a secret is empty"));
    }
    Ok(bytes)
}

impl Vapi {
    pub fn from_env(env: &Env) -> Result<Option<Box<dyn Provider>>, ConfigError> {
        let secrets = env.list(SECRETS_VAR);
        let tokens = env.list(TOKENS_VAR);
        let mode = match env.get(AUTH_VAR) {
            Some(mode) => mode.to_ascii_lowercase(),
            None if secrets.is_empty() && tokens.is_empty() => return Ok(None),
            None => {
                return Err(ConfigError::invalid(
                    AUTH_VAR,
                    "must be hmac or token when VAPI_HMAC_SECRETS or VAPI_TOKENS is set",
                ));
            }
        };
        let auth = match mode.as_str() {
            "hmac" => {
                if secrets.is_empty() {
                    return Err(ConfigError::missing(SECRETS_VAR));
                }
                if !tokens.is_empty() {
                    return Err(ConfigError::invalid(
                        TOKENS_VAR,
                        "is set but VAPI_AUTH is hmac: tokens would not be checked",
                    ));
                }
                let signature_header =
                    header_name(env, SIGNATURE_HEADER_VAR, DEFAULT_SIGNATURE_HEADER)?;
                let timestamp_header =
                    header_name(env, TIMESTAMP_HEADER_VAR, DEFAULT_TIMESTAMP_HEADER)?;
                if signature_header == timestamp_header {
                    return Err(ConfigError::invalid(
                        TIMESTAMP_HEADER_VAR,
                        "must differ from VAPI_SIGNATURE_HEADER",
                    ));
                }
                Auth::Hmac {
                    secrets: secrets
                        .iter()
                        .map(|s| parse_secret(s))
                        .collect::<Result<_, _>>()?,
                    signature_header,
                    timestamp_header,
                    signed_headers: Box::leak(Box::new([signature_header, timestamp_header])),
                }
            }
            "token" => {
                if tokens.is_empty() {
                    return Err(ConfigError::missing(TOKENS_VAR));
                }
                if !secrets.is_empty() {
                    return Err(ConfigError::invalid(
                        SECRETS_VAR,
                        "is set but VAPI_AUTH is token: secrets would not be checked",
                    ));
                }
                if tokens.iter().any(|t| t.len() < MIN_TOKEN_LEN) {
                    return Err(ConfigError::invalid(
                        TOKENS_VAR,
                        "a token is shorter than 16 characters",
                    ));
                }
                Auth::Token {
                    tokens: tokens.into_iter().map(str::to_owned).collect(),
                    header: header_name(env, TOKEN_HEADER_VAR, DEFAULT_TOKEN_HEADER)?,
                }
            }
            _ => return Err(ConfigError::invalid(AUTH_VAR, "expected hmac or token")),
        };
        Ok(Some(Box::new(Vapi {
            auth,
            tolerance_secs: env.tolerance_secs(vars::VAPI_TOLERANCE_SECS, 300)?,
        })))
    }
}

fn mac(secret: &[u8], timestamp: &str, body: &[u8]) -> [u8; 32] {
    verify::hmac_sha256(secret, &[timestamp.as_bytes(), b".", body])
}

/// The MAC a signature header presents: hex or base64, with or without `sha256=`.
fn presented_mac(header: &'static str, value: &str) -> Result<Vec<u8>, AuthError> {
    let value = value.strip_prefix("sha256=").unwrap_or(value);
    let bytes = if value.len() == 64 {
        verify::decode_hex(header, value)?
    } else {
        verify::decode_b64(header, value)?
    };
    if bytes.len() == 32 {
        Ok(bytes)
    } else {
        Err(AuthError::Malformed(header))
    }
}

/// The provider for normalizing stored events: no credentials (it is wrapped so that it
/// verifies nothing).
fn normalizer(_env: &Env) -> Result<Box<dyn Provider>, ConfigError> {
    Ok(Box::new(Vapi {
        auth: Auth::Token {
            tokens: Vec::new(),
            header: DEFAULT_TOKEN_HEADER,
        },
        tolerance_secs: 0,
    }))
}

impl Provider for Vapi {
    fn name(&self) -> &'static str {
        NAME
    }

    fn signed_headers(&self) -> &'static [&'static str] {
        match &self.auth {
            Auth::Hmac { signed_headers, .. } => signed_headers,
            Auth::Token { .. } => &[],
        }
    }

    fn verify(&self, d: &Delivery<'_>) -> Result<(), AuthError> {
        match &self.auth {
            Auth::Hmac {
                secrets,
                signature_header,
                timestamp_header,
                ..
            } => {
                let (signature_header, timestamp_header) = (*signature_header, *timestamp_header);
                let signature = d.headers.require(signature_header)?;
                let timestamp = d.headers.require(timestamp_header)?;
                let malformed = AuthError::Malformed(timestamp_header);
                if timestamp.is_empty() || !timestamp.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(malformed);
                }
                let ts: i64 = timestamp.parse().map_err(|_| malformed)?;
                let millis = if ts >= MILLIS_FROM {
                    ts
                } else {
                    ts.saturating_mul(1000)
                };
                verify::check_timestamp_millis(millis, d.received_at, self.tolerance_secs)?;
                let presented = presented_mac(signature_header, signature)?;
                let expected: Vec<[u8; 32]> =
                    secrets.iter().map(|s| mac(s, timestamp, d.body)).collect();
                if verify::matches_any(&presented, &expected) {
                    Ok(())
                } else {
                    Err(AuthError::BadSignature)
                }
            }
            Auth::Token { tokens, header } => {
                let header = *header;
                let presented = d.headers.require(header)?;
                let presented = presented.strip_prefix("Bearer ").unwrap_or(presented);
                if verify::matches_any(presented.as_bytes(), tokens) {
                    Ok(())
                } else {
                    Err(AuthError::BadHeaderToken(header))
                }
            }
        }
    }

    fn normalize(&self, d: &Delivery<'_>) -> CanonicalEvent {
        let Ok(mut body) = serde_json::from_slice::<Value>(d.body) else {
            return malformed(NAME, d.body, d.received_at, "body is not JSON");
        };
        let Some(message) = body.get_mut("message").filter(|m| m.is_object()) else {
            return malformed(NAME, d.body, d.received_at, "missing message");
        };
        let message = message.take();
        let Some(event_type) = str_at(&message, "/type") else {
            return malformed(NAME, d.body, d.received_at, "missing message.type");
        };
        let mapping = MAPPING.iter().find(|(t, ..)| *t == event_type);
        let call_key = str_at(&message, "/call/id");
        if mapping.is_some() && call_key.is_none() {
            return malformed(NAME, d.body, d.received_at, "missing message.call.id");
        }
        let status = str_at(&message, "/status");
        if event_type == "status-update" && status.is_none() {
            return malformed(NAME, d.body, d.received_at, "missing message.status");
        }
        let key = match (mapping, status) {
            (Some(("status-update", ..)), Some(status)) => {
                derived_key(&[call_key.unwrap_or(""), event_type, status])
            }
            (Some((.., false)), _) => derived_key(&[call_key.unwrap_or(""), event_type]),
            _ => derived_key(&[call_key.unwrap_or(""), event_type, &sha256_hex(d.body)]),
        };
        let mut event = CanonicalEvent::new(NAME, &key, event_type, d.received_at);
        event.call_id = call_key.map(|k| scoped_id(NAME, k));
        parties(&mut event, &message);

        let kind = match (mapping, status) {
            (Some(("status-update", ..)), Some(status)) => {
                STATUSES.iter().find(|(s, _)| *s == status).map(|(_, k)| *k)
            }
            (Some((_, kind, ..)), _) => Some(*kind),
            (None, _) => None,
        };
        let ending = kind == Some(Ended);
        event.occurred_at = millis_at(&message, "/timestamp")
            .or_else(|| {
                ending
                    .then(|| {
                        time_at(&message, "/endedAt").or_else(|| time_at(&message, "/call/endedAt"))
                    })
                    .flatten()
            })
            .unwrap_or(d.received_at);

        match (kind, mapping) {
            (Some(kind), Some((.., is_final, _))) => {
                event.kind = kind;
                event.is_final = *is_final;
                fill_facts(&mut event, &message);
            }
            (None, Some(_)) => {
                event.review = Some(ReviewNote {
                    reason: ReviewReason::UnknownType,
                    detail: format!("no mapping for status-update status {status:?}"),
                });
            }
            (_, None) if RESPONSE_REQUIRED.contains(&event_type) => {
                event.review = Some(ReviewNote {
                    reason: ReviewReason::ResponseRequired,
                    detail: format!(
                        "Vapi waits for an answer to {event_type:?} that callhook cannot give: \
                         remove it from the assistant's serverMessages or send it to another \
                         server URL"
                    ),
                });
            }
            (_, None) => mark_unknown(&mut event),
        }
        event.data = message;
        event
    }
}

/// Direction from `call.type`; our number is `phoneNumber.number`, theirs `customer.number`
/// (on the message, else on the call).
fn parties(event: &mut CanonicalEvent, message: &Value) {
    let either = |field: &str| {
        str_at(message, &format!("/{field}/number"))
            .or_else(|| str_at(message, &format!("/call/{field}/number")))
            .map(str::to_owned)
    };
    let (ours, theirs) = (either("phoneNumber"), either("customer"));
    event.direction = match str_at(message, "/call/type") {
        Some("inboundPhoneCall") => Some(Direction::Inbound),
        Some("outboundPhoneCall") => Some(Direction::Outbound),
        _ => None,
    };
    (event.from, event.to) = match event.direction {
        Some(Direction::Inbound) => (theirs, ours),
        Some(Direction::Outbound) => (ours, theirs),
        None => (None, None),
    };
}

fn fill_facts(event: &mut CanonicalEvent, message: &Value) {
    let (outcome, end) = call_end(message);
    event.facts.started_at = end.started_at;
    if event.kind != Ended {
        return;
    }
    event.outcome = outcome;
    let facts = &mut event.facts;
    facts.hangup_cause = end.hangup_cause;
    facts.ended_at = end.ended_at.or(Some(event.occurred_at));
    facts.duration_secs = end
        .duration_secs
        .or_else(|| whole_secs(facts.started_at?, facts.ended_at?));
    if event.is_final {
        facts.recording_url = str_at(message, "/artifact/recording/mono/combinedUrl")
            .or_else(|| str_at(message, "/artifact/recordingUrl"))
            .or_else(|| str_at(message, "/recordingUrl"))
            .map(str::to_owned);
        facts.transcript = message
            .pointer("/artifact/transcript")
            .or_else(|| message.get("transcript"))
            .filter(|t| !t.is_null() && t.as_str() != Some(""))
            .cloned();
        facts.analysis = message
            .get("analysis")
            .filter(|a| a.as_object().is_some_and(|a| !a.is_empty()))
            .cloned();
        facts.cost = message
            .get("cost")
            .or_else(|| message.pointer("/call/cost"))
            .filter(|c| !c.is_null())
            .cloned();
    }
}

/// How a call ended, from a message or from the call object itself (the get-call API answers
/// the call): the outcome of `endedReason` (raw in `hangup_cause`), `startedAt`, `endedAt`, and
/// the duration (`durationSeconds`, else end − start). Times absent where the body has none.
pub fn call_end(message: &Value) -> (Option<Outcome>, Facts) {
    let either = |field: &str| {
        time_at(message, &format!("/{field}"))
            .or_else(|| time_at(message, &format!("/call/{field}")))
    };
    let reason = str_at(message, "/endedReason").or_else(|| str_at(message, "/call/endedReason"));
    let started_at = either("startedAt");
    let ended_at = either("endedAt");
    let facts = Facts {
        started_at,
        ended_at,
        duration_secs: message
            .get("durationSeconds")
            .and_then(Value::as_f64)
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map(|s| s.round() as u64)
            .or_else(|| whole_secs(started_at?, ended_at?)),
        hangup_cause: reason.map(str::to_owned),
        ..Facts::default()
    };
    (reason.and_then(ended_reason_outcome), facts)
}

/// Whole seconds from `start` to `end`, rounded; `None` when `end` is before `start`.
fn whole_secs(start: DateTime<Utc>, end: DateTime<Utc>) -> Option<u64> {
    let millis = u64::try_from((end - start).num_milliseconds()).ok()?;
    Some(millis.saturating_add(500) / 1000)
}

#[cfg(any(test, feature = "dev"))]
/// The dev HMAC secret: `vapi_` and 64 hex characters derived from the seed with a domain tag.
fn dev_secret(seed: &[u8; 32]) -> String {
    let digest = sha256_hex(&[b"callhook dev vapi hmac secret ".as_slice(), seed].concat());
    format!("vapi_{digest}")
}

#[cfg(any(test, feature = "dev"))]
/// Signs as Vapi's HMAC credential with its defaults: `x-timestamp` in milliseconds.
struct HmacSigner(String);

#[cfg(any(test, feature = "dev"))]
impl DevSigner for HmacSigner {
    fn verifier_env(&self) -> Vec<(&'static str, String)> {
        vec![(AUTH_VAR, "hmac".to_owned()), (SECRETS_VAR, self.0.clone())]
    }

    fn sign(&self, body: &[u8], timestamp: i64, _url: &str) -> Signed {
        let millis = timestamp.saturating_mul(1000).to_string();
        let signature = verify::to_hex(&mac(self.0.as_bytes(), &millis, body));
        Signed {
            headers: vec![
                (DEFAULT_SIGNATURE_HEADER.to_owned(), signature),
                (DEFAULT_TIMESTAMP_HEADER.to_owned(), millis),
            ],
            path_token: None,
            url: None,
        }
    }
}

#[cfg(any(test, feature = "dev"))]
/// Sends as a Vapi Bearer credential on `x-vapi-secret` (VAPI_AUTH=token). The token binds
/// nothing of the delivery: property tests only check that another token is refused.
pub fn token_signer(seed: &[u8; 32]) -> Box<dyn DevSigner> {
    Box::new(TokenSigner(sha256_hex(
        &[b"callhook dev vapi token ".as_slice(), seed].concat(),
    )))
}

#[cfg(any(test, feature = "dev"))]
struct TokenSigner(String);

#[cfg(any(test, feature = "dev"))]
impl DevSigner for TokenSigner {
    fn verifier_env(&self) -> Vec<(&'static str, String)> {
        vec![(AUTH_VAR, "token".to_owned()), (TOKENS_VAR, self.0.clone())]
    }

    fn sign(&self, _body: &[u8], _timestamp: i64, _url: &str) -> Signed {
        Signed {
            headers: vec![(DEFAULT_TOKEN_HEADER.to_owned(), self.0.clone())],
            path_token: None,
            url: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::{FIXTURE_SEED, Headers};
    use chrono::{DateTime, TimeZone, Utc};
    use serde_json::json;

    /// The body the Vapi vectors share (842 bytes).
    const V_BODY: &str = r#"{"message":{"timestamp":1714608492512,"type":"end-of-call-report","endedReason":"customer-ended-call","startedAt":"2024-05-02T00:07:55.945Z","endedAt":"2024-05-02T00:08:11.736Z","cost":0.0431,"call":{"id":"3f1a9c2e-7b4d-4e8a-9c1f-2d3e4f5a6b7c","orgId":"9b8a7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d","type":"outboundPhoneCall","status":"ended","phoneCallProvider":"twilio","phoneCallProviderId":"CA0123456789abcdef0123456789abcdef","customer":{"number":"+14155550123"},"phoneNumberId":"5c4b3a29-1807-4f6e-9d5c-4b3a29180706"},"phoneNumber":{"id":"5c4b3a29-1807-4f6e-9d5c-4b3a29180706","number":"+14155550199","provider":"twilio"},"customer":{"number":"+14155550123"},"artifact":{"transcript":"AI: Hi, this is Ava from Acme Dental. User: Not interested, thanks.","messages":[]},"analysis":{"summary":"The callee declined.","successEvaluation":"false"}}}"#;
    const SECRET: &str = "vapi-hmac-secret-2f4e6a8c0b1d3f5e7a9c";
    const TS: &str = "1714608492512";
    const TS_MS: i64 = 1_714_608_492_512;
    const V2_SIG: &str = "441516b435407ba1f59fd48547b00ebb501337ff1a0a9ac55972ff9f023a3723";
    const V3_SIG: &str = "cd3594b2dcf51c018a619e5542d131960f23baba28e280d2aa5b27e848f1471f";
    const V4_SIG: &str = "sha256=RBUWtDVAe6H1n9SFR7AOu1ATN/8aCprFWXL/nwI6NyM=";
    const V5_SECRET: &str = "c2VjcmV0LWJ5dGVzLWZvci12YXBp";
    const V5_SIG: &str = "1c145f81970173e999a626f272e1d8e087cc77f0eff087f9c7e9543b74de93e4";
    /// V1: the legacy `x-vapi-secret` Bearer credential (nothing to compute).
    const TOKEN: &str = "vapi-server-url-secret-7d1e";

    fn provider(pairs: &[(&str, &str)]) -> Box<dyn Provider> {
        Vapi::from_env(&Env::from_pairs(pairs.iter().copied()))
            .unwrap()
            .unwrap()
    }

    fn hmac() -> Box<dyn Provider> {
        provider(&[(AUTH_VAR, "hmac"), (SECRETS_VAR, SECRET)])
    }

    fn at_ms(ms: i64) -> DateTime<Utc> {
        Utc.timestamp_millis_opt(ms).unwrap()
    }

    fn check(
        p: &dyn Provider,
        headers: &[(&str, &str)],
        body: &str,
        now_ms: i64,
    ) -> Result<(), AuthError> {
        let h: Headers = headers.iter().copied().collect();
        p.verify(&Delivery {
            headers: &h,
            body: body.as_bytes(),
            path_token: None,
            request_url: None,
            received_at: at_ms(now_ms),
        })
    }

    fn signed(sig: &str) -> [(&str, &str); 2] {
        [("x-signature", sig), ("x-timestamp", TS)]
    }

    #[test]
    fn v2_default_hmac_verifies_in_a_two_sided_window() {
        let p = hmac();
        for now in [TS_MS, TS_MS + 300_000, TS_MS - 300_000] {
            assert_eq!(check(&*p, &signed(V2_SIG), V_BODY, now), Ok(()), "{now}");
        }
        for now in [TS_MS + 300_001, TS_MS - 300_001] {
            assert_eq!(
                check(&*p, &signed(V2_SIG), V_BODY, now),
                Err(AuthError::Stale(300))
            );
        }
        let upper = V2_SIG.to_ascii_uppercase();
        assert_eq!(check(&*p, &signed(&upper), V_BODY, TS_MS), Ok(()));
        assert_eq!(p.signed_headers(), &["x-signature", "x-timestamp"]);
        let signer = HmacSigner(SECRET.into());
        assert_eq!(
            signer.sign(V_BODY.as_bytes(), 1_714_608_492, "").headers[1],
            ("x-timestamp".to_owned(), "1714608492000".to_owned())
        );
    }

    #[test]
    fn v2_rejects_changes_wrong_secrets_and_bad_headers() {
        let p = hmac();
        let tampered = V_BODY.replace("0.0431", "0.0432");
        assert_eq!(
            check(&*p, &signed(V2_SIG), &tampered, TS_MS),
            Err(AuthError::BadSignature)
        );
        let other_ts = [("x-signature", V2_SIG), ("x-timestamp", "1714608492513")];
        assert_eq!(
            check(&*p, &other_ts, V_BODY, TS_MS),
            Err(AuthError::BadSignature)
        );
        let wrong = provider(&[(AUTH_VAR, "hmac"), (SECRETS_VAR, "another-secret-entirely")]);
        assert_eq!(
            check(&*wrong, &signed(V2_SIG), V_BODY, TS_MS),
            Err(AuthError::BadSignature)
        );
        assert_eq!(
            check(&*p, &[("x-timestamp", TS)], V_BODY, TS_MS),
            Err(AuthError::MissingHeader("x-signature"))
        );
        assert_eq!(
            check(&*p, &[("x-signature", V2_SIG)], V_BODY, TS_MS),
            Err(AuthError::MissingHeader("x-timestamp"))
        );
        for ts in [
            "",
            "-1714608492512",
            "1714608492512.0",
            " 1714608492512",
            "99999999999999999999",
        ] {
            assert_eq!(
                check(
                    &*p,
                    &[("x-signature", V2_SIG), ("x-timestamp", ts)],
                    V_BODY,
                    TS_MS
                ),
                Err(AuthError::Malformed("x-timestamp")),
                "{ts:?}"
            );
        }
        for sig in [
            "",
            "abc",
            &V2_SIG[2..],
            "sha256=",
            "sha1=RBUWtDVAe6H1n9SFR7AOu1ATN/8aCprFWXL/nwI6NyM=",
        ] {
            assert_eq!(
                check(&*p, &signed(sig), V_BODY, TS_MS),
                Err(AuthError::Malformed("x-signature")),
                "{sig:?}"
            );
        }
    }

    #[test]
    fn rotation_and_seconds_timestamps() {
        let p = provider(&[
            (AUTH_VAR, "HMAC"),
            (SECRETS_VAR, &format!("old-secret-000000,{SECRET}")),
        ]);
        assert_eq!(check(&*p, &signed(V2_SIG), V_BODY, TS_MS), Ok(()));
        let signature = verify::to_hex(&mac(SECRET.as_bytes(), "1714608492", V_BODY.as_bytes()));
        let seconds = [
            ("x-signature", signature.as_str()),
            ("x-timestamp", "1714608492"),
        ];
        assert_eq!(check(&*p, &seconds, V_BODY, TS_MS), Ok(()));
        assert_eq!(
            check(&*p, &seconds, V_BODY, TS_MS + 301_000),
            Err(AuthError::Stale(300))
        );
    }

    /// V3 signs the body alone (no timestamp): refused by design, whatever the header names.
    #[test]
    fn v3_body_only_signatures_are_refused() {
        let p = provider(&[
            (AUTH_VAR, "hmac"),
            (SECRETS_VAR, SECRET),
            (SIGNATURE_HEADER_VAR, "X-Vapi-Signature"),
        ]);
        assert_eq!(p.signed_headers(), &["x-vapi-signature", "x-timestamp"]);
        assert_eq!(
            check(&*p, &[("x-vapi-signature", V3_SIG)], V_BODY, TS_MS),
            Err(AuthError::MissingHeader("x-timestamp"))
        );
        let with_ts = [("x-vapi-signature", V3_SIG), ("x-timestamp", TS)];
        assert_eq!(
            check(&*p, &with_ts, V_BODY, TS_MS),
            Err(AuthError::BadSignature)
        );
        // The same credential with the default payload format verifies on the custom header.
        let default_format = [("x-vapi-signature", V2_SIG), ("x-timestamp", TS)];
        assert_eq!(check(&*p, &default_format, V_BODY, TS_MS), Ok(()));
    }

    #[test]
    fn v4_base64_with_a_prefix_verifies() {
        let p = hmac();
        assert_eq!(check(&*p, &signed(V4_SIG), V_BODY, TS_MS), Ok(()));
        let bare = V4_SIG.trim_start_matches("sha256=");
        assert_eq!(check(&*p, &signed(bare), V_BODY, TS_MS), Ok(()));
        let tampered = V_BODY.replace("declined", "accepted");
        assert_eq!(
            check(&*p, &signed(V4_SIG), &tampered, TS_MS),
            Err(AuthError::BadSignature)
        );
    }

    #[test]
    fn v5_base64_secret_verifies_only_when_declared() {
        let declared = provider(&[
            (AUTH_VAR, "hmac"),
            (SECRETS_VAR, &format!("base64:{V5_SECRET}")),
        ]);
        assert_eq!(check(&*declared, &signed(V5_SIG), V_BODY, TS_MS), Ok(()));
        let literal = provider(&[(AUTH_VAR, "hmac"), (SECRETS_VAR, V5_SECRET)]);
        assert_eq!(
            check(&*literal, &signed(V5_SIG), V_BODY, TS_MS),
            Err(AuthError::BadSignature)
        );
        let decoded = provider(&[(AUTH_VAR, "hmac"), (SECRETS_VAR, "secret-bytes-for-vapi")]);
        assert_eq!(check(&*decoded, &signed(V5_SIG), V_BODY, TS_MS), Ok(()));
    }

    #[test]
    fn v1_token_mode_compares_the_header() {
        let p = provider(&[
            (AUTH_VAR, "token"),
            (TOKENS_VAR, &format!("old-token-0123456789,{TOKEN}")),
        ]);
        assert!(p.signed_headers().is_empty(), "a token is never stored");
        assert_eq!(check(&*p, &[("x-vapi-secret", TOKEN)], V_BODY, 0), Ok(()));
        let bearer = format!("Bearer {TOKEN}");
        assert_eq!(check(&*p, &[("x-vapi-secret", &bearer)], V_BODY, 0), Ok(()));
        assert_eq!(
            check(&*p, &[("x-vapi-secret", "old-token-0123456789")], "{}", 0),
            Ok(())
        );
        for wrong in [
            &TOKEN[1..],
            "",
            "VAPI-server-url-secret-7d1e",
            "Bearer ",
            &format!("{TOKEN} "),
        ] {
            assert_eq!(
                check(&*p, &[("x-vapi-secret", wrong)], V_BODY, 0),
                Err(AuthError::BadHeaderToken("x-vapi-secret")),
                "{wrong:?}"
            );
        }
        assert_eq!(
            check(&*p, &[("authorization", &bearer)], V_BODY, 0),
            Err(AuthError::MissingHeader("x-vapi-secret"))
        );
        let custom = provider(&[
            (AUTH_VAR, "token"),
            (TOKENS_VAR, TOKEN),
            (TOKEN_HEADER_VAR, "Authorization"),
        ]);
        assert_eq!(
            check(&*custom, &[("authorization", &bearer)], V_BODY, 0),
            Ok(())
        );
    }

    #[test]
    fn dev_signers_round_trip_in_both_modes() {
        for signer in [
            (ENTRY.dev_signer)(&FIXTURE_SEED),
            token_signer(&FIXTURE_SEED),
        ] {
            let p = Vapi::from_env(&Env::from_pairs(signer.verifier_env()))
                .unwrap()
                .unwrap();
            let headers = signer.sign(b"{}", 1_750_000_000, "").headers;
            let pairs: Vec<(&str, &str)> = headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            assert_eq!(check(&*p, &pairs, "{}", 1_750_000_000_000), Ok(()));
            let other = token_signer(&[1; 32]).sign(b"{}", 0, "").headers;
            let forged = [(other[0].0.as_str(), other[0].1.as_str())];
            assert!(check(&*p, &forged, "{}", 1_750_000_000_000).is_err());
        }
    }

    #[test]
    fn configuration_errors_name_the_variable_never_the_value() {
        let err = |pairs: &[(&str, &str)]| {
            Vapi::from_env(&Env::from_pairs(pairs.iter().copied()))
                .err()
                .unwrap()
                .to_string()
        };
        assert!(Vapi::from_env(&Env::default()).unwrap().is_none());
        assert!(
            Vapi::from_env(&Env::from_pairs([(TOKEN_HEADER_VAR, "x")]))
                .unwrap()
                .is_none()
        );
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[(SECRETS_VAR, SECRET)], AUTH_VAR),
            (&[(TOKENS_VAR, TOKEN)], AUTH_VAR),
            (&[(AUTH_VAR, "bearer"), (TOKENS_VAR, TOKEN)], AUTH_VAR),
            (&[(AUTH_VAR, "hmac")], SECRETS_VAR),
            (&[(AUTH_VAR, "token")], TOKENS_VAR),
            (
                &[
                    (AUTH_VAR, "hmac"),
                    (SECRETS_VAR, SECRET),
                    (TOKENS_VAR, TOKEN),
                ],
                TOKENS_VAR,
            ),
            (
                &[
                    (AUTH_VAR, "token"),
                    (TOKENS_VAR, TOKEN),
                    (SECRETS_VAR, SECRET),
                ],
                SECRETS_VAR,
            ),
            (
                &[(AUTH_VAR, "token"), (TOKENS_VAR, "short-token")],
                TOKENS_VAR,
            ),
            (
                &[(AUTH_VAR, "hmac"), (SECRETS_VAR, "base64:%%not-base64%%")],
                SECRETS_VAR,
            ),
            (&[(AUTH_VAR, "hmac"), (SECRETS_VAR, "base64:")], SECRETS_VAR),
            (
                &[
                    (AUTH_VAR, "hmac"),
                    (SECRETS_VAR, SECRET),
                    (SIGNATURE_HEADER_VAR, "x sig"),
                ],
                SIGNATURE_HEADER_VAR,
            ),
            (
                &[
                    (AUTH_VAR, "hmac"),
                    (SECRETS_VAR, SECRET),
                    (TIMESTAMP_HEADER_VAR, "X-Signature"),
                ],
                TIMESTAMP_HEADER_VAR,
            ),
            (
                &[
                    (AUTH_VAR, "token"),
                    (TOKENS_VAR, TOKEN),
                    (TOKEN_HEADER_VAR, "x:token"),
                ],
                TOKEN_HEADER_VAR,
            ),
            (
                &[
                    (AUTH_VAR, "hmac"),
                    (SECRETS_VAR, SECRET),
                    ("VAPI_TOLERANCE_SECS", "-1"),
                ],
                "VAPI_TOLERANCE_SECS",
            ),
        ];
        for (pairs, var) in cases {
            let text = err(pairs);
            assert!(text.starts_with(var), "{pairs:?}: {text}");
            for (_, value) in *pairs {
                if value.len() > 8 {
                    assert!(!text.contains(value), "{text} shows {value}");
                }
            }
        }
    }

    fn normalize(body: &str) -> CanonicalEvent {
        let h = Headers::new();
        hmac().normalize(&Delivery {
            headers: &h,
            body: body.as_bytes(),
            path_token: None,
            request_url: None,
            received_at: at_ms(1_714_609_000_000),
        })
    }

    #[test]
    fn the_report_normalizes_to_a_completed_final_fact() {
        let e = normalize(V_BODY);
        assert_eq!(
            e.event_id,
            format!(
                "vapi#{}",
                derived_key(&["3f1a9c2e-7b4d-4e8a-9c1f-2d3e4f5a6b7c", "end-of-call-report"])
            )
        );
        assert_eq!(
            e.call_id.as_deref(),
            Some("vapi#3f1a9c2e-7b4d-4e8a-9c1f-2d3e4f5a6b7c")
        );
        assert_eq!((e.kind, e.is_final), (Kind::Ended, true));
        assert_eq!(e.outcome, Some(Outcome::Completed));
        assert_eq!(e.direction, Some(Direction::Outbound));
        assert_eq!(e.from.as_deref(), Some("+14155550199"));
        assert_eq!(e.to.as_deref(), Some("+14155550123"));
        assert_eq!(e.occurred_at, at_ms(TS_MS));
        assert_eq!(e.facts.started_at, Some(at_ms(1_714_608_475_945)));
        assert_eq!(e.facts.ended_at, Some(at_ms(1_714_608_491_736)));
        assert_eq!(e.facts.duration_secs, Some(16));
        assert_eq!(e.facts.hangup_cause.as_deref(), Some("customer-ended-call"));
        assert_eq!(e.facts.cost, Some(json!(0.0431)));
        assert_eq!(
            e.facts.transcript,
            Some(json!(
                "AI: Hi, this is Ava from Acme Dental. User: Not interested, thanks."
            ))
        );
        assert_eq!(
            e.facts.analysis.as_ref().unwrap()["summary"],
            "The callee declined."
        );
        assert_eq!(
            e.data["call"]["phoneCallProviderId"],
            "CA0123456789abcdef0123456789abcdef"
        );
        assert!(e.review.is_none());
    }

    fn status(status: &str, extra: &str) -> String {
        format!(
            r#"{{"message":{{"type":"status-update","timestamp":1714608475000,"status":"{status}",{extra}"call":{{"id":"c1","type":"inboundPhoneCall","customer":{{"number":"+1"}},"phoneNumber":{{"number":"+2"}}}}}}}}"#
        )
    }

    #[test]
    fn every_status_maps_and_keys_by_status() {
        let mut ids = std::collections::BTreeSet::new();
        for (name, kind) in STATUSES {
            let e = normalize(&status(name, r#""endedReason":"customer-busy","#));
            assert_eq!(e.kind, *kind, "{name}");
            assert!(!e.is_final, "{name}: the report is the terminal fact");
            assert_eq!(e.direction, Some(Direction::Inbound));
            assert_eq!(
                (e.from.as_deref(), e.to.as_deref()),
                (Some("+1"), Some("+2"))
            );
            assert_eq!(e.occurred_at, at_ms(1_714_608_475_000));
            assert_eq!(
                e.outcome,
                (*kind == Kind::Ended).then_some(Outcome::Busy),
                "{name}"
            );
            assert!(e.review.is_none());
            assert!(ids.insert(e.event_id.clone()));
            let again = normalize(&status(name, r#""messages":[],"#));
            assert_eq!(e.event_id, again.event_id, "{name}: one fact per status");
        }
        for odd in ["not-found", "deletion-failed", "teleported"] {
            let e = normalize(&status(odd, ""));
            assert_eq!(e.review.as_ref().unwrap().reason, "unknown_type", "{odd}");
            assert_eq!(e.kind, Kind::Unknown);
        }
        let e = normalize(r#"{"message":{"type":"status-update","call":{"id":"c1"}}}"#);
        assert_eq!(e.review.unwrap().reason, "malformed");
    }

    #[test]
    fn every_message_type_maps() {
        for (event_type, kind, is_final, repeats) in
            MAPPING.iter().filter(|(t, ..)| *t != "status-update")
        {
            let body = |n: u8| {
                format!(
                    r#"{{"message":{{"type":"{}","timestamp":1714608480100,"n":{n},"call":{{"id":"c1","type":"webCall"}}}}}}"#,
                    event_type.replace('"', "\\\"")
                )
            };
            let e = normalize(&body(1));
            assert_eq!((e.kind, e.is_final), (*kind, *is_final), "{event_type}");
            assert!(e.review.is_none(), "{event_type}");
            assert_eq!(e.direction, None);
            assert_eq!(e.event_type, *event_type);
            assert_eq!(
                normalize(&body(2)).event_id != e.event_id,
                *repeats,
                "{event_type}"
            );
        }
        assert_eq!(MAPPING.iter().filter(|(_, _, f, _)| *f).count(), 1);
    }

    #[test]
    fn request_messages_are_kept_for_review_not_answered() {
        for event_type in RESPONSE_REQUIRED {
            let e = normalize(&format!(
                r#"{{"message":{{"type":"{event_type}","timestamp":1678901234567,"call":{{"id":"c1"}}}}}}"#
            ));
            let note = e.review.expect(event_type);
            assert_eq!(note.reason, "response_required");
            assert!(note.detail.contains("serverMessages"));
            assert_eq!(e.kind, Kind::Unknown);
        }
        let e = normalize(r#"{"message":{"type":"chat.created","chat":{"id":"ch1"}}}"#);
        assert_eq!(e.review.unwrap().reason, "unknown_type");
    }

    #[test]
    fn ended_times_fall_back_to_the_call() {
        let e = normalize(
            r#"{"message":{"type":"end-of-call-report","endedReason":"voicemail","call":{"id":"c1","startedAt":"2024-05-02T00:07:55Z","endedAt":"2024-05-02T00:08:25Z","cost":0.01},"artifact":{"recording":{"mono":{"combinedUrl":"https://storage.vapi.ai/c1-mono.wav"}},"recordingUrl":"https://old"}}}"#,
        );
        let ended: DateTime<Utc> = "2024-05-02T00:08:25Z".parse().unwrap();
        assert_eq!(e.occurred_at, ended);
        assert_eq!(e.facts.duration_secs, Some(30));
        assert_eq!(e.outcome, Some(Outcome::Voicemail));
        assert_eq!(e.facts.cost, Some(json!(0.01)));
        assert_eq!(
            e.facts.recording_url.as_deref(),
            Some("https://storage.vapi.ai/c1-mono.wav")
        );
        let e = normalize(
            r#"{"message":{"type":"end-of-call-report","durationSeconds":12,"endedReason":"x","call":{"id":"c1"}}}"#,
        );
        assert_eq!(
            e.occurred_at,
            at_ms(1_714_609_000_000),
            "no time at all: receipt"
        );
        assert_eq!(e.facts.duration_secs, Some(12));
    }

    /// Every `endedReason` Vapi's OpenAPI lists maps to an outcome, except these, which are
    /// not guessed (no outcome; the reason stays in `hangup_cause`).
    const UNMAPPED: &[&str] = &[
        "assistant-not-valid",
        "vonage-disconnected",
        "phone-call-provider-bypass-enabled-but-no-call-received",
        "assistant-join-timed-out",
        "customer-did-not-give-microphone-permission",
        "call.ringing.hook-executed-say",
        "call.ending.hook-executed-say",
        "call.ringing.sip-inbound-caller-hungup-before-call-connect",
    ];

    #[test]
    fn every_documented_ended_reason_maps_but_the_unmapped_few() {
        let reasons: Vec<&str> = include_str!("../../testdata/vapi-ended-reasons.txt")
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect();
        assert_eq!(reasons.len(), 627);
        let unmapped: Vec<&str> = reasons
            .iter()
            .copied()
            .filter(|r| ended_reason_outcome(r).is_none())
            .collect();
        let mut expected = UNMAPPED.to_vec();
        expected.sort_unstable();
        let mut found = unmapped.clone();
        found.sort_unstable();
        assert_eq!(found, expected);
        for (reason, _) in ENDED_REASONS {
            assert!(
                reasons.contains(reason),
                "{reason} is not a documented value"
            );
        }
        let count = |outcome| {
            reasons
                .iter()
                .filter(|r| ended_reason_outcome(r) == Some(outcome))
                .count()
        };
        assert_eq!(count(Outcome::Completed), 10);
        assert_eq!(count(Outcome::Busy), 1);
        assert_eq!(count(Outcome::NoAnswer), 3);
        assert_eq!(count(Outcome::Voicemail), 1);
        assert_eq!(count(Outcome::Canceled), 3);
        assert_eq!(count(Outcome::Escalated), 14);
        assert_eq!(
            count(Outcome::Failed),
            627 - 10 - 1 - 3 - 1 - 3 - 14 - UNMAPPED.len()
        );
    }

    #[test]
    fn ended_reason_examples() {
        let cases = [
            (
                "call.in-progress.error-warm-transfer-max-duration",
                Some(Outcome::Escalated),
            ),
            (
                "call.in-progress.error-transfer-failed",
                Some(Outcome::Escalated),
            ),
            (
                "call.in-progress.error-providerfault-outbound-sip-408-request-timeout",
                Some(Outcome::NoAnswer),
            ),
            (
                "call.in-progress.error-providerfault-outbound-sip-503-service-unavailable",
                Some(Outcome::Failed),
            ),
            ("pipeline-error-openai-llm-failed", Some(Outcome::Failed)),
            (
                "assistant-request-returned-forwarding-phone-number",
                Some(Outcome::Escalated),
            ),
            ("assistant-request-returned-error", Some(Outcome::Failed)),
            ("twilio-failed-to-connect-call", Some(Outcome::Failed)),
            ("vonage-disconnected", None),
            ("something-new", None),
        ];
        for (reason, outcome) in cases {
            assert_eq!(ended_reason_outcome(reason), outcome, "{reason}");
            let e = normalize(&status("ended", &format!(r#""endedReason":"{reason}","#)));
            assert_eq!(e.outcome, outcome, "{reason}");
            assert_eq!(e.facts.hangup_cause.as_deref(), Some(reason));
        }
    }

    #[test]
    fn malformed_bodies_go_to_review() {
        for body in [
            "",
            "[]",
            r#"{"type":"status-update"}"#,
            r#"{"message":"x"}"#,
            r#"{"message":{"call":{"id":"c1"}}}"#,
            r#"{"message":{"type":"end-of-call-report","endedReason":"voicemail"}}"#,
            r#"{"message":{"type":"transcript","call":{"id":""}}}"#,
        ] {
            let e = normalize(body);
            assert_eq!(e.review.as_ref().unwrap().reason, "malformed", "{body}");
            assert!(e.event_id.starts_with("vapi#"));
        }
    }
}
