//! `callhook sink`: a local stand-in for the CRM and ticketing webhooks. It verifies each
//! delivery's Standard Webhooks signature with the dispatch signing secret, prints it, and
//! appends it to a JSON-lines log, so you can see exactly what a business system would get.

use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use callhook::providers::Headers;
use callhook::signing::standard_webhooks;
use chrono::Utc;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
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
            Some(path) => {
                // What the CRM received, signed call records included: the owner's only.
                let file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .mode(0o600)
                    .open(&path)
                    .with_context(|| format!("opening {}", path.display()))?;
                file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
                Some(Mutex::new(file))
            }
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

/// The largest delivery the sink takes (413 above): callhook's own dispatches are far smaller,
/// and anything on this port could otherwise fill memory and `sink.jsonl`.
pub const MAX_SINK_BODY_BYTES: usize = 1024 * 1024;

/// One request: read (at most [`MAX_SINK_BODY_BYTES`]), verified, printed and logged; 200, or
/// 413 for a larger body (not logged).
pub async fn respond<B>(sink: &Sink, req: Request<B>) -> Response<Full<Bytes>>
where
    B: hyper::body::Body,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let answer = |status: u16, body: &'static [u8]| {
        Response::builder()
            .status(status)
            .body(Full::new(Bytes::from_static(body)))
            .expect("static response")
    };
    let (parts, body) = req.into_parts();
    let bytes = match Limited::new(body, MAX_SINK_BODY_BYTES).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(err) if err.is::<LengthLimitError>() => {
            eprintln!(
                "sink: {} refused: body over {MAX_SINK_BODY_BYTES} bytes",
                parts.uri.path()
            );
            return answer(413, b"{\"error\":\"body too large\"}");
        }
        Err(_) => return answer(400, b"{\"error\":\"body could not be read\"}"),
    };
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
    // One line in `callhook dev`'s terminal (local/terminal.rs, which escapes what senders chose).
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
    answer(200, b"{\"ok\":true}")
}

pub async fn serve(listener: TcpListener, sink: Arc<Sink>) -> Result<()> {
    loop {
        let (stream, _) = listener.accept().await?;
        let sink = sink.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                let sink = sink.clone();
                async move { Ok::<_, std::convert::Infallible>(respond(&sink, req).await) }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("callhook-sink-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn secret() -> String {
        callhook::signing::standard_webhooks::encode_secret(&[7; 32])
    }

    #[tokio::test]
    async fn bodies_over_one_mib_are_refused_and_not_logged() {
        let dir = temp("limit");
        let log = dir.join("sink.jsonl");
        let sink = Sink::new(&secret(), Some(log.clone())).unwrap();
        let post = |len: usize| {
            Request::post("/crm")
                .body(Full::new(Bytes::from(vec![b'x'; len])))
                .unwrap()
        };
        assert_eq!(
            respond(&sink, post(MAX_SINK_BODY_BYTES + 1)).await.status(),
            413
        );
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "");
        assert_eq!(respond(&sink, post(1024)).await.status(), 200);
        assert_eq!(std::fs::read_to_string(&log).unwrap().lines().count(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_log_is_readable_by_its_owner_only() {
        let dir = temp("mode");
        let log = dir.join("sink.jsonl");
        std::fs::write(&log, "").unwrap();
        std::fs::set_permissions(&log, std::fs::Permissions::from_mode(0o644)).unwrap();
        Sink::new(&secret(), Some(log.clone())).unwrap();
        let mode = std::fs::metadata(&log).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
