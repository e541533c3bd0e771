//! Reading template.yaml: its tables and queues, reduced to what a local emulator needs, and the
//! CloudFormation intrinsics in both spellings.

use std::collections::{BTreeSet, HashMap};

use anyhow::{Context, Result, anyhow, bail};
use serde_norway::{Mapping, Value};

use super::{BucketSpec, GsiSpec, Plan, QueueSpec, TableSpec};

pub(super) fn parse_template(yaml: &str) -> Result<Value> {
    serde_norway::from_str(yaml).context("template.yaml is not valid YAML")
}

pub(super) fn resources(doc: &Value) -> Result<&Mapping> {
    doc.get("Resources")
        .and_then(Value::as_mapping)
        .ok_or_else(|| anyhow!("template has no Resources section"))
}

/// A CloudFormation intrinsic function call, in either spelling: `(name, argument)` where name
/// is `Ref`, `GetAtt`, `Sub`, ... (without `!` or `Fn::`).
pub(super) fn intrinsic(v: &Value) -> Option<(String, &Value)> {
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
pub(super) fn getatt_target(arg: &Value) -> Option<(String, String)> {
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

pub(super) fn describe(v: &Value) -> String {
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
pub(super) fn lit_str<'a>(v: Option<&'a Value>, what: &dyn Fn() -> String) -> Result<&'a str> {
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

pub(super) fn lit_i32(v: &Value, what: &dyn Fn() -> String) -> Result<i32> {
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

pub(super) fn lit_bool(v: &Value, what: &dyn Fn() -> String) -> Result<bool> {
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

pub(super) fn seq<'a>(v: Option<&'a Value>, what: &dyn Fn() -> String) -> Result<&'a [Value]> {
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

/// The properties of a bucket local provisioning honours; any other is an error.
const BUCKET_PROPERTIES: [&str; 4] = [
    "BucketEncryption",
    "PublicAccessBlockConfiguration",
    "OwnershipControls",
    "LifecycleConfiguration",
];

/// A whole number given literally or as `!Ref` to a parameter (read as its Default).
fn days(v: &Value, doc: &Value, what: &dyn Fn() -> String) -> Result<i32> {
    if let Some((f, arg)) = intrinsic(v) {
        let param = arg.as_str().filter(|_| f == "Ref");
        let default = param.and_then(|p| doc.get("Parameters")?.get(p)?.get("Default"));
        return match (param, default) {
            (Some(_), Some(default)) => lit_i32(default, &|| {
                format!("{} (the Default of {})", what(), param.unwrap_or_default())
            }),
            (Some(p), None) => bail!(
                "{} refers to {p}, which is not a template parameter with a Default",
                what()
            ),
            (None, _) => bail!(
                "{} must be a literal integer or !Ref a parameter, found {}",
                what(),
                describe(v)
            ),
        };
    }
    lit_i32(v, what)
}

fn bucket_spec(id: &str, res: &Value, doc: &Value) -> Result<BucketSpec> {
    let at = format!("bucket {id} (AWS::S3::Bucket): Properties");
    let empty = Value::Mapping(Mapping::new());
    let props = res.get("Properties").unwrap_or(&empty);
    if let Some(map) = props.as_mapping() {
        for key in map.keys() {
            let key = key.as_str().unwrap_or_default();
            if !BUCKET_PROPERTIES.contains(&key) {
                bail!(
                    "{at}.{key} is not supported by local provisioning (it honours {})",
                    BUCKET_PROPERTIES.join(", ")
                );
            }
        }
    }
    let encryption = match props.get("BucketEncryption") {
        None => None,
        Some(e) => {
            let eat = format!("{at}.BucketEncryption.ServerSideEncryptionConfiguration");
            let rules = seq(e.get("ServerSideEncryptionConfiguration"), &|| eat.clone())?;
            let [rule] = rules else {
                bail!("{eat} must have exactly one rule");
            };
            let default = rule
                .get("ServerSideEncryptionByDefault")
                .ok_or_else(|| anyhow!("{eat}[0].ServerSideEncryptionByDefault is missing"))?;
            if default.get("KMSMasterKeyID").is_some() {
                bail!(
                    "{eat}[0].ServerSideEncryptionByDefault.KMSMasterKeyID: a customer key is not supported by local provisioning"
                );
            }
            let algorithm = lit_str(default.get("SSEAlgorithm"), &|| {
                format!("{eat}[0].ServerSideEncryptionByDefault.SSEAlgorithm")
            })?;
            if !matches!(algorithm, "AES256" | "aws:kms") {
                bail!("{eat}[0]: SSEAlgorithm must be AES256 or aws:kms, found {algorithm:?}");
            }
            Some(algorithm.to_owned())
        }
    };
    let public_access_block = match props.get("PublicAccessBlockConfiguration") {
        None => None,
        Some(p) => {
            let flag = |name: &str| -> Result<bool> {
                let pat = || format!("{at}.PublicAccessBlockConfiguration.{name}");
                p.get(name).map_or(Ok(false), |v| lit_bool(v, &pat))
            };
            Some([
                flag("BlockPublicAcls")?,
                flag("IgnorePublicAcls")?,
                flag("BlockPublicPolicy")?,
                flag("RestrictPublicBuckets")?,
            ])
        }
    };
    let object_ownership = match props.get("OwnershipControls") {
        None => None,
        Some(o) => {
            let oat = format!("{at}.OwnershipControls.Rules");
            let rules = seq(o.get("Rules"), &|| oat.clone())?;
            let [rule] = rules else {
                bail!("{oat} must have exactly one rule");
            };
            Some(
                lit_str(rule.get("ObjectOwnership"), &|| {
                    format!("{oat}[0].ObjectOwnership")
                })?
                .to_owned(),
            )
        }
    };
    let mut expirations = Vec::new();
    if let Some(l) = props.get("LifecycleConfiguration") {
        let lat = format!("{at}.LifecycleConfiguration.Rules");
        for (i, rule) in seq(l.get("Rules"), &|| lat.clone())?.iter().enumerate() {
            let rat = format!("{lat}[{i}]");
            if let Some(map) = rule.as_mapping() {
                for key in map.keys() {
                    let key = key.as_str().unwrap_or_default();
                    if !matches!(key, "Id" | "Status" | "ExpirationInDays") {
                        bail!(
                            "{rat}.{key} is not supported by local provisioning (a rule has Id, Status and ExpirationInDays)"
                        );
                    }
                }
            }
            let id = rule
                .get("Id")
                .map(|v| lit_str(Some(v), &|| format!("{rat}.Id")).map(str::to_owned))
                .transpose()?;
            let enabled = match lit_str(rule.get("Status"), &|| format!("{rat}.Status"))? {
                "Enabled" => true,
                "Disabled" => false,
                other => bail!("{rat}.Status must be Enabled or Disabled, found {other:?}"),
            };
            let days = days(
                rule.get("ExpirationInDays")
                    .ok_or_else(|| anyhow!("{rat}.ExpirationInDays is missing"))?,
                doc,
                &|| format!("{rat}.ExpirationInDays"),
            )?;
            if days < 1 {
                bail!("{rat}.ExpirationInDays must be at least 1, found {days}");
            }
            expirations.push((id, enabled, days));
        }
    }
    Ok(BucketSpec {
        logical_id: id.to_owned(),
        encryption,
        public_access_block,
        object_ownership,
        expirations,
    })
}

/// Reads the tables, queues and buckets declared in `template.yaml`. Pure; errors name the
/// resource and the property that is missing or not understood. A resource with a `Condition`
/// is an optional feature switched on by a parameter (analytics' example queue): locally
/// parameters are unset, so it is left out.
pub fn plan_from_template(yaml: &str) -> Result<Plan> {
    let doc = parse_template(yaml)?;
    let mut plan = Plan {
        tables: Vec::new(),
        queues: Vec::new(),
        buckets: Vec::new(),
    };
    for (id, res) in resources(&doc)? {
        let id = id
            .as_str()
            .ok_or_else(|| anyhow!("resource id {id:?} is not a string"))?;
        if res.get("Condition").is_some() {
            continue;
        }
        match res.get("Type").and_then(Value::as_str) {
            Some("AWS::DynamoDB::Table") => plan.tables.push(table_spec(id, res)?),
            Some("AWS::SQS::Queue") => plan.queues.push(queue_spec(id, res)?),
            Some("AWS::S3::Bucket") => plan.buckets.push(bucket_spec(id, res, &doc)?),
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
pub(super) fn queue_order(plan: &Plan) -> Result<Vec<&QueueSpec>> {
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
