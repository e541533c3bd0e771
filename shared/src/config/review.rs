//! The review function's configuration: its table, and which queue each source ARN is.

use super::{ConfigError, Env, vars};

#[derive(Debug, Clone)]
pub struct ReviewConfig {
    pub review_table: String,
    pub events_table: String,
    pub sources: Sources,
}

impl ReviewConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(ReviewConfig {
            review_table: env.require(vars::REVIEW_TABLE)?.to_owned(),
            events_table: env.require(vars::EVENTS_TABLE)?.to_owned(),
            sources: Sources::from_env(env)?,
        })
    }
}

/// Source queue ARNs → labels, from the function's environment. A record from an ARN not listed
/// is still reviewed, under its queue's name.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    review_queue: Option<String>,
    dead_letters: Vec<(String, &'static str)>,
}

impl Sources {
    pub const VARS: [(&'static str, &'static str); 3] = [
        (vars::EVENTS_DLQ_ARN, "events"),
        (vars::DISPATCH_DLQ_ARN, "dispatch"),
        (vars::CALLBACK_DLQ_ARN, "callback"),
    ];

    pub fn from_env(env: &Env) -> Result<Sources, ConfigError> {
        let arn = |var: &str| -> Result<Option<String>, ConfigError> {
            match env.get(var) {
                None => Ok(None),
                Some(value) if value.starts_with("arn:") && value.contains(":sqs:") => {
                    Ok(Some(value.to_owned()))
                }
                Some(_) => Err(ConfigError::invalid(var, "not an SQS queue ARN")),
            }
        };
        let mut sources = Sources {
            review_queue: arn(vars::REVIEW_QUEUE_ARN)?,
            dead_letters: Vec::new(),
        };
        for (var, label) in Self::VARS {
            if let Some(value) = arn(var)? {
                sources.dead_letters.push((value, label));
            }
        }
        Ok(sources)
    }

    /// Where a record came from.
    pub fn source(&self, arn: Option<&str>) -> Source {
        let Some(arn) = arn else {
            return Source::DeadLetter("unknown".to_owned());
        };
        if self.review_queue.as_deref() == Some(arn) {
            return Source::ReviewQueue;
        }
        match self.dead_letters.iter().find(|(known, _)| known == arn) {
            Some((_, label)) => Source::DeadLetter((*label).to_owned()),
            // The queue's name: the last part of its ARN.
            None => Source::DeadLetter(arn.rsplit(':').next().unwrap_or(arn).to_owned()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    ReviewQueue,
    DeadLetter(String),
}
