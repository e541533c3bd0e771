//! SQS: the events and dispatch queues, and any queue a dispatch route names.

use aws_sdk_sqs::Client;
use aws_sdk_sqs::error::SdkError;

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

    pub fn url(&self) -> &str {
        &self.url
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
        request.send().await.map(|_| ()).map_err(|err| {
            QueueError(match &err {
                SdkError::ServiceError(e) => format!("SendMessage: {}", e.err()),
                SdkError::TimeoutError(_) => "SendMessage: timed out".into(),
                SdkError::DispatchFailure(_) => "SendMessage: could not connect".into(),
                other => format!("SendMessage: {other}"),
            })
        })
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
