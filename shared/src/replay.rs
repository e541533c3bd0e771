//! Replay (operator tool): normalize stored events again from their raw bytes with the code as it
//! is now, and re-enqueue them on the events queue for the lifecycle.
//!
//! Events are chosen by id, by call id, by receipt time or by status. Selecting by anything but
//! id is a paginated `Scan` of the events table (projected to a few small attributes; the call
//! id and status are `FilterExpression`s, the time range is checked here on the parsed
//! `received_at`): it reads the whole table, which is fine for an operator's occasional replay
//! and is not something a function on the request path should do.
//!
//! What happens to each event:
//!
//! - `PROCESSED`: the lifecycle already applied it, so replaying it would change nothing (the
//!   call record keeps the ids of the events applied to it). It is reported as
//!   `skipped_processed`; with `force` it is sent anyway, which is still harmless.
//! - `REVIEW`: normalized again; if the current code no longer puts a review note on it (the
//!   mapping was fixed), its review item `event#{event_id}` becomes `replayed` and it is sent.
//!   If the current code still reviews it, it is left (`still_review`) unless `force`. An event
//!   whose item a person discarded is left (`skipped_discarded`) unless `force`. Reasons the
//!   lifecycle itself gives (`no_call_id`, `call_mismatch`) carry no note: such an event is sent
//!   and, if the lifecycle reviews it again, its item is reopened.
//! - `RECEIVED`: sent, as the sweeper would.
//! - As in the sweeper, an event whose provider is not configured here, or whose body now
//!   normalizes to another id, is left and counted: a message under another id would have the
//!   lifecycle mark a different item.
//!
//! The lifecycle applies an event to its call once, so replaying is idempotent end to end.

use std::collections::{BTreeSet, HashMap};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ingest::queue_message;
use crate::model::CanonicalEvent;
use crate::providers::{Delivery, Providers};
use crate::queue::{Queue, QueueError};
use crate::store::attr::unavailable;
use crate::store::events::stored_of;
use crate::store::review::{DynamoReviewStore, ReviewStatus, event_pk};
use crate::store::{EventStatus, StoreError, StoredEvent};

/// How often [`Replayer::run`] reports progress (events handled).
pub const PROGRESS_EVERY: u64 = 100;

/// Which stored events to replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// These event ids (e.g. `telnyx#0ccc…`), in this order.
    Events(Vec<String>),
    /// Every event of this call id (e.g. `telnyx#<call_session_id>`).
    Call(String),
    /// Events received at or after `since` and, when given, before `until`.
    Range {
        since: DateTime<Utc>,
        until: Option<DateTime<Utc>>,
    },
    /// Every event in this status.
    Status(EventStatus),
}

/// What replay did with one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
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

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Requeued => "requeued",
            Outcome::SkippedProcessed => "skipped_processed",
            Outcome::StillReview => "still_review",
            Outcome::SkippedDiscarded => "skipped_discarded",
            Outcome::Missing => "missing",
            Outcome::SkippedUnconfigured => "skipped_unconfigured",
            Outcome::SkippedUnreadable => "skipped_unreadable",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventResult {
    pub event_id: String,
    /// The event's status before the replay (absent when missing).
    pub status: Option<String>,
    pub outcome: Outcome,
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
            Outcome::Requeued => &mut self.requeued,
            Outcome::SkippedProcessed => &mut self.skipped_processed,
            Outcome::StillReview => &mut self.still_review,
            Outcome::SkippedDiscarded => &mut self.skipped_discarded,
            Outcome::Missing => &mut self.missing,
            Outcome::SkippedUnconfigured => &mut self.skipped_unconfigured,
            Outcome::SkippedUnreadable => &mut self.skipped_unreadable,
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
    Skip(Outcome, Option<String>),
    /// Re-enqueue this event, normalized again.
    Send(Box<CanonicalEvent>),
}

/// Normalizes `stored` again, as first received, and decides.
pub fn plan(stored: &StoredEvent, providers: &Providers, force: bool) -> Plan {
    if stored.status == EventStatus::Processed && !force {
        return Plan::Skip(
            Outcome::SkippedProcessed,
            Some("already applied: replaying changes nothing (--force sends it anyway)".into()),
        );
    }
    let Some(provider) = providers.get(&stored.provider) else {
        return Plan::Skip(
            Outcome::SkippedUnconfigured,
            Some(format!("provider {} is not configured", stored.provider)),
        );
    };
    let event = provider.normalize(&Delivery {
        headers: &stored.headers,
        body: &stored.raw_body,
        path_token: None,
        request_url: None,
        received_at: stored.received_at,
    });
    if event.event_id != stored.event_id {
        return Plan::Skip(
            Outcome::SkippedUnreadable,
            Some(format!("the body now normalizes to {}", event.event_id)),
        );
    }
    if stored.status == EventStatus::Review
        && !force
        && let Some(note) = &event.review
    {
        return Plan::Skip(
            Outcome::StillReview,
            Some(format!("still {}: {}", note.reason, note.detail)),
        );
    }
    Plan::Send(Box::new(event))
}

