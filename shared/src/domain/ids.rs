//! Deterministic ids: event and call ids scoped by provider, hashed when a provider's key is too
//! long for a DynamoDB key.

use sha2::{Digest, Sha256};

use crate::limits::MAX_KEY_BYTES;

/// Lowercase hex of SHA-256: the dedupe key of last resort.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A stable key from the fields that identify one fact: SHA-256 over the parts, each
/// length-prefixed so that `("ab","c")` and `("a","bc")` never collide.
pub fn derived_key(parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part.as_bytes());
    }
    hex::encode(hasher.finalize())
}

/// The dedupe key of a fact from a sender that gives no event id: the call and the fact's type
/// when the fact happens once per call, else also the SHA-256 of the raw body (facts that recur,
/// and types nobody mapped), so that only byte-identical re-deliveries collapse.
pub fn key_without_event_id(
    call_key: Option<&str>,
    fact: &str,
    once_per_call: bool,
    body: &[u8],
) -> String {
    let call_key = call_key.unwrap_or("");
    if once_per_call {
        derived_key(&[call_key, fact])
    } else {
        derived_key(&[call_key, fact, &sha256_hex(body)])
    }
}

/// `{provider}#{key}`. A key longer than [`MAX_KEY_BYTES`] is replaced by `sha256:{hex of it}`:
/// the same key still gives the same id, and the id fits a DynamoDB key (at most 2048 bytes)
/// and the keys built from it.
pub fn scoped_id(provider: &str, key: &str) -> String {
    if key.len() > MAX_KEY_BYTES {
        format!("{provider}#sha256:{}", sha256_hex(key.as_bytes()))
    } else {
        format!("{provider}#{key}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_keys_do_not_collide_on_boundaries() {
        assert_ne!(derived_key(&["ab", "c"]), derived_key(&["a", "bc"]));
        assert_eq!(derived_key(&["a", "b"]), derived_key(&["a", "b"]));
    }
}
