//! The dispatch ledger: dispatch id → pending / retrying / sent / failed. It is what makes "a
//! dispatch already sent is never sent again" true; the protocol is in docs/dispatch.md
//! ("Exactly once").

use std::future::Future;

use chrono::{DateTime, Utc};

use super::StoreError;

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
