//! `callhook --stack NAME`: resource names come from the CloudFormation outputs. moto runs
//! CloudFormation (not SAM's transform), so a stack of the same tables and queues with the
//! template's output names stands in for a deployed callhook; the binary reaches it through the
//! default credential chain and AWS_ENDPOINT_URL, exactly as it would reach AWS.

use std::process::Command;

use callhook_cli::local::emulator::{self, Moto};
use serde_json::{Value, json};

fn table(key: &str) -> Value {
    json!({
        "Type": "AWS::DynamoDB::Table",
        "Properties": {
            "BillingMode": "PAY_PER_REQUEST",
            "AttributeDefinitions": [{"AttributeName": key, "AttributeType": "S"}],
            "KeySchema": [{"AttributeName": key, "KeyType": "HASH"}]
        }
    })
}

fn stack_template() -> String {
    let mut resources = serde_json::Map::new();
    let mut outputs = serde_json::Map::new();
    for name in ["EventsTable", "CallsTable", "ReviewTable"] {
        resources.insert(name.into(), table("pk"));
        outputs.insert(format!("{name}Name"), json!({"Value": {"Ref": name}}));
    }
    for name in ["EventsQueue", "DispatchQueue", "CallbackQueue"] {
        resources.insert(name.into(), json!({"Type": "AWS::SQS::Queue"}));
        outputs.insert(format!("{name}Url"), json!({"Value": {"Ref": name}}));
    }
    json!({"Resources": resources, "Outputs": outputs}).to_string()
}

fn callhook(moto: &Moto, args: &[&str]) -> std::process::Output {
    let state = std::env::temp_dir().join(format!("callhook-stack-test-{}", std::process::id()));
    Command::new(env!("CARGO_BIN_EXE_callhook"))
        .args(args)
        .env("CALLHOOK_STATE_DIR", &state)
        .env("AWS_ENDPOINT_URL", &moto.endpoint)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env_remove("AWS_REGION")
        .env_remove("AWS_DEFAULT_REGION")
        .env_remove("AWS_PROFILE")
        .env_remove("CALLHOOK_STACK")
        .output()
        .unwrap()
}

/// `callhook --stack callhook-prod --region us-east-1 ARGS…`.
fn on_stack(moto: &Moto, args: &[&str]) -> std::process::Output {
    let mut all = vec!["--stack", "callhook-prod", "--region", "us-east-1"];
    all.extend_from_slice(args);
    callhook(moto, &all)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_find_a_deployed_stack_through_its_outputs() {
    let moto = tokio::task::spawn_blocking(Moto::start)
        .await
        .unwrap()
        .expect("moto server starts (make venv installs it)");
    let config = emulator::local_sdk_config(&moto.endpoint);
    let cloudformation = aws_sdk_cloudformation::Client::new(&config);
    cloudformation
        .create_stack()
        .stack_name("callhook-prod")
        .template_body(stack_template())
        .send()
        .await
        .unwrap();
    let outputs = cloudformation
        .describe_stacks()
        .stack_name("callhook-prod")
        .send()
        .await
        .unwrap();
    let review_table = outputs.stacks()[0]
        .outputs()
        .iter()
        .find(|o| o.output_key() == Some("ReviewTableName"))
        .and_then(|o| o.output_value())
        .expect("the stack has the review table output")
        .to_owned();

    // An item in the stack's review table, as the review function would write it.
    let dynamo = aws_sdk_dynamodb::Client::new(&config);
    use aws_sdk_dynamodb::types::AttributeValue::S;
    dynamo
        .put_item()
        .table_name(&review_table)
        .item("pk", S("dlq#events#m-1".into()))
        .item("reason", S("dlq:events".into()))
        .item("subject_id", S("telnyx#e1".into()))
        .item("payload", S("{}".into()))
        .item("status", S("open".into()))
        .item("created_at", S("2026-11-24T00:00:00Z".into()))
        .send()
        .await
        .unwrap();

    let out = on_stack(&moto, &["review", "list", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let items: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(items[0]["id"], "dlq#events#m-1");

    // Discarding reaches the same table.
    let out = on_stack(&moto, &["review", "discard", "dlq#events#m-1"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status = dynamo
        .get_item()
        .table_name(&review_table)
        .key("pk", S("dlq#events#m-1".into()))
        .send()
        .await
        .unwrap()
        .item()
        .and_then(|i| i.get("status").cloned());
    assert_eq!(status, Some(S("discarded".into())));

    // The sweeper over the stack's events table and queue: nothing pending, a clean pass.
    let out = on_stack(&moto, &["sweep", "--json"]);
    // The stand-in events table has no `pending` index, so the sweep must fail clearly.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("stack callhook-prod (us-east-1)"),
        "{stderr}"
    );

    // Clear answers for what is missing.
    let out = callhook(
        &moto,
        &["--stack", "nope", "--region", "us-east-1", "calls", "list"],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("stack nope not found in us-east-1"),
        "{stderr}"
    );
    let out = callhook(&moto, &["--stack", "callhook-prod", "calls", "list"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no AWS region"), "{stderr}");
}
