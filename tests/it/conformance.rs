//! Store conformance: callhook's own DynamoDB stores (`shared/src/store/*`) against two engines,
//! moto server and DynamoDB Local (AWS's own engine), with the tables created from template.yaml
//! by `callhook_cli::provision` exactly as `callhook dev` creates them.
//!
//! [`suite`] is the same on both: every DynamoDB behaviour a store relies on — the events
//! table's conditional put returning the stored copy (ALL_OLD) of a duplicate, the calls store's
//! conditional put (a stale version is refused, finalization happens once, the record is packed
//! and its large facts kept by reference), the ledger's conditional claim, the review store's UpdateItem (`if_not_exists`, `ADD`,
//! the condition that keeps a discarded item discarded), the `expires_at` TTL attribute, the
//! sparse `pending` index, and a large body kept apart from its item — checked through the stores' own methods, with raw reads only where
//! the attribute itself is the contract.
//!
//! [`concurrency`] runs on DynamoDB Local only: moto checks a write's condition and then stores
//! the item without a lock (see `AtomicOnMoto` in the harness), so two concurrent conditional
//! writes of one key can both succeed there. DynamoDB applies writes to one item one at a time,
//! and exactly-once ingest, dispatch and finalization depend on it; only an engine that does the
//! same can check it.
//!
//! `make ddb-local` installs DynamoDB Local (`make test` does it first); without it the
//! DynamoDB Local test fails and says so.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, BillingMode, KeyType, TimeToLiveStatus};
use callhook::adapters::dynamodb::DynamoCallStore;
use callhook::adapters::dynamodb::DynamoEventReader;
use callhook::adapters::dynamodb::DynamoEventStore;
use callhook::adapters::dynamodb::DynamoLedger;
use callhook::adapters::dynamodb::DynamoReviewStore;
use callhook::adapters::dynamodb::item_size;
use callhook::domain::call::{CallRecord, CallStatus, Effect};
use callhook::domain::event::{CanonicalEvent, Outcome};
use callhook::domain::review::{ReviewItem, ReviewStatus};
use callhook::limits::LEDGER_DETAIL_LIMIT;
use callhook::ports::EventReader;
use callhook::ports::PendingKey;
use callhook::ports::ReviewAdmin;
use callhook::ports::ReviewStore;
use callhook::ports::{Begun, Failure, Ledger, LedgerStatus};
use callhook::ports::{CallStore, Commit, Committed};
use callhook::ports::{EventStatus, EventStore, Inserted, NewEvent, StoreError, StoredEvent};
use callhook::providers::Headers;
use callhook::testing::MemoryBlobStore;
use callhook_cli::local::emulator::{self, Moto};
use callhook_cli::local::provision::{self, Plan};
use callhook_integration::TEMPLATE;
use callhook_integration::dynamodb_local::DynamoDbLocal;
use chrono::{DateTime, TimeZone, Utc};
use serde_json::json;

/// One engine, provisioned: the template's tables (queues are not DynamoDB's: DynamoDB Local has
/// no SQS, and the moto suites cover them).
struct Backend {
    name: &'static str,
    /// The engine deletes items whose TTL attribute has passed (DynamoDB Local within about a
    /// second; DynamoDB itself within days; moto never).
    expires_items: bool,
    dynamo: Client,
    plan: Plan,
    tables: BTreeMap<String, String>,
}

impl Backend {
    async fn provision(name: &'static str, expires_items: bool, endpoint: &str) -> Backend {
        let (dynamo, sqs) = emulator::clients(endpoint);
        let plan = provision::plan_from_template(TEMPLATE).unwrap();
        let tables_only = Plan {
            tables: plan.tables.clone(),
            queues: Vec::new(),
            buckets: Vec::new(),
        };
        // Tables only: the S3 client has nothing to create.
        let s3 = emulator::s3_client(endpoint);
        let provisioned =
            provision::apply(&tables_only, "callhook-conformance", &dynamo, &sqs, &s3)
                .await
                .unwrap_or_else(|e| panic!("provisioning template.yaml's tables on {name}: {e:#}"));
        Backend {
            name,
            expires_items,
            dynamo,
            plan,
            tables: provisioned.tables,
        }
    }

    fn table(&self, logical_id: &str) -> &str {
        &self.tables[logical_id]
    }

    fn events(&self) -> DynamoEventStore {
        DynamoEventStore::new(self.dynamo.clone(), self.table("EventsTable"))
    }

    fn calls(&self) -> DynamoCallStore {
        DynamoCallStore::new(
            self.dynamo.clone(),
            self.table("CallsTable"),
            self.table("EventsTable"),
        )
    }

    fn ledger(&self) -> DynamoLedger {
        DynamoLedger::new(self.dynamo.clone(), self.table("LedgerTable"))
    }

    fn review(&self) -> DynamoReviewStore {
        DynamoReviewStore::new(self.dynamo.clone(), self.table("ReviewTable"))
    }

    fn pending(&self) -> DynamoEventReader {
        DynamoEventReader::new(self.dynamo.clone(), self.table("EventsTable"))
    }

