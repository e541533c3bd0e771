//! The review table (DESIGN §6): what needs a person. Every producer (dispatch today; the
//! lifecycle, the DLQ drain and the review function later) writes the same general item.
//!
//! Item: `pk` (S, `{source}#{subject id}`, e.g. `dispatch#{dispatch_id}`), `reason` (S:
//! `dispatch_failed`, `malformed`, `unknown_type`, `dlq:<queue>`, …), `subject_id` (S, the
//! dispatch or event id), `payload` (S, JSON: the message or event that could not be handled),
//! `attempts` (N), `detail` (S, what went wrong, for a person), `status_code` (N, the last HTTP
//! status, when there was one), `response_body` (S, at most [`RESPONSE_BODY_LIMIT`] bytes of
//! the last response), `status` (S: `open`, `replayed`, `discarded`), `created_at` (S, RFC
//! 3339).
//!
//! A second failure of the same subject replaces the item (and reopens it): the newest failure
//! is the one a person needs to see.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use serde_json::Value;

use super::StoreError;
use super::events::unavailable;
use super::ledger::truncate_utf8;

/// How much of a response body a review item keeps.
pub const RESPONSE_BODY_LIMIT: usize = 4096;
/// How much of `detail` a review item keeps.
pub const DETAIL_LIMIT: usize = 4096;

pub const REASON_DISPATCH_FAILED: &str = "dispatch_failed";
pub const REASON_MALFORMED: &str = "malformed";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReviewStatus {
    Open,
    Replayed,
    Discarded,
}

impl ReviewStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ReviewStatus::Open => "open",
            ReviewStatus::Replayed => "replayed",
            ReviewStatus::Discarded => "discarded",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "open" => Some(ReviewStatus::Open),
            "replayed" => Some(ReviewStatus::Replayed),
            "discarded" => Some(ReviewStatus::Discarded),
            _ => None,
        }
    }
}

/// One thing that needs a person.
#[derive(Debug, Clone, PartialEq)]
pub struct ReviewItem {
    pub pk: String,
    pub reason: String,
    pub subject_id: String,
    pub payload: Value,
    pub attempts: u32,
    pub detail: String,
    pub status_code: Option<u16>,
    pub response_body: Option<String>,
    pub status: ReviewStatus,
    pub created_at: DateTime<Utc>,
}

impl ReviewItem {
    /// An open item; `detail` and `response_body` are truncated to their limits.
    #[allow(clippy::too_many_arguments)]
    pub fn open(
        pk: String,
        reason: &str,
        subject_id: &str,
        payload: Value,
        attempts: u32,
        detail: &str,
        status_code: Option<u16>,
        response_body: Option<&str>,
        now: DateTime<Utc>,
    ) -> ReviewItem {
        ReviewItem {
            pk,
            reason: reason.to_owned(),
            subject_id: subject_id.to_owned(),
            payload,
            attempts,
            detail: truncate_utf8(detail, DETAIL_LIMIT).to_owned(),
            status_code,
            response_body: response_body.map(|b| truncate_utf8(b, RESPONSE_BODY_LIMIT).to_owned()),
            status: ReviewStatus::Open,
            created_at: now,
        }
    }

    /// `dispatch#{dispatch_id}`, reason `dispatch_failed`.
    pub fn dispatch_failed(
        dispatch_id: &str,
        message: Value,
        attempts: u32,
        detail: &str,
        status_code: Option<u16>,
        response_body: Option<&str>,
        now: DateTime<Utc>,
    ) -> ReviewItem {
        ReviewItem::open(
            dispatch_pk(dispatch_id),
            REASON_DISPATCH_FAILED,
            dispatch_id,
            message,
            attempts,
            detail,
            status_code,
            response_body,
            now,
        )
    }
}

pub fn dispatch_pk(dispatch_id: &str) -> String {
    format!("dispatch#{dispatch_id}")
}

pub trait ReviewStore: Send + Sync {
    /// Writes the item (replacing one with the same pk).
    fn put(&self, item: &ReviewItem) -> impl Future<Output = Result<(), StoreError>> + Send;
}

