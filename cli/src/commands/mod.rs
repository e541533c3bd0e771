//! One module per `callhook` subcommand.

pub mod calls;
pub mod dev;
pub mod fixtures;
pub mod replay;
pub mod review;
pub mod send;
pub mod sweep;
