//! Vapi's `endedReason` values and families → outcomes. A reason neither table covers is
//! not guessed.

use crate::domain::event::Outcome;

/// `endedReason` values with their own outcome (Vapi's "Call ended reasons" page). Checked
/// before [`ENDED_REASON_PATTERNS`].
pub const ENDED_REASONS: &[(&str, Outcome)] = &[
    ("customer-ended-call", Outcome::Completed),
    ("assistant-ended-call", Outcome::Completed),
    ("assistant-said-end-call-phrase", Outcome::Completed),
    (
        "assistant-ended-call-after-message-spoken",
        Outcome::Completed,
    ),
    ("assistant-ended-call-with-hangup-task", Outcome::Completed),
    ("silence-timed-out", Outcome::Completed),
    ("exceeded-max-duration", Outcome::Completed),
    ("call.in-progress.twilio-completed-call", Outcome::Completed),
    ("call.in-progress.sip-completed-call", Outcome::Completed),
    ("vonage-completed", Outcome::Completed),
    ("assistant-forwarded-call", Outcome::Escalated),
    ("call.ringing.hook-executed-transfer", Outcome::Escalated),
    ("call.ending.hook-executed-transfer", Outcome::Escalated),
    (
        "assistant-request-returned-forwarding-phone-number",
        Outcome::Escalated,
    ),
    // A transfer to a person that did not complete: the caller still wants one, so it is an
    // escalation (ticketing follows up), not a missed call.
    ("customer-ended-call-during-transfer", Outcome::Escalated),
    (
        "customer-ended-call-before-warm-transfer",
        Outcome::Escalated,
    ),
    (
        "customer-ended-call-after-warm-transfer-attempt",
        Outcome::Escalated,
    ),
    ("call.forwarding.operator-busy", Outcome::Escalated),
    ("call.forwarding.no-answer", Outcome::Escalated),
    ("voicemail", Outcome::Voicemail),
    ("customer-busy", Outcome::Busy),
    ("customer-did-not-answer", Outcome::NoAnswer),
    // "Phone rang but no answer … SIP 408/480".
    (
        "call.in-progress.error-providerfault-outbound-sip-408-request-timeout",
        Outcome::NoAnswer,
    ),
    (
        "call.in-progress.error-providerfault-outbound-sip-480-temporarily-unavailable",
        Outcome::NoAnswer,
    ),
    ("manually-canceled", Outcome::Canceled),
    ("scheduled-call-deleted", Outcome::Canceled),
    ("call-deleted", Outcome::Canceled),
    ("vonage-rejected", Outcome::Failed),
    ("twilio-reported-customer-misdialed", Outcome::Failed),
    ("phone-call-provider-closed-websocket", Outcome::Failed),
    ("worker-shutdown", Outcome::Failed),
    ("assistant-not-found", Outcome::Failed),
];

/// Where an [`ENDED_REASON_PATTERNS`] entry looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pattern {
    Prefix(&'static str),
    Contains(&'static str),
}

impl Pattern {
    fn matches(self, reason: &str) -> bool {
        match self {
            Pattern::Prefix(p) => reason.starts_with(p),
            Pattern::Contains(p) => reason.contains(p),
        }
    }
}

/// The families of `endedReason`, first match wins: failed transfers (escalated), then the
/// error prefixes Vapi documents (`call.start.error-`, `call.in-progress.error-vapifault-` and
/// `-providerfault-`, `pipeline-error-`, …) and any `-error-` or `-failed` (failed).
pub const ENDED_REASON_PATTERNS: &[(Pattern, Outcome)] = &[
    (Pattern::Contains("transfer-failed"), Outcome::Escalated),
    (Pattern::Contains("warm-transfer"), Outcome::Escalated),
    (Pattern::Prefix("call.start.error-"), Outcome::Failed),
    (Pattern::Prefix("call-start-error-"), Outcome::Failed),
    (Pattern::Prefix("call.in-progress.error-"), Outcome::Failed),
    (Pattern::Prefix("call.ringing.error-"), Outcome::Failed),
    (Pattern::Prefix("pipeline-error-"), Outcome::Failed),
    (Pattern::Prefix("assistant-request-"), Outcome::Failed),
    (Pattern::Contains("-error-"), Outcome::Failed),
    (Pattern::Contains("-failed"), Outcome::Failed),
];

/// The outcome of an `endedReason`; `None` for a reason neither table covers.
pub fn ended_reason_outcome(reason: &str) -> Option<Outcome> {
    ENDED_REASONS
        .iter()
        .find(|(r, _)| *r == reason)
        .map(|(_, outcome)| *outcome)
        .or_else(|| {
            ENDED_REASON_PATTERNS
                .iter()
                .find(|(p, _)| p.matches(reason))
                .map(|(_, outcome)| *outcome)
        })
}
