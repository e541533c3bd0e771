use callhook::config::Env;
use lambda_runtime::{Error, run, service_fn};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    callhook::logging::init();
    let function = callhook_ingest::build(&Env::from_process()).map_err(|e| {
        eprintln!("callhook ingest: configuration error: {e}");
        e
    })?;
    run(service_fn(|event| {
        callhook_ingest::handle(&function, event)
    }))
    .await
}
