//! The sweeper function's configuration.

use super::{ConfigError, DEFAULT_RESEND_AFTER_SECS, Env, vars};
use crate::domain::call::stale::StalePolicy;

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
    /// The stale pass; `None` when CALLS_TABLE is unset (then only lost sends are swept).
    pub stale: Option<StaleConfig>,
}

/// The stale pass: calls whose final webhook never came.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaleConfig {
    pub calls_table: String,
    pub policy: StalePolicy,
    pub max_lookups: u32,
    /// No provider API question is started after this long into a pass.
    pub budget: std::time::Duration,
}

/// The stale pass's time budget: the template gives the sweeper 180 s, and one question takes
/// at most PROVIDER_API_ATTEMPTS × PROVIDER_API_TIMEOUT_SECS plus backoff (40 s by default).
pub const STALE_PASS_BUDGET_SECS: u64 = 120;

pub const DEFAULT_STALE_AFTER_SECS: u64 = 4 * 3600;
pub const DEFAULT_STALE_GIVE_UP_SECS: u64 = 24 * 3600;
pub const DEFAULT_STALE_MAX_LOOKUPS: u64 = 50;

impl StaleConfig {
    pub fn from_env(env: &Env, calls_table: &str) -> Result<Self, ConfigError> {
        // Calls shorter than ten minutes are common, longer than a week are not calls.
        let after = env.bounded(
            vars::STALE_AFTER_SECS,
            DEFAULT_STALE_AFTER_SECS,
            600,
            7 * 86_400,
        )?;
        let give_up = env.bounded(
            vars::STALE_GIVE_UP_SECS,
            DEFAULT_STALE_GIVE_UP_SECS,
            600,
            30 * 86_400,
        )?;
        if give_up <= after {
            return Err(ConfigError::invalid(
                vars::STALE_GIVE_UP_SECS,
                format!("must exceed STALE_AFTER_SECS ({after}): the API is asked in between"),
            ));
        }
        let max_lookups = env.bounded(
            vars::STALE_MAX_LOOKUPS,
            DEFAULT_STALE_MAX_LOOKUPS,
            1,
            10_000,
        )?;
        let secs = |s: u64| chrono::Duration::seconds(s as i64);
        Ok(StaleConfig {
            calls_table: calls_table.to_owned(),
            policy: StalePolicy {
                after: secs(after),
                give_up: secs(give_up),
                ..StalePolicy::default()
            },
            max_lookups: max_lookups as u32,
            budget: std::time::Duration::from_secs(STALE_PASS_BUDGET_SECS),
        })
    }
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
            stale: env
                .get(vars::CALLS_TABLE)
                .map(|table| StaleConfig::from_env(env, table))
                .transpose()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Env {
        let mut env = Env::from_pairs([
            ("EVENTS_TABLE", "e"),
            ("EVENTS_QUEUE_URL", "q"),
            ("EVENTS_BUCKET", "b"),
        ]);
        for (k, v) in pairs {
            env.set(k, *v);
        }
        env
    }

    #[test]
    fn the_stale_pass_runs_where_the_calls_table_is_named() {
        assert_eq!(SweepConfig::from_env(&env(&[])).unwrap().stale, None);
        let stale = SweepConfig::from_env(&env(&[("CALLS_TABLE", "c")]))
            .unwrap()
            .stale
            .unwrap();
        assert_eq!(stale.policy.after, chrono::Duration::hours(4));
        assert_eq!(stale.policy.give_up, chrono::Duration::hours(24));
        assert_eq!(stale.max_lookups, 50);
    }

    #[test]
    fn stale_settings_are_bounded_and_ordered() {
        let err = |pairs: &[(&str, &str)]| {
            let mut all = vec![("CALLS_TABLE", "c")];
            all.extend_from_slice(pairs);
            SweepConfig::from_env(&env(&all)).err().unwrap().to_string()
        };
        assert!(err(&[("STALE_AFTER_SECS", "60")]).starts_with("STALE_AFTER_SECS"));
        assert!(err(&[("STALE_GIVE_UP_SECS", "99999999999")]).starts_with("STALE_GIVE_UP_SECS"));
        assert!(
            err(&[("STALE_AFTER_SECS", "7200"), ("STALE_GIVE_UP_SECS", "3600")])
                .contains("must exceed STALE_AFTER_SECS")
        );
        assert!(err(&[("STALE_MAX_LOOKUPS", "0")]).starts_with("STALE_MAX_LOOKUPS"));
    }
}
