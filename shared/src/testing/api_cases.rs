//! Every provider's fetch-one-call API as the tests fake it: its variables, a call key, the
//! fake API's answers (ended, alive), what a lookup must make of the ended call, and how the
//! request must carry the credentials. The lookups' unit tests and the stale pass's integration
//! test on moto share it.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD as B64, URL_SAFE_NO_PAD as B64URL};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::adapters::provider_api::{Lookups, RetryPolicy};
use crate::config::{Env, ProviderApiConfig, vars};
use crate::domain::event::Outcome;
use crate::ports::{FinalState, Lookup, LookupError};
use crate::testing::fake_api::{FakeApi, Received, Reply, rsa_private_key_pem};

/// Quick retries; a timeout long enough that a busy machine does not trip it.
pub fn policy() -> RetryPolicy {
    RetryPolicy {
        attempts: 3,
        timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(5),
        base_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(5),
        max_retry_after: Duration::from_secs(1),
        body_limit: 64 * 1024,
    }
}

pub const START: &str = "2024-05-01T10:00:00Z";
pub const ANSWERED: &str = "2024-05-01T10:00:05Z";
pub const END: &str = "2024-05-01T10:02:00Z";

pub fn at(s: &str) -> Option<DateTime<Utc>> {
    Some(s.parse().unwrap())
}

pub fn secs(s: &str) -> i64 {
    s.parse::<DateTime<Utc>>().unwrap().timestamp()
}

pub fn vonage_pem() -> &'static str {
    static PEM: OnceLock<String> = OnceLock::new();
    PEM.get_or_init(rsa_private_key_pem)
}

/// One provider: its variables, a call key, the fake API's answers, what the lookup must make
/// of the ended call, and how the request must carry the credentials.
pub struct Case {
    pub provider: &'static str,
    pub key: &'static str,
    /// Variables besides `{PROVIDER}_API_URL`.
    pub vars: fn() -> Vec<(&'static str, String)>,
    pub url_var: &'static str,
    /// Credentials that must never show in an error text.
    pub secrets: &'static [&'static str],
    pub ended: fn(&Received) -> Reply,
    pub alive: fn(&Received) -> Reply,
    pub expected: fn() -> FinalState,
    /// Checks one request: path, query, credentials.
    pub check: fn(&Received),
}

impl Case {
    pub fn env(&self, base: &str) -> Env {
        let mut env = Env::from_pairs((self.vars)());
        env.set(self.url_var, base);
        env
    }

    pub async fn lookups(&self, api: &FakeApi) -> Lookups {
        self.lookups_with(api, policy())
    }

    pub fn lookups_with(&self, api: &FakeApi, policy: RetryPolicy) -> Lookups {
        let config = ProviderApiConfig::from_env(&self.env(&api.url())).unwrap();
        Lookups::from_config(&config, policy).unwrap()
    }

    /// Serves `handler`, asks once, and gives back the answer and what the server received.
    pub async fn ask(
        &self,
        handler: impl Fn(&Received) -> Reply + Send + Sync + 'static,
    ) -> (Result<Lookup, LookupError>, Vec<Received>, Duration) {
        self.ask_with(policy(), handler).await
    }

    pub async fn ask_with(
        &self,
        policy: RetryPolicy,
        handler: impl Fn(&Received) -> Reply + Send + Sync + 'static,
    ) -> (Result<Lookup, LookupError>, Vec<Received>, Duration) {
        let api = FakeApi::start(handler).await.unwrap();
        let lookups = self.lookups_with(&api, policy);
        let lookup = lookups.get(self.provider).expect(self.provider);
        assert_eq!(lookup.provider(), self.provider);
        let started = Instant::now();
        let answer = lookup.lookup(self.key).await;
        (answer, api.received(), started.elapsed())
    }

    /// `result` is an error whose text holds no credential.
    pub fn clean_error(&self, result: &Result<Lookup, LookupError>) -> String {
        let text = result.as_ref().expect_err(self.provider).to_string();
        for secret in self.secrets {
            assert!(!text.contains(secret), "{}: {text}", self.provider);
        }
        // Nor a JWT (Vonage), nor Basic credentials, nor a query string.
        assert!(!text.contains("eyJ"), "{}: {text}", self.provider);
        assert!(!text.contains('?'), "{}: {text}", self.provider);
        text
    }
}

