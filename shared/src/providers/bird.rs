//! Bird (formerly MessageBird) voice lifecycle webhooks.
//!
//! Authentication: HMAC-SHA256 over `{timestamp}\n{request URL}\n{SHA-256 of the raw body}`
//! (the 32 raw digest bytes, not hex), keyed with the subscription's `signingKey` string bytes
//! (BIRD_SIGNING_KEYS, several during rotation). Headers `messagebird-signature` (base64),
//! `messagebird-request-timestamp` (Unix seconds) and `messagebird-request-id`. The URL is the
//! one Bird called: BIRD_WEBHOOK_URL (the public URL of the subscription, query included), and
//! the URL as API Gateway saw the request. Bird retries for up to 8 hours with the original
//! timestamp, so the window is 24 h (BIRD_TOLERANCE_SECS) and dedupe does replay protection.
//!
//! Envelope: `{"service":"channels","event":"voice.inbound"|"voice.outbound","payload":{call}}`.
//! The event type is the direction; the fact is the call's `status` (see [`MAPPING`]).
//! Dedupe key: derived from `event`, `payload.id`, `payload.status` and `payload.updatedAt` (one
//! status change of one call; a retry re-sends the same call snapshot). Call key: `payload.id`.

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{
    Delivery, Provider, ProviderEntry, derived_key, malformed, mark_unknown, scoped_id, str_at,
    time_at,
};
#[cfg(any(test, feature = "dev"))]
use super::{DevSigner, Signed};
use crate::config::{ConfigError, Env, vars};
use crate::domain::event::{CanonicalEvent, Direction, Facts, Kind, Outcome, ReviewNote};
use crate::signing::{self as verify, AuthError};

pub const NAME: &str = "bird";
pub const SIGNATURE_HEADER: &str = "messagebird-signature";
pub const TIMESTAMP_HEADER: &str = "messagebird-request-timestamp";
pub const REQUEST_ID_HEADER: &str = "messagebird-request-id";
const KEYS_VAR: &str = vars::BIRD_SIGNING_KEYS;
const URL_VAR: &str = vars::BIRD_WEBHOOK_URL;
/// Bird re-sends for up to 8 hours with the original timestamp (providers.md).
pub const DEFAULT_TOLERANCE_SECS: u64 = 24 * 60 * 60;

use Kind::*;

pub const ENTRY: ProviderEntry = ProviderEntry {
    name: NAME,
    from_env: Bird::from_env,
    normalizer,
    #[cfg(any(test, feature = "dev"))]
    dev_signer: |seed| Box::new(BirdSigner(dev_key(seed))),
};

/// The two webhook event types and the direction each one reports.
pub const EVENTS: &[(&str, Direction)] = &[
    ("voice.inbound", Direction::Inbound),
    ("voice.outbound", Direction::Outbound),
];

/// Call `status` (both event types) → kind, outcome, and whether it is the call's terminal fact.
/// Inbound calls report starting … failed; outbound calls add `accepted` and `cancelled`.
pub const MAPPING: &[(&str, Kind, Option<Outcome>, bool)] = &[
    // Accepted by the Voice API, not yet dialing: the request is queued.
    ("accepted", Queued, None, false),
    ("starting", Initiated, None, false),
    ("ringing", Ringing, None, false),
    ("ongoing", Answered, None, false),
    ("completed", Ended, Some(Outcome::Completed), true),
    ("no-answer", Ended, Some(Outcome::NoAnswer), true),
    ("busy", Ended, Some(Outcome::Busy), true),
    ("failed", Ended, Some(Outcome::Failed), true),
    ("cancelled", Ended, Some(Outcome::Canceled), true),
];

pub struct Bird {
    keys: Vec<Vec<u8>>,
    url: Option<String>,
    tolerance_secs: u64,
}

impl Bird {
    pub fn new(keys: Vec<Vec<u8>>, url: Option<String>, tolerance_secs: u64) -> Self {
        Bird {
            keys,
            url,
            tolerance_secs,
        }
    }

