//! Replay (operator tool): normalize stored events again from their raw bytes with the code as it
//! is now, and re-enqueue them on the events queue for the lifecycle.
//!
//! What happens to each event by its status (PROCESSED skipped, REVIEW sent when the current
//! code no longer reviews it, RECEIVED sent as the sweeper would) is in docs/operations.md
//! ("Replay"). The lifecycle applies an event to its call once, so replaying is idempotent.

use serde::{Deserialize, Serialize};

use super::events_queue::queue_message;
use super::whole_calls::normalize_stored;
use crate::domain::event::CanonicalEvent;
use crate::domain::review::{ReviewStatus, event_pk};
pub use crate::ports::EventSelection as Selection;
use crate::ports::{
    EventReader, EventStatus, Queue, QueueError, ReviewAdmin, StoreError, StoredEvent,
};
use crate::providers::Providers;

/// How often [`Replayer::run`] reports progress (events handled).
pub const PROGRESS_EVERY: u64 = 100;

/// What replay did with one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplayOutcome {
    Requeued,
    /// PROCESSED: already applied; replaying changes nothing (sent only with `force`).
    SkippedProcessed,
    /// REVIEW, and the current code still reviews it.
    StillReview,
    /// REVIEW, and a person discarded its review item.
    SkippedDiscarded,
    /// No such event (never stored, or expired by TTL).
    Missing,
    /// Its provider is not configured here.
    SkippedUnconfigured,
    /// Unreadable, or its body now normalizes to another id.
    SkippedUnreadable,
}

impl ReplayOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            ReplayOutcome::Requeued => "requeued",
            ReplayOutcome::SkippedProcessed => "skipped_processed",
            ReplayOutcome::StillReview => "still_review",
            ReplayOutcome::SkippedDiscarded => "skipped_discarded",
            ReplayOutcome::Missing => "missing",
            ReplayOutcome::SkippedUnconfigured => "skipped_unconfigured",
            ReplayOutcome::SkippedUnreadable => "skipped_unreadable",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventResult {
    pub event_id: String,
    /// The event's status before the replay (absent when missing).
    pub status: Option<String>,
    pub outcome: ReplayOutcome,
    /// Why it was skipped, for a person.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Its review item was set to `replayed`.
    #[serde(default)]
    pub review_replayed: bool,
}

/// What one replay did. `selected` = the sum of the outcome counts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplayReport {
    pub selected: u64,
    pub requeued: u64,
    pub skipped_processed: u64,
    pub still_review: u64,
    pub skipped_discarded: u64,
    pub missing: u64,
    pub skipped_unconfigured: u64,
    pub skipped_unreadable: u64,
    /// Review items set to `replayed`.
    pub review_items_replayed: u64,
    pub events: Vec<EventResult>,
}

impl ReplayReport {
    fn count(&mut self, result: EventResult) {
        self.selected += 1;
        let counter = match result.outcome {
            ReplayOutcome::Requeued => &mut self.requeued,
            ReplayOutcome::SkippedProcessed => &mut self.skipped_processed,
            ReplayOutcome::StillReview => &mut self.still_review,
            ReplayOutcome::SkippedDiscarded => &mut self.skipped_discarded,
            ReplayOutcome::Missing => &mut self.missing,
            ReplayOutcome::SkippedUnconfigured => &mut self.skipped_unconfigured,
            ReplayOutcome::SkippedUnreadable => &mut self.skipped_unreadable,
        };
        *counter += 1;
        if result.review_replayed {
            self.review_items_replayed += 1;
        }
        self.events.push(result);
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] QueueError),
}

/// What to do with one stored event (pure: no I/O).
#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    Skip(ReplayOutcome, Option<String>),
    /// Re-enqueue this event, normalized again.
    Send(Box<CanonicalEvent>),
}

/// Normalizes `stored` again, as first received, and decides.
pub fn plan(stored: &StoredEvent, providers: &Providers, force: bool) -> Plan {
    if stored.status == EventStatus::Processed && !force {
        return Plan::Skip(
            ReplayOutcome::SkippedProcessed,
            Some("already applied: replaying changes nothing (--force sends it anyway)".into()),
        );
    }
    let Some(event) = normalize_stored(stored, providers) else {
        return Plan::Skip(
            ReplayOutcome::SkippedUnconfigured,
            Some(format!("provider {} is not configured", stored.provider)),
        );
    };
    if event.event_id != stored.event_id {
        return Plan::Skip(
            ReplayOutcome::SkippedUnreadable,
            Some(format!("the body now normalizes to {}", event.event_id)),
        );
    }
    if stored.status == EventStatus::Review
        && !force
        && let Some(note) = &event.review
    {
        return Plan::Skip(
            ReplayOutcome::StillReview,
            Some(format!("still {}: {}", note.reason, note.detail)),
        );
    }
    Plan::Send(Box::new(event))
}

/// Replays stored events onto the events queue.
pub struct Replayer<E, R, Q> {
    pub events: E,
    /// The review table, to mark items `replayed` (and to honour `discarded`).
    pub review: Option<R>,
    /// The events queue.
    pub queue: Q,
    pub providers: Providers,
    /// Send PROCESSED, still-reviewed and discarded events too.
    pub force: bool,
}

impl<E: EventReader, R: ReviewAdmin, Q: Queue> Replayer<E, R, Q> {
    /// The ids of the selected events, oldest first.
    pub async fn select(&self, selection: &Selection) -> Result<Vec<String>, StoreError> {
        self.events.select(selection).await
    }

