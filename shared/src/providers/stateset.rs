//! StateSet Voice events.
//!
//! Authentication: StateSet says to "verify webhook signatures or shared endpoint secrets" but
//! does not publish its scheme; callhook uses Standard Webhooks (`webhook-id`,
//! `webhook-timestamp`, `webhook-signature`) with the `whsec_`/`whpk_` keys in
//! STATESET_WEBHOOK_SECRETS, ±300 s (STATESET_TOLERANCE_SECS).
//!
//! Two envelopes are documented, both accepted, extra fields ignored:
//! - `{"id":"evt_…","event","created_at","tenant_id","api_version","data":{…}}`: dedupe key
//!   `id`;
//! - `{"event","tenant_id","call_sid","voice_session_id","created_at","payload":{…}}`: no id;
//!   the key is derived from tenant, event, call_sid, voice_session_id and created_at, or the
//!   SHA-256 of the raw body when created_at is missing.
//!
//! Call key: `call_sid` (in `data`/`payload`, or top level), else `voice_session_id`.

use serde_json::{Value, json};

#[cfg(any(test, feature = "dev"))]
use super::standard::StandardSigner;
use super::{
    Delivery, Provider, ProviderEntry, derived_key, malformed, mark_unknown, scoped_id, sha256_hex,
    str_at, time_at,
};
#[cfg(any(test, feature = "dev"))]
use super::{DevSigner, Signed};
use crate::config::{ConfigError, Env, vars};
use crate::domain::event::{CanonicalEvent, Direction, Kind, Outcome, ReviewNote};
use crate::domain::review::ReviewReason;
use crate::signing::AuthError;
use crate::signing::standard_webhooks as sw;

pub const NAME: &str = "stateset";
const KEYS_VAR: &str = vars::STATESET_WEBHOOK_SECRETS;

use Kind::*;

pub const ENTRY: ProviderEntry = ProviderEntry {
    name: NAME,
    from_env: Stateset::from_env,
    normalizer,
    #[cfg(any(test, feature = "dev"))]
    dev_signer: |seed| Box::new(StatesetSigner(StandardSigner(dev_secret(seed)))),
};

/// Every StateSet Voice event → kind, outcome, and whether it is the call's terminal fact.
pub const MAPPING: &[(&str, Kind, Option<Outcome>, bool)] = &[
    // "A call is accepted into the runtime and session setup begins".
    ("voice.call.started", Initiated, None, false),
    // Outcome from `status` and `escalated` (see `completed_outcome`).
    (
        "voice.call.completed",
        Ended,
        Some(Outcome::Completed),
        true,
    ),
    // A handoff, bridge or callback path: the agent's part of the call is over and a person
    // takes it; `voice.call.completed` still follows.
    (
        "voice.call.escalated",
        Ended,
        Some(Outcome::Escalated),
        false,
    ),
    ("voice.session.evaluated", Report, None, false),
    // About StateSet's delivery to some endpoint, not about a call: a person must look.
    ("voice.webhook.delivery_failed", Progress, None, false),
];

/// `status` of `voice.call.completed` → outcome. Missing means completed; an unlisted value is
/// a failure (a person should call back). `escalated: true` makes any of them `escalated`.
pub const COMPLETED_STATUSES: &[(&str, Outcome)] = &[
    ("completed", Outcome::Completed),
    ("no-answer", Outcome::NoAnswer),
    ("no_answer", Outcome::NoAnswer),
    ("busy", Outcome::Busy),
    ("failed", Outcome::Failed),
    ("canceled", Outcome::Canceled),
    ("cancelled", Outcome::Canceled),
    ("voicemail", Outcome::Voicemail),
    ("escalated", Outcome::Escalated),
    ("transferred", Outcome::Escalated),
];

