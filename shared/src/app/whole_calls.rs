//! Reading a call whole: the facts its stored record keeps by reference (docs/lifecycle.md,
//! "Large facts") are read back from the events that carried them, normalized again from their
//! raw bytes. Dispatch bodies and the operator's `calls get` read calls this way.

use crate::domain::call::CallRecord;
use crate::domain::event::CanonicalEvent;
use crate::ports::{CallReader, EventReader, StoreError, StoredEvent};
use crate::providers::Providers;

/// `stored` normalized again from its raw bytes, as first received; `None` when its provider
/// is not among `providers`.
pub fn normalize_stored(stored: &StoredEvent, providers: &Providers) -> Option<CanonicalEvent> {
    Some(
        providers
            .get(&stored.provider)?
            .normalize(&stored.delivery()),
    )
}

/// A [`CallReader`] that puts back the facts a record keeps by reference.
pub struct WholeCalls<C, E> {
    pub calls: C,
    pub events: E,
    /// Every provider, normalizing only ([`Providers::normalizers`]).
    pub normalizers: Providers,
}

impl<C: CallReader, E: EventReader> CallReader for WholeCalls<C, E> {
    async fn read_call(&self, call_id: &str) -> Result<Option<CallRecord>, StoreError> {
        let Some(mut record) = self.calls.read_call(call_id).await? else {
            return Ok(None);
        };
        for event_id in record.references() {
            let event = match self.events.get_event(&event_id).await? {
                Some(stored) => normalize_stored(&stored, &self.normalizers),
                None => None,
            };
            match event {
                Some(event) => record.resolve(&event),
                // Past its retention: the reference is all that is left.
                None => tracing::warn!(
                    call_id,
                    event_id,
                    "a fact's event is gone; sent by reference"
                ),
            }
        }
        Ok(Some(record))
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use serde_json::{Value, json};

    use super::*;
    use crate::config::Env;
    use crate::domain::call::Source;
    use crate::ports::{CallStore, Commit, EventStatus};
    use crate::providers::Headers;
    use crate::testing::{MemoryCallStore, MemoryEventStore};

    #[tokio::test]
    async fn a_fact_kept_by_reference_is_read_from_its_event() {
        let transcript = "hello ".repeat(1_000);
        let body = json!({"data": {
            "event_type": "call.recording.transcription.saved",
            "id": "t1",
            "occurred_at": "2026-01-01T00:00:00Z",
            "payload": {"call_session_id": "s1", "transcription_text": transcript}
        }})
        .to_string();
        let normalizers = Providers::normalizers(&Env::default()).unwrap();
        let stored = StoredEvent {
            event_id: "telnyx#t1".into(),
            provider: "telnyx".into(),
            status: EventStatus::Processed,
            raw_body: body.into_bytes(),
            headers: Headers::new(),
            received_at: Utc::now(),
            call_id: Some("telnyx#s1".into()),
            queue_failed: false,
        };
        let carrier = normalize_stored(&stored, &normalizers).unwrap();
        let carried = carrier.facts.transcript.clone().expect("a transcript fact");

        let mut record = CallRecord::new("telnyx#s1", "telnyx");
        record.transcript = Some(carried.clone());
        record.sources.insert(
            "transcript".into(),
            Source {
                class: 0,
                at: Utc::now(),
                event_id: "telnyx#t1".into(),
            },
        );
        let calls = MemoryCallStore::default();
        let by_reference = record.by_reference();
        assert_eq!(
            by_reference.transcript,
            Some(json!({"$event": "telnyx#t1"}))
        );
        calls
            .commit(&Commit {
                record: &by_reference,
                expected_version: None,
                outbox: &[],
                finalizing: false,
            })
            .await
            .unwrap();
        let events = MemoryEventStore::default();
        let whole = WholeCalls {
            calls,
            events,
            normalizers,
        };
        // The event gone: the reference stays.
        let read = whole.read_call("telnyx#s1").await.unwrap().unwrap();
        assert_eq!(read.transcript, by_reference.transcript);

        whole
            .events
            .events
            .lock()
            .unwrap()
            .insert(stored.event_id.clone(), stored);
        let read = whole.read_call("telnyx#s1").await.unwrap().unwrap();
        assert_eq!(read.transcript, Some(carried));
        assert_ne!(read.transcript, Some(Value::Null));
        assert_eq!(whole.read_call("telnyx#none").await.unwrap(), None);
    }
}
