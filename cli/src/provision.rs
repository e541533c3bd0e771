//! Local provisioning read from `template.yaml`.
//!
//! `callhook dev` must give the functions the same tables and queues that SAM deploys, without a
//! second hand-written list. This module reads the template's `AWS::DynamoDB::Table` and
//! `AWS::SQS::Queue` resources ([`plan_from_template`], pure), creates them on an emulator
//! ([`apply`], idempotent) and computes the environment a function would get from the template
//! ([`function_env`]).
//!
//! CloudFormation intrinsics are read in both spellings: the YAML short tags (`!Ref X`,
//! `!GetAtt X.Arn`, `!Sub ...`, which `serde_norway` parses as [`Value::Tagged`]) and the long
//! form (`{Ref: X}`, `{"Fn::GetAtt": [X, Arn]}`, `{"Fn::Sub": ...}`). Anything the local
//! emulator cannot honour faithfully (FIFO queues, local secondary indexes, INCLUDE projections,
//! conditions in key schemas, ...) is an error that names the resource, never a silent
//! approximation.

use std::collections::{BTreeMap, BTreeSet, HashMap};
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
use serde_norway::{Mapping, Value};

/// Region used in the fake ARNs [`function_env`] produces (moto's default).
pub const LOCAL_REGION: &str = "us-east-1";
/// Account id used in the fake ARNs [`function_env`] produces (moto's default account).
pub const LOCAL_ACCOUNT_ID: &str = "123456789012";

/// What the template declares, reduced to what a local emulator needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// In template order.
    pub tables: Vec<TableSpec>,
    /// In template order (see [`apply`] for creation order).
    pub queues: Vec<QueueSpec>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSpec {
    pub logical_id: String,
    /// Hash (partition) key attribute name.
    pub key: String,
    /// Range (sort) key attribute name, if the table has one.
    pub range_key: Option<String>,
    /// AttributeDefinitions: (name, type) with type S, N or B.
    pub attributes: Vec<(String, String)>,
    pub gsis: Vec<GsiSpec>,
    /// Set when TimeToLiveSpecification is enabled.
    pub ttl_attribute: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GsiSpec {
    pub name: String,
    pub hash_key: String,
    pub range_key: Option<String>,
    /// KEYS_ONLY or ALL.
    pub projection: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueSpec {
    pub logical_id: String,
    pub visibility_timeout: Option<i32>,
    /// (logical id of the dead-letter queue, maxReceiveCount).
    pub dead_letter: Option<(String, i32)>,
}

/// What [`apply`] created (or found), by logical id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Provisioned {
    /// logical id → table name.
    pub tables: BTreeMap<String, String>,
    /// logical id → queue URL.
    pub queues: BTreeMap<String, String>,
}

// ------------------------------------------------------------------------------------------------
// Reading the template

fn parse_template(yaml: &str) -> Result<Value> {
    serde_norway::from_str(yaml).context("template.yaml is not valid YAML")
}

fn resources(doc: &Value) -> Result<&Mapping> {
    doc.get("Resources")
        .and_then(Value::as_mapping)
        .ok_or_else(|| anyhow!("template has no Resources section"))
}

/// A CloudFormation intrinsic function call, in either spelling: `(name, argument)` where name
/// is `Ref`, `GetAtt`, `Sub`, ... (without `!` or `Fn::`).
fn intrinsic(v: &Value) -> Option<(String, &Value)> {
    match v {
        Value::Tagged(t) => {
            let tag = t.tag.to_string();
            Some((tag.trim_start_matches('!').to_owned(), &t.value))
        }
        Value::Mapping(m) if m.len() == 1 => {
            let (k, arg) = m.iter().next()?;
            let k = k.as_str()?;
            if k == "Ref" {
                Some(("Ref".to_owned(), arg))
            } else {
                k.strip_prefix("Fn::").map(|name| (name.to_owned(), arg))
            }
        }
        _ => None,
    }
}

/// `X.Attr` / `[X, Attr]` → (X, Attr).
fn getatt_target(arg: &Value) -> Option<(String, String)> {
    match arg {
        Value::String(s) => {
            let (id, attr) = s.split_once('.')?;
            Some((id.to_owned(), attr.to_owned()))
        }
        Value::Sequence(items) if items.len() == 2 => {
            Some((items[0].as_str()?.to_owned(), items[1].as_str()?.to_owned()))
        }
        _ => None,
    }
}

fn describe(v: &Value) -> String {
    match intrinsic(v) {
        Some((name, _)) => format!("an intrinsic function (Fn::{name})"),
        None => match v {
            Value::Null => "null".to_owned(),
            Value::Sequence(_) => "a list".to_owned(),
            Value::Mapping(_) => "a mapping".to_owned(),
            _ => format!("{v:?}"),
        },
    }
}

/// A literal string field (numbers and booleans are not accepted where a name is expected).
fn lit_str<'a>(v: Option<&'a Value>, what: &dyn Fn() -> String) -> Result<&'a str> {
    match v {
        None => bail!("{} is missing", what()),
        Some(Value::String(s)) => Ok(s),
        Some(other) => bail!(
            "{} must be a literal string, found {}",
            what(),
            describe(other)
        ),
    }
}

