//! The local stack without Docker: an AWS emulator, the tables and queues of template.yaml, dev
//! keys, the environment, API Gateway's stand-in, the queue pollers, the sweeper's schedule and
//! a CRM sink, and the readable terminal.

pub mod dotenv;
pub mod emulator;
pub mod gateway;
pub mod keys;
pub mod poller;
pub mod provision;
pub mod schedule;
pub mod sink;
pub mod state;
pub mod terminal;
