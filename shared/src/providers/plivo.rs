//! Plivo Voice: the callbacks Plivo posts about a call (`ring_url`, `answer_url`, `hangup_url`,
//! `machine_detection_url`, and the Dial and Record callbacks).
//!
//! Authentication: signature V3, base64 HMAC-SHA256 over
//! `{scheme}://{host}{path}?{URL query}.{parameters}.{nonce}` as plivo-python
//! `signature_v3.py` builds it for a POST: the URL's own query pairs decoded, sorted, written
//! `k=v` joined by `&`; the form parameters decoded, sorted, written `{k}{v}` with no delimiter;
//! `?` when either is there, `.` between them when both are; then `.` and the
//! `X-Plivo-Signature-V3-Nonce` header. `X-Plivo-Signature-V3` is keyed with the (sub)account
//! Auth Token, `X-Plivo-Signature-Ma-V3` with the main account's: both are checked against
//! every token in PLIVO_AUTH_TOKENS, and either header may hold several comma-separated
//! signatures (at most 10); any match passes. The URL is PLIVO_WEBHOOK_URL when set, else the
//! URL API Gateway saw (its domain, raw path, raw query); a port is kept as written. No
//! timestamp is signed (a nonce only): there is no freshness window, and dedupe is the replay
//! protection.
//!
//! Body: form parameters. What a callback reports follows from `Event` when Plivo sends it
//! ([`EVENTS`]), else from `CallStatus` ([`CALL_STATUSES`]). Dedupe key:
//! `(CallUUID, Event, CallStatus, DialBLegUUID, RecordingID)` (Plivo sends no event id; a
//! call reports each of these once). Call key: `CallUUID` (each leg; an outbound call's
//! `RequestUUID` names the request, and one request may ring several destinations, each its
//! own `CallUUID`).

use chrono::{DateTime, NaiveDateTime, Utc};
use serde_json::{Map, Value};

use super::form::{self, Form, TokensAndUrl, UrlParts};
#[cfg(any(test, feature = "dev"))]
use super::sha256_hex;
use super::{Delivery, Provider, ProviderEntry, derived_key, malformed, mark_unknown, scoped_id};
#[cfg(any(test, feature = "dev"))]
use super::{DevSigner, Signed};
use crate::config::{ConfigError, Env, vars};
use crate::domain::event::{CanonicalEvent, Direction, Kind, Outcome, ReviewNote};
use crate::domain::review::ReviewReason;
use crate::signing::{self as verify, AuthError};

pub const NAME: &str = "plivo";
pub const SIGNATURE_HEADER: &str = "x-plivo-signature-v3";
pub const MAIN_ACCOUNT_SIGNATURE_HEADER: &str = "x-plivo-signature-ma-v3";
pub const NONCE_HEADER: &str = "x-plivo-signature-v3-nonce";
const TOKENS_VAR: &str = vars::PLIVO_AUTH_TOKENS;
const URL_VAR: &str = vars::PLIVO_WEBHOOK_URL;
use crate::limits::MAX_SIGNATURES;

use Kind::*;

pub const ENTRY: ProviderEntry = ProviderEntry {
    name: NAME,
    from_env: Plivo::from_env,
    normalizer,
    #[cfg(any(test, feature = "dev"))]
    dev_signer: |seed| Box::new(PlivoSigner(dev_token(seed))),
};

/// `Event` → kind (`None`: from `CallStatus`, ringing or answered, else progress). `Hangup` is
/// the call's terminal fact. The canonical type is the `Event`.
pub const EVENTS: &[(&str, Option<Kind>)] = &[
    // answer_url: an inbound call rings while its XML is fetched; an outbound one is answered.
    ("StartApp", None),
    ("Ring", Some(Ringing)),
    ("Hangup", Some(Ended)),
    // Asynchronous answering machine detection: `Machine=true|false`.
    ("MachineDetection", Some(Progress)),
    ("Redirect", Some(Progress)),
];

/// `CallStatus` → kind and outcome. Without an `Event` a terminal status is the hangup
/// callback (type `Hangup`); with `Event=Hangup` it gives the outcome. `timeout` is "a timeout
/// while connecting your call" (carrier or network), not an unanswered ring: failed.
pub const CALL_STATUSES: &[(&str, Kind, Option<Outcome>)] = &[
    ("ringing", Ringing, None),
    ("in-progress", Answered, None),
    ("completed", Ended, Some(Outcome::Completed)),
    ("busy", Ended, Some(Outcome::Busy)),
    ("no-answer", Ended, Some(Outcome::NoAnswer)),
    ("cancel", Ended, Some(Outcome::Canceled)),
    ("timeout", Ended, Some(Outcome::Failed)),
    ("failed", Ended, Some(Outcome::Failed)),
];

/// `HangupCauseCode` ranges (Plivo's hangup causes page) → the outcome of a hangup whose
/// `CallStatus` is missing or not terminal. Any other code: failed (a person should call back).
pub const HANGUP_CAUSE_RANGES: &[(u32, u32, Outcome)] = &[
    (1000, 1999, Outcome::Canceled),
    (2000, 2999, Outcome::Failed),
    (4000, 4999, Outcome::Completed),
];

pub struct Plivo(TokensAndUrl);

impl Plivo {
    pub fn from_env(env: &Env) -> Result<Option<Box<dyn Provider>>, ConfigError> {
        Ok(TokensAndUrl::from_env(env, TOKENS_VAR, URL_VAR)?
            .map(|config| Box::new(Plivo(config)) as Box<dyn Provider>))
    }
}

