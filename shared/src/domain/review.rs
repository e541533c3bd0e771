//! What needs a person: review items, their reasons and statuses, and their ids. The review
//! table's attributes are described in docs/operations.md ("Review items").

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::call::CallRecord;
use super::event::CanonicalEvent;
pub use super::reason::ReviewReason;
use super::text::{MAX_FIELD_BYTES, capped, json_len, truncate_utf8};
use crate::limits::{RESPONSE_BODY_LIMIT, REVIEW_DETAIL_LIMIT};

/// The largest canonical envelope a review item copies; a larger one is kept by reference to
/// the stored event.
pub const MAX_EVENT_PAYLOAD_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReviewStatus {
    Open,
    Replayed,
    Discarded,
}

impl ReviewStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ReviewStatus::Open => "open",
            ReviewStatus::Replayed => "replayed",
            ReviewStatus::Discarded => "discarded",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "open" => Some(ReviewStatus::Open),
            "replayed" => Some(ReviewStatus::Replayed),
            "discarded" => Some(ReviewStatus::Discarded),
            _ => None,
        }
    }
}

/// `event#{event_id}`: the review item of a stored event.
pub fn event_pk(event_id: &str) -> String {
    format!("event#{event_id}")
}

/// `dispatch#{dispatch_id}`: the review item of a failed dispatch.
pub fn dispatch_pk(dispatch_id: &str) -> String {
    format!("dispatch#{dispatch_id}")
}

/// `dlq#{queue}#{message_id}`: the review item of a dead letter.
pub fn dead_letter_pk(queue: &str, message_id: &str) -> String {
    format!("dlq#{queue}#{message_id}")
}

/// One thing that needs a person.
#[derive(Debug, Clone, PartialEq)]
pub struct ReviewItem {
    pub pk: String,
    pub reason: ReviewReason,
    pub subject_id: String,
    pub payload: Value,
    pub attempts: u32,
    pub detail: String,
    pub status_code: Option<u16>,
    pub response_body: Option<String>,
    pub status: ReviewStatus,
    pub created_at: DateTime<Utc>,
    /// Event items only: the event's provider, type and receipt time.
    pub provider: Option<String>,
    pub event_type: Option<String>,
    pub received_at: Option<DateTime<Utc>>,
}

impl ReviewItem {
    /// An open item; `detail` and `response_body` are truncated to their limits.
    #[allow(clippy::too_many_arguments)]
    pub fn open(
        pk: String,
        reason: ReviewReason,
        subject_id: &str,
        payload: Value,
        attempts: u32,
        detail: &str,
        status_code: Option<u16>,
        response_body: Option<&str>,
        now: DateTime<Utc>,
    ) -> ReviewItem {
        ReviewItem {
            pk,
            reason,
            subject_id: subject_id.to_owned(),
            payload,
            attempts,
            detail: truncate_utf8(detail, REVIEW_DETAIL_LIMIT).to_owned(),
            status_code,
            response_body: response_body.map(|b| truncate_utf8(b, RESPONSE_BODY_LIMIT).to_owned()),
            status: ReviewStatus::Open,
            created_at: now,
            provider: None,
            event_type: None,
            received_at: None,
        }
    }

    /// `event#{event_id}`: an event the lifecycle did not apply, for `reason`. `payload` is the
    /// canonical envelope (a reference to the stored event when that is over
    /// [`MAX_EVENT_PAYLOAD_BYTES`]); `attempts` is 1 (the store counts further ones).
    pub fn event(
        event: &CanonicalEvent,
        reason: impl Into<ReviewReason>,
        now: DateTime<Utc>,
    ) -> ReviewItem {
        let reason = reason.into();
        let detail = event
            .review
            .as_ref()
            .filter(|note| note.reason == reason)
            .map(|note| note.detail.clone())
            .unwrap_or_else(|| {
                format!("{reason}: the lifecycle did not apply {}", event.event_type)
            });
        let mut payload = serde_json::to_value(event.envelope()).unwrap_or(Value::Null);
        if json_len(&payload) > MAX_EVENT_PAYLOAD_BYTES {
            // The stored event has all of it; the item stays well inside DynamoDB's limit.
            payload = serde_json::json!({ "$event": event.event_id });
        }
        let mut item = ReviewItem::open(
            event_pk(&event.event_id),
            reason,
            &event.event_id,
            payload,
            1,
            &detail,
            None,
            None,
            now,
        );
        item.provider = Some(event.provider.clone());
        item.event_type = Some(capped(&event.event_type, MAX_FIELD_BYTES));
        item.received_at = Some(event.received_at);
        item
    }

    /// The event id, when this is an event's item.
    pub fn event_id(&self) -> Option<&str> {
        self.pk.strip_prefix("event#")
    }

    /// `call#{call_id}`, reason `stale_call`: a call finalized as `unknown` because nobody
    /// could say how it ended; `detail` says why. The payload is the record as it was.
    pub fn stale_call(record: &CallRecord, detail: &str, now: DateTime<Utc>) -> ReviewItem {
        let payload = serde_json::to_value(record.by_reference()).unwrap_or(Value::Null);
        let mut item = ReviewItem::open(
            format!("call#{}", record.call_id),
            ReviewReason::StaleCall,
            &record.call_id,
            payload,
            1,
            detail,
            None,
            None,
            now,
        );
        item.provider = Some(record.provider.clone());
        item
    }

    /// `dispatch#{dispatch_id}`, reason `dispatch_failed`.
    pub fn dispatch_failed(
        dispatch_id: &str,
        message: Value,
        attempts: u32,
        detail: &str,
        status_code: Option<u16>,
        response_body: Option<&str>,
        now: DateTime<Utc>,
    ) -> ReviewItem {
        ReviewItem::open(
            dispatch_pk(dispatch_id),
            ReviewReason::DispatchFailed,
            dispatch_id,
            message,
            attempts,
            detail,
            status_code,
            response_body,
            now,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_event_of_any_size_makes_a_bounded_item() {
        let control = "\u{1}".repeat(22_000);
        let mut event = CanonicalEvent::new("telnyx", "u1", &control, Utc::now());
        event.facts.transcript = Some(Value::String("t".repeat(100_000)));
        let item = ReviewItem::event(&event, ReviewReason::UnknownType, Utc::now());
        assert_eq!(item.payload, json!({"$event": "telnyx#u1"}));
        assert_eq!(
            item.event_type.as_ref().map(String::len),
            Some(MAX_FIELD_BYTES)
        );
        assert!(item.detail.len() <= REVIEW_DETAIL_LIMIT);

        let small = CanonicalEvent::new("telnyx", "u2", "call.teleported", Utc::now());
        let item = ReviewItem::event(&small, ReviewReason::UnknownType, Utc::now());
        assert_eq!(item.payload["type"], "call.teleported");
    }

    #[test]
    fn reasons_read_back_as_written() {
        for text in [
            "unknown_type",
            "malformed",
            "no_call_id",
            "call_mismatch",
            "requested",
            "dispatch_failed",
            "provider_delivery_failed",
            "response_required",
            "dlq:events",
            "something_new",
        ] {
            let reason = ReviewReason::parse(text);
            assert_eq!(reason, text);
            let json = serde_json::to_value(&reason).unwrap();
            assert_eq!(json, json!(text));
            assert_eq!(
                serde_json::from_value::<ReviewReason>(json).unwrap(),
                reason
            );
        }
        assert_eq!(
            ReviewReason::parse("dlq:dispatch").dead_letter_queue(),
            Some("dispatch")
        );
        assert_eq!(ReviewReason::Malformed.dead_letter_queue(), None);
    }
}
