//! AWS SDK configuration for the functions: read from the environment exactly as Lambda provides
//! it (region and the execution role's session credentials), so a cold start never waits on the
//! instance metadata service or a profile file.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;

use crate::config::{ConfigError, Env, vars};
use crate::ports::StoreError;

/// SDK settings for a function. `AWS_ENDPOINT_URL` points every client at an emulator.
///
/// Retries stay short: the provider retries a 503 itself (and its retry is deduped), so an
/// ingest that waits long on a struggling table only holds the provider's connection open.
pub fn sdk_config(env: &Env) -> Result<SdkConfig, ConfigError> {
    let region = env
        .get(vars::AWS_REGION)
        .or_else(|| env.get(vars::AWS_DEFAULT_REGION))
        .ok_or_else(|| ConfigError::missing(vars::AWS_REGION))?;
    let mut builder = SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region.to_owned()))
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            env.require(vars::AWS_ACCESS_KEY_ID)?,
            env.require(vars::AWS_SECRET_ACCESS_KEY)?,
            env.get(vars::AWS_SESSION_TOKEN).map(str::to_owned),
            None,
            "environment",
        )))
        .retry_config(RetryConfig::standard().with_max_attempts(3))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(2))
                .operation_attempt_timeout(Duration::from_secs(3))
                .operation_timeout(Duration::from_secs(8))
                .build(),
        );
    if let Some(endpoint) = env.get(vars::AWS_ENDPOINT_URL) {
        // The SDK takes any text here and fails every request later: refuse it at cold start.
        if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
            return Err(ConfigError::invalid(
                vars::AWS_ENDPOINT_URL,
                "must be an http:// or https:// URL",
            ));
        }
        builder = builder.endpoint_url(endpoint);
    }
    Ok(builder.build())
}

/// An AWS SDK failure as text for logs and answers: the operation and the error's kind, never
/// request data. Every service's `SdkError` is the same type (DynamoDB's, S3's, SQS's).
pub(crate) fn sdk_error_text<E: std::error::Error>(
    op: &str,
    err: &aws_sdk_sqs::error::SdkError<E>,
) -> String {
    use aws_sdk_sqs::error::SdkError;
    match err {
        SdkError::ServiceError(e) => format!("{op}: {}", e.err()),
        SdkError::TimeoutError(_) => format!("{op}: timed out"),
        SdkError::DispatchFailure(_) => format!("{op}: could not connect"),
        other => format!("{op}: {other}"),
    }
}

/// Any SDK failure of a store is "unavailable" to the caller, which answers 503 so the
/// provider retries.
pub(crate) fn unavailable<E: std::error::Error>(
    op: &str,
    err: &aws_sdk_sqs::error::SdkError<E>,
) -> StoreError {
    StoreError::Unavailable(sdk_error_text(op, err))
}