    /// The item as stored, read consistently (for contracts on the attributes themselves).
    async fn raw(&self, logical_id: &str, pk: &str) -> Option<BTreeMap<String, AttributeValue>> {
        self.dynamo
            .get_item()
            .table_name(self.table(logical_id))
            .key("pk", AttributeValue::S(pk.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .unwrap()
            .item
            .map(|item| item.into_iter().collect())
    }

    async fn event_status(&self, event_id: &str) -> String {
        let item = self.raw("EventsTable", event_id).await.unwrap();
        item["status"].as_s().unwrap().clone()
    }
}

/// A day before this run started (whole seconds) plus `secs`. Not a fixed date: DynamoDB Local
/// honours TTL and deletes an event within a second or two once `expires_at` (received + 30
/// days) has passed, so events stored by the suite must be recent.
fn t(secs: i64) -> DateTime<Utc> {
    static ANCHOR: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    let anchor = *ANCHOR.get_or_init(|| Utc::now().timestamp() - 86_400);
    Utc.timestamp_opt(anchor + secs, 0).unwrap()
}

fn headers() -> Headers {
    let mut h = Headers::new();
    h.insert("telnyx-signature-ed25519", "c2lnbmF0dXJl");
    h.insert("telnyx-timestamp", "1704067200");
    h
}

/// Stores `event_id` as ingest does, received at `received_at`; panics unless it is new.
async fn store_event(b: &Backend, event_id: &str, call_id: &str, received_at: DateTime<Utc>) {
    let headers = headers();
    let body = format!(r#"{{"id":"{event_id}"}}"#);
    let inserted = b
        .events()
        .insert_new(&NewEvent {
            event_id,
            call_id: Some(call_id),
            raw_body: body.as_bytes(),
            headers: &headers,
            received_at,
            expires_at: received_at + chrono::Duration::days(30),
        })
        .await
        .unwrap();
    assert_eq!(inserted, Inserted::New, "{}: {event_id}", b.name);
}

/// Retries `read` until `done` holds or `within` passes (an index is eventually consistent, TTL
/// is a background sweep); returns the last value read.
async fn eventually<T, F, Fut>(within: Duration, read: F, done: impl Fn(&T) -> bool) -> T
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let deadline = Instant::now() + within;
    loop {
        let value = read().await;
        if done(&value) || Instant::now() > deadline {
            return value;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// ------------------------------------------------------------------------------------------------
// The suite

/// How long a GSI may lag behind its table here.
const INDEX_LAG: Duration = Duration::from_secs(10);
/// How long the TTL sweep may take to delete an expired item: DynamoDB Local sweeps every 10 s
/// (measured), and a loaded CI machine needs room.
const TTL_SWEEP: Duration = Duration::from_secs(30);

/// Runs one check and says how long it took (`--nocapture` shows it).
macro_rules! timed {
    ($b:expr, $check:ident) => {{
        let started = Instant::now();
        $check($b).await;
        eprintln!(
            "{}: {} in {} ms",
            $b.name,
            stringify!($check),
            started.elapsed().as_millis()
        );
    }};
}

async fn suite(b: &Backend) {
    timed!(b, tables_are_the_templates);
    // TTL deletes in a background sweep (every 10 s on DynamoDB Local): wait for it alongside
    // the other checks, which use other items.
    tokio::join!(async { timed!(b, events_expire_by_a_numeric_ttl) }, async {
        timed!(b, events_dedupe_returns_the_stored_copy);
        timed!(b, large_bodies_are_kept_apart_and_read_back);
        timed!(b, pending_index_holds_only_received_events);
        timed!(b, calls_commit_conditionally);
        timed!(b, ledger_claims_once_and_never_resends);
        timed!(b, review_updates_keep_history);
    },);
}

/// Keys, billing, indexes and TTL as template.yaml declares them.
async fn tables_are_the_templates(b: &Backend) {
    for spec in &b.plan.tables {
        let name = b.table(&spec.logical_id);
        let table = b
            .dynamo
            .describe_table()
            .table_name(name)
            .send()
            .await
            .unwrap()
            .table
            .unwrap();
        let key = |schema: &[aws_sdk_dynamodb::types::KeySchemaElement], ty: KeyType| {
            schema
                .iter()
                .find(|k| *k.key_type() == ty)
                .map(|k| k.attribute_name().to_owned())
        };
        assert_eq!(
            key(table.key_schema(), KeyType::Hash).as_deref(),
            Some(spec.key.as_str()),
            "{}: {name} hash key",
            b.name
        );
        assert_eq!(key(table.key_schema(), KeyType::Range), spec.range_key);
        assert_eq!(
            table
                .billing_mode_summary()
                .and_then(|s| s.billing_mode().cloned()),
            Some(BillingMode::PayPerRequest),
            "{}: {name} billing mode",
            b.name
        );
        let indexes: BTreeMap<String, (Option<String>, Option<String>)> = table
            .global_secondary_indexes()
            .iter()
            .map(|g| {
                (
                    g.index_name().unwrap_or_default().to_owned(),
                    (
                        key(g.key_schema(), KeyType::Hash),
                        g.projection()
                            .and_then(|p| p.projection_type())
                            .map(|p| p.as_str().to_owned()),
                    ),
                )
            })
            .collect();
        let declared: BTreeMap<String, (Option<String>, Option<String>)> = spec
            .gsis
            .iter()
            .map(|g| {
                (
                    g.name.clone(),
                    (Some(g.hash_key.clone()), Some(g.projection.clone())),
                )
            })
            .collect();
        assert_eq!(indexes, declared, "{}: {name} indexes", b.name);
        let ttl = b
            .dynamo
            .describe_time_to_live()
            .table_name(name)
            .send()
            .await
            .unwrap();
        let ttl = ttl.time_to_live_description();
        match &spec.ttl_attribute {
            Some(attr) => {
                assert_eq!(
                    ttl.and_then(|d| d.time_to_live_status()),
                    Some(&TimeToLiveStatus::Enabled),
                    "{}: TTL on {name}",
                    b.name
                );
                assert_eq!(ttl.and_then(|d| d.attribute_name()), Some(attr.as_str()));
            }
            None => assert_ne!(
                ttl.and_then(|d| d.time_to_live_status()),
                Some(&TimeToLiveStatus::Enabled),
                "{}: {name} has TTL the template does not declare",
                b.name
            ),
        }
    }
    let events = b
        .plan
        .tables
        .iter()
        .find(|t| t.logical_id == "EventsTable")
        .unwrap();
    assert_eq!(events.ttl_attribute.as_deref(), Some("expires_at"));
    assert!(
        events
            .gsis
            .iter()
            .any(|g| g.name == "pending" && g.hash_key == "pending_since")
    );
}

/// `insert_new` is the dedupe: one conditional PutItem, and a duplicate gets the stored copy
/// from the failed condition (ReturnValuesOnConditionCheckFailure = ALL_OLD), byte-exact.
async fn events_dedupe_returns_the_stored_copy(b: &Backend) {
    let store = b.events();
    let id = "telnyx#dedupe-1";
    let headers = headers();
    // Not UTF-8: the body is kept as a binary attribute, exactly as received.
    let first_body: &[u8] = b"\x00\xff{\"data\":\"first\"}\r\n";
    let received_at = t(0) + chrono::Duration::milliseconds(123);
    let event = |body: &'static [u8]| NewEvent {
        event_id: id,
        call_id: Some("telnyx#call-dedupe"),
        raw_body: body,
        headers: &headers,
        received_at,
        expires_at: received_at + chrono::Duration::days(30),
    };
    assert_eq!(
        store.insert_new(&event(first_body)).await.unwrap(),
        Inserted::New
    );
    let expected = StoredEvent {
        event_id: id.to_owned(),
        provider: "telnyx".to_owned(),
        status: EventStatus::Received,
        raw_body: first_body.to_vec(),
        headers: headers.clone(),
        received_at,
        call_id: Some("telnyx#call-dedupe".to_owned()),
        queue_failed: false,
    };
    // A retry with other bytes (re-signed) is a duplicate and gets the first copy.
    assert_eq!(
        store.insert_new(&event(b"retry")).await.unwrap(),
        Inserted::Duplicate(expected.clone()),
        "{}",
        b.name
    );

    // A failed send is recorded on the item, and the next duplicate sees it.
    store.mark_queue_failed(id).await.unwrap();
    let Inserted::Duplicate(stored) = store.insert_new(&event(b"again")).await.unwrap() else {
        panic!("{}: a third copy was stored", b.name);
    };
    assert!(stored.queue_failed);
    assert_eq!(stored.raw_body, first_body);

    // Marking an id never stored creates nothing (the condition requires the item).
    store
        .mark_queue_failed("telnyx#never-stored")
        .await
        .unwrap();
    assert!(b.raw("EventsTable", "telnyx#never-stored").await.is_none());

    // Once processed it is no longer marked (the condition requires RECEIVED).
    b.calls()
        .mark_event(id, EventStatus::Processed, None)
        .await
        .unwrap();
    let before = b.raw("EventsTable", id).await.unwrap();
    store.mark_queue_failed(id).await.unwrap();
    assert_eq!(b.raw("EventsTable", id).await.unwrap(), before);
    let Inserted::Duplicate(stored) = store.insert_new(&event(b"late")).await.unwrap() else {
        panic!("{}: a processed event was stored again", b.name);
    };
    assert_eq!(stored.status, EventStatus::Processed);
}

fn large_event<'a>(
    id: &'a str,
    body: &'a [u8],
    headers: &'a Headers,
    received_at: DateTime<Utc>,
) -> NewEvent<'a> {
    NewEvent {
        event_id: id,
        call_id: Some("telnyx#call-large"),
        raw_body: body,
        headers,
        received_at,
        expires_at: received_at + chrono::Duration::days(30),
    }
}

/// A body too large for its item goes to the blob store before the item, which keeps the
/// object's key and the body's hash (checked on the engine: ALL_OLD must carry them back to a
/// duplicate). A duplicate with the same bytes writes the same object again, one with other
/// bytes removes its own, a reader gets the body back; with the blob store down nothing is
/// written. The blob store is the in-memory one: the engines differ in DynamoDB, and the moto
/// suites (`large_bodies.rs`) cover S3.
async fn large_bodies_are_kept_apart_and_read_back(b: &Backend) {
    let blobs = Arc::new(MemoryBlobStore::default());
    let store = b.events().with_bodies(blobs.clone());
    let headers = headers();
    // Noise: it packs no smaller, so it is far over the threshold.
    let noise = |seed: u64, len: usize| -> Vec<u8> {
        let mut x = seed;
        (0..len)
            .map(|_| {
                x = x
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                (x >> 56) as u8
            })
            .collect()
    };
    let (body, other) = (noise(1, 50_000), noise(2, 60_000));
    let received_at = t(120);
    let event = |id, body| large_event(id, body, &headers, received_at);
    let id = "telnyx#large-1";
    assert_eq!(
        store.insert_new(&event(id, &body)).await.unwrap(),
        Inserted::New
    );
    let keys = blobs.keys();
    assert_eq!(keys.len(), 1, "{}", b.name);
    let item = b.raw("EventsTable", id).await.unwrap();
    assert_eq!(item["body_object"], AttributeValue::S(keys[0].clone()));
    assert_eq!(
        item["body_sha256"].as_b().unwrap().as_ref(),
        <sha2::Sha256 as sha2::Digest>::digest(&body).as_slice()
    );
    let size = item_size(&item.clone().into_iter().collect());
    assert!(size < 1024, "{}: the item is {size} bytes", b.name);

    // The same bytes again: the same object, written again; the stored copy comes back whole.
    let Inserted::Duplicate(stored) = store.insert_new(&event(id, &body)).await.unwrap() else {
        panic!("{}: a duplicate was stored", b.name);
    };
    assert_eq!(
        (stored.raw_body.as_slice(), &stored.headers),
        (body.as_slice(), &headers)
    );
    assert_eq!(blobs.puts.load(std::sync::atomic::Ordering::SeqCst), 2);
    // Other bytes under the same id: a duplicate whose own object is removed; the stored copy
    // is read back from the blob store.
    let Inserted::Duplicate(stored) = store.insert_new(&event(id, &other)).await.unwrap() else {
        panic!("{}: a duplicate was stored", b.name);
    };
    assert_eq!(stored.raw_body, body, "{}", b.name);
    assert_eq!(blobs.keys(), keys, "{}", b.name);
    let read = b
        .pending()
        .with_bodies(blobs.clone())
        .get_event(id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (read.raw_body.as_slice(), read.headers),
        (body.as_slice(), headers.clone())
    );
    // A reader without the blob store cannot make up a body.
    assert!(b.pending().get_event(id).await.is_err(), "{}", b.name);

    // The blob store down: unavailable, and no item names a body that is not there.
    blobs.fail.store(true, std::sync::atomic::Ordering::SeqCst);
    let err = store
        .insert_new(&event("telnyx#large-2", &other))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Unavailable(_)),
        "{}: {err}",
        b.name
    );
    assert!(b.raw("EventsTable", "telnyx#large-2").await.is_none());
}

