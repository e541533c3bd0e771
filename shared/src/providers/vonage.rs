//! Vonage Voice API: the call events posted to `event_url` (signed callbacks).
//!
//! Authentication: `Authorization: Bearer <JWT>`, HS256: HMAC-SHA256 over
//! `{base64url header}.{base64url claims}`, keyed with the account's signature secret
//! (VONAGE_SIGNATURE_SECRETS; an entry `api_key=secret` is tried only for tokens whose `api_key`
//! claim names that key, an unlabelled secret for any token). Verified by hand, pinned to HS256:
//! a header whose `alg` is anything else (`none`, `RS256`, …) is refused before any key is
//! used. After the MAC: `iat` within VONAGE_TOLERANCE_SECS (300) of the receipt time, in the past
//! or the future; an `exp`, if sent, not passed; and `payload_hash` equal to the hex SHA-256 of
//! the raw body. The SDKs check none of the three; without the last, a captured token would
//! authenticate any body (symfony #65776). `jti` is not cached: the dedupe key is the replay
//! protection, and a token is only good for the tolerance window. Voice signing is opt-in per
//! Vonage application (`capabilities.voice.signed_callbacks`).
//!
//! Body: JSON. Which event it is follows from its fields ([`Event`]): a `status` (the call
//! status events, answering machine detection), a recording (`record`), collected input
//! (`input`), a transfer between conversations (`transfer`), or an error report (`error`).
//! Terminal fact: `completed` (sent at the end of every call, also after `busy`, `timeout`, …;
//! see [`MAPPING`]), or `rejected`.
//! Dedupe key: a status event `(uuid|call_uuid, status, timestamp)`; a recording its
//! `recording_uuid`; input `(uuid, timestamp)`; a transfer `(uuid, from, to, timestamp)`; an error
//! `(conversation_uuid, timestamp, reason)` (Vonage sends no event id). Call key:
//! `conversation_uuid` (the call as the caller knows it: every leg, and the recording and error
//! events, which name only the conversation); a transfer belongs to the conversation it left.

use base64::Engine;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use serde_json::{Map, Value};

use super::{
    Delivery, Provider, ProviderEntry, derived_key, malformed, mark_unknown, scoped_id, sha256_hex,
    str_at, time_at,
};
#[cfg(any(test, feature = "dev"))]
use super::{DevSigner, Signed};
use crate::config::{ConfigError, Env, vars};
use crate::domain::event::{CanonicalEvent, Direction, Facts, Kind, Outcome};
use crate::signing::{self as verify, AuthError};

pub const NAME: &str = "vonage";
pub const AUTHORIZATION_HEADER: &str = "authorization";
const SECRETS_VAR: &str = vars::VONAGE_SIGNATURE_SECRETS;
pub const DEFAULT_TOLERANCE_SECS: u64 = 300;

/// base64url without padding (RFC 7515); padding is tolerated when decoding.
const B64URL: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

use Kind::*;

pub const ENTRY: ProviderEntry = ProviderEntry {
    name: NAME,
    from_env: Vonage::from_env,
    normalizer,
    #[cfg(any(test, feature = "dev"))]
    dev_signer: |seed| Box::new(VonageSigner::from_seed(seed)),
};

/// `status` → kind, outcome, and whether it is the leg's terminal fact. The canonical type is
/// the status. Vonage ends every call that was not `rejected` with `completed`, also after
/// `busy`, `cancelled`, `timeout`, `unanswered` or `failed`, and either may arrive first
/// (Vonage support, "Which order should Voice API callbacks be received"): so `completed` is
/// the terminal fact, the failure statuses are ended facts that carry the outcome, and
/// `completed` itself says `completed` only when the call lasted (`duration` > 0); otherwise it
/// has no outcome and the failure status's stands, whichever came first. `rejected` is never
/// followed by `completed`: it is terminal itself. `human`/`machine` are answering machine
/// detection results: the `completed` that follows does not say which, so they do not change
/// the outcome. `disconnected` is the application's WebSocket closing, not the call ending.
pub const MAPPING: &[(&str, Kind, Option<Outcome>, bool)] = &[
    ("started", Initiated, None, false),
    ("ringing", Ringing, None, false),
    ("answered", Answered, None, false),
    // Outcome `completed` when `duration` > 0 (see above).
    ("completed", Ended, None, true),
    ("busy", Ended, Some(Outcome::Busy), false),
    ("cancelled", Ended, Some(Outcome::Canceled), false),
    // "Either the recipient is unreachable or the recipient declined the call."
    ("unanswered", Ended, Some(Outcome::NoAnswer), false),
    // The ringing phase exceeded `ringing_timeout`.
    ("timeout", Ended, Some(Outcome::NoAnswer), false),
    ("failed", Ended, Some(Outcome::Failed), false),
    // "The call was rejected by Vonage before it was connected"; no `completed` follows.
    ("rejected", Ended, Some(Outcome::Failed), true),
    ("disconnected", Progress, None, false),
    ("human", Progress, None, false),
    ("machine", Progress, None, false),
];

/// The events without a `status`, by type → kind.
pub const OTHER_EVENTS: &[(&str, Kind)] = &[
    ("record", Report),
    ("input", Progress),
    ("transfer", Progress),
    ("error", Progress),
];

