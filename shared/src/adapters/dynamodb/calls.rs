//! The calls table on DynamoDB: one record per call, written with optimistic concurrency in the
//! same transaction that marks the event processed (item layout: docs/architecture.md, "Tables").

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::ReturnConsumedCapacity;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};
use chrono::Utc;

use super::{Capacity, conditional_update, pk_of, s, unavailable};
use crate::domain::call::CallRecord;
use crate::ports::{CallStore, Commit, Committed, EventStatus, StoreError, StoredCall};

#[derive(Clone)]
pub struct DynamoCallStore {
    client: Client,
    capacity: Capacity,
    calls_table: String,
    events_table: String,
}

impl DynamoCallStore {
    pub fn new(
        client: Client,
        calls_table: impl Into<String>,
        events_table: impl Into<String>,
    ) -> Self {
        DynamoCallStore {
            client,
            capacity: Capacity::default(),
            calls_table: calls_table.into(),
            events_table: events_table.into(),
        }
    }

    /// Counts this adapter's consumed capacity into `capacity` (shared with other adapters).
    pub fn with_capacity(mut self, capacity: Capacity) -> Self {
        self.capacity = capacity;
        self
    }

    fn event_update(&self, event_id: &str, status: EventStatus, reason: Option<&str>) -> Update {
        let mut update = Update::builder()
            .table_name(&self.events_table)
            .key("pk", s(event_id))
            .expression_attribute_names("#s", "status")
            .expression_attribute_values(":status", s(status.as_str()));
        let expression = match reason {
            Some(reason) => {
                update = update.expression_attribute_values(":reason", s(reason));
                "SET #s = :status, review_reason = :reason REMOVE pending_since"
            }
            None => "SET #s = :status REMOVE pending_since",
        };
        update
            .update_expression(expression)
            .build()
            .expect("key, table and expression are set")
    }
}

pub(crate) fn call_of(item: &HashMap<String, AttributeValue>) -> Result<StoredCall, StoreError> {
    let pk = pk_of(item);
    let corrupt = |what: &str| StoreError::Corrupt(pk.clone(), what.to_owned());
    let record: CallRecord = item
        .get("record")
        .and_then(|v| v.as_s().ok())
        .and_then(|json| serde_json::from_str(json).ok())
        .ok_or_else(|| corrupt("record"))?;
    let outbox = match item.get("outbox").and_then(|v| v.as_s().ok()) {
        Some(json) => serde_json::from_str(json).map_err(|_| corrupt("outbox"))?,
        None => Vec::new(),
    };
    Ok(StoredCall { record, outbox })
}

impl CallStore for DynamoCallStore {
    async fn get(&self, call_id: &str) -> Result<Option<StoredCall>, StoreError> {
        let out = self
            .capacity
            .read(
                self.client
                    .get_item()
                    .table_name(&self.calls_table)
                    .key("pk", s(call_id))
                    .consistent_read(true)
                    .return_consumed_capacity(ReturnConsumedCapacity::Total)
                    .send()
                    .await,
            )
            .map_err(|e| unavailable("GetItem", &e))?;
        out.item().map(call_of).transpose()
    }

    async fn commit(&self, commit: &Commit<'_>) -> Result<Committed, StoreError> {
        let record = commit.record;
        let json = serde_json::to_string(record)
            .map_err(|e| StoreError::Corrupt(record.call_id.clone(), e.to_string()))?;
        let mut put = Put::builder()
            .table_name(&self.calls_table)
            .item("pk", s(&record.call_id))
            .item("record", s(json))
            .item("version", AttributeValue::N(record.version.to_string()))
            .item("provider", s(&record.provider))
            .item(
                "status",
                s(record.status.map(|st| st.as_str()).unwrap_or("unknown")),
            )
            .item("updated_at", s(Utc::now().to_rfc3339()));
        if let Some(at) = record.finalized_at {
            put = put.item("finalized_at", s(at.to_rfc3339()));
        }
        if !commit.outbox.is_empty() {
            let outbox = serde_json::to_string(commit.outbox)
                .map_err(|e| StoreError::Corrupt(record.call_id.clone(), e.to_string()))?;
            put = put.item("outbox", s(outbox));
        }
        let mut condition = match commit.expected_version {
            None => "attribute_not_exists(pk)".to_owned(),
            Some(v) => {
                put = put.expression_attribute_values(":v", AttributeValue::N(v.to_string()));
                "version = :v".to_owned()
            }
        };
        if commit.finalizing {
            // Finalization happens once, whatever raced it.
            condition.push_str(" AND attribute_not_exists(finalized_at)");
        }
        let put = put
            .condition_expression(condition)
            .build()
            .expect("table, item and condition are set");
        let result = self.capacity.wrote(
            self.client
                .transact_write_items()
                .transact_items(TransactWriteItem::builder().put(put).build())
                .transact_items(
                    TransactWriteItem::builder()
                        .update(self.event_update(commit.event_id, commit.event_status, None))
                        .build(),
                )
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .send()
                .await,
        );
        match result {
            Ok(_) => Ok(Committed::Yes),
            Err(SdkError::ServiceError(e))
                if matches!(
                    e.err(),
                    TransactWriteItemsError::TransactionCanceledException(c)
                        if c.cancellation_reasons().iter().any(|r| r.code() == Some("ConditionalCheckFailed"))
                ) =>
            {
                Ok(Committed::Conflict)
            }
            Err(err) => Err(unavailable("TransactWriteItems", &err)),
        }
    }

    async fn clear_outbox(&self, call_id: &str, version: u64) -> Result<(), StoreError> {
        let result = self.capacity.wrote(
            self.client
                .update_item()
                .table_name(&self.calls_table)
                .key("pk", s(call_id))
                .update_expression("REMOVE outbox")
                .condition_expression("version = :v")
                .expression_attribute_values(":v", AttributeValue::N(version.to_string()))
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .send()
                .await,
        );
        // A newer version: the outbox was cleared (or replaced) by a later commit.
        conditional_update(result).map(drop)
    }

    async fn mark_event(
        &self,
        event_id: &str,
        status: EventStatus,
        reason: Option<&str>,
    ) -> Result<(), StoreError> {
        let update = self.event_update(event_id, status, reason);
        self.capacity
            .wrote(
                self.client
                    .update_item()
                    .table_name(update.table_name())
                    .set_key(Some(update.key().clone()))
                    .update_expression(update.update_expression())
                    .set_expression_attribute_names(update.expression_attribute_names().cloned())
                    .set_expression_attribute_values(update.expression_attribute_values().cloned())
                    .return_consumed_capacity(ReturnConsumedCapacity::Total)
                    .send()
                    .await,
            )
            .map(|_| ())
            .map_err(|e| unavailable("UpdateItem", &e))
    }

    async fn list(&self) -> Result<Vec<CallRecord>, StoreError> {
        let mut calls = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .capacity
                .read(
                    self.client
                        .scan()
                        .table_name(&self.calls_table)
                        .set_exclusive_start_key(start)
                        .return_consumed_capacity(ReturnConsumedCapacity::Total)
                        .send()
                        .await,
                )
                .map_err(|e| unavailable("Scan", &e))?;
            for item in page.items() {
                calls.push(call_of(item)?.record);
            }
            start = page.last_evaluated_key().cloned();
            if start.is_none() {
                break;
            }
        }
        calls.sort_by_key(|c| std::cmp::Reverse(c.last_occurred_at));
        Ok(calls)
    }
}
