//! The review table: what needs a person.

use std::future::Future;

use super::StoreError;
use crate::domain::review::{ReviewItem, ReviewStatus};

/// Writing review items (every function that gives something up).
pub trait ReviewStore: Send + Sync {
    /// Writes the item (replacing one with the same pk).
    fn put(&self, item: &ReviewItem) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Writes an event's item idempotently: the first `created_at` is kept, `attempts` counts
    /// the writes, `status` becomes `open` again unless a person discarded the item.
    fn open_event(&self, item: &ReviewItem) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// No review table: events are only marked `REVIEW` on the events table.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoReview;

impl ReviewStore for NoReview {
    async fn put(&self, _item: &ReviewItem) -> Result<(), StoreError> {
        Ok(())
    }

    async fn open_event(&self, _item: &ReviewItem) -> Result<(), StoreError> {
        Ok(())
    }
}

/// An optional review table (`REVIEW_TABLE` unset: `None`, which writes nothing).
impl<S: ReviewStore> ReviewStore for Option<S> {
    async fn put(&self, item: &ReviewItem) -> Result<(), StoreError> {
        match self {
            Some(store) => store.put(item).await,
            None => Ok(()),
        }
    }

    async fn open_event(&self, item: &ReviewItem) -> Result<(), StoreError> {
        match self {
            Some(store) => store.open_event(item).await,
            None => Ok(()),
        }
    }
}

impl<S: ReviewStore> ReviewStore for &S {
    async fn put(&self, item: &ReviewItem) -> Result<(), StoreError> {
        (**self).put(item).await
    }

    async fn open_event(&self, item: &ReviewItem) -> Result<(), StoreError> {
        (**self).open_event(item).await
    }
}

/// Reading and closing review items (operators, replay, the `review_open` gauge).
pub trait ReviewAdmin: Send + Sync {
    /// One item, read consistently.
    fn get(&self, pk: &str) -> impl Future<Output = Result<Option<ReviewItem>, StoreError>> + Send;

    /// Every item, filtered on `status` and `reason`, newest first.
    fn list(
        &self,
        status: Option<ReviewStatus>,
        reason: Option<&str>,
    ) -> impl Future<Output = Result<Vec<ReviewItem>, StoreError>> + Send;

    /// How many items are open.
    fn count_open(&self) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Sets an existing item's status (replayed, discarded); `false` when there is no such item.
    fn set_status(
        &self,
        pk: &str,
        status: ReviewStatus,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}
