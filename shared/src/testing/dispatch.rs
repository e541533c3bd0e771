//! Fixtures the dispatch tests share: a dispatch environment, a final call record and its
//! finalization message.

use chrono::{DateTime, TimeZone, Utc};

use crate::config::Env;
use crate::config::vars::{
    CALLBACK_QUEUE_URL, CRM_SIGNING_SECRET, CRM_WEBHOOK_URL, TICKETING_WEBHOOK_URL,
};
use crate::domain::call::{CallRecord, CallStatus, Effect, finalize_dispatch_id};
use crate::domain::dispatch::DispatchMessage;
use crate::domain::event::{Direction, Outcome};

pub const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
pub const CRM: &str = "https://crm.example/hook";
pub const TICKETS: &str = "https://tickets.example/hook";
pub const CALLBACKS: &str = "https://sqs.us-east-1.amazonaws.com/123456789012/callbacks";
pub const CALL: &str = "telnyx#call-1";

pub fn now() -> DateTime<Utc> {
    Utc.timestamp_opt(1_700_000_000, 0).unwrap()
}

pub fn env(pairs: &[(&str, &str)]) -> Env {
    let mut env = Env::from_pairs([
        ("CALLS_TABLE", "calls"),
        ("EVENTS_TABLE", "events"),
        ("EVENTS_BUCKET", "bodies"),
        ("LEDGER_TABLE", "ledger"),
        ("REVIEW_TABLE", "review"),
        (CRM_WEBHOOK_URL, CRM),
        (TICKETING_WEBHOOK_URL, TICKETS),
        (CALLBACK_QUEUE_URL, CALLBACKS),
        (CRM_SIGNING_SECRET, SECRET),
        // SECRET is the spec's public vector: accepted in dev mode only.
        ("CALLHOOK_DEV", "true"),
    ]);
    for (k, v) in pairs {
        env.set(k, *v);
    }
    env
}

pub fn record(outcome: Option<Outcome>) -> CallRecord {
    let mut r = CallRecord::new(CALL, "telnyx");
    r.status = Some(CallStatus::Ended);
    r.rank = 5;
    r.outcome = outcome;
    r.direction = Some(Direction::Inbound);
    r.from = Some("+15550100".into());
    r.to = Some("+15550199".into());
    r.started_at = Some(now() - chrono::Duration::seconds(60));
    r.ended_at = Some(now() - chrono::Duration::seconds(10));
    r.event_count = 2;
    r.applied_event_ids = ["telnyx#e1".to_owned(), "telnyx#e2".to_owned()].into();
    r.final_event_id = Some("telnyx#e2".into());
    r
}

pub fn finalize(outcome: Option<Outcome>) -> DispatchMessage {
    DispatchMessage::from_effect(&Effect::Finalize {
        call_id: CALL.into(),
        event_id: "telnyx#e2".into(),
        outcome,
        dispatch_id: finalize_dispatch_id(CALL),
    })
    .unwrap()
}
