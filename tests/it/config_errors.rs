//! Cold-start configuration (docs/configuration.md): every function's `build(&Env)` with one variable missing
//! or wrong. Each must fail — not start half-configured, not panic — with one line that names the
//! variable and never contains the value given (values are often secrets).
//!
//! Nothing here talks to AWS: building the functions only makes clients.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use callhook::config::{ConfigError, Env};
use callhook::providers::{self, FIXTURE_SEED};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Function {
    Ingest,
    Lifecycle,
    Dispatch,
    Sweeper,
    Review,
}

use Function::*;

const ALL: [Function; 5] = [Ingest, Lifecycle, Dispatch, Sweeper, Review];

fn build(function: Function, env: &Env) -> Result<(), ConfigError> {
    match function {
        Ingest => callhook_ingest::build(env).map(drop),
        Lifecycle => callhook_lifecycle::build(env).map(drop),
        Dispatch => callhook_dispatch::build(env).map(drop),
        Sweeper => callhook_sweeper::build(env).map(drop),
        Review => callhook_review::build(env).map(drop),
    }
}

/// One environment that configures all five functions (each reads only its own variables):
/// every provider with its fixture keys, every dispatch route, local AWS settings.
fn base() -> Vec<(String, String)> {
    let mut vars: Vec<(String, String)> = [
        ("AWS_REGION", "eu-west-1"),
        ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
        ("AWS_SECRET_ACCESS_KEY", "aws-secret-access-key-example"),
        ("AWS_ENDPOINT_URL", "http://127.0.0.1:9"),
        ("EVENTS_TABLE", "callhook-events"),
        ("EVENTS_BUCKET", "callhook-eventsbucket"),
        ("CALLS_TABLE", "callhook-calls"),
        ("REVIEW_TABLE", "callhook-review"),
        ("LEDGER_TABLE", "callhook-ledger"),
        (
            "EVENTS_QUEUE_URL",
            "https://sqs.eu-west-1.amazonaws.com/123456789012/events",
        ),
        (
            "DISPATCH_QUEUE_URL",
            "https://sqs.eu-west-1.amazonaws.com/123456789012/dispatch",
        ),
        (
            "CALLBACK_QUEUE_URL",
            "https://sqs.eu-west-1.amazonaws.com/123456789012/callback",
        ),
        ("CRM_WEBHOOK_URL", "https://crm.example.com/hooks/callhook"),
        ("TICKETING_WEBHOOK_URL", "https://tickets.example.com/hooks"),
        (
            "CRM_SIGNING_SECRET",
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        ),
        // The fixture keys below and the CRM secret above are public: dev mode only.
        ("CALLHOOK_DEV", "true"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    for provider in providers::supported() {
        let signer = providers::dev_signer(provider, &FIXTURE_SEED).unwrap();
        for (k, v) in signer.verifier_env() {
            vars.push((k.to_owned(), v));
        }
    }
    vars
}

/// The base environment with `changes` applied: `Some(value)` sets, `None` removes.
fn env_with(changes: &[(&str, Option<&str>)]) -> Env {
    let mut vars = base();
    for (var, value) in changes {
        vars.retain(|(k, _)| k != var);
        if let Some(value) = value {
            vars.push(((*var).to_owned(), (*value).to_owned()));
        }
    }
    Env::from_pairs(vars)
}

struct Case {
    /// Which functions read the variable (each one must refuse to start).
    functions: &'static [Function],
    changes: Vec<(&'static str, Option<String>)>,
    /// The variable the error must name.
    names: &'static str,
}

fn unset(functions: &'static [Function], var: &'static str) -> Case {
    Case {
        functions,
        changes: vec![(var, None)],
        names: var,
    }
}

fn set(functions: &'static [Function], var: &'static str, value: impl Into<String>) -> Case {
    Case {
        functions,
        changes: vec![(var, Some(value.into()))],
        names: var,
    }
}

/// An Ed25519 public key in SPKI PEM: a PUBLIC KEY that is not an RSA key.
fn ed25519_pem() -> String {
    let key = ed25519_dalek::SigningKey::from_bytes(&FIXTURE_SEED).verifying_key();
    let mut der = hex_bytes("302a300506032b6570032100");
    der.extend_from_slice(key.as_bytes());
    format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----",
        B64.encode(der)
    )
}

fn hex_bytes(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

/// 32 bytes that are not an Ed25519 public key (not a point of the curve).
fn not_a_point() -> String {
    let bytes = (0..=255u8)
        .map(|b| [b; 32])
        .find(|bytes| ed25519_dalek::VerifyingKey::from_bytes(bytes).is_err())
        .expect("some repeated byte is not a curve point");
    B64.encode(bytes)
}

/// A 1024-bit RSA public key: too short.
const RSA_1024_PEM: &str = "-----BEGIN PUBLIC KEY-----\\nMIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDSc3R4WZZHgte8QXcwZXCcjVYa\\nGZh2tTPco17/DQhDlIlIPPCtldJNIN1LYDfc1ETvYOnV5SXDSFV4KpdLJw0bIdjc\\nV3/VKWwVON5UD73ACO4ZYuSFxVmpk3vQ/pxxVJRkhnBCMwos/kXM1xV0713n5PAO\\nfdffglOQi5OzI3hmTQIDAQAB\\n-----END PUBLIC KEY-----";

fn cases() -> Vec<Case> {
    const I: &[Function] = &[Ingest];
    const L: &[Function] = &[Lifecycle];
    const D: &[Function] = &[Dispatch];
    const LD: &[Function] = &[Lifecycle, Dispatch];
    const S: &[Function] = &[Sweeper];
    const R: &[Function] = &[Review];
    // Providers' keys are configured by ingest only (the sweeper normalizes without keys); both
    // read STANDARD_EVENT_TYPES.
    const P: &[Function] = &[Ingest];
    const IS: &[Function] = &[Ingest, Sweeper];
    const ILSR: &[Function] = &[Ingest, Lifecycle, Sweeper, Review];
    const IDS: &[Function] = &[Ingest, Dispatch, Sweeper];

    let telnyx_key = |len: usize| B64.encode(vec![0x5au8; len]);
    let good_telnyx = providers::dev_signer("telnyx", &FIXTURE_SEED)
        .unwrap()
        .verifier_env()[0]
        .1
        .clone();

    vec![
        // ---- tables and queues
        unset(ILSR, "EVENTS_TABLE"),
        set(ILSR, "EVENTS_TABLE", ""),
        set(ILSR, "EVENTS_TABLE", "   "),
        unset(P, "EVENTS_QUEUE_URL"),
        // Ingest writes large bodies there; dispatch and the sweeper read them.
        unset(IDS, "EVENTS_BUCKET"),
        set(IDS, "EVENTS_BUCKET", " "),
        unset(R, "REVIEW_TABLE"),
        // ---- the sweeper and the review function
        set(S, "SWEEP_MIN_AGE_SECS", "10"),
        set(S, "SWEEP_MIN_AGE_SECS", "two minutes"),
        set(
            R,
            "EVENTS_DLQ_ARN",
            "https://sqs.eu-west-1.amazonaws.com/1/events-dlq",
        ),
        set(R, "REVIEW_QUEUE_ARN", "review-queue"),
        set(IS, "STANDARD_EVENT_TYPES", "call.completed"),
        set(IS, "STANDARD_EVENT_TYPES", "call.completed=finished-s3cr3t"),
        unset(LD, "CALLS_TABLE"),
        unset(LD, "DISPATCH_QUEUE_URL"),
        unset(D, "LEDGER_TABLE"),
        // ---- AWS, as Lambda provides it
        Case {
            functions: &ALL,
            changes: vec![("AWS_REGION", None), ("AWS_DEFAULT_REGION", None)],
            names: "AWS_REGION",
        },
        unset(&ALL, "AWS_ACCESS_KEY_ID"),
        unset(&ALL, "AWS_SECRET_ACCESS_KEY"),
        set(&ALL, "AWS_ENDPOINT_URL", "not a url"),
        // ---- ingest limits
        set(I, "MAX_BODY_BYTES", "abc"),
        set(I, "MAX_BODY_BYTES", "-262144"),
        set(I, "MAX_BODY_BYTES", "00000"),
        set(I, "MAX_BODY_BYTES", "2.5e5"),
        set(I, "MAX_BODY_BYTES", "99999999999999999999999"),
        // Lambda's payload limit itself: a base64 body that large does not fit it (at most
        // 4694016).
        set(I, "MAX_BODY_BYTES", "6291456"),
        set(I, "MAX_BODY_BYTES", "4694017"),
        set(I, "RAW_RETENTION_DAYS", "thirty"),
        set(I, "RAW_RETENTION_DAYS", "00000"),
        set(I, "RESEND_AFTER_SECS", "soon-ish"),
        // Huge values once made chrono panic on every request.
        set(I, "RAW_RETENTION_DAYS", "1000000000000"),
        set(I, "RESEND_AFTER_SECS", "100000000000000000"),
        // ---- dev mode: the public fixture keys and long tolerances only with CALLHOOK_DEV=true
        Case {
            functions: P,
            changes: vec![("CALLHOOK_DEV", None)],
            names: "TELNYX_PUBLIC_KEYS",
        },
        Case {
            functions: D,
            changes: vec![("CALLHOOK_DEV", Some("false".into()))],
            names: "CRM_SIGNING_SECRET",
        },
        Case {
            functions: P,
            changes: vec![
                ("CALLHOOK_DEV", None),
                ("TELNYX_TOLERANCE_SECS", Some("604801".into())),
            ],
            names: "TELNYX_TOLERANCE_SECS",
        },
        set(P, "BIRD_TOLERANCE_SECS", "99999999999"),
        set(P, "CALLHOOK_DEV", "yes"),
        set(D, "CALLHOOK_DEV", "on"),
        // ---- secrets and tokens of at least 16 bytes
        set(P, "TWILIO_AUTH_TOKENS", "short-token-15b"),
        set(P, "RETELL_API_KEYS", "key_0123456789a"),
        Case {
            functions: P,
            changes: vec![
                ("RECHO_AUTH", Some("bearer".into())),
                (
                    "RECHO_BEARER_TOKENS",
                    Some("a-long-enough-token,s3cr3t-short".into()),
                ),
            ],
            names: "RECHO_BEARER_TOKENS",
        },
        set(
            P,
            "STANDARD_WEBHOOK_SECRETS",
            format!("whsec_{}", B64.encode(b"fifteen-bytes-x")),
        ),
        set(
            D,
            "CRM_SIGNING_SECRET",
            format!("whsec_{}", B64.encode(b"fifteen-bytes-x")),
        ),
        // ---- a key for two providers
        Case {
            functions: P,
            changes: vec![(
                "PLIVO_AUTH_TOKENS",
                Some(
                    providers::dev_signer("twilio", &FIXTURE_SEED)
                        .unwrap()
                        .verifier_env()[0]
                        .1
                        .clone(),
                ),
            )],
            names: "PLIVO_AUTH_TOKENS",
        },
        // ---- provider keys
        set(P, "TELNYX_PUBLIC_KEYS", telnyx_key(31)),
        set(P, "TELNYX_PUBLIC_KEYS", telnyx_key(33)),
        set(
            P,
            "TELNYX_PUBLIC_KEYS",
            format!("{good_telnyx},{}", telnyx_key(31)),
        ),
        set(P, "TELNYX_PUBLIC_KEYS", "%%not-base64-telnyx-key%%"),
        set(P, "TELNYX_PUBLIC_KEYS", not_a_point()),
        set(P, "TELNYX_TOLERANCE_SECS", "-300"),
        set(
            P,
            "BIRD_WEBHOOK_URL",
            "ftp://hooks.example.com/secret-bird-path",
        ),
        set(P, "BIRD_WEBHOOK_URL", "hooks.example.com/secret-bird-path"),
        set(P, "BIRD_TOLERANCE_SECS", "1day"),
        set(
            P,
            "STANDARD_WEBHOOK_SECRETS",
            "whsec_%%%not-base64-secret%%%",
        ),
        set(P, "STANDARD_WEBHOOK_SECRETS", "not base64 standard secret!"),
        set(P, "STANDARD_WEBHOOK_SECRETS", "whsec_"),
        set(P, "STANDARD_WEBHOOK_SECRETS", "whpk_AAAAAAAAAAAAAAAAAAAA"),
        set(P, "STATESET_WEBHOOK_SECRETS", "whsec_***stateset-secret***"),
        set(P, "STATESET_TOLERANCE_SECS", "five minutes"),
        set(P, "RECHO_AUTH", "bogus"),
        // Anyone could post: it takes a second, explicit consent.
        Case {
            functions: P,
            changes: vec![("RECHO_AUTH", Some("none".into()))],
            names: "RECHO_ALLOW_UNAUTHENTICATED",
        },
        Case {
            functions: P,
            changes: vec![
                ("RECHO_AUTH", Some("none".into())),
                ("RECHO_ALLOW_UNAUTHENTICATED", Some("yes".into())),
            ],
            names: "RECHO_ALLOW_UNAUTHENTICATED",
        },
        set(P, "RECHO_AUTH", "hmac-sha256"),
        Case {
            functions: P,
            changes: vec![
                ("RECHO_AUTH", Some("bearer".into())),
                ("RECHO_BEARER_TOKENS", None),
            ],
            names: "RECHO_BEARER_TOKENS",
        },
        Case {
            functions: P,
            changes: vec![
                ("RECHO_AUTH", Some("bearer".into())),
                ("RECHO_BEARER_TOKENS", Some(" , ,".into())),
            ],
            names: "RECHO_BEARER_TOKENS",
        },
        Case {
            functions: P,
            changes: vec![
                ("RECHO_AUTH", Some("rsa".into())),
                ("RECHO_PUBLIC_KEYS_PEM", None),
            ],
            names: "RECHO_PUBLIC_KEYS_PEM",
        },
        set(
            P,
            "RECHO_PUBLIC_KEYS_PEM",
            "recho-public-key-that-is-not-pem",
        ),
        set(
            P,
            "RECHO_PUBLIC_KEYS_PEM",
            "-----BEGIN PUBLIC KEY-----\\n%%%%secret%%%%\\n-----END PUBLIC KEY-----",
        ),
        set(
            P,
            "RECHO_PUBLIC_KEYS_PEM",
            "-----BEGIN PUBLIC KEY-----\\nAAAA\\n-----END PRIVATE KEY-----",
        ),
        set(P, "RECHO_PUBLIC_KEYS_PEM", RSA_1024_PEM),
        set(P, "RECHO_PUBLIC_KEYS_PEM", ed25519_pem()),
        set(P, "RECHO_TOLERANCE_SECS", "ten"),
        set(P, "MIRAIMINDS_PATH_TOKENS", "short-secret"),
        set(
            P,
            "MIRAIMINDS_PATH_TOKENS",
            "secret/with/slashes/0123456789",
        ),
        set(
            P,
            "MIRAIMINDS_PATH_TOKENS",
            "0123456789abcdef0123456789abcdef,tiny-secret",
        ),
        // ---- lifecycle
        set(L, "DISPATCH_SETTLE_SECS", "abc"),
        set(L, "DISPATCH_SETTLE_SECS", "901"),
        // ---- dispatch routes and signing
        set(
            D,
            "CRM_WEBHOOK_URL",
            "crm.example.com/hook?token=s3cr3t-crm-token",
        ),
        set(D, "CRM_WEBHOOK_URL", "https://"),
        set(D, "CRM_WEBHOOK_URL", "https:///path-only-s3cr3t"),
        set(
            D,
            "TICKETING_WEBHOOK_URL",
            "https://tickets.example.com/a b?key=s3cr3t-ticket",
        ),
        set(D, "CALLBACK_QUEUE_URL", "callback-queue-name-only"),
        // ---- what callhook POSTs to: https, or plain http on this machine only
        set(
            D,
            "CRM_WEBHOOK_URL",
            "http://crm.example.com/hook?token=s3cr3t-crm",
        ),
        set(D, "TICKETING_WEBHOOK_URL", "http://10.1.2.3/s3cr3t-tickets"),
        set(
            D,
            "DISPATCH_ROUTES",
            r#"{"busy":{"http":"http://crm.example.com/busy-s3cr3t"}}"#,
        ),
        set(D, "CRM_SIGNING_SECRET", "whsec_%%%crm-signing-secret%%%"),
        set(D, "CRM_SIGNING_SECRET", "whsec_"),
        unset(D, "CRM_SIGNING_SECRET"),
        set(D, "DISPATCH_ROUTES", "{busy: sqs-s3cr3t}"),
        set(D, "DISPATCH_ROUTES", r#"["not","an","object"]"#),
        set(D, "DISPATCH_ROUTES", r#"{"busy":"nowhere-s3cr3t"}"#),
        set(D, "DISPATCH_ROUTES", r#"{"sometimes":"drop"}"#),
        set(
            D,
            "DISPATCH_ROUTES",
            r#"{"completed":{"http":"ftp://crm.example.com/?token=s3cr3t-route"}}"#,
        ),
        set(
            D,
            "DISPATCH_ROUTES",
            r#"{"completed":{"http":"https://a.example.com","sqs":"https://b.example.com"}}"#,
        ),
        set(D, "DISPATCH_MAX_ATTEMPTS", "00000"),
        set(D, "DISPATCH_MAX_ATTEMPTS", "many"),
        set(D, "DISPATCH_TIMEOUT_SECS", "99999999"),
        set(D, "DISPATCH_RETRY_BASE_SECS", "-30"),
        set(D, "DISPATCH_RETRY_MAX_SECS", "99999999"),
    ]
}

#[tokio::test]
async fn the_base_environment_starts_every_function() {
    for function in ALL {
        if let Err(err) = build(function, &env_with(&[])) {
            panic!("{function:?}: {err}");
        }
    }
    // Valid variants: region from AWS_DEFAULT_REGION, `none` chosen explicitly (any case),
    // bearer tokens, a rotation list, SAM's empty parameters meaning "unset".
    let variants: &[&[(&str, Option<&str>)]] = &[
        &[
            ("AWS_REGION", None),
            ("AWS_DEFAULT_REGION", Some("eu-west-1")),
        ],
        &[
            ("RECHO_AUTH", Some("NONE")),
            ("RECHO_ALLOW_UNAUTHENTICATED", Some("true")),
        ],
        &[
            ("RECHO_AUTH", Some("bearer")),
            (
                "RECHO_BEARER_TOKENS",
                Some("recho-token-number-one,recho-token-number-two"),
            ),
        ],
        &[("MAX_BODY_BYTES", Some("393216"))],
        &[("MAX_BODY_BYTES", Some("4694016"))],
        &[
            ("TELNYX_PUBLIC_KEYS", Some("")),
            ("BIRD_SIGNING_KEYS", None),
        ],
        &[(
            "DISPATCH_ROUTES",
            Some(r#"{"busy":"drop","voicemail":"crm","failed":{"http":"http://[::1]:3001/x"}}"#),
        )],
        &[("CRM_WEBHOOK_URL", Some("http://localhost:3001/crm"))],
        &[("TELNYX_TOLERANCE_SECS", Some("2000000000"))],
    ];
    for changes in variants {
        for function in ALL {
            if let Err(err) = build(function, &env_with(changes)) {
                panic!("{function:?} with {changes:?}: {err}");
            }
        }
    }
}

#[tokio::test]
async fn each_bad_variable_is_one_line_naming_it_without_its_value() {
    let cases = cases();
    assert!(cases.len() >= 40, "{} cases", cases.len());
    let mut failures = Vec::new();
    let mut checked = 0;
    for case in &cases {
        let changes: Vec<(&str, Option<&str>)> = case
            .changes
            .iter()
            .map(|(k, v)| (*k, v.as_deref()))
            .collect();
        let env = env_with(&changes);
        for &function in case.functions {
            checked += 1;
            let label = format!("{function:?} with {changes:?}");
            let message = match std::panic::catch_unwind(|| build(function, &env)) {
                Err(_) => {
                    failures.push(format!("{label}: panicked"));
                    continue;
                }
                Ok(Ok(())) => {
                    failures.push(format!("{label}: started"));
                    continue;
                }
                Ok(Err(err)) => err.to_string(),
            };
            if !message.starts_with(case.names) {
                failures.push(format!("{label}: {message:?} does not name {}", case.names));
            }
            if message.contains(['\n', '\r']) {
                failures.push(format!("{label}: {message:?} is not one line"));
            }
            for (_, value) in &changes {
                // The secret part of the value: not a bare prefix or scheme the message may name
                // as the expected format.
                let Some(value) = value
                    .map(|v| v.trim().trim_start_matches("whsec_"))
                    .filter(|v| v.len() >= 3 && *v != "https://")
                else {
                    continue;
                };
                if message.contains(value) {
                    failures.push(format!("{label}: {message:?} contains the value"));
                }
            }
            if message.contains("s3cr3t") || message.contains("secret-") {
                failures.push(format!("{label}: {message:?} contains a secret"));
            }
            println!("{function:?}: {message}");
        }
    }
    println!("{} cases, {checked} builds refused", cases.len());
    assert!(
        failures.is_empty(),
        "{} problem(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}
