//! Telnyx verify + normalize per event, against ed25519-dalek's bare verify of the same bytes.
//! `make bench` (or `cargo bench -p callhook --bench verify`); results in docs/benchmarks.md.

use std::hint::black_box;

use callhook::config::Env;
use callhook::providers::{Delivery, FIXTURE_SEED, Headers, Providers, dev_signer};
use chrono::{TimeZone, Utc};
use criterion::{Criterion, criterion_group, criterion_main};
use ed25519_dalek::{Signature, Verifier, VerifyingKey};

const BODY: &str = r#"{"data":{"event_type":"call.hangup","id":"0ccc7b54-4df3-4bca-a65a-3da1ecc777f0","occurred_at":"2023-11-14T22:13:20.000000Z","payload":{"call_control_id":"v3:u5OAKGEPT3Dx8SZSSDRWEMdNH2OripQhO","call_leg_id":"428c31b6-7af4-4bcb-b7f5-5013ef9657c1","call_session_id":"428c31b6-abf3-3bc1-b7f4-5013ef9657c1","client_state":"aGF2ZSBhIG5pY2UgZGF5ID1d","connection_id":"1494404757140276705","direction":"incoming","from":"+13125550100","to":"+13125550199","end_time":"2023-11-14T22:13:20.000000Z","hangup_cause":"normal_clearing","hangup_source":"caller","sip_hangup_cause":"200","start_time":"2023-11-14T22:12:30.000000Z","state":"hangup"},"record_type":"event"},"meta":{"attempt":1,"delivered_to":"https://hooks.example.com/webhooks/telnyx"}}"#;
const TS: i64 = 1_700_000_000;

fn bench(c: &mut Criterion) {
    let signer = dev_signer("telnyx", &FIXTURE_SEED).unwrap();
    let mut env = Env::from_pairs(signer.verifier_env());
    // The fixture key is public: accepted only in dev mode.
    env.set("CALLHOOK_DEV", "true");
    let providers = Providers::from_env(&env).unwrap();
    let telnyx = providers.get("telnyx").unwrap();
    let signed = signer.sign(BODY.as_bytes(), TS, "");
    let headers: Headers = signed.headers.iter().map(|(k, v)| (k, v.clone())).collect();
    let delivery = Delivery {
        headers: &headers,
        body: BODY.as_bytes(),
        path_token: None,
        request_url: None,
        received_at: Utc.timestamp_opt(TS, 0).unwrap(),
    };
    assert!(telnyx.verify(&delivery).is_ok());

    let key = VerifyingKey::from_bytes(
        &ed25519_dalek::SigningKey::from_bytes(&FIXTURE_SEED)
            .verifying_key()
            .to_bytes(),
    )
    .unwrap();
    let sig_b64 = headers.get("telnyx-signature-ed25519").unwrap();
    let sig_bytes = callhook::signing::decode_b64("s", sig_b64).unwrap();
    let signature = Signature::from_slice(&sig_bytes).unwrap();
    let message = [TS.to_string().as_bytes(), b"|", BODY.as_bytes()].concat();

    let mut group = c.benchmark_group("telnyx");
    group.bench_function("bare_ed25519_verify", |b| {
        b.iter(|| {
            black_box(
                key.verify(black_box(&message), black_box(&signature))
                    .is_ok(),
            )
        })
    });
    group.bench_function("verify_and_normalize", |b| {
        b.iter(|| {
            let d = black_box(&delivery);
            telnyx.verify(d).unwrap();
            black_box(telnyx.normalize(d))
        })
    });
    group.bench_function("normalize_only", |b| {
        b.iter(|| black_box(telnyx.normalize(black_box(&delivery))))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
