//! Ingest → lifecycle → dispatch wired as deployed, with the tables on DynamoDB Local (AWS's own
//! engine: its conditions, item limits and consumed capacity are DynamoDB's) and the queues and
//! the events bucket on moto. Every DynamoDB request is counted through the stores ([`Capacity`]) and every SQS
//! request through the client. The CRM is a local HTTP sink.

use std::collections::BTreeMap;

use aws_sdk_dynamodb::Client as Dynamo;
use callhook::adapters::dynamodb::{
    Capacity, DynamoCallStore, DynamoEventReader, DynamoEventStore, DynamoLedger, DynamoReviewStore,
};
use callhook::adapters::http::ReqwestPoster;
use callhook::adapters::sqs::{SqsQueue, SqsSender};
use callhook::app::dispatch::Dispatcher;
use callhook::app::ingest::Ingest;
use callhook::app::lifecycle::Lifecycle;
use callhook::app::whole_calls::WholeCalls;
use callhook::config::{DispatchConfig, Env, IngestConfig};
use callhook::providers::Providers;
use callhook_cli::local::emulator;
use callhook_cli::local::provision::{self, Plan};
use callhook_dispatch::DispatchFunction;
use callhook_integration::dynamodb_local::DynamoDbLocal;
use callhook_integration::{HttpSink, RequestCounter, Stack, TEMPLATE};
use callhook_lifecycle::LifecycleFunction;

pub type IngestFunction = Ingest<DynamoEventStore, SqsQueue>;

pub struct Pipeline {
    pub stack: Stack,
    pub dynamo: Dynamo,
    /// Logical id (`EventsTable`) → table name on DynamoDB Local.
    pub tables: BTreeMap<String, String>,
    pub capacity: Capacity,
    pub sqs_requests: RequestCounter,
    pub sqs: aws_sdk_sqs::Client,
    pub crm: HttpSink,
    pub ingest: IngestFunction,
    pub lifecycle: LifecycleFunction,
    pub dispatch: DispatchFunction,
    _dynamodb_local: DynamoDbLocal,
}

