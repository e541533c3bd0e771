//! What is sent: the body a receiver gets for a message, and its Standard Webhooks headers.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::message::{DispatchMessage, MessageType};
use crate::domain::call::CallRecord;
use crate::domain::event::Direction;
use crate::signing::standard_webhooks;

/// The record as business systems see it: without the internal bookkeeping `sources` and
/// `applied_event_ids`.
pub fn call_view(record: &CallRecord) -> Value {
    let mut value = serde_json::to_value(record).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut value {
        map.remove("sources");
        map.remove("applied_event_ids");
    }
    value
}

/// The HTTP body (and the body of a non-finalization message routed to a queue):
/// `{"type", "dispatch_id", "event_id", "call"}`, plus `action` (the requested action) for
/// `call.action`.
pub fn http_body(message: &DispatchMessage, dispatch_id: &str, record: &CallRecord) -> Value {
    let mut body = json!({
        "type": message.message_type.as_str(),
        "dispatch_id": dispatch_id,
        "event_id": message.event_id,
        "call": call_view(record),
    });
    if message.message_type == MessageType::Action {
        body["action"] = record
            .actions
            .iter()
            .find(|a| a.event_id == message.event_id)
            .and_then(|a| serde_json::to_value(a).ok())
            .unwrap_or(Value::Null);
    }
    body
}

pub const CALLBACK_TYPE: &str = "callback.requested";

/// The call-back request sent to an SQS route for a finalization (docs/dispatch.md).
pub fn callback_body(
    message: &DispatchMessage,
    dispatch_id: &str,
    record: &CallRecord,
    now: DateTime<Utc>,
) -> Value {
    let callback_number = match record.direction {
        Some(Direction::Inbound) => record.from.clone(),
        Some(Direction::Outbound) => record.to.clone(),
        None => None,
    };
    json!({
        "type": CALLBACK_TYPE,
        "dispatch_id": dispatch_id,
        "call_id": record.call_id,
        "event_id": message.event_id,
        "provider": record.provider,
        "outcome": record.outcome.or(message.outcome),
        "direction": record.direction,
        "from": record.from,
        "to": record.to,
        "callback_number": callback_number,
        "attempted_at": record.started_at.or(record.ended_at),
        "ended_at": record.ended_at,
        "hangup_cause": record.hangup_cause,
        "requested_at": now,
    })
}

/// The body an SQS route receives.
pub fn queue_body(
    message: &DispatchMessage,
    dispatch_id: &str,
    record: &CallRecord,
    now: DateTime<Utc>,
) -> Value {
    match message.message_type {
        MessageType::Completed => callback_body(message, dispatch_id, record, now),
        _ => http_body(message, dispatch_id, record),
    }
}

/// A dispatch id as a header value: bytes outside visible ASCII, and `%`, are percent-encoded.
/// Deterministic, so a resend carries the same `webhook-id`.
pub fn webhook_id(dispatch_id: &str) -> String {
    let mut out = String::with_capacity(dispatch_id.len());
    for b in dispatch_id.bytes() {
        if (0x21..=0x7e).contains(&b) && b != b'%' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The headers of a signed delivery: content type and Standard Webhooks' three.
pub fn signed_headers(
    secret: &[u8],
    dispatch_id: &str,
    timestamp: i64,
    body: &[u8],
) -> Vec<(&'static str, String)> {
    let id = webhook_id(dispatch_id);
    let signature = standard_webhooks::sign(secret, &id, timestamp, body);
    vec![
        ("content-type", "application/json".to_owned()),
        (standard_webhooks::ID, id),
        (standard_webhooks::TIMESTAMP, timestamp.to_string()),
        (standard_webhooks::SIGNATURE, signature),
    ]
}
