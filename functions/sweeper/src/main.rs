use callhook::config::Env;
use lambda_runtime::{Error, run, service_fn};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    callhook::logging::init();
    let function = callhook_sweeper::build(&Env::from_process()).inspect_err(|e| {
        eprintln!("callhook sweeper: configuration error: {e}");
    })?;
    run(service_fn(|event| {
        callhook_sweeper::handle(&function, event)
    }))
    .await
}
