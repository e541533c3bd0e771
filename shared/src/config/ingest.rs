//! The ingest function's configuration (besides the providers' keys, which each provider reads).

use super::{ConfigError, Env, vars};
use crate::limits::{
    DEFAULT_MAX_BODY_BYTES, LARGEST_BODY_BYTES, MAX_RESEND_AFTER_SECS, MAX_RETENTION_DAYS,
};

/// What the ingest function needs beyond the providers' keys.
#[derive(Debug, Clone)]
pub struct IngestConfig {
    pub events_table: String,
    /// Where a body too large for its item is kept.
    pub events_bucket: String,
    pub events_queue_url: String,
    pub max_body_bytes: usize,
    pub raw_retention_days: u64,
    /// A duplicate of an event still RECEIVED this long after it was stored is re-queued: its
    /// first ingest has certainly ended (the function times out sooner) without it being
    /// processed.
    pub resend_after_secs: u64,
}

pub const DEFAULT_RAW_RETENTION_DAYS: u64 = 30;
pub const DEFAULT_RESEND_AFTER_SECS: u64 = 15;

impl IngestConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let max_body_bytes = env.number(vars::MAX_BODY_BYTES, DEFAULT_MAX_BODY_BYTES)?;
        if max_body_bytes == 0 {
            return Err(ConfigError::invalid(
                vars::MAX_BODY_BYTES,
                "must be above 0",
            ));
        }
        if max_body_bytes > LARGEST_BODY_BYTES {
            return Err(ConfigError::invalid(
                vars::MAX_BODY_BYTES,
                format!(
                    "must be at most {LARGEST_BODY_BYTES}: Lambda is handed at most 6 MB, and API Gateway base64-encodes a binary body"
                ),
            ));
        }
        // Bounded above: each request adds the retention to its receipt time, and chrono
        // panics on a duration or a date it cannot hold.
        let raw_retention_days = env.bounded(
            vars::RAW_RETENTION_DAYS,
            DEFAULT_RAW_RETENTION_DAYS,
            1,
            MAX_RETENTION_DAYS,
        )?;
        Ok(IngestConfig {
            events_table: env.require(vars::EVENTS_TABLE)?.to_owned(),
            events_bucket: env.require(vars::EVENTS_BUCKET)?.to_owned(),
            events_queue_url: env.require(vars::EVENTS_QUEUE_URL)?.to_owned(),
            max_body_bytes: usize::try_from(max_body_bytes)
                .map_err(|_| ConfigError::invalid(vars::MAX_BODY_BYTES, "too large"))?,
            raw_retention_days,
            resend_after_secs: env.bounded(
                vars::RESEND_AFTER_SECS,
                DEFAULT_RESEND_AFTER_SECS,
                0,
                MAX_RESEND_AFTER_SECS,
            )?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ingest_config_names_the_bad_variable() {
        let env = Env::from_pairs([
            ("EVENTS_TABLE", "t"),
            ("EVENTS_BUCKET", "b"),
            ("EVENTS_QUEUE_URL", "q"),
        ]);
        let cfg = IngestConfig::from_env(&env).unwrap();
        assert_eq!(cfg.max_body_bytes, 4_694_016);

        let mut largest = env.clone();
        largest.set("MAX_BODY_BYTES", "4694016");
        assert!(IngestConfig::from_env(&largest).is_ok());
        largest.set("MAX_BODY_BYTES", "4694017");
        let err = IngestConfig::from_env(&largest).unwrap_err().to_string();
        assert!(err.contains("at most 4694016"), "{err}");

        let mut bad = env.clone();
        bad.set("MAX_BODY_BYTES", "lots");
        let err = IngestConfig::from_env(&bad).unwrap_err().to_string();
        assert!(err.starts_with("MAX_BODY_BYTES is invalid"), "{err}");

        let missing = Env::from_pairs([("EVENTS_TABLE", "t"), ("EVENTS_BUCKET", "b")]);
        assert_eq!(
            IngestConfig::from_env(&missing).unwrap_err().to_string(),
            "EVENTS_QUEUE_URL is not set"
        );
        let no_bucket = Env::from_pairs([("EVENTS_TABLE", "t"), ("EVENTS_QUEUE_URL", "q")]);
        assert_eq!(
            IngestConfig::from_env(&no_bucket).unwrap_err().to_string(),
            "EVENTS_BUCKET is not set"
        );
    }
}
