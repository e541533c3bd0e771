//! Twilio Programmable Voice: call status, recording status and transcription callbacks.
//!
//! Authentication: `X-Twilio-Signature` = base64 HMAC-SHA1, keyed with the account's Auth Token
//! (TWILIO_AUTH_TOKENS, several during rotation), over the URL Twilio requested followed by the
//! form parameters, decoded, sorted by name then value, identical pairs once, each as
//! `{name}{value}` with no delimiter (twilio-python `RequestValidator.compute_signature`,
//! twilio-node `getExpectedTwilioSignature`). A JSON body is signed through its URL: Twilio
//! adds `bodySHA256` (hex SHA-256 of the raw body) to the query and signs the URL alone; the
//! hash is then checked against the body, and a JSON body without it is refused. The URL is
//! TWILIO_WEBHOOK_URL when set (plus the request's `bodySHA256`), else the URL API Gateway saw
//! (its domain, raw path and raw query; never Host or X-Forwarded-*), tried without and with
//! the port (`:443`/`:80` added when absent) as the SDKs do, and in two more query spellings
//! (see [`candidate_urls`]). No timestamp is signed: there is no freshness window, and dedupe
//! is the replay protection.
//!
//! Callbacks are form bodies; which one a body is follows from its fields ([`Callback`]).
//! Dedupe key: status callbacks `(CallSid, SequenceNumber, CallStatus)`, recordings
//! `(RecordingSid, RecordingStatus)`, transcriptions `(TranscriptionSid, TranscriptionStatus)`,
//! asynchronous AMD `(CallSid, AnsweredBy)`. Call key: `CallSid`: each leg is a call; a
//! recording or transcription callback names the call it belongs to.
//!
//! Ordering: Twilio's `Timestamp` (RFC 2822) has whole seconds, and several status callbacks of
//! one call often share a second. `occurred_at` is `Timestamp` plus `SequenceNumber`
//! microseconds (capped at 999 999), so a call's callbacks order by `SequenceNumber` within
//! their second and a lower `SequenceNumber` never looks newer than a higher one.

use chrono::{DateTime, Duration, Utc};
use serde_json::Value;

use super::form::{self, Form, TokensAndUrl, UrlParts};
use super::{
    Delivery, Provider, ProviderEntry, derived_key, malformed, mark_unknown, scoped_id, sha256_hex,
};
#[cfg(any(test, feature = "dev"))]
use super::{DevSigner, Signed};
use crate::config::{ConfigError, Env, vars};
use crate::domain::event::{CanonicalEvent, Direction, Kind, Outcome, ReviewNote};
use crate::domain::review::ReviewReason;
use crate::signing::{self as verify, AuthError};

pub const NAME: &str = "twilio";
pub const SIGNATURE_HEADER: &str = "x-twilio-signature";
pub const CONTENT_TYPE_HEADER: &str = "content-type";
/// The query parameter that carries the hex SHA-256 of a JSON body.
pub const BODY_HASH_PARAM: &str = "bodySHA256";
const TOKENS_VAR: &str = vars::TWILIO_AUTH_TOKENS;
const URL_VAR: &str = vars::TWILIO_WEBHOOK_URL;
/// HMAC-SHA1 is 20 bytes.
const SIGNATURE_LEN: usize = 20;
/// `SequenceNumber` microseconds added to `Timestamp` stay inside its second.
const MAX_SEQUENCE_OFFSET: u64 = 999_999;

use Kind::*;

pub const ENTRY: ProviderEntry = ProviderEntry {
    name: NAME,
    from_env: Twilio::from_env,
    normalizer,
    #[cfg(any(test, feature = "dev"))]
    dev_signer: |seed| Box::new(TwilioSigner(dev_token(seed))),
};

/// Status callback `CallStatus` → kind, outcome, and whether it is the call's terminal fact.
/// Twilio sends `answered` as `in-progress`, and one `completed` callback for every terminal
/// status (`completed`, `busy`, `failed`, `no-answer`, `canceled`). The canonical type is
/// `call.{CallStatus}`.
pub const CALL_STATUSES: &[(&str, Kind, Option<Outcome>, bool)] = &[
    ("queued", Queued, None, false),
    ("initiated", Initiated, None, false),
    ("ringing", Ringing, None, false),
    ("in-progress", Answered, None, false),
    ("completed", Ended, Some(Outcome::Completed), true),
    ("busy", Ended, Some(Outcome::Busy), true),
    ("failed", Ended, Some(Outcome::Failed), true),
    ("no-answer", Ended, Some(Outcome::NoAnswer), true),
    ("canceled", Ended, Some(Outcome::Canceled), true),
];

/// `RecordingStatus` of a recording status callback (type `recording.{status}`, a report).
pub const RECORDING_STATUSES: &[&str] = &["in-progress", "completed", "absent"];

/// `TranscriptionStatus` of a transcription callback (type `transcription.{status}`, a report).
pub const TRANSCRIPTION_STATUSES: &[&str] = &["completed", "failed"];

/// `AnsweredBy` (answering machine detection) → the outcome a `completed` call takes instead
/// of `completed`. It comes on the status callbacks when AMD is on, and alone on the
/// asynchronous AMD callback (type `amd.{AnsweredBy}`, progress).
pub const ANSWERED_BY: &[(&str, Option<Outcome>)] = &[
    ("machine_start", Some(Outcome::Voicemail)),
    ("machine_end_beep", Some(Outcome::Voicemail)),
    ("machine_end_silence", Some(Outcome::Voicemail)),
    ("machine_end_other", Some(Outcome::Voicemail)),
    ("human", None),
    ("fax", None),
    ("unknown", None),
];

