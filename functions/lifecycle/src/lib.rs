//! The lifecycle Lambda: an SQS batch of canonical events → the calls table, with partial batch
//! failures so one poison message (or one panic) fails only itself.

use std::panic::AssertUnwindSafe;

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use callhook::config::{ConfigError, Env};
use callhook::queue::SqsQueue;
use callhook::reconcile::{Processed, Reconciler};
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
/// not race each other) and reports only the messages that failed.
pub async fn process_batch(function: &LifecycleFunction, event: &SqsEvent) -> SqsBatchResponse {
    let mut failures = Vec::new();
    for record in &event.records {
        let id = record.message_id.clone().unwrap_or_default();
        let body = record.body.as_deref().unwrap_or("");
        let outcome = AssertUnwindSafe(function.process(body))
            .catch_unwind()
            .await;
        match outcome {
            Ok(Ok(processed)) => log(&id, &processed),
            Ok(Err(err)) => {
                tracing::warn!(message_id = %id, error = %err, "event not processed; SQS will retry");
                failures.push(failure(id));
            }
            Err(_) => {
                tracing::error!(message_id = %id, "panic while processing; SQS will retry");
                failures.push(failure(id));
            }
        }
    }
    let mut response = SqsBatchResponse::default();
    response.batch_item_failures = failures;
    response
}

fn failure(id: String) -> BatchItemFailure {
    let mut failure = BatchItemFailure::default();
    failure.item_identifier = id;
    failure
}

fn log(message_id: &str, processed: &Processed) {
    match processed {
        Processed::Applied {
            call_id,
            dispatched,
        } => tracing::info!(message_id, call_id, dispatched, "applied"),
        Processed::AlreadyApplied {
            call_id,
            dispatched,
        } => tracing::info!(message_id, call_id, dispatched, "already applied"),
        Processed::Review { reason } => tracing::info!(message_id, reason, "sent to review"),
        Processed::Ignored => tracing::info!(message_id, "no call to apply to"),
    }
}

pub async fn handle(
    function: &LifecycleFunction,
    event: LambdaEvent<SqsEvent>,
) -> Result<SqsBatchResponse, Error> {
    Ok(process_batch(function, &event.payload).await)
}
