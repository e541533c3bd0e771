//! Telnyx Voice API v2 ("Call Control").
//!
//! Authentication: Ed25519 over `{telnyx-timestamp}|{raw body}`, signature base64 in
//! `telnyx-signature-ed25519`, keys are the account's base64 32-byte public keys
//! (TELNYX_PUBLIC_KEYS, several during rotation), ±300 s by default.
//! Dedupe key: `data.id` (so a retry with another `meta.attempt` is still a duplicate).
//! Call key: `data.payload.call_session_id`, else `call_leg_id`.

use ed25519_dalek::VerifyingKey;
use serde_json::Value;

use super::{
    Delivery, Provider, ProviderEntry, malformed, mark_unknown, scoped_id, str_at, time_at,
};
#[cfg(any(test, feature = "dev"))]
use super::{DevSigner, Signed};
use crate::config::{ConfigError, Env, vars};
use crate::domain::event::{CanonicalEvent, Direction, Kind, Outcome};
use crate::signing::{self as verify, AuthError};

pub const NAME: &str = "telnyx";
pub const SIGNATURE_HEADER: &str = "telnyx-signature-ed25519";
pub const TIMESTAMP_HEADER: &str = "telnyx-timestamp";
const KEYS_VAR: &str = vars::TELNYX_PUBLIC_KEYS;

use Kind::*;

pub const ENTRY: ProviderEntry = ProviderEntry {
    name: NAME,
    from_env: Telnyx::from_env,
    normalizer,
    #[cfg(any(test, feature = "dev"))]
    dev_signer: |seed| Box::new(TelnyxSigner(ed25519_dalek::SigningKey::from_bytes(seed))),
};

/// Every Telnyx voice event type (union from the Go SDK, providers.md) → kind, and whether it
/// is the call's terminal fact. Anything else is an unknown type and goes to review.
pub const MAPPING: &[(&str, Kind, bool)] = &[
    ("call.initiated", Initiated, false),
    ("call.answered", Answered, false),
    ("call.hangup", Ended, true),
    ("call.bridged", Progress, false),
    ("call.hold", Progress, false),
    ("call.unhold", Progress, false),
    ("call.enqueued", Progress, false),
    ("call.dequeued", Progress, false),
    ("call.dtmf.received", Progress, false),
    ("call.gather.ended", Progress, false),
    ("call.ai_gather.ended", Progress, false),
    ("call.ai_gather.partial_results", Progress, false),
    ("call.ai_gather.message_history_updated", Progress, false),
    ("call.playback.started", Progress, false),
    ("call.playback.ended", Progress, false),
    ("call.speak.started", Progress, false),
    ("call.speak.ended", Progress, false),
    ("call.recording.saved", Report, false),
    ("call.recording.error", Report, false),
    ("call.recording.transcription.saved", Report, false),
    ("call.transcription", Progress, false),
    ("call.machine.detection.ended", Progress, false),
    ("call.machine.greeting.ended", Progress, false),
    ("call.machine.premium.detection.ended", Progress, false),
    ("call.machine.premium.greeting.ended", Progress, false),
    ("call.fork.started", Progress, false),
    ("call.fork.stopped", Progress, false),
    ("call.refer.started", Progress, false),
    ("call.refer.completed", Progress, false),
    ("call.refer.failed", Progress, false),
    ("call.payment.progress", Progress, false),
    ("call.payment.completed", Progress, false),
    ("call.deepfake_detection.result", Progress, false),
    ("call.deepfake_detection.error", Progress, false),
    ("call.cost", Report, false),
    ("call.conversation.ended", Report, false),
    ("call.conversation_insights.generated", Report, false),
    ("streaming.started", Progress, false),
    ("streaming.stopped", Progress, false),
    ("streaming.failed", Progress, false),
    ("siprec.started", Progress, false),
    ("siprec.stopped", Progress, false),
    ("siprec.failed", Progress, false),
    ("conference.created", Progress, false),
    ("conference.ended", Progress, false),
    ("conference.floor.changed", Progress, false),
    ("conference.recording.saved", Report, false),
    ("conference.playback.started", Progress, false),
    ("conference.playback.ended", Progress, false),
    ("conference.speak.started", Progress, false),
    ("conference.speak.ended", Progress, false),
    ("conference.participant.joined", Progress, false),
    ("conference.participant.left", Progress, false),
    ("conference.participant.playback.started", Progress, false),
    ("conference.participant.playback.ended", Progress, false),
    ("conference.participant.speak.started", Progress, false),
    ("conference.participant.speak.ended", Progress, false),
];

