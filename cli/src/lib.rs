//! The `callhook` command: the local stack, test senders, fixtures and operations on a local or
//! deployed stack.

pub mod commands;
pub mod local;
pub mod target;
pub mod terminal;
