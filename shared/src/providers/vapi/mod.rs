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

mod ended_reason;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::Value;

use super::{
    Delivery, Provider, ProviderEntry, derived_key, key_without_event_id, malformed, mark_unknown,
    millis_at, scoped_id, str_at, time_at, whole_secs,
};
#[cfg(any(test, feature = "dev"))]
use super::{DevSigner, Signed, sha256_hex};
use crate::config::{ConfigError, Env, vars};
use crate::domain::event::{CanonicalEvent, Direction, Facts, Kind, Outcome, ReviewNote};
use crate::domain::review::ReviewReason;
use crate::signing::{self as verify, AuthError};

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

pub use ended_reason::{ENDED_REASON_PATTERNS, ENDED_REASONS, Pattern, ended_reason_outcome};

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
                // A `Bearer ` scheme (any case) is accepted in front of the token.
                let presented = super::bearer(presented).unwrap_or(presented);
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
            (mapping, _) => {
                let once_per_call = matches!(mapping, Some((.., false)));
                key_without_event_id(call_key, event_type, once_per_call, d.body)
            }
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
mod tests;
