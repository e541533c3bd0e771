#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    callhook_lambda::serve(
        "dispatch",
        callhook_dispatch::build,
        callhook_dispatch::handle,
    )
    .await
}
