//! `callhook dev`: the whole stack on this machine, no Docker. Starts moto server (unless
//! `--aws-endpoint` names a running emulator), provisions the tables and queues that
//! template.yaml declares, fills dev keys, and serves ingest on 127.0.0.1 through the same
//! handler code as the Lambda.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use aws_lambda_events::encodings::Body as LambdaBody;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use callhook::config::Env;
use callhook_ingest::IngestFunction;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::net::TcpListener;

use crate::emulator::{self, Moto};
use crate::{keys, provision};

/// API Gateway HTTP APIs refuse bodies over 10 MB before the function sees them.
const GATEWAY_MAX_BODY: usize = 10 * 1024 * 1024;

pub struct Options {
    pub port: u16,
    /// Port of the built-in CRM/ticketing sink (used when the environment names no URLs).
    pub sink_port: u16,
    pub aws_endpoint: Option<String>,
    pub template: PathBuf,
    pub prefix: String,
    pub state_dir: PathBuf,
}

/// Where the local stack lives, written to `.callhook/dev.json` for the other commands.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DevState {
    pub url: String,
    pub aws_endpoint: String,
    pub tables: BTreeMap<String, String>,
    pub queues: BTreeMap<String, String>,
}

impl DevState {
    pub fn load(state_dir: &Path) -> Result<DevState> {
        let path = state_dir.join("dev.json");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("{} not found: is `callhook dev` running?", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("{} is not valid", path.display()))
    }
}

/// Reads `KEY=VALUE` lines of a `.env` file (comments and blank lines skipped; values may be
/// quoted). The process environment wins over the file.
pub fn read_dotenv(path: &Path) -> Result<Vec<(String, String)>> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(Vec::new());
    };
    let mut vars = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((key, value)) = line.split_once('=') else {
            bail!("{}:{}: expected KEY=VALUE", path.display(), n + 1);
        };
        let value = value.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
            .unwrap_or(value);
        vars.push((key.trim().to_owned(), value.replace("\\n", "\n")));
    }
    Ok(vars)
}

