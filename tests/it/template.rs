//! What template.yaml promises about floods, secrets and least privilege, read from the
//! template itself (cfn-lint checks that it is valid CloudFormation; `make cfn-lint`).

use serde_norway::Value;

use callhook_integration::TEMPLATE;

fn template() -> Value {
    serde_norway::from_str(TEMPLATE).expect("template.yaml parses")
}

fn resource<'a>(t: &'a Value, id: &str) -> &'a Value {
    &t["Resources"][id]
}

/// `!Ref X` (short or long form) → X.
fn reference(v: &Value) -> Option<&str> {
    match v {
        Value::Tagged(tagged) if tagged.tag == "Ref" => tagged.value.as_str(),
        Value::Mapping(m) => m.get("Ref").and_then(Value::as_str),
        _ => None,
    }
}

/// The text of an intrinsic's YAML, for checks that only need to see what it names.
fn text(v: &Value) -> String {
    serde_norway::to_string(v).unwrap()
}

#[test]
fn the_http_api_throttles_its_default_route_by_parameters() {
    let t = template();
    let settings = &resource(&t, "HttpApi")["Properties"]["DefaultRouteSettings"];
    let rate = reference(&settings["ThrottlingRateLimit"]).expect("rate from a parameter");
    let burst = reference(&settings["ThrottlingBurstLimit"]).expect("burst from a parameter");
    for (param, default) in [(rate, 500), (burst, 1000)] {
        let p = &t["Parameters"][param];
        assert_eq!(p["Type"], "Number", "{param}");
        assert_eq!(p["Default"].as_u64(), Some(default), "{param}");
        assert!(p["MinValue"].as_u64() >= Some(1), "{param}");
    }
}

#[test]
fn ingest_reserved_concurrency_is_optional() {
    let t = template();
    let param = &t["Parameters"]["IngestReservedConcurrency"];
    assert_eq!(param["Default"], "", "empty = no reservation");
    let reserved = &resource(&t, "IngestFunction")["Properties"]["ReservedConcurrentExecutions"];
    let reserved = text(reserved);
    assert!(
        reserved.contains("HasIngestReservedConcurrency")
            && reserved.contains("IngestReservedConcurrency")
            && reserved.contains("AWS::NoValue"),
        "{reserved}"
    );
    let condition = text(&t["Conditions"]["HasIngestReservedConcurrency"]);
    assert!(
        condition.contains("IngestReservedConcurrency"),
        "{condition}"
    );
}

/// The variables of a function's environment.
fn variables(t: &Value, function: &str) -> Vec<String> {
    resource(t, function)["Properties"]["Environment"]["Variables"]
        .as_mapping()
        .unwrap_or_else(|| panic!("{function} has variables"))
        .keys()
        .map(|k| k.as_str().unwrap().to_owned())
        .collect()
}

/// The parameters that hold secrets, by name: keys, tokens, secrets and PEMs.
fn secret_parameters(t: &Value) -> Vec<String> {
    let secret = ["Key", "Keys", "Token", "Tokens", "Secret", "Secrets", "Pem"];
    t["Parameters"]
        .as_mapping()
        .unwrap()
        .keys()
        .filter_map(|k| k.as_str())
        .filter(|name| secret.iter().any(|end| name.ends_with(end)))
        .map(str::to_owned)
        .collect()
}

