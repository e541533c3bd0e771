//! `callhook dev`: the whole stack on this machine, no Docker. Starts moto server (unless
//! `--aws-endpoint` names a running emulator), provisions the tables, queues and bucket that
//! template.yaml declares, fills dev keys, and serves ingest on 127.0.0.1 through the same
//! handler code as the Lambda.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use callhook::config::Env;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::local::dotenv::read_dotenv;
use crate::local::emulator::{self, Moto};
use crate::local::state::DevState;
use crate::local::{gateway, keys, provision, schedule, terminal};

pub struct Options {
    pub port: u16,
    /// Port of the built-in CRM/ticketing sink (used when the environment names no URLs).
    pub sink_port: u16,
    pub aws_endpoint: Option<String>,
    pub template: PathBuf,
    pub prefix: String,
    pub state_dir: PathBuf,
    /// Also print the functions' EMF metric lines on stdout (they always go to
    /// `state_dir/emf.jsonl`).
    pub emf: bool,
}

pub async fn run(options: Options) -> Result<()> {
    terminal::install(&options.state_dir)?;
    // Exactly what Lambda would write to stdout, in a file (and on stdout with --emf): the
    // terminal gets one readable line per request, event and dispatch instead.
    let metrics = terminal::emf_sink(&options.state_dir, options.emf)?;
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
    let s3 = emulator::s3_client(&endpoint);
    let provisioned = provision::apply(&plan, &options.prefix, &dynamo, &sqs, &s3)
        .await
        .with_context(|| format!("provisioning the emulator at {endpoint}"))?;
    for (logical, name) in &provisioned.tables {
        eprintln!("  table {logical:<24} {name}");
    }
    for (logical, url) in &provisioned.queues {
        eprintln!("  queue {logical:<24} {url}");
    }
    for (logical, name) in &provisioned.buckets {
        eprintln!("  bucket {logical:<23} {name}");
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
    // Local development: the public fixture keys (events/env.json) and the fixtures' long
    // tolerances are allowed here, and only here.
    env.set("CALLHOOK_DEV", "true");
    let generated = provider_env(&options.state_dir, &mut env, addr)?;
    let mut sink_server = None;
    if env.get("CRM_SIGNING_SECRET").is_none() {
        let seed = keys::load_or_create(&options.state_dir, "crm")?;
        env.set(
            "CRM_SIGNING_SECRET",
            callhook::signing::standard_webhooks::encode_secret(&seed),
        );
    }
    if env.get("CRM_WEBHOOK_URL").is_none() && env.get("TICKETING_WEBHOOK_URL").is_none() {
        let (listener, sink_addr) = crate::local::sink::bind(options.sink_port).await?;
        let log = options.state_dir.join("sink.jsonl");
        let sink =
            crate::local::sink::Sink::new(env.require("CRM_SIGNING_SECRET")?, Some(log.clone()))?;
        env.set("CRM_WEBHOOK_URL", format!("http://{sink_addr}/crm"));
        env.set(
            "TICKETING_WEBHOOK_URL",
            format!("http://{sink_addr}/ticketing"),
        );
        eprintln!(
            "CRM and ticketing sink on http://{sink_addr} (deliveries logged to {})",
            log.display()
        );
        sink_server = Some(tokio::spawn(crate::local::sink::serve(
            listener,
            Arc::new(sink),
        )));
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
    let sweeper = schedule::sweeper(
        &env,
        &endpoint,
        &provisioned,
        std::time::Duration::from_secs(callhook::config::DEFAULT_SWEEP_MIN_AGE_SECS),
    )?;
    let events_queue = provisioned.queues["EventsQueue"].clone();
    let dispatch_queue = provisioned.queues["DispatchQueue"].clone();
    let mut pollers = vec![
        // The template schedules the sweeper every minute; so does dev.
        tokio::spawn(
            async move { schedule::every(&sweeper, std::time::Duration::from_secs(60)).await },
        ),
        tokio::spawn({
            let metrics = metrics.clone();
            poll_forever("lifecycle", sqs.clone(), events_queue, move |event| {
                let (lifecycle, metrics) = (lifecycle.clone(), metrics.clone());
                async move { callhook_lifecycle::process_batch_with(&lifecycle, &event, &metrics).await }
            })
        }),
        tokio::spawn({
            let metrics = metrics.clone();
            poll_forever("dispatch", sqs.clone(), dispatch_queue, move |event| {
                let (dispatch, metrics) = (dispatch.clone(), metrics.clone());
                async move { callhook_dispatch::process_batch_with(&dispatch, &event, &metrics).await }
            })
        }),
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
        buckets: provisioned.buckets.clone(),
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
    eprintln!(
        "function logs (JSON) in {}, metrics (EMF) in {}{}",
        options.state_dir.join(terminal::LOG_FILE).display(),
        options.state_dir.join(terminal::EMF_FILE).display(),
        if options.emf { " and on stdout" } else { "" }
    );
    eprintln!("try:  callhook send telnyx events/telnyx/call-initiated.json");
    eprintln!("      callhook console   (a local web page of the calls, events and review items)");
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
                let metrics = metrics.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| {
                        let (ingest, metrics) = (ingest.clone(), metrics.clone());
                        async move {
                            Ok::<_, std::convert::Infallible>(
                                gateway::serve_with(&ingest, req, &metrics).await,
                            )
                        }
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

/// The providers' local environment: dev keys for every provider `env` leaves unconfigured
/// (their names are returned), and the URLs the providers that sign the URL would call, which
/// locally is plain http on `addr` (API Gateway's stand-in reports `https://{host}{path}`):
/// - `BIRD_WEBHOOK_URL`, when unset (Bird also accepts the request's URL);
/// - `TWILIO_WEBHOOK_URL` and `PLIVO_WEBHOOK_URL`, when unset and the provider got dev keys:
///   `callhook send` signs for this URL. A provider configured with real tokens keeps
///   verifying against the request's URL (e.g. behind a tunnel), as when deployed.
pub fn provider_env(
    state_dir: &Path,
    env: &mut Env,
    addr: SocketAddr,
) -> Result<Vec<&'static str>> {
    if env.get("BIRD_WEBHOOK_URL").is_none() {
        env.set("BIRD_WEBHOOK_URL", format!("http://{addr}/webhooks/bird"));
    }
    let generated = keys::fill_dev_keys(state_dir, env)?;
    for (provider, var) in [
        ("twilio", "TWILIO_WEBHOOK_URL"),
        ("plivo", "PLIVO_WEBHOOK_URL"),
    ] {
        if generated.contains(&provider) && env.get(var).is_none() {
            env.set(var, format!("http://{addr}/webhooks/{provider}"));
        }
    }
    Ok(generated)
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
        // Each event and dispatch of a batch has its own terminal line (the functions' logs).
        match crate::local::poller::poll_once(&sqs, &queue_url, 10, 1, &handler).await {
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(function = name, queue = %queue_url, error = format!("{e:#}"), "polling failed");
                tokio::time::sleep(std::time::Duration::from_secs(2)).await;
            }
        }
    }
}
