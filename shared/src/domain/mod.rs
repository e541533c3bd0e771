//! The domain: what callhook knows about calls, independent of AWS. Nothing here does I/O or
//! imports the AWS SDK.

pub mod call;
pub mod dispatch;
pub mod event;
pub mod ids;
pub mod reason;
pub mod review;
pub mod text;
