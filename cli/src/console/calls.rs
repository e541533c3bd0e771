//! The calls page's model: which calls a filter keeps, newest first, one page at a time. Pure:
//! the records come from the calls table (a scan, as `callhook calls list` reads it).

use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;

use callhook::domain::call::CallRecord;

/// Calls per page.
pub const PAGE_SIZE: usize = 50;

/// Where a call is, for the `state` filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallState {
    /// Its terminal fact has been applied.
    Final,
    /// Not final, and an event came recently.
    Open,
    /// Not final, and nothing happened for longer than the stale threshold: its terminal
    /// event may never come (or is stuck in review).
    Stale,
}

impl CallState {
    pub fn as_str(self) -> &'static str {
        match self {
            CallState::Final => "final",
            CallState::Open => "open",
            CallState::Stale => "stale",
        }
    }

    /// `record`'s state at `now`; a call is stale after `stale_after` without an event. The
    /// time of its last event is the provider's clock, so a replayed old fixture is stale at
    /// once, as it should look.
    pub fn of(record: &CallRecord, now: DateTime<Utc>, stale_after: Duration) -> CallState {
        if record.is_final() {
            CallState::Final
        } else if record
            .last_occurred_at
            .is_none_or(|last| now - last > stale_after)
        {
            CallState::Stale
        } else {
            CallState::Open
        }
    }
}

/// The calls page's query string: every field optional, unknown values ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct CallFilter {
    pub provider: Option<String>,
    /// queued, initiated, ringing, answered, ended, or `none` (no lifecycle fact yet).
    pub status: Option<String>,
    /// An outcome (completed, no_answer, …), or `none`.
    pub outcome: Option<String>,
    /// final, open, stale, or `unfinished` (open or stale).
    pub state: Option<String>,
    /// 1-based.
    pub page: Option<usize>,
}

impl CallFilter {
    fn given(value: &Option<String>) -> Option<&str> {
        value.as_deref().filter(|v| !v.is_empty() && *v != "all")
    }

    pub fn keeps(&self, record: &CallRecord, state: CallState) -> bool {
        let status = record.status.map_or("none", |s| s.as_str());
        let outcome = record.outcome.map_or("none", |o| o.as_str());
        Self::given(&self.provider).is_none_or(|p| record.provider == p)
            && Self::given(&self.status).is_none_or(|s| status == s)
            && Self::given(&self.outcome).is_none_or(|o| outcome == o)
            && Self::given(&self.state).is_none_or(|s| match s {
                "unfinished" => state != CallState::Final,
                other => state.as_str() == other,
            })
    }

    /// The same filter on another page (for links), as a query string.
    pub fn query(&self, page: usize) -> String {
        let mut query = form_urlencoded::Serializer::new(String::new());
        for (name, value) in [
            ("provider", &self.provider),
            ("status", &self.status),
            ("outcome", &self.outcome),
            ("state", &self.state),
        ] {
            if let Some(value) = Self::given(value) {
                query.append_pair(name, value);
            }
        }
        if page > 1 {
            query.append_pair("page", &page.to_string());
        }
        query.finish()
    }
}

/// One row of the calls page.
#[derive(Debug, Clone, PartialEq)]
pub struct CallRow {
    pub record: CallRecord,
    pub state: CallState,
}

/// One page of calls, and what the filter choices are.
#[derive(Debug, Clone, PartialEq)]
pub struct CallsPage {
    pub rows: Vec<CallRow>,
    /// 1-based; clamped to the last page.
    pub page: usize,
    pub pages: usize,
    /// Calls the filter kept (on every page).
    pub matched: usize,
    /// Calls in the table.
    pub total: usize,
    /// Every provider seen, for the filter's choices.
    pub providers: Vec<String>,
}

/// Filters `records`, newest first (by the latest event's time, then id), and cuts one page.
pub fn page(
    mut records: Vec<CallRecord>,
    filter: &CallFilter,
    now: DateTime<Utc>,
    stale_after: Duration,
) -> CallsPage {
    let total = records.len();
    let mut providers: Vec<String> = records.iter().map(|r| r.provider.clone()).collect();
    providers.sort();
    providers.dedup();
    records.sort_by(|a, b| (b.last_occurred_at, &b.call_id).cmp(&(a.last_occurred_at, &a.call_id)));
    let kept: Vec<CallRow> = records
        .into_iter()
        .map(|record| {
            let state = CallState::of(&record, now, stale_after);
            CallRow { record, state }
        })
        .filter(|row| filter.keeps(&row.record, row.state))
        .collect();
    let matched = kept.len();
    let pages = matched.div_ceil(PAGE_SIZE).max(1);
    let page = filter.page.unwrap_or(1).clamp(1, pages);
    let rows = kept
        .into_iter()
        .skip((page - 1) * PAGE_SIZE)
        .take(PAGE_SIZE)
        .collect();
    CallsPage {
        rows,
        page,
        pages,
        matched,
        total,
        providers,
    }
}

