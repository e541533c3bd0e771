//! The stale pass: calls whose final webhook never came. It scans the sparse index of open
//! calls for those opened at least STALE_AFTER_SECS ago, reads each, and decides
//! (`domain::call::stale::decide`): a call quiet that long is asked about at its provider's API
//! (a final answer becomes a `backfill` event on the events queue, applied by the lifecycle like
//! any other; no answer is remembered with backoff); one quiet for STALE_GIVE_UP_SECS gets a
//! review item saying why and a `gave_up` event that finalizes it as `unknown`, `incomplete`.
//! Both events have deterministic ids, so two passes at once are harmless.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::events_queue::queue_message;
use crate::domain::call::CallRecord;
use crate::domain::call::stale::{
    Next, StalePolicy, backfill_event, call_key, decide, gave_up_event, quiet_since,
    wait_before_asking_again,
};
use crate::domain::review::ReviewItem;
use crate::ports::{
    Asked, CallStore, Lookup, LookupError, LookupSource, OpenCalls, OpenKey, Queue, QueueError,
    ReviewStore, StoreError,
};

/// What one pass did. Every open call it read ends in exactly one of `waiting`, `asked`,
/// `capped`, `gave_up` (and `asked` splits into the answers).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StaleReport {
    /// Open calls opened at or before `now − STALE_AFTER_SECS` (the index's candidates).
    pub open_scanned: u64,
    /// Of those, quiet for STALE_AFTER_SECS or more: the `stale_calls` gauge.
    pub stale: u64,
    /// Not quiet long enough, without an API to ask, or waiting out a backoff.
    pub waiting: u64,
    /// Provider APIs asked.
    pub asked: u64,
    /// … that gave the end: a backfill event was queued.
    pub backfilled: u64,
    /// … that said the call is still going.
    pub still_alive: u64,
    /// … that did not know the call.
    pub not_found: u64,
    /// … that failed (down, rate limiting, refusing): asked again later.
    pub errors: u64,
    /// Left for the next pass: the cap on questions per pass or the pass's time budget was
    /// reached, or its provider rate-limited this pass.
    pub capped: u64,
    /// Finalized as `unknown`, `incomplete`, with a review item.
    pub gave_up: u64,
    /// provider → result (`finalized`, `alive`, `not_found`, `rate_limited`, `unavailable`,
    /// `refused`, `gave_up`) → count: the `backfill_results` counter.
    pub results: BTreeMap<String, BTreeMap<String, u64>>,
}

impl StaleReport {
    fn count(&mut self, provider: &str, result: &str) {
        *self
            .results
            .entry(provider.to_owned())
            .or_default()
            .entry(result.to_owned())
            .or_default() += 1;
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StaleError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] QueueError),
}

/// The pass's state, built once per cold start (or by `callhook sweep`).
pub struct StalePass<C, L, Q, R> {
    pub calls: C,
    pub lookups: L,
    /// The events queue: backfill and gave-up events go where webhooks go.
    pub queue: Q,
    pub review: R,
    pub policy: StalePolicy,
    /// The most provider API questions one pass asks (a backlog must not exhaust a provider's
    /// rate limit); the rest wait for the next pass.
    pub max_lookups: u32,
    /// No question is started after this long into the pass (a slow API must not run the
    /// function past its timeout); the rest wait for the next pass.
    pub budget: std::time::Duration,
}

