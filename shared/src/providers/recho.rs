//! Recho call events.
//!
//! Authentication is chosen per Recho endpoint, and here explicitly with RECHO_AUTH:
//! - `none`: nothing to check (must be chosen on purpose; unset RECHO_AUTH = not configured);
//! - `bearer`: `Authorization: Bearer <token>`, compared in constant time with any of
//!   RECHO_BEARER_TOKENS. The token is a secret: it is never a signed (stored) header;
//! - `rsa` (Recho's `SIGNATURE_RSA_SHA256`): RSA PKCS#1 v1.5 with SHA-256 over
//!   `{X-Recho-Timestamp}.{raw body}`, signature base64 in `X-Recho-Signature`, public keys in
//!   RECHO_PUBLIC_KEYS_PEM (comma-separated PEM, SPKI `PUBLIC KEY` or PKCS#1 `RSA PUBLIC KEY`,
//!   newlines may be written as a literal `\n`), ±300 s (RECHO_TOLERANCE_SECS). Recho does not
//!   state the padding; PKCS#1 v1.5 is the one its "RSA-SHA256" names in every common library.
//!
//! Payload: `{"projectId","webhookEndpoint","eventType","body":{"subject","text",
//! "data":{"callId","callStatus","callSid","clientId"},"errors":[…]},"authConfig"}`.
//! Recho sends no event id and no event time:
//! - dedupe key: derived from projectId, callId, eventType, callStatus, callSid (the telephony
//!   leg: tells redial attempts of one call apart) and the identity of each error (code, phase,
//!   where, timestamp; not the free-text message or stack trace);
//! - occurred_at is the receipt time, so a redelivered or delayed event of the same rank can
//!   look newer than it is: the lifecycle's rank, not time, must decide, and a terminal fact
//!   must not be overridden by a same-rank fact that arrives later.
//!
//! Call key: `body.data.callId` (else `callSid`). A non-empty `body.errors` makes the outcome
//! `failed`, even on a `*_COMPLETED` event, and is kept in `facts.errors`.

#[cfg(any(test, feature = "dev"))]
use std::collections::HashMap;
#[cfg(any(test, feature = "dev"))]
use std::sync::{Mutex, OnceLock};

use aws_lc_rs::digest;
use aws_lc_rs::signature::{ParsedPublicKey, RSA_PKCS1_2048_8192_SHA256, RsaParameters};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
#[cfg(any(test, feature = "dev"))]
use rsa::pkcs8::{EncodePublicKey, LineEnding};
#[cfg(any(test, feature = "dev"))]
use rsa::{Pkcs1v15Sign, RsaPrivateKey};
use serde_json::Value;
#[cfg(any(test, feature = "dev"))]
use sha2::{Digest, Sha256};

use super::{
    Delivery, Provider, ProviderEntry, Verified, derived_key, malformed, mark_unknown, scoped_id,
    str_at,
};
#[cfg(any(test, feature = "dev"))]
use super::{DevSigner, Signed};
use crate::config::{ConfigError, Env, vars};
use crate::delivery::UNAUTHENTICATED;
use crate::domain::event::{CanonicalEvent, Direction, Kind, Outcome};
use crate::signing::{self as verify, AuthError};

pub const NAME: &str = "recho";
pub const SIGNATURE_HEADER: &str = "x-recho-signature";
pub const TIMESTAMP_HEADER: &str = "x-recho-timestamp";
pub const AUTHORIZATION_HEADER: &str = "authorization";
const AUTH_VAR: &str = vars::RECHO_AUTH;
const ALLOW_VAR: &str = vars::RECHO_ALLOW_UNAUTHENTICATED;
const TOKENS_VAR: &str = vars::RECHO_BEARER_TOKENS;
const KEYS_VAR: &str = vars::RECHO_PUBLIC_KEYS_PEM;
/// Smallest RSA modulus accepted in configuration.
pub const MIN_KEY_BITS: usize = 2048;
#[cfg(any(test, feature = "dev"))]
const DEV_KEY_BITS: usize = 2048;

use Kind::*;

pub const ENTRY: ProviderEntry = ProviderEntry {
    name: NAME,
    from_env: Recho::from_env,
    normalizer,
    #[cfg(any(test, feature = "dev"))]
    dev_signer: |seed| Box::new(RechoSigner(dev_key(seed))),
};

