//! Creating the plan's tables, queues and buckets on an emulator, idempotently.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::operation::create_table::CreateTableError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, CreateGlobalSecondaryIndexAction, GlobalSecondaryIndex,
    GlobalSecondaryIndexUpdate, KeySchemaElement, KeyType, Projection, ProjectionType,
    ScalarAttributeType, TableStatus, TimeToLiveSpecification, TimeToLiveStatus,
};
use aws_sdk_sqs::error::ProvideErrorMetadata;
use aws_sdk_sqs::operation::create_queue::CreateQueueError;
use aws_sdk_sqs::types::QueueAttributeName;

use super::template::queue_order;
use super::{BucketSpec, GsiSpec, Plan, Provisioned, TableSpec};

fn physical_name(prefix: &str, logical_id: &str) -> Result<String> {
    let name = format!("{prefix}-{logical_id}");
    // The stricter of the two rules: SQS names are 1-80 of [A-Za-z0-9_-]; DynamoDB allows 3-255
    // of [A-Za-z0-9_.-].
    if name.len() < 3
        || name.len() > 80
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        bail!(
            "local resource name {name:?} is not valid: use a prefix of letters, digits, '-' and '_' (names are at most 80 characters)"
        );
    }
    Ok(name)
}

fn sdk_err<E: std::error::Error + 'static>(e: E) -> anyhow::Error {
    anyhow!("{}", DisplayErrorContext(e))
}

/// Creates every table and queue of `plan` as `"{prefix}-{LogicalId}"`, and every bucket as
/// [`bucket_name`]. Idempotent: a table or queue that already exists is kept (its missing GSIs
/// and TTL are added, queue attributes are brought in line with the template), a bucket's
/// settings are put again; a table whose key schema differs is an error.
pub async fn apply(
    plan: &Plan,
    prefix: &str,
    dynamo: &aws_sdk_dynamodb::Client,
    sqs: &aws_sdk_sqs::Client,
    s3: &aws_sdk_s3::Client,
) -> Result<Provisioned> {
    let mut out = Provisioned::default();
    for b in &plan.buckets {
        let name = bucket_name(prefix, &b.logical_id)?;
        ensure_bucket(s3, b, &name)
            .await
            .with_context(|| format!("provisioning bucket {} as {name}", b.logical_id))?;
        out.buckets.insert(b.logical_id.clone(), name);
    }
    for t in &plan.tables {
        let name = physical_name(prefix, &t.logical_id)?;
        ensure_table(dynamo, t, &name)
            .await
            .with_context(|| format!("provisioning table {} as {name}", t.logical_id))?;
        out.tables.insert(t.logical_id.clone(), name);
    }
    let mut arns: HashMap<String, String> = HashMap::new();
    for q in queue_order(plan)? {
        let name = physical_name(prefix, &q.logical_id)?;
        let mut attrs: HashMap<QueueAttributeName, String> = HashMap::new();
        if let Some(v) = q.visibility_timeout {
            attrs.insert(QueueAttributeName::VisibilityTimeout, v.to_string());
        }
        if let Some((dlq, max)) = &q.dead_letter {
            let arn = arns
                .get(dlq)
                .ok_or_else(|| anyhow!("dead-letter queue {dlq} was not created first"))?;
            let policy = serde_json::json!({"deadLetterTargetArn": arn, "maxReceiveCount": max});
            attrs.insert(QueueAttributeName::RedrivePolicy, policy.to_string());
        }
        let (url, arn) = ensure_queue(sqs, &name, attrs)
            .await
            .with_context(|| format!("provisioning queue {} as {name}", q.logical_id))?;
        arns.insert(q.logical_id.clone(), arn);
        out.queues.insert(q.logical_id.clone(), url);
    }
    Ok(out)
}

fn key_element(name: &str, ty: KeyType) -> Result<KeySchemaElement> {
    Ok(KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(ty)
        .build()?)
}

fn key_elements(hash: &str, range: Option<&str>) -> Result<Vec<KeySchemaElement>> {
    let mut v = vec![key_element(hash, KeyType::Hash)?];
    if let Some(r) = range {
        v.push(key_element(r, KeyType::Range)?);
    }
    Ok(v)
}

