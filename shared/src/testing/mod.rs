//! In-memory fakes of every port, with the DynamoDB and SQS adapters' semantics, for unit tests,
//! property tests and benchmarks (integration tests use the real adapters on an emulator), and
//! the fixtures tests share. Built only for tests and with the `dev` feature, never into a
//! Lambda.

#[cfg(feature = "http")]
pub mod api_cases;
mod blobs;
mod calls;
pub mod dispatch;
mod events;
pub mod fake_api;
mod ledger;
mod queue;
mod review;

pub use blobs::MemoryBlobStore;
pub use calls::MemoryCallStore;
pub use events::{MEMORY_PAGE_SIZE, MemoryEventStore};
pub use ledger::MemoryLedger;
pub use queue::MemoryQueue;
pub use review::MemoryReviewStore;
