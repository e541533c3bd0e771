//! callhook's integration tests: one binary (the SDK is linked once), one module per area. Each
//! test starts the emulators it needs (moto server, DynamoDB Local) on free loopback ports.

mod analytics;
mod bad_input;
mod bounds;
mod capacity;
mod config_errors;
mod conformance;
mod dispatch;
mod end_to_end;
mod fixtures;
mod ingest;
mod large_bodies;
mod lifecycle;
mod metrics;
mod pipeline;
mod reliability;
mod review;
mod review_function;
mod secrets;
mod stale;
mod sweeper;
mod template;
