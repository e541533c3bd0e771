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
use callhook::providers::{self, FIXTURE_SEED};
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

/// An API Gateway HTTP API (payload 2.0) POST of `body` to `/webhooks/{provider}`.
pub fn wrap(provider: &str, body: &[u8], base64: bool) -> Value {
    let path = format!("/webhooks/{provider}");
    let (body, encoded) = match (base64, std::str::from_utf8(body)) {
        (false, Ok(text)) => (text.to_owned(), false),
        _ => (B64.encode(body), true),
    };
    json!({
        "version": "2.0",
        "routeKey": "ANY /webhooks/{provider}",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {
            "content-type": "application/json",
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

/// Signs an API Gateway event in place with the fixture key of its provider.
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
    let signed = signer.sign(&body, FIXTURE_TIMESTAMP, &format!("https://{domain}{path}"));
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
    let vars = updated["IngestFunction"]
        .as_object_mut()
        .context("env.json has no IngestFunction object")?;
    for provider in providers::supported() {
        let signer = providers::dev_signer(provider, &FIXTURE_SEED).expect("supported");
        for (name, value) in signer.verifier_env() {
            vars.insert(name.to_owned(), Value::from(value));
        }
        let tolerance = format!("{}_TOLERANCE_SECS", provider.to_ascii_uppercase());
        vars.insert(tolerance, Value::from(FIXTURE_TOLERANCE_SECS));
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
