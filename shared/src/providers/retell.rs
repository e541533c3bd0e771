//! Retell AI voice agents (account- or agent-level webhook URL).
//!
//! Authentication: `x-retell-signature: v=<Unix ms>,d=<hex>`, HMAC-SHA256 keyed with a Retell
//! API key (the one with the webhook badge: the whole string, no prefix handling) over the raw
//! body followed directly by the decimal `v` (no separator; the timestamp comes after the body).
//! The header is exactly `v=<digits>,d=<64 hex>` as in the SDKs (anchored: no prefix, suffix,
//! other order or extra item), so there is one signature per header; RETELL_API_KEYS lists
//! several keys for rotation. ±300 s (RETELL_TOLERANCE_SECS) on the milliseconds, both sides,
//! inclusive: +300000 ms passes, +300001 ms fails, as in the SDKs' tests.
//!
//! Envelope: `{"event":"<type>","call":{<call object>}}`; transfer events may carry
//! `transfer_destination` / `transfer_option` beside `call` (where they sit is not documented:
//! both places are read). Chat agents' events carry `chat`, not `call`: they are unknown types.
//!
//! Retell sends no event id and no event time in the body:
//! - dedupe key: `derived_key(call.call_id, event)` for `call_started`, `call_ended` and
//!   `call_analyzed`, which Retell sends once per call; a retry is signed again (another `v`),
//!   so nothing from the header is in the key. `transcript_updated` (every turn) and the
//!   `transfer_*` events (one per attempt) add the SHA-256 of the raw body; a retry that
//!   re-renders the body would then be stored twice, which for those facts changes nothing on
//!   the record. Unknown types are keyed like the repeatable ones.
//! - occurred_at: the call's own time for the fact where the body has one (`call_started`:
//!   `start_timestamp`, `call_ended`: `end_timestamp`, `transfer_ended`:
//!   `transfer_end_timestamp`), the same in every retry; otherwise the signature's `v` (when
//!   Retell sent the event; stored with the event, so replay gives the same time), else the
//!   receipt time. `call_analyzed` thus orders after `call_ended`.
//!
//! Call key: `call.call_id`.

use serde_json::{Value, json};

use super::{
    Delivery, Headers, Provider, ProviderEntry, integer_at, key_without_event_id, malformed,
    mark_unknown, millis_at, scoped_id, str_at,
};
#[cfg(any(test, feature = "dev"))]
use super::{DevSigner, Signed, sha256_hex};
use crate::config::{ConfigError, Env, vars};
use crate::domain::event::{CanonicalEvent, Direction, Facts, Kind, Outcome};
use crate::signing::{self as verify, AuthError};
use chrono::{DateTime, Utc};

pub const NAME: &str = "retell";
pub const SIGNATURE_HEADER: &str = "x-retell-signature";
const KEYS_VAR: &str = vars::RETELL_API_KEYS;

use Kind::*;

pub const ENTRY: ProviderEntry = ProviderEntry {
    name: NAME,
    from_env: Retell::from_env,
    normalizer,
    #[cfg(any(test, feature = "dev"))]
    dev_signer: |seed| Box::new(RetellSigner(dev_key(seed))),
};

/// Every Retell voice webhook event (`webhook_events` in the SDK's agent parameters) → kind,
/// whether it is the call's terminal fact, and whether it recurs within one call (then the
/// body's digest is part of the dedupe key).
pub const MAPPING: &[(&str, Kind, bool, bool)] = &[
    // Not sent when the call never connected (dial_busy, dial_no_answer, dial_failed).
    ("call_started", Answered, false, false),
    // Sent on completion, transfer and error; everything but call_analysis.
    ("call_ended", Ended, true, false),
    // The whole call with call_analysis, after the end.
    ("call_analyzed", Report, false, false),
    // Every turn, and once more when the call ends.
    ("transcript_updated", Progress, false, true),
    ("transfer_started", Progress, false, true),
    ("transfer_bridged", Progress, false, true),
    ("transfer_cancelled", Progress, false, true),
    ("transfer_ended", Progress, false, true),
];

