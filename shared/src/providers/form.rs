//! What Twilio and Plivo share: `application/x-www-form-urlencoded` bodies and the URL they
//! sign over.
//!
//! A form body is decoded once, with the `form_urlencoded` crate (the WHATWG parser: `&`
//! separates pairs, the first `=` splits name from value, `+` is a space, `%XX` a byte; nothing
//! is trimmed and repeated names are kept in the order sent). Before that, [`Form::parse`]
//! refuses what no form serializer produces — a byte outside printable ASCII (a raw space, a
//! control character, a raw UTF-8 byte), a `%` not followed by two hex digits, or escapes that
//! do not decode to UTF-8 — because the WHATWG parser would pass those through or replace them
//! lossily, so two different bodies would decode to the same signed text.

use serde_json::{Map, Value};

use crate::config::{ConfigError, Env};

/// The media type of a form body.
pub const MEDIA_TYPE: &str = "application/x-www-form-urlencoded";

/// A body that is not form encoding the way a form serializer writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotForm;

/// A decoded form body: (name, value) pairs in the order sent, repeated names kept.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Form(Vec<(String, String)>);

impl Form {
    /// Decodes a form body (see the module documentation for what is refused).
    pub fn parse(body: &[u8]) -> Result<Form, NotForm> {
        let mut escapes_of_replacement = 0;
        let mut i = 0;
        while i < body.len() {
            match body[i] {
                b'%' => {
                    let hex = body.get(i + 1..i + 3).ok_or(NotForm)?;
                    if !hex.iter().all(u8::is_ascii_hexdigit) {
                        return Err(NotForm);
                    }
                    if body[i..]
                        .get(..9)
                        .is_some_and(|e| e.eq_ignore_ascii_case(b"%EF%BF%BD"))
                    {
                        escapes_of_replacement += 1;
                    }
                    i += 3;
                }
                0x21..=0x7e => i += 1,
                _ => return Err(NotForm),
            }
        }
        let pairs: Vec<(String, String)> = form_urlencoded::parse(body)
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        // Raw bytes are ASCII here, so every U+FFFD comes from an escape: either an encoded
        // U+FFFD (allowed) or the lossy replacement of escapes that are not UTF-8 (refused).
        let replacements: usize = pairs
            .iter()
            .map(|(k, v)| k.matches('\u{FFFD}').count() + v.matches('\u{FFFD}').count())
            .sum();
        if replacements != escapes_of_replacement {
            return Err(NotForm);
        }
        Ok(Form(pairs))
    }

    /// Parameters that arrived some other way (a JSON body's members).
    pub fn from_pairs(pairs: Vec<(String, String)>) -> Form {
        Form(pairs)
    }

    pub fn pairs(&self) -> &[(String, String)] {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The first value of `name`, if it is there and not empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }

    /// The pairs sorted by name, then value, in byte order (which for UTF-8 is code point
    /// order: Python's `sorted`, Twilio's "Unix-style case-sensitive sorting"); repeats kept.
    pub fn sorted(&self) -> Vec<(&str, &str)> {
        let mut pairs: Vec<(&str, &str)> = self
            .0
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        pairs.sort_unstable();
        pairs
    }

    /// [`Form::sorted`] with identical pairs once (Twilio's SDKs: `sorted(set(values))`).
    pub fn sorted_unique(&self) -> Vec<(&str, &str)> {
        let mut pairs = self.sorted();
        pairs.dedup();
        pairs
    }

    /// The pairs as a JSON object of strings; a repeated name holds an array of its values.
    pub fn to_json(&self) -> Value {
        let mut map = Map::new();
        for (k, v) in &self.0 {
            match map.get_mut(k) {
                None => {
                    map.insert(k.clone(), Value::String(v.clone()));
                }
                Some(Value::Array(values)) => values.push(Value::String(v.clone())),
                Some(first) => {
                    let first = first.take();
                    map.insert(
                        k.clone(),
                        Value::Array(vec![first, Value::String(v.clone())]),
                    );
                }
            }
        }
        Value::Object(map)
    }

