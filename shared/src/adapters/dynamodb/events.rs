//! The events table on DynamoDB at ingest: the conditional write that is the dedupe (item
//! layout: docs/architecture.md, "Tables"). The raw body is kept packed
//! ([`packing`](crate::adapters::packing)), so an event usually costs one write unit; a body
//! too large for that is kept in the events bucket ([`bodies`](crate::adapters::bodies)),
//! written before the item that names it.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};
use chrono::{DateTime, Utc};

use super::{Capacity, conditional_update, item_size, n, pk_of, s, unavailable};
use crate::adapters::bodies::{self, BodyObject};
use crate::adapters::packing;
use crate::limits::MAX_ITEM_BYTES;
use crate::ports::{
    BlobStore, EventStatus, EventStore, Inserted, MarkForReview, NewEvent, StoreError, StoredEvent,
};
use crate::providers::Headers;

#[derive(Clone)]
pub struct DynamoEventStore {
    pub(super) client: Client,
    pub(super) capacity: Capacity,
    pub(super) table: String,
    pub(super) bodies: Option<Arc<dyn BlobStore>>,
}

impl DynamoEventStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoEventStore {
            client,
            capacity: Capacity::default(),
            table: table.into(),
            bodies: None,
        }
    }

    /// Counts this adapter's consumed capacity into `capacity` (shared with other adapters).
    pub fn with_capacity(mut self, capacity: Capacity) -> Self {
        self.capacity = capacity;
        self
    }

    /// Keeps bodies too large for their item in `bodies` (the events bucket). Without it every
    /// body stays in its item, up to DynamoDB's item limit.
    pub fn with_bodies(mut self, bodies: impl BlobStore + 'static) -> Self {
        self.bodies = Some(Arc::new(bodies));
        self
    }
}

/// A body kept apart: where it goes, and its bytes packed.
pub(crate) type Apart = (BodyObject, Vec<u8>);

/// The item for `event`, and the body to write to the blob store first when `apart` allows it
/// and the body is too large for the item (docs/architecture.md, "Large bodies").
pub(crate) fn item_of(
    event: &NewEvent<'_>,
    apart: bool,
) -> (HashMap<String, AttributeValue>, Option<Apart>) {
    let line = header_line(event.headers);
    let body = event.raw_body;
    // The request packed whole, as it stays in the item; only one too large for it is packed
    // again: its body alone for the blob store, its header line alone for the item.
    let mut whole = Vec::with_capacity(line.len() + body.len());
    whole.extend_from_slice(&line);
    whole.extend_from_slice(body);
    let whole = packing::pack(&whole);
    let (request, object) = if !apart || bodies::stays_in_item(whole.len()) {
        (whole, None)
    } else {
        let object = (BodyObject::of(event.event_id, body), packing::pack(body));
        (packing::pack(&line), Some(object))
    };
    let received_ms = event.received_at.timestamp_millis();
    let mut item = HashMap::from([
        ("pk".to_owned(), s(event.event_id)),
        ("status".to_owned(), s(EventStatus::Received.as_str())),
        ("request".to_owned(), AttributeValue::B(Blob::new(request))),
        ("received_at".to_owned(), n(received_ms)),
        ("pending_since".to_owned(), n(received_ms)),
        ("expires_at".to_owned(), n(event.expires_at.timestamp())),
    ]);
    if let Some(call_id) = event.call_id {
        item.insert("call_id".to_owned(), s(call_id));
    }
    if let Some((object, _)) = &object {
        item.insert("body_object".to_owned(), s(&object.key));
        item.insert(
            "body_sha256".to_owned(),
            AttributeValue::B(Blob::new(object.sha256.to_vec())),
        );
    }
    (item, object)
}

/// The headers as one line of JSON, ending in a newline.
fn header_line(headers: &Headers) -> Vec<u8> {
    let names: BTreeMap<&str, &str> = headers.iter().collect();
    let mut line = serde_json::to_vec(&names).unwrap_or_else(|_| b"{}".to_vec());
    line.push(b'\n');
    line
}