fn attribute_definitions(
    t: &TableSpec,
    only: Option<&BTreeSet<&str>>,
) -> Result<Vec<AttributeDefinition>> {
    t.attributes
        .iter()
        .filter(|(n, _)| only.is_none_or(|o| o.contains(n.as_str())))
        .map(|(n, ty)| {
            Ok(AttributeDefinition::builder()
                .attribute_name(n)
                .attribute_type(ScalarAttributeType::from(ty.as_str()))
                .build()?)
        })
        .collect()
}

fn projection(g: &GsiSpec) -> Projection {
    Projection::builder()
        .projection_type(ProjectionType::from(g.projection.as_str()))
        .build()
}

async fn ensure_table(dynamo: &aws_sdk_dynamodb::Client, t: &TableSpec, name: &str) -> Result<()> {
    // DynamoDB rejects attribute definitions that no key uses; the template (validated by
    // CloudFormation) only has key attributes, but be exact anyway.
    let mut key_attrs: BTreeSet<&str> = BTreeSet::from([t.key.as_str()]);
    key_attrs.extend(t.range_key.as_deref());
    for g in &t.gsis {
        key_attrs.insert(&g.hash_key);
        key_attrs.extend(g.range_key.as_deref());
    }
    let mut req = dynamo
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .set_key_schema(Some(key_elements(&t.key, t.range_key.as_deref())?))
        .set_attribute_definitions(Some(attribute_definitions(t, Some(&key_attrs))?));
    for g in &t.gsis {
        req = req.global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(&g.name)
                .set_key_schema(Some(key_elements(&g.hash_key, g.range_key.as_deref())?))
                .projection(projection(g))
                .build()?,
        );
    }
    match req.send().await {
        Ok(_) => wait_active(dynamo, name).await?,
        Err(e)
            if matches!(
                e.as_service_error(),
                Some(CreateTableError::ResourceInUseException(_))
            ) =>
        {
            wait_active(dynamo, name).await?;
            converge_table(dynamo, t, name).await?;
        }
        Err(e) => return Err(sdk_err(e).context("CreateTable")),
    }
    if let Some(attr) = &t.ttl_attribute {
        ensure_ttl(dynamo, name, attr).await?;
    }
    Ok(())
}

/// An existing table: same keys required; GSIs the template added since are created.
async fn converge_table(
    dynamo: &aws_sdk_dynamodb::Client,
    t: &TableSpec,
    name: &str,
) -> Result<()> {
    let desc = dynamo
        .describe_table()
        .table_name(name)
        .send()
        .await
        .map_err(|e| sdk_err(e).context("DescribeTable"))?;
    let table = desc
        .table()
        .ok_or_else(|| anyhow!("DescribeTable returned no table"))?;
    let key_of = |ks: &[KeySchemaElement], ty: KeyType| {
        ks.iter()
            .find(|k| *k.key_type() == ty)
            .map(|k| k.attribute_name().to_owned())
    };
    let hash = key_of(table.key_schema(), KeyType::Hash);
    let range = key_of(table.key_schema(), KeyType::Range);
    if hash.as_deref() != Some(t.key.as_str()) || range != t.range_key {
        bail!(
            "existing table {name} has key {hash:?}/{range:?} but the template declares {:?}/{:?}; delete the local table (or use a new prefix)",
            t.key,
            t.range_key
        );
    }
    let existing: BTreeSet<&str> = table
        .global_secondary_indexes()
        .iter()
        .filter_map(|g| g.index_name())
        .collect();
    for g in t
        .gsis
        .iter()
        .filter(|g| !existing.contains(g.name.as_str()))
    {
        let mut attrs: BTreeSet<&str> = BTreeSet::from([g.hash_key.as_str()]);
        attrs.extend(g.range_key.as_deref());
        dynamo
            .update_table()
            .table_name(name)
            .set_attribute_definitions(Some(attribute_definitions(t, Some(&attrs))?))
            .global_secondary_index_updates(
                GlobalSecondaryIndexUpdate::builder()
                    .create(
                        CreateGlobalSecondaryIndexAction::builder()
                            .index_name(&g.name)
                            .set_key_schema(Some(key_elements(
                                &g.hash_key,
                                g.range_key.as_deref(),
                            )?))
                            .projection(projection(g))
                            .build()?,
                    )
                    .build(),
            )
            .send()
            .await
            .map_err(|e| sdk_err(e).context(format!("UpdateTable (add index {})", g.name)))?;
        wait_active(dynamo, name).await?;
    }
    Ok(())
}

