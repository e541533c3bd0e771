//! The dispatch queue's message: one dispatching effect of a call.

use serde::{Deserialize, Serialize};

use crate::domain::call::Effect;
use crate::domain::event::Outcome;
use crate::limits::SQS_MAX_DELAY_SECS;

/// What a dispatch announces; the `type` of the message and of the HTTP body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MessageType {
    #[serde(rename = "call.completed")]
    Completed,
    #[serde(rename = "call.updated")]
    Updated,
    #[serde(rename = "call.escalated")]
    Escalated,
    #[serde(rename = "call.action")]
    Action,
}

impl MessageType {
    pub fn as_str(self) -> &'static str {
        match self {
            MessageType::Completed => "call.completed",
            MessageType::Updated => "call.updated",
            MessageType::Escalated => "call.escalated",
            MessageType::Action => "call.action",
        }
    }
}

/// One message on the dispatch queue, sent by the lifecycle after a call changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DispatchMessage {
    pub dispatch_id: String,
    #[serde(rename = "type")]
    pub message_type: MessageType,
    pub call_id: String,
    pub event_id: String,
    pub outcome: Option<Outcome>,
}

impl DispatchMessage {
    /// The message for a dispatching effect; `None` for [`Effect::Review`].
    pub fn from_effect(effect: &Effect) -> Option<DispatchMessage> {
        let (message_type, call_id, event_id, dispatch_id, outcome) = match effect {
            Effect::Finalize {
                call_id,
                event_id,
                outcome,
                dispatch_id,
            } => (
                MessageType::Completed,
                call_id,
                event_id,
                dispatch_id,
                *outcome,
            ),
            Effect::Enrich {
                call_id,
                event_id,
                dispatch_id,
            } => (MessageType::Updated, call_id, event_id, dispatch_id, None),
            Effect::Escalate {
                call_id,
                event_id,
                dispatch_id,
            } => (
                MessageType::Escalated,
                call_id,
                event_id,
                dispatch_id,
                Some(Outcome::Escalated),
            ),
            Effect::Action {
                call_id,
                event_id,
                dispatch_id,
            } => (MessageType::Action, call_id, event_id, dispatch_id, None),
            Effect::Review { .. } => return None,
        };
        Some(DispatchMessage {
            dispatch_id: dispatch_id.clone(),
            message_type,
            call_id: call_id.clone(),
            event_id: event_id.clone(),
            outcome,
        })
    }

    /// The SQS `DelaySeconds` to send it with: the finalization waits `settle` seconds so that
    /// facts arriving just behind the terminal one are in the record it sends. An update while
    /// the finalization is still waiting (`settling`: the seconds it has left) waits until just
    /// after it, so a receiver never sees `call.updated` before `call.completed`. Others go at
    /// once.
    pub fn delay_secs(&self, settle: u32, settling: u32) -> u32 {
        let delay = match self.message_type {
            MessageType::Completed => settle,
            MessageType::Updated if settling > 0 => settling + 1,
            _ => 0,
        };
        delay.min(SQS_MAX_DELAY_SECS)
    }
}
