//! Property tests over every provider in [`CONSTRUCTORS`], each configured by its own dev signer
//! made from [`FIXTURE_SEED`]: what the signer signs verifies, and any change to a signed part —
//! the body, the URL, the timestamp, the signature or the path token — does not; normalizing
//! never panics and always keys the event under the provider's name.
//!
//! Form bodies (Twilio) are signed as their decoded parameters, not their bytes: a change that
//! leaves the decoded, sorted parameters equal (`%2b` for `%2B`; Twilio drops identical pairs,
//! so `a=1&a=1&a=2` and `a=1&a=2&a=2` are one request) is the same request and may pass; every
//! other change must fail ([`same_signed_form`]).
//!
//! Vapi is tested in both of its modes: HMAC (its dev signer) and a token in a header; a
//! signed time may sit in its own header or inside the signature header (`t=`, `v=`).

use std::sync::OnceLock;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, TimeZone, Utc};
use proptest::prelude::*;
use serde_json::{Map, Value};

use super::form::Form;
use super::{CONSTRUCTORS, Delivery, DevSigner, FIXTURE_SEED, FromEnv, Headers, Provider, Signed};
use crate::config::Env;
use crate::signing::{self as verify, AuthError};

/// Providers whose signature covers no time at all (dedupe is their replay protection).
const UNTIMED: &[&str] = &["twilio", "plivo"];
/// Providers that sign form parameters only: bytes that are not form encoding cannot be
/// signed (they are refused as such, `AuthError::BadBody`).
const FORM_ONLY: &[&str] = &["plivo"];
/// Providers whose signed time is a claim inside a bearer token (Vonage's JWT `iat`), not a
/// header of its own: [`signing_time_matters_exactly_where_a_time_is_signed`] covers it.
const TIMED_IN_TOKEN: &[&str] = &["vonage"];

struct Case {
    name: &'static str,
    provider: Box<dyn Provider>,
    signer: Box<dyn DevSigner>,
    /// Authenticated by a secret token in a header (it binds neither body nor time).
    header_token: bool,
}

impl Case {
    fn new(
        name: &'static str,
        from_env: FromEnv,
        signer: Box<dyn DevSigner>,
        header_token: bool,
    ) -> Case {
        let env = Env::from_pairs(signer.verifier_env());
        let provider = from_env(&env)
            .expect("dev signer env is valid")
            .expect("dev signer env configures the provider");
        Case {
            name,
            provider,
            signer,
            header_token,
        }
    }
}

/// Built once: the Recho dev key takes a moment to make. The first cases are
/// [`CONSTRUCTORS`]' in their order; other modes of a provider follow.
fn cases() -> &'static [Case] {
    static CASES: OnceLock<Vec<Case>> = OnceLock::new();
    CASES.get_or_init(|| {
        let mut cases: Vec<Case> = CONSTRUCTORS
            .iter()
            .map(|entry| {
                let signer = (entry.dev_signer)(&FIXTURE_SEED);
                Case::new(entry.name, entry.from_env, signer, false)
            })
            .collect();
        cases.push(Case::new(
            super::vapi::NAME,
            super::vapi::Vapi::from_env,
            super::vapi::token_signer(&FIXTURE_SEED),
            true,
        ));
        cases
    })
}

const NOW: i64 = 1_750_000_000;
const URL: &str = "https://hooks.example.com/webhooks/provider";

fn now() -> DateTime<Utc> {
    Utc.timestamp_opt(NOW, 0).unwrap()
}

fn headers_of(signed: &Signed) -> Headers {
    signed
        .headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.clone()))
        .collect()
}

fn check(case: &Case, headers: &Headers, body: &[u8], token: Option<&str>) -> bool {
    verdict(case, URL, headers, body, token).is_ok()
}

fn verdict(
    case: &Case,
    url: &str,
    headers: &Headers,
    body: &[u8],
    token: Option<&str>,
) -> Result<(), AuthError> {
    case.provider.verify(&Delivery {
        headers,
        body,
        path_token: token,
        request_url: Some(url),
        received_at: now(),
    })
}

/// The URL a signed delivery goes to.
fn url_of(signed: &Signed) -> &str {
    signed.url.as_deref().unwrap_or(URL)
}

