//! `callhook send`: sign bodies as the provider would, with the dev keys, at the current time,
//! and post them to the local (or any) ingest URL.

use std::io::Read;
use std::path::Path;

use anyhow::{Context, Result};
use callhook::providers::DevSigner;
use serde_json::Value;

use crate::commands::fixtures;
use crate::local::keys;

pub struct Options<'a> {
    pub provider: &'a str,
    pub files: &'a [String],
    pub url: String,
    pub state_dir: &'a Path,
    pub timestamp: Option<i64>,
    pub tamper: bool,
    pub json: bool,
}

/// A body to send and the `content-type` it goes with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload {
    pub body: Vec<u8>,
    pub content_type: String,
}

/// The body to send: a fixture's body when the file is an API Gateway event, else the file's
/// exact bytes; `-` reads standard input.
pub fn body_from(file: &str) -> Result<Vec<u8>> {
    Ok(payload_from(file)?.body)
}

/// [`body_from`] with its `content-type`: a fixture's own `content-type` header; for a raw
/// body, form encoding for `.txt` files (Twilio's and Plivo's bodies in `events/`), JSON for
/// `.json` files, and otherwise what the body looks like ([`fixtures::content_type_for`]).
pub fn payload_from(file: &str) -> Result<Payload> {
    let bytes = if file == "-" {
        let mut buf = Vec::new();
        std::io::stdin().read_to_end(&mut buf)?;
        buf
    } else {
        std::fs::read(file).with_context(|| format!("reading {file}"))?
    };
    if let Ok(event) = serde_json::from_slice::<Value>(&bytes)
        && event.get("requestContext").is_some()
    {
        let body = fixtures::body_of(&event)?;
        let content_type = event["headers"]
            .as_object()
            .and_then(|headers| {
                headers
                    .iter()
                    .find(|(name, _)| name.eq_ignore_ascii_case("content-type"))
            })
            .and_then(|(_, value)| value.as_str())
            .map_or_else(
                || fixtures::content_type_of(&body).to_owned(),
                str::to_owned,
            );
        return Ok(Payload { body, content_type });
    }
    let content_type = fixtures::content_type_for(file, &bytes).to_owned();
    Ok(Payload {
        body: bytes,
        content_type,
    })
}

/// The token with its last character changed.
fn tampered(token: &str) -> String {
    let mut chars: Vec<char> = token.chars().collect();
    if let Some(last) = chars.last_mut() {
        *last = if *last == 'a' { 'b' } else { 'a' };
    }
    chars.into_iter().collect()
}

/// One signed request, ready to post.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepared {
    /// Where to post: `{base}/webhooks/{provider}[/{token}]`, or the URL the signer signed
    /// when signing changed it (Twilio adds `bodySHA256` to a JSON delivery's URL).
    pub url: String,
    /// `content-type` first (the signer's own when it sets one), then the signer's headers.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Signs `payload` as `provider` would for a delivery to `{base}/webhooks/{provider}` at
/// `timestamp`; with `tamper`, one byte of the body is changed after signing (for a provider
/// authenticated by a path token, one character of the token), so ingest must answer 401.
pub fn prepare(
    signer: &dyn DevSigner,
    provider: &str,
    base: &str,
    payload: &Payload,
    timestamp: i64,
    tamper: bool,
) -> Prepared {
    let base = base.trim_end_matches('/');
    let url = format!("{base}/webhooks/{provider}");
    let mut body = payload.body.clone();
    let token = signer.sign(&body, timestamp, &url).path_token;
    let unsigned_url = match &token {
        Some(token) => format!("{url}/{token}"),
        None => url,
    };
    let signed = signer.sign(&body, timestamp, &unsigned_url);
    let mut url = signed.url.clone().unwrap_or(unsigned_url);
    if tamper {
        match &token {
            // A path token authenticates the sender, not the bytes: tamper with the token.
            Some(token) => url = format!("{base}/webhooks/{provider}/{}", tampered(token)),
            None if !body.is_empty() => {
                let middle = body.len() / 2;
                body[middle] ^= 0x01;
            }
            None => {}
        }
    }
    let signer_content_type = signed
        .headers
        .iter()
        .any(|(name, _)| name.eq_ignore_ascii_case("content-type"));
    let mut headers = Vec::with_capacity(signed.headers.len() + 1);
    if !signer_content_type {
        headers.push(("content-type".to_owned(), payload.content_type.clone()));
    }
    headers.extend(signed.headers);
    Prepared { url, headers, body }
}

