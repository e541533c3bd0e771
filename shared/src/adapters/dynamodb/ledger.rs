//! The dispatch ledger on DynamoDB: one conditional `UpdateItem` claims a dispatch id (item layout:
//! docs/architecture.md, "Tables"; protocol: docs/dispatch.md, "Exactly once").

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};
use chrono::{DateTime, TimeZone, Utc};

use super::{Capacity, conditional_update, get_by_pk, n, pk_of, s, unavailable};
use crate::domain::text::truncate_utf8;
use crate::limits::LEDGER_DETAIL_LIMIT;
use crate::ports::{Begun, Failure, Ledger, LedgerEntry, LedgerStatus, StoreError};

#[derive(Clone)]
pub struct DynamoLedger {
    client: Client,
    capacity: Capacity,
    table: String,
}

impl DynamoLedger {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoLedger {
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
        get_by_pk(&self.client, &self.capacity, &self.table, dispatch_id, true)
            .await?
            .as_ref()
            .map(entry_of)
            .transpose()
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
        let result = self.capacity.wrote(
            self.client
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
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .set_return_consumed_capacity(self.capacity.mode())
                .send()
                .await,
        );
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
        self.capacity
            .wrote(
                request
                    .update_expression(expression)
                    .set_return_consumed_capacity(self.capacity.mode())
                    .send()
                    .await,
            )
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
            .expression_attribute_values(
                ":detail",
                s(truncate_utf8(failure.detail, LEDGER_DETAIL_LIMIT)),
            );
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
        conditional_update(
            self.capacity.wrote(
                request
                    .update_expression(expression)
                    .set_return_consumed_capacity(self.capacity.mode())
                    .send()
                    .await,
            ),
        )
        .map(drop)
    }

    async fn get(&self, dispatch_id: &str) -> Result<Option<LedgerEntry>, StoreError> {
        self.read(dispatch_id).await
    }
}
