//! Every fixture in events/ through the Lambda handler against moto, checked against the
//! answer events/fixtures.json documents for it, so the fixtures never rot.

use std::path::{Path, PathBuf};

use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use callhook::config::Env;
use callhook::ports::ReviewAdmin;
use callhook::providers::{self, FIXTURE_SEED};
use callhook_cli::commands::fixtures;
use callhook_integration::Stack;
use serde_json::Value;

fn events_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../events")
}

/// events/env.json's verifier settings, with this test's emulator in place of the documented
/// local endpoint.
fn fixture_env(stack: &Stack) -> Env {
    let mut env = stack.ingest_env();
    let documented = fixtures::read(&events_dir().join("env.json")).unwrap();
    for (k, v) in documented["IngestFunction"].as_object().unwrap() {
        if !matches!(
            k.as_str(),
            "EVENTS_TABLE" | "EVENTS_BUCKET" | "EVENTS_QUEUE_URL" | "AWS_ENDPOINT_URL"
        ) {
            env.set(k, v.as_str().unwrap());
        }
    }
    env
}

#[test]
fn every_fixture_is_in_the_manifest_and_signed_up_to_date() {
    let dir = events_dir();
    let manifest = fixtures::load_manifest(&dir).unwrap();
    let listed: Vec<String> = manifest.fixtures.iter().map(|e| e.file.clone()).collect();
    for file in fixtures::fixture_files(&dir).unwrap() {
        assert!(
            listed.contains(&file),
            "{file} has no entry in events/fixtures.json"
        );
    }
    let stale = fixtures::sign_all(&dir, true).unwrap();
    assert!(stale.is_empty(), "run `callhook fixtures sign`: {stale:?}");
}

#[test]
fn env_json_configures_every_provider_with_the_fixture_keys() {
    let documented = fixtures::read(&events_dir().join("env.json")).unwrap();
    let vars = documented["IngestFunction"].as_object().unwrap();
    for provider in providers::supported() {
        let signer = providers::dev_signer(provider, &FIXTURE_SEED).unwrap();
        for (k, v) in signer.verifier_env() {
            assert_eq!(
                vars.get(k).and_then(Value::as_str),
                Some(v.as_str()),
                "{provider}: {k}"
            );
        }
    }
}