pub fn completed_outcome(data: &Value) -> Outcome {
    if data.get("escalated").and_then(Value::as_bool) == Some(true) {
        return Outcome::Escalated;
    }
    match str_at(data, "/status") {
        None => Outcome::Completed,
        Some(status) => {
            let status = status.to_ascii_lowercase();
            COMPLETED_STATUSES
                .iter()
                .find(|(s, _)| *s == status)
                .map(|(_, outcome)| *outcome)
                .unwrap_or(Outcome::Failed)
        }
    }
}

pub struct Stateset {
    auth: sw::Verifier,
}

impl Stateset {
    pub fn from_env(env: &Env) -> Result<Option<Box<dyn Provider>>, ConfigError> {
        Ok(
            sw::Verifier::from_env(env, KEYS_VAR, vars::STATESET_TOLERANCE_SECS, false)?
                .map(|auth| Box::new(Stateset { auth }) as Box<dyn Provider>),
        )
    }
}

/// The provider for normalizing stored events: no credentials (it is wrapped so that it
/// verifies nothing).
fn normalizer(_env: &Env) -> Result<Box<dyn Provider>, ConfigError> {
    Ok(Box::new(Stateset {
        auth: sw::Verifier::none(),
    }))
}

impl Provider for Stateset {
    fn name(&self) -> &'static str {
        NAME
    }

    fn signed_headers(&self) -> &'static [&'static str] {
        sw::HEADERS
    }

    fn verify(&self, d: &Delivery<'_>) -> Result<(), AuthError> {
        self.auth.verify(d)
    }

    fn normalize(&self, d: &Delivery<'_>) -> CanonicalEvent {
        let Ok(mut body) = serde_json::from_slice::<Value>(d.body) else {
            return malformed(NAME, d.body, d.received_at, "body is not JSON");
        };
        let Some(event_type) = str_at(&body, "/event") else {
            return malformed(NAME, d.body, d.received_at, "missing event");
        };
        let inner = if body.get("data").is_some_and(Value::is_object) {
            "data"
        } else {
            "payload"
        };
        let field = |name: &str| {
            str_at(&body, &format!("/{inner}/{name}"))
                .or_else(|| str_at(&body, &format!("/{name}")))
        };
        let call_sid = field("call_sid");
        let session = field("voice_session_id");
        let created_at = str_at(&body, "/created_at");
        let key = match (str_at(&body, "/id"), created_at) {
            (Some(id), _) => id.to_owned(),
            (None, Some(created_at)) => derived_key(&[
                str_at(&body, "/tenant_id").unwrap_or(""),
                event_type,
                call_sid.unwrap_or(""),
                session.unwrap_or(""),
                created_at,
            ]),
            (None, None) => sha256_hex(d.body),
        };
        let mut event = CanonicalEvent::new(NAME, &key, event_type, d.received_at);
        event.call_id = call_sid.or(session).map(|k| scoped_id(NAME, k));
        event.occurred_at = time_at(&body, "/created_at").unwrap_or(d.received_at);
        let mut data = body
            .get_mut(inner)
            .map(Value::take)
            .filter(Value::is_object)
            .unwrap_or_else(|| json!({}));
        // Keep the envelope's identifiers with the data whichever shape delivered them.
        if let Value::Object(map) = &mut data {
            for name in ["call_sid", "voice_session_id", "tenant_id"] {
                if let Some(value) = body.get(name).filter(|v| !v.is_null()) {
                    map.entry(name).or_insert_with(|| value.clone());
                }
            }
        }
        event.direction = str_at(&data, "/direction").and_then(Direction::parse);
        event.from = str_at(&data, "/from_number").map(str::to_owned);
        event.to = str_at(&data, "/to_number").map(str::to_owned);

        match MAPPING.iter().find(|(t, ..)| *t == event.event_type) {
            Some((_, kind, outcome, is_final)) => {
                if event.call_id.is_none() && *kind != Progress {
                    return malformed(
                        NAME,
                        d.body,
                        d.received_at,
                        "missing call_sid and voice_session_id",
                    );
                }
                event.kind = *kind;
                event.is_final = *is_final;
                event.outcome = *outcome;
                fill_facts(&mut event, &data);
            }
            None => mark_unknown(&mut event),
        }
        event.data = data;
        event
    }
}

