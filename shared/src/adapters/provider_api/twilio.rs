//! Twilio: `GET /2010-04-01/Accounts/{TWILIO_ACCOUNT_SID}/Calls/{CallSid}.json`, HTTP Basic
//! with the account SID and its Auth Token, or an API key's SID (TWILIO_API_KEY_SID) and secret
//! (TWILIO_API_KEY). The call key is the `CallSid`.
//!
//! `status` decides, with the status callback's table ([`twilio::call_status`]): `queued`,
//! `ringing`, `in-progress` (and `initiated`) are alive; `completed`, `busy`, `failed`,
//! `no-answer`, `canceled` ended, with their outcome, and a `completed` call that answering
//! machine detection gave to a machine (`answered_by`) is `voicemail`
//! ([`twilio::ended_outcome`]). Times: `start_time`, `end_time` (RFC 2822), `duration` (s);
//! the resource has no answer time and no hangup cause. 404 (error 20404): not found.

use futures::future::BoxFuture;
use serde_json::Value;

use super::{ApiClient, Auth, checked_key, endpoint, shown_value};
use crate::config::provider_api::TwilioApi;
use crate::config::vars;
use crate::domain::event::Facts;
use crate::ports::{CallLookup, Lookup, LookupError};
use crate::providers::twilio;
use crate::providers::{integer_at, str_at};
use chrono::{DateTime, Utc};

pub struct TwilioLookup {
    client: ApiClient,
    api: TwilioApi,
}

impl TwilioLookup {
    pub fn new(client: ApiClient, api: TwilioApi) -> Self {
        TwilioLookup { client, api }
    }

    async fn ask(&self, call_key: &str) -> Result<Lookup, LookupError> {
        let key = checked_key(call_key)?;
        let url = endpoint(
            &self.api.base_url,
            &[
                "2010-04-01",
                "Accounts",
                &self.api.account_sid,
                "Calls",
                &format!("{key}.json"),
            ],
        )?;
        let auth = Auth::Basic {
            user: &self.api.username,
            password: self.api.password.expose(),
        };
        let answer = self.client.get(&url, &auth).await?;
        match answer.found(vars::TWILIO_API_KEY)? {
            None => Ok(Lookup::NotFound),
            Some(call) => call_state(&call).map_err(|problem| answer.unexpected(&problem)),
        }
    }
}

impl CallLookup for TwilioLookup {
    fn provider(&self) -> &'static str {
        twilio::NAME
    }

    fn lookup<'a>(&'a self, call_key: &'a str) -> BoxFuture<'a, Result<Lookup, LookupError>> {
        Box::pin(self.ask(call_key))
    }
}

fn rfc2822_at(call: &Value, pointer: &str) -> Option<DateTime<Utc>> {
    str_at(call, pointer)
        .and_then(|t| DateTime::parse_from_rfc2822(t).ok())
        .map(|t| t.with_timezone(&Utc))
}

/// What a Call resource says.
pub fn call_state(call: &Value) -> Result<Lookup, String> {
    let status = str_at(call, "/status").ok_or("no status")?;
    let (_, outcome, terminal) = twilio::call_status(status)
        .ok_or_else(|| format!("undocumented status {}", shown_value(status)))?;
    if !terminal {
        return Ok(Lookup::Alive);
    }
    let facts = Facts {
        started_at: rfc2822_at(call, "/start_time"),
        ended_at: rfc2822_at(call, "/end_time"),
        duration_secs: integer_at(call, "/duration").and_then(|d| u64::try_from(d).ok()),
        ..Facts::default()
    };
    let outcome = twilio::ended_outcome(outcome, str_at(call, "/answered_by"));
    Ok(Lookup::Ended(super::final_state(status, outcome, facts)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::event::Outcome;
    use serde_json::json;

    #[test]
    fn statuses_and_answering_machines() {
        for status in ["queued", "ringing", "in-progress"] {
            assert_eq!(call_state(&json!({"status": status})), Ok(Lookup::Alive));
        }
        for (status, answered_by, outcome) in [
            ("completed", None, Outcome::Completed),
            ("completed", Some("machine_end_beep"), Outcome::Voicemail),
            ("completed", Some("human"), Outcome::Completed),
            ("busy", None, Outcome::Busy),
            ("failed", None, Outcome::Failed),
            ("no-answer", Some("machine_start"), Outcome::NoAnswer),
            ("canceled", None, Outcome::Canceled),
        ] {
            let call = json!({"status": status, "answered_by": answered_by, "duration": null,
                              "start_time": null, "end_time": "Tue, 14 Nov 2023 22:13:20 +0000"});
            let Ok(Lookup::Ended(state)) = call_state(&call) else {
                panic!("{status} ended");
            };
            assert_eq!(
                (state.status.as_str(), state.outcome),
                (status, Some(outcome))
            );
            assert_eq!(
                state.ended_at,
                Some("2023-11-14T22:13:20Z".parse().unwrap())
            );
            assert_eq!((state.started_at, state.duration_secs), (None, None));
        }
        assert!(call_state(&json!({"status": "exploded"})).is_err());
        assert!(call_state(&json!({})).is_err());
    }
}
