//! The sweeper function's configuration.

use super::{ConfigError, DEFAULT_RESEND_AFTER_SECS, Env, vars};

/// Default SWEEP_MIN_AGE_SECS: well past RESEND_AFTER_SECS (15 s) and the ingest function's
/// timeout (10 s), so an event is swept only when its first ingest has certainly ended and the
/// provider's own retries had their chance.
pub const DEFAULT_SWEEP_MIN_AGE_SECS: u64 = 120;

/// What the sweeper function needs (environment, validated at cold start).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SweepConfig {
    pub events_table: String,
    /// Where the bodies too large for their events item are.
    pub events_bucket: String,
    pub events_queue_url: String,
    pub min_age_secs: u64,
    /// The review table whose open items each run counts (`review_open`); unset, no gauge.
    pub review_table: Option<String>,
}

impl SweepConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let min_age_secs = env.number(vars::SWEEP_MIN_AGE_SECS, DEFAULT_SWEEP_MIN_AGE_SECS)?;
        let resend_after = env.number(vars::RESEND_AFTER_SECS, DEFAULT_RESEND_AFTER_SECS)?;
        if min_age_secs <= resend_after {
            return Err(ConfigError::invalid(
                vars::SWEEP_MIN_AGE_SECS,
                format!(
                    "must exceed RESEND_AFTER_SECS ({resend_after}) and the ingest function's \
                     timeout: a younger RECEIVED event may still be on its way to the queue"
                ),
            ));
        }
        Ok(SweepConfig {
            events_table: env.require(vars::EVENTS_TABLE)?.to_owned(),
            events_bucket: env.require(vars::EVENTS_BUCKET)?.to_owned(),
            events_queue_url: env.require(vars::EVENTS_QUEUE_URL)?.to_owned(),
            min_age_secs,
            review_table: env.get(vars::REVIEW_TABLE).map(str::to_owned),
        })
    }
}
