//! One call's story, the call page's model: its events in the order they occurred and in the
//! order they arrived, duplicates and late arrivals marked, what each event changed in the
//! record, the dispatches the events caused with their ledger entries, and the review items.
//!
//! Pure: [`build`] takes what the stores hold (the stored events normalized again, ingest's
//! deliveries where the log is at hand, ledger entries, review items) and replays the reducer
//! (`callhook::domain::call::apply`) one event at a time, in order of receipt — the order the
//! lifecycle applied them — to say what each one changed.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::Value;

use callhook::domain::call::{
    CallRecord, Effect, apply, escalation_dispatch_id, finalize_dispatch_id,
};
use callhook::domain::event::CanonicalEvent;
use callhook::domain::review::{ReviewItem, dispatch_pk, event_pk};
use callhook::ports::LedgerEntry;

use super::text::clipped;

/// A stored event of the call, normalized again from its raw bytes (`None` when it could not
/// be: its provider is not configured here, or it no longer reads).
#[derive(Debug, Clone)]
pub struct StoredFact {
    pub event_id: String,
    /// RECEIVED, PROCESSED or REVIEW.
    pub status: String,
    pub received_at: DateTime<Utc>,
    pub raw_bytes: usize,
    pub event: Option<CanonicalEvent>,
}

/// One delivery ingest answered (from its log, `callhook dev`'s functions.log).
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub at: DateTime<Utc>,
    pub event_id: String,
    /// accepted, duplicate, review, …
    pub outcome: String,
    pub status: u16,
}

/// What the page gets from the stores.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    pub call_id: String,
    /// The record as stored, its large facts read back (`WholeCalls`).
    pub record: Option<CallRecord>,
    /// Dispatches the call still owes the queue.
    pub outbox: Vec<Effect>,
    pub events: Vec<StoredFact>,
    /// `None` when ingest's log is not at hand (a deployed stack: CloudWatch Logs).
    pub deliveries: Option<Vec<Delivery>>,
    /// Ledger entries by dispatch id.
    pub ledger: BTreeMap<String, LedgerEntry>,
    /// Review items of the call's events and dispatches, by pk.
    pub review: BTreeMap<String, ReviewItem>,
}

/// One field the event changed: its value before and after, as shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub field: &'static str,
    pub before: String,
    pub after: String,
}

/// Why an event counts as late.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Late {
    /// It arrived after the call's terminal fact: the call was final already (a
    /// `call.updated`, if it changed anything).
    AfterFinal,
    /// It arrived after an event that occurred later (the 1-based occurrence position of the
    /// first such event).
    OutOfOrder { after: usize },
}

/// One event in the timeline.
#[derive(Debug, Clone, PartialEq)]
pub struct TimelineEvent {
    pub event_id: String,
    pub event_type: String,
    pub kind: String,
    pub status: String,
    pub occurred_at: Option<DateTime<Utc>>,
    pub received_at: DateTime<Utc>,
    /// 1-based positions in each order.
    pub occurrence: usize,
    pub receipt: usize,
    /// How often ingest answered a delivery of it (`None` without ingest's log).
    pub deliveries: Option<usize>,
    /// Deliveries ingest answered `duplicate`.
    pub duplicates: usize,
    /// Another event of this call carries the same fact (same type, kind and time) under
    /// another id, received before this one: its occurrence position.
    pub same_fact_as: Option<usize>,
    pub late: Vec<Late>,
    /// What applying it changed in the record (replayed in order of receipt).
    pub changes: Vec<Change>,
    /// What applying it asked for: dispatches (by type and id) or review.
    pub effects: Vec<String>,
    /// Why it did not read, or why it did not apply.
    pub note: Option<String>,
    /// Its review item's pk, if it has one.
    pub review: Option<String>,
}

/// One row of the order-of-receipt view: a delivery, duplicates included.
#[derive(Debug, Clone, PartialEq)]
pub struct Receipt {
    pub at: DateTime<Utc>,
    /// Index into [`CallStory::events`].
    pub event: usize,
    pub duplicate: bool,
    /// What ingest answered (`None` without its log).
    pub answer: Option<String>,
}

