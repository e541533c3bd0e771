//! The review function's logic: every message that reaches it becomes a review item a person can
//! see, fix and replay. Nothing it receives is dropped: a message whose item
//! cannot be written fails, and SQS keeps it.
//!
//! Two kinds of source, told apart by the record's `eventSourceARN`:
//! - **the review queue**: a canonical event sent for review gets the same `event#{event_id}`
//!   item the lifecycle writes (reason from its review note, else `requested`), and the
//!   stored event is marked `REVIEW` if it is not already processed; any other message gets a
//!   `queue#review#{message id}` item, reason `malformed`.
//! - **a dead-letter queue** (events, dispatch, call-back): a `dlq#{queue}#{message id}` item,
//!   reason `dlq:{queue}`, the message body kept as it was, `attempts` = the receive count, and
//!   `subject_id` = the event or dispatch id the message names (so `callhook review replay`
//!   can replay the event from its raw bytes, or send the message back to its source queue).

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::config::{Source, Sources};
use crate::domain::event::CanonicalEvent;
use crate::domain::review::{ReviewItem, ReviewReason, dead_letter_pk};
use crate::domain::text::{MAX_FIELD_BYTES, capped, truncate_utf8};
use crate::limits::REVIEW_PAYLOAD_LIMIT as PAYLOAD_LIMIT;
use crate::ports::{MarkForReview, ReviewStore, StoreError};

/// The review queue's label.
pub const REVIEW_QUEUE: &str = "review";

/// One SQS record as the review function sees it.
#[derive(Debug, Clone)]
pub struct Message<'a> {
    pub message_id: &'a str,
    pub body: &'a str,
    pub receive_count: u32,
    pub sent_at: Option<DateTime<Utc>>,
}

/// What a message becomes.
#[derive(Debug, Clone, PartialEq)]
pub enum Intake {
    /// A canonical event for review: its `event#…` item, then the event marked `REVIEW`.
    Event { item: ReviewItem, event_id: String },
    /// Anything else: one item, replacing an earlier one for the same message.
    Item(ReviewItem),
}

impl Intake {
    pub fn item(&self) -> &ReviewItem {
        match self {
            Intake::Event { item, .. } | Intake::Item(item) => item,
        }
    }
}

/// Pure: the review item (and mark) for a message from `source`.
pub fn classify(source: &Source, message: &Message<'_>, now: DateTime<Utc>) -> Intake {
    let parsed: Option<Value> = serde_json::from_str(message.body).ok();
    match source {
        Source::ReviewQueue => {
            if let Some(event) = parsed
                .clone()
                .and_then(|v| serde_json::from_value::<CanonicalEvent>(v).ok())
            {
                let reason = event
                    .review
                    .as_ref()
                    .map(|note| note.reason.clone())
                    .unwrap_or(ReviewReason::Requested);
                let item = ReviewItem::event(&event, reason, now);
                return Intake::Event {
                    item,
                    event_id: event.event_id,
                };
            }
            let mut item = ReviewItem::open(
                format!("queue#{REVIEW_QUEUE}#{}", message.message_id),
                ReviewReason::Malformed,
                message.message_id,
                payload(message.body, parsed),
                message.receive_count.max(1),
                "a message on the review queue that is not a canonical event",
                None,
                None,
                now,
            );
            item.received_at = message.sent_at;
            Intake::Item(item)
        }
        Source::DeadLetter(queue) => {
            // SQS keeps a message's receive count when it moves it to the DLQ, and the review
            // function's own receive adds one: what the source consumer tried is one less.
            let failed = message.receive_count.saturating_sub(1).max(1);
            let subject = parsed
                .as_ref()
                .and_then(|v| {
                    ["event_id", "dispatch_id"]
                        .iter()
                        .find_map(|field| v.get(*field).and_then(Value::as_str))
                })
                .unwrap_or(message.message_id)
                .to_owned();
            let detail = format!(
                "the {queue} queue's consumer failed this message {failed} time(s) and SQS moved it to the dead-letter queue{}",
                message
                    .sent_at
                    .map(|at| format!("; first sent {}", at.to_rfc3339()))
                    .unwrap_or_default()
            );
            // Capped as every sender string in an item is: a dead letter whose `type` is huge
            // must still make an item DynamoDB can write.
            let text = |field: &str| {
                parsed
                    .as_ref()
                    .and_then(|v| v.get(field)?.as_str().map(|t| capped(t, MAX_FIELD_BYTES)))
            };
            let (provider, event_type) = (text("provider"), text("type"));
            let mut item = ReviewItem::open(
                dead_letter_pk(queue, message.message_id),
                ReviewReason::DeadLetter(queue.clone()),
                &subject,
                payload(message.body, parsed),
                failed,
                &detail,
                None,
                None,
                now,
            );
            item.provider = provider;
            item.event_type = event_type;
            item.received_at = message.sent_at;
            Intake::Item(item)
        }
    }
}

