//! The calls table: one reconciled record per call, written with optimistic concurrency, and
//! the dispatches it still owes (its outbox).

use std::future::Future;

use super::StoreError;
use super::events::EventStatus;
use crate::domain::call::{CallRecord, Effect};

/// A call as stored: its record and the dispatches it still owes the queue.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StoredCall {
    pub record: CallRecord,
    pub outbox: Vec<Effect>,
}

/// One applied event: the new record (its `version` already the next one), the dispatches it
/// adds, and the event to mark.
#[derive(Debug, Clone)]
pub struct Commit<'a> {
    pub record: &'a CallRecord,
    /// The version read; `None` when the call did not exist.
    pub expected_version: Option<u64>,
    pub outbox: &'a [Effect],
    pub event_id: &'a str,
    pub event_status: EventStatus,
    /// This commit finalizes the call: it must not be final already.
    pub finalizing: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Committed {
    Yes,
    /// Someone else changed the call first: read it again and re-apply.
    Conflict,
}

pub trait CallStore: Send + Sync {
    fn get(
        &self,
        call_id: &str,
    ) -> impl Future<Output = Result<Option<StoredCall>, StoreError>> + Send;

    /// Writes the call and marks the event, atomically.
    fn commit(
        &self,
        commit: &Commit<'_>,
    ) -> impl Future<Output = Result<Committed, StoreError>> + Send;

    /// Forgets the outbox once its messages are queued, unless the call moved on meanwhile
    /// (then the next writer re-sends; the dispatch ledger makes that harmless).
    fn clear_outbox(
        &self,
        call_id: &str,
        version: u64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Marks an event that changes no call (review), without touching a call.
    fn mark_event(
        &self,
        event_id: &str,
        status: EventStatus,
        reason: Option<&str>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Every call, newest first by `updated_at` (operator listing; a scan).
    fn list(&self) -> impl Future<Output = Result<Vec<CallRecord>, StoreError>> + Send;
}

/// Reads a call when its dispatch is sent (consistent read).
pub trait CallReader: Send + Sync {
    fn read_call(
        &self,
        call_id: &str,
    ) -> impl Future<Output = Result<Option<CallRecord>, StoreError>> + Send;
}

impl<T: CallStore> CallReader for T {
    async fn read_call(&self, call_id: &str) -> Result<Option<CallRecord>, StoreError> {
        Ok(self.get(call_id).await?.map(|stored| stored.record))
    }
}
