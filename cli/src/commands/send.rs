//! `callhook send`: sign bodies as the provider would, with the dev keys, at the current time,
//! and post them to the local (or any) ingest URL.

use std::io::Read;
use std::path::Path;

use anyhow::{Context, Result};
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

/// The body to send: a fixture's body when the file is an API Gateway event, else the file's
/// exact bytes; `-` reads standard input.
pub fn body_from(file: &str) -> Result<Vec<u8>> {
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
        return fixtures::body_of(&event);
    }
    Ok(bytes)
}

/// The token with its last character changed.
fn tampered(token: &str) -> String {
    let mut chars: Vec<char> = token.chars().collect();
    if let Some(last) = chars.last_mut() {
        *last = if *last == 'a' { 'b' } else { 'a' };
    }
    chars.into_iter().collect()
}

/// Sends each file in order; returns how many got a non-2xx answer.
pub async fn run(options: Options<'_>) -> Result<usize> {
    let signer = keys::signer(options.state_dir, options.provider)?;
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .build()?;
    let mut failures = 0;
    for file in options.files {
        let mut body = body_from(file)?;
        let timestamp = options
            .timestamp
            .unwrap_or_else(|| chrono::Utc::now().timestamp());
        let base = options.url.trim_end_matches('/');
        let mut url = format!("{base}/webhooks/{}", options.provider);
        let token = signer.sign(&body, timestamp, &url).path_token;
        let signed_url = match &token {
            Some(token) => format!("{url}/{token}"),
            None => url.clone(),
        };
        let signed = signer.sign(&body, timestamp, &signed_url);
        url = signed_url;
        if options.tamper {
            match &token {
                // A path token authenticates the sender, not the bytes: tamper with the token.
                Some(token) => {
                    url = format!("{base}/webhooks/{}/{}", options.provider, tampered(token))
                }
                None if !body.is_empty() => {
                    let middle = body.len() / 2;
                    body[middle] ^= 0x01;
                }
                None => {}
            }
        }
        let mut request = client
            .post(&url)
            .header("content-type", "application/json")
            .body(body);
        for (name, value) in &signed.headers {
            request = request.header(name, value);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("posting to {base}: is `callhook dev` running?"))?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        if !status.is_success() {
            failures += 1;
        }
        if options.json {
            let body: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
            println!(
                "{}",
                serde_json::json!({ "file": file, "status": status.as_u16(), "body": body })
            );
        } else {
            println!("{file}: {} {text}", status.as_u16());
        }
    }
    Ok(failures)
}