/// `call.disconnection_reason` of `call_ended` → outcome: all 34 values of the SDK's
/// `PhoneCallResponse.disconnection_reason`. Any other `error_…` value is a failure; any other
/// value is not guessed: no outcome, the raw reason stays in `hangup_cause`.
pub const DISCONNECTION_REASONS: &[(&str, Outcome)] = &[
    ("user_hangup", Outcome::Completed),
    ("agent_hangup", Outcome::Completed),
    ("inactivity", Outcome::Completed),
    ("max_duration_reached", Outcome::Completed),
    ("voicemail_reached", Outcome::Voicemail),
    // A machine (IVR) answered: no conversation with a person, like voicemail.
    ("ivr_reached", Outcome::Voicemail),
    ("call_transfer", Outcome::Escalated),
    ("transfer_bridged", Outcome::Escalated),
    ("call_take_over", Outcome::Escalated),
    // The transfer to a person failed: the caller still wants one (ticketing follows up).
    ("transfer_cancelled", Outcome::Escalated),
    ("dial_busy", Outcome::Busy),
    ("dial_no_answer", Outcome::NoAnswer),
    ("user_declined", Outcome::NoAnswer),
    ("registered_call_timeout", Outcome::NoAnswer),
    ("manual_stopped", Outcome::Canceled),
    ("dial_failed", Outcome::Failed),
    ("invalid_destination", Outcome::Failed),
    ("telephony_provider_permission_denied", Outcome::Failed),
    ("telephony_provider_unavailable", Outcome::Failed),
    ("sip_routing_error", Outcome::Failed),
    ("marked_as_spam", Outcome::Failed),
    ("concurrency_limit_reached", Outcome::Failed),
    ("no_concurrency_fallback", Outcome::Failed),
    ("no_valid_payment", Outcome::Failed),
    ("scam_detected", Outcome::Failed),
    ("error_llm_websocket_open", Outcome::Failed),
    ("error_llm_websocket_lost_connection", Outcome::Failed),
    ("error_llm_websocket_runtime", Outcome::Failed),
    ("error_llm_websocket_corrupt_payload", Outcome::Failed),
    ("error_no_audio_received", Outcome::Failed),
    ("error_asr", Outcome::Failed),
    ("error_retell", Outcome::Failed),
    ("error_unknown", Outcome::Failed),
    ("error_user_not_joined", Outcome::Failed),
];

/// Prefixes that map reasons missing from [`DISCONNECTION_REASONS`] (e.g. the older
/// `error_inbound_webhook`).
pub const REASON_PREFIXES: &[(&str, Outcome)] = &[("error_", Outcome::Failed)];

/// The outcome of a disconnection reason; `None` for a reason nobody mapped.
pub fn disconnection_outcome(reason: &str) -> Option<Outcome> {
    DISCONNECTION_REASONS
        .iter()
        .find(|(r, _)| *r == reason)
        .or_else(|| REASON_PREFIXES.iter().find(|(p, _)| reason.starts_with(p)))
        .map(|(_, outcome)| *outcome)
}

pub struct Retell {
    keys: Vec<String>,
    tolerance_secs: u64,
}

impl Retell {
    pub fn from_env(env: &Env) -> Result<Option<Box<dyn Provider>>, ConfigError> {
        let keys = env.list(KEYS_VAR);
        if keys.is_empty() {
            return Ok(None);
        }
        Ok(Some(Box::new(Retell {
            keys: keys.into_iter().map(str::to_owned).collect(),
            tolerance_secs: env.tolerance_secs(vars::RETELL_TOLERANCE_SECS, 300)?,
        })))
    }
}

/// `v=<digits>,d=<64 hex>` → (v in ms, digest bytes), or `None` for any other shape.
fn parse_signature(value: &str) -> Option<(i64, Vec<u8>)> {
    let (v, d) = value.strip_prefix("v=")?.split_once(",d=")?;
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) || d.len() != 64 {
        return None;
    }
    Some((
        v.parse().ok()?,
        verify::decode_hex(SIGNATURE_HEADER, d).ok()?,
    ))
}

/// When Retell signed the delivery (the signature's `v`), if the header is there and valid.
fn signed_at(headers: &Headers) -> Option<DateTime<Utc>> {
    let (millis, _) = parse_signature(headers.get(SIGNATURE_HEADER)?)?;
    DateTime::from_timestamp_millis(millis)
}

/// The signature Retell sends for `body` at `millis` with `key`. The SDKs sign the decimal of
/// the parsed number, so a `v` with leading zeros is signed without them.
fn mac(key: &str, body: &[u8], millis: i64) -> [u8; 32] {
    verify::hmac_sha256(key.as_bytes(), &[body, millis.to_string().as_bytes()])
}

/// The provider for normalizing stored events: no credentials (it is wrapped so that it
/// verifies nothing).
fn normalizer(_env: &Env) -> Result<Box<dyn Provider>, ConfigError> {
    Ok(Box::new(Retell {
        keys: Vec::new(),
        tolerance_secs: 0,
    }))
}