/// `expires_at` is a Number of epoch seconds (DynamoDB TTL ignores any other type) on a table
/// with TTL enabled on it; `pending_since` is a Number of epoch milliseconds. An engine that
/// expires items removes an event past its retention (and keeps a recent one).
async fn events_expire_by_a_numeric_ttl(b: &Backend) {
    // Received 32 days ago: its 30 days of retention are over.
    store_event(
        b,
        "telnyx#ttl-expired",
        "telnyx#call-ttl",
        t(0) - chrono::Duration::days(31),
    )
    .await;
    let received_at = t(60);
    store_event(b, "telnyx#ttl-1", "telnyx#call-ttl", received_at).await;
    let item = b.raw("EventsTable", "telnyx#ttl-1").await.unwrap();
    let expires = (received_at + chrono::Duration::days(30)).timestamp();
    assert_eq!(item["expires_at"], AttributeValue::N(expires.to_string()));
    assert_eq!(
        item["pending_since"],
        AttributeValue::N(received_at.timestamp_millis().to_string())
    );
    assert!(matches!(item["request"], AttributeValue::B(_)));
    let ttl = b
        .dynamo
        .describe_time_to_live()
        .table_name(b.table("EventsTable"))
        .send()
        .await
        .unwrap();
    let ttl = ttl.time_to_live_description().unwrap();
    assert_eq!(
        (ttl.time_to_live_status(), ttl.attribute_name()),
        (Some(&TimeToLiveStatus::Enabled), Some("expires_at")),
        "{}",
        b.name
    );

    if b.expires_items {
        let gone = eventually(
            TTL_SWEEP,
            || b.raw("EventsTable", "telnyx#ttl-expired"),
            Option::is_none,
        )
        .await;
        assert!(gone.is_none(), "{}: an expired event was kept", b.name);
        assert!(b.raw("EventsTable", "telnyx#ttl-1").await.is_some());
    }
}

