//! What callhook tells operators: structured logs and CloudWatch metrics.

pub mod emf;
pub mod logging;
pub mod metrics;
#[cfg(any(test, feature = "dev"))]
pub mod readback;

#[cfg(test)]
mod tests;
