//! The providers' fetch-one-call APIs (docs/provider-apis.md): one HTTP client every provider
//! shares, and one [`CallLookup`] per provider whose API credentials are configured, gathered in
//! [`Lookups`].
//!
//! The client: a connect and a total timeout per attempt; up to `attempts` tries on 429, 5xx and
//! network failures, waiting a full-jitter backoff (uniform in `0..=min(max, base·2^retry)`)
//! and never less than the answer's `Retry-After`; a `Retry-After` longer than the policy's
//! `max_retry_after` ends the lookup at once (`RateLimited` with the wait, so the caller asks
//! again later). Redirects are not followed, answers are read up to a limit, and error texts
//! name the request as `GET scheme://host/path` (never its query) and have every credential of
//! the request scrubbed out, also from any part of the provider's answer they quote.
//!
//! Each provider maps its API's answer with the mapping functions of its webhook module in
//! `providers/` where the API speaks the same words. When the API answers something its
//! documentation does not describe, the lookup says `Refused` (a person looks), never guesses
//! an outcome; what is not documented is listed in docs/provider-apis.md.

mod bird;
mod elevenlabs;
mod plivo;
mod retell;
mod telnyx;
mod twilio;
mod vapi;
mod vonage;

#[cfg(test)]
mod tests;

use std::fmt;
use std::time::Duration;

use base64::Engine;
use chrono::{DateTime, Utc};
use reqwest::Url;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};
use serde_json::Value;

pub use bird::BirdLookup;
pub use elevenlabs::ElevenlabsLookup;
pub use plivo::PlivoLookup;
pub use retell::RetellLookup;
pub use telnyx::TelnyxLookup;
pub use twilio::TwilioLookup;
pub use vapi::VapiLookup;
pub use vonage::VonageLookup;

use crate::config::provider_api::ProviderApiConfig;
use crate::config::{ConfigError, Env, vars};
use crate::domain::event::{Facts, Outcome};
use crate::limits::{PROVIDER_API_BODY_LIMIT, PROVIDER_API_ERROR_QUOTE};
use crate::ports::LookupSource;
use crate::ports::{CallLookup, FinalState, LookupError};

const USER_AGENT: &str = concat!("callhook-lookup/", env!("CARGO_PKG_VERSION"));

/// How long a voice-AI call that ended without its analysis counts as still in progress at the
/// provider (Retell `ended` without `call_analysis`, ElevenLabs `processing`): the analysis
/// normally follows within minutes; after this the end is reported without it.
pub const ANALYSIS_GRACE_SECS: i64 = 3600;

/// How the client times out and retries one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Tries per request, the first included.
    pub attempts: u32,
    /// One attempt, from connecting to the last byte of the answer.
    pub timeout: Duration,
    pub connect_timeout: Duration,
    /// The full-jitter backoff's base and cap.
    pub base_backoff: Duration,
    pub max_backoff: Duration,
    /// The longest `Retry-After` waited for inside a lookup; a longer one ends it.
    pub max_retry_after: Duration,
    /// The largest answer read.
    pub body_limit: usize,
}

impl RetryPolicy {
    pub fn from_config(config: &ProviderApiConfig) -> Self {
        let timeout = Duration::from_secs(config.timeout_secs);
        RetryPolicy {
            attempts: config.attempts.max(1),
            timeout,
            connect_timeout: timeout.min(Duration::from_secs(3)),
            base_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(2),
            max_retry_after: Duration::from_secs(5),
            body_limit: PROVIDER_API_BODY_LIMIT,
        }
    }

    /// The longest one request can take: every attempt timing out, the longest wait between.
    pub fn worst_case(&self) -> Duration {
        let attempts = self.attempts.max(1);
        self.timeout * attempts + self.max_backoff.max(self.max_retry_after) * (attempts - 1)
    }
}

/// How a request carries its credential.
pub(crate) enum Auth<'a> {
    /// `Authorization: {scheme} {token}` (`Bearer`, Bird's `AccessKey`).
    Scheme {
        scheme: &'static str,
        token: &'a str,
    },
    /// HTTP Basic.
    Basic { user: &'a str, password: &'a str },
    /// A header of its own (ElevenLabs' `xi-api-key`).
    Header { name: &'static str, value: &'a str },
}

