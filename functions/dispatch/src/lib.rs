//! The dispatch Lambda: dispatch queue (SQS, ReportBatchItemFailures) ⇄
//! `callhook::app::dispatch`. Records of one call go one after the other, different calls at
//! once (a hanging receiver costs one timeout, not one per record); a message to retry is made
//! invisible for its backoff.

use std::future::Future;
use std::time::{Duration, Instant};

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use callhook::adapters::dynamodb::{
    DynamoCallStore, DynamoEventReader, DynamoLedger, DynamoReviewStore,
};
use callhook::adapters::http::ReqwestPoster;
use callhook::adapters::s3::S3BlobStore;
use callhook::adapters::sqs::SqsSender;
use callhook::app::dispatch::{self, Attempted, Dispatcher, Handler, QueuedDispatch};
use callhook::app::whole_calls::WholeCalls;
use callhook::config::{ConfigError, DispatchConfig, Env, vars};
use callhook::observability::emf::{Metrics, Sink};
use callhook::observability::metrics;
use callhook::providers::Providers;
use callhook_lambda::sqs_batch::{self, Order, Record, RecordHandler, Settled, Visibility};
use chrono::Utc;
use lambda_runtime::{Error, LambdaEvent};

/// Calls read whole: their large facts read back from the stored events.
pub type Calls = WholeCalls<DynamoCallStore, DynamoEventReader>;

pub type Dispatch = Dispatcher<Calls, DynamoLedger, DynamoReviewStore, ReqwestPoster, SqsSender>;

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
    let queue_url = env.require(vars::DISPATCH_QUEUE_URL)?.to_owned();
    let sdk = callhook::adapters::aws::sdk_config(env)?;
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let http = ReqwestPoster::new(Duration::from_secs(u64::from(config.policy.timeout_secs)))?;
    Ok(DispatchFunction {
        dispatcher: Dispatcher {
            routes: config.routes,
            policy: config.policy,
            signing_secret: config.signing_secret,
            // Dispatch only reads calls (and the events their large facts live in).
            calls: WholeCalls {
                calls: DynamoCallStore::new(dynamo.clone(), config.calls_table, ""),
                events: DynamoEventReader::new(dynamo.clone(), config.events_table).with_bodies(
                    S3BlobStore::new(S3BlobStore::client(&sdk), config.events_bucket),
                ),
                normalizers: Providers::normalizers(env)?,
            },
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

/// One dispatch-queue record; reports the delivery attempt it made, if any.
struct Records<'a, D> {
    dispatcher: &'a D,
}

impl<D: Handler> RecordHandler for Records<'_, D> {
    type Report = Option<Attempted>;

    async fn handle<'a>(&'a self, record: Record<'a>) -> (Settled, Option<Attempted>) {
        let started = Instant::now();
        let delivery = QueuedDispatch {
            message_id: record.message_id,
            body: record.body,
            receive_count: record.receive_count,
        };
        // The time of this record, not of the batch: records of one call wait for each other's
        // HTTP attempts, and the ledger lease and the signature's timestamp start from it.
        let (disposition, report) = self.dispatcher.handle_delivery(&delivery, Utc::now()).await;
        let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
        dispatch::log(record.message_id, &disposition, &report, duration_ms);
        let settled = match disposition.retry_after() {
            Some(after) => Settled::Retry {
                after_secs: Some(after),
            },
            None => Settled::Done,
        };
        (settled, report.attempt)
    }
}

/// Handles a batch and reports the records that must be retried; its metrics go to stdout.
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
    let records = Records {
        dispatcher: &function.dispatcher,
    };
    let visibility = Visibility {
        sqs: &function.sqs,
        queue_url: &function.queue_url,
    };
    let (response, reports) = sqs_batch::process(
        &records,
        event,
        // Messages about one call go one after the other (copies of a dispatch, or a
        // finalization and an escalation that resolve to the call's one ticket), so the later
        // one finds the ledger's answer instead of racing the first.
        Order::ConcurrentBy(sqs_batch::call_id_of),
        Some(&visibility),
    )
    .await;
    let mut metrics = Metrics::at(now);
    metrics::record_dispatch_attempts(&mut metrics, reports.iter().flatten());
    metrics.flush(sink);
    response
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
    use aws_lambda_events::sqs::SqsMessage;
    use callhook::app::dispatch::{Disposition, Report};
    use chrono::DateTime;

    /// Panics on "boom", retries "again", sends anything else.
    struct Scripted;

    impl Handler for Scripted {
        async fn handle_delivery<'a>(
            &'a self,
            delivery: &'a QueuedDispatch<'a>,
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
        let refs: Vec<&SqsMessage> = records.iter().collect();
        let groups: Vec<Vec<&str>> =
            callhook_lambda::sqs_batch::groups(&refs, sqs_batch::call_id_of)
                .iter()
                .map(|g| {
                    g.iter()
                        .map(|&i| refs[i].message_id.as_deref().unwrap())
                        .collect()
                })
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
        let sdk = callhook::adapters::aws::sdk_config(&env).unwrap();
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
    fn cold_start_names_the_bad_variable() {
        let env = Env::from_pairs([
            ("AWS_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
            ("CALLS_TABLE", "calls"),
            ("EVENTS_TABLE", "events"),
            ("EVENTS_BUCKET", "bodies"),
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
        // The spec's vector is a public fixture: dev mode only.
        assert!(
            build(&env)
                .err()
                .unwrap()
                .to_string()
                .starts_with("CRM_SIGNING_SECRET")
        );
        env.set("CALLHOOK_DEV", "true");
        assert_eq!(
            build(&env).err().unwrap().to_string(),
            "DISPATCH_QUEUE_URL is not set"
        );
        env.set("DISPATCH_QUEUE_URL", "http://127.0.0.1:9/q");
        assert!(build(&env).is_ok());
    }
}
