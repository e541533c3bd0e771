use super::*;
use crate::providers::{FIXTURE_SEED, Headers};
use chrono::{DateTime, TimeZone, Utc};
use serde_json::json;

/// The body the Vapi vectors share (842 bytes).
const V_BODY: &str = r#"{"message":{"timestamp":1714608492512,"type":"end-of-call-report","endedReason":"customer-ended-call","startedAt":"2024-05-02T00:07:55.945Z","endedAt":"2024-05-02T00:08:11.736Z","cost":0.0431,"call":{"id":"3f1a9c2e-7b4d-4e8a-9c1f-2d3e4f5a6b7c","orgId":"9b8a7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d","type":"outboundPhoneCall","status":"ended","phoneCallProvider":"twilio","phoneCallProviderId":"CA0123456789abcdef0123456789abcdef","customer":{"number":"+14155550123"},"phoneNumberId":"5c4b3a29-1807-4f6e-9d5c-4b3a29180706"},"phoneNumber":{"id":"5c4b3a29-1807-4f6e-9d5c-4b3a29180706","number":"+14155550199","provider":"twilio"},"customer":{"number":"+14155550123"},"artifact":{"transcript":"AI: Hi, this is Ava from Acme Dental. User: Not interested, thanks.","messages":[]},"analysis":{"summary":"The callee declined.","successEvaluation":"false"}}}"#;
const SECRET: &str = "vapi-hmac-secret-2f4e6a8c0b1d3f5e7a9c";
const TS: &str = "1714608492512";
const TS_MS: i64 = 1_714_608_492_512;
const V2_SIG: &str = "441516b435407ba1f59fd48547b00ebb501337ff1a0a9ac55972ff9f023a3723";
const V3_SIG: &str = "cd3594b2dcf51c018a619e5542d131960f23baba28e280d2aa5b27e848f1471f";
const V4_SIG: &str = "sha256=RBUWtDVAe6H1n9SFR7AOu1ATN/8aCprFWXL/nwI6NyM=";
const V5_SECRET: &str = "c2VjcmV0LWJ5dGVzLWZvci12YXBp";
const V5_SIG: &str = "1c145f81970173e999a626f272e1d8e087cc77f0eff087f9c7e9543b74de93e4";
/// V1: the legacy `x-vapi-secret` Bearer credential (nothing to compute).
const TOKEN: &str = "vapi-server-url-secret-7d1e";

fn provider(pairs: &[(&str, &str)]) -> Box<dyn Provider> {
    Vapi::from_env(&Env::from_pairs(pairs.iter().copied()))
        .unwrap()
        .unwrap()
}

fn hmac() -> Box<dyn Provider> {
    provider(&[(AUTH_VAR, "hmac"), (SECRETS_VAR, SECRET)])
}

fn at_ms(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).unwrap()
}

fn check(
    p: &dyn Provider,
    headers: &[(&str, &str)],
    body: &str,
    now_ms: i64,
) -> Result<(), AuthError> {
    let h: Headers = headers.iter().copied().collect();
    p.verify(&Delivery {
        headers: &h,
        body: body.as_bytes(),
        path_token: None,
        request_url: None,
        received_at: at_ms(now_ms),
    })
}

fn signed(sig: &str) -> [(&str, &str); 2] {
    [("x-signature", sig), ("x-timestamp", TS)]
}

#[test]
fn v2_default_hmac_verifies_in_a_two_sided_window() {
    let p = hmac();
    for now in [TS_MS, TS_MS + 300_000, TS_MS - 300_000] {
        assert_eq!(check(&*p, &signed(V2_SIG), V_BODY, now), Ok(()), "{now}");
    }
    for now in [TS_MS + 300_001, TS_MS - 300_001] {
        assert_eq!(
            check(&*p, &signed(V2_SIG), V_BODY, now),
            Err(AuthError::Stale(300))
        );
    }
    let upper = V2_SIG.to_ascii_uppercase();
    assert_eq!(check(&*p, &signed(&upper), V_BODY, TS_MS), Ok(()));
    assert_eq!(p.signed_headers(), &["x-signature", "x-timestamp"]);
    let signer = HmacSigner(SECRET.into());
    assert_eq!(
        signer.sign(V_BODY.as_bytes(), 1_714_608_492, "").headers[1],
        ("x-timestamp".to_owned(), "1714608492000".to_owned())
    );
}

