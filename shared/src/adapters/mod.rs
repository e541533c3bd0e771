//! Adapters: the AWS (and HTTP) implementations of the ports, one per file.

pub mod aws;
pub mod bodies;
pub mod dynamodb;
pub mod eventbridge;
#[cfg(feature = "http")]
pub mod http;
pub mod packing;
#[cfg(feature = "http")]
pub mod provider_api;
pub mod s3;
pub mod secrets;
pub mod sqs;
