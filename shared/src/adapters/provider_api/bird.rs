//! Bird: `GET /workspaces/{BIRD_WORKSPACE_ID}/channels/{channel}/calls/{id}` with
//! `Authorization: AccessKey {BIRD_API_KEY}`; the call key is the call's `id`. It does not say
//! which channel carried the call, so each of BIRD_CHANNEL_IDS is asked in turn until one
//! knows it; 404 on every one: not found.
//!
//! The answer is the call object the webhooks carry: `status` by the webhook's table
//! ([`bird::status_of`]): `accepted`, `starting`, `ringing`, `ongoing` are alive; `completed`,
//! `no-answer`, `busy`, `failed`, `cancelled` ended with their outcome; facts
//! ([`bird::call_facts`]): `createdAt`, `answeredAt`, `endedAt`, `duration`, cause
//! `{hangupCauseCode}: {reason}`.

use futures::future::BoxFuture;
use serde_json::Value;

use super::{ApiClient, Auth, checked_key, endpoint, final_state, shown_value};
use crate::config::provider_api::BirdApi;
use crate::config::vars;
use crate::ports::{CallLookup, Lookup, LookupError};
use crate::providers::{bird, str_at};

pub struct BirdLookup {
    client: ApiClient,
    api: BirdApi,
}

impl BirdLookup {
    pub fn new(client: ApiClient, api: BirdApi) -> Self {
        BirdLookup { client, api }
    }

    async fn ask(&self, call_key: &str) -> Result<Lookup, LookupError> {
        let key = checked_key(call_key)?;
        let auth = Auth::Scheme {
            scheme: "AccessKey",
            token: self.api.key.expose(),
        };
        for channel in &self.api.channel_ids {
            let url = endpoint(
                &self.api.base_url,
                &[
                    "workspaces",
                    &self.api.workspace_id,
                    "channels",
                    channel,
                    "calls",
                    key,
                ],
            )?;
            let answer = self.client.get(&url, &auth).await?;
            if let Some(call) = answer.found(vars::BIRD_API_KEY)? {
                return call_state(&call).map_err(|problem| answer.unexpected(&problem));
            }
        }
        Ok(Lookup::NotFound)
    }
}

impl CallLookup for BirdLookup {
    fn provider(&self) -> &'static str {
        bird::NAME
    }

    fn lookup<'a>(&'a self, call_key: &'a str) -> BoxFuture<'a, Result<Lookup, LookupError>> {
        Box::pin(self.ask(call_key))
    }
}

/// What a call object says.
pub fn call_state(call: &Value) -> Result<Lookup, String> {
    let status = str_at(call, "/status").ok_or("no status")?;
    let (_, outcome, terminal) = bird::status_of(status)
        .ok_or_else(|| format!("undocumented status {}", shown_value(status)))?;
    if !terminal {
        return Ok(Lookup::Alive);
    }
    Ok(Lookup::Ended(final_state(
        status,
        outcome,
        bird::call_facts(call),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::event::Outcome;
    use serde_json::json;

    #[test]
    fn statuses_and_facts() {
        for status in ["accepted", "starting", "ringing", "ongoing"] {
            assert_eq!(call_state(&json!({"status": status})), Ok(Lookup::Alive));
        }
        for (status, outcome) in [
            ("completed", Outcome::Completed),
            ("no-answer", Outcome::NoAnswer),
            ("busy", Outcome::Busy),
            ("failed", Outcome::Failed),
            ("cancelled", Outcome::Canceled),
        ] {
            let call = json!({"id": "c1", "status": status, "createdAt": "2024-05-01T10:00:00Z",
                "endedAt": "2024-05-01T10:00:30Z", "duration": 30, "hangupCauseCode": 16,
                "reason": "normal"});
            let Ok(Lookup::Ended(state)) = call_state(&call) else {
                panic!("{status} ended");
            };
            assert_eq!(state.outcome, Some(outcome));
            assert_eq!(state.duration_secs, Some(30));
            assert_eq!(state.hangup_cause.as_deref(), Some("16: normal"));
        }
        assert!(call_state(&json!({"status": "exploded"})).is_err());
    }
}
