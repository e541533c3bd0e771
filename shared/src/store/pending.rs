//! Events still `RECEIVED`, found through the sparse `pending` index (DESIGN §6): what the
//! sweeper reads.
//!
//! The index is keyed by `pending_since` (N, epoch ms) alone and projected `KEYS_ONLY`; only
//! items still RECEIVED carry `pending_since` (the lifecycle removes it when it applies the
//! event), so the index holds only events not yet processed and a scan of it is small. An index
//! is eventually consistent: an item may still be listed just after it was processed, so the
//! caller reads the item itself (consistently) before acting on it.

use std::collections::HashMap;
use std::future::Future;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};

use super::attr::unavailable;
use super::events::stored_of;
use super::memory::MemoryEventStore;
use super::{EventStatus, StoreError, StoredEvent};

/// The name of the events table's sparse index.
pub const PENDING_INDEX: &str = "pending";

/// One entry of the `pending` index: the table key and the index key, which together are also
/// where a scan of the index resumes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingKey {
    pub event_id: String,
    /// Epoch milliseconds: when the event was received.
    pub pending_since: i64,
}

/// One page of a scan of the index.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PendingPage {
    /// Entries on this page that passed the age filter (a page may be empty and still have a
    /// next one).
    pub keys: Vec<PendingKey>,
    /// Where the next page starts; `None` when the scan is complete.
    pub next: Option<PendingKey>,
}

/// Read access to events not yet processed.
pub trait PendingEvents: Send + Sync {
    /// One page of the events that have been pending since `received_before` or earlier
    /// (`pending_since <= received_before`), resuming after `after`.
    fn pending_page(
        &self,
        received_before: DateTime<Utc>,
        after: Option<&PendingKey>,
    ) -> impl Future<Output = Result<PendingPage, StoreError>> + Send;

    /// The stored event, read consistently; `None` when it is gone (TTL).
    fn get_event(
        &self,
        event_id: &str,
    ) -> impl Future<Output = Result<Option<StoredEvent>, StoreError>> + Send;
}

/// The events table and its `pending` index on DynamoDB. Needs `dynamodb:Scan` on the index and
/// `dynamodb:GetItem` on the table, nothing else.
#[derive(Clone)]
pub struct DynamoPendingEvents {
    client: Client,
    table: String,
}

impl DynamoPendingEvents {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoPendingEvents {
            client,
            table: table.into(),
        }
    }
}

fn key_of(item: &HashMap<String, AttributeValue>) -> Option<PendingKey> {
    Some(PendingKey {
        event_id: item.get("pk")?.as_s().ok()?.clone(),
        pending_since: item.get("pending_since")?.as_n().ok()?.parse().ok()?,
    })
}

fn start_key(key: &PendingKey) -> HashMap<String, AttributeValue> {
    HashMap::from([
        ("pk".to_owned(), AttributeValue::S(key.event_id.clone())),
        (
            "pending_since".to_owned(),
            AttributeValue::N(key.pending_since.to_string()),
        ),
    ])
}

impl PendingEvents for DynamoPendingEvents {
    async fn pending_page(
        &self,
        received_before: DateTime<Utc>,
        after: Option<&PendingKey>,
    ) -> Result<PendingPage, StoreError> {
        // A scan may filter on the index's own key (a query could not); the filter is applied
        // after the read, so a page can come back empty with more to read.
        let page = self
            .client
            .scan()
            .table_name(&self.table)
            .index_name(PENDING_INDEX)
            .filter_expression("pending_since <= :cutoff")
            .expression_attribute_values(
                ":cutoff",
                AttributeValue::N(received_before.timestamp_millis().to_string()),
            )
            .set_exclusive_start_key(after.map(start_key))
            .send()
            .await
            .map_err(|err| unavailable("Scan", &err))?;
        let keys = page
            .items()
            .iter()
            .map(|item| {
                key_of(item).ok_or_else(|| {
                    let pk = item.get("pk").and_then(|v| v.as_s().ok());
                    StoreError::Corrupt(
                        pk.cloned().unwrap_or_default(),
                        "pending index entry without pk or pending_since".into(),
                    )
                })
            })
            .collect::<Result<_, _>>()?;
        let next = match page.last_evaluated_key() {
            None => None,
            Some(last) => Some(key_of(last).ok_or_else(|| {
                StoreError::Corrupt(String::new(), "unreadable LastEvaluatedKey".into())
            })?),
        };
        Ok(PendingPage { keys, next })
    }

    async fn get_event(&self, event_id: &str) -> Result<Option<StoredEvent>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(event_id.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|err| unavailable("GetItem", &err))?;
        out.item().map(stored_of).transpose()
    }
}

/// Pages of the memory store's scan: small, so tests go through pagination.
pub const MEMORY_PAGE_SIZE: usize = 3;

/// The memory store's events that are still RECEIVED, as DynamoDB's sparse index would hold
/// them (`pending_since` = the receipt time), in event id order.
impl PendingEvents for MemoryEventStore {
    async fn pending_page(
        &self,
        received_before: DateTime<Utc>,
        after: Option<&PendingKey>,
    ) -> Result<PendingPage, StoreError> {
        if self.fail.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(StoreError::Unavailable("injected failure".into()));
        }
        let mut pending: Vec<PendingKey> = self
            .events
            .lock()
            .unwrap()
            .values()
            .filter(|e| e.status == EventStatus::Received)
            .map(|e| PendingKey {
                event_id: e.event_id.clone(),
                pending_since: e.received_at.timestamp_millis(),
            })
            .filter(|k| after.is_none_or(|a| k.event_id > a.event_id))
            .collect();
        pending.sort_by(|a, b| a.event_id.cmp(&b.event_id));
        // Like DynamoDB: a page is a run of entries read, the filter applies after the read.
        let read: Vec<PendingKey> = pending.into_iter().take(MEMORY_PAGE_SIZE).collect();
        let next = (read.len() == MEMORY_PAGE_SIZE).then(|| read[read.len() - 1].clone());
        let cutoff = received_before.timestamp_millis();
        let keys = read
            .into_iter()
            .filter(|k| k.pending_since <= cutoff)
            .collect();
        Ok(PendingPage { keys, next })
    }

    async fn get_event(&self, event_id: &str) -> Result<Option<StoredEvent>, StoreError> {
        if self.fail.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(StoreError::Unavailable("injected failure".into()));
        }
        Ok(self.events.lock().unwrap().get(event_id).cloned())
    }
}