/// Which event a body is, from the fields it carries, in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event<'a> {
    /// `status`: call status events (`uuid`) and AMD results (`call_uuid`).
    Status(&'a str),
    /// `recording_url`: the `record` action finished.
    Record,
    /// `dtmf` or `speech`: the `input` action finished.
    Input,
    /// `conversation_uuid_from`: a leg moved to another conversation.
    Transfer,
    /// `reason` alone: an error report.
    Error,
}

impl<'a> Event<'a> {
    fn of(body: &'a Value) -> Option<Event<'a>> {
        if let Some(status) = str_at(body, "/status") {
            Some(Event::Status(status))
        } else if str_at(body, "/recording_url").is_some() {
            Some(Event::Record)
        } else if body.get("dtmf").is_some() || body.get("speech").is_some() {
            Some(Event::Input)
        } else if str_at(body, "/conversation_uuid_from").is_some() {
            Some(Event::Transfer)
        } else if body.get("reason").is_some() {
            Some(Event::Error)
        } else {
            None
        }
    }

    fn name(&self) -> &'a str {
        match self {
            Event::Status(status) => status,
            Event::Record => "record",
            Event::Input => "input",
            Event::Transfer => "transfer",
            Event::Error => "error",
        }
    }
}

/// One configured signature secret.
struct Secret {
    /// `Some` for an `api_key=secret` entry: tried only for that `api_key` claim.
    api_key: Option<String>,
    secret: Vec<u8>,
}

pub struct Vonage {
    secrets: Vec<Secret>,
    tolerance_secs: u64,
}

impl Vonage {
    pub fn from_env(env: &Env) -> Result<Option<Box<dyn Provider>>, ConfigError> {
        let entries = env.list(SECRETS_VAR);
        if entries.is_empty() {
            return Ok(None);
        }
        let secrets = entries
            .iter()
            .map(|entry| match entry.split_once('=') {
                Some((api_key, secret)) => {
                    let (api_key, secret) = (api_key.trim(), secret.trim());
                    if api_key.is_empty() || secret.is_empty() {
                        return Err(ConfigError::invalid(
                            SECRETS_VAR,
                            "an `api_key=secret` entry has an empty api_key or secret",
                        ));
                    }
                    Ok(Secret {
                        api_key: Some(api_key.to_owned()),
                        secret: secret.as_bytes().to_vec(),
                    })
                }
                None => Ok(Secret {
                    api_key: None,
                    secret: entry.as_bytes().to_vec(),
                }),
            })
            .collect::<Result<_, _>>()?;
        Ok(Some(Box::new(Vonage {
            secrets,
            tolerance_secs: env
                .tolerance_secs(vars::VONAGE_TOLERANCE_SECS, DEFAULT_TOLERANCE_SECS)?,
        })))
    }

    /// The token's claims, once its HS256 MAC matched one of the secrets its `api_key` selects.
    fn verified_claims(&self, token: &str) -> Result<Map<String, Value>, AuthError> {
        const NOT_A_JWT: AuthError = AuthError::Invalid("bearer token is not a JWT");
        let mut parts = token.split('.');
        let (Some(header_b64), Some(claims_b64), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(NOT_A_JWT);
        };
        if header_b64.is_empty() || claims_b64.is_empty() || signature.is_empty() {
            return Err(NOT_A_JWT);
        }
        let header = json_object(header_b64).ok_or(NOT_A_JWT)?;
        if header.get("alg").and_then(Value::as_str) != Some("HS256") {
            return Err(AuthError::Invalid("JWT alg is not HS256"));
        }
        if header.contains_key("crit") {
            return Err(AuthError::Invalid("JWT has critical header parameters"));
        }
        let claims = json_object(claims_b64).ok_or(NOT_A_JWT)?;
        let api_key = claims.get("api_key").and_then(Value::as_str);
        // `{header}.{claims}` exactly as sent: the MAC covers the encoded text.
        let signing_input = &token[..header_b64.len() + 1 + claims_b64.len()];
        let expected: Vec<String> = self
            .secrets
            .iter()
            .filter(|s| s.api_key.is_none() || s.api_key.as_deref() == api_key)
            .map(|s| B64URL.encode(verify::hmac_sha256(&s.secret, &[signing_input.as_bytes()])))
            .collect();
        if verify::matches_any(signature.as_bytes(), &expected) {
            Ok(claims)
        } else {
            Err(AuthError::BadSignature)
        }
    }
}

/// A base64url segment that decodes to a JSON object.
fn json_object(segment: &str) -> Option<Map<String, Value>> {
    let bytes = B64URL.decode(segment).ok()?;
    match serde_json::from_slice(&bytes).ok()? {
        Value::Object(map) => Some(map),
        _ => None,
    }
}

/// The provider for normalizing stored events: no credentials (it is wrapped so that it
/// verifies nothing).
fn normalizer(_env: &Env) -> Result<Box<dyn Provider>, ConfigError> {
    Ok(Box::new(Vonage {
        secrets: Vec::new(),
        tolerance_secs: 0,
    }))
}

