use aws_sdk_dynamodb::types::{ProjectionType, TimeToLiveStatus};
use aws_sdk_sqs::types::QueueAttributeName;
use serde_norway::Value;

use super::template::queue_order;
use super::*;

const TEMPLATE: &str = include_str!("../../../../template.yaml");

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
        buckets: BTreeMap::from([("EventsBucket".into(), "callhook-dev-eventsbucket".into())]),
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
fn plan_reads_the_calls_tables_open_index_and_skips_optional_resources() {
    let plan = plan_from_template(TEMPLATE).unwrap();
    let calls = plan
        .tables
        .iter()
        .find(|t| t.logical_id == "CallsTable")
        .unwrap();
    assert_eq!(calls.gsis[0].name, "open");
    assert_eq!(calls.gsis[0].hash_key, "opened_at");
    // Analytics' example queue exists only where AnalyticsBusName is set.
    assert!(
        plan.queues
            .iter()
            .all(|q| q.logical_id != "AnalyticsExampleQueue")
    );
    let unconditional = edited_template(|doc| {
        let queue = &mut doc["Resources"]["AnalyticsExampleQueue"];
        queue.as_mapping_mut().unwrap().remove("Condition");
    });
    let plan = plan_from_template(&unconditional).unwrap();
    assert!(
        plan.queues
            .iter()
            .any(|q| q.logical_id == "AnalyticsExampleQueue")
    );
}

#[test]
fn plan_reads_the_events_bucket() {
    let plan = plan_from_template(TEMPLATE).unwrap();
    assert_eq!(
        plan.buckets,
        vec![BucketSpec {
            logical_id: "EventsBucket".into(),
            encryption: Some("AES256".into()),
            public_access_block: Some([true; 4]),
            object_ownership: Some("BucketOwnerEnforced".into()),
            // `!Ref RawRetentionDays`: the parameter's Default.
            expirations: vec![(Some("expire-with-the-events".into()), true, 30)],
        }]
    );
    // Ingest and the readers get the bucket's name; its ARN resolves too.
    let everything = Provisioned {
        tables: plan
            .tables
            .iter()
            .map(|t| (t.logical_id.clone(), format!("x-{}", t.logical_id)))
            .collect(),
        queues: plan
            .queues
            .iter()
            .map(|q| {
                (
                    q.logical_id.clone(),
                    format!("http://h/1/x-{}", q.logical_id),
                )
            })
            .collect(),
        buckets: BTreeMap::from([("EventsBucket".into(), "x-eventsbucket".into())]),
    };
    for function in ["IngestFunction", "DispatchFunction", "SweeperFunction"] {
        let env = function_env(TEMPLATE, function, &everything).unwrap();
        assert_eq!(env["EVENTS_BUCKET"], "x-eventsbucket", "{function}");
    }
    for function in ["LifecycleFunction", "ReviewFunction"] {
        let env = function_env(TEMPLATE, function, &everything).unwrap();
        assert!(
            !env.contains_key("EVENTS_BUCKET"),
            "{function} reads no bodies"
        );
    }
    let yaml = r#"
Resources:
  B:
    Type: AWS::S3::Bucket
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      Environment:
        Variables:
          BUCKET_ARN: !GetAtt B.Arn
"#;
    let p = Provisioned {
        buckets: BTreeMap::from([("B".into(), "x-b".into())]),
        ..Provisioned::default()
    };
    assert_eq!(
        plan_from_template(yaml).unwrap().buckets[0].expirations,
        vec![]
    );
    assert_eq!(
        function_env(yaml, "Fn", &p).unwrap()["BUCKET_ARN"],
        "arn:aws:s3:::x-b"
    );
}

