//! The review table on DynamoDB (item layout: docs/architecture.md, "Tables"). A second failure
//! of the same subject replaces its item; an event's item is written idempotently
//! ([`ReviewStore::open_event`]); closed items expire RAW_RETENTION_DAYS after they were closed,
//! open items never.

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{Capacity, conditional_update, get_by_pk, n, pk_of, s, scan_each, unavailable};
use crate::domain::review::{ReviewItem, ReviewReason, ReviewStatus};
use crate::limits::MAX_RETENTION_DAYS;
use crate::ports::{ReviewAdmin, ReviewStore, StoreError};

#[derive(Clone)]
pub struct DynamoReviewStore {
    client: Client,
    capacity: Capacity,
    table: String,
    retention: chrono::Duration,
}

/// How long a closed item is kept, unless RAW_RETENTION_DAYS says otherwise.
pub const DEFAULT_RETENTION_DAYS: u64 = 30;

pub(crate) fn item_of(item: &ReviewItem) -> HashMap<String, AttributeValue> {
    let mut out = HashMap::from([
        ("pk".to_owned(), s(&item.pk)),
        ("reason".to_owned(), s(item.reason.as_str())),
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
        reason: ReviewReason::parse(text("reason").ok_or_else(|| corrupt("reason"))?),
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
            capacity: Capacity::default(),
            table: table.into(),
            retention: chrono::Duration::days(DEFAULT_RETENTION_DAYS as i64),
        }
    }

    /// Counts this adapter's consumed capacity into `capacity` (shared with other adapters).
    pub fn with_capacity(mut self, capacity: Capacity) -> Self {
        self.capacity = capacity;
        self
    }

    /// Closed items (replayed, discarded) expire `days` after they were closed (the table's
    /// TTL attribute `expires_at`); open items never expire: they wait for a person.
    pub fn with_retention_days(mut self, days: u64) -> Self {
        self.retention = chrono::Duration::days(days.min(MAX_RETENTION_DAYS) as i64);
        self
    }
}

impl ReviewAdmin for DynamoReviewStore {
    /// One item, read consistently.
    async fn get(&self, pk: &str) -> Result<Option<ReviewItem>, StoreError> {
        get_by_pk(&self.client, &self.capacity, &self.table, pk, true)
            .await?
            .as_ref()
            .map(review_of)
            .transpose()
    }

    /// Every item (a paginated scan: an operator's tool), filtered on `status` and `reason`,
    /// newest first.
    async fn list(
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
        let (names, values) = (
            (!names.is_empty()).then_some(names),
            (!values.is_empty()).then_some(values),
        );
        let scan = || {
            self.client
                .scan()
                .table_name(&self.table)
                .set_filter_expression(filter.clone())
                .set_expression_attribute_names(names.clone())
                .set_expression_attribute_values(values.clone())
        };
        scan_each(&self.capacity, scan, |item| {
            items.push(review_of(item)?);
            Ok(())
        })
        .await?;
        items.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(a.pk.cmp(&b.pk)));
        Ok(items)
    }

    /// How many items are open (a paginated `Scan` that counts; the table holds open items and
    /// closed ones until their TTL, so it stays small). The `review_open` gauge.
    async fn count_open(&self) -> Result<u64, StoreError> {
        let mut count = 0u64;
        let mut start = None;
        loop {
            let page = self
                .capacity
                .read(
                    self.client
                        .scan()
                        .table_name(&self.table)
                        .select(aws_sdk_dynamodb::types::Select::Count)
                        .filter_expression("#s = :open")
                        .expression_attribute_names("#s", "status")
                        .expression_attribute_values(":open", s(ReviewStatus::Open.as_str()))
                        .set_exclusive_start_key(start)
                        .set_return_consumed_capacity(self.capacity.mode())
                        .send()
                        .await,
                )
                .map_err(|e| unavailable("Scan", &e))?;
            count += page.count().max(0) as u64;
            start = page.last_evaluated_key().cloned();
            if start.is_none() {
                return Ok(count);
            }
        }
    }

    /// Sets an existing item's status (replayed, discarded); `false` when there is no such item.
    async fn set_status(&self, pk: &str, status: ReviewStatus) -> Result<bool, StoreError> {
        let update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(pk))
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_names("#s", "status")
            .expression_attribute_values(":s", s(status.as_str()))
            .expression_attribute_values(":now", s(Utc::now().to_rfc3339()));
        let request = match status {
            ReviewStatus::Open => {
                update.update_expression("SET #s = :s, updated_at = :now REMOVE expires_at")
            }
            ReviewStatus::Replayed | ReviewStatus::Discarded => update
                .update_expression("SET #s = :s, updated_at = :now, expires_at = :expires")
                .expression_attribute_values(
                    ":expires",
                    n((Utc::now() + self.retention).timestamp()),
                ),
        };
        let result = request
            .set_return_consumed_capacity(self.capacity.mode())
            .send()
            .await;
        conditional_update(self.capacity.wrote(result))
    }
}

impl ReviewStore for DynamoReviewStore {
    async fn put(&self, item: &ReviewItem) -> Result<(), StoreError> {
        self.capacity
            .wrote(
                self.client
                    .put_item()
                    .table_name(&self.table)
                    .set_item(Some(item_of(item)))
                    .set_return_consumed_capacity(self.capacity.mode())
                    .send()
                    .await,
            )
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
            .expression_attribute_values(":reason", s(item.reason.as_str()))
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
            .set_return_consumed_capacity(self.capacity.mode())
            .send()
            .await;
        // Discarded by a person: it stays discarded.
        conditional_update(self.capacity.wrote(result)).map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::RESPONSE_BODY_LIMIT;
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

    fn unknown_event() -> crate::domain::event::CanonicalEvent {
        let mut e =
            crate::domain::event::CanonicalEvent::new("telnyx", "u1", "call.teleported", at(0));
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
}
