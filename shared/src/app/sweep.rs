//! The sweeper: re-enqueues events that stayed `RECEIVED` longer than a minimum
//! age — a lost `SendMessage`, when the ingest that stored an event died (or its send failed)
//! and no provider retry came to repair it.
//!
//! It scans the sparse `pending` index for entries older than `now − min_age`, reads each item
//! (consistently: the index lags the table), skips what is no longer RECEIVED, normalizes the
//! stored raw body and headers again with the original receipt time (the message the first
//! delivery meant to send, exactly as ingest's duplicate path rebuilds it) and sends it to the
//! events queue.
//!
//! Two sweeps may run at once and both send an event: harmless, because the lifecycle applies
//! an event to its call once (docs/reliability.md).

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::events_queue::queue_message;
use crate::ports::{EventReader, EventStatus, PendingKey, Queue, QueueError, StoreError};
use crate::providers::Providers;

/// What one sweep did. `scanned` counts the index entries older than the cutoff; each one ends
/// in exactly one of the other counts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SweepReport {
    /// Events received at or before this time were candidates (`now − min_age`).
    pub cutoff: DateTime<Utc>,
    pub scanned: u64,
    pub requeued: u64,
    /// Processed (or sent to review) since the index listed it, or gone (TTL).
    pub skipped_not_received: u64,
    /// Its provider is no longer configured here: left RECEIVED, for when it is again.
    pub skipped_unconfigured: u64,
    /// The stored item is not one callhook can read, or normalizing it again no longer gives
    /// its own id (the provider's mapping changed since): left for a person.
    pub skipped_unreadable: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] QueueError),
}

/// The sweeper's state, built once per cold start (or by `callhook sweep`).
pub struct Sweeper<S, Q> {
    pub store: S,
    /// The events queue.
    pub queue: Q,
    pub providers: Providers,
    /// Only events RECEIVED at least this long ago are swept (SWEEP_MIN_AGE_SECS).
    pub min_age: Duration,
}

impl<S: EventReader, Q: Queue> Sweeper<S, Q> {
    /// One pass over the `pending` index. Stops at the first store or queue failure (the next
    /// scheduled run goes over the same ground; nothing is lost), but not at one unreadable
    /// item.
    pub async fn sweep(&self, now: DateTime<Utc>) -> Result<SweepReport, SweepError> {
        let min_age = chrono::Duration::from_std(self.min_age).unwrap_or(chrono::Duration::MAX);
        let cutoff = now
            .checked_sub_signed(min_age)
            .unwrap_or(DateTime::UNIX_EPOCH);
        let mut report = SweepReport {
            cutoff,
            ..SweepReport::default()
        };
        let mut after: Option<PendingKey> = None;
        loop {
            let page = self.store.pending_page(cutoff, after.as_ref()).await?;
            for key in &page.keys {
                report.scanned += 1;
                self.sweep_one(&key.event_id, &mut report).await?;
            }
            match page.next {
                Some(next) if after.as_ref() != Some(&next) => after = Some(next),
                _ => return Ok(report),
            }
        }
    }

