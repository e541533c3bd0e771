//! What applying an event asks the rest of the system to do, and the deterministic dispatch ids
//! that make each effect happen once.

use serde::{Deserialize, Serialize};

use crate::domain::event::Outcome;
use crate::domain::review::ReviewReason;

/// What applying an event asks the rest of the system to do. Every dispatch id is deterministic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "effect", rename_all = "snake_case")]
pub enum Effect {
    /// The call just became final: dispatch `call.completed` (routed by outcome, docs/dispatch.md).
    /// Emitted exactly once per call. `outcome` is the outcome when the terminal fact was
    /// applied; the dispatch reads the record (and its outcome) again when it is sent.
    Finalize {
        call_id: String,
        event_id: String,
        outcome: Option<Outcome>,
        dispatch_id: String,
    },
    /// A fact changed an already final call: dispatch `call.updated` to the CRM.
    Enrich {
        call_id: String,
        event_id: String,
        dispatch_id: String,
    },
    /// An escalation reached a call that was already final without being escalated: open the
    /// ticket the finalization did not. At most once per call.
    Escalate {
        call_id: String,
        event_id: String,
        dispatch_id: String,
    },
    /// A requested business action: ticketing. Once per action event.
    Action {
        call_id: String,
        event_id: String,
        dispatch_id: String,
    },
    /// The event cannot be applied to a call and needs a person.
    Review {
        event_id: String,
        reason: ReviewReason,
    },
}

impl Effect {
    pub fn dispatch_id(&self) -> Option<&str> {
        match self {
            Effect::Finalize { dispatch_id, .. }
            | Effect::Enrich { dispatch_id, .. }
            | Effect::Escalate { dispatch_id, .. }
            | Effect::Action { dispatch_id, .. } => Some(dispatch_id),
            Effect::Review { .. } => None,
        }
    }

    /// The `type` of the dispatched message.
    pub fn message_type(&self) -> Option<&'static str> {
        match self {
            Effect::Finalize { .. } => Some("call.completed"),
            Effect::Enrich { .. } => Some("call.updated"),
            Effect::Escalate { .. } => Some("call.escalated"),
            Effect::Action { .. } => Some("call.action"),
            Effect::Review { .. } => None,
        }
    }
}

/// `{call_id}#completed`: the one finalization dispatch of a call.
pub fn finalize_dispatch_id(call_id: &str) -> String {
    format!("{call_id}#completed")
}

/// `{call_id}#escalated`: the one escalation ticket of a call. A dispatcher that routes an
/// escalated finalization to ticketing should record that send under this id too, so a late
/// [`Effect::Escalate`] racing the settle window cannot open a second ticket.
pub fn escalation_dispatch_id(call_id: &str) -> String {
    format!("{call_id}#escalated")
}

/// `{call_id}#updated#{event_id}`: the `call.updated` caused by one late event.
pub fn update_dispatch_id(call_id: &str, event_id: &str) -> String {
    format!("{call_id}#updated#{event_id}")
}

/// `{call_id}#action#{event_id}`: the ticket for one requested action.
pub fn action_dispatch_id(call_id: &str, event_id: &str) -> String {
    format!("{call_id}#action#{event_id}")
}
