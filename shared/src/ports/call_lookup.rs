//! Asking a provider's API about one call: the stale pass's way to learn how a call ended when
//! its final webhook never came (docs/lifecycle.md, "Calls that never finish").

use futures::future::BoxFuture;

pub use crate::domain::call::FinalState;

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

/// The configured lookups, by provider.
pub trait LookupSource: Send + Sync {
    fn lookup_for(&self, provider: &str) -> Option<&dyn CallLookup>;
}

impl LookupSource for Vec<Box<dyn CallLookup>> {
    fn lookup_for(&self, provider: &str) -> Option<&dyn CallLookup> {
        self.iter()
            .find(|l| l.provider() == provider)
            .map(|l| l.as_ref())
    }
}
