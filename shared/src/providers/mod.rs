//! One module per provider: how its deliveries are authenticated and how its events map to the
//! canonical event. Adding a provider is one new module here and one line in [`CONSTRUCTORS`].

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::config::{ConfigError, Env};
use crate::model::{CanonicalEvent, Kind, ReviewNote};
use crate::verify::AuthError;

pub mod bird;
pub mod form;
pub mod miraiminds;
pub mod plivo;
#[cfg(test)]
mod proptests;
pub mod recho;
pub mod standard;
pub mod stateset;
pub mod telnyx;
pub mod twilio;
pub mod vonage;

/// Request headers with lower-cased names. API Gateway v2 already joins repeated headers with
/// commas, so one value per name is all a provider can rely on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(BTreeMap<String, String>);

impl Headers {
    pub fn new() -> Self {
        Headers::default()
    }

    pub fn insert(&mut self, name: &str, value: impl Into<String>) {
        let value = value.into();
        self.0
            .entry(name.to_ascii_lowercase())
            .and_modify(|existing| {
                existing.push(',');
                existing.push_str(&value);
            })
            .or_insert(value);
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        debug_assert_eq!(
            name,
            name.to_ascii_lowercase(),
            "look headers up in lower case"
        );
        self.0.get(name).map(String::as_str)
    }

    /// The header, or the authentication error that says it is missing.
    pub fn require(&self, name: &'static str) -> Result<&str, AuthError> {
        self.get(name).ok_or(AuthError::MissingHeader(name))
    }

    /// Only the named headers, e.g. those needed to re-verify a stored delivery.
    pub fn subset(&self, names: &[&str]) -> Headers {
        Headers(
            self.0
                .iter()
                .filter(|(k, _)| names.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        )
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

impl<K: AsRef<str>, V: Into<String>> FromIterator<(K, V)> for Headers {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut headers = Headers::new();
        for (k, v) in iter {
            headers.insert(k.as_ref(), v);
        }
        headers
    }
}

/// One delivery as received: everything a provider may authenticate or normalize.
#[derive(Debug, Clone, Copy)]
pub struct Delivery<'a> {
    pub headers: &'a Headers,
    /// The exact bytes received (after API Gateway's base64, if any, was undone).
    pub body: &'a [u8],
    /// The `{token}` path segment of `/webhooks/{provider}/{token}`.
    pub path_token: Option<&'a str>,
    /// `https://{domain}{path}[?{query}]` as the gateway saw it; a fallback for providers that
    /// sign the URL (configuration should name the public URL).
    pub request_url: Option<&'a str>,
    pub received_at: DateTime<Utc>,
}

/// A provider: authenticate, then map to the canonical event.
pub trait Provider: Send + Sync {
    /// The `{provider}` path segment and the event id prefix.
    fn name(&self) -> &'static str;

    /// Headers that must be stored with the raw body so the delivery can be verified again.
    /// Bearer tokens and other secrets never belong here.
    fn signed_headers(&self) -> &'static [&'static str];

    /// Checks the delivery's authenticity on its raw bytes, before anything parses them.
    fn verify(&self, delivery: &Delivery<'_>) -> Result<(), AuthError>;

    /// Maps an authentic delivery to the canonical event. Never fails: an unknown type or a body
    /// that is not the documented shape comes back with `review` set (DESIGN §3).
    /// `delivery` is the live request or a stored one being replayed (its signed headers, raw
    /// body and original receipt time), so normalizing must depend on nothing else.
    fn normalize(&self, delivery: &Delivery<'_>) -> CanonicalEvent;
}

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
pub struct Entry {
    pub name: &'static str,
    /// `Ok(None)` when the environment leaves the provider unconfigured: it then answers 404,
    /// never "accept everything".
    pub from_env: FromEnv,
    pub dev_signer: fn(&[u8; 32]) -> Box<dyn DevSigner>,
}

/// Every provider callhook knows.
pub const CONSTRUCTORS: &[Entry] = &[
    telnyx::ENTRY,
    bird::ENTRY,
    recho::ENTRY,
    miraiminds::ENTRY,
    stateset::ENTRY,
    standard::ENTRY,
    twilio::ENTRY,
    vonage::ENTRY,
    plivo::ENTRY,
];

/// Names of every provider callhook supports, configured or not.
pub fn supported() -> impl Iterator<Item = &'static str> {
    CONSTRUCTORS.iter().map(|e| e.name)
}

/// The dev signer of a supported provider.
pub fn dev_signer(name: &str, seed: &[u8; 32]) -> Option<Box<dyn DevSigner>> {
    CONSTRUCTORS
        .iter()
        .find(|e| e.name == name)
        .map(|e| (e.dev_signer)(seed))
}

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
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let mut configured = Vec::new();
        for entry in CONSTRUCTORS {
            if let Some(provider) = (entry.from_env)(env)? {
                configured.push(provider);
            }
        }
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
}

// ---- helpers for normalizers ----

/// Lowercase hex of SHA-256: the dedupe key of last resort.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut out = String::with_capacity(64);
    for b in digest {
        use std::fmt::Write;
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// A stable key from the fields that identify one fact: SHA-256 over the parts, each
/// length-prefixed so that `("ab","c")` and `("a","bc")` never collide.
pub fn derived_key(parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part.as_bytes());
    }
    let digest = hasher.finalize();
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// An authentic body that is not the documented shape: kept, keyed by its bytes, for review.
pub fn malformed(
    provider: &str,
    body: &[u8],
    received_at: DateTime<Utc>,
    detail: impl Into<String>,
) -> CanonicalEvent {
    let mut event = CanonicalEvent::new(provider, &sha256_hex(body), "", received_at);
    event.review = Some(ReviewNote {
        reason: "malformed".into(),
        detail: detail.into(),
    });
    event.data = serde_json::from_slice(body).unwrap_or(Value::Null);
    event
}

/// Marks an event whose type the provider's table does not know.
pub fn mark_unknown(event: &mut CanonicalEvent) {
    event.kind = Kind::Unknown;
    event.review = Some(ReviewNote {
        reason: "unknown_type".into(),
        detail: format!("no mapping for event type {:?}", event.event_type),
    });
}

/// A string at a JSON pointer, if it is one and not empty.
pub fn str_at<'a>(value: &'a Value, pointer: &str) -> Option<&'a str> {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// An RFC 3339 time at a JSON pointer. Unparseable times are treated as absent.
pub fn time_at(value: &Value, pointer: &str) -> Option<DateTime<Utc>> {
    str_at(value, pointer)
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_case_insensitive_and_repeats_join() {
        let h: Headers = [("Telnyx-Timestamp", "1"), ("X-A", "a"), ("x-a", "b")]
            .into_iter()
            .collect();
        assert_eq!(h.get("telnyx-timestamp"), Some("1"));
        assert_eq!(h.get("x-a"), Some("a,b"));
        assert_eq!(
            h.require("missing"),
            Err(AuthError::MissingHeader("missing"))
        );
    }

    #[test]
    fn derived_keys_do_not_collide_on_boundaries() {
        assert_ne!(derived_key(&["ab", "c"]), derived_key(&["a", "bc"]));
        assert_eq!(derived_key(&["a", "b"]), derived_key(&["a", "b"]));
    }

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

    #[test]
    fn no_keys_means_not_configured() {
        let providers = Providers::from_env(&Env::default()).unwrap();
        assert_eq!(providers.names().count(), 0);
        assert!(providers.get("telnyx").is_none());
    }
}
