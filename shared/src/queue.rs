//! Queues (DESIGN §6): the `Queue` trait and its SQS implementation.

use std::future::Future;

use aws_sdk_sqs::Client;
use aws_sdk_sqs::error::SdkError;

#[derive(Debug, Clone, thiserror::Error)]
#[error("queue unavailable: {0}")]
pub struct QueueError(pub String);

pub trait Queue: Send + Sync {
    /// Sends one message, visible after `delay_secs` (0–900).
    fn send(
        &self,
        body: String,
        delay_secs: u32,
    ) -> impl Future<Output = Result<(), QueueError>> + Send;
}

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
            request = request.delay_seconds(delay_secs.min(900) as i32);
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

/// Messages kept in memory; `fail` makes every send answer "unavailable".
#[derive(Default)]
pub struct MemoryQueue {
    pub messages: std::sync::Mutex<Vec<String>>,
    /// The delay each message was sent with, in send order.
    pub delays: std::sync::Mutex<Vec<u32>>,
    pub fail: std::sync::atomic::AtomicBool,
}

impl MemoryQueue {
    pub fn taken(&self) -> Vec<String> {
        std::mem::take(&mut self.messages.lock().unwrap())
    }
}

impl Queue for MemoryQueue {
    async fn send(&self, body: String, delay_secs: u32) -> Result<(), QueueError> {
        if self.fail.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(QueueError("injected failure".into()));
        }
        self.delays.lock().unwrap().push(delay_secs);
        self.messages.lock().unwrap().push(body);
        Ok(())
    }
}
