//! Environment → typed configuration, validated at cold start: each function's config is built
//! here from the variables in [`vars`]. Errors name the variable and the problem, never the
//! value (values are often secrets).

mod dispatch;
mod ingest;
mod lifecycle;
pub mod provider_api;
mod review;
mod sweeper;
pub mod vars;

pub use dispatch::DispatchConfig;
pub use ingest::{DEFAULT_RAW_RETENTION_DAYS, DEFAULT_RESEND_AFTER_SECS, IngestConfig};
pub use lifecycle::{DEFAULT_SETTLE_SECS, LifecycleConfig};
pub use provider_api::ProviderApiConfig;
pub use review::{ReviewConfig, Source, Sources};
pub use sweeper::{DEFAULT_SWEEP_MIN_AGE_SECS, StaleConfig, SweepConfig};

use std::collections::BTreeMap;

use crate::limits::{DEV_MAX_TOLERANCE_SECS, MAX_TOLERANCE_SECS};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("{var} is not set")]
    Missing { var: String },
    #[error("{var} is invalid: {problem}")]
    Invalid { var: String, problem: String },
}

impl ConfigError {
    pub fn missing(var: &str) -> Self {
        ConfigError::Missing {
            var: var.to_owned(),
        }
    }

    pub fn invalid(var: &str, problem: impl Into<String>) -> Self {
        ConfigError::Invalid {
            var: var.to_owned(),
            problem: problem.into(),
        }
    }
}

/// A snapshot of the environment. Functions read it once at cold start; tests and the dev
/// command build one from pairs.
#[derive(Clone, Default)]
pub struct Env {
    vars: BTreeMap<String, String>,
}

/// Every name; a value only when the variable is one of [`vars::PUBLIC`], else `***`.
impl std::fmt::Debug for Env {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut map = f.debug_map();
        for (name, value) in &self.vars {
            if vars::PUBLIC.contains(&name.as_str()) {
                map.entry(name, value);
            } else {
                map.entry(name, &format_args!("***"));
            }
        }
        map.finish()
    }
}

impl Env {
    pub fn from_process() -> Self {
        Env {
            vars: std::env::vars().collect(),
        }
    }

    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Env {
            vars: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    pub fn set(&mut self, var: &str, value: impl Into<String>) {
        self.vars.insert(var.to_owned(), value.into());
    }

    /// The value, with an empty string treated as unset (SAM passes empty parameters as "").
    pub fn get(&self, var: &str) -> Option<&str> {
        self.vars
            .get(var)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
    }

    /// Every variable, in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.vars.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub fn require(&self, var: &str) -> Result<&str, ConfigError> {
        self.get(var).ok_or_else(|| ConfigError::missing(var))
    }

    /// A comma-separated list; empty entries are dropped.
    pub fn list(&self, var: &str) -> Vec<&str> {
        self.get(var)
            .map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// A non-negative integer with a default.
    pub fn number(&self, var: &str, default: u64) -> Result<u64, ConfigError> {
        match self.get(var) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| ConfigError::invalid(var, "expected a whole number")),
        }
    }

    /// A whole number within `min..=max`.
    pub fn bounded(&self, var: &str, default: u64, min: u64, max: u64) -> Result<u64, ConfigError> {
        let v = self.number(var, default)?;
        if v < min || v > max {
            return Err(ConfigError::invalid(
                var,
                format!("must be between {min} and {max}"),
            ));
        }
        Ok(v)
    }

    /// A provider's `{PROVIDER}_TOLERANCE_SECS` (`var`), defaulting per provider; at most
    /// [`MAX_TOLERANCE_SECS`] (a larger window is no replay protection), more only in dev mode.
    pub fn tolerance_secs(&self, var: &str, default: u64) -> Result<u64, ConfigError> {
        let max = if self.dev_mode()? {
            DEV_MAX_TOLERANCE_SECS
        } else {
            MAX_TOLERANCE_SECS
        };
        let secs = self.number(var, default)?;
        if secs > max {
            return Err(ConfigError::invalid(
                var,
                format!("must be at most {max} seconds"),
            ));
        }
        Ok(secs)
    }

    /// `CALLHOOK_DEV=true`: local development or tests (the public fixture keys are allowed).
    pub fn dev_mode(&self) -> Result<bool, ConfigError> {
        match self.get(vars::CALLHOOK_DEV) {
            None => Ok(false),
            Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
            Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
            Some(_) => Err(ConfigError::invalid(
                vars::CALLHOOK_DEV,
                "expected true or false",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_values_count_as_unset() {
        let env = Env::from_pairs([("A", ""), ("B", " x , ,y ")]);
        assert_eq!(env.get("A"), None);
        assert_eq!(env.list("B"), vec!["x", "y"]);
        assert_eq!(env.require("A"), Err(ConfigError::missing("A")));
    }

    #[test]
    fn debug_shows_every_name_and_only_public_values() {
        let env = Env::from_pairs([
            ("EVENTS_TABLE", "callhook-events"),
            ("TWILIO_AUTH_TOKENS", "s3cret-twilio-token"),
            (
                "CRM_WEBHOOK_URL",
                "https://crm.example/hook?token=s3cret-url",
            ),
            (
                "DISPATCH_ROUTES",
                r#"{"busy":{"http":"https://x.example/s3cret-route"}}"#,
            ),
            ("AWS_SECRET_ACCESS_KEY", "s3cret-aws"),
            ("SOMETHING_ELSE", "s3cret-unknown"),
        ]);
        let debug = format!("{env:?}");
        for name in [
            "EVENTS_TABLE",
            "callhook-events",
            "TWILIO_AUTH_TOKENS",
            "CRM_WEBHOOK_URL",
            "SOMETHING_ELSE",
            "***",
        ] {
            assert!(debug.contains(name), "{name} missing: {debug}");
        }
        assert!(!debug.contains("s3cret"), "{debug}");
    }

    #[test]
    fn tolerances_are_bounded_and_longer_only_in_dev_mode() {
        let var = "TELNYX_TOLERANCE_SECS";
        let week = Env::from_pairs([(var, "604800")]);
        assert_eq!(week.tolerance_secs(var, 300), Ok(604_800));
        for huge in ["604801", "2000000000", "18446744073709551615"] {
            let env = Env::from_pairs([(var, huge)]);
            let err = env.tolerance_secs(var, 300).unwrap_err().to_string();
            assert!(err.starts_with("TELNYX_TOLERANCE_SECS is invalid"), "{err}");
        }
        // The fixtures are signed in 2023: dev mode lets them verify for decades.
        let dev = Env::from_pairs([(var, "2000000000"), (vars::CALLHOOK_DEV, "true")]);
        assert_eq!(dev.tolerance_secs(var, 300), Ok(2_000_000_000));
        let too_much = Env::from_pairs([(var, "99999999999"), (vars::CALLHOOK_DEV, "true")]);
        assert!(too_much.tolerance_secs(var, 300).is_err());
    }
}