#[test]
fn v2_rejects_changes_wrong_secrets_and_bad_headers() {
    let p = hmac();
    let tampered = V_BODY.replace("0.0431", "0.0432");
    assert_eq!(
        check(&*p, &signed(V2_SIG), &tampered, TS_MS),
        Err(AuthError::BadSignature)
    );
    let other_ts = [("x-signature", V2_SIG), ("x-timestamp", "1714608492513")];
    assert_eq!(
        check(&*p, &other_ts, V_BODY, TS_MS),
        Err(AuthError::BadSignature)
    );
    let wrong = provider(&[(AUTH_VAR, "hmac"), (SECRETS_VAR, "another-secret-entirely")]);
    assert_eq!(
        check(&*wrong, &signed(V2_SIG), V_BODY, TS_MS),
        Err(AuthError::BadSignature)
    );
    assert_eq!(
        check(&*p, &[("x-timestamp", TS)], V_BODY, TS_MS),
        Err(AuthError::MissingHeader("x-signature"))
    );
    assert_eq!(
        check(&*p, &[("x-signature", V2_SIG)], V_BODY, TS_MS),
        Err(AuthError::MissingHeader("x-timestamp"))
    );
    for ts in [
        "",
        "-1714608492512",
        "1714608492512.0",
        " 1714608492512",
        "99999999999999999999",
    ] {
        assert_eq!(
            check(
                &*p,
                &[("x-signature", V2_SIG), ("x-timestamp", ts)],
                V_BODY,
                TS_MS
            ),
            Err(AuthError::Malformed("x-timestamp")),
            "{ts:?}"
        );
    }
    for sig in [
        "",
        "abc",
        &V2_SIG[2..],
        "sha256=",
        "sha1=RBUWtDVAe6H1n9SFR7AOu1ATN/8aCprFWXL/nwI6NyM=",
    ] {
        assert_eq!(
            check(&*p, &signed(sig), V_BODY, TS_MS),
            Err(AuthError::Malformed("x-signature")),
            "{sig:?}"
        );
    }
}

#[test]
fn rotation_and_seconds_timestamps() {
    let p = provider(&[
        (AUTH_VAR, "HMAC"),
        (SECRETS_VAR, &format!("old-secret-000000,{SECRET}")),
    ]);
    assert_eq!(check(&*p, &signed(V2_SIG), V_BODY, TS_MS), Ok(()));
    let signature = verify::to_hex(&mac(SECRET.as_bytes(), "1714608492", V_BODY.as_bytes()));
    let seconds = [
        ("x-signature", signature.as_str()),
        ("x-timestamp", "1714608492"),
    ];
    assert_eq!(check(&*p, &seconds, V_BODY, TS_MS), Ok(()));
    assert_eq!(
        check(&*p, &seconds, V_BODY, TS_MS + 301_000),
        Err(AuthError::Stale(300))
    );
}

/// V3 signs the body alone (no timestamp): refused by design, whatever the header names.
#[test]
fn v3_body_only_signatures_are_refused() {
    let p = provider(&[
        (AUTH_VAR, "hmac"),
        (SECRETS_VAR, SECRET),
        (SIGNATURE_HEADER_VAR, "X-Vapi-Signature"),
    ]);
    assert_eq!(p.signed_headers(), &["x-vapi-signature", "x-timestamp"]);
    assert_eq!(
        check(&*p, &[("x-vapi-signature", V3_SIG)], V_BODY, TS_MS),
        Err(AuthError::MissingHeader("x-timestamp"))
    );
    let with_ts = [("x-vapi-signature", V3_SIG), ("x-timestamp", TS)];
    assert_eq!(
        check(&*p, &with_ts, V_BODY, TS_MS),
        Err(AuthError::BadSignature)
    );
    // The same credential with the default payload format verifies on the custom header.
    let default_format = [("x-vapi-signature", V2_SIG), ("x-timestamp", TS)];
    assert_eq!(check(&*p, &default_format, V_BODY, TS_MS), Ok(()));
}

#[test]
fn v4_base64_with_a_prefix_verifies() {
    let p = hmac();
    assert_eq!(check(&*p, &signed(V4_SIG), V_BODY, TS_MS), Ok(()));
    let bare = V4_SIG.trim_start_matches("sha256=");
    assert_eq!(check(&*p, &signed(bare), V_BODY, TS_MS), Ok(()));
    let tampered = V_BODY.replace("declined", "accepted");
    assert_eq!(
        check(&*p, &signed(V4_SIG), &tampered, TS_MS),
        Err(AuthError::BadSignature)
    );
}

