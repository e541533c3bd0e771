//! Vonage: the call key is the `conversation_uuid` (providers/vonage.rs), so the lookup lists
//! the conversation's legs, `GET /v1/calls?conversation_uuid={key}`, with `Authorization:
//! Bearer {JWT}`: RS256 signed for each request with the application's private key
//! (VONAGE_PRIVATE_KEY), claims `application_id` (VONAGE_APPLICATION_ID), `iat`, `exp`
//! (`iat` + [`TOKEN_LIFETIME_SECS`]) and a random `jti`.
//!
//! - 404, or no legs: not found.
//! - A leg whose `status` is not an ended one ([`vonage::status_of`]: `started`, `ringing`,
//!   `answered`, and `human`/`machine`, answering machine verdicts on a call still going):
//!   alive. A status not in the table: refused.
//! - Every leg ended: ended. The first leg (earliest `start_time`) is the call as its caller
//!   knows it: its status and [`vonage::leg_end`] give the outcome (`completed` only when it
//!   lasted, `busy`, `cancelled`, `unanswered`/`timeout`, `failed`, `rejected`) and the times.
//! - More legs than one page (`count` above the legs listed): refused (not expected of a call).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use serde_json::{Value, json};

use super::{ApiClient, Auth, checked_key, endpoint, final_state, shown_value};
use crate::config::provider_api::VonageApi;
use crate::config::vars;
use crate::domain::event::Kind;
use crate::ports::{CallLookup, Lookup, LookupError};
use crate::providers::vonage;
use crate::providers::{integer_at, str_at, time_at};

/// How long a request's JWT is good for.
pub const TOKEN_LIFETIME_SECS: i64 = 300;

pub struct VonageLookup {
    client: ApiClient,
    api: VonageApi,
}

impl VonageLookup {
    pub fn new(client: ApiClient, api: VonageApi) -> Self {
        VonageLookup { client, api }
    }

    /// A fresh RS256 JWT for the application.
    pub fn token(&self, now: DateTime<Utc>) -> Result<String, LookupError> {
        let mut jti = [0u8; 16];
        aws_lc_rs::rand::fill(&mut jti)
            .map_err(|_| LookupError::Refused("no randomness for the JWT id".to_owned()))?;
        let claims = json!({
            "application_id": self.api.application_id,
            "iat": now.timestamp(),
            "exp": now.timestamp() + TOKEN_LIFETIME_SECS,
            "jti": hex::encode(jti),
        });
        let signed = format!(
            "{}.{}",
            B64URL.encode(br#"{"alg":"RS256","typ":"JWT"}"#),
            B64URL.encode(claims.to_string())
        );
        let signature = self
            .api
            .private_key
            .sign(signed.as_bytes())
            .map_err(|_| LookupError::Refused("the JWT could not be signed".to_owned()))?;
        Ok(format!("{signed}.{}", B64URL.encode(signature)))
    }

    async fn ask(&self, call_key: &str) -> Result<Lookup, LookupError> {
        let key = checked_key(call_key)?;
        let mut url = endpoint(&self.api.base_url, &["v1", "calls"])?;
        url.query_pairs_mut().append_pair("conversation_uuid", key);
        let token = self.token(Utc::now())?;
        let answer = self.client.get(&url, &Auth::bearer(&token)).await?;
        match answer.found(vars::VONAGE_PRIVATE_KEY)? {
            None => Ok(Lookup::NotFound),
            Some(body) => conversation(&body).map_err(|problem| answer.unexpected(&problem)),
        }
    }
}

impl CallLookup for VonageLookup {
    fn provider(&self) -> &'static str {
        vonage::NAME
    }

    fn lookup<'a>(&'a self, call_key: &'a str) -> BoxFuture<'a, Result<Lookup, LookupError>> {
        Box::pin(self.ask(call_key))
    }
}

