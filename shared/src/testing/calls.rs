//! The calls table in memory, with the DynamoDB store's conditions.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::domain::call::CallRecord;
use chrono::{DateTime, Utc};

use crate::ports::{
    Asked, CallStore, Commit, Committed, EventStatus, OpenCalls, OpenKey, OpenPage, StoreError,
    StoredCall,
};

/// Calls in memory with the DynamoDB store's conditions, for unit and property tests.
#[derive(Default)]
pub struct MemoryCallStore {
    pub calls: Mutex<HashMap<String, StoredCall>>,
    pub events: Mutex<HashMap<String, (EventStatus, Option<String>)>>,
    /// Commits that wrote (for tests counting writes).
    pub commits: AtomicUsize,
}

impl OpenCalls for MemoryCallStore {
    async fn open_page(
        &self,
        opened_before: DateTime<Utc>,
        _after: Option<&OpenKey>,
    ) -> Result<OpenPage, StoreError> {
        let mut calls: Vec<OpenKey> = self
            .calls
            .lock()
            .unwrap()
            .values()
            .filter(|c| !c.record.is_final())
            .map(|c| OpenKey {
                call_id: c.record.call_id.clone(),
                opened_at: c
                    .record
                    .first_received_at
                    .or(c.record.last_occurred_at)
                    .map_or(0, |t| t.timestamp_millis()),
            })
            .filter(|k| k.opened_at <= opened_before.timestamp_millis())
            .collect();
        calls.sort_by(|a, b| a.call_id.cmp(&b.call_id));
        Ok(OpenPage { calls, next: None })
    }

    async fn note_asked(
        &self,
        call_id: &str,
        version: u64,
        asked: Asked,
    ) -> Result<(), StoreError> {
        if let Some(c) = self.calls.lock().unwrap().get_mut(call_id)
            && c.record.version == version
            && c.record.finalized_at.is_none()
        {
            c.asked = Some(asked);
        }
        Ok(())
    }
}

impl CallStore for MemoryCallStore {
    async fn get(&self, call_id: &str) -> Result<Option<StoredCall>, StoreError> {
        Ok(self.calls.lock().unwrap().get(call_id).cloned())
    }

    async fn commit(&self, commit: &Commit<'_>) -> Result<Committed, StoreError> {
        let mut calls = self.calls.lock().unwrap();
        let current = calls.get(&commit.record.call_id);
        let version_ok = match (current, commit.expected_version) {
            (None, None) => true,
            (Some(c), Some(v)) => c.record.version == v,
            _ => false,
        };
        let finalize_ok =
            !commit.finalizing || current.is_none_or(|c| c.record.finalized_at.is_none());
        if !(version_ok && finalize_ok) {
            return Ok(Committed::Conflict);
        }
        self.commits.fetch_add(1, Ordering::SeqCst);
        calls.insert(
            commit.record.call_id.clone(),
            StoredCall {
                record: commit.record.clone(),
                outbox: commit.outbox.to_vec(),
                asked: None,
            },
        );
        Ok(Committed::Yes)
    }

    async fn clear_outbox(&self, call_id: &str, version: u64) -> Result<(), StoreError> {
        if let Some(c) = self.calls.lock().unwrap().get_mut(call_id)
            && c.record.version == version
        {
            c.outbox.clear();
        }
        Ok(())
    }

    async fn mark_event(
        &self,
        event_id: &str,
        status: EventStatus,
        reason: Option<&str>,
    ) -> Result<(), StoreError> {
        self.events
            .lock()
            .unwrap()
            .insert(event_id.to_owned(), (status, reason.map(str::to_owned)));
        Ok(())
    }

    async fn list(&self) -> Result<Vec<CallRecord>, StoreError> {
        Ok(self
            .calls
            .lock()
            .unwrap()
            .values()
            .map(|c| c.record.clone())
            .collect())
    }
}
