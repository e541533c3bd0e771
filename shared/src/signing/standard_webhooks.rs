//! Standard Webhooks (github.com/standard-webhooks/standard-webhooks): verification of incoming
//! deliveries (`v1` HMAC-SHA256 and `v1a` Ed25519) and signing of what callhook dispatches.
//!
//! Signed bytes are `{webhook-id}.{webhook-timestamp}.{raw body}`. The signature header is a
//! space-separated list of `version,base64` entries; any one valid entry passes.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use chrono::{DateTime, Utc};
use ed25519_dalek::VerifyingKey;

use crate::config::{ConfigError, Env};
use crate::delivery::{AuthError, Delivery, Headers};
use crate::signing::{self as verify, constant_time_eq};

pub const ID: &str = "webhook-id";
pub const TIMESTAMP: &str = "webhook-timestamp";
pub const SIGNATURE: &str = "webhook-signature";
pub const HEADERS: &[&str] = &[ID, TIMESTAMP, SIGNATURE];
pub use crate::limits::MAX_SIGNATURES;

/// One configured verification key.
#[derive(Clone)]
pub enum Key {
    /// `whsec_…`: the HMAC secret bytes.
    Hmac(Vec<u8>),
    /// `whpk_…`: an Ed25519 public key for `v1a` signatures.
    Ed25519(VerifyingKey),
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Secrets never reach logs, not even through Debug.
        match self {
            Key::Hmac(_) => f.write_str("Key::Hmac(<redacted>)"),
            Key::Ed25519(_) => f.write_str("Key::Ed25519(..)"),
        }
    }
}

/// Decodes a `whsec_` secret (the prefix is optional, as in the reference libraries).
pub fn decode_hmac_secret(var: &'static str, secret: &str) -> Result<Vec<u8>, ConfigError> {
    let encoded = secret.strip_prefix("whsec_").unwrap_or(secret);
    let bytes = B64
        .decode(encoded)
        .map_err(|_| ConfigError::invalid(var, "a whsec_ secret is not valid base64"))?;
    if bytes.is_empty() {
        return Err(ConfigError::invalid(var, "a whsec_ secret is empty"));
    }
    Ok(bytes)
}

/// The `whsec_…` form of a secret.
pub fn encode_secret(secret: &[u8]) -> String {
    format!("whsec_{}", B64.encode(secret))
}

/// `name=key` → (`Some(name)`, key); a bare key → (`None`, key). A `=` followed only by more
/// `=` is base64 padding, not a name.
pub fn split_sender(entry: &str) -> (Option<&str>, &str) {
    match entry.split_once('=') {
        Some((name, key)) if !key.trim_start_matches('=').is_empty() => {
            (Some(name.trim()), key.trim())
        }
        _ => (None, entry.trim()),
    }
}

/// Parses a comma-separated list of `whsec_…` and `whpk_…` keys.
pub fn parse_keys(var: &'static str, entries: &[&str]) -> Result<Vec<Key>, ConfigError> {
    entries
        .iter()
        .map(|entry| match entry.strip_prefix("whpk_") {
            Some(public) => verify::parse_ed25519_key(var, public).map(Key::Ed25519),
            None => decode_hmac_secret(var, entry).map(Key::Hmac),
        })
        .collect()
}

/// The sender of an unnamed key.
pub const DEFAULT_SENDER: &str = "default";

/// A sender's name: what `name=` says before a key, part of its events' and calls' ids.
fn check_sender_name(var: &'static str, name: &str) -> Result<(), ConfigError> {
    let valid = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if valid {
        Ok(())
    } else {
        Err(ConfigError::invalid(
            var,
            "a sender name must be 1 to 64 of A-Z a-z 0-9 _ - (name=whsec_… or name=whpk_…)",
        ))
    }
}

/// A provider's Standard Webhooks check: its keys (several during rotation, and for named
/// senders), each key's sender, and its tolerance.
#[derive(Debug, Clone)]
pub struct Verifier {
    keys: Vec<Key>,
    /// The sender of each key, in the same order.
    senders: Vec<String>,
    tolerance_secs: u64,
}