/// Every page of the `pending` index for `cutoff`, restricted to ids starting with `prefix`.
async fn pending_ids(b: &Backend, cutoff: DateTime<Utc>, prefix: &str) -> BTreeSet<String> {
    let pending = b.pending();
    let mut ids = BTreeSet::new();
    let mut after: Option<PendingKey> = None;
    loop {
        let page = pending.pending_page(cutoff, after.as_ref()).await.unwrap();
        for key in &page.keys {
            assert!(
                key.pending_since <= cutoff.timestamp_millis(),
                "{}: {key:?} is younger than the cutoff",
                b.name
            );
        }
        ids.extend(
            page.keys
                .into_iter()
                .map(|k| k.event_id)
                .filter(|id| id.starts_with(prefix)),
        );
        match page.next {
            Some(next) => after = Some(next),
            None => return ids,
        }
    }
}

/// The sparse index lists what is RECEIVED and older than the cutoff, and drops an event once
/// it is marked PROCESSED or REVIEW (the update removes `pending_since`).
async fn pending_index_holds_only_received_events(b: &Backend) {
    let base = t(3600);
    for (i, id) in ["p-a", "p-b", "p-c", "p-d"].iter().enumerate() {
        store_event(
            b,
            &format!("telnyx#{id}"),
            "telnyx#call-pending",
            base + chrono::Duration::seconds(i as i64),
        )
        .await;
    }
    // Received after the cutoff: not stuck yet.
    store_event(
        b,
        "telnyx#p-young",
        "telnyx#call-pending",
        base + chrono::Duration::minutes(10),
    )
    .await;
    let cutoff = base + chrono::Duration::minutes(1);
    let all: BTreeSet<String> = ["p-a", "p-b", "p-c", "p-d"]
        .iter()
        .map(|id| format!("telnyx#{id}"))
        .collect();
    let listed = eventually(
        INDEX_LAG,
        || pending_ids(b, cutoff, "telnyx#p-"),
        |ids| *ids == all,
    )
    .await;
    assert_eq!(listed, all, "{}", b.name);

    let calls = b.calls();
    calls
        .mark_event("telnyx#p-b", EventStatus::Processed, None)
        .await
        .unwrap();
    calls
        .mark_event("telnyx#p-c", EventStatus::Review, Some("unknown_type"))
        .await
        .unwrap();
    let left: BTreeSet<String> = ["telnyx#p-a".to_owned(), "telnyx#p-d".to_owned()].into();
    let listed = eventually(
        INDEX_LAG,
        || pending_ids(b, cutoff, "telnyx#p-"),
        |ids| *ids == left,
    )
    .await;
    assert_eq!(listed, left, "{}", b.name);

    let pending = b.pending();
    let processed = pending.get_event("telnyx#p-b").await.unwrap().unwrap();
    assert_eq!(processed.status, EventStatus::Processed);
    let review = b.raw("EventsTable", "telnyx#p-c").await.unwrap();
    assert_eq!(review["status"], AttributeValue::S("REVIEW".into()));
    assert_eq!(
        review["review_reason"],
        AttributeValue::S("unknown_type".into())
    );
    assert!(!review.contains_key("pending_since"));
    assert!(pending.get_event("telnyx#p-none").await.unwrap().is_none());
}

