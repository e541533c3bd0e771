//! What an event costs: whole calls through ingest → lifecycle → dispatch, with DynamoDB on
//! DynamoDB Local (AWS's own engine, which reports the capacity each request consumed) and SQS
//! on moto. Every DynamoDB request goes through callhook's stores, which ask for
//! `ReturnConsumedCapacity=TOTAL` and add up what comes back; every SQS request (the functions'
//! and the event source mappings' receives and deletes) is counted by the clients.
//!
//! The calls: 10 Telnyx events each, bodies of 1.5–3 KB, every fifth delivery (at random) sent a
//! second time later, the calls interleaved as concurrent calls are, the lifecycle draining its
//! queue between rounds as the event source mapping does, one finalization and one CRM dispatch
//! per call. docs/benchmarks.md ("Cost per event") has the figures and what they cost.

use callhook_integration::{Lcg, telnyx_request};
use chrono::{DateTime, Duration, Utc};

use crate::pipeline::Pipeline;

/// The budget per event (duplicates' cost included): docs/benchmarks.md.
const MAX_WRU_PER_EVENT: f64 = 6.0;
const MAX_RRU_PER_EVENT: f64 = 1.5;

const CALLS: usize = 20;
const EVENTS_PER_CALL: usize = 10;
/// Deliveries are signed and received at fixed times from here, a millisecond apart (as fast
/// as the test sends them, so no retry looks overdue): a signature
/// made at the wall-clock time packs a byte or two larger or smaller from run to run, and an
/// item near a 1 KB boundary then costs a unit more or less. Fixed, every run measures the
/// same bytes.
const FIRST_DELIVERY: i64 = 1_796_600_000;

fn delivery_time(n: usize) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(FIRST_DELIVERY * 1000 + n as i64).unwrap()
}

const WORDS: &[&str] = &[
    "order",
    "refund",
    "delivery",
    "account",
    "billing",
    "invoice",
    "support",
    "callback",
    "tomorrow",
    "address",
    "payment",
    "thanks",
    "please",
    "number",
    "agent",
    "appointment",
];

/// The Telnyx types of one call, in order; the last is its terminal fact.
const TYPES: [&str; EVENTS_PER_CALL] = [
    "call.initiated",
    "call.answered",
    "call.bridged",
    "call.playback.started",
    "call.playback.ended",
    "call.dtmf.received",
    "call.speak.started",
    "call.speak.ended",
    "call.recording.saved",
    "call.hangup",
];

/// One Telnyx webhook of 1.5–3 KB: the envelope, the payload a call carries, and the fields
/// real deliveries pad it with (client state, custom headers, quality stats, a transcript
/// snippet), all with this call's own values.
fn body(rng: &mut Lcg, call: &Call, index: usize, attempt: u32) -> String {
    let event_type = TYPES[index];
    let at = call.start + Duration::seconds(index as i64 * 7);
    let target = 1536 + rng.below(1536) as usize;
    let mut payload = serde_json::json!({
        "call_control_id": call.control_id,
        "call_leg_id": call.leg_id,
        "call_session_id": call.session_id,
        "connection_id": call.connection_id,
        "client_state": call.client_state,
        "from": call.from,
        "to": call.to,
        "direction": "incoming",
        "state": if index == EVENTS_PER_CALL - 1 { "hangup" } else { "active" },
        "start_time": call.start.to_rfc3339(),
        "custom_headers": [
            {"name": "X-Account", "value": format!("acct_{}", rng.hex(6))},
            {"name": "X-Campaign", "value": format!("cmp_{}", rng.hex(8))},
        ],
        "tags": ["support", WORDS[rng.below(WORDS.len() as u64) as usize]],
    });
    match event_type {
        "call.hangup" => {
            payload["hangup_cause"] = "normal_clearing".into();
            payload["hangup_source"] = "caller".into();
            payload["sip_hangup_cause"] = "200".into();
            payload["end_time"] = at.to_rfc3339().into();
            payload["call_quality_stats"] = serde_json::json!({
                "inbound": {"jitter_max_variance": format!("{}.{}", rng.below(9), rng.below(9)),
                            "mos": format!("4.{}", rng.below(9)), "packet_count": rng.below(9000).to_string()},
                "outbound": {"packet_count": rng.below(9000).to_string(), "skip_packet_count": "0"}
            });
        }
        "call.recording.saved" => {
            let id = rng.uuid();
            payload["recording_id"] = id.clone().into();
            payload["recording_urls"] = serde_json::json!({
                "mp3": format!("https://s3.amazonaws.com/telephony-recorder-prod/{}/{id}.mp3", call.connection_id),
                "wav": format!("https://s3.amazonaws.com/telephony-recorder-prod/{}/{id}.wav", call.connection_id),
            });
            payload["channels"] = "single".into();
        }
        "call.dtmf.received" => payload["digit"] = (rng.below(10)).to_string().into(),
        _ => {}
    }
    // Free text to reach the size real deliveries have (what the caller said, say).
    let mut text = String::new();
    let so_far = payload.to_string().len() + 300;
    while so_far + text.len() < target {
        text.push_str(WORDS[rng.below(WORDS.len() as u64) as usize]);
        text.push(' ');
    }
    payload["transcription_text"] = text.trim_end().into();
    serde_json::json!({
        "data": {
            "event_type": event_type,
            "id": call.event_ids[index],
            "occurred_at": at.to_rfc3339(),
            "payload": payload,
            "record_type": "event",
        },
        "meta": {"attempt": attempt, "delivered_to": "https://hooks.example.com/webhooks/telnyx"},
    })
    .to_string()
}

