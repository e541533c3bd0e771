//! Reading the events table on DynamoDB: one event by id, the sparse `pending` index the sweeper
//! scans, and the operator's selections for replay.
//!
//! The index is keyed by `pending_since` (N, epoch ms) alone and projected `KEYS_ONLY`; only
//! items still RECEIVED carry `pending_since`, so a scan of it is small. An index is eventually
//! consistent: the caller reads the item itself (consistently) before acting on it.

use std::collections::{BTreeSet, HashMap};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};

use super::events::{DynamoEventStore, load, received_at_of};
use super::{Capacity, get_by_pk, scan_each, unavailable};
use crate::ports::{
    BlobStore, EventReader, EventSelection, PendingKey, PendingPage, StoreError, StoredEvent,
};

/// The name of the events table's sparse index.
pub const PENDING_INDEX: &str = "pending";

/// The events table and its `pending` index on DynamoDB. The sweeper needs `dynamodb:Scan` on
/// the index and `dynamodb:GetItem` on the table, nothing else; replay's selection scans the
/// table. Reading an event whose body is kept apart also needs `s3:GetObject` on the events
/// bucket.
#[derive(Clone)]
pub struct DynamoEventReader(DynamoEventStore);

impl DynamoEventReader {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoEventReader(DynamoEventStore::new(client, table))
    }

    /// Counts this adapter's consumed capacity into `capacity` (shared with other adapters).
    pub fn with_capacity(self, capacity: Capacity) -> Self {
        DynamoEventReader(self.0.with_capacity(capacity))
    }

    /// Reads bodies kept apart from their item from `bodies` (the events bucket). Without it,
    /// reading such an event is an error.
    pub fn with_bodies(self, bodies: impl BlobStore + 'static) -> Self {
        DynamoEventReader(self.0.with_bodies(bodies))
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

impl EventReader for DynamoEventReader {
    async fn pending_page(
        &self,
        received_before: DateTime<Utc>,
        after: Option<&PendingKey>,
    ) -> Result<PendingPage, StoreError> {
        // A scan may filter on the index's own key (a query could not); the filter is applied
        // after the read, so a page can come back empty with more to read.
        let page = self
            .0
            .capacity
            .read(
                self.0
                    .client
                    .scan()
                    .table_name(&self.0.table)
                    .index_name(PENDING_INDEX)
                    .filter_expression("pending_since <= :cutoff")
                    .expression_attribute_values(
                        ":cutoff",
                        AttributeValue::N(received_before.timestamp_millis().to_string()),
                    )
                    .set_exclusive_start_key(after.map(start_key))
                    .set_return_consumed_capacity(self.0.capacity.mode())
                    .send()
                    .await,
            )
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
        match get_by_pk(
            &self.0.client,
            &self.0.capacity,
            &self.0.table,
            event_id,
            true,
        )
        .await?
        {
            Some(item) => load(&item, self.0.bodies.as_deref()).await,
            None => Ok(None),
        }
    }

    async fn select(&self, selection: &EventSelection) -> Result<Vec<String>, StoreError> {
        let (filter, values): (Option<&str>, HashMap<String, AttributeValue>) = match selection {
            EventSelection::Events(ids) => {
                let mut seen = BTreeSet::new();
                return Ok(ids
                    .iter()
                    .filter(|id| seen.insert(id.as_str()))
                    .cloned()
                    .collect());
            }
            EventSelection::Call(call_id) => (
                Some("call_id = :c"),
                HashMap::from([(":c".to_owned(), AttributeValue::S(call_id.clone()))]),
            ),
            EventSelection::Status(status) => (
                Some("#s = :s"),
                HashMap::from([(":s".to_owned(), AttributeValue::S(status.as_str().into()))]),
            ),
            EventSelection::Range { .. } => (None, HashMap::new()),
        };
        let mut found: Vec<(DateTime<Utc>, String)> = Vec::new();
        let values = (!values.is_empty()).then_some(values);
        let scan = || {
            self.0
                .client
                .scan()
                .table_name(&self.0.table)
                .projection_expression("pk, received_at, #s")
                .expression_attribute_names("#s", "status")
                .set_filter_expression(filter.map(str::to_owned))
                .set_expression_attribute_values(values.clone())
        };
        scan_each(&self.0.capacity, scan, |item| {
            let Some(pk) = item.get("pk").and_then(|v| v.as_s().ok()) else {
                return Ok(());
            };
            let received_at = received_at_of(item).unwrap_or(DateTime::UNIX_EPOCH);
            let outside = matches!(selection, EventSelection::Range { since, until }
                if received_at < *since || until.is_some_and(|u| received_at >= u));
            if !outside {
                found.push((received_at, pk.clone()));
            }
            Ok(())
        })
        .await?;
        found.sort();
        Ok(found.into_iter().map(|(_, id)| id).collect())
    }
}
