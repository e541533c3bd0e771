//! Mirai Minds voice agents: call lifecycle, end-of-call report and action events.
//!
//! Authentication: Mirai Minds publishes none, and the callback URL is set per call, so the
//! URL carries a secret: `/webhooks/miraiminds/{token}`, compared in constant time with any of
//! MIRAIMINDS_PATH_TOKENS (at least 16 URL-safe characters each). The token is a secret like a
//! password: nothing signed is stored with the event, and access logs must not record paths.
//!
//! Envelope: `{"event":{"type","data"},"metadata":{…what was passed when the call started…}}`;
//! call events carry `data.call{id,status,startedAt,endedAt,recordingUrl,detailUrl,
//! durationSeconds}`, `data.report{reAttemptCount,rescheduledCount}`; `end-of-call` adds
//! `analysis{success,summary,requiredActions,insights}` and `credits{used,available}`; action
//! events (`create_order`, `send_whatsapp`) carry the action's data and a failure reason.
//!
//! Mirai Minds sends no event id: the dedupe key is derived from `call.id`, `event.type` and
//! the attempt, `report.reAttemptCount` + `report.rescheduledCount` (or `call.startedAt` when no
//! report is sent), because a call is retried and rescheduled under the same id, so the same
//! event type recurs once per attempt; for action events also the SHA-256 of the request
//! (`event.data` without the call snapshot and report, and `metadata`), since one call may
//! request several actions. Call key: `event.data.call.id`.

use serde_json::{Map, Value, json};

use super::{
    Delivery, Provider, ProviderEntry, derived_key, malformed, mark_unknown, scoped_id, sha256_hex,
    str_at, time_at,
};
#[cfg(any(test, feature = "dev"))]
use super::{DevSigner, Signed};
use crate::config::{ConfigError, Env, vars};
use crate::domain::event::{CanonicalEvent, Direction, Kind, Outcome};
use crate::signing::{self as verify, AuthError};

pub const NAME: &str = "miraiminds";
const TOKENS_VAR: &str = vars::MIRAIMINDS_PATH_TOKENS;
/// Shortest path token accepted in configuration.
pub const MIN_TOKEN_LEN: usize = 16;

use Kind::*;

pub const ENTRY: ProviderEntry = ProviderEntry {
    name: NAME,
    from_env: Miraiminds::from_env,
    normalizer,
    #[cfg(any(test, feature = "dev"))]
    dev_signer: |seed| Box::new(MiraimindsSigner(dev_token(seed))),
};

/// Every Mirai Minds event type → kind, outcome, and whether it is the call's terminal fact.
/// `call.lifecycle-ended` is always last, after every retry and reschedule: the only terminal
/// fact. The failure events end one attempt and may be followed by another.
pub const MAPPING: &[(&str, Kind, Option<Outcome>, bool)] = &[
    // Lifecycle.
    ("call.initiate", Initiated, None, false),
    ("call.in-progress", Answered, None, false),
    ("call.ended", Ended, Some(Outcome::Completed), false),
    ("call.completed", Report, None, false),
    ("call.timeout", Ended, Some(Outcome::Completed), false),
    ("end-of-call", Report, None, false),
    ("call.lifecycle-ended", Ended, None, true),
    // Failure and retry.
    ("call.failed", Ended, Some(Outcome::Failed), false),
    ("call.busy", Ended, Some(Outcome::Busy), false),
    ("call.no-answer", Ended, Some(Outcome::NoAnswer), false),
    (
        "call.validation-failed",
        Ended,
        Some(Outcome::Failed),
        false,
    ),
    ("call.skip", Ended, Some(Outcome::Canceled), false),
    // Other.
    ("call.rescheduled", Ended, Some(Outcome::Rescheduled), false),
    ("call.aborted", Ended, Some(Outcome::Canceled), false),
    // Actions requested by the agent.
    ("create_order", Action, None, false),
    ("send_whatsapp", Action, None, false),
];