    /// The pairs of a URL query, decoded the same way but leniently (a URL is configuration or
    /// what the gateway received, not a signed body): invalid escapes pass through, invalid
    /// UTF-8 is replaced, as Python's `parse_qs` and the WHATWG parser do.
    pub fn of_query(query: &str) -> Form {
        Form(
            form_urlencoded::parse(query.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }
}

/// `{name}{value}` of each pair with no delimiter: how Twilio and Plivo write the parameters
/// into the text they sign.
pub fn concatenated<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    pairs.into_iter().flat_map(|(k, v)| [k, v]).collect()
}

/// The configuration Twilio and Plivo share: the tokens that key the signature (several during
/// rotation) and the public URL the provider calls, if configured.
#[derive(Default)]
pub struct TokensAndUrl {
    pub tokens: Vec<Vec<u8>>,
    /// Without its fragment.
    pub url: Option<String>,
}

impl TokensAndUrl {
    /// `None` when `tokens_var` lists no token: the provider is not configured.
    pub fn from_env(
        env: &Env,
        tokens_var: &str,
        url_var: &str,
    ) -> Result<Option<TokensAndUrl>, ConfigError> {
        let tokens = env.list(tokens_var);
        if tokens.is_empty() {
            return Ok(None);
        }
        let url = env
            .get(url_var)
            .map(|u| configured_url(url_var, u))
            .transpose()?;
        Ok(Some(TokensAndUrl {
            tokens: tokens.iter().map(|t| t.as_bytes().to_vec()).collect(),
            url,
        }))
    }
}

/// Validates a configured public webhook URL (`TWILIO_WEBHOOK_URL`, `PLIVO_WEBHOOK_URL`) and
/// drops its fragment: connection overrides such as `#ct=2000&rc=3` are never sent or signed.
fn configured_url(var: &str, value: &str) -> Result<String, ConfigError> {
    UrlParts::parse(value)
        .filter(|u| matches!(u.scheme, "https" | "http") && !u.authority.is_empty())
        .map(|u| u.to_url())
        .ok_or_else(|| {
            ConfigError::invalid(
                var,
                "expected the full URL the provider calls, starting with https://",
            )
        })
}

/// A URL as the signing schemes take it apart: `{scheme}://{authority}{path}?{query}`. The
/// fragment is dropped: it is never sent over HTTP (Twilio documents that its connection
/// overrides `#ct=…&rc=…` are not signed; Plivo's SDKs drop it when they parse the URL).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UrlParts<'a> {
    pub scheme: &'a str,
    /// `[userinfo@]host[:port]`.
    pub authority: &'a str,
    /// The path, possibly empty.
    pub path: &'a str,
    /// The raw query after `?`, if the URL has one.
    pub query: Option<&'a str>,
}

