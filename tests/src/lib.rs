//! Test harness: a real moto server on a free loopback port, provisioned from template.yaml
//! exactly as `callhook dev` does it.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use callhook::adapters::dynamodb::{DynamoEventReader, DynamoEventStore};
use callhook::adapters::s3::S3BlobStore;
use callhook::adapters::sqs::SqsQueue;
use callhook::app::ingest::Ingest;
use callhook::config::{Env, IngestConfig};
use callhook::providers::{self, FIXTURE_SEED, Providers};
use callhook_cli::local::emulator::{self, Moto};
use callhook_cli::local::provision::{self, Provisioned};

pub mod dynamodb_local;

pub const TEMPLATE: &str = include_str!("../../template.yaml");

pub struct Stack {
    pub moto: Moto,
    pub provisioned: Provisioned,
    pub dynamo: aws_sdk_dynamodb::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub s3: aws_sdk_s3::Client,
}

impl Stack {
    pub async fn start() -> Stack {
        let moto = tokio::task::spawn_blocking(Moto::start)
            .await
            .unwrap()
            .expect("moto server starts (make venv installs it)");
        let (dynamo, sqs) = emulator::clients(&moto.endpoint);
        let plan = provision::plan_from_template(TEMPLATE).unwrap();
        let s3 = emulator::s3_client(&moto.endpoint);
        let provisioned = provision::apply(&plan, "callhook-test", &dynamo, &sqs, &s3)
            .await
            .expect("provisioning from template.yaml");
        Stack {
            moto,
            provisioned,
            dynamo,
            sqs,
            s3,
        }
    }

    pub fn events_table(&self) -> &str {
        &self.provisioned.tables["EventsTable"]
    }

    pub fn events_bucket(&self) -> &str {
        &self.provisioned.buckets["EventsBucket"]
    }

    /// The events bucket, as the functions reach it.
    pub fn bodies(&self) -> S3BlobStore {
        S3BlobStore::new(self.s3.clone(), self.events_bucket())
    }

    /// The events table read as every reader reads it: bodies kept apart read back from the
    /// events bucket, checked against their hash.
    pub fn events_reader(&self) -> DynamoEventReader {
        DynamoEventReader::new(self.dynamo.clone(), self.events_table()).with_bodies(self.bodies())
    }

    /// The stored event, through [`Self::events_reader`]; `None` when it is not stored.
    pub async fn stored_event(&self, event_id: &str) -> Option<callhook::ports::StoredEvent> {
        use callhook::ports::EventReader;
        self.events_reader().get_event(event_id).await.unwrap()
    }

    /// The keys of every object in the events bucket.
    pub async fn bucket_keys(&self) -> Vec<String> {
        let mut keys = Vec::new();
        let mut token = None;
        loop {
            let page = self
                .s3
                .list_objects_v2()
                .bucket(self.events_bucket())
                .set_continuation_token(token)
                .send()
                .await
                .unwrap();
            keys.extend(
                page.contents()
                    .iter()
                    .filter_map(|o| o.key().map(str::to_owned)),
            );
            token = page.next_continuation_token().map(str::to_owned);
            if token.is_none() {
                return keys;
            }
        }
    }

    pub fn events_queue(&self) -> &str {
        &self.provisioned.queues["EventsQueue"]
    }

    /// The environment the template gives `function` here (parameters left to the caller), in
    /// dev mode: tests use the public fixture keys.
    pub fn function_env(&self, function: &str) -> Env {
        let mut env = Env::from_pairs(
            provision::function_env(TEMPLATE, function, &self.provisioned).unwrap(),
        );
        for (k, v) in emulator::local_aws_env(&self.moto.endpoint) {
            env.set(k, v);
        }
        env.set("CALLHOOK_DEV", "true");
        env
    }

    /// The lifecycle function as template.yaml configures it here, finalizations sent at once.
    pub fn lifecycle(&self) -> callhook_lifecycle::LifecycleFunction {
        let mut env = self.function_env("LifecycleFunction");
        env.set("DISPATCH_SETTLE_SECS", "0");
        callhook_lifecycle::build(&env).unwrap()
    }

    /// Runs a batch handler on `queue` as the SQS event source mapping does, until the queue
    /// has nothing visible; returns how many messages it received.
    pub async fn pump<F, Fut>(&self, queue: &str, handler: F) -> usize
    where
        F: Fn(aws_lambda_events::sqs::SqsEvent) -> Fut,
        Fut: std::future::Future<Output = aws_lambda_events::sqs::SqsBatchResponse>,
    {
        let started = std::time::Instant::now();
        let mut total = 0;
        loop {
            assert!(
                started.elapsed() < std::time::Duration::from_secs(300),
                "{queue} not drained"
            );
            let n = callhook_cli::local::poller::poll_once(&self.sqs, queue, 10, 0, &handler)
                .await
                .unwrap();
            if n == 0 {
                return total;
            }
            total += n;
        }
    }

