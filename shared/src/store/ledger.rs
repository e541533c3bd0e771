//! The dispatch ledger (DESIGN §6, §8): dispatch id → pending / retrying / sent / failed, with
//! the last response code. It is what makes "a dispatch already sent is never sent again" true.
//!
//! Item: `pk` (the dispatch id), `status` (S: `pending`, `retrying`, `sent`, `failed`),
//! `attempts` (N, claims so far), `status_code` (N, the last HTTP status, absent for SQS and
//! transport failures), `detail` (S, the last failure, at most 1 KiB), `created_at`,
//! `updated_at`, `sent_at` (S, RFC 3339), `lease_until` (N, epoch ms, only while an attempt is
//! in flight).
//!
//! # Protocol
//!
//! 1. [`Ledger::begin`] claims the dispatch with one conditional `UpdateItem`: it succeeds when
//!    the id is new, or not `sent` and not leased by an attempt still in flight. It answers
//!    [`Begun::AlreadySent`] for a sent id (the caller acknowledges the message and sends
//!    nothing) and [`Begun::InFlight`] while another attempt holds the lease (the caller retries
//!    after it ends). The lease covers the HTTP timeout, so two copies of one message delivered at
//!    the same time do not both send.
//! 2. The caller sends.
//! 3. [`Ledger::mark_sent`] or [`Ledger::mark_failed`] records the result and drops the lease.
//!    A `sent` entry is never downgraded.
//!
//! The at-least-once window: if the process dies (or the ledger write fails) between a
//! successful POST and `mark_sent`, the id stays unsent and the retry posts again. The receiver
//! sees the same `webhook-id` both times and drops the second (Standard Webhooks receivers
//! dedupe by it, which is why the id is deterministic).

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};
use chrono::{DateTime, TimeZone, Utc};

use super::StoreError;
use super::attr::{conditional_update, n, pk_of, s, unavailable};

/// How much of a failure's description the ledger keeps.
pub const DETAIL_LIMIT: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LedgerStatus {
    /// Claimed; an attempt is (or was, if it died) in flight.
    Pending,
    /// The last attempt failed and the message will be retried.
    Retrying,
    Sent,
    /// Given up: the message went to review.
    Failed,
}

impl LedgerStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            LedgerStatus::Pending => "pending",
            LedgerStatus::Retrying => "retrying",
            LedgerStatus::Sent => "sent",
            LedgerStatus::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(LedgerStatus::Pending),
            "retrying" => Some(LedgerStatus::Retrying),
            "sent" => Some(LedgerStatus::Sent),
            "failed" => Some(LedgerStatus::Failed),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerEntry {
    pub dispatch_id: String,
    pub status: LedgerStatus,
    pub attempts: u32,
    pub status_code: Option<u16>,
    pub detail: Option<String>,
    pub updated_at: Option<DateTime<Utc>>,
    pub sent_at: Option<DateTime<Utc>>,
    pub lease_until: Option<DateTime<Utc>>,
}

/// What [`Ledger::begin`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Begun {
    /// This attempt holds the dispatch; `attempts` counts this one.
    Claimed { attempts: u32 },
    /// Sent before: send nothing.
    AlreadySent { status_code: Option<u16> },
    /// Another attempt holds the lease until then.
    InFlight { until: DateTime<Utc> },
}

/// A failed attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure<'a> {
    /// The dispatch was given up (review); otherwise it will be retried.
    pub terminal: bool,
    pub status_code: Option<u16>,
    pub detail: &'a str,
}

pub trait Ledger: Send + Sync {
    /// Claims `dispatch_id` for one attempt holding a lease of `lease_secs` (see the module doc).
    fn begin(
        &self,
        dispatch_id: &str,
        now: DateTime<Utc>,
        lease_secs: u32,
    ) -> impl Future<Output = Result<Begun, StoreError>> + Send;

