//! One inbound delivery as ingest received it (or as a stored event replays it): its headers,
//! raw body, path token and URL, and why its authentication may fail.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

/// Which authentication check failed. The message names the check, never a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing header {0}")]
    MissingHeader(&'static str),
    #[error("header {0} is not valid")]
    Malformed(&'static str),
    #[error("timestamp outside the allowed window of {0} seconds")]
    Stale(u64),
    #[error("signature does not match")]
    BadSignature,
    #[error("missing path token")]
    MissingToken,
    #[error("path token does not match")]
    BadToken,
    #[error("missing or invalid bearer token")]
    BadBearer,
    #[error("token in header {0} does not match")]
    BadHeaderToken(&'static str),
    /// The body is not in the encoding the signature covers (e.g. not form encoding).
    #[error("body is not valid {0}")]
    BadBody(&'static str),
    /// A digest of the body in a signed part (`bodySHA256`, `payload_hash`) differs from it.
    #[error("body does not match {0}")]
    BodyMismatch(&'static str),
    /// A signed token or URL is not what the scheme allows; the text is fixed, never a value.
    #[error("{0}")]
    Invalid(&'static str),
}

/// Request headers with lower-cased names. API Gateway v2 already joins repeated headers with
/// commas, so one value per name is all a provider can rely on.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Headers(BTreeMap<String, String>);

/// Headers whose values `Debug` shows; any other may hold a token (`authorization`, Vapi's
/// configurable token header, a URL with credentials), so it is shown as `***`.
const DEBUG_SHOWN: &[&str] = &[
    "content-type",
    "content-length",
    "user-agent",
    SENDER,
    UNAUTHENTICATED,
];

impl std::fmt::Debug for Headers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut map = f.debug_map();
        for (name, value) in &self.0 {
            if DEBUG_SHOWN.contains(&name.as_str()) {
                map.entry(name, value);
            } else {
                map.entry(name, &format_args!("***"));
            }
        }
        map.finish()
    }
}

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

/// Where a stored delivery keeps the URL it was sent to, among its headers (a name no real
/// header can have), for providers that sign the URL: the stored copy verifies again.
pub const REQUEST_URL: &str = ":url";

/// The named sender whose key verified a delivery (Standard Webhooks), among its headers: a
/// pseudo-header ingest sets after verifying and stores, never one a request can bring.
pub const SENDER: &str = ":sender";

/// Marks a delivery its provider accepted without authenticating it (RECHO_AUTH=none).
pub const UNAUTHENTICATED: &str = ":unauthenticated";

/// The pseudo-headers [`Verified`] sets.
pub const VERIFIED_HEADERS: &[&str] = &[SENDER, UNAUTHENTICATED];

/// What a successful check established about a delivery beyond "authentic". Ingest keeps it with
/// the delivery as pseudo-headers ([`VERIFIED_HEADERS`]), so that normalizing the live request and
/// normalizing the stored copy later give the same ids.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verified {
    /// The named sender whose key verified it; `None` for a provider's only (default) sender.
    pub sender: Option<String>,
    /// Nothing was checked: the provider accepts anyone's posts (RECHO_AUTH=none).
    pub unauthenticated: bool,
}

impl Verified {
    /// `headers` without any pseudo-header a request brought (real header names never start
    /// with `:`), then this verification's own.
    pub fn apply(&self, headers: &Headers) -> Headers {
        let mut applied = Headers(
            headers
                .0
                .iter()
                .filter(|(name, _)| !name.starts_with(':'))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        );
        if let Some(sender) = &self.sender {
            applied.insert(SENDER, sender.clone());
        }
        if self.unauthenticated {
            applied.insert(UNAUTHENTICATED, "true");
        }
        applied
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_names_every_header_and_hides_what_may_be_secret() {
        let h: Headers = [
            ("Authorization", "Bearer s3cret-bearer"),
            ("X-Vapi-Secret", "s3cret-vapi"),
            ("Telnyx-Signature-Ed25519", "s3cret-sig"),
            ("Content-Type", "application/json"),
        ]
        .into_iter()
        .collect();
        let debug = format!("{h:?}");
        for shown in ["authorization", "x-vapi-secret", "application/json", "***"] {
            assert!(debug.contains(shown), "{shown}: {debug}");
        }
        assert!(!debug.contains("s3cret"), "{debug}");
    }

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
}
