//! Building blocks of the providers' signature checks: constant-time comparison, timestamps, HMAC,
//! Ed25519 and key parsing; Standard Webhooks signing and verification. Nothing here ever echoes
//! an expected value.

pub mod standard_webhooks;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use chrono::{DateTime, Utc};
use ed25519_dalek::{Signature, VerifyingKey};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::config::ConfigError;
pub use crate::delivery::AuthError;
use crate::limits::MIN_SECRET_BYTES;

pub type HmacSha256 = Hmac<Sha256>;
pub type HmacSha1 = Hmac<sha1::Sha1>;

/// Equal length and equal bytes, in time independent of where they differ. The length check
/// comes first so that an empty or truncated value can never match a prefix.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// True when `presented` equals any of `accepted`, checking every entry so the time taken does
/// not reveal which one matched.
pub fn matches_any<T: AsRef<[u8]>>(presented: &[u8], accepted: &[T]) -> bool {
    accepted.iter().fold(false, |found, a| {
        constant_time_eq(presented, a.as_ref()) | found
    })
}

/// Parses a Unix-seconds timestamp header and checks it lies within `tolerance_secs` of `now`,
/// in the past or the future.
pub fn check_timestamp(
    header: &'static str,
    value: &str,
    now: DateTime<Utc>,
    tolerance_secs: u64,
) -> Result<i64, AuthError> {
    let ts: i64 = value
        .trim()
        .parse()
        .map_err(|_| AuthError::Malformed(header))?;
    let skew = now.timestamp().abs_diff(ts);
    if skew > tolerance_secs {
        return Err(AuthError::Stale(tolerance_secs));
    }
    Ok(ts)
}

/// Checks a Unix-milliseconds timestamp lies within `tolerance_secs` of `now`, in the past or
/// the future; the bounds are inclusive to the millisecond (Retell's SDKs: +300000 ms passes,
/// +300001 ms fails).
pub fn check_timestamp_millis(
    millis: i64,
    now: DateTime<Utc>,
    tolerance_secs: u64,
) -> Result<(), AuthError> {
    let skew = now.timestamp_millis().abs_diff(millis);
    if skew > tolerance_secs.saturating_mul(1000) {
        return Err(AuthError::Stale(tolerance_secs));
    }
    Ok(())
}

/// Lowercase hex.
pub fn to_hex(bytes: &[u8]) -> String {
    hex::encode(bytes)
}

/// Hex of either case to bytes.
pub fn decode_hex(header: &'static str, value: &str) -> Result<Vec<u8>, AuthError> {
    hex::decode(value).map_err(|_| AuthError::Malformed(header))
}

pub fn decode_b64(header: &'static str, value: &str) -> Result<Vec<u8>, AuthError> {
    B64.decode(value.trim())
        .map_err(|_| AuthError::Malformed(header))
}

pub fn encode_b64(bytes: &[u8]) -> String {
    B64.encode(bytes)
}

