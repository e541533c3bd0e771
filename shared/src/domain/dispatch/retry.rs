//! When a delivery is sent, retried or given up: the retry policy and the classification of an
//! HTTP attempt's result.

pub const DEFAULT_MAX_ATTEMPTS: u64 = 5;
pub const DEFAULT_TIMEOUT_SECS: u64 = 10;
pub const DEFAULT_RETRY_BASE_SECS: u64 = 30;
pub const DEFAULT_RETRY_MAX_SECS: u64 = 900;

/// When to retry and when to give up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// A retryable failure on the attempt whose ApproximateReceiveCount reaches this goes to
    /// review (DISPATCH_MAX_ATTEMPTS).
    pub max_attempts: u32,
    /// Visibility after the first failure; doubled for each further one
    /// (DISPATCH_RETRY_BASE_SECS).
    pub base_secs: u32,
    /// The longest wait between attempts (DISPATCH_RETRY_MAX_SECS).
    pub max_secs: u32,
    /// HTTP timeout (DISPATCH_TIMEOUT_SECS).
    pub timeout_secs: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: DEFAULT_MAX_ATTEMPTS as u32,
            base_secs: DEFAULT_RETRY_BASE_SECS as u32,
            max_secs: DEFAULT_RETRY_MAX_SECS as u32,
            timeout_secs: DEFAULT_TIMEOUT_SECS as u32,
        }
    }
}

impl RetryPolicy {
    /// `base × 2^(receive_count − 1)`, at most `max_secs`.
    pub fn backoff_secs(&self, receive_count: u32) -> u32 {
        let exp = receive_count.saturating_sub(1).min(30);
        let secs = u64::from(self.base_secs).saturating_mul(1u64 << exp);
        secs.min(u64::from(self.max_secs)) as u32
    }

    /// The backoff, or the receiver's `Retry-After` when that is longer (up to `max_secs`).
    pub fn retry_after(&self, receive_count: u32, asked: Option<u32>) -> u32 {
        let backoff = self.backoff_secs(receive_count);
        asked.map_or(backoff, |a| backoff.max(a.min(self.max_secs)))
    }

    pub fn exhausted(&self, receive_count: u32) -> bool {
        receive_count >= self.max_attempts
    }

    /// How long an attempt holds its ledger claim: the HTTP timeout plus a margin.
    pub fn lease_secs(&self) -> u32 {
        self.timeout_secs.saturating_add(10)
    }
}

/// What an HTTP attempt gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpResult {
    /// `body` is at most [`RESPONSE_BODY_LIMIT`] bytes; `retry_after_secs` from `Retry-After`.
    Response {
        status: u16,
        body: String,
        retry_after_secs: Option<u32>,
    },
    Timeout,
    Connect(String),
    /// Any other transport failure (reset, TLS, …).
    Transport(String),
    /// The request could not be made at all (a malformed URL): retrying cannot help.
    Invalid(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Sent,
    Retry,
    /// Give up now: review.
    Reject,
}

/// 2xx sent; 408, 429, 5xx, timeouts and transport failures retry; other statuses (3xx are
/// not followed, 4xx) and requests that cannot be made go to review.
pub fn classify(result: &HttpResult) -> Verdict {
    match result {
        HttpResult::Response { status, .. } => match status {
            200..=299 => Verdict::Sent,
            408 | 429 => Verdict::Retry,
            500.. => Verdict::Retry,
            _ => Verdict::Reject,
        },
        HttpResult::Timeout | HttpResult::Connect(_) | HttpResult::Transport(_) => Verdict::Retry,
        HttpResult::Invalid(_) => Verdict::Reject,
    }
}

pub fn describe(result: &HttpResult) -> String {
    match result {
        HttpResult::Response { status, .. } => format!("answered {status}"),
        HttpResult::Timeout => "timed out".to_owned(),
        HttpResult::Connect(e) => format!("could not connect: {e}"),
        HttpResult::Transport(e) => format!("transport error: {e}"),
        HttpResult::Invalid(e) => format!("request not possible: {e}"),
    }
}
