//! The events table in memory, with DynamoDB's semantics (a scan reads a page, then filters).

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, Utc};

use crate::ports::{
    EventReader, EventSelection, EventStatus, EventStore, Inserted, MarkForReview, NewEvent,
    PendingKey, PendingPage, StoreError, StoredEvent,
};

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
                provider: event
                    .event_id
                    .split_once('#')
                    .map_or("", |(provider, _)| provider)
                    .to_owned(),
                status: EventStatus::Received,
                raw_body: event.raw_body.to_vec(),
                headers: event.headers.clone(),
                received_at: event.received_at,
                call_id: event.call_id.map(str::to_owned),
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

impl MarkForReview for MemoryEventStore {
    async fn mark_review(&self, event_id: &str, _reason: &str) -> Result<bool, StoreError> {
        let mut events = self.events.lock().unwrap();
        match events.get_mut(event_id) {
            Some(e) if e.status != EventStatus::Processed => {
                e.status = EventStatus::Review;
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

/// Pages of the memory store's scan: small, so tests go through pagination.
pub const MEMORY_PAGE_SIZE: usize = 3;

/// The memory store's events that are still RECEIVED, as DynamoDB's sparse index would hold
/// them (`pending_since` = the receipt time), in event id order.
impl EventReader for MemoryEventStore {
    async fn pending_page(
        &self,
        received_before: DateTime<Utc>,
        after: Option<&PendingKey>,
    ) -> Result<PendingPage, StoreError> {
        if self.fail.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(StoreError::Unavailable("injected failure".into()));
        }
        let mut pending: Vec<PendingKey> = self
            .events
            .lock()
            .unwrap()
            .values()
            .filter(|e| e.status == EventStatus::Received)
            .map(|e| PendingKey {
                event_id: e.event_id.clone(),
                pending_since: e.received_at.timestamp_millis(),
            })
            .filter(|k| after.is_none_or(|a| k.event_id > a.event_id))
            .collect();
        pending.sort_by(|a, b| a.event_id.cmp(&b.event_id));
        // Like DynamoDB: a page is a run of entries read, the filter applies after the read.
        let read: Vec<PendingKey> = pending.into_iter().take(MEMORY_PAGE_SIZE).collect();
        let next = (read.len() == MEMORY_PAGE_SIZE).then(|| read[read.len() - 1].clone());
        let cutoff = received_before.timestamp_millis();
        let keys = read
            .into_iter()
            .filter(|k| k.pending_since <= cutoff)
            .collect();
        Ok(PendingPage { keys, next })
    }

    async fn get_event(&self, event_id: &str) -> Result<Option<StoredEvent>, StoreError> {
        if self.fail.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(StoreError::Unavailable("injected failure".into()));
        }
        Ok(self.events.lock().unwrap().get(event_id).cloned())
    }

    async fn select(&self, selection: &EventSelection) -> Result<Vec<String>, StoreError> {
        if let EventSelection::Events(ids) = selection {
            let mut seen = std::collections::BTreeSet::new();
            return Ok(ids
                .iter()
                .filter(|id| seen.insert(id.as_str()))
                .cloned()
                .collect());
        }
        let mut found: Vec<(DateTime<Utc>, String)> = self
            .events
            .lock()
            .unwrap()
            .values()
            .filter(|e| match selection {
                EventSelection::Events(_) => false,
                EventSelection::Call(call_id) => e.call_id.as_deref() == Some(call_id.as_str()),
                EventSelection::Status(status) => e.status == *status,
                EventSelection::Range { since, until } => {
                    e.received_at >= *since && until.is_none_or(|u| e.received_at < u)
                }
            })
            .map(|e| (e.received_at, e.event_id.clone()))
            .collect();
        found.sort();
        Ok(found.into_iter().map(|(_, id)| id).collect())
    }
}