impl Auth<'_> {
    pub(crate) fn bearer(token: &str) -> Auth<'_> {
        Auth::Scheme {
            scheme: "Bearer",
            token,
        }
    }

    fn header(&self) -> Result<(HeaderName, HeaderValue), LookupError> {
        let (name, value) = match self {
            Auth::Scheme { scheme, token } => (AUTHORIZATION, format!("{scheme} {token}")),
            Auth::Basic { user, password } => (
                AUTHORIZATION,
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
                ),
            ),
            Auth::Header { name, value } => (HeaderName::from_static(name), (*value).to_owned()),
        };
        let mut value = HeaderValue::from_str(&value).map_err(|_| {
            LookupError::Refused("the credential is not a valid header value".to_owned())
        })?;
        value.set_sensitive(true);
        Ok((name, value))
    }

    /// Every string that would give the credential away, for scrubbing error texts.
    fn secrets(&self) -> Vec<String> {
        match self {
            Auth::Scheme { token, .. } => vec![(*token).to_owned()],
            Auth::Basic { user, password } => vec![
                (*password).to_owned(),
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")),
            ],
            Auth::Header { value, .. } => vec![(*value).to_owned()],
        }
    }
}

/// A provider's answer that is not retried (anything but 429 and 5xx).
pub(crate) struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
    /// `GET scheme://host/path`, for error texts.
    request: String,
    /// The start of the body, credentials scrubbed (for error texts).
    quote: String,
}

impl Answer {
    /// 2xx: the JSON answer; 404: `None` (the provider does not know it); 401/403: refused
    /// credentials (naming `credentials_var`); anything else: an answer not documented.
    pub(crate) fn found(&self, credentials_var: &str) -> Result<Option<Value>, LookupError> {
        match self.status {
            200..=299 => self.json().map(Some),
            404 => Ok(None),
            401 | 403 => Err(LookupError::Refused(format!(
                "{}: {}: the provider refused the credentials (check {credentials_var}){}",
                self.request,
                self.status,
                self.quoted()
            ))),
            300..=399 => Err(self.unexpected(&format!(
                "redirected ({}), and redirects are not followed",
                self.status
            ))),
            status => Err(self.unexpected(&format!("unexpected status {status}"))),
        }
    }

    pub(crate) fn json(&self) -> Result<Value, LookupError> {
        serde_json::from_slice(&self.body).map_err(|_| self.unexpected("the answer is not JSON"))
    }

    /// `Refused`: the answer is not what the API documents.
    pub(crate) fn unexpected(&self, problem: &str) -> LookupError {
        LookupError::Refused(format!("{}: {problem}{}", self.request, self.quoted()))
    }

    fn quoted(&self) -> String {
        if self.quote.is_empty() {
            String::new()
        } else {
            format!(": {}", self.quote)
        }
    }
}

/// Why one attempt failed.
enum Failure {
    /// Worth another attempt (network, timeout, a body cut short).
    Transient(String),
    /// Not: the same request would fail the same way.
    Final(LookupError),
}

/// What one attempt got back: an answer, or a status worth retrying.
enum Attempt {
    Done(Answer),
    Retry {
        status: u16,
        retry_after: Option<Duration>,
        quote: String,
    },
}

/// The HTTP client every provider's lookup shares (one connection pool).
#[derive(Clone)]
pub struct ApiClient {
    http: reqwest::Client,
    policy: RetryPolicy,
}

impl fmt::Debug for ApiClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiClient")
            .field("policy", &self.policy)
            .finish()
    }
}