/// Whether `a` and `b`, signed by `case` as form parameters (no URL change), are the same
/// signed parameters: the only way a changed body may still verify.
fn same_signed_form(case: &Case, signed: &Signed, a: &[u8], b: &[u8]) -> bool {
    if signed.url.is_some() {
        return false;
    }
    let (Ok(a), Ok(b)) = (Form::parse(a), Form::parse(b)) else {
        return false;
    };
    match case.name {
        "twilio" => a.sorted_unique() == b.sorted_unique(),
        "plivo" => a.sorted() == b.sorted(),
        _ => false,
    }
}

/// Whether `case` can sign `body` at all.
fn signable(case: &Case, body: &[u8]) -> bool {
    !FORM_ONLY.contains(&case.name) || Form::parse(body).is_ok()
}

/// `url` (or any ASCII text) with the byte at `at` replaced by `replacement` (printable ASCII).
fn changed_url(url: &str, at: prop::sample::Index, replacement: char) -> Option<String> {
    let i = at.index(url.len());
    if url.as_bytes()[i] == replacement as u8 {
        return None;
    }
    let mut changed = url.to_owned();
    changed.replace_range(i..=i, &replacement.to_string());
    Some(changed)
}

/// The signed header whose name contains `part`, if the provider signs with headers.
fn header_named(signed: &Signed, part: &str) -> Option<String> {
    signed
        .headers
        .iter()
        .map(|(k, _)| k.to_ascii_lowercase())
        .find(|k| k.contains(part))
}

/// The delivery's headers with its signed time moved by `delta`: a header named `…timestamp…`
/// (seconds or milliseconds, moved in its own unit), else the `t=` / `v=` item of a
/// `key=value,…` signature header (ElevenLabs seconds, Retell milliseconds). `None` when
/// nothing signed is a time.
fn shifted_timestamp(signed: &Signed, delta: i64) -> Option<Headers> {
    let headers = headers_of(signed);
    if let Some(name) = header_named(signed, "timestamp") {
        let value: i64 = headers.get(&name)?.parse().ok()?;
        return Some(replaced(&headers, &name, (value + delta).to_string()));
    }
    let name = header_named(signed, "signature")?;
    let value = headers.get(&name)?;
    let shifted = value
        .split(',')
        .map(|item| match item.split_once('=') {
            Some((key @ ("t" | "v"), n)) => match n.parse::<i64>() {
                Ok(n) => format!("{key}={}", n + delta),
                Err(_) => item.to_owned(),
            },
            _ => item.to_owned(),
        })
        .collect::<Vec<_>>()
        .join(",");
    (shifted != value).then(|| replaced(&headers, &name, shifted))
}

/// A signature header's value with one byte of the signature changed: the hex `d=` / `v0=`
/// item of a `key=value,…` header (Retell, ElevenLabs), bare hex (Vapi), a Standard Webhooks
/// `v1,<base64>` entry, or bare base64 (the others).
fn changed_signature(value: &str, at: prop::sample::Index, mask: u8) -> String {
    let flip = |mut bytes: Vec<u8>| {
        let i = at.index(bytes.len());
        bytes[i] ^= mask;
        bytes
    };
    let hex = |s: &str| s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit());
    let items: Vec<&str> = value.split(',').collect();
    if items
        .iter()
        .any(|i| i.starts_with("d=") || i.starts_with("v0="))
    {
        return items
            .iter()
            .map(|item| match item.split_once('=') {
                Some((key @ ("d" | "v0"), digest)) => {
                    let changed = flip(verify::decode_hex("signature", digest).unwrap());
                    format!("{key}={}", verify::to_hex(&changed))
                }
                _ => (*item).to_owned(),
            })
            .collect::<Vec<_>>()
            .join(",");
    }
    if hex(value) {
        return verify::to_hex(&flip(verify::decode_hex("signature", value).unwrap()));
    }
    let (prefix, encoded) = match value.split_once(',') {
        Some((version, encoded)) => (format!("{version},"), encoded),
        None => (String::new(), value),
    };
    let changed = flip(verify::decode_b64("signature", encoded).unwrap());
    format!("{prefix}{}", verify::encode_b64(&changed))
}

/// The token of an `authorization: Bearer …` header.
fn bearer_token(headers: &Headers) -> Option<String> {
    headers
        .get("authorization")?
        .strip_prefix("Bearer ")
        .map(str::to_owned)
}

fn replaced(headers: &Headers, name: &str, value: String) -> Headers {
    headers
        .iter()
        .map(|(k, v)| {
            if k == name {
                (k, value.clone())
            } else {
                (k, v.to_owned())
            }
        })
        .collect()
}

