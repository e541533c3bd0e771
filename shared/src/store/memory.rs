//! In-memory stores with the DynamoDB stores' semantics, for unit tests, benchmarks and
//! property tests. Integration tests use the real DynamoDB implementations on an emulator.

use std::collections::HashMap;
use std::sync::Mutex;

use super::{EventStatus, EventStore, Inserted, NewEvent, StoreError, StoredEvent};

/// Events keyed by id; `fail` makes every call answer "unavailable".
#[derive(Default)]
pub struct MemoryEventStore {
    pub events: Mutex<HashMap<String, StoredEvent>>,
    pub fail: std::sync::atomic::AtomicBool,
}

impl MemoryEventStore {
    pub fn set_status(&self, event_id: &str, status: EventStatus) {
        if let Some(e) = self.events.lock().unwrap().get_mut(event_id) {
            e.status = status;
        }
    }

    pub fn len(&self) -> usize {
        self.events.lock().unwrap().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl EventStore for MemoryEventStore {
    async fn insert_new(&self, event: &NewEvent<'_>) -> Result<Inserted, StoreError> {
        if self.fail.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(StoreError::Unavailable("injected failure".into()));
        }
        let mut events = self.events.lock().unwrap();
        if let Some(existing) = events.get(event.event_id) {
            return Ok(Inserted::Duplicate(existing.clone()));
        }
        events.insert(
            event.event_id.to_owned(),
            StoredEvent {
                event_id: event.event_id.to_owned(),
                provider: event.provider.to_owned(),
                status: EventStatus::Received,
                raw_body: event.raw_body.to_vec(),
                headers: event.headers.clone(),
                received_at: event.received_at,
                queue_failed: false,
            },
        );
        Ok(Inserted::New)
    }

    async fn mark_queue_failed(&self, event_id: &str) -> Result<(), StoreError> {
        if let Some(e) = self.events.lock().unwrap().get_mut(event_id) {
            e.queue_failed = true;
        }
        Ok(())
    }
}