fn finalize_effect(call_id: &str, event_id: &str) -> Effect {
    Effect::Finalize {
        call_id: call_id.to_owned(),
        event_id: event_id.to_owned(),
        outcome: Some(Outcome::Completed),
        dispatch_id: format!("{call_id}#completed"),
    }
}

fn record(call_id: &str, version: u64, status: CallStatus, events: &[&str]) -> CallRecord {
    let mut r = CallRecord::new(call_id, "telnyx");
    r.status = Some(status);
    r.rank = status.rank();
    r.version = version;
    r.event_count = events.len() as u64;
    r.applied_event_ids = events.iter().map(|e| (*e).to_owned()).collect();
    r.last_occurred_at = Some(t(10 * version as i64));
    r
}

/// `commit` is one conditional PutItem of the packed record: a stale version (or a second
/// finalization) is refused as `Conflict`, not as an error. Events are marked apart, after.
async fn calls_commit_conditionally(b: &Backend) {
    let calls = b.calls();
    let call = "telnyx#call-commit";
    for e in ["c-1", "c-2", "c-3", "c-4"] {
        store_event(b, &format!("telnyx#{e}"), call, t(7200)).await;
    }
    assert_eq!(calls.get(call).await.unwrap(), None);

    let v1 = record(call, 1, CallStatus::Ringing, &["telnyx#c-1"]);
    let commit = |record, expected_version, outbox, finalizing| Commit {
        record,
        expected_version,
        outbox,
        finalizing,
    };
    assert_eq!(
        calls.commit(&commit(&v1, None, &[], false)).await.unwrap(),
        Committed::Yes
    );
    let raw = b.raw("CallsTable", call).await.unwrap();
    assert!(
        matches!(raw["record"], AttributeValue::B(_)),
        "{}: the record is packed",
        b.name
    );
    // Marking is its own write, and it ends the event's pending time.
    calls
        .mark_event("telnyx#c-1", EventStatus::Processed, None)
        .await
        .unwrap();
    let event = b.raw("EventsTable", "telnyx#c-1").await.unwrap();
    assert_eq!(event["status"], AttributeValue::S("PROCESSED".into()));
    assert!(!event.contains_key("pending_since"), "{}", b.name);
    // Marking an event that is not stored creates nothing.
    calls
        .mark_event("telnyx#c-never", EventStatus::Processed, None)
        .await
        .unwrap();
    assert!(b.raw("EventsTable", "telnyx#c-never").await.is_none());

    // A second "first" writer: the call exists now.
    let racer = record(call, 1, CallStatus::Initiated, &["telnyx#c-2"]);
    assert_eq!(
        calls
            .commit(&commit(&racer, None, &[], false))
            .await
            .unwrap(),
        Committed::Conflict,
        "{}",
        b.name
    );
    let stored = calls.get(call).await.unwrap().unwrap();
    assert_eq!(stored.record, v1);
    assert_eq!(calls.get_eventual(call).await.unwrap().unwrap().record, v1);
    assert!(stored.outbox.is_empty());

    // The finalization, with the dispatch it owes in the outbox.
    let mut v2 = record(call, 2, CallStatus::Ended, &["telnyx#c-1", "telnyx#c-2"]);
    v2.outcome = Some(Outcome::Completed);
    v2.final_event_id = Some("telnyx#c-2".into());
    v2.finalized_at = Some(t(7300) + chrono::Duration::nanoseconds(123_456_789));
    let owed = [finalize_effect(call, "telnyx#c-2")];
    assert_eq!(
        calls
            .commit(&commit(&v2, Some(1), &owed, true))
            .await
            .unwrap(),
        Committed::Yes
    );

    // Stale: read version 1, but 2 is stored.
    let stale = record(call, 2, CallStatus::Answered, &["telnyx#c-1", "telnyx#c-3"]);
    assert_eq!(
        calls
            .commit(&commit(&stale, Some(1), &[], false))
            .await
            .unwrap(),
        Committed::Conflict,
        "{}",
        b.name
    );
    // The right version but a second finalization: refused, whatever raced it.
    let mut again = v2.clone();
    again.version = 3;
    again.final_event_id = Some("telnyx#c-3".into());
    assert_eq!(
        calls
            .commit(&commit(&again, Some(2), &owed, true))
            .await
            .unwrap(),
        Committed::Conflict,
        "{}: finalized twice",
        b.name
    );
    let stored = calls.get(call).await.unwrap().unwrap();
    assert_eq!(stored.record, v2);
    assert_eq!(stored.outbox, owed);
    let raw = b.raw("CallsTable", call).await.unwrap();
    assert_eq!(raw["version"], AttributeValue::N("2".into()));
    assert!(matches!(raw["finalized_at"], AttributeValue::S(_)));

    // The outbox is forgotten only by the writer of the version that holds it.
    calls.clear_outbox(call, 1).await.unwrap();
    assert_eq!(calls.get(call).await.unwrap().unwrap().outbox, owed);
    calls.clear_outbox(call, 2).await.unwrap();
    assert!(calls.get(call).await.unwrap().unwrap().outbox.is_empty());

    // A fact after the end: a plain update of the final call.
    let mut v3 = v2.clone();
    v3.version = 3;
    v3.recording_url = Some("https://example.com/r.mp3".into());
    v3.applied_event_ids.insert("telnyx#c-4");
    assert_eq!(
        calls
            .commit(&commit(&v3, Some(2), &[], false))
            .await
            .unwrap(),
        Committed::Yes
    );
    assert_eq!(calls.get(call).await.unwrap().unwrap().record, v3);
    assert!(calls.list().await.unwrap().contains(&v3), "{}", b.name);
    assert_eq!(b.event_status("telnyx#c-3").await, "RECEIVED");
}