impl Pipeline {
    /// Starts DynamoDB Local and moto, creates the template's tables (as `{prefix}-…`) and
    /// queues, and builds the three functions over them.
    pub async fn start(prefix: &str) -> Pipeline {
        let ddb = tokio::task::spawn_blocking(DynamoDbLocal::start)
            .await
            .unwrap()
            .expect("DynamoDB Local starts (make ddb-local installs it)");
        let stack = Stack::start().await;
        let (dynamo, sqs_for_setup) = emulator::clients(&ddb.endpoint);
        let plan = provision::plan_from_template(TEMPLATE).unwrap();
        let tables = provision::apply(
            &Plan {
                tables: plan.tables,
                queues: Vec::new(),
                buckets: Vec::new(),
            },
            prefix,
            &dynamo,
            &sqs_for_setup,
            &emulator::s3_client(&ddb.endpoint),
        )
        .await
        .unwrap()
        .tables;
        let capacity = Capacity::counting();
        let sqs_requests = RequestCounter::default();
        let sqs = counted_sqs(&stack.moto.endpoint, &sqs_requests);
        let crm = HttpSink::start(Vec::new()).await;

        let mut env = stack.ingest_env();
        env.set("EVENTS_TABLE", tables["EventsTable"].clone());
        let ingest = Ingest {
            providers: Providers::from_env(&env).unwrap(),
            store: DynamoEventStore::new(dynamo.clone(), &tables["EventsTable"])
                .with_capacity(capacity.clone())
                .with_bodies(stack.bodies()),
            queue: SqsQueue::new(sqs.clone(), stack.events_queue()),
            config: IngestConfig::from_env(&env).unwrap(),
        };
        let review = || {
            Some(
                DynamoReviewStore::new(dynamo.clone(), &tables["ReviewTable"])
                    .with_capacity(capacity.clone()),
            )
        };
        let dispatch_queue = stack.provisioned.queues["DispatchQueue"].clone();
        let lifecycle = Lifecycle {
            calls: DynamoCallStore::new(
                dynamo.clone(),
                &tables["CallsTable"],
                &tables["EventsTable"],
            )
            .with_capacity(capacity.clone()),
            dispatch_queue: SqsQueue::new(sqs.clone(), &dispatch_queue),
            settle_secs: 0,
            review: review(),
            analytics: None,
        };
        let mut dispatch_env = stack.function_env("DispatchFunction");
        dispatch_env.set("CRM_WEBHOOK_URL", crm.url.clone());
        dispatch_env.set(
            "CRM_SIGNING_SECRET",
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        );
        let config = DispatchConfig::from_env(&dispatch_env).unwrap();
        let dispatch = DispatchFunction {
            dispatcher: Dispatcher {
                http: ReqwestPoster::new(std::time::Duration::from_secs(5)).unwrap(),
                routes: config.routes,
                policy: config.policy,
                signing_secret: config.signing_secret,
                calls: WholeCalls {
                    calls: DynamoCallStore::new(dynamo.clone(), &tables["CallsTable"], "")
                        .with_capacity(capacity.clone()),
                    events: DynamoEventReader::new(dynamo.clone(), &tables["EventsTable"])
                        .with_capacity(capacity.clone())
                        .with_bodies(stack.bodies()),
                    normalizers: Providers::normalizers(&dispatch_env).unwrap(),
                },
                ledger: DynamoLedger::new(dynamo.clone(), &tables["LedgerTable"])
                    .with_capacity(capacity.clone()),
                review: review(),
                queues: SqsSender(sqs.clone()),
            },
            sqs: sqs.clone(),
            queue_url: dispatch_queue,
        };
        Pipeline {
            stack,
            dynamo,
            tables,
            capacity,
            sqs_requests,
            sqs,
            crm,
            ingest,
            lifecycle,
            dispatch,
            _dynamodb_local: ddb,
        }
    }

    /// Runs the lifecycle over the events queue until it is empty, as the event source mapping
    /// does (batches of 10).
    pub async fn drain_lifecycle(&self) {
        let lifecycle = &self.lifecycle;
        let handler =
            |event| async move { callhook_lifecycle::process_batch(lifecycle, &event).await };
        let queue = self.stack.events_queue();
        while callhook_cli::local::poller::poll_once(&self.sqs, queue, 10, 0, &handler)
            .await
            .unwrap()
            > 0
        {}
    }

    /// Runs dispatch over the dispatch queue until it is empty.
    pub async fn drain_dispatch(&self) {
        let dispatch = &self.dispatch;
        let handler =
            |event| async move { callhook_dispatch::process_batch(dispatch, &event).await };
        let queue = &self.stack.provisioned.queues["DispatchQueue"];
        while callhook_cli::local::poller::poll_once(&self.sqs, queue, 10, 0, &handler)
            .await
            .unwrap()
            > 0
        {}
    }

    /// The CRM's requests of this type, as JSON.
    pub fn crm_received(&self, message_type: &str) -> Vec<serde_json::Value> {
        self.crm
            .requests()
            .into_iter()
            .map(|r| serde_json::from_slice::<serde_json::Value>(&r.body).unwrap())
            .filter(|body| body["type"] == message_type)
            .collect()
    }
}

/// An SQS client to moto that counts its requests.
fn counted_sqs(endpoint: &str, counter: &RequestCounter) -> aws_sdk_sqs::Client {
    let env = Env::from_pairs(emulator::local_aws_env(endpoint));
    let sdk = callhook::adapters::aws::sdk_config(&env).unwrap();
    aws_sdk_sqs::Client::from_conf(
        aws_sdk_sqs::config::Builder::from(&sdk)
            .interceptor(counter.clone())
            .build(),
    )
}
