//! The lifecycle reducer (DESIGN §7): folds one call's canonical events, delivered at least once
//! and in any order, into one [`CallRecord`], and says which business effects each event causes.
//! Pure: no I/O, no clock. The store loads the record, calls [`apply`], and writes the result
//! together with the event id in one transaction; the lifecycle function turns [`Effect`]s into
//! messages.
//!
//! # Rules
//!
//! The record is a function of the *set* of applied events: every field is chosen by a total
//! order over the events that offer a value for it, so any permutation (and any duplication) of
//! the same events gives the same record. The choice for each field is kept in
//! [`CallRecord::sources`] so the next event can be compared with it.
//!
//! - **Status / rank**: the highest rank seen (queued 1 < initiated 2 < ringing 3 < answered 4 <
//!   ended 5); a call never moves down. A terminal fact (`final`) counts as `ended` whatever its
//!   kind. Report, action and progress facts do not move the call; a record created by one has
//!   `status: null`, `rank: 0`.
//! - **Same rank, later fact wins**: for the fields a lifecycle fact carries (ringing, answered
//!   and ended times, hangup cause, outcome, reported duration), the fact with the latest
//!   `occurred_at` wins; ties break by the greater `event_id`. Terminal facts outrank non-terminal
//!   ones for `ended_at`, `hangup_cause`, `outcome` and `duration_secs`.
//! - **Parties** (`direction`, `from`, `to`): the earliest event that names them (ties: the
//!   smaller `event_id`). **metadata**: the latest.
//! - **started_at**: the earliest start time a provider reported; when none did, the
//!   `occurred_at` of the earliest lifecycle fact (queued … ended).
//! - **ringing_at**: the latest `ringing` fact. **answered_at**: the latest event that reports an
//!   answer time or is an `answered` fact. **ended_at**: a reported end time (terminal fact
//!   first), else the `occurred_at` of the terminal fact, else of the latest `ended` fact.
//! - **duration_secs**: the provider's (terminal fact first, then latest); otherwise
//!   `ended_at - answered_at` (never negative), `0` when the call ended unanswered, `null` until
//!   it ends.
//! - **Outcome**: the terminal fact's outcome; a terminal fact without one (e.g. Mirai Minds
//!   `call.lifecycle-ended`) leaves it to the latest outcome-bearing fact, so after
//!   `call.rescheduled` the next attempt's result is the call's. **Escalation is sticky**: once any
//!   fact says `escalated` (StateSet `voice.call.escalated`, before or after `completed`), the
//!   outcome is `escalated`. Before the call is final, `outcome` shows the latest known one.
//! - **Enrichment** (recording URL, transcript, analysis, cost): latest fact wins. Enrichment
//!   that arrives *before* finalization is folded into the record silently: the finalization
//!   dispatch reads the record when it is sent (DESIGN §8), so it carries it. Provider errors and
//!   requested actions accumulate, ordered by (`occurred_at`, `event_id`).
//! - **Finalization**: the first terminal fact applied emits [`Effect::Finalize`]; the record's
//!   `final_event_id` is then the winning terminal fact (latest), and later terminal facts never
//!   finalize again. `finalized_at` and `version` belong to the store; the reducer never sets them.
//! - **After finalization**: an event that changes what the record shows (anything but the
//!   bookkeeping fields `applied_event_ids`, `event_count`, `last_occurred_at`, `sources`,
//!   `final_event_id`, `finalized_at`, `version`) emits [`Effect::Enrich`] (`call.updated`); one
//!   that changes nothing visible emits nothing. An escalation that reaches an already final,
//!   not yet escalated call also emits [`Effect::Escalate`], once per call.
//! - **Actions**: each `action` fact emits [`Effect::Action`] once (duplicates are dropped
//!   before). An action fact whose outcome is `escalated` is an escalation, not a separate
//!   action.
//! - **Not applied**: an event with `review` set or kind `unknown` leaves the record untouched
//!   and emits [`Effect::Review`]; so does an event for another call (`call_mismatch`) and one
//!   without a call id (`no_call_id`), except a `progress` fact without a call, which is dropped
//!   silently (nothing on a call depends on it). Such events are not counted.
//! - **Duplicates**: an event whose id is in `applied_event_ids` changes nothing and emits
//!   nothing. `event_count` is the number of distinct applied events, reports included.
//!
//! Dispatch ids are deterministic ([`finalize_dispatch_id`] and friends), so a redelivered event,
//! a retried batch or a replay never creates a second dispatch.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::model::{CanonicalEvent, Direction, Kind, Outcome};

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
    /// The status for a rank of [`Kind::rank`].
    pub fn from_rank(rank: u8) -> Option<Self> {
        [
            CallStatus::Queued,
            CallStatus::Initiated,
            CallStatus::Ringing,
            CallStatus::Answered,
            CallStatus::Ended,
        ]
        .into_iter()
        .find(|s| s.rank() == rank)
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
enum Prefer {
    Latest,
    Earliest,
}

impl Source {
    fn beats(&self, other: &Source, prefer: Prefer) -> bool {
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

/// One call, reconciled from its events (DESIGN §6 calls table). This is the object the
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
    /// Number of distinct events applied (reports included) = `applied_event_ids.len()`.
    pub event_count: u64,
    pub applied_event_ids: BTreeSet<String>,
    /// The terminal fact the final state comes from; set means the call is final.
    pub final_event_id: Option<String>,
    /// When the store committed the finalization (the reducer never sets it).
    pub finalized_at: Option<DateTime<Utc>>,
    /// The latest `occurred_at` among applied events.
    pub last_occurred_at: Option<DateTime<Utc>>,
    /// Optimistic-concurrency counter, incremented by the store (the reducer never touches it).
    pub version: u64,
    /// Field name → the event that set it (see [`Source`]); what makes the result
    /// order-independent.
    pub sources: BTreeMap<String, Source>,
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
    fn view(&self) -> CallRecord {
        CallRecord {
            event_count: 0,
            applied_event_ids: BTreeSet::new(),
            final_event_id: None,
            finalized_at: None,
            last_occurred_at: None,
            version: 0,
            sources: BTreeMap::new(),
            ..self.clone()
        }
    }
}

/// What applying an event asks the rest of the system to do. Every dispatch id is deterministic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "effect", rename_all = "snake_case")]
pub enum Effect {
    /// The call just became final: dispatch `call.completed` (routed by outcome, DESIGN §8).
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
    Review { event_id: String, reason: String },
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

/// Review reasons the reducer itself gives (besides the event's own `review.reason`).
pub const REASON_UNKNOWN_TYPE: &str = "unknown_type";
pub const REASON_NO_CALL_ID: &str = "no_call_id";
pub const REASON_CALL_MISMATCH: &str = "call_mismatch";

/// Applies one event to its call's record (`None` when the store has none yet).
///
/// Returns the record to store and the effects to emit. When the event is not applied
/// (duplicate, review, no call, another call) the record comes back exactly as given, `None`
/// included, so `returned == given` means there is nothing to write.
pub fn apply(
    record: Option<CallRecord>,
    event: &CanonicalEvent,
) -> (Option<CallRecord>, Vec<Effect>) {
    let review = |reason: &str| Effect::Review {
        event_id: event.event_id.clone(),
        reason: reason.to_owned(),
    };
    if let Some(note) = &event.review {
        return (record, vec![review(&note.reason)]);
    }
    if event.kind == Kind::Unknown {
        return (record, vec![review(REASON_UNKNOWN_TYPE)]);
    }
    let Some(call_id) = event.call_id.as_deref() else {
        if event.kind == Kind::Progress {
            return (record, Vec::new());
        }
        return (record, vec![review(REASON_NO_CALL_ID)]);
    };
    if record.as_ref().is_some_and(|r| r.call_id != call_id) {
        return (record, vec![review(REASON_CALL_MISMATCH)]);
    }
    let mut record = record.unwrap_or_else(|| CallRecord::new(call_id, &event.provider));
    if record.applied_event_ids.contains(&event.event_id) {
        return (Some(record), Vec::new());
    }

    let was_final = record.is_final();
    let was_escalated = record.outcome == Some(Outcome::Escalated);
    let before = was_final.then(|| record.view());

    fold(&mut record, event);
    derive(&mut record);

    let mut effects = Vec::new();
    let event_id = event.event_id.clone();
    if event.is_final && !was_final {
        effects.push(Effect::Finalize {
            call_id: call_id.to_owned(),
            event_id: event_id.clone(),
            outcome: record.outcome,
            dispatch_id: finalize_dispatch_id(call_id),
        });
    }
    if was_final && !was_escalated && record.outcome == Some(Outcome::Escalated) {
        effects.push(Effect::Escalate {
            call_id: call_id.to_owned(),
            event_id: event_id.clone(),
            dispatch_id: escalation_dispatch_id(call_id),
        });
    }
    if is_action(event) {
        effects.push(Effect::Action {
            call_id: call_id.to_owned(),
            event_id: event_id.clone(),
            dispatch_id: action_dispatch_id(call_id, &event_id),
        });
    }
    if before.is_some_and(|before| before != record.view()) {
        effects.push(Effect::Enrich {
            call_id: call_id.to_owned(),
            dispatch_id: update_dispatch_id(call_id, &event_id),
            event_id,
        });
    }
    (Some(record), effects)
}

/// Folds [`apply`] over `events` from no record: what the store would hold after processing
/// them in this order, and every effect emitted on the way.
pub fn replay(events: &[CanonicalEvent]) -> (Option<CallRecord>, Vec<Effect>) {
    let mut record = None;
    let mut effects = Vec::new();
    for event in events {
        let (next, mut emitted) = apply(record, event);
        record = next;
        effects.append(&mut emitted);
    }
    (record, effects)
}

fn is_action(event: &CanonicalEvent) -> bool {
    event.kind == Kind::Action && event.outcome != Some(Outcome::Escalated)
}

/// Offers `value` for the field `name`; it replaces the current one when `source` beats the
/// source that set it (or nothing did).
fn offer<T>(
    sources: &mut BTreeMap<String, Source>,
    name: &str,
    slot: &mut Option<T>,
    value: Option<T>,
    source: Source,
    prefer: Prefer,
) {
    let Some(value) = value else { return };
    if sources
        .get(name)
        .is_none_or(|current| source.beats(current, prefer))
    {
        sources.insert(name.to_owned(), source);
        *slot = Some(value);
    }
}

fn present(value: &Option<Value>) -> Option<Value> {
    value.clone().filter(|v| !v.is_null())
}

fn fold(r: &mut CallRecord, e: &CanonicalEvent) {
    use Prefer::{Earliest, Latest};
    let at = e.occurred_at;
    let src = |class: u8, at: DateTime<Utc>| Source {
        class,
        at,
        event_id: e.event_id.clone(),
    };
    let fin = u8::from(e.is_final);
    let facts = &e.facts;

    r.applied_event_ids.insert(e.event_id.clone());
    r.event_count = r.applied_event_ids.len() as u64;
    r.last_occurred_at = r.last_occurred_at.max(Some(at));

    let rank = if e.is_final {
        Kind::Ended.rank()
    } else {
        e.kind.rank()
    };
    if let Some(rank) = rank.filter(|rank| *rank > r.rank) {
        r.rank = rank;
        r.status = CallStatus::from_rank(rank);
    }

    let s = &mut r.sources;
    offer(
        s,
        "direction",
        &mut r.direction,
        e.direction,
        src(0, at),
        Earliest,
    );
    offer(s, "from", &mut r.from, e.from.clone(), src(0, at), Earliest);
    offer(s, "to", &mut r.to, e.to.clone(), src(0, at), Earliest);

    // started_at: reported start times (class 1) before lifecycle facts' own times (class 0);
    // the earliest value wins, so the source's `at` is the value itself.
    let started = match facts.started_at {
        Some(t) => Some((1, t)),
        None => rank.map(|_| (0, at)),
    };
    if let Some((class, t)) = started {
        offer(
            s,
            "started_at",
            &mut r.started_at,
            Some(t),
            src(class, t),
            Earliest,
        );
    }

    let ringing = (e.kind == Kind::Ringing).then_some(at);
    offer(
        s,
        "ringing_at",
        &mut r.ringing_at,
        ringing,
        src(0, at),
        Latest,
    );

    let answered = facts
        .answered_at
        .or((e.kind == Kind::Answered).then_some(at));
    offer(
        s,
        "answered_at",
        &mut r.answered_at,
        answered,
        src(0, at),
        Latest,
    );

    // ended_at classes: reported by the terminal fact 3, reported elsewhere 2, the terminal
    // fact's own time 1, an `ended` fact's own time 0.
    let ended = match facts.ended_at {
        Some(t) => Some((2 + fin, t)),
        None => (e.kind == Kind::Ended || e.is_final).then_some((fin, at)),
    };
    if let Some((class, t)) = ended {
        offer(
            s,
            "ended_at",
            &mut r.ended_at,
            Some(t),
            src(class, at),
            Latest,
        );
    }

    offer(
        s,
        "duration_secs",
        &mut r.duration_secs,
        facts.duration_secs,
        src(fin, at),
        Latest,
    );
    offer(
        s,
        "hangup_cause",
        &mut r.hangup_cause,
        facts.hangup_cause.clone(),
        src(fin, at),
        Latest,
    );

    match e.outcome {
        Some(Outcome::Escalated) => {
            let mut escalated = None;
            offer(
                s,
                "escalated",
                &mut escalated,
                Some(()),
                src(0, at),
                Earliest,
            );
            r.outcome = Some(Outcome::Escalated);
        }
        Some(outcome) => {
            // The base outcome's source is tracked even under an escalation, so the sources
            // map is the same in every order; escalation stays sticky.
            let mut base = None;
            offer(s, "outcome", &mut base, Some(outcome), src(fin, at), Latest);
            if r.outcome != Some(Outcome::Escalated) && base.is_some() {
                r.outcome = base;
            }
        }
        None => {}
    }

    if let Some(final_id) = e.is_final.then(|| e.event_id.clone()) {
        offer(
            s,
            "final",
            &mut r.final_event_id,
            Some(final_id),
            src(0, at),
            Latest,
        );
    }

    let recording = facts.recording_url.clone();
    offer(
        s,
        "recording_url",
        &mut r.recording_url,
        recording,
        src(0, at),
        Latest,
    );
    offer(
        s,
        "transcript",
        &mut r.transcript,
        present(&facts.transcript),
        src(0, at),
        Latest,
    );
    offer(
        s,
        "analysis",
        &mut r.analysis,
        present(&facts.analysis),
        src(0, at),
        Latest,
    );
    offer(
        s,
        "cost",
        &mut r.cost,
        present(&facts.cost),
        src(0, at),
        Latest,
    );
    offer(
        s,
        "metadata",
        &mut r.metadata,
        present(&facts.metadata),
        src(0, at),
        Latest,
    );

    if let Some(errors) = present(&facts.errors) {
        r.errors.push(ErrorReport {
            event_id: e.event_id.clone(),
            event_type: e.event_type.clone(),
            occurred_at: at,
            errors,
        });
        r.errors
            .sort_by(|a, b| (a.occurred_at, &a.event_id).cmp(&(b.occurred_at, &b.event_id)));
    }
    if is_action(e) {
        r.actions.push(ActionRequest {
            event_id: e.event_id.clone(),
            event_type: e.event_type.clone(),
            occurred_at: at,
            action: present(&facts.action),
        });
        r.actions
            .sort_by(|a, b| (a.occurred_at, &a.event_id).cmp(&(b.occurred_at, &b.event_id)));
    }
}

/// Fields computed from the others.
fn derive(r: &mut CallRecord) {
    if !r.sources.contains_key("duration_secs") {
        r.duration_secs = r.ended_at.map(|ended| match r.answered_at {
            Some(answered) => u64::try_from((ended - answered).num_seconds()).unwrap_or(0),
            None => 0,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Facts, ReviewNote};
    use chrono::TimeZone;
    use serde_json::json;

    const CALL: &str = "stateset#CA1234567890abcdef1234567890abcdef";
    const T0: i64 = 1_778_784_000; // 2026-05-14T18:40:00Z

    fn t(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(T0 + secs, 0).unwrap()
    }

    /// A hand-built canonical event of `CALL`'s provider, `secs` after T0.
    fn ev(key: &str, event_type: &str, kind: Kind, secs: i64) -> CanonicalEvent {
        let provider = CALL.split('#').next().unwrap();
        let mut e = CanonicalEvent::new(provider, key, event_type, t(secs + 1));
        e.kind = kind;
        e.call_id = Some(CALL.to_owned());
        e.occurred_at = t(secs);
        e
    }

    /// Builder-style tweaks for hand-built events.
    trait With: Sized {
        fn with(self, f: impl FnOnce(&mut CanonicalEvent)) -> Self;
        fn facts(self, f: impl FnOnce(&mut Facts)) -> Self {
            self.with(|e| f(&mut e.facts))
        }
        fn terminal(self, outcome: Option<Outcome>) -> Self {
            self.with(|e| {
                e.is_final = true;
                e.outcome = outcome;
            })
        }
        fn outcome(self, outcome: Outcome) -> Self {
            self.with(|e| e.outcome = Some(outcome))
        }
    }

    impl With for CanonicalEvent {
        fn with(mut self, f: impl FnOnce(&mut CanonicalEvent)) -> Self {
            f(&mut self);
            self
        }
    }

    // StateSet Voice shapes (seed: stateset-voice-event-catalog.txt), normalized by hand.

    fn ss_started(secs: i64) -> CanonicalEvent {
        ev("evt_started", "voice.call.started", Kind::Initiated, secs)
            .with(|e| {
                e.direction = Some(Direction::Inbound);
                e.from = Some("+15555555678".into());
                e.to = Some("+15555551234".into());
            })
            .facts(|f| f.started_at = Some(t(secs)))
    }

    fn ss_completed(key: &str, secs: i64, escalated: bool) -> CanonicalEvent {
        let outcome = if escalated {
            Outcome::Escalated
        } else {
            Outcome::Completed
        };
        ev(key, "voice.call.completed", Kind::Ended, secs)
            .terminal(Some(outcome))
            .with(|e| {
                e.direction = Some(Direction::Inbound);
                e.from = Some("+15555555678".into());
                e.to = Some("+15555551234".into());
            })
            .facts(|f| {
                f.duration_secs = Some(142);
                f.analysis = Some(json!({"summary": "Customer asked about order status."}));
            })
    }

    fn ss_escalated(key: &str, secs: i64) -> CanonicalEvent {
        ev(key, "voice.call.escalated", Kind::Ended, secs)
            .outcome(Outcome::Escalated)
            .with(|e| e.from = Some("+15555555678".into()))
    }

    fn ss_evaluated(key: &str, secs: i64) -> CanonicalEvent {
        ev(key, "voice.session.evaluated", Kind::Report, secs)
            .facts(|f| f.analysis = Some(json!({"score": 0.92, "tags": ["resolved"]})))
    }

    fn ss_unknown(key: &str, secs: i64) -> CanonicalEvent {
        ev(key, "voice.call.transferred_v2", Kind::Unknown, secs).with(|e| {
            e.review = Some(ReviewNote {
                reason: "unknown_type".into(),
                detail: "no mapping".into(),
            })
        })
    }

    fn answered(key: &str, secs: i64) -> CanonicalEvent {
        ev(key, "call.answered", Kind::Answered, secs)
    }

    fn hangup(key: &str, secs: i64, outcome: Outcome) -> CanonicalEvent {
        ev(key, "call.hangup", Kind::Ended, secs).terminal(Some(outcome))
    }

    fn report(key: &str, secs: i64, url: &str) -> CanonicalEvent {
        ev(key, "call.recording.saved", Kind::Report, secs)
            .facts(|f| f.recording_url = Some(url.into()))
    }

    fn action(key: &str, secs: i64) -> CanonicalEvent {
        ev(key, "create_order", Kind::Action, secs)
            .facts(|f| f.action = Some(json!({"order": {"sku": "A1"}})))
    }

    fn finalizes(effects: &[Effect]) -> usize {
        effects
            .iter()
            .filter(|e| matches!(e, Effect::Finalize { .. }))
            .count()
    }

    fn count<F: Fn(&Effect) -> bool>(effects: &[Effect], f: F) -> usize {
        effects.iter().filter(|e| f(e)).count()
    }

    fn record(events: &[CanonicalEvent]) -> CallRecord {
        replay(events).0.expect("a record")
    }

    /// Every permutation of `events` (small sets only).
    fn permutations(events: &[CanonicalEvent]) -> Vec<Vec<CanonicalEvent>> {
        if events.len() <= 1 {
            return vec![events.to_vec()];
        }
        let mut out = Vec::new();
        for i in 0..events.len() {
            let mut rest = events.to_vec();
            let first = rest.remove(i);
            for mut p in permutations(&rest) {
                p.insert(0, first.clone());
                out.push(p);
            }
        }
        out
    }

    fn assert_order_independent(events: &[CanonicalEvent]) -> CallRecord {
        let reference = record(events);
        for p in permutations(events) {
            let (r, fx) = replay(&p);
            assert_eq!(r.as_ref(), Some(&reference), "order {:?}", ids(&p));
            assert_eq!(finalizes(&fx), usize::from(reference.is_final()));
        }
        reference
    }

    fn ids(events: &[CanonicalEvent]) -> Vec<&str> {
        events.iter().map(|e| e.event_id.as_str()).collect()
    }

    // ---- rules ----

    #[test]
    fn first_event_creates_the_record_with_its_facts() {
        let (r, fx) = apply(None, &ss_started(0));
        let r = r.unwrap();
        assert_eq!(r.call_id, CALL);
        assert_eq!(r.provider, "stateset");
        assert_eq!(r.status, Some(CallStatus::Initiated));
        assert_eq!(r.rank, 2);
        assert_eq!(r.direction, Some(Direction::Inbound));
        assert_eq!(r.from.as_deref(), Some("+15555555678"));
        assert_eq!(r.started_at, Some(t(0)));
        assert_eq!(r.event_count, 1);
        assert_eq!(r.last_occurred_at, Some(t(0)));
        assert!(fx.is_empty());
        assert!(!r.is_final());
    }

    #[test]
    fn rank_never_moves_down_but_the_late_fact_still_fills_its_field() {
        let ringing = ev("ring", "call.ringing", Kind::Ringing, 5);
        let r = record(&[answered("ans", 10), ringing]);
        assert_eq!(r.status, Some(CallStatus::Answered));
        assert_eq!(r.rank, 4);
        assert_eq!(r.ringing_at, Some(t(5)));
        assert_eq!(r.answered_at, Some(t(10)));
    }

    #[test]
    fn report_only_record_has_no_status() {
        let r = record(&[report("rec", 50, "https://r/1.mp3")]);
        assert_eq!(r.status, None);
        assert_eq!(r.rank, 0);
        assert_eq!(r.recording_url.as_deref(), Some("https://r/1.mp3"));
    }

    #[test]
    fn later_fact_of_the_same_rank_wins_by_occurred_at() {
        let a =
            hangup("h1", 60, Outcome::Busy).facts(|f| f.hangup_cause = Some("user_busy".into()));
        let b = hangup("h0", 70, Outcome::Completed)
            .facts(|f| f.hangup_cause = Some("normal_clearing".into()));
        for events in [[a.clone(), b.clone()], [b.clone(), a.clone()]] {
            let r = record(&events);
            assert_eq!(r.outcome, Some(Outcome::Completed));
            assert_eq!(r.hangup_cause.as_deref(), Some("normal_clearing"));
            assert_eq!(r.ended_at, Some(t(70)));
            assert_eq!(r.final_event_id.as_deref(), Some("stateset#h0"));
        }
    }

    #[test]
    fn same_rank_same_time_ties_break_by_event_id() {
        let a = hangup("aaa", 60, Outcome::Busy);
        let b = hangup("bbb", 60, Outcome::NoAnswer);
        let r = assert_order_independent(&[a, b]);
        assert_eq!(r.outcome, Some(Outcome::NoAnswer));
        assert_eq!(r.final_event_id.as_deref(), Some("stateset#bbb"));
    }

    #[test]
    fn parties_come_from_the_earliest_event_that_names_them() {
        let early = answered("a", 10).with(|e| e.from = Some("+1early".into()));
        let late = hangup("h", 60, Outcome::Completed).with(|e| {
            e.from = Some("+1late".into());
            e.to = Some("+1to".into());
            e.direction = Some(Direction::Outbound);
        });
        let r = assert_order_independent(&[late, early]);
        assert_eq!(r.from.as_deref(), Some("+1early"));
        assert_eq!(r.to.as_deref(), Some("+1to"));
        assert_eq!(r.direction, Some(Direction::Outbound));
    }

    #[test]
    fn duplicate_event_changes_nothing_and_emits_nothing() {
        let (r, _) = replay(&[ss_started(0), ss_completed("evt_done", 150, false)]);
        let (again, fx) = apply(r.clone(), &ss_completed("evt_done", 150, false));
        assert_eq!(again, r);
        assert!(fx.is_empty());
        let (again, fx) = apply(r.clone(), &ss_started(0));
        assert_eq!(again, r);
        assert!(fx.is_empty());
    }

    #[test]
    fn event_count_counts_distinct_applied_events_reports_included() {
        let events = [
            ss_started(0),
            ss_started(0),
            ss_evaluated("evt_eval", 200),
            ss_completed("evt_done", 150, false),
            ss_evaluated("evt_eval", 200),
            ss_unknown("evt_x", 100),
        ];
        let r = record(&events);
        assert_eq!(r.event_count, 3);
        assert_eq!(r.applied_event_ids.len(), 3);
        assert!(!r.applied_event_ids.contains("stateset#evt_x"));
    }

    #[test]
    fn terminal_fact_finalizes_exactly_once() {
        let events = [
            hangup("h1", 60, Outcome::Completed),
            hangup("h2", 61, Outcome::Completed),
            hangup("h1", 60, Outcome::Completed),
        ];
        let (r, fx) = replay(&events);
        assert_eq!(finalizes(&fx), 1);
        assert_eq!(
            fx[0],
            Effect::Finalize {
                call_id: CALL.into(),
                event_id: "stateset#h1".into(),
                outcome: Some(Outcome::Completed),
                dispatch_id: format!("{CALL}#completed"),
            }
        );
        assert!(r.unwrap().is_final());
    }

    #[test]
    fn non_terminal_ended_fact_does_not_finalize() {
        let ended = ev("ended", "call.ended", Kind::Ended, 60).outcome(Outcome::NoAnswer);
        let (r, fx) = replay(&[ended]);
        let r = r.unwrap();
        assert_eq!(r.status, Some(CallStatus::Ended));
        assert_eq!(r.outcome, Some(Outcome::NoAnswer));
        assert!(!r.is_final());
        assert!(fx.is_empty());
    }

    #[test]
    fn terminal_fact_of_any_kind_ends_the_call() {
        let last = ev("last", "call.lifecycle-ended", Kind::Report, 90).terminal(None);
        let (r, fx) = replay(&[answered("a", 10), last]);
        let r = r.unwrap();
        assert_eq!(r.status, Some(CallStatus::Ended));
        assert_eq!(r.ended_at, Some(t(90)));
        assert_eq!(finalizes(&fx), 1);
    }

    #[test]
    fn enrichment_before_finalization_is_folded_in_without_effects() {
        let (r, fx) = replay(&[
            report("rec", 70, "https://r/1.mp3"),
            ss_evaluated("eval", 71),
            hangup("h", 60, Outcome::Completed),
        ]);
        let r = r.unwrap();
        assert_eq!(r.recording_url.as_deref(), Some("https://r/1.mp3"));
        assert!(r.analysis.is_some());
        assert_eq!(fx.len(), 1);
        assert_eq!(finalizes(&fx), 1);
    }

    #[test]
    fn enrichment_after_finalization_emits_enrich_with_a_deterministic_id() {
        let (r, _) = replay(&[hangup("h", 60, Outcome::Completed)]);
        let (r, fx) = apply(r, &report("rec", 70, "https://r/1.mp3"));
        assert_eq!(
            fx,
            vec![Effect::Enrich {
                call_id: CALL.into(),
                event_id: "stateset#rec".into(),
                dispatch_id: format!("{CALL}#updated#stateset#rec"),
            }]
        );
        assert_eq!(fx[0].message_type(), Some("call.updated"));
        assert_eq!(r.unwrap().recording_url.as_deref(), Some("https://r/1.mp3"));
    }

    #[test]
    fn late_fact_that_changes_nothing_visible_emits_no_enrich() {
        let (r, _) = replay(&[
            hangup("h", 60, Outcome::Completed),
            report("rec2", 80, "https://r/2.mp3"),
        ]);
        // An older recording loses to the newer one; a progress fact changes no field.
        let (r2, fx) = apply(r.clone(), &report("rec1", 70, "https://r/1.mp3"));
        assert!(fx.is_empty());
        let r2 = r2.unwrap();
        assert_eq!(r2.recording_url.as_deref(), Some("https://r/2.mp3"));
        assert_eq!(r2.event_count, 3);
        let (_, fx) = apply(
            Some(r2),
            &ev("dtmf", "call.dtmf.received", Kind::Progress, 30),
        );
        assert!(fx.is_empty());
    }

    #[test]
    fn action_event_emits_action_once() {
        let (r, fx) = replay(&[action("order", 30), action("order", 30)]);
        assert_eq!(
            fx,
            vec![Effect::Action {
                call_id: CALL.into(),
                event_id: "stateset#order".into(),
                dispatch_id: format!("{CALL}#action#stateset#order"),
            }]
        );
        let r = r.unwrap();
        assert_eq!(r.actions.len(), 1);
        assert_eq!(r.actions[0].action, Some(json!({"order": {"sku": "A1"}})));
    }

    #[test]
    fn actions_are_kept_in_occurred_at_order() {
        let r = assert_order_independent(&[action("b", 20), action("a", 30), action("c", 20)]);
        let order: Vec<_> = r.actions.iter().map(|a| a.event_id.as_str()).collect();
        assert_eq!(order, ["stateset#b", "stateset#c", "stateset#a"]);
    }

    #[test]
    fn late_action_after_finalization_emits_action_and_enrich() {
        let (_, fx) = replay(&[hangup("h", 60, Outcome::Completed), action("order", 30)]);
        assert_eq!(count(&fx, |e| matches!(e, Effect::Action { .. })), 1);
        assert_eq!(count(&fx, |e| matches!(e, Effect::Enrich { .. })), 1);
    }

    #[test]
    fn review_event_does_not_change_the_call_and_emits_review() {
        let (r, _) = replay(&[ss_started(0)]);
        let (same, fx) = apply(r.clone(), &ss_unknown("x", 5));
        assert_eq!(same, r);
        assert_eq!(
            fx,
            vec![Effect::Review {
                event_id: "stateset#x".into(),
                reason: "unknown_type".into()
            }]
        );
        // Even a terminal fact flagged malformed stays out of the call.
        let bad = ss_completed("bad", 60, false).with(|e| {
            e.review = Some(ReviewNote {
                reason: "malformed".into(),
                detail: "missing data.status".into(),
            })
        });
        let (same, fx) = apply(r.clone(), &bad);
        assert_eq!(same, r);
        assert_eq!(fx[0].dispatch_id(), None);
        assert!(matches!(&fx[0], Effect::Review { reason, .. } if reason == "malformed"));
    }

    #[test]
    fn unknown_kind_without_a_note_goes_to_review() {
        let e = ev("u", "x", Kind::Unknown, 0);
        assert_eq!(
            apply(None, &e),
            (
                None,
                vec![Effect::Review {
                    event_id: "stateset#u".into(),
                    reason: REASON_UNKNOWN_TYPE.into()
                }]
            )
        );
    }

    #[test]
    fn event_without_call_id_progress_is_dropped_others_reviewed() {
        let progress =
            ev("p", "voice.webhook.delivery_failed", Kind::Progress, 0).with(|e| e.call_id = None);
        assert_eq!(apply(None, &progress), (None, vec![]));
        let ended = hangup("h", 0, Outcome::Completed).with(|e| e.call_id = None);
        let (r, fx) = apply(None, &ended);
        assert_eq!(r, None);
        assert!(matches!(&fx[..], [Effect::Review { reason, .. }] if reason == REASON_NO_CALL_ID));
    }

    #[test]
    fn event_for_another_call_is_reviewed_not_applied() {
        let (r, _) = replay(&[ss_started(0)]);
        let other = answered("a", 5).with(|e| e.call_id = Some("stateset#OTHER".into()));
        let (same, fx) = apply(r.clone(), &other);
        assert_eq!(same, r);
        assert!(
            matches!(&fx[..], [Effect::Review { reason, .. }] if reason == REASON_CALL_MISMATCH)
        );
    }

    #[test]
    fn started_at_is_the_earliest_reported_start_else_the_earliest_lifecycle_fact() {
        let r = assert_order_independent(&[
            ev("q", "call.queued", Kind::Queued, 3),
            answered("a", 10).facts(|f| f.started_at = Some(t(8))),
            hangup("h", 60, Outcome::Completed).facts(|f| f.started_at = Some(t(7))),
        ]);
        assert_eq!(r.started_at, Some(t(7)));
        let r = assert_order_independent(&[
            ev("q", "call.queued", Kind::Queued, 3),
            answered("a", 10),
            report("rec", 1, "u"),
        ]);
        assert_eq!(r.started_at, Some(t(3)));
    }

    #[test]
    fn timestamps_come_from_their_facts() {
        let r = assert_order_independent(&[
            ev("r", "call.ringing", Kind::Ringing, 5),
            answered("a", 10),
            hangup("h", 60, Outcome::Completed).facts(|f| f.ended_at = Some(t(58))),
        ]);
        assert_eq!(r.ringing_at, Some(t(5)));
        assert_eq!(r.answered_at, Some(t(10)));
        assert_eq!(r.ended_at, Some(t(58)));
        assert_eq!(r.duration_secs, Some(48));
    }

    #[test]
    fn ended_at_prefers_the_terminal_fact_over_other_ended_facts() {
        let r = assert_order_independent(&[
            ev("drop", "call.ended", Kind::Ended, 70),
            ev("last", "call.lifecycle-ended", Kind::Ended, 65).terminal(None),
        ]);
        assert_eq!(r.ended_at, Some(t(65)));
    }

    #[test]
    fn provider_duration_wins_over_computed() {
        let events = [
            answered("a", 10),
            hangup("h", 60, Outcome::Completed).facts(|f| f.duration_secs = Some(42)),
        ];
        assert_eq!(assert_order_independent(&events).duration_secs, Some(42));
    }

    #[test]
    fn duration_is_zero_when_never_answered_and_null_until_ended() {
        assert_eq!(record(&[answered("a", 10)]).duration_secs, None);
        let r = record(&[hangup("h", 60, Outcome::NoAnswer)]);
        assert_eq!(r.duration_secs, Some(0));
        assert_eq!(r.answered_at, None);
    }

    #[test]
    fn terminal_outcome_beats_a_later_non_terminal_outcome() {
        let r = assert_order_independent(&[
            hangup("h", 60, Outcome::Busy),
            ev("x", "call.ended", Kind::Ended, 90).outcome(Outcome::Completed),
        ]);
        assert_eq!(r.outcome, Some(Outcome::Busy));
    }

    #[test]
    fn terminal_fact_without_outcome_takes_the_latest_attempts_outcome() {
        // Mirai Minds: attempt 1 no answer, rescheduled, attempt 2 completed, lifecycle ended.
        let events = [
            ev("init1", "call.initiate", Kind::Initiated, 0),
            ev("na1", "call.no-answer", Kind::Ended, 30).outcome(Outcome::NoAnswer),
            ev("res", "call.rescheduled", Kind::Ended, 31).outcome(Outcome::Rescheduled),
            ev("init2", "call.initiate", Kind::Initiated, 600),
            answered("ans2", 610),
            ev("done2", "call.ended", Kind::Ended, 700).outcome(Outcome::Completed),
            ev("data2", "call.completed", Kind::Report, 705)
                .facts(|f| f.recording_url = Some("https://r/2.mp3".into())),
            ev("last", "call.lifecycle-ended", Kind::Ended, 710).terminal(None),
        ];
        let (r, fx) = replay(&events);
        let r = r.unwrap();
        assert_eq!(r.outcome, Some(Outcome::Completed));
        assert_eq!(r.status, Some(CallStatus::Ended));
        assert_eq!(r.started_at, Some(t(0)));
        assert_eq!(r.answered_at, Some(t(610)));
        assert_eq!(r.ended_at, Some(t(710)));
        assert_eq!(finalizes(&fx), 1);
        // Order does not matter, including the terminal fact arriving first.
        let mut reversed = events.to_vec();
        reversed.reverse();
        assert_eq!(record(&reversed), r);
    }

    #[test]
    fn rescheduled_stays_the_outcome_when_nothing_follows_it() {
        let r = assert_order_independent(&[
            ev("na1", "call.no-answer", Kind::Ended, 30).outcome(Outcome::NoAnswer),
            ev("res", "call.rescheduled", Kind::Ended, 31).outcome(Outcome::Rescheduled),
            ev("last", "call.lifecycle-ended", Kind::Ended, 40).terminal(None),
        ]);
        assert_eq!(r.outcome, Some(Outcome::Rescheduled));
    }

    #[test]
    fn escalation_is_sticky_over_any_outcome() {
        let r = assert_order_independent(&[
            ss_escalated("esc", 40),
            ss_completed("done", 150, false),
            ev("late", "x", Kind::Ended, 160).outcome(Outcome::Completed),
        ]);
        assert_eq!(r.outcome, Some(Outcome::Escalated));
    }

    #[test]
    fn escalated_action_is_an_escalation_not_a_separate_action() {
        let esc = ev("esc", "handoff", Kind::Action, 40).outcome(Outcome::Escalated);
        let (r, fx) = replay(&[esc, hangup("h", 60, Outcome::Completed)]);
        assert_eq!(count(&fx, |e| matches!(e, Effect::Action { .. })), 0);
        assert!(r.unwrap().actions.is_empty());
        assert!(matches!(
            &fx[..],
            [Effect::Finalize {
                outcome: Some(Outcome::Escalated),
                ..
            }]
        ));
    }

    #[test]
    fn errors_accumulate_in_occurred_at_order() {
        let err = |key: &str, secs: i64| {
            ev(key, "CALL_COMPLETED", Kind::Report, secs)
                .facts(|f| f.errors = Some(json!([{"code": key}])))
        };
        let r = assert_order_independent(&[err("e2", 20), err("e1", 10)]);
        let order: Vec<_> = r.errors.iter().map(|e| e.event_id.as_str()).collect();
        assert_eq!(order, ["stateset#e1", "stateset#e2"]);
    }

    #[test]
    fn null_json_facts_are_not_recorded() {
        let r = record(&[report("r", 1, "u").facts(|f| f.cost = Some(Value::Null))]);
        assert_eq!(r.cost, None);
        assert!(!r.sources.contains_key("cost"));
    }

    #[test]
    fn version_and_finalized_at_are_left_to_the_store() {
        let (r, _) = replay(&[hangup("h", 60, Outcome::Completed)]);
        let mut r = r.unwrap();
        assert_eq!((r.version, r.finalized_at), (0, None));
        r.version = 7;
        r.finalized_at = Some(t(61));
        let (r, fx) = apply(Some(r), &report("rec", 70, "https://r/1.mp3"));
        let r = r.unwrap();
        assert_eq!((r.version, r.finalized_at), (7, Some(t(61))));
        assert_eq!(count(&fx, |e| matches!(e, Effect::Enrich { .. })), 1);
    }

    #[test]
    fn replay_folds_apply_in_order() {
        let events = [
            ss_started(0),
            ss_completed("done", 150, false),
            ss_evaluated("ev", 160),
        ];
        let mut record = None;
        let mut effects = Vec::new();
        for e in &events {
            let (r, fx) = apply(record, e);
            record = r;
            effects.extend(fx);
        }
        assert_eq!(replay(&events), (record, effects));
        assert_eq!(replay(&[]), (None, vec![]));
    }

    #[test]
    fn record_json_uses_the_documented_names_and_round_trips() {
        let (r, _) = replay(&[
            ss_started(0),
            action("order", 30),
            ss_completed("done", 150, false),
        ]);
        let r = r.unwrap();
        let v = serde_json::to_value(&r).unwrap();
        let keys: Vec<_> = v.as_object().unwrap().keys().cloned().collect();
        for key in [
            "call_id",
            "provider",
            "status",
            "rank",
            "direction",
            "from",
            "to",
            "started_at",
            "ringing_at",
            "answered_at",
            "ended_at",
            "duration_secs",
            "outcome",
            "hangup_cause",
            "recording_url",
            "transcript",
            "analysis",
            "cost",
            "metadata",
            "errors",
            "actions",
            "event_count",
            "applied_event_ids",
            "final_event_id",
            "finalized_at",
            "last_occurred_at",
            "version",
            "sources",
        ] {
            assert!(keys.contains(&key.to_owned()), "{key} missing");
        }
        assert_eq!(keys.len(), 28);
        assert_eq!(v["status"], "ended");
        assert_eq!(v["outcome"], "completed");
        assert_eq!(v["direction"], "inbound");
        assert_eq!(v["started_at"], "2026-05-14T18:40:00Z");
        assert_eq!(v["duration_secs"], 142);
        assert_eq!(v["actions"][0]["type"], "create_order");
        assert_eq!(v["sources"]["from"]["event_id"], "stateset#evt_started");
        let back: CallRecord = serde_json::from_value(v).unwrap();
        assert_eq!(back, r);
        // Older stored records without newer fields still load.
        let minimal: CallRecord = serde_json::from_value(json!({"call_id": CALL})).unwrap();
        assert_eq!(minimal.call_id, CALL);
    }

    #[test]
    fn effect_json_is_tagged() {
        let fx = Effect::Finalize {
            call_id: "c".into(),
            event_id: "e".into(),
            outcome: Some(Outcome::NoAnswer),
            dispatch_id: finalize_dispatch_id("c"),
        };
        assert_eq!(
            serde_json::to_value(&fx).unwrap(),
            json!({"effect": "finalize", "call_id": "c", "event_id": "e",
                   "outcome": "no_answer", "dispatch_id": "c#completed"})
        );
    }

    #[test]
    fn status_ranks_match_kind_ranks() {
        for rank in 1..=5 {
            assert_eq!(CallStatus::from_rank(rank).unwrap().rank(), rank);
        }
        assert_eq!(CallStatus::from_rank(0), None);
        assert_eq!(CallStatus::Ended.as_str(), Kind::Ended.as_str());
    }

    // ---- StateSet seed: "Replay and testing" table, one test per row ----

    /// Row "Send the same event twice": the second delivery is acknowledged without
    /// duplicating business work.
    #[test]
    fn seed_same_event_twice_is_acknowledged_without_duplicating_business_work() {
        let done = ss_completed("evt_01hx9x9f9g7n9q6v4k0m9a2b3c", 150, false);
        let esc = ss_escalated("evt_esc", 40);
        let order = action("evt_order", 60);
        let events = [
            ss_started(0),
            done.clone(),
            done.clone(),
            order.clone(),
            esc.clone(),
            order,
            esc,
            done,
        ];
        let (r, fx) = replay(&events);
        let r = r.unwrap();
        assert_eq!(r.event_count, 4);
        assert_eq!(finalizes(&fx), 1);
        assert_eq!(count(&fx, |e| matches!(e, Effect::Action { .. })), 1);
        // Escalation and completion each reach the business systems once: the finalization
        // carried `completed`, so the late escalation opens one ticket.
        assert_eq!(count(&fx, |e| matches!(e, Effect::Escalate { .. })), 1);
        // Every dispatch id is distinct and stable, so the ledger dedupes redeliveries.
        let ids: BTreeSet<_> = fx.iter().filter_map(Effect::dispatch_id).collect();
        assert_eq!(ids.len(), fx.len());
        // Redelivering the whole sequence to the stored record does nothing.
        let mut again = Some(r.clone());
        for e in &events {
            let (next, fx) = apply(again, e);
            assert!(fx.is_empty());
            again = next;
        }
        assert_eq!(again, Some(r));
    }

    /// Row "Return a temporary 500": the event remains retryable and the consumer can process
    /// the next delivery. The reducer's part: a failed attempt (computed, never stored) leaves
    /// nothing behind, the retry computes exactly the same record and effects (same dispatch
    /// ids), and the next delivery applies normally.
    #[test]
    fn seed_temporary_500_leaves_the_event_retryable_and_the_next_delivery_processable() {
        let (stored, _) = replay(&[ss_started(0)]);
        let done = ss_completed("evt_done", 150, false);
        let failed_attempt = apply(stored.clone(), &done); // the store write failed: discarded
        let retry = apply(stored.clone(), &done);
        assert_eq!(failed_attempt, retry);
        assert_eq!(finalizes(&retry.1), 1);
        let (after, fx) = apply(retry.0.clone(), &ss_evaluated("evt_next", 160));
        assert_eq!(after.as_ref().unwrap().event_count, 3);
        assert_eq!(count(&fx, |e| matches!(e, Effect::Enrich { .. })), 1);
        // A retry after the write succeeded but before the acknowledgement is a duplicate.
        let (same, fx) = apply(retry.0.clone(), &done);
        assert_eq!(same, retry.0);
        assert!(fx.is_empty());
    }

    /// Row "Delay downstream CRM writes": the webhook endpoint still returns quickly because
    /// slow work runs asynchronously. The reducer's part: it does no I/O; finalization is an
    /// effect (a message with a deterministic id), and facts that arrive while the CRM write
    /// waits are in the record the dispatch reads when it is finally sent.
    #[test]
    fn seed_delayed_crm_write_is_an_effect_and_later_facts_reach_the_record_it_sends() {
        let (r, fx) = replay(&[ss_started(0), ss_completed("evt_done", 150, false)]);
        assert!(matches!(
            &fx[..],
            [Effect::Finalize { dispatch_id, outcome: Some(Outcome::Completed), .. }]
                if dispatch_id == &format!("{CALL}#completed")
        ));
        // While the CRM write is pending, the evaluation arrives.
        let (r, fx) = apply(r, &ss_evaluated("evt_eval", 160));
        let r = r.unwrap();
        assert_eq!(
            r.analysis,
            Some(json!({"score": 0.92, "tags": ["resolved"]}))
        );
        assert_eq!(
            fx,
            vec![Effect::Enrich {
                call_id: CALL.into(),
                event_id: "stateset#evt_eval".into(),
                dispatch_id: format!("{CALL}#updated#stateset#evt_eval"),
            }]
        );
        // Processing the same events again, in another order, yields the same ids.
        let (_, fx2) = replay(&[
            ss_completed("evt_done", 150, false),
            ss_started(0),
            ss_evaluated("evt_eval", 160),
        ]);
        let ids = |fx: &[Effect]| -> BTreeSet<String> {
            fx.iter()
                .filter_map(|e| e.dispatch_id().map(str::to_owned))
                .collect()
        };
        assert!(ids(&fx2).contains(&format!("{CALL}#completed")));
    }

    /// Row "Send an unknown event type": the consumer stores it for review and does not fail
    /// the whole endpoint. The reducer's part: it asks for review, leaves the call alone, and
    /// the events around it are applied as usual.
    #[test]
    fn seed_unknown_event_type_goes_to_review_without_failing_the_others() {
        let events = [
            ss_started(0),
            ss_unknown("evt_unknown", 60),
            ss_completed("evt_done", 150, false),
        ];
        let (r, fx) = replay(&events);
        let r = r.unwrap();
        assert_eq!(r.event_count, 2);
        assert_eq!(r.status, Some(CallStatus::Ended));
        assert_eq!(
            fx,
            vec![
                Effect::Review {
                    event_id: "stateset#evt_unknown".into(),
                    reason: "unknown_type".into()
                },
                Effect::Finalize {
                    call_id: CALL.into(),
                    event_id: "stateset#evt_done".into(),
                    outcome: Some(Outcome::Completed),
                    dispatch_id: format!("{CALL}#completed"),
                }
            ]
        );
        // Alone, it creates no call.
        assert_eq!(replay(&events[1..2]).0, None);
    }

    /// Seed "Ordering: do not depend on strict cross-event ordering" with the escalation
    /// payload: escalated before completed finalizes as escalated (one ticket, via the
    /// finalization); escalated after completed keeps the record identical and opens the one
    /// ticket through Escalate.
    #[test]
    fn seed_escalation_before_or_after_completion_gives_the_same_record_and_one_ticket() {
        let before = [
            ss_started(0),
            ss_escalated("evt_esc", 40),
            ss_completed("evt_done", 150, false),
        ];
        let after = [
            ss_started(0),
            ss_completed("evt_done", 150, false),
            ss_escalated("evt_esc", 40),
        ];
        let (r1, fx1) = replay(&before);
        let (r2, fx2) = replay(&after);
        assert_eq!(r1, r2);
        assert_eq!(r1.unwrap().outcome, Some(Outcome::Escalated));
        assert!(matches!(
            &fx1[..],
            [Effect::Finalize {
                outcome: Some(Outcome::Escalated),
                ..
            }]
        ));
        assert!(matches!(
            &fx2[..],
            [
                Effect::Finalize { outcome: Some(Outcome::Completed), .. },
                Effect::Escalate { dispatch_id, .. },
                Effect::Enrich { .. }
            ] if dispatch_id == &format!("{CALL}#escalated")
        ));
        // The completed payload may itself say escalated: true.
        let r3 = assert_order_independent(&[
            ss_started(0),
            ss_completed("evt_done", 150, true),
            ss_escalated("evt_esc", 40),
        ]);
        assert_eq!(r3.outcome, Some(Outcome::Escalated));
    }

    // ---- properties ----

    mod props {
        use super::*;
        use proptest::prelude::*;
        use proptest::sample::select;

        /// (type, kind, terminal, outcomes to pick from) per provider shape.
        type Template = (&'static str, Kind, bool, &'static [Option<Outcome>]);
        const NONE: &[Option<Outcome>] = &[None];
        const ENDS: &[Option<Outcome>] = &[
            Some(Outcome::Completed),
            Some(Outcome::Busy),
            Some(Outcome::NoAnswer),
            Some(Outcome::Failed),
            Some(Outcome::Canceled),
            Some(Outcome::Voicemail),
        ];

        const TELNYX: &[Template] = &[
            ("call.initiated", Kind::Initiated, false, NONE),
            ("call.answered", Kind::Answered, false, NONE),
            ("call.hangup", Kind::Ended, true, ENDS),
            ("call.recording.saved", Kind::Report, false, NONE),
            ("call.cost", Kind::Report, false, NONE),
            ("call.dtmf.received", Kind::Progress, false, NONE),
            ("call.bogus", Kind::Unknown, false, NONE),
        ];
        const BIRD: &[Template] = &[
            ("starting", Kind::Initiated, false, NONE),
            ("ringing", Kind::Ringing, false, NONE),
            ("ongoing", Kind::Answered, false, NONE),
            ("completed", Kind::Ended, true, ENDS),
        ];
        // As providers/miraiminds.rs and providers/stateset.rs map them (plus an escalating
        // action, which no provider sends today, to pin that rule down).
        const MIRAI: &[Template] = &[
            ("call.initiate", Kind::Initiated, false, NONE),
            ("call.in-progress", Kind::Answered, false, NONE),
            (
                "call.ended",
                Kind::Ended,
                false,
                &[Some(Outcome::Completed)],
            ),
            (
                "call.no-answer",
                Kind::Ended,
                false,
                &[Some(Outcome::NoAnswer)],
            ),
            ("call.busy", Kind::Ended, false, &[Some(Outcome::Busy)]),
            (
                "call.rescheduled",
                Kind::Ended,
                false,
                &[Some(Outcome::Rescheduled)],
            ),
            ("call.completed", Kind::Report, false, NONE),
            ("end-of-call", Kind::Report, false, NONE),
            ("create_order", Kind::Action, false, NONE),
            (
                "call.lifecycle-ended",
                Kind::Ended,
                true,
                &[None, Some(Outcome::Completed), Some(Outcome::NoAnswer)],
            ),
        ];
        const STATESET: &[Template] = &[
            ("voice.call.started", Kind::Initiated, false, NONE),
            (
                "voice.call.completed",
                Kind::Ended,
                true,
                &[Some(Outcome::Completed), Some(Outcome::Escalated)],
            ),
            (
                "voice.call.escalated",
                Kind::Ended,
                false,
                &[Some(Outcome::Escalated)],
            ),
            ("voice.session.evaluated", Kind::Report, false, NONE),
            ("voice.webhook.delivery_failed", Kind::Progress, false, NONE),
            (
                "handoff",
                Kind::Action,
                false,
                &[None, Some(Outcome::Escalated)],
            ),
        ];
        /// (provider, its templates, the index of its terminal template)
        const SHAPES: &[(&str, &[Template], usize)] = &[
            ("telnyx", TELNYX, 2),
            ("bird", BIRD, 3),
            ("miraiminds", MIRAI, 9),
            ("stateset", STATESET, 1),
        ];

        fn opt<T: std::fmt::Debug + Clone + 'static>(
            s: impl Strategy<Value = T>,
        ) -> impl Strategy<Value = Option<T>> {
            prop::option::weighted(0.3, s)
        }

        /// One event from a template; times in a narrow window so ties happen.
        fn event(templates: &'static [Template]) -> impl Strategy<Value = CanonicalEvent> {
            (
                select(templates),
                0i64..20,
                any::<prop::sample::Index>(),
                opt(select(&["+1a", "+1b"][..])),
                opt(select(&["+2a", "+2b"][..])),
                opt(select(&[Direction::Inbound, Direction::Outbound][..])),
                (opt(0i64..20), opt(0i64..20), opt(0i64..20), opt(0u64..100)),
                (
                    opt(select(&["u1", "u2"][..])),
                    opt(0u8..3),
                    opt(0u8..3),
                    any::<bool>(),
                ),
            )
                .prop_map(
                    |(
                        tpl,
                        secs,
                        pick,
                        from,
                        to,
                        dir,
                        (st, an, en, dur),
                        (url, analysis, cost, err),
                    )| {
                        let (event_type, kind, terminal, outcomes) = tpl;
                        let mut e = ev("k", event_type, kind, secs);
                        e.is_final = terminal;
                        e.outcome = outcomes[pick.index(outcomes.len())];
                        e.from = from.map(str::to_owned);
                        e.to = to.map(str::to_owned);
                        e.direction = dir;
                        e.facts.started_at = st.map(t);
                        e.facts.answered_at = an.map(t);
                        e.facts.ended_at = en.map(t);
                        e.facts.duration_secs = dur;
                        e.facts.hangup_cause = terminal.then(|| format!("{:?}", e.outcome));
                        e.facts.recording_url = url.map(str::to_owned);
                        e.facts.analysis = analysis.map(|n| json!({ "n": n }));
                        e.facts.cost = cost.map(|n| json!(n));
                        e.facts.errors = (err && kind == Kind::Report).then(|| json!(["e"]));
                        e.facts.action = (kind == Kind::Action).then(|| json!({"a": secs}));
                        if kind == Kind::Unknown {
                            e.review = Some(ReviewNote {
                                reason: "unknown_type".into(),
                                detail: String::new(),
                            });
                        }
                        e
                    },
                )
        }

        /// 1–12 events of one call of one provider shape, at least one terminal, unique ids.
        fn call_events() -> impl Strategy<Value = Vec<CanonicalEvent>> {
            select(SHAPES).prop_flat_map(|(provider, templates, terminal)| {
                (
                    prop::collection::vec(event(templates), 0..12),
                    event(&templates[terminal..=terminal]),
                )
                    .prop_map(move |(mut events, last)| {
                        events.push(last);
                        for (i, e) in events.iter_mut().enumerate() {
                            // Ids not in index order, so tie-breaks are exercised.
                            e.event_id = format!("{provider}#e{:02}", (i * 7) % 13);
                            e.provider = provider.to_owned();
                            e.call_id = Some(format!("{provider}#call"));
                        }
                        events
                    })
            })
        }

        /// The events, plus a delivery: every event at least once, some twice or more, shuffled.
        fn deliveries() -> impl Strategy<Value = (Vec<CanonicalEvent>, Vec<CanonicalEvent>)> {
            call_events().prop_flat_map(|events| {
                let n = events.len();
                prop::collection::vec(0..n, 0..n + 3).prop_flat_map(move |dups| {
                    let events = events.clone();
                    let order: Vec<usize> = (0..n).chain(dups).collect();
                    Just(order).prop_shuffle().prop_map(move |order| {
                        let delivered = order.iter().map(|&i| events[i].clone()).collect();
                        (events.clone(), delivered)
                    })
                })
            })
        }

        #[test]
        fn shapes_name_their_terminal_templates() {
            for (_, templates, terminal) in SHAPES {
                assert!(templates[*terminal].2);
            }
        }

        fn tickets_for_escalation(fx: &[Effect]) -> usize {
            count(fx, |e| {
                matches!(
                    e,
                    Effect::Escalate { .. }
                        | Effect::Finalize {
                            outcome: Some(Outcome::Escalated),
                            ..
                        }
                )
            })
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            #[test]
            fn any_permutation_and_duplication_gives_the_same_record_and_one_finalize(
                (events, delivered) in deliveries()
            ) {
                let (reference, ref_fx) = replay(&events);
                let reference = reference.expect("a terminal fact is never reviewed");

                let mut record: Option<CallRecord> = None;
                let mut effects = Vec::new();
                let mut rank = 0;
                for e in &delivered {
                    let (next, fx) = apply(record, e);
                    let r = next.as_ref();
                    let now = r.map_or(0, |r| r.rank);
                    prop_assert!(now >= rank, "rank went down from {} to {}", rank, now);
                    rank = now;
                    if let Some(r) = r {
                        prop_assert_eq!(r.event_count, r.applied_event_ids.len() as u64);
                    }
                    record = next;
                    effects.extend(fx);
                }
                let record = record.unwrap();
                prop_assert_eq!(&record, &reference);
                prop_assert_eq!(finalizes(&effects), 1);
                prop_assert_eq!(finalizes(&ref_fx), 1);
                prop_assert!(record.is_final());
                prop_assert_eq!(record.status, Some(CallStatus::Ended));

                let applied: BTreeSet<&str> = events
                    .iter()
                    .filter(|e| e.review.is_none())
                    .map(|e| e.event_id.as_str())
                    .collect();
                prop_assert_eq!(record.event_count, applied.len() as u64);

                // Each action is asked for once; an escalation opens exactly one ticket.
                let actions = events.iter().filter(|e| is_action(e)).count();
                prop_assert_eq!(count(&effects, |e| matches!(e, Effect::Action { .. })), actions);
                let escalated = usize::from(record.outcome == Some(Outcome::Escalated));
                prop_assert_eq!(tickets_for_escalation(&effects), escalated);

                // call.updated only ever follows the finalization.
                let first_finalize = effects
                    .iter()
                    .position(|e| matches!(e, Effect::Finalize { .. }))
                    .unwrap();
                let first_enrich = effects
                    .iter()
                    .position(|e| matches!(e, Effect::Enrich { .. } | Effect::Escalate { .. }));
                prop_assert!(first_enrich.is_none_or(|i| i > first_finalize));

                // Dispatch ids never repeat within a delivery sequence.
                let ids: Vec<&str> = effects.iter().filter_map(Effect::dispatch_id).collect();
                let unique: BTreeSet<&str> = ids.iter().copied().collect();
                prop_assert_eq!(ids.len(), unique.len());

                // What the store writes reads back the same.
                let json = serde_json::to_string(&record).unwrap();
                prop_assert_eq!(serde_json::from_str::<CallRecord>(&json).unwrap(), record);
            }
        }
    }
}
