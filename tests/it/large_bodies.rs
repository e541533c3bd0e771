//! Bodies too large for an events item (docs/architecture.md, "Large bodies"), on moto: a 2 MB
//! Retell `call_ended` is kept in the events bucket, read back byte-exact by every reader
//! (replay, the sweeper, dispatch, `review show --raw`), verifies again, and finalizes its call
//! once with its transcript at the CRM; a 7 MB body gets 413; S3 down is a 503 that loses
//! nothing acknowledged; duplicates leave one object.

use std::time::Duration;

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use aws_lambda_events::encodings::Body;
use callhook::adapters::dynamodb::{DynamoEventStore, item_size, unpack_request};
use callhook::adapters::sqs::SqsQueue;
use callhook::app::ingest::{Ingest, Request};
use callhook::app::sweep::Sweeper;
use callhook::config::{Env, IngestConfig};
use callhook::domain::event::CanonicalEvent;
use callhook::limits::MAX_MESSAGE_BYTES;
use callhook::ports::CallStore;
use callhook::providers::{self, FIXTURE_SEED, Providers};
use callhook_cli::commands::{fixtures, replay, review};
use callhook_cli::target::Target;
use callhook_integration::{AtomicOnMoto, HttpSink, Lcg, Stack, counted_ingest_at, dead_endpoint};
use chrono::{DateTime, Utc};
use serde_json::Value;
use sha2::Digest;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

const WORDS: &[&str] = &[
    "appointment",
    "Tuesday",
    "eleven",
    "cleaning",
    "confirm",
    "thanks",
    "insurance",
    "reminder",
    "doctor",
    "Patel",
    "morning",
    "address",
    "billing",
    "refund",
    "schedule",
    "tomorrow",
];

fn retell_call(call_id: &str, status: &str, extra: &str) -> String {
    format!(
        r#""call":{{"call_type":"phone_call","from_number":"+14155550199","to_number":"+14155550123","direction":"outbound","call_id":"{call_id}","agent_id":"oBeDLoLOeuAbiuaMFXRtDOLriTJ5tSxD","agent_version":3,"call_status":"{status}","metadata":{{"crm_lead_id":"L-2048"}},"start_timestamp":1699999812345{extra}}}"#
    )
}

fn call_started(call_id: &str) -> String {
    format!(
        r#"{{"event":"call_started",{}}}"#,
        retell_call(call_id, "ongoing", "")
    )
}