fn fill_facts(event: &mut CanonicalEvent, data: &Value) {
    let facts = &mut event.facts;
    match event.event_type.as_str() {
        "voice.call.started" => facts.started_at = Some(event.occurred_at),
        "voice.call.completed" => {
            event.outcome = Some(completed_outcome(data));
            facts.ended_at = Some(event.occurred_at);
            facts.duration_secs = data.get("duration_seconds").and_then(Value::as_u64);
            facts.analysis = data.get("summary").map(|s| json!({ "summary": s }));
        }
        "voice.session.evaluated" => facts.analysis = Some(data.clone()),
        "voice.webhook.delivery_failed" => {
            facts.errors = Some(data.clone());
            event.review = Some(ReviewNote {
                reason: ReviewReason::ProviderDeliveryFailed,
                detail: format!(
                    "StateSet gave up delivering an event (event_id {:?}, endpoint_id {:?}, \
                     attempt_count {})",
                    str_at(data, "/event_id").unwrap_or(""),
                    str_at(data, "/endpoint_id").unwrap_or(""),
                    data.get("attempt_count").unwrap_or(&Value::Null),
                ),
            });
        }
        _ => {}
    }
}

#[cfg(any(test, feature = "dev"))]
/// The dev `whsec_` secret: 32 bytes derived from the seed with a domain tag, so a StateSet
/// dev delivery never verifies as a `standard` one made from the same seed.
fn dev_secret(seed: &[u8; 32]) -> Vec<u8> {
    use sha2::{Digest, Sha256};
    Sha256::digest([b"callhook dev stateset secret ".as_slice(), seed].concat()).to_vec()
}

#[cfg(any(test, feature = "dev"))]
/// Signs like [`StandardSigner`], configuring STATESET_WEBHOOK_SECRETS.
struct StatesetSigner(StandardSigner);

#[cfg(any(test, feature = "dev"))]
impl DevSigner for StatesetSigner {
    fn verifier_env(&self) -> Vec<(&'static str, String)> {
        vec![(KEYS_VAR, sw::encode_secret(&self.0.0))]
    }