    /// The lifecycle on the events queue until it is empty.
    pub async fn pump_lifecycle(&self, function: &callhook_lifecycle::LifecycleFunction) -> usize {
        self.pump(self.events_queue(), |event| async move {
            callhook_lifecycle::process_batch(function, &event).await
        })
        .await
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
        // The fixture keys are public: accepted in dev mode only.
        env.set("CALLHOOK_DEV", "true");
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

    /// Every message on the queue: visible, in flight and delayed.
    pub async fn queue_depth(&self, queue_url: &str) -> usize {
        use aws_sdk_sqs::types::QueueAttributeName as A;
        let out = self
            .sqs
            .get_queue_attributes()
            .queue_url(queue_url)
            .attribute_names(A::ApproximateNumberOfMessages)
            .attribute_names(A::ApproximateNumberOfMessagesNotVisible)
            .attribute_names(A::ApproximateNumberOfMessagesDelayed)
            .send()
            .await
            .unwrap();
        out.attributes()
            .map(|a| a.values().map(|v| v.parse::<usize>().unwrap_or(0)).sum())
            .unwrap_or(0)
    }

    /// The stored event's item, read consistently; `None` when it is not stored.
    pub async fn event_item(
        &self,
        event_id: &str,
    ) -> Option<std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>> {
        self.dynamo
            .get_item()
            .table_name(self.events_table())
            .key(
                "pk",
                aws_sdk_dynamodb::types::AttributeValue::S(event_id.to_owned()),
            )
            .consistent_read(true)
            .send()
            .await
            .unwrap()
            .item()
            .cloned()
    }

    /// The stored event's status (RECEIVED, PROCESSED, REVIEW); panics when it is not stored.
    pub async fn event_status(&self, event_id: &str) -> String {
        self.event_item(event_id)
            .await
            .and_then(|item| item.get("status")?.as_s().ok().cloned())
            .expect("the event is stored")
    }

    /// What `callhook dev` would have written to `.callhook/dev.json` for this stack.
    pub fn dev_state(&self) -> callhook_cli::local::state::DevState {
        callhook_cli::local::state::DevState {
            url: "http://127.0.0.1:0".into(),
            aws_endpoint: self.moto.endpoint.clone(),
            tables: self.provisioned.tables.clone(),
            queues: self.provisioned.queues.clone(),
            buckets: self.provisioned.buckets.clone(),
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

/// An ingest wired by hand: DynamoDB, SQS and S3 at separate endpoints (to make one
/// unreachable), each client counting its requests.
pub struct CountedIngest {
    pub ingest: Ingest<DynamoEventStore, SqsQueue>,
    pub dynamo_requests: RequestCounter,
    pub sqs_requests: RequestCounter,
    pub s3_requests: RequestCounter,
}

/// [`counted_ingest_at`] with S3 where DynamoDB is.
pub fn counted_ingest(env: &Env, dynamo_endpoint: &str, sqs_endpoint: &str) -> CountedIngest {
    counted_ingest_at(env, dynamo_endpoint, sqs_endpoint, dynamo_endpoint)
}

pub fn counted_ingest_at(
    env: &Env,
    dynamo_endpoint: &str,
    sqs_endpoint: &str,
    s3_endpoint: &str,
) -> CountedIngest {
    let dynamo_requests = RequestCounter::default();
    let sqs_requests = RequestCounter::default();
    let s3_requests = RequestCounter::default();
    let config = IngestConfig::from_env(env).unwrap();
    let dynamo_sdk =
        callhook::adapters::aws::sdk_config(&with_endpoint(env, dynamo_endpoint)).unwrap();
    let sqs_sdk = callhook::adapters::aws::sdk_config(&with_endpoint(env, sqs_endpoint)).unwrap();
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
    let s3_sdk = callhook::adapters::aws::sdk_config(&with_endpoint(env, s3_endpoint)).unwrap();
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&s3_sdk)
            .force_path_style(true)
            .interceptor(s3_requests.clone())
            .build(),
    );
    CountedIngest {
        ingest: Ingest {
            providers: Providers::from_env(env).unwrap(),
            store: DynamoEventStore::new(dynamo, config.events_table.clone())
                .with_bodies(S3BlobStore::new(s3, config.events_bucket.clone())),
            queue: SqsQueue::new(sqs, config.events_queue_url.clone()),
            config,
        },
        dynamo_requests,
        sqs_requests,
        s3_requests,
    }
}

fn with_endpoint(env: &Env, endpoint: &str) -> Env {
    let mut env = env.clone();
    env.set("AWS_ENDPOINT_URL", endpoint);
    env
}

/// A Telnyx delivery of `body` signed with the fixture key at `now`, as ingest receives it.
pub fn telnyx_request(
    body: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> callhook::app::ingest::Request<'_> {
    let signed = providers::dev_signer("telnyx", &FIXTURE_SEED)
        .unwrap()
        .sign(body.as_bytes(), now.timestamp(), "");
    callhook::app::ingest::Request {
        method: "POST",
        provider: Some("telnyx"),
        token: None,
        headers: signed.headers.into_iter().collect(),
        body: Some(body),
        is_base64_encoded: false,
        request_url: None,
        received_at: now,
    }
}

/// moto checks a write's condition and then stores the item without a lock
/// (`moto/dynamodb/models/table.py`, `put_item`), so under load two concurrent conditional
/// PutItems of one key can both succeed there — seen with 50 concurrent deliveries. DynamoDB
/// applies the writes to one item one at a time; this store restores that on moto, so tests of
/// concurrent deliveries test callhook rather than the emulator's race.
pub struct AtomicOnMoto<S> {
    inner: S,
    writes: tokio::sync::Mutex<()>,
}

impl<S> AtomicOnMoto<S> {
    pub fn new(inner: S) -> Self {
        AtomicOnMoto {
            inner,
            writes: tokio::sync::Mutex::new(()),
        }
    }
}

impl<S: callhook::ports::EventStore> callhook::ports::EventStore for AtomicOnMoto<S> {
    async fn insert_new(
        &self,
        event: &callhook::ports::NewEvent<'_>,
    ) -> Result<callhook::ports::Inserted, callhook::ports::StoreError> {
        let _one_at_a_time = self.writes.lock().await;
        self.inner.insert_new(event).await
    }

    async fn mark_queue_failed(&self, event_id: &str) -> Result<(), callhook::ports::StoreError> {
        self.inner.mark_queue_failed(event_id).await
    }
}

/// An address where nothing listens.
pub fn dead_endpoint() -> String {
    format!("http://127.0.0.1:{}", emulator::free_port().unwrap())
}

// ------------------------------------------------------------------------------------------------
// A scripted HTTP receiver.

/// How [`HttpSink`] answers one request.
#[derive(Debug, Clone)]
pub enum Reply {
    Status(u16, String),
    /// Reads the request, then never answers.
    Hang,
}

/// One request an [`HttpSink`] received.
#[derive(Debug, Clone)]
pub struct SinkRequest {
    pub method: String,
    pub path: String,
    /// Names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl SinkRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A minimal HTTP/1.1 receiver on a free loopback port: records every request and answers the
/// scripted replies in order (then 200). Stops when dropped.
pub struct HttpSink {
    pub url: String,
    requests: Arc<std::sync::Mutex<Vec<SinkRequest>>>,
    server: tokio::task::JoinHandle<()>,
}

impl HttpSink {
    pub async fn start(script: Vec<Reply>) -> HttpSink {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let requests = Arc::new(std::sync::Mutex::new(Vec::new()));
        let script = Arc::new(std::sync::Mutex::new(
            script
                .into_iter()
                .collect::<std::collections::VecDeque<_>>(),
        ));
        let recorded = requests.clone();
        let server = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let recorded = recorded.clone();
                let script = script.clone();
                tokio::spawn(async move {
                    let _ = serve_one(stream, recorded, script).await;
                });
            }
        });
        HttpSink {
            url,
            requests,
            server,
        }
    }