pub async fn run(options: Options) -> Result<()> {
    let addr = SocketAddr::from(([127, 0, 0, 1], options.port));
    let listener = TcpListener::bind(addr).await.map_err(|e| {
        if e.kind() == std::io::ErrorKind::AddrInUse {
            anyhow::anyhow!(
                "port {} is already in use (another `callhook dev`?): stop it or pass --port",
                options.port
            )
        } else {
            anyhow::Error::new(e).context(format!("cannot listen on {addr}"))
        }
    })?;

    let _moto; // kept alive until the server stops; dropping it stops the emulator
    let endpoint = match &options.aws_endpoint {
        Some(endpoint) => endpoint.clone(),
        None => {
            eprintln!("starting moto server …");
            let moto = tokio::task::spawn_blocking(Moto::start).await??;
            let endpoint = moto.endpoint.clone();
            _moto = moto;
            endpoint
        }
    };
    eprintln!("AWS emulator: {endpoint}");

    let template = std::fs::read_to_string(&options.template)
        .with_context(|| format!("reading {}", options.template.display()))?;
    let plan = provision::plan_from_template(&template)?;
    let (dynamo, sqs) = emulator::clients(&endpoint);
    let provisioned = provision::apply(&plan, &options.prefix, &dynamo, &sqs)
        .await
        .with_context(|| format!("provisioning the emulator at {endpoint}"))?;
    for (logical, name) in &provisioned.tables {
        eprintln!("  table {logical:<24} {name}");
    }
    for (logical, url) in &provisioned.queues {
        eprintln!("  queue {logical:<24} {url}");
    }

    let mut env = Env::from_pairs(read_dotenv(Path::new(".env"))?);
    for (k, v) in std::env::vars() {
        env.set(&k, v);
    }
    for (k, v) in provision::function_env(&template, "IngestFunction", &provisioned)? {
        env.set(&k, v);
    }
    for (k, v) in emulator::local_aws_env(&endpoint) {
        env.set(k, v);
    }
    if env.get("BIRD_WEBHOOK_URL").is_none() {
        // Bird signs the URL it calls; locally that is plain http on this port.
        env.set("BIRD_WEBHOOK_URL", format!("http://{addr}/webhooks/bird"));
    }
    let generated = keys::fill_dev_keys(&options.state_dir, &mut env)?;
    let mut sink_server = None;
    if env.get("CRM_SIGNING_SECRET").is_none() {
        let seed = keys::load_or_create(&options.state_dir, "crm")?;
        env.set(
            "CRM_SIGNING_SECRET",
            callhook::standard_webhooks::encode_secret(&seed),
        );
    }
    if env.get("CRM_WEBHOOK_URL").is_none() && env.get("TICKETING_WEBHOOK_URL").is_none() {
        let (listener, sink_addr) = crate::sink::bind(options.sink_port).await?;
        let log = options.state_dir.join("sink.jsonl");
        let sink = crate::sink::Sink::new(env.require("CRM_SIGNING_SECRET")?, Some(log.clone()))?;
        env.set("CRM_WEBHOOK_URL", format!("http://{sink_addr}/crm"));
        env.set(
            "TICKETING_WEBHOOK_URL",
            format!("http://{sink_addr}/ticketing"),
        );
        eprintln!(
            "CRM and ticketing sink on http://{sink_addr} (deliveries logged to {})",
            log.display()
        );
        sink_server = Some(tokio::spawn(crate::sink::serve(listener, Arc::new(sink))));
    }
    if !generated.is_empty() {
        eprintln!(
            "dev keys in {}/keys for: {}",
            options.state_dir.display(),
            generated.join(", ")
        );
    }
    let ingest = Arc::new(callhook_ingest::build(&env).context("ingest configuration")?);
    let mut lifecycle_env = env.clone();
    for (k, v) in provision::function_env(&template, "LifecycleFunction", &provisioned)? {
        lifecycle_env.set(&k, v);
    }
    let lifecycle =
        Arc::new(callhook_lifecycle::build(&lifecycle_env).context("lifecycle configuration")?);
    let mut dispatch_env = env.clone();
    for (k, v) in provision::function_env(&template, "DispatchFunction", &provisioned)? {
        dispatch_env.set(&k, v);
    }
    let dispatch =
        Arc::new(callhook_dispatch::build(&dispatch_env).context("dispatch configuration")?);
    let mut review_env = env.clone();
    for (k, v) in provision::function_env(&template, "ReviewFunction", &provisioned)? {
        review_env.set(&k, v);
    }
    let review = Arc::new(callhook_review::build(&review_env).context("review configuration")?);
    let sweeper = crate::sweep::sweeper(
        &env,
        &endpoint,
        &provisioned.tables,
        &provisioned.queues,
        std::time::Duration::from_secs(callhook::sweep::DEFAULT_SWEEP_MIN_AGE_SECS),
    )?;
    let events_queue = provisioned.queues["EventsQueue"].clone();
    let dispatch_queue = provisioned.queues["DispatchQueue"].clone();
    let mut pollers = vec![
        // The template schedules the sweeper every minute; so does dev.
        tokio::spawn(async move {
            crate::sweep::every(&sweeper, std::time::Duration::from_secs(60)).await
        }),
        tokio::spawn(poll_forever(
            "lifecycle",
            sqs.clone(),
            events_queue,
            move |event| {
                let lifecycle = lifecycle.clone();
                async move { callhook_lifecycle::process_batch(&lifecycle, &event).await }
            },
        )),
        tokio::spawn(poll_forever(
            "dispatch",
            sqs.clone(),
            dispatch_queue,
            move |event| {
                let dispatch = dispatch.clone();
                async move { callhook_dispatch::process_batch(&dispatch, &event).await }
            },
        )),
    ];
    // The review function's event sources (template.yaml): the review queue and every DLQ.
    for queue in [
        "ReviewQueue",
        "EventsDeadLetterQueue",
        "DispatchDeadLetterQueue",
        "CallbackDeadLetterQueue",
    ] {
        let review = review.clone();
        pollers.push(tokio::spawn(poll_forever(
            "review",
            sqs.clone(),
            provisioned.queues[queue].clone(),
            move |event| {
                let review = review.clone();
                async move { callhook_review::process_batch(&review, &event).await }
            },
        )));
    }

    let url = format!("http://{addr}");
    let state = DevState {
        url: url.clone(),
        aws_endpoint: endpoint.clone(),
        tables: provisioned.tables.clone(),
        queues: provisioned.queues.clone(),
    };
    std::fs::create_dir_all(&options.state_dir)?;
    std::fs::write(
        options.state_dir.join("dev.json"),
        serde_json::to_string_pretty(&state)?,
    )?;

    eprintln!(
        "ingest on {url}/webhooks/{{provider}}[/{{token}}] for: {}",
        ingest.providers.names().collect::<Vec<_>>().join(", ")
    );
    eprintln!("try:  callhook send telnyx events/telnyx/call-initiated.json");
    eprintln!("Ctrl-C stops everything this command started.");

    // Ctrl-C, or a TERM from a supervisor: either stops everything this command started.
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        tokio::select! {
            _ = terminate.recv() => {
                eprintln!("stopping");
                break;
            }
            accepted = listener.accept() => {
                let (stream, _) = match accepted {
                    Ok(conn) => conn,
                    Err(e) => { eprintln!("accept failed: {e}"); continue; }
                };
                let ingest = ingest.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| {
                        let ingest = ingest.clone();
                        async move { Ok::<_, std::convert::Infallible>(serve(&ingest, req).await) }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
            _ = tokio::signal::ctrl_c() => {
                eprintln!("\nstopping");
                break;
            }
        }
    }
    for poller in pollers {
        poller.abort();
    }
    if let Some(sink) = sink_server {
        sink.abort();
    }
    let _ = std::fs::remove_file(options.state_dir.join("dev.json"));
    Ok(())
}

/// Runs a function on its queue the way the SQS event source mapping does, until aborted.
async fn poll_forever<F, Fut>(
    name: &'static str,
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    handler: F,
) where
    F: Fn(aws_lambda_events::sqs::SqsEvent) -> Fut,
    Fut: std::future::Future<Output = aws_lambda_events::sqs::SqsBatchResponse>,
{
    loop {
        match crate::poller::poll_once(&sqs, &queue_url, 10, 1, &handler).await {
            Ok(0) => {}
            Ok(n) => eprintln!("{name}: processed a batch of {n}"),
            Err(e) => {
                eprintln!("{name}: polling {queue_url} failed: {e:#}");
                tokio::time::sleep(std::time::Duration::from_secs(2)).await;
            }
        }
    }
}

fn json_response(status: u16, body: serde_json::Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("static response parts are valid")
}

/// One HTTP request through the Lambda handler, as API Gateway would pass it.
async fn serve(ingest: &IngestFunction, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let Some(path_parameters) = route(parts.uri.path()) else {
        return json_response(404, json!({ "message": "Not Found" }));
    };
    let body = match Limited::new(body, GATEWAY_MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return json_response(413, json!({ "message": "Request Entity Too Large" })),
    };
    let event = match gateway_event(&parts, path_parameters, &body) {
        Ok(event) => event,
        Err(e) => return json_response(400, json!({ "message": e.to_string() })),
    };
    let response = callhook_ingest::respond(ingest, &event).await;
    let mut builder = Response::builder().status(response.status_code as u16);
    for (name, value) in &response.headers {
        builder = builder.header(name, value);
    }
    let body = match response.body {
        Some(LambdaBody::Text(text)) => Bytes::from(text),
        Some(LambdaBody::Binary(bytes)) => Bytes::from(bytes),
        _ => Bytes::new(),
    };
    builder
        .body(Full::new(body))
        .unwrap_or_else(|_| json_response(500, json!({ "message": "bad response" })))
}

/// `/webhooks/{provider}` and `/webhooks/{provider}/{token}`, as the HttpApi routes them.
pub fn route(path: &str) -> Option<serde_json::Map<String, serde_json::Value>> {
    let rest = path.strip_prefix("/webhooks/")?;
    let mut segments = rest.split('/');
    let provider = segments.next().filter(|s| !s.is_empty())?;
    let token = segments.next();
    if segments.next().is_some() || token == Some("") {
        return None;
    }
    let mut params = serde_json::Map::new();
    params.insert("provider".into(), provider.into());
    if let Some(token) = token {
        params.insert("token".into(), token.into());
    }
    Some(params)
}

/// The API Gateway HTTP API (payload 2.0) event for a request: text bodies as they are,
/// anything that is not UTF-8 base64-encoded, as the gateway does.
pub fn gateway_event(
    parts: &http::request::Parts,
    path_parameters: serde_json::Map<String, serde_json::Value>,
    body: &[u8],
) -> Result<ApiGatewayV2httpRequest> {
    let mut headers = serde_json::Map::new();
    for (name, value) in &parts.headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        match headers.get_mut(name.as_str()) {
            Some(serde_json::Value::String(existing)) => {
                existing.push(',');
                existing.push_str(&value);
            }
            _ => {
                headers.insert(name.as_str().to_owned(), value.into());
            }
        }
    }
    let (body, is_base64) = match std::str::from_utf8(body) {
        Ok(text) => (text.to_owned(), false),
        Err(_) => (B64.encode(body), true),
    };
    let path = parts.uri.path();
    let route = if path_parameters.contains_key("token") {
        "ANY /webhooks/{provider}/{token}"
    } else {
        "ANY /webhooks/{provider}"
    };
    let event = json!({
        "version": "2.0",
        "routeKey": route,
        "rawPath": path,
        "rawQueryString": parts.uri.query().unwrap_or(""),
        "headers": headers,
        "pathParameters": path_parameters,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "local",
            "domainName": parts.headers.get("host").and_then(|h| h.to_str().ok()).unwrap_or("127.0.0.1"),
            "domainPrefix": "local",
            "http": {
                "method": parts.method.as_str(),
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": parts.headers.get("user-agent").and_then(|h| h.to_str().ok()).unwrap_or("")
            },
            "requestId": "local",
            "routeKey": route,
            "stage": "$default",
            "time": "",
            "timeEpoch": 0
        },
        "body": body,
        "isBase64Encoded": is_base64
    });
    Ok(serde_json::from_value(event)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_match_the_http_api() {
        assert_eq!(route("/webhooks/telnyx").unwrap()["provider"], "telnyx");
        let with_token = route("/webhooks/miraiminds/s3cret").unwrap();
        assert_eq!(with_token["token"], "s3cret");
        assert!(route("/webhooks/").is_none());
        assert!(route("/webhooks/a/b/c").is_none());
        assert!(route("/other").is_none());
    }

    #[test]
    fn non_utf8_bodies_are_base64_encoded_like_the_gateway() {
        let (parts, _) = http::Request::post("/webhooks/telnyx")
            .header("X-A", "1")
            .body(())
            .unwrap()
            .into_parts();
        let event = gateway_event(&parts, route("/webhooks/telnyx").unwrap(), b"\xff\x00").unwrap();
        assert!(event.is_base64_encoded);
        assert_eq!(event.body.as_deref(), Some("/wA="));
        assert_eq!(event.headers["x-a"], "1");
        let text = gateway_event(&parts, route("/webhooks/telnyx").unwrap(), b"{}").unwrap();
        assert!(!text.is_base64_encoded);
    }

    #[test]
    fn dotenv_lines_parse() {
        let dir = std::env::temp_dir().join(format!("callhook-dotenv-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(".env");
        std::fs::write(&path, "# c\nA=1\nexport B=\"two words\"\n\nC='x\\ny'\n").unwrap();
        let vars = read_dotenv(&path).unwrap();
        assert_eq!(
            vars,
            vec![
                ("A".into(), "1".into()),
                ("B".into(), "two words".into()),
                ("C".into(), "x\ny".into())
            ]
        );
        std::fs::write(&path, "nonsense\n").unwrap();
        assert!(read_dotenv(&path).unwrap_err().to_string().contains(":1:"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
