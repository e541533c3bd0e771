//! The fixtures in `events/`: API Gateway events valid as they are for `sam local invoke -e` and
//! `cargo lambda invoke --data-file`, signed with the documented fixture keys
//! (`callhook::providers::FIXTURE_SEED`) at a fixed time. `events/env.json` configures the
//! matching verifiers with a wide tolerance; production code has no switch to skip
//! verification. `events/fixtures.json` lists every fixture with its documented answer, and the
//! fixture test runs them all, so they never rot.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use callhook::providers::form::{self, Form, UrlParts};
use callhook::providers::{self, FIXTURE_SEED, twilio};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The fixed signing time of every fixture (2023-11-14T22:13:20Z), as in the Telnyx vector.
pub const FIXTURE_TIMESTAMP: i64 = 1_700_000_000;
pub const FIXTURE_DOMAIN: &str = "hooks.example.com";
/// Wide enough that the fixed fixture time stays inside it for decades; set only in
/// `events/env.json`, never a default.
pub const FIXTURE_TOLERANCE_SECS: &str = "2000000000";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub fixtures: Vec<Entry>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    /// Path under `events/`.
    pub file: String,
    /// False for fixtures whose signature is wrong on purpose.
    #[serde(default = "yes")]
    pub sign: bool,
    pub expect: Expect,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub note: String,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Expect {
    /// HTTP status, for API Gateway fixtures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Reported batch item failures, for SQS fixtures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failures: Option<usize>,
    /// Events re-enqueued, for the sweeper's scheduled-event fixture.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requeued: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub review: bool,
}

pub fn load_manifest(events_dir: &Path) -> Result<Manifest> {
    let path = events_dir.join("fixtures.json");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not valid", path.display()))
}

/// Every API Gateway/SQS event fixture under `events/` (raw provider bodies in `bodies/`
/// folders and the two configuration files are not fixtures).
pub fn fixture_files(events_dir: &Path) -> Result<Vec<String>> {
    let mut found = Vec::new();
    let mut stack = vec![events_dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            if path.is_dir() {
                if path.file_name().is_some_and(|n| n != "bodies") {
                    stack.push(path);
                }
            } else if path.extension().is_some_and(|e| e == "json") {
                let rel = path
                    .strip_prefix(events_dir)?
                    .to_string_lossy()
                    .into_owned();
                if rel != "env.json" && rel != "fixtures.json" {
                    found.push(rel);
                }
            }
        }
    }
    found.sort();
    Ok(found)
}

/// The raw body bytes of an API Gateway event.
pub fn body_of(event: &Value) -> Result<Vec<u8>> {
    let body = event["body"].as_str().unwrap_or("");
    if event["isBase64Encoded"].as_bool().unwrap_or(false) {
        B64.decode(body).context("body is not valid base64")
    } else {
        Ok(body.as_bytes().to_vec())
    }
}

/// The `content-type` a provider sends with `body`: a JSON document is `application/json`; a
/// body that is nothing but form encoding (`name=value&…`, printable ASCII, as Twilio and Plivo
/// send) is `application/x-www-form-urlencoded`; anything else keeps `application/json`, the
/// type every other provider sends.
pub fn content_type_of(body: &[u8]) -> &'static str {
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    let json_like = first.is_some_and(|b| matches!(b, b'{' | b'['));
    let form_like = !body.is_empty()
        && body.contains(&b'=')
        && body.iter().all(|b| (0x21..=0x7e).contains(b))
        && Form::parse(body).is_ok();
    if !json_like && form_like {
        form::MEDIA_TYPE
    } else {
        "application/json"
    }
}

/// The `content-type` for a body read from `file`: `.txt` bodies in `events/*/bodies/` are
/// form bodies, `.json` ones JSON; otherwise (standard input, other names) the body decides
/// ([`content_type_of`]).
pub fn content_type_for(file: &str, body: &[u8]) -> &'static str {
    match Path::new(file).extension().and_then(|e| e.to_str()) {
        Some("txt") => form::MEDIA_TYPE,
        Some("json") => "application/json",
        _ => content_type_of(body),
    }
}