/// `begin` is one conditional UpdateItem: new or unsent-and-unleased ids are claimed, a lease
/// holds off a second attempt, a sent id is never claimed again.
async fn ledger_claims_once_and_never_resends(b: &Backend) {
    let ledger = b.ledger();
    let id = "telnyx#call-1#completed";
    assert_eq!(
        ledger.begin(id, t(0), 15).await.unwrap(),
        Begun::Claimed { attempts: 1 }
    );
    assert_eq!(
        ledger.begin(id, t(1), 15).await.unwrap(),
        Begun::InFlight { until: t(15) },
        "{}: the refused claim reads the lease from the failed condition",
        b.name
    );
    let entry = ledger.get(id).await.unwrap().unwrap();
    assert_eq!(
        (entry.status, entry.attempts, entry.lease_until),
        (LedgerStatus::Pending, 1, Some(t(15)))
    );

    let retry = Failure {
        terminal: false,
        status_code: Some(503),
        detail: "answered 503",
    };
    ledger.mark_failed(id, &retry, t(2)).await.unwrap();
    let entry = ledger.get(id).await.unwrap().unwrap();
    assert_eq!(
        (
            entry.status,
            entry.status_code,
            entry.detail.as_deref(),
            entry.lease_until
        ),
        (
            LedgerStatus::Retrying,
            Some(503),
            Some("answered 503"),
            None
        )
    );
    assert_eq!(
        ledger.begin(id, t(3), 15).await.unwrap(),
        Begun::Claimed { attempts: 2 }
    );
    ledger.mark_sent(id, Some(204), t(4)).await.unwrap();
    let entry = ledger.get(id).await.unwrap().unwrap();
    assert_eq!(
        (
            entry.status,
            entry.status_code,
            entry.detail,
            entry.sent_at,
            entry.lease_until
        ),
        (LedgerStatus::Sent, Some(204), None, Some(t(4)), None)
    );
    assert_eq!(
        ledger.begin(id, t(100), 15).await.unwrap(),
        Begun::AlreadySent {
            status_code: Some(204)
        }
    );
    // A late failure report (a concurrent copy) never downgrades a sent entry.
    let gave_up = Failure {
        terminal: true,
        status_code: Some(500),
        detail: &"é".repeat(LEDGER_DETAIL_LIMIT),
    };
    ledger.mark_failed(id, &gave_up, t(101)).await.unwrap();
    let entry = ledger.get(id).await.unwrap().unwrap();
    assert_eq!(
        (entry.status, entry.attempts, entry.status_code),
        (LedgerStatus::Sent, 2, Some(204))
    );

    // The attempt holding the lease died: once it expires, another takes over.
    let orphan = "telnyx#call-2#completed";
    ledger.begin(orphan, t(0), 15).await.unwrap();
    assert_eq!(
        ledger.begin(orphan, t(16), 15).await.unwrap(),
        Begun::Claimed { attempts: 2 }
    );
    // Given up (terminal), with the detail cut on a character boundary.
    ledger.mark_failed(orphan, &gave_up, t(17)).await.unwrap();
    let entry = ledger.get(orphan).await.unwrap().unwrap();
    assert_eq!(entry.status, LedgerStatus::Failed);
    assert!(entry.detail.unwrap().len() <= LEDGER_DETAIL_LIMIT);
    // A queue send has no status code; marking it removes an earlier one.
    ledger.mark_sent(orphan, None, t(18)).await.unwrap();
    assert_eq!(
        ledger.begin(orphan, t(19), 15).await.unwrap(),
        Begun::AlreadySent { status_code: None }
    );
    assert_eq!(ledger.get("telnyx#nothing#completed").await.unwrap(), None);
}

