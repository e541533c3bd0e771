//! ElevenLabs Agents (Conversational AI) post-call webhooks.
//!
//! Authentication: `ElevenLabs-Signature: t=<Unix s>,v0=<hex>`; `v0` is HMAC-SHA256 keyed with
//! the webhook's shared secret (the whole string as UTF-8: no prefix stripping, no decoding)
//! over `{t}.{raw body}`, `t` exactly as sent. As in the SDKs the items may come in any order
//! and items other than `t=` and `v0=` are ignored; callhook wants exactly one `t=` (digits
//! only) and one to ten `v0=` items, any one matching passes. ELEVENLABS_WEBHOOK_SECRETS lists
//! several secrets for rotation.
//!
//! Window: ±300 s (ELEVENLABS_TOLERANCE_SECS), on **both** sides. The SDKs only reject a `t`
//! older than 30 minutes and accept any future one; a signature from the future is refused
//! here like a stale one. ElevenLabs documents no retry schedule (the 2025 docs: each event is
//! dispatched once; newer workspaces may enable retries), so a retry that keeps the first `t`
//! is refused after 300 s: raise ELEVENLABS_TOLERANCE_SECS (e.g. to 1800, the SDKs' past
//! bound) if a real retry is ever seen to do so.
//!
//! Envelope: `{"type","event_timestamp":<Unix s>,"data":{…}}`. ElevenLabs sends no event id:
//! each post-call type is sent once per conversation, so the dedupe key is
//! `derived_key(data.conversation_id, type)`; an unknown type adds the SHA-256 of the raw body.
//! Call key: `data.conversation_id`. occurred_at: `event_timestamp` (number or decimal
//! string), else the receipt time.
//!
//! `post_call_audio` carries the whole call as base64 MP3 in `data.full_audio` (several MB):
//! it is a report with no facts, and the canonical `data` leaves the audio out (the raw body
//! keeps it). Only the `json` transcript format is understood (the OpenTelemetry one is not).

use serde_json::{Value, json};

use super::{
    Delivery, Provider, ProviderEntry, integer_at, key_without_event_id, malformed, mark_unknown,
    scoped_id, secs_at, str_at,
};
#[cfg(any(test, feature = "dev"))]
use super::{DevSigner, Signed, sha256_hex};
use crate::config::{ConfigError, Env, vars};
use crate::domain::event::{CanonicalEvent, Direction, Facts, Kind, Outcome};
use crate::signing::{self as verify, AuthError};

pub const NAME: &str = "elevenlabs";
pub const SIGNATURE_HEADER: &str = "elevenlabs-signature";
const SECRETS_VAR: &str = vars::ELEVENLABS_WEBHOOK_SECRETS;
use crate::limits::MAX_SIGNATURES;

use Kind::*;

pub const ENTRY: ProviderEntry = ProviderEntry {
    name: NAME,
    from_env: Elevenlabs::from_env,
    normalizer,
    #[cfg(any(test, feature = "dev"))]
    dev_signer: |seed| Box::new(ElevenlabsSigner(dev_secret(seed))),
};

/// Every post-call webhook `type` → kind, and whether it is the conversation's terminal fact.
/// A conversation gets either a transcription (it took place) or an initiation failure.
pub const MAPPING: &[(&str, Kind, bool)] = &[
    // Sent after the call and its analysis; outcome from `transcription_outcome`.
    ("post_call_transcription", Ended, true),
    // The call never connected (busy, not picked up, connection error); outcome from
    // `failure_reason`.
    ("call_initiation_failure", Ended, true),
    // The recording as base64 MP3; nothing else.
    ("post_call_audio", Report, false),
];

/// `data.failure_reason` of `call_initiation_failure` → outcome (the three documented values).
/// Any other value is still a call that failed to connect: `failed`, with the raw reason in
/// `hangup_cause`.
pub const FAILURE_REASONS: &[(&str, Outcome)] = &[
    ("busy", Outcome::Busy),
    ("no-answer", Outcome::NoAnswer),
    ("unknown", Outcome::Failed),
];

/// System tools whose successful result decides a transcribed call's outcome, in this order:
/// a tool result counts when its `result.result_type` is `{tool}…_success` (e.g.
/// `transfer_to_number_twilio_success`), or, without a `result`, when `tool_name` is the tool
/// and `is_error` is false. `transfer_to_agent` hands over to another AI agent: not an
/// escalation to a person.
pub const SYSTEM_TOOL_OUTCOMES: &[(&str, Outcome)] = &[
    ("transfer_to_number", Outcome::Escalated),
    ("voicemail_detection", Outcome::Voicemail),
];