// ------------------------------------------------------------------------------------------------
// DynamoDB

#[derive(Clone)]
pub struct DynamoReviewStore {
    client: Client,
    table: String,
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

pub(crate) fn item_of(item: &ReviewItem) -> HashMap<String, AttributeValue> {
    let mut out = HashMap::from([
        ("pk".to_owned(), s(&item.pk)),
        ("reason".to_owned(), s(&item.reason)),
        ("subject_id".to_owned(), s(&item.subject_id)),
        ("payload".to_owned(), s(item.payload.to_string())),
        (
            "attempts".to_owned(),
            AttributeValue::N(item.attempts.to_string()),
        ),
        ("detail".to_owned(), s(&item.detail)),
        ("status".to_owned(), s(item.status.as_str())),
        ("created_at".to_owned(), s(item.created_at.to_rfc3339())),
    ]);
    if let Some(code) = item.status_code {
        out.insert(
            "status_code".to_owned(),
            AttributeValue::N(code.to_string()),
        );
    }
    if let Some(body) = &item.response_body {
        out.insert("response_body".to_owned(), s(body));
    }
    out
}

pub(crate) fn review_of(item: &HashMap<String, AttributeValue>) -> Result<ReviewItem, StoreError> {
    let pk = item
        .get("pk")
        .and_then(|v| v.as_s().ok())
        .cloned()
        .unwrap_or_default();
    let corrupt = |what: &str| StoreError::Corrupt(pk.clone(), what.to_owned());
    let text = |name: &str| item.get(name).and_then(|v| v.as_s().ok());
    let number = |name: &str| {
        item.get(name)
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse::<u64>().ok())
    };
    Ok(ReviewItem {
        pk: pk.clone(),
        reason: text("reason").ok_or_else(|| corrupt("reason"))?.clone(),
        subject_id: text("subject_id").cloned().unwrap_or_default(),
        payload: text("payload")
            .map(|p| serde_json::from_str(p).unwrap_or_else(|_| Value::String(p.clone())))
            .unwrap_or(Value::Null),
        attempts: number("attempts").unwrap_or(0) as u32,
        detail: text("detail").cloned().unwrap_or_default(),
        status_code: number("status_code").and_then(|c| u16::try_from(c).ok()),
        response_body: text("response_body").cloned(),
        status: text("status")
            .and_then(|s| ReviewStatus::parse(s))
            .ok_or_else(|| corrupt("status"))?,
        created_at: text("created_at")
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc))
            .ok_or_else(|| corrupt("created_at"))?,
    })
}

impl DynamoReviewStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoReviewStore {
            client,
            table: table.into(),
        }
    }

    /// One item, read consistently.
    pub async fn get(&self, pk: &str) -> Result<Option<ReviewItem>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(pk))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| unavailable("GetItem", &e))?;
        out.item().map(review_of).transpose()
    }
}

impl ReviewStore for DynamoReviewStore {
    async fn put(&self, item: &ReviewItem) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item_of(item)))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| unavailable("PutItem", &e))
    }
}

// ------------------------------------------------------------------------------------------------
// Memory

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
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn items_round_trip_and_truncate() {
        let long = "x".repeat(RESPONSE_BODY_LIMIT + 10);
        let item = ReviewItem::dispatch_failed(
            "c#completed",
            json!({"dispatch_id": "c#completed"}),
            5,
            "answered 400",
            Some(400),
            Some(&long),
            DateTime::parse_from_rfc3339("2024-01-01T00:00:00Z")
                .unwrap()
                .with_timezone(&Utc),
        );
        assert_eq!(item.pk, "dispatch#c#completed");
        assert_eq!(item.reason, "dispatch_failed");
        assert_eq!(
            item.response_body.as_ref().unwrap().len(),
            RESPONSE_BODY_LIMIT
        );
        let stored = item_of(&item);
        assert_eq!(stored["status"].as_s().unwrap(), "open");
        assert_eq!(review_of(&stored).unwrap(), item);
    }
}
