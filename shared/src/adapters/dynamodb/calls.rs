//! The calls table on DynamoDB: one record per call, written with optimistic concurrency (a
//! conditional put on its version), packed, its large facts kept by reference (item layout:
//! docs/architecture.md, "Tables").

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnConsumedCapacity};
use serde_json::Value;

use super::{Capacity, conditional_update, item_size, n, pk_of, s, unavailable};
use crate::adapters::packing;
use crate::domain::call::CallRecord;
use crate::limits::MAX_ITEM_BYTES;
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
}

/// The record as stored: large facts by reference (see `domain::call::facts`), JSON without
/// nulls, packed.
pub fn pack_record(record: &CallRecord) -> Result<Vec<u8>, StoreError> {
    let corrupt = |e: serde_json::Error| StoreError::Corrupt(record.call_id.clone(), e.to_string());
    let mut value = serde_json::to_value(record.by_reference()).map_err(corrupt)?;
    if let Value::Object(map) = &mut value {
        map.retain(|_, v| !v.is_null());
    }
    Ok(packing::pack(&serde_json::to_vec(&value).map_err(corrupt)?))
}

pub(crate) fn call_of(item: &HashMap<String, AttributeValue>) -> Result<StoredCall, StoreError> {
    let pk = pk_of(item);
    let corrupt = |what: &str| StoreError::Corrupt(pk.clone(), what.to_owned());
    // Records written before they were packed are plain JSON.
    let json = match item.get("record") {
        Some(AttributeValue::B(packed)) => {
            packing::unpack(packed.as_ref()).map_err(|e| corrupt(&e.to_string()))?
        }
        Some(AttributeValue::S(json)) => json.as_bytes().to_vec(),
        _ => return Err(corrupt("record")),
    };
    let record: CallRecord = serde_json::from_slice(&json).map_err(|_| corrupt("record"))?;
    let outbox = match item.get("outbox").and_then(|v| v.as_s().ok()) {
        Some(json) => serde_json::from_str(json).map_err(|_| corrupt("outbox"))?,
        None => Vec::new(),
    };
    Ok(StoredCall { record, outbox })
}

impl DynamoCallStore {
    async fn read(
        &self,
        call_id: &str,
        consistent: bool,
    ) -> Result<Option<StoredCall>, StoreError> {
        let out = self
            .capacity
            .read(
                self.client
                    .get_item()
                    .table_name(&self.calls_table)
                    .key("pk", s(call_id))
                    .consistent_read(consistent)
                    .return_consumed_capacity(ReturnConsumedCapacity::Total)
                    .send()
                    .await,
            )
            .map_err(|e| unavailable("GetItem", &e))?;
        out.item().map(call_of).transpose()
    }
}

impl CallStore for DynamoCallStore {
    async fn get(&self, call_id: &str) -> Result<Option<StoredCall>, StoreError> {
        self.read(call_id, true).await
    }

    async fn get_eventual(&self, call_id: &str) -> Result<Option<StoredCall>, StoreError> {
        self.read(call_id, false).await
    }

    async fn commit(&self, commit: &Commit<'_>) -> Result<Committed, StoreError> {
        let record = commit.record;
        let mut item = HashMap::from([
            ("pk".to_owned(), s(&record.call_id)),
            (
                "record".to_owned(),
                AttributeValue::B(Blob::new(pack_record(record)?)),
            ),
            ("version".to_owned(), n(record.version)),
        ]);
        if let Some(at) = record.finalized_at {
            item.insert("finalized_at".to_owned(), s(at.to_rfc3339()));
        }
        if !commit.outbox.is_empty() {
            let outbox = serde_json::to_string(commit.outbox)
                .map_err(|e| StoreError::Corrupt(record.call_id.clone(), e.to_string()))?;
            item.insert("outbox".to_owned(), s(outbox));
        }
        if item_size(&item) > MAX_ITEM_BYTES {
            return Err(StoreError::TooLarge(record.call_id.clone()));
        }
        let mut put = self
            .client
            .put_item()
            .table_name(&self.calls_table)
            .set_item(Some(item.clone()));
        let mut condition = match commit.expected_version {
            None => "attribute_not_exists(pk)".to_owned(),
            Some(v) => {
                put = put.expression_attribute_values(":v", n(v));
                "version = :v".to_owned()
            }
        };
        if commit.finalizing {
            // Finalization happens once, whatever raced it.
            condition.push_str(" AND attribute_not_exists(finalized_at)");
        }
        let result = self.capacity.wrote(
            put.condition_expression(condition)
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .send()
                .await,
        );
        match result {
            Ok(_) => Ok(Committed::Yes),
            Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => {
                self.capacity.failed_write(&self.calls_table, &item);
                Ok(Committed::Conflict)
            }
            Err(err) => Err(unavailable("PutItem", &err)),
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
        let mut update = self
            .client
            .update_item()
            .table_name(&self.events_table)
            .key("pk", s(event_id))
            // An event gone (TTL) or never stored is not created by its mark.
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_names("#s", "status")
            .expression_attribute_values(":status", s(status.as_str()));
        let expression = match reason {
            Some(reason) => {
                update = update.expression_attribute_values(":reason", s(reason));
                "SET #s = :status, review_reason = :reason REMOVE pending_since"
            }
            None => "SET #s = :status REMOVE pending_since",
        };
        let result = self.capacity.wrote(
            update
                .update_expression(expression)
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .send()
                .await,
        );
        conditional_update(result).map(drop)
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