/// The outcome of a `post_call_transcription`: a system tool's (above), else `failed` when the
/// conversation's `status` is `failed` or `metadata.error` is set, else `completed`.
/// `analysis.call_successful` is the agent's own evaluation, not how the call ended: not used.
pub fn transcription_outcome(data: &Value) -> Outcome {
    let results: Vec<&Value> = data
        .get("transcript")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|turn| turn.get("tool_results").and_then(Value::as_array))
        .flatten()
        .collect();
    for (tool, outcome) in SYSTEM_TOOL_OUTCOMES {
        let succeeded = |r: &&Value| match str_at(r, "/result/result_type") {
            Some(t) => t.starts_with(tool) && t.ends_with("_success"),
            None => {
                str_at(r, "/tool_name") == Some(tool)
                    && r.get("is_error").and_then(Value::as_bool) == Some(false)
            }
        };
        if results.iter().any(succeeded) {
            return *outcome;
        }
    }
    let errored = data
        .pointer("/metadata/error")
        .is_some_and(|e| !e.is_null());
    if errored || str_at(data, "/status") == Some("failed") {
        Outcome::Failed
    } else {
        Outcome::Completed
    }
}

pub fn failure_outcome(reason: Option<&str>) -> Outcome {
    reason
        .and_then(|r| FAILURE_REASONS.iter().find(|(name, _)| *name == r))
        .map(|(_, outcome)| *outcome)
        .unwrap_or(Outcome::Failed)
}

pub struct Elevenlabs {
    secrets: Vec<String>,
    tolerance_secs: u64,
}

impl Elevenlabs {
    pub fn from_env(env: &Env) -> Result<Option<Box<dyn Provider>>, ConfigError> {
        let secrets = env.list(SECRETS_VAR);
        if secrets.is_empty() {
            return Ok(None);
        }
        Ok(Some(Box::new(Elevenlabs {
            secrets: secrets.into_iter().map(str::to_owned).collect(),
            tolerance_secs: env.tolerance_secs(vars::ELEVENLABS_TOLERANCE_SECS, 300)?,
        })))
    }
}

fn mac(secret: &str, t: &str, body: &[u8]) -> [u8; 32] {
    verify::hmac_sha256(secret.as_bytes(), &[t.as_bytes(), b".", body])
}

/// The provider for normalizing stored events: no credentials (it is wrapped so that it
/// verifies nothing).
fn normalizer(_env: &Env) -> Result<Box<dyn Provider>, ConfigError> {
    Ok(Box::new(Elevenlabs {
        secrets: Vec::new(),
        tolerance_secs: 0,
    }))
}

impl Provider for Elevenlabs {
    fn name(&self) -> &'static str {
        NAME
    }

    fn signed_headers(&self) -> &'static [&'static str] {
        &[SIGNATURE_HEADER]
    }

    fn verify(&self, d: &Delivery<'_>) -> Result<(), AuthError> {
        let header = d.headers.require(SIGNATURE_HEADER)?;
        let malformed = AuthError::Malformed(SIGNATURE_HEADER);
        let mut t = None;
        let mut signatures = Vec::new();
        for item in header.split(',') {
            if let Some(value) = item.strip_prefix("t=") {
                if t.replace(value).is_some() {
                    return Err(malformed);
                }
            } else if let Some(value) = item.strip_prefix("v0=") {
                signatures.push(value);
            }
        }
        let t = t
            .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
            .ok_or(malformed.clone())?;
        if signatures.is_empty() || signatures.len() > MAX_SIGNATURES {
            return Err(malformed);
        }
        verify::check_timestamp(SIGNATURE_HEADER, t, d.received_at, self.tolerance_secs)?;
        let expected: Vec<[u8; 32]> = self.secrets.iter().map(|s| mac(s, t, d.body)).collect();
        let valid = signatures.iter().any(|s| {
            verify::decode_hex(SIGNATURE_HEADER, s)
                .is_ok_and(|presented| verify::matches_any(&presented, &expected))
        });
        if valid {
            Ok(())
        } else {
            Err(AuthError::BadSignature)
        }
    }

    fn normalize(&self, d: &Delivery<'_>) -> CanonicalEvent {
        let Ok(mut body) = serde_json::from_slice::<Value>(d.body) else {
            return malformed(NAME, d.body, d.received_at, "body is not JSON");
        };
        let Some(event_type) = str_at(&body, "/type") else {
            return malformed(NAME, d.body, d.received_at, "missing type");
        };
        let mapping = MAPPING.iter().find(|(t, ..)| *t == event_type);
        let call_key = str_at(&body, "/data/conversation_id");
        if mapping.is_some() && call_key.is_none() {
            return malformed(NAME, d.body, d.received_at, "missing data.conversation_id");
        }
        let key = key_without_event_id(call_key, event_type, mapping.is_some(), d.body);
        let mut event = CanonicalEvent::new(NAME, &key, event_type, d.received_at);
        event.call_id = call_key.map(|k| scoped_id(NAME, k));
        event.occurred_at = secs_at(&body, "/event_timestamp").unwrap_or(d.received_at);
        let mut data = body.get_mut("data").map(Value::take).unwrap_or(Value::Null);

        match mapping {
            Some((_, kind, is_final)) => {
                event.kind = *kind;
                event.is_final = *is_final;
                match event.event_type.as_str() {
                    "post_call_transcription" => transcription(&mut event, &data),
                    "call_initiation_failure" => initiation_failure(&mut event, &data),
                    _ => omit_audio(&mut data),
                }
            }
            None => mark_unknown(&mut event),
        }
        event.data = data;
        event
    }
}

