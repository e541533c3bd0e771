//! The events table on DynamoDB at ingest: the conditional write that is the dedupe (item
//! layout: docs/architecture.md, "Tables"). The raw body is kept packed
//! ([`packing`](crate::adapters::packing)), so an event usually costs one write unit.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::ReturnConsumedCapacity;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};
use chrono::{DateTime, Utc};

use super::{Capacity, conditional_update, item_size, n, pk_of, s, unavailable};
use crate::adapters::packing;
use crate::limits::MAX_ITEM_BYTES;
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
    let received_ms = event.received_at.timestamp_millis();
    let mut item = HashMap::from([
        ("pk".to_owned(), s(event.event_id)),
        ("status".to_owned(), s(EventStatus::Received.as_str())),
        (
            "request".to_owned(),
            AttributeValue::B(Blob::new(pack_request(event.headers, event.raw_body))),
        ),
        ("received_at".to_owned(), n(received_ms)),
        ("pending_since".to_owned(), n(received_ms)),
        ("expires_at".to_owned(), n(event.expires_at.timestamp())),
    ]);
    if let Some(call_id) = event.call_id {
        item.insert("call_id".to_owned(), s(call_id));
    }
    item
}

/// The request as stored: its headers as one line of JSON, then the body exactly as received,
/// packed together (the header names then cost almost nothing, and the item stays under one
/// write unit for a typical body).
pub fn pack_request(headers: &Headers, body: &[u8]) -> Vec<u8> {
    let names: BTreeMap<&str, &str> = headers.iter().collect();
    let mut request = serde_json::to_vec(&names).unwrap_or_else(|_| b"{}".to_vec());
    request.push(b'\n');
    request.extend_from_slice(body);
    packing::pack(&request)
}

/// The headers and the exact body [`pack_request`] was given.
pub fn unpack_request(packed: &[u8]) -> Result<(Headers, Vec<u8>), String> {
    let request = packing::unpack(packed).map_err(|e| e.to_string())?;
    // JSON escapes any newline inside a string: the first one ends the headers.
    let split = request
        .iter()
        .position(|b| *b == b'\n')
        .ok_or("no header line")?;
    let names: BTreeMap<String, String> =
        serde_json::from_slice(&request[..split]).map_err(|_| "unreadable header line")?;
    Ok((names.into_iter().collect(), request[split + 1..].to_vec()))
}

/// When the event was received: epoch milliseconds (older items: RFC 3339 text).
pub(crate) fn received_at_of(item: &HashMap<String, AttributeValue>) -> Option<DateTime<Utc>> {
    match item.get("received_at")? {
        AttributeValue::N(ms) => DateTime::from_timestamp_millis(ms.parse().ok()?),
        AttributeValue::S(text) => DateTime::parse_from_rfc3339(text)
            .ok()
            .map(|t| t.with_timezone(&Utc)),
        _ => None,
    }
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
    let (headers, raw_body) = match item.get("request").and_then(|v| v.as_b().ok()) {
        Some(packed) => unpack_request(packed.as_ref()).map_err(|e| corrupt(&e))?,
        // Items written before requests were packed: the body as received, headers as a map.
        None => {
            let raw = item
                .get("raw_body")
                .and_then(|v| v.as_b().ok())
                .ok_or_else(|| corrupt("request"))?;
            let headers = item
                .get("headers")
                .and_then(|v| v.as_m().ok())
                .map(|m| {
                    m.iter()
                        .filter_map(|(k, v)| v.as_s().ok().map(|v| (k, v.clone())))
                        .collect::<Headers>()
                })
                .unwrap_or_default();
            (headers, raw.as_ref().to_vec())
        }
    };
    let received_at = received_at_of(item).ok_or_else(|| corrupt("received_at"))?;
    // The event id is `{provider}#{key}`; older items also name the provider.
    let provider = match text("provider") {
        Ok(provider) => provider.clone(),
        Err(_) => pk
            .split_once('#')
            .ok_or_else(|| corrupt("pk"))?
            .0
            .to_owned(),
    };
    Ok(StoredEvent {
        call_id: text("call_id").ok().cloned(),
        event_id: pk.clone(),
        provider,
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
        if item_size(&item) > MAX_ITEM_BYTES {
            return Err(StoreError::TooLarge(event.event_id.to_owned()));
        }
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
                    self.capacity.failed_write(&self.table, &item);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_unpacks_to_its_headers_and_exact_body() {
        let mut headers = Headers::new();
        headers.insert("telnyx-signature-ed25519", "c2ln\nbmF0dXJl");
        headers.insert("telnyx-timestamp", "1704067200");
        for body in [&b""[..], b"\n\n{\"a\":1}\r\n", b"\x00\xff not utf-8"] {
            let (back, exact) = unpack_request(&pack_request(&headers, body)).unwrap();
            assert_eq!((back, exact.as_slice()), (headers.clone(), body));
        }
        assert!(unpack_request(&packing::pack(b"no header line")).is_err());
        assert!(unpack_request(&packing::pack(b"[1]\n")).is_err());
    }

    #[test]
    fn items_read_back_whatever_their_age() {
        let mut headers = Headers::new();
        headers.insert("webhook-id", "msg_1");
        let at = DateTime::parse_from_rfc3339("2026-01-01T00:00:00.123Z")
            .unwrap()
            .with_timezone(&Utc);
        let new = NewEvent {
            event_id: "telnyx#e1",
            call_id: Some("telnyx#c1"),
            raw_body: b"{}",
            headers: &headers,
            received_at: at,
            expires_at: at,
        };
        let stored = stored_of(&item_of(&new)).unwrap();
        assert_eq!(
            (
                stored.provider.as_str(),
                stored.raw_body.as_slice(),
                stored.received_at
            ),
            ("telnyx", &b"{}"[..], at)
        );
        assert_eq!(stored.headers, headers);

        // Written before requests were packed: raw body, headers map, RFC 3339 time.
        let legacy = HashMap::from([
            ("pk".to_owned(), s("telnyx#e1")),
            ("status".to_owned(), s("PROCESSED")),
            (
                "raw_body".to_owned(),
                AttributeValue::B(Blob::new(&b"{}"[..])),
            ),
            (
                "headers".to_owned(),
                AttributeValue::M(HashMap::from([("webhook-id".to_owned(), s("msg_1"))])),
            ),
            ("received_at".to_owned(), s("2026-01-01T00:00:00.123Z")),
        ]);
        let old = stored_of(&legacy).unwrap();
        assert_eq!(
            (old.raw_body, old.headers, old.received_at),
            (stored.raw_body, stored.headers, at)
        );
    }
}