    pub fn from_env(env: &Env) -> Result<Option<Box<dyn Provider>>, ConfigError> {
        let keys = env.list(KEYS_VAR);
        if keys.is_empty() {
            return Ok(None);
        }
        let url = env.get(URL_VAR).map(str::to_owned);
        if url
            .as_deref()
            .is_some_and(|u| !(u.starts_with("https://") || u.starts_with("http://")))
        {
            return Err(ConfigError::invalid(
                URL_VAR,
                "expected the full URL Bird calls, starting with https://",
            ));
        }
        Ok(Some(Box::new(Bird::new(
            keys.iter().map(|k| k.as_bytes().to_vec()).collect(),
            url,
            env.tolerance_secs(vars::BIRD_TOLERANCE_SECS, DEFAULT_TOLERANCE_SECS)?,
        ))))
    }
}

/// The bytes Bird signs: `{timestamp}\n{url}\n{sha256(body)}`.
fn signed_message(timestamp: &str, url: &str, body: &[u8]) -> Vec<u8> {
    let body_hash = Sha256::digest(body);
    [
        timestamp.as_bytes(),
        b"\n",
        url.as_bytes(),
        b"\n",
        &body_hash,
    ]
    .concat()
}

/// The provider for normalizing stored events: no credentials (it is wrapped so that it
/// verifies nothing).
fn normalizer(_env: &Env) -> Result<Box<dyn Provider>, ConfigError> {
    Ok(Box::new(Bird::new(Vec::new(), None, 0)))
}

impl Provider for Bird {
    fn name(&self) -> &'static str {
        NAME
    }

    fn signed_headers(&self) -> &'static [&'static str] {
        &[SIGNATURE_HEADER, TIMESTAMP_HEADER, REQUEST_ID_HEADER]
    }

    fn verify(&self, d: &Delivery<'_>) -> Result<(), AuthError> {
        let signature = d.headers.require(SIGNATURE_HEADER)?;
        let timestamp = d.headers.require(TIMESTAMP_HEADER)?;
        let signature = verify::decode_b64(SIGNATURE_HEADER, signature)?;
        if signature.len() != 32 {
            return Err(AuthError::Malformed(SIGNATURE_HEADER));
        }
        verify::check_timestamp(
            TIMESTAMP_HEADER,
            timestamp,
            d.received_at,
            self.tolerance_secs,
        )?;
        // The configured public URL first; the URL as the gateway saw it as well, so that a
        // deployment reached on its execute-api domain works before BIRD_WEBHOOK_URL is set.
        let mut urls: Vec<&str> = self.url.iter().map(String::as_str).collect();
        if let Some(seen) = d.request_url.filter(|seen| !urls.contains(seen)) {
            urls.push(seen);
        }
        let mut expected = Vec::with_capacity(urls.len() * self.keys.len());
        for url in urls {
            let message = signed_message(timestamp, url, d.body);
            for key in &self.keys {
                expected.push(verify::hmac_sha256(key, &[&message]));
            }
        }
        if verify::matches_any(&signature, &expected) {
            Ok(())
        } else {
            Err(AuthError::BadSignature)
        }
    }

    fn normalize(&self, d: &Delivery<'_>) -> CanonicalEvent {
        let Ok(mut body) = serde_json::from_slice::<Value>(d.body) else {
            return malformed(NAME, d.body, d.received_at, "body is not JSON");
        };
        let (Some(event_type), Some(id)) = (str_at(&body, "/event"), str_at(&body, "/payload/id"))
        else {
            return malformed(NAME, d.body, d.received_at, "missing event or payload.id");
        };
        let status = str_at(&body, "/payload/status");
        let updated_at = str_at(&body, "/payload/updatedAt");
        let key = derived_key(&[
            event_type,
            id,
            status.unwrap_or(""),
            updated_at.unwrap_or(""),
        ]);
        let mut event = CanonicalEvent::new(NAME, &key, event_type, d.received_at);
        event.call_id = Some(scoped_id(NAME, id));
        let status = status.map(str::to_owned);
        let payload = body
            .get_mut("payload")
            .map(Value::take)
            .unwrap_or(Value::Null);
        event.occurred_at = time_at(&payload, "/updatedAt").unwrap_or(d.received_at);

        let Some(event_direction) = EVENTS
            .iter()
            .find(|(name, _)| *name == event.event_type)
            .map(|(_, direction)| *direction)
        else {
            mark_unknown(&mut event);
            event.data = payload;
            return event;
        };
        let Some(status) = status else {
            return malformed(NAME, d.body, d.received_at, "missing payload.status");
        };
        event.direction = str_at(&payload, "/direction")
            .and_then(Direction::parse)
            .or(Some(event_direction));
        event.from = str_at(&payload, "/from").map(str::to_owned);
        event.to = str_at(&payload, "/to").map(str::to_owned);

        match status_of(&status) {
            Some((kind, outcome, is_final)) => {
                event.kind = kind;
                event.outcome = outcome;
                event.is_final = is_final;
                fill_facts(&mut event, &payload);
            }
            None => {
                mark_unknown(&mut event);
                event.review = Some(ReviewNote {
                    reason: "unknown_type".into(),
                    detail: format!("no mapping for {} status {status:?}", event.event_type),
                });
            }
        }
        event.data = payload;
        event
    }
}

