//! The lifecycle function's work on the queued events of one call: read the call once, apply
//! the pure reducer to each event, commit the new record once (a conditional put), hand the
//! call's owed dispatches to the dispatch queue, then mark the events applied. Why each
//! dispatch happens exactly once (deterministic ids, the outbox, the ledger) and why marking
//! after the commit loses nothing is in docs/lifecycle.md.

use std::future::Future;
use std::pin::Pin;

use chrono::Utc;

use super::events_queue::{Unreadable, parse};
use crate::domain::call::{self, CallRecord, Effect};
use crate::domain::dispatch::DispatchMessage;
use crate::domain::dispatch::call_view;
use crate::domain::event::CanonicalEvent;
use crate::domain::review::{ReviewItem, ReviewReason};
use crate::ports::{
    Analytics, CallStore, Commit, Committed, EventStatus, NoAnalytics, NoReview, Publication,
    Queue, QueueError, ReviewStore, StoreError,
};

/// Attempts at a commit that keeps losing optimistic-concurrency races before the messages are
/// left to SQS redelivery.
const MAX_CONFLICTS: usize = 8;

#[derive(Debug, Clone, thiserror::Error)]
pub enum ProcessError {
    #[error("message is not a canonical event: {0}")]
    Poison(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error("call {0} kept changing underneath; will retry")]
    Contended(String),
}

impl From<Unreadable> for ProcessError {
    fn from(err: Unreadable) -> Self {
        ProcessError::Poison(err.0)
    }
}

/// What processing one event did, for logs, metrics and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Processed {
    /// `dispatched`: the dispatches queued on this event's account (those it caused, and for
    /// the first event of a group, those the call still owed).
    Applied {
        call_id: String,
        dispatched: usize,
    },
    AlreadyApplied {
        call_id: String,
        dispatched: usize,
    },
    Review {
        reason: ReviewReason,
    },
    Ignored,
}

impl Processed {
    /// The `outcome` logged for the event.
    pub fn as_str(&self) -> &'static str {
        match self {
            Processed::Applied { .. } => "applied",
            Processed::AlreadyApplied { .. } => "already_applied",
            Processed::Review { .. } => "review",
            Processed::Ignored => "ignored",
        }
    }
}

pub struct Lifecycle<C, Q, R = NoReview, A = NoAnalytics> {
    pub calls: C,
    pub dispatch_queue: Q,
    /// Delay on a finalization's dispatch so facts arriving just behind the terminal one are in
    /// the record it sends (DISPATCH_SETTLE_SECS).
    pub settle_secs: u32,
    /// Where an event marked `REVIEW` gets its item for a person (`event#{event_id}`);
    /// [`NoReview`] (or `None`) when REVIEW_TABLE is unset: the event is only marked.
    pub review: R,
    /// Where applied events and record changes are published (ANALYTICS_BUS_NAME);
    /// [`NoAnalytics`] (or `None`) when unset.
    pub analytics: A,
}

/// What the reducer made of one event of a group, before anything is written.
enum Step {
    Changed {
        dispatches: usize,
    },
    /// Changed nothing; `known`: the call existed (so the event was applied before).
    Unchanged {
        known: bool,
    },
    Review(ReviewReason),
}

/// A group's pass over the call: the record to write (if any) and each event's step.
struct Pass {
    next: Option<CallRecord>,
    steps: Vec<Step>,
    owed: Vec<Effect>,
    finalizing: bool,
    /// A final call's visible record changed (a `call.updated`).
    updated: bool,
}

/// Applies `events` (all naming the same call) to `record`, in order.
fn reduce(record: Option<&CallRecord>, events: &[&CanonicalEvent]) -> Pass {
    let mut next = record.cloned();
    let mut steps = Vec::with_capacity(events.len());
    let mut owed = Vec::new();
    let mut finalizing = false;
    let mut updated = false;
    for event in events {
        let (reduced, effects) = call::apply(next.clone(), event);
        if let Some(Effect::Review { reason, .. }) = effects.first() {
            steps.push(Step::Review(reason.clone()));
            continue;
        }
        if reduced.is_none() || reduced == next {
            steps.push(Step::Unchanged {
                known: next.is_some(),
            });
            continue;
        }
        finalizing |= effects.iter().any(|e| matches!(e, Effect::Finalize { .. }));
        updated |= effects.iter().any(|e| matches!(e, Effect::Enrich { .. }));
        let before = owed.len();
        owed.extend(effects.into_iter().filter(|e| e.dispatch_id().is_some()));
        steps.push(Step::Changed {
            dispatches: owed.len() - before,
        });
        next = reduced;
    }
    Pass {
        next: next.filter(|n| Some(n) != record),
        steps,
        owed,
        finalizing,
        updated,
    }
}