pub fn json_reply(body: Value) -> Reply {
    Reply::json(200, &body)
}

pub fn bearer(request: &Received, token: &str) {
    assert_eq!(
        request.header("authorization"),
        Some(format!("Bearer {token}").as_str())
    );
}

pub fn basic(request: &Received, user: &str, password: &str) {
    let expected = format!("Basic {}", B64.encode(format!("{user}:{password}")));
    assert_eq!(request.header("authorization"), Some(expected.as_str()));
}

pub const TELNYX_KEY: &str = "KEYtelnyx_s3cret_0123";
pub const TWILIO_SID: &str = "AC00000000000000000000000000000001";
pub const TWILIO_TOKEN: &str = "twilio_s3cret_auth_token";
pub const VONAGE_APP: &str = "aaaaaaaa-bbbb-cccc-dddd-0123456789ab";
pub const PLIVO_ID: &str = "MAXXXXXXXXXXXXXXXXXX";
pub const PLIVO_TOKEN: &str = "plivo_s3cret_token";
pub const RETELL_KEY: &str = "key_retell_s3cret";
pub const ELEVENLABS_KEY: &str = "sk_elevenlabs_s3cret";
pub const VAPI_KEY: &str = "vapi_private_s3cret";
pub const BIRD_KEY: &str = "bird_access_s3cret";

pub fn telnyx_events(events: Value) -> Reply {
    json_reply(json!({"data": events,
        "meta": {"page_number": 1, "page_size": 250, "total_pages": 1, "total_results": 3}}))
}

pub fn telnyx_event(name: &str, at: &str, metadata: Value) -> Value {
    json!({"call_leg_id": "leg-a", "call_session_id": "428c31b6-abf3-3bc1-b7f4-5013ef9657c1",
           "name": name, "type": "webhook", "event_timestamp": at, "metadata": metadata,
           "record_type": "call_event"})
}

