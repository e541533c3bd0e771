//! callhook: verify voice-provider webhooks on their raw bytes, store each event exactly once,
//! queue it, and reconcile each call's events into one record. All logic lives here; the Lambda
//! functions in `functions/` are thin entry points. The layout is described in
//! docs/architecture.md: `domain` (no I/O, no AWS) ← `app` (each function's work over `ports`)
//! ← `adapters` (DynamoDB, SQS, HTTP); `providers` and `signing` verify and normalize;
//! `config` reads the environment; `testing` holds the in-memory fakes.

pub mod adapters;
pub mod app;
pub mod config;
pub mod delivery;
pub mod domain;
pub mod limits;
pub mod observability;
pub mod ports;
pub mod providers;
pub mod signing;
#[cfg(any(test, feature = "dev"))]
pub mod testing;