#[test]
fn v5_base64_secret_verifies_only_when_declared() {
    let declared = provider(&[
        (AUTH_VAR, "hmac"),
        (SECRETS_VAR, &format!("base64:{V5_SECRET}")),
    ]);
    assert_eq!(check(&*declared, &signed(V5_SIG), V_BODY, TS_MS), Ok(()));
    let literal = provider(&[(AUTH_VAR, "hmac"), (SECRETS_VAR, V5_SECRET)]);
    assert_eq!(
        check(&*literal, &signed(V5_SIG), V_BODY, TS_MS),
        Err(AuthError::BadSignature)
    );
    let decoded = provider(&[(AUTH_VAR, "hmac"), (SECRETS_VAR, "secret-bytes-for-vapi")]);
    assert_eq!(check(&*decoded, &signed(V5_SIG), V_BODY, TS_MS), Ok(()));
}

#[test]
fn v1_token_mode_compares_the_header() {
    let p = provider(&[
        (AUTH_VAR, "token"),
        (TOKENS_VAR, &format!("old-token-0123456789,{TOKEN}")),
    ]);
    assert!(p.signed_headers().is_empty(), "a token is never stored");
    assert_eq!(check(&*p, &[("x-vapi-secret", TOKEN)], V_BODY, 0), Ok(()));
    let bearer = format!("Bearer {TOKEN}");
    assert_eq!(check(&*p, &[("x-vapi-secret", &bearer)], V_BODY, 0), Ok(()));
    // The scheme in any case, as every other Bearer check reads it (RFC 6750).
    let lower = format!("bearer {TOKEN}");
    assert_eq!(check(&*p, &[("x-vapi-secret", &lower)], V_BODY, 0), Ok(()));
    assert_eq!(
        check(&*p, &[("x-vapi-secret", "old-token-0123456789")], "{}", 0),
        Ok(())
    );
    for wrong in [
        &TOKEN[1..],
        "",
        "VAPI-server-url-secret-7d1e",
        "Bearer ",
        &format!("{TOKEN} "),
    ] {
        assert_eq!(
            check(&*p, &[("x-vapi-secret", wrong)], V_BODY, 0),
            Err(AuthError::BadHeaderToken("x-vapi-secret")),
            "{wrong:?}"
        );
    }
    assert_eq!(
        check(&*p, &[("authorization", &bearer)], V_BODY, 0),
        Err(AuthError::MissingHeader("x-vapi-secret"))
    );
    let custom = provider(&[
        (AUTH_VAR, "token"),
        (TOKENS_VAR, TOKEN),
        (TOKEN_HEADER_VAR, "Authorization"),
    ]);
    assert_eq!(
        check(&*custom, &[("authorization", &bearer)], V_BODY, 0),
        Ok(())
    );
}

#[test]
fn dev_signers_round_trip_in_both_modes() {
    for signer in [
        (ENTRY.dev_signer)(&FIXTURE_SEED),
        token_signer(&FIXTURE_SEED),
    ] {
        let p = Vapi::from_env(&Env::from_pairs(signer.verifier_env()))
            .unwrap()
            .unwrap();
        let headers = signer.sign(b"{}", 1_750_000_000, "").headers;
        let pairs: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(check(&*p, &pairs, "{}", 1_750_000_000_000), Ok(()));
        let other = token_signer(&[1; 32]).sign(b"{}", 0, "").headers;
        let forged = [(other[0].0.as_str(), other[0].1.as_str())];
        assert!(check(&*p, &forged, "{}", 1_750_000_000_000).is_err());
    }
}

