//! The calls table: one reconciled record per call, written with optimistic concurrency in the
//! same transaction that marks the event processed (DESIGN §7).
//!
//! Item: `pk` (call id), `record` (S, the CallRecord JSON), `version` (N), `status`, `provider`,
//! `updated_at`, `finalized_at` (only once final), `outbox` (S, JSON list of dispatch effects
//! not yet handed to the dispatch queue; absent when empty).

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};
use chrono::Utc;

use super::attr::{conditional_update, pk_of, s, unavailable};
use super::{EventStatus, StoreError};
use crate::lifecycle::{CallRecord, Effect};

/// A call as stored: its record and the dispatches it still owes the queue.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StoredCall {
    pub record: CallRecord,
    pub outbox: Vec<Effect>,
}

/// One applied event: the new record (its `version` already the next one), the dispatches it
/// adds, and the event to mark.
#[derive(Debug, Clone)]
pub struct Commit<'a> {
    pub record: &'a CallRecord,
    /// The version read; `None` when the call did not exist.
    pub expected_version: Option<u64>,
    pub outbox: &'a [Effect],
    pub event_id: &'a str,
    pub event_status: EventStatus,
    /// This commit finalizes the call: it must not be final already.
    pub finalizing: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Committed {
    Yes,
    /// Someone else changed the call first: read it again and re-apply.
    Conflict,
}

pub trait CallStore: Send + Sync {
    fn get(
        &self,
        call_id: &str,
    ) -> impl Future<Output = Result<Option<StoredCall>, StoreError>> + Send;

    /// Writes the call and marks the event, atomically.
    fn commit(
        &self,
        commit: &Commit<'_>,
    ) -> impl Future<Output = Result<Committed, StoreError>> + Send;

    /// Forgets the outbox once its messages are queued, unless the call moved on meanwhile
    /// (then the next writer re-sends; the dispatch ledger makes that harmless).
    fn clear_outbox(
        &self,
        call_id: &str,
        version: u64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Marks an event that changes no call (review), without touching a call.
    fn mark_event(
        &self,
        event_id: &str,
        status: EventStatus,
        reason: Option<&str>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Every call, newest first by `updated_at` (operator listing; a scan).
    fn list(&self) -> impl Future<Output = Result<Vec<CallRecord>, StoreError>> + Send;
}

#[derive(Clone)]
pub struct DynamoCallStore {
    client: Client,
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
            calls_table: calls_table.into(),
            events_table: events_table.into(),
        }
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
            .client
            .get_item()
            .table_name(&self.calls_table)
            .key("pk", s(call_id))
            .consistent_read(true)
            .send()
            .await
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
        let result = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().put(put).build())
            .transact_items(
                TransactWriteItem::builder()
                    .update(self.event_update(commit.event_id, commit.event_status, None))
                    .build(),
            )
            .send()
            .await;
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
        let result = self
            .client
            .update_item()
            .table_name(&self.calls_table)
            .key("pk", s(call_id))
            .update_expression("REMOVE outbox")
            .condition_expression("version = :v")
            .expression_attribute_values(":v", AttributeValue::N(version.to_string()))
            .send()
            .await;
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
        self.client
            .update_item()
            .table_name(update.table_name())
            .set_key(Some(update.key().clone()))
            .update_expression(update.update_expression())
            .set_expression_attribute_names(update.expression_attribute_names().cloned())
            .set_expression_attribute_values(update.expression_attribute_values().cloned())
            .send()
            .await
            .map(|_| ())
            .map_err(|e| unavailable("UpdateItem", &e))
    }

    async fn list(&self) -> Result<Vec<CallRecord>, StoreError> {
        let mut calls = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .client
                .scan()
                .table_name(&self.calls_table)
                .set_exclusive_start_key(start)
                .send()
                .await
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

/// Calls in memory with the DynamoDB store's conditions, for unit and property tests.
#[derive(Default)]
pub struct MemoryCallStore {
    pub calls: Mutex<HashMap<String, StoredCall>>,
    pub events: Mutex<HashMap<String, (EventStatus, Option<String>)>>,
}

impl CallStore for MemoryCallStore {
    async fn get(&self, call_id: &str) -> Result<Option<StoredCall>, StoreError> {
        Ok(self.calls.lock().unwrap().get(call_id).cloned())
    }

    async fn commit(&self, commit: &Commit<'_>) -> Result<Committed, StoreError> {
        let mut calls = self.calls.lock().unwrap();
        let current = calls.get(&commit.record.call_id);
        let version_ok = match (current, commit.expected_version) {
            (None, None) => true,
            (Some(c), Some(v)) => c.record.version == v,
            _ => false,
        };
        let finalize_ok =
            !commit.finalizing || current.is_none_or(|c| c.record.finalized_at.is_none());
        if !(version_ok && finalize_ok) {
            return Ok(Committed::Conflict);
        }
        calls.insert(
            commit.record.call_id.clone(),
            StoredCall {
                record: commit.record.clone(),
                outbox: commit.outbox.to_vec(),
            },
        );
        self.events
            .lock()
            .unwrap()
            .insert(commit.event_id.to_owned(), (commit.event_status, None));
        Ok(Committed::Yes)
    }

    async fn clear_outbox(&self, call_id: &str, version: u64) -> Result<(), StoreError> {
        if let Some(c) = self.calls.lock().unwrap().get_mut(call_id)
            && c.record.version == version
        {
            c.outbox.clear();
        }
        Ok(())
    }

    async fn mark_event(
        &self,
        event_id: &str,
        status: EventStatus,
        reason: Option<&str>,
    ) -> Result<(), StoreError> {
        self.events
            .lock()
            .unwrap()
            .insert(event_id.to_owned(), (status, reason.map(str::to_owned)));
        Ok(())
    }

    async fn list(&self) -> Result<Vec<CallRecord>, StoreError> {
        Ok(self
            .calls
            .lock()
            .unwrap()
            .values()
            .map(|c| c.record.clone())
            .collect())
    }
}
