//! The lifecycle reducer: folds one call's canonical events, delivered at least once and in any
//! order, into one [`CallRecord`], and says which [`Effect`]s each event causes. Pure: no I/O,
//! no clock. The rules are in docs/lifecycle.md.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::effect::{
    Effect, action_dispatch_id, escalation_dispatch_id, finalize_dispatch_id, update_dispatch_id,
};
use super::record::{ActionRequest, CallRecord, CallStatus, ErrorReport, Prefer, Source};
use crate::domain::event::{CanonicalEvent, Kind, Origin, Outcome};
use crate::domain::review::ReviewReason;
use crate::domain::text::{MAX_FIELD_BYTES, MAX_URL_BYTES, capped};

/// Applies one event to its call's record (`None` when the store has none yet).
///
/// Returns the record to store and the effects to emit. When the event is not applied
/// (duplicate, review, no call, another call) the record comes back exactly as given, `None`
/// included, so `returned == given` means there is nothing to write.
pub fn apply(
    record: Option<CallRecord>,
    event: &CanonicalEvent,
) -> (Option<CallRecord>, Vec<Effect>) {
    let review = |reason: ReviewReason| Effect::Review {
        event_id: event.event_id.clone(),
        reason,
    };
    if let Some(note) = &event.review {
        return (record, vec![review(note.reason.clone())]);
    }
    if event.kind == Kind::Unknown {
        return (record, vec![review(ReviewReason::UnknownType)]);
    }
    let Some(call_id) = event.call_id.as_deref() else {
        if event.kind == Kind::Progress {
            return (record, Vec::new());
        }
        return (record, vec![review(ReviewReason::NoCallId)]);
    };
    if record.as_ref().is_some_and(|r| r.call_id != call_id) {
        return (record, vec![review(ReviewReason::CallMismatch)]);
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
    // Once is enough, in any order.
    record.unauthenticated |= event.unauthenticated;

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
/// them in this order, and every effect emitted on the way (the tests' oracle).
pub fn apply_all(events: &[CanonicalEvent]) -> (Option<CallRecord>, Vec<Effect>) {
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
    if e.source == Some(Origin::GaveUp) {
        give_up(r, e);
        return;
    }
    r.last_occurred_at = r.last_occurred_at.max(Some(at));
    if e.source.is_none() {
        let received = Some(e.received_at);
        r.first_received_at = r.first_received_at.min(received).or(received);
        r.last_received_at = r.last_received_at.max(received);
    }

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
    let field = |v: &Option<String>| v.as_deref().map(|v| capped(v, MAX_FIELD_BYTES));
    offer(s, "from", &mut r.from, field(&e.from), src(0, at), Earliest);
    offer(s, "to", &mut r.to, field(&e.to), src(0, at), Earliest);

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
        field(&facts.hangup_cause),
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

    let recording = facts
        .recording_url
        .as_deref()
        .map(|url| capped(url, MAX_URL_BYTES));
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
            event_type: capped(&e.event_type, MAX_FIELD_BYTES),
            occurred_at: at,
            errors,
        });
        r.errors
            .sort_by(|a, b| (a.occurred_at, &a.event_id).cmp(&(b.occurred_at, &b.event_id)));
        keep_latest(&mut r.errors);
    }
    if is_action(e) {
        r.actions.push(ActionRequest {
            event_id: e.event_id.clone(),
            event_type: capped(&e.event_type, MAX_FIELD_BYTES),
            occurred_at: at,
            action: present(&facts.action),
        });
        r.actions
            .sort_by(|a, b| (a.occurred_at, &a.event_id).cmp(&(b.occurred_at, &b.event_id)));
        keep_latest(&mut r.actions);
    }
}

/// The most entries the record lists of errors, and of actions: a call's item stays bounded
/// however many a sender reports. The latest are kept, so the list is the same in any order of
/// arrival; every event stays in the events table.
pub const MAX_LISTED: usize = 100;

fn keep_latest<T>(sorted: &mut Vec<T>) {
    if sorted.len() > MAX_LISTED {
        sorted.drain(..sorted.len() - MAX_LISTED);
    }
}

/// A call given up on: ended, outcome `unknown`, every fact set here yielding to any real
/// event's (so a late real end replaces it and goes out as an update).
fn give_up(r: &mut CallRecord, e: &CanonicalEvent) {
    let ended = Kind::Ended.rank().unwrap_or(5);
    if ended > r.rank {
        r.rank = ended;
        r.status = CallStatus::from_rank(ended);
    }
    let weakest = Source::yielding(&e.event_id);
    let s = &mut r.sources;
    offer(
        s,
        "final",
        &mut r.final_event_id,
        Some(e.event_id.clone()),
        weakest.clone(),
        Prefer::Latest,
    );
    let mut base = None;
    offer(
        s,
        "outcome",
        &mut base,
        Some(Outcome::Unknown),
        weakest,
        Prefer::Latest,
    );
    if r.outcome != Some(Outcome::Escalated) && base.is_some() {
        r.outcome = base;
    }
}

/// Fields computed from the others.
fn derive(r: &mut CallRecord) {
    r.incomplete = r.sources.get("final").is_some_and(Source::is_yielding);
    if !r.sources.contains_key("duration_secs") {
        r.duration_secs = r.ended_at.map(|ended| match r.answered_at {
            Some(answered) => u64::try_from((ended - answered).num_seconds()).unwrap_or(0),
            None => 0,
        });
    }
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
