//! The calls table on DynamoDB: one record per call, written with optimistic concurrency (a
//! conditional put on its version), packed, its large facts kept by reference (item layout:
//! docs/architecture.md, "Tables").

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{
    Capacity, conditional_update, get_by_pk, item_size, n, pk_of, s, scan_each, unavailable,
};
use crate::adapters::packing;
use crate::domain::call::CallRecord;
use crate::limits::MAX_ITEM_BYTES;
use crate::ports::{
    Asked, CallStore, Commit, Committed, EventStatus, OpenCalls, OpenKey, OpenPage, StoreError,
    StoredCall,
};

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
    let number = |name: &str| item.get(name).and_then(|v| v.as_n().ok());
    let asked = match (number("ask_after"), number("asked")) {
        (Some(after), Some(times)) => Some(Asked {
            again_after: after
                .parse()
                .ok()
                .and_then(DateTime::from_timestamp_millis)
                .ok_or_else(|| corrupt("ask_after"))?,
            times: times.parse().map_err(|_| corrupt("asked"))?,
        }),
        _ => None,
    };
    Ok(StoredCall {
        record,
        outbox,
        asked,
    })
}

/// The sparse index of calls not yet final, keyed by when each was opened (epoch ms): the key
/// is set when a call is first written and never changes until the call is final, so a call's
/// later writes do not write the index, and the keys spread a burst across partitions.
pub const OPEN_INDEX: &str = "open";

/// When the call was opened, for the index: its first webhook's receipt.
fn opened_at(record: &CallRecord) -> i64 {
    record
        .first_received_at
        .or(record.last_occurred_at)
        .map_or(0, |t| t.timestamp_millis())
}

impl DynamoCallStore {
    async fn read(
        &self,
        call_id: &str,
        consistent: bool,
    ) -> Result<Option<StoredCall>, StoreError> {
        get_by_pk(
            &self.client,
            &self.capacity,
            &self.calls_table,
            call_id,
            consistent,
        )
        .await?
        .as_ref()
        .map(call_of)
        .transpose()
    }
}

fn open_key(item: &HashMap<String, AttributeValue>) -> Option<OpenKey> {
    Some(OpenKey {
        call_id: item.get("pk")?.as_s().ok()?.clone(),
        opened_at: item.get("opened_at")?.as_n().ok()?.parse().ok()?,
    })
}

impl OpenCalls for DynamoCallStore {
    async fn open_page(
        &self,
        opened_before: DateTime<Utc>,
        after: Option<&OpenKey>,
    ) -> Result<OpenPage, StoreError> {
        let start = after.map(|key| {
            HashMap::from([
                ("pk".to_owned(), s(&key.call_id)),
                ("opened_at".to_owned(), n(key.opened_at)),
            ])
        });
        // A scan of the sparse index (only open calls are in it), filtered on its own key.
        let page = self
            .capacity
            .read(
                self.client
                    .scan()
                    .table_name(&self.calls_table)
                    .index_name(OPEN_INDEX)
                    .filter_expression("opened_at <= :cutoff")
                    .expression_attribute_values(":cutoff", n(opened_before.timestamp_millis()))
                    .set_exclusive_start_key(start)
                    .set_return_consumed_capacity(self.capacity.mode())
                    .send()
                    .await,
            )
            .map_err(|e| unavailable("Scan", &e))?;
        let unreadable = || StoreError::Corrupt(String::new(), "open index entry".into());
        let calls = page
            .items()
            .iter()
            .map(|item| open_key(item).ok_or_else(unreadable))
            .collect::<Result<_, _>>()?;
        let next = page
            .last_evaluated_key()
            .map(|last| open_key(last).ok_or_else(unreadable))
            .transpose()?;
        Ok(OpenPage { calls, next })
    }

    async fn note_asked(
        &self,
        call_id: &str,
        version: u64,
        asked: Asked,
    ) -> Result<(), StoreError> {
        let result = self.capacity.wrote(
            self.client
                .update_item()
                .table_name(&self.calls_table)
                .key("pk", s(call_id))
                .update_expression("SET ask_after = :after, asked = :times")
                .condition_expression("version = :v AND attribute_not_exists(finalized_at)")
                .expression_attribute_values(":v", n(version))
                .expression_attribute_values(":after", n(asked.again_after.timestamp_millis()))
                .expression_attribute_values(":times", n(asked.times))
                .set_return_consumed_capacity(self.capacity.mode())
                .send()
                .await,
        );
        // Written since: a new event (no longer quiet) or the end; nothing to remember.
        conditional_update(result).map(drop)
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
        match record.finalized_at {
            Some(at) => item.insert("finalized_at".to_owned(), s(at.to_rfc3339())),
            None => item.insert("opened_at".to_owned(), n(opened_at(record))),
        };
        if !commit.outbox.is_empty() {
            let outbox = serde_json::to_string(commit.outbox)
                .map_err(|e| StoreError::Corrupt(record.call_id.clone(), e.to_string()))?;
            item.insert("outbox".to_owned(), s(outbox));
        }
        let item_bytes = item_size(&item);
        if item_bytes > MAX_ITEM_BYTES {
            return Err(StoreError::TooLarge(record.call_id.clone()));
        }
        let mut put = self
            .client
            .put_item()
            .table_name(&self.calls_table)
            .set_item(Some(item));
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
                .set_return_consumed_capacity(self.capacity.mode())
                .send()
                .await,
        );
        match result {
            Ok(_) => Ok(Committed::Yes),
            Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => {
                self.capacity.failed_write(&self.calls_table, item_bytes);
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
                .set_return_consumed_capacity(self.capacity.mode())
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
                .set_return_consumed_capacity(self.capacity.mode())
                .send()
                .await,
        );
        conditional_update(result).map(drop)
    }

    async fn list(&self) -> Result<Vec<CallRecord>, StoreError> {
        let mut calls = Vec::new();
        let scan = || self.client.scan().table_name(&self.calls_table);
        scan_each(&self.capacity, scan, |item| {
            calls.push(call_of(item)?.record);
            Ok(())
        })
        .await?;
        calls.sort_by_key(|c| std::cmp::Reverse(c.last_occurred_at));
        Ok(calls)
    }
}