impl Provider for Vonage {
    fn name(&self) -> &'static str {
        NAME
    }

    fn signed_headers(&self) -> &'static [&'static str] {
        // The JWT is a signature, not a secret: it is good for one body and a few minutes.
        &[AUTHORIZATION_HEADER]
    }

    fn verify(&self, d: &Delivery<'_>) -> Result<(), AuthError> {
        let value = d.headers.require(AUTHORIZATION_HEADER)?;
        let token = super::bearer(value)
            .ok_or(AuthError::Invalid("authorization is not a Bearer token"))?;
        let claims = self.verified_claims(token)?;
        let now = d.received_at.timestamp();
        let iat = claims
            .get("iat")
            .and_then(Value::as_i64)
            .ok_or(AuthError::Invalid(
                "JWT iat claim is missing or not a whole number",
            ))?;
        if now.abs_diff(iat) > self.tolerance_secs {
            return Err(AuthError::Stale(self.tolerance_secs));
        }
        if let Some(exp) = claims.get("exp") {
            let exp = exp
                .as_i64()
                .ok_or(AuthError::Invalid("JWT exp claim is not a number"))?;
            if now > exp {
                return Err(AuthError::Invalid("JWT has expired"));
            }
        }
        let payload_hash = claims
            .get("payload_hash")
            .and_then(Value::as_str)
            .ok_or(AuthError::Invalid("JWT has no payload_hash claim"))?;
        let expected = sha256_hex(d.body);
        if !verify::constant_time_eq(
            payload_hash.to_ascii_lowercase().as_bytes(),
            expected.as_bytes(),
        ) {
            return Err(AuthError::BodyMismatch("payload_hash"));
        }
        Ok(())
    }

    fn normalize(&self, d: &Delivery<'_>) -> CanonicalEvent {
        let Ok(body) = serde_json::from_slice::<Value>(d.body) else {
            return malformed(NAME, d.body, d.received_at, "body is not JSON");
        };
        let Some(event_kind) = Event::of(&body) else {
            return malformed(
                NAME,
                d.body,
                d.received_at,
                "no status, recording_url, dtmf, speech, conversation_uuid_from or reason",
            );
        };
        let conversation = match event_kind {
            Event::Transfer => str_at(&body, "/conversation_uuid_from"),
            _ => str_at(&body, "/conversation_uuid"),
        };
        let Some(conversation) = conversation else {
            return malformed(NAME, d.body, d.received_at, "missing conversation_uuid");
        };
        let leg = str_at(&body, "/uuid")
            .or_else(|| str_at(&body, "/call_uuid"))
            .unwrap_or("");
        let timestamp = str_at(&body, "/timestamp").unwrap_or("");
        let key = match event_kind {
            Event::Status(status) => derived_key(&["status", conversation, leg, status, timestamp]),
            Event::Record => derived_key(&[
                "record",
                str_at(&body, "/recording_uuid")
                    .or_else(|| str_at(&body, "/recording_url"))
                    .unwrap_or(""),
            ]),
            Event::Input => derived_key(&["input", conversation, leg, timestamp]),
            Event::Transfer => derived_key(&[
                "transfer",
                leg,
                conversation,
                str_at(&body, "/conversation_uuid_to").unwrap_or(""),
                timestamp,
            ]),
            Event::Error => derived_key(&[
                "error",
                conversation,
                timestamp,
                &body.get("reason").map(Value::to_string).unwrap_or_default(),
            ]),
        };
        let mut event = CanonicalEvent::new(NAME, &key, event_kind.name(), d.received_at);
        event.call_id = Some(scoped_id(NAME, conversation));
        event.occurred_at = time_at(&body, "/timestamp").unwrap_or(d.received_at);
        event.direction = str_at(&body, "/direction").and_then(Direction::parse);
        event.from = str_at(&body, "/from").map(str::to_owned);
        event.to = str_at(&body, "/to").map(str::to_owned);
        match event_kind {
            Event::Status(status) => match status_of(status) {
                Some((kind, outcome, is_final)) => {
                    event.kind = kind;
                    event.outcome = outcome;
                    event.is_final = is_final;
                    status_facts(&mut event, &body);
                }
                None => mark_unknown(&mut event),
            },
            other => {
                let kind = OTHER_EVENTS
                    .iter()
                    .find(|(name, _)| *name == other.name())
                    .map_or(Unknown, |(_, kind)| *kind);
                event.kind = kind;
                match other {
                    Event::Record => {
                        event.facts.recording_url =
                            str_at(&body, "/recording_url").map(str::to_owned);
                    }
                    Event::Error => {
                        event.facts.errors = Some(serde_json::json!([{
                            "reason": body.get("reason"),
                            "timestamp": body.get("timestamp"),
                        }]));
                    }
                    _ => {}
                }
            }
        }
        event.data = body;
        event
    }
}

/// A leg's `status` (a call event's, or the call resource's in the Voice API) → kind, outcome
/// and whether it is the terminal fact ([`MAPPING`]); `None` for a status not listed there.
pub fn status_of(status: &str) -> Option<(Kind, Option<Outcome>, bool)> {
    MAPPING
        .iter()
        .find(|(s, ..)| *s == status)
        .map(|(_, kind, outcome, is_final)| (*kind, *outcome, *is_final))
}

/// How a leg in an ended `status` ended, from the fields a call event and the call resource
/// share (`start_time`, `end_time`, `duration`, `detail`, `price`, `rate`): the outcome
/// (`completed` only when the leg lasted) and the facts, times absent where the body has none.
pub fn leg_end(status: &str, body: &Value) -> (Option<Outcome>, Facts) {
    let mut facts = Facts {
        started_at: time_at(body, "/start_time"),
        ended_at: time_at(body, "/end_time"),
        duration_secs: body.get("duration").and_then(|d| match d {
            Value::String(s) => s.trim().parse().ok(),
            other => other.as_u64(),
        }),
        hangup_cause: str_at(body, "/detail").map(str::to_owned),
        ..Facts::default()
    };
    let mut outcome = status_of(status).and_then(|(_, outcome, _)| outcome);
    if status == "completed" && facts.duration_secs.is_some_and(|d| d > 0) {
        outcome = Some(Outcome::Completed);
    }
    let cost: Map<String, Value> = ["price", "rate"]
        .iter()
        .filter_map(|k| {
            body.get(*k)
                .filter(|v| !v.is_null())
                .map(|v| ((*k).to_owned(), v.clone()))
        })
        .collect();
    if !cost.is_empty() {
        facts.cost = Some(Value::Object(cost));
    }
    (outcome, facts)
}