/// Every Recho `eventType` (12 outbound + 6 inbound) → kind, outcome, and whether it is the
/// call's terminal fact. A non-empty `body.errors` turns the outcome of an ended fact into
/// `failed`.
pub const MAPPING: &[(&str, Kind, Option<Outcome>, bool)] = &[
    ("OUTBOUND_CALL_PENDING", Queued, None, false),
    ("OUTBOUND_CALL_REQUESTED", Initiated, None, false),
    // "Ringing the recipient, or the call is being connected": Recho sends no answer event for
    // outbound calls, so the call stays at ringing until it ends.
    ("OUTBOUND_CALL_CALLING", Ringing, None, false),
    // Wrap-up after disconnection: the call has ended, its outcome comes with the terminal fact.
    ("OUTBOUND_CALL_CLOSING", Ended, None, false),
    (
        "OUTBOUND_CALL_COMPLETED",
        Ended,
        Some(Outcome::Completed),
        true,
    ),
    ("OUTBOUND_CALL_EXPIRED", Ended, Some(Outcome::Failed), true),
    (
        "OUTBOUND_CALL_NO_RESPONSE",
        Ended,
        Some(Outcome::NoAnswer),
        true,
    ),
    (
        "OUTBOUND_CALL_CANCELED",
        Ended,
        Some(Outcome::Canceled),
        true,
    ),
    ("OUTBOUND_CALL_BUSY", Ended, Some(Outcome::Busy), true),
    (
        "OUTBOUND_CALL_UNREACHABLE",
        Ended,
        Some(Outcome::NoAnswer),
        true,
    ),
    (
        "OUTBOUND_CALL_MAX_ATTEMPTS_REACHED",
        Ended,
        Some(Outcome::NoAnswer),
        true,
    ),
    ("OUTBOUND_CALL_ERROR", Ended, Some(Outcome::Failed), true),
    ("INBOUND_CALL_CONNECTING", Initiated, None, false),
    // "Established and conversation is in progress".
    ("INBOUND_CALL_CALLING", Answered, None, false),
    ("INBOUND_CALL_CLOSING", Ended, None, false),
    (
        "INBOUND_CALL_COMPLETED",
        Ended,
        Some(Outcome::Completed),
        true,
    ),
    (
        "INBOUND_CALL_CONCURRENCY_LIMIT_EXCEEDED",
        Ended,
        Some(Outcome::Failed),
        true,
    ),
    ("INBOUND_CALL_ERROR", Ended, Some(Outcome::Failed), true),
];

/// How deliveries to this endpoint are authenticated.
pub enum Auth {
    None,
    Bearer(Vec<String>),
    Rsa(Vec<RsaKey>),
}

/// A configured RSA public key, parsed once (verification is AWS-LC's, the library the TLS
/// stack already links), with its PKCS#1 `RSAPublicKey` DER.
#[derive(Clone)]
pub struct RsaKey {
    pkcs1_der: Vec<u8>,
    parsed: ParsedPublicKey,
}

impl RsaKey {
    /// The key as a PKCS#1 `RSAPublicKey` DER, whichever form it was configured in.
    pub fn pkcs1_der(&self) -> &[u8] {
        &self.pkcs1_der
    }
}

impl PartialEq for RsaKey {
    fn eq(&self, other: &Self) -> bool {
        self.pkcs1_der == other.pkcs1_der
    }
}

impl std::fmt::Debug for RsaKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RsaKey({} bytes)", self.pkcs1_der.len())
    }
}

pub struct Recho {
    auth: Auth,
    tolerance_secs: u64,
}

impl Recho {
    pub fn new(auth: Auth, tolerance_secs: u64) -> Self {
        Recho {
            auth,
            tolerance_secs,
        }
    }

    pub fn from_env(env: &Env) -> Result<Option<Box<dyn Provider>>, ConfigError> {
        let Some(mode) = env.get(AUTH_VAR) else {
            return Ok(None);
        };
        let auth = match mode.to_ascii_lowercase().as_str() {
            "none" => {
                // Anyone could post facts for any Recho call: a second, explicit consent.
                let allowed = env
                    .get(ALLOW_VAR)
                    .is_some_and(|v| v.eq_ignore_ascii_case("true"));
                if !allowed {
                    return Err(ConfigError::invalid(
                        ALLOW_VAR,
                        "must be true to run Recho without authentication: anyone can then post \
                         Recho events (they never feed the call-back route)",
                    ));
                }
                Auth::None
            }
            "bearer" => {
                let tokens = env.list(TOKENS_VAR);
                if tokens.is_empty() {
                    return Err(ConfigError::missing(TOKENS_VAR));
                }
                Auth::Bearer(tokens.into_iter().map(str::to_owned).collect())
            }
            "rsa" | "signature_rsa_sha256" => {
                let pems = env.list(KEYS_VAR);
                if pems.is_empty() {
                    return Err(ConfigError::missing(KEYS_VAR));
                }
                Auth::Rsa(
                    pems.iter()
                        .map(|pem| parse_public_key(KEYS_VAR, pem))
                        .collect::<Result<_, _>>()?,
                )
            }
            _ => {
                return Err(ConfigError::invalid(
                    AUTH_VAR,
                    "expected none, bearer or rsa",
                ));
            }
        };
        Ok(Some(Box::new(Recho::new(
            auth,
            env.tolerance_secs(vars::RECHO_TOLERANCE_SECS, 300)?,
        ))))
    }
}

