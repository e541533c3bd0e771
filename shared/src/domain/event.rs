//! The canonical event: what every provider's delivery becomes and what the events queue carries
//! (docs/architecture.md, "The canonical event").

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::ids;
use super::reason::ReviewReason;

/// Where a fact sits in a call's life. Ranked facts (queued … ended) move a call forward;
/// the others enrich it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Queued,
    Initiated,
    Ringing,
    Answered,
    Ended,
    /// Post-call facts: recording, transcript, analysis, cost.
    Report,
    /// A requested business action (e.g. create an order, send a message).
    Action,
    /// Other known in-call facts (DTMF, playback, bridging, …).
    Progress,
    Unknown,
}

impl Kind {
    /// The lifecycle rank (docs/lifecycle.md); `None` for facts that do not move the call.
    pub fn rank(self) -> Option<u8> {
        match self {
            Kind::Queued => Some(1),
            Kind::Initiated => Some(2),
            Kind::Ringing => Some(3),
            Kind::Answered => Some(4),
            Kind::Ended => Some(5),
            Kind::Report | Kind::Action | Kind::Progress | Kind::Unknown => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Queued => "queued",
            Kind::Initiated => "initiated",
            Kind::Ringing => "ringing",
            Kind::Answered => "answered",
            Kind::Ended => "ended",
            Kind::Report => "report",
            Kind::Action => "action",
            Kind::Progress => "progress",
            Kind::Unknown => "unknown",
        }
    }
}

/// How a call ended (only on ended/final facts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Completed,
    NoAnswer,
    Busy,
    Failed,
    Canceled,
    Voicemail,
    Escalated,
    Rescheduled,
    /// The call was given up on: no final webhook came and its provider's API gave no answer
    /// (docs/lifecycle.md, "Calls that never finish").
    Unknown,
}

impl Outcome {
    /// Every outcome, in the order a person reads them.
    pub const ALL: [Outcome; 9] = [
        Outcome::Completed,
        Outcome::NoAnswer,
        Outcome::Busy,
        Outcome::Failed,
        Outcome::Canceled,
        Outcome::Voicemail,
        Outcome::Escalated,
        Outcome::Rescheduled,
        Outcome::Unknown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Completed => "completed",
            Outcome::NoAnswer => "no_answer",
            Outcome::Busy => "busy",
            Outcome::Failed => "failed",
            Outcome::Canceled => "canceled",
            Outcome::Voicemail => "voicemail",
            Outcome::Escalated => "escalated",
            Outcome::Rescheduled => "rescheduled",
            Outcome::Unknown => "unknown",
        }
    }
}

/// Where an event came from when it was not a provider's webhook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// The provider's API, asked by the stale pass because the final webhook never came.
    Backfill,
    /// The stale pass giving up on a call nobody could say the end of: its facts yield to
    /// any real event's.
    GaveUp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Inbound,
    Outbound,
}

impl Direction {
    /// Providers spell directions many ways (`incoming`, `outbound-api`, …).
    pub fn parse(s: &str) -> Option<Direction> {
        let s = s.to_ascii_lowercase();
        if s.starts_with("in") {
            Some(Direction::Inbound)
        } else if s.starts_with("out") {
            Some(Direction::Outbound)
        } else {
            None
        }
    }
}

/// Why an authentic event needs a person rather than the lifecycle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReviewNote {
    pub reason: ReviewReason,
    pub detail: String,
}

/// Facts a provider reports that the call record keeps. All optional; providers fill what they
/// have.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Facts {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answered_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_secs: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hangup_cause: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recording_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transcript: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub analysis: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost: Option<Value>,
    /// Provider-reported errors (e.g. Recho `body.errors`), kept on the record.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<Value>,
    /// A requested business action (kind `action`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<Value>,
    /// Caller-supplied metadata the provider echoes back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
}

impl Facts {
    pub fn is_empty(&self) -> bool {
        self == &Facts::default()
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// The canonical event: one provider fact in callhook's vocabulary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CanonicalEvent {
    /// `{provider}#{dedupe key}`; also the events table's pk.
    pub event_id: String,
    pub provider: String,
    /// The provider's own event type, as sent.
    #[serde(rename = "type")]
    pub event_type: String,
    pub kind: Kind,
    /// `{provider}#{call key}`; absent only when the body does not name a call.
    pub call_id: Option<String>,
    /// The provider's time for the fact, or the receipt time where the provider gives none.
    pub occurred_at: DateTime<Utc>,
    pub received_at: DateTime<Utc>,
    pub direction: Option<Direction>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub outcome: Option<Outcome>,
    /// True when this is the provider's terminal fact for the call: the call becomes final when
    /// it is applied.
    #[serde(default, rename = "final")]
    pub is_final: bool,
    /// Set only for events callhook made itself (`backfill`, `gave_up`); absent for webhooks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<Origin>,
    pub review: Option<ReviewNote>,
    #[serde(default, skip_serializing_if = "Facts::is_empty")]
    pub facts: Facts,
    /// Its provider checked nothing (RECHO_AUTH=none): anyone could have sent it.
    #[serde(default, skip_serializing_if = "is_false")]
    pub unauthenticated: bool,
    /// The provider payload. Left out of the stored envelope (the raw body is stored beside it)
    /// and of queue messages that would exceed the SQS size limit.
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub data: Value,
}

impl CanonicalEvent {
    /// A blank event for `provider`, to be filled by its normalizer; its id is
    /// [`ids::scoped_id`] of the dedupe key.
    pub fn new(provider: &str, key: &str, event_type: &str, received_at: DateTime<Utc>) -> Self {
        CanonicalEvent {
            event_id: ids::scoped_id(provider, key),
            provider: provider.to_owned(),
            event_type: event_type.to_owned(),
            kind: Kind::Unknown,
            call_id: None,
            occurred_at: received_at,
            received_at,
            direction: None,
            from: None,
            to: None,
            outcome: None,
            is_final: false,
            source: None,
            review: None,
            facts: Facts::default(),
            unauthenticated: false,
            data: Value::Null,
        }
    }

    /// The same event without its payload: what the events table keeps beside the raw body.
    pub fn envelope(&self) -> CanonicalEvent {
        // Field by field: cloning the event would copy `data` (tens of MB of parsed JSON for a
        // large body) only to drop it.
        let CanonicalEvent {
            event_id,
            provider,
            event_type,
            kind,
            call_id,
            occurred_at,
            received_at,
            direction,
            from,
            to,
            outcome,
            is_final,
            source,
            unauthenticated,
            review,
            facts,
            data: _,
        } = self;
        CanonicalEvent {
            event_id: event_id.clone(),
            provider: provider.clone(),
            event_type: event_type.clone(),
            kind: *kind,
            call_id: call_id.clone(),
            occurred_at: *occurred_at,
            received_at: *received_at,
            direction: *direction,
            from: from.clone(),
            to: to.clone(),
            outcome: *outcome,
            is_final: *is_final,
            source: *source,
            unauthenticated: *unauthenticated,
            review: review.clone(),
            facts: facts.clone(),
            data: Value::Null,
        }
    }
}
