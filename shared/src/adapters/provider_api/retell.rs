//! Retell: `GET /v2/get-call/{call_id}` with `Authorization: Bearer {RETELL_API_KEY}`; the call
//! key is the `call_id`. The answer is the call object the webhooks carry.
//!
//! `call_status`: `registered`, `ongoing` are alive; `ended`, `not_connected`, `error` ended,
//! the outcome from `disconnection_reason` ([`retell::call_facts`], the webhook's table), times
//! `start_timestamp`/`end_timestamp` (ms), duration `duration_ms`. An `ended` call without
//! `call_analysis` is still being analysed: alive for [`ANALYSIS_GRACE_SECS`](super::ANALYSIS_GRACE_SECS) after its end,
//! then ended without the analysis. 404: not found (Retell documents no 404; a 422 or another
//! status is refused).

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use serde_json::Value;

use super::{ApiClient, Auth, analysis_pending, checked_key, endpoint, final_state, shown_value};
use crate::config::provider_api::KeyApi;
use crate::config::vars;
use crate::ports::{CallLookup, Lookup, LookupError};
use crate::providers::{retell, str_at};

pub struct RetellLookup {
    client: ApiClient,
    api: KeyApi,
}

impl RetellLookup {
    pub fn new(client: ApiClient, api: KeyApi) -> Self {
        RetellLookup { client, api }
    }

    async fn ask(&self, call_key: &str) -> Result<Lookup, LookupError> {
        let key = checked_key(call_key)?;
        let url = endpoint(&self.api.base_url, &["v2", "get-call", key])?;
        let answer = self
            .client
            .get(&url, &Auth::bearer(self.api.key.expose()))
            .await?;
        match answer.found(vars::RETELL_API_KEY)? {
            None => Ok(Lookup::NotFound),
            Some(call) => {
                call_state(&call, Utc::now()).map_err(|problem| answer.unexpected(&problem))
            }
        }
    }
}

impl CallLookup for RetellLookup {
    fn provider(&self) -> &'static str {
        retell::NAME
    }

    fn lookup<'a>(&'a self, call_key: &'a str) -> BoxFuture<'a, Result<Lookup, LookupError>> {
        Box::pin(self.ask(call_key))
    }
}

/// What a call object says, `now` deciding whether a missing analysis may still come.
pub fn call_state(call: &Value, now: DateTime<Utc>) -> Result<Lookup, String> {
    let status = str_at(call, "/call_status").ok_or("no call_status")?;
    match status {
        "registered" | "ongoing" => Ok(Lookup::Alive),
        "ended" | "not_connected" | "error" => {
            let (outcome, facts) = retell::call_facts(call, true);
            if status == "ended"
                && facts.analysis.is_none()
                && analysis_pending(facts.ended_at, now)
            {
                return Ok(Lookup::Alive);
            }
            Ok(Lookup::Ended(final_state(status, outcome, facts)))
        }
        other => Err(format!("undocumented call_status {}", shown_value(other))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::provider_api::ANALYSIS_GRACE_SECS;
    use crate::domain::event::Outcome;
    use serde_json::json;

    #[test]
    fn statuses_reasons_and_the_analysis_grace() {
        let now: DateTime<Utc> = "2024-05-01T12:00:00Z".parse().unwrap();
        let end = now.timestamp_millis() - 60_000;
        for status in ["registered", "ongoing"] {
            assert_eq!(
                call_state(&json!({"call_status": status}), now),
                Ok(Lookup::Alive)
            );
        }
        let ended = json!({"call_status": "ended", "disconnection_reason": "user_hangup",
            "start_timestamp": end - 30_000, "end_timestamp": end, "duration_ms": 30_000});
        assert_eq!(call_state(&ended, now), Ok(Lookup::Alive));
        let later = now + chrono::Duration::seconds(ANALYSIS_GRACE_SECS);
        let Ok(Lookup::Ended(state)) = call_state(&ended, later) else {
            panic!("ended after the grace");
        };
        assert_eq!(state.outcome, Some(Outcome::Completed));
        assert_eq!(state.duration_secs, Some(30));
        assert_eq!(state.ended_at, DateTime::from_timestamp_millis(end));
        let mut analysed = ended.clone();
        analysed["call_analysis"] = json!({"call_summary": "ok"});
        assert!(matches!(call_state(&analysed, now), Ok(Lookup::Ended(_))));
        let not_connected =
            json!({"call_status": "not_connected", "disconnection_reason": "dial_no_answer"});
        let Ok(Lookup::Ended(state)) = call_state(&not_connected, now) else {
            panic!("not_connected ended");
        };
        assert_eq!(
            (state.status.as_str(), state.outcome),
            ("not_connected", Some(Outcome::NoAnswer))
        );
        assert_eq!(state.hangup_cause.as_deref(), Some("dial_no_answer"));
        let error = json!({"call_status": "error", "disconnection_reason": "brand_new_reason"});
        let Ok(Lookup::Ended(state)) = call_state(&error, now) else {
            panic!("error ended");
        };
        assert_eq!(state.outcome, None);
        assert!(call_state(&json!({"call_status": "exploded"}), now).is_err());
    }
}