/// Parses one PEM public key, SPKI (`BEGIN PUBLIC KEY`) or PKCS#1 (`BEGIN RSA PUBLIC KEY`).
/// Line breaks may be real, written as a literal `\n`, or missing: only the armour labels and
/// the base64 between them matter.
pub fn parse_public_key(var: &'static str, pem: &str) -> Result<RsaKey, ConfigError> {
    let text = pem.replace("\\r", "").replace("\\n", "\n");
    let invalid = |problem: &str| ConfigError::invalid(var, problem);
    let (label, rest) = text
        .trim()
        .strip_prefix("-----BEGIN ")
        .and_then(|rest| rest.split_once("-----"))
        .ok_or_else(|| invalid("a key is not a PEM block (-----BEGIN … PUBLIC KEY-----)"))?;
    let end = format!("-----END {label}-----");
    let (encoded, _) = rest
        .split_once(&end)
        .ok_or_else(|| invalid("a PEM block has no matching END line"))?;
    let encoded: String = encoded.chars().filter(|c| !c.is_whitespace()).collect();
    let der = B64
        .decode(encoded)
        .map_err(|_| invalid("a PEM block is not valid base64"))?;
    let not_a_key = match label {
        "PUBLIC KEY" => "a PUBLIC KEY is not an RSA public key",
        "RSA PUBLIC KEY" => "an RSA PUBLIC KEY is not a valid PKCS#1 key",
        _ => return Err(invalid("expected a PUBLIC KEY or RSA PUBLIC KEY PEM block")),
    };
    // Either form (SPKI or PKCS#1) reads back as PKCS#1.
    let pkcs1_der = aws_lc_rs::rsa::PublicKey::from_der(&der)
        .map_err(|_| invalid(not_a_key))?
        .as_ref()
        .to_vec();
    let bits = RsaParameters::public_modulus_len(&pkcs1_der).map_err(|_| invalid(not_a_key))?;
    if (bits as usize) < MIN_KEY_BITS {
        return Err(invalid("an RSA key is shorter than 2048 bits"));
    }
    let parsed = ParsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, &pkcs1_der)
        .map_err(|_| invalid(not_a_key))?;
    Ok(RsaKey { pkcs1_der, parsed })
}

/// SHA-256 of what Recho signs: `{timestamp}.{raw body}`, without copying the body.
fn signed_digest(timestamp: &str, body: &[u8]) -> digest::Digest {
    let mut context = digest::Context::new(&digest::SHA256);
    context.update(timestamp.as_bytes());
    context.update(b".");
    context.update(body);
    context.finish()
}

/// The provider for normalizing stored events: no credentials (it is wrapped so that it
/// verifies nothing).
fn normalizer(_env: &Env) -> Result<Box<dyn Provider>, ConfigError> {
    Ok(Box::new(Recho::new(Auth::Bearer(Vec::new()), 0)))
}

impl Provider for Recho {
    fn name(&self) -> &'static str {
        NAME
    }

    fn signed_headers(&self) -> &'static [&'static str] {
        match self.auth {
            Auth::Rsa(_) => &[SIGNATURE_HEADER, TIMESTAMP_HEADER],
            // A bearer token is a secret, never stored; `none` has nothing to re-verify.
            Auth::None | Auth::Bearer(_) => &[],
        }
    }

    fn authenticate(&self, d: &Delivery<'_>) -> Result<Verified, AuthError> {
        self.verify(d)?;
        Ok(Verified {
            unauthenticated: !self.authenticates(),
            ..Verified::default()
        })
    }

    fn authenticates(&self) -> bool {
        !matches!(self.auth, Auth::None)
    }

    fn normalize(&self, d: &Delivery<'_>) -> CanonicalEvent {
        let mut event = self.normalize_body(d);
        // Set by ingest, kept with the stored delivery: an event nobody authenticated.
        event.unauthenticated = d.headers.get(UNAUTHENTICATED).is_some();
        event
    }

    fn verify(&self, d: &Delivery<'_>) -> Result<(), AuthError> {
        match &self.auth {
            Auth::None => Ok(()),
            Auth::Bearer(tokens) => {
                let presented = d
                    .headers
                    .get(AUTHORIZATION_HEADER)
                    .and_then(super::bearer)
                    .ok_or(AuthError::BadBearer)?;
                if verify::matches_any(presented.as_bytes(), tokens) {
                    Ok(())
                } else {
                    Err(AuthError::BadBearer)
                }
            }
            Auth::Rsa(keys) => {
                let signature = d.headers.require(SIGNATURE_HEADER)?;
                let timestamp = d.headers.require(TIMESTAMP_HEADER)?;
                let signature = verify::decode_b64(SIGNATURE_HEADER, signature)?;
                if signature.is_empty() {
                    return Err(AuthError::Malformed(SIGNATURE_HEADER));
                }
                verify::check_timestamp(
                    TIMESTAMP_HEADER,
                    timestamp,
                    d.received_at,
                    self.tolerance_secs,
                )?;
                let digest = signed_digest(timestamp, d.body);
                let valid = keys
                    .iter()
                    .any(|key| key.parsed.verify_digest_sig(&digest, &signature).is_ok());
                if valid {
                    Ok(())
                } else {
                    Err(AuthError::BadSignature)
                }
            }
        }
    }
}

