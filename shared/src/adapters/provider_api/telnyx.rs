//! Telnyx: the call key is the `call_session_id` (providers/telnyx.rs), not a `call_control_id`,
//! so the call status endpoint (`GET /v2/calls/{call_control_id}`) cannot be asked. The call
//! events of the session can: `GET /v2/call_events?filter[application_session_id]={key}`
//! (`Authorization: Bearer {TELNYX_API_KEY}`), up to [`MAX_PAGES`] pages of [`PAGE_SIZE`].
//!
//! - No events (or 404): not found.
//! - A leg (`call_leg_id`) without a `call.hangup` event: alive.
//! - Every leg hung up: ended. The first leg (earliest event) is the call as its caller knows
//!   it: its hangup's `hangup_cause` gives the outcome ([`telnyx::hangup_outcome`]), its
//!   `start_time`/`end_time` the times, its `call.answered` event the answer time. Where a
//!   call event keeps the hangup's fields (`metadata`, the raw event) is not documented: the
//!   payload is looked for in `metadata.payload`, `metadata.data.payload` and `metadata`. No
//!   cause found: no outcome (the record keeps its own), never a guessed one.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use serde_json::Value;

use super::{ApiClient, Auth, checked_key, endpoint};
use crate::config::provider_api::KeyApi;
use crate::config::vars;
use crate::ports::{CallLookup, FinalState, Lookup, LookupError};
use crate::providers::telnyx::{self, hangup_outcome};
use crate::providers::whole_secs;
use crate::providers::{integer_at, str_at, time_at};

pub const PAGE_SIZE: u32 = 250;
pub const MAX_PAGES: u32 = 4;

pub struct TelnyxLookup {
    client: ApiClient,
    api: KeyApi,
}

impl TelnyxLookup {
    pub fn new(client: ApiClient, api: KeyApi) -> Self {
        TelnyxLookup { client, api }
    }

    async fn ask(&self, call_key: &str) -> Result<Lookup, LookupError> {
        let key = checked_key(call_key)?;
        let auth = Auth::bearer(self.api.key.expose());
        let mut events = Vec::new();
        for page in 1..=MAX_PAGES {
            let mut url = endpoint(&self.api.base_url, &["v2", "call_events"])?;
            url.query_pairs_mut()
                .append_pair("filter[application_session_id]", key)
                .append_pair("page[number]", &page.to_string())
                .append_pair("page[size]", &PAGE_SIZE.to_string());
            let answer = self.client.get(&url, &auth).await?;
            let Some(body) = answer.found(vars::TELNYX_API_KEY)? else {
                return Ok(Lookup::NotFound);
            };
            let Some(items) = body.get("data").and_then(Value::as_array) else {
                return Err(answer.unexpected("no `data` list of call events"));
            };
            events.extend(items.iter().cloned());
            let pages = integer_at(&body, "/meta/total_pages").unwrap_or(1);
            if i64::from(page) >= pages || items.is_empty() {
                return session(&events).map_err(|problem| answer.unexpected(problem));
            }
        }
        Err(LookupError::Refused(format!(
            "the session has more than {} call events",
            MAX_PAGES * PAGE_SIZE
        )))
    }
}

impl CallLookup for TelnyxLookup {
    fn provider(&self) -> &'static str {
        telnyx::NAME
    }

    fn lookup<'a>(&'a self, call_key: &'a str) -> BoxFuture<'a, Result<Lookup, LookupError>> {
        Box::pin(self.ask(call_key))
    }
}

#[derive(Default)]
struct Leg<'a> {
    /// Position of its first event, to break ties between legs without times.
    order: usize,
    first: Option<DateTime<Utc>>,
    answered: Option<DateTime<Utc>>,
    hangup: Option<&'a Value>,
}

/// Where a call event may keep the raw webhook's payload.
const PAYLOADS: &[&str] = &["/metadata/payload", "/metadata/data/payload", "/metadata"];

fn payload_str<'a>(event: &'a Value, field: &str) -> Option<&'a str> {
    PAYLOADS
        .iter()
        .find_map(|p| str_at(event, &format!("{p}/{field}")))
}

fn payload_time(event: &Value, field: &str) -> Option<DateTime<Utc>> {
    PAYLOADS
        .iter()
        .find_map(|p| time_at(event, &format!("{p}/{field}")))
}