fn transcription(event: &mut CanonicalEvent, data: &Value) {
    let metadata = data.get("metadata").unwrap_or(&Value::Null);
    if let Some(phone) = metadata.get("phone_call") {
        let direction = str_at(phone, "/direction").and_then(Direction::parse);
        let ours = str_at(phone, "/agent_number").map(str::to_owned);
        let theirs = str_at(phone, "/external_number").map(str::to_owned);
        (event.from, event.to) = match direction {
            Some(Direction::Inbound) => (theirs, ours),
            Some(Direction::Outbound) => (ours, theirs),
            None => (None, None),
        };
        event.direction = direction;
    }
    let (outcome, mut facts) = conversation_end(data);
    facts.ended_at = facts.ended_at.or(Some(event.occurred_at));
    event.outcome = Some(outcome);
    event.facts = facts;
}

/// How a conversation ended, from the conversation object (a `post_call_transcription`'s
/// `data`; the get-conversation API answers the same shape): [`transcription_outcome`] and
/// the facts. `ended_at` is the start plus the duration, absent when either is.
pub fn conversation_end(data: &Value) -> (Outcome, Facts) {
    let metadata = data.get("metadata").unwrap_or(&Value::Null);
    let started_at = secs_at(metadata, "/start_time_unix_secs");
    let duration = integer_at(metadata, "/call_duration_secs").and_then(|s| u64::try_from(s).ok());
    let facts = Facts {
        started_at,
        answered_at: secs_at(metadata, "/accepted_time_unix_secs"),
        duration_secs: duration,
        ended_at: started_at.zip(duration).and_then(|(start, secs)| {
            let secs = chrono::Duration::try_seconds(i64::try_from(secs).ok()?)?;
            start.checked_add_signed(secs)
        }),
        hangup_cause: str_at(metadata, "/termination_reason").map(str::to_owned),
        transcript: data.get("transcript").filter(|t| !t.is_null()).cloned(),
        analysis: data.get("analysis").filter(|a| !a.is_null()).cloned(),
        cost: metadata.get("cost").filter(|c| !c.is_null()).cloned(),
        errors: metadata.get("error").filter(|e| !e.is_null()).cloned(),
        metadata: data
            .get("conversation_initiation_client_data")
            .filter(|m| !m.is_null())
            .cloned(),
        ..Facts::default()
    };
    (transcription_outcome(data), facts)
}

fn initiation_failure(event: &mut CanonicalEvent, data: &Value) {
    let reason = str_at(data, "/failure_reason");
    event.outcome = Some(failure_outcome(reason));
    // Twilio's status callback as JSON (`From`, `To`, `Direction`), or a SIP failure. Only
    // calls ElevenLabs places can fail to initiate: outbound unless Twilio says otherwise.
    let twilio = data.pointer("/metadata/body").unwrap_or(&Value::Null);
    event.direction = str_at(twilio, "/Direction")
        .and_then(Direction::parse)
        .or(Some(Direction::Outbound));
    event.from = str_at(twilio, "/From").map(str::to_owned);
    event.to = str_at(twilio, "/To").map(str::to_owned);
    let facts = &mut event.facts;
    facts.ended_at = Some(event.occurred_at);
    facts.duration_secs = Some(0);
    facts.hangup_cause = reason.map(str::to_owned);
    facts.errors = data.get("metadata").filter(|m| !m.is_null()).cloned();
}

