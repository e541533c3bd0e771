//! The sweeper Lambda, on an EventBridge schedule: re-enqueue events that stayed RECEIVED past
//! SWEEP_MIN_AGE_SECS (`callhook::app::sweep`), then, where CALLS_TABLE is set, the stale pass
//! over calls whose final webhook never came (`callhook::app::stale`). The schedule's event is
//! not read: every invocation is one run as of now.

use std::time::Duration;

use callhook::adapters::dynamodb::{DynamoCallStore, DynamoEventReader, DynamoReviewStore};
use callhook::adapters::provider_api::Lookups;
use callhook::adapters::s3::S3BlobStore;
use callhook::adapters::sqs::SqsQueue;
use callhook::app::stale::{StalePass, StaleReport};
use callhook::app::sweep::{SweepReport, Sweeper};
use callhook::config::{ConfigError, Env, SweepConfig};
use callhook::observability::emf::{Metrics, Sink, Unit};
use callhook::observability::metrics;
use callhook::ports::ReviewAdmin;
use callhook::providers::Providers;
use chrono::Utc;
use lambda_runtime::{Error, LambdaEvent};
use serde::{Deserialize, Serialize};

pub type Stale = StalePass<DynamoCallStore, Lookups, SqsQueue, Option<DynamoReviewStore>>;

/// The sweep, the stale pass, and the review table whose open items each run counts
/// (`review_open`).
pub struct SweeperFunction {
    pub sweeper: Sweeper<DynamoEventReader, SqsQueue>,
    /// CALLS_TABLE; unset, no stale pass.
    pub stale: Option<Stale>,
    /// REVIEW_TABLE; unset, no `review_open` gauge is written.
    pub review: Option<DynamoReviewStore>,
}

/// What one run did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunReport {
    #[serde(flatten)]
    pub sweep: SweepReport,
    /// `None` when the stale pass is not configured here.
    pub stale: Option<StaleReport>,
}

/// Everything the function needs, built once per cold start; any configuration problem is one
/// clear error naming the variable. A stored event was verified when it was received, so
/// normalizing it again needs no key: the sweeper holds none ([`Providers::normalizers`]).
pub fn build(env: &Env) -> Result<SweeperFunction, ConfigError> {
    let config = SweepConfig::from_env(env)?;
    let providers = Providers::normalizers(env)?;
    let sdk = callhook::adapters::aws::sdk_config(env)?;
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let review = config
        .review_table
        .map(|table| DynamoReviewStore::new(dynamo.clone(), table));
    // Only where the stale pass runs: the provider APIs with credentials configured (their
    // HTTP client and settings are nothing the lost-send sweep needs or may fail on).
    let stale = match config.stale {
        None => None,
        Some(stale) => Some(StalePass {
            calls: DynamoCallStore::new(dynamo.clone(), stale.calls_table, ""),
            lookups: Lookups::from_env(env)?,
            queue: SqsQueue::new(sqs.clone(), config.events_queue_url.clone()),
            review: review.clone(),
            policy: stale.policy,
            max_lookups: stale.max_lookups,
            budget: stale.budget,
        }),
    };
    Ok(SweeperFunction {
        sweeper: Sweeper {
            store: DynamoEventReader::new(dynamo, config.events_table).with_bodies(
                S3BlobStore::new(S3BlobStore::client(&sdk), config.events_bucket),
            ),
            queue: SqsQueue::new(sqs, config.events_queue_url),
            providers,
            min_age: Duration::from_secs(config.min_age_secs),
        },
        stale,
        review,
    })
}

/// One sweep; the report is logged (one JSON line) and returned, so `cargo lambda invoke`
/// shows it. A store or queue failure fails the invocation: the next run goes over the same
/// ground. Then the open review items are counted into the `review_open` gauge (stdout, EMF).
pub async fn handle(
    function: &SweeperFunction,
    event: LambdaEvent<serde_json::Value>,
) -> Result<RunReport, Error> {
    handle_with(function, event, &Sink::Stdout).await
}

/// [`handle`], writing the `review_open`, `stale_calls` and `backfill_results` metrics to
/// `sink`. Each pass runs whatever the other did: a failing one must not starve the other.
pub async fn handle_with(
    function: &SweeperFunction,
    _event: LambdaEvent<serde_json::Value>,
    sink: &Sink,
) -> Result<RunReport, Error> {
    let now = Utc::now();
    let swept = function.sweeper.sweep(now).await;
    let stale = match &function.stale {
        Some(pass) => Some(pass.run(now).await),
        None => None,
    };
    let mut metrics = Metrics::now();
    if let Some(Ok(report)) = &stale {
        metrics::record_stale(&mut metrics, report);
        log_stale(report);
    }
    // Counted even when a pass failed: the alarm on open items must not go quiet then.
    if let Some(review) = &function.review {
        match review.count_open().await {
            Ok(open) => {
                metrics.gauge(metrics::REVIEW_OPEN, Unit::Count, &[], open as f64);
                tracing::info!(review_open = open, "review items open");
            }
            Err(err) => tracing::warn!(error = %err, "could not count open review items"),
        }
    }
    metrics.flush(sink);
    let sweep = swept.inspect_err(|err| {
        tracing::error!(error = %err, "sweep failed");
    })?;
    log(&sweep);
    let stale = stale
        .transpose()
        .inspect_err(|err| tracing::error!(error = %err, "stale pass failed"))?;
    Ok(RunReport { sweep, stale })
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

pub fn log_stale(report: &StaleReport) {
    tracing::info!(
        open_scanned = report.open_scanned,
        stale = report.stale,
        asked = report.asked,
        backfilled = report.backfilled,
        still_alive = report.still_alive,
        not_found = report.not_found,
        errors = report.errors,
        capped = report.capped,
        gave_up = report.gave_up,
        "stale pass"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> Env {
        Env::from_pairs([
            ("EVENTS_TABLE", "events"),
            ("EVENTS_BUCKET", "bodies"),
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
        assert!(function.stale.is_none(), "no CALLS_TABLE, no stale pass");
        let mut with_calls = env();
        with_calls.set("CALLS_TABLE", "calls");
        let stale = build(&with_calls).unwrap().stale.unwrap();
        assert_eq!(stale.policy.after, chrono::Duration::hours(4));
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
