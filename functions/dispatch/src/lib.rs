//! The dispatch Lambda: dispatch queue (SQS, ReportBatchItemFailures) ⇄ `callhook::dispatch`.
//!
//! Records of a batch are handled concurrently (a hanging receiver costs one timeout, not one
//! per record); each one's result is its own: a message to retry is made invisible for its
//! backoff (ChangeMessageVisibility) and reported as a batch item failure, a panic fails only
//! its record. What to do with a message is decided in `callhook::dispatch`; this crate only
//! supplies HTTP (reqwest) and SQS.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use callhook::config::{ConfigError, Env};
use callhook::dispatch::{
    Attempted, CallReader, Delivery, DispatchConfig, Dispatcher, Disposition, HttpPoster,
    HttpResult, QueueSender, Report,
};
use callhook::metrics::{self, Metrics, Sink};
use callhook::queue::{Queue, QueueError, SqsQueue};
use callhook::store::calls::DynamoCallStore;
use callhook::store::ledger::{DynamoLedger, Ledger};
use callhook::store::review::{DynamoReviewStore, RESPONSE_BODY_LIMIT, ReviewStore};
use chrono::{DateTime, Utc};
use futures::FutureExt;
use lambda_runtime::{Error, LambdaEvent};

pub type Dispatch =
    Dispatcher<DynamoCallStore, DynamoLedger, DynamoReviewStore, ReqwestPoster, SqsSender>;

/// Decides what becomes of one message (the [`Dispatcher`]; tests substitute their own), and
/// reports what the logs and metrics need.
pub trait Handler: Send + Sync {
    fn handle_delivery<'a>(
        &'a self,
        delivery: &'a Delivery<'a>,
        now: DateTime<Utc>,
    ) -> impl Future<Output = (Disposition, Report)> + Send + 'a;
}

impl<C, L, R, H, Q> Handler for Dispatcher<C, L, R, H, Q>
where
    C: CallReader,
    L: Ledger,
    R: ReviewStore,
    H: HttpPoster,
    Q: QueueSender,
{
    fn handle_delivery<'a>(
        &'a self,
        delivery: &'a Delivery<'a>,
        now: DateTime<Utc>,
    ) -> impl Future<Output = (Disposition, Report)> + Send + 'a {
        self.handle_reporting(delivery, now)
    }
}

pub struct DispatchFunction<D = Dispatch> {
    pub dispatcher: D,
    /// For ChangeMessageVisibility on the dispatch queue.
    pub sqs: aws_sdk_sqs::Client,
    pub queue_url: String,
}

/// Everything the function needs, built once per cold start; any configuration problem is one
/// error naming the variable.
pub fn build(env: &Env) -> Result<DispatchFunction, ConfigError> {
    let config = DispatchConfig::from_env(env)?;
    let queue_url = env.require("DISPATCH_QUEUE_URL")?.to_owned();
    let sdk = callhook::aws::sdk_config(env)?;
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let http = ReqwestPoster::new(Duration::from_secs(u64::from(config.policy.timeout_secs)))?;
    Ok(DispatchFunction {
        dispatcher: Dispatcher {
            routes: config.routes,
            policy: config.policy,
            signing_secret: config.signing_secret,
            // Dispatch only reads calls; the events table is the lifecycle's.
            calls: DynamoCallStore::new(dynamo.clone(), config.calls_table, ""),
            ledger: DynamoLedger::new(dynamo.clone(), config.ledger_table),
            review: config
                .review_table
                .map(|table| DynamoReviewStore::new(dynamo.clone(), table)),
            http,
            queues: SqsSender(sqs.clone()),
        },
        sqs,
        queue_url,
    })
}

// ------------------------------------------------------------------------------------------------
// HTTP and SQS

/// POSTs with reqwest: one timeout for the whole exchange, redirects not followed (a redirected
/// POST would be re-sent as a GET), at most [`RESPONSE_BODY_LIMIT`] bytes of a failure's body
/// read. Error texts never include the URL (it may carry a token).
#[derive(Clone)]
pub struct ReqwestPoster {
    client: reqwest::Client,
}

impl ReqwestPoster {
    pub fn new(timeout: Duration) -> Result<Self, ConfigError> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("callhook-dispatch/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ConfigError::invalid("DISPATCH_TIMEOUT_SECS", e.to_string()))?;
        Ok(ReqwestPoster { client })
    }
}