/// A dispatch of the call.
#[derive(Debug, Clone, PartialEq)]
pub struct DispatchView {
    pub dispatch_id: String,
    /// call.completed, call.updated, call.escalated, call.action (when known).
    pub message_type: Option<&'static str>,
    /// Occurrence position of the event that caused it.
    pub caused_by: Option<usize>,
    pub ledger: Option<LedgerEntry>,
    /// Still in the record's outbox (not queued yet).
    pub in_outbox: bool,
    pub review: Option<String>,
}

/// The call page's model.
#[derive(Debug, Clone, PartialEq)]
pub struct CallStory {
    pub call_id: String,
    pub record: Option<CallRecord>,
    /// In order of occurrence.
    pub events: Vec<TimelineEvent>,
    /// In order of receipt.
    pub receipts: Vec<Receipt>,
    pub deliveries_known: bool,
    pub dispatches: Vec<DispatchView>,
    /// Review items of this call (pk, reason, status).
    pub review: Vec<(String, String, String)>,
    /// The replayed record differs from the stored one (a fact the replay could not read).
    pub replay_differs: bool,
}

/// The record fields a person follows, in the order they are shown (the timeline's changes and
/// the final record alike).
pub const FIELDS: &[&str] = &[
    "status",
    "outcome",
    "direction",
    "from",
    "to",
    "started_at",
    "ringing_at",
    "answered_at",
    "ended_at",
    "duration_secs",
    "hangup_cause",
    "recording_url",
    "transcript",
    "analysis",
    "cost",
    "metadata",
    "errors",
    "actions",
    "incomplete",
    "final_event_id",
];

/// A record value as one short line: "—" for none.
pub fn show_value(value: &Value) -> String {
    match value {
        Value::Null => "—".to_owned(),
        Value::String(s) => clipped(s, 80),
        Value::Array(a) if a.is_empty() => "—".to_owned(),
        other => clipped(&other.to_string(), 80),
    }
}

fn fields_of(record: Option<&CallRecord>) -> serde_json::Map<String, Value> {
    match record.map(serde_json::to_value) {
        Some(Ok(Value::Object(map))) => map,
        _ => serde_json::Map::new(),
    }
}

/// What changed from `before` to `after`, field by field.
pub fn changes(before: Option<&CallRecord>, after: Option<&CallRecord>) -> Vec<Change> {
    let (before, after) = (fields_of(before), fields_of(after));
    FIELDS
        .iter()
        .filter_map(|field| {
            let old = before.get(*field).unwrap_or(&Value::Null);
            let new = after.get(*field).unwrap_or(&Value::Null);
            let (before, after) = (show_value(old), show_value(new));
            // `null` and `[]` both read "—": not a change a person would see.
            (old != new && before != after).then_some(Change {
                field,
                before,
                after,
            })
        })
        .collect()
}

fn effect_text(effect: &Effect) -> String {
    match effect {
        Effect::Review { reason, .. } => format!("review: {reason}"),
        other => format!(
            "dispatch {} ({})",
            other.message_type().unwrap_or("?"),
            clipped(other.dispatch_id().unwrap_or(""), 120)
        ),
    }
}

