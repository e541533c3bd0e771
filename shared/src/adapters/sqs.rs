//! SQS: the events and dispatch queues, and any queue a dispatch route names.

use crate::adapters::aws::sdk_error_text;
use aws_sdk_sqs::Client;

use crate::limits::SQS_MAX_DELAY_SECS;
use crate::ports::{Queue, QueueError, QueueSender};

#[derive(Clone)]
pub struct SqsQueue {
    client: Client,
    url: String,
}

impl SqsQueue {
    pub fn new(client: Client, url: impl Into<String>) -> Self {
        SqsQueue {
            client,
            url: url.into(),
        }
    }
}

impl Queue for SqsQueue {
    async fn send(&self, body: String, delay_secs: u32) -> Result<(), QueueError> {
        let mut request = self
            .client
            .send_message()
            .queue_url(&self.url)
            .message_body(body);
        if delay_secs > 0 {
            request = request.delay_seconds(delay_secs.min(SQS_MAX_DELAY_SECS) as i32);
        }
        request
            .send()
            .await
            .map(|_| ())
            .map_err(|err| QueueError(sdk_error_text("SendMessage", &err)))
    }
}

/// Sends to any queue URL a route names.
#[derive(Clone)]
pub struct SqsSender(pub Client);

impl QueueSender for SqsSender {
    async fn send_to(&self, queue_url: &str, body: String) -> Result<(), QueueError> {
        SqsQueue::new(self.0.clone(), queue_url).send(body, 0).await
    }
}