impl ApiClient {
    pub fn new(policy: RetryPolicy) -> Result<Self, reqwest::Error> {
        let http = crate::adapters::http::client_builder()
            .timeout(policy.timeout)
            .connect_timeout(policy.connect_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(USER_AGENT)
            .build()?;
        Ok(ApiClient { http, policy })
    }

    /// GETs `url` with `auth`, retrying as the policy says.
    pub(crate) async fn get(&self, url: &Url, auth: &Auth<'_>) -> Result<Answer, LookupError> {
        let request = format!("GET {}", shown(url));
        let secrets = auth.secrets();
        let attempts = self.policy.attempts.max(1);
        let mut failure = LookupError::Unavailable(request.clone());
        for attempt in 1..=attempts {
            let last = attempt == attempts;
            let wait = match self.once(url, auth, &request, &secrets).await {
                Ok(Attempt::Done(answer)) => return Ok(answer),
                Ok(Attempt::Retry {
                    status,
                    retry_after,
                    quote,
                }) => {
                    let quote = if quote.is_empty() {
                        quote
                    } else {
                        format!(": {quote}")
                    };
                    failure = if status == 429 {
                        LookupError::RateLimited {
                            retry_after_secs: retry_after.map(ceil_secs),
                        }
                    } else {
                        LookupError::Unavailable(format!(
                            "{request}: {status} after {attempt} attempt(s){quote}"
                        ))
                    };
                    if retry_after.is_some_and(|wait| wait > self.policy.max_retry_after) {
                        return Err(failure);
                    }
                    self.backoff(attempt).max(retry_after.unwrap_or_default())
                }
                Err(Failure::Transient(text)) => {
                    failure = LookupError::Unavailable(format!(
                        "{request}: {text} after {attempt} attempt(s)"
                    ));
                    self.backoff(attempt)
                }
                Err(Failure::Final(err)) => return Err(err),
            };
            if last {
                break;
            }
            tracing::debug!(%request, attempt, wait_ms = wait.as_millis() as u64, "provider API: retrying");
            tokio::time::sleep(wait).await;
        }
        Err(failure)
    }

    async fn once(
        &self,
        url: &Url,
        auth: &Auth<'_>,
        request: &str,
        secrets: &[String],
    ) -> Result<Attempt, Failure> {
        let (name, value) = auth.header().map_err(Failure::Final)?;
        let response = self
            .http
            .get(url.clone())
            .header(name, value)
            .header("accept", "application/json")
            .send()
            .await
            .map_err(|err| Failure::Transient(scrub(&self.error_text(err), secrets)))?;
        let status = response.status().as_u16();
        let retry_after = retry_after(response.headers());
        if status == 429 || status >= 500 {
            let body = read_limited(response, QUOTE_READ)
                .await
                .map(|(body, _)| body)
                .unwrap_or_default();
            return Ok(Attempt::Retry {
                status,
                retry_after,
                quote: quote(&body, secrets),
            });
        }
        let (body, complete) = read_limited(response, self.policy.body_limit)
            .await
            .map_err(|err| Failure::Transient(scrub(&self.error_text(err), secrets)))?;
        if !complete {
            return Err(Failure::Final(LookupError::Refused(format!(
                "{request}: the answer is larger than {} bytes",
                self.policy.body_limit
            ))));
        }
        let quote = if (200..300).contains(&status) {
            String::new()
        } else {
            quote(&body, secrets)
        };
        Ok(Attempt::Done(Answer {
            status,
            body,
            request: request.to_owned(),
            quote,
        }))
    }

    /// Full jitter: uniform in `0..=min(max_backoff, base_backoff · 2^(attempt-1))`.
    fn backoff(&self, attempt: u32) -> Duration {
        let ceiling = self
            .policy
            .base_backoff
            .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1).min(16)))
            .min(self.policy.max_backoff);
        let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        let mut random = [0u8; 8];
        if nanos == 0 || aws_lc_rs::rand::fill(&mut random).is_err() {
            return ceiling;
        }
        Duration::from_nanos(u64::from_le_bytes(random) % nanos.saturating_add(1))
    }

    /// The error and its causes, without the URL.
    fn error_text(&self, err: reqwest::Error) -> String {
        if err.is_timeout() {
            return format!("timed out after {:?}", self.policy.timeout);
        }
        crate::adapters::http::error_text(err)
    }
}

/// How much of a failed answer is read to quote from it.
const QUOTE_READ: usize = 4096;

/// Reads at most `limit` bytes; `complete` is false when the body had more.
async fn read_limited(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<(Vec<u8>, bool), reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > limit {
            body.extend_from_slice(&chunk[..limit - body.len()]);
            return Ok((body, false));
        }
        body.extend_from_slice(&chunk);
    }
    Ok((body, true))
}

/// The start of an answer as text for an error: control characters as spaces, credentials
/// scrubbed (before cutting, so no part of one survives), at most
/// [`PROVIDER_API_ERROR_QUOTE`] characters.
fn quote(body: &[u8], secrets: &[String]) -> String {
    let text: String = String::from_utf8_lossy(&body[..body.len().min(QUOTE_READ)])
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    scrub(&text, secrets)
        .trim()
        .chars()
        .take(PROVIDER_API_ERROR_QUOTE)
        .collect()
}

/// `text` with every credential replaced by `<redacted>`.
fn scrub(text: &str, secrets: &[String]) -> String {
    let mut text = text.to_owned();
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        text = text.replace(secret.as_str(), "<redacted>");
    }
    text
}

/// `Retry-After` as seconds or an HTTP date.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = DateTime::parse_from_rfc2822(value)
        .ok()?
        .with_timezone(&Utc);
    Some((at - Utc::now()).to_std().unwrap_or(Duration::ZERO))
}

fn ceil_secs(wait: Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}

/// `scheme://host[:port]/path`: never the query, never user info.
fn shown(url: &Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(port) => format!("{}://{host}:{port}{}", url.scheme(), url.path()),
        None => format!("{}://{host}{}", url.scheme(), url.path()),
    }
}

/// `base` with `segments` appended, each percent-encoded as one path segment (a `/` in a call
/// key cannot reach another path).
pub(crate) fn endpoint(base: &str, segments: &[&str]) -> Result<Url, LookupError> {
    let mut url = Url::parse(base)
        .map_err(|_| LookupError::Refused("the API base URL is not a URL".to_owned()))?;
    url.path_segments_mut()
        .map_err(|_| LookupError::Refused("the API base URL cannot take a path".to_owned()))?
        .pop_if_empty()
        .extend(segments);
    Ok(url)
}

