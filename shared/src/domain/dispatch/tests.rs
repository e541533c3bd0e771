use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;

use super::*;
use crate::domain::call::{
    ActionRequest, Effect, action_dispatch_id, escalation_dispatch_id, update_dispatch_id,
};
use crate::domain::event::Outcome;
use crate::providers::Headers;
use crate::signing::standard_webhooks;
use crate::testing::dispatch::*;

// ---- messages ----

#[test]
fn messages_from_effects() {
    let m = finalize(Some(Outcome::Busy));
    assert_eq!(
        serde_json::to_value(&m).unwrap(),
        json!({"dispatch_id": "telnyx#call-1#completed", "type": "call.completed",
               "call_id": CALL, "event_id": "telnyx#e2", "outcome": "busy"})
    );
    assert_eq!(m.delay_secs(5, 0), 5);
    let enrich = DispatchMessage::from_effect(&Effect::Enrich {
        call_id: CALL.into(),
        event_id: "telnyx#e3".into(),
        dispatch_id: update_dispatch_id(CALL, "telnyx#e3"),
    })
    .unwrap();
    assert_eq!(enrich.message_type, MessageType::Updated);
    assert_eq!(enrich.outcome, None);
    assert_eq!(enrich.delay_secs(5, 0), 0);
    assert_eq!(
        enrich.delay_secs(5, 3),
        4,
        "after the completion still settling"
    );
    let escalate = DispatchMessage::from_effect(&Effect::Escalate {
        call_id: CALL.into(),
        event_id: "e".into(),
        dispatch_id: escalation_dispatch_id(CALL),
    })
    .unwrap();
    assert_eq!(escalate.message_type.as_str(), "call.escalated");
    assert_eq!(escalate.delay_secs(5, 3), 0);
    let action = DispatchMessage::from_effect(&Effect::Action {
        call_id: CALL.into(),
        event_id: "e".into(),
        dispatch_id: action_dispatch_id(CALL, "e"),
    })
    .unwrap();
    assert_eq!(action.message_type.as_str(), "call.action");
    assert_eq!(
        DispatchMessage::from_effect(&Effect::Review {
            event_id: "e".into(),
            reason: "unknown_type".into()
        }),
        None
    );
    // What the lifecycle writes reads back.
    let text = serde_json::to_string(&action).unwrap();
    assert_eq!(
        serde_json::from_str::<DispatchMessage>(&text).unwrap(),
        action
    );
}

// ---- retry classification ----

#[test]
fn classification_of_results() {
    let status = |status| HttpResult::Response {
        status,
        body: String::new(),
        retry_after_secs: None,
    };
    for s in [200, 201, 202, 204, 299] {
        assert_eq!(classify(&status(s)), Verdict::Sent, "{s}");
    }
    for s in [408, 429, 500, 502, 503, 504, 599] {
        assert_eq!(classify(&status(s)), Verdict::Retry, "{s}");
    }
    for s in [301, 302, 304, 400, 401, 403, 404, 409, 410, 413, 422] {
        assert_eq!(classify(&status(s)), Verdict::Reject, "{s}");
    }
    assert_eq!(classify(&HttpResult::Timeout), Verdict::Retry);
    assert_eq!(
        classify(&HttpResult::Connect("refused".into())),
        Verdict::Retry
    );
    assert_eq!(
        classify(&HttpResult::Transport("reset".into())),
        Verdict::Retry
    );
    assert_eq!(
        classify(&HttpResult::Invalid("bad url".into())),
        Verdict::Reject
    );
}

#[test]
fn backoff_doubles_up_to_the_cap() {
    let p = RetryPolicy::default();
    let waits: Vec<u32> = (1..=7).map(|n| p.backoff_secs(n)).collect();
    assert_eq!(waits, [30, 60, 120, 240, 480, 900, 900]);
    assert_eq!(p.backoff_secs(0), 30);
    assert_eq!(p.backoff_secs(u32::MAX), 900);
    assert_eq!(p.retry_after(1, Some(120)), 120);
    assert_eq!(p.retry_after(3, Some(5)), 120);
    assert_eq!(p.retry_after(1, Some(100_000)), 900);
    assert!(!p.exhausted(4) && p.exhausted(5) && p.exhausted(6));
}

// ---- signing ----

/// HMAC-SHA256 over `id.ts.body`, written here from the spec, not with the code under test.
fn independent_signature(secret: &str, id: &str, ts: &str, body: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let key = b64.decode(secret.strip_prefix("whsec_").unwrap()).unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{ts}.").as_bytes());
    mac.update(body);
    format!("v1,{}", b64.encode(mac.finalize().into_bytes()))
}

