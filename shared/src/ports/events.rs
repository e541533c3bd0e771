//! The events table: the dedupe write at ingest, and what the sweeper, replay and the review
//! function read and mark.

use std::future::Future;

use chrono::{DateTime, Utc};

use super::StoreError;
use crate::delivery::{Delivery, REQUEST_URL};
use crate::providers::Headers;

/// Where a stored event is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventStatus {
    /// Stored and queued (or about to be); not yet applied by the lifecycle.
    Received,
    Processed,
    Review,
}

impl EventStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            EventStatus::Received => "RECEIVED",
            EventStatus::Processed => "PROCESSED",
            EventStatus::Review => "REVIEW",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "RECEIVED" => Some(EventStatus::Received),
            "PROCESSED" => Some(EventStatus::Processed),
            "REVIEW" => Some(EventStatus::Review),
            _ => None,
        }
    }
}

/// A delivery to store: the raw bytes as received and the headers that let it be verified (and
/// normalized) again; everything else about the event follows from them.
#[derive(Debug, Clone)]
pub struct NewEvent<'a> {
    pub event_id: &'a str,
    pub call_id: Option<&'a str>,
    pub raw_body: &'a [u8],
    pub headers: &'a Headers,
    pub received_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// The stored copy of an event.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    pub event_id: String,
    pub provider: String,
    pub status: EventStatus,
    pub raw_body: Vec<u8>,
    pub headers: Headers,
    pub received_at: DateTime<Utc>,
    /// The call it names, if it names one.
    pub call_id: Option<String>,
    /// Set when the ingest that stored it could not queue it.
    pub queue_failed: bool,
}

impl StoredEvent {
    /// The delivery as first received (its URL too, when its provider signs it): what replay,
    /// the sweeper and dispatch normalize again, and what verifies again.
    pub fn delivery(&self) -> Delivery<'_> {
        Delivery {
            headers: &self.headers,
            body: &self.raw_body,
            path_token: None,
            request_url: self.headers.get(REQUEST_URL),
            received_at: self.received_at,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Inserted {
    New,
    /// The dedupe condition failed: this is the copy already stored.
    Duplicate(StoredEvent),
}

/// The events table at ingest: `insert_new` is the dedupe.
pub trait EventStore: Send + Sync {
    /// Writes the event unless its pk exists (one conditional write); on a duplicate returns
    /// the stored copy from the same call, with its body while it is still RECEIVED (the only
    /// copy ingest may re-send; a body kept apart is not read back for any other).
    fn insert_new(
        &self,
        event: &NewEvent<'_>,
    ) -> impl Future<Output = Result<Inserted, StoreError>> + Send;

    /// Records that the event was stored but not queued, so the provider's retry re-sends it
    /// at once. Off the happy path: only called after a failed send.
    fn mark_queue_failed(
        &self,
        event_id: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// One entry of the sparse `pending` index: the table key and the index key, which together are
/// also where a scan of the index resumes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingKey {
    pub event_id: String,
    /// Epoch milliseconds: when the event was received.
    pub pending_since: i64,
}

/// One page of a scan of the index.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PendingPage {
    /// Entries on this page that passed the age filter (a page may be empty and still have a
    /// next one).
    pub keys: Vec<PendingKey>,
    /// Where the next page starts; `None` when the scan is complete.
    pub next: Option<PendingKey>,
}

/// Which stored events an operator means (replay).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventSelection {
    /// These event ids (e.g. `telnyx#0ccc…`), in this order.
    Events(Vec<String>),
    /// Every event of this call id (e.g. `telnyx#<call_session_id>`).
    Call(String),
    /// Events received at or after `since` and, when given, before `until`.
    Range {
        since: DateTime<Utc>,
        until: Option<DateTime<Utc>>,
    },
    /// Every event in this status.
    Status(EventStatus),
}

/// Reading stored events: the sweeper's pending scan, replay's selection, one event by id.
pub trait EventReader: Send + Sync {
    /// One page of the events that have been pending since `received_before` or earlier
    /// (`pending_since <= received_before`), resuming after `after`.
    fn pending_page(
        &self,
        received_before: DateTime<Utc>,
        after: Option<&PendingKey>,
    ) -> impl Future<Output = Result<PendingPage, StoreError>> + Send;

    /// The stored event, read consistently; `None` when it is gone (TTL).
    fn get_event(
        &self,
        event_id: &str,
    ) -> impl Future<Output = Result<Option<StoredEvent>, StoreError>> + Send;

    /// The ids of the selected events, oldest first (for a selection by ids: as given, without
    /// repeats). Anything but ids reads the whole table: an operator's tool.
    fn select(
        &self,
        selection: &EventSelection,
    ) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send;
}

/// Marks a stored event `REVIEW` unless it is already processed (a late copy sent for review
/// must not undo the lifecycle's work); `false` when it was not marked.
pub trait MarkForReview: Send + Sync {
    fn mark_review(
        &self,
        event_id: &str,
        reason: &str,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}