/// `call.hangup` `hangup_cause` → outcome. An unlisted cause is a failure: the call did not end
/// the way a completed call does, and a person should call back.
pub const HANGUP_CAUSES: &[(&str, Outcome)] = &[
    ("normal_clearing", Outcome::Completed),
    ("time_limit", Outcome::Completed),
    ("originator_cancel", Outcome::Canceled),
    ("user_busy", Outcome::Busy),
    ("no_answer", Outcome::NoAnswer),
    ("timeout", Outcome::NoAnswer),
    ("call_rejected", Outcome::Failed),
    ("not_found", Outcome::Failed),
    ("unspecified", Outcome::Failed),
];

pub fn hangup_outcome(cause: Option<&str>) -> Outcome {
    cause
        .and_then(|c| HANGUP_CAUSES.iter().find(|(name, _)| *name == c))
        .map(|(_, outcome)| *outcome)
        .unwrap_or(Outcome::Failed)
}

pub struct Telnyx {
    keys: Vec<VerifyingKey>,
    tolerance_secs: u64,
}

impl Telnyx {
    pub fn new(keys: Vec<VerifyingKey>, tolerance_secs: u64) -> Self {
        Telnyx {
            keys,
            tolerance_secs,
        }
    }

    pub fn from_env(env: &Env) -> Result<Option<Box<dyn Provider>>, ConfigError> {
        let entries = env.list(KEYS_VAR);
        if entries.is_empty() {
            return Ok(None);
        }
        let keys = entries
            .iter()
            .map(|k| verify::parse_ed25519_key(KEYS_VAR, k))
            .collect::<Result<_, _>>()?;
        Ok(Some(Box::new(Telnyx::new(
            keys,
            env.tolerance_secs(vars::TELNYX_TOLERANCE_SECS, 300)?,
        ))))
    }
}

/// The provider for normalizing stored events: no credentials (it is wrapped so that it
/// verifies nothing).
fn normalizer(_env: &Env) -> Result<Box<dyn Provider>, ConfigError> {
    Ok(Box::new(Telnyx::new(Vec::new(), 0)))
}

impl Provider for Telnyx {
    fn name(&self) -> &'static str {
        NAME
    }

    fn signed_headers(&self) -> &'static [&'static str] {
        &[SIGNATURE_HEADER, TIMESTAMP_HEADER]
    }

    fn verify(&self, d: &Delivery<'_>) -> Result<(), AuthError> {
        let signature = d.headers.require(SIGNATURE_HEADER)?;
        let timestamp = d.headers.require(TIMESTAMP_HEADER)?;
        let signature = verify::decode_b64(SIGNATURE_HEADER, signature)?;
        if signature.len() != ed25519_dalek::SIGNATURE_LENGTH {
            return Err(AuthError::Malformed(SIGNATURE_HEADER));
        }
        verify::check_timestamp(
            TIMESTAMP_HEADER,
            timestamp,
            d.received_at,
            self.tolerance_secs,
        )?;
        let signed = [timestamp.as_bytes(), b"|", d.body];
        if verify::ed25519_verify_any(&self.keys, &signed, &signature) {
            Ok(())
        } else {
            Err(AuthError::BadSignature)
        }
    }

    fn normalize(&self, d: &Delivery<'_>) -> CanonicalEvent {
        let Ok(mut body) = serde_json::from_slice::<Value>(d.body) else {
            return malformed(NAME, d.body, d.received_at, "body is not JSON");
        };
        let (Some(event_type), Some(id)) =
            (str_at(&body, "/data/event_type"), str_at(&body, "/data/id"))
        else {
            return malformed(
                NAME,
                d.body,
                d.received_at,
                "missing data.event_type or data.id",
            );
        };
        let mut event = CanonicalEvent::new(NAME, id, event_type, d.received_at);
        event.occurred_at = time_at(&body, "/data/occurred_at").unwrap_or(d.received_at);

        let payload = body
            .pointer_mut("/data/payload")
            .map(Value::take)
            .unwrap_or(Value::Null);
        event.call_id = str_at(&payload, "/call_session_id")
            .or_else(|| str_at(&payload, "/call_leg_id"))
            .map(|key| scoped_id(NAME, key));
        event.direction = str_at(&payload, "/direction").and_then(Direction::parse);
        event.from = str_at(&payload, "/from").map(str::to_owned);
        event.to = str_at(&payload, "/to").map(str::to_owned);

        match MAPPING.iter().find(|(t, _, _)| *t == event.event_type) {
            Some((_, kind, is_final)) => {
                event.kind = *kind;
                event.is_final = *is_final;
                fill_facts(&mut event, &payload);
            }
            None => mark_unknown(&mut event),
        }
        event.data = payload;
        event
    }
}