impl<C: CallStore, Q: Queue, R: ReviewStore, A: Analytics> Lifecycle<C, Q, R, A> {
    /// Processes one events-queue message body.
    pub async fn process(&self, body: &str) -> Result<Processed, ProcessError> {
        self.apply(&parse(body)?).await
    }

    /// Applies one event.
    pub async fn apply(&self, event: &CanonicalEvent) -> Result<Processed, ProcessError> {
        let mut results = self.apply_group(&[event]).await;
        results.pop().expect("one result per event")
    }

    /// Applies events that name the same call (or a single event naming none) with one read
    /// and one write of the call; one result per event, in order.
    pub async fn apply_group(
        &self,
        events: &[&CanonicalEvent],
    ) -> Vec<Result<Processed, ProcessError>> {
        let Some(call_id) = events.first().and_then(|e| e.call_id.as_deref()) else {
            let mut results = Vec::with_capacity(events.len());
            for event in events {
                results.push(self.without_call(event).await);
            }
            return results;
        };
        debug_assert!(events.iter().all(|e| e.call_id.as_deref() == Some(call_id)));
        match self.reconcile(call_id, events).await {
            Ok(results) => results,
            Err(err) => events.iter().map(|_| Err(err.clone())).collect(),
        }
    }

    /// An event naming no call: the reducer decides (a progress fact is simply done; anything
    /// else goes to review).
    async fn without_call(&self, event: &CanonicalEvent) -> Result<Processed, ProcessError> {
        let (_, effects) = call::apply(None, event);
        let reason = match effects.first() {
            Some(Effect::Review { reason, .. }) => Some(reason),
            _ => None,
        };
        self.not_applied(event, reason).await
    }

    async fn reconcile(
        &self,
        call_id: &str,
        events: &[&CanonicalEvent],
    ) -> Result<Vec<Result<Processed, ProcessError>>, ProcessError> {
        for attempt in 0..MAX_CONFLICTS {
            // A possibly stale read costs half and is safe: the commit is conditional on the
            // version read. After a conflict, read what won.
            let stored = if attempt == 0 {
                self.calls.get_eventual(call_id).await?
            } else {
                self.calls.get(call_id).await?
            };
            let (record, mut owed) = match stored {
                Some(s) => (Some(s.record), s.outbox),
                None => (None, Vec::new()),
            };
            let expected_version = record.as_ref().map(|r| r.version);
            let pass = reduce(record.as_ref(), events);
            let mut written = None;
            let version = match pass.next {
                None => expected_version,
                Some(mut next) => {
                    next.version = expected_version.map_or(1, |v| v + 1);
                    if pass.finalizing {
                        next.finalized_at = Some(Utc::now());
                    }
                    owed.extend(pass.owed);
                    let commit = Commit {
                        record: &next,
                        expected_version,
                        outbox: &owed,
                        finalizing: pass.finalizing,
                    };
                    match self.calls.commit(&commit).await? {
                        Committed::Conflict => continue,
                        Committed::Yes => {
                            let version = next.version;
                            written = Some(next);
                            Some(version)
                        }
                    }
                }
            };
            // Owed before this group: on the first event's account.
            let carried = owed.len()
                - pass
                    .steps
                    .iter()
                    .map(|s| match s {
                        Step::Changed { dispatches } => *dispatches,
                        _ => 0,
                    })
                    .sum::<usize>();
            let finalized_at = written
                .as_ref()
                .or(record.as_ref())
                .and_then(|r| r.finalized_at);
            self.flush(call_id, version, &owed, finalized_at).await?;
            if let Some(written) = written.as_ref().filter(|_| self.analytics.enabled()) {
                self.publish(events, &pass.steps, written, pass.finalizing, pass.updated)
                    .await;
            }
            let mut results = Vec::with_capacity(events.len());
            for (i, (event, step)) in events.iter().zip(pass.steps).enumerate() {
                let carried = if i == 0 { carried } else { 0 };
                results.push(self.settle(call_id, event, step, carried).await);
            }
            return Ok(results);
        }
        Err(ProcessError::Contended(call_id.to_owned()))
    }