fn status_facts(event: &mut CanonicalEvent, body: &Value) {
    match event.kind {
        Initiated => event.facts.started_at = Some(event.occurred_at),
        Ended => {
            let (outcome, mut facts) = leg_end(&event.event_type, body);
            facts.ended_at = facts.ended_at.or(Some(event.occurred_at));
            event.outcome = outcome;
            event.facts = facts;
        }
        _ => {}
    }
}

#[cfg(any(test, feature = "dev"))]
/// Signs as Vonage does, with an `api_key=secret` pair derived from the seed.
struct VonageSigner {
    api_key: String,
    secret: String,
}

#[cfg(any(test, feature = "dev"))]
impl VonageSigner {
    fn from_seed(seed: &[u8; 32]) -> Self {
        let derive = |tag: &str| sha256_hex(&[tag.as_bytes(), seed].concat());
        VonageSigner {
            // Vonage API keys are 8 hex characters; signature secrets 50 characters.
            api_key: derive("callhook dev vonage api key ")[..8].to_owned(),
            secret: derive("callhook dev vonage signature secret ")[..50].to_owned(),
        }
    }

    fn token(&self, body: &[u8], iat: i64) -> String {
        let jti = sha256_hex(&[iat.to_string().as_bytes(), body].concat());
        let claims = serde_json::json!({
            "iat": iat,
            "jti": format!("{}-{}-{}-{}-{}", &jti[..8], &jti[8..12], &jti[12..16], &jti[16..20], &jti[20..32]),
            "iss": "Vonage",
            "payload_hash": sha256_hex(body),
            "api_key": self.api_key,
            "application_id": "aaaaaaaa-bbbb-cccc-dddd-0123456789ab",
        });
        sign_jwt(
            self.secret.as_bytes(),
            br#"{"alg":"HS256","typ":"JWT"}"#,
            &claims.to_string(),
        )
    }
}

/// `{header}.{claims}.{HS256 MAC}`, each base64url.
#[cfg(any(test, feature = "dev"))]
fn sign_jwt(secret: &[u8], header: &[u8], claims: &str) -> String {
    let input = format!("{}.{}", B64URL.encode(header), B64URL.encode(claims));
    let mac = verify::hmac_sha256(secret, &[input.as_bytes()]);
    format!("{input}.{}", B64URL.encode(mac))
}

#[cfg(any(test, feature = "dev"))]
impl DevSigner for VonageSigner {
    fn verifier_env(&self) -> Vec<(&'static str, String)> {
        vec![(SECRETS_VAR, format!("{}={}", self.api_key, self.secret))]
    }