fn earliest(a: Option<DateTime<Utc>>, b: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// What a session's call events say about the call.
pub fn session(events: &[Value]) -> Result<Lookup, &'static str> {
    if events.is_empty() {
        return Ok(Lookup::NotFound);
    }
    let mut legs: HashMap<&str, Leg<'_>> = HashMap::new();
    for (order, event) in events.iter().enumerate() {
        let Some(leg_id) = str_at(event, "/call_leg_id") else {
            continue;
        };
        let at = time_at(event, "/event_timestamp");
        let leg = legs.entry(leg_id).or_insert_with(|| Leg {
            order,
            ..Leg::default()
        });
        leg.first = earliest(leg.first, at);
        match str_at(event, "/name") {
            Some("call.hangup") => {
                leg.hangup.get_or_insert(event);
            }
            Some("call.answered") => leg.answered = earliest(leg.answered, at),
            _ => {}
        }
    }
    if legs.is_empty() {
        return Err("no call event names a call leg");
    }
    if legs.values().any(|leg| leg.hangup.is_none()) {
        return Ok(Lookup::Alive);
    }
    let first = legs
        .values()
        .min_by_key(|leg| (leg.first.is_none(), leg.first, leg.order))
        .ok_or("no call leg")?;
    let hangup = first.hangup.ok_or("no hangup")?;
    let cause = payload_str(hangup, "hangup_cause");
    let started_at = payload_time(hangup, "start_time").or(first.first);
    let ended_at = payload_time(hangup, "end_time").or_else(|| time_at(hangup, "/event_timestamp"));
    Ok(Lookup::Ended(FinalState {
        status: "hangup".to_owned(),
        outcome: cause.map(|cause| hangup_outcome(Some(cause))),
        started_at,
        answered_at: first.answered,
        ended_at,
        duration_secs: started_at.zip(ended_at).and_then(|(s, e)| whole_secs(s, e)),
        hangup_cause: cause.map(str::to_owned),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::event::Outcome;
    use serde_json::json;

    fn event(leg: &str, name: &str, at: &str, metadata: Value) -> Value {
        json!({"call_leg_id": leg, "call_session_id": "s1", "name": name, "type": "webhook",
               "event_timestamp": at, "metadata": metadata, "record_type": "call_event"})
    }

    fn at(s: &str) -> Option<DateTime<Utc>> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn every_leg_must_hang_up_and_the_first_leg_tells_the_end() {
        let a_start = event("a", "call.initiated", "2024-05-01T10:00:00Z", json!({}));
        let a_answer = event("a", "call.answered", "2024-05-01T10:00:05Z", json!({}));
        let b_start = event("b", "call.initiated", "2024-05-01T10:00:10Z", json!({}));
        let b_hangup = event(
            "b",
            "call.hangup",
            "2024-05-01T10:01:00Z",
            json!({"payload": {"hangup_cause": "user_busy"}}),
        );
        let a_hangup = event(
            "a",
            "call.hangup",
            "2024-05-01T10:02:00Z",
            json!({"payload": {"hangup_cause": "normal_clearing",
                   "start_time": "2024-05-01T10:00:00Z", "end_time": "2024-05-01T10:02:00Z"}}),
        );
        let partial = [
            b_hangup.clone(),
            b_start.clone(),
            a_answer.clone(),
            a_start.clone(),
        ];
        assert_eq!(session(&partial), Ok(Lookup::Alive));
        // Newest first, as a list may come: the order does not matter.
        let all = [a_hangup, b_hangup, b_start, a_answer, a_start];
        assert_eq!(
            session(&all),
            Ok(Lookup::Ended(FinalState {
                status: "hangup".into(),
                outcome: Some(Outcome::Completed),
                started_at: at("2024-05-01T10:00:00Z"),
                answered_at: at("2024-05-01T10:00:05Z"),
                ended_at: at("2024-05-01T10:02:00Z"),
                duration_secs: Some(120),
                hangup_cause: Some("normal_clearing".into()),
            }))
        );
    }

    #[test]
    fn where_the_payload_sits_and_no_cause_is_no_outcome() {
        for metadata in [
            json!({"data": {"payload": {"hangup_cause": "no_answer"}}}),
            json!({"hangup_cause": "no_answer"}),
        ] {
            let Ok(Lookup::Ended(state)) =
                session(&[event("a", "call.hangup", "2024-05-01T10:00:30Z", metadata)])
            else {
                panic!("ended");
            };
            assert_eq!(state.outcome, Some(Outcome::NoAnswer));
            assert_eq!(state.ended_at, at("2024-05-01T10:00:30Z"));
        }
        let Ok(Lookup::Ended(state)) =
            session(&[event("a", "call.hangup", "2024-05-01T10:00:30Z", json!({}))])
        else {
            panic!("ended");
        };
        assert_eq!((state.outcome, state.hangup_cause), (None, None));
    }

    #[test]
    fn no_events_is_not_found_and_legless_events_are_refused() {
        assert_eq!(session(&[]), Ok(Lookup::NotFound));
        assert!(session(&[json!({"name": "call.hangup"})]).is_err());
    }
}