#[test]
fn bucket_properties_local_provisioning_cannot_honour_are_errors() {
    let bucket = |props: &str| {
        let yaml = format!(
            "Parameters:\n  Days: {{Type: Number}}\nResources:\n  B:\n    Type: AWS::S3::Bucket\n    Properties:\n{props}"
        );
        format!("{:#}", plan_from_template(&yaml).unwrap_err())
    };
    for (props, says) in [
        ("      BucketName: fixed\n", "BucketName is not supported"),
        (
            "      VersioningConfiguration: {Status: Enabled}\n",
            "VersioningConfiguration is not supported",
        ),
        (
            "      BucketEncryption:\n        ServerSideEncryptionConfiguration:\n          - ServerSideEncryptionByDefault: {SSEAlgorithm: aws:kms, KMSMasterKeyID: k}\n",
            "KMSMasterKeyID",
        ),
        (
            "      BucketEncryption:\n        ServerSideEncryptionConfiguration:\n          - ServerSideEncryptionByDefault: {SSEAlgorithm: none}\n",
            "AES256 or aws:kms",
        ),
        (
            "      LifecycleConfiguration:\n        Rules:\n          - {Status: Enabled, ExpirationInDays: 3, Transitions: []}\n",
            "Transitions is not supported",
        ),
        (
            "      LifecycleConfiguration:\n        Rules:\n          - {Status: Enabled, ExpirationInDays: !Ref Days}\n",
            "not a template parameter with a Default",
        ),
        (
            "      LifecycleConfiguration:\n        Rules:\n          - {Status: Enabled, ExpirationInDays: !Ref Nope}\n",
            "Nope",
        ),
        (
            "      LifecycleConfiguration:\n        Rules:\n          - {Status: Enabled, ExpirationInDays: 0}\n",
            "at least 1",
        ),
    ] {
        let err = bucket(props);
        assert!(err.contains("bucket B"), "{err}");
        assert!(err.contains(says), "{props}: {err}");
    }
    assert!(bucket_name("callhook-dev", "EventsBucket").unwrap() == "callhook-dev-eventsbucket");
    assert!(bucket_name("Under_Score", "B").unwrap() == "under-score-b");
    assert!(bucket_name("x".repeat(70).as_str(), "B").is_err());
    assert!(bucket_name("dots.not", "B").is_err());
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
        buckets: vec![],
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
        buckets: BTreeMap::new(),
    };
    let env = function_env(yaml, "Fn", &p).unwrap();
    assert_eq!(env["QUEUE"], "http://h/1/x-Q");
    assert_eq!(env["DLQ_ARN"], "arn:aws:sqs:us-east-1:123456789012:x-Dlq");
}

#[test]
fn ingest_env_maps_table_and_queue() {
    let env = function_env(TEMPLATE, "IngestFunction", &provisioned()).unwrap();
    assert_eq!(env["EVENTS_TABLE"], "callhook-dev-EventsTable");
    assert_eq!(env["EVENTS_BUCKET"], "callhook-dev-eventsbucket");
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
    let moto = crate::local::emulator::Moto::start().expect("moto server");
    let (dynamo, sqs) = crate::local::emulator::clients(&moto.endpoint);
    let prefix = format!("provtest{}", std::process::id());
    let plan = plan_from_template(TEMPLATE).unwrap();
    let s3 = crate::local::emulator::s3_client(&moto.endpoint);
    let first = apply(&plan, &prefix, &dynamo, &sqs, &s3).await.unwrap();
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
    let again = apply(&plan, &prefix, &dynamo, &sqs, &s3).await.unwrap();
    assert_eq!(again, first);
    let mut changed = plan.clone();
    changed
        .queues
        .iter_mut()
        .find(|q| q.logical_id == "EventsQueue")
        .unwrap()
        .visibility_timeout = Some(90);
    let third = apply(&changed, &prefix, &dynamo, &sqs, &s3).await.unwrap();
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

    // The bucket, with what the template asks S3 to enforce (put again by each apply).
    let bucket = &first.buckets["EventsBucket"];
    assert_eq!(bucket, &format!("{prefix}-eventsbucket"));
    let encryption = s3
        .get_bucket_encryption()
        .bucket(bucket)
        .send()
        .await
        .unwrap();
    let rule = &encryption
        .server_side_encryption_configuration()
        .unwrap()
        .rules()[0];
    assert_eq!(
        rule.apply_server_side_encryption_by_default()
            .unwrap()
            .sse_algorithm()
            .as_str(),
        "AES256"
    );
    let block = s3
        .get_public_access_block()
        .bucket(bucket)
        .send()
        .await
        .unwrap();
    let block = block.public_access_block_configuration().unwrap();
    assert_eq!(
        (
            block.block_public_acls(),
            block.ignore_public_acls(),
            block.block_public_policy(),
            block.restrict_public_buckets()
        ),
        (Some(true), Some(true), Some(true), Some(true))
    );
    let lifecycle = s3
        .get_bucket_lifecycle_configuration()
        .bucket(bucket)
        .send()
        .await
        .unwrap();
    let rule = &lifecycle.rules()[0];
    assert_eq!(rule.id(), Some("expire-with-the-events"));
    assert_eq!(rule.expiration().and_then(|e| e.days()), Some(30));
    assert_eq!(env["EVENTS_BUCKET"], *bucket);
}