impl Provider for Retell {
    fn name(&self) -> &'static str {
        NAME
    }

    fn signed_headers(&self) -> &'static [&'static str] {
        &[SIGNATURE_HEADER]
    }

    fn verify(&self, d: &Delivery<'_>) -> Result<(), AuthError> {
        let header = d.headers.require(SIGNATURE_HEADER)?;
        let (millis, presented) =
            parse_signature(header).ok_or(AuthError::Malformed(SIGNATURE_HEADER))?;
        verify::check_timestamp_millis(millis, d.received_at, self.tolerance_secs)?;
        let expected: Vec<[u8; 32]> = self.keys.iter().map(|k| mac(k, d.body, millis)).collect();
        if verify::matches_any(&presented, &expected) {
            Ok(())
        } else {
            Err(AuthError::BadSignature)
        }
    }

    fn normalize(&self, d: &Delivery<'_>) -> CanonicalEvent {
        let Ok(mut body) = serde_json::from_slice::<Value>(d.body) else {
            return malformed(NAME, d.body, d.received_at, "body is not JSON");
        };
        let Some(event_type) = str_at(&body, "/event") else {
            return malformed(NAME, d.body, d.received_at, "missing event");
        };
        let mapping = MAPPING.iter().find(|(t, ..)| *t == event_type);
        let call_key = str_at(&body, "/call/call_id");
        if mapping.is_some() && call_key.is_none() {
            return malformed(NAME, d.body, d.received_at, "missing call.call_id");
        }
        let once_per_call = matches!(mapping, Some((.., false)));
        let key = key_without_event_id(call_key, event_type, once_per_call, d.body);
        let mut event = CanonicalEvent::new(NAME, &key, event_type, d.received_at);
        event.call_id = call_key.map(|k| scoped_id(NAME, k));
        // A known event's data is its call object (with the transfer details found beside
        // it); an unknown one keeps the whole body for the person who reviews it.
        let data = match mapping {
            Some(_) => {
                let mut call = body
                    .get_mut("call")
                    .map(Value::take)
                    .filter(Value::is_object)
                    .unwrap_or_else(|| json!({}));
                if let Value::Object(map) = &mut call {
                    for name in ["transfer_destination", "transfer_option"] {
                        if let Some(value) = body.get(name).filter(|v| !v.is_null()) {
                            map.entry(name).or_insert_with(|| value.clone());
                        }
                    }
                }
                call
            }
            None => body.take(),
        };
        let call = match mapping {
            Some(_) => &data,
            None => data.get("call").unwrap_or(&Value::Null),
        };
        event.direction = str_at(call, "/direction").and_then(Direction::parse);
        event.from = str_at(call, "/from_number").map(str::to_owned);
        event.to = str_at(call, "/to_number").map(str::to_owned);

        let own_time = match event.event_type.as_str() {
            "call_started" => millis_at(call, "/start_timestamp"),
            "call_ended" => millis_at(call, "/end_timestamp"),
            "transfer_ended" => millis_at(call, "/transfer_end_timestamp"),
            _ => None,
        };
        event.occurred_at = own_time
            .or_else(|| signed_at(d.headers))
            .or_else(|| millis_at(call, "/end_timestamp"))
            .unwrap_or(d.received_at);

        match mapping {
            Some((_, kind, is_final, _)) => {
                event.kind = *kind;
                event.is_final = *is_final;
                fill_facts(&mut event, call);
            }
            None => mark_unknown(&mut event),
        }
        event.data = data;
        event
    }
}

/// Every event carries the call object as it is at that moment: its fields are the facts
/// (absent until Retell has them, e.g. `call_analysis` until `call_analyzed`).
fn fill_facts(event: &mut CanonicalEvent, call: &Value) {
    let ended = event.kind == Ended;
    let (outcome, facts) = call_facts(call, ended);
    event.facts = facts;
    if ended {
        event.outcome = outcome;
    }
}