    fn sign(&self, body: &[u8], timestamp: i64, _url: &str) -> Signed {
        Signed {
            headers: vec![(
                AUTHORIZATION_HEADER.to_owned(),
                format!("Bearer {}", self.token(body, timestamp)),
            )],
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

    /// vonage-ruby-sdk `test/vonage/test.rb` (`sample_webhook_token`), claims as in the docs.
    const RUBY_TOKEN: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpYXQiOjE1ODc0OTQ5NjIsImp0aSI6ImM1YmE4ZjI0LTFhMTQtNGMxMC1iZmRmLTNmYmU4Y2U1MTFiNSIsImlzcyI6IlZvbmFnZSIsInBheWxvYWRfaGFzaCI6ImQ2YzBlNzRiNTg1N2RmMjBlM2I3ZTUxYjMwYzBjMmE0MGVjNzNhNzc4NzliNmYwNzRkZGM3YTIzMTdkZDAzMWIiLCJhcGlfa2V5IjoiYTFiMmMzZCIsImFwcGxpY2F0aW9uX2lkIjoiYWFhYWFhYWEtYmJiYi1jY2NjLWRkZGQtMDEyMzQ1Njc4OWFiIn0.JQRKi1d0SQitmjPINfTWMpt3XZkGsLbD7EjCdXoNSbk";
    const RUBY_SECRET: &str = "ZYtdTtGV3BCFN7tWmOWr1md66XsquMggr4W2cTtXtcPgfnI0Xw";
    const RUBY_WRONG_SECRET: &str = "ZYtdTtGV3BCFN7tWmOWr1md66XsquMggr4W2cTtXtcPgf55555";
    const RUBY_IAT: i64 = 1_587_494_962;

    /// vonage-python-sdk `jwt/tests/test_verify_jwt.py`: a generic HS256 token.
    const PY_TOKEN: &str = "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJPbmxpbmUgSldUIEJ1aWxkZXIiLCJpYXQiOjE2OTc2MzQ2ODAsImV4cCI6MzMyNTQ1NDA4MjgsImF1ZCI6IiIsInN1YiI6IiJ9.88vJc3I2HhuqEDixHXVhc9R30tA6U_HQHZTC29y6CGM";
    const PY_SECRET: &str = "qwertyuiopasdfghjklzxcvbnm123456";
    const PY_IAT: i64 = 1_697_634_680;

    /// A computed Vonage vector, with its body.
    const BODY: &str = r#"{"end_time":"2023-11-14T22:13:20.000Z","uuid":"aaaaaaaa-bbbb-cccc-dddd-0123456789ab","network":"GB-FIXED","duration":"42","start_time":"2023-11-14T22:12:38.000Z","rate":"0.00450000","price":"0.00315000","from":"447700900000","to":"442079460000","conversation_uuid":"CON-aaaaaaaa-bbbb-cccc-dddd-0123456789ab","status":"completed","direction":"outbound","timestamp":"2023-11-14T22:13:20.000Z"}"#;
    const BODY_HASH: &str = "0c193941ddcebd38f27d80eccd91c35a2a1e7fa57cf6297dde2638a2cd41d065";
    const CLAIMS: &str = r#"{"iat":1700000000,"jti":"0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0","iss":"Vonage","payload_hash":"0c193941ddcebd38f27d80eccd91c35a2a1e7fa57cf6297dde2638a2cd41d065","api_key":"a1b2c3d","application_id":"aaaaaaaa-bbbb-cccc-dddd-0123456789ab"}"#;
    const TOKEN: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpYXQiOjE3MDAwMDAwMDAsImp0aSI6IjBmMWUyZDNjLTRiNWEtNjk3OC04Nzk2LWE1YjRjM2QyZTFmMCIsImlzcyI6IlZvbmFnZSIsInBheWxvYWRfaGFzaCI6IjBjMTkzOTQxZGRjZWJkMzhmMjdkODBlY2NkOTFjMzVhMmExZTdmYTU3Y2Y2Mjk3ZGRlMjYzOGEyY2Q0MWQwNjUiLCJhcGlfa2V5IjoiYTFiMmMzZCIsImFwcGxpY2F0aW9uX2lkIjoiYWFhYWFhYWEtYmJiYi1jY2NjLWRkZGQtMDEyMzQ1Njc4OWFiIn0.VGKRqN0Uhs7sqsnHNUxpVsNA4S6M85dluiDCb9kynQE";
    const NOW: i64 = 1_700_000_000;

    fn provider(secrets: &str) -> Box<dyn Provider> {
        Vonage::from_env(&Env::from_pairs([(SECRETS_VAR, secrets)]))
            .unwrap()
            .unwrap()
    }

    fn bearer_headers(token: &str) -> Headers {
        [(AUTHORIZATION_HEADER, format!("Bearer {token}"))]
            .into_iter()
            .collect()
    }

    fn delivery<'a>(h: &'a Headers, body: &'a str, now: i64) -> Delivery<'a> {
        Delivery {
            headers: h,
            body: body.as_bytes(),
            path_token: None,
            request_url: None,
            received_at: Utc.timestamp_opt(now, 0).unwrap(),
        }
    }

    fn verify_at(secrets: &str, token: &str, body: &str, now: i64) -> Result<(), AuthError> {
        let h = bearer_headers(token);
        provider(secrets).verify(&delivery(&h, body, now))
    }

    #[test]
    fn computed_vector_verifies() {
        assert_eq!(sha256_hex(BODY.as_bytes()), BODY_HASH);
        let header = br#"{"alg":"HS256","typ":"JWT"}"#;
        assert_eq!(sign_jwt(RUBY_SECRET.as_bytes(), header, CLAIMS), TOKEN);
        for secrets in [RUBY_SECRET.to_owned(), format!("a1b2c3d={RUBY_SECRET}")] {
            assert_eq!(verify_at(&secrets, TOKEN, BODY, NOW), Ok(()), "{secrets}");
        }
        // Scheme case-insensitive, as any HTTP client may write it.
        let h: Headers = [(AUTHORIZATION_HEADER, format!("bearer  {TOKEN}"))]
            .into_iter()
            .collect();
        let d = delivery(&h, BODY, NOW);
        assert_eq!(provider(RUBY_SECRET).verify(&d), Ok(()));
    }

    #[test]
    fn computed_vector_rejections_name_the_check() {
        // Another body: the token signs its hash only.
        let forged = BODY.replace("\"42\"", "\"43\"");
        assert_eq!(
            verify_at(RUBY_SECRET, TOKEN, &forged, NOW),
            Err(AuthError::BodyMismatch("payload_hash"))
        );
        // iat outside the window, on both sides; at its edges still good.
        for now in [NOW - 301, NOW + 301] {
            assert_eq!(
                verify_at(RUBY_SECRET, TOKEN, BODY, now),
                Err(AuthError::Stale(300))
            );
        }
        for now in [NOW - 300, NOW + 300] {
            assert_eq!(verify_at(RUBY_SECRET, TOKEN, BODY, now), Ok(()));
        }
        // The wrong secret, and a labelled secret for another api_key, are no match.
        assert_eq!(
            verify_at(RUBY_WRONG_SECRET, TOKEN, BODY, NOW),
            Err(AuthError::BadSignature)
        );
        assert_eq!(
            verify_at(&format!("zzzzzzz={RUBY_SECRET}"), TOKEN, BODY, NOW),
            Err(AuthError::BadSignature)
        );
        // Rotation: any listed secret selected by the api_key passes.
        assert_eq!(
            verify_at(
                &format!("a1b2c3d={RUBY_WRONG_SECRET},a1b2c3d={RUBY_SECRET}"),
                TOKEN,
                BODY,
                NOW
            ),
            Ok(())
        );
        assert_eq!(
            verify_at(
                &format!("{RUBY_WRONG_SECRET},{RUBY_SECRET}"),
                TOKEN,
                BODY,
                NOW
            ),
            Ok(())
        );
    }

    #[test]
    fn ruby_sdk_token_matches_only_its_secret() {
        // Its body is not published: the MAC passes, then the body check fails.
        for secrets in [RUBY_SECRET.to_owned(), format!("a1b2c3d={RUBY_SECRET}")] {
            assert_eq!(
                verify_at(&secrets, RUBY_TOKEN, "{}", RUBY_IAT),
                Err(AuthError::BodyMismatch("payload_hash"))
            );
        }
        assert_eq!(
            verify_at(RUBY_WRONG_SECRET, RUBY_TOKEN, "{}", RUBY_IAT),
            Err(AuthError::BadSignature)
        );
        // Years after it was issued it is stale, whatever the body.
        assert_eq!(
            verify_at(RUBY_SECRET, RUBY_TOKEN, "{}", NOW),
            Err(AuthError::Stale(300))
        );
    }

    #[test]
    fn python_sdk_token_has_no_vonage_claims() {
        // The MAC passes; the token carries no payload_hash, so no body is authentic.
        assert_eq!(
            verify_at(PY_SECRET, PY_TOKEN, "{}", PY_IAT),
            Err(AuthError::Invalid("JWT has no payload_hash claim"))
        );
        assert_eq!(
            verify_at("asdf", PY_TOKEN, "{}", PY_IAT),
            Err(AuthError::BadSignature)
        );
        assert_eq!(
            verify_at(PY_SECRET, "asdf", "{}", PY_IAT),
            Err(AuthError::Invalid("bearer token is not a JWT"))
        );
    }

    #[test]
    fn other_algorithms_and_shapes_are_refused() {
        let claims = CLAIMS;
        let cases: Vec<(String, AuthError)> = vec![
            // alg none, no signature.
            (
                format!(
                    "{}.{}.",
                    B64URL.encode(br#"{"alg":"none","typ":"JWT"}"#),
                    B64URL.encode(claims)
                ),
                AuthError::Invalid("bearer token is not a JWT"),
            ),
            // alg none with a MAC anyway.
            (
                sign_jwt(RUBY_SECRET.as_bytes(), br#"{"alg":"none"}"#, claims),
                AuthError::Invalid("JWT alg is not HS256"),
            ),
            // RS256 (or HS512) keyed with the secret: not the pinned algorithm.
            (
                sign_jwt(RUBY_SECRET.as_bytes(), br#"{"alg":"RS256"}"#, claims),
                AuthError::Invalid("JWT alg is not HS256"),
            ),
            (
                sign_jwt(RUBY_SECRET.as_bytes(), br#"{"alg":"hs256"}"#, claims),
                AuthError::Invalid("JWT alg is not HS256"),
            ),
            (
                sign_jwt(RUBY_SECRET.as_bytes(), br#"{"typ":"JWT"}"#, claims),
                AuthError::Invalid("JWT alg is not HS256"),
            ),
            (
                sign_jwt(
                    RUBY_SECRET.as_bytes(),
                    br#"{"alg":"HS256","crit":["x"],"x":1}"#,
                    claims,
                ),
                AuthError::Invalid("JWT has critical header parameters"),
            ),
            // No iat; an expired exp; claims that are not an object.
            (
                sign_jwt(
                    RUBY_SECRET.as_bytes(),
                    br#"{"alg":"HS256"}"#,
                    &format!(r#"{{"payload_hash":"{BODY_HASH}"}}"#),
                ),
                AuthError::Invalid("JWT iat claim is missing or not a whole number"),
            ),
            (
                sign_jwt(
                    RUBY_SECRET.as_bytes(),
                    br#"{"alg":"HS256"}"#,
                    &format!(r#"{{"iat":"{NOW}","payload_hash":"{BODY_HASH}"}}"#),
                ),
                AuthError::Invalid("JWT iat claim is missing or not a whole number"),
            ),
            (
                sign_jwt(
                    RUBY_SECRET.as_bytes(),
                    br#"{"alg":"HS256"}"#,
                    &format!(
                        r#"{{"iat":{NOW},"exp":{},"payload_hash":"{BODY_HASH}"}}"#,
                        NOW - 1
                    ),
                ),
                AuthError::Invalid("JWT has expired"),
            ),
            (
                sign_jwt(RUBY_SECRET.as_bytes(), br#"{"alg":"HS256"}"#, "[1]"),
                AuthError::Invalid("bearer token is not a JWT"),
            ),
            (
                format!("{TOKEN}.extra"),
                AuthError::Invalid("bearer token is not a JWT"),
            ),
            (
                TOKEN.rsplit_once('.').unwrap().0.to_owned(),
                AuthError::Invalid("bearer token is not a JWT"),
            ),
            // Padding on the signature is not the encoding the MAC is compared in.
            (format!("{TOKEN}="), AuthError::BadSignature),
        ];
        for (token, expected) in cases {
            assert_eq!(
                verify_at(RUBY_SECRET, &token, BODY, NOW),
                Err(expected.clone()),
                "{token}"
            );
        }
        // An exp in the future is fine.
        let future = sign_jwt(
            RUBY_SECRET.as_bytes(),
            br#"{"alg":"HS256"}"#,
            &format!(
                r#"{{"iat":{NOW},"exp":{},"payload_hash":"{BODY_HASH}"}}"#,
                NOW + 60
            ),
        );
        assert_eq!(verify_at(RUBY_SECRET, &future, BODY, NOW), Ok(()));
    }

    #[test]
    fn authorization_header_problems_name_the_check() {
        let p = provider(RUBY_SECRET);
        let at = |h: &Headers| p.verify(&delivery(h, BODY, NOW));
        assert_eq!(
            at(&Headers::new()),
            Err(AuthError::MissingHeader(AUTHORIZATION_HEADER))
        );
        for value in [
            TOKEN.to_owned(),
            format!("Basic {TOKEN}"),
            "Bearer ".to_owned(),
        ] {
            let h: Headers = [(AUTHORIZATION_HEADER, value.clone())]
                .into_iter()
                .collect();
            let err = at(&h).unwrap_err();
            assert_eq!(
                err,
                AuthError::Invalid("authorization is not a Bearer token")
            );
            assert!(!err.to_string().contains(TOKEN));
        }
    }

    #[test]
    fn configuration() {
        assert!(Vonage::from_env(&Env::default()).unwrap().is_none());
        for bad in ["=secret", "key=", "good,key= "] {
            let err = Vonage::from_env(&Env::from_pairs([(SECRETS_VAR, bad)]))
                .err()
                .unwrap();
            assert!(err.to_string().starts_with(SECRETS_VAR), "{err}");
            assert!(!err.to_string().contains("secret=") && !err.to_string().contains("good"));
        }
        let err = Vonage::from_env(&Env::from_pairs([
            (SECRETS_VAR, "s"),
            ("VONAGE_TOLERANCE_SECS", "soon"),
        ]))
        .err()
        .unwrap();
        assert!(err.to_string().contains("VONAGE_TOLERANCE_SECS"));
        // A longer window accepts what the default refuses.
        let p = Vonage::from_env(&Env::from_pairs([
            (SECRETS_VAR, RUBY_SECRET),
            ("VONAGE_TOLERANCE_SECS", "600"),
        ]))
        .unwrap()
        .unwrap();
        let h = bearer_headers(TOKEN);
        let d = delivery(&h, BODY, NOW + 500);
        assert_eq!(p.verify(&d), Ok(()));
    }

    #[test]
    fn fixture_signer_round_trips() {
        let signer = (ENTRY.dev_signer)(&FIXTURE_SEED);
        let env = Env::from_pairs(signer.verifier_env());
        let p = Vonage::from_env(&env).unwrap().unwrap();
        let signed = signer.sign(BODY.as_bytes(), NOW, "");
        let h: Headers = signed.headers.iter().map(|(k, v)| (k, v.clone())).collect();
        let d = delivery(&h, BODY, NOW);
        assert_eq!(p.verify(&d), Ok(()));
        assert!(env.get(SECRETS_VAR).unwrap().contains('='));
        // The fixture key is not the vector's.
        assert_ne!(env.get(SECRETS_VAR), Some(RUBY_SECRET));
    }

    fn normalize(body: &str) -> CanonicalEvent {
        let h = Headers::new();
        provider(RUBY_SECRET).normalize(&delivery(&h, body, NOW + 5))
    }

    fn status(status: &str, ts: &str) -> String {
        format!(
            r#"{{"from":"447700900000","to":"442079460000","uuid":"leg-1","conversation_uuid":"CON-1","status":"{status}","direction":"outbound","timestamp":"{ts}"}}"#
        )
    }

    #[test]
    fn computed_vector_normalizes() {
        let e = normalize(BODY);
        assert_eq!(e.event_type, "completed");
        assert_eq!(
            e.call_id.as_deref(),
            Some("vonage#CON-aaaaaaaa-bbbb-cccc-dddd-0123456789ab")
        );
        assert_eq!(
            (e.kind, e.is_final, e.outcome),
            (Ended, true, Some(Outcome::Completed))
        );
        assert_eq!(e.direction, Some(Direction::Outbound));
        assert_eq!(e.occurred_at, Utc.timestamp_opt(NOW, 0).unwrap());
        assert_eq!(e.facts.ended_at, Some(Utc.timestamp_opt(NOW, 0).unwrap()));
        assert_eq!(
            e.facts.started_at,
            Some(Utc.timestamp_opt(NOW - 42, 0).unwrap())
        );
        assert_eq!(e.facts.duration_secs, Some(42));
        assert_eq!(
            e.facts.cost,
            Some(serde_json::json!({"price": "0.00315000", "rate": "0.00450000"}))
        );
        assert_eq!(
            e.event_id,
            format!(
                "vonage#{}",
                derived_key(&[
                    "status",
                    "CON-aaaaaaaa-bbbb-cccc-dddd-0123456789ab",
                    "aaaaaaaa-bbbb-cccc-dddd-0123456789ab",
                    "completed",
                    "2023-11-14T22:13:20.000Z"
                ])
            )
        );
    }

    #[test]
    fn every_status_maps() {
        for (name, kind, outcome, is_final) in MAPPING {
            let e = normalize(&status(name, "2023-11-14T22:13:01.250Z"));
            assert_eq!(e.event_type, *name);
            assert_eq!(
                (e.kind, e.outcome, e.is_final),
                (*kind, *outcome, *is_final),
                "{name}"
            );
            // Only `completed` (and `rejected`, never followed by it) end the call.
            assert_eq!(
                e.is_final,
                ["completed", "rejected"].contains(name),
                "{name}"
            );
            assert_eq!(e.call_id.as_deref(), Some("vonage#CON-1"));
            assert_eq!(
                e.occurred_at,
                "2023-11-14T22:13:01.250Z".parse::<DateTime<Utc>>().unwrap()
            );
            assert!(e.review.is_none(), "{name}");
        }
        let e = normalize(&status("teleported", "2023-11-14T22:13:01Z"));
        assert_eq!(e.kind, Unknown);
        assert_eq!(e.review.unwrap().reason, "unknown_type");
    }

    #[test]
    fn dedupe_keys_identify_one_fact_of_one_leg() {
        let a = normalize(&status("ringing", "2023-11-14T22:13:01Z"));
        assert_eq!(
            a.event_id,
            normalize(&status("ringing", "2023-11-14T22:13:01Z")).event_id
        );
        assert_ne!(
            a.event_id,
            normalize(&status("ringing", "2023-11-14T22:13:02Z")).event_id
        );
        assert_ne!(
            a.event_id,
            normalize(&status("answered", "2023-11-14T22:13:01Z")).event_id
        );
        let other_leg = status("ringing", "2023-11-14T22:13:01Z").replace("leg-1", "leg-2");
        let b = normalize(&other_leg);
        assert_ne!(a.event_id, b.event_id);
        // Both legs are the same call: the conversation.
        assert_eq!(a.call_id, b.call_id);
        // Key order and whitespace do not matter.
        let respaced = r#"{ "timestamp":"2023-11-14T22:13:01Z", "status":"ringing", "conversation_uuid":"CON-1", "uuid":"leg-1" }"#;
        assert_eq!(normalize(respaced).event_id, a.event_id);
    }

    #[test]
    fn amd_recordings_input_transfers_and_errors() {
        let machine = normalize(
            r#"{"call_uuid":"leg-1","from":"447700900000","to":"442079460000","status":"machine","conversation_uuid":"CON-1","timestamp":"2023-11-14T22:13:05Z"}"#,
        );
        assert_eq!((machine.kind, machine.outcome), (Progress, None));
        assert_eq!(machine.call_id.as_deref(), Some("vonage#CON-1"));

        let record = normalize(
            r#"{"start_time":"2023-11-14T22:12:40Z","recording_url":"https://api.nexmo.com/v1/files/bbbbbbbb-aaaa-cccc-dddd-0123456789ab","size":12222,"recording_uuid":"rec-1","end_time":"2023-11-14T22:13:20Z","conversation_uuid":"CON-1","timestamp":"2023-11-14T22:13:25Z"}"#,
        );
        assert_eq!(
            (record.kind, record.event_type.as_str()),
            (Report, "record")
        );
        assert_eq!(
            record.facts.recording_url.as_deref(),
            Some("https://api.nexmo.com/v1/files/bbbbbbbb-aaaa-cccc-dddd-0123456789ab")
        );
        assert_eq!(
            record.event_id,
            format!("vonage#{}", derived_key(&["record", "rec-1"]))
        );

        let input = normalize(
            r#"{"from":"447700900000","to":"442079460000","dtmf":{"digits":"42","timed_out":true},"uuid":"leg-1","conversation_uuid":"CON-1","timestamp":"2023-11-14T22:13:10Z"}"#,
        );
        assert_eq!((input.kind, input.event_type.as_str()), (Progress, "input"));

        let transfer = normalize(
            r#"{"conversation_uuid_from":"CON-1","conversation_uuid_to":"CON-2","uuid":"leg-1","timestamp":"2023-11-14T22:13:11Z"}"#,
        );
        assert_eq!(
            (transfer.kind, transfer.event_type.as_str()),
            (Progress, "transfer")
        );
        assert_eq!(transfer.call_id.as_deref(), Some("vonage#CON-1"));

        let error = normalize(
            r#"{"reason":"Syntax error in NCCO. Invalid value type or action.","conversation_uuid":"CON-1","timestamp":"2023-11-14T22:13:12Z"}"#,
        );
        assert_eq!((error.kind, error.event_type.as_str()), (Progress, "error"));
        assert_eq!(
            error.facts.errors.as_ref().unwrap()[0]["reason"],
            "Syntax error in NCCO. Invalid value type or action."
        );
    }

    #[test]
    fn unanswered_calls_go_to_the_call_back_outcomes() {
        let mut body: Value =
            serde_json::from_str(&status("unanswered", "2023-11-14T22:13:30Z")).unwrap();
        body["detail"] = "no_answer".into();
        let e = normalize(&body.to_string());
        assert_eq!(e.outcome, Some(Outcome::NoAnswer));
        assert_eq!(e.facts.hangup_cause.as_deref(), Some("no_answer"));
        assert_eq!(e.facts.ended_at, Some(e.occurred_at));
    }

    #[test]
    fn malformed_bodies_are_kept_for_review() {
        for body in [
            "",
            "{",
            "[]",
            "{}",
            r#"{"status":"completed","uuid":"leg-1"}"#,
            r#"{"conversation_uuid":"CON-1","uuid":"leg-1"}"#,
            r#"{"status":7,"conversation_uuid":"CON-1"}"#,
        ] {
            let e = normalize(body);
            assert_eq!(e.review.as_ref().unwrap().reason, "malformed", "{body}");
            assert!(e.event_id.starts_with("vonage#"));
        }
    }
}
