//! The sweeper on its schedule, as the template's EventBridge rule runs it, over the local
//! stack.

use std::time::Duration;

use anyhow::{Context, Result};
use callhook::adapters::dynamodb::DynamoEventReader;
use callhook::adapters::s3::S3BlobStore;
use callhook::adapters::sqs::SqsQueue;
use callhook::app::sweep::Sweeper;
use callhook::config::Env;
use callhook::providers::Providers;
use chrono::Utc;

use super::emulator;
use super::provision::Provisioned;

pub type LocalSweeper = Sweeper<DynamoEventReader, SqsQueue>;

/// A sweeper over the local stack's events table, bucket and queue (logical names from
/// template.yaml), with providers configured from `env`.
pub fn sweeper(
    env: &Env,
    aws_endpoint: &str,
    provisioned: &Provisioned,
    min_age: Duration,
) -> Result<LocalSweeper> {
    let events_table = provisioned
        .tables
        .get("EventsTable")
        .context("the local stack has no EventsTable")?;
    let events_bucket = provisioned
        .buckets
        .get("EventsBucket")
        .context("the local stack has no EventsBucket")?;
    let events_queue = provisioned
        .queues
        .get("EventsQueue")
        .context("the local stack has no EventsQueue")?;
    let providers = Providers::from_env(env).context("provider configuration")?;
    let (dynamo, sqs) = emulator::clients(aws_endpoint);
    Ok(Sweeper {
        store: DynamoEventReader::new(dynamo, events_table).with_bodies(S3BlobStore::new(
            emulator::s3_client(aws_endpoint),
            events_bucket,
        )),
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