#[cfg(test)]
mod tests {
    use callhook::domain::call::CallStatus;
    use callhook::domain::event::Outcome;
    use chrono::TimeZone;

    use super::*;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0).unwrap()
    }

    fn call(id: &str, provider: &str, minutes_ago: i64, final_: bool) -> CallRecord {
        let mut record = CallRecord::new(id, provider);
        record.last_occurred_at = Some(now() - Duration::minutes(minutes_ago));
        record.status = Some(if final_ {
            CallStatus::Ended
        } else {
            CallStatus::Answered
        });
        if final_ {
            record.final_event_id = Some(format!("{id}-end"));
            record.outcome = Some(Outcome::Completed);
        }
        record
    }

    #[test]
    fn newest_first_filtered_by_provider_status_outcome_and_state() {
        let calls = vec![
            call("telnyx#old", "telnyx", 600, false),
            call("telnyx#new", "telnyx", 1, false),
            call("bird#done", "bird", 5, true),
        ];
        let stale = Duration::minutes(60);
        let all = page(calls.clone(), &CallFilter::default(), now(), stale);
        let ids: Vec<&str> = all.rows.iter().map(|r| r.record.call_id.as_str()).collect();
        assert_eq!(ids, ["telnyx#new", "bird#done", "telnyx#old"]);
        assert_eq!(all.providers, ["bird", "telnyx"]);
        let states: Vec<CallState> = all.rows.iter().map(|r| r.state).collect();
        assert_eq!(
            states,
            [CallState::Open, CallState::Final, CallState::Stale]
        );

        let only = |filter: CallFilter| -> Vec<String> {
            page(calls.clone(), &filter, now(), stale)
                .rows
                .into_iter()
                .map(|r| r.record.call_id)
                .collect()
        };
        let filter = |f: fn(&mut CallFilter)| {
            let mut filter = CallFilter::default();
            f(&mut filter);
            filter
        };
        assert_eq!(
            only(filter(|f| f.provider = Some("bird".into()))),
            ["bird#done"]
        );
        assert_eq!(
            only(filter(|f| f.state = Some("stale".into()))),
            ["telnyx#old"]
        );
        assert_eq!(
            only(filter(|f| f.state = Some("unfinished".into()))),
            ["telnyx#new", "telnyx#old"]
        );
        assert_eq!(
            only(filter(|f| f.outcome = Some("none".into()))),
            ["telnyx#new", "telnyx#old"]
        );
        assert_eq!(
            only(filter(|f| f.status = Some("ended".into()))),
            ["bird#done"]
        );
        assert_eq!(
            only(filter(|f| f.provider = Some("all".into()))).len(),
            3,
            "`all` is no filter"
        );
    }

    #[test]
    fn pages_of_fifty_and_a_page_past_the_end_is_the_last() {
        let calls: Vec<CallRecord> = (0..120)
            .map(|i| call(&format!("telnyx#{i:03}"), "telnyx", i, false))
            .collect();
        let mut filter = CallFilter::default();
        let first = page(calls.clone(), &filter, now(), Duration::days(1));
        assert_eq!((first.page, first.pages, first.matched), (1, 3, 120));
        assert_eq!(first.rows.len(), PAGE_SIZE);
        assert_eq!(first.rows[0].record.call_id, "telnyx#000");
        filter.page = Some(99);
        let last = page(calls, &filter, now(), Duration::days(1));
        assert_eq!(last.page, 3);
        assert_eq!(last.rows.len(), 20);
        assert_eq!(last.rows[19].record.call_id, "telnyx#119");
    }

    #[test]
    fn the_query_keeps_the_filter_and_escapes_it() {
        let filter = CallFilter {
            provider: Some("a&b=<c>".into()),
            state: Some("all".into()),
            ..CallFilter::default()
        };
        assert_eq!(filter.query(2), "provider=a%26b%3D%3Cc%3E&page=2");
        assert_eq!(CallFilter::default().query(1), "");
    }
}