/// Names and values of form parameters: often the telephony providers' own, sometimes
/// anything (the serializer encodes it).
fn form_text() -> impl Strategy<Value = String> {
    const WORDS: &[&str] = &[
        "CallSid",
        "CallStatus",
        "CallUUID",
        "Event",
        "Hangup",
        "SequenceNumber",
        "Timestamp",
        "completed",
        "in-progress",
        "+14155550100",
        "Tue, 14 Nov 2023 22:13:20 +0000",
        "a",
        "",
    ];
    prop_oneof![
        3 => proptest::sample::select(WORDS).prop_map(str::to_owned),
        1 => any::<String>(),
    ]
}

/// JSON values of any shape, with keys and strings drawn often from the providers' own
/// vocabulary so that normalizers get past their first checks.
fn json_value() -> impl Strategy<Value = Value> {
    const WORDS: &[&str] = &[
        "event",
        "eventType",
        "type",
        "data",
        "payload",
        "body",
        "id",
        "call",
        "call_id",
        "call_sid",
        "callId",
        "callSid",
        "callStatus",
        "voice_session_id",
        "created_at",
        "occurred_at",
        "updatedAt",
        "startedAt",
        "endedAt",
        "status",
        "errors",
        "report",
        "reAttemptCount",
        "metadata",
        "analysis",
        "credits",
        "escalated",
        "direction",
        "event_type",
        "call_session_id",
        "hangup_cause",
        "timestamp",
        "duration",
        "durationSeconds",
        "duration_seconds",
        "projectId",
        "call.hangup",
        "call.ended",
        "call.lifecycle-ended",
        "end-of-call",
        "send_whatsapp",
        "voice.inbound",
        "voice.outbound",
        "completed",
        "no-answer",
        "OUTBOUND_CALL_COMPLETED",
        "INBOUND_CALL_ERROR",
        "voice.call.completed",
        "voice.webhook.delivery_failed",
        "message",
        "conversation_id",
        "event_timestamp",
        "call_started",
        "call_ended",
        "call_analyzed",
        "transcript_updated",
        "disconnection_reason",
        "start_timestamp",
        "end_timestamp",
        "duration_ms",
        "post_call_transcription",
        "call_initiation_failure",
        "post_call_audio",
        "failure_reason",
        "status-update",
        "end-of-call-report",
        "endedReason",
        "in-progress",
        "customer-ended-call",
        "2024-01-01T00:00:00Z",
        "inbound",
        "",
    ];
    let word = proptest::sample::select(WORDS).prop_map(str::to_owned);
    let text = prop_oneof![3 => word.clone(), 1 => any::<String>()];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        text.clone().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::vec((text.clone(), inner), 0..6)
                .prop_map(|pairs| Value::Object(pairs.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// A raw provider body under `events/{provider}/bodies/`: JSON (`.json`) or the exact bytes of
/// a form body (`.txt`).
#[derive(Debug, Clone)]
enum Fixture {
    Json(Value),
    Form(Vec<(String, String)>),
}

impl Fixture {
    fn to_bytes(&self) -> Vec<u8> {
        match self {
            Fixture::Json(value) => serde_json::to_vec(value).unwrap(),
            Fixture::Form(pairs) => form_urlencoded::Serializer::new(String::new())
                .extend_pairs(pairs)
                .finish()
                .into_bytes(),
        }
    }
}

/// One raw provider body: (provider index, file name, the exact bytes, parsed).
type FixtureBody = (usize, String, Vec<u8>, Fixture);

/// The raw provider bodies under `events/{provider}/bodies/`.
fn fixture_bodies() -> &'static [FixtureBody] {
    static BODIES: OnceLock<Vec<FixtureBody>> = OnceLock::new();
    BODIES.get_or_init(|| {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../events");
        let mut bodies = Vec::new();
        for (i, entry) in CONSTRUCTORS.iter().enumerate() {
            let Ok(dir) = std::fs::read_dir(root.join(entry.name).join("bodies")) else {
                continue;
            };
            let mut files: Vec<_> = dir.flatten().map(|f| f.path()).collect();
            files.sort();
            for path in files {
                let bytes = std::fs::read(&path).unwrap();
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                let parsed = if name.ends_with(".txt") {
                    let form = Form::parse(&bytes)
                        .unwrap_or_else(|_| panic!("{}: not form encoding", path.display()));
                    Fixture::Form(form.pairs().to_vec())
                } else {
                    Fixture::Json(
                        serde_json::from_slice(&bytes)
                            .unwrap_or_else(|e| panic!("{}: {e}", path.display())),
                    )
                };
                bodies.push((i, name, bytes, parsed));
            }
        }
        bodies
    })
}

/// Every JSON pointer inside `value` (the root is "").
fn pointers(value: &Value, at: String, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let escaped = k.replace('~', "~0").replace('/', "~1");
                pointers(v, format!("{at}/{escaped}"), out);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                pointers(v, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
    out.push(at);
}

/// A real provider body with one part (any depth, or one form parameter's name or value)
/// replaced by an arbitrary value: reaches the normalizers' deeper branches far more often
/// than arbitrary input does.
fn mutated_fixture() -> impl Strategy<Value = (usize, Vec<u8>)> {
    let count = fixture_bodies().len().max(1);
    (
        0..count,
        any::<prop::sample::Index>(),
        json_value(),
        form_text(),
        any::<bool>(),
    )
        .prop_map(|(i, at, replacement, text, name)| {
            let Some((provider, _, _, body)) = fixture_bodies().get(i) else {
                return (0, serde_json::to_vec(&replacement).unwrap());
            };
            let mut body = body.clone();
            match &mut body {
                Fixture::Json(value) => {
                    let mut all = Vec::new();
                    pointers(value, String::new(), &mut all);
                    let target = &all[at.index(all.len())];
                    if let Some(slot) = value.pointer_mut(target) {
                        *slot = replacement;
                    }
                }
                Fixture::Form(pairs) if !pairs.is_empty() => {
                    let i = at.index(pairs.len());
                    let pair = &mut pairs[i];
                    if name { pair.0 = text } else { pair.1 = text }
                }
                Fixture::Form(_) => {}
            }
            (*provider, body.to_bytes())
        })
}

fn normalizes_sanely(case: &Case, body: &[u8]) -> Result<(), TestCaseError> {
    let signed = case.signer.sign(body, NOW, URL);
    let headers = headers_of(&signed);
    let event = case.provider.normalize(&Delivery {
        headers: &headers,
        body,
        path_token: signed.path_token.as_deref(),
        request_url: Some(URL),
        received_at: now(),
    });
    let prefix = format!("{}#", case.name);
    prop_assert!(event.event_id.starts_with(&prefix), "{}", event.event_id);
    prop_assert!(event.event_id.len() > prefix.len());
    prop_assert_eq!(&event.provider, case.name);
    if let Some(call_id) = &event.call_id {
        prop_assert!(call_id.starts_with(&prefix), "{}", call_id);
    }
    prop_assert!(serde_json::to_string(&event).is_ok());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn any_changed_body_byte_is_rejected(
        body in proptest::collection::vec(any::<u8>(), 1..400),
        at in any::<prop::sample::Index>(),
        mask in 1u8..=255,
    ) {
        for case in cases() {
            let signed = case.signer.sign(&body, NOW, URL);
            if signed.path_token.is_some() || case.header_token {
                continue; // a token authenticates the sender, not the bytes
            }
            if !signable(case, &body) {
                let headers = headers_of(&signed);
                prop_assert_eq!(
                    verdict(case, URL, &headers, &body, None),
                    Err(AuthError::BadBody("form encoding")),
                    "{}", case.name
                );
                continue;
            }
            let headers = headers_of(&signed);
            let url = url_of(&signed);
            prop_assert_eq!(verdict(case, url, &headers, &body, None), Ok(()), "{} rejects its own signature", case.name);
            let mut tampered = body.clone();
            tampered[at.index(body.len())] ^= mask;
            if verdict(case, url, &headers, &tampered, None).is_ok() {
                prop_assert!(same_signed_form(case, &signed, &body, &tampered), "{} accepted a changed body", case.name);
            }
        }
    }

    #[test]
    fn any_changed_form_byte_is_rejected_unless_the_parameters_are_the_same(
        params in proptest::collection::vec((form_text(), form_text()), 1..8),
        at in any::<prop::sample::Index>(),
        mask in 1u8..=255,
    ) {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&params)
            .finish()
            .into_bytes();
        for case in cases().iter().filter(|c| !c.header_token) {
            let signed = case.signer.sign(&body, NOW, URL);
            if signed.path_token.is_some() {
                continue;
            }
            let headers = headers_of(&signed);
            let url = url_of(&signed);
            prop_assert_eq!(verdict(case, url, &headers, &body, None), Ok(()), "{} rejects its own signature", case.name);
            let mut tampered = body.clone();
            tampered[at.index(body.len())] ^= mask;
            if verdict(case, url, &headers, &tampered, None).is_ok() {
                prop_assert!(
                    same_signed_form(case, &signed, &body, &tampered),
                    "{} accepted {:?} for {:?}", case.name,
                    String::from_utf8_lossy(&tampered), String::from_utf8_lossy(&body)
                );
            }
        }
    }

    #[test]
    fn any_changed_url_byte_is_rejected_where_the_url_is_signed(
        body in proptest::collection::vec(any::<u8>(), 0..64),
        at in any::<prop::sample::Index>(),
        replacement in proptest::char::range(' ', '~'),
    ) {
        for case in cases() {
            let signed = case.signer.sign(&body, NOW, URL);
            let elsewhere = case.signer.sign(&body, NOW, "https://other.example.com/hooks");
            if signed.headers == elsewhere.headers || !signable(case, &body) {
                continue; // the URL is not signed, or nothing is
            }
            let headers = headers_of(&signed);
            let url = url_of(&signed);
            prop_assert_eq!(verdict(case, url, &headers, &body, None), Ok(()), "{} rejects its own signature", case.name);
            let Some(changed) = changed_url(url, at, replacement) else { continue };
            prop_assert!(
                verdict(case, &changed, &headers, &body, None).is_err(),
                "{} accepted {} for {}", case.name, changed, url
            );
        }
    }

    #[test]
    fn any_changed_timestamp_is_rejected(
        body in proptest::collection::vec(any::<u8>(), 0..64),
        delta in prop_oneof![-200_000i64..0, 1i64..200_000],
    ) {
        for case in cases().iter().filter(|c| !c.header_token) {
            let signed = case.signer.sign(&body, NOW, URL);
            let Some(headers) = shifted_timestamp(&signed, delta) else {
                prop_assert!(
                    signed.path_token.is_some()
                        || UNTIMED.contains(&case.name)
                        || TIMED_IN_TOKEN.contains(&case.name),
                    "{} signs without a timestamp", case.name
                );
                continue;
            };
            prop_assert!(!check(case, &headers, &body, None), "{} accepted timestamp {delta:+}", case.name);
        }
    }

    #[test]
    fn any_changed_nonce_byte_is_rejected(
        params in proptest::collection::vec((form_text(), form_text()), 0..4),
        at in any::<prop::sample::Index>(),
        replacement in proptest::char::range(' ', '~'),
    ) {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&params)
            .finish()
            .into_bytes();
        for case in cases() {
            let signed = case.signer.sign(&body, NOW, URL);
            let Some(name) = header_named(&signed, "nonce") else { continue };
            let headers = headers_of(&signed);
            let url = url_of(&signed);
            prop_assert_eq!(verdict(case, url, &headers, &body, None), Ok(()));
            let nonce = headers.get(&name).unwrap().to_owned();
            let Some(changed) = changed_url(&nonce, at, replacement) else { continue };
            let headers = replaced(&headers, &name, changed.clone());
            prop_assert!(verdict(case, url, &headers, &body, None).is_err(), "{} accepted nonce {changed}", case.name);
        }
    }

    #[test]
    fn signing_time_matters_exactly_where_a_time_is_signed(
        body in proptest::collection::vec(any::<u8>(), 0..64),
        delta in prop_oneof![-400_000i64..-86_400, 86_401i64..400_000],
    ) {
        for case in cases().iter().filter(|c| !c.header_token) {
            let signed = case.signer.sign(&body, NOW + delta, URL);
            if signed.path_token.is_some() {
                continue;
            }
            let verdict = verdict(case, url_of(&signed), &headers_of(&signed), &body, None);
            if UNTIMED.contains(&case.name) {
                prop_assert!(verdict.is_ok() || matches!(verdict, Err(AuthError::BadBody(_))), "{}: {verdict:?}", case.name);
            } else {
                prop_assert!(verdict.is_err(), "{} accepted a signature made {delta:+} s away", case.name);
            }
        }
    }

    #[test]
    fn any_changed_signature_byte_is_rejected(
        body in proptest::collection::vec(any::<u8>(), 0..64),
        at in any::<prop::sample::Index>(),
        mask in 1u8..=255,
    ) {
        for case in cases().iter().filter(|c| !c.header_token) {
            let signed = case.signer.sign(&body, NOW, URL);
            let headers = headers_of(&signed);
            let url = url_of(&signed);
            let (name, changed) = if let Some(name) = header_named(&signed, "signature") {
                let changed = changed_signature(headers.get(&name).unwrap(), at, mask);
                (name, changed)
            } else if let Some(token) = bearer_token(&headers) {
                // A JWT: its third segment is the base64url MAC.
                let (input, mac) = token.rsplit_once('.').unwrap();
                let mut decoded = URL_SAFE_NO_PAD.decode(mac).unwrap();
                let i = at.index(decoded.len());
                decoded[i] ^= mask;
                ("authorization".to_owned(), format!("Bearer {input}.{}", URL_SAFE_NO_PAD.encode(decoded)))
            } else {
                prop_assert!(signed.path_token.is_some(), "{} signs without a signature", case.name);
                continue;
            };
            let headers = replaced(&headers, &name, changed);
            prop_assert!(verdict(case, url, &headers, &body, None).is_err(), "{} accepted a changed signature", case.name);
        }
    }

    #[test]
    fn any_changed_bearer_token_byte_is_rejected(
        body in proptest::collection::vec(any::<u8>(), 0..64),
        at in any::<prop::sample::Index>(),
        replacement in proptest::sample::select(
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.".to_vec()
        ),
    ) {
        for case in cases() {
            let signed = case.signer.sign(&body, NOW, URL);
            let headers = headers_of(&signed);
            let Some(token) = bearer_token(&headers) else { continue };
            prop_assert_eq!(verdict(case, URL, &headers, &body, None), Ok(()));
            let i = at.index(token.len());
            prop_assume!(token.as_bytes()[i] != replacement);
            let mut changed = token.to_owned();
            changed.replace_range(i..=i, &(replacement as char).to_string());
            let headers = replaced(&headers, "authorization", format!("Bearer {changed}"));
            prop_assert!(verdict(case, URL, &headers, &body, None).is_err(), "{} accepted {changed}", case.name);
        }
    }

    #[test]
    fn any_changed_path_token_byte_is_rejected(
        at in any::<prop::sample::Index>(),
        replacement in proptest::char::range(' ', '~'),
    ) {
        for case in cases() {
            let signed = case.signer.sign(b"{}", NOW, URL);
            let Some(token) = signed.path_token.as_deref() else { continue };
            let headers = headers_of(&signed);
            prop_assert!(check(case, &headers, b"{}", Some(token)), "{} rejects its token", case.name);
            let i = at.index(token.len());
            prop_assume!(token.as_bytes()[i] != replacement as u8);
            let mut changed = token.to_owned();
            changed.replace_range(i..=i, &replacement.to_string());
            prop_assert!(!check(case, &headers, b"{}", Some(&changed)), "{} accepted token {changed}", case.name);
            prop_assert!(!check(case, &headers, b"{}", Some(&token[..i])), "{} accepted a prefix", case.name);
        }
    }

    #[test]
    fn any_changed_header_token_byte_is_rejected(
        at in any::<prop::sample::Index>(),
        replacement in proptest::char::range(' ', '~'),
    ) {
        for case in cases().iter().filter(|c| c.header_token) {
            let signed = case.signer.sign(b"{}", NOW, URL);
            let (name, token) = &signed.headers[0];
            let headers = headers_of(&signed);
            prop_assert!(check(case, &headers, b"{}", None), "{} rejects its token", case.name);
            let i = at.index(token.len());
            prop_assume!(token.as_bytes()[i] != replacement as u8);
            let mut changed = token.clone();
            changed.replace_range(i..=i, &replacement.to_string());
            let with = |value: String| replaced(&headers, name, value);
            prop_assert!(!check(case, &with(changed.clone()), b"{}", None), "{} accepted token {changed}", case.name);
            prop_assert!(!check(case, &with(token[..i].to_owned()), b"{}", None), "{} accepted a prefix", case.name);
            prop_assert!(!check(case, &Headers::new(), b"{}", None), "{} accepted no token", case.name);
        }
    }

    #[test]
    fn verify_never_panics_on_arbitrary_headers(
        body in proptest::collection::vec(any::<u8>(), 0..64),
        values in proptest::collection::vec(any::<String>(), 4),
        token in proptest::option::of(any::<String>()),
    ) {
        for case in cases() {
            let signed = case.signer.sign(&body, NOW, URL);
            let mut headers = Headers::new();
            for ((name, _), value) in signed.headers.iter().zip(&values) {
                headers.insert(name, value.clone());
            }
            headers.insert("authorization", values[3].clone());
            let _ = check(case, &headers, &body, token.as_deref());
        }
    }

    #[test]
    fn normalize_never_panics_on_arbitrary_bytes(
        body in proptest::collection::vec(any::<u8>(), 0..600),
    ) {
        for case in cases() {
            normalizes_sanely(case, &body)?;
        }
    }

    #[test]
    fn normalize_never_panics_on_arbitrary_json(value in json_value()) {
        let body = serde_json::to_vec(&value).unwrap();
        for case in cases() {
            normalizes_sanely(case, &body)?;
        }
    }
    #[test]
    fn normalize_never_panics_on_mutated_provider_bodies((provider, body) in mutated_fixture()) {
        normalizes_sanely(&cases()[provider], &body)?;
    }
}

/// The raw bodies in `events/`: each normalizes without review except the unknown types,
/// and each numbered sequence is one call that ends with its terminal fact.
#[test]
fn fixture_bodies_normalize() {
    let bodies = fixture_bodies();
    for entry in [
        "bird",
        "recho",
        "miraiminds",
        "stateset",
        "retell",
        "elevenlabs",
        "vapi",
        "twilio",
        "vonage",
        "plivo",
    ] {
        assert!(
            bodies.iter().any(|(i, ..)| CONSTRUCTORS[*i].name == entry),
            "no bodies for {entry}"
        );
    }
    let mut sequences: std::collections::BTreeMap<
        String,
        Vec<crate::domain::event::CanonicalEvent>,
    > = Default::default();
    for (i, name, body, _) in bodies {
        let case = &cases()[*i];
        let headers = Headers::new();
        let event = case.provider.normalize(&Delivery {
            headers: &headers,
            body,
            path_token: None,
            request_url: None,
            received_at: now(),
        });
        let review = event.review.as_ref().map(|r| r.reason.to_string());
        let review = review.as_deref();
        match name.as_str() {
            "unknown-type.json" => assert_eq!(review, Some("unknown_type"), "{}/{name}", case.name),
            "delivery-failed.json" => {
                assert_eq!(
                    review,
                    Some("provider_delivery_failed"),
                    "{}/{name}",
                    case.name
                )
            }
            _ if case.name == "telnyx" || case.name == "standard" => {}
            _ => {
                assert_eq!(review, None, "{}/{name}", case.name);
                // `outbound-retry-03-…` belongs to the sequence `outbound-retry`.
                let sequence: Vec<&str> = name
                    .split('-')
                    .take_while(|part| !part.bytes().all(|b| b.is_ascii_digit()))
                    .collect();
                let sequence = sequence.join("-");
                sequences
                    .entry(format!("{}/{sequence}", case.name))
                    .or_default()
                    .push(event);
            }
        }
    }
    for (sequence, events) in &sequences {
        let calls: std::collections::BTreeSet<_> =
            events.iter().filter_map(|e| e.call_id.as_deref()).collect();
        assert_eq!(calls.len(), 1, "{sequence}: {calls:?}");
        let ids: std::collections::BTreeSet<_> = events.iter().map(|e| &e.event_id).collect();
        assert_eq!(
            ids.len(),
            events.len(),
            "{sequence}: two facts share an event id"
        );
        assert_eq!(
            events.iter().filter(|e| e.is_final).count(),
            1,
            "{sequence}"
        );
        let terminal = events.iter().position(|e| e.is_final).unwrap();
        // A terminal fact may leave the outcome to an ended fact before it (Vonage's
        // `completed` after `timeout`): the reducer keeps that one.
        assert!(
            events[terminal].outcome.is_some()
                || events[..terminal]
                    .iter()
                    .any(|e| e.kind == crate::domain::event::Kind::Ended && e.outcome.is_some()),
            "{sequence}: terminal fact without outcome"
        );
        // In any order the reducer makes the same final record of them.
        let (forward, _) = crate::domain::call::apply_all(events);
        let backward: Vec<_> = events.iter().rev().cloned().collect();
        let (backward, _) = crate::domain::call::apply_all(&backward);
        let (forward, backward) = (forward.unwrap(), backward.unwrap());
        assert!(
            forward.is_final() && forward.outcome.is_some(),
            "{sequence}"
        );
        assert_eq!(forward, backward, "{sequence}");
        // Only enrichment (reports) may follow the terminal fact.
        for late in &events[terminal + 1..] {
            assert_eq!(
                late.kind,
                crate::domain::event::Kind::Report,
                "{sequence}: {}",
                late.event_type
            );
        }
    }
    assert!(sequences.len() >= 17, "{sequences:?}");
}

/// The voice-AI providers' whole calls in `events/{provider}/bodies/`, applied last fact
/// first, reconcile to the call each one describes and finalize once.
#[test]
fn voice_ai_fixture_calls_reconcile() {
    use crate::domain::call::{CallStatus, Effect, apply_all};
    use crate::domain::event::Outcome;
    let calls = [
        ("retell", "outbound", Outcome::Completed, true),
        ("retell", "no-answer", Outcome::NoAnswer, false),
        ("retell", "transfer", Outcome::Escalated, true),
        ("elevenlabs", "inbound", Outcome::Escalated, true),
        ("elevenlabs", "outbound", Outcome::Completed, true),
        ("elevenlabs", "no-answer", Outcome::NoAnswer, false),
        ("vapi", "inbound", Outcome::Completed, true),
        ("vapi", "outbound", Outcome::Completed, true),
        ("vapi", "no-answer", Outcome::NoAnswer, false),
    ];
    // Every numbered call of these providers' fixtures has its row: none is skipped silently.
    for (i, name, ..) in fixture_bodies().iter() {
        let provider = CONSTRUCTORS[*i].name;
        if !["retell", "elevenlabs", "vapi"].contains(&provider) {
            continue;
        }
        // `{sequence}-{NN}-{event}.json`: the sequence is what comes before the number.
        let parts: Vec<&str> = name.split('-').collect();
        let numbered = |p: &&str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
        let Some(at) = parts.iter().position(numbered) else {
            continue;
        };
        let sequence = parts[..at].join("-");
        assert!(
            calls
                .iter()
                .any(|(p, s, ..)| *p == provider && *s == sequence),
            "{provider}/{sequence} ({name}) has no row"
        );
    }
    for (provider, sequence, outcome, answered) in calls {
        let prefix = format!("{sequence}-");
        let events: Vec<_> = fixture_bodies()
            .iter()
            .filter(|(i, name, ..)| {
                CONSTRUCTORS[*i].name == provider
                    && name
                        .strip_prefix(&prefix)
                        .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
            })
            .map(|(i, _, body, _)| {
                cases()[*i].provider.normalize(&Delivery {
                    headers: &Headers::new(),
                    body,
                    path_token: None,
                    request_url: None,
                    received_at: now(),
                })
            })
            .rev()
            .collect();
        let name = format!("{provider}/{sequence}");
        assert!(events.len() > 1 || sequence == "no-answer", "{name}");
        let (record, effects) = apply_all(&events);
        let record = record.expect(&name);
        assert_eq!(record.outcome, Some(outcome), "{name}");
        assert_eq!(record.status, Some(CallStatus::Ended), "{name}");
        assert_eq!(record.event_count, events.len() as u64, "{name}");
        let finalized = effects
            .iter()
            .filter(|e| matches!(e, Effect::Finalize { .. }))
            .count();
        assert_eq!(finalized, 1, "{name}");
        assert_eq!(record.answered_at.is_some(), answered, "{name}");
        assert!(record.from.is_some() && record.to.is_some(), "{name}");
        if answered {
            assert!(record.duration_secs.unwrap() > 10, "{name}");
            assert!(record.transcript.is_some(), "{name}");
        } else {
            assert_eq!(record.duration_secs, Some(0), "{name}");
        }
    }
}

/// Redelivering the same bytes (a retry) always maps to the same event id.
#[test]
fn redelivery_keeps_the_event_id() {
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 64,
        ..ProptestConfig::default()
    });
    runner
        .run(&json_value(), |value| {
            let body = serde_json::to_vec(&value).unwrap();
            for case in cases() {
                let signed = case.signer.sign(&body, NOW, URL);
                let headers = headers_of(&signed);
                let at = |received_at| Delivery {
                    headers: &headers,
                    body: &body,
                    path_token: signed.path_token.as_deref(),
                    request_url: Some(URL),
                    received_at,
                };
                let first = case.provider.normalize(&at(now()));
                let retry = case
                    .provider
                    .normalize(&at(now() + chrono::Duration::hours(3)));
                prop_assert_eq!(first.event_id, retry.event_id, "{}", case.name);
            }
            Ok(())
        })
        .unwrap();
}