/// The error and its causes, without the URL.
fn error_text(err: reqwest::Error) -> String {
    let err = err.without_url();
    let mut text = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

async fn read_limited(mut response: reqwest::Response, limit: usize) -> String {
    let mut bytes = Vec::new();
    while bytes.len() < limit {
        match response.chunk().await {
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
            // End of body, or it failed or timed out: the status is what matters.
            Ok(None) | Err(_) => break,
        }
    }
    bytes.truncate(limit);
    String::from_utf8_lossy(&bytes).into_owned()
}

impl HttpPoster for ReqwestPoster {
    async fn post(
        &self,
        url: &str,
        headers: &[(&'static str, String)],
        body: Vec<u8>,
    ) -> HttpResult {
        let mut request = self.client.post(url).body(body);
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                let retry_after_secs = response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u32>().ok());
                let body = if response.status().is_success() {
                    String::new()
                } else {
                    read_limited(response, RESPONSE_BODY_LIMIT).await
                };
                HttpResult::Response {
                    status,
                    body,
                    retry_after_secs,
                }
            }
            Err(err) if err.is_timeout() => HttpResult::Timeout,
            Err(err) if err.is_connect() => HttpResult::Connect(error_text(err)),
            Err(err) if err.is_builder() => HttpResult::Invalid(error_text(err)),
            Err(err) => HttpResult::Transport(error_text(err)),
        }
    }
}

/// Sends to any queue URL a route names.
#[derive(Clone)]
pub struct SqsSender(pub aws_sdk_sqs::Client);

impl QueueSender for SqsSender {
    async fn send_to(&self, queue_url: &str, body: String) -> Result<(), QueueError> {
        SqsQueue::new(self.0.clone(), queue_url).send(body, 0).await
    }
}

// ------------------------------------------------------------------------------------------------
// The batch

/// SQS's ApproximateReceiveCount (1 when absent).
pub fn receive_count(message: &SqsMessage) -> u32 {
    message
        .attributes
        .get("ApproximateReceiveCount")
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
}

fn failure(id: String) -> BatchItemFailure {
    let mut failure = BatchItemFailure::default();
    failure.item_identifier = id;
    failure
}

/// The `outcome` logged for a disposition.
pub fn outcome(disposition: &Disposition) -> &'static str {
    match disposition {
        Disposition::Sent { .. } => "sent",
        Disposition::AlreadySent { .. } => "already_sent",
        Disposition::Dropped { .. } => "dropped",
        Disposition::Reviewed { .. } => "reviewed",
        Disposition::Retry { .. } => "retry",
    }
}

/// One line per message: message, dispatch, provider, call, outcome, the destination of an
/// attempt made, duration.
fn log(message_id: &str, disposition: &Disposition, report: &Report, started: Instant) {
    let provider = report.provider.as_deref().unwrap_or("");
    let call_id = report.call_id.as_deref().unwrap_or("");
    let destination = report.attempt.map_or("", |a| a.route);
    let outcome = outcome(disposition);
    let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
    match disposition {
        Disposition::Sent {
            dispatch_id,
            route,
            status_code,
        } => tracing::info!(
            message_id,
            dispatch_id,
            provider,
            call_id,
            outcome,
            route = route.as_str(),
            destination,
            status_code,
            duration_ms,
            "dispatched"
        ),
        Disposition::AlreadySent { dispatch_id } => tracing::info!(
            message_id,
            dispatch_id,
            provider,
            call_id,
            outcome,
            duration_ms,
            "already sent; nothing to do"
        ),
        Disposition::Dropped { dispatch_id, route } => tracing::info!(
            message_id,
            dispatch_id,
            provider,
            call_id,
            outcome,
            route = route.as_str(),
            duration_ms,
            "dropped by route"
        ),
        Disposition::Reviewed {
            subject_id,
            reason,
            detail,
        } => tracing::warn!(
            message_id,
            dispatch_id = subject_id,
            provider,
            call_id,
            outcome,
            destination,
            reason,
            detail,
            duration_ms,
            "sent to review"
        ),
        Disposition::Retry { after_secs, detail } => tracing::warn!(
            message_id,
            provider,
            call_id,
            outcome,
            destination,
            after_secs,
            detail,
            duration_ms,
            "dispatch will be retried"
        ),
    }
}

/// The batch's metrics: `dispatch_attempts` / `dispatch_failures` of each attempt made.
pub fn record_attempts<'a>(
    metrics: &mut Metrics,
    attempts: impl IntoIterator<Item = &'a Option<Attempted>>,
) {
    for attempt in attempts.into_iter().flatten() {
        metrics::record_dispatch_attempt(metrics, attempt.route, attempt.failed);
    }
}

