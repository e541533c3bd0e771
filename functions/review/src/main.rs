use callhook::config::Env;
use lambda_runtime::{Error, run, service_fn};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    callhook::logging::init();
    let function = callhook_review::build(&Env::from_process()).inspect_err(|e| {
        eprintln!("callhook review: configuration error: {e}");
    })?;
    run(service_fn(|event| {
        callhook_review::handle(&function, event)
    }))
    .await
}