/// Posts a prepared request; the answer's status and body.
pub async fn post(client: &reqwest::Client, prepared: Prepared) -> Result<(u16, String)> {
    let mut request = client.post(&prepared.url).body(prepared.body);
    for (name, value) in &prepared.headers {
        request = request.header(name, value);
    }
    let response = request.send().await.with_context(|| {
        format!(
            "posting to {}: is `callhook dev` running?",
            prepared.url.split('?').next().unwrap_or("")
        )
    })?;
    let status = response.status().as_u16();
    Ok((status, response.text().await.unwrap_or_default()))
}

/// Sends each file in order; returns how many got a non-2xx answer.
pub async fn run(options: Options<'_>) -> Result<usize> {
    let signer = keys::signer(options.state_dir, options.provider)?;
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .build()?;
    let mut failures = 0;
    for file in options.files {
        let payload = payload_from(file)?;
        let timestamp = options
            .timestamp
            .unwrap_or_else(|| chrono::Utc::now().timestamp());
        let prepared = prepare(
            signer.as_ref(),
            options.provider,
            &options.url,
            &payload,
            timestamp,
            options.tamper,
        );
        let (status, text) = post(&client, prepared).await?;
        if !(200..300).contains(&status) {
            failures += 1;
        }
        if options.json {
            let body: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
            println!(
                "{}",
                serde_json::json!({ "file": file, "status": status, "body": body })
            );
        } else {
            println!("{file}: {status} {text}");
        }
    }
    Ok(failures)
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::path::PathBuf;
    use std::sync::Arc;

    use callhook::config::Env;
    use callhook::providers::{self, FIXTURE_SEED, form};
    use hyper::server::conn::http1;
    use hyper::service::service_fn;
    use hyper_util::rt::TokioIo;
    use tokio::net::TcpListener;

    use super::*;
    use crate::commands::dev;
    use crate::local::{emulator, gateway, provision};

    const TEMPLATE: &str = include_str!("../../../template.yaml");

    fn events_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../events")
    }

    fn payload(body: &[u8], content_type: &str) -> Payload {
        Payload {
            body: body.to_vec(),
            content_type: content_type.to_owned(),
        }
    }

    fn header<'a>(prepared: &'a Prepared, name: &str) -> Vec<&'a str> {
        prepared
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    #[test]
    fn each_body_goes_with_one_content_type_and_the_url_that_was_signed() {
        let base = "http://127.0.0.1:3000/";
        let twilio = providers::dev_signer("twilio", &FIXTURE_SEED).unwrap();
        let form_body = b"CallSid=CA1&CallStatus=ringing";
        let form = prepare(
            twilio.as_ref(),
            "twilio",
            base,
            &payload(form_body, form::MEDIA_TYPE),
            1_700_000_000,
            false,
        );
        assert_eq!(form.url, "http://127.0.0.1:3000/webhooks/twilio");
        assert_eq!(header(&form, "content-type"), [form::MEDIA_TYPE]);
        let json_body = br#"{"CallSid":"CA1","CallStatus":"ringing"}"#;
        let json = prepare(
            twilio.as_ref(),
            "twilio",
            base,
            &payload(json_body, "application/json"),
            1_700_000_000,
            false,
        );
        let hash = providers::sha256_hex(json_body);
        assert_eq!(
            json.url,
            format!("http://127.0.0.1:3000/webhooks/twilio?bodySHA256={hash}")
        );
        assert_eq!(header(&json, "content-type"), ["application/json"]);

        let plivo = providers::dev_signer("plivo", &FIXTURE_SEED).unwrap();
        let sent = prepare(
            plivo.as_ref(),
            "plivo",
            base,
            &payload(form_body, form::MEDIA_TYPE),
            1_700_000_000,
            false,
        );
        assert_eq!(header(&sent, "content-type"), [form::MEDIA_TYPE]);
        assert_eq!(header(&sent, "x-plivo-signature-v3-nonce").len(), 1);

        let vonage = providers::dev_signer("vonage", &FIXTURE_SEED).unwrap();
        let sent = prepare(
            vonage.as_ref(),
            "vonage",
            base,
            &payload(b"{}", "application/json"),
            1_700_000_000,
            true,
        );
        assert!(header(&sent, "authorization")[0].starts_with("Bearer ey"));
        assert_ne!(sent.body, b"{}", "tampered");

        let miraiminds = providers::dev_signer("miraiminds", &FIXTURE_SEED).unwrap();
        let honest = prepare(
            miraiminds.as_ref(),
            "miraiminds",
            base,
            &payload(b"{}", "application/json"),
            0,
            false,
        );
        let tampered = prepare(
            miraiminds.as_ref(),
            "miraiminds",
            base,
            &payload(b"{}", "application/json"),
            0,
            true,
        );
        assert_eq!(tampered.body, b"{}");
        assert_ne!(tampered.url, honest.url);
    }

    #[test]
    fn fixtures_keep_their_content_type_and_raw_files_follow_their_extension() {
        let dir = events_dir();
        let fixture =
            payload_from(dir.join("telnyx/call-initiated.json").to_str().unwrap()).unwrap();
        assert_eq!(fixture.content_type, "application/json");
        assert!(fixture.body.starts_with(b"{"));
        let form_body = dir.join("twilio/bodies/outbound-01-initiated.txt");
        let raw = payload_from(form_body.to_str().unwrap()).unwrap();
        assert_eq!(raw.content_type, form::MEDIA_TYPE);
        assert_eq!(raw.body, std::fs::read(&form_body).unwrap());
    }

    /// Every provider's bodies (and each provider's API Gateway fixtures) sent the way
    /// `callhook send` sends them, to ingest served as `callhook dev` serves it, configured as
    /// `callhook dev` configures it: each is accepted, and each tampered copy refused with 401.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn what_send_signs_verifies_on_the_dev_stack_and_tampering_is_refused() {
        let moto = tokio::task::spawn_blocking(emulator::Moto::start)
            .await
            .unwrap()
            .expect("moto server (make venv installs it)");
        let plan = provision::plan_from_template(TEMPLATE).unwrap();
        let (dynamo, sqs) = emulator::clients(&moto.endpoint);
        let prefix = format!("sendtest{}", std::process::id());
        let s3 = emulator::s3_client(&moto.endpoint);
        let provisioned = provision::apply(&plan, &prefix, &dynamo, &sqs, &s3)
            .await
            .unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let mut env = Env::from_pairs(
            provision::function_env(TEMPLATE, "IngestFunction", &provisioned).unwrap(),
        );
        for (k, v) in emulator::local_aws_env(&moto.endpoint) {
            env.set(k, v);
        }
        let state_dir =
            std::env::temp_dir().join(format!("callhook-send-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&state_dir);
        let generated = dev::provider_env(&state_dir, &mut env, addr).unwrap();
        assert_eq!(generated, providers::supported().collect::<Vec<_>>());
        assert_eq!(
            env.get("TWILIO_WEBHOOK_URL"),
            Some(format!("http://{addr}/webhooks/twilio").as_str())
        );
        assert_eq!(
            env.get("PLIVO_WEBHOOK_URL"),
            Some(format!("http://{addr}/webhooks/plivo").as_str())
        );
        let ingest = Arc::new(callhook_ingest::build(&env).unwrap());
        let server = tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let ingest = ingest.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| {
                        let ingest = ingest.clone();
                        async move {
                            Ok::<_, std::convert::Infallible>(gateway::serve(&ingest, req).await)
                        }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });

        let client = reqwest::Client::new();
        let base = format!("http://{addr}");
        let manifest = fixtures::load_manifest(&events_dir()).unwrap();
        let mut sent = 0;
        for provider in providers::supported() {
            let signer = keys::signer(&state_dir, provider).unwrap();
            let mut files: Vec<PathBuf> =
                std::fs::read_dir(events_dir().join(provider).join("bodies"))
                    .map(|dir| dir.map(|f| f.unwrap().path()).collect())
                    .unwrap_or_default();
            // The API Gateway fixtures signed on purpose (their bodies, e.g. Twilio's JSON).
            files.extend(
                manifest
                    .fixtures
                    .iter()
                    .filter(|e| e.sign && e.file.starts_with(&format!("{provider}/")))
                    .map(|e| events_dir().join(&e.file)),
            );
            if files.is_empty() {
                // A Standard Webhooks sender's bodies are its own; no fixture holds one.
                assert_eq!(provider, "standard", "{provider}: nothing to send");
                continue;
            }
            for file in files {
                let file = file.to_str().unwrap();
                let payload = payload_from(file).unwrap();
                let now = chrono::Utc::now().timestamp();
                for tamper in [false, true] {
                    let prepared = prepare(signer.as_ref(), provider, &base, &payload, now, tamper);
                    let (status, text) = post(&client, prepared).await.unwrap();
                    let expected = if tamper { 401 } else { 200 };
                    assert_eq!(status, expected, "{file} (tamper: {tamper}): {text}");
                }
                sent += 1;
            }
        }
        assert!(sent >= 100, "only {sent} sent");
        server.abort();
        let _ = std::fs::remove_dir_all(&state_dir);
    }
}