fn lit_i32(v: &Value, what: &dyn Fn() -> String) -> Result<i32> {
    let n = match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse::<i64>().ok(),
        _ => None,
    };
    n.and_then(|n| i32::try_from(n).ok()).ok_or_else(|| {
        anyhow!(
            "{} must be a literal integer, found {}",
            what(),
            describe(v)
        )
    })
}

fn lit_bool(v: &Value, what: &dyn Fn() -> String) -> Result<bool> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Ok(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Ok(false),
        other => bail!(
            "{} must be a literal boolean, found {}",
            what(),
            describe(other)
        ),
    }
}

fn seq<'a>(v: Option<&'a Value>, what: &dyn Fn() -> String) -> Result<&'a [Value]> {
    match v {
        None => bail!("{} is missing", what()),
        Some(Value::Sequence(items)) => Ok(items),
        Some(other) => bail!("{} must be a list, found {}", what(), describe(other)),
    }
}

/// KeySchema → (hash, range).
fn key_schema(v: Option<&Value>, at: &str) -> Result<(String, Option<String>)> {
    let items = seq(v, &|| format!("{at}.KeySchema"))?;
    let (mut hash, mut range) = (None, None);
    for (i, item) in items.iter().enumerate() {
        let name = lit_str(item.get("AttributeName"), &|| {
            format!("{at}.KeySchema[{i}].AttributeName")
        })?;
        let ty = lit_str(item.get("KeyType"), &|| {
            format!("{at}.KeySchema[{i}].KeyType")
        })?;
        let slot = match ty {
            "HASH" => &mut hash,
            "RANGE" => &mut range,
            other => bail!("{at}.KeySchema[{i}].KeyType must be HASH or RANGE, found {other:?}"),
        };
        if slot.replace(name.to_owned()).is_some() {
            bail!("{at}.KeySchema has more than one {ty} key");
        }
    }
    let hash = hash.ok_or_else(|| anyhow!("{at}.KeySchema has no HASH key"))?;
    Ok((hash, range))
}

fn table_spec(id: &str, res: &Value) -> Result<TableSpec> {
    let at = format!("table {id} (AWS::DynamoDB::Table): Properties");
    let props = res
        .get("Properties")
        .filter(|p| p.is_mapping())
        .ok_or_else(|| anyhow!("{at} is missing"))?;

    let (key, range_key) = key_schema(props.get("KeySchema"), &at)?;

    let mut attributes = Vec::new();
    let defs = seq(props.get("AttributeDefinitions"), &|| {
        format!("{at}.AttributeDefinitions")
    })?;
    for (i, def) in defs.iter().enumerate() {
        let name = lit_str(def.get("AttributeName"), &|| {
            format!("{at}.AttributeDefinitions[{i}].AttributeName")
        })?;
        let ty = lit_str(def.get("AttributeType"), &|| {
            format!("{at}.AttributeDefinitions[{i}].AttributeType")
        })?;
        if !matches!(ty, "S" | "N" | "B") {
            bail!("{at}.AttributeDefinitions[{i}].AttributeType must be S, N or B, found {ty:?}");
        }
        attributes.push((name.to_owned(), ty.to_owned()));
    }
    let defined: BTreeSet<&str> = attributes.iter().map(|(n, _)| n.as_str()).collect();
    let check_defined = |name: &str, role: &str| -> Result<()> {
        if defined.contains(name) {
            Ok(())
        } else {
            bail!("{at}: {role} attribute {name:?} is not in AttributeDefinitions")
        }
    };
    check_defined(&key, "key")?;
    if let Some(r) = &range_key {
        check_defined(r, "range key")?;
    }

    if props.get("LocalSecondaryIndexes").is_some() {
        bail!(
            "{at}.LocalSecondaryIndexes: local secondary indexes are not supported by local provisioning"
        );
    }

    let mut gsis = Vec::new();
    if let Some(v) = props.get("GlobalSecondaryIndexes") {
        let items = seq(Some(v), &|| format!("{at}.GlobalSecondaryIndexes"))?;
        for (i, gsi) in items.iter().enumerate() {
            let gat = format!("{at}.GlobalSecondaryIndexes[{i}]");
            let name = lit_str(gsi.get("IndexName"), &|| format!("{gat}.IndexName"))?;
            let (hash_key, range_key) = key_schema(gsi.get("KeySchema"), &gat)?;
            check_defined(&hash_key, &format!("index {name} key"))?;
            if let Some(r) = &range_key {
                check_defined(r, &format!("index {name} range key"))?;
            }
            let projection = lit_str(
                gsi.get("Projection").and_then(|p| p.get("ProjectionType")),
                &|| format!("{gat}.Projection.ProjectionType"),
            )?;
            match projection {
                "KEYS_ONLY" | "ALL" => {}
                "INCLUDE" => bail!(
                    "{gat}.Projection: INCLUDE projections are not supported by local provisioning"
                ),
                other => bail!(
                    "{gat}.Projection.ProjectionType must be KEYS_ONLY or ALL, found {other:?}"
                ),
            }
            gsis.push(GsiSpec {
                name: name.to_owned(),
                hash_key,
                range_key,
                projection: projection.to_owned(),
            });
        }
    }

    let ttl_attribute = match props.get("TimeToLiveSpecification") {
        None => None,
        Some(ttl) => {
            let tat = format!("{at}.TimeToLiveSpecification");
            let enabled = lit_bool(
                ttl.get("Enabled")
                    .ok_or_else(|| anyhow!("{tat}.Enabled is missing"))?,
                &|| format!("{tat}.Enabled"),
            )?;
            if enabled {
                Some(
                    lit_str(ttl.get("AttributeName"), &|| format!("{tat}.AttributeName"))?
                        .to_owned(),
                )
            } else {
                None
            }
        }
    };

    Ok(TableSpec {
        logical_id: id.to_owned(),
        key,
        range_key,
        attributes,
        gsis,
        ttl_attribute,
    })
}