    /// Publishes the events applied and what became of the call (never fails the lifecycle:
    /// what cannot be published is counted by the publisher).
    async fn publish(
        &self,
        events: &[&CanonicalEvent],
        steps: &[Step],
        record: &CallRecord,
        finalized: bool,
        updated: bool,
    ) {
        let mut publications: Vec<Publication> = events
            .iter()
            .zip(steps)
            .filter(|(_, step)| matches!(step, Step::Changed { .. }))
            .map(|(event, _)| {
                let mut envelope = event.envelope();
                envelope.facts.by_reference(&event.event_id);
                Publication {
                    detail_type: "call.event",
                    detail: serde_json::to_value(&envelope).unwrap_or_default(),
                }
            })
            .collect();
        let change = if finalized {
            Some("call.completed")
        } else if updated {
            Some("call.updated")
        } else {
            None
        };
        if let Some(detail_type) = change {
            publications.push(Publication {
                detail_type,
                detail: call_view(&record.by_reference()),
            });
        }
        // Boxed for the same reason as the review write: it keeps the batch future shallow.
        let publish: Pin<Box<dyn Future<Output = usize> + Send + '_>> =
            Box::pin(self.analytics.publish(publications));
        publish.await;
    }

    /// After the commit: marks the event (an applied event whose mark is lost stays PENDING;
    /// the sweeper sends it again and it is marked then, as already applied).
    async fn settle(
        &self,
        call_id: &str,
        event: &CanonicalEvent,
        step: Step,
        carried: usize,
    ) -> Result<Processed, ProcessError> {
        let processed = match step {
            Step::Review(reason) => return self.not_applied(event, Some(&reason)).await,
            Step::Unchanged { known: false } => return self.not_applied(event, None).await,
            Step::Unchanged { known: true } => Processed::AlreadyApplied {
                call_id: call_id.to_owned(),
                dispatched: carried,
            },
            Step::Changed { dispatches } => Processed::Applied {
                call_id: call_id.to_owned(),
                dispatched: dispatches + carried,
            },
        };
        self.calls
            .mark_event(&event.event_id, EventStatus::Processed, None)
            .await?;
        Ok(processed)
    }

    /// Events that change no call: review items are marked for a person; others (e.g. a
    /// progress fact naming no call) are simply done.
    async fn not_applied(
        &self,
        event: &CanonicalEvent,
        reason: Option<&ReviewReason>,
    ) -> Result<Processed, ProcessError> {
        match reason {
            Some(reason) => {
                // The item first: an event marked REVIEW always has one (a failure here leaves
                // the message to SQS, and the write is idempotent).
                // Boxed: off the happy path, and it keeps the batch handler's future shallow
                // enough for the compiler's layout depth limit (the SDK futures are deep).
                let item = ReviewItem::event(event, reason, Utc::now());
                let write: Pin<Box<dyn Future<Output = Result<(), StoreError>> + Send + '_>> =
                    Box::pin(self.review.open_event(&item));
                write.await?;
                self.calls
                    .mark_event(&event.event_id, EventStatus::Review, Some(&reason.as_str()))
                    .await?;
                Ok(Processed::Review {
                    reason: reason.clone(),
                })
            }
            None => {
                self.calls
                    .mark_event(&event.event_id, EventStatus::Processed, None)
                    .await?;
                Ok(Processed::Ignored)
            }
        }
    }

    /// Queues every owed dispatch, then clears the outbox at that version.
    async fn flush(
        &self,
        call_id: &str,
        version: Option<u64>,
        outbox: &[Effect],
        finalized_at: Option<chrono::DateTime<Utc>>,
    ) -> Result<(), ProcessError> {
        let Some(version) = version.filter(|_| !outbox.is_empty()) else {
            return Ok(());
        };
        // The seconds the finalization's dispatch still waits on the queue, if it does.
        let settling = finalized_at.map_or(0, |at| {
            let left = i64::from(self.settle_secs) - (Utc::now() - at).num_seconds();
            left.clamp(0, i64::from(self.settle_secs)) as u32
        });
        for effect in outbox {
            if let Some(message) = DispatchMessage::from_effect(effect) {
                let delay = message.delay_secs(self.settle_secs, settling);
                let body = serde_json::to_string(&message)
                    .map_err(|e| ProcessError::Poison(e.to_string()))?;
                self.dispatch_queue.send(body, delay).await?;
            }
        }
        self.calls.clear_outbox(call_id, version).await?;
        Ok(())
    }
}

