//! The sweeper on its schedule, as the template's EventBridge rule runs it, over the local
//! stack.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result};
use callhook::adapters::dynamodb::DynamoEventReader;
use callhook::adapters::sqs::SqsQueue;
use callhook::app::sweep::Sweeper;
use callhook::config::Env;
use callhook::providers::Providers;
use chrono::Utc;

use super::emulator;

pub type LocalSweeper = Sweeper<DynamoEventReader, SqsQueue>;

/// A sweeper over the local stack's events table and queue (logical names from
/// template.yaml), normalizing with every provider (`env` says only STANDARD_EVENT_TYPES).
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
    // As the sweeper Lambda: normalizing needs no key.
    let providers = Providers::normalizers(env).context("provider configuration")?;
    let (dynamo, sqs) = emulator::clients(aws_endpoint);
    Ok(Sweeper {
        store: DynamoEventReader::new(dynamo, events_table),
        queue: SqsQueue::new(sqs, events_queue),
        providers,
        min_age,
    })
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
