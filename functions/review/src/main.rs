#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    callhook_lambda::serve("review", callhook_review::build, callhook_review::handle).await
}
