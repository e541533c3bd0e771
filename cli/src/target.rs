//! Where the operator commands (`calls`, `review`, `replay`, `sweep`) act: the running
//! `callhook dev` (its `.callhook/dev.json`), or a deployed stack (`--stack NAME`), whose table
//! names, queue URLs and bucket names come from the CloudFormation outputs, reached with the
//! default AWS credential chain.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use aws_config::BehaviorVersion;
use callhook::adapters::dynamodb::{DEFAULT_RETENTION_DAYS, DynamoEventReader, DynamoReviewStore};
use callhook::adapters::s3::S3BlobStore;
use callhook::config::Env;

use crate::local::state::DevState;
use crate::local::{dotenv, emulator};

/// `--stack`/`--region` as given.
#[derive(Debug, Clone, Default)]
pub struct TargetOptions {
    pub stack: Option<String>,
    pub region: Option<String>,
}

pub struct Target {
    /// For messages: "the local stack" or "stack NAME (REGION)".
    pub label: String,
    pub dynamo: aws_sdk_dynamodb::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub s3: aws_sdk_s3::Client,
    /// Logical id (template.yaml) → table name.
    pub tables: BTreeMap<String, String>,
    /// Logical id → queue URL.
    pub queues: BTreeMap<String, String>,
    /// Logical id → bucket name.
    pub buckets: BTreeMap<String, String>,
    /// Provider configuration for normalizing stored events again (replay, sweep): `.env`, the
    /// process environment, and dev keys for providers both leave unset. Normalizing needs no
    /// secret (events were verified when received), so the dev keys only make a provider known.
    pub env: Env,
}

impl Target {
    /// `--stack` names a deployed stack; without it, the running `callhook dev`.
    pub async fn resolve(options: &TargetOptions, state_dir: &Path) -> Result<Target> {
        match &options.stack {
            Some(stack) => Target::stack(stack, options.region.as_deref(), state_dir).await,
            None => {
                if options.region.is_some() {
                    bail!(
                        "--region needs --stack NAME (without it, commands act on `callhook dev`)"
                    );
                }
                Target::local(&DevState::load(state_dir)?, state_dir)
            }
        }
    }

    pub fn local(state: &DevState, state_dir: &Path) -> Result<Target> {
        let (dynamo, sqs) = emulator::clients(&state.aws_endpoint);
        Ok(Target {
            label: "the local stack".to_owned(),
            dynamo,
            sqs,
            s3: emulator::s3_client(&state.aws_endpoint),
            tables: state.tables.clone(),
            queues: state.queues.clone(),
            buckets: state.buckets.clone(),
            env: {
                // The local stack is `callhook dev`'s: dev mode, as it runs.
                let mut env = dotenv::dev_env(state_dir)?;
                env.set("CALLHOOK_DEV", "true");
                env
            },
        })
    }

    pub async fn stack(name: &str, region: Option<&str>, state_dir: &Path) -> Result<Target> {
        let mut loader = aws_config::defaults(BehaviorVersion::latest());
        if let Some(region) = region {
            loader = loader.region(aws_config::Region::new(region.to_owned()));
        }
        let sdk = loader.load().await;
        let Some(region) = sdk.region().map(|r| r.to_string()) else {
            bail!(
                "no AWS region: pass --region or set AWS_REGION (or a region in your AWS profile)"
            );
        };
        let label = format!("stack {name} ({region})");
        let cloudformation = aws_sdk_cloudformation::Client::new(&sdk);
        let described = cloudformation
            .describe_stacks()
            .stack_name(name)
            .send()
            .await
            .map_err(|err| stack_error(&err, name, &region))?;
        let stack = described
            .stacks()
            .first()
            .ok_or_else(|| anyhow!("stack {name} not found in {region}"))?;
        let outputs: Vec<(&str, &str)> = stack
            .outputs()
            .iter()
            .filter_map(|o| Some((o.output_key()?, o.output_value()?)))
            .collect();
        let (tables, queues) = resources_of(outputs.iter().copied());
        Ok(Target {
            label,
            dynamo: aws_sdk_dynamodb::Client::new(&sdk),
            sqs: aws_sdk_sqs::Client::new(&sdk),
            s3: aws_sdk_s3::Client::new(&sdk),
            tables,
            queues,
            buckets: buckets_of(outputs.iter().copied()),
            env: dotenv::dev_env(state_dir)?,
        })
    }

    /// A table's name by its logical id, or a clear error naming what is missing.
    pub fn table(&self, logical_id: &str) -> Result<&str> {
        self.tables
            .get(logical_id)
            .map(String::as_str)
            .with_context(|| {
                format!(
                    "{} has no {logical_id} (output {logical_id}Name)",
                    self.label
                )
            })
    }

    /// A queue's URL by its logical id.
    pub fn queue(&self, logical_id: &str) -> Result<&str> {
        self.queues
            .get(logical_id)
            .map(String::as_str)
            .with_context(|| {
                format!(
                    "{} has no {logical_id} (output {logical_id}Url)",
                    self.label
                )
            })
    }

    /// The events table, reading a body kept apart from its item in the events bucket (a stack
    /// deployed before the bucket existed has none, and no such bodies).
    pub fn events_reader(&self) -> Result<DynamoEventReader> {
        let reader = DynamoEventReader::new(self.dynamo.clone(), self.table("EventsTable")?);
        Ok(match self.buckets.get("EventsBucket") {
            Some(bucket) => reader.with_bodies(S3BlobStore::new(self.s3.clone(), bucket)),
            None => reader,
        })
    }

