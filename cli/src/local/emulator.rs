//! A local AWS emulator (moto server) on a free loopback port, for `callhook dev` and the tests.
//! The process is killed when the handle drops, so nothing outlives its owner.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

pub const REGION: &str = "us-east-1";

/// A running moto server.
pub struct Moto {
    child: Child,
    pub endpoint: String,
}

impl Moto {
    /// Starts moto server on a free port and waits until it answers.
    pub fn start() -> Result<Moto> {
        let binary = moto_binary()?;
        let port = free_port()?;
        let child = Command::new(&binary)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("could not start {}", binary.display()))?;
        let mut moto = Moto {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        moto.wait_ready(port)?;
        Ok(moto)
    }

    fn wait_ready(&mut self, port: u16) -> Result<()> {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                bail!("moto server exited early ({status})");
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        bail!("moto server did not answer on port {port} within 60 s")
    }

    /// The emulator's process id (tests pause it with SIGSTOP to make AWS unavailable).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops the emulator now (as if it crashed); the handle stays usable for `endpoint`.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> Result<u16> {
    let listener = TcpListener::bind(("127.0.0.1", 0)).context("no free loopback port")?;
    Ok(listener.local_addr()?.port())
}

/// `$CALLHOOK_MOTO_SERVER`, else `.venv/bin/moto_server` in this directory or a parent (where
/// `make` installs it), else `moto_server` on PATH.
pub fn moto_binary() -> Result<PathBuf> {
    if let Ok(path) = std::env::var("CALLHOOK_MOTO_SERVER") {
        return Ok(PathBuf::from(path));
    }
    let mut dir = std::env::current_dir().ok();
    while let Some(d) = dir {
        let candidate = d.join(".venv/bin/moto_server");
        if candidate.is_file() {
            return Ok(candidate);
        }
        dir = d.parent().map(Path::to_path_buf);
    }
    if let Some(path) = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join("moto_server"))
        .find(|p| p.is_file())
    {
        return Ok(path);
    }
    bail!(
        "moto_server not found: run `make venv` (installs moto[server] into .venv), \
         or set CALLHOOK_MOTO_SERVER, or pass --aws-endpoint URL of a running emulator"
    )
}

/// SDK clients for an emulator: fixed test credentials, the local region, no retries to wait on.
pub fn clients(endpoint: &str) -> (aws_sdk_dynamodb::Client, aws_sdk_sqs::Client) {
    let config = local_sdk_config(endpoint);
    (
        aws_sdk_dynamodb::Client::new(&config),
        aws_sdk_sqs::Client::new(&config),
    )
}

/// An S3 client for an emulator: the bucket in the path (an emulator on 127.0.0.1 has no host
/// name per bucket).
pub fn s3_client(endpoint: &str) -> aws_sdk_s3::Client {
    callhook::adapters::s3::S3BlobStore::client(&local_sdk_config(endpoint))
}

pub fn local_sdk_config(endpoint: &str) -> aws_config::SdkConfig {
    use aws_config::{BehaviorVersion, Region};
    let credentials =
        aws_sdk_dynamodb::config::Credentials::new("test", "test", None, None, "callhook-local");
    aws_config::SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .credentials_provider(aws_sdk_dynamodb::config::SharedCredentialsProvider::new(
            credentials,
        ))
        .endpoint_url(endpoint)
        .build()
}

/// The environment a function sees when pointed at an emulator.
pub fn local_aws_env(endpoint: &str) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ENDPOINT_URL", endpoint.to_owned()),
        ("AWS_REGION", REGION.to_owned()),
        ("AWS_ACCESS_KEY_ID", "test".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "test".to_owned()),
    ]
}