impl Verifier {
    /// A verifier with no keys: it accepts nothing.
    pub fn none() -> Verifier {
        Verifier {
            keys: Vec::new(),
            senders: Vec::new(),
            tolerance_secs: 0,
        }
    }

    /// From `keys_var` (a comma-separated list) and `tolerance_var` (default 300); `None` when
    /// `keys_var` is unset, i.e. the provider is not configured. With `named`, an entry may be
    /// `sender=key` (a bare key belongs to the sender `default`).
    pub fn from_env(
        env: &Env,
        keys_var: &'static str,
        tolerance_var: &'static str,
        named: bool,
    ) -> Result<Option<Verifier>, ConfigError> {
        let entries = env.list(keys_var);
        if entries.is_empty() {
            return Ok(None);
        }
        let mut keys = Vec::with_capacity(entries.len());
        let mut senders = Vec::with_capacity(entries.len());
        for entry in entries {
            let (sender, key) = if named {
                split_sender(entry)
            } else {
                (None, entry)
            };
            let sender = sender.unwrap_or(DEFAULT_SENDER);
            check_sender_name(keys_var, sender)?;
            keys.extend(parse_keys(keys_var, &[key])?);
            senders.push(sender.to_owned());
        }
        Ok(Some(Verifier {
            keys,
            senders,
            tolerance_secs: env.tolerance_secs(tolerance_var, 300)?,
        }))
    }

    pub fn verify(&self, delivery: &Delivery<'_>) -> Result<(), AuthError> {
        self.verify_sender(delivery).map(drop)
    }

    /// Verifies, and names the sender whose key matched.
    pub fn verify_sender(&self, delivery: &Delivery<'_>) -> Result<&str, AuthError> {
        let matched = verify_key(
            &self.keys,
            delivery.headers,
            delivery.body,
            delivery.received_at,
            self.tolerance_secs,
        )?;
        Ok(&self.senders[matched])
    }
}

/// Verifies a delivery's Standard Webhooks headers against any of `keys`.
pub fn verify(
    keys: &[Key],
    headers: &Headers,
    body: &[u8],
    now: DateTime<Utc>,
    tolerance_secs: u64,
) -> Result<(), AuthError> {
    verify_key(keys, headers, body, now, tolerance_secs).map(drop)
}

/// [`verify`], answering which of `keys` matched (its index).
pub fn verify_key(
    keys: &[Key],
    headers: &Headers,
    body: &[u8],
    now: DateTime<Utc>,
    tolerance_secs: u64,
) -> Result<usize, AuthError> {
    let id = headers.require(ID)?;
    let timestamp = headers.require(TIMESTAMP)?;
    let signatures = headers.require(SIGNATURE)?;
    verify::check_timestamp(TIMESTAMP, timestamp, now, tolerance_secs)?;

    // Counted before any work: a flood of entries is refused at the price of a split.
    let entries: Vec<&str> = signatures.split(' ').filter(|e| !e.is_empty()).collect();
    if entries.len() > MAX_SIGNATURES {
        return Err(AuthError::Malformed(SIGNATURE));
    }

    let signed = [id.as_bytes(), b".", timestamp.as_bytes(), b".", body];
    // (index in `keys`, expected MAC) and (index, public key).
    let mut expected_hmacs = Vec::new();
    let mut public_keys = Vec::new();
    for (i, key) in keys.iter().enumerate() {
        match key {
            Key::Hmac(secret) => expected_hmacs.push((i, verify::hmac_sha256(secret, &signed))),
            Key::Ed25519(pk) => public_keys.push((i, *pk)),
        }
    }
    // Ed25519 needs the message in one piece: built once, and only if some entry needs it.
    let mut message: Option<Vec<u8>> = None;

    let mut any_entry = false;
    for entry in entries {
        let Some((version, encoded)) = entry.split_once(',') else {
            continue;
        };
        any_entry = true;
        let matched = match version {
            "v1" if !expected_hmacs.is_empty() => {
                B64.decode(encoded).ok().and_then(|presented| {
                    // Every MAC is compared, so the time does not say which key matched.
                    expected_hmacs.iter().fold(None, |found, (i, mac)| {
                        let equal = constant_time_eq(&presented, mac);
                        found.or(equal.then_some(*i))
                    })
                })
            }
            // Without an Ed25519 key a `v1a` entry cannot pass: not even decoded.
            "v1a" if !public_keys.is_empty() => B64.decode(encoded).ok().and_then(|presented| {
                let message = message.get_or_insert_with(|| signed.concat());
                public_keys.iter().find_map(|(i, key)| {
                    verify::ed25519_verify_message(std::slice::from_ref(key), message, &presented)
                        .then_some(*i)
                })
            }),
            _ => None,
        };
        if let Some(i) = matched {
            return Ok(i);
        }
    }
    if any_entry {
        Err(AuthError::BadSignature)
    } else {
        Err(AuthError::Malformed(SIGNATURE))
    }
}

