//! The summary page's model: the last hour at a glance. Pure: what ingest received (by provider
//! and result) and what dispatch attempted come from the functions' metric lines (EMF, the same
//! lines CloudWatch turns into the `received` and `dispatch_*` metrics; `callhook dev` keeps
//! them in emf.jsonl); open calls and open review items from the tables.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};

use callhook::domain::call::CallRecord;
use callhook::observability::metrics::{
    DISPATCH_ATTEMPTS, DISPATCH_FAILURES, PROCESSING_LAG, RECEIVED,
};
use callhook::observability::readback::samples;

use super::calls::CallState;

/// The window the summary covers.
pub fn window() -> Duration {
    Duration::hours(1)
}

/// What the functions' metrics say about the window.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Traffic {
    /// provider → result → requests.
    pub received: BTreeMap<String, BTreeMap<String, u64>>,
    /// Every result seen (the table's columns), in a fixed order: accepted first.
    pub results: Vec<String>,
    /// route → (attempts, failures).
    pub dispatch: BTreeMap<String, (u64, u64)>,
    /// Events applied, and the median processing lag in ms.
    pub applied: u64,
    pub lag_p50_ms: Option<f64>,
}

/// Reads EMF lines (one document per line, any other line skipped) stamped at or after
/// `since`.
pub fn traffic(emf: &str, since: DateTime<Utc>) -> Traffic {
    let since_ms = since.timestamp_millis();
    let mut traffic = Traffic::default();
    let mut lags = Vec::new();
    for sample in emf.lines().flat_map(samples) {
        if sample.timestamp_ms < since_ms {
            continue;
        }
        let label = |name: &str| {
            sample
                .labels
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        let total: f64 = sample.values.iter().sum();
        match sample.name.as_str() {
            RECEIVED => {
                let (Some(provider), Some(result)) = (label("provider"), label("result")) else {
                    continue;
                };
                *traffic
                    .received
                    .entry(provider)
                    .or_default()
                    .entry(result)
                    .or_default() += total as u64;
            }
            DISPATCH_ATTEMPTS | DISPATCH_FAILURES => {
                let route = label("route").unwrap_or_default();
                let entry = traffic.dispatch.entry(route).or_default();
                if sample.name == DISPATCH_ATTEMPTS {
                    entry.0 += total as u64;
                } else {
                    entry.1 += total as u64;
                }
            }
            PROCESSING_LAG => lags.extend(sample.values.iter().copied()),
            _ => {}
        }
    }
    let mut results: Vec<String> = traffic
        .received
        .values()
        .flat_map(|by_result| by_result.keys().cloned())
        .collect();
    const ORDER: [&str; 4] = ["accepted", "duplicate", "review", "unauthorized"];
    results.sort_by_key(|r| {
        (
            ORDER.iter().position(|o| o == r).unwrap_or(ORDER.len()),
            r.clone(),
        )
    });
    results.dedup();
    traffic.results = results;
    traffic.applied = lags.len() as u64;
    if !lags.is_empty() {
        lags.sort_by(f64::total_cmp);
        traffic.lag_p50_ms = Some(lags[lags.len() / 2]);
    }
    traffic
}

/// Calls by state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CallCounts {
    pub open: usize,
    pub stale: usize,
    pub final_: usize,
    /// Calls whose latest event is in the window.
    pub active: usize,
}

pub fn call_counts(
    records: &[CallRecord],
    now: DateTime<Utc>,
    stale_after: Duration,
) -> CallCounts {
    let mut counts = CallCounts::default();
    for record in records {
        match CallState::of(record, now, stale_after) {
            CallState::Open => counts.open += 1,
            CallState::Stale => counts.stale += 1,
            CallState::Final => counts.final_ += 1,
        }
        if record
            .last_occurred_at
            .is_some_and(|last| now - last <= window())
        {
            counts.active += 1;
        }
    }
    counts
}

/// The summary page's model.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub now: DateTime<Utc>,
    /// `None` when the metric lines are not at hand (a deployed stack: see its dashboard).
    pub traffic: Option<Traffic>,
    pub calls: CallCounts,
    pub review_open: u64,
}

#[cfg(test)]
mod tests {
    use callhook::observability::emf::Metrics;
    use callhook::observability::metrics::{record_dispatch_attempt, record_processed};

    use super::*;

    #[test]
    fn the_last_hour_of_metric_lines_by_provider_and_result() {
        let now = Utc::now();
        let mut lines = String::new();
        let mut at = |time: DateTime<Utc>, f: &dyn Fn(&mut Metrics)| {
            let mut m = Metrics::at(time);
            f(&mut m);
            lines.push_str(&m.lines().concat());
        };
        let count = |provider: &'static str, result: &'static str| {
            move |m: &mut Metrics| {
                m.count(RECEIVED, &[("provider", provider), ("result", result)], 1)
            }
        };
        at(now - Duration::minutes(5), &count("telnyx", "accepted"));
        at(now - Duration::minutes(4), &count("telnyx", "accepted"));
        at(now - Duration::minutes(3), &count("telnyx", "duplicate"));
        at(now - Duration::minutes(2), &count("bird", "unauthorized"));
        at(now - Duration::hours(2), &count("telnyx", "accepted"));
        at(now, &|m| {
            record_dispatch_attempt(m, "crm", true);
            record_dispatch_attempt(m, "crm", false);
            record_processed(m, "telnyx", now - Duration::milliseconds(40), now);
            record_processed(m, "telnyx", now - Duration::milliseconds(20), now);
            record_processed(m, "telnyx", now - Duration::milliseconds(900), now);
        });
        lines.push_str("not an EMF line\n");

        let traffic = traffic(&lines, now - window());
        assert_eq!(
            traffic.received["telnyx"]["accepted"], 2,
            "the old one is out"
        );
        assert_eq!(traffic.received["telnyx"]["duplicate"], 1);
        assert_eq!(traffic.received["bird"]["unauthorized"], 1);
        assert_eq!(traffic.results, ["accepted", "duplicate", "unauthorized"]);
        assert_eq!(traffic.dispatch["crm"], (2, 1));
        assert_eq!(traffic.applied, 3);
        assert_eq!(traffic.lag_p50_ms, Some(40.0));
    }

    #[test]
    fn calls_are_counted_by_state() {
        let now = Utc::now();
        let mut open = CallRecord::new("a", "telnyx");
        open.last_occurred_at = Some(now - Duration::minutes(1));
        let mut stale = CallRecord::new("b", "telnyx");
        stale.last_occurred_at = Some(now - Duration::days(400));
        let mut done = CallRecord::new("c", "telnyx");
        done.final_event_id = Some("x".into());
        let counts = call_counts(&[open, stale, done], now, Duration::minutes(60));
        assert_eq!(
            counts,
            CallCounts {
                open: 1,
                stale: 1,
                final_: 1,
                active: 1
            }
        );
    }
}