/// `sam local invoke --env-vars events/env.json` starts each function with exactly these
/// variables: every one must be enough for its function's cold start.
#[tokio::test]
async fn env_json_alone_starts_every_function() {
    let documented = fixtures::read(&events_dir().join("env.json")).unwrap();
    let env_of = |function: &str| {
        let vars = documented[function].as_object().unwrap();
        let mut env = Env::from_pairs(vars.iter().map(|(k, v)| (k.as_str(), v.as_str().unwrap())));
        // What Lambda (and sam local) sets; no request is made at cold start.
        env.set("AWS_REGION", "us-east-1");
        env.set("AWS_ACCESS_KEY_ID", "test");
        env.set("AWS_SECRET_ACCESS_KEY", "test");
        env
    };
    let errors: Vec<String> = [
        (
            "IngestFunction",
            callhook_ingest::build(&env_of("IngestFunction")).err(),
        ),
        (
            "LifecycleFunction",
            callhook_lifecycle::build(&env_of("LifecycleFunction")).err(),
        ),
        (
            "DispatchFunction",
            callhook_dispatch::build(&env_of("DispatchFunction")).err(),
        ),
        (
            "ReviewFunction",
            callhook_review::build(&env_of("ReviewFunction")).err(),
        ),
        (
            "SweeperFunction",
            callhook_sweeper::build(&env_of("SweeperFunction")).err(),
        ),
    ]
    .into_iter()
    .filter_map(|(function, err)| err.map(|e| format!("{function}: {e}")))
    .collect();
    assert!(errors.is_empty(), "{errors:?}");
    // The sweeper's stale pass runs only where the calls table is named: locally too.
    let sweeper = env_of("SweeperFunction");
    assert!(sweeper.get("CALLS_TABLE").is_some() && sweeper.get("REVIEW_TABLE").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_ingest_fixture_gets_its_documented_answer() {
    let stack = Stack::start().await;
    let env = fixture_env(&stack);
    let function = callhook_ingest::build(&env).expect("fixture configuration");
    let dir = events_dir();
    let manifest = fixtures::load_manifest(&dir).unwrap();
    let mut ran = 0;
    // provider → the answers its fixtures got: (status, result, review).
    let mut answers: std::collections::BTreeMap<String, Vec<(i64, String, bool)>> =
        Default::default();
    for entry in &manifest.fixtures {
        let raw = fixtures::read(&dir.join(&entry.file)).unwrap();
        if raw.get("requestContext").is_none() {
            continue;
        }
        let event: ApiGatewayV2httpRequest = serde_json::from_value(raw).unwrap();
        let response = callhook_ingest::respond(&function, &event).await;
        let body: Value = match &response.body {
            Some(aws_lambda_events::encodings::Body::Text(text)) => {
                serde_json::from_str(text).unwrap()
            }
            other => panic!("{}: unexpected body {other:?}", entry.file),
        };
        assert_eq!(
            Some(response.status_code),
            entry.expect.status.map(i64::from),
            "{}: {body}",
            entry.file
        );
        if let Some(result) = &entry.expect.result {
            assert_eq!(body["status"], result.as_str(), "{}: {body}", entry.file);
        }
        assert_eq!(
            body["review"].as_bool().unwrap_or(false),
            entry.expect.review,
            "{}: {body}",
            entry.file
        );
        let provider = event
            .path_parameters
            .get("provider")
            .cloned()
            .unwrap_or_default();
        answers.entry(provider).or_default().push((
            response.status_code,
            body["status"].as_str().unwrap_or("").to_owned(),
            entry.expect.review,
        ));
        ran += 1;
    }
    assert!(ran >= 140, "only {ran} ingest fixtures ran");
    // Every provider (a Standard Webhooks sender's bodies are its own) has fixtures for a new
    // event, a duplicate delivery, a bad signature and an authentic event kept for review.
    for provider in providers::supported().filter(|p| *p != "standard") {
        let got = answers.get(provider).map(Vec::as_slice).unwrap_or_default();
        let has = |status: i64, result: &str, review: bool| {
            got.iter()
                .any(|(s, r, v)| *s == status && r == result && *v == review)
        };
        assert!(
            has(200, "accepted", false),
            "{provider}: no accepted fixture"
        );
        assert!(
            has(200, "duplicate", false),
            "{provider}: no duplicate fixture"
        );
        assert!(
            has(401, "rejected", false),
            "{provider}: no bad-signature fixture"
        );
        assert!(has(200, "accepted", true), "{provider}: no review fixture");
    }
}

/// Runs the SQS fixtures under `prefix` through a batch handler and checks each one's documented
/// count of batch item failures; returns how many ran.
async fn run_sqs_fixtures<F, Fut>(prefix: &str, handler: F) -> usize
where
    F: Fn(aws_lambda_events::sqs::SqsEvent) -> Fut,
    Fut: std::future::Future<Output = aws_lambda_events::sqs::SqsBatchResponse>,
{
    let dir = events_dir();
    let mut ran = 0;
    for entry in fixtures::load_manifest(&dir).unwrap().fixtures {
        if !entry.file.starts_with(prefix) {
            continue;
        }
        let raw = fixtures::read(&dir.join(&entry.file)).unwrap();
        let response = handler(serde_json::from_value(raw).unwrap()).await;
        assert_eq!(
            Some(response.batch_item_failures.len()),
            entry.expect.failures,
            "{}",
            entry.file
        );
        ran += 1;
    }
    ran
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_lifecycle_and_dispatch_fixture_gets_its_documented_answer() {
    let stack = Stack::start().await;
    let function = callhook_lifecycle::build(&stack.function_env("LifecycleFunction")).unwrap();
    let dir = events_dir();
    let ran = run_sqs_fixtures("lifecycle/", |event| {
        let function = &function;
        async move { callhook_lifecycle::process_batch(function, &event).await }
    })
    .await;
    assert_eq!(ran, 2);
    let call = callhook::ports::CallStore::get(
        &function.calls,
        "telnyx#428c31b6-abf3-3bc1-b7f4-5013ef9657c1",
    )
    .await
    .unwrap()
    .expect("the hangup fixture made a call record");
    assert!(call.record.finalized_at.is_some());

    // The dispatch fixtures send that call on, to a CRM that answers 200.
    let crm = callhook_integration::HttpSink::start(Vec::new()).await;
    let documented = fixtures::read(&dir.join("env.json")).unwrap();
    let mut env = stack.function_env("DispatchFunction");
    env.set("CRM_WEBHOOK_URL", &crm.url);
    env.set(
        "CRM_SIGNING_SECRET",
        documented["DispatchFunction"]["CRM_SIGNING_SECRET"]
            .as_str()
            .unwrap(),
    );
    let dispatch = callhook_dispatch::build(&env).unwrap();
    let ran = run_sqs_fixtures("dispatch/", |event| {
        let dispatch = &dispatch;
        async move { callhook_dispatch::process_batch(dispatch, &event).await }
    })
    .await;
    assert_eq!(ran, 2);
    assert_eq!(crm.count(), 1, "the completed call was POSTed once");
    assert_eq!(
        stack
            .count_items(&stack.provisioned.tables["ReviewTable"])
            .await,
        1,
        "the stray message was kept for review"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweeper_fixture_gets_its_documented_answer() {
    let stack = Stack::start().await;
    let mut env = stack.function_env("SweeperFunction");
    for (k, v) in fixture_env(&stack).iter() {
        if env.get(k).is_none() {
            env.set(k, v);
        }
    }
    let function = callhook_sweeper::build(&env).expect("sweeper configuration");
    let dir = events_dir();
    let entry = fixtures::load_manifest(&dir)
        .unwrap()
        .fixtures
        .into_iter()
        .find(|e| e.file == "sweeper/scheduled.json")
        .unwrap();
    let payload = fixtures::read(&dir.join(&entry.file)).unwrap();
    let event = lambda_runtime::LambdaEvent::new(payload, lambda_runtime::Context::default());
    let report = callhook_sweeper::handle(&function, event).await.unwrap();
    assert_eq!(Some(report.sweep.requeued as usize), entry.expect.requeued);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_review_fixture_gets_its_documented_answer() {
    let stack = Stack::start().await;
    // The fixtures' eventSourceARNs are those of `callhook dev`, as events/env.json says.
    let documented = fixtures::read(&events_dir().join("env.json")).unwrap();
    let mut env = stack.function_env("ReviewFunction");
    for var in [
        "REVIEW_QUEUE_ARN",
        "EVENTS_DLQ_ARN",
        "DISPATCH_DLQ_ARN",
        "CALLBACK_DLQ_ARN",
    ] {
        env.set(var, documented["ReviewFunction"][var].as_str().expect(var));
    }
    let function = callhook_review::build(&env).expect("review configuration");
    let ran = run_sqs_fixtures("review/", |event| {
        let function = &function;
        async move { callhook_review::process_batch(function, &event).await }
    })
    .await;
    assert_eq!(ran, 2);
    let review = &function.review;
    let poison = review
        .get("dlq#events#7a1d0000-0000-4000-8000-000000000001")
        .await
        .unwrap()
        .expect("the dead letter is a review item");
    assert_eq!(poison.reason, "dlq:events");
    assert_eq!(
        poison.subject_id,
        "telnyx#5f0c1c6e-0000-4000-8000-00000000dead"
    );
    assert_eq!(poison.attempts, 5);
    let text = review
        .get("dlq#events#7a1d0000-0000-4000-8000-000000000002")
        .await
        .unwrap()
        .expect("a body that is not JSON is kept too");
    assert_eq!(
        text.payload,
        serde_json::Value::String("this is not JSON at all".into())
    );
    let event = review
        .get("event#telnyx#9d2f0000-0000-4000-8000-00000000beef")
        .await
        .unwrap()
        .expect("the event sent for review has its event item");
    assert_eq!(event.reason, "unknown_type");
}
