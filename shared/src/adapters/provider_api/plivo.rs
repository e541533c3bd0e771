//! Plivo: HTTP Basic `{PLIVO_AUTH_ID}:{PLIVO_API_TOKEN}`; the call key is the `CallUUID`.
//! First the live call, `GET /v1/Account/{auth_id}/Call/{uuid}/?status=live`: found with a
//! `call_status` of `ringing` or `in-progress`, the call is alive (another status: refused).
//! Else its record (CDR), `GET /v1/Account/{auth_id}/Call/{uuid}/`: found, it ended; 404 on
//! both: not found (or its record is not written yet; Plivo does not say how long that takes).
//!
//! The record has no status: the outcome is the `hangup_cause_code`'s range, as for a hangup
//! callback without a terminal `CallStatus` ([`plivo::cause_code_outcome`]); no code, no
//! outcome. Times: `initiation_time`, `answer_time` (null when unanswered), `end_time`;
//! duration `call_duration`; cause `{hangup_cause_name} ({hangup_cause_code})`.

use futures::future::BoxFuture;
use serde_json::Value;

use super::{ApiClient, Auth, checked_key, endpoint};
use crate::config::provider_api::PlivoApi;
use crate::config::vars;
use crate::ports::{CallLookup, FinalState, Lookup, LookupError};
use crate::providers::plivo;
use crate::providers::{integer_at, str_at};

pub struct PlivoLookup {
    client: ApiClient,
    api: PlivoApi,
}

impl PlivoLookup {
    pub fn new(client: ApiClient, api: PlivoApi) -> Self {
        PlivoLookup { client, api }
    }

    async fn ask(&self, call_key: &str) -> Result<Lookup, LookupError> {
        let key = checked_key(call_key)?;
        let auth = Auth::Basic {
            user: &self.api.auth_id,
            password: self.api.token.expose(),
        };
        let call = endpoint(
            &self.api.base_url,
            &["v1", "Account", &self.api.auth_id, "Call", key, ""],
        )?;
        let mut live = call.clone();
        live.query_pairs_mut().append_pair("status", "live");
        let answer = self.client.get(&live, &auth).await?;
        if let Some(call) = answer.found(vars::PLIVO_API_TOKEN)? {
            return live_call(&call).map_err(|problem| answer.unexpected(&problem));
        }
        let answer = self.client.get(&call, &auth).await?;
        Ok(match answer.found(vars::PLIVO_API_TOKEN)? {
            None => Lookup::NotFound,
            Some(record) => {
                Lookup::Ended(call_record(&record).map_err(|problem| answer.unexpected(&problem))?)
            }
        })
    }
}

impl CallLookup for PlivoLookup {
    fn provider(&self) -> &'static str {
        plivo::NAME
    }

    fn lookup<'a>(&'a self, call_key: &'a str) -> BoxFuture<'a, Result<Lookup, LookupError>> {
        Box::pin(self.ask(call_key))
    }
}

/// The statuses of a live call.
pub const LIVE_STATUSES: &[&str] = &["ringing", "in-progress"];

/// A live call's answer: alive when its `call_status` is a live one.
pub fn live_call(call: &Value) -> Result<Lookup, String> {
    match str_at(call, "/call_status") {
        Some(status) if LIVE_STATUSES.contains(&status) => Ok(Lookup::Alive),
        Some(status) => Err(format!(
            "undocumented live call_status {}",
            super::shown_value(status)
        )),
        None => Err("a live call without call_status".to_owned()),
    }
}

/// The end a call record (CDR) reports. A record names its end time or hangup cause: any
/// other answer (`{}`, an error object) is refused, never taken for an end.
pub fn call_record(record: &Value) -> Result<FinalState, String> {
    if str_at(record, "/end_time").is_none() && integer_at(record, "/hangup_cause_code").is_none() {
        return Err("a call record without end_time or hangup_cause_code".to_owned());
    }
    let time = |field: &str| str_at(record, &format!("/{field}")).and_then(plivo::parse_time);
    let code = integer_at(record, "/hangup_cause_code");
    let code_text = code.map(|c| c.to_string());
    Ok(FinalState {
        status: "hangup".to_owned(),
        outcome: code
            .and_then(|c| u32::try_from(c).ok())
            .map(plivo::cause_code_outcome),
        started_at: time("initiation_time"),
        answered_at: time("answer_time"),
        ended_at: time("end_time"),
        duration_secs: integer_at(record, "/call_duration").and_then(|d| u64::try_from(d).ok()),
        hangup_cause: plivo::cause_text(
            str_at(record, "/hangup_cause_name"),
            code_text.as_deref(),
            None,
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::event::Outcome;
    use serde_json::json;

    #[test]
    fn records_map_by_cause_code() {
        let record = json!({"answer_time": "2023-11-14 22:12:44+00:00",
            "initiation_time": "2023-11-14 22:12:38+00:00", "end_time": "2023-11-14 22:13:20+00:00",
            "call_duration": 42, "bill_duration": 60, "hangup_cause_code": 4000,
            "hangup_cause_name": "Normal Hangup", "hangup_source": "Callee"});
        let state = call_record(&record).unwrap();
        assert_eq!(state.outcome, Some(Outcome::Completed));
        assert_eq!(state.hangup_cause.as_deref(), Some("Normal Hangup (4000)"));
        assert_eq!(
            state.answered_at,
            Some("2023-11-14T22:12:44Z".parse().unwrap())
        );
        assert_eq!(state.duration_secs, Some(42));
        for (code, outcome) in [
            (json!(1010), Some(Outcome::Canceled)),
            (json!("2000"), Some(Outcome::Failed)),
            (json!(3000), Some(Outcome::Failed)),
            (json!(null), None),
        ] {
            let state = call_record(&json!({"hangup_cause_code": code, "answer_time": null,
                "end_time": "2023-11-14 22:13:20+00:00"}))
            .unwrap();
            assert_eq!(state.outcome, outcome, "{code}");
            assert_eq!(state.answered_at, None);
        }
    }

    #[test]
    fn an_answer_that_is_not_a_call_record_is_refused() {
        for answer in [json!({}), json!([]), json!({"error": "not found"})] {
            assert!(call_record(&answer).is_err(), "{answer}");
        }
    }
}