impl<C, L, Q, R> StalePass<C, L, Q, R>
where
    C: CallStore + OpenCalls,
    L: LookupSource,
    Q: Queue,
    R: ReviewStore,
{
    /// One pass. Stops at the first store or queue failure (the next pass goes over the same
    /// ground; nothing is lost).
    pub async fn run(&self, now: DateTime<Utc>) -> Result<StaleReport, StaleError> {
        let mut report = StaleReport::default();
        let opened_before = now
            .checked_sub_signed(self.policy.after)
            .unwrap_or(DateTime::UNIX_EPOCH);
        let mut limited: BTreeSet<String> = BTreeSet::new();
        let started = std::time::Instant::now();
        let mut after: Option<OpenKey> = None;
        loop {
            let page = self.calls.open_page(opened_before, after.as_ref()).await?;
            for key in &page.calls {
                report.open_scanned += 1;
                self.one(&key.call_id, now, &mut report, &mut limited, started)
                    .await?;
            }
            match page.next {
                Some(next) if after.as_ref() != Some(&next) => after = Some(next),
                _ => return Ok(report),
            }
        }
    }

    async fn one(
        &self,
        call_id: &str,
        now: DateTime<Utc>,
        report: &mut StaleReport,
        limited: &mut BTreeSet<String>,
        started: std::time::Instant,
    ) -> Result<(), StaleError> {
        let out_of_time = started.elapsed() >= self.budget;
        let Some(stored) = self.calls.get_eventual(call_id).await? else {
            return Ok(());
        };
        let record = &stored.record;
        if record.is_final() {
            return Ok(());
        }
        if quiet_since(record).is_some_and(|quiet| now - quiet >= self.policy.after) {
            report.stale += 1;
        }
        let lookup = self.lookups.lookup_for(&record.provider);
        let key = call_key(record);
        let asked_after = stored.asked.map(|a| a.again_after);
        let has_api = lookup.is_some() && key.is_some();
        match decide(record, now, &self.policy, asked_after, has_api) {
            Next::Wait => report.waiting += 1,
            Next::GiveUp => {
                let why = match (lookup, key) {
                    (None, _) => "no API credentials are configured for its provider".to_owned(),
                    (Some(_), None) => {
                        "its call key was too long to keep, so its provider's API cannot be asked"
                            .to_owned()
                    }
                    (Some(_), Some(_)) => format!(
                        "its provider's API gave no end in {} question(s)",
                        stored.asked.map_or(0, |a| a.times)
                    ),
                };
                self.give_up(record, &why, now).await?;
                report.gave_up += 1;
                report.count(&record.provider, "gave_up");
            }
            Next::Ask
                if out_of_time
                    || report.asked >= u64::from(self.max_lookups)
                    || limited.contains(&record.provider) =>
            {
                report.capped += 1;
            }
            Next::Ask => {
                let (Some(lookup), Some(key)) = (lookup, key) else {
                    return Ok(());
                };
                report.asked += 1;
                let times = stored.asked.map_or(0, |a| a.times);
                let again = |retry_after_secs: Option<u64>| Asked {
                    again_after: now
                        + wait_before_asking_again(times, &self.policy, retry_after_secs),
                    times: times.saturating_add(1),
                };
                // A question may take several requests (pages, retries): bounded by what is
                // left of the pass, so the function's own timeout never cuts a pass short.
                let left = self.budget.saturating_sub(started.elapsed());
                let answer = tokio::time::timeout(left, lookup.lookup(key))
                    .await
                    .unwrap_or_else(|_| {
                        Err(LookupError::Unavailable(
                            "no answer within the pass's time left".into(),
                        ))
                    });
                let (result, asked) = match answer {
                    Ok(Lookup::Ended(state)) => {
                        let event = backfill_event(record, &state, now);
                        self.queue.send(queue_message(&event), 0).await?;
                        report.backfilled += 1;
                        ("finalized", None)
                    }
                    Ok(Lookup::Alive) => {
                        report.still_alive += 1;
                        ("alive", Some(again(None)))
                    }
                    Ok(Lookup::NotFound) => {
                        report.not_found += 1;
                        ("not_found", Some(again(None)))
                    }
                    Err(LookupError::RateLimited { retry_after_secs }) => {
                        report.errors += 1;
                        // Nothing more for this provider in this pass.
                        limited.insert(record.provider.clone());
                        ("rate_limited", Some(again(retry_after_secs)))
                    }
                    Err(err) => {
                        report.errors += 1;
                        tracing::warn!(call_id, provider = %record.provider, error = %err, "stale pass: provider API gave no answer");
                        let result = match err {
                            LookupError::Refused(_) => "refused",
                            _ => "unavailable",
                        };
                        (result, Some(again(None)))
                    }
                };
                report.count(&record.provider, result);
                if let Some(asked) = asked {
                    self.calls
                        .note_asked(call_id, record.version, asked)
                        .await?;
                }
            }
        }
        Ok(())
    }

    /// The review item first (a failure leaves the call open for the next pass), then the
    /// event that finalizes the call as `unknown`.
    async fn give_up(
        &self,
        record: &CallRecord,
        why: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StaleError> {
        let quiet = quiet_since(record).map_or_else(|| "-".to_owned(), |t| t.to_rfc3339());
        let detail =
            format!("no final webhook since {quiet} and {why}: finalized as unknown, incomplete");
        self.review
            .open_event(&ReviewItem::stale_call(record, &detail, now))
            .await?;
        self.queue
            .send(queue_message(&gave_up_event(record, now)), 0)
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use chrono::{Duration, TimeZone};
    use futures::future::BoxFuture;

    use super::*;
    use crate::app::lifecycle::Lifecycle;
    use crate::domain::call::FinalState;
    use crate::domain::event::{CanonicalEvent, Kind, Outcome};
    use crate::ports::CallLookup;
    use crate::testing::{MemoryCallStore, MemoryQueue, MemoryReviewStore};

    fn at(hours: f64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_780_000_000, 0).unwrap() + Duration::seconds((hours * 3600.0) as i64)
    }

    /// A provider API answering from a script, one answer per question (the last repeats).
    struct Scripted {
        provider: &'static str,
        answers: Mutex<Vec<Result<Lookup, LookupError>>>,
        asked: Mutex<Vec<String>>,
    }

    impl Scripted {
        fn new(provider: &'static str, answers: Vec<Result<Lookup, LookupError>>) -> Self {
            Scripted {
                provider,
                answers: Mutex::new(answers),
                asked: Mutex::new(Vec::new()),
            }
        }
    }

    impl CallLookup for Scripted {
        fn provider(&self) -> &'static str {
            self.provider
        }

        fn lookup<'a>(&'a self, call_key: &'a str) -> BoxFuture<'a, Result<Lookup, LookupError>> {
            self.asked.lock().unwrap().push(call_key.to_owned());
            let mut answers = self.answers.lock().unwrap();
            let answer = if answers.len() > 1 {
                answers.remove(0)
            } else {
                answers[0].clone()
            };
            Box::pin(async move { answer })
        }
    }

    type TestPass<'a> = StalePass<
        &'a MemoryCallStore,
        Vec<Box<dyn CallLookup>>,
        &'a MemoryQueue,
        &'a MemoryReviewStore,
    >;

    struct World {
        lifecycle: Lifecycle<MemoryCallStore, MemoryQueue, MemoryReviewStore>,
        events: MemoryQueue,
    }

    impl World {
        fn new() -> World {
            World {
                lifecycle: Lifecycle {
                    calls: MemoryCallStore::default(),
                    dispatch_queue: MemoryQueue::default(),
                    settle_secs: 0,
                    review: MemoryReviewStore::default(),
                    analytics: crate::ports::NoAnalytics,
                },
                events: MemoryQueue::default(),
            }
        }

        fn pass(&self, lookups: Vec<Box<dyn CallLookup>>) -> TestPass<'_> {
            StalePass {
                calls: &self.lifecycle.calls,
                lookups,
                queue: &self.events,
                review: &self.lifecycle.review,
                policy: StalePolicy::default(),
                max_lookups: 100,
                budget: std::time::Duration::from_secs(60),
            }
        }

        /// A call answered at `hours` and never heard of again.
        async fn answered(&self, call: &str, hours: f64) {
            let mut e = CanonicalEvent::new(
                "twilio",
                &format!("{call}-answered"),
                "in-progress",
                at(hours),
            );
            e.kind = Kind::Answered;
            e.call_id = Some(format!("twilio#{call}"));
            self.lifecycle.apply(&e).await.unwrap();
        }

        /// Applies what the pass queued, as the lifecycle would.
        async fn apply_queued(&self) {
            for body in self.events.taken() {
                self.lifecycle.process(&body).await.unwrap();
            }
        }

        fn dispatched(&self) -> Vec<serde_json::Value> {
            self.lifecycle
                .dispatch_queue
                .taken()
                .iter()
                .map(|m| serde_json::from_str(m).unwrap())
                .collect()
        }
    }

    fn ended() -> Lookup {
        Lookup::Ended(FinalState {
            status: "completed".into(),
            outcome: Some(Outcome::Completed),
            started_at: Some(at(0.0)),
            answered_at: Some(at(0.01)),
            ended_at: Some(at(0.5)),
            duration_secs: Some(1_800),
            hangup_cause: None,
        })
    }

    #[tokio::test]
    async fn a_call_whose_hangup_never_came_finalizes_from_the_api_once() {
        let world = World::new();
        world.answered("CA1", 0.0).await;
        // Not quiet long enough: nothing asked.
        let api = || -> Vec<Box<dyn CallLookup>> {
            vec![Box::new(Scripted::new("twilio", vec![Ok(ended())]))]
        };
        let early = world.pass(api()).run(at(3.0)).await.unwrap();
        assert_eq!((early.asked, early.open_scanned), (0, 0));

        // Two passes at once: both ask, both queue the same backfill event.
        let (one, other) = (world.pass(api()), world.pass(api()));
        let (a, b) = tokio::join!(one.run(at(5.0)), other.run(at(5.0)));
        assert_eq!((a.unwrap().backfilled, b.unwrap().backfilled), (1, 1));
        world.apply_queued().await;
        let call = world
            .lifecycle
            .calls
            .get("twilio#CA1")
            .await
            .unwrap()
            .unwrap()
            .record;
        assert_eq!(call.outcome, Some(Outcome::Completed));
        assert_eq!(call.ended_at, Some(at(0.5)), "the API's end time");
        assert_eq!(call.duration_secs, Some(1_800));
        assert!(!call.incomplete);
        let sent = world.dispatched();
        assert_eq!(sent.len(), 1, "one dispatch: {sent:?}");
        assert_eq!(sent[0]["type"], "call.completed");

        // Final now: the next pass leaves it alone.
        let after = world.pass(api()).run(at(6.0)).await.unwrap();
        assert_eq!(after.open_scanned, 0);
    }

    #[tokio::test]
    async fn an_api_down_or_limiting_delays_the_call_but_never_loses_it() {
        let world = World::new();
        world.answered("CA2", 0.0).await;
        world.answered("CA3", 0.0).await;
        let limiting = Scripted::new(
            "twilio",
            vec![Err(LookupError::RateLimited {
                retry_after_secs: Some(3_600),
            })],
        );
        let report = world
            .pass(vec![Box::new(limiting)])
            .run(at(5.0))
            .await
            .unwrap();
        assert_eq!(
            (report.asked, report.capped),
            (1, 1),
            "no more questions to a limiting API"
        );
        assert_eq!(report.results["twilio"]["rate_limited"], 1);
        let stored = world
            .lifecycle
            .calls
            .get("twilio#CA2")
            .await
            .unwrap()
            .unwrap();
        let asked = stored
            .asked
            .or(world
                .lifecycle
                .calls
                .get("twilio#CA3")
                .await
                .unwrap()
                .unwrap()
                .asked)
            .expect("the question is remembered");
        assert_eq!(
            asked.again_after,
            at(6.0),
            "its Retry-After, longer than the backoff"
        );

        // Down: asked, remembered, asked again after the backoff, then answered.
        let down = Scripted::new(
            "twilio",
            vec![
                Err(LookupError::Unavailable("503".into())),
                Err(LookupError::Unavailable("503".into())),
                Ok(ended()),
            ],
        );
        let lookups: Vec<Box<dyn CallLookup>> = vec![Box::new(down)];
        let pass = StalePass {
            lookups,
            ..world.pass(Vec::new())
        };
        let first = pass.run(at(6.5)).await.unwrap();
        assert_eq!(first.errors, 2);
        assert_eq!(
            pass.run(at(6.6)).await.unwrap().waiting,
            2,
            "within the backoff"
        );
        let later = pass.run(at(7.0)).await.unwrap();
        assert_eq!(later.backfilled, 2);
        world.apply_queued().await;
        assert_eq!(world.dispatched().len(), 2);
    }

    #[tokio::test]
    async fn without_an_api_a_call_is_given_up_once_and_a_late_hangup_is_an_update() {
        let world = World::new();
        world.answered("CA4", 0.0).await;
        assert_eq!(
            world.pass(Vec::new()).run(at(10.0)).await.unwrap().waiting,
            1
        );
        let report = world.pass(Vec::new()).run(at(24.5)).await.unwrap();
        assert_eq!(report.gave_up, 1);
        world.pass(Vec::new()).run(at(24.5)).await.unwrap();
        world.apply_queued().await;
        let call = world
            .lifecycle
            .calls
            .get("twilio#CA4")
            .await
            .unwrap()
            .unwrap()
            .record;
        assert_eq!(call.outcome, Some(Outcome::Unknown));
        assert!(call.incomplete);
        let sent = world.dispatched();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0]["type"], "call.completed");
        let item = world
            .lifecycle
            .review
            .get("call#twilio#CA4")
            .expect("a review item");
        assert_eq!(item.reason, "stale_call");
        assert!(
            item.detail.contains("no API credentials"),
            "{}",
            item.detail
        );
        assert_eq!(world.lifecycle.review.len(), 1);

        // The real hangup, a day late.
        let mut hangup = CanonicalEvent::new("twilio", "CA4-completed", "completed", at(25.0));
        hangup.kind = Kind::Ended;
        hangup.is_final = true;
        hangup.outcome = Some(Outcome::Completed);
        hangup.occurred_at = at(0.5);
        hangup.call_id = Some("twilio#CA4".into());
        world.lifecycle.apply(&hangup).await.unwrap();
        let call = world
            .lifecycle
            .calls
            .get("twilio#CA4")
            .await
            .unwrap()
            .unwrap()
            .record;
        assert_eq!(call.outcome, Some(Outcome::Completed));
        assert!(!call.incomplete);
        let sent = world.dispatched();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0]["type"], "call.updated", "never a second completion");
    }

    #[tokio::test]
    async fn a_pass_out_of_time_asks_nothing_more() {
        let world = World::new();
        world.answered("CC1", 0.0).await;
        let api: Vec<Box<dyn CallLookup>> =
            vec![Box::new(Scripted::new("twilio", vec![Ok(Lookup::Alive)]))];
        let pass = StalePass {
            budget: std::time::Duration::ZERO,
            ..world.pass(api)
        };
        let report = pass.run(at(5.0)).await.unwrap();
        assert_eq!((report.asked, report.capped), (0, 1));
    }

    #[tokio::test]
    async fn questions_per_pass_are_capped() {
        let world = World::new();
        for i in 0..5 {
            world.answered(&format!("CB{i}"), 0.0).await;
        }
        let api: Vec<Box<dyn CallLookup>> =
            vec![Box::new(Scripted::new("twilio", vec![Ok(Lookup::Alive)]))];
        let pass = StalePass {
            max_lookups: 2,
            ..world.pass(api)
        };
        let report = pass.run(at(5.0)).await.unwrap();
        assert_eq!((report.asked, report.still_alive, report.capped), (2, 2, 3));
        assert_eq!(report.stale, 5);
    }

    /// A provider API that never answers.
    struct Hanging;

    impl CallLookup for Hanging {
        fn provider(&self) -> &'static str {
            "twilio"
        }

        fn lookup<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Result<Lookup, LookupError>> {
            Box::pin(std::future::pending())
        }
    }

    #[tokio::test]
    async fn a_question_without_an_answer_ends_with_the_pass_budget() {
        let world = World::new();
        world.answered("CH1", 0.0).await;
        let pass = StalePass {
            budget: std::time::Duration::from_millis(50),
            ..world.pass(vec![Box::new(Hanging)])
        };
        let report = tokio::time::timeout(std::time::Duration::from_secs(5), pass.run(at(5.0)))
            .await
            .expect("the pass ends within its budget")
            .unwrap();
        assert_eq!((report.asked, report.errors), (1, 1));
        let call = world
            .lifecycle
            .calls
            .get("twilio#CH1")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            call.asked.map(|a| a.times),
            Some(1),
            "remembered, asked again later"
        );
    }

    #[tokio::test]
    async fn any_retry_after_a_provider_sends_is_kept_within_a_day() {
        let world = World::new();
        world.answered("CR1", 0.0).await;
        let limited = Err(LookupError::RateLimited {
            retry_after_secs: Some(u64::MAX),
        });
        let report = world
            .pass(vec![Box::new(Scripted::new("twilio", vec![limited]))])
            .run(at(5.0))
            .await
            .unwrap();
        assert_eq!(report.errors, 1);
        let call = world
            .lifecycle
            .calls
            .get("twilio#CR1")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(call.asked.unwrap().again_after, at(5.0) + Duration::days(1));
    }
}
