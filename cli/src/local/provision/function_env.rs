//! The environment template.yaml gives a function, resolved against what was provisioned
//! locally (`Ref`, `GetAtt … .Arn`, `Sub`; parameters are left to the caller).

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Result, anyhow, bail};
use serde_norway::{Mapping, Value};

use super::template::{describe, getatt_target, intrinsic, parse_template, resources};
use super::{LOCAL_ACCOUNT_ID, LOCAL_REGION, Provisioned};

fn local_arn(logical_id: &str, provisioned: &Provisioned) -> Option<String> {
    if let Some(bucket) = provisioned.buckets.get(logical_id) {
        return Some(format!("arn:aws:s3:::{bucket}"));
    }
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
        if let Some(b) = self.provisioned.buckets.get(target) {
            return Ok(Some(b.clone()));
        }
        if self.parameters.contains(target) || target.starts_with("AWS::") {
            return Ok(None);
        }
        bail!(
            "function {}: environment variable {var} refers to {target}, which is neither a provisioned table, queue or bucket nor a template parameter",
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
