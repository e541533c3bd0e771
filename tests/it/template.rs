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
