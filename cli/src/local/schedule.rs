//! The sweeper on its schedule, as the template's EventBridge rule runs it, over the local
//! stack.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use callhook::adapters::dynamodb::{DynamoCallStore, DynamoEventReader, DynamoReviewStore};
use callhook::adapters::provider_api::Lookups;
use callhook::adapters::s3::S3BlobStore;
use callhook::adapters::sqs::SqsQueue;
use callhook::app::stale::StalePass;
use callhook::app::sweep::Sweeper;
use callhook::config::{Env, StaleConfig};
use callhook::providers::Providers;
use chrono::Utc;

use super::emulator;
use super::provision::Provisioned;

pub type LocalSweeper = Sweeper<DynamoEventReader, SqsQueue>;

pub type LocalStale = StalePass<DynamoCallStore, Lookups, SqsQueue, Option<DynamoReviewStore>>;

/// What the scheduled sweeper function runs: the lost-send sweep and the stale pass.
pub struct LocalSweeps {
    pub sweeper: LocalSweeper,
    pub stale: LocalStale,
}

fn named<'a>(map: &'a BTreeMap<String, String>, id: &str) -> Result<&'a str> {
    map.get(id)
        .map(String::as_str)
        .with_context(|| format!("the stack has no {id}"))
}

/// The stale pass over a stack's calls table (logical names from template.yaml), settings
/// (STALE_AFTER_SECS, …) from `env`.
pub fn stale_pass(
    env: &Env,
    dynamo: &aws_sdk_dynamodb::Client,
    sqs: &aws_sdk_sqs::Client,
    tables: &BTreeMap<String, String>,
    queues: &BTreeMap<String, String>,
) -> Result<LocalStale> {
    let calls_table = named(tables, "CallsTable")?;
    let config = StaleConfig::from_env(env, calls_table).map_err(|e| anyhow!("{e}"))?;
    Ok(StalePass {
        calls: DynamoCallStore::new(dynamo.clone(), calls_table, ""),
        lookups: Lookups::from_env(env).map_err(|e| anyhow!("{e}"))?,
        queue: SqsQueue::new(sqs.clone(), named(queues, "EventsQueue")?),
        review: tables
            .get("ReviewTable")
            .map(|table| DynamoReviewStore::new(dynamo.clone(), table)),
        policy: config.policy,
        max_lookups: config.max_lookups,
        budget: config.budget,
    })
}

/// The sweeps over the local stack's tables, bucket and queue (logical names from
/// template.yaml), normalizing with every provider (as the sweeper Lambda: no key needed), the
/// stale pass asking the provider APIs `env` configures.
pub fn sweeper(
    env: &Env,
    aws_endpoint: &str,
    provisioned: &Provisioned,
    min_age: Duration,
) -> Result<LocalSweeps> {
    // As the sweeper Lambda: normalizing needs no key.
    let providers = Providers::normalizers(env).context("provider configuration")?;
    let (dynamo, sqs) = emulator::clients(aws_endpoint);
    let events_bucket = provisioned
        .buckets
        .get("EventsBucket")
        .context("the local stack has no EventsBucket")?;
    Ok(LocalSweeps {
        stale: stale_pass(env, &dynamo, &sqs, &provisioned.tables, &provisioned.queues)?,
        sweeper: Sweeper {
            store: DynamoEventReader::new(dynamo, named(&provisioned.tables, "EventsTable")?)
                .with_bodies(S3BlobStore::new(
                    emulator::s3_client(aws_endpoint),
                    events_bucket,
                )),
            queue: SqsQueue::new(sqs, named(&provisioned.queues, "EventsQueue")?),
            providers,
            min_age,
        },
    })
}

/// Runs both sweeps every `interval` until aborted, as the EventBridge schedule does (for
/// `callhook dev`).
pub async fn every(sweeps: &LocalSweeps, interval: Duration) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        match sweeps.stale.run(Utc::now()).await {
            Ok(report) if report.asked + report.gave_up > 0 => eprintln!(
                "stale pass: asked {}, finalized by backfill {}, gave up {}, still alive {}, errors {}",
                report.asked, report.backfilled, report.gave_up, report.still_alive, report.errors
            ),
            Ok(_) => {}
            Err(e) => eprintln!("stale pass: {e}"),
        }
        let sweeper = &sweeps.sweeper;
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