/// What a conversation's list of legs says about the call.
pub fn conversation(body: &Value) -> Result<Lookup, String> {
    let count = integer_at(body, "/count");
    let legs = match body.pointer("/_embedded/calls").and_then(Value::as_array) {
        Some(legs) => legs,
        None if count == Some(0) => return Ok(Lookup::NotFound),
        None => return Err("no `_embedded.calls` list".to_owned()),
    };
    if legs.is_empty() {
        return Ok(Lookup::NotFound);
    }
    if count.is_some_and(|count| count > legs.len() as i64) {
        return Err(format!("{} legs, more than one page", count.unwrap_or(0)));
    }
    for leg in legs {
        let status = str_at(leg, "/status").ok_or("a leg has no status")?;
        let (kind, ..) = vonage::status_of(status)
            .ok_or_else(|| format!("undocumented status {}", shown_value(status)))?;
        if kind != Kind::Ended {
            return Ok(Lookup::Alive);
        }
    }
    let first = legs
        .iter()
        .min_by_key(|leg| {
            let start = time_at(leg, "/start_time");
            (start.is_none(), start)
        })
        .ok_or("no legs")?;
    let status = str_at(first, "/status").ok_or("a leg has no status")?;
    let (outcome, facts) = vonage::leg_end(status, first);
    Ok(Lookup::Ended(final_state(status, outcome, facts)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::event::Outcome;

    fn list(legs: Value) -> Value {
        let count = legs.as_array().map_or(0, Vec::len);
        json!({"count": count, "page_size": 10, "record_index": 0,
               "_embedded": {"calls": legs}})
    }

    #[test]
    fn every_leg_must_end_and_the_first_leg_tells_the_end() {
        let first = json!({"uuid": "a", "status": "completed", "duration": "42",
            "start_time": "2024-05-01T10:00:00.000Z", "end_time": "2024-05-01T10:00:42.000Z",
            "conversation_uuid": "CON-1", "rate": "0.01", "price": "0.007"});
        let second = json!({"uuid": "b", "status": "answered",
            "start_time": "2024-05-01T10:00:05.000Z"});
        assert_eq!(
            conversation(&list(json!([second, first]))),
            Ok(Lookup::Alive)
        );
        let second = json!({"uuid": "b", "status": "unanswered",
            "start_time": "2024-05-01T10:00:05.000Z", "end_time": "2024-05-01T10:00:35.000Z"});
        let Ok(Lookup::Ended(state)) = conversation(&list(json!([second, first]))) else {
            panic!("ended");
        };
        assert_eq!(state.status, "completed");
        assert_eq!(state.outcome, Some(Outcome::Completed));
        assert_eq!(state.duration_secs, Some(42));
        assert_eq!(
            state.started_at,
            Some("2024-05-01T10:00:00Z".parse().unwrap())
        );
        assert_eq!(
            state.ended_at,
            Some("2024-05-01T10:00:42Z".parse().unwrap())
        );
    }

    #[test]
    fn ended_statuses_map_as_the_call_events_do() {
        for (status, duration, outcome) in [
            ("completed", "0", None),
            ("busy", "0", Some(Outcome::Busy)),
            ("cancelled", "0", Some(Outcome::Canceled)),
            ("unanswered", "0", Some(Outcome::NoAnswer)),
            ("timeout", "0", Some(Outcome::NoAnswer)),
            ("failed", "0", Some(Outcome::Failed)),
            ("rejected", "0", Some(Outcome::Failed)),
        ] {
            let leg = json!({"status": status, "duration": duration});
            let Ok(Lookup::Ended(state)) = conversation(&list(json!([leg]))) else {
                panic!("{status} ended");
            };
            assert_eq!(state.outcome, outcome, "{status}");
        }
        for status in ["started", "ringing", "answered", "machine", "human"] {
            let legs = list(json!([{"status": status}]));
            assert_eq!(conversation(&legs), Ok(Lookup::Alive), "{status}");
        }
    }

    #[test]
    fn empty_paged_and_odd_lists() {
        assert_eq!(conversation(&list(json!([]))), Ok(Lookup::NotFound));
        assert_eq!(conversation(&json!({"count": 0})), Ok(Lookup::NotFound));
        assert!(conversation(&json!({"count": 3})).is_err());
        let paged = json!({"count": 12, "_embedded": {"calls": [{"status": "completed"}]}});
        assert!(conversation(&paged).is_err());
        assert!(conversation(&list(json!([{"status": "exploded"}]))).is_err());
    }
}