    async fn sweep_one(&self, event_id: &str, report: &mut SweepReport) -> Result<(), SweepError> {
        let stored = match self.store.get_event(event_id).await {
            Ok(Some(stored)) => stored,
            Ok(None) => {
                report.skipped_not_received += 1;
                return Ok(());
            }
            Err(StoreError::Corrupt(id, what)) => {
                tracing::warn!(event_id = %id, problem = %what, "sweep: stored event unreadable");
                report.skipped_unreadable += 1;
                return Ok(());
            }
            Err(err) => return Err(err.into()),
        };
        if stored.status != EventStatus::Received {
            report.skipped_not_received += 1;
            return Ok(());
        }
        let Some(provider) = self.providers.get(&stored.provider) else {
            tracing::warn!(event_id, provider = %stored.provider, "sweep: provider not configured; event left RECEIVED");
            report.skipped_unconfigured += 1;
            return Ok(());
        };
        // Normalized as first received, so the message is the one first meant (normalizing
        // depends on nothing but the stored headers, body and receipt time).
        let event = provider.normalize(&stored.delivery());
        if event.event_id != stored.event_id {
            // The lifecycle marks the event it is given: a message under another id would
            // leave this item RECEIVED forever (and create a stray one).
            tracing::warn!(event_id, normalized_id = %event.event_id, "sweep: stored event normalizes to another id; left RECEIVED");
            report.skipped_unreadable += 1;
            return Ok(());
        }
        self.queue.send(queue_message(&event), 0).await?;
        tracing::info!(event_id, received_at = %stored.received_at, "sweep: re-enqueued");
        report.requeued += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use crate::delivery::Delivery;
    use chrono::TimeZone;

    use super::*;
    use crate::app::ingest::Ingest;
    use crate::app::lifecycle::Lifecycle;
    use crate::config::{DEFAULT_SWEEP_MIN_AGE_SECS, Env, IngestConfig, SweepConfig};
    use crate::domain::event::CanonicalEvent;
    use crate::ports::{CallStore, EventSelection, PendingPage, StoredEvent};
    use crate::providers::{FIXTURE_SEED, Headers, dev_signer};
    use crate::testing::{MEMORY_PAGE_SIZE, MemoryCallStore, MemoryEventStore, MemoryQueue};

    const T0: i64 = 1_700_000_000;

    fn at(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(T0 + secs, 0).unwrap()
    }

    fn telnyx_env() -> Env {
        let mut env = Env::from_pairs(dev_signer("telnyx", &FIXTURE_SEED).unwrap().verifier_env());
        env.set("EVENTS_TABLE", "events");
        env.set("EVENTS_BUCKET", "bodies");
        env.set("EVENTS_QUEUE_URL", "queue");
        env.set("CALLHOOK_DEV", "true");
        env
    }

    fn body(event_type: &str, id: &str, extra: &str) -> String {
        format!(
            r#"{{"data":{{"event_type":"{event_type}","id":"{id}","occurred_at":"2024-01-01T00:00:00Z","payload":{{"call_session_id":"s1"{extra}}},"record_type":"event"}},"meta":{{"attempt":1}}}}"#
        )
    }

    fn stored(provider: &str, id: &str, body: &str, received_at: DateTime<Utc>) -> StoredEvent {
        StoredEvent {
            event_id: format!("{provider}#{id}"),
            provider: provider.to_owned(),
            status: EventStatus::Received,
            raw_body: body.as_bytes().to_vec(),
            headers: Headers::new(),
            received_at,
            call_id: None,
            queue_failed: false,
        }
    }

    fn put(store: &MemoryEventStore, event: StoredEvent) {
        store
            .events
            .lock()
            .unwrap()
            .insert(event.event_id.clone(), event);
    }

    fn sweeper<S>(store: S, min_age_secs: u64) -> Sweeper<S, MemoryQueue> {
        Sweeper {
            store,
            queue: MemoryQueue::default(),
            providers: Providers::from_env(&telnyx_env()).unwrap(),
            min_age: Duration::from_secs(min_age_secs),
        }
    }

    fn ids(messages: &[String]) -> Vec<String> {
        let mut ids: Vec<String> = messages
            .iter()
            .map(|m| serde_json::from_str::<CanonicalEvent>(m).unwrap().event_id)
            .collect();
        ids.sort();
        ids
    }

    #[tokio::test]
    async fn only_events_received_before_the_cutoff_are_requeued() {
        let store = MemoryEventStore::default();
        put(
            &store,
            stored("telnyx", "old", &body("call.initiated", "old", ""), at(0)),
        );
        put(
            &store,
            stored("telnyx", "edge", &body("call.answered", "edge", ""), at(80)),
        );
        put(
            &store,
            stored(
                "telnyx",
                "young",
                &body("call.answered", "young", ""),
                at(81),
            ),
        );
        let mut done = stored("telnyx", "done", &body("call.hangup", "done", ""), at(0));
        done.status = EventStatus::Processed;
        put(&store, done);
        let sweeper = sweeper(store, 120);

        let report = sweeper.sweep(at(200)).await.unwrap();
        assert_eq!(report.cutoff, at(80));
        assert_eq!((report.scanned, report.requeued), (2, 2), "{report:?}");
        assert_eq!(
            ids(&sweeper.queue.taken()),
            vec!["telnyx#edge", "telnyx#old"],
            "a processed event is not in the index; a younger one waits"
        );
    }

    /// The message is what the first delivery meant to send: its original receipt time, the
    /// same canonical event ingest would have queued.
    #[tokio::test]
    async fn a_lost_send_is_requeued_as_first_received() {
        let env = telnyx_env();
        let ingest = Ingest {
            providers: Providers::from_env(&env).unwrap(),
            store: MemoryEventStore::default(),
            queue: MemoryQueue::default(),
            config: IngestConfig::from_env(&env).unwrap(),
        };
        let body = body(
            "call.hangup",
            "lost",
            r#","hangup_cause":"normal_clearing""#,
        );
        let signed = dev_signer("telnyx", &FIXTURE_SEED).unwrap().sign(
            body.as_bytes(),
            at(0).timestamp(),
            "",
        );
        let request = crate::app::ingest::Request {
            method: "POST",
            provider: Some("telnyx"),
            token: None,
            headers: signed.headers.into_iter().collect(),
            body: Some(&body),
            is_base64_encoded: false,
            request_url: None,
            received_at: at(0),
        };
        ingest.queue.fail.store(true, Ordering::SeqCst);
        assert_eq!(ingest.handle(&request).await.status(), 503);
        let headers = request.headers.clone();
        let expected = ingest
            .providers
            .get("telnyx")
            .unwrap()
            .normalize(&Delivery {
                headers: &headers,
                body: body.as_bytes(),
                path_token: None,
                request_url: None,
                received_at: at(0),
            });

        let Ingest {
            store, providers, ..
        } = ingest;
        let sweeper = Sweeper {
            store,
            queue: MemoryQueue::default(),
            providers,
            min_age: Duration::from_secs(DEFAULT_SWEEP_MIN_AGE_SECS),
        };
        assert_eq!(sweeper.sweep(at(60)).await.unwrap().requeued, 0);
        let report = sweeper.sweep(at(600)).await.unwrap();
        assert_eq!(report.requeued, 1, "{report:?}");
        let messages = sweeper.queue.taken();
        assert_eq!(messages, vec![queue_message(&expected)]);
        let event: CanonicalEvent = serde_json::from_str(&messages[0]).unwrap();
        assert_eq!(event.received_at, at(0));
        assert!(event.is_final);
    }

    #[tokio::test]
    async fn an_unconfigured_provider_is_left_and_counted() {
        let store = MemoryEventStore::default();
        put(&store, stored("bird", "b1", "{}", at(0)));
        put(
            &store,
            stored("telnyx", "t1", &body("call.initiated", "t1", ""), at(0)),
        );
        let sweeper = sweeper(store, 0);
        let report = sweeper.sweep(at(1)).await.unwrap();
        assert_eq!(
            (report.scanned, report.requeued, report.skipped_unconfigured),
            (2, 1, 1),
            "{report:?}"
        );
        assert_eq!(ids(&sweeper.queue.taken()), vec!["telnyx#t1"]);
        assert_eq!(
            sweeper.store.events.lock().unwrap()["bird#b1"].status,
            EventStatus::Received
        );
    }

    #[tokio::test]
    async fn every_page_of_the_index_is_swept() {
        let store = MemoryEventStore::default();
        let n = 3 * MEMORY_PAGE_SIZE + 1;
        for i in 0..n {
            let id = format!("p{i:02}");
            // Every other one is young: pages come back partly (or wholly) filtered.
            let received = if i % 2 == 0 { at(0) } else { at(100) };
            put(
                &store,
                stored("telnyx", &id, &body("call.answered", &id, ""), received),
            );
        }
        let sweeper = sweeper(store, 50);
        let report = sweeper.sweep(at(100)).await.unwrap();
        let old = n.div_ceil(2) as u64;
        assert_eq!((report.scanned, report.requeued), (old, old), "{report:?}");
        assert_eq!(sweeper.queue.taken().len() as u64, old);
    }

    /// An index that lags the table: lists every event it ever held, whatever its status now.
    struct StaleIndex(MemoryEventStore);

    impl EventReader for StaleIndex {
        async fn pending_page(
            &self,
            _: DateTime<Utc>,
            after: Option<&PendingKey>,
        ) -> Result<PendingPage, StoreError> {
            if after.is_some() {
                return Ok(PendingPage::default());
            }
            let mut keys: Vec<PendingKey> = self
                .0
                .events
                .lock()
                .unwrap()
                .values()
                .map(|e| PendingKey {
                    event_id: e.event_id.clone(),
                    pending_since: e.received_at.timestamp_millis(),
                })
                .collect();
            keys.push(PendingKey {
                event_id: "telnyx#expired".into(),
                pending_since: 0,
            });
            keys.sort_by(|a, b| a.event_id.cmp(&b.event_id));
            Ok(PendingPage { keys, next: None })
        }

        async fn get_event(&self, event_id: &str) -> Result<Option<StoredEvent>, StoreError> {
            self.0.get_event(event_id).await
        }

        async fn select(&self, selection: &EventSelection) -> Result<Vec<String>, StoreError> {
            self.0.select(selection).await
        }
    }

    #[tokio::test]
    async fn the_item_not_the_index_decides() {
        let store = MemoryEventStore::default();
        for (id, status) in [
            ("r", EventStatus::Received),
            ("p", EventStatus::Processed),
            ("v", EventStatus::Review),
        ] {
            let mut e = stored("telnyx", id, &body("call.initiated", id, ""), at(0));
            e.status = status;
            put(&store, e);
        }
        // Stored under an id its body no longer normalizes to.
        put(
            &store,
            StoredEvent {
                event_id: "telnyx#renamed".into(),
                ..stored("telnyx", "x", &body("call.initiated", "other", ""), at(0))
            },
        );
        let sweeper = sweeper(StaleIndex(store), 0);
        let report = sweeper.sweep(at(10)).await.unwrap();
        assert_eq!(
            report,
            SweepReport {
                cutoff: at(10),
                scanned: 5,
                requeued: 1,
                skipped_not_received: 3,
                skipped_unconfigured: 0,
                skipped_unreadable: 1,
            }
        );
        assert_eq!(ids(&sweeper.queue.taken()), vec!["telnyx#r"]);
    }

    /// Two sweeps at once both send the event; the lifecycle applies it once and finalizes the
    /// call once. That is the whole concurrency story: no lock.
    #[tokio::test]
    async fn two_concurrent_sweeps_are_harmless() {
        let store = MemoryEventStore::default();
        let hangup = body("call.hangup", "h1", r#","hangup_cause":"normal_clearing""#);
        put(&store, stored("telnyx", "h1", &hangup, at(0)));
        let sweeper = sweeper(store, 0);
        let (a, b) = tokio::join!(sweeper.sweep(at(1)), sweeper.sweep(at(1)));
        assert_eq!((a.unwrap().requeued, b.unwrap().requeued), (1, 1));
        let messages = sweeper.queue.taken();
        assert_eq!(messages.len(), 2);

        let reconciler = Lifecycle {
            calls: MemoryCallStore::default(),
            dispatch_queue: MemoryQueue::default(),
            settle_secs: 0,
            review: crate::ports::NoReview,
            analytics: crate::ports::NoAnalytics,
        };
        for message in &messages {
            reconciler.process(message).await.unwrap();
        }
        let call = reconciler.calls.get("telnyx#s1").await.unwrap().unwrap();
        assert_eq!(call.record.event_count, 1);
        assert!(call.record.finalized_at.is_some());
        assert_eq!(
            reconciler.dispatch_queue.taken().len(),
            1,
            "one finalization"
        );
    }

    #[tokio::test]
    async fn store_and_queue_failures_stop_the_sweep() {
        let store = MemoryEventStore::default();
        put(
            &store,
            stored("telnyx", "f1", &body("call.initiated", "f1", ""), at(0)),
        );
        let sweeper = sweeper(store, 0);
        sweeper.store.fail.store(true, Ordering::SeqCst);
        assert!(matches!(
            sweeper.sweep(at(1)).await,
            Err(SweepError::Store(StoreError::Unavailable(_)))
        ));
        sweeper.store.fail.store(false, Ordering::SeqCst);
        sweeper.queue.fail.store(true, Ordering::SeqCst);
        assert!(matches!(
            sweeper.sweep(at(1)).await,
            Err(SweepError::Queue(_))
        ));
        sweeper.queue.fail.store(false, Ordering::SeqCst);
        assert_eq!(sweeper.sweep(at(1)).await.unwrap().requeued, 1);
    }

    #[test]
    fn config_defaults_and_names_the_bad_variable() {
        let env = telnyx_env();
        let config = SweepConfig::from_env(&env).unwrap();
        assert_eq!(config.min_age_secs, DEFAULT_SWEEP_MIN_AGE_SECS);
        assert_eq!(config.events_table, "events");

        let mut short = env.clone();
        short.set("SWEEP_MIN_AGE_SECS", "15");
        let err = SweepConfig::from_env(&short).unwrap_err().to_string();
        assert!(
            err.starts_with("SWEEP_MIN_AGE_SECS is invalid: must exceed RESEND_AFTER_SECS (15)"),
            "{err}"
        );
        short.set("RESEND_AFTER_SECS", "5");
        assert_eq!(SweepConfig::from_env(&short).unwrap().min_age_secs, 15);

        let mut bad = env.clone();
        bad.set("SWEEP_MIN_AGE_SECS", "two minutes");
        let err = SweepConfig::from_env(&bad).unwrap_err().to_string();
        assert_eq!(
            err,
            "SWEEP_MIN_AGE_SECS is invalid: expected a whole number"
        );

        let missing = Env::from_pairs([("EVENTS_TABLE", "t")]);
        assert_eq!(
            SweepConfig::from_env(&missing).unwrap_err().to_string(),
            "EVENTS_BUCKET is not set"
        );
    }
}