impl<D: Handler> DispatchFunction<D> {
    /// One record: `Some(failure)` when it must stay on the queue, and the attempt it made.
    async fn process(
        &self,
        message: &SqsMessage,
        now: DateTime<Utc>,
    ) -> (Option<BatchItemFailure>, Option<Attempted>) {
        let started = Instant::now();
        let id = message.message_id.clone().unwrap_or_default();
        let delivery = Delivery {
            message_id: &id,
            body: message.body.as_deref().unwrap_or(""),
            receive_count: receive_count(message),
        };
        let outcome = AssertUnwindSafe(self.dispatcher.handle_delivery(&delivery, now))
            .catch_unwind()
            .await;
        match outcome {
            Ok((disposition, report)) => {
                log(&id, &disposition, &report, started);
                let Some(after) = disposition.retry_after() else {
                    return (None, report.attempt);
                };
                if let Some(receipt) = message.receipt_handle.as_deref() {
                    self.hide(receipt, after).await;
                }
                (Some(failure(id)), report.attempt)
            }
            Err(_) => {
                tracing::error!(
                    message_id = %id,
                    outcome = "panicked",
                    duration_ms = started.elapsed().as_secs_f64() * 1000.0,
                    "panic while dispatching; SQS will retry"
                );
                (Some(failure(id)), None)
            }
        }
    }

    /// Makes a message to retry invisible for its backoff. If that fails, the queue's own
    /// visibility timeout applies instead.
    async fn hide(&self, receipt_handle: &str, secs: u32) {
        let result = self
            .sqs
            .change_message_visibility()
            .queue_url(&self.queue_url)
            .receipt_handle(receipt_handle)
            .visibility_timeout(secs.min(43_200) as i32)
            .send()
            .await;
        if let Err(err) = result {
            tracing::warn!(
                error = %aws_sdk_sqs::error::DisplayErrorContext(&err),
                "ChangeMessageVisibility failed; the queue's visibility timeout applies"
            );
        }
    }
}

/// Handles every record of the batch concurrently and reports those that must be retried.
/// Its metrics go to stdout.
///
/// Not an `async fn` of its own: one more layer of future would pass the compiler's layout
/// depth limit (the SDK futures are deep).
pub fn process_batch<'a, D: Handler>(
    function: &'a DispatchFunction<D>,
    event: &'a SqsEvent,
) -> impl Future<Output = SqsBatchResponse> + Send + 'a {
    static STDOUT: Sink = Sink::Stdout;
    process_batch_with(function, event, &STDOUT)
}

/// [`process_batch`], writing the batch's metrics to `sink`.
pub async fn process_batch_with<D: Handler>(
    function: &DispatchFunction<D>,
    event: &SqsEvent,
    sink: &Sink,
) -> SqsBatchResponse {
    let now = Utc::now();
    // Messages about one call in one batch go one after the other: copies of a dispatch (the
    // outbox re-sent, a replay), or a finalization and an escalation that both resolve to the
    // call's `#escalated` dispatch once the record is read. The later one then finds the
    // ledger's answer instead of racing the first for the lease (and being retried for
    // nothing). Different calls run at once.
    let groups = same_call_groups(&event.records);
    let results: Vec<_> = futures::future::join_all(groups.iter().map(|group| async move {
        let mut results = Vec::with_capacity(group.len());
        for message in group {
            results.push(function.process(message, now).await);
        }
        results
    }))
    .await
    .into_iter()
    .flatten()
    .collect();
    let mut metrics = Metrics::at(now);
    record_attempts(&mut metrics, results.iter().map(|(_, attempt)| attempt));
    metrics.flush(sink);
    let mut response = SqsBatchResponse::default();
    response.batch_item_failures = results.into_iter().filter_map(|(f, _)| f).collect();
    response
}

/// The batch's records grouped by the call they name (a record naming none is a group of its
/// own), in the order they came.
fn same_call_groups(records: &[SqsMessage]) -> Vec<Vec<&SqsMessage>> {
    let mut groups: Vec<(Option<String>, Vec<&SqsMessage>)> = Vec::new();
    for record in records {
        let key = record
            .body
            .as_deref()
            .and_then(|body| serde_json::from_str::<serde_json::Value>(body).ok())
            .and_then(|v| v.get("call_id")?.as_str().map(str::to_owned));
        match groups.iter_mut().find(|(k, _)| key.is_some() && *k == key) {
            Some((_, group)) => group.push(record),
            None => groups.push((key, vec![record])),
        }
    }
    groups.into_iter().map(|(_, group)| group).collect()
}

