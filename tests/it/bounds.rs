//! Calls that would once have outgrown a DynamoDB item: thousands of events, a transcript of
//! hundreds of kilobytes. Each must commit, finalize once and reach the CRM once, with the
//! call's item staying small (facts by reference, applied events as fingerprints).

use aws_lambda_events::sqs::{SqsEvent, SqsMessage};
use callhook::adapters::dynamodb::{DynamoEventReader, DynamoEventStore, item_size};
use callhook::app::ingest::Ingest;
use callhook::ports::{CallStore, EventReader};
use callhook::providers::Providers;
use callhook::testing::MemoryQueue;
use callhook_integration::telnyx_request;
use chrono::{Duration, Utc};
use futures::StreamExt;

use crate::pipeline::Pipeline;

const SESSION: &str = "4f1d2c3b-bound-4e5f-8a9b-0c1d2e3f4a5b";

fn telnyx(event_type: &str, id: &str, secs: i64, extra: &str) -> String {
    let at = (Utc::now() - Duration::hours(1) + Duration::seconds(secs)).to_rfc3339();
    format!(
        r#"{{"data":{{"event_type":"{event_type}","id":"{id}","occurred_at":"{at}","payload":{{"call_session_id":"{SESSION}","direction":"incoming","from":"+15550100","to":"+15550199"{extra}}},"record_type":"event"}},"meta":{{"attempt":1}}}}"#
    )
}

/// Delivers every body, 16 at a time, and expects each to be stored.
async fn deliver(pipeline: &Pipeline, bodies: &[String]) {
    let ingest = &pipeline.ingest;
    futures::stream::iter(bodies)
        .for_each_concurrent(16, |body| async move {
            let answer = ingest.handle(&telnyx_request(body, Utc::now())).await;
            assert_eq!(answer.status(), 200, "{:?}", answer.body);
        })
        .await;
}

async fn call_item_bytes(pipeline: &Pipeline, call_id: &str) -> usize {
    let item = pipeline
        .dynamo
        .get_item()
        .table_name(&pipeline.tables["CallsTable"])
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S(call_id.into()),
        )
        .send()
        .await
        .unwrap();
    item_size(item.item().expect("the call is stored"))
}

/// The lifecycle fed as its event source mapping would, in batches of 10, from messages ingest
/// queued in memory (moto's SQS slows to minutes on 5,000 messages; DynamoDB, the subject
/// here, is DynamoDB Local all the same).
async fn apply_in_batches(pipeline: &Pipeline, messages: Vec<String>) {
    for (n, chunk) in messages.chunks(10).enumerate() {
        let mut event = SqsEvent::default();
        event.records = chunk
            .iter()
            .enumerate()
            .map(|(i, body)| {
                let mut message = SqsMessage::default();
                message.message_id = Some(format!("m-{n}-{i}"));
                message.body = Some(body.clone());
                message
            })
            .collect();
        let response = callhook_lifecycle::process_batch(&pipeline.lifecycle, &event).await;
        assert!(response.batch_item_failures.is_empty(), "batch {n} failed");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_of_five_thousand_events_commits_finalizes_and_dispatches_once() {
    let pipeline = Pipeline::start("callhook-5k").await;
    let ingest = Ingest {
        providers: Providers::from_env(&pipeline.stack.ingest_env()).unwrap(),
        store: DynamoEventStore::new(pipeline.dynamo.clone(), &pipeline.tables["EventsTable"]),
        queue: MemoryQueue::default(),
        config: pipeline.ingest.config.clone(),
    };
    let mut bodies = vec![telnyx("call.initiated", "init", 0, "")];
    bodies.extend((1..4_999).map(|i| telnyx("call.dtmf.received", &format!("dtmf-{i}"), i, "")));
    bodies.push(telnyx(
        "call.hangup",
        "hangup",
        5_000,
        r#","hangup_cause":"normal_clearing""#,
    ));
    let started = std::time::Instant::now();
    let ingest = &ingest;
    futures::stream::iter(&bodies)
        .for_each_concurrent(16, |body| async move {
            let answer = ingest.handle(&telnyx_request(body, Utc::now())).await;
            assert_eq!(answer.status(), 200, "{:?}", answer.body);
        })
        .await;
    apply_in_batches(&pipeline, ingest.queue.taken()).await;
    pipeline.drain_dispatch().await;
    eprintln!(
        "5,000 events through the pipeline in {:?}",
        started.elapsed()
    );

    let call_id = format!("telnyx#{SESSION}");
    let stored = pipeline
        .lifecycle
        .calls
        .get(&call_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.record.event_count, 5_000);
    assert!(stored.record.finalized_at.is_some());
    let completed = pipeline.crm_received("call.completed");
    assert_eq!(completed.len(), 1, "one completion");
    assert_eq!(completed[0]["call"]["event_count"], 5_000);
    let bytes = call_item_bytes(&pipeline, &call_id).await;
    eprintln!("the call's item: {bytes} bytes");
    assert!(bytes < 100 * 1024, "{bytes} bytes");

    // Every event was marked applied: none is left for the sweeper.
    let events = DynamoEventReader::new(pipeline.dynamo.clone(), &pipeline.tables["EventsTable"]);
    let page = events.pending_page(Utc::now(), None).await.unwrap();
    assert!(page.keys.is_empty() && page.next.is_none(), "{page:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_with_a_300_kb_transcript_finalizes_and_dispatches_it_whole_once() {
    let mut pipeline = Pipeline::start("callhook-300k").await;
    pipeline.ingest.config.max_body_bytes = 384 * 1024;
    let words = [
        "refund", "order", "tomorrow", "delivery", "thanks", "agent", "billing",
    ];
    let transcript: String = (0..300 * 1024 / 7)
        .map(|i| words[(i * 7 + i / 3) % words.len()])
        .collect::<Vec<_>>()
        .join(" ");
    assert!(transcript.len() > 300 * 1024);
    let transcription = telnyx(
        "call.recording.transcription.saved",
        "transcript",
        50,
        &format!(r#","transcription_text":"{transcript}""#),
    );
    let bodies = [
        telnyx("call.initiated", "t-init", 0, ""),
        telnyx("call.answered", "t-answer", 5, ""),
        transcription.clone(),
    ];
    deliver(&pipeline, &bodies).await;
    pipeline.drain_lifecycle().await;
    deliver(
        &pipeline,
        &[telnyx(
            "call.hangup",
            "t-hangup",
            60,
            r#","hangup_cause":"normal_clearing""#,
        )],
    )
    .await;
    pipeline.drain_lifecycle().await;
    pipeline.drain_dispatch().await;

    let call_id = format!("telnyx#{SESSION}");
    let bytes = call_item_bytes(&pipeline, &call_id).await;
    assert!(
        bytes < 4 * 1024,
        "the transcript is kept by reference: {bytes} bytes"
    );
    let completed = pipeline.crm_received("call.completed");
    assert_eq!(completed.len(), 1);
    assert_eq!(
        completed[0]["call"]["transcript"].as_str().map(str::len),
        Some(transcript.len()),
        "the CRM gets the whole transcript, read back from its event"
    );
    assert_eq!(completed[0]["call"]["transcript"], transcript.as_str());

    // The transcript delivered again changes nothing and sends nothing.
    let answer = pipeline
        .ingest
        .handle(&telnyx_request(&transcription, Utc::now()))
        .await;
    assert_eq!(answer.result(), "duplicate");
    pipeline.drain_lifecycle().await;
    pipeline.drain_dispatch().await;
    assert_eq!(pipeline.crm.count(), 1);
}
