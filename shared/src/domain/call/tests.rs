use std::collections::BTreeSet;

use super::*;
use crate::domain::event::{Direction, Facts, ReviewNote};
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
    apply_all(events).0.expect("a record")
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
        let (r, fx) = apply_all(&p);
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
    let a = hangup("h1", 60, Outcome::Busy).facts(|f| f.hangup_cause = Some("user_busy".into()));
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
    let (r, _) = apply_all(&[ss_started(0), ss_completed("evt_done", 150, false)]);
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
    let (r, fx) = apply_all(&events);
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
    let (r, fx) = apply_all(&[ended]);
    let r = r.unwrap();
    assert_eq!(r.status, Some(CallStatus::Ended));
    assert_eq!(r.outcome, Some(Outcome::NoAnswer));
    assert!(!r.is_final());
    assert!(fx.is_empty());
}

#[test]
fn terminal_fact_of_any_kind_ends_the_call() {
    let last = ev("last", "call.lifecycle-ended", Kind::Report, 90).terminal(None);
    let (r, fx) = apply_all(&[answered("a", 10), last]);
    let r = r.unwrap();
    assert_eq!(r.status, Some(CallStatus::Ended));
    assert_eq!(r.ended_at, Some(t(90)));
    assert_eq!(finalizes(&fx), 1);
}