/// The headers and the exact body of a stored request: its headers as one line of JSON, then
/// the body exactly as received, packed together (the header names then cost almost nothing,
/// and the item stays under one write unit for a typical body).
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

/// Where an item's body is kept apart: the object's key and the body's SHA-256.
fn body_object_of(
    item: &HashMap<String, AttributeValue>,
) -> Result<Option<(&str, &[u8])>, StoreError> {
    let Some(key) = item.get("body_object") else {
        return Ok(None);
    };
    let corrupt = |what: &str| StoreError::Corrupt(pk_of(item), what.to_owned());
    let key = key.as_s().map_err(|_| corrupt("body_object"))?;
    let sha256 = item
        .get("body_sha256")
        .and_then(|v| v.as_b().ok())
        .ok_or_else(|| corrupt("body_sha256"))?;
    Ok(Some((key.as_str(), sha256.as_ref())))
}

/// Whether the item's TTL has passed (DynamoDB deletes expired items some time later).
fn expired(item: &HashMap<String, AttributeValue>) -> bool {
    item.get("expires_at")
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse::<i64>().ok())
        .is_some_and(|at| at <= Utc::now().timestamp())
}

/// The stored event an item holds, its body read back from the blob store when it is kept
/// there (checked against its hash): the one way every reader gets a stored event. `None` when
/// the event is past its retention and its body already gone.
pub(crate) async fn load(
    item: &HashMap<String, AttributeValue>,
    bodies: Option<&dyn BlobStore>,
) -> Result<Option<StoredEvent>, StoreError> {
    let mut stored = stored_of(item)?;
    let Some((key, sha256)) = body_object_of(item)? else {
        return Ok(Some(stored));
    };
    let Some(bodies) = bodies else {
        return Err(StoreError::Unavailable(format!(
            "{}: the body is kept in the events bucket, and no bucket is configured",
            stored.event_id
        )));
    };
    match bodies::read(bodies, &stored.event_id, key, sha256).await? {
        Some(body) => {
            stored.raw_body = body;
            Ok(Some(stored))
        }
        // The bucket's expiry may remove the body before DynamoDB's TTL removes the item.
        None if expired(item) => Ok(None),
        None => Err(StoreError::Corrupt(
            stored.event_id,
            "its body object is missing".into(),
        )),
    }
}

/// The copy already stored, when the dedupe write found one. Its body only while it is still
/// RECEIVED, the one state in which ingest may re-send it: any other duplicate needs no body,
/// and a body that can no longer be read (expired, lost) must not turn every retry of an
/// applied event into a 503. When both keep their body in the bucket under the same key, the
/// bytes are the same (the key names their hash) and are not read back.
async fn stored_copy(
    old: &HashMap<String, AttributeValue>,
    new: &NewEvent<'_>,
    object: Option<&BodyObject>,
    bodies: Option<&dyn BlobStore>,
) -> Result<StoredEvent, StoreError> {
    let mut stored = stored_of(old)?;
    let same_object = object.is_some_and(|object| {
        body_object_of(old).ok().flatten().map(|(key, _)| key) == Some(object.key.as_str())
    });
    if same_object {
        stored.raw_body = new.raw_body.to_vec();
        return Ok(stored);
    }
    if stored.status != EventStatus::Received {
        return Ok(stored);
    }
    load(old, bodies).await?.ok_or_else(|| {
        StoreError::Corrupt(new.event_id.to_owned(), "its body object is missing".into())
    })
}

