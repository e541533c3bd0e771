//! `callhook sweep`: one pass of the sweeper over the running `callhook dev` — re-enqueue
//! events that stayed RECEIVED longer than `--min-age` (a lost SendMessage). The same code the
//! scheduled sweeper Lambda runs (`callhook::app::sweep`).

use std::time::Duration;

use anyhow::{Context, Result};
use callhook::adapters::dynamodb::DynamoEventReader;
use callhook::adapters::sqs::SqsQueue;
use callhook::app::sweep::{SweepReport, Sweeper};
use callhook::providers::Providers;
use chrono::Utc;

use crate::local::schedule::LocalSweeper;
use crate::target::Target;

/// The sweeper of the target (local dev or a deployed stack).
pub fn target_sweeper(target: &Target, min_age: Duration) -> Result<LocalSweeper> {
    Ok(Sweeper {
        store: DynamoEventReader::new(target.dynamo.clone(), target.table("EventsTable")?),
        queue: SqsQueue::new(target.sqs.clone(), target.queue("EventsQueue")?),
        // As the sweeper Lambda: normalizing needs no key.
        providers: Providers::normalizers(&target.env).context("provider configuration")?,
        min_age,
    })
}

/// `callhook sweep [--min-age SECS] [--json]`.
pub async fn run(target: &Target, min_age_secs: u64, json: bool) -> Result<SweepReport> {
    let sweeper = target_sweeper(target, Duration::from_secs(min_age_secs))?;
    let report = sweeper
        .sweep(Utc::now())
        .await
        .with_context(|| format!("sweeping the events table of {}", target.label))?;
    print(&report, json)?;
    Ok(report)
}

/// The report as one JSON object, or as rows for people.
pub fn print(report: &SweepReport, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(report)?);
        return Ok(());
    }
    let rows = [
        ("received before", report.cutoff.to_rfc3339()),
        ("scanned", report.scanned.to_string()),
        ("requeued", report.requeued.to_string()),
        ("not received", report.skipped_not_received.to_string()),
        ("unconfigured", report.skipped_unconfigured.to_string()),
        ("unreadable", report.skipped_unreadable.to_string()),
    ];
    for (name, value) in rows {
        println!("{name:<16} {value}");
    }
    if report.skipped_unconfigured > 0 {
        eprintln!("events of providers not configured here stay RECEIVED until they are");
    }
    Ok(())
}