/// `put` replaces; `open_event` is an UpdateItem that keeps the first `created_at`
/// (`if_not_exists`), counts with `ADD`, reopens a replayed item and leaves a discarded one.
async fn review_updates_keep_history(b: &Backend) {
    let review = b.review();
    let dispatch = ReviewItem::dispatch_failed(
        "telnyx#call-9#completed",
        json!({"dispatch_id": "telnyx#call-9#completed", "n": 1}),
        5,
        "answered 400",
        Some(400),
        Some("bad request"),
        t(50),
    );
    review.put(&dispatch).await.unwrap();
    assert_eq!(
        review.get(&dispatch.pk).await.unwrap(),
        Some(dispatch.clone())
    );
    let mut newer = dispatch.clone();
    newer.detail = "answered 422".into();
    newer.status_code = Some(422);
    newer.response_body = None;
    review.put(&newer).await.unwrap();
    assert_eq!(review.get(&dispatch.pk).await.unwrap(), Some(newer.clone()));

    let mut event = CanonicalEvent::new("telnyx", "u-review", "call.teleported", t(0));
    callhook::providers::mark_unknown(&mut event);
    let pk = "event#telnyx#u-review";
    review
        .open_event(&ReviewItem::event(&event, "unknown_type", t(5)))
        .await
        .unwrap();
    review
        .open_event(&ReviewItem::event(&event, "unknown_type", t(9)))
        .await
        .unwrap();
    let item = review.get(pk).await.unwrap().unwrap();
    assert_eq!(
        (item.created_at, item.attempts, item.status),
        (t(5), 2, ReviewStatus::Open),
        "{}",
        b.name
    );
    assert_eq!(item.received_at, Some(t(0)));
    assert_eq!(item.event_type.as_deref(), Some("call.teleported"));

    assert!(review.set_status(pk, ReviewStatus::Replayed).await.unwrap());
    review
        .open_event(&ReviewItem::event(&event, "unknown_type", t(12)))
        .await
        .unwrap();
    let item = review.get(pk).await.unwrap().unwrap();
    assert_eq!((item.attempts, item.status), (3, ReviewStatus::Open));

    assert!(
        review
            .set_status(pk, ReviewStatus::Discarded)
            .await
            .unwrap()
    );
    review
        .open_event(&ReviewItem::event(&event, "unknown_type", t(20)))
        .await
        .unwrap();
    let item = review.get(pk).await.unwrap().unwrap();
    assert_eq!(
        (item.attempts, item.status),
        (3, ReviewStatus::Discarded),
        "{}",
        b.name
    );
    assert!(
        !review
            .set_status("event#telnyx#absent", ReviewStatus::Discarded)
            .await
            .unwrap()
    );
    assert_eq!(review.get("event#telnyx#absent").await.unwrap(), None);

    let open = review.list(Some(ReviewStatus::Open), None).await.unwrap();
    assert_eq!(open, vec![newer]);
    let discarded = review
        .list(Some(ReviewStatus::Discarded), Some("unknown_type"))
        .await
        .unwrap();
    assert_eq!(
        discarded.iter().map(|i| i.pk.as_str()).collect::<Vec<_>>(),
        [pk]
    );
}

// ------------------------------------------------------------------------------------------------
// Concurrency (DynamoDB Local only; see the module doc for why not moto)