pub fn cases() -> Vec<Case> {
    vec![
        Case {
            provider: "telnyx",
            key: "428c31b6-abf3-3bc1-b7f4-5013ef9657c1",
            vars: || vec![(vars::TELNYX_API_KEY, TELNYX_KEY.into())],
            url_var: vars::TELNYX_API_URL,
            secrets: &[TELNYX_KEY],
            ended: |_| {
                telnyx_events(json!([
                    telnyx_event(
                        "call.hangup",
                        END,
                        json!({"payload": {
                        "hangup_cause": "normal_clearing", "hangup_source": "caller",
                        "start_time": START, "end_time": END}})
                    ),
                    telnyx_event("call.answered", ANSWERED, json!({})),
                    telnyx_event("call.initiated", START, json!({})),
                ]))
            },
            alive: |_| {
                telnyx_events(json!([
                    telnyx_event("call.answered", ANSWERED, json!({})),
                    telnyx_event("call.initiated", START, json!({})),
                ]))
            },
            expected: || FinalState {
                status: "hangup".into(),
                outcome: Some(Outcome::Completed),
                started_at: at(START),
                answered_at: at(ANSWERED),
                ended_at: at(END),
                duration_secs: Some(120),
                hangup_cause: Some("normal_clearing".into()),
            },
            check: |r| {
                assert_eq!(r.path, "/v2/call_events");
                assert_eq!(
                    r.param("filter[application_session_id]").as_deref(),
                    Some("428c31b6-abf3-3bc1-b7f4-5013ef9657c1")
                );
                assert_eq!(r.param("page[number]").as_deref(), Some("1"));
                bearer(r, TELNYX_KEY);
            },
        },
        Case {
            provider: "twilio",
            key: "CA00000000000000000000000000000002",
            vars: || {
                vec![
                    (vars::TWILIO_ACCOUNT_SID, TWILIO_SID.into()),
                    (vars::TWILIO_API_KEY, TWILIO_TOKEN.into()),
                ]
            },
            url_var: vars::TWILIO_API_URL,
            secrets: &[TWILIO_TOKEN],
            ended: |_| {
                json_reply(json!({"sid": "CA00000000000000000000000000000002",
                    "status": "completed", "start_time": "Wed, 01 May 2024 10:00:00 +0000",
                    "end_time": "Wed, 01 May 2024 10:02:00 +0000", "duration": "120",
                    "answered_by": null, "direction": "inbound"}))
            },
            alive: |_| json_reply(json!({"status": "in-progress", "end_time": null})),
            expected: || FinalState {
                status: "completed".into(),
                outcome: Some(Outcome::Completed),
                started_at: at(START),
                answered_at: None,
                ended_at: at(END),
                duration_secs: Some(120),
                hangup_cause: None,
            },
            check: |r| {
                assert_eq!(
                    r.path,
                    format!(
                        "/2010-04-01/Accounts/{TWILIO_SID}/Calls/CA00000000000000000000000000000002.json"
                    )
                );
                basic(r, TWILIO_SID, TWILIO_TOKEN);
            },
        },
        Case {
            provider: "vonage",
            key: "CON-f972836a-550f-45fa-956c-12a2ab5b7d22",
            vars: || {
                vec![
                    (vars::VONAGE_APPLICATION_ID, VONAGE_APP.into()),
                    (vars::VONAGE_PRIVATE_KEY, vonage_pem().replace('\n', "\\n")),
                ]
            },
            url_var: vars::VONAGE_API_URL,
            secrets: &[],
            ended: |_| {
                json_reply(json!({"count": 1, "page_size": 10, "record_index": 0,
                    "_embedded": {"calls": [{"uuid": "63f61863-4a51-4f6b-86e1-46edebcf9356",
                        "conversation_uuid": "CON-f972836a-550f-45fa-956c-12a2ab5b7d22",
                        "status": "completed", "direction": "outbound", "duration": "120",
                        "start_time": "2024-05-01T10:00:00.000Z",
                        "end_time": "2024-05-01T10:02:00.000Z", "rate": "0.01"}]}}))
            },
            alive: |_| {
                json_reply(json!({"count": 1, "_embedded": {"calls": [
                    {"status": "answered", "start_time": "2024-05-01T10:00:00.000Z"}]}}))
            },
            expected: || FinalState {
                status: "completed".into(),
                outcome: Some(Outcome::Completed),
                started_at: at(START),
                answered_at: None,
                ended_at: at(END),
                duration_secs: Some(120),
                hangup_cause: None,
            },
            check: |r| {
                assert_eq!(r.path, "/v1/calls");
                assert_eq!(
                    r.param("conversation_uuid").as_deref(),
                    Some("CON-f972836a-550f-45fa-956c-12a2ab5b7d22")
                );
                check_vonage_jwt(r);
            },
        },
        Case {
            provider: "plivo",
            key: "3e82ae9d-2c78-4d85-b1a4-6eae7dbafb36",
            vars: || {
                vec![
                    (vars::PLIVO_AUTH_ID, PLIVO_ID.into()),
                    (vars::PLIVO_API_TOKEN, PLIVO_TOKEN.into()),
                ]
            },
            url_var: vars::PLIVO_API_URL,
            secrets: &[PLIVO_TOKEN],
            ended: |r| match r.param("status").as_deref() {
                Some("live") => Reply::json(404, &json!({"error": "call not found"})),
                _ => json_reply(json!({"call_uuid": "3e82ae9d-2c78-4d85-b1a4-6eae7dbafb36",
                    "initiation_time": "2024-05-01 10:00:00+00:00",
                    "answer_time": "2024-05-01 10:00:05+00:00",
                    "end_time": "2024-05-01 10:02:00+00:00", "call_duration": 120,
                    "bill_duration": 120, "hangup_cause_code": 4000,
                    "hangup_cause_name": "Normal Hangup", "hangup_source": "Caller"})),
            },
            alive: |r| match r.param("status").as_deref() {
                Some("live") => json_reply(json!({"call_status": "in-progress",
                    "call_uuid": "3e82ae9d-2c78-4d85-b1a4-6eae7dbafb36"})),
                _ => Reply::status(500),
            },
            expected: || FinalState {
                status: "hangup".into(),
                outcome: Some(Outcome::Completed),
                started_at: at(START),
                answered_at: at(ANSWERED),
                ended_at: at(END),
                duration_secs: Some(120),
                hangup_cause: Some("Normal Hangup (4000)".into()),
            },
            check: |r| {
                assert_eq!(
                    r.path,
                    format!("/v1/Account/{PLIVO_ID}/Call/3e82ae9d-2c78-4d85-b1a4-6eae7dbafb36/")
                );
                basic(r, PLIVO_ID, PLIVO_TOKEN);
            },
        },
        Case {
            provider: "retell",
            key: "Jabr9TXYYJHfvl6Syypi88rdAHYHmcq6",
            vars: || vec![(vars::RETELL_API_KEY, RETELL_KEY.into())],
            url_var: vars::RETELL_API_URL,
            secrets: &[RETELL_KEY],
            ended: |_| {
                json_reply(json!({"call_id": "Jabr9TXYYJHfvl6Syypi88rdAHYHmcq6",
                    "call_status": "ended", "start_timestamp": secs(START) * 1000,
                    "end_timestamp": secs(END) * 1000, "duration_ms": 120_000,
                    "disconnection_reason": "user_hangup",
                    "call_analysis": {"call_summary": "asked about an order"}}))
            },
            alive: |_| json_reply(json!({"call_status": "ongoing"})),
            expected: || FinalState {
                status: "ended".into(),
                outcome: Some(Outcome::Completed),
                started_at: at(START),
                answered_at: None,
                ended_at: at(END),
                duration_secs: Some(120),
                hangup_cause: Some("user_hangup".into()),
            },
            check: |r| {
                assert_eq!(r.path, "/v2/get-call/Jabr9TXYYJHfvl6Syypi88rdAHYHmcq6");
                bearer(r, RETELL_KEY);
            },
        },
        Case {
            provider: "elevenlabs",
            key: "conv_01jxk2vyqbf3rsj7w1vvmt4a5c",
            vars: || vec![(vars::ELEVENLABS_API_KEY, ELEVENLABS_KEY.into())],
            url_var: vars::ELEVENLABS_API_URL,
            secrets: &[ELEVENLABS_KEY],
            ended: |_| {
                json_reply(json!({"conversation_id": "conv_01jxk2vyqbf3rsj7w1vvmt4a5c",
                    "status": "done", "transcript": [], "analysis": {"call_successful": "success"},
                    "metadata": {"start_time_unix_secs": secs(START),
                        "accepted_time_unix_secs": secs(ANSWERED), "call_duration_secs": 120,
                        "termination_reason": "Call ended by remote party"}}))
            },
            alive: |_| json_reply(json!({"status": "in-progress", "metadata": {}})),
            expected: || FinalState {
                status: "done".into(),
                outcome: Some(Outcome::Completed),
                started_at: at(START),
                answered_at: at(ANSWERED),
                ended_at: at(END),
                duration_secs: Some(120),
                hangup_cause: Some("Call ended by remote party".into()),
            },
            check: |r| {
                assert_eq!(
                    r.path,
                    "/v1/convai/conversations/conv_01jxk2vyqbf3rsj7w1vvmt4a5c"
                );
                assert_eq!(r.header("xi-api-key"), Some(ELEVENLABS_KEY));
                assert_eq!(r.header("authorization"), None);
            },
        },
        Case {
            provider: "vapi",
            key: "5f2c8c1e-4b43-4a3e-9d1e-3c5a7f0b9e21",
            vars: || vec![(vars::VAPI_API_KEY, VAPI_KEY.into())],
            url_var: vars::VAPI_API_URL,
            secrets: &[VAPI_KEY],
            ended: |_| {
                json_reply(json!({"id": "5f2c8c1e-4b43-4a3e-9d1e-3c5a7f0b9e21",
                    "status": "ended", "endedReason": "customer-ended-call",
                    "startedAt": "2024-05-01T10:00:00.000Z", "endedAt": "2024-05-01T10:02:00.000Z",
                    "type": "inboundPhoneCall", "cost": 0.12}))
            },
            alive: |_| json_reply(json!({"status": "in-progress"})),
            expected: || FinalState {
                status: "ended".into(),
                outcome: Some(Outcome::Completed),
                started_at: at(START),
                answered_at: None,
                ended_at: at(END),
                duration_secs: Some(120),
                hangup_cause: Some("customer-ended-call".into()),
            },
            check: |r| {
                assert_eq!(r.path, "/call/5f2c8c1e-4b43-4a3e-9d1e-3c5a7f0b9e21");
                bearer(r, VAPI_KEY);
            },
        },
        Case {
            provider: "bird",
            key: "123e4567-e89b-12d3-a456-426614174000",
            vars: || {
                vec![
                    (vars::BIRD_API_KEY, BIRD_KEY.into()),
                    (vars::BIRD_WORKSPACE_ID, "ws-1".into()),
                    (vars::BIRD_CHANNEL_IDS, "ch-1".into()),
                ]
            },
            url_var: vars::BIRD_API_URL,
            secrets: &[BIRD_KEY],
            ended: |_| {
                json_reply(json!({"id": "123e4567-e89b-12d3-a456-426614174000",
                    "status": "completed", "createdAt": START, "answeredAt": ANSWERED,
                    "endedAt": END, "duration": 120, "hangupCauseCode": 16,
                    "reason": "normal-clearing", "direction": "incoming"}))
            },
            alive: |_| json_reply(json!({"status": "ongoing", "createdAt": START})),
            expected: || FinalState {
                status: "completed".into(),
                outcome: Some(Outcome::Completed),
                started_at: at(START),
                answered_at: at(ANSWERED),
                ended_at: at(END),
                duration_secs: Some(120),
                hangup_cause: Some("16: normal-clearing".into()),
            },
            check: |r| {
                assert_eq!(
                    r.path,
                    "/workspaces/ws-1/channels/ch-1/calls/123e4567-e89b-12d3-a456-426614174000"
                );
                assert_eq!(
                    r.header("authorization"),
                    Some(format!("AccessKey {BIRD_KEY}").as_str())
                );
            },
        },
    ]
}