/// The story of a call from what the stores hold.
pub fn build(inputs: Inputs) -> CallStory {
    let Inputs {
        call_id,
        record,
        outbox,
        events,
        deliveries,
        ledger,
        review,
    } = inputs;

    // Order of receipt: the stored receipt time (ingest's clock), then the id.
    let mut by_receipt: Vec<usize> = (0..events.len()).collect();
    by_receipt.sort_by(|&a, &b| {
        (events[a].received_at, &events[a].event_id)
            .cmp(&(events[b].received_at, &events[b].event_id))
    });
    // Order of occurrence: the provider's time (receipt when it gave none), then receipt.
    let occurred = |i: usize| {
        events[i]
            .event
            .as_ref()
            .map_or(events[i].received_at, |e| e.occurred_at)
    };
    let mut by_occurrence: Vec<usize> = (0..events.len()).collect();
    by_occurrence.sort_by(|&a, &b| {
        (occurred(a), events[a].received_at, &events[a].event_id).cmp(&(
            occurred(b),
            events[b].received_at,
            &events[b].event_id,
        ))
    });
    let mut occurrence_of = vec![0; events.len()];
    for (position, &i) in by_occurrence.iter().enumerate() {
        occurrence_of[i] = position + 1;
    }
    let mut receipt_of = vec![0; events.len()];
    for (position, &i) in by_receipt.iter().enumerate() {
        receipt_of[i] = position + 1;
    }

    // Replay in order of receipt: what each event changed, and what it asked for.
    let mut replayed: Option<CallRecord> = None;
    let mut changed: Vec<Vec<Change>> = vec![Vec::new(); events.len()];
    let mut effects: Vec<Vec<Effect>> = vec![Vec::new(); events.len()];
    let mut final_seen = false;
    let mut late: Vec<Vec<Late>> = vec![Vec::new(); events.len()];
    let mut latest_occurred: Option<(DateTime<Utc>, usize)> = None;
    let mut facts_seen: BTreeMap<(String, String, DateTime<Utc>), usize> = BTreeMap::new();
    let mut same_fact: Vec<Option<usize>> = vec![None; events.len()];
    for &i in &by_receipt {
        if final_seen {
            late[i].push(Late::AfterFinal);
        }
        let at = occurred(i);
        if let Some((latest, j)) = latest_occurred
            && latest > at
        {
            late[i].push(Late::OutOfOrder {
                after: occurrence_of[j],
            });
        }
        if latest_occurred.is_none_or(|(latest, _)| at > latest) {
            latest_occurred = Some((at, i));
        }
        let Some(event) = &events[i].event else {
            continue;
        };
        let fact = (event.event_type.clone(), event.kind.as_str().to_owned(), at);
        match facts_seen.get(&fact) {
            Some(&first) => same_fact[i] = Some(occurrence_of[first]),
            None => {
                facts_seen.insert(fact, i);
            }
        }
        let before = replayed.clone();
        let (after, emitted) = apply(replayed, event);
        changed[i] = changes(before.as_ref(), after.as_ref());
        effects[i] = emitted;
        replayed = after;
        if event.is_final {
            final_seen = true;
        }
    }

    let deliveries_known = deliveries.is_some();
    let mut delivered: BTreeMap<&str, Vec<&Delivery>> = BTreeMap::new();
    for delivery in deliveries.iter().flatten() {
        delivered
            .entry(delivery.event_id.as_str())
            .or_default()
            .push(delivery);
    }

    let timeline_event = |i: usize| {
        let fact = &events[i];
        let copies = delivered.get(fact.event_id.as_str());
        let note = match &fact.event {
            None => Some("not readable here (its provider is not configured, or the body no longer normalizes)".to_owned()),
            Some(event) => event
                .review
                .as_ref()
                .map(|note| format!("{}: {}", note.reason, clipped(&note.detail, 200))),
        };
        let review_pk = event_pk(&fact.event_id);
        TimelineEvent {
            event_id: fact.event_id.clone(),
            event_type: fact
                .event
                .as_ref()
                .map_or_else(|| "?".to_owned(), |e| e.event_type.clone()),
            kind: fact
                .event
                .as_ref()
                .map_or_else(|| "?".to_owned(), |e| e.kind.as_str().to_owned()),
            status: fact.status.clone(),
            occurred_at: fact.event.as_ref().map(|e| e.occurred_at),
            received_at: fact.received_at,
            occurrence: occurrence_of[i],
            receipt: receipt_of[i],
            deliveries: deliveries_known.then(|| copies.map_or(0, Vec::len)),
            duplicates: copies.map_or(0, |c| c.iter().filter(|d| d.outcome == "duplicate").count()),
            same_fact_as: same_fact[i],
            late: late[i].clone(),
            changes: changed[i].clone(),
            effects: effects[i].iter().map(effect_text).collect(),
            note,
            review: review.contains_key(&review_pk).then_some(review_pk),
        }
    };
    let timeline: Vec<TimelineEvent> = by_occurrence.iter().map(|&i| timeline_event(i)).collect();
    // Index into `timeline` of stored event i.
    let position = |i: usize| occurrence_of[i] - 1;

    let mut receipts: Vec<Receipt> = Vec::new();
    for &i in &by_receipt {
        let copies = delivered.get(events[i].event_id.as_str());
        match copies {
            Some(copies) if !copies.is_empty() => {
                for (n, copy) in copies.iter().enumerate() {
                    receipts.push(Receipt {
                        // The stored receipt time for the stored copy; the log's for the rest.
                        at: if n == 0 {
                            events[i].received_at
                        } else {
                            copy.at
                        },
                        event: position(i),
                        duplicate: copy.outcome == "duplicate",
                        answer: Some(format!("{} {}", copy.status, copy.outcome)),
                    });
                }
            }
            _ => receipts.push(Receipt {
                at: events[i].received_at,
                event: position(i),
                duplicate: false,
                answer: None,
            }),
        }
    }
    receipts.sort_by_key(|r| r.at);

    // Dispatches: those the replay says the events caused, those still owed, and the call's
    // one-per-call ids, each with its ledger entry.
    let mut dispatches: Vec<DispatchView> = Vec::new();
    let mut add = |id: &str, message_type: Option<&'static str>, caused_by: Option<usize>| {
        if let Some(existing) = dispatches.iter_mut().find(|d| d.dispatch_id == id) {
            existing.caused_by = existing.caused_by.or(caused_by);
            existing.message_type = existing.message_type.or(message_type);
            return;
        }
        dispatches.push(DispatchView {
            dispatch_id: id.to_owned(),
            message_type,
            caused_by,
            ledger: ledger.get(id).cloned(),
            in_outbox: outbox.iter().any(|e| e.dispatch_id() == Some(id)),
            review: review
                .contains_key(&dispatch_pk(id))
                .then(|| dispatch_pk(id)),
        });
    };
    for &i in &by_occurrence {
        for effect in &effects[i] {
            if let Some(id) = effect.dispatch_id() {
                add(id, effect.message_type(), Some(occurrence_of[i]));
            }
        }
    }
    for effect in &outbox {
        if let Some(id) = effect.dispatch_id() {
            add(id, effect.message_type(), None);
        }
    }
    for (id, message_type) in [
        (finalize_dispatch_id(&call_id), "call.completed"),
        (escalation_dispatch_id(&call_id), "call.escalated"),
    ] {
        if ledger.contains_key(&id) {
            add(&id, Some(message_type), None);
        }
    }
    for id in ledger.keys() {
        add(id, None, None);
    }

    let review_rows = review
        .values()
        .map(|item| {
            (
                item.pk.clone(),
                item.reason.to_string(),
                item.status.as_str().to_owned(),
            )
        })
        .collect();

    let replay_differs = match (&record, &replayed) {
        (Some(stored), Some(replayed)) => changes(Some(stored), Some(replayed))
            .iter()
            .any(|c| c.field != "final_event_id"),
        (None, None) => false,
        _ => !events.is_empty(),
    };

    CallStory {
        call_id,
        record,
        events: timeline,
        receipts,
        deliveries_known,
        dispatches,
        review: review_rows,
        replay_differs,
    }
}