#[test]
fn configuration_errors_name_the_variable_never_the_value() {
    let err = |pairs: &[(&str, &str)]| {
        Vapi::from_env(&Env::from_pairs(pairs.iter().copied()))
            .err()
            .unwrap()
            .to_string()
    };
    assert!(Vapi::from_env(&Env::default()).unwrap().is_none());
    assert!(
        Vapi::from_env(&Env::from_pairs([(TOKEN_HEADER_VAR, "x")]))
            .unwrap()
            .is_none()
    );
    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[(SECRETS_VAR, SECRET)], AUTH_VAR),
        (&[(TOKENS_VAR, TOKEN)], AUTH_VAR),
        (&[(AUTH_VAR, "bearer"), (TOKENS_VAR, TOKEN)], AUTH_VAR),
        (&[(AUTH_VAR, "hmac")], SECRETS_VAR),
        (&[(AUTH_VAR, "token")], TOKENS_VAR),
        (
            &[
                (AUTH_VAR, "hmac"),
                (SECRETS_VAR, SECRET),
                (TOKENS_VAR, TOKEN),
            ],
            TOKENS_VAR,
        ),
        (
            &[
                (AUTH_VAR, "token"),
                (TOKENS_VAR, TOKEN),
                (SECRETS_VAR, SECRET),
            ],
            SECRETS_VAR,
        ),
        (
            &[(AUTH_VAR, "token"), (TOKENS_VAR, "short-token")],
            TOKENS_VAR,
        ),
        (
            &[(AUTH_VAR, "hmac"), (SECRETS_VAR, "base64:%%not-base64%%")],
            SECRETS_VAR,
        ),
        (&[(AUTH_VAR, "hmac"), (SECRETS_VAR, "base64:")], SECRETS_VAR),
        (
            &[
                (AUTH_VAR, "hmac"),
                (SECRETS_VAR, SECRET),
                (SIGNATURE_HEADER_VAR, "x sig"),
            ],
            SIGNATURE_HEADER_VAR,
        ),
        (
            &[
                (AUTH_VAR, "hmac"),
                (SECRETS_VAR, SECRET),
                (TIMESTAMP_HEADER_VAR, "X-Signature"),
            ],
            TIMESTAMP_HEADER_VAR,
        ),
        (
            &[
                (AUTH_VAR, "token"),
                (TOKENS_VAR, TOKEN),
                (TOKEN_HEADER_VAR, "x:token"),
            ],
            TOKEN_HEADER_VAR,
        ),
        (
            &[
                (AUTH_VAR, "hmac"),
                (SECRETS_VAR, SECRET),
                ("VAPI_TOLERANCE_SECS", "-1"),
            ],
            "VAPI_TOLERANCE_SECS",
        ),
    ];
    for (pairs, var) in cases {
        let text = err(pairs);
        assert!(text.starts_with(var), "{pairs:?}: {text}");
        for (_, value) in *pairs {
            if value.len() > 8 {
                assert!(!text.contains(value), "{text} shows {value}");
            }
        }
    }
}

fn normalize(body: &str) -> CanonicalEvent {
    let h = Headers::new();
    hmac().normalize(&Delivery {
        headers: &h,
        body: body.as_bytes(),
        path_token: None,
        request_url: None,
        received_at: at_ms(1_714_609_000_000),
    })
}

#[test]
fn the_report_normalizes_to_a_completed_final_fact() {
    let e = normalize(V_BODY);
    assert_eq!(
        e.event_id,
        format!(
            "vapi#{}",
            derived_key(&["3f1a9c2e-7b4d-4e8a-9c1f-2d3e4f5a6b7c", "end-of-call-report"])
        )
    );
    assert_eq!(
        e.call_id.as_deref(),
        Some("vapi#3f1a9c2e-7b4d-4e8a-9c1f-2d3e4f5a6b7c")
    );
    assert_eq!((e.kind, e.is_final), (Kind::Ended, true));
    assert_eq!(e.outcome, Some(Outcome::Completed));
    assert_eq!(e.direction, Some(Direction::Outbound));
    assert_eq!(e.from.as_deref(), Some("+14155550199"));
    assert_eq!(e.to.as_deref(), Some("+14155550123"));
    assert_eq!(e.occurred_at, at_ms(TS_MS));
    assert_eq!(e.facts.started_at, Some(at_ms(1_714_608_475_945)));
    assert_eq!(e.facts.ended_at, Some(at_ms(1_714_608_491_736)));
    assert_eq!(e.facts.duration_secs, Some(16));
    assert_eq!(e.facts.hangup_cause.as_deref(), Some("customer-ended-call"));
    assert_eq!(e.facts.cost, Some(json!(0.0431)));
    assert_eq!(
        e.facts.transcript,
        Some(json!(
            "AI: Hi, this is Ava from Acme Dental. User: Not interested, thanks."
        ))
    );
    assert_eq!(
        e.facts.analysis.as_ref().unwrap()["summary"],
        "The callee declined."
    );
    assert_eq!(
        e.data["call"]["phoneCallProviderId"],
        "CA0123456789abcdef0123456789abcdef"
    );
    assert!(e.review.is_none());
}

