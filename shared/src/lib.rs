//! callhook: verify voice-provider webhooks on their raw bytes, store each event exactly once,
//! queue it, and reconcile each call's events into one record. All logic lives here; the Lambda
//! functions in `functions/` are thin adapters.

pub mod aws;
pub mod config;
pub mod dispatch;
pub mod ingest;
pub mod lifecycle;
pub mod logging;
pub mod metrics;
pub mod model;
pub mod providers;
pub mod queue;
pub mod reconcile;
pub mod replay;
pub mod review_intake;
pub mod standard_webhooks;
pub mod store;
pub mod sweep;
pub mod verify;
