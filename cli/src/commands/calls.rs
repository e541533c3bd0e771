//! `callhook calls get|list`: the reconciled records, as JSON or as a table for people.

use anyhow::{Context, Result, bail};
use callhook::adapters::dynamodb::DynamoCallStore;
use callhook::app::whole_calls::WholeCalls;
use callhook::domain::call::CallRecord;
use callhook::domain::call::stale::quiet_since;
use callhook::ports::{CallReader, CallStore};
use callhook::providers::Providers;
use chrono::{DateTime, Utc};

use crate::target::Target;
use crate::terminal::printable;

/// The calls store of the target (local dev or a deployed stack).
pub fn store(target: &Target) -> Result<DynamoCallStore> {
    Ok(DynamoCallStore::new(
        target.dynamo.clone(),
        target.table("CallsTable")?,
        target.table("EventsTable")?,
    ))
}

/// One call, whole: the facts it keeps by reference read back from their events.
pub async fn get(target: &Target, call_id: &str, json: bool) -> Result<()> {
    let whole = WholeCalls {
        calls: store(target)?,
        events: target.events_reader()?,
        normalizers: Providers::normalizers(&target.env).context("provider configuration")?,
    };
    let Some(record) = whole.read_call(call_id).await? else {
        bail!(
            "no call {call_id:?} (ids look like telnyx#<call_session_id>; see `callhook calls list`)"
        );
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&record)?);
    } else {
        print_record(&record);
    }
    Ok(())
}

/// Which calls `calls list` shows.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// queued, initiated, ringing, answered or ended.
    pub status: Option<String>,
    /// Activity at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Not yet final.
    pub open: bool,
    /// No webhook for at least this long.
    pub quiet_for: Option<std::time::Duration>,
}

impl Filter {
    pub fn keeps(&self, call: &CallRecord, now: DateTime<Utc>) -> bool {
        let status = call.status.map(|s| s.as_str());
        let quiet_for = quiet_since(call).map(|t| now - t);
        self.status.as_deref().is_none_or(|s| status == Some(s))
            && self
                .since
                .is_none_or(|t| call.last_occurred_at.is_some_and(|at| at >= t))
            && (!self.open || !call.is_final())
            && self.quiet_for.is_none_or(|min| {
                let min = chrono::Duration::from_std(min).unwrap_or(chrono::Duration::MAX);
                quiet_for.is_some_and(|q| q >= min)
            })
    }
}

pub async fn list(store: &DynamoCallStore, filter: &Filter, json: bool) -> Result<()> {
    let now = Utc::now();
    let calls: Vec<CallRecord> = store
        .list()
        .await?
        .into_iter()
        .filter(|c| filter.keeps(c, now))
        .collect();
    if json {
        println!("{}", serde_json::to_string_pretty(&calls)?);
        return Ok(());
    }
    println!(
        "{:<48} {:<9} {:<11} {:<8} {:>6} {:>6}  LAST EVENT",
        "CALL", "STATUS", "OUTCOME", "DIR", "SECS", "EVENTS"
    );
    for c in &calls {
        println!("{}", row(c));
    }
    eprintln!("{} call(s)", calls.len());
    Ok(())
}

/// One line of `calls list`: the call id comes from the provider, so it is made printable.
fn row(c: &CallRecord) -> String {
    format!(
        "{:<48} {:<9} {:<11} {:<8} {:>6} {:>6}  {}",
        printable(&c.call_id),
        c.status.map(|s| s.as_str()).unwrap_or("-"),
        c.outcome.map(|o| o.as_str()).unwrap_or("-"),
        c.direction
            .map(|d| if d == callhook::domain::event::Direction::Inbound {
                "in"
            } else {
                "out"
            })
            .unwrap_or("-"),
        c.duration_secs
            .map(|d| d.to_string())
            .unwrap_or_else(|| "-".into()),
        c.event_count,
        c.last_occurred_at
            .map(|t| t.to_rfc3339())
            .unwrap_or_else(|| "-".into()),
    )
}

fn print_record(c: &CallRecord) {
    let time = |t: Option<DateTime<Utc>>| t.map(|t| t.to_rfc3339()).unwrap_or_else(|| "-".into());
    let text = |t: Option<&str>| t.unwrap_or("-").to_owned();
    let rows = [
        ("call", c.call_id.clone()),
        ("provider", c.provider.clone()),
        ("status", text(c.status.map(|s| s.as_str()))),
        ("outcome", text(c.outcome.map(|o| o.as_str()))),
        (
            "direction",
            c.direction
                .map(|d| format!("{d:?}").to_lowercase())
                .unwrap_or_else(|| "-".into()),
        ),
        ("from", text(c.from.as_deref())),
        ("to", text(c.to.as_deref())),
        ("started", time(c.started_at)),
        ("answered", time(c.answered_at)),
        ("ended", time(c.ended_at)),
        (
            "duration",
            c.duration_secs
                .map(|d| format!("{d} s"))
                .unwrap_or_else(|| "-".into()),
        ),
        ("recording", text(c.recording_url.as_deref())),
        ("events", c.event_count.to_string()),
        ("finalized", time(c.finalized_at)),
    ];
    for (name, value) in rows {
        println!("{name:<10} {}", printable(&value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listed_call_id_cannot_carry_a_terminal_escape() {
        let record = CallRecord::new("telnyx#\u{1b}]0;owned\u{7}\u{1b}[2J", "telnyx");
        let line = row(&record);
        assert!(!line.chars().any(char::is_control), "{line:?}");
        assert!(line.contains("\\u{1b}[2J"), "{line}");
    }

    #[test]
    fn open_and_quiet_filters_keep_the_calls_the_stale_pass_would_ask_about() {
        let now = Utc::now();
        let mut quiet = CallRecord::new("twilio#CA1", "twilio");
        quiet.last_received_at = Some(now - chrono::Duration::hours(5));
        let mut busy = quiet.clone();
        busy.last_received_at = Some(now - chrono::Duration::minutes(5));
        let mut done = quiet.clone();
        done.final_event_id = Some("twilio#end".into());
        let filter = Filter {
            open: true,
            quiet_for: Some(std::time::Duration::from_secs(4 * 3600)),
            ..Filter::default()
        };
        assert!(filter.keeps(&quiet, now));
        assert!(!filter.keeps(&busy, now));
        assert!(!filter.keeps(&done, now));
        assert!(Filter::default().keeps(&done, now));
    }
}
