//! `callhook replay`: normalize stored events (local dev or `--stack`) again from their raw
//! bytes, with the code as it is now, and re-enqueue them (`callhook::app::replay`).

use anyhow::{Context, Result, bail};
use callhook::adapters::dynamodb::{DynamoEventReader, DynamoReviewStore};
use callhook::adapters::sqs::SqsQueue;
use callhook::app::replay::{ReplayReport, Replayer, Selection};
use callhook::ports::EventStatus;
use callhook::providers::Providers;

use crate::target::Target;

pub type TargetReplayer = Replayer<DynamoEventReader, DynamoReviewStore, SqsQueue>;

/// A replayer over the target's events table, review table and events queue, with the
/// providers the target's environment configures.
pub fn replayer(target: &Target, force: bool) -> Result<TargetReplayer> {
    let events_queue = target.queue("EventsQueue")?;
    let providers = Providers::from_env(&target.env).context("provider configuration")?;
    let review = target.review_store().ok();
    Ok(Replayer {
        events: target.events_reader()?,
        review,
        queue: SqsQueue::new(target.sqs.clone(), events_queue),
        providers,
        force,
    })
}

/// `--status` as given on the command line (any case).
pub fn parse_status(status: &str) -> Result<EventStatus> {
    match EventStatus::parse(&status.to_ascii_uppercase()) {
        Some(status) => Ok(status),
        None => bail!("unknown event status {status:?} (RECEIVED, PROCESSED or REVIEW)"),
    }
}

/// `callhook replay --event ID… | --call CALL_ID | --since T [--until T] | --status S`.
pub async fn run(
    target: &Target,
    selection: &Selection,
    force: bool,
    json: bool,
) -> Result<ReplayReport> {
    let replayer = replayer(target, force)?;
    let report = replayer
        .run(selection, |so_far| {
            eprintln!(
                "replay: {} events so far ({} requeued)",
                so_far.selected, so_far.requeued
            );
        })
        .await
        .with_context(|| format!("replaying from the events table of {}", target.label))?;
    print(&report, json)?;
    Ok(report)
}

/// The report as one JSON object, or as a line per event and totals for people.
pub fn print(report: &ReplayReport, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(report)?);
        return Ok(());
    }
    for event in &report.events {
        println!(
            "{:<20} {:<10} {}{}",
            event.outcome.as_str(),
            event.status.as_deref().unwrap_or("-"),
            event.event_id,
            event
                .detail
                .as_deref()
                .map(|d| format!("  ({d})"))
                .unwrap_or_default()
        );
    }
    let rows = [
        ("selected", report.selected),
        ("requeued", report.requeued),
        ("processed", report.skipped_processed),
        ("still review", report.still_review),
        ("discarded", report.skipped_discarded),
        ("missing", report.missing),
        ("unconfigured", report.skipped_unconfigured),
        ("unreadable", report.skipped_unreadable),
        ("review replayed", report.review_items_replayed),
    ];
    for (name, value) in rows {
        println!("{name:<16} {value}");
    }
    if report.skipped_processed > 0 {
        eprintln!(
            "PROCESSED events were already applied: replaying them changes nothing (--force sends them anyway)"
        );
    }
    Ok(())
}