/// The facts of a call object (webhook events and the get-call API share its shape), and when
/// `ended`, the outcome of its `disconnection_reason` (the raw reason in `hangup_cause`).
pub fn call_facts(call: &Value, ended: bool) -> (Option<Outcome>, Facts) {
    let mut facts = Facts {
        started_at: millis_at(call, "/start_timestamp"),
        ended_at: millis_at(call, "/end_timestamp"),
        duration_secs: integer_at(call, "/duration_ms")
            .and_then(|ms| u64::try_from(ms).ok())
            .map(|ms| ms.saturating_add(500) / 1000),
        recording_url: str_at(call, "/recording_url").map(str::to_owned),
        transcript: str_at(call, "/transcript").map(Value::from),
        analysis: call.get("call_analysis").filter(|v| v.is_object()).cloned(),
        cost: call.get("call_cost").filter(|v| !v.is_null()).cloned(),
        metadata: call
            .get("metadata")
            .filter(|m| m.as_object().is_some_and(|m| !m.is_empty()))
            .cloned(),
        ..Facts::default()
    };
    let mut outcome = None;
    if ended {
        let reason = str_at(call, "/disconnection_reason");
        outcome = reason.and_then(disconnection_outcome);
        facts.hangup_cause = reason.map(str::to_owned);
    }
    (outcome, facts)
}

#[cfg(any(test, feature = "dev"))]
/// The dev API key: `key_` and 32 hex characters derived from the seed with a domain tag.
fn dev_key(seed: &[u8; 32]) -> String {
    let digest = sha256_hex(&[b"callhook dev retell api key ".as_slice(), seed].concat());
    format!("key_{}", &digest[..32])
}

#[cfg(any(test, feature = "dev"))]
struct RetellSigner(String);

#[cfg(any(test, feature = "dev"))]
impl DevSigner for RetellSigner {
    fn verifier_env(&self) -> Vec<(&'static str, String)> {
        vec![(KEYS_VAR, self.0.clone())]
    }

