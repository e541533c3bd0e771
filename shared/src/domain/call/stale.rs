//! Calls that never finish: what the stale pass decides about an open call, and the events it
//! makes (pure; the pass itself is `app::stale`). A call quiet for `after` is asked about at its
//! provider's API, with backoff; one quiet for `give_up` is given up on (docs/lifecycle.md,
//! "Calls that never finish").

use chrono::{DateTime, Duration, Utc};

use super::record::CallRecord;
use crate::domain::event::{CanonicalEvent, Kind, Origin, Outcome};

/// A call's end as its provider's API reports it, in callhook's vocabulary.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FinalState {
    /// The provider's own word for the end (`completed`, `no-answer`, `ended`, …): the backfill
    /// event's type is `backfill.{status}`.
    pub status: String,
    /// `None` when the answer does not say (the record's outcome stays as it is).
    pub outcome: Option<Outcome>,
    pub started_at: Option<DateTime<Utc>>,
    pub answered_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    pub duration_secs: Option<u64>,
    pub hangup_cause: Option<String>,
}

/// STALE_AFTER_SECS, STALE_GIVE_UP_SECS and the backoff between two questions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StalePolicy {
    /// Quiet this long: ask the provider's API.
    pub after: Duration,
    /// Quiet this long with no final answer: give up.
    pub give_up: Duration,
    /// The wait after the first unanswered question; it doubles up to `max_backoff`.
    pub backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for StalePolicy {
    fn default() -> Self {
        StalePolicy {
            after: Duration::hours(4),
            give_up: Duration::hours(24),
            backoff: Duration::minutes(15),
            max_backoff: Duration::hours(4),
        }
    }
}

/// What to do with one open call now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Not quiet long enough, final already, or waiting out its backoff.
    Wait,
    /// Ask its provider's API.
    Ask,
    /// Finalize it as `unknown`, `incomplete`.
    GiveUp,
}

/// When the call was last heard of: its latest webhook's receipt (records written before
/// receipt times were kept: its latest fact's time).
pub fn quiet_since(record: &CallRecord) -> Option<DateTime<Utc>> {
    record.last_received_at.or(record.last_occurred_at)
}

/// The stale pass's decision for `record` at `now`. `asked_after`: the end of its backoff, if
/// it was asked before; `has_api`: its provider's API is configured.
pub fn decide(
    record: &CallRecord,
    now: DateTime<Utc>,
    policy: &StalePolicy,
    asked_after: Option<DateTime<Utc>>,
    has_api: bool,
) -> Next {
    let Some(quiet) = quiet_since(record).filter(|_| !record.is_final()) else {
        return Next::Wait;
    };
    let quiet_for = now - quiet;
    if quiet_for >= policy.give_up {
        Next::GiveUp
    } else if quiet_for >= policy.after && has_api && asked_after.is_none_or(|t| t <= now) {
        Next::Ask
    } else {
        Next::Wait
    }
}

/// The wait before asking again after `tries` unanswered questions.
pub fn backoff(tries: u32, policy: &StalePolicy) -> Duration {
    let doubled = policy.backoff * 2i32.saturating_pow(tries.min(16));
    doubled.min(policy.max_backoff)
}

/// The longest wait a provider's `Retry-After` is granted: a day. Whatever a provider sends
/// (the header is any number), the time it asks for stays a time chrono can add.
pub const MAX_RETRY_AFTER_SECS: u64 = 86_400;

/// The wait before asking again: the backoff, or what the provider asked for if longer.
pub fn wait_before_asking_again(
    tries: u32,
    policy: &StalePolicy,
    retry_after_secs: Option<u64>,
) -> Duration {
    let asked = retry_after_secs.unwrap_or(0).min(MAX_RETRY_AFTER_SECS);
    backoff(tries, policy).max(Duration::seconds(asked as i64))
}

/// The provider's own key for the call (the call id after `{provider}#`); `None` when it was
/// hashed (too long to keep) and so cannot be asked about.
pub fn call_key(record: &CallRecord) -> Option<&str> {
    let key = record
        .call_id
        .strip_prefix(&record.provider)?
        .strip_prefix('#')?;
    (!key.starts_with("sha256:") && !key.is_empty()).then_some(key)
}

fn made_here(
    record: &CallRecord,
    what: &str,
    event_type: &str,
    source: Origin,
    now: DateTime<Utc>,
) -> CanonicalEvent {
    // Deterministic: two passes make the same event, and the lifecycle applies it once.
    let key = format!("callhook:{what}:{}", record.call_id);
    let mut event = CanonicalEvent::new(&record.provider, &key, event_type, now);
    event.kind = Kind::Ended;
    event.is_final = true;
    event.call_id = Some(record.call_id.clone());
    event.source = Some(source);
    event
}

