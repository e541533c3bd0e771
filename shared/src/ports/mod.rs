//! Ports: every trait the application needs from storage, queues and HTTP, in one place. The AWS
//! implementations are in `adapters`, the in-memory ones in `testing`.

mod analytics;
mod blobs;
mod call_lookup;
mod calls;
mod events;
mod http;
mod ledger;
mod queue;
mod review;

pub use analytics::{Analytics, NoAnalytics, Publication};
pub use blobs::{BlobFuture, BlobStore};
pub use call_lookup::{CallLookup, FinalState, Lookup, LookupError, LookupSource};
pub use calls::{
    Asked, CallReader, CallStore, Commit, Committed, OpenCalls, OpenKey, OpenPage, StoredCall,
};
pub use events::{
    EventReader, EventSelection, EventStatus, EventStore, Inserted, MarkForReview, NewEvent,
    PendingKey, PendingPage, StoredEvent,
};
pub use http::HttpPoster;
pub use ledger::{Begun, Failure, Ledger, LedgerEntry, LedgerStatus};
pub use queue::{Queue, QueueError, QueueSender};
pub use review::{NoReview, ReviewAdmin, ReviewStore};

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// Unreachable, throttled, or failing: the caller should answer "retry later".
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The stored item is not one callhook wrote.
    #[error("stored item {0} is corrupt: {1}")]
    Corrupt(String, String),
    /// The item would pass the store's item size limit.
    #[error("{0} is too large to store")]
    TooLarge(String),
}
