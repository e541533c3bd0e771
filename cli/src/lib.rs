//! The `callhook` command: local stack, test senders, fixtures and (later) operations.

pub mod calls;
pub mod dev;
pub mod emulator;
pub mod fixtures;
pub mod keys;
pub mod poller;
pub mod provision;
pub mod replay;
pub mod review;
pub mod send;
pub mod sink;
pub mod sweep;
pub mod target;
