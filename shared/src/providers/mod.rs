//! One module per provider: how its deliveries are authenticated and how its events map to the
//! canonical event. Adding a provider is one new module here, its variables in `config::vars`
//! and one line in [`CONSTRUCTORS`].

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::config::{ConfigError, Env};
pub use crate::delivery::{AuthError, Delivery, Headers, Verified};
use crate::domain::event::{CanonicalEvent, Kind, ReviewNote};
use crate::domain::review::ReviewReason;

pub mod bird;
pub mod elevenlabs;
pub mod form;
pub mod keys;
pub mod miraiminds;
pub mod plivo;
#[cfg(test)]
mod proptests;
pub mod recho;
pub mod retell;
pub mod standard;
pub mod stateset;
pub mod telnyx;
pub mod twilio;
pub mod vapi;
pub mod vonage;

/// A provider: authenticate, then map to the canonical event.
pub trait Provider: Send + Sync {
    /// The `{provider}` path segment and the event id prefix.
    fn name(&self) -> &'static str;

    /// Headers that must be stored with the raw body so the delivery can be verified again.
    /// Bearer tokens and other secrets never belong here.
    fn signed_headers(&self) -> &'static [&'static str];

    /// The signature covers the request URL too (then it is stored with the body).
    fn signs_url(&self) -> bool {
        false
    }

    /// Checks the delivery's authenticity on its raw bytes, before anything parses them.
    fn verify(&self, delivery: &Delivery<'_>) -> Result<(), AuthError>;

    /// [`Provider::verify`], saying what the check established beyond "authentic" (which
    /// named sender's key verified it): ingest calls this one and keeps the answer with the
    /// delivery, where [`Provider::normalize`] reads it.
    fn authenticate(&self, delivery: &Delivery<'_>) -> Result<Verified, AuthError> {
        self.verify(delivery).map(|()| Verified::default())
    }

    /// False for a provider configured to accept anyone's posts (RECHO_AUTH=none).
    fn authenticates(&self) -> bool {
        true
    }

    /// Maps an authentic delivery to the canonical event. Never fails: an unknown type or a body
    /// that is not the documented shape comes back with `review` set.
    /// `delivery` is the live request or a stored one being replayed (its signed headers, raw
    /// body and original receipt time), so normalizing must depend on nothing else.
    fn normalize(&self, delivery: &Delivery<'_>) -> CanonicalEvent;
}

#[cfg(any(test, feature = "dev"))]
/// What a sender needs to sign a delivery so that this provider's `verify` accepts it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Signed {
    pub headers: Vec<(String, String)>,
    /// For providers authenticated by a secret path segment.
    pub path_token: Option<String>,
    /// The URL to deliver to when signing changed it (Twilio adds `bodySHA256` to the URL of
    /// a JSON delivery); `None`: the URL given to [`DevSigner::sign`].
    pub url: Option<String>,
}

#[cfg(any(test, feature = "dev"))]
/// Plays the provider's side: `callhook send`, fixtures and tests sign with it. Never used on
/// the ingest path. Built from a 32-byte seed so dev keys and fixture keys are reproducible.
pub trait DevSigner: Send + Sync {
    /// Environment that configures the verifying side to accept what this signer signs.
    fn verifier_env(&self) -> Vec<(&'static str, String)>;

    /// Signs `body` as the provider would, at `timestamp` (Unix seconds), for a delivery to
    /// `url` (the full URL the request is sent to).
    fn sign(&self, body: &[u8], timestamp: i64, url: &str) -> Signed;
}

/// Builds a provider from the environment.
pub type FromEnv = fn(&Env) -> Result<Option<Box<dyn Provider>>, ConfigError>;

/// One provider's entry points.
pub struct ProviderEntry {
    pub name: &'static str,
    /// `Ok(None)` when the environment leaves the provider unconfigured: it then answers 404,
    /// never "accept everything".
    pub from_env: FromEnv,
    /// Builds the provider with no credentials, for normalizing stored events (the lifecycle
    /// and dispatch read what a large event carries from its stored body).
    pub normalizer: fn(&Env) -> Result<Box<dyn Provider>, ConfigError>,
    /// The provider's side, for `callhook send`, fixtures and tests.
    #[cfg(any(test, feature = "dev"))]
    pub dev_signer: fn(&[u8; 32]) -> Box<dyn DevSigner>,
}

/// Every provider callhook knows.
pub const CONSTRUCTORS: &[ProviderEntry] = &[
    telnyx::ENTRY,
    bird::ENTRY,
    recho::ENTRY,
    miraiminds::ENTRY,
    stateset::ENTRY,
    standard::ENTRY,
    retell::ENTRY,
    elevenlabs::ENTRY,
    vapi::ENTRY,
    twilio::ENTRY,
    vonage::ENTRY,
    plivo::ENTRY,
];

/// Names of every provider callhook supports, configured or not.
pub fn supported() -> impl Iterator<Item = &'static str> {
    CONSTRUCTORS.iter().map(|e| e.name)
}

