//! Large facts kept by reference. A transcript, an analysis or a provider's error list can be
//! hundreds of kilobytes, and the call record is rewritten on every event: copied in, it would
//! make every later write cost as many write units as it has kilobytes, and could push the call
//! past the store's item limit (then no commit for it would ever succeed). So the stored record
//! holds `{"$event": "<event id>"}` in place of any fact over [`LARGE_FACT_BYTES`], and whoever
//! needs the value (a dispatch body, an operator) reads it back from the stored event that
//! carried it ([`CallRecord::resolve`]).

use std::collections::BTreeSet;

use serde_json::{Value, json};

use super::record::CallRecord;
use crate::domain::event::{CanonicalEvent, Facts};
use crate::domain::text::json_len;

/// A fact whose JSON is longer than this is kept by reference.
pub const LARGE_FACT_BYTES: usize = 1024;

/// The event a fact kept by reference lives in.
pub fn referenced_event(fact: &Value) -> Option<&str> {
    fact.as_object()
        .filter(|m| m.len() == 1)?
        .get("$event")?
        .as_str()
}

/// `fact` replaced by a reference to `event_id` when it is large.
fn by_reference(fact: &mut Value, event_id: &str) {
    if !event_id.is_empty() && referenced_event(fact).is_none() && json_len(fact) > LARGE_FACT_BYTES
    {
        *fact = json!({ "$event": event_id });
    }
}

impl Facts {
    /// These facts with every large one replaced by a reference to `event_id`, the event that
    /// carries them (for a queue message that must stay small).
    pub fn by_reference(&mut self, event_id: &str) {
        let large = [
            &mut self.transcript,
            &mut self.analysis,
            &mut self.cost,
            &mut self.metadata,
            &mut self.errors,
            &mut self.action,
        ];
        for fact in large.into_iter().flatten() {
            by_reference(fact, event_id);
        }
    }
}

impl CallRecord {
    /// The record as stored: every large fact replaced by a reference to its event.
    pub fn by_reference(&self) -> CallRecord {
        let mut stored = self.clone();
        for (name, slot) in stored.facts_mut() {
            let source = self.sources.get(name).map(|s| s.event_id.as_str());
            if let (Some(fact), Some(event_id)) = (slot.as_mut(), source) {
                by_reference(fact, event_id);
            }
        }
        for entry in &mut stored.errors {
            by_reference(&mut entry.errors, &entry.event_id);
        }
        for entry in &mut stored.actions {
            if let Some(action) = entry.action.as_mut() {
                by_reference(action, &entry.event_id);
            }
        }
        stored
    }

    /// The events this record holds facts of by reference.
    pub fn references(&self) -> BTreeSet<String> {
        let singles = [&self.transcript, &self.analysis, &self.cost, &self.metadata];
        let listed = self
            .errors
            .iter()
            .map(|e| Some(&e.errors))
            .chain(self.actions.iter().map(|a| a.action.as_ref()));
        singles
            .into_iter()
            .map(Option::as_ref)
            .chain(listed)
            .flatten()
            .filter_map(referenced_event)
            .map(str::to_owned)
            .collect()
    }

    /// Puts back the facts `event` carried wherever this record refers to it.
    pub fn resolve(&mut self, event: &CanonicalEvent) {
        let id = event.event_id.as_str();
        let facts = &event.facts;
        let carried = [
            facts.transcript.clone(),
            facts.analysis.clone(),
            facts.cost.clone(),
            facts.metadata.clone(),
        ];
        for ((_, slot), value) in self.facts_mut().into_iter().zip(carried) {
            if slot.as_ref().and_then(referenced_event) == Some(id) {
                *slot = value;
            }
        }
        for entry in &mut self.errors {
            if referenced_event(&entry.errors) == Some(id) {
                entry.errors = facts.errors.clone().unwrap_or_default();
            }
        }
        for entry in &mut self.actions {
            if entry.action.as_ref().and_then(referenced_event) == Some(id) {
                entry.action = facts.action.clone();
            }
        }
    }

    /// The single-valued facts that may be large, by field name.
    fn facts_mut(&mut self) -> [(&'static str, &mut Option<Value>); 4] {
        [
            ("transcript", &mut self.transcript),
            ("analysis", &mut self.analysis),
            ("cost", &mut self.cost),
            ("metadata", &mut self.metadata),
        ]
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;
    use crate::domain::call::{ActionRequest, ErrorReport, Source};

    fn source(event_id: &str) -> Source {
        Source {
            class: 0,
            at: Utc::now(),
            event_id: event_id.to_owned(),
        }
    }

    #[test]
    fn large_facts_are_stored_by_reference_and_resolved_from_their_event() {
        let long = Value::String("words ".repeat(50_000));
        let mut record = CallRecord::new("telnyx#c", "telnyx");
        record.transcript = Some(long.clone());
        record
            .sources
            .insert("transcript".into(), source("telnyx#t"));
        record.cost = Some(json!({"usd": 0.12}));
        record.sources.insert("cost".into(), source("telnyx#t"));
        record.errors.push(ErrorReport {
            event_id: "telnyx#e".into(),
            event_type: "call.failed".into(),
            occurred_at: Utc::now(),
            errors: json!([long.clone()]),
        });
        record.actions.push(ActionRequest {
            event_id: "telnyx#a".into(),
            event_type: "call.action".into(),
            occurred_at: Utc::now(),
            action: Some(json!({"ticket": "small"})),
        });

        let stored = record.by_reference();
        assert_eq!(stored.transcript, Some(json!({"$event": "telnyx#t"})));
        assert_eq!(stored.cost, record.cost, "small facts stay in place");
        assert_eq!(stored.errors[0].errors, json!({"$event": "telnyx#e"}));
        assert_eq!(stored.actions, record.actions);
        assert!(serde_json::to_string(&stored).unwrap().len() < 2_000);
        assert_eq!(
            stored.references(),
            BTreeSet::from(["telnyx#e".to_owned(), "telnyx#t".to_owned()])
        );
        assert_eq!(stored.by_reference(), stored, "stable once stored");

        let mut resolved = stored.clone();
        let mut carrier = CanonicalEvent::new("telnyx", "t", "call.transcript", Utc::now());
        carrier.facts.transcript = Some(long.clone());
        carrier.facts.cost = Some(json!({"usd": 9}));
        resolved.resolve(&carrier);
        assert_eq!(resolved.transcript, Some(long.clone()));
        assert_eq!(resolved.cost, record.cost, "only references are replaced");
        let mut failed = CanonicalEvent::new("telnyx", "e", "call.failed", Utc::now());
        failed.facts.errors = Some(json!([long]));
        resolved.resolve(&failed);
        assert_eq!(resolved, record);
        assert!(resolved.references().is_empty());
    }

    #[test]
    fn only_a_lone_event_key_is_a_reference() {
        assert_eq!(referenced_event(&json!({"$event": "x"})), Some("x"));
        assert_eq!(referenced_event(&json!({"$event": "x", "y": 1})), None);
        assert_eq!(referenced_event(&json!({"$event": 1})), None);
        assert_eq!(referenced_event(&json!("$event")), None);
    }
}