/// Which callback a body is, from the fields it carries, in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Callback<'a> {
    /// `TranscriptionSid`: `<Record transcribeCallback>` (it also carries the call's fields).
    Transcription { sid: &'a str, status: &'a str },
    /// `RecordingStatus`: RecordingStatusCallback.
    Recording { sid: &'a str, status: &'a str },
    /// `CallStatus`: StatusCallback (`CallbackSource=call-progress-events`).
    Status { status: &'a str },
    /// `AnsweredBy` alone: AsyncAmdStatusCallback.
    Amd { answered_by: &'a str },
}

impl<'a> Callback<'a> {
    fn of(params: &'a Form) -> Result<Callback<'a>, &'static str> {
        if let Some(sid) = params.get("TranscriptionSid") {
            let status = params
                .get("TranscriptionStatus")
                .ok_or("transcription callback without TranscriptionStatus")?;
            return Ok(Callback::Transcription { sid, status });
        }
        if let Some(status) = params.get("RecordingStatus") {
            let sid = params
                .get("RecordingSid")
                .ok_or("recording callback without RecordingSid")?;
            return Ok(Callback::Recording { sid, status });
        }
        if let Some(status) = params.get("CallStatus") {
            return Ok(Callback::Status { status });
        }
        if let Some(answered_by) = params.get("AnsweredBy") {
            return Ok(Callback::Amd { answered_by });
        }
        Err("no CallStatus, RecordingStatus, TranscriptionSid or AnsweredBy")
    }

    fn event_type(&self) -> String {
        match self {
            Callback::Transcription { status, .. } => format!("transcription.{status}"),
            Callback::Recording { status, .. } => format!("recording.{status}"),
            Callback::Status { status } => format!("call.{status}"),
            Callback::Amd { answered_by } => format!("amd.{answered_by}"),
        }
    }
}

pub struct Twilio(TokensAndUrl);

impl Twilio {
    pub fn from_env(env: &Env) -> Result<Option<Box<dyn Provider>>, ConfigError> {
        Ok(TokensAndUrl::from_env(env, TOKENS_VAR, URL_VAR)?
            .map(|config| Box::new(Twilio(config)) as Box<dyn Provider>))
    }

    /// The URL Twilio signed: the configured one with the request's `bodySHA256` (Twilio adds
    /// it to the URL it was given), else the request's.
    fn signed_url(&self, request_url: Option<&str>) -> Result<String, AuthError> {
        let Some(configured) = &self.0.url else {
            return request_url.map(str::to_owned).ok_or(AuthError::Invalid(
                "the signed URL is unknown: set TWILIO_WEBHOOK_URL",
            ));
        };
        let configured_parts = UrlParts::parse(configured).expect("validated at start");
        let request_hash = request_url
            .and_then(UrlParts::parse)
            .and_then(|p| body_hash_pair(p.query));
        match request_hash {
            Some(pair) if body_hash_pair(configured_parts.query).is_none() => {
                let separator = if configured_parts.query.is_some() {
                    '&'
                } else {
                    '?'
                };
                Ok(format!("{configured}{separator}{pair}"))
            }
            _ => Ok(configured.clone()),
        }
    }
}

/// The raw `bodySHA256=…` piece of a query, if it has one.
fn body_hash_pair(query: Option<&str>) -> Option<&str> {
    query?.split('&').find(|piece| {
        piece
            .strip_prefix(BODY_HASH_PARAM)
            .is_some_and(|rest| rest.starts_with('='))
    })
}

fn is_json(content_type: Option<&str>) -> bool {
    let media_type = content_type
        .and_then(|v| v.split(';').next())
        .map(|t| t.trim().to_ascii_lowercase());
    media_type.is_some_and(|t| t == "application/json" || t.ends_with("+json"))
}

/// The URLs a signature may have been computed over, each once, the URL as given first:
/// {the query as received, as WHATWG `new URL()` serializes it (twilio-node; `'` becomes `%27`),
/// with `%40`, `%3A`, `%27` unescaped (Twilio signs `@`, `:` and `'` raw but may send them
/// escaped: twilio-node #621, #1059, #1183)} × {without the port, with it (`:443` for https,
/// `:80` for http, added when absent)} — twilio-python `validate` tries the last two.
pub fn candidate_urls(url: &str) -> Vec<String> {
    let Some(parts) = UrlParts::parse(url) else {
        return vec![url.to_owned()];
    };
    let (without_port, port) = parts.split_port();
    let default_port = if parts.scheme.eq_ignore_ascii_case("https") {
        "443"
    } else {
        "80"
    };
    let with_port = format!("{without_port}:{}", port.unwrap_or(default_port));
    let mut queries = vec![parts.query.map(str::to_owned)];
    if let Some(query) = parts.query {
        queries.push(Some(whatwg_query(query)));
        queries.push(Some(unescape_query(query)));
    }
    let mut urls: Vec<String> = Vec::with_capacity(6);
    for query in &queries {
        for authority in [without_port, with_port.as_str()] {
            let mut url = format!("{}://{authority}{}", parts.scheme, parts.path);
            if let Some(query) = query {
                url.push('?');
                url.push_str(query);
            }
            if !urls.contains(&url) {
                urls.push(url);
            }
        }
    }
    urls
}

/// The query as the WHATWG URL serializer writes it for an http(s) URL: controls, space, `"`,
/// `#`, `<`, `>`, `'` and non-ASCII bytes percent-encoded.
fn whatwg_query(query: &str) -> String {
    let mut out = String::with_capacity(query.len());
    for b in query.bytes() {
        if b <= 0x20 || b >= 0x7f || matches!(b, b'"' | b'#' | b'<' | b'>' | b'\'') {
            out.push_str(&format!("%{b:02X}"));
        } else {
            out.push(b as char);
        }
    }
    out
}

/// The query with `%40`, `%3A` and `%27` (any case) as `@`, `:` and `'`.
fn unescape_query(query: &str) -> String {
    let mut out = String::with_capacity(query.len());
    let mut rest = query;
    while let Some(i) = rest.find('%') {
        out.push_str(&rest[..i]);
        let escape = rest.get(i..i + 3).unwrap_or(&rest[i..]);
        let raw = match escape.to_ascii_uppercase().as_str() {
            "%40" => Some('@'),
            "%3A" => Some(':'),
            "%27" => Some('\''),
            _ => None,
        };
        match raw {
            Some(c) => {
                out.push(c);
                rest = &rest[i + 3..];
            }
            None => {
                out.push('%');
                rest = &rest[i + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// `{name}{value}` of every pair, sorted by name then value, identical pairs once.
pub fn signed_params(params: &Form) -> String {
    form::concatenated(params.sorted_unique())
}

/// base64 HMAC-SHA1 of `url` followed by `params` (already in [`signed_params`] form).
pub fn compute_signature(token: &[u8], url: &str, params: &str) -> String {
    verify::encode_b64(&verify::hmac_sha1(
        token,
        &[url.as_bytes(), params.as_bytes()],
    ))
}

/// The provider for normalizing stored events: no credentials (it is wrapped so that it
/// verifies nothing).
fn normalizer(_env: &Env) -> Result<Box<dyn Provider>, ConfigError> {
    Ok(Box::new(Twilio(TokensAndUrl::default())))
}

impl Provider for Twilio {
    fn name(&self) -> &'static str {
        NAME
    }

    fn signs_url(&self) -> bool {
        true
    }

    fn signed_headers(&self) -> &'static [&'static str] {
        // The content type decides whether the body is form parameters or bodySHA256 JSON.
        &[SIGNATURE_HEADER, CONTENT_TYPE_HEADER]
    }

    fn verify(&self, d: &Delivery<'_>) -> Result<(), AuthError> {
        let signature = d.headers.require(SIGNATURE_HEADER)?;
        let signature = verify::decode_b64(SIGNATURE_HEADER, signature)?;
        if signature.len() != SIGNATURE_LEN {
            return Err(AuthError::Malformed(SIGNATURE_HEADER));
        }
        let url = self.signed_url(d.request_url)?;
        let body_hash = UrlParts::parse(&url)
            .and_then(|u| u.query)
            .and_then(|q| Form::of_query(q).get(BODY_HASH_PARAM).map(str::to_owned));
        let params = match &body_hash {
            // The URL carries the body's hash: the URL alone is signed.
            Some(_) => String::new(),
            None if is_json(d.headers.get(CONTENT_TYPE_HEADER)) => {
                return Err(AuthError::Invalid(
                    "missing bodySHA256 query parameter (required for a JSON body)",
                ));
            }
            None => signed_params(
                &Form::parse(d.body).map_err(|_| AuthError::BadBody("form encoding"))?,
            ),
        };
        let candidates = candidate_urls(&url);
        let mut expected = Vec::with_capacity(candidates.len() * self.0.tokens.len());
        for url in &candidates {
            for token in &self.0.tokens {
                expected.push(verify::hmac_sha1(
                    token,
                    &[url.as_bytes(), params.as_bytes()],
                ));
            }
        }
        if !verify::matches_any(&signature, &expected) {
            return Err(AuthError::BadSignature);
        }
        if let Some(hash) = body_hash
            && !verify::constant_time_eq(hash.as_bytes(), sha256_hex(d.body).as_bytes())
        {
            return Err(AuthError::BodyMismatch(BODY_HASH_PARAM));
        }
        Ok(())
    }

    fn normalize(&self, d: &Delivery<'_>) -> CanonicalEvent {
        let (params, data) = if is_json(d.headers.get(CONTENT_TYPE_HEADER)) {
            let Ok(value) = serde_json::from_slice::<Value>(d.body) else {
                return malformed(NAME, d.body, d.received_at, "body is not JSON");
            };
            let Some(params) = json_params(&value) else {
                return malformed(NAME, d.body, d.received_at, "JSON body is not an object");
            };
            (params, value)
        } else {
            let Ok(params) = Form::parse(d.body) else {
                return malformed(NAME, d.body, d.received_at, "body is not form encoded");
            };
            let data = params.to_json();
            (params, data)
        };
        let callback = match Callback::of(&params) {
            Ok(callback) => callback,
            Err(detail) => return malformed(NAME, d.body, d.received_at, detail),
        };
        let Some(call_sid) = params.get("CallSid") else {
            return malformed(NAME, d.body, d.received_at, "missing CallSid");
        };
        let key = match callback {
            Callback::Transcription { sid, status } => derived_key(&["transcription", sid, status]),
            Callback::Recording { sid, status } => derived_key(&["recording", sid, status]),
            Callback::Status { status } => derived_key(&[
                "call",
                call_sid,
                params.get("SequenceNumber").unwrap_or(""),
                status,
            ]),
            Callback::Amd { answered_by } => derived_key(&["amd", call_sid, answered_by]),
        };
        let mut event = CanonicalEvent::new(NAME, &key, &callback.event_type(), d.received_at);
        event.call_id = Some(scoped_id(NAME, call_sid));
        event.data = data;
        match callback {
            Callback::Status { status } => status_callback(&mut event, &params, status),
            Callback::Recording { status, .. } => {
                if !RECORDING_STATUSES.contains(&status) {
                    return unknown(event, "RecordingStatus", status);
                }
                event.kind = Report;
                if status == "completed" {
                    event.facts.recording_url = params.get("RecordingUrl").map(str::to_owned);
                }
            }
            Callback::Transcription { status, sid } => {
                if !TRANSCRIPTION_STATUSES.contains(&status) {
                    return unknown(event, "TranscriptionStatus", status);
                }
                event.kind = Report;
                if status == "completed" {
                    event.facts.transcript = params
                        .get("TranscriptionText")
                        .map(|t| Value::String(t.to_owned()));
                    event.facts.recording_url = params.get("RecordingUrl").map(str::to_owned);
                } else {
                    event.facts.errors = Some(serde_json::json!([{
                        "TranscriptionSid": sid, "TranscriptionStatus": status,
                    }]));
                }
            }
            Callback::Amd { answered_by } => {
                if !ANSWERED_BY.iter().any(|(a, _)| *a == answered_by) {
                    return unknown(event, "AnsweredBy", answered_by);
                }
                event.kind = Progress;
            }
        }
        event
    }
}

fn unknown(mut event: CanonicalEvent, field: &str, value: &str) -> CanonicalEvent {
    mark_unknown(&mut event);
    event.review = Some(ReviewNote {
        reason: ReviewReason::UnknownType,
        detail: format!("no mapping for {field} {value:?}"),
    });
    event
}

/// The string (or number, or boolean) members of a JSON object as parameters.
fn json_params(value: &Value) -> Option<Form> {
    let pairs = value
        .as_object()?
        .iter()
        .filter_map(|(k, v)| {
            let v = match v {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                _ => return None,
            };
            Some((k.clone(), v))
        })
        .collect();
    Some(Form::from_pairs(pairs))
}

/// `Timestamp` (RFC 2822) of a status callback.
fn timestamp(params: &Form) -> Option<DateTime<Utc>> {
    params
        .get("Timestamp")
        .and_then(|t| DateTime::parse_from_rfc2822(t).ok())
        .map(|t| t.with_timezone(&Utc))
}

fn status_callback(event: &mut CanonicalEvent, params: &Form, status: &str) {
    let at = timestamp(params);
    let sequence = params
        .get("SequenceNumber")
        .and_then(|s| s.parse::<u64>().ok())
        .map_or(0, |s| s.min(MAX_SEQUENCE_OFFSET));
    event.occurred_at = at.unwrap_or(event.received_at) + Duration::microseconds(sequence as i64);
    event.direction = params.get("Direction").and_then(Direction::parse);
    event.from = params.get("From").map(str::to_owned);
    event.to = params.get("To").map(str::to_owned);
    let Some((kind, outcome, is_final)) = call_status(status) else {
        mark_unknown(event);
        return;
    };
    event.kind = kind;
    event.outcome = outcome;
    event.is_final = is_final;
    let facts = &mut event.facts;
    match kind {
        Initiated => facts.started_at = at,
        Answered => facts.answered_at = at,
        Ended => {
            facts.ended_at = Some(at.unwrap_or(event.occurred_at));
            facts.duration_secs = params
                .get("CallDuration")
                .and_then(|d| d.trim().parse().ok());
            facts.hangup_cause = params.get("SipResponseCode").map(|c| format!("SIP {c}"));
            facts.recording_url = params.get("RecordingUrl").map(str::to_owned);
            event.outcome = ended_outcome(outcome, params.get("AnsweredBy"));
        }
        _ => {}
    }
}

/// A call status (a status callback's `CallStatus`, the Call resource's `status`) → kind,
/// outcome, and whether it is terminal; `None` for a status Twilio does not document.
pub fn call_status(status: &str) -> Option<(Kind, Option<Outcome>, bool)> {
    CALL_STATUSES
        .iter()
        .find(|(s, ..)| *s == status)
        .map(|(_, kind, outcome, is_final)| (*kind, *outcome, *is_final))
}

/// A terminal status's outcome with answering machine detection's verdict: a `completed` call
/// that a machine answered is `voicemail`.
pub fn ended_outcome(outcome: Option<Outcome>, answered_by: Option<&str>) -> Option<Outcome> {
    let machine = answered_by
        .and_then(|a| ANSWERED_BY.iter().find(|(name, _)| *name == a))
        .and_then(|(_, outcome)| *outcome);
    match (outcome, machine) {
        (Some(Outcome::Completed), Some(machine)) => Some(machine),
        _ => outcome,
    }
}

#[cfg(any(test, feature = "dev"))]
/// The dev Auth Token: 32 hex characters like Twilio's, derived from the seed with a domain tag.
fn dev_token(seed: &[u8; 32]) -> String {
    sha256_hex(&[b"callhook dev twilio auth token ".as_slice(), seed].concat())[..32].to_owned()
}

#[cfg(any(test, feature = "dev"))]
/// Signs as Twilio does: a form body's parameters after the URL; any other body (JSON, or bytes
/// that are not form encoding) through `bodySHA256` in the URL, which [`Signed::url`] returns.
struct TwilioSigner(String);

#[cfg(any(test, feature = "dev"))]
impl DevSigner for TwilioSigner {
    fn verifier_env(&self) -> Vec<(&'static str, String)> {
        vec![(TOKENS_VAR, self.0.clone())]
    }

    fn sign(&self, body: &[u8], _timestamp: i64, url: &str) -> Signed {
        let url = UrlParts::parse(url).map_or_else(|| url.to_owned(), |u| u.to_url());
        let json_like = body
            .iter()
            .find(|b| !b.is_ascii_whitespace())
            .is_some_and(|b| matches!(b, b'{' | b'['));
        let form = Form::parse(body).ok().filter(|_| !json_like);
        let (url, params, content_type, changed) = match form {
            Some(form) => (url, signed_params(&form), form::MEDIA_TYPE, false),
            None => {
                let separator = if url.contains('?') { '&' } else { '?' };
                let url = format!("{url}{separator}{BODY_HASH_PARAM}={}", sha256_hex(body));
                (url, String::new(), "application/json", true)
            }
        };
        Signed {
            headers: vec![
                (
                    SIGNATURE_HEADER.to_owned(),
                    compute_signature(self.0.as_bytes(), &url, &params),
                ),
                (CONTENT_TYPE_HEADER.to_owned(), content_type.to_owned()),
            ],
            path_token: None,
            url: changed.then_some(url),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::{FIXTURE_SEED, Headers};
    use chrono::TimeZone;

    const TOKEN: &str = "12345";
    const URL: &str = "https://mycompany.com/myapp.php?foo=1&bar=2";
    const NOW: i64 = 1_700_000_000;

    /// The SDK tests' parameters (twilio-python `test_request_validator.py`, twilio-node
    /// `spec/validation.spec.js`), form encoded as Twilio sends them.
    const SDK_BODY: &str = "CallSid=CA1234567890ABCDE&Caller=%2B14158675309&Digits=1234&From=%2B14158675309&To=%2B18005551212";
    const SDK_SIG: &str = "RSOYDt4T1cUTdK1PDd93/VVr8B8=";

    /// A computed status callback (cross-checked with twilio-python).
    const REAL_TOKEN: &str = "0123456789abcdef0123456789abcdef";
    const REAL_URL: &str = "https://hooks.example.com/voice/twilio/status?tenant=acme";
    const REAL_BODY: &str = "AccountSid=AC00000000000000000000000000000000&ApiVersion=2010-04-01&CallDuration=42&CallSid=CA11111111111111111111111111111111&CallStatus=completed&CallbackSource=call-progress-events&Called=%2B15005550006&Caller=%2B14155550100&Direction=outbound-api&Duration=1&From=%2B14155550100&SequenceNumber=3&SipResponseCode=200&Timestamp=Tue%2C+14+Nov+2023+22%3A13%3A20+%2B0000&To=%2B15005550006";
    const REAL_SIGNED: &str = "https://hooks.example.com/voice/twilio/status?tenant=acmeAccountSidAC00000000000000000000000000000000ApiVersion2010-04-01CallDuration42CallSidCA11111111111111111111111111111111CallStatuscompletedCallbackSourcecall-progress-eventsCalled+15005550006Caller+14155550100Directionoutbound-apiDuration1From+14155550100SequenceNumber3SipResponseCode200TimestampTue, 14 Nov 2023 22:13:20 +0000To+15005550006";
    const REAL_SIG: &str = "lq9FHJaAcSpX2EbJDSVzgn1T9n8=";

    /// The JSON body of the SDK tests and its hash.
    const JSON_BODY: &str = r#"{"property": "value", "boolean": true}"#;
    const JSON_HASH: &str = "0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620";

    fn provider(pairs: &[(&str, &str)]) -> Box<dyn Provider> {
        Twilio::from_env(&Env::from_pairs(pairs.iter().copied()))
            .unwrap()
            .unwrap()
    }

    fn headers(sig: &str, content_type: Option<&str>) -> Headers {
        let mut h: Headers = [(SIGNATURE_HEADER, sig)].into_iter().collect();
        if let Some(ct) = content_type {
            h.insert(CONTENT_TYPE_HEADER, ct);
        }
        h
    }

    fn delivery<'a>(h: &'a Headers, body: &'a [u8], url: Option<&'a str>) -> Delivery<'a> {
        Delivery {
            headers: h,
            body,
            path_token: None,
            request_url: url,
            received_at: Utc.timestamp_opt(NOW, 0).unwrap(),
        }
    }

    fn check(token: &str, sig: &str, url: &str, body: &str) -> Result<(), AuthError> {
        let h = headers(sig, Some(form::MEDIA_TYPE));
        provider(&[(TOKENS_VAR, token)]).verify(&delivery(&h, body.as_bytes(), Some(url)))
    }

    fn check_json(sig: &str, url: &str, body: &str) -> Result<(), AuthError> {
        let h = headers(sig, Some("application/json"));
        provider(&[(TOKENS_VAR, TOKEN)]).verify(&delivery(&h, body.as_bytes(), Some(url)))
    }

    #[test]
    fn sdk_vector_and_the_two_docs_versions_verify() {
        assert_eq!(check(TOKEN, SDK_SIG, URL, SDK_BODY), Ok(()));
        // Earlier docs revision, quoted by many third-party tests.
        let docs_body = "CallSid=CA1234567890ABCDE&Caller=%2B12349013030&Digits=1234&From=%2B12349013030&To=%2B18005551212";
        assert_eq!(
            check(TOKEN, "0/KCTR6DLpKmkAf8muzZqo1nDgQ=", URL, docs_body),
            Ok(())
        );
        // Current docs "Explore the algorithm yourself", with the signed string they print.
        let url = "https://example.com/myapp.php?foo=1&bar=2";
        let body = "CallSid=CA1234567890ABCDE&Caller=%2B14158675310&Digits=1234&From=%2B14158675310&To=%2B18005551212";
        let form = Form::parse(body.as_bytes()).unwrap();
        assert_eq!(
            format!("{url}{}", signed_params(&form)),
            "https://example.com/myapp.php?foo=1&bar=2CallSidCA1234567890ABCDECaller+14158675310Digits1234From+14158675310To+18005551212"
        );
        assert_eq!(
            check(TOKEN, "L/OH5YylLD5NRKLltdqwSvS0BnU=", url, body),
            Ok(())
        );
        // Each signature belongs to its own parameters, URL and token only.
        assert_eq!(
            check(TOKEN, SDK_SIG, URL, docs_body),
            Err(AuthError::BadSignature)
        );
        assert_eq!(
            check(
                TOKEN,
                SDK_SIG,
                "https://mycompany.com/myapp.php?foo=1&bar=3",
                SDK_BODY
            ),
            Err(AuthError::BadSignature)
        );
        assert_eq!(
            check("12346", SDK_SIG, URL, SDK_BODY),
            Err(AuthError::BadSignature)
        );
        // The docs' own env-token signatures are not vectors: they do not match 12345.
        assert_eq!(
            check(
                TOKEN,
                "Np1nax6uFoY6qpfT5l9jWwJeit0=",
                "https://example.com/myapp",
                docs_body
            ),
            Err(AuthError::BadSignature)
        );
    }

    #[test]
    fn port_variants_are_tried_as_the_sdks_do() {
        // https with a port: validated without it.
        let with_1234 = "https://mycompany.com:1234/myapp.php?foo=1&bar=2";
        assert_eq!(check(TOKEN, SDK_SIG, with_1234, SDK_BODY), Ok(()));
        // http with a port: kept.
        let http_1234 = "http://mycompany.com:1234/myapp.php?foo=1&bar=2";
        assert_eq!(
            check(TOKEN, "Zmvh+3yNM1Phv2jhDCwEM3q5ebU=", http_1234, SDK_BODY),
            Ok(())
        );
        // No port: the standard one added.
        assert_eq!(
            check(TOKEN, "kvajT1Ptam85bY51eRf/AJRuM3w=", URL, SDK_BODY),
            Ok(())
        );
        let http = "http://mycompany.com/myapp.php?foo=1&bar=2";
        assert_eq!(
            check(TOKEN, "0ZXoZLH/DfblKGATFgpif+LLRf4=", http, SDK_BODY),
            Ok(())
        );
        // The :443 signature is not one for :80, nor the http one for https.
        assert_eq!(
            check(TOKEN, "kvajT1Ptam85bY51eRf/AJRuM3w=", http, SDK_BODY),
            Err(AuthError::BadSignature)
        );
        assert_eq!(
            check(TOKEN, "Zmvh+3yNM1Phv2jhDCwEM3q5ebU=", with_1234, SDK_BODY),
            Err(AuthError::BadSignature)
        );
        assert_eq!(
            candidate_urls("https://h.example.com:443/x?a=1"),
            vec![
                "https://h.example.com/x?a=1",
                "https://h.example.com:443/x?a=1"
            ]
        );
    }

    #[test]
    fn credentials_in_the_url_are_signed_as_given() {
        let creds = "https://user:pass@mycompany.com/myapp.php?foo=1&bar=2";
        assert_eq!(
            check(TOKEN, "CukzLTc1tT5dXEDIHm/tKBanW10=", creds, SDK_BODY),
            Ok(())
        );
        assert_eq!(
            check(TOKEN, "ZQFR1PTIZXF2MXB8ZnKCvnnA+rI=", creds, SDK_BODY),
            Ok(())
        );
        let user = "https://user@mycompany.com/myapp.php?foo=1&bar=2";
        assert_eq!(
            check(TOKEN, "2YRLlVAflCqxaNicjMpJcSTgzSs=", user, SDK_BODY),
            Ok(())
        );
        assert_eq!(
            check(TOKEN, "CukzLTc1tT5dXEDIHm/tKBanW10=", URL, SDK_BODY),
            Err(AuthError::BadSignature)
        );
    }

    #[test]
    fn repeated_parameters_are_sorted_and_identical_pairs_dropped() {
        let body = "Sid=CA123&SidAccount=AC123&Digits=5678&Digits=1234&Digits=1234";
        let form = Form::parse(body.as_bytes()).unwrap();
        assert_eq!(
            signed_params(&form),
            "Digits1234Digits5678SidCA123SidAccountAC123"
        );
        assert_eq!(
            check(TOKEN, "IK+Dwps556ElfBT0I3Rgjkr1wJU=", URL, body),
            Ok(())
        );
        // The order of repeated values does not matter.
        for body in [
            "MessagingBinding.Address=%2B1325xxxxxxx&MessagingBinding.Address=%2B1415xxxxxxx",
            "MessagingBinding.Address=%2B1415xxxxxxx&MessagingBinding.Address=%2B1325xxxxxxx",
        ] {
            assert_eq!(
                check(TOKEN, "83O6e2vORAoJHUNzJjDWN1jz+BA=", URL, body),
                Ok(())
            );
        }
        // A value that is not repeated elsewhere is signed.
        assert_eq!(
            check(
                TOKEN,
                "IK+Dwps556ElfBT0I3Rgjkr1wJU=",
                URL,
                "Sid=CA123&SidAccount=AC123&Digits=5678"
            ),
            Err(AuthError::BadSignature)
        );
    }

    #[test]
    fn query_spellings_of_the_node_sdk_and_of_twilio() {
        // twilio-node signs the WHATWG form of `It's+amazing`: `It%27s+amazing`.
        let special = format!("{URL}&Body=It's+amazing");
        assert_eq!(
            check(TOKEN, "TfZzewPq8wqrGlMfyAud8+/IvJ0=", &special, SDK_BODY),
            Ok(())
        );
        assert!(candidate_urls(&special).contains(&format!("{URL}&Body=It%27s+amazing")));
        // A URL that arrives escaped is also tried unescaped, as Twilio signed it.
        let escaped = "https://h.example.com/s?Caller=sip%3Aa%40b.example.com&n=it%27s";
        let raw = "https://h.example.com/s?Caller=sip:a@b.example.com&n=it's";
        assert!(candidate_urls(escaped).contains(&raw.to_owned()));
        let sig = compute_signature(
            TOKEN.as_bytes(),
            raw,
            &signed_params(&Form::parse(SDK_BODY.as_bytes()).unwrap()),
        );
        assert_eq!(check(TOKEN, &sig, escaped, SDK_BODY), Ok(()));
        assert_eq!(candidate_urls("https://h/s").len(), 2);
        assert_eq!(unescape_query("a=%4%40%3a%2"), "a=%4@:%2");
    }

    #[test]
    fn json_bodies_are_signed_through_body_sha256() {
        assert_eq!(sha256_hex(JSON_BODY.as_bytes()), JSON_HASH);
        let url = format!("{URL}&bodySHA256={JSON_HASH}");
        assert_eq!(
            check_json("a9nBmqA0ju/hNViExpshrM61xv4=", &url, JSON_BODY),
            Ok(())
        );
        // `{}` (twilio-node): matches only with the :443 variant.
        let empty_hash = "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";
        assert_eq!(sha256_hex(b"{}"), empty_hash);
        let url_empty = format!("{URL}&bodySHA256={empty_hash}");
        assert_eq!(
            check_json("Ldidvp12m26NI7eqEvxnEpkd9Hc=", &url_empty, "{}"),
            Ok(())
        );
        // Only the hash parameter in the query.
        let short = format!("https://mycompany.com/myapp.php?bodySHA256={JSON_HASH}");
        assert_eq!(
            check_json("y77kIzt2vzLz71DgmJGsen2scGs=", &short, JSON_BODY),
            Ok(())
        );
        // The docs' JSON example hash.
        assert_eq!(
            sha256_hex(br#"{"CallSid":"CA1234567890ABCDE","Caller":"+12349013030"}"#),
            "5ccde7145dfb8f56479710896586cb9d5911809d83afbe34627818790db0aec9"
        );
        // A replayed signature with another body: the hash no longer matches (the
        // twilio-agent-connect-python bug: only the URL was checked).
        assert_eq!(
            check_json(
                "a9nBmqA0ju/hNViExpshrM61xv4=",
                &url,
                r#"{"property": "forged"}"#
            ),
            Err(AuthError::BodyMismatch(BODY_HASH_PARAM))
        );
        // A JSON body without the hash parameter is refused, whatever the signature.
        assert_eq!(
            check_json(SDK_SIG, URL, JSON_BODY),
            Err(AuthError::Invalid(
                "missing bodySHA256 query parameter (required for a JSON body)"
            ))
        );
        // Another hash in the URL is another URL.
        let other = format!("{URL}&bodySHA256={empty_hash}");
        assert_eq!(
            check_json("a9nBmqA0ju/hNViExpshrM61xv4=", &other, JSON_BODY),
            Err(AuthError::BadSignature)
        );
    }

    #[test]
    fn realistic_status_callback_verifies_and_normalizes() {
        let form = Form::parse(REAL_BODY.as_bytes()).unwrap();
        assert_eq!(format!("{REAL_URL}{}", signed_params(&form)), REAL_SIGNED);
        assert_eq!(check(REAL_TOKEN, REAL_SIG, REAL_URL, REAL_BODY), Ok(()));
        let with_port = "https://hooks.example.com:443/voice/twilio/status?tenant=acme";
        assert_eq!(check(REAL_TOKEN, REAL_SIG, with_port, REAL_BODY), Ok(()));
        let tampered = REAL_BODY.replace("SequenceNumber=3", "SequenceNumber=2");
        assert_eq!(
            check(REAL_TOKEN, REAL_SIG, REAL_URL, &tampered),
            Err(AuthError::BadSignature)
        );
        // A configured public URL wins over the gateway's view.
        let p = provider(&[(TOKENS_VAR, REAL_TOKEN), (URL_VAR, REAL_URL)]);
        let h = headers(REAL_SIG, Some(form::MEDIA_TYPE));
        let seen =
            Some("https://abc.execute-api.eu-west-1.amazonaws.com/webhooks/twilio?tenant=acme");
        assert_eq!(p.verify(&delivery(&h, REAL_BODY.as_bytes(), seen)), Ok(()));
        assert_eq!(p.verify(&delivery(&h, REAL_BODY.as_bytes(), None)), Ok(()));

        let e = p.normalize(&delivery(&h, REAL_BODY.as_bytes(), None));
        assert_eq!(
            e.event_id,
            format!(
                "twilio#{}",
                derived_key(&[
                    "call",
                    "CA11111111111111111111111111111111",
                    "3",
                    "completed"
                ])
            )
        );
        assert_eq!(e.event_type, "call.completed");
        assert_eq!(
            e.call_id.as_deref(),
            Some("twilio#CA11111111111111111111111111111111")
        );
        assert_eq!(
            (e.kind, e.is_final, e.outcome),
            (Ended, true, Some(Outcome::Completed))
        );
        assert_eq!(e.direction, Some(Direction::Outbound));
        assert_eq!(e.from.as_deref(), Some("+14155550100"));
        assert_eq!(e.to.as_deref(), Some("+15005550006"));
        let ts = Utc.timestamp_opt(1_700_000_000, 0).unwrap();
        assert_eq!(e.occurred_at, ts + Duration::microseconds(3));
        assert_eq!(e.facts.ended_at, Some(ts));
        assert_eq!(e.facts.duration_secs, Some(42));
        assert_eq!(e.facts.hangup_cause.as_deref(), Some("SIP 200"));
        assert_eq!(e.data["Timestamp"], "Tue, 14 Nov 2023 22:13:20 +0000");
        assert!(e.review.is_none());
    }

    #[test]
    fn a_configured_url_takes_the_body_hash_of_the_request() {
        let p = provider(&[
            (TOKENS_VAR, TOKEN),
            (URL_VAR, &format!("{URL}#rc=3&rp=all")),
        ]);
        let h = headers("a9nBmqA0ju/hNViExpshrM61xv4=", Some("application/json"));
        let seen = format!(
            "https://abc.execute-api.eu-west-1.amazonaws.com/webhooks/twilio?foo=1&bar=2&bodySHA256={JSON_HASH}"
        );
        assert_eq!(
            p.verify(&delivery(&h, JSON_BODY.as_bytes(), Some(&seen))),
            Ok(())
        );
        assert_eq!(
            p.verify(&delivery(&h, JSON_BODY.as_bytes(), None)),
            Err(AuthError::Invalid(
                "missing bodySHA256 query parameter (required for a JSON body)"
            ))
        );
    }

    #[test]
    fn rotation_any_token_passes() {
        assert_eq!(
            check(&format!("old,{TOKEN}"), SDK_SIG, URL, SDK_BODY),
            Ok(())
        );
        assert_eq!(
            check("old,older", SDK_SIG, URL, SDK_BODY),
            Err(AuthError::BadSignature)
        );
    }

    #[test]
    fn bad_headers_bodies_and_urls_name_the_check() {
        let p = provider(&[(TOKENS_VAR, TOKEN)]);
        let none = Headers::new();
        assert_eq!(
            p.verify(&delivery(&none, SDK_BODY.as_bytes(), Some(URL))),
            Err(AuthError::MissingHeader(SIGNATURE_HEADER))
        );
        for sig in ["AAAA", "not base64!", ""] {
            let h = headers(sig, None);
            assert_eq!(
                p.verify(&delivery(&h, SDK_BODY.as_bytes(), Some(URL))),
                Err(AuthError::Malformed(SIGNATURE_HEADER)),
                "{sig}"
            );
        }
        let h = headers(SDK_SIG, None);
        for body in ["Caller=+1 415", "Caller=%ZZ", "CallSid=CA1\n"] {
            let err = p
                .verify(&delivery(&h, body.as_bytes(), Some(URL)))
                .unwrap_err();
            assert_eq!(err, AuthError::BadBody("form encoding"), "{body}");
            assert_eq!(err.to_string(), "body is not valid form encoding");
        }
        assert_eq!(
            p.verify(&delivery(&h, SDK_BODY.as_bytes(), None)),
            Err(AuthError::Invalid(
                "the signed URL is unknown: set TWILIO_WEBHOOK_URL"
            ))
        );
        // A body re-encoded differently but with the same parameters is the same request.
        let respelled = SDK_BODY.replace("%2B", "%2b");
        assert_eq!(
            p.verify(&delivery(&h, respelled.as_bytes(), Some(URL))),
            Ok(())
        );
    }

    #[test]
    fn configuration() {
        assert!(Twilio::from_env(&Env::default()).unwrap().is_none());
        assert!(
            Twilio::from_env(&Env::from_pairs([(URL_VAR, URL)]))
                .unwrap()
                .is_none()
        );
        for bad in ["mycompany.com/x", "ftp://h/x", "https://", "https:///x"] {
            let err = Twilio::from_env(&Env::from_pairs([(TOKENS_VAR, "t"), (URL_VAR, bad)]))
                .err()
                .unwrap();
            assert!(err.to_string().starts_with(URL_VAR), "{bad}: {err}");
        }
    }

    #[test]
    fn fixture_signer_round_trips_form_and_json() {
        let signer = (ENTRY.dev_signer)(&FIXTURE_SEED);
        let p = Twilio::from_env(&Env::from_pairs(signer.verifier_env()))
            .unwrap()
            .unwrap();
        let target = "https://hooks.example.com/webhooks/twilio";
        for body in [REAL_BODY, JSON_BODY, "", "not form encoded"] {
            let signed = signer.sign(body.as_bytes(), NOW, target);
            let h: Headers = signed.headers.iter().map(|(k, v)| (k, v.clone())).collect();
            let url = signed.url.as_deref().unwrap_or(target);
            assert_eq!(
                p.verify(&delivery(&h, body.as_bytes(), Some(url))),
                Ok(()),
                "{body}"
            );
            assert_eq!(
                signed.url.is_some(),
                body == JSON_BODY || body == "not form encoded"
            );
        }
        // A signer holding the vector's token reproduces it.
        let signed = TwilioSigner(REAL_TOKEN.into()).sign(REAL_BODY.as_bytes(), NOW, REAL_URL);
        assert_eq!(signed.headers[0].1, REAL_SIG);
        assert_eq!(signed.url, None);
    }

    fn normalize(body: &str) -> CanonicalEvent {
        let h = Headers::new();
        provider(&[(TOKENS_VAR, TOKEN)]).normalize(&delivery(&h, body.as_bytes(), None))
    }

    fn status(status: &str, seq: u32, ts: &str) -> String {
        let ts = ts
            .replace('+', "%2B")
            .replace(' ', "+")
            .replace(',', "%2C")
            .replace(':', "%3A");
        format!(
            "AccountSid=AC1&CallSid=CA1&CallStatus={status}&CallbackSource=call-progress-events&Direction=inbound&From=%2B14155550100&To=%2B15005550006&SequenceNumber={seq}&Timestamp={ts}"
        )
    }

    #[test]
    fn every_call_status_maps() {
        for (i, (name, kind, outcome, is_final)) in CALL_STATUSES.iter().enumerate() {
            let e = normalize(&status(name, i as u32, "Tue, 14 Nov 2023 22:13:20 +0000"));
            assert_eq!(e.event_type, format!("call.{name}"));
            assert_eq!(
                (e.kind, e.outcome, e.is_final),
                (*kind, *outcome, *is_final),
                "{name}"
            );
            assert_eq!(e.is_final, *kind == Ended, "{name}");
            assert_eq!(e.call_id.as_deref(), Some("twilio#CA1"));
            assert_eq!(e.direction, Some(Direction::Inbound));
            assert!(e.review.is_none(), "{name}");
        }
        let e = normalize(&status("answered", 2, "Tue, 14 Nov 2023 22:13:20 +0000"));
        assert_eq!(e.kind, Unknown);
        assert_eq!(e.review.unwrap().reason, "unknown_type");
    }

    #[test]
    fn sequence_numbers_order_callbacks_within_a_second() {
        let at = "Tue, 14 Nov 2023 22:13:20 +0000";
        let ringing = normalize(&status("ringing", 1, at));
        let answered = normalize(&status("in-progress", 2, at));
        let ended = normalize(&status("completed", 3, at));
        assert!(ringing.occurred_at < answered.occurred_at);
        assert!(answered.occurred_at < ended.occurred_at);
        // A later second still wins over a higher sequence number in an earlier one.
        let later = normalize(&status("in-progress", 0, "Tue, 14 Nov 2023 22:13:21 +0000"));
        assert!(later.occurred_at > ended.occurred_at);
        // The reported times stay whole seconds.
        assert_eq!(
            answered.facts.answered_at,
            Some(Utc.timestamp_opt(NOW, 0).unwrap())
        );
        // Dedupe: the same callback again is the same event; another sequence number is not.
        assert_eq!(
            normalize(&status("ringing", 1, at)).event_id,
            ringing.event_id
        );
        assert_ne!(
            normalize(&status("ringing", 4, at)).event_id,
            ringing.event_id
        );
        // Without a timestamp: receipt time, still ordered by sequence.
        let e = normalize("CallSid=CA1&CallStatus=ringing&SequenceNumber=7");
        assert_eq!(e.occurred_at, e.received_at + Duration::microseconds(7));
    }

    #[test]
    fn terminal_facts_and_answering_machines() {
        let mut body = status("completed", 4, "Tue, 14 Nov 2023 22:13:20 +0000");
        body.push_str("&CallDuration=0&SipResponseCode=487&AnsweredBy=machine_end_beep&RecordingUrl=https%3A%2F%2Fapi.twilio.com%2Frec%2FRE1&RecordingSid=RE1");
        let e = normalize(&body);
        assert_eq!(e.outcome, Some(Outcome::Voicemail));
        assert_eq!(e.event_type, "call.completed");
        assert_eq!(e.facts.duration_secs, Some(0));
        assert_eq!(e.facts.hangup_cause.as_deref(), Some("SIP 487"));
        assert_eq!(
            e.facts.recording_url.as_deref(),
            Some("https://api.twilio.com/rec/RE1")
        );
        let human = normalize(&body.replace("machine_end_beep", "human"));
        assert_eq!(human.outcome, Some(Outcome::Completed));
        // A machine on a call that was not completed does not change its outcome.
        let busy = normalize(&body.replace("CallStatus=completed", "CallStatus=busy"));
        assert_eq!(busy.outcome, Some(Outcome::Busy));
        let odd = normalize(&body.replace("machine_end_beep", "robot"));
        assert_eq!(odd.outcome, Some(Outcome::Completed));
        assert!(odd.review.is_none());
    }

    #[test]
    fn recordings_transcriptions_and_amd_enrich_the_call() {
        let rec = normalize(
            "AccountSid=AC1&CallSid=CA1&RecordingSid=RE1&RecordingUrl=https%3A%2F%2Fapi.twilio.com%2FRE1&RecordingStatus=completed&RecordingDuration=12&RecordingChannels=1&RecordingSource=RecordVerb",
        );
        assert_eq!(
            (rec.kind, rec.event_type.as_str()),
            (Report, "recording.completed")
        );
        assert_eq!(rec.call_id.as_deref(), Some("twilio#CA1"));
        assert_eq!(
            rec.facts.recording_url.as_deref(),
            Some("https://api.twilio.com/RE1")
        );
        assert_eq!(
            rec.event_id,
            format!("twilio#{}", derived_key(&["recording", "RE1", "completed"]))
        );
        assert_eq!(rec.occurred_at, rec.received_at);
        let started = normalize("CallSid=CA1&RecordingSid=RE1&RecordingStatus=in-progress");
        assert_eq!(started.kind, Report);
        assert_eq!(started.facts.recording_url, None);
        assert_ne!(started.event_id, rec.event_id);

        let tx = normalize(
            "AccountSid=AC1&CallSid=CA1&CallStatus=completed&TranscriptionSid=TR1&TranscriptionText=Hello+there&TranscriptionStatus=completed&RecordingSid=RE1&RecordingUrl=https%3A%2F%2Fapi.twilio.com%2FRE1",
        );
        assert_eq!(
            (tx.kind, tx.event_type.as_str()),
            (Report, "transcription.completed")
        );
        assert!(!tx.is_final);
        assert_eq!(
            tx.facts.transcript,
            Some(Value::String("Hello there".into()))
        );
        let failed = normalize("CallSid=CA1&TranscriptionSid=TR1&TranscriptionStatus=failed");
        assert_eq!(failed.kind, Report);
        assert!(failed.facts.errors.is_some());

        let amd = normalize(
            "AccountSid=AC1&CallSid=CA1&AnsweredBy=machine_start&MachineDetectionDuration=2300",
        );
        assert_eq!(
            (amd.kind, amd.event_type.as_str()),
            (Progress, "amd.machine_start")
        );
        assert!(amd.outcome.is_none());
    }

    #[test]
    fn json_bodies_normalize_like_forms() {
        let h: Headers = [(CONTENT_TYPE_HEADER, "application/json")]
            .into_iter()
            .collect();
        let body = br#"{"CallSid":"CA9","CallStatus":"ringing","SequenceNumber":1,"Direction":"outbound-api"}"#;
        let e = provider(&[(TOKENS_VAR, TOKEN)]).normalize(&delivery(&h, body, None));
        assert_eq!(
            (e.kind, e.call_id.as_deref()),
            (Ringing, Some("twilio#CA9"))
        );
        assert_eq!(e.data["SequenceNumber"], 1);
        let e = provider(&[(TOKENS_VAR, TOKEN)]).normalize(&delivery(&h, b"[1]", None));
        assert_eq!(e.review.unwrap().reason, "malformed");
    }

    #[test]
    fn unknown_and_malformed_are_kept_for_review() {
        let e = normalize("CallSid=CA1&RecordingSid=RE1&RecordingStatus=deleted");
        assert_eq!(e.kind, Unknown);
        assert!(e.review.unwrap().detail.contains("deleted"));
        let e = normalize("CallSid=CA1&TranscriptionSid=TR1&TranscriptionStatus=queued");
        assert_eq!(e.review.unwrap().reason, "unknown_type");
        let e = normalize("CallSid=CA1&AnsweredBy=robot");
        assert_eq!(e.review.unwrap().reason, "unknown_type");
        for body in [
            "",
            "CallSid=CA1",
            "CallStatus=completed",
            "CallSid=CA1&TranscriptionSid=TR1",
            "CallSid=CA1&RecordingStatus=completed",
            "CallSid=CA1&CallStatus=completed&x=%FF",
            "{\"CallSid\":\"CA1\"}",
            "\u{0}",
        ] {
            let e = normalize(body);
            assert_eq!(e.review.as_ref().unwrap().reason, "malformed", "{body}");
            assert!(e.event_id.starts_with("twilio#"));
        }
    }
}