/// One log line per event: message, event, provider, call, outcome, duration.
pub fn log(
    message_id: &str,
    event: &CanonicalEvent,
    result: &Result<Processed, ProcessError>,
    duration_ms: f64,
) {
    let event_id = event.event_id.as_str();
    let provider = event.provider.as_str();
    let call_id = event.call_id.as_deref().unwrap_or("");
    let processed = match result {
        Ok(processed) => processed,
        Err(error) => {
            tracing::warn!(
                message_id,
                event_id,
                provider,
                call_id,
                outcome = "failed",
                %error,
                duration_ms,
                "event not processed; SQS will retry"
            );
            return;
        }
    };
    let outcome = processed.as_str();
    match processed {
        Processed::Applied { dispatched, .. } => tracing::info!(
            message_id,
            event_id,
            provider,
            call_id,
            outcome,
            dispatched,
            duration_ms,
            "applied"
        ),
        Processed::AlreadyApplied { dispatched, .. } => tracing::info!(
            message_id,
            event_id,
            provider,
            call_id,
            outcome,
            dispatched,
            duration_ms,
            "already applied"
        ),
        Processed::Review { reason } => tracing::info!(
            message_id,
            event_id,
            provider,
            call_id,
            outcome,
            %reason,
            duration_ms,
            "sent to review"
        ),
        Processed::Ignored => tracing::info!(
            message_id,
            event_id,
            provider,
            call_id,
            outcome,
            duration_ms,
            "no call to apply to"
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use chrono::TimeZone;

    use super::*;
    use crate::domain::event::{Kind, Outcome};
    use crate::testing::{MemoryCallStore, MemoryQueue};

    fn lifecycle() -> Lifecycle<MemoryCallStore, MemoryQueue> {
        Lifecycle {
            calls: MemoryCallStore::default(),
            dispatch_queue: MemoryQueue::default(),
            settle_secs: 5,
            review: NoReview,
            analytics: crate::ports::NoAnalytics,
        }
    }

    fn event(id: &str, kind: Kind, secs: i64, is_final: bool) -> String {
        let at = Utc.timestamp_opt(1_700_000_000 + secs, 0).unwrap();
        let mut e = CanonicalEvent::new("telnyx", id, "call.x", at);
        e.kind = kind;
        e.call_id = Some("telnyx#c1".into());
        e.occurred_at = at;
        e.is_final = is_final;
        if is_final {
            e.outcome = Some(Outcome::Completed);
        }
        serde_json::to_string(&e).unwrap()
    }

    fn call() -> Vec<String> {
        vec![
            event("e1", Kind::Initiated, 0, false),
            event("e2", Kind::Answered, 5, false),
            event("e3", Kind::Ended, 60, true),
            event("e4", Kind::Report, 70, false),
        ]
    }

    #[tokio::test]
    async fn a_call_in_any_order_with_duplicates_dispatches_one_completion() {
        let in_order = lifecycle();
        for body in call() {
            in_order.process(&body).await.unwrap();
        }
        let expected = in_order.calls.get("telnyx#c1").await.unwrap().unwrap();

        let shuffled = lifecycle();
        let events = call();
        for i in [3, 2, 2, 0, 3, 1, 0] {
            shuffled.process(&events[i]).await.unwrap();
        }
        let got = shuffled.calls.get("telnyx#c1").await.unwrap().unwrap();
        assert_eq!(got.record.event_count, 4);
        assert_eq!(got.record.outcome, expected.record.outcome);
        assert_eq!(got.record.rank, 5);
        assert!(got.outbox.is_empty());
        let messages = shuffled.dispatch_queue.taken();
        let completed: Vec<_> = messages
            .iter()
            .filter(|m| m.contains("call.completed"))
            .collect();
        assert_eq!(completed.len(), 1, "{messages:?}");
    }

    #[tokio::test]
    async fn a_group_of_one_calls_events_is_written_once_and_each_event_marked() {
        let r = lifecycle();
        let parsed: Vec<CanonicalEvent> = call()
            .iter()
            .chain(&call()[..1])
            .map(|b| parse(b).unwrap())
            .collect();
        let group: Vec<&CanonicalEvent> = parsed.iter().collect();
        let results: Vec<Processed> = r
            .apply_group(&group)
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
        let applied = |dispatched| Processed::Applied {
            call_id: "telnyx#c1".into(),
            dispatched,
        };
        assert_eq!(
            results,
            [
                applied(0),
                applied(0),
                applied(1),
                applied(0),
                Processed::AlreadyApplied {
                    call_id: "telnyx#c1".into(),
                    dispatched: 0
                }
            ]
        );
        assert_eq!(r.calls.commits.load(Ordering::SeqCst), 1, "one write");
        let stored = r.calls.get("telnyx#c1").await.unwrap().unwrap();
        assert_eq!((stored.record.event_count, stored.record.version), (4, 1));
        assert!(stored.outbox.is_empty());
        assert_eq!(r.dispatch_queue.taken().len(), 1);
        let events = r.calls.events.lock().unwrap();
        for id in ["e1", "e2", "e3", "e4"] {
            assert_eq!(
                events[&format!("telnyx#{id}")],
                (EventStatus::Processed, None)
            );
        }
    }

    #[tokio::test]
    async fn an_applied_event_left_unmarked_is_marked_when_it_comes_again() {
        let r = lifecycle();
        let events = call();
        r.process(&events[0]).await.unwrap();
        r.calls.events.lock().unwrap().clear(); // the mark was lost
        let again = r.process(&events[0]).await.unwrap();
        assert!(matches!(again, Processed::AlreadyApplied { .. }));
        assert_eq!(
            r.calls.events.lock().unwrap()["telnyx#e1"],
            (EventStatus::Processed, None)
        );
        assert_eq!(r.calls.commits.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_send_lost_after_the_commit_is_paid_by_the_redelivery() {
        let r = lifecycle();
        let events = call();
        r.process(&events[0]).await.unwrap();
        r.dispatch_queue.fail.store(true, Ordering::SeqCst);
        assert!(
            r.process(&events[2]).await.is_err(),
            "send failed: SQS retries"
        );
        let stored = r.calls.get("telnyx#c1").await.unwrap().unwrap();
        assert!(stored.record.finalized_at.is_some());
        assert_eq!(stored.outbox.len(), 1, "the owed dispatch survived");

        r.dispatch_queue.fail.store(false, Ordering::SeqCst);
        let again = r.process(&events[2]).await.unwrap();
        assert_eq!(
            again,
            Processed::AlreadyApplied {
                call_id: "telnyx#c1".into(),
                dispatched: 1
            }
        );
        assert_eq!(r.dispatch_queue.taken().len(), 1);
        assert!(
            r.calls
                .get("telnyx#c1")
                .await
                .unwrap()
                .unwrap()
                .outbox
                .is_empty()
        );
        let third = r.process(&events[2]).await.unwrap();
        assert_eq!(
            third,
            Processed::AlreadyApplied {
                call_id: "telnyx#c1".into(),
                dispatched: 0
            }
        );
    }

    #[tokio::test]
    async fn review_events_mark_the_event_and_change_no_call() {
        let r = lifecycle();
        let at = Utc::now();
        let mut unknown = CanonicalEvent::new("telnyx", "u1", "call.teleported", at);
        crate::providers::mark_unknown(&mut unknown);
        unknown.call_id = Some("telnyx#c1".into());
        let processed = r
            .process(&serde_json::to_string(&unknown).unwrap())
            .await
            .unwrap();
        assert_eq!(
            processed,
            Processed::Review {
                reason: "unknown_type".into()
            }
        );
        assert!(r.calls.get("telnyx#c1").await.unwrap().is_none());
        assert_eq!(
            r.calls.events.lock().unwrap()["telnyx#u1"],
            (EventStatus::Review, Some("unknown_type".into()))
        );
    }

    #[test]
    fn outcome_labels() {
        let labels = [
            Processed::Applied {
                call_id: "c".into(),
                dispatched: 0,
            },
            Processed::AlreadyApplied {
                call_id: "c".into(),
                dispatched: 1,
            },
            Processed::Review {
                reason: "unknown_type".into(),
            },
            Processed::Ignored,
        ]
        .map(|p| p.as_str());
        assert_eq!(labels, ["applied", "already_applied", "review", "ignored"]);
    }

    #[tokio::test]
    async fn poison_messages_are_errors_not_panics() {
        let r = lifecycle();
        for body in ["", "{", "[]", "{\"event_id\":1}"] {
            assert!(matches!(
                r.process(body).await,
                Err(ProcessError::Poison(_))
            ));
        }
    }

    #[tokio::test]
    async fn finalization_waits_the_settle_time_on_the_queue() {
        let r = lifecycle();
        r.process(&event("e3", Kind::Ended, 60, true))
            .await
            .unwrap();
        let message: serde_json::Value =
            serde_json::from_str(&r.dispatch_queue.taken()[0]).unwrap();
        assert_eq!(message["type"], "call.completed");
        assert_eq!(*r.dispatch_queue.delays.lock().unwrap(), vec![5]);
    }

    #[tokio::test]
    async fn an_update_right_behind_the_completion_is_sent_after_it() {
        let r = lifecycle();
        r.process(&event("e3", Kind::Ended, 60, true))
            .await
            .unwrap();
        let mut late = CanonicalEvent::new("telnyx", "rec", "call.recording.saved", Utc::now());
        late.kind = Kind::Report;
        late.call_id = Some("telnyx#c1".into());
        late.facts.recording_url = Some("https://r.example/1.mp3".into());
        r.apply(&late).await.unwrap();
        let types: Vec<String> = r
            .dispatch_queue
            .taken()
            .iter()
            .map(|m| serde_json::from_str::<serde_json::Value>(m).unwrap()["type"].to_string())
            .collect();
        assert_eq!(types, ["\"call.completed\"", "\"call.updated\""]);
        let delays = r.dispatch_queue.delays.lock().unwrap().clone();
        assert_eq!(delays[0], 5);
        assert!(
            delays[1] > delays[0],
            "the update waits past the completion: {delays:?}"
        );
    }

    #[tokio::test]
    async fn review_events_get_a_review_item_once_and_no_call_events_are_reviewed() {
        use crate::domain::review::ReviewStatus;
        use crate::testing::MemoryReviewStore;
        let r = Lifecycle {
            calls: MemoryCallStore::default(),
            dispatch_queue: MemoryQueue::default(),
            settle_secs: 5,
            review: MemoryReviewStore::default(),
            analytics: crate::ports::NoAnalytics,
        };
        let mut unknown = CanonicalEvent::new("telnyx", "u1", "call.teleported", Utc::now());
        crate::providers::mark_unknown(&mut unknown);
        let body = serde_json::to_string(&unknown).unwrap();
        for _ in 0..2 {
            let processed = r.process(&body).await.unwrap();
            assert_eq!(
                processed,
                Processed::Review {
                    reason: "unknown_type".into()
                }
            );
        }
        let item = r.review.get("event#telnyx#u1").expect("a review item");
        assert_eq!(item.reason, "unknown_type");
        assert_eq!(item.status, ReviewStatus::Open);
        assert_eq!(
            item.attempts, 2,
            "a redelivery counts, nothing else changes"
        );
        assert_eq!(r.review.len(), 1);

        // A known event naming no call is reviewed (no_call_id), with its item.
        let mut answered = CanonicalEvent::new("telnyx", "n1", "call.answered", Utc::now());
        answered.kind = Kind::Answered;
        r.process(&serde_json::to_string(&answered).unwrap())
            .await
            .unwrap();
        assert_eq!(
            r.review.get("event#telnyx#n1").unwrap().reason,
            "no_call_id"
        );
        assert_eq!(
            r.calls.events.lock().unwrap()["telnyx#n1"],
            (EventStatus::Review, Some("no_call_id".into()))
        );

        // A review table that is down: the message fails (SQS retries), nothing is marked.
        r.review.fail.store(true, Ordering::SeqCst);
        let mut other = unknown.clone();
        other.event_id = "telnyx#u2".into();
        assert!(
            r.process(&serde_json::to_string(&other).unwrap())
                .await
                .is_err()
        );
        assert!(!r.calls.events.lock().unwrap().contains_key("telnyx#u2"));
    }
}