    fn sign(&self, body: &[u8], timestamp: i64, _url: &str) -> Signed {
        let millis = timestamp.saturating_mul(1000);
        let digest = verify::to_hex(&mac(&self.0, body, millis));
        Signed {
            headers: vec![(
                SIGNATURE_HEADER.to_owned(),
                format!("v={millis},d={digest}"),
            )],
            path_token: None,
            url: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::FIXTURE_SEED;
    use crate::providers::derived_key;
    use chrono::TimeZone;

    /// R1: the SDKs' own test vector (retell-python-sdk tests/test_webhook_auth.py, identical
    /// in the TypeScript SDK).
    const R1_KEY: &str = "test-api-key";
    const R1_V: i64 = 1_700_000_000_000;
    const R1_BODY: &str = r#"{"event":"call_ended"}"#;
    const R1_DIGEST: &str = "07024cabe7dd8f6d1c6e4a8324ca92c812e6ad4a7ee506c04f7e462e3321823e";

    /// R2 and R3 (computed with the Retell SDK's verifier).
    const KEY: &str = "key_9f8e7d6c5b4a39281706f5e4d3c2b1a0";
    const R2_V: i64 = 1_714_608_492_512;
    const R2_BODY: &str = r#"{"event":"call_ended","call":{"call_type":"phone_call","from_number":"+14155550199","to_number":"+14155550123","direction":"outbound","call_id":"Jabr9TXYYJHfvl6Syypi88rdAHYHmcq6","agent_id":"oBeDLoLOeuAbiuaMFXRtDOLriTJ5tSxD","agent_version":3,"call_status":"ended","metadata":{"crm_lead_id":"L-1042"},"start_timestamp":1714608475945,"end_timestamp":1714608491736,"duration_ms":15791,"disconnection_reason":"user_hangup","transcript":"Agent: Hi, this is Ava from Acme Dental. User: Not interested, thanks.","telephony_identifier":{"twilio_call_sid":"CA0123456789abcdef0123456789abcdef"},"opt_out_sensitive_data_storage":false}}"#;
    const R2_SIG: &str =
        "v=1714608492512,d=fe5efe2dde44b6b83510fc27c28421a6155c71a1825d8d6ac9f3d2aeda5a33c5";
    const R3_V: i64 = 1_714_609_000_250;
    const R3_BODY: &str = r#"{"event":"call_ended","call":{"call_type":"phone_call","from_number":"+14155550199","to_number":"+14155550124","direction":"outbound","call_id":"c7Hq2LxV0aPzR4mN8sT1uW6yB3dF5gKj","agent_id":"oBeDLoLOeuAbiuaMFXRtDOLriTJ5tSxD","agent_version":3,"call_status":"not_connected","start_timestamp":1714608970101,"end_timestamp":1714608999877,"duration_ms":0,"disconnection_reason":"dial_no_answer"}}"#;
    const R3_SIG: &str =
        "v=1714609000250,d=6ce79ae3f27176e436738954f7b35daa5e846c2bd22f81b6510da652d6230e8c";

    fn provider(keys: &str) -> Box<dyn Provider> {
        Retell::from_env(&Env::from_pairs([(KEYS_VAR, keys)]))
            .unwrap()
            .unwrap()
    }

    fn headers(sig: &str) -> Headers {
        [(SIGNATURE_HEADER, sig)].into_iter().collect()
    }

    fn delivery<'a>(h: &'a Headers, body: &'a [u8], now_ms: i64) -> Delivery<'a> {
        Delivery {
            headers: h,
            body,
            path_token: None,
            request_url: None,
            received_at: Utc.timestamp_millis_opt(now_ms).unwrap(),
        }
    }

    fn check(keys: &str, sig: &str, body: &str, now_ms: i64) -> Result<(), AuthError> {
        let h = headers(sig);
        provider(keys).verify(&delivery(&h, body.as_bytes(), now_ms))
    }

    #[test]
    fn r1_sdk_vector_signs_and_verifies_within_the_inclusive_window() {
        let sig = format!("v={R1_V},d={R1_DIGEST}");
        assert_eq!(
            RetellSigner(R1_KEY.into())
                .sign(R1_BODY.as_bytes(), 1_700_000_000, "")
                .headers[0]
                .1,
            sig
        );
        for now in [R1_V, R1_V + 300_000, R1_V - 300_000] {
            assert_eq!(check(R1_KEY, &sig, R1_BODY, now), Ok(()), "{now}");
        }
        for now in [R1_V + 300_001, R1_V - 300_001] {
            assert_eq!(
                check(R1_KEY, &sig, R1_BODY, now),
                Err(AuthError::Stale(300))
            );
        }
    }

    #[test]
    fn r1_rejects_a_changed_body_and_a_wrong_key() {
        let sig = format!("v={R1_V},d={R1_DIGEST}");
        let body = format!("{R1_BODY} ");
        assert_eq!(
            check(R1_KEY, &sig, &body, R1_V),
            Err(AuthError::BadSignature)
        );
        assert_eq!(
            check("wrong-api-key", &sig, R1_BODY, R1_V),
            Err(AuthError::BadSignature)
        );
        let other_v = format!("v={},d={R1_DIGEST}", R1_V + 1);
        assert_eq!(
            check(R1_KEY, &other_v, R1_BODY, R1_V),
            Err(AuthError::BadSignature)
        );
    }

    /// The SDK test's malformed headers, plus what the older unanchored pattern let through.
    #[test]
    fn r1_malformed_headers_are_rejected_as_malformed() {
        let bad = [
            String::new(),
            format!("v={R1_V}"),
            format!("d={R1_DIGEST},v={R1_V}"),
            format!("prefix-v={R1_V},d={R1_DIGEST}"),
            format!("v={R1_V},d={R1_DIGEST}-suffix"),
            format!("v={R1_V},d=not-hex"),
            format!("v={R1_V},d={}", &R1_DIGEST[2..]),
            format!("v=-{R1_V},d={R1_DIGEST}"),
            format!("v={R1_V},d={R1_DIGEST},extra=value"),
            format!("v={R1_V},d={R1_DIGEST}00"),
            format!("v=+{R1_V},d={R1_DIGEST}"),
            format!("v= {R1_V},d={R1_DIGEST}"),
            format!("v=99999999999999999999,d={R1_DIGEST}"),
            format!("v={R1_V},d={}", "g".repeat(64)),
        ];
        for sig in &bad {
            assert_eq!(
                check(R1_KEY, sig, R1_BODY, R1_V),
                Err(AuthError::Malformed(SIGNATURE_HEADER)),
                "{sig:?}"
            );
        }
        let none = Headers::new();
        assert_eq!(
            provider(R1_KEY).verify(&delivery(&none, R1_BODY.as_bytes(), R1_V)),
            Err(AuthError::MissingHeader(SIGNATURE_HEADER))
        );
    }

    /// Both SDKs sign and verify the decimal of the parsed `v`; the TypeScript SDK accepts
    /// upper-case hex.
    #[test]
    fn r1_leading_zeros_and_upper_case_hex_verify_like_the_sdks() {
        let zeros = format!("v=00{R1_V},d={R1_DIGEST}");
        assert_eq!(check(R1_KEY, &zeros, R1_BODY, R1_V), Ok(()));
        let upper = format!("v={R1_V},d={}", R1_DIGEST.to_ascii_uppercase());
        assert_eq!(check(R1_KEY, &upper, R1_BODY, R1_V), Ok(()));
    }

    #[test]
    fn r2_and_r3_verify_and_any_key_of_a_rotation_passes() {
        let keys = format!("key_old0000000000000000000000000000,{KEY}");
        assert_eq!(check(&keys, R2_SIG, R2_BODY, R2_V + 1_000), Ok(()));
        assert_eq!(check(KEY, R3_SIG, R3_BODY, R3_V - 1_000), Ok(()));
        assert_eq!(
            check("key_old0000000000000000000000000000", R2_SIG, R2_BODY, R2_V),
            Err(AuthError::BadSignature)
        );
        // R2's signature on R3's body, and a body with one byte changed.
        assert_eq!(
            check(KEY, R2_SIG, R3_BODY, R2_V),
            Err(AuthError::BadSignature)
        );
        let tampered = R2_BODY.replace("L-1042", "L-1043");
        assert_eq!(
            check(KEY, R2_SIG, &tampered, R2_V),
            Err(AuthError::BadSignature)
        );
        assert_eq!(
            check(KEY, R3_SIG, R3_BODY, R3_V + 300_001),
            Err(AuthError::Stale(300))
        );
    }

    #[test]
    fn tolerance_is_configurable() {
        let p = Retell::from_env(&Env::from_pairs([
            (KEYS_VAR, KEY),
            ("RETELL_TOLERANCE_SECS", "10"),
        ]))
        .unwrap()
        .unwrap();
        let h = headers(R2_SIG);
        assert_eq!(
            p.verify(&delivery(&h, R2_BODY.as_bytes(), R2_V + 10_000)),
            Ok(())
        );
        assert_eq!(
            p.verify(&delivery(&h, R2_BODY.as_bytes(), R2_V + 10_001)),
            Err(AuthError::Stale(10))
        );
        assert!(Retell::from_env(&Env::default()).unwrap().is_none());
        let err = Retell::from_env(&Env::from_pairs([
            (KEYS_VAR, KEY),
            ("RETELL_TOLERANCE_SECS", "x"),
        ]))
        .err()
        .unwrap();
        assert!(
            err.to_string().starts_with("RETELL_TOLERANCE_SECS"),
            "{err}"
        );
    }

    fn normalize_signed(body: &str, sig: Option<&str>) -> CanonicalEvent {
        let h = sig.map(headers).unwrap_or_default();
        provider(KEY).normalize(&delivery(&h, body.as_bytes(), 1_714_608_500_000))
    }

    #[test]
    fn r2_normalizes_to_a_completed_final_fact() {
        let e = normalize_signed(R2_BODY, Some(R2_SIG));
        assert_eq!(
            e.event_id,
            format!(
                "retell#{}",
                derived_key(&["Jabr9TXYYJHfvl6Syypi88rdAHYHmcq6", "call_ended"])
            )
        );
        assert_eq!(
            e.call_id.as_deref(),
            Some("retell#Jabr9TXYYJHfvl6Syypi88rdAHYHmcq6")
        );
        assert_eq!((e.kind, e.is_final), (Kind::Ended, true));
        assert_eq!(e.outcome, Some(Outcome::Completed));
        assert_eq!(e.direction, Some(Direction::Outbound));
        assert_eq!(e.from.as_deref(), Some("+14155550199"));
        assert_eq!(e.to.as_deref(), Some("+14155550123"));
        assert_eq!(
            e.occurred_at,
            Utc.timestamp_millis_opt(1_714_608_491_736).unwrap()
        );
        assert_eq!(
            e.facts.started_at,
            Some(Utc.timestamp_millis_opt(1_714_608_475_945).unwrap())
        );
        assert_eq!(e.facts.ended_at, Some(e.occurred_at));
        assert_eq!(e.facts.duration_secs, Some(16));
        assert_eq!(e.facts.hangup_cause.as_deref(), Some("user_hangup"));
        assert_eq!(
            e.facts.transcript,
            Some(Value::from(
                "Agent: Hi, this is Ava from Acme Dental. User: Not interested, thanks."
            ))
        );
        assert_eq!(e.facts.metadata, Some(json!({"crm_lead_id": "L-1042"})));
        assert_eq!(
            e.data["telephony_identifier"]["twilio_call_sid"],
            "CA0123456789abcdef0123456789abcdef"
        );
        assert!(e.review.is_none());
    }

    #[test]
    fn r3_normalizes_to_no_answer() {
        let e = normalize_signed(R3_BODY, Some(R3_SIG));
        assert_eq!((e.kind, e.is_final), (Kind::Ended, true));
        assert_eq!(e.outcome, Some(Outcome::NoAnswer));
        assert_eq!(e.facts.hangup_cause.as_deref(), Some("dial_no_answer"));
        assert_eq!(e.facts.duration_secs, Some(0));
        assert_eq!(
            e.call_id.as_deref(),
            Some("retell#c7Hq2LxV0aPzR4mN8sT1uW6yB3dF5gKj")
        );
    }

    /// A retry is signed again at another time: the same fact, the same id and time.
    #[test]
    fn a_re_signed_retry_keeps_its_id_and_time() {
        let first = normalize_signed(R2_BODY, Some(R2_SIG));
        let signer = RetellSigner(KEY.into());
        let retry_sig = signer.sign(R2_BODY.as_bytes(), 1_714_608_502, "").headers[0]
            .1
            .clone();
        let retry = normalize_signed(R2_BODY, Some(&retry_sig));
        assert_eq!(first.event_id, retry.event_id);
        assert_eq!(first.occurred_at, retry.occurred_at);
        let unsigned = normalize_signed(R2_BODY, None);
        assert_eq!(first, unsigned);
    }

    fn event(event_type: &str, call: &str) -> String {
        format!(
            r#"{{"event":"{event_type}","call":{{"call_id":"c1","direction":"inbound","from_number":"+1","to_number":"+2",{call}"call_status":"ongoing"}}}}"#
        )
    }

    #[test]
    fn every_mapped_event_normalizes_to_its_kind() {
        for (event_type, kind, is_final, repeats) in MAPPING {
            let e = normalize_signed(
                &event(event_type, r#""start_timestamp":1714608475945,"#),
                None,
            );
            assert_eq!(e.kind, *kind, "{event_type}");
            assert_eq!(e.is_final, *is_final, "{event_type}");
            assert!(e.review.is_none(), "{event_type}");
            assert_eq!(e.call_id.as_deref(), Some("retell#c1"));
            assert_eq!(e.direction, Some(Direction::Inbound));
            let once = format!("retell#{}", derived_key(&["c1", event_type]));
            assert_eq!(e.event_id == once, !repeats, "{event_type}");
        }
        assert_eq!(MAPPING.iter().filter(|(_, _, f, _)| *f).count(), 1);
    }

    #[test]
    fn every_disconnection_reason_maps_and_unknown_ones_are_not_guessed() {
        assert_eq!(DISCONNECTION_REASONS.len(), 34);
        for (reason, outcome) in DISCONNECTION_REASONS {
            let e = normalize_signed(
                &event(
                    "call_ended",
                    &format!(r#""disconnection_reason":"{reason}","#),
                ),
                None,
            );
            assert_eq!(e.outcome, Some(*outcome), "{reason}");
            assert_eq!(e.facts.hangup_cause.as_deref(), Some(*reason));
        }
        let e = normalize_signed(
            &event(
                "call_ended",
                r#""disconnection_reason":"error_inbound_webhook","#,
            ),
            None,
        );
        assert_eq!(e.outcome, Some(Outcome::Failed));
        for unmapped in ["machine_detected", "teleported"] {
            let e = normalize_signed(
                &event(
                    "call_ended",
                    &format!(r#""disconnection_reason":"{unmapped}","#),
                ),
                None,
            );
            assert_eq!(e.outcome, None, "{unmapped}");
            assert_eq!(e.facts.hangup_cause.as_deref(), Some(unmapped));
            assert!(e.is_final && e.review.is_none());
        }
        let e = normalize_signed(&event("call_ended", ""), None);
        assert_eq!((e.outcome, e.facts.hangup_cause), (None, None));
        // Only the terminal fact carries the outcome.
        let e = normalize_signed(
            &event("call_analyzed", r#""disconnection_reason":"dial_busy","#),
            None,
        );
        assert_eq!((e.outcome, e.facts.hangup_cause), (None, None));
    }

    #[test]
    fn times_come_from_the_call_then_the_signature() {
        let started = normalize_signed(
            &event("call_started", r#""start_timestamp":1714608475945,"#),
            None,
        );
        assert_eq!(
            started.occurred_at,
            Utc.timestamp_millis_opt(1_714_608_475_945).unwrap()
        );
        let analyzed_body = event(
            "call_analyzed",
            r#""end_timestamp":1714608491736,"call_analysis":{"in_voicemail":false,"call_summary":"Declined."},"#,
        );
        let sig = RetellSigner(KEY.into()).sign(analyzed_body.as_bytes(), 1_714_608_530, "");
        let analyzed = normalize_signed(&analyzed_body, Some(&sig.headers[0].1));
        assert_eq!(
            analyzed.occurred_at,
            Utc.timestamp_opt(1_714_608_530, 0).unwrap()
        );
        assert_eq!(
            analyzed.facts.analysis,
            Some(json!({"in_voicemail": false, "call_summary": "Declined."}))
        );
        assert_eq!(analyzed.kind, Kind::Report);
        // Without the header (not stored): the end of the call, never the receipt time.
        let unsigned = normalize_signed(&analyzed_body, None);
        assert_eq!(
            unsigned.occurred_at,
            Utc.timestamp_millis_opt(1_714_608_491_736).unwrap()
        );
        let transfer = normalize_signed(
            &event(
                "transfer_ended",
                r#""transfer_end_timestamp":1714608600000,"#,
            ),
            None,
        );
        assert_eq!(
            transfer.occurred_at,
            Utc.timestamp_millis_opt(1_714_608_600_000).unwrap()
        );
        let transcript = normalize_signed(&event("transcript_updated", ""), None);
        assert_eq!(
            transcript.occurred_at,
            Utc.timestamp_millis_opt(1_714_608_500_000).unwrap()
        );
    }

    #[test]
    fn repeatable_events_are_told_apart_by_their_bytes() {
        let a = normalize_signed(
            &event("transcript_updated", r#""transcript":"Agent: Hi.","#),
            None,
        );
        let b = normalize_signed(
            &event(
                "transcript_updated",
                r#""transcript":"Agent: Hi. User: Hello.","#,
            ),
            None,
        );
        let a2 = normalize_signed(
            &event("transcript_updated", r#""transcript":"Agent: Hi.","#),
            None,
        );
        assert_ne!(a.event_id, b.event_id);
        assert_eq!(a.event_id, a2.event_id);
        assert_eq!(
            b.facts.transcript,
            Some(Value::from("Agent: Hi. User: Hello."))
        );
    }

    #[test]
    fn transfer_details_are_read_beside_or_inside_the_call() {
        let outside = r#"{"event":"transfer_started","call":{"call_id":"c1","call_status":"ongoing"},"transfer_destination":"+14155550100","transfer_option":{}}"#;
        let e = normalize_signed(outside, None);
        assert_eq!(e.data["transfer_destination"], "+14155550100");
        assert_eq!(e.data["transfer_option"], json!({}));
        let inside = r#"{"event":"transfer_bridged","call":{"call_id":"c1","transfer_destination":"+14155550101"},"transfer_destination":"+1999"}"#;
        assert_eq!(
            normalize_signed(inside, None).data["transfer_destination"],
            "+14155550101"
        );
    }

    #[test]
    fn unknown_chat_and_malformed_bodies_go_to_review() {
        let e = normalize_signed(&event("call_teleported", ""), None);
        assert_eq!(e.review.as_ref().unwrap().reason, "unknown_type");
        assert_eq!(e.kind, Kind::Unknown);
        assert_eq!(e.call_id.as_deref(), Some("retell#c1"));
        assert_eq!(e.data["event"], "call_teleported", "the whole body is kept");
        assert_eq!(e.direction, Some(Direction::Inbound));
        let chat = normalize_signed(r#"{"event":"chat_ended","chat":{"chat_id":"ch1"}}"#, None);
        assert_eq!(chat.review.as_ref().unwrap().reason, "unknown_type");
        assert_eq!(chat.call_id, None);
        assert_eq!(chat.data["chat"]["chat_id"], "ch1");
        for body in [
            "",
            "not json",
            "[]",
            r#"{"call":{"call_id":"c1"}}"#,
            r#"{"event":"call_ended"}"#,
            r#"{"event":"call_ended","call":{"call_id":""}}"#,
            r#"{"event":"call_started","call":"c1"}"#,
        ] {
            let e = normalize_signed(body, None);
            assert_eq!(e.review.as_ref().unwrap().reason, "malformed", "{body}");
            assert!(e.event_id.starts_with("retell#"));
        }
    }

    #[test]
    fn dev_signer_keys_are_derived_and_distinct() {
        let env = (ENTRY.dev_signer)(&FIXTURE_SEED).verifier_env();
        assert_eq!(env[0].0, KEYS_VAR);
        assert!(env[0].1.starts_with("key_") && env[0].1.len() == 36);
        assert_ne!(env, (ENTRY.dev_signer)(&[1; 32]).verifier_env());
    }
}
