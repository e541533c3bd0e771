//! `callhook sweep`: one run of the sweeper over the running `callhook dev` (or `--stack`) —
//! re-enqueue events that stayed RECEIVED longer than `--min-age` (a lost SendMessage), then the
//! stale pass over calls whose final webhook never came. The same code the scheduled sweeper
//! Lambda runs (`callhook::app::sweep`, `callhook::app::stale`).

use std::time::Duration;

use anyhow::{Context, Result};
use callhook::adapters::sqs::SqsQueue;
use callhook::app::stale::StaleReport;
use callhook::app::sweep::{SweepReport, Sweeper};
use callhook::providers::Providers;
use chrono::Utc;

use serde::Serialize;

use crate::local::schedule::{self, LocalSweeper};
use crate::target::Target;

/// The sweeper of the target (local dev or a deployed stack).
pub fn target_sweeper(target: &Target, min_age: Duration) -> Result<LocalSweeper> {
    Ok(Sweeper {
        store: target.events_reader()?,
        queue: SqsQueue::new(target.sqs.clone(), target.queue("EventsQueue")?),
        // As the sweeper Lambda: normalizing needs no key.
        providers: Providers::normalizers(&target.env).context("provider configuration")?,
        min_age,
    })
}

/// Both passes' reports, as `--json` prints them.
#[derive(Debug, Serialize)]
pub struct Swept {
    #[serde(flatten)]
    pub sweep: SweepReport,
    pub stale: StaleReport,
}

/// `callhook sweep [--min-age SECS] [--json]`.
pub async fn run(target: &Target, min_age_secs: u64, json: bool) -> Result<Swept> {
    let sweeper = target_sweeper(target, Duration::from_secs(min_age_secs))?;
    let now = Utc::now();
    let sweep = sweeper
        .sweep(now)
        .await
        .with_context(|| format!("sweeping the events table of {}", target.label))?;
    let stale = schedule::stale_pass(
        &target.env,
        &target.dynamo,
        &target.sqs,
        &target.tables,
        &target.queues,
    )?
    .run(now)
    .await
    .with_context(|| format!("the stale pass over the calls of {}", target.label))?;
    let swept = Swept { sweep, stale };
    print(&swept, json)?;
    Ok(swept)
}

/// The report as one JSON object, or as rows for people.
pub fn print(swept: &Swept, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(swept)?);
        return Ok(());
    }
    let report = &swept.sweep;
    println!("lost sends");
    let rows = [
        ("received before", report.cutoff.to_rfc3339()),
        ("scanned", report.scanned.to_string()),
        ("requeued", report.requeued.to_string()),
        ("not received", report.skipped_not_received.to_string()),
        ("unconfigured", report.skipped_unconfigured.to_string()),
        ("unreadable", report.skipped_unreadable.to_string()),
    ];
    for (name, value) in rows {
        println!("  {name:<22} {value}");
    }
    if report.skipped_unconfigured > 0 {
        eprintln!("events of providers not configured here stay RECEIVED until they are");
    }
    let stale = &swept.stale;
    println!("calls that never finished");
    let rows = [
        ("open, old enough", stale.open_scanned),
        ("stale", stale.stale),
        ("asked", stale.asked),
        ("finalized by backfill", stale.backfilled),
        ("still alive", stale.still_alive),
        ("not found", stale.not_found),
        ("errors", stale.errors),
        ("left for next run", stale.capped),
        ("gave up", stale.gave_up),
        ("waiting", stale.waiting),
    ];
    for (name, value) in rows {
        println!("  {name:<22} {value}");
    }
    Ok(())
}