/// Replays events of one events table onto one events queue.
pub struct Replayer<Q> {
    pub dynamo: Client,
    pub events_table: String,
    /// The review table, to mark items `replayed` (and to honour `discarded`).
    pub review: Option<DynamoReviewStore>,
    /// The events queue.
    pub queue: Q,
    pub providers: Providers,
    /// Send PROCESSED, still-reviewed and discarded events too.
    pub force: bool,
}

impl<Q: Queue> Replayer<Q> {
    /// The ids of the selected events, oldest first (for a selection by ids: as given, without
    /// repeats).
    pub async fn select(&self, selection: &Selection) -> Result<Vec<String>, StoreError> {
        let (filter, values): (Option<&str>, HashMap<String, AttributeValue>) = match selection {
            Selection::Events(ids) => {
                let mut seen = BTreeSet::new();
                return Ok(ids
                    .iter()
                    .filter(|id| seen.insert(id.as_str()))
                    .cloned()
                    .collect());
            }
            Selection::Call(call_id) => (
                Some("call_id = :c"),
                HashMap::from([(":c".to_owned(), AttributeValue::S(call_id.clone()))]),
            ),
            Selection::Status(status) => (
                Some("#s = :s"),
                HashMap::from([(":s".to_owned(), AttributeValue::S(status.as_str().into()))]),
            ),
            Selection::Range { .. } => (None, HashMap::new()),
        };
        let mut found: Vec<(DateTime<Utc>, String)> = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .dynamo
                .scan()
                .table_name(&self.events_table)
                .projection_expression("pk, received_at, #s")
                .expression_attribute_names("#s", "status")
                .set_filter_expression(filter.map(str::to_owned))
                .set_expression_attribute_values((!values.is_empty()).then(|| values.clone()))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| unavailable("Scan", &e))?;
            for item in page.items() {
                let Some(pk) = item.get("pk").and_then(|v| v.as_s().ok()) else {
                    continue;
                };
                let received_at = item
                    .get("received_at")
                    .and_then(|v| v.as_s().ok())
                    .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                    .map(|t| t.with_timezone(&Utc))
                    .unwrap_or(DateTime::UNIX_EPOCH);
                if let Selection::Range { since, until } = selection
                    && (received_at < *since || until.is_some_and(|u| received_at >= u))
                {
                    continue;
                }
                found.push((received_at, pk.clone()));
            }
            start = page.last_evaluated_key().cloned();
            if start.is_none() {
                break;
            }
        }
        found.sort();
        Ok(found.into_iter().map(|(_, id)| id).collect())
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
        let out = self
            .dynamo
            .get_item()
            .table_name(&self.events_table)
            .key("pk", AttributeValue::S(event_id.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| unavailable("GetItem", &e))?;
        let stored = match out.item().map(stored_of).transpose() {
            Ok(Some(stored)) => stored,
            Ok(None) => return Ok(skip(None, Outcome::Missing, None)),
            Err(StoreError::Corrupt(_, what)) => {
                return Ok(skip(None, Outcome::SkippedUnreadable, Some(what)));
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
                    Outcome::SkippedDiscarded,
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
            outcome: Outcome::Requeued,
            detail: None,
            review_replayed,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Env;
    use crate::providers::{FIXTURE_SEED, Headers, dev_signer};

    fn providers() -> Providers {
        Providers::from_env(&Env::from_pairs(
            dev_signer("telnyx", &FIXTURE_SEED).unwrap().verifier_env(),
        ))
        .unwrap()
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
            queue_failed: false,
        }
    }

    fn outcome(plan: Plan) -> Option<Outcome> {
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
            Some(Outcome::StillReview)
        );
        assert_eq!(outcome(plan(&unknown, &p, true)), None);
        // Processed: nothing to do, unless forced (still harmless).
        let done = stored("call.answered", EventStatus::Processed);
        assert_eq!(
            outcome(plan(&done, &p, false)),
            Some(Outcome::SkippedProcessed)
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
            Some(Outcome::SkippedUnconfigured)
        );
        // A body that now gives another id.
        let mut moved = stored("call.answered", EventStatus::Review);
        moved.event_id = "telnyx#other".into();
        assert_eq!(
            outcome(plan(&moved, &p, false)),
            Some(Outcome::SkippedUnreadable)
        );
    }
}
