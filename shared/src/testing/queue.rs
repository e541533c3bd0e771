//! A queue in memory.

use crate::ports::{Queue, QueueError};

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