fn queue_spec(id: &str, res: &Value) -> Result<QueueSpec> {
    let at = format!("queue {id} (AWS::SQS::Queue): Properties");
    let empty = Value::Mapping(Mapping::new());
    let props = res.get("Properties").unwrap_or(&empty);
    let fifo = props
        .get("FifoQueue")
        .map(|v| lit_bool(v, &|| format!("{at}.FifoQueue")))
        .transpose()?;
    if fifo == Some(true) {
        bail!("{at}.FifoQueue: FIFO queues are not supported by local provisioning");
    }
    let visibility_timeout = props
        .get("VisibilityTimeout")
        .map(|v| lit_i32(v, &|| format!("{at}.VisibilityTimeout")))
        .transpose()?;
    let dead_letter = match props.get("RedrivePolicy") {
        None => None,
        Some(rp) => {
            let rat = format!("{at}.RedrivePolicy");
            if !rp.is_mapping() || intrinsic(rp).is_some() {
                bail!(
                    "{rat} must be a mapping with deadLetterTargetArn: !GetAtt <Queue>.Arn, found {}",
                    describe(rp)
                );
            }
            let target = rp
                .get("deadLetterTargetArn")
                .ok_or_else(|| anyhow!("{rat}.deadLetterTargetArn is missing"))?;
            let dlq = match intrinsic(target) {
                Some((f, arg)) if f == "GetAtt" => match getatt_target(arg) {
                    Some((dlq, attr)) if attr == "Arn" => dlq,
                    _ => bail!("{rat}.deadLetterTargetArn must be !GetAtt <Queue>.Arn"),
                },
                _ => bail!(
                    "{rat}.deadLetterTargetArn must be !GetAtt <Queue>.Arn, found {}",
                    describe(target)
                ),
            };
            let max = lit_i32(
                rp.get("maxReceiveCount")
                    .ok_or_else(|| anyhow!("{rat}.maxReceiveCount is missing"))?,
                &|| format!("{rat}.maxReceiveCount"),
            )?;
            Some((dlq, max))
        }
    };
    Ok(QueueSpec {
        logical_id: id.to_owned(),
        visibility_timeout,
        dead_letter,
    })
}

/// Reads the tables and queues declared in `template.yaml`. Pure; errors name the resource and
/// the property that is missing or not understood.
pub fn plan_from_template(yaml: &str) -> Result<Plan> {
    let doc = parse_template(yaml)?;
    let mut plan = Plan {
        tables: Vec::new(),
        queues: Vec::new(),
    };
    for (id, res) in resources(&doc)? {
        let id = id
            .as_str()
            .ok_or_else(|| anyhow!("resource id {id:?} is not a string"))?;
        match res.get("Type").and_then(Value::as_str) {
            Some("AWS::DynamoDB::Table") => plan.tables.push(table_spec(id, res)?),
            Some("AWS::SQS::Queue") => plan.queues.push(queue_spec(id, res)?),
            Some(ty @ ("AWS::Serverless::SimpleTable" | "AWS::DynamoDB::GlobalTable")) => bail!(
                "resource {id}: {ty} is not supported by local provisioning; declare an AWS::DynamoDB::Table"
            ),
            Some(_) => {}
            None => bail!("resource {id} has no Type"),
        }
    }
    queue_order(&plan)?;
    Ok(plan)
}

