#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    callhook_lambda::serve("sweeper", callhook_sweeper::build, callhook_sweeper::handle).await
}
