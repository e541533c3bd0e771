//! What the events queue carries: the canonical event as JSON, always a message the lifecycle
//! can read back.

use crate::domain::event::CanonicalEvent;
use crate::limits::{MAX_JSON_DEPTH, MAX_MESSAGE_BYTES};

/// An events-queue message that is not a canonical event.
#[derive(Debug, thiserror::Error)]
#[error("message is not a canonical event: {0}")]
pub struct Unreadable(pub String);

/// Reads an events-queue message body.
pub fn parse(body: &str) -> Result<CanonicalEvent, Unreadable> {
    serde_json::from_str(body).map_err(|e| Unreadable(e.to_string()))
}

/// The canonical event as the queue carries it, always a message the lifecycle can read back.
/// Over the SQS limit, or nested deeper than serde_json reads (a body at its depth limit is one
/// level deeper inside the event), the payload is left out: the raw body stays in the events
/// table and the reducer needs only the canonical fields. If that is still too large, the large
/// facts go by reference to the stored event (whoever needs them reads them there); only if
/// even that fails are the facts left out.
pub fn queue_message(event: &CanonicalEvent) -> String {
    let full = serde_json::to_string(event).unwrap_or_default();
    if readable(&full) {
        return full;
    }
    tracing::warn!(event_id = %event.event_id, bytes = full.len(), "payload left out of queue message");
    let mut lean = event.envelope();
    let message = serde_json::to_string(&lean).unwrap_or_default();
    if readable(&message) {
        return message;
    }
    lean.facts.by_reference(&event.event_id);
    let message = serde_json::to_string(&lean).unwrap_or_default();
    if readable(&message) {
        return message;
    }
    tracing::warn!(event_id = %event.event_id, bytes = message.len(), "facts left out of queue message");
    lean.facts = Default::default();
    serde_json::to_string(&lean).unwrap_or_default()
}

fn readable(message: &str) -> bool {
    message.len() <= MAX_MESSAGE_BYTES && nesting(message) <= MAX_JSON_DEPTH
}

/// How deeply JSON text nests arrays and objects.
fn nesting(json: &str) -> usize {
    let (mut depth, mut deepest, mut in_string, mut escaped) = (0usize, 0, false, false);
    for b in json.bytes() {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
        } else {
            match b {
                b'"' => in_string = true,
                b'[' | b'{' => {
                    depth += 1;
                    deepest = deepest.max(depth);
                }
                b']' | b'}' => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
    }
    deepest
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use serde_json::Value;

    use super::*;

    #[test]
    fn queue_messages_stay_within_serde_json_depth() {
        assert_eq!(nesting(r#"{"a":["[{\"]",{"b":"}}}"}]}"#), 3);
        let mut event = CanonicalEvent::new("telnyx", "deep", "", Utc::now());
        event.data =
            serde_json::from_str(&format!("{}{}", "[".repeat(127), "]".repeat(127))).unwrap();
        let back: CanonicalEvent = serde_json::from_str(&queue_message(&event)).unwrap();
        assert!(back.data.is_null());
    }

    #[test]
    fn facts_too_large_to_queue_go_by_reference() {
        let mut event = CanonicalEvent::new("retell", "big", "call_analyzed", Utc::now());
        event.facts.transcript = Some(Value::String("y".repeat(MAX_MESSAGE_BYTES)));
        event.facts.cost = Some(serde_json::json!({"usd": 1}));
        let back: CanonicalEvent = serde_json::from_str(&queue_message(&event)).unwrap();
        assert_eq!(
            back.facts.transcript,
            Some(serde_json::json!({"$event": "retell#big"}))
        );
        assert_eq!(
            back.facts.cost, event.facts.cost,
            "small facts travel as they are"
        );
    }

    #[test]
    fn oversized_payloads_leave_the_queue_message_lean() {
        let mut event = CanonicalEvent::new("telnyx", "big", "call.hangup", Utc::now());
        event.data = Value::String("x".repeat(MAX_MESSAGE_BYTES));
        let message = queue_message(&event);
        assert!(message.len() < 1024);
        let back: CanonicalEvent = serde_json::from_str(&message).unwrap();
        assert_eq!(back.event_id, "telnyx#big");
        assert!(back.data.is_null());
    }
}