struct Call {
    control_id: String,
    leg_id: String,
    session_id: String,
    connection_id: String,
    client_state: String,
    from: String,
    to: String,
    start: chrono::DateTime<Utc>,
    event_ids: Vec<String>,
}

impl Call {
    fn new(rng: &mut Lcg) -> Call {
        Call {
            control_id: format!("v3:{}", rng.hex(40)),
            leg_id: rng.uuid(),
            session_id: rng.uuid(),
            connection_id: rng.below(10_u64.pow(18)).to_string(),
            client_state: rng.hex(24),
            from: format!("+1555{:07}", rng.below(10_000_000)),
            to: format!("+1312{:07}", rng.below(10_000_000)),
            start: delivery_time(0) - Duration::minutes(10),
            event_ids: (0..EVENTS_PER_CALL).map(|_| rng.uuid()).collect(),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumed_capacity_per_event_stays_within_the_budget() {
    let pipeline = Pipeline::start("callhook-capacity").await;
    let (ingest, capacity) = (&pipeline.ingest, &pipeline.capacity);

    let mut rng = Lcg(0x5eed_cafe);
    let calls: Vec<Call> = (0..CALLS).map(|_| Call::new(&mut rng)).collect();
    let mut deliveries = 0usize;
    let mut duplicates = 0usize;
    let mut later: Vec<String> = Vec::new();
    for round in 0..EVENTS_PER_CALL {
        for call in &calls {
            let mut bodies = vec![body(&mut rng, call, round, 1)];
            if rng.below(5) == 0 {
                later.push(body(&mut rng, call, round, 2));
            }
            // Retries of earlier rounds arrive among this round's deliveries.
            if !later.is_empty() && rng.below(2) == 0 {
                bodies.push(later.remove(0));
                duplicates += 1;
            }
            for body in &bodies {
                let answer = ingest
                    .handle(&telnyx_request(body, delivery_time(deliveries)))
                    .await;
                assert_eq!(answer.status(), 200, "{:?}", answer.body);
                deliveries += 1;
            }
        }
        pipeline.drain_lifecycle().await;
    }
    for body in later.drain(..) {
        let answer = ingest
            .handle(&telnyx_request(&body, delivery_time(deliveries)))
            .await;
        assert_eq!(answer.result(), "duplicate");
        deliveries += 1;
        duplicates += 1;
    }
    pipeline.drain_lifecycle().await;
    pipeline.drain_dispatch().await;

    // Every call finalized once and reached the CRM once.
    assert_eq!(pipeline.crm_received("call.completed").len(), CALLS);
    // Typical bodies stay in their item: no S3 request is part of their cost.
    let objects = pipeline.stack.bucket_keys().await;
    assert!(objects.is_empty(), "typical bodies went to S3: {objects:?}");

    let events = (CALLS * EVENTS_PER_CALL) as f64;
    let units = capacity.units();
    let (wru, rru) = (units.write / events, units.read / events);
    let sqs_per_event = pipeline.sqs_requests.get() as f64 / events;
    println!(
        "capacity: wru_per_event={wru:.2} rru_per_event={rru:.2} sqs_per_event={sqs_per_event:.2}"
    );
    println!(
        "({} events of {CALLS} calls, {deliveries} deliveries of which {duplicates} duplicates; {:.0} WRU, {:.0} RRU, {} SQS requests)",
        events,
        units.write,
        units.read,
        pipeline.sqs_requests.get()
    );
    for (table, units) in capacity.by_table() {
        println!(
            "  {table}: {:.2} WRU, {:.2} RRU per event",
            units.write / events,
            units.read / events
        );
    }
    // Counted, not merely under budget: every table the pipeline writes reports its units,
    // and each event costs at least its own put.
    let tables = capacity.by_table();
    for table in ["EventsTable", "CallsTable", "LedgerTable"] {
        assert!(
            tables
                .iter()
                .any(|(name, units)| name.ends_with(table) && units.write > 0.0),
            "no write units counted for the {table}: {tables:?}"
        );
    }
    assert!(
        wru >= 1.0,
        "{wru:.2} WRU per event: the writes were not counted"
    );
    assert!(
        wru <= MAX_WRU_PER_EVENT,
        "{wru:.2} WRU per event is over the budget of {MAX_WRU_PER_EVENT}"
    );
    assert!(
        rru <= MAX_RRU_PER_EVENT,
        "{rru:.2} RRU per event is over the budget of {MAX_RRU_PER_EVENT}"
    );
}
