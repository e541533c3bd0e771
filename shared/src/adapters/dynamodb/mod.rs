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
pub use events::{DynamoEventStore, pack_request, unpack_request};
pub use ledger::DynamoLedger;
pub use reader::{DynamoEventReader, PENDING_INDEX};
pub use review::{DEFAULT_RETENTION_DAYS, DynamoReviewStore};

use std::collections::HashMap;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::update_item::{UpdateItemError, UpdateItemOutput};
use aws_sdk_dynamodb::types::AttributeValue;

use crate::ports::StoreError;

pub(crate) fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

pub(crate) fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// The item's `pk`, or "" when it has none (only for naming a corrupt item in an error).
pub(crate) fn pk_of(item: &HashMap<String, AttributeValue>) -> String {
    item.get("pk")
        .and_then(|v| v.as_s().ok())
        .cloned()
        .unwrap_or_default()
}

/// Any SDK failure is "unavailable" to the caller, which answers 503 so the provider retries;
/// the text keeps the error's kind for logs and never includes request data.
pub(crate) fn unavailable<E: std::error::Error>(op: &str, err: &SdkError<E>) -> StoreError {
    let detail = match err {
        SdkError::ServiceError(e) => format!("{op}: {}", e.err()),
        SdkError::TimeoutError(_) => format!("{op}: timed out"),
        SdkError::DispatchFailure(_) => format!("{op}: could not connect"),
        other => format!("{op}: {other}"),
    };
    StoreError::Unavailable(detail)
}

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