/// An API Gateway HTTP API (payload 2.0) POST of `body` to `/webhooks/{provider}`, with the
/// `content-type` the provider would send ([`content_type_of`]). The body is base64-encoded
/// when `base64` says so, and as API Gateway does it: for a body that is not UTF-8, and for a
/// form body (HTTP APIs pass only `text/*`, JSON, XML and JavaScript bodies as text).
pub fn wrap(provider: &str, body: &[u8], base64: bool) -> Value {
    let content_type = content_type_of(body);
    let path = format!("/webhooks/{provider}");
    let as_text = !base64 && content_type != form::MEDIA_TYPE;
    let (body, encoded) = match (as_text, std::str::from_utf8(body)) {
        (true, Ok(text)) => (text.to_owned(), false),
        _ => (B64.encode(body), true),
    };
    json!({
        "version": "2.0",
        "routeKey": "ANY /webhooks/{provider}",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {
            "content-type": content_type,
            "host": FIXTURE_DOMAIN,
            "user-agent": format!("{provider}-webhooks/1.0"),
        },
        "pathParameters": { "provider": provider },
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "fixture",
            "domainName": FIXTURE_DOMAIN,
            "domainPrefix": "hooks",
            "http": {
                "method": "POST",
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "192.0.2.10",
                "userAgent": format!("{provider}-webhooks/1.0")
            },
            "requestId": "fixture",
            "routeKey": "ANY /webhooks/{provider}",
            "stage": "$default",
            "time": "14/Nov/2023:22:13:20 +0000",
            "timeEpoch": FIXTURE_TIMESTAMP * 1000
        },
        "body": body,
        "isBase64Encoded": encoded
    })
}

/// The query a signer added to the URL it was given (Twilio's `bodySHA256` for a JSON body):
/// removed before signing again, so a re-signed fixture gets the hash of its current body.
const SIGNER_QUERY_PARAMS: &[&str] = &[twilio::BODY_HASH_PARAM];

/// `query` without the pieces a signer adds ([`SIGNER_QUERY_PARAMS`]).
fn query_without_signer_params(query: &str) -> String {
    query
        .split('&')
        .filter(|piece| {
            let name = piece.split('=').next().unwrap_or("");
            !piece.is_empty() && !SIGNER_QUERY_PARAMS.contains(&name)
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// Signs an API Gateway event in place with the fixture key of its provider, for the URL API
/// Gateway reports (`https://{domainName}{rawPath}[?{rawQueryString}]`). When the signer
/// changes the URL (Twilio adds `bodySHA256` to a JSON delivery's), the event's
/// `rawQueryString` becomes that URL's query: the request went to the URL the provider signed.
pub fn sign(event: &mut Value) -> Result<()> {
    let provider = event["pathParameters"]["provider"]
        .as_str()
        .context("pathParameters.provider is missing")?
        .to_owned();
    let Some(signer) = providers::dev_signer(&provider, &FIXTURE_SEED) else {
        bail!("unknown provider {provider:?}");
    };
    let body = body_of(event)?;
    let token = signer.sign(&body, FIXTURE_TIMESTAMP, "").path_token;
    let path = match &token {
        Some(token) => {
            event["pathParameters"]["token"] = Value::from(token.as_str());
            event["routeKey"] = Value::from("ANY /webhooks/{provider}/{token}");
            event["requestContext"]["routeKey"] = event["routeKey"].clone();
            format!("/webhooks/{provider}/{token}")
        }
        None => format!("/webhooks/{provider}"),
    };
    event["rawPath"] = Value::from(path.as_str());
    event["requestContext"]["http"]["path"] = Value::from(path.as_str());
    let domain = event["requestContext"]["domainName"]
        .as_str()
        .unwrap_or(FIXTURE_DOMAIN)
        .to_owned();
    let query = query_without_signer_params(event["rawQueryString"].as_str().unwrap_or(""));
    let mut url = format!("https://{domain}{path}");
    if !query.is_empty() {
        url = format!("{url}?{query}");
    }
    let signed = signer.sign(&body, FIXTURE_TIMESTAMP, &url);
    let query = match &signed.url {
        Some(signed_url) => {
            let parts = UrlParts::parse(signed_url)
                .with_context(|| format!("{provider}: the signer's URL {signed_url:?}"))?;
            if parts.base() != format!("https://{domain}{path}") {
                bail!("{provider}: the signer moved the delivery to another URL: {signed_url}");
            }
            parts.query.unwrap_or("").to_owned()
        }
        None => query,
    };
    event["rawQueryString"] = Value::from(query);
    let headers = event["headers"]
        .as_object_mut()
        .context("headers is not an object")?;
    for (name, value) in signed.headers {
        headers.insert(name, Value::from(value));
    }
    Ok(())
}

pub fn read(path: &Path) -> Result<Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))
}

