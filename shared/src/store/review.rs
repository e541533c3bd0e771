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
//!
//! Retention: an item a person closed (`replayed`, `discarded`) gets `expires_at` (N, epoch
//! seconds, the table's TTL attribute) RAW_RETENTION_DAYS later; reopening removes it. Open
//! items never expire.
//!
//! Events the lifecycle marks `REVIEW` (`unknown_type`, `malformed`, `no_call_id`,
//! `call_mismatch`, `provider_delivery_failed`) get an item `event#{event_id}` with `provider`,
//! `event_type`, `received_at` (S) besides the common attributes; `payload` is the canonical
//! envelope (the raw body stays in the events table). It is written with
//! [`ReviewStore::open_event`]: an `UpdateItem` that keeps the first `created_at`, counts in
//! `attempts` how many times the lifecycle sent the event here (redeliveries and replays), and
//! leaves a `discarded` item discarded.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use serde_json::Value;

use super::StoreError;
use super::attr::{conditional_update, pk_of, s, unavailable};
use super::ledger::truncate_utf8;

/// How much of a response body a review item keeps.
pub const RESPONSE_BODY_LIMIT: usize = 4096;
/// How much of `detail` a review item keeps.
pub const DETAIL_LIMIT: usize = 4096;

pub const REASON_DISPATCH_FAILED: &str = "dispatch_failed";
pub const REASON_MALFORMED: &str = "malformed";

/// `event#{event_id}`: the review item of a stored event.
pub fn event_pk(event_id: &str) -> String {
    format!("event#{event_id}")
}

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
    /// Event items only: the event's provider, type and receipt time.
    pub provider: Option<String>,
    pub event_type: Option<String>,
    pub received_at: Option<DateTime<Utc>>,
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
            provider: None,
            event_type: None,
            received_at: None,
        }
    }

    /// `event#{event_id}`: an event the lifecycle did not apply, for `reason`. `payload` is the
    /// canonical envelope; `attempts` is 1 (the store counts further ones).
    pub fn event(
        event: &crate::model::CanonicalEvent,
        reason: &str,
        now: DateTime<Utc>,
    ) -> ReviewItem {
        let detail = event
            .review
            .as_ref()
            .filter(|note| note.reason == reason)
            .map(|note| note.detail.clone())
            .unwrap_or_else(|| {
                format!("{reason}: the lifecycle did not apply {}", event.event_type)
            });
        let payload = serde_json::to_value(event.envelope()).unwrap_or(Value::Null);
        let mut item = ReviewItem::open(
            event_pk(&event.event_id),
            reason,
            &event.event_id,
            payload,
            1,
            &detail,
            None,
            None,
            now,
        );
        item.provider = Some(event.provider.clone());
        item.event_type = Some(event.event_type.clone());
        item.received_at = Some(event.received_at);
        item
    }

    /// The event id, when this is an event's item.
    pub fn event_id(&self) -> Option<&str> {
        self.pk.strip_prefix("event#")
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

// ------------------------------------------------------------------------------------------------
// DynamoDB

#[derive(Clone)]
pub struct DynamoReviewStore {
    client: Client,
    table: String,
    retention: chrono::Duration,
}

/// How long a closed item is kept, unless RAW_RETENTION_DAYS says otherwise.
pub const DEFAULT_RETENTION_DAYS: u64 = 30;

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
    if let Some(provider) = &item.provider {
        out.insert("provider".to_owned(), s(provider));
    }
    if let Some(event_type) = &item.event_type {
        out.insert("event_type".to_owned(), s(event_type));
    }
    if let Some(at) = item.received_at {
        out.insert("received_at".to_owned(), s(at.to_rfc3339()));
    }
    out
}

pub(crate) fn review_of(item: &HashMap<String, AttributeValue>) -> Result<ReviewItem, StoreError> {
    let pk = pk_of(item);
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
        provider: text("provider").cloned(),
        event_type: text("event_type").cloned(),
        received_at: text("received_at")
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc)),
    })
}