/// `data.call.status` of `call.lifecycle-ended` → the call's outcome. A status not listed (or
/// none) leaves the outcome to the attempts' own ended facts.
pub const FINAL_STATUSES: &[(&str, Outcome)] = &[
    ("completed", Outcome::Completed),
    ("ended", Outcome::Completed),
    ("timeout", Outcome::Completed),
    ("busy", Outcome::Busy),
    ("no-answer", Outcome::NoAnswer),
    ("no_answer", Outcome::NoAnswer),
    ("failed", Outcome::Failed),
    ("validation-failed", Outcome::Failed),
    ("skip", Outcome::Canceled),
    ("skipped", Outcome::Canceled),
    ("aborted", Outcome::Canceled),
    ("cancelled", Outcome::Canceled),
    ("canceled", Outcome::Canceled),
];

pub struct Miraiminds {
    tokens: Vec<String>,
}

impl Miraiminds {
    pub fn new(tokens: Vec<String>) -> Self {
        Miraiminds { tokens }
    }

    pub fn from_env(env: &Env) -> Result<Option<Box<dyn Provider>>, ConfigError> {
        let tokens = env.list(TOKENS_VAR);
        if tokens.is_empty() {
            return Ok(None);
        }
        for token in &tokens {
            if token.len() < MIN_TOKEN_LEN {
                return Err(ConfigError::invalid(
                    TOKENS_VAR,
                    "a token is shorter than 16 characters",
                ));
            }
            if !token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
            {
                return Err(ConfigError::invalid(
                    TOKENS_VAR,
                    "a token has characters other than A-Z a-z 0-9 - . _ ~",
                ));
            }
        }
        Ok(Some(Box::new(Miraiminds::new(
            tokens.into_iter().map(str::to_owned).collect(),
        ))))
    }
}

/// The provider for normalizing stored events: no credentials (it is wrapped so that it
/// verifies nothing).
fn normalizer(_env: &Env) -> Result<Box<dyn Provider>, ConfigError> {
    Ok(Box::new(Miraiminds::new(Vec::new())))
}

impl Provider for Miraiminds {
    fn name(&self) -> &'static str {
        NAME
    }

    fn signed_headers(&self) -> &'static [&'static str] {
        &[]
    }

    fn verify(&self, d: &Delivery<'_>) -> Result<(), AuthError> {
        let token = d
            .path_token
            .filter(|t| !t.is_empty())
            .ok_or(AuthError::MissingToken)?;
        if verify::matches_any(token.as_bytes(), &self.tokens) {
            Ok(())
        } else {
            Err(AuthError::BadToken)
        }
    }

    fn normalize(&self, d: &Delivery<'_>) -> CanonicalEvent {
        let Ok(mut body) = serde_json::from_slice::<Value>(d.body) else {
            return malformed(NAME, d.body, d.received_at, "body is not JSON");
        };
        let Some(event_type) = str_at(&body, "/event/type") else {
            return malformed(NAME, d.body, d.received_at, "missing event.type");
        };
        let mapping = MAPPING.iter().find(|(t, ..)| *t == event_type);
        let is_action = matches!(mapping, Some((_, Action, ..)));
        let call_key = str_at(&body, "/event/data/call/id");
        // Every call event names its call; an action may not (it is still a request to act).
        if call_key.is_none() && mapping.is_some() && !is_action {
            return malformed(NAME, d.body, d.received_at, "missing event.data.call.id");
        }
        let counter = |name: &str| {
            body.pointer(&format!("/event/data/report/{name}"))
                .filter(|v| !v.is_null())
                .map(Value::to_string)
                .unwrap_or_default()
        };
        // What the agent asked for, without the call snapshot and report a re-rendered retry
        // could refresh.
        let action_digest = if is_action || mapping.is_none() {
            let mut request = body.pointer("/event/data").cloned().unwrap_or(Value::Null);
            if let Value::Object(map) = &mut request {
                map.remove("call");
                map.remove("report");
            }
            let identity = json!({ "data": request, "metadata": body.get("metadata") });
            sha256_hex(identity.to_string().as_bytes())
        } else {
            String::new()
        };
        // The attempt: the report's counters; where no report is sent, the attempt's start.
        let attempts = [counter("reAttemptCount"), counter("rescheduledCount")];
        let started_at = if attempts.iter().all(String::is_empty) {
            str_at(&body, "/event/data/call/startedAt").unwrap_or("")
        } else {
            ""
        };
        let key = derived_key(&[
            call_key.unwrap_or(""),
            event_type,
            &attempts[0],
            &attempts[1],
            started_at,
            &action_digest,
        ]);
        let mut event = CanonicalEvent::new(NAME, &key, event_type, d.received_at);
        event.call_id = call_key.map(|k| scoped_id(NAME, k));
        let metadata = body.get_mut("metadata").map(Value::take);
        let data = body
            .pointer_mut("/event/data")
            .map(Value::take)
            .unwrap_or(Value::Null);
        let call = data.get("call").cloned().unwrap_or(Value::Null);
        // Calls are placed through the API; a direction on the call wins if one is sent.
        event.direction = str_at(&call, "/direction")
            .and_then(Direction::parse)
            .or(Some(Direction::Outbound));
        event.from = str_at(&call, "/from").map(str::to_owned);
        event.to = str_at(&call, "/to")
            .or_else(|| str_at(&call, "/phoneNumber"))
            .map(str::to_owned);
        event.facts.metadata = metadata.filter(|m| !m.is_null());

        match mapping {
            Some((_, kind, outcome, is_final)) => {
                event.kind = *kind;
                event.outcome = *outcome;
                event.is_final = *is_final;
                if *is_final {
                    event.outcome = str_at(&call, "/status").and_then(final_outcome);
                }
                // Mirai Minds sends no event time. The attempt's own times order the facts
                // that carry them; the rest (and the terminal fact, always last) use receipt.
                event.occurred_at = match kind {
                    Ended if !*is_final && event.outcome != Some(Outcome::Rescheduled) => {
                        time_at(&call, "/endedAt")
                    }
                    Answered => time_at(&call, "/startedAt"),
                    _ => None,
                }
                .unwrap_or(d.received_at);
                fill_facts(&mut event, &data, &call);
            }
            None => mark_unknown(&mut event),
        }
        event.data = data;
        event
    }
}

