//! The call record: one call reconciled from its events. It is what dispatches carry as `call`
//! and what `callhook calls get --json` prints (docs/lifecycle.md).

use std::cmp::Ordering;
use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::applied::AppliedEvents;
use crate::domain::event::{Direction, Kind, Outcome};

/// Where a call is in its life: the lifecycle kinds that carry a rank.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallStatus {
    Queued,
    Initiated,
    Ringing,
    Answered,
    Ended,
}

impl CallStatus {
    /// Every status, in the order a call goes through them.
    pub const ALL: [CallStatus; 5] = [
        CallStatus::Queued,
        CallStatus::Initiated,
        CallStatus::Ringing,
        CallStatus::Answered,
        CallStatus::Ended,
    ];

    /// The status for a rank of [`Kind::rank`].
    pub fn from_rank(rank: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.rank() == rank)
    }

    /// Same numbers as [`Kind::rank`].
    pub fn rank(self) -> u8 {
        let kind = match self {
            CallStatus::Queued => Kind::Queued,
            CallStatus::Initiated => Kind::Initiated,
            CallStatus::Ringing => Kind::Ringing,
            CallStatus::Answered => Kind::Answered,
            CallStatus::Ended => Kind::Ended,
        };
        kind.rank().unwrap_or(0)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            CallStatus::Queued => "queued",
            CallStatus::Initiated => "initiated",
            CallStatus::Ringing => "ringing",
            CallStatus::Answered => "answered",
            CallStatus::Ended => "ended",
        }
    }
}

/// The event that set a field, and how strongly: compared with the next candidate for the same
/// field. `class` first (higher wins), then `at` and `event_id` (latest or earliest, per field).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub class: u8,
    pub at: DateTime<Utc>,
    pub event_id: String,
}

fn is_zero(n: &u8) -> bool {
    *n == 0
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Prefer {
    Latest,
    Earliest,
}

impl Source {
    /// The weakest source there is: whatever it set yields to any event's fact (a call given
    /// up on keeps its `unknown` end only until a real one comes).
    pub(crate) fn yielding(event_id: &str) -> Source {
        Source {
            class: 0,
            at: DateTime::<Utc>::MIN_UTC,
            event_id: event_id.to_owned(),
        }
    }

    pub(crate) fn is_yielding(&self) -> bool {
        self.class == 0 && self.at == DateTime::<Utc>::MIN_UTC
    }

    pub(crate) fn beats(&self, other: &Source, prefer: Prefer) -> bool {
        let when = (self.at, &self.event_id).cmp(&(other.at, &other.event_id));
        let when = match prefer {
            Prefer::Latest => when,
            Prefer::Earliest => when.reverse(),
        };
        self.class.cmp(&other.class).then(when) == Ordering::Greater
    }
}

/// A business action the provider asked for (kind `action`), kept on the record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionRequest {
    pub event_id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub occurred_at: DateTime<Utc>,
    pub action: Option<Value>,
}

/// Errors a provider reported on one event (e.g. Recho `body.errors`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorReport {
    pub event_id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub occurred_at: DateTime<Utc>,
    pub errors: Value,
}

/// One call, reconciled from its events (the calls table). This is the object the
/// dispatch body carries as `call` and `callhook calls get --json` prints.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CallRecord {
    /// `{provider}#{call key}`; the calls table's pk.
    pub call_id: String,
    pub provider: String,
    /// `null` until a lifecycle fact (queued … ended) has been applied.
    pub status: Option<CallStatus>,
    /// `status` as a number (1 … 5), 0 while `status` is null.
    pub rank: u8,
    pub direction: Option<Direction>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub started_at: Option<DateTime<Utc>>,
    pub ringing_at: Option<DateTime<Utc>>,
    pub answered_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    pub duration_secs: Option<u64>,
    pub outcome: Option<Outcome>,
    pub hangup_cause: Option<String>,
    pub recording_url: Option<String>,
    pub transcript: Option<Value>,
    pub analysis: Option<Value>,
    pub cost: Option<Value>,
    pub metadata: Option<Value>,
    /// Provider-reported errors, one entry per event, by (`occurred_at`, `event_id`).
    pub errors: Vec<ErrorReport>,
    /// Requested business actions, by (`occurred_at`, `event_id`).
    pub actions: Vec<ActionRequest>,
    /// Final only because callhook gave up on it: no final webhook came and the provider's API
    /// could not say how it ended (outcome `unknown`). A real end clears it.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub incomplete: bool,
    /// Number of distinct events applied (reports included) = `applied_event_ids.len()`.
    pub event_count: u64,
    pub applied_event_ids: AppliedEvents,
    /// The terminal fact the final state comes from; set means the call is final.
    pub final_event_id: Option<String>,
    /// When the store committed the finalization (the reducer never sets it).
    pub finalized_at: Option<DateTime<Utc>>,
    /// The latest `occurred_at` among applied events.
    pub last_occurred_at: Option<DateTime<Utc>>,
    /// When the first and the latest of the provider's deliveries applied were received: how
    /// long a call has been open, and how long it has been quiet (the stale pass).
    pub first_received_at: Option<DateTime<Utc>>,
    pub last_received_at: Option<DateTime<Utc>>,
    /// Optimistic-concurrency counter, incremented by the store (the reducer never touches it).
    pub version: u64,
    /// Field name → the event that set it (see [`Source`]); what makes the result
    /// order-independent.
    pub sources: BTreeMap<String, Source>,
    /// Some applied event came from a provider that checked nothing (RECHO_AUTH=none): the
    /// call never feeds the call-back route.
    #[serde(skip_serializing_if = "is_false")]
    pub unauthenticated: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl CallRecord {
    pub fn new(call_id: &str, provider: &str) -> Self {
        CallRecord {
            call_id: call_id.to_owned(),
            provider: provider.to_owned(),
            ..CallRecord::default()
        }
    }

    /// The provider's terminal fact has been applied.
    pub fn is_final(&self) -> bool {
        self.final_event_id.is_some()
    }

    /// The record without its bookkeeping: what a business system sees change.
    pub(crate) fn view(&self) -> CallRecord {
        CallRecord {
            event_count: 0,
            applied_event_ids: AppliedEvents::default(),
            final_event_id: None,
            finalized_at: None,
            last_occurred_at: None,
            first_received_at: None,
            last_received_at: None,
            version: 0,
            sources: BTreeMap::new(),
            ..self.clone()
        }
    }
}