impl Recho {
    fn normalize_body(&self, d: &Delivery<'_>) -> CanonicalEvent {
        let Ok(mut payload) = serde_json::from_slice::<Value>(d.body) else {
            return malformed(NAME, d.body, d.received_at, "body is not JSON");
        };
        let Some(event_type) = str_at(&payload, "/eventType") else {
            return malformed(NAME, d.body, d.received_at, "missing eventType");
        };
        let Some(call_key) = str_at(&payload, "/body/data/callId")
            .or_else(|| str_at(&payload, "/body/data/callSid"))
        else {
            return malformed(NAME, d.body, d.received_at, "missing body.data.callId");
        };
        let errors = payload
            .pointer("/body/errors")
            .filter(|errors| match errors {
                Value::Array(a) => !a.is_empty(),
                Value::Object(o) => !o.is_empty(),
                _ => false,
            })
            .cloned();
        let key = derived_key(&[
            str_at(&payload, "/projectId").unwrap_or(""),
            str_at(&payload, "/body/data/callId").unwrap_or(""),
            event_type,
            str_at(&payload, "/body/data/callStatus").unwrap_or(""),
            str_at(&payload, "/body/data/callSid").unwrap_or(""),
            &errors.as_ref().map(error_identity).unwrap_or_default(),
        ]);
        let mut event = CanonicalEvent::new(NAME, &key, event_type, d.received_at);
        event.call_id = Some(scoped_id(NAME, call_key));
        // Recho sends no event time: receipt time it is (see the module docs).
        event.occurred_at = d.received_at;
        event.direction = if event_type.starts_with("OUTBOUND_") {
            Some(Direction::Outbound)
        } else if event_type.starts_with("INBOUND_") {
            Some(Direction::Inbound)
        } else {
            None
        };
        event.facts.errors = errors;

        match MAPPING.iter().find(|(t, _, _, _)| *t == event.event_type) {
            Some((_, kind, outcome, is_final)) => {
                event.kind = *kind;
                event.is_final = *is_final;
                event.outcome = *outcome;
                if event.facts.errors.is_some() && *kind == Ended {
                    event.outcome = Some(Outcome::Failed);
                }
                match kind {
                    Initiated => event.facts.started_at = Some(event.occurred_at),
                    Answered => event.facts.answered_at = Some(event.occurred_at),
                    Ended => event.facts.ended_at = Some(event.occurred_at),
                    _ => {}
                }
            }
            None => mark_unknown(&mut event),
        }
        // The inner body (subject, text, data, errors); endpoint and auth settings stay in the
        // stored raw body only.
        event.data = payload
            .get_mut("body")
            .map(Value::take)
            .unwrap_or(Value::Null);
        event
    }
}

