//! The review Lambda: SQS batches from the review queue and every dead-letter queue → review
//! items (`callhook::review_intake`), with partial batch failures: a message whose item cannot
//! be written stays on its queue, so nothing that reaches review is lost.

use std::panic::AssertUnwindSafe;

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use callhook::config::{ConfigError, Env};
use callhook::review_intake::{Intake, Message, ReviewIntake, Sources};
use callhook::store::DynamoEventStore;
use callhook::store::review::DynamoReviewStore;
use chrono::{DateTime, Utc};
use futures::FutureExt;
use lambda_runtime::{Error, LambdaEvent};

pub type ReviewFunction = ReviewIntake<DynamoReviewStore, DynamoEventStore>;

pub fn build(env: &Env) -> Result<ReviewFunction, ConfigError> {
    let review_table = env.require("REVIEW_TABLE")?;
    let events_table = env.require("EVENTS_TABLE")?;
    let sources = Sources::from_env(env)?;
    let sdk = callhook::aws::sdk_config(env)?;
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
    Ok(ReviewIntake {
        sources,
        review: DynamoReviewStore::new(dynamo.clone(), review_table),
        events: DynamoEventStore::new(dynamo, events_table),
    })
}

/// SQS's own attributes: how often the message was received, and when it was first sent.
fn message_of(record: &SqsMessage) -> Message<'_> {
    let attribute = |name: &str| record.attributes.get(name).map(String::as_str);
    Message {
        message_id: record.message_id.as_deref().unwrap_or(""),
        body: record.body.as_deref().unwrap_or(""),
        receive_count: attribute("ApproximateReceiveCount")
            .and_then(|n| n.parse().ok())
            .unwrap_or(0),
        sent_at: attribute("SentTimestamp")
            .and_then(|ms| ms.parse::<i64>().ok())
            .and_then(DateTime::from_timestamp_millis),
    }
}

pub async fn process_batch(function: &ReviewFunction, event: &SqsEvent) -> SqsBatchResponse {
    let mut response = SqsBatchResponse::default();
    for record in &event.records {
        let message = message_of(record);
        let outcome = AssertUnwindSafe(function.take(
            record.event_source_arn.as_deref(),
            &message,
            Utc::now(),
        ))
        .catch_unwind()
        .await;
        let error = match outcome {
            Ok(Ok(intake)) => {
                let item = intake.item();
                tracing::info!(
                    message_id = message.message_id,
                    review_id = %item.pk,
                    reason = %item.reason,
                    subject_id = %item.subject_id,
                    event = matches!(intake, Intake::Event { .. }),
                    "review item written"
                );
                continue;
            }
            Ok(Err(err)) => err.to_string(),
            Err(_) => "panic".to_owned(),
        };
        tracing::warn!(message_id = message.message_id, error = %error, "review item not written; SQS will retry");
        let mut failure = BatchItemFailure::default();
        failure.item_identifier = message.message_id.to_owned();
        response.batch_item_failures.push(failure);
    }
    response
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
        let message = message_of(&event.records[0]);
        assert_eq!(message.receive_count, 6);
        assert_eq!(
            message.sent_at.unwrap().to_rfc3339(),
            "2024-01-01T00:00:00+00:00"
        );
    }
}