/// The sweeper normalizes stored events without keys: it gets none of the webhook keys,
/// tokens or secrets ingest verifies with (its provider *API* credentials for the stale pass
/// are its own parameters).
#[test]
fn the_sweeper_gets_no_webhook_verification_secret() {
    let t = template();
    let sweeper = variables(&t, "SweeperFunction");
    let secrets = secret_parameters(&t);
    let ingest = &resource(&t, "IngestFunction")["Properties"]["Environment"]["Variables"];
    let verifying: Vec<&str> = ingest
        .as_mapping()
        .unwrap()
        .iter()
        .filter(|(_, v)| reference(v).is_some_and(|p| secrets.iter().any(|s| s == p)))
        .map(|(k, _)| k.as_str().unwrap())
        .collect();
    assert!(verifying.len() >= 12, "{verifying:?}");
    for var in &verifying {
        assert!(!sweeper.contains(&(*var).to_owned()), "sweeper gets {var}");
    }
    for secret in [
        "TELNYX_PUBLIC_KEYS",
        "BIRD_SIGNING_KEYS",
        "RECHO_BEARER_TOKENS",
        "RECHO_PUBLIC_KEYS_PEM",
        "MIRAIMINDS_PATH_TOKENS",
        "STATESET_WEBHOOK_SECRETS",
        "STANDARD_WEBHOOK_SECRETS",
        "TWILIO_AUTH_TOKENS",
        "VONAGE_SIGNATURE_SECRETS",
        "PLIVO_AUTH_TOKENS",
        "RETELL_API_KEYS",
        "ELEVENLABS_WEBHOOK_SECRETS",
        "VAPI_HMAC_SECRETS",
        "VAPI_TOKENS",
        "CALLHOOK_SECRETS_ARN",
    ] {
        assert!(
            !sweeper.contains(&secret.to_owned()),
            "sweeper gets {secret}"
        );
    }
    // What normalizing needs that is not a secret stays.
    assert!(sweeper.contains(&"STANDARD_EVENT_TYPES".to_owned()));
}

#[test]
fn every_parameter_that_may_hold_a_secret_is_no_echo() {
    let t = template();
    let secrets = secret_parameters(&t);
    assert!(secrets.len() >= 23, "{secrets:?}");
    for param in &secrets {
        assert_eq!(t["Parameters"][param]["NoEcho"], true, "{param}");
    }
    // And those that are secret without saying so in their name.
    for param in [
        "DispatchRoutes",
        "CrmWebhookUrl",
        "TicketingWebhookUrl",
        "CrmSigningSecret",
        "TelnyxPublicKeys",
        "VapiTokens",
        // The stale pass's provider API credentials.
        "TelnyxApiKey",
        "TwilioApiKey",
        "VonagePrivateKey",
        "PlivoApiToken",
        "RetellApiKey",
        "ElevenlabsApiKey",
        "VapiApiKey",
        "BirdApiKey",
    ] {
        assert_eq!(t["Parameters"][param]["NoEcho"], true, "{param}");
    }
}

#[test]
fn secrets_manager_is_optional_and_least_privilege() {
    let t = template();
    let param = &t["Parameters"]["CallhookSecretsArn"];
    assert_eq!(param["Default"], "");
    for function in ["IngestFunction", "DispatchFunction"] {
        let env = &resource(&t, function)["Properties"]["Environment"]["Variables"];
        assert_eq!(
            reference(&env["CALLHOOK_SECRETS_ARN"]),
            Some("CallhookSecretsArn"),
            "{function}"
        );
        // Exactly GetSecretValue, on that ARN only, and only when one is given.
        let policies = text(&resource(&t, function)["Properties"]["Policies"]);
        assert!(
            policies.contains("secretsmanager:GetSecretValue"),
            "{function}"
        );
        assert!(!policies.contains("secretsmanager:*"), "{function}");
        let statement = policies
            .split("HasCallhookSecretsArn")
            .nth(1)
            .unwrap_or_else(|| panic!("{function}: the statement is conditional"));
        let statement = &statement[..statement.find("AWS::NoValue").unwrap()];
        assert!(
            statement.contains("Resource: !Ref CallhookSecretsArn")
                || statement.contains("Ref: CallhookSecretsArn"),
            "{function}: {statement}"
        );
    }
    for function in ["LifecycleFunction", "SweeperFunction", "ReviewFunction"] {
        let policies = text(&resource(&t, function)["Properties"]["Policies"]);
        assert!(!policies.contains("secretsmanager"), "{function}");
    }
}