/// The provider API's final answer as an ordinary terminal fact.
pub fn backfill_event(
    record: &CallRecord,
    state: &FinalState,
    now: DateTime<Utc>,
) -> CanonicalEvent {
    let status = if state.status.is_empty() {
        "ended"
    } else {
        &state.status
    };
    let event_type = format!("backfill.{status}");
    let mut event = made_here(record, "backfill", &event_type, Origin::Backfill, now);
    event.occurred_at = state.ended_at.unwrap_or(now);
    event.outcome = state.outcome;
    let facts = &mut event.facts;
    facts.started_at = state.started_at;
    facts.answered_at = state.answered_at;
    facts.ended_at = state.ended_at;
    facts.duration_secs = state.duration_secs;
    facts.hangup_cause = state.hangup_cause.clone();
    event
}

/// Giving up on the call: it ends as `unknown`, `incomplete`, until a real end comes.
pub fn gave_up_event(record: &CallRecord, now: DateTime<Utc>) -> CanonicalEvent {
    made_here(record, "gave-up", "callhook.gave_up", Origin::GaveUp, now)
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::domain::call::apply_all;

    fn at(hours: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_780_000_000, 0).unwrap() + Duration::hours(hours)
    }

    fn open(quiet_since: DateTime<Utc>) -> CallRecord {
        let mut r = CallRecord::new("twilio#CA1", "twilio");
        r.last_received_at = Some(quiet_since);
        r
    }

    #[test]
    fn quiet_calls_are_asked_then_given_up_on() {
        let policy = StalePolicy::default();
        let r = open(at(0));
        assert_eq!(decide(&r, at(3), &policy, None, true), Next::Wait);
        assert_eq!(decide(&r, at(4), &policy, None, true), Next::Ask);
        assert_eq!(decide(&r, at(4), &policy, None, false), Next::Wait);
        assert_eq!(decide(&r, at(5), &policy, Some(at(6)), true), Next::Wait);
        assert_eq!(decide(&r, at(6), &policy, Some(at(6)), true), Next::Ask);
        assert_eq!(
            decide(&r, at(24), &policy, Some(at(30)), true),
            Next::GiveUp
        );
        assert_eq!(decide(&r, at(24), &policy, None, false), Next::GiveUp);
        let mut done = r.clone();
        done.final_event_id = Some("twilio#x".into());
        assert_eq!(decide(&done, at(48), &policy, None, true), Next::Wait);
    }

    #[test]
    fn backoff_doubles_to_its_cap() {
        let policy = StalePolicy::default();
        assert_eq!(backoff(0, &policy), Duration::minutes(15));
        assert_eq!(backoff(2, &policy), Duration::hours(1));
        assert_eq!(backoff(10, &policy), Duration::hours(4));
        assert_eq!(backoff(u32::MAX, &policy), Duration::hours(4));
    }

    #[test]
    fn a_providers_retry_after_is_granted_up_to_a_day() {
        let policy = StalePolicy::default();
        assert_eq!(
            wait_before_asking_again(0, &policy, Some(3 * 3600)),
            Duration::hours(3)
        );
        assert_eq!(
            wait_before_asking_again(2, &policy, Some(60)),
            Duration::hours(1)
        );
        // Any number a header can carry once made chrono panic ("TimeDelta::seconds out of
        // bounds") on every pass.
        for huge in [99_999_999_999_999_999, u64::MAX] {
            let wait = wait_before_asking_again(0, &policy, Some(huge));
            assert_eq!(wait, Duration::days(1));
            assert!(at(0).checked_add_signed(wait).is_some());
        }
    }

    #[test]
    fn only_a_kept_key_can_be_asked_about() {
        assert_eq!(call_key(&open(at(0))), Some("CA1"));
        let hashed = CallRecord::new("twilio#sha256:ab", "twilio");
        assert_eq!(call_key(&hashed), None);
    }

    #[test]
    fn two_passes_make_the_same_backfill_and_it_finalizes_with_the_apis_end() {
        let r = open(at(0));
        let state = FinalState {
            status: "completed".into(),
            outcome: Some(Outcome::Completed),
            started_at: Some(at(0)),
            ended_at: Some(at(1)),
            duration_secs: Some(3_600),
            ..FinalState::default()
        };
        let first = backfill_event(&r, &state, at(5));
        assert_eq!(first.event_id, backfill_event(&r, &state, at(6)).event_id);
        assert_eq!(first.event_type, "backfill.completed");
        let (record, effects) = apply_all(&[first.clone(), first]);
        let record = record.unwrap();
        assert_eq!(record.ended_at, Some(at(1)));
        assert_eq!(record.duration_secs, Some(3_600));
        assert_eq!(record.outcome, Some(Outcome::Completed));
        assert!(!record.incomplete);
        assert_eq!(
            effects
                .iter()
                .filter(|e| matches!(e, crate::domain::call::Effect::Finalize { .. }))
                .count(),
            1
        );
    }
}
