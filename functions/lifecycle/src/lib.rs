//! The lifecycle Lambda: an SQS batch of canonical events → the calls table
//! (`callhook::app::lifecycle`), in order, with partial batch failures.

use std::future::Future;
use std::time::Instant;

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use callhook::adapters::dynamodb::{DynamoCallStore, DynamoReviewStore};
use callhook::adapters::eventbridge::EventBridgeAnalytics;
use callhook::adapters::sqs::SqsQueue;
use callhook::app::events_queue;
use callhook::app::lifecycle::{Lifecycle, Processed};
use callhook::config::{ConfigError, Env, LifecycleConfig};
use callhook::domain::event::CanonicalEvent;
use callhook::observability::emf::{Metrics, Sink};
use callhook::observability::metrics;
use callhook_lambda::sqs_batch::{self, GroupHandler, Order, Record, Settled};
use chrono::{DateTime, Utc};
use lambda_runtime::{Error, LambdaEvent};

/// The review table is optional (with REVIEW_TABLE unset, events are only marked `REVIEW`), and
/// so is the analytics bus.
pub type LifecycleFunction =
    Lifecycle<DynamoCallStore, SqsQueue, Option<DynamoReviewStore>, Option<EventBridgeAnalytics>>;

pub fn build(env: &Env) -> Result<LifecycleFunction, ConfigError> {
    let config = LifecycleConfig::from_env(env)?;
    let sdk = callhook::adapters::aws::sdk_config(env)?;
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
    Ok(Lifecycle {
        calls: DynamoCallStore::new(dynamo.clone(), config.calls_table, config.events_table),
        dispatch_queue: SqsQueue::new(aws_sdk_sqs::Client::new(&sdk), config.dispatch_queue_url),
        settle_secs: config.settle_secs,
        review: config
            .review_table
            .map(|table| DynamoReviewStore::new(dynamo, table)),
        analytics: config
            .analytics_bus
            .map(|bus| EventBridgeAnalytics::new(aws_sdk_eventbridge::Client::new(&sdk), bus)),
    })
}

/// The events of one call in a batch, applied together; reports each applied event's provider,
/// when callhook took it on and when it was applied (`processing_lag`).
struct Calls<'a>(&'a LifecycleFunction);

/// When callhook took the event on: its receipt, or, for a message queued later (a replay, the
/// sweeper), when that message was queued (SQS's `SentTimestamp`). Not the provider's
/// `occurred_at`: a provider's own delay, or a fixture's years-old time, is not callhook's lag.
fn taken_on(event: &CanonicalEvent, sent_at: Option<DateTime<Utc>>) -> DateTime<Utc> {
    sent_at.map_or(event.received_at, |sent| sent.max(event.received_at))
}

impl GroupHandler for Calls<'_> {
    /// The applied event's provider, when callhook took it on, and when it was applied.
    type Report = Option<(String, DateTime<Utc>, DateTime<Utc>)>;

    async fn handle_group<'a>(&'a self, group: &'a [Record<'a>]) -> Vec<(Settled, Self::Report)> {
        let started = Instant::now();
        let retry = Settled::Retry { after_secs: None };
        let parsed: Vec<_> = group.iter().map(|r| events_queue::parse(r.body)).collect();
        let events: Vec<&CanonicalEvent> = parsed.iter().filter_map(|p| p.as_ref().ok()).collect();
        let mut results = self.0.apply_group(&events).await.into_iter();
        let mut out = Vec::with_capacity(group.len());
        for (record, parsed) in group.iter().zip(&parsed) {
            let event = match parsed {
                Ok(event) => event,
                Err(err) => {
                    tracing::warn!(message_id = record.message_id, error = %err, outcome = "failed", duration_ms = ms(started), "event not processed; SQS will retry");
                    out.push((retry, None));
                    continue;
                }
            };
            let result = results.next().expect("one result per event");
            callhook::app::lifecycle::log(record.message_id, event, &result, ms(started));
            out.push(match result {
                Ok(Processed::Applied { .. }) => (
                    Settled::Done,
                    Some((
                        event.provider.clone(),
                        taken_on(event, record.sent_at),
                        Utc::now(),
                    )),
                ),
                Ok(_) => (Settled::Done, None),
                Err(_) => (retry, None),
            });
        }
        out
    }
}

fn ms(started: Instant) -> f64 {
    started.elapsed().as_secs_f64() * 1000.0
}

/// Processes a batch, the events of each call together (one read and one write of the call for
/// them all) and different calls at once, and reports only the messages that failed. Its
/// metrics go to stdout.
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
    let (response, reports) = sqs_batch::process_groups(
        &Calls(function),
        event,
        Order::ConcurrentBy(sqs_batch::call_id_of),
        None,
    )
    .await;
    for (provider, taken_on, applied_at) in reports.into_iter().flatten().flatten() {
        metrics::record_processed(&mut metrics, &provider, taken_on, applied_at);
    }
    if let Some(analytics) = &function.analytics {
        let lost = analytics.take_lost();
        if lost > 0 {
            metrics.count(metrics::ANALYTICS_LOST, &[], lost);
        }
    }
    metrics.flush(sink);
    response
}

pub async fn handle(
    function: &LifecycleFunction,
    event: LambdaEvent<SqsEvent>,
) -> Result<SqsBatchResponse, Error> {
    Ok(process_batch(function, &event.payload).await)
}
