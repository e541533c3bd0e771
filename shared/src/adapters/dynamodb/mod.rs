//! The DynamoDB adapters, one table each, and the small pieces they share: attribute values, an
//! item's key, and how an SDK failure is reported.

mod calls;
mod capacity;
mod events;
mod ledger;
mod reader;
mod review;

pub use calls::{DynamoCallStore, OPEN_INDEX};
pub use capacity::{Capacity, Units, item_size, write_units};
pub use events::{DynamoEventStore, unpack_request};
pub use ledger::DynamoLedger;
pub use reader::{DynamoEventReader, PENDING_INDEX};
pub use review::{DEFAULT_RETENTION_DAYS, DynamoReviewStore};

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::scan::builders::ScanFluentBuilder;
use aws_sdk_dynamodb::operation::update_item::{UpdateItemError, UpdateItemOutput};
use aws_sdk_dynamodb::types::AttributeValue;

use crate::ports::StoreError;

pub(crate) fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

pub(crate) fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// An item as the SDK gives it.
pub(crate) type Item = HashMap<String, AttributeValue>;

/// One item by its `pk` (a consistent read, or half the price when `consistent` is false), its
/// capacity counted.
pub(crate) async fn get_by_pk(
    client: &Client,
    capacity: &Capacity,
    table: &str,
    pk: &str,
    consistent: bool,
) -> Result<Option<Item>, StoreError> {
    let out = capacity
        .read(
            client
                .get_item()
                .table_name(table)
                .key("pk", s(pk))
                .consistent_read(consistent)
                .set_return_consumed_capacity(capacity.mode())
                .send()
                .await,
        )
        .map_err(|e| unavailable("GetItem", &e))?;
    Ok(out.item().cloned())
}

/// Every page of the scan `scan` builds (its exclusive start key is set here), each item given
/// to `each`, capacity counted. For operators' listings: a scan reads the whole table.
pub(crate) async fn scan_each(
    capacity: &Capacity,
    scan: impl Fn() -> ScanFluentBuilder,
    mut each: impl FnMut(&Item) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let mut start = None;
    loop {
        let page = capacity
            .read(
                scan()
                    .set_exclusive_start_key(start)
                    .set_return_consumed_capacity(capacity.mode())
                    .send()
                    .await,
            )
            .map_err(|e| unavailable("Scan", &e))?;
        for item in page.items() {
            each(item)?;
        }
        start = page.last_evaluated_key().cloned();
        if start.is_none() {
            return Ok(());
        }
    }
}

/// The item's `pk`, or "" when it has none (only for naming a corrupt item in an error).
pub(crate) fn pk_of(item: &HashMap<String, AttributeValue>) -> String {
    item.get("pk")
        .and_then(|v| v.as_s().ok())
        .cloned()
        .unwrap_or_default()
}

pub(crate) use crate::adapters::aws::unavailable;

/// A conditional `UpdateItem`'s result: `true` when it applied, `false` when its condition did
/// not hold (which each caller reads as "nothing to do"), any other failure unavailable.
pub(crate) fn conditional_update(
    result: Result<UpdateItemOutput, SdkError<UpdateItemError>>,
) -> Result<bool, StoreError> {
    match result {
        Ok(_) => Ok(true),
        Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => {
            Ok(false)
        }
        Err(err) => Err(unavailable("UpdateItem", &err)),
    }
}