    /// Records a successful send (`status_code` is the HTTP status; `None` for a queue).
    fn mark_sent(
        &self,
        dispatch_id: &str,
        status_code: Option<u16>,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Records a failed attempt; never overwrites a `sent` entry.
    fn mark_failed(
        &self,
        dispatch_id: &str,
        failure: &Failure<'_>,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The entry, read consistently (operators and tests).
    fn get(
        &self,
        dispatch_id: &str,
    ) -> impl Future<Output = Result<Option<LedgerEntry>, StoreError>> + Send;
}

/// `s` cut to at most `max` bytes on a character boundary.
pub fn truncate_utf8(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

// ------------------------------------------------------------------------------------------------
// DynamoDB

#[derive(Clone)]
pub struct DynamoLedger {
    client: Client,
    table: String,
}

impl DynamoLedger {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoLedger {
            client,
            table: table.into(),
        }
    }
}

fn millis(at: DateTime<Utc>) -> i64 {
    at.timestamp_millis()
}

fn from_millis(ms: i64) -> Option<DateTime<Utc>> {
    Utc.timestamp_millis_opt(ms).single()
}

fn number<T: std::str::FromStr>(item: &HashMap<String, AttributeValue>, name: &str) -> Option<T> {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
}

fn time(item: &HashMap<String, AttributeValue>, name: &str) -> Option<DateTime<Utc>> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .and_then(|v| DateTime::parse_from_rfc3339(v).ok())
        .map(|t| t.with_timezone(&Utc))
}

pub(crate) fn entry_of(item: &HashMap<String, AttributeValue>) -> Result<LedgerEntry, StoreError> {
    let pk = pk_of(item);
    let status = item
        .get("status")
        .and_then(|v| v.as_s().ok())
        .and_then(|v| LedgerStatus::parse(v))
        .ok_or_else(|| StoreError::Corrupt(pk.clone(), "status".into()))?;
    Ok(LedgerEntry {
        dispatch_id: pk,
        status,
        attempts: number(item, "attempts").unwrap_or(0),
        status_code: number(item, "status_code"),
        detail: item.get("detail").and_then(|v| v.as_s().ok()).cloned(),
        updated_at: time(item, "updated_at"),
        sent_at: time(item, "sent_at"),
        lease_until: number(item, "lease_until").and_then(from_millis),
    })
}

impl DynamoLedger {
    async fn read(&self, dispatch_id: &str) -> Result<Option<LedgerEntry>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(dispatch_id))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| unavailable("GetItem", &e))?;
        out.item().map(entry_of).transpose()
    }

    /// Why a claim was refused, from the item the failed condition saw.
    fn refused(entry: Option<LedgerEntry>, now: DateTime<Utc>) -> Begun {
        match entry {
            Some(e) if e.status == LedgerStatus::Sent => Begun::AlreadySent {
                status_code: e.status_code,
            },
            Some(e) => Begun::InFlight {
                until: e.lease_until.unwrap_or(now),
            },
            // Gone between the condition and the read: let the caller come back.
            None => Begun::InFlight { until: now },
        }
    }
}