async fn wait_active(dynamo: &aws_sdk_dynamodb::Client, name: &str) -> Result<()> {
    // Emulators answer ACTIVE at once; a real endpoint takes seconds.
    for _ in 0..120 {
        let desc = dynamo
            .describe_table()
            .table_name(name)
            .send()
            .await
            .map_err(|e| sdk_err(e).context("DescribeTable"))?;
        if desc.table().and_then(|t| t.table_status()) == Some(&TableStatus::Active) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    bail!("table {name} did not become ACTIVE within 60 s")
}

async fn ensure_ttl(dynamo: &aws_sdk_dynamodb::Client, name: &str, attr: &str) -> Result<()> {
    let current = dynamo
        .describe_time_to_live()
        .table_name(name)
        .send()
        .await
        .map_err(|e| sdk_err(e).context("DescribeTimeToLive"))?;
    let desc = current.time_to_live_description();
    let status = desc.and_then(|d| d.time_to_live_status());
    let current_attr = desc.and_then(|d| d.attribute_name());
    if let Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling) = status {
        if current_attr == Some(attr) {
            return Ok(());
        }
        bail!(
            "table {name} has TTL on {current_attr:?} but the template declares {attr:?}; delete the local table (or use a new prefix)"
        );
    }
    dynamo
        .update_time_to_live()
        .table_name(name)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .attribute_name(attr)
                .enabled(true)
                .build()?,
        )
        .send()
        .await
        .map_err(|e| sdk_err(e).context("UpdateTimeToLive"))?;
    Ok(())
}

/// Creates the queue (or finds it and sets the template's attributes); returns (URL, ARN).
async fn ensure_queue(
    sqs: &aws_sdk_sqs::Client,
    name: &str,
    attrs: HashMap<QueueAttributeName, String>,
) -> Result<(String, String)> {
    let created = sqs
        .create_queue()
        .queue_name(name)
        .set_attributes(Some(attrs.clone()))
        .send()
        .await;
    let url = match created {
        Ok(out) => out
            .queue_url()
            .ok_or_else(|| anyhow!("CreateQueue returned no QueueUrl"))?
            .to_owned(),
        Err(e) => {
            let exists = match e.as_service_error() {
                Some(CreateQueueError::QueueNameExists(_)) => true,
                Some(se) => se.code().is_some_and(|c| {
                    c.contains("QueueNameExists") || c.contains("QueueAlreadyExists")
                }),
                None => false,
            };
            if !exists {
                return Err(sdk_err(e).context("CreateQueue"));
            }
            // Exists with other attributes (the template changed): look it up and converge.
            let url = sqs
                .get_queue_url()
                .queue_name(name)
                .send()
                .await
                .map_err(|e| sdk_err(e).context("GetQueueUrl"))?
                .queue_url()
                .ok_or_else(|| anyhow!("GetQueueUrl returned no QueueUrl"))?
                .to_owned();
            if !attrs.is_empty() {
                sqs.set_queue_attributes()
                    .queue_url(&url)
                    .set_attributes(Some(attrs))
                    .send()
                    .await
                    .map_err(|e| sdk_err(e).context("SetQueueAttributes"))?;
            }
            url
        }
    };
    let got = sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| sdk_err(e).context("GetQueueAttributes"))?;
    let arn = got
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::QueueArn))
        .ok_or_else(|| anyhow!("GetQueueAttributes returned no QueueArn for {url}"))?
        .clone();
    Ok((url, arn))
}