/// HMAC-SHA256 of the concatenated parts.
pub fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // HMAC takes keys of any length, so new_from_slice cannot fail.
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC accepts any key length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// HMAC-SHA1 of the concatenated parts (Twilio's scheme).
pub fn hmac_sha1(key: &[u8], parts: &[&[u8]]) -> [u8; 20] {
    // HMAC takes keys of any length, so new_from_slice cannot fail.
    let mut mac = HmacSha1::new_from_slice(key).expect("HMAC accepts any key length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// Verifies an Ed25519 signature over the concatenated parts against any of `keys`.
pub fn ed25519_verify_any(keys: &[VerifyingKey], parts: &[&[u8]], signature: &[u8]) -> bool {
    ed25519_verify_message(keys, &parts.concat(), signature)
}

/// Verifies an Ed25519 signature over `message` against any of `keys`, strictly: a small-order
/// key or `R` is refused, so no (R, s) made without a private key verifies (the plain `verify`
/// accepts R = identity, s = 0 for every message under the identity key).
pub fn ed25519_verify_message(keys: &[VerifyingKey], message: &[u8], signature: &[u8]) -> bool {
    let Ok(signature) = Signature::from_slice(signature) else {
        return false;
    };
    keys.iter()
        .any(|key| key.verify_strict(message, &signature).is_ok())
}

/// Refuses a configured secret (HMAC key, bearer or path token) shorter than
/// [`MIN_SECRET_BYTES`]; `what` names it in the error, never its value.
pub fn check_secret_len(var: &str, what: &str, secret: &[u8]) -> Result<(), ConfigError> {
    if secret.len() < MIN_SECRET_BYTES {
        return Err(ConfigError::invalid(
            var,
            format!("{what} is shorter than {MIN_SECRET_BYTES} bytes"),
        ));
    }
    Ok(())
}

/// Parses a base64 32-byte raw Ed25519 public key from configuration.
pub fn parse_ed25519_key(var: &'static str, value: &str) -> Result<VerifyingKey, ConfigError> {
    let bytes = B64
        .decode(value.trim())
        .map_err(|_| ConfigError::invalid(var, "a key is not valid base64"))?;
    let bytes: [u8; 32] = bytes
        .try_into()
        .map_err(|_| ConfigError::invalid(var, "an Ed25519 public key must be 32 bytes"))?;
    let key = VerifyingKey::from_bytes(&bytes)
        .map_err(|_| ConfigError::invalid(var, "a key is not a valid Ed25519 public key"))?;
    // A small-order key (the identity, all zeros, …) lets anyone forge signatures.
    if key.is_weak() {
        return Err(ConfigError::invalid(
            var,
            "a key is a small-order (weak) Ed25519 point, for which signatures can be forged",
        ));
    }
    Ok(key)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn constant_time_eq_rejects_prefixes_and_empty() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"", b"abc"));
        assert!(!constant_time_eq(b"ab", b"abc"));
        assert!(!constant_time_eq(b"abd", b"abc"));
    }

    #[test]
    fn matches_any_finds_a_later_entry() {
        let accepted = ["one", "two"];
        assert!(matches_any(b"two", &accepted));
        assert!(!matches_any(b"three", &accepted));
        assert!(!matches_any(b"", &accepted));
    }

    #[test]
    fn timestamp_window_is_symmetric() {
        let now = Utc.timestamp_opt(1_700_000_000, 0).unwrap();
        assert_eq!(
            check_timestamp("t", "1700000300", now, 300),
            Ok(1_700_000_300)
        );
        assert_eq!(
            check_timestamp("t", "1699999700", now, 300),
            Ok(1_699_999_700)
        );
        assert_eq!(
            check_timestamp("t", "1700000301", now, 300),
            Err(AuthError::Stale(300))
        );
        assert_eq!(
            check_timestamp("t", "1699999699", now, 300),
            Err(AuthError::Stale(300))
        );
        assert_eq!(
            check_timestamp("t", "17e8", now, 300),
            Err(AuthError::Malformed("t"))
        );
        assert_eq!(
            check_timestamp("t", "99999999999999999999999", now, 300),
            Err(AuthError::Malformed("t"))
        );
    }

    #[test]
    fn millisecond_window_is_symmetric_and_inclusive() {
        let now = Utc.timestamp_millis_opt(1_700_000_000_000).unwrap();
        for ok in [1_700_000_300_000, 1_699_999_700_000, 1_700_000_000_000] {
            assert_eq!(check_timestamp_millis(ok, now, 300), Ok(()), "{ok}");
        }
        for stale in [1_700_000_300_001, 1_699_999_699_999, i64::MIN, i64::MAX] {
            assert_eq!(
                check_timestamp_millis(stale, now, 300),
                Err(AuthError::Stale(300)),
                "{stale}"
            );
        }
        assert_eq!(check_timestamp_millis(0, now, u64::MAX), Ok(()));
    }

    #[test]
    fn hex_round_trips_and_rejects_non_hex() {
        assert_eq!(to_hex(&[0x00, 0xab, 0xff]), "00abff");
        assert_eq!(decode_hex("h", "00abFF"), Ok(vec![0x00, 0xab, 0xff]));
        assert_eq!(decode_hex("h", ""), Ok(vec![]));
        for bad in ["abc", "zz", "+1", "0x00", "é0"] {
            assert_eq!(
                decode_hex("h", bad),
                Err(AuthError::Malformed("h")),
                "{bad}"
            );
        }
    }

    #[test]
    fn ed25519_key_length_is_checked() {
        assert!(parse_ed25519_key("K", "AAAA").is_err());
        assert!(parse_ed25519_key("K", "not base64!").is_err());
        assert!(parse_ed25519_key("K", "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=").is_ok());
    }

    /// The identity point, as a public key.
    pub const IDENTITY_KEY: &str = "AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";

    /// R = identity, s = 0: a valid signature of every message under the identity key, for a
    /// verifier that accepts small-order keys.
    pub fn forged_signature() -> Vec<u8> {
        let mut signature = vec![0u8; 64];
        signature[0] = 1;
        signature
    }

    #[test]
    fn small_order_keys_are_config_errors_naming_the_variable() {
        // Every small-order point but the identity: orders 2, 4 and 8 ("Taming the many
        // EdDSAs", Chalkias et al.).
        let others: Vec<String> = [
            "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
            "0000000000000000000000000000000000000000000000000000000000000000",
            "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
            "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
        ]
        .iter()
        .map(|h| B64.encode(hex::decode(h).unwrap()))
        .collect();
        for weak in std::iter::once(IDENTITY_KEY).chain(others.iter().map(String::as_str)) {
            let err = parse_ed25519_key("TELNYX_PUBLIC_KEYS", weak)
                .expect_err(weak)
                .to_string();
            assert!(err.starts_with("TELNYX_PUBLIC_KEYS is invalid"), "{err}");
            assert!(err.contains("small-order"), "{err}");
            assert!(!err.contains(weak), "{err}");
        }
    }

    #[test]
    fn the_forged_signature_never_verifies_even_under_a_weak_key() {
        let identity: [u8; 32] = B64.decode(IDENTITY_KEY).unwrap().try_into().unwrap();
        let key = VerifyingKey::from_bytes(&identity).unwrap();
        for message in [b"anything" as &[u8], b""] {
            assert!(
                !ed25519_verify_any(&[key], &[message], &forged_signature()),
                "R = identity, s = 0 must not verify"
            );
        }
    }
}
