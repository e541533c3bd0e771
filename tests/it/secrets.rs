//! Secrets from AWS Secrets Manager at cold start (`CALLHOOK_SECRETS_ARN`), against moto's
//! Secrets Manager: merged under the plain environment, and every failure a configuration error
//! naming the variable, never a value.

use callhook::adapters::secrets::with_secrets;
use callhook::config::Env;
use callhook_integration::Stack;

async fn client(stack: &Stack) -> aws_sdk_secretsmanager::Client {
    let env = stack.function_env("IngestFunction");
    let sdk = callhook::adapters::aws::sdk_config(&env).unwrap();
    aws_sdk_secretsmanager::Client::new(&sdk)
}

async fn create(stack: &Stack, name: &str, value: &str) -> String {
    client(stack)
        .await
        .create_secret()
        .name(name)
        .secret_string(value)
        .send()
        .await
        .unwrap()
        .arn()
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_takes_its_keys_from_one_secret_under_the_plain_environment() {
    let stack = Stack::start().await;
    let twilio = "a-twilio-auth-token-from-the-secret";
    let arn = create(
        &stack,
        "callhook/ingest",
        &serde_json::json!({
            "TWILIO_AUTH_TOKENS": twilio,
            "EVENTS_TABLE": "not-this-one",
            "MAX_BODY_BYTES": 4096,
        })
        .to_string(),
    )
    .await;
    // As Lambda gives it: the template's variables, an empty parameter for Twilio.
    let mut env = stack.function_env("IngestFunction");
    env.set("TWILIO_AUTH_TOKENS", "");
    env.set("CALLHOOK_SECRETS_ARN", &arn);
    let plain_table = env.get("EVENTS_TABLE").unwrap().to_owned();

    let merged = with_secrets(env).await.expect("the secret is read");
    assert_eq!(merged.get("TWILIO_AUTH_TOKENS"), Some(twilio));
    assert_eq!(merged.get("MAX_BODY_BYTES"), Some("4096"));
    assert_eq!(
        merged.get("EVENTS_TABLE"),
        Some(plain_table.as_str()),
        "plain env wins"
    );
    let ingest = callhook_ingest::build(&merged).expect("ingest starts");
    assert!(ingest.providers.get("twilio").is_some());
    assert_eq!(ingest.config.max_body_bytes, 4096);

    // Without the variable nothing is fetched: the environment is as it was.
    let plain = Env::from_pairs([("EVENTS_TABLE", "t")]);
    assert_eq!(
        format!("{:?}", with_secrets(plain.clone()).await.unwrap()),
        format!("{plain:?}")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_that_cannot_be_used_stops_the_cold_start_naming_the_variable() {
    let stack = Stack::start().await;
    let not_json = create(&stack, "callhook/not-json", "s3cret-plain-text").await;
    let missing = not_json.replace("not-json", "missing");
    for arn in [not_json.as_str(), missing.as_str()] {
        let mut env = stack.function_env("IngestFunction");
        env.set("CALLHOOK_SECRETS_ARN", arn);
        let err = with_secrets(env).await.unwrap_err().to_string();
        assert!(err.starts_with("CALLHOOK_SECRETS_ARN is invalid"), "{err}");
        assert!(!err.contains("s3cret"), "{err}");
        assert!(!err.contains('\n'), "{err}");
        println!("{err}");
    }
}
