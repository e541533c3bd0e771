//! The application: each function's work over the ports, free of Lambda types.

pub mod dispatch;
pub mod events_queue;
pub mod ingest;
pub mod lifecycle;
pub mod replay;
pub mod review_intake;
pub mod stale;
pub mod sweep;
pub mod whole_calls;
