//! Queues: the events and dispatch queues a function sends to, and any queue a route names.

use std::future::Future;

#[derive(Debug, Clone, thiserror::Error)]
#[error("queue unavailable: {0}")]
pub struct QueueError(pub String);

/// One queue.
pub trait Queue: Send + Sync {
    /// Sends one message, visible after `delay_secs` (0–900).
    fn send(
        &self,
        body: String,
        delay_secs: u32,
    ) -> impl Future<Output = Result<(), QueueError>> + Send;
}

/// Any queue, by URL (a dispatch route's call-back queue).
pub trait QueueSender: Send + Sync {
    fn send_to(
        &self,
        queue_url: &str,
        body: String,
    ) -> impl Future<Output = Result<(), QueueError>> + Send;
}

impl<T: Queue> Queue for &T {
    async fn send(&self, body: String, delay_secs: u32) -> Result<(), QueueError> {
        (**self).send(body, delay_secs).await
    }
}