/// The V3 string of a POST, before `.{nonce}`.
pub fn signed_string(url: &UrlParts<'_>, params: &Form) -> String {
    let query = url.query.map(Form::of_query).unwrap_or_default();
    let query: Vec<String> = query
        .sorted()
        .into_iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let query = query.join("&");
    let mut out = url.base();
    if !query.is_empty() || !params.is_empty() {
        out.push('?');
        out.push_str(&query);
    }
    if !query.is_empty() && !params.is_empty() {
        out.push('.');
    }
    out.push_str(&form::concatenated(params.sorted()));
    out
}

/// base64 HMAC-SHA256 of `{signed string}.{nonce}`.
pub fn compute_signature(token: &[u8], signed: &str, nonce: &str) -> String {
    verify::encode_b64(&verify::hmac_sha256(
        token,
        &[signed.as_bytes(), b".", nonce.as_bytes()],
    ))
}

/// The provider for normalizing stored events: no credentials (it is wrapped so that it
/// verifies nothing).
fn normalizer(_env: &Env) -> Result<Box<dyn Provider>, ConfigError> {
    Ok(Box::new(Plivo(TokensAndUrl::default())))
}

impl Provider for Plivo {
    fn name(&self) -> &'static str {
        NAME
    }

    fn signs_url(&self) -> bool {
        true
    }

    fn signed_headers(&self) -> &'static [&'static str] {
        &[
            SIGNATURE_HEADER,
            MAIN_ACCOUNT_SIGNATURE_HEADER,
            NONCE_HEADER,
        ]
    }

    fn verify(&self, d: &Delivery<'_>) -> Result<(), AuthError> {
        let present: Vec<(&'static str, &str)> = [SIGNATURE_HEADER, MAIN_ACCOUNT_SIGNATURE_HEADER]
            .into_iter()
            .filter_map(|name| d.headers.get(name).map(|value| (name, value)))
            .collect();
        let Some((first_header, _)) = present.first() else {
            return Err(AuthError::MissingHeader(SIGNATURE_HEADER));
        };
        let nonce = d.headers.require(NONCE_HEADER)?;
        let mut signatures = Vec::new();
        let mut entries = 0;
        for (name, value) in &present {
            for candidate in value.split(',').map(str::trim).filter(|c| !c.is_empty()) {
                entries += 1;
                if entries > MAX_SIGNATURES {
                    return Err(AuthError::Malformed(name));
                }
                // Plivo's SDKs compare strings: an entry that is not a signature just fails.
                if let Ok(bytes) = verify::decode_b64(name, candidate)
                    && bytes.len() == 32
                {
                    signatures.push(bytes);
                }
            }
        }
        if signatures.is_empty() {
            return Err(AuthError::Malformed(first_header));
        }
        let url = self
            .0
            .url
            .as_deref()
            .or(d.request_url)
            .ok_or(AuthError::Invalid(
                "the signed URL is unknown: set PLIVO_WEBHOOK_URL",
            ))?;
        let url =
            UrlParts::parse(url).ok_or(AuthError::Invalid("the signed URL is not absolute"))?;
        let params = Form::parse(d.body).map_err(|_| AuthError::BadBody("form encoding"))?;
        let signed = signed_string(&url, &params);
        let expected: Vec<[u8; 32]> = self
            .0
            .tokens
            .iter()
            .map(|token| verify::hmac_sha256(token, &[signed.as_bytes(), b".", nonce.as_bytes()]))
            .collect();
        let matched = signatures
            .iter()
            .fold(false, |found, s| verify::matches_any(s, &expected) | found);
        if matched {
            Ok(())
        } else {
            Err(AuthError::BadSignature)
        }
    }

    fn normalize(&self, d: &Delivery<'_>) -> CanonicalEvent {
        let Ok(params) = Form::parse(d.body) else {
            return malformed(NAME, d.body, d.received_at, "body is not form encoded");
        };
        let Some(call_uuid) = params.get("CallUUID") else {
            return malformed(NAME, d.body, d.received_at, "missing CallUUID");
        };
        let status = params.get("CallStatus");
        let event_name = params.get("Event");
        // Without an Event: a recording, a Dial report, or a status callback.
        let event_type = match event_name {
            Some(name) => name,
            None if params.get("RecordUrl").is_some() => "Record",
            None if params.get("DialStatus").is_some() => "Dial",
            None => match status.and_then(status_of) {
                Some((Ended, _)) => "Hangup",
                Some((Answered, _)) => "Answer",
                Some(_) => "Ring",
                None if status.is_some() => "",
                None => {
                    return malformed(
                        NAME,
                        d.body,
                        d.received_at,
                        "no Event, CallStatus, DialStatus or RecordUrl",
                    );
                }
            },
        };
        let key = derived_key(&[
            call_uuid,
            event_name.unwrap_or(""),
            status.unwrap_or(""),
            params.get("DialBLegUUID").unwrap_or(""),
            params.get("RecordingID").unwrap_or(""),
        ]);
        let mut event = CanonicalEvent::new(NAME, &key, event_type, d.received_at);
        event.call_id = Some(scoped_id(NAME, call_uuid));
        event.direction = params.get("Direction").and_then(Direction::parse);
        event.from = params.get("From").map(str::to_owned);
        event.to = params.get("To").map(str::to_owned);
        event.data = params.to_json();
        let kind = match event_type {
            "" => None,
            "Record" => Some(Report),
            "Dial" => Some(Progress),
            "Answer" => Some(Answered),
            _ => EVENTS
                .iter()
                .find(|(name, _)| *name == event_type)
                .map(|(_, kind)| match kind {
                    Some(kind) => *kind,
                    None => match status.and_then(status_of) {
                        Some((kind @ (Ringing | Answered), _)) => kind,
                        _ => Progress,
                    },
                }),
        };
        let Some(kind) = kind else {
            mark_unknown(&mut event);
            if event_type.is_empty() {
                event.review = Some(ReviewNote {
                    reason: ReviewReason::UnknownType,
                    detail: format!("no mapping for CallStatus {:?}", status.unwrap_or("")),
                });
            }
            return event;
        };
        event.kind = kind;
        match kind {
            Ended => {
                event.is_final = true;
                hangup(&mut event, &params, status);
            }
            Report => event.facts.recording_url = params.get("RecordUrl").map(str::to_owned),
            _ => {}
        }
        event
    }
}