/// A `call_ended` of at least `size` bytes: a long conversation's transcript, and each word
/// with its timing (`transcript_object`), as Retell sends them. Returns the body and its
/// transcript.
fn call_ended(call_id: &str, size: usize, seed: u64) -> (String, String) {
    let mut rng = Lcg(seed);
    let mut transcript = String::new();
    let mut turns = Vec::new();
    let mut at = 0.5f64;
    // The transcript is a fifth of the body, the word timings the rest.
    while transcript.len() * 5 < size {
        let role = if turns.len() % 2 == 0 {
            "agent"
        } else {
            "user"
        };
        let words: Vec<&str> = (0..12 + rng.next() % 20)
            .map(|_| WORDS[(rng.next() % WORDS.len() as u64) as usize])
            .collect();
        let content = words.join(" ");
        let timed: Vec<String> = words
            .iter()
            .map(|w| {
                let start = at;
                at += 0.12 + (rng.next() % 400) as f64 / 1000.0;
                format!(r#"{{"word":"{w}","start":{start:.3},"end":{at:.3}}}"#)
            })
            .collect();
        transcript.push_str(&format!(
            "{}: {content}\n",
            if role == "agent" { "Agent" } else { "User" }
        ));
        turns.push(format!(
            r#"{{"role":"{role}","content":"{content}","words":[{}]}}"#,
            timed.join(",")
        ));
    }
    let frame = |turns: &str| {
        let extra = format!(
            r#","end_timestamp":1700001612345,"duration_ms":1800000,"disconnection_reason":"agent_hangup","transcript":{},"transcript_object":[{turns}]"#,
            serde_json::to_string(&transcript).unwrap(),
        );
        format!(
            r#"{{"event":"call_ended",{}}}"#,
            retell_call(call_id, "ended", &extra)
        )
    };
    // Only as many timed turns as fit the size (the transcript stays whole).
    let mut room = size.saturating_sub(frame("").len());
    let mut kept = 0;
    while kept < turns.len() && turns[kept].len() < room {
        room -= turns[kept].len() + 1;
        kept += 1;
    }
    let body = frame(&turns[..kept].join(","));
    // Pad the last turn's words until the body has the size asked for.
    let pad = size.saturating_sub(body.len());
    let body = body.replacen(
        r#""transcript_object":[{"role":"agent","content":""#,
        &format!(
            r#""transcript_object":[{{"role":"agent","pause":"{}","content":""#,
            "~".repeat(pad.saturating_sub(r#""pause":"","#.len()))
        ),
        1,
    );
    (body, transcript)
}

/// An API Gateway event of `body` for `provider`, signed with its dev key at `at` (seconds).
fn delivery(provider: &str, body: &[u8], base64: bool, at: i64) -> ApiGatewayV2httpRequest {
    let mut event = fixtures::wrap(provider, body, base64);
    let url = format!(
        "https://{}{}",
        event["requestContext"]["domainName"].as_str().unwrap(),
        event["rawPath"].as_str().unwrap()
    );
    let signed = providers::dev_signer(provider, &FIXTURE_SEED)
        .unwrap()
        .sign(body, at, &url);
    for (name, value) in signed.headers {
        event["headers"][name] = Value::from(value);
    }
    serde_json::from_value(event).unwrap()
}

fn answer(response: &ApiGatewayV2httpResponse) -> Value {
    match &response.body {
        Some(Body::Text(text)) => serde_json::from_str(text).unwrap(),
        other => panic!("not a JSON answer: {other:?}"),
    }
}

fn state_dir(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!(
        "callhook-large-{name}-{}-{}",
        std::process::id(),
        Utc::now().timestamp_nanos_opt().unwrap_or_default()
    ))
}

fn dispatch(stack: &Stack, crm: &HttpSink) -> callhook_dispatch::DispatchFunction {
    let mut env = stack.function_env("DispatchFunction");
    env.set("CRM_WEBHOOK_URL", &crm.url);
    env.set("CRM_SIGNING_SECRET", SECRET);
    callhook_dispatch::build(&env).unwrap()
}

async fn pump_dispatch(stack: &Stack, function: &callhook_dispatch::DispatchFunction) -> usize {
    stack
        .pump(&stack.provisioned.queues["DispatchQueue"], |e| async move {
            callhook_dispatch::process_batch(function, &e).await
        })
        .await
}

/// The CRM's `call.completed` deliveries.
fn completions(crm: &HttpSink) -> Vec<Value> {
    crm.requests()
        .iter()
        .map(|r| serde_json::from_slice::<Value>(&r.body).unwrap())
        .filter(|b| b["type"] == "call.completed")
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_2_mb_retell_call_ended_is_kept_in_s3_read_back_exact_and_finalizes_once() {
    let stack = Stack::start().await;
    let crm = HttpSink::start(Vec::new()).await;
    let env = stack.ingest_env();
    let ingest = callhook_ingest::build(&env).unwrap();
    let lifecycle = stack.lifecycle();
    let dispatch = dispatch(&stack, &crm);

    let call = "LargeBody2MB00000000000000000001";
    let (ended, transcript) = call_ended(call, 2_000_000, 1);
    assert_eq!(ended.len(), 2_000_000);
    let started = call_started(call);
    let now = Utc::now().timestamp();
    // As API Gateway hands a binary body over: base64, 2.7 MB of it.
    for (body, base64) in [(&started, false), (&ended, true)] {
        let response =
            callhook_ingest::respond(&ingest, &delivery("retell", body.as_bytes(), base64, now))
                .await;
        assert_eq!(response.status_code, 200, "{response:?}");
        assert_eq!(answer(&response)["status"], "accepted");
    }
    // The item keeps the headers, the object's key and the body's hash; the body is the
    // object, and the only one.
    let keys = stack.bucket_keys().await;
    assert_eq!(keys.len(), 1, "{keys:?}");
    let messages = stack.drain(stack.events_queue()).await;
    assert_eq!(messages.len(), 2);
    let events: Vec<CanonicalEvent> = messages
        .iter()
        .map(|m| serde_json::from_str(m).unwrap())
        .collect();
    let ended_event = events
        .iter()
        .find(|e| e.event_type == "call_ended")
        .unwrap();
    let event_id = ended_event.event_id.clone();
    // The message stays under SQS's limit: the payload left out, the transcript by reference.
    for m in &messages {
        assert!(m.len() <= MAX_MESSAGE_BYTES, "{} bytes", m.len());
    }
    assert!(ended_event.data.is_null());
    assert_eq!(
        ended_event.facts.transcript,
        Some(serde_json::json!({ "$event": event_id }))
    );
    assert!(ended_event.is_final);
    let item = stack.event_item(&event_id).await.unwrap();
    assert_eq!(item["body_object"].as_s().unwrap(), &keys[0]);
    assert_eq!(
        item["body_sha256"].as_b().unwrap().as_ref(),
        sha2::Sha256::digest(ended.as_bytes()).as_slice()
    );
    let (headers, rest) = unpack_request(item["request"].as_b().unwrap().as_ref()).unwrap();
    assert!(headers.get("x-retell-signature").is_some());
    assert!(rest.is_empty(), "the body is not in the item too");
    let size = item_size(&item);
    assert!(size < 1024, "the item is {size} bytes");
    let object = stack
        .s3
        .head_object()
        .bucket(stack.events_bucket())
        .key(&keys[0])
        .send()
        .await
        .unwrap();
    eprintln!(
        "2 MB call_ended: item {size} bytes, object {} bytes",
        object.content_length().unwrap_or_default()
    );

    // Read back through the one path every reader takes: byte-exact, and it verifies again.
    let stored = stack.stored_event(&event_id).await.unwrap();
    assert_eq!(stored.raw_body, ended.as_bytes());
    let providers = Providers::from_env(&env).unwrap();
    providers
        .get("retell")
        .unwrap()
        .verify(&stored.delivery())
        .expect("the stored copy verifies again");

    // The lifecycle finalizes the call from the lean message; dispatch reads the transcript
    // back from the bucket for the CRM.
    for m in messages {
        stack
            .sqs
            .send_message()
            .queue_url(stack.events_queue())
            .message_body(m)
            .send()
            .await
            .unwrap();
    }
    assert_eq!(stack.pump_lifecycle(&lifecycle).await, 2);
    assert_eq!(stack.event_status(&event_id).await, "PROCESSED");
    pump_dispatch(&stack, &dispatch).await;
    let done = completions(&crm);
    assert_eq!(done.len(), 1, "{done:?}");
    assert_eq!(
        done[0]["call"]["transcript"],
        Value::from(transcript.clone())
    );
    assert_eq!(done[0]["call"]["outcome"], "completed");

    // Replay reads the same bytes (from the bucket) and re-enqueues the event; applied already,
    // it changes nothing and nothing is sent twice.
    let target = Target::local(&stack.dev_state(), &state_dir("replay")).unwrap();
    let replayer = replay::replayer(&target, true).unwrap();
    let result = replayer.replay_one(&event_id).await.unwrap();
    assert_eq!(
        result.outcome,
        callhook::app::replay::ReplayOutcome::Requeued
    );
    assert_eq!(stack.pump_lifecycle(&lifecycle).await, 1);
    pump_dispatch(&stack, &dispatch).await;
    assert_eq!(completions(&crm).len(), 1, "finalized once");

    // `callhook calls get` reads the call whole the same way.
    let whole = callhook::app::whole_calls::WholeCalls {
        calls: callhook_cli::commands::calls::store(&target).unwrap(),
        events: target.events_reader().unwrap(),
        normalizers: Providers::normalizers(&target.env).unwrap(),
    };
    use callhook::ports::CallReader;
    let record = whole
        .read_call(&format!("retell#{call}"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.transcript, Some(Value::from(transcript)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_body_for_review_shows_raw_from_the_bucket_and_a_tampered_one_is_refused() {
    let stack = Stack::start().await;
    let ingest = callhook_ingest::build(&stack.ingest_env()).unwrap();
    let lifecycle = stack.lifecycle();
    // An event type Retell may add: reviewed, with its 1 MB body kept.
    let call = "LargeBodyReview0000000000000001";
    let (ended, _) = call_ended(call, 1_000_000, 2);
    let body = ended.replacen(r#""event":"call_ended""#, r#""event":"call_teleported""#, 1);
    let response = callhook_ingest::respond(
        &ingest,
        &delivery("retell", body.as_bytes(), false, Utc::now().timestamp()),
    )
    .await;
    assert_eq!(answer(&response)["review"], true, "{response:?}");
    let event_id = answer(&response)["event_id"].as_str().unwrap().to_owned();
    assert_eq!(stack.pump_lifecycle(&lifecycle).await, 1);
    assert_eq!(stack.event_status(&event_id).await, "REVIEW");
    assert_eq!(stack.bucket_keys().await.len(), 1);

    let target = Target::local(&stack.dev_state(), &state_dir("review")).unwrap();
    let store = target.review_store().unwrap();
    let raw = review::raw_body(&target, &store, &event_id).await.unwrap();
    assert_eq!(
        raw,
        body.as_bytes(),
        "review show --raw prints the bytes received"
    );

    // Someone changes the object: every reader refuses it rather than serve other bytes.
    let key = &stack.bucket_keys().await[0];
    let mut changed = body.clone().into_bytes();
    changed[1_000] = b'X';
    stack
        .s3
        .put_object()
        .bucket(stack.events_bucket())
        .key(key)
        .body(callhook::adapters::packing::pack(&changed).into())
        .send()
        .await
        .unwrap();
    let err = review::raw_body(&target, &store, &event_id)
        .await
        .unwrap_err();
    assert!(format!("{err:#}").contains("SHA-256"), "{err:#}");
    let replayed = replay::replayer(&target, true)
        .unwrap()
        .replay_one(&event_id)
        .await
        .unwrap();
    assert_eq!(
        replayed.outcome,
        callhook::app::replay::ReplayOutcome::SkippedUnreadable
    );
    assert!(stack.drain(stack.events_queue()).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_7_mb_body_gets_413_and_nothing_is_kept() {
    let stack = Stack::start().await;
    let ingest = callhook_ingest::build(&stack.ingest_env()).unwrap();
    assert_eq!(ingest.config.max_body_bytes, 4_694_016);
    let (body, _) = call_ended("LargeBody7MB00000000000000000001", 7_000_000, 3);
    for base64 in [false, true] {
        let response = callhook_ingest::respond(
            &ingest,
            &delivery("retell", body.as_bytes(), base64, Utc::now().timestamp()),
        )
        .await;
        assert_eq!(response.status_code, 413, "base64 {base64}");
        assert!(
            answer(&response)["error"]
                .as_str()
                .unwrap()
                .contains("4694016")
        );
    }
    // The largest body accepted is kept, one byte more is not.
    let (largest, _) = call_ended("LargeBodyLimit000000000000000001", 4_694_016, 4);
    let response = callhook_ingest::respond(
        &ingest,
        &delivery("retell", largest.as_bytes(), true, Utc::now().timestamp()),
    )
    .await;
    assert_eq!(response.status_code, 200, "{response:?}");
    let (over, _) = call_ended("LargeBodyLimit000000000000000002", 4_694_017, 4);
    let response = callhook_ingest::respond(
        &ingest,
        &delivery("retell", over.as_bytes(), true, Utc::now().timestamp()),
    )
    .await;
    assert_eq!(response.status_code, 413);
    assert_eq!(stack.count_items(stack.events_table()).await, 1);
    assert_eq!(stack.bucket_keys().await.len(), 1);
    assert_eq!(stack.drain(stack.events_queue()).await.len(), 1);
}

/// A Retell delivery of `body` signed with its dev key at `at`, as ingest receives it.
fn retell_request(body: &str, at: DateTime<Utc>) -> Request<'_> {
    let signed = providers::dev_signer("retell", &FIXTURE_SEED)
        .unwrap()
        .sign(body.as_bytes(), at.timestamp(), "");
    Request {
        method: "POST",
        provider: Some("retell"),
        token: None,
        headers: signed.headers.into_iter().collect(),
        body: Some(body),
        is_base64_encoded: false,
        request_url: None,
        received_at: at,
    }
}

/// The event id `body` normalizes to.
fn event_id_of(provider: &str, body: &str) -> String {
    let headers = callhook::providers::Headers::new();
    Providers::normalizers(&Env::default())
        .unwrap()
        .get(provider)
        .unwrap()
        .normalize(&callhook::providers::Delivery {
            headers: &headers,
            body: body.as_bytes(),
            path_token: None,
            request_url: None,
            received_at: Utc::now(),
        })
        .event_id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_down_is_a_503_and_nothing_acknowledged_is_lost() {
    let stack = Stack::start().await;
    let env = stack.ingest_env();
    let moto = stack.moto.endpoint.clone();
    let broken = counted_ingest_at(&env, &moto, &moto, &dead_endpoint());
    let call = "LargeBodyS3Down0000000000000001";
    let (ended, _) = call_ended(call, 2_000_000, 5);
    let now = Utc::now();

    // The body cannot be put: 503 before anything is written, so the retry is a new event.
    let answer = broken.ingest.handle(&retell_request(&ended, now)).await;
    assert_eq!(answer.status(), 503, "{answer:?}");
    assert!(
        answer
            .headers
            .iter()
            .any(|(name, _)| *name == "retry-after")
    );
    assert!(broken.s3_requests.get() > 0);
    assert_eq!(
        broken.dynamo_requests.get(),
        0,
        "no item names a missing body"
    );
    assert_eq!(broken.sqs_requests.get(), 0);
    assert_eq!(stack.count_items(stack.events_table()).await, 0);
    // A typical body does not need S3 at all.
    let s3_before = broken.s3_requests.get();
    let started = call_started(call);
    let answer = broken.ingest.handle(&retell_request(&started, now)).await;
    assert_eq!(answer.result(), "accepted", "{answer:?}");
    assert_eq!(broken.s3_requests.get(), s3_before);

    // The provider's retry, once S3 is back, is stored whole and queued.
    let healthy = callhook_ingest::build(&env).unwrap();
    let retry = healthy
        .handle(&retell_request(&ended, now + chrono::Duration::seconds(30)))
        .await;
    assert_eq!(retry.result(), "accepted", "{retry:?}");
    let event_id = retry.body["event_id"].as_str().unwrap().to_owned();
    assert_eq!(stack.bucket_keys().await.len(), 1);
    assert_eq!(
        stack.stored_event(&event_id).await.unwrap().raw_body,
        ended.as_bytes()
    );
    let lifecycle = stack.lifecycle();
    assert_eq!(stack.pump_lifecycle(&lifecycle).await, 2);
    let record = lifecycle
        .calls
        .get(&format!("retell#{call}"))
        .await
        .unwrap()
        .unwrap()
        .record;
    assert!(record.is_final());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicates_leave_one_object_and_a_lost_send_is_repaired_from_the_bucket() {
    let stack = Stack::start().await;
    let env = stack.ingest_env();
    let moto = stack.moto.endpoint.clone();
    let call = "LargeBodyDuplicate000000000001";
    let (ended, _) = call_ended(call, 2_000_000, 6);
    let event_id = event_id_of("retell", &ended);
    let t0 = Utc::now();

    // The first delivery is stored, its body too, but cannot be queued: 503, and marked.
    let no_queue = counted_ingest_at(&env, &moto, &dead_endpoint(), &moto);
    let first = no_queue.ingest.handle(&retell_request(&ended, t0)).await;
    assert_eq!(first.status(), 503, "{first:?}");
    let keys = stack.bucket_keys().await;
    assert_eq!(keys.len(), 1);
    let item = stack.event_item(&event_id).await.unwrap();
    assert_eq!(item["queue_failed"].as_bool(), Ok(&true));

    // Retries at once and together, each signed again (other headers, the same body), and a
    // copy of the same event whose bytes differ: one item, still one object, and each retry
    // re-sends the stored copy (read back from the bucket for the copy that differs).
    let (other, _) = call_ended(call, 2_100_000, 7);
    assert_eq!(event_id_of("retell", &other), event_id);
    let ingest = Ingest {
        providers: Providers::from_env(&env).unwrap(),
        store: AtomicOnMoto::new(
            DynamoEventStore::new(stack.dynamo.clone(), stack.events_table())
                .with_bodies(stack.bodies()),
        ),
        queue: SqsQueue::new(stack.sqs.clone(), stack.events_queue()),
        config: IngestConfig::from_env(&env).unwrap(),
    };
    let mut requests: Vec<Request<'_>> = (1..=4)
        .map(|i| retell_request(&ended, t0 + chrono::Duration::seconds(i)))
        .collect();
    requests.push(retell_request(&other, t0 + chrono::Duration::seconds(5)));
    let answers =
        futures::future::join_all(requests.iter().map(|request| ingest.handle(request))).await;
    for answer in &answers {
        assert_eq!(answer.result(), "duplicate", "{answer:?}");
    }
    assert_eq!(
        stack.bucket_keys().await,
        keys,
        "the copy that differs left nothing"
    );
    assert_eq!(stack.count_items(stack.events_table()).await, 1);
    let stored = stack.stored_event(&event_id).await.unwrap();
    assert_eq!(stored.raw_body, ended.as_bytes(), "the first copy is kept");
    let messages = stack.drain(stack.events_queue()).await;
    assert_eq!(messages.len(), 5);
    for message in &messages {
        let event: CanonicalEvent = serde_json::from_str(message).unwrap();
        assert_eq!(event.event_id, event_id);
        assert_eq!(
            event.received_at, stored.received_at,
            "the stored copy is re-sent"
        );
    }

    // The sweeper reads the body from the bucket too, and re-queues what is still pending.
    let sweeper = Sweeper {
        store: stack.events_reader(),
        queue: SqsQueue::new(stack.sqs.clone(), stack.events_queue()),
        providers: Providers::from_env(&env).unwrap(),
        min_age: Duration::ZERO,
    };
    let report = sweeper.sweep(Utc::now()).await.unwrap();
    assert_eq!(
        (report.requeued, report.skipped_unreadable),
        (1, 0),
        "{report:?}"
    );
    let lifecycle = stack.lifecycle();
    assert_eq!(stack.pump_lifecycle(&lifecycle).await, 1);
    assert_eq!(stack.event_status(&event_id).await, "PROCESSED");
    let report = sweeper.sweep(Utc::now()).await.unwrap();
    assert_eq!(report.requeued, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_elevenlabs_post_call_audio_of_several_mb_is_accepted_and_kept() {
    let stack = Stack::start().await;
    let ingest = callhook_ingest::build(&stack.ingest_env()).unwrap();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../events/elevenlabs/bodies");
    let transcription =
        std::fs::read_to_string(dir.join("outbound-01-post-call-transcription.json")).unwrap();
    let audio_fixture =
        std::fs::read_to_string(dir.join("outbound-02-post-call-audio.json")).unwrap();
    // 3 MB of MP3 (as noise: it packs no smaller), base64 in the JSON as ElevenLabs sends it.
    let mut rng = Lcg(8);
    let mp3: Vec<u8> = (0..3_000_000).map(|_| rng.next() as u8).collect();
    let fixture: Value = serde_json::from_str(&audio_fixture).unwrap();
    let mut audio = fixture.clone();
    audio["data"]["full_audio"] = Value::from(base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        &mp3,
    ));
    let audio = serde_json::to_string(&audio).unwrap();
    assert!(
        audio.len() > 4_000_000 && audio.len() < 4_694_016,
        "{}",
        audio.len()
    );

    let now = Utc::now().timestamp();
    for body in [&transcription, &audio] {
        let response = callhook_ingest::respond(
            &ingest,
            &delivery("elevenlabs", body.as_bytes(), false, now),
        )
        .await;
        assert_eq!(answer(&response)["status"], "accepted", "{response:?}");
    }
    let keys = stack.bucket_keys().await;
    assert_eq!(keys.len(), 1, "the audio is kept in the bucket: {keys:?}");
    let event_id = event_id_of("elevenlabs", &audio);
    assert_eq!(
        stack.stored_event(&event_id).await.unwrap().raw_body,
        audio.as_bytes()
    );
    let lifecycle = stack.lifecycle();
    assert_eq!(stack.pump_lifecycle(&lifecycle).await, 2);
    assert_eq!(stack.event_status(&event_id).await, "PROCESSED");
    let call_id = format!(
        "elevenlabs#{}",
        fixture["data"]["conversation_id"].as_str().unwrap()
    );
    let record = lifecycle.calls.get(&call_id).await.unwrap().unwrap().record;
    assert!(record.is_final() && record.transcript.is_some());
    assert_eq!(
        stack
            .count_items(&stack.provisioned.tables["ReviewTable"])
            .await,
        0
    );
}
