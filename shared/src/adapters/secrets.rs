//! Secrets from AWS Secrets Manager at cold start: `CALLHOOK_SECRETS_ARN` names one secret whose
//! string is a JSON object of the same variable names callhook reads from the environment
//! (`{"TELNYX_PUBLIC_KEYS": "…", "CRM_SIGNING_SECRET": "whsec_…"}`). It is read once, before
//! the function's configuration is built, and merged under the plain environment: a variable
//! set (non-empty) in the function's environment wins over the secret's.

use crate::config::{ConfigError, Env, vars};

/// `env` with the secret's variables merged under it; `env` itself when CALLHOOK_SECRETS_ARN
/// is unset. One GetSecretValue call.
pub async fn with_secrets(env: Env) -> Result<Env, ConfigError> {
    let Some(arn) = env.get(vars::CALLHOOK_SECRETS_ARN).map(str::to_owned) else {
        return Ok(env);
    };
    let sdk = super::aws::sdk_config(&env)?;
    let client = aws_sdk_secretsmanager::Client::new(&sdk);
    let secret = client
        .get_secret_value()
        .secret_id(&arn)
        .send()
        .await
        .map_err(|err| {
            // The service's own code and message (never the secret: it was not read).
            let detail = err
                .as_service_error()
                .map(|e| {
                    let code = aws_sdk_secretsmanager::error::ProvideErrorMetadata::code(e);
                    code.unwrap_or("service error").to_owned()
                })
                .unwrap_or_else(|| "the request failed".to_owned());
            ConfigError::invalid(
                vars::CALLHOOK_SECRETS_ARN,
                format!("the secret could not be read ({detail})"),
            )
        })?;
    let text = secret.secret_string().ok_or_else(|| {
        ConfigError::invalid(
            vars::CALLHOOK_SECRETS_ARN,
            "the secret has no string value (expected a JSON object of variables)",
        )
    })?;
    merge_under(env, text)
}

/// The secret's variables (a JSON object of strings, numbers or booleans) under `env`: each
/// one only where `env` leaves the variable unset or empty (SAM sets every variable, to "" when
/// its parameter is empty). Errors name CALLHOOK_SECRETS_ARN, never a value.
pub fn merge_under(mut env: Env, secret_json: &str) -> Result<Env, ConfigError> {
    let invalid = |problem: &str| ConfigError::invalid(vars::CALLHOOK_SECRETS_ARN, problem);
    let object: serde_json::Map<String, serde_json::Value> = serde_json::from_str(secret_json)
        .map_err(|_| invalid("the secret is not a JSON object of variable names"))?;
    for (name, value) in object {
        let value = match value {
            serde_json::Value::String(s) => s,
            serde_json::Value::Number(n) => n.to_string(),
            serde_json::Value::Bool(b) => b.to_string(),
            _ => {
                return Err(ConfigError::invalid(
                    vars::CALLHOOK_SECRETS_ARN,
                    format!("the secret's {name} is not a string"),
                ));
            }
        };
        if name == vars::CALLHOOK_SECRETS_ARN {
            return Err(invalid("the secret names another secret"));
        }
        if env.get(&name).is_none() {
            env.set(&name, value);
        }
    }
    Ok(env)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plain_environment_wins_and_empty_values_are_filled() {
        let env = Env::from_pairs([
            ("EVENTS_TABLE", "plain-table"),
            ("TELNYX_PUBLIC_KEYS", ""),
            (
                "CALLHOOK_SECRETS_ARN",
                "arn:aws:secretsmanager:eu-west-1:1:secret:x",
            ),
        ]);
        let merged = merge_under(
            env,
            r#"{"EVENTS_TABLE":"secret-table","TELNYX_PUBLIC_KEYS":"key","MAX_BODY_BYTES":1024,"CALLHOOK_DEV":false}"#,
        )
        .unwrap();
        assert_eq!(merged.get("EVENTS_TABLE"), Some("plain-table"));
        assert_eq!(merged.get("TELNYX_PUBLIC_KEYS"), Some("key"));
        assert_eq!(merged.get("MAX_BODY_BYTES"), Some("1024"));
        assert_eq!(merged.get("CALLHOOK_DEV"), Some("false"));
    }

    #[test]
    fn a_bad_secret_is_an_error_naming_the_variable_not_the_value() {
        for (text, needle) in [
            ("s3cret-not-json", "not a JSON object"),
            (r#"["s3cret"]"#, "not a JSON object"),
            (
                r#"{"TWILIO_AUTH_TOKENS":["s3cret"]}"#,
                "TWILIO_AUTH_TOKENS is not a string",
            ),
            (r#"{"CALLHOOK_SECRETS_ARN":"s3cret"}"#, "another secret"),
        ] {
            let err = merge_under(Env::default(), text).unwrap_err().to_string();
            assert!(err.starts_with("CALLHOOK_SECRETS_ARN is invalid"), "{err}");
            assert!(err.contains(needle), "{err}");
            assert!(!err.contains("s3cret"), "{err}");
        }
    }
}
