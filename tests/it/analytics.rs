//! Analytics on moto's EventBridge: the lifecycle publishes each applied event (`call.event`)
//! and each finalization or update (`call.completed`, `call.updated`) to the bus named by
//! ANALYTICS_BUS_NAME; a rule on that bus sends them to an SQS queue, where they are counted.
//! Publishing never fails the lifecycle: a bus that does not exist loses publications (counted)
//! and the call is still applied and dispatched.

use aws_sdk_eventbridge::types::Target;
use callhook::observability::emf::Sink;
use callhook::ports::CallStore;
use callhook_cli::local::emulator;
use callhook_integration::{Stack, telnyx_request};
use chrono::Utc;
use serde_json::Value;

fn telnyx(event_type: &str, id: &str, secs: u32, extra: &str) -> String {
    format!(
        r#"{{"data":{{"event_type":"{event_type}","id":"{id}","occurred_at":"2024-01-01T00:00:{secs:02}Z","payload":{{"call_session_id":"sess-a","direction":"incoming","from":"+15550100","to":"+15550199"{extra}}},"record_type":"event"}},"meta":{{"attempt":1}}}}"#
    )
}

/// A bus with a rule sending everything from callhook to a queue; returns the queue URL.
async fn bus_to_queue(stack: &Stack, bus: &str) -> String {
    let env = callhook::config::Env::from_pairs(emulator::local_aws_env(&stack.moto.endpoint));
    let sdk = callhook::adapters::aws::sdk_config(&env).unwrap();
    let events = aws_sdk_eventbridge::Client::new(&sdk);
    events.create_event_bus().name(bus).send().await.unwrap();
    let queue = stack
        .sqs
        .create_queue()
        .queue_name(format!("{bus}-analytics"))
        .send()
        .await
        .unwrap();
    let url = queue.queue_url().unwrap().to_owned();
    let arn = stack
        .sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes()
        .unwrap()[&aws_sdk_sqs::types::QueueAttributeName::QueueArn]
        .clone();
    events
        .put_rule()
        .name("callhook-all")
        .event_bus_name(bus)
        .event_pattern(r#"{"source":["callhook"]}"#)
        .send()
        .await
        .unwrap();
    events
        .put_targets()
        .rule("callhook-all")
        .event_bus_name(bus)
        .targets(Target::builder().id("queue").arn(arn).build().unwrap())
        .send()
        .await
        .unwrap();
    url
}

async fn ingest(stack: &Stack, bodies: &[String]) {
    let ingest = callhook_ingest::build(&stack.ingest_env()).unwrap();
    for body in bodies {
        let answer = ingest.handle(&telnyx_request(body, Utc::now())).await;
        assert_eq!(answer.status(), 200, "{answer:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applied_events_and_record_changes_reach_the_bus_exactly_once() {
    let stack = Stack::start().await;
    let queue = bus_to_queue(&stack, "callhook-analytics").await;
    let mut env = stack.function_env("LifecycleFunction");
    env.set("DISPATCH_SETTLE_SECS", "0");
    env.set("ANALYTICS_BUS_NAME", "callhook-analytics");
    let lifecycle = callhook_lifecycle::build(&env).unwrap();

    let call = [
        telnyx("call.initiated", "a1", 0, ""),
        telnyx("call.answered", "a2", 5, ""),
        telnyx(
            "call.hangup",
            "a3",
            50,
            r#","hangup_cause":"normal_clearing""#,
        ),
    ];
    // Each event twice: the duplicates are neither applied nor published.
    ingest(&stack, &call).await;
    ingest(&stack, &call).await;
    stack.pump_lifecycle(&lifecycle).await;
    let late = [telnyx(
        "call.recording.saved",
        "a4",
        55,
        r#","recording_urls":{"mp3":"https://r.example/a.mp3"}"#,
    )];
    ingest(&stack, &late).await;
    stack.pump_lifecycle(&lifecycle).await;

    let published: Vec<Value> = stack
        .drain(&queue)
        .await
        .iter()
        .map(|m| serde_json::from_str(m).unwrap())
        .collect();
    let of = |kind: &str| {
        published
            .iter()
            .filter(|e| e["detail-type"] == kind)
            .count()
    };
    assert_eq!(of("call.event"), 4, "{published:#?}");
    assert_eq!(of("call.completed"), 1);
    assert_eq!(of("call.updated"), 1);
    assert_eq!(published.len(), 6);
    assert!(published.iter().all(|e| e["source"] == "callhook"));
    let completed = published
        .iter()
        .find(|e| e["detail-type"] == "call.completed")
        .unwrap();
    assert_eq!(completed["detail"]["call_id"], "telnyx#sess-a");
    assert_eq!(completed["detail"]["outcome"], "completed");
    let event = published
        .iter()
        .find(|e| e["detail-type"] == "call.event")
        .unwrap();
    assert!(
        event["detail"]["event_id"]
            .as_str()
            .unwrap()
            .starts_with("telnyx#a")
    );
    assert!(
        event["detail"].get("data").is_none(),
        "the payload stays in the events table"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bus_that_fails_costs_publications_never_the_call() {
    let stack = Stack::start().await;
    let mut env = stack.function_env("LifecycleFunction");
    env.set("DISPATCH_SETTLE_SECS", "0");
    env.set("ANALYTICS_BUS_NAME", "no-such-bus");
    let lifecycle = callhook_lifecycle::build(&env).unwrap();
    ingest(
        &stack,
        &[
            telnyx("call.initiated", "b1", 0, ""),
            telnyx(
                "call.hangup",
                "b2",
                9,
                r#","hangup_cause":"normal_clearing""#,
            ),
        ],
    )
    .await;
    let sink = Sink::memory();
    stack
        .pump(stack.events_queue(), |event| {
            let (lifecycle, sink) = (&lifecycle, &sink);
            async move { callhook_lifecycle::process_batch_with(lifecycle, &event, sink).await }
        })
        .await;
    let call = lifecycle.calls.get("telnyx#sess-a").await.unwrap().unwrap();
    assert!(
        call.record.finalized_at.is_some(),
        "applied and finalized all the same"
    );
    let dispatched = stack
        .drain(&stack.provisioned.queues["DispatchQueue"])
        .await;
    assert_eq!(dispatched.len(), 1);
    let lost: f64 = sink
        .samples()
        .iter()
        .filter(|s| s.name == "analytics_lost")
        .flat_map(|s| s.values.clone())
        .sum();
    assert_eq!(
        lost,
        3.0,
        "two events and the completion, counted: {:?}",
        sink.lines()
    );
}
