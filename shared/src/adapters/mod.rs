//! Adapters: the AWS (and HTTP) implementations of the ports, one per file.

pub mod aws;
pub mod dynamodb;
#[cfg(feature = "http")]
pub mod http;
pub mod packing;
pub mod secrets;
pub mod sqs;