/// The call's outcome from the status `call.lifecycle-ended` reports, if it is a known one.
pub fn final_outcome(status: &str) -> Option<Outcome> {
    let status = status.to_ascii_lowercase();
    FINAL_STATUSES
        .iter()
        .find(|(s, _)| *s == status)
        .map(|(_, outcome)| *outcome)
}

fn fill_facts(event: &mut CanonicalEvent, data: &Value, call: &Value) {
    let facts = &mut event.facts;
    facts.started_at = time_at(call, "/startedAt");
    facts.ended_at = time_at(call, "/endedAt");
    facts.duration_secs = call.get("durationSeconds").and_then(as_u64);
    facts.recording_url = str_at(call, "/recordingUrl").map(str::to_owned);
    facts.transcript = data
        .get("transcript")
        .or_else(|| call.get("transcript"))
        .filter(|t| !t.is_null())
        .cloned();
    facts.cost = data.get("credits").filter(|c| !c.is_null()).cloned();
    facts.analysis = analysis(data);
    if event.kind == Action {
        facts.action = Some(json!({ "type": event.event_type, "data": data }));
    } else if event.kind == Ended {
        facts.hangup_cause = str_at(data, "/reason")
            .or_else(|| str_at(call, "/endedReason"))
            .map(str::to_owned);
    }
}

/// The end-of-call analysis: `data.analysis`, with `requiredActions`, `insights`, `summary`
/// and `success` found beside it folded in.
fn analysis(data: &Value) -> Option<Value> {
    let mut analysis = match data.get("analysis") {
        Some(Value::Object(map)) => map.clone(),
        Some(Value::Null) | None => Map::new(),
        Some(other) => return Some(other.clone()),
    };
    for field in ["requiredActions", "insights", "summary", "success"] {
        if let Some(value) = data.get(field).filter(|v| !v.is_null()) {
            analysis.entry(field).or_insert_with(|| value.clone());
        }
    }
    (!analysis.is_empty()).then_some(Value::Object(analysis))
}