#[test]
fn signed_headers_match_the_spec_vectors() {
    for (secret, id, ts, body, expected) in [
        (
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            r#"{"test": 2432232314}"#,
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
        ),
        (
            "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
            "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
            1649367553,
            r#"{"email":"test@example.com","username":"test_user"}"#,
            "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=",
        ),
    ] {
        let key = standard_webhooks::decode_hmac_secret("S", secret).unwrap();
        let headers = signed_headers(&key, id, ts, body.as_bytes());
        let get = |name| headers.iter().find(|(k, _)| *k == name).unwrap().1.clone();
        assert_eq!(get("webhook-id"), id);
        assert_eq!(get("webhook-timestamp"), ts.to_string());
        assert_eq!(get("webhook-signature"), expected);
        assert_eq!(
            independent_signature(secret, id, &ts.to_string(), body.as_bytes()),
            expected
        );
    }
}

#[test]
fn a_dispatch_verifies_with_standard_webhooks_and_an_independent_hmac() {
    let key = standard_webhooks::decode_hmac_secret("S", SECRET).unwrap();
    let message = finalize(Some(Outcome::Completed));
    let body = http_body(
        &message,
        &message.dispatch_id,
        &record(Some(Outcome::Completed)),
    )
    .to_string();
    let headers = signed_headers(
        &key,
        &message.dispatch_id,
        now().timestamp(),
        body.as_bytes(),
    );
    let map: Headers = headers.iter().map(|(k, v)| (*k, v.clone())).collect();
    let keys = standard_webhooks::parse_keys("S", &[SECRET]).unwrap();
    assert_eq!(
        standard_webhooks::verify(&keys, &map, body.as_bytes(), now(), 300),
        Ok(())
    );
    let get = |name| headers.iter().find(|(k, _)| *k == name).unwrap().1.clone();
    assert_eq!(get("webhook-id"), "telnyx#call-1#completed");
    assert_eq!(
        get("webhook-signature"),
        independent_signature(
            SECRET,
            &get("webhook-id"),
            &get("webhook-timestamp"),
            body.as_bytes()
        )
    );
    // Tampering is caught.
    let tampered = body.replace("completed", "failed");
    assert!(standard_webhooks::verify(&keys, &map, tampered.as_bytes(), now(), 300).is_err());
}

#[test]
fn webhook_ids_are_valid_header_values_and_deterministic() {
    assert_eq!(
        webhook_id("telnyx#abc-1#completed"),
        "telnyx#abc-1#completed"
    );
    assert_eq!(webhook_id("a b%c\u{e9}\n"), "a%20b%25c%C3%A9%0A");
    for id in ["a b", "é", "x\r\ny", "%"] {
        let v = webhook_id(id);
        // RFC 9110 field-value: visible ASCII (no controls, no spaces at the ends).
        assert!(v.bytes().all(|b| (0x21..=0x7e).contains(&b)), "{v}");
        assert_eq!(v, webhook_id(id));
    }
}

// ---- bodies ----

#[test]
fn bodies_carry_the_record_view() {
    let mut r = record(Some(Outcome::Busy));
    r.sources.insert(
        "outcome".into(),
        crate::domain::call::Source {
            class: 1,
            at: now(),
            event_id: "telnyx#e2".into(),
        },
    );
    let view = call_view(&r);
    assert!(view.get("sources").is_none() && view.get("applied_event_ids").is_none());
    assert_eq!(view["call_id"], CALL);
    assert_eq!(view["outcome"], "busy");
    assert_eq!(view["event_count"], 2);

    let m = finalize(Some(Outcome::Busy));
    let body = http_body(&m, &m.dispatch_id, &r);
    assert_eq!(body["type"], "call.completed");
    assert_eq!(body["dispatch_id"], "telnyx#call-1#completed");
    assert_eq!(body["call"], view);
    assert!(body.get("action").is_none());

    let cb = queue_body(&m, &m.dispatch_id, &r, now());
    assert_eq!(
        cb,
        json!({"type": "callback.requested", "dispatch_id": "telnyx#call-1#completed",
               "call_id": CALL, "event_id": "telnyx#e2", "provider": "telnyx",
               "outcome": "busy", "direction": "inbound", "from": "+15550100",
               "to": "+15550199", "callback_number": "+15550100",
               "attempted_at": "2023-11-14T22:12:20Z", "ended_at": "2023-11-14T22:13:10Z",
               "hangup_cause": null, "requested_at": "2023-11-14T22:13:20Z"})
    );

    r.actions.push(ActionRequest {
        event_id: "stateset#a1".into(),
        event_type: "handoff".into(),
        occurred_at: now(),
        action: Some(json!({"queue": "billing"})),
    });
    let action = DispatchMessage::from_effect(&Effect::Action {
        call_id: CALL.into(),
        event_id: "stateset#a1".into(),
        dispatch_id: action_dispatch_id(CALL, "stateset#a1"),
    })
    .unwrap();
    let body = http_body(&action, &action.dispatch_id, &r);
    assert_eq!(body["action"]["action"]["queue"], "billing");
    // A non-finalization routed to a queue carries the HTTP body.
    assert_eq!(queue_body(&action, &action.dispatch_id, &r, now()), body);
}