fn status_of(status: &str) -> Option<(Kind, Option<Outcome>)> {
    CALL_STATUSES
        .iter()
        .find(|(s, ..)| *s == status)
        .map(|(_, kind, outcome)| (*kind, *outcome))
}

fn time(params: &Form, name: &str) -> Option<DateTime<Utc>> {
    parse_time(params.get(name)?)
}

/// A time as Plivo writes it (`2023-11-14 22:13:20`, UTC; fractions and an offset accepted).
pub fn parse_time(value: &str) -> Option<DateTime<Utc>> {
    let value = value.trim();
    DateTime::parse_from_rfc3339(value)
        .or_else(|_| DateTime::parse_from_str(value, "%Y-%m-%d %H:%M:%S%.f%:z"))
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            NaiveDateTime::parse_from_str(value, "%Y-%m-%d %H:%M:%S%.f")
                .ok()
                .map(|t| t.and_utc())
        })
}

/// A hangup cause code's outcome by [`HANGUP_CAUSE_RANGES`]; any other code: failed.
pub fn cause_code_outcome(code: u32) -> Outcome {
    HANGUP_CAUSE_RANGES
        .iter()
        .find(|(low, high, _)| (*low..=*high).contains(&code))
        .map_or(Outcome::Failed, |(.., outcome)| *outcome)
}

/// The hangup cause as the record keeps it: `{name} ({code})`, else whichever is there.
pub fn cause_text(name: Option<&str>, code: Option<&str>, cause: Option<&str>) -> Option<String> {
    match (name, code) {
        (Some(name), Some(code)) => Some(format!("{name} ({code})")),
        (name, code) => name.or(code).or(cause).map(str::to_owned),
    }
}

fn hangup(event: &mut CanonicalEvent, params: &Form, status: Option<&str>) {
    let code = params
        .get("HangupCauseCode")
        .and_then(|c| c.trim().parse::<u32>().ok());
    event.outcome = Some(
        match status.and_then(status_of) {
            Some((Ended, outcome)) => outcome,
            _ => None,
        }
        .or_else(|| code.map(cause_code_outcome))
        .unwrap_or(Outcome::Failed),
    );
    event.occurred_at = time(params, "EndTime").unwrap_or(event.received_at);
    let facts = &mut event.facts;
    facts.started_at = time(params, "StartTime");
    facts.answered_at = time(params, "AnswerTime");
    facts.ended_at = Some(event.occurred_at);
    facts.duration_secs = params.get("Duration").and_then(|d| d.trim().parse().ok());
    facts.hangup_cause = cause_text(
        params.get("HangupCauseName"),
        params.get("HangupCauseCode"),
        params.get("HangupCause"),
    );
    let cost: Map<String, Value> = ["TotalCost", "BillRate", "BillDuration"]
        .iter()
        .filter_map(|k| {
            params
                .get(k)
                .map(|v| ((*k).to_owned(), Value::String(v.to_owned())))
        })
        .collect();
    if !cost.is_empty() {
        facts.cost = Some(Value::Object(cost));
    }
}

#[cfg(any(test, feature = "dev"))]
/// The dev Auth Token: 40 characters like Plivo's, derived from the seed with a domain tag.
fn dev_token(seed: &[u8; 32]) -> String {
    sha256_hex(&[b"callhook dev plivo auth token ".as_slice(), seed].concat())[..40].to_owned()
}

#[cfg(any(test, feature = "dev"))]
/// Signs V3 as Plivo does, with a 20-digit nonce derived from the time and body (so a re-sent
/// fixture is byte-identical). A body that is not form encoding cannot be signed: its
/// signature never verifies.
struct PlivoSigner(String);

#[cfg(any(test, feature = "dev"))]
impl DevSigner for PlivoSigner {
    fn verifier_env(&self) -> Vec<(&'static str, String)> {
        vec![(TOKENS_VAR, self.0.clone())]
    }

