//! The CPU of a Standard Webhooks 401: an ordinary one (one wrong signature) against a flood
//! (100 wrong `v1a` entries) and the most entries still checked (10), all with a 256 KiB body, with only an HMAC secret configured and
//! with an Ed25519 key as well. `cargo bench -p callhook --bench signature_flood`; results in
//! docs/benchmarks.md.

use std::hint::black_box;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use callhook::delivery::{AuthError, Headers};
use callhook::signing::standard_webhooks as sw;
use chrono::{TimeZone, Utc};
use criterion::{Criterion, criterion_group, criterion_main};
use ed25519_dalek::{Signer, SigningKey};

const TS: i64 = 1_700_000_000;
const ID: &str = "msg_flood";
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn headers(signature: &str) -> Headers {
    [
        (sw::ID, ID.to_owned()),
        (sw::TIMESTAMP, TS.to_string()),
        (sw::SIGNATURE, signature.to_owned()),
    ]
    .into_iter()
    .collect()
}

fn bench(c: &mut Criterion) {
    let body = vec![b'x'; 256 * 1024];
    let signer = SigningKey::from_bytes(&[7; 32]);
    let public = format!("whpk_{}", B64.encode(signer.verifying_key().as_bytes()));
    // A well-formed signature of another message: each entry costs a full verification.
    let wrong_v1a = format!(
        "v1a,{}",
        B64.encode(signer.sign(b"another message").to_bytes())
    );
    let wrong_v1 = format!("v1,{}", B64.encode([0u8; 32]));
    let flood = vec![wrong_v1a.as_str(); 100].join(" ");
    // The most entries still checked one by one (sw::MAX_SIGNATURES).
    let ten = [wrong_v1a.as_str(); sw::MAX_SIGNATURES].join(" ");
    let now = Utc.timestamp_opt(TS, 0).unwrap();

    for (config, keys) in [
        ("hmac_key", sw::parse_keys("S", &[SECRET]).unwrap()),
        (
            "ed25519_key",
            sw::parse_keys("S", &[SECRET, &public]).unwrap(),
        ),
    ] {
        let mut group = c.benchmark_group(config);
        let ordinary = if config == "hmac_key" {
            &wrong_v1
        } else {
            &wrong_v1a
        };
        for (name, signature) in [
            ("ordinary_401", ordinary.as_str()),
            ("flood_401", &flood),
            ("ten_entries_401", &ten),
        ] {
            let h = headers(signature);
            let answer = sw::verify(&keys, &h, &body, now, 300);
            assert!(
                matches!(
                    answer,
                    Err(AuthError::BadSignature | AuthError::Malformed(_))
                ),
                "{config}/{name}: {answer:?}"
            );
            group.bench_function(name, |b| {
                b.iter(|| black_box(sw::verify(&keys, black_box(&h), &body, now, 300)))
            });
        }
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
