//! The `callhook` command: the local stack, test senders, fixtures, operations on a local or
//! deployed stack, and the operator's console.

pub mod commands;
pub mod console;
pub mod local;
pub mod target;
pub mod terminal;
