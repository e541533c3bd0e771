//! Asking a provider's API about one call: the stale pass's way to learn how a call ended when
//! its final webhook never came (docs/lifecycle.md, "Calls that never finish").

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;

use crate::domain::event::Outcome;

/// What a provider's API says about a call.
#[derive(Debug, Clone, PartialEq)]
pub enum Lookup {
    /// Still going, or over but not yet final at the provider (e.g. its analysis pending):
    /// ask again later.
    Alive,
    /// Over: what the provider reports.
    Ended(FinalState),
    /// The provider does not know the call (wrong, expired or deleted id).
    NotFound,
}

/// A call's end as a provider's API reports it, in callhook's vocabulary.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FinalState {
    /// The provider's own word for the end (`completed`, `no-answer`, `ended`, …): becomes the
    /// backfill event's type (`backfill.{status}`).
    pub status: String,
    /// `None` when the provider's answer does not say (the record's outcome stays as it is).
    pub outcome: Option<Outcome>,
    pub started_at: Option<DateTime<Utc>>,
    pub answered_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    pub duration_secs: Option<u64>,
    pub hangup_cause: Option<String>,
}

/// Why a lookup gave no answer. Never carries a credential.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LookupError {
    /// 429, or the client's own cap: ask later, not before `retry_after_secs` when given.
    #[error("rate limited")]
    RateLimited { retry_after_secs: Option<u64> },
    /// Network failure, timeout, 5xx after retries.
    #[error("provider API unavailable: {0}")]
    Unavailable(String),
    /// 401/403 or an answer that is not what the API documents: needs a person.
    #[error("provider API refused or answered unexpectedly: {0}")]
    Refused(String),
}

/// One provider's fetch-one-call API.
pub trait CallLookup: Send + Sync {
    /// The provider this asks (`twilio`, …).
    fn provider(&self) -> &'static str;

    /// Asks about the call whose key (the call id after `{provider}#`) is `call_key`.
    fn lookup<'a>(&'a self, call_key: &'a str) -> BoxFuture<'a, Result<Lookup, LookupError>>;
}