impl Ledger for DynamoLedger {
    async fn begin(
        &self,
        dispatch_id: &str,
        now: DateTime<Utc>,
        lease_secs: u32,
    ) -> Result<Begun, StoreError> {
        let lease_until = now + chrono::Duration::seconds(i64::from(lease_secs));
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(dispatch_id))
            .update_expression(
                "SET #s = :pending, lease_until = :lease, updated_at = :now, \
                 created_at = if_not_exists(created_at, :now) ADD attempts :one",
            )
            .condition_expression(
                "attribute_not_exists(pk) OR (#s <> :sent AND \
                 (attribute_not_exists(lease_until) OR lease_until < :now_ms))",
            )
            .expression_attribute_names("#s", "status")
            .expression_attribute_values(":pending", s(LedgerStatus::Pending.as_str()))
            .expression_attribute_values(":sent", s(LedgerStatus::Sent.as_str()))
            .expression_attribute_values(":lease", n(millis(lease_until)))
            .expression_attribute_values(":now", s(now.to_rfc3339()))
            .expression_attribute_values(":now_ms", n(millis(now)))
            .expression_attribute_values(":one", n(1))
            .return_values(ReturnValue::UpdatedNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(out) => {
                let attempts = out
                    .attributes()
                    .and_then(|a| number(a, "attempts"))
                    .unwrap_or(1);
                Ok(Begun::Claimed { attempts })
            }
            Err(SdkError::ServiceError(service)) => match service.err() {
                UpdateItemError::ConditionalCheckFailedException(failed) => {
                    let entry = match failed.item() {
                        Some(item) => Some(entry_of(item)?),
                        // An emulator that does not return the old item: read it.
                        None => self.read(dispatch_id).await?,
                    };
                    Ok(Self::refused(entry, now))
                }
                other => Err(StoreError::Unavailable(format!("UpdateItem: {other}"))),
            },
            Err(err) => Err(unavailable("UpdateItem", &err)),
        }
    }

    async fn mark_sent(
        &self,
        dispatch_id: &str,
        status_code: Option<u16>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(dispatch_id))
            .expression_attribute_names("#s", "status")
            .expression_attribute_values(":sent", s(LedgerStatus::Sent.as_str()))
            .expression_attribute_values(":now", s(now.to_rfc3339()));
        let expression = match status_code {
            Some(code) => {
                request = request.expression_attribute_values(":code", n(code));
                "SET #s = :sent, status_code = :code, sent_at = :now, updated_at = :now \
                 REMOVE lease_until, detail"
            }
            None => {
                "SET #s = :sent, sent_at = :now, updated_at = :now \
                 REMOVE lease_until, detail, status_code"
            }
        };
        request
            .update_expression(expression)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| unavailable("UpdateItem", &e))
    }

    async fn mark_failed(
        &self,
        dispatch_id: &str,
        failure: &Failure<'_>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let status = if failure.terminal {
            LedgerStatus::Failed
        } else {
            LedgerStatus::Retrying
        };
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(dispatch_id))
            .condition_expression("attribute_not_exists(pk) OR #s <> :sent")
            .expression_attribute_names("#s", "status")
            .expression_attribute_values(":status", s(status.as_str()))
            .expression_attribute_values(":sent", s(LedgerStatus::Sent.as_str()))
            .expression_attribute_values(":now", s(now.to_rfc3339()))
            .expression_attribute_values(":detail", s(truncate_utf8(failure.detail, DETAIL_LIMIT)));
        let expression = match failure.status_code {
            Some(code) => {
                request = request.expression_attribute_values(":code", n(code));
                "SET #s = :status, status_code = :code, detail = :detail, updated_at = :now \
                 REMOVE lease_until"
            }
            None => {
                "SET #s = :status, detail = :detail, updated_at = :now \
                 REMOVE lease_until, status_code"
            }
        };
        // Sent meanwhile (a concurrent copy): the success stands.
        conditional_update(request.update_expression(expression).send().await).map(drop)
    }

    async fn get(&self, dispatch_id: &str) -> Result<Option<LedgerEntry>, StoreError> {
        self.read(dispatch_id).await
    }
}

// ------------------------------------------------------------------------------------------------
// Memory

/// The DynamoDB ledger's semantics in memory; `fail` makes every call answer "unavailable".
#[derive(Default)]
pub struct MemoryLedger {
    pub entries: Mutex<HashMap<String, LedgerEntry>>,
    pub fail: AtomicBool,
}

impl MemoryLedger {
    fn check(&self) -> Result<(), StoreError> {
        if self.fail.load(Ordering::SeqCst) {
            Err(StoreError::Unavailable("injected failure".into()))
        } else {
            Ok(())
        }
    }

    pub fn entry(&self, dispatch_id: &str) -> Option<LedgerEntry> {
        self.entries.lock().unwrap().get(dispatch_id).cloned()
    }
}

impl LedgerEntry {
    /// An entry nothing has been recorded on yet.
    fn empty(dispatch_id: &str, status: LedgerStatus) -> Self {
        LedgerEntry {
            dispatch_id: dispatch_id.to_owned(),
            status,
            attempts: 0,
            status_code: None,
            detail: None,
            updated_at: None,
            sent_at: None,
            lease_until: None,
        }
    }
}

