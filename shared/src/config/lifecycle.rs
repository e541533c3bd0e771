//! The lifecycle function's configuration.

use super::{ConfigError, Env, vars};
use crate::limits::SQS_MAX_DELAY_SECS;

/// DISPATCH_SETTLE_SECS's default.
pub const DEFAULT_SETTLE_SECS: u64 = 5;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LifecycleConfig {
    pub calls_table: String,
    pub events_table: String,
    pub dispatch_queue_url: String,
    /// Delay on a finalization's dispatch so facts arriving just behind the terminal one are in
    /// the record it sends.
    pub settle_secs: u32,
    /// Unset: events are only marked `REVIEW`.
    pub review_table: Option<String>,
    /// The EventBridge bus applied events and record changes are published to; unset, none.
    pub analytics_bus: Option<String>,
}

impl LifecycleConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let calls_table = env.require(vars::CALLS_TABLE)?.to_owned();
        let events_table = env.require(vars::EVENTS_TABLE)?.to_owned();
        let dispatch_queue_url = env.require(vars::DISPATCH_QUEUE_URL)?.to_owned();
        let settle = env.number(vars::DISPATCH_SETTLE_SECS, DEFAULT_SETTLE_SECS)?;
        if settle > u64::from(SQS_MAX_DELAY_SECS) {
            return Err(ConfigError::invalid(
                vars::DISPATCH_SETTLE_SECS,
                "SQS delays are at most 900 seconds",
            ));
        }
        Ok(LifecycleConfig {
            calls_table,
            events_table,
            dispatch_queue_url,
            settle_secs: settle as u32,
            review_table: env.get(vars::REVIEW_TABLE).map(str::to_owned),
            analytics_bus: env.get(vars::ANALYTICS_BUS_NAME).map(str::to_owned),
        })
    }
}
