//! `callhook calls get|list`: the reconciled records, as JSON or as a table for people.

use anyhow::{Context, Result, bail};
use callhook::adapters::dynamodb::{DynamoCallStore, DynamoEventReader};
use callhook::app::whole_calls::WholeCalls;
use callhook::domain::call::CallRecord;
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
        events: DynamoEventReader::new(target.dynamo.clone(), target.table("EventsTable")?),
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

pub async fn list(
    store: &DynamoCallStore,
    status: Option<&str>,
    since: Option<DateTime<Utc>>,
    json: bool,
) -> Result<()> {
    let calls: Vec<CallRecord> = store
        .list()
        .await?
        .into_iter()
        .filter(|c| status.is_none_or(|s| c.status.map(|st| st.as_str()) == Some(s)))
        .filter(|c| since.is_none_or(|t| c.last_occurred_at.is_some_and(|at| at >= t)))
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
}