/// A bucket's local name: `{prefix}-{logicalid}` in lower case (S3 names are 3–63 lower-case
/// letters, digits and '-').
pub fn bucket_name(prefix: &str, logical_id: &str) -> Result<String> {
    let name = format!("{prefix}-{logical_id}")
        .to_ascii_lowercase()
        .replace('_', "-");
    if name.len() < 3
        || name.len() > 63
        || !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        || name.starts_with('-')
        || name.ends_with('-')
    {
        bail!(
            "local bucket name {name:?} is not valid: use a prefix of letters, digits and '-' (bucket names are at most 63 characters)"
        );
    }
    Ok(name)
}

/// Creates the bucket (or finds it) with the template's encryption, public access block,
/// ownership and expiry: an emulator records them, S3 enforces them.
async fn ensure_bucket(s3: &aws_sdk_s3::Client, b: &BucketSpec, name: &str) -> Result<()> {
    use aws_sdk_s3::types::{
        BucketLifecycleConfiguration, ExpirationStatus, LifecycleExpiration, LifecycleRule,
        LifecycleRuleFilter, ObjectOwnership, OwnershipControls, OwnershipControlsRule,
        PublicAccessBlockConfiguration, ServerSideEncryption, ServerSideEncryptionByDefault,
        ServerSideEncryptionConfiguration, ServerSideEncryptionRule,
    };
    if let Err(e) = s3.create_bucket().bucket(name).send().await {
        let exists = e
            .as_service_error()
            .is_some_and(|se| se.is_bucket_already_owned_by_you() || se.is_bucket_already_exists());
        if !exists {
            return Err(sdk_err(e).context("CreateBucket"));
        }
    }
    if let Some(algorithm) = &b.encryption {
        let rule = ServerSideEncryptionRule::builder()
            .apply_server_side_encryption_by_default(
                ServerSideEncryptionByDefault::builder()
                    .sse_algorithm(ServerSideEncryption::from(algorithm.as_str()))
                    .build()?,
            )
            .build();
        s3.put_bucket_encryption()
            .bucket(name)
            .server_side_encryption_configuration(
                ServerSideEncryptionConfiguration::builder()
                    .rules(rule)
                    .build()?,
            )
            .send()
            .await
            .map_err(|e| sdk_err(e).context("PutBucketEncryption"))?;
    }
    if let Some([block_acls, ignore_acls, block_policy, restrict]) = b.public_access_block {
        s3.put_public_access_block()
            .bucket(name)
            .public_access_block_configuration(
                PublicAccessBlockConfiguration::builder()
                    .block_public_acls(block_acls)
                    .ignore_public_acls(ignore_acls)
                    .block_public_policy(block_policy)
                    .restrict_public_buckets(restrict)
                    .build(),
            )
            .send()
            .await
            .map_err(|e| sdk_err(e).context("PutPublicAccessBlock"))?;
    }
    if let Some(ownership) = &b.object_ownership {
        s3.put_bucket_ownership_controls()
            .bucket(name)
            .ownership_controls(
                OwnershipControls::builder()
                    .rules(
                        OwnershipControlsRule::builder()
                            .object_ownership(ObjectOwnership::from(ownership.as_str()))
                            .build()?,
                    )
                    .build()?,
            )
            .send()
            .await
            .map_err(|e| sdk_err(e).context("PutBucketOwnershipControls"))?;
    }
    if !b.expirations.is_empty() {
        let mut rules = Vec::new();
        for (id, enabled, days) in &b.expirations {
            let status = if *enabled {
                ExpirationStatus::Enabled
            } else {
                ExpirationStatus::Disabled
            };
            rules.push(
                LifecycleRule::builder()
                    .set_id(id.clone())
                    .status(status)
                    .filter(LifecycleRuleFilter::builder().prefix("").build())
                    .expiration(LifecycleExpiration::builder().days(*days).build())
                    .build()?,
            );
        }
        s3.put_bucket_lifecycle_configuration()
            .bucket(name)
            .lifecycle_configuration(
                BucketLifecycleConfiguration::builder()
                    .set_rules(Some(rules))
                    .build()?,
            )
            .send()
            .await
            .map_err(|e| sdk_err(e).context("PutBucketLifecycleConfiguration"))?;
    }
    Ok(())
}