/// Queues in creation order: every dead-letter queue before the queues that reference it.
/// Fails on a reference to an undeclared queue or a redrive cycle.
fn queue_order(plan: &Plan) -> Result<Vec<&QueueSpec>> {
    let by_id: HashMap<&str, &QueueSpec> = plan
        .queues
        .iter()
        .map(|q| (q.logical_id.as_str(), q))
        .collect();
    let mut done: BTreeSet<&str> = BTreeSet::new();
    let mut order = Vec::with_capacity(plan.queues.len());
    for q in &plan.queues {
        // Follow the chain q → dlq → dlq's dlq ... and emit it from the end.
        let mut chain = vec![q];
        let mut cur = q;
        while let Some((dlq, _)) = &cur.dead_letter {
            if done.contains(dlq.as_str()) {
                break;
            }
            let next = *by_id.get(dlq.as_str()).ok_or_else(|| {
                anyhow!(
                    "queue {}: RedrivePolicy.deadLetterTargetArn names {dlq}, which is not an AWS::SQS::Queue in the template",
                    cur.logical_id
                )
            })?;
            if chain.iter().any(|c| c.logical_id == next.logical_id) {
                bail!("queue {}: RedrivePolicy forms a cycle", q.logical_id);
            }
            chain.push(next);
            cur = next;
        }
        for c in chain.into_iter().rev() {
            if done.insert(c.logical_id.as_str()) {
                order.push(c);
            }
        }
    }
    Ok(order)
}

// ------------------------------------------------------------------------------------------------
// Creating the resources

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

/// Creates every table and queue of `plan` as `"{prefix}-{LogicalId}"`. Idempotent: a table or
/// queue that already exists is kept (its missing GSIs and TTL are added, queue attributes are
/// brought in line with the template); a table whose key schema differs is an error.
pub async fn apply(
    plan: &Plan,
    prefix: &str,
    dynamo: &aws_sdk_dynamodb::Client,
    sqs: &aws_sdk_sqs::Client,
) -> Result<Provisioned> {
    let mut out = Provisioned::default();
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

// ------------------------------------------------------------------------------------------------
// Function environment

fn local_arn(logical_id: &str, provisioned: &Provisioned) -> Option<String> {
    if let Some(table) = provisioned.tables.get(logical_id) {
        return Some(format!(
            "arn:aws:dynamodb:{LOCAL_REGION}:{LOCAL_ACCOUNT_ID}:table/{table}"
        ));
    }
    let url = provisioned.queues.get(logical_id)?;
    let name = url.rsplit('/').next().unwrap_or(url);
    Some(format!(
        "arn:aws:sqs:{LOCAL_REGION}:{LOCAL_ACCOUNT_ID}:{name}"
    ))
}

struct EnvResolver<'a> {
    function: &'a str,
    parameters: BTreeSet<String>,
    provisioned: &'a Provisioned,
}

