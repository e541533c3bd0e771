//! Storage traits and their DynamoDB implementations (DESIGN §6).

use std::future::Future;

use chrono::{DateTime, Utc};

use crate::providers::Headers;

pub(crate) mod attr;
pub mod calls;
pub mod events;
pub mod ledger;
pub mod memory;
pub mod pending;
pub mod review;

pub use events::DynamoEventStore;

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

/// A delivery to store: the raw bytes as received, the headers that let it be verified again,
/// and its canonical envelope (the canonical event without its payload, which the raw body
/// already holds).
#[derive(Debug, Clone)]
pub struct NewEvent<'a> {
    pub event_id: &'a str,
    pub provider: &'a str,
    pub event_type: &'a str,
    pub call_id: Option<&'a str>,
    pub raw_body: &'a [u8],
    pub headers: &'a Headers,
    pub envelope_json: &'a str,
    pub received_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// The stored copy of an event seen before.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    pub event_id: String,
    pub provider: String,
    pub status: EventStatus,
    pub raw_body: Vec<u8>,
    pub headers: Headers,
    pub received_at: DateTime<Utc>,
    /// Set when the ingest that stored it could not queue it.
    pub queue_failed: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Inserted {
    New,
    /// The dedupe condition failed: this is the copy already stored.
    Duplicate(StoredEvent),
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// Unreachable, throttled, or failing: the caller should answer "retry later".
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The stored item is not one callhook wrote.
    #[error("stored item {0} is corrupt: {1}")]
    Corrupt(String, String),
}

/// The events table: `insert_new` is the dedupe.
pub trait EventStore: Send + Sync {
    /// Writes the event unless its pk exists (one conditional write); on a duplicate returns
    /// the stored copy from the same call.
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
