//! The sweeper Lambda: on an EventBridge schedule, re-enqueue events that stayed RECEIVED past
//! SWEEP_MIN_AGE_SECS (`callhook::app::sweep`). The schedule's event is not read: every invocation
//! is one sweep as of now.

use std::time::Duration;

use callhook::adapters::dynamodb::{DynamoEventReader, DynamoReviewStore};
use callhook::adapters::sqs::SqsQueue;
use callhook::app::sweep::{SweepReport, Sweeper};
use callhook::config::{ConfigError, Env, SweepConfig};
use callhook::observability::emf::{Metrics, Sink, Unit};
use callhook::observability::metrics;
use callhook::ports::ReviewAdmin;
use callhook::providers::Providers;
use chrono::Utc;
use lambda_runtime::{Error, LambdaEvent};

/// The sweep, and the review table whose open items it counts each run (`review_open`).
pub struct SweeperFunction {
    pub sweeper: Sweeper<DynamoEventReader, SqsQueue>,
    /// REVIEW_TABLE; unset, no `review_open` gauge is written.
    pub review: Option<DynamoReviewStore>,
}

/// Everything the function needs, built once per cold start; any configuration problem is one
/// clear error naming the variable. A stored event was verified when it was received, so
/// normalizing it again needs no key: the sweeper holds none ([`Providers::normalizers`]).
pub fn build(env: &Env) -> Result<SweeperFunction, ConfigError> {
    let config = SweepConfig::from_env(env)?;
    let providers = Providers::normalizers(env)?;
    let sdk = callhook::adapters::aws::sdk_config(env)?;
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
    Ok(SweeperFunction {
        sweeper: Sweeper {
            store: DynamoEventReader::new(dynamo.clone(), config.events_table),
            queue: SqsQueue::new(aws_sdk_sqs::Client::new(&sdk), config.events_queue_url),
            providers,
            min_age: Duration::from_secs(config.min_age_secs),
        },
        review: config
            .review_table
            .map(|table| DynamoReviewStore::new(dynamo, table)),
    })
}

/// One sweep; the report is logged (one JSON line) and returned, so `cargo lambda invoke`
/// shows it. A store or queue failure fails the invocation: the next run goes over the same
/// ground. Then the open review items are counted into the `review_open` gauge (stdout, EMF).
pub async fn handle(
    function: &SweeperFunction,
    event: LambdaEvent<serde_json::Value>,
) -> Result<SweepReport, Error> {
    handle_with(function, event, &Sink::Stdout).await
}

/// [`handle`], writing the `review_open` gauge to `sink`.
pub async fn handle_with(
    function: &SweeperFunction,
    _event: LambdaEvent<serde_json::Value>,
    sink: &Sink,
) -> Result<SweepReport, Error> {
    let swept = function.sweeper.sweep(Utc::now()).await;
    // Counted even when the sweep failed: the alarm on open items must not go quiet then.
    if let Some(review) = &function.review {
        match review.count_open().await {
            Ok(open) => {
                let mut metrics = Metrics::now();
                metrics.gauge(metrics::REVIEW_OPEN, Unit::Count, &[], open as f64);
                metrics.flush(sink);
                tracing::info!(review_open = open, "review items open");
            }
            Err(err) => tracing::warn!(error = %err, "could not count open review items"),
        }
    }
    let report = swept.inspect_err(|err| {
        tracing::error!(error = %err, "sweep failed");
    })?;
    log(&report);
    Ok(report)
}

pub fn log(report: &SweepReport) {
    tracing::info!(
        cutoff = %report.cutoff.to_rfc3339(),
        scanned = report.scanned,
        requeued = report.requeued,
        skipped_not_received = report.skipped_not_received,
        skipped_unconfigured = report.skipped_unconfigured,
        skipped_unreadable = report.skipped_unreadable,
        "sweep"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> Env {
        Env::from_pairs([
            ("EVENTS_TABLE", "events"),
            ("EVENTS_QUEUE_URL", "http://127.0.0.1:1/queue/events"),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
        ])
    }

    #[test]
    fn builds_from_the_environment_with_the_default_age() {
        let function = build(&env()).unwrap();
        assert_eq!(function.sweeper.min_age, Duration::from_secs(120));
        // Every provider, normalizing only: without a single key configured.
        assert_eq!(
            function.sweeper.providers.names().count(),
            callhook::providers::supported().count()
        );
        assert!(function.review.is_none());
    }

    #[test]
    fn configuration_errors_name_the_variable() {
        let mut env = env();
        env.set("SWEEP_MIN_AGE_SECS", "10");
        let err = build(&env).err().unwrap().to_string();
        assert!(err.starts_with("SWEEP_MIN_AGE_SECS is invalid"), "{err}");
        // Keys are not the sweeper's business: it reads none (template.yaml gives it none)...
        let mut env = self::env();
        env.set("TELNYX_PUBLIC_KEYS", "not a key");
        assert!(build(&env).is_ok());
        // ...but what changes how an event normalizes is.
        env.set("STANDARD_EVENT_TYPES", "call.completed");
        let err = build(&env).err().unwrap().to_string();
        assert!(err.starts_with("STANDARD_EVENT_TYPES is invalid"), "{err}");
        let mut env = self::env();
        env.set("EVENTS_TABLE", "");
        assert_eq!(
            build(&env).err().unwrap().to_string(),
            "EVENTS_TABLE is not set"
        );
    }
}