    pub fn requests(&self) -> Vec<SinkRequest> {
        self.requests.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.requests.lock().unwrap().len()
    }
}

impl Drop for HttpSink {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn serve_one(
    mut stream: tokio::net::TcpStream,
    recorded: Arc<std::sync::Mutex<Vec<SinkRequest>>>,
    script: Arc<std::sync::Mutex<std::collections::VecDeque<Reply>>>,
) -> std::io::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut start = lines.next().unwrap_or_default().split(' ');
    let method = start.next().unwrap_or_default().to_owned();
    let path = start.next().unwrap_or_default().to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end..].to_vec();
    while body.len() < length {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    recorded.lock().unwrap().push(SinkRequest {
        method,
        path,
        headers,
        body,
    });
    let reply = script
        .lock()
        .unwrap()
        .pop_front()
        .unwrap_or(Reply::Status(200, String::new()));
    match reply {
        Reply::Hang => {
            tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
            Ok(())
        }
        Reply::Status(status, text) => {
            let response = format!(
                "HTTP/1.1 {status} Scripted\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{text}",
                text.len()
            );
            stream.write_all(response.as_bytes()).await?;
            stream.shutdown().await
        }
    }
}

/// A small deterministic generator, so every run of a test sends the same bytes.
pub struct Lcg(pub u64);

impl Lcg {
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    pub fn hex(&mut self, len: usize) -> String {
        (0..len)
            .map(|_| char::from_digit(self.below(16) as u32, 16).unwrap())
            .collect()
    }

    pub fn uuid(&mut self) -> String {
        format!(
            "{}-{}-{}-{}-{}",
            self.hex(8),
            self.hex(4),
            self.hex(4),
            self.hex(4),
            self.hex(12)
        )
    }
}