fn as_u64(value: &Value) -> Option<u64> {
    match value {
        Value::Number(n) => n
            .as_u64()
            .or_else(|| n.as_f64().filter(|f| *f >= 0.0).map(|f| f.round() as u64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

#[cfg(any(test, feature = "dev"))]
/// The dev path token: 64 hex characters derived from the seed with a domain tag, so a token
/// seen in a URL or a log reveals nothing of the other dev keys made from the same seed.
fn dev_token(seed: &[u8; 32]) -> String {
    sha256_hex(&[b"callhook dev miraiminds path token ".as_slice(), seed].concat())
}

#[cfg(any(test, feature = "dev"))]
struct MiraimindsSigner(String);

#[cfg(any(test, feature = "dev"))]
impl DevSigner for MiraimindsSigner {
    fn verifier_env(&self) -> Vec<(&'static str, String)> {
        vec![(TOKENS_VAR, self.0.clone())]
    }

    fn sign(&self, _body: &[u8], _timestamp: i64, _url: &str) -> Signed {
        Signed {
            headers: Vec::new(),
            path_token: Some(self.0.clone()),
            url: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::{FIXTURE_SEED, Headers};
    use chrono::{DateTime, TimeZone, Utc};

    const TOKEN: &str = "b4c1f0e2a9d84e57a1c3";

    fn provider() -> Box<dyn Provider> {
        Miraiminds::from_env(&Env::from_pairs([(
            TOKENS_VAR,
            format!("old-token-0123456789,{TOKEN}"),
        )]))
        .unwrap()
        .unwrap()
    }

    fn delivery<'a>(h: &'a Headers, body: &'a [u8], token: Option<&'a str>) -> Delivery<'a> {
        Delivery {
            headers: h,
            body,
            path_token: token,
            request_url: None,
            received_at: Utc.timestamp_opt(1_750_000_000, 0).unwrap(),
        }
    }

    #[test]
    fn path_token_is_checked() {
        let p = provider();
        let h = Headers::new();
        assert_eq!(p.verify(&delivery(&h, b"{}", Some(TOKEN))), Ok(()));
        assert_eq!(
            p.verify(&delivery(&h, b"{}", Some("old-token-0123456789"))),
            Ok(())
        );
        assert_eq!(
            p.verify(&delivery(&h, b"{}", None)),
            Err(AuthError::MissingToken)
        );
        assert_eq!(
            p.verify(&delivery(&h, b"{}", Some(""))),
            Err(AuthError::MissingToken)
        );
        for wrong in [&TOKEN[..TOKEN.len() - 1], "B4c1f0e2a9d84e57a1c3", "x"] {
            assert_eq!(
                p.verify(&delivery(&h, b"{}", Some(wrong))),
                Err(AuthError::BadToken)
            );
        }
        assert!(p.signed_headers().is_empty());
    }

    #[test]
    fn dev_token_is_derived_and_signs_by_path() {
        let signer = (ENTRY.dev_signer)(&FIXTURE_SEED);
        let signed = signer.sign(b"{}", 0, "");
        let token = signed.path_token.unwrap();
        assert_eq!(token.len(), 64);
        assert!(!token.contains(&sha256_hex(&FIXTURE_SEED)[..16]));
        assert_eq!(signer.verifier_env(), vec![(TOKENS_VAR, token)]);
        assert!(signed.headers.is_empty());
    }

    #[test]
    fn weak_tokens_are_config_errors() {
        assert!(Miraiminds::from_env(&Env::default()).unwrap().is_none());
        for bad in ["tiny1", "has/slash/in/the/token", "spaces are not ok here"] {
            let err = Miraiminds::from_env(&Env::from_pairs([(TOKENS_VAR, bad)]))
                .err()
                .unwrap()
                .to_string();
            assert!(
                err.starts_with("MIRAIMINDS_PATH_TOKENS is invalid"),
                "{err}"
            );
            assert!(!err.contains(bad));
        }
    }

    fn normalize(body: &str) -> CanonicalEvent {
        let h = Headers::new();
        provider().normalize(&delivery(&h, body.as_bytes(), Some(TOKEN)))
    }

    fn call_event(event_type: &str, attempt: u32, extra: &str) -> String {
        format!(
            r#"{{"event":{{"type":"{event_type}","data":{{"call":{{"id":"6650a1","status":"x","startedAt":"2025-06-15T10:0{attempt}:00Z","endedAt":"2025-06-15T10:0{attempt}:42Z","recordingUrl":"https://cdn.example/r.mp3","detailUrl":"https://app.example/calls/6650a1","durationSeconds":42}},"report":{{"reAttemptCount":{attempt},"rescheduledCount":0}}{extra}}}}},"metadata":{{"orderId":"ord_9"}}}}"#
        )
    }

    #[test]
    fn every_event_type_maps() {
        for (event_type, kind, outcome, is_final) in MAPPING {
            let e = normalize(&call_event(event_type, 0, ""));
            assert_eq!(e.kind, *kind, "{event_type}");
            assert_eq!(e.is_final, *is_final, "{event_type}");
            if !is_final {
                assert_eq!(e.outcome, *outcome, "{event_type}");
            }
            assert!(e.review.is_none(), "{event_type}");
            assert_eq!(e.call_id.as_deref(), Some("miraiminds#6650a1"));
            assert_eq!(e.direction, Some(Direction::Outbound));
            assert_eq!(e.facts.metadata, Some(json!({"orderId": "ord_9"})));
            assert_eq!(e.facts.action.is_some(), *kind == Action, "{event_type}");
        }
        assert_eq!(MAPPING.iter().filter(|(.., f)| *f).count(), 1);
        assert_eq!(MAPPING.len(), 16);
    }

    #[test]
    fn terminal_fact_takes_its_outcome_from_the_call_status() {
        let body = |status: &str| {
            call_event("call.lifecycle-ended", 1, "")
                .replace(r#""status":"x""#, &format!(r#""status":"{status}""#))
        };
        for (status, outcome) in FINAL_STATUSES {
            let e = normalize(&body(status));
            assert_eq!(e.outcome, Some(*outcome), "{status}");
            assert!(e.is_final);
            assert_eq!(e.occurred_at, e.received_at);
        }
        assert_eq!(normalize(&body("Busy")).outcome, Some(Outcome::Busy));
        assert_eq!(normalize(&body("queued")).outcome, None);
    }

    #[test]
    fn ordering_times_come_from_the_attempt() {
        let ended = normalize(&call_event("call.no-answer", 2, ""));
        assert_eq!(
            ended.occurred_at,
            "2025-06-15T10:02:42Z".parse::<DateTime<Utc>>().unwrap()
        );
        let answered = normalize(&call_event("call.in-progress", 2, ""));
        assert_eq!(
            answered.occurred_at,
            "2025-06-15T10:02:00Z".parse::<DateTime<Utc>>().unwrap()
        );
        let rescheduled = normalize(&call_event("call.rescheduled", 2, ""));
        assert_eq!(rescheduled.occurred_at, rescheduled.received_at);
    }

    #[test]
    fn end_of_call_report_fills_facts() {
        let extra = r#","analysis":{"success":true,"summary":"Order placed","requiredActions":["send invoice"],"insights":{"sentiment":"positive"}},"credits":{"used":1.5,"available":98.5}"#;
        let e = normalize(&call_event("end-of-call", 0, extra));
        assert_eq!(e.kind, Kind::Report);
        let analysis = e.facts.analysis.unwrap();
        assert_eq!(analysis["requiredActions"][0], "send invoice");
        assert_eq!(analysis["insights"]["sentiment"], "positive");
        assert_eq!(analysis["success"], true);
        assert_eq!(e.facts.cost, Some(json!({"used": 1.5, "available": 98.5})));
        assert_eq!(
            e.facts.recording_url.as_deref(),
            Some("https://cdn.example/r.mp3")
        );
        assert_eq!(e.facts.duration_secs, Some(42));
        // requiredActions beside the analysis are folded in.
        let e = normalize(&call_event(
            "end-of-call",
            0,
            r#","requiredActions":["call back"],"insights":{"a":1}"#,
        ));
        assert_eq!(
            e.facts.analysis,
            Some(json!({"requiredActions": ["call back"], "insights": {"a": 1}}))
        );
    }

    #[test]
    fn actions_carry_their_request() {
        let body = r#"{"event":{"type":"send_whatsapp","data":{"call":{"id":"6650a1"},"reason":"missing_address","phone":"+919800000000"}},"metadata":{"orderId":"ord_9"}}"#;
        let e = normalize(body);
        assert_eq!(e.kind, Kind::Action);
        assert_eq!(e.outcome, None);
        let action = e.facts.action.unwrap();
        assert_eq!(action["type"], "send_whatsapp");
        assert_eq!(action["data"]["reason"], "missing_address");
        // Another reason in the same call is another request; the same one re-sent is not.
        let other = normalize(&body.replace("missing_address", "missing_first_name"));
        assert_ne!(e.event_id, other.event_id);
        assert_eq!(e.event_id, normalize(body).event_id);
        // A retry whose call snapshot was refreshed is the same request.
        let refreshed = body.replace(
            r#"{"id":"6650a1"}"#,
            r#"{"id":"6650a1","status":"in-progress"}"#,
        );
        assert_eq!(e.event_id, normalize(&refreshed).event_id);
        // An action that names no call is still a request, without a call.
        let e = normalize(
            r#"{"event":{"type":"create_order","data":{"items":[{"sku":"A1","qty":2}]}},"metadata":{}}"#,
        );
        assert_eq!(e.kind, Kind::Action);
        assert_eq!(e.call_id, None);
        assert!(e.review.is_none());
    }

    #[test]
    fn dedupe_keys_tell_attempts_apart() {
        let first = normalize(&call_event("call.no-answer", 0, ""));
        let again = normalize(&call_event("call.no-answer", 0, ""));
        let second = normalize(&call_event("call.no-answer", 1, ""));
        assert_eq!(first.event_id, again.event_id);
        assert_ne!(first.event_id, second.event_id);
        let ended = normalize(&call_event("call.ended", 0, ""));
        assert_ne!(first.event_id, ended.event_id);
        // Without a report, the attempt's start tells attempts apart.
        let bare = |started: &str| {
            normalize(&format!(
                r#"{{"event":{{"type":"call.busy","data":{{"call":{{"id":"c9","startedAt":"{started}"}}}}}}}}"#
            ))
            .event_id
        };
        assert_eq!(bare("2025-06-15T10:00:00Z"), bare("2025-06-15T10:00:00Z"));
        assert_ne!(bare("2025-06-15T10:00:00Z"), bare("2025-06-15T11:00:00Z"));
        // With a report, a refreshed call snapshot in a retry is still the same fact.
        let refreshed =
            normalize(&call_event("call.no-answer", 0, "").replace("10:00:00Z", "10:00:01Z"));
        assert_eq!(first.event_id, refreshed.event_id);
        // Credits or analysis re-rendered differently do not make a new fact.
        let a = normalize(&call_event("end-of-call", 0, r#","credits":{"used":1}"#));
        let b = normalize(&call_event("end-of-call", 0, r#","credits":{"used":2}"#));
        assert_eq!(a.event_id, b.event_id);
    }

    #[test]
    fn unknown_and_malformed_are_kept_for_review() {
        let e = normalize(&call_event("call.teleported", 0, ""));
        assert_eq!(e.kind, Kind::Unknown);
        assert_eq!(e.review.unwrap().reason, "unknown_type");
        assert_eq!(e.call_id.as_deref(), Some("miraiminds#6650a1"));
        for body in [
            "{",
            "[]",
            r#"{"event":{}}"#,
            r#"{"event":{"type":"call.ended","data":{}}}"#,
            r#"{"event":{"type":"call.ended","data":{"call":{"id":5}}}}"#,
            "",
        ] {
            let e = normalize(body);
            assert_eq!(e.review.as_ref().unwrap().reason, "malformed", "{body}");
            assert!(e.event_id.starts_with("miraiminds#"));
        }
    }
}
