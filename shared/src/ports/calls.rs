//! The calls table: one reconciled record per call, written with optimistic concurrency, and
//! the dispatches it still owes (its outbox).

use std::future::Future;

use chrono::{DateTime, Utc};

use super::StoreError;
use super::events::EventStatus;
use crate::domain::call::{CallRecord, Effect};

/// A call as stored: its record and the dispatches it still owes the queue.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StoredCall {
    pub record: CallRecord,
    pub outbox: Vec<Effect>,
    /// The stale pass's questions to the provider's API since the call's last write.
    pub asked: Option<Asked>,
}

/// The stale pass asked about a call and got no final answer: when it may ask again, and how
/// many times it has asked. Any new event's write forgets it (the call is no longer quiet).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Asked {
    pub again_after: DateTime<Utc>,
    pub times: u32,
}

/// Where a scan of the open calls resumes: the table key and the index key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenKey {
    pub call_id: String,
    /// Epoch milliseconds: when the call's first webhook was received.
    pub opened_at: i64,
}

/// One page of the open calls.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpenPage {
    pub calls: Vec<OpenKey>,
    /// Where the next page starts; `None` when the scan is complete.
    pub next: Option<OpenKey>,
}

/// The calls not yet final, for the stale pass (a sparse index, never a table scan).
pub trait OpenCalls: Send + Sync {
    /// One page of the calls not final that were opened at or before `opened_before`.
    fn open_page(
        &self,
        opened_before: DateTime<Utc>,
        after: Option<&OpenKey>,
    ) -> impl Future<Output = Result<OpenPage, StoreError>> + Send;

    /// Remembers a question that got no final answer, unless the call was written since
    /// `version` (then it is not quiet any more, or final).
    fn note_asked(
        &self,
        call_id: &str,
        version: u64,
        asked: Asked,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
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

/// A store shared by reference (one process running the lifecycle and the stale pass).
impl<T: CallStore> CallStore for &T {
    async fn get(&self, call_id: &str) -> Result<Option<StoredCall>, StoreError> {
        (**self).get(call_id).await
    }

    async fn get_eventual(&self, call_id: &str) -> Result<Option<StoredCall>, StoreError> {
        (**self).get_eventual(call_id).await
    }

    async fn commit(&self, commit: &Commit<'_>) -> Result<Committed, StoreError> {
        (**self).commit(commit).await
    }

    async fn clear_outbox(&self, call_id: &str, version: u64) -> Result<(), StoreError> {
        (**self).clear_outbox(call_id, version).await
    }

    async fn mark_event(
        &self,
        event_id: &str,
        status: EventStatus,
        reason: Option<&str>,
    ) -> Result<(), StoreError> {
        (**self).mark_event(event_id, status, reason).await
    }

    async fn list(&self) -> Result<Vec<CallRecord>, StoreError> {
        (**self).list().await
    }
}

impl<T: OpenCalls> OpenCalls for &T {
    async fn open_page(
        &self,
        opened_before: DateTime<Utc>,
        after: Option<&OpenKey>,
    ) -> Result<OpenPage, StoreError> {
        (**self).open_page(opened_before, after).await
    }

    async fn note_asked(
        &self,
        call_id: &str,
        version: u64,
        asked: Asked,
    ) -> Result<(), StoreError> {
        (**self).note_asked(call_id, version, asked).await
    }
}