impl EnvResolver<'_> {
    /// `Ref` semantics; `None` = a template parameter or pseudo parameter (left to the caller).
    fn reference(&self, var: &str, target: &str) -> Result<Option<String>> {
        if let Some(t) = self.provisioned.tables.get(target) {
            return Ok(Some(t.clone()));
        }
        if let Some(q) = self.provisioned.queues.get(target) {
            return Ok(Some(q.clone()));
        }
        if self.parameters.contains(target) || target.starts_with("AWS::") {
            return Ok(None);
        }
        bail!(
            "function {}: environment variable {var} refers to {target}, which is neither a provisioned table or queue nor a template parameter",
            self.function
        )
    }

    /// `GetAtt` semantics for the attributes of tables and queues.
    fn attribute(&self, var: &str, target: &str, attr: &str) -> Result<String> {
        let found = match attr {
            "Arn" => local_arn(target, self.provisioned),
            "QueueName" => self
                .provisioned
                .queues
                .get(target)
                .map(|u| u.rsplit('/').next().unwrap_or(u).to_owned()),
            "QueueUrl" => self.provisioned.queues.get(target).cloned(),
            _ => None,
        };
        found.ok_or_else(|| {
            anyhow!(
                "function {}: environment variable {var} uses !GetAtt {target}.{attr}, which is not the attribute of a provisioned table or queue",
                self.function
            )
        })
    }

    fn resolve(&self, var: &str, v: &Value) -> Result<Option<String>> {
        match v {
            Value::String(s) => return Ok(Some(s.clone())),
            Value::Number(n) => return Ok(Some(n.to_string())),
            Value::Bool(b) => return Ok(Some(b.to_string())),
            _ => {}
        }
        let Some((name, arg)) = intrinsic(v) else {
            bail!(
                "function {}: environment variable {var} is {}, expected a string or !Ref/!GetAtt/!Sub",
                self.function,
                describe(v)
            );
        };
        match name.as_str() {
            "Ref" => {
                let target = arg.as_str().ok_or_else(|| {
                    anyhow!(
                        "function {}: environment variable {var}: !Ref needs a name",
                        self.function
                    )
                })?;
                self.reference(var, target)
            }
            "GetAtt" => {
                let (target, attr) = getatt_target(arg).ok_or_else(|| {
                    anyhow!(
                        "function {}: environment variable {var}: !GetAtt needs Resource.Attribute",
                        self.function
                    )
                })?;
                self.attribute(var, &target, &attr).map(Some)
            }
            "Sub" => self.sub(var, arg),
            other => bail!(
                "function {}: environment variable {var} uses Fn::{other}, which local provisioning cannot resolve; use a literal, !Ref, !GetAtt or !Sub",
                self.function
            ),
        }
    }

    /// `Fn::Sub` with `${Name}`, `${Name.Attr}`, `${!Literal}` and an optional variable map.
    /// `None` when a placeholder is a template parameter (the whole variable is left to the caller).
    fn sub(&self, var: &str, arg: &Value) -> Result<Option<String>> {
        let (template, vars) = match arg {
            Value::String(s) => (s.as_str(), None),
            Value::Sequence(items) if items.len() == 2 => (
                items[0].as_str().ok_or_else(|| {
                    anyhow!(
                        "function {}: environment variable {var}: !Sub's first item must be a string",
                        self.function
                    )
                })?,
                Some(items[1].as_mapping().ok_or_else(|| {
                    anyhow!(
                        "function {}: environment variable {var}: !Sub's second item must be a mapping",
                        self.function
                    )
                })?),
            ),
            _ => bail!(
                "function {}: environment variable {var}: !Sub needs a string or [string, mapping]",
                self.function
            ),
        };
        let mut out = String::with_capacity(template.len());
        let mut rest = template;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after.find('}').ok_or_else(|| {
                anyhow!(
                    "function {}: environment variable {var}: unterminated ${{ in !Sub",
                    self.function
                )
            })?;
            let name = after[..end].trim();
            rest = &after[end + 1..];
            if let Some(literal) = name.strip_prefix('!') {
                out.push_str("${");
                out.push_str(literal);
                out.push('}');
                continue;
            }
            let value = if let Some(v) = vars.and_then(|m| m.get(name)) {
                self.resolve(var, v)?
            } else if let Some((target, attr)) = name.split_once('.') {
                Some(self.attribute(var, target, attr)?)
            } else {
                self.reference(var, name)?
            };
            match value {
                Some(v) => out.push_str(&v),
                None => return Ok(None),
            }
        }
        out.push_str(rest);
        Ok(Some(out))
    }
}

fn env_variables<'a>(v: Option<&'a Value>, at: &dyn Fn() -> String) -> Result<Option<&'a Mapping>> {
    match v.and_then(|e| e.get("Variables")) {
        None => Ok(None),
        Some(Value::Mapping(m)) => Ok(Some(m)),
        Some(other) => bail!(
            "{}.Environment.Variables must be a mapping, found {}",
            at(),
            describe(other)
        ),
    }
}