async fn concurrency(b: &Backend) {
    timed!(b, concurrent_deliveries_store_one_copy);
    timed!(b, concurrent_claims_have_one_winner);
    timed!(b, concurrent_commits_apply_once);
}

/// 50 copies of one event at once: one is stored, 49 are duplicates that all see it.
async fn concurrent_deliveries_store_one_copy(b: &Backend) {
    let id = "telnyx#burst-1";
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..50 {
        let store = b.events();
        tasks.spawn(async move {
            let headers = headers();
            let body = format!("copy {i}");
            let inserted = store
                .insert_new(&NewEvent {
                    event_id: id,
                    call_id: Some("telnyx#call-burst"),
                    raw_body: body.as_bytes(),
                    headers: &headers,
                    received_at: t(0),
                    expires_at: t(86_400),
                })
                .await
                .unwrap();
            (body, inserted)
        });
    }
    let results = tasks.join_all().await;
    let winners: Vec<&String> = results
        .iter()
        .filter(|(_, r)| *r == Inserted::New)
        .map(|(body, _)| body)
        .collect();
    assert_eq!(winners.len(), 1, "{}: {winners:?} all stored", b.name);
    for (_, inserted) in &results {
        if let Inserted::Duplicate(stored) = inserted {
            assert_eq!(stored.raw_body, winners[0].as_bytes());
        }
    }
}

/// 20 dispatch attempts of one id at once: one claims it, the others see its lease.
async fn concurrent_claims_have_one_winner(b: &Backend) {
    let id = "telnyx#call-race#completed";
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let ledger = b.ledger();
        tasks.spawn(async move { ledger.begin(id, t(0), 30).await.unwrap() });
    }
    let results = tasks.join_all().await;
    let claimed = results
        .iter()
        .filter(|r| matches!(r, Begun::Claimed { .. }))
        .count();
    assert_eq!(claimed, 1, "{}: {results:?}", b.name);
    for r in &results {
        match r {
            Begun::Claimed { attempts } => assert_eq!(*attempts, 1),
            Begun::InFlight { until } => assert_eq!(*until, t(30), "{}", b.name),
            other => panic!("{}: {other:?}", b.name),
        }
    }
    assert_eq!(ledger_attempts(b, id).await, 1);
}

async fn ledger_attempts(b: &Backend, id: &str) -> u32 {
    b.ledger().get(id).await.unwrap().unwrap().attempts
}

/// 20 lifecycle workers finalize one call at once, each from its own event: exactly one commit
/// lands; every other sees `Conflict` (its condition failed).
async fn concurrent_commits_apply_once(b: &Backend) {
    let call = "telnyx#call-race";
    let events: Vec<String> = (0..20).map(|i| format!("telnyx#race-{i}")).collect();
    for e in &events {
        store_event(b, e, call, t(0)).await;
    }
    let mut tasks = tokio::task::JoinSet::new();
    for e in events.clone() {
        let calls = b.calls();
        tasks.spawn(async move {
            let mut r = record(call, 1, CallStatus::Ended, &[e.as_str()]);
            r.final_event_id = Some(e.clone());
            r.finalized_at = Some(t(1));
            let owed = [finalize_effect(call, &e)];
            let result = calls
                .commit(&Commit {
                    record: &r,
                    expected_version: None,
                    outbox: &owed,
                    finalizing: true,
                })
                .await;
            (e, result)
        });
    }
    let results = tasks.join_all().await;
    let winners: Vec<&String> = results
        .iter()
        .filter(|(_, r)| matches!(r, Ok(Committed::Yes)))
        .map(|(e, _)| e)
        .collect();
    assert_eq!(winners.len(), 1, "{}: {results:?}", b.name);
    for (e, result) in &results {
        match result {
            Ok(_) => {}
            Err(other) => panic!("{}: {e}: {other}", b.name),
        }
    }
    let stored = b.calls().get(call).await.unwrap().unwrap();
    assert_eq!(
        stored.record.final_event_id.as_deref(),
        Some(winners[0].as_str())
    );
}

// ------------------------------------------------------------------------------------------------
// The engines

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stores_conform_on_moto() {
    let moto = tokio::task::spawn_blocking(Moto::start)
        .await
        .unwrap()
        .expect("moto server starts (make venv installs it)");
    let backend = Backend::provision("moto", false, &moto.endpoint).await;
    suite(&backend).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stores_conform_on_dynamodb_local() {
    let local = tokio::task::spawn_blocking(DynamoDbLocal::start)
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("DynamoDB Local: {e}"));
    eprintln!(
        "DynamoDB Local {} answering after {} ms",
        local
            .version()
            .unwrap_or_else(|| "(version not printed)".into()),
        local.startup.as_millis()
    );
    let started = Instant::now();
    let backend = Backend::provision("DynamoDB Local", true, &local.endpoint).await;
    eprintln!(
        "DynamoDB Local: tables from template.yaml in {} ms",
        started.elapsed().as_millis()
    );
    suite(&backend).await;
    concurrency(&backend).await;
    eprintln!(
        "DynamoDB Local: suite and concurrency checks in {} ms",
        started.elapsed().as_millis()
    );
}
