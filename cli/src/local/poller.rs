//! A local stand-in for Lambda's SQS event source mapping: receive a batch, hand it to the
//! function's batch handler as an `SqsEvent`, delete what succeeded, leave the reported
//! failures to become visible again (and to the queue's redrive policy, after maxReceiveCount).

use std::future::Future;

use anyhow::Result;
use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::MessageSystemAttributeName;
use serde_json::json;

/// Receives one batch (up to `batch_size`, long-polling up to `wait_secs`), runs `handler` on
/// it and deletes the messages it did not report as failed. Returns how many it received.
pub async fn poll_once<F, Fut>(
    sqs: &Client,
    queue_url: &str,
    batch_size: i32,
    wait_secs: i32,
    handler: F,
) -> Result<usize>
where
    F: FnOnce(SqsEvent) -> Fut,
    Fut: Future<Output = SqsBatchResponse>,
{
    let received = sqs
        .receive_message()
        .queue_url(queue_url)
        .max_number_of_messages(batch_size)
        .wait_time_seconds(wait_secs)
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .send()
        .await?;
    let messages = received.messages();
    if messages.is_empty() {
        return Ok(0);
    }
    let records: Vec<_> = messages
        .iter()
        .map(|m| {
            let attributes: serde_json::Map<String, serde_json::Value> = m
                .attributes()
                .map(|a| {
                    a.iter()
                        .map(|(k, v)| (k.as_str().to_owned(), json!(v)))
                        .collect()
                })
                .unwrap_or_default();
            json!({
                "messageId": m.message_id(),
                "receiptHandle": m.receipt_handle(),
                "body": m.body(),
                "md5OfBody": m.md5_of_body(),
                "attributes": attributes,
                "messageAttributes": {},
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn(queue_url),
                "awsRegion": crate::local::emulator::REGION,
            })
        })
        .collect();
    let event: SqsEvent = serde_json::from_value(json!({ "Records": records }))?;
    let response = handler(event).await;
    let failed: Vec<&str> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    for m in messages {
        if failed.contains(&m.message_id().unwrap_or_default()) {
            continue;
        }
        if let Some(handle) = m.receipt_handle() {
            sqs.delete_message()
                .queue_url(queue_url)
                .receipt_handle(handle)
                .send()
                .await?;
        }
    }
    Ok(messages.len())
}

/// A plausible ARN for a local queue URL (`…/{account}/{name}`).
pub fn queue_arn(queue_url: &str) -> String {
    let mut parts = queue_url.rsplit('/');
    let name = parts.next().unwrap_or_default();
    let account = parts.next().unwrap_or("123456789012");
    format!(
        "arn:aws:sqs:{}:{account}:{name}",
        crate::local::emulator::REGION
    )
}