impl Ledger for MemoryLedger {
    async fn begin(
        &self,
        dispatch_id: &str,
        now: DateTime<Utc>,
        lease_secs: u32,
    ) -> Result<Begun, StoreError> {
        self.check()?;
        let mut entries = self.entries.lock().unwrap();
        let entry = entries
            .entry(dispatch_id.to_owned())
            .or_insert_with(|| LedgerEntry::empty(dispatch_id, LedgerStatus::Pending));
        if entry.status == LedgerStatus::Sent {
            return Ok(Begun::AlreadySent {
                status_code: entry.status_code,
            });
        }
        if let Some(until) = entry.lease_until.filter(|until| *until >= now) {
            return Ok(Begun::InFlight { until });
        }
        entry.status = LedgerStatus::Pending;
        entry.attempts += 1;
        entry.updated_at = Some(now);
        entry.lease_until = Some(now + chrono::Duration::seconds(i64::from(lease_secs)));
        Ok(Begun::Claimed {
            attempts: entry.attempts,
        })
    }

    async fn mark_sent(
        &self,
        dispatch_id: &str,
        status_code: Option<u16>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.check()?;
        let mut entries = self.entries.lock().unwrap();
        let entry = entries
            .entry(dispatch_id.to_owned())
            .or_insert_with(|| LedgerEntry::empty(dispatch_id, LedgerStatus::Sent));
        entry.status = LedgerStatus::Sent;
        entry.status_code = status_code;
        entry.detail = None;
        entry.sent_at = Some(now);
        entry.updated_at = Some(now);
        entry.lease_until = None;
        Ok(())
    }

    async fn mark_failed(
        &self,
        dispatch_id: &str,
        failure: &Failure<'_>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.check()?;
        let mut entries = self.entries.lock().unwrap();
        let entry = entries
            .entry(dispatch_id.to_owned())
            .or_insert_with(|| LedgerEntry::empty(dispatch_id, LedgerStatus::Pending));
        if entry.status == LedgerStatus::Sent {
            return Ok(());
        }
        entry.status = if failure.terminal {
            LedgerStatus::Failed
        } else {
            LedgerStatus::Retrying
        };
        entry.status_code = failure.status_code;
        entry.detail = Some(truncate_utf8(failure.detail, DETAIL_LIMIT).to_owned());
        entry.updated_at = Some(now);
        entry.lease_until = None;
        Ok(())
    }

    async fn get(&self, dispatch_id: &str) -> Result<Option<LedgerEntry>, StoreError> {
        self.check()?;
        Ok(self.entry(dispatch_id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_700_000_000 + secs, 0).unwrap()
    }

    #[tokio::test]
    async fn memory_ledger_claims_leases_and_never_resends() {
        let ledger = MemoryLedger::default();
        assert_eq!(
            ledger.begin("d", t(0), 15).await.unwrap(),
            Begun::Claimed { attempts: 1 }
        );
        // A concurrent copy waits for the lease.
        assert_eq!(
            ledger.begin("d", t(1), 15).await.unwrap(),
            Begun::InFlight { until: t(15) }
        );
        let failure = Failure {
            terminal: false,
            status_code: Some(500),
            detail: "answered 500",
        };
        ledger.mark_failed("d", &failure, t(2)).await.unwrap();
        assert_eq!(ledger.entry("d").unwrap().status, LedgerStatus::Retrying);
        assert_eq!(
            ledger.begin("d", t(3), 15).await.unwrap(),
            Begun::Claimed { attempts: 2 }
        );
        ledger.mark_sent("d", Some(204), t(4)).await.unwrap();
        assert_eq!(
            ledger.begin("d", t(100), 15).await.unwrap(),
            Begun::AlreadySent {
                status_code: Some(204)
            }
        );
        // A late failure report never downgrades a sent entry.
        ledger.mark_failed("d", &failure, t(101)).await.unwrap();
        let entry = ledger.entry("d").unwrap();
        assert_eq!(entry.status, LedgerStatus::Sent);
        assert_eq!(entry.attempts, 2);
        // An expired lease (the attempt died) can be taken over.
        ledger.begin("e", t(0), 15).await.unwrap();
        assert_eq!(
            ledger.begin("e", t(16), 15).await.unwrap(),
            Begun::Claimed { attempts: 2 }
        );
    }

    #[test]
    fn truncation_keeps_characters_whole() {
        assert_eq!(truncate_utf8("abc", 5), "abc");
        assert_eq!(truncate_utf8("aé", 2), "a");
        assert_eq!(truncate_utf8("aéb", 3), "aé");
    }
}