impl EventStore for DynamoEventStore {
    async fn insert_new(&self, event: &NewEvent<'_>) -> Result<Inserted, StoreError> {
        let (item, object) = item_of(event, self.bodies.is_some());
        let item_bytes = item_size(&item);
        if item_bytes > MAX_ITEM_BYTES {
            return Err(StoreError::TooLarge(event.event_id.to_owned()));
        }
        // The body first: an item never names an object that is not there. A failure here is
        // a 503 like DynamoDB's, and nothing was written.
        let object = match (object, &self.bodies) {
            (Some((object, packed)), Some(bodies)) => {
                bodies.put(&object.key, packed).await?;
                Some(object)
            }
            _ => None,
        };
        let result = self.capacity.wrote(
            self.client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(item))
                .condition_expression("attribute_not_exists(pk)")
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .set_return_consumed_capacity(self.capacity.mode())
                .send()
                .await,
        );
        match result {
            Ok(_) => Ok(Inserted::New),
            Err(SdkError::ServiceError(service)) => match service.err() {
                PutItemError::ConditionalCheckFailedException(failed) => {
                    // A failed condition is billed like the write it refused.
                    self.capacity.failed_write(&self.table, item_bytes);
                    let old = failed.item().ok_or_else(|| {
                        StoreError::Corrupt(
                            event.event_id.to_owned(),
                            "condition failed without the old item".into(),
                        )
                    })?;
                    self.remove_unused(old, event, object.as_ref()).await;
                    stored_copy(old, event, object.as_ref(), self.bodies.as_deref())
                        .await
                        .map(Inserted::Duplicate)
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
                .set_return_consumed_capacity(self.capacity.mode())
                .send()
                .await,
        );
        // Already processed or gone: nothing left to repair.
        conditional_update(result).map(drop)
    }
}

impl DynamoEventStore {
    /// A copy whose body differs from the stored one wrote its own object, which no item
    /// names: removed now (best effort; the bucket's expiry removes it otherwise). The same
    /// body wrote the stored copy's own object again, which stays.
    async fn remove_unused(
        &self,
        old: &HashMap<String, AttributeValue>,
        event: &NewEvent<'_>,
        object: Option<&BodyObject>,
    ) {
        let (Some(object), Some(bodies)) = (object, &self.bodies) else {
            return;
        };
        if body_object_of(old).ok().flatten().map(|(key, _)| key) == Some(object.key.as_str()) {
            return;
        }
        if let Err(err) = bodies.delete(&object.key).await {
            tracing::warn!(event_id = %event.event_id, error = %err, "could not remove a duplicate's body object");
        }
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
                .set_return_consumed_capacity(self.capacity.mode())
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
    use crate::limits::BODY_IN_ITEM_BYTES;

    #[test]
    fn a_request_unpacks_to_its_headers_and_exact_body() {
        let mut headers = Headers::new();
        headers.insert("telnyx-signature-ed25519", "c2ln\nbmF0dXJl");
        headers.insert("telnyx-timestamp", "1704067200");
        for body in [&b""[..], b"\n\n{\"a\":1}\r\n", b"\x00\xff not utf-8"] {
            let (item, _) = item_of(&new_event(body, &headers), true);
            let (back, exact) = unpack_request(item["request"].as_b().unwrap().as_ref()).unwrap();
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
        let stored = stored_of(&item_of(&new, true).0).unwrap();
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

    fn new_event<'a>(body: &'a [u8], headers: &'a Headers) -> NewEvent<'a> {
        NewEvent {
            event_id: "retell#c1#call_ended",
            call_id: Some("retell#c1"),
            raw_body: body,
            headers,
            received_at: Utc::now(),
            expires_at: Utc::now() + chrono::Duration::days(30),
        }
    }

    /// A body of `len` bytes that packs to about a third of its size, as transcripts do.
    fn transcript_like(len: usize) -> Vec<u8> {
        let mut seed = 7u64;
        let words = ["refund", "order", "tomorrow", "delivery", "thanks", "agent"];
        let mut body = br#"{"event":"call_ended","call":{"transcript":""#.to_vec();
        while body.len() < len - 3 {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            let word = words[(seed >> 33) as usize % words.len()];
            body.extend_from_slice(format!("{word} {} ", seed >> 50).as_bytes());
        }
        body.truncate(len - 3);
        body.extend_from_slice(b"\"}}");
        body
    }

    #[test]
    fn a_body_too_large_for_its_item_is_kept_apart_by_its_packed_size() {
        let mut headers = Headers::new();
        headers.insert("x-retell-signature", "v=1700000000000,d=abc");
        // A typical body stays whole in its item.
        let typical = transcript_like(2_000);
        let (item, object) = item_of(&new_event(&typical, &headers), true);
        assert!(object.is_none());
        assert!(!item.contains_key("body_object"));
        assert_eq!(
            unpack_request(item["request"].as_b().unwrap().as_ref()).unwrap(),
            (headers.clone(), typical)
        );
        // Larger than the threshold raw, but small packed: still whole.
        let compressible = format!(r#"{{"transcript":"{}"}}"#, "hello ".repeat(2_000));
        assert!(compressible.len() > BODY_IN_ITEM_BYTES);
        let (item, object) = item_of(&new_event(compressible.as_bytes(), &headers), true);
        assert!(object.is_none() && !item.contains_key("body_object"));
        // Packed beyond the threshold: the body goes apart, the item keeps the headers, the
        // key and the hash.
        let large = transcript_like(40_000);
        let (item, object) = item_of(&new_event(&large, &headers), true);
        let (object, packed) = object.expect("kept apart");
        assert_eq!(object, BodyObject::of("retell#c1#call_ended", &large));
        assert_eq!(packing::unpack(&packed).unwrap(), large);
        assert_eq!(item["body_object"].as_s().unwrap(), &object.key);
        assert_eq!(item["body_sha256"].as_b().unwrap().as_ref(), object.sha256);
        let (stored_headers, rest) =
            unpack_request(item["request"].as_b().unwrap().as_ref()).unwrap();
        assert_eq!((stored_headers, rest.len()), (headers.clone(), 0));
        assert!(item_size(&item) < 1024, "{}", item_size(&item));
        // Without a bucket, it stays in the item.
        let (item, object) = item_of(&new_event(&large, &headers), false);
        assert!(object.is_none() && !item.contains_key("body_object"));
    }

    #[tokio::test]
    async fn a_kept_apart_body_is_read_back_checked() {
        use crate::testing::MemoryBlobStore;

        let headers = Headers::new();
        let large = transcript_like(40_000);
        let new = new_event(&large, &headers);
        let (item, object) = item_of(&new, true);
        let (object, packed) = object.unwrap();
        let blobs = MemoryBlobStore::default();
        blobs.put(&object.key, packed).await.unwrap();

        let stored = load(&item, Some(&blobs)).await.unwrap().unwrap();
        assert_eq!(stored.raw_body, large);
        assert_eq!(stored.event_id, "retell#c1#call_ended");

        // No bucket to read from: unavailable, not an empty body.
        let err = load(&item, None).await.unwrap_err();
        assert!(matches!(err, StoreError::Unavailable(_)), "{err}");

        // Tampered in the bucket: an error, never served.
        let mut changed = large.clone();
        changed[100] ^= 0x20;
        blobs
            .put(&object.key, packing::pack(&changed))
            .await
            .unwrap();
        let err = load(&item, Some(&blobs)).await.unwrap_err();
        assert!(matches!(err, StoreError::Corrupt(..)), "{err}");

        // Gone: lost while the item lives, or expired with it.
        blobs.delete(&object.key).await.unwrap();
        let err = load(&item, Some(&blobs)).await.unwrap_err();
        assert!(
            matches!(&err, StoreError::Corrupt(_, what) if what.contains("missing")),
            "{err}"
        );
        let mut expired_item = item.clone();
        expired_item.insert("expires_at".into(), n(Utc::now().timestamp() - 1));
        assert_eq!(load(&expired_item, Some(&blobs)).await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_duplicate_of_an_applied_event_needs_no_body() {
        use crate::testing::MemoryBlobStore;

        let headers = Headers::new();
        let large = transcript_like(40_000);
        let new = new_event(&large, &headers);
        let (mut item, _) = item_of(&new, true);
        // Its object is gone (lost, or expired before the item): nothing to read.
        let blobs = MemoryBlobStore::default();
        let err = stored_copy(&item, &new, None, Some(&blobs))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Corrupt(..)), "RECEIVED: {err}");
        item.insert("status".into(), AttributeValue::S("PROCESSED".into()));
        let stored = stored_copy(&item, &new, None, Some(&blobs)).await.unwrap();
        assert_eq!(stored.status, EventStatus::Processed);
    }
}