/// The environment a function gets from the template, for the local resources in `provisioned`:
/// `Globals.Function.Environment.Variables` (for SAM functions) overlaid with the function's own.
/// `!Ref` of a table gives its name, of a queue its URL; `!GetAtt X.Arn` a local ARN
/// ([`LOCAL_REGION`], [`LOCAL_ACCOUNT_ID`]); literals are kept. Variables that come from template
/// Parameters (or pseudo parameters such as `AWS::Region`) are left out: the caller fills them.
pub fn function_env(
    yaml: &str,
    function_logical_id: &str,
    provisioned: &Provisioned,
) -> Result<BTreeMap<String, String>> {
    let doc = parse_template(yaml)?;
    let res = resources(&doc)?
        .get(function_logical_id)
        .ok_or_else(|| anyhow!("template has no resource {function_logical_id}"))?;
    let ty = res.get("Type").and_then(Value::as_str).unwrap_or_default();
    let at = || format!("function {function_logical_id} ({ty}): Properties");
    let mut layers = Vec::new();
    match ty {
        "AWS::Serverless::Function" => {
            let globals = doc.get("Globals").and_then(|g| g.get("Function"));
            layers.extend(env_variables(
                globals.and_then(|f| f.get("Environment")),
                &|| "Globals.Function".to_owned(),
            )?);
        }
        "AWS::Lambda::Function" => {}
        other => {
            bail!("resource {function_logical_id} is a {other:?}, not an AWS::Serverless::Function")
        }
    }
    layers.extend(env_variables(
        res.get("Properties").and_then(|p| p.get("Environment")),
        &at,
    )?);

    let parameters = doc
        .get("Parameters")
        .and_then(Value::as_mapping)
        .map(|m| {
            m.keys()
                .filter_map(|k| k.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let resolver = EnvResolver {
        function: function_logical_id,
        parameters,
        provisioned,
    };
    let mut env = BTreeMap::new();
    for layer in layers {
        for (k, v) in layer {
            let k = k.as_str().ok_or_else(|| {
                anyhow!("{}: environment variable name {k:?} is not a string", at())
            })?;
            match resolver.resolve(k, v)? {
                Some(v) => {
                    env.insert(k.to_owned(), v);
                }
                None => {
                    // A later layer's parameter reference overrides an earlier literal.
                    env.remove(k);
                }
            }
        }
    }
    Ok(env)
}

// ------------------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;

    const TEMPLATE: &str = include_str!("../../template.yaml");

    fn provisioned() -> Provisioned {
        Provisioned {
            tables: BTreeMap::from([("EventsTable".into(), "callhook-dev-EventsTable".into())]),
            queues: BTreeMap::from([
                (
                    "EventsQueue".into(),
                    "http://127.0.0.1:5000/123456789012/callhook-dev-EventsQueue".into(),
                ),
                (
                    "EventsDeadLetterQueue".into(),
                    "http://127.0.0.1:5000/123456789012/callhook-dev-EventsDeadLetterQueue".into(),
                ),
            ]),
        }
    }

    /// The real template with one edit applied to its parsed form (tags survive the round trip).
    fn edited_template(edit: impl FnOnce(&mut Value)) -> String {
        let mut doc: Value = serde_norway::from_str(TEMPLATE).unwrap();
        edit(&mut doc);
        serde_norway::to_string(&doc).unwrap()
    }

    #[test]
    fn plan_reads_the_events_table() {
        let plan = plan_from_template(TEMPLATE).unwrap();
        let t = plan
            .tables
            .iter()
            .find(|t| t.logical_id == "EventsTable")
            .expect("EventsTable in plan");
        assert_eq!(t.key, "pk");
        assert_eq!(t.range_key, None);
        assert!(t.attributes.contains(&("pk".into(), "S".into())));
        assert!(t.attributes.contains(&("pending_since".into(), "N".into())));
        assert_eq!(
            t.gsis,
            vec![GsiSpec {
                name: "pending".into(),
                hash_key: "pending_since".into(),
                range_key: None,
                projection: "KEYS_ONLY".into(),
            }]
        );
        assert_eq!(t.ttl_attribute.as_deref(), Some("expires_at"));
    }

    #[test]
    fn plan_reads_the_events_queue_and_its_dlq() {
        let plan = plan_from_template(TEMPLATE).unwrap();
        let q = |id: &str| {
            plan.queues
                .iter()
                .find(|q| q.logical_id == id)
                .unwrap_or_else(|| panic!("{id} in plan"))
                .clone()
        };
        let events = q("EventsQueue");
        assert_eq!(events.visibility_timeout, Some(60));
        assert_eq!(
            events.dead_letter,
            Some(("EventsDeadLetterQueue".to_owned(), 5))
        );
        assert_eq!(q("EventsDeadLetterQueue").dead_letter, None);
        // Functions, the API and other resource types are not part of the plan.
        let ids: Vec<_> = plan.queues.iter().map(|q| q.logical_id.as_str()).collect();
        assert!(!ids.contains(&"IngestFunction") && !ids.contains(&"HttpApi"));
    }

    #[test]
    fn dead_letter_queues_come_first() {
        let plan = plan_from_template(TEMPLATE).unwrap();
        let order: Vec<_> = queue_order(&plan)
            .unwrap()
            .into_iter()
            .map(|q| q.logical_id.as_str())
            .collect();
        let pos = |id| order.iter().position(|o| *o == id).unwrap();
        assert!(
            pos("EventsDeadLetterQueue") < pos("EventsQueue"),
            "{order:?}"
        );

        // Even when the referencing queue is declared first, in a chain.
        let plan = Plan {
            tables: vec![],
            queues: vec![
                QueueSpec {
                    logical_id: "A".into(),
                    visibility_timeout: None,
                    dead_letter: Some(("B".into(), 3)),
                },
                QueueSpec {
                    logical_id: "B".into(),
                    visibility_timeout: None,
                    dead_letter: Some(("C".into(), 3)),
                },
                QueueSpec {
                    logical_id: "C".into(),
                    visibility_timeout: None,
                    dead_letter: None,
                },
            ],
        };
        let order: Vec<_> = queue_order(&plan)
            .unwrap()
            .into_iter()
            .map(|q| q.logical_id.as_str())
            .collect();
        assert_eq!(order, ["C", "B", "A"]);
    }

    #[test]
    fn missing_key_schema_names_the_table() {
        let yaml = edited_template(|doc| {
            let props = doc["Resources"]["EventsTable"]["Properties"]
                .as_mapping_mut()
                .unwrap();
            assert!(props.remove("KeySchema").is_some());
        });
        let err = format!("{:#}", plan_from_template(&yaml).unwrap_err());
        assert!(
            err.contains("EventsTable") && err.contains("KeySchema"),
            "{err}"
        );
    }

    #[test]
    fn undeclared_dead_letter_queue_is_an_error() {
        let yaml = edited_template(|doc| {
            let res = doc["Resources"].as_mapping_mut().unwrap();
            assert!(res.remove("EventsDeadLetterQueue").is_some());
        });
        let err = format!("{:#}", plan_from_template(&yaml).unwrap_err());
        assert!(
            err.contains("EventsQueue") && err.contains("EventsDeadLetterQueue"),
            "{err}"
        );
    }

    #[test]
    fn unsupported_table_features_are_errors() {
        let yaml = r#"
Resources:
  T:
    Type: AWS::DynamoDB::Table
    Properties:
      AttributeDefinitions: [{AttributeName: pk, AttributeType: S}]
      KeySchema: [{AttributeName: !Ref KeyName, KeyType: HASH}]
"#;
        let err = format!("{:#}", plan_from_template(yaml).unwrap_err());
        assert!(
            err.contains("table T") && err.contains("literal string") && err.contains("Ref"),
            "{err}"
        );

        let yaml = r#"
Resources:
  T:
    Type: AWS::DynamoDB::Table
    Properties:
      AttributeDefinitions: [{AttributeName: pk, AttributeType: S}]
      KeySchema: [{AttributeName: id, KeyType: HASH}]
"#;
        let err = format!("{:#}", plan_from_template(yaml).unwrap_err());
        assert!(
            err.contains("\"id\"") && err.contains("AttributeDefinitions"),
            "{err}"
        );
    }

    #[test]
    fn long_form_intrinsics_are_understood() {
        let yaml = r#"
Resources:
  Dlq:
    Type: AWS::SQS::Queue
  Q:
    Type: AWS::SQS::Queue
    Properties:
      VisibilityTimeout: "30"
      RedrivePolicy:
        deadLetterTargetArn: {"Fn::GetAtt": [Dlq, Arn]}
        maxReceiveCount: 7
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      Environment:
        Variables:
          QUEUE: {Ref: Q}
          DLQ_ARN: {"Fn::GetAtt": Dlq.Arn}
"#;
        let plan = plan_from_template(yaml).unwrap();
        assert_eq!(plan.queues[1].visibility_timeout, Some(30));
        assert_eq!(plan.queues[1].dead_letter, Some(("Dlq".into(), 7)));
        let p = Provisioned {
            tables: BTreeMap::new(),
            queues: BTreeMap::from([
                ("Q".into(), "http://h/1/x-Q".into()),
                ("Dlq".into(), "http://h/1/x-Dlq".into()),
            ]),
        };
        let env = function_env(yaml, "Fn", &p).unwrap();
        assert_eq!(env["QUEUE"], "http://h/1/x-Q");
        assert_eq!(env["DLQ_ARN"], "arn:aws:sqs:us-east-1:123456789012:x-Dlq");
    }

    #[test]
    fn ingest_env_maps_table_and_queue() {
        let env = function_env(TEMPLATE, "IngestFunction", &provisioned()).unwrap();
        assert_eq!(env["EVENTS_TABLE"], "callhook-dev-EventsTable");
        assert_eq!(
            env["EVENTS_QUEUE_URL"],
            "http://127.0.0.1:5000/123456789012/callhook-dev-EventsQueue"
        );
        assert_eq!(env["RUST_LOG"], "info");
        // Parameter-backed variables are left to the dev command.
        for param_backed in ["TELNYX_PUBLIC_KEYS", "RECHO_AUTH", "MAX_BODY_BYTES"] {
            assert!(!env.contains_key(param_backed), "{param_backed}: {env:?}");
        }
    }

    #[test]
    fn env_resolves_getatt_sub_and_globals() {
        let yaml = r#"
Parameters:
  Stage: {Type: String}
Globals:
  Function:
    Environment:
      Variables:
        FROM_GLOBALS: "1"
        OVERRIDDEN: global
Resources:
  EventsTable:
    Type: AWS::DynamoDB::Table
    Properties:
      AttributeDefinitions: [{AttributeName: pk, AttributeType: S}]
      KeySchema: [{AttributeName: pk, KeyType: HASH}]
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      Environment:
        Variables:
          OVERRIDDEN: own
          TABLE_ARN: !GetAtt EventsTable.Arn
          SUBBED: !Sub "table=${EventsTable} arn=${EventsTable.Arn} lit=${!Keep}"
          SUB_PARAM: !Sub "${Stage}-x"
          REGION: !Ref AWS::Region
          NUMBER: 42
"#;
        let env = function_env(yaml, "Fn", &provisioned()).unwrap();
        let arn = "arn:aws:dynamodb:us-east-1:123456789012:table/callhook-dev-EventsTable";
        assert_eq!(env["FROM_GLOBALS"], "1");
        assert_eq!(env["OVERRIDDEN"], "own");
        assert_eq!(env["TABLE_ARN"], arn);
        assert_eq!(
            env["SUBBED"],
            format!("table=callhook-dev-EventsTable arn={arn} lit=${{Keep}}")
        );
        assert_eq!(env["NUMBER"], "42");
        assert!(!env.contains_key("SUB_PARAM") && !env.contains_key("REGION"));

        let bad = yaml.replace("!Ref AWS::Region", "!Ref NoSuchThing");
        let err = format!(
            "{:#}",
            function_env(&bad, "Fn", &provisioned()).unwrap_err()
        );
        assert!(
            err.contains("REGION") && err.contains("NoSuchThing"),
            "{err}"
        );

        let err = format!(
            "{:#}",
            function_env(yaml, "Nope", &provisioned()).unwrap_err()
        );
        assert!(err.contains("Nope"), "{err}");
    }

    /// Against a real moto server started for the test.
    #[tokio::test]
    async fn apply_against_emulator() {
        let moto = crate::emulator::Moto::start().expect("moto server");
        let (dynamo, sqs) = crate::emulator::clients(&moto.endpoint);
        let prefix = format!("provtest{}", std::process::id());
        let plan = plan_from_template(TEMPLATE).unwrap();
        let first = apply(&plan, &prefix, &dynamo, &sqs).await.unwrap();
        let table = &first.tables["EventsTable"];
        assert_eq!(table, &format!("{prefix}-EventsTable"));

        let desc = dynamo
            .describe_table()
            .table_name(table)
            .send()
            .await
            .unwrap();
        let t = desc.table().unwrap();
        assert_eq!(t.key_schema()[0].attribute_name(), "pk");
        let gsi = &t.global_secondary_indexes()[0];
        assert_eq!(gsi.index_name(), Some("pending"));
        assert_eq!(gsi.key_schema()[0].attribute_name(), "pending_since");
        assert_eq!(
            gsi.projection().and_then(|p| p.projection_type()),
            Some(&ProjectionType::KeysOnly)
        );
        let ttl = dynamo
            .describe_time_to_live()
            .table_name(table)
            .send()
            .await
            .unwrap();
        let ttl = ttl.time_to_live_description().unwrap();
        assert_eq!(ttl.attribute_name(), Some("expires_at"));
        assert_eq!(ttl.time_to_live_status(), Some(&TimeToLiveStatus::Enabled));

        let attrs = sqs
            .get_queue_attributes()
            .queue_url(&first.queues["EventsQueue"])
            .attribute_names(QueueAttributeName::All)
            .send()
            .await
            .unwrap();
        let attrs = attrs.attributes().unwrap();
        assert_eq!(attrs[&QueueAttributeName::VisibilityTimeout], "60");
        let redrive: serde_json::Value =
            serde_json::from_str(&attrs[&QueueAttributeName::RedrivePolicy]).unwrap();
        assert!(
            redrive["deadLetterTargetArn"]
                .as_str()
                .unwrap()
                .ends_with(&format!(":{prefix}-EventsDeadLetterQueue")),
            "{redrive}"
        );
        assert_eq!(
            redrive["maxReceiveCount"].to_string().trim_matches('"'),
            "5"
        );

        // Idempotent, and converges when the template changes.
        let again = apply(&plan, &prefix, &dynamo, &sqs).await.unwrap();
        assert_eq!(again, first);
        let mut changed = plan.clone();
        changed
            .queues
            .iter_mut()
            .find(|q| q.logical_id == "EventsQueue")
            .unwrap()
            .visibility_timeout = Some(90);
        let third = apply(&changed, &prefix, &dynamo, &sqs).await.unwrap();
        assert_eq!(third, first);
        let attrs = sqs
            .get_queue_attributes()
            .queue_url(&first.queues["EventsQueue"])
            .attribute_names(QueueAttributeName::VisibilityTimeout)
            .send()
            .await
            .unwrap();
        assert_eq!(
            attrs.attributes().unwrap()[&QueueAttributeName::VisibilityTimeout],
            "90"
        );

        let env = function_env(TEMPLATE, "IngestFunction", &first).unwrap();
        assert_eq!(env["EVENTS_TABLE"], *table);
        assert_eq!(env["EVENTS_QUEUE_URL"], first.queues["EventsQueue"]);
    }
}