fn status(status: &str, extra: &str) -> String {
    format!(
        r#"{{"message":{{"type":"status-update","timestamp":1714608475000,"status":"{status}",{extra}"call":{{"id":"c1","type":"inboundPhoneCall","customer":{{"number":"+1"}},"phoneNumber":{{"number":"+2"}}}}}}}}"#
    )
}

#[test]
fn every_status_maps_and_keys_by_status() {
    let mut ids = std::collections::BTreeSet::new();
    for (name, kind) in STATUSES {
        let e = normalize(&status(name, r#""endedReason":"customer-busy","#));
        assert_eq!(e.kind, *kind, "{name}");
        assert!(!e.is_final, "{name}: the report is the terminal fact");
        assert_eq!(e.direction, Some(Direction::Inbound));
        assert_eq!(
            (e.from.as_deref(), e.to.as_deref()),
            (Some("+1"), Some("+2"))
        );
        assert_eq!(e.occurred_at, at_ms(1_714_608_475_000));
        assert_eq!(
            e.outcome,
            (*kind == Kind::Ended).then_some(Outcome::Busy),
            "{name}"
        );
        assert!(e.review.is_none());
        assert!(ids.insert(e.event_id.clone()));
        let again = normalize(&status(name, r#""messages":[],"#));
        assert_eq!(e.event_id, again.event_id, "{name}: one fact per status");
    }
    for odd in ["not-found", "deletion-failed", "teleported"] {
        let e = normalize(&status(odd, ""));
        assert_eq!(e.review.as_ref().unwrap().reason, "unknown_type", "{odd}");
        assert_eq!(e.kind, Kind::Unknown);
    }
    let e = normalize(r#"{"message":{"type":"status-update","call":{"id":"c1"}}}"#);
    assert_eq!(e.review.unwrap().reason, "malformed");
}

#[test]
fn every_message_type_maps() {
    for (event_type, kind, is_final, repeats) in
        MAPPING.iter().filter(|(t, ..)| *t != "status-update")
    {
        let body = |n: u8| {
            format!(
                r#"{{"message":{{"type":"{}","timestamp":1714608480100,"n":{n},"call":{{"id":"c1","type":"webCall"}}}}}}"#,
                event_type.replace('"', "\\\"")
            )
        };
        let e = normalize(&body(1));
        assert_eq!((e.kind, e.is_final), (*kind, *is_final), "{event_type}");
        assert!(e.review.is_none(), "{event_type}");
        assert_eq!(e.direction, None);
        assert_eq!(e.event_type, *event_type);
        assert_eq!(
            normalize(&body(2)).event_id != e.event_id,
            *repeats,
            "{event_type}"
        );
    }
    assert_eq!(MAPPING.iter().filter(|(_, _, f, _)| *f).count(), 1);
}

#[test]
fn request_messages_are_kept_for_review_not_answered() {
    for event_type in RESPONSE_REQUIRED {
        let e = normalize(&format!(
            r#"{{"message":{{"type":"{event_type}","timestamp":1678901234567,"call":{{"id":"c1"}}}}}}"#
        ));
        let note = e.review.expect(event_type);
        assert_eq!(note.reason, "response_required");
        assert!(note.detail.contains("serverMessages"));
        assert_eq!(e.kind, Kind::Unknown);
    }
    let e = normalize(r#"{"message":{"type":"chat.created","chat":{"id":"ch1"}}}"#);
    assert_eq!(e.review.unwrap().reason, "unknown_type");
}

#[test]
fn ended_times_fall_back_to_the_call() {
    let e = normalize(
        r#"{"message":{"type":"end-of-call-report","endedReason":"voicemail","call":{"id":"c1","startedAt":"2024-05-02T00:07:55Z","endedAt":"2024-05-02T00:08:25Z","cost":0.01},"artifact":{"recording":{"mono":{"combinedUrl":"https://storage.vapi.ai/c1-mono.wav"}},"recordingUrl":"https://old"}}}"#,
    );
    let ended: DateTime<Utc> = "2024-05-02T00:08:25Z".parse().unwrap();
    assert_eq!(e.occurred_at, ended);
    assert_eq!(e.facts.duration_secs, Some(30));
    assert_eq!(e.outcome, Some(Outcome::Voicemail));
    assert_eq!(e.facts.cost, Some(json!(0.01)));
    assert_eq!(
        e.facts.recording_url.as_deref(),
        Some("https://storage.vapi.ai/c1-mono.wav")
    );
    let e = normalize(
        r#"{"message":{"type":"end-of-call-report","durationSeconds":12,"endedReason":"x","call":{"id":"c1"}}}"#,
    );
    assert_eq!(
        e.occurred_at,
        at_ms(1_714_609_000_000),
        "no time at all: receipt"
    );
    assert_eq!(e.facts.duration_secs, Some(12));
}

/// Every `endedReason` Vapi's OpenAPI lists maps to an outcome, except these, which are
/// not guessed (no outcome; the reason stays in `hangup_cause`).
const UNMAPPED: &[&str] = &[
    "assistant-not-valid",
    "vonage-disconnected",
    "phone-call-provider-bypass-enabled-but-no-call-received",
    "assistant-join-timed-out",
    "customer-did-not-give-microphone-permission",
    "call.ringing.hook-executed-say",
    "call.ending.hook-executed-say",
    "call.ringing.sip-inbound-caller-hungup-before-call-connect",
];

#[test]
fn every_documented_ended_reason_maps_but_the_unmapped_few() {
    let reasons: Vec<&str> = include_str!("../../../testdata/vapi-ended-reasons.txt")
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    assert_eq!(reasons.len(), 627);
    let unmapped: Vec<&str> = reasons
        .iter()
        .copied()
        .filter(|r| ended_reason_outcome(r).is_none())
        .collect();
    let mut expected = UNMAPPED.to_vec();
    expected.sort_unstable();
    let mut found = unmapped.clone();
    found.sort_unstable();
    assert_eq!(found, expected);
    for (reason, _) in ENDED_REASONS {
        assert!(
            reasons.contains(reason),
            "{reason} is not a documented value"
        );
    }
    let count = |outcome| {
        reasons
            .iter()
            .filter(|r| ended_reason_outcome(r) == Some(outcome))
            .count()
    };
    assert_eq!(count(Outcome::Completed), 10);
    assert_eq!(count(Outcome::Busy), 1);
    assert_eq!(count(Outcome::NoAnswer), 3);
    assert_eq!(count(Outcome::Voicemail), 1);
    assert_eq!(count(Outcome::Canceled), 3);
    assert_eq!(count(Outcome::Escalated), 14);
    assert_eq!(
        count(Outcome::Failed),
        627 - 10 - 1 - 3 - 1 - 3 - 14 - UNMAPPED.len()
    );
}

#[test]
fn ended_reason_examples() {
    let cases = [
        (
            "call.in-progress.error-warm-transfer-max-duration",
            Some(Outcome::Escalated),
        ),
        (
            "call.in-progress.error-transfer-failed",
            Some(Outcome::Escalated),
        ),
        (
            "call.in-progress.error-providerfault-outbound-sip-408-request-timeout",
            Some(Outcome::NoAnswer),
        ),
        (
            "call.in-progress.error-providerfault-outbound-sip-503-service-unavailable",
            Some(Outcome::Failed),
        ),
        ("pipeline-error-openai-llm-failed", Some(Outcome::Failed)),
        (
            "assistant-request-returned-forwarding-phone-number",
            Some(Outcome::Escalated),
        ),
        ("assistant-request-returned-error", Some(Outcome::Failed)),
        ("twilio-failed-to-connect-call", Some(Outcome::Failed)),
        ("vonage-disconnected", None),
        ("something-new", None),
    ];
    for (reason, outcome) in cases {
        assert_eq!(ended_reason_outcome(reason), outcome, "{reason}");
        let e = normalize(&status("ended", &format!(r#""endedReason":"{reason}","#)));
        assert_eq!(e.outcome, outcome, "{reason}");
        assert_eq!(e.facts.hangup_cause.as_deref(), Some(reason));
    }
}

#[test]
fn malformed_bodies_go_to_review() {
    for body in [
        "",
        "[]",
        r#"{"type":"status-update"}"#,
        r#"{"message":"x"}"#,
        r#"{"message":{"call":{"id":"c1"}}}"#,
        r#"{"message":{"type":"end-of-call-report","endedReason":"voicemail"}}"#,
        r#"{"message":{"type":"transcript","call":{"id":""}}}"#,
    ] {
        let e = normalize(body);
        assert_eq!(e.review.as_ref().unwrap().reason, "malformed", "{body}");
        assert!(e.event_id.starts_with("vapi#"));
    }
}
