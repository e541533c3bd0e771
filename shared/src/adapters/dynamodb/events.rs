//! The events table on DynamoDB at ingest: the conditional write that is the dedupe (item
//! layout: docs/architecture.md, "Tables").

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::ReturnConsumedCapacity;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};
use chrono::{DateTime, Utc};

use super::{Capacity, conditional_update, n, pk_of, s, unavailable};
use crate::ports::{
    EventStatus, EventStore, Inserted, MarkForReview, NewEvent, StoreError, StoredEvent,
};
use crate::providers::Headers;

#[derive(Clone)]
pub struct DynamoEventStore {
    client: Client,
    capacity: Capacity,
    table: String,
}

impl DynamoEventStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoEventStore {
            client,
            capacity: Capacity::default(),
            table: table.into(),
        }
    }

    /// Counts this adapter's consumed capacity into `capacity` (shared with other adapters).
    pub fn with_capacity(mut self, capacity: Capacity) -> Self {
        self.capacity = capacity;
        self
    }
}

pub(crate) fn item_of(event: &NewEvent<'_>) -> HashMap<String, AttributeValue> {
    let headers = event
        .headers
        .iter()
        .map(|(k, v)| (k.to_owned(), s(v)))
        .collect();
    let mut item = HashMap::from([
        ("pk".to_owned(), s(event.event_id)),
        ("provider".to_owned(), s(event.provider)),
        ("event_type".to_owned(), s(event.event_type)),
        ("status".to_owned(), s(EventStatus::Received.as_str())),
        (
            "raw_body".to_owned(),
            AttributeValue::B(Blob::new(event.raw_body)),
        ),
        ("headers".to_owned(), AttributeValue::M(headers)),
        ("canonical".to_owned(), s(event.envelope_json)),
        ("received_at".to_owned(), s(event.received_at.to_rfc3339())),
        (
            "pending_since".to_owned(),
            n(event.received_at.timestamp_millis()),
        ),
        ("expires_at".to_owned(), n(event.expires_at.timestamp())),
    ]);
    if let Some(call_id) = event.call_id {
        item.insert("call_id".to_owned(), s(call_id));
    }
    item
}

pub(crate) fn stored_of(item: &HashMap<String, AttributeValue>) -> Result<StoredEvent, StoreError> {
    let pk = pk_of(item);
    let corrupt = |what: &str| StoreError::Corrupt(pk.clone(), what.to_owned());
    let text = |name: &str| {
        item.get(name)
            .and_then(|v| v.as_s().ok())
            .ok_or_else(|| corrupt(name))
    };
    let status = EventStatus::parse(text("status")?).ok_or_else(|| corrupt("status"))?;
    let raw_body = item
        .get("raw_body")
        .and_then(|v| v.as_b().ok())
        .map(|b| b.as_ref().to_vec())
        .ok_or_else(|| corrupt("raw_body"))?;
    let headers = item
        .get("headers")
        .and_then(|v| v.as_m().ok())
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_s().ok().map(|v| (k, v.clone())))
                .collect::<Headers>()
        })
        .unwrap_or_default();
    let received_at = DateTime::parse_from_rfc3339(text("received_at")?)
        .map_err(|_| corrupt("received_at"))?
        .with_timezone(&Utc);
    Ok(StoredEvent {
        call_id: text("call_id").ok().cloned(),
        event_id: pk.clone(),
        provider: text("provider")?.clone(),
        status,
        raw_body,
        headers,
        received_at,
        queue_failed: item
            .get("queue_failed")
            .and_then(|v| v.as_bool().ok())
            .copied()
            .unwrap_or(false),
    })
}

impl EventStore for DynamoEventStore {
    async fn insert_new(&self, event: &NewEvent<'_>) -> Result<Inserted, StoreError> {
        let item = item_of(event);
        let result = self.capacity.wrote(
            self.client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(item.clone()))
                .condition_expression("attribute_not_exists(pk)")
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .send()
                .await,
        );
        match result {
            Ok(_) => Ok(Inserted::New),
            Err(SdkError::ServiceError(service)) => match service.err() {
                PutItemError::ConditionalCheckFailedException(failed) => {
                    // A failed condition is billed like the write it refused.
                    self.capacity.failed_write(&item);
                    let item = failed.item().ok_or_else(|| {
                        StoreError::Corrupt(
                            event.event_id.to_owned(),
                            "condition failed without the old item".into(),
                        )
                    })?;
                    stored_of(item).map(Inserted::Duplicate)
                }
                other => Err(StoreError::Unavailable(format!("PutItem: {other}"))),
            },
            Err(err) => Err(unavailable("PutItem", &err)),
        }
    }

    async fn mark_queue_failed(&self, event_id: &str) -> Result<(), StoreError> {
        let result = self.capacity.wrote(
            self.client
                .update_item()
                .table_name(&self.table)
                .key("pk", s(event_id))
                .update_expression("SET queue_failed = :t")
                .condition_expression("attribute_exists(pk) AND #s = :received")
                .expression_attribute_names("#s", "status")
                .expression_attribute_values(":t", AttributeValue::Bool(true))
                .expression_attribute_values(":received", s(EventStatus::Received.as_str()))
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .send()
                .await,
        );
        // Already processed or gone: nothing left to repair.
        conditional_update(result).map(drop)
    }
}

impl MarkForReview for DynamoEventStore {
    async fn mark_review(&self, event_id: &str, reason: &str) -> Result<bool, StoreError> {
        let result = self.capacity.wrote(
            self.client
                .update_item()
                .table_name(&self.table)
                .key("pk", s(event_id))
                .update_expression("SET #s = :review, review_reason = :reason REMOVE pending_since")
                .condition_expression("attribute_exists(pk) AND #s <> :processed")
                .expression_attribute_names("#s", "status")
                .expression_attribute_values(":review", s(EventStatus::Review.as_str()))
                .expression_attribute_values(":processed", s(EventStatus::Processed.as_str()))
                .expression_attribute_values(":reason", s(reason))
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .send()
                .await,
        );
        // Processed already, or never stored here: the item alone tells the story.
        conditional_update(result)
    }
}