#[cfg(any(test, feature = "dev"))]
/// The dev signer of a supported provider.
pub fn dev_signer(name: &str, seed: &[u8; 32]) -> Option<Box<dyn DevSigner>> {
    CONSTRUCTORS
        .iter()
        .find(|e| e.name == name)
        .map(|e| (e.dev_signer)(seed))
}

#[cfg(any(test, feature = "dev"))]
/// The seed of the documented fixture keys (RFC 8032 test 1): fixtures in `events/` are signed
/// with keys derived from it, and `events/env.json` configures the matching verifiers. It is
/// public, so it is only ever configured for fixtures and tests, never in a deployment.
pub const FIXTURE_SEED: [u8; 32] = [
    0x9d, 0x61, 0xb1, 0x9d, 0xef, 0xfd, 0x5a, 0x60, 0xba, 0x84, 0x4a, 0xf4, 0x92, 0xec, 0x2c, 0xc4,
    0x44, 0x49, 0xc5, 0x69, 0x7b, 0x32, 0x69, 0x19, 0x70, 0x3b, 0xac, 0x03, 0x1c, 0xae, 0x7f, 0x60,
];

/// The providers configured in this environment.
pub struct Providers {
    configured: Vec<Box<dyn Provider>>,
}

impl Providers {
    /// Every provider the environment configures; then the checks across them
    /// ([`keys::check`]): no public fixture key outside dev mode, no key for two providers.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let mut configured = Vec::new();
        for entry in CONSTRUCTORS {
            if let Some(provider) = (entry.from_env)(env)? {
                configured.push(provider);
            }
        }
        keys::check(env)?;
        Ok(Providers { configured })
    }

    pub fn get(&self, name: &str) -> Option<&dyn Provider> {
        self.configured
            .iter()
            .find(|p| p.name() == name)
            .map(|p| p.as_ref())
    }

    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.configured.iter().map(|p| p.name())
    }

    /// The configured providers that authenticate nothing (RECHO_AUTH=none).
    pub fn unauthenticated(&self) -> Vec<&'static str> {
        self.configured
            .iter()
            .filter(|p| !p.authenticates())
            .map(|p| p.name())
            .collect()
    }

    /// Every supported provider, for normalizing stored events only: none holds a credential,
    /// and each refuses to verify anything.
    pub fn normalizers(env: &Env) -> Result<Self, ConfigError> {
        let mut configured: Vec<Box<dyn Provider>> = Vec::new();
        for entry in CONSTRUCTORS {
            configured.push(Box::new(NormalizeOnly((entry.normalizer)(env)?)));
        }
        Ok(Providers { configured })
    }
}

/// A provider that only normalizes.
struct NormalizeOnly(Box<dyn Provider>);

impl Provider for NormalizeOnly {
    fn name(&self) -> &'static str {
        self.0.name()
    }

    fn signed_headers(&self) -> &'static [&'static str] {
        self.0.signed_headers()
    }

    fn signs_url(&self) -> bool {
        self.0.signs_url()
    }

    fn verify(&self, _delivery: &Delivery<'_>) -> Result<(), AuthError> {
        Err(AuthError::Invalid(
            "this provider only normalizes stored events",
        ))
    }

    fn normalize(&self, delivery: &Delivery<'_>) -> CanonicalEvent {
        self.0.normalize(delivery)
    }
}

// ---- helpers for normalizers ----

pub use crate::domain::ids::{derived_key, key_without_event_id, scoped_id, sha256_hex};

/// An authentic body that is not the documented shape: kept, keyed by its bytes, for review.
pub fn malformed(
    provider: &str,
    body: &[u8],
    received_at: DateTime<Utc>,
    detail: impl Into<String>,
) -> CanonicalEvent {
    let mut event = CanonicalEvent::new(provider, &sha256_hex(body), "", received_at);
    event.review = Some(ReviewNote {
        reason: ReviewReason::Malformed,
        detail: detail.into(),
    });
    event.data = serde_json::from_slice(body).unwrap_or(Value::Null);
    event
}

/// Marks an event whose type the provider's table does not know.
pub fn mark_unknown(event: &mut CanonicalEvent) {
    event.kind = Kind::Unknown;
    event.review = Some(ReviewNote {
        reason: ReviewReason::UnknownType,
        detail: format!("no mapping for event type {:?}", event.event_type),
    });
}

/// The token of `Authorization: Bearer <token>` (scheme case-insensitive, RFC 6750), if the
/// value has that form and a token.
pub fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// A string at a JSON pointer, if it is one and not empty.
pub fn str_at<'a>(value: &'a Value, pointer: &str) -> Option<&'a str> {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// Whole seconds from `start` to `end`, rounded; `None` when the end is before the start.
pub fn whole_secs(start: DateTime<Utc>, end: DateTime<Utc>) -> Option<u64> {
    let millis = u64::try_from((end - start).num_milliseconds()).ok()?;
    Some(millis.saturating_add(500) / 1000)
}