/// Ingest's deliveries of `call_id` in a functions.log (JSON lines as `callhook dev` writes
/// them, one per log event): the `ingest` lines naming the call. Unreadable lines are skipped.
pub fn deliveries_in_log(log: &str, call_id: &str) -> Vec<Delivery> {
    log.lines()
        .filter(|line| line.contains("\"ingest\"") && line.contains("call_id"))
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|entry| {
            entry["fields"]["message"] == "ingest" && entry["fields"]["call_id"] == call_id
        })
        .filter_map(|entry| {
            let fields = &entry["fields"];
            Some(Delivery {
                at: entry["timestamp"].as_str()?.parse().ok()?,
                event_id: fields["event_id"].as_str()?.to_owned(),
                outcome: fields["outcome"].as_str().unwrap_or("").to_owned(),
                status: fields["status"].as_u64().unwrap_or(0) as u16,
            })
        })
        .filter(|d| !d.event_id.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use callhook::config::Env;
    use callhook::domain::event::Kind;
    use callhook::ports::LedgerStatus;
    use callhook::providers::Providers;
    use chrono::{Duration, TimeZone};

    use super::*;

    fn t(secs: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0).unwrap() + Duration::seconds(secs)
    }

    /// A Telnyx event normalized from its body, as the console reads stored events.
    fn telnyx(id: &str, event_type: &str, occurred: i64, received: i64) -> StoredFact {
        let body = serde_json::json!({"data": {
            "event_type": event_type,
            "id": id,
            "occurred_at": t(occurred).to_rfc3339(),
            "payload": {"call_session_id": "s1", "hangup_cause": "normal_clearing",
                        "direction": "incoming", "from": "+15550001", "to": "+15550002"}
        }})
        .to_string();
        let stored = callhook::ports::StoredEvent {
            event_id: format!("telnyx#{id}"),
            provider: "telnyx".into(),
            status: callhook::ports::EventStatus::Processed,
            raw_body: body.into_bytes(),
            headers: callhook::providers::Headers::new(),
            received_at: t(received),
            call_id: Some("telnyx#s1".into()),
            queue_failed: false,
        };
        let normalizers = Providers::normalizers(&Env::default()).unwrap();
        let event = callhook::app::whole_calls::normalize_stored(&stored, &normalizers);
        StoredFact {
            event_id: stored.event_id,
            status: "PROCESSED".into(),
            received_at: stored.received_at,
            raw_bytes: stored.raw_body.len(),
            event,
        }
    }

    fn delivery(id: &str, at: i64, outcome: &str) -> Delivery {
        Delivery {
            at: t(at),
            event_id: format!("telnyx#{id}"),
            outcome: outcome.into(),
            status: 200,
        }
    }

    /// A call whose hangup arrived first, its answer after it, and its initiation twice.
    fn shuffled() -> Inputs {
        let events = vec![
            telnyx("hangup", "call.hangup", 30, 100),
            telnyx("answered", "call.answered", 10, 101),
            telnyx("initiated", "call.initiated", 0, 102),
        ];
        let normalized: Vec<CanonicalEvent> =
            events.iter().map(|e| e.event.clone().unwrap()).collect();
        assert_eq!(normalized[0].kind, Kind::Ended);
        let (record, _) = callhook::domain::call::apply_all(&normalized);
        let finalize = finalize_dispatch_id("telnyx#s1");
        Inputs {
            call_id: "telnyx#s1".into(),
            record,
            outbox: Vec::new(),
            events,
            deliveries: Some(vec![
                delivery("hangup", 100, "accepted"),
                delivery("answered", 101, "accepted"),
                delivery("initiated", 102, "accepted"),
                delivery("initiated", 103, "duplicate"),
            ]),
            ledger: BTreeMap::from([(
                finalize.clone(),
                LedgerEntry {
                    dispatch_id: finalize,
                    status: LedgerStatus::Sent,
                    attempts: 2,
                    status_code: Some(200),
                    detail: None,
                    updated_at: Some(t(110)),
                    sent_at: Some(t(110)),
                    lease_until: None,
                },
            )]),
            review: BTreeMap::new(),
        }
    }

    #[test]
    fn a_shuffled_call_reads_in_occurrence_order_with_its_duplicate_and_late_events() {
        let story = build(shuffled());
        let types: Vec<&str> = story.events.iter().map(|e| e.event_type.as_str()).collect();
        assert_eq!(types, ["call.initiated", "call.answered", "call.hangup"]);
        let receipt: Vec<usize> = story.events.iter().map(|e| e.receipt).collect();
        assert_eq!(receipt, [3, 2, 1]);

        let initiated = &story.events[0];
        assert_eq!(initiated.deliveries, Some(2));
        assert_eq!(initiated.duplicates, 1);
        assert!(initiated.late.contains(&Late::AfterFinal));
        assert!(initiated.late.contains(&Late::OutOfOrder { after: 3 }));
        assert!(story.events[2].late.is_empty(), "the first to arrive");

        // Order of receipt: four deliveries, the duplicate last and marked.
        let rows: Vec<(usize, bool)> = story
            .receipts
            .iter()
            .map(|r| (r.event, r.duplicate))
            .collect();
        assert_eq!(rows, [(2, false), (1, false), (0, false), (0, true)]);
        assert_eq!(story.receipts[3].answer.as_deref(), Some("200 duplicate"));
    }

    #[test]
    fn giving_up_on_a_call_shows_as_a_change() {
        let before = CallRecord::new("twilio#CA1", "twilio");
        let mut after = before.clone();
        after.incomplete = true;
        let fields: Vec<&str> = changes(Some(&before), Some(&after))
            .iter()
            .map(|c| c.field)
            .collect();
        assert_eq!(fields, ["incomplete"]);
    }

    #[test]
    fn each_event_shows_what_it_changed_and_what_it_caused() {
        let story = build(shuffled());
        let hangup = &story.events[2];
        let fields: Vec<&str> = hangup.changes.iter().map(|c| c.field).collect();
        assert!(fields.contains(&"status"), "{fields:?}");
        assert!(
            !fields.contains(&"errors"),
            "none → [] is no change: {fields:?}"
        );
        let status = hangup.changes.iter().find(|c| c.field == "status").unwrap();
        assert_eq!(
            (status.before.as_str(), status.after.as_str()),
            ("—", "ended")
        );
        assert!(
            hangup
                .effects
                .iter()
                .any(|e| e.starts_with("dispatch call.completed")),
            "{:?}",
            hangup.effects
        );
        // The answer came after the hangup: it still sets answered_at, and the call was final.
        let answered = &story.events[1];
        assert!(answered.changes.iter().any(|c| c.field == "answered_at"));
        assert!(answered.late.contains(&Late::AfterFinal));
        assert!(
            answered
                .effects
                .iter()
                .any(|e| e.starts_with("dispatch call.updated")),
            "{:?}",
            answered.effects
        );

        let completed = story
            .dispatches
            .iter()
            .find(|d| d.message_type == Some("call.completed"))
            .unwrap();
        assert_eq!(completed.caused_by, Some(3));
        let ledger = completed.ledger.as_ref().unwrap();
        assert_eq!((ledger.attempts, ledger.status_code), (2, Some(200)));
        let updated = story
            .dispatches
            .iter()
            .find(|d| d.message_type == Some("call.updated"))
            .unwrap();
        assert!(updated.ledger.is_none(), "not in the ledger: shown as such");
        assert!(!story.replay_differs);
    }

    #[test]
    fn an_unreadable_event_and_a_reviewed_one_are_explained() {
        let mut inputs = shuffled();
        inputs.events.push(StoredFact {
            event_id: "plivo#x".into(),
            status: "RECEIVED".into(),
            received_at: t(200),
            raw_bytes: 10,
            event: None,
        });
        let mut unknown = telnyx("u1", "call.teleported", 20, 150);
        unknown.status = "REVIEW".into();
        inputs.events.push(unknown);
        let mut item = callhook::domain::review::ReviewItem::open(
            event_pk("telnyx#u1"),
            callhook::domain::review::ReviewReason::UnknownType,
            "telnyx#u1",
            Value::Null,
            1,
            "",
            None,
            None,
            t(150),
        );
        item.provider = Some("telnyx".into());
        inputs.review.insert(item.pk.clone(), item);
        inputs.deliveries = None;
        let story = build(inputs);
        assert!(!story.deliveries_known);
        let unknown = story
            .events
            .iter()
            .find(|e| e.event_id == "telnyx#u1")
            .unwrap();
        assert_eq!(unknown.review.as_deref(), Some("event#telnyx#u1"));
        assert!(unknown.effects.iter().any(|e| e == "review: unknown_type"));
        assert!(unknown.changes.is_empty());
        let unreadable = story
            .events
            .iter()
            .find(|e| e.event_id == "plivo#x")
            .unwrap();
        assert!(unreadable.note.as_deref().unwrap().contains("not readable"));
        assert_eq!(unreadable.deliveries, None);
        assert_eq!(story.review.len(), 1);
    }

    #[test]
    fn deliveries_come_from_ingest_lines_of_the_call() {
        let log = [
            r#"{"timestamp":"2026-01-01T12:00:01Z","level":"INFO","fields":{"message":"ingest","provider":"telnyx","event_id":"telnyx#a","call_id":"telnyx#s1","outcome":"accepted","status":200}}"#,
            r#"{"timestamp":"2026-01-01T12:00:02Z","level":"INFO","fields":{"message":"ingest","provider":"telnyx","event_id":"telnyx#a","call_id":"telnyx#s1","outcome":"duplicate","status":200}}"#,
            r#"{"timestamp":"2026-01-01T12:00:03Z","level":"INFO","fields":{"message":"ingest","provider":"telnyx","event_id":"telnyx#b","call_id":"telnyx#other","outcome":"accepted","status":200}}"#,
            r#"{"timestamp":"2026-01-01T12:00:04Z","level":"INFO","fields":{"message":"applied","event_id":"telnyx#a","call_id":"telnyx#s1"}}"#,
            "not json \"ingest\" call_id",
        ]
        .join("\n");
        let found = deliveries_in_log(&log, "telnyx#s1");
        assert_eq!(found.len(), 2);
        assert_eq!(found[1].outcome, "duplicate");
        assert_eq!(found[1].at, t(2));
    }
}
