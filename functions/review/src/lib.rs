//! The review Lambda: SQS batches from the review queue and every dead-letter queue → review
//! items (`callhook::app::review_intake`), with partial batch failures: a message whose item
//! cannot be written stays on its queue, so nothing that reaches review is lost.

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use callhook::adapters::dynamodb::{DynamoEventStore, DynamoReviewStore};
use callhook::app::review_intake::{Intake, Message, ReviewIntake};
use callhook::config::{ConfigError, Env, ReviewConfig};
use callhook_lambda::sqs_batch::{self, Order, Record, RecordHandler, Settled};
use chrono::Utc;
use lambda_runtime::{Error, LambdaEvent};

pub type ReviewFunction = ReviewIntake<DynamoReviewStore, DynamoEventStore>;

pub fn build(env: &Env) -> Result<ReviewFunction, ConfigError> {
    let config = ReviewConfig::from_env(env)?;
    let sdk = callhook::adapters::aws::sdk_config(env)?;
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
    Ok(ReviewIntake {
        sources: config.sources,
        review: DynamoReviewStore::new(dynamo.clone(), config.review_table),
        events: DynamoEventStore::new(dynamo, config.events_table),
    })
}

/// SQS's own attributes: how often the message was received, and when it was first sent.
fn message_of<'a>(record: &Record<'a>) -> Message<'a> {
    Message {
        message_id: record.message_id,
        body: record.body,
        receive_count: record.receive_count,
        sent_at: record.sent_at,
    }
}

struct Records<'a>(&'a ReviewFunction);

impl RecordHandler for Records<'_> {
    type Report = ();

    async fn handle<'a>(&'a self, record: Record<'a>) -> (Settled, ()) {
        let message = message_of(&record);
        let source = record.message.event_source_arn.as_deref();
        match self.0.take(source, &message, Utc::now()).await {
            Ok(intake) => {
                let item = intake.item();
                tracing::info!(
                    message_id = message.message_id,
                    review_id = %item.pk,
                    reason = %item.reason,
                    subject_id = %item.subject_id,
                    event = matches!(intake, Intake::Event { .. }),
                    "review item written"
                );
                (Settled::Done, ())
            }
            Err(error) => {
                tracing::warn!(message_id = message.message_id, %error, "review item not written; SQS will retry");
                (Settled::Retry { after_secs: None }, ())
            }
        }
    }
}

pub async fn process_batch(function: &ReviewFunction, event: &SqsEvent) -> SqsBatchResponse {
    sqs_batch::process(&Records(function), event, Order::InOrder, None)
        .await
        .0
}

pub async fn handle(
    function: &ReviewFunction,
    event: LambdaEvent<SqsEvent>,
) -> Result<SqsBatchResponse, Error> {
    Ok(process_batch(function, &event.payload).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> Env {
        Env::from_pairs([
            ("REVIEW_TABLE", "review"),
            ("EVENTS_TABLE", "events"),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
        ])
    }

    #[test]
    fn configuration_errors_name_the_variable() {
        assert!(build(&env()).is_ok());
        for var in ["REVIEW_TABLE", "EVENTS_TABLE"] {
            let mut env = env();
            env.set(var, "");
            assert_eq!(
                build(&env).err().unwrap().to_string(),
                format!("{var} is not set")
            );
        }
        let mut env = env();
        env.set("DISPATCH_DLQ_ARN", "https://sqs/queue");
        assert_eq!(
            build(&env).err().unwrap().to_string(),
            "DISPATCH_DLQ_ARN is invalid: not an SQS queue ARN"
        );
    }

    #[test]
    fn sqs_attributes_give_the_receive_count_and_sent_time() {
        let event: SqsEvent = serde_json::from_str(include_str!(
            "../../../events/review/dead-letter-events.json"
        ))
        .unwrap();
        let message = message_of(&Record::of(&event.records[0]));
        assert_eq!(message.receive_count, 6);
        assert_eq!(
            message.sent_at.unwrap().to_rfc3339(),
            "2024-01-01T00:00:00+00:00"
        );
    }
}
