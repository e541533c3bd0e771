//! `callhook sweep`: one pass of the sweeper over the running `callhook dev` — re-enqueue
//! events that stayed RECEIVED longer than `--min-age` (a lost SendMessage). The same code the
//! scheduled sweeper Lambda runs (`callhook::sweep`).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use callhook::config::Env;
use callhook::providers::Providers;
use callhook::queue::SqsQueue;
use callhook::store::pending::DynamoPendingEvents;
use callhook::sweep::{SweepReport, Sweeper};
use chrono::Utc;

use crate::dev;
use crate::target::Target;
use crate::{emulator, keys};

pub type LocalSweeper = Sweeper<DynamoPendingEvents, SqsQueue>;

/// The environment `callhook dev` configures providers from: `.env`, then the process
/// environment over it, then dev keys for the providers both leave unset.
pub fn dev_env(state_dir: &Path) -> Result<Env> {
    let mut env = Env::from_pairs(dev::read_dotenv(Path::new(".env"))?);
    for (k, v) in std::env::vars() {
        env.set(&k, v);
    }
    keys::fill_dev_keys(state_dir, &mut env)?;
    Ok(env)
}

/// A sweeper over the local stack's events table and queue (logical names from
/// template.yaml), with providers configured from `env`.
pub fn sweeper(
    env: &Env,
    aws_endpoint: &str,
    tables: &BTreeMap<String, String>,
    queues: &BTreeMap<String, String>,
    min_age: Duration,
) -> Result<LocalSweeper> {
    let events_table = tables
        .get("EventsTable")
        .context("the local stack has no EventsTable")?;
    let events_queue = queues
        .get("EventsQueue")
        .context("the local stack has no EventsQueue")?;
    let providers = Providers::from_env(env).context("provider configuration")?;
    let (dynamo, sqs) = emulator::clients(aws_endpoint);
    Ok(Sweeper {
        store: DynamoPendingEvents::new(dynamo, events_table),
        queue: SqsQueue::new(sqs, events_queue),
        providers,
        min_age,
    })
}

/// The sweeper of the target (local dev or a deployed stack).
pub fn target_sweeper(target: &Target, min_age: Duration) -> Result<LocalSweeper> {
    Ok(Sweeper {
        store: DynamoPendingEvents::new(target.dynamo.clone(), target.table("EventsTable")?),
        queue: SqsQueue::new(target.sqs.clone(), target.queue("EventsQueue")?),
        providers: Providers::from_env(&target.env).context("provider configuration")?,
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

/// Sweeps every `interval` until aborted, as the EventBridge schedule does (for `callhook dev`).
pub async fn every(sweeper: &LocalSweeper, interval: Duration) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        match sweeper.sweep(Utc::now()).await {
            Ok(report)
                if report.requeued + report.skipped_unconfigured + report.skipped_unreadable
                    > 0 =>
            {
                eprintln!(
                    "sweeper: requeued {}, unconfigured {}, unreadable {} (of {} pending)",
                    report.requeued,
                    report.skipped_unconfigured,
                    report.skipped_unreadable,
                    report.scanned
                );
            }
            Ok(_) => {}
            Err(e) => eprintln!("sweeper: {e}"),
        }
    }
}
