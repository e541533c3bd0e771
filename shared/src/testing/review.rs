//! The review table in memory.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::domain::review::{ReviewItem, ReviewStatus};
use crate::ports::{ReviewStore, StoreError};

/// Items by pk; `fail` makes every call answer "unavailable".
#[derive(Default)]
pub struct MemoryReviewStore {
    pub items: Mutex<HashMap<String, ReviewItem>>,
    pub fail: AtomicBool,
}

impl MemoryReviewStore {
    pub fn get(&self, pk: &str) -> Option<ReviewItem> {
        self.items.lock().unwrap().get(pk).cloned()
    }

    pub fn len(&self) -> usize {
        self.items.lock().unwrap().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl ReviewStore for MemoryReviewStore {
    async fn put(&self, item: &ReviewItem) -> Result<(), StoreError> {
        if self.fail.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable("injected failure".into()));
        }
        self.items
            .lock()
            .unwrap()
            .insert(item.pk.clone(), item.clone());
        Ok(())
    }

    async fn open_event(&self, item: &ReviewItem) -> Result<(), StoreError> {
        if self.fail.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable("injected failure".into()));
        }
        let mut items = self.items.lock().unwrap();
        match items.get_mut(&item.pk) {
            Some(existing) if existing.status == ReviewStatus::Discarded => {}
            Some(existing) => {
                let (created_at, attempts) = (existing.created_at, existing.attempts);
                *existing = item.clone();
                existing.created_at = created_at;
                existing.attempts = attempts + 1;
            }
            None => {
                items.insert(item.pk.clone(), item.clone());
            }
        }
        Ok(())
    }
}

impl MemoryReviewStore {
    /// As [`DynamoReviewStore::set_status`].
    pub fn set_status(&self, pk: &str, status: ReviewStatus) -> bool {
        match self.items.lock().unwrap().get_mut(pk) {
            Some(item) => {
                item.status = status;
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::DateTime;

    use super::*;
    use crate::domain::event::CanonicalEvent;
    use crate::ports::NoReview;

    fn at(secs: i64) -> chrono::DateTime<chrono::Utc> {
        DateTime::from_timestamp(1_700_000_000 + secs, 0).unwrap()
    }

    fn unknown_event() -> CanonicalEvent {
        let mut e = CanonicalEvent::new("telnyx", "u1", "call.teleported", at(0));
        crate::providers::mark_unknown(&mut e);
        e
    }

    #[tokio::test]
    async fn opening_an_event_review_twice_keeps_created_at_and_discarded_stays() {
        let store = MemoryReviewStore::default();
        let event = unknown_event();
        store
            .open_event(&ReviewItem::event(&event, "unknown_type", at(5)))
            .await
            .unwrap();
        assert!(store.set_status("event#telnyx#u1", ReviewStatus::Replayed));
        store
            .open_event(&ReviewItem::event(&event, "unknown_type", at(9)))
            .await
            .unwrap();
        let item = store.get("event#telnyx#u1").unwrap();
        assert_eq!(
            (item.created_at, item.attempts, item.status),
            (at(5), 2, ReviewStatus::Open)
        );
        assert!(store.set_status("event#telnyx#u1", ReviewStatus::Discarded));
        store
            .open_event(&ReviewItem::event(&event, "unknown_type", at(20)))
            .await
            .unwrap();
        assert_eq!(
            store.get("event#telnyx#u1").unwrap().status,
            ReviewStatus::Discarded
        );
        assert!(!store.set_status("event#nope", ReviewStatus::Discarded));
        // No table: nothing written, no error.
        let none: Option<MemoryReviewStore> = None;
        none.open_event(&ReviewItem::event(&event, "unknown_type", at(5)))
            .await
            .unwrap();
        NoReview
            .open_event(&ReviewItem::event(&event, "unknown_type", at(5)))
            .await
            .unwrap();
    }
}