#[test]
fn enrichment_before_finalization_is_folded_in_without_effects() {
    let (r, fx) = apply_all(&[
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
    let (r, _) = apply_all(&[hangup("h", 60, Outcome::Completed)]);
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
    let (r, _) = apply_all(&[
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
    let (r, fx) = apply_all(&[action("order", 30), action("order", 30)]);
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
    let (_, fx) = apply_all(&[hangup("h", 60, Outcome::Completed), action("order", 30)]);
    assert_eq!(count(&fx, |e| matches!(e, Effect::Action { .. })), 1);
    assert_eq!(count(&fx, |e| matches!(e, Effect::Enrich { .. })), 1);
}

#[test]
fn review_event_does_not_change_the_call_and_emits_review() {
    let (r, _) = apply_all(&[ss_started(0)]);
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
                reason: ReviewReason::UnknownType
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
    assert!(matches!(&fx[..], [Effect::Review { reason, .. }] if reason == "no_call_id"));
}

#[test]
fn event_for_another_call_is_reviewed_not_applied() {
    let (r, _) = apply_all(&[ss_started(0)]);
    let other = answered("a", 5).with(|e| e.call_id = Some("stateset#OTHER".into()));
    let (same, fx) = apply(r.clone(), &other);
    assert_eq!(same, r);
    assert!(matches!(&fx[..], [Effect::Review { reason, .. }] if reason == "call_mismatch"));
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
    let (r, fx) = apply_all(&events);
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
    let (r, fx) = apply_all(&[esc, hangup("h", 60, Outcome::Completed)]);
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
    let (r, _) = apply_all(&[hangup("h", 60, Outcome::Completed)]);
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
    assert_eq!(apply_all(&events), (record, effects));
    assert_eq!(apply_all(&[]), (None, vec![]));
}

#[test]
fn record_json_uses_the_documented_names_and_round_trips() {
    let (r, _) = apply_all(&[
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
        "first_received_at",
        "last_received_at",
        "version",
        "sources",
    ] {
        assert!(keys.contains(&key.to_owned()), "{key} missing");
    }
    // `incomplete` appears only when set.
    assert_eq!(keys.len(), 30);
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
    let (r, fx) = apply_all(&events);
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
    let (stored, _) = apply_all(&[ss_started(0)]);
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
    let (r, fx) = apply_all(&[ss_started(0), ss_completed("evt_done", 150, false)]);
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
    let (_, fx2) = apply_all(&[
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
    let (r, fx) = apply_all(&events);
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
    assert_eq!(apply_all(&events[1..2]).0, None);
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
    let (r1, fx1) = apply_all(&before);
    let (r2, fx2) = apply_all(&after);
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
    use std::collections::BTreeSet;

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
            let (reference, ref_fx) = apply_all(&events);
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

// ---- bounds ----

#[test]
fn provider_strings_are_capped_in_the_record() {
    let long = "9".repeat(20_000);
    let control = "\u{1}".repeat(22_000);
    let events = [
        answered("a", 0).with(|e| {
            e.from = Some(long.clone());
            e.to = Some("+15550100".into());
        }),
        hangup("h", 9, Outcome::Completed).facts(|f| {
            f.hangup_cause = Some(control.clone());
            f.recording_url = Some(format!("https://r.example/{long}"));
        }),
        ev("e", &control, Kind::Report, 5).facts(|f| f.errors = Some(json!(["boom"]))),
    ];
    let r = record(&events);
    assert_eq!(
        r.from.as_deref(),
        Some(&long[..crate::domain::text::MAX_FIELD_BYTES])
    );
    assert_eq!(
        r.to.as_deref(),
        Some("+15550100"),
        "short values stay whole"
    );
    assert_eq!(r.hangup_cause.as_ref().map(String::len), Some(256));
    assert_eq!(
        r.recording_url.as_ref().map(String::len),
        Some(crate::domain::text::MAX_URL_BYTES)
    );
    assert_eq!(r.errors[0].event_type.len(), 256);
    assert!(serde_json::to_string(&r).unwrap().len() < 8_000);
}

#[test]
fn errors_and_actions_keep_the_latest_hundred_in_any_order() {
    let mut events: Vec<CanonicalEvent> = (0..150)
        .map(|i| {
            ev(&format!("x{i:03}"), "call.failed", Kind::Report, i)
                .facts(|f| f.errors = Some(json!([i])))
        })
        .chain((0..150).map(|i| action(&format!("a{i:03}"), i)))
        .collect();
    let in_order = record(&events);
    events.reverse();
    let reversed = record(&events);
    assert_eq!(in_order, reversed);
    assert_eq!(in_order.errors.len(), MAX_LISTED);
    assert_eq!(in_order.actions.len(), MAX_LISTED);
    assert_eq!(in_order.errors[0].event_id, format!("{}#x050", "stateset"));
    assert_eq!(in_order.event_count, 300, "every event is still counted");
}

#[test]
fn a_call_of_five_thousand_events_stays_well_inside_an_item() {
    let events: Vec<CanonicalEvent> = (0..5_000)
        .map(|i| ev(&format!("p{i:05}"), "call.progress", Kind::Report, i))
        .collect();
    let r = record(&events);
    assert_eq!(r.event_count, 5_000);
    assert!(
        events
            .iter()
            .all(|e| r.applied_event_ids.contains(&e.event_id))
    );
    let json = serde_json::to_string(&r).unwrap();
    assert!(json.len() < 100_000, "{} bytes", json.len());
}

// ---- calls that never finish ----

fn gave_up(secs: i64) -> CanonicalEvent {
    ev("callhook:gave-up", "callhook.gave_up", Kind::Ended, secs)
        .terminal(None)
        .with(|e| e.source = Some(crate::domain::event::Origin::GaveUp))
}

#[test]
fn giving_up_finalizes_as_unknown_and_incomplete_once() {
    let (r, fx) = apply_all(&[answered("a", 0), gave_up(90_000)]);
    let r = r.unwrap();
    assert_eq!(r.status, Some(CallStatus::Ended));
    assert_eq!(r.outcome, Some(Outcome::Unknown));
    assert!(r.incomplete);
    assert_eq!(finalizes(&fx), 1);
    assert_eq!(r.ended_at, None, "nobody knows when it ended");
    let (_, again) = apply(Some(r.clone()), &gave_up(90_000));
    assert!(again.is_empty());
}

#[test]
fn a_real_end_after_giving_up_replaces_it_and_goes_out_as_an_update() {
    let given_up = record(&[answered("a", 0), gave_up(90_000)]);
    let (r, fx) = apply(Some(given_up), &hangup("h", 60, Outcome::Completed));
    let r = r.unwrap();
    assert_eq!(r.outcome, Some(Outcome::Completed));
    assert!(!r.incomplete);
    assert_eq!(r.final_event_id.as_deref(), Some("stateset#h"));
    assert_eq!(finalizes(&fx), 0, "never a second completion");
    assert_eq!(
        count(&fx, |e| matches!(e, Effect::Enrich { .. })),
        1,
        "one call.updated"
    );
    // In the other order the give-up changes nothing visible.
    let (r2, fx2) = apply_all(&[
        answered("a", 0),
        hangup("h", 60, Outcome::Completed),
        gave_up(90_000),
    ]);
    assert_eq!(finalizes(&fx2), 1);
    assert_eq!(r2.unwrap().view(), r.view());
}

#[test]
fn receipt_times_track_the_first_and_latest_webhook_only() {
    let mut late = answered("b", 5);
    late.received_at = t(500);
    let r = record(&[answered("a", 0), late, gave_up(90_000)]);
    assert_eq!(r.first_received_at, Some(t(1)));
    assert_eq!(r.last_received_at, Some(t(500)));
}
