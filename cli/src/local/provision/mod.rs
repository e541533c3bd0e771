//! Local provisioning read from `template.yaml`.
//!
//! `callhook dev` must give the functions the same tables, queues and buckets that SAM deploys,
//! without a second hand-written list. This module reads the template's `AWS::DynamoDB::Table`,
//! `AWS::SQS::Queue` and `AWS::S3::Bucket` resources ([`plan_from_template`], pure), creates
//! them on an emulator ([`apply`], idempotent) and computes the environment a function would get from the template
//! ([`function_env`]).
//!
//! CloudFormation intrinsics are read in both spellings: the YAML short tags (`!Ref X`,
//! `!GetAtt X.Arn`, `!Sub ...`, which `serde_norway` parses as [`Value::Tagged`]) and the long
//! form (`{Ref: X}`, `{"Fn::GetAtt": [X, Arn]}`, `{"Fn::Sub": ...}`). Anything the local
//! emulator cannot honour faithfully (FIFO queues, local secondary indexes, INCLUDE projections,
//! conditions in key schemas, ...) is an error that names the resource, never a silent
//! approximation.

mod apply;
mod function_env;
mod template;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

pub use apply::{apply, bucket_name};
pub use function_env::function_env;
pub use template::plan_from_template;

/// Region used in the fake ARNs [`function_env`] produces (moto's default).
pub const LOCAL_REGION: &str = "us-east-1";
/// Account id used in the fake ARNs [`function_env`] produces (moto's default account).
pub const LOCAL_ACCOUNT_ID: &str = "123456789012";

/// What the template declares, reduced to what a local emulator needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// In template order.
    pub tables: Vec<TableSpec>,
    /// In template order (see [`apply`] for creation order).
    pub queues: Vec<QueueSpec>,
    /// In template order.
    pub buckets: Vec<BucketSpec>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSpec {
    pub logical_id: String,
    /// Hash (partition) key attribute name.
    pub key: String,
    /// Range (sort) key attribute name, if the table has one.
    pub range_key: Option<String>,
    /// AttributeDefinitions: (name, type) with type S, N or B.
    pub attributes: Vec<(String, String)>,
    pub gsis: Vec<GsiSpec>,
    /// Set when TimeToLiveSpecification is enabled.
    pub ttl_attribute: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GsiSpec {
    pub name: String,
    pub hash_key: String,
    pub range_key: Option<String>,
    /// KEYS_ONLY or ALL.
    pub projection: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueSpec {
    pub logical_id: String,
    pub visibility_timeout: Option<i32>,
    /// (logical id of the dead-letter queue, maxReceiveCount).
    pub dead_letter: Option<(String, i32)>,
}

/// An S3 bucket: what the emulator is told to enforce, as the template declares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketSpec {
    pub logical_id: String,
    /// The default encryption's SSEAlgorithm (`AES256`, `aws:kms`).
    pub encryption: Option<String>,
    /// BlockPublicAcls, IgnorePublicAcls, BlockPublicPolicy, RestrictPublicBuckets.
    pub public_access_block: Option<[bool; 4]>,
    /// OwnershipControls' ObjectOwnership (e.g. `BucketOwnerEnforced`).
    pub object_ownership: Option<String>,
    /// Lifecycle rules: (id, enabled, expiration in days). A `!Ref` to a parameter is read as
    /// the parameter's Default.
    pub expirations: Vec<(Option<String>, bool, i32)>,
}

/// What [`apply`] created (or found), by logical id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Provisioned {
    /// logical id → table name.
    pub tables: BTreeMap<String, String>,
    /// logical id → queue URL.
    pub queues: BTreeMap<String, String>,
    /// logical id → bucket name.
    pub buckets: BTreeMap<String, String>,
}
