//! ElevenLabs Agents: `GET /v1/convai/conversations/{conversation_id}` with
//! `xi-api-key: {ELEVENLABS_API_KEY}` (ELEVENLABS_API_URL for a data-residency host); the call
//! key is the `conversation_id`. The answer is the conversation object the post-call
//! transcription webhook carries as `data`.
//!
//! `status`: `initiated`, `in-progress` are alive; `done`, `failed` ended; `processing` (over,
//! its analysis pending) alive for [`ANALYSIS_GRACE_SECS`](super::ANALYSIS_GRACE_SECS) after its end, then ended. The
//! outcome and facts are the webhook's ([`elevenlabs::conversation_end`]: a transfer or
//! voicemail tool's success, else `failed` for a failed conversation, else `completed`);
//! times from `metadata.start_time_unix_secs`, `accepted_time_unix_secs` and
//! `call_duration_secs`; cause `metadata.termination_reason`. 404: not found (not documented;
//! another status is refused).

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use serde_json::Value;

use super::{ApiClient, Auth, analysis_pending, checked_key, endpoint, final_state, shown_value};
use crate::config::provider_api::KeyApi;
use crate::config::vars;
use crate::ports::{CallLookup, Lookup, LookupError};
use crate::providers::{elevenlabs, str_at};

pub const KEY_HEADER: &str = "xi-api-key";

pub struct ElevenlabsLookup {
    client: ApiClient,
    api: KeyApi,
}

impl ElevenlabsLookup {
    pub fn new(client: ApiClient, api: KeyApi) -> Self {
        ElevenlabsLookup { client, api }
    }

    async fn ask(&self, call_key: &str) -> Result<Lookup, LookupError> {
        let key = checked_key(call_key)?;
        let url = endpoint(&self.api.base_url, &["v1", "convai", "conversations", key])?;
        let auth = Auth::Header {
            name: KEY_HEADER,
            value: self.api.key.expose(),
        };
        let answer = self.client.get(&url, &auth).await?;
        match answer.found(vars::ELEVENLABS_API_KEY)? {
            None => Ok(Lookup::NotFound),
            Some(conversation) => conversation_state(&conversation, Utc::now())
                .map_err(|problem| answer.unexpected(&problem)),
        }
    }
}

impl CallLookup for ElevenlabsLookup {
    fn provider(&self) -> &'static str {
        elevenlabs::NAME
    }

    fn lookup<'a>(&'a self, call_key: &'a str) -> BoxFuture<'a, Result<Lookup, LookupError>> {
        Box::pin(self.ask(call_key))
    }
}

/// What a conversation object says, `now` deciding whether `processing` may still finish.
pub fn conversation_state(conversation: &Value, now: DateTime<Utc>) -> Result<Lookup, String> {
    let status = str_at(conversation, "/status").ok_or("no status")?;
    match status {
        "initiated" | "in-progress" => Ok(Lookup::Alive),
        "processing" | "done" | "failed" => {
            let (outcome, facts) = elevenlabs::conversation_end(conversation);
            if status == "processing" && analysis_pending(facts.ended_at, now) {
                return Ok(Lookup::Alive);
            }
            Ok(Lookup::Ended(final_state(status, Some(outcome), facts)))
        }
        other => Err(format!("undocumented status {}", shown_value(other))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::provider_api::ANALYSIS_GRACE_SECS;
    use crate::domain::event::Outcome;
    use serde_json::json;

    #[test]
    fn statuses_outcomes_and_processing() {
        let now: DateTime<Utc> = "2024-05-01T12:00:00Z".parse().unwrap();
        let start = now.timestamp() - 600;
        for status in ["initiated", "in-progress"] {
            assert_eq!(
                conversation_state(&json!({"status": status}), now),
                Ok(Lookup::Alive)
            );
        }
        let done = |status: &str| {
            json!({"conversation_id": "c1", "status": status, "metadata": {
                "start_time_unix_secs": start, "accepted_time_unix_secs": start + 2,
                "call_duration_secs": 60, "termination_reason": "Client disconnected"}})
        };
        let Ok(Lookup::Ended(state)) = conversation_state(&done("done"), now) else {
            panic!("done ended");
        };
        assert_eq!(state.outcome, Some(Outcome::Completed));
        assert_eq!(state.started_at, DateTime::from_timestamp(start, 0));
        assert_eq!(state.answered_at, DateTime::from_timestamp(start + 2, 0));
        assert_eq!(state.ended_at, DateTime::from_timestamp(start + 60, 0));
        assert_eq!(state.duration_secs, Some(60));
        assert_eq!(state.hangup_cause.as_deref(), Some("Client disconnected"));
        let Ok(Lookup::Ended(state)) = conversation_state(&done("failed"), now) else {
            panic!("failed ended");
        };
        assert_eq!(state.outcome, Some(Outcome::Failed));
        assert_eq!(
            conversation_state(&done("processing"), now),
            Ok(Lookup::Alive)
        );
        let later = now + chrono::Duration::seconds(ANALYSIS_GRACE_SECS);
        assert!(matches!(
            conversation_state(&done("processing"), later),
            Ok(Lookup::Ended(_))
        ));
        assert!(conversation_state(&json!({"status": "exploded"}), now).is_err());
    }
}