/// The message as the item keeps it: its JSON when it is JSON, else the text; cut to
/// [`PAYLOAD_LIMIT`] (the cut is said in the value).
fn payload(body: &str, parsed: Option<Value>) -> Value {
    if body.len() > PAYLOAD_LIMIT {
        let kept = truncate_utf8(body, PAYLOAD_LIMIT);
        return Value::String(format!(
            "{kept}… [cut at {PAYLOAD_LIMIT} of {} bytes]",
            body.len()
        ));
    }
    parsed.unwrap_or_else(|| Value::String(body.to_owned()))
}

/// Whether a kept message was cut to [`PAYLOAD_LIMIT`]: it must not be sent again as if whole.
pub fn is_cut(payload: &Value) -> bool {
    payload.as_str().is_some_and(|text| {
        text.ends_with(" bytes]") && text.contains(&format!("… [cut at {PAYLOAD_LIMIT} of "))
    })
}

/// The review function: writes the item, then the mark.
pub struct ReviewIntake<R, M> {
    pub sources: Sources,
    pub review: R,
    pub events: M,
}

impl<R: ReviewStore, M: MarkForReview> ReviewIntake<R, M> {
    /// One record. Errors leave the message on its queue.
    pub async fn take(
        &self,
        source_arn: Option<&str>,
        message: &Message<'_>,
        now: DateTime<Utc>,
    ) -> Result<Intake, StoreError> {
        let source = self.sources.source(source_arn);
        let intake = classify(&source, message, now);
        match &intake {
            Intake::Event { item, event_id } => {
                // The item first, as the lifecycle does: a REVIEW event always has one.
                self.review.open_event(item).await?;
                self.events
                    .mark_review(event_id, &item.reason.as_str())
                    .await?;
            }
            Intake::Item(item) => self.review.put(item).await?,
        }
        Ok(intake)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Mutex;
    use std::sync::atomic::Ordering;

    use super::*;
    use crate::config::Env;
    use crate::domain::review::ReviewStatus;
    use crate::testing::MemoryReviewStore;

    const EVENTS_DLQ: &str = "arn:aws:sqs:us-east-1:123456789012:callhook-EventsDeadLetterQueue";
    const REVIEW_Q: &str = "arn:aws:sqs:us-east-1:123456789012:callhook-ReviewQueue";

    fn sources() -> Sources {
        Sources::from_env(&Env::from_pairs([
            ("EVENTS_DLQ_ARN", EVENTS_DLQ),
            ("REVIEW_QUEUE_ARN", REVIEW_Q),
        ]))
        .unwrap()
    }

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + secs, 0).unwrap()
    }

    fn message(body: &str) -> Message<'_> {
        Message {
            message_id: "m-1",
            body,
            receive_count: 6,
            sent_at: Some(at(0)),
        }
    }

    #[derive(Default)]
    struct Marks(
        Mutex<HashMap<String, String>>,
        std::sync::atomic::AtomicBool,
    );

    impl MarkForReview for Marks {
        async fn mark_review(&self, event_id: &str, reason: &str) -> Result<bool, StoreError> {
            if self.1.load(Ordering::SeqCst) {
                return Err(StoreError::Unavailable("injected".into()));
            }
            self.0
                .lock()
                .unwrap()
                .insert(event_id.to_owned(), reason.to_owned());
            Ok(true)
        }
    }

    #[test]
    fn sources_come_from_the_arns_and_unknown_queues_keep_their_name() {
        let s = sources();
        assert_eq!(s.source(Some(REVIEW_Q)), Source::ReviewQueue);
        assert_eq!(
            s.source(Some(EVENTS_DLQ)),
            Source::DeadLetter("events".into())
        );
        assert_eq!(
            s.source(Some("arn:aws:sqs:us-east-1:1:other-dlq")),
            Source::DeadLetter("other-dlq".into())
        );
        assert_eq!(s.source(None), Source::DeadLetter("unknown".into()));
        let err = Sources::from_env(&Env::from_pairs([("EVENTS_DLQ_ARN", "queue")])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "EVENTS_DLQ_ARN is invalid: not an SQS queue ARN"
        );
    }

    #[test]
    fn a_dead_letter_keeps_the_message_and_names_its_event() {
        let body = r#"{"event_id":"telnyx#e1","provider":"telnyx","type":"call.hangup","v":"old"}"#;
        let intake = classify(&Source::DeadLetter("events".into()), &message(body), at(9));
        let Intake::Item(item) = intake else {
            panic!("a dead letter is one item")
        };
        assert_eq!(item.pk, "dlq#events#m-1");
        assert_eq!(item.reason, "dlq:events");
        assert_eq!(item.subject_id, "telnyx#e1");
        assert_eq!(item.attempts, 5);
        assert_eq!(item.payload["v"], "old");
        assert_eq!(item.provider.as_deref(), Some("telnyx"));
        assert_eq!(item.status, ReviewStatus::Open);
        assert!(item.detail.contains("5 time(s)"), "{}", item.detail);
        assert_eq!(item.reason.dead_letter_queue(), Some("events"));

        // Not JSON: kept as text, the subject is the message.
        let intake = classify(
            &Source::DeadLetter("dispatch".into()),
            &message("\u{0}not json"),
            at(9),
        );
        assert_eq!(intake.item().payload, Value::String("\u{0}not json".into()));
        assert_eq!(intake.item().subject_id, "m-1");
    }

    #[test]
    fn a_dead_letters_provider_and_type_are_capped() {
        let huge = "t".repeat(200_000);
        let body = serde_json::json!({"provider": huge, "type": huge}).to_string();
        let intake = classify(&Source::DeadLetter("events".into()), &message(&body), at(9));
        let item = intake.item();
        assert!(item.provider.as_ref().unwrap().len() <= MAX_FIELD_BYTES);
        assert!(item.event_type.as_ref().unwrap().len() <= MAX_FIELD_BYTES);
    }

    #[test]
    fn huge_bodies_are_cut_and_say_so() {
        let body = "é".repeat(PAYLOAD_LIMIT);
        let intake = classify(&Source::DeadLetter("events".into()), &message(&body), at(0));
        let Value::String(kept) = &intake.item().payload else {
            panic!("text")
        };
        assert!(kept.len() < PAYLOAD_LIMIT + 100);
        assert!(
            kept.ends_with(&format!("of {} bytes]", body.len())),
            "{kept}"
        );
        assert!(is_cut(&intake.item().payload), "replay must refuse it");
        assert!(!is_cut(&Value::String("a whole message".into())));
    }

    #[tokio::test]
    async fn a_canonical_event_on_the_review_queue_gets_its_event_item_and_mark() {
        let intake = ReviewIntake {
            sources: sources(),
            review: MemoryReviewStore::default(),
            events: Marks::default(),
        };
        let mut event = CanonicalEvent::new("telnyx", "u1", "call.teleported", at(0));
        crate::providers::mark_unknown(&mut event);
        let body = serde_json::to_string(&event).unwrap();
        let result = intake
            .take(Some(REVIEW_Q), &message(&body), at(3))
            .await
            .unwrap();
        assert!(matches!(result, Intake::Event { .. }));
        let item = intake.review.get("event#telnyx#u1").expect("event item");
        assert_eq!(item.reason, "unknown_type");
        assert_eq!(
            intake.events.0.lock().unwrap().get("telnyx#u1").unwrap(),
            "unknown_type"
        );

        // Without a note: "requested".
        let plain = CanonicalEvent::new("telnyx", "u2", "call.hangup", at(0));
        let body = serde_json::to_string(&plain).unwrap();
        intake
            .take(Some(REVIEW_Q), &message(&body), at(3))
            .await
            .unwrap();
        assert_eq!(
            intake.review.get("event#telnyx#u2").unwrap().reason,
            ReviewReason::Requested
        );

        // Not an event: a malformed item of its own.
        intake
            .take(Some(REVIEW_Q), &message("[1,2"), at(3))
            .await
            .unwrap();
        let item = intake.review.get("queue#review#m-1").unwrap();
        assert_eq!(
            (&*item.reason.as_str(), &item.payload),
            ("malformed", &Value::String("[1,2".into()))
        );
    }

    #[tokio::test]
    async fn a_store_failure_is_an_error_so_the_message_stays_queued() {
        let intake = ReviewIntake {
            sources: sources(),
            review: MemoryReviewStore::default(),
            events: Marks::default(),
        };
        intake.review.fail.store(true, Ordering::SeqCst);
        assert!(
            intake
                .take(Some(EVENTS_DLQ), &message("{}"), at(0))
                .await
                .is_err()
        );
        intake.review.fail.store(false, Ordering::SeqCst);
        intake.events.1.store(true, Ordering::SeqCst);
        let event = CanonicalEvent::new("telnyx", "u3", "call.hangup", at(0));
        let body = serde_json::to_string(&event).unwrap();
        assert!(
            intake
                .take(Some(REVIEW_Q), &message(&body), at(0))
                .await
                .is_err()
        );
    }
}
