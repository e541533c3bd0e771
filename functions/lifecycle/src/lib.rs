//! The lifecycle Lambda: an SQS batch of canonical events → the calls table, with partial batch
//! failures so one poison message (or one panic) fails only itself.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::Instant;

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use callhook::config::{ConfigError, Env};
use callhook::metrics::{self, Metrics, Sink};
use callhook::model::CanonicalEvent;
use callhook::queue::SqsQueue;
use callhook::reconcile::{self, Processed, Reconciler};
use callhook::store::calls::DynamoCallStore;
use callhook::store::review::DynamoReviewStore;
use futures::FutureExt;
use lambda_runtime::{Error, LambdaEvent};

/// The review table is optional: with REVIEW_TABLE unset, events are only marked `REVIEW`.
pub type LifecycleFunction = Reconciler<DynamoCallStore, SqsQueue, Option<DynamoReviewStore>>;

pub const DEFAULT_SETTLE_SECS: u64 = 5;

pub fn build(env: &Env) -> Result<LifecycleFunction, ConfigError> {
    let calls_table = env.require("CALLS_TABLE")?;
    let events_table = env.require("EVENTS_TABLE")?;
    let dispatch_queue = env.require("DISPATCH_QUEUE_URL")?;
    let settle = env.number("DISPATCH_SETTLE_SECS", DEFAULT_SETTLE_SECS)?;
    if settle > 900 {
        return Err(ConfigError::invalid(
            "DISPATCH_SETTLE_SECS",
            "SQS delays are at most 900 seconds",
        ));
    }
    let review_table = env.get("REVIEW_TABLE");
    let sdk = callhook::aws::sdk_config(env)?;
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
    Ok(Reconciler {
        calls: DynamoCallStore::new(dynamo.clone(), calls_table, events_table),
        dispatch_queue: SqsQueue::new(aws_sdk_sqs::Client::new(&sdk), dispatch_queue),
        settle_secs: settle as u32,
        review: review_table.map(|table| DynamoReviewStore::new(dynamo, table)),
    })
}

/// Processes a batch in order (events of one call often share a batch, and in order they do
/// not race each other) and reports only the messages that failed. Its metrics go to stdout.
///
/// Not an `async fn` of its own: one more layer of future would pass the compiler's layout
/// depth limit (the SDK futures are deep).
pub fn process_batch<'a>(
    function: &'a LifecycleFunction,
    event: &'a SqsEvent,
) -> impl Future<Output = SqsBatchResponse> + Send + 'a {
    static STDOUT: Sink = Sink::Stdout;
    process_batch_with(function, event, &STDOUT)
}

/// [`process_batch`], writing the batch's metrics (`processing_lag` of each event applied) to
/// `sink`.
pub async fn process_batch_with(
    function: &LifecycleFunction,
    event: &SqsEvent,
    sink: &Sink,
) -> SqsBatchResponse {
    let mut metrics = Metrics::now();
    let mut failures = Vec::new();
    for record in &event.records {
        let started = Instant::now();
        let id = record.message_id.clone().unwrap_or_default();
        let body = record.body.as_deref().unwrap_or("");
        let event = match reconcile::parse(body) {
            Ok(event) => event,
            Err(err) => {
                tracing::warn!(message_id = %id, error = %err, outcome = "failed", duration_ms = ms(started), "event not processed; SQS will retry");
                failures.push(failure(id));
                continue;
            }
        };
        let outcome = AssertUnwindSafe(function.apply(&event))
            .catch_unwind()
            .await;
        match outcome {
            Ok(Ok(processed)) => {
                if let Processed::Applied { .. } = processed {
                    metrics::record_applied(&mut metrics, &event);
                }
                log(&id, &event, &processed, started);
            }
            Ok(Err(err)) => {
                tracing::warn!(
                    message_id = %id,
                    event_id = %event.event_id,
                    provider = %event.provider,
                    call_id = event.call_id.as_deref().unwrap_or(""),
                    outcome = "failed",
                    error = %err,
                    duration_ms = ms(started),
                    "event not processed; SQS will retry"
                );
                failures.push(failure(id));
            }
            Err(_) => {
                tracing::error!(
                    message_id = %id,
                    event_id = %event.event_id,
                    provider = %event.provider,
                    call_id = event.call_id.as_deref().unwrap_or(""),
                    outcome = "panicked",
                    duration_ms = ms(started),
                    "panic while processing; SQS will retry"
                );
                failures.push(failure(id));
            }
        }
    }
    metrics.flush(sink);
    let mut response = SqsBatchResponse::default();
    response.batch_item_failures = failures;
    response
}

fn ms(started: Instant) -> f64 {
    started.elapsed().as_secs_f64() * 1000.0
}

fn failure(id: String) -> BatchItemFailure {
    let mut failure = BatchItemFailure::default();
    failure.item_identifier = id;
    failure
}

/// One line per event: message, event, provider, call, outcome, duration.
fn log(message_id: &str, event: &CanonicalEvent, processed: &Processed, started: Instant) {
    let event_id = event.event_id.as_str();
    let provider = event.provider.as_str();
    let call_id = event.call_id.as_deref().unwrap_or("");
    let outcome = processed.as_str();
    let duration_ms = ms(started);
    match processed {
        Processed::Applied { dispatched, .. } => tracing::info!(
            message_id,
            event_id,
            provider,
            call_id,
            outcome,
            dispatched,
            duration_ms,
            "applied"
        ),
        Processed::AlreadyApplied { dispatched, .. } => tracing::info!(
            message_id,
            event_id,
            provider,
            call_id,
            outcome,
            dispatched,
            duration_ms,
            "already applied"
        ),
        Processed::Review { reason } => tracing::info!(
            message_id,
            event_id,
            provider,
            call_id,
            outcome,
            reason,
            duration_ms,
            "sent to review"
        ),
        Processed::Ignored => tracing::info!(
            message_id,
            event_id,
            provider,
            call_id,
            outcome,
            duration_ms,
            "no call to apply to"
        ),
    }
}

pub async fn handle(
    function: &LifecycleFunction,
    event: LambdaEvent<SqsEvent>,
) -> Result<SqsBatchResponse, Error> {
    Ok(process_batch(function, &event.payload).await)
}