    /// Replays the selection; `progress` is called every [`PROGRESS_EVERY`] events. Stops at the
    /// first store or queue failure (what was done stays done; running it again is harmless).
    pub async fn run(
        &self,
        selection: &Selection,
        mut progress: impl FnMut(&ReplayReport),
    ) -> Result<ReplayReport, ReplayError> {
        let ids = self.select(selection).await?;
        let mut report = ReplayReport::default();
        for id in &ids {
            let result = self.replay_one(id).await?;
            report.count(result);
            if report.selected % PROGRESS_EVERY == 0 {
                progress(&report);
            }
        }
        Ok(report)
    }

    /// Replays one event.
    pub async fn replay_one(&self, event_id: &str) -> Result<EventResult, ReplayError> {
        let skip = |status: Option<&StoredEvent>, outcome, detail| EventResult {
            event_id: event_id.to_owned(),
            status: status.map(|s| s.status.as_str().to_owned()),
            outcome,
            detail,
            review_replayed: false,
        };
        let stored = match self.events.get_event(event_id).await {
            Ok(Some(stored)) => stored,
            Ok(None) => return Ok(skip(None, ReplayOutcome::Missing, None)),
            Err(StoreError::Corrupt(_, what)) => {
                return Ok(skip(None, ReplayOutcome::SkippedUnreadable, Some(what)));
            }
            Err(err) => return Err(err.into()),
        };
        let event = match plan(&stored, &self.providers, self.force) {
            Plan::Skip(outcome, detail) => return Ok(skip(Some(&stored), outcome, detail)),
            Plan::Send(event) => event,
        };
        let mut review_replayed = false;
        if stored.status == EventStatus::Review
            && let Some(review) = &self.review
        {
            let pk = event_pk(event_id);
            let item = review.get(&pk).await?;
            if item.as_ref().map(|i| i.status) == Some(ReviewStatus::Discarded) && !self.force {
                return Ok(skip(
                    Some(&stored),
                    ReplayOutcome::SkippedDiscarded,
                    Some("its review item was discarded (--force sends it anyway)".into()),
                ));
            }
            // Before sending: if the lifecycle reviews it again, it reopens the item, and that
            // must not be overwritten by this mark.
            if item.is_some() {
                review_replayed = review.set_status(&pk, ReviewStatus::Replayed).await?;
            }
        }
        self.queue.send(queue_message(&event), 0).await?;
        tracing::info!(
            event_id,
            status = stored.status.as_str(),
            "replay: re-enqueued"
        );
        Ok(EventResult {
            event_id: event_id.to_owned(),
            status: Some(stored.status.as_str().to_owned()),
            outcome: ReplayOutcome::Requeued,
            detail: None,
            review_replayed,
        })
    }
}

#[cfg(test)]
mod tests {
    use chrono::DateTime;

    use super::*;
    use crate::config::Env;
    use crate::providers::{FIXTURE_SEED, Headers, dev_signer};

    fn providers() -> Providers {
        let mut env = Env::from_pairs(dev_signer("telnyx", &FIXTURE_SEED).unwrap().verifier_env());
        env.set("CALLHOOK_DEV", "true");
        Providers::from_env(&env).unwrap()
    }

    fn stored(event_type: &str, status: EventStatus) -> StoredEvent {
        let body = format!(
            r#"{{"data":{{"event_type":"{event_type}","id":"r1","occurred_at":"2024-01-01T00:00:00Z","payload":{{"call_session_id":"s1"}},"record_type":"event"}},"meta":{{"attempt":1}}}}"#
        );
        StoredEvent {
            event_id: "telnyx#r1".into(),
            provider: "telnyx".into(),
            status,
            raw_body: body.into_bytes(),
            headers: Headers::new(),
            received_at: DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
            call_id: None,
            queue_failed: false,
        }
    }

    fn outcome(plan: Plan) -> Option<ReplayOutcome> {
        match plan {
            Plan::Skip(outcome, _) => Some(outcome),
            Plan::Send(_) => None,
        }
    }

    #[test]
    fn replay_plans_follow_the_stored_status_and_the_current_mapping() {
        let p = providers();
        // A review event whose type is known now: sent.
        let fixed = plan(&stored("call.answered", EventStatus::Review), &p, false);
        let Plan::Send(event) = fixed else {
            panic!("sent: {fixed:?}")
        };
        assert_eq!(event.event_id, "telnyx#r1");
        assert!(event.review.is_none());
        assert_eq!(
            event.received_at,
            DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
            "normalized as first received"
        );
        // Still unknown: left, unless forced.
        let unknown = stored("call.teleported", EventStatus::Review);
        assert_eq!(
            outcome(plan(&unknown, &p, false)),
            Some(ReplayOutcome::StillReview)
        );
        assert_eq!(outcome(plan(&unknown, &p, true)), None);
        // Processed: nothing to do, unless forced (still harmless).
        let done = stored("call.answered", EventStatus::Processed);
        assert_eq!(
            outcome(plan(&done, &p, false)),
            Some(ReplayOutcome::SkippedProcessed)
        );
        assert_eq!(outcome(plan(&done, &p, true)), None);
        // Received: sent, as the sweeper would.
        assert_eq!(
            outcome(plan(
                &stored("call.answered", EventStatus::Received),
                &p,
                false
            )),
            None
        );
        // Another provider, not configured here.
        let mut bird = stored("call.answered", EventStatus::Review);
        bird.provider = "bird".into();
        assert_eq!(
            outcome(plan(&bird, &p, false)),
            Some(ReplayOutcome::SkippedUnconfigured)
        );
        // A body that now gives another id.
        let mut moved = stored("call.answered", EventStatus::Review);
        moved.event_id = "telnyx#other".into();
        assert_eq!(
            outcome(plan(&moved, &p, false)),
            Some(ReplayOutcome::SkippedUnreadable)
        );
    }
}