pub async fn handle<D: Handler>(
    function: &DispatchFunction<D>,
    event: LambdaEvent<SqsEvent>,
) -> Result<SqsBatchResponse, Error> {
    Ok(process_batch(function, &event.payload).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Panics on "boom", retries "again", sends anything else.
    struct Scripted;

    impl Handler for Scripted {
        async fn handle_delivery<'a>(
            &'a self,
            delivery: &'a Delivery<'a>,
            _now: DateTime<Utc>,
        ) -> (Disposition, Report) {
            let attempt = |failed| Report {
                attempt: Some(Attempted {
                    route: "crm",
                    failed,
                }),
                ..Report::default()
            };
            match delivery.body {
                "boom" => panic!("scripted panic"),
                "again" => (
                    Disposition::Retry {
                        after_secs: 30,
                        detail: "scripted".into(),
                    },
                    attempt(true),
                ),
                _ => (
                    Disposition::AlreadySent {
                        dispatch_id: delivery.message_id.to_owned(),
                    },
                    attempt(false),
                ),
            }
        }
    }

    #[test]
    fn messages_of_one_call_are_grouped_and_others_stay_apart() {
        let records = [
            message(
                "1",
                r#"{"call_id":"c1","dispatch_id":"c1#completed"}"#,
                None,
            ),
            message(
                "2",
                r#"{"call_id":"c2","dispatch_id":"c2#completed"}"#,
                None,
            ),
            message(
                "3",
                r#"{"call_id":"c1","dispatch_id":"c1#escalated"}"#,
                None,
            ),
            message("4", "not json", None),
            message("5", "not json", None),
        ];
        let groups: Vec<Vec<&str>> = same_call_groups(&records)
            .iter()
            .map(|g| g.iter().map(|m| m.message_id.as_deref().unwrap()).collect())
            .collect();
        assert_eq!(groups, [vec!["1", "3"], vec!["2"], vec!["4"], vec!["5"]]);
    }

    fn message(id: &str, body: &str, count: Option<&str>) -> SqsMessage {
        let mut m = SqsMessage::default();
        m.message_id = Some(id.to_owned());
        m.body = Some(body.to_owned());
        if let Some(count) = count {
            m.attributes
                .insert("ApproximateReceiveCount".into(), count.into());
        }
        m
    }

    fn function() -> DispatchFunction<Scripted> {
        let env = Env::from_pairs([
            ("AWS_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:9"),
        ]);
        let sdk = callhook::aws::sdk_config(&env).unwrap();
        DispatchFunction {
            dispatcher: Scripted,
            sqs: aws_sdk_sqs::Client::new(&sdk),
            queue_url: "http://127.0.0.1:9/000000000000/dispatch".into(),
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_panic_or_a_retry_fails_only_its_own_record() {
        let mut event = SqsEvent::default();
        event.records = vec![
            message("ok-1", "fine", Some("1")),
            message("panics", "boom", Some("1")),
            message("retries", "again", Some("2")),
            message("ok-2", "fine", None),
        ];
        let sink = Sink::memory();
        let response = process_batch_with(&function(), &event, &sink).await;
        assert_eq!(sink.lines().len(), 1, "one EMF line for the batch");
        assert_eq!(sink.sum("dispatch_attempts", &[("route", "crm")]), 3.0);
        assert_eq!(sink.sum("dispatch_failures", &[("route", "crm")]), 1.0);
        let failed: Vec<&str> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        assert_eq!(failed, ["panics", "retries"]);
        let json = serde_json::to_value(&response).unwrap();
        assert_eq!(json["batchItemFailures"][0]["itemIdentifier"], "panics");
    }

    #[test]
    fn receive_counts() {
        assert_eq!(receive_count(&message("a", "", Some("3"))), 3);
        assert_eq!(receive_count(&message("a", "", None)), 1);
        assert_eq!(receive_count(&message("a", "", Some("x"))), 1);
    }

    #[test]
    fn cold_start_names_the_bad_variable() {
        let env = Env::from_pairs([
            ("AWS_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
            ("CALLS_TABLE", "calls"),
            ("LEDGER_TABLE", "ledger"),
            ("CRM_WEBHOOK_URL", "https://crm.example/hook"),
        ]);
        let err = build(&env).err().unwrap().to_string();
        assert!(err.starts_with("CRM_SIGNING_SECRET"), "{err}");
        let mut env = env;
        env.set(
            "CRM_SIGNING_SECRET",
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        );
        assert_eq!(
            build(&env).err().unwrap().to_string(),
            "DISPATCH_QUEUE_URL is not set"
        );
        env.set("DISPATCH_QUEUE_URL", "http://127.0.0.1:9/q");
        assert!(build(&env).is_ok());
    }
}
