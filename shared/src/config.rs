//! Environment → typed configuration, validated at cold start (DESIGN §9). Errors name the
//! variable and the problem, never the value (values are often secrets).

use std::collections::BTreeMap;

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
#[derive(Debug, Clone, Default)]
pub struct Env {
    vars: BTreeMap<String, String>,
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

    /// `{PROVIDER}_TOLERANCE_SECS`, defaulting per provider.
    pub fn tolerance_secs(&self, provider: &str, default: u64) -> Result<u64, ConfigError> {
        self.number(
            &format!("{}_TOLERANCE_SECS", provider.to_ascii_uppercase()),
            default,
        )
    }
}

/// What the ingest function needs beyond the providers' keys.
#[derive(Debug, Clone)]
pub struct IngestConfig {
    pub events_table: String,
    pub events_queue_url: String,
    pub max_body_bytes: usize,
    pub raw_retention_days: u64,
    /// A duplicate of an event still RECEIVED this long after it was stored is re-queued: its
    /// first ingest has certainly ended (the function times out sooner) without it being
    /// processed.
    pub resend_after_secs: u64,
}

pub const DEFAULT_MAX_BODY_BYTES: u64 = 256 * 1024;
/// The largest body that still fits one events-table item beside its envelope and headers.
pub const MAX_STORABLE_BODY_BYTES: u64 = 384 * 1024;
pub const DEFAULT_RAW_RETENTION_DAYS: u64 = 30;
pub const DEFAULT_RESEND_AFTER_SECS: u64 = 15;

impl IngestConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let max_body_bytes = env.number("MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES)?;
        if max_body_bytes == 0 {
            return Err(ConfigError::invalid("MAX_BODY_BYTES", "must be above 0"));
        }
        if max_body_bytes > MAX_STORABLE_BODY_BYTES {
            return Err(ConfigError::invalid(
                "MAX_BODY_BYTES",
                format!(
                    "must be at most {MAX_STORABLE_BODY_BYTES}: the raw body is kept in one DynamoDB item (400 KB)"
                ),
            ));
        }
        let raw_retention_days = env.number("RAW_RETENTION_DAYS", DEFAULT_RAW_RETENTION_DAYS)?;
        if raw_retention_days == 0 {
            return Err(ConfigError::invalid(
                "RAW_RETENTION_DAYS",
                "must be above 0",
            ));
        }
        Ok(IngestConfig {
            events_table: env.require("EVENTS_TABLE")?.to_owned(),
            events_queue_url: env.require("EVENTS_QUEUE_URL")?.to_owned(),
            max_body_bytes: usize::try_from(max_body_bytes)
                .map_err(|_| ConfigError::invalid("MAX_BODY_BYTES", "too large"))?,
            raw_retention_days,
            resend_after_secs: env.number("RESEND_AFTER_SECS", DEFAULT_RESEND_AFTER_SECS)?,
        })
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
    fn ingest_config_names_the_bad_variable() {
        let env = Env::from_pairs([("EVENTS_TABLE", "t"), ("EVENTS_QUEUE_URL", "q")]);
        let cfg = IngestConfig::from_env(&env).unwrap();
        assert_eq!(cfg.max_body_bytes, 256 * 1024);

        let mut bad = env.clone();
        bad.set("MAX_BODY_BYTES", "lots");
        let err = IngestConfig::from_env(&bad).unwrap_err().to_string();
        assert!(err.starts_with("MAX_BODY_BYTES is invalid"), "{err}");

        let missing = Env::from_pairs([("EVENTS_TABLE", "t")]);
        assert_eq!(
            IngestConfig::from_env(&missing).unwrap_err().to_string(),
            "EVENTS_QUEUE_URL is not set"
        );
    }
}
