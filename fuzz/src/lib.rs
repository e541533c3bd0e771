//! What every fuzz target runs: one provider, configured by its dev signer from the fixture
//! seed, given arbitrary bytes.
//!
//! The input is split at its first three NUL bytes into header values, a path token and the
//! body: `verify` sees arbitrary headers (every header name the provider signs with, plus
//! `authorization`), and `normalize` sees the body both as an unauthenticated delivery and as
//! one the dev signer signed, which must then verify (Plivo: unless the bytes are not form
//! encoding, which it cannot sign). Neither may panic.

use std::sync::OnceLock;

use callhook::config::Env;
use callhook::providers::{self, Delivery, DevSigner, FIXTURE_SEED, Headers, Provider};
use callhook::verify::AuthError;
use chrono::{TimeZone, Utc};

const NOW: i64 = 1_750_000_000;
const URL: &str = "https://hooks.example.com/webhooks/fuzz";

struct Target {
    name: String,
    provider: Box<dyn Provider>,
    signer: Box<dyn DevSigner>,
    /// The names of the headers the provider signs with.
    header_names: Vec<String>,
}

fn target(name: &str) -> &'static Target {
    static TARGET: OnceLock<Target> = OnceLock::new();
    let target = TARGET.get_or_init(|| {
        let signer = providers::dev_signer(name, &FIXTURE_SEED).expect("a supported provider");
        let entry = providers::CONSTRUCTORS
            .iter()
            .find(|e| e.name == name)
            .expect("a supported provider");
        let provider = (entry.from_env)(&Env::from_pairs(signer.verifier_env()))
            .expect("valid dev env")
            .expect("configured by its dev env");
        let header_names = signer
            .sign(b"{}", NOW, URL)
            .headers
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        Target {
            name: name.to_owned(),
            provider,
            signer,
            header_names,
        }
    });
    assert_eq!(target.name, name, "one provider per fuzz target");
    target
}

pub fn run(name: &str, data: &[u8]) {
    let t = target(name);
    let received_at = Utc.timestamp_opt(NOW, 0).unwrap();
    let mut parts = data.splitn(4, |b| *b == 0);
    let header_value = parts.next().unwrap_or_default();
    let timestamp_value = parts.next().unwrap_or_default();
    let token = parts.next().map(String::from_utf8_lossy);
    let body = parts.next().unwrap_or(data);

    // Arbitrary headers under the provider's own names.
    let mut headers = Headers::new();
    for name in &t.header_names {
        let value = if name.contains("timestamp") {
            timestamp_value
        } else {
            header_value
        };
        headers.insert(name, String::from_utf8_lossy(value).into_owned());
    }
    headers.insert(
        "authorization",
        String::from_utf8_lossy(header_value).into_owned(),
    );
    let forged = Delivery {
        headers: &headers,
        body,
        path_token: token.as_deref(),
        request_url: Some(URL),
        received_at,
    };
    let _ = t.provider.verify(&forged);
    check(name, &t.provider.normalize(&forged));

    // The same body signed by the provider's dev signer verifies and normalizes. An RSA
    // signature (Recho) costs milliseconds: sign only one input in 64 there.
    if name == "recho" && data.len() % 64 != 0 {
        return;
    }
    let signed = t.signer.sign(body, NOW, URL);
    let headers: Headers = signed
        .headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.clone()))
        .collect();
    let genuine = Delivery {
        headers: &headers,
        body,
        path_token: signed.path_token.as_deref(),
        // Twilio signs a JSON body through `bodySHA256` in the URL it returns.
        request_url: Some(signed.url.as_deref().unwrap_or(URL)),
        received_at,
    };
    match t.provider.verify(&genuine) {
        Ok(()) => {}
        // Plivo signs form parameters only: other bytes cannot be signed.
        Err(AuthError::BadBody(_)) if name == "plivo" => {}
        Err(err) => panic!("{name} rejects its own signature: {err}"),
    }
    check(name, &t.provider.normalize(&genuine));
}

fn check(name: &str, event: &callhook::domain::event::CanonicalEvent) {
    assert!(event.event_id.starts_with(&format!("{name}#")));
    // The canonical event must always serialize for the queue.
    serde_json::to_string(event).expect("a canonical event serializes");
}