fn fill_facts(event: &mut CanonicalEvent, payload: &Value) {
    event.facts = call_facts(payload);
    if event.is_final && event.facts.ended_at.is_none() {
        event.facts.ended_at = Some(event.occurred_at);
    }
}

/// A call `status` ([`MAPPING`]) → kind, outcome, and whether it is terminal; `None` for a
/// status not listed there.
pub fn status_of(status: &str) -> Option<(Kind, Option<Outcome>, bool)> {
    MAPPING
        .iter()
        .find(|(s, ..)| *s == status)
        .map(|(_, kind, outcome, is_final)| (*kind, *outcome, *is_final))
}

/// The facts of a call object (the webhook's `payload`; the get-call API answers the same
/// object), times absent where it has none.
pub fn call_facts(payload: &Value) -> Facts {
    let code = payload.get("hangupCauseCode").and_then(as_text);
    let reason = payload.get("reason").and_then(as_text);
    Facts {
        started_at: time_at(payload, "/createdAt"),
        answered_at: time_at(payload, "/answeredAt"),
        ended_at: time_at(payload, "/endedAt"),
        duration_secs: payload.get("duration").and_then(as_u64),
        hangup_cause: match (code, reason) {
            (Some(code), Some(reason)) => Some(format!("{code}: {reason}")),
            (code, reason) => code.or(reason),
        },
        ..Facts::default()
    }
}

