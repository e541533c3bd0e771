//! `callhook dev`'s terminal, as a person sees it through a pipe: one readable line per request,
//! applied event and dispatch, no colour, no EMF JSON (that goes to the state directory's
//! emf.jsonl, and to stdout too with --emf), and a processing lag measured from receipt even for
//! a fixture whose events occurred in 2023.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use callhook::observability::readback::samples;
use callhook_cli::local::emulator::free_port;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

struct Dev {
    child: Child,
    state: PathBuf,
}

impl Dev {
    fn start(name: &str, extra: &[&str]) -> Dev {
        let state = std::env::temp_dir().join(format!(
            "callhook-dev-terminal-{name}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&state);
        let (port, sink) = (
            free_port().unwrap().to_string(),
            free_port().unwrap().to_string(),
        );
        let mut args = vec!["dev", "--port", &port, "--sink-port", &sink];
        args.extend_from_slice(extra);
        let child = Command::new(env!("CARGO_BIN_EXE_callhook"))
            .args(&args)
            .current_dir(root())
            .env("CALLHOOK_STATE_DIR", &state)
            .env_remove("RUST_LOG")
            .env_remove("CLICOLOR_FORCE")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let dev = Dev { child, state };
        let started = Instant::now();
        while !dev.state.join("dev.json").exists() {
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "callhook dev did not start"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        dev
    }

    fn send(&self, files: &[&str]) {
        let out = Command::new(env!("CARGO_BIN_EXE_callhook"))
            .arg("send")
            .arg("telnyx")
            .args(files)
            .current_dir(root())
            .env("CALLHOOK_STATE_DIR", &self.state)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Waits until the EMF file has a line for `metric`, then stops dev and returns its stdout.
    fn stop_after(mut self, metric: &str) -> (String, String) {
        let started = Instant::now();
        let emf = self.state.join("emf.jsonl");
        loop {
            let text = std::fs::read_to_string(&emf).unwrap_or_default();
            if text.lines().flat_map(samples).any(|s| s.name == metric) {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "no {metric} in {}",
                emf.display()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        // SIGTERM: dev stops everything it started.
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
        let mut stdout = String::new();
        self.child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut stdout)
            .unwrap();
        let emf = std::fs::read_to_string(&emf).unwrap();
        let _ = std::fs::remove_dir_all(&self.state);
        (stdout, emf)
    }
}

/// A test that fails midway still stops dev (SIGTERM: dev stops the emulator it started).
impl Drop for Dev {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = Command::new("kill")
                .arg(self.child.id().to_string())
                .status();
            let _ = self.child.wait();
        }
    }
}

#[test]
fn dev_prints_readable_lines_and_keeps_the_emf_lines_in_a_file() {
    let dev = Dev::start("plain", &[]);
    dev.send(&[
        "events/telnyx/call-initiated.json",
        "events/telnyx/call-initiated.json",
        "events/telnyx/call-answered.json",
    ]);
    let (stdout, emf) = dev.stop_after("processing_lag");
    assert!(!stdout.contains("_aws"), "no EMF on stdout: {stdout}");
    assert!(
        !stdout.contains('\u{1b}'),
        "no colour through a pipe: {stdout}"
    );
    let ingest: Vec<&str> = stdout.lines().filter(|l| l.contains(" ingest ")).collect();
    assert_eq!(ingest.len(), 3, "{stdout}");
    assert!(
        ingest[0].contains("telnyx") && ingest[0].contains("200 accepted"),
        "{stdout}"
    );
    assert!(
        ingest[0].contains("428c31b6…"),
        "the short call id: {stdout}"
    );
    assert!(ingest[0].ends_with(" ms"), "the latency: {stdout}");
    assert!(ingest[1].contains("200 duplicate"), "{stdout}");
    assert!(
        stdout
            .lines()
            .any(|l| l.contains(" lifecycle ") && l.contains("applied")),
        "{stdout}"
    );

    // The file holds what Lambda would write: EMF documents, one per line.
    let received: f64 = emf
        .lines()
        .flat_map(samples)
        .filter(|s| s.name == "received")
        .flat_map(|s| s.values)
        .sum();
    assert_eq!(received, 3.0, "{emf}");
    // The fixture's events occurred in 2023; the lag is callhook's own, from receipt.
    let lags: Vec<f64> = emf
        .lines()
        .flat_map(samples)
        .filter(|s| s.name == "processing_lag")
        .flat_map(|s| s.values)
        .collect();
    assert!(!lags.is_empty());
    assert!(
        lags.iter().all(|lag| *lag < 60_000.0),
        "lag from receipt: {lags:?}"
    );
}

#[test]
fn dev_with_emf_echoes_the_metric_lines_too() {
    let dev = Dev::start("emf", &["--emf"]);
    dev.send(&["events/telnyx/call-hangup.json"]);
    let (stdout, emf) = dev.stop_after("received");
    let echoed: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("{\"_aws\""))
        .collect();
    assert!(!echoed.is_empty(), "{stdout}");
    for line in echoed {
        assert!(
            emf.lines().any(|l| l == line),
            "the same line in the file: {line}"
        );
    }
    assert!(stdout.lines().any(|l| l.contains(" ingest ")), "{stdout}");
}
