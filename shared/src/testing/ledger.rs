//! The dispatch ledger in memory, with the DynamoDB ledger's semantics.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::{DateTime, Utc};

use crate::domain::text::truncate_utf8;
use crate::limits::LEDGER_DETAIL_LIMIT;
use crate::ports::{Begun, Failure, Ledger, LedgerEntry, LedgerStatus, StoreError};

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
        entry.detail = Some(truncate_utf8(failure.detail, LEDGER_DETAIL_LIMIT).to_owned());
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
    use chrono::TimeZone;

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
}
