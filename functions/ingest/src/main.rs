#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    callhook_lambda::serve("ingest", callhook_ingest::build, callhook_ingest::handle).await
}
