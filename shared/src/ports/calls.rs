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

/// A call's new record (its `version` already the next one) and the dispatches it owes. The
/// events it applied are marked afterwards ([`CallStore::mark_event`]); an event applied but
/// not marked is marked when it comes again (the record knows it applied it).
#[derive(Debug, Clone)]
pub struct Commit<'a> {
    pub record: &'a CallRecord,
    /// The version read; `None` when the call did not exist.
    pub expected_version: Option<u64>,
    pub outbox: &'a [Effect],
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
    /// The call as last written (a consistent read).
    fn get(
        &self,
        call_id: &str,
    ) -> impl Future<Output = Result<Option<StoredCall>, StoreError>> + Send;

    /// The call, possibly a moment old (half the price on DynamoDB): enough to prepare a
    /// commit, which is conditional on the version read.
    fn get_eventual(
        &self,
        call_id: &str,
    ) -> impl Future<Output = Result<Option<StoredCall>, StoreError>> + Send {
        self.get(call_id)
    }

    /// Writes the call unless another writer changed it since `expected_version` (or finalized
    /// it, when this commit finalizes).
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

    /// Marks an event: applied (`PROCESSED`) or sent to review, with its reason.
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