/// The JWT Vonage wants: RS256 by the application's key, its id, fresh `iat`, later `exp`, a
/// `jti`.
pub fn check_vonage_jwt(request: &Received) {
    use aws_lc_rs::signature::{KeyPair, RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey};
    use rustls_pki_types::PrivateKeyDer;
    use rustls_pki_types::pem::PemObject;
    let token = request
        .header("authorization")
        .and_then(|h| h.strip_prefix("Bearer "))
        .expect("a bearer JWT");
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "{token}");
    let header: Value = serde_json::from_slice(&B64URL.decode(parts[0]).unwrap()).unwrap();
    assert_eq!(header, json!({"alg": "RS256", "typ": "JWT"}));
    let claims: Value = serde_json::from_slice(&B64URL.decode(parts[1]).unwrap()).unwrap();
    assert_eq!(claims["application_id"], VONAGE_APP);
    let iat = claims["iat"].as_i64().unwrap();
    assert!((Utc::now().timestamp() - iat).abs() < 60, "{claims}");
    assert!(claims["exp"].as_i64().unwrap() > iat);
    assert_eq!(claims["jti"].as_str().map(str::len), Some(32));
    let der = PrivateKeyDer::from_pem_slice(vonage_pem().as_bytes()).unwrap();
    let pair = aws_lc_rs::signature::RsaKeyPair::from_pkcs8(der.secret_der()).unwrap();
    let public = UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, pair.public_key().as_ref());
    let signed = format!("{}.{}", parts[0], parts[1]);
    public
        .verify(signed.as_bytes(), &B64URL.decode(parts[2]).unwrap())
        .expect("the JWT verifies with the application's public key");
}