    fn sign(&self, body: &[u8], timestamp: i64, url: &str) -> Signed {
        let digest = sha256_hex(&[timestamp.to_string().as_bytes(), body].concat());
        let nonce: String = digest
            .bytes()
            .take(20)
            .map(|b| char::from(b'0' + b % 10))
            .collect();
        let params = Form::parse(body).unwrap_or_default();
        let signed = UrlParts::parse(url).map_or_else(String::new, |u| signed_string(&u, &params));
        Signed {
            headers: vec![
                (
                    SIGNATURE_HEADER.to_owned(),
                    compute_signature(self.0.as_bytes(), &signed, &nonce),
                ),
                (NONCE_HEADER.to_owned(), nonce),
            ],
            path_token: None,
            url: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::{FIXTURE_SEED, Headers};
    use chrono::TimeZone;

    /// plivo-go `TestValidateSignatureV3Pass1..4` (also plivo-ruby `spec/signature_spec.rb`).
    const TOKEN: &str = "Y2Q2ZDgxZmY5YWRiOTI5YmQ1Njg0MTAxZWIyOTc4";
    const NONCE: &str = "31627761595286130198";
    const UUID: &str = "3e82ae9d-2c78-4d85-b1a4-6eae7dbafb36";
    const URL_WITH_QUERY: &str =
        "https://plivobin.non-prod.plivops.com/api/v1/validate_signature03.xml/?a=b&c=d";
    const URL_PLAIN: &str = "https://plivobin.non-prod.plivops.com/api/v1/validate_signature03.xml";

    fn sdk_params() -> Vec<(&'static str, &'static str)> {
        vec![
            ("Direction", "outbound"),
            ("From", "19792014278"),
            ("CallStatus", "in-progress"),
            ("BillRate", "0.002"),
            ("ParentAuthID", "MANWVLYTK4ZWU1YTY4QA"),
            ("ALegUUID", UUID),
            ("ALegRequestUUID", UUID),
            ("CallUUID", UUID),
            ("RequestUUID", UUID),
            (
                "To",
                "sip:PlivoSignature382029104058171078704104@phone-qa.voice.plivodev.com",
            ),
            (
                "SIP-H-To",
                "<sip:PlivoSignature382029104058171078704104@52.9.11.55;transport=udp>;tag=1",
            ),
            ("SessionStart", "2020-04-08 11:34:33.238707"),
            ("Event", "StartApp"),
        ]
    }

    fn sdk_body() -> String {
        form_urlencoded::Serializer::new(String::new())
            .extend_pairs(sdk_params())
            .finish()
    }

    /// A computed hangup callback (cross-checked with plivo-python).
    const HANGUP_URL: &str = "https://hooks.example.com/voice/plivo/hangup?tenant=acme";
    const HANGUP_NONCE: &str = "05429567804466091622";
    const HANGUP_BODY: &str = "CallUUID=3e82ae9d-2c78-4d85-b1a4-6eae7dbafb36&CallStatus=completed&Direction=outbound&Event=Hangup&From=14155550100&To=15005550006&Duration=42&BillDuration=60&HangupCause=NORMAL_CLEARING&HangupCauseCode=4000&HangupCauseName=Normal+Hangup&HangupSource=Callee&StartTime=2023-11-14+22%3A12%3A38&AnswerTime=2023-11-14+22%3A12%3A44&EndTime=2023-11-14+22%3A13%3A20";
    const HANGUP_SIGNED: &str = "https://hooks.example.com/voice/plivo/hangup?tenant=acme.AnswerTime2023-11-14 22:12:44BillDuration60CallStatuscompletedCallUUID3e82ae9d-2c78-4d85-b1a4-6eae7dbafb36DirectionoutboundDuration42EndTime2023-11-14 22:13:20EventHangupFrom14155550100HangupCauseNORMAL_CLEARINGHangupCauseCode4000HangupCauseNameNormal HangupHangupSourceCalleeStartTime2023-11-14 22:12:38To15005550006";
    const HANGUP_SIG: &str = "XtGcC8iBL6dcDBPItx68boWVuL0vRyw7bQ6zUijYdXg=";

    const NOW: i64 = 1_700_000_000;

    fn provider(pairs: &[(&str, &str)]) -> Box<dyn Provider> {
        Plivo::from_env(&Env::from_pairs(pairs.iter().copied()))
            .unwrap()
            .unwrap()
    }

    fn headers(pairs: &[(&str, &str)]) -> Headers {
        pairs.iter().map(|(k, v)| (*k, (*v).to_owned())).collect()
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

    fn check(token: &str, h: &Headers, url: &str, body: &str) -> Result<(), AuthError> {
        provider(&[(TOKENS_VAR, token)]).verify(&delivery(h, body.as_bytes(), Some(url)))
    }

    /// The GET string (plivo-python `construct_get_url`): the URL's query and the callback's
    /// parameters merged, sorted, `k=v` joined by `&`. callhook serves POST only; this checks
    /// that the vectors' scheme is understood the same way.
    fn get_string(url: &str, params: &[(&str, &str)]) -> String {
        let parts = UrlParts::parse(url).unwrap();
        let mut all: Vec<(String, String)> = params
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        all.extend(
            Form::of_query(parts.query.unwrap_or(""))
                .pairs()
                .iter()
                .cloned(),
        );
        let all = Form::from_pairs(all);
        let query: Vec<String> = all
            .sorted()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        format!("{}?{}", parts.base(), query.join("&"))
    }

    #[test]
    fn sdk_post_vectors_verify() {
        let body = sdk_body();
        let url = UrlParts::parse(URL_WITH_QUERY).unwrap();
        let form = Form::parse(body.as_bytes()).unwrap();
        assert_eq!(
            signed_string(&url, &form),
            "https://plivobin.non-prod.plivops.com/api/v1/validate_signature03.xml/?a=b&c=d.ALegRequestUUID3e82ae9d-2c78-4d85-b1a4-6eae7dbafb36ALegUUID3e82ae9d-2c78-4d85-b1a4-6eae7dbafb36BillRate0.002CallStatusin-progressCallUUID3e82ae9d-2c78-4d85-b1a4-6eae7dbafb36DirectionoutboundEventStartAppFrom19792014278ParentAuthIDMANWVLYTK4ZWU1YTY4QARequestUUID3e82ae9d-2c78-4d85-b1a4-6eae7dbafb36SIP-H-To<sip:PlivoSignature382029104058171078704104@52.9.11.55;transport=udp>;tag=1SessionStart2020-04-08 11:34:33.238707Tosip:PlivoSignature382029104058171078704104@phone-qa.voice.plivodev.com"
        );
        for (url, sig) in [
            (
                URL_WITH_QUERY,
                "k7Pusd4OxCIjR5IfA9iedDNu/h/gbdYqdzG/MiYtd1c=",
            ),
            (URL_PLAIN, "iAjE5QqI37mbkYe4w3jTMudqEzbDufdqi7sYwTu64e0="),
        ] {
            let h = headers(&[(SIGNATURE_HEADER, sig), (NONCE_HEADER, NONCE)]);
            assert_eq!(check(TOKEN, &h, url, &body), Ok(()), "{url}");
            // The main-account header verifies the same way.
            let h = headers(&[(MAIN_ACCOUNT_SIGNATURE_HEADER, sig), (NONCE_HEADER, NONCE)]);
            assert_eq!(check(TOKEN, &h, url, &body), Ok(()), "{url}");
            // Another nonce, another token, another URL: no match.
            let h = headers(&[
                (SIGNATURE_HEADER, sig),
                (NONCE_HEADER, "31627761595286130199"),
            ]);
            assert_eq!(check(TOKEN, &h, url, &body), Err(AuthError::BadSignature));
            let h = headers(&[(SIGNATURE_HEADER, sig), (NONCE_HEADER, NONCE)]);
            assert_eq!(check("other", &h, url, &body), Err(AuthError::BadSignature));
        }
        // Each signature belongs to its own URL.
        let h = headers(&[
            (
                SIGNATURE_HEADER,
                "k7Pusd4OxCIjR5IfA9iedDNu/h/gbdYqdzG/MiYtd1c=",
            ),
            (NONCE_HEADER, NONCE),
        ]);
        assert_eq!(
            check(TOKEN, &h, URL_PLAIN, &body),
            Err(AuthError::BadSignature)
        );
    }

    #[test]
    fn sdk_get_vectors_are_the_same_scheme() {
        for (url, sig) in [
            (
                URL_WITH_QUERY,
                "UBq8jAtd32wR8EK9VgxbBn4n5rpI/l1H9iN4WfSEHFQ=",
            ),
            (URL_PLAIN, "i/MQsaQSAd6fiKhOh2qeeeLHZ9faldADSb3/7+Akfbc="),
        ] {
            let signed = get_string(url, &sdk_params());
            assert_eq!(
                compute_signature(TOKEN.as_bytes(), &signed, NONCE),
                sig,
                "{url}"
            );
            // As a POST the same signature does not verify: the method is part of the string.
            let h = headers(&[(SIGNATURE_HEADER, sig), (NONCE_HEADER, NONCE)]);
            assert_eq!(
                check(TOKEN, &h, url, &sdk_body()),
                Err(AuthError::BadSignature)
            );
        }
        let signed = get_string(URL_WITH_QUERY, &sdk_params());
        assert!(signed.ends_with(
            "&To=sip:PlivoSignature382029104058171078704104@phone-qa.voice.plivodev.com&a=b&c=d"
        ));
    }

    #[test]
    fn computed_hangup_vector_verifies_and_normalizes() {
        let url = UrlParts::parse(HANGUP_URL).unwrap();
        let form = Form::parse(HANGUP_BODY.as_bytes()).unwrap();
        assert_eq!(signed_string(&url, &form), HANGUP_SIGNED);
        let h = headers(&[(SIGNATURE_HEADER, HANGUP_SIG), (NONCE_HEADER, HANGUP_NONCE)]);
        assert_eq!(check(TOKEN, &h, HANGUP_URL, HANGUP_BODY), Ok(()));
        // Several signatures in one header: any one matching passes.
        let several = format!("AAAA,{HANGUP_SIG}");
        let h2 = headers(&[(SIGNATURE_HEADER, &several), (NONCE_HEADER, HANGUP_NONCE)]);
        assert_eq!(check(TOKEN, &h2, HANGUP_URL, HANGUP_BODY), Ok(()));
        let tampered = HANGUP_BODY.replace("CallStatus=completed", "CallStatus=no-answer");
        assert_eq!(
            check(TOKEN, &h, HANGUP_URL, &tampered),
            Err(AuthError::BadSignature)
        );
        // The configured URL wins over the gateway's view.
        let p = provider(&[(TOKENS_VAR, TOKEN), (URL_VAR, HANGUP_URL)]);
        let seen =
            Some("https://abc.execute-api.eu-west-1.amazonaws.com/webhooks/plivo?tenant=acme");
        assert_eq!(
            p.verify(&delivery(&h, HANGUP_BODY.as_bytes(), seen)),
            Ok(())
        );

        let e = p.normalize(&delivery(&h, HANGUP_BODY.as_bytes(), None));
        assert_eq!(e.event_type, "Hangup");
        assert_eq!(
            e.call_id.as_deref(),
            Some("plivo#3e82ae9d-2c78-4d85-b1a4-6eae7dbafb36")
        );
        assert_eq!(
            (e.kind, e.is_final, e.outcome),
            (Ended, true, Some(Outcome::Completed))
        );
        assert_eq!(e.direction, Some(Direction::Outbound));
        assert_eq!(e.from.as_deref(), Some("14155550100"));
        let t = |s| Utc.timestamp_opt(s, 0).unwrap();
        assert_eq!(e.occurred_at, t(NOW));
        assert_eq!(e.facts.ended_at, Some(t(NOW)));
        assert_eq!(e.facts.started_at, Some(t(NOW - 42)));
        assert_eq!(e.facts.answered_at, Some(t(NOW - 36)));
        assert_eq!(e.facts.duration_secs, Some(42));
        assert_eq!(
            e.facts.hangup_cause.as_deref(),
            Some("Normal Hangup (4000)")
        );
        assert_eq!(
            e.event_id,
            format!(
                "plivo#{}",
                derived_key(&[UUID, "Hangup", "completed", "", ""])
            )
        );
        assert!(e.review.is_none());
    }

    #[test]
    fn v2_and_legacy_signatures_are_not_accepted() {
        // V2 (every SDK's test): HMAC-SHA256 over `{url without query}{nonce}`.
        let v2 = verify::encode_b64(&verify::hmac_sha256(
            b"my_auth_token",
            &[b"https://answer.url", b"12345"],
        ));
        assert_eq!(v2, "ehV3IKhLysWBxC1sy8INm0qGoQYdYsHwuoKjsX7FsXc=");
        let v2 = verify::encode_b64(&verify::hmac_sha256(
            TOKEN.as_bytes(),
            &[
                b"https://hooks.example.com/voice/plivo/hangup",
                HANGUP_NONCE.as_bytes(),
            ],
        ));
        assert_eq!(v2, "1BYAB+DpOqj6w7o4Mx4E1/J7FQFzscbLvbu2bzQaLrs=");
        let h = headers(&[
            ("x-plivo-signature-v2", &v2),
            ("x-plivo-signature-v2-nonce", HANGUP_NONCE),
        ]);
        assert_eq!(
            check(TOKEN, &h, HANGUP_URL, HANGUP_BODY),
            Err(AuthError::MissingHeader(SIGNATURE_HEADER))
        );
        // A V2 value in the V3 header is a wrong signature.
        let h = headers(&[(SIGNATURE_HEADER, &v2), (NONCE_HEADER, HANGUP_NONCE)]);
        assert_eq!(
            check(TOKEN, &h, HANGUP_URL, HANGUP_BODY),
            Err(AuthError::BadSignature)
        );
        // Legacy V1 (plivo-node `test/utils.js`): HMAC-SHA1 over the URL and sorted `{k}{v}`.
        for (body, expected) in [
            (
                "CallUUID=97ceeb52-58b6-11e1-86da-77300b68f8bb&Duration=300",
                "EJEt0ELanhr8hjMPIJnLNLex0dE=",
            ),
            ("a=1+2", "n3Xfo4u+vRFyl3gsH8B0qDUIK5g="),
        ] {
            let params = form::concatenated(Form::parse(body.as_bytes()).unwrap().sorted());
            let v1 = verify::encode_b64(&verify::hmac_sha1(
                b"MAXXXXXXXXXXXXXXXXXX",
                &[b"http://foo.com/answer/", params.as_bytes()],
            ));
            assert_eq!(v1, expected);
            let h = headers(&[("x-plivo-signature", &v1)]);
            assert_eq!(
                check("MAXXXXXXXXXXXXXXXXXX", &h, "http://foo.com/answer/", body),
                Err(AuthError::MissingHeader(SIGNATURE_HEADER))
            );
        }
    }

    #[test]
    fn rotation_and_the_main_account_token() {
        let h = headers(&[(SIGNATURE_HEADER, HANGUP_SIG), (NONCE_HEADER, HANGUP_NONCE)]);
        assert_eq!(
            check(&format!("old,{TOKEN}"), &h, HANGUP_URL, HANGUP_BODY),
            Ok(())
        );
        assert_eq!(
            check("old,older", &h, HANGUP_URL, HANGUP_BODY),
            Err(AuthError::BadSignature)
        );
        // A subaccount's own header fails, the main account's passes: either is enough.
        let h = headers(&[
            (
                SIGNATURE_HEADER,
                "iAjE5QqI37mbkYe4w3jTMudqEzbDufdqi7sYwTu64e0=",
            ),
            (MAIN_ACCOUNT_SIGNATURE_HEADER, HANGUP_SIG),
            (NONCE_HEADER, HANGUP_NONCE),
        ]);
        assert_eq!(check(TOKEN, &h, HANGUP_URL, HANGUP_BODY), Ok(()));
    }

    #[test]
    fn bad_headers_bodies_and_urls_name_the_check() {
        let p = provider(&[(TOKENS_VAR, TOKEN)]);
        let at = |h: &Headers, body: &str, url: Option<&str>| {
            p.verify(&delivery(h, body.as_bytes(), url))
        };
        assert_eq!(
            at(
                &headers(&[(NONCE_HEADER, HANGUP_NONCE)]),
                HANGUP_BODY,
                Some(HANGUP_URL)
            ),
            Err(AuthError::MissingHeader(SIGNATURE_HEADER))
        );
        assert_eq!(
            at(
                &headers(&[(SIGNATURE_HEADER, HANGUP_SIG)]),
                HANGUP_BODY,
                Some(HANGUP_URL)
            ),
            Err(AuthError::MissingHeader(NONCE_HEADER))
        );
        for sig in ["AAAA", "not base64!", ",,", ""] {
            let h = headers(&[
                (MAIN_ACCOUNT_SIGNATURE_HEADER, sig),
                (NONCE_HEADER, HANGUP_NONCE),
            ]);
            assert_eq!(
                at(&h, HANGUP_BODY, Some(HANGUP_URL)),
                Err(AuthError::Malformed(MAIN_ACCOUNT_SIGNATURE_HEADER)),
                "{sig}"
            );
        }
        let eleven = [HANGUP_SIG; 11].join(",");
        let h = headers(&[(SIGNATURE_HEADER, &eleven), (NONCE_HEADER, HANGUP_NONCE)]);
        assert_eq!(
            at(&h, HANGUP_BODY, Some(HANGUP_URL)),
            Err(AuthError::Malformed(SIGNATURE_HEADER))
        );
        // Entries that are not signatures count too; ten in all are read.
        let ten = format!("{},{HANGUP_SIG}", ["AAAA"; 9].join(","));
        let h = headers(&[(SIGNATURE_HEADER, &ten), (NONCE_HEADER, HANGUP_NONCE)]);
        assert_eq!(at(&h, HANGUP_BODY, Some(HANGUP_URL)), Ok(()));
        let eleven = format!("{},{HANGUP_SIG}", ["AAAA"; 10].join(","));
        let h = headers(&[(SIGNATURE_HEADER, &eleven), (NONCE_HEADER, HANGUP_NONCE)]);
        assert_eq!(
            at(&h, HANGUP_BODY, Some(HANGUP_URL)),
            Err(AuthError::Malformed(SIGNATURE_HEADER))
        );
        let h = headers(&[(SIGNATURE_HEADER, HANGUP_SIG), (NONCE_HEADER, HANGUP_NONCE)]);
        assert_eq!(
            at(&h, "CallUUID=a b", Some(HANGUP_URL)),
            Err(AuthError::BadBody("form encoding"))
        );
        assert_eq!(
            at(&h, HANGUP_BODY, None),
            Err(AuthError::Invalid(
                "the signed URL is unknown: set PLIVO_WEBHOOK_URL"
            ))
        );
        assert_eq!(
            at(&h, HANGUP_BODY, Some("/webhooks/plivo")),
            Err(AuthError::Invalid("the signed URL is not absolute"))
        );
    }

    #[test]
    fn configuration() {
        assert!(Plivo::from_env(&Env::default()).unwrap().is_none());
        assert!(
            Plivo::from_env(&Env::from_pairs([(URL_VAR, HANGUP_URL)]))
                .unwrap()
                .is_none()
        );
        let err = Plivo::from_env(&Env::from_pairs([
            (TOKENS_VAR, "t"),
            (URL_VAR, "hooks.example.com"),
        ]))
        .err()
        .unwrap();
        assert!(err.to_string().starts_with(URL_VAR));
        // A fragment (Plivo's callback overrides `#ct=…&rt=…`) is not part of the signed URL.
        let p = provider(&[
            (TOKENS_VAR, TOKEN),
            (URL_VAR, &format!("{HANGUP_URL}#ct=2000&rc=3")),
        ]);
        let h = headers(&[(SIGNATURE_HEADER, HANGUP_SIG), (NONCE_HEADER, HANGUP_NONCE)]);
        assert_eq!(
            p.verify(&delivery(&h, HANGUP_BODY.as_bytes(), None)),
            Ok(())
        );
    }

    #[test]
    fn fixture_signer_round_trips() {
        let signer = (ENTRY.dev_signer)(&FIXTURE_SEED);
        let p = Plivo::from_env(&Env::from_pairs(signer.verifier_env()))
            .unwrap()
            .unwrap();
        for body in [HANGUP_BODY, "", "CallUUID=x"] {
            let signed = signer.sign(body.as_bytes(), NOW, HANGUP_URL);
            let h: Headers = signed.headers.iter().map(|(k, v)| (k, v.clone())).collect();
            assert_eq!(
                p.verify(&delivery(&h, body.as_bytes(), Some(HANGUP_URL))),
                Ok(()),
                "{body}"
            );
            assert_eq!(h.get(NONCE_HEADER).unwrap().len(), 20);
        }
        // A signer holding the vector's token reproduces it (with its nonce).
        let form = Form::parse(HANGUP_BODY.as_bytes()).unwrap();
        let url = UrlParts::parse(HANGUP_URL).unwrap();
        assert_eq!(
            compute_signature(TOKEN.as_bytes(), &signed_string(&url, &form), HANGUP_NONCE),
            HANGUP_SIG
        );
    }

    fn normalize(body: &str) -> CanonicalEvent {
        let h = Headers::new();
        provider(&[(TOKENS_VAR, TOKEN)]).normalize(&delivery(&h, body.as_bytes(), None))
    }

    const CALL: &str = "CallUUID=c1&From=14155550100&To=15005550006&Direction=inbound";

    #[test]
    fn events_and_statuses_map() {
        let ring = normalize(&format!("{CALL}&Event=Ring&CallStatus=ringing"));
        assert_eq!((ring.kind, ring.event_type.as_str()), (Ringing, "Ring"));
        let start_inbound = normalize(&format!("{CALL}&Event=StartApp&CallStatus=ringing"));
        assert_eq!(start_inbound.kind, Ringing);
        let start_outbound = normalize(&format!("{CALL}&Event=StartApp&CallStatus=in-progress"));
        assert_eq!(start_outbound.kind, Answered);
        let odd_start = normalize(&format!("{CALL}&Event=StartApp&CallStatus=completed"));
        assert_eq!((odd_start.kind, odd_start.is_final), (Progress, false));
        let machine = normalize(&format!(
            "{CALL}&Event=MachineDetection&CallStatus=in-progress&Machine=true"
        ));
        assert_eq!((machine.kind, machine.outcome), (Progress, None));
        assert_eq!(machine.data["Machine"], "true");
        let redirect = normalize(&format!("{CALL}&Event=Redirect&CallStatus=in-progress"));
        assert_eq!(redirect.kind, Progress);
        for (name, kind, outcome) in CALL_STATUSES {
            // Without an Event, the status says which callback it is.
            let e = normalize(&format!("{CALL}&CallStatus={name}"));
            assert_eq!(
                (e.kind, e.outcome, e.is_final),
                (*kind, *outcome, *kind == Ended),
                "{name}"
            );
            assert_eq!(e.direction, Some(Direction::Inbound));
            assert_eq!(e.call_id.as_deref(), Some("plivo#c1"));
            assert!(e.review.is_none(), "{name}");
            // With Event=Hangup, the status gives the outcome.
            if *kind == Ended {
                let e = normalize(&format!("{CALL}&Event=Hangup&CallStatus={name}"));
                assert_eq!((e.outcome, e.is_final), (*outcome, true), "{name}");
            }
        }
        let unanswered = normalize(&format!(
            "{CALL}&Event=Hangup&CallStatus=no-answer&HangupCauseCode=3020&HangupCauseName=Ring+Timeout+Reached"
        ));
        assert_eq!(unanswered.outcome, Some(Outcome::NoAnswer));
        assert_eq!(unanswered.facts.answered_at, None);
        assert_eq!(
            unanswered.facts.hangup_cause.as_deref(),
            Some("Ring Timeout Reached (3020)")
        );
    }

    #[test]
    fn hangups_without_a_terminal_status_use_the_cause_code() {
        for (code, outcome) in [
            ("1000", Outcome::Canceled),
            ("2010", Outcome::Failed),
            ("4010", Outcome::Completed),
            ("3000", Outcome::Failed),
            ("x", Outcome::Failed),
        ] {
            let e = normalize(&format!(
                "{CALL}&Event=Hangup&CallStatus=in-progress&HangupCauseCode={code}"
            ));
            assert_eq!(e.outcome, Some(outcome), "{code}");
            assert!(e.is_final);
        }
        let e = normalize(&format!("{CALL}&Event=Hangup"));
        assert_eq!(e.outcome, Some(Outcome::Failed));
    }

    #[test]
    fn dedupe_keys_identify_one_callback() {
        let a = normalize(&format!("{CALL}&Event=StartApp&CallStatus=in-progress"));
        assert_eq!(
            a.event_id,
            normalize("Direction=inbound&Event=StartApp&CallStatus=in-progress&CallUUID=c1")
                .event_id
        );
        assert_ne!(
            a.event_id,
            normalize(&format!("{CALL}&Event=Hangup&CallStatus=in-progress")).event_id
        );
        let dial1 = normalize(&format!(
            "{CALL}&CallStatus=in-progress&DialStatus=completed&DialBLegUUID=b1"
        ));
        let dial2 = normalize(&format!(
            "{CALL}&CallStatus=in-progress&DialStatus=no-answer&DialBLegUUID=b2"
        ));
        assert_eq!((dial1.kind, dial1.event_type.as_str()), (Progress, "Dial"));
        assert_ne!(dial1.event_id, dial2.event_id);
        let rec = normalize(&format!(
            "{CALL}&RecordUrl=https%3A%2F%2Fmedia.plivo.com%2Fr1.mp3&RecordingID=r1&RecordingDuration=12"
        ));
        assert_eq!((rec.kind, rec.event_type.as_str()), (Report, "Record"));
        assert_eq!(
            rec.facts.recording_url.as_deref(),
            Some("https://media.plivo.com/r1.mp3")
        );
    }

    #[test]
    fn unknown_and_malformed_are_kept_for_review() {
        let e = normalize(&format!("{CALL}&Event=Teleport&CallStatus=in-progress"));
        assert_eq!(e.kind, Unknown);
        assert_eq!(e.review.unwrap().reason, "unknown_type");
        let e = normalize(&format!("{CALL}&CallStatus=on-hold"));
        assert_eq!(e.kind, Unknown);
        assert!(e.review.unwrap().detail.contains("on-hold"));
        for body in [
            "",
            "CallStatus=completed",
            CALL,
            "CallUUID=c1&CallStatus=%FF",
            "{}",
            "\u{0}",
        ] {
            let e = normalize(body);
            assert_eq!(e.review.as_ref().unwrap().reason, "malformed", "{body}");
            assert!(e.event_id.starts_with("plivo#"));
        }
    }

    #[test]
    fn plivo_times_parse() {
        let f = |v: &str| time(&Form::from_pairs(vec![("T".into(), v.into())]), "T");
        let t = Utc.timestamp_opt(NOW, 0).unwrap();
        assert_eq!(f("2023-11-14 22:13:20"), Some(t));
        assert_eq!(
            f("2023-11-14 22:13:20.5"),
            Some(t + chrono::Duration::milliseconds(500))
        );
        assert_eq!(f("2023-11-15 03:43:20+05:30"), Some(t));
        assert_eq!(f("2023-11-14T22:13:20Z"), Some(t));
        assert_eq!(f("yesterday"), None);
    }
}