/// A non-negative whole number sent as a number or a numeric string.
fn as_u64(value: &Value) -> Option<u64> {
    match value {
        Value::Number(n) => n
            .as_u64()
            .or_else(|| n.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A scalar as text (codes come as numbers or strings).
fn as_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(any(test, feature = "dev"))]
/// The dev signing key: a printable string, like the `signingKey` Bird hands out, derived from
/// the seed with a domain tag so it shares nothing visible with other providers' dev keys.
fn dev_key(seed: &[u8; 32]) -> String {
    super::sha256_hex(&[b"callhook dev bird signing key ".as_slice(), seed].concat())
}

#[cfg(any(test, feature = "dev"))]
struct BirdSigner(String);

#[cfg(any(test, feature = "dev"))]
impl DevSigner for BirdSigner {
    fn verifier_env(&self) -> Vec<(&'static str, String)> {
        vec![(KEYS_VAR, self.0.clone())]
    }

    fn sign(&self, body: &[u8], timestamp: i64, url: &str) -> Signed {
        let ts = timestamp.to_string();
        let mac = verify::hmac_sha256(self.0.as_bytes(), &[&signed_message(&ts, url, body)]);
        // Bird's request id is per delivery; derive it from what is signed so re-sends of a
        // fixture are byte-identical.
        let request_id = super::sha256_hex(&[ts.as_bytes(), body].concat())[..32].to_owned();
        Signed {
            headers: vec![
                (SIGNATURE_HEADER.to_owned(), verify::encode_b64(&mac)),
                (TIMESTAMP_HEADER.to_owned(), ts),
                (REQUEST_ID_HEADER.to_owned(), request_id),
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
    use chrono::{DateTime, TimeZone, Utc};

    /// providers.md computed vector.
    const VECTOR_KEY: &str = "secureSigningKey";
    const VECTOR_TS: &str = "1719823259";
    const VECTOR_URL: &str = "https://domain.com/webhook/bird";
    const VECTOR_BODY: &str = r#"{"service":"channels","event":"voice.outbound","payload":{"id":"123e4567-e89b-12d3-a456-426614174000","status":"completed"}}"#;
    const VECTOR_SIG: &str = "nf40tC5Rfetr5EkPy7AE4BrR4NrMLvQtRNwLBE7V5Ro=";

    fn provider(pairs: &[(&str, &str)]) -> Box<dyn Provider> {
        Bird::from_env(&Env::from_pairs(pairs.iter().copied()))
            .unwrap()
            .unwrap()
    }

    fn headers(sig: &str, ts: &str) -> Headers {
        [
            (SIGNATURE_HEADER, sig),
            (TIMESTAMP_HEADER, ts),
            (REQUEST_ID_HEADER, "r1"),
        ]
        .into_iter()
        .collect()
    }

    fn delivery<'a>(
        h: &'a Headers,
        body: &'a [u8],
        url: Option<&'a str>,
        now: i64,
    ) -> Delivery<'a> {
        Delivery {
            headers: h,
            body,
            path_token: None,
            request_url: url,
            received_at: Utc.timestamp_opt(now, 0).unwrap(),
        }
    }

    const NOW: i64 = 1_719_823_300;

    #[test]
    fn vector_verifies_with_the_configured_url() {
        let p = provider(&[(KEYS_VAR, VECTOR_KEY), (URL_VAR, VECTOR_URL)]);
        let h = headers(VECTOR_SIG, VECTOR_TS);
        let body = VECTOR_BODY.as_bytes();
        assert_eq!(p.verify(&delivery(&h, body, None, NOW)), Ok(()));
        // The gateway's view of the URL differs (execute-api domain): the configured one wins.
        let seen = Some("https://abc.execute-api.eu-west-1.amazonaws.com/webhooks/bird");
        assert_eq!(p.verify(&delivery(&h, body, seen, NOW)), Ok(()));
    }

    #[test]
    fn vector_verifies_with_the_request_url_fallback() {
        let p = provider(&[(KEYS_VAR, VECTOR_KEY)]);
        let h = headers(VECTOR_SIG, VECTOR_TS);
        let body = VECTOR_BODY.as_bytes();
        assert_eq!(p.verify(&delivery(&h, body, Some(VECTOR_URL), NOW)), Ok(()));
        assert_eq!(
            p.verify(&delivery(
                &h,
                body,
                Some("https://domain.com/webhook/bird/"),
                NOW
            )),
            Err(AuthError::BadSignature)
        );
        assert_eq!(
            p.verify(&delivery(&h, body, None, NOW)),
            Err(AuthError::BadSignature)
        );
    }

    #[test]
    fn fixture_signer_matches_the_vector_scheme() {
        let signer = (ENTRY.dev_signer)(&FIXTURE_SEED);
        let env = Env::from_pairs(signer.verifier_env());
        let key = env.get(KEYS_VAR).unwrap().to_owned();
        let p = provider(&[(KEYS_VAR, VECTOR_KEY), (URL_VAR, VECTOR_URL)]);
        // A signer holding the vector key reproduces the vector.
        let vector_signer = BirdSigner(VECTOR_KEY.into());
        let signed = vector_signer.sign(VECTOR_BODY.as_bytes(), 1_719_823_259, VECTOR_URL);
        assert_eq!(signed.headers[0].1, VECTOR_SIG);
        assert_ne!(key, VECTOR_KEY);
        let h: Headers = signed.headers.iter().map(|(k, v)| (k, v.clone())).collect();
        assert_eq!(
            p.verify(&delivery(&h, VECTOR_BODY.as_bytes(), None, NOW)),
            Ok(())
        );
    }

    #[test]
    fn rotation_any_key_passes() {
        let p = provider(&[
            (KEYS_VAR, &format!("oldKey,{VECTOR_KEY}")),
            (URL_VAR, VECTOR_URL),
        ]);
        let h = headers(VECTOR_SIG, VECTOR_TS);
        assert_eq!(
            p.verify(&delivery(&h, VECTOR_BODY.as_bytes(), None, NOW)),
            Ok(())
        );
        let p = provider(&[(KEYS_VAR, "oldKey"), (URL_VAR, VECTOR_URL)]);
        assert_eq!(
            p.verify(&delivery(&h, VECTOR_BODY.as_bytes(), None, NOW)),
            Err(AuthError::BadSignature)
        );
    }

    #[test]
    fn tampering_staleness_and_bad_headers_fail() {
        let p = provider(&[(KEYS_VAR, VECTOR_KEY), (URL_VAR, VECTOR_URL)]);
        let h = headers(VECTOR_SIG, VECTOR_TS);
        let mut body = VECTOR_BODY.as_bytes().to_vec();
        body[20] ^= 1;
        assert_eq!(
            p.verify(&delivery(&h, &body, None, NOW)),
            Err(AuthError::BadSignature)
        );
        // Bird's retries keep the original timestamp for up to 8 hours: still accepted.
        let eight_hours_later = 1_719_823_259 + 8 * 3600;
        assert_eq!(
            p.verify(&delivery(
                &h,
                VECTOR_BODY.as_bytes(),
                None,
                eight_hours_later
            )),
            Ok(())
        );
        assert_eq!(
            p.verify(&delivery(
                &h,
                VECTOR_BODY.as_bytes(),
                None,
                1_719_823_259 + 86_401
            )),
            Err(AuthError::Stale(86_400))
        );
        let other_ts = headers(VECTOR_SIG, "1719823260");
        assert_eq!(
            p.verify(&delivery(&other_ts, VECTOR_BODY.as_bytes(), None, NOW)),
            Err(AuthError::BadSignature)
        );
        let short = headers("AAAA", VECTOR_TS);
        assert_eq!(
            p.verify(&delivery(&short, VECTOR_BODY.as_bytes(), None, NOW)),
            Err(AuthError::Malformed(SIGNATURE_HEADER))
        );
        let none = Headers::new();
        assert_eq!(
            p.verify(&delivery(&none, VECTOR_BODY.as_bytes(), None, NOW)),
            Err(AuthError::MissingHeader(SIGNATURE_HEADER))
        );
    }

    #[test]
    fn configuration() {
        assert!(Bird::from_env(&Env::default()).unwrap().is_none());
        let err = Bird::from_env(&Env::from_pairs([
            (KEYS_VAR, "k"),
            (URL_VAR, "domain.com/x"),
        ]))
        .err()
        .unwrap();
        assert!(err.to_string().contains(URL_VAR));
        let err = Bird::from_env(&Env::from_pairs([
            (KEYS_VAR, "k"),
            ("BIRD_TOLERANCE_SECS", "x"),
        ]))
        .err()
        .unwrap();
        assert!(err.to_string().contains("BIRD_TOLERANCE_SECS"));
    }

    fn normalize(body: &str) -> CanonicalEvent {
        let h = Headers::new();
        provider(&[(KEYS_VAR, VECTOR_KEY)]).normalize(&delivery(&h, body.as_bytes(), None, NOW))
    }

    fn call(event: &str, status: &str, updated: &str) -> String {
        format!(
            r#"{{"service":"channels","event":"{event}","payload":{{"id":"c1","channelId":"ch1","from":"+31612345678","to":"+31201234567","status":"{status}","createdAt":"2024-05-01T10:00:00Z","updatedAt":"{updated}"}}}}"#
        )
    }

    #[test]
    fn vector_normalizes() {
        let e = normalize(VECTOR_BODY);
        assert_eq!(
            e.event_id,
            format!(
                "bird#{}",
                derived_key(&[
                    "voice.outbound",
                    "123e4567-e89b-12d3-a456-426614174000",
                    "completed",
                    ""
                ])
            )
        );
        assert_eq!(
            e.call_id.as_deref(),
            Some("bird#123e4567-e89b-12d3-a456-426614174000")
        );
        assert_eq!(e.kind, Kind::Ended);
        assert!(e.is_final);
        assert_eq!(e.outcome, Some(Outcome::Completed));
        assert_eq!(e.direction, Some(Direction::Outbound));
        assert_eq!(e.occurred_at, e.received_at);
        assert_eq!(e.facts.ended_at, Some(e.received_at));
        assert!(e.review.is_none());
    }

    #[test]
    fn every_status_maps_for_both_events() {
        for (event_type, direction) in EVENTS {
            for (status, kind, outcome, is_final) in MAPPING {
                let e = normalize(&call(event_type, status, "2024-05-01T10:00:07Z"));
                assert_eq!(e.kind, *kind, "{status}");
                assert_eq!(e.outcome, *outcome, "{status}");
                assert_eq!(e.is_final, *is_final, "{status}");
                assert_eq!(e.is_final, *kind == Kind::Ended, "{status}");
                assert_eq!(e.direction, Some(*direction));
                assert_eq!(e.call_id.as_deref(), Some("bird#c1"));
                assert_eq!(e.event_type, *event_type);
                assert_eq!(e.from.as_deref(), Some("+31612345678"));
                assert_eq!(
                    e.occurred_at,
                    "2024-05-01T10:00:07Z".parse::<DateTime<Utc>>().unwrap()
                );
                assert!(e.review.is_none());
            }
        }
    }

    #[test]
    fn dedupe_keys_identify_one_status_change() {
        let a = normalize(&call("voice.inbound", "ringing", "2024-05-01T10:00:01Z"));
        let again = normalize(&call("voice.inbound", "ringing", "2024-05-01T10:00:01Z"));
        let ongoing = normalize(&call("voice.inbound", "ongoing", "2024-05-01T10:00:01Z"));
        let later = normalize(&call("voice.inbound", "ringing", "2024-05-01T10:00:02Z"));
        assert_eq!(a.event_id, again.event_id);
        assert_ne!(a.event_id, ongoing.event_id);
        assert_ne!(a.event_id, later.event_id);
    }

    #[test]
    fn terminal_facts_are_kept() {
        let e = normalize(
            r#"{"service":"channels","event":"voice.inbound","payload":{"id":"c1","direction":"incoming","status":"failed","reason":"destination unreachable","hangupCauseCode":27,"hangupSource":"callee","duration":"0","createdAt":"2024-05-01T10:00:00Z","answeredAt":null,"endedAt":"2024-05-01T10:00:09Z","updatedAt":"2024-05-01T10:00:09Z"}}"#,
        );
        assert_eq!(e.outcome, Some(Outcome::Failed));
        assert_eq!(
            e.facts.hangup_cause.as_deref(),
            Some("27: destination unreachable")
        );
        assert_eq!(e.facts.duration_secs, Some(0));
        assert_eq!(
            e.facts.ended_at,
            Some("2024-05-01T10:00:09Z".parse().unwrap())
        );
        assert_eq!(
            e.facts.started_at,
            Some("2024-05-01T10:00:00Z".parse().unwrap())
        );
        assert_eq!(e.facts.answered_at, None);
        assert_eq!(e.data["hangupSource"], "callee");
    }

    #[test]
    fn unknown_and_malformed_are_kept_for_review() {
        let e = normalize(&call("voice.inbound", "teleported", "2024-05-01T10:00:01Z"));
        assert_eq!(e.kind, Kind::Unknown);
        let note = e.review.unwrap();
        assert_eq!(note.reason, "unknown_type");
        assert!(note.detail.contains("teleported"));
        assert_eq!(e.call_id.as_deref(), Some("bird#c1"));

        let e = normalize(&call(
            "voice.transcription",
            "completed",
            "2024-05-01T10:00:01Z",
        ));
        assert_eq!(e.review.unwrap().reason, "unknown_type");

        for body in [
            "{",
            "[]",
            r#"{"event":"voice.inbound","payload":{}}"#,
            r#"{"event":"voice.inbound","payload":{"id":"c1"}}"#,
            "\u{0}",
            "",
        ] {
            let e = normalize(body);
            assert_eq!(e.review.as_ref().unwrap().reason, "malformed", "{body}");
            assert!(e.event_id.starts_with("bird#"));
        }
    }
}