impl<'a> UrlParts<'a> {
    /// `None` when `url` is not `scheme://…`.
    pub fn parse(url: &'a str) -> Option<UrlParts<'a>> {
        let url = url.split_once('#').map_or(url, |(before, _)| before);
        let (scheme, rest) = url.split_once("://")?;
        if scheme.is_empty() {
            return None;
        }
        let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, rest) = rest.split_at(authority_end);
        let (path, query) = match rest.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (rest, None),
        };
        Some(UrlParts {
            scheme,
            authority,
            path,
            query,
        })
    }

    /// `{scheme}://{authority}{path}`: the URL without query and fragment.
    pub fn base(&self) -> String {
        format!("{}://{}{}", self.scheme, self.authority, self.path)
    }

    /// The URL again, without its fragment.
    pub fn to_url(&self) -> String {
        match self.query {
            Some(query) => format!("{}?{query}", self.base()),
            None => self.base(),
        }
    }

    /// The authority without a port, and the port if it has one (`[v6]:port` understood).
    pub fn split_port(&self) -> (&'a str, Option<&'a str>) {
        let host_start = self.authority.rfind('@').map_or(0, |at| at + 1);
        let host = &self.authority[host_start..];
        let port_colon = if host.starts_with('[') {
            host.find("]:").map(|i| i + 1)
        } else {
            host.rfind(':')
        };
        match port_colon {
            Some(colon) if host[colon + 1..].bytes().all(|b| b.is_ascii_digit()) => (
                &self.authority[..host_start + colon],
                Some(&host[colon + 1..]),
            ),
            _ => (self.authority, None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(form: &Form) -> Vec<(&str, &str)> {
        form.pairs()
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }

    #[test]
    fn decodes_plus_and_escapes_without_trimming_and_keeps_repeats() {
        let form = Form::parse(b"b=%2B1+415&a=x&b=+two+&empty=&flag&=v").unwrap();
        assert_eq!(
            pairs(&form),
            vec![
                ("b", "+1 415"),
                ("a", "x"),
                ("b", " two "),
                ("empty", ""),
                ("flag", ""),
                ("", "v"),
            ]
        );
        assert_eq!(form.get("b"), Some("+1 415"));
        assert_eq!(form.get("empty"), None);
        assert_eq!(form.get("missing"), None);
        assert_eq!(
            form.sorted(),
            vec![
                ("", "v"),
                ("a", "x"),
                ("b", " two "),
                ("b", "+1 415"),
                ("empty", ""),
                ("flag", ""),
            ]
        );
        assert_eq!(
            form.to_json(),
            serde_json::json!({"b": ["+1 415", " two "], "a": "x", "empty": "", "flag": "", "": "v"})
        );
    }

    #[test]
    fn sorting_is_byte_order_and_unique_drops_identical_pairs() {
        let form = Form::parse(b"Caller=x&CallSid=y&Digits=2&Digits=1&Digits=2&caller=z").unwrap();
        assert_eq!(
            form.sorted_unique(),
            vec![
                ("CallSid", "y"),
                ("Caller", "x"),
                ("Digits", "1"),
                ("Digits", "2"),
                ("caller", "z"),
            ]
        );
        assert_eq!(form.sorted().len(), 6);
    }

    #[test]
    fn refuses_what_no_serializer_writes() {
        for body in [
            &b"a=b c"[..],
            b"a=b\n",
            b"a=\xc3\xa9",
            b"a=%",
            b"a=%4",
            b"a=%zz",
            b"a=%FF",
            b"a=%C3",
            b"a=%E2%EF%BF%BD",
            b"\t",
        ] {
            assert_eq!(Form::parse(body), Err(NotForm), "{body:?}");
        }
        for body in [
            &b""[..],
            b"a",
            b"&&",
            b"a=%C3%A9",
            b"a=%c3%a9",
            b"a=%EF%BF%BD",
            b"{\"json\":1}",
        ] {
            assert!(Form::parse(body).is_ok(), "{body:?}");
        }
        assert_eq!(Form::parse(b"a=%c3%a9").unwrap().get("a"), Some("é"));
    }

    #[test]
    fn urls_split_where_signers_need_them() {
        let u = UrlParts::parse("https://user:pw@h.example.com:8443/a/b?x=1&y=2#rc=3").unwrap();
        assert_eq!(u.scheme, "https");
        assert_eq!(u.authority, "user:pw@h.example.com:8443");
        assert_eq!(u.path, "/a/b");
        assert_eq!(u.query, Some("x=1&y=2"));
        assert_eq!(u.base(), "https://user:pw@h.example.com:8443/a/b");
        assert_eq!(u.to_url(), "https://user:pw@h.example.com:8443/a/b?x=1&y=2");
        assert_eq!(u.split_port(), ("user:pw@h.example.com", Some("8443")));

        let u = UrlParts::parse("https://h.example.com?q").unwrap();
        assert_eq!(
            (u.authority, u.path, u.query),
            ("h.example.com", "", Some("q"))
        );
        assert_eq!(u.split_port(), ("h.example.com", None));
        assert_eq!(
            UrlParts::parse("http://[::1]:80/x").unwrap().split_port(),
            ("[::1]", Some("80"))
        );
        assert_eq!(
            UrlParts::parse("http://[::1]/x").unwrap().split_port(),
            ("[::1]", None)
        );
        assert_eq!(
            UrlParts::parse("https://user:pw@host/")
                .unwrap()
                .split_port(),
            ("user:pw@host", None)
        );
        assert!(UrlParts::parse("hooks.example.com/x").is_none());
        assert!(UrlParts::parse("://x").is_none());
    }
}
