#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    callhook_lambda::serve(
        "lifecycle",
        callhook_lifecycle::build,
        callhook_lifecycle::handle,
    )
    .await
}
