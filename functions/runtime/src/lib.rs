//! What every callhook Lambda entry point shares: start-up ([`serve`]: logs, configuration
//! validated at cold start, the runtime loop) and the SQS partial-batch loop ([`sqs_batch`]).

use std::future::Future;

use callhook::config::{ConfigError, Env};
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use serde::Serialize;
use serde::de::DeserializeOwned;

pub mod sqs_batch;

/// Runs a function: JSON logs, `build` once from the environment (a configuration problem is one
/// line naming the variable, and the function does not start), then `handle` for every
/// invocation. The built state lives as long as the process, as Lambda keeps it.
pub async fn serve<F, E, R, Fut>(
    name: &str,
    build: impl FnOnce(&Env) -> Result<F, ConfigError>,
    handle: fn(&'static F, LambdaEvent<E>) -> Fut,
) -> Result<(), Error>
where
    F: Sync + 'static,
    E: DeserializeOwned + Send + 'static,
    R: Serialize + Send + 'static,
    Fut: Future<Output = Result<R, Error>> + Send,
{
    callhook::observability::logging::init();
    let report = |e: &ConfigError| eprintln!("callhook {name}: configuration error: {e}");
    // Secrets Manager first (CALLHOOK_SECRETS_ARN, once per cold start), under the plain
    // environment; then the whole configuration is validated as usual.
    let env = callhook::adapters::secrets::with_secrets(Env::from_process())
        .await
        .inspect_err(report)?;
    let function = build(&env).inspect_err(report)?;
    let function: &'static F = Box::leak(Box::new(function));
    // Boxed: the handlers' futures nest the SDK's deep ones, and one more layer of nesting would
    // pass the compiler's layout depth limit. One allocation per invocation.
    run(service_fn(move |event| Box::pin(handle(function, event)))).await
}