/// Leaves the megabytes of base64 audio out of the canonical event; the raw body keeps them.
fn omit_audio(data: &mut Value) {
    if let Some(audio) = data.get_mut("full_audio") {
        let chars = audio.as_str().map_or(0, str::len);
        *audio = json!(format!(
            "omitted: {chars} base64 characters, kept in the raw body"
        ));
    }
}

#[cfg(any(test, feature = "dev"))]
/// The dev secret: `wsec_` and 64 hex characters derived from the seed with a domain tag.
fn dev_secret(seed: &[u8; 32]) -> String {
    let digest =
        sha256_hex(&[b"callhook dev elevenlabs webhook secret ".as_slice(), seed].concat());
    format!("wsec_{digest}")
}

#[cfg(any(test, feature = "dev"))]
struct ElevenlabsSigner(String);

#[cfg(any(test, feature = "dev"))]
impl DevSigner for ElevenlabsSigner {
    fn verifier_env(&self) -> Vec<(&'static str, String)> {
        vec![(SECRETS_VAR, self.0.clone())]
    }

    fn sign(&self, body: &[u8], timestamp: i64, _url: &str) -> Signed {
        let t = timestamp.to_string();
        let v0 = verify::to_hex(&mac(&self.0, &t, body));
        Signed {
            headers: vec![(SIGNATURE_HEADER.to_owned(), format!("t={t},v0={v0}"))],
            path_token: None,
            url: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::derived_key;
    use crate::providers::{FIXTURE_SEED, Headers};
    use chrono::{DateTime, TimeZone, Utc};

    /// E1: the inputs of elevenlabs-python `test_construct_event_mocked_time` (body as
    /// Python's `json.dumps` writes it, with spaces).
    const E1_SECRET: &str = "test_secret";
    const E1_T: i64 = 1_600_000_000;
    const E1_BODY: &str = r#"{"event_type": "speech.completed", "id": "123456"}"#;
    const E1_SIG: &str =
        "t=1600000000,v0=f8a0d1dc33ee963cb54d2f31514555995e93313c9d2042c030adbb82b87fae13";

    /// E2 and E3 (computed with ElevenLabs' published algorithm).
    const SECRET: &str = "wsec_3b9f2c1d8e7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c";
    const E2_T: i64 = 1_739_537_320;
    const E2_BODY: &str = r#"{"type":"post_call_transcription","event_timestamp":1739537320,"data":{"agent_id":"agent_01jz5x0abcdefghjkmnpqrstvw","conversation_id":"conv_01jz5x1abcdefghjkmnpqrstvw","status":"done","user_id":null,"transcript":[{"role":"agent","message":"Hi, this is Ava from Acme Dental.","time_in_call_secs":0},{"role":"user","message":"Not interested, thanks.","time_in_call_secs":3}],"metadata":{"start_time_unix_secs":1739537297,"accepted_time_unix_secs":1739537297,"call_duration_secs":22,"cost":296,"termination_reason":"Call ended by remote party","phone_call":{"type":"twilio","direction":"outbound","phone_number_id":"phnum_01jz5x2abcdefghjkmnpqrstvw","agent_number":"+14155550199","external_number":"+14155550123","call_sid":"CA0123456789abcdef0123456789abcdef","stream_sid":"MZ0123456789abcdef0123456789abcdef"}},"analysis":{"call_successful":"failure","transcript_summary":"The callee declined."},"conversation_initiation_client_data":{"dynamic_variables":{"crm_lead_id":"L-1042"}},"has_audio":true,"has_user_audio":true,"has_response_audio":true}}"#;
    const E2_SIG: &str =
        "t=1739537320,v0=056ed33530710f9966e92d3984ea298000178f31a53c70223da0d7532d345490";
    const E3_T: i64 = 1_759_931_652;
    const E3_BODY: &str = r#"{"type":"call_initiation_failure","event_timestamp":1759931652,"data":{"agent_id":"agent_01jz5x0abcdefghjkmnpqrstvw","conversation_id":"conv_01jz5x9abcdefghjkmnpqrstvw","failure_reason":"busy","metadata":{"type":"sip","body":{"sip_status_code":486,"error_reason":"INVITE failed: sip status: 486: Busy here (SIP 486)","call_sid":"d8e7f6a5-b4c3-4d5e-8f9a-0b1c2d3e4f5a","sip_status":"Busy here","twirp_code":"unavailable"}}}}"#;
    const E3_SIG: &str =
        "t=1759931652,v0=2980a78e9b339317b809ed9fcf22e526d805e841194244a5b816f1d1300650cf";

    fn provider(secrets: &str) -> Box<dyn Provider> {
        Elevenlabs::from_env(&Env::from_pairs([(SECRETS_VAR, secrets)]))
            .unwrap()
            .unwrap()
    }

    fn at(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(secs, 0).unwrap()
    }

    fn check(secrets: &str, sig: &str, body: &str, now: i64) -> Result<(), AuthError> {
        let h: Headers = [(SIGNATURE_HEADER, sig)].into_iter().collect();
        provider(secrets).verify(&Delivery {
            headers: &h,
            body: body.as_bytes(),
            path_token: None,
            request_url: None,
            received_at: at(now),
        })
    }

    #[test]
    fn e1_sdk_inputs_sign_and_verify() {
        let signed = ElevenlabsSigner(E1_SECRET.into()).sign(E1_BODY.as_bytes(), E1_T, "");
        assert_eq!(signed.headers[0].1, E1_SIG);
        assert_eq!(check(E1_SECRET, E1_SIG, E1_BODY, E1_T), Ok(()));
        assert_eq!(
            check("other_secret", E1_SIG, E1_BODY, E1_T),
            Err(AuthError::BadSignature)
        );
        let compact = r#"{"event_type":"speech.completed","id":"123456"}"#;
        assert_eq!(
            check(E1_SECRET, E1_SIG, compact, E1_T),
            Err(AuthError::BadSignature)
        );
    }

    /// The SDK tests' reject cases: missing header, no `t=`/`v0=`, a `v0` that is not the
    /// digest, and a `t` 31 minutes old.
    #[test]
    fn e1_sdk_reject_cases() {
        let h = Headers::new();
        assert_eq!(
            provider(E1_SECRET).verify(&Delivery {
                headers: &h,
                body: E1_BODY.as_bytes(),
                path_token: None,
                request_url: None,
                received_at: at(E1_T),
            }),
            Err(AuthError::MissingHeader(SIGNATURE_HEADER))
        );
        let malformed = Err(AuthError::Malformed(SIGNATURE_HEADER));
        assert_eq!(check(E1_SECRET, "invalid_format", E1_BODY, E1_T), malformed);
        assert_eq!(
            check(
                E1_SECRET,
                "t=1600000000,v0=invalid_signature",
                E1_BODY,
                E1_T
            ),
            Err(AuthError::BadSignature)
        );
        assert_eq!(
            check(E1_SECRET, E1_SIG, E1_BODY, E1_T + 31 * 60),
            Err(AuthError::Stale(300))
        );
    }

    /// The SDKs accept any future `t`; callhook's window has two sides, inclusive.
    #[test]
    fn e1_window_has_a_future_side() {
        for now in [E1_T - 300, E1_T + 300] {
            assert_eq!(check(E1_SECRET, E1_SIG, E1_BODY, now), Ok(()), "{now}");
        }
        for now in [E1_T - 301, E1_T - 3600, E1_T + 301] {
            assert_eq!(
                check(E1_SECRET, E1_SIG, E1_BODY, now),
                Err(AuthError::Stale(300)),
                "{now}"
            );
        }
        let wide = Elevenlabs::from_env(&Env::from_pairs([
            (SECRETS_VAR, E1_SECRET),
            ("ELEVENLABS_TOLERANCE_SECS", "1800"),
        ]))
        .unwrap()
        .unwrap();
        let h: Headers = [(SIGNATURE_HEADER, E1_SIG)].into_iter().collect();
        let d = |now| Delivery {
            headers: &h,
            body: E1_BODY.as_bytes(),
            path_token: None,
            request_url: None,
            received_at: at(now),
        };
        assert_eq!(wide.verify(&d(E1_T + 1800)), Ok(()));
        assert_eq!(wide.verify(&d(E1_T - 1801)), Err(AuthError::Stale(1800)));
    }

    #[test]
    fn e1_header_items_in_any_order_with_several_signatures() {
        let v0 = E1_SIG.split_once(",v0=").unwrap().1;
        let wrong = "0".repeat(64);
        for sig in [
            format!("v0={v0},t=1600000000"),
            format!("t=1600000000,v0={wrong},v0={v0}"),
            format!("t=1600000000,v1=ignored,v0={}", v0.to_ascii_uppercase()),
        ] {
            assert_eq!(check(E1_SECRET, &sig, E1_BODY, E1_T), Ok(()), "{sig}");
        }
        let too_many = format!("t=1600000000{},v0={v0}", format!(",v0={wrong}").repeat(10));
        let malformed = Err(AuthError::Malformed(SIGNATURE_HEADER));
        for sig in [
            "t=1600000000".to_owned(),
            format!("v0={v0}"),
            format!("t=1600000000,t=1600000000,v0={v0}"),
            format!("t=,v0={v0}"),
            format!("t=+1600000000,v0={v0}"),
            format!("t=1600000000.0,v0={v0}"),
            too_many,
        ] {
            assert_eq!(check(E1_SECRET, &sig, E1_BODY, E1_T), malformed, "{sig}");
        }
        // `t` is signed as sent: the same instant written otherwise is another message.
        let zero = format!("t=01600000000,v0={v0}");
        assert_eq!(
            check(E1_SECRET, &zero, E1_BODY, E1_T),
            Err(AuthError::BadSignature)
        );
    }

    #[test]
    fn e2_and_e3_verify_with_rotation_and_reject_changes() {
        let secrets = format!("wsec_old,{SECRET}");
        assert_eq!(check(&secrets, E2_SIG, E2_BODY, E2_T + 5), Ok(()));
        assert_eq!(check(SECRET, E3_SIG, E3_BODY, E3_T - 5), Ok(()));
        assert_eq!(
            check("wsec_old", E2_SIG, E2_BODY, E2_T),
            Err(AuthError::BadSignature)
        );
        assert_eq!(
            check(SECRET, E2_SIG, E3_BODY, E2_T),
            Err(AuthError::BadSignature)
        );
        let tampered = E3_BODY.replace("\"busy\"", "\"no-answer\"");
        assert_eq!(
            check(SECRET, E3_SIG, &tampered, E3_T),
            Err(AuthError::BadSignature)
        );
        let moved = E3_SIG.replace("t=1759931652", "t=1759931653");
        assert_eq!(
            check(SECRET, &moved, E3_BODY, E3_T),
            Err(AuthError::BadSignature)
        );
    }

    fn normalize(body: &str) -> CanonicalEvent {
        let h = Headers::new();
        provider(SECRET).normalize(&Delivery {
            headers: &h,
            body: body.as_bytes(),
            path_token: None,
            request_url: None,
            received_at: at(1_760_000_000),
        })
    }

    #[test]
    fn e2_normalizes_to_a_completed_final_fact() {
        let e = normalize(E2_BODY);
        assert_eq!(
            e.event_id,
            format!(
                "elevenlabs#{}",
                derived_key(&["conv_01jz5x1abcdefghjkmnpqrstvw", "post_call_transcription"])
            )
        );
        assert_eq!(
            e.call_id.as_deref(),
            Some("elevenlabs#conv_01jz5x1abcdefghjkmnpqrstvw")
        );
        assert_eq!((e.kind, e.is_final), (Kind::Ended, true));
        assert_eq!(e.outcome, Some(Outcome::Completed));
        assert_eq!(e.direction, Some(Direction::Outbound));
        assert_eq!(e.from.as_deref(), Some("+14155550199"));
        assert_eq!(e.to.as_deref(), Some("+14155550123"));
        assert_eq!(e.occurred_at, at(E2_T));
        assert_eq!(e.facts.started_at, Some(at(1_739_537_297)));
        assert_eq!(e.facts.answered_at, Some(at(1_739_537_297)));
        assert_eq!(e.facts.ended_at, Some(at(1_739_537_319)));
        assert_eq!(e.facts.duration_secs, Some(22));
        assert_eq!(
            e.facts.hangup_cause.as_deref(),
            Some("Call ended by remote party")
        );
        assert_eq!(e.facts.cost, Some(json!(296)));
        assert_eq!(
            e.facts.transcript.as_ref().unwrap()[1]["message"],
            "Not interested, thanks."
        );
        assert_eq!(
            e.facts.analysis.as_ref().unwrap()["transcript_summary"],
            "The callee declined."
        );
        assert_eq!(
            e.facts.metadata,
            Some(json!({"dynamic_variables": {"crm_lead_id": "L-1042"}}))
        );
        assert_eq!(
            e.data["metadata"]["phone_call"]["call_sid"],
            "CA0123456789abcdef0123456789abcdef"
        );
        assert!(e.review.is_none());
    }

    #[test]
    fn e3_normalizes_to_busy() {
        let e = normalize(E3_BODY);
        assert_eq!((e.kind, e.is_final), (Kind::Ended, true));
        assert_eq!(e.outcome, Some(Outcome::Busy));
        assert_eq!(e.direction, Some(Direction::Outbound));
        assert_eq!(e.occurred_at, at(E3_T));
        assert_eq!(e.facts.hangup_cause.as_deref(), Some("busy"));
        assert_eq!(
            e.facts.errors.as_ref().unwrap()["body"]["sip_status_code"],
            486
        );
        assert_eq!(
            e.call_id.as_deref(),
            Some("elevenlabs#conv_01jz5x9abcdefghjkmnpqrstvw")
        );
    }

    #[test]
    fn every_type_and_failure_reason_maps() {
        for (event_type, kind, is_final) in MAPPING {
            let e = normalize(&format!(
                r#"{{"type":"{event_type}","event_timestamp":"1739537320","data":{{"conversation_id":"c1"}}}}"#
            ));
            assert_eq!((e.kind, e.is_final), (*kind, *is_final), "{event_type}");
            assert_eq!(
                e.occurred_at,
                at(E2_T),
                "a string event_timestamp is read too"
            );
            assert!(e.review.is_none());
            assert_eq!(e.outcome.is_some(), *kind == Kind::Ended);
        }
        let failure = |reason: &str| {
            normalize(&format!(
                r#"{{"type":"call_initiation_failure","event_timestamp":1759931652,"data":{{"conversation_id":"c1","failure_reason":"{reason}","metadata":{{"type":"twilio","body":{{"CallSid":"CA1","CallStatus":"no-answer","Direction":"outbound-api","From":"+11111111111","To":"+441111111111"}}}}}}}}"#
            ))
        };
        for (reason, outcome) in FAILURE_REASONS {
            let e = failure(reason);
            assert_eq!(e.outcome, Some(*outcome), "{reason}");
            assert_eq!(e.facts.hangup_cause.as_deref(), Some(*reason));
            assert_eq!(
                (e.from.as_deref(), e.to.as_deref()),
                (Some("+11111111111"), Some("+441111111111"))
            );
        }
        let e = failure("declined");
        assert_eq!(e.outcome, Some(Outcome::Failed));
        assert_eq!(e.facts.hangup_cause.as_deref(), Some("declined"));
    }

    fn transcription_with(extra: &str, tool_results: &str) -> CanonicalEvent {
        normalize(&format!(
            r#"{{"type":"post_call_transcription","event_timestamp":1739537320,"data":{{"conversation_id":"c1","status":"done",{extra}"transcript":[{{"role":"agent","message":"One moment.","tool_results":{tool_results}}}],"metadata":{{"start_time_unix_secs":1739537297,"call_duration_secs":40,"phone_call":{{"direction":"inbound","agent_number":"+2","external_number":"+1"}}}}}}}}"#
        ))
    }

    #[test]
    fn transcription_outcomes_come_from_system_tools_then_status() {
        let transfer = r#"[{"type":"system","tool_name":"transfer_to_number","is_error":false,"result":{"result_type":"transfer_to_number_twilio_success","status":"success","transfer_number":"+3"}}]"#;
        let e = transcription_with("", transfer);
        assert_eq!(e.outcome, Some(Outcome::Escalated));
        assert_eq!(
            (e.from.as_deref(), e.to.as_deref()),
            (Some("+1"), Some("+2"))
        );
        assert_eq!(e.direction, Some(Direction::Inbound));
        let failed_transfer = r#"[{"type":"system","tool_name":"transfer_to_number","is_error":true,"result":{"result_type":"transfer_to_number_error","error":"busy"}}]"#;
        assert_eq!(
            transcription_with("", failed_transfer).outcome,
            Some(Outcome::Completed)
        );
        let voicemail = r#"[{"type":"system","tool_name":"voicemail_detection","is_error":false,"result":{"result_type":"voicemail_detection_success"}}]"#;
        assert_eq!(
            transcription_with("", voicemail).outcome,
            Some(Outcome::Voicemail)
        );
        let bare = r#"[{"type":"system","tool_name":"voicemail_detection","is_error":false}]"#;
        assert_eq!(
            transcription_with("", bare).outcome,
            Some(Outcome::Voicemail)
        );
        let agent = r#"[{"type":"system","tool_name":"transfer_to_agent","is_error":false,"result":{"result_type":"transfer_to_agent_success"}}]"#;
        assert_eq!(
            transcription_with("", agent).outcome,
            Some(Outcome::Completed)
        );
        assert_eq!(
            transcription_with("", "null").outcome,
            Some(Outcome::Completed)
        );
        let errored = transcription_with(r#""error_detail":1,"#, "[]");
        assert_eq!(errored.outcome, Some(Outcome::Completed));
        let e = normalize(
            r#"{"type":"post_call_transcription","data":{"conversation_id":"c1","status":"failed","metadata":{"error":{"code":1011,"reason":"LLM unavailable"}}}}"#,
        );
        assert_eq!(e.outcome, Some(Outcome::Failed));
        assert_eq!(
            e.facts.errors,
            Some(json!({"code": 1011, "reason": "LLM unavailable"}))
        );
        assert_eq!(
            e.occurred_at,
            at(1_760_000_000),
            "no event_timestamp: receipt time"
        );
        assert_eq!(e.facts.ended_at, Some(e.occurred_at));
    }

    #[test]
    fn audio_is_a_report_without_the_audio() {
        let e = normalize(
            r#"{"type":"post_call_audio","event_timestamp":1739537319,"data":{"agent_id":"a1","conversation_id":"c1","full_audio":"SUQzBAAAAAAAI1RTU0UAAAAPAAADTGF2ZjYwLjMuMTAw"}}"#,
        );
        assert_eq!((e.kind, e.is_final, e.outcome), (Kind::Report, false, None));
        assert!(e.facts.is_empty());
        assert_eq!(
            e.data["full_audio"],
            "omitted: 44 base64 characters, kept in the raw body"
        );
        assert_eq!(e.data["conversation_id"], "c1");
        let transcription = transcription_with("", "[]");
        assert_eq!(transcription.call_id, e.call_id);
        assert_ne!(transcription.event_id, e.event_id);
    }

    #[test]
    fn unknown_and_malformed_go_to_review() {
        let e = normalize(
            r#"{"type":"voice_removal_notice","event_timestamp":1,"data":{"voice_id":"v1"}}"#,
        );
        assert_eq!(e.review.as_ref().unwrap().reason, "unknown_type");
        assert_eq!(e.call_id, None);
        let again = normalize(
            r#"{"type":"voice_removal_notice","event_timestamp":1,"data":{"voice_id":"v2"}}"#,
        );
        assert_ne!(e.event_id, again.event_id);
        // E1's body is the SDK's test payload, not a post-call event.
        assert_eq!(normalize(E1_BODY).review.unwrap().reason, "malformed");
        for body in [
            "",
            "{",
            r#"{"type":"post_call_transcription"}"#,
            r#"{"type":"post_call_transcription","data":{"conversation_id":""}}"#,
            r#"{"type":"call_initiation_failure","data":[]}"#,
        ] {
            let e = normalize(body);
            assert_eq!(e.review.as_ref().unwrap().reason, "malformed", "{body}");
        }
    }

    #[test]
    fn absurd_durations_fall_back_to_the_event_time() {
        let e = normalize(
            r#"{"type":"post_call_transcription","event_timestamp":1739537320,"data":{"conversation_id":"c1","metadata":{"start_time_unix_secs":1739537297,"call_duration_secs":9223372036854775807}}}"#,
        );
        assert_eq!(e.facts.duration_secs, Some(i64::MAX as u64));
        assert_eq!(e.facts.ended_at, Some(at(E2_T)));
    }

    #[test]
    fn dev_secret_is_derived() {
        let env = (ENTRY.dev_signer)(&FIXTURE_SEED).verifier_env();
        assert_eq!(env[0].0, SECRETS_VAR);
        assert!(env[0].1.starts_with("wsec_") && env[0].1.len() == 69);
        assert!(Elevenlabs::from_env(&Env::default()).unwrap().is_none());
    }
}