pub fn write(path: &Path, event: &Value) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, serde_json::to_string_pretty(event)? + "\n")
        .with_context(|| format!("writing {}", path.display()))
}

/// Re-signs every fixture the manifest marks `sign`; with `check`, changes nothing and lists
/// the fixtures whose signature is out of date instead.
pub fn sign_all(events_dir: &Path, check: bool) -> Result<Vec<PathBuf>> {
    let manifest = load_manifest(events_dir)?;
    let mut stale = Vec::new();
    let env_path = events_dir.join("env.json");
    let env = read(&env_path)?;
    let mut updated = env.clone();
    for provider in providers::supported() {
        let signer = providers::dev_signer(provider, &FIXTURE_SEED).expect("supported");
        let vars = updated["IngestFunction"]
            .as_object_mut()
            .context("env.json has no IngestFunction object")?;
        for (name, value) in signer.verifier_env() {
            vars.insert(name.to_owned(), Value::from(value));
        }
        let tolerance = format!("{}_TOLERANCE_SECS", provider.to_ascii_uppercase());
        vars.insert(tolerance, Value::from(FIXTURE_TOLERANCE_SECS));
        // The fixture keys are public and the tolerance decades long: dev mode only.
        vars.insert("CALLHOOK_DEV".to_owned(), Value::from("true"));
        // The sweeper normalizes without keys (template.yaml gives it none): env.json neither.
        if let Some(vars) = updated["SweeperFunction"].as_object_mut() {
            for (name, _) in signer.verifier_env() {
                vars.remove(name);
            }
            vars.remove(&format!("{}_TOLERANCE_SECS", provider.to_ascii_uppercase()));
            vars.remove("CALLHOOK_DEV");
        }
    }
    if updated != env {
        if !check {
            write(&env_path, &updated)?;
        }
        stale.push(env_path);
    }
    for entry in manifest.fixtures.iter().filter(|e| e.sign) {
        let path = events_dir.join(&entry.file);
        let event = read(&path)?;
        if event.get("requestContext").is_none() {
            continue; // not an API Gateway event (e.g. SQS)
        }
        let mut signed = event.clone();
        sign(&mut signed)?;
        if signed != event {
            if !check {
                write(&path, &signed)?;
            }
            stale.push(path);
        }
    }
    Ok(stale)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
    use callhook::config::Env;
    use callhook::providers::{AuthError, Delivery, Providers};

    fn events_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../events")
    }

    /// Verifies an API Gateway event the way ingest does (the request's URL and headers as
    /// the gateway reports them), with events/env.json's fixture configuration.
    fn verify(event: &Value) -> Result<(), AuthError> {
        let mut env = Env::default();
        for provider in providers::supported() {
            let signer = providers::dev_signer(provider, &FIXTURE_SEED).unwrap();
            for (k, v) in signer.verifier_env() {
                env.set(k, v);
            }
            env.set(
                &format!("{}_TOLERANCE_SECS", provider.to_ascii_uppercase()),
                FIXTURE_TOLERANCE_SECS,
            );
        }
        env.set("CALLHOOK_DEV", "true");
        let providers = Providers::from_env(&env).unwrap();
        let event: ApiGatewayV2httpRequest = serde_json::from_value(event.clone()).unwrap();
        let request = callhook_ingest::request_of(&event);
        let body = body_of(&serde_json::to_value(&event).unwrap()).unwrap();
        let provider = providers.get(request.provider.unwrap()).unwrap();
        provider.verify(&Delivery {
            headers: &request.headers,
            body: &body,
            path_token: request.token,
            request_url: request.request_url.as_deref(),
            received_at: request.received_at,
        })
    }

    #[test]
    fn content_types_follow_the_body_and_the_file_name() {
        assert_eq!(
            content_type_of(b"CallSid=CA1&CallStatus=ringing"),
            form::MEDIA_TYPE
        );
        assert_eq!(content_type_of(b" {\"a\":1}"), "application/json");
        assert_eq!(content_type_of(b"[1]"), "application/json");
        // Not a form body: no pair, a raw space, an escape that is not one.
        assert_eq!(content_type_of(b"xxxx"), "application/json");
        assert_eq!(content_type_of(b"a=b c"), "application/json");
        assert_eq!(content_type_of(b"a=%zz"), "application/json");
        assert_eq!(content_type_of(b""), "application/json");
        assert_eq!(
            content_type_for("x/inbound-01.txt", b"{}"),
            form::MEDIA_TYPE
        );
        assert_eq!(
            content_type_for("x/inbound-01.json", b"a=b"),
            "application/json"
        );
        assert_eq!(content_type_for("-", b"a=b"), form::MEDIA_TYPE);
    }

    #[test]
    fn every_body_wraps_into_an_event_its_provider_accepts() {
        let mut checked = 0;
        for provider in providers::supported() {
            let Ok(dir) = std::fs::read_dir(events_dir().join(provider).join("bodies")) else {
                continue;
            };
            for file in dir {
                let path = file.unwrap().path();
                let body = std::fs::read(&path).unwrap();
                let mut event = wrap(provider, &body, false);
                sign(&mut event).unwrap();
                let name = path.display();
                assert_eq!(verify(&event), Ok(()), "{name}");
                let form = path.extension().is_some_and(|e| e == "txt");
                let expected = if form {
                    form::MEDIA_TYPE
                } else {
                    "application/json"
                };
                assert_eq!(event["headers"]["content-type"], expected, "{name}");
                assert_eq!(event["rawQueryString"], "", "{name}");
                // API Gateway passes form bodies base64-encoded, JSON as text.
                assert_eq!(event["isBase64Encoded"], form, "{name}");
                assert_eq!(body_of(&event).unwrap(), body, "{name}");
                // One byte changed after signing: refused.
                let mut tampered = body.clone();
                let middle = tampered.len() / 2;
                tampered[middle] ^= 0x01;
                let mut bad = event.clone();
                bad["body"] = Value::from(if form {
                    B64.encode(&tampered)
                } else {
                    String::from_utf8(tampered).unwrap()
                });
                if provider != "miraiminds" {
                    assert!(verify(&bad).is_err(), "{name} tampered");
                }
                checked += 1;
            }
        }
        assert!(checked >= 100, "only {checked} bodies");
    }

    #[test]
    fn a_twilio_json_body_is_signed_for_the_url_with_its_hash() {
        let body = br#"{"CallSid":"CA1","CallStatus":"ringing","SequenceNumber":"1"}"#;
        let mut event = wrap("twilio", body, false);
        event["rawQueryString"] = Value::from("a=1");
        sign(&mut event).unwrap();
        let hash = callhook::providers::sha256_hex(body);
        assert_eq!(event["rawQueryString"], format!("a=1&bodySHA256={hash}"));
        assert_eq!(event["headers"]["content-type"], "application/json");
        assert_eq!(verify(&event), Ok(()));
        // Re-signing keeps one hash: the current body's.
        let mut again = event.clone();
        sign(&mut again).unwrap();
        assert_eq!(again, event);
        let other = br#"{"CallSid":"CA1","CallStatus":"ringing","SequenceNumber":"2"}"#;
        again["body"] = Value::from(std::str::from_utf8(other).unwrap());
        assert_eq!(
            verify(&again),
            Err(AuthError::BodyMismatch(twilio::BODY_HASH_PARAM))
        );
        sign(&mut again).unwrap();
        let hash = callhook::providers::sha256_hex(other);
        assert_eq!(again["rawQueryString"], format!("a=1&bodySHA256={hash}"));
        assert_eq!(verify(&again), Ok(()));
        // Without the hash in the URL a JSON body is refused.
        let mut stripped = event.clone();
        stripped["rawQueryString"] = Value::from("a=1");
        assert!(verify(&stripped).is_err());
    }
}
