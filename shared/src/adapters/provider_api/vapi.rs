//! Vapi: `GET /call/{id}` with `Authorization: Bearer {VAPI_API_KEY}` (the private key); the
//! call key is `message.call.id`, the call's `id`.
//!
//! `status` by the status-update table ([`vapi::STATUSES`]): `scheduled`, `queued`, `ringing`,
//! `in-progress`, `forwarding` are alive; `ended` ended, with the outcome of `endedReason`
//! ([`vapi::call_end`], the webhook's tables; a reason neither covers gives no outcome), times
//! `startedAt`/`endedAt`, duration end − start (the call has no duration field). Any other
//! status (`not-found`, `deletion-failed`, …) is refused. 404: not found (not documented).

use futures::future::BoxFuture;
use serde_json::Value;

use super::{ApiClient, Auth, checked_key, endpoint, final_state, shown_value};
use crate::config::provider_api::KeyApi;
use crate::config::vars;
use crate::domain::event::Kind;
use crate::ports::{CallLookup, Lookup, LookupError};
use crate::providers::{str_at, vapi};

pub struct VapiLookup {
    client: ApiClient,
    api: KeyApi,
}

impl VapiLookup {
    pub fn new(client: ApiClient, api: KeyApi) -> Self {
        VapiLookup { client, api }
    }

    async fn ask(&self, call_key: &str) -> Result<Lookup, LookupError> {
        let key = checked_key(call_key)?;
        let url = endpoint(&self.api.base_url, &["call", key])?;
        let answer = self
            .client
            .get(&url, &Auth::bearer(self.api.key.expose()))
            .await?;
        match answer.found(vars::VAPI_API_KEY)? {
            None => Ok(Lookup::NotFound),
            Some(call) => call_state(&call).map_err(|problem| answer.unexpected(&problem)),
        }
    }
}

impl CallLookup for VapiLookup {
    fn provider(&self) -> &'static str {
        vapi::NAME
    }

    fn lookup<'a>(&'a self, call_key: &'a str) -> BoxFuture<'a, Result<Lookup, LookupError>> {
        Box::pin(self.ask(call_key))
    }
}

/// What a call object says.
pub fn call_state(call: &Value) -> Result<Lookup, String> {
    let status = str_at(call, "/status").ok_or("no status")?;
    let kind = vapi::STATUSES
        .iter()
        .find(|(s, _)| *s == status)
        .map(|(_, kind)| *kind)
        .ok_or_else(|| format!("status {} is not a call's progress", shown_value(status)))?;
    if kind != Kind::Ended {
        return Ok(Lookup::Alive);
    }
    let (outcome, facts) = vapi::call_end(call);
    Ok(Lookup::Ended(final_state(status, outcome, facts)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::event::Outcome;
    use serde_json::json;

    #[test]
    fn statuses_and_ended_reasons() {
        for status in [
            "scheduled",
            "queued",
            "ringing",
            "in-progress",
            "forwarding",
        ] {
            assert_eq!(call_state(&json!({"status": status})), Ok(Lookup::Alive));
        }
        let call = json!({"id": "c1", "status": "ended", "endedReason": "customer-busy",
            "startedAt": "2024-05-01T10:00:00.000Z", "endedAt": "2024-05-01T10:00:09.600Z"});
        let Ok(Lookup::Ended(state)) = call_state(&call) else {
            panic!("ended");
        };
        assert_eq!(state.outcome, Some(Outcome::Busy));
        assert_eq!(state.duration_secs, Some(10));
        assert_eq!(state.hangup_cause.as_deref(), Some("customer-busy"));
        let odd = json!({"status": "ended", "endedReason": "brand-new-reason"});
        let Ok(Lookup::Ended(state)) = call_state(&odd) else {
            panic!("ended");
        };
        assert_eq!((state.outcome, state.ended_at), (None, None));
        for status in ["not-found", "deletion-failed", "exploded"] {
            assert!(call_state(&json!({"status": status})).is_err(), "{status}");
        }
    }
}