#[cfg(any(test, feature = "dev"))]
struct TelnyxSigner(ed25519_dalek::SigningKey);

#[cfg(any(test, feature = "dev"))]
impl DevSigner for TelnyxSigner {
    fn verifier_env(&self) -> Vec<(&'static str, String)> {
        vec![(
            KEYS_VAR,
            verify::encode_b64(self.0.verifying_key().as_bytes()),
        )]
    }

    fn sign(&self, body: &[u8], timestamp: i64, _url: &str) -> Signed {
        use ed25519_dalek::Signer;
        let ts = timestamp.to_string();
        let signature = self.0.sign(&[ts.as_bytes(), b"|", body].concat());
        Signed {
            headers: vec![
                (
                    SIGNATURE_HEADER.to_owned(),
                    verify::encode_b64(&signature.to_bytes()),
                ),
                (TIMESTAMP_HEADER.to_owned(), ts),
            ],
            path_token: None,
            url: None,
        }
    }
}

fn fill_facts(event: &mut CanonicalEvent, payload: &Value) {
    let facts = &mut event.facts;
    match event.event_type.as_str() {
        "call.hangup" => {
            let cause = str_at(payload, "/hangup_cause");
            event.outcome = Some(hangup_outcome(cause));
            facts.hangup_cause = cause.map(str::to_owned);
            facts.started_at = time_at(payload, "/start_time");
            facts.ended_at = time_at(payload, "/end_time").or(Some(event.occurred_at));
        }
        "call.answered" => facts.answered_at = Some(event.occurred_at),
        "call.initiated" => facts.started_at = time_at(payload, "/start_time"),
        "call.recording.saved" => {
            facts.recording_url = ["/recording_urls/mp3", "/recording_urls/wav"]
                .iter()
                .chain(&["/public_recording_urls/mp3", "/public_recording_urls/wav"])
                .find_map(|p| str_at(payload, p))
                .map(str::to_owned);
        }
        "call.recording.error" => facts.errors = Some(payload.clone()),
        "call.recording.transcription.saved" => {
            facts.transcript = payload.get("transcription_text").cloned();
        }
        "call.conversation_insights.generated" => {
            facts.analysis = payload
                .get("insight_group")
                .cloned()
                .or(Some(payload.clone()));
        }
        "call.cost" => facts.cost = Some(payload.clone()),
        _ => {}
    }
    if let Some(state) = payload.get("client_state").filter(|v| !v.is_null()) {
        facts.metadata = Some(serde_json::json!({ "client_state": state }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::Headers;
    use chrono::{DateTime, TimeZone, Utc};

    /// providers.md computed vector (RFC 8032 test 1 key).
    pub const VECTOR_KEY: &str = "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";
    pub const VECTOR_TS: &str = "1700000000";
    pub const VECTOR_BODY: &str = r#"{"data":{"event_type":"call.hangup","id":"0ccc7b54-4df3-4bca-a65a-3da1ecc777f0","occurred_at":"2023-11-14T22:13:20.000000Z","payload":{"call_control_id":"v3:abc","call_leg_id":"428c31b6-7af4-4bcb-b7f5-5013ef9657c1","call_session_id":"428c31b6-abf3-3bc1-b7f4-5013ef9657c1","hangup_cause":"normal_clearing","hangup_source":"caller"},"record_type":"event"},"meta":{"attempt":1,"delivered_to":"https://example.com/webhooks"}}"#;
    pub const VECTOR_SIG: &str =
        "dC3OBcB2wSvTFPovgVYgahTkxHBLYUTQahPFc/lUwaggYd6I4ZHFbHlDFBYoBw/Uu5tAQLru5b0mTdSRSA0AAg==";

    #[test]
    fn a_small_order_key_is_refused_and_cannot_be_forged_against() {
        use crate::signing::tests::{IDENTITY_KEY, forged_signature};
        let err = Telnyx::from_env(&Env::from_pairs([(KEYS_VAR, IDENTITY_KEY)]))
            .err()
            .expect("the identity key is refused")
            .to_string();
        assert!(err.starts_with("TELNYX_PUBLIC_KEYS is invalid"), "{err}");

        // Even a verifier built around the check refuses R = identity, s = 0.
        let bytes: [u8; 32] = verify::decode_b64("k", IDENTITY_KEY)
            .unwrap()
            .try_into()
            .unwrap();
        let telnyx = Telnyx::new(vec![VerifyingKey::from_bytes(&bytes).unwrap()], 300);
        let headers: Headers = [
            (SIGNATURE_HEADER, verify::encode_b64(&forged_signature())),
            (TIMESTAMP_HEADER, VECTOR_TS.to_owned()),
        ]
        .into_iter()
        .collect();
        let delivery = Delivery {
            headers: &headers,
            body: VECTOR_BODY.as_bytes(),
            path_token: None,
            request_url: None,
            received_at: Utc.timestamp_opt(1_700_000_000, 0).unwrap(),
        };
        assert_eq!(telnyx.verify(&delivery), Err(AuthError::BadSignature));
    }

    fn provider(keys: &str) -> Box<dyn Provider> {
        Telnyx::from_env(&Env::from_pairs([(KEYS_VAR, keys)]))
            .unwrap()
            .unwrap()
    }

    fn headers(sig: &str, ts: &str) -> Headers {
        [(SIGNATURE_HEADER, sig), (TIMESTAMP_HEADER, ts)]
            .into_iter()
            .collect()
    }

    fn delivery<'a>(h: &'a Headers, body: &'a [u8], now: i64) -> Delivery<'a> {
        Delivery {
            headers: h,
            body,
            path_token: None,
            request_url: None,
            received_at: Utc.timestamp_opt(now, 0).unwrap(),
        }
    }

    #[test]
    fn fixture_seed_signs_the_vector() {
        let signer = (ENTRY.dev_signer)(&crate::providers::FIXTURE_SEED);
        assert_eq!(
            signer.verifier_env(),
            vec![(KEYS_VAR, VECTOR_KEY.to_owned())]
        );
        let signed = signer.sign(VECTOR_BODY.as_bytes(), 1_700_000_000, "");
        assert_eq!(signed.headers[0].1, VECTOR_SIG);
    }

    #[test]
    fn vector_verifies() {
        let h = headers(VECTOR_SIG, VECTOR_TS);
        let p = provider(VECTOR_KEY);
        assert_eq!(
            p.verify(&delivery(&h, VECTOR_BODY.as_bytes(), 1_700_000_100)),
            Ok(())
        );
    }

    #[test]
    fn rotation_any_key_passes() {
        let other = "O2onvM62pC1io6jQKm8Nc2UyFXcd4kOmOsBIoYtZ2ik=";
        let h = headers(VECTOR_SIG, VECTOR_TS);
        let p = provider(&format!("{other},{VECTOR_KEY}"));
        assert_eq!(
            p.verify(&delivery(&h, VECTOR_BODY.as_bytes(), 1_700_000_000)),
            Ok(())
        );
        let p = provider(other);
        assert_eq!(
            p.verify(&delivery(&h, VECTOR_BODY.as_bytes(), 1_700_000_000)),
            Err(AuthError::BadSignature)
        );
    }

    #[test]
    fn tampering_staleness_and_bad_headers_fail() {
        let p = provider(VECTOR_KEY);
        let mut body = VECTOR_BODY.as_bytes().to_vec();
        body[10] ^= 1;
        let h = headers(VECTOR_SIG, VECTOR_TS);
        assert_eq!(
            p.verify(&delivery(&h, &body, 1_700_000_000)),
            Err(AuthError::BadSignature)
        );
        assert_eq!(
            p.verify(&delivery(&h, VECTOR_BODY.as_bytes(), 1_700_000_301)),
            Err(AuthError::Stale(300))
        );
        let h2 = headers(VECTOR_SIG, "1700000001");
        assert_eq!(
            p.verify(&delivery(&h2, VECTOR_BODY.as_bytes(), 1_700_000_000)),
            Err(AuthError::BadSignature)
        );
        let short = headers("AAAA", VECTOR_TS);
        assert_eq!(
            p.verify(&delivery(&short, VECTOR_BODY.as_bytes(), 1_700_000_000)),
            Err(AuthError::Malformed(SIGNATURE_HEADER))
        );
        let none = Headers::new();
        assert_eq!(
            p.verify(&delivery(&none, VECTOR_BODY.as_bytes(), 1_700_000_000)),
            Err(AuthError::MissingHeader(SIGNATURE_HEADER))
        );
    }

    #[test]
    fn wrong_length_key_is_a_config_error() {
        let err = Telnyx::from_env(&Env::from_pairs([(KEYS_VAR, "AAAA")]))
            .err()
            .unwrap();
        assert!(err.to_string().contains(KEYS_VAR));
    }

    #[test]
    fn vector_normalizes() {
        let h = headers(VECTOR_SIG, VECTOR_TS);
        let e =
            provider(VECTOR_KEY).normalize(&delivery(&h, VECTOR_BODY.as_bytes(), 1_700_000_100));
        assert_eq!(e.event_id, "telnyx#0ccc7b54-4df3-4bca-a65a-3da1ecc777f0");
        assert_eq!(
            e.call_id.as_deref(),
            Some("telnyx#428c31b6-abf3-3bc1-b7f4-5013ef9657c1")
        );
        assert_eq!(e.kind, Kind::Ended);
        assert!(e.is_final);
        assert_eq!(e.outcome, Some(Outcome::Completed));
        assert_eq!(e.facts.hangup_cause.as_deref(), Some("normal_clearing"));
        assert_eq!(
            e.occurred_at,
            "2023-11-14T22:13:20Z".parse::<DateTime<Utc>>().unwrap()
        );
        assert_eq!(e.data["call_control_id"], "v3:abc");
        assert!(e.review.is_none());
    }

    fn event_of(event_type: &str, payload: &str) -> CanonicalEvent {
        let body = format!(
            r#"{{"data":{{"event_type":"{event_type}","id":"e1","occurred_at":"2024-01-01T00:00:00Z","payload":{payload},"record_type":"event"}},"meta":{{"attempt":1}}}}"#
        );
        let h = Headers::new();
        provider(VECTOR_KEY).normalize(&delivery(&h, body.as_bytes(), 1_700_000_000))
    }

    #[test]
    fn every_mapped_type_normalizes_to_its_kind() {
        for (event_type, kind, is_final) in MAPPING {
            let e = event_of(
                event_type,
                r#"{"call_session_id":"s1","direction":"incoming"}"#,
            );
            assert_eq!(e.kind, *kind, "{event_type}");
            assert_eq!(e.is_final, *is_final, "{event_type}");
            assert!(e.review.is_none(), "{event_type}");
            assert_eq!(e.call_id.as_deref(), Some("telnyx#s1"));
            assert_eq!(e.direction, Some(Direction::Inbound));
        }
        assert_eq!(MAPPING.iter().filter(|(_, _, f)| *f).count(), 1);
    }

    #[test]
    fn every_hangup_cause_maps_to_its_outcome() {
        for (cause, outcome) in HANGUP_CAUSES {
            let e = event_of(
                "call.hangup",
                &format!(r#"{{"call_leg_id":"l1","hangup_cause":"{cause}"}}"#),
            );
            assert_eq!(e.outcome, Some(*outcome), "{cause}");
            assert_eq!(e.call_id.as_deref(), Some("telnyx#l1"));
        }
        let e = event_of(
            "call.hangup",
            r#"{"call_leg_id":"l1","hangup_cause":"meteor"}"#,
        );
        assert_eq!(e.outcome, Some(Outcome::Failed));
    }

    #[test]
    fn reports_carry_their_facts() {
        let e = event_of(
            "call.recording.saved",
            r#"{"call_session_id":"s1","recording_urls":{"mp3":"https://r/1.mp3"}}"#,
        );
        assert_eq!(e.facts.recording_url.as_deref(), Some("https://r/1.mp3"));
        let e = event_of(
            "call.recording.transcription.saved",
            r#"{"call_session_id":"s1","transcription_text":"hello"}"#,
        );
        assert_eq!(e.facts.transcript, Some(Value::from("hello")));
    }

    #[test]
    fn unknown_and_malformed_are_kept_for_review() {
        let e = event_of("call.teleported", r#"{"call_session_id":"s1"}"#);
        assert_eq!(e.kind, Kind::Unknown);
        assert_eq!(e.review.as_ref().unwrap().reason, "unknown_type");
        assert_eq!(e.event_id, "telnyx#e1");

        let h = Headers::new();
        let p = provider(VECTOR_KEY);
        for body in [&b"{"[..], b"[]", b"{\"data\":{}}", b"\xff\xfe", b""] {
            let e = p.normalize(&delivery(&h, body, 1_700_000_000));
            assert_eq!(e.review.as_ref().unwrap().reason, "malformed");
            assert!(e.event_id.starts_with("telnyx#"));
        }
    }
}
