//! `callhook console`: a local web page over the running `callhook dev` or a deployed stack —
//! the calls, each call's story (its events by occurrence and by receipt, what each changed, its
//! dispatches), the review items with replay and discard, and the last hour at a glance.
//!
//! Nothing is deployed: the console reads the tables with the operator's credentials, listens
//! on 127.0.0.1 only, and answers only to the token it prints (docs/console.md).
//!
//! The pages' models are pure and tested on their own — [`calls`], [`story`], [`summary`],
//! [`text`] — apart from the HTTP and HTML side — [`auth`], [`server`], [`pages`] — and from the
//! stores ([`data`]).

pub mod auth;
pub mod calls;
pub mod data;
pub mod pages;
pub mod server;
pub mod story;
pub mod summary;
pub mod text;

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use tokio::net::TcpListener;

use crate::target::TargetOptions;

pub struct Options {
    /// 0: any free port.
    pub port: u16,
    pub stale_after: chrono::Duration,
    pub target: TargetOptions,
    pub state_dir: PathBuf,
}

/// Serves the console until Ctrl-C or TERM. The URL with the token is the first line on stdout.
pub async fn run(options: Options) -> Result<()> {
    let backend = data::TargetBackend::new(
        options.target.clone(),
        &options.state_dir,
        options.stale_after,
    )
    .await?;
    // Loopback only, by construction: the address is not an option.
    let addr = SocketAddr::from(([127, 0, 0, 1], options.port));
    let listener = TcpListener::bind(addr).await.map_err(|e| {
        if e.kind() == std::io::ErrorKind::AddrInUse {
            anyhow::anyhow!(
                "port {} is already in use: pass --port (0 for any free one)",
                options.port
            )
        } else {
            anyhow::Error::new(e).context(format!("cannot listen on {addr}"))
        }
    })?;
    let port = listener.local_addr()?.port();
    let secrets = Arc::new(auth::Secrets::generate(port));
    let label = data::Backend::label(&backend);
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "http://127.0.0.1:{port}/?token={}", secrets.token)?;
        out.flush()?;
    }
    eprintln!("callhook console for {label}: open the URL above (it holds this session's token).");
    eprintln!("Ctrl-C stops it.");
    let app = Arc::new(server::App { backend, secrets });
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    axum::serve(listener, server::router(app))
        .with_graceful_shutdown(async move {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = terminate.recv() => {}
            }
        })
        .await
        .context("serving the console")
}