/// The call key as the API knows it. A key that was hashed (longer than callhook keeps ids,
/// `sha256:…`; domain/ids.rs) no longer names the call: `Refused`, since no API can answer.
pub(crate) fn checked_key(call_key: &str) -> Result<&str, LookupError> {
    if call_key.starts_with("sha256:") {
        return Err(LookupError::Refused(
            "the call key was hashed (it was longer than callhook keeps): the provider's id is \
             not known, so its API cannot be asked"
                .to_owned(),
        ));
    }
    if call_key.is_empty() || call_key == "." || call_key == ".." {
        return Err(LookupError::Refused(
            "the call key is not a provider id".to_owned(),
        ));
    }
    Ok(call_key)
}

/// A provider's value in an error text: quoted, at most 64 characters.
pub(crate) fn shown_value(value: &str) -> String {
    let short: String = value.chars().take(64).collect();
    format!("{short:?}")
}

/// The end as the port carries it.
pub(crate) fn final_state(status: &str, outcome: Option<Outcome>, facts: Facts) -> FinalState {
    FinalState {
        status: status.to_owned(),
        outcome,
        started_at: facts.started_at,
        answered_at: facts.answered_at,
        ended_at: facts.ended_at,
        duration_secs: facts.duration_secs,
        hangup_cause: facts.hangup_cause,
    }
}

/// Still inside the analysis grace after `ended_at` (or no end to measure from).
pub(crate) fn analysis_pending(ended_at: Option<DateTime<Utc>>, now: DateTime<Utc>) -> bool {
    ended_at.is_none_or(|end| (now - end).num_seconds() < ANALYSIS_GRACE_SECS)
}

/// One lookup per provider whose API credentials are configured.
pub struct Lookups {
    lookups: Vec<Box<dyn CallLookup>>,
}

impl fmt::Debug for Lookups {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.providers()).finish()
    }
}

impl Lookups {
    /// From the environment (docs/configuration.md): a provider without API credentials has no
    /// lookup; malformed or partial credentials are an error naming the variable.
    pub fn from_env(env: &Env) -> Result<Lookups, ConfigError> {
        let config = ProviderApiConfig::from_env(env)?;
        Lookups::from_config(&config, RetryPolicy::from_config(&config))
    }

    /// From a configuration read already, with `policy` (tests use short timeouts).
    pub fn from_config(
        config: &ProviderApiConfig,
        policy: RetryPolicy,
    ) -> Result<Lookups, ConfigError> {
        let client = ApiClient::new(policy).map_err(|err| {
            ConfigError::invalid(
                vars::PROVIDER_API_TIMEOUT_SECS,
                format!("the HTTP client cannot be built: {err}"),
            )
        })?;
        let mut lookups: Vec<Box<dyn CallLookup>> = Vec::new();
        if let Some(api) = &config.telnyx {
            lookups.push(Box::new(TelnyxLookup::new(client.clone(), api.clone())));
        }
        if let Some(api) = &config.twilio {
            lookups.push(Box::new(TwilioLookup::new(client.clone(), api.clone())));
        }
        if let Some(api) = &config.vonage {
            lookups.push(Box::new(VonageLookup::new(client.clone(), api.clone())));
        }
        if let Some(api) = &config.plivo {
            lookups.push(Box::new(PlivoLookup::new(client.clone(), api.clone())));
        }
        if let Some(api) = &config.retell {
            lookups.push(Box::new(RetellLookup::new(client.clone(), api.clone())));
        }
        if let Some(api) = &config.elevenlabs {
            lookups.push(Box::new(ElevenlabsLookup::new(client.clone(), api.clone())));
        }
        if let Some(api) = &config.vapi {
            lookups.push(Box::new(VapiLookup::new(client.clone(), api.clone())));
        }
        if let Some(api) = &config.bird {
            lookups.push(Box::new(BirdLookup::new(client.clone(), api.clone())));
        }
        Ok(Lookups { lookups })
    }

    /// The lookup of `provider` (`twilio`, …), if its API is configured.
    pub fn get(&self, provider: &str) -> Option<&dyn CallLookup> {
        self.lookups
            .iter()
            .find(|l| l.provider() == provider)
            .map(|l| l.as_ref())
    }

    pub fn providers(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.lookups.iter().map(|l| l.provider())
    }

    pub fn is_empty(&self) -> bool {
        self.lookups.is_empty()
    }
}

impl LookupSource for Lookups {
    fn lookup_for(&self, provider: &str) -> Option<&dyn CallLookup> {
        self.get(provider)
    }
}