    /// The review table, closing items with the configured retention (RAW_RETENTION_DAYS).
    pub fn review_store(&self) -> Result<DynamoReviewStore> {
        let days = self
            .env
            .number("RAW_RETENTION_DAYS", DEFAULT_RETENTION_DAYS)
            .map_err(|e| anyhow!("{e}"))?;
        Ok(
            DynamoReviewStore::new(self.dynamo.clone(), self.table("ReviewTable")?)
                .with_retention_days(days),
        )
    }
}

/// Stack outputs → (tables, queues) by logical id: `XTableName` is table `XTable`, `XQueueUrl`
/// is queue `XQueue` (the naming template.yaml's Outputs follow).
pub fn resources_of<'a>(
    outputs: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
    let mut tables = BTreeMap::new();
    let mut queues = BTreeMap::new();
    for (key, value) in outputs {
        if let Some(table) = key.strip_suffix("Name").filter(|k| k.ends_with("Table")) {
            tables.insert(table.to_owned(), value.to_owned());
        } else if let Some(queue) = key.strip_suffix("Url").filter(|k| k.ends_with("Queue")) {
            queues.insert(queue.to_owned(), value.to_owned());
        }
    }
    (tables, queues)
}

/// Stack outputs → buckets by logical id: `XBucketName` is bucket `XBucket`.
pub fn buckets_of<'a>(
    outputs: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> BTreeMap<String, String> {
    outputs
        .into_iter()
        .filter_map(|(key, value)| {
            let bucket = key.strip_suffix("Name").filter(|k| k.ends_with("Bucket"))?;
            Some((bucket.to_owned(), value.to_owned()))
        })
        .collect()
}

/// DescribeStacks failed: say whether it was the stack, the credentials or the network, without
/// the SDK's debug dump.
fn stack_error(
    err: &aws_sdk_cloudformation::error::SdkError<
        aws_sdk_cloudformation::operation::describe_stacks::DescribeStacksError,
    >,
    name: &str,
    region: &str,
) -> anyhow::Error {
    use aws_sdk_cloudformation::error::{DisplayErrorContext, SdkError};
    match err {
        SdkError::ServiceError(service) => {
            let message = service.err().meta().message().unwrap_or("");
            if message.contains("does not exist") {
                anyhow!("stack {name} not found in {region} (check --stack and --region)")
            } else {
                anyhow!(
                    "CloudFormation refused DescribeStacks for {name} in {region}: {} {message}",
                    service.err().meta().code().unwrap_or("error")
                )
            }
        }
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => anyhow!(
            "could not reach CloudFormation in {region}: {}",
            DisplayErrorContext(err)
        ),
        other => {
            let text = DisplayErrorContext(other).to_string();
            if text.contains("credentials") || text.contains("Credentials") {
                anyhow!(
                    "no usable AWS credentials for {region} (the default chain: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE and ~/.aws, credential_process, web identity, instance role): {text}"
                )
            } else {
                anyhow!("DescribeStacks for {name} in {region} failed: {text}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_name_tables_and_queues_by_logical_id() {
        let (tables, queues) = resources_of([
            ("EventsTableName", "callhook-EventsTable-1"),
            ("ReviewTableName", "callhook-ReviewTable-2"),
            ("EventsQueueUrl", "https://sqs/1/events"),
            ("EventsDeadLetterQueueUrl", "https://sqs/1/events-dlq"),
            ("IngestFunctionName", "callhook-Ingest"),
            ("ApiUrl", "https://api"),
        ]);
        assert_eq!(tables["EventsTable"], "callhook-EventsTable-1");
        assert_eq!(tables["ReviewTable"], "callhook-ReviewTable-2");
        assert_eq!(tables.len(), 2, "{tables:?}");
        assert_eq!(queues["EventsQueue"], "https://sqs/1/events");
        assert_eq!(queues["EventsDeadLetterQueue"], "https://sqs/1/events-dlq");
        assert_eq!(queues.len(), 2, "{queues:?}");
        let buckets = buckets_of([
            ("EventsBucketName", "callhook-eventsbucket-1"),
            ("EventsTableName", "callhook-EventsTable-1"),
            ("ApiUrl", "https://api"),
        ]);
        assert_eq!(
            buckets,
            BTreeMap::from([("EventsBucket".into(), "callhook-eventsbucket-1".into())])
        );
    }

    #[test]
    fn every_table_and_queue_of_the_template_is_an_output() {
        // `--stack` finds resources only through the outputs: each table, queue and bucket
        // needs one.
        let template = include_str!("../../template.yaml");
        let plan = crate::local::provision::plan_from_template(template).unwrap();
        let outputs: Vec<String> = template
            .lines()
            .skip_while(|l| !l.starts_with("Outputs:"))
            .filter_map(|l| l.strip_prefix("  ")?.strip_suffix(':').map(str::to_owned))
            .filter(|l| !l.starts_with(' '))
            .collect();
        for table in &plan.tables {
            let output = format!("{}Name", table.logical_id);
            assert!(outputs.contains(&output), "no output {output}");
        }
        for queue in &plan.queues {
            let output = format!("{}Url", queue.logical_id);
            assert!(outputs.contains(&output), "no output {output}");
        }
        assert!(!plan.buckets.is_empty());
        for bucket in &plan.buckets {
            let output = format!("{}Name", bucket.logical_id);
            assert!(outputs.contains(&output), "no output {output}");
        }
    }
}