/// What identifies the reported errors: code, phase, place and time of each, in order. Free
/// text (message, stack trace) is left out.
fn error_identity(errors: &Value) -> String {
    let one = |e: &Value| {
        ["code", "phase", "where", "timestamp"]
            .iter()
            .map(|field| e.get(*field).map(Value::to_string).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\u{1f}")
    };
    match errors {
        Value::Array(list) => list.iter().map(one).collect::<Vec<_>>().join("\u{1e}"),
        other => one(other),
    }
}

#[cfg(any(test, feature = "dev"))]
/// The dev key for `seed`: 2048-bit RSA from a ChaCha20 stream seeded with it. Generation takes
/// a while, so keys are made once per seed and process.
fn dev_key(seed: &[u8; 32]) -> RsaPrivateKey {
    use rand_chacha::ChaCha20Rng;
    use rand_chacha::rand_core::SeedableRng;
    static KEYS: OnceLock<Mutex<HashMap<[u8; 32], RsaPrivateKey>>> = OnceLock::new();
    let mut keys = KEYS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    keys.entry(*seed)
        .or_insert_with(|| {
            let mut rng = ChaCha20Rng::from_seed(*seed);
            RsaPrivateKey::new(&mut rng, DEV_KEY_BITS).expect("RSA key generation")
        })
        .clone()
}

#[cfg(any(test, feature = "dev"))]
struct RechoSigner(RsaPrivateKey);

#[cfg(any(test, feature = "dev"))]
impl RechoSigner {
    /// The public key as one line of PEM with literal `\n`s, as it is written in an env file.
    fn public_pem(&self) -> String {
        self.0
            .to_public_key()
            .to_public_key_pem(LineEnding::LF)
            .expect("PEM encoding of a public key")
            .trim_end()
            .replace('\n', "\\n")
    }
}

#[cfg(any(test, feature = "dev"))]
impl DevSigner for RechoSigner {
    fn verifier_env(&self) -> Vec<(&'static str, String)> {
        vec![(AUTH_VAR, "rsa".to_owned()), (KEYS_VAR, self.public_pem())]
    }

    fn sign(&self, body: &[u8], timestamp: i64, _url: &str) -> Signed {
        let ts = timestamp.to_string();
        let signature = self
            .0
            .sign(
                Pkcs1v15Sign::new::<Sha256>(),
                &Sha256::digest([ts.as_bytes(), b".", body].concat()),
            )
            .expect("RSA signing with a 2048-bit key");
        Signed {
            headers: vec![
                (SIGNATURE_HEADER.to_owned(), verify::encode_b64(&signature)),
                (TIMESTAMP_HEADER.to_owned(), ts),
            ],
            path_token: None,
            url: None,
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn none_needs_its_own_consent_and_marks_every_event_unauthenticated() {
        let err = Recho::from_env(&Env::from_pairs([(AUTH_VAR, "none")]))
            .err()
            .expect("RECHO_AUTH=none alone is refused")
            .to_string();
        assert!(
            err.starts_with("RECHO_ALLOW_UNAUTHENTICATED is invalid"),
            "{err}"
        );
        let refused = Env::from_pairs([(AUTH_VAR, "none"), (ALLOW_VAR, "false")]);
        assert!(Recho::from_env(&refused).is_err());
        let recho = Recho::from_env(&Env::from_pairs([(AUTH_VAR, "none"), (ALLOW_VAR, "true")]))
            .unwrap()
            .unwrap();
        assert!(!recho.authenticates());
        let body = br#"{"projectId":"p","eventType":"OUTBOUND_CALL_BUSY","body":{"data":{"callId":"c1"}}}"#;
        let headers = Headers::new();
        let delivery = Delivery {
            headers: &headers,
            body,
            path_token: None,
            request_url: None,
            received_at: chrono::Utc::now(),
        };
        let verified = recho.authenticate(&delivery).unwrap();
        assert!(verified.unauthenticated);
        // The mark travels as a pseudo-header, so the stored copy normalizes alike.
        let marked = verified.apply(&headers);
        let event = recho.normalize(&Delivery {
            headers: &marked,
            ..delivery
        });
        assert!(event.unauthenticated);
        assert!(!recho.normalize(&delivery).unauthenticated);
        // A request cannot bring the mark off (or on) itself: ingest drops pseudo-headers.
        let forged: Headers = [(crate::delivery::UNAUTHENTICATED, "true")]
            .into_iter()
            .collect();
        assert!(
            crate::delivery::Verified::default()
                .apply(&forged)
                .get(crate::delivery::UNAUTHENTICATED)
                .is_none()
        );
        // Other modes authenticate.
        let bearer = Recho::from_env(&Env::from_pairs([
            (AUTH_VAR, "bearer"),
            (TOKENS_VAR, "a-recho-bearer-token"),
        ]))
        .unwrap()
        .unwrap();
        assert!(bearer.authenticates());
    }

    use rsa::traits::PublicKeyParts;

    use super::*;
    use crate::providers::{FIXTURE_SEED, Headers};
    use chrono::{TimeZone, Utc};

    const NOW: i64 = 1_750_000_000;

    fn delivery<'a>(h: &'a Headers, body: &'a [u8], now: i64) -> Delivery<'a> {
        Delivery {
            headers: h,
            body,
            path_token: None,
            request_url: None,
            received_at: Utc.timestamp_opt(now, 0).unwrap(),
        }
    }

    fn signer() -> RechoSigner {
        RechoSigner(dev_key(&FIXTURE_SEED))
    }

    fn rsa_provider(pems: &str) -> Box<dyn Provider> {
        Recho::from_env(&Env::from_pairs([(AUTH_VAR, "rsa"), (KEYS_VAR, pems)]))
            .unwrap()
            .unwrap()
    }

    fn pkcs1_der(public: &rsa::RsaPublicKey) -> Vec<u8> {
        rsa::pkcs1::EncodeRsaPublicKey::to_pkcs1_der(public)
            .unwrap()
            .as_bytes()
            .to_vec()
    }

    fn signed_headers(s: &RechoSigner, body: &[u8], ts: i64) -> Headers {
        s.sign(body, ts, "").headers.into_iter().collect()
    }

    const BODY: &str = r#"{"projectId":"prj_1","eventType":"INBOUND_CALL_COMPLETED","body":{"subject":"Inbound Completed","text":"","data":{"callId":"call_1","callStatus":"COMPLETED","callSid":"CA1","clientId":"cl_1"},"errors":[]},"authConfig":{"authType":"SIGNATURE_RSA_SHA256"}}"#;

    #[test]
    fn dev_keys_are_deterministic_and_2048_bits() {
        let a = dev_key(&FIXTURE_SEED);
        assert_eq!(a.n().bits(), 2048);
        let pem = signer().public_pem();
        assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----\\n"), "{pem}");
        assert!(!pem.contains('\n'));
        assert_eq!(
            parse_public_key(KEYS_VAR, &pem).unwrap().pkcs1_der(),
            pkcs1_der(&a.to_public_key())
        );
    }

    #[test]
    fn rsa_signatures_verify_and_tampering_fails() {
        let s = signer();
        let p = rsa_provider(&s.public_pem());
        let h = signed_headers(&s, BODY.as_bytes(), NOW);
        assert_eq!(p.verify(&delivery(&h, BODY.as_bytes(), NOW + 10)), Ok(()));
        assert_eq!(p.signed_headers(), &[SIGNATURE_HEADER, TIMESTAMP_HEADER]);

        let mut body = BODY.as_bytes().to_vec();
        body[5] ^= 1;
        assert_eq!(
            p.verify(&delivery(&h, &body, NOW)),
            Err(AuthError::BadSignature)
        );
        assert_eq!(
            p.verify(&delivery(&h, BODY.as_bytes(), NOW + 301)),
            Err(AuthError::Stale(300))
        );
        let other_ts: Headers = h
            .iter()
            .map(|(k, v)| {
                if k == TIMESTAMP_HEADER {
                    (k, (NOW + 1).to_string())
                } else {
                    (k, v.to_owned())
                }
            })
            .collect();
        assert_eq!(
            p.verify(&delivery(&other_ts, BODY.as_bytes(), NOW)),
            Err(AuthError::BadSignature)
        );
        let bad: Headers = [(SIGNATURE_HEADER, "!!"), (TIMESTAMP_HEADER, "1")]
            .into_iter()
            .collect();
        assert_eq!(
            p.verify(&delivery(&bad, BODY.as_bytes(), NOW)),
            Err(AuthError::Malformed(SIGNATURE_HEADER))
        );
        let none = Headers::new();
        assert_eq!(
            p.verify(&delivery(&none, BODY.as_bytes(), NOW)),
            Err(AuthError::MissingHeader(SIGNATURE_HEADER))
        );
    }

    #[test]
    fn rotation_and_both_pem_forms() {
        let s = signer();
        let other = RechoSigner(dev_key(&[1; 32]));
        let public = s.0.to_public_key();
        // PKCS#1 form, with real newlines, listed after another key.
        let pkcs1 = rsa::pkcs1::EncodeRsaPublicKey::to_pkcs1_pem(&public, LineEnding::LF).unwrap();
        assert!(pkcs1.starts_with("-----BEGIN RSA PUBLIC KEY-----\n"));
        let p = rsa_provider(&format!("{},{pkcs1}", other.public_pem()));
        let h = signed_headers(&s, BODY.as_bytes(), NOW);
        assert_eq!(p.verify(&delivery(&h, BODY.as_bytes(), NOW)), Ok(()));
        let p = rsa_provider(&other.public_pem());
        assert_eq!(
            p.verify(&delivery(&h, BODY.as_bytes(), NOW)),
            Err(AuthError::BadSignature)
        );
        // CRLF line ends and no line breaks at all parse as well.
        let crlf = public.to_public_key_pem(LineEnding::CRLF).unwrap();
        assert_eq!(
            parse_public_key(KEYS_VAR, &crlf).unwrap().pkcs1_der(),
            pkcs1_der(&public)
        );
        let flat = s.public_pem().replace("\\n", "");
        assert_eq!(
            parse_public_key(KEYS_VAR, &flat).unwrap().pkcs1_der(),
            pkcs1_der(&public)
        );
    }

    #[test]
    fn bearer_tokens_in_constant_time_and_never_stored() {
        let p = Recho::from_env(&Env::from_pairs([
            (AUTH_VAR, "bearer"),
            (TOKENS_VAR, "old-token,new-token"),
        ]))
        .unwrap()
        .unwrap();
        assert!(p.signed_headers().is_empty());
        for (value, expected) in [
            ("Bearer new-token", Ok(())),
            ("bearer old-token", Ok(())),
            ("Bearer  new-token ", Ok(())),
            ("Bearer new-toke", Err(AuthError::BadBearer)),
            ("Bearer ", Err(AuthError::BadBearer)),
            ("Basic new-token", Err(AuthError::BadBearer)),
            ("new-token", Err(AuthError::BadBearer)),
        ] {
            let h: Headers = [(AUTHORIZATION_HEADER, value)].into_iter().collect();
            assert_eq!(
                p.verify(&delivery(&h, BODY.as_bytes(), NOW)),
                expected,
                "{value}"
            );
        }
        let none = Headers::new();
        assert_eq!(
            p.verify(&delivery(&none, BODY.as_bytes(), NOW)),
            Err(AuthError::BadBearer)
        );
    }

    #[test]
    fn configuration_must_be_explicit() {
        assert!(Recho::from_env(&Env::default()).unwrap().is_none());
        let none = Recho::from_env(&Env::from_pairs([(AUTH_VAR, "NONE"), (ALLOW_VAR, "TRUE")]))
            .unwrap()
            .unwrap();
        let h = Headers::new();
        assert_eq!(none.verify(&delivery(&h, b"anything", NOW)), Ok(()));

        let err = |pairs: &[(&str, &str)]| {
            Recho::from_env(&Env::from_pairs(pairs.iter().copied()))
                .err()
                .expect("a configuration error")
                .to_string()
        };
        assert_eq!(
            err(&[(AUTH_VAR, "bearer")]),
            "RECHO_BEARER_TOKENS is not set"
        );
        assert_eq!(
            err(&[(AUTH_VAR, "rsa")]),
            "RECHO_PUBLIC_KEYS_PEM is not set"
        );
        assert!(err(&[(AUTH_VAR, "hmac")]).starts_with("RECHO_AUTH is invalid"));
        let bad_pem = err(&[
            (AUTH_VAR, "rsa"),
            (KEYS_VAR, "-----BEGIN PUBLIC KEY-----AAAA"),
        ]);
        assert!(
            bad_pem.starts_with("RECHO_PUBLIC_KEYS_PEM is invalid"),
            "{bad_pem}"
        );
        let garbage = "-----BEGIN PUBLIC KEY-----\\nAAAA\\n-----END PUBLIC KEY-----";
        assert!(err(&[(AUTH_VAR, "rsa"), (KEYS_VAR, garbage)]).contains(KEYS_VAR));
        let ec = "-----BEGIN EC PUBLIC KEY-----\\nAAAA\\n-----END EC PUBLIC KEY-----";
        assert!(err(&[(AUTH_VAR, "rsa"), (KEYS_VAR, ec)]).contains(KEYS_VAR));
        // Recho's own name for the scheme is accepted too.
        let s = signer();
        assert!(
            Recho::from_env(&Env::from_pairs([
                (AUTH_VAR, "SIGNATURE_RSA_SHA256".to_owned()),
                (KEYS_VAR, s.public_pem()),
            ]))
            .unwrap()
            .is_some()
        );
    }

    #[test]
    fn short_keys_are_refused() {
        let mut rng = {
            use rand_chacha::rand_core::SeedableRng;
            rand_chacha::ChaCha20Rng::from_seed([3; 32])
        };
        let small = RsaPrivateKey::new(&mut rng, 1024).unwrap();
        let pem = small
            .to_public_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap();
        let err = parse_public_key(KEYS_VAR, &pem).unwrap_err().to_string();
        assert!(err.contains("2048"), "{err}");
    }

    fn normalize(body: &str) -> CanonicalEvent {
        let p = Recho::new(Auth::None, 300);
        let h = Headers::new();
        p.normalize(&delivery(&h, body.as_bytes(), NOW))
    }

    fn event(event_type: &str, errors: &str) -> String {
        format!(
            r#"{{"projectId":"prj_1","webhookEndpoint":{{"id":"we_1","name":"callhook","endpointType":"WEBHOOK","target":"https://hooks.example.com/webhooks/recho","contentKey":"body"}},"eventType":"{event_type}","body":{{"subject":"s","text":"t","data":{{"callId":"call_1","callStatus":"S","callSid":"CA1","clientId":"cl_1"}},"errors":{errors}}},"authConfig":{{"authType":"NONE"}}}}"#
        )
    }

    #[test]
    fn every_event_type_maps() {
        assert_eq!(MAPPING.len(), 18);
        for (event_type, kind, outcome, is_final) in MAPPING {
            let e = normalize(&event(event_type, "[]"));
            assert_eq!(e.kind, *kind, "{event_type}");
            assert_eq!(e.outcome, *outcome, "{event_type}");
            assert_eq!(e.is_final, *is_final, "{event_type}");
            assert!(e.review.is_none(), "{event_type}");
            assert_eq!(e.call_id.as_deref(), Some("recho#call_1"));
            assert_eq!(e.occurred_at, e.received_at);
            assert_eq!(e.facts.errors, None);
            let direction = if event_type.starts_with("OUT") {
                Direction::Outbound
            } else {
                Direction::Inbound
            };
            assert_eq!(e.direction, Some(direction));
            assert_eq!(e.data["data"]["callSid"], "CA1");
            assert!(e.data.get("authConfig").is_none());
        }
        assert_eq!(
            MAPPING
                .iter()
                .filter(|(t, ..)| t.starts_with("OUTBOUND_"))
                .count(),
            12
        );
        // Every ended fact but the wrap-up phase is terminal.
        for (event_type, kind, outcome, is_final) in MAPPING {
            assert_eq!(*is_final, outcome.is_some(), "{event_type}");
            assert_eq!(
                *is_final,
                *kind == Ended && !event_type.ends_with("_CLOSING"),
                "{event_type}"
            );
        }
    }

    #[test]
    fn errors_make_a_completed_call_failed() {
        let errors = r#"[{"code":"TTS_TIMEOUT","message":"tts timed out","timestamp":"2025-06-15T10:00:00Z","where":"tts","phase":"CALLING","stacktrace":"at x"}]"#;
        let e = normalize(&event("OUTBOUND_CALL_COMPLETED", errors));
        assert_eq!(e.outcome, Some(Outcome::Failed));
        assert!(e.is_final);
        assert_eq!(e.facts.errors.as_ref().unwrap()[0]["code"], "TTS_TIMEOUT");
        // Errors on a fact that is not an ending are kept, without an outcome.
        let e = normalize(&event("INBOUND_CALL_CALLING", errors));
        assert_eq!(e.outcome, None);
        assert!(e.facts.errors.is_some());
        // An empty list is no error.
        let e = normalize(&event("OUTBOUND_CALL_COMPLETED", "[]"));
        assert_eq!(e.outcome, Some(Outcome::Completed));
    }

    #[test]
    fn dedupe_keys() {
        let completed = normalize(&event("OUTBOUND_CALL_COMPLETED", "[]"));
        assert_eq!(
            completed.event_id,
            normalize(&event("OUTBOUND_CALL_COMPLETED", "[]")).event_id
        );
        // Whitespace or key order of a re-serialized copy does not matter.
        let reordered = event("OUTBOUND_CALL_COMPLETED", "[ ]")
            .replace(r#""projectId":"prj_1","#, r#""projectId" : "prj_1" , "#);
        assert_eq!(completed.event_id, normalize(&reordered).event_id);
        let closing = normalize(&event("OUTBOUND_CALL_CLOSING", "[]"));
        assert_ne!(completed.event_id, closing.event_id);
        // A second attempt of the same call (another telephony leg) is another fact.
        let retry = normalize(&event("OUTBOUND_CALL_NO_RESPONSE", "[]").replace("CA1", "CA2"));
        let first = normalize(&event("OUTBOUND_CALL_NO_RESPONSE", "[]"));
        assert_ne!(first.event_id, retry.event_id);
        // Two different errors are two facts; the same error re-sent with other text is one.
        let e1 = r#"[{"code":"A","timestamp":"2025-06-15T10:00:00Z","message":"x"}]"#;
        let e1b = r#"[{"code":"A","timestamp":"2025-06-15T10:00:00Z","message":"y"}]"#;
        let e2 = r#"[{"code":"B","timestamp":"2025-06-15T10:00:05Z","message":"x"}]"#;
        let a = normalize(&event("OUTBOUND_CALL_ERROR", e1)).event_id;
        assert_eq!(a, normalize(&event("OUTBOUND_CALL_ERROR", e1b)).event_id);
        assert_ne!(a, normalize(&event("OUTBOUND_CALL_ERROR", e2)).event_id);
    }

    #[test]
    fn unknown_and_malformed_are_kept_for_review() {
        let e = normalize(&event("OUTBOUND_CALL_TELEPORTED", "[]"));
        assert_eq!(e.kind, Kind::Unknown);
        assert_eq!(e.review.unwrap().reason, "unknown_type");
        assert_eq!(e.call_id.as_deref(), Some("recho#call_1"));
        for body in [
            "{",
            "[]",
            "null",
            r#"{"eventType":"INBOUND_CALL_COMPLETED"}"#,
            r#"{"eventType":"INBOUND_CALL_COMPLETED","body":{"data":{"callId":7}}}"#,
            "",
        ] {
            let e = normalize(body);
            assert_eq!(e.review.as_ref().unwrap().reason, "malformed", "{body}");
            assert!(e.event_id.starts_with("recho#"));
        }
        // No callId, but the telephony SID names the call.
        let e = normalize(
            &event("INBOUND_CALL_CONCURRENCY_LIMIT_EXCEEDED", "[]")
                .replace(r#""callId":"call_1","#, ""),
        );
        assert_eq!(e.call_id.as_deref(), Some("recho#CA1"));
        assert!(e.review.is_none());
    }
}
