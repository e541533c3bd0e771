//! The ingest Lambda: API Gateway HTTP API (payload 2.0) ⇄ `callhook::ingest`.
//!
//! It takes the raw `ApiGatewayV2httpRequest` rather than `lambda_http`'s request, because
//! `lambda_http` panics on a body that is not valid base64 before a handler could answer 400.

use std::future::Future;

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use aws_lambda_events::encodings::Body;
use callhook::adapters::dynamodb::DynamoEventStore;
use callhook::adapters::s3::S3BlobStore;
use callhook::adapters::sqs::SqsQueue;
use callhook::app::ingest::{Answer, Ingest, Request};
use callhook::config::{ConfigError, Env, IngestConfig};
use callhook::delivery::Headers;
use callhook::observability::emf::{Metrics, Sink};
use callhook::observability::metrics;
use callhook::providers::Providers;
use chrono::Utc;
use http::{HeaderMap, HeaderValue};
use lambda_runtime::{Error, LambdaEvent};

pub type IngestFunction = Ingest<DynamoEventStore, SqsQueue>;

/// Everything the function needs, built once per cold start; any configuration problem is one
/// clear error naming the variable.
pub fn build(env: &Env) -> Result<IngestFunction, ConfigError> {
    let config = IngestConfig::from_env(env)?;
    let providers = Providers::from_env(env)?;
    callhook::observability::metrics::warn_unauthenticated(&providers, &Sink::Stdout);
    let sdk = callhook::adapters::aws::sdk_config(env)?;
    Ok(Ingest {
        providers,
        store: DynamoEventStore::new(
            aws_sdk_dynamodb::Client::new(&sdk),
            config.events_table.clone(),
        )
        .with_bodies(S3BlobStore::new(
            S3BlobStore::client(&sdk),
            config.events_bucket.clone(),
        )),
        queue: SqsQueue::new(
            aws_sdk_sqs::Client::new(&sdk),
            config.events_queue_url.clone(),
        ),
        config,
    })
}

/// Reads what the contract needs from API Gateway's event. Header values that are not UTF-8
/// are kept lossily: a signature header mangled that way simply fails verification.
pub fn request_of(event: &ApiGatewayV2httpRequest) -> Request<'_> {
    let headers: Headers = event
        .headers
        .iter()
        .map(|(name, value)| {
            (
                name.as_str(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect();
    let path = event
        .raw_path
        .as_deref()
        .or(event.request_context.http.path.as_deref());
    let request_url = event.request_context.domain_name.as_deref().map(|domain| {
        let mut url = format!("https://{domain}{}", path.unwrap_or("/"));
        if let Some(query) = event.raw_query_string.as_deref().filter(|q| !q.is_empty()) {
            url.push('?');
            url.push_str(query);
        }
        url
    });
    Request {
        method: event.request_context.http.method.as_str(),
        provider: event.path_parameters.get("provider").map(String::as_str),
        token: event.path_parameters.get("token").map(String::as_str),
        headers,
        body: event.body.as_deref(),
        is_base64_encoded: event.is_base64_encoded,
        request_url,
        received_at: Utc::now(),
    }
}

pub fn response_of(answer: Answer) -> ApiGatewayV2httpResponse {
    let status = answer.status();
    let mut headers = HeaderMap::new();
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    for (name, value) in answer.headers {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    }
    let mut response = ApiGatewayV2httpResponse::default();
    response.status_code = i64::from(status);
    response.headers = headers;
    response.body = Some(Body::Text(answer.body.to_string()));
    response
}

/// The whole function: API Gateway event in, API Gateway response out, its metrics on stdout
/// (EMF). `callhook dev` serves HTTP through this too.
///
/// Not an `async fn` of its own: one more layer of future would pass the compiler's layout
/// depth limit (the SDK futures are deep).
pub fn respond<'a>(
    function: &'a IngestFunction,
    event: &'a ApiGatewayV2httpRequest,
) -> impl Future<Output = ApiGatewayV2httpResponse> + Send + 'a {
    static STDOUT: Sink = Sink::Stdout;
    respond_with(function, event, &STDOUT)
}

/// [`respond`], writing the request's metrics (one EMF line) to `sink`.
pub async fn respond_with(
    function: &IngestFunction,
    event: &ApiGatewayV2httpRequest,
    sink: &Sink,
) -> ApiGatewayV2httpResponse {
    let request = request_of(event);
    let answer = function.handle(&request).await;
    let mut metrics = Metrics::at(request.received_at);
    metrics::record_ingest(&mut metrics, request.provider, &answer.outcome);
    metrics.flush(sink);
    response_of(answer)
}

pub async fn handle(
    function: &IngestFunction,
    event: LambdaEvent<ApiGatewayV2httpRequest>,
) -> Result<ApiGatewayV2httpResponse, Error> {
    Ok(respond(function, &event.payload).await)
}
