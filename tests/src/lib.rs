//! Test harness: a real moto server on a free loopback port, provisioned from template.yaml
//! exactly as `callhook dev` does it.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use callhook::config::{Env, IngestConfig};
use callhook::ingest::Ingest;
use callhook::providers::{self, FIXTURE_SEED, Providers};
use callhook::queue::SqsQueue;
use callhook::store::DynamoEventStore;
use callhook_cli::emulator::{self, Moto};
use callhook_cli::provision::{self, Provisioned};

pub const TEMPLATE: &str = include_str!("../../template.yaml");

pub struct Stack {
    pub moto: Moto,
    pub provisioned: Provisioned,
    pub dynamo: aws_sdk_dynamodb::Client,
    pub sqs: aws_sdk_sqs::Client,
}

impl Stack {
    pub async fn start() -> Stack {
        let moto = tokio::task::spawn_blocking(Moto::start)
            .await
            .unwrap()
            .expect("moto server starts (make venv installs it)");
        let (dynamo, sqs) = emulator::clients(&moto.endpoint);
        let plan = provision::plan_from_template(TEMPLATE).unwrap();
        let provisioned = provision::apply(&plan, "callhook-test", &dynamo, &sqs)
            .await
            .expect("provisioning from template.yaml");
        Stack {
            moto,
            provisioned,
            dynamo,
            sqs,
        }
    }

    pub fn events_table(&self) -> &str {
        &self.provisioned.tables["EventsTable"]
    }

    pub fn events_queue(&self) -> &str {
        &self.provisioned.queues["EventsQueue"]
    }

    /// The environment the template gives `function` here (parameters left to the caller).
    pub fn function_env(&self, function: &str) -> Env {
        let mut env = Env::from_pairs(
            provision::function_env(TEMPLATE, function, &self.provisioned).unwrap(),
        );
        for (k, v) in emulator::local_aws_env(&self.moto.endpoint) {
            env.set(k, v);
        }
        env
    }

    /// The environment the template gives IngestFunction here, with every provider configured
    /// with its fixture keys.
    pub fn ingest_env(&self) -> Env {
        let mut env = Env::from_pairs(
            provision::function_env(TEMPLATE, "IngestFunction", &self.provisioned).unwrap(),
        );
        for (k, v) in emulator::local_aws_env(&self.moto.endpoint) {
            env.set(k, v);
        }
        for provider in providers::supported() {
            let signer = providers::dev_signer(provider, &FIXTURE_SEED).unwrap();
            for (k, v) in signer.verifier_env() {
                env.set(k, v);
            }
        }
        env
    }

    pub async fn count_items(&self, table: &str) -> usize {
        let mut count = 0;
        let mut start = None;
        loop {
            let page = self
                .dynamo
                .scan()
                .table_name(table)
                .select(aws_sdk_dynamodb::types::Select::Count)
                .set_exclusive_start_key(start)
                .send()
                .await
                .unwrap();
            count += page.count() as usize;
            start = page.last_evaluated_key().cloned();
            if start.is_none() {
                return count;
            }
        }
    }

    /// Receives and deletes every message now visible on the queue.
    pub async fn drain(&self, queue_url: &str) -> Vec<String> {
        let mut bodies = Vec::new();
        loop {
            let out = self
                .sqs
                .receive_message()
                .queue_url(queue_url)
                .max_number_of_messages(10)
                .send()
                .await
                .unwrap();
            let messages = out.messages();
            if messages.is_empty() {
                return bodies;
            }
            for m in messages {
                bodies.push(m.body().unwrap_or_default().to_owned());
                self.sqs
                    .delete_message()
                    .queue_url(queue_url)
                    .receipt_handle(m.receipt_handle().unwrap())
                    .send()
                    .await
                    .unwrap();
            }
        }
    }
}

/// Counts the HTTP requests an SDK client sends (every attempt, retries included).
#[derive(Debug, Clone, Default)]
pub struct RequestCounter(pub Arc<AtomicUsize>);

impl RequestCounter {
    pub fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

impl Intercept for RequestCounter {
    fn name(&self) -> &'static str {
        "RequestCounter"
    }

    fn read_before_transmit(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

/// An ingest wired by hand: DynamoDB and SQS at separate endpoints (to make one unreachable),
/// each client counting its requests.
pub struct CountedIngest {
    pub ingest: Ingest<DynamoEventStore, SqsQueue>,
    pub dynamo_requests: RequestCounter,
    pub sqs_requests: RequestCounter,
}

pub fn counted_ingest(env: &Env, dynamo_endpoint: &str, sqs_endpoint: &str) -> CountedIngest {
    let dynamo_requests = RequestCounter::default();
    let sqs_requests = RequestCounter::default();
    let config = IngestConfig::from_env(env).unwrap();
    let dynamo_sdk = callhook::aws::sdk_config(&with_endpoint(env, dynamo_endpoint)).unwrap();
    let sqs_sdk = callhook::aws::sdk_config(&with_endpoint(env, sqs_endpoint)).unwrap();
    let dynamo = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&dynamo_sdk)
            .interceptor(dynamo_requests.clone())
            .build(),
    );
    let sqs = aws_sdk_sqs::Client::from_conf(
        aws_sdk_sqs::config::Builder::from(&sqs_sdk)
            .interceptor(sqs_requests.clone())
            .build(),
    );
    CountedIngest {
        ingest: Ingest {
            providers: Providers::from_env(env).unwrap(),
            store: DynamoEventStore::new(dynamo, config.events_table.clone()),
            queue: SqsQueue::new(sqs, config.events_queue_url.clone()),
            config,
        },
        dynamo_requests,
        sqs_requests,
    }
}

fn with_endpoint(env: &Env, endpoint: &str) -> Env {
    let mut env = env.clone();
    env.set("AWS_ENDPOINT_URL", endpoint);
    env
}

/// An address where nothing listens.
pub fn dead_endpoint() -> String {
    format!("http://127.0.0.1:{}", emulator::free_port().unwrap())
}