/// An RFC 3339 time at a JSON pointer. Unparseable times are treated as absent.
pub fn time_at(value: &Value, pointer: &str) -> Option<DateTime<Utc>> {
    str_at(value, pointer)
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
}

/// A whole number at a JSON pointer: an integer, a float with no fraction lost to rounding
/// towards zero, or a decimal string. Anything else, or out of `i64` range, is absent.
pub fn integer_at(value: &Value, pointer: &str) -> Option<i64> {
    match value.pointer(pointer)? {
        Value::Number(n) => n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|f| f.is_finite() && f.abs() < 9.0e18)
                .map(|f| f.trunc() as i64)
        }),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A Unix time in milliseconds at a JSON pointer (Retell, Vapi).
pub fn millis_at(value: &Value, pointer: &str) -> Option<DateTime<Utc>> {
    integer_at(value, pointer).and_then(DateTime::from_timestamp_millis)
}

/// A Unix time in seconds at a JSON pointer (ElevenLabs).
pub fn secs_at(value: &Value, pointer: &str) -> Option<DateTime<Utc>> {
    integer_at(value, pointer).and_then(|s| DateTime::from_timestamp(s, 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every provider accepts what its own dev signer signs, and only that.
    #[test]
    fn dev_signers_round_trip_for_every_provider() {
        let body = br#"{"hello":"world"}"#;
        let now = chrono::Utc::now();
        let url = "https://hooks.example.com/webhooks/x";
        for entry in CONSTRUCTORS {
            let signer = (entry.dev_signer)(&FIXTURE_SEED);
            let env = Env::from_pairs(signer.verifier_env());
            let provider = (entry.from_env)(&env).unwrap().expect(entry.name);
            let signed = signer.sign(body, now.timestamp(), url);
            let headers: Headers = signed.headers.iter().map(|(k, v)| (k, v.clone())).collect();
            let delivery = Delivery {
                headers: &headers,
                body,
                path_token: signed.path_token.as_deref(),
                request_url: Some(signed.url.as_deref().unwrap_or(url)),
                received_at: now,
            };
            assert_eq!(provider.verify(&delivery), Ok(()), "{}", entry.name);
            let tampered = Delivery {
                body: br#"{"hello":"World"}"#,
                ..delivery
            };
            // A secret path token authenticates the sender, not the bytes (Mirai Minds).
            if signed.path_token.is_none() {
                assert!(provider.verify(&tampered).is_err(), "{}", entry.name);
            }
            let other = (entry.dev_signer)(&[1; 32]).sign(body, now.timestamp(), url);
            let headers: Headers = other.headers.iter().map(|(k, v)| (k, v.clone())).collect();
            let forged = Delivery {
                headers: &headers,
                path_token: other.path_token.as_deref(),
                ..delivery
            };
            assert!(provider.verify(&forged).is_err(), "{}", entry.name);
        }
    }

    /// A normalizer gives the configured provider's event, and verifies nothing, even a
    /// delivery its provider accepts.
    #[test]
    fn normalizers_normalize_alike_and_verify_nothing() {
        let body = br#"{"type":"call.ended","data":{"call_id":"c1","outcome":"busy"}}"#;
        let now = chrono::Utc::now();
        let url = "https://hooks.example.com/webhooks/x";
        let normalizers = Providers::normalizers(&Env::default()).unwrap();
        assert_eq!(normalizers.names().count(), CONSTRUCTORS.len());
        for entry in CONSTRUCTORS {
            let signer = (entry.dev_signer)(&FIXTURE_SEED);
            let provider = (entry.from_env)(&Env::from_pairs(signer.verifier_env()))
                .unwrap()
                .unwrap();
            let signed = signer.sign(body, now.timestamp(), url);
            let headers: Headers = signed.headers.iter().map(|(k, v)| (k, v.clone())).collect();
            let delivery = Delivery {
                headers: &headers,
                body,
                path_token: signed.path_token.as_deref(),
                request_url: Some(signed.url.as_deref().unwrap_or(url)),
                received_at: now,
            };
            let normalizer = normalizers.get(entry.name).unwrap();
            assert_eq!(provider.verify(&delivery), Ok(()), "{}", entry.name);
            assert!(normalizer.verify(&delivery).is_err(), "{}", entry.name);
            assert_eq!(
                normalizer.normalize(&delivery),
                provider.normalize(&delivery),
                "{}",
                entry.name
            );
        }
    }

    #[test]
    fn no_keys_means_not_configured() {
        let providers = Providers::from_env(&Env::default()).unwrap();
        assert_eq!(providers.names().count(), 0);
        assert!(providers.get("telnyx").is_none());
    }
}
