//! Why something needs a person: the reason a review item (or an event's review note) names.
//! Apart from the review items themselves because the canonical event carries one too.

use std::borrow::Cow;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why something needs a person. Stored and printed as its snake_case name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ReviewReason {
    /// The provider's mapping does not know the event type.
    UnknownType,
    /// An authentic body (or a queue message) that is not the documented shape.
    Malformed,
    /// An event that names no call.
    NoCallId,
    /// An event applied to a record of another call.
    CallMismatch,
    /// A canonical event sent to the review queue without a note of its own.
    Requested,
    /// A dispatch that a receiver refused or that ran out of attempts.
    DispatchFailed,
    /// A provider reported that one of its own deliveries failed (StateSet).
    ProviderDeliveryFailed,
    /// A message that waits for an answer callhook cannot give (Vapi's tool calls).
    ResponseRequired,
    /// A call given up on: no final webhook came and its provider's API gave no end.
    StaleCall,
    /// A dispatch to the call-back route of a call with unauthenticated events.
    Unauthenticated,
    /// `dlq:{queue}`: a message a queue's consumer gave up on.
    DeadLetter(String),
    /// Any other reason (kept as written, e.g. by an older version).
    Other(String),
}

impl ReviewReason {
    pub fn as_str(&self) -> Cow<'_, str> {
        Cow::Borrowed(match self {
            ReviewReason::UnknownType => "unknown_type",
            ReviewReason::Malformed => "malformed",
            ReviewReason::NoCallId => "no_call_id",
            ReviewReason::CallMismatch => "call_mismatch",
            ReviewReason::Requested => "requested",
            ReviewReason::DispatchFailed => "dispatch_failed",
            ReviewReason::ProviderDeliveryFailed => "provider_delivery_failed",
            ReviewReason::ResponseRequired => "response_required",
            ReviewReason::StaleCall => "stale_call",
            ReviewReason::Unauthenticated => "unauthenticated",
            ReviewReason::DeadLetter(queue) => return Cow::Owned(format!("dlq:{queue}")),
            ReviewReason::Other(reason) => reason,
        })
    }

    pub fn parse(s: &str) -> ReviewReason {
        match s {
            "unknown_type" => ReviewReason::UnknownType,
            "malformed" => ReviewReason::Malformed,
            "no_call_id" => ReviewReason::NoCallId,
            "call_mismatch" => ReviewReason::CallMismatch,
            "requested" => ReviewReason::Requested,
            "dispatch_failed" => ReviewReason::DispatchFailed,
            "provider_delivery_failed" => ReviewReason::ProviderDeliveryFailed,
            "response_required" => ReviewReason::ResponseRequired,
            "stale_call" => ReviewReason::StaleCall,
            "unauthenticated" => ReviewReason::Unauthenticated,
            other => match other.strip_prefix("dlq:") {
                Some(queue) => ReviewReason::DeadLetter(queue.to_owned()),
                None => ReviewReason::Other(other.to_owned()),
            },
        }
    }

    /// The queue a `dlq:{queue}` reason names.
    pub fn dead_letter_queue(&self) -> Option<&str> {
        match self {
            ReviewReason::DeadLetter(queue) => Some(queue),
            _ => None,
        }
    }
}

impl From<&str> for ReviewReason {
    fn from(s: &str) -> Self {
        ReviewReason::parse(s)
    }
}

impl From<&ReviewReason> for ReviewReason {
    fn from(reason: &ReviewReason) -> Self {
        reason.clone()
    }
}

impl fmt::Display for ReviewReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.as_str())
    }
}

impl PartialEq<str> for ReviewReason {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for ReviewReason {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl Serialize for ReviewReason {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.as_str())
    }
}

impl<'de> Deserialize<'de> for ReviewReason {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Cow::<'de, str>::deserialize(deserializer).map(|s| ReviewReason::parse(&s))
    }
}