/// A decoded `whsec_` secret that callhook signs with; never printed.
#[derive(Clone)]
pub struct SigningSecret(Vec<u8>);

impl SigningSecret {
    pub fn new(bytes: Vec<u8>) -> Self {
        SigningSecret(bytes)
    }

    pub fn bytes(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningSecret(<redacted>)")
    }
}

/// The `v1,…` signature of a message, for what callhook sends and for test senders.
pub fn sign(secret: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    let ts = timestamp.to_string();
    let mac = verify::hmac_sha256(secret, &[id.as_bytes(), b".", ts.as_bytes(), b".", body]);
    format!("v1,{}", B64.encode(mac))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    struct Vector {
        secret: &'static str,
        id: &'static str,
        ts: i64,
        body: &'static str,
        signature: &'static str,
    }

    /// The spec's own vectors (providers.md, Standard Webhooks).
    const VECTORS: &[Vector] = &[
        Vector {
            secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            id: "msg_p5jXN8AQM9LWM0D4loKWxJek",
            ts: 1614265330,
            body: r#"{"test": 2432232314}"#,
            signature: "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
        },
        Vector {
            secret: "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
            id: "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
            ts: 1649367553,
            body: r#"{"email":"test@example.com","username":"test_user"}"#,
            signature: "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=",
        },
    ];

    fn headers(id: &str, ts: i64, sig: &str) -> Headers {
        [
            (ID, id.to_owned()),
            (TIMESTAMP, ts.to_string()),
            (SIGNATURE, sig.to_owned()),
        ]
        .into_iter()
        .collect()
    }

    fn at(ts: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(ts, 0).unwrap()
    }

    #[test]
    fn spec_vectors_sign_and_verify() {
        for v in VECTORS {
            let secret = decode_hmac_secret("S", v.secret).unwrap();
            assert_eq!(sign(&secret, v.id, v.ts, v.body.as_bytes()), v.signature);
            let keys = parse_keys("S", &[v.secret]).unwrap();
            let h = headers(v.id, v.ts, v.signature);
            assert_eq!(verify(&keys, &h, v.body.as_bytes(), at(v.ts), 300), Ok(()));
        }
    }

    #[test]
    fn any_of_several_signatures_and_keys_passes() {
        let v = &VECTORS[0];
        let keys = parse_keys("S", &[VECTORS[1].secret, v.secret]).unwrap();
        let sig = format!("v1,bm90IGl0 v1a,AAAA {}", v.signature);
        let h = headers(v.id, v.ts, &sig);
        assert_eq!(verify(&keys, &h, v.body.as_bytes(), at(v.ts), 300), Ok(()));
    }

    #[test]
    fn more_than_ten_entries_are_refused_before_any_is_checked() {
        let v = &VECTORS[0];
        let keys = parse_keys("S", &[v.secret]).unwrap();
        let wrong = "v1a,AAAA";
        let at_the_cap = format!("{} {}", [wrong; MAX_SIGNATURES - 1].join(" "), v.signature);
        let h = headers(v.id, v.ts, &at_the_cap);
        assert_eq!(verify(&keys, &h, v.body.as_bytes(), at(v.ts), 300), Ok(()));
        let over = format!("{} {}", [wrong; MAX_SIGNATURES].join(" "), v.signature);
        let h = headers(v.id, v.ts, &over);
        assert_eq!(
            verify(&keys, &h, v.body.as_bytes(), at(v.ts), 300),
            Err(AuthError::Malformed(SIGNATURE))
        );
    }

    #[test]
    fn empty_and_truncated_signatures_fail() {
        let v = &VECTORS[0];
        let keys = parse_keys("S", &[v.secret]).unwrap();
        let full = v.signature.strip_prefix("v1,").unwrap();
        let decoded = B64.decode(full).unwrap();
        let truncated = format!("v1,{}", B64.encode(&decoded[..16]));
        for sig in ["v1,", "v1,=", truncated.as_str(), "v2,abc", "v1"] {
            let h = headers(v.id, v.ts, sig);
            assert!(
                verify(&keys, &h, v.body.as_bytes(), at(v.ts), 300).is_err(),
                "{sig} must fail"
            );
        }
    }

    #[test]
    fn stale_tampered_and_missing_fail() {
        let v = &VECTORS[0];
        let keys = parse_keys("S", &[v.secret]).unwrap();
        let h = headers(v.id, v.ts, v.signature);
        assert_eq!(
            verify(&keys, &h, v.body.as_bytes(), at(v.ts + 301), 300),
            Err(AuthError::Stale(300))
        );
        assert_eq!(
            verify(&keys, &h, b"{\"test\": 2432232315}", at(v.ts), 300),
            Err(AuthError::BadSignature)
        );
        let other_id = headers("msg_other", v.ts, v.signature);
        assert_eq!(
            verify(&keys, &other_id, v.body.as_bytes(), at(v.ts), 300),
            Err(AuthError::BadSignature)
        );
        let missing: Headers = [(ID, v.id)].into_iter().collect();
        assert_eq!(
            verify(&keys, &missing, v.body.as_bytes(), at(v.ts), 300),
            Err(AuthError::MissingHeader(TIMESTAMP))
        );
    }

    #[test]
    fn v1a_ed25519_signatures_verify() {
        use ed25519_dalek::{Signer, SigningKey};
        let signing = SigningKey::from_bytes(&[7u8; 32]);
        let public = format!("whpk_{}", B64.encode(signing.verifying_key().as_bytes()));
        let keys = parse_keys("S", &[&public]).unwrap();
        let body = br#"{"type":"call.ended"}"#;
        let sig = signing.sign(&[b"msg_1.1700000000." as &[u8], body].concat());
        let h = headers(
            "msg_1",
            1_700_000_000,
            &format!("v1a,{}", B64.encode(sig.to_bytes())),
        );
        assert_eq!(verify(&keys, &h, body, at(1_700_000_000), 300), Ok(()));
        assert_eq!(
            verify(&keys, &h, b"{}", at(1_700_000_000), 300),
            Err(AuthError::BadSignature)
        );
    }

    #[test]
    fn bad_keys_are_config_errors_without_the_value() {
        let err = parse_keys("STANDARD_WEBHOOK_SECRETS", &["whsec_%%%secret"]).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("STANDARD_WEBHOOK_SECRETS"));
        assert!(!text.contains("secret%"), "{text}");
        assert!(parse_keys("S", &["whpk_AAAA"]).is_err());
    }

    #[test]
    fn a_small_order_whpk_key_is_refused_and_a_forged_v1a_fails() {
        use crate::signing::tests::{IDENTITY_KEY, forged_signature};
        let weak = format!("whpk_{IDENTITY_KEY}");
        let err = parse_keys("STANDARD_WEBHOOK_SECRETS", &[&weak])
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("STANDARD_WEBHOOK_SECRETS is invalid"),
            "{err}"
        );
        let identity: [u8; 32] = B64.decode(IDENTITY_KEY).unwrap().try_into().unwrap();
        let keys = [Key::Ed25519(VerifyingKey::from_bytes(&identity).unwrap())];
        let h = headers(
            "msg_1",
            1_700_000_000,
            &format!("v1a,{}", B64.encode(forged_signature())),
        );
        assert_eq!(
            verify(&keys, &h, b"{}", at(1_700_000_000), 300),
            Err(AuthError::BadSignature)
        );
    }
}
