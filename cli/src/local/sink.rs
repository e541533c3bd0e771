//! `callhook sink`: a local stand-in for the CRM and ticketing webhooks. It verifies each
//! delivery's Standard Webhooks signature with the dispatch signing secret, prints it, and
//! appends it to a JSON-lines log, so you can see exactly what a business system would get.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use callhook::providers::Headers;
use callhook::signing::standard_webhooks;
use chrono::Utc;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;

pub struct Sink {
    keys: Vec<standard_webhooks::Key>,
    log: Option<Mutex<std::fs::File>>,
}

impl Sink {
    pub fn new(secret: &str, log_path: Option<PathBuf>) -> Result<Sink> {
        let keys = standard_webhooks::parse_keys("CRM_SIGNING_SECRET", &[secret])?;
        let log = match log_path {
            Some(path) => Some(Mutex::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)
                    .with_context(|| format!("opening {}", path.display()))?,
            )),
            None => None,
        };
        Ok(Sink { keys, log })
    }

    /// One delivery as the sink records it: path, id, whether the signature verified, body.
    pub fn record(&self, path: &str, headers: &Headers, body: &[u8]) -> Value {
        let verified = standard_webhooks::verify(&self.keys, headers, body, Utc::now(), 300);
        let body: Value = serde_json::from_slice(body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()));
        json!({
            "received_at": Utc::now().to_rfc3339(),
            "path": path,
            "webhook_id": headers.get("webhook-id"),
            "signature": match verified { Ok(()) => "valid".to_owned(), Err(e) => e.to_string() },
            "body": body,
        })
    }
}

pub async fn serve(listener: TcpListener, sink: Arc<Sink>) -> Result<()> {
    loop {
        let (stream, _) = listener.accept().await?;
        let sink = sink.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                let sink = sink.clone();
                async move {
                    let (parts, body) = req.into_parts();
                    let bytes = body
                        .collect()
                        .await
                        .map(|b| b.to_bytes())
                        .unwrap_or_default();
                    let headers: Headers = parts
                        .headers
                        .iter()
                        .map(|(k, v)| {
                            (
                                k.as_str(),
                                String::from_utf8_lossy(v.as_bytes()).into_owned(),
                            )
                        })
                        .collect();
                    let entry = sink.record(parts.uri.path(), &headers, &bytes);
                    // One line in `callhook dev`'s terminal (local/terminal.rs).
                    tracing::info!(
                        path = entry["path"].as_str().unwrap_or(""),
                        message_type = entry["body"]["type"].as_str().unwrap_or("?"),
                        call_id = entry["body"]["call"]["call_id"].as_str().unwrap_or(""),
                        webhook_id = entry["webhook_id"].as_str().unwrap_or("-"),
                        signature = entry["signature"].as_str().unwrap_or(""),
                        "delivered"
                    );
                    if let Some(log) = &sink.log
                        && let Ok(mut file) = log.lock()
                    {
                        let _ = writeln!(file, "{entry}");
                    }
                    Ok::<_, std::convert::Infallible>(
                        Response::builder()
                            .status(200)
                            .body(Full::new(Bytes::from_static(b"{\"ok\":true}")))
                            .expect("static response"),
                    )
                }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

pub async fn bind(port: u16) -> Result<(TcpListener, SocketAddr)> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let listener = TcpListener::bind(addr).await.map_err(|e| {
        if e.kind() == std::io::ErrorKind::AddrInUse {
            anyhow::anyhow!("port {port} is already in use: pass --sink-port")
        } else {
            anyhow::Error::new(e).context(format!("cannot listen on {addr}"))
        }
    })?;
    Ok((listener, addr))
}