    fn sign(&self, body: &[u8], timestamp: i64, url: &str) -> Signed {
        self.0.sign(body, timestamp, url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::{FIXTURE_SEED, Headers};
    use chrono::{DateTime, TimeZone, Utc};

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    fn provider() -> Box<dyn Provider> {
        Stateset::from_env(&Env::from_pairs([(KEYS_VAR, SECRET)]))
            .unwrap()
            .unwrap()
    }

    fn delivery<'a>(h: &'a Headers, body: &'a [u8]) -> Delivery<'a> {
        Delivery {
            headers: h,
            body,
            path_token: None,
            request_url: None,
            received_at: Utc.timestamp_opt(1_614_265_330, 0).unwrap(),
        }
    }

    fn normalize(body: &str) -> CanonicalEvent {
        let h = Headers::new();
        provider().normalize(&delivery(&h, body.as_bytes()))
    }

    /// The seed's delivery envelope, verbatim.
    const SEED_ENVELOPE: &str = r#"{
"id": "evt_01hx9x9f9g7n9q6v4k0m9a2b3c",
"event": "voice.call.completed",
"created_at": "2026-05-14T18:42:09Z",
"tenant_id": "tenant_acme_dental",
"api_version": "2026-05-14",
"data": {
"call_sid": "CA1234567890abcdef1234567890abcdef",
"voice_session_id": "550e8400-e29b-41d4-a716-446655440001",
"direction": "inbound",
"status": "completed",
"duration_seconds": 127,
"escalated": false,
"summary": "Caller confirmed appointment time."
}
}"#;

    #[test]
    fn standard_webhooks_vector_verifies() {
        let h: Headers = [
            (sw::ID, "msg_p5jXN8AQM9LWM0D4loKWxJek"),
            (sw::TIMESTAMP, "1614265330"),
            (
                sw::SIGNATURE,
                "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
            ),
        ]
        .into_iter()
        .collect();
        let p = provider();
        assert_eq!(p.verify(&delivery(&h, br#"{"test": 2432232314}"#)), Ok(()));
        assert_eq!(
            p.verify(&delivery(&h, br#"{"test": 2432232315}"#)),
            Err(AuthError::BadSignature)
        );
        assert_eq!(p.signed_headers(), sw::HEADERS);
    }

    #[test]
    fn dev_signer_is_not_the_standard_one() {
        let ours = (ENTRY.dev_signer)(&FIXTURE_SEED).verifier_env();
        let standard = (super::super::standard::ENTRY.dev_signer)(&FIXTURE_SEED).verifier_env();
        assert_eq!(ours[0].0, KEYS_VAR);
        assert_ne!(ours[0].1, standard[0].1);
        assert!(Stateset::from_env(&Env::default()).unwrap().is_none());
        let err = Stateset::from_env(&Env::from_pairs([(KEYS_VAR, "whsec_%%")]))
            .err()
            .unwrap();
        assert!(err.to_string().contains(KEYS_VAR));
    }

    #[test]
    fn seed_envelope_normalizes() {
        let e = normalize(SEED_ENVELOPE);
        assert_eq!(e.event_id, "stateset#evt_01hx9x9f9g7n9q6v4k0m9a2b3c");
        assert_eq!(
            e.call_id.as_deref(),
            Some("stateset#CA1234567890abcdef1234567890abcdef")
        );
        assert_eq!(e.kind, Kind::Ended);
        assert!(e.is_final);
        assert_eq!(e.outcome, Some(Outcome::Completed));
        assert_eq!(e.direction, Some(Direction::Inbound));
        assert_eq!(e.facts.duration_secs, Some(127));
        assert_eq!(
            e.occurred_at,
            "2026-05-14T18:42:09Z".parse::<DateTime<Utc>>().unwrap()
        );
        assert_eq!(
            e.facts.analysis,
            Some(json!({"summary": "Caller confirmed appointment time."}))
        );
        assert!(e.review.is_none());
    }

    /// The seed's second shape: no id, identifiers at the top, data under `payload`.
    fn flat(event: &str, created_at: &str, payload: &str) -> String {
        format!(
            r#"{{"event":"{event}","tenant_id":"tenant_acme_dental","call_sid":"CA1","voice_session_id":"vs_1","created_at":"{created_at}","payload":{payload}}}"#
        )
    }

    #[test]
    fn envelope_without_id_derives_a_key() {
        let a = normalize(&flat("voice.call.started", "2026-05-14T18:40:00Z", "{}"));
        assert_eq!(a.call_id.as_deref(), Some("stateset#CA1"));
        assert_eq!(a.kind, Kind::Initiated);
        assert_eq!(a.data["voice_session_id"], "vs_1");
        let again = normalize(&flat(
            "voice.call.started",
            "2026-05-14T18:40:00Z",
            r#"{"extra":"ignored"}"#,
        ));
        assert_eq!(a.event_id, again.event_id);
        let later = normalize(&flat("voice.call.started", "2026-05-14T18:40:01Z", "{}"));
        assert_ne!(a.event_id, later.event_id);
        let other = normalize(&flat("voice.call.completed", "2026-05-14T18:40:00Z", "{}"));
        assert_ne!(a.event_id, other.event_id);
        // No created_at either: the body's hash.
        let body = r#"{"event":"voice.call.started","call_sid":"CA1","payload":{}}"#;
        assert_eq!(
            normalize(body).event_id,
            format!("stateset#{}", sha256_hex(body.as_bytes()))
        );
    }

    #[test]
    fn every_event_maps() {
        for (event_type, kind, outcome, is_final) in MAPPING {
            let e = normalize(&flat(event_type, "2026-05-14T18:40:00Z", "{}"));
            assert_eq!(e.kind, *kind, "{event_type}");
            assert_eq!(e.outcome, *outcome, "{event_type}");
            assert_eq!(e.is_final, *is_final, "{event_type}");
            assert_eq!(
                e.review.is_some(),
                *event_type == "voice.webhook.delivery_failed"
            );
        }
        assert_eq!(MAPPING.iter().filter(|(.., f)| *f).count(), 1);
    }

    #[test]
    fn completed_outcomes() {
        let completed =
            |data: &str| normalize(&flat("voice.call.completed", "2026-05-14T18:40:00Z", data));
        assert_eq!(completed("{}").outcome, Some(Outcome::Completed));
        for (status, outcome) in COMPLETED_STATUSES {
            let e = completed(&format!(r#"{{"status":"{status}","escalated":false}}"#));
            assert_eq!(e.outcome, Some(*outcome), "{status}");
        }
        let e = completed(r#"{"status":"completed","escalated":true}"#);
        assert_eq!(e.outcome, Some(Outcome::Escalated));
        let e = completed(r#"{"status":"exploded"}"#);
        assert_eq!(e.outcome, Some(Outcome::Failed));
    }

    #[test]
    fn seed_payloads_normalize() {
        let escalation = r#"{"id":"evt_2","event":"voice.call.escalated","created_at":"2026-05-14T18:41:00Z","data":{"stream_sid":"MZ1","call_sid":"CA1","from_number":"+15555555678","target":"+15555559999","reason":"Customer requested a human agent","initiated_by":"ai"}}"#;
        let e = normalize(escalation);
        assert_eq!(e.kind, Kind::Ended);
        assert!(!e.is_final);
        assert_eq!(e.outcome, Some(Outcome::Escalated));
        assert_eq!(e.from.as_deref(), Some("+15555555678"));
        assert_eq!(e.data["target"], "+15555559999");

        let evaluated = r#"{"id":"evt_3","event":"voice.session.evaluated","created_at":"2026-05-14T18:45:00Z","data":{"voice_session_id":"vs_1","score":0.92,"tags":["resolved"]}}"#;
        let e = normalize(evaluated);
        assert_eq!(e.kind, Kind::Report);
        assert_eq!(e.call_id.as_deref(), Some("stateset#vs_1"));
        assert_eq!(e.facts.analysis.unwrap()["score"], 0.92);

        let failed = r#"{"id":"evt_4","event":"voice.webhook.delivery_failed","created_at":"2026-05-14T19:00:00Z","data":{"event_id":"evt_1","endpoint_id":"we_1","attempt_count":8}}"#;
        let e = normalize(failed);
        assert_eq!(e.kind, Kind::Progress);
        assert_eq!(e.call_id, None);
        let note = e.review.unwrap();
        assert_eq!(note.reason, "provider_delivery_failed");
        assert!(note.detail.contains("evt_1"), "{}", note.detail);
    }

    #[test]
    fn unknown_and_malformed_are_kept_for_review() {
        let e = normalize(&flat("voice.call.teleported", "2026-05-14T18:40:00Z", "{}"));
        assert_eq!(e.kind, Kind::Unknown);
        assert_eq!(e.review.unwrap().reason, "unknown_type");
        for body in [
            "{",
            "[]",
            r#"{"id":"evt_1"}"#,
            r#"{"id":"evt_1","event":"voice.call.completed","data":{"status":"completed"}}"#,
            "",
        ] {
            let e = normalize(body);
            assert_eq!(e.review.as_ref().unwrap().reason, "malformed", "{body}");
            assert!(e.event_id.starts_with("stateset#"));
        }
    }
}