impl DynamoReviewStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoReviewStore {
            client,
            table: table.into(),
            retention: chrono::Duration::days(DEFAULT_RETENTION_DAYS as i64),
        }
    }

    /// Closed items (replayed, discarded) expire `days` after they were closed (the table's
    /// TTL attribute `expires_at`); open items never expire: they wait for a person.
    pub fn with_retention_days(mut self, days: u64) -> Self {
        self.retention = chrono::Duration::days(days.min(36_500) as i64);
        self
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

    /// Every item (a paginated scan: an operator's tool), filtered on `status` and `reason`,
    /// newest first.
    pub async fn list(
        &self,
        status: Option<ReviewStatus>,
        reason: Option<&str>,
    ) -> Result<Vec<ReviewItem>, StoreError> {
        let mut filters = Vec::new();
        let mut names = HashMap::new();
        let mut values = HashMap::new();
        if let Some(status) = status {
            filters.push("#s = :s");
            names.insert("#s".to_owned(), "status".to_owned());
            values.insert(":s".to_owned(), s(status.as_str()));
        }
        if let Some(reason) = reason {
            filters.push("#r = :r");
            names.insert("#r".to_owned(), "reason".to_owned());
            values.insert(":r".to_owned(), s(reason));
        }
        let filter = (!filters.is_empty()).then(|| filters.join(" AND "));
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .client
                .scan()
                .table_name(&self.table)
                .set_filter_expression(filter.clone())
                .set_expression_attribute_names((!names.is_empty()).then(|| names.clone()))
                .set_expression_attribute_values((!values.is_empty()).then(|| values.clone()))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| unavailable("Scan", &e))?;
            for item in page.items() {
                items.push(review_of(item)?);
            }
            start = page.last_evaluated_key().cloned();
            if start.is_none() {
                break;
            }
        }
        items.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(a.pk.cmp(&b.pk)));
        Ok(items)
    }

    /// How many items are open (a paginated `Scan` that counts; the table holds open items and
    /// closed ones until their TTL, so it stays small). The `review_open` gauge.
    pub async fn count_open(&self) -> Result<u64, StoreError> {
        let mut count = 0u64;
        let mut start = None;
        loop {
            let page = self
                .client
                .scan()
                .table_name(&self.table)
                .select(aws_sdk_dynamodb::types::Select::Count)
                .filter_expression("#s = :open")
                .expression_attribute_names("#s", "status")
                .expression_attribute_values(":open", s(ReviewStatus::Open.as_str()))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| unavailable("Scan", &e))?;
            count += page.count().max(0) as u64;
            start = page.last_evaluated_key().cloned();
            if start.is_none() {
                return Ok(count);
            }
        }
    }

    /// Sets an existing item's status (replayed, discarded); `false` when there is no such item.
    pub async fn set_status(&self, pk: &str, status: ReviewStatus) -> Result<bool, StoreError> {
        let update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(pk))
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_names("#s", "status")
            .expression_attribute_values(":s", s(status.as_str()))
            .expression_attribute_values(":now", s(Utc::now().to_rfc3339()));
        let result = match status {
            ReviewStatus::Open => {
                update.update_expression("SET #s = :s, updated_at = :now REMOVE expires_at")
            }
            ReviewStatus::Replayed | ReviewStatus::Discarded => update
                .update_expression("SET #s = :s, updated_at = :now, expires_at = :expires")
                .expression_attribute_values(
                    ":expires",
                    super::attr::n((Utc::now() + self.retention).timestamp()),
                ),
        }
        .send()
        .await;
        conditional_update(result)
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

    async fn open_event(&self, item: &ReviewItem) -> Result<(), StoreError> {
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(&item.pk))
            .update_expression(
                "SET #reason = :reason, #subject = :subject, #payload = :payload, \
                 #detail = :detail, #s = :open, #created = if_not_exists(#created, :now), \
                 #updated = :now, #provider = :provider, #type = :type, #received = :received \
                 ADD #attempts :one REMOVE expires_at",
            )
            .condition_expression("attribute_not_exists(pk) OR #s <> :discarded");
        for (name, attribute) in [
            ("#reason", "reason"),
            ("#subject", "subject_id"),
            ("#payload", "payload"),
            ("#detail", "detail"),
            ("#s", "status"),
            ("#created", "created_at"),
            ("#updated", "updated_at"),
            ("#provider", "provider"),
            ("#type", "event_type"),
            ("#received", "received_at"),
            ("#attempts", "attempts"),
        ] {
            update = update.expression_attribute_names(name, attribute);
        }
        let received = item.received_at.unwrap_or(item.created_at);
        let result = update
            .expression_attribute_values(":reason", s(&item.reason))
            .expression_attribute_values(":subject", s(&item.subject_id))
            .expression_attribute_values(":payload", s(item.payload.to_string()))
            .expression_attribute_values(":detail", s(&item.detail))
            .expression_attribute_values(":open", s(ReviewStatus::Open.as_str()))
            .expression_attribute_values(":discarded", s(ReviewStatus::Discarded.as_str()))
            .expression_attribute_values(":now", s(item.created_at.to_rfc3339()))
            .expression_attribute_values(":provider", s(item.provider.clone().unwrap_or_default()))
            .expression_attribute_values(":type", s(item.event_type.clone().unwrap_or_default()))
            .expression_attribute_values(":received", s(received.to_rfc3339()))
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .send()
            .await;
        // Discarded by a person: it stays discarded.
        conditional_update(result).map(drop)
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

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + secs, 0).unwrap()
    }

    fn unknown_event() -> crate::model::CanonicalEvent {
        let mut e = crate::model::CanonicalEvent::new("telnyx", "u1", "call.teleported", at(0));
        crate::providers::mark_unknown(&mut e);
        e
    }

    #[test]
    fn event_review_items_round_trip() {
        let item = ReviewItem::event(&unknown_event(), "unknown_type", at(5));
        assert_eq!(item.pk, "event#telnyx#u1");
        assert_eq!(item.event_id(), Some("telnyx#u1"));
        assert_eq!(item.subject_id, "telnyx#u1");
        assert_eq!(item.provider.as_deref(), Some("telnyx"));
        assert_eq!(item.event_type.as_deref(), Some("call.teleported"));
        assert_eq!(item.received_at, Some(at(0)));
        assert_eq!(item.attempts, 1);
        assert_eq!(item.payload["type"], "call.teleported");
        assert!(
            item.payload.get("data").is_none(),
            "the envelope, not the body"
        );
        assert_eq!(review_of(&item_of(&item)).unwrap(), item);
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
